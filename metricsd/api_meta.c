/*
 * api_meta.c -- the Prometheus HTTP API's non-PromQL read endpoints over metricsd's storage:
 *   GET|POST /api/v1/labels                 match[]*, start, end
 *   GET|POST /api/v1/label/<name>/values    match[]*, start, end
 *   GET|POST /api/v1/series                 match[]+, start, end
 *   GET      /api/v1/metadata               limit, metric
 *   GET      /api/v1/status/buildinfo
 * (and, through api_read.c, POST /api/v1/read).
 * Replies use Prometheus' envelope {"status":"success","data":...}; bad parameters get 400
 * {"status":"error","errorType":"bad_data","error":"..."} with Prometheus' wording.
 * Several match[] select the union of their series. Tenant from X-Scope-OrgID.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "core/obs_mem.h"
#include "core/obs_sbuf.h"
#include "core/obs_time.h"
#include "http/obs_http.h"
#include "labels/obs_labels.h"
#include "metricsd/head.h"
#include "metricsd/metricsd.h"
#include "metricsd/storage.h"

/* Parsed common parameters. */
struct meta_params {
    int64_t start, end;
    struct obs_matcher **sets; /* one matcher list per match[] */
    size_t *nms;
    size_t nsets;
};

static void params_free(struct meta_params *p)
{
    for (size_t i = 0; i < p->nsets; i++)
        obs_matchers_free(p->sets[i], p->nms[i]);
    obs_free(p->sets);
    obs_free(p->nms);
    memset(p, 0, sizeof *p);
}

/* Parse start/end/match[]; on error the reply has been sent and -1 returned. */
static int params_parse(struct obs_http_req *r, struct meta_params *p, int need_match)
{
    const char *names[2] = {"start", "end"};
    int64_t *dst[2] = {&p->start, &p->end};
    memset(p, 0, sizeof *p);
    p->start = INT64_MIN;
    p->end = INT64_MAX;
    for (int i = 0; i < 2; i++) {
        const char *v = obs_http_req_param(r, names[i]);
        if (v && v[0] && obs_time_parse_ms(v, dst[i]) != 0) {
            obs_http_reply_prom_error(r, 400, "bad_data", "invalid parameter \"%s\": cannot "
                                      "parse \"%s\" to a valid timestamp", names[i], v);
            return -1;
        }
    }
    if (p->end < p->start) {
        obs_http_reply_prom_error(r, 400, "bad_data",
                                  "end timestamp must not be before start time");
        return -1;
    }
    const char **ms = NULL;
    size_t n = obs_http_req_params(r, "match[]", &ms);
    if (n == 0 && need_match) {
        obs_http_reply_prom_error(r, 400, "bad_data", "no match[] parameter provided");
        return -1;
    }
    if (n > 0) {
        p->sets = obs_calloc(n, sizeof *p->sets);
        p->nms = obs_calloc(n, sizeof *p->nms);
        if (p->sets == NULL || p->nms == NULL) {
            params_free(p);
            obs_http_reply_prom_error(r, 500, "internal", "out of memory");
            return -1;
        }
    }
    for (size_t i = 0; i < n; i++) {
        struct obs_err err = {0};
        if (obs_selector_parse(ms[i], strlen(ms[i]), &p->sets[i], &p->nms[i], &err) != 0) {
            params_free(p);
            obs_http_reply_prom_error(r, 400, "bad_data", "invalid parameter \"match[]\": "
                                      "1:1: parse error: %s", err.msg);
            return -1;
        }
        p->nsets = i + 1;
    }
    return 0;
}

