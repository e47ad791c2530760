/*
 * promqltest.c -- runs Prometheus' promqltest scripts (promql/promqltest/testdata/ files)
 * against metricsd's PromQL engine and prints "file: passed/total" per file.
 *
 *   promqltest [-v] file.test...      -v prints each failing command and why
 *
 * Data is loaded into a small in-memory backend implementing storage.h (the same interface
 * the engine reads from the head), so the runner exercises exactly the engine code the
 * querier runs. Format (see ../shared/conformance/README.md): load/clear/eval instant|range
 * with expected series lines or `expect` lines. As upstream's runner does, every passing
 * instant query is re-run as a range query (t-1m..t+1m step 1m) and compared at t.
 * Native-histogram samples ({{...}}) are served through mtd_ql_opts.hist_select. Prometheus'
 * experimental features (duration expressions, info(), fill modifiers, anchored/smoothed,
 * __type__/__unit__) are always on in the engine, so no per-file feature directives exist.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <ctype.h>
#include <math.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/obs_arena.h"
#include "core/obs_mem.h"
#include "core/obs_time.h"
#include "labels/obs_labels.h"
#include "metricsd/ql/mtd_ql.h"
#include "metricsd/storage.h"

/* ---------------------------------------------------------------- memory storage */
struct mseries {
    struct obs_label *l;
    size_t nl;
    struct mtd_sample *s;
    size_t ns, cap;
    int64_t *ht;                 /* histogram samples */
    const struct mtd_ql_hist **hh;
    size_t hn, hcap;
};

/* Histograms (loaded and expected) live here until the file ends. */
static struct obs_arena *g_harena;

static void *halloc(size_t n)
{
    if (!g_harena)
        g_harena = obs_arena_new(0);
    void *p = obs_arena_alloc(g_harena, n ? n : 1);
    memset(p, 0, n ? n : 1);
    return p;
}

struct memstore {
    struct mseries *v;
    size_t n, cap;
};

static struct memstore g_store;

static int mem_select(struct mtd_storage *st, const char *tenant, const struct obs_matcher *ms,
                      size_t nms, const struct mtd_select_opts *o, struct mtd_series_set **out,
                      struct obs_err *err)
{
    (void)st; (void)tenant; (void)err;
    struct mtd_series_set *set = obs_calloc(1, sizeof(*set));
    set->arena = obs_arena_new(0);
    set->series = obs_arena_calloc(set->arena, (g_store.n + 1) * sizeof(struct mtd_series));
    for (size_t i = 0; i < g_store.n; i++) {
        struct mseries *s = &g_store.v[i];
        int ok = 1;
        for (size_t k = 0; k < nms && ok; k++)
            ok = obs_matcher_matches(&ms[k], obs_labels_get(s->l, s->nl, ms[k].name));
        if (!ok)
            continue;
        size_t first = 0, cnt = 0;
        while (first < s->ns && s->s[first].t < o->mint)
            first++;
        while (first + cnt < s->ns && s->s[first + cnt].t <= o->maxt)
            cnt++;
        if (cnt == 0)
            continue;
        struct mtd_series *d = &set->series[set->nseries++];
        d->labels = s->l;
        d->nlabels = s->nl;
        struct mtd_sample *cp = obs_arena_alloc(set->arena, cnt * sizeof(*cp));
        memcpy(cp, s->s + first, cnt * sizeof(*cp));
        d->samples = cp;
        d->nsamples = cnt;
        set->nsamples_total += cnt;
    }
    *out = set;
    return 0;
}

/* Histogram source for the engine (mtd_ql_opts.hist_select). Result arrays are kept in
 * g_harena until the file ends. */
static int mem_hist_select(void *ctx, const char *tenant, const struct obs_matcher *ms,
                           size_t nms, int64_t mint, int64_t maxt,
                           const struct mtd_ql_hseries **out, size_t *n)
{
    (void)ctx; (void)tenant; (void)mint; (void)maxt;
    struct mtd_ql_hseries *r = halloc((g_store.n + 1) * sizeof(*r));
    size_t k = 0;
    for (size_t i = 0; i < g_store.n; i++) {
        struct mseries *s = &g_store.v[i];
        if (s->hn == 0)
            continue;
        int ok = 1;
        for (size_t j = 0; j < nms && ok; j++)
            ok = obs_matcher_matches(&ms[j], obs_labels_get(s->l, s->nl, ms[j].name));
        if (!ok)
            continue;
        r[k].labels = s->l;
        r[k].nlabels = s->nl;
        r[k].t = s->ht;
        r[k].h = s->hh;
        r[k++].n = s->hn;
    }
    *out = r;
    *n = k;
    return 0;
}

static const struct mtd_storage_ops mem_ops = {.select = mem_select};
static struct mtd_storage g_st = {&mem_ops, NULL};

static void store_clear(void)
{
    for (size_t i = 0; i < g_store.n; i++) {
        for (size_t k = 0; k < g_store.v[i].nl; k++) {
            free((char *)g_store.v[i].l[k].name);
            free((char *)g_store.v[i].l[k].value);
        }
        free(g_store.v[i].l);
        free(g_store.v[i].s);
        free(g_store.v[i].ht);
        free(g_store.v[i].hh);
    }
    free(g_store.v);
    memset(&g_store, 0, sizeof(g_store));
}

static int lab_cmp(const struct obs_label *a, size_t na, const struct obs_label *b, size_t nb)
{
    size_t n = na < nb ? na : nb;
    for (size_t i = 0; i < n; i++) {
        int c = strcmp(a[i].name, b[i].name);
        if (c)
            return c;
        c = strcmp(a[i].value, b[i].value);
        if (c)
            return c;
    }
    return (int)na - (int)nb;
}

static struct mseries *store_series(struct obs_label *l, size_t nl)
{
    for (size_t i = 0; i < g_store.n; i++)
        if (lab_cmp(g_store.v[i].l, g_store.v[i].nl, l, nl) == 0) {
            for (size_t k = 0; k < nl; k++) {
                free((char *)l[k].name);
                free((char *)l[k].value);
            }
            free(l);
            return &g_store.v[i];
        }
    if (g_store.n == g_store.cap) {
        g_store.cap = g_store.cap ? g_store.cap * 2 : 16;
        g_store.v = realloc(g_store.v, g_store.cap * sizeof(*g_store.v));
    }
    /* keep series sorted by labels (storage.h contract) */
    size_t pos = 0;
    while (pos < g_store.n && lab_cmp(g_store.v[pos].l, g_store.v[pos].nl, l, nl) < 0)
        pos++;
    memmove(&g_store.v[pos + 1], &g_store.v[pos], (g_store.n - pos) * sizeof(*g_store.v));
    g_store.n++;
    struct mseries *s = &g_store.v[pos];
    memset(s, 0, sizeof(*s));
    s->l = l;
    s->nl = nl;
    return s;
}

static void series_add(struct mseries *s, int64_t t, double v)
{
    /* insert keeping order; replace duplicates */
    size_t pos = s->ns;
    while (pos > 0 && s->s[pos - 1].t > t)
        pos--;
    if (pos > 0 && s->s[pos - 1].t == t) {
        s->s[pos - 1].v = v;
        return;
    }
    if (s->ns == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 16;
        s->s = realloc(s->s, s->cap * sizeof(*s->s));
    }
    memmove(&s->s[pos + 1], &s->s[pos], (s->ns - pos) * sizeof(*s->s));
    s->s[pos].t = t;
    s->s[pos].v = v;
    s->ns++;
}

