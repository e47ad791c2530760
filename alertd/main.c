/*
 * main.c -- alertd: an Alertmanager-compatible alerting daemon (API v2, route tree,
 * grouping, silences, inhibition, webhook notifications with a persisted notification log).
 *
 * Flags follow Alertmanager's: --config.file, --web.listen-address=[host]:port,
 * --storage.path (default ./data/alertd), --web.external-url, --data.retention.
 */
#include "app/obs_app.h"

extern const struct obs_component ald_component;

static const char *const aliases[][2] = {
    {"web.listen-address", "@listen"},
    {"cluster.listen-address", "@ignore"},
    {"cluster.advertise-address", "@ignore"},
    {"cluster.peer", "@ignore"},
    {"log.format", "@ignore"},
    {NULL, NULL},
};

int main(int argc, char **argv)
{
    static const struct obs_app_desc desc = {
        .name = "alertd",
        .version = "0.1.0",
        .default_http_port = 9093,
        .default_grpc_port = 0,
        .components = &ald_component,
        .ncomponents = 1,
        .config_sections = NULL, /* the whole tree is Alertmanager's; bound by config.c */
        .flag_aliases = aliases,
    };
    return obs_app_main(argc, argv, &desc);
}
