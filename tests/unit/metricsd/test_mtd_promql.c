/*
 * test_mtd_promql.c -- unit tests for metricsd's PromQL engine (metricsd/ql/): parser
 * precedence and errors, and evaluation over a small hand-built storage.h backend.
 */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/obs_arena.h"
#include "core/obs_mem.h"
#include "metricsd/ql/mtd_ql.h"
#include "metricsd/storage.h"

/* ---- a two-series in-memory backend ---- */
static struct obs_label l_a[] = {{"__name__", "m_total"}, {"job", "a"}};
static struct obs_label l_b[] = {{"__name__", "m_total"}, {"job", "b"}};
static struct mtd_sample s_a[6], s_b[6];

static int sel(struct mtd_storage *st, const char *tenant, const struct obs_matcher *ms,
               size_t nms, const struct mtd_select_opts *o, struct mtd_series_set **out,
               struct obs_err *err)
{
    (void)st; (void)tenant; (void)err;
    struct mtd_series_set *set = obs_calloc(1, sizeof(*set));
    set->arena = obs_arena_new(0);
    set->series = obs_arena_calloc(set->arena, 2 * sizeof(struct mtd_series));
    struct obs_label *ls[2] = {l_a, l_b};
    struct mtd_sample *ss[2] = {s_a, s_b};
    for (int i = 0; i < 2; i++) {
        int ok = 1;
        for (size_t k = 0; k < nms; k++)
            ok &= obs_matcher_matches(&ms[k], obs_labels_get(ls[i], 2, ms[k].name));
        if (!ok)
            continue;
        size_t first = 0, n = 0;
        while (first < 6 && ss[i][first].t < o->mint)
            first++;
        while (first + n < 6 && ss[i][first + n].t <= o->maxt)
            n++;
        if (!n)
            continue;
        struct mtd_series *d = &set->series[set->nseries++];
        d->labels = ls[i];
        d->nlabels = 2;
        d->samples = ss[i] + first;
        d->nsamples = n;
    }
    *out = set;
    return 0;
}

static const struct mtd_storage_ops ops = {.select = sel};
static struct mtd_storage st = {&ops, NULL};

static void setup(void)
{
    for (int i = 0; i < 6; i++) {
        s_a[i].t = i * 60000;
        s_a[i].v = i * 60; /* 1/s */
        s_b[i].t = i * 60000;
        s_b[i].v = i * 120; /* 2/s */
    }
}

static double scalar_of(const char *q)
{
    struct mtd_ql_expr *e;
    struct obs_err err;
    ck_assert_msg(mtd_ql_parse(q, &e, &err) == 0, "%s: %s", q, err.msg);
    struct mtd_ql_result *r;
    ck_assert_int_eq(mtd_ql_exec_instant(e, &st, "t", 0, NULL, &r, &err), 0);
    ck_assert_int_eq(r->type, MTD_QL_SCALAR);
    double v = r->scalar;
    mtd_ql_result_free(r);
    mtd_ql_expr_free(e);
    return v;
}

START_TEST(test_precedence)
{
    ck_assert_double_eq(scalar_of("1 + 2 * 3"), 7);
    ck_assert_double_eq(scalar_of("2 ^ 3 ^ 2"), 512);     /* right-assoc */
    ck_assert_double_eq(scalar_of("-2 ^ 2"), -4);         /* unary binds like * */
    ck_assert_double_eq(scalar_of("(1 + 2) * 3"), 9);
    ck_assert_double_eq(scalar_of("10 - 4 - 3"), 3);      /* left-assoc */
    ck_assert_double_eq(scalar_of("7 % 4 * 2"), 6);
    ck_assert_double_eq(scalar_of("1 < bool 2 + 1"), 1);  /* + before comparison */
    ck_assert_double_eq(scalar_of("0x10 + 1e1"), 26);
    ck_assert_double_eq(scalar_of("5m"), 300);            /* duration literal in seconds */
    ck_assert(isinf(scalar_of("Inf")) && isnan(scalar_of("NaN")));
}
END_TEST

static const char *parse_error(const char *q)
{
    static struct obs_err err;
    struct mtd_ql_expr *e = NULL;
    ck_assert_int_eq(mtd_ql_parse(q, &e, &err), OBS_EINVAL);
    return err.msg;
}

START_TEST(test_parse_errors)
{
    ck_assert_str_eq(parse_error("sum("), "1:5: parse error: unclosed left parenthesis");
    /* texts and positions as Prometheus 2.42 prints them */
    ck_assert_str_eq(parse_error("rate(m[5m"), "1:10: parse error: unclosed left parenthesis");
    ck_assert_str_eq(parse_error("m[5m:1m"), "1:8: parse error: unclosed left bracket");
    ck_assert_str_eq(parse_error("m{a=\"b\""),
                     "1:8: parse error: unexpected end of input inside braces");
    ck_assert_str_eq(parse_error("sum by (a) (m) by (a)"), "1:16: parse error: unexpected <by>");
    ck_assert(strstr(parse_error("1 > 2"), "comparisons between scalars must use BOOL"));
    ck_assert(strstr(parse_error("rate(m_total)"), "expected type range vector"));
    ck_assert(strstr(parse_error("{job=~\".*\"}"), "at least one non-empty matcher"));
    ck_assert(strstr(parse_error("foo(1)"), "unknown function"));
    ck_assert(strstr(parse_error("1 and 2"), "set operator"));
    ck_assert(strstr(parse_error("(m_total + 1)[5m]"), "ranges only allowed"));
    ck_assert(strstr(parse_error("m{a=~\"(\"}"), "1:3: parse error"));
}
END_TEST

