/*
 * test_obs_http.c -- unit tests for common/http/obs_http.c: a real evhttp server on a loopback
 * port chosen by the kernel, driven by the libcurl client from the test thread.
 */
#include "http/obs_http.h"
#include "core/obs_mem.h"

#include <check.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

static struct event_base *base;
static struct obs_http_server *srv;
static pthread_t loop_thr;
static int port;

static void h_echo(struct obs_http_req *r, void *arg)
{
    (void)arg;
    size_t len;
    const uint8_t *b = obs_http_req_body(r, &len);
    const char *q = obs_http_req_param(r, "query");
    const char **ms;
    size_t nm = obs_http_req_params(r, "match[]", &ms);
    struct obs_sbuf out;
    obs_sbuf_init(&out);
    obs_sbuf_printf(&out, "method=%s path=%s rest=%s query=%s nmatch=%zu enc=%s body=",
                    obs_http_req_method(r), obs_http_req_path(r), obs_http_req_rest(r),
                    q ? q : "-", nm, obs_http_req_encoding(r));
    obs_sbuf_append(&out, b, len);
    obs_http_reply_sbuf(r, 200, "text/plain", &out);
}

static void h_err(struct obs_http_req *r, void *arg)
{
    (void)arg;
    obs_http_reply_prom_error(r, 400, "bad_data", "invalid parameter \"%s\"", "q\"x");
}

static void *loop_main(void *arg)
{
    (void)arg;
    event_base_loop(base, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

static void setup(void)
{
    evthread_use_pthreads();
    base = event_base_new();
    struct obs_err err = {0};
    srv = obs_http_server_new(base, "127.0.0.1", 0, &err);
    ck_assert_msg(srv != NULL, "%s", err.msg);
    port = obs_http_server_port(srv);
    obs_http_route(srv, "GET,POST", "/echo", h_echo, NULL);
    obs_http_route(srv, "GET", "/api/v1/label/*", h_echo, NULL);
    obs_http_route(srv, "GET", "/err", h_err, NULL);
    obs_http_route_limit(srv, "POST", "/small", 100, h_echo, NULL);
    pthread_create(&loop_thr, NULL, loop_main, NULL);
}

static void teardown(void)
{
    event_base_loopbreak(base);
    pthread_join(loop_thr, NULL);
    obs_http_server_free(srv);
    event_base_free(base);
}

static int req(const char *method, const char *path, const char *const *hdrs, const void *body,
               size_t len, struct obs_sbuf *out)
{
    char url[256];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
    struct obs_httpc_resp resp;
    obs_sbuf_init(&resp.body);
    struct obs_err err = {0};
    int rc = obs_httpc_do(method, url, hdrs, body, len, 5000, &resp, &err);
    ck_assert_msg(rc == 0, "%s", err.msg);
    obs_sbuf_reset(out);
    obs_sbuf_append(out, resp.body.p ? resp.body.p : "", resp.body.len);
    obs_sbuf_deinit(&resp.body);
    return resp.status;
}

START_TEST(test_routing)
{
    struct obs_sbuf b;
    obs_sbuf_init(&b);
    ck_assert_int_eq(req("GET", "/echo?query=sum+by+(job)+(rate(x%5B5m%5D))&match[]=a&match[]=b",
                         NULL, NULL, 0, &b), 200);
    ck_assert_msg(strstr(b.p, "query=sum by (job) (rate(x[5m]))") != NULL, "%s", b.p);
    ck_assert_msg(strstr(b.p, "nmatch=2") != NULL, "%s", b.p);
    ck_assert_int_eq(req("GET", "/api/v1/label/job/values", NULL, NULL, 0, &b), 200);
    ck_assert_msg(strstr(b.p, "rest=job/values") != NULL, "%s", b.p);
    ck_assert_int_eq(req("GET", "/nope", NULL, NULL, 0, &b), 404);
    ck_assert_int_eq(req("DELETE", "/echo", NULL, NULL, 0, &b), 405);
    ck_assert_int_eq(req("GET", "/err", NULL, NULL, 0, &b), 400);
    ck_assert_str_eq(b.p, "{\"status\":\"error\",\"errorType\":\"bad_data\","
                          "\"error\":\"invalid parameter \\\"q\\\"x\\\"\"}");
    obs_sbuf_deinit(&b);
}
END_TEST

START_TEST(test_form_post)
{
    struct obs_sbuf b;
    obs_sbuf_init(&b);
    const char *h[] = {"Content-Type: application/x-www-form-urlencoded", NULL};
    const char *body = "query=up%7Bjob%3D%22node%22%7D+%3D%3D+1";
    ck_assert_int_eq(req("POST", "/echo", h, body, strlen(body), &b), 200);
    ck_assert_msg(strstr(b.p, "query=up{job=\"node\"} == 1") != NULL, "%s", b.p);
    obs_sbuf_deinit(&b);
}
END_TEST

START_TEST(test_encodings)
{
    struct obs_sbuf b, enc;
    obs_sbuf_init(&b);
    obs_sbuf_init(&enc);
    const char *payload = "hello hello hello hello compressed world";
    ck_assert_int_eq(obs_gzip_encode((const uint8_t *)payload, strlen(payload), &enc), 0);
    const char *hg[] = {"Content-Encoding: gzip", NULL};
    ck_assert_int_eq(req("POST", "/echo", hg, enc.p, enc.len, &b), 200);
    ck_assert_msg(strstr(b.p, "enc=gzip body=hello hello hello hello compressed world") != NULL,
                  "%s", b.p);
    obs_sbuf_reset(&enc);
    ck_assert_int_eq(obs_snappy_encode((const uint8_t *)payload, strlen(payload), &enc), 0);
    const char *hs[] = {"Content-Encoding: snappy", NULL};
    ck_assert_int_eq(req("POST", "/echo", hs, enc.p, enc.len, &b), 200);
    ck_assert_msg(strstr(b.p, "body=hello hello") != NULL, "%s", b.p);
    /* corrupt snappy -> 400, server keeps serving */
    ck_assert_int_eq(req("POST", "/echo", hs, "\xff\xff\xff\xff\xff garbage", 11, &b), 400);
    ck_assert_int_eq(req("POST", "/echo", hg, "not gzip at all", 15, &b), 400);
    const char *hb[] = {"Content-Encoding: br", NULL};
    ck_assert_int_eq(req("POST", "/echo", hb, "x", 1, &b), 415);
    ck_assert_int_eq(req("GET", "/echo", NULL, NULL, 0, &b), 200);
    obs_sbuf_deinit(&b);
    obs_sbuf_deinit(&enc);
}
END_TEST

START_TEST(test_body_limit)
{
    struct obs_sbuf b;
    obs_sbuf_init(&b);
    char big[200];
    memset(big, 'a', sizeof(big));
    ck_assert_int_eq(req("POST", "/small", NULL, big, sizeof(big), &b), 413);
    ck_assert_msg(strstr(b.p, "too large") != NULL, "%s", b.p);
    ck_assert_int_eq(req("POST", "/small", NULL, big, 50, &b), 200);
    obs_sbuf_deinit(&b);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("obs_http");
    TCase *tc = tcase_create("server");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_routing);
    tcase_add_test(tc, test_form_post);
    tcase_add_test(tc, test_encodings);
    tcase_add_test(tc, test_body_limit);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
