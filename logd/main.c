/*
 * main.c -- logd: a Loki-compatible log store. The process is a table of components;
 * common/app/obs_app.c does flags, config, the loop and health endpoints.
 * Targets: distributor, ingester, querier, all (the default; wired in-process).
 */
#include "app/obs_app.h"
#include "logd/logd.h"

static const char *const distributor_deps[] = {"ingester", NULL};
static const char *const querier_deps[] = {"ingester", NULL};

static const struct obs_component components[] = {
    {"ingester", NULL, lgd_ingester_init, lgd_ingester_stop},
    {"distributor", distributor_deps, lgd_distributor_init, NULL},
    {"querier", querier_deps, lgd_querier_init, NULL},
};

static const char *const sections[] = {
    "auth_enabled", "common", "ingester", "limits_config", "schema_config", "storage_config",
    "compactor", "query_range", "frontend", "frontend_worker", "query_scheduler", "ruler",
    "memberlist", "analytics", "table_manager", "chunk_store_config", "distributor", "querier",
    "ingester_client", "pattern_ingester", "tracing", "runtime_config", "target", NULL,
};

static const struct obs_app_desc desc = {
    .name = "logd",
    .version = "0.1.0",
    .default_http_port = 3100,
    .default_grpc_port = 9096,
    .components = components,
    .ncomponents = sizeof(components) / sizeof(components[0]),
    .config_sections = sections,
    .setup = lgd_app_setup,
    .teardown = lgd_app_teardown,
};

int main(int argc, char **argv) { return obs_app_main(argc, argv, &desc); }
