/*
 * obs_codec.c -- snappy, gzip/zlib and lz4 block codecs appending to an obs_sbuf.
 *
 * snappy/gzip are declared in http/obs_http.h (the HTTP body decoders use them), lz4 in
 * codec/obs_codec.h. Every decoder takes a `max` on the decoded size, so a small hostile body
 * cannot expand into gigabytes: snappy's header states the size up front (checked before any
 * allocation), zlib output is counted as it is produced. max == 0 means no limit (trusted
 * input only). On any error out is left as it was (length restored).
 *
 * gzip decode accepts gzip (RFC 1952, including several concatenated members, as `gzip -c a
 * b` and Go's multistream reader produce), zlib (RFC 1950, what HTTP "deflate" means) and, as
 * a fallback some clients need, raw deflate (RFC 1951). Thread-safe: no shared state.
 */
#include "codec/obs_codec.h"
#include "core/obs_err.h"
#include "http/obs_http.h" /* the snappy/gzip prototypes must match both headers */

#include <limits.h>
#include <lz4.h>
#include <snappy-c.h>
#include <string.h>
#include <zlib.h>

#define GZ_CHUNK (64u << 10)

/* --- snappy ------------------------------------------------------------------------------ */

/*
 * Decode a snappy block (no framing) and append it to out. Errors: OBS_EINVAL (malformed),
 * OBS_ELIMIT (stated decoded size over max; nothing is allocated), OBS_ENOMEM.
 */
int obs_snappy_decode(const uint8_t *in, size_t len, size_t max, struct obs_sbuf *out)
{
    size_t raw = 0;
    if (in == NULL && len)
        return OBS_EINVAL;
    if (snappy_uncompressed_length((const char *)in, len, &raw) != SNAPPY_OK)
        return OBS_EINVAL;
    if (max != 0 && raw > max)
        return OBS_ELIMIT;
    /* A snappy copy element yields at most 64 bytes from 3 input bytes (~21x); a header
     * claiming more than 32x the input is corrupt, and refusing it here avoids a large
     * allocation for a tiny bogus body. */
    if (raw / 32 > len + 16)
        return OBS_EINVAL;
    if (obs_sbuf_reserve(out, raw) != OBS_OK)
        return OBS_ENOMEM;
    size_t got = raw;
    if (snappy_uncompress((const char *)in, len, out->p + out->len, &got) != SNAPPY_OK ||
        got != raw) {
        out->p[out->len] = '\0';
        return OBS_EINVAL;
    }
    out->len += got;
    out->p[out->len] = '\0';
    return OBS_OK;
}

/* Encode in as a snappy block appended to out. Returns 0, OBS_ENOMEM or OBS_EINVAL. */
int obs_snappy_encode(const uint8_t *in, size_t len, struct obs_sbuf *out)
{
    size_t cap = snappy_max_compressed_length(len);
    if (obs_sbuf_reserve(out, cap) != OBS_OK)
        return OBS_ENOMEM;
    size_t n = cap;
    if (snappy_compress((const char *)(in ? in : (const uint8_t *)""), len, out->p + out->len,
                        &n) != SNAPPY_OK) {
        out->p[out->len] = '\0';
        return OBS_EINVAL;
    }
    out->len += n;
    out->p[out->len] = '\0';
    return OBS_OK;
}

/* --- gzip / zlib -------------------------------------------------------------------------- */

/* Inflate with the given windowBits. Returns 0, OBS_EINVAL, OBS_ELIMIT or OBS_ENOMEM;
 * on error out->len is restored by the caller. */
static int inflate_all(const uint8_t *in, size_t len, size_t max, int wbits,
                       struct obs_sbuf *out)
{
    z_stream z;
    memset(&z, 0, sizeof(z));
    if (inflateInit2(&z, wbits) != Z_OK)
        return OBS_ENOMEM;
    const uint8_t *p = in;
    size_t left = len, produced = 0;
    int rc = OBS_OK;
    for (;;) {
        if (z.avail_in == 0 && left > 0) {
            uInt take = left > UINT_MAX ? UINT_MAX : (uInt)left;
            z.next_in = (Bytef *)(uintptr_t)p;
            z.avail_in = take;
            p += take;
            left -= take;
        }
        if (obs_sbuf_reserve(out, GZ_CHUNK) != OBS_OK) {
            rc = OBS_ENOMEM;
            break;
        }
        z.next_out = (Bytef *)out->p + out->len;
        z.avail_out = GZ_CHUNK;
        int zr = inflate(&z, Z_NO_FLUSH);
        size_t n = GZ_CHUNK - z.avail_out;
        out->len += n;
        produced += n;
        if (max != 0 && produced > max) {
            rc = OBS_ELIMIT;
            break;
        }
        if (zr == Z_STREAM_END) {
            size_t rest = z.avail_in + left;
            if (rest == 0)
                break;
            /* Another gzip member follows (only gzip has members; trailing bytes after a zlib
             * or raw stream are garbage). */
            const uint8_t *q = z.next_in;
            if (wbits == 15 + 32 && rest >= 2 && q[0] == 0x1f && q[1] == 0x8b) {
                if (inflateReset(&z) != Z_OK) {
                    rc = OBS_EINVAL;
                    break;
                }
                continue;
            }
            rc = OBS_EINVAL;
            break;
        }
        if (zr == Z_BUF_ERROR && z.avail_in == 0 && left == 0) {
            rc = OBS_EINVAL; /* input ended before the stream did */
            break;
        }
        if (zr != Z_OK && zr != Z_BUF_ERROR) {
            rc = zr == Z_MEM_ERROR ? OBS_ENOMEM : OBS_EINVAL;
            break;
        }
        if (zr == Z_OK && n == 0 && z.avail_in == 0 && left == 0) {
            rc = OBS_EINVAL; /* no progress possible: truncated */
            break;
        }
    }
    inflateEnd(&z);
    return rc;
}

