/*
 * ingester.c -- metricsd's ingester component: owns the head (head.c) and its WAL, takes
 * validated pushes from the distributor, and serves the non-PromQL read API (api_meta.c)
 * over the head.
 *
 * Config (`ingester:`):
 *   wal_dir   where the head's WAL lives; default <blocks_storage.tsdb.dir>/wal.
 *   checkpoint_interval  how often the WAL's growth is checked; past one segment (or the
 *             size of the last checkpoint) the head writes a checkpoint and old segments
 *             are deleted. Shutdown always checkpoints.
 *   ring      accepted (single-process ring for now).
 * Start-up replays the WAL before the process reports ready, so /ready means "every
 * acknowledged sample is queryable". Stop closes the WAL (synced).
 */
#include <stdio.h>
#include <string.h>

#include <event2/event.h>

#include "core/obs_arena.h"
#include "core/obs_log.h"
#include "core/obs_mem.h"
#include "metrics/obs_metrics.h"
#include "metricsd/blocks.h"
#include "metricsd/head.h"
#include "metricsd/ingester.h"
#include "metricsd/metricsd.h"
#include "metricsd/ql/mtd_ql.h"

struct ingester_cfg {
    char *wal_dir;
    int64_t checkpoint_interval_ms;
};

static const struct obs_cfmap ingester_map[] = {
    {"wal_dir", OBS_CFT_STR, "", offsetof(struct ingester_cfg, wal_dir),
     "WAL directory (default <blocks_storage.tsdb.dir>/wal)", NULL, NULL},
    {"checkpoint_interval", OBS_CFT_DURATION, "1m",
     offsetof(struct ingester_cfg, checkpoint_interval_ms),
     "How often to check whether the WAL has grown enough (one segment, or the last "
     "checkpoint's size) to write a checkpoint and delete old segments; 0 = only at shutdown",
     NULL, NULL},
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

/* Buckets of one side of a remote-write histogram as sparse absolute (index, count) pairs.
 * Integer histograms carry deltas, float ones absolute counts. Arena memory. */
static int conv_side(struct obs_arena *ar, Prometheus__BucketSpan **spans, size_t nspans,
                     const int64_t *deltas, size_t ndeltas, const double *counts,
                     size_t ncounts, int is_float, int32_t **idx, double **cnt, size_t *n)
{
    size_t total = 0;
    for (size_t i = 0; i < nspans; i++)
        total += spans[i]->length;
    size_t have = is_float ? ncounts : ndeltas;
    if (total != have || total > (1u << 20))
        return OBS_EINVAL;
    *idx = obs_arena_alloc(ar, (total ? total : 1) * sizeof **idx);
    *cnt = obs_arena_alloc(ar, (total ? total : 1) * sizeof **cnt);
    if (*idx == NULL || *cnt == NULL)
        return OBS_ENOMEM;
    int64_t at = 0, acc = 0;
    size_t k = 0, m = 0;
    for (size_t i = 0; i < nspans; i++) {
        at += spans[i]->offset;
        for (uint32_t j = 0; j < spans[i]->length; j++, at++, k++) {
            if (at < INT32_MIN || at > INT32_MAX)
                return OBS_EINVAL;
            double c;
            if (is_float) {
                c = counts[k];
            } else {
                acc += deltas[k];
                if (acc < 0)
                    return OBS_EINVAL;
                c = (double)acc;
            }
            if (c == 0)
                continue; /* spans may cover empty buckets */
            (*idx)[m] = (int32_t)at;
            (*cnt)[m] = c;
            m++;
        }
    }
    *n = m;
    return 0;
}

/* Convert a remote-write histogram (integer or float) to the head's float form. */
static int conv_hist(struct obs_arena *ar, const Prometheus__Histogram *ph,
                     struct mtd_ql_hist *h)
{
    memset(h, 0, sizeof *h);
    int is_float = ph->count_case == PROMETHEUS__HISTOGRAM__COUNT_COUNT_FLOAT;
    h->schema = ph->schema;
    h->crh = (enum mtd_ql_crh)(ph->reset_hint & 3);
    h->zero_threshold = ph->zero_threshold;
    h->zero_count = ph->zero_count_case == PROMETHEUS__HISTOGRAM__ZERO_COUNT_ZERO_COUNT_FLOAT ?
                    ph->zero_count_float : (double)ph->zero_count_int;
    h->count = is_float ? ph->count_float : (double)ph->count_int;
    h->sum = ph->sum;
    if (h->schema < -4 || h->schema > 8)
        return OBS_EINVAL;
    int rc = conv_side(ar, ph->positive_spans, ph->n_positive_spans, ph->positive_deltas,
                       ph->n_positive_deltas, ph->positive_counts, ph->n_positive_counts,
                       is_float, &h->pidx, &h->pcnt, &h->np);
    if (rc == 0)
        rc = conv_side(ar, ph->negative_spans, ph->n_negative_spans, ph->negative_deltas,
                       ph->n_negative_deltas, ph->negative_counts, ph->n_negative_counts,
                       is_float, &h->nidx, &h->ncnt, &h->nn);
    return rc;
}

static void note_reject(struct mtd_app *app, const char *tenant, struct mtd_push_result *res,
                        int rc, const char *reason, const char *msg)
{
    if (res->rejected++ == 0) {
        res->first_code = rc;
        res->first_reason = reason;
        snprintf(res->first_msg, sizeof res->first_msg, "%s", msg);
    }
    mtd_discard(app, reason, tenant, 1);
}

int mtd_ingester_push(struct mtd_app *app, const char *tenant,
                      const Prometheus__WriteRequest *wr, struct mtd_push_result *res,
                      struct obs_err *err)
{
    return mtd_ingester_push_opts(app, tenant, wr, 1, res, err);
}

int mtd_ingester_push_opts(struct mtd_app *app, const char *tenant,
                           const Prometheus__WriteRequest *wr, int sync,
                           struct mtd_push_result *res, struct obs_err *err)
{
    memset(res, 0, sizeof *res);
    if (app == NULL || app->head == NULL)
        return obs_err_set(err, OBS_EAGAIN, "no ingester running in this process");
    const struct mtd_limits *lim = mtd_limits_for(app, tenant);
    struct mtd_tenant_limits tl = {
        .max_series = lim->max_global_series_per_user > 0 ?
                      (size_t)lim->max_global_series_per_user : 0,
        .ooo_window_ms = lim->out_of_order_time_window_ms > 0 ?
                         lim->out_of_order_time_window_ms :
                         app->blocks.tsdb.out_of_order_time_window_ms,
        .max_exemplars = lim->max_global_exemplars_per_user > 0 ?
                         (size_t)lim->max_global_exemplars_per_user : 0,
    };
    struct mtd_appender *a = mtd_head_appender(app->head, tenant);
    struct obs_label stackl[32], stacke[16];
    struct obs_arena *ar = NULL;
    if (a == NULL)
        return obs_err_set(err, OBS_ENOMEM, "out of memory");
    mtd_appender_set_limits(a, &tl);
    for (size_t i = 0; i < wr->n_timeseries; i++) {
        const Prometheus__TimeSeries *ts = wr->timeseries[i];
        struct obs_label *l = stackl;
        if (ts->n_labels > 32) {
            l = obs_malloc(ts->n_labels * sizeof *l);
            if (l == NULL)
                goto oom;
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
                goto oom;
            }
            if (rc != 0)
                note_reject(app, tenant, res, rc, mtd_appender_last_reason(a), e.msg);
        }
        for (size_t k = 0; k < ts->n_histograms; k++) {
            const Prometheus__Histogram *ph = ts->histograms[k];
            struct obs_err e = {0};
            struct mtd_ql_hist hist;
            if (ar == NULL && (ar = obs_arena_new(16 * 1024)) == NULL) {
                if (l != stackl)
                    obs_free(l);
                goto oom;
            }
            int rc = conv_hist(ar, ph, &hist);
            if (rc == OBS_ENOMEM) {
                if (l != stackl)
                    obs_free(l);
                goto oom;
            }
            if (rc != 0) {
                note_reject(app, tenant, res, OBS_EINVAL, "invalid_native_histogram",
                            "invalid native histogram: spans do not match the bucket counts "
                            "or schema out of range");
                continue;
            }
            rc = mtd_appender_add_hist(a, l, ts->n_labels, ph->timestamp, &hist, &e);
            if (rc == OBS_ENOMEM) {
                if (l != stackl)
                    obs_free(l);
                goto oom;
            }
            if (rc != 0)
                note_reject(app, tenant, res, rc,
                            rc == OBS_EINVAL ? "invalid_native_histogram" :
                            mtd_appender_last_reason(a), e.msg);
            else
                res->histograms++;
        }
        for (size_t k = 0; k < ts->n_exemplars; k++) {
            const Prometheus__Exemplar *pe = ts->exemplars[k];
            struct obs_label *el = stacke;
            if (pe->n_labels > 16) {
                el = obs_malloc(pe->n_labels * sizeof *el);
                if (el == NULL) {
                    if (l != stackl)
                        obs_free(l);
                    goto oom;
                }
            }
            for (size_t j = 0; j < pe->n_labels; j++) {
                el[j].name = pe->labels[j]->name ? pe->labels[j]->name : "";
                el[j].value = pe->labels[j]->value ? pe->labels[j]->value : "";
            }
            struct obs_err e = {0};
            int rc = mtd_appender_add_exemplar(a, l, ts->n_labels, el, pe->n_labels,
                                               pe->timestamp, pe->value, &e);
            if (el != stacke)
                obs_free(el);
            if (rc == OBS_ENOMEM) {
                if (l != stackl)
                    obs_free(l);
                goto oom;
            }
            /* As Prometheus: exemplar errors never fail the request. */
            if (rc == 0)
                res->exemplars++;
            else
                res->exemplars_dropped++;
        }
        if (l != stackl)
            obs_free(l);
    }
    for (size_t i = 0; i < wr->n_metadata; i++) {
        const Prometheus__MetricMetadata *m = wr->metadata[i];
        if (m->metric_family_name == NULL || m->metric_family_name[0] == '\0')
            continue;
        if (mtd_appender_add_metadata(a, m->metric_family_name, (int)m->type, m->help,
                                      m->unit) != 0)
            goto oom;
    }
    size_t n = mtd_appender_count(a);
    obs_arena_free(ar);
    int rc = sync ? mtd_appender_commit(a, err) : mtd_appender_commit_nosync(a, err);
    if (rc != 0)
        return rc;
    res->accepted = n;
    if (app->m_ingested)
        obs_mchild_add(app->m_ingested, (double)n);
    if (app->m_ingest_failed && res->rejected)
        obs_mchild_add(app->m_ingest_failed, (double)res->rejected);
    return 0;
oom:
    obs_arena_free(ar);
    mtd_appender_rollback(a);
    return obs_err_set(err, OBS_ENOMEM, "out of memory");
}

