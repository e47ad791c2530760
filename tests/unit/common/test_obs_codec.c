/*
 * test_obs_codec.c -- snappy, gzip/zlib/deflate and lz4 block codecs: round trips, known
 * encodings produced independently (hand-built snappy blocks, zlib's own compress()), the
 * size cap (OBS_ELIMIT, including a compression bomb), malformed and truncated input
 * (OBS_EINVAL), and that out keeps its earlier content on every error.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "codec/obs_codec.h"
#include "core/obs_err.h"

static uint8_t *sample(size_t n)
{
    /* Compressible but not trivial: text-ish with a pseudo-random sprinkle. */
    uint8_t *p = malloc(n);
    uint32_t s = 7;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        p[i] = (i % 97 < 80) ? (uint8_t)("metric_name{job=\"x\"} "[i % 22]) : (uint8_t)(s >> 24);
    }
    return p;
}

/* out must still hold exactly "keep" after a failed decode. */
static void assert_kept(struct obs_sbuf *b)
{
    ck_assert_uint_eq(b->len, 4);
    ck_assert_int_eq(memcmp(b->p, "keep", 4), 0);
    ck_assert_int_eq(b->p[4], '\0');
}

/* --- snappy ------------------------------------------------------------------------------- */

START_TEST(snappy_roundtrip)
{
    size_t sizes[] = {0, 1, 100, 65536, 1000003};
    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        uint8_t *in = sample(sizes[k]);
        struct obs_sbuf c, d;
        obs_sbuf_init(&c);
        obs_sbuf_init(&d);
        ck_assert_int_eq(obs_snappy_encode(in, sizes[k], &c), 0);
        obs_sbuf_puts(&d, "pre");
        ck_assert_int_eq(obs_snappy_decode((uint8_t *)c.p, c.len, sizes[k], &d), 0);
        ck_assert_uint_eq(d.len, sizes[k] + 3);
        ck_assert_int_eq(memcmp(d.p, "pre", 3), 0);
        ck_assert_int_eq(memcmp(d.p + 3, in, sizes[k]), 0);
        obs_sbuf_deinit(&c);
        obs_sbuf_deinit(&d);
        free(in);
    }
}
END_TEST

START_TEST(snappy_known_block)
{
    /* Built by hand from the format description: varint length 11; literal tag
     * (5-1)<<2 = 0x10 + "hello"; copy with 1-byte offset: tag 0b01 | (6-4)<<2 = 0x09, offset
     * 5 -> copies 6 bytes starting 5 back ("helloh", overlapping). */
    const uint8_t blk[] = {11, 0x10, 'h', 'e', 'l', 'l', 'o', 0x09, 5};
    struct obs_sbuf d;
    obs_sbuf_init(&d);
    ck_assert_int_eq(obs_snappy_decode(blk, sizeof(blk), 0, &d), 0);
    ck_assert_str_eq(d.p, "hellohelloh");
    obs_sbuf_deinit(&d);
}
END_TEST

START_TEST(snappy_limit)
{
    uint8_t *in = sample(100000);
    struct obs_sbuf c, d;
    obs_sbuf_init(&c);
    obs_sbuf_init(&d);
    ck_assert_int_eq(obs_snappy_encode(in, 100000, &c), 0);
    obs_sbuf_puts(&d, "keep");
    ck_assert_int_eq(obs_snappy_decode((uint8_t *)c.p, c.len, 99999, &d), OBS_ELIMIT);
    assert_kept(&d);
    ck_assert_int_eq(obs_snappy_decode((uint8_t *)c.p, c.len, 100000, &d), 0);
    /* Highly compressible input (zeros) still decodes: the ratio check is not too tight. */
    uint8_t *z = calloc(1, 4 << 20);
    obs_sbuf_reset(&c);
    obs_sbuf_reset(&d);
    ck_assert_int_eq(obs_snappy_encode(z, 4 << 20, &c), 0);
    ck_assert_int_eq(obs_snappy_decode((uint8_t *)c.p, c.len, 4 << 20, &d), 0);
    ck_assert_uint_eq(d.len, 4 << 20);
    free(z);
    obs_sbuf_deinit(&c);
    obs_sbuf_deinit(&d);
    free(in);
}
END_TEST

START_TEST(snappy_bad)
{
    struct obs_sbuf d;
    obs_sbuf_init(&d);
    obs_sbuf_puts(&d, "keep");
    const uint8_t garbage[] = "this is not snappy at all";
    ck_assert_int_eq(obs_snappy_decode(garbage, sizeof(garbage) - 1, 1 << 20, &d), OBS_EINVAL);
    assert_kept(&d);
    /* Header claims 2 GiB from 6 bytes: refused before allocating. */
    const uint8_t huge[] = {0x80, 0x80, 0x80, 0x80, 0x08, 0x00};
    ck_assert_int_eq(obs_snappy_decode(huge, sizeof(huge), 0, &d), OBS_EINVAL);
    ck_assert_int_eq(obs_snappy_decode(huge, sizeof(huge), 1 << 20, &d), OBS_ELIMIT);
    /* Truncated block: stated 11 bytes, literal cut short. */
    const uint8_t cut[] = {11, 0x10, 'h', 'e'};
    ck_assert_int_eq(obs_snappy_decode(cut, sizeof(cut), 0, &d), OBS_EINVAL);
    /* Copy pointing before the start. */
    const uint8_t back[] = {6, 0x00, 'a', 0x09, 9};
    ck_assert_int_eq(obs_snappy_decode(back, sizeof(back), 0, &d), OBS_EINVAL);
    ck_assert_int_eq(obs_snappy_decode(NULL, 0, 0, &d), OBS_EINVAL);
    assert_kept(&d);
    obs_sbuf_deinit(&d);
}
END_TEST

