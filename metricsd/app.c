/*
 * app.c -- metricsd's shared state: setup binds the sections several components read
 * (limits, blocks_storage, common) into struct mtd_app (metricsd.h); teardown frees it.
 * Per-tenant limits: `overrides:` in the config, and Mimir's runtime config file
 * (`runtime_config: {file, period}`, a YAML file with the same `overrides:` map), re-read on
 * a loop timer when its mtime changes; a broken file is logged and the old overrides kept.
 * A tenant's entry lists only the keys it changes; the rest are the global `limits:`.
 */
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/stat.h>

#include <event2/event.h>

#include "core/obs_log.h"
#include "core/obs_mem.h"
#include "metrics/obs_metrics.h"
#include "metricsd/blocks.h"
#include "metricsd/metricsd.h"

static const struct obs_cfmap limits_map[] = {
    {"max_label_names_per_series", OBS_CFT_INT, "30",
     offsetof(struct mtd_limits, max_label_names_per_series),
     "Most labels a series may have (400 above)", NULL, NULL},
    {"max_label_name_length", OBS_CFT_INT, "1024",
     offsetof(struct mtd_limits, max_label_name_length), "Longest label name accepted", NULL,
     NULL},
    {"max_label_value_length", OBS_CFT_INT, "2048",
     offsetof(struct mtd_limits, max_label_value_length), "Longest label value accepted", NULL,
     NULL},
    {"max_global_series_per_user", OBS_CFT_INT, "0",
     offsetof(struct mtd_limits, max_global_series_per_user),
     "Most in-memory series per tenant (0 = unlimited)", NULL, NULL},
    {"creation_grace_period", OBS_CFT_DURATION, "10m",
     offsetof(struct mtd_limits, creation_grace_period_ms),
     "Reject samples this far in the future (0 = off)", NULL, NULL},
    {"max_metadata_length", OBS_CFT_INT, "1024",
     offsetof(struct mtd_limits, max_metadata_length), "Longest metadata help/unit accepted",
     NULL, NULL},
    {"max_fetched_series_per_query", OBS_CFT_INT, "0",
     offsetof(struct mtd_limits, max_fetched_series_per_query),
     "Most series one query may touch (0 = unlimited)", NULL, NULL},
    {"max_fetched_samples_per_query", OBS_CFT_INT, "0",
     offsetof(struct mtd_limits, max_fetched_samples_per_query),
     "Most samples one query may load (0 = unlimited)", NULL, NULL},
    {"max_query_lookback", OBS_CFT_DURATION, "0s",
     offsetof(struct mtd_limits, max_query_lookback_ms),
     "How far back queries may look (0 = unlimited)", NULL, NULL},
    {"native_histograms_ingestion_enabled", OBS_CFT_BOOL, "false",
     offsetof(struct mtd_limits, ingestion_native_histograms),
     "Accepted; native histogram samples are always stored", NULL, NULL},
    {"ingestion_rate", OBS_CFT_FLOAT, "0", offsetof(struct mtd_limits, ingestion_rate),
     "Samples, exemplars and metadata per second per tenant (token bucket; 429 above; "
     "0 = unlimited)", NULL, NULL},
    {"ingestion_burst_size", OBS_CFT_INT, "200000",
     offsetof(struct mtd_limits, ingestion_burst_size), "Token bucket size of ingestion_rate",
     NULL, NULL},
    {"out_of_order_time_window", OBS_CFT_DURATION, "0s",
     offsetof(struct mtd_limits, out_of_order_time_window_ms),
     "Accept out-of-order samples this far behind the tenant's newest sample (0 = "
     "blocks_storage.tsdb.out_of_order_time_window)", NULL, NULL},
    {"max_global_exemplars_per_user", OBS_CFT_INT, "100000",
     offsetof(struct mtd_limits, max_global_exemplars_per_user),
     "Exemplars kept per tenant (circular buffer; 0 = exemplars dropped)", NULL, NULL},
    {"compactor_blocks_retention_period", OBS_CFT_DURATION, "0s",
     offsetof(struct mtd_limits, compactor_blocks_retention_period_ms),
     "Blocks wholly older than this are marked for deletion by the compactor (0 = keep)", NULL,
     NULL},
    {NULL, 0, NULL, 0, NULL, NULL, NULL},
};

