/*
 * metricsd.h -- state shared by metricsd's components through ctx->app, and the component
 * descriptors main.c lists.
 *
 * setup (mtd_app_setup, app.c) allocates struct mtd_app and binds the sections every
 * component reads (limits, blocks_storage, common); each component then binds its own
 * section in its init (ingester:, distributor:; querier: and ruler: by their owners).
 * Components run on the one event loop; nothing here is locked.
 */
#ifndef MTD_METRICSD_H
#define MTD_METRICSD_H

#include <stdint.h>

#include "app/obs_app.h"
#include "config/obs_cf.h"

struct mtd_head;
struct mtd_storage;
struct obs_mchild;
struct obs_mfamily;

/* Per-tenant limits (`limits:` section, Mimir's key names and defaults unless noted), with
 * per-tenant overrides (`overrides: {tenant: {key: value}}` in the config, and the same map in
 * the runtime config file, which wins and is re-read when it changes). Use
 * mtd_limits_for(). */
struct mtd_limits {
    int64_t max_label_names_per_series;  /* 30 */
    int64_t max_label_name_length;       /* 1024 */
    int64_t max_label_value_length;      /* 2048 */
    int64_t max_global_series_per_user;  /* 0 = unlimited */
    int64_t creation_grace_period_ms;    /* samples newer than now + this are rejected; 0 = off */
    int64_t max_metadata_length;         /* 1024: help text cap */
    int64_t max_fetched_series_per_query; /* 0 = unlimited (querier) */
    int64_t max_fetched_samples_per_query; /* 0 = unlimited (querier) */
    int64_t max_query_lookback_ms;       /* 0 = unlimited (querier) */
    int ingestion_native_histograms;     /* accepted; native histograms are always stored */
    double ingestion_rate;               /* samples (+exemplars +metadata) per second, token
                                          * bucket per tenant; 0 = unlimited (Mimir: 10000) */
    int64_t ingestion_burst_size;        /* bucket size (200000) */
    int64_t out_of_order_time_window_ms; /* 0 = in order only (then blocks_storage.tsdb's) */
    int64_t max_global_exemplars_per_user; /* exemplar ring per tenant (100000; 0 = none) */
    int64_t compactor_blocks_retention_period_ms; /* blocks older are deleted; 0 = keep */
};

/* One tenant's limits from `overrides:` or the runtime config file. */
struct mtd_override {
    char *tenant;
    struct mtd_limits limits; /* complete: keys not overridden are the global ones */
};

/* blocks_storage: (Mimir's key) */
struct mtd_tsdb_cfg {
    char *dir;                      /* ./data/metricsd/tsdb; the WAL lives in <dir>/wal */
    int64_t retention_period_ms;    /* 0 = keep forever (blocks come in a later issue) */
    int64_t wal_segment_size_bytes; /* 128 MiB */
    int64_t block_ranges_period_ms; /* 2h */
    int64_t out_of_order_time_window_ms; /* default for limits' (0) */
};

struct mtd_blocks_storage_cfg {
    char *backend;       /* "filesystem" */
    struct mtd_tsdb_cfg tsdb;
    struct {
        char *dir;       /* ./data/metricsd/blocks */
    } filesystem;
};

struct mtd_app {
    struct obs_ctx *ctx;
    struct mtd_limits limits;
    struct mtd_blocks_storage_cfg blocks;
    const struct obs_cf_node *common; /* `common:` (borrowed, reserved) */

    /* Set by the ingester's init; NULL when the ingester is not a target. */
    struct mtd_head *head;
    /* The read interface (storage.h) the querier and ruler use: the head for now. */
    struct mtd_storage *storage;

    void *distributor; /* distributor.c's state (obs_free'd at teardown) */
    struct obs_mchild *m_ingested;      /* ingester self-metrics (children of ctx->metrics) */
    struct obs_mchild *m_ingest_failed;

    /* Overrides (app.c): from the config, and from runtime_config.file (reloaded by a timer
     * on the loop, so a pointer from mtd_limits_for stays valid for one request). */
    struct mtd_override *ovr_cfg, *ovr_rt;
    size_t novr_cfg, novr_rt;
    char *runtime_file;
    int64_t runtime_period_ms;
    int64_t runtime_mtime_ns;
    void *runtime_timer; /* struct event * */
    struct obs_mfamily *f_discarded; /* cortex_discarded_samples_total{reason,user} */

    /* Owned by the PromQL helper's components (querier.c, ruler.c): their state. */
    void *querier;
    void *ruler;
    /* Block storage shared by flush, store-gateway, compactor (struct mtd_blocks, blocks.h). */
    void *blocks_state;
};

static inline struct mtd_app *mtd_app_of(struct obs_ctx *ctx)
{
    return (struct mtd_app *)ctx->app;
}

/* The limits of tenant: its override if any, else the global ones. Never NULL; valid until
 * the loop next runs a timer (the runtime file reload), i.e. for the current request. */
const struct mtd_limits *mtd_limits_for(const struct mtd_app *app, const char *tenant);

/* Count n discarded samples in cortex_discarded_samples_total{reason, user} (Mimir's
 * metric; reasons as Mimir's: rate_limited, per_user_series_limit, sample_out_of_order,
 * sample_too_old, new_value_for_timestamp, max_label_names_per_series, label_name_too_long,
 * label_value_too_long, ...). Loop thread. */
void mtd_discard(struct mtd_app *app, const char *reason, const char *tenant, uint64_t n);

/* desc.setup / desc.teardown (app.c). */
int mtd_app_setup(struct obs_ctx *ctx, struct obs_err *err);
void mtd_app_teardown(struct obs_ctx *ctx);

/* Register the non-PromQL read API on ctx->http: /api/v1/labels, /api/v1/label/<n>/values,
 * /api/v1/series, /api/v1/metadata, /api/v1/status/buildinfo (api_meta.c). Called by the
 * ingester's init; calling it again (e.g. from the querier) just replaces the routes. */
int mtd_api_meta_register(struct obs_ctx *ctx);

/* Register POST /api/v1/read (remote read, api_read.c). Called by mtd_api_meta_register. */
int mtd_api_read_register(struct obs_ctx *ctx);

/* Register the status endpoints (/api/v1/status/{buildinfo,tsdb,config,flags,runtimeinfo,
 * walreplay}, /api/v1/targets, /api/v1/query_exemplars, /api/v1/parse_query; api_status.c).
 * Called by mtd_api_meta_register. */
int mtd_api_status_register(struct obs_ctx *ctx);

/* The version reported by /api/v1/status/buildinfo (Prometheus-compatible numbering). */
#define MTD_PROM_VERSION "2.42.0-obs"

/* Components (one file each). main.c's table is built from these initialisers because a
 * C array of structs cannot be initialised from other const objects. */
int mtd_ingester_init(struct obs_ctx *ctx, struct obs_err *err);
void mtd_ingester_stop(struct obs_ctx *ctx);
int mtd_distributor_init(struct obs_ctx *ctx, struct obs_err *err);
void mtd_distributor_stop(struct obs_ctx *ctx);
extern const char *const mtd_distributor_deps[];

#define MTD_INGESTER_COMPONENT {"ingester", NULL, mtd_ingester_init, mtd_ingester_stop}
#define MTD_DISTRIBUTOR_COMPONENT                                                              \
    {"distributor", mtd_distributor_deps, mtd_distributor_init, mtd_distributor_stop}

#endif
