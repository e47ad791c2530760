/*
 * test_ald_alerts.c -- alertd's alert model and helpers: fingerprints (same values as
 * Alertmanager), Alertmanager matcher syntax, merge rules, time formats, the uint64 map,
 * silences' states and the webhook payload.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alertd/ald.h"
#include "core/obs_mem.h"
#include "core/obs_sbuf.h"

START_TEST(test_fingerprint)
{
    /* values taken from prometheus-alertmanager 0.25 for the same label sets */
    struct obs_label a[] = {{"alertname", "X"}, {"severity", "crit"}};
    char s[17];
    ald_fp_str(ald_fingerprint(a, 2), s);
    ck_assert_str_eq(s, "09dbdc4044a7ba7b");
    /* order of the input does not matter */
    struct obs_label b[] = {{"severity", "crit"}, {"alertname", "X"}};
    ck_assert_uint_eq(ald_fingerprint(a, 2), ald_fingerprint(b, 2));
    /* empty set: the FNV-1a offset basis */
    ald_fp_str(ald_fingerprint(NULL, 0), s);
    ck_assert_str_eq(s, "cbf29ce484222325");
    /* separator bytes keep a=bc and ab=c apart */
    struct obs_label c1[] = {{"a", "bc"}}, c2[] = {{"ab", "c"}};
    ck_assert_uint_ne(ald_fingerprint(c1, 1), ald_fingerprint(c2, 1));
}
END_TEST

static int matches(const char *expr, const char *name, const char *value)
{
    struct ald_matchers m = {0};
    struct obs_err err = {0};
    ck_assert_msg(ald_matchers_parse(expr, &m, &err) == 0, "%s: %s", expr, err.msg);
    struct obs_label l[] = {{name, value}};
    int r = ald_matchers_match(&m, l, 1);
    ald_matchers_deinit(&m);
    return r;
}

START_TEST(test_matchers)
{
    ck_assert(matches("a=b", "a", "b"));
    ck_assert(matches("a = \"b\"", "a", "b"));
    ck_assert(matches("{a=\"b\"}", "a", "b"));
    ck_assert(!matches("a!=b", "a", "b"));
    ck_assert(matches("a=~\"x|y\"", "a", "y"));
    ck_assert(!matches("a=~\"x|y\"", "a", "xy")); /* anchored */
    ck_assert(matches("a!~x.*", "a", "yes"));
    ck_assert(matches("a=\"q\\\"uote\"", "a", "q\"uote"));
    ck_assert(matches("b=", "a", "z"));           /* absent label == "" */
    struct ald_matchers m = {0};
    struct obs_err err = {0};
    ck_assert_int_eq(ald_matchers_parse("{a=\"b\", c!=d,e=~\"f\"}", &m, &err), 0);
    ck_assert_int_eq(m.n, 3);
    ck_assert_int_eq(m.v[1].type, OBS_MATCH_NEQ);
    ck_assert_str_eq(m.v[1].value, "d");
    struct obs_sbuf sb;
    obs_sbuf_init(&sb);
    ald_matchers_render(&m, &sb);
    ck_assert_str_eq(sb.p, "{a=\"b\",c!=\"d\",e=~\"f\"}");
    obs_sbuf_deinit(&sb);
    ald_matchers_deinit(&m);
    static const char *const bad[] = {"foo", "=b", "{a=b", "a=\"b", "a=~\"(\"", "1a=b",
                                      "a=b}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        obs_err_clear(&err);
        ck_assert_msg(ald_matchers_parse(bad[i], &m, &err) != 0, "accepted %s", bad[i]);
        ck_assert(err.msg[0] != '\0');
        ald_matchers_deinit(&m);
    }
}
END_TEST

