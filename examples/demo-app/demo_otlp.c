/*
 * demo_otlp.c -- the demo app's OTLP/HTTP JSON trace exporter.
 *
 * Spans are rendered to their OTLP JSON object on the caller's thread (the loop) and queued
 * as strings. A sender thread wakes every interval (or as soon as a full batch is queued),
 * takes up to batch_max spans, wraps them in one ExportTraceServiceRequest
 *   {"resourceSpans":[{"resource":{...},"scopeSpans":[{"scope":{...},"spans":[...]}]}]}
 * and POSTs it to <endpoint>/v1/traces with Content-Type application/json. Ids are lower-case
 * hex and times decimal-string nanoseconds, as the OTLP/HTTP JSON encoding specifies.
 *
 * Delivery: a batch that gets no response, a 5xx, 429 or 503 is put back at the head of the
 * queue and retried with backoff (1 s doubling to 8 s), so spans survive the collector
 * starting after the app. Other 4xx drop the batch (the data would never be accepted). The
 * queue is bounded (queue_max spans); beyond it new spans are dropped and counted. On
 * shutdown the queue is flushed for at most the given timeout.
 */
#include "demo.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/obs_err.h"
#include "core/obs_log.h"
#include "core/obs_mem.h"
#include "core/obs_time.h"
#include "http/obs_http.h"

struct span_item {
    struct span_item *next;
    char *json;
    size_t len;
};

struct demo_otlp {
    char *url;                /* full .../v1/traces URL */
    char *resource_json;      /* {"resource":...,"scopeSpans":[{"scope":...,"spans":[ */
    int batch_max, queue_max, interval_ms;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct span_item *head, *tail; /* guarded by mu */
    int64_t nqueued;               /* guarded by mu */
    int stop;                      /* guarded by mu */
    int64_t flush_deadline_ns;     /* monotonic; guarded by mu, set with stop */
    atomic_llong sent, dropped;
};

void demo_hex(char *out, const uint8_t *p, int n)
{
    static const char hx[] = "0123456789abcdef";
    for (int i = 0; i < n; i++) {
        out[2 * i] = hx[p[i] >> 4];
        out[2 * i + 1] = hx[p[i] & 15];
    }
    out[2 * n] = '\0';
}

static void attr_str(struct obs_sbuf *b, const char *k, const char *v, int first)
{
    if (!first)
        obs_sbuf_putc(b, ',');
    obs_sbuf_puts(b, "{\"key\":");
    obs_sbuf_json_str(b, k, strlen(k));
    obs_sbuf_puts(b, ",\"value\":{\"stringValue\":");
    obs_sbuf_json_str(b, v, strlen(v));
    obs_sbuf_puts(b, "}}");
}

/* Render one span object into b. */
static void span_json(struct obs_sbuf *b, const struct demo_span *s)
{
    char tid[33], sid[17], pid[17];
    demo_hex(tid, s->trace_id, 16);
    demo_hex(sid, s->span_id, 8);
    obs_sbuf_printf(b, "{\"traceId\":\"%s\",\"spanId\":\"%s\"", tid, sid);
    if (s->parent_id != NULL) {
        demo_hex(pid, s->parent_id, 8);
        obs_sbuf_printf(b, ",\"parentSpanId\":\"%s\"", pid);
    }
    obs_sbuf_puts(b, ",\"name\":");
    obs_sbuf_json_str(b, s->name, strlen(s->name));
    obs_sbuf_printf(b, ",\"kind\":%d,\"startTimeUnixNano\":\"%lld\",\"endTimeUnixNano\":\"%lld\"",
                    s->kind, (long long)s->start_ns, (long long)s->end_ns);
    obs_sbuf_puts(b, ",\"attributes\":[");
    int first = 1;
    for (const char *const *a = s->str_attrs; a != NULL && a[0] != NULL; a += 2) {
        attr_str(b, a[0], a[1] != NULL ? a[1] : "", first);
        first = 0;
    }
    if (s->int_key != NULL) {
        if (!first)
            obs_sbuf_putc(b, ',');
        obs_sbuf_puts(b, "{\"key\":");
        obs_sbuf_json_str(b, s->int_key, strlen(s->int_key));
        obs_sbuf_printf(b, ",\"value\":{\"intValue\":\"%lld\"}}", (long long)s->int_val);
    }
    obs_sbuf_puts(b, "]");
    if (s->error) {
        obs_sbuf_puts(b, ",\"status\":{\"code\":2");
        if (s->status_msg != NULL) {
            obs_sbuf_puts(b, ",\"message\":");
            obs_sbuf_json_str(b, s->status_msg, strlen(s->status_msg));
        }
        obs_sbuf_puts(b, "}");
    } else {
        obs_sbuf_puts(b, ",\"status\":{}");
    }
    obs_sbuf_putc(b, '}');
}