static void series_add_hist(struct mseries *s, int64_t t, const struct mtd_ql_hist *h)
{
    if (s->hn == s->hcap) {
        s->hcap = s->hcap ? s->hcap * 2 : 16;
        s->ht = realloc(s->ht, s->hcap * sizeof(*s->ht));
        s->hh = realloc(s->hh, s->hcap * sizeof(*s->hh));
    }
    s->ht[s->hn] = t;
    s->hh[s->hn++] = h;
}

/* ---------------------------------------------------------------- parsing helpers */
static const char *skip_ws(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

/* Parse `name{a="b", ...}` at *pp into a sorted, malloc'd label array. Returns 0 or -1. */
static int parse_series_desc(const char **pp, struct obs_label **out, size_t *nout)
{
    const char *p = skip_ws(*pp);
    struct obs_label *l = NULL;
    size_t n = 0;
    const char *s = p;
    while (*p && (isalnum((unsigned char)*p) || *p == '_' || *p == ':'))
        p++;
    if (p > s) {
        l = realloc(l, (n + 1) * sizeof(*l));
        l[n].name = strdup("__name__");
        l[n++].value = strndup(s, (size_t)(p - s));
    }
    if (*p == '{') {
        p++;
        for (;;) {
            p = skip_ws(p);
            if (*p == '}') {
                p++;
                break;
            }
            char *name;
            if (*p == '"') {
                size_t used;
                if (obs_go_unquote(p, strlen(p), &name, &used) < 0)
                    return -1;
                p += used;
                p = skip_ws(p);
                if (*p == ',' || *p == '}') {
                    l = realloc(l, (n + 1) * sizeof(*l));
                    l[n].name = strdup("__name__");
                    l[n++].value = strdup(name);
                    obs_free(name);
                    if (*p == ',')
                        p++;
                    continue;
                }
                char *tmp = strdup(name);
                obs_free(name);
                name = tmp;
            } else {
                s = p;
                while (*p && (isalnum((unsigned char)*p) || *p == '_'))
                    p++;
                if (p == s)
                    return -1;
                name = strndup(s, (size_t)(p - s));
            }
            p = skip_ws(p);
            if (*p != '=')
                return -1;
            p = skip_ws(p + 1);
            char *val;
            size_t used;
            if (obs_go_unquote(p, strlen(p), &val, &used) < 0)
                return -1;
            p += used;
            l = realloc(l, (n + 1) * sizeof(*l));
            l[n].name = name;
            l[n++].value = strdup(val);
            obs_free(val);
            p = skip_ws(p);
            if (*p == ',')
                p++;
        }
    }
    if (n == 0 && p == *pp)
        return -1;
    obs_labels_sort(l, n);
    *out = l;
    *nout = n;
    *pp = p;
    return 0;
}

#define V_ABSENT 1
#define V_STALE 2
struct val {
    double v;
    int flags;
    const struct mtd_ql_hist *h;
    int crh_set; /* counter_reset_hint given explicitly */
};

static int parse_num(const char *s, size_t n, double *out);

/* ---------------------------------------------------------------- histogram literals */
/* Parse a bracketed list "[a b c]" of numbers at *pp. Returns count or -1. */
static int parse_list(const char **pp, double **out)
{
    const char *p = skip_ws(*pp);
    if (*p != '[')
        return -1;
    p++;
    double *v = NULL;
    int n = 0;
    for (;;) {
        p = skip_ws(p);
        if (*p == ']') {
            p++;
            break;
        }
        const char *st = p;
        while (*p && *p != ' ' && *p != '\t' && *p != ']')
            p++;
        double d;
        if (parse_num(st, (size_t)(p - st), &d) < 0) {
            free(v);
            return -1;
        }
        v = realloc(v, (size_t)(n + 1) * sizeof(double));
        v[n++] = d;
    }
    *pp = p;
    *out = v;
    return n;
}

static void set_buckets(int32_t **idx, double **cnt, size_t *n, const double *v, int nv,
                        int32_t off)
{
    *idx = halloc((size_t)nv * sizeof(int32_t));
    *cnt = halloc((size_t)nv * sizeof(double));
    for (int i = 0; i < nv; i++) {
        (*idx)[i] = off + i;
        (*cnt)[i] = v[i];
    }
    *n = (size_t)nv;
}

/* Parse "{{schema:0 sum:1 count:2 buckets:[..] ...}}" at *pp (pointing at "{{"). */
static struct mtd_ql_hist *parse_hist(const char **pp, int *crh_set)
{
    const char *p = *pp + 2;
    struct mtd_ql_hist *h = halloc(sizeof(*h));
    double *pb = NULL, *nb = NULL;
    int npb = 0, nnb = 0;
    int32_t off = 0, noff = 0;
    *crh_set = 0;
    for (;;) {
        p = skip_ws(p);
        if (p[0] == '}' && p[1] == '}') {
            p += 2;
            break;
        }
        const char *k = p;
        while (*p && *p != ':')
            p++;
        if (!*p)
            return NULL;
        size_t kl = (size_t)(p - k);
        p = skip_ws(p + 1);
        if (*p == '[') {
            double *lst;
            int n = parse_list(&p, &lst);
            if (n < 0)
                return NULL;
            if (kl == 7 && strncmp(k, "buckets", 7) == 0) {
                pb = lst;
                npb = n;
            } else if (kl == 9 && strncmp(k, "n_buckets", 9) == 0) {
                nb = lst;
                nnb = n;
            } else if (kl == 13 && strncmp(k, "custom_values", 13) == 0) {
                h->custom = halloc((size_t)n * sizeof(double));
                memcpy(h->custom, lst, (size_t)n * sizeof(double));
                h->ncustom = (size_t)n;
                free(lst);
            } else {
                free(lst);
            }
            continue;
        }
        const char *st = p;
        while (*p && *p != ' ' && *p != '\t' && !(p[0] == '}' && p[1] == '}'))
            p++;
        size_t vl = (size_t)(p - st);
        if (kl == 18 && strncmp(k, "counter_reset_hint", 18) == 0) {
            *crh_set = 1;
            if (strncmp(st, "reset", vl) == 0 && vl == 5)
                h->crh = MTD_QL_CRH_RESET;
            else if (strncmp(st, "not_reset", vl) == 0 && vl == 9)
                h->crh = MTD_QL_CRH_NOT_RESET;
            else if (strncmp(st, "gauge", vl) == 0 && vl == 5)
                h->crh = MTD_QL_CRH_GAUGE;
            continue;
        }
        double d;
        if (parse_num(st, vl, &d) < 0)
            return NULL;
        if (kl == 6 && strncmp(k, "schema", 6) == 0) h->schema = (int32_t)d;
        else if (kl == 3 && strncmp(k, "sum", 3) == 0) h->sum = d;
        else if (kl == 5 && strncmp(k, "count", 5) == 0) h->count = d;
        else if (kl == 8 && strncmp(k, "z_bucket", 8) == 0) h->zero_count = d;
        else if (kl == 10 && strncmp(k, "z_bucket_w", 10) == 0) h->zero_threshold = d;
        else if (kl == 6 && strncmp(k, "offset", 6) == 0) off = (int32_t)d;
        else if (kl == 8 && strncmp(k, "n_offset", 8) == 0) noff = (int32_t)d;
    }
    set_buckets(&h->pidx, &h->pcnt, &h->np, pb, npb, off);
    set_buckets(&h->nidx, &h->ncnt, &h->nn, nb, nnb, noff);
    free(pb);
    free(nb);
    *pp = p;
    return h;
}

/* Bucket-wise x + f*y for literal expansion (same schema assumed). */
static void lit_merge(int32_t **oi, double **oc, size_t *on, const int32_t *xi,
                      const double *xc, size_t xn, const int32_t *yi, const double *yc,
                      size_t yn, double f)
{
    int32_t *ri = halloc((xn + yn + 1) * sizeof(int32_t));
    double *rc = halloc((xn + yn + 1) * sizeof(double));
    size_t i = 0, j = 0, n = 0;
    while (i < xn || j < yn) {
        if (j >= yn || (i < xn && xi[i] < yi[j])) {
            ri[n] = xi[i];
            rc[n++] = xc[i++];
        } else if (i >= xn || yi[j] < xi[i]) {
            ri[n] = yi[j];
            rc[n++] = f * yc[j++];
        } else {
            ri[n] = xi[i];
            rc[n++] = xc[i++] + f * yc[j++];
        }
    }
    *oi = ri;
    *oc = rc;
    *on = n;
}

/* Bucket list (xi, xc, n) mapped to a schema lower by shift (Prometheus' schema reduction). */
static void lit_reduce(int32_t **oi, double **oc, size_t *on, const int32_t *xi,
                       const double *xc, size_t n, int shift)
{
    int32_t *ri = halloc((n + 1) * sizeof(int32_t));
    double *rc = halloc((n + 1) * sizeof(double));
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t idx = ((xi[i] - 1) >> shift) + 1;
        if (k > 0 && ri[k - 1] == idx) {
            rc[k - 1] += xc[i];
            continue;
        }
        ri[k] = idx;
        rc[k++] = xc[i];
    }
    *oi = ri;
    *oc = rc;
    *on = k;
}

