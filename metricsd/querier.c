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
 * 422 execution for evaluation errors, 503 timeout when the deadline passes.
 * Queries run synchronously on the loop thread, as storage.h requires; the deadline bounds
 * how long one query may hold the loop.
 */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "config/obs_cf.h"
#include "core/obs_log.h"
#include "core/obs_mem.h"
#include "core/obs_time.h"
#include "http/obs_http.h"
#include "metricsd/metricsd.h"
#include "metricsd/querier.h"
#include "metricsd/storage.h"

const char *const mtd_querier_deps[] = {"ingester", NULL};

struct querier {
    struct obs_ctx *ctx;
    struct mtd_querier_cfg cfg;
};

static const struct obs_cfmap querier_map[] = {
    {"timeout", OBS_CFT_DURATION, "2m", offsetof(struct mtd_querier_cfg, timeout_ms),
     "maximum time one query may run", NULL, NULL},
    {"lookback_delta", OBS_CFT_DURATION, "5m",
     offsetof(struct mtd_querier_cfg, lookback_delta_ms),
     "how far back an instant selector looks for the latest sample", NULL, NULL},
    {"max_samples", OBS_CFT_INT, "50000000", offsetof(struct mtd_querier_cfg, max_samples),
     "maximum samples one query may load", NULL, NULL},
    {"default_evaluation_interval", OBS_CFT_DURATION, "1m",
     offsetof(struct mtd_querier_cfg, default_evaluation_interval_ms),
     "subquery resolution when the query gives none", NULL, NULL},
    {"max_points", OBS_CFT_INT, "11000", offsetof(struct mtd_querier_cfg, max_points),
     "maximum points per series of a range query", NULL, NULL},
    {"max_concurrent", OBS_CFT_IGNORE, NULL, 0, "accepted; queries run on the loop", NULL,
     NULL},
    {NULL, 0, NULL, 0, NULL, NULL, NULL},
};

/* ---------------------------------------------------------------- JSON */
int mtd_json_ts(struct obs_sbuf *b, int64_t ms)
{
    const char *sign = "";
    uint64_t u = (uint64_t)ms;
    if (ms < 0) {
        sign = "-";
        u = (uint64_t)(-(ms + 1)) + 1;
    }
    uint64_t sec = u / 1000, frac = u % 1000;
    if (frac == 0)
        return obs_sbuf_printf(b, "%s%llu", sign, (unsigned long long)sec);
    char f[4];
    snprintf(f, sizeof(f), "%03u", (unsigned)frac);
    int n = 3;
    while (n > 0 && f[n - 1] == '0')
        f[--n] = 0;
    return obs_sbuf_printf(b, "%s%llu.%s", sign, (unsigned long long)sec, f);
}

static void json_point(struct obs_sbuf *b, int64_t t, double v)
{
    char num[64];
    obs_sbuf_putc(b, '[');
    mtd_json_ts(b, t);
    obs_sbuf_puts(b, ",\"");
    obs_fmt_float(num, sizeof(num), v);
    obs_sbuf_puts(b, num);
    obs_sbuf_puts(b, "\"]");
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

/* ---------------------------------------------------------------- handlers */
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
        to = qr->cfg.timeout_ms;
    }
    if (timeout_ms > 0 && (to <= 0 || timeout_ms < to))
        to = timeout_ms;
    if (to > 0)
        o->deadline_ns = obs_mono_ns() + to * 1000000LL;
}

static void reply_exec_error(struct obs_http_req *r, int rc, const struct obs_err *err)
{
    if (rc == MTD_QL_ETIMEOUT)
        obs_http_reply_prom_error(r, 503, "timeout", "%s", err->msg);
    else if (rc == OBS_ENOMEM)
        obs_http_reply_prom_error(r, 500, "internal", "out of memory");
    else
        obs_http_reply_prom_error(r, 422, "execution", "%s", err->msg);
}

