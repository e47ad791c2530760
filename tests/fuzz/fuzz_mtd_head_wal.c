/*
 * fuzz_mtd_head_wal.c -- fuzz target for metricsd's head WAL record decoding (metricsd/head.h:
 * 'S' series, 'D' samples, 'M' metadata records), reached through mtd_head_open's replay.
 *
 * Input: records as [u16 le length][payload]... (a short or overlong tail becomes the last
 * record). The harness frames them as a valid WAL segment (length + CRC32C), so every record
 * reaches the head's decoder. The head is opened on that WAL (replay), read back through the
 * storage vtable (label names, a select of every series), then closed.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/obs_err.h"
#include "core/obs_sbuf.h"
#include "labels/obs_labels.h"
#include "metricsd/head.h"
#include "metricsd/storage.h"
#include "wal/obs_wal.h"
#include "fuzz.h"

static void put32(struct obs_sbuf *b, uint32_t v)
{
    uint8_t p[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    obs_sbuf_append(b, p, 4);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_quiet();
    const char *dir = fuzz_dir();
    struct obs_sbuf seg;
    obs_sbuf_init(&seg);
    size_t off = 0;
    while (off + 2 <= size) {
        size_t len = (size_t)data[off] | (size_t)data[off + 1] << 8;
        off += 2;
        if (len > size - off)
            len = size - off;
        if (len > 0) {
            put32(&seg, (uint32_t)len);
            put32(&seg, obs_crc32c(0, data + off, len));
            obs_sbuf_append(&seg, data + off, len);
        }
        off += len;
    }
    if (fuzz_write_file("00000001", seg.p ? seg.p : "", seg.len) != 0)
        abort();
    obs_sbuf_deinit(&seg);

    struct mtd_head_opts o = {.wal_dir = dir, .wal_no_fsync = 1};
    struct obs_err err = {0};
    struct mtd_head *h = mtd_head_open(&o, &err);
    if (h == NULL)
        return 0;
    mtd_head_num_series(h);
    mtd_head_num_samples(h);
    struct mtd_storage *st = mtd_head_storage(h);
    char **tenants = NULL;
    size_t nt = 0;
    if (mtd_storage_tenants(st, &tenants, &nt) == 0) {
        for (size_t i = 0; i < nt && i < 8; i++) {
            char **names = NULL;
            size_t nn = 0;
            if (mtd_storage_label_names(st, tenants[i], NULL, 0, INT64_MIN, INT64_MAX, &names,
                                        &nn, &err) == 0)
                mtd_strings_free(names, nn);
            struct obs_matcher m;
            if (obs_matcher_init(&m, OBS_MATCH_RE, "__name__", ".+", &err) == 0) {
                struct mtd_select_opts so;
                memset(&so, 0, sizeof so);
                so.mint = INT64_MIN;
                so.maxt = INT64_MAX;
                struct mtd_series_set *set = NULL;
                if (mtd_storage_select(st, tenants[i], &m, 1, &so, &set, &err) == 0)
                    mtd_series_set_free(set);
                obs_matcher_deinit(&m);
            }
        }
        mtd_strings_free(tenants, nt);
    }
    mtd_head_close(h);
    return 0;
}
