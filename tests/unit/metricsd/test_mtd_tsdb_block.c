/*
 * test_mtd_tsdb_block.c -- metricsd/tsdb/block_write.c + block_read.c: write a TSDB block,
 * read it back (all series, every matcher kind, time ranges, label APIs, meta.json),
 * pre-encoded chunk input, segment cutting, input validation (nothing left behind), ULIDs,
 * and corruption: every single byte of the index and of the chunk segment flipped in turn
 * must make open or verify return OBS_ECORRUPT, and queries on the damaged block must not
 * crash.
 */
#include <check.h>
#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/obs_mem.h"
#include "metricsd/storage.h"
#include "metricsd/tsdb/block_read.h"
#include "metricsd/tsdb/block_write.h"
#include "metricsd/tsdb/xor.h"

static char tmpdir[256];

static void mktmp(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_mtd_tsdb_block.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void rmtmp(void)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    ck_assert_int_eq(system(cmd), 0);
}

static size_t dir_entries(const char *dir)
{
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

/* ---- a small data set ------------------------------------------------------------------- */

#define NS 6
static struct obs_label L[NS][3] = {
    {{"__name__", "up"}, {"instance", "a:9100"}, {"job", "node"}},
    {{"__name__", "up"}, {"instance", "b:9100"}, {"job", "node"}},
    {{"__name__", "up"}, {"instance", "c:9090"}, {"job", "prom"}},
    {{"__name__", "http_requests_total"}, {"code", "200"}, {"job", "api"}},
    {{"__name__", "http_requests_total"}, {"code", "500"}, {"job", "api"}},
    {{"__name__", "lonely"}, {NULL, NULL}, {NULL, NULL}},
};
static const size_t NL[NS] = {3, 3, 3, 3, 3, 1};
static const size_t NSAMP[NS] = {1, 120, 121, 500, 250, 3};
static struct mtd_sample *S[NS];

static void make_data(void)
{
    for (int i = 0; i < NS; i++) {
        S[i] = malloc(NSAMP[i] * sizeof *S[i]);
        double v = i * 10;
        for (size_t k = 0; k < NSAMP[i]; k++) {
            S[i][k].t = 1000000 + (int64_t)k * 15000 + (int64_t)(k % 3);
            S[i][k].v = v;
            v += sin((double)k + i) * 3;
        }
    }
    S[5][1].v = NAN;
    uint64_t stale = MTD_STALE_NAN_BITS;
    memcpy(&S[5][2].v, &stale, sizeof stale);
}

static void free_data(void)
{
    for (int i = 0; i < NS; i++)
        free(S[i]);
}

/* Write the data set (series given in reverse order: the writer sorts). */
static void write_block(const struct mtd_tsdb_write_opts *o, struct mtd_tsdb_block_info *info,
                        char *path, size_t cap)
{
    struct mtd_tsdb_series_in in[NS];
    for (int i = 0; i < NS; i++)
        in[NS - 1 - i] = (struct mtd_tsdb_series_in){
            .labels = L[i], .nlabels = NL[i], .samples = S[i], .nsamples = NSAMP[i]};
    struct obs_err err = {0};
    ck_assert_msg(mtd_tsdb_block_write(tmpdir, in, NS, o, info, &err) == 0, "%s", err.msg);
    snprintf(path, cap, "%s/%s", tmpdir, info->ulid);
}

/* ---- collecting select results ---------------------------------------------------------- */

struct got {
    char keys[16][128];
    size_t nsamples[16];
    struct mtd_sample first[16], last[16];
    size_t n;
    int (*check)(int series, const struct mtd_sample *s, size_t n);
};

static int series_index(const struct obs_label *l, size_t n)
{
    for (int i = 0; i < NS; i++) {
        if (NL[i] != n)
            continue;
        size_t k;
        for (k = 0; k < n; k++)
            if (strcmp(L[i][k].name, l[k].name) || strcmp(L[i][k].value, l[k].value))
                break;
        if (k == n)
            return i;
    }
    return -1;
}

static int collect(void *arg, const struct obs_label *l, size_t nl, const struct mtd_sample *s,
                   size_t ns)
{
    struct got *g = arg;
    ck_assert_uint_lt(g->n, 16);
    char *k = g->keys[g->n];
    k[0] = '\0';
    for (size_t i = 0; i < nl; i++) {
        strcat(k, l[i].value);
        strcat(k, i + 1 < nl ? "," : "");
    }
    g->nsamples[g->n] = ns;
    g->first[g->n] = s[0];
    g->last[g->n] = s[ns - 1];
    g->n++;
    return 0;
}

static void sel(struct mtd_tsdb_block *b, const char *selector, int64_t mint, int64_t maxt,
                struct got *g)
{
    struct obs_matcher *ms = NULL;
    size_t nms = 0;
    struct obs_err err = {0};
    if (selector)
        ck_assert_msg(
            obs_matchers_parse(selector, strlen(selector), &ms, &nms, &(size_t){0}, &err) == 0,
            "%s", err.msg);
    memset(g, 0, sizeof *g);
    ck_assert_msg(mtd_tsdb_block_select(b, ms, nms, mint, maxt, collect, g, &err) == 0, "%s",
                  err.msg);
    obs_matchers_free(ms, nms);
}

/* Every sample of every series comes back bit for bit. */
static int exact(void *arg, const struct obs_label *l, size_t nl, const struct mtd_sample *s,
                 size_t ns)
{
    int *count = arg;
    int i = series_index(l, nl);
    ck_assert_int_ge(i, 0);
    ck_assert_uint_eq(ns, NSAMP[i]);
    for (size_t k = 0; k < ns; k++) {
        ck_assert_int_eq(s[k].t, S[i][k].t);
        ck_assert_mem_eq(&s[k].v, &S[i][k].v, sizeof(double));
    }
    (*count)++;
    return 0;
}

START_TEST(test_roundtrip)
{
    mktmp();
    make_data();
    struct mtd_tsdb_block_info info;
    char path[512];
    write_block(NULL, &info, path, sizeof path);
    ck_assert(mtd_tsdb_ulid_valid(info.ulid));
    ck_assert_uint_eq(info.nseries, NS);
    ck_assert_uint_eq(info.nsamples, 1 + 120 + 121 + 500 + 250 + 3);
    ck_assert_uint_eq(info.nchunks, 1 + 1 + 2 + 5 + 3 + 1);
    ck_assert_int_eq(info.mint, 1000000);
    ck_assert_int_eq(info.maxt, S[3][499].t + 1);
    ck_assert_uint_eq(dir_entries(tmpdir), 1); /* no temp dir left */

    struct mtd_tsdb_block *b = NULL;
    struct obs_err err = {0};
    ck_assert_msg(mtd_tsdb_block_open(path, &b, &err) == 0, "%s", err.msg);
    ck_assert_msg(mtd_tsdb_block_verify(b, &err) == 0, "%s", err.msg);
    const struct mtd_tsdb_block_meta *m = mtd_tsdb_block_meta(b);
    ck_assert_str_eq(m->ulid, info.ulid);
    ck_assert_int_eq(m->mint, info.mint);
    ck_assert_int_eq(m->maxt, info.maxt);
    ck_assert_uint_eq(m->nsamples, info.nsamples);
    ck_assert_uint_eq(m->nchunks, info.nchunks);
    ck_assert_int_eq(m->level, 1);

    int count = 0;
    ck_assert_int_eq(mtd_tsdb_block_select(b, NULL, 0, INT64_MIN, INT64_MAX, exact, &count, &err),
                     0);
    ck_assert_int_eq(count, NS);

    /* sorted by label set */
    struct got g;
    sel(b, NULL, INT64_MIN, INT64_MAX, &g);
    ck_assert_uint_eq(g.n, NS);
    ck_assert_str_eq(g.keys[0], "http_requests_total,200,api");
    ck_assert_str_eq(g.keys[1], "http_requests_total,500,api");
    ck_assert_str_eq(g.keys[2], "lonely");
    ck_assert_str_eq(g.keys[3], "up,a:9100,node");
    ck_assert_str_eq(g.keys[5], "up,c:9090,prom");

    /* matchers */
    sel(b, "{__name__=\"up\"}", INT64_MIN, INT64_MAX, &g);
    ck_assert_uint_eq(g.n, 3);
    sel(b, "{__name__=\"up\", job!=\"node\"}", INT64_MIN, INT64_MAX, &g);
    ck_assert_uint_eq(g.n, 1);
    ck_assert_str_eq(g.keys[0], "up,c:9090,prom");
    sel(b, "{instance=~\"[ab]:.*\"}", INT64_MIN, INT64_MAX, &g);
    ck_assert_uint_eq(g.n, 2);
    sel(b, "{__name__=~\"up|lonely\", instance!~\"a.*\"}", INT64_MIN, INT64_MAX, &g);
    ck_assert_uint_eq(g.n, 3); /* lonely (no instance = ""), up b, up c */
    sel(b, "{job=\"\"}", INT64_MIN, INT64_MAX, &g);
    ck_assert_uint_eq(g.n, 1); /* only the series without a job label */
    ck_assert_str_eq(g.keys[0], "lonely");
    sel(b, "{code=~\"5..\"}", INT64_MIN, INT64_MAX, &g);
    ck_assert_uint_eq(g.n, 1);
    sel(b, "{nosuchlabel=\"x\"}", INT64_MIN, INT64_MAX, &g);
    ck_assert_uint_eq(g.n, 0);
    sel(b, "{__name__=\"nosuch\"}", INT64_MIN, INT64_MAX, &g);
    ck_assert_uint_eq(g.n, 0);
    sel(b, "{__name__!=\"\"}", INT64_MIN, INT64_MAX, &g);
    ck_assert_uint_eq(g.n, NS);

    /* time ranges: inclusive, chunk boundaries inside */
    sel(b, "{code=\"200\"}", S[3][119].t, S[3][240].t, &g);
    ck_assert_uint_eq(g.n, 1);
    ck_assert_uint_eq(g.nsamples[0], 122);
    ck_assert_int_eq(g.first[0].t, S[3][119].t);
    ck_assert_int_eq(g.last[0].t, S[3][240].t);
    sel(b, NULL, S[3][499].t + 1, INT64_MAX, &g);
    ck_assert_uint_eq(g.n, 0);
    sel(b, NULL, 0, 1000000, &g);
    ck_assert_uint_eq(g.n, NS); /* every series has a sample at exactly 1000000 */

    /* label APIs */
    char **v;
    size_t n;
    ck_assert_int_eq(mtd_tsdb_block_label_names(b, &v, &n), 0);
    ck_assert_uint_eq(n, 4);
    ck_assert_str_eq(v[0], "__name__");
    ck_assert_str_eq(v[3], "job");
    mtd_strings_free(v, n);
    ck_assert_int_eq(mtd_tsdb_block_label_values(b, "instance", &v, &n), 0);
    ck_assert_uint_eq(n, 3);
    ck_assert_str_eq(v[2], "c:9090");
    mtd_strings_free(v, n);
    ck_assert_int_eq(mtd_tsdb_block_label_values(b, "nosuch", &v, &n), 0);
    ck_assert_uint_eq(n, 0);
    mtd_strings_free(v, n);

    mtd_tsdb_block_close(b);
    free_data();
    rmtmp();
}
END_TEST

START_TEST(test_chunk_input_and_segments)
{
    mktmp();
    make_data();
    /* pre-encode series 3 into chunks of 100 samples, as the head would hand them over */
    struct mtd_tsdb_xor_enc enc[5];
    struct mtd_tsdb_chunk_in ch[5];
    for (int c = 0; c < 5; c++) {
        ck_assert_int_eq(mtd_tsdb_xor_enc_init(&enc[c]), 0);
        for (int k = 0; k < 100; k++)
            ck_assert_int_eq(
                mtd_tsdb_xor_enc_append(&enc[c], S[3][c * 100 + k].t, S[3][c * 100 + k].v), 0);
        ch[c].data = mtd_tsdb_xor_enc_bytes(&enc[c], &ch[c].len);
        ch[c].mint = S[3][c * 100].t;
        ch[c].maxt = S[3][c * 100 + 99].t;
    }
    struct mtd_tsdb_series_in in[NS];
    for (int i = 0; i < NS; i++)
        in[i] = (struct mtd_tsdb_series_in){
            .labels = L[i], .nlabels = NL[i], .samples = S[i], .nsamples = NSAMP[i]};
    in[3].samples = NULL;
    in[3].nsamples = 0;
    in[3].chunks = ch;
    in[3].nchunks = 5;
    /* tiny segments: many chunk files */
    struct mtd_tsdb_write_opts o = {.segment_bytes = 600, .samples_per_chunk = 50, .no_fsync = 1};
    struct mtd_tsdb_block_info info;
    struct obs_err err = {0};
    ck_assert_msg(mtd_tsdb_block_write(tmpdir, in, NS, &o, &info, &err) == 0, "%s", err.msg);
    ck_assert_uint_eq(info.nsamples, 995);
    char path[512];
    snprintf(path, sizeof path, "%s/%s/chunks", tmpdir, info.ulid);
    ck_assert_uint_gt(dir_entries(path), 5);
    snprintf(path, sizeof path, "%s/%s", tmpdir, info.ulid);
    struct mtd_tsdb_block *b = NULL;
    ck_assert_msg(mtd_tsdb_block_open(path, &b, &err) == 0, "%s", err.msg);
    ck_assert_msg(mtd_tsdb_block_verify(b, &err) == 0, "%s", err.msg);
    int count = 0;
    ck_assert_int_eq(mtd_tsdb_block_select(b, NULL, 0, INT64_MIN, INT64_MAX, exact, &count, &err),
                     0);
    ck_assert_int_eq(count, NS);
    mtd_tsdb_block_close(b);

    /* an explicit (aligned) block range goes into meta.json; samples outside it are refused */
    struct mtd_tsdb_write_opts ro = {.no_fsync = 1, .range_mint = 0, .range_maxt = 14400000};
    ck_assert_msg(mtd_tsdb_block_write(tmpdir, in, NS, &ro, &info, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(info.mint, 0);
    ck_assert_int_eq(info.maxt, 14400000);
    snprintf(path, sizeof path, "%s/%s", tmpdir, info.ulid);
    ck_assert_msg(mtd_tsdb_block_open(path, &b, &err) == 0, "%s", err.msg);
    ck_assert_int_eq(mtd_tsdb_block_meta(b)->maxt, 14400000);
    ck_assert_msg(mtd_tsdb_block_verify(b, &err) == 0, "%s", err.msg);
    mtd_tsdb_block_close(b);
    ro.range_mint = 1000001;
    ck_assert_int_eq(mtd_tsdb_block_write(tmpdir, in, NS, &ro, &info, &err), OBS_EINVAL);

    /* a chunk whose index times disagree with its data is refused */
    ch[2].maxt++;
    ck_assert_int_eq(mtd_tsdb_block_write(tmpdir, in, NS, &o, &info, &err), OBS_EINVAL);
    ch[2].maxt--;
    for (int c = 0; c < 5; c++)
        mtd_tsdb_xor_enc_deinit(&enc[c]);
    free_data();
    rmtmp();
}
END_TEST

START_TEST(test_invalid_input)
{
    mktmp();
    struct obs_err err = {0};
    struct mtd_sample s[3] = {{1000, 1}, {2000, 2}, {2000, 3}};
    struct obs_label good[2] = {{"__name__", "a"}, {"job", "x"}};
    struct obs_label unsorted[2] = {{"job", "x"}, {"__name__", "a"}};
    struct obs_label empty[2] = {{"__name__", "a"}, {"job", ""}};
    struct mtd_tsdb_series_in in[2] = {
        {.labels = good, .nlabels = 2, .samples = s, .nsamples = 2},
        {.labels = good, .nlabels = 2, .samples = s, .nsamples = 2},
    };
    struct mtd_tsdb_write_opts o = {.no_fsync = 1};
    ck_assert_int_eq(mtd_tsdb_block_write(tmpdir, in, 2, &o, NULL, &err), OBS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "duplicate"));
    in[1].nsamples = 3; /* out of order (equal timestamps) */
    in[1].labels = (struct obs_label[2]){{"__name__", "b"}, {"job", "x"}};
    ck_assert_int_eq(mtd_tsdb_block_write(tmpdir, in, 2, &o, NULL, &err), OBS_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "increasing"));
    in[1].nsamples = 2;
    in[1].labels = unsorted;
    ck_assert_int_eq(mtd_tsdb_block_write(tmpdir, in, 2, &o, NULL, &err), OBS_EINVAL);
    in[1].labels = empty;
    ck_assert_int_eq(mtd_tsdb_block_write(tmpdir, in, 2, &o, NULL, &err), OBS_EINVAL);
    in[0].nsamples = 0;
    in[1].nsamples = 0;
    ck_assert_int_eq(mtd_tsdb_block_write(tmpdir, in, 2, &o, NULL, &err), OBS_EINVAL);
    ck_assert_int_eq(mtd_tsdb_block_write(tmpdir, NULL, 0, &o, NULL, &err), OBS_EINVAL);
    ck_assert_uint_eq(dir_entries(tmpdir), 0); /* nothing left behind */
    ck_assert_int_eq(mtd_tsdb_block_write("/nonexistent/dir", in, 1,
                                          &(struct mtd_tsdb_write_opts){0}, NULL, &err),
                     OBS_EINVAL); /* no samples is checked first */
    in[0].nsamples = 2;
    ck_assert_int_eq(mtd_tsdb_block_write("/nonexistent/dir", in, 1, &o, NULL, &err), OBS_EIO);

    /* opening what is not a block */
    struct mtd_tsdb_block *b = NULL;
    ck_assert_int_eq(mtd_tsdb_block_open(tmpdir, &b, &err), OBS_ENOENT);
    char p[512];
    snprintf(p, sizeof p, "%s/meta.json", tmpdir);
    FILE *f = fopen(p, "w");
    fputs("{\"ulid\": \"01ABC\", \"minTime\": 1", f);
    fclose(f);
    ck_assert_int_eq(mtd_tsdb_block_open(tmpdir, &b, &err), OBS_ECORRUPT);
    rmtmp();
}
END_TEST

START_TEST(test_ulid)
{
    char a[27], b[27];
    ck_assert_int_eq(mtd_tsdb_ulid_new(1700000000000LL, a), 0);
    ck_assert_int_eq(mtd_tsdb_ulid_new(1700000000000LL, b), 0);
    ck_assert(mtd_tsdb_ulid_valid(a));
    ck_assert_uint_eq(strlen(a), 26);
    ck_assert_str_ne(a, b);                /* random part */
    ck_assert_mem_eq(a, b, 10);            /* same 48-bit time = same first 10 chars */
    ck_assert_mem_eq(a, "01HF7YAT00", 10); /* 1700000000000 ms in Crockford base32 */
    ck_assert_int_eq(mtd_tsdb_ulid_new(1700000000001LL, b), 0);
    ck_assert_int_lt(memcmp(a, b, 10), 0); /* sortable by time */
    ck_assert(!mtd_tsdb_ulid_valid("01HF7YAT00"));
    ck_assert(!mtd_tsdb_ulid_valid("81HF7YAT00AAAAAAAAAAAAAAAA"));
    ck_assert(!mtd_tsdb_ulid_valid("01HF7YAT00AAAAAAAAAAAAAAAU"));
}
END_TEST

/* ---- corruption ------------------------------------------------------------------------- */

static int any_series(void *arg, const struct obs_label *l, size_t nl, const struct mtd_sample *s,
                      size_t ns)
{
    (void)l, (void)nl, (void)s, (void)ns;
    (*(int *)arg)++;
    return 0;
}

static void flip(const char *path, off_t off)
{
    int fd = open(path, O_RDWR);
    ck_assert_int_ge(fd, 0);
    uint8_t c;
    ck_assert_int_eq(pread(fd, &c, 1, off), 1);
    c ^= 0xff;
    ck_assert_int_eq(pwrite(fd, &c, 1, off), 1);
    close(fd);
}

/* Flip every byte of file in turn; open+verify must fail with OBS_ECORRUPT each time. */
static void flip_all(const char *blockdir, const char *file)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%s", blockdir, file);
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    for (off_t off = 0; off < st.st_size; off++) {
        flip(path, off);
        struct mtd_tsdb_block *b = NULL;
        struct obs_err err = {0};
        int rc = mtd_tsdb_block_open(blockdir, &b, &err);
        if (rc == 0) {
            /* queries on the damaged block: errors are fine, crashes are not */
            int n = 0;
            int qrc = mtd_tsdb_block_select(b, NULL, 0, INT64_MIN, INT64_MAX, any_series, &n, &err);
            ck_assert(qrc == 0 || qrc == OBS_ECORRUPT);
            rc = mtd_tsdb_block_verify(b, &err);
            mtd_tsdb_block_close(b);
        }
        ck_assert_msg(rc == OBS_ECORRUPT, "%s: flipping byte %lld gave %d (%s)", file,
                      (long long)off, rc, err.msg);
        ck_assert_ptr_nonnull(strstr(err.msg, "tsdb: "));
        flip(path, off);
    }
    struct mtd_tsdb_block *b = NULL;
    struct obs_err err = {0};
    ck_assert_msg(mtd_tsdb_block_open(blockdir, &b, &err) == 0, "%s", err.msg);
    ck_assert_msg(mtd_tsdb_block_verify(b, &err) == 0, "%s", err.msg);
    mtd_tsdb_block_close(b);
}

