/*
 * test_config.c -- collectord/collector.c: OTel Collector config validation and the graph.
 */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "collectord/cld.h"
#include "core/obs_sbuf.h"

static struct obs_cf_node *root; /* kept while the graph borrows its nodes */

static struct cld_collector *load(const char *yaml, struct obs_err *err)
{
    root = obs_cf_load_string(yaml, strlen(yaml), "c.yaml", 0, err);
    ck_assert_ptr_nonnull(root);
    struct cld_collector *c = cld_config_parse(root, NULL, err);
    if (!c) {
        obs_cf_free(root);
        root = NULL;
    }
    return c;
}

static const char *const good =
    "receivers:\n"
    "  otlp:\n"
    "    protocols:\n"
    "      grpc: {endpoint: 0.0.0.0:4317}\n"
    "      http:\n"
    "  otlp/2:\n"
    "    protocols: {grpc: {endpoint: \"127.0.0.1:5317\"}}\n"
    "processors:\n"
    "  batch: {timeout: 200ms, send_batch_size: 8192}\n"
    "  batch/small: {send_batch_size: 10}\n"
    "  memory_limiter: {check_interval: 1s, limit_mib: 512}\n"
    "exporters:\n"
    "  otlp: {endpoint: 127.0.0.1:4417, tls: {insecure: true}}\n"
    "  otlphttp: {endpoint: http://127.0.0.1:4418}\n"
    "  debug: {}\n"
    "  debug/unused: {verbosity: detailed}\n"
    "extensions:\n"
    "  health_check: {endpoint: 0.0.0.0:13133}\n"
    "service:\n"
    "  extensions: [health_check]\n"
    "  pipelines:\n"
    "    traces: {receivers: [otlp, otlp/2], processors: [memory_limiter, batch], "
    "exporters: [otlp, debug]}\n"
    "    traces/2: {receivers: [otlp], processors: [batch/small], exporters: [otlphttp]}\n"
    "    logs: {receivers: [otlp], exporters: [debug]}\n"
    "  telemetry: {metrics: {address: 0.0.0.0:8888}, logs: {level: info}}\n";

START_TEST(test_good_graph)
{
    struct obs_err err = {0};
    struct cld_collector *c = load(good, &err);
    ck_assert_msg(c != NULL, "%s", err.msg);
    ck_assert_uint_eq(c->npipes, 3);
    /* shared: otlp, otlp/2 receivers; otlp, debug, otlphttp exporters; health_check.
     * debug/unused is not instantiated. */
    ck_assert_uint_eq(c->ninst, 6);
    ck_assert_str_eq(c->pipes[0]->id, "traces");
    ck_assert_uint_eq(c->pipes[0]->nprocs, 2);
    ck_assert_uint_eq(c->pipes[0]->nexps, 2);
    ck_assert_int_eq(c->pipes[2]->sig, CLD_LOGS);
    /* processors are per pipeline, exporters shared */
    ck_assert_ptr_ne(c->pipes[0]->procs[1], c->pipes[1]->procs[0]);
    ck_assert_str_eq(c->telemetry_addr, "0.0.0.0:8888");
    cld_collector_free(c);
    obs_cf_free(root);
}
END_TEST

struct bad_case {
    const char *yaml;
    const char *pos;  /* expected "c.yaml:L:C" prefix */
    const char *text; /* expected substring */
};

static const struct bad_case bad[] = {
    {"receivers: {otlp: {protocols: {grpc: }}}\nexporters: {debug: }\n"
     "service: {pipelines: {traces: {receivers: [otlp], exporters: [otlp/nope]}}}\n",
     "c.yaml:3:", "otlp/nope"},
    {"receivers: {otlp: {protocols: {grpc: }}}\nexporters: {kafka: {}}\n"
     "service: {pipelines: {traces: {receivers: [otlp], exporters: [kafka]}}}\n",
     "c.yaml:2:", "unknown type: \"kafka\""},
    {"receivers: {otlp: {protocols: {grpc: }}}\nexporters: {debug: }\n"
     "service: {pipelines: {traces: {receivers: [jaeger], exporters: [debug]}}}\n",
     "c.yaml:3:", "jaeger"},
    {"receivers: {otlp: {protocols: {grpc: }}}\nexporters: {debug: }\n"
     "service: {pipelines: {spans: {receivers: [otlp], exporters: [debug]}}}\n",
     "c.yaml:3:", "unknown signal"},
    {"receivers: {otlp: {protocols: {grpc: }}}\nexporters: {debug: }\n"
     "service: {pipelines: {traces: {receivers: [otlp]}}}\n",
     "c.yaml:3:", "at least one exporter"},
    {"receivers: {otlp: {protocols: {grpc: }}}\nexporters: {debug: }\nbogus: 1\n"
     "service: {pipelines: {traces: {receivers: [otlp], exporters: [debug]}}}\n",
     "c.yaml:3:", "unknown top-level key"},
    {"receivers: {otlp: {protocols: {grpc: {endpoint: x, nope: 1}}}}\nexporters: {debug: }\n"
     "service: {pipelines: {traces: {receivers: [otlp], exporters: [debug]}}}\n",
     "c.yaml:1:", "nope"},
    {"receivers: {otlp: {protocols: {grpc: }}}\nprocessors: {batch: {timeout: soon}}\n"
     "exporters: {debug: }\n"
     "service: {pipelines: {traces: {receivers: [otlp], processors: [batch], "
     "exporters: [debug]}}}\n",
     "c.yaml:2:", "timeout"},
    {"receivers: {otlp: {protocols: {grpc: }}}\nexporters: {otlp: {endpoint: \"h:1\"}}\n"
     "service: {pipelines: {traces: {receivers: [otlp], exporters: [otlp]}}}\n",
     "c.yaml:2:", "insecure"},
    {"receivers: {otlp: {protocols: {grpc: }}}\nexporters: {debug: }\n"
     "extensions: {health_check: }\n"
     "service: {extensions: [zpages], pipelines: {traces: {receivers: [otlp], "
     "exporters: [debug]}}}\n",
     "c.yaml:4:", "zpages"},
    {"receivers: {otlp: {protocols: {grpc: }}}\nexporters: {debug/a/b: }\n"
     "service: {pipelines: {traces: {receivers: [otlp], exporters: [debug]}}}\n",
     "c.yaml:2:", "invalid component id"},
    {"receivers: {otlp: {}}\nexporters: {debug: }\n"
     "service: {pipelines: {traces: {receivers: [otlp], exporters: [debug]}}}\n",
     "c.yaml:1:", "at least one protocol"},
};

