/*
 * test_mtd_head_ooo.c -- metricsd head: the out-of-order window ("out of order sample",
 * "too old sample", duplicates among out-of-order samples), stale markers, native histograms
 * (hist source for PromQL, stale markers, replay), exemplars (circular buffer, order rules,
 * query, replay), WAL checkpoints (segments deleted, replay from a checkpoint, replay of a
 * checkpoint on top of the segments it summarises), and replay after a torn tail.
 */
#include <check.h>
#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/obs_mem.h"
#include "metricsd/head.h"
#include "metricsd/ql/mtd_ql.h"
#include "metricsd/storage.h"

static char waldir[256];

static void mkwaldir(void)
{
    snprintf(waldir, sizeof waldir, "/tmp/test_mtd_head_ooo.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(waldir));
}

static void rmwaldir(void)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", waldir);
    ck_assert_int_eq(system(cmd), 0);
}

static int nsegments(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    ck_assert_ptr_nonnull(d);
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] >= '0' && e->d_name[0] <= '9')
            n++;
    closedir(d);
    return n;
}

static const struct obs_label L_UP[] = {{"__name__", "up"}, {"job", "a"}};

/* Append one float sample to `up{job="a"}` with an OOO window; returns the add result and
 * copies the error message. */
static int add_w(struct mtd_head *h, int64_t win, int64_t t, double v, char *msg)
{
    struct mtd_appender *a = mtd_head_appender(h, "anonymous");
    struct mtd_tenant_limits l = {.ooo_window_ms = win, .max_exemplars = 100};
    struct obs_err err = {0};
    mtd_appender_set_limits(a, &l);
    int rc = mtd_appender_add(a, L_UP, 2, t, v, &err);
    if (msg)
        snprintf(msg, 256, "%s", err.msg);
    ck_assert_int_eq(mtd_appender_commit(a, NULL), 0);
    return rc;
}

static struct mtd_series_set *sel_all(struct mtd_head *h, const char *name)
{
    struct obs_matcher *ms = NULL;
    size_t nms = 0;
    struct obs_err err = {0};
    ck_assert_int_eq(obs_selector_parse(name, strlen(name), &ms, &nms, &err), 0);
    struct mtd_select_opts o = {.mint = INT64_MIN, .maxt = INT64_MAX};
    struct mtd_series_set *set = NULL;
    ck_assert_int_eq(mtd_storage_select(mtd_head_storage(h), "anonymous", ms, nms, &o, &set,
                                        &err), 0);
    obs_matchers_free(ms, nms);
    return set;
}

