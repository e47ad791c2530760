/*
 * app.c -- metricsd's shared state: setup binds the sections several components read
 * (limits, blocks_storage, common) into struct mtd_app (metricsd.h); teardown frees it.
 */
#include <stddef.h>

#include "core/obs_mem.h"
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
     "Accepted; native histogram samples are dropped for now", NULL, NULL},
    {NULL, 0, NULL, 0, NULL, NULL, NULL},
};

static const struct obs_cfmap tsdb_map[] = {
    {"dir", OBS_CFT_STR, "./data/metricsd/tsdb", offsetof(struct mtd_tsdb_cfg, dir),
     "Local TSDB directory (head WAL in <dir>/wal unless ingester.wal_dir is set)", NULL, NULL},
    {"retention_period", OBS_CFT_DURATION, "0s",
     offsetof(struct mtd_tsdb_cfg, retention_period_ms),
     "Local retention (0 = keep; blocks come later)", NULL, NULL},
    {"wal_segment_size_bytes", OBS_CFT_BYTES, "128MiB",
     offsetof(struct mtd_tsdb_cfg, wal_segment_size_bytes), "WAL segment size", NULL, NULL},
    {"block_ranges_period", OBS_CFT_DURATION, "2h",
     offsetof(struct mtd_tsdb_cfg, block_ranges_period_ms), "Head block range", NULL, NULL},
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
    {NULL, 0, NULL, 0, NULL, NULL, NULL},
};

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
    return rc;
}

void mtd_app_teardown(struct obs_ctx *ctx)
{
    struct mtd_app *app = mtd_app_of(ctx);
    if (app == NULL)
        return;
    obs_free(app->distributor);
    obs_cf_unbind(limits_map, &app->limits);
    obs_cf_unbind(blocks_map, &app->blocks);
    obs_free(app);
    ctx->app = NULL;
}
