/*
 * collector.c -- collectord's core: config validation, the component graph, pipelines, and
 * the obs_app glue.
 *
 * Config (OpenTelemetry Collector layout):
 *   receivers/processors/exporters/extensions: maps of id "type[/name]" -> settings
 *   service: {extensions: [ids], pipelines: {"traces[/name]": {receivers, processors,
 *             exporters}}, telemetry: {metrics: {address, level}, logs: {level}}}
 * Validation mirrors the Collector's: unknown top-level key, unknown component type, a
 * pipeline naming an id that is not defined, a pipeline without receivers or exporters, or a
 * component that does not support the pipeline's signal are errors reported as
 * "file:line:col: key: reason" at the offending node.
 *
 * Lifecycle: cld_config_parse builds instances (plugin init = validate + allocate) without
 * side effects, so unit tests can validate configs; cld_collector_start starts extensions,
 * exporters, processors, then receivers; shutdown is the reverse, with processors flushed
 * before exporters drain, so accepted data leaves the process when the peer is up.
 * obs_app's HTTP server is moved to service.telemetry.metrics.address (default :8888) in
 * setup, where /metrics and /ready are served.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cld.h"
#include "core/obs_log.h"
#include "core/obs_mem.h"
#include "core/obs_time.h"
#include "http/obs_http.h"
#include "metrics/obs_metrics.h"

static const struct cld_plugin *const plugins[] = {
    &cld_receiver_otlp,      &cld_processor_batch,   &cld_processor_memory_limiter,
    &cld_exporter_otlp,      &cld_exporter_otlphttp, &cld_exporter_debug,
    &cld_exporter_logging,   &cld_extension_health_check, &cld_extension_file_storage,
};
#define NPLUGINS (sizeof(plugins) / sizeof(plugins[0]))

static const char *const kind_key[] = {"receivers", "processors", "exporters", "extensions"};

const char *cld_signal_name(enum cld_signal s)
{
    static const char *const n[] = {"traces", "metrics", "logs"};
    return s < CLD_NSIGNALS ? n[s] : "?";
}

const char *cld_otlp_method(enum cld_signal s)
{
    static const char *const m[] = {
        "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
        "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
        "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
    };
    return s < CLD_NSIGNALS ? m[s] : "";
}

/* ---- batches --------------------------------------------------------------------------- */

struct cld_batch *cld_batch_new(enum cld_signal sig, const void *data, size_t len, size_t items)
{
    struct cld_batch *b = obs_malloc(sizeof(*b));
    if (!b)
        return NULL;
    b->data = obs_malloc(len ? len : 1);
    if (!b->data) {
        obs_free(b);
        return NULL;
    }
    if (len)
        memcpy(b->data, data, len);
    b->sig = sig;
    b->len = len;
    b->items = items;
    return b;
}

struct cld_batch *cld_batch_clone(const struct cld_batch *b)
{
    return cld_batch_new(b->sig, b->data, b->len, b->items);
}

void cld_batch_free(struct cld_batch *b)
{
    if (!b)
        return;
    obs_free(b->data);
    obs_free(b);
}

/* ---- endpoints ------------------------------------------------------------------------- */

int cld_parse_endpoint(const char *ep, char *host, size_t hostcap, int *port)
{
    if (!ep)
        return OBS_EINVAL;
    const char *s = strstr(ep, "://");
    s = s ? s + 3 : ep;
    const char *colon = strrchr(s, ':');
    if (!colon)
        return OBS_EINVAL;
    size_t hl = (size_t)(colon - s);
    if (hl >= hostcap)
        return OBS_EINVAL;
    memcpy(host, s, hl);
    host[hl] = 0;
    if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') { /* [::1] */
        memmove(host, host + 1, hl - 2);
        host[hl - 2] = 0;
    }
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if ((*end && *end != '/') || p < 0 || p > 65535)
        return OBS_EINVAL;
    *port = (int)p;
    return 0;
}

/* ---- graph ----------------------------------------------------------------------------- */