/* block_ranges_period: "2h" or Mimir's list "[2h]" (the head cuts blocks of the first). */
static int bind_block_ranges(const struct obs_cf_node *n, void *dst, struct obs_err *err)
{
    if (n != NULL && n->type == OBS_CF_SEQ) {
        if (n->n == 0)
            return obs_cf_error(err, n, "needs at least one duration");
        n = n->items[0];
    }
    int64_t *ms = dst;
    int rc = obs_cf_duration(n, ms, err);
    if (rc == 0 && *ms <= 0)
        return obs_cf_error(err, n, "must be positive");
    return rc;
}

static const struct obs_cfmap tsdb_map[] = {
    {"dir", OBS_CFT_STR, "./data/metricsd/tsdb", offsetof(struct mtd_tsdb_cfg, dir),
     "Local TSDB directory (head WAL in <dir>/wal unless ingester.wal_dir is set)", NULL, NULL},
    {"retention_period", OBS_CFT_DURATION, "0s",
     offsetof(struct mtd_tsdb_cfg, retention_period_ms),
     "Local retention (0 = keep; blocks come later)", NULL, NULL},
    {"wal_segment_size_bytes", OBS_CFT_BYTES, "128MiB",
     offsetof(struct mtd_tsdb_cfg, wal_segment_size_bytes), "WAL segment size", NULL, NULL},
    {"block_ranges_period", OBS_CFT_CUSTOM, "2h",
     offsetof(struct mtd_tsdb_cfg, block_ranges_period_ms),
     "Head block range: a duration or Mimir's list ([2h]; the first is used)", NULL,
     bind_block_ranges},
    {"head_compaction_interval", OBS_CFT_IGNORE, NULL, 0,
     "How often the head is checked for blocks to cut (1m; read by flush.c)", NULL, NULL},
    {"ship_interval", OBS_CFT_IGNORE, NULL, 0, "accepted; blocks are shipped when cut", NULL,
     NULL},
    {"out_of_order_time_window", OBS_CFT_DURATION, "0s",
     offsetof(struct mtd_tsdb_cfg, out_of_order_time_window_ms),
     "Default of limits.out_of_order_time_window", NULL, NULL},
    {NULL, 0, NULL, 0, NULL, NULL, NULL},
};

static const struct obs_cfmap fs_map[] = {
    {"dir", OBS_CFT_STR, "./data/metricsd/blocks", 0, "Filesystem object store directory",
     NULL, NULL},
    {NULL, 0, NULL, 0, NULL, NULL, NULL},
};

static const struct obs_cfmap blocks_map[] = {
    {"backend", OBS_CFT_STR, "filesystem", offsetof(struct mtd_blocks_storage_cfg, backend),
     "Object store backend: filesystem", NULL, NULL},
    {"tsdb", OBS_CFT_SECTION, NULL, offsetof(struct mtd_blocks_storage_cfg, tsdb),
     "Local TSDB settings", tsdb_map, NULL},
    {"filesystem", OBS_CFT_SECTION, NULL, offsetof(struct mtd_blocks_storage_cfg, filesystem),
     "Filesystem backend settings", fs_map, NULL},
    {"s3", OBS_CFT_IGNORE, NULL, 0, "S3 backend settings (bound by obs_store_s3)", NULL, NULL},
    {"bucket_store", OBS_CFT_IGNORE, NULL, 0,
     "Store-gateway settings (bound by store_gateway.c)", NULL, NULL},
    {NULL, 0, NULL, 0, NULL, NULL, NULL},
};

/* ---- per-tenant overrides ---------------------------------------------------------------- */

struct runtime_cfg {
    char *file;
    int64_t period_ms;
};

static const struct obs_cfmap runtime_map[] = {
    {"file", OBS_CFT_STR, "", offsetof(struct runtime_cfg, file),
     "Runtime config file with `overrides:` (tenant -> limits), re-read when it changes", NULL,
     NULL},
    {"period", OBS_CFT_DURATION, "10s", offsetof(struct runtime_cfg, period_ms),
     "How often the runtime config file is checked", NULL, NULL},
    {NULL, 0, NULL, 0, NULL, NULL, NULL},
};

