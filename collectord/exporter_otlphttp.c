/*
 * exporter_otlphttp.c -- the `otlphttp` exporter: OTLP/HTTP POST of protobuf requests.
 *
 *   exporters:
 *     otlphttp: {endpoint: http://127.0.0.1:4418, traces_endpoint, metrics_endpoint,
 *                logs_endpoint, compression: gzip|none, timeout: 30s, headers: {k: v},
 *                sending_queue: {...}, retry_on_failure: {...}}
 *
 * The per-signal URL is <endpoint>/v1/<signal> unless given explicitly. Bodies are
 * Content-Type application/x-protobuf, gzip-compressed by default as in the Collector.
 * 429, 502, 503, 504 and connection errors are retried (OTLP/HTTP spec); other statuses drop
 * the batch. Only encoding: proto is implemented. sending_queue.storage: file_storage[/name]
 * makes the queue persistent (exporter_queue.c): process() returns 0 once fsynced.
 */
#include <stdio.h>
#include <string.h>

#include "cld.h"
#include "core/obs_log.h"
#include "core/obs_mem.h"
#include "http/obs_http.h"

struct ohttp_cfg {
    char *endpoint;
    char *urls[CLD_NSIGNALS];
    char *compression;
    char *encoding;
    int64_t timeout_ms;
    const struct obs_cf_node *headers;
    struct cld_queue_cfg queue;
    struct cld_retry_cfg retry;
};

static const struct obs_cfmap ohttp_map[] = {
    {"endpoint", OBS_CFT_STR, NULL, offsetof(struct ohttp_cfg, endpoint), "Base URL."},
    {"traces_endpoint", OBS_CFT_STR, NULL, offsetof(struct ohttp_cfg, urls[0]), ""},
    {"metrics_endpoint", OBS_CFT_STR, NULL, offsetof(struct ohttp_cfg, urls[1]), ""},
    {"logs_endpoint", OBS_CFT_STR, NULL, offsetof(struct ohttp_cfg, urls[2]), ""},
    {"compression", OBS_CFT_STR, "gzip", offsetof(struct ohttp_cfg, compression),
     "gzip or none."},
    {"encoding", OBS_CFT_STR, "proto", offsetof(struct ohttp_cfg, encoding), "proto only."},
    {"timeout", OBS_CFT_DURATION, "30s", offsetof(struct ohttp_cfg, timeout_ms), "Per request."},
    {"headers", OBS_CFT_NODE, NULL, offsetof(struct ohttp_cfg, headers), "Extra headers."},
    {"sending_queue", OBS_CFT_SECTION, NULL, offsetof(struct ohttp_cfg, queue), "Queue.",
     cld_queue_map},
    {"retry_on_failure", OBS_CFT_SECTION, NULL, offsetof(struct ohttp_cfg, retry), "Retry.",
     cld_retry_map},
    {"tls", OBS_CFT_IGNORE, NULL, 0, "Accepted; https URLs use libcurl defaults."},
    {"auth", OBS_CFT_IGNORE, NULL, 0, ""},
    {NULL},
};

struct ohttp {
    struct cld_instance *ins;
    struct ohttp_cfg cfg;
    char *url[CLD_NSIGNALS];
    char **hdrs; /* "Name: value", NULL-terminated */
    int gzip;
    struct cld_equeue *q;
    char qdir[1024]; /* persistent queue directory, "" = in memory */
};

