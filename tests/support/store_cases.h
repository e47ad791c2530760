/*
 * store_cases.h -- the object-store conformance cases, shared by every backend's runner.
 *
 * Included (once) by tests/unit/common/test_obs_store.c (filesystem backend, always run) and
 * by tests/support/store-conformance.c (filesystem or S3, run by
 * tests/integration/test_store_s3.py against s3rver behind the strict SigV4 proxy). The
 * includer provides a checked fixture that sets sc_st to a fresh, empty store before each
 * case, and calls sc_add_cases() to register the cases in its suite. Cases only use the
 * obs_store vtable: nothing here knows which backend runs.
 *
 * Covered: put/get (overwrite, binary, empty), ranges (clamped, at end, past end), head,
 * missing objects, listing order, delimiter listings (common prefixes), paging over more than
 * 1000 keys, delete (prefix disappears with its last object), a 12 MiB object (multipart on
 * S3) compared by SHA-256 including a range across part boundaries, keys with spaces, plus
 * signs, XML specials and UTF-8, and concurrent use from several threads.
 */
#ifndef TESTS_SUPPORT_STORE_CASES_H
#define TESTS_SUPPORT_STORE_CASES_H

#include <check.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/obs_sbuf.h"
#include "store/obs_store.h"

static struct obs_store *sc_st; /* set by the includer's fixture */

static void sc_put(const char *k, const char *v)
{
    struct obs_err err = {0};
    int rc = obs_store_put(sc_st, k, v, strlen(v), &err);
    ck_assert_msg(rc == 0, "put %s: %d %s", k, rc, err.msg);
}

/* Collected listing: keys joined by ',' (first 8 KiB), count and order check. */
struct sc_keys {
    char s[8192];
    int n, stop_at, unordered;
    char last[1100];
};

static int sc_key_fn(const char *k, void *arg)
{
    struct sc_keys *ks = arg;
    size_t l = strlen(ks->s);
    snprintf(ks->s + l, sizeof(ks->s) - l, "%s%s", l ? "," : "", k);
    if (ks->n > 0 && strcmp(ks->last, k) >= 0)
        ks->unordered++;
    snprintf(ks->last, sizeof(ks->last), "%s", k);
    ks->n++;
    return ks->stop_at && ks->n == ks->stop_at;
}

static const char *sc_list(const char *prefix, const char *delim, struct sc_keys *ks)
{
    memset(ks, 0, sizeof(*ks));
    struct obs_err err = {0};
    int rc = obs_store_list(sc_st, prefix, delim, sc_key_fn, ks, &err);
    ck_assert_msg(rc == 0, "list %s: %d %s", prefix, rc, err.msg);
    ck_assert_msg(ks->unordered == 0, "list %s: keys out of order", prefix);
    return ks->s;
}

static double sc_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sc_sha256(const void *p, size_t n, unsigned char out[32])
{
    unsigned int l = 0;
    ck_assert_int_eq(EVP_Digest(p, n, out, &l, EVP_sha256(), NULL), 1);
}

START_TEST(sc_put_get)
{
    struct obs_sbuf b;
    obs_sbuf_init(&b);
    sc_put("t1/01ABC/meta.json", "{\"version\":1}");
    ck_assert_int_eq(obs_store_get(sc_st, "t1/01ABC/meta.json", 0, 0, &b, NULL), 0);
    ck_assert_str_eq(b.p, "{\"version\":1}");
    /* Overwrite replaces the whole object; get appends to what out holds. */
    sc_put("t1/01ABC/meta.json", "v2");
    obs_sbuf_reset(&b);
    obs_sbuf_puts(&b, ">");
    ck_assert_int_eq(obs_store_get(sc_st, "t1/01ABC/meta.json", 0, 0, &b, NULL), 0);
    ck_assert_str_eq(b.p, ">v2");
    /* Binary data and empty objects. */
    uint8_t bin[256];
    for (int i = 0; i < 256; i++)
        bin[i] = (uint8_t)i;
    ck_assert_int_eq(obs_store_put(sc_st, "bin", bin, sizeof(bin), NULL), 0);
    obs_sbuf_reset(&b);
    ck_assert_int_eq(obs_store_get(sc_st, "bin", 0, 0, &b, NULL), 0);
    ck_assert_uint_eq(b.len, 256);
    ck_assert_int_eq(memcmp(b.p, bin, 256), 0);
    ck_assert_int_eq(obs_store_put(sc_st, "empty", "", 0, NULL), 0);
    obs_sbuf_reset(&b);
    ck_assert_int_eq(obs_store_get(sc_st, "empty", 0, 0, &b, NULL), 0);
    ck_assert_uint_eq(b.len, 0);
    uint64_t sz = 99;
    ck_assert_int_eq(obs_store_head(sc_st, "empty", &sz, NULL), 0);
    ck_assert_uint_eq(sz, 0);
    struct sc_keys ks;
    ck_assert_str_eq(sc_list("", NULL, &ks), "bin,empty,t1/01ABC/meta.json");
    obs_sbuf_deinit(&b);
}
END_TEST

