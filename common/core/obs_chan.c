/*
 * obs_chan.c -- cross-thread message queue into a libevent loop (see obs_chan.h).
 *
 * Design: a mutex-protected singly linked FIFO plus an eventfd. Senders push and write 1 to the
 * eventfd only when the queue was empty (one wakeup per burst); the loop callback drains the
 * eventfd, swaps the whole list out under the lock and delivers messages outside it.
 */
#include "core/obs_chan.h"
#include "core/obs_err.h"
#include "core/obs_mem.h"

#include <event2/event.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <unistd.h>

struct chan_msg {
    struct chan_msg *next;
    void *msg;
};

struct obs_chan {
    pthread_mutex_t lock;
    struct chan_msg *head, *tail;
    int efd;
    struct event *ev;
    obs_chan_fn fn;
    void *arg;
};

static void deliver_all(struct obs_chan *ch)
{
    pthread_mutex_lock(&ch->lock);
    struct chan_msg *m = ch->head;
    ch->head = ch->tail = NULL;
    pthread_mutex_unlock(&ch->lock);
    while (m) {
        struct chan_msg *next = m->next;
        ch->fn(m->msg, ch->arg);
        obs_free(m);
        m = next;
    }
}

static void on_wakeup(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    uint64_t v;
    ssize_t r = read(fd, &v, sizeof(v));
    (void)r;
    deliver_all(arg);
}

struct obs_chan *obs_chan_new(struct event_base *base, obs_chan_fn fn, void *arg)
{
    struct obs_chan *ch = obs_calloc(1, sizeof(*ch));
    if (ch == NULL)
        return NULL;
    pthread_mutex_init(&ch->lock, NULL);
    ch->fn = fn;
    ch->arg = arg;
    ch->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (ch->efd < 0)
        goto fail;
    ch->ev = event_new(base, ch->efd, EV_READ | EV_PERSIST, on_wakeup, ch);
    if (ch->ev == NULL || event_add(ch->ev, NULL) != 0)
        goto fail;
    return ch;
fail:
    if (ch->ev)
        event_free(ch->ev);
    if (ch->efd >= 0)
        close(ch->efd);
    pthread_mutex_destroy(&ch->lock);
    obs_free(ch);
    return NULL;
}

int obs_chan_send(struct obs_chan *ch, void *msg)
{
    struct chan_msg *m = obs_malloc(sizeof(*m));
    if (m == NULL)
        return OBS_ENOMEM;
    m->next = NULL;
    m->msg = msg;
    pthread_mutex_lock(&ch->lock);
    int was_empty = ch->head == NULL;
    if (ch->tail)
        ch->tail->next = m;
    else
        ch->head = m;
    ch->tail = m;
    pthread_mutex_unlock(&ch->lock);
    if (was_empty) {
        uint64_t one = 1;
        ssize_t w = write(ch->efd, &one, sizeof(one));
        (void)w;
    }
    return OBS_OK;
}

void obs_chan_free(struct obs_chan *ch)
{
    if (ch == NULL)
        return;
    deliver_all(ch);
    event_free(ch->ev);
    close(ch->efd);
    pthread_mutex_destroy(&ch->lock);
    obs_free(ch);
}
