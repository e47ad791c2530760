/*
 * xor.h -- Gorilla XOR float chunks for TSDB blocks, bit for bit the layout Prometheus'
 * chunk encoding 1 ("XOR", tsdb/chunkenc/xor.go) uses, so a chunk built here can be written
 * into a block's chunks/ segment and read back by promtool/Prometheus/Thanos, and the other
 * way round.
 *
 * Layout (bits are written MSB first into bytes; the last byte is zero-padded):
 *   bytes 0-1   sample count, big-endian uint16
 *   sample 0    t as a zigzag varint (Go binary.PutVarint), bytes inline in the bit stream;
 *               then the 64 IEEE-754 bits of v
 *   sample 1    t1 - t0 as a uvarint (the delta is taken as uint64, so a decreasing t wraps
 *               and still round-trips); then v XOR-encoded against v0
 *   sample n    delta-of-delta dod = (tn - tn-1) - (tn-1 - tn-2):
 *                 '0' when dod == 0;
 *                 '10'   + 14 bits, '110' + 17 bits, '1110' + 20 bits when dod fits the
 *                 bucket (-(2^(k-1)-1) <= dod <= 2^(k-1), two's complement in k bits);
 *                 '1111' + 64 bits otherwise;
 *               then v XOR-encoded against vn-1.
 *   XOR value   x = bits(v) ^ bits(prev): '0' when x == 0; otherwise '1', then
 *                 '0' + the meaningful bits inside the previous leading/trailing window when
 *                 x fits it (leading >= prev.leading and trailing >= prev.trailing);
 *                 '1' + 5 bits leading zeros (clamped to 31) + 6 bits significant-bit count
 *                 (64 is written as 0) + the significant bits, and that window is remembered.
 *               The first XOR of a chunk always takes the '11' form.
 *   Length      Prometheus' bit stream writes whole bytes by appending a fresh byte after each
 *               one, so when a sample's last field is a multiple of 8 bits ending on a byte
 *               boundary (always after sample 0; after a 64-bit value, or 8/16/.. meaningful
 *               bits) its chunk carries one more, empty, byte. We reproduce that, so our
 *               chunks are byte-identical to Prometheus' for the same samples; decoders
 *               ignore the byte.
 *
 * Encoder: an embedded object (init/deinit), bytes in one growing obs_malloc'd buffer.
 * Iterator: borrows the bytes; never reads past len; corrupt or truncated input makes next()
 * return OBS_ECORRUPT (it never crashes on any input).
 * Not thread-safe: one encoder/iterator per thread.
 */
#ifndef MTD_TSDB_XOR_H
#define MTD_TSDB_XOR_H

#include <stddef.h>
#include <stdint.h>

/* Prometheus' chunk encoding byte for XOR chunks (chunkenc.EncXOR). */
#define MTD_TSDB_ENC_XOR 1

/* An appendable XOR chunk. */
struct mtd_tsdb_xor_enc {
    uint8_t *b;      /* encoded bytes (obs_malloc'd), header included */
    size_t cap;      /* bytes allocated */
    size_t nbits;    /* bits written, header included */
    uint16_t n;      /* samples */
    int64_t t;       /* last timestamp */
    uint64_t tdelta; /* last timestamp delta */
    uint64_t vbits;  /* last value's bits */
    uint8_t leading; /* XOR window of the last '11' value (0xff = none yet) */
    uint8_t trailing;
    uint8_t extra; /* Prometheus' trailing empty byte is part of the chunk (see below) */
};

/* Initialise an empty chunk (allocates the header). Returns 0 or OBS_ENOMEM. */
int mtd_tsdb_xor_enc_init(struct mtd_tsdb_xor_enc *e);
/* Free the buffer. Safe on a zeroed or already deinit'd encoder. */
void mtd_tsdb_xor_enc_deinit(struct mtd_tsdb_xor_enc *e);
/* Empty the chunk again, keeping its memory (for cutting the next chunk). */
void mtd_tsdb_xor_enc_reset(struct mtd_tsdb_xor_enc *e);

/*
 * Append one sample. t should be greater than the previous sample's (block writers check
 * that); other values are encoded with wrapping deltas exactly as Prometheus does and still
 * round-trip. Any double (NaN payloads such as the stale marker included) is stored by its
 * bits. Returns 0, OBS_ENOMEM (the chunk is then unchanged) or OBS_ELIMIT when the chunk
 * already holds 65535 samples.
 */
int mtd_tsdb_xor_enc_append(struct mtd_tsdb_xor_enc *e, int64_t t, double v);

/* The encoded bytes (borrowed; valid until the next append/reset/deinit) and their count. */
static inline const uint8_t *mtd_tsdb_xor_enc_bytes(const struct mtd_tsdb_xor_enc *e, size_t *len)
{
    *len = (e->nbits + 7) / 8 + e->extra;
    return e->b;
}

/* Iterator over an encoded chunk. */
struct mtd_tsdb_xor_iter {
    const uint8_t *b; /* borrowed bytes */
    size_t nbits;     /* 8 * len */
    size_t pos;       /* next bit to read */
    uint16_t total;   /* samples in the header */
    uint16_t read;    /* samples returned so far */
    int64_t t;
    uint64_t tdelta;
    uint64_t vbits;
    uint8_t leading, trailing;
    int err; /* sticky OBS_ECORRUPT */
};

/*
 * Start iterating b[0..len) (borrowed for the iterator's lifetime). A buffer shorter than the
 * 2-byte header makes the first next() return OBS_ECORRUPT.
 */
void mtd_tsdb_xor_iter_init(struct mtd_tsdb_xor_iter *it, const uint8_t *b, size_t len);

/*
 * Decode the next sample into *t and *v. Returns 1 with a sample, 0 after the last one, or
 * OBS_ECORRUPT when the data ends early or is inconsistent (then every later call does too).
 */
int mtd_tsdb_xor_iter_next(struct mtd_tsdb_xor_iter *it, int64_t *t, double *v);

/* Sample count from a chunk's header (0 if len < 2). */
uint16_t mtd_tsdb_xor_count(const uint8_t *b, size_t len);

#endif
