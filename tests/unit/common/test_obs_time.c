/*
 * test_obs_time.c -- obs_time: clocks, Prometheus durations (parse and format), API
 * timestamps (RFC3339 with fraction and offset, float Unix seconds) in ms and ns.
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/obs_err.h"
#include "core/obs_time.h"

#define T0_S 1795341600LL /* 2026-11-22T10:00:00Z */

START_TEST(clocks)
{
    int64_t ms = obs_now_ms(), ns = obs_now_ns();
    ck_assert_int_gt(ms, 1700000000000LL);
    ck_assert_int_lt(ns / 1000000 - ms, 1000);
    int64_t m1 = obs_mono_ns(), m2 = obs_mono_ns();
    ck_assert_int_ge(m2, m1);
}
END_TEST

static void dur_is(const char *s, int64_t want)
{
    int64_t got = -12345;
    ck_assert_msg(obs_duration_parse_ms(s, &got) == 0, "'%s' rejected", s);
    ck_assert_msg(got == want, "'%s' -> %lld, want %lld", s, (long long)got, (long long)want);
}

static void dur_bad(const char *s)
{
    int64_t got = 0;
    ck_assert_msg(obs_duration_parse_ms(s, &got) == OBS_EINVAL, "'%s' accepted (%lld)", s,
                  (long long)got);
}

START_TEST(duration_parse)
{
    dur_is("1h30m", 5400000);
    dur_is("250ms", 250);
    dur_is("1.5", 1500);
    dur_is("30", 30000);
    dur_is("0", 0);
    dur_is("0s", 0);
    dur_is("90s", 90000);
    dur_is("5m", 300000);
    dur_is("2d", 2 * 86400000LL);
    dur_is("1w", 7 * 86400000LL);
    dur_is("1y", 365 * 86400000LL);
    dur_is("1h1m1s1ms", 3661001);
}
END_TEST

START_TEST(duration_bad)
{
    dur_bad("");
    dur_bad("abc");
    dur_bad("1x");
    dur_bad("h");
    dur_bad("1.5h");
    dur_bad("-1h");
    dur_bad("5m3");
    dur_bad("1h 30m");
    dur_bad("inf");
    dur_bad("NaN");
    ck_assert_int_eq(obs_duration_parse_ms(NULL, &(int64_t){0}), OBS_EINVAL);
}
END_TEST

START_TEST(duration_order)
{
    /* Prometheus' model.ParseDuration requires units in decreasing order, each at most once. */
    dur_bad("1m1h");
    dur_bad("1s1s");
}
END_TEST

static void fmt_is(int64_t ms, const char *want)
{
    char out[64];
    int n = obs_duration_format(out, sizeof(out), ms);
    ck_assert_str_eq(out, want);
    ck_assert_int_eq(n, (int)strlen(want));
}

START_TEST(duration_format)
{
    fmt_is(0, "0s");
    fmt_is(5400000, "1h30m");
    fmt_is(90000, "1m30s");
    fmt_is(250, "250ms");
    fmt_is(7200000, "2h");
    fmt_is(86400000, "1d");
    fmt_is(3661001, "1h1m1s1ms");
    /* Round trip. */
    int64_t back;
    char out[64];
    obs_duration_format(out, sizeof(out), 123456789);
    ck_assert_int_eq(obs_duration_parse_ms(out, &back), 0);
    ck_assert_int_eq(back, 123456789);
}
END_TEST

static void ts_is(const char *s, int64_t want_ms)
{
    int64_t got = -1;
    ck_assert_msg(obs_time_parse_ms(s, &got) == 0, "'%s' rejected", s);
    ck_assert_msg(got == want_ms, "'%s' -> %lld, want %lld", s, (long long)got,
                  (long long)want_ms);
}

static void ts_bad(const char *s)
{
    int64_t got = 0;
    ck_assert_msg(obs_time_parse_ms(s, &got) == OBS_EINVAL, "'%s' accepted (%lld)", s,
                  (long long)got);
}

