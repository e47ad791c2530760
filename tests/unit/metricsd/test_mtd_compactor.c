/*
 * test_mtd_compactor.c -- unit tests of metricsd's block layer pieces that need no daemon:
 * the compaction planner (compactor.c), the vertical merge with one sample per timestamp
 * (storage_merge.c: mtd_series_merge), and the block reader's remote chunk source and
 * corrupt-chunk skipping (tsdb/block_read.c) that the store-gateway relies on.
 */
#include <check.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/obs_mem.h"
#include "metricsd/blocks.h"
#include "metricsd/head.h"
#include "metricsd/storage.h"
#include "metricsd/tsdb/block_read.h"
#include "metricsd/tsdb/block_write.h"

#define H (3600 * 1000LL)

static const int64_t RANGES[] = {2 * H, 12 * H, 24 * H};

static int plan(const struct mtd_plan_block *b, size_t n, size_t *idx, int *vertical)
{
    return mtd_compactor_plan(b, n, RANGES, 3, idx, vertical);
}

/* ---- planner ---------------------------------------------------------------------------- */

START_TEST(test_plan_levels)
{
    struct mtd_plan_block b[8];
    size_t idx[8];
    int v;
    /* seven consecutive 2h blocks from a 12h boundary, listed out of order */
    for (int i = 0; i < 7; i++)
        b[6 - i] = (struct mtd_plan_block){"x", 24 * H + i * 2 * H, 24 * H + (i + 1) * 2 * H, 1};
    int k = plan(b, 7, idx, &v);
    ck_assert_int_eq(k, 6);
    ck_assert_int_eq(v, 0);
    for (int i = 0; i < 6; i++) /* sorted by time: the first six blocks */
        ck_assert_int_eq(b[idx[i]].mint, 24 * H + i * 2 * H);

    /* only five of the window and nothing newer beyond the window: wait */
    k = plan(b + 2, 5, idx, &v);
    ck_assert_int_eq(k, 0);

    /* a single block, or none */
    ck_assert_int_eq(plan(b, 1, idx, &v), 0);
    ck_assert_int_eq(plan(b, 0, idx, &v), 0);

    /* a gap inside the window is fine once a newer block exists past it */
    struct mtd_plan_block g[4] = {{"a", 0, 2 * H, 1},
                                  {"b", 4 * H, 6 * H, 1},
                                  {"c", 12 * H, 14 * H, 1},
                                  {"d", 14 * H, 16 * H, 1}};
    k = plan(g, 4, idx, &v);
    ck_assert_int_eq(k, 2);
    ck_assert_str_eq(g[idx[0]].ulid, "a");
    ck_assert_str_eq(g[idx[1]].ulid, "b");

    /* two 12h blocks of one day plus a newer one: the next level */
    struct mtd_plan_block d[3] = {
        {"a", 0, 12 * H, 2}, {"b", 12 * H, 24 * H, 2}, {"c", 24 * H, 26 * H, 1}};
    k = plan(d, 3, idx, &v);
    ck_assert_int_eq(k, 2);
    ck_assert_int_eq(v, 0);

    /* a block larger than the window is never regrouped at that level */
    struct mtd_plan_block big[3] = {
        {"a", 0, 24 * H, 3}, {"b", 24 * H, 26 * H, 1}, {"c", 26 * H, 28 * H, 1}};
    ck_assert_int_eq(plan(big, 3, idx, &v), 0);
}
END_TEST

START_TEST(test_plan_overlaps_first)
{
    struct mtd_plan_block b[5] = {{"a", 0, 2 * H, 1},
                                  {"b", 2 * H, 4 * H, 1},
                                  {"r", 2 * H, 4 * H, 1},
                                  {"c", 3 * H, 5 * H, 1},
                                  {"z", 40 * H, 42 * H, 1}};
    size_t idx[5];
    int v;
    int k = plan(b, 5, idx, &v);
    ck_assert_int_eq(k, 3); /* b, r, c overlap (a chain) */
    ck_assert_int_eq(v, 1);
    int seen = 0;
    for (int i = 0; i < k; i++)
        seen |= 1 << (b[idx[i]].ulid[0] - 'a');
    ck_assert_int_eq(seen, (1 << ('b' - 'a')) | (1 << ('r' - 'a')) | (1 << ('c' - 'a')));
    /* touching ranges ([0,2h) and [2h,4h)) are not overlaps */
    struct mtd_plan_block t[2] = {{"a", 0, 2 * H, 1}, {"b", 2 * H, 4 * H, 1}};
    ck_assert_int_eq(plan(t, 2, idx, &v), 0);
}
END_TEST

