/*
 * obs_app.c -- the common main() of every daemon (see obs_app.h).
 *
 * Order of start-up: flags -> config tree -> flag overrides -> `server` section -> loop and
 * HTTP server -> setup -> components in dependency order -> ready -> loop. Shutdown on
 * SIGINT/SIGTERM runs the same list backwards. Any failure before the loop runs exits 1 with
 * the error (config errors carry file:line:col).
 */
#include "app/obs_app.h"
#include "core/obs_log.h"
#include "core/obs_mem.h"
#include "core/obs_sbuf.h"
#include "core/obs_time.h"
#include "http/obs_http.h"
#include "metrics/obs_metrics.h"

#include <errno.h>
#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

static const struct obs_cfmap server_map[] = {
    {"http_listen_address", OBS_CFT_STR, "", offsetof(struct obs_server_cfg, http_listen_address),
     "HTTP server listen address (empty = all interfaces)", NULL, NULL},
    {"http_listen_port", OBS_CFT_INT, NULL, offsetof(struct obs_server_cfg, http_listen_port),
     "HTTP server listen port", NULL, NULL},
    {"grpc_listen_port", OBS_CFT_INT, NULL, offsetof(struct obs_server_cfg, grpc_listen_port),
     "gRPC server listen port", NULL, NULL},
    {"log_level", OBS_CFT_STR, "info", offsetof(struct obs_server_cfg, log_level),
     "Log level: error, warn, info, debug", NULL, NULL},
    {"http_server_max_body_bytes", OBS_CFT_BYTES, "16MiB",
     offsetof(struct obs_server_cfg, http_server_max_body_bytes),
     "Largest request body accepted (413 above)", NULL, NULL},
    {"http_listen_network", OBS_CFT_IGNORE, NULL, 0, "accepted for compatibility", NULL, NULL},
    {"grpc_listen_address", OBS_CFT_IGNORE, NULL, 0, "accepted for compatibility", NULL, NULL},
    {"grpc_server_max_recv_msg_size", OBS_CFT_IGNORE, NULL, 0, "accepted", NULL, NULL},
    {"grpc_server_max_send_msg_size", OBS_CFT_IGNORE, NULL, 0, "accepted", NULL, NULL},
    {"log_format", OBS_CFT_IGNORE, NULL, 0, "always logfmt", NULL, NULL},
    {NULL, 0, NULL, 0, NULL, NULL, NULL},
};

struct flag {
    char *name;
    char *value;
};

static int is_bool_flag(const char *n)
{
    static const char *const b[] = {"config.expand-env", "version", "help", "h", NULL};
    for (int i = 0; b[i]; i++)
        if (strcmp(n, b[i]) == 0)
            return 1;
    return 0;
}

static void usage(const struct obs_app_desc *d)
{
    fprintf(stderr,
            "Usage of %s:\n"
            "  -config.file=FILE       YAML configuration file\n"
            "  -config.expand-env      expand ${VAR} and ${VAR:-default} in the config file\n"
            "  -target=LIST            components to run (all", d->name);
    for (int i = 0; i < d->ncomponents; i++)
        fprintf(stderr, ", %s", d->components[i].name);
    fprintf(stderr, ")\n"
            "  -log.level=LEVEL        error, warn, info, debug\n"
            "  -server.http-listen-port=N, -server.grpc-listen-port=N, -server.http-listen-address=A\n"
            "  -<section>.<key>=VALUE  any config key, '-' in names read as '_'\n"
            "  -version                print the version\n");
}

/* Drop the `server` child from root (obs_app owns it) so daemons see only their own keys. */
static void detach_key(struct obs_cf_node *root, const char *key)
{
    for (size_t i = 0; root && root->type == OBS_CF_MAP && i < root->n; i++) {
        if (root->items[i] && root->items[i]->key && strcmp(root->items[i]->key, key) == 0) {
            struct obs_cf_node *n = root->items[i];
            memmove(&root->items[i], &root->items[i + 1], (root->n - i - 1) * sizeof(n));
            root->n--;
            obs_cf_free(n);
            return;
        }
    }
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    struct obs_ctx *ctx = arg;
    obs_log_info("received %s, shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
    event_base_loopexit(ctx->base, NULL);
}

static void h_metrics(struct obs_http_req *r, void *arg)
{
    struct obs_ctx *ctx = arg;
    struct obs_sbuf b;
    obs_sbuf_init(&b);
    obs_metrics_render(ctx->metrics, &b);
    obs_http_reply_sbuf(r, 200, "text/plain; version=0.0.4; charset=utf-8", &b);
}

static void h_ready(struct obs_http_req *r, void *arg)
{
    struct obs_ctx *ctx = arg;
    if (ctx->ready)
        obs_http_reply_text(r, 200, "ready");
    else
        obs_http_reply_text(r, 503, "not ready: starting");
}

static void h_healthy(struct obs_http_req *r, void *arg)
{
    struct obs_ctx *ctx = arg;
    obs_http_reply_text(r, 200, "%s is Healthy.", ctx->daemon);
}

static double g_start_time;
static double read_start_time(void *arg) { (void)arg; return g_start_time; }
static double read_rss(void *arg)
{
    (void)arg;
    long pages = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
            rss = 0;
        fclose(f);
    }
    return (double)rss * (double)sysconf(_SC_PAGESIZE);
}
static double read_cpu(void *arg)
{
    (void)arg;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

int obs_mkdir_p(const char *path, struct obs_err *err)
{
    char tmp[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof(tmp))
        return obs_err_set(err, OBS_EINVAL, "invalid directory path");
    memcpy(tmp, path, n + 1);
    for (char *p = tmp + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
                return obs_err_set(err, OBS_EIO, "mkdir %s: %s", tmp, strerror(errno));
            *p = '/';
        }
    }
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
        return obs_err_set(err, OBS_EIO, "mkdir %s: %s", tmp, strerror(errno));
    return OBS_OK;
}

