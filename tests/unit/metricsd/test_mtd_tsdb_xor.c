/*
 * test_mtd_tsdb_xor.c -- metricsd/tsdb/xor.c: Gorilla XOR chunks in Prometheus' layout.
 * Round trips (random walks, NaN and the stale marker, every timestamp bucket and its
 * edges, decreasing and extreme timestamps), a byte-exact vector worked out by hand from
 * the format, byte equality with the head's encoder (metricsd/chunkenc.h), and truncated
 * or random input (always OBS_ECORRUPT or clean end, never a crash).
 */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/obs_err.h"
#include "metricsd/chunkenc.h"
#include "metricsd/tsdb/xor.h"

static uint64_t rs = 88172645463325252ULL;

static uint64_t rnd(void)
{
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return rs;
}

static uint64_t bits(double v)
{
    uint64_t b;
    memcpy(&b, &v, sizeof b);
    return b;
}

static double from_bits(uint64_t b)
{
    double v;
    memcpy(&v, &b, sizeof v);
    return v;
}

/* Encode n samples, decode them, compare bit for bit. */
static void roundtrip(const int64_t *t, const double *v, size_t n)
{
    struct mtd_tsdb_xor_enc e;
    ck_assert_int_eq(mtd_tsdb_xor_enc_init(&e), 0);
    for (size_t i = 0; i < n; i++)
        ck_assert_int_eq(mtd_tsdb_xor_enc_append(&e, t[i], v[i]), 0);
    size_t len;
    const uint8_t *b = mtd_tsdb_xor_enc_bytes(&e, &len);
    ck_assert_uint_eq(mtd_tsdb_xor_count(b, len), n);
    struct mtd_tsdb_xor_iter it;
    mtd_tsdb_xor_iter_init(&it, b, len);
    int64_t tt;
    double vv;
    for (size_t i = 0; i < n; i++) {
        ck_assert_int_eq(mtd_tsdb_xor_iter_next(&it, &tt, &vv), 1);
        ck_assert_msg(tt == t[i], "sample %zu: t %lld != %lld", i, (long long)tt, (long long)t[i]);
        ck_assert_msg(bits(vv) == bits(v[i]), "sample %zu: value bits differ", i);
    }
    ck_assert_int_eq(mtd_tsdb_xor_iter_next(&it, &tt, &vv), 0);
    ck_assert_int_eq(mtd_tsdb_xor_iter_next(&it, &tt, &vv), 0);
    mtd_tsdb_xor_enc_deinit(&e);
}

START_TEST(test_random_walk)
{
    enum { N = 5000 };
    static int64_t t[N];
    static double v[N];
    double x = 100;
    for (int round = 0; round < 20; round++) {
        int64_t now = 1700000000000LL + (int64_t)(rnd() % 1000000);
        for (int i = 0; i < N; i++) {
            t[i] = now;
            now += 15000 + (int64_t)(rnd() % 50) - 25; /* jittered scrape interval */
            v[i] = x;
            x += ((double)(rnd() % 2001) - 1000.0) / 333.0;
            if (round % 2)
                v[i] = floor(v[i]); /* integer-valued walk: short XORs */
        }
        roundtrip(t, v, 120);
        roundtrip(t, v, N);
    }
}
END_TEST

START_TEST(test_special_values)
{
    const double v[] = {NAN,
                        from_bits(0x7ff0000000000002ULL),
                        0.0,
                        -0.0,
                        INFINITY,
                        -INFINITY,
                        from_bits(0x7ff0000000000002ULL),
                        1.0,
                        1.7976931348623157e308,
                        5e-324,
                        -5e-324,
                        1e-300,
                        NAN,
                        NAN,
                        from_bits(0xfff8000000000001ULL),
                        42.0,
                        42.0,
                        42.0,
                        0.1,
                        0.2,
                        0.30000000000000004};
    size_t n = sizeof v / sizeof v[0];
    int64_t t[64];
    for (size_t i = 0; i < n; i++)
        t[i] = 1000 * (int64_t)i;
    roundtrip(t, v, n);
    /* a single sample, and two */
    roundtrip(t, v + 1, 1);
    roundtrip(t, v + 1, 2);
}
END_TEST

START_TEST(test_timestamp_buckets)
{
    /* deltas-of-delta at and around every bucket edge: 14, 17, 20 bits and the 64-bit
     * escape, both signs */
    const int64_t dods[] = {
        0,       1,       -1,      8191,      8192,         8193,   -8191,  -8192,  -8193,
        65535,   65536,   65537,   -65535,    -65536,       -65537, 524287, 524288, 524289,
        -524287, -524288, -524289, 1LL << 40, -(1LL << 40), 3,      0,      0};
    size_t n = sizeof dods / sizeof dods[0];
    int64_t t[64];
    double v[64];
    int64_t delta = 1000000000; /* large base delta so the series stays increasing */
    t[0] = 5;
    t[1] = t[0] + delta;
    for (size_t i = 0; i < n; i++) {
        delta += dods[i];
        t[i + 2] = t[i + 1] + delta;
    }
    for (size_t i = 0; i < n + 2; i++)
        v[i] = (double)i;
    roundtrip(t, v, n + 2);
}
END_TEST