static struct mtd_storage *storage_of(struct obs_http_req *r, struct obs_ctx *ctx)
{
    struct mtd_app *app = mtd_app_of(ctx);
    if (app == NULL || app->storage == NULL) {
        obs_http_reply_prom_error(r, 503, "unavailable", "no storage available");
        return NULL;
    }
    return app->storage;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Reply with a sorted, de-duplicated JSON string array made from v (consumed). */
static void reply_strings(struct obs_http_req *r, char **v, size_t n)
{
    struct obs_sbuf b;
    obs_sbuf_init(&b);
    qsort(v, n, sizeof *v, cmp_str);
    obs_sbuf_puts(&b, "{\"status\":\"success\",\"data\":[");
    size_t out = 0;
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && strcmp(v[i], v[i - 1]) == 0)
            continue;
        if (out++)
            obs_sbuf_putc(&b, ',');
        obs_sbuf_json_str(&b, v[i], strlen(v[i]));
    }
    obs_sbuf_puts(&b, "]}");
    mtd_strings_free(v, n);
    if (b.oom) {
        obs_sbuf_deinit(&b);
        obs_http_reply_prom_error(r, 500, "internal", "out of memory");
        return;
    }
    obs_http_reply_sbuf(r, 200, "application/json", &b);
    obs_sbuf_deinit(&b);
}

/* Append src (consumed) to the growing list *dst. */
static int strings_concat(char ***dst, size_t *nd, char **src, size_t ns)
{
    char **nv = obs_realloc(*dst, (*nd + ns + 1) * sizeof *nv);
    if (nv == NULL) {
        mtd_strings_free(src, ns);
        return OBS_ENOMEM;
    }
    memcpy(nv + *nd, src, ns * sizeof *src);
    *nd += ns;
    *dst = nv;
    obs_free(src);
    return 0;
}

/* Shared body of /labels and /label/<name>/values: name == NULL lists names. */
static void labels_common(struct obs_http_req *r, struct obs_ctx *ctx, const char *name)
{
    struct meta_params p;
    struct mtd_storage *st = storage_of(r, ctx);
    if (st == NULL || params_parse(r, &p, 0) != 0)
        return;
    const char *tenant = obs_http_req_tenant(r, "anonymous");
    char **all = NULL;
    size_t nall = 0;
    size_t rounds = p.nsets ? p.nsets : 1;
    for (size_t i = 0; i < rounds; i++) {
        char **v = NULL;
        size_t n = 0;
        struct obs_err err = {0};
        const struct obs_matcher *ms = p.nsets ? p.sets[i] : NULL;
        size_t nms = p.nsets ? p.nms[i] : 0;
        int rc = name ? mtd_storage_label_values(st, tenant, name, ms, nms, p.start, p.end, &v,
                                                 &n, &err)
                      : mtd_storage_label_names(st, tenant, ms, nms, p.start, p.end, &v, &n,
                                                &err);
        if (rc == 0)
            rc = strings_concat(&all, &nall, v, n);
        if (rc != 0) {
            mtd_strings_free(all, nall);
            params_free(&p);
            obs_http_reply_prom_error(r, rc == OBS_ELIMIT ? 422 : 500,
                                      rc == OBS_ELIMIT ? "execution" : "internal", "%s",
                                      err.msg[0] ? err.msg : "out of memory");
            return;
        }
    }
    params_free(&p);
    if (all == NULL)
        all = obs_calloc(1, sizeof *all);
    reply_strings(r, all, nall);
}

static void h_labels(struct obs_http_req *r, void *arg)
{
    labels_common(r, arg, NULL);
}

static void h_label_values(struct obs_http_req *r, void *arg)
{
    const char *rest = obs_http_req_rest(r); /* "<name>/values" */
    const char *slash = strchr(rest, '/');
    if (slash == NULL || strcmp(slash, "/values") != 0) {
        obs_http_reply(r, 404, "text/plain; charset=utf-8", "404 page not found\n", 19);
        return;
    }
    char name[1024];
    size_t n = (size_t)(slash - rest);
    if (n >= sizeof name || !obs_label_name_valid(rest, n)) {
        obs_http_reply_prom_error(r, 400, "bad_data", "invalid label name: \"%.*s\"",
                                  (int)(n < 200 ? n : 200), rest);
        return;
    }
    memcpy(name, rest, n);
    name[n] = '\0';
    labels_common(r, arg, name);
}

