/*
 * test_mtd_head_truncate.c -- metricsd head truncation (mtd_head_truncate): whole chunks
 * older than the point dropped (a straddling chunk kept), out-of-order / histogram samples and
 * exemplars dropped, empty series removed from the series table, postings, label APIs and
 * ref index, appends below the point refused as "out of bounds", and the WAL: the checkpoint
 * after the truncation is smaller, replay (clean, after a crash before the checkpoint, and of
 * the old segments plus the checkpoint) never brings the dropped data back.
 */
#include <check.h>
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/obs_mem.h"
#include "metricsd/head.h"
#include "metricsd/ql/mtd_ql.h"
#include "metricsd/storage.h"

static char waldir[256], copydir[300];

static void mkwaldir(void)
{
    snprintf(waldir, sizeof waldir, "/tmp/test_mtd_head_trunc.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(waldir));
    snprintf(copydir, sizeof copydir, "%s-copy", waldir);
}

static void sh(const char *fmt, const char *a, const char *b)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, fmt, a, b);
    ck_assert_int_eq(system(cmd), 0);
}

static void rmwaldir(void)
{
    sh("rm -rf '%s' '%s'", waldir, copydir);
}

/* The WAL as a kill -9 right now would leave it (records are synced by every commit). */
static void snapshot(void)
{
    sh("rm -rf '%s'", copydir, "");
    sh("cp -r '%s' '%s'", waldir, copydir);
}

static uint64_t dir_bytes(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    uint64_t n = 0;
    char p[600];
    ck_assert_ptr_nonnull(d);
    while ((e = readdir(d)) != NULL) {
        struct stat st;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (e->d_name[0] != '.' && stat(p, &st) == 0)
            n += (uint64_t)st.st_size;
    }
    closedir(d);
    return n;
}

static int add(struct mtd_head *h, const char *name, const char *job, int64_t t, double v,
               int64_t win, char *msg, const char **reason)
{
    struct obs_label l[2] = {{"__name__", name}, {"job", job}};
    struct mtd_tenant_limits lim = {.ooo_window_ms = win, .max_exemplars = 100};
    struct obs_err err = {0};
    struct mtd_appender *a = mtd_head_appender(h, "anonymous");
    ck_assert_ptr_nonnull(a);
    mtd_appender_set_limits(a, &lim);
    int rc = mtd_appender_add(a, l, 2, t, v, &err);
    if (msg)
        snprintf(msg, 256, "%s", err.msg);
    if (reason)
        *reason = mtd_appender_last_reason(a);
    ck_assert_int_eq(mtd_appender_commit(a, NULL), 0);
    return rc;
}

/* Samples every second from s0 to s1 (seconds, inclusive) in one commit. */
static void fill(struct mtd_head *h, const char *name, const char *job, int s0, int s1)
{
    struct obs_label l[2] = {{"__name__", name}, {"job", job}};
    struct mtd_appender *a = mtd_head_appender(h, "anonymous");
    for (int i = s0; i <= s1; i++)
        ck_assert_int_eq(mtd_appender_add(a, l, 2, 1000LL * i, i, NULL), 0);
    ck_assert_int_eq(mtd_appender_commit(a, NULL), 0);
}

static struct mtd_series_set *sel(struct mtd_head *h, const char *selector)
{
    struct obs_matcher *ms = NULL;
    size_t nms = 0;
    struct obs_err err = {0};
    if (selector)
        ck_assert_int_eq(obs_selector_parse(selector, strlen(selector), &ms, &nms, &err), 0);
    struct mtd_select_opts o = {.mint = INT64_MIN, .maxt = INT64_MAX};
    struct mtd_series_set *set = NULL;
    ck_assert_int_eq(mtd_storage_select(mtd_head_storage(h), "anonymous", ms, nms, &o, &set,
                                        &err), 0);
    obs_matchers_free(ms, nms);
    return set;
}

static size_t nsel(struct mtd_head *h, const char *selector)
{
    struct mtd_series_set *s = sel(h, selector);
    size_t n = s->nseries;
    mtd_series_set_free(s);
    return n;
}

