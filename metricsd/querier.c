/*
 * querier.c -- the PromQL query API: GET|POST /api/v1/query and /api/v1/query_range.
 *
 *   /api/v1/query        query, time (RFC3339 or float seconds; default now), timeout
 *   /api/v1/query_range  query, start, end, step (float seconds or duration), timeout
 *
 * Replies use Prometheus' envelope exactly: {"status":"success","data":{"resultType":...,
 * "result":...}} with timestamps as float seconds and values as strings, plus "warnings" and
 * "infos" arrays when the engine produced annotations. Errors: 400 bad_data for bad
 * parameters and parse errors ("invalid parameter \"query\": 1:5: parse error: ..."),
 * 422 execution for evaluation errors and per-query limits, 503 timeout when the deadline
 * passes, 503 unavailable when the query queue is full.
 *
 * Execution: a query is parsed and *prepared* on the loop thread (mtd_ql_prepare reads every
 * sample it needs from storage, which storage.h allows only there; the fetched-series,
 * sample, memory, regex and subquery limits are checked at this point), then *evaluated* on
 * one of `max_concurrent` worker threads (mtd_ql_run needs no storage). The finished result
 * comes back through an obs_chan and is rendered and sent on the loop. At most
 * max_concurrent queries are prepared or running; up to max_queue_length more wait (their
 * reply deferred) and anything beyond gets 503. The deadline (config `timeout`, lowered by the
 * `timeout` parameter) counts from arrival, queue wait included. When the client closes the
 * connection, the query's cancel flag is raised: a queued query is dropped, a running one
 * stops at the evaluator's next deadline check. The selection phase itself runs on the loop
 * and is bounded by the series/sample limits, not interruptible. max_concurrent: 0 runs
 * queries synchronously on the loop (no cancellation).
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>

#include "config/obs_cf.h"
#include "core/obs_chan.h"
#include "core/obs_log.h"
#include "core/obs_mem.h"
#include "core/obs_time.h"
#include "http/obs_http.h"
#include "metricsd/blocks.h"
#include "metricsd/metricsd.h"
#include "metricsd/querier.h"
#include "metricsd/storage.h"

const char *const mtd_querier_deps[] = {"ingester", NULL};

#define MAX_WORKERS 16

struct qjob;

struct querier {
    struct obs_ctx *ctx;
    struct mtd_querier_cfg cfg;
    /* workers */
    pthread_t th[MAX_WORKERS];
    int nth;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct qjob *ready, *ready_tail; /* prepared, waiting for a worker (mu) */
    int quit;                        /* (mu) */
    struct obs_chan *done;
    /* loop thread only */
    struct qjob *pend, *pend_tail;   /* waiting for a slot */
    int npend, active, stopping;
    struct qjob *watch;              /* jobs whose client connection is polled */
    struct event *tick;              /* polls the watched connections */
};

struct qjob {
    struct querier *qr;
    struct obs_http_req *req;
    struct evhttp_connection *evcon; /* NULL once the client went away (or none) */
    struct mtd_ql_expr *e;
    char *tenant;
    int range;
    int64_t start, end, step;
    int64_t deadline_ns;
    volatile int cancel;
    struct mtd_ql_opts o;
    struct mtd_ql_query *pq;
    struct mtd_ql_result *res;
    struct mtd_hist_source *hs;      /* native histograms for this query (freed after res) */
    struct obs_err err;
    int rc;
    int pending;                     /* in qr->pend (loop) */
    int stats;                       /* the request asked for "stats" */
    /* obs_mono_ns() at arrival, prepare start/end, evaluation start/end (for stats) */
    int64_t t_arrive, t_prep0, t_prep1, t_run0, t_run1;
    struct qjob *next;
    struct qjob *wprev, *wnext;      /* qr->watch (loop) */
};

static const struct obs_cfmap querier_map[] = {
    {"timeout", OBS_CFT_DURATION, "2m", offsetof(struct mtd_querier_cfg, timeout_ms),
     "maximum time one query may run (queue wait included)", NULL, NULL},
    {"lookback_delta", OBS_CFT_DURATION, "5m",
     offsetof(struct mtd_querier_cfg, lookback_delta_ms),
     "how far back an instant selector looks for the latest sample", NULL, NULL},
    {"max_samples", OBS_CFT_INT, "50000000", offsetof(struct mtd_querier_cfg, max_samples),
     "maximum samples one query may load or produce (422 above)", NULL, NULL},
    {"default_evaluation_interval", OBS_CFT_DURATION, "1m",
     offsetof(struct mtd_querier_cfg, default_evaluation_interval_ms),
     "subquery resolution when the query gives none", NULL, NULL},
    {"max_points", OBS_CFT_INT, "11000", offsetof(struct mtd_querier_cfg, max_points),
     "maximum points per series of a range query and steps of one subquery", NULL, NULL},
    {"max_concurrent", OBS_CFT_INT, "2", offsetof(struct mtd_querier_cfg, max_concurrent),
     "queries evaluated at once, one worker thread each (0 = on the loop thread)", NULL,
     NULL},
    {"max_queue_length", OBS_CFT_INT, "16", offsetof(struct mtd_querier_cfg, max_queue_length),
     "queries that may wait for a worker; more get 503", NULL, NULL},
    {"max_estimated_memory_per_query", OBS_CFT_BYTES, "0",
     offsetof(struct mtd_querier_cfg, max_estimated_memory),
     "estimated memory one query may use (0 = unlimited; 422 above)", NULL, NULL},
    {"max_regex_length", OBS_CFT_INT, "32768", offsetof(struct mtd_querier_cfg, max_regex_len),
     "longest regular expression a matcher may have (bytes; 400 above)", NULL, NULL},
    {NULL, 0, NULL, 0, NULL, NULL, NULL},
};

