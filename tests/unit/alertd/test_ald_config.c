/*
 * test_ald_config.c -- alertd/config.c: Alertmanager YAML (route tree with inheritance,
 * match/match_re/matchers, continue, group_by incl. '...', receivers, inhibit rules), the
 * upstream conformance configs, config errors with file:line:col, route matching and
 * aggregation group keys.
 */
#include <check.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alertd/ald.h"
#include "config/obs_cf.h"
#include "core/obs_mem.h"

static const char *good_yaml =
    "global:\n"
    "  resolve_timeout: 1m\n"
    "  smtp_smarthost: 'localhost:25'\n"
    "route:\n"
    "  receiver: default\n"
    "  group_by: ['alertname', 'cluster']\n"
    "  group_wait: 10s\n"
    "  routes:\n"
    "    - match_re:\n"
    "        service: ^(foo1|foo2|baz)$\n"
    "      receiver: team-x\n"
    "      routes:\n"
    "        - match:\n"
    "            severity: critical\n"
    "          receiver: team-x-pager\n"
    "    - matchers: ['service=\"database\"']\n"
    "      receiver: db\n"
    "      group_by: [alertname, database]\n"
    "      group_interval: 1m\n"
    "      routes:\n"
    "        - matchers: [owner=team-X]\n"
    "          receiver: team-x-pager\n"
    "          continue: true\n"
    "        - matchers: ['owner=~\"team-.*\"']\n"
    "          receiver: db\n"
    "          group_by: ['...']\n"
    "receivers:\n"
    "  - name: default\n"
    "    webhook_configs:\n"
    "      - url: http://127.0.0.1:1/hook\n"
    "        send_resolved: false\n"
    "        max_alerts: 5\n"
    "  - name: team-x\n"
    "    email_configs:\n"
    "      - to: x@example.org\n"
    "  - name: team-x-pager\n"
    "    pagerduty_configs:\n"
    "      - routing_key: k\n"
    "  - name: db\n"
    "inhibit_rules:\n"
    "  - source_match:\n"
    "      severity: critical\n"
    "    target_matchers: ['severity=\"warning\"']\n"
    "    equal: [alertname]\n";

static struct ald_config *load(const char *yaml, struct obs_err *err)
{
    obs_err_clear(err);
    return ald_config_from_string(yaml, "t.yml", err);
}

START_TEST(test_good)
{
    struct obs_err err;
    struct ald_config *c = load(good_yaml, &err);
    ck_assert_msg(c != NULL, "%s", err.msg);
    ck_assert_int_eq(c->resolve_timeout_ms, 60000);
    ck_assert_int_eq(c->nreceivers, 4);
    ck_assert_int_eq(c->receivers[0].nhooks, 1);
    ck_assert_int_eq(c->receivers[0].hooks[0].send_resolved, 0);
    ck_assert_int_eq(c->receivers[0].hooks[0].max_alerts, 5);
    ck_assert_int_eq(c->receivers[1].nunsupported, 1);
    const struct ald_route *r = c->route;
    ck_assert_str_eq(r->key, "{}");
    ck_assert_int_eq(r->group_wait_ms, 10000);
    ck_assert_int_eq(r->group_interval_ms, 300000);
    ck_assert_int_eq(r->repeat_interval_ms, 4 * 3600000);
    ck_assert_int_eq(r->nroutes, 2);
    /* inheritance */
    const struct ald_route *x = r->routes[0];
    ck_assert_str_eq(x->receiver, "team-x");
    ck_assert_int_eq(x->group_wait_ms, 10000);
    ck_assert_int_eq(x->ngroup_by, 2);
    ck_assert_str_eq(x->key, "{}/{service=~\"^(?:^(foo1|foo2|baz)$)$\"}");
    const struct ald_route *db = r->routes[1];
    ck_assert_int_eq(db->group_interval_ms, 60000);
    ck_assert_int_eq(db->routes[0]->group_interval_ms, 60000);
    ck_assert(db->routes[0]->cont);
    ck_assert(db->routes[1]->group_by_all);
    ck_assert_int_eq(c->ninhibits, 1);
    ck_assert_int_eq(c->inhibits[0].src.n, 1);
    ck_assert_int_eq(c->inhibits[0].nequal, 1);
    ald_config_free(c);
}
END_TEST