/* --- gzip / zlib / deflate ---------------------------------------------------------------- */

START_TEST(gzip_roundtrip)
{
    size_t sizes[] = {0, 1, 1000, 200000, 3000017};
    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        uint8_t *in = sample(sizes[k]);
        struct obs_sbuf c, d;
        obs_sbuf_init(&c);
        obs_sbuf_init(&d);
        ck_assert_int_eq(obs_gzip_encode(in, sizes[k], &c), 0);
        ck_assert_uint_ge(c.len, 18);
        ck_assert_uint_eq((uint8_t)c.p[0], 0x1f); /* gzip magic */
        ck_assert_uint_eq((uint8_t)c.p[1], 0x8b);
        ck_assert_int_eq(obs_gzip_decode((uint8_t *)c.p, c.len, sizes[k], &d), 0);
        ck_assert_uint_eq(d.len, sizes[k]);
        if (sizes[k])
            ck_assert_int_eq(memcmp(d.p, in, sizes[k]), 0);
        obs_sbuf_deinit(&c);
        obs_sbuf_deinit(&d);
        free(in);
    }
}
END_TEST

START_TEST(gzip_accepts_zlib_and_raw)
{
    const char *text = "deflate, the HTTP way (zlib wrapper), and raw deflate too";
    size_t tl = strlen(text);
    /* zlib format, from zlib's own compress(). */
    uLongf zl = compressBound(tl);
    uint8_t *z = malloc(zl);
    ck_assert_int_eq(compress(z, &zl, (const Bytef *)text, tl), Z_OK);
    struct obs_sbuf d;
    obs_sbuf_init(&d);
    ck_assert_int_eq(obs_gzip_decode(z, zl, 0, &d), 0);
    ck_assert_str_eq(d.p, text);
    /* Raw deflate (windowBits -15). */
    z_stream s;
    memset(&s, 0, sizeof(s));
    ck_assert_int_eq(deflateInit2(&s, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY), Z_OK);
    uint8_t raw[256];
    s.next_in = (Bytef *)text;
    s.avail_in = (uInt)tl;
    s.next_out = raw;
    s.avail_out = sizeof(raw);
    ck_assert_int_eq(deflate(&s, Z_FINISH), Z_STREAM_END);
    size_t rl = sizeof(raw) - s.avail_out;
    deflateEnd(&s);
    obs_sbuf_reset(&d);
    ck_assert_int_eq(obs_gzip_decode(raw, rl, 0, &d), 0);
    ck_assert_str_eq(d.p, text);
    obs_sbuf_deinit(&d);
    free(z);
}
END_TEST

START_TEST(gzip_multi_member)
{
    struct obs_sbuf c, d;
    obs_sbuf_init(&c);
    obs_sbuf_init(&d);
    ck_assert_int_eq(obs_gzip_encode((const uint8_t *)"first,", 6, &c), 0);
    ck_assert_int_eq(obs_gzip_encode((const uint8_t *)"second", 6, &c), 0);
    ck_assert_int_eq(obs_gzip_decode((uint8_t *)c.p, c.len, 0, &d), 0);
    ck_assert_str_eq(d.p, "first,second");
    obs_sbuf_deinit(&c);
    obs_sbuf_deinit(&d);
}
END_TEST

START_TEST(gzip_limit_bomb)
{
    /* 64 MiB of zeros compresses to ~64 KiB; a 1 MiB cap must stop it early. */
    size_t n = 64u << 20;
    uint8_t *z = calloc(1, n);
    struct obs_sbuf c, d;
    obs_sbuf_init(&c);
    obs_sbuf_init(&d);
    ck_assert_int_eq(obs_gzip_encode(z, n, &c), 0);
    free(z);
    ck_assert_uint_lt(c.len, 1u << 20);
    obs_sbuf_puts(&d, "keep");
    ck_assert_int_eq(obs_gzip_decode((uint8_t *)c.p, c.len, 1u << 20, &d), OBS_ELIMIT);
    assert_kept(&d);
    ck_assert_uint_lt(d.cap, 4u << 20); /* it stopped, rather than inflating it all */
    obs_sbuf_deinit(&c);
    obs_sbuf_deinit(&d);
}
END_TEST

