/*
 * api_read.c -- Prometheus remote read: POST /api/v1/read.
 *
 * The body is a snappy-compressed prometheus.ReadRequest (the HTTP layer undoes
 * Content-Encoding: snappy; without the header we try snappy, then raw protobuf). Each
 * Query's matchers select series from metricsd's storage in [start_timestamp_ms,
 * end_timestamp_ms]. The response type is the first one of accepted_response_types we
 * implement (both are):
 *   SAMPLES (default): a snappy-compressed ReadResponse, one QueryResult per query, in order
 *     (Content-Type application/x-protobuf, Content-Encoding snappy);
 *   STREAMED_XOR_CHUNKS: frames of [uvarint size][big-endian CRC32C of the frame][frame],
 *     each frame a ChunkedReadResponse holding one series whose samples are re-encoded into
 *     Prometheus XOR chunks of at most 120 samples, with query_index set
 *     (Content-Type application/x-streamed-protobuf; proto=prometheus.ChunkedReadResponse).
 * Errors are plain text: 400 for undecodable requests or bad matchers, 422 when a query
 * exceeds limits.max_fetched_samples_per_query / max_fetched_series_per_query.
 */
#include <limits.h>
#include <string.h>

#include <protobuf-c/protobuf-c.h>

#include "core/obs_arena.h"
#include "core/obs_mem.h"
#include "core/obs_sbuf.h"
#include "http/obs_http.h"
#include "labels/obs_labels.h"
#include "metricsd/chunkenc.h"
#include "metricsd/metricsd.h"
#include "metricsd/storage.h"
#include "proto/prometheus_remote.pb-c.h"
#include "wal/obs_wal.h"

#define READ_CHUNK_SAMPLES 120

static void *pb_alloc(void *data, size_t size)
{
    return obs_arena_alloc(data, size ? size : 1);
}

static void pb_free(void *data, void *p)
{
    (void)data;
    (void)p;
}

/* Matchers of one query (obs_matchers_free after). Returns 0 or OBS_EINVAL with err. */
static int query_matchers(const Prometheus__Query *q, struct obs_matcher **out, size_t *n,
                          struct obs_err *err)
{
    struct obs_matcher *v = obs_calloc(q->n_matchers ? q->n_matchers : 1, sizeof *v);
    if (v == NULL)
        return obs_err_set(err, OBS_ENOMEM, "out of memory");
    for (size_t i = 0; i < q->n_matchers; i++) {
        const Prometheus__LabelMatcher *m = q->matchers[i];
        enum obs_match_type t;
        switch (m->type) {
        case PROMETHEUS__LABEL_MATCHER__TYPE__EQ: t = OBS_MATCH_EQ; break;
        case PROMETHEUS__LABEL_MATCHER__TYPE__NEQ: t = OBS_MATCH_NEQ; break;
        case PROMETHEUS__LABEL_MATCHER__TYPE__RE: t = OBS_MATCH_RE; break;
        case PROMETHEUS__LABEL_MATCHER__TYPE__NRE: t = OBS_MATCH_NRE; break;
        default:
            obs_matchers_free(v, i);
            return obs_err_set(err, OBS_EINVAL, "unknown label matcher type %d", (int)m->type);
        }
        int rc = obs_matcher_init(&v[i], t, m->name, m->value, err);
        if (rc != 0) {
            obs_matchers_free(v, i);
            return rc;
        }
    }
    *out = v;
    *n = q->n_matchers;
    return 0;
}

static Prometheus__Label **pb_labels(struct obs_arena *ar, const struct mtd_series *s)
{
    Prometheus__Label **ls = obs_arena_alloc(ar, (s->nlabels ? s->nlabels : 1) * sizeof *ls);
    Prometheus__Label *lv = obs_arena_alloc(ar, (s->nlabels ? s->nlabels : 1) * sizeof *lv);
    if (ls == NULL || lv == NULL)
        return NULL;
    for (size_t k = 0; k < s->nlabels; k++) {
        prometheus__label__init(&lv[k]);
        lv[k].name = (char *)s->labels[k].name;
        lv[k].value = (char *)s->labels[k].value;
        ls[k] = &lv[k];
    }
    return ls;
}

