/*
 * querier.c -- logd's querier: Loki's HTTP query API over the in-memory store.
 *
 *   GET|POST /loki/api/v1/query_range  query, start, end, limit, direction, step
 *   GET|POST /loki/api/v1/query        query, time, limit, direction (metric queries)
 *   GET /loki/api/v1/labels, /loki/api/v1/label, /loki/api/v1/label/<name>/values
 *   GET /loki/api/v1/series            match[] (repeatable), start, end
 *   GET /loki/api/v1/index/stats       query, start, end
 *   GET /loki/api/v1/status/buildinfo
 * Success bodies are Loki's envelopes ({"status":"success","data":...}); errors are plain
 * text with status 400 ("parse error at line 1, col 5: ..."), as Loki answers.
 * Times are Unix ns, Unix seconds (float) or RFC3339. Handlers run synchronously on the loop.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <stdint.h>

#include "core/obs_mem.h"
#include "core/obs_time.h"
#include "http/obs_http.h"
#include "logd/engine.h"
#include "logd/logd.h"
#include "metrics/obs_metrics.h"

static const char *tenant_of(struct obs_http_req *r, struct lgd_app *app)
{
    return app->auth_enabled ? obs_http_req_tenant(r, NULL) : "fake";
}

/* Parse a time parameter; def when absent. Returns 0 or OBS_EINVAL. */
/* a - b clamped to the int64 range (default start times are derived from a client's end). */
static int64_t sub_sat(int64_t a, int64_t b)
{
    return a < INT64_MIN + b ? INT64_MIN : a - b;
}

static int time_param(struct obs_http_req *r, const char *name, int64_t def, int64_t *out)
{
    const char *v = obs_http_req_param(r, name);
    if (!v || !*v) {
        *out = def;
        return 0;
    }
    char *end;
    if (!strchr(v, '.') && !strchr(v, '-') && !strchr(v, ':')) {
        errno = 0;
        long long x = strtoll(v, &end, 10);
        if (*end == '\0') {
            /* Loki: up to 10 digits are seconds, more are nanoseconds. */
            if (errno == ERANGE || (strlen(v) <= 10 && x > INT64_MAX / 1000000000LL))
                return OBS_EINVAL; /* not representable as int64 nanoseconds */
            *out = strlen(v) <= 10 ? x * 1000000000LL : x;
            return *out > 4000000000000000000LL ? OBS_EINVAL : 0;
        }
    }
    int rc = obs_time_parse_ns(v, out);
    /* keep times within about +-126 years of 1970 so end - start cannot overflow */
    if (rc == 0 && (*out > 4000000000000000000LL || *out < -4000000000000000000LL))
        return OBS_EINVAL;
    return rc;
}

/* Step: float seconds or a duration. */
static int step_param(const char *v, int64_t *ns)
{
    char *end;
    double d = strtod(v, &end);
    if (end != v && *end == '\0') {
        if (!(d * 1e9 > -9.2e18 && d * 1e9 < 9.2e18)) /* NaN, Inf, or beyond int64 ns */
            return OBS_EINVAL;
        *ns = (int64_t)(d * 1e9);
        return 0;
    }
    size_t l = strlen(v);
    return lgd_duration_lex(v, l, ns) == l && l ? 0 : OBS_EINVAL;
}

static void stats_json(struct obs_sbuf *o, const struct lgd_qstats *st, int64_t exec_ns)
{
    double secs = (double)exec_ns / 1e9;
    if (secs <= 0)
        secs = 1e-9;
    obs_sbuf_printf(o,
                    ",\"stats\":{\"summary\":{\"bytesProcessedPerSecond\":%llu,"
                    "\"linesProcessedPerSecond\":%llu,\"totalBytesProcessed\":%llu,"
                    "\"totalLinesProcessed\":%llu,\"execTime\":%.6f,\"queueTime\":0,"
                    "\"subqueries\":0,\"totalEntriesReturned\":%llu,\"splits\":0,\"shards\":0},"
                    "\"querier\":{\"store\":{\"totalChunksRef\":0,\"totalChunksDownloaded\":0,"
                    "\"chunksDownloadTime\":0}},"
                    "\"ingester\":{\"totalReached\":1,\"totalChunksMatched\":%llu,"
                    "\"totalBatches\":1,\"totalLinesSent\":%llu}}",
                    (unsigned long long)((double)st->bytes / secs),
                    (unsigned long long)((double)st->lines / secs),
                    (unsigned long long)st->bytes, (unsigned long long)st->lines, secs,
                    (unsigned long long)st->returned, (unsigned long long)st->streams,
                    (unsigned long long)st->returned);
}

