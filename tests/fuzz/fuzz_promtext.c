/*
 * fuzz_promtext.c -- fuzz target for agentd's Prometheus text format 0.0.4 parser
 * (agentd/agd.h: agd_promtext_parse), which reads every scraped /metrics body.
 *
 * Input: an exposition body, given with its exact length and no NUL (reads past the end are
 * caught). The callbacks check what the parser hands out: at least the __name__ label, every
 * name and value a non-NULL string. A second pass stops at the fifth sample via the callback
 * return value, which must be passed through.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agentd/agd.h"
#include "core/obs_err.h"
#include "labels/obs_labels.h"
#include "fuzz.h"

struct count {
    size_t samples, stop_at;
};

static int on_sample(const struct obs_label *labels, size_t n, double value, int64_t ts_ms,
                     int has_ts, void *arg)
{
    struct count *c = arg;
    (void)value;
    (void)ts_ms;
    (void)has_ts;
    if (n < 1 || labels == NULL || strcmp(labels[0].name, "__name__") != 0)
        abort();
    size_t sum = 0;
    for (size_t i = 0; i < n; i++) {
        if (labels[i].name == NULL || labels[i].value == NULL)
            abort();
        sum += strlen(labels[i].name) + strlen(labels[i].value);
    }
    (void)sum;
    c->samples++;
    return c->stop_at && c->samples == c->stop_at ? 42 : 0;
}

static int on_meta(const char *kind, const char *name, const char *text, void *arg)
{
    (void)arg;
    if (kind == NULL || name == NULL)
        abort();
    if (text)
        (void)strlen(text);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_quiet();
    char *buf = malloc(size ? size : 1);
    if (buf == NULL)
        return 0;
    if (size)
        memcpy(buf, data, size);
    struct obs_err err = {0};
    struct count c = {0, 0};
    int rc = agd_promtext_parse(buf, size, on_sample, on_meta, &c, &err);
    if (rc == 0 && c.samples >= 5) {
        struct count c2 = {0, 5};
        if (agd_promtext_parse(buf, size, on_sample, NULL, &c2, &err) != 42 || c2.samples != 5)
            abort(); /* the callback's stop value was not honoured */
    }
    free(buf);
    return 0;
}