static struct mtd_ql_result *run(const char *q, int64_t t)
{
    struct mtd_ql_expr *e;
    struct obs_err err;
    ck_assert_msg(mtd_ql_parse(q, &e, &err) == 0, "%s: %s", q, err.msg);
    struct mtd_ql_result *r = NULL;
    ck_assert_msg(mtd_ql_exec_instant(e, &st, "t", t, NULL, &r, &err) == 0, "%s", err.msg);
    mtd_ql_expr_free(e);
    return r;
}

START_TEST(test_eval)
{
    struct mtd_ql_result *r = run("m_total{job=\"b\"}", 150000);
    ck_assert_int_eq(r->nseries, 1);
    ck_assert_double_eq(r->series[0].pts[0].v, 240);
    mtd_ql_result_free(r);

    r = run("sum(rate(m_total[5m]))", 300000);
    ck_assert_int_eq(r->nseries, 1);
    ck_assert_uint_eq(r->series[0].nlabels, 0);
    ck_assert_double_eq_tol(r->series[0].pts[0].v, 3.0, 1e-9);
    mtd_ql_result_free(r);

    /* lookback: 10m after the last sample nothing is left */
    r = run("m_total", 300000 + 600000);
    ck_assert_int_eq(r->nseries, 0);
    mtd_ql_result_free(r);

    /* vector matching drops __name__, keeps job */
    r = run("m_total / ignoring() m_total offset 1m", 300000);
    ck_assert_int_eq(r->nseries, 2);
    ck_assert_str_eq(r->series[0].labels[0].name, "job");
    mtd_ql_result_free(r);

    r = run("topk(1, m_total)", 300000);
    ck_assert_int_eq(r->nseries, 1);
    ck_assert_str_eq(r->series[0].labels[1].value, "b");
    mtd_ql_result_free(r);
}
END_TEST

START_TEST(test_range)
{
    struct mtd_ql_expr *e;
    struct obs_err err;
    ck_assert_int_eq(mtd_ql_parse("sum by (job) (m_total)", &e, &err), 0);
    struct mtd_ql_result *r;
    ck_assert_int_eq(mtd_ql_exec_range(e, &st, "t", 0, 300000, 60000, NULL, &r, &err), 0);
    ck_assert_int_eq(r->type, MTD_QL_MATRIX);
    ck_assert_int_eq(r->nseries, 2);
    ck_assert_uint_eq(r->series[0].npts, 6);
    ck_assert_double_eq(r->series[1].pts[5].v, 600);
    mtd_ql_result_free(r);
    mtd_ql_expr_free(e);
}
END_TEST

static struct mtd_ql_result *run_opts(const char *q, int64_t t, const struct mtd_ql_opts *o,
                                      int *rc, struct obs_err *err)
{
    struct mtd_ql_expr *e;
    ck_assert_msg(mtd_ql_parse(q, &e, err) == 0, "%s: %s", q, err->msg);
    struct mtd_ql_result *r = NULL;
    *rc = mtd_ql_exec_instant(e, &st, "t", t, o, &r, err);
    mtd_ql_expr_free(e);
    return r;
}

/* Prometheus' default: functions drop __name__ at once, so two series that differ only by
 * name collide right there; the delayed-removal option (3.x feature flag) removes it at the
 * end instead, so label_replace can still read it. */
START_TEST(test_name_removal)
{
    struct obs_err err;
    int rc;
    struct mtd_ql_opts o = {0};
    const char *q = "label_replace(rate({__name__=~\"m_total|n_total\"}[5m]), \"x\", \"$1\", "
                    "\"__name__\", \"(.*)\")";
    /* only m_total exists: no collision; the name is gone before label_replace reads it */
    struct mtd_ql_result *r = run_opts(q, 300000, &o, &rc, &err);
    ck_assert_int_eq(rc, 0);
    ck_assert_int_eq(r->nseries, 2);
    for (size_t i = 0; i < r->nseries; i++)
        for (size_t k = 0; k < r->series[i].nlabels; k++)
            ck_assert_str_ne(r->series[i].labels[k].name, "x");
    mtd_ql_result_free(r);
    o.delayed_name_removal = 1;
    r = run_opts(q, 300000, &o, &rc, &err);
    ck_assert_int_eq(rc, 0);
    ck_assert_str_eq(r->series[0].labels[1].name, "x");
    ck_assert_str_eq(r->series[0].labels[1].value, "m_total");
    mtd_ql_result_free(r);
    /* same label set once the name is dropped: an error in the default mode */
    o.delayed_name_removal = 0;
    r = run_opts("label_replace(m_total, \"job\", \"z\", \"\", \"\") * 2", 300000, &o, &rc,
                 &err);
    ck_assert_int_eq(rc, OBS_EINVAL);
    ck_assert(strstr(err.msg, "same labelset") != NULL);
    ck_assert_ptr_null(r);
}
END_TEST

