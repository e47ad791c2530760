/*
 * exporter_debug.c -- the `debug` exporter (and its old name `logging`): log what passes.
 *
 *   exporters: {debug: {verbosity: basic|normal|detailed}}
 *
 * Every verbosity logs one line per batch with the signal, item count and size (the payload
 * itself is not printed). Runs synchronously on the loop (it only formats a line).
 */
#include <string.h>

#include "cld.h"
#include "core/obs_log.h"
#include "core/obs_mem.h"

struct dbg_cfg {
    char *verbosity;
};

static const struct obs_cfmap dbg_map[] = {
    {"verbosity", OBS_CFT_STR, "basic", offsetof(struct dbg_cfg, verbosity),
     "basic, normal or detailed."},
    {"loglevel", OBS_CFT_IGNORE, NULL, 0, "Old `logging` exporter key."},
    {"sampling_initial", OBS_CFT_IGNORE, NULL, 0, ""},
    {"sampling_thereafter", OBS_CFT_IGNORE, NULL, 0, ""},
    {"use_internal_logger", OBS_CFT_IGNORE, NULL, 0, ""},
    {NULL},
};

static int dbg_init(struct cld_instance *ins, struct obs_err *err)
{
    struct dbg_cfg *c = obs_calloc(1, sizeof(*c));
    if (!c)
        return obs_err_set(err, OBS_ENOMEM, "out of memory");
    ins->data = c;
    int rc = obs_cf_bind(ins->cfg, dbg_map, c, err);
    if (rc == 0 && strcmp(c->verbosity, "basic") && strcmp(c->verbosity, "normal") &&
        strcmp(c->verbosity, "detailed"))
        return obs_cf_error(err, obs_cf_get(ins->cfg, "verbosity"),
                            "verbosity must be basic, normal or detailed");
    return rc;
}

static int dbg_process(struct cld_instance *ins, struct cld_batch *b)
{
    static const char *const kind[] = {"Traces", "Metrics", "Logs"};
    obs_clog_info(ins->id, "%s\t%s=%zu bytes=%zu", kind[b->sig],
                  b->sig == CLD_TRACES ? "spans" : b->sig == CLD_METRICS ? "data_points"
                                                                         : "log_records",
                  b->items, b->len);
    cld_batch_free(b);
    return 0;
}

static void dbg_exit(struct cld_instance *ins)
{
    struct dbg_cfg *c = ins->data;
    if (!c)
        return;
    obs_cf_unbind(dbg_map, c);
    obs_free(c);
    ins->data = NULL;
}

const struct cld_plugin cld_exporter_debug = {
    .kind = CLD_EXPORTER,
    .name = "debug",
    .signals = 7,
    .init = dbg_init,
    .process = dbg_process,
    .exit = dbg_exit,
};

const struct cld_plugin cld_exporter_logging = {
    .kind = CLD_EXPORTER,
    .name = "logging",
    .signals = 7,
    .init = dbg_init,
    .process = dbg_process,
    .exit = dbg_exit,
};