static int cmp_series(const void *a, const void *b)
{
    const struct mtd_series *x = *(const struct mtd_series *const *)a;
    const struct mtd_series *y = *(const struct mtd_series *const *)b;
    size_t n = x->nlabels < y->nlabels ? x->nlabels : y->nlabels;
    for (size_t i = 0; i < n; i++) {
        int c = strcmp(x->labels[i].name, y->labels[i].name);
        if (c)
            return c;
        c = strcmp(x->labels[i].value, y->labels[i].value);
        if (c)
            return c;
    }
    return x->nlabels < y->nlabels ? -1 : x->nlabels > y->nlabels ? 1 : 0;
}

static void h_series(struct obs_http_req *r, void *arg)
{
    struct obs_ctx *ctx = arg;
    struct meta_params p;
    struct mtd_storage *st = storage_of(r, ctx);
    if (st == NULL || params_parse(r, &p, 1) != 0)
        return;
    const char *tenant = obs_http_req_tenant(r, "anonymous");
    struct mtd_series_set **sets = obs_calloc(p.nsets, sizeof *sets);
    const struct mtd_series **all = NULL;
    size_t nall = 0;
    struct obs_sbuf b;
    obs_sbuf_init(&b);
    if (sets == NULL)
        goto oom;
    struct mtd_select_opts o = {.mint = p.start, .maxt = p.end, .no_samples = 1};
    struct mtd_app *app = mtd_app_of(ctx);
    if (app->limits.max_fetched_series_per_query > 0)
        o.max_series = (size_t)app->limits.max_fetched_series_per_query;
    for (size_t i = 0; i < p.nsets; i++) {
        struct obs_err err = {0};
        int rc = mtd_storage_select(st, tenant, p.sets[i], p.nms[i], &o, &sets[i], &err);
        if (rc == OBS_ELIMIT) {
            for (size_t k = 0; k < i; k++)
                mtd_series_set_free(sets[k]);
            obs_free(sets);
            params_free(&p);
            obs_http_reply_prom_error(r, 422, "execution", "%s", err.msg);
            return;
        }
        if (rc != 0)
            goto oom;
        nall += sets[i]->nseries;
    }
    all = obs_malloc((nall ? nall : 1) * sizeof *all);
    if (all == NULL)
        goto oom;
    nall = 0;
    for (size_t i = 0; i < p.nsets; i++)
        for (size_t k = 0; k < sets[i]->nseries; k++)
            all[nall++] = &sets[i]->series[k];
    if (p.nsets > 1)
        qsort(all, nall, sizeof *all, cmp_series);
    obs_sbuf_puts(&b, "{\"status\":\"success\",\"data\":[");
    size_t out = 0;
    for (size_t i = 0; i < nall; i++) {
        if (i > 0 && cmp_series(&all[i], &all[i - 1]) == 0)
            continue;
        if (out++)
            obs_sbuf_putc(&b, ',');
        obs_sbuf_putc(&b, '{');
        for (size_t k = 0; k < all[i]->nlabels; k++) {
            if (k)
                obs_sbuf_putc(&b, ',');
            const struct obs_label *l = &all[i]->labels[k];
            obs_sbuf_json_str(&b, l->name, strlen(l->name));
            obs_sbuf_putc(&b, ':');
            obs_sbuf_json_str(&b, l->value, strlen(l->value));
        }
        obs_sbuf_putc(&b, '}');
    }
    obs_sbuf_puts(&b, "]}");
    if (b.oom)
        goto oom;
    obs_http_reply_sbuf(r, 200, "application/json", &b);
    goto out;
oom:
    obs_http_reply_prom_error(r, 500, "internal", "out of memory");
out:
    obs_sbuf_deinit(&b);
    obs_free(all);
    for (size_t i = 0; sets && i < p.nsets; i++)
        mtd_series_set_free(sets[i]);
    obs_free(sets);
    params_free(&p);
}

