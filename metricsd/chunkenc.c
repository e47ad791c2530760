/*
 * chunkenc.c -- Gorilla XOR chunk encoder/decoder, bit-compatible with Prometheus (see
 * chunkenc.h for the layout). Bits are written MSB-first into bytes, exactly as
 * Prometheus' bstream does, so the byte image matches.
 */
#include "metricsd/chunkenc.h"

#include <string.h>

#include "core/obs_err.h"
#include "core/obs_mem.h"

/* ---- bit writer ------------------------------------------------------------------------- */

static int ensure(struct mtd_xor_chunk *c, size_t bits)
{
    size_t need = (c->nbits + bits + 7) / 8;
    if (need <= c->cap)
        return 0;
    size_t nc = c->cap ? c->cap * 2 : 32;
    while (nc < need)
        nc *= 2;
    uint8_t *nb = obs_realloc(c->b, nc);
    if (nb == NULL)
        return OBS_ENOMEM;
    memset(nb + c->cap, 0, nc - c->cap);
    c->b = nb;
    c->cap = nc;
    return 0;
}

/* Write the low nbits (0..64) of u, most significant first (capacity ensured by the caller;
 * the bytes past nbits are zero). Up to 9 bytes are touched per call, a byte at a time. */
static void put_bits(struct mtd_xor_chunk *c, uint64_t u, int nbits)
{
    if (nbits <= 0)
        return;
    if (nbits < 64)
        u &= (1ULL << nbits) - 1;
    size_t pos = c->nbits;
    int room = 8 - (int)(pos % 8); /* free bits in the current byte */
    uint8_t *p = c->b + pos / 8;
    int left = nbits;
    if (left <= room) {
        *p |= (uint8_t)(u << (room - left));
        c->nbits += (size_t)nbits;
        return;
    }
    left -= room;
    *p++ |= (uint8_t)(u >> left);
    while (left >= 8) {
        left -= 8;
        *p++ = (uint8_t)(u >> left);
    }
    if (left > 0)
        *p = (uint8_t)(u << (8 - left));
    c->nbits += (size_t)nbits;
}

static int bit_range(int64_t x, int nbits)
{
    return -((1LL << (nbits - 1)) - 1) <= x && x <= (1LL << (nbits - 1));
}

static void put_xor(struct mtd_xor_chunk *c, double nv)
{
    uint64_t a, b;
    memcpy(&a, &nv, 8);
    memcpy(&b, &c->v, 8);
    uint64_t delta = a ^ b;
    if (delta == 0) {
        put_bits(c, 0, 1);
        return;
    }
    put_bits(c, 1, 1);
    uint8_t lead = (uint8_t)__builtin_clzll(delta);
    uint8_t trail = (uint8_t)__builtin_ctzll(delta);
    if (lead >= 32)
        lead = 31;
    if (c->leading != 0xff && lead >= c->leading && trail >= c->trailing) {
        put_bits(c, 0, 1);
        put_bits(c, delta >> c->trailing, 64 - c->leading - c->trailing);
        return;
    }
    c->leading = lead;
    c->trailing = trail;
    put_bits(c, 1, 1);
    put_bits(c, lead, 5);
    int sig = 64 - lead - trail;
    put_bits(c, (uint64_t)sig & 0x3f, 6); /* 64 is written as 0 */
    put_bits(c, delta >> trail, sig);
}

int mtd_xor_init(struct mtd_xor_chunk *c)
{
    memset(c, 0, sizeof *c);
    c->leading = 0xff;
    if (ensure(c, 16) != 0)
        return OBS_ENOMEM;
    c->nbits = 16;
    return 0;
}

void mtd_xor_deinit(struct mtd_xor_chunk *c)
{
    obs_free(c->b);
    memset(c, 0, sizeof *c);
}

int mtd_xor_append(struct mtd_xor_chunk *c, int64_t t, double v)
{
    uint8_t tmp[10];
    size_t k = 0;
    if (c->n == UINT16_MAX)
        return OBS_ELIMIT;
    /* Worst case: 64-bit dod + 4-bit prefix + 1+1+5+6+64 value bits, or 10 varint bytes + 64. */
    if (ensure(c, 160) != 0)
        return OBS_ENOMEM;
    uint64_t tdelta = 0;
    if (c->n == 0) {
        uint64_t z = ((uint64_t)t << 1) ^ (t < 0 ? ~0ULL : 0); /* zigzag, as Go PutVarint */
        do {
            tmp[k++] = (uint8_t)(z | (z >= 0x80 ? 0x80 : 0));
            z >>= 7;
        } while (z);
        for (size_t i = 0; i < k; i++)
            put_bits(c, tmp[i], 8);
        uint64_t bits;
        memcpy(&bits, &v, 8);
        put_bits(c, bits, 64);
    } else if (c->n == 1) {
        tdelta = (uint64_t)(t - c->t);
        uint64_t z = tdelta;
        do {
            tmp[k++] = (uint8_t)(z | (z >= 0x80 ? 0x80 : 0));
            z >>= 7;
        } while (z);
        for (size_t i = 0; i < k; i++)
            put_bits(c, tmp[i], 8);
        put_xor(c, v);
    } else {
        tdelta = (uint64_t)(t - c->t);
        int64_t dod = (int64_t)(tdelta - c->tdelta);
        if (dod == 0) {
            put_bits(c, 0, 1);
        } else if (bit_range(dod, 14)) {
            put_bits(c, 2, 2);
            put_bits(c, (uint64_t)dod, 14);
        } else if (bit_range(dod, 17)) {
            put_bits(c, 6, 3);
            put_bits(c, (uint64_t)dod, 17);
        } else if (bit_range(dod, 20)) {
            put_bits(c, 14, 4);
            put_bits(c, (uint64_t)dod, 20);
        } else {
            put_bits(c, 15, 4);
            put_bits(c, (uint64_t)dod, 64);
        }
        put_xor(c, v);
    }
    c->t = t;
    c->v = v;
    c->tdelta = tdelta;
    c->n++;
    c->b[0] = (uint8_t)(c->n >> 8);
    c->b[1] = (uint8_t)c->n;
    return 0;
}

