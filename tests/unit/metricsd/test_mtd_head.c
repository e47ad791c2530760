/*
 * test_mtd_head.c -- metricsd head: append, select, order/duplicate errors, postings with
 * every matcher kind, label APIs, tenants, metadata, and WAL replay (reopen after close and
 * after records were written without a clean close).
 */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/obs_mem.h"
#include "metricsd/head.h"
#include "metricsd/storage.h"

static char waldir[256];

static void mkwaldir(void)
{
    snprintf(waldir, sizeof waldir, "/tmp/test_mtd_head.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(waldir));
}

static void rmwaldir(void)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", waldir);
    ck_assert_int_eq(system(cmd), 0);
}

/* Add one sample to {__name__=name, job=job, [inst]} and commit; returns the add result. */
static int add1(struct mtd_head *h, const char *tenant, const char *name, const char *job,
                const char *inst, int64_t t, double v)
{
    struct obs_label l[3] = {{"__name__", name}, {"instance", inst}, {"job", job}};
    size_t n = 3;
    if (inst == NULL) {
        l[1] = l[2];
        n = 2;
    }
    struct obs_err err = {0};
    struct mtd_appender *a = mtd_head_appender(h, tenant);
    ck_assert_ptr_nonnull(a);
    int rc = mtd_appender_add(a, l, n, t, v, &err);
    ck_assert_int_eq(mtd_appender_commit(a, NULL), 0);
    return rc;
}

static struct mtd_series_set *sel(struct mtd_head *h, const char *tenant, const char *selector,
                                  int64_t mint, int64_t maxt)
{
    struct obs_matcher *ms = NULL;
    size_t nms = 0;
    struct obs_err err = {0};
    if (selector)
        ck_assert_msg(obs_selector_parse(selector, strlen(selector), &ms, &nms, &err) == 0, "%s",
                      err.msg);
    struct mtd_select_opts o = {.mint = mint, .maxt = maxt};
    struct mtd_series_set *set = NULL;
    ck_assert_int_eq(mtd_storage_select(mtd_head_storage(h), tenant, ms, nms, &o, &set, &err), 0);
    obs_matchers_free(ms, nms);
    return set;
}

static size_t count(struct mtd_head *h, const char *selector)
{
    struct mtd_series_set *s = sel(h, "anonymous", selector, INT64_MIN, INT64_MAX);
    size_t n = s->nseries;
    mtd_series_set_free(s);
    return n;
}

/* ---- append ---- */

START_TEST(test_append_select)
{
    struct mtd_head *h = mtd_head_open(NULL, NULL);
    ck_assert_ptr_nonnull(h);
    for (int i = 0; i < 100; i++)
        ck_assert_int_eq(add1(h, "anonymous", "up", "a", NULL, 1000 * i, i), 0);
    ck_assert_int_eq(add1(h, "anonymous", "up", "b", NULL, 5000, 7), 0);
    ck_assert_uint_eq(mtd_head_num_series(h), 2);
    ck_assert_uint_eq(mtd_head_num_samples(h), 101);

    struct mtd_series_set *s = sel(h, "anonymous", "up", 10000, 19999);
    ck_assert_uint_eq(s->nseries, 1); /* job=b has no sample in range */
    ck_assert_uint_eq(s->series[0].nsamples, 10);
    ck_assert_int_eq(s->series[0].samples[0].t, 10000);
    ck_assert_double_eq(s->series[0].samples[9].v, 19);
    ck_assert_str_eq(s->series[0].labels[0].name, "__name__");
    ck_assert_str_eq(s->series[0].labels[1].value, "a");
    mtd_series_set_free(s);

    /* sorted by labels, all time */
    s = sel(h, "anonymous", "{__name__=\"up\"}", INT64_MIN, INT64_MAX);
    ck_assert_uint_eq(s->nseries, 2);
    ck_assert_str_eq(s->series[0].labels[1].value, "a");
    ck_assert_str_eq(s->series[1].labels[1].value, "b");
    ck_assert_uint_eq(s->nsamples_total, 101);
    mtd_series_set_free(s);

    /* no_samples option */
    struct mtd_select_opts o = {.mint = INT64_MIN, .maxt = INT64_MAX, .no_samples = 1};
    struct mtd_series_set *set = NULL;
    ck_assert_int_eq(mtd_storage_select(mtd_head_storage(h), "anonymous", NULL, 0, &o, &set,
                                        NULL), 0);
    ck_assert_uint_eq(set->nseries, 2);
    ck_assert_uint_eq(set->series[0].nsamples, 0);
    mtd_series_set_free(set);

    /* limits */
    o.no_samples = 0;
    o.max_samples = 50;
    struct obs_err err = {0};
    ck_assert_int_eq(mtd_storage_select(mtd_head_storage(h), "anonymous", NULL, 0, &o, &set,
                                        &err), OBS_ELIMIT);
    mtd_head_close(h);
}
END_TEST