/* "," joined label values of name (all time). */
static void values(struct mtd_head *h, const char *name, char *out, size_t cap)
{
    char **v = NULL;
    size_t n = 0;
    out[0] = '\0';
    ck_assert_int_eq(mtd_storage_label_values(mtd_head_storage(h), "anonymous", name, NULL, 0,
                                              INT64_MIN, INT64_MAX, &v, &n, NULL), 0);
    for (size_t i = 0; i < n; i++)
        snprintf(out + strlen(out), cap - strlen(out), "%s%s", i ? "," : "", v[i]);
    mtd_strings_free(v, n);
}

/*
 * up{job=a}: 0..999 s (1000 samples: chunks of 120, the fifth [480 s, 599 s] straddles the
 * point 500 s); up{job=b}: 0..99 s (all older: removed); other{job=c}: 0..999 s.
 */
static void dataset(struct mtd_head *h)
{
    fill(h, "up", "a", 0, 999);
    fill(h, "up", "b", 0, 99);
    fill(h, "other", "c", 0, 999);
}

static void check_truncated(struct mtd_head *h)
{
    char buf[256];
    ck_assert_uint_eq(mtd_head_num_series(h), 2);
    ck_assert_uint_eq(mtd_head_num_samples(h), 2 * 520);
    ck_assert_int_eq(mtd_head_min_valid_time(h, "anonymous"), 500000);
    struct mtd_series_set *s = sel(h, "up");
    ck_assert_uint_eq(s->nseries, 1);
    ck_assert_str_eq(s->series[0].labels[1].value, "a");
    ck_assert_uint_eq(s->series[0].nsamples, 520); /* 480..999: the straddling chunk stays */
    ck_assert_int_eq(s->series[0].samples[0].t, 480000);
    ck_assert_int_eq(s->series[0].samples[519].t, 999000);
    for (size_t i = 0; i < 520; i++)
        ck_assert_double_eq(s->series[0].samples[i].v, 480 + (double)i);
    mtd_series_set_free(s);
    /* postings: job=b is gone everywhere */
    ck_assert_uint_eq(nsel(h, "{job=\"b\"}"), 0);
    ck_assert_uint_eq(nsel(h, "{job=~\".+\"}"), 2);
    ck_assert_uint_eq(nsel(h, "{job!=\"a\",job=~\".+\"}"), 1);
    ck_assert_uint_eq(nsel(h, "other"), 1);
    ck_assert_uint_eq(nsel(h, NULL), 2);
    values(h, "job", buf, sizeof buf);
    ck_assert_str_eq(buf, "a,c");
    values(h, "__name__", buf, sizeof buf);
    ck_assert_str_eq(buf, "other,up");
    int64_t lo, hi;
    ck_assert_int_eq(mtd_head_time_range(h, "anonymous", &lo, &hi), 0);
    ck_assert_int_eq(lo, 480000);
    ck_assert_int_eq(hi, 999000);
    struct mtd_head_stats st;
    ck_assert_int_eq(mtd_head_stats(h, "anonymous", 10, &st), 0);
    ck_assert_uint_eq(st.num_series, 2);
    ck_assert_int_eq(st.min_time, 480000);
    mtd_head_stats_free(&st);
}