static void run_query(struct obs_http_req *r, struct obs_ctx *ctx, int instant)
{
    struct lgd_app *app = lgd_app(ctx);
    const char *tenant = tenant_of(r, app);
    if (!tenant) {
        obs_http_reply_text(r, 401, "no org id");
        return;
    }
    obs_mchild_add(app->m_queries, 1);
    const char *q = obs_http_req_param(r, "query");
    if (!q || !*q) {
        obs_http_reply_text(r, 400, "query parameter is required");
        return;
    }
    int64_t now = obs_now_ns(), start, end;
    if (instant) {
        if (time_param(r, "time", now, &end) != 0) {
            obs_http_reply_text(r, 400, "invalid time: %s", obs_http_req_param(r, "time"));
            return;
        }
        start = end;
    } else {
        if (time_param(r, "end", now, &end) != 0) {
            obs_http_reply_text(r, 400, "invalid end: %s", obs_http_req_param(r, "end"));
            return;
        }
        if (time_param(r, "start", sub_sat(end, 3600LL * 1000000000LL), &start) != 0) {
            obs_http_reply_text(r, 400, "invalid start: %s", obs_http_req_param(r, "start"));
            return;
        }
        if (end < start) {
            obs_http_reply_text(r, 400, "end timestamp must not be before or equal to start time");
            return;
        }
    }
    long long limit = 100;
    const char *lv = obs_http_req_param(r, "limit");
    if (lv && *lv) {
        char *e;
        limit = strtoll(lv, &e, 10);
        if (*e || limit <= 0) {
            obs_http_reply_text(r, 400, "limit must be a positive value");
            return;
        }
    }
    if (app->limits.max_entries_limit_per_query > 0 &&
        limit > app->limits.max_entries_limit_per_query) {
        obs_http_reply_text(r, 400, "max entries limit per query exceeded, limit > "
                                    "max_entries_limit_per_query (%lld > %lld)",
                            limit, (long long)app->limits.max_entries_limit_per_query);
        return;
    }
    int forward = 0;
    const char *dir = obs_http_req_param(r, "direction");
    if (dir && *dir) {
        if (strcasecmp(dir, "forward") == 0)
            forward = 1;
        else if (strcasecmp(dir, "backward") != 0) {
            obs_http_reply_text(r, 400, "invalid direction '%s'", dir);
            return;
        }
    }
    int64_t step = 0;
    const char *sv = obs_http_req_param(r, "step");
    if (!instant) {
        if (sv && *sv) {
            if (step_param(sv, &step) != 0) {
                obs_http_reply_text(r, 400, "invalid step: %s", sv);
                return;
            }
        } else {
            /* Loki's default: (end - start) / 250 rounded down to seconds, at least 1s. */
            int64_t s = (end - start) / 250 / 1000000000LL;
            step = (s < 1 ? 1 : s) * 1000000000LL;
        }
        if (step <= 0) {
            obs_http_reply_text(r, 400, "zero or negative query resolution step widths are not "
                                        "accepted. Try a positive integer");
            return;
        }
        if (app->limits.max_query_length_ms > 0 &&
            end - start > app->limits.max_query_length_ms * 1000000) {
            char b1[32], b2[32];
            obs_duration_format(b1, sizeof(b1), (end - start) / 1000000);
            obs_duration_format(b2, sizeof(b2), app->limits.max_query_length_ms);
            obs_http_reply_text(r, 400, "the query time range exceeds the limit "
                                        "(query length: %s, limit: %s)", b1, b2);
            return;
        }
    }
    struct lgd_expr *e = NULL;
    struct obs_err err;
    obs_err_clear(&err);
    if (lgd_logql_parse(q, &e, &err) != 0) {
        obs_http_reply_text(r, err.code == OBS_ENOMEM ? 500 : 400, "%s", err.msg);
        return;
    }
    struct lgd_tenant *t = app->store ? lgd_store_tenant(app->store, tenant, 0) : NULL;
    struct obs_sbuf out;
    obs_sbuf_init(&out);
    obs_sbuf_puts(&out, "{\"status\":\"success\",\"data\":{");
    struct lgd_qstats st;
    memset(&st, 0, sizeof(st));
    int64_t t0 = obs_mono_ns();
    int rc;
    if (lgd_expr_is_log(e)) {
        if (instant) {
            lgd_expr_free(e);
            obs_sbuf_deinit(&out);
            obs_http_reply_text(r, 400, "log queries are not supported as an instant query "
                                        "type, please change your query to a range query type");
            return;
        }
        rc = lgd_engine_logs(t, e, start, end, (size_t)limit, forward, &out, &st, &err);
    } else {
        struct lgd_qlimits lim = {(size_t)(app->limits.max_query_series > 0
                                               ? app->limits.max_query_series : 0),
                                  11000};
        rc = lgd_engine_metric(t, e, start, end, step, instant, &lim, &out, &st, &err);
    }
    lgd_expr_free(e);
    if (rc != 0) {
        obs_sbuf_deinit(&out);
        obs_http_reply_text(r, rc == OBS_ENOMEM ? 500 : 400, "%s", err.msg);
        return;
    }
    stats_json(&out, &st, obs_mono_ns() - t0);
    obs_sbuf_puts(&out, "}}");
    if (out.oom) {
        obs_sbuf_deinit(&out);
        obs_http_reply_text(r, 500, "out of memory");
        return;
    }
    obs_http_reply_sbuf(r, 200, "application/json; charset=utf-8", &out);
    obs_sbuf_deinit(&out);
}

