/*
 * fuzz_agentd_config.c -- fuzz target for agentd's config binding (agd_cfg_load: positions,
 * clients, scrape_configs with static_configs and relabeling-free targets, remote_write,
 * external labels) and its positions file loader (agd_positions_open).
 *
 * Input: a selector byte then text. Even: YAML config, loaded with obs_cf_load_string and
 * bound with agd_cfg_load. Odd: the contents of a positions file, written to a temp dir and
 * opened; on success one entry is set and the file synced and reopened (it must load back).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agentd/agd.h"
#include "config/obs_cf.h"
#include "core/obs_err.h"
#include "fuzz.h"

static void config(const uint8_t *p, size_t n)
{
    struct obs_err err = {0};
    struct obs_cf_node *root = obs_cf_load_string((const char *)p, n, "fuzz.yaml", 0, &err);
    if (root == NULL)
        return;
    struct agd_cfg cfg;
    memset(&cfg, 0, sizeof cfg);
    agd_cfg_load(root, &cfg, &err);
    agd_cfg_free(&cfg);
    obs_cf_free(root);
}

static void positions(const uint8_t *p, size_t n)
{
    char path[256];
    snprintf(path, sizeof path, "%s/positions.yaml", fuzz_dir());
    if (fuzz_write_file("positions.yaml", p, n) != 0)
        abort();
    struct obs_err err = {0};
    struct agd_positions *pos = agd_positions_open(path, &err);
    if (pos == NULL)
        return;
    size_t before = agd_positions_count(pos);
    struct agd_pos e = {.offset = 123, .dev = 1, .ino = 2};
    struct agd_pos got;
    agd_positions_get(pos, "/var/log/fuzz.log", &got);
    agd_positions_set(pos, "/var/log/fuzz.log", &e);
    size_t after = agd_positions_count(pos);
    if (agd_positions_sync(pos, &err) == 0) {
        struct agd_positions *again = agd_positions_open(path, &err);
        if (again == NULL || agd_positions_count(again) != after ||
            agd_positions_get(again, "/var/log/fuzz.log", &got) != 0 || got.offset != 123)
            abort(); /* a file we wrote does not load back */
        agd_positions_free(again);
    }
    (void)before;
    agd_positions_free(pos);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_quiet();
    if (size < 1)
        return 0;
    if (data[0] & 1)
        positions(data + 1, size - 1);
    else
        config(data + 1, size - 1);
    return 0;
}
