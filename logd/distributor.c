/*
 * distributor.c -- logd's distributor: the Loki push API.
 *
 * POST /loki/api/v1/push (and legacy /api/prom/push) accepts
 *   - protobuf logproto.PushRequest, snappy block compressed, no Content-Encoding
 *     (Content-Type application/x-protobuf, as Promtail sends it), and
 *   - JSON {"streams":[...]} (Content-Type application/json),
 * either optionally with Content-Encoding gzip/snappy, which the HTTP layer decodes first.
 * Validation follows Loki's distributor: labels parsed as a stream selector with only `=`,
 * label count/length limits, line size, too old / too new timestamps. Invalid entries are
 * dropped and counted, valid ones are still written; the reply is then 400 with the last
 * validation error (plain text, Loki's wording), else 204. A per-tenant token bucket
 * (ingestion_rate_mb / ingestion_burst_size_mb) answers 429 for the whole request.
 * Handlers run on the loop thread; the batch is in the fsynced WAL before any 2xx/400.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/obs_log.h"
#include "core/obs_mem.h"
#include "core/obs_time.h"
#include "http/obs_http.h"
#include "logd/logd.h"
#include "logd/logql.h"
#include "metrics/obs_metrics.h"

static const char *COMP = "distributor";

/* Largest decompressed protobuf body (snappy); a bigger one gets 413. */
#define MAX_DECODED_BYTES (256u << 20)

static void fmt_time(char *out, size_t cap, int64_t ns)
{
    obs_time_format_rfc3339(out, (unsigned)cap, ns / 1000000);
}

static void discard(struct lgd_app *app, const char *reason, const char *tenant, size_t n)
{
    if (n && app->m_discarded)
        obs_mchild_add(obs_mfamily_with(app->m_discarded, reason, tenant), (double)n);
}

/* Take n bytes from tenant's bucket; 0 when allowed. */
static int rate_allow(struct lgd_app *app, const char *tenant, uint64_t bytes)
{
    if (app->limits.ingestion_rate_mb <= 0)
        return 1;
    double rate = app->limits.ingestion_rate_mb * 1048576.0;
    double burst = app->limits.ingestion_burst_size_mb * 1048576.0;
    if (burst < rate)
        burst = rate;
    void **slot = lgd_map_slot(&app->buckets, tenant, strlen(tenant));
    if (!slot)
        return 1; /* OOM: do not punish the client for it */
    struct lgd_bucket *b = *slot;
    int64_t now = obs_mono_ns();
    if (!b) {
        b = obs_calloc(1, sizeof(*b));
        if (!b)
            return 1;
        b->tokens = burst;
        b->last_ns = now;
        *slot = b;
    }
    b->tokens += (double)(now - b->last_ns) / 1e9 * rate;
    if (b->tokens > burst)
        b->tokens = burst;
    b->last_ns = now;
    if ((double)bytes > b->tokens)
        return 0;
    b->tokens -= (double)bytes;
    return 1;
}

/* Validate the label set of one stream; returns 0 or OBS_EINVAL with Loki's message. */
static int check_labels(const struct lgd_limits *lim, const char *ltext,
                        const struct obs_label *v, size_t n, struct obs_err *err)
{
    if (lim->max_label_names_per_series > 0 && n > (size_t)lim->max_label_names_per_series)
        return obs_err_set(err, OBS_EINVAL, "entry for stream '%s' has %zu label names; limit %lld",
                           ltext, n, (long long)lim->max_label_names_per_series);
    for (size_t i = 0; i < n; i++) {
        if (lim->max_label_name_length > 0 &&
            strlen(v[i].name) > (size_t)lim->max_label_name_length)
            return obs_err_set(err, OBS_EINVAL, "stream '%s' has label name too long: '%s'",
                               ltext, v[i].name);
        if (lim->max_label_value_length > 0 &&
            strlen(v[i].value) > (size_t)lim->max_label_value_length)
            return obs_err_set(err, OBS_EINVAL, "stream '%s' has label value too long: '%s'",
                               ltext, v[i].value);
    }
    return 0;
}