static int oh_init(struct cld_instance *ins, struct obs_err *err)
{
    struct ohttp *o = obs_calloc(1, sizeof(*o));
    if (!o)
        return obs_err_set(err, OBS_ENOMEM, "out of memory");
    ins->data = o;
    o->ins = ins;
    int rc = obs_cf_bind(ins->cfg, ohttp_map, &o->cfg, err);
    if (rc < 0)
        return rc;
    if (strcmp(o->cfg.encoding, "proto"))
        return obs_cf_error(err, obs_cf_get(ins->cfg, "encoding"),
                            "only encoding: proto is supported");
    if (!strcmp(o->cfg.compression, "gzip"))
        o->gzip = 1;
    else if (strcmp(o->cfg.compression, "none") && strcmp(o->cfg.compression, ""))
        return obs_cf_error(err, obs_cf_get(ins->cfg, "compression"),
                            "unsupported compression \"%s\" (gzip or none)", o->cfg.compression);
    for (int s = 0; s < CLD_NSIGNALS; s++) {
        if (o->cfg.urls[s] && *o->cfg.urls[s]) {
            o->url[s] = obs_strdup(o->cfg.urls[s]);
        } else if (o->cfg.endpoint && *o->cfg.endpoint) {
            size_t n = strlen(o->cfg.endpoint) + 16;
            o->url[s] = obs_malloc(n);
            if (o->url[s]) {
                const char *base = o->cfg.endpoint;
                size_t bl = strlen(base);
                snprintf(o->url[s], n, "%.*s/v1/%s", (int)(bl && base[bl - 1] == '/' ? bl - 1 : bl),
                         base, cld_signal_name((enum cld_signal)s));
            }
        } else {
            return obs_cf_error(err, ins->cfg, "%s: at least one endpoint must be specified",
                                ins->id);
        }
        if (!o->url[s])
            return obs_err_set(err, OBS_ENOMEM, "out of memory");
        if (strncmp(o->url[s], "http://", 7) && strncmp(o->url[s], "https://", 8))
            return obs_cf_error(err, ins->cfg, "%s: endpoint \"%s\" must start with http:// or "
                                               "https://",
                                ins->id, o->url[s]);
    }
    const struct obs_cf_node *h = o->cfg.headers;
    size_t nh = h && h->type == OBS_CF_MAP ? h->n : 0;
    o->hdrs = obs_calloc(nh + 4, sizeof(char *));
    if (!o->hdrs)
        return obs_err_set(err, OBS_ENOMEM, "out of memory");
    size_t k = 0;
    o->hdrs[k++] = obs_strdup("Content-Type: application/x-protobuf");
    o->hdrs[k++] = obs_strdup("User-Agent: collectord/0.1.0");
    if (o->gzip)
        o->hdrs[k++] = obs_strdup("Content-Encoding: gzip");
    for (size_t i = 0; i < nh; i++) {
        if (h->items[i]->type != OBS_CF_SCALAR)
            return obs_cf_error(err, h->items[i], "header value must be a string");
        size_t n = strlen(h->items[i]->key) + strlen(h->items[i]->value) + 3;
        if ((o->hdrs[k] = obs_malloc(n)))
            snprintf(o->hdrs[k], n, "%s: %s", h->items[i]->key, h->items[i]->value);
        k++;
    }
    for (size_t i = 0; i < k; i++)
        if (!o->hdrs[i])
            return obs_err_set(err, OBS_ENOMEM, "out of memory");
    return cld_queue_storage(ins, &o->cfg.queue, o->qdir, sizeof o->qdir, err);
}

static int oh_send(void *arg, const struct cld_batch *b)
{
    struct ohttp *o = arg;
    struct obs_sbuf z;
    obs_sbuf_init(&z);
    const void *body = b->data;
    size_t len = b->len;
    if (o->gzip) {
        if (obs_gzip_encode(b->data, b->len, &z) < 0) {
            obs_sbuf_deinit(&z);
            return OBS_ERETRY;
        }
        body = z.p;
        len = z.len;
    }
    struct obs_httpc_resp resp;
    struct obs_err err = {0};
    obs_sbuf_init(&resp.body);
    int rc = obs_httpc_do("POST", o->url[b->sig], (const char *const *)o->hdrs, body, len,
                          (int)o->cfg.timeout_ms, &resp, &err);
    int status = rc == 0 ? resp.status : 0;
    obs_sbuf_deinit(&resp.body);
    obs_sbuf_deinit(&z);
    if (status >= 200 && status < 300)
        return 0;
    if (rc < 0) {
        obs_clog_warn(o->ins->id, "export request failed\terror=\"%s\"", err.msg);
        return OBS_ERETRY;
    }
    obs_clog_warn(o->ins->id, "export request returned an error\turl=%s status=%d",
                  o->url[b->sig], status);
    if (status == 429 || status == 502 || status == 503 || status == 504)
        return OBS_ERETRY;
    return OBS_EFATAL;
}

static int oh_start(struct cld_instance *ins, struct obs_err *err)
{
    struct ohttp *o = ins->data;
    o->q = cld_queue_start(ins, &o->cfg.queue, &o->cfg.retry, o->qdir, oh_send, o, err);
    return o->q ? 0 : OBS_EIO;
}

static int oh_process(struct cld_instance *ins, struct cld_batch *b)
{
    struct ohttp *o = ins->data;
    if (!o->q) {
        cld_batch_free(b);
        return OBS_ELIMIT;
    }
    return cld_equeue_push(o->q, b);
}

static void oh_exit(struct cld_instance *ins)
{
    struct ohttp *o = ins->data;
    if (!o)
        return;
    cld_equeue_free(o->q, 5000);
    for (int s = 0; s < CLD_NSIGNALS; s++)
        obs_free(o->url[s]);
    for (size_t i = 0; o->hdrs && o->hdrs[i]; i++)
        obs_free(o->hdrs[i]);
    obs_free(o->hdrs);
    obs_cf_unbind(ohttp_map, &o->cfg);
    obs_free(o);
    ins->data = NULL;
}

const struct cld_plugin cld_exporter_otlphttp = {
    .kind = CLD_EXPORTER,
    .name = "otlphttp",
    .signals = 7,
    .init = oh_init,
    .start = oh_start,
    .process = oh_process,
    .exit = oh_exit,
};
