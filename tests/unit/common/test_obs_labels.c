/*
 * test_obs_labels.c -- common/labels: name validation, label-set checks with their messages,
 * sorting and hashing, matchers (anchoring, negation, empty-string semantics, bad regex),
 * Go-style unquoting, and selector parsing.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/obs_mem.h"
#include "labels/obs_labels.h"

START_TEST(test_names)
{
    ck_assert(obs_label_name_valid("job", 3));
    ck_assert(obs_label_name_valid("_a1", 3));
    ck_assert(obs_label_name_valid("__name__", 8));
    ck_assert(!obs_label_name_valid("1a", 2));
    ck_assert(!obs_label_name_valid("a-b", 3));
    ck_assert(!obs_label_name_valid("a:b", 3));
    ck_assert(!obs_label_name_valid("", 0));
    ck_assert(obs_metric_name_valid("a:b_c", 5));
    ck_assert(obs_metric_name_valid(":x", 2));
    ck_assert(!obs_metric_name_valid("a.b", 3));
    ck_assert(!obs_metric_name_valid("9x", 2));
}
END_TEST

START_TEST(test_check)
{
    struct obs_err err = {0};
    struct obs_label ok[] = {{"__name__", "up"}, {"instance", "h:1"}, {"job", "x"}};
    ck_assert_int_eq(obs_labels_check(ok, 3, &err), 0);

    struct obs_label unsorted[] = {{"__name__", "up"}, {"job", "x"}, {"instance", "h"}};
    ck_assert_int_eq(obs_labels_check(unsorted, 3, &err), OBS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "out of order"));

    struct obs_label dup[] = {{"__name__", "up"}, {"job", "x"}, {"job", "y"}};
    ck_assert_int_eq(obs_labels_check(dup, 3, &err), OBS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "duplicate label name"));

    struct obs_label badname[] = {{"__name__", "up"}, {"a-b", "x"}};
    ck_assert_int_eq(obs_labels_check(badname, 2, &err), OBS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "invalid label: 'a-b'"));

    struct obs_label badmetric[] = {{"__name__", "a.b"}};
    ck_assert_int_eq(obs_labels_check(badmetric, 1, &err), OBS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "invalid metric name"));

    struct obs_label utf[] = {{"__name__", "up"}, {"a", "caf\xc3\xa9 \xf0\x9f\x98\x80"}};
    ck_assert_int_eq(obs_labels_check(utf, 2, &err), 0);
    const char *badutf[] = {"\xff", "a\xc3", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80"};
    for (size_t i = 0; i < 5; i++) {
        struct obs_label bu[] = {{"__name__", "up"}, {"a", badutf[i]}};
        ck_assert_int_eq(obs_labels_check(bu, 2, &err), OBS_EINVAL);
        ck_assert_ptr_nonnull(strstr(err.msg, "UTF-8"));
    }

    struct obs_label empty[] = {{"__name__", "up"}, {"job", ""}};
    ck_assert_int_eq(obs_labels_check(empty, 2, &err), OBS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "empty value"));
}
END_TEST

START_TEST(test_sort_hash)
{
    struct obs_label a[] = {{"job", "x"}, {"__name__", "up"}, {"instance", "h"}};
    struct obs_label b[] = {{"__name__", "up"}, {"instance", "h"}, {"job", "x"}};
    obs_labels_sort(a, 3);
    ck_assert_str_eq(a[0].name, "__name__");
    ck_assert_str_eq(a[2].name, "job");
    ck_assert_uint_eq(obs_labels_hash(a, 3), obs_labels_hash(b, 3));
    /* the separator keeps ("ab","c") and ("a","bc") apart */
    struct obs_label c[] = {{"ab", "c"}};
    struct obs_label d[] = {{"a", "bc"}};
    ck_assert_uint_ne(obs_labels_hash(c, 1), obs_labels_hash(d, 1));
    struct obs_label e[] = {{"job", "y"}};
    struct obs_label f[] = {{"job", "x"}};
    ck_assert_uint_ne(obs_labels_hash(e, 1), obs_labels_hash(f, 1));
    ck_assert_str_eq(obs_labels_get(b, 3, "instance"), "h");
    ck_assert_ptr_null(obs_labels_get(b, 3, "nope"));
}
END_TEST