static void h_push(struct obs_http_req *r, void *arg)
{
    struct obs_ctx *ctx = arg;
    struct lgd_app *app = lgd_app(ctx);
    /* As Loki: with auth disabled every request is tenant "fake", whatever the header. */
    const char *tenant = app->auth_enabled ? obs_http_req_tenant(r, NULL) : "fake";
    if (!tenant || !*tenant) {
        obs_http_reply_text(r, 401, "no org id");
        return;
    }
    size_t blen;
    const uint8_t *body = obs_http_req_body(r, &blen);
    const char *ct = obs_http_req_header(r, "Content-Type");
    int is_json = ct && strncasecmp(ct, "application/json", 16) == 0;
    struct lgd_push p;
    struct obs_err err;
    obs_err_clear(&err);
    struct obs_sbuf dec;
    obs_sbuf_init(&dec);
    struct obs_label **labels = NULL;
    size_t *nlabels = NULL;
    struct lgd_batch_stream *bs = NULL;
    size_t nbs = 0;
    int rc;
    memset(&p, 0, sizeof(p));
    if (is_json) {
        rc = lgd_push_decode_json(body, blen, &p, &err);
    } else {
        if (ct && strncasecmp(ct, "application/x-protobuf", 22) != 0 &&
            strncasecmp(ct, "application/octet-stream", 24) != 0) {
            obs_http_reply_text(r, 415, "unsupported Content-Type %s", ct);
            return;
        }
        rc = obs_snappy_decode(body, blen, MAX_DECODED_BYTES, &dec);
        if (rc == OBS_ELIMIT) {
            obs_sbuf_deinit(&dec);
            obs_http_reply_text(r, 413, "request body too large: decompressed size exceeds %u "
                                        "bytes", MAX_DECODED_BYTES);
            return;
        }
        if (rc != 0) {
            obs_sbuf_deinit(&dec);
            obs_http_reply_text(r, 400, "snappy: corrupt input");
            return;
        }
        rc = lgd_push_decode_proto((const uint8_t *)(dec.p ? dec.p : ""), dec.len, &p, &err);
    }
    if (rc != 0) {
        obs_http_reply_text(r, rc == OBS_ENOMEM ? 500 : 400, "%s", err.msg);
        goto out;
    }
    if (app->m_lines) {
        obs_mchild_add(obs_mfamily_with(app->m_lines, tenant), (double)p.nentries);
        obs_mchild_add(obs_mfamily_with(app->m_bytes, tenant), (double)p.nbytes);
    }
    /* Validate. */
    labels = obs_calloc(p.n ? p.n : 1, sizeof(*labels));
    nlabels = obs_calloc(p.n ? p.n : 1, sizeof(*nlabels));
    bs = obs_calloc(p.n ? p.n : 1, sizeof(*bs));
    if (!labels || !nlabels || !bs) {
        obs_http_reply_text(r, 500, "out of memory");
        goto out;
    }
    const struct lgd_limits *lim = &app->limits;
    int64_t now = obs_now_ns();
    int64_t oldest = lim->reject_old_samples ? now - lim->reject_old_samples_max_age_ms * 1000000
                                             : INT64_MIN;
    int64_t newest = lim->creation_grace_period_ms > 0
                         ? now + lim->creation_grace_period_ms * 1000000 : INT64_MAX;
    struct obs_err verr; /* last validation error */
    obs_err_clear(&verr);
    uint64_t accepted_bytes = 0, accepted_lines = 0;
    for (size_t i = 0; i < p.n; i++) {
        struct lgd_push_stream *s = &p.s[i];
        struct obs_err e2;
        obs_err_clear(&e2);
        if (lgd_logql_parse_labels(s->labels, s->labels_len, &labels[i], &nlabels[i], &e2) != 0) {
            if (strncmp(e2.msg, "error at least one label", 24) == 0)
                obs_err_set(&verr, OBS_EINVAL, "%s", e2.msg);
            else if (strncmp(e2.msg, "duplicate label name", 20) == 0)
                obs_err_set(&verr, OBS_EINVAL, "stream '%s' has %s", s->labels, e2.msg);
            else
                obs_err_set(&verr, OBS_EINVAL, "Error parsing labels '%s' with error: %s",
                            s->labels, e2.msg);
            discard(app, "invalid_labels", tenant, s->n);
            continue;
        }
        if (check_labels(lim, s->labels, labels[i], nlabels[i], &verr) != 0) {
            discard(app, "invalid_labels", tenant, s->n);
            continue;
        }
        /* Keep valid entries in place (compacting the array). */
        size_t w = 0;
        for (size_t k = 0; k < s->n; k++) {
            struct lgd_push_entry *e = &s->e[k];
            char t1[48], t2[48];
            if (e->ts < oldest) {
                fmt_time(t1, sizeof(t1), e->ts);
                fmt_time(t2, sizeof(t2), oldest);
                obs_err_set(&verr, OBS_EINVAL, "entry for stream '%s' has timestamp too old: %s, "
                            "oldest acceptable timestamp is: %s", s->labels, t1, t2);
                discard(app, "greater_than_max_sample_age", tenant, 1);
                continue;
            }
            if (e->ts > newest) {
                fmt_time(t1, sizeof(t1), e->ts);
                obs_err_set(&verr, OBS_EINVAL, "entry for stream '%s' has timestamp too new: %s",
                            s->labels, t1);
                discard(app, "too_far_in_future", tenant, 1);
                continue;
            }
            if (lim->max_line_size > 0 && e->len > (size_t)lim->max_line_size) {
                if (lim->max_line_size_truncate) {
                    e->len = (size_t)lim->max_line_size;
                } else {
                    obs_err_set(&verr, OBS_EINVAL, "Max entry size '%lld' bytes exceeded for "
                                "stream '%s' while adding an entry with length '%zu' bytes",
                                (long long)lim->max_line_size, s->labels, e->len);
                    discard(app, "line_too_long", tenant, 1);
                    continue;
                }
            }
            s->e[w++] = *e;
            accepted_bytes += e->len;
        }
        if (w == 0)
            continue;
        accepted_lines += w;
        bs[nbs].labels = labels[i];
        bs[nbs].nlabels = nlabels[i];
        bs[nbs].lstr = NULL;
        bs[nbs].e = s->e;
        bs[nbs].n = w;
        nbs++;
    }
    if (nbs > 0) {
        if (!rate_allow(app, tenant, accepted_bytes)) {
            discard(app, "rate_limited", tenant, accepted_lines);
            obs_http_reply_text(r, 429, "Ingestion rate limit exceeded for user %s (limit: %lld "
                                "bytes/sec) while attempting to ingest '%llu' lines totaling "
                                "'%llu' bytes, reduce log volume or contact your Loki "
                                "administrator to see if the limit can be increased", tenant,
                                (long long)(lim->ingestion_rate_mb * 1048576.0),
                                (unsigned long long)accepted_lines,
                                (unsigned long long)accepted_bytes);
            goto out;
        }
        obs_err_clear(&err);
        rc = lgd_ingester_push(app, tenant, bs, nbs, &err);
        if (rc == OBS_ELIMIT) {
            obs_http_reply_text(r, 429, "%s", err.msg);
            goto out;
        }
        if (rc != 0) {
            obs_clog_error(COMP, "push failed\ttenant=%s err=\"%s\"", tenant, err.msg);
            obs_http_reply_text(r, 500, "%s", err.msg);
            goto out;
        }
    }
    if (verr.code) {
        obs_http_reply_text(r, 400, "%s", verr.msg);
        goto out;
    }
    obs_http_reply(r, 204, NULL, NULL, 0);
out:
    if (labels)
        for (size_t i = 0; i < p.n; i++)
            lgd_labels_free(labels[i], nlabels[i]);
    obs_free(labels);
    obs_free(nlabels);
    obs_free(bs);
    lgd_push_deinit(&p);
    obs_sbuf_deinit(&dec);
}

int lgd_distributor_init(struct obs_ctx *ctx, struct obs_err *err)
{
    int rc = obs_http_route(ctx->http, "POST", "/loki/api/v1/push", h_push, ctx);
    if (rc == 0)
        rc = obs_http_route(ctx->http, "POST", "/api/prom/push", h_push, ctx);
    if (rc != 0)
        return obs_err_set(err, rc, "cannot register push routes");
    return 0;
}
