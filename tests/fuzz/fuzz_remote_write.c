/*
 * fuzz_remote_write.c -- fuzz target for metricsd's remote-write ingest path
 * (metricsd/distributor.c's decode, done here with the same public calls, and the head).
 *
 * Input: a flags byte, then the body. Bit 0 set: the body is snappy-compressed (decoded with
 * a 1 MiB cap, as the distributor caps at 8x the body limit), else raw protobuf. The
 * prometheus.WriteRequest is unpacked; each series' labels are checked as the distributor
 * does (metric name, obs_labels_check); valid samples and metadata go through a head appender
 * of a fresh WAL-less head and are committed, then read back with a label-names listing.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/obs_err.h"
#include "core/obs_sbuf.h"
#include "http/obs_http.h"
#include "labels/obs_labels.h"
#include "metricsd/head.h"
#include "metricsd/storage.h"
#include "proto/prometheus_remote.pb-c.h"
#include "fuzz.h"

static void ingest(const Prometheus__WriteRequest *wr)
{
    struct mtd_head_opts o = {0};
    struct obs_err err = {0};
    struct mtd_head *h = mtd_head_open(&o, &err);
    if (h == NULL)
        abort();
    mtd_head_set_max_series(h, 1000);
    struct mtd_appender *a = mtd_head_appender(h, "fake");
    if (a == NULL)
        abort();
    for (size_t i = 0; i < wr->n_timeseries; i++) {
        const Prometheus__TimeSeries *ts = wr->timeseries[i];
        size_t n = ts->n_labels;
        struct obs_label *l = calloc(n ? n : 1, sizeof *l);
        if (l == NULL)
            break;
        for (size_t k = 0; k < n; k++) {
            l[k].name = ts->labels[k]->name ? ts->labels[k]->name : "";
            l[k].value = ts->labels[k]->value ? ts->labels[k]->value : "";
        }
        const char *name = obs_labels_get(l, n, "__name__");
        if (name && obs_metric_name_valid(name, strlen(name)) && obs_labels_check(l, n, &err) == 0) {
            for (size_t k = 0; k < ts->n_samples; k++)
                mtd_appender_add(a, l, n, ts->samples[k]->timestamp, ts->samples[k]->value,
                                 &err);
        }
        free(l);
    }
    for (size_t i = 0; i < wr->n_metadata; i++) {
        const Prometheus__MetricMetadata *m = wr->metadata[i];
        if (m->metric_family_name)
            mtd_appender_add_metadata(a, m->metric_family_name, (int)m->type, m->help, m->unit);
    }
    mtd_appender_count(a);
    if (mtd_appender_commit(a, &err) == 0) {
        char **names = NULL;
        size_t nn = 0;
        struct mtd_storage *st = mtd_head_storage(h);
        if (mtd_storage_label_names(st, "fake", NULL, 0, INT64_MIN, INT64_MAX, &names, &nn,
                                    &err) == 0)
            mtd_strings_free(names, nn);
    }
    mtd_head_close(h);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_quiet();
    if (size < 1)
        return 0;
    const uint8_t *body = data + 1;
    size_t len = size - 1;
    struct obs_sbuf dec;
    obs_sbuf_init(&dec);
    if (data[0] & 1) {
        if (obs_snappy_decode(body, len, 1u << 20, &dec) != 0) {
            obs_sbuf_deinit(&dec);
            return 0;
        }
        body = (const uint8_t *)(dec.p ? dec.p : "");
        len = dec.len;
    }
    Prometheus__WriteRequest *wr = prometheus__write_request__unpack(NULL, len, body);
    if (wr != NULL) {
        ingest(wr);
        prometheus__write_request__free_unpacked(wr, NULL);
    }
    obs_sbuf_deinit(&dec);
    return 0;
}