static size_t match(const struct ald_config *c, const char *const *kv, size_t n,
                    const char **names)
{
    struct obs_label l[16];
    for (size_t i = 0; i < n; i++) {
        l[i].name = kv[2 * i];
        l[i].value = kv[2 * i + 1];
    }
    obs_labels_sort(l, n);
    const struct ald_route *out[8];
    size_t cnt = ald_route_match(c->route, l, n, out, 8);
    for (size_t i = 0; i < cnt; i++)
        names[i] = out[i]->receiver;
    return cnt;
}

START_TEST(test_route_match)
{
    struct obs_err err;
    struct ald_config *c = load(good_yaml, &err);
    ck_assert_msg(c != NULL, "%s", err.msg);
    const char *names[8];
    const char *a[] = {"alertname", "A", "service", "foo1"};
    ck_assert_int_eq(match(c, a, 2, names), 1);
    ck_assert_str_eq(names[0], "team-x");
    const char *b[] = {"alertname", "A", "service", "baz", "severity", "critical"};
    ck_assert_int_eq(match(c, b, 3, names), 1);
    ck_assert_str_eq(names[0], "team-x-pager");
    /* regexes are anchored: foo10 does not match ^(foo1|foo2|baz)$ */
    const char *d[] = {"service", "foo10"};
    ck_assert_int_eq(match(c, d, 1, names), 1);
    ck_assert_str_eq(names[0], "default");
    /* continue: both children of the database route */
    const char *e[] = {"service", "database", "owner", "team-X"};
    ck_assert_int_eq(match(c, e, 2, names), 2);
    ck_assert_str_eq(names[0], "team-x-pager");
    ck_assert_str_eq(names[1], "db");
    /* no child matches: the database route itself */
    const char *f[] = {"service", "database"};
    ck_assert_int_eq(match(c, f, 1, names), 1);
    ck_assert_str_eq(names[0], "db");
    ald_config_free(c);
}
END_TEST

START_TEST(test_group_key)
{
    struct obs_err err;
    struct ald_config *c = load(good_yaml, &err);
    ck_assert_msg(c != NULL, "%s", err.msg);
    struct obs_label l[] = {{"alertname", "Disk"}, {"cluster", "c1"}, {"instance", "i"}};
    char *key;
    struct obs_label *gl;
    size_t ngl;
    ck_assert_int_eq(ald_group_key(c->route, l, 3, &key, &gl, &ngl), 0);
    ck_assert_str_eq(key, "{}:{alertname=\"Disk\", cluster=\"c1\"}");
    ck_assert_int_eq(ngl, 2);
    obs_free(key);
    obs_free(gl);
    /* group_by ['...']: every label */
    const struct ald_route *all = c->route->routes[1]->routes[1];
    ck_assert_int_eq(ald_group_key(all, l, 3, &key, &gl, &ngl), 0);
    ck_assert_int_eq(ngl, 3);
    ck_assert_str_eq(key, "{}/{service=\"database\"}/{owner=~\"team-.*\"}:"
                          "{alertname=\"Disk\", cluster=\"c1\", instance=\"i\"}");
    obs_free(key);
    obs_free(gl);
    /* missing group_by labels are simply absent */
    struct obs_label m[] = {{"zone", "z"}};
    ck_assert_int_eq(ald_group_key(c->route, m, 1, &key, &gl, &ngl), 0);
    ck_assert_str_eq(key, "{}:{}");
    ck_assert_int_eq(ngl, 0);
    obs_free(key);
    obs_free(gl);
    ald_config_free(c);
}
END_TEST