/* ---- reader ----------------------------------------------------------------------------- */

static uint64_t get_bits(struct mtd_xor_iter *it, int nbits)
{
    if (nbits <= 0)
        return 0;
    if (it->pos + (size_t)nbits > it->len * 8) {
        it->err = 1;
        return 0;
    }
    const uint8_t *p = it->b + it->pos / 8;
    int off = (int)(it->pos % 8);
    int avail = 8 - off;
    uint64_t u = *p++ & (0xffu >> off);
    it->pos += (size_t)nbits;
    if (nbits <= avail)
        return u >> (avail - nbits);
    int left = nbits - avail;
    while (left >= 8) {
        u = (u << 8) | *p++;
        left -= 8;
    }
    if (left > 0)
        u = (u << left) | (*p >> (8 - left));
    return u;
}

static uint64_t get_uvarint(struct mtd_xor_iter *it)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 70; shift += 7) {
        uint64_t byte = get_bits(it, 8);
        if (it->err)
            return 0;
        v |= (byte & 0x7f) << shift;
        if (!(byte & 0x80))
            return v;
    }
    it->err = 1;
    return 0;
}

void mtd_xor_iter_init(struct mtd_xor_iter *it, const uint8_t *b, size_t len)
{
    memset(it, 0, sizeof *it);
    it->b = b;
    it->len = len;
    if (len < 2) {
        it->err = 1;
        return;
    }
    it->n = (uint16_t)((b[0] << 8) | b[1]);
    it->pos = 16;
}

static void get_xor(struct mtd_xor_iter *it)
{
    if (get_bits(it, 1) == 0)
        return;
    if (get_bits(it, 1) == 1) {
        it->leading = (uint8_t)get_bits(it, 5);
        it->have_window = 1;
        uint8_t sig = (uint8_t)get_bits(it, 6);
        if (sig == 0)
            sig = 64;
        if (it->leading + sig > 64) {
            it->err = 1;
            return;
        }
        it->trailing = (uint8_t)(64 - it->leading - sig);
    }
    int mbits = 64 - it->leading - it->trailing;
    uint64_t bits = get_bits(it, mbits);
    uint64_t vb;
    memcpy(&vb, &it->v, 8);
    vb ^= mbits == 0 ? 0 : bits << it->trailing;
    memcpy(&it->v, &vb, 8);
}

int mtd_xor_iter_next(struct mtd_xor_iter *it)
{
    if (it->err)
        return OBS_ECORRUPT;
    if (it->i >= it->n)
        return 0;
    if (it->i == 0) {
        uint64_t z = get_uvarint(it);
        it->t = (int64_t)(z >> 1) ^ -(int64_t)(z & 1);
        uint64_t vb = get_bits(it, 64);
        memcpy(&it->v, &vb, 8);
    } else if (it->i == 1) {
        it->tdelta = get_uvarint(it);
        it->t += (int64_t)it->tdelta;
        get_xor(it);
    } else {
        int d = 0;
        while (d < 4 && get_bits(it, 1) == 1)
            d++;
        static const int sizes[] = {0, 14, 17, 20, 64};
        int sz = sizes[d];
        int64_t dod = 0;
        if (sz) {
            uint64_t bits = get_bits(it, sz);
            if (sz != 64 && bits > (1ULL << (sz - 1)))
                bits -= 1ULL << sz;
            dod = (int64_t)bits;
        }
        it->tdelta = it->tdelta + (uint64_t)dod;
        if (__builtin_add_overflow(it->t, (int64_t)it->tdelta, &it->t))
            it->err = 1; /* corrupt chunk: timestamps cannot overflow */
        get_xor(it);
    }
    if (it->err)
        return OBS_ECORRUPT;
    it->i++;
    return 1;
}

int mtd_xor_from_bytes(struct mtd_xor_chunk *c, const uint8_t *b, size_t len)
{
    struct mtd_xor_iter it;
    int rc;
    mtd_xor_iter_init(&it, b, len);
    while ((rc = mtd_xor_iter_next(&it)) == 1)
        ;
    if (rc != 0 || it.i == 0)
        return OBS_ECORRUPT;
    memset(c, 0, sizeof *c);
    size_t bytes = (it.pos + 7) / 8;
    c->cap = bytes + 32;
    c->b = obs_calloc(1, c->cap);
    if (c->b == NULL)
        return OBS_ENOMEM;
    memcpy(c->b, b, bytes);
    if (it.pos % 8) /* clear anything after the last bit */
        c->b[bytes - 1] &= (uint8_t)(0xff00u >> (it.pos % 8));
    c->nbits = it.pos;
    c->n = it.n;
    c->t = it.t;
    c->tdelta = it.tdelta;
    c->v = it.v;
    c->leading = it.have_window ? it.leading : 0xff;
    c->trailing = it.have_window ? it.trailing : 0;
    return 0;
}