static const struct cld_plugin *find_plugin(enum cld_kind kind, const char *type, size_t tlen)
{
    for (size_t i = 0; i < NPLUGINS; i++)
        if (plugins[i]->kind == kind && strlen(plugins[i]->name) == tlen &&
            !memcmp(plugins[i]->name, type, tlen))
            return plugins[i];
    return NULL;
}

static void valid_types(enum cld_kind kind, char *out, size_t cap)
{
    size_t o = 0;
    out[0] = 0;
    for (size_t i = 0; i < NPLUGINS; i++)
        if (plugins[i]->kind == kind)
            o += (size_t)snprintf(out + o, o < cap ? cap - o : 0, "%s%s", o ? ", " : "",
                                  plugins[i]->name);
}

/* Check an id "type[/name]": returns the type length or -1. */
static int id_type_len(const char *id)
{
    const char *slash = strchr(id, '/');
    size_t tl = slash ? (size_t)(slash - id) : strlen(id);
    if (tl == 0 || (slash && (!slash[1] || strchr(slash + 1, '/'))))
        return -1;
    for (size_t i = 0; i < tl; i++)
        if (!(id[i] == '_' || (id[i] >= 'a' && id[i] <= 'z') || (id[i] >= 'A' && id[i] <= 'Z') ||
              (id[i] >= '0' && id[i] <= '9')))
            return -1;
    return (int)tl;
}

static struct cld_instance *new_instance(struct cld_collector *c, const struct cld_plugin *p,
                                         const char *id, const struct obs_cf_node *cfg,
                                         struct obs_err *err)
{
    struct cld_instance *ins = obs_calloc(1, sizeof(*ins));
    if (!ins || !(ins->id = obs_strdup(id))) {
        obs_free(ins);
        obs_err_set(err, OBS_ENOMEM, "out of memory");
        return NULL;
    }
    ins->p = p;
    ins->cfg = cfg && cfg->type != OBS_CF_NULL ? cfg : NULL;
    ins->col = c;
    if (p->init && p->init(ins, err) < 0) {
        if (ins->data && p->exit) /* undo a partial init */
            p->exit(ins);
        obs_free(ins->id);
        obs_free(ins);
        return NULL;
    }
    return ins;
}

static void free_instance(struct cld_instance *ins)
{
    if (!ins)
        return;
    if (ins->p->exit)
        ins->p->exit(ins);
    obs_free(ins->outs);
    obs_free(ins->id);
    obs_free(ins);
}

static struct cld_instance *find_shared(struct cld_collector *c, enum cld_kind kind,
                                        const char *id)
{
    for (size_t i = 0; i < c->ninst; i++)
        if (c->inst[i]->p->kind == kind && !strcmp(c->inst[i]->id, id))
            return c->inst[i];
    return NULL;
}

static int push_ptr(void ***arr, size_t *n, void *p)
{
    void **nv = obs_realloc(*arr, (*n + 1) * sizeof(void *));
    if (!nv)
        return OBS_ENOMEM;
    nv[(*n)++] = p;
    *arr = nv;
    return 0;
}

/* Validate a components section: every id well-formed and of a known type. */
static int check_section(const struct obs_cf_node *sec, enum cld_kind kind, struct obs_err *err)
{
    if (!sec || sec->type == OBS_CF_NULL)
        return 0;
    if (sec->type != OBS_CF_MAP)
        return obs_cf_error(err, sec, "expected a mapping of component ids");
    for (size_t i = 0; i < sec->n; i++) {
        const struct obs_cf_node *it = sec->items[i];
        int tl = id_type_len(it->key);
        if (tl < 0)
            return obs_cf_error(err, it, "invalid component id \"%s\" (want type[/name])",
                                it->key);
        if (!find_plugin(kind, it->key, (size_t)tl)) {
            char types[256];
            valid_types(kind, types, sizeof types);
            return obs_cf_error(err, it, "unknown type: \"%.*s\" for id: \"%s\" (valid values: "
                                         "[%s])",
                                tl, it->key, it->key, types);
        }
        if (it->type != OBS_CF_NULL && it->type != OBS_CF_MAP)
            return obs_cf_error(err, it, "component settings must be a mapping");
    }
    return 0;
}