static struct event *g_ckpt_timer; /* one ingester per process */

static void ckpt_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct mtd_app *app = arg;
    struct obs_err e = {0};
    if (app->head && mtd_head_maybe_checkpoint(app->head, &e) < 0)
        obs_clog_error("ingester", "WAL checkpoint failed\terr=\"%s\"", e.msg);
}

static double g_hist(void *arg)
{
    struct mtd_app *app = arg;
    return app->head ? (double)mtd_head_num_hist_samples(app->head) : 0;
}

static double g_exemplars(void *arg)
{
    struct mtd_app *app = arg;
    return app->head ? (double)mtd_head_num_exemplars(app->head) : 0;
}

static double g_wal_bytes(void *arg)
{
    struct mtd_app *app = arg;
    return app->head ? (double)mtd_head_wal_bytes(app->head) : 0;
}

static double g_checkpoints(void *arg)
{
    struct mtd_app *app = arg;
    return app->head ? (double)mtd_head_checkpoints(app->head) : 0;
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
    int64_t ckpt_ms = cfg.checkpoint_interval_ms;
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
    obs_metrics_gauge_fn(ctx->metrics, "mtd_ingester_memory_native_samples",
                         "Native histogram samples in the head.", g_hist, app);
    obs_metrics_gauge_fn(ctx->metrics, "mtd_ingester_memory_exemplars",
                         "Exemplars in the head's per-tenant circular buffers.", g_exemplars,
                         app);
    obs_metrics_gauge_fn(ctx->metrics, "mtd_ingester_wal_bytes", "Bytes in the head's WAL.",
                         g_wal_bytes, app);
    obs_metrics_gauge_fn(ctx->metrics, "mtd_ingester_wal_checkpoints",
                         "WAL checkpoints written since start.", g_checkpoints, app);
    if (ckpt_ms > 0 && ctx->base) {
        g_ckpt_timer = event_new(ctx->base, -1, EV_PERSIST, ckpt_tick, app);
        struct timeval tv = {(time_t)(ckpt_ms / 1000), (suseconds_t)(ckpt_ms % 1000) * 1000};
        if (g_ckpt_timer && event_add(g_ckpt_timer, &tv) != 0) {
            event_free(g_ckpt_timer);
            g_ckpt_timer = NULL;
        }
    }
    obs_clog_info("ingester", "head ready\twal_dir=%s series=%zu samples=%llu", wal,
                  mtd_head_num_series(app->head),
                  (unsigned long long)mtd_head_num_samples(app->head));
    if ((rc = mtd_flush_start(ctx, err)) != 0) /* block shipping (flush.c) */
        return rc;
    return mtd_api_meta_register(ctx);
}

void mtd_ingester_stop(struct obs_ctx *ctx)
{
    struct mtd_app *app = mtd_app_of(ctx);
    if (app == NULL)
        return;
    if (g_ckpt_timer) {
        event_free(g_ckpt_timer);
        g_ckpt_timer = NULL;
    }
    mtd_flush_stop(ctx);
    app->storage = NULL;
    mtd_head_close(app->head); /* writes a final checkpoint */
    app->head = NULL;
}