START_TEST(test_times)
{
    char b[40];
    ald_time_api(1700000000123LL, b);
    ck_assert_str_eq(b, "2023-11-14T22:13:20.123Z");
    ald_time_go(1700000000120LL, b);
    ck_assert_str_eq(b, "2023-11-14T22:13:20.12Z");
    ald_time_go(1700000000000LL, b);
    ck_assert_str_eq(b, "2023-11-14T22:13:20Z");
    ald_time_go(0, b);
    ck_assert_str_eq(b, "0001-01-01T00:00:00Z");
    int64_t ms = -1;
    ck_assert_int_eq(ald_time_parse("0001-01-01T00:00:00.000Z", &ms), 0);
    ck_assert_int_eq(ms, 0);
    ck_assert_int_eq(ald_time_parse("2023-11-14T22:13:20.123Z", &ms), 0);
    ck_assert_int_eq(ms, 1700000000123LL);
    ck_assert_int_eq(ald_time_parse("2023-11-14T23:13:20.123+01:00", &ms), 0);
    ck_assert_int_eq(ms, 1700000000123LL);
    ck_assert_int_ne(ald_time_parse("1700000000", &ms), 0);
    ck_assert_int_ne(ald_time_parse("yesterday", &ms), 0);
}
END_TEST

static struct ald_alert *mk(const char *name, int64_t s, int64_t e, int64_t u, int timeout)
{
    struct ald_alert a = {0};
    struct obs_label l[] = {{"alertname", name}};
    a.labels = l;
    a.nlabels = 1;
    a.starts_ms = s;
    a.ends_ms = e;
    a.updated_ms = u;
    a.timeout = timeout;
    a.fp = ald_fingerprint(l, 1);
    return ald_alert_clone(&a);
}

START_TEST(test_merge)
{
    int64_t far = 4102444800000LL; /* 2100 */
    /* earliest start wins; a newer timeout endsAt does not shorten an explicit one */
    struct ald_alert *old = mk("A", 1000, far + 1000, 10, 0);
    struct ald_alert *nu = mk("A", 2000, far, 20, 1);
    struct ald_alert *m = ald_alert_merge(old, nu);
    ck_assert_int_eq(m->starts_ms, 1000);
    ck_assert_int_eq(m->ends_ms, far + 1000);
    ck_assert_int_eq(m->updated_ms, 20);
    ald_alert_free(m);
    /* argument order does not matter (younger by updatedAt) */
    m = ald_alert_merge(nu, old);
    ck_assert_int_eq(m->updated_ms, 20);
    ald_alert_free(m);
    /* resolution by the newer alert */
    struct ald_alert *res = mk("A", 2000, 3000, 30, 0);
    m = ald_alert_merge(old, res);
    ck_assert_int_eq(m->ends_ms, 3000);
    ck_assert(ald_alert_resolved(m, 5000));
    ck_assert(!ald_alert_resolved(old, 5000));
    ald_alert_free(m);
    ald_alert_free(old);
    ald_alert_free(nu);
    ald_alert_free(res);
}
END_TEST

START_TEST(test_map)
{
    struct ald_map m = {0};
    static int vals[5000];
    for (int i = 0; i < 5000; i++)
        ck_assert_int_eq(ald_map_put(&m, (uint64_t)i * 7919u, &vals[i]), 0);
    for (int i = 0; i < 5000; i += 2)
        ck_assert_ptr_eq(ald_map_del(&m, (uint64_t)i * 7919u), &vals[i]);
    for (int i = 0; i < 5000; i++)
        ck_assert_ptr_eq(ald_map_get(&m, (uint64_t)i * 7919u), i % 2 ? &vals[i] : NULL);
    /* churn does not grow the table without bound */
    size_t cap = m.cap;
    for (int round = 0; round < 20; round++) {
        for (int i = 0; i < 1000; i++)
            ald_map_put(&m, 1000000u + (uint64_t)i, &vals[i]);
        for (int i = 0; i < 1000; i++)
            ald_map_del(&m, 1000000u + (uint64_t)i);
    }
    ck_assert_uint_le(m.cap, cap * 2);
    size_t live = 0;
    for (size_t i = 0; i < m.cap; i++)
        live += ald_map_slot(&m, i);
    ck_assert_uint_eq(live, 2500);
    ald_map_deinit(&m);
}
END_TEST

