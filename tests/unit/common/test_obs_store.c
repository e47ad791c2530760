/*
 * test_obs_store.c -- the filesystem object store through the obs_store vtable, on a real
 * temporary directory: the shared conformance cases of tests/support/store_cases.h
 * (put/get/range/head/list with and without delimiter, paging, del, missing objects, a 12 MiB
 * object, odd keys, concurrency), plus what only the filesystem backend has: key validation
 * against prefix conflicts, atomic replacement under concurrent readers, stale temp sweeping.
 * Also obs_store_open from YAML for both backends, including the s3 config errors and the
 * s3 client's bounded retries against a closed loopback port (no server needed). The s3
 * backend's behaviour against a server is tested by tests/integration/test_store_s3.py.
 */
#include <check.h>
#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config/obs_cf.h"
#include "store/obs_store.h"
#include "store/obs_store_s3.h"
#include "tests/support/store_cases.h"

static char tdir[256];

static void setup(void)
{
    snprintf(tdir, sizeof(tdir), "/tmp/test_obs_store.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tdir));
    char root[300];
    snprintf(root, sizeof(root), "%s/objects", tdir); /* not yet existing: created by open */
    struct obs_err err = {0};
    sc_st = obs_store_fs_open(root, &err);
    ck_assert_msg(sc_st != NULL, "open: %s", err.msg);
}

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *f)
{
    (void)sb, (void)flag, (void)f;
    return remove(p);
}

