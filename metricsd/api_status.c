/*
 * api_status.c -- the Prometheus HTTP API's status and introspection endpoints over metricsd:
 *   GET      /api/v1/status/buildinfo    version, revision, ... (+ Mimir `features` with ruler)
 *   GET      /api/v1/status/tsdb         head stats and top-N cardinality lists (limit=10)
 *   GET      /api/v1/status/config       {"yaml": the loaded config, flags applied}
 *   GET      /api/v1/status/flags        command-line flags as name -> value strings
 *   GET      /api/v1/status/runtimeinfo  start time, CWD, threads, retention, ...
 *   GET      /api/v1/status/walreplay    {"min","max","current"} WAL segment numbers
 *   GET      /api/v1/targets             metricsd scrapes nothing: empty lists
 *   GET      /api/v1/targets/metadata, /alertmanagers, /scrape_pools: empty, as Prometheus
 *            with nothing configured; /rules and /alerts: empty until the ruler replaces them
 *   GET|POST /api/v1/format_query        the query as Prometheus' formatter prints it
 *   POST|PUT /api/v1/admin/tsdb/<op>      500 "admin APIs disabled", as Prometheus by default
 *   GET|POST /api/v1/query_exemplars     exemplars of every selector in the query, from
 *                                        storage (mtd_storage_exemplars), start/end inclusive
 *   GET|POST /api/v1/parse_query         the PromQL AST as JSON, in the shape Prometheus 3.x
 *                                        returns (web/api/v1 translateAST)
 * Every reply uses Prometheus' envelope {"status":"success","data":...}; bad parameters get
 * 400 {"status":"error","errorType":"bad_data","error":"..."} with Prometheus' wording.
 *
 * Key order: Prometheus marshals Go maps, so JSON object keys come out sorted; the AST and
 * the flags map are written in sorted key order here for byte-for-byte equal answers.
 *
 * parse_query walks the engine's private AST (ql/ql_int.h) read-only: it only reads node
 * kinds, operators, matchers and durations, never evaluates.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/obs_mem.h"
#include "core/obs_sbuf.h"
#include "core/obs_time.h"
#include "http/obs_http.h"
#include "metricsd/head.h"
#include "metricsd/metricsd.h"
#include "metricsd/ql/ql_int.h"
#include "metricsd/querier.h"
#include "metricsd/storage.h"

/* State of this file: the process start time, for runtimeinfo. */
struct api_status {
    int64_t start_ms;
};

static struct api_status *status_of(struct obs_ctx *ctx)
{
    /* One per process; the routes are registered once per ingester init. Kept in a static
     * so re-registration keeps the first start time (the only mutable state here, written
     * once at boot on the loop thread). */
    static struct api_status st;
    (void)ctx;
    if (st.start_ms == 0)
        st.start_ms = obs_now_ms();
    return &st;
}

static void reply_json(struct obs_http_req *r, struct obs_sbuf *b)
{
    if (b->oom) {
        obs_sbuf_deinit(b);
        obs_http_reply_prom_error(r, 500, "internal", "out of memory");
        return;
    }
    obs_http_reply_sbuf(r, 200, "application/json", b);
    obs_sbuf_deinit(b);
}

static void put_str(struct obs_sbuf *b, const char *s)
{
    obs_sbuf_json_str(b, s ? s : "", s ? strlen(s) : 0);
}

/* ---- buildinfo ------------------------------------------------------------------------- */

static void h_buildinfo(struct obs_http_req *r, void *arg)
{
    struct obs_ctx *ctx = arg;
    struct obs_sbuf b;
    obs_sbuf_init(&b);
    obs_sbuf_puts(&b, "{\"status\":\"success\",\"data\":{\"version\":");
    put_str(&b, MTD_PROM_VERSION);
    obs_sbuf_puts(&b, ",\"revision\":");
    put_str(&b, ctx->version ? ctx->version : "unknown");
    obs_sbuf_puts(&b, ",\"branch\":\"main\",\"buildUser\":\"obs\",\"buildDate\":");
    put_str(&b, __DATE__);
    obs_sbuf_puts(&b, ",\"goVersion\":\"none (C11)\",\"application\":\"metricsd\"");
    /* Grafana treats a non-empty `features` as Mimir and then uses the ruler config API;
     * only claim it when the ruler runs in this process. */
    if (obs_ctx_has_target(ctx, "ruler"))
        obs_sbuf_puts(&b, ",\"features\":{\"ruler_config_api\":\"true\","
                      "\"alertmanager_config_api\":\"false\",\"query_sharding\":\"false\","
                      "\"federated_rules\":\"false\"}");
    obs_sbuf_puts(&b, "}}");
    reply_json(r, &b);
}

/* ---- tsdb ------------------------------------------------------------------------------ */

static void put_stat_list(struct obs_sbuf *b, const char *key, const struct mtd_head_stat *v,
                          size_t n)
{
    obs_sbuf_printf(b, ",\"%s\":[", key);
    for (size_t i = 0; i < n; i++) {
        obs_sbuf_puts(b, i ? ",{\"name\":" : "{\"name\":");
        put_str(b, v[i].name);
        obs_sbuf_printf(b, ",\"value\":%llu}", (unsigned long long)v[i].value);
    }
    obs_sbuf_putc(b, ']');
}

static void h_tsdb(struct obs_http_req *r, void *arg)
{
    struct mtd_app *app = mtd_app_of(arg);
    long limit = 10;
    const char *ls = obs_http_req_param(r, "limit");
    if (ls && ls[0]) {
        char *end = NULL;
        limit = strtol(ls, &end, 10);
        if (end == ls || *end != '\0' || limit < 1 || limit > 10000) {
            obs_http_reply_prom_error(r, 400, "bad_data", "limit must be a positive number");
            return;
        }
    }
    struct mtd_head_stats s;
    memset(&s, 0, sizeof s);
    s.min_time = INT64_MAX;
    s.max_time = INT64_MIN;
    if (app && app->head &&
        mtd_head_stats(app->head, obs_http_req_tenant(r, "anonymous"), (size_t)limit, &s) != 0) {
        obs_http_reply_prom_error(r, 500, "internal", "out of memory");
        return;
    }
    struct obs_sbuf b;
    obs_sbuf_init(&b);
    obs_sbuf_printf(&b, "{\"status\":\"success\",\"data\":{\"headStats\":{\"numSeries\":%llu,"
                    "\"numLabelPairs\":%llu,\"chunkCount\":%llu,\"minTime\":%lld,"
                    "\"maxTime\":%lld}",
                    (unsigned long long)s.num_series, (unsigned long long)s.num_label_pairs,
                    (unsigned long long)s.chunk_count, (long long)s.min_time,
                    (long long)s.max_time);
    put_stat_list(&b, "seriesCountByMetricName", s.by_metric, s.n_by_metric);
    put_stat_list(&b, "labelValueCountByLabelName", s.values_by_name, s.n_values_by_name);
    put_stat_list(&b, "memoryInBytesByLabelName", s.memory_by_name, s.n_memory_by_name);
    put_stat_list(&b, "seriesCountByLabelValuePair", s.by_pair, s.n_by_pair);
    obs_sbuf_puts(&b, "}}");
    mtd_head_stats_free(&s);
    reply_json(r, &b);
}

/* ---- config ---------------------------------------------------------------------------- */

/* Does a scalar need quotes to read back as the same string? */
static int yaml_needs_quotes(const char *s)
{
    if (s[0] == '\0' || strchr("-?:,[]{}#&*!|>'\"%@` ", s[0]) != NULL)
        return 1;
    size_t n = strlen(s);
    if (s[n - 1] == ' ' || strstr(s, ": ") || strstr(s, " #"))
        return 1;
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p < 0x20)
            return 1;
    return 0;
}

static void yaml_scalar(struct obs_sbuf *b, const struct obs_cf_node *n)
{
    if (n->type != OBS_CF_SCALAR || n->value == NULL) {
        obs_sbuf_puts(b, "null");
        return;
    }
    if (n->quoted || yaml_needs_quotes(n->value))
        obs_sbuf_json_str(b, n->value, strlen(n->value)); /* JSON strings are YAML */
    else
        obs_sbuf_puts(b, n->value);
}

static void yaml_node(struct obs_sbuf *b, const struct obs_cf_node *n, int indent);