START_TEST(test_truncate_memory)
{
    struct mtd_head *h = mtd_head_open(NULL, NULL);
    dataset(h);
    ck_assert_uint_eq(mtd_head_num_series(h), 3);
    ck_assert_uint_eq(mtd_head_num_samples(h), 2100);
    ck_assert_int_eq(mtd_head_min_valid_time(h, "anonymous"), INT64_MIN);
    struct obs_err err = {0};
    ck_assert_int_eq(mtd_head_truncate(h, "anonymous", 500000, &err), 0);
    check_truncated(h);
    /* again, or lower: nothing changes */
    ck_assert_int_eq(mtd_head_truncate(h, "anonymous", 500000, &err), 0);
    ck_assert_int_eq(mtd_head_truncate_nockpt(h, "anonymous", 100, &err), 0);
    check_truncated(h);

    /* appends below the point: "out of bounds", also for a new series (not created) */
    char msg[256];
    const char *reason = NULL;
    ck_assert_int_eq(add(h, "up", "a", 499999, 1, 0, msg, &reason), OBS_ERANGE);
    ck_assert_msg(strncmp(msg, "out of bounds", 13) == 0, "%s", msg);
    ck_assert_str_eq(reason, "sample_out_of_bounds");
    ck_assert_int_eq(add(h, "up", "b", 1000, 1, 0, msg, &reason), OBS_ERANGE);
    ck_assert_str_eq(reason, "sample_out_of_bounds");
    /* even with a wide out-of-order window (the range is in an immutable block) */
    ck_assert_int_eq(add(h, "up", "a", 400000, 1, 3600000, msg, NULL), OBS_ERANGE);
    ck_assert_msg(strstr(msg, "out of bounds") != NULL, "%s", msg);
    ck_assert_uint_eq(mtd_head_num_series(h), 2);
    /* at or after it: fine; in order, out of order within the window, new series */
    ck_assert_int_eq(add(h, "up", "a", 1000000, 1, 0, NULL, NULL), 0);
    ck_assert_int_eq(add(h, "up", "a", 500000, 1, 0, NULL, NULL), OBS_ERANGE); /* order */
    ck_assert_int_eq(add(h, "up", "a", 700500, 7, 3600000, NULL, NULL), 0);     /* OOO */
    ck_assert_int_eq(add(h, "up", "b", 500000, 5, 0, NULL, NULL), 0);
    ck_assert_uint_eq(mtd_head_num_series(h), 3);
    ck_assert_uint_eq(nsel(h, "{job=\"b\"}"), 1);
    ck_assert_uint_eq(nsel(h, "up"), 2);
    struct mtd_series_set *s = sel(h, "{job=\"b\"}");
    ck_assert_uint_eq(s->series[0].nsamples, 1);
    ck_assert_int_eq(s->series[0].samples[0].t, 500000);
    mtd_series_set_free(s);

    /* a second truncation drops the out-of-order sample and the straddling chunk */
    ck_assert_int_eq(mtd_head_truncate(h, "anonymous", 800000, &err), 0);
    s = sel(h, "up{job=\"a\"}");
    ck_assert_uint_eq(s->nseries, 1);
    ck_assert_int_eq(s->series[0].samples[0].t, 720000); /* chunk [720 s, 839 s] straddles */
    ck_assert_int_eq(s->series[0].samples[s->series[0].nsamples - 1].t, 1000000);
    for (size_t i = 0; i < s->series[0].nsamples; i++)
        ck_assert_int_ne(s->series[0].samples[i].t, 700500);
    mtd_series_set_free(s);
    ck_assert_uint_eq(nsel(h, "{job=\"b\"}"), 0);
    ck_assert_uint_eq(mtd_head_num_series(h), 2);

    /* everything: the tenant is empty but keeps its point */
    ck_assert_int_eq(mtd_head_truncate(h, "anonymous", 2000000, &err), 0);
    ck_assert_uint_eq(mtd_head_num_series(h), 0);
    ck_assert_uint_eq(mtd_head_num_samples(h), 0);
    ck_assert_uint_eq(nsel(h, NULL), 0);
    int64_t lo, hi;
    ck_assert_int_eq(mtd_head_time_range(h, "anonymous", &lo, &hi), OBS_ENOENT);
    ck_assert_int_eq(add(h, "up", "a", 1999999, 1, 0, NULL, NULL), OBS_ERANGE);
    ck_assert_int_eq(add(h, "up", "a", 2000000, 1, 0, NULL, NULL), 0);
    ck_assert_uint_eq(nsel(h, "up"), 1);
    /* other tenants are not affected */
    mtd_head_close(h);
}
END_TEST

/* An open appender blocks truncation; other tenants keep their data. */
START_TEST(test_truncate_tenants)
{
    struct mtd_head *h = mtd_head_open(NULL, NULL);
    fill(h, "up", "a", 0, 299);
    struct obs_label l[2] = {{"__name__", "up"}, {"job", "x"}};
    struct mtd_appender *a = mtd_head_appender(h, "other");
    for (int i = 0; i < 300; i++)
        ck_assert_int_eq(mtd_appender_add(a, l, 2, 1000LL * i, i, NULL), 0);
    struct obs_err err = {0};
    ck_assert_int_eq(mtd_head_truncate(h, "anonymous", 300000, &err), OBS_EINVAL);
    ck_assert_int_eq(mtd_appender_commit(a, NULL), 0);
    ck_assert_int_eq(mtd_head_truncate(h, "anonymous", 300000, &err), 0);
    ck_assert_uint_eq(mtd_head_num_series(h), 1);
    ck_assert_uint_eq(mtd_head_num_samples(h), 300);
    ck_assert_int_eq(mtd_head_min_valid_time(h, "other"), INT64_MIN);
    a = mtd_head_appender(h, "other");
    ck_assert_int_eq(mtd_appender_add(a, l, 2, 1000, 1, NULL), OBS_ERANGE); /* order */
    ck_assert_int_eq(mtd_appender_add(a, l, 2, 299000, 299, NULL), 0);    /* duplicate */
    ck_assert_int_eq(mtd_appender_commit(a, NULL), 0);
    mtd_head_close(h);
}
END_TEST

