/*
 * fuzz_xor_chunk.c -- fuzz target for metricsd's Gorilla XOR chunk decoder
 * (metricsd/chunkenc.h), the format the head keeps and remote read streams.
 *
 * Input: chunk bytes. The iterator is run to the end (at most 65535 samples by the format's
 * 16-bit count). When every sample decodes, they are re-encoded with mtd_xor_append and the
 * new chunk must decode to the same timestamps and value bits.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/obs_err.h"
#include "metricsd/chunkenc.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_quiet();
    struct mtd_xor_iter it;
    mtd_xor_iter_init(&it, data, size);
    int64_t *ts = malloc(65536 * sizeof *ts);
    uint64_t *vs = malloc(65536 * sizeof *vs);
    size_t n = 0;
    int rc = 0;
    while (ts && vs && n < 65536 && (rc = mtd_xor_iter_next(&it)) == 1) {
        ts[n] = it.t;
        memcpy(&vs[n], &it.v, sizeof vs[n]);
        n++;
    }
    if (ts && vs && rc == 0 && n > 0) {
        struct mtd_xor_chunk c;
        memset(&c, 0, sizeof c);
        int ok = mtd_xor_init(&c) == 0;
        /* Re-encode only what the appender accepts: strictly increasing timestamps whose
         * deltas (and delta-of-deltas) fit in int64. */
        for (size_t i = 1; ok && i < n; i++) {
            int64_t d, pd = 0, dod;
            ok = ts[i] > ts[i - 1] && !__builtin_sub_overflow(ts[i], ts[i - 1], &d) &&
                 (i < 2 || (!__builtin_sub_overflow(ts[i - 1], ts[i - 2], &pd) &&
                            !__builtin_sub_overflow(d, pd, &dod)));
        }
        for (size_t i = 0; ok && i < n; i++) {
            double v;
            memcpy(&v, &vs[i], sizeof v);
            ok = mtd_xor_append(&c, ts[i], v) == 0;
        }
        if (ok) {
            struct mtd_xor_iter it2;
            mtd_xor_iter_init(&it2, c.b, mtd_xor_bytes(&c));
            for (size_t i = 0; i < n; i++) {
                uint64_t bits;
                if (mtd_xor_iter_next(&it2) != 1)
                    abort(); /* re-encoded chunk is shorter */
                memcpy(&bits, &it2.v, sizeof bits);
                if (it2.t != ts[i] || bits != vs[i])
                    abort(); /* re-encoded chunk differs */
            }
            if (mtd_xor_iter_next(&it2) != 0)
                abort(); /* re-encoded chunk is longer */
        }
        mtd_xor_deinit(&c);
    }
    free(ts);
    free(vs);
    return 0;
}