START_TEST(test_order_errors)
{
    struct mtd_head *h = mtd_head_open(NULL, NULL);
    struct obs_label l[] = {{"__name__", "m"}, {"job", "x"}};
    struct obs_err err = {0};
    struct mtd_appender *a = mtd_head_appender(h, "anonymous");
    ck_assert_int_eq(mtd_appender_add(a, l, 2, 2000, 1.0, &err), 0);
    /* within one batch: older -> out of order */
    ck_assert_int_eq(mtd_appender_add(a, l, 2, 1000, 1.0, &err), OBS_ERANGE);
    ck_assert_ptr_nonnull(strstr(err.msg, "out of order sample"));
    /* same t, same value: accepted once */
    ck_assert_int_eq(mtd_appender_add(a, l, 2, 2000, 1.0, &err), 0);
    /* same t, other value: duplicate */
    ck_assert_int_eq(mtd_appender_add(a, l, 2, 2000, 2.0, &err), OBS_EEXIST);
    ck_assert_ptr_nonnull(strstr(err.msg, "duplicate sample for timestamp"));
    ck_assert_uint_eq(mtd_appender_count(a), 1);
    ck_assert_int_eq(mtd_appender_commit(a, &err), 0);

    /* across batches, against committed data */
    a = mtd_head_appender(h, "anonymous");
    ck_assert_int_eq(mtd_appender_add(a, l, 2, 1999, 1.0, &err), OBS_ERANGE);
    ck_assert_int_eq(mtd_appender_add(a, l, 2, 2000, 3.0, &err), OBS_EEXIST);
    ck_assert_int_eq(mtd_appender_add(a, l, 2, 2000, 1.0, &err), 0);
    ck_assert_int_eq(mtd_appender_add(a, l, 2, 3000, 4.0, &err), 0);
    ck_assert_int_eq(mtd_appender_commit(a, &err), 0);
    ck_assert_uint_eq(mtd_head_num_samples(h), 2);

    /* stale NaN: duplicate check compares bits */
    double stale;
    uint64_t bits = MTD_STALE_NAN_BITS;
    memcpy(&stale, &bits, 8);
    ck_assert_int_eq(add1(h, "anonymous", "m", "x", NULL, 4000, stale), 0);
    ck_assert_int_eq(add1(h, "anonymous", "m", "x", NULL, 4000, stale), 0);
    ck_assert_int_eq(add1(h, "anonymous", "m", "x", NULL, 4000, NAN), OBS_EEXIST);
    struct mtd_series_set *s = sel(h, "anonymous", "m", INT64_MIN, INT64_MAX);
    ck_assert_uint_eq(s->series[0].nsamples, 3);
    ck_assert(mtd_value_is_stale(s->series[0].samples[2].v));
    mtd_series_set_free(s);

    /* rollback leaves nothing */
    a = mtd_head_appender(h, "anonymous");
    ck_assert_int_eq(mtd_appender_add(a, l, 2, 9000, 1.0, &err), 0);
    mtd_appender_rollback(a);
    ck_assert_uint_eq(mtd_head_num_samples(h), 3);
    /* and the next batch is checked against committed data only */
    ck_assert_int_eq(add1(h, "anonymous", "m", "x", NULL, 5000, 1), 0);
    mtd_head_close(h);
}
END_TEST

