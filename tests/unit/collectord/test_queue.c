/*
 * test_queue.c -- collectord/exporter_queue.c: the exporters' sending queue, in memory and
 * persistent (file_storage: a WAL on a real temporary directory).
 *
 * The "peer" is the queue's send callback, recording what it is given (in order) and
 * answering ok, retryable failure, or ok for the first K calls then failure. Covered:
 * enqueue/dequeue/ack order, restart recovery of undelivered batches (clean stop and a
 * crash: a forked child pushes and _exit()s without closing), no resend of delivered
 * batches, torn tails (garbage and a half-written last record), dequeue-side batching,
 * checkpoints bounding the WAL, a full queue, several consumers acking out of order, and
 * the config wiring (file_storage extension, durable pipelines, bad references).
 */
#include <check.h>
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "collectord/cld.h"
#include "core/obs_time.h"
#include "metrics/obs_metrics.h"

static char tdir[256];
static char qdir[300];

static void setup(void)
{
    snprintf(tdir, sizeof(tdir), "/tmp/test_cld_queue.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tdir));
    snprintf(qdir, sizeof qdir, "%s/exporter_otlp", tdir);
}

static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    (void)st, (void)flag, (void)f;
    return remove(p);
}

static void teardown(void) { nftw(tdir, rm_cb, 16, FTW_DEPTH | FTW_PHYS); }

/* --- the peer ----------------------------------------------------------------------------- */

enum { PEER_OK, PEER_DOWN, PEER_OK_THEN_DOWN };

struct peer {
    pthread_mutex_t mu;
    int mode;
    int ok_calls;         /* PEER_OK_THEN_DOWN: succeed this many calls */
    int calls;
    char got[4096][16];   /* payloads received, split back into 16-byte records */
    size_t ngot;
    size_t items;
    int sends;            /* successful send() calls */
    int64_t delay_ms;     /* sleep in send */
};

static void peer_init(struct peer *p, int mode)
{
    memset(p, 0, sizeof *p);
    pthread_mutex_init(&p->mu, NULL);
    p->mode = mode;
}

static int peer_send(void *arg, const struct cld_batch *b)
{
    struct peer *p = arg;
    if (p->delay_ms) {
        struct timespec ts = {0, p->delay_ms * 1000000};
        nanosleep(&ts, NULL);
    }
    pthread_mutex_lock(&p->mu);
    p->calls++;
    int ok = p->mode == PEER_OK || (p->mode == PEER_OK_THEN_DOWN && p->calls <= p->ok_calls);
    if (ok) {
        ck_assert_uint_eq(b->len % 16, 0);
        for (size_t off = 0; off < b->len && p->ngot < 4096; off += 16)
            memcpy(p->got[p->ngot++], b->data + off, 16);
        p->items += b->items;
        p->sends++;
    }
    pthread_mutex_unlock(&p->mu);
    return ok ? 0 : OBS_ERETRY;
}

static size_t peer_count(struct peer *p)
{
    pthread_mutex_lock(&p->mu);
    size_t n = p->ngot;
    pthread_mutex_unlock(&p->mu);
    return n;
}

static int wait_count(struct peer *p, size_t want, int ms)
{
    for (int i = 0; i < ms / 5; i++) {
        if (peer_count(p) >= want)
            return 1;
        usleep(5000);
    }
    return peer_count(p) >= want;
}

/* Batch i: one item, 16 bytes "batch-%09d\0". */
static struct cld_batch *mk(int i)
{
    char rec[16] = {0};
    snprintf(rec, sizeof rec, "batch-%09d", i);
    return cld_batch_new(CLD_TRACES, rec, 16, 1);
}

static void assert_got(struct peer *p, size_t idx, int i)
{
    char rec[16] = {0};
    snprintf(rec, sizeof rec, "batch-%09d", i);
    ck_assert_msg(memcmp(p->got[idx], rec, 16) == 0, "record %zu: want %s got %.15s", idx, rec,
                  p->got[idx]);
}