/* Write a map's entries or a sequence's items at indent. */
static void yaml_items(struct obs_sbuf *b, const struct obs_cf_node *n, int indent)
{
    for (size_t i = 0; i < n->n; i++) {
        const struct obs_cf_node *c = n->items[i];
        obs_sbuf_printf(b, "%*s", indent, "");
        if (n->type == OBS_CF_MAP)
            obs_sbuf_printf(b, "%s:", c->key ? c->key : "");
        else
            obs_sbuf_puts(b, "-");
        if ((c->type == OBS_CF_MAP || c->type == OBS_CF_SEQ) && c->n > 0) {
            obs_sbuf_putc(b, '\n');
            yaml_node(b, c, indent + 2);
        } else {
            obs_sbuf_putc(b, ' ');
            if (c->type == OBS_CF_MAP)
                obs_sbuf_puts(b, "{}");
            else if (c->type == OBS_CF_SEQ)
                obs_sbuf_puts(b, "[]");
            else
                yaml_scalar(b, c);
            obs_sbuf_putc(b, '\n');
        }
    }
}

static void yaml_node(struct obs_sbuf *b, const struct obs_cf_node *n, int indent)
{
    yaml_items(b, n, indent);
}

static void h_config(struct obs_http_req *r, void *arg)
{
    struct obs_ctx *ctx = arg;
    struct obs_sbuf y, b;
    obs_sbuf_init(&y);
    obs_sbuf_init(&b);
    if (ctx->cfg && (ctx->cfg->type == OBS_CF_MAP || ctx->cfg->type == OBS_CF_SEQ))
        yaml_node(&y, ctx->cfg, 0);
    obs_sbuf_puts(&b, "{\"status\":\"success\",\"data\":{\"yaml\":");
    obs_sbuf_json_str(&b, y.p ? y.p : "", y.len);
    obs_sbuf_puts(&b, "}}");
    if (y.oom)
        b.oom = 1;
    obs_sbuf_deinit(&y);
    reply_json(r, &b);
}

/* ---- flags ----------------------------------------------------------------------------- */

struct flag {
    char *name;
    char *value;
};

static int cmp_flag(const void *a, const void *b)
{
    return strcmp(((const struct flag *)a)->name, ((const struct flag *)b)->name);
}

/* Add or replace name=value (both copied). */
static int flag_set(struct flag **v, size_t *n, size_t *cap, const char *name, size_t nlen,
                    const char *value)
{
    for (size_t i = 0; i < *n; i++) {
        if (strlen((*v)[i].name) == nlen && memcmp((*v)[i].name, name, nlen) == 0) {
            char *nv = obs_strdup(value);
            if (nv == NULL)
                return OBS_ENOMEM;
            obs_free((*v)[i].value);
            (*v)[i].value = nv;
            return 0;
        }
    }
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 16;
        struct flag *nv = obs_realloc(*v, nc * sizeof *nv);
        if (nv == NULL)
            return OBS_ENOMEM;
        *v = nv;
        *cap = nc;
    }
    char *nm = obs_malloc(nlen + 1), *vl = obs_strdup(value);
    if (nm == NULL || vl == NULL) {
        obs_free(nm);
        obs_free(vl);
        return OBS_ENOMEM;
    }
    memcpy(nm, name, nlen);
    nm[nlen] = '\0';
    (*v)[*n].name = nm;
    (*v)[*n].value = vl;
    (*n)++;
    return 0;
}

static void h_flags(struct obs_http_req *r, void *arg)
{
    struct obs_ctx *ctx = arg;
    struct flag *v = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    char num[32];
    /* Defaults first, then what was given on the command line. */
    rc |= flag_set(&v, &n, &cap, "config.file", 11, ctx->cfg_file ? ctx->cfg_file : "");
    rc |= flag_set(&v, &n, &cap, "config.expand-env", 17, ctx->expand_env ? "true" : "false");
    rc |= flag_set(&v, &n, &cap, "log.level", 9,
                   ctx->server.log_level ? ctx->server.log_level : "info");
    rc |= flag_set(&v, &n, &cap, "server.http-listen-address", 26,
                   ctx->server.http_listen_address ? ctx->server.http_listen_address : "");
    snprintf(num, sizeof num, "%lld", (long long)ctx->server.http_listen_port);
    rc |= flag_set(&v, &n, &cap, "server.http-listen-port", 23, num);
    snprintf(num, sizeof num, "%lld", (long long)ctx->server.grpc_listen_port);
    rc |= flag_set(&v, &n, &cap, "server.grpc-listen-port", 23, num);
    struct obs_sbuf t;
    obs_sbuf_init(&t);
    for (int i = 0; i < ctx->ntargets; i++) {
        if (i)
            obs_sbuf_putc(&t, ',');
        obs_sbuf_puts(&t, ctx->targets[i]);
    }
    obs_sbuf_putc(&t, '\0');
    rc |= flag_set(&v, &n, &cap, "target", 6, t.oom ? "" : t.p);
    obs_sbuf_deinit(&t);
    /* The command line as the kernel has it: NUL-separated arguments. */
    FILE *f = fopen("/proc/self/cmdline", "rb");
    char *buf = obs_malloc(65536);
    if (f != NULL && buf != NULL) {
        size_t len = fread(buf, 1, 65535, f);
        buf[len] = '\0';
        size_t off = strlen(buf) + 1; /* skip argv[0] */
        while (off < len && rc == 0) {
            const char *a = buf + off;
            off += strlen(a) + 1;
            if (a[0] != '-')
                continue;
            a += a[1] == '-' ? 2 : 1;
            const char *eq = strchr(a, '=');
            if (eq != NULL) {
                rc = flag_set(&v, &n, &cap, a, (size_t)(eq - a), eq + 1);
            } else if (off < len && buf[off] != '-' && strcmp(a, "config.expand-env") != 0 &&
                       strcmp(a, "version") != 0 && strcmp(a, "help") != 0) {
                rc = flag_set(&v, &n, &cap, a, strlen(a), buf + off);
                off += strlen(buf + off) + 1;
            } else {
                rc = flag_set(&v, &n, &cap, a, strlen(a), "true");
            }
        }
    }
    if (f != NULL)
        fclose(f);
    obs_free(buf);
    struct obs_sbuf b;
    obs_sbuf_init(&b);
    if (n > 1)
        qsort(v, n, sizeof *v, cmp_flag);
    obs_sbuf_puts(&b, "{\"status\":\"success\",\"data\":{");
    for (size_t i = 0; i < n; i++) {
        if (i)
            obs_sbuf_putc(&b, ',');
        put_str(&b, v[i].name);
        obs_sbuf_putc(&b, ':');
        put_str(&b, v[i].value);
        obs_free(v[i].name);
        obs_free(v[i].value);
    }
    obs_free(v);
    obs_sbuf_puts(&b, "}}");
    if (rc != 0)
        b.oom = 1;
    reply_json(r, &b);
}

/* ---- runtimeinfo ----------------------------------------------------------------------- */

static long proc_threads(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long n = 1;
    if (f == NULL)
        return n;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "Threads:", 8) == 0)
            n = strtol(line + 8, NULL, 10);
    fclose(f);
    return n;
}

static void h_runtimeinfo(struct obs_http_req *r, void *arg)
{
    struct obs_ctx *ctx = arg;
    struct mtd_app *app = mtd_app_of(ctx);
    struct api_status *st = status_of(ctx);
    char start[64], cwd[PATH_MAX], last[64], ret[64] = "";
    obs_time_format_rfc3339(start, sizeof start, st->start_ms);
    obs_time_format_rfc3339(last, sizeof last, st->start_ms / 1000 * 1000);
    /* Prometheus prints lastConfigTime with second precision. */
    char *dot = strchr(last, '.');
    if (dot != NULL)
        memmove(dot, "Z", 2);
    if (getcwd(cwd, sizeof cwd) == NULL)
        cwd[0] = '\0';
    if (app && app->blocks.tsdb.retention_period_ms > 0)
        obs_duration_format(ret, sizeof ret, app->blocks.tsdb.retention_period_ms);
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    struct obs_sbuf b;
    obs_sbuf_init(&b);
    obs_sbuf_puts(&b, "{\"status\":\"success\",\"data\":{\"startTime\":");
    put_str(&b, start);
    obs_sbuf_puts(&b, ",\"CWD\":");
    put_str(&b, cwd);
    obs_sbuf_puts(&b, ",\"reloadConfigSuccess\":true,\"lastConfigTime\":");
    put_str(&b, last);
    obs_sbuf_printf(&b, ",\"corruptionCount\":0,\"goroutineCount\":%ld,\"GOMAXPROCS\":%ld,"
                    "\"GOGC\":\"\",\"GODEBUG\":\"\",\"storageRetention\":",
                    proc_threads(), ncpu > 0 ? ncpu : 1);
    put_str(&b, ret);
    obs_sbuf_puts(&b, "}}");
    reply_json(r, &b);
}

