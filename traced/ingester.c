/*
 * ingester.c -- traced ingester: WAL-backed in-memory trace store.
 *
 * Every accepted export request is appended to the WAL as its protobuf bytes
 * (ExportTraceServiceRequest) and fsynced before the store is updated and the caller replies
 * 2xx. On start the WAL is replayed into the store, so acknowledged traces survive kill -9.
 *
 * Checkpoint: when the WAL grows past twice its size after the last checkpoint (and at least
 * CHECKPOINT_MIN bytes), the whole store is written into a fresh segment -- one record per
 * stored batch, each a one-ResourceSpans ExportTraceServiceRequest (tag 0x0a + length + batch
 * bytes), which replays through the same path -- and older segments are deleted. Together with
 * ingester.max_traces this bounds the WAL by the live data.
 * Loop thread only.
 */
#include <string.h>

#include "app/obs_app.h"
#include "core/obs_log.h"
#include "core/obs_mem.h"
#include "metrics/obs_metrics.h"
#include "traced/trd.h"
#include "wal/obs_wal.h"

#define COMP "ingester"
#define CHECKPOINT_MIN (256u << 20)

struct replay_state {
    struct trd_app *a;
    size_t records, bad, spans;
};

static int replay_one(const uint8_t *rec, size_t len, void *arg)
{
    struct replay_state *st = arg;
    trd_export_req *req =
        opentelemetry__proto__collector__trace__v1__export_trace_service_request__unpack(NULL, len,
                                                                                          rec);
    if (req == NULL) {
        st->bad++;
        return 0;
    }
    size_t n = 0;
    int rc = trd_store_add(st->a->store, req, &n);
    opentelemetry__proto__collector__trace__v1__export_trace_service_request__free_unpacked(req,
                                                                                           NULL);
    st->records++;
    st->spans += n;
    return rc;
}

struct ckpt_state {
    struct obs_wal *w;
    struct obs_sbuf rec;
    int rc;
};

static int ckpt_one(const struct trd_trace *t, void *arg)
{
    struct ckpt_state *st = arg;
    for (size_t i = 0; i < t->nbatches && st->rc == 0; i++) {
        obs_sbuf_reset(&st->rec);
        if (obs_sbuf_putc(&st->rec, 0x0a) || obs_sbuf_uvarint(&st->rec, t->batches[i].len) ||
            obs_sbuf_append(&st->rec, t->batches[i].buf, t->batches[i].len))
            st->rc = OBS_ENOMEM;
        else
            st->rc = obs_wal_append(st->w, st->rec.p, st->rec.len);
    }
    return st->rc != 0;
}

static void maybe_checkpoint(struct trd_app *a)
{
    uint64_t sz = obs_wal_size(a->wal);
    if (sz < CHECKPOINT_MIN || sz < 2 * a->wal_ckpt_bytes)
        return;
    struct ckpt_state st = {.w = a->wal};
    obs_sbuf_init(&st.rec);
    st.rc = obs_wal_checkpoint_begin(a->wal);
    if (st.rc == 0)
        trd_store_foreach(a->store, ckpt_one, &st);
    if (st.rc == 0)
        st.rc = obs_wal_checkpoint_end(a->wal);
    obs_sbuf_deinit(&st.rec);
    if (st.rc != 0) {
        obs_clog_error(COMP, "WAL checkpoint failed\terr=%s", obs_rc_str(st.rc));
        return;
    }
    a->wal_ckpt_bytes = obs_wal_size(a->wal);
    obs_clog_info(COMP, "WAL checkpoint written\tbytes=%llu traces=%zu",
                  (unsigned long long)a->wal_ckpt_bytes, trd_store_ntraces(a->store));
}

int trd_ingester_push(struct trd_app *a, const trd_export_req *req, const uint8_t *raw,
                      size_t len)
{
    if (a->wal == NULL || a->store == NULL)
        return OBS_EIO;
    size_t total = 0;
    for (size_t r = 0; r < req->n_resource_spans; r++)
        for (size_t c = 0; c < req->resource_spans[r]->n_scope_spans; c++)
            total += req->resource_spans[r]->scope_spans[c]->n_spans;
    if (total == 0)
        return 0; /* nothing to keep (an empty export is valid) */
    int rc = obs_wal_append(a->wal, raw, len);
    if (rc == 0)
        rc = obs_wal_sync(a->wal);
    if (rc != 0) {
        obs_clog_error(COMP, "WAL write failed\terr=%s", obs_rc_str(rc));
        return rc == OBS_ENOMEM ? OBS_ENOMEM : OBS_EIO;
    }
    size_t n = 0;
    rc = trd_store_add(a->store, req, &n);
    if (rc != 0)
        return rc;
    trd_store_trim(a->store, (size_t)a->icfg.max_traces);
    if (a->m_spans)
        obs_mchild_add(a->m_spans, (double)n);
    maybe_checkpoint(a);
    return 0;
}

static double g_traces(void *arg)
{
    struct trd_app *a = arg;
    return a->store ? (double)trd_store_ntraces(a->store) : 0;
}

static double g_spans(void *arg)
{
    struct trd_app *a = arg;
    return a->store ? (double)trd_store_nspans(a->store) : 0;
}

int trd_ingester_init(struct obs_ctx *ctx, struct obs_err *err)
{
    struct trd_app *a = ctx->app;
    a->store = trd_store_new();
    if (a->store == NULL)
        return obs_err_set(err, OBS_ENOMEM, "out of memory");
    if (obs_mkdir_p(a->scfg.trace.local.path, err) != 0)
        return err ? err->code : OBS_EIO;
    struct obs_wal_opts wo = {.dir = a->scfg.trace.wal.path,
                              .segment_bytes = 0,
                              .no_fsync = a->icfg.wal_no_fsync != 0};
    a->wal = obs_wal_open(&wo, err);
    if (a->wal == NULL)
        return err && err->code ? err->code : OBS_EIO;
    struct replay_state st = {.a = a};
    int rc = obs_wal_replay(a->wal, replay_one, &st, err);
    if (rc != 0 && rc != OBS_ECORRUPT)
        return rc;
    if (rc == OBS_ECORRUPT)
        obs_clog_warn(COMP, "WAL replay stopped at a corrupt record\terr=\"%s\"",
                      err ? err->msg : "");
    obs_err_clear(err);
    trd_store_trim(a->store, (size_t)a->icfg.max_traces);
    a->wal_ckpt_bytes = obs_wal_size(a->wal);
    obs_clog_info(COMP, "WAL replayed\trecords=%zu spans=%zu traces=%zu skipped=%zu", st.records,
                  st.spans, trd_store_ntraces(a->store), st.bad);
    a->m_spans = obs_metrics_counter(ctx->metrics, "traced_ingester_spans_received_total",
                                     "Spans written to the WAL and the live store.");
    obs_metrics_gauge_fn(ctx->metrics, "traced_ingester_live_traces", "Traces held in memory.",
                         g_traces, a);
    obs_metrics_gauge_fn(ctx->metrics, "traced_ingester_live_spans", "Spans held in memory.",
                         g_spans, a);
    return 0;
}

void trd_ingester_stop(struct obs_ctx *ctx)
{
    struct trd_app *a = ctx->app;
    if (a == NULL)
        return;
    obs_wal_close(a->wal);
    a->wal = NULL;
}