int demo_otlp_enqueue(struct demo_otlp *o, const struct demo_span *s)
{
    if (o == NULL)
        return OBS_OK;
    struct obs_sbuf b;
    obs_sbuf_init(&b);
    span_json(&b, s);
    struct span_item *it = obs_malloc(sizeof(*it));
    if (b.oom || it == NULL) {
        obs_sbuf_deinit(&b);
        obs_free(it);
        atomic_fetch_add(&o->dropped, 1);
        return OBS_ENOMEM;
    }
    it->next = NULL;
    it->json = obs_sbuf_take(&b, &it->len);
    pthread_mutex_lock(&o->mu);
    if (o->nqueued >= o->queue_max || o->stop) {
        pthread_mutex_unlock(&o->mu);
        obs_free(it->json);
        obs_free(it);
        atomic_fetch_add(&o->dropped, 1);
        return OBS_ELIMIT;
    }
    if (o->tail != NULL)
        o->tail->next = it;
    else
        o->head = it;
    o->tail = it;
    o->nqueued++;
    if (o->nqueued >= o->batch_max)
        pthread_cond_signal(&o->cv);
    pthread_mutex_unlock(&o->mu);
    return OBS_OK;
}

static void free_items(struct span_item *it)
{
    while (it != NULL) {
        struct span_item *n = it->next;
        obs_free(it->json);
        obs_free(it);
        it = n;
    }
}

/* Detach up to max items from the head. Caller holds mu. */
static struct span_item *take_batch(struct demo_otlp *o, int max, int *n_out)
{
    struct span_item *first = o->head, *last = NULL, *it = o->head;
    int n = 0;
    while (it != NULL && n < max) {
        last = it;
        it = it->next;
        n++;
    }
    if (n == 0) {
        *n_out = 0;
        return NULL;
    }
    o->head = it;
    if (it == NULL)
        o->tail = NULL;
    last->next = NULL;
    o->nqueued -= n;
    *n_out = n;
    return first;
}

/* Put a failed batch back at the head (as much as fits under queue_max). Caller holds mu. */
static void requeue(struct demo_otlp *o, struct span_item *batch, int n)
{
    int room = (int)(o->queue_max - o->nqueued);
    if (n > room) {
        /* keep the oldest `room` items, drop the rest */
        struct span_item *it = batch, *prev = NULL;
        for (int i = 0; i < room && it != NULL; i++) {
            prev = it;
            it = it->next;
        }
        atomic_fetch_add(&o->dropped, n - (room > 0 ? room : 0));
        if (prev == NULL) {
            free_items(batch);
            return;
        }
        prev->next = NULL;
        free_items(it);
        n = room;
    }
    struct span_item *last = batch;
    while (last->next != NULL)
        last = last->next;
    last->next = o->head;
    o->head = batch;
    if (o->tail == NULL)
        o->tail = last;
    o->nqueued += n;
}