/* ---- walreplay ------------------------------------------------------------------------- */

/* The head's WAL directory, as the ingester works it out. */
static void wal_dir_of(struct obs_ctx *ctx, char *out, size_t cap)
{
    struct mtd_app *app = mtd_app_of(ctx);
    const struct obs_cf_node *w = obs_cf_get(obs_cf_get(ctx->cfg, "ingester"), "wal_dir");
    if (w && w->type == OBS_CF_SCALAR && w->value && w->value[0])
        snprintf(out, cap, "%s", w->value);
    else
        snprintf(out, cap, "%s/wal",
                 app && app->blocks.tsdb.dir ? app->blocks.tsdb.dir : "./data/metricsd/tsdb");
}

static void h_walreplay(struct obs_http_req *r, void *arg)
{
    char dir[4096];
    long min = -1, max = -1;
    wal_dir_of(arg, dir, sizeof dir);
    DIR *d = opendir(dir);
    if (d != NULL) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            char *end = NULL;
            if (e->d_name[0] < '0' || e->d_name[0] > '9')
                continue;
            long k = strtol(e->d_name, &end, 10);
            if (*end != '\0')
                continue;
            if (min < 0 || k < min)
                min = k;
            if (k > max)
                max = k;
        }
        closedir(d);
    }
    if (min < 0)
        min = max = 0;
    /* The head replays its WAL before the HTTP server answers: replay is always done. */
    struct obs_sbuf b;
    obs_sbuf_init(&b);
    obs_sbuf_printf(&b, "{\"status\":\"success\",\"data\":{\"min\":%ld,\"max\":%ld,"
                    "\"current\":%ld}}", min, max, max);
    reply_json(r, &b);
}

/* ---- targets --------------------------------------------------------------------------- */

static void h_targets(struct obs_http_req *r, void *arg)
{
    (void)arg;
    /* Prometheus 2.42 answers both (empty) lists whatever the state filter says. */
    struct obs_sbuf b;
    obs_sbuf_init(&b);
    obs_sbuf_puts(&b, "{\"status\":\"success\",\"data\":{\"activeTargets\":[],"
                  "\"droppedTargets\":[]}}");
    reply_json(r, &b);
}

/* ---- query_exemplars ------------------------------------------------------------------- */

/* Prometheus' time parameter error: invalid parameter "x": Invalid time value for 'x': ... */
static int time_param(struct obs_http_req *r, const char *name, int64_t def, int64_t *out)
{
    const char *v = obs_http_req_param(r, name);
    *out = def;
    if (v == NULL || v[0] == '\0')
        return 0;
    if (mtd_prom_time_parse(v, 0, out) == 0)
        return 0;
    obs_http_reply_prom_error(r, 400, "bad_data", "invalid parameter \"%s\": Invalid time value "
                              "for '%s': cannot parse \"%s\" to a valid timestamp", name, name,
                              v);
    return -1;
}

/* Collect the vector selectors of an expression (depth-first, at most cap). */
static void selectors_of(const struct ql_node *n, const struct ql_node **v, size_t *k,
                         size_t cap, int depth)
{
    if (n == NULL || depth > 1000 || *k >= cap)
        return;
    if (n->kind == QN_VSEL) {
        v[(*k)++] = n;
        return;
    }
    selectors_of(n->lhs, v, k, cap, depth + 1);
    selectors_of(n->rhs, v, k, cap, depth + 1);
    selectors_of(n->param, v, k, cap, depth + 1);
    for (size_t i = 0; i < n->nargs; i++)
        selectors_of(n->args[i], v, k, cap, depth + 1);
}

static void put_labels_obj(struct obs_sbuf *b, const struct obs_label *l, size_t n)
{
    obs_sbuf_putc(b, '{');
    for (size_t i = 0; i < n; i++) {
        if (i)
            obs_sbuf_putc(b, ',');
        put_str(b, l[i].name);
        obs_sbuf_putc(b, ':');
        put_str(b, l[i].value);
    }
    obs_sbuf_putc(b, '}');
}

static int labels_equal(const struct obs_label *a, size_t na, const struct obs_label *b,
                        size_t nb)
{
    if (na != nb)
        return 0;
    for (size_t i = 0; i < na; i++)
        if (strcmp(a[i].name, b[i].name) || strcmp(a[i].value, b[i].value))
            return 0;
    return 1;
}

#define MAX_EXEMPLAR_SELECTORS 64

static void h_exemplars(struct obs_http_req *r, void *arg)
{
    struct mtd_app *app = mtd_app_of(arg);
    int64_t start, end;
    if (time_param(r, "start", INT64_MIN, &start) != 0 ||
        time_param(r, "end", INT64_MAX, &end) != 0)
        return;
    if (end < start) {
        obs_http_reply_prom_error(r, 400, "bad_data",
                                  "end timestamp must not be before start timestamp");
        return;
    }
    const char *q = obs_http_req_param(r, "query");
    struct mtd_ql_expr *e = NULL;
    struct obs_err err = {0};
    int rc = mtd_ql_parse(q ? q : "", &e, &err);
    if (rc != 0) {
        if (rc == OBS_ENOMEM)
            obs_http_reply_prom_error(r, 500, "internal", "out of memory");
        else
            obs_http_reply_prom_error(r, 400, "bad_data", "%s", err.msg);
        return;
    }
    const struct ql_node *sels[MAX_EXEMPLAR_SELECTORS];
    size_t nsel = 0;
    selectors_of(e->root, sels, &nsel, MAX_EXEMPLAR_SELECTORS, 0);
    if (nsel == 0) { /* Prometheus answers a query without selectors with no data: 204 */
        mtd_ql_expr_free(e);
        obs_http_reply(r, 204, NULL, NULL, 0);
        return;
    }
    struct mtd_exemplar_set *sets[MAX_EXEMPLAR_SELECTORS] = {0};
    const char *tenant = obs_http_req_tenant(r, "anonymous");
    rc = 0;
    for (size_t i = 0; i < nsel && rc == 0 && app && app->storage; i++)
        rc = mtd_storage_exemplars(app->storage, tenant, sels[i]->ms, sels[i]->nms, start,
                                   end, &sets[i], &err);
    struct obs_sbuf b;
    obs_sbuf_init(&b);
    obs_sbuf_puts(&b, "{\"status\":\"success\",\"data\":[");
    size_t out = 0;
    for (size_t i = 0; i < nsel && rc == 0; i++) {
        for (size_t k = 0; sets[i] && k < sets[i]->nseries; k++) {
            const struct mtd_exemplar_series *es = &sets[i]->series[k];
            int dup = 0; /* the same series through an earlier selector */
            for (size_t j = 0; j < i && !dup; j++)
                for (size_t m = 0; sets[j] && m < sets[j]->nseries && !dup; m++)
                    dup = labels_equal(es->labels, es->nlabels, sets[j]->series[m].labels,
                                       sets[j]->series[m].nlabels);
            if (dup || es->n == 0)
                continue;
            if (out++)
                obs_sbuf_putc(&b, ',');
            obs_sbuf_puts(&b, "{\"seriesLabels\":");
            put_labels_obj(&b, es->labels, es->nlabels);
            obs_sbuf_puts(&b, ",\"exemplars\":[");
            for (size_t x = 0; x < es->n; x++) {
                const struct mtd_exemplar *ex = &es->ex[x];
                obs_sbuf_puts(&b, x ? ",{\"labels\":" : "{\"labels\":");
                put_labels_obj(&b, ex->labels, ex->nlabels);
                obs_sbuf_puts(&b, ",\"value\":\"");
                obs_sbuf_prom_float(&b, ex->v);
                obs_sbuf_puts(&b, "\",\"timestamp\":");
                mtd_json_ts(&b, ex->t);
                obs_sbuf_putc(&b, '}');
            }
            obs_sbuf_puts(&b, "]}");
        }
    }
    obs_sbuf_puts(&b, "]}");
    for (size_t i = 0; i < nsel; i++)
        mtd_exemplar_set_free(sets[i]);
    mtd_ql_expr_free(e);
    if (rc != 0) {
        obs_sbuf_deinit(&b);
        obs_http_reply_prom_error(r, 500, "internal", "%s", err.msg[0] ? err.msg
                                                                       : "out of memory");
        return;
    }
    reply_json(r, &b);
}

