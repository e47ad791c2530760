/*
 * distributor.c -- metricsd's distributor: the remote write 1.0 endpoint.
 *
 * POST /api/v1/push and /api/v1/write take a snappy-compressed (block format) protobuf
 * prometheus.WriteRequest (proto/prometheus_remote.proto). The HTTP layer decodes
 * Content-Encoding: snappy; a body sent without that header is tried as snappy first and as
 * raw protobuf second. Per tenant (X-Scope-OrgID, default "anonymous").
 *
 * Validation per series, with Mimir's wording and the tenant's limits (mtd_limits_for:
 * `limits:` plus `overrides:`/runtime file): metric name present and valid, label names
 * valid, sorted, unique, values non-empty, label count and lengths within limits, sample
 * timestamps not too far in the future. Invalid series are dropped, valid ones are still
 * ingested (partial acceptance), and the reply is 400 with the first problem as plain text
 * so senders do not retry. Then the tenant's token bucket (ingestion_rate samples +
 * exemplars + metadata per second, ingestion_burst_size) must cover the request, else the
 * whole request gets 429. Float samples, native histograms and exemplars go to the ingester;
 * refused samples (out of order, too old, duplicate: 400; series limit: 429) do not stop the
 * rest. Every discarded sample is counted in cortex_discarded_samples_total{reason,user}.
 * Only after the ingester has the samples in its WAL (fsynced) does the reply say 200 (or
 * 400/429 for a partly accepted request). Group commit: the ingester appends without
 * fsync, the reply is deferred, and a zero-delay event syncs the WAL once for every request
 * that finished meanwhile, then answers them all (500 if the sync failed).
 *
 * Config (`distributor:`): max_recv_msg_size (bytes, the body limit -> 413),
 * ring (accepted).
 */
#include <stdio.h>
#include <string.h>

#include <event2/event.h>
#include <protobuf-c/protobuf-c.h>

#include "core/obs_arena.h"
#include "core/obs_log.h"
#include "core/obs_mem.h"
#include "core/obs_sbuf.h"
#include "core/obs_time.h"
#include "http/obs_http.h"
#include "labels/obs_labels.h"
#include "metrics/obs_metrics.h"
#include "metricsd/head.h"
#include "metricsd/ingester.h"
#include "metricsd/metricsd.h"
#include "proto/prometheus_remote.pb-c.h"

struct distributor_cfg {
    int64_t max_recv_msg_size;
};

static const struct obs_cfmap distributor_map[] = {
    {"max_recv_msg_size", OBS_CFT_BYTES, "100MiB",
     offsetof(struct distributor_cfg, max_recv_msg_size),
     "Largest remote-write body accepted (413 above); decoded size is capped at 8x", NULL,
     NULL},
    {"ring", OBS_CFT_IGNORE, NULL, 0, "accepted; the ring is in-process for now", NULL, NULL},
    {"remote_timeout", OBS_CFT_IGNORE, NULL, 0, "accepted", NULL, NULL},
    {NULL, 0, NULL, 0, NULL, NULL, NULL},
};

struct distributor {
    struct obs_ctx *ctx;
    struct mtd_app *app;
    size_t max_body;
    struct obs_mchild *m_received, *m_requests, *m_syncs;
    struct bucket *buckets;
    /* group commit: requests waiting for the next WAL sync (FIFO) */
    struct waiter *waiting, **wtail;
    struct event *sync_ev;
    int sync_pending;
};

struct waiter {
    struct waiter *next;
    struct obs_http_req *r;
    int status;
    char msg[];
};

/* protobuf-c allocator over the request arena: everything unpacked dies with the request. */
static void *arena_pb_alloc(void *data, size_t size)
{
    return obs_arena_alloc(data, size ? size : 1);
}

static void arena_pb_free(void *data, void *p)
{
    (void)data;
    (void)p;
}

