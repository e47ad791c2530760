/*
 * app.c -- traced's shared state (struct trd_app) and its configuration tables.
 *
 * Config keys follow Tempo's shape so a Tempo config pastes in:
 *   distributor: {receivers: {otlp: {protocols: {grpc: {endpoint}, http: {endpoint}}}}}
 *   storage:     {trace: {backend: local, wal: {path}, local: {path}}}
 *   ingester:    {max_traces, trace_idle_period}
 *   querier:     {search: {default_result_limit, max_result_limit}}
 * setup() binds every section (whatever -target says) so components can read each other's
 * settings; teardown() frees them after the components stopped.
 */
#include <stddef.h>

#include "app/obs_app.h"
#include "core/obs_mem.h"
#include "traced/trd.h"

#define DOFF(f) offsetof(struct trd_distributor_cfg, f)
#define SOFF(f) offsetof(struct trd_storage_cfg, f)

/* Default endpoints differ per protocol, so each gets its own table. */
static const struct obs_cfmap grpc_map[] = {
    {"endpoint", OBS_CFT_STR, "0.0.0.0:4417", offsetof(struct trd_endpoint_cfg, endpoint),
     "OTLP/gRPC listen address (collectord owns 4317 on a one-host lab)", NULL, NULL},
    {"include_metadata", OBS_CFT_IGNORE, NULL, 0, "accepted for compatibility", NULL, NULL},
    {"max_recv_msg_size_mib", OBS_CFT_IGNORE, NULL, 0, "use distributor.max_recv_bytes", NULL,
     NULL},
    {NULL, 0, NULL, 0, NULL, NULL, NULL},
};
static const struct obs_cfmap http_map[] = {
    {"endpoint", OBS_CFT_STR, "0.0.0.0:4418", offsetof(struct trd_endpoint_cfg, endpoint),
     "OTLP/HTTP listen address (POST /v1/traces)", NULL, NULL},
    {"include_metadata", OBS_CFT_IGNORE, NULL, 0, "accepted for compatibility", NULL, NULL},
    {"cors", OBS_CFT_IGNORE, NULL, 0, "accepted for compatibility", NULL, NULL},
    {NULL, 0, NULL, 0, NULL, NULL, NULL},
};
static const struct obs_cfmap protocols_map[] = {
    {"grpc", OBS_CFT_SECTION, NULL, 0, "OTLP/gRPC receiver",
     grpc_map, NULL},
    {"http", OBS_CFT_SECTION, NULL, DOFF(receivers.otlp.protocols.http) -
                                        DOFF(receivers.otlp.protocols.grpc),
     "OTLP/HTTP receiver", http_map, NULL},
    {NULL, 0, NULL, 0, NULL, NULL, NULL},
};
static const struct obs_cfmap otlp_map[] = {
    {"protocols", OBS_CFT_SECTION, NULL, 0, "OTLP protocols", protocols_map, NULL},
    {NULL, 0, NULL, 0, NULL, NULL, NULL},
};
static const struct obs_cfmap receivers_map[] = {
    {"otlp", OBS_CFT_SECTION, NULL, 0, "OTLP receiver", otlp_map, NULL},
    {NULL, 0, NULL, 0, NULL, NULL, NULL},
};
static const struct obs_cfmap distributor_map[] = {
    {"receivers", OBS_CFT_SECTION, NULL, DOFF(receivers), "Trace receivers", receivers_map,
     NULL},
    {"max_recv_bytes", OBS_CFT_BYTES, "64MiB", DOFF(max_recv_bytes),
     "Largest OTLP request (gRPC message or HTTP body) accepted", NULL, NULL},
    {"log_received_spans", OBS_CFT_IGNORE, NULL, 0, "accepted for compatibility", NULL, NULL},
    {"ring", OBS_CFT_IGNORE, NULL, 0, "single process: no ring", NULL, NULL},
    {NULL, 0, NULL, 0, NULL, NULL, NULL},
};

