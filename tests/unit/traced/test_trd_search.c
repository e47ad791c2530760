/*
 * test_trd_search.c -- traced store + search logic (traced/store.c, traced/search.c).
 *
 * Requests are written as OTLP/JSON, turned into protobuf by the real codec, and fed to the
 * store exactly as the distributor does; then trace-by-id rendering, search matching,
 * logfmt tags, Go durations, id parsing and eviction are checked.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/obs_otlp_json.h"
#include "traced/trd.h"

#define TREQ_DESC opentelemetry__proto__collector__trace__v1__export_trace_service_request__descriptor

/* Span JSON: trace id byte t, span id byte s, parent p (0 = root), start/end in ms. */
static void span_json(struct obs_sbuf *b, int t, int s, int p, const char *name, long st_ms,
                      long en_ms, const char *attrs, int status)
{
    char pid[17] = "";
    if (p)
        snprintf(pid, sizeof(pid), "%016x", p);
    obs_sbuf_printf(b,
                    "{\"traceId\":\"%032x\",\"spanId\":\"%016x\",\"parentSpanId\":\"%s\","
                    "\"name\":\"%s\",\"kind\":2,\"startTimeUnixNano\":\"%ld000000\","
                    "\"endTimeUnixNano\":\"%ld000000\",\"attributes\":[%s],"
                    "\"status\":{\"code\":%d}}",
                    t, s, pid, name, st_ms, en_ms, attrs ? attrs : "", status);
}

static trd_export_req *decode(const char *json)
{
    struct obs_sbuf pb;
    struct obs_err err = {0};
    obs_sbuf_init(&pb);
    ck_assert_msg(obs_otlp_json_to_pb(&TREQ_DESC, json, strlen(json), &pb, &err) == 0, "%s",
                  err.msg);
    trd_export_req *r = opentelemetry__proto__collector__trace__v1__export_trace_service_request__unpack(
        NULL, pb.len, (const uint8_t *)pb.p);
    ck_assert_ptr_nonnull(r);
    obs_sbuf_deinit(&pb);
    return r;
}

/* Two resources (svc-a, svc-b), three traces:
 *   trace 1: root "GET /a" (svc-a, 0..1500ms) + child "db" (svc-b, http.status_code=500, error)
 *   trace 2: root "GET /b" (svc-a, 0..100ms)
 *   trace 3: child only (svc-b), no root yet */
static struct trd_store *fixture(void)
{
    struct obs_sbuf b;
    obs_sbuf_init(&b);
    obs_sbuf_puts(&b, "{\"resourceSpans\":[{\"resource\":{\"attributes\":[{\"key\":\"service.name\","
                      "\"value\":{\"stringValue\":\"svc-a\"}}]},\"scopeSpans\":[{\"spans\":[");
    span_json(&b, 1, 1, 0, "GET /a", 1000, 2500, "{\"key\":\"http.method\",\"value\":{\"stringValue\":\"GET\"}}", 0);
    obs_sbuf_putc(&b, ',');
    span_json(&b, 2, 3, 0, "GET /b", 5000, 5100, NULL, 1);
    obs_sbuf_puts(&b, "]}]},{\"resource\":{\"attributes\":[{\"key\":\"service.name\","
                      "\"value\":{\"stringValue\":\"svc-b\"}}]},\"scopeSpans\":[{\"spans\":[");
    span_json(&b, 1, 2, 1, "db", 1100, 1200,
              "{\"key\":\"http.status_code\",\"value\":{\"intValue\":\"500\"}}", 2);
    obs_sbuf_putc(&b, ',');
    span_json(&b, 3, 4, 9, "orphan", 7000, 7001, NULL, 0);
    obs_sbuf_puts(&b, "]}]}]}");
    trd_export_req *r = decode(b.p);
    struct obs_err err = {0};
    ck_assert_int_eq(trd_export_validate(r, &err), 0);
    struct trd_store *s = trd_store_new();
    size_t n = 0;
    ck_assert_int_eq(trd_store_add(s, r, &n), 0);
    ck_assert_uint_eq(n, 4);
    opentelemetry__proto__collector__trace__v1__export_trace_service_request__free_unpacked(r, NULL);
    obs_sbuf_deinit(&b);
    return s;
}