static struct mtd_ql_hist *lit_add(const struct mtd_ql_hist *x, const struct mtd_ql_hist *y,
                                   double f)
{
    struct mtd_ql_hist *r = halloc(sizeof(*r));
    if (y->schema > x->schema && x->schema != MTD_QL_SCHEMA_CUSTOM) {
        struct mtd_ql_hist *yy = halloc(sizeof(*yy));
        *yy = *y;
        int shift = y->schema - x->schema;
        lit_reduce(&yy->pidx, &yy->pcnt, &yy->np, y->pidx, y->pcnt, y->np, shift);
        lit_reduce(&yy->nidx, &yy->ncnt, &yy->nn, y->nidx, y->ncnt, y->nn, shift);
        yy->schema = x->schema;
        y = yy;
    }
    *r = *x;
    r->count = x->count + f * y->count;
    r->sum = x->sum + f * y->sum;
    r->zero_count = x->zero_count + f * y->zero_count;
    lit_merge(&r->pidx, &r->pcnt, &r->np, x->pidx, x->pcnt, x->np, y->pidx, y->pcnt, y->np, f);
    lit_merge(&r->nidx, &r->ncnt, &r->nn, x->nidx, x->ncnt, x->nn, y->nidx, y->ncnt, y->nn, f);
    return r;
}

static int parse_num(const char *s, size_t n, double *out)
{
    char buf[64];
    if (n == 0 || n >= sizeof(buf))
        return -1;
    memcpy(buf, s, n);
    buf[n] = 0;
    const char *b = buf;
    int neg = 0;
    if (*b == '-' || *b == '+') {
        neg = *b == '-';
        b++;
    }
    if (strcasecmp(b, "inf") == 0) {
        *out = neg ? -INFINITY : INFINITY;
        return 0;
    }
    if (strcasecmp(b, "nan") == 0) {
        *out = NAN;
        return 0;
    }
    char *end;
    double v = strtod(buf, &end);
    if (*end) {
        int64_t ms;
        if (obs_duration_parse_ms(buf, &ms) == 0) {
            *out = (double)ms / 1000.0;
            return 0;
        }
        return -1;
    }
    *out = v;
    return 0;
}

static int side_dec(const int32_t *ci, const double *cc, size_t cn, const int32_t *pi,
                    const double *pc, size_t pn)
{
    size_t j = 0;
    for (size_t i = 0; i < pn; i++) {
        while (j < cn && ci[j] < pi[i])
            j++;
        double v = j < cn && ci[j] == pi[i] ? cc[j] : 0;
        if (v < pc[i])
            return 1;
    }
    return 0;
}

static void tsdb_hints(struct val *v, int n)
{
    for (int k = 1; k < n; k++) {
        const struct mtd_ql_hist *c = v[k].h;
        const struct mtd_ql_hist *p = v[k - 1].h;
        if (!c || !p || (v[k].flags & V_ABSENT) || (v[k - 1].flags & V_ABSENT) || v[k].crh_set)
            continue;
        if (c->crh != MTD_QL_CRH_UNKNOWN || p->crh == MTD_QL_CRH_GAUGE)
            continue;
        if (c->schema != p->schema || c->count < p->count || c->zero_count < p->zero_count ||
            c->zero_threshold != p->zero_threshold || c->ncustom != p->ncustom ||
            side_dec(c->pidx, c->pcnt, c->np, p->pidx, p->pcnt, p->np) ||
            side_dec(c->nidx, c->ncnt, c->nn, p->nidx, p->ncnt, p->nn))
            continue;
        struct mtd_ql_hist *c2 = halloc(sizeof(*c2));
        *c2 = *c;
        c2->crh = MTD_QL_CRH_NOT_RESET;
        v[k].h = c2;
    }
}

/* Expand a values string ("1 2+3x4 _ stale _x3 {{...}}") into vals. Returns count or -1. */
static int parse_values(const char *p, struct val **out)
{
    struct val *v = NULL;
    size_t n = 0, cap = 0;
#define ADD(x, f)                                                                            \
    do {                                                                                     \
        if (n == cap) {                                                                      \
            cap = cap ? cap * 2 : 16;                                                        \
            v = realloc(v, cap * sizeof(*v));                                                \
        }                                                                                    \
        v[n].v = (x);                                                                        \
        v[n].h = NULL;                                                                       \
        v[n].crh_set = 0;                                                                    \
        v[n++].flags = (f);                                                                  \
    } while (0)
    for (;;) {
        p = skip_ws(p);
        if (!*p || *p == '\n' || *p == '#')
            break;
        if (p[0] == '{' && p[1] == '{') {
            /* native histogram: {{..}}, {{..}}xN, {{..}}+{{..}}xN, {{..}}-{{..}}xN */
            int crh_set;
            struct mtd_ql_hist *h = parse_hist(&p, &crh_set);
            if (!h)
                return -1;
            double f = 0;
            struct mtd_ql_hist *inc = NULL;
            if ((*p == '+' || *p == '-') && p[1] == '{') {
                f = *p == '+' ? 1 : -1;
                p++;
                int dummy;
                inc = parse_hist(&p, &dummy);
                if (!inc)
                    return -1;
            }
            long reps = 0;
            if (*p == 'x') {
                reps = strtol(p + 1, NULL, 10);
                while (*p && *p != ' ' && *p != '\t')
                    p++;
            }
            ADD(0, 0);
            v[n - 1].h = h;
            v[n - 1].crh_set = crh_set;
            struct mtd_ql_hist *cur = h;
            for (long i = 0; i < reps; i++) {
                if (inc) {
                    int gauge = cur->crh == MTD_QL_CRH_GAUGE || inc->crh == MTD_QL_CRH_GAUGE;
                    cur = lit_add(cur, inc, f);
                    if (gauge)
                        cur->crh = MTD_QL_CRH_GAUGE;
                    else if (f > 0)
                        cur->crh = MTD_QL_CRH_NOT_RESET;
                }
                ADD(0, 0);
                v[n - 1].h = cur;
            }
            continue;
        }
        const char *s = p;
        while (*p && *p != ' ' && *p != '\t' && *p != '\n')
            p++;
        size_t len = (size_t)(p - s);
        char tok[128];
        if (len >= sizeof(tok))
            return -1;
        memcpy(tok, s, len);
        tok[len] = 0;
        if (strcmp(tok, "_") == 0) {
            ADD(0, V_ABSENT);
            continue;
        }
        if (strcmp(tok, "stale") == 0) {
            ADD(0, V_STALE);
            continue;
        }
        char *x = strrchr(tok, 'x');
        if (x && x > tok && strchr("0123456789", x[1] ? x[1] : 'q') && x[1]) {
            /* a+bxN, a-bxN, axN, _xN, stalexN */
            long reps = strtol(x + 1, NULL, 10);
            *x = 0;
            if (strcmp(tok, "_") == 0) {
                for (long i = 0; i < reps; i++)
                    ADD(0, V_ABSENT);
                continue;
            }
            if (strcmp(tok, "stale") == 0) {
                for (long i = 0; i < reps; i++)
                    ADD(0, V_STALE);
                continue;
            }
            /* find the operator: last + or - not at the start and not after e/E */
            char *op = NULL;
            for (char *c = tok + 1; *c; c++)
                if ((*c == '+' || *c == '-') && c[-1] != 'e' && c[-1] != 'E')
                    op = c;
            double a, b = 0;
            if (op) {
                if (parse_num(tok, (size_t)(op - tok), &a) < 0 ||
                    parse_num(op + 1, strlen(op + 1), &b) < 0)
                    return -1;
                if (*op == '-')
                    b = -b;
            } else if (parse_num(tok, strlen(tok), &a) < 0) {
                return -1;
            }
            /* Prometheus accumulates by repeated addition */
            double cur = a;
            ADD(cur, 0);
            for (long i = 0; i < reps; i++) {
                cur += b;
                ADD(cur, 0);
            }
            continue;
        }
        double d;
        if (parse_num(tok, len, &d) < 0)
            return -1;
        ADD(d, 0);
    }
    *out = v;
    return (int)n;
#undef ADD
}

