/*
 * app.c -- logd's shared state: setup binds the Loki-shaped config sections into
 * struct lgd_app (logd.h) and creates the self-metrics; teardown frees it.
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "core/obs_mem.h"
#include "logd/logd.h"
#include "metrics/obs_metrics.h"

#define L(f) offsetof(struct lgd_limits, f)
static const struct obs_cfmap limits_map[] = {
    {"max_line_size", OBS_CFT_BYTES, "256KB", L(max_line_size),
     "Longest log line accepted (0 = unlimited)", NULL, NULL},
    {"max_line_size_truncate", OBS_CFT_BOOL, "false", L(max_line_size_truncate),
     "Truncate lines over max_line_size instead of rejecting them", NULL, NULL},
    {"ingestion_rate_mb", OBS_CFT_FLOAT, "4", L(ingestion_rate_mb),
     "Per-tenant ingestion rate limit in MiB/s (0 = unlimited)", NULL, NULL},
    {"ingestion_burst_size_mb", OBS_CFT_FLOAT, "6", L(ingestion_burst_size_mb),
     "Per-tenant burst size in MiB", NULL, NULL},
    {"reject_old_samples", OBS_CFT_BOOL, "true", L(reject_old_samples),
     "Reject entries older than reject_old_samples_max_age", NULL, NULL},
    {"reject_old_samples_max_age", OBS_CFT_DURATION, "1w", L(reject_old_samples_max_age_ms),
     "Maximum accepted entry age", NULL, NULL},
    {"creation_grace_period", OBS_CFT_DURATION, "10m", L(creation_grace_period_ms),
     "How far in the future entries may be", NULL, NULL},
    {"max_label_names_per_series", OBS_CFT_INT, "15", L(max_label_names_per_series),
     "Most labels a stream may have", NULL, NULL},
    {"max_label_name_length", OBS_CFT_INT, "1024", L(max_label_name_length),
     "Longest label name", NULL, NULL},
    {"max_label_value_length", OBS_CFT_INT, "2048", L(max_label_value_length),
     "Longest label value", NULL, NULL},
    {"max_entries_limit_per_query", OBS_CFT_INT, "5000", L(max_entries_limit_per_query),
     "Largest `limit` a log query may ask for", NULL, NULL},
    {"max_query_series", OBS_CFT_INT, "500", L(max_query_series),
     "Most series a metric query may return", NULL, NULL},
    {"max_streams_per_user", OBS_CFT_INT, "0", L(max_streams_per_user),
     "Most streams per tenant (0 = unlimited)", NULL, NULL},
    {"max_global_streams_per_user", OBS_CFT_IGNORE, NULL, 0, "accepted (no ring yet)", NULL,
     NULL},
    {"max_query_length", OBS_CFT_DURATION, "721h", L(max_query_length_ms),
     "Longest query time range (0 = unlimited)", NULL, NULL},
    {"retention_period", OBS_CFT_IGNORE, NULL, 0, "accepted; no retention yet", NULL, NULL},
    {"allow_structured_metadata", OBS_CFT_IGNORE, NULL, 0, "accepted; always allowed", NULL,
     NULL},
    {"max_cache_freshness_per_query", OBS_CFT_IGNORE, NULL, 0, "accepted", NULL, NULL},
    {"split_queries_by_interval", OBS_CFT_IGNORE, NULL, 0, "accepted", NULL, NULL},
    {"per_stream_rate_limit", OBS_CFT_IGNORE, NULL, 0, "accepted", NULL, NULL},
    {"per_stream_rate_limit_burst", OBS_CFT_IGNORE, NULL, 0, "accepted", NULL, NULL},
    {"max_query_parallelism", OBS_CFT_IGNORE, NULL, 0, "accepted", NULL, NULL},
    {"volume_enabled", OBS_CFT_IGNORE, NULL, 0, "accepted", NULL, NULL},
    {NULL, 0, NULL, 0, NULL, NULL, NULL},
};
#undef L

static const struct obs_cfmap wal_map[] = {
    {"enabled", OBS_CFT_BOOL, "true", offsetof(struct lgd_wal_cfg, enabled),
     "Write every accepted push to the WAL before acknowledging it", NULL, NULL},
    {"dir", OBS_CFT_STR, "", offsetof(struct lgd_wal_cfg, dir),
     "WAL directory (default <common.path_prefix>/wal)", NULL, NULL},
    {"flush_on_shutdown", OBS_CFT_IGNORE, NULL, 0, "accepted", NULL, NULL},
    {"replay_memory_ceiling", OBS_CFT_IGNORE, NULL, 0, "accepted", NULL, NULL},
    {"checkpoint_duration", OBS_CFT_IGNORE, NULL, 0, "accepted", NULL, NULL},
    {NULL, 0, NULL, 0, NULL, NULL, NULL},
};

static const struct obs_cfmap ingester_map[] = {
    {"wal", OBS_CFT_SECTION, NULL, offsetof(struct lgd_ingester_cfg, wal), "WAL settings",
     wal_map, NULL},
    {"lifecycler", OBS_CFT_IGNORE, NULL, 0, "accepted (no ring yet)", NULL, NULL},
    {"chunk_idle_period", OBS_CFT_IGNORE, NULL, 0, "accepted", NULL, NULL},
    {"chunk_block_size", OBS_CFT_IGNORE, NULL, 0, "accepted", NULL, NULL},
    {"chunk_target_size", OBS_CFT_IGNORE, NULL, 0, "accepted", NULL, NULL},
    {"chunk_retain_period", OBS_CFT_IGNORE, NULL, 0, "accepted", NULL, NULL},
    {"chunk_encoding", OBS_CFT_IGNORE, NULL, 0, "accepted", NULL, NULL},
    {"max_chunk_age", OBS_CFT_IGNORE, NULL, 0, "accepted", NULL, NULL},
    {"max_transfer_retries", OBS_CFT_IGNORE, NULL, 0, "accepted", NULL, NULL},
    {NULL, 0, NULL, 0, NULL, NULL, NULL},
};

static const struct obs_cfmap common_map[] = {
    {"path_prefix", OBS_CFT_STR, "./data/logd", offsetof(struct lgd_common_cfg, path_prefix),
     "Directory under which logd keeps its data", NULL, NULL},
    {"storage", OBS_CFT_IGNORE, NULL, 0, "accepted; object storage not used yet", NULL, NULL},
    {"replication_factor", OBS_CFT_IGNORE, NULL, 0, "accepted (1 in target=all)", NULL, NULL},
    {"ring", OBS_CFT_IGNORE, NULL, 0, "accepted (no ring yet)", NULL, NULL},
    {"instance_addr", OBS_CFT_IGNORE, NULL, 0, "accepted", NULL, NULL},
    {"compactor_address", OBS_CFT_IGNORE, NULL, 0, "accepted", NULL, NULL},
    {NULL, 0, NULL, 0, NULL, NULL, NULL},
};

int lgd_app_setup(struct obs_ctx *ctx, struct obs_err *err)
{
    struct lgd_app *app = obs_calloc(1, sizeof(*app));
    if (!app)
        return obs_err_set(err, OBS_ENOMEM, "out of memory");
    ctx->app = app;
    lgd_map_init(&app->buckets);
    const struct obs_cf_node *auth = obs_cf_get(ctx->cfg, "auth_enabled");
    if (auth && obs_cf_bool(auth, &app->auth_enabled, err) != 0)
        return err->code;
    int rc;
    if ((rc = obs_cf_bind(obs_cf_get(ctx->cfg, "common"), common_map, &app->common, err)) != 0)
        return rc;
    if ((rc = obs_cf_bind(obs_cf_get(ctx->cfg, "ingester"), ingester_map, &app->ingester, err)))
        return rc;
    if ((rc = obs_cf_bind(obs_cf_get(ctx->cfg, "limits_config"), limits_map, &app->limits,
                          err)) != 0)
        return rc;
    if (app->ingester.wal.dir && app->ingester.wal.dir[0])
        snprintf(app->wal_dir, sizeof(app->wal_dir), "%s", app->ingester.wal.dir);
    else
        snprintf(app->wal_dir, sizeof(app->wal_dir), "%s/wal", app->common.path_prefix);

    app->m_lines = obs_metrics_family(ctx->metrics, OBS_MCOUNTER,
                                      "loki_distributor_lines_received_total",
                                      "The total number of lines received per tenant.", "tenant",
                                      NULL, 0);
    app->m_bytes = obs_metrics_family(ctx->metrics, OBS_MCOUNTER,
                                      "loki_distributor_bytes_received_total",
                                      "The total number of uncompressed bytes received per tenant.",
                                      "tenant", NULL, 0);
    app->m_discarded = obs_metrics_family(ctx->metrics, OBS_MCOUNTER,
                                          "loki_discarded_samples_total",
                                          "The total number of samples that were discarded.",
                                          "reason,tenant", NULL, 0);
    app->m_wal_records = obs_metrics_counter(ctx->metrics, "loki_ingester_wal_records_logged_total",
                                             "Number of WAL records logged.");
    app->m_wal_fail = obs_metrics_counter(ctx->metrics, "loki_ingester_wal_disk_full_failures_total",
                                          "Total number of WAL write failures.");
    app->m_queries = obs_metrics_counter(ctx->metrics, "logd_querier_queries_total",
                                         "Queries answered (query and query_range).");
    return 0;
}

void lgd_app_teardown(struct obs_ctx *ctx)
{
    struct lgd_app *app = ctx->app;
    if (!app)
        return;
    for (size_t i = 0; i < app->buckets.cap; i++)
        if (app->buckets.slots[i].key)
            obs_free(app->buckets.slots[i].val);
    lgd_map_deinit(&app->buckets);
    obs_cf_unbind(common_map, &app->common);
    obs_cf_unbind(ingester_map, &app->ingester);
    obs_cf_unbind(limits_map, &app->limits);
    lgd_store_free(app->store);
    obs_free(app);
    ctx->app = NULL;
}
