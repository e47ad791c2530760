/*
 * xor.c -- Gorilla XOR chunk encoder and iterator (layout in xor.h).
 *
 * Design: the encoder reserves room for the largest possible sample (a 10-byte varint plus
 * 64 value bits for sample 0; 4+64 timestamp bits and 1+1+5+6+64 value bits afterwards,
 * under 24 bytes either way) before touching the stream, so an append either fails with
 * nothing written or cannot fail at all. Fresh bytes are zeroed because bits are OR'ed in.
 * The iterator checks every read against the buffer end, so any input, however broken,
 * yields OBS_ECORRUPT rather than an out-of-bounds read.
 */
#include "metricsd/tsdb/xor.h"

#include <string.h>

#include "core/obs_err.h"
#include "core/obs_mem.h"

/* Worst-case bytes one sample can add to the stream. */
#define XOR_MAX_SAMPLE_BYTES 24

static uint64_t dbits(double v)
{
    uint64_t b;
    memcpy(&b, &v, sizeof b);
    return b;
}

static double bitsd(uint64_t b)
{
    double v;
    memcpy(&v, &b, sizeof v);
    return v;
}

static int clz64(uint64_t x)
{
    return x ? __builtin_clzll(x) : 64;
}

static int ctz64(uint64_t x)
{
    return x ? __builtin_ctzll(x) : 64;
}

/* ---- encoder ---------------------------------------------------------------------------- */

static int reserve(struct mtd_tsdb_xor_enc *e, size_t extra)
{
    size_t need = (e->nbits + 7) / 8 + extra;
    if (need <= e->cap)
        return 0;
    size_t ncap = e->cap ? e->cap : 32;
    while (ncap < need)
        ncap *= 2;
    uint8_t *nb = obs_realloc(e->b, ncap);
    if (nb == NULL)
        return OBS_ENOMEM;
    memset(nb + e->cap, 0, ncap - e->cap);
    e->b = nb;
    e->cap = ncap;
    return 0;
}

/* Write the low n bits of v (1 <= n <= 64), most significant first. Room was reserved. */
static void put_bits(struct mtd_tsdb_xor_enc *e, uint64_t v, unsigned n)
{
    /* Prometheus ends a write of whole bytes that lands on a byte boundary with an empty
     * byte appended (xor.h, "Length"); remember whether the latest write did. */
    e->extra = (uint8_t)(n % 8 == 0 && (e->nbits + n) % 8 == 0);
    while (n > 0) {
        unsigned room = 8 - (unsigned)(e->nbits & 7);
        unsigned take = n < room ? n : room;
        uint8_t part = (uint8_t)((v >> (n - take)) & ((1u << take) - 1));
        e->b[e->nbits >> 3] |= (uint8_t)(part << (room - take));
        e->nbits += take;
        n -= take;
    }
}

static void put_uvarint(struct mtd_tsdb_xor_enc *e, uint64_t v)
{
    while (v >= 0x80) {
        put_bits(e, (v & 0x7f) | 0x80, 8);
        v >>= 7;
    }
    put_bits(e, v, 8);
}

int mtd_tsdb_xor_enc_init(struct mtd_tsdb_xor_enc *e)
{
    memset(e, 0, sizeof *e);
    if (reserve(e, 128) != 0)
        return OBS_ENOMEM;
    e->nbits = 16;
    e->leading = 0xff;
    return 0;
}

void mtd_tsdb_xor_enc_deinit(struct mtd_tsdb_xor_enc *e)
{
    obs_free(e->b);
    memset(e, 0, sizeof *e);
}

void mtd_tsdb_xor_enc_reset(struct mtd_tsdb_xor_enc *e)
{
    if (e->b)
        memset(e->b, 0, e->cap);
    e->nbits = 16;
    e->n = 0;
    e->t = 0;
    e->tdelta = 0;
    e->vbits = 0;
    e->leading = 0xff;
    e->trailing = 0;
    e->extra = 0;
}