static int m1(enum obs_match_type t, const char *re, const char *v)
{
    struct obs_matcher m;
    struct obs_err err = {0};
    ck_assert_msg(obs_matcher_init(&m, t, "x", re, &err) == 0, "%s", err.msg);
    int r = obs_matcher_matches(&m, v);
    obs_matcher_deinit(&m);
    return r;
}

START_TEST(test_matchers)
{
    ck_assert(m1(OBS_MATCH_EQ, "a", "a"));
    ck_assert(!m1(OBS_MATCH_EQ, "a", "ab"));
    ck_assert(m1(OBS_MATCH_NEQ, "a", "ab"));
    ck_assert(m1(OBS_MATCH_EQ, "", NULL)); /* missing label = "" */
    /* anchoring */
    ck_assert(m1(OBS_MATCH_RE, "a", "a"));
    ck_assert(!m1(OBS_MATCH_RE, "a", "ab"));
    ck_assert(!m1(OBS_MATCH_RE, "a", "ba"));
    ck_assert(!m1(OBS_MATCH_RE, "b", "a\nb"));
    ck_assert(!m1(OBS_MATCH_RE, "a", "a\n")); /* $ must not match before a final newline */
    ck_assert(m1(OBS_MATCH_RE, "a|ab", "ab"));  /* backtracks into the second branch */
    ck_assert(m1(OBS_MATCH_RE, "a.*", "abc"));
    ck_assert(!m1(OBS_MATCH_RE, "a.*|x", "ba"));
    ck_assert(m1(OBS_MATCH_RE, "(?i)UP", "up"));
    ck_assert(m1(OBS_MATCH_RE, "ü+", "üü"));
    ck_assert(m1(OBS_MATCH_NRE, "a", "ab"));
    ck_assert(!m1(OBS_MATCH_NRE, "a.*", "ab"));
    /* empty-string semantics */
    struct obs_matcher m;
    obs_matcher_init(&m, OBS_MATCH_RE, "x", ".*", NULL);
    ck_assert(obs_matcher_matches_empty(&m));
    ck_assert(obs_matcher_matches(&m, NULL));
    obs_matcher_deinit(&m);
    obs_matcher_init(&m, OBS_MATCH_RE, "x", ".+", NULL);
    ck_assert(!obs_matcher_matches_empty(&m));
    obs_matcher_deinit(&m);
    obs_matcher_init(&m, OBS_MATCH_NEQ, "x", "", NULL);
    ck_assert(!obs_matcher_matches_empty(&m));
    obs_matcher_deinit(&m);
    obs_matcher_init(&m, OBS_MATCH_NRE, "x", "a", NULL);
    ck_assert(obs_matcher_matches_empty(&m));
    obs_matcher_deinit(&m);
    /* bad regex */
    struct obs_err err = {0};
    ck_assert_int_eq(obs_matcher_init(&m, OBS_MATCH_RE, "x", "a(", &err), OBS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "error parsing regexp"));
    /* an injected ")" cannot escape the anchoring group */
    ck_assert_int_eq(obs_matcher_init(&m, OBS_MATCH_RE, "x", "a)|(b", &err), OBS_EINVAL);
}
END_TEST

START_TEST(test_unquote)
{
    char *out = NULL;
    size_t used = 0;
    ck_assert_int_eq(obs_go_unquote("\"a\\\"b\\n\\x41\\u00e9\\101\" rest", 26, &out, &used), 0);
    ck_assert_str_eq(out, "a\"b\nA\xc3\xa9" "A");
    ck_assert_uint_eq(used, 22);
    obs_free(out);
    ck_assert_int_eq(obs_go_unquote("'it\\'s'", 7, &out, &used), 0);
    ck_assert_str_eq(out, "it's");
    obs_free(out);
    ck_assert_int_eq(obs_go_unquote("`a\\d+`", 6, &out, &used), 0);
    ck_assert_str_eq(out, "a\\d+");
    obs_free(out);
    ck_assert_int_eq(obs_go_unquote("\"\"", 2, &out, &used), 0);
    ck_assert_str_eq(out, "");
    obs_free(out);
    ck_assert_int_eq(obs_go_unquote("\"abc", 4, &out, &used), OBS_EINVAL);
    ck_assert_int_eq(obs_go_unquote("\"\\q\"", 4, &out, &used), OBS_EINVAL);
    ck_assert_int_eq(obs_go_unquote("\"a\nb\"", 5, &out, &used), OBS_EINVAL);
}
END_TEST

