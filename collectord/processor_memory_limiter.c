/*
 * processor_memory_limiter.c -- the `memory_limiter` processor: refuse data while the
 * process' resident memory is above the soft limit (limit - spike), so receivers answer with
 * a retryable error and clients back off instead of the process growing without bound.
 *
 *   processors: {memory_limiter: {check_interval: 1s, limit_mib: 512, spike_limit_mib: 128}}
 *   (or limit_percentage / spike_limit_percentage of physical memory)
 *
 * RSS is read from /proc/self/statm every check_interval by a loop timer; process() only
 * compares the cached state, so the hot path costs a load and a branch.
 */
#include <event2/event.h>
#include <stdio.h>
#include <unistd.h>

#include "cld.h"
#include "core/obs_log.h"
#include "core/obs_mem.h"

struct ml_cfg {
    int64_t check_interval_ms;
    int64_t limit_mib;
    int64_t spike_limit_mib;
    int64_t limit_percentage;
    int64_t spike_limit_percentage;
};

static const struct obs_cfmap ml_map[] = {
    {"check_interval", OBS_CFT_DURATION, "1s", offsetof(struct ml_cfg, check_interval_ms),
     "How often memory is measured."},
    {"limit_mib", OBS_CFT_INT, "0", offsetof(struct ml_cfg, limit_mib), "Hard limit, MiB."},
    {"spike_limit_mib", OBS_CFT_INT, "0", offsetof(struct ml_cfg, spike_limit_mib),
     "Headroom below the hard limit, MiB (default 20% of the limit)."},
    {"limit_percentage", OBS_CFT_INT, "0", offsetof(struct ml_cfg, limit_percentage),
     "Hard limit as % of physical memory."},
    {"spike_limit_percentage", OBS_CFT_INT, "0",
     offsetof(struct ml_cfg, spike_limit_percentage), "Headroom as % of physical memory."},
    {NULL},
};

struct limiter {
    struct ml_cfg cfg;
    uint64_t soft_bytes;
    int refusing;
    struct event *timer;
};

static int ml_init(struct cld_instance *ins, struct obs_err *err)
{
    struct limiter *l = obs_calloc(1, sizeof(*l));
    if (!l)
        return obs_err_set(err, OBS_ENOMEM, "out of memory");
    ins->data = l;
    int rc = obs_cf_bind(ins->cfg, ml_map, &l->cfg, err);
    if (rc < 0)
        return rc;
    if (l->cfg.check_interval_ms <= 0)
        return obs_cf_error(err, ins->cfg, "check_interval must be greater than zero");
    uint64_t limit = 0, spike = 0;
    if (l->cfg.limit_mib > 0) {
        limit = (uint64_t)l->cfg.limit_mib << 20;
        spike = l->cfg.spike_limit_mib > 0 ? (uint64_t)l->cfg.spike_limit_mib << 20 : limit / 5;
    } else if (l->cfg.limit_percentage > 0 && l->cfg.limit_percentage <= 100) {
        uint64_t phys = (uint64_t)sysconf(_SC_PHYS_PAGES) * (uint64_t)sysconf(_SC_PAGESIZE);
        limit = phys / 100 * (uint64_t)l->cfg.limit_percentage;
        spike = phys / 100 * (uint64_t)l->cfg.spike_limit_percentage;
    } else {
        return obs_cf_error(err, ins->cfg, "%s: limit_mib or limit_percentage must be set",
                            ins->id);
    }
    if (spike >= limit)
        return obs_cf_error(err, ins->cfg, "spike limit must be smaller than the limit");
    l->soft_bytes = limit - spike;
    return 0;
}

static void check(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct limiter *l = arg;
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long long size = 0, rss = 0;
    if (f) {
        if (fscanf(f, "%llu %llu", &size, &rss) != 2)
            rss = 0;
        fclose(f);
    }
    uint64_t bytes = rss * (uint64_t)sysconf(_SC_PAGESIZE);
    int was = l->refusing;
    l->refusing = bytes > l->soft_bytes;
    if (l->refusing != was)
        obs_clog_warn("memory_limiter", "%s\trss_bytes=%llu soft_limit_bytes=%llu",
                      l->refusing ? "memory usage is above the soft limit, refusing data"
                                  : "memory usage back within limits, accepting data",
                      (unsigned long long)bytes, (unsigned long long)l->soft_bytes);
}

static int ml_start(struct cld_instance *ins, struct obs_err *err)
{
    struct limiter *l = ins->data;
    l->timer = event_new(ins->col->ctx->base, -1, EV_PERSIST, check, l);
    if (!l->timer)
        return obs_err_set(err, OBS_ENOMEM, "out of memory");
    struct timeval tv = {l->cfg.check_interval_ms / 1000, (l->cfg.check_interval_ms % 1000) * 1000};
    evtimer_add(l->timer, &tv);
    check(-1, 0, l);
    return 0;
}

static int ml_process(struct cld_instance *ins, struct cld_batch *b)
{
    struct limiter *l = ins->data;
    if (l->refusing) {
        cld_batch_free(b);
        return OBS_ELIMIT;
    }
    return cld_forward(ins, b);
}

static void ml_exit(struct cld_instance *ins)
{
    struct limiter *l = ins->data;
    if (!l)
        return;
    if (l->timer)
        event_free(l->timer);
    obs_free(l);
    ins->data = NULL;
}

const struct cld_plugin cld_processor_memory_limiter = {
    .kind = CLD_PROCESSOR,
    .name = "memory_limiter",
    .signals = 7,
    .init = ml_init,
    .start = ml_start,
    .process = ml_process,
    .exit = ml_exit,
};
