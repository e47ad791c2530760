/*
 * test_obs_grpc.c -- obs_grpc server + client in one process, over real loopback HTTP/2.
 *
 * The server's handlers run on a libevent loop driven by the test's main thread; the blocking
 * client runs in a second thread. Covers: echo round trip with metadata, an error status with
 * a message, an 8 MiB message each way, UNIMPLEMENTED for an unknown method, UNAVAILABLE for a
 * dead peer, and a clean shutdown with a call the handler never answered.
 */
#include <check.h>
#include <event2/event.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/obs_mem.h"
#include "grpc/obs_grpc.h"

#define BIG (8u << 20)

struct fixture {
    struct event_base *base;
    struct obs_grpc_server *srv;
    struct obs_grpc_call *held; /* a call the "hold" handler never answers */
    atomic_int done;
};

/* Echo: reply with the request bytes prefixed by the x-test metadata value. */
static void h_echo(struct obs_grpc_call *c, const uint8_t *req, size_t len, void *arg)
{
    const char *v = obs_grpc_call_metadata(c, "x-test");
    struct obs_sbuf b;
    obs_sbuf_init(&b);
    obs_sbuf_puts(&b, v ? v : "-");
    obs_sbuf_putc(&b, ':');
    obs_sbuf_append(&b, req, len);
    obs_grpc_reply(c, OBS_GRPC_OK, NULL, b.p, b.len);
    obs_sbuf_deinit(&b);
}

static void h_fail(struct obs_grpc_call *c, const uint8_t *req, size_t len, void *arg)
{
    obs_grpc_reply(c, OBS_GRPC_INVALID_ARGUMENT, "bad thing: 42", NULL, 0);
}

/* Big: check the request is BIG bytes of a pattern and answer with BIG bytes. */
static void h_big(struct obs_grpc_call *c, const uint8_t *req, size_t len, void *arg)
{
    int ok = len == BIG;
    for (size_t i = 0; ok && i < len; i += 4093)
        ok = req[i] == (uint8_t)(i * 7);
    if (!ok) {
        obs_grpc_reply(c, OBS_GRPC_INVALID_ARGUMENT, "pattern mismatch", NULL, 0);
        return;
    }
    uint8_t *out = malloc(BIG);
    for (size_t i = 0; i < BIG; i++)
        out[i] = (uint8_t)(i * 3);
    obs_grpc_reply(c, OBS_GRPC_OK, NULL, out, BIG);
    free(out);
}

static void h_hold(struct obs_grpc_call *c, const uint8_t *req, size_t len, void *arg)
{
    struct fixture *f = arg;
    f->held = c;
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct fixture *f = arg;
    if (atomic_load(&f->done))
        event_base_loopbreak(f->base);
}

static void setup(struct fixture *f)
{
    memset(f, 0, sizeof(*f));
    f->base = event_base_new();
    struct obs_err err = {0};
    f->srv = obs_grpc_server_new(f->base, "127.0.0.1:0", 0, &err);
    ck_assert_msg(f->srv != NULL, "server_new: %s", err.msg);
    ck_assert_int_gt(obs_grpc_server_port(f->srv), 0);
    ck_assert_int_eq(obs_grpc_server_add_unary(f->srv, "/t.T/Echo", h_echo, f), 0);
    ck_assert_int_eq(obs_grpc_server_add_unary(f->srv, "/t.T/Fail", h_fail, f), 0);
    ck_assert_int_eq(obs_grpc_server_add_unary(f->srv, "/t.T/Big", h_big, f), 0);
    ck_assert_int_eq(obs_grpc_server_add_unary(f->srv, "/t.T/Hold", h_hold, f), 0);
    ck_assert_int_eq(obs_grpc_server_start(f->srv, &err), 0);
}

/* Run client_fn in a thread while the loop runs here; then free the server on the loop thread. */
static void run(struct fixture *f, void *(*client_fn)(void *))
{
    pthread_t t;
    struct timeval tv = {0, 10000};
    struct event *tick = event_new(f->base, -1, EV_PERSIST, on_tick, f);
    event_add(tick, &tv);
    pthread_create(&t, NULL, client_fn, f);
    event_base_dispatch(f->base);
    pthread_join(t, NULL);
    event_free(tick);
    obs_grpc_server_free(f->srv);
    event_base_free(f->base);
}

static char target[64];

static struct obs_grpc_channel *connect_to(struct fixture *f)
{
    snprintf(target, sizeof(target), "127.0.0.1:%d", obs_grpc_server_port(f->srv));
    struct obs_grpc_channel *ch = obs_grpc_channel_new(target);
    ck_assert_ptr_nonnull(ch);
    return ch;
}

static void *client_roundtrip(void *arg)
{
    struct fixture *f = arg;
    struct obs_grpc_channel *ch = connect_to(f);
    struct obs_sbuf resp;
    struct obs_err err = {0};
    int status = -1;
    const char *hdrs[] = {"x-test", "hello", NULL};
    obs_sbuf_init(&resp);
    for (int i = 0; i < 20; i++) {
        obs_sbuf_reset(&resp);
        char req[32];
        int n = snprintf(req, sizeof(req), "ping-%d", i);
        ck_assert_int_eq(
            obs_grpc_unary(ch, "/t.T/Echo", hdrs, req, (size_t)n, 5000, &resp, &status, &err), 0);
        ck_assert_int_eq(status, OBS_GRPC_OK);
        char want[64];
        snprintf(want, sizeof(want), "hello:%s", req);
        ck_assert_uint_eq(resp.len, strlen(want));
        ck_assert(memcmp(resp.p, want, resp.len) == 0);
    }
    /* empty request, no headers */
    obs_sbuf_reset(&resp);
    ck_assert_int_eq(obs_grpc_unary(ch, "/t.T/Echo", NULL, NULL, 0, 5000, &resp, &status, &err),
                     0);
    ck_assert_int_eq(status, OBS_GRPC_OK);
    ck_assert_uint_eq(resp.len, 2);
    obs_sbuf_deinit(&resp);
    obs_grpc_channel_free(ch);
    atomic_store(&f->done, 1);
    return NULL;
}

