/*
 * processor_batch.c -- the `batch` processor: merge requests until send_batch_size items or
 * `timeout` since the first one, then pass the merged request on.
 *
 *   processors: {batch: {timeout: 200ms, send_batch_size: 8192, send_batch_max_size: 0}}
 *
 * Merging is byte concatenation of serialized Export*ServiceRequests (protobuf appends the
 * repeated resource_* field), so nothing is decoded or re-encoded. A request that would take
 * the batch past send_batch_max_size (when set) first flushes what is held; requests are never
 * split. Runs on the loop thread; the timer is a libevent timer on the same loop. Items held
 * here when the process stops are flushed by the collector before exporters drain.
 *
 * In a durable pipeline (an exporter with a persistent sending queue) the processor holds
 * nothing: a request is forwarded at once so the receiver's 2xx comes after the fsync, and
 * the exporters' queues merge requests when sending, with these settings (see cld.h).
 */
#include <event2/event.h>
#include <string.h>

#include "cld.h"
#include "core/obs_mem.h"
#include "core/obs_sbuf.h"

struct batch_cfg {
    int64_t timeout_ms;
    int64_t send_batch_size;
    int64_t send_batch_max_size;
};

static const struct obs_cfmap batch_map[] = {
    {"timeout", OBS_CFT_DURATION, "200ms", offsetof(struct batch_cfg, timeout_ms),
     "Longest time a request waits in the batch."},
    {"send_batch_size", OBS_CFT_INT, "8192", offsetof(struct batch_cfg, send_batch_size),
     "Items that trigger a send."},
    {"send_batch_max_size", OBS_CFT_INT, "0", offsetof(struct batch_cfg, send_batch_max_size),
     "Upper bound of a batch in items (0 = none)."},
    {"metadata_keys", OBS_CFT_IGNORE, NULL, 0, "Accepted, not implemented."},
    {"metadata_cardinality_limit", OBS_CFT_IGNORE, NULL, 0, "Accepted."},
    {NULL},
};

struct batcher {
    struct cld_instance *ins;
    struct batch_cfg cfg;
    struct obs_sbuf buf;
    size_t items;
    enum cld_signal sig;
    struct event *timer;
};

static int batch_init(struct cld_instance *ins, struct obs_err *err)
{
    struct batcher *b = obs_calloc(1, sizeof(*b));
    if (!b)
        return obs_err_set(err, OBS_ENOMEM, "out of memory");
    ins->data = b;
    b->ins = ins;
    obs_sbuf_init(&b->buf);
    int rc = obs_cf_bind(ins->cfg, batch_map, &b->cfg, err);
    if (rc < 0)
        return rc;
    if (b->cfg.send_batch_size < 0 || b->cfg.send_batch_max_size < 0)
        return obs_cf_error(err, ins->cfg, "send_batch_size must not be negative");
    if (b->cfg.send_batch_max_size && b->cfg.send_batch_max_size < b->cfg.send_batch_size)
        return obs_cf_error(err, obs_cf_get(ins->cfg, "send_batch_max_size"),
                            "send_batch_max_size must be greater or equal to send_batch_size");
    return 0;
}

static void do_flush(struct batcher *b)
{
    if (b->timer)
        evtimer_del(b->timer);
    if (b->buf.len == 0 && b->items == 0)
        return;
    struct cld_batch *out = obs_malloc(sizeof(*out));
    if (out) {
        size_t len;
        out->sig = b->sig;
        out->items = b->items;
        out->data = (uint8_t *)obs_sbuf_take(&b->buf, &len);
        out->len = len;
        if (!out->data) { /* empty body: an empty request is still valid */
            out->data = obs_malloc(1);
            out->len = 0;
        }
        if (out->data)
            cld_forward(b->ins, out);
        else
            obs_free(out);
    }
    obs_sbuf_reset(&b->buf);
    b->items = 0;
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    do_flush(arg);
}

static int batch_start(struct cld_instance *ins, struct obs_err *err)
{
    struct batcher *b = ins->data;
    b->timer = evtimer_new(ins->col->ctx->base, on_timer, b);
    if (!b->timer)
        return obs_err_set(err, OBS_ENOMEM, "out of memory");
    return 0;
}

static int batch_process(struct cld_instance *ins, struct cld_batch *in)
{
    struct batcher *b = ins->data;
    /* not started (config-only use), or a durable pipeline: the receiver may acknowledge
     * only once the exporters' persistent queues hold the request, so pass it straight on;
     * the queues batch on the sending side with this processor's settings. */
    if (!b->timer || (ins->pl && ins->pl->durable))
        return cld_forward(ins, in);
    if (b->cfg.send_batch_max_size && b->items &&
        b->items + in->items > (size_t)b->cfg.send_batch_max_size)
        do_flush(b);
    if (obs_sbuf_append(&b->buf, in->data, in->len) < 0) {
        cld_batch_free(in);
        return OBS_ELIMIT;
    }
    int first = b->items == 0 && b->buf.len == in->len;
    b->sig = in->sig;
    b->items += in->items;
    cld_batch_free(in);
    if (b->cfg.send_batch_size == 0 || b->items >= (size_t)b->cfg.send_batch_size) {
        do_flush(b);
    } else if (first) {
        struct timeval tv = {b->cfg.timeout_ms / 1000, (b->cfg.timeout_ms % 1000) * 1000};
        evtimer_add(b->timer, &tv);
    }
    return 0;
}

static void batch_flush(struct cld_instance *ins)
{
    if (ins->data)
        do_flush(ins->data);
}

static void batch_exit(struct cld_instance *ins)
{
    struct batcher *b = ins->data;
    if (!b)
        return;
    if (b->timer)
        event_free(b->timer);
    obs_sbuf_deinit(&b->buf);
    obs_cf_unbind(batch_map, &b->cfg);
    obs_free(b);
    ins->data = NULL;
}

int cld_batch_settings(const struct cld_instance *proc, size_t *items, size_t *max_items,
                       int64_t *timeout_ms)
{
    if (!proc || proc->p != &cld_processor_batch || !proc->data)
        return OBS_EINVAL;
    const struct batcher *b = proc->data;
    *items = (size_t)b->cfg.send_batch_size;
    *max_items = (size_t)b->cfg.send_batch_max_size;
    *timeout_ms = b->cfg.timeout_ms;
    return 0;
}

const struct cld_plugin cld_processor_batch = {
    .kind = CLD_PROCESSOR,
    .name = "batch",
    .signals = 7,
    .init = batch_init,
    .start = batch_start,
    .process = batch_process,
    .flush = batch_flush,
    .exit = batch_exit,
};
