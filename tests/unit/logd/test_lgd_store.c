/*
 * test_lgd_store.c -- unit tests for logd/store.c, the query engine over it (engine.c) and
 * the push/WAL codecs (push.c).
 */
#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "core/obs_mem.h"
#include "logd/engine.h"
#include "logd/push.h"
#include "logd/store.h"
#include "proto/loki_push.pb-c.h"

static struct lgd_store *S;
static struct lgd_tenant *T;

static struct lgd_stream *stream2(const char *n1, const char *v1, const char *n2, const char *v2)
{
    struct obs_label l[2] = {{n1, v1}, {n2, v2}};
    return lgd_tenant_stream(T, l, 2, 1);
}

static void setup(void)
{
    S = lgd_store_new();
    ck_assert_ptr_nonnull(S);
    T = lgd_store_tenant(S, "fake", 1);
    ck_assert_ptr_nonnull(T);
}

static void teardown(void) { lgd_store_free(S); }

static void add(struct lgd_stream *st, int64_t ts, const char *line)
{
    ck_assert_int_eq(lgd_stream_append(T, st, ts, line, strlen(line), NULL, 0), 0);
}

START_TEST(test_streams_and_order)
{
    struct lgd_stream *a = stream2("app", "a", "env", "dev");
    ck_assert_ptr_eq(stream2("app", "a", "env", "dev"), a);
    ck_assert_str_eq(a->lstr, "{app=\"a\", env=\"dev\"}");
    add(a, 30, "c");
    add(a, 10, "a");
    add(a, 20, "b");
    add(a, 20, "b2");
    ck_assert_int_eq(lgd_stream_append(T, a, 20, "b", 1, NULL, 0), OBS_EEXIST);
    ck_assert_uint_eq(a->n, 4);
    ck_assert(a->e[0].ts == 10 && a->e[1].ts == 20 && a->e[3].ts == 30);
    ck_assert(a->mint == 10 && a->maxt == 30);
    ck_assert_uint_eq(lgd_stream_lower_bound(a, 20), 1);
    ck_assert_uint_eq(lgd_stream_lower_bound(a, 31), 4);
    struct obs_label meta[] = {{"trace", "t1"}, {"user", "u"}};
    ck_assert_int_eq(lgd_stream_append(T, a, 40, "m", 1, meta, 2), 0);
    const char *n, *v;
    lgd_entry_meta(&a->e[4], 1, &n, &v);
    ck_assert_str_eq(n, "user");
    ck_assert_str_eq(v, "u");
    ck_assert(T->entries == 5);
}
END_TEST

START_TEST(test_select)
{
    struct lgd_stream *a = stream2("app", "a", "env", "dev");
    struct lgd_stream *b = stream2("app", "b", "env", "prod");
    struct lgd_stream *c = stream2("app", "c", "env", "prod");
    add(a, 100, "x");
    add(b, 200, "y");
    add(c, 300, "z");
    struct lgd_matcher m[2];
    struct obs_err err;
    ck_assert_int_eq(lgd_matcher_init(&m[0], LGD_M_EQ, "env", "prod", &err), 0);
    ck_assert_int_eq(lgd_matcher_init(&m[1], LGD_M_RE, "app", "b|c", &err), 0);
    struct lgd_stream **out;
    ck_assert_int_eq(lgd_tenant_select(T, m, 2, 0, 1000, &out), 2);
    ck_assert_ptr_eq(out[0], b);
    obs_free(out);
    ck_assert_int_eq(lgd_tenant_select(T, m, 2, 250, 1000, &out), 1); /* time pruning */
    ck_assert_ptr_eq(out[0], c);
    obs_free(out);
    lgd_matcher_deinit(&m[1]);
    ck_assert_int_eq(lgd_matcher_init(&m[1], LGD_M_NRE, "app", "b", &err), 0);
    ck_assert_int_eq(lgd_tenant_select(T, &m[1], 1, 0, 1000, &out), 2);
    obs_free(out);
    ck_assert_int_eq(lgd_tenant_select(T, m, 1, 0, 1000, &out), 2);
    obs_free(out);
    lgd_matcher_deinit(&m[0]);
    ck_assert_int_eq(lgd_matcher_init(&m[0], LGD_M_EQ, "env", "nope", &err), 0);
    ck_assert_int_eq(lgd_tenant_select(T, m, 1, 0, 1000, &out), 0);
    obs_free(out);
    lgd_matcher_deinit(&m[0]);
    lgd_matcher_deinit(&m[1]);
    ck_assert_int_eq(lgd_matcher_init(&m[0], LGD_M_RE, "a", "(", &err), OBS_EINVAL);
}
END_TEST