/* ---------------------------------------------------------------- load_with_nhcb */
/* Classic histogram series of a load_with_nhcb block, converted to native histograms with
 * custom buckets (schema -53) named after the base metric, as upstream's loader does. */
struct nhcb_in {
    char *base;             /* metric name without _bucket/_count/_sum */
    int kind;               /* 0 bucket, 1 count, 2 sum */
    double le;
    struct obs_label *l;    /* labels without __name__ and le (malloc'd copies) */
    size_t nl;
    double *v;
    unsigned char *has;
    int nv;
};
static struct nhcb_in *g_nh;
static size_t g_nnh;

static void nhcb_collect(const struct obs_label *lab, size_t nlab, const struct val *vals,
                         int nv)
{
    const char *name = obs_labels_get(lab, nlab, "__name__");
    if (!name)
        return;
    size_t n = strlen(name);
    int kind;
    size_t cut;
    if (n > 7 && strcmp(name + n - 7, "_bucket") == 0) {
        kind = 0;
        cut = 7;
    } else if (n > 6 && strcmp(name + n - 6, "_count") == 0) {
        kind = 1;
        cut = 6;
    } else if (n > 4 && strcmp(name + n - 4, "_sum") == 0) {
        kind = 2;
        cut = 4;
    } else {
        return;
    }
    double le = 0;
    if (kind == 0) {
        const char *ls = obs_labels_get(lab, nlab, "le");
        if (!ls || parse_num(ls, strlen(ls), &le) < 0 || isnan(le))
            return;
    }
    struct nhcb_in in;
    memset(&in, 0, sizeof(in));
    in.base = strndup(name, n - cut);
    in.kind = kind;
    in.le = le;
    in.l = calloc(nlab + 1, sizeof(*in.l));
    for (size_t i = 0; i < nlab; i++) {
        if (strcmp(lab[i].name, "__name__") == 0 || (kind == 0 && strcmp(lab[i].name, "le") == 0))
            continue;
        in.l[in.nl].name = lab[i].name;
        in.l[in.nl++].value = lab[i].value;
    }
    in.v = calloc((size_t)nv + 1, sizeof(double));
    in.has = calloc((size_t)nv + 1, 1);
    in.nv = nv;
    for (int k = 0; k < nv; k++) {
        if (vals[k].flags || vals[k].h)
            continue;
        in.v[k] = vals[k].v;
        in.has[k] = 1;
    }
    /* label strings are owned by the store once the series is stored: copy them */
    for (size_t i = 0; i < in.nl; i++) {
        in.l[i].name = strdup(in.l[i].name);
        in.l[i].value = strdup(in.l[i].value);
    }
    g_nh = realloc(g_nh, (g_nnh + 1) * sizeof(*g_nh));
    g_nh[g_nnh++] = in;
}

static int dbl_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void nhcb_flush(int64_t interval)
{
    unsigned char *done = calloc(g_nnh + 1, 1);
    for (size_t i = 0; i < g_nnh; i++) {
        if (done[i])
            continue;
        /* the group: same base and labels */
        size_t *mem = calloc(g_nnh, sizeof(size_t));
        size_t nm = 0;
        int maxv = 0;
        for (size_t j = i; j < g_nnh; j++) {
            if (done[j] || strcmp(g_nh[j].base, g_nh[i].base) != 0 ||
                lab_cmp(g_nh[j].l, g_nh[j].nl, g_nh[i].l, g_nh[i].nl) != 0)
                continue;
            done[j] = 1;
            mem[nm++] = j;
            if (g_nh[j].nv > maxv)
                maxv = g_nh[j].nv;
        }
        /* bounds */
        double *les = calloc(nm + 1, sizeof(double));
        size_t nle = 0;
        for (size_t k = 0; k < nm; k++) {
            const struct nhcb_in *x = &g_nh[mem[k]];
            if (x->kind != 0 || isinf(x->le))
                continue;
            int dup = 0;
            for (size_t z = 0; z < nle; z++)
                dup |= les[z] == x->le;
            if (!dup)
                les[nle++] = x->le;
        }
        qsort(les, nle, sizeof(double), dbl_cmp);
        struct obs_label *lab = calloc(g_nh[i].nl + 2, sizeof(*lab));
        size_t nlab = 0;
        lab[nlab].name = strdup("__name__");
        lab[nlab++].value = strdup(g_nh[i].base);
        for (size_t k = 0; k < g_nh[i].nl; k++) {
            lab[nlab].name = strdup(g_nh[i].l[k].name);
            lab[nlab++].value = strdup(g_nh[i].l[k].value);
        }
        obs_labels_sort(lab, nlab);
        struct mseries *s = NULL;
        for (int t = 0; t < maxv; t++) {
            double *cum = calloc(nle + 2, sizeof(double));
            int any = 0, has_count = 0, has_inf = 0;
            double count = 0, sum = 0, inf = 0;
            for (size_t k = 0; k < nm; k++) {
                const struct nhcb_in *x = &g_nh[mem[k]];
                if (t >= x->nv || !x->has[t])
                    continue;
                if (x->kind == 1) {
                    count = x->v[t];
                    has_count = 1;
                } else if (x->kind == 2) {
                    sum = x->v[t];
                } else if (isinf(x->le) && x->le > 0) {
                    inf = x->v[t];
                    has_inf = 1;
                    any = 1;
                } else {
                    for (size_t z = 0; z < nle; z++)
                        if (les[z] == x->le)
                            cum[z] = x->v[t];
                    any = 1;
                }
            }
            if (!any) {
                free(cum);
                continue;
            }
            if (!has_inf)
                inf = nle ? cum[nle - 1] : 0;
            cum[nle] = inf;
            struct mtd_ql_hist *h = halloc(sizeof(*h));
            h->schema = MTD_QL_SCHEMA_CUSTOM;
            h->custom = halloc((nle + 1) * sizeof(double));
            memcpy(h->custom, les, nle * sizeof(double));
            h->ncustom = nle;
            h->pidx = halloc((nle + 1) * sizeof(int32_t));
            h->pcnt = halloc((nle + 1) * sizeof(double));
            double prev = 0;
            for (size_t z = 0; z <= nle; z++) {
                h->pidx[z] = (int32_t)z;
                h->pcnt[z] = cum[z] - prev;
                prev = cum[z];
            }
            h->np = nle + 1;
            h->count = has_count ? count : inf;
            h->sum = sum;
            free(cum);
            if (!s) {
                struct obs_label *cp = calloc(nlab + 1, sizeof(*cp));
                for (size_t k = 0; k < nlab; k++) {
                    cp[k].name = strdup(lab[k].name);
                    cp[k].value = strdup(lab[k].value);
                }
                s = store_series(cp, nlab);
            }
            series_add_hist(s, (int64_t)t * interval, h);
        }
        for (size_t k = 0; k < nlab; k++) {
            free((char *)lab[k].name);
            free((char *)lab[k].value);
        }
        free(lab);
        free(les);
        free(mem);
    }
    free(done);
    for (size_t i = 0; i < g_nnh; i++) {
        free(g_nh[i].base);
        for (size_t k = 0; k < g_nh[i].nl; k++) {
            free((char *)g_nh[i].l[k].name);
            free((char *)g_nh[i].l[k].value);
        }
        free(g_nh[i].l);
        free(g_nh[i].v);
        free(g_nh[i].has);
    }
    free(g_nh);
    g_nh = NULL;
    g_nnh = 0;
}