START_TEST(test_negative_and_extreme_times)
{
    /* negative timestamps, decreasing timestamps (wrapping deltas, as Prometheus encodes
     * them), and the int64 extremes */
    const int64_t t1[] = {-5000000000000LL, -4000, -3999, -1, 0, 1, 2};
    const int64_t t2[] = {1000, 500, 400, 10000, -7, -7, 3};
    const int64_t t3[] = {INT64_MIN, 0, INT64_MAX, INT64_MIN, INT64_MAX};
    const double v[] = {1, 2, 3, 4, 5, 6, 7};
    roundtrip(t1, v, 7);
    roundtrip(t2, v, 7);
    roundtrip(t3, v, 5);
}
END_TEST

START_TEST(test_golden_bytes)
{
    /* (1000, 1.0), (2000, 1.0), (3000, 2.0), worked out from the format:
     * count 3 | varint(1000) = zigzag 2000 = d0 0f | 1.0 = 3ff0000000000000 |
     * uvarint(1000) = e8 07 | '0' same value | '0' dod 0 | '11' + leading 1 (00001)
     * + 11 significant bits (001011) + 11111111111 -> 0011 0000 1001 0111 1111 1111 11 */
    static const uint8_t want[] = {0x00, 0x03, 0xd0, 0x0f, 0x3f, 0xf0, 0x00, 0x00, 0x00,
                                   0x00, 0x00, 0x00, 0xe8, 0x07, 0x30, 0x97, 0xff, 0xc0};
    struct mtd_tsdb_xor_enc e;
    ck_assert_int_eq(mtd_tsdb_xor_enc_init(&e), 0);
    ck_assert_int_eq(mtd_tsdb_xor_enc_append(&e, 1000, 1.0), 0);
    ck_assert_int_eq(mtd_tsdb_xor_enc_append(&e, 2000, 1.0), 0);
    ck_assert_int_eq(mtd_tsdb_xor_enc_append(&e, 3000, 2.0), 0);
    size_t len;
    const uint8_t *b = mtd_tsdb_xor_enc_bytes(&e, &len);
    ck_assert_uint_eq(len, sizeof want);
    ck_assert_mem_eq(b, want, sizeof want);
    /* reset gives a fresh, empty chunk that encodes the same bytes again */
    mtd_tsdb_xor_enc_reset(&e);
    ck_assert_int_eq(mtd_tsdb_xor_enc_append(&e, 1000, 1.0), 0);
    ck_assert_int_eq(mtd_tsdb_xor_enc_append(&e, 2000, 1.0), 0);
    ck_assert_int_eq(mtd_tsdb_xor_enc_append(&e, 3000, 2.0), 0);
    b = mtd_tsdb_xor_enc_bytes(&e, &len);
    ck_assert_mem_eq(b, want, sizeof want);

    /* One sample: Prometheus' stream ends with an empty byte after the 64 value bits (a
     * real promtool-written single-sample chunk is 17 bytes: 2 + 6-byte varint + 8 + 1). */
    static const uint8_t one[] = {0x00, 0x01, 0xd0, 0x0f, 0x3f, 0xf0, 0x00,
                                  0x00, 0x00, 0x00, 0x00, 0x00, 0x00};
    mtd_tsdb_xor_enc_reset(&e);
    ck_assert_int_eq(mtd_tsdb_xor_enc_append(&e, 1000, 1.0), 0);
    b = mtd_tsdb_xor_enc_bytes(&e, &len);
    ck_assert_uint_eq(len, sizeof one);
    ck_assert_mem_eq(b, one, sizeof one);
    mtd_tsdb_xor_enc_reset(&e);
    ck_assert_int_eq(mtd_tsdb_xor_enc_append(&e, 1700000000000LL, 1.0), 0);
    mtd_tsdb_xor_enc_bytes(&e, &len);
    ck_assert_uint_eq(len, 17);
    /* a second sample whose XOR has exactly 8 meaningful bits, ending on a byte boundary:
     * 13 bytes so far (+1 empty) -> uvarint(1000) 2 bytes, '1' '1' 5+6 bits + 8 bits = 21
     * bits: not aligned, no extra byte */
    mtd_tsdb_xor_enc_reset(&e);
    ck_assert_int_eq(mtd_tsdb_xor_enc_append(&e, 1000, 1.0), 0);
    ck_assert_int_eq(mtd_tsdb_xor_enc_append(&e, 2000, 1.0), 0); /* '0' */
    b = mtd_tsdb_xor_enc_bytes(&e, &len);
    ck_assert_uint_eq(len, 15); /* 12 + 2 varint bytes + 1 bit */
    mtd_tsdb_xor_enc_deinit(&e);
}
END_TEST

