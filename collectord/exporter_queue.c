/*
 * exporter_queue.c -- the sending queue and retry loop shared by the otlp and otlphttp
 * exporters (the Collector's exporterhelper).
 *
 *   sending_queue:    {enabled: true, num_consumers: 1, queue_size: 1000}   (batches)
 *   retry_on_failure: {enabled: true, initial_interval: 5s, max_interval: 30s,
 *                      max_elapsed_time: 300s}
 *
 * push() runs on the loop and never blocks: a full queue refuses the batch (the receiver turns
 * that into a retryable error for its client). Consumer threads pop batches and call the
 * exporter's send(); OBS_ERETRY is retried with exponential backoff (doubling, capped at
 * max_interval) until max_elapsed_time, OBS_EFATAL and expired retries drop the batch (logged
 * and counted). With sending_queue disabled the queue still exists but holds one batch per
 * consumer, so the loop is still never blocked by a slow peer.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <pthread.h>
#include <time.h>

#include "cld.h"
#include "core/obs_log.h"
#include "core/obs_mem.h"
#include "core/obs_time.h"
#include "metrics/obs_metrics.h"

#define MAX_CONSUMERS 16

const struct obs_cfmap cld_retry_map[] = {
    {"enabled", OBS_CFT_BOOL, "true", offsetof(struct cld_retry_cfg, enabled), "Retry."},
    {"initial_interval", OBS_CFT_DURATION, "5s",
     offsetof(struct cld_retry_cfg, initial_interval_ms), "First backoff."},
    {"max_interval", OBS_CFT_DURATION, "30s", offsetof(struct cld_retry_cfg, max_interval_ms),
     "Longest backoff."},
    {"max_elapsed_time", OBS_CFT_DURATION, "300s",
     offsetof(struct cld_retry_cfg, max_elapsed_ms), "Give up after (0 = never)."},
    {"multiplier", OBS_CFT_IGNORE, NULL, 0, "Accepted (fixed at 2)."},
    {"randomization_factor", OBS_CFT_IGNORE, NULL, 0, "Accepted (no jitter)."},
    {NULL},
};

const struct obs_cfmap cld_queue_map[] = {
    {"enabled", OBS_CFT_BOOL, "true", offsetof(struct cld_queue_cfg, enabled), "Queue."},
    {"num_consumers", OBS_CFT_INT, "1", offsetof(struct cld_queue_cfg, num_consumers),
     "Sender threads."},
    {"queue_size", OBS_CFT_INT, "1000", offsetof(struct cld_queue_cfg, queue_size),
     "Batches held before new data is refused."},
    {"storage", OBS_CFT_IGNORE, NULL, 0, "Accepted; the queue is in memory."},
    {NULL},
};

struct cld_equeue {
    char *id;
    struct cld_queue_cfg qc;
    struct cld_retry_cfg rc;
    cld_send_fn send;
    void *arg;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct cld_batch **ring;
    size_t cap, head, n;
    int stop;
    int64_t drain_deadline_ms;
    pthread_t thr[MAX_CONSUMERS];
    int nthr;
    struct obs_mchild *m_sent, *m_failed, *m_enqueue_failed, *m_qsize;
};

static int64_t mono_ms(void) { return obs_mono_ns() / 1000000; }

static void wait_ms(struct cld_equeue *q, int64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    pthread_cond_timedwait(&q->cv, &q->mu, &ts);
}

static void *consumer(void *arg)
{
    struct cld_equeue *q = arg;
    pthread_mutex_lock(&q->mu);
    for (;;) {
        while (q->n == 0 && !q->stop)
            pthread_cond_wait(&q->cv, &q->mu);
        if (q->n == 0)
            break;
        struct cld_batch *b = q->ring[q->head];
        q->head = (q->head + 1) % q->cap;
        q->n--;
        obs_mchild_set(q->m_qsize, (double)q->n);
        int64_t start = mono_ms();
        int64_t delay = q->rc.initial_interval_ms > 0 ? q->rc.initial_interval_ms : 5000;
        for (;;) {
            pthread_mutex_unlock(&q->mu);
            int rc = q->send(q->arg, b);
            pthread_mutex_lock(&q->mu);
            if (rc == 0) {
                obs_mchild_add(q->m_sent, (double)b->items);
                break;
            }
            int64_t now = mono_ms();
            const char *why = NULL;
            if (rc != OBS_ERETRY)
                why = "permanent error";
            else if (!q->rc.enabled)
                why = "retry disabled";
            else if (q->rc.max_elapsed_ms && now + delay - start > q->rc.max_elapsed_ms)
                why = "max_elapsed_time reached";
            else if (q->stop && now + delay > q->drain_deadline_ms)
                why = "shutting down";
            if (why) {
                obs_clog_error(q->id, "Exporting failed. Dropping data.\treason=\"%s\" "
                                      "dropped_items=%zu",
                               why, b->items);
                obs_mchild_add(q->m_failed, (double)b->items);
                break;
            }
            obs_clog_info(q->id, "Exporting failed. Will retry the request after interval.\t"
                                 "interval_ms=%lld",
                          (long long)delay);
            wait_ms(q, delay);
            int64_t max = q->rc.max_interval_ms > 0 ? q->rc.max_interval_ms : 30000;
            delay = delay * 2 < max ? delay * 2 : max;
        }
        cld_batch_free(b);
    }
    pthread_mutex_unlock(&q->mu);
    return NULL;
}

struct cld_equeue *cld_equeue_new(const char *id, const struct cld_queue_cfg *qc,
                                  const struct cld_retry_cfg *rc, cld_send_fn send, void *arg,
                                  struct obs_metrics *m, struct obs_err *err)
{
    struct cld_equeue *q = obs_calloc(1, sizeof(*q));
    if (!q || !(q->id = obs_strdup(id))) {
        obs_free(q);
        obs_err_set(err, OBS_ENOMEM, "out of memory");
        return NULL;
    }
    q->qc = *qc;
    q->rc = *rc;
    q->send = send;
    q->arg = arg;
    int consumers = qc->num_consumers > 0 ? (int)qc->num_consumers : 1;
    if (consumers > MAX_CONSUMERS)
        consumers = MAX_CONSUMERS;
    q->cap = qc->enabled ? (size_t)(qc->queue_size > 0 ? qc->queue_size : 1000)
                         : (size_t)consumers;
    q->ring = obs_calloc(q->cap, sizeof(*q->ring));
    if (!q->ring) {
        obs_free(q->id);
        obs_free(q);
        obs_err_set(err, OBS_ENOMEM, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->cv, NULL);
    struct obs_mfamily *f;
    f = obs_metrics_family(m, OBS_MCOUNTER, "otelcol_exporter_sent_items_total",
                           "Items successfully sent by an exporter.", "exporter", NULL, 0);
    q->m_sent = f ? obs_mfamily_with(f, id) : NULL;
    f = obs_metrics_family(m, OBS_MCOUNTER, "otelcol_exporter_send_failed_items_total",
                           "Items an exporter dropped after failing to send them.", "exporter",
                           NULL, 0);
    q->m_failed = f ? obs_mfamily_with(f, id) : NULL;
    f = obs_metrics_family(m, OBS_MCOUNTER, "otelcol_exporter_enqueue_failed_items_total",
                           "Items refused because the sending queue was full.", "exporter", NULL,
                           0);
    q->m_enqueue_failed = f ? obs_mfamily_with(f, id) : NULL;
    f = obs_metrics_family(m, OBS_MGAUGE, "otelcol_exporter_queue_size",
                           "Batches waiting in the sending queue.", "exporter", NULL, 0);
    q->m_qsize = f ? obs_mfamily_with(f, id) : NULL;
    for (int i = 0; i < consumers; i++) {
        if (pthread_create(&q->thr[i], NULL, consumer, q) != 0) {
            obs_err_set(err, OBS_EIO, "cannot start exporter thread");
            cld_equeue_free(q, 0);
            return NULL;
        }
        q->nthr++;
    }
    return q;
}

int cld_equeue_push(struct cld_equeue *q, struct cld_batch *b)
{
    pthread_mutex_lock(&q->mu);
    if (q->n == q->cap || q->stop) {
        pthread_mutex_unlock(&q->mu);
        obs_mchild_add(q->m_enqueue_failed, (double)b->items);
        obs_clog_warn(q->id, "Sending queue is full, refusing data\titems=%zu", b->items);
        cld_batch_free(b);
        return OBS_ELIMIT;
    }
    q->ring[(q->head + q->n) % q->cap] = b;
    q->n++;
    obs_mchild_set(q->m_qsize, (double)q->n);
    pthread_cond_signal(&q->cv);
    pthread_mutex_unlock(&q->mu);
    return 0;
}

void cld_equeue_free(struct cld_equeue *q, int drain_ms)
{
    if (!q)
        return;
    pthread_mutex_lock(&q->mu);
    q->stop = 1;
    q->drain_deadline_ms = mono_ms() + drain_ms;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
    for (int i = 0; i < q->nthr; i++)
        pthread_join(q->thr[i], NULL);
    while (q->n) {
        cld_batch_free(q->ring[q->head]);
        q->head = (q->head + 1) % q->cap;
        q->n--;
    }
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->cv);
    obs_free(q->ring);
    obs_free(q->id);
    obs_free(q);
}
