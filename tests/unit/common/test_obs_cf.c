/*
 * test_obs_cf.c -- unit tests for common/config/obs_cf.c (YAML tree, binding, errors).
 */
#include "config/obs_cf.h"
#include "core/obs_mem.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

struct inner {
    int64_t port;
    char *addr;
};
struct outer {
    char *name;
    int64_t n;
    int flag;
    double ratio;
    int64_t timeout_ms;
    int64_t size;
    struct obs_strlist files;
    struct inner in;
};

static const struct obs_cfmap inner_map[] = {
    {"port", OBS_CFT_INT, "80", offsetof(struct inner, port), "port", NULL, NULL},
    {"addr", OBS_CFT_STR, "localhost", offsetof(struct inner, addr), "addr", NULL, NULL},
    {NULL, 0, NULL, 0, NULL, NULL, NULL},
};
static const struct obs_cfmap outer_map[] = {
    {"name", OBS_CFT_STR, NULL, offsetof(struct outer, name), "", NULL, NULL},
    {"n", OBS_CFT_INT, "7", offsetof(struct outer, n), "", NULL, NULL},
    {"flag", OBS_CFT_BOOL, "false", offsetof(struct outer, flag), "", NULL, NULL},
    {"ratio", OBS_CFT_FLOAT, "0.5", offsetof(struct outer, ratio), "", NULL, NULL},
    {"timeout", OBS_CFT_DURATION, "1m", offsetof(struct outer, timeout_ms), "", NULL, NULL},
    {"size", OBS_CFT_BYTES, "1MiB", offsetof(struct outer, size), "", NULL, NULL},
    {"files", OBS_CFT_STRLIST, NULL, offsetof(struct outer, files), "", NULL, NULL},
    {"inner", OBS_CFT_SECTION, NULL, offsetof(struct outer, in), "", inner_map, NULL},
    {NULL, 0, NULL, 0, NULL, NULL, NULL},
};

static struct obs_cf_node *load(const char *s, struct obs_err *err)
{
    return obs_cf_load_string(s, strlen(s), "t.yaml", 0, err);
}

START_TEST(test_bind_values_and_defaults)
{
    struct obs_err err = {0};
    struct obs_cf_node *root = load("name: x\nflag: yes\ntimeout: 1h30m\nsize: 4KB\n"
                                    "files: [a, b]\ninner:\n  port: 9090\n", &err);
    ck_assert_ptr_nonnull(root);
    struct outer o = {0};
    ck_assert_int_eq(obs_cf_bind(root, outer_map, &o, &err), 0);
    ck_assert_str_eq(o.name, "x");
    ck_assert_int_eq(o.n, 7);
    ck_assert_int_eq(o.flag, 1);
    ck_assert_double_eq_tol(o.ratio, 0.5, 1e-12);
    ck_assert_int_eq(o.timeout_ms, 5400000);
    ck_assert_int_eq(o.size, 4000);
    ck_assert_int_eq(o.files.n, 2);
    ck_assert_str_eq(o.files.v[1], "b");
    ck_assert_int_eq(o.in.port, 9090);
    ck_assert_str_eq(o.in.addr, "localhost");
    obs_cf_unbind(outer_map, &o);
    obs_cf_free(root);
}
END_TEST

START_TEST(test_unknown_key_position)
{
    struct obs_err err = {0};
    struct obs_cf_node *root = load("name: x\ninner:\n  port: 1\n  bogus: 2\n", &err);
    ck_assert_ptr_nonnull(root);
    struct outer o = {0};
    ck_assert_int_ne(obs_cf_bind(root, outer_map, &o, &err), 0);
    ck_assert_msg(strstr(err.msg, "t.yaml:4:3: bogus:") != NULL, "msg: %s", err.msg);
    obs_cf_unbind(outer_map, &o);
    obs_cf_free(root);
}
END_TEST

START_TEST(test_type_errors)
{
    struct obs_err err = {0};
    struct obs_cf_node *root = load("n: abc\n", &err);
    struct outer o = {0};
    ck_assert_int_ne(obs_cf_bind(root, outer_map, &o, &err), 0);
    ck_assert_msg(strstr(err.msg, "t.yaml:1:1: n: cannot parse \"abc\"") != NULL, "%s", err.msg);
    obs_cf_unbind(outer_map, &o);
    obs_cf_free(root);
    root = load("timeout: 5 parsecs\n", &err);
    memset(&o, 0, sizeof(o));
    ck_assert_int_ne(obs_cf_bind(root, outer_map, &o, &err), 0);
    ck_assert_msg(strstr(err.msg, "timeout: not a valid duration") != NULL, "%s", err.msg);
    obs_cf_unbind(outer_map, &o);
    obs_cf_free(root);
}
END_TEST

START_TEST(test_syntax_error_position)
{
    struct obs_err err = {0};
    struct obs_cf_node *root = load("a: 1\nb: [1, 2\nc: 3\n", &err);
    ck_assert_ptr_null(root);
    ck_assert_msg(strncmp(err.msg, "t.yaml:", 7) == 0, "%s", err.msg);
    ck_assert_int_gt(err.line, 1);
    root = load("a: 1\na: 2\n", &err);
    ck_assert_ptr_null(root);
    ck_assert_msg(strstr(err.msg, "t.yaml:2:1:") != NULL, "%s", err.msg);
}
END_TEST

START_TEST(test_set_path_and_env)
{
    struct obs_err err = {0};
    setenv("OBS_TEST_PORT", "1234", 1);
    const char *y = "inner:\n  port: ${OBS_TEST_PORT}\n  addr: ${OBS_NOPE:-dflt}\n";
    struct obs_cf_node *root = obs_cf_load_string(y, strlen(y), "e.yaml", 1, &err);
    ck_assert_ptr_nonnull(root);
    ck_assert_int_eq(obs_cf_set_path(root, "name", "flagged", &err), 0);
    ck_assert_int_eq(obs_cf_set_path(root, "inner.addr", "flaghost", &err), 0);
    struct outer o = {0};
    ck_assert_int_eq(obs_cf_bind(root, outer_map, &o, &err), 0);
    ck_assert_int_eq(o.in.port, 1234);
    ck_assert_str_eq(o.in.addr, "flaghost");
    ck_assert_str_eq(o.name, "flagged");
    obs_cf_unbind(outer_map, &o);
    obs_cf_free(root);
}
END_TEST

START_TEST(test_anchors_and_empty)
{
    struct obs_err err = {0};
    struct obs_cf_node *root = load("base: &b\n  port: 5\nother: *b\n", &err);
    ck_assert_ptr_nonnull(root);
    const struct obs_cf_node *o = obs_cf_get(root, "other");
    ck_assert_ptr_nonnull(o);
    ck_assert_str_eq(obs_cf_get(o, "port")->value, "5");
    obs_cf_free(root);
    root = load("", &err);
    ck_assert_ptr_nonnull(root);
    ck_assert_int_eq(root->type, OBS_CF_MAP);
    ck_assert_int_eq(root->n, 0);
    obs_cf_free(root);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("obs_cf");
    TCase *tc = tcase_create("bind");
    tcase_add_test(tc, test_bind_values_and_defaults);
    tcase_add_test(tc, test_unknown_key_position);
    tcase_add_test(tc, test_type_errors);
    suite_add_tcase(s, tc);
    tc = tcase_create("load");
    tcase_add_test(tc, test_syntax_error_position);
    tcase_add_test(tc, test_set_path_and_env);
    tcase_add_test(tc, test_anchors_and_empty);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
