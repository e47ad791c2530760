/*
 * demo_handlers.c -- the demo app's endpoints, and the bookkeeping every request gets.
 *
 * Endpoints (all GET; other methods get the same handler, recorded with their method):
 *   /         hello JSON; about 5% answer 500 (a failing "db.query")
 *   /health   about 20% answer 503 (a failing dependency check)
 *   /stats    JSON counters of this process
 *   /error    always 500
 *   /slow     about 30% take 0.5-2 s, the rest 10-50 ms
 *   /metrics  Prometheus text format of this process' registry
 * Work is simulated: a request with a delay is deferred (obs_http_req_defer) and finished by
 * an evtimer, so the loop never blocks. On completion (finish()) the request
 *   - updates http_requests_total{method,endpoint,status}, http_request_duration_seconds
 *     {method,endpoint} and app_errors_total{error_type};
 *   - appends one JSON line to the log file:
 *     {"ts":"2026-11-22T10:00:00.123456789Z","level":"info|error","method":"GET","path":"/",
 *      "status":200,"duration_ms":3.2,"trace_id":"<32 hex>","span_id":"<16 hex>","spans":3,
 *      "msg":"..."}
 *     where span_id is the root span and spans the number of spans the request emitted;
 *   - queues its span tree (root SERVER span "GET /path" plus 1-2 children) for OTLP export.
 * A W3C traceparent request header is honoured: the request joins that trace.
 * Everything here runs on the loop thread.
 */
#include "demo.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "core/obs_err.h"
#include "core/obs_log.h"
#include "core/obs_mem.h"
#include "core/obs_time.h"
#include "http/obs_http.h"
#include "metrics/obs_metrics.h"

/* What a request will do, decided when it arrives. */
struct plan {
    int status;
    int delay_ms;
    const char *error_type;  /* app_errors_total label, NULL when ok */
    const char *msg;         /* log message */
    const char *child1;      /* first child span name */
    int child1_kind;
    const char *child2;      /* second child span (NULL for none) */
};

struct demo_req {
    struct demo *d;
    struct obs_http_req *req;
    struct event *timer;
    struct demo_req *next, *prev; /* d->pending list while deferred */
    char method[16];
    const char *endpoint;    /* route path (static string) */
    int64_t start_mono, start_wall;
    uint8_t trace_id[16];
    uint8_t root_id[8];
    uint8_t parent_id[8];    /* from traceparent */
    int has_parent;
    struct plan plan;
};

/* --- random numbers: xoshiro256** seeded by main --- */

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t demo_rand64(struct demo *d)
{
    uint64_t *s = d->rng;
    uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return r;
}

double demo_rand01(struct demo *d)
{
    return (double)(demo_rand64(d) >> 11) * (1.0 / 9007199254740992.0);
}

static int rand_between(struct demo *d, int lo, int hi)
{
    return lo + (int)(demo_rand01(d) * (double)(hi - lo + 1));
}

static void rand_bytes(struct demo *d, uint8_t *p, int n)
{
    do {
        for (int i = 0; i < n; i++)
            p[i] = (uint8_t)demo_rand64(d);
    } while (p[0] == 0 && p[n - 1] == 0); /* all-zero ids are invalid; keep it simple */
}

/* --- helpers --- */

static int unhex(const char *s, uint8_t *out, int n)
{
    for (int i = 0; i < n; i++) {
        int v = 0;
        for (int j = 0; j < 2; j++) {
            char c = s[2 * i + j];
            int x = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
            if (x < 0)
                return -1;
            v = v * 16 + x;
        }
        out[i] = (uint8_t)v;
    }
    return 0;
}

/* W3C trace-context: "00-<32 hex trace>-<16 hex parent>-<2 hex flags>". */
static int parse_traceparent(const char *h, uint8_t *tid, uint8_t *pid)
{
    if (h == NULL || strlen(h) < 55 || h[2] != '-' || h[35] != '-' || h[52] != '-')
        return -1;
    if (unhex(h + 3, tid, 16) != 0 || unhex(h + 36, pid, 8) != 0)
        return -1;
    int nz = 0;
    for (int i = 0; i < 16; i++)
        nz |= tid[i];
    return nz ? 0 : -1;
}