START_TEST(roundtrip)
{
    struct fixture f;
    setup(&f);
    run(&f, client_roundtrip);
}
END_TEST

static void *client_errors(void *arg)
{
    struct fixture *f = arg;
    struct obs_grpc_channel *ch = connect_to(f);
    struct obs_sbuf resp;
    struct obs_err err = {0};
    int status = -1;
    obs_sbuf_init(&resp);
    ck_assert_int_eq(obs_grpc_unary(ch, "/t.T/Fail", NULL, "x", 1, 5000, &resp, &status, &err),
                     0);
    ck_assert_int_eq(status, OBS_GRPC_INVALID_ARGUMENT);
    ck_assert_str_eq(err.msg, "bad thing: 42");
    ck_assert_uint_eq(resp.len, 0);
    /* unknown method -> UNIMPLEMENTED, and the server keeps serving */
    for (int i = 0; i < 5; i++) {
        ck_assert_int_eq(
            obs_grpc_unary(ch, "/t.T/Nope", NULL, "x", 1, 5000, &resp, &status, &err), 0);
        ck_assert_int_eq(status, OBS_GRPC_UNIMPLEMENTED);
    }
    ck_assert_int_eq(obs_grpc_unary(ch, "/t.T/Echo", NULL, "y", 1, 5000, &resp, &status, &err),
                     0);
    ck_assert_int_eq(status, OBS_GRPC_OK);
    obs_sbuf_deinit(&resp);
    obs_grpc_channel_free(ch);

    /* nobody listening -> a status (UNAVAILABLE or DEADLINE_EXCEEDED), not a hang */
    struct obs_grpc_channel *dead = obs_grpc_channel_new("127.0.0.1:1");
    obs_sbuf_init(&resp);
    ck_assert_int_eq(obs_grpc_unary(dead, "/t.T/Echo", NULL, "y", 1, 2000, &resp, &status, &err),
                     0);
    ck_assert(status == OBS_GRPC_UNAVAILABLE || status == OBS_GRPC_DEADLINE_EXCEEDED);
    obs_sbuf_deinit(&resp);
    obs_grpc_channel_free(dead);
    atomic_store(&f->done, 1);
    return NULL;
}

START_TEST(errors)
{
    struct fixture f;
    setup(&f);
    run(&f, client_errors);
}
END_TEST

static void *client_big(void *arg)
{
    struct fixture *f = arg;
    struct obs_grpc_channel *ch = connect_to(f);
    struct obs_sbuf resp;
    struct obs_err err = {0};
    int status = -1;
    uint8_t *req = malloc(BIG);
    for (size_t i = 0; i < BIG; i++)
        req[i] = (uint8_t)(i * 7);
    obs_sbuf_init(&resp);
    ck_assert_int_eq(obs_grpc_unary(ch, "/t.T/Big", NULL, req, BIG, 20000, &resp, &status, &err),
                     0);
    ck_assert_msg(status == OBS_GRPC_OK, "status %d: %s", status, err.msg);
    ck_assert_uint_eq(resp.len, BIG);
    for (size_t i = 0; i < BIG; i += 4099)
        ck_assert_uint_eq((uint8_t)resp.p[i], (uint8_t)(i * 3));
    obs_sbuf_deinit(&resp);
    free(req);
    obs_grpc_channel_free(ch);
    atomic_store(&f->done, 1);
    return NULL;
}

START_TEST(big_message)
{
    struct fixture f;
    setup(&f);
    run(&f, client_big);
}
END_TEST

static void *client_hold(void *arg)
{
    struct fixture *f = arg;
    struct obs_grpc_channel *ch = connect_to(f);
    struct obs_sbuf resp;
    struct obs_err err = {0};
    int status = -1;
    obs_sbuf_init(&resp);
    /* The handler never answers: the deadline fires on the client side. */
    ck_assert_int_eq(obs_grpc_unary(ch, "/t.T/Hold", NULL, "z", 1, 300, &resp, &status, &err),
                     0);
    ck_assert_int_eq(status, OBS_GRPC_DEADLINE_EXCEEDED);
    obs_sbuf_deinit(&resp);
    obs_grpc_channel_free(ch);
    atomic_store(&f->done, 1);
    return NULL;
}

START_TEST(shutdown_with_held_call)
{
    struct fixture f;
    setup(&f);
    run(&f, client_hold); /* server_free must cancel the held call and return */
    ck_assert_ptr_nonnull(f.held);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("obs_grpc");
    TCase *tc = tcase_create("rpc");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, roundtrip);
    tcase_add_test(tc, errors);
    tcase_add_test(tc, big_message);
    tcase_add_test(tc, shutdown_with_held_call);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_set_tap(sr, "/dev/stdout");
    srunner_run_all(sr, CK_SILENT);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
