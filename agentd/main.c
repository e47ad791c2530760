/*
 * main.c -- agentd: Promtail (tail files -> Loki push) + Prometheus agent (scrape -> remote
 * write) in one process. The table below is the whole program; see agentd.c.
 */
#include "agd.h"
#include "app/obs_app.h"


int main(int argc, char **argv)
{
    static const char *const aliases[][2] = {
        {"positions.file", "positions.filename"},
        {"server.http-listen-port", "server.http_listen_port"},
        {NULL, NULL},
    };
    const struct obs_app_desc desc = {
        .name = "agentd",
        .version = "0.1.0",
        .default_http_port = 9080,
        .default_grpc_port = 0,
        .components = agd_components,
        .ncomponents = agd_ncomponents,
        .config_sections = agd_config_sections,
        .flag_aliases = aliases,
        .setup = agd_setup,
        .teardown = agd_teardown,
    };
    return obs_app_main(argc, argv, &desc);
}
