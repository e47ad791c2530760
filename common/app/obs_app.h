/*
 * obs_app.h -- the common main(): flags, config, loop, components, health endpoints.
 *
 * Each daemon's main.c is a table: an obs_app_desc listing its components. obs_app_main()
 *   1. parses flags: -config.file=F (also --config.file, --config=F), -config.expand-env,
 *      -target=a,b (default "all"), -log.level=L, -version, -help, and any other -a.b-c=v
 *      which sets YAML path a.b_c (desc->flag_aliases may map names first);
 *   2. loads the YAML file (unknown top-level keys fail: "file:line:col: key: reason");
 *   3. binds the `server` section (http_listen_address, http_listen_port, grpc_listen_port,
 *      log_level, http_server_max_body_bytes) and creates the event loop and HTTP server with
 *      /metrics, /ready, /-/ready, /-/healthy and /api/v1/status/buildinfo-free defaults;
 *   4. works out the dependency closure of -target and calls each component's init in
 *      dependency order; then marks the process ready and runs the loop;
 *   5. on SIGINT/SIGTERM calls stop() in reverse order (drain, flush, close WALs) and exits 0.
 * A bad flag or config exits 1 with "file:line:col: key: reason" on stderr.
 */
#ifndef OBS_APP_H
#define OBS_APP_H

#include <stdint.h>

#include "config/obs_cf.h"
#include "core/obs_err.h"

struct event_base;
struct obs_http_server;
struct obs_metrics;

struct obs_server_cfg {
    char *http_listen_address;
    int64_t http_listen_port;
    int64_t grpc_listen_port;
    char *log_level;
    int64_t http_server_max_body_bytes;
};

struct obs_ctx {
    struct event_base *base;
    struct obs_cf_node *cfg;       /* whole config tree; immutable after load */
    const char *cfg_file;          /* path or "" */
    int expand_env;                /* -config.expand-env was given (reloads must do the same) */
    struct obs_server_cfg server;
    struct obs_metrics *metrics;   /* self-metrics registry, served on /metrics */
    struct obs_http_server *http;  /* the daemon's public HTTP server */
    const char *daemon;            /* "metricsd" */
    const char *version;
    void *app;                     /* the daemon's own shared state */
    int ready;                     /* set by obs_app after every component started */
    char **targets;                /* resolved component names, in start order */
    int ntargets;
};

struct obs_component {
    const char *name;
    const char *const *deps; /* NULL-terminated names of components started first, or NULL */
    /* Start the component: read its config section from ctx->cfg, register HTTP routes,
     * open WALs. Returns 0 or an error code with err set (exits the process with 1). */
    int (*init)(struct obs_ctx *ctx, struct obs_err *err);
    /* Stop: flush and close. Called in reverse start order on SIGTERM/SIGINT. May be NULL. */
    void (*stop)(struct obs_ctx *ctx);
};

struct obs_app_desc {
    const char *name;            /* "metricsd" */
    const char *version;         /* "0.1.0" */
    int default_http_port;
    int default_grpc_port;       /* 0 = none */
    const struct obs_component *components;
    int ncomponents;
    /* Top-level YAML keys accepted besides `server`, NULL-terminated. NULL accepts any key
     * (for daemons that bind the whole tree themselves, e.g. alertd, collectord). */
    const char *const *config_sections;
    /* Pairs {flag, yaml.path} tried before the generic rule, ending with {NULL, NULL}. */
    const char *const (*flag_aliases)[2];
    /* Optional: allocate ctx->app before components start; undo after they stop. */
    int (*setup)(struct obs_ctx *ctx, struct obs_err *err);
    void (*teardown)(struct obs_ctx *ctx);
};

/* Run the daemon; returns the process exit code. */
int obs_app_main(int argc, char **argv, const struct obs_app_desc *desc);

/* True when component name is among the targets being started. */
int obs_ctx_has_target(const struct obs_ctx *ctx, const char *name);
/* Data directory helper: mkdir -p path (mode 0755). Returns 0 or OBS_EIO with err set. */
int obs_mkdir_p(const char *path, struct obs_err *err);

#endif