static void overrides_free(struct mtd_override *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        obs_free(v[i].tenant);
    obs_free(v);
}

/* Copy into dst the fields of table whose keys are present in node, from src. */
static void copy_present(const struct obs_cf_node *node, const struct obs_cfmap *table,
                         const void *src, void *dst)
{
    for (const struct obs_cfmap *e = table; e->key; e++) {
        if (obs_cf_get(node, e->key) == NULL)
            continue;
        size_t sz = 0;
        switch (e->type) {
        case OBS_CFT_INT:
        case OBS_CFT_DURATION:
        case OBS_CFT_BYTES: sz = sizeof(int64_t); break;
        case OBS_CFT_FLOAT: sz = sizeof(double); break;
        case OBS_CFT_BOOL: sz = sizeof(int); break;
        default: break;
        }
        if (sz)
            memcpy((char *)dst + e->off, (const char *)src + e->off, sz);
    }
}

/* Parse an `overrides:` map (tenant -> limits map) on top of base. */
static int overrides_parse(const struct obs_cf_node *map, const struct mtd_limits *base,
                           struct mtd_override **out, size_t *nout, struct obs_err *err)
{
    *out = NULL;
    *nout = 0;
    if (map == NULL || map->type == OBS_CF_NULL)
        return 0;
    if (map->type != OBS_CF_MAP)
        return obs_cf_error(err, map, "overrides: expected a map of tenant -> limits");
    struct mtd_override *v = obs_calloc(map->n ? map->n : 1, sizeof *v);
    if (v == NULL)
        return obs_err_set(err, OBS_ENOMEM, "out of memory");
    for (size_t i = 0; i < map->n; i++) {
        const struct obs_cf_node *tn = map->items[i];
        struct mtd_limits tmp;
        memset(&tmp, 0, sizeof tmp);
        int rc = obs_cf_bind(tn, limits_map, &tmp, err);
        if (rc != 0) {
            overrides_free(v, i);
            return rc;
        }
        v[i].tenant = obs_strdup(tn->key ? tn->key : "");
        v[i].limits = *base;
        if (tn->type == OBS_CF_MAP)
            copy_present(tn, limits_map, &tmp, &v[i].limits);
        obs_cf_unbind(limits_map, &tmp);
        if (v[i].tenant == NULL) {
            overrides_free(v, i + 1);
            return obs_err_set(err, OBS_ENOMEM, "out of memory");
        }
    }
    *out = v;
    *nout = map->n;
    return 0;
}

/* (Re)load the runtime config file. On error the previous overrides stay. */
static int runtime_load(struct mtd_app *app, struct obs_err *err)
{
    struct stat st;
    if (stat(app->runtime_file, &st) != 0)
        return obs_err_set(err, OBS_EIO, "runtime config %s: %s", app->runtime_file,
                           strerror(errno));
    int64_t mt = (int64_t)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
    if (mt == app->runtime_mtime_ns && app->runtime_mtime_ns != 0)
        return 0;
    struct obs_cf_node *root = obs_cf_load_file(app->runtime_file, app->ctx->expand_env, err);
    if (root == NULL)
        return err && err->code ? err->code : OBS_EINVAL;
    int rc = 0;
    for (size_t i = 0; root->type == OBS_CF_MAP && i < root->n && rc == 0; i++) {
        const char *k = root->items[i]->key;
        if (k && strcmp(k, "overrides") != 0)
            rc = obs_cf_error(err, root->items[i], "%s: unknown runtime config key "
                              "(supported: overrides)", k);
    }
    struct mtd_override *v = NULL;
    size_t n = 0;
    if (rc == 0)
        rc = overrides_parse(obs_cf_get(root, "overrides"), &app->limits, &v, &n, err);
    obs_cf_free(root);
    if (rc != 0)
        return rc;
    overrides_free(app->ovr_rt, app->novr_rt);
    app->ovr_rt = v;
    app->novr_rt = n;
    app->runtime_mtime_ns = mt;
    obs_clog_info("limits", "runtime config loaded\tfile=%s tenants=%zu", app->runtime_file, n);
    return 0;
}