/* ---- vertical merge --------------------------------------------------------------------- */

START_TEST(test_merge_dedup)
{
    struct obs_label la[] = {{"__name__", "m"}, {"i", "1"}};
    struct obs_label la2[] = {{"__name__", "m"}, {"i", "1"}};
    struct obs_label lb[] = {{"__name__", "m"}, {"i", "0"}};
    struct mtd_sample s1[] = {{10, 1}, {20, 2}, {30, 3}};
    struct mtd_sample s2[] = {{5, 9}, {20, 99}, {25, 7}, {40, 4}};
    struct mtd_sample s3[] = {{1, 0}};
    struct mtd_series in[] = {{la, 2, s1, 3, 0}, {lb, 2, s3, 1, 0}, {la2, 2, s2, 4, 0}};
    struct mtd_series_set *out = NULL;
    ck_assert_int_eq(mtd_series_merge(in, 3, 0, &out), 0);
    ck_assert_uint_eq(out->nseries, 2);
    ck_assert_str_eq(out->series[0].labels[1].value, "0");
    ck_assert_str_eq(out->series[1].labels[1].value, "1");
    const struct mtd_series *m = &out->series[1];
    int64_t want_t[] = {5, 10, 20, 25, 30, 40};
    double want_v[] = {9, 1, 2, 7, 3, 4}; /* t=20: the first input's value wins */
    ck_assert_uint_eq(m->nsamples, 6);
    for (size_t i = 0; i < 6; i++) {
        ck_assert_int_eq(m->samples[i].t, want_t[i]);
        ck_assert(m->samples[i].v == want_v[i]);
    }
    ck_assert_uint_eq(out->nsamples_total, 7);
    ck_assert_uint_eq(m->hash, obs_labels_hash(la, 2));
    mtd_series_set_free(out);

    /* labels only */
    ck_assert_int_eq(mtd_series_merge(in, 3, 1, &out), 0);
    ck_assert_uint_eq(out->nseries, 2);
    ck_assert_uint_eq(out->series[0].nsamples, 0);
    mtd_series_set_free(out);

    /* nothing */
    ck_assert_int_eq(mtd_series_merge(NULL, 0, 0, &out), 0);
    ck_assert_uint_eq(out->nseries, 0);
    mtd_series_set_free(out);
}
END_TEST

/* ---- reader with a chunk source, corrupt chunks skipped --------------------------------- */

struct filesrc {
    char path[PATH_MAX];
    uint8_t buf[1 << 16];
    int reads;
};

static int file_read(void *arg, uint32_t seg, uint64_t off, size_t want, const uint8_t **p,
                     size_t *got, struct obs_err *err)
{
    struct filesrc *s = arg;
    ck_assert_uint_eq(seg, 0);
    int fd = open(s->path, O_RDONLY);
    ck_assert_int_ge(fd, 0);
    if (want > sizeof s->buf)
        want = sizeof s->buf;
    ssize_t n = pread(fd, s->buf, want, (off_t)off);
    close(fd);
    if (n < 0)
        return obs_err_set(err, OBS_EIO, "read");
    s->reads++;
    *p = s->buf;
    *got = (size_t)n;
    return 0;
}

struct cnt {
    size_t series, samples;
};

static int count_fn(void *arg, const struct obs_label *l, size_t nl, const struct mtd_sample *s,
                    size_t ns)
{
    (void)l;
    (void)nl;
    (void)s;
    struct cnt *c = arg;
    c->series++;
    c->samples += ns;
    return 0;
}

static int chunks_fn(void *arg, const struct obs_label *l, size_t nl,
                     const struct mtd_tsdb_chunk_in *c, size_t n)
{
    (void)l;
    (void)nl;
    size_t *total = arg;
    for (size_t i = 0; i < n; i++) /* every chunk still readable after later fetches */
        ck_assert_uint_eq(c[i].data[0] << 8 | c[i].data[1], i < 2 ? 120 : 60);
    *total += n;
    return 0;
}

