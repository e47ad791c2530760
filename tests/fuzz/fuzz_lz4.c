/*
 * fuzz_lz4.c -- fuzz target for obs_lz4_decompress() (raw lz4 blocks, as chunk formats store
 * them with the uncompressed length alongside).
 *
 * Input: 4-byte little-endian raw_len (masked to 1 MiB + 0xffff) then the block. A block that
 * decodes must yield exactly raw_len bytes and compress back to something that decodes to
 * the same bytes; an error must leave the output buffer's earlier content intact.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec/obs_codec.h"
#include "core/obs_err.h"
#include "core/obs_sbuf.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_quiet();
    if (size < 4)
        return 0;
    size_t raw_len = ((size_t)data[0] | (size_t)data[1] << 8 | (size_t)data[2] << 16 |
                      (size_t)data[3] << 24) & 0x10ffffu;
    struct obs_sbuf out, enc, back;
    obs_sbuf_init(&out);
    obs_sbuf_init(&enc);
    obs_sbuf_init(&back);
    obs_sbuf_append(&out, "pre", 3);
    int rc = obs_lz4_decompress(data + 4, size - 4, raw_len, &out);
    if (rc != 0) {
        if (out.len != 3 || memcmp(out.p, "pre", 3) != 0)
            abort(); /* error must leave earlier content intact */
    } else {
        if (out.len - 3 != raw_len)
            abort(); /* must decode to exactly raw_len bytes */
        if (obs_lz4_compress((const uint8_t *)out.p + 3, raw_len, &enc) == 0 &&
            obs_lz4_decompress((const uint8_t *)enc.p, enc.len, raw_len, &back) == 0) {
            if (back.len != raw_len || (raw_len && memcmp(back.p, out.p + 3, raw_len)))
                abort(); /* round trip mismatch */
        }
    }
    obs_sbuf_deinit(&out);
    obs_sbuf_deinit(&enc);
    obs_sbuf_deinit(&back);
    return 0;
}