/* ---------------------------------------------------------------- JSON */
/*
 * fmt_value: byte-identical to mtd_ql_fmt_value() (shortest round-trip digits, Go 'f' -1
 * layout, exponent form below 1e-6 / from 1e21) without printf/strtod on the common path.
 * The 15-, 16- and 17-digit correctly rounded (half-even, as printf) decimals of |v| are
 * computed exactly with 128-bit integers; the first that reads back as v (checked exactly
 * with one IEEE division/multiplication when the decimal is below 2^53 -- Clinger's fast
 * path -- else with strtod) gives the digits. A decimal of at most 15 significant digits
 * that round-trips is unique, so the 15-digit rounding stripped of trailing zeros is the
 * shortest form whenever that has 15 digits or fewer.
 */
static const double pow10_dbl[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                     1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                     1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

static unsigned __int128 pow10_u128(int k)
{
    unsigned __int128 p = 1;
    while (k-- > 0)
        p *= 10;
    return p;
}

/* round_half_even(m * 2^e * 10^k) for the ranges used here (0 <= k <= 22 or -22 <= k < 0). */
static uint64_t scaled_round(uint64_t m, int e, int k, int round)
{
    unsigned __int128 q, r, half2, d;
    if (k >= 0) {
        unsigned __int128 p = (unsigned __int128)m * pow10_u128(k);
        if (e >= 0)
            return (uint64_t)(p << e);
        int s = -e;
        if (s >= 127)
            return 0;
        q = p >> s;
        r = p - (q << s);
        d = (unsigned __int128)1 << s;
    } else if (e >= 0) {
        unsigned __int128 x = (unsigned __int128)m << e;
        d = pow10_u128(-k);
        q = x / d;
        r = x % d;
    } else {
        d = pow10_u128(-k) << (-e);
        q = m / d;
        r = m % d;
    }
    half2 = r * 2;
    if (round && (half2 > d || (half2 == d && (q & 1))))
        q++;
    return (uint64_t)q;
}

/* Does n * 10^-k read back as a? */
static int reads_back(uint64_t n, int k, double a)
{
    if (n < (1ULL << 53) && k >= -22 && k <= 22)
        return (k >= 0 ? (double)n / pow10_dbl[k] : (double)n * pow10_dbl[-k]) == a;
    char s[48];
    snprintf(s, sizeof s, "%llue%d", (unsigned long long)n, -k);
    return strtod(s, NULL) == a;
}

/* Shortest digits of a in [1e-6, 1e21): digits into dig, count returned, *e10 = exponent of
 * the first digit. Returns 0 when out of the exact ranges (caller falls back). */
static int fast_digits(double a, char *dig, int *e10)
{
    int ex;
    double fr = frexp(a, &ex);
    uint64_t m = (uint64_t)ldexp(fr, 53);
    int e = ex - 53;
    int E = (int)floor(log10(a));
    static const uint64_t p10[18] = {1ULL, 10ULL, 100ULL, 1000ULL, 10000ULL, 100000ULL,
        1000000ULL, 10000000ULL, 100000000ULL, 1000000000ULL, 10000000000ULL,
        100000000000ULL, 1000000000000ULL, 10000000000000ULL, 100000000000000ULL,
        1000000000000000ULL, 10000000000000000ULL, 100000000000000000ULL};
    /* Fix E so that 10^E <= a < 10^(E+1): floor(a * 10^(16-E)) has exactly 17 digits. */
    for (int fix = 0;; fix++) {
        int k = 16 - E;
        if (k > 22 || k < -22 || fix > 3)
            return 0;
        uint64_t f = scaled_round(m, e, k, 0);
        if (f >= p10[17])
            E++;
        else if (f < p10[16])
            E--;
        else
            break;
    }
    uint64_t n = 0;
    int k = 0, p;
    for (p = 15; p <= 17; p++) {
        k = p - 1 - E;
        if (k > 22 || k < -22)
            return 0;
        n = scaled_round(m, e, k, 1);
        if (n >= p10[p]) { /* rounded up to 10^p: one digit more in the exponent */
            n /= 10;
            k--;
        }
        if (p == 17 || reads_back(n, k, a))
            break;
    }
    if (p > 17)
        p = 17;
    int nd = 0;
    char tmp[24];
    while (n > 0) {
        tmp[nd++] = (char)('0' + n % 10);
        n /= 10;
    }
    /* first digit exponent: n had nd digits, value = n * 10^-k */
    *e10 = nd - 1 - k;
    int z = 0;
    while (z < nd - 1 && tmp[z] == '0')
        z++;
    int out = 0;
    for (int i = nd - 1; i >= z; i--)
        dig[out++] = tmp[i];
    return out;
}

/* mtd_ql_fmt_value() equivalent; returns the length written into out (cap >= 64). */
static size_t fmt_value(char *out, size_t cap, double v)
{
    double a = fabs(v);
    char dig[24];
    int e10, nd;
    if (!isfinite(v) || a == 0 || a < 1e-6 || a >= 1e21 ||
        (nd = fast_digits(a, dig, &e10)) == 0) {
        int r = mtd_ql_fmt_value(out, cap, v);
        return r < 0 ? 0 : (size_t)r < cap ? (size_t)r : cap - 1;
    }
    size_t k = 0;
    if (v < 0)
        out[k++] = '-';
    if (e10 < 0) {
        out[k++] = '0';
        out[k++] = '.';
        for (int i = -1; i > e10; i--)
            out[k++] = '0';
        for (int i = 0; i < nd; i++)
            out[k++] = dig[i];
    } else {
        for (int i = 0; i <= e10; i++)
            out[k++] = i < nd ? dig[i] : '0';
        if (nd > e10 + 1) {
            out[k++] = '.';
            for (int i = e10 + 1; i < nd; i++)
                out[k++] = dig[i];
        }
    }
    out[k] = 0;
    return k;
}

/* Timestamp ms as Prometheus' JSON number of seconds ("1700000000", "1700000000.500",
 * "-0.250"): into out (>= 32 bytes), returns the length. */
static size_t fmt_ts(char *out, int64_t ms)
{
    char tmp[32];
    size_t n = 0, k = 0;
    uint64_t u = (uint64_t)ms;
    if (ms < 0) {
        out[k++] = '-';
        u = (uint64_t)(-(ms + 1)) + 1;
    }
    uint64_t sec = u / 1000;
    unsigned frac = (unsigned)(u % 1000);
    do {
        tmp[n++] = (char)('0' + sec % 10);
        sec /= 10;
    } while (sec > 0);
    while (n > 0)
        out[k++] = tmp[--n];
    if (frac != 0) { /* always three digits, as Prometheus' jsonutil.MarshalTimestamp */
        out[k++] = '.';
        out[k++] = (char)('0' + frac / 100);
        out[k++] = (char)('0' + frac / 10 % 10);
        out[k++] = (char)('0' + frac % 10);
    }
    return k;
}

int mtd_json_ts(struct obs_sbuf *b, int64_t ms)
{
    char t[32];
    return obs_sbuf_append(b, t, fmt_ts(t, ms));
}

/* [<ts>,"<value>"] in one append. */
static void json_point(struct obs_sbuf *b, int64_t t, double v)
{
    char buf[128];
    size_t k = 0;
    buf[k++] = '[';
    k += fmt_ts(buf + k, t);
    buf[k++] = ',';
    buf[k++] = '"';
    k += fmt_value(buf + k, sizeof buf - k - 3, v);
    buf[k++] = '"';
    buf[k++] = ']';
    obs_sbuf_append(b, buf, k);
}

static void json_metric(struct obs_sbuf *b, const struct mtd_ql_series *s)
{
    obs_sbuf_puts(b, "{\"metric\":{");
    for (size_t i = 0; i < s->nlabels; i++) {
        if (i)
            obs_sbuf_putc(b, ',');
        obs_sbuf_json_str(b, s->labels[i].name, strlen(s->labels[i].name));
        obs_sbuf_putc(b, ':');
        obs_sbuf_json_str(b, s->labels[i].value, strlen(s->labels[i].value));
    }
    obs_sbuf_puts(b, "},");
}

int mtd_ql_result_json(struct obs_sbuf *b, const struct mtd_ql_result *r)
{
    obs_sbuf_printf(b, "{\"resultType\":\"%s\",\"result\":", mtd_ql_type_name(r->type));
    switch (r->type) {
    case MTD_QL_SCALAR:
        json_point(b, r->t, r->scalar);
        break;
    case MTD_QL_STRING:
        obs_sbuf_putc(b, '[');
        mtd_json_ts(b, r->t);
        obs_sbuf_putc(b, ',');
        obs_sbuf_json_str(b, r->str, strlen(r->str));
        obs_sbuf_putc(b, ']');
        break;
    case MTD_QL_VECTOR:
        obs_sbuf_putc(b, '[');
        for (size_t i = 0; i < r->nseries; i++) {
            if (i)
                obs_sbuf_putc(b, ',');
            json_metric(b, &r->series[i]);
            obs_sbuf_puts(b, "\"value\":");
            json_point(b, r->t, r->series[i].pts[0].v);
            obs_sbuf_putc(b, '}');
        }
        obs_sbuf_putc(b, ']');
        break;
    case MTD_QL_MATRIX:
        obs_sbuf_putc(b, '[');
        for (size_t i = 0; i < r->nseries; i++) {
            if (i)
                obs_sbuf_putc(b, ',');
            json_metric(b, &r->series[i]);
            obs_sbuf_puts(b, "\"values\":[");
            for (size_t k = 0; k < r->series[i].npts; k++) {
                if (k)
                    obs_sbuf_putc(b, ',');
                json_point(b, r->series[i].pts[k].t, r->series[i].pts[k].v);
            }
            obs_sbuf_puts(b, "]}");
        }
        obs_sbuf_putc(b, ']');
        break;
    default:
        obs_sbuf_puts(b, "null");
        break;
    }
    obs_sbuf_putc(b, '}');
    return b->oom ? OBS_ENOMEM : 0;
}

static void json_annos(struct obs_sbuf *b, const struct mtd_ql_result *r)
{
    if (r->nwarnings > 0) {
        obs_sbuf_puts(b, ",\"warnings\":[");
        for (int i = 0; i < r->nwarnings; i++) {
            if (i)
                obs_sbuf_putc(b, ',');
            obs_sbuf_json_str(b, r->warnings[i], strlen(r->warnings[i]));
        }
        obs_sbuf_putc(b, ']');
    }
    if (r->ninfos > 0) {
        obs_sbuf_puts(b, ",\"infos\":[");
        for (int i = 0; i < r->ninfos; i++) {
            const char *m = r->warnings[r->nwarnings + i];
            if (i)
                obs_sbuf_putc(b, ',');
            obs_sbuf_json_str(b, m, strlen(m));
        }
        obs_sbuf_putc(b, ']');
    }
}

/* ---------------------------------------------------------------- parameters */
/*
 * Go's strconv.ParseFloat accepts what strtod accepts minus leading/trailing space, hex
 * mantissas without a 'p' exponent and "nan(...)"; a value that overflows is an error (an
 * underflow to 0 is not).
 */
static int go_parse_float(const char *s, double *out)
{
    if (s == NULL || *s == '\0' || isspace((unsigned char)*s))
        return OBS_EINVAL;
    const char *d = s + (*s == '+' || *s == '-');
    if (d[0] == '0' && (d[1] == 'x' || d[1] == 'X') && strpbrk(d, "pP") == NULL)
        return OBS_EINVAL;
    if (strchr(s, '(') != NULL)
        return OBS_EINVAL;
    char *end;
    errno = 0;
    double f = strtod(s, &end);
    if (end == s || *end != '\0')
        return OBS_EINVAL;
    if (errno == ERANGE && isinf(f))
        return OBS_EINVAL;
    *out = f;
    return 0;
}

/* Go's float64 -> int64 conversion on amd64: out of range and NaN give INT64_MIN. */
static int64_t go_f2i(double x)
{
    if (!(x >= -9223372036854775808.0 && x < 9223372036854775808.0))
        return INT64_MIN;
    return (int64_t)x;
}

int mtd_prom_time_parse(const char *s, int engine, int64_t *out_ms)
{
    double f;
    int64_t sec, nsec;
    if (go_parse_float(s, &f) == 0) {
        /* time.Unix(int64(s), int64(round(frac*1000)/1000 * 1e9)) */
        double ip, frac = modf(f, &ip);
        if (isinf(f))
            frac = NAN; /* Go's math.Modf(±Inf) = ±Inf, NaN */
        frac = round(frac * 1000) / 1000;
        sec = go_f2i(ip);
        nsec = go_f2i(frac * 1e9);
        if (nsec < 0 || nsec >= 1000000000) { /* time.Unix normalises (wrapping) */
            int64_t n = nsec / 1000000000;
            sec = (int64_t)((uint64_t)sec + (uint64_t)n);
            nsec -= n * 1000000000;
            if (nsec < 0) {
                nsec += 1000000000;
                sec = (int64_t)((uint64_t)sec - 1);
            }
        }
    } else if (s != NULL && strcmp(s, "-292273086-05-16T16:47:06Z") == 0) {
        /* Prometheus' own formatted minTime/maxTime, which Go's parser cannot read */
        sec = INT64_MIN / 1000 + 62135596801LL;
        nsec = 0;
    } else if (s != NULL && strcmp(s, "292277025-08-18T07:12:54.999999999Z") == 0) {
        sec = INT64_MAX / 1000 - 62135596801LL;
        nsec = 999999999;
    } else {
        int64_t ms;
        /* RFC3339: a 'T' between date and time (never a number strtod would take) */
        if (s == NULL || !isdigit((unsigned char)*s) || strchr(s, 'T') == NULL ||
            obs_time_parse_ms(s, &ms) != 0)
            return OBS_EINVAL;
        *out_ms = ms;
        return 0;
    }
    if (engine) { /* t.UnixNano() / 1e6, int64 arithmetic wrapping as Go's */
        uint64_t un = (uint64_t)sec * 1000000000u + (uint64_t)nsec;
        *out_ms = (int64_t)un / 1000000;
    } else { /* t.Unix()*1000 + t.Nanosecond()/1e6 */
        *out_ms = (int64_t)((uint64_t)sec * 1000u + (uint64_t)(nsec / 1000000));
    }
    return 0;
}

int mtd_prom_duration_parse(const char *s, int64_t *out_ns)
{
    double f;
    if (go_parse_float(s, &f) == 0) {
        double ns = f * 1e9;
        if (ns > 9223372036854775807.0 || ns < -9223372036854775808.0)
            return OBS_ERANGE;
        *out_ns = go_f2i(ns);
        return 0;
    }
    int64_t ms;
    /* model.ParseDuration: units only, no sign, no fraction */
    if (s == NULL || !isdigit((unsigned char)*s) || strspn(s, "0123456789ywdhms") != strlen(s) ||
        obs_duration_parse_ms(s, &ms) != 0)
        return OBS_EINVAL;
    if (ms > INT64_MAX / 1000000)
        return OBS_EINVAL;
    *out_ns = ms * 1000000;
    return 0;
}

/* Reply Prometheus' duration parameter error for rc from mtd_prom_duration_parse. */
static void reply_duration_error(struct obs_http_req *r, const char *name, const char *v,
                                 int rc)
{
    obs_http_reply_prom_error(r, 400, "bad_data", "invalid parameter \"%s\": cannot parse \"%s\" "
                              "to a valid duration%s", name, v,
                              rc == OBS_ERANGE ? ". It overflows int64" : "");
}

/* ---------------------------------------------------------------- options */
void mtd_querier_opts(struct obs_ctx *ctx, int64_t timeout_ms, struct mtd_ql_opts *o)
{
    struct mtd_app *app = mtd_app_of(ctx);
    struct querier *qr = app ? app->querier : NULL;
    memset(o, 0, sizeof(*o));
    int64_t to = 2 * 60 * 1000;
    if (qr) {
        o->lookback_ms = qr->cfg.lookback_delta_ms;
        o->default_step_ms = qr->cfg.default_evaluation_interval_ms;
        o->max_samples = qr->cfg.max_samples > 0 ? (size_t)qr->cfg.max_samples : 0;
        o->max_memory_bytes =
            qr->cfg.max_estimated_memory > 0 ? (size_t)qr->cfg.max_estimated_memory : 0;
        o->max_subquery_points = qr->cfg.max_points > 0 ? qr->cfg.max_points : 0;
        to = qr->cfg.timeout_ms;
    }
    if (app && app->limits.max_fetched_series_per_query > 0)
        o->max_series = (size_t)app->limits.max_fetched_series_per_query;
    if (timeout_ms > 0 && (to <= 0 || timeout_ms < to))
        to = timeout_ms;
    if (to > 0)
        o->deadline_ns = obs_mono_ns() + to * 1000000LL;
}

/* Mimir's advice text after a limit's error id. */
static const char *mimir_advice(const char *msg, const char **flag)
{
    static const struct {
        const char *id, *flag;
    } ids[] = {
        {"(err-mimir-max-series-per-query)", "querier.max-fetched-series-per-query"},
        {"(err-mimir-max-estimated-memory-consumption-per-query)",
         "querier.max-estimated-memory-consumption-per-query"},
    };
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++)
        if (strstr(msg, ids[i].id)) {
            *flag = ids[i].flag;
            return ". Consider reducing the time range and/or number of series selected by the "
                   "query. One way to reduce the number of selected series is to add more label "
                   "matchers to the query. Otherwise, to adjust the related per-tenant limit, "
                   "configure -";
        }
    return NULL;
}