/* ---- parse_query ----------------------------------------------------------------------- */

static const char *op_str(enum ql_op op)
{
    static const char *const s[] = {"", "+", "-", "*", "/", "%", "^", "atan2", "==", "!=", ">",
                                    "<", ">=", "<=", "and", "or", "unless", "</", ">/"};
    return (int)op >= 0 && (size_t)op < sizeof s / sizeof s[0] ? s[op] : "";
}

static const char *agg_str(enum ql_agg a)
{
    static const char *const s[] = {"", "sum", "avg", "min", "max", "count", "group", "stddev",
                                    "stdvar", "topk", "bottomk", "quantile", "count_values",
                                    "limitk", "limit_ratio"};
    return (int)a >= 0 && (size_t)a < sizeof s / sizeof s[0] ? s[a] : "";
}

static const char *vtype_str(enum mtd_ql_vtype t)
{
    switch (t) {
    case MTD_QL_SCALAR: return "scalar";
    case MTD_QL_VECTOR: return "vector";
    case MTD_QL_MATRIX: return "matrix";
    case MTD_QL_STRING: return "string";
    default: return "none";
    }
}

static const char *mtype_str(enum obs_match_type t)
{
    switch (t) {
    case OBS_MATCH_EQ: return "=";
    case OBS_MATCH_NEQ: return "!=";
    case OBS_MATCH_RE: return "=~";
    default: return "!~";
    }
}

static void put_strlist(struct obs_sbuf *b, char **v, size_t n)
{
    obs_sbuf_putc(b, '[');
    for (size_t i = 0; i < n; i++) {
        if (i)
            obs_sbuf_putc(b, ',');
        put_str(b, v[i]);
    }
    obs_sbuf_putc(b, ']');
}

/* "matchers":[...] with a metric name written outside the braces last, as Prometheus'
 * parser appends it after the braces' matchers (metricsd's parser puts it first). */
static void put_matchers(struct obs_sbuf *b, const struct ql_node *n)
{
    int name_last = n->name && n->nms > 1 && strcmp(n->ms[0].name, "__name__") == 0 &&
                    n->ms[0].type == OBS_MATCH_EQ && strcmp(n->ms[0].value, n->name) == 0;
    obs_sbuf_puts(b, "\"matchers\":[");
    for (size_t k = 0; k < n->nms; k++) {
        size_t i = name_last ? (k + 1 < n->nms ? k + 1 : 0) : k;
        if (k)
            obs_sbuf_putc(b, ',');
        obs_sbuf_puts(b, "{\"name\":");
        put_str(b, n->ms[i].name);
        obs_sbuf_puts(b, ",\"type\":");
        put_str(b, mtype_str(n->ms[i].type));
        obs_sbuf_puts(b, ",\"value\":");
        put_str(b, n->ms[i].value);
        obs_sbuf_putc(b, '}');
    }
    obs_sbuf_putc(b, ']');
}

/* "startOrEnd":..,"timestamp":.. of a selector or subquery. */
static void put_at(struct obs_sbuf *b, const struct ql_node *n)
{
    obs_sbuf_puts(b, ",\"startOrEnd\":");
    obs_sbuf_puts(b, n->at_kind == QAT_START ? "\"start\"" : n->at_kind == QAT_END ? "\"end\""
                                                                                  : "null");
    if (n->at_kind == QAT_TS)
        obs_sbuf_printf(b, ",\"timestamp\":%lld", (long long)n->at);
    else
        obs_sbuf_puts(b, ",\"timestamp\":null");
}

static int ast_json(struct obs_sbuf *b, const struct ql_node *n, int depth)
{
    if (depth > 1000)
        return OBS_ELIMIT;
    if (n == NULL) {
        obs_sbuf_puts(b, "null");
        return 0;
    }
    int rc = 0;
    switch (n->kind) {
    case QN_STEPINV:
        return ast_json(b, n->lhs, depth + 1);
    case QN_NUM: {
        char num[64];
        obs_fmt_float(num, sizeof num, n->num);
        obs_sbuf_puts(b, "{\"type\":\"numberLiteral\",\"val\":");
        put_str(b, num);
        obs_sbuf_putc(b, '}');
        return 0;
    }
    case QN_STR:
        obs_sbuf_puts(b, "{\"type\":\"stringLiteral\",\"val\":");
        put_str(b, n->str);
        obs_sbuf_putc(b, '}');
        return 0;
    case QN_VSEL:
        obs_sbuf_putc(b, '{');
        put_matchers(b, n);
        obs_sbuf_puts(b, ",\"name\":");
        put_str(b, n->name);
        obs_sbuf_printf(b, ",\"offset\":%lld", (long long)n->offset);
        put_at(b, n);
        obs_sbuf_puts(b, ",\"type\":\"vectorSelector\"}");
        return 0;
    case QN_MSEL: {
        const struct ql_node *vs = n->lhs;
        if (vs == NULL || vs->kind != QN_VSEL)
            return OBS_EINVAL;
        obs_sbuf_putc(b, '{');
        put_matchers(b, vs);
        obs_sbuf_puts(b, ",\"name\":");
        put_str(b, vs->name);
        obs_sbuf_printf(b, ",\"offset\":%lld,\"range\":%lld", (long long)vs->offset,
                        (long long)n->range);
        put_at(b, vs);
        obs_sbuf_puts(b, ",\"type\":\"matrixSelector\"}");
        return 0;
    }
    case QN_SUBQ:
        obs_sbuf_puts(b, "{\"expr\":");
        rc = ast_json(b, n->lhs, depth + 1);
        obs_sbuf_printf(b, ",\"offset\":%lld,\"range\":%lld", (long long)n->offset,
                        (long long)n->range);
        put_at(b, n);
        obs_sbuf_printf(b, ",\"step\":%lld", (long long)n->step);
        obs_sbuf_puts(b, ",\"type\":\"subquery\"}");
        return rc;
    case QN_PAREN:
        if (n->op == QOP_ADD) /* "+x": metricsd's parser keeps it as marked parentheses */
            goto unary;
        obs_sbuf_puts(b, "{\"expr\":");
        rc = ast_json(b, n->lhs, depth + 1);
        obs_sbuf_puts(b, ",\"type\":\"parenExpr\"}");
        return rc;
    case QN_UNARY:
    unary:
        obs_sbuf_puts(b, "{\"expr\":");
        rc = ast_json(b, n->lhs, depth + 1);
        obs_sbuf_puts(b, ",\"op\":");
        put_str(b, n->op == QOP_ADD ? "+" : "-");
        obs_sbuf_puts(b, ",\"type\":\"unaryExpr\"}");
        return rc;
    case QN_BINARY: {
        obs_sbuf_printf(b, "{\"bool\":%s,\"lhs\":", n->bool_mod ? "true" : "false");
        rc = ast_json(b, n->lhs, depth + 1);
        obs_sbuf_puts(b, ",\"matching\":");
        /* Vector matching exists only between two instant vectors; set operators are
         * many-to-many. */
        if (n->lhs && n->rhs && n->lhs->type == MTD_QL_VECTOR &&
            n->rhs->type == MTD_QL_VECTOR) {
            static const char *const card[] = {"one-to-one", "many-to-one", "one-to-many",
                                               "many-to-many"};
            enum ql_card c = n->card;
            if ((n->op == QOP_AND || n->op == QOP_OR || n->op == QOP_UNLESS) &&
                c == QC_ONE_ONE)
                c = QC_MANY_MANY;
            obs_sbuf_puts(b, "{\"card\":");
            put_str(b, card[(int)c & 3]);
            obs_sbuf_puts(b, ",\"include\":");
            put_strlist(b, n->include, n->ninclude);
            obs_sbuf_puts(b, ",\"labels\":");
            put_strlist(b, n->mlabels, n->nmlabels);
            obs_sbuf_printf(b, ",\"on\":%s}", n->on ? "true" : "false");
        } else {
            obs_sbuf_puts(b, "null");
        }
        obs_sbuf_puts(b, ",\"op\":");
        put_str(b, op_str(n->op));
        obs_sbuf_puts(b, ",\"rhs\":");
        if (rc == 0)
            rc = ast_json(b, n->rhs, depth + 1);
        obs_sbuf_puts(b, ",\"type\":\"binaryExpr\"}");
        return rc;
    }
    case QN_AGG:
        obs_sbuf_puts(b, "{\"expr\":");
        rc = ast_json(b, n->lhs, depth + 1);
        obs_sbuf_puts(b, ",\"grouping\":");
        put_strlist(b, n->grouping, n->ngrouping);
        obs_sbuf_puts(b, ",\"op\":");
        put_str(b, agg_str(n->agg));
        obs_sbuf_puts(b, ",\"param\":");
        if (rc == 0)
            rc = ast_json(b, n->param, depth + 1);
        obs_sbuf_printf(b, ",\"type\":\"aggregation\",\"without\":%s}",
                        n->without ? "true" : "false");
        return rc;
    case QN_CALL: {
        obs_sbuf_puts(b, "{\"args\":[");
        for (size_t i = 0; i < n->nargs && rc == 0; i++) {
            if (i)
                obs_sbuf_putc(b, ',');
            rc = ast_json(b, n->args[i], depth + 1);
        }
        obs_sbuf_puts(b, "],\"func\":{\"argTypes\":[");
        const struct ql_func *f = n->fn;
        for (int i = 0; f && i < f->nargs && i < 4 && f->argt[i] != MTD_QL_NONE; i++) {
            if (i)
                obs_sbuf_putc(b, ',');
            put_str(b, vtype_str(f->argt[i]));
        }
        obs_sbuf_puts(b, "],\"name\":");
        put_str(b, f ? f->name : "");
        obs_sbuf_puts(b, ",\"returnType\":");
        put_str(b, vtype_str(f ? f->ret : MTD_QL_NONE));
        obs_sbuf_printf(b, ",\"variadic\":%d},\"type\":\"call\"}", f ? f->variadic : 0);
        return rc;
    }
    }
    return OBS_EINVAL;
}