static void teardown(void)
{
    obs_store_close(sc_st);
    sc_st = NULL;
    nftw(tdir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

START_TEST(bad_keys)
{
    static const char *bad[] = {"", "/abs", "a//b", "a/", "../x", "a/../../x", "a/./b", ".",
                                "..", ".obs-tmp/x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct obs_err err = {0};
        ck_assert_msg(obs_store_put(sc_st, bad[i], "x", 1, &err) == OBS_EINVAL, "key '%s'", bad[i]);
        ck_assert_int_eq(obs_store_del(sc_st, bad[i], NULL), OBS_EINVAL);
    }
    /* A key that would turn an object into a prefix (or vice versa) is refused. */
    sc_put("f", "x");
    ck_assert_int_ne(obs_store_put(sc_st, "f/g", "x", 1, NULL), 0);
    sc_put("d/e", "x");
    ck_assert_int_eq(obs_store_put(sc_st, "d", "x", 1, NULL), OBS_EINVAL);
    struct sc_keys ks;
    ck_assert_str_eq(sc_list("", NULL, &ks), "d/e,f");
    /* Dotfiles that are not the temp dir are fine. */
    sc_put(".hidden/x", "1");
    ck_assert_str_eq(sc_list("", NULL, &ks), ".hidden/x,d/e,f");
}
END_TEST

/* Writers replace one key while readers check they always see one whole version. */
#define VLEN (256 * 1024)
static _Atomic int stop_flag;

static void *writer(void *arg)
{
    char *buf = malloc(VLEN);
    for (int i = 0; i < 30; i++) {
        memset(buf, 'a' + (int)(intptr_t)arg * 10 + i % 10, VLEN);
        ck_assert_int_eq(obs_store_put(sc_st, "hot/key", buf, VLEN, NULL), 0);
    }
    free(buf);
    return NULL;
}

static void *reader(void *arg)
{
    (void)arg;
    struct obs_sbuf b;
    obs_sbuf_init(&b);
    long bad = 0;
    while (!stop_flag) {
        obs_sbuf_reset(&b);
        int rc = obs_store_get(sc_st, "hot/key", 0, 0, &b, NULL);
        if (rc == OBS_ENOENT)
            continue;
        if (rc != 0 || b.len != VLEN) {
            bad++;
            continue;
        }
        for (size_t i = 1; i < b.len; i++)
            if (b.p[i] != b.p[0]) {
                bad++;
                break;
            }
    }
    obs_sbuf_deinit(&b);
    return (void *)bad;
}

START_TEST(atomic_replace)
{
    pthread_t w1, w2, r;
    stop_flag = 0;
    pthread_create(&r, NULL, reader, NULL);
    pthread_create(&w1, NULL, writer, (void *)0);
    pthread_create(&w2, NULL, writer, (void *)1);
    pthread_join(w1, NULL);
    pthread_join(w2, NULL);
    stop_flag = 1;
    void *bad;
    pthread_join(r, &bad);
    ck_assert_int_eq((long)bad, 0);
    struct sc_keys ks;
    ck_assert_str_eq(sc_list("", NULL, &ks), "hot/key");
}
END_TEST

START_TEST(open_from_config)
{
    char yaml[1024];
    snprintf(yaml, sizeof(yaml), "backend: filesystem\nfilesystem:\n  dir: %s/cfgstore\n", tdir);
    struct obs_err err = {0};
    struct obs_cf_node *cf = obs_cf_load_string(yaml, strlen(yaml), "test.yaml", 0, &err);
    ck_assert_msg(cf != NULL, "yaml: %s", err.msg);
    struct obs_store *s = obs_store_open(cf, "/nonexistent-default", &err);
    ck_assert_msg(s != NULL, "open: %s", err.msg);
    ck_assert_str_eq(s->ops->name, "filesystem");
    ck_assert_int_eq(obs_store_put(s, "k", "v", 1, NULL), 0);
    char path[512];
    snprintf(path, sizeof(path), "%s/cfgstore/k", tdir);
    ck_assert_int_eq(access(path, F_OK), 0);
    obs_store_close(s);
    obs_cf_free(cf);

    /* NULL config: filesystem at the default dir. */
    snprintf(path, sizeof(path), "%s/defdir", tdir);
    s = obs_store_open(NULL, path, &err);
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(obs_store_put(s, "k", "v", 1, NULL), 0);
    obs_store_close(s);
    snprintf(path, sizeof(path), "%s/defdir/k", tdir);
    ck_assert_int_eq(access(path, F_OK), 0);

    /* Section without filesystem.dir: default dir, sibling keys of the caller ignored. */
    snprintf(yaml, sizeof(yaml), "backend: filesystem\ntsdb:\n  dir: x\n");
    cf = obs_cf_load_string(yaml, strlen(yaml), "test.yaml", 0, &err);
    ck_assert_ptr_nonnull(cf);
    snprintf(path, sizeof(path), "%s/defdir2", tdir);
    s = obs_store_open(cf, path, &err);
    ck_assert_ptr_nonnull(s);
    obs_store_close(s);
    obs_cf_free(cf);
}
END_TEST

static void expect_open_error(const char *yaml, const char *needle, int line)
{
    struct obs_err err = {0};
    struct obs_cf_node *cf = obs_cf_load_string(yaml, strlen(yaml), "bad.yaml", 0, &err);
    ck_assert_msg(cf != NULL, "yaml: %s", err.msg);
    memset(&err, 0, sizeof(err));
    struct obs_store *s = obs_store_open(cf, tdir, &err);
    ck_assert_ptr_null(s);
    ck_assert_int_ne(err.code, 0);
    ck_assert_msg(strstr(err.msg, needle) != NULL, "'%s' lacks '%s'", err.msg, needle);
    ck_assert_int_eq(err.line, line);
    obs_cf_free(cf);
}

START_TEST(open_errors)
{
    expect_open_error("backend: gcs\n", "unknown backend", 1);
    expect_open_error("backend: s3\ns3:\n  endpoint: 127.0.0.1:1\n", "bucket_name is required",
                      2);
    expect_open_error("backend: s3\ns3:\n  bucket_name: b\n  bucket: c\n", "unknown key", 4);
    expect_open_error("backend: s3\ns3:\n  bucket_name: b\n  access_key_id: a\n"
                      "  secret_access_key: s\n  bucket_lookup_type: dns\n",
                      "bucket_lookup_type must be", 2);
    expect_open_error("backend: s3\ns3:\n  bucket_name: b\n  part_size: 1MiB\n",
                      "between 5MiB and 5GiB", 4);
    expect_open_error("backend: s3\ns3:\n  bucket_name: b\n  max_retries: -1\n",
                      "between 0 and 100", 4);
    expect_open_error("backend: s3\ns3:\n  bucket_name: b\n  insecure: maybe\n", "insecure", 4);
    expect_open_error("backend: s3\ns3:\n  bucket_name: b/c\n  access_key_id: a\n"
                      "  secret_access_key: s\n", "invalid bucket_name", 2);
    /* No credentials anywhere. */
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SECRET_ACCESS_KEY");
    expect_open_error("backend: s3\ns3:\n  bucket_name: b\n", "no credentials", 2);
    expect_open_error("backend: filesystem\nfilesystem:\n  dir: /tmp/x\n  dri: y\n",
                      "unknown key", 4);
    struct obs_err err = {0};
    ck_assert_ptr_null(obs_store_fs_open("", &err));
    ck_assert_int_eq(err.code, OBS_EINVAL);
    ck_assert_ptr_null(obs_store_fs_open("/proc/self/nope/x", &err));
    ck_assert_int_eq(err.code, OBS_EIO);
}
END_TEST

static struct obs_store *open_yaml(const char *yaml)
{
    struct obs_err err = {0};
    struct obs_cf_node *cf = obs_cf_load_string(yaml, strlen(yaml), "s3.yaml", 0, &err);
    ck_assert_msg(cf != NULL, "yaml: %s", err.msg);
    struct obs_store *s = obs_store_open(cf, tdir, &err);
    ck_assert_msg(s != NULL, "open: %s", err.msg);
    obs_cf_free(cf); /* the store keeps copies */
    return s;
}

/* backend: s3 opens without network traffic; credentials may come from the environment. */
START_TEST(open_s3_config)
{
    struct obs_store *s = open_yaml("backend: s3\ns3:\n  endpoint: 127.0.0.1:9000\n"
                                    "  bucket_name: blocks\n  region: eu-west-1\n"
                                    "  access_key_id: AK\n  secret_access_key: SK\n"
                                    "  insecure: true\n  bucket_lookup_type: path\n"
                                    "  prefix: /tenant-a/\n  part_size: 8MiB\n"
                                    "  max_retries: 2\n  request_timeout: 30s\n"
                                    "  list_max_keys: 10\n");
    ck_assert_str_eq(s->ops->name, "s3");
    obs_store_close(s);
    setenv("AWS_ACCESS_KEY_ID", "envak", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "envsk", 1);
    setenv("AWS_REGION", "us-west-2", 1);
    s = open_yaml("backend: s3\ns3:\n  bucket_name: blocks\n");
    ck_assert_str_eq(s->ops->name, "s3");
    /* Invalid keys are refused before any request. */
    struct obs_err err = {0};
    ck_assert_int_eq(obs_store_put(s, "a//b", "x", 1, &err), OBS_EINVAL);
    ck_assert_int_eq(obs_store_get(s, "../x", 0, 0, NULL, &err), OBS_EINVAL);
    ck_assert_int_eq(obs_store_list(s, "/abs", NULL, NULL, NULL, &err), OBS_EINVAL);
    obs_store_close(s);
}
END_TEST

/* Transport errors are retried a bounded number of times, then reported. */
START_TEST(s3_retries_bounded)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(a);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &al), 0);
    close(fd); /* nothing listens there now: connection refused */
    char yaml[512];
    snprintf(yaml, sizeof(yaml),
             "backend: s3\ns3:\n  endpoint: 127.0.0.1:%d\n  bucket_name: b\n"
             "  access_key_id: AK\n  secret_access_key: SK\n  insecure: true\n"
             "  max_retries: 2\n", ntohs(a.sin_port));
    struct obs_store *s = open_yaml(yaml);
    struct obs_err err = {0};
    struct obs_sbuf b;
    obs_sbuf_init(&b);
    obs_sbuf_puts(&b, "keep");
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ck_assert_int_eq(obs_store_get(s, "k", 0, 0, &b, &err), OBS_EIO);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    ck_assert_msg(strstr(err.msg, "after 3 attempt(s)") != NULL, "%s", err.msg);
    ck_assert_msg(strstr(err.msg, "onnect") != NULL, "%s", err.msg);
    ck_assert_str_eq(b.p, "keep");
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    ck_assert_msg(secs >= 0.1 && secs < 5, "backoff took %.2fs", secs); /* 50-100 + 100-200 ms */
    ck_assert_int_eq(obs_store_put(s, "k", "v", 1, &err), OBS_EIO);
    obs_sbuf_deinit(&b);
    obs_store_close(s);
}
END_TEST