static void reply_exec_error(struct obs_http_req *r, int rc, const struct obs_err *err)
{
    const char *flag = NULL, *advice;
    if (rc == MTD_QL_ETIMEOUT)
        obs_http_reply_prom_error(r, 503, "timeout", "%s", err->msg);
    else if (rc == MTD_QL_ECANCELED)
        obs_http_reply_prom_error(r, 499, "canceled", "%s", err->msg);
    else if (rc == OBS_ENOMEM)
        obs_http_reply_prom_error(r, 500, "internal", "out of memory");
    else if ((advice = mimir_advice(err->msg, &flag)) != NULL)
        obs_http_reply_prom_error(r, 422, "execution", "%s%s%s, or contact your service "
                                  "administrator.", err->msg, advice, flag);
    else
        obs_http_reply_prom_error(r, 422, "execution", "%s", err->msg);
}

/* Seconds between two obs_mono_ns() readings as a JSON number (0 when unknown). */
static void json_secs(struct obs_sbuf *b, int64_t from, int64_t to)
{
    double s = (from > 0 && to > from) ? (double)(to - from) / 1e9 : 0;
    char v[64];
    fmt_value(v, sizeof v, s);
    obs_sbuf_puts(b, v);
}

/*
 * Prometheus' "stats" object (util/stats QueryStats, rendered when the request has a
 * non-empty stats parameter): timings in seconds and sample counts. The timings are
 * measured here; the engine does not report the samples it loaded, so both sample counts
 * are the number of points in the result (what peakSamples is at least).
 */
