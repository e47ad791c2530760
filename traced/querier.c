/*
 * querier.c -- traced querier: Tempo's HTTP query API over the ingester's store.
 *
 *   GET /api/echo                       "echo" (Grafana's Tempo health check)
 *   GET /api/traces/<id>                Tempo v1: {"batches":[ResourceSpans...]} as OTLP/JSON,
 *                                       or TracesData protobuf with Accept: application/protobuf
 *   GET /api/v2/traces/<id>             {"trace":{"resourceSpans":[...]}} (protobuf likewise)
 *   GET /api/search                     tags (logfmt), minDuration, maxDuration (Go durations),
 *                                       limit, start, end (Unix seconds)
 *   GET /api/search/tags                {"tagNames":[...]}
 *   GET /api/search/tag/<name>/values   {"tagValues":[...]}
 *   GET /api/status/buildinfo           {"version":...}
 * Errors are plain text as Tempo sends them: 404 "trace not found", 400 for a bad id or param.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "app/obs_app.h"
#include "core/obs_log.h"
#include "core/obs_mem.h"
#include "http/obs_http.h"
#include "traced/trd.h"

static void h_echo(struct obs_http_req *r, void *arg)
{
    obs_http_reply(r, 200, "text/plain", "echo", 4);
}

static void h_buildinfo(struct obs_http_req *r, void *arg)
{
    struct trd_app *a = arg;
    struct obs_sbuf b;
    obs_sbuf_init(&b);
    obs_sbuf_printf(&b,
                    "{\"version\":\"%s\",\"revision\":\"\",\"branch\":\"\",\"buildUser\":\"\","
                    "\"buildDate\":\"\",\"goVersion\":\"\"}",
                    a->ctx->version ? a->ctx->version : "");
    obs_http_reply_sbuf(r, 200, "application/json", &b);
    obs_sbuf_deinit(&b);
}

static int wants_protobuf(struct obs_http_req *r)
{
    const char *acc = obs_http_req_header(r, "Accept");
    return acc && (strstr(acc, "application/protobuf") || strstr(acc, "application/x-protobuf"));
}

static void reply_trace(struct obs_http_req *r, struct trd_app *a, int v2)
{
    const char *id = obs_http_req_rest(r);
    uint8_t tid[16];
    if (trd_trace_id_parse(id, tid) != 0) {
        obs_http_reply_text(r, 400, "invalid trace id: %.64s", id ? id : "");
        return;
    }
    const struct trd_trace *t = a->store ? trd_store_get(a->store, tid) : NULL;
    if (t == NULL) {
        obs_http_reply_text(r, 404, "trace not found");
        return;
    }
    struct obs_sbuf b;
    obs_sbuf_init(&b);
    int rc;
    const char *ct;
    if (wants_protobuf(r)) {
        rc = trd_trace_encode_pb(t, &b);
        ct = "application/protobuf";
    } else {
        rc = trd_trace_encode_json(t, v2, &b);
        ct = "application/json";
    }
    if (rc != 0)
        obs_http_reply_text(r, 500, "failed to encode trace: %s", obs_rc_str(rc));
    else
        obs_http_reply_sbuf(r, 200, ct, &b);
    obs_sbuf_deinit(&b);
}

static void h_trace_v1(struct obs_http_req *r, void *arg)
{
    reply_trace(r, arg, 0);
}

static void h_trace_v2(struct obs_http_req *r, void *arg)
{
    reply_trace(r, arg, 1);
}

static int parse_i64(const char *s, int64_t *out)
{
    char *end;
    if (s == NULL || *s == '\0')
        return OBS_EINVAL;
    long long v = strtoll(s, &end, 10);
    if (*end != '\0')
        return OBS_EINVAL;
    *out = v;
    return 0;
}

/* Unix seconds that still fit in int64 nanoseconds (search compares start/end * 1e9). */
static int parse_unix_s(const char *s, int64_t *out)
{
    if (parse_i64(s, out) != 0 || *out > INT64_MAX / 1000000000LL ||
        *out < -(INT64_MAX / 1000000000LL))
        return OBS_EINVAL;
    return 0;
}