/* Can dod be written in nbits as Prometheus' bitRange() decides? */
static int fits(int64_t dod, unsigned nbits)
{
    int64_t hi = (int64_t)1 << (nbits - 1);
    return dod >= -(hi - 1) && dod <= hi;
}

static void put_value(struct mtd_tsdb_xor_enc *e, uint64_t vbits)
{
    uint64_t x = vbits ^ e->vbits;
    if (x == 0) {
        put_bits(e, 0, 1);
        return;
    }
    put_bits(e, 1, 1);
    unsigned leading = (unsigned)clz64(x), trailing = (unsigned)ctz64(x);
    if (leading >= 32)
        leading = 31; /* 5 bits */
    if (e->leading != 0xff && leading >= e->leading && trailing >= e->trailing) {
        put_bits(e, 0, 1);
        put_bits(e, x >> e->trailing, 64 - e->leading - e->trailing);
        return;
    }
    e->leading = (uint8_t)leading;
    e->trailing = (uint8_t)trailing;
    put_bits(e, 1, 1);
    put_bits(e, leading, 5);
    unsigned sig = 64 - leading - trailing; /* 1..64; 64 is written as 0 */
    put_bits(e, sig & 63, 6);
    put_bits(e, x >> trailing, sig);
}

int mtd_tsdb_xor_enc_append(struct mtd_tsdb_xor_enc *e, int64_t t, double v)
{
    if (e->n == UINT16_MAX)
        return OBS_ELIMIT;
    if (reserve(e, XOR_MAX_SAMPLE_BYTES) != 0)
        return OBS_ENOMEM;
    uint64_t vb = dbits(v);
    uint64_t tdelta = 0;
    if (e->n == 0) {
        /* zigzag varint, as Go's binary.PutVarint */
        put_uvarint(e, ((uint64_t)t << 1) ^ (uint64_t)(t >> 63));
        put_bits(e, vb, 64);
    } else if (e->n == 1) {
        tdelta = (uint64_t)t - (uint64_t)e->t;
        put_uvarint(e, tdelta);
        put_value(e, vb);
    } else {
        tdelta = (uint64_t)t - (uint64_t)e->t;
        int64_t dod = (int64_t)(tdelta - e->tdelta);
        if (dod == 0) {
            put_bits(e, 0, 1);
        } else if (fits(dod, 14)) {
            put_bits(e, 0x2, 2);
            put_bits(e, (uint64_t)dod, 14);
        } else if (fits(dod, 17)) {
            put_bits(e, 0x6, 3);
            put_bits(e, (uint64_t)dod, 17);
        } else if (fits(dod, 20)) {
            put_bits(e, 0xe, 4);
            put_bits(e, (uint64_t)dod, 20);
        } else {
            put_bits(e, 0xf, 4);
            put_bits(e, (uint64_t)dod, 64);
        }
        put_value(e, vb);
    }
    e->t = t;
    e->vbits = vb;
    e->tdelta = tdelta;
    e->n++;
    e->b[0] = (uint8_t)(e->n >> 8);
    e->b[1] = (uint8_t)(e->n & 0xff);
    return 0;
}

/* ---- iterator --------------------------------------------------------------------------- */

uint16_t mtd_tsdb_xor_count(const uint8_t *b, size_t len)
{
    if (b == NULL || len < 2)
        return 0;
    return (uint16_t)((b[0] << 8) | b[1]);
}

void mtd_tsdb_xor_iter_init(struct mtd_tsdb_xor_iter *it, const uint8_t *b, size_t len)
{
    memset(it, 0, sizeof *it);
    it->b = b;
    if (b == NULL || len < 2) {
        it->err = OBS_ECORRUPT;
        return;
    }
    it->nbits = len * 8;
    it->pos = 16;
    it->total = mtd_tsdb_xor_count(b, len);
}

