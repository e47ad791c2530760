/*
 * exporter_otlp.c -- the `otlp` exporter: OTLP/gRPC unary Export to `endpoint`.
 *
 *   exporters:
 *     otlp: {endpoint: 127.0.0.1:4417, tls: {insecure: true}, timeout: 5s, headers: {k: v},
 *            sending_queue: {...}, retry_on_failure: {...}}
 *
 * Sends from the queue's thread with a blocking call on one shared channel (gRPC channels are
 * thread-safe). Retryable statuses, as in the Collector: UNAVAILABLE, RESOURCE_EXHAUSTED,
 * DEADLINE_EXCEEDED, CANCELLED, ABORTED (10), OUT_OF_RANGE (11), DATA_LOSS (15), and calls
 * that could not be made at all; anything else drops the batch. Only plaintext gRPC is
 * implemented: tls.insecure must be true (a config asking for TLS fails to load rather than
 * silently sending in the clear). sending_queue.storage: file_storage[/name] makes the queue
 * persistent (exporter_queue.c): process() returns 0 only once the request is fsynced.
 */
#include <stdio.h>
#include <string.h>

#include "cld.h"
#include "core/obs_log.h"
#include "core/obs_mem.h"
#include "grpc/obs_grpc.h"

struct tls_cfg {
    int insecure;
    int insecure_skip_verify;
};

struct otlp_cfg {
    char *endpoint;
    int64_t timeout_ms;
    struct tls_cfg tls;
    const struct obs_cf_node *headers;
    struct cld_queue_cfg queue;
    struct cld_retry_cfg retry;
    char *compression;
};

static const struct obs_cfmap tls_map[] = {
    {"insecure", OBS_CFT_BOOL, "false", offsetof(struct tls_cfg, insecure), "Plaintext."},
    {"insecure_skip_verify", OBS_CFT_BOOL, "false", offsetof(struct tls_cfg,
                                                             insecure_skip_verify), ""},
    {"ca_file", OBS_CFT_IGNORE, NULL, 0, ""},
    {"cert_file", OBS_CFT_IGNORE, NULL, 0, ""},
    {"key_file", OBS_CFT_IGNORE, NULL, 0, ""},
    {NULL},
};

static const struct obs_cfmap otlp_map[] = {
    {"endpoint", OBS_CFT_STR, NULL, offsetof(struct otlp_cfg, endpoint), "host:port"},
    {"timeout", OBS_CFT_DURATION, "5s", offsetof(struct otlp_cfg, timeout_ms), "Per call."},
    {"tls", OBS_CFT_SECTION, NULL, offsetof(struct otlp_cfg, tls), "TLS.", tls_map},
    {"headers", OBS_CFT_NODE, NULL, offsetof(struct otlp_cfg, headers), "gRPC metadata."},
    {"sending_queue", OBS_CFT_SECTION, NULL, offsetof(struct otlp_cfg, queue), "Queue.",
     cld_queue_map},
    {"retry_on_failure", OBS_CFT_SECTION, NULL, offsetof(struct otlp_cfg, retry), "Retry.",
     cld_retry_map},
    {"compression", OBS_CFT_STR, "gzip", offsetof(struct otlp_cfg, compression),
     "Accepted; calls are sent uncompressed."},
    {"balancer_name", OBS_CFT_IGNORE, NULL, 0, ""},
    {"keepalive", OBS_CFT_IGNORE, NULL, 0, ""},
    {"wait_for_ready", OBS_CFT_IGNORE, NULL, 0, ""},
    {"auth", OBS_CFT_IGNORE, NULL, 0, ""},
    {NULL},
};

struct otlp_exp {
    struct cld_instance *ins;
    struct otlp_cfg cfg;
    char target[256];
    const char **md; /* key, value, ..., NULL */
    struct obs_grpc_channel *ch;
    struct cld_equeue *q;
    char qdir[1024]; /* persistent queue directory, "" = in memory */
};