/* Run a query and return its parsed JSON data object ({"resultType":..,"result":..}). */
static json_t *query(const char *q, int64_t start, int64_t end, int64_t step, int instant,
                     size_t limit, int forward)
{
    struct lgd_expr *e = NULL;
    struct obs_err err;
    obs_err_clear(&err);
    ck_assert_msg(lgd_logql_parse(q, &e, &err) == 0, "%s", err.msg);
    struct obs_sbuf o;
    obs_sbuf_init(&o);
    obs_sbuf_putc(&o, '{');
    struct lgd_qstats st = {0};
    int rc = lgd_expr_is_log(e) ? lgd_engine_logs(T, e, start, end, limit, forward, &o, &st, &err)
                                : lgd_engine_metric(T, e, start, end, step, instant, NULL, &o,
                                                    &st, &err);
    ck_assert_msg(rc == 0, "%s", err.msg);
    obs_sbuf_putc(&o, '}');
    json_error_t je;
    json_t *j = json_loads(o.p, 0, &je);
    ck_assert_msg(j != NULL, "bad json: %s", o.p);
    obs_sbuf_deinit(&o);
    lgd_expr_free(e);
    return j;
}

#define SEC 1000000000LL

START_TEST(test_engine_logs)
{
    struct lgd_stream *a = stream2("app", "a", "lvl", "info");
    struct lgd_stream *b = stream2("app", "a", "lvl", "err");
    for (int i = 0; i < 10; i++) {
        char l[32];
        snprintf(l, sizeof(l), "line %d", i);
        add(i % 2 ? b : a, i * SEC, l);
    }
    json_t *j = query("{app=\"a\"}", 0, 10 * SEC, 0, 0, 3, 0);
    ck_assert_str_eq(json_string_value(json_object_get(j, "resultType")), "streams");
    json_t *res = json_object_get(j, "result");
    ck_assert_uint_eq(json_array_size(res), 2);
    /* newest first: 9 (err), 8 (info), 7 (err) -> err stream first with 9, 7 */
    json_t *s0 = json_array_get(res, 0);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(s0, "stream"), "lvl")),
                     "err");
    json_t *vals = json_object_get(s0, "values");
    ck_assert_uint_eq(json_array_size(vals), 2);
    ck_assert_str_eq(json_string_value(json_array_get(json_array_get(vals, 0), 0)), "9000000000");
    ck_assert_str_eq(json_string_value(json_array_get(json_array_get(vals, 1), 1)), "line 7");
    json_decref(j);
    /* end is exclusive, start inclusive */
    j = query("{app=\"a\"} |= \"line\"", 2 * SEC, 4 * SEC, 0, 0, 100, 1);
    res = json_object_get(j, "result");
    size_t total = 0;
    for (size_t i = 0; i < json_array_size(res); i++)
        total += json_array_size(json_object_get(json_array_get(res, i), "values"));
    ck_assert_uint_eq(total, 2);
    json_decref(j);
}
END_TEST