static void reply_result(struct obs_http_req *r, const struct mtd_ql_result *res)
{
    struct obs_sbuf b;
    obs_sbuf_init(&b);
    obs_sbuf_puts(&b, "{\"status\":\"success\",\"data\":");
    mtd_ql_result_json(&b, res);
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
static int parse_common(struct obs_http_req *r, struct mtd_ql_expr **e, int64_t *timeout_ms)
{
    struct querier *qr = NULL;
    (void)qr;
    const char *query = obs_http_req_param(r, "query");
    const char *to = obs_http_req_param(r, "timeout");
    *timeout_ms = 0;
    if (to && *to && (obs_duration_parse_ms(to, timeout_ms) != 0 || *timeout_ms < 0)) {
        obs_http_reply_prom_error(r, 400, "bad_data", "invalid parameter \"timeout\": cannot "
                                  "parse \"%s\" to a valid duration", to);
        return -1;
    }
    if (!query || !*query) {
        obs_http_reply_prom_error(r, 400, "bad_data", "invalid parameter \"query\": 1:1: parse "
                                  "error: no expression found in input");
        return -1;
    }
    struct obs_err err = {0};
    int rc = mtd_ql_parse(query, e, &err);
    if (rc == OBS_ENOMEM) {
        obs_http_reply_prom_error(r, 500, "internal", "out of memory");
        return -1;
    }
    if (rc < 0) {
        obs_http_reply_prom_error(r, 400, "bad_data", "invalid parameter \"query\": %s",
                                  err.msg);
        return -1;
    }
    return 0;
}

static void h_query(struct obs_http_req *r, void *arg)
{
    struct querier *qr = arg;
    struct mtd_app *app = mtd_app_of(qr->ctx);
    int64_t t = obs_now_ms();
    const char *ts = obs_http_req_param(r, "time");
    if (ts && *ts && obs_time_parse_ms(ts, &t) != 0) {
        obs_http_reply_prom_error(r, 400, "bad_data", "invalid parameter \"time\": cannot parse "
                                  "\"%s\" to a valid timestamp", ts);
        return;
    }
    struct mtd_ql_expr *e;
    int64_t timeout;
    if (parse_common(r, &e, &timeout) < 0)
        return;
    if (!app->storage) {
        mtd_ql_expr_free(e);
        obs_http_reply_prom_error(r, 503, "unavailable", "no storage available");
        return;
    }
    struct mtd_ql_opts o;
    mtd_querier_opts(qr->ctx, timeout, &o);
    struct mtd_ql_result *res = NULL;
    struct obs_err err = {0};
    int rc = mtd_ql_exec_instant(e, app->storage, obs_http_req_tenant(r, "anonymous"), t, &o,
                                 &res, &err);
    mtd_ql_expr_free(e);
    if (rc < 0) {
        reply_exec_error(r, rc, &err);
        return;
    }
    reply_result(r, res);
    mtd_ql_result_free(res);
}

static void h_query_range(struct obs_http_req *r, void *arg)
{
    struct querier *qr = arg;
    struct mtd_app *app = mtd_app_of(qr->ctx);
    const char *names[2] = {"start", "end"};
    int64_t v[2];
    for (int i = 0; i < 2; i++) {
        const char *s = obs_http_req_param(r, names[i]);
        if (!s || !*s || obs_time_parse_ms(s, &v[i]) != 0) {
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
    int64_t step;
    if (!ss || !*ss || obs_duration_parse_ms(ss, &step) != 0) {
        obs_http_reply_prom_error(r, 400, "bad_data", "invalid parameter \"step\": cannot parse "
                                  "\"%s\" to a valid duration", ss ? ss : "");
        return;
    }
    if (step <= 0) {
        obs_http_reply_prom_error(r, 400, "bad_data", "invalid parameter \"step\": zero or "
                                  "negative query resolution step widths are not accepted. "
                                  "Try a positive integer");
        return;
    }
    if (qr->cfg.max_points > 0 && (v[1] - v[0]) / step > qr->cfg.max_points) {
        obs_http_reply_prom_error(r, 400, "bad_data", "exceeded maximum resolution of 11,000 "
                                  "points per timeseries. Try decreasing the query resolution "
                                  "(?step=XX)");
        return;
    }
    struct mtd_ql_expr *e;
    int64_t timeout;
    if (parse_common(r, &e, &timeout) < 0)
        return;
    enum mtd_ql_vtype t = mtd_ql_expr_type(e);
    if (t != MTD_QL_SCALAR && t != MTD_QL_VECTOR) {
        mtd_ql_expr_free(e);
        obs_http_reply_prom_error(r, 400, "bad_data", "invalid parameter \"query\": invalid "
                                  "expression type \"%s\" for range query, must be Scalar or "
                                  "instant Vector",
                                  t == MTD_QL_MATRIX ? "range vector" : mtd_ql_type_name(t));
        return;
    }
    if (!app->storage) {
        mtd_ql_expr_free(e);
        obs_http_reply_prom_error(r, 503, "unavailable", "no storage available");
        return;
    }
    struct mtd_ql_opts o;
    mtd_querier_opts(qr->ctx, timeout, &o);
    struct mtd_ql_result *res = NULL;
    struct obs_err err = {0};
    int rc = mtd_ql_exec_range(e, app->storage, obs_http_req_tenant(r, "anonymous"), v[0], v[1],
                               step, &o, &res, &err);
    mtd_ql_expr_free(e);
    if (rc < 0) {
        reply_exec_error(r, rc, &err);
        return;
    }
    reply_result(r, res);
    mtd_ql_result_free(res);
}

/* GET /api/v1/format_query?query=... (Prometheus: returns the query; we echo it parsed). */
static void h_parse_check(struct obs_http_req *r, void *arg)
{
    (void)arg;
    struct mtd_ql_expr *e;
    int64_t timeout;
    if (parse_common(r, &e, &timeout) < 0)
        return;
    mtd_ql_expr_free(e);
    const char *q = obs_http_req_param(r, "query");
    struct obs_sbuf b;
    obs_sbuf_init(&b);
    obs_sbuf_puts(&b, "{\"status\":\"success\",\"data\":");
    obs_sbuf_json_str(&b, q, strlen(q));
    obs_sbuf_putc(&b, '}');
    obs_http_reply_sbuf(r, 200, "application/json", &b);
    obs_sbuf_deinit(&b);
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
    app->querier = qr;
    rc = obs_http_route(ctx->http, "GET,POST", "/api/v1/query", h_query, qr);
    rc |= obs_http_route(ctx->http, "GET,POST", "/api/v1/query_range", h_query_range, qr);
    rc |= obs_http_route(ctx->http, "GET,POST", "/api/v1/format_query", h_parse_check, qr);
    /* Mimir serves the same API under its prefix. */
    rc |= obs_http_route(ctx->http, "GET,POST", "/prometheus/api/v1/query", h_query, qr);
    rc |= obs_http_route(ctx->http, "GET,POST", "/prometheus/api/v1/query_range",
                         h_query_range, qr);
    if (rc)
        return obs_err_set(err, OBS_ENOMEM, "querier: cannot register routes");
    obs_clog_info("querier", "PromQL API ready (timeout %lldms, lookback %lldms)",
                  (long long)qr->cfg.timeout_ms, (long long)qr->cfg.lookback_delta_ms);
    return 0;
}

void mtd_querier_stop(struct obs_ctx *ctx)
{
    struct mtd_app *app = mtd_app_of(ctx);
    if (!app || !app->querier)
        return;
    struct querier *qr = app->querier;
    obs_cf_unbind(querier_map, &qr->cfg);
    obs_free(qr);
    app->querier = NULL;
}