/* Resolve a reference list (service.pipelines.X.receivers etc.). */
static int ref_list(const struct obs_cf_node *n, const char *what, const struct obs_cf_node *pl,
                    struct obs_err *err)
{
    if (!n || n->type == OBS_CF_NULL)
        return 0;
    if (n->type != OBS_CF_SEQ)
        return obs_cf_error(err, n, "%s must be a list of component ids", what);
    for (size_t i = 0; i < n->n; i++)
        if (n->items[i]->type != OBS_CF_SCALAR)
            return obs_cf_error(err, n->items[i], "expected a component id");
    (void)pl;
    return 0;
}

static int shared_instance(struct cld_collector *c, enum cld_kind kind,
                           const struct obs_cf_node *root, const struct obs_cf_node *ref,
                           const char *plid, struct cld_instance **out, struct obs_err *err)
{
    const char *id = ref->value;
    struct cld_instance *ins = find_shared(c, kind, id);
    if (!ins) {
        const struct obs_cf_node *sec = obs_cf_get(root, kind_key[kind]);
        const struct obs_cf_node *node = obs_cf_get(sec, id);
        if (!node)
            return obs_cf_error(err, ref, "service::pipelines::%s: references %s \"%s\" which "
                                          "is not configured",
                                plid, kind_key[kind], id);
        int tl = id_type_len(id);
        ins = new_instance(c, find_plugin(kind, id, (size_t)tl), id, node, err);
        if (!ins)
            return err ? err->code : OBS_EINVAL;
        if (push_ptr((void ***)&c->inst, &c->ninst, ins) < 0) {
            free_instance(ins);
            return obs_err_set(err, OBS_ENOMEM, "out of memory");
        }
    }
    *out = ins;
    return 0;
}

static const char *const top_keys[] = {"receivers", "processors", "exporters", "extensions",
                                       "service",   "connectors", NULL};

struct cld_collector *cld_config_parse(const struct obs_cf_node *root, struct obs_ctx *ctx,
                                       struct obs_err *err)
{
    struct cld_collector *c = obs_calloc(1, sizeof(*c));
    if (!c) {
        obs_err_set(err, OBS_ENOMEM, "out of memory");
        return NULL;
    }
    c->ctx = ctx;
    c->start_ms = obs_now_ms();
    if (!root || root->type != OBS_CF_MAP) {
        obs_err_set(err, OBS_EINVAL, "config: expected a mapping");
        goto fail;
    }
    for (size_t i = 0; i < root->n; i++) {
        const struct obs_cf_node *it = root->items[i];
        int ok = 0;
        for (int k = 0; top_keys[k]; k++)
            ok |= !strcmp(top_keys[k], it->key);
        if (!ok) {
            obs_cf_error(err, it, "unknown top-level key (valid: receivers, processors, "
                                  "exporters, extensions, service)");
            goto fail;
        }
    }
    const struct obs_cf_node *conn = obs_cf_get(root, "connectors");
    if (conn && conn->type == OBS_CF_MAP && conn->n) {
        obs_cf_error(err, conn->items[0], "connectors are not supported by collectord");
        goto fail;
    }
    for (int k = CLD_RECEIVER; k <= CLD_EXTENSION; k++)
        if (check_section(obs_cf_get(root, kind_key[k]), (enum cld_kind)k, err) < 0)
            goto fail;

    const struct obs_cf_node *svc = obs_cf_get(root, "service");
    if (!svc || svc->type != OBS_CF_MAP) {
        obs_err_setpos(err, OBS_EINVAL, root->file, root->line, root->col,
                       "service: must have at least one pipeline");
        goto fail;
    }
    for (size_t i = 0; i < svc->n; i++) {
        const char *k = svc->items[i]->key;
        if (strcmp(k, "extensions") && strcmp(k, "pipelines") && strcmp(k, "telemetry")) {
            obs_cf_error(err, svc->items[i], "unknown key (not a valid field of service)");
            goto fail;
        }
    }

