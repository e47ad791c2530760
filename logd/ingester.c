/*
 * ingester.c -- logd's ingester component: the store plus its write-ahead log.
 *
 * Every batch accepted by the distributor becomes one WAL record (push.h format), written and
 * fdatasync'ed before the store is touched and before the distributor replies 2xx, so an
 * acknowledged push survives kill -9. On start the WAL is replayed into the store; replay is
 * idempotent because the store drops exact duplicate entries (same stream, timestamp, line).
 * Runs on the loop thread.
 */
#include <stdio.h>
#include <string.h>

#include "core/obs_log.h"
#include "core/obs_mem.h"
#include "core/obs_time.h"
#include "logd/logd.h"
#include "logd/logql.h"
#include "metrics/obs_metrics.h"
#include "wal/obs_wal.h"

static const char *COMP = "ingester";

/* Apply validated streams to the store. Returns 0, OBS_ELIMIT (stream limit, err set) or
 * OBS_ENOMEM; entries already applied stay (the WAL record holds them all anyway). */
static int apply(struct lgd_app *app, const char *tenant, const struct lgd_batch_stream *s,
                 size_t n, struct obs_err *err)
{
    struct lgd_tenant *t = lgd_store_tenant(app->store, tenant, 1);
    if (!t)
        return obs_err_set(err, OBS_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        struct lgd_stream *st = lgd_tenant_stream(t, s[i].labels, s[i].nlabels, 0);
        if (!st) {
            if (app->limits.max_streams_per_user > 0 &&
                t->nstreams >= (size_t)app->limits.max_streams_per_user)
                return obs_err_set(err, OBS_ELIMIT,
                                   "Maximum active stream limit exceeded, reduce the number of "
                                   "active streams (reduce labels or reduce label values), or "
                                   "contact your Loki administrator to see if the limit can be "
                                   "increased, user: '%s'", tenant);
            st = lgd_tenant_stream(t, s[i].labels, s[i].nlabels, 1);
            if (!st)
                return obs_err_set(err, OBS_ENOMEM, "out of memory");
        }
        for (size_t k = 0; k < s[i].n; k++) {
            const struct lgd_push_entry *e = &s[i].e[k];
            int rc = lgd_stream_append(t, st, e->ts, e->line, e->len, e->meta, e->nmeta);
            if (rc == OBS_ENOMEM)
                return obs_err_set(err, rc, "out of memory");
        }
    }
    return 0;
}

int lgd_ingester_push(struct lgd_app *app, const char *tenant,
                      const struct lgd_batch_stream *s, size_t n, struct obs_err *err)
{
    if (!app->ingester_up)
        return obs_err_set(err, OBS_EIO, "ingester is not running");
    if (app->wal) {
        struct obs_sbuf rec;
        obs_sbuf_init(&rec);
        if (lgd_wal_encode(tenant, s, n, &rec) != 0) {
            obs_sbuf_deinit(&rec);
            return obs_err_set(err, OBS_ENOMEM, "out of memory");
        }
        int rc = obs_wal_append(app->wal, rec.p, rec.len);
        obs_sbuf_deinit(&rec);
        if (rc == 0)
            rc = obs_wal_sync(app->wal);
        if (rc != 0) {
            obs_mchild_add(app->m_wal_fail, 1);
            obs_clog_error(COMP, "WAL write failed\terr=%s", obs_rc_str(rc));
            return obs_err_set(err, OBS_EIO, "failed to write to the WAL");
        }
        obs_mchild_add(app->m_wal_records, 1);
    }
    return apply(app, tenant, s, n, err);
}

struct replay_state {
    struct lgd_app *app;
    uint64_t records, entries, bad;
};

static int replay_one(const uint8_t *rec, size_t len, void *arg)
{
    struct replay_state *rs = arg;
    struct lgd_push p;
    const char *tenant = NULL;
    int rc = lgd_wal_decode(rec, len, &tenant, &p);
    if (rc == OBS_ENOMEM) {
        lgd_push_deinit(&p);
        return rc;
    }
    if (rc != 0) {
        rs->bad++;
        lgd_push_deinit(&p);
        return 0; /* skip an undecodable record; the CRC was fine, so it is a format bug */
    }
    rs->records++;
    for (size_t i = 0; i < p.n; i++) {
        struct obs_label *lv;
        size_t nl;
        struct obs_err e2;
        obs_err_clear(&e2);
        if (lgd_logql_parse_labels(p.s[i].labels, p.s[i].labels_len, &lv, &nl, &e2) != 0) {
            rs->bad++;
            continue;
        }
        struct lgd_batch_stream bs = {lv, nl, p.s[i].labels, p.s[i].e, p.s[i].n};
        /* Limits were checked when the record was acknowledged: apply without them. */
        int64_t saved = rs->app->limits.max_streams_per_user;
        rs->app->limits.max_streams_per_user = 0;
        rc = apply(rs->app, tenant, &bs, 1, &e2);
        rs->app->limits.max_streams_per_user = saved;
        lgd_labels_free(lv, nl);
        if (rc == OBS_ENOMEM) {
            lgd_push_deinit(&p);
            return rc;
        }
        rs->entries += p.s[i].n;
    }
    lgd_push_deinit(&p);
    return 0;
}

int lgd_ingester_init(struct obs_ctx *ctx, struct obs_err *err)
{
    struct lgd_app *app = lgd_app(ctx);
    app->store = lgd_store_new();
    if (!app->store)
        return obs_err_set(err, OBS_ENOMEM, "out of memory");
    if (app->ingester.wal.enabled) {
        int rc = obs_mkdir_p(app->wal_dir, err);
        if (rc != 0)
            return rc;
        struct obs_wal_opts o = {.dir = app->wal_dir};
        app->wal = obs_wal_open(&o, err);
        if (!app->wal)
            return err->code ? err->code : OBS_EIO;
        struct replay_state rs = {app, 0, 0, 0};
        int64_t t0 = obs_mono_ns();
        rc = obs_wal_replay(app->wal, replay_one, &rs, err);
        if (rc == OBS_ECORRUPT) {
            /* Records before the corruption were applied; keep serving them. */
            obs_clog_warn(COMP, "WAL corruption during replay; later records lost\terr=\"%s\"",
                          err->msg);
            obs_err_clear(err);
        } else if (rc != 0) {
            return rc;
        }
        obs_clog_info(COMP, "WAL replayed\tdir=%s records=%llu entries=%llu bad=%llu "
                            "duration_ms=%lld", app->wal_dir, (unsigned long long)rs.records,
                      (unsigned long long)rs.entries, (unsigned long long)rs.bad,
                      (long long)((obs_mono_ns() - t0) / 1000000));
    } else {
        obs_clog_warn(COMP, "WAL disabled: acknowledged pushes do not survive a crash");
    }
    app->ingester_up = 1;
    return 0;
}

void lgd_ingester_stop(struct obs_ctx *ctx)
{
    struct lgd_app *app = lgd_app(ctx);
    app->ingester_up = 0;
    obs_wal_close(app->wal);
    app->wal = NULL;
}