START_TEST(test_corruption)
{
    mktmp();
    make_data();
    struct mtd_tsdb_block_info info;
    char path[512];
    write_block(&(struct mtd_tsdb_write_opts){.no_fsync = 1}, &info, path, sizeof path);
    flip_all(path, "index");
    flip_all(path, "chunks/000001");

    /* a truncated index or segment */
    char f[600];
    snprintf(f, sizeof f, "%s/chunks/000001", path);
    ck_assert_int_eq(truncate(f, (off_t)info.chunk_bytes - 3), 0);
    struct mtd_tsdb_block *b = NULL;
    struct obs_err err = {0};
    ck_assert_int_eq(mtd_tsdb_block_open(path, &b, &err), 0);
    ck_assert_int_eq(mtd_tsdb_block_verify(b, &err), OBS_ECORRUPT);
    mtd_tsdb_block_close(b);
    snprintf(f, sizeof f, "%s/index", path);
    ck_assert_int_eq(truncate(f, 100), 0);
    ck_assert_int_eq(mtd_tsdb_block_open(path, &b, &err), OBS_ECORRUPT);
    ck_assert_int_eq(truncate(f, 0), 0);
    ck_assert_int_eq(mtd_tsdb_block_open(path, &b, &err), OBS_ECORRUPT);
    free_data();
    rmtmp();
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("mtd_tsdb_block");
    TCase *tc = tcase_create("roundtrip");
    tcase_add_test(tc, test_roundtrip);
    tcase_add_test(tc, test_chunk_input_and_segments);
    tcase_add_test(tc, test_ulid);
    suite_add_tcase(s, tc);
    tc = tcase_create("invalid");
    tcase_add_test(tc, test_invalid_input);
    suite_add_tcase(s, tc);
    tc = tcase_create("corrupt");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_corruption);
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