    /* telemetry */
    const struct obs_cf_node *tel = obs_cf_get(svc, "telemetry");
    if (tel && tel->type == OBS_CF_MAP) {
        for (size_t i = 0; i < tel->n; i++) {
            const struct obs_cf_node *sec = tel->items[i];
            if (!strcmp(sec->key, "metrics") || !strcmp(sec->key, "logs")) {
                for (size_t j = 0; sec->type == OBS_CF_MAP && j < sec->n; j++) {
                    const struct obs_cf_node *kv = sec->items[j];
                    if (!strcmp(sec->key, "metrics") && !strcmp(kv->key, "address") &&
                        kv->value) {
                        obs_free(c->telemetry_addr);
                        c->telemetry_addr = obs_strdup(kv->value);
                    } else if (!strcmp(sec->key, "logs") && !strcmp(kv->key, "level") &&
                               kv->value) {
                        obs_free(c->log_level);
                        c->log_level = obs_strdup(kv->value);
                    } else if (strcmp(kv->key, "level") && strcmp(kv->key, "encoding") &&
                               strcmp(kv->key, "readers")) {
                        obs_cf_error(err, kv, "unknown key (not a valid field of telemetry.%s)",
                                     sec->key);
                        goto fail;
                    }
                }
            } else if (strcmp(sec->key, "resource") && strcmp(sec->key, "traces")) {
                obs_cf_error(err, sec, "unknown key (not a valid field of service.telemetry)");
                goto fail;
            }
        }
        if (c->telemetry_addr) {
            char host[128];
            int port;
            if (cld_parse_endpoint(c->telemetry_addr, host, sizeof host, &port) < 0) {
                obs_cf_error(err, obs_cf_get(obs_cf_get(tel, "metrics"), "address"),
                             "invalid address \"%s\" (want host:port)", c->telemetry_addr);
                goto fail;
            }
        }
    }

    /* extensions */
    const struct obs_cf_node *exts = obs_cf_get(svc, "extensions");
    if (ref_list(exts, "extensions", NULL, err) < 0)
        goto fail;
    for (size_t i = 0; exts && exts->type == OBS_CF_SEQ && i < exts->n; i++) {
        const char *id = exts->items[i]->value;
        const struct obs_cf_node *node = obs_cf_get(obs_cf_get(root, "extensions"), id);
        if (!node) {
            obs_cf_error(err, exts->items[i], "service::extensions: references extension \"%s\" "
                                              "which is not configured",
                         id);
            goto fail;
        }
        if (find_shared(c, CLD_EXTENSION, id))
            continue;
        struct cld_instance *ins =
            new_instance(c, find_plugin(CLD_EXTENSION, id, (size_t)id_type_len(id)), id, node,
                         err);
        if (!ins || push_ptr((void ***)&c->inst, &c->ninst, ins) < 0)
            goto fail;
    }

