/*
 * remote_write.c -- one send queue per remote_write endpoint (Prometheus remote write 1.0).
 *
 * The scraper hands each scrape's samples over as one ready-to-send body (WriteRequest
 * protobuf, snappy block compressed). The queue is a FIFO bounded in bytes (queue_bytes): when
 * a new body does not fit, the oldest bodies are dropped and counted, so a long outage costs
 * old samples rather than memory. A sender thread POSTs the head of the queue with
 *   Content-Encoding: snappy, Content-Type: application/x-protobuf,
 *   X-Prometheus-Remote-Write-Version: 0.1.0
 * and removes it on 2xx; on 4xx other than 429 the body is dropped (logged), as Prometheus
 * does; on 429, 5xx and connection errors it retries the same body with exponential backoff
 * (500 ms doubling to 30 s), so samples arrive in order.
 * Durability: the queue is in memory (bounded); samples scraped but not yet sent are lost if
 * the process dies. Scrapes are periodic, so a restart resumes with fresh samples.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "agd.h"
#include "core/obs_log.h"
#include "core/obs_mem.h"
#include "core/obs_time.h"
#include "http/obs_http.h"
#include "metrics/obs_metrics.h"

#define COMP "remote_write"

struct item {
    struct item *next;
    size_t len, nsamples;
    uint8_t body[];
};

struct agd_rwq {
    const struct agd_rw_cfg *cfg;
    pthread_t thr;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct item *head, *tail;
    size_t bytes;
    int stop;
    int64_t drain_deadline_ms; /* monotonic; 0 while running */
    char **headers;            /* NULL-terminated "Name: value" */
    struct obs_mchild *m_sent, *m_failed, *m_dropped, *m_retries, *m_pending, *m_bytes;
};

static int64_t mono_ms(void) { return obs_mono_ns() / 1000000; }

/* Wait up to ms on the condvar (mutex held). */
static void timed_wait(struct agd_rwq *q, int64_t ms)
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

static void *sender_main(void *arg)
{
    struct agd_rwq *q = arg;
    struct agd_backoff_cfg bo = {.min_period_ms = 500, .max_period_ms = 30000};
    int attempt = 0;
    pthread_mutex_lock(&q->mu);
    for (;;) {
        while (!q->head && !q->stop)
            pthread_cond_wait(&q->cv, &q->mu);
        if (!q->head)
            break; /* stopping and empty */
        if (q->stop && mono_ms() >= q->drain_deadline_ms)
            break;
        struct item *it = q->head;
        pthread_mutex_unlock(&q->mu);

        struct obs_httpc_resp resp;
        struct obs_err err = {0};
        obs_sbuf_init(&resp.body);
        int hrc = obs_httpc_do("POST", q->cfg->url, (const char *const *)q->headers, it->body,
                               it->len, (int)q->cfg->remote_timeout_ms, &resp, &err);
        int status = hrc == 0 ? resp.status : 0;
        int done = 0;
        if (status >= 200 && status < 300) {
            obs_mchild_add(q->m_sent, (double)it->nsamples);
            done = 1;
            attempt = 0;
        } else if (status >= 400 && status < 500 && status != 429) {
            obs_clog_error(COMP, "remote write rejected, dropping samples\turl=%s status=%d "
                                 "samples=%zu body=\"%.200s\"",
                           q->cfg->url, status, it->nsamples, resp.body.p ? resp.body.p : "");
            obs_mchild_add(q->m_failed, (double)it->nsamples);
            done = 1;
            attempt = 0;
        }
        obs_sbuf_deinit(&resp.body);

        pthread_mutex_lock(&q->mu);
        if (done) {
            if (q->head == it) { /* still ours (a full queue may have dropped it) */
                q->head = it->next;
                if (!q->head)
                    q->tail = NULL;
                q->bytes -= it->len;
                obs_free(it);
            }
            obs_mchild_set(q->m_pending, (double)q->bytes);
            continue;
        }
        int64_t delay = agd_backoff_ms(&bo, attempt++);
        obs_clog_warn(COMP, "remote write failed, will retry\turl=%s status=%d error=\"%s\" "
                            "delay_ms=%lld",
                      q->cfg->url, status, hrc ? err.msg : "", (long long)delay);
        obs_mchild_add(q->m_retries, 1);
        if (q->stop) {
            if (mono_ms() + delay >= q->drain_deadline_ms)
                break;
        }
        timed_wait(q, delay);
    }
    pthread_mutex_unlock(&q->mu);
    return NULL;
}

