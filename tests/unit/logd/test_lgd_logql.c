/*
 * test_lgd_logql.c -- unit tests for logd/logql.c (parser) and the pipeline in engine.c.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/obs_mem.h"
#include "logd/engine.h"
#include "logd/logql.h"

static struct lgd_expr *parse_ok(const char *q)
{
    struct lgd_expr *e = NULL;
    struct obs_err err;
    obs_err_clear(&err);
    int rc = lgd_logql_parse(q, &e, &err);
    ck_assert_msg(rc == 0, "parse %s: %s", q, err.msg);
    return e;
}

static void parse_err(const char *q, const char *msg_prefix)
{
    struct lgd_expr *e = NULL;
    struct obs_err err;
    obs_err_clear(&err);
    ck_assert_int_eq(lgd_logql_parse(q, &e, &err), OBS_EINVAL);
    ck_assert_ptr_null(e);
    ck_assert_msg(strncmp(err.msg, msg_prefix, strlen(msg_prefix)) == 0, "%s -> %s", q, err.msg);
}

START_TEST(test_parse_log)
{
    struct lgd_expr *e = parse_ok("{app=\"x\", level=~\"err.*\"} |= \"text\" != `x` |~ \"re\" !~ \"r\"");
    ck_assert_int_eq(e->kind, LGD_E_LOG);
    ck_assert_uint_eq(e->log.nm, 2);
    ck_assert_int_eq(e->log.m[1].type, LGD_M_RE);
    ck_assert_uint_eq(e->log.nst, 4);
    ck_assert_int_eq(e->log.st[0].op, LGD_LF_CONTAINS);
    ck_assert_int_eq(e->log.st[1].op, LGD_LF_NCONTAINS);
    ck_assert_str_eq(e->log.st[1].str, "x");
    ck_assert_int_eq(e->log.st[2].op, LGD_LF_RE);
    ck_assert_int_eq(e->log.st[3].op, LGD_LF_NRE);
    ck_assert(lgd_expr_is_log(e));
    lgd_expr_free(e);

    e = parse_ok("{a=\"b\"} | json | status >= 500 and level=\"error\", dur > 1.5s | logfmt");
    ck_assert_int_eq(e->log.has_parser, 1);
    ck_assert_uint_eq(e->log.nst, 5);
    ck_assert_int_eq(e->log.st[1].numeric, 1);
    ck_assert_int_eq(e->log.st[1].op, LGD_CMP_GE);
    ck_assert(e->log.st[3].duration);
    ck_assert(e->log.st[3].num == 1.5);
    lgd_expr_free(e);
}
END_TEST

START_TEST(test_parse_metric)
{
    struct lgd_expr *e = parse_ok("sum by (level) (count_over_time({a=\"b\"} |= \"x\" [5m]))");
    ck_assert_int_eq(e->kind, LGD_E_VAGG);
    ck_assert_int_eq(e->op, LGD_A_SUM);
    ck_assert_uint_eq(e->ngrp, 1);
    ck_assert_str_eq(e->grp[0], "level");
    ck_assert_int_eq(e->a->kind, LGD_E_RANGE);
    ck_assert_int_eq(e->a->fn, LGD_R_COUNT);
    ck_assert(e->a->range_ns == 300000000000LL);
    lgd_expr_free(e);

    e = parse_ok("sum(rate({a=\"b\"}[1m])) without (x) / 2 + 1");
    ck_assert_int_eq(e->kind, LGD_E_BIN);
    ck_assert_int_eq(e->op, LGD_B_ADD); /* (sum/2) + 1 */
    ck_assert_int_eq(e->a->op, LGD_B_DIV);
    ck_assert_int_eq(e->a->a->without, 1);
    lgd_expr_free(e);

    e = parse_ok("vector(1)+vector(1)");
    ck_assert_int_eq(e->kind, LGD_E_BIN);
    ck_assert_int_eq(e->a->kind, LGD_E_VECTOR);
    lgd_expr_free(e);

    e = parse_ok("2 ^ 3 ^ 2");
    ck_assert_int_eq(e->op, LGD_B_POW);
    ck_assert_int_eq(e->b->kind, LGD_E_BIN); /* right associative */
    lgd_expr_free(e);

    e = parse_ok("topk(2, sum_over_time({a=\"b\"} | logfmt | unwrap latency [1h] offset 5m))");
    ck_assert_int_eq(e->op, LGD_A_TOPK);
    ck_assert(e->param == 2);
    ck_assert_str_eq(e->a->log.unwrap, "latency");
    ck_assert(e->a->offset_ns == 300000000000LL);
    lgd_expr_free(e);

    e = parse_ok("count_over_time({a=\"b\"}[5m]) > bool 3");
    ck_assert_int_eq(e->bool_mod, 1);
    lgd_expr_free(e);
}
END_TEST