START_TEST(sc_range)
{
    sc_put("obj", "0123456789");
    struct obs_sbuf b;
    obs_sbuf_init(&b);
    ck_assert_int_eq(obs_store_get(sc_st, "obj", 2, 3, &b, NULL), 0);
    ck_assert_str_eq(b.p, "234");
    obs_sbuf_reset(&b);
    ck_assert_int_eq(obs_store_get(sc_st, "obj", 0, 1, &b, NULL), 0);
    ck_assert_str_eq(b.p, "0");
    obs_sbuf_reset(&b);
    ck_assert_int_eq(obs_store_get(sc_st, "obj", 7, 0, &b, NULL), 0); /* to the end */
    ck_assert_str_eq(b.p, "789");
    obs_sbuf_reset(&b);
    ck_assert_int_eq(obs_store_get(sc_st, "obj", 8, 100, &b, NULL), 0); /* clamped */
    ck_assert_str_eq(b.p, "89");
    obs_sbuf_reset(&b);
    ck_assert_int_eq(obs_store_get(sc_st, "obj", 10, 0, &b, NULL), 0); /* at end: empty */
    ck_assert_uint_eq(b.len, 0);
    obs_sbuf_reset(&b);
    obs_sbuf_puts(&b, "keep");
    struct obs_err err = {0};
    ck_assert_int_eq(obs_store_get(sc_st, "obj", 11, 1, &b, &err), OBS_ERANGE);
    ck_assert_int_eq(err.code, OBS_ERANGE);
    ck_assert_str_eq(b.p, "keep"); /* out untouched on error */
    ck_assert_int_eq(obs_store_get(sc_st, "obj", 11, 0, &b, NULL), OBS_ERANGE);
    /* An empty object: a zero-length read at 0 works, a range does not go past it. */
    sc_put("zero", "");
    obs_sbuf_reset(&b);
    ck_assert_int_eq(obs_store_get(sc_st, "zero", 0, 5, &b, NULL), 0);
    ck_assert_uint_eq(b.len, 0);
    obs_sbuf_deinit(&b);
}
END_TEST

START_TEST(sc_head)
{
    sc_put("a/b", "hello");
    uint64_t sz = 0;
    ck_assert_int_eq(obs_store_head(sc_st, "a/b", &sz, NULL), 0);
    ck_assert_uint_eq(sz, 5);
    /* A prefix is not an object. */
    ck_assert_int_eq(obs_store_head(sc_st, "a", &sz, NULL), OBS_ENOENT);
}
END_TEST

START_TEST(sc_missing)
{
    struct obs_sbuf b;
    obs_sbuf_init(&b);
    obs_sbuf_puts(&b, "keep");
    struct obs_err err = {0};
    uint64_t sz;
    ck_assert_int_eq(obs_store_get(sc_st, "nope", 0, 0, &b, &err), OBS_ENOENT);
    ck_assert_int_eq(err.code, OBS_ENOENT);
    ck_assert_str_eq(b.p, "keep"); /* no error body leaks into out */
    ck_assert_int_eq(obs_store_get(sc_st, "no/such/dir", 0, 0, &b, NULL), OBS_ENOENT);
    ck_assert_int_eq(obs_store_get(sc_st, "nope", 3, 2, &b, NULL), OBS_ENOENT);
    ck_assert_int_eq(obs_store_head(sc_st, "nope", &sz, NULL), OBS_ENOENT);
    sc_put("file", "x");
    ck_assert_int_eq(obs_store_get(sc_st, "file/child", 0, 0, &b, NULL), OBS_ENOENT);
    ck_assert_int_eq(obs_store_del(sc_st, "nope", NULL), 0); /* absent is OK */
    ck_assert_int_eq(obs_store_del(sc_st, "no/such/key", NULL), 0);
    struct sc_keys ks;
    ck_assert_str_eq(sc_list("zzz/", "/", &ks), "");
    ck_assert_str_eq(sc_list("no/such/", NULL, &ks), "");
    ck_assert_str_eq(b.p, "keep");
    obs_sbuf_deinit(&b);
}
END_TEST

