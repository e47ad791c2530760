/*
 * logd.h -- logd's shared state (ctx->app) and configuration, read by every component.
 *
 * Config sections bound here (Loki-shaped): auth_enabled, common.path_prefix,
 * ingester.wal.{enabled,dir}, limits_config.*. Accepted and ignored for now (no object
 * storage or ring yet): schema_config, storage_config, compactor, query_range, frontend,
 * frontend_worker, query_scheduler, ruler, memberlist, analytics, table_manager,
 * chunk_store_config, distributor, querier, and common keys other than path_prefix.
 * Everything here lives on the loop thread.
 */
#ifndef LGD_LOGD_H
#define LGD_LOGD_H

#include <stdint.h>

#include "app/obs_app.h"
#include "config/obs_cf.h"
#include "logd/map.h"
#include "logd/push.h"
#include "logd/store.h"

struct obs_wal;
struct obs_mchild;
struct obs_mfamily;

struct lgd_limits {
    int64_t max_line_size;             /* bytes, 0 = unlimited */
    int max_line_size_truncate;
    double ingestion_rate_mb;          /* MiB/s per tenant, 0 = unlimited */
    double ingestion_burst_size_mb;
    int reject_old_samples;
    int64_t reject_old_samples_max_age_ms;
    int64_t creation_grace_period_ms;
    int64_t max_label_names_per_series;
    int64_t max_label_name_length;
    int64_t max_label_value_length;
    int64_t max_entries_limit_per_query;
    int64_t max_query_series;
    int64_t max_streams_per_user;      /* 0 = unlimited */
    int64_t max_query_length_ms;       /* 0 = unlimited */
};

struct lgd_wal_cfg {
    int enabled;
    char *dir;                         /* "" = <path_prefix>/wal */
};

struct lgd_ingester_cfg {
    struct lgd_wal_cfg wal;
};

struct lgd_common_cfg {
    char *path_prefix;
};

/* Per-tenant ingestion token bucket. */
struct lgd_bucket {
    double tokens;
    int64_t last_ns;
};

struct lgd_app {
    int auth_enabled;
    struct lgd_common_cfg common;
    struct lgd_ingester_cfg ingester;
    struct lgd_limits limits;
    char wal_dir[512];

    struct lgd_store *store;           /* owned by the ingester component */
    struct obs_wal *wal;
    int ingester_up;
    struct lgd_map buckets;            /* tenant -> struct lgd_bucket * */

    struct obs_mfamily *m_lines, *m_bytes, *m_discarded;
    struct obs_mchild *m_wal_records, *m_wal_fail, *m_queries;
};

/* The app of a context. */
static inline struct lgd_app *lgd_app(struct obs_ctx *ctx) { return ctx->app; }

/* app.c: desc.setup / desc.teardown */
int lgd_app_setup(struct obs_ctx *ctx, struct obs_err *err);
void lgd_app_teardown(struct obs_ctx *ctx);

/* ingester.c: write a validated batch for tenant to the WAL (fsynced) and the store.
 * Returns 0, OBS_EIO (WAL failed: nothing acknowledged), OBS_ELIMIT (stream limit, err set),
 * or OBS_ENOMEM. On return 0 the batch is durable. */
int lgd_ingester_push(struct lgd_app *app, const char *tenant,
                      const struct lgd_batch_stream *s, size_t n, struct obs_err *err);

/* Component descriptors' init/stop functions. */
int lgd_distributor_init(struct obs_ctx *ctx, struct obs_err *err);
int lgd_ingester_init(struct obs_ctx *ctx, struct obs_err *err);
void lgd_ingester_stop(struct obs_ctx *ctx);
int lgd_querier_init(struct obs_ctx *ctx, struct obs_err *err);

#endif