START_TEST(test_parse_errors)
{
    parse_err("{foo}", "parse error at line 1, col 5: syntax error: unexpected }, expecting =");
    parse_err("{a=\"b\"", "parse error at line 1, col 7: syntax error: unexpected $end");
    parse_err("{a=~\".*\"}", "parse error : queries require at least one regexp");
    parse_err("{a=\"b\"} |= 3", "parse error at line 1, col 12: syntax error: unexpected NUMBER");
    parse_err("count_over_time({a=\"b\"})", "parse error at line 1, col 24: syntax error: "
                                            "unexpected ), expecting [");
    parse_err("sum_over_time({a=\"b\"}[1m])", "parse error : invalid aggregation without unwrap");
    parse_err("{a=\"b\"} + 1", "parse error : unexpected log query");
    parse_err("", "parse error");
    parse_err("{a=~\"(\"}", "parse error : error parsing regexp");
    parse_err("{a=\"b\"}\n |= \"x\" |", "parse error at line 2, col 10: syntax error: "
                                       "unexpected $end");
}
END_TEST

START_TEST(test_push_labels)
{
    struct obs_label *v;
    size_t n;
    struct obs_err err;
    const char *s = "{zone=\"z\\\"1\", app=\"a\"}";
    ck_assert_int_eq(lgd_logql_parse_labels(s, strlen(s), &v, &n, &err), 0);
    ck_assert_uint_eq(n, 2);
    ck_assert_str_eq(v[0].name, "app"); /* sorted */
    ck_assert_str_eq(v[1].value, "z\"1");
    lgd_labels_free(v, n);
    s = "{a=~\"x\"}";
    ck_assert_int_eq(lgd_logql_parse_labels(s, strlen(s), &v, &n, &err), OBS_EINVAL);
    s = "{}";
    ck_assert_int_eq(lgd_logql_parse_labels(s, strlen(s), &v, &n, &err), OBS_EINVAL);
    ck_assert_str_eq(err.msg, "error at least one label pair is required per stream");
    s = "{a=\"1\", a=\"2\"}";
    ck_assert_int_eq(lgd_logql_parse_labels(s, strlen(s), &v, &n, &err), OBS_EINVAL);
    s = "{a=\"1\"} x";
    ck_assert_int_eq(lgd_logql_parse_labels(s, strlen(s), &v, &n, &err), OBS_EINVAL);
}
END_TEST

START_TEST(test_unquote)
{
    char *out;
    size_t ol, used;
    ck_assert_int_eq(lgd_go_unquote("\"a\\tb\\u00e9\\x41\\101\" rest", 24, &out, &ol, &used), 0);
    ck_assert_str_eq(out, "a\tb\xc3\xa9" "AA");
    ck_assert_uint_eq(used, 20);
    obs_free(out);
    ck_assert_int_eq(lgd_go_unquote("`raw \\n`", 8, &out, &ol, &used), 0);
    ck_assert_str_eq(out, "raw \\n");
    obs_free(out);
    ck_assert_int_eq(lgd_go_unquote("\"open", 5, &out, &ol, &used), OBS_EINVAL);
    ck_assert_int_eq(lgd_go_unquote("\"bad \\q\"", 8, &out, &ol, &used), OBS_EINVAL);
}
END_TEST

/* Run q's pipeline on line with stream labels {app="web"}; returns kept, labels in *lab. */
static int run(const char *q, const char *line, char *lab, size_t cap)
{
    struct lgd_expr *e = parse_ok(q);
    struct obs_label sl[] = {{"app", "web"}};
    struct obs_sbuf b;
    obs_sbuf_init(&b);
    int keep = lgd_engine_filter_line(&e->log, sl, 1, line, strlen(line), &b);
    if (lab)
        snprintf(lab, cap, "%s", b.p ? b.p : "");
    obs_sbuf_deinit(&b);
    lgd_expr_free(e);
    return keep;
}