START_TEST(test_parse)
{
    struct obs_matcher *v = NULL;
    size_t n = 0, used = 0;
    struct obs_err err = {0};
    const char *s = "{a=\"b\", c=~\"d.*\",e!='f\\'', g !~ `h|i`,} tail";
    ck_assert_msg(obs_matchers_parse(s, strlen(s), &v, &n, &used, &err) == 0, "%s", err.msg);
    ck_assert_uint_eq(n, 4);
    ck_assert_uint_eq(used, strlen(s) - 5);
    ck_assert_str_eq(v[0].name, "a");
    ck_assert_int_eq(v[0].type, OBS_MATCH_EQ);
    ck_assert_str_eq(v[0].value, "b");
    ck_assert_int_eq(v[1].type, OBS_MATCH_RE);
    ck_assert(obs_matcher_matches(&v[1], "dxx"));
    ck_assert(!obs_matcher_matches(&v[1], "xd"));
    ck_assert_int_eq(v[2].type, OBS_MATCH_NEQ);
    ck_assert_str_eq(v[2].value, "f'");
    ck_assert_int_eq(v[3].type, OBS_MATCH_NRE);
    ck_assert_str_eq(v[3].value, "h|i");
    obs_matchers_free(v, n);

    ck_assert_int_eq(obs_matchers_parse("{}", 2, &v, &n, &used, &err), 0);
    ck_assert_uint_eq(n, 0);
    obs_matchers_free(v, n);

    const char *bad[] = {"{a=b}", "{a=\"b\"", "{a~\"b\"}", "{1a=\"b\"}", "{a=\"b\" c=\"d\"}",
                         "a=\"b\"}", "{a=~\"(\"}"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        ck_assert_msg(obs_matchers_parse(bad[i], strlen(bad[i]), &v, &n, &used, &err) ==
                          OBS_EINVAL, "accepted %s", bad[i]);

    /* whole selectors */
    ck_assert_int_eq(obs_selector_parse(" up{job=\"x\"} ", 13, &v, &n, &err), 0);
    ck_assert_uint_eq(n, 2);
    ck_assert_str_eq(v[0].name, "__name__");
    ck_assert_str_eq(v[0].value, "up");
    ck_assert_str_eq(v[1].name, "job");
    obs_matchers_free(v, n);
    ck_assert_int_eq(obs_selector_parse("node:cpu:rate5m", 15, &v, &n, &err), 0);
    ck_assert_uint_eq(n, 1);
    obs_matchers_free(v, n);
    ck_assert_int_eq(obs_selector_parse("{job=~\".*\"}", 11, &v, &n, &err), OBS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "non-empty matcher"));
    ck_assert_int_eq(obs_selector_parse("up{", 3, &v, &n, &err), OBS_EINVAL);
    ck_assert_int_eq(obs_selector_parse("up x", 4, &v, &n, &err), OBS_EINVAL);
    ck_assert_int_eq(obs_selector_parse("", 0, &v, &n, &err), OBS_EINVAL);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("obs_labels");
    TCase *tc = tcase_create("labels");
    tcase_add_test(tc, test_names);
    tcase_add_test(tc, test_check);
    tcase_add_test(tc, test_sort_hash);
    suite_add_tcase(s, tc);
    tc = tcase_create("matchers");
    tcase_add_test(tc, test_matchers);
    tcase_add_test(tc, test_unquote);
    tcase_add_test(tc, test_parse);
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