START_TEST(sweep_stale_tmp)
{
    char root[300], stale[400], fresh[400];
    snprintf(root, sizeof(root), "%s/objects", tdir);
    snprintf(stale, sizeof(stale), "%s/.obs-tmp/999.1", root);
    snprintf(fresh, sizeof(fresh), "%s/.obs-tmp/999.2", root);
    FILE *f = fopen(stale, "w");
    ck_assert_ptr_nonnull(f);
    fclose(f);
    f = fopen(fresh, "w");
    ck_assert_ptr_nonnull(f);
    fclose(f);
    struct timespec old[2] = {{.tv_sec = time(NULL) - 7200}, {.tv_sec = time(NULL) - 7200}};
    ck_assert_int_eq(utimensat(AT_FDCWD, stale, old, 0), 0);
    struct obs_store *s2 = obs_store_fs_open(root, NULL);
    ck_assert_ptr_nonnull(s2);
    ck_assert_int_ne(access(stale, F_OK), 0); /* crash leftover removed */
    ck_assert_int_eq(access(fresh, F_OK), 0); /* possibly another process' put: kept */
    obs_store_close(s2);
    struct sc_keys ks;
    ck_assert_str_eq(sc_list("", NULL, &ks), ""); /* never listed */
}
END_TEST

static Suite *store_suite(void)
{
    Suite *s = suite_create("obs_store");
    sc_add_cases(s, setup, teardown, 120, NULL);
    struct {
        const char *name;
        const TTest *t;
    } cases[] = {
        {"bad_keys", bad_keys},
        {"atomic_replace", atomic_replace},
        {"open_from_config", open_from_config},
        {"open_errors", open_errors},
        {"open_s3_config", open_s3_config},
        {"s3_retries_bounded", s3_retries_bounded},
        {"sweep_stale_tmp", sweep_stale_tmp},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        TCase *tc = tcase_create(cases[i].name);
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, cases[i].t);
        suite_add_tcase(s, tc);
    }
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(store_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