static void h_search(struct obs_http_req *r, void *arg)
{
    struct trd_app *a = arg;
    struct trd_search q = {0};
    struct obs_err err = {0};
    const char *v;
    int64_t x;
    if ((v = obs_http_req_param(r, "tags")) && trd_search_parse_tags(&q, v, &err) != 0) {
        obs_http_reply_text(r, 400, "%s", err.msg);
        goto out;
    }
    /* TraceQL is not supported; accept the trivial match-all form Grafana may send. */
    if ((v = obs_http_req_param(r, "q")) && *v && strcmp(v, "{}") != 0) {
        obs_http_reply_text(r, 400, "TraceQL queries are not supported; use tags=");
        goto out;
    }
    if ((v = obs_http_req_param(r, "minDuration")) && *v &&
        trd_go_duration_ns(v, &q.min_dur_ns) != 0) {
        obs_http_reply_text(r, 400, "invalid minDuration: %.64s", v);
        goto out;
    }
    if ((v = obs_http_req_param(r, "maxDuration")) && *v &&
        trd_go_duration_ns(v, &q.max_dur_ns) != 0) {
        obs_http_reply_text(r, 400, "invalid maxDuration: %.64s", v);
        goto out;
    }
    if (q.min_dur_ns && q.max_dur_ns && q.max_dur_ns < q.min_dur_ns) {
        obs_http_reply_text(r, 400, "invalid maxDuration: must be greater than minDuration");
        goto out;
    }
    if ((v = obs_http_req_param(r, "limit")) && *v) {
        if (parse_i64(v, &x) != 0 || x <= 0) {
            obs_http_reply_text(r, 400, "invalid limit: must be a positive number");
            goto out;
        }
        if (a->qcfg.search_max_limit > 0 && x > a->qcfg.search_max_limit)
            x = a->qcfg.search_max_limit;
        q.limit = (size_t)x;
    } else {
        q.limit = a->qcfg.search_default_limit > 0 ? (size_t)a->qcfg.search_default_limit : 20;
    }
    if ((v = obs_http_req_param(r, "start")) && *v && (parse_unix_s(v, &q.start_s) != 0)) {
        obs_http_reply_text(r, 400, "invalid start: expected Unix seconds");
        goto out;
    }
    if ((v = obs_http_req_param(r, "end")) && *v && (parse_unix_s(v, &q.end_s) != 0)) {
        obs_http_reply_text(r, 400, "invalid end: expected Unix seconds");
        goto out;
    }
    if (q.start_s && q.end_s && q.end_s < q.start_s) {
        obs_http_reply_text(r, 400, "invalid start: must be before end");
        goto out;
    }
    struct obs_sbuf b;
    obs_sbuf_init(&b);
    if (a->store == NULL || trd_search_run(a->store, &q, &b) != 0)
        obs_http_reply_text(r, 500, "search failed");
    else
        obs_http_reply_sbuf(r, 200, "application/json", &b);
    obs_sbuf_deinit(&b);
out:
    trd_search_deinit(&q);
}

static void h_tags(struct obs_http_req *r, void *arg)
{
    struct trd_app *a = arg;
    struct obs_sbuf b;
    obs_sbuf_init(&b);
    if (a->store == NULL || trd_search_tags(a->store, &b) != 0)
        obs_http_reply_text(r, 500, "failed to list tags");
    else
        obs_http_reply_sbuf(r, 200, "application/json", &b);
    obs_sbuf_deinit(&b);
}

static void h_tag_values(struct obs_http_req *r, void *arg)
{
    struct trd_app *a = arg;
    const char *rest = obs_http_req_rest(r); /* "<name>/values" */
    size_t n = rest ? strlen(rest) : 0;
    if (n <= 7 || strcmp(rest + n - 7, "/values") != 0) {
        obs_http_reply_text(r, 404, "404 page not found");
        return;
    }
    char *tag = obs_strndup(rest, n - 7);
    struct obs_sbuf b;
    obs_sbuf_init(&b);
    if (tag == NULL || a->store == NULL || trd_search_tag_values(a->store, tag, &b) != 0)
        obs_http_reply_text(r, 500, "failed to list tag values");
    else
        obs_http_reply_sbuf(r, 200, "application/json", &b);
    obs_sbuf_deinit(&b);
    obs_free(tag);
}

int trd_querier_init(struct obs_ctx *ctx, struct obs_err *err)
{
    struct trd_app *a = ctx->app;
    struct obs_http_server *h = ctx->http;
    obs_http_route(h, "GET", "/api/echo", h_echo, a);
    obs_http_route(h, "GET", "/api/status/buildinfo", h_buildinfo, a);
    obs_http_route(h, "GET", "/api/traces/*", h_trace_v1, a);
    obs_http_route(h, "GET", "/api/v2/traces/*", h_trace_v2, a);
    obs_http_route(h, "GET", "/api/search", h_search, a);
    obs_http_route(h, "GET", "/api/search/tags", h_tags, a);
    obs_http_route(h, "GET", "/api/search/tag/*", h_tag_values, a);
    return 0;
}

void trd_querier_stop(struct obs_ctx *ctx)
{
}