START_TEST(gzip_bad)
{
    struct obs_sbuf c, d;
    obs_sbuf_init(&c);
    obs_sbuf_init(&d);
    obs_sbuf_puts(&d, "keep");
    const uint8_t garbage[] = "not compressed in any way";
    ck_assert_int_eq(obs_gzip_decode(garbage, sizeof(garbage) - 1, 0, &d), OBS_EINVAL);
    assert_kept(&d);
    ck_assert_int_eq(obs_gzip_decode(NULL, 0, 0, &d), OBS_EINVAL);
    uint8_t *in = sample(50000);
    ck_assert_int_eq(obs_gzip_encode(in, 50000, &c), 0);
    /* Truncated stream. */
    ck_assert_int_eq(obs_gzip_decode((uint8_t *)c.p, c.len / 2, 0, &d), OBS_EINVAL);
    assert_kept(&d);
    /* Missing trailer (CRC + size). */
    ck_assert_int_eq(obs_gzip_decode((uint8_t *)c.p, c.len - 4, 0, &d), OBS_EINVAL);
    assert_kept(&d);
    /* Corrupted CRC in the trailer. */
    c.p[c.len - 6] ^= 0x55;
    ck_assert_int_eq(obs_gzip_decode((uint8_t *)c.p, c.len, 0, &d), OBS_EINVAL);
    c.p[c.len - 6] ^= 0x55;
    /* Trailing garbage after a complete member. */
    obs_sbuf_puts(&c, "junk");
    ck_assert_int_eq(obs_gzip_decode((uint8_t *)c.p, c.len, 0, &d), OBS_EINVAL);
    assert_kept(&d);
    obs_sbuf_deinit(&c);
    obs_sbuf_deinit(&d);
    free(in);
}
END_TEST

/* --- lz4 ---------------------------------------------------------------------------------- */

START_TEST(lz4_roundtrip)
{
    size_t sizes[] = {0, 1, 4096, 1000003};
    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        uint8_t *in = sample(sizes[k]);
        struct obs_sbuf c, d;
        obs_sbuf_init(&c);
        obs_sbuf_init(&d);
        obs_sbuf_puts(&c, "hdr");
        ck_assert_int_eq(obs_lz4_compress(in, sizes[k], &c), 0);
        ck_assert_uint_le(c.len - 3, obs_lz4_bound(sizes[k]));
        obs_sbuf_puts(&d, "x");
        ck_assert_int_eq(obs_lz4_decompress((uint8_t *)c.p + 3, c.len - 3, sizes[k], &d), 0);
        ck_assert_uint_eq(d.len, sizes[k] + 1);
        ck_assert_int_eq(memcmp(d.p + 1, in, sizes[k]), 0);
        obs_sbuf_deinit(&c);
        obs_sbuf_deinit(&d);
        free(in);
    }
}
END_TEST

START_TEST(lz4_bad)
{
    uint8_t *in = sample(10000);
    struct obs_sbuf c, d;
    obs_sbuf_init(&c);
    obs_sbuf_init(&d);
    ck_assert_int_eq(obs_lz4_compress(in, 10000, &c), 0);
    obs_sbuf_puts(&d, "keep");
    /* Wrong stated size either way. */
    ck_assert_int_eq(obs_lz4_decompress((uint8_t *)c.p, c.len, 9999, &d), OBS_EINVAL);
    assert_kept(&d);
    ck_assert_int_eq(obs_lz4_decompress((uint8_t *)c.p, c.len, 10001, &d), OBS_EINVAL);
    assert_kept(&d);
    /* Truncated block. */
    ck_assert_int_eq(obs_lz4_decompress((uint8_t *)c.p, c.len - 10, 10000, &d), OBS_EINVAL);
    assert_kept(&d);
    /* Absurd size claim: refused without allocating 1 GiB. */
    ck_assert_int_eq(obs_lz4_decompress((uint8_t *)c.p, 10, 1u << 30, &d), OBS_EINVAL);
    assert_kept(&d);
    const uint8_t garbage[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00};
    ck_assert_int_eq(obs_lz4_decompress(garbage, sizeof(garbage), 1000, &d), OBS_EINVAL);
    ck_assert_int_eq(obs_lz4_decompress(NULL, 0, 0, &d), OBS_EINVAL);
    assert_kept(&d);
    obs_sbuf_deinit(&c);
    obs_sbuf_deinit(&d);
    free(in);
}
END_TEST

static Suite *codec_suite(void)
{
    Suite *s = suite_create("obs_codec");
    struct {
        const char *name;
        const TTest *t;
    } cases[] = {
        {"snappy_roundtrip", snappy_roundtrip},
        {"snappy_known_block", snappy_known_block},
        {"snappy_limit", snappy_limit},
        {"snappy_bad", snappy_bad},
        {"gzip_roundtrip", gzip_roundtrip},
        {"gzip_accepts_zlib_and_raw", gzip_accepts_zlib_and_raw},
        {"gzip_multi_member", gzip_multi_member},
        {"gzip_limit_bomb", gzip_limit_bomb},
        {"gzip_bad", gzip_bad},
        {"lz4_roundtrip", lz4_roundtrip},
        {"lz4_bad", lz4_bad},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        TCase *tc = tcase_create(cases[i].name);
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, cases[i].t);
        suite_add_tcase(s, tc);
    }
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(codec_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