struct agd_rwq *agd_rwq_new(const struct agd_rw_cfg *cfg, struct obs_metrics *m,
                            struct obs_err *err)
{
    struct agd_rwq *q = obs_calloc(1, sizeof(*q));
    if (!q)
        goto oom;
    q->cfg = cfg;
    q->headers = obs_calloc(cfg->headers.n + 5, sizeof(char *));
    if (!q->headers)
        goto oom;
    size_t h = 0;
    const char *fixed[] = {"Content-Encoding: snappy", "Content-Type: application/x-protobuf",
                           "X-Prometheus-Remote-Write-Version: 0.1.0",
                           "User-Agent: agentd/0.1.0 (Prometheus agent compatible)"};
    for (size_t i = 0; i < 4; i++)
        if (!(q->headers[h++] = obs_strdup(fixed[i])))
            goto oom;
    for (size_t i = 0; i < cfg->headers.n; i++) {
        size_t n = strlen(cfg->headers.v[i].name) + strlen(cfg->headers.v[i].value) + 3;
        if (!(q->headers[h] = obs_malloc(n)))
            goto oom;
        snprintf(q->headers[h++], n, "%s: %s", cfg->headers.v[i].name, cfg->headers.v[i].value);
    }
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->cv, NULL);
    struct obs_mfamily *f;
    f = obs_metrics_family(m, OBS_MCOUNTER, "prometheus_remote_storage_samples_total",
                           "Samples acknowledged by the remote endpoint.", "url", NULL, 0);
    q->m_sent = f ? obs_mfamily_with(f, cfg->url) : NULL;
    f = obs_metrics_family(m, OBS_MCOUNTER, "prometheus_remote_storage_samples_failed_total",
                           "Samples rejected with a non-retryable error.", "url", NULL, 0);
    q->m_failed = f ? obs_mfamily_with(f, cfg->url) : NULL;
    f = obs_metrics_family(m, OBS_MCOUNTER, "prometheus_remote_storage_samples_dropped_total",
                           "Samples dropped because the queue was full.", "url", NULL, 0);
    q->m_dropped = f ? obs_mfamily_with(f, cfg->url) : NULL;
    f = obs_metrics_family(m, OBS_MCOUNTER, "prometheus_remote_storage_retries_total",
                           "Send attempts that will be retried.", "url", NULL, 0);
    q->m_retries = f ? obs_mfamily_with(f, cfg->url) : NULL;
    f = obs_metrics_family(m, OBS_MGAUGE, "prometheus_remote_storage_pending_bytes",
                           "Bytes queued and not yet acknowledged.", "url", NULL, 0);
    q->m_pending = f ? obs_mfamily_with(f, cfg->url) : NULL;
    if (pthread_create(&q->thr, NULL, sender_main, q) != 0) {
        obs_err_set(err, OBS_EIO, "cannot start remote-write thread");
        q->thr = 0;
        agd_rwq_free(q, 0);
        return NULL;
    }
    return q;
oom:
    if (q)
        agd_rwq_free(q, 0);
    obs_err_set(err, OBS_ENOMEM, "out of memory");
    return NULL;
}

int agd_rwq_push(struct agd_rwq *q, const void *body, size_t len, size_t nsamples)
{
    struct item *it = obs_malloc(sizeof(*it) + len);
    if (!it)
        return OBS_ENOMEM;
    it->next = NULL;
    it->len = len;
    it->nsamples = nsamples;
    memcpy(it->body, body, len);
    size_t bound = q->cfg->queue_bytes > 0 ? (size_t)q->cfg->queue_bytes : 64u << 20;
    pthread_mutex_lock(&q->mu);
    /* make room, never dropping the head being sent right now (it is dropped when done) */
    while (q->head && q->head->next && q->bytes + len > bound) {
        struct item *victim = q->head->next;
        q->head->next = victim->next;
        if (q->tail == victim)
            q->tail = q->head;
        q->bytes -= victim->len;
        obs_mchild_add(q->m_dropped, (double)victim->nsamples);
        obs_free(victim);
    }
    if (q->tail)
        q->tail->next = it;
    else
        q->head = it;
    q->tail = it;
    q->bytes += len;
    obs_mchild_set(q->m_pending, (double)q->bytes);
    pthread_cond_signal(&q->cv);
    pthread_mutex_unlock(&q->mu);
    return 0;
}

void agd_rwq_free(struct agd_rwq *q, int drain_ms)
{
    if (!q)
        return;
    if (q->thr) {
        pthread_mutex_lock(&q->mu);
        q->stop = 1;
        q->drain_deadline_ms = mono_ms() + drain_ms;
        pthread_cond_broadcast(&q->cv);
        pthread_mutex_unlock(&q->mu);
        pthread_join(q->thr, NULL);
        pthread_mutex_destroy(&q->mu);
        pthread_cond_destroy(&q->cv);
    }
    while (q->head) {
        struct item *n = q->head->next;
        obs_free(q->head);
        q->head = n;
    }
    for (size_t i = 0; q->headers && q->headers[i]; i++)
        obs_free(q->headers[i]);
    obs_free(q->headers);
    obs_free(q);
}
