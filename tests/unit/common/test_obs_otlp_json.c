/*
 * test_obs_otlp_json.c -- OTLP/JSON <-> protobuf codec (common/codec/obs_otlp_json.c).
 *
 * Decodes JSON the way the OTel JS SDK sends it (hex ids, decimal-string *UnixNano, enums as
 * ints or names), checks the protobuf with protobuf-c, renders it back, and checks errors.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/obs_otlp_json.h"
#include "proto/otlp_logs_service.pb-c.h"
#include "proto/otlp_metrics_service.pb-c.h"
#include "proto/otlp_trace_service.pb-c.h"

#define TREQ_DESC opentelemetry__proto__collector__trace__v1__export_trace_service_request__descriptor

static const char *trace_json =
    "{\"resourceSpans\":[{\"resource\":{\"attributes\":[{\"key\":\"service.name\","
    "\"value\":{\"stringValue\":\"svc\"}}]},\"scopeSpans\":[{\"scope\":{\"name\":\"lib\"},"
    "\"spans\":[{\"traceId\":\"0102030405060708090a0b0c0d0e0f10\",\"spanId\":\"a1a2a3a4a5a6a7a8\","
    "\"parentSpanId\":\"\",\"name\":\"GET /x\",\"kind\":2,"
    "\"startTimeUnixNano\":\"1700000000000000000\",\"endTimeUnixNano\":1700000000500000000,"
    "\"attributes\":[{\"key\":\"n\",\"value\":{\"intValue\":\"-42\"}},"
    "{\"key\":\"d\",\"value\":{\"doubleValue\":1.5}},{\"key\":\"b\",\"value\":{\"boolValue\":true}},"
    "{\"key\":\"raw\",\"value\":{\"bytesValue\":\"aGk=\"}}],"
    "\"status\":{\"code\":\"STATUS_CODE_ERROR\",\"message\":\"bad\"},\"unknownField\":[1,2]}]}]}]}";

START_TEST(decode_trace)
{
    struct obs_sbuf pb;
    struct obs_err err = {0};
    obs_sbuf_init(&pb);
    ck_assert_int_eq(obs_otlp_json_to_pb(&TREQ_DESC, trace_json, strlen(trace_json), &pb, &err),
                     0);
    Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceRequest *r =
        opentelemetry__proto__collector__trace__v1__export_trace_service_request__unpack(
            NULL, pb.len, (const uint8_t *)pb.p);
    ck_assert_ptr_nonnull(r);
    ck_assert_uint_eq(r->n_resource_spans, 1);
    Opentelemetry__Proto__Trace__V1__Span *sp = r->resource_spans[0]->scope_spans[0]->spans[0];
    ck_assert_uint_eq(sp->trace_id.len, 16);
    ck_assert_uint_eq(sp->trace_id.data[0], 1);
    ck_assert_uint_eq(sp->trace_id.data[15], 0x10);
    ck_assert_uint_eq(sp->span_id.len, 8);
    ck_assert_uint_eq(sp->span_id.data[7], 0xa8);
    ck_assert_uint_eq(sp->parent_span_id.len, 0);
    ck_assert_str_eq(sp->name, "GET /x");
    ck_assert_int_eq(sp->kind, 2);
    ck_assert_uint_eq(sp->start_time_unix_nano, 1700000000000000000ULL);
    ck_assert_uint_eq(sp->end_time_unix_nano, 1700000000500000000ULL);
    ck_assert_uint_eq(sp->n_attributes, 4);
    ck_assert_int_eq(sp->attributes[0]->value->int_value, -42);
    ck_assert(sp->attributes[1]->value->double_value == 1.5);
    ck_assert_int_eq(sp->attributes[2]->value->bool_value, 1);
    ck_assert_uint_eq(sp->attributes[3]->value->bytes_value.len, 2);
    ck_assert_int_eq(sp->status->code, 2);
    ck_assert_str_eq(sp->status->message, "bad");
    ck_assert_str_eq(r->resource_spans[0]->scope_spans[0]->scope->name, "lib");

    /* render back */
    struct obs_sbuf js;
    obs_sbuf_init(&js);
    ck_assert_int_eq(obs_otlp_pb_to_json(&r->base, 0, &js), 0);
    ck_assert_ptr_nonnull(strstr(js.p, "\"traceId\":\"0102030405060708090a0b0c0d0e0f10\""));
    ck_assert_ptr_nonnull(strstr(js.p, "\"spanId\":\"a1a2a3a4a5a6a7a8\""));
    ck_assert_ptr_nonnull(strstr(js.p, "\"startTimeUnixNano\":\"1700000000000000000\""));
    ck_assert_ptr_nonnull(strstr(js.p, "\"kind\":\"SPAN_KIND_SERVER\""));
    ck_assert_ptr_nonnull(strstr(js.p, "\"intValue\":\"-42\""));
    ck_assert_ptr_nonnull(strstr(js.p, "\"bytesValue\":\"aGk=\""));
    ck_assert_ptr_null(strstr(js.p, "parentSpanId")); /* default omitted */
    /* the rendering decodes to the same bytes */
    struct obs_sbuf pb2;
    obs_sbuf_init(&pb2);
    ck_assert_int_eq(obs_otlp_json_to_pb(&TREQ_DESC, js.p, js.len, &pb2, &err), 0);
    Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceRequest *r2 =
        opentelemetry__proto__collector__trace__v1__export_trace_service_request__unpack(
            NULL, pb2.len, (const uint8_t *)pb2.p);
    ck_assert_ptr_nonnull(r2);
    size_t n1 = protobuf_c_message_get_packed_size(&r->base);
    size_t n2 = protobuf_c_message_get_packed_size(&r2->base);
    ck_assert_uint_eq(n1, n2);
    uint8_t *b1 = malloc(n1), *b2 = malloc(n2);
    protobuf_c_message_pack(&r->base, b1);
    protobuf_c_message_pack(&r2->base, b2);
    ck_assert(memcmp(b1, b2, n1) == 0);
    free(b1);
    free(b2);
    /* enums as ints */
    obs_sbuf_reset(&js);
    ck_assert_int_eq(obs_otlp_pb_to_json(&r->base, OBS_OTLP_JSON_ENUM_INT, &js), 0);
    ck_assert_ptr_nonnull(strstr(js.p, "\"kind\":2"));
    protobuf_c_message_free_unpacked(&r->base, NULL);
    protobuf_c_message_free_unpacked(&r2->base, NULL);
    obs_sbuf_deinit(&js);
    obs_sbuf_deinit(&pb);
    obs_sbuf_deinit(&pb2);
}
END_TEST

