/*
 * test_mtd_chunkenc.c -- XOR chunks: exact bytes for small known inputs (Prometheus' layout),
 * round trips over regular, jittery, huge-jump and negative timestamps and awkward values
 * (NaN payloads, stale markers, +-Inf, -0), and truncated input reported as corrupt.
 */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/obs_err.h"
#include "metricsd/chunkenc.h"

START_TEST(test_known_bytes)
{
    struct mtd_xor_chunk c;
    ck_assert_int_eq(mtd_xor_init(&c), 0);
    ck_assert_int_eq(mtd_xor_append(&c, 1, 1.0), 0);
    /* count=1, varint(zigzag(1))=0x02, then 1.0's bits */
    static const uint8_t want1[] = {0x00, 0x01, 0x02, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0};
    ck_assert_uint_eq(mtd_xor_bytes(&c), sizeof want1);
    ck_assert_mem_eq(c.b, want1, sizeof want1);
    ck_assert_int_eq(mtd_xor_append(&c, 2, 1.0), 0);
    /* count=2, uvarint(1)=0x01, then one '0' bit (same value) */
    static const uint8_t want2[] = {0x00, 0x02, 0x02, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0, 0x01, 0x00};
    ck_assert_uint_eq(mtd_xor_bytes(&c), sizeof want2);
    ck_assert_mem_eq(c.b, want2, sizeof want2);
    ck_assert_int_eq(mtd_xor_append(&c, 3, 1.0), 0);
    /* dod 0 -> '0', value same -> '0': two more zero bits in the same byte */
    ck_assert_uint_eq(mtd_xor_bytes(&c), sizeof want2);
    ck_assert_int_eq(c.b[1], 3);
    mtd_xor_deinit(&c);
}
END_TEST

static void roundtrip(const int64_t *ts, const double *vs, size_t n)
{
    struct mtd_xor_chunk c;
    ck_assert_int_eq(mtd_xor_init(&c), 0);
    for (size_t i = 0; i < n; i++)
        ck_assert_int_eq(mtd_xor_append(&c, ts[i], vs[i]), 0);
    struct mtd_xor_iter it;
    mtd_xor_iter_init(&it, c.b, mtd_xor_bytes(&c));
    ck_assert_uint_eq(it.n, n);
    for (size_t i = 0; i < n; i++) {
        ck_assert_int_eq(mtd_xor_iter_next(&it), 1);
        ck_assert_int_eq(it.t, ts[i]);
        ck_assert_msg(memcmp(&it.v, &vs[i], 8) == 0, "value %zu differs", i);
    }
    ck_assert_int_eq(mtd_xor_iter_next(&it), 0);
    /* every truncation either stops early or reports corruption, never reads past */
    for (size_t cut = 0; cut + 1 < mtd_xor_bytes(&c) && n > 1; cut += 7) {
        mtd_xor_iter_init(&it, c.b, cut);
        size_t k = 0;
        int rc;
        while ((rc = mtd_xor_iter_next(&it)) == 1)
            k++;
        ck_assert(rc == OBS_ECORRUPT || k <= n);
    }
    mtd_xor_deinit(&c);
}

START_TEST(test_roundtrip)
{
    enum { N = 2000 };
    static int64_t ts[N];
    static double vs[N];
    uint64_t stale_bits = 0x7ff0000000000002ULL, nan2 = 0x7ff8000000000123ULL;
    unsigned seed = 42;
    int64_t t = -5000000;
    for (size_t i = 0; i < N; i++) {
        switch (i % 7) {
        case 0: t += 15000; break;
        case 1: t += 15000 + (int64_t)(rand_r(&seed) % 200) - 100; break;
        case 2: t += 1; break;
        case 3: t += 1LL << 40; break;               /* needs the 64-bit dod */
        case 4: t += 100000 + rand_r(&seed) % 500000; break; /* 17/20-bit dods */
        default: t += 15000; break;
        }
        ts[i] = t;
        switch (i % 11) {
        case 0: vs[i] = (double)i; break;
        case 1: vs[i] = vs[i - 1]; break;
        case 2: memcpy(&vs[i], &stale_bits, 8); break;
        case 3: vs[i] = INFINITY; break;
        case 4: vs[i] = -INFINITY; break;
        case 5: vs[i] = -0.0; break;
        case 6: memcpy(&vs[i], &nan2, 8); break;
        case 7: vs[i] = 1e-300 * rand_r(&seed); break;
        case 8: vs[i] = 123456.789; break;
        default: vs[i] = rand_r(&seed) / 7.0; break;
        }
    }
    roundtrip(ts, vs, N);
    roundtrip(ts, vs, 1);
    roundtrip(ts, vs, 2);
    roundtrip(ts, vs, 3);
    /* a regular scrape series stays small: ~1-2 bytes per sample */
    struct mtd_xor_chunk c;
    mtd_xor_init(&c);
    for (int i = 0; i < 120; i++)
        mtd_xor_append(&c, 1700000000000LL + i * 15000, 1.0);
    ck_assert_uint_lt(mtd_xor_bytes(&c), 60);
    mtd_xor_deinit(&c);
}
END_TEST

START_TEST(test_corrupt)
{
    static const uint8_t junk[] = {0xff, 0xff, 0x80, 0x80, 0x80};
    struct mtd_xor_iter it;
    mtd_xor_iter_init(&it, junk, sizeof junk);
    ck_assert_int_eq(mtd_xor_iter_next(&it), OBS_ECORRUPT);
    mtd_xor_iter_init(&it, junk, 1);
    ck_assert_int_eq(mtd_xor_iter_next(&it), OBS_ECORRUPT);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("mtd_chunkenc");
    TCase *tc = tcase_create("xor");
    tcase_add_test(tc, test_known_bytes);
    tcase_add_test(tc, test_roundtrip);
    tcase_add_test(tc, test_corrupt);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_set_tap(sr, "/dev/stdout");
    srunner_run_all(sr, CK_SILENT);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
