/*
 * ingester.c -- metricsd's ingester component: owns the head (head.c) and its WAL, takes
 * validated pushes from the distributor, and serves the non-PromQL read API (api_meta.c)
 * over the head.
 *
 * Config (`ingester:`):
 *   wal_dir   where the head's WAL lives; default <blocks_storage.tsdb.dir>/wal.
 *   ring      accepted (single-process ring for now).
 * Start-up replays the WAL before the process reports ready, so /ready means "every
 * acknowledged sample is queryable". Stop closes the WAL (synced).
 */
#include <stdio.h>
#include <string.h>

#include "core/obs_log.h"
#include "core/obs_mem.h"
#include "metrics/obs_metrics.h"
#include "metricsd/head.h"
#include "metricsd/ingester.h"
#include "metricsd/metricsd.h"

struct ingester_cfg {
    char *wal_dir;
};

static const struct obs_cfmap ingester_map[] = {
    {"wal_dir", OBS_CFT_STR, "", offsetof(struct ingester_cfg, wal_dir),
     "WAL directory (default <blocks_storage.tsdb.dir>/wal)", NULL, NULL},
    {"ring", OBS_CFT_IGNORE, NULL, 0, "accepted; the ring is in-process for now", NULL, NULL},
    {NULL, 0, NULL, 0, NULL, NULL, NULL},
};

static double g_series(void *arg)
{
    struct mtd_app *app = arg;
    return app->head ? (double)mtd_head_num_series(app->head) : 0;
}

static double g_samples(void *arg)
{
    struct mtd_app *app = arg;
    return app->head ? (double)mtd_head_num_samples(app->head) : 0;
}

int mtd_ingester_push(struct mtd_app *app, const char *tenant,
                      const Prometheus__WriteRequest *wr, struct mtd_push_result *res,
                      struct obs_err *err)
{
    memset(res, 0, sizeof *res);
    if (app == NULL || app->head == NULL)
        return obs_err_set(err, OBS_EAGAIN, "no ingester running in this process");
    struct mtd_appender *a = mtd_head_appender(app->head, tenant);
    struct obs_label stackl[32];
    if (a == NULL)
        return obs_err_set(err, OBS_ENOMEM, "out of memory");
    for (size_t i = 0; i < wr->n_timeseries; i++) {
        const Prometheus__TimeSeries *ts = wr->timeseries[i];
        struct obs_label *l = stackl;
        if (ts->n_labels > 32) {
            l = obs_malloc(ts->n_labels * sizeof *l);
            if (l == NULL) {
                mtd_appender_rollback(a);
                return obs_err_set(err, OBS_ENOMEM, "out of memory");
            }
        }
        for (size_t k = 0; k < ts->n_labels; k++) {
            l[k].name = ts->labels[k]->name;
            l[k].value = ts->labels[k]->value;
        }
        for (size_t k = 0; k < ts->n_samples; k++) {
            struct obs_err e = {0};
            int rc = mtd_appender_add(a, l, ts->n_labels, ts->samples[k]->timestamp,
                                      ts->samples[k]->value, &e);
            if (rc == OBS_ENOMEM) {
                if (l != stackl)
                    obs_free(l);
                mtd_appender_rollback(a);
                return obs_err_set(err, OBS_ENOMEM, "out of memory");
            }
            if (rc != 0) {
                if (res->rejected++ == 0) {
                    res->first_code = rc;
                    snprintf(res->first_msg, sizeof res->first_msg, "%s", e.msg);
                }
            }
        }
        if (l != stackl)
            obs_free(l);
    }
    for (size_t i = 0; i < wr->n_metadata; i++) {
        const Prometheus__MetricMetadata *m = wr->metadata[i];
        if (m->metric_family_name == NULL || m->metric_family_name[0] == '\0')
            continue;
        if (mtd_appender_add_metadata(a, m->metric_family_name, (int)m->type, m->help,
                                      m->unit) != 0) {
            mtd_appender_rollback(a);
            return obs_err_set(err, OBS_ENOMEM, "out of memory");
        }
    }
    size_t n = mtd_appender_count(a);
    int rc = mtd_appender_commit(a, err);
    if (rc != 0)
        return rc;
    res->accepted = n;
    if (app->m_ingested)
        obs_mchild_add(app->m_ingested, (double)n);
    if (app->m_ingest_failed && res->rejected)
        obs_mchild_add(app->m_ingest_failed, (double)res->rejected);
    return 0;
}

int mtd_ingester_init(struct obs_ctx *ctx, struct obs_err *err)
{
    struct mtd_app *app = mtd_app_of(ctx);
    struct ingester_cfg cfg = {0};
    char wal[4096];
    int rc = obs_cf_bind(obs_cf_get(ctx->cfg, "ingester"), ingester_map, &cfg, err);
    if (rc != 0)
        return rc;
    if (cfg.wal_dir && cfg.wal_dir[0])
        snprintf(wal, sizeof wal, "%s", cfg.wal_dir);
    else
        snprintf(wal, sizeof wal, "%s/wal", app->blocks.tsdb.dir);
    obs_cf_unbind(ingester_map, &cfg);
    rc = obs_mkdir_p(wal, err);
    if (rc != 0)
        return rc;
    struct mtd_head_opts o = {
        .wal_dir = wal,
        .wal_segment_bytes = (size_t)app->blocks.tsdb.wal_segment_size_bytes,
    };
    app->head = mtd_head_open(&o, err);
    if (app->head == NULL)
        return err && err->code ? err->code : OBS_EIO;
    mtd_head_set_max_series(app->head, (size_t)app->limits.max_global_series_per_user);
    app->storage = mtd_head_storage(app->head);

    app->m_ingested = obs_metrics_counter(ctx->metrics, "mtd_ingester_ingested_samples_total",
                                     "Samples appended to the head.");
    app->m_ingest_failed = obs_metrics_counter(ctx->metrics,
                                               "mtd_ingester_ingested_samples_failures_total",
                                               "Samples refused by the head (out of order, duplicate, "
                                     "limits).");
    obs_metrics_gauge_fn(ctx->metrics, "mtd_ingester_memory_series",
                         "Series in the head.", g_series, app);
    obs_metrics_gauge_fn(ctx->metrics, "mtd_ingester_memory_samples",
                         "Samples in the head.", g_samples, app);
    obs_clog_info("ingester", "head ready\twal_dir=%s series=%zu samples=%llu", wal,
                  mtd_head_num_series(app->head),
                  (unsigned long long)mtd_head_num_samples(app->head));
    return mtd_api_meta_register(ctx);
}

void mtd_ingester_stop(struct obs_ctx *ctx)
{
    struct mtd_app *app = mtd_app_of(ctx);
    if (app == NULL)
        return;
    app->storage = NULL;
    mtd_head_close(app->head);
    app->head = NULL;
}