static int decode_err(const char *json, char *msg, size_t cap)
{
    struct obs_sbuf pb;
    struct obs_err err = {0};
    obs_sbuf_init(&pb);
    int rc = obs_otlp_json_to_pb(&TREQ_DESC, json, strlen(json), &pb, &err);
    snprintf(msg, cap, "%s", err.msg);
    obs_sbuf_deinit(&pb);
    return rc;
}

START_TEST(errors)
{
    char m[256];
    ck_assert_int_eq(decode_err("{\"resourceSpans\":[", m, sizeof(m)), OBS_EINVAL);
    ck_assert_ptr_nonnull(strstr(m, "invalid JSON"));
    ck_assert_int_eq(decode_err("[]", m, sizeof(m)), OBS_EINVAL);
    ck_assert_int_eq(decode_err("{\"resourceSpans\":{}}", m, sizeof(m)), OBS_EINVAL);
    ck_assert_ptr_nonnull(strstr(m, "resourceSpans"));
    ck_assert_int_eq(
        decode_err("{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{\"traceId\":\"zz\"}]}]}]}",
                   m, sizeof(m)),
        OBS_EINVAL);
    ck_assert_ptr_nonnull(strstr(m, "traceId"));
    ck_assert_int_eq(decode_err("{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{"
                                "\"startTimeUnixNano\":\"12x\"}]}]}]}",
                                m, sizeof(m)),
                     OBS_EINVAL);
    ck_assert_int_eq(decode_err("{\"resourceSpans\":[{\"scopeSpans\":[{\"spans\":[{"
                                "\"kind\":\"NOPE\"}]}]}]}",
                                m, sizeof(m)),
                     OBS_EINVAL);
    /* deep nesting is refused, not a stack overflow */
    char deep[16384];
    size_t k = 0;
    k += (size_t)snprintf(deep + k, sizeof(deep) - k, "{\"resourceSpans\":[{\"resource\":{"
                                                       "\"attributes\":[{\"key\":\"a\",\"value\":");
    for (int i = 0; i < 40; i++)
        k += (size_t)snprintf(deep + k, sizeof(deep) - k, "{\"kvlistValue\":{\"values\":[{\"key\":"
                                                           "\"a\",\"value\":");
    k += (size_t)snprintf(deep + k, sizeof(deep) - k, "{}");
    for (int i = 0; i < 40; i++)
        k += (size_t)snprintf(deep + k, sizeof(deep) - k, "}]}}");
    snprintf(deep + k, sizeof(deep) - k, "}]}}]}");
    ck_assert_int_eq(decode_err(deep, m, sizeof(m)), OBS_EINVAL);
    /* empty object is a valid empty request */
    ck_assert_int_eq(decode_err("{}", m, sizeof(m)), 0);
}
END_TEST