/* Append one length-delimited, CRC'd frame holding ChunkedReadResponse{series, qi}. */
static int write_chunked(struct obs_arena *ar, struct obs_sbuf *out, const struct mtd_series *s,
                         int64_t qi)
{
    Prometheus__ChunkedSeries cs = PROMETHEUS__CHUNKED_SERIES__INIT;
    Prometheus__ChunkedSeries *csp = &cs;
    Prometheus__ChunkedReadResponse resp = PROMETHEUS__CHUNKED_READ_RESPONSE__INIT;
    size_t nchunks = (s->nsamples + READ_CHUNK_SAMPLES - 1) / READ_CHUNK_SAMPLES;
    struct mtd_xor_chunk *enc = obs_arena_calloc(ar, (nchunks ? nchunks : 1) * sizeof *enc);
    Prometheus__Chunk *cv = obs_arena_alloc(ar, (nchunks ? nchunks : 1) * sizeof *cv);
    Prometheus__Chunk **cp = obs_arena_alloc(ar, (nchunks ? nchunks : 1) * sizeof *cp);
    int rc = 0;
    cs.labels = pb_labels(ar, s);
    cs.n_labels = s->nlabels;
    if (enc == NULL || cv == NULL || cp == NULL || cs.labels == NULL)
        return OBS_ENOMEM;
    for (size_t c = 0; c < nchunks && rc == 0; c++) {
        size_t a = c * READ_CHUNK_SAMPLES;
        size_t b = a + READ_CHUNK_SAMPLES < s->nsamples ? a + READ_CHUNK_SAMPLES : s->nsamples;
        rc = mtd_xor_init(&enc[c]);
        for (size_t i = a; i < b && rc == 0; i++)
            rc = mtd_xor_append(&enc[c], s->samples[i].t, s->samples[i].v);
        prometheus__chunk__init(&cv[c]);
        cv[c].min_time_ms = s->samples[a].t;
        cv[c].max_time_ms = s->samples[b - 1].t;
        cv[c].type = PROMETHEUS__CHUNK__ENCODING__XOR;
        cv[c].data.data = enc[c].b;
        cv[c].data.len = mtd_xor_bytes(&enc[c]);
        cp[c] = &cv[c];
    }
    if (rc == 0) {
        cs.chunks = cp;
        cs.n_chunks = nchunks;
        resp.chunked_series = &csp;
        resp.n_chunked_series = 1;
        resp.query_index = qi;
        size_t len = prometheus__chunked_read_response__get_packed_size(&resp);
        uint8_t *buf = obs_arena_alloc(ar, len ? len : 1);
        if (buf == NULL) {
            rc = OBS_ENOMEM;
        } else {
            prometheus__chunked_read_response__pack(&resp, buf);
            uint32_t crc = obs_crc32c(0, buf, len);
            uint8_t be[4] = {(uint8_t)(crc >> 24), (uint8_t)(crc >> 16), (uint8_t)(crc >> 8),
                             (uint8_t)crc};
            obs_sbuf_uvarint(out, len);
            obs_sbuf_append(out, be, 4);
            obs_sbuf_append(out, buf, len);
            if (out->oom)
                rc = OBS_ENOMEM;
        }
    }
    for (size_t c = 0; c < nchunks; c++)
        mtd_xor_deinit(&enc[c]);
    return rc;
}