START_TEST(test_engine_metric)
{
    struct lgd_stream *a = stream2("app", "a", "lvl", "info");
    struct lgd_stream *b = stream2("app", "a", "lvl", "err");
    for (int i = 1; i <= 10; i++)
        add(i <= 6 ? a : b, i * SEC, "xxxx");
    json_t *j = query("sum by (app) (count_over_time({app=\"a\"}[10s]))", 0, 10 * SEC, 0, 1, 0, 0);
    ck_assert_str_eq(json_string_value(json_object_get(j, "resultType")), "vector");
    json_t *r0 = json_array_get(json_object_get(j, "result"), 0);
    ck_assert_str_eq(json_string_value(json_array_get(json_object_get(r0, "value"), 1)), "10");
    ck_assert(json_number_value(json_array_get(json_object_get(r0, "value"), 0)) == 10.0);
    json_decref(j);

    /* matrix: window (t-5s, t] at t = 0, 5, 10 */
    j = query("count_over_time({app=\"a\", lvl=\"info\"}[5s])", 0, 10 * SEC, 5 * SEC, 0, 0, 0);
    ck_assert_str_eq(json_string_value(json_object_get(j, "resultType")), "matrix");
    json_t *vals = json_object_get(json_array_get(json_object_get(j, "result"), 0), "values");
    ck_assert_uint_eq(json_array_size(vals), 2); /* t=0 has no point */
    ck_assert_str_eq(json_string_value(json_array_get(json_array_get(vals, 0), 1)), "5");
    ck_assert_str_eq(json_string_value(json_array_get(json_array_get(vals, 1), 1)), "1");
    json_decref(j);

    j = query("bytes_rate({app=\"a\"}[10s]) * 2", 0, 10 * SEC, 0, 1, 0, 0);
    json_t *res = json_object_get(j, "result");
    ck_assert_uint_eq(json_array_size(res), 2);
    /* sorted by labels: err first (4 entries * 4 bytes / 10s * 2) */
    ck_assert_str_eq(json_string_value(json_array_get(json_object_get(json_array_get(res, 0),
                                                                      "value"), 1)), "3.2");
    json_decref(j);

    j = query("count_over_time({app=\"a\"}[10s]) and count_over_time({lvl=\"err\"}[10s])", 0,
              10 * SEC, 0, 1, 0, 0);
    ck_assert_uint_eq(json_array_size(json_object_get(j, "result")), 1);
    json_decref(j);

    j = query("absent_over_time({app=\"nope\"}[1s])", 0, 10 * SEC, 0, 1, 0, 0);
    r0 = json_array_get(json_object_get(j, "result"), 0);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(r0, "metric"), "app")),
                     "nope");
    json_decref(j);

    j = query("2 * 3", 0, 10 * SEC, 0, 1, 0, 0);
    ck_assert_str_eq(json_string_value(json_object_get(j, "resultType")), "scalar");
    ck_assert_str_eq(json_string_value(json_array_get(json_object_get(j, "result"), 1)), "6");
    json_decref(j);
}
END_TEST

START_TEST(test_wal_roundtrip)
{
    struct obs_label l[] = {{"app", "a\"q"}, {"env", "x"}};
    struct obs_label meta[] = {{"k", "v"}};
    struct lgd_push_entry e[] = {{-5, "neg", 3, NULL, 0}, {1700000000123456789LL, "l2", 2, meta, 1}};
    struct lgd_batch_stream bs = {l, 2, NULL, e, 2};
    struct obs_sbuf rec;
    obs_sbuf_init(&rec);
    ck_assert_int_eq(lgd_wal_encode("tenant1", &bs, 1, &rec), 0);
    struct lgd_push p;
    const char *tenant;
    ck_assert_int_eq(lgd_wal_decode((const uint8_t *)rec.p, rec.len, &tenant, &p), 0);
    ck_assert_str_eq(tenant, "tenant1");
    ck_assert_uint_eq(p.n, 1);
    ck_assert_str_eq(p.s[0].labels, "{app=\"a\\\"q\", env=\"x\"}");
    ck_assert_uint_eq(p.s[0].n, 2);
    ck_assert(p.s[0].e[0].ts == -5);
    ck_assert(p.s[0].e[1].ts == 1700000000123456789LL);
    ck_assert_str_eq(p.s[0].e[1].meta[0].value, "v");
    lgd_push_deinit(&p);
    /* every truncation is rejected cleanly */
    for (size_t cut = 0; cut < rec.len; cut++) {
        ck_assert_int_ne(lgd_wal_decode((const uint8_t *)rec.p, cut, &tenant, &p), 0);
        lgd_push_deinit(&p);
    }
    obs_sbuf_deinit(&rec);
}
END_TEST