START_TEST(test_ooo_window)
{
    mkwaldir();
    struct mtd_head_opts o = {.wal_dir = waldir, .wal_no_fsync = 1};
    struct mtd_head *h = mtd_head_open(&o, NULL);
    char msg[256];
    ck_assert_ptr_nonnull(h);
    ck_assert_int_eq(add_w(h, 0, 100000, 1, msg), 0);
    /* no window: Prometheus' "out of order sample" */
    ck_assert_int_eq(add_w(h, 0, 90000, 2, msg), OBS_ERANGE);
    ck_assert_ptr_nonnull(strstr(msg, "out of order sample"));
    /* window 30s: accepted back to 70000 */
    ck_assert_int_eq(add_w(h, 30000, 90000, 2, msg), 0);
    ck_assert_int_eq(add_w(h, 30000, 70000, 3, msg), 0);
    ck_assert_int_eq(add_w(h, 30000, 69999, 4, msg), OBS_ERANGE);
    ck_assert_ptr_nonnull(strstr(msg, "too old sample"));
    /* duplicates among out-of-order samples: same value fine, other value refused */
    ck_assert_int_eq(add_w(h, 30000, 90000, 2, msg), 0);
    ck_assert_int_eq(add_w(h, 30000, 90000, 5, msg), OBS_EEXIST);
    ck_assert_ptr_nonnull(strstr(msg, "duplicate sample for timestamp"));
    ck_assert_int_eq(add_w(h, 30000, 100000, 7, msg), OBS_EEXIST);
    /* in-order chunk samples are found too */
    ck_assert_int_eq(add_w(h, 30000, 110000, 8, msg), 0);
    ck_assert_int_eq(add_w(h, 30000, 100000, 9, msg), OBS_EEXIST);
    ck_assert_int_eq(add_w(h, 30000, 100000, 1, msg), 0);
    ck_assert_uint_eq(mtd_head_num_samples(h), 4);
    ck_assert_uint_eq(mtd_head_num_ooo_samples(h), 2);

    for (int pass = 0; pass < 3; pass++) {
        struct mtd_series_set *s = sel_all(h, "up");
        ck_assert_uint_eq(s->nseries, 1);
        ck_assert_uint_eq(s->series[0].nsamples, 4);
        int64_t ts[] = {70000, 90000, 100000, 110000};
        double vs[] = {3, 2, 1, 8};
        for (int i = 0; i < 4; i++) {
            ck_assert_int_eq(s->series[0].samples[i].t, ts[i]);
            ck_assert_double_eq(s->series[0].samples[i].v, vs[i]);
        }
        mtd_series_set_free(s);
        /* range that only has the out-of-order samples */
        struct mtd_select_opts so = {.mint = 80000, .maxt = 95000};
        struct mtd_series_set *set = NULL;
        ck_assert_int_eq(mtd_storage_select(mtd_head_storage(h), "anonymous", NULL, 0, &so,
                                            &set, NULL), 0);
        ck_assert_uint_eq(set->nseries, 1);
        ck_assert_uint_eq(set->series[0].nsamples, 1);
        ck_assert_int_eq(set->series[0].samples[0].t, 90000);
        mtd_series_set_free(set);
        /* pass 1: replay of the plain WAL; pass 2: replay of a checkpoint */
        if (pass == 1) {
            ck_assert_int_eq(mtd_head_checkpoint(h, NULL), 0);
            ck_assert_int_eq(nsegments(waldir), 1);
        }
        mtd_head_close(h);
        h = mtd_head_open(&o, NULL);
        ck_assert_ptr_nonnull(h);
    }
    mtd_head_close(h);
    rmwaldir();
}
END_TEST

/* Many out-of-order samples in scrambled order: folded into chunks every 256, all there,
 * sorted, after replay too. */
START_TEST(test_ooo_many)
{
    mkwaldir();
    struct mtd_head_opts o = {.wal_dir = waldir, .wal_no_fsync = 1};
    struct mtd_head *h = mtd_head_open(&o, NULL);
    ck_assert_int_eq(add_w(h, 0, 10000000, -1, NULL), 0);
    for (int i = 0; i < 2000; i++) {
        int k = (i * 7919) % 2000; /* a permutation of 0..1999 */
        ck_assert_int_eq(add_w(h, 20000000, 10000 + k * 1000, k, NULL), 0);
    }
    ck_assert_int_eq(add_w(h, 20000000, 10000 + 5 * 1000, 6, NULL), OBS_EEXIST);
    for (int pass = 0; pass < 2; pass++) {
        struct mtd_series_set *s = sel_all(h, "up");
        ck_assert_uint_eq(s->series[0].nsamples, 2001);
        for (int i = 0; i < 2000; i++) {
            ck_assert_int_eq(s->series[0].samples[i].t, 10000 + i * 1000);
            ck_assert_double_eq(s->series[0].samples[i].v, i);
        }
        ck_assert_int_eq(s->series[0].samples[2000].t, 10000000);
        mtd_series_set_free(s);
        mtd_head_close(h);
        h = mtd_head_open(&o, NULL);
    }
    mtd_head_close(h);
    rmwaldir();
}
END_TEST

START_TEST(test_stale_markers)
{
    struct mtd_head *h = mtd_head_open(NULL, NULL);
    union { uint64_t u; double d; } sn = {MTD_STALE_NAN_BITS};
    ck_assert_int_eq(add_w(h, 0, 1000, 1, NULL), 0);
    ck_assert_int_eq(add_w(h, 0, 2000, sn.d, NULL), 0);
    ck_assert_int_eq(add_w(h, 0, 2000, sn.d, NULL), 0); /* exact duplicate (same bits) */
    ck_assert_int_eq(add_w(h, 0, 2000, NAN, NULL), OBS_EEXIST); /* another NaN */
    ck_assert_int_eq(add_w(h, 0, 3000, 5, NULL), 0);
    struct mtd_series_set *s = sel_all(h, "up");
    ck_assert_uint_eq(s->series[0].nsamples, 3);
    ck_assert(mtd_value_is_stale(s->series[0].samples[1].v));
    ck_assert(!mtd_value_is_stale(s->series[0].samples[2].v));
    mtd_series_set_free(s);
    mtd_head_close(h);
}
END_TEST