/* holt_winters is 2.x's name of double_exponential_smoothing. */
START_TEST(test_holt_winters_alias)
{
    struct mtd_ql_result *a = run("holt_winters(m_total{job=\"a\"}[5m], 0.5, 0.5)", 300000);
    struct mtd_ql_result *b = run("double_exponential_smoothing(m_total{job=\"a\"}[5m], 0.5, 0.5)",
                                  300000);
    ck_assert_int_eq(a->nseries, 1);
    ck_assert_int_eq(b->nseries, 1);
    ck_assert_double_eq(a->series[0].pts[0].v, b->series[0].pts[0].v);
    mtd_ql_result_free(a);
    mtd_ql_result_free(b);
}
END_TEST

/* Date functions follow Go's time.Unix(int64(v)): NaN/Inf/out of range -> MinInt64. */
START_TEST(test_date_edges)
{
    struct mtd_ql_result *r = run("hour(vector(NaN))", 0);
    ck_assert_double_eq(r->series[0].pts[0].v, 15);
    mtd_ql_result_free(r);
    r = run("year(vector(951782400))", 0);
    ck_assert_double_eq(r->series[0].pts[0].v, 2000);
    mtd_ql_result_free(r);
    r = run("day_of_month(vector(951782400))", 0); /* 2000-02-29 */
    ck_assert_double_eq(r->series[0].pts[0].v, 29);
    mtd_ql_result_free(r);
    r = run("days_in_month(vector(951782400))", 0);
    ck_assert_double_eq(r->series[0].pts[0].v, 29);
    mtd_ql_result_free(r);
    r = run("day_of_week(vector(-86400.5))", 0); /* 1969-12-31, Wednesday */
    ck_assert_double_eq(r->series[0].pts[0].v, 3);
    mtd_ql_result_free(r);
    r = run("year(vector(1e19))", 0); /* no float-cast overflow */
    ck_assert(isfinite(r->series[0].pts[0].v)); /* Prometheus 2.42 agrees (differential test) */
    mtd_ql_result_free(r);
}
END_TEST

/* Sample values as Prometheus' JSON prints them; count_values labels as FormatFloat 'f'. */
START_TEST(test_value_format)
{
    char b[MTD_QL_FMT_F_MAX];
    mtd_ql_fmt_value(b, sizeof b, 2.658287191737602e+86);
    ck_assert_str_eq(b, "2.658287191737602e+86");
    mtd_ql_fmt_value(b, sizeof b, 1e21);
    ck_assert_str_eq(b, "1e+21");
    mtd_ql_fmt_value(b, sizeof b, 999999999999999900000.0);
    ck_assert_str_eq(b, "999999999999999900000");
    mtd_ql_fmt_value(b, sizeof b, 1e-7);
    ck_assert_str_eq(b, "1e-07");
    mtd_ql_fmt_value(b, sizeof b, -0.000001);
    ck_assert_str_eq(b, "-0.000001");
    mtd_ql_fmt_value(b, sizeof b, 0.1 + 0.2);
    ck_assert_str_eq(b, "0.30000000000000004");
    mtd_ql_fmt_value(b, sizeof b, 1.5);
    ck_assert_str_eq(b, "1.5");
    mtd_ql_fmt_value(b, sizeof b, NAN);
    ck_assert_str_eq(b, "NaN");
    mtd_ql_fmt_f(b, sizeof b, 1e21);
    ck_assert_str_eq(b, "1000000000000000000000");
    mtd_ql_fmt_f(b, sizeof b, 1.25e-7);
    ck_assert_str_eq(b, "0.000000125");
    mtd_ql_fmt_f(b, sizeof b, -5e-324);
    ck_assert_int_eq((int)strlen(b), 2 + 323 + 2);
    mtd_ql_fmt_f(b, sizeof b, 1.7976931348623157e308);
    ck_assert_int_eq((int)strlen(b), 309);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("mtd_promql");
    TCase *tc = tcase_create("parse");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, test_precedence);
    tcase_add_test(tc, test_parse_errors);
    suite_add_tcase(s, tc);
    tc = tcase_create("eval");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, test_eval);
    tcase_add_test(tc, test_range);
    tcase_add_test(tc, test_name_removal);
    tcase_add_test(tc, test_holt_winters_alias);
    tcase_add_test(tc, test_date_edges);
    tcase_add_test(tc, test_value_format);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_set_tap(sr, "-");
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
