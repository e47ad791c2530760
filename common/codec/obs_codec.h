/*
 * obs_codec.h -- block compression helpers that append to an obs_sbuf.
 *
 * snappy (block format, Prometheus remote write / Loki push) and gzip/deflate (HTTP
 * Content-Encoding) are declared in http/obs_http.h, where the ingest paths use them, and
 * again below; they are implemented in obs_codec.c next to lz4. lz4 here is the raw block
 * format (no frame, no size header): the caller stores the uncompressed length next to the
 * block, as chunk formats do, and passes it back to obs_lz4_decompress.
 * All functions are thread-safe (no shared state) and leave out's previous content intact on
 * error (out->len is restored).
 */
#ifndef OBS_CODEC_H
#define OBS_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "core/obs_sbuf.h"

/* Same prototypes as in http/obs_http.h (repeated so codec users need not pull in the HTTP
 * header; identical redeclarations are valid C). See obs_codec.c for the details. max == 0
 * means no cap on the decoded size. */
int obs_snappy_decode(const uint8_t *in, size_t len, size_t max, struct obs_sbuf *out);
int obs_snappy_encode(const uint8_t *in, size_t len, struct obs_sbuf *out);
int obs_gzip_decode(const uint8_t *in, size_t len, size_t max, struct obs_sbuf *out);
int obs_gzip_encode(const uint8_t *in, size_t len, struct obs_sbuf *out);

/* Compress len bytes of in as one lz4 block appended to out (default acceleration).
 * Returns 0, OBS_EINVAL (input over LZ4_MAX_INPUT_SIZE, ~2 GiB) or OBS_ENOMEM. */
int obs_lz4_compress(const uint8_t *in, size_t len, struct obs_sbuf *out);

/* Decompress one lz4 block whose uncompressed size is exactly raw_len, appending raw_len bytes
 * to out. Returns 0, OBS_EINVAL (malformed block, or it does not decode to exactly raw_len
 * bytes; raw_len larger than the block could ever expand to is refused before allocating) or
 * OBS_ENOMEM. */
int obs_lz4_decompress(const uint8_t *in, size_t len, size_t raw_len, struct obs_sbuf *out);

/* Worst-case compressed size of a len-byte input (0 when len is too large). */
size_t obs_lz4_bound(size_t len);

#endif
