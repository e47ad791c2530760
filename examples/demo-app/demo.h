/*
 * demo.h -- shared declarations of the demo application (examples/demo-app).
 *
 * The demo app is the lab's instrumented workload: an HTTP service on libobs' obs_http server
 * whose endpoints fail and stall at known rates, and that emits the three signals the suite
 * stores -- Prometheus metrics on /metrics, one JSON log line per request to a file, and one
 * OTLP span tree per request sent as OTLP/HTTP JSON from a sender thread. The trace id in each
 * log line is the id of that request's span tree, so a log line can be followed to its trace.
 *
 * Threads: everything except the OTLP sender runs on the one libevent loop thread. The sender
 * (demo_otlp.c) owns a locked queue; demo_otlp_enqueue() is the only cross-thread call.
 */
#ifndef DEMO_H
#define DEMO_H

#include <stdint.h>

#include "core/obs_sbuf.h"

struct event_base;
struct obs_http_server;
struct obs_metrics;
struct obs_mchild;
struct obs_mfamily;
struct demo_otlp;
struct demo_req;

#define DEMO_VERSION "0.1.0"

/* Command-line settings (see main.c usage()). Strings point into argv or literals. */
struct demo_opts {
    const char *listen_address; /* "" = all interfaces */
    int http_port;
    const char *log_file;       /* JSON request log; "" disables it */
    const char *otlp_endpoint;  /* base URL ("http://127.0.0.1:4318") or full /v1/traces URL */
    const char *service_name;
    int otlp_batch_max;         /* spans per export request */
    int otlp_queue_max;         /* spans buffered while the collector is away */
    int otlp_interval_ms;       /* flush period */
    double error_rate_root;     /* probability of a 500 on "/" */
    double error_rate_health;   /* probability of a 500 on "/health" */
    double slow_rate;           /* probability that /slow takes 0.5-2 s */
    uint64_t seed;              /* 0 = random */
};

/* Process state shared by the handlers (one per process, owned by main). */
struct demo {
    struct demo_opts opts;
    struct event_base *base;
    struct obs_http_server *http;
    struct obs_metrics *metrics;
    struct demo_otlp *otlp;
    int log_fd;                  /* -1 when logging is off */
    int64_t start_mono_ns;
    uint64_t rng[4];             /* xoshiro256** state; loop thread only */
    int64_t in_flight;           /* deferred requests not yet answered */
    int64_t requests_total;
    int64_t errors_total;
    int stopping;
    struct demo_req *pending;    /* deferred requests (list owned by demo_handlers.c) */
    /* metric families */
    struct obs_mfamily *m_requests;
    struct obs_mfamily *m_duration;
    struct obs_mfamily *m_errors;
    struct obs_mchild *m_in_flight;
    struct obs_mchild *m_log_errors;
};

/* --- demo_handlers.c --- */
/* Create the metric families and register every route on d->http. Returns 0 or an OBS_E*
 * code. Loop thread. */
int demo_routes_init(struct demo *d);
/* At exit, after the loop stopped: drop deferred requests still waiting (their timers and
 * state; the connections are closed by obs_http_server_free). */
void demo_routes_abort(struct demo *d);
/* Uniform random number in [0, 1) and a 64-bit random value (loop thread only). */
double demo_rand01(struct demo *d);
uint64_t demo_rand64(struct demo *d);

/* --- demo_otlp.c --- */
/* One span as the request handler describes it; demo_otlp_span_json renders it. */
struct demo_span {
    const uint8_t *trace_id;   /* 16 bytes */
    const uint8_t *span_id;    /* 8 bytes */
    const uint8_t *parent_id;  /* 8 bytes or NULL for a root span */
    const char *name;
    int kind;                  /* OTLP SpanKind: 1 internal, 2 server, 3 client */
    int64_t start_ns, end_ns;  /* Unix nanoseconds */
    int error;                 /* status ERROR when set, else UNSET */
    const char *status_msg;    /* may be NULL */
    /* attributes: string pairs, then the one integer attribute (skipped when int_key NULL) */
    const char *const *str_attrs; /* key, value, key, value, ..., NULL */
    const char *int_key;
    int64_t int_val;
};

/* Start the sender thread posting to opts->otlp_endpoint. NULL on failure (logged). */
struct demo_otlp *demo_otlp_new(const struct demo_opts *opts);
/* Queue one span (rendered to JSON here). Thread-safe; drops and counts when the queue is
 * full. Returns 0, or OBS_ELIMIT when the span was dropped. */
int demo_otlp_enqueue(struct demo_otlp *o, const struct demo_span *s);
/* Counters for /stats and /metrics (thread-safe reads). */
int64_t demo_otlp_sent(const struct demo_otlp *o);
int64_t demo_otlp_dropped(const struct demo_otlp *o);
int64_t demo_otlp_queued(struct demo_otlp *o);
/* Flush what is queued (waiting at most timeout_ms), stop the thread and free. NULL is ok. */
void demo_otlp_free(struct demo_otlp *o, int timeout_ms);

/* Lower-case hex of n bytes into out (2n+1 bytes, NUL-terminated). */
void demo_hex(char *out, const uint8_t *p, int n);

#endif