/* Mimir-style tenant ID check: 1..150 of [a-zA-Z0-9!-_.*'()], not "." or "..". */
static int tenant_valid(const char *t, char *why, size_t cap)
{
    size_t n = strlen(t);
    if (n == 0) {
        snprintf(why, cap, "no org id");
        return 0;
    }
    if (n > 150) {
        snprintf(why, cap, "tenant ID is too long: max 150 characters");
        return 0;
    }
    if (strcmp(t, ".") == 0 || strcmp(t, "..") == 0) {
        snprintf(why, cap, "tenant ID is '.' or '..'");
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        char c = t[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            strchr("!-_.*'()", c) != NULL)
            continue;
        snprintf(why, cap, "tenant ID '%.60s' contains unsupported character '%c'", t, c);
        return 0;
    }
    return 1;
}

static void discard(struct distributor *d, const char *reason, const char *tenant, size_t n)
{
    mtd_discard(d->app, reason, tenant, n);
}

/* Token bucket of one tenant (ingestion_rate / ingestion_burst_size). */
struct bucket {
    struct bucket *next;
    double tokens;
    int64_t last_ns;
    char tenant[];
};

/* Take n tokens for tenant: 1 when allowed, 0 when the request must be refused. A request
 * larger than the burst is never allowed, as Mimir's limiter. */
static int rate_allow(struct distributor *d, const char *tenant, const struct mtd_limits *lim,
                      double n)
{
    if (lim->ingestion_rate <= 0 || n <= 0)
        return 1;
    double burst = lim->ingestion_burst_size > 0 ? (double)lim->ingestion_burst_size :
                   lim->ingestion_rate;
    struct bucket *b = d->buckets;
    while (b && strcmp(b->tenant, tenant) != 0)
        b = b->next;
    int64_t now = obs_mono_ns();
    if (b == NULL) {
        size_t len = strlen(tenant) + 1;
        b = obs_malloc(sizeof *b + len);
        if (b == NULL)
            return 1; /* out of memory: do not refuse for it */
        memcpy(b->tenant, tenant, len);
        b->tokens = burst;
        b->last_ns = now;
        b->next = d->buckets;
        d->buckets = b;
    }
    b->tokens += lim->ingestion_rate * (double)(now - b->last_ns) / 1e9;
    if (b->tokens > burst)
        b->tokens = burst;
    b->last_ns = now;
    if (n > b->tokens)
        return 0;
    b->tokens -= n;
    return 1;
}

/* Validate one series against the limits. Returns 0 or OBS_EINVAL with err set and
 * *reason a short metric label. */
static int validate_series(const struct mtd_limits *lim, const Prometheus__TimeSeries *ts,
                           struct obs_label *l, int64_t now_ms, struct obs_err *err,
                           const char **reason)
{
    size_t n = ts->n_labels;
    for (size_t k = 0; k < n; k++) {
        l[k].name = ts->labels[k]->name ? ts->labels[k]->name : "";
        l[k].value = ts->labels[k]->value ? ts->labels[k]->value : "";
    }
    const char *name = obs_labels_get(l, n, "__name__");
    if (name == NULL || name[0] == '\0') {
        *reason = "missing_metric_name";
        return obs_err_set(err, OBS_EINVAL, "received a series without metric name");
    }
    if (!obs_metric_name_valid(name, strlen(name))) {
        *reason = "metric_name_invalid";
        return obs_err_set(err, OBS_EINVAL,
                           "received a series with invalid metric name: '%.100s'", name);
    }
    if (lim->max_label_names_per_series > 0 && (int64_t)n > lim->max_label_names_per_series) {
        *reason = "max_label_names_per_series";
        return obs_err_set(err, OBS_EINVAL,
                           "received a series whose number of labels exceeds the limit "
                           "(actual: %zu, limit: %lld) series: '%.100s' "
                           "(err-mimir-max-label-names-per-series). To adjust the related "
                           "per-tenant limit, configure -validation.max-label-names-per-series, "
                           "or contact your service administrator.", n,
                           (long long)lim->max_label_names_per_series, name);
    }
    for (size_t k = 0; k < n; k++) {
        size_t nl = strlen(l[k].name), vl = strlen(l[k].value);
        if (lim->max_label_name_length > 0 && (int64_t)nl > lim->max_label_name_length) {
            *reason = "label_name_too_long";
            return obs_err_set(err, OBS_EINVAL,
                               "received a series whose label name length exceeds the limit, "
                               "label: '%.60s...' series: '%.100s' "
                               "(err-mimir-label-name-too-long). To adjust the related "
                               "per-tenant limit, configure -validation.max-length-label-name, "
                               "or contact your service administrator.", l[k].name, name);
        }
        if (lim->max_label_value_length > 0 && (int64_t)vl > lim->max_label_value_length) {
            *reason = "label_value_too_long";
            return obs_err_set(err, OBS_EINVAL,
                               "received a series whose label value length exceeds the limit, "
                               "label: '%.60s' value: '%.40s...' series: '%.100s' "
                               "(err-mimir-label-value-too-long). To adjust the related "
                               "per-tenant limit, configure -validation.max-length-label-value, "
                               "or contact your service administrator.", l[k].name,
                               l[k].value, name);
        }
    }
    if (obs_labels_check(l, n, err) != 0) {
        *reason = "label_invalid";
        return OBS_EINVAL;
    }
    if (lim->creation_grace_period_ms > 0) {
        for (size_t k = 0; k < ts->n_histograms; k++) {
            if (ts->histograms[k]->timestamp > now_ms + lim->creation_grace_period_ms) {
                *reason = "too_far_in_future";
                return obs_err_set(err, OBS_EINVAL,
                                   "received a sample whose timestamp is too far in the "
                                   "future, timestamp: %lld series: '%.100s'",
                                   (long long)ts->histograms[k]->timestamp, name);
            }
        }
        for (size_t k = 0; k < ts->n_samples; k++) {
            if (ts->samples[k]->timestamp > now_ms + lim->creation_grace_period_ms) {
                *reason = "too_far_in_future";
                return obs_err_set(err, OBS_EINVAL,
                                   "received a sample whose timestamp is too far in the "
                                   "future, timestamp: %lld series: '%.100s'",
                                   (long long)ts->samples[k]->timestamp, name);
            }
        }
    }
    return 0;
}

