/*
 * test_promtext.c -- agentd/promtext.c: Prometheus text format 0.0.4 parsing.
 */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "agentd/agd.h"
#include "core/obs_sbuf.h"

/* Collects samples as "name{a=\"b\",...} value ts" lines. */
struct out {
    struct obs_sbuf s;
    int n;
    int metas;
};

static int on_sample(const struct obs_label *l, size_t n, double v, int64_t ts, int has_ts,
                     void *arg)
{
    struct out *o = arg;
    obs_sbuf_puts(&o->s, l[0].value);
    obs_sbuf_putc(&o->s, '{');
    for (size_t i = 1; i < n; i++)
        obs_sbuf_printf(&o->s, "%s%s=\"%s\"", i > 1 ? "," : "", l[i].name, l[i].value);
    obs_sbuf_puts(&o->s, "} ");
    obs_sbuf_prom_float(&o->s, v);
    if (has_ts)
        obs_sbuf_printf(&o->s, " %lld", (long long)ts);
    obs_sbuf_putc(&o->s, '\n');
    o->n++;
    return 0;
}

static int on_meta(const char *kind, const char *name, const char *text, void *arg)
{
    struct out *o = arg;
    (void)kind;
    (void)name;
    (void)text;
    o->metas++;
    return 0;
}

static int parse(const char *text, struct out *o, struct obs_err *err)
{
    obs_sbuf_init(&o->s);
    o->n = o->metas = 0;
    return agd_promtext_parse(text, strlen(text), on_sample, on_meta, o, err);
}

START_TEST(test_basic)
{
    struct out o;
    struct obs_err err = {0};
    const char *in = "# HELP http_requests_total The total.\\nSecond line\n"
                     "# TYPE http_requests_total counter\n"
                     "http_requests_total{method=\"post\",code=\"200\"} 1027 1395066363000\n"
                     "http_requests_total{method=\"post\",code=\"400\",}    3\n"
                     "\n"
                     "# a comment\n"
                     "metric_without_labels 12.47\n"
                     "  indented 1\n"
                     "weird{x=\"a\\\\b\\\"c\\nd\"} -Inf\n"
                     "nan_metric NaN\n"
                     "inf_metric +Inf\n"
                     "sci 1.5e3\n";
    ck_assert_int_eq(parse(in, &o, &err), 0);
    ck_assert_int_eq(o.n, 8);
    ck_assert_int_eq(o.metas, 2);
    ck_assert_str_eq(o.s.p, "http_requests_total{method=\"post\",code=\"200\"} 1027 1395066363000\n"
                            "http_requests_total{method=\"post\",code=\"400\"} 3\n"
                            "metric_without_labels{} 12.47\n"
                            "indented{} 1\n"
                            "weird{x=\"a\\b\"c\nd\"} -Inf\n"
                            "nan_metric{} NaN\n"
                            "inf_metric{} +Inf\n"
                            "sci{} 1500\n");
    obs_sbuf_deinit(&o.s);
}
END_TEST

START_TEST(test_histogram_summary)
{
    struct out o;
    struct obs_err err = {0};
    const char *in = "# TYPE rpc histogram\n"
                     "rpc_bucket{le=\"0.05\"} 24054\n"
                     "rpc_bucket{le=\"+Inf\"} 144320\n"
                     "rpc_sum 53423\n"
                     "rpc_count 144320\n"
                     "# TYPE lat summary\n"
                     "lat{quantile=\"0.99\"} 76656\n"
                     "lat_sum 1.7560473e+07\n"
                     "lat_count 2693\n";
    ck_assert_int_eq(parse(in, &o, &err), 0);
    ck_assert_int_eq(o.n, 7);
    ck_assert_ptr_nonnull(strstr(o.s.p, "rpc_bucket{le=\"+Inf\"} 144320\n"));
    ck_assert_ptr_nonnull(strstr(o.s.p, "lat_sum{} 17560473\n"));
    obs_sbuf_deinit(&o.s);
}
END_TEST

START_TEST(test_crlf_and_no_final_newline)
{
    struct out o;
    struct obs_err err = {0};
    ck_assert_int_eq(parse("a 1\r\nb{x=\"y\"} 2", &o, &err), 0);
    ck_assert_int_eq(o.n, 2);
    ck_assert_str_eq(o.s.p, "a{} 1\nb{x=\"y\"} 2\n");
    obs_sbuf_deinit(&o.s);
}
END_TEST

static const char *const bad[] = {
    "a{b=\"c\" 1\n",        /* unterminated label set */
    "a{b=c} 1\n",           /* unquoted value */
    "a{b=\"c\",b=\"d\"} 1\n", /* duplicate label */
    "a xyz\n",              /* bad value */
    "a 1 notatime\n",       /* bad timestamp */
    "a 1 2 3\n",            /* trailing garbage */
    "1abc 1\n",             /* bad metric name */
    "a{b=\"\\q\"} 1\n",     /* bad escape */
    "a\n",                  /* no value */
    "# TYPE a bogus\n",     /* bad type */
    "a-b 1\n",              /* bad character in name */
};

START_TEST(test_errors)
{
    struct out o;
    struct obs_err err = {0};
    ck_assert_int_eq(parse(bad[_i], &o, &err), OBS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "text format parsing error in line 1"));
    obs_sbuf_deinit(&o.s);
}
END_TEST

START_TEST(test_error_line_number)
{
    struct out o;
    struct obs_err err = {0};
    ck_assert_int_eq(parse("a 1\n# HELP x y\nb 2\nc{ 3\n", &o, &err), OBS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "line 4"));
    ck_assert_int_eq(o.n, 2); /* the caller discards partial results */
    obs_sbuf_deinit(&o.s);
}
END_TEST

static int stop_cb(const struct obs_label *l, size_t n, double v, int64_t ts, int has_ts,
                   void *arg)
{
    (void)l, (void)n, (void)v, (void)ts, (void)has_ts;
    return ++*(int *)arg == 2 ? 42 : 0;
}

START_TEST(test_callback_stops)
{
    int calls = 0;
    ck_assert_int_eq(agd_promtext_parse("a 1\nb 2\nc 3\n", 12, stop_cb, NULL, &calls, NULL), 42);
    ck_assert_int_eq(calls, 2);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("promtext");
    TCase *tc = tcase_create("parse");
    tcase_add_test(tc, test_basic);
    tcase_add_test(tc, test_histogram_summary);
    tcase_add_test(tc, test_crlf_and_no_final_newline);
    tcase_add_test(tc, test_callback_stops);
    suite_add_tcase(s, tc);
    TCase *te = tcase_create("errors");
    tcase_add_loop_test(te, test_errors, 0, (int)(sizeof(bad) / sizeof(bad[0])));
    tcase_add_test(te, test_error_line_number);
    suite_add_tcase(s, te);
    SRunner *sr = srunner_create(s);
    srunner_set_tap(sr, "-");
    srunner_run_all(sr, CK_ENV);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    return nf ? 1 : 0;
}
