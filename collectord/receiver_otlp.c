/*
 * receiver_otlp.c -- the `otlp` receiver: OTLP/gRPC and OTLP/HTTP for traces, metrics, logs.
 *
 *   receivers:
 *     otlp:
 *       protocols:
 *         grpc: {endpoint: 0.0.0.0:4317, max_recv_msg_size_mib: 4}
 *         http: {endpoint: 0.0.0.0:4318, traces_url_path, metrics_url_path, logs_url_path}
 *
 * gRPC: {Trace,Metrics,Logs}Service/Export through common/grpc; the request is validated and
 * counted, handed to the pipelines, and answered with an empty Export*ServiceResponse, or
 * UNAVAILABLE when a pipeline refused it (memory limit, full queue) so the client retries, or
 * INVALID_ARGUMENT for bytes that do not decode.
 * HTTP: POST /v1/{traces,metrics,logs} with Content-Type application/x-protobuf or
 * application/json (Content-Encoding gzip is undone by obs_http). Success is 200 with an
 * empty response in the request's encoding; errors carry a google.rpc.Status (code 1 int32,
 * message 2 string) in the same encoding: 400 bad payload, 415 other content types,
 * 503 refused (retryable). A section present with no value (`grpc:`) uses the default
 * endpoint, as in the Collector.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "cld.h"
#include "core/obs_log.h"
#include "core/obs_mem.h"
#include "core/obs_sbuf.h"
#include "grpc/obs_grpc.h"
#include "http/obs_http.h"
#include "metrics/obs_metrics.h"

struct grpc_cfg {
    char *endpoint;
    int64_t max_recv_mib;
};

struct http_cfg {
    char *endpoint;
    char *paths[CLD_NSIGNALS];
};

static const struct obs_cfmap grpc_map[] = {
    {"endpoint", OBS_CFT_STR, "0.0.0.0:4317", offsetof(struct grpc_cfg, endpoint), "Listen on."},
    {"max_recv_msg_size_mib", OBS_CFT_INT, "64", offsetof(struct grpc_cfg, max_recv_mib),
     "Largest request accepted, MiB."},
    {"transport", OBS_CFT_IGNORE, NULL, 0, "Accepted (tcp only)."},
    {"max_concurrent_streams", OBS_CFT_IGNORE, NULL, 0, "Accepted, not enforced."},
    {"keepalive", OBS_CFT_IGNORE, NULL, 0, "Accepted, not enforced."},
    {"include_metadata", OBS_CFT_IGNORE, NULL, 0, "Accepted."},
    {NULL},
};

static const struct obs_cfmap http_map[] = {
    {"endpoint", OBS_CFT_STR, "0.0.0.0:4318", offsetof(struct http_cfg, endpoint), "Listen on."},
    {"traces_url_path", OBS_CFT_STR, "/v1/traces", offsetof(struct http_cfg, paths[0]), ""},
    {"metrics_url_path", OBS_CFT_STR, "/v1/metrics", offsetof(struct http_cfg, paths[1]), ""},
    {"logs_url_path", OBS_CFT_STR, "/v1/logs", offsetof(struct http_cfg, paths[2]), ""},
    {"cors", OBS_CFT_IGNORE, NULL, 0, "Accepted, not implemented."},
    {"include_metadata", OBS_CFT_IGNORE, NULL, 0, "Accepted."},
    {"max_request_body_size", OBS_CFT_IGNORE, NULL, 0, "Accepted (64 MiB limit)."},
    {NULL},
};

struct recv;
/* Callback argument of one signal's handlers. */
struct slot {
    struct recv *r;
    enum cld_signal sig;
};

struct recv {
    struct cld_instance *ins;
    int has_grpc, has_http;
    struct grpc_cfg g;
    struct http_cfg h;
    struct obs_grpc_server *gs;
    struct obs_http_server *hs;
    struct slot slots[CLD_NSIGNALS];
    struct obs_mchild *m_accepted[CLD_NSIGNALS], *m_refused[CLD_NSIGNALS];
};