int obs_ctx_has_target(const struct obs_ctx *ctx, const char *name)
{
    for (int i = 0; i < ctx->ntargets; i++)
        if (strcmp(ctx->targets[i], name) == 0)
            return 1;
    return 0;
}

static int find_component(const struct obs_app_desc *d, const char *name)
{
    for (int i = 0; i < d->ncomponents; i++)
        if (strcmp(d->components[i].name, name) == 0)
            return i;
    return -1;
}

static int mark_closure(const struct obs_app_desc *d, int idx, char *want, int depth)
{
    if (depth > 32)
        return OBS_EINVAL;
    want[idx] = 1;
    const char *const *deps = d->components[idx].deps;
    for (int i = 0; deps && deps[i]; i++) {
        int j = find_component(d, deps[i]);
        if (j >= 0 && !want[j] && mark_closure(d, j, want, depth + 1) != OBS_OK)
            return OBS_EINVAL;
    }
    return OBS_OK;
}

/* Resolve -target into ctx->targets in start order (the order of desc->components, which
 * lists dependencies first). */
static int resolve_targets(struct obs_ctx *ctx, const struct obs_app_desc *d, const char *target,
                           struct obs_err *err)
{
    char want[64] = {0};
    if (d->ncomponents > 64)
        return obs_err_set(err, OBS_EINVAL, "too many components");
    char *copy = obs_strdup(target);
    if (copy == NULL)
        return obs_err_set(err, OBS_ENOMEM, "out of memory");
    char *save = NULL;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (strcmp(t, "all") == 0) {
            for (int i = 0; i < d->ncomponents; i++)
                want[i] = 1;
            continue;
        }
        int i = find_component(d, t);
        if (i < 0) {
            obs_err_set(err, OBS_EINVAL, "unrecognised module name: %s (known: all", t);
            for (int k = 0; k < d->ncomponents; k++) {
                size_t l = strlen(err->msg);
                snprintf(err->msg + l, sizeof(err->msg) - l, ", %s", d->components[k].name);
            }
            size_t l = strlen(err->msg);
            snprintf(err->msg + l, sizeof(err->msg) - l, ")");
            obs_free(copy);
            return OBS_EINVAL;
        }
        mark_closure(d, i, want, 0);
    }
    obs_free(copy);
    ctx->targets = obs_calloc((size_t)d->ncomponents + 1, sizeof(char *));
    if (ctx->targets == NULL)
        return obs_err_set(err, OBS_ENOMEM, "out of memory");
    for (int i = 0; i < d->ncomponents; i++)
        if (want[i])
            ctx->targets[ctx->ntargets++] = (char *)d->components[i].name;
    return OBS_OK;
}