/* RFC3339 with nanoseconds, UTC. */
static void fmt_ts_nano(char *out, size_t cap, int64_t ns)
{
    time_t sec = (time_t)(ns / 1000000000LL);
    struct tm tm;
    gmtime_r(&sec, &tm);
    snprintf(out, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%09lldZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (long long)(ns % 1000000000LL));
}

/* Decide what a request to endpoint does. */
static void make_plan(struct demo *d, const char *ep, struct plan *p)
{
    memset(p, 0, sizeof(*p));
    p->status = 200;
    p->msg = "request completed";
    p->child1_kind = 1;
    if (strcmp(ep, "/") == 0) {
        p->delay_ms = rand_between(d, 2, 20);
        p->child1 = "db.query";
        p->child1_kind = 3;
        p->child2 = "render";
        if (demo_rand01(d) < d->opts.error_rate_root) {
            p->status = 500;
            p->error_type = "database";
            p->msg = "internal server error: database query failed";
            p->child2 = NULL;
        }
    } else if (strcmp(ep, "/health") == 0) {
        p->child1 = "health.check";
        if (demo_rand01(d) < d->opts.error_rate_health) {
            p->status = 503;
            p->error_type = "health_check";
            p->msg = "health check failed: dependency unavailable";
        }
    } else if (strcmp(ep, "/stats") == 0) {
        p->delay_ms = rand_between(d, 1, 5);
        p->child1 = "db.query";
        p->child1_kind = 3;
        p->child2 = "render";
    } else if (strcmp(ep, "/error") == 0) {
        p->status = 500;
        p->error_type = "forced";
        p->msg = "internal server error: forced error endpoint";
        p->child1 = "validate";
    } else if (strcmp(ep, "/slow") == 0) {
        if (demo_rand01(d) < d->opts.slow_rate) {
            p->delay_ms = rand_between(d, 500, 2000);
            p->msg = "slow request completed";
        } else {
            p->delay_ms = rand_between(d, 10, 50);
        }
        p->child1 = "external.call";
        p->child1_kind = 3;
        p->child2 = "render";
    } else { /* /metrics */
        p->child1 = "metrics.render";
    }
}

/* --- completion --- */

static void emit_spans(struct demo_req *r, int64_t end_wall, int nspans)
{
    struct demo *d = r->d;
    char route_name[96];
    snprintf(route_name, sizeof(route_name), "%s %s", r->method, r->endpoint);
    int err = r->plan.status >= 500;
    int64_t dur = end_wall - r->start_wall;
    if (dur < 1000)
        dur = 1000;

    const char *root_attrs[] = {"http.method", r->method, "http.route", r->endpoint,
                                "http.target", r->endpoint, "http.scheme", "http", NULL};
    struct demo_span root = {
        .trace_id = r->trace_id, .span_id = r->root_id,
        .parent_id = r->has_parent ? r->parent_id : NULL, .name = route_name, .kind = 2,
        .start_ns = r->start_wall, .end_ns = r->start_wall + dur, .error = err,
        .status_msg = err ? r->plan.msg : NULL, .str_attrs = root_attrs,
        .int_key = "http.status_code", .int_val = r->plan.status,
    };
    demo_otlp_enqueue(d->otlp, &root);

    uint8_t cid[8];
    rand_bytes(d, cid, 8);
    const char *c1_attrs_db[] = {"db.system", "postgresql", "db.statement",
                                 "SELECT id, name FROM items WHERE owner = $1", NULL};
    const char *c1_attrs_ext[] = {"peer.service", "slow-backend", "http.method", "GET", NULL};
    const char *c1_attrs_int[] = {"component", "demo-app", NULL};
    const char *const *c1_attrs = c1_attrs_int;
    if (strcmp(r->plan.child1, "db.query") == 0)
        c1_attrs = c1_attrs_db;
    else if (strcmp(r->plan.child1, "external.call") == 0)
        c1_attrs = c1_attrs_ext;
    int64_t c1s = r->start_wall + dur / 20, c1e = r->start_wall + dur * 3 / 4;
    struct demo_span c1 = {
        .trace_id = r->trace_id, .span_id = cid, .parent_id = r->root_id,
        .name = r->plan.child1, .kind = r->plan.child1_kind, .start_ns = c1s, .end_ns = c1e,
        .error = err, .status_msg = err ? r->plan.msg : NULL, .str_attrs = c1_attrs,
    };
    demo_otlp_enqueue(d->otlp, &c1);
    if (nspans > 2) {
        uint8_t cid2[8];
        rand_bytes(d, cid2, 8);
        const char *c2_attrs[] = {"template", r->endpoint, NULL};
        struct demo_span c2 = {
            .trace_id = r->trace_id, .span_id = cid2, .parent_id = r->root_id,
            .name = r->plan.child2, .kind = 1, .start_ns = r->start_wall + dur * 4 / 5,
            .end_ns = r->start_wall + dur * 19 / 20, .str_attrs = c2_attrs,
        };
        demo_otlp_enqueue(d->otlp, &c2);
    }
}