START_TEST(test_series_limit)
{
    struct mtd_head *h = mtd_head_open(NULL, NULL);
    mtd_head_set_max_series(h, 2);
    ck_assert_int_eq(add1(h, "anonymous", "m", "1", NULL, 1, 1), 0);
    ck_assert_int_eq(add1(h, "anonymous", "m", "2", NULL, 1, 1), 0);
    ck_assert_int_eq(add1(h, "anonymous", "m", "3", NULL, 1, 1), OBS_ELIMIT);
    ck_assert_int_eq(add1(h, "anonymous", "m", "1", NULL, 2, 1), 0);
    ck_assert_int_eq(add1(h, "other", "m", "3", NULL, 1, 1), 0); /* per tenant */
    mtd_head_close(h);
}
END_TEST

/* ---- postings ---- */

static struct mtd_head *fixture_head(void)
{
    struct mtd_head *h = mtd_head_open(NULL, NULL);
    ck_assert_int_eq(add1(h, "anonymous", "up", "api", "i1", 1000, 1), 0);
    ck_assert_int_eq(add1(h, "anonymous", "up", "api", "i2", 1000, 1), 0);
    ck_assert_int_eq(add1(h, "anonymous", "up", "db", "i1", 1000, 1), 0);
    ck_assert_int_eq(add1(h, "anonymous", "up", "dbx", NULL, 1000, 1), 0); /* no instance */
    ck_assert_int_eq(add1(h, "anonymous", "http_requests_total", "api", "i1", 1000, 5), 0);
    ck_assert_int_eq(add1(h, "tenant2", "up", "secret", NULL, 1000, 1), 0);
    return h;
}

START_TEST(test_postings)
{
    struct mtd_head *h = fixture_head();
    ck_assert_uint_eq(count(h, "up"), 4);
    ck_assert_uint_eq(count(h, "up{job=\"api\"}"), 2);
    ck_assert_uint_eq(count(h, "up{job!=\"api\"}"), 2);
    ck_assert_uint_eq(count(h, "up{job=~\"db\"}"), 1);   /* anchored: not dbx */
    ck_assert_uint_eq(count(h, "up{job=~\"db.*\"}"), 2);
    ck_assert_uint_eq(count(h, "up{job=~\"a|db\"}"), 1);
    ck_assert_uint_eq(count(h, "up{job!~\"db.*\"}"), 2);
    ck_assert_uint_eq(count(h, "{job=\"api\"}"), 3);
    ck_assert_uint_eq(count(h, "{__name__=~\"up|http_.*\"}"), 5);
    /* empty-matching matchers select series without the label */
    ck_assert_uint_eq(count(h, "up{instance=\"\"}"), 1);
    ck_assert_uint_eq(count(h, "up{instance!=\"\"}"), 3);
    ck_assert_uint_eq(count(h, "up{instance=~\"i1|\"}"), 3);
    ck_assert_uint_eq(count(h, "up{instance!~\"i.*\"}"), 1);
    ck_assert_uint_eq(count(h, "up{nolabel=\"\"}"), 4);
    ck_assert_uint_eq(count(h, "up{nolabel=\"x\"}"), 0);
    ck_assert_uint_eq(count(h, "nosuchmetric"), 0);
    /* all matchers together */
    ck_assert_uint_eq(count(h, "up{job=~\"api|db\",instance=\"i1\"}"), 2);
    /* tenant isolation */
    struct mtd_series_set *s = sel(h, "tenant2", "up", INT64_MIN, INT64_MAX);
    ck_assert_uint_eq(s->nseries, 1);
    ck_assert_str_eq(s->series[0].labels[1].value, "secret");
    mtd_series_set_free(s);
    s = sel(h, "nobody", "up", INT64_MIN, INT64_MAX);
    ck_assert_uint_eq(s->nseries, 0);
    mtd_series_set_free(s);
    mtd_head_close(h);
}
END_TEST