/* Read n bits (0 <= n <= 64) into *out. Returns 0 or OBS_ECORRUPT past the end. */
static int get_bits(struct mtd_tsdb_xor_iter *it, unsigned n, uint64_t *out)
{
    if (n > it->nbits - it->pos)
        return OBS_ECORRUPT;
    uint64_t v = 0;
    while (n > 0) {
        unsigned avail = 8 - (unsigned)(it->pos & 7);
        unsigned take = n < avail ? n : avail;
        uint8_t byte = it->b[it->pos >> 3];
        uint64_t part = (byte >> (avail - take)) & ((1u << take) - 1);
        v = (v << take) | part;
        it->pos += take;
        n -= take;
    }
    *out = v;
    return 0;
}

/* Go's binary.ReadUvarint over the bit stream: at most 10 bytes, the 10th at most 1. */
static int get_uvarint(struct mtd_tsdb_xor_iter *it, uint64_t *out)
{
    uint64_t v = 0, byte;
    for (unsigned i = 0; i < 10; i++) {
        if (get_bits(it, 8, &byte) != 0)
            return OBS_ECORRUPT;
        if (i == 9 && byte > 1)
            return OBS_ECORRUPT;
        v |= (byte & 0x7f) << (7 * i);
        if (byte < 0x80) {
            *out = v;
            return 0;
        }
    }
    return OBS_ECORRUPT;
}

static int get_value(struct mtd_tsdb_xor_iter *it)
{
    uint64_t bit, x;
    if (get_bits(it, 1, &bit) != 0)
        return OBS_ECORRUPT;
    if (bit == 0)
        return 0; /* same value */
    if (get_bits(it, 1, &bit) != 0)
        return OBS_ECORRUPT;
    if (bit == 1) {
        uint64_t lead, sig;
        if (get_bits(it, 5, &lead) != 0 || get_bits(it, 6, &sig) != 0)
            return OBS_ECORRUPT;
        if (sig == 0)
            sig = 64;
        if (lead + sig > 64)
            return OBS_ECORRUPT;
        it->leading = (uint8_t)lead;
        it->trailing = (uint8_t)(64 - lead - sig);
    }
    unsigned mbits = 64u - it->leading - it->trailing;
    if (get_bits(it, mbits, &x) != 0)
        return OBS_ECORRUPT;
    it->vbits ^= it->trailing >= 64 ? 0 : x << it->trailing;
    return 0;
}

int mtd_tsdb_xor_iter_next(struct mtd_tsdb_xor_iter *it, int64_t *t, double *v)
{
    if (it->err)
        return it->err;
    if (it->read == it->total)
        return 0;
    uint64_t u;
    int rc = 0;
    if (it->read == 0) {
        if ((rc = get_uvarint(it, &u)) != 0 || (rc = get_bits(it, 64, &it->vbits)) != 0)
            goto bad;
        it->t = (int64_t)(u >> 1) ^ -(int64_t)(u & 1); /* zigzag */
    } else if (it->read == 1) {
        if ((rc = get_uvarint(it, &u)) != 0)
            goto bad;
        it->tdelta = u;
        it->t = (int64_t)((uint64_t)it->t + u);
        if ((rc = get_value(it)) != 0)
            goto bad;
    } else {
        unsigned prefix = 0, i;
        for (i = 0; i < 4; i++) {
            uint64_t bit;
            if ((rc = get_bits(it, 1, &bit)) != 0)
                goto bad;
            if (bit == 0)
                break;
            prefix++;
        }
        uint64_t dod = 0;
        static const unsigned width[] = {0, 14, 17, 20, 64};
        unsigned sz = width[prefix];
        if (sz > 0) {
            if ((rc = get_bits(it, sz, &dod)) != 0)
                goto bad;
            if (sz < 64 && dod > ((uint64_t)1 << (sz - 1)))
                dod -= (uint64_t)1 << sz; /* negative, two's complement in sz bits */
        }
        it->tdelta += dod;
        it->t = (int64_t)((uint64_t)it->t + it->tdelta);
        if ((rc = get_value(it)) != 0)
            goto bad;
    }
    it->read++;
    *t = it->t;
    *v = bitsd(it->vbits);
    return 1;
bad:
    it->err = OBS_ECORRUPT;
    return OBS_ECORRUPT;
}