/* ---- fast WriteRequest decoder ------------------------------------------------------------
 * protobuf-c's generic unpacker was the top of the push profile (descriptor-driven, one
 * allocation per message). This decoder handles WriteRequest's float-sample path by hand and
 * builds the same protobuf-c structs in bulk from the request arena: per series one array of
 * Labels, one of Samples and their pointer arrays; strings are NUL-terminated arena copies.
 * A series carrying exemplars or histograms, and each metadata entry, is unpacked by
 * protobuf-c (rare, and keeps those messages' many fields in one place). Unknown fields are
 * skipped by wire type, as protobuf requires. Returns NULL on malformed input or OOM. */

struct pbr {
    const uint8_t *p, *end;
};

static int pb_varint(struct pbr *r, uint64_t *v)
{
    uint64_t x = 0;
    for (int shift = 0; shift < 64 && r->p < r->end; shift += 7) {
        uint8_t b = *r->p++;
        x |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = x;
            return 0;
        }
    }
    return -1;
}

/* Read a tag; for length-delimited fields also the payload. */
static int pb_field(struct pbr *r, uint32_t *num, int *wt, struct pbr *sub, uint64_t *val)
{
    uint64_t tag;
    if (pb_varint(r, &tag) != 0 || (tag >> 3) == 0 || (tag >> 3) > 0x1fffffff)
        return -1;
    *num = (uint32_t)(tag >> 3);
    *wt = (int)(tag & 7);
    switch (*wt) {
    case 0:
        return pb_varint(r, val);
    case 1:
        if (r->end - r->p < 8)
            return -1;
        memcpy(val, r->p, 8); /* little-endian host (x86-64, arm64) */
        r->p += 8;
        return 0;
    case 2: {
        uint64_t n;
        if (pb_varint(r, &n) != 0 || n > (uint64_t)(r->end - r->p))
            return -1;
        sub->p = r->p;
        sub->end = r->p + n;
        r->p += n;
        return 0;
    }
    case 5:
        if (r->end - r->p < 4)
            return -1;
        r->p += 4;
        return 0;
    default:
        return -1;
    }
}

static char *pb_str(struct obs_arena *ar, const struct pbr *s)
{
    size_t n = (size_t)(s->end - s->p);
    char *c = obs_arena_alloc(ar, n + 1);
    if (c) {
        memcpy(c, s->p, n);
        c[n] = '\0';
    }
    return c;
}