START_TEST(test_label_apis)
{
    struct mtd_head *h = fixture_head();
    struct mtd_storage *st = mtd_head_storage(h);
    char **v = NULL;
    size_t n = 0;
    ck_assert_int_eq(mtd_storage_label_names(st, "anonymous", NULL, 0, INT64_MIN, INT64_MAX,
                                             &v, &n, NULL), 0);
    ck_assert_uint_eq(n, 3);
    ck_assert_str_eq(v[0], "__name__");
    ck_assert_str_eq(v[1], "instance");
    ck_assert_str_eq(v[2], "job");
    mtd_strings_free(v, n);

    ck_assert_int_eq(mtd_storage_label_values(st, "anonymous", "__name__", NULL, 0, INT64_MIN,
                                              INT64_MAX, &v, &n, NULL), 0);
    ck_assert_uint_eq(n, 2);
    ck_assert_str_eq(v[0], "http_requests_total");
    ck_assert_str_eq(v[1], "up");
    mtd_strings_free(v, n);
    /* the unbounded answer is cached: a new value must still show up, in order */
    ck_assert_int_eq(add1(h, "anonymous", "aaa_first", "new", NULL, 5000, 1), 0);
    ck_assert_int_eq(mtd_storage_label_values(st, "anonymous", "__name__", NULL, 0, INT64_MIN,
                                              INT64_MAX, &v, &n, NULL), 0);
    ck_assert_uint_eq(n, 3);
    ck_assert_str_eq(v[0], "aaa_first");
    ck_assert_str_eq(v[2], "up");
    mtd_strings_free(v, n);
    ck_assert_int_eq(mtd_storage_label_values(st, "anonymous", "__name__", NULL, 0, INT64_MIN,
                                              INT64_MAX, &v, &n, NULL), 0);
    ck_assert_uint_eq(n, 3);
    mtd_strings_free(v, n);

    struct obs_matcher *ms;
    size_t nms;
    ck_assert_int_eq(obs_selector_parse("up{job=~\"db.*\"}", 15, &ms, &nms, NULL), 0);
    ck_assert_int_eq(mtd_storage_label_values(st, "anonymous", "job", ms, nms, INT64_MIN,
                                              INT64_MAX, &v, &n, NULL), 0);
    ck_assert_uint_eq(n, 2);
    ck_assert_str_eq(v[0], "db");
    ck_assert_str_eq(v[1], "dbx");
    mtd_strings_free(v, n);
    ck_assert_int_eq(mtd_storage_label_names(st, "anonymous", ms, nms, INT64_MIN, INT64_MAX, &v,
                                             &n, NULL), 0);
    ck_assert_uint_eq(n, 3);
    mtd_strings_free(v, n);
    obs_matchers_free(ms, nms);

    /* time range excludes everything */
    ck_assert_int_eq(mtd_storage_label_values(st, "anonymous", "job", NULL, 0, 2000, 3000, &v,
                                              &n, NULL), 0);
    ck_assert_uint_eq(n, 0);
    mtd_strings_free(v, n);

    ck_assert_int_eq(mtd_storage_tenants(st, &v, &n), 0);
    ck_assert_uint_eq(n, 2);
    ck_assert_str_eq(v[0], "anonymous");
    ck_assert_str_eq(v[1], "tenant2");
    mtd_strings_free(v, n);
    mtd_head_close(h);
}
END_TEST

START_TEST(test_storage_append)
{
    struct mtd_head *h = mtd_head_open(NULL, NULL);
    struct mtd_storage *st = mtd_head_storage(h);
    struct obs_label l[] = {{"job", "r"}, {"__name__", "rule:x"}}; /* unsorted is fine here */
    struct mtd_sample s[] = {{1000, 1}, {2000, 2}};
    struct obs_err err = {0};
    ck_assert_int_eq(mtd_storage_append(st, "anonymous", l, 2, s, 2, &err), 0);
    ck_assert_int_eq(mtd_storage_append(st, "anonymous", l, 2, s, 1, &err), OBS_ERANGE);
    struct obs_label bad[] = {{"__name__", "x"}, {"0bad", "v"}};
    ck_assert_int_eq(mtd_storage_append(st, "anonymous", bad, 2, s, 1, &err), OBS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "invalid label"));
    ck_assert_uint_eq(count(h, "rule:x"), 1);
    mtd_head_close(h);
}
END_TEST