/* A small exponential histogram: count c in buckets 1 and 2 of schema 0. */
static void mkhist(struct mtd_ql_hist *hh, int32_t *idx, double *cnt, double c)
{
    memset(hh, 0, sizeof *hh);
    idx[0] = 1;
    idx[1] = 2;
    cnt[0] = c;
    cnt[1] = 2 * c;
    hh->schema = 0;
    hh->zero_threshold = 1e-128;
    hh->zero_count = 1;
    hh->count = 3 * c + 1;
    hh->sum = 10 * c;
    hh->pidx = idx;
    hh->pcnt = cnt;
    hh->np = 2;
}

static const struct obs_label L_H[] = {{"__name__", "lat"}, {"job", "h"}};

static int add_h(struct mtd_head *h, int64_t t, const struct mtd_ql_hist *hh, int64_t win)
{
    struct mtd_appender *a = mtd_head_appender(h, "anonymous");
    struct mtd_tenant_limits l = {.ooo_window_ms = win, .max_exemplars = 100};
    mtd_appender_set_limits(a, &l);
    int rc = mtd_appender_add_hist(a, L_H, 2, t, hh, NULL);
    ck_assert_int_eq(mtd_appender_commit(a, NULL), 0);
    return rc;
}

static void check_hists(struct mtd_head *h, size_t want)
{
    struct mtd_hist_source *src = mtd_hist_source_new(mtd_head_storage(h));
    const struct mtd_ql_hseries *hs = NULL;
    size_t n = 0;
    struct obs_matcher *ms = NULL;
    size_t nms = 0;
    ck_assert_int_eq(obs_selector_parse("lat", 3, &ms, &nms, NULL), 0);
    ck_assert_int_eq(mtd_hist_source_select(src, "anonymous", ms, nms, INT64_MIN, INT64_MAX,
                                            &hs, &n), 0);
    ck_assert_uint_eq(n, 1);
    ck_assert_uint_eq(hs[0].n, want);
    ck_assert_str_eq(hs[0].labels[0].value, "lat");
    for (size_t i = 0; i < hs[0].n; i++) {
        if (i == 3 || i == 5) { /* stale markers */
            ck_assert_ptr_null(hs[0].h[i]);
            continue;
        }
        const struct mtd_ql_hist *x = hs[0].h[i];
        double c = (double)(i + 1);
        ck_assert_int_eq(hs[0].t[i], (int64_t)(i + 1) * 1000);
        ck_assert_int_eq(x->schema, 0);
        ck_assert_uint_eq(x->np, 2);
        ck_assert_int_eq(x->pidx[1], 2);
        ck_assert_double_eq(x->pcnt[1], 2 * c);
        ck_assert_double_eq(x->count, 3 * c + 1);
        ck_assert_double_eq(x->sum, 10 * c);
        ck_assert_double_eq(x->zero_threshold, 1e-128);
    }
    /* a range with none */
    ck_assert_int_eq(mtd_hist_source_select(src, "anonymous", ms, nms, 50000, 60000, &hs, &n),
                     0);
    ck_assert_uint_eq(n, 0);
    obs_matchers_free(ms, nms);
    mtd_hist_source_free(src);
    /* float select does not return histogram-only series */
    struct mtd_series_set *s = sel_all(h, "lat");
    ck_assert_uint_eq(s->nseries, 0);
    mtd_series_set_free(s);
}