/* The parsed "query" parameter of r, or NULL after replying with Prometheus' error (400
 * bad_data with the parse error, 500 when out of memory). Free with mtd_ql_expr_free(). */
static struct mtd_ql_expr *parse_query_param(struct obs_http_req *r)
{
    const char *q = obs_http_req_param(r, "query");
    struct mtd_ql_expr *e = NULL;
    struct obs_err err = {0};
    int rc = mtd_ql_parse(q ? q : "", &e, &err);
    if (rc == OBS_ENOMEM) {
        obs_http_reply_prom_error(r, 500, "internal", "out of memory");
        return NULL;
    }
    if (rc != 0) {
        obs_http_reply_prom_error(r, 400, "bad_data", "invalid parameter \"query\": %s",
                                  err.msg);
        return NULL;
    }
    return e;
}

static void h_parse_query(struct obs_http_req *r, void *arg)
{
    (void)arg;
    struct mtd_ql_expr *e = parse_query_param(r);
    if (e == NULL)
        return;
    int rc;
    struct obs_sbuf b;
    obs_sbuf_init(&b);
    obs_sbuf_puts(&b, "{\"status\":\"success\",\"data\":");
    rc = ast_json(&b, e->root, 0);
    obs_sbuf_puts(&b, "}");
    mtd_ql_expr_free(e);
    if (rc != 0) {
        obs_sbuf_deinit(&b);
        obs_http_reply_prom_error(r, 400, "bad_data", "invalid parameter \"query\": "
                                  "expression cannot be represented as an AST");
        return;
    }
    reply_json(r, &b);
}


/* ---- format_query ---------------------------------------------------------------------- */
/*
 * The query as Prometheus' formatter prints it (promql/parser printer.go String() and
 * prettier.go Pretty(0)): an expression whose one-line form is longer than 100 bytes is split
 * over lines, children indented by two spaces per level. Numbers print as 2.42 (and 3.x up to
 * its FormatFloat change) do; the 3.x constructs print as 3.x's printer.go: unary "+", the
 * trim operators, fill/fill_left/fill_right ("fill (v)"), anchored/smoothed, duration
 * expressions as written (step(), range(), min(), max(), parentheses kept), info(v) without
 * its implied selector, quoted (UTF-8) label names and {"name"} as {__name__="name"}.
 */
#define FMT_MAX_LINE 100

/* Go's %v of a float64 (strconv 'g', shortest): shortest round-trip digits, exponent form
 * ("1e+06", "1.5e-07") when the decimal exponent is below -4 or at least 6. */