    /* pipelines */
    const struct obs_cf_node *pls = obs_cf_get(svc, "pipelines");
    if (!pls || pls->type != OBS_CF_MAP || pls->n == 0) {
        if (pls)
            obs_cf_error(err, pls, "service must have at least one pipeline");
        else
            obs_cf_error(err, svc, "service must have at least one pipeline");
        goto fail;
    }
    for (size_t i = 0; i < pls->n; i++) {
        const struct obs_cf_node *pn = pls->items[i];
        const char *plid = pn->key;
        int tl = id_type_len(plid);
        enum cld_signal sig = CLD_NSIGNALS;
        for (int s = 0; s < CLD_NSIGNALS && tl > 0; s++)
            if (strlen(cld_signal_name((enum cld_signal)s)) == (size_t)tl &&
                !memcmp(plid, cld_signal_name((enum cld_signal)s), (size_t)tl))
                sig = (enum cld_signal)s;
        if (sig == CLD_NSIGNALS) {
            obs_cf_error(err, pn, "pipeline \"%s\": unknown signal type (valid: traces, metrics, "
                                  "logs)",
                         plid);
            goto fail;
        }
        if (pn->type != OBS_CF_MAP) {
            obs_cf_error(err, pn, "pipeline must be a mapping");
            goto fail;
        }
        for (size_t j = 0; j < pn->n; j++) {
            const char *k = pn->items[j]->key;
            if (strcmp(k, "receivers") && strcmp(k, "processors") && strcmp(k, "exporters")) {
                obs_cf_error(err, pn->items[j], "unknown key (not a valid field of a pipeline)");
                goto fail;
            }
        }
        const struct obs_cf_node *rn = obs_cf_get(pn, "receivers");
        const struct obs_cf_node *prn = obs_cf_get(pn, "processors");
        const struct obs_cf_node *en = obs_cf_get(pn, "exporters");
        if (ref_list(rn, "receivers", pn, err) < 0 || ref_list(prn, "processors", pn, err) < 0 ||
            ref_list(en, "exporters", pn, err) < 0)
            goto fail;
        if (!rn || rn->type != OBS_CF_SEQ || rn->n == 0) {
            obs_cf_error(err, rn ? rn : pn, "service::pipelines::%s: must have at least one "
                                            "receiver",
                         plid);
            goto fail;
        }
        if (!en || en->type != OBS_CF_SEQ || en->n == 0) {
            obs_cf_error(err, en ? en : pn, "service::pipelines::%s: must have at least one "
                                            "exporter",
                         plid);
            goto fail;
        }
        struct cld_pipeline *pl = obs_calloc(1, sizeof(*pl));
        if (!pl || !(pl->id = obs_strdup(plid)) ||
            push_ptr((void ***)&c->pipes, &c->npipes, pl) < 0) {
            if (pl)
                obs_free(pl->id);
            obs_free(pl);
            obs_err_set(err, OBS_ENOMEM, "out of memory");
            goto fail;
        }
        pl->sig = sig;
        /* processors: one instance per pipeline */
        for (size_t j = 0; prn && prn->type == OBS_CF_SEQ && j < prn->n; j++) {
            const char *id = prn->items[j]->value;
            const struct obs_cf_node *node = obs_cf_get(obs_cf_get(root, "processors"), id);
            if (!node) {
                obs_cf_error(err, prn->items[j], "service::pipelines::%s: references processor "
                                                 "\"%s\" which is not configured",
                             plid, id);
                goto fail;
            }
            struct cld_instance *ins = new_instance(
                c, find_plugin(CLD_PROCESSOR, id, (size_t)id_type_len(id)), id, node, err);
            if (!ins)
                goto fail;
            if (push_ptr((void ***)&pl->procs, &pl->nprocs, ins) < 0) {
                free_instance(ins);
                obs_err_set(err, OBS_ENOMEM, "out of memory");
                goto fail;
            }
            ins->pl = pl;
            ins->stage = j;
        }
        for (size_t j = 0; j < en->n; j++) {
            struct cld_instance *ins;
            if (shared_instance(c, CLD_EXPORTER, root, en->items[j], plid, &ins, err) < 0)
                goto fail;
            if (!(ins->p->signals & (1u << sig))) {
                obs_cf_error(err, en->items[j], "service::pipelines::%s: exporter \"%s\" does "
                                                "not support %s",
                             plid, ins->id, cld_signal_name(sig));
                goto fail;
            }
            if (push_ptr((void ***)&pl->exps, &pl->nexps, ins) < 0) {
                obs_err_set(err, OBS_ENOMEM, "out of memory");
                goto fail;
            }
        }
        for (size_t j = 0; j < pl->nexps; j++)
            pl->durable |= pl->exps[j]->durable;
        /* durable: the batch processors pass through; the exporters batch when sending */
        for (size_t j = 0; pl->durable && j < pl->nprocs; j++) {
            size_t items, max;
            int64_t tmo;
            if (cld_batch_settings(pl->procs[j], &items, &max, &tmo) < 0)
                continue;
            for (size_t k = 0; k < pl->nexps; k++) {
                struct cld_instance *e = pl->exps[k];
                if (items > e->batch_items)
                    e->batch_items = items;
                if (max > e->batch_max_items)
                    e->batch_max_items = max;
                if (tmo > e->batch_timeout_ms)
                    e->batch_timeout_ms = tmo;
            }
        }
        for (size_t j = 0; j < rn->n; j++) {
            struct cld_instance *ins;
            if (shared_instance(c, CLD_RECEIVER, root, rn->items[j], plid, &ins, err) < 0)
                goto fail;
            if (!(ins->p->signals & (1u << sig))) {
                obs_cf_error(err, rn->items[j], "service::pipelines::%s: receiver \"%s\" does "
                                                "not support %s",
                             plid, ins->id, cld_signal_name(sig));
                goto fail;
            }
            if (push_ptr((void ***)&ins->outs, &ins->nouts, pl) < 0) {
                obs_err_set(err, OBS_ENOMEM, "out of memory");
                goto fail;
            }
        }
    }
    return c;
fail:
    if (err && err->code == 0)
        err->code = OBS_EINVAL;
    cld_collector_free(c);
    return NULL;
}

