/*
 * main.c -- demo-app: the lab's instrumented example service.
 *
 * Not a storage daemon, so it does not use obs_app_main: a plain main parses flags, opens the
 * request log, creates one event_base with an obs_http server and the metrics registry, starts
 * the OTLP sender thread and runs the loop. SIGINT/SIGTERM stop it: requests still waiting on
 * their simulated work get up to 2.5 s, then queued spans get up to 2 s to be delivered.
 *
 * Flags (-name=value, --name=value or -name value):
 *   -http.port=5000  -http.listen-address=""  -log.file=./data/demo-app/app.log
 *   -otlp.endpoint=http://127.0.0.1:4318  -service.name=demo-app  -otlp.batch-size=512
 *   -otlp.queue-size=20000  -otlp.interval=1000 (ms)  -error-rate=0.05  -health-error-rate=0.2
 *   -slow-rate=0.3  -seed=0  -log.level=info
 * An empty -otlp.endpoint ("") disables trace export; an empty -log.file disables the log.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include "core/obs_err.h"
#include "core/obs_log.h"
#include "core/obs_mem.h"
#include "core/obs_time.h"
#include "demo.h"
#include "http/obs_http.h"
#include "metrics/obs_metrics.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: demo-app [flags]\n"
            "  -http.port=5000                    HTTP port\n"
            "  -http.listen-address=ADDR          listen address (default: all interfaces)\n"
            "  -log.file=./data/demo-app/app.log  JSON request log (\"\" disables)\n"
            "  -otlp.endpoint=http://127.0.0.1:4318  OTLP/HTTP endpoint (\"\" disables traces)\n"
            "  -service.name=demo-app             service.name resource attribute\n"
            "  -otlp.batch-size=512               spans per export request\n"
            "  -otlp.queue-size=20000             spans buffered while the endpoint is away\n"
            "  -otlp.interval=1000                export period in milliseconds\n"
            "  -error-rate=0.05                   share of 500s on /\n"
            "  -health-error-rate=0.2             share of 503s on /health\n"
            "  -slow-rate=0.3                     share of /slow requests taking 0.5-2 s\n"
            "  -seed=0                            random seed (0 = random)\n"
            "  -log.level=info                    process log level (stderr, logfmt)\n");
}

static int parse_int(const char *name, const char *v, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno != 0 || *v == '\0' || *end != '\0' || x < lo || x > hi) {
        fprintf(stderr, "demo-app: invalid value %s for -%s\n", v, name);
        return -1;
    }
    *out = x;
    return 0;
}

static int parse_rate(const char *name, const char *v, double *out)
{
    char *end;
    double x = strtod(v, &end);
    if (*v == '\0' || *end != '\0' || !(x >= 0 && x <= 1)) {
        fprintf(stderr, "demo-app: invalid value %s for -%s (want 0..1)\n", v, name);
        return -1;
    }
    *out = x;
    return 0;
}

/* Parse argv into o. Returns 0, 1 for -help, -1 on error (message printed). */
static int parse_flags(int argc, char **argv, struct demo_opts *o)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] != '-') {
            fprintf(stderr, "demo-app: unexpected argument %s\n", a);
            return -1;
        }
        a += a[1] == '-' ? 2 : 1;
        char name[64];
        const char *val;
        const char *eq = strchr(a, '=');
        if (eq != NULL) {
            snprintf(name, sizeof(name), "%.*s", (int)(eq - a), a);
            val = eq + 1;
        } else {
            snprintf(name, sizeof(name), "%s", a);
            if (strcmp(name, "help") == 0 || strcmp(name, "h") == 0)
                return 1;
            if (strcmp(name, "version") == 0) {
                printf("demo-app, version %s\n", DEMO_VERSION);
                exit(0);
            }
            if (i + 1 >= argc) {
                fprintf(stderr, "demo-app: flag needs an argument: -%s\n", name);
                return -1;
            }
            val = argv[++i];
        }
        long n;
        if (strcmp(name, "http.port") == 0) {
            if (parse_int(name, val, 0, 65535, &n) != 0)
                return -1;
            o->http_port = (int)n;
        } else if (strcmp(name, "http.listen-address") == 0 ||
                   strcmp(name, "http.address") == 0) {
            o->listen_address = val;
        } else if (strcmp(name, "log.file") == 0) {
            o->log_file = val;
        } else if (strcmp(name, "otlp.endpoint") == 0) {
            o->otlp_endpoint = val;
        } else if (strcmp(name, "service.name") == 0) {
            o->service_name = val;
        } else if (strcmp(name, "otlp.batch-size") == 0) {
            if (parse_int(name, val, 1, 100000, &n) != 0)
                return -1;
            o->otlp_batch_max = (int)n;
        } else if (strcmp(name, "otlp.queue-size") == 0) {
            if (parse_int(name, val, 1, 10000000, &n) != 0)
                return -1;
            o->otlp_queue_max = (int)n;
        } else if (strcmp(name, "otlp.interval") == 0) {
            if (parse_int(name, val, 10, 600000, &n) != 0)
                return -1;
            o->otlp_interval_ms = (int)n;
        } else if (strcmp(name, "error-rate") == 0) {
            if (parse_rate(name, val, &o->error_rate_root) != 0)
                return -1;
        } else if (strcmp(name, "health-error-rate") == 0) {
            if (parse_rate(name, val, &o->error_rate_health) != 0)
                return -1;
        } else if (strcmp(name, "slow-rate") == 0) {
            if (parse_rate(name, val, &o->slow_rate) != 0)
                return -1;
        } else if (strcmp(name, "seed") == 0) {
            o->seed = strtoull(val, NULL, 10);
        } else if (strcmp(name, "log.level") == 0) {
            if (obs_log_set_level_name(val) != 0) {
                fprintf(stderr, "demo-app: invalid -log.level %s\n", val);
                return -1;
            }
        } else {
            fprintf(stderr, "demo-app: unknown flag -%s\n", name);
            return -1;
        }
    }
    return 0;
}