static const struct trd_trace *get(struct trd_store *s, int t)
{
    char hex[33];
    uint8_t id[16];
    snprintf(hex, sizeof(hex), "%x", t);
    ck_assert_int_eq(trd_trace_id_parse(hex, id), 0);
    return trd_store_get(s, id);
}

START_TEST(store_split)
{
    struct trd_store *s = fixture();
    ck_assert_uint_eq(trd_store_ntraces(s), 3);
    ck_assert_uint_eq(trd_store_nspans(s), 4);
    const struct trd_trace *t1 = get(s, 1);
    ck_assert_ptr_nonnull(t1);
    ck_assert_uint_eq(t1->nspans, 2);
    ck_assert_uint_eq(t1->nbatches, 2); /* one per resource */
    ck_assert_str_eq(t1->root_service, "svc-a");
    ck_assert_str_eq(t1->root_name, "GET /a");
    ck_assert_int_eq(t1->start_ns, 1000000000LL);
    ck_assert_int_eq(t1->end_ns, 2500000000LL);
    const struct trd_trace *t3 = get(s, 3);
    ck_assert_ptr_null(t3->root_name);

    struct obs_sbuf b;
    obs_sbuf_init(&b);
    ck_assert_int_eq(trd_trace_encode_json(t1, 0, &b), 0);
    ck_assert(strncmp(b.p, "{\"batches\":[", 12) == 0);
    ck_assert_ptr_nonnull(strstr(b.p, "\"name\":\"GET /a\""));
    ck_assert_ptr_nonnull(strstr(b.p, "\"name\":\"db\""));
    ck_assert_ptr_nonnull(strstr(b.p, "svc-b"));
    ck_assert_ptr_null(strstr(b.p, "GET /b")); /* other trace's span not included */
    obs_sbuf_reset(&b);
    ck_assert_int_eq(trd_trace_encode_json(t1, 1, &b), 0);
    ck_assert(strncmp(b.p, "{\"trace\":{\"resourceSpans\":[", 27) == 0);
    obs_sbuf_reset(&b);
    ck_assert_int_eq(trd_trace_encode_pb(t1, &b), 0);
    Opentelemetry__Proto__Trace__V1__TracesData *td =
        opentelemetry__proto__trace__v1__traces_data__unpack(NULL, b.len, (const uint8_t *)b.p);
    ck_assert_ptr_nonnull(td);
    ck_assert_uint_eq(td->n_resource_spans, 2);
    ck_assert_uint_eq(td->resource_spans[1]->scope_spans[0]->n_spans, 1);
    opentelemetry__proto__trace__v1__traces_data__free_unpacked(td, NULL);
    obs_sbuf_deinit(&b);

    /* a second batch for trace 2 appends */
    trd_export_req *r = decode("{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"traceId\":"
                               "\"00000000000000000000000000000002\",\"spanId\":\"0000000000000009\","
                               "\"parentSpanId\":\"0000000000000003\",\"name\":\"late\","
                               "\"startTimeUnixNano\":\"4000000000\",\"endTimeUnixNano\":\"6000000000\"}]}]}]}");
    ck_assert_int_eq(trd_store_add(s, r, NULL), 0);
    opentelemetry__proto__collector__trace__v1__export_trace_service_request__free_unpacked(r, NULL);
    const struct trd_trace *t2 = get(s, 2);
    ck_assert_uint_eq(t2->nspans, 2);
    ck_assert_int_eq(t2->start_ns, 4000000000LL);
    ck_assert_int_eq(t2->end_ns, 6000000000LL);
    ck_assert_str_eq(t2->root_name, "GET /b");

    trd_store_trim(s, 1); /* keeps the newest (trace 3 arrived last in the first batch order) */
    ck_assert_uint_eq(trd_store_ntraces(s), 1);
    trd_store_free(s);
}
END_TEST

