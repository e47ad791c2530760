/*
 * fuzz_gzip.c -- fuzz target for obs_gzip_decode() (gzip or zlib deflate, HTTP
 * Content-Encoding) with an output cap.
 *
 * The first input byte picks the cap (1 KiB << (b % 11), so 1 KiB .. 1 MiB) to exercise
 * OBS_ELIMIT on decompression bombs; the rest is the compressed body. On success the
 * output must respect the cap and re-encode/decode to the same bytes.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/obs_err.h"
#include "core/obs_sbuf.h"
#include "http/obs_http.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_quiet();
    if (size < 1)
        return 0;
    size_t max = (size_t)1024 << (data[0] % 11);
    struct obs_sbuf out, enc, back;
    obs_sbuf_init(&out);
    obs_sbuf_init(&enc);
    obs_sbuf_init(&back);
    int rc = obs_gzip_decode(data + 1, size - 1, max, &out);
    if (rc == 0) {
        if (out.len > max)
            abort(); /* the cap was not enforced */
        if (obs_gzip_encode((const uint8_t *)out.p, out.len, &enc) == 0 &&
            obs_gzip_decode((const uint8_t *)enc.p, enc.len, 0, &back) == 0) {
            if (back.len != out.len || (back.len && memcmp(back.p, out.p, back.len)))
                abort(); /* round trip mismatch */
        }
    }
    obs_sbuf_deinit(&out);
    obs_sbuf_deinit(&enc);
    obs_sbuf_deinit(&back);
    return 0;
}