/* ---------------------------------------------------------------- test commands */
struct expect_series {
    struct obs_label *l;
    size_t nl;
    struct val *v;
    int nv;
    int scalar; /* a bare value line */
};

struct evalcmd {
    int line;
    int range;
    int64_t t, start, end, step;
    char *query;
    int fail, warn, no_warn, info, no_info, ordered;
    char *fail_msg, *fail_regex, *expect_string;
    int has_string;
    int range_vector;
    int64_t rv_start, rv_end, rv_step;
    struct expect_series *ex;
    size_t nex;
    /* expect warn|info msg:/regex: lines (kind 'w'/'i', regex flag, text) */
    struct anno_exp {
        char kind;
        int regex;
        char *text;
    } *ae;
    size_t nae;
};

static int verbose;

static void free_cmd(struct evalcmd *c)
{
    for (size_t i = 0; i < c->nex; i++) {
        for (size_t k = 0; k < c->ex[i].nl; k++) {
            free((char *)c->ex[i].l[k].name);
            free((char *)c->ex[i].l[k].value);
        }
        free(c->ex[i].l);
        free(c->ex[i].v);
    }
    free(c->ex);
    for (size_t i = 0; i < c->nae; i++)
        free(c->ae[i].text);
    free(c->ae);
    free(c->query);
    free(c->fail_msg);
    free(c->fail_regex);
    free(c->expect_string);
}

static int close_enough(double a, double b)
{
    if (isnan(a) && isnan(b))
        return 1;
    if (a == b)
        return 1;
    if (isinf(a) || isinf(b) || isnan(a) || isnan(b))
        return 0;
    double diff = fabs(a - b);
    if (a == 0 || b == 0)
        return diff < 1e-6 * 2.2250738585072014e-308 || diff < 1e-12;
    return diff / fmin(fabs(a) + fabs(b), 1.7976931348623157e308) < 1e-6;
}

/* Upstream's compareNativeHistogram on compacted histograms (zero buckets ignored). */
static int buckets_match(const int32_t *xi, const double *xc, size_t xn, const int32_t *yi,
                         const double *yc, size_t yn)
{
    size_t i = 0, j = 0;
    for (;;) {
        while (i < xn && xc[i] == 0)
            i++;
        while (j < yn && yc[j] == 0)
            j++;
        if (i >= xn || j >= yn)
            break;
        if (xi[i] != yi[j] || !close_enough(xc[i], yc[j]))
            return 0;
        i++;
        j++;
    }
    return i >= xn && j >= yn;
}

static int hist_match(const struct mtd_ql_hist *e, const struct mtd_ql_hist *a, int crh_set)
{
    if (e->schema != a->schema || !close_enough(e->count, a->count) ||
        !close_enough(e->sum, a->sum))
        return 0;
    if (e->schema == MTD_QL_SCHEMA_CUSTOM) {
        if (e->ncustom != a->ncustom)
            return 0;
        for (size_t i = 0; i < e->ncustom; i++)
            if (e->custom[i] != a->custom[i])
                return 0;
    }
    if (e->zero_threshold != a->zero_threshold || !close_enough(e->zero_count, a->zero_count))
        return 0;
    if (!buckets_match(e->nidx, e->ncnt, e->nn, a->nidx, a->ncnt, a->nn) ||
        !buckets_match(e->pidx, e->pcnt, e->np, a->pidx, a->pcnt, a->np))
        return 0;
    if (crh_set && e->crh != a->crh)
        return 0;
    return 1;
}

/* Short text of a value for failure messages (histograms in the test-file notation). */
static const char *val_text(char *buf, size_t cap, double v, const struct mtd_ql_hist *h)
{
    if (!h) {
        snprintf(buf, cap, "%.17g", v);
        return buf;
    }
    size_t k = (size_t)snprintf(buf, cap, "{{schema:%d count:%.17g sum:%.17g z:%g/%g crh:%d",
                                h->schema, h->count, h->sum, h->zero_count, h->zero_threshold,
                                (int)h->crh);
    for (size_t i = 0; i < h->np && k < cap; i++)
        k += (size_t)snprintf(buf + k, cap - k, " p%d:%.17g", h->pidx[i], h->pcnt[i]);
    for (size_t i = 0; i < h->nn && k < cap; i++)
        k += (size_t)snprintf(buf + k, cap - k, " n%d:%.17g", h->nidx[i], h->ncnt[i]);
    for (size_t i = 0; i < h->ncustom && k < cap; i++)
        k += (size_t)snprintf(buf + k, cap - k, " cv:%g", h->custom[i]);
    if (k < cap)
        snprintf(buf + k, cap - k, "}}");
    return buf;
}

static int val_match(const struct val *e, const struct mtd_ql_point *p)
{
    if (e->h || p->h)
        return e->h && p->h && hist_match(e->h, p->h, e->crh_set);
    return close_enough(p->v, e->v);
}

static char fail_why[1024];

#define FAIL(...)                                                                            \
    do {                                                                                     \
        snprintf(fail_why, sizeof(fail_why), __VA_ARGS__);                                   \
        return 0;                                                                            \
    } while (0)

static int labels_eq(const struct obs_label *a, size_t na, const struct obs_label *b, size_t nb)
{
    return lab_cmp(a, na, b, nb) == 0;
}