static void h_query_range(struct obs_http_req *r, void *arg) { run_query(r, arg, 0); }
static void h_query(struct obs_http_req *r, void *arg) { run_query(r, arg, 1); }

static int str_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Streams of the tenant selected by match[] selectors (all when none) and [start, end].
 * Returns the count (or -1 with a reply already sent). *out obs_malloc'd. */
static long select_streams(struct obs_http_req *r, struct lgd_app *app, const char *param,
                           int many, struct lgd_stream ***out)
{
    *out = NULL;
    const char *tenant = tenant_of(r, app);
    if (!tenant) {
        obs_http_reply_text(r, 401, "no org id");
        return -1;
    }
    int64_t now = obs_now_ns(), start, end;
    if (time_param(r, "end", now, &end) != 0 ||
        time_param(r, "start", sub_sat(end, 6LL * 3600 * 1000000000LL), &start) != 0) {
        obs_http_reply_text(r, 400, "invalid start or end time");
        return -1;
    }
    struct lgd_tenant *t = app->store ? lgd_store_tenant(app->store, tenant, 0) : NULL;
    const char **sel = NULL;
    size_t nsel = 0;
    const char *one = NULL;
    if (many) {
        nsel = obs_http_req_params(r, param, &sel);
    } else {
        one = obs_http_req_param(r, param);
        if (one && *one) {
            sel = &one;
            nsel = 1;
        }
    }
    if (!t)
        return 0;
    struct lgd_stream **res = NULL;
    long nres = 0;
    if (nsel == 0) {
        nres = lgd_tenant_select(t, NULL, 0, start, end, &res);
        if (nres < 0) {
            obs_http_reply_text(r, 500, "out of memory");
            return -1;
        }
        *out = res;
        return nres;
    }
    /* Union of each selector's streams, deduplicated by id. */
    uint8_t *seen = obs_calloc(t->nstreams ? t->nstreams : 1, 1);
    res = obs_malloc((t->nstreams ? t->nstreams : 1) * sizeof(*res));
    if (!seen || !res) {
        obs_free(seen);
        obs_free(res);
        obs_http_reply_text(r, 500, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < nsel; i++) {
        struct lgd_expr *e = NULL;
        struct obs_err err;
        obs_err_clear(&err);
        if (lgd_logql_parse(sel[i], &e, &err) != 0 || !lgd_expr_is_log(e)) {
            if (e)
                obs_err_set(&err, OBS_EINVAL, "parse error : only log selectors are allowed "
                                              "here");
            lgd_expr_free(e);
            obs_free(seen);
            obs_free(res);
            obs_http_reply_text(r, 400, "%s", err.msg);
            return -1;
        }
        struct lgd_stream **part;
        long np = lgd_tenant_select(t, e->log.m, e->log.nm, start, end, &part);
        lgd_expr_free(e);
        for (long k = 0; k < np; k++)
            if (!seen[part[k]->id]) {
                seen[part[k]->id] = 1;
                res[nres++] = part[k];
            }
        obs_free(part);
    }
    obs_free(seen);
    *out = res;
    return nres;
}

static void reply_strings(struct obs_http_req *r, const char **v, size_t n)
{
    qsort(v, n, sizeof(*v), str_cmp);
    struct obs_sbuf o;
    obs_sbuf_init(&o);
    obs_sbuf_puts(&o, "{\"status\":\"success\",\"data\":[");
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        if (i && strcmp(v[i], v[i - 1]) == 0)
            continue;
        if (w++)
            obs_sbuf_putc(&o, ',');
        obs_sbuf_json_str(&o, v[i], strlen(v[i]));
    }
    obs_sbuf_puts(&o, "]}");
    if (o.oom)
        obs_http_reply_text(r, 500, "out of memory");
    else
        obs_http_reply_sbuf(r, 200, "application/json; charset=utf-8", &o);
    obs_sbuf_deinit(&o);
}