static int meta_emit(const char *family, int type, const char *help, const char *unit,
                     void *arg)
{
    struct obs_sbuf *b = arg;
    if (b->len > 0 && b->p[b->len - 1] != '{')
        obs_sbuf_putc(b, ',');
    obs_sbuf_json_str(b, family, strlen(family));
    obs_sbuf_puts(b, ":[{\"type\":");
    const char *t = mtd_metric_type_name(type);
    obs_sbuf_json_str(b, t, strlen(t));
    obs_sbuf_puts(b, ",\"help\":");
    obs_sbuf_json_str(b, help, strlen(help));
    obs_sbuf_puts(b, ",\"unit\":");
    obs_sbuf_json_str(b, unit, strlen(unit));
    obs_sbuf_puts(b, "}]");
    return 0;
}

static void h_metadata(struct obs_http_req *r, void *arg)
{
    struct obs_ctx *ctx = arg;
    struct mtd_app *app = mtd_app_of(ctx);
    const char *ls = obs_http_req_param(r, "limit");
    const char *metric = obs_http_req_param(r, "metric");
    long limit = -1;
    if (ls && ls[0]) {
        char *end = NULL;
        limit = strtol(ls, &end, 10);
        if (end == ls || *end != '\0') {
            obs_http_reply_prom_error(r, 400, "bad_data", "limit must be a number");
            return;
        }
    }
    struct obs_sbuf b;
    obs_sbuf_init(&b);
    obs_sbuf_puts(&b, "{\"status\":\"success\",\"data\":{");
    if (app && app->head && limit != 0)
        mtd_head_metadata(app->head, obs_http_req_tenant(r, "anonymous"),
                          metric && metric[0] ? metric : NULL, limit, meta_emit, &b);
    obs_sbuf_puts(&b, "}}");
    if (b.oom) {
        obs_sbuf_deinit(&b);
        obs_http_reply_prom_error(r, 500, "internal", "out of memory");
        return;
    }
    obs_http_reply_sbuf(r, 200, "application/json", &b);
    obs_sbuf_deinit(&b);
}

static void h_buildinfo(struct obs_http_req *r, void *arg)
{
    struct obs_ctx *ctx = arg;
    struct obs_sbuf b;
    obs_sbuf_init(&b);
    obs_sbuf_printf(&b, "{\"status\":\"success\",\"data\":{\"application\":\"metricsd\","
                    "\"version\":\"%s\",\"revision\":\"%s\",\"branch\":\"main\","
                    "\"buildUser\":\"obs\",\"buildDate\":\"%s\",\"goVersion\":\"none (C11)\"",
                    MTD_PROM_VERSION, ctx->version ? ctx->version : "unknown", __DATE__);
    /* Grafana treats a non-empty `features` as Mimir and then uses the ruler config API;
     * only claim it when the ruler runs in this process. */
    if (obs_ctx_has_target(ctx, "ruler"))
        obs_sbuf_puts(&b, ",\"features\":{\"ruler_config_api\":\"true\","
                      "\"alertmanager_config_api\":\"false\",\"query_sharding\":\"false\","
                      "\"federated_rules\":\"false\"}");
    obs_sbuf_puts(&b, "}}");
    obs_http_reply_sbuf(r, 200, "application/json", &b);
    obs_sbuf_deinit(&b);
}

int mtd_api_meta_register(struct obs_ctx *ctx)
{
    int rc = 0;
    rc |= obs_http_route(ctx->http, "GET,POST", "/api/v1/labels", h_labels, ctx);
    rc |= obs_http_route(ctx->http, "GET,POST", "/api/v1/label/*", h_label_values, ctx);
    rc |= obs_http_route(ctx->http, "GET,POST", "/api/v1/series", h_series, ctx);
    rc |= obs_http_route(ctx->http, "GET", "/api/v1/metadata", h_metadata, ctx);
    rc |= obs_http_route(ctx->http, "GET", "/api/v1/status/buildinfo", h_buildinfo, ctx);
    rc |= mtd_api_read_register(ctx);
    return rc ? OBS_ENOMEM : 0;
}