static void fmt_go_float(struct obs_sbuf *b, double v)
{
    if (isnan(v)) {
        obs_sbuf_puts(b, "NaN");
        return;
    }
    if (isinf(v)) {
        obs_sbuf_puts(b, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    if (v == 0) {
        obs_sbuf_puts(b, signbit(v) ? "-0" : "0");
        return;
    }
    char e[64];
    int p;
    for (p = 0; p < 17; p++) { /* shortest %.{p}e that reads back */
        snprintf(e, sizeof e, "%.*e", p, v);
        if (strtod(e, NULL) == v)
            break;
    }
    /* e = [-]d[.ddd]e[+-]XX */
    char *ep = strchr(e, 'e');
    int exp10 = atoi(ep + 1);
    *ep = '\0';
    const char *m = e;
    int neg = *m == '-';
    if (neg)
        m++;
    char dig[32];
    int nd = 0;
    for (const char *c = m; *c; c++)
        if (*c >= '0' && *c <= '9')
            dig[nd++] = *c;
    while (nd > 1 && dig[nd - 1] == '0')
        nd--;
    int eprec = 6; /* strconv's precision for the %e decision of the shortest form */
    if (neg)
        obs_sbuf_putc(b, '-');
    if (exp10 < -4 || exp10 >= eprec) {
        obs_sbuf_putc(b, dig[0]);
        if (nd > 1) {
            obs_sbuf_putc(b, '.');
            obs_sbuf_append(b, dig + 1, (size_t)nd - 1);
        }
        obs_sbuf_printf(b, "e%c%02d", exp10 < 0 ? '-' : '+', exp10 < 0 ? -exp10 : exp10);
        return;
    }
    if (exp10 < 0) {
        obs_sbuf_puts(b, "0.");
        for (int i = -1; i > exp10; i--)
            obs_sbuf_putc(b, '0');
        obs_sbuf_append(b, dig, (size_t)nd);
        return;
    }
    for (int i = 0; i <= exp10; i++)
        obs_sbuf_putc(b, i < nd ? dig[i] : '0');
    if (nd > exp10 + 1) {
        obs_sbuf_putc(b, '.');
        obs_sbuf_append(b, dig + exp10 + 1, (size_t)(nd - exp10 - 1));
    }
}

/* Go's strconv.Quote (%q): printable UTF-8 kept, the usual escapes, other bytes \x.. */
static void fmt_go_quote(struct obs_sbuf *b, const char *s)
{
    obs_sbuf_putc(b, '"');
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        switch (*c) {
        case '\a': obs_sbuf_puts(b, "\\a"); continue;
        case '\b': obs_sbuf_puts(b, "\\b"); continue;
        case '\f': obs_sbuf_puts(b, "\\f"); continue;
        case '\n': obs_sbuf_puts(b, "\\n"); continue;
        case '\r': obs_sbuf_puts(b, "\\r"); continue;
        case '\t': obs_sbuf_puts(b, "\\t"); continue;
        case '\v': obs_sbuf_puts(b, "\\v"); continue;
        case '\\': obs_sbuf_puts(b, "\\\\"); continue;
        case '"': obs_sbuf_puts(b, "\\\""); continue;
        default: break;
        }
        if (*c < 0x20 || *c == 0x7f) {
            obs_sbuf_printf(b, "\\x%02x", *c);
            continue;
        }
        if (*c < 0x80) {
            obs_sbuf_putc(b, (char)*c);
            continue;
        }
        /* a well-formed multi-byte sequence is copied; a stray byte is escaped */
        int len = (*c >> 5) == 6 ? 2 : (*c >> 4) == 14 ? 3 : (*c >> 3) == 30 ? 4 : 0;
        int ok = len > 0;
        for (int k = 1; ok && k < len; k++)
            ok = (c[k] & 0xc0) == 0x80;
        if (!ok) {
            obs_sbuf_printf(b, "\\x%02x", *c);
            continue;
        }
        obs_sbuf_append(b, c, (size_t)len);
        c += len - 1;
    }
    obs_sbuf_putc(b, '"');
}

/* prometheus/common model.Duration's String(): y and w only when they divide exactly. */
static void fmt_model_duration(struct obs_sbuf *b, int64_t ms)
{
    if (ms == 0) {
        obs_sbuf_puts(b, "0s");
        return;
    }
    static const struct {
        int64_t mult;
        const char *unit;
        int exact;
    } u[] = {{365LL * 86400000, "y", 1}, {7LL * 86400000, "w", 1}, {86400000, "d", 0},
             {3600000, "h", 0}, {60000, "m", 0}, {1000, "s", 0}, {1, "ms", 0}};
    for (size_t i = 0; i < sizeof u / sizeof u[0]; i++) {
        if (u[i].exact && ms % u[i].mult != 0)
            continue;
        int64_t v = ms / u[i].mult;
        if (v > 0) {
            obs_sbuf_printf(b, "%lld%s", (long long)v, u[i].unit);
            ms -= v * u[i].mult;
        }
    }
}

/* " @ <t>" and " offset <d>" of a selector or subquery. */
static void fmt_at(struct obs_sbuf *b, const struct ql_node *n)
{
    if (n->at_kind == QAT_TS)
        obs_sbuf_printf(b, " @ %.3f", (double)n->at / 1000.0);
    else if (n->at_kind == QAT_START)
        obs_sbuf_puts(b, " @ start()");
    else if (n->at_kind == QAT_END)
        obs_sbuf_puts(b, " @ end()");
}

/* strconv.FormatFloat(v, 'f', -1, 64): the shortest digits that read back, no exponent. */
static void fmt_go_float_f(struct obs_sbuf *b, double v)
{
    if (isnan(v) || isinf(v)) {
        fmt_go_float(b, v);
        return;
    }
    char e[64];
    int p;
    for (p = 0; p < 17; p++) {
        snprintf(e, sizeof e, "%.*e", p, v);
        if (strtod(e, NULL) == v)
            break;
    }
    int exp10 = atoi(strchr(e, 'e') + 1);
    int decimals = p - exp10;
    obs_sbuf_printf(b, "%.*f", decimals > 0 ? decimals : 0, v);
}

/* A duration expression as Prometheus' DurationExpr.String() prints it. */
static void fmt_dur(struct obs_sbuf *b, const struct ql_dur *d, int depth)
{
    if (d == NULL || depth > 1000)
        return;
    static const char *const ops[] = {"", "+", "-", "*", "/", "%", "^"};
    if (d->wrapped)
        obs_sbuf_putc(b, '(');
    switch (d->op) {
    case QD_NUM:
        if (d->dur_lit) {
            double ms = d->num * 1000.0;
            if (ms < 0)
                obs_sbuf_putc(b, '-');
            fmt_model_duration(b, (int64_t)llround(fabs(ms)));
        } else {
            fmt_go_float_f(b, d->num);
        }
        break;
    case QD_STEP: obs_sbuf_puts(b, "step()"); break;
    case QD_RANGE: obs_sbuf_puts(b, "range()"); break;
    case QD_MIN:
    case QD_MAX:
        obs_sbuf_puts(b, d->op == QD_MIN ? "min(" : "max(");
        fmt_dur(b, d->l, depth + 1);
        obs_sbuf_puts(b, ", ");
        fmt_dur(b, d->r, depth + 1);
        obs_sbuf_putc(b, ')');
        break;
    default:
        if (d->l == NULL) { /* unary minus */
            obs_sbuf_putc(b, '-');
            fmt_dur(b, d->r, depth + 1);
            break;
        }
        fmt_dur(b, d->l, depth + 1);
        obs_sbuf_putc(b, ' ');
        obs_sbuf_puts(b, (size_t)d->op < sizeof ops / sizeof ops[0] ? ops[d->op] : "?");
        obs_sbuf_putc(b, ' ');
        fmt_dur(b, d->r, depth + 1);
        break;
    }
    if (d->wrapped)
        obs_sbuf_putc(b, ')');
}

/* "[range]" / "[range:step]" as written (expressions) or from the values. */
static void fmt_range(struct obs_sbuf *b, const struct ql_node *n, int subq)
{
    obs_sbuf_putc(b, '[');
    if (n->range_src)
        fmt_dur(b, n->range_src, 0);
    else
        fmt_model_duration(b, n->range);
    if (subq) {
        obs_sbuf_putc(b, ':');
        if (n->step_src)
            fmt_dur(b, n->step_src, 0);
        else if (n->step != 0)
            fmt_model_duration(b, n->step);
    }
    obs_sbuf_putc(b, ']');
}

/* " anchored" / " smoothed" of a selector (bit 1; bit 2 is the evaluator's). */
static void fmt_ext(struct obs_sbuf *b, const struct ql_node *vs)
{
    if (vs->anchored & 1)
        obs_sbuf_puts(b, " anchored");
    else if (vs->smoothed & 1)
        obs_sbuf_puts(b, " smoothed");
}

static void fmt_offset(struct obs_sbuf *b, const struct ql_node *n)
{
    if (n->offset_src) {
        obs_sbuf_puts(b, " offset ");
        fmt_dur(b, n->offset_src, 0);
    } else if (n->offset > 0) {
        obs_sbuf_puts(b, " offset ");
        fmt_model_duration(b, n->offset);
    } else if (n->offset < 0) {
        obs_sbuf_puts(b, " offset -");
        fmt_model_duration(b, -n->offset);
    }
}

/* A legacy label name ([a-zA-Z_][a-zA-Z0-9_]*); others print quoted (3.x, UTF-8 names). */
static int legacy_label(const char *s)
{
    if (!*s || !(isalpha((unsigned char)*s) || *s == '_'))
        return 0;
    for (; *s; s++)
        if (!(isalnum((unsigned char)*s) || *s == '_'))
            return 0;
    return 1;
}

static void fmt_label_name(struct obs_sbuf *b, const char *s)
{
    if (legacy_label(s))
        obs_sbuf_puts(b, s);
    else
        fmt_go_quote(b, s);
}

static void fmt_list(struct obs_sbuf *b, char **v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (i)
            obs_sbuf_puts(b, ", ");
        fmt_label_name(b, v[i]);
    }
}