static void h_labels(struct obs_http_req *r, void *arg)
{
    struct lgd_app *app = lgd_app(arg);
    struct lgd_stream **s;
    long n = select_streams(r, app, "query", 0, &s);
    if (n < 0)
        return;
    size_t total = 0;
    for (long i = 0; i < n; i++)
        total += s[i]->nlabels;
    const char **v = obs_malloc((total ? total : 1) * sizeof(*v));
    if (!v) {
        obs_free(s);
        obs_http_reply_text(r, 500, "out of memory");
        return;
    }
    size_t k = 0;
    for (long i = 0; i < n; i++)
        for (size_t j = 0; j < s[i]->nlabels; j++)
            v[k++] = s[i]->labels[j].name;
    reply_strings(r, v, k);
    obs_free(v);
    obs_free(s);
}

static void h_label_values(struct obs_http_req *r, void *arg)
{
    struct lgd_app *app = lgd_app(arg);
    const char *rest = obs_http_req_rest(r);
    const char *slash = strchr(rest, '/');
    if (!slash || strcmp(slash, "/values") != 0 || slash == rest) {
        obs_http_reply_text(r, 404, "404 page not found");
        return;
    }
    char name[256];
    size_t nl = (size_t)(slash - rest);
    if (nl >= sizeof(name)) {
        obs_http_reply_text(r, 400, "label name too long");
        return;
    }
    memcpy(name, rest, nl);
    name[nl] = '\0';
    struct lgd_stream **s;
    long n = select_streams(r, app, "query", 0, &s);
    if (n < 0)
        return;
    const char **v = obs_malloc((n ? (size_t)n : 1) * sizeof(*v));
    if (!v) {
        obs_free(s);
        obs_http_reply_text(r, 500, "out of memory");
        return;
    }
    size_t k = 0;
    for (long i = 0; i < n; i++)
        for (size_t j = 0; j < s[i]->nlabels; j++)
            if (strcmp(s[i]->labels[j].name, name) == 0)
                v[k++] = s[i]->labels[j].value;
    reply_strings(r, v, k);
    obs_free(v);
    obs_free(s);
}

static int stream_cmp(const void *a, const void *b)
{
    return strcmp((*(struct lgd_stream *const *)a)->lstr, (*(struct lgd_stream *const *)b)->lstr);
}

