/*
 * distributor.c -- traced distributor: the OTLP trace receivers.
 *
 *   OTLP/HTTP  POST /v1/traces on distributor.receivers.otlp.protocols.http.endpoint (4418) and
 *              on the main HTTP port; body protobuf (application/x-protobuf) or OTLP/JSON
 *              (application/json), optionally gzip (decoded by obs_http).
 *   OTLP/gRPC  /opentelemetry.proto.collector.trace.v1.TraceService/Export on
 *              distributor.receivers.otlp.protocols.grpc.endpoint (4417).
 * A request is decoded, validated (16-byte trace ids, 8-byte span ids) and handed to the
 * ingester, which makes it durable before we answer. Errors: malformed input 400 /
 * INVALID_ARGUMENT with a plain-text message; WAL failure 500 / UNAVAILABLE. In one process
 * (-target=all) the ingester call is direct.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "app/obs_app.h"
#include "codec/obs_otlp_json.h"
#include "core/obs_log.h"
#include "core/obs_mem.h"
#include "grpc/obs_grpc.h"
#include "http/obs_http.h"
#include "metrics/obs_metrics.h"
#include "traced/trd.h"

#define COMP "distributor"
#define EXPORT_METHOD "/opentelemetry.proto.collector.trace.v1.TraceService/Export"

/* Decode, validate and push raw protobuf bytes. Returns 0 or an OBS_E* code with err set;
 * OBS_EINVAL means the client's fault. */
static int ingest(struct trd_app *a, const uint8_t *raw, size_t len, struct obs_err *err)
{
    trd_export_req *req =
        opentelemetry__proto__collector__trace__v1__export_trace_service_request__unpack(NULL, len,
                                                                                          raw);
    if (req == NULL) {
        obs_mchild_add(a->m_rejected, 1);
        return obs_err_set(err, OBS_EINVAL, "failed to decode OTLP protobuf request (%zu bytes)",
                           len);
    }
    int rc = trd_export_validate(req, err);
    if (rc == 0) {
        rc = trd_ingester_push(a, req, raw, len);
        if (rc != 0)
            obs_err_set(err, rc, "failed to persist spans: %s", obs_rc_str(rc));
        else
            obs_mchild_add(a->m_batches, 1);
    } else {
        obs_mchild_add(a->m_rejected, 1);
    }
    opentelemetry__proto__collector__trace__v1__export_trace_service_request__free_unpacked(req,
                                                                                           NULL);
    return rc;
}