/* POST one batch. Returns 0 (delivered or dropped for good) or OBS_ERETRY. */
static int post_batch(struct demo_otlp *o, struct span_item *batch, int n, int timeout_ms)
{
    struct obs_sbuf body;
    obs_sbuf_init(&body);
    obs_sbuf_puts(&body, "{\"resourceSpans\":[");
    obs_sbuf_puts(&body, o->resource_json);
    for (struct span_item *it = batch; it != NULL; it = it->next) {
        if (it != batch)
            obs_sbuf_putc(&body, ',');
        obs_sbuf_append(&body, it->json, it->len);
    }
    obs_sbuf_puts(&body, "]}]}]}");
    if (body.oom) {
        obs_sbuf_deinit(&body);
        return OBS_ERETRY;
    }
    static const char *const hdrs[] = {"Content-Type: application/json", NULL};
    struct obs_httpc_resp resp;
    struct obs_err err;
    obs_err_clear(&err);
    resp.status = 0;
    obs_sbuf_init(&resp.body);
    int rc = obs_httpc_do("POST", o->url, hdrs, body.p, body.len, timeout_ms, &resp, &err);
    obs_sbuf_deinit(&body);
    int out = OBS_OK;
    if (rc != 0) {
        obs_clog_warn("otlp", "export failed\turl=%s err=\"%s\" spans=%d", o->url, err.msg, n);
        out = OBS_ERETRY;
    } else if (resp.status >= 200 && resp.status < 300) {
        atomic_fetch_add(&o->sent, n);
    } else if (resp.status == 429 || resp.status == 502 || resp.status == 503 ||
               resp.status == 504 || resp.status >= 500) {
        obs_clog_warn("otlp", "export rejected, will retry\tstatus=%d spans=%d", resp.status, n);
        out = OBS_ERETRY;
    } else {
        obs_clog_error("otlp",
                       "export rejected, dropping batch\tstatus=%d spans=%d body=\"%.200s\"",
                       resp.status, n, resp.body.p != NULL ? resp.body.p : "");
        atomic_fetch_add(&o->dropped, n);
    }
    obs_sbuf_deinit(&resp.body);
    return out;
}