static void write_log(struct demo_req *r, int64_t end_wall, double dur_s, int nspans)
{
    struct demo *d = r->d;
    if (d->log_fd < 0)
        return;
    char ts[48], tid[33], sid[17];
    fmt_ts_nano(ts, sizeof(ts), end_wall);
    demo_hex(tid, r->trace_id, 16);
    demo_hex(sid, r->root_id, 8);
    struct obs_sbuf b;
    obs_sbuf_init(&b);
    obs_sbuf_printf(&b, "{\"ts\":\"%s\",\"level\":\"%s\",\"method\":", ts,
                    r->plan.status >= 500 ? "error" : "info");
    obs_sbuf_json_str(&b, r->method, strlen(r->method));
    obs_sbuf_puts(&b, ",\"path\":");
    obs_sbuf_json_str(&b, r->endpoint, strlen(r->endpoint));
    obs_sbuf_printf(&b, ",\"status\":%d,\"duration_ms\":%.3f,\"trace_id\":\"%s\","
                        "\"span_id\":\"%s\",\"spans\":%d,\"msg\":",
                    r->plan.status, dur_s * 1000.0, tid, sid, nspans);
    obs_sbuf_json_str(&b, r->plan.msg, strlen(r->plan.msg));
    obs_sbuf_puts(&b, "}\n");
    if (!b.oom) {
        /* one write(2) per line with O_APPEND: lines never interleave or tear */
        ssize_t w = write(d->log_fd, b.p, b.len);
        if (w != (ssize_t)b.len)
            obs_mchild_add(d->m_log_errors, 1);
    }
    obs_sbuf_deinit(&b);
}

/* Reply body for endpoints other than /metrics. */
static void build_body(struct demo_req *r, struct obs_sbuf *b)
{
    struct demo *d = r->d;
    char tid[33];
    demo_hex(tid, r->trace_id, 16);
    if (r->plan.status >= 400) {
        obs_sbuf_puts(b, "{\"error\":");
        obs_sbuf_json_str(b, r->plan.msg, strlen(r->plan.msg));
        obs_sbuf_printf(b, ",\"trace_id\":\"%s\"}\n", tid);
    } else if (strcmp(r->endpoint, "/stats") == 0) {
        double up = (double)(obs_mono_ns() - d->start_mono_ns) / 1e9;
        obs_sbuf_printf(b,
                        "{\"service\":\"%s\",\"version\":\"%s\",\"uptime_seconds\":%.3f,"
                        "\"requests_total\":%lld,\"errors_total\":%lld,\"in_flight\":%lld,"
                        "\"spans_exported\":%lld,\"spans_dropped\":%lld,\"spans_queued\":%lld,"
                        "\"trace_id\":\"%s\"}\n",
                        d->opts.service_name, DEMO_VERSION, up, (long long)d->requests_total,
                        (long long)d->errors_total, (long long)d->in_flight,
                        (long long)demo_otlp_sent(d->otlp), (long long)demo_otlp_dropped(d->otlp),
                        (long long)demo_otlp_queued(d->otlp), tid);
    } else if (strcmp(r->endpoint, "/health") == 0) {
        obs_sbuf_printf(b, "{\"status\":\"ok\",\"trace_id\":\"%s\"}\n", tid);
    } else {
        obs_sbuf_printf(b, "{\"message\":\"hello from %s\",\"path\":\"%s\",\"trace_id\":\"%s\"}\n",
                        d->opts.service_name, r->endpoint, tid);
    }
}