static int recv_init(struct cld_instance *ins, struct obs_err *err)
{
    struct recv *r = obs_calloc(1, sizeof(*r));
    if (!r)
        return obs_err_set(err, OBS_ENOMEM, "out of memory");
    ins->data = r;
    r->ins = ins;
    const struct obs_cf_node *cfg = ins->cfg;
    const struct obs_cf_node *protos = obs_cf_get(cfg, "protocols");
    for (size_t i = 0; cfg && i < cfg->n; i++)
        if (strcmp(cfg->items[i]->key, "protocols"))
            return obs_cf_error(err, cfg->items[i], "unknown key (not a valid field of %s)",
                                ins->id);
    if (!protos || protos->type != OBS_CF_MAP || protos->n == 0)
        return obs_cf_error(err, protos ? protos : cfg, "%s: must specify at least one protocol "
                                                        "when using the OTLP receiver",
                            ins->id);
    for (size_t i = 0; i < protos->n; i++) {
        const struct obs_cf_node *p = protos->items[i];
        int rc;
        if (!strcmp(p->key, "grpc")) {
            r->has_grpc = 1;
            rc = obs_cf_bind(p, grpc_map, &r->g, err);
        } else if (!strcmp(p->key, "http")) {
            r->has_http = 1;
            rc = obs_cf_bind(p, http_map, &r->h, err);
        } else {
            return obs_cf_error(err, p, "unknown protocol (valid: grpc, http)");
        }
        if (rc < 0)
            return rc;
    }
    char host[128];
    int port;
    if (r->has_grpc && cld_parse_endpoint(r->g.endpoint, host, sizeof host, &port) < 0)
        return obs_cf_error(err, obs_cf_get(obs_cf_get(protos, "grpc"), "endpoint"),
                            "invalid endpoint \"%s\" (want host:port)", r->g.endpoint);
    if (r->has_http && cld_parse_endpoint(r->h.endpoint, host, sizeof host, &port) < 0)
        return obs_cf_error(err, obs_cf_get(obs_cf_get(protos, "http"), "endpoint"),
                            "invalid endpoint \"%s\" (want host:port)", r->h.endpoint);
    return 0;
}

/* Validate, count and emit. Returns 0, OBS_EINVAL (bad payload) or OBS_ELIMIT (refused). */
static int ingest(struct recv *r, enum cld_signal sig, const uint8_t *data, size_t len,
                  char *why, size_t whycap)
{
    size_t items;
    if (cld_otlp_count(sig, data, len, &items) < 0) {
        snprintf(why, whycap, "unable to decode %s request: invalid protobuf",
                 cld_signal_name(sig));
        return OBS_EINVAL;
    }
    struct cld_batch *b = cld_batch_new(sig, data, len, items);
    if (!b) {
        snprintf(why, whycap, "out of memory");
        return OBS_ELIMIT;
    }
    int rc = cld_receiver_emit(r->ins, b);
    if (rc < 0) {
        snprintf(why, whycap, "data refused due to high memory usage or a full queue");
        obs_mchild_add(r->m_refused[sig], (double)items);
        return OBS_ELIMIT;
    }
    obs_mchild_add(r->m_accepted[sig], (double)items);
    return 0;
}

static void grpc_export(struct obs_grpc_call *call, const uint8_t *req, size_t len, void *arg)
{
    struct slot *sl = arg;
    struct recv *r = sl->r;
    enum cld_signal sig = sl->sig;
    char why[160];
    int rc = ingest(r, sig, req, len, why, sizeof why);
    if (rc == 0)
        obs_grpc_reply(call, OBS_GRPC_OK, NULL, NULL, 0);
    else if (rc == OBS_EINVAL)
        obs_grpc_reply(call, OBS_GRPC_INVALID_ARGUMENT, why, NULL, 0);
    else
        obs_grpc_reply(call, OBS_GRPC_UNAVAILABLE, why, NULL, 0);
}

/* google.rpc.Status as protobuf or JSON. */
static void reply_status(struct obs_http_req *req, int http, int json, int code, const char *msg)
{
    struct obs_sbuf b;
    obs_sbuf_init(&b);
    if (json) {
        obs_sbuf_printf(&b, "{\"code\":%d,\"message\":", code);
        obs_sbuf_json_str(&b, msg, strlen(msg));
        obs_sbuf_putc(&b, '}');
    } else {
        size_t ml = strlen(msg);
        obs_sbuf_putc(&b, 0x08);
        obs_sbuf_uvarint(&b, (uint64_t)code);
        obs_sbuf_putc(&b, 0x12);
        obs_sbuf_uvarint(&b, ml);
        obs_sbuf_append(&b, msg, ml);
    }
    obs_http_reply_sbuf(req, http, json ? "application/json" : "application/x-protobuf", &b);
    obs_sbuf_deinit(&b);
}