START_TEST(test_same_bytes_as_head)
{
    /* The head's chunks (metricsd/chunkenc.h) claim the same layout: identical bytes mean a
     * head chunk can go into a block as-is. */
    struct mtd_tsdb_xor_enc e;
    struct mtd_xor_chunk h = {0};
    ck_assert_int_eq(mtd_tsdb_xor_enc_init(&e), 0);
    ck_assert_int_eq(mtd_xor_init(&h), 0);
    int64_t t = 1700000000000LL;
    double x = 3;
    for (int i = 0; i < 120; i++) {
        t += 15000 + (int64_t)(rnd() % 3) * 1000 - 1000;
        x += ((double)(rnd() % 100) - 50.0) / 7.0;
        double v = i == 50 ? from_bits(0x7ff0000000000002ULL) : x;
        ck_assert_int_eq(mtd_tsdb_xor_enc_append(&e, t, v), 0);
        ck_assert_int_eq(mtd_xor_append(&h, t, v), 0);
    }
    size_t len;
    const uint8_t *b = mtd_tsdb_xor_enc_bytes(&e, &len);
    /* same bits; ours may carry Prometheus' trailing empty byte (xor.h, "Length") */
    ck_assert_uint_eq(len - e.extra, mtd_xor_bytes(&h));
    ck_assert_mem_eq(b, h.b, mtd_xor_bytes(&h));
    mtd_xor_deinit(&h);
    mtd_tsdb_xor_enc_deinit(&e);
}
END_TEST

START_TEST(test_limit)
{
    struct mtd_tsdb_xor_enc e;
    ck_assert_int_eq(mtd_tsdb_xor_enc_init(&e), 0);
    for (int i = 0; i < 65535; i++)
        ck_assert_int_eq(mtd_tsdb_xor_enc_append(&e, i, 1.0), 0);
    ck_assert_int_eq(mtd_tsdb_xor_enc_append(&e, 70000, 1.0), OBS_ELIMIT);
    size_t len;
    const uint8_t *b = mtd_tsdb_xor_enc_bytes(&e, &len);
    ck_assert_uint_eq(mtd_tsdb_xor_count(b, len), 65535);
    mtd_tsdb_xor_enc_deinit(&e);
}
END_TEST

/* Iterate to the end; returns the final code (0 clean end, OBS_ECORRUPT). */
static int drain(const uint8_t *b, size_t len, size_t *got)
{
    struct mtd_tsdb_xor_iter it;
    int64_t t;
    double v;
    int rc;
    *got = 0;
    mtd_tsdb_xor_iter_init(&it, b, len);
    for (int guard = 0; guard < 70000; guard++) {
        rc = mtd_tsdb_xor_iter_next(&it, &t, &v);
        if (rc != 1)
            return rc;
        (*got)++;
    }
    return -100;
}

START_TEST(test_truncated_and_garbage)
{
    struct mtd_tsdb_xor_enc e;
    ck_assert_int_eq(mtd_tsdb_xor_enc_init(&e), 0);
    for (int i = 0; i < 120; i++)
        ck_assert_int_eq(mtd_tsdb_xor_enc_append(&e, 1000 * i + (i % 7), sin(i) * 1e3), 0);
    size_t len, got;
    const uint8_t *b = mtd_tsdb_xor_enc_bytes(&e, &len);
    ck_assert_int_eq(drain(b, len, &got), 0);
    ck_assert_uint_eq(got, 120);
    /* every truncation is detected: the header promises 120 samples */
    for (size_t l = 0; l < len; l++) {
        uint8_t *cp = malloc(l ? l : 1);
        memcpy(cp, b, l);
        ck_assert_int_eq(drain(cp, l, &got), OBS_ECORRUPT);
        ck_assert_uint_lt(got, 120);
        free(cp);
    }
    ck_assert_int_eq(drain(NULL, 0, &got), OBS_ECORRUPT);
    /* random bytes and single bit flips: never a crash or an endless loop */
    uint8_t buf[256];
    for (int k = 0; k < 20000; k++) {
        size_t l = rnd() % sizeof buf;
        for (size_t i = 0; i < l; i++)
            buf[i] = (uint8_t)rnd();
        int rc = drain(buf, l, &got);
        ck_assert(rc == 0 || rc == OBS_ECORRUPT);
    }
    uint8_t *cp = malloc(len);
    for (size_t bit = 16; bit < len * 8; bit++) {
        memcpy(cp, b, len);
        cp[bit / 8] ^= (uint8_t)(0x80 >> (bit % 8));
        int rc = drain(cp, len, &got);
        ck_assert(rc == 0 || rc == OBS_ECORRUPT);
    }
    free(cp);
    mtd_tsdb_xor_enc_deinit(&e);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("mtd_tsdb_xor");
    TCase *tc = tcase_create("roundtrip");
    tcase_add_test(tc, test_random_walk);
    tcase_add_test(tc, test_special_values);
    tcase_add_test(tc, test_timestamp_buckets);
    tcase_add_test(tc, test_negative_and_extreme_times);
    tcase_add_test(tc, test_limit);
    suite_add_tcase(s, tc);
    tc = tcase_create("format");
    tcase_add_test(tc, test_golden_bytes);
    tcase_add_test(tc, test_same_bytes_as_head);
    suite_add_tcase(s, tc);
    tc = tcase_create("corrupt");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_truncated_and_garbage);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    srunner_set_tap(sr, "/dev/stdout");
    srunner_run_all(sr, CK_SILENT);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