static Prometheus__TimeSeries *fast_series(struct obs_arena *ar, ProtobufCAllocator *alloc,
                                           struct pbr in)
{
    /* pass 1: count, and see whether protobuf-c must do this one */
    size_t nl = 0, ns = 0;
    struct pbr r = in, sub;
    uint32_t num;
    int wt;
    uint64_t v;
    while (r.p < r.end) {
        if (pb_field(&r, &num, &wt, &sub, &v) != 0)
            return NULL;
        if ((num == 1 || num == 2 || num == 3 || num == 4) && wt != 2)
            return NULL;
        if (num == 1)
            nl++;
        else if (num == 2)
            ns++;
        else if (num == 3 || num == 4)
            return prometheus__time_series__unpack(alloc, (size_t)(in.end - in.p), in.p);
    }
    Prometheus__TimeSeries *ts = obs_arena_alloc(ar, sizeof *ts);
    Prometheus__Label *lv = obs_arena_alloc(ar, (nl ? nl : 1) * sizeof *lv);
    Prometheus__Label **lp = obs_arena_alloc(ar, (nl ? nl : 1) * sizeof *lp);
    Prometheus__Sample *sv = obs_arena_alloc(ar, (ns ? ns : 1) * sizeof *sv);
    Prometheus__Sample **sp = obs_arena_alloc(ar, (ns ? ns : 1) * sizeof *sp);
    if (ts == NULL || lv == NULL || lp == NULL || sv == NULL || sp == NULL)
        return NULL;
    prometheus__time_series__init(ts);
    ts->labels = lp;
    ts->samples = sp;
    r = in;
    while (r.p < r.end) {
        if (pb_field(&r, &num, &wt, &sub, &v) != 0)
            return NULL;
        if (num == 1) {
            Prometheus__Label *l = &lv[ts->n_labels];
            prometheus__label__init(l);
            l->name = (char *)"";
            l->value = (char *)"";
            struct pbr f;
            while (sub.p < sub.end) {
                if (pb_field(&sub, &num, &wt, &f, &v) != 0)
                    return NULL;
                if ((num == 1 || num == 2) && wt != 2)
                    return NULL;
                if (num == 1 && (l->name = pb_str(ar, &f)) == NULL)
                    return NULL;
                if (num == 2 && (l->value = pb_str(ar, &f)) == NULL)
                    return NULL;
            }
            lp[ts->n_labels++] = l;
        } else if (num == 2) {
            Prometheus__Sample *x = &sv[ts->n_samples];
            prometheus__sample__init(x);
            struct pbr f;
            while (sub.p < sub.end) {
                if (pb_field(&sub, &num, &wt, &f, &v) != 0)
                    return NULL;
                if (num == 1) {
                    if (wt != 1)
                        return NULL;
                    memcpy(&x->value, &v, 8);
                } else if (num == 2) {
                    if (wt != 0)
                        return NULL;
                    x->timestamp = (int64_t)v;
                }
            }
            sp[ts->n_samples++] = x;
        }
    }
    return ts;
}

static Prometheus__WriteRequest *fast_unpack(struct obs_arena *ar, ProtobufCAllocator *alloc,
                                             const uint8_t *buf, size_t len)
{
    struct pbr r = {buf, buf + len}, sub;
    uint32_t num;
    int wt;
    uint64_t v;
    size_t nts = 0, nmd = 0;
    while (r.p < r.end) {
        if (pb_field(&r, &num, &wt, &sub, &v) != 0)
            return NULL;
        if ((num == 1 || num == 3) && wt != 2)
            return NULL;
        nts += num == 1;
        nmd += num == 3;
    }
    Prometheus__WriteRequest *wr = obs_arena_alloc(ar, sizeof *wr);
    Prometheus__TimeSeries **tv = obs_arena_alloc(ar, (nts ? nts : 1) * sizeof *tv);
    Prometheus__MetricMetadata **mv = obs_arena_alloc(ar, (nmd ? nmd : 1) * sizeof *mv);
    if (wr == NULL || tv == NULL || mv == NULL)
        return NULL;
    prometheus__write_request__init(wr);
    wr->timeseries = tv;
    wr->metadata = mv;
    r = (struct pbr){buf, buf + len};
    while (r.p < r.end) {
        if (pb_field(&r, &num, &wt, &sub, &v) != 0)
            return NULL;
        if (num == 1) {
            Prometheus__TimeSeries *ts = fast_series(ar, alloc, sub);
            if (ts == NULL)
                return NULL;
            tv[wr->n_timeseries++] = ts;
        } else if (num == 3) {
            Prometheus__MetricMetadata *m =
                prometheus__metric_metadata__unpack(alloc, (size_t)(sub.end - sub.p), sub.p);
            if (m == NULL)
                return NULL;
            mv[wr->n_metadata++] = m;
        }
    }
    return wr;
}

