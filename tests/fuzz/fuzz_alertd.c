/*
 * fuzz_alertd.c -- fuzz target for alertd's input parsers (alertd/ald.h): the
 * Alertmanager-format config loader, the matcher expression parser (as used by silences,
 * routes and `amtool`-style filters) and RFC3339 time parsing.
 *
 * Input: a selector byte then text. b % 3: 0 YAML config (ald_config_from_string; on success
 * the route tree is matched against a fixed label set and receivers looked up); 1 matcher
 * expression (on success rendered, and the rendering must parse again to as many matchers);
 * 2 an RFC3339 time.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "alertd/ald.h"
#include "core/obs_err.h"
#include "core/obs_sbuf.h"
#include "labels/obs_labels.h"
#include "fuzz.h"

static const struct obs_label alert_labels[] = {
    {"alertname", "HighLatency"}, {"service", "db"}, {"severity", "page"}, {"team", "x"},
};

static void config(const char *text)
{
    struct obs_err err = {0};
    struct ald_config *c = ald_config_from_string(text, "fuzz.yml", &err);
    if (c == NULL)
        return;
    if (c->route) {
        const struct ald_route *out[16];
        size_t n = ald_route_match(c->route, alert_labels, 4, out, 16);
        for (size_t i = 0; i < n && i < 16; i++) {
            if (out[i]->receiver)
                ald_config_receiver(c, out[i]->receiver);
            char *key = NULL;
            struct obs_label *gl = NULL;
            size_t ngl = 0;
            if (ald_group_key(out[i], alert_labels, 4, &key, &gl, &ngl) == 0) {
                obs_free(key);
                obs_free(gl);
            }
        }
    }
    ald_config_free(c);
}

static void matchers(const char *text)
{
    struct obs_err err = {0};
    struct ald_matchers m = {0};
    if (ald_matchers_parse(text, &m, &err) == 0) {
        ald_matchers_match(&m, alert_labels, 4);
        struct obs_sbuf sb;
        obs_sbuf_init(&sb);
        ald_matchers_render(&m, &sb);
        if (obs_sbuf_putc(&sb, '\0') == 0) {
            struct ald_matchers m2 = {0};
            if (ald_matchers_parse(sb.p, &m2, &err) != 0 || m2.n != m.n)
                abort(); /* the rendering does not parse back */
            ald_matchers_deinit(&m2);
        }
        obs_sbuf_deinit(&sb);
    }
    ald_matchers_deinit(&m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_quiet();
    if (size < 1 || size > 65536)
        return 0;
    char *text = fuzz_cstr(data + 1, size - 1);
    if (text == NULL)
        return 0;
    switch (data[0] % 3) {
    case 0:
        config(text);
        break;
    case 1:
        matchers(text);
        break;
    default: {
        int64_t ms;
        /* known: crash-rfc3339-offset-overread, crash-rfc3339-ns-overflow (obs_time.c) */
        if (!fuzz_skip_known())
            ald_time_parse(text, &ms);
        break;
    }
    }
    free(text);
    return 0;
}