START_TEST(validate)
{
    struct obs_err err = {0};
    trd_export_req *r = decode("{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"traceId\":"
                               "\"0102\",\"spanId\":\"0000000000000009\"}]}]}]}");
    ck_assert_int_eq(trd_export_validate(r, &err), OBS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "trace id"));
    opentelemetry__proto__collector__trace__v1__export_trace_service_request__free_unpacked(r, NULL);
    r = decode("{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"traceId\":"
               "\"00000000000000000000000000000002\",\"spanId\":\"09\"}]}]}]}");
    ck_assert_int_eq(trd_export_validate(r, &err), OBS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "span id"));
    opentelemetry__proto__collector__trace__v1__export_trace_service_request__free_unpacked(r, NULL);
}
END_TEST

static int count_hits(struct trd_store *s, const char *tags, const char *mind, const char *maxd)
{
    struct trd_search q = {0};
    struct obs_err err = {0};
    if (tags)
        ck_assert_int_eq(trd_search_parse_tags(&q, tags, &err), 0);
    if (mind)
        ck_assert_int_eq(trd_go_duration_ns(mind, &q.min_dur_ns), 0);
    if (maxd)
        ck_assert_int_eq(trd_go_duration_ns(maxd, &q.max_dur_ns), 0);
    int n = 0;
    for (int t = 1; t <= 3; t++)
        n += trd_search_match(get(s, t), &q);
    trd_search_deinit(&q);
    return n;
}

START_TEST(search_match)
{
    struct trd_store *s = fixture();
    ck_assert_int_eq(count_hits(s, NULL, NULL, NULL), 3);
    ck_assert_int_eq(count_hits(s, "service.name=svc-a", NULL, NULL), 2);
    ck_assert_int_eq(count_hits(s, "service.name=svc-b", NULL, NULL), 2);
    ck_assert_int_eq(count_hits(s, "resource.service.name=svc-b", NULL, NULL), 2);
    ck_assert_int_eq(count_hits(s, "span.service.name=svc-b", NULL, NULL), 0);
    ck_assert_int_eq(count_hits(s, "name=\"GET /a\"", NULL, NULL), 1);
    ck_assert_int_eq(count_hits(s, "http.status_code=500", NULL, NULL), 1);
    ck_assert_int_eq(count_hits(s, "status=error", NULL, NULL), 1);
    ck_assert_int_eq(count_hits(s, "status=ok", NULL, NULL), 1);
    /* every tag must hold on the same span */
    ck_assert_int_eq(count_hits(s, "service.name=svc-b http.status_code=500", NULL, NULL), 1);
    ck_assert_int_eq(count_hits(s, "service.name=svc-a http.status_code=500", NULL, NULL), 0);
    ck_assert_int_eq(count_hits(s, "http.method=GET name=\"GET /a\"", NULL, NULL), 1);
    ck_assert_int_eq(count_hits(s, "kind=server", NULL, NULL), 3);
    ck_assert_int_eq(count_hits(s, NULL, "1s", NULL), 1);
    ck_assert_int_eq(count_hits(s, NULL, "50ms", "200ms"), 1);
    ck_assert_int_eq(count_hits(s, NULL, NULL, "1ms"), 1);
    ck_assert_int_eq(count_hits(s, "service.name=svc-a", "1s", NULL), 1);

    struct trd_search q = {0};
    q.limit = 2;
    struct obs_sbuf b;
    obs_sbuf_init(&b);
    ck_assert_int_eq(trd_search_run(s, &q, &b), 0);
    /* most recent first: trace 3 (7s), trace 2 (5s); limit 2 */
    const char *p3 = strstr(b.p, "\"traceID\":\"3\"");
    const char *p2 = strstr(b.p, "\"traceID\":\"2\"");
    ck_assert_ptr_nonnull(p3);
    ck_assert_ptr_nonnull(p2);
    ck_assert(p3 < p2);
    ck_assert_ptr_null(strstr(b.p, "\"traceID\":\"1\""));
    ck_assert_ptr_nonnull(strstr(b.p, "\"rootServiceName\":\"" TRD_NO_ROOT "\""));
    ck_assert_ptr_nonnull(strstr(b.p, "\"inspectedTraces\":3"));
    obs_sbuf_reset(&b);
    q.limit = 10;
    q.start_s = 6;
    ck_assert_int_eq(trd_search_run(s, &q, &b), 0);
    ck_assert_ptr_nonnull(strstr(b.p, "\"traceID\":\"3\""));
    ck_assert_ptr_null(strstr(b.p, "\"traceID\":\"2\""));
    obs_sbuf_reset(&b);
    q.start_s = 0;
    ck_assert_int_eq(trd_search_run(s, &q, &b), 0);
    ck_assert_ptr_nonnull(strstr(b.p, "\"traceID\":\"1\",\"rootServiceName\":\"svc-a\","
                                      "\"rootTraceName\":\"GET /a\",\"startTimeUnixNano\":"
                                      "\"1000000000\",\"durationMs\":1500}"));
    obs_sbuf_reset(&b);
    ck_assert_int_eq(trd_search_tags(s, &b), 0);
    ck_assert_str_eq(b.p, "{\"tagNames\":[\"http.method\",\"http.status_code\",\"service.name\"]}");
    obs_sbuf_reset(&b);
    ck_assert_int_eq(trd_search_tag_values(s, "service.name", &b), 0);
    ck_assert_str_eq(b.p, "{\"tagValues\":[\"svc-a\",\"svc-b\"]}");
    obs_sbuf_deinit(&b);
    trd_store_free(s);
}
END_TEST