static int ncorrupt;
static void on_corrupt(void *arg, const struct obs_err *e)
{
    (void)arg;
    ck_assert_int_eq(e->code, OBS_ECORRUPT);
    ck_assert_ptr_nonnull(strstr(e->msg, "checksum"));
    ncorrupt++;
}

START_TEST(test_reader_source_and_corruption)
{
    char tmpl[] = "/tmp/mtd-comp-XXXXXX";
    char *dir = mkdtemp(tmpl);
    ck_assert_ptr_nonnull(dir);
    struct obs_label l0[] = {{"__name__", "m"}, {"i", "0"}};
    struct obs_label l1[] = {{"__name__", "m"}, {"i", "1"}};
    struct mtd_sample s[300];
    for (int i = 0; i < 300; i++)
        s[i] = (struct mtd_sample){1000 * i, i * 0.5};
    struct mtd_tsdb_series_in in[2] = {{l0, 2, s, 300, NULL, 0}, {l1, 2, s, 300, NULL, 0}};
    struct mtd_tsdb_block_info info;
    struct obs_err err = {0};
    struct mtd_tsdb_write_opts wo = {.no_fsync = 1};
    ck_assert_int_eq(mtd_tsdb_block_write(dir, in, 2, &wo, &info, &err), 0);

    char bdir[PATH_MAX - 64];
    snprintf(bdir, sizeof bdir, "%s/%s", dir, info.ulid);
    struct filesrc fs = {0};
    snprintf(fs.path, sizeof fs.path, "%s/chunks/000001", bdir);
    struct stat st;
    ck_assert_int_eq(stat(fs.path, &st), 0);
    uint64_t len = (uint64_t)st.st_size;
    struct mtd_tsdb_chunk_src src = {file_read, &fs, 1, &len};
    struct mtd_tsdb_block *b = NULL;
    ck_assert_int_eq(mtd_tsdb_block_open_src(bdir, &src, &b, &err), 0);
    struct cnt c = {0};
    ck_assert_int_eq(mtd_tsdb_block_select(b, NULL, 0, INT64_MIN, INT64_MAX, count_fn, &c, &err),
                     0);
    ck_assert_uint_eq(c.series, 2);
    ck_assert_uint_eq(c.samples, 600);
    ck_assert_int_gt(fs.reads, 0);
    ck_assert_int_eq(mtd_tsdb_block_verify(b, &err), 0);
    size_t nchunks = 0;
    ck_assert_int_eq(
        mtd_tsdb_block_select_chunks(b, NULL, 0, INT64_MIN, INT64_MAX, chunks_fn, &nchunks, &err),
        0);
    ck_assert_uint_eq(nchunks, 6);

    /* flip a byte in the first chunk's data */
    int fd = open(fs.path, O_RDWR);
    uint8_t x;
    ck_assert_int_eq(pread(fd, &x, 1, 20), 1);
    x ^= 0xff;
    ck_assert_int_eq(pwrite(fd, &x, 1, 20), 1);
    close(fd);

    /* without a handler: the select fails with OBS_ECORRUPT */
    memset(&c, 0, sizeof c);
    ck_assert_int_eq(mtd_tsdb_block_select(b, NULL, 0, INT64_MIN, INT64_MAX, count_fn, &c, &err),
                     OBS_ECORRUPT);
    /* with one: reported, skipped, the rest delivered */
    mtd_tsdb_block_on_corrupt(b, on_corrupt, NULL);
    memset(&c, 0, sizeof c);
    ncorrupt = 0;
    ck_assert_int_eq(mtd_tsdb_block_select(b, NULL, 0, INT64_MIN, INT64_MAX, count_fn, &c, &err),
                     0);
    ck_assert_int_eq(ncorrupt, 1);
    ck_assert_uint_eq(c.series, 2);
    ck_assert_uint_eq(c.samples, 600 - 120);
    mtd_tsdb_block_close(b);

    /* the same through local files */
    ck_assert_int_eq(mtd_tsdb_block_open(bdir, &b, &err), 0);
    mtd_tsdb_block_on_corrupt(b, on_corrupt, NULL);
    memset(&c, 0, sizeof c);
    ncorrupt = 0;
    ck_assert_int_eq(mtd_tsdb_block_select(b, NULL, 0, INT64_MIN, INT64_MAX, count_fn, &c, &err),
                     0);
    ck_assert_int_eq(ncorrupt, 1);
    ck_assert_uint_eq(c.samples, 480);
    ck_assert_int_eq(mtd_tsdb_block_verify(b, &err), OBS_ECORRUPT);
    mtd_tsdb_block_close(b);
    mtd_rm_rf(dir);
}
END_TEST

