/*
 * main.c -- metricsd: Prometheus-compatible metrics storage (Mimir's components in one
 * binary). This file is only the table; obs_app_main() does the rest (see obs_app.h).
 */
#include <malloc.h>

#include "app/obs_app.h"
#include "metricsd/blocks.h"
#include "metricsd/metricsd.h"
#include "metricsd/querier.h"

static const struct obs_component components[] = {
    MTD_INGESTER_COMPONENT,
    MTD_DISTRIBUTOR_COMPONENT,
    /* ---- PromQL helper: add the querier and ruler components here, e.g.
     *   MTD_QUERIER_COMPONENT,   (name "querier", deps {"ingester"})
     *   MTD_RULER_COMPONENT,     (name "ruler",   deps {"querier"})
     * ---- end of PromQL helper's entries */
    MTD_QUERIER_COMPONENT,
    MTD_RULER_COMPONENT,
    MTD_STORE_GATEWAY_COMPONENT,
    MTD_COMPACTOR_COMPONENT,
};

static const char *const sections[] = {
    "ingester", "distributor", "querier", "ruler", "limits", "blocks_storage", "common",
    "overrides", "runtime_config", "compactor", NULL,
};

/* Mimir's flag spellings for the keys people pass most. */
static const char *const aliases[][2] = {
    {"blocks-storage.tsdb.dir", "blocks_storage.tsdb.dir"},
    {"blocks-storage.backend", "blocks_storage.backend"},
    {"blocks-storage.filesystem.dir", "blocks_storage.filesystem.dir"},
    {"distributor.max-recv-msg-size", "distributor.max_recv_msg_size"},
    {"distributor.ingestion-rate-limit", "limits.ingestion_rate"},
    {"distributor.ingestion-burst-size", "limits.ingestion_burst_size"},
    {"ingester.max-global-series-per-user", "limits.max_global_series_per_user"},
    {"ingester.max-global-exemplars-per-user", "limits.max_global_exemplars_per_user"},
    {"ingester.out-of-order-time-window", "limits.out_of_order_time_window"},
    {"validation.max-label-names-per-series", "limits.max_label_names_per_series"},
    {"validation.max-length-label-name", "limits.max_label_name_length"},
    {"validation.max-length-label-value", "limits.max_label_value_length"},
    {"runtime-config.file", "runtime_config.file"},
    {NULL, NULL},
};

int main(int argc, char **argv)
{
    /* Queries allocate and free tens of MiB each; keep freed heap for the next one instead
     * of returning it to the kernel and faulting fresh zeroed pages in again. */
    mallopt(M_MMAP_THRESHOLD, 64 << 20);
    mallopt(M_TRIM_THRESHOLD, 256 << 20);
    static const struct obs_app_desc desc = {
        .name = "metricsd",
        .version = "0.1.0",
        .default_http_port = 9090,
        .default_grpc_port = 9095,
        .components = components,
        .ncomponents = (int)(sizeof components / sizeof components[0]),
        .config_sections = sections,
        .flag_aliases = aliases,
        .setup = mtd_app_setup,
        .teardown = mtd_app_teardown,
    };
    return obs_app_main(argc, argv, &desc);
}