static const struct cld_retry_cfg fast_retry = {.enabled = 1,
                                                 .initial_interval_ms = 10,
                                                 .max_interval_ms = 20,
                                                 .max_elapsed_ms = 0};

static struct cld_equeue *open_q(struct peer *p, int persistent, size_t qsize,
                                 const struct cld_equeue_opts *extra)
{
    struct cld_queue_cfg qc = {.enabled = 1, .num_consumers = 1, .queue_size = (int64_t)qsize};
    struct cld_equeue_opts o = {0};
    if (extra)
        o = *extra;
    if (persistent)
        o.dir = qdir;
    struct obs_err err = {0};
    struct cld_equeue *q = cld_equeue_open("otlp", &qc, &fast_retry, &o, peer_send, p, NULL,
                                           &err);
    ck_assert_msg(q != NULL, "open: %s", err.msg);
    return q;
}

static char *last_segment(char *out, size_t cap)
{
    DIR *d = opendir(qdir);
    ck_assert_ptr_nonnull(d);
    struct dirent *de;
    char best[256] = "";
    while ((de = readdir(d)) != NULL)
        if (de->d_name[0] != '.' && strcmp(de->d_name, best) > 0)
            snprintf(best, sizeof best, "%s", de->d_name);
    closedir(d);
    ck_assert(best[0]);
    snprintf(out, cap, "%s/%s", qdir, best);
    return out;
}

static int count_files(void)
{
    DIR *d = opendir(qdir);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        n += de->d_name[0] != '.';
    closedir(d);
    return n;
}

/* --- tests ---------------------------------------------------------------------------------- */

START_TEST(test_in_order_both_modes)
{
    for (int persistent = 0; persistent <= 1; persistent++) {
        struct peer p;
        peer_init(&p, PEER_OK);
        struct cld_equeue *q = open_q(&p, persistent, 100, NULL);
        for (int i = 0; i < 50; i++)
            ck_assert_int_eq(cld_equeue_push(q, mk(i)), 0);
        ck_assert(wait_count(&p, 50, 5000));
        for (int i = 0; i < 50; i++)
            assert_got(&p, (size_t)i, i);
        for (int i = 0; i < 200 && cld_equeue_pending(q); i++)
            usleep(5000);
        ck_assert_uint_eq(cld_equeue_pending(q), 0);
        cld_equeue_free(q, 1000);
        ck_assert_uint_eq(p.items, 50);
    }
    /* delivered batches are not sent again after a restart */
    struct peer p2;
    peer_init(&p2, PEER_OK);
    struct cld_equeue *q = open_q(&p2, 1, 100, NULL);
    usleep(100000);
    ck_assert_uint_eq(peer_count(&p2), 0);
    cld_equeue_free(q, 0);
}
END_TEST

START_TEST(test_restart_resends_undelivered)
{
    struct peer down;
    peer_init(&down, PEER_DOWN);
    struct cld_equeue *q = open_q(&down, 1, 100, NULL);
    for (int i = 0; i < 20; i++)
        ck_assert_int_eq(cld_equeue_push(q, mk(i)), 0);
    ck_assert_uint_eq(cld_equeue_pending(q), 20);
    cld_equeue_free(q, 50); /* peer still down: kept on disk, not dropped */

    struct peer up;
    peer_init(&up, PEER_OK);
    q = open_q(&up, 1, 100, NULL);
    ck_assert_uint_eq(cld_equeue_pending(q) <= 20, 1);
    ck_assert(wait_count(&up, 20, 5000));
    for (int i = 0; i < 20; i++)
        assert_got(&up, (size_t)i, i);
    /* new data after the recovered data, with new sequence numbers */
    ck_assert_int_eq(cld_equeue_push(q, mk(20)), 0);
    ck_assert(wait_count(&up, 21, 5000));
    assert_got(&up, 20, 20);
    cld_equeue_free(q, 1000);

    struct peer again;
    peer_init(&again, PEER_OK);
    q = open_q(&again, 1, 100, NULL);
    usleep(100000);
    ck_assert_uint_eq(peer_count(&again), 0);
    cld_equeue_free(q, 0);
}
END_TEST