/* Answer the request and record everything about it; frees r. */
static void finish(struct demo_req *r)
{
    struct demo *d = r->d;
    int nspans = r->plan.child2 != NULL ? 3 : 2;
    char tid[33];
    demo_hex(tid, r->trace_id, 16);

    struct obs_sbuf body;
    obs_sbuf_init(&body);
    const char *ctype = "application/json";
    if (strcmp(r->endpoint, "/metrics") == 0 && r->plan.status == 200) {
        ctype = "text/plain; version=0.0.4; charset=utf-8";
        if (obs_metrics_render(d->metrics, &body) != 0)
            r->plan.status = 500;
    } else {
        build_body(r, &body);
    }
    obs_http_add_header(r->req, "X-Trace-Id", tid);
    obs_http_reply_sbuf(r->req, r->plan.status, ctype, &body);
    obs_sbuf_deinit(&body);

    int64_t end_mono = obs_mono_ns();
    double dur_s = (double)(end_mono - r->start_mono) / 1e9;
    int64_t end_wall = r->start_wall + (end_mono - r->start_mono);
    char status_txt[16];
    snprintf(status_txt, sizeof(status_txt), "%d", r->plan.status);
    obs_mchild_add(obs_mfamily_with(d->m_requests, r->method, r->endpoint, status_txt), 1);
    obs_mchild_observe(obs_mfamily_with(d->m_duration, r->method, r->endpoint), dur_s);
    d->requests_total++;
    if (r->plan.error_type != NULL) {
        obs_mchild_add(obs_mfamily_with(d->m_errors, r->plan.error_type), 1);
        d->errors_total++;
    }
    write_log(r, end_wall, dur_s, nspans);
    emit_spans(r, end_wall, nspans);
    obs_free(r);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct demo_req *r = arg;
    struct demo *d = r->d;
    event_free(r->timer);
    r->timer = NULL;
    if (r->prev != NULL)
        r->prev->next = r->next;
    else
        d->pending = r->next;
    if (r->next != NULL)
        r->next->prev = r->prev;
    d->in_flight--;
    obs_mchild_set(d->m_in_flight, (double)d->in_flight);
    finish(r);
    if (d->stopping && d->in_flight == 0)
        event_base_loopexit(d->base, NULL);
}

static void handle(struct obs_http_req *req, void *arg)
{
    struct demo *d = arg;
    const char *path = obs_http_req_path(req);
    static const char *const routes[] = {"/", "/health", "/stats", "/error", "/slow", "/metrics"};
    const char *ep = NULL;
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
        if (path != NULL && strcmp(path, routes[i]) == 0)
            ep = routes[i];
    if (ep == NULL) {
        obs_http_reply_text(req, 404, "404 page not found");
        return;
    }
    struct demo_req *r = obs_calloc(1, sizeof(*r));
    if (r == NULL) {
        obs_http_reply_text(req, 503, "out of memory");
        return;
    }
    r->d = d;
    r->req = req;
    r->endpoint = ep;
    r->start_mono = obs_mono_ns();
    r->start_wall = obs_now_ns();
    snprintf(r->method, sizeof(r->method), "%s", obs_http_req_method(req));
    if (parse_traceparent(obs_http_req_header(req, "traceparent"), r->trace_id, r->parent_id) == 0)
        r->has_parent = 1;
    else
        rand_bytes(d, r->trace_id, 16);
    rand_bytes(d, r->root_id, 8);
    make_plan(d, ep, &r->plan);

    if (r->plan.delay_ms <= 0 || d->stopping) {
        finish(r);
        return;
    }
    r->timer = evtimer_new(d->base, timer_cb, r);
    if (r->timer == NULL) {
        finish(r);
        return;
    }
    struct timeval tv = {r->plan.delay_ms / 1000, (r->plan.delay_ms % 1000) * 1000};
    obs_http_req_defer(req);
    evtimer_add(r->timer, &tv);
    r->next = d->pending;
    if (d->pending != NULL)
        d->pending->prev = r;
    d->pending = r;
    d->in_flight++;
    obs_mchild_set(d->m_in_flight, (double)d->in_flight);
}