START_TEST(test_silence_state)
{
    struct ald_silence s = {0};
    s.starts_ms = 100;
    s.ends_ms = 200;
    ck_assert_int_eq(ald_silence_state(&s, 50), ALD_SIL_PENDING);
    ck_assert_int_eq(ald_silence_state(&s, 100), ALD_SIL_ACTIVE);
    ck_assert_int_eq(ald_silence_state(&s, 200), ALD_SIL_EXPIRED);
    char a[37], b[37];
    ald_uuid(a);
    ald_uuid(b);
    ck_assert_int_eq(strlen(a), 36);
    ck_assert(a[14] == '4');
    ck_assert_str_ne(a, b);
}
END_TEST

START_TEST(test_webhook_payload)
{
    struct ald_alert *x = mk("Disk", 1700000000000LL, 1700000300000LL, 1, 1);
    struct ald_alert *y = mk("Disk2", 1700000000000LL, 1700000001500LL, 1, 0);
    struct ald_alert *v[] = {x, y};
    struct obs_label gl[] = {{"team", "a"}};
    struct obs_sbuf sb;
    obs_sbuf_init(&sb);
    ald_webhook_payload(&sb, "hook", "{}:{team=\"a\"}", gl, 1, v, 2, 3, "http://am:9093",
                        1700000002000LL);
    char fp1[17], fp2[17], want[1024];
    ald_fp_str(x->fp, fp1);
    ald_fp_str(y->fp, fp2);
    snprintf(want, sizeof(want),
             "{\"receiver\":\"hook\",\"status\":\"firing\",\"alerts\":["
             "{\"status\":\"firing\",\"labels\":{\"alertname\":\"Disk\"},\"annotations\":{},"
             "\"startsAt\":\"2023-11-14T22:13:20Z\",\"endsAt\":\"0001-01-01T00:00:00Z\","
             "\"generatorURL\":\"\",\"fingerprint\":\"%s\"},"
             "{\"status\":\"resolved\",\"labels\":{\"alertname\":\"Disk2\"},"
             "\"annotations\":{},\"startsAt\":\"2023-11-14T22:13:20Z\","
             "\"endsAt\":\"2023-11-14T22:13:21.5Z\",\"generatorURL\":\"\","
             "\"fingerprint\":\"%s\"}],"
             "\"groupLabels\":{\"team\":\"a\"},\"commonLabels\":{},\"commonAnnotations\":{},"
             "\"externalURL\":\"http://am:9093\",\"version\":\"4\","
             "\"groupKey\":\"{}:{team=\\\"a\\\"}\",\"truncatedAlerts\":3}",
             fp1, fp2);
    ck_assert_str_eq(sb.p, want);
    obs_sbuf_deinit(&sb);
    /* all resolved -> status resolved; common labels of identical sets */
    struct ald_alert *v2[] = {y};
    obs_sbuf_init(&sb);
    ald_webhook_payload(&sb, "hook", "k", NULL, 0, v2, 1, 0, "", 1700000002000LL);
    ck_assert(strstr(sb.p, "\"status\":\"resolved\",\"alerts\"") != NULL);
    ck_assert(strstr(sb.p, "\"commonLabels\":{\"alertname\":\"Disk2\"}") != NULL);
    obs_sbuf_deinit(&sb);
    ald_alert_free(x);
    ald_alert_free(y);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("ald_alerts");
    TCase *tc = tcase_create("model");
    tcase_add_test(tc, test_fingerprint);
    tcase_add_test(tc, test_merge);
    tcase_add_test(tc, test_times);
    tcase_add_test(tc, test_map);
    suite_add_tcase(s, tc);
    tc = tcase_create("matchers");
    tcase_add_test(tc, test_matchers);
    tcase_add_test(tc, test_silence_state);
    suite_add_tcase(s, tc);
    tc = tcase_create("webhook");
    tcase_add_test(tc, test_webhook_payload);
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