START_TEST(test_partial_delivery_then_restart)
{
    struct peer p;
    peer_init(&p, PEER_OK_THEN_DOWN);
    p.ok_calls = 7;
    struct cld_equeue *q = open_q(&p, 1, 100, NULL);
    for (int i = 0; i < 15; i++)
        ck_assert_int_eq(cld_equeue_push(q, mk(i)), 0);
    ck_assert(wait_count(&p, 7, 5000));
    usleep(50000);
    cld_equeue_free(q, 20);

    struct peer up;
    peer_init(&up, PEER_OK);
    q = open_q(&up, 1, 100, NULL);
    ck_assert(wait_count(&up, 8, 5000));
    usleep(50000);
    ck_assert_uint_eq(peer_count(&up), 8);
    for (int i = 0; i < 8; i++)
        assert_got(&up, (size_t)i, 7 + i);
    cld_equeue_free(q, 1000);
}
END_TEST

/* kill -9 stand-in: a child pushes (each push fsynced) and _exit()s without any cleanup. */
START_TEST(test_crash_recovery)
{
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        struct peer down;
        peer_init(&down, PEER_DOWN);
        struct cld_equeue *q = open_q(&down, 1, 100, NULL);
        for (int i = 0; i < 30; i++)
            if (cld_equeue_push(q, mk(i)) != 0)
                _exit(2);
        _exit(0);
    }
    int st = 0;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    struct peer up;
    peer_init(&up, PEER_OK);
    struct cld_equeue *q = open_q(&up, 1, 100, NULL);
    ck_assert(wait_count(&up, 30, 5000));
    for (int i = 0; i < 30; i++)
        assert_got(&up, (size_t)i, i);
    cld_equeue_free(q, 1000);
}
END_TEST

START_TEST(test_torn_tail)
{
    struct peer down;
    peer_init(&down, PEER_DOWN);
    struct cld_equeue *q = open_q(&down, 1, 100, NULL);
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(cld_equeue_push(q, mk(i)), 0);
    cld_equeue_free(q, 0);
    /* garbage after the last record: a record header promising more than is there */
    char seg[400];
    last_segment(seg, sizeof seg);
    int fd = open(seg, O_WRONLY | O_APPEND);
    ck_assert_int_ge(fd, 0);
    const unsigned char junk[] = {0x40, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef, 'D', 0};
    ck_assert_int_eq(write(fd, junk, sizeof junk), (ssize_t)sizeof junk);
    close(fd);

    struct peer up;
    peer_init(&up, PEER_DOWN);
    q = open_q(&up, 1, 100, NULL);
    ck_assert_uint_eq(cld_equeue_pending(q), 10);
    ck_assert_int_eq(cld_equeue_push(q, mk(10)), 0);
    cld_equeue_free(q, 0);

    /* half of the last record written (crash mid-append: never acknowledged) */
    last_segment(seg, sizeof seg);
    struct stat stt;
    ck_assert_int_eq(stat(seg, &stt), 0);
    ck_assert_int_eq(truncate(seg, stt.st_size - 9), 0);
    struct peer up2;
    peer_init(&up2, PEER_OK);
    q = open_q(&up2, 1, 100, NULL);
    ck_assert(wait_count(&up2, 10, 5000));
    usleep(50000);
    ck_assert_uint_eq(peer_count(&up2), 10);
    for (int i = 0; i < 10; i++)
        assert_got(&up2, (size_t)i, i);
    cld_equeue_free(q, 1000);
}
END_TEST

START_TEST(test_dequeue_batching)
{
    struct peer p;
    peer_init(&p, PEER_OK);
    struct cld_equeue_opts o = {.batch_items = 10, .batch_timeout_ms = 500, .no_fsync = 1};
    struct cld_equeue *q = open_q(&p, 1, 100, &o);
    for (int i = 0; i < 25; i++)
        ck_assert_int_eq(cld_equeue_push(q, mk(i)), 0);
    ck_assert(wait_count(&p, 25, 5000));
    for (int i = 0; i < 25; i++)
        assert_got(&p, (size_t)i, i);
    /* 10 + 10 + 5 (the last after the timeout); a slow machine may split one more */
    ck_assert_msg(p.sends >= 3 && p.sends <= 5, "%d sends", p.sends);
    cld_equeue_free(q, 1000);
    ck_assert_uint_eq(p.items, 25);
}
END_TEST

