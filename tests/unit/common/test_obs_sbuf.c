/*
 * test_obs_sbuf.c -- obs_sbuf: appends and growth, printf past the stack buffer, take,
 * JSON string escaping, Prometheus float formatting (Go's strconv.FormatFloat(v,'f',-1,64)
 * plus NaN/+Inf/-Inf), and LEB128/zigzag varints.
 */
#include <check.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/obs_err.h"
#include "core/obs_mem.h"
#include "core/obs_sbuf.h"

START_TEST(append_grow)
{
    struct obs_sbuf b;
    obs_sbuf_init(&b);
    ck_assert_uint_eq(b.len, 0);
    for (int i = 0; i < 10000; i++)
        ck_assert_int_eq(obs_sbuf_putc(&b, (char)('a' + i % 26)), 0);
    ck_assert_uint_eq(b.len, 10000);
    ck_assert_uint_eq(strlen(b.p), 10000); /* NUL-terminated */
    ck_assert_int_eq(b.p[9999], 'a' + 9999 % 26);
    obs_sbuf_reset(&b);
    ck_assert_uint_eq(b.len, 0);
    ck_assert_str_eq(b.p, "");
    ck_assert_int_eq(obs_sbuf_append(&b, "a\0b", 3), 0); /* binary-safe */
    ck_assert_uint_eq(b.len, 3);
    ck_assert_int_eq(b.p[2], 'b');
    ck_assert_int_eq(obs_sbuf_append(&b, NULL, 0), 0);
    ck_assert_int_eq(b.oom, 0);
    obs_sbuf_deinit(&b);
    ck_assert_ptr_null(b.p);
}
END_TEST

START_TEST(printf_long)
{
    struct obs_sbuf b;
    obs_sbuf_init(&b);
    ck_assert_int_eq(obs_sbuf_printf(&b, "%d-%s", 42, "x"), 0);
    ck_assert_str_eq(b.p, "42-x");
    char big[1000];
    memset(big, 'q', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    ck_assert_int_eq(obs_sbuf_printf(&b, "[%s]", big), 0); /* > internal 256-byte buffer */
    ck_assert_uint_eq(b.len, 4 + 1001);
    ck_assert_uint_eq(strlen(b.p), b.len);
    ck_assert_int_eq(b.p[b.len - 1], ']');
    obs_sbuf_deinit(&b);
}
END_TEST

START_TEST(take)
{
    struct obs_sbuf b;
    obs_sbuf_init(&b);
    obs_sbuf_puts(&b, "owned");
    size_t n = 0;
    char *p = obs_sbuf_take(&b, &n);
    ck_assert_str_eq(p, "owned");
    ck_assert_uint_eq(n, 5);
    ck_assert_ptr_null(b.p);
    ck_assert_uint_eq(b.len, 0);
    obs_free(p);
    p = obs_sbuf_take(&b, &n); /* empty buffer gives an empty string, not NULL */
    ck_assert_ptr_nonnull(p);
    ck_assert_str_eq(p, "");
    ck_assert_uint_eq(n, 0);
    obs_free(p);
}
END_TEST

static void json_is(const char *in, size_t n, const char *want)
{
    struct obs_sbuf b;
    obs_sbuf_init(&b);
    ck_assert_int_eq(obs_sbuf_json_str(&b, in, n), 0);
    ck_assert_str_eq(b.p, want);
    obs_sbuf_deinit(&b);
}

START_TEST(json_escape)
{
    json_is("", 0, "\"\"");
    json_is("plain", 5, "\"plain\"");
    json_is("a\"b\\c", 5, "\"a\\\"b\\\\c\"");
    json_is("l1\nl2\r\tx", 8, "\"l1\\nl2\\r\\tx\"");
    json_is("\x01\x1f", 2, "\"\\u0001\\u001f\"");
    json_is("a\0b", 3, "\"a\\u0000b\""); /* embedded NUL: length-based, escaped */
    json_is("\x7f", 1, "\"\x7f\"");      /* DEL is legal in JSON strings */
    json_is("h\xc3\xa9llo \xe2\x82\xac", 10, "\"h\xc3\xa9llo \xe2\x82\xac\""); /* UTF-8 kept */
    json_is("/path", 5, "\"/path\"");
    /* Appends after existing content. */
    struct obs_sbuf b;
    obs_sbuf_init(&b);
    obs_sbuf_puts(&b, "{\"k\":");
    obs_sbuf_json_str(&b, "v", 1);
    obs_sbuf_putc(&b, '}');
    ck_assert_str_eq(b.p, "{\"k\":\"v\"}");
    obs_sbuf_deinit(&b);
}
END_TEST

static void float_is(double v, const char *want)
{
    char out[512];
    int n = obs_fmt_float(out, sizeof(out), v);
    ck_assert_msg(strcmp(out, want) == 0, "%.17g -> '%s', want '%s'", v, out, want);
    ck_assert_int_eq(n, (int)strlen(want));
    struct obs_sbuf b;
    obs_sbuf_init(&b);
    ck_assert_int_eq(obs_sbuf_prom_float(&b, v), 0);
    ck_assert_str_eq(b.p, want);
    obs_sbuf_deinit(&b);
}

START_TEST(prom_float)
{
    float_is(1, "1");
    float_is(0.1, "0.1");
    float_is(0, "0");
    float_is(-2.5, "-2.5");
    float_is(1e21, "1000000000000000000000");
    float_is(1.5e-7, "0.00000015");
    float_is(123456789.125, "123456789.125");
    float_is(1e6, "1000000");
    float_is(0.3, "0.3");
    float_is(1.0 / 3, "0.3333333333333333");
    float_is(9007199254740993.0, "9007199254740992");
    float_is(NAN, "NaN");
    float_is(INFINITY, "+Inf");
    float_is(-INFINITY, "-Inf");
}
END_TEST

START_TEST(prom_float_roundtrip)
{
    /* Every output parses back to the same double, and never has an exponent. */
    double vals[] = {DBL_MAX, DBL_MIN, 5e-324, -1e300, 1e-300, 6.02214076e23, 299792458,
                     0.000001, 1e-5, 123.456, 1e15, 1e16, 1e17, 4.35, 2.675};
    uint64_t s = 88172645463325252ull;
    char out[512];
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]) + 2000; i++) {
        double v;
        if (i < sizeof(vals) / sizeof(vals[0])) {
            v = vals[i];
        } else {
            s ^= s << 13, s ^= s >> 7, s ^= s << 17; /* xorshift64 */
            uint64_t bits = s & ~(0x7ffull << 52);
            bits |= (uint64_t)(1023 - 40 + (s >> 58)) << 52; /* moderate exponents */
            memcpy(&v, &bits, sizeof(v));
        }
        obs_fmt_float(out, sizeof(out), v);
        ck_assert_msg(strchr(out, 'e') == NULL, "%.17g -> %s", v, out);
        ck_assert_msg(strtod(out, NULL) == v, "%.17g -> %s", v, out);
    }
}
END_TEST

