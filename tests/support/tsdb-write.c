/*
 * tsdb-write.c -- write one TSDB block from a deterministic generated data set (for the
 * promtool integration test and the bytes/sample figures).
 *
 * Usage: tsdb-write [options] DIR
 *   -series N         series (default 50)
 *   -samples N        samples per series (default 500)
 *   -interval-ms N    spacing of samples (default 15000)
 *   -start-ms N       first timestamp (default 1700000000000)
 *   -seed N           PRNG seed (default 1)
 *   -walk float|dec|int  random walk of arbitrary doubles (default), of values rounded to
 *                     two decimals (a typical gauge), or of integer steps (a counter)
 *   -special          add edge-case series: NaN, stale markers, +/-Inf, -0, huge and tiny
 *                     values, irregular and negative timestamps
 *   -print            print the expected samples to stdout exactly as `promtool tsdb dump`
 *                     prints them: `{labels} value timestamp` (Go's %g for the value)
 *   -verify           read the block back (block_read.h) and compare every sample
 *   -dump BLOCKDIR    instead of writing: open an existing block (e.g. one Prometheus or
 *                     promtool wrote), verify it, and print its samples as -print does;
 *                     also re-encode every chunk with metricsd/tsdb/xor.c and count the
 *                     chunks whose bytes differ from the block's (summary: reencode_diff=N)
 * Always prints one summary line to stderr:
 *   ulid=.. series=.. samples=.. chunks=.. chunk_bytes=.. index_bytes=..
 *   chunk_bytes_per_sample=.. index_bytes_per_sample=..
 * Exit status 0 on success, 1 on any error.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/obs_err.h"
#include "core/obs_mem.h"
#include "metricsd/storage.h"
#include "metricsd/tsdb/block_read.h"
#include "metricsd/tsdb/block_write.h"
#include "metricsd/tsdb/xor.h"

struct gen_series {
    struct obs_label labels[3];
    size_t nlabels;
    char *name, *inst, *job; /* heap: labels point at them, and the array gets sorted */
    struct mtd_sample *s;
    size_t n;
};

static uint64_t rng_state;

static uint64_t rng(void)
{
    /* xorshift64* */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1DULL;
}

static double rng_unit(void)
{
    return (double)(rng() >> 11) / 9007199254740992.0; /* [0, 1) */
}

static double from_bits(uint64_t b)
{
    double v;
    memcpy(&v, &b, sizeof v);
    return v;
}

/* Go's fmt %g for a float64 (what promtool prints): strconv.FormatFloat(v, 'g', -1, 64), i.e.
 * the shortest digits that round-trip, in %e form (exponent of at least two digits) when the
 * decimal exponent is < -4 or >= 6 -- the precision Go uses for that decision when the
 * shortest form was asked for -- and in %f form otherwise; NaN, +Inf, -Inf as Go spells them. */