static int exp_init(struct cld_instance *ins, struct obs_err *err)
{
    struct otlp_exp *e = obs_calloc(1, sizeof(*e));
    if (!e)
        return obs_err_set(err, OBS_ENOMEM, "out of memory");
    ins->data = e;
    e->ins = ins;
    int rc = obs_cf_bind(ins->cfg, otlp_map, &e->cfg, err);
    if (rc < 0)
        return rc;
    if (!e->cfg.endpoint || !*e->cfg.endpoint)
        return obs_cf_error(err, ins->cfg, "%s: requires a non-empty \"endpoint\"", ins->id);
    const char *ep = e->cfg.endpoint;
    int scheme_http = !strncmp(ep, "http://", 7);
    if (!strncmp(ep, "https://", 8))
        return obs_cf_error(err, obs_cf_get(ins->cfg, "endpoint"),
                            "TLS is not supported; use tls: {insecure: true}");
    if (scheme_http)
        ep += 7;
    char host[128];
    int port;
    if (cld_parse_endpoint(ep, host, sizeof host, &port) < 0)
        return obs_cf_error(err, obs_cf_get(ins->cfg, "endpoint"),
                            "invalid endpoint \"%s\" (want host:port)", e->cfg.endpoint);
    if (!e->cfg.tls.insecure && !scheme_http)
        return obs_cf_error(err, ins->cfg, "%s: TLS is not supported; set tls.insecure: true",
                            ins->id);
    snprintf(e->target, sizeof e->target, "%s", ep);
    const struct obs_cf_node *h = e->cfg.headers;
    size_t nh = h && h->type == OBS_CF_MAP ? h->n : 0;
    e->md = obs_calloc(2 * nh + 1, sizeof(char *));
    if (!e->md)
        return obs_err_set(err, OBS_ENOMEM, "out of memory");
    for (size_t i = 0; i < nh; i++) {
        if (h->items[i]->type != OBS_CF_SCALAR)
            return obs_cf_error(err, h->items[i], "header value must be a string");
        e->md[2 * i] = h->items[i]->key;
        e->md[2 * i + 1] = h->items[i]->value;
    }
    return cld_queue_storage(ins, &e->cfg.queue, e->qdir, sizeof e->qdir, err);
}

static int send_batch(void *arg, const struct cld_batch *b)
{
    struct otlp_exp *e = arg;
    struct obs_sbuf resp;
    struct obs_err err = {0};
    int status = 0;
    obs_sbuf_init(&resp);
    int rc = obs_grpc_unary(e->ch, cld_otlp_method(b->sig), e->md, b->data, b->len,
                            (int)e->cfg.timeout_ms, &resp, &status, &err);
    obs_sbuf_deinit(&resp);
    if (rc < 0) {
        obs_clog_warn(e->ins->id, "export call failed\terror=\"%s\"", err.msg);
        return OBS_ERETRY;
    }
    if (status == OBS_GRPC_OK)
        return 0;
    obs_clog_warn(e->ins->id, "export returned an error\tgrpc_status=%d message=\"%s\"", status,
                  err.msg);
    switch (status) {
    case OBS_GRPC_UNAVAILABLE:
    case OBS_GRPC_RESOURCE_EXHAUSTED:
    case OBS_GRPC_DEADLINE_EXCEEDED:
    case OBS_GRPC_CANCELLED:
    case 10: /* ABORTED */
    case 11: /* OUT_OF_RANGE */
    case 15: /* DATA_LOSS */
        return OBS_ERETRY;
    default:
        return OBS_EFATAL;
    }
}

static int exp_start(struct cld_instance *ins, struct obs_err *err)
{
    struct otlp_exp *e = ins->data;
    e->ch = obs_grpc_channel_new(e->target);
    if (!e->ch)
        return obs_err_set(err, OBS_EIO, "%s: cannot create gRPC channel to %s", ins->id,
                           e->target);
    e->q = cld_queue_start(ins, &e->cfg.queue, &e->cfg.retry, e->qdir, send_batch, e, err);
    return e->q ? 0 : OBS_EIO;
}

static int exp_process(struct cld_instance *ins, struct cld_batch *b)
{
    struct otlp_exp *e = ins->data;
    if (!e->q) {
        cld_batch_free(b);
        return OBS_ELIMIT;
    }
    return cld_equeue_push(e->q, b);
}

static void exp_exit(struct cld_instance *ins)
{
    struct otlp_exp *e = ins->data;
    if (!e)
        return;
    cld_equeue_free(e->q, 5000);
    obs_grpc_channel_free(e->ch);
    obs_free(e->md);
    obs_cf_unbind(otlp_map, &e->cfg);
    obs_free(e);
    ins->data = NULL;
}

const struct cld_plugin cld_exporter_otlp = {
    .kind = CLD_EXPORTER,
    .name = "otlp",
    .signals = 7,
    .init = exp_init,
    .start = exp_start,
    .process = exp_process,
    .exit = exp_exit,
};