START_TEST(test_push_decode)
{
    /* protobuf: pack with protobuf-c, decode with ours */
    Logproto__Timestamp ts = LOGPROTO__TIMESTAMP__INIT;
    ts.seconds = 1700000000;
    ts.nanos = 5;
    Logproto__LabelPairAdapter lp = LOGPROTO__LABEL_PAIR_ADAPTER__INIT;
    lp.name = "trace_id";
    lp.value = "abc";
    Logproto__LabelPairAdapter *lps[] = {&lp};
    Logproto__EntryAdapter ea = LOGPROTO__ENTRY_ADAPTER__INIT;
    ea.timestamp = &ts;
    ea.line = "hello";
    ea.n_structuredmetadata = 1;
    ea.structuredmetadata = lps;
    Logproto__EntryAdapter *eas[] = {&ea};
    Logproto__StreamAdapter sa = LOGPROTO__STREAM_ADAPTER__INIT;
    sa.labels = "{a=\"b\"}";
    sa.n_entries = 1;
    sa.entries = eas;
    Logproto__StreamAdapter *sas[] = {&sa};
    Logproto__PushRequest req = LOGPROTO__PUSH_REQUEST__INIT;
    req.n_streams = 1;
    req.streams = sas;
    uint8_t buf[256];
    size_t n = logproto__push_request__pack(&req, buf);
    struct lgd_push p;
    struct obs_err err;
    ck_assert_int_eq(lgd_push_decode_proto(buf, n, &p, &err), 0);
    ck_assert_uint_eq(p.n, 1);
    ck_assert_str_eq(p.s[0].labels, "{a=\"b\"}");
    ck_assert(p.s[0].e[0].ts == 1700000000000000005LL);
    ck_assert_str_eq(p.s[0].e[0].meta[0].name, "trace_id");
    lgd_push_deinit(&p);
    ck_assert_int_eq(lgd_push_decode_proto((const uint8_t *)"\x0a\xff", 2, &p, &err), OBS_EINVAL);
    lgd_push_deinit(&p);

    const char *js = "{\"streams\":[{\"stream\":{\"b\":\"x\\\"y\",\"a\":\"1\"},"
                     "\"values\":[[\"123\",\"l1\"],[\"456\",\"l2\",{\"m\":\"v\"}]]}]}";
    ck_assert_int_eq(lgd_push_decode_json((const uint8_t *)js, strlen(js), &p, &err), 0);
    ck_assert_str_eq(p.s[0].labels, "{b=\"x\\\"y\", a=\"1\"}");
    ck_assert(p.s[0].e[1].ts == 456);
    ck_assert_uint_eq(p.s[0].e[1].nmeta, 1);
    ck_assert_uint_eq(p.nentries, 2);
    lgd_push_deinit(&p);
    const char *bad[] = {"{", "[]", "{\"streams\":[{\"stream\":{},\"values\":[[1]]}]}",
                         "{\"streams\":[{\"stream\":{\"a\":1},\"values\":[]}]}",
                         "{\"streams\":[{\"stream\":{\"a\":\"1\"},\"values\":[[\"x\",\"l\"]]}]}",
                         "{\"streams\":[{\"stream\":{\"a\":\"1\"},\"values\":[[\"1\",2]]}]}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_int_eq(lgd_push_decode_json((const uint8_t *)bad[i], strlen(bad[i]), &p, &err),
                         OBS_EINVAL);
        lgd_push_deinit(&p);
    }
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("lgd_store");
    TCase *tc = tcase_create("store");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_streams_and_order);
    tcase_add_test(tc, test_select);
    suite_add_tcase(s, tc);
    tc = tcase_create("engine");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_engine_logs);
    tcase_add_test(tc, test_engine_metric);
    suite_add_tcase(s, tc);
    tc = tcase_create("codec");
    tcase_add_test(tc, test_wal_roundtrip);
    tcase_add_test(tc, test_push_decode);
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