START_TEST(test_histograms)
{
    mkwaldir();
    struct mtd_head_opts o = {.wal_dir = waldir, .wal_no_fsync = 1};
    struct mtd_head *h = mtd_head_open(&o, NULL);
    struct mtd_ql_hist hh;
    int32_t idx[2];
    double cnt[2];
    mkhist(&hh, idx, cnt, 1);
    ck_assert_int_eq(add_h(h, 1000, &hh, 0), 0);
    mkhist(&hh, idx, cnt, 3);
    ck_assert_int_eq(add_h(h, 3000, &hh, 0), 0);
    ck_assert_int_eq(add_h(h, 3000, &hh, 0), 0); /* exact duplicate */
    mkhist(&hh, idx, cnt, 9);
    ck_assert_int_eq(add_h(h, 3000, &hh, 0), OBS_EEXIST);
    mkhist(&hh, idx, cnt, 2);
    ck_assert_int_eq(add_h(h, 2000, &hh, 0), OBS_ERANGE);      /* no window */
    ck_assert_int_eq(add_h(h, 2000, &hh, 60000), 0);           /* out of order, in window */
    ck_assert_int_eq(add_h(h, 4000, NULL, 0), 0);              /* stale marker */
    /* a float stale marker after histograms ends the histogram series too */
    union { uint64_t u; double d; } sn = {MTD_STALE_NAN_BITS};
    mkhist(&hh, idx, cnt, 5);
    ck_assert_int_eq(add_h(h, 5000, &hh, 0), 0);
    struct mtd_appender *a = mtd_head_appender(h, "anonymous");
    ck_assert_int_eq(mtd_appender_add(a, L_H, 2, 6000, sn.d, NULL), 0);
    ck_assert_int_eq(mtd_appender_commit(a, NULL), 0);
    /* bad schema */
    mkhist(&hh, idx, cnt, 1);
    hh.schema = 9;
    a = mtd_head_appender(h, "anonymous");
    ck_assert_int_eq(mtd_appender_add_hist(a, L_H, 2, 7000, &hh, NULL), OBS_EINVAL);
    mtd_appender_rollback(a);
    ck_assert_uint_eq(mtd_head_num_hist_samples(h), 6);
    for (int pass = 0; pass < 3; pass++) {
        struct mtd_hist_source *src = mtd_hist_source_new(mtd_head_storage(h));
        const struct mtd_ql_hseries *hs = NULL;
        size_t n = 0;
        ck_assert_int_eq(mtd_hist_source_select(src, "anonymous", NULL, 0, INT64_MIN,
                                                INT64_MAX, &hs, &n), 0);
        ck_assert_uint_eq(n, 1);
        ck_assert_uint_eq(hs[0].n, 6);
        ck_assert_ptr_null(hs[0].h[5]); /* 6000: the float stale marker, as a histogram */
        ck_assert_int_eq(hs[0].t[5], 6000);
        mtd_hist_source_free(src);
        check_hists(h, 6);
        if (pass == 1)
            ck_assert_int_eq(mtd_head_checkpoint(h, NULL), 0);
        mtd_head_close(h);
        h = mtd_head_open(&o, NULL);
        ck_assert_ptr_nonnull(h);
        ck_assert_uint_eq(mtd_head_num_hist_samples(h), 6);
    }
    mtd_head_close(h);
    rmwaldir();
}
END_TEST

static int add_ex(struct mtd_head *h, size_t cap, int64_t t, double v, const char *trace)
{
    struct mtd_appender *a = mtd_head_appender(h, "anonymous");
    struct mtd_tenant_limits l = {.max_exemplars = cap};
    struct obs_label el[] = {{"trace_id", trace}};
    mtd_appender_set_limits(a, &l);
    ck_assert_int_eq(mtd_appender_add(a, L_UP, 2, t, v, NULL), 0);
    int rc = mtd_appender_add_exemplar(a, L_UP, 2, el, 1, t, v, NULL);
    ck_assert_int_eq(mtd_appender_commit(a, NULL), 0);
    return rc;
}

static struct mtd_exemplar_set *exq(struct mtd_head *h, int64_t mint, int64_t maxt)
{
    struct mtd_exemplar_set *set = NULL;
    struct obs_matcher *ms = NULL;
    size_t nms = 0;
    ck_assert_int_eq(obs_selector_parse("up", 2, &ms, &nms, NULL), 0);
    ck_assert_int_eq(mtd_storage_exemplars(mtd_head_storage(h), "anonymous", ms, nms, mint,
                                           maxt, &set, NULL), 0);
    obs_matchers_free(ms, nms);
    return set;
}