/* ---- data flow ------------------------------------------------------------------------- */

static int to_exporters(struct cld_pipeline *pl, struct cld_batch *b)
{
    int rc = 0;
    for (size_t i = 0; i < pl->nexps; i++) {
        struct cld_batch *copy = i + 1 == pl->nexps ? b : cld_batch_clone(b);
        if (!copy) {
            rc = OBS_ELIMIT;
            continue;
        }
        if (pl->exps[i]->p->process(pl->exps[i], copy) < 0)
            rc = OBS_ELIMIT;
    }
    if (pl->nexps == 0)
        cld_batch_free(b);
    return rc;
}

int cld_forward(struct cld_instance *proc, struct cld_batch *b)
{
    struct cld_pipeline *pl = proc->pl;
    size_t next = proc->stage + 1;
    if (next < pl->nprocs)
        return pl->procs[next]->p->process(pl->procs[next], b);
    return to_exporters(pl, b);
}

int cld_receiver_emit(struct cld_instance *recv, struct cld_batch *b)
{
    int rc = 0;
    size_t n = 0;
    for (size_t i = 0; i < recv->nouts; i++)
        if (recv->outs[i]->sig == b->sig)
            n++;
    if (n == 0) {
        cld_batch_free(b);
        return 0;
    }
    enum cld_signal sig = b->sig; /* b is handed off (and may be freed) by the last send */
    for (size_t i = 0; i < recv->nouts && n > 0; i++) {
        struct cld_pipeline *pl = recv->outs[i];
        if (pl->sig != sig)
            continue;
        struct cld_batch *copy = --n == 0 ? b : cld_batch_clone(b);
        if (!copy) {
            rc = OBS_ELIMIT;
            continue;
        }
        int r = pl->nprocs ? pl->procs[0]->p->process(pl->procs[0], copy) : to_exporters(pl, copy);
        if (r < 0)
            rc = r;
    }
    return rc;
}

/* ---- lifecycle ------------------------------------------------------------------------- */

static int start_kind(struct cld_collector *c, enum cld_kind kind, struct obs_err *err)
{
    for (size_t i = 0; i < c->ninst; i++) {
        struct cld_instance *ins = c->inst[i];
        if (ins->p->kind != kind || ins->started)
            continue;
        if (ins->p->start && ins->p->start(ins, err) < 0)
            return err ? err->code : OBS_EIO;
        ins->started = 1;
    }
    return 0;
}

int cld_collector_start(struct cld_collector *c, struct obs_err *err)
{
    int rc = start_kind(c, CLD_EXTENSION, err);
    if (rc == 0)
        rc = start_kind(c, CLD_EXPORTER, err);
    for (size_t i = 0; rc == 0 && i < c->npipes; i++)
        for (size_t j = 0; j < c->pipes[i]->nprocs; j++) {
            struct cld_instance *ins = c->pipes[i]->procs[j];
            if (ins->p->start && (rc = ins->p->start(ins, err)) < 0)
                break;
            ins->started = 1;
        }
    if (rc == 0)
        rc = start_kind(c, CLD_RECEIVER, err);
    if (rc == 0)
        obs_log_info("everything is ready, begin running and processing data\tpipelines=%zu",
                     c->npipes);
    return rc;
}