static void h_push(struct obs_http_req *r, void *arg)
{
    struct distributor *d = arg;
    struct obs_arena *ar = obs_http_req_arena(r);
    const char *tenant = obs_http_req_tenant(r, "anonymous");
    char why[200];
    size_t len = 0;
    const uint8_t *body = obs_http_req_body(r, &len);
    struct obs_sbuf dec;
    struct obs_label stack_l[64];
    obs_sbuf_init(&dec);

    if (d->m_requests)
        obs_mchild_add(d->m_requests, 1);
    if (!tenant_valid(tenant, why, sizeof why)) {
        obs_http_reply_text(r, 400, "%s", why);
        return;
    }
    if (d->app->head == NULL) {
        obs_http_reply_text(r, 503, "no ingester available in this process");
        return;
    }

    ProtobufCAllocator alloc = {arena_pb_alloc, arena_pb_free, ar};
    Prometheus__WriteRequest *wr = NULL;
    const char *enc = obs_http_req_encoding(r);
    if (enc == NULL || enc[0] == '\0') {
        /* No Content-Encoding: senders still compress (Prometheus always does). Try snappy,
         * then the raw bytes. */
        int src = obs_snappy_decode(body, len, d->max_body * 8, &dec);
        if (src == OBS_ELIMIT) {
            obs_sbuf_deinit(&dec);
            obs_http_reply_text(r, 413, "decompressed request body too large (limit %zu bytes)",
                                d->max_body * 8);
            return;
        }
        if (src == 0)
            wr = fast_unpack(ar, &alloc, (const uint8_t *)dec.p, dec.len);
        if (wr == NULL)
            wr = fast_unpack(ar, &alloc, body, len);
        if (wr == NULL) {
            obs_sbuf_deinit(&dec);
            obs_http_reply_text(r, 400, "%s", src != 0 ?
                                "snappy: corrupt input (body is neither snappy-compressed nor "
                                "a protobuf WriteRequest)" :
                                "failed to unmarshal remote write request: "
                                "proto: invalid WriteRequest");
            return;
        }
    } else {
        wr = fast_unpack(ar, &alloc, body, len);
        if (wr == NULL) {
            obs_http_reply_text(r, 400, "failed to unmarshal remote write request: "
                                "proto: invalid WriteRequest");
            return;
        }
    }

    /* Validate; keep the valid series in a filtered request. */
    const struct mtd_limits *lim = mtd_limits_for(d->app, tenant);
    int64_t now = obs_now_ms();
    Prometheus__TimeSeries **keep =
        obs_arena_alloc(ar, (wr->n_timeseries ? wr->n_timeseries : 1) * sizeof *keep);
    size_t nkeep = 0, bad_series = 0, bad_samples = 0, total = 0, items = 0;
    struct obs_err first = {0};
    if (keep == NULL) {
        obs_sbuf_deinit(&dec);
        obs_http_reply_text(r, 500, "out of memory");
        return;
    }
    for (size_t i = 0; i < wr->n_timeseries; i++) {
        Prometheus__TimeSeries *ts = wr->timeseries[i];
        size_t ns = ts->n_samples + ts->n_histograms;
        total += ns;
        if (ns == 0 && ts->n_exemplars == 0)
            continue;
        struct obs_label *l = ts->n_labels <= 64 ? stack_l :
                              obs_arena_alloc(ar, ts->n_labels * sizeof *l);
        struct obs_err e = {0};
        const char *reason = "invalid";
        if (l == NULL) {
            obs_sbuf_deinit(&dec);
            obs_http_reply_text(r, 500, "out of memory");
            return;
        }
        if (validate_series(lim, ts, l, now, &e, &reason) != 0) {
            bad_series++;
            bad_samples += ns;
            discard(d, reason, tenant, ns);
            if (first.code == 0)
                first = e;
            continue;
        }
        keep[nkeep++] = ts;
        items += ns + ts->n_exemplars;
    }
    items += wr->n_metadata;
    if (!rate_allow(d, tenant, lim, (double)items)) {
        discard(d, "rate_limited", tenant, total - bad_samples);
        obs_sbuf_deinit(&dec);
        obs_http_reply_text(r, 429, "the request has been rejected because the tenant exceeded "
                            "the ingestion rate limit, set to %g items/s with a maximum allowed "
                            "burst of %lld. This limit is applied on the total number of "
                            "samples, exemplars and metadata received across all distributors "
                            "(err-mimir-tenant-max-ingestion-rate). To adjust the related "
                            "per-tenant limits, configure -distributor.ingestion-rate-limit "
                            "and -distributor.ingestion-burst-size, or contact your service "
                            "administrator.", lim->ingestion_rate,
                            (long long)lim->ingestion_burst_size);
        return;
    }
    if (d->m_received)
        obs_mchild_add(d->m_received, (double)total);
    Prometheus__WriteRequest filtered = *wr;
    filtered.timeseries = keep;
    filtered.n_timeseries = nkeep;

    /* Metadata: drop oversize entries, keep the rest. */
    for (size_t i = 0; i < wr->n_metadata; i++) {
        Prometheus__MetricMetadata *m = wr->metadata[i];
        int64_t mlen = lim->max_metadata_length;
        if (mlen > 0 && ((m->help && (int64_t)strlen(m->help) > mlen) ||
                         (m->unit && (int64_t)strlen(m->unit) > mlen))) {
            if (first.code == 0)
                obs_err_set(&first, OBS_EINVAL, "received a metric metadata whose help or unit "
                            "exceeds the limit of %lld characters, metric name: '%.100s'",
                            (long long)mlen, m->metric_family_name ? m->metric_family_name : "");
            m->metric_family_name = NULL; /* skipped by the ingester */
        }
    }

    struct mtd_push_result res;
    struct obs_err err = {0};
    int rc = mtd_ingester_push_opts(d->app, tenant, &filtered, d->ctx->base == NULL, &res,
                                    &err);
    obs_sbuf_deinit(&dec);
    if (rc != 0) {
        obs_clog_error("distributor", "push failed\ttenant=%s err=\"%s\"", tenant, err.msg);
        obs_http_reply_text(r, rc == OBS_EAGAIN ? 503 : 500, "%s", err.msg);
        return;
    }
    char msg[1024] = "";
    int status = 200;
    if (first.code != 0) {
        status = 400;
        snprintf(msg, sizeof msg, "%s (%zu of %zu series rejected, %zu samples)", first.msg,
                 bad_series, wr->n_timeseries, bad_samples);
    } else if (res.rejected) {
        status = res.first_code == OBS_ELIMIT ? 429 : 400;
        snprintf(msg, sizeof msg, "%s (%llu of %llu samples rejected)", res.first_msg,
                 (unsigned long long)res.rejected,
                 (unsigned long long)(res.rejected + res.accepted));
    }
    if (d->ctx->base == NULL) { /* no loop (cannot happen in the daemon): synced already */
        if (status == 200)
            obs_http_reply(r, 200, NULL, "", 0);
        else
            obs_http_reply_text(r, status, "%s", msg);
        return;
    }
    /* Group commit: the reply waits for the next WAL sync, shared by every request that
     * finished in this turn of the loop and the next one. */
    struct waiter *w = obs_malloc(sizeof *w + strlen(msg) + 1);
    if (w == NULL) {
        struct obs_err se = {0};
        rc = mtd_head_sync(d->app->head, &se);
        if (rc != 0)
            obs_http_reply_text(r, 500, "%s", se.msg);
        else if (status == 200)
            obs_http_reply(r, 200, NULL, "", 0);
        else
            obs_http_reply_text(r, status, "%s", msg);
        return;
    }
    w->r = r;
    w->status = status;
    w->next = NULL;
    memcpy(w->msg, msg, strlen(msg) + 1);
    *d->wtail = w;
    d->wtail = &w->next;
    obs_http_req_defer(r);
    if (!d->sync_pending) {
        struct timeval tv = {0, 0};
        d->sync_pending = 1;
        event_add(d->sync_ev, &tv);
    }
}