START_TEST(sc_list_sorted)
{
    sc_put("b", "1");
    sc_put("a/x", "1");
    sc_put("a-b", "1");
    sc_put("a/y/z", "1");
    sc_put("a/a", "1");
    sc_put("c/d/e/f", "1");
    struct sc_keys ks;
    /* Global byte order of keys: '-' (0x2d) < '/' (0x2f). */
    ck_assert_str_eq(sc_list("", NULL, &ks), "a-b,a/a,a/x,a/y/z,b,c/d/e/f");
    ck_assert_str_eq(sc_list("", "", &ks), "a-b,a/a,a/x,a/y/z,b,c/d/e/f");
    ck_assert_str_eq(sc_list("a/", NULL, &ks), "a/a,a/x,a/y/z");
    ck_assert_str_eq(sc_list("a", NULL, &ks), "a-b,a/a,a/x,a/y/z");
    ck_assert_str_eq(sc_list("a/y", NULL, &ks), "a/y/z");
    /* fn asks to stop. */
    memset(&ks, 0, sizeof(ks));
    ks.stop_at = 2;
    ck_assert_int_eq(obs_store_list(sc_st, "", NULL, sc_key_fn, &ks, NULL), 0);
    ck_assert_str_eq(ks.s, "a-b,a/a");
}
END_TEST

START_TEST(sc_list_delim)
{
    sc_put("t1/01A/meta.json", "1");
    sc_put("t1/01A/index", "1");
    sc_put("t1/01A/chunks/000001", "1");
    sc_put("t1/01B/meta.json", "1");
    sc_put("t1/02C/meta.json", "1");
    sc_put("t1/top", "1");
    sc_put("t2/01Z/meta.json", "1");
    sc_put("root", "1");
    struct sc_keys ks;
    ck_assert_str_eq(sc_list("", "/", &ks), "root,t1/,t2/");
    ck_assert_str_eq(sc_list("t1/", "/", &ks), "t1/01A/,t1/01B/,t1/02C/,t1/top");
    ck_assert_str_eq(sc_list("t1/01", "/", &ks), "t1/01A/,t1/01B/");
    ck_assert_str_eq(sc_list("t1/01A/", "/", &ks),
                     "t1/01A/chunks/,t1/01A/index,t1/01A/meta.json");
    ck_assert_str_eq(sc_list("t", "/", &ks), "t1/,t2/");
    /* Stop in the middle of a delimiter listing. */
    memset(&ks, 0, sizeof(ks));
    ks.stop_at = 2;
    ck_assert_int_eq(obs_store_list(sc_st, "t1/", "/", sc_key_fn, &ks, NULL), 0);
    ck_assert_str_eq(ks.s, "t1/01A/,t1/01B/");
    struct obs_err err = {0};
    ck_assert_int_eq(obs_store_list(sc_st, "", ",", sc_key_fn, &ks, &err), OBS_EINVAL);
}
END_TEST

START_TEST(sc_del)
{
    sc_put("t1/01A/meta.json", "1");
    sc_put("t1/01A/index", "1");
    sc_put("t1/01B/meta.json", "1");
    ck_assert_int_eq(obs_store_del(sc_st, "t1/01A/meta.json", NULL), 0);
    uint64_t sz;
    ck_assert_int_eq(obs_store_head(sc_st, "t1/01A/meta.json", &sz, NULL), OBS_ENOENT);
    struct sc_keys ks;
    ck_assert_str_eq(sc_list("t1/", "/", &ks), "t1/01A/,t1/01B/");
    /* Deleting the last object removes the prefix too. */
    ck_assert_int_eq(obs_store_del(sc_st, "t1/01A/index", NULL), 0);
    ck_assert_str_eq(sc_list("t1/", "/", &ks), "t1/01B/");
    ck_assert_int_eq(obs_store_del(sc_st, "t1/01B/meta.json", NULL), 0);
    ck_assert_str_eq(sc_list("", "/", &ks), "");
    /* The prefix can be reused afterwards. */
    sc_put("t1/01A/meta.json", "again");
    ck_assert_int_eq(obs_store_head(sc_st, "t1/01A/meta.json", &sz, NULL), 0);
    ck_assert_uint_eq(sz, 5);
}
END_TEST

