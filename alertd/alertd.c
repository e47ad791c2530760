/*
 * alertd.c -- the alertd component: builds the daemon state from the config tree, opens the
 * persisted state, starts the dispatcher and registers the API; stops them in reverse.
 *
 * alertd runs as a single component ("alertmanager") on obs_app's loop and HTTP server.
 * Non-webhook receivers are accepted by the config but only logged as not supported.
 */
#include "alertd/ald.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "app/obs_app.h"
#include "config/obs_cf.h"
#include "core/obs_log.h"
#include "core/obs_mem.h"
#include "core/obs_time.h"
#include "http/obs_http.h"

#define COMP "alertmanager"

struct ald *ald_new(struct event_base *base, struct ald_config *cfg_take, const char *original)
{
    struct ald *d = obs_calloc(1, sizeof(*d));
    if (d == NULL) {
        ald_config_free(cfg_take);
        return NULL;
    }
    d->base = base;
    d->cfg = cfg_take;
    d->config_original = obs_strdup(original ? original : "");
    d->start_ms = obs_now_ms();
    return d;
}

void ald_free(struct ald *d)
{
    if (d == NULL)
        return;
    if (d->sender)
        ald_dispatch_stop(d);
    ald_state_close(d);
    for (size_t i = 0; i < d->alerts.cap; i++)
        if (ald_map_slot(&d->alerts, i))
            ald_alert_free(d->alerts.vals[i]);
    ald_map_deinit(&d->alerts);
    for (size_t i = 0; i < d->nflog.cap; i++) {
        if (!ald_map_slot(&d->nflog, i))
            continue;
        struct ald_nflog_entry *e = d->nflog.vals[i];
        obs_free(e->key);
        obs_free(e->firing);
        obs_free(e->resolved);
        obs_free(e);
    }
    ald_map_deinit(&d->nflog);
    for (size_t i = 0; i < d->nsils; i++)
        ald_silence_free(d->sils[i]);
    obs_free(d->sils);
    ald_config_free(d->cfg);
    obs_free(d->config_original);
    obs_free(d);
}

static char *read_file(const char *path)
{
    FILE *f = path && *path ? fopen(path, "rb") : NULL;
    if (f == NULL)
        return NULL;
    struct obs_sbuf sb;
    obs_sbuf_init(&sb);
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
        obs_sbuf_append(&sb, buf, n);
    fclose(f);
    obs_sbuf_putc(&sb, '\0');
    return obs_sbuf_take(&sb, NULL);
}

static int am_init(struct obs_ctx *ctx, struct obs_err *err)
{
    struct ald_config *cfg = ald_config_from_tree(ctx->cfg, err);
    if (cfg == NULL)
        return err->code ? err->code : OBS_EINVAL;
    if (cfg->external_url == NULL || cfg->external_url[0] == '\0') {
        char host[256] = "localhost", url[400];
        gethostname(host, sizeof(host) - 1);
        snprintf(url, sizeof(url), "http://%s:%d", host, obs_http_server_port(ctx->http));
        obs_free(cfg->external_url);
        cfg->external_url = obs_strdup(url);
    }
    for (size_t i = 0; i < cfg->nreceivers; i++)
        if (cfg->receivers[i].nunsupported)
            obs_clog_warn(COMP, "receiver integrations not supported, only webhook_configs "
                                "notify\treceiver=%s unsupported=%d",
                          cfg->receivers[i].name, cfg->receivers[i].nunsupported);
    char *orig = read_file(ctx->cfg_file);
    struct ald *d = ald_new(ctx->base, cfg, orig);
    obs_free(orig);
    if (d == NULL)
        return obs_err_set(err, OBS_ENOMEM, "out of memory");
    int rc = ald_state_open(d, err);
    if (rc == 0)
        rc = ald_dispatch_start(d, err);
    if (rc == 0)
        rc = ald_api_register(d, ctx->http);
    if (rc != 0) {
        ald_free(d);
        return rc;
    }
    ctx->app = d;
    obs_clog_info(COMP, "alertd ready\tstorage=%s external_url=%s receivers=%zu",
                  d->cfg->storage_path, d->cfg->external_url, d->cfg->nreceivers);
    return 0;
}

static void am_stop(struct obs_ctx *ctx)
{
    struct ald *d = ctx->app;
    if (d == NULL)
        return;
    ald_dispatch_stop(d);
    ald_state_sync(d);
    ald_free(d);
    ctx->app = NULL;
}

const struct obs_component ald_component = {
    .name = "alertmanager",
    .deps = NULL,
    .init = am_init,
    .stop = am_stop,
};