static int regex_match(const char *re, const char *s)
{
    int ec;
    PCRE2_SIZE eo;
    pcre2_code *c = pcre2_compile((PCRE2_SPTR)re, PCRE2_ZERO_TERMINATED, 0, &ec, &eo, NULL);
    if (!c)
        return 0;
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(c, NULL);
    int rc = pcre2_match(c, (PCRE2_SPTR)s, strlen(s), 0, 0, md, NULL);
    pcre2_match_data_free(md);
    pcre2_code_free(c);
    return rc >= 0;
}

/* Compare an instant-style result (vector or scalar) to the expectations. */
static int check_instant(struct evalcmd *c, const struct mtd_ql_result *r)
{
    if (c->has_string) {
        if (r->type != MTD_QL_STRING)
            FAIL("expected string, got %s", mtd_ql_type_name(r->type));
        if (strcmp(r->str, c->expect_string) != 0)
            FAIL("expected string \"%s\", got \"%s\"", c->expect_string, r->str);
        return 1;
    }
    if (r->type == MTD_QL_SCALAR) {
        if (c->nex != 1 || !c->ex[0].scalar)
            FAIL("got scalar %g, expected %zu series", r->scalar, c->nex);
        if (!close_enough(c->ex[0].v[0].v, r->scalar))
            FAIL("expected scalar %g, got %g", c->ex[0].v[0].v, r->scalar);
        return 1;
    }
    if (r->type == MTD_QL_MATRIX && !c->range_vector)
        FAIL("got matrix, expected instant result");
    if (r->type == MTD_QL_MATRIX) {
        if (r->nseries != c->nex)
            FAIL("expected %zu series, got %zu", c->nex, r->nseries);
        for (size_t i = 0; i < c->nex; i++) {
            const struct mtd_ql_series *m = NULL;
            for (size_t k = 0; k < r->nseries; k++)
                if (labels_eq(r->series[k].labels, r->series[k].nlabels, c->ex[i].l,
                              c->ex[i].nl))
                    m = &r->series[k];
            if (!m)
                FAIL("expected series %zu not found", i);
            size_t pi = 0;
            for (int j = 0; j < c->ex[i].nv; j++) {
                int64_t ts = c->rv_start + j * c->rv_step;
                if (c->ex[i].v[j].flags & V_ABSENT)
                    continue;
                while (pi < m->npts && m->pts[pi].t < ts)
                    pi++;
                if (pi >= m->npts || m->pts[pi].t != ts ||
                    !val_match(&c->ex[i].v[j], &m->pts[pi]))
                    FAIL("range vector point %d mismatch", j);
            }
        }
        return 1;
    }
    if (r->type != MTD_QL_VECTOR)
        FAIL("unexpected result type %s", mtd_ql_type_name(r->type));
    if (c->nex == 1 && c->ex[0].scalar)
        FAIL("expected scalar, got vector");
    if (r->nseries != c->nex) {
        char b[256] = "";
        if (r->nseries)
            mtd_ql_labels_str(r->series[0].labels, r->series[0].nlabels, b, sizeof(b));
        FAIL("expected %zu series, got %zu (first: %s)", c->nex, r->nseries, b);
    }
    for (size_t i = 0; i < c->nex; i++) {
        size_t k;
        for (k = 0; k < r->nseries; k++)
            if (labels_eq(r->series[k].labels, r->series[k].nlabels, c->ex[i].l, c->ex[i].nl))
                break;
        if (k == r->nseries) {
            char b[256];
            mtd_ql_labels_str(c->ex[i].l, c->ex[i].nl, b, sizeof(b));
            char b2[256] = "";
            mtd_ql_labels_str(r->series[i].labels, r->series[i].nlabels, b2, sizeof(b2));
            FAIL("expected series %s not in result (e.g. got %s)", b, b2);
        }
        if (c->ordered && k != i)
            FAIL("series %zu out of order", i);
        if (c->ex[i].nv < 1 || !val_match(&c->ex[i].v[0], &r->series[k].pts[0])) {
            char b[256];
            mtd_ql_labels_str(c->ex[i].l, c->ex[i].nl, b, sizeof(b));
            char e1[400], e2[400];
            FAIL("value of %s: expected %s, got %s", b,
                 c->ex[i].nv ? val_text(e1, sizeof(e1), c->ex[i].v[0].v, c->ex[i].v[0].h) : "-",
                 val_text(e2, sizeof(e2), r->series[k].pts[0].v, r->series[k].pts[0].h));
        }
    }
    return 1;
}

static int check_range(struct evalcmd *c, const struct mtd_ql_result *r)
{
    if (r->type != MTD_QL_MATRIX)
        FAIL("range query returned %s", mtd_ql_type_name(r->type));
    size_t want = 0;
    for (size_t i = 0; i < c->nex; i++) {
        int any = 0;
        for (int j = 0; j < c->ex[i].nv; j++)
            if (!(c->ex[i].v[j].flags & V_ABSENT))
                any = 1;
        want += any;
    }
    if (r->nseries != want)
        FAIL("expected %zu series, got %zu", want, r->nseries);
    for (size_t i = 0; i < c->nex; i++) {
        const struct mtd_ql_series *m = NULL;
        for (size_t k = 0; k < r->nseries; k++)
            if (labels_eq(r->series[k].labels, r->series[k].nlabels, c->ex[i].l, c->ex[i].nl))
                m = &r->series[k];
        int nexp = 0;
        for (int j = 0; j < c->ex[i].nv; j++)
            if (!(c->ex[i].v[j].flags & V_ABSENT))
                nexp++;
        if (!m) {
            if (nexp == 0)
                continue;
            char b[256];
            mtd_ql_labels_str(c->ex[i].l, c->ex[i].nl, b, sizeof(b));
            FAIL("expected series %s missing", b);
        }
        if ((int)m->npts != nexp)
            FAIL("series %zu: expected %d points, got %zu", i, nexp, m->npts);
        size_t pi = 0;
        for (int j = 0; j < c->ex[i].nv; j++) {
            if (c->ex[i].v[j].flags & V_ABSENT)
                continue;
            int64_t ts = c->start + j * c->step;
            if (m->pts[pi].t != ts)
                FAIL("series %zu: point at %lld, expected %lld", i, (long long)m->pts[pi].t,
                     (long long)ts);
            if (!val_match(&c->ex[i].v[j], &m->pts[pi]))
                FAIL("series %zu at %lld: expected %.17g got %.17g", i, (long long)ts,
                     c->ex[i].v[j].v, m->pts[pi].v);
            pi++;
        }
    }
    return 1;
}

static int anno_match(const struct anno_exp *e, const char *s)
{
    return e->regex ? regex_match(e->text, s) : strcmp(e->text, s) == 0;
}

/* Upstream's validateExpectedAnnotationsOfType: every expectation matches an annotation of
 * its kind, and (when any is given) every annotation of that kind matches an expectation. */
static int check_anno_kind(struct evalcmd *c, char kind, char **annos, int n)
{
    int nexp = 0;
    for (size_t i = 0; i < c->nae; i++)
        if (c->ae[i].kind == kind)
            nexp++;
    if (nexp == 0)
        return 1;
    if (n == 0)
        FAIL("expected %s annotations but none were found", kind == 'w' ? "warn" : "info");
    for (size_t i = 0; i < c->nae; i++) {
        if (c->ae[i].kind != kind)
            continue;
        int found = 0;
        for (int k = 0; k < n && !found; k++)
            found = anno_match(&c->ae[i], annos[k]);
        if (!found)
            FAIL("no annotation matches \"%s\" (got \"%s\")", c->ae[i].text, annos[0]);
    }
    for (int k = 0; k < n; k++) {
        int found = 0;
        for (size_t i = 0; i < c->nae && !found; i++)
            found = c->ae[i].kind == kind && anno_match(&c->ae[i], annos[k]);
        if (!found)
            FAIL("unexpected annotation \"%s\"", annos[k]);
    }
    return 1;
}