static int cmp_cstr(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* name{matchers sorted as strings} without @/offset. */
static int fmt_selector(struct obs_sbuf *b, const struct ql_node *n)
{
    /* a name written inside the braces ({"name"}) is a matcher: printed as __name__="..." */
    const char *name = n->name_braced ? NULL : n->name;
    size_t nms = n->info_sel ? n->nms_user : n->nms; /* info(): only the user's matchers */
    if (name)
        obs_sbuf_puts(b, name);
    char **ms = nms ? obs_calloc(nms, sizeof *ms) : NULL;
    if (nms && ms == NULL)
        return OBS_ENOMEM;
    size_t k = 0;
    int rc = 0;
    for (size_t i = 0; i < nms && rc == 0; i++) {
        const struct obs_matcher *m = &n->ms[i];
        if (name && strcmp(m->name, "__name__") == 0 && m->type == OBS_MATCH_EQ &&
            strcmp(m->value, name) == 0)
            continue;
        struct obs_sbuf one;
        obs_sbuf_init(&one);
        fmt_label_name(&one, m->name);
        obs_sbuf_puts(&one, mtype_str(m->type));
        fmt_go_quote(&one, m->value);
        if (one.oom) {
            obs_sbuf_deinit(&one);
            rc = OBS_ENOMEM;
            break;
        }
        char *t = obs_sbuf_take(&one, NULL);
        if (t == NULL) {
            rc = OBS_ENOMEM;
            break;
        }
        ms[k++] = t;
    }
    if (rc == 0 && k > 0) {
        qsort(ms, k, sizeof *ms, cmp_cstr);
        obs_sbuf_putc(b, '{');
        for (size_t i = 0; i < k; i++) {
            if (i)
                obs_sbuf_putc(b, ',');
            obs_sbuf_puts(b, ms[i]);
        }
        obs_sbuf_putc(b, '}');
    }
    for (size_t i = 0; i < k; i++)
        obs_free(ms[i]);
    obs_free(ms);
    return rc;
}

static int has_param(enum ql_agg a)
{
    return a == QA_TOPK || a == QA_BOTTOMK || a == QA_QUANTILE || a == QA_COUNT_VALUES ||
           a == QA_LIMITK || a == QA_LIMIT_RATIO;
}

/* "sum by (a, b) " / "sum without (a) " / "sum" */
static void fmt_agg_op(struct obs_sbuf *b, const struct ql_node *n)
{
    obs_sbuf_puts(b, agg_str(n->agg));
    if (n->without || n->ngrouping > 0) {
        obs_sbuf_puts(b, n->without ? " without (" : " by (");
        fmt_list(b, n->grouping, n->ngrouping);
        obs_sbuf_puts(b, ") ");
    }
}

/* " bool on (a) group_left (b)" part of a binary expression, after the operator. */
static void fmt_bin_mod(struct obs_sbuf *b, const struct ql_node *n)
{
    if (n->bool_mod)
        obs_sbuf_puts(b, " bool");
    if (n->on || n->nmlabels > 0) {
        obs_sbuf_puts(b, n->on ? " on (" : " ignoring (");
        fmt_list(b, n->mlabels, n->nmlabels);
        obs_sbuf_putc(b, ')');
        if (n->card == QC_MANY_ONE || n->card == QC_ONE_MANY) {
            obs_sbuf_puts(b, n->card == QC_MANY_ONE ? " group_left (" : " group_right (");
            fmt_list(b, n->include, n->ninclude);
            obs_sbuf_putc(b, ')');
        }
    }
    int same = n->fill_l && n->fill_r &&
               (n->fill_lv == n->fill_rv || (isnan(n->fill_lv) && isnan(n->fill_rv)));
    if (same) {
        obs_sbuf_puts(b, " fill (");
        fmt_go_float(b, n->fill_lv);
        obs_sbuf_putc(b, ')');
    } else {
        if (n->fill_l) {
            obs_sbuf_puts(b, " fill_left (");
            fmt_go_float(b, n->fill_lv);
            obs_sbuf_putc(b, ')');
        }
        if (n->fill_r) {
            obs_sbuf_puts(b, " fill_right (");
            fmt_go_float(b, n->fill_rv);
            obs_sbuf_putc(b, ')');
        }
    }
}

/* Arguments a printer shows: info(v)'s synthesized label selector is not in the query. */
static size_t fmt_nargs(const struct ql_node *n)
{
    size_t k = n->nargs;
    while (k > 0 && n->args[k - 1]->kind == QN_VSEL && n->args[k - 1]->info_sel == 2)
        k--;
    return k;
}

static const struct ql_node *skip_stepinv(const struct ql_node *n)
{
    while (n && n->kind == QN_STEPINV)
        n = n->lhs;
    return n;
}

/* One-line form (printer.go String()). */
static int fmt_expr(struct obs_sbuf *b, const struct ql_node *n, int depth)
{
    n = skip_stepinv(n);
    if (n == NULL || depth > 1000)
        return OBS_EINVAL;
    int rc = 0;
    switch (n->kind) {
    case QN_NUM:
        fmt_go_float(b, n->num);
        return 0;
    case QN_STR:
        fmt_go_quote(b, n->str);
        return 0;
    case QN_VSEL:
        rc = fmt_selector(b, n);
        fmt_at(b, n);
        fmt_ext(b, n);
        fmt_offset(b, n);
        return rc;
    case QN_MSEL: {
        const struct ql_node *vs = n->lhs;
        if (vs == NULL || vs->kind != QN_VSEL)
            return OBS_EINVAL;
        rc = fmt_selector(b, vs);
        fmt_range(b, n, 0);
        fmt_ext(b, vs);
        fmt_at(b, vs);
        fmt_offset(b, vs);
        return rc;
    }
    case QN_SUBQ:
        rc = fmt_expr(b, n->lhs, depth + 1);
        fmt_range(b, n, 1);
        fmt_at(b, n);
        fmt_offset(b, n);
        return rc;
    case QN_PAREN:
        if (n->op == QOP_ADD) { /* unary plus */
            obs_sbuf_putc(b, '+');
            return fmt_expr(b, n->lhs, depth + 1);
        }
        obs_sbuf_putc(b, '(');
        rc = fmt_expr(b, n->lhs, depth + 1);
        obs_sbuf_putc(b, ')');
        return rc;
    case QN_UNARY:
        obs_sbuf_puts(b, n->op == QOP_ADD ? "+" : "-");
        return fmt_expr(b, n->lhs, depth + 1);
    case QN_BINARY:
        rc = fmt_expr(b, n->lhs, depth + 1);
        obs_sbuf_putc(b, ' ');
        obs_sbuf_puts(b, op_str(n->op));
        fmt_bin_mod(b, n);
        obs_sbuf_putc(b, ' ');
        if (rc == 0)
            rc = fmt_expr(b, n->rhs, depth + 1);
        return rc;
    case QN_AGG:
        fmt_agg_op(b, n);
        obs_sbuf_putc(b, '(');
        if (has_param(n->agg) && n->param) {
            rc = fmt_expr(b, n->param, depth + 1);
            obs_sbuf_puts(b, ", ");
        }
        if (rc == 0)
            rc = fmt_expr(b, n->lhs, depth + 1);
        obs_sbuf_putc(b, ')');
        return rc;
    case QN_CALL:
        obs_sbuf_puts(b, n->fn ? n->fn->name : "");
        obs_sbuf_putc(b, '(');
        for (size_t i = 0; i < fmt_nargs(n) && rc == 0; i++) {
            if (i)
                obs_sbuf_puts(b, ", ");
            rc = fmt_expr(b, n->args[i], depth + 1);
        }
        obs_sbuf_putc(b, ')');
        return rc;
    case QN_STEPINV:
        break;
    }
    return OBS_EINVAL;
}

/* Length of the one-line form (bytes), or -1 on error. */
static long fmt_len(const struct ql_node *n, int depth)
{
    struct obs_sbuf t;
    obs_sbuf_init(&t);
    int rc = fmt_expr(&t, n, depth);
    long len = rc == 0 && !t.oom ? (long)t.len : -1;
    obs_sbuf_deinit(&t);
    return len;
}

static void fmt_indent(struct obs_sbuf *b, int level)
{
    for (int i = 0; i < level; i++)
        obs_sbuf_puts(b, "  ");
}

/* Multi-line form (prettier.go Pretty(level)). */
static int fmt_pretty(struct obs_sbuf *b, const struct ql_node *n, int level, int depth)
{
    n = skip_stepinv(n);
    if (n == NULL || depth > 1000)
        return OBS_EINVAL;
    long len = fmt_len(n, depth);
    if (len < 0)
        return OBS_EINVAL;
    int split = len > FMT_MAX_LINE;
    int rc = 0;
    if (!split || n->kind == QN_NUM || n->kind == QN_STR || n->kind == QN_VSEL ||
        n->kind == QN_MSEL) {
        fmt_indent(b, level);
        return fmt_expr(b, n, depth);
    }
    switch (n->kind) {
    case QN_PAREN:
        if (n->op == QOP_ADD)
            goto unary;
        fmt_indent(b, level);
        obs_sbuf_puts(b, "(\n");
        rc = fmt_pretty(b, n->lhs, level + 1, depth + 1);
        obs_sbuf_putc(b, '\n');
        fmt_indent(b, level);
        obs_sbuf_putc(b, ')');
        return rc;
    case QN_UNARY:
    unary: {
        /* the child printed at the same level, its indent replaced by the operator */
        struct obs_sbuf c;
        obs_sbuf_init(&c);
        rc = fmt_pretty(&c, n->lhs, level, depth + 1);
        fmt_indent(b, level);
        obs_sbuf_puts(b, n->op == QOP_ADD ? "+" : "-");
        const char *p = c.p ? c.p : "";
        size_t l = c.len;
        while (l > 0 && (*p == ' ' || *p == '\n' || *p == '\t')) {
            p++;
            l--;
        }
        while (l > 0 && (p[l - 1] == ' ' || p[l - 1] == '\n' || p[l - 1] == '\t'))
            l--;
        obs_sbuf_append(b, p, l);
        obs_sbuf_deinit(&c);
        return rc;
    }
    case QN_BINARY:
        rc = fmt_pretty(b, n->lhs, level + 1, depth + 1);
        obs_sbuf_putc(b, '\n');
        fmt_indent(b, level);
        obs_sbuf_puts(b, op_str(n->op));
        fmt_bin_mod(b, n);
        obs_sbuf_putc(b, '\n');
        if (rc == 0)
            rc = fmt_pretty(b, n->rhs, level + 1, depth + 1);
        return rc;
    case QN_AGG:
        fmt_indent(b, level);
        fmt_agg_op(b, n);
        obs_sbuf_puts(b, "(\n");
        if (has_param(n->agg) && n->param) {
            rc = fmt_pretty(b, n->param, level + 1, depth + 1);
            obs_sbuf_puts(b, ",\n");
        }
        if (rc == 0)
            rc = fmt_pretty(b, n->lhs, level + 1, depth + 1);
        obs_sbuf_putc(b, '\n');
        fmt_indent(b, level);
        obs_sbuf_putc(b, ')');
        return rc;
    case QN_CALL:
        fmt_indent(b, level);
        obs_sbuf_puts(b, n->fn ? n->fn->name : "");
        obs_sbuf_puts(b, "(\n");
        for (size_t i = 0; i < fmt_nargs(n) && rc == 0; i++) {
            rc = fmt_pretty(b, n->args[i], level + 1, depth + 1);
            obs_sbuf_puts(b, i + 1 < fmt_nargs(n) ? ",\n" : "\n");
        }
        fmt_indent(b, level);
        obs_sbuf_putc(b, ')');
        return rc;
    case QN_SUBQ:
        rc = fmt_pretty(b, n->lhs, level, depth + 1);
        fmt_range(b, n, 1);
        fmt_at(b, n);
        fmt_offset(b, n);
        return rc;
    default:
        break;
    }
    return OBS_EINVAL;
}

static void h_format_query(struct obs_http_req *r, void *arg)
{
    (void)arg;
    struct mtd_ql_expr *e = parse_query_param(r);
    if (e == NULL)
        return;
    int rc;
    struct obs_sbuf t;
    obs_sbuf_init(&t);
    rc = fmt_pretty(&t, e->root, 0, 0);
    mtd_ql_expr_free(e);
    if (rc != 0 || t.oom) {
        obs_sbuf_deinit(&t);
        obs_http_reply_prom_error(r, 500, "internal", "cannot format the expression");
        return;
    }
    struct obs_sbuf b;
    obs_sbuf_init(&b);
    obs_sbuf_puts(&b, "{\"status\":\"success\",\"data\":");
    obs_sbuf_json_str(&b, t.p ? t.p : "", t.len);
    obs_sbuf_putc(&b, '}');
    obs_sbuf_deinit(&t);
    reply_json(r, &b);
}

/* ---- scrape and rule APIs metricsd has no data for ------------------------------------- */
/* metricsd scrapes nothing and (without the ruler) evaluates no rules; Grafana and clients
 * still call these, and Prometheus with nothing configured answers these empty shapes. */

static void reply_const(struct obs_http_req *r, const char *data)
{
    struct obs_sbuf b;
    obs_sbuf_init(&b);
    obs_sbuf_puts(&b, "{\"status\":\"success\",\"data\":");
    obs_sbuf_puts(&b, data);
    obs_sbuf_putc(&b, '}');
    reply_json(r, &b);
}

static void h_targets_metadata(struct obs_http_req *r, void *arg)
{
    (void)arg;
    const char *l = obs_http_req_param(r, "limit");
    if (l && *l) {
        char *end;
        errno = 0;
        long long v = strtoll(l, &end, 10);
        (void)v;
        if (*end != '\0' || end == l || errno == ERANGE || isspace((unsigned char)*l)) {
            obs_http_reply_prom_error(r, 400, "bad_data", "limit must be a number");
            return;
        }
    }
    const char *mt = obs_http_req_param(r, "match_target");
    if (mt && *mt) {
        /* a selector; Prometheus 2.42 accepts {} here */
        struct mtd_ql_expr *e = NULL;
        struct obs_err err = {0};
        int rc = mtd_ql_parse(mt, &e, &err);
        int sel = rc == 0 && skip_stepinv(e->root) && skip_stepinv(e->root)->kind == QN_VSEL;
        mtd_ql_expr_free(e);
        if (rc == OBS_ENOMEM) {
            obs_http_reply_prom_error(r, 500, "internal", "out of memory");
            return;
        }
        if (rc != 0 && strstr(err.msg, "at least one non-empty matcher") == NULL) {
            obs_http_reply_prom_error(r, 400, "bad_data", "invalid parameter \"match_target\": "
                                      "%s", err.msg);
            return;
        }
        if (rc == 0 && !sel) {
            obs_http_reply_prom_error(r, 400, "bad_data", "invalid parameter \"match_target\": "
                                      "1:1: parse error: unexpected expression, expected a "
                                      "selector");
            return;
        }
    }
    reply_const(r, "[]");
}

static void h_alertmanagers(struct obs_http_req *r, void *arg)
{
    (void)arg;
    reply_const(r, "{\"activeAlertmanagers\":[],\"droppedAlertmanagers\":[]}");
}

static void h_scrape_pools(struct obs_http_req *r, void *arg)
{
    (void)arg;
    reply_const(r, "{\"scrapePools\":[]}");
}

static void h_options(struct obs_http_req *r, void *arg)
{
    (void)arg;
    obs_http_reply(r, 204, NULL, NULL, 0);
}

/* Replaced by the ruler's own handlers when the ruler runs (registered later). */
static void h_rules_none(struct obs_http_req *r, void *arg)
{
    (void)arg;
    const char *t = obs_http_req_param(r, "type");
    if (t && *t && strcmp(t, "alert") != 0 && strcmp(t, "record") != 0) {
        obs_http_reply_prom_error(r, 400, "bad_data", "invalid parameter \"type\": not "
                                  "supported value \"%.200s\"", t);
        return;
    }
    reply_const(r, "{\"groups\":[]}");
}

/* Prometheus without --web.enable-admin-api answers its admin routes with this 500. */
static void h_admin_disabled(struct obs_http_req *r, void *arg)
{
    (void)arg;
    obs_http_reply_prom_error(r, 500, "unavailable", "admin APIs disabled");
}

static void h_alerts_none(struct obs_http_req *r, void *arg)
{
    (void)arg;
    reply_const(r, "{\"alerts\":[]}");
}

/* ---- registration ---------------------------------------------------------------------- */

/*
 * Register the status endpoints above on ctx->http (all targets that serve the read API
 * call this through mtd_api_meta_register). Returns 0 or OBS_ENOMEM. Loop thread, at init.
 */
int mtd_api_status_register(struct obs_ctx *ctx)
{
    /* Prometheus (Go) HTTP behaviour: forms, strict methods, JSON escapes (obs_http.h) */
    static const struct {
        const char *methods, *path;
        obs_http_handler fn;
    } routes[] = {
        {"GET", "/api/v1/status/buildinfo", h_buildinfo},
        {"GET", "/api/v1/status/tsdb", h_tsdb},
        {"GET", "/api/v1/status/config", h_config},
        {"GET", "/api/v1/status/flags", h_flags},
        {"GET", "/api/v1/status/runtimeinfo", h_runtimeinfo},
        {"GET", "/api/v1/status/walreplay", h_walreplay},
        {"GET", "/api/v1/targets", h_targets},
        {"GET", "/api/v1/targets/metadata", h_targets_metadata},
        {"GET", "/api/v1/alertmanagers", h_alertmanagers},
        {"GET", "/api/v1/scrape_pools", h_scrape_pools},
        {"GET", "/api/v1/rules", h_rules_none},
        {"GET", "/api/v1/alerts", h_alerts_none},
        {"GET,POST", "/api/v1/query_exemplars", h_exemplars},
        {"GET,POST", "/api/v1/parse_query", h_parse_query},
        {"GET,POST", "/api/v1/format_query", h_format_query},
        {"POST,PUT", "/api/v1/admin/tsdb/delete_series", h_admin_disabled},
        {"POST,PUT", "/api/v1/admin/tsdb/clean_tombstones", h_admin_disabled},
        {"POST,PUT", "/api/v1/admin/tsdb/snapshot", h_admin_disabled},
    };
    const unsigned go = OBS_HTTP_GO_FORM | OBS_HTTP_STRICT_METHODS | OBS_HTTP_GO_JSON;
    int rc = 0;
    (void)status_of(ctx);
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
        rc |= obs_http_route_opts(ctx->http, routes[i].methods, routes[i].path, 0, go,
                                  routes[i].fn, ctx);
    /* Prometheus answers OPTIONS on every /api/v1/ path with 204 (CORS preflight); the
     * catch-all leaves other methods on unknown paths at 404. */
    rc |= obs_http_route_opts(ctx->http, "OPTIONS", "/api/v1/*", 0, OBS_HTTP_METHODS_ONLY,
                              h_options, ctx);
    return rc ? OBS_ENOMEM : 0;
}