static void go_g(char *out, size_t cap, double v)
{
    if (isnan(v)) {
        snprintf(out, cap, "NaN");
        return;
    }
    if (isinf(v)) {
        snprintf(out, cap, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    if (v == 0) {
        snprintf(out, cap, signbit(v) ? "-0" : "0");
        return;
    }
    char e[64];
    int p;
    for (p = 1; p <= 17; p++) {
        snprintf(e, sizeof e, "%.*e", p - 1, v);
        if (strtod(e, NULL) == v)
            break;
    }
    /* e = [-]d[.ddd]e[+-]XX */
    const char *s = e;
    int neg = 0;
    if (*s == '-') {
        neg = 1;
        s++;
    }
    char digs[32];
    int nd = 0;
    for (; *s && *s != 'e'; s++)
        if (*s != '.')
            digs[nd++] = *s;
    while (nd > 1 && digs[nd - 1] == '0')
        nd--;
    digs[nd] = '\0';
    int exp = atoi(s + 1);
    int eprec = 6;
    if (exp < -4 || exp >= eprec) {
        snprintf(out, cap, "%s%c%s%s%se%c%02d", neg ? "-" : "", digs[0], nd > 1 ? "." : "",
                 nd > 1 ? digs + 1 : "", "", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
        return;
    }
    int dp = exp + 1;
    char buf[64];
    size_t k = 0;
    if (neg)
        buf[k++] = '-';
    if (dp <= 0) {
        buf[k++] = '0';
        buf[k++] = '.';
        for (int i = 0; i < -dp; i++)
            buf[k++] = '0';
        for (int i = 0; i < nd; i++)
            buf[k++] = digs[i];
    } else if (dp >= nd) {
        for (int i = 0; i < nd; i++)
            buf[k++] = digs[i];
        for (int i = nd; i < dp; i++)
            buf[k++] = '0';
    } else {
        for (int i = 0; i < dp; i++)
            buf[k++] = digs[i];
        buf[k++] = '.';
        for (int i = dp; i < nd; i++)
            buf[k++] = digs[i];
    }
    buf[k] = '\0';
    snprintf(out, cap, "%s", buf);
}

static void print_labels(const struct obs_label *l, size_t n)
{
    putchar('{');
    for (size_t i = 0; i < n; i++) {
        printf("%s%s=\"", i ? ", " : "", l[i].name);
        for (const char *p = l[i].value; *p; p++) {
            if (*p == '"' || *p == '\\')
                putchar('\\');
            putchar(*p);
        }
        putchar('"');
    }
    putchar('}');
}

struct verify_ctx {
    struct gen_series *g;
    size_t ng;
    size_t seen;
    int bad;
};

static int same_value(double a, double b)
{
    return memcmp(&a, &b, sizeof a) == 0;
}

/* Series arrive in label order, as g is sorted: compare with g[seen]. */
static int verify_fn(void *arg, const struct obs_label *labels, size_t nlabels,
                     const struct mtd_sample *s, size_t n)
{
    struct verify_ctx *c = arg;
    if (c->seen >= c->ng) {
        c->bad = 1;
        return 1;
    }
    struct gen_series *g = &c->g[c->seen++];
    if (g->nlabels != nlabels || n != g->n) {
        c->bad = 1;
        return 1;
    }
    for (size_t k = 0; k < nlabels; k++)
        if (strcmp(g->labels[k].name, labels[k].name) ||
            strcmp(g->labels[k].value, labels[k].value))
            c->bad = 1;
    for (size_t j = 0; j < n; j++)
        if (s[j].t != g->s[j].t || !same_value(s[j].v, g->s[j].v))
            c->bad = 1;
    return c->bad;
}

static int cmp_gen(const void *x, const void *y)
{
    const struct gen_series *a = x, *b = y;
    size_t n = a->nlabels < b->nlabels ? a->nlabels : b->nlabels;
    for (size_t i = 0; i < n; i++) {
        int c = strcmp(a->labels[i].name, b->labels[i].name);
        if (!c)
            c = strcmp(a->labels[i].value, b->labels[i].value);
        if (c)
            return c;
    }
    return (a->nlabels > b->nlabels) - (a->nlabels < b->nlabels);
}

static int dump_fn(void *arg, const struct obs_label *labels, size_t nlabels,
                   const struct mtd_sample *s, size_t n)
{
    char num[64];
    (void)arg;
    for (size_t k = 0; k < n; k++) {
        print_labels(labels, nlabels);
        go_g(num, sizeof num, s[k].v);
        printf(" %s %lld\n", num, (long long)s[k].t);
    }
    return 0;
}

static int reencode_fn(void *arg, const struct obs_label *labels, size_t nlabels,
                       const struct mtd_tsdb_chunk_in *c, size_t n)
{
    size_t *diff = arg;
    (void)labels, (void)nlabels;
    for (size_t i = 0; i < n; i++) {
        struct mtd_tsdb_xor_enc e;
        struct mtd_tsdb_xor_iter it;
        int64_t t;
        double v;
        if (mtd_tsdb_xor_enc_init(&e) != 0)
            return 1;
        mtd_tsdb_xor_iter_init(&it, c[i].data, c[i].len);
        while (mtd_tsdb_xor_iter_next(&it, &t, &v) == 1)
            mtd_tsdb_xor_enc_append(&e, t, v);
        size_t len;
        const uint8_t *b = mtd_tsdb_xor_enc_bytes(&e, &len);
        if (len != c[i].len || memcmp(b, c[i].data, len) != 0)
            (*diff)++;
        mtd_tsdb_xor_enc_deinit(&e);
    }
    return 0;
}

/* -dump: read a block with block_read.h and print it. */
static int dump_block(const char *path)
{
    struct mtd_tsdb_block *b = NULL;
    struct obs_err err = {0};
    if (mtd_tsdb_block_open(path, &b, &err) != 0 || mtd_tsdb_block_verify(b, &err) != 0 ||
        mtd_tsdb_block_select(b, NULL, 0, INT64_MIN, INT64_MAX, dump_fn, NULL, &err) != 0) {
        fprintf(stderr, "tsdb-write: %s\n", err.msg);
        mtd_tsdb_block_close(b);
        return 1;
    }
    size_t diff = 0;
    if (mtd_tsdb_block_select_chunks(b, NULL, 0, INT64_MIN, INT64_MAX, reencode_fn, &diff, &err) !=
        0) {
        fprintf(stderr, "tsdb-write: %s\n", err.msg);
        mtd_tsdb_block_close(b);
        return 1;
    }
    const struct mtd_tsdb_block_meta *m = mtd_tsdb_block_meta(b);
    fprintf(stderr, "ulid=%s series=%llu samples=%llu chunks=%llu verify=ok reencode_diff=%zu\n",
            m->ulid, (unsigned long long)m->nseries, (unsigned long long)m->nsamples,
            (unsigned long long)m->nchunks, diff);
    mtd_tsdb_block_close(b);
    fflush(stdout);
    return 0;
}

int main(int argc, char **argv)
{
    long nseries = 50, nsamples = 500, interval = 15000, seed = 1;
    long long start = 1700000000000LL;
    int special = 0, print = 0, verify = 0, intwalk = 0;
    const char *dir = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-series") && v) {
            nseries = atol(v);
            i++;
        } else if (!strcmp(a, "-samples") && v) {
            nsamples = atol(v);
            i++;
        } else if (!strcmp(a, "-interval-ms") && v) {
            interval = atol(v);
            i++;
        } else if (!strcmp(a, "-start-ms") && v) {
            start = atoll(v);
            i++;
        } else if (!strcmp(a, "-seed") && v) {
            seed = atol(v);
            i++;
        } else if (!strcmp(a, "-walk") && v) {
            intwalk = !strcmp(v, "int") ? 1 : !strcmp(v, "dec") ? 2 : 0;
            i++;
        } else if (!strcmp(a, "-special")) {
            special = 1;
        } else if (!strcmp(a, "-print")) {
            print = 1;
        } else if (!strcmp(a, "-verify")) {
            verify = 1;
        } else if (!strcmp(a, "-dump") && v) {
            return dump_block(v);
        } else if (a[0] != '-' && dir == NULL) {
            dir = a;
        } else {
            fprintf(stderr, "usage: tsdb-write [-series N] [-samples N] [-interval-ms N] "
                            "[-start-ms N] [-seed N] [-walk float|dec|int] [-special] [-print] "
                            "[-verify] DIR | -dump BLOCKDIR\n");
            return 1;
        }
    }
    if (dir == NULL || nseries < 0 || nsamples < 1 || interval < 1) {
        fprintf(stderr, "tsdb-write: need DIR and positive sizes\n");
        return 1;
    }
    rng_state = 0x9E3779B97F4A7C15ULL ^ (uint64_t)seed;
    size_t nspecial = special ? 3 : 0;
    size_t ng = (size_t)nseries + nspecial;
    struct gen_series *g = calloc(ng ? ng : 1, sizeof *g);
    if (g == NULL)
        return 1;
    for (size_t i = 0; i < (size_t)nseries; i++) {
        struct gen_series *s = &g[i];
        s->name = malloc(64);
        s->inst = malloc(64);
        s->job = malloc(64);
        if (!s->name || !s->inst || !s->job)
            return 1;
        snprintf(s->name, 64, "tsdb_test_metric_%zu", i % 7);
        snprintf(s->inst, 64, "host-%05zu", i);
        snprintf(s->job, 64, "job-%zu", i % 3);
        s->labels[0] = (struct obs_label){"__name__", s->name};
        s->labels[1] = (struct obs_label){"instance", s->inst};
        s->labels[2] = (struct obs_label){"job", s->job};
        s->nlabels = 3;
        s->n = (size_t)nsamples;
        s->s = malloc(s->n * sizeof *s->s);
        if (s->s == NULL)
            return 1;
        double v = intwalk == 1 ? (double)(rng() % 1000) : rng_unit() * 100.0;
        for (size_t k = 0; k < s->n; k++) {
            s->s[k].t = start + (int64_t)k * interval;
            s->s[k].v = intwalk == 2 ? round(v * 100) / 100 : v;
            if (intwalk == 1)
                v += (double)(rng() % 10);
            else
                v += rng_unit() * 2.0 - 1.0;
        }
    }
    if (special) {
        /* 1: special values; 2: irregular timestamps (small, huge and negative-crossing
         * deltas); 3: a single sample. */
        static const char *names[] = {"tsdb_edge_values", "tsdb_edge_times", "tsdb_edge_single"};
        for (size_t j = 0; j < nspecial; j++) {
            struct gen_series *s = &g[nseries + j];
            s->name = strdup(names[j]);
            s->labels[0] = (struct obs_label){"__name__", s->name};
            s->nlabels = 1;
        }
        const double vals[] = {0.0,      -0.0,          NAN,   from_bits(0x7ff0000000000002ULL),
                               INFINITY, -INFINITY,     1e300, -1e-300,
                               5e-324,   123456789.125, 0.1,   1e21,
                               1e20,     100000,        1e6,   0.0001,
                               0.00001,  -42.5,         3,     3};
        struct gen_series *s = &g[nseries];
        s->n = sizeof vals / sizeof vals[0];
        s->s = malloc(s->n * sizeof *s->s);
        for (size_t k = 0; k < s->n; k++)
            s->s[k] = (struct mtd_sample){start + (int64_t)k * 1000, vals[k]};
        s = &g[nseries + 1];
        const int64_t ts[] = {-5000000000000LL,
                              -4000,
                              -3999,
                              -1,
                              0,
                              1,
                              2,
                              10000,
                              10001,
                              1000000,
                              90000000000LL,
                              90000000001LL,
                              90000008193LL,
                              90000073730LL,
                              90000600000LL,
                              1700000000000LL};
        s->n = sizeof ts / sizeof ts[0];
        s->s = malloc(s->n * sizeof *s->s);
        for (size_t k = 0; k < s->n; k++)
            s->s[k] = (struct mtd_sample){ts[k], (double)k * 1.5};
        s = &g[nseries + 2];
        s->n = 1;
        s->s = malloc(sizeof *s->s);
        s->s[0] = (struct mtd_sample){start, 7};
    }

    struct mtd_tsdb_series_in *in = calloc(ng ? ng : 1, sizeof *in);
    if (in == NULL)
        return 1;
    for (size_t i = 0; i < ng; i++)
        in[i] = (struct mtd_tsdb_series_in){
            .labels = g[i].labels, .nlabels = g[i].nlabels, .samples = g[i].s, .nsamples = g[i].n};
    struct mtd_tsdb_write_opts o = {.no_fsync = 1};
    struct mtd_tsdb_block_info info;
    struct obs_err err = {0};
    if (mtd_tsdb_block_write(dir, in, ng, &o, &info, &err) != 0) {
        fprintf(stderr, "tsdb-write: %s\n", err.msg);
        return 1;
    }
    fprintf(stderr,
            "ulid=%s series=%llu samples=%llu chunks=%llu chunk_bytes=%llu index_bytes=%llu "
            "chunk_bytes_per_sample=%.3f index_bytes_per_sample=%.3f\n",
            info.ulid, (unsigned long long)info.nseries, (unsigned long long)info.nsamples,
            (unsigned long long)info.nchunks, (unsigned long long)info.chunk_bytes,
            (unsigned long long)info.index_bytes, (double)info.chunk_bytes / (double)info.nsamples,
            (double)info.index_bytes / (double)info.nsamples);

    qsort(g, ng, sizeof *g, cmp_gen);
    if (print) {
        char num[64];
        for (size_t i = 0; i < ng; i++)
            for (size_t k = 0; k < g[i].n; k++) {
                print_labels(g[i].labels, g[i].nlabels);
                go_g(num, sizeof num, g[i].s[k].v);
                printf(" %s %lld\n", num, (long long)g[i].s[k].t);
            }
    }
    if (verify) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, info.ulid);
        struct mtd_tsdb_block *b = NULL;
        if (mtd_tsdb_block_open(path, &b, &err) != 0 || mtd_tsdb_block_verify(b, &err) != 0) {
            fprintf(stderr, "tsdb-write: verify: %s\n", err.msg);
            return 1;
        }
        struct verify_ctx c = {g, ng, 0, 0};
        if (mtd_tsdb_block_select(b, NULL, 0, INT64_MIN, INT64_MAX, verify_fn, &c, &err) != 0 ||
            c.bad || c.seen != ng) {
            fprintf(stderr, "tsdb-write: verify: read-back mismatch (%s)\n", err.msg);
            return 1;
        }
        mtd_tsdb_block_close(b);
        fprintf(stderr, "verify=ok\n");
    }
    for (size_t i = 0; i < ng; i++) {
        free(g[i].s);
        free(g[i].name);
        free(g[i].inst);
        free(g[i].job);
    }
    free(g);
    free(in);
    fflush(stdout);
    return 0;
}