START_TEST(parsing)
{
    int64_t ns;
    ck_assert_int_eq(trd_go_duration_ns("1.5s", &ns), 0);
    ck_assert_int_eq(ns, 1500000000LL);
    ck_assert_int_eq(trd_go_duration_ns("2m30s", &ns), 0);
    ck_assert_int_eq(ns, 150000000000LL);
    ck_assert_int_eq(trd_go_duration_ns("100ms", &ns), 0);
    ck_assert_int_eq(ns, 100000000LL);
    ck_assert_int_eq(trd_go_duration_ns("300us", &ns), 0);
    ck_assert_int_eq(ns, 300000LL);
    ck_assert_int_eq(trd_go_duration_ns("0", &ns), 0);
    ck_assert_int_eq(trd_go_duration_ns("5", &ns), OBS_EINVAL);
    ck_assert_int_eq(trd_go_duration_ns("abc", &ns), OBS_EINVAL);
    ck_assert_int_eq(trd_go_duration_ns("", &ns), OBS_EINVAL);

    struct trd_search q = {0};
    struct obs_err err = {0};
    ck_assert_int_eq(trd_search_parse_tags(&q, " a=b  c=\"d e\" f.g=h\\i ", &err), 0);
    ck_assert_uint_eq(q.ntags, 3);
    ck_assert_str_eq(q.tags[1].key, "c");
    ck_assert_str_eq(q.tags[1].value, "d e");
    ck_assert_str_eq(q.tags[2].value, "h\\i");
    trd_search_deinit(&q);
    ck_assert_int_eq(trd_search_parse_tags(&q, "novalue", &err), OBS_EINVAL);
    trd_search_deinit(&q);
    ck_assert_int_eq(trd_search_parse_tags(&q, "a=\"open", &err), OBS_EINVAL);
    trd_search_deinit(&q);

    uint8_t id[16];
    char out[33];
    ck_assert_int_eq(trd_trace_id_parse("0102030405060708090a0b0c0d0e0f10", id), 0);
    ck_assert_uint_eq(id[15], 0x10);
    ck_assert_int_eq(trd_trace_id_parse("abc", id), 0);
    ck_assert_uint_eq(id[14], 0x0a);
    ck_assert_uint_eq(id[15], 0xbc);
    trd_trace_id_short(id, out);
    ck_assert_str_eq(out, "abc");
    ck_assert_int_eq(trd_trace_id_parse("xyz", id), OBS_EINVAL);
    ck_assert_int_eq(trd_trace_id_parse("", id), OBS_EINVAL);
    ck_assert_int_eq(trd_trace_id_parse("0102030405060708090a0b0c0d0e0f1011", id), OBS_EINVAL);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("trd_search");
    TCase *tc = tcase_create("search");
    tcase_add_test(tc, store_split);
    tcase_add_test(tc, validate);
    tcase_add_test(tc, search_match);
    tcase_add_test(tc, parsing);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_set_tap(sr, "/dev/stdout");
    srunner_run_all(sr, CK_SILENT);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