START_TEST(test_checkpoint_bounds_wal)
{
    struct peer p;
    peer_init(&p, PEER_OK);
    struct cld_equeue_opts o = {.segment_bytes = 1024};
    struct cld_equeue *q = open_q(&p, 1, 1000, &o);
    for (int i = 0; i < 600; i++) {
        ck_assert_int_eq(cld_equeue_push(q, mk(i)), 0);
        if (i % 50 == 49)
            ck_assert(wait_count(&p, (size_t)i + 1, 5000));
    }
    ck_assert(wait_count(&p, 600, 5000));
    for (int i = 0; i < 200 && cld_equeue_pending(q); i++)
        usleep(5000);
    /* 600 * 45 bytes of records went through 1 KiB segments; checkpoints deleted them */
    int files = count_files();
    ck_assert_msg(files >= 1 && files <= 6, "%d segment files", files);
    cld_equeue_free(q, 1000);
    struct peer again;
    peer_init(&again, PEER_OK);
    q = open_q(&again, 1, 1000, &o);
    usleep(100000);
    ck_assert_uint_eq(peer_count(&again), 0);
    cld_equeue_free(q, 0);
}
END_TEST

START_TEST(test_full_queue)
{
    struct peer p;
    peer_init(&p, PEER_DOWN);
    struct cld_equeue *q = open_q(&p, 1, 3, NULL);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(cld_equeue_push(q, mk(i)), 0);
    ck_assert_int_eq(cld_equeue_push(q, mk(3)), OBS_ELIMIT);
    cld_equeue_free(q, 0);
    /* the refused batch was never written: 3 come back */
    struct peer up;
    peer_init(&up, PEER_OK);
    q = open_q(&up, 1, 3, NULL);
    ck_assert(wait_count(&up, 3, 5000));
    usleep(50000);
    ck_assert_uint_eq(peer_count(&up), 3);
    cld_equeue_free(q, 1000);
}
END_TEST

/* Several consumers acknowledge out of order; a restart resends nothing delivered. */
START_TEST(test_many_consumers)
{
    struct peer p;
    peer_init(&p, PEER_OK);
    p.delay_ms = 1;
    struct cld_queue_cfg qc = {.enabled = 1, .num_consumers = 4, .queue_size = 300};
    struct cld_equeue_opts o = {.dir = qdir, .segment_bytes = 2048};
    struct obs_err err = {0};
    struct cld_equeue *q = cld_equeue_open("otlp", &qc, &fast_retry, &o, peer_send, &p, NULL,
                                           &err);
    ck_assert_msg(q != NULL, "%s", err.msg);
    for (int i = 0; i < 200; i++)
        ck_assert_int_eq(cld_equeue_push(q, mk(i)), 0);
    ck_assert(wait_count(&p, 200, 10000));
    static char seen[200];
    memset(seen, 0, sizeof seen);
    for (size_t k = 0; k < 200; k++) {
        int i = atoi(p.got[k] + 6);
        ck_assert(i >= 0 && i < 200 && !seen[i]);
        seen[i] = 1;
    }
    for (int i = 0; i < 400 && cld_equeue_pending(q); i++)
        usleep(5000);
    ck_assert_uint_eq(cld_equeue_pending(q), 0);
    cld_equeue_free(q, 1000);
    struct peer again;
    peer_init(&again, PEER_OK);
    q = open_q(&again, 1, 300, NULL);
    usleep(100000);
    ck_assert_uint_eq(peer_count(&again), 0);
    cld_equeue_free(q, 0);
}
END_TEST

/* --- config --------------------------------------------------------------------------------- */