static int meta_cb(const char *family, int type, const char *help, const char *unit, void *arg)
{
    char *out = arg;
    snprintf(out + strlen(out), 256 - strlen(out), "%s/%s/%s/%s;", family,
             mtd_metric_type_name(type), help, unit);
    return 0;
}

/* ---- WAL ---- */

START_TEST(test_wal_replay)
{
    mkwaldir();
    struct mtd_head_opts o = {.wal_dir = waldir};
    struct obs_err err = {0};
    struct mtd_head *h = mtd_head_open(&o, &err);
    ck_assert_msg(h != NULL, "%s", err.msg);
    for (int i = 0; i < 50; i++) {
        ck_assert_int_eq(add1(h, "anonymous", "up", "a", "i", 1000 * i, i * 0.5), 0);
        ck_assert_int_eq(add1(h, "t2", "cpu", "b", NULL, 1000 * i, -i), 0);
    }
    struct mtd_appender *a = mtd_head_appender(h, "anonymous");
    ck_assert_int_eq(mtd_appender_add_metadata(a, "up", 2, "Up or not.", ""), 0);
    ck_assert_int_eq(mtd_appender_commit(a, &err), 0);
    mtd_head_close(h);

    h = mtd_head_open(&o, &err);
    ck_assert_msg(h != NULL, "%s", err.msg);
    ck_assert_uint_eq(mtd_head_num_series(h), 2);
    ck_assert_uint_eq(mtd_head_num_samples(h), 100);
    struct mtd_series_set *s = sel(h, "t2", "cpu", INT64_MIN, INT64_MAX);
    ck_assert_uint_eq(s->nseries, 1);
    ck_assert_uint_eq(s->series[0].nsamples, 50);
    ck_assert_double_eq(s->series[0].samples[49].v, -49);
    ck_assert_int_eq(s->series[0].samples[49].t, 49000);
    mtd_series_set_free(s);
    char out[256] = "";
    mtd_head_metadata(h, "anonymous", NULL, 0, meta_cb, out);
    ck_assert_str_eq(out, "up/gauge/Up or not./;");
    /* appends after replay keep the order checks and new refs */
    ck_assert_int_eq(add1(h, "anonymous", "up", "a", "i", 1000, 9), OBS_ERANGE);
    ck_assert_int_eq(add1(h, "anonymous", "new", "a", NULL, 1000, 9), 0);
    mtd_head_close(h);

    h = mtd_head_open(&o, &err);
    ck_assert_uint_eq(mtd_head_num_series(h), 3);
    ck_assert_uint_eq(mtd_head_num_samples(h), 101);
    ck_assert_uint_eq(count(h, "new"), 1);
    ck_assert_uint_eq(count(h, "up"), 1);
    mtd_head_close(h);
    rmwaldir();
}
END_TEST