static void mkhist(struct mtd_ql_hist *hh, int32_t *idx, double *cnt, double c)
{
    memset(hh, 0, sizeof *hh);
    idx[0] = 0;
    idx[1] = 2;
    cnt[0] = c;
    cnt[1] = 2 * c;
    hh->count = 3 * c;
    hh->sum = 10 * c;
    hh->pidx = idx;
    hh->pcnt = cnt;
    hh->np = 2;
}

/* Histograms, out-of-order samples and exemplars below the point go too. */
START_TEST(test_truncate_hist_ooo_exemplars)
{
    struct mtd_head *h = mtd_head_open(NULL, NULL);
    struct obs_label lh[2] = {{"__name__", "lat"}, {"job", "h"}};
    struct obs_label lf[2] = {{"__name__", "up"}, {"job", "a"}};
    struct obs_label el[1] = {{"trace_id", "abc"}};
    struct mtd_tenant_limits lim = {.ooo_window_ms = 3600000, .max_exemplars = 8};
    struct mtd_ql_hist hh;
    int32_t idx[2];
    double cnt[2];
    struct mtd_appender *a = mtd_head_appender(h, "anonymous");
    mtd_appender_set_limits(a, &lim);
    for (int i = 0; i < 10; i++) {
        mkhist(&hh, idx, cnt, i + 1);
        ck_assert_int_eq(mtd_appender_add_hist(a, lh, 2, 1000LL * i, &hh, NULL), 0);
        ck_assert_int_eq(mtd_appender_add(a, lf, 2, 2000LL * i, i, NULL), 0);
    }
    /* 12 exemplars into a ring of 8: it wraps */
    for (int i = 0; i < 12; i++)
        ck_assert_int_eq(mtd_appender_add_exemplar(a, lf, 2, el, 1, 1500LL * i, i, NULL), 0);
    ck_assert_int_eq(mtd_appender_commit(a, NULL), 0);
    a = mtd_head_appender(h, "anonymous");
    mtd_appender_set_limits(a, &lim);
    ck_assert_int_eq(mtd_appender_add(a, lf, 2, 3500, 35, NULL), 0); /* out of order */
    ck_assert_int_eq(mtd_appender_add(a, lf, 2, 12500, 125, NULL), 0);
    ck_assert_int_eq(mtd_appender_commit(a, NULL), 0);
    ck_assert_uint_eq(mtd_head_num_samples(h), 12);
    ck_assert_uint_eq(mtd_head_num_hist_samples(h), 10);
    ck_assert_uint_eq(mtd_head_num_exemplars(h), 8);

    ck_assert_int_eq(mtd_head_truncate(h, "anonymous", 12000, NULL), 0);
    /* floats: one open chunk (newest 18 s >= 12 s) stays whole; of the out-of-order samples
     * 3.5 s goes, 12.5 s stays */
    struct mtd_series_set *s = sel(h, "up");
    ck_assert_uint_eq(s->series[0].nsamples, 11);
    ck_assert_int_eq(s->series[0].samples[0].t, 0);
    ck_assert_int_eq(s->series[0].samples[1].t, 2000);
    ck_assert_int_eq(s->series[0].samples[7].t, 12500);
    mtd_series_set_free(s);
    ck_assert_uint_eq(mtd_head_num_samples(h), 11);
    /* histograms 0..9 s: all older -> series removed */
    ck_assert_uint_eq(mtd_head_num_hist_samples(h), 0);
    ck_assert_uint_eq(mtd_head_num_series(h), 1);
    ck_assert_uint_eq(nsel(h, "lat"), 0);
    /* exemplars at 12, 13.5, 15, 16.5 s stay (in order) */
    ck_assert_uint_eq(mtd_head_num_exemplars(h), 4);
    struct mtd_exemplar_set *es = NULL;
    ck_assert_int_eq(mtd_storage_exemplars(mtd_head_storage(h), "anonymous", NULL, 0,
                                           INT64_MIN, INT64_MAX, &es, NULL), 0);
    ck_assert_uint_eq(es->nseries, 1);
    ck_assert_uint_eq(es->series[0].n, 4);
    for (size_t i = 0; i < 4; i++)
        ck_assert_int_eq(es->series[0].ex[i].t, 12000 + 1500 * (int64_t)i);
    mtd_exemplar_set_free(es);
    /* the ring keeps working after the compaction */
    a = mtd_head_appender(h, "anonymous");
    mtd_appender_set_limits(a, &lim);
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(mtd_appender_add_exemplar(a, lf, 2, el, 1, 20000 + i, i, NULL), 0);
    ck_assert_int_eq(mtd_appender_add_exemplar(a, lf, 2, el, 1, 11000, 1, NULL), OBS_ERANGE);
    mkhist(&hh, idx, cnt, 1);
    ck_assert_int_eq(mtd_appender_add_hist(a, lh, 2, 11999, &hh, NULL), OBS_ERANGE);
    ck_assert_int_eq(mtd_appender_add_hist(a, lh, 2, 12000, &hh, NULL), 0);
    ck_assert_int_eq(mtd_appender_commit(a, NULL), 0);
    ck_assert_uint_eq(mtd_head_num_exemplars(h), 8);
    ck_assert_uint_eq(mtd_head_num_series(h), 2);
    mtd_head_close(h);
}
END_TEST