static const char *const durable_yaml =
    "receivers: {otlp: {protocols: {grpc: {endpoint: \"127.0.0.1:0\"}}}}\n"
    "processors: {batch: {timeout: 150ms, send_batch_size: 77}}\n"
    "exporters:\n"
    "  otlp:\n"
    "    endpoint: 127.0.0.1:4417\n"
    "    tls: {insecure: true}\n"
    "    sending_queue: {enabled: true, storage: file_storage/q, queue_size: 50}\n"
    "  otlp/mem: {endpoint: 127.0.0.1:4417, tls: {insecure: true}}\n"
    "extensions:\n"
    "  file_storage/q: {directory: /tmp/somewhere}\n"
    "service:\n"
    "  extensions: [file_storage/q]\n"
    "  pipelines:\n"
    "    traces: {receivers: [otlp], processors: [batch], exporters: [otlp]}\n"
    "    logs: {receivers: [otlp], processors: [batch], exporters: [otlp/mem]}\n";

static struct cld_collector *parse(const char *yaml, struct obs_cf_node **root,
                                   struct obs_err *err)
{
    *root = obs_cf_load_string(yaml, strlen(yaml), "c.yaml", 0, err);
    ck_assert_ptr_nonnull(*root);
    return cld_config_parse(*root, NULL, err);
}

START_TEST(test_config_durable)
{
    struct obs_err err = {0};
    struct obs_cf_node *root;
    struct cld_collector *c = parse(durable_yaml, &root, &err);
    ck_assert_msg(c != NULL, "%s", err.msg);
    ck_assert_uint_eq(c->npipes, 2);
    struct cld_pipeline *tr = c->pipes[0], *lg = c->pipes[1];
    ck_assert_int_eq(tr->durable, 1);
    ck_assert_int_eq(lg->durable, 0);
    ck_assert_int_eq(tr->exps[0]->durable, 1);
    ck_assert_uint_eq(tr->exps[0]->batch_items, 77);
    ck_assert_int_eq(tr->exps[0]->batch_timeout_ms, 150);
    ck_assert_uint_eq(lg->exps[0]->batch_items, 0);
    cld_collector_free(c);
    obs_cf_free(root);

    static const struct {
        const char *from, *to, *want;
    } bad[] = {
        {"  extensions: [file_storage/q]\n", "", "storage extension \"file_storage/q\" not "
                                                  "found"},
        {"storage: file_storage/q", "storage: file_storage/x", "\"file_storage/x\" not found"},
        {"{directory: /tmp/somewhere}", "{directory: /tmp/x, fsync: false}", "fsync"},
        {"{directory: /tmp/somewhere}", "{directory: /tmp/x, bogus: 1}", "bogus"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char y[2048];
        const char *at = strstr(durable_yaml, bad[i].from);
        ck_assert_ptr_nonnull(at);
        snprintf(y, sizeof y, "%.*s%s%s", (int)(at - durable_yaml), durable_yaml, bad[i].to,
                 at + strlen(bad[i].from));
        struct obs_err e2 = {0};
        c = parse(y, &root, &e2);
        ck_assert_msg(c == NULL, "case %zu accepted", i);
        ck_assert_msg(strstr(e2.msg, bad[i].want) != NULL, "case %zu: want %s in %s", i,
                      bad[i].want, e2.msg);
        ck_assert_msg(e2.line > 0, "case %zu: no position", i);
        obs_cf_free(root);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("collectord_queue");
    TCase *tc = tcase_create("queue");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_in_order_both_modes);
    tcase_add_test(tc, test_restart_resends_undelivered);
    tcase_add_test(tc, test_partial_delivery_then_restart);
    tcase_add_test(tc, test_crash_recovery);
    tcase_add_test(tc, test_torn_tail);
    tcase_add_test(tc, test_dequeue_batching);
    tcase_add_test(tc, test_checkpoint_bounds_wal);
    tcase_add_test(tc, test_full_queue);
    tcase_add_test(tc, test_many_consumers);
    tcase_add_test(tc, test_config_durable);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_set_tap(sr, "-");
    srunner_run_all(sr, CK_ENV);
    int nf = srunner_ntests_failed(sr);
    srunner_free(sr);
    return nf ? 1 : 0;
}