/* Many series and samples: hash table growth and WAL replay at some size. */
START_TEST(test_many_series)
{
    mkwaldir();
    struct mtd_head_opts o = {.wal_dir = waldir, .wal_no_fsync = 1};
    struct mtd_head *h = mtd_head_open(&o, NULL);
    char job[32];
    struct mtd_appender *a = mtd_head_appender(h, "anonymous");
    for (int i = 0; i < 5000; i++) {
        snprintf(job, sizeof job, "j%05d", i);
        struct obs_label l[] = {{"__name__", "m"}, {"job", job}};
        for (int k = 0; k < 3; k++)
            ck_assert_int_eq(mtd_appender_add(a, l, 2, k * 15000, k, NULL), 0);
    }
    ck_assert_int_eq(mtd_appender_commit(a, NULL), 0);
    mtd_head_close(h);
    h = mtd_head_open(&o, NULL);
    ck_assert_uint_eq(mtd_head_num_series(h), 5000);
    ck_assert_uint_eq(mtd_head_num_samples(h), 15000);
    ck_assert_uint_eq(count(h, "m{job=~\"j0001.\"}"), 10);
    ck_assert_uint_eq(count(h, "m{job=\"j04999\"}"), 1);
    /* 5000 series: decoded by two threads (SELECT_PARALLEL_MIN); every series once, in
     * label order, with its own samples in [mint, maxt], and with every series but those
     * whose only samples fall outside the range. */
    struct mtd_series_set *all = sel(h, "anonymous", "m", 15000, 30000);
    ck_assert_uint_eq(all->nseries, 5000);
    ck_assert_uint_eq(all->nsamples_total, 10000);
    for (size_t i = 0; i < all->nseries; i++) {
        snprintf(job, sizeof job, "j%05zu", i);
        ck_assert_uint_eq(all->series[i].nlabels, 2);
        ck_assert_str_eq(all->series[i].labels[1].value, job);
        ck_assert_uint_eq(all->series[i].nsamples, 2);
        ck_assert_int_eq(all->series[i].samples[0].t, 15000);
        ck_assert(all->series[i].samples[1].v == 2.0);
    }
    mtd_series_set_free(all);
    all = sel(h, "anonymous", "m", 30001, 40000);
    ck_assert_uint_eq(all->nseries, 0);
    mtd_series_set_free(all);
    mtd_head_close(h);
    rmwaldir();
}
END_TEST

/* Many samples per series: chunk cuts, ranges across chunk borders, replay of chunks. */
START_TEST(test_chunks)
{
    mkwaldir();
    struct mtd_head_opts o = {.wal_dir = waldir, .wal_no_fsync = 1};
    struct mtd_head *h = mtd_head_open(&o, NULL);
    struct obs_label l[] = {{"__name__", "long"}};
    for (int b = 0; b < 10; b++) {
        struct mtd_appender *a = mtd_head_appender(h, "anonymous");
        for (int i = b * 100; i < b * 100 + 100; i++)
            ck_assert_int_eq(mtd_appender_add(a, l, 1, 1000LL * i + (i % 3), i * 0.25, NULL), 0);
        ck_assert_int_eq(mtd_appender_commit(a, NULL), 0);
    }
    for (int pass = 0; pass < 2; pass++) {
        struct mtd_series_set *s = sel(h, "anonymous", "long", INT64_MIN, INT64_MAX);
        ck_assert_uint_eq(s->series[0].nsamples, 1000);
        for (int i = 0; i < 1000; i++) {
            ck_assert_int_eq(s->series[0].samples[i].t, 1000LL * i + (i % 3));
            ck_assert_double_eq(s->series[0].samples[i].v, i * 0.25);
        }
        mtd_series_set_free(s);
        /* [119000, 240999] spans chunk borders: samples 119..240 */
        s = sel(h, "anonymous", "long", 119000, 240999);
        ck_assert_uint_eq(s->series[0].nsamples, 122);
        ck_assert_int_eq(s->series[0].samples[0].t, 119000 + 119 % 3);
        ck_assert_int_eq(s->series[0].samples[121].t, 240000);
        mtd_series_set_free(s);
        /* a gap between samples: overlapping the series but empty -> not returned */
        s = sel(h, "anonymous", "long", 500003, 500900);
        ck_assert_uint_eq(s->nseries, 0);
        mtd_series_set_free(s);
        mtd_head_close(h);
        h = mtd_head_open(&o, NULL);
    }
    mtd_head_close(h);
    rmwaldir();
}
END_TEST

/* Values and timestamps that exercise every XOR encoding branch (equal values, new and
 * reused leading/trailing windows, 64 significant bits, NaN and infinities, every
 * delta-of-delta width up to 64 bits), read back whole and through random windows: what the
 * head's decoder returns must be exactly what was appended. Deterministic (fixed seed). */