static int check_annos(struct evalcmd *c, const struct mtd_ql_result *r)
{
    if (!check_anno_kind(c, 'w', r->warnings, r->nwarnings))
        return 0;
    if (!check_anno_kind(c, 'i', r->warnings + r->nwarnings, r->ninfos))
        return 0;
    if (c->warn && r->nwarnings == 0)
        FAIL("expected a warning");
    if (c->no_warn && r->nwarnings > 0)
        FAIL("unexpected warning: %s", r->warnings[0]);
    if (c->info && r->ninfos == 0)
        FAIL("expected an info annotation");
    if (c->no_info && r->ninfos > 0)
        FAIL("unexpected info: %s", r->warnings[r->nwarnings]);
    return 1;
}

/* Upstream's test engine runs with delayed __name__ removal (name_label_dropping.test). */
static struct mtd_ql_opts g_opts = {.hist_select = mem_hist_select, .delayed_name_removal = 1};

static int run_cmd(struct evalcmd *c)
{
    struct mtd_ql_expr *e = NULL;
    struct obs_err err = {0};
    struct mtd_ql_result *r = NULL;
    int rc = mtd_ql_parse(c->query, &e, &err);
    if (rc == 0) {
        if (c->range)
            rc = mtd_ql_exec_range(e, &g_st, "t", c->start, c->end, c->step, &g_opts, &r, &err);
        else
            rc = mtd_ql_exec_instant(e, &g_st, "t", c->t, &g_opts, &r, &err);
    }
    int ok;
    if (c->fail) {
        if (rc == 0) {
            snprintf(fail_why, sizeof(fail_why), "expected failure, query succeeded");
            ok = 0;
        } else if (c->fail_msg && strcmp(c->fail_msg, err.msg) != 0) {
            snprintf(fail_why, sizeof(fail_why), "error \"%s\" != expected \"%s\"", err.msg,
                     c->fail_msg);
            ok = 0;
        } else if (c->fail_regex && !regex_match(c->fail_regex, err.msg)) {
            snprintf(fail_why, sizeof(fail_why), "error \"%s\" !~ \"%s\"", err.msg,
                     c->fail_regex);
            ok = 0;
        } else {
            ok = 1;
        }
        mtd_ql_result_free(r);
        mtd_ql_expr_free(e);
        return ok;
    }
    if (rc != 0) {
        snprintf(fail_why, sizeof(fail_why), "error: %s", err.msg);
        mtd_ql_expr_free(e);
        return 0;
    }
    ok = c->range ? check_range(c, r) : check_instant(c, r);
    if (ok)
        ok = check_annos(c, r);
    /* Upstream also runs instant queries in range mode and compares at t, except for
     * ordered expectations and queries using start()/end()/range()/step(). */
    if (ok && !c->range && !c->ordered && !regex_match("(start|end|range|step)\\(\\)", c->query) &&
        (r->type == MTD_QL_VECTOR || r->type == MTD_QL_SCALAR)) {
        struct mtd_ql_result *rr = NULL;
        rc = mtd_ql_exec_range(e, &g_st, "t", c->t - 60000, c->t + 60000, 60000, &g_opts, &rr,
                               &err);
        if (rc != 0) {
            snprintf(fail_why, sizeof(fail_why), "range mode error: %s", err.msg);
            ok = 0;
        } else {
            /* Build a vector at t from the matrix. */
            struct mtd_ql_result v;
            memset(&v, 0, sizeof(v));
            v.type = MTD_QL_VECTOR;
            struct mtd_ql_series *ss = calloc(rr->nseries + 1, sizeof(*ss));
            size_t n = 0;
            for (size_t i = 0; i < rr->nseries; i++)
                for (size_t k = 0; k < rr->series[i].npts; k++)
                    if (rr->series[i].pts[k].t == c->t) {
                        ss[n] = rr->series[i];
                        ss[n].pts = &rr->series[i].pts[k];
                        ss[n++].npts = 1;
                    }
            v.series = ss;
            v.nseries = n;
            if (r->type == MTD_QL_SCALAR) {
                v.type = MTD_QL_SCALAR;
                v.scalar = n ? ss[0].pts[0].v : NAN;
            }
            int save = c->ordered;
            c->ordered = 0;
            ok = check_instant(c, &v);
            c->ordered = save;
            if (!ok) {
                char tmp[sizeof(fail_why)];
                memcpy(tmp, fail_why, sizeof(tmp));
                memcpy(fail_why, "range mode: ", 12);
                memcpy(fail_why + 12, tmp, sizeof(fail_why) - 13);
                fail_why[sizeof(fail_why) - 1] = 0;
            }
            free(ss);
            mtd_ql_result_free(rr);
        }
    }
    mtd_ql_result_free(r);
    mtd_ql_expr_free(e);
    return ok;
}

/* ---------------------------------------------------------------- file driver */
static int is_indented_or_blank(const char *l)
{
    return l[0] == ' ' || l[0] == '\t';
}

static int is_blank(const char *l)
{
    l = skip_ws(l);
    return *l == 0 || *l == '\n' || *l == '#';
}

static char **read_lines(const char *path, size_t *n)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    char **v = NULL;
    size_t k = 0, cap = 0;
    char *line = NULL;
    size_t lcap = 0;
    ssize_t len;
    while ((len = getline(&line, &lcap, f)) >= 0) {
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = 0;
        if (k == cap) {
            cap = cap ? cap * 2 : 256;
            v = realloc(v, cap * sizeof(*v));
        }
        v[k++] = strdup(line);
    }
    free(line);
    fclose(f);
    *n = k;
    return v;
}

static int parse_time(const char *s, size_t n, int64_t *out)
{
    char buf[64];
    if (n >= sizeof(buf))
        return -1;
    memcpy(buf, s, n);
    buf[n] = 0;
    return obs_duration_parse_ms(buf, out) == 0 ? 0 : -1;
}

static const char *word(const char *p, size_t *n)
{
    p = skip_ws(p);
    const char *s = p;
    while (*p && *p != ' ' && *p != '\t')
        p++;
    *n = (size_t)(p - s);
    return s;
}

