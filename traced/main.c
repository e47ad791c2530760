/*
 * main.c -- traced: a Tempo-like trace store (OTLP in, Tempo HTTP API out).
 *
 * Components: ingester (WAL + live traces), distributor (OTLP/gRPC 4417, OTLP/HTTP 4418),
 * querier (Tempo API on the HTTP port, 3200). -target=all runs all three in one process.
 */
#include <stddef.h>

#include "app/obs_app.h"
#include "traced/trd.h"

static const char *const after_ingester[] = {"ingester", NULL};

static const struct obs_component components[] = {
    {"ingester", NULL, trd_ingester_init, trd_ingester_stop},
    {"distributor", after_ingester, trd_distributor_init, trd_distributor_stop},
    {"querier", after_ingester, trd_querier_init, trd_querier_stop},
};

/* Tempo top-level keys we bind, plus Tempo keys accepted and ignored in one process. */
static const char *const sections[] = {
    "distributor", "ingester", "querier", "storage", "compactor", "query_frontend",
    "overrides", "memberlist", "metrics_generator", "usage_report", "stream_over_http_enabled",
    "multitenancy_enabled", NULL,
};

static const struct obs_app_desc desc = {
    .name = "traced",
    .version = "0.1.0",
    .default_http_port = 3200,
    .default_grpc_port = 0,
    .components = components,
    .ncomponents = (int)(sizeof(components) / sizeof(components[0])),
    .config_sections = sections,
    .flag_aliases = NULL,
    .setup = trd_app_setup,
    .teardown = trd_app_teardown,
};

int main(int argc, char **argv)
{
    return obs_app_main(argc, argv, &desc);
}