START_TEST(test_conformance_files)
{
    glob_t g;
    const char *pat = "../shared/conformance/alertmanager/conf.*.yml";
    if (glob(pat, 0, NULL, &g) != 0) {
        fprintf(stderr, "skip: no conformance configs at %s\n", pat);
        return;
    }
    for (size_t i = 0; i < g.gl_pathc; i++) {
        struct obs_err err = {0};
        struct obs_cf_node *root = obs_cf_load_file(g.gl_pathv[i], 0, &err);
        ck_assert_msg(root != NULL, "%s: %s", g.gl_pathv[i], err.msg);
        struct ald_config *c = ald_config_from_tree(root, &err);
        ck_assert_msg(c != NULL, "%s: %s", g.gl_pathv[i], err.msg);
        ald_config_free(c);
        obs_cf_free(root);
    }
    globfree(&g);
}
END_TEST

static void expect_err(const char *yaml, const char *want)
{
    struct obs_err err;
    struct ald_config *c = load(yaml, &err);
    ck_assert_msg(c == NULL, "config should fail: %s", yaml);
    ck_assert_msg(strstr(err.msg, want) != NULL, "got \"%s\", want \"%s\"", err.msg, want);
}

START_TEST(test_errors)
{
    expect_err("route:\n  receiver: a\n  group_wiat: 1s\nreceivers:\n  - name: a\n",
               "t.yml:3:3: group_wiat: unknown key");
    expect_err("route:\n  receiver: a\nreceivers:\n  - name: a\nbogus: 1\n",
               "t.yml:5:1: bogus: unknown key");
    expect_err("route:\n  receiver: nobody\nreceivers:\n  - name: a\n",
               "t.yml:2:3: receiver: undefined receiver \"nobody\" used in route");
    expect_err("route:\n  receiver: a\n  routes:\n    - receiver: b\n"
               "receivers:\n  - name: a\n",
               "t.yml:4:7: receiver: undefined receiver \"b\"");
    expect_err("route:\n  receiver: a\n  group_by: ['...', x]\nreceivers:\n  - name: a\n",
               "t.yml:3:3: group_by: cannot have wildcard group_by");
    expect_err("route:\n  receiver: a\n  group_by: [a-b]\nreceivers:\n  - name: a\n",
               "invalid label name \"a-b\" in group_by list");
    expect_err("route:\n  receiver: a\n  routes:\n    - match_re:\n        x: '('\n"
               "receivers:\n  - name: a\n",
               "t.yml:5:9: x:");
    expect_err("route:\n  receiver: a\n  group_wait: soon\nreceivers:\n  - name: a\n",
               "t.yml:3:3: group_wait: not a valid duration");
    expect_err("route:\n  receiver: a\nreceivers:\n  - name: a\n  - name: a\n",
               "notification config name \"a\" is not unique");
    expect_err("route:\n  receiver: a\nreceivers:\n  - name: a\n    webhook_configs:\n"
               "      - send_resolved: true\n",
               "t.yml:6:9: one of url or url_file must be configured");
    expect_err("route:\n  receiver: a\nreceivers:\n  - name: a\n    webhook_configs:\n"
               "      - url: http://x\n        tls: 1\n",
               "t.yml:7:9: tls: unknown key");
    expect_err("receivers:\n  - name: a\n", "no route provided in config");
    expect_err("route:\n  group_by: [a]\nreceivers:\n  - name: a\n",
               "root route must specify a default receiver");
    expect_err("route:\n  receiver: a\n  matchers: [a=b]\nreceivers:\n  - name: a\n",
               "root route must not have any matchers");
    expect_err("route:\n  receiver: a\n  matchers: ['a=~\"(\"']\nreceivers:\n  - name: a\n",
               "t.yml:3:");
    expect_err("route:\n  receiver: a\n  routes:\n    - matchers: ['{{a']\n"
               "receivers:\n  - name: a\n",
               "t.yml:4:");
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("ald_config");
    TCase *tc = tcase_create("load");
    tcase_add_test(tc, test_good);
    tcase_add_test(tc, test_conformance_files);
    tcase_add_test(tc, test_errors);
    suite_add_tcase(s, tc);
    tc = tcase_create("routing");
    tcase_add_test(tc, test_route_match);
    tcase_add_test(tc, test_group_key);
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