void cld_collector_free(struct cld_collector *c)
{
    if (!c)
        return;
    /* receivers first: no new data */
    for (size_t i = 0; i < c->ninst; i++)
        if (c->inst[i]->p->kind == CLD_RECEIVER) {
            free_instance(c->inst[i]);
            c->inst[i] = NULL;
        }
    /* flush processors in pipeline order, then free them */
    for (size_t i = 0; i < c->npipes; i++) {
        struct cld_pipeline *pl = c->pipes[i];
        for (size_t j = 0; j < pl->nprocs; j++)
            if (pl->procs[j]->started && pl->procs[j]->p->flush)
                pl->procs[j]->p->flush(pl->procs[j]);
    }
    for (size_t i = 0; i < c->npipes; i++) {
        struct cld_pipeline *pl = c->pipes[i];
        for (size_t j = 0; j < pl->nprocs; j++)
            free_instance(pl->procs[j]);
        obs_free(pl->procs);
        obs_free(pl->exps);
        obs_free(pl->id);
        obs_free(pl);
    }
    obs_free(c->pipes);
    for (int k = CLD_EXPORTER; k <= CLD_EXTENSION; k++)
        for (size_t i = 0; i < c->ninst; i++)
            if (c->inst[i] && c->inst[i]->p->kind == (enum cld_kind)k) {
                free_instance(c->inst[i]);
                c->inst[i] = NULL;
            }
    obs_free(c->inst);
    obs_free(c->telemetry_addr);
    obs_free(c->log_level);
    obs_free(c);
}

/* ---- obs_app glue ---------------------------------------------------------------------- */

static void h_metrics(struct obs_http_req *r, void *arg)
{
    struct obs_ctx *ctx = arg;
    struct obs_sbuf b;
    obs_sbuf_init(&b);
    obs_metrics_render(ctx->metrics, &b);
    obs_http_reply_sbuf(r, 200, "text/plain; version=0.0.4; charset=utf-8", &b);
    obs_sbuf_deinit(&b);
}

static void h_ready(struct obs_http_req *r, void *arg)
{
    struct obs_ctx *ctx = arg;
    if (ctx->ready)
        obs_http_reply_text(r, 200, "ready");
    else
        obs_http_reply_text(r, 503, "not ready: starting");
}

int cld_setup(struct obs_ctx *ctx, struct obs_err *err)
{
    struct cld_collector *c = cld_config_parse(ctx->cfg, ctx, err);
    if (!c)
        return err && err->code ? err->code : OBS_EINVAL;
    ctx->app = c;
    if (c->log_level) {
        char lvl[16];
        snprintf(lvl, sizeof lvl, "%s", c->log_level);
        for (char *p = lvl; *p; p++)
            *p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
        obs_log_set_level_name(lvl);
    }
    /* obs_app listened on an ephemeral port (default_http_port 0) unless a flag or a
     * `server:` section chose one; move it to service.telemetry.metrics.address, default
     * :8888, the Collector's own metrics endpoint. */
    const char *addr = c->telemetry_addr;
    if (!addr && ctx->server.http_listen_port == 0)
        addr = "0.0.0.0:8888";
    if (addr) {
        char host[128];
        int port;
        cld_parse_endpoint(addr, host, sizeof host, &port);
        if (!ctx->http || port != obs_http_server_port(ctx->http)) {
            struct obs_http_server *s = obs_http_server_new(ctx->base, host, port, err);
            if (!s)
                return OBS_EIO;
            obs_http_server_free(ctx->http);
            ctx->http = s;
            obs_http_route(s, "GET", "/metrics", h_metrics, ctx);
            obs_http_route(s, "GET", "/ready", h_ready, ctx);
            obs_http_route(s, "GET", "/-/ready", h_ready, ctx);
            obs_http_route(s, "GET", "/-/healthy", h_ready, ctx);
        }
    }
    return 0;
}

void cld_teardown(struct obs_ctx *ctx)
{
    /* the collector was freed by the component's stop */
    ctx->app = NULL;
}

static int collector_init(struct obs_ctx *ctx, struct obs_err *err)
{
    return cld_collector_start(ctx->app, err);
}

static void collector_stop(struct obs_ctx *ctx)
{
    cld_collector_free(ctx->app);
    ctx->app = NULL;
}

const struct obs_component cld_components[] = {
    {.name = "collector", .deps = NULL, .init = collector_init, .stop = collector_stop},
};
const int cld_ncomponents = 1;