void demo_routes_abort(struct demo *d)
{
    while (d->pending != NULL) {
        struct demo_req *r = d->pending;
        d->pending = r->next;
        event_free(r->timer);
        obs_free(r);
    }
    d->in_flight = 0;
}

static double uptime_fn(void *arg)
{
    struct demo *d = arg;
    return (double)(obs_mono_ns() - d->start_mono_ns) / 1e9;
}

static double spans_sent_fn(void *arg)
{
    return (double)demo_otlp_sent(((struct demo *)arg)->otlp);
}

static double spans_dropped_fn(void *arg)
{
    return (double)demo_otlp_dropped(((struct demo *)arg)->otlp);
}

int demo_routes_init(struct demo *d)
{
    static const double buckets[] = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                     0.5,   1,     2,    2.5,   5,    10};
    d->m_requests = obs_metrics_family(d->metrics, OBS_MCOUNTER, "http_requests_total",
                                       "HTTP requests served, by method, endpoint and status.",
                                       "method,endpoint,status", NULL, 0);
    d->m_duration = obs_metrics_family(d->metrics, OBS_MHISTOGRAM,
                                       "http_request_duration_seconds",
                                       "HTTP request latency in seconds, by method and endpoint.",
                                       "method,endpoint", buckets,
                                       sizeof(buckets) / sizeof(buckets[0]));
    d->m_errors = obs_metrics_family(d->metrics, OBS_MCOUNTER, "app_errors_total",
                                     "Application errors, by error type.", "error_type", NULL, 0);
    d->m_in_flight = obs_metrics_gauge(d->metrics, "http_requests_in_flight",
                                       "Requests whose (simulated) work is still running.");
    d->m_log_errors = obs_metrics_counter(d->metrics, "app_log_write_errors_total",
                                          "Request log lines that could not be written.");
    if (d->m_requests == NULL || d->m_duration == NULL || d->m_errors == NULL ||
        d->m_in_flight == NULL || d->m_log_errors == NULL)
        return OBS_ENOMEM;
    if (obs_metrics_gauge_fn(d->metrics, "app_uptime_seconds", "Seconds since the app started.",
                             uptime_fn, d) != 0 ||
        obs_metrics_gauge_fn(d->metrics, "app_otlp_spans_sent",
                             "Spans accepted by the OTLP endpoint.", spans_sent_fn, d) != 0 ||
        obs_metrics_gauge_fn(d->metrics, "app_otlp_spans_dropped",
                             "Spans dropped (queue full, rejected, or undeliverable at exit).",
                             spans_dropped_fn, d) != 0)
        return OBS_ENOMEM;
    /* Error counters start at 0 so rate() sees every error type from the first scrape. */
    static const char *const etypes[] = {"database", "health_check", "forced"};
    for (size_t i = 0; i < sizeof(etypes) / sizeof(etypes[0]); i++)
        obs_mfamily_with(d->m_errors, etypes[i]);

    static const char *const routes[] = {"/", "/health", "/stats", "/error", "/slow", "/metrics"};
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
        if (obs_http_route(d->http, NULL, routes[i], handle, d) != 0)
            return OBS_ENOMEM;
    return OBS_OK;
}
