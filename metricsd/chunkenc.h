/*
 * chunkenc.h -- Gorilla XOR chunks, bit-compatible with Prometheus' XOR chunk encoding
 * (tsdb/chunkenc/xor.go), so the head's chunks can later be written as-is into TSDB blocks
 * and served by remote read's STREAMED_XOR_CHUNKS.
 *
 * Layout: 2-byte big-endian sample count, then a bit stream (MSB first):
 *   sample 0: varint(t) (zigzag) as bytes, then the 64 value bits;
 *   sample 1: uvarint(t - t0) as bytes, then the value XOR-encoded against sample 0;
 *   sample n: delta-of-delta of t in '0' | '10'+14 bits | '110'+17 | '1110'+20 | '1111'+64,
 *             then the value XOR-encoded ('0' same value; '10' + meaningful bits inside the
 *             previous window; '11' + 5 bits leading zeros + 6 bits length + bits).
 * Not thread-safe; plain memory.
 */
#ifndef MTD_CHUNKENC_H
#define MTD_CHUNKENC_H

#include <stddef.h>
#include <stdint.h>

/* An appendable chunk. Zero-initialise, then mtd_xor_init(). */
struct mtd_xor_chunk {
    uint8_t *b;      /* bytes (obs_malloc'd) */
    size_t nbits;    /* bits written, header included */
    size_t cap;      /* bytes allocated */
    uint16_t n;      /* samples */
    int64_t t;       /* last timestamp */
    uint64_t tdelta; /* last timestamp delta */
    double v;        /* last value */
    uint8_t leading, trailing;
};

/* Start an empty chunk (writes the header). Returns 0 or OBS_ENOMEM. */
int mtd_xor_init(struct mtd_xor_chunk *c);
void mtd_xor_deinit(struct mtd_xor_chunk *c);
/* Append a sample; t must be > the previous one (the caller checks order). Returns 0 or
 * OBS_ENOMEM (then the chunk is unchanged), OBS_ELIMIT when it already holds 65535. */
int mtd_xor_append(struct mtd_xor_chunk *c, int64_t t, double v);
/* Encoded size in bytes (the bytes are c->b). */
static inline size_t mtd_xor_bytes(const struct mtd_xor_chunk *c)
{
    return (c->nbits + 7) / 8;
}

/* Iterator over encoded bytes (borrowed for its lifetime). */
struct mtd_xor_iter {
    const uint8_t *b;
    size_t len;  /* bytes */
    size_t pos;  /* bit position */
    uint16_t n, i;
    int64_t t;
    uint64_t tdelta;
    double v;
    uint8_t leading, trailing;
    int err;
    uint8_t have_window; /* a leading/trailing window has been read */
};

void mtd_xor_iter_init(struct mtd_xor_iter *it, const uint8_t *b, size_t len);
/* Advance: 1 with it->t/it->v set, 0 at the end, OBS_ECORRUPT on truncated/bad data. */
int mtd_xor_iter_next(struct mtd_xor_iter *it);

/* Rebuild an appendable chunk from encoded bytes (copied): the inverse of mtd_xor_bytes(),
 * so appending continues the same bit stream. c is overwritten (not freed first). Returns 0,
 * OBS_ECORRUPT (bad or empty chunk) or OBS_ENOMEM. */
int mtd_xor_from_bytes(struct mtd_xor_chunk *c, const uint8_t *b, size_t len);

#endif