static void h_read(struct obs_http_req *r, void *arg)
{
    struct obs_ctx *ctx = arg;
    struct mtd_app *app = mtd_app_of(ctx);
    struct obs_arena *ar = obs_http_req_arena(r);
    ProtobufCAllocator alloc = {pb_alloc, pb_free, ar};
    size_t len = 0;
    const uint8_t *body = obs_http_req_body(r, &len);
    const char *enc = obs_http_req_encoding(r);
    Prometheus__ReadRequest *rq = NULL;
    struct obs_sbuf dec, out, z;
    obs_sbuf_init(&dec);
    obs_sbuf_init(&out);
    obs_sbuf_init(&z);

    if (app == NULL || app->storage == NULL) {
        obs_http_reply_text(r, 503, "no storage available");
        return;
    }
    if ((enc == NULL || enc[0] == '\0') && obs_snappy_decode(body, len, 64u << 20, &dec) == 0)
        rq = prometheus__read_request__unpack(&alloc, dec.len, (const uint8_t *)dec.p);
    if (rq == NULL)
        rq = prometheus__read_request__unpack(&alloc, len, body);
    obs_sbuf_deinit(&dec);
    if (rq == NULL) {
        obs_http_reply_text(r, 400, "failed to unmarshal remote read request: snappy/proto "
                            "decode error");
        return;
    }
    /* First accepted type we implement wins; none listed means SAMPLES. */
    int streamed = 0, chosen = rq->n_accepted_response_types == 0;
    for (size_t i = 0; i < rq->n_accepted_response_types && !chosen; i++) {
        if (rq->accepted_response_types[i] == PROMETHEUS__READ_REQUEST__RESPONSE_TYPE__SAMPLES)
            chosen = 1;
        else if (rq->accepted_response_types[i] ==
                 PROMETHEUS__READ_REQUEST__RESPONSE_TYPE__STREAMED_XOR_CHUNKS)
            chosen = streamed = 1;
    }
    if (!chosen) {
        obs_http_reply_text(r, 400, "server does not support any of the requested response "
                            "types");
        return;
    }

    /* rq lives in the request arena, which the reply frees: keep what cleanup needs. */
    const size_t nq = rq->n_queries;
    const char *tenant = obs_http_req_tenant(r, "anonymous");
    Prometheus__ReadResponse resp = PROMETHEUS__READ_RESPONSE__INIT;
    Prometheus__QueryResult **results =
        obs_arena_alloc(ar, (rq->n_queries ? rq->n_queries : 1) * sizeof *results);
    struct mtd_series_set **sets = obs_calloc(rq->n_queries ? rq->n_queries : 1, sizeof *sets);
    int status = 200;
    struct obs_err err = {0};
    if (results == NULL || sets == NULL) {
        status = 500;
        obs_err_set(&err, OBS_ENOMEM, "out of memory");
        goto done;
    }
    for (size_t qi = 0; qi < rq->n_queries; qi++) {
        const Prometheus__Query *q = rq->queries[qi];
        struct obs_matcher *ms = NULL;
        size_t nms = 0;
        int rc = query_matchers(q, &ms, &nms, &err);
        if (rc != 0) {
            status = rc == OBS_ENOMEM ? 500 : 400;
            goto done;
        }
        struct mtd_select_opts o = {.mint = q->start_timestamp_ms, .maxt = q->end_timestamp_ms};
        if (app->limits.max_fetched_samples_per_query > 0)
            o.max_samples = (size_t)app->limits.max_fetched_samples_per_query;
        if (app->limits.max_fetched_series_per_query > 0)
            o.max_series = (size_t)app->limits.max_fetched_series_per_query;
        rc = mtd_storage_select(app->storage, tenant, ms, nms, &o, &sets[qi], &err);
        obs_matchers_free(ms, nms);
        if (rc != 0) {
            status = rc == OBS_ELIMIT ? 422 : 500;
            goto done;
        }
        const struct mtd_series_set *set = sets[qi];
        if (streamed) {
            for (size_t i = 0; i < set->nseries; i++) {
                if (write_chunked(ar, &out, &set->series[i], (int64_t)qi) != 0) {
                    status = 500;
                    obs_err_set(&err, OBS_ENOMEM, "out of memory");
                    goto done;
                }
            }
            continue;
        }
        Prometheus__QueryResult *qr = obs_arena_alloc(ar, sizeof *qr);
        Prometheus__TimeSeries **tsv =
            obs_arena_alloc(ar, (set->nseries ? set->nseries : 1) * sizeof *tsv);
        if (qr == NULL || tsv == NULL) {
            status = 500;
            obs_err_set(&err, OBS_ENOMEM, "out of memory");
            goto done;
        }
        prometheus__query_result__init(qr);
        for (size_t i = 0; i < set->nseries; i++) {
            const struct mtd_series *s = &set->series[i];
            Prometheus__TimeSeries *ts = obs_arena_alloc(ar, sizeof *ts);
            Prometheus__Sample *sv = obs_arena_alloc(ar, (s->nsamples ? s->nsamples : 1) *
                                                             sizeof *sv);
            Prometheus__Sample **sp = obs_arena_alloc(ar, (s->nsamples ? s->nsamples : 1) *
                                                              sizeof *sp);
            if (ts == NULL || sv == NULL || sp == NULL) {
                status = 500;
                obs_err_set(&err, OBS_ENOMEM, "out of memory");
                goto done;
            }
            prometheus__time_series__init(ts);
            ts->labels = pb_labels(ar, s);
            if (ts->labels == NULL) {
                status = 500;
                obs_err_set(&err, OBS_ENOMEM, "out of memory");
                goto done;
            }
            ts->n_labels = s->nlabels;
            for (size_t k = 0; k < s->nsamples; k++) {
                prometheus__sample__init(&sv[k]);
                sv[k].timestamp = s->samples[k].t;
                sv[k].value = s->samples[k].v;
                sp[k] = &sv[k];
            }
            ts->samples = sp;
            ts->n_samples = s->nsamples;
            tsv[i] = ts;
        }
        qr->timeseries = tsv;
        qr->n_timeseries = set->nseries;
        results[qi] = qr;
    }
    if (streamed) {
        obs_http_reply_sbuf(r, 200, "application/x-streamed-protobuf; "
                            "proto=prometheus.ChunkedReadResponse", &out);
        goto done;
    }
    resp.results = results;
    resp.n_results = rq->n_queries;
    size_t plen = prometheus__read_response__get_packed_size(&resp);
    uint8_t *pbuf = obs_arena_alloc(ar, plen ? plen : 1);
    if (pbuf == NULL || (prometheus__read_response__pack(&resp, pbuf),
                         obs_snappy_encode(pbuf, plen, &z) != 0)) {
        status = 500;
        obs_err_set(&err, OBS_ENOMEM, "out of memory");
        goto done;
    }
    obs_http_add_header(r, "Content-Encoding", "snappy");
    obs_http_reply_sbuf(r, 200, "application/x-protobuf", &z);
done:
    if (status != 200)
        obs_http_reply_text(r, status, "%s", err.msg);
    for (size_t qi = 0; sets && qi < nq; qi++)
        mtd_series_set_free(sets[qi]);
    obs_free(sets);
    obs_sbuf_deinit(&out);
    obs_sbuf_deinit(&z);
}

int mtd_api_read_register(struct obs_ctx *ctx)
{
    return obs_http_route(ctx->http, "POST", "/api/v1/read", h_read, ctx);
}