static void http_export(struct obs_http_req *req, void *arg)
{
    struct slot *sl = arg;
    struct recv *r = sl->r;
    enum cld_signal sig = sl->sig;
    const char *ct = obs_http_req_header(req, "Content-Type");
    int json = ct && !strncasecmp(ct, "application/json", 16);
    int proto = ct && !strncasecmp(ct, "application/x-protobuf", 22);
    if (!json && !proto) {
        reply_status(req, 415, 0, 3, "unsupported content type; use application/x-protobuf "
                                     "or application/json");
        return;
    }
    size_t len;
    const uint8_t *body = obs_http_req_body(req, &len);
    struct obs_sbuf pb;
    obs_sbuf_init(&pb);
    char why[300];
    int rc;
    if (json) {
        struct obs_err err = {0};
        rc = cld_otlp_json_to_pb(sig, (const char *)body, len, &pb, &err);
        if (rc < 0) {
            snprintf(why, sizeof why, "%s", err.msg);
            rc = rc == OBS_ENOMEM ? OBS_ELIMIT : OBS_EINVAL;
        } else {
            rc = ingest(r, sig, (const uint8_t *)pb.p, pb.len, why, sizeof why);
        }
    } else {
        rc = ingest(r, sig, body, len, why, sizeof why);
    }
    obs_sbuf_deinit(&pb);
    if (rc == 0) {
        if (json)
            obs_http_reply(req, 200, "application/json", "{}", 2);
        else
            obs_http_reply(req, 200, "application/x-protobuf", "", 0);
    } else if (rc == OBS_EINVAL) {
        reply_status(req, 400, json, 3, why);
    } else {
        obs_http_add_header(req, "Retry-After", "1");
        reply_status(req, 503, json, 14, why);
    }
}

static void *slot_arg(struct recv *r, enum cld_signal s)
{
    r->slots[s].r = r;
    r->slots[s].sig = s;
    return &r->slots[s];
}

static int recv_start(struct cld_instance *ins, struct obs_err *err)
{
    struct recv *r = ins->data;
    struct obs_ctx *ctx = ins->col->ctx;
    struct obs_mfamily *fa = obs_metrics_family(
        ctx->metrics, OBS_MCOUNTER, "otelcol_receiver_accepted_items_total",
        "Items (spans, points, log records) accepted by a receiver.", "receiver,signal", NULL, 0);
    struct obs_mfamily *fr = obs_metrics_family(
        ctx->metrics, OBS_MCOUNTER, "otelcol_receiver_refused_items_total",
        "Items a receiver could not push into its pipelines.", "receiver,signal", NULL, 0);
    for (int s = 0; s < CLD_NSIGNALS; s++) {
        r->m_accepted[s] = fa ? obs_mfamily_with(fa, ins->id, cld_signal_name(s)) : NULL;
        r->m_refused[s] = fr ? obs_mfamily_with(fr, ins->id, cld_signal_name(s)) : NULL;
    }
    if (r->has_grpc) {
        r->gs = obs_grpc_server_new(ctx->base, r->g.endpoint,
                                    (size_t)(r->g.max_recv_mib > 0 ? r->g.max_recv_mib : 64)
                                        << 20,
                                    err);
        if (!r->gs)
            return OBS_EIO;
        for (int s = 0; s < CLD_NSIGNALS; s++)
            obs_grpc_server_add_unary(r->gs, cld_otlp_method(s), grpc_export,
                                      slot_arg(r, (enum cld_signal)s));
        if (obs_grpc_server_start(r->gs, err) < 0)
            return OBS_EIO;
        obs_clog_info(ins->id, "Starting GRPC server\tendpoint=%s port=%d", r->g.endpoint,
                      obs_grpc_server_port(r->gs));
    }
    if (r->has_http) {
        char host[128];
        int port;
        cld_parse_endpoint(r->h.endpoint, host, sizeof host, &port);
        r->hs = obs_http_server_new(ctx->base, host, port, err);
        if (!r->hs)
            return OBS_EIO;
        obs_http_server_set_max_body(r->hs, 64u << 20);
        for (int s = 0; s < CLD_NSIGNALS; s++)
            obs_http_route(r->hs, "POST", r->h.paths[s], http_export,
                           slot_arg(r, (enum cld_signal)s));
        obs_clog_info(ins->id, "Starting HTTP server\tendpoint=%s port=%d", r->h.endpoint,
                      obs_http_server_port(r->hs));
    }
    return 0;
}

static void recv_exit(struct cld_instance *ins)
{
    struct recv *r = ins->data;
    if (!r)
        return;
    obs_grpc_server_free(r->gs);
    obs_http_server_free(r->hs);
    obs_cf_unbind(grpc_map, &r->g);
    obs_cf_unbind(http_map, &r->h);
    obs_free(r);
    ins->data = NULL;
}

const struct cld_plugin cld_receiver_otlp = {
    .kind = CLD_RECEIVER,
    .name = "otlp",
    .signals = (1u << CLD_TRACES) | (1u << CLD_METRICS) | (1u << CLD_LOGS),
    .init = recv_init,
    .start = recv_start,
    .exit = recv_exit,
};