/* --- paging: more keys than one S3 page (1000) ---------------------------------------- */

#define SC_NPAGE 1013
#define SC_NTHREADS 4

struct sc_range_arg {
    int from, to;
    int failed;
    char msg[512];
};

static void *sc_put_range(void *arg)
{
    struct sc_range_arg *a = arg;
    for (int i = a->from; i < a->to && !a->failed; i++) {
        char k[64];
        /* every 10th key lives one level down, so "/" listings see common prefixes */
        if (i % 10 == 0)
            snprintf(k, sizeof(k), "pg/d%04d/obj", i);
        else
            snprintf(k, sizeof(k), "pg/k%04d", i);
        struct obs_err err = {0};
        if (obs_store_put(sc_st, k, k, strlen(k), &err) != 0) {
            a->failed = 1;
            snprintf(a->msg, sizeof(a->msg), "put %s: %s", k, err.msg);
        }
    }
    return NULL;
}

START_TEST(sc_list_paging)
{
    pthread_t th[SC_NTHREADS];
    struct sc_range_arg args[SC_NTHREADS];
    double t0 = sc_now();
    for (int t = 0; t < SC_NTHREADS; t++) {
        args[t] = (struct sc_range_arg){.from = t * SC_NPAGE / SC_NTHREADS,
                                        .to = (t + 1) * SC_NPAGE / SC_NTHREADS};
        ck_assert_int_eq(pthread_create(&th[t], NULL, sc_put_range, &args[t]), 0);
    }
    for (int t = 0; t < SC_NTHREADS; t++) {
        pthread_join(th[t], NULL);
        ck_assert_msg(!args[t].failed, "%s", args[t].msg);
    }
    double t1 = sc_now();
    sc_put("pg0", "after"); /* sorts after "pg/...": must not be cut off by a page end */
    struct sc_keys ks;
    sc_list("pg/", NULL, &ks);
    ck_assert_int_eq(ks.n, SC_NPAGE);
    ck_assert_str_eq(ks.last, "pg/k1012");
    ck_assert_msg(strncmp(ks.s, "pg/d0000/obj,pg/d0010/obj,", 26) == 0, "%.60s", ks.s);
    sc_list("", NULL, &ks);
    ck_assert_int_eq(ks.n, SC_NPAGE + 1);
    ck_assert_str_eq(ks.last, "pg0");
    /* With "/": 102 common prefixes pg/dNNNN/ and 911 objects pg/kNNNN. */
    sc_list("pg/", "/", &ks);
    ck_assert_int_eq(ks.n, SC_NPAGE);
    ck_assert_msg(strncmp(ks.s, "pg/d0000/,pg/d0010/,", 20) == 0, "%.60s", ks.s);
    ck_assert_str_eq(ks.last, "pg/k1012");
    sc_list("", "/", &ks);
    ck_assert_str_eq(ks.s, "pg/,pg0");
    /* Stop across a page boundary. */
    memset(&ks, 0, sizeof(ks));
    ks.stop_at = 1005;
    ck_assert_int_eq(obs_store_list(sc_st, "pg/", NULL, sc_key_fn, &ks, NULL), 0);
    ck_assert_int_eq(ks.n, 1005);
    double t2 = sc_now();
    printf("conformance: list_paging: %d puts in %.2fs (%.0f/s, %d threads), 5 listings "
           "in %.2fs\n", SC_NPAGE, t1 - t0, SC_NPAGE / (t1 - t0), SC_NTHREADS, t2 - t1);
    fflush(stdout);
}
END_TEST

/* --- a large object: multipart upload on S3 --------------------------------------------- */

#define SC_BIG (12u * 1024 * 1024)