/* WAL: the checkpoint holds only what is left; replay keeps the point and the refusals. */
START_TEST(test_truncate_wal)
{
    mkwaldir();
    struct mtd_head_opts o = {.wal_dir = waldir, .wal_no_fsync = 1};
    struct obs_err err = {0};
    struct mtd_head *h = mtd_head_open(&o, &err);
    ck_assert_msg(h != NULL, "%s", err.msg);
    dataset(h);
    ck_assert_int_eq(mtd_head_checkpoint(h, &err), 0);
    uint64_t full = dir_bytes(waldir);
    snapshot(); /* the segments before the truncation */
    ck_assert_int_eq(mtd_head_truncate(h, "anonymous", 500000, &err), 0);
    ck_assert_uint_eq(mtd_head_checkpoints(h), 2);
    uint64_t after = dir_bytes(waldir);
    ck_assert_msg(after < full * 7 / 10, "WAL %llu -> %llu bytes", (unsigned long long)full,
                  (unsigned long long)after);
    check_truncated(h);
    mtd_head_close(h);

    /* clean restart */
    h = mtd_head_open(&o, &err);
    ck_assert_msg(h != NULL, "%s", err.msg);
    check_truncated(h);
    ck_assert_int_eq(add(h, "up", "b", 1000, 1, 0, NULL, NULL), OBS_ERANGE);
    mtd_head_close(h);

    /* old segments followed by the checkpoint (a crash before the old ones were deleted) */
    sh("cp '%s'/* '%s'/", waldir, copydir);
    struct mtd_head_opts oc = {.wal_dir = copydir, .wal_no_fsync = 1};
    h = mtd_head_open(&oc, &err);
    ck_assert_msg(h != NULL, "%s", err.msg);
    check_truncated(h);
    mtd_head_close(h);
    rmwaldir();
}
END_TEST

/* kill -9 after the truncation point was logged but before any checkpoint: replay drops the
 * same data, and samples logged after the point are kept. */