START_TEST(logs_and_metrics)
{
    const char *logs = "{\"resourceLogs\":[{\"scopeLogs\":[{\"logRecords\":[{\"timeUnixNano\":"
                       "\"5\",\"severityNumber\":\"SEVERITY_NUMBER_WARN\",\"body\":{"
                       "\"stringValue\":\"hello\"},\"traceId\":\"0102030405060708090a0b0c0d0e0f10\""
                       "}]}]}]}";
    struct obs_sbuf pb;
    struct obs_err err = {0};
    obs_sbuf_init(&pb);
    ck_assert_int_eq(
        obs_otlp_json_to_pb(
            &opentelemetry__proto__collector__logs__v1__export_logs_service_request__descriptor,
            logs, strlen(logs), &pb, &err),
        0);
    Opentelemetry__Proto__Collector__Logs__V1__ExportLogsServiceRequest *lr =
        opentelemetry__proto__collector__logs__v1__export_logs_service_request__unpack(
            NULL, pb.len, (const uint8_t *)pb.p);
    ck_assert_ptr_nonnull(lr);
    Opentelemetry__Proto__Logs__V1__LogRecord *rec = lr->resource_logs[0]->scope_logs[0]->log_records[0];
    ck_assert_int_eq(rec->severity_number, 13);
    ck_assert_str_eq(rec->body->string_value, "hello");
    ck_assert_uint_eq(rec->trace_id.len, 16);
    protobuf_c_message_free_unpacked(&lr->base, NULL);

    const char *met = "{\"resourceMetrics\":[{\"scopeMetrics\":[{\"metrics\":[{\"name\":\"m\","
                      "\"histogram\":{\"aggregationTemporality\":2,\"dataPoints\":[{\"count\":\"3\","
                      "\"sum\":4.5,\"bucketCounts\":[\"1\",\"2\"],\"explicitBounds\":[1.0],"
                      "\"max\":\"Infinity\"}]}}]}]}]}";
    obs_sbuf_reset(&pb);
    ck_assert_int_eq(
        obs_otlp_json_to_pb(
            &opentelemetry__proto__collector__metrics__v1__export_metrics_service_request__descriptor,
            met, strlen(met), &pb, &err),
        0);
    Opentelemetry__Proto__Collector__Metrics__V1__ExportMetricsServiceRequest *mr =
        opentelemetry__proto__collector__metrics__v1__export_metrics_service_request__unpack(
            NULL, pb.len, (const uint8_t *)pb.p);
    ck_assert_ptr_nonnull(mr);
    Opentelemetry__Proto__Metrics__V1__Metric *m = mr->resource_metrics[0]->scope_metrics[0]->metrics[0];
    ck_assert_int_eq(m->data_case, OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_HISTOGRAM);
    Opentelemetry__Proto__Metrics__V1__HistogramDataPoint *dp = m->histogram->data_points[0];
    ck_assert_uint_eq(dp->count, 3);
    ck_assert_int_eq(dp->opt_sum_case,
                     OPENTELEMETRY__PROTO__METRICS__V1__HISTOGRAM_DATA_POINT__OPT_SUM_SUM);
    ck_assert(dp->sum == 4.5);
    ck_assert_uint_eq(dp->n_bucket_counts, 2);
    ck_assert_uint_eq(dp->bucket_counts[1], 2);
    ck_assert_int_eq(dp->opt_min_case,
                     OPENTELEMETRY__PROTO__METRICS__V1__HISTOGRAM_DATA_POINT__OPT_MIN__NOT_SET);
    struct obs_sbuf js;
    obs_sbuf_init(&js);
    ck_assert_int_eq(obs_otlp_pb_to_json(&mr->base, 0, &js), 0);
    ck_assert_ptr_nonnull(strstr(js.p, "\"max\":\"Infinity\""));
    ck_assert_ptr_nonnull(strstr(js.p, "\"bucketCounts\":[\"1\",\"2\"]"));
    ck_assert_ptr_null(strstr(js.p, "\"min\""));
    protobuf_c_message_free_unpacked(&mr->base, NULL);
    obs_sbuf_deinit(&js);
    obs_sbuf_deinit(&pb);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("obs_otlp_json");
    TCase *tc = tcase_create("codec");
    tcase_add_test(tc, decode_trace);
    tcase_add_test(tc, errors);
    tcase_add_test(tc, logs_and_metrics);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_set_tap(sr, "/dev/stdout");
    srunner_run_all(sr, CK_SILENT);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