START_TEST(test_exemplars)
{
    mkwaldir();
    struct mtd_head_opts o = {.wal_dir = waldir, .wal_no_fsync = 1};
    struct mtd_head *h = mtd_head_open(&o, NULL);
    char tr[32];
    for (int i = 1; i <= 7; i++) {
        snprintf(tr, sizeof tr, "t%d", i);
        ck_assert_int_eq(add_ex(h, 5, i * 1000, i, tr), 0);
    }
    /* out of order and duplicate exemplars are ignored, never errors for the request */
    struct mtd_appender *a = mtd_head_appender(h, "anonymous");
    struct mtd_tenant_limits l = {.max_exemplars = 5};
    struct obs_label el[] = {{"trace_id", "t7"}};
    struct obs_label longl[] = {{"trace_id", "x"}, {"span_id", ""}};
    char big[200];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    longl[1].value = big;
    mtd_appender_set_limits(a, &l);
    ck_assert_int_eq(mtd_appender_add_exemplar(a, L_UP, 2, el, 1, 7000, 7, NULL), 1);
    ck_assert_int_eq(mtd_appender_add_exemplar(a, L_UP, 2, el, 1, 3000, 7, NULL), OBS_ERANGE);
    ck_assert_int_eq(mtd_appender_add_exemplar(a, L_UP, 2, longl, 2, 9000, 7, NULL),
                     OBS_EINVAL);
    ck_assert_int_eq(mtd_appender_commit(a, NULL), 0);
    ck_assert_uint_eq(mtd_head_num_exemplars(h), 5); /* ring of 5: t1, t2 overwritten */
    for (int pass = 0; pass < 3; pass++) {
        struct mtd_exemplar_set *set = exq(h, INT64_MIN, INT64_MAX);
        ck_assert_uint_eq(set->nseries, 1);
        ck_assert_uint_eq(set->series[0].n, 5);
        ck_assert_str_eq(set->series[0].labels[1].value, "a");
        for (int i = 0; i < 5; i++) {
            ck_assert_int_eq(set->series[0].ex[i].t, (i + 3) * 1000);
            ck_assert_double_eq(set->series[0].ex[i].v, i + 3);
            snprintf(tr, sizeof tr, "t%d", i + 3);
            ck_assert_str_eq(set->series[0].ex[i].labels[0].name, "trace_id");
            ck_assert_str_eq(set->series[0].ex[i].labels[0].value, tr);
        }
        mtd_exemplar_set_free(set);
        set = exq(h, 4000, 5000);
        ck_assert_uint_eq(set->series[0].n, 2);
        mtd_exemplar_set_free(set);
        if (pass == 1)
            ck_assert_int_eq(mtd_head_checkpoint(h, NULL), 0);
        mtd_head_close(h);
        h = mtd_head_open(&o, NULL);
        ck_assert_uint_eq(mtd_head_num_exemplars(h), 5);
    }
    /* shrinking the ring keeps the newest */
    ck_assert_int_eq(add_ex(h, 2, 8000, 8, "t8"), 0);
    struct mtd_exemplar_set *set = exq(h, INT64_MIN, INT64_MAX);
    ck_assert_uint_eq(set->series[0].n, 2);
    ck_assert_int_eq(set->series[0].ex[0].t, 7000);
    ck_assert_int_eq(set->series[0].ex[1].t, 8000);
    mtd_exemplar_set_free(set);
    /* unknown tenant: empty */
    ck_assert_int_eq(mtd_storage_exemplars(mtd_head_storage(h), "nobody", NULL, 0, INT64_MIN,
                                           INT64_MAX, &set, NULL), 0);
    ck_assert_uint_eq(set->nseries, 0);
    mtd_exemplar_set_free(set);
    mtd_head_close(h);
    rmwaldir();
}
END_TEST

/* Many series and samples through small segments: checkpoints delete segments, the head
 * after replay equals the head before, also when the old segments are still there (a crash
 * between checkpoint begin and end). */