/* ---- head -> block ---------------------------------------------------------------------- */

START_TEST(test_head_cut_block)
{
    char tmpl[] = "/tmp/mtd-cut-XXXXXX";
    char *dir = mkdtemp(tmpl);
    ck_assert_ptr_nonnull(dir);
    struct obs_err err = {0};
    struct mtd_head_opts ho = {0};
    struct mtd_head *h = mtd_head_open(&ho, &err);
    ck_assert_ptr_nonnull(h);
    struct mtd_appender *a = mtd_head_appender(h, "t");
    struct obs_label l0[] = {{"__name__", "m"}, {"i", "0"}};
    struct obs_label l1[] = {{"__name__", "m"}, {"i", "1"}};
    for (int64_t t = 0; t < 5 * H; t += 60000) { /* 300 samples each, over 5h */
        ck_assert_int_eq(mtd_appender_add(a, l0, 2, t, (double)t, &err), 0);
        if (t >= 3 * H)
            ck_assert_int_eq(mtd_appender_add(a, l1, 2, t, 1.0, &err), 0);
    }
    ck_assert_int_eq(mtd_appender_commit(a, &err), 0);
    int64_t lo, hi;
    ck_assert_int_eq(mtd_head_time_range(h, "t", &lo, &hi), 0);
    ck_assert_int_eq(lo, 0);
    ck_assert_int_eq(hi, 5 * H - 60000);
    ck_assert_int_eq(mtd_head_time_range(h, "nobody", &lo, &hi), OBS_ENOENT);

    struct mtd_tsdb_block_info info;
    ck_assert_int_eq(mtd_head_cut_block(h, "t", 2 * H, 4 * H, dir, &info, &err), 0);
    ck_assert_int_eq(info.mint, 2 * H);
    ck_assert_int_eq(info.maxt, 4 * H);
    ck_assert_uint_eq(info.nseries, 2);
    ck_assert_uint_eq(info.nsamples, 120 + 60);
    char bdir[PATH_MAX - 64];
    snprintf(bdir, sizeof bdir, "%s/%s", dir, info.ulid);
    struct mtd_tsdb_block *b;
    ck_assert_int_eq(mtd_tsdb_block_open(bdir, &b, &err), 0);
    ck_assert_int_eq(mtd_tsdb_block_verify(b, &err), 0);
    struct cnt c = {0};
    ck_assert_int_eq(mtd_tsdb_block_select(b, NULL, 0, INT64_MIN, INT64_MAX, count_fn, &c, &err),
                     0);
    ck_assert_uint_eq(c.samples, 180);
    mtd_tsdb_block_close(b);
    /* nothing in range: nothing written */
    ck_assert_int_eq(mtd_head_cut_block(h, "t", 10 * H, 12 * H, dir, &info, &err), OBS_ENOENT);
    ck_assert_int_eq(mtd_head_cut_block(h, "t", 2 * H, 2 * H, dir, &info, &err), OBS_EINVAL);
    mtd_head_close(h);
    mtd_rm_rf(dir);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("mtd_compactor");
    TCase *tc = tcase_create("plan");
    tcase_add_test(tc, test_plan_levels);
    tcase_add_test(tc, test_plan_overlaps_first);
    suite_add_tcase(s, tc);
    tc = tcase_create("merge");
    tcase_add_test(tc, test_merge_dedup);
    suite_add_tcase(s, tc);
    tc = tcase_create("reader");
    tcase_add_test(tc, test_reader_source_and_corruption);
    suite_add_tcase(s, tc);
    tc = tcase_create("cut");
    tcase_add_test(tc, test_head_cut_block);
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