int obs_app_main(int argc, char **argv, const struct obs_app_desc *d)
{
    struct obs_err err = {0};
    const char *cfg_file = NULL, *target = "all", *log_level = NULL;
    int expand_env = 0;
    struct flag *flags = obs_calloc((size_t)argc + 1, sizeof(*flags));
    int nflags = 0;
    signal(SIGPIPE, SIG_IGN);
    g_start_time = (double)obs_now_ms() / 1000.0;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] != '-') {
            fprintf(stderr, "%s: unexpected argument %s\n", d->name, a);
            usage(d);
            return 1;
        }
        a += (a[1] == '-') ? 2 : 1;
        const char *eq = strchr(a, '=');
        char *name = eq ? obs_strndup(a, (size_t)(eq - a)) : obs_strdup(a);
        const char *value = eq ? eq + 1 : NULL;
        if (value == NULL) {
            if (is_bool_flag(name)) {
                value = "true";
            } else if (i + 1 < argc) {
                value = argv[++i];
            } else {
                fprintf(stderr, "%s: flag needs an argument: -%s\n", d->name, name);
                return 1;
            }
        }
        if (strcmp(name, "help") == 0 || strcmp(name, "h") == 0) {
            usage(d);
            return 0;
        }
        if (strcmp(name, "version") == 0) {
            printf("%s, version %s\n", d->name, d->version);
            return 0;
        }
        if (strcmp(name, "config.file") == 0 || strcmp(name, "config") == 0) {
            cfg_file = value;
        } else if (strcmp(name, "config.expand-env") == 0) {
            expand_env = strcmp(value, "false") != 0;
        } else if (strcmp(name, "target") == 0) {
            target = value;
        } else if (strcmp(name, "log.level") == 0) {
            log_level = value;
        } else {
            flags[nflags].name = name;
            flags[nflags].value = (char *)value;
            nflags++;
            continue;
        }
        obs_free(name);
    }

    struct obs_ctx *ctx = obs_calloc(1, sizeof(*ctx));
    ctx->daemon = d->name;
    ctx->version = d->version;
    ctx->cfg_file = cfg_file ? cfg_file : "";
    ctx->expand_env = expand_env;
    if (cfg_file) {
        ctx->cfg = obs_cf_load_file(cfg_file, expand_env, &err);
        if (ctx->cfg == NULL) {
            fprintf(stderr, "%s: error loading config: %s\n", d->name, err.msg);
            return 1;
        }
        if (ctx->cfg->type != OBS_CF_MAP) {
            obs_cf_error(&err, ctx->cfg, "top level of the config must be a mapping");
            fprintf(stderr, "%s: error loading config: %s\n", d->name, err.msg);
            return 1;
        }
    } else {
        ctx->cfg = obs_cf_load_string("", 0, "<empty>", 0, &err);
    }

    /* flag overrides: aliases first, then -a.b-c -> a.b_c */
    for (int i = 0; i < nflags; i++) {
        const char *path = NULL;
        for (int k = 0; d->flag_aliases && d->flag_aliases[k][0]; k++) {
            if (strcmp(d->flag_aliases[k][0], flags[i].name) == 0) {
                path = d->flag_aliases[k][1];
                break;
            }
        }
        char buf[256];
        if (path == NULL) {
            snprintf(buf, sizeof(buf), "%s", flags[i].name);
            for (char *p = buf; *p; p++)
                if (*p == '-')
                    *p = '_';
            path = buf;
        }
        if (strcmp(path, "@listen") == 0) {
            /* "host:port" or ":port" */
            const char *colon = strrchr(flags[i].value, ':');
            char host[128] = "";
            const char *port = colon ? colon + 1 : flags[i].value;
            if (colon && (size_t)(colon - flags[i].value) < sizeof(host)) {
                memcpy(host, flags[i].value, (size_t)(colon - flags[i].value));
                host[colon - flags[i].value] = '\0';
            }
            if (obs_cf_set_path(ctx->cfg, "server.http_listen_address", host, &err) != OBS_OK ||
                obs_cf_set_path(ctx->cfg, "server.http_listen_port", port, &err) != OBS_OK) {
                fprintf(stderr, "%s: -%s: %s\n", d->name, flags[i].name, err.msg);
                return 1;
            }
            continue;
        }
        if (strcmp(path, "@ignore") == 0)
            continue;
        if (obs_cf_set_path(ctx->cfg, path, flags[i].value, &err) != OBS_OK) {
            fprintf(stderr, "%s: -%s: %s\n", d->name, flags[i].name, err.msg);
            return 1;
        }
    }
    if (log_level && obs_cf_set_path(ctx->cfg, "server.log_level", log_level, &err) != OBS_OK) {
        fprintf(stderr, "%s: %s\n", d->name, err.msg);
        return 1;
    }

    /* top-level keys */
    if (d->config_sections) {
        for (size_t i = 0; i < ctx->cfg->n; i++) {
            const struct obs_cf_node *it = ctx->cfg->items[i];
            if (strcmp(it->key, "server") == 0)
                continue;
            int ok = 0;
            for (int k = 0; d->config_sections[k]; k++)
                if (strcmp(d->config_sections[k], it->key) == 0)
                    ok = 1;
            if (!ok) {
                obs_cf_error(&err, it, "unknown top-level key (not a valid field for %s)",
                             d->name);
                fprintf(stderr, "%s: error loading config: %s\n", d->name, err.msg);
                return 1;
            }
        }
    }

    if (obs_cf_bind(obs_cf_get(ctx->cfg, "server"), server_map, &ctx->server, &err) != OBS_OK) {
        fprintf(stderr, "%s: error loading config: %s\n", d->name, err.msg);
        return 1;
    }
    /* port 0 given explicitly (file or flag) means "any free port"; absent means default */
    int port_given = obs_cf_get(obs_cf_get(ctx->cfg, "server"), "http_listen_port") != NULL;
    detach_key(ctx->cfg, "server");
    if (ctx->server.http_listen_port == 0 && !port_given)
        ctx->server.http_listen_port = d->default_http_port;
    if (ctx->server.grpc_listen_port == 0)
        ctx->server.grpc_listen_port = d->default_grpc_port;
    if (obs_log_set_level_name(ctx->server.log_level) != OBS_OK) {
        fprintf(stderr, "%s: invalid log level %s\n", d->name, ctx->server.log_level);
        return 1;
    }
    obs_log_hook_libevent();

    if (resolve_targets(ctx, d, target, &err) != OBS_OK) {
        fprintf(stderr, "%s: %s\n", d->name, err.msg);
        return 1;
    }

    ctx->base = event_base_new();
    ctx->metrics = obs_metrics_new();
    if (ctx->base == NULL || ctx->metrics == NULL) {
        fprintf(stderr, "%s: out of memory\n", d->name);
        return 1;
    }
    ctx->http = obs_http_server_new(ctx->base, ctx->server.http_listen_address,
                                    (int)ctx->server.http_listen_port, &err);
    if (ctx->http == NULL) {
        fprintf(stderr, "%s: %s\n", d->name, err.msg);
        return 1;
    }
    obs_http_server_set_max_body(ctx->http, (size_t)ctx->server.http_server_max_body_bytes);
    obs_http_route(ctx->http, "GET", "/metrics", h_metrics, ctx);
    obs_http_route(ctx->http, "GET", "/ready", h_ready, ctx);
    obs_http_route(ctx->http, "GET", "/-/ready", h_ready, ctx);
    obs_http_route(ctx->http, "GET", "/-/healthy", h_healthy, ctx);
    obs_metrics_gauge_fn(ctx->metrics, "process_start_time_seconds",
                         "Start time of the process since unix epoch in seconds.",
                         read_start_time, NULL);
    obs_metrics_gauge_fn(ctx->metrics, "process_resident_memory_bytes",
                         "Resident memory size in bytes.", read_rss, NULL);
    obs_metrics_gauge_fn(ctx->metrics, "process_cpu_seconds_total",
                         "Total user and system CPU time spent in seconds.", read_cpu, NULL);
    {
        char name[128];
        snprintf(name, sizeof(name), "%s_build_info", d->name);
        struct obs_mfamily *f = obs_metrics_family(ctx->metrics, OBS_MGAUGE, name,
                                                   "Build information.", "version", NULL, 0);
        obs_mchild_set(obs_mfamily_with(f, d->version), 1);
    }

    if (d->setup && d->setup(ctx, &err) != OBS_OK) {
        fprintf(stderr, "%s: %s\n", d->name, err.msg);
        return 1;
    }
    int started = 0;
    for (int i = 0; i < ctx->ntargets; i++) {
        int ci = find_component(d, ctx->targets[i]);
        obs_err_clear(&err);
        if (d->components[ci].init(ctx, &err) != OBS_OK) {
            fprintf(stderr, "%s: %s: %s\n", d->name, ctx->targets[i],
                    err.msg[0] ? err.msg : "failed to start");
            for (int k = started - 1; k >= 0; k--) {
                int cj = find_component(d, ctx->targets[k]);
                if (d->components[cj].stop)
                    d->components[cj].stop(ctx);
            }
            return 1;
        }
        started++;
        obs_clog_debug(ctx->targets[i], "started");
    }

    struct event *sigint = evsignal_new(ctx->base, SIGINT, on_signal, ctx);
    struct event *sigterm = evsignal_new(ctx->base, SIGTERM, on_signal, ctx);
    evsignal_add(sigint, NULL);
    evsignal_add(sigterm, NULL);
    ctx->ready = 1;
    obs_log_info("%s started\thttp_port=%d target=%s version=%s", d->name,
                 obs_http_server_port(ctx->http), target, d->version);

    event_base_dispatch(ctx->base);

    for (int i = ctx->ntargets - 1; i >= 0; i--) {
        int ci = find_component(d, ctx->targets[i]);
        if (d->components[ci].stop)
            d->components[ci].stop(ctx);
    }
    if (d->teardown)
        d->teardown(ctx);
    obs_log_info("%s stopped", d->name);
    event_free(sigint);
    event_free(sigterm);
    obs_http_server_free(ctx->http);
    obs_metrics_free(ctx->metrics);
    obs_cf_unbind(server_map, &ctx->server);
    obs_cf_free(ctx->cfg);
    event_base_free(ctx->base);
    for (int i = 0; i < nflags; i++)
        obs_free(flags[i].name);
    obs_free(flags);
    obs_free(ctx->targets);
    obs_free(ctx);
    return 0;
}