START_TEST(test_checkpoint)
{
    mkwaldir();
    struct mtd_head_opts o = {.wal_dir = waldir, .wal_segment_bytes = 64 * 1024,
                              .wal_no_fsync = 1};
    struct mtd_head *h = mtd_head_open(&o, NULL);
    char job[32];
    int64_t t = 0;
    for (int round = 0; round < 300; round++) {
        struct mtd_appender *a = mtd_head_appender(h, "anonymous");
        for (int i = 0; i < 50; i++) {
            snprintf(job, sizeof job, "j%d", i);
            struct obs_label l[] = {{"__name__", "m"}, {"job", job}};
            ck_assert_int_eq(mtd_appender_add(a, l, 2, t + i, round * 0.5 + i, NULL), 0);
        }
        ck_assert_int_eq(mtd_appender_commit(a, NULL), 0);
        t += 15000;
        int rc = mtd_head_maybe_checkpoint(h, NULL);
        ck_assert_int_ge(rc, 0);
    }
    ck_assert_uint_ge(mtd_head_checkpoints(h), 1);
    int segs_before = nsegments(waldir);
    ck_assert_int_le(segs_before, 8);
    /* keep a copy of the WAL, checkpoint, then put the old segments back */
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s.bak' && cp -a '%s' '%s.bak'", waldir, waldir, waldir);
    ck_assert_int_eq(system(cmd), 0);
    ck_assert_int_eq(mtd_head_checkpoint(h, NULL), 0);
    ck_assert_int_eq(nsegments(waldir), 1);
    uint64_t want = mtd_head_num_samples(h);
    ck_assert_uint_eq(want, 300 * 50);
    mtd_head_close(h);
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) {
            snprintf(cmd, sizeof cmd, "cp -n '%s.bak'/* '%s'/ && rm -rf '%s.bak'", waldir,
                     waldir, waldir);
            ck_assert_int_eq(system(cmd), 0);
        }
        h = mtd_head_open(&o, NULL);
        ck_assert_ptr_nonnull(h);
        ck_assert_uint_eq(mtd_head_num_series(h), 50);
        ck_assert_uint_eq(mtd_head_num_samples(h), want);
        struct mtd_series_set *s = sel_all(h, "m");
        ck_assert_uint_eq(s->nseries, 50);
        for (size_t i = 0; i < s->nseries; i++) {
            /* series[0] is j0, which got one more sample per pass */
            ck_assert_uint_eq(s->series[i].nsamples, 300 + (i == 0 ? (size_t)pass : 0));
            for (size_t k = 1; k < 300; k++)
                ck_assert_int_eq(s->series[i].samples[k].t - s->series[i].samples[k - 1].t,
                                 15000);
        }
        mtd_series_set_free(s);
        /* appends continue in the rebuilt open chunks */
        struct mtd_appender *a = mtd_head_appender(h, "anonymous");
        struct obs_label l[] = {{"__name__", "m"}, {"job", "j0"}};
        ck_assert_int_eq(mtd_appender_add(a, l, 2, t + 1000 * pass, 1, NULL), 0);
        ck_assert_int_eq(mtd_appender_commit(a, NULL), 0);
        want++;
        mtd_head_close(h); /* checkpoints again */
    }
    h = mtd_head_open(&o, NULL);
    ck_assert_uint_eq(mtd_head_num_samples(h), want);
    struct mtd_series_set *s = sel_all(h, "{__name__=\"m\",job=\"j0\"}");
    ck_assert_uint_eq(s->series[0].nsamples, 302);
    ck_assert_int_eq(s->series[0].samples[301].t, t + 1000);
    mtd_series_set_free(s);
    mtd_head_close(h);
    rmwaldir();
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("mtd_head_ooo");
    TCase *tc = tcase_create("ooo");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_ooo_window);
    tcase_add_test(tc, test_ooo_many);
    tcase_add_test(tc, test_stale_markers);
    tcase_add_test(tc, test_histograms);
    tcase_add_test(tc, test_exemplars);
    tcase_add_test(tc, test_checkpoint);
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