static void json_stats(struct obs_sbuf *b, const struct mtd_ql_result *res,
                       const struct qjob *j)
{
    size_t pts = 0;
    if (res->type == MTD_QL_SCALAR || res->type == MTD_QL_STRING)
        pts = 1;
    else
        for (size_t i = 0; i < res->nseries; i++)
            pts += res->type == MTD_QL_MATRIX ? res->series[i].npts : 1;
    int64_t done = obs_mono_ns();
    obs_sbuf_puts(b, ",\"stats\":{\"timings\":{\"evalTotalTime\":");
    json_secs(b, j->t_prep0, j->t_run1);
    obs_sbuf_puts(b, ",\"resultSortTime\":0,\"queryPreparationTime\":");
    json_secs(b, j->t_prep0, j->t_prep1);
    obs_sbuf_puts(b, ",\"innerEvalTime\":");
    json_secs(b, j->t_run0, j->t_run1);
    obs_sbuf_puts(b, ",\"execQueueTime\":");
    json_secs(b, j->t_arrive, j->t_prep0);
    obs_sbuf_puts(b, ",\"execTotalTime\":");
    json_secs(b, j->t_arrive, done);
    obs_sbuf_printf(b, "},\"samples\":{\"totalQueryableSamples\":%zu,\"peakSamples\":%zu}}",
                    pts, pts);
}