START_TEST(sc_big_object)
{
    unsigned char *data = malloc(SC_BIG);
    ck_assert_ptr_nonnull(data);
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < SC_BIG; i += 8) { /* xorshift: incompressible, reproducible */
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        memcpy(data + i, &x, 8);
    }
    unsigned char want[32], got[32];
    sc_sha256(data, SC_BIG, want);
    struct obs_err err = {0};
    double t0 = sc_now();
    int rc = obs_store_put(sc_st, "big/12MiB.bin", data, SC_BIG, &err);
    double t1 = sc_now();
    ck_assert_msg(rc == 0, "put big: %d %s", rc, err.msg);
    uint64_t sz = 0;
    ck_assert_int_eq(obs_store_head(sc_st, "big/12MiB.bin", &sz, NULL), 0);
    ck_assert_uint_eq(sz, SC_BIG);
    struct obs_sbuf b;
    obs_sbuf_init(&b);
    double t2 = sc_now();
    rc = obs_store_get(sc_st, "big/12MiB.bin", 0, 0, &b, &err);
    double t3 = sc_now();
    ck_assert_msg(rc == 0, "get big: %d %s", rc, err.msg);
    ck_assert_uint_eq(b.len, SC_BIG);
    sc_sha256(b.p, b.len, got);
    ck_assert_msg(memcmp(want, got, 32) == 0, "sha256 of the object read back differs");
    /* Ranges across the 5 MiB and 10 MiB part boundaries, and the tail. */
    static const uint64_t offs[][2] = {{5u * 1024 * 1024 - 100, 200},
                                       {10u * 1024 * 1024 - 1, 2},
                                       {SC_BIG - 10, 0},
                                       {1, 7u * 1024 * 1024}};
    for (size_t i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
        obs_sbuf_reset(&b);
        ck_assert_int_eq(obs_store_get(sc_st, "big/12MiB.bin", offs[i][0], offs[i][1], &b, NULL),
                         0);
        uint64_t n = offs[i][1] ? offs[i][1] : SC_BIG - offs[i][0];
        ck_assert_uint_eq(b.len, n);
        ck_assert_int_eq(memcmp(b.p, data + offs[i][0], n), 0);
    }
    struct sc_keys ks;
    ck_assert_str_eq(sc_list("big/", "/", &ks), "big/12MiB.bin");
    printf("conformance: big_object: put 12 MiB in %.3fs (%.1f MB/s), get in %.3fs "
           "(%.1f MB/s), sha256 equal\n", t1 - t0, SC_BIG / 1e6 / (t1 - t0), t3 - t2,
           SC_BIG / 1e6 / (t3 - t2));
    fflush(stdout);
    obs_sbuf_deinit(&b);
    free(data);
    ck_assert_int_eq(obs_store_del(sc_st, "big/12MiB.bin", NULL), 0);
    ck_assert_int_eq(obs_store_head(sc_st, "big/12MiB.bin", &sz, NULL), OBS_ENOENT);
}
END_TEST

/* --- keys that need encoding ------------------------------------------------------------ */

START_TEST(sc_odd_keys)
{
    static const char *keys[] = {
        "dir with space/a b+c.txt",
        "plus+dir/x+y=z&w",
        "sym/!$'()*,;:@[]~%25 #",
        "xml/<tag> & \"quote\" 'apos'",
        "utf8/\xc3\xbc" "n\xc3\xaf" "c\xc3\xb8" "d\xc3\xa9 \xe2\x82\xac",
    };
    size_t n = sizeof(keys) / sizeof(keys[0]);
    for (size_t i = 0; i < n; i++) {
        char v[16];
        snprintf(v, sizeof(v), "v%zu", i);
        sc_put(keys[i], v);
    }
    struct obs_sbuf b;
    obs_sbuf_init(&b);
    for (size_t i = 0; i < n; i++) {
        char v[16];
        snprintf(v, sizeof(v), "v%zu", i);
        obs_sbuf_reset(&b);
        struct obs_err err = {0};
        int rc = obs_store_get(sc_st, keys[i], 0, 0, &b, &err);
        ck_assert_msg(rc == 0, "get '%s': %d %s", keys[i], rc, err.msg);
        ck_assert_str_eq(b.p, v);
        uint64_t sz = 0;
        ck_assert_int_eq(obs_store_head(sc_st, keys[i], &sz, NULL), 0);
        ck_assert_uint_eq(sz, strlen(v));
    }
    struct sc_keys ks;
    ck_assert_str_eq(sc_list("", "/", &ks), "dir with space/,plus+dir/,sym/,utf8/,xml/");
    ck_assert_str_eq(sc_list("dir with space/", NULL, &ks), keys[0]);
    ck_assert_str_eq(sc_list("plus+dir/x+", "/", &ks), keys[1]);
    ck_assert_str_eq(sc_list("sym/", NULL, &ks), keys[2]);
    ck_assert_str_eq(sc_list("xml/<tag> &", NULL, &ks), keys[3]);
    ck_assert_str_eq(sc_list("utf8/", NULL, &ks), keys[4]);
    /* "+" is not a space: a key with a space is a different object. */
    uint64_t sz;
    ck_assert_int_eq(obs_store_head(sc_st, "plus dir/x y=z&w", &sz, NULL), OBS_ENOENT);
    for (size_t i = 0; i < n; i++)
        ck_assert_int_eq(obs_store_del(sc_st, keys[i], NULL), 0);
    ck_assert_str_eq(sc_list("", NULL, &ks), "");
    obs_sbuf_deinit(&b);
}
END_TEST