static const struct obs_cfmap wal_map[] = {
    {"path", OBS_CFT_STR, "./data/traced/wal", 0, "WAL directory (every batch fsynced here)",
     NULL, NULL},
    {"v2_encoding", OBS_CFT_IGNORE, NULL, 0, "accepted for compatibility", NULL, NULL},
    {NULL, 0, NULL, 0, NULL, NULL, NULL},
};
static const struct obs_cfmap local_map[] = {
    {"path", OBS_CFT_STR, "./data/traced/blocks", 0, "Block directory (filesystem backend)", NULL,
     NULL},
    {NULL, 0, NULL, 0, NULL, NULL, NULL},
};
static const struct obs_cfmap trace_map[] = {
    {"backend", OBS_CFT_STR, "local", SOFF(trace.backend) - SOFF(trace), "Block backend: local",
     NULL, NULL},
    {"wal", OBS_CFT_SECTION, NULL, SOFF(trace.wal) - SOFF(trace), "WAL", wal_map, NULL},
    {"local", OBS_CFT_SECTION, NULL, SOFF(trace.local) - SOFF(trace), "Local backend", local_map,
     NULL},
    {"block", OBS_CFT_IGNORE, NULL, 0, "accepted for compatibility", NULL, NULL},
    {"pool", OBS_CFT_IGNORE, NULL, 0, "accepted for compatibility", NULL, NULL},
    {NULL, 0, NULL, 0, NULL, NULL, NULL},
};
static const struct obs_cfmap storage_map[] = {
    {"trace", OBS_CFT_SECTION, NULL, SOFF(trace), "Trace storage", trace_map, NULL},
    {NULL, 0, NULL, 0, NULL, NULL, NULL},
};

static const struct obs_cfmap ingester_map[] = {
    {"max_traces", OBS_CFT_INT, "1000000", offsetof(struct trd_ingester_cfg, max_traces),
     "Traces kept in memory; the oldest are dropped beyond this (0 = no limit)", NULL, NULL},
    {"trace_idle_period", OBS_CFT_DURATION, "10s", offsetof(struct trd_ingester_cfg, trace_idle_ms),
     "accepted for compatibility", NULL, NULL},
    {"wal_no_fsync", OBS_CFT_INT, "0", offsetof(struct trd_ingester_cfg, wal_no_fsync),
     "1 = skip fdatasync (benchmarks only; loses acknowledged data on power loss)", NULL, NULL},
    {"lifecycler", OBS_CFT_IGNORE, NULL, 0, "single process: no ring", NULL, NULL},
    {"max_block_duration", OBS_CFT_IGNORE, NULL, 0, "accepted for compatibility", NULL, NULL},
    {"max_block_bytes", OBS_CFT_IGNORE, NULL, 0, "accepted for compatibility", NULL, NULL},
    {"complete_block_timeout", OBS_CFT_IGNORE, NULL, 0, "accepted for compatibility", NULL, NULL},
    {NULL, 0, NULL, 0, NULL, NULL, NULL},
};

static const struct obs_cfmap search_map[] = {
    {"default_result_limit", OBS_CFT_INT, "20", 0, "Search results when no limit is given", NULL,
     NULL},
    {"max_result_limit", OBS_CFT_INT, "0",
     offsetof(struct trd_querier_cfg, search_max_limit) -
         offsetof(struct trd_querier_cfg, search_default_limit),
     "Largest search limit accepted (0 = no limit)", NULL, NULL},
    {NULL, 0, NULL, 0, NULL, NULL, NULL},
};
static const struct obs_cfmap querier_map[] = {
    {"search", OBS_CFT_SECTION, NULL, offsetof(struct trd_querier_cfg, search_default_limit),
     "Search settings", search_map, NULL},
    {"frontend_worker", OBS_CFT_IGNORE, NULL, 0, "single process: no frontend", NULL, NULL},
    {"max_concurrent_queries", OBS_CFT_IGNORE, NULL, 0, "accepted for compatibility", NULL, NULL},
    {NULL, 0, NULL, 0, NULL, NULL, NULL},
};

int trd_app_setup(struct obs_ctx *ctx, struct obs_err *err)
{
    struct trd_app *a = obs_calloc(1, sizeof(*a));
    if (a == NULL)
        return obs_err_set(err, OBS_ENOMEM, "out of memory");
    a->ctx = ctx;
    ctx->app = a;
    int rc;
    if ((rc = obs_cf_bind(obs_cf_get(ctx->cfg, "distributor"), distributor_map, &a->dcfg, err)) ||
        (rc = obs_cf_bind(obs_cf_get(ctx->cfg, "storage"), storage_map, &a->scfg, err)) ||
        (rc = obs_cf_bind(obs_cf_get(ctx->cfg, "ingester"), ingester_map, &a->icfg, err)) ||
        (rc = obs_cf_bind(obs_cf_get(ctx->cfg, "querier"), querier_map, &a->qcfg, err)))
        return rc;
    if (a->dcfg.max_recv_bytes <= 0)
        a->dcfg.max_recv_bytes = 64 << 20;
    return 0;
}

void trd_app_teardown(struct obs_ctx *ctx)
{
    struct trd_app *a = ctx->app;
    if (a == NULL)
        return;
    obs_cf_unbind(distributor_map, &a->dcfg);
    obs_cf_unbind(storage_map, &a->scfg);
    obs_cf_unbind(ingester_map, &a->icfg);
    obs_cf_unbind(querier_map, &a->qcfg);
    trd_store_free(a->store);
    obs_free(a);
    ctx->app = NULL;
}