static void reply_result(struct obs_http_req *r, const struct mtd_ql_result *res,
                         const struct qjob *stats)
{
    struct obs_sbuf b;
    obs_sbuf_init(&b);
    size_t guess = 256;
    if (res->type == MTD_QL_VECTOR || res->type == MTD_QL_MATRIX)
        for (size_t i = 0; i < res->nseries; i++)
            guess += 64 + res->series[i].nlabels * 32 +
                     (res->type == MTD_QL_MATRIX ? res->series[i].npts * 32 : 40);
    if (obs_sbuf_reserve(&b, guess) != 0) /* a guess only: the appends below decide */
        b.oom = 0;
    obs_sbuf_puts(&b, "{\"status\":\"success\",\"data\":");
    mtd_ql_result_json(&b, res);
    if (stats) { /* inside "data", after "result" */
        b.len--;
        json_stats(&b, res, stats);
        obs_sbuf_putc(&b, '}');
    }
    json_annos(&b, res);
    obs_sbuf_putc(&b, '}');
    if (b.oom) {
        obs_sbuf_deinit(&b);
        obs_http_reply_prom_error(r, 500, "internal", "out of memory");
        return;
    }
    obs_http_reply_sbuf(r, 200, "application/json", &b);
    obs_sbuf_deinit(&b);
}