static void run_file(const char *path, int *passed, int *total)
{
    size_t nl;
    char **lines = read_lines(path, &nl);
    *passed = *total = 0;
    if (!lines) {
        fprintf(stderr, "%s: cannot read\n", path);
        return;
    }
    store_clear();
    for (size_t i = 0; i < nl; i++) {
        const char *l = lines[i];
        if (is_blank(l))
            continue;
        if (strncmp(l, "clear", 5) == 0) {
            store_clear();
            continue;
        }
        if (strncmp(l, "load", 4) == 0) {
            size_t wn;
            const char *w = word(l + 4, &wn);
            if (strncmp(l, "load_with_nhcb", 14) == 0)
                w = word(l + 14, &wn);
            int64_t interval = 0;
            parse_time(w, wn, &interval);
            int nhcb = strncmp(l, "load_with_nhcb", 14) == 0;
            while (i + 1 < nl && is_indented_or_blank(lines[i + 1]) && !is_blank(lines[i + 1])) {
                i++;
                const char *p = lines[i];
                struct obs_label *lab;
                size_t nlab;
                if (parse_series_desc(&p, &lab, &nlab) < 0) {
                    fprintf(stderr, "%s:%zu: bad series\n", path, i + 1);
                    continue;
                }
                struct val *vals = NULL;
                int nv = parse_values(p, &vals);
                if (nhcb)
                    nhcb_collect(lab, nlab, vals, nv);
                tsdb_hints(vals, nv);
                struct mseries *s = store_series(lab, nlab);
                for (int k = 0; k < nv; k++) {
                    if (vals[k].flags & V_ABSENT)
                        continue;
                    if (vals[k].h) {
                        series_add_hist(s, (int64_t)k * interval, vals[k].h);
                        continue;
                    }
                    double v = vals[k].v;
                    if (vals[k].flags & V_STALE) {
                        uint64_t b = MTD_STALE_NAN_BITS;
                        memcpy(&v, &b, sizeof(v));
                    }
                    series_add(s, (int64_t)k * interval, v);
                }
                free(vals);
            }
            if (nhcb)
                nhcb_flush(interval);
            continue;
        }
        if (strncmp(l, "eval", 4) == 0) {
            struct evalcmd c;
            memset(&c, 0, sizeof(c));
            c.line = (int)i + 1;
            const char *p = l + 4;
            if (strncmp(p, "_fail", 5) == 0) { c.fail = 1; p += 5; }
            else if (strncmp(p, "_warn", 5) == 0) { c.warn = 1; p += 5; }
            else if (strncmp(p, "_info", 5) == 0) { c.info = 1; p += 5; }
            else if (strncmp(p, "_ordered", 8) == 0) { c.ordered = 1; p += 8; }
            size_t wn;
            const char *w = word(p, &wn);
            int bad = 0;
            if (wn == 7 && strncmp(w, "instant", 7) == 0) {
                p = w + wn;
                w = word(p, &wn); /* at */
                p = w + wn;
                w = word(p, &wn);
                bad |= parse_time(w, wn, &c.t);
                p = w + wn;
            } else if (wn == 5 && strncmp(w, "range", 5) == 0) {
                c.range = 1;
                p = w + wn;
                w = word(p, &wn); p = w + wn; /* from */
                w = word(p, &wn); bad |= parse_time(w, wn, &c.start); p = w + wn;
                w = word(p, &wn); p = w + wn; /* to */
                w = word(p, &wn); bad |= parse_time(w, wn, &c.end); p = w + wn;
                w = word(p, &wn); p = w + wn; /* step */
                w = word(p, &wn); bad |= parse_time(w, wn, &c.step); p = w + wn;
            } else {
                bad = 1;
            }
            c.query = strdup(skip_ws(p));
            while (i + 1 < nl && is_indented_or_blank(lines[i + 1]) && !is_blank(lines[i + 1])) {
                i++;
                const char *x = skip_ws(lines[i]);
                if (strncmp(x, "expect ", 7) == 0) {
                    x = skip_ws(x + 7);
                    if (strncmp(x, "fail", 4) == 0) {
                        c.fail = 1;
                        const char *m = strstr(x, "msg:");
                        const char *rg = strstr(x, "regex:");
                        if (m)
                            c.fail_msg = strdup(skip_ws(m + 4));
                        else if (rg)
                            c.fail_regex = strdup(skip_ws(rg + 6));
                    } else if (strncmp(x, "no_warn", 7) == 0) c.no_warn = 1;
                    else if (strncmp(x, "no_info", 7) == 0) c.no_info = 1;
                    else if (strncmp(x, "warn", 4) == 0 || strncmp(x, "info", 4) == 0) {
                        char kind = x[0] == 'w' ? 'w' : 'i';
                        const char *m = strstr(x, "msg:");
                        const char *rg = strstr(x, "regex:");
                        if (!m && !rg) {
                            if (kind == 'w')
                                c.warn = 1;
                            else
                                c.info = 1;
                        } else {
                            struct anno_exp ae;
                            ae.kind = kind;
                            ae.regex = m == NULL;
                            ae.text = strdup(skip_ws(m ? m + 4 : rg + 6));
                            c.ae = realloc(c.ae, (c.nae + 1) * sizeof(*c.ae));
                            c.ae[c.nae++] = ae;
                        }
                    }
                    else if (strncmp(x, "ordered", 7) == 0) c.ordered = 1;
                    else if (strncmp(x, "string", 6) == 0) {
                        x = skip_ws(x + 6);
                        char *sv;
                        size_t used;
                        if (obs_go_unquote(x, strlen(x), &sv, &used) == 0) {
                            c.expect_string = strdup(sv);
                            obs_free(sv);
                        } else {
                            c.expect_string = strdup(x);
                        }
                        c.has_string = 1;
                    } else if (strncmp(x, "range vector", 12) == 0) {
                        c.range_vector = 1;
                        x = skip_ws(x + 12);
                        w = word(x, &wn); x = w + wn; /* from */
                        w = word(x, &wn); parse_time(w, wn, &c.rv_start); x = w + wn;
                        w = word(x, &wn); x = w + wn; /* to */
                        w = word(x, &wn); parse_time(w, wn, &c.rv_end); x = w + wn;
                        w = word(x, &wn); x = w + wn; /* step */
                        w = word(x, &wn); parse_time(w, wn, &c.rv_step);
                    }
                    continue;
                }
                struct expect_series es;
                memset(&es, 0, sizeof(es));
                const char *vp = x;
                double tmp;
                size_t tn;
                const char *tw = word(x, &tn);
                if ((*x == '"' || *x == '\'' || *x == '`') && tn == strlen(x)) {
                    /* a bare string result */
                    char *sv;
                    size_t used;
                    if (obs_go_unquote(x, strlen(x), &sv, &used) == 0) {
                        c.expect_string = strdup(sv);
                        obs_free(sv);
                        c.has_string = 1;
                    }
                    continue;
                }
                if (parse_num(tw, tn, &tmp) == 0 && *skip_ws(tw + tn) == 0) {
                    es.scalar = 1;
                } else if (parse_series_desc(&vp, &es.l, &es.nl) < 0) {
                    bad = 1;
                    continue;
                }
                es.nv = parse_values(es.scalar ? x : vp, &es.v);
                if (es.nv < 0)
                    bad = 1;
                c.ex = realloc(c.ex, (c.nex + 1) * sizeof(*c.ex));
                c.ex[c.nex++] = es;
            }
            (*total)++;
            int ok = 0;
            if (!bad) {
                fail_why[0] = 0;
                ok = run_cmd(&c);
            } else {
                snprintf(fail_why, sizeof(fail_why), "could not parse test command");
            }
            if (ok)
                (*passed)++;
            else if (verbose)
                fprintf(stdout, "  FAIL %s:%d: %s\n      %s\n", path, c.line, c.query, fail_why);
            free_cmd(&c);
            continue;
        }
        if (verbose)
            fprintf(stderr, "%s:%zu: skipping line: %s\n", path, i + 1, l);
    }
    store_clear();
    obs_arena_free(g_harena);
    g_harena = NULL;
    for (size_t i = 0; i < nl; i++)
        free(lines[i]);
    free(lines);
}

int main(int argc, char **argv)
{
    int tp = 0, tt = 0, files = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-v") == 0) {
            verbose = 1;
            continue;
        }
        int p, t;
        run_file(argv[i], &p, &t);
        const char *base = strrchr(argv[i], '/');
        printf("%s: %d/%d\n", base ? base + 1 : argv[i], p, t);
        fflush(stdout);
        tp += p;
        tt += t;
        files++;
    }
    if (files == 0) {
        fprintf(stderr, "usage: promqltest [-v] file.test...\n");
        return 2;
    }
    printf("TOTAL: %d/%d (%.1f%%)\n", tp, tt, tt ? 100.0 * tp / tt : 0.0);
    return 0;
}