START_TEST(test_truncate_crash_before_checkpoint)
{
    mkwaldir();
    struct mtd_head_opts o = {.wal_dir = waldir, .wal_no_fsync = 1};
    struct obs_err err = {0};
    struct mtd_head *h = mtd_head_open(&o, &err);
    dataset(h);
    ck_assert_int_eq(mtd_head_truncate_nockpt(h, "anonymous", 500000, &err), 1);
    ck_assert_int_eq(add(h, "up", "b", 600000, 6, 0, NULL, NULL), 0); /* new series, new ref */
    ck_assert_int_eq(add(h, "up", "a", 1000000, 6, 0, NULL, NULL), 0);
    ck_assert_uint_eq(mtd_head_checkpoints(h), 0);
    snapshot();
    mtd_head_close(h);
    struct mtd_head_opts oc = {.wal_dir = copydir, .wal_no_fsync = 1};
    for (int pass = 0; pass < 2; pass++) { /* the copy, then after its own close checkpoint */
        h = mtd_head_open(&oc, &err);
        ck_assert_msg(h != NULL, "%s", err.msg);
        ck_assert_uint_eq(mtd_head_num_series(h), 3);
        ck_assert_uint_eq(mtd_head_num_samples(h), 2 * 520 + 2);
        ck_assert_int_eq(mtd_head_min_valid_time(h, "anonymous"), 500000);
        struct mtd_series_set *s = sel(h, "{job=\"b\"}");
        ck_assert_uint_eq(s->nseries, 1);
        ck_assert_uint_eq(s->series[0].nsamples, 1);
        ck_assert_int_eq(s->series[0].samples[0].t, 600000);
        mtd_series_set_free(s);
        ck_assert_int_eq(add(h, "other", "c", 499000, 1, 0, NULL, NULL), OBS_ERANGE);
        mtd_head_close(h);
    }
    rmwaldir();
}
END_TEST

/* Many series, most removed: ids, postings and the hash table stay consistent. */
START_TEST(test_truncate_many_series)
{
    struct mtd_head *h = mtd_head_open(NULL, NULL);
    char job[32];
    struct mtd_appender *a = mtd_head_appender(h, "anonymous");
    for (int i = 0; i < 3000; i++) {
        snprintf(job, sizeof job, "j%04d", i);
        struct obs_label l[] = {{"__name__", i % 3 ? "old" : "keep"}, {"job", job}};
        int64_t t0 = i % 3 ? 0 : 100000;
        ck_assert_int_eq(mtd_appender_add(a, l, 2, t0, i, NULL), 0);
        ck_assert_int_eq(mtd_appender_add(a, l, 2, t0 + 1000, i, NULL), 0);
    }
    ck_assert_int_eq(mtd_appender_commit(a, NULL), 0);
    ck_assert_int_eq(mtd_head_truncate(h, "anonymous", 50000, NULL), 0);
    ck_assert_uint_eq(mtd_head_num_series(h), 1000);
    ck_assert_uint_eq(nsel(h, "old"), 0);
    ck_assert_uint_eq(nsel(h, "keep"), 1000);
    ck_assert_uint_eq(nsel(h, "{job=~\"j00.*\"}"), 34);
    ck_assert_uint_eq(nsel(h, "keep{job=\"j2997\"}"), 1);
    ck_assert_uint_eq(nsel(h, "{job=\"j2998\"}"), 0);
    /* lookups by labels find the survivors (appends extend them, no new series) */
    a = mtd_head_appender(h, "anonymous");
    for (int i = 0; i < 3000; i += 3) {
        snprintf(job, sizeof job, "j%04d", i);
        struct obs_label l[] = {{"__name__", "keep"}, {"job", job}};
        ck_assert_int_eq(mtd_appender_add(a, l, 2, 101000, i, NULL), 0); /* duplicate */
        ck_assert_int_eq(mtd_appender_add(a, l, 2, 200000, i, NULL), 0);
    }
    ck_assert_int_eq(mtd_appender_commit(a, NULL), 0);
    ck_assert_uint_eq(mtd_head_num_series(h), 1000);
    ck_assert_uint_eq(mtd_head_num_samples(h), 3000);
    struct mtd_series_set *s = sel(h, "keep{job=\"j0999\"}");
    ck_assert_uint_eq(s->nseries, 1);
    ck_assert_uint_eq(s->series[0].nsamples, 3);
    ck_assert_double_eq(s->series[0].samples[2].v, 999);
    mtd_series_set_free(s);
    mtd_head_close(h);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("mtd_head_truncate");
    TCase *tc = tcase_create("truncate");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_truncate_memory);
    tcase_add_test(tc, test_truncate_tenants);
    tcase_add_test(tc, test_truncate_hist_ooo_exemplars);
    tcase_add_test(tc, test_truncate_wal);
    tcase_add_test(tc, test_truncate_crash_before_checkpoint);
    tcase_add_test(tc, test_truncate_many_series);
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