START_TEST(test_filters)
{
    char lab[512];
    ck_assert_int_eq(run("{app=\"web\"} |= \"err\"", "an error here", NULL, 0), 1);
    ck_assert_int_eq(run("{app=\"web\"} |= \"ERR\"", "an error here", NULL, 0), 0);
    ck_assert_int_eq(run("{app=\"web\"} != \"err\"", "an error here", NULL, 0), 0);
    ck_assert_int_eq(run("{app=\"web\"} |~ \"(?i)ERR\"", "an error here", NULL, 0), 1);
    ck_assert_int_eq(run("{app=\"web\"} |~ \"^an\"", "an error here", NULL, 0), 1);
    ck_assert_int_eq(run("{app=\"web\"} |~ \"^error\"", "an error here", NULL, 0), 0);
    ck_assert_int_eq(run("{app=\"web\"} !~ \"e.r\"", "an error here", NULL, 0), 0);
    ck_assert_int_eq(run("{app=\"web\"} |~ \"x\"", "bad utf8 \xff\xfe x", NULL, 0), 1);

    ck_assert_int_eq(run("{app=\"web\"} | json", "{\"a\":{\"b\":1.5},\"app\":\"z\",\"ok\":true,"
                                                  "\"n\":null,\"arr\":[1]}", lab, sizeof(lab)), 1);
    ck_assert_str_eq(lab, "{a_b=\"1.5\", app=\"web\", app_extracted=\"z\", ok=\"true\"}");
    ck_assert_int_eq(run("{app=\"web\"} | json", "not json", lab, sizeof(lab)), 1);
    ck_assert_str_eq(lab, "{__error__=\"JSONParserErr\", app=\"web\"}");
    ck_assert_int_eq(run("{app=\"web\"} | json | __error__=\"\"", "not json", NULL, 0), 0);

    ck_assert_int_eq(run("{app=\"web\"} | logfmt", "level=info msg=\"hello world\" dur=15ms x",
                         lab, sizeof(lab)), 1);
    ck_assert_str_eq(lab, "{app=\"web\", dur=\"15ms\", level=\"info\", msg=\"hello world\"}");
    ck_assert_int_eq(run("{app=\"web\"} | logfmt | dur > 10ms", "dur=15ms", NULL, 0), 1);
    ck_assert_int_eq(run("{app=\"web\"} | logfmt | dur > 1s", "dur=15ms", NULL, 0), 0);
    ck_assert_int_eq(run("{app=\"web\"} | logfmt | status >= 500", "status=503", NULL, 0), 1);
    ck_assert_int_eq(run("{app=\"web\"} | logfmt | status >= 500", "status=200", NULL, 0), 0);
    ck_assert_int_eq(run("{app=\"web\"} | logfmt | status == 200, level=~\"i.*\"",
                         "status=200 level=info", NULL, 0), 1);
    ck_assert_int_eq(run("{app=\"web\"} | logfmt | level!=\"info\"", "level=info", NULL, 0), 0);
    ck_assert_int_eq(run("{app=\"web\"} | app=\"web\"", "x", NULL, 0), 1);
}
END_TEST

START_TEST(test_line_format)
{
    struct lgd_expr *e = parse_ok("{app=\"web\"} | logfmt | line_format \"{{.level}}: {{ .msg }}\""
                                  " |= \"warn:\"");
    struct obs_label sl[] = {{"app", "web"}};
    const char *l1 = "level=warn msg=disk";
    const char *l2 = "level=info msg=disk";
    ck_assert_int_eq(lgd_engine_filter_line(&e->log, sl, 1, l1, strlen(l1), NULL), 1);
    ck_assert_int_eq(lgd_engine_filter_line(&e->log, sl, 1, l2, strlen(l2), NULL), 0);
    lgd_expr_free(e);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("lgd_logql");
    TCase *tc = tcase_create("parse");
    tcase_add_test(tc, test_parse_log);
    tcase_add_test(tc, test_parse_metric);
    tcase_add_test(tc, test_parse_errors);
    tcase_add_test(tc, test_push_labels);
    tcase_add_test(tc, test_unquote);
    suite_add_tcase(s, tc);
    tc = tcase_create("pipeline");
    tcase_add_test(tc, test_filters);
    tcase_add_test(tc, test_line_format);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
