/*
 * health_check.c -- the `health_check` extension: an HTTP endpoint for liveness probes.
 *
 *   extensions: {health_check: {endpoint: 0.0.0.0:13133, path: /}}
 *
 * GET <path> answers 200 {"status":"Server available","upSince":"<RFC3339>","uptime":"<dur>"}
 * once every component started, and 503 {"status":"Server not available",...} before that,
 * matching the Collector's body. It runs its own obs_http server on the main loop, separate
 * from the telemetry server.
 */
#include <stdio.h>
#include <string.h>

#include "cld.h"
#include "core/obs_mem.h"
#include "core/obs_time.h"
#include "http/obs_http.h"

struct hc_cfg {
    char *endpoint;
    char *path;
};

static const struct obs_cfmap hc_map[] = {
    {"endpoint", OBS_CFT_STR, "0.0.0.0:13133", offsetof(struct hc_cfg, endpoint), "Listen on."},
    {"path", OBS_CFT_STR, "/", offsetof(struct hc_cfg, path), "Probe path."},
    {"check_collector_pipeline", OBS_CFT_IGNORE, NULL, 0, "Deprecated upstream; ignored."},
    {"response_body", OBS_CFT_IGNORE, NULL, 0, "Accepted."},
    {NULL},
};

struct hc {
    struct cld_instance *ins;
    struct hc_cfg cfg;
    struct obs_http_server *s;
};

static int hc_init(struct cld_instance *ins, struct obs_err *err)
{
    struct hc *h = obs_calloc(1, sizeof(*h));
    if (!h)
        return obs_err_set(err, OBS_ENOMEM, "out of memory");
    ins->data = h;
    h->ins = ins;
    int rc = obs_cf_bind(ins->cfg, hc_map, &h->cfg, err);
    if (rc < 0)
        return rc;
    char host[128];
    int port;
    if (cld_parse_endpoint(h->cfg.endpoint, host, sizeof host, &port) < 0)
        return obs_cf_error(err, obs_cf_get(ins->cfg, "endpoint"),
                            "invalid endpoint \"%s\" (want host:port)", h->cfg.endpoint);
    if (h->cfg.path[0] != '/')
        return obs_cf_error(err, obs_cf_get(ins->cfg, "path"), "path must start with /");
    return 0;
}

static void h_health(struct obs_http_req *req, void *arg)
{
    struct hc *h = arg;
    struct cld_collector *c = h->ins->col;
    int ok = c->ctx && c->ctx->ready;
    char since[64], up[64];
    obs_time_format_rfc3339(since, sizeof since, c->start_ms);
    int64_t ms = obs_now_ms() - c->start_ms;
    snprintf(up, sizeof up, "%.3fs", (double)ms / 1000.0);
    struct obs_sbuf b;
    obs_sbuf_init(&b);
    obs_sbuf_printf(&b, "{\"status\":\"%s\",\"upSince\":\"%s\",\"uptime\":\"%s\"}",
                    ok ? "Server available" : "Server not available", since, up);
    obs_http_reply_sbuf(req, ok ? 200 : 503, "application/json", &b);
    obs_sbuf_deinit(&b);
}

static int hc_start(struct cld_instance *ins, struct obs_err *err)
{
    struct hc *h = ins->data;
    char host[128];
    int port;
    cld_parse_endpoint(h->cfg.endpoint, host, sizeof host, &port);
    h->s = obs_http_server_new(ins->col->ctx->base, host, port, err);
    if (!h->s)
        return OBS_EIO;
    obs_http_route(h->s, "GET", h->cfg.path, h_health, h);
    return 0;
}

static void hc_exit(struct cld_instance *ins)
{
    struct hc *h = ins->data;
    if (!h)
        return;
    obs_http_server_free(h->s);
    obs_cf_unbind(hc_map, &h->cfg);
    obs_free(h);
    ins->data = NULL;
}

const struct cld_plugin cld_extension_health_check = {
    .kind = CLD_EXTENSION,
    .name = "health_check",
    .signals = 0,
    .init = hc_init,
    .start = hc_start,
    .exit = hc_exit,
};