/* --- concurrent use --------------------------------------------------------------------- */

static void *sc_worker(void *arg)
{
    struct sc_range_arg *a = arg;
    struct obs_sbuf b;
    obs_sbuf_init(&b);
    for (int i = 0; i < 25 && !a->failed; i++) {
        char k[64], v[64];
        snprintf(k, sizeof(k), "conc/w%d/%02d", a->from, i);
        snprintf(v, sizeof(v), "value %d/%d", a->from, i);
        struct obs_err err = {0};
        obs_sbuf_reset(&b);
        uint64_t sz = 0;
        if (obs_store_put(sc_st, k, v, strlen(v), &err) != 0 ||
            obs_store_get(sc_st, k, 0, 0, &b, &err) != 0 ||
            obs_store_head(sc_st, k, &sz, &err) != 0) {
            a->failed = 1;
            snprintf(a->msg, sizeof(a->msg), "%s: %s", k, err.msg);
        } else if (strcmp(b.p, v) != 0 || sz != strlen(v)) {
            a->failed = 1;
            snprintf(a->msg, sizeof(a->msg), "%s: read back '%s'", k, b.p);
        } else if (i % 2 == 1 && obs_store_del(sc_st, k, &err) != 0) {
            a->failed = 1;
            snprintf(a->msg, sizeof(a->msg), "del %s: %s", k, err.msg);
        }
    }
    obs_sbuf_deinit(&b);
    return NULL;
}

START_TEST(sc_concurrent)
{
    pthread_t th[6];
    struct sc_range_arg args[6];
    for (int t = 0; t < 6; t++) {
        args[t] = (struct sc_range_arg){.from = t};
        ck_assert_int_eq(pthread_create(&th[t], NULL, sc_worker, &args[t]), 0);
    }
    for (int t = 0; t < 6; t++)
        pthread_join(th[t], NULL);
    for (int t = 0; t < 6; t++)
        ck_assert_msg(!args[t].failed, "%s", args[t].msg);
    struct sc_keys ks;
    sc_list("conc/", NULL, &ks);
    ck_assert_int_eq(ks.n, 6 * 13); /* even i kept: 0,2,..,24 */
    sc_list("conc/", "/", &ks);
    ck_assert_str_eq(ks.s, "conc/w0/,conc/w1/,conc/w2/,conc/w3/,conc/w4/,conc/w5/");
}
END_TEST

/* Register the shared cases, each in its own TCase with the includer's fixture; want (may be
 * NULL) filters by case name. Returns how many were added. */
static int sc_add_cases(Suite *s, void (*setup)(void), void (*teardown)(void), int timeout,
                        int (*want)(const char *name))
{
    int added = 0;
    const struct {
        const char *name;
        const TTest *t;
    } cases[] = {
        {"put_get", sc_put_get},         {"range", sc_range},
        {"head", sc_head},               {"missing", sc_missing},
        {"list_sorted", sc_list_sorted}, {"list_delim", sc_list_delim},
        {"del", sc_del},                 {"list_paging", sc_list_paging},
        {"big_object", sc_big_object},   {"odd_keys", sc_odd_keys},
        {"concurrent", sc_concurrent},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (want != NULL && !want(cases[i].name))
            continue;
        TCase *tc = tcase_create(cases[i].name);
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_set_timeout(tc, timeout);
        tcase_add_test(tc, cases[i].t);
        suite_add_tcase(s, tc);
        added++;
    }
    return added;
}

#endif