START_TEST(varints)
{
    struct obs_sbuf b;
    obs_sbuf_init(&b);
    ck_assert_int_eq(obs_sbuf_uvarint(&b, 300), 0);
    ck_assert_uint_eq(b.len, 2);
    ck_assert_uint_eq((uint8_t)b.p[0], 0xac);
    ck_assert_uint_eq((uint8_t)b.p[1], 0x02);
    obs_sbuf_reset(&b);
    /* zigzag: 0->0, -1->1, 1->2, -2->3 */
    obs_sbuf_varint(&b, 0);
    obs_sbuf_varint(&b, -1);
    obs_sbuf_varint(&b, 1);
    obs_sbuf_varint(&b, -2);
    ck_assert_uint_eq(b.len, 4);
    ck_assert_int_eq(memcmp(b.p, "\x00\x01\x02\x03", 4), 0);
    obs_sbuf_reset(&b);

    uint64_t u[] = {0, 1, 127, 128, 16383, 16384, UINT32_MAX, (1ull << 63) - 1, UINT64_MAX};
    int64_t sv[] = {0, 1, -1, 63, -64, 64, INT32_MIN, INT64_MAX, INT64_MIN};
    for (size_t i = 0; i < 9; i++) {
        obs_sbuf_uvarint(&b, u[i]);
        obs_sbuf_varint(&b, sv[i]);
    }
    const uint8_t *p = (const uint8_t *)b.p, *end = p + b.len;
    for (size_t i = 0; i < 9; i++) {
        uint64_t gu;
        int64_t gs;
        size_t n = obs_uvarint_decode(p, end, &gu);
        ck_assert_uint_gt(n, 0);
        ck_assert_uint_eq(gu, u[i]);
        p += n;
        n = obs_varint_decode(p, end, &gs);
        ck_assert_uint_gt(n, 0);
        ck_assert_int_eq(gs, sv[i]);
        p += n;
    }
    ck_assert_ptr_eq(p, end);
    obs_sbuf_reset(&b);
    obs_sbuf_uvarint(&b, UINT64_MAX);
    ck_assert_uint_eq(b.len, 10);
    obs_sbuf_deinit(&b);
}
END_TEST

START_TEST(varint_truncated)
{
    uint64_t v = 12345;
    const uint8_t cut[] = {0xac}; /* continuation bit, nothing follows */
    ck_assert_uint_eq(obs_uvarint_decode(cut, cut + 1, &v), 0);
    ck_assert_uint_eq(obs_uvarint_decode(cut, cut, &v), 0);
    const uint8_t eleven[] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01};
    ck_assert_uint_eq(obs_uvarint_decode(eleven, eleven + sizeof(eleven), &v), 0);
    int64_t s;
    ck_assert_uint_eq(obs_varint_decode(cut, cut + 1, &s), 0);
}
END_TEST

START_TEST(varint_overflow)
{
    /* Ten bytes whose last carries more than the one remaining bit overflow 64 bits: Go's
     * binary.Uvarint (and protobuf) reject this. */
    uint64_t v;
    const uint8_t over[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f};
    ck_assert_uint_eq(obs_uvarint_decode(over, over + sizeof(over), &v), 0);
}
END_TEST

static Suite *sbuf_suite(void)
{
    Suite *s = suite_create("obs_sbuf");
    struct {
        const char *name;
        const TTest *t;
    } cases[] = {
        {"append_grow", append_grow},
        {"printf_long", printf_long},
        {"take", take},
        {"json_escape", json_escape},
        {"prom_float", prom_float},
        {"prom_float_roundtrip", prom_float_roundtrip},
        {"varints", varints},
        {"varint_truncated", varint_truncated},
        {"varint_overflow", varint_overflow},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        TCase *tc = tcase_create(cases[i].name);
        tcase_add_test(tc, cases[i].t);
        suite_add_tcase(s, tc);
    }
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(sbuf_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