static void abs_deadline(struct timespec *ts, int64_t ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

static void *sender_main(void *arg)
{
    struct demo_otlp *o = arg;
    int64_t backoff_ms = 0;
    pthread_mutex_lock(&o->mu);
    for (;;) {
        /* Wait for a full batch, the interval, a backoff, or stop. */
        int64_t wait_ms = backoff_ms > 0 ? backoff_ms : o->interval_ms;
        if (!o->stop && (o->nqueued < o->batch_max || backoff_ms > 0)) {
            struct timespec ts;
            abs_deadline(&ts, wait_ms);
            pthread_cond_timedwait(&o->cv, &o->mu, &ts);
        }
        if (o->stop && (o->head == NULL || obs_mono_ns() >= o->flush_deadline_ns))
            break;
        int n;
        struct span_item *batch = take_batch(o, o->batch_max, &n);
        if (batch == NULL) {
            backoff_ms = 0;
            continue;
        }
        int timeout_ms = 5000;
        if (o->stop) {
            int64_t left = (o->flush_deadline_ns - obs_mono_ns()) / 1000000;
            timeout_ms = left < 100 ? 100 : (int)left;
        }
        pthread_mutex_unlock(&o->mu);
        int rc = post_batch(o, batch, n, timeout_ms);
        pthread_mutex_lock(&o->mu);
        if (rc == OBS_ERETRY) {
            requeue(o, batch, n);
            if (o->stop)
                break; /* shutting down: no retries against a peer that is away */
            backoff_ms = backoff_ms == 0 ? 1000 : (backoff_ms * 2 > 8000 ? 8000 : backoff_ms * 2);
        } else {
            free_items(batch);
            backoff_ms = 0;
        }
    }
    /* whatever is left could not be delivered in time */
    atomic_fetch_add(&o->dropped, o->nqueued);
    free_items(o->head);
    o->head = o->tail = NULL;
    o->nqueued = 0;
    pthread_mutex_unlock(&o->mu);
    return NULL;
}

struct demo_otlp *demo_otlp_new(const struct demo_opts *opts)
{
    struct demo_otlp *o = obs_calloc(1, sizeof(*o));
    if (o == NULL)
        return NULL;
    const char *ep = opts->otlp_endpoint;
    size_t n = strlen(ep);
    while (n > 0 && ep[n - 1] == '/')
        n--;
    struct obs_sbuf b;
    obs_sbuf_init(&b);
    obs_sbuf_append(&b, ep, n);
    if (n < 10 || strncmp(ep + n - 10, "/v1/traces", 10) != 0)
        obs_sbuf_puts(&b, "/v1/traces");
    o->url = obs_sbuf_take(&b, NULL);

    char host[256];
    if (gethostname(host, sizeof(host)) != 0)
        snprintf(host, sizeof(host), "localhost");
    host[sizeof(host) - 1] = '\0';
    obs_sbuf_puts(&b, "{\"resource\":{\"attributes\":[");
    attr_str(&b, "service.name", opts->service_name, 1);
    attr_str(&b, "service.version", DEMO_VERSION, 0);
    attr_str(&b, "host.name", host, 0);
    attr_str(&b, "telemetry.sdk.language", "c", 0);
    attr_str(&b, "telemetry.sdk.name", "obs-demo-app", 0);
    obs_sbuf_puts(&b, "]},\"scopeSpans\":[{\"scope\":{\"name\":\"demo-app\","
                      "\"version\":\"" DEMO_VERSION "\"},\"spans\":[");
    o->resource_json = obs_sbuf_take(&b, NULL);
    obs_sbuf_deinit(&b);
    if (o->url == NULL || o->resource_json == NULL) {
        obs_free(o->url);
        obs_free(o->resource_json);
        obs_free(o);
        return NULL;
    }
    o->batch_max = opts->otlp_batch_max > 0 ? opts->otlp_batch_max : 512;
    o->queue_max = opts->otlp_queue_max > 0 ? opts->otlp_queue_max : 20000;
    o->interval_ms = opts->otlp_interval_ms > 0 ? opts->otlp_interval_ms : 1000;
    pthread_mutex_init(&o->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&o->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&o->thread, NULL, sender_main, o) != 0) {
        obs_log_error("otlp: cannot start sender thread");
        pthread_mutex_destroy(&o->mu);
        pthread_cond_destroy(&o->cv);
        obs_free(o->url);
        obs_free(o->resource_json);
        obs_free(o);
        return NULL;
    }
    return o;
}

int64_t demo_otlp_sent(const struct demo_otlp *o)
{
    return o != NULL ? atomic_load(&((struct demo_otlp *)o)->sent) : 0;
}

int64_t demo_otlp_dropped(const struct demo_otlp *o)
{
    return o != NULL ? atomic_load(&((struct demo_otlp *)o)->dropped) : 0;
}

int64_t demo_otlp_queued(struct demo_otlp *o)
{
    if (o == NULL)
        return 0;
    pthread_mutex_lock(&o->mu);
    int64_t n = o->nqueued;
    pthread_mutex_unlock(&o->mu);
    return n;
}

void demo_otlp_free(struct demo_otlp *o, int timeout_ms)
{
    if (o == NULL)
        return;
    pthread_mutex_lock(&o->mu);
    o->stop = 1;
    o->flush_deadline_ns = obs_mono_ns() + (int64_t)timeout_ms * 1000000LL;
    pthread_cond_signal(&o->cv);
    pthread_mutex_unlock(&o->mu);
    pthread_join(o->thread, NULL);
    pthread_mutex_destroy(&o->mu);
    pthread_cond_destroy(&o->cv);
    obs_free(o->url);
    obs_free(o->resource_json);
    obs_free(o);
}