static int ct_is(const char *ct, const char *want)
{
    size_t n = strlen(want);
    return ct && strncasecmp(ct, want, n) == 0 && (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

static void h_otlp_traces(struct obs_http_req *r, void *arg)
{
    struct trd_app *a = arg;
    size_t len = 0;
    const uint8_t *body = obs_http_req_body(r, &len);
    const char *ct = obs_http_req_header(r, "Content-Type");
    int json = ct_is(ct, "application/json");
    struct obs_err err = {0};
    struct obs_sbuf pb;
    obs_sbuf_init(&pb);
    const uint8_t *raw = body;
    size_t rawlen = len;
    obs_mchild_add(a->m_bytes, (double)len);
    if (json) {
        int rc = obs_otlp_json_to_pb(
            &opentelemetry__proto__collector__trace__v1__export_trace_service_request__descriptor,
            (const char *)body, len, &pb, &err);
        if (rc != 0) {
            obs_mchild_add(a->m_rejected, 1);
            if (rc == OBS_ENOMEM)
                obs_http_reply_text(r, 500, "out of memory");
            else
                obs_http_reply_text(r, 400, "invalid OTLP JSON request: %s", err.msg);
            obs_sbuf_deinit(&pb);
            return;
        }
        raw = (const uint8_t *)pb.p;
        rawlen = pb.len;
    } else if (ct && !ct_is(ct, "application/x-protobuf") && !ct_is(ct, "application/protobuf") &&
               !ct_is(ct, "application/octet-stream")) {
        obs_mchild_add(a->m_rejected, 1);
        obs_http_reply_text(r, 415,
                            "unsupported content type %s: use application/x-protobuf or "
                            "application/json",
                            ct);
        return;
    }
    int rc = ingest(a, raw ? raw : (const uint8_t *)"", rawlen, &err);
    obs_sbuf_deinit(&pb);
    if (rc == OBS_EINVAL) {
        obs_http_reply_text(r, 400, "%s", err.msg);
    } else if (rc != 0) {
        obs_clog_error(COMP, "push failed\terr=\"%s\"", err.msg);
        obs_http_reply_text(r, rc == OBS_ENOMEM ? 503 : 500, "%s", err.msg);
    } else if (json) {
        obs_http_reply(r, 200, "application/json", "{}", 2);
    } else {
        /* an empty ExportTraceServiceResponse */
        obs_http_reply(r, 200, "application/x-protobuf", "", 0);
    }
}

static void g_export(struct obs_grpc_call *call, const uint8_t *req, size_t len, void *arg)
{
    struct trd_app *a = arg;
    struct obs_err err = {0};
    obs_mchild_add(a->m_bytes, (double)len);
    int rc = ingest(a, req ? req : (const uint8_t *)"", len, &err);
    if (rc == OBS_EINVAL)
        obs_grpc_reply(call, OBS_GRPC_INVALID_ARGUMENT, err.msg, NULL, 0);
    else if (rc != 0)
        obs_grpc_reply(call, OBS_GRPC_UNAVAILABLE, err.msg, NULL, 0);
    else
        obs_grpc_reply(call, OBS_GRPC_OK, NULL, "", 0);
}

/* Split "host:port" (host may be empty or bracketed IPv6). */
static int split_endpoint(const char *ep, char *host, size_t hcap, int *port)
{
    const char *c = strrchr(ep, ':');
    if (c == NULL)
        return OBS_EINVAL;
    size_t hn = (size_t)(c - ep);
    if (hn >= hcap)
        return OBS_EINVAL;
    memcpy(host, ep, hn);
    host[hn] = '\0';
    if (hn >= 2 && host[0] == '[' && host[hn - 1] == ']') {
        memmove(host, host + 1, hn - 2);
        host[hn - 2] = '\0';
    }
    char *end;
    long p = strtol(c + 1, &end, 10);
    if (*end != '\0' || c[1] == '\0' || p < 0 || p > 65535)
        return OBS_EINVAL;
    *port = (int)p;
    return 0;
}

int trd_distributor_init(struct obs_ctx *ctx, struct obs_err *err)
{
    struct trd_app *a = ctx->app;
    size_t maxb = (size_t)a->dcfg.max_recv_bytes;
    a->m_batches = obs_metrics_counter(ctx->metrics, "traced_distributor_push_requests_total",
                                       "OTLP export requests accepted.");
    a->m_rejected = obs_metrics_counter(ctx->metrics, "traced_distributor_rejected_requests_total",
                                        "OTLP export requests rejected as malformed.");
    a->m_bytes = obs_metrics_counter(ctx->metrics, "traced_distributor_bytes_received_total",
                                     "OTLP request payload bytes received.");
    obs_http_route_limit(ctx->http, "POST", "/v1/traces", maxb, h_otlp_traces, a);
    obs_http_route_limit(ctx->http, "POST", "/otlp/v1/traces", maxb, h_otlp_traces, a);

    const char *hep = a->dcfg.receivers.otlp.protocols.http.endpoint;
    if (hep && *hep) {
        char host[256];
        int port;
        if (split_endpoint(hep, host, sizeof(host), &port) != 0)
            return obs_err_set(err, OBS_EINVAL,
                               "distributor.receivers.otlp.protocols.http.endpoint: bad "
                               "address %s (want host:port)",
                               hep);
        a->otlp_http = obs_http_server_new(ctx->base, host, port, err);
        if (a->otlp_http == NULL)
            return err->code ? err->code : OBS_EIO;
        /* No server-wide limit below the route's: evhttp's own 413 is HTML and drops the
         * connection mid-upload; the route limit answers in plain text. */
        obs_http_route_limit(a->otlp_http, "POST", "/v1/traces", maxb, h_otlp_traces, a);
        obs_clog_info(COMP, "OTLP/HTTP receiver listening\taddr=%s port=%d", host,
                      obs_http_server_port(a->otlp_http));
    }
    const char *gep = a->dcfg.receivers.otlp.protocols.grpc.endpoint;
    if (gep && *gep) {
        a->grpc = obs_grpc_server_new(ctx->base, gep, maxb, err);
        if (a->grpc == NULL)
            return err->code ? err->code : OBS_EIO;
        int rc = obs_grpc_server_add_unary(a->grpc, EXPORT_METHOD, g_export, a);
        if (rc == 0)
            rc = obs_grpc_server_start(a->grpc, err);
        if (rc != 0)
            return obs_err_set(err, rc, "OTLP/gRPC receiver on %s: %s", gep,
                               err->msg[0] ? err->msg : obs_rc_str(rc));
        obs_clog_info(COMP, "OTLP/gRPC receiver listening\taddr=%s port=%d", gep,
                      obs_grpc_server_port(a->grpc));
    }
    return 0;
}

void trd_distributor_stop(struct obs_ctx *ctx)
{
    struct trd_app *a = ctx->app;
    if (a == NULL)
        return;
    obs_grpc_server_free(a->grpc);
    a->grpc = NULL;
    obs_http_server_free(a->otlp_http);
    a->otlp_http = NULL;
}