/* Common parameters; on error the reply is sent and -1 returned. */
static int parse_common(struct querier *qr, struct obs_http_req *r, struct mtd_ql_expr **e,
                        int64_t *timeout_ms, int range)
{
    const char *query = obs_http_req_param(r, "query");
    const char *to = obs_http_req_param(r, "timeout");
    *timeout_ms = 0;
    if (to && *to) {
        int64_t ns;
        int trc = mtd_prom_duration_parse(to, &ns);
        if (trc != 0) {
            reply_duration_error(r, "timeout", to, trc);
            return -1;
        }
        /* a timeout of zero or less has passed before the query starts (-1: see below) */
        *timeout_ms = ns <= 0 ? -1 : ns < 1000000 ? 1 : ns / 1000000;
    }
    if (!query || !*query) {
        /* Prometheus 2.x names the parameter for instant queries only */
        obs_http_reply_prom_error(r, 400, "bad_data", "%s1:1: parse error: no expression found "
                                  "in input", range ? "" : "invalid parameter \"query\": ");
        return -1;
    }
    struct obs_err err = {0};
    size_t maxre = qr && qr->cfg.max_regex_len > 0 ? (size_t)qr->cfg.max_regex_len : 0;
    int rc = mtd_ql_parse_ex(query, maxre, e, &err);
    if (rc == OBS_ENOMEM) {
        obs_http_reply_prom_error(r, 500, "internal", "out of memory");
        return -1;
    }
    if (rc < 0) {
        /* Prometheus 2.x names the parameter for instant queries only */
        obs_http_reply_prom_error(r, 400, "bad_data", "%s%s",
                                  range ? "" : "invalid parameter \"query\": ", err.msg);
        return -1;
    }
    if (*timeout_ms < 0) { /* Prometheus' context expires before the query is queued */
        mtd_ql_expr_free(*e);
        *e = NULL;
        obs_http_reply_prom_error(r, 503, "timeout", "query timed out in query queue");
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- jobs */
/* The libevent request, used only to watch for the client closing the connection. */
static struct evhttp_request *req_evhttp(struct obs_http_req *r)
{
    return obs_http_req_evrequest(r);
}

static void job_on_close(struct evhttp_connection *evcon, void *arg)
{
    (void)evcon;
    struct qjob *j = arg;
    j->evcon = NULL;
    __atomic_store_n(&j->cancel, 1, __ATOMIC_RELAXED);
}

static void unwatch(struct qjob *j)
{
    struct querier *qr = j->qr;
    if (j->wprev)
        j->wprev->wnext = j->wnext;
    else if (qr->watch == j)
        qr->watch = j->wnext;
    if (j->wnext)
        j->wnext->wprev = j->wprev;
    j->wprev = j->wnext = NULL;
}

static void job_free(struct qjob *j)
{
    unwatch(j);
    if (j->evcon)
        evhttp_connection_set_closecb(j->evcon, NULL, NULL);
    mtd_ql_query_free(j->pq);
    mtd_ql_result_free(j->res);
    mtd_hist_source_free(j->hs);
    mtd_ql_expr_free(j->e);
    obs_free(j->tenant);
    obs_free(j);
}

/* Send the job's reply (the request is freed by it) and free the job. */
static void job_finish(struct qjob *j)
{
    struct obs_http_req *r = j->req;
    if (j->evcon) {
        evhttp_connection_set_closecb(j->evcon, NULL, NULL);
        j->evcon = NULL;
    }
    mtd_storage_merge_annotate(mtd_app_of(j->qr->ctx)->storage, j->rc < 0 ? NULL : j->res);
    if (j->rc < 0)
        reply_exec_error(r, j->rc, &j->err);
    else
        reply_result(r, j->res, j->stats ? j : NULL);
    job_free(j);
}

static void *worker_main(void *arg)
{
    struct querier *qr = arg;
    for (;;) {
        pthread_mutex_lock(&qr->mu);
        while (!qr->ready && !qr->quit)
            pthread_cond_wait(&qr->cv, &qr->mu);
        if (!qr->ready) {
            pthread_mutex_unlock(&qr->mu);
            return NULL;
        }
        struct qjob *j = qr->ready;
        qr->ready = j->next;
        if (!qr->ready)
            qr->ready_tail = NULL;
        pthread_mutex_unlock(&qr->mu);
        struct mtd_ql_query *pq = j->pq;
        j->pq = NULL;
        j->t_run0 = obs_mono_ns();
        j->rc = mtd_ql_run(pq, &j->res, &j->err);
        j->t_run1 = obs_mono_ns();
        if (obs_chan_send(qr->done, j) != 0) {
            /* Cannot hand it back: keep the slot (leak the job) rather than touch the loop. */
            obs_log_error("querier: cannot return a finished query to the loop");
        }
    }
}

/* Prepare on the loop, then evaluate on a worker (or right here without workers). */
static void job_start(struct querier *qr, struct qjob *j)
{
    struct mtd_app *app = mtd_app_of(qr->ctx);
    if (__atomic_load_n(&j->cancel, __ATOMIC_RELAXED)) {
        j->rc = MTD_QL_ECANCELED;
        obs_err_set(&j->err, j->rc, "query was canceled before it started");
        job_finish(j);
        return;
    }
    if (j->deadline_ns && obs_mono_ns() > j->deadline_ns) {
        j->rc = MTD_QL_ETIMEOUT;
        obs_err_set(&j->err, j->rc, "query timed out in query queue");
        job_finish(j);
        return;
    }
    if (!app->storage) {
        j->rc = OBS_EINVAL;
        obs_err_set(&j->err, j->rc, "no storage available");
        job_finish(j);
        return;
    }
    j->t_prep0 = obs_mono_ns();
    j->rc = mtd_ql_prepare(j->e, app->storage, j->tenant, j->range, j->start, j->end, j->step,
                           &j->o, &j->pq, &j->err);
    j->t_prep1 = obs_mono_ns();
    if (j->rc < 0 || qr->nth == 0) {
        if (j->rc == 0) {
            struct mtd_ql_query *pq = j->pq;
            j->pq = NULL;
            j->t_run0 = obs_mono_ns();
            j->rc = mtd_ql_run(pq, &j->res, &j->err);
            j->t_run1 = obs_mono_ns();
        }
        job_finish(j);
        return;
    }
    qr->active++;
    j->next = NULL;
    pthread_mutex_lock(&qr->mu);
    if (qr->ready_tail)
        qr->ready_tail->next = j;
    else
        qr->ready = j;
    qr->ready_tail = j;
    pthread_cond_signal(&qr->cv);
    pthread_mutex_unlock(&qr->mu);
}

/* evhttp does not read from a connection while its request is being handled, so it cannot
 * see the client leave; peek at the socket instead: EOF or an error means gone. */
static int client_gone(struct qjob *j)
{
    if (!j->evcon)
        return 1;
    struct bufferevent *bev = evhttp_connection_get_bufferevent(j->evcon);
    evutil_socket_t fd = bev ? bufferevent_getfd(bev) : -1;
    if (fd < 0)
        return 0;
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0)
        return 1;
    return n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
}

static void drop_pending(struct querier *qr, struct qjob *j)
{
    struct qjob **pp = &qr->pend, *prev = NULL;
    while (*pp && *pp != j) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    if (!*pp)
        return;
    *pp = j->next;
    if (qr->pend_tail == j)
        qr->pend_tail = prev;
    qr->npend--;
    j->pending = 0;
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct querier *qr = arg;
    struct qjob *j = qr->watch;
    while (j) {
        struct qjob *nx = j->wnext;
        if (client_gone(j)) { /* also after job_on_close (evcon NULL) */
            __atomic_store_n(&j->cancel, 1, __ATOMIC_RELAXED);
            unwatch(j);
            if (j->pending) {
                /* Free its queue slot now; the reply goes nowhere. */
                drop_pending(qr, j);
                j->rc = MTD_QL_ECANCELED;
                obs_err_set(&j->err, j->rc, "query was canceled in the query queue");
                job_finish(j);
            }
        }
        j = nx;
    }
}

static void start_pending(struct querier *qr)
{
    while (!qr->stopping && qr->pend && qr->active < qr->nth) {
        struct qjob *j = qr->pend;
        qr->pend = j->next;
        if (!qr->pend)
            qr->pend_tail = NULL;
        qr->npend--;
        j->pending = 0;
        job_start(qr, j);
    }
}

static void on_done(void *msg, void *arg)
{
    struct querier *qr = arg;
    struct qjob *j = msg;
    qr->active--;
    if (qr->stopping) {
        job_free(j); /* the HTTP server may be gone: no reply at shutdown */
        return;
    }
    job_finish(j);
    start_pending(qr);
}

/* Admit a parsed query: run it, queue it, or refuse it (503). Takes e. */
static void submit(struct querier *qr, struct obs_http_req *r, struct mtd_ql_expr *e,
                   int range, int64_t start, int64_t end, int64_t step, int64_t timeout_ms)
{
    if (qr->nth > 0 && qr->active >= qr->nth && qr->npend >= qr->cfg.max_queue_length) {
        mtd_ql_expr_free(e);
        obs_http_reply_prom_error(r, 503, "unavailable", "too many outstanding requests: the "
                                  "query queue is full (max_concurrent %d, max_queue_length "
                                  "%lld); try again later", qr->nth,
                                  (long long)qr->cfg.max_queue_length);
        return;
    }
    struct qjob *j = obs_calloc(1, sizeof(*j));
    const char *tenant = obs_http_req_tenant(r, "anonymous");
    if (j)
        j->tenant = obs_strdup(tenant);
    if (!j || !j->tenant) {
        obs_free(j);
        mtd_ql_expr_free(e);
        obs_http_reply_prom_error(r, 500, "internal", "out of memory");
        return;
    }
    j->qr = qr;
    j->req = r;
    j->e = e;
    j->t_arrive = obs_mono_ns();
    const char *sp = obs_http_req_param(r, "stats");
    j->stats = sp && *sp;
    j->range = range;
    j->start = start;
    j->end = end;
    j->step = step;
    mtd_querier_opts(qr->ctx, timeout_ms, &j->o);
    j->deadline_ns = j->o.deadline_ns;
    /* native histogram samples come from the storage through a per-query source */
    j->hs = mtd_hist_source_new(mtd_app_of(qr->ctx)->storage);
    if (j->hs) {
        j->o.hist_select = mtd_hist_source_select;
        j->o.hist_ctx = j->hs;
    }
    if (qr->nth > 0) {
        j->o.cancel = &j->cancel;
        struct evhttp_request *ev = req_evhttp(r);
        j->evcon = ev ? evhttp_request_get_connection(ev) : NULL;
        if (j->evcon) {
            evhttp_connection_set_closecb(j->evcon, job_on_close, j);
            j->wnext = qr->watch;
            if (qr->watch)
                qr->watch->wprev = j;
            qr->watch = j;
        }
        obs_http_req_defer(r);
    }
    if (qr->nth == 0 || qr->active < qr->nth) {
        job_start(qr, j);
        return;
    }
    j->next = NULL;
    if (qr->pend_tail)
        qr->pend_tail->next = j;
    else
        qr->pend = j;
    qr->pend_tail = j;
    qr->npend++;
    j->pending = 1;
}

/* ---------------------------------------------------------------- handlers */
static void h_query(struct obs_http_req *r, void *arg)
{
    struct querier *qr = arg;
    int64_t t = obs_now_ms();
    const char *ts = obs_http_req_param(r, "time");
    if (ts && *ts && mtd_prom_time_parse(ts, 1, &t) != 0) {
        obs_http_reply_prom_error(r, 400, "bad_data", "invalid parameter \"time\": Invalid time "
                                  "value for 'time': cannot parse \"%s\" to a valid timestamp",
                                  ts);
        return;
    }
    struct mtd_ql_expr *e;
    int64_t timeout;
    if (parse_common(qr, r, &e, &timeout, 0) < 0)
        return;
    submit(qr, r, e, 0, t, t, 0, timeout);
}

static void h_query_range(struct obs_http_req *r, void *arg)
{
    struct querier *qr = arg;
    const char *names[2] = {"start", "end"};
    int64_t v[2];
    for (int i = 0; i < 2; i++) {
        const char *s = obs_http_req_param(r, names[i]);
        if (!s || !*s || mtd_prom_time_parse(s, 1, &v[i]) != 0) {
            obs_http_reply_prom_error(r, 400, "bad_data", "invalid parameter \"%s\": cannot "
                                      "parse \"%s\" to a valid timestamp", names[i],
                                      s ? s : "");
            return;
        }
    }
    if (v[1] < v[0]) {
        obs_http_reply_prom_error(r, 400, "bad_data", "invalid parameter \"end\": end "
                                  "timestamp must not be before start time");
        return;
    }
    const char *ss = obs_http_req_param(r, "step");
    int64_t step_ns = 0;
    int src = mtd_prom_duration_parse(ss ? ss : "", &step_ns);
    if (src != 0) {
        reply_duration_error(r, "step", ss ? ss : "", src);
        return;
    }
    /* Prometheus checks the step in ns, evaluates in ms (a step under 1ms makes its engine
     * divide by zero: 422 "runtime error"; refused here as a zero step). */
    int64_t step = step_ns / 1000000;
    if (step <= 0) {
        obs_http_reply_prom_error(r, 400, "bad_data", "invalid parameter \"step\": zero or "
                                  "negative query resolution step widths are not accepted. "
                                  "Try a positive integer");
        return;
    }
    /* end.Sub(start) / step in ns (Sub saturates) */
    __int128 span_ns = ((__int128)v[1] - v[0]) * 1000000;
    if (span_ns > INT64_MAX)
        span_ns = INT64_MAX;
    if (qr->cfg.max_points > 0 && (int64_t)(span_ns / step_ns) > qr->cfg.max_points) {
        char lim[32], raw[32];
        int n = snprintf(raw, sizeof(raw), "%lld", (long long)qr->cfg.max_points);
        size_t o = 0;
        for (int i = 0; i < n; i++) {
            if (i > 0 && (n - i) % 3 == 0)
                lim[o++] = ',';
            lim[o++] = raw[i];
        }
        lim[o] = 0;
        obs_http_reply_prom_error(r, 400, "bad_data", "exceeded maximum resolution of %s "
                                  "points per timeseries. Try decreasing the query resolution "
                                  "(?step=XX)", lim);
        return;
    }
    struct mtd_ql_expr *e;
    int64_t timeout;
    if (parse_common(qr, r, &e, &timeout, 1) < 0)
        return;
    enum mtd_ql_vtype t = mtd_ql_expr_type(e);
    if (t != MTD_QL_SCALAR && t != MTD_QL_VECTOR) {
        mtd_ql_expr_free(e);
        obs_http_reply_prom_error(r, 400, "bad_data", "invalid "
                                  "expression type \"%s\" for range query, must be Scalar or "
                                  "instant Vector",
                                  t == MTD_QL_MATRIX ? "range vector" : mtd_ql_type_name(t));
        return;
    }
    submit(qr, r, e, 1, v[0], v[1], step, timeout);
}

static void stop_workers(struct querier *qr)
{
    if (qr->nth == 0)
        return;
    pthread_mutex_lock(&qr->mu);
    qr->quit = 1;
    pthread_cond_broadcast(&qr->cv);
    pthread_mutex_unlock(&qr->mu);
    for (int i = 0; i < qr->nth; i++)
        pthread_join(qr->th[i], NULL);
    qr->nth = 0;
}

int mtd_querier_init(struct obs_ctx *ctx, struct obs_err *err)
{
    struct mtd_app *app = mtd_app_of(ctx);
    struct querier *qr = obs_calloc(1, sizeof(*qr));
    if (!qr)
        return obs_err_set(err, OBS_ENOMEM, "out of memory");
    qr->ctx = ctx;
    int rc = obs_cf_bind(obs_cf_get(ctx->cfg, "querier"), querier_map, &qr->cfg, err);
    if (rc < 0) {
        obs_free(qr);
        return rc;
    }
    if (qr->cfg.max_concurrent < 0 || qr->cfg.max_concurrent > MAX_WORKERS ||
        qr->cfg.max_queue_length < 0) {
        obs_cf_unbind(querier_map, &qr->cfg);
        obs_free(qr);
        return obs_err_set(err, OBS_EINVAL, "querier: max_concurrent must be 0..%d and "
                           "max_queue_length >= 0", MAX_WORKERS);
    }
    pthread_mutex_init(&qr->mu, NULL);
    pthread_cond_init(&qr->cv, NULL);
    if (qr->cfg.max_concurrent > 0) {
        qr->done = obs_chan_new(ctx->base, on_done, qr);
        for (int i = 0; qr->done && i < qr->cfg.max_concurrent; i++) {
            if (pthread_create(&qr->th[i], NULL, worker_main, qr) != 0)
                break;
            qr->nth++;
        }
        if (qr->nth == 0)
            obs_clog_warn("querier", "no worker threads; queries run on the loop thread");
        qr->tick = event_new(ctx->base, -1, EV_PERSIST, on_tick, qr);
        struct timeval tv = {0, 100 * 1000};
        if (qr->tick)
            event_add(qr->tick, &tv);
    }
    app->querier = qr;
    mtd_storage_merge_install(ctx); /* head + store-gateway blocks (storage_merge.c) */
    /* Prometheus (Go) HTTP behaviour: forms, strict methods, JSON escapes (obs_http.h) */
    const unsigned go = OBS_HTTP_GO_FORM | OBS_HTTP_STRICT_METHODS | OBS_HTTP_GO_JSON;
    rc = obs_http_route_opts(ctx->http, "GET,POST", "/api/v1/query", 0, go, h_query, qr);
    rc |= obs_http_route_opts(ctx->http, "GET,POST", "/api/v1/query_range", 0, go,
                              h_query_range, qr);
    /* Mimir serves the same API under its prefix. */
    rc |= obs_http_route_opts(ctx->http, "GET,POST", "/prometheus/api/v1/query", 0,
                              go, h_query, qr);
    rc |= obs_http_route_opts(ctx->http, "GET,POST", "/prometheus/api/v1/query_range", 0,
                              go, h_query_range, qr);
    if (rc)
        return obs_err_set(err, OBS_ENOMEM, "querier: cannot register routes");
    obs_clog_info("querier", "PromQL API ready (timeout %lldms, lookback %lldms, %d workers, "
                  "queue %lld)", (long long)qr->cfg.timeout_ms,
                  (long long)qr->cfg.lookback_delta_ms, qr->nth,
                  (long long)qr->cfg.max_queue_length);
    return 0;
}

void mtd_querier_stop(struct obs_ctx *ctx)
{
    struct mtd_app *app = mtd_app_of(ctx);
    if (!app || !app->querier)
        return;
    struct querier *qr = app->querier;
    qr->stopping = 1;
    if (qr->tick)
        event_free(qr->tick);
    qr->tick = NULL;
    /* Running queries stop at their next deadline check. */
    for (struct qjob *j = qr->ready; j; j = j->next)
        __atomic_store_n(&j->cancel, 1, __ATOMIC_RELAXED);
    stop_workers(qr);
    /* Prepared jobs no worker took, then finished ones still in the channel. */
    while (qr->ready) {
        struct qjob *j = qr->ready;
        qr->ready = j->next;
        job_free(j);
    }
    if (qr->done)
        obs_chan_free(qr->done); /* on_done frees without replying (stopping) */
    while (qr->pend) {
        struct qjob *j = qr->pend;
        qr->pend = j->next;
        job_free(j);
    }
    pthread_cond_destroy(&qr->cv);
    pthread_mutex_destroy(&qr->mu);
    obs_cf_unbind(querier_map, &qr->cfg);
    obs_free(qr);
    app->querier = NULL;
}