static void runtime_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct mtd_app *app = arg;
    struct obs_err err = {0};
    if (runtime_load(app, &err) != 0)
        obs_clog_warn("limits", "runtime config not reloaded\terr=\"%s\"", err.msg);
}

void mtd_discard(struct mtd_app *app, const char *reason, const char *tenant, uint64_t n)
{
    if (app == NULL || n == 0 || app->ctx == NULL || app->ctx->metrics == NULL)
        return;
    if (app->f_discarded == NULL)
        app->f_discarded = obs_metrics_family(app->ctx->metrics, OBS_MCOUNTER,
                                              "cortex_discarded_samples_total",
                                              "The total number of samples that were "
                                              "discarded.", "reason,user", NULL, 0);
    struct obs_mchild *c = app->f_discarded ?
                           obs_mfamily_with(app->f_discarded, reason, tenant) : NULL;
    if (c)
        obs_mchild_add(c, (double)n);
}

const struct mtd_limits *mtd_limits_for(const struct mtd_app *app, const char *tenant)
{
    if (tenant) {
        for (size_t i = 0; i < app->novr_rt; i++)
            if (strcmp(app->ovr_rt[i].tenant, tenant) == 0)
                return &app->ovr_rt[i].limits;
        for (size_t i = 0; i < app->novr_cfg; i++)
            if (strcmp(app->ovr_cfg[i].tenant, tenant) == 0)
                return &app->ovr_cfg[i].limits;
    }
    return &app->limits;
}

int mtd_app_setup(struct obs_ctx *ctx, struct obs_err *err)
{
    struct mtd_app *app = obs_calloc(1, sizeof *app);
    if (app == NULL)
        return obs_err_set(err, OBS_ENOMEM, "out of memory");
    app->ctx = ctx;
    ctx->app = app;
    int rc = obs_cf_bind(obs_cf_get(ctx->cfg, "limits"), limits_map, &app->limits, err);
    if (rc == 0)
        rc = obs_cf_bind(obs_cf_get(ctx->cfg, "blocks_storage"), blocks_map, &app->blocks, err);
    app->common = obs_cf_get(ctx->cfg, "common");
    if (rc == 0 && app->limits.out_of_order_time_window_ms == 0)
        app->limits.out_of_order_time_window_ms = app->blocks.tsdb.out_of_order_time_window_ms;
    if (rc == 0)
        rc = overrides_parse(obs_cf_get(ctx->cfg, "overrides"), &app->limits, &app->ovr_cfg,
                             &app->novr_cfg, err);
    struct runtime_cfg rt = {0};
    if (rc == 0)
        rc = obs_cf_bind(obs_cf_get(ctx->cfg, "runtime_config"), runtime_map, &rt, err);
    if (rc == 0 && rt.file && rt.file[0]) {
        app->runtime_file = obs_strdup(rt.file);
        app->runtime_period_ms = rt.period_ms > 0 ? rt.period_ms : 10000;
        rc = app->runtime_file ? runtime_load(app, err) : OBS_ENOMEM;
        if (rc == 0 && ctx->base) {
            struct event *ev = event_new(ctx->base, -1, EV_PERSIST, runtime_tick, app);
            struct timeval tv = {(time_t)(app->runtime_period_ms / 1000),
                                 (suseconds_t)(app->runtime_period_ms % 1000) * 1000};
            if (ev && event_add(ev, &tv) == 0)
                app->runtime_timer = ev;
            else if (ev)
                event_free(ev);
        }
    }
    obs_cf_unbind(runtime_map, &rt);
    return rc;
}

void mtd_app_teardown(struct obs_ctx *ctx)
{
    struct mtd_app *app = mtd_app_of(ctx);
    if (app == NULL)
        return;
    mtd_blocks_teardown(ctx);
    obs_free(app->distributor);
    if (app->runtime_timer)
        event_free(app->runtime_timer);
    overrides_free(app->ovr_cfg, app->novr_cfg);
    overrides_free(app->ovr_rt, app->novr_rt);
    obs_free(app->runtime_file);
    obs_cf_unbind(limits_map, &app->limits);
    obs_cf_unbind(blocks_map, &app->blocks);
    obs_free(app);
    ctx->app = NULL;
}
