/*
 * test_obs_store.c -- the filesystem object store through the obs_store vtable, on a real
 * temporary directory: put/get/range/head/list (with and without delimiter)/del, missing
 * objects, key validation, atomic replacement under concurrent readers, and obs_store_open
 * from a YAML config node.
 */
#include <check.h>
#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config/obs_cf.h"
#include "store/obs_store.h"

static char tdir[256];
static struct obs_store *st;

static void setup(void)
{
    snprintf(tdir, sizeof(tdir), "/tmp/test_obs_store.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tdir));
    char root[300];
    snprintf(root, sizeof(root), "%s/objects", tdir); /* not yet existing: created by open */
    struct obs_err err = {0};
    st = obs_store_fs_open(root, &err);
    ck_assert_msg(st != NULL, "open: %s", err.msg);
}

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *f)
{
    (void)sb, (void)flag, (void)f;
    return remove(p);
}

static void teardown(void)
{
    obs_store_close(st);
    st = NULL;
    nftw(tdir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static void put(const char *k, const char *v)
{
    struct obs_err err = {0};
    int rc = obs_store_put(st, k, v, strlen(v), &err);
    ck_assert_msg(rc == 0, "put %s: %d %s", k, rc, err.msg);
}

/* Collect listed keys joined by ','. */
struct keys {
    char s[4096];
    int n, stop_at;
};

static int key_fn(const char *k, void *arg)
{
    struct keys *ks = arg;
    size_t l = strlen(ks->s);
    snprintf(ks->s + l, sizeof(ks->s) - l, "%s%s", l ? "," : "", k);
    ks->n++;
    return ks->stop_at && ks->n == ks->stop_at;
}

static const char *list(const char *prefix, const char *delim, struct keys *ks)
{
    memset(ks, 0, sizeof(*ks));
    struct obs_err err = {0};
    int rc = obs_store_list(st, prefix, delim, key_fn, ks, &err);
    ck_assert_msg(rc == 0, "list %s: %d %s", prefix, rc, err.msg);
    return ks->s;
}

START_TEST(put_get)
{
    struct obs_sbuf b;
    obs_sbuf_init(&b);
    put("t1/01ABC/meta.json", "{\"version\":1}");
    ck_assert_int_eq(obs_store_get(st, "t1/01ABC/meta.json", 0, 0, &b, NULL), 0);
    ck_assert_str_eq(b.p, "{\"version\":1}");
    /* Overwrite replaces the whole object; get appends to what out holds. */
    put("t1/01ABC/meta.json", "v2");
    obs_sbuf_reset(&b);
    obs_sbuf_puts(&b, ">");
    ck_assert_int_eq(obs_store_get(st, "t1/01ABC/meta.json", 0, 0, &b, NULL), 0);
    ck_assert_str_eq(b.p, ">v2");
    /* Binary data and empty objects. */
    uint8_t bin[256];
    for (int i = 0; i < 256; i++)
        bin[i] = (uint8_t)i;
    ck_assert_int_eq(obs_store_put(st, "bin", bin, sizeof(bin), NULL), 0);
    obs_sbuf_reset(&b);
    ck_assert_int_eq(obs_store_get(st, "bin", 0, 0, &b, NULL), 0);
    ck_assert_uint_eq(b.len, 256);
    ck_assert_int_eq(memcmp(b.p, bin, 256), 0);
    ck_assert_int_eq(obs_store_put(st, "empty", "", 0, NULL), 0);
    obs_sbuf_reset(&b);
    ck_assert_int_eq(obs_store_get(st, "empty", 0, 0, &b, NULL), 0);
    ck_assert_uint_eq(b.len, 0);
    /* No temp files left in the object tree. */
    struct keys ks;
    ck_assert_str_eq(list("", NULL, &ks), "bin,empty,t1/01ABC/meta.json");
    obs_sbuf_deinit(&b);
}
END_TEST

START_TEST(range)
{
    put("obj", "0123456789");
    struct obs_sbuf b;
    obs_sbuf_init(&b);
    ck_assert_int_eq(obs_store_get(st, "obj", 2, 3, &b, NULL), 0);
    ck_assert_str_eq(b.p, "234");
    obs_sbuf_reset(&b);
    ck_assert_int_eq(obs_store_get(st, "obj", 7, 0, &b, NULL), 0); /* to the end */
    ck_assert_str_eq(b.p, "789");
    obs_sbuf_reset(&b);
    ck_assert_int_eq(obs_store_get(st, "obj", 8, 100, &b, NULL), 0); /* clamped */
    ck_assert_str_eq(b.p, "89");
    obs_sbuf_reset(&b);
    ck_assert_int_eq(obs_store_get(st, "obj", 10, 0, &b, NULL), 0); /* at end: empty */
    ck_assert_uint_eq(b.len, 0);
    struct obs_err err = {0};
    ck_assert_int_eq(obs_store_get(st, "obj", 11, 1, &b, &err), OBS_ERANGE);
    obs_sbuf_deinit(&b);
}
END_TEST

START_TEST(head)
{
    put("a/b", "hello");
    uint64_t sz = 0;
    ck_assert_int_eq(obs_store_head(st, "a/b", &sz, NULL), 0);
    ck_assert_uint_eq(sz, 5);
    /* A prefix is not an object. */
    ck_assert_int_eq(obs_store_head(st, "a", &sz, NULL), OBS_ENOENT);
}
END_TEST

START_TEST(missing)
{
    struct obs_sbuf b;
    obs_sbuf_init(&b);
    struct obs_err err = {0};
    uint64_t sz;
    ck_assert_int_eq(obs_store_get(st, "nope", 0, 0, &b, &err), OBS_ENOENT);
    ck_assert_int_eq(err.code, OBS_ENOENT);
    ck_assert_int_eq(obs_store_get(st, "no/such/dir", 0, 0, &b, NULL), OBS_ENOENT);
    ck_assert_int_eq(obs_store_head(st, "nope", &sz, NULL), OBS_ENOENT);
    put("file", "x");
    ck_assert_int_eq(obs_store_get(st, "file/child", 0, 0, &b, NULL), OBS_ENOENT);
    ck_assert_int_eq(obs_store_del(st, "nope", NULL), 0); /* absent is OK */
    ck_assert_int_eq(obs_store_del(st, "no/such/key", NULL), 0);
    struct keys ks;
    ck_assert_str_eq(list("zzz/", "/", &ks), "");
    ck_assert_str_eq(list("no/such/", NULL, &ks), "");
    obs_sbuf_deinit(&b);
}
END_TEST

START_TEST(list_sorted)
{
    put("b", "1");
    put("a/x", "1");
    put("a-b", "1");
    put("a/y/z", "1");
    put("a/a", "1");
    put("c/d/e/f", "1");
    struct keys ks;
    /* Global byte order of keys: '-' (0x2d) < '/' (0x2f). */
    ck_assert_str_eq(list("", NULL, &ks), "a-b,a/a,a/x,a/y/z,b,c/d/e/f");
    ck_assert_str_eq(list("", "", &ks), "a-b,a/a,a/x,a/y/z,b,c/d/e/f");
    ck_assert_str_eq(list("a/", NULL, &ks), "a/a,a/x,a/y/z");
    ck_assert_str_eq(list("a", NULL, &ks), "a-b,a/a,a/x,a/y/z");
    ck_assert_str_eq(list("a/y", NULL, &ks), "a/y/z");
    /* fn asks to stop. */
    memset(&ks, 0, sizeof(ks));
    ks.stop_at = 2;
    ck_assert_int_eq(obs_store_list(st, "", NULL, key_fn, &ks, NULL), 0);
    ck_assert_str_eq(ks.s, "a-b,a/a");
}
END_TEST

START_TEST(list_delim)
{
    put("t1/01A/meta.json", "1");
    put("t1/01A/index", "1");
    put("t1/01A/chunks/000001", "1");
    put("t1/01B/meta.json", "1");
    put("t1/02C/meta.json", "1");
    put("t1/top", "1");
    put("t2/01Z/meta.json", "1");
    put("root", "1");
    struct keys ks;
    ck_assert_str_eq(list("", "/", &ks), "root,t1/,t2/");
    ck_assert_str_eq(list("t1/", "/", &ks), "t1/01A/,t1/01B/,t1/02C/,t1/top");
    ck_assert_str_eq(list("t1/01", "/", &ks), "t1/01A/,t1/01B/");
    ck_assert_str_eq(list("t1/01A/", "/", &ks), "t1/01A/chunks/,t1/01A/index,t1/01A/meta.json");
    ck_assert_str_eq(list("t", "/", &ks), "t1/,t2/");
    struct obs_err err = {0};
    ck_assert_int_eq(obs_store_list(st, "", ",", key_fn, &ks, &err), OBS_EINVAL);
}
END_TEST

START_TEST(del)
{
    put("t1/01A/meta.json", "1");
    put("t1/01A/index", "1");
    put("t1/01B/meta.json", "1");
    ck_assert_int_eq(obs_store_del(st, "t1/01A/meta.json", NULL), 0);
    uint64_t sz;
    ck_assert_int_eq(obs_store_head(st, "t1/01A/meta.json", &sz, NULL), OBS_ENOENT);
    struct keys ks;
    ck_assert_str_eq(list("t1/", "/", &ks), "t1/01A/,t1/01B/");
    /* Deleting the last object removes the prefix too. */
    ck_assert_int_eq(obs_store_del(st, "t1/01A/index", NULL), 0);
    ck_assert_str_eq(list("t1/", "/", &ks), "t1/01B/");
    ck_assert_int_eq(obs_store_del(st, "t1/01B/meta.json", NULL), 0);
    ck_assert_str_eq(list("", "/", &ks), "");
    /* The prefix directory can be reused afterwards. */
    put("t1/01A/meta.json", "again");
    ck_assert_int_eq(obs_store_head(st, "t1/01A/meta.json", &sz, NULL), 0);
    ck_assert_uint_eq(sz, 5);
}
END_TEST

START_TEST(bad_keys)
{
    static const char *bad[] = {"", "/abs", "a//b", "a/", "../x", "a/../../x", "a/./b", ".",
                                "..", ".obs-tmp/x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct obs_err err = {0};
        ck_assert_msg(obs_store_put(st, bad[i], "x", 1, &err) == OBS_EINVAL, "key '%s'", bad[i]);
        ck_assert_int_eq(obs_store_del(st, bad[i], NULL), OBS_EINVAL);
    }
    /* A key that would turn an object into a prefix (or vice versa) is refused. */
    put("f", "x");
    ck_assert_int_ne(obs_store_put(st, "f/g", "x", 1, NULL), 0);
    put("d/e", "x");
    ck_assert_int_eq(obs_store_put(st, "d", "x", 1, NULL), OBS_EINVAL);
    struct keys ks;
    ck_assert_str_eq(list("", NULL, &ks), "d/e,f");
    /* Dotfiles that are not the temp dir are fine. */
    put(".hidden/x", "1");
    ck_assert_str_eq(list("", NULL, &ks), ".hidden/x,d/e,f");
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
        ck_assert_int_eq(obs_store_put(st, "hot/key", buf, VLEN, NULL), 0);
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
        int rc = obs_store_get(st, "hot/key", 0, 0, &b, NULL);
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
    struct keys ks;
    ck_assert_str_eq(list("", NULL, &ks), "hot/key");
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
    expect_open_error("backend: s3\ns3:\n  bucket_name: b\n", "not supported yet", 1);
    expect_open_error("backend: filesystem\nfilesystem:\n  dir: /tmp/x\n  dri: y\n",
                      "unknown key", 4);
    struct obs_err err = {0};
    ck_assert_ptr_null(obs_store_fs_open("", &err));
    ck_assert_int_eq(err.code, OBS_EINVAL);
    ck_assert_ptr_null(obs_store_fs_open("/proc/self/nope/x", &err));
    ck_assert_int_eq(err.code, OBS_EIO);
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
    struct keys ks;
    ck_assert_str_eq(list("", NULL, &ks), ""); /* never listed */
}
END_TEST

static Suite *store_suite(void)
{
    Suite *s = suite_create("obs_store");
    struct {
        const char *name;
        const TTest *t;
    } cases[] = {
        {"put_get", put_get}, {"range", range},           {"head", head},
        {"missing", missing}, {"list_sorted", list_sorted}, {"list_delim", list_delim},
        {"del", del},         {"bad_keys", bad_keys},     {"atomic_replace", atomic_replace},
        {"open_from_config", open_from_config},           {"open_errors", open_errors},
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