/* Sync the WAL once for every waiting request, then answer them all. */
static void sync_waiters(struct distributor *d)
{
    struct obs_err err = {0};
    struct waiter *w = d->waiting;
    d->waiting = NULL;
    d->wtail = &d->waiting;
    d->sync_pending = 0;
    if (w == NULL)
        return;
    int rc = d->app->head ? mtd_head_sync(d->app->head, &err) :
             obs_err_set(&err, OBS_EIO, "ingester stopped before the WAL was synced");
    if (rc != 0)
        obs_clog_error("distributor", "WAL sync failed\terr=\"%s\"", err.msg);
    if (d->m_syncs)
        obs_mchild_add(d->m_syncs, 1);
    while (w) {
        struct waiter *next = w->next;
        if (rc != 0)
            obs_http_reply_text(w->r, 500, "%s", err.msg);
        else if (w->status == 200)
            obs_http_reply(w->r, 200, NULL, "", 0);
        else
            obs_http_reply_text(w->r, w->status, "%s", w->msg);
        obs_free(w);
        w = next;
    }
}

static void sync_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sync_waiters(arg);
}

void mtd_distributor_stop(struct obs_ctx *ctx)
{
    struct mtd_app *app = mtd_app_of(ctx);
    struct distributor *d = app ? app->distributor : NULL;
    if (d == NULL)
        return;
    sync_waiters(d); /* the ingester stops after us: its WAL is still open */
    if (d->sync_ev)
        event_free(d->sync_ev);
    d->sync_ev = NULL;
    while (d->buckets) {
        struct bucket *b = d->buckets;
        d->buckets = b->next;
        obs_free(b);
    }
}