START_TEST(rfc3339)
{
    ts_is("2026-11-22T10:00:00Z", T0_S * 1000);
    ts_is("2026-11-22T10:00:00.123Z", T0_S * 1000 + 123);
    ts_is("2026-11-22T10:00:00.5Z", T0_S * 1000 + 500);
    ts_is("2026-11-22T10:00:00.123456789Z", T0_S * 1000 + 123);
    ts_is("2026-11-22T12:00:00+02:00", T0_S * 1000);
    ts_is("2026-11-22T08:30:00.250-01:30", T0_S * 1000 + 250);
    ts_is("1970-01-01T00:00:00Z", 0);
}
END_TEST

START_TEST(rfc3339_bad)
{
    ts_bad("");
    ts_bad("yesterday");
    ts_bad("2026-11-22T10:00:00");      /* no zone */
    ts_bad("2026-13-01T00:00:00Z");     /* month 13 */
    ts_bad("2026-11-22T25:00:00Z");     /* hour 25 */
    ts_bad("2026-11-22T10:00:00.Z");    /* empty fraction */
    ts_bad("2026-11-22T10:00:00Zjunk"); /* trailing */
    ts_bad("2026-11-22");
}
END_TEST

START_TEST(float_seconds)
{
    ts_is("1700000000", 1700000000000LL);
    ts_is("1700000000.123", 1700000000123LL);
    ts_is("1700000000.5", 1700000000500LL);
    ts_is("0", 0);
    ts_is("-1.5", -1500);
    ts_bad("1700000000.123abc");
    ts_bad("inf");
    ts_bad("nan");
}
END_TEST

START_TEST(parse_ns)
{
    int64_t ns;
    ck_assert_int_eq(obs_time_parse_ns("1700000000123456789", &ns), 0);
    ck_assert_int_eq(ns, 1700000000123456789LL);
    ck_assert_int_eq(obs_time_parse_ns("1700000000", &ns), 0); /* seconds */
    ck_assert_int_eq(ns, 1700000000000000000LL);
    ck_assert_int_eq(obs_time_parse_ns("1.5", &ns), 0);
    ck_assert_int_eq(ns, 1500000000LL);
    ck_assert_int_eq(obs_time_parse_ns("2026-11-22T10:00:00.000000001Z", &ns), 0);
    ck_assert_int_eq(ns, T0_S * 1000000000LL + 1);
    ck_assert_int_eq(obs_time_parse_ns("nope", &ns), OBS_EINVAL);
    ck_assert_int_eq(obs_time_parse_ns("", &ns), OBS_EINVAL);
}
END_TEST

START_TEST(format_rfc3339)
{
    char out[64];
    int n = obs_time_format_rfc3339(out, sizeof(out), 1700000000123LL);
    ck_assert_str_eq(out, "2023-11-14T22:13:20.123Z");
    ck_assert_int_eq(n, 24);
    obs_time_format_rfc3339(out, sizeof(out), T0_S * 1000);
    ck_assert_str_eq(out, "2026-11-22T10:00:00.000Z");
    int64_t back;
    ck_assert_int_eq(obs_time_parse_ms(out, &back), 0);
    ck_assert_int_eq(back, T0_S * 1000);
}
END_TEST

static Suite *time_suite(void)
{
    Suite *s = suite_create("obs_time");
    struct {
        const char *name;
        const TTest *t;
    } cases[] = {
        {"clocks", clocks},
        {"duration_parse", duration_parse},
        {"duration_bad", duration_bad},
        {"duration_order", duration_order},
        {"duration_format", duration_format},
        {"rfc3339", rfc3339},
        {"rfc3339_bad", rfc3339_bad},
        {"float_seconds", float_seconds},
        {"parse_ns", parse_ns},
        {"format_rfc3339", format_rfc3339},
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
    SRunner *sr = srunner_create(time_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
