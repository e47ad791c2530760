/*
 * fuzz_snappy.c -- fuzz target for obs_snappy_decode() (snappy block format, as remote write
 * and Loki push bodies arrive).
 *
 * The input is decoded with a 1 MiB cap (as the HTTP layer caps bodies), into a buffer that
 * already holds a prefix (decoders append and must leave it intact on error). When decoding
 * succeeds the output is re-encoded and decoded again; it must round-trip exactly.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/obs_err.h"
#include "core/obs_sbuf.h"
#include "http/obs_http.h"
#include "fuzz.h"

#define MAX_OUT (1u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_quiet();
    struct obs_sbuf out, enc, back;
    obs_sbuf_init(&out);
    obs_sbuf_init(&enc);
    obs_sbuf_init(&back);
    obs_sbuf_append(&out, "pre", 3);
    int rc = obs_snappy_decode(data, size, MAX_OUT, &out);
    if (rc != 0) {
        if (out.len != 3 || memcmp(out.p, "pre", 3) != 0)
            abort(); /* error must leave earlier content intact */
    } else {
        if (out.len - 3 > MAX_OUT)
            abort(); /* the cap was not enforced */
        if (obs_snappy_encode((const uint8_t *)out.p + 3, out.len - 3, &enc) == 0 &&
            obs_snappy_decode((const uint8_t *)enc.p, enc.len, 0, &back) == 0) {
            if (back.len != out.len - 3 || (back.len && memcmp(back.p, out.p + 3, back.len)))
                abort(); /* round trip mismatch */
        }
    }
    obs_sbuf_deinit(&out);
    obs_sbuf_deinit(&enc);
    obs_sbuf_deinit(&back);
    return 0;
}