int mtd_distributor_init(struct obs_ctx *ctx, struct obs_err *err)
{
    struct distributor_cfg cfg = {0};
    int rc = obs_cf_bind(obs_cf_get(ctx->cfg, "distributor"), distributor_map, &cfg, err);
    if (rc != 0)
        return rc;
    struct distributor *d = obs_calloc(1, sizeof *d);
    if (d == NULL)
        return obs_err_set(err, OBS_ENOMEM, "out of memory");
    d->ctx = ctx;
    d->app = mtd_app_of(ctx);
    d->max_body = cfg.max_recv_msg_size > 0 ? (size_t)cfg.max_recv_msg_size : (100u << 20);
    d->m_received = obs_metrics_counter(ctx->metrics, "mtd_distributor_received_samples_total",
                                        "Samples received by remote write.");
    d->m_requests = obs_metrics_counter(ctx->metrics, "mtd_distributor_requests_total",
                                        "Remote-write requests received.");
    d->m_syncs = obs_metrics_counter(ctx->metrics, "mtd_distributor_wal_syncs_total",
                                     "WAL fsyncs done for remote-write requests (group commit: "
                                     "one per batch of requests).");
    d->wtail = &d->waiting;
    if (ctx->base) {
        d->sync_ev = event_new(ctx->base, -1, 0, sync_cb, d);
        if (d->sync_ev == NULL) {
            obs_free(d);
            return obs_err_set(err, OBS_ENOMEM, "out of memory");
        }
    }
    obs_http_route_limit(ctx->http, "POST", "/api/v1/push", d->max_body, h_push, d);
    obs_http_route_limit(ctx->http, "POST", "/api/v1/write", d->max_body, h_push, d);
    d->app->distributor = d; /* freed by mtd_app_teardown, after the loop stopped */
    return 0;
}

/* The distributor hands pushes to the ingester in this process. */
const char *const mtd_distributor_deps[] = {"ingester", NULL};