START_TEST(test_bad)
{
    struct obs_err err = {0};
    struct cld_collector *c = load(bad[_i].yaml, &err);
    ck_assert_msg(c == NULL, "case %d accepted", _i);
    char full[400];
    if (err.file)
        snprintf(full, sizeof full, "%s:%d:%d: %s", err.file, err.line, err.col, err.msg);
    else
        snprintf(full, sizeof full, "%s", err.msg);
    ck_assert_msg(strstr(full, bad[_i].pos) != NULL, "case %d: want %s in \"%s\"", _i,
                  bad[_i].pos, full);
    ck_assert_msg(strstr(full, bad[_i].text) != NULL, "case %d: want %s in \"%s\"", _i,
                  bad[_i].text, full);
}
END_TEST

START_TEST(test_endpoint)
{
    char host[64];
    int port;
    ck_assert_int_eq(cld_parse_endpoint("0.0.0.0:4317", host, sizeof host, &port), 0);
    ck_assert_str_eq(host, "0.0.0.0");
    ck_assert_int_eq(port, 4317);
    ck_assert_int_eq(cld_parse_endpoint("http://127.0.0.1:4418", host, sizeof host, &port), 0);
    ck_assert_str_eq(host, "127.0.0.1");
    ck_assert_int_eq(cld_parse_endpoint(":8888", host, sizeof host, &port), 0);
    ck_assert_str_eq(host, "");
    ck_assert_int_eq(cld_parse_endpoint("[::1]:9", host, sizeof host, &port), 0);
    ck_assert_str_eq(host, "::1");
    ck_assert_int_lt(cld_parse_endpoint("nohostport", host, sizeof host, &port), 0);
    ck_assert_int_lt(cld_parse_endpoint("h:99999", host, sizeof host, &port), 0);
}
END_TEST

START_TEST(test_json_to_pb)
{
    const char *js = "{\"resourceSpans\":[{\"resource\":{\"attributes\":[{\"key\":\"service.name\","
                     "\"value\":{\"stringValue\":\"svc\"}}]},\"scopeSpans\":[{\"scope\":{\"name\":"
                     "\"s\"},\"spans\":[{\"traceId\":\"0102030405060708090a0b0c0d0e0f10\","
                     "\"spanId\":\"0102030405060708\",\"name\":\"op\",\"kind\":2,"
                     "\"startTimeUnixNano\":\"1700000000000000000\",\"endTimeUnixNano\":"
                     "1700000000000000001,\"attributes\":[{\"key\":\"i\",\"value\":{\"intValue\":"
                     "\"7\"}}],\"status\":{\"code\":\"STATUS_CODE_ERROR\"}},{\"trace_id\":"
                     "\"0102030405060708090a0b0c0d0e0f10\",\"span_id\":\"0102030405060709\","
                     "\"unknownField\":1}]}]}]}";
    struct obs_sbuf out;
    struct obs_err err = {0};
    obs_sbuf_init(&out);
    ck_assert_int_eq(cld_otlp_json_to_pb(CLD_TRACES, js, strlen(js), &out, &err), 0);
    size_t items = 0;
    ck_assert_int_eq(cld_otlp_count(CLD_TRACES, (const uint8_t *)out.p, out.len, &items), 0);
    ck_assert_uint_eq(items, 2);
    /* the trace id bytes are in the encoding */
    const uint8_t id[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    ck_assert_ptr_nonnull(memmem(out.p, out.len, id, sizeof id));
    obs_sbuf_deinit(&out);

    obs_sbuf_init(&out);
    ck_assert_int_eq(cld_otlp_json_to_pb(CLD_TRACES, "{\"resourceSpans\":[{\"scopeSpans\":[{"
                                                     "\"spans\":[{\"traceId\":\"zz\"}]}]}]}",
                                         57, &out, &err),
                     OBS_EINVAL);
    ck_assert_int_eq(cld_otlp_json_to_pb(CLD_TRACES, "[1,2", 4, &out, &err), OBS_EINVAL);
    obs_sbuf_deinit(&out);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("collectord_config");
    TCase *tc = tcase_create("validate");
    tcase_add_test(tc, test_good_graph);
    tcase_add_loop_test(tc, test_bad, 0, (int)(sizeof(bad) / sizeof(bad[0])));
    tcase_add_test(tc, test_endpoint);
    suite_add_tcase(s, tc);
    TCase *tj = tcase_create("otlp_json");
    tcase_add_test(tj, test_json_to_pb);
    suite_add_tcase(s, tj);
    SRunner *sr = srunner_create(s);
    srunner_set_tap(sr, "-");
    srunner_run_all(sr, CK_ENV);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    return nf ? 1 : 0;
}