START_TEST(test_decode_random)
{
    struct mtd_head *h = mtd_head_open(NULL, NULL);
    enum { NSER = 40, NS = 700 };
    static int64_t ts[NSER][NS];
    static double vs[NSER][NS];
    uint64_t rng = 0x9E3779B97F4A7C15ull;
#define NEXT() (rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17, rng)
    char name[32];
    for (int sidx = 0; sidx < NSER; sidx++) {
        snprintf(name, sizeof name, "r%02d", sidx);
        struct obs_label l[] = {{"__name__", name}};
        int64_t t = (int64_t)(NEXT() % 1000000) - 500000;
        double v = 0;
        struct mtd_appender *a = mtd_head_appender(h, "anonymous");
        for (int i = 0; i < NS; i++) {
            uint64_t r = NEXT();
            switch (r % 8) { /* time step: regular, jittered, small, large, huge */
            case 0: case 1: case 2: t += 15000; break;
            case 3: t += 15000 + (int64_t)(NEXT() % 9) - 4; break;
            case 4: t += 1 + (int64_t)(NEXT() % 100); break;
            case 5: t += (int64_t)(NEXT() % 100000000); break;
            case 6: t += (int64_t)(NEXT() % (1ull << 40)) + 1; break;
            default: t += 30000; break;
            }
            uint64_t bits;
            switch ((r >> 8) % 9) {
            case 0: break;                                   /* unchanged */
            case 1: v += 1; break;                           /* counter */
            case 2: v = (double)(NEXT() % 1000000); break;   /* integer gauge */
            case 3: v = (double)(int64_t)NEXT() / 3.0; break; /* full mantissa */
            case 4: bits = NEXT(); memcpy(&v, &bits, 8);     /* any bit pattern */
                if (isnan(v)) v = 0.5;                       /* (checked apart below) */
                break;
            case 5: v = INFINITY; break;
            case 6: v = -0.0; break;
            case 7: v = v * 1.0000001 + 1e-300; break;
            default: v = -v; break;
            }
            ts[sidx][i] = t;
            vs[sidx][i] = v;
            ck_assert_int_eq(mtd_appender_add(a, l, 1, t, v, NULL), 0);
        }
        ck_assert_int_eq(mtd_appender_commit(a, NULL), 0);
    }
    for (int sidx = 0; sidx < NSER; sidx++) {
        snprintf(name, sizeof name, "r%02d", sidx);
        for (int w = 0; w < 30; w++) {
            int lo = w == 0 ? 0 : (int)(NEXT() % NS);
            int hi = w == 0 ? NS - 1 : lo + (int)(NEXT() % (NS - lo));
            struct mtd_series_set *set = sel(h, "anonymous", name, ts[sidx][lo], ts[sidx][hi]);
            ck_assert_uint_eq(set->nseries, 1);
            ck_assert_uint_eq(set->series[0].nsamples, (size_t)(hi - lo + 1));
            for (int i = lo; i <= hi; i++) {
                ck_assert_int_eq(set->series[0].samples[i - lo].t, ts[sidx][i]);
                ck_assert(memcmp(&set->series[0].samples[i - lo].v, &vs[sidx][i], 8) == 0);
            }
            mtd_series_set_free(set);
        }
    }
#undef NEXT
    mtd_head_close(h);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("mtd_head");
    TCase *tc = tcase_create("append");
    tcase_add_test(tc, test_append_select);
    tcase_add_test(tc, test_order_errors);
    tcase_add_test(tc, test_series_limit);
    tcase_add_test(tc, test_storage_append);
    tcase_add_test(tc, test_decode_random);
    suite_add_tcase(s, tc);
    tc = tcase_create("postings");
    tcase_add_test(tc, test_postings);
    tcase_add_test(tc, test_label_apis);
    suite_add_tcase(s, tc);
    tc = tcase_create("wal");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_wal_replay);
    tcase_add_test(tc, test_many_series);
    tcase_add_test(tc, test_chunks);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    srunner_set_tap(sr, "/dev/stdout");
    srunner_run_all(sr, CK_SILENT);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