/*
 * Decode a gzip, zlib or raw-deflate body and append it to out. max caps the decoded size
 * (OBS_ELIMIT; 0 = no cap). Errors: OBS_EINVAL (malformed, truncated, trailing garbage),
 * OBS_ELIMIT, OBS_ENOMEM.
 */
int obs_gzip_decode(const uint8_t *in, size_t len, size_t max, struct obs_sbuf *out)
{
    if (in == NULL || len == 0)
        return OBS_EINVAL;
    size_t base = out->len;
    int rc = inflate_all(in, len, max, 15 + 32, out);
    if (rc == OBS_EINVAL && out->len == base) {
        /* Not gzip/zlib from the first byte on: try raw deflate before giving up. */
        rc = inflate_all(in, len, max, -15, out);
    }
    if (rc != OBS_OK) {
        out->len = base;
        if (out->p)
            out->p[base] = '\0';
        return rc;
    }
    if (out->p)
        out->p[out->len] = '\0';
    return OBS_OK;
}

/* Encode in as one gzip member (default level) appended to out. Returns 0 or OBS_ENOMEM. */
int obs_gzip_encode(const uint8_t *in, size_t len, struct obs_sbuf *out)
{
    z_stream z;
    memset(&z, 0, sizeof(z));
    if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) !=
        Z_OK)
        return OBS_ENOMEM;
    size_t base = out->len;
    const uint8_t *p = in;
    size_t left = len;
    int rc = OBS_OK;
    for (;;) {
        if (z.avail_in == 0 && left > 0) {
            uInt take = left > UINT_MAX ? UINT_MAX : (uInt)left;
            z.next_in = (Bytef *)(uintptr_t)p;
            z.avail_in = take;
            p += take;
            left -= take;
        }
        size_t want = z.avail_in ? deflateBound(&z, z.avail_in) : GZ_CHUNK;
        if (want > (1u << 30))
            want = 1u << 30;
        if (obs_sbuf_reserve(out, want) != OBS_OK) {
            rc = OBS_ENOMEM;
            break;
        }
        z.next_out = (Bytef *)out->p + out->len;
        z.avail_out = (uInt)want;
        int zr = deflate(&z, left == 0 ? Z_FINISH : Z_NO_FLUSH);
        out->len += want - z.avail_out;
        if (zr == Z_STREAM_END)
            break;
        if (zr != Z_OK && zr != Z_BUF_ERROR) {
            rc = OBS_ENOMEM;
            break;
        }
    }
    deflateEnd(&z);
    if (rc != OBS_OK)
        out->len = base;
    if (out->p)
        out->p[out->len] = '\0';
    return rc;
}

/* --- lz4 ---------------------------------------------------------------------------------- */

size_t obs_lz4_bound(size_t len)
{
    if (len > LZ4_MAX_INPUT_SIZE)
        return 0;
    return (size_t)LZ4_compressBound((int)len);
}

int obs_lz4_compress(const uint8_t *in, size_t len, struct obs_sbuf *out)
{
    if (len > LZ4_MAX_INPUT_SIZE || (in == NULL && len))
        return OBS_EINVAL;
    int cap = LZ4_compressBound((int)len);
    if (obs_sbuf_reserve(out, (size_t)cap) != OBS_OK)
        return OBS_ENOMEM;
    int n = LZ4_compress_default((const char *)(in ? in : (const uint8_t *)""),
                                 out->p + out->len, (int)len, cap);
    if (n <= 0) {
        out->p[out->len] = '\0';
        return OBS_EINVAL;
    }
    out->len += (size_t)n;
    out->p[out->len] = '\0';
    return OBS_OK;
}

int obs_lz4_decompress(const uint8_t *in, size_t len, size_t raw_len, struct obs_sbuf *out)
{
    if (in == NULL || len == 0 || len > INT_MAX || raw_len > LZ4_MAX_INPUT_SIZE)
        return OBS_EINVAL;
    /* An lz4 block expands at most ~255x; a larger claim is corrupt metadata. */
    if (raw_len / 255 > len + 16)
        return OBS_EINVAL;
    if (obs_sbuf_reserve(out, raw_len) != OBS_OK)
        return OBS_ENOMEM;
    int n = LZ4_decompress_safe((const char *)in, out->p + out->len, (int)len, (int)raw_len);
    if (n < 0 || (size_t)n != raw_len) {
        out->p[out->len] = '\0';
        return OBS_EINVAL;
    }
    out->len += raw_len;
    out->p[out->len] = '\0';
    return OBS_OK;
}