static void h_series(struct obs_http_req *r, void *arg)
{
    struct lgd_app *app = lgd_app(arg);
    struct lgd_stream **s;
    long n = select_streams(r, app, "match[]", 1, &s);
    if (n < 0)
        return;
    if (n == 0) {
        /* Loki also accepts `match` without brackets. */
        obs_free(s);
        const char **alt;
        if (obs_http_req_params(r, "match", &alt) > 0) {
            n = select_streams(r, app, "match", 1, &s);
            if (n < 0)
                return;
        } else {
            s = NULL;
        }
    }
    if (n > 1)
        qsort(s, (size_t)n, sizeof(*s), stream_cmp);
    struct obs_sbuf o;
    obs_sbuf_init(&o);
    obs_sbuf_puts(&o, "{\"status\":\"success\",\"data\":[");
    for (long i = 0; i < n; i++) {
        obs_sbuf_puts(&o, i ? ",{" : "{");
        for (size_t j = 0; j < s[i]->nlabels; j++) {
            if (j)
                obs_sbuf_putc(&o, ',');
            obs_sbuf_json_str(&o, s[i]->labels[j].name, strlen(s[i]->labels[j].name));
            obs_sbuf_putc(&o, ':');
            obs_sbuf_json_str(&o, s[i]->labels[j].value, strlen(s[i]->labels[j].value));
        }
        obs_sbuf_putc(&o, '}');
    }
    obs_sbuf_puts(&o, "]}");
    obs_free(s);
    if (o.oom)
        obs_http_reply_text(r, 500, "out of memory");
    else
        obs_http_reply_sbuf(r, 200, "application/json; charset=utf-8", &o);
    obs_sbuf_deinit(&o);
}

static void h_index_stats(struct obs_http_req *r, void *arg)
{
    struct lgd_app *app = lgd_app(arg);
    struct lgd_stream **s;
    long n = select_streams(r, app, "query", 0, &s);
    if (n < 0)
        return;
    unsigned long long entries = 0, bytes = 0;
    for (long i = 0; i < n; i++) {
        entries += s[i]->n;
        bytes += s[i]->bytes;
    }
    obs_free(s);
    struct obs_sbuf o;
    obs_sbuf_init(&o);
    obs_sbuf_printf(&o, "{\"streams\":%ld,\"chunks\":%ld,\"bytes\":%llu,\"entries\":%llu}", n,
                    n, bytes, entries);
    obs_http_reply_sbuf(r, 200, "application/json; charset=utf-8", &o);
    obs_sbuf_deinit(&o);
}

static void h_buildinfo(struct obs_http_req *r, void *arg)
{
    struct obs_ctx *ctx = arg;
    struct obs_sbuf o;
    obs_sbuf_init(&o);
    obs_sbuf_printf(&o, "{\"version\":\"%s\",\"revision\":\"\",\"branch\":\"\","
                        "\"buildUser\":\"\",\"buildDate\":\"\",\"goVersion\":\"\"}",
                    ctx->version ? ctx->version : "");
    obs_http_reply_sbuf(r, 200, "application/json; charset=utf-8", &o);
    obs_sbuf_deinit(&o);
}

int lgd_querier_init(struct obs_ctx *ctx, struct obs_err *err)
{
    struct obs_http_server *h = ctx->http;
    int rc = 0;
    rc |= obs_http_route(h, "GET,POST", "/loki/api/v1/query_range", h_query_range, ctx);
    rc |= obs_http_route(h, "GET,POST", "/loki/api/v1/query", h_query, ctx);
    rc |= obs_http_route(h, "GET,POST", "/loki/api/v1/labels", h_labels, ctx);
    rc |= obs_http_route(h, "GET,POST", "/loki/api/v1/label", h_labels, ctx);
    rc |= obs_http_route(h, "GET,POST", "/loki/api/v1/label/*", h_label_values, ctx);
    rc |= obs_http_route(h, "GET,POST", "/loki/api/v1/series", h_series, ctx);
    rc |= obs_http_route(h, "GET,POST", "/loki/api/v1/index/stats", h_index_stats, ctx);
    rc |= obs_http_route(h, "GET", "/loki/api/v1/status/buildinfo", h_buildinfo, ctx);
    if (rc != 0)
        return obs_err_set(err, OBS_ENOMEM, "cannot register query routes");
    return 0;
}