/* mkdir -p of the directory part of path. */
static int mkdir_parent(const char *path)
{
    char buf[4096];
    snprintf(buf, sizeof(buf), "%s", path);
    char *slash = strrchr(buf, '/');
    if (slash == NULL || slash == buf)
        return 0;
    *slash = '\0';
    for (char *p = buf + 1; *p != '\0'; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST)
        return -1;
    return 0;
}

static void seed_rng(struct demo *d)
{
    uint64_t x = d->opts.seed;
    if (x == 0 && getrandom(&x, sizeof(x), 0) != (ssize_t)sizeof(x))
        x = (uint64_t)obs_now_ns() ^ ((uint64_t)getpid() << 32);
    for (int i = 0; i < 4; i++) { /* splitmix64 expands the seed */
        x += 0x9e3779b97f4a7c15ULL;
        uint64_t z = x;
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        d->rng[i] = z ^ (z >> 31);
    }
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct demo *d = arg;
    if (d->stopping) { /* second signal: leave now */
        event_base_loopbreak(d->base);
        return;
    }
    obs_log_info("stopping\tsignal=%d in_flight=%lld", (int)sig, (long long)d->in_flight);
    d->stopping = 1;
    if (d->in_flight == 0) {
        event_base_loopexit(d->base, NULL);
    } else {
        struct timeval grace = {2, 500000};
        event_base_loopexit(d->base, &grace);
    }
}

int main(int argc, char **argv)
{
    struct demo d;
    memset(&d, 0, sizeof(d));
    d.log_fd = -1;
    d.opts.listen_address = "";
    d.opts.http_port = 5000;
    d.opts.log_file = "./data/demo-app/app.log";
    d.opts.otlp_endpoint = "http://127.0.0.1:4318";
    d.opts.service_name = "demo-app";
    d.opts.error_rate_root = 0.05;
    d.opts.error_rate_health = 0.20;
    d.opts.slow_rate = 0.30;
    int rc = parse_flags(argc, argv, &d.opts);
    if (rc != 0) {
        usage(rc > 0 ? stdout : stderr);
        return rc > 0 ? 0 : 2;
    }
    signal(SIGPIPE, SIG_IGN);
    seed_rng(&d);
    d.start_mono_ns = obs_mono_ns();

    if (d.opts.log_file[0] != '\0') {
        if (mkdir_parent(d.opts.log_file) != 0) {
            obs_log_error("cannot create directory for %s: %s", d.opts.log_file, strerror(errno));
            return 1;
        }
        d.log_fd = open(d.opts.log_file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (d.log_fd < 0) {
            obs_log_error("cannot open %s: %s", d.opts.log_file, strerror(errno));
            return 1;
        }
    }

    d.base = event_base_new();
    d.metrics = obs_metrics_new();
    if (d.base == NULL || d.metrics == NULL) {
        obs_log_error("out of memory at start-up");
        return 1;
    }
    obs_log_hook_libevent();
    struct obs_err err;
    obs_err_clear(&err);
    d.http = obs_http_server_new(d.base, d.opts.listen_address, d.opts.http_port, &err);
    if (d.http == NULL) {
        obs_log_error("cannot listen on %s:%d: %s", d.opts.listen_address, d.opts.http_port,
                      err.msg);
        return 1;
    }
    if (demo_routes_init(&d) != 0) {
        obs_log_error("cannot register routes");
        return 1;
    }
    if (d.opts.otlp_endpoint[0] != '\0') {
        d.otlp = demo_otlp_new(&d.opts);
        if (d.otlp == NULL)
            return 1;
    }
    struct event *sigint = evsignal_new(d.base, SIGINT, on_signal, &d);
    struct event *sigterm = evsignal_new(d.base, SIGTERM, on_signal, &d);
    if (sigint == NULL || sigterm == NULL) {
        obs_log_error("cannot install signal handlers");
        return 1;
    }
    evsignal_add(sigint, NULL);
    evsignal_add(sigterm, NULL);

    obs_log_info("demo-app started\taddress=\"%s\" port=%d log_file=\"%s\" otlp_endpoint=\"%s\" "
                 "service=%s",
                 d.opts.listen_address, obs_http_server_port(d.http), d.opts.log_file,
                 d.opts.otlp_endpoint, d.opts.service_name);
    event_base_dispatch(d.base);

    demo_routes_abort(&d);
    obs_http_server_free(d.http); /* closes connections, incl. requests still deferred */
    demo_otlp_free(d.otlp, 2000);
    obs_log_info("demo-app stopped\trequests=%lld errors=%lld",
                 (long long)d.requests_total, (long long)d.errors_total);
    event_free(sigint);
    event_free(sigterm);
    event_base_free(d.base);
    obs_metrics_free(d.metrics);
    if (d.log_fd >= 0)
        close(d.log_fd);
    return 0;
}
