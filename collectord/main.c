/*
 * main.c -- collectord: an OpenTelemetry Collector (receivers -> processors -> exporters).
 * The config is the Collector's YAML, bound by collector.c (config_sections = NULL), so the
 * table below is the whole program.
 */
#include "cld.h"

int main(int argc, char **argv)
{
    static const char *const aliases[][2] = {{NULL, NULL}};
    const struct obs_app_desc desc = {
        .name = "collectord",
        .version = "0.1.0",
        .default_http_port = 0, /* moved to telemetry address (8888) in cld_setup */
        .default_grpc_port = 0,
        .components = cld_components,
        .ncomponents = cld_ncomponents,
        .config_sections = NULL,
        .flag_aliases = aliases,
        .setup = cld_setup,
        .teardown = cld_teardown,
    };
    return obs_app_main(argc, argv, &desc);
}
