/*
 * agentd.c -- agentd's components for obs_app: shared state setup and the two pipelines.
 *
 * setup binds the config into struct agd (ctx->app); the `logs` component starts the tailer
 * (tailer.c), the `metrics` component the scraper and remote-write queues (scrape.c,
 * remote_write.c). Either does nothing when its part of the config is empty, so a
 * Promtail-only or agent-only config both work. Stop runs in reverse order on SIGTERM.
 */
#include <string.h>

#include "agd.h"
#include "app/obs_app.h"
#include "core/obs_mem.h"

/* Top-level YAML sections agentd accepts besides `server` (obs_app rejects others). */
const char *const agd_config_sections[] = {"positions", "clients", "client", "scrape_configs",
                                           "metrics", NULL};

int agd_setup(struct obs_ctx *ctx, struct obs_err *err)
{
    struct agd *a = obs_calloc(1, sizeof(*a));
    if (!a)
        return obs_err_set(err, OBS_ENOMEM, "out of memory");
    a->ctx = ctx;
    ctx->app = a;
    return agd_cfg_load(ctx->cfg, &a->cfg, err);
}

void agd_teardown(struct obs_ctx *ctx)
{
    struct agd *a = ctx->app;
    if (!a)
        return;
    agd_cfg_free(&a->cfg);
    obs_free(a);
    ctx->app = NULL;
}

static int logs_init(struct obs_ctx *ctx, struct obs_err *err)
{
    return agd_logs_start(ctx->app, err);
}

static void logs_stop(struct obs_ctx *ctx) { agd_logs_stop(ctx->app); }

static int metrics_init(struct obs_ctx *ctx, struct obs_err *err)
{
    return agd_scraper_start(ctx->app, err);
}

static void metrics_stop(struct obs_ctx *ctx) { agd_scraper_stop(ctx->app); }

const struct obs_component agd_components[] = {
    {.name = "logs", .deps = NULL, .init = logs_init, .stop = logs_stop},
    {.name = "metrics", .deps = NULL, .init = metrics_init, .stop = metrics_stop},
};
const int agd_ncomponents = 2;
