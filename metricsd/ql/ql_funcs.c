/*
 * ql_funcs.c -- PromQL functions: the table the parser type-checks against and the
 * implementations the evaluator calls (float samples; native-histogram functions return
 * nothing).
 *
 * Adding a function: write `static struct ql_val fn_x(q, call, args, t)` and add a row to
 * funcs[] with its argument types (the last type repeats for variadic functions).
 * Algorithms follow Prometheus' promql/functions.go: extrapolated rate, Kahan-compensated
 * sums, linear regression, histogram_quantile with bucket coalescing and the monotonicity
 * fix, Go's regexp expansion rules for label_replace.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <ctype.h>
#include <math.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/obs_sbuf.h"
#include "metricsd/ql/ql_int.h"

#define V MTD_QL_VECTOR
#define M MTD_QL_MATRIX
#define S MTD_QL_SCALAR
#define STR MTD_QL_STRING

/* ---------------------------------------------------------------- helpers */
static struct ql_val new_vec(struct ql_query *q, size_t cap)
{
    struct ql_val r = {.type = MTD_QL_VECTOR};
    r.vec.s = ql_alloc(&q->sa, (cap + 1) * sizeof(struct ql_sample));
    return r;
}

static void push(struct ql_val *r, struct ql_labels l, double v, int64_t t, int drop)
{
    struct ql_sample *s = &r->vec.s[r->vec.n++];
    s->l = l;
    s->v = v;
    s->t = t;
    s->drop = drop;
}

static double go_min(double a, double b)
{
    if (isnan(a) || isnan(b))
        return NAN;
    if (a == 0 && b == 0)
        return signbit(a) ? a : b;
    return a < b ? a : b;
}

static double go_max(double a, double b)
{
    if (isnan(a) || isnan(b))
        return NAN;
    if (a == 0 && b == 0)
        return signbit(a) ? b : a;
    return a > b ? a : b;
}

/* Apply f to every sample of args[0] (drops the name). */
static struct ql_val map_vec(struct ql_query *q, struct ql_vec in, int64_t t,
                             double (*f)(double))
{
    struct ql_val r = new_vec(q, in.n);
    for (size_t i = 0; i < in.n; i++)
        if (!in.s[i].h)
            push(&r, in.s[i].l, f(in.s[i].v), t, 1);
    return r;
}

#define SIMPLE(name, expr)                                                                    \
    static double f_##name(double x) { return (expr); }                                      \
    static struct ql_val fn_##name(struct ql_query *q, struct ql_node *c, struct ql_val *a,    \
                                   int64_t t)                                                 \
    {                                                                                         \
        (void)c;                                                                              \
        return map_vec(q, a[0].vec, t, f_##name);                                             \
    }

SIMPLE(abs, fabs(x))
SIMPLE(ceil, ceil(x))
SIMPLE(floor, floor(x))
SIMPLE(sqrt, sqrt(x))
SIMPLE(exp, exp(x))
SIMPLE(ln, log(x))
SIMPLE(log2, log2(x))
SIMPLE(log10, log10(x))
SIMPLE(sin, sin(x))
SIMPLE(cos, cos(x))
SIMPLE(tan, tan(x))
SIMPLE(asin, asin(x))
SIMPLE(acos, acos(x))
SIMPLE(atan, atan(x))
SIMPLE(sinh, sinh(x))
SIMPLE(cosh, cosh(x))
SIMPLE(tanh, tanh(x))
SIMPLE(asinh, asinh(x))
SIMPLE(acosh, acosh(x))
SIMPLE(atanh, atanh(x))
SIMPLE(deg, x * 180 / M_PI)
SIMPLE(rad, x * M_PI / 180)
SIMPLE(sgn, x < 0 ? -1 : x > 0 ? 1 : x)

static struct ql_val fn_round(struct ql_query *q, struct ql_node *c, struct ql_val *a, int64_t t)
{
    double to = c->nargs > 1 ? a[1].scalar : 1;
    double inv = 1.0 / to;
    struct ql_val r = new_vec(q, a[0].vec.n);
    for (size_t i = 0; i < a[0].vec.n; i++)
        if (!a[0].vec.s[i].h)
            push(&r, a[0].vec.s[i].l, floor(a[0].vec.s[i].v * inv + 0.5) / inv, t, 1);
    return r;
}

static struct ql_val clamp_common(struct ql_query *q, struct ql_vec in, double lo, double hi,
                                  int64_t t)
{
    struct ql_val r = new_vec(q, in.n);
    if (hi < lo)
        return r;
    for (size_t i = 0; i < in.n; i++)
        if (!in.s[i].h)
            push(&r, in.s[i].l, go_max(lo, go_min(hi, in.s[i].v)), t, 1);
    return r;
}

static struct ql_val fn_clamp(struct ql_query *q, struct ql_node *c, struct ql_val *a, int64_t t)
{
    (void)c;
    return clamp_common(q, a[0].vec, a[1].scalar, a[2].scalar, t);
}

static struct ql_val fn_clamp_min(struct ql_query *q, struct ql_node *c, struct ql_val *a,
                                  int64_t t)
{
    (void)c;
    struct ql_val r = new_vec(q, a[0].vec.n);
    for (size_t i = 0; i < a[0].vec.n; i++)
        if (!a[0].vec.s[i].h)
            push(&r, a[0].vec.s[i].l, go_max(a[1].scalar, a[0].vec.s[i].v), t, 1);
    return r;
}

static struct ql_val fn_clamp_max(struct ql_query *q, struct ql_node *c, struct ql_val *a,
                                  int64_t t)
{
    (void)c;
    struct ql_val r = new_vec(q, a[0].vec.n);
    for (size_t i = 0; i < a[0].vec.n; i++)
        if (!a[0].vec.s[i].h)
            push(&r, a[0].vec.s[i].l, go_min(a[1].scalar, a[0].vec.s[i].v), t, 1);
    return r;
}

static struct ql_val fn_time(struct ql_query *q, struct ql_node *c, struct ql_val *a, int64_t t)
{
    (void)q; (void)c; (void)a;
    struct ql_val r = {.type = MTD_QL_SCALAR, .scalar = (double)t / 1000.0};
    return r;
}

static struct ql_val scalar_val(double v)
{
    struct ql_val r = {.type = MTD_QL_SCALAR, .scalar = v};
    return r;
}

/* Query-context functions: step(), range(), start(), end() in seconds. */
static struct ql_val fn_step(struct ql_query *q, struct ql_node *c, struct ql_val *a, int64_t t)
{
    (void)c; (void)a; (void)t;
    return scalar_val((double)q->interval / 1000.0);
}

static struct ql_val fn_range(struct ql_query *q, struct ql_node *c, struct ql_val *a, int64_t t)
{
    (void)c; (void)a; (void)t;
    return scalar_val((double)(q->end - q->start) / 1000.0);
}

static struct ql_val fn_start(struct ql_query *q, struct ql_node *c, struct ql_val *a, int64_t t)
{
    (void)c; (void)a; (void)t;
    return scalar_val((double)q->start / 1000.0);
}

static struct ql_val fn_end(struct ql_query *q, struct ql_node *c, struct ql_val *a, int64_t t)
{
    (void)c; (void)a; (void)t;
    return scalar_val((double)q->end / 1000.0);
}

/* min_of/max_of: Go's math.Min/Max (NaN wins, -0 < +0). */
static struct ql_val fn_min_of(struct ql_query *q, struct ql_node *c, struct ql_val *a, int64_t t)
{
    (void)q; (void)c; (void)t;
    return scalar_val(go_min(a[0].scalar, a[1].scalar));
}

static struct ql_val fn_max_of(struct ql_query *q, struct ql_node *c, struct ql_val *a, int64_t t)
{
    (void)q; (void)c; (void)t;
    return scalar_val(go_max(a[0].scalar, a[1].scalar));
}

static struct ql_val fn_pi(struct ql_query *q, struct ql_node *c, struct ql_val *a, int64_t t)
{
    (void)q; (void)c; (void)a; (void)t;
    struct ql_val r = {.type = MTD_QL_SCALAR, .scalar = M_PI};
    return r;
}

static struct ql_val fn_vector(struct ql_query *q, struct ql_node *c, struct ql_val *a, int64_t t)
{
    (void)c;
    struct ql_val r = new_vec(q, 1);
    struct ql_labels none = {NULL, 0};
    push(&r, none, a[0].scalar, t, 0);
    return r;
}

static struct ql_val fn_scalar(struct ql_query *q, struct ql_node *c, struct ql_val *a, int64_t t)
{
    (void)q; (void)c; (void)t;
    struct ql_val r = {.type = MTD_QL_SCALAR, .scalar = NAN};
    size_t nf = 0;
    double v = NAN;
    for (size_t i = 0; i < a[0].vec.n; i++) {
        if (a[0].vec.s[i].h)
            continue; /* histograms are ignored; exactly one float gives its value */
        nf++;
        v = a[0].vec.s[i].v;
    }
    if (nf == 1)
        r.scalar = v;
    return r;
}

static struct ql_val fn_timestamp(struct ql_query *q, struct ql_node *c, struct ql_val *a,
                                  int64_t t)
{
    (void)c;
    struct ql_val r = new_vec(q, a[0].vec.n);
    for (size_t i = 0; i < a[0].vec.n; i++)
        push(&r, a[0].vec.s[i].l, (double)a[0].vec.s[i].t / 1000.0, t, 1);
    return r;
}

/* Labels for absent(): equality matchers of the selector (not __name__), minus names that
 * appear more than once. */
static struct ql_labels absent_labels(struct ql_query *q, struct ql_node *arg)
{
    struct ql_labels l = {NULL, 0};
    while (arg->kind == QN_PAREN && arg->op != QOP_ADD) /* +x is a unary expression */
        arg = arg->lhs;
    if (arg->kind == QN_MSEL)
        arg = arg->lhs;
    if (arg->kind != QN_VSEL)
        return l;
    char **dups = NULL;
    size_t nd = 0, capd = 0;
    for (size_t i = 0; i < arg->nms; i++) {
        const struct obs_matcher *m = &arg->ms[i];
        if (strcmp(m->name, "__name__") == 0)
            continue;
        int seen = 0;
        for (size_t j = 0; j < i; j++)
            if (strcmp(arg->ms[j].name, m->name) == 0)
                seen = 1;
        if (seen) {
            QL_PUSH(&q->sa, dups, nd, capd, m->name);
            continue;
        }
        if (m->type == OBS_MATCH_EQ)
            l = ql_lset(&q->sa, l, m->name, m->value);
    }
    for (size_t i = 0; i < nd; i++)
        l = ql_ldel(&q->sa, l, dups[i]);
    return l;
}

static struct ql_val fn_absent(struct ql_query *q, struct ql_node *c, struct ql_val *a, int64_t t)
{
    struct ql_val r = new_vec(q, 1);
    size_t n = a[0].type == MTD_QL_MATRIX ? a[0].mat.n : a[0].vec.n;
    if (n > 0)
        return r;
    push(&r, absent_labels(q, c->args[0]), 1, t, 0);
    return r;
}

static int natcmp(const char *a, const char *b)
{
    while (*a && *b) {
        if (isdigit((unsigned char)*a) && isdigit((unsigned char)*b)) {
            const char *x = a, *y = b;
            while (*x == '0') x++;
            while (*y == '0') y++;
            size_t lx = 0, ly = 0;
            while (isdigit((unsigned char)x[lx])) lx++;
            while (isdigit((unsigned char)y[ly])) ly++;
            if (lx != ly)
                return lx < ly ? -1 : 1;
            int c = strncmp(x, y, lx);
            if (c)
                return c;
            a = x + lx;
            b = y + ly;
            continue;
        }
        if (*a != *b)
            return (unsigned char)*a < (unsigned char)*b ? -1 : 1;
        a++;
        b++;
    }
    return *a ? 1 : *b ? -1 : 0;
}

static int cmp_asc(const void *x, const void *y)
{
    const struct ql_sample *a = x, *b = y;
    if (isnan(a->v) || isnan(b->v))
        return isnan(a->v) - isnan(b->v);
    return a->v < b->v ? -1 : a->v > b->v ? 1 : 0;
}

static int cmp_desc(const void *x, const void *y)
{
    const struct ql_sample *a = x, *b = y;
    if (isnan(a->v) || isnan(b->v))
        return isnan(a->v) - isnan(b->v);
    return a->v > b->v ? -1 : a->v < b->v ? 1 : 0;
}

static struct ql_val sorted(struct ql_query *q, struct ql_vec in, int (*cmp)(const void *,
                                                                             const void *))
{
    struct ql_val r = new_vec(q, in.n);
    if (in.n == 0)
        return r;
    size_t n = 0;
    for (size_t i = 0; i < in.n; i++)
        if (!in.s[i].h) /* sort/sort_desc drop histogram samples */
            r.vec.s[n++] = in.s[i];
    r.vec.n = n;
    if (n == 0)
        return r;
    qsort(r.vec.s, r.vec.n, sizeof(*r.vec.s), cmp);
    return r;
}

/* Sorting is pointless in range queries (results are ordered by labels). */
static void sort_warn(struct ql_query *q, struct ql_node *c)
{
    if (q->interval > 0)
        ql_warn(q, c->pos, "PromQL warning: sort is ineffective for range queries since "
                           "results are always ordered by labels");
}

static struct ql_val fn_sort(struct ql_query *q, struct ql_node *c, struct ql_val *a, int64_t t)
{
    (void)t;
    sort_warn(q, c);
    return sorted(q, a[0].vec, cmp_asc);
}

static struct ql_val fn_sort_desc(struct ql_query *q, struct ql_node *c, struct ql_val *a,
                                  int64_t t)
{
    (void)t;
    sort_warn(q, c);
    return sorted(q, a[0].vec, cmp_desc);
}

struct sbl_ctx {
    const struct ql_val *args;
    size_t n;
    int desc;
};

static int cmp_by_label(const void *x, const void *y, void *arg)
{
    const struct ql_sample *a = x, *b = y;
    const struct sbl_ctx *cx = arg;
    const struct ql_val *sbl_args = cx->args;
    size_t sbl_n = cx->n;
    int sbl_desc = cx->desc;
    for (size_t i = 1; i < sbl_n; i++) {
        const char *la = ql_lget(a->l, sbl_args[i].str), *lb = ql_lget(b->l, sbl_args[i].str);
        if (!la) la = "";
        if (!lb) lb = "";
        if (strcmp(la, lb) == 0)
            continue;
        int c = natcmp(la, lb) < 0 ? -1 : 1;
        return sbl_desc ? -c : c;
    }
    int c = ql_lcmp(a->l, b->l);
    return sbl_desc ? -c : c;
}

static struct ql_val sort_by_label(struct ql_query *q, struct ql_node *c, struct ql_val *a,
                                   int desc)
{
    sort_warn(q, c);
    struct ql_val r = new_vec(q, a[0].vec.n);
    memcpy(r.vec.s, a[0].vec.s, a[0].vec.n * sizeof(struct ql_sample));
    r.vec.n = a[0].vec.n;
    struct sbl_ctx cx = {a, c->nargs, desc};
    qsort_r(r.vec.s, r.vec.n, sizeof(struct ql_sample), cmp_by_label, &cx);
    return r;
}

static struct ql_val fn_sort_by_label(struct ql_query *q, struct ql_node *c, struct ql_val *a,
                                      int64_t t)
{
    (void)t;
    return sort_by_label(q, c, a, 0);
}

static struct ql_val fn_sort_by_label_desc(struct ql_query *q, struct ql_node *c,
                                           struct ql_val *a, int64_t t)
{
    (void)t;
    return sort_by_label(q, c, a, 1);
}

/* ---------------------------------------------------------------- label functions */
static void code_free(void *p)
{
    pcre2_code_free(p);
}

static void md_free(void *p)
{
    pcre2_match_data_free(p);
}

static void check_dups(struct ql_query *q, struct ql_val *r)
{
    struct ql_map m;
    ql_map_init(&m, &q->sa, r->vec.n);
    for (size_t i = 0; i < r->vec.n; i++) {
        size_t kl;
        struct ql_labels l = r->vec.s[i].l;
        const char *k = ql_lsig(&q->sa, l, NULL, 0, 0, &kl);
        /* include the name unless it will be dropped */
        const char *nm = ql_lget(l, "__name__");
        char *full = ql_printf(&q->sa, "%s\x01%d", r->vec.s[i].drop || !nm ? "" : nm,
                               r->vec.s[i].drop);
        char *key = ql_alloc(&q->sa, kl + strlen(full) + 1);
        memcpy(key, k, kl);
        memcpy(key + kl, full, strlen(full));
        if (ql_map_put(&m, key, kl + strlen(full), 1) >= 0)
            ql_throw(&q->qa, OBS_EINVAL, "vector cannot contain metrics with the same labelset");
    }
}

/* Go's Regexp.Expand template rules: $1, ${1}, $name, ${name}, $$. */
static void expand(struct obs_sbuf *b, const char *tmpl, const char *subj, PCRE2_SIZE *ov,
                   int nmatch, pcre2_code *re)
{
    for (const char *p = tmpl; *p; p++) {
        if (*p != '$') {
            obs_sbuf_putc(b, *p);
            continue;
        }
        p++;
        if (*p == '$') {
            obs_sbuf_putc(b, '$');
            continue;
        }
        char name[128];
        size_t nl = 0;
        int brace = *p == '{';
        const char *s = brace ? p + 1 : p;
        while ((isalnum((unsigned char)s[nl]) || s[nl] == '_') && nl < sizeof(name) - 1) {
            name[nl] = s[nl];
            nl++;
        }
        name[nl] = 0;
        if (nl == 0 || (brace && s[nl] != '}')) {
            obs_sbuf_putc(b, '$');
            p--;
            continue;
        }
        p = s + nl - 1 + (brace ? 1 : 0);
        int idx = -1;
        int alldig = 1;
        for (size_t i = 0; i < nl; i++)
            if (!isdigit((unsigned char)name[i]))
                alldig = 0;
        if (alldig)
            idx = nl < 9 ? atoi(name) : -1;
        else
            idx = pcre2_substring_number_from_name(re, (PCRE2_SPTR)name);
        if (idx >= 0 && idx < nmatch && ov[2 * idx] != PCRE2_UNSET)
            obs_sbuf_append(b, subj + ov[2 * idx], ov[2 * idx + 1] - ov[2 * idx]);
    }
}

static struct ql_val fn_label_replace(struct ql_query *q, struct ql_node *c, struct ql_val *a,
                                      int64_t t)
{
    (void)c;
    const char *dst = a[1].str, *repl = a[2].str, *src = a[3].str, *regex = a[4].str;
    if (!obs_label_name_valid(dst, strlen(dst)))
        ql_throw(&q->qa, OBS_EINVAL, "invalid destination label name in label_replace(): %s",
                 dst);
    if (strlen(regex) > MTD_QL_MAX_REGEX_LEN)
        ql_throw(&q->qa, OBS_ELIMIT, "regular expression in label_replace() too long: %zu "
                 "bytes (limit %d)", strlen(regex), MTD_QL_MAX_REGEX_LEN);
    char *pat = ql_printf(&q->sa, "(*LIMIT_MATCH=%d)(*LIMIT_DEPTH=%d)^(?:%s)$",
                          MTD_QL_RE_MATCH_LIMIT, MTD_QL_RE_DEPTH_LIMIT, regex);
    int ec;
    PCRE2_SIZE eo;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_DOTALL,
                                   &ec, &eo, NULL);
    if (!re)
        ql_throw(&q->qa, OBS_EINVAL, "invalid regular expression in label_replace(): %s", regex);
    ql_on_free(&q->qa, code_free, re);
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
    if (!md)
        ql_throw(&q->qa, OBS_ENOMEM, "out of memory");
    ql_on_free(&q->qa, md_free, md);
    struct ql_val r = new_vec(q, a[0].vec.n);
    struct obs_sbuf b;
    obs_sbuf_init(&b);
    for (size_t i = 0; i < a[0].vec.n; i++) {
        struct ql_sample s = a[0].vec.s[i];
        const char *sv = ql_lget(s.l, src);
        if (!sv)
            sv = "";
        int rc = pcre2_match(re, (PCRE2_SPTR)sv, strlen(sv), 0, 0, md, NULL);
        if (rc == PCRE2_ERROR_MATCHLIMIT || rc == PCRE2_ERROR_DEPTHLIMIT ||
            rc == PCRE2_ERROR_HEAPLIMIT) {
            obs_sbuf_deinit(&b);
            ql_throw(&q->qa, OBS_ELIMIT, "regular expression in label_replace() is too "
                     "expensive: matching it hit the backtracking limit: %.80s", regex);
        }
        if (rc > 0) {
            obs_sbuf_reset(&b);
            expand(&b, repl, sv, pcre2_get_ovector_pointer(md), rc, re);
            char *val = ql_strndup(&q->sa, b.p ? b.p : "", b.len);
            s.l = ql_lset(&q->sa, s.l, ql_strdup(&q->sa, dst), val);
            if (strcmp(dst, "__name__") == 0)
                s.drop = 0;
        }
        s.t = t;
        r.vec.s[r.vec.n++] = s;
    }
    obs_sbuf_deinit(&b);
    check_dups(q, &r);
    return r;
}

static struct ql_val fn_label_join(struct ql_query *q, struct ql_node *c, struct ql_val *a,
                                   int64_t t)
{
    const char *dst = a[1].str, *sep = a[2].str;
    if (!obs_label_name_valid(dst, strlen(dst)))
        ql_throw(&q->qa, OBS_EINVAL, "invalid destination label name in label_join(): %s", dst);
    for (size_t j = 3; j < c->nargs; j++)
        if (!obs_label_name_valid(a[j].str, strlen(a[j].str)))
            ql_throw(&q->qa, OBS_EINVAL, "invalid source label name in label_join(): %s",
                     a[j].str);
    struct ql_val r = new_vec(q, a[0].vec.n);
    struct obs_sbuf b;
    obs_sbuf_init(&b);
    for (size_t i = 0; i < a[0].vec.n; i++) {
        struct ql_sample s = a[0].vec.s[i];
        obs_sbuf_reset(&b);
        for (size_t j = 3; j < c->nargs; j++) {
            if (j > 3)
                obs_sbuf_puts(&b, sep);
            const char *v = ql_lget(s.l, a[j].str);
            obs_sbuf_puts(&b, v ? v : "");
        }
        s.l = ql_lset(&q->sa, s.l, ql_strdup(&q->sa, dst), ql_strndup(&q->sa, b.p ? b.p : "",
                                                                   b.len));
        if (strcmp(dst, "__name__") == 0)
            s.drop = 0;
        s.t = t;
        r.vec.s[r.vec.n++] = s;
    }
    obs_sbuf_deinit(&b);
    check_dups(q, &r);
    return r;
}

/* ---------------------------------------------------------------- date functions */
/* Upstream computes time.Unix(int64(v), 0).UTC() and reads the calendar fields. Go's
 * float->int64 conversion gives INT64_MIN for NaN, +-Inf and out-of-range values (amd64),
 * and Go's calendar arithmetic works on an unsigned "absolute" second count that wraps, so
 * this follows Go's absDate() exactly instead of gmtime (which cannot take such values). */
#define GO_SECS_PER_DAY 86400ULL
#define GO_ABS_ZERO_YEAR (-292277022399LL)
#define GO_UNIX_TO_INTERNAL 62135596800LL
#define GO_INTERNAL_TO_ABS 9223371966579724800LL

static int go_is_leap(int64_t y)
{
    return y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
}

static double date_part(double v, int which)
{
    int64_t sec;
    if (isnan(v) || v >= 9223372036854775808.0 || v < -9223372036854775808.0)
        sec = INT64_MIN;
    else
        sec = (int64_t)v;
    uint64_t abs = (uint64_t)sec + (uint64_t)(GO_UNIX_TO_INTERNAL + GO_INTERNAL_TO_ABS);
    if (which == 4)
        return (double)((abs % GO_SECS_PER_DAY) / 3600);
    if (which == 5)
        return (double)((abs % 3600) / 60);
    if (which == 1) /* absolute day 0 is a Monday */
        return (double)(((abs + GO_SECS_PER_DAY) % (7 * GO_SECS_PER_DAY)) / GO_SECS_PER_DAY);
    const uint64_t d400 = 365 * 400 + 97, d100 = 365 * 100 + 24, d4 = 365 * 4 + 1;
    uint64_t d = abs / GO_SECS_PER_DAY;
    uint64_t n = d / d400;
    uint64_t y = 400 * n;
    d -= d400 * n;
    n = d / d100;
    n -= n >> 2;
    y += 100 * n;
    d -= d100 * n;
    n = d / d4;
    y += 4 * n;
    d -= d4 * n;
    n = d / 365;
    n -= n >> 2;
    y += n;
    d -= 365 * n;
    int64_t year = (int64_t)y + GO_ABS_ZERO_YEAR;
    int yday = (int)d;
    if (which == 7)
        return (double)year;
    if (which == 2)
        return yday + 1;
    static const int before[] = {0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334, 365};
    int day = yday, month, mday;
    int leap = go_is_leap(year);
    if (leap && day == 31 + 29 - 1) {
        month = 2;
        mday = 29;
    } else {
        if (leap && day > 31 + 29 - 1)
            day--;
        int m = day / 31;
        int begin;
        if (day >= before[m + 1]) {
            m++;
            begin = before[m];
        } else {
            begin = before[m];
        }
        month = m + 1;
        mday = day - begin + 1;
    }
    switch (which) {
    case 0: return mday;
    case 3: return (before[month] - before[month - 1]) + (month == 2 && leap);
    default: return month; /* 6 */
    }
}

static struct ql_val date_fn(struct ql_query *q, struct ql_node *c, struct ql_val *a, int64_t t,
                             int which)
{
    if (c->nargs == 0) {
        struct ql_val r = new_vec(q, 1);
        struct ql_labels none = {NULL, 0};
        push(&r, none, date_part((double)(t / 1000), which), t, 0);
        return r;
    }
    struct ql_val r = new_vec(q, a[0].vec.n);
    for (size_t i = 0; i < a[0].vec.n; i++)
        if (!a[0].vec.s[i].h)
            push(&r, a[0].vec.s[i].l, date_part(a[0].vec.s[i].v, which), t, 1);
    return r;
}

#define DATE(name, w)                                                                        \
    static struct ql_val fn_##name(struct ql_query *q, struct ql_node *c, struct ql_val *a,   \
                                   int64_t t)                                                \
    {                                                                                        \
        return date_fn(q, c, a, t, w);                                                       \
    }
DATE(day_of_month, 0)
DATE(day_of_week, 1)
DATE(day_of_year, 2)
DATE(days_in_month, 3)
DATE(hour, 4)
DATE(minute, 5)
DATE(month, 6)
DATE(year, 7)

/* ---------------------------------------------------------------- range-vector functions */
/* Iterate the matrix argument; f returns 1 and sets *out to emit a sample. keep_name keeps
 * the series name (last_over_time). */
typedef int (*over_fn)(struct ql_query *q, struct ql_node *c, struct ql_val *a,
                       const struct ql_series *s, const struct ql_mat *m, int64_t t,
                       double *out);


/* Functions that take histogram samples as they are (the rest see floats only). */
static int hist_aware(const char *name)
{
    static const char *ok[] = {"count_over_time", "last_over_time", "first_over_time",
                               "present_over_time", "ts_of_last_over_time",
                               "ts_of_first_over_time", "sum_over_time", "avg_over_time",
                               "rate", "increase", "delta", "irate", "idelta", "resets",
                               "changes", NULL};
    for (int i = 0; ok[i]; i++)
        if (strcmp(ok[i], name) == 0)
            return 1;
    return 0;
}

static struct ql_val over_time(struct ql_query *q, struct ql_node *c, struct ql_val *a, int mi,
                               int64_t t, over_fn f, int keep_name)
{
    const struct ql_mat *m = &a[mi].mat;
    struct ql_val r = new_vec(q, m->n);
    int aware = hist_aware(c->fn->name);
    for (size_t i = 0; i < m->n; i++) {
        double v = 0;
        struct ql_series fs = m->s[i];
        if (fs.n == 0)
            continue;
        size_t nh = 0;
        for (size_t k = 0; k < fs.n && !fs.nohist; k++)
            nh += fs.p[k].h != NULL;
        if (nh && !aware) {
            /* floats only: drop histogram samples */
            struct mtd_ql_point *p = ql_alloc(&q->sa, (fs.n + 1) * sizeof(*p));
            size_t o = 0;
            for (size_t k = 0; k < fs.n; k++)
                if (!fs.p[k].h)
                    p[o++] = fs.p[k];
            if (o > 0)
                ql_info(q, c->args[mi]->pos, "PromQL info: ignored histograms in a range "
                                             "containing both floats and histograms for "
                                             "metric name \"%s\"",
                        ql_lget(fs.l, "__name__") ? ql_lget(fs.l, "__name__") : "");
            fs.p = p;
            fs.n = o;
            if (o == 0)
                continue;
        }
        q->hout = NULL;
        if (f(q, c, a, &fs, m, t, &v)) {
            push(&r, fs.l, v, t, keep_name ? fs.drop : 1);
            r.vec.s[r.vec.n - 1].h = q->hout;
        }
    }
    return r;
}

/* Histogram-aware helpers for the range functions below: 1 = all histograms, 0 = all
 * floats, -1 = mixed (warned, no result). */
static int hist_kind(struct ql_query *q, struct ql_node *c, const struct ql_series *s)
{
    size_t nh = 0;
    for (size_t k = 0; k < s->n; k++)
        nh += s->p[k].h != NULL;
    if (nh == 0)
        return 0;
    if (nh == s->n)
        return 1;
    const char *nm = ql_lget(s->l, "__name__");
    ql_warn(q, c->args[0]->pos, "PromQL warning: encountered a mix of histograms and floats "
                                "for metric name \"%s\"", nm ? nm : "");
    return -1;
}

#define OVER(name, keep)                                                                     \
    static int o_##name(struct ql_query *q, struct ql_node *c, struct ql_val *a,              \
                        const struct ql_series *s, const struct ql_mat *m, int64_t t,         \
                        double *out);                                                        \
    static struct ql_val fn_##name(struct ql_query *q, struct ql_node *c, struct ql_val *a,   \
                                   int64_t t)                                                \
    {                                                                                        \
        int mi = 0;                                                                          \
        while (a[mi].type != MTD_QL_MATRIX)                                                  \
            mi++;                                                                            \
        return over_time(q, c, a, mi, t, o_##name, keep);                                    \
    }                                                                                        \
    static int o_##name(struct ql_query *q, struct ql_node *c, struct ql_val *a,              \
                        const struct ql_series *s, const struct ql_mat *m, int64_t t,         \
                        double *out)

static void counter_info(struct ql_query *q, const struct ql_series *s, int israte, int pos)
{
    if (s->info_done)
        return;
    const char *name = ql_lget(s->l, "__name__");
    if (!israte || !name || !*name)
        return;
    size_t n = strlen(name);
    static const char *suf[] = {"_total", "_sum", "_count", "_bucket"};
    for (int i = 0; i < 4; i++) {
        size_t k = strlen(suf[i]);
        if (n >= k && strcmp(name + n - k, suf[i]) == 0)
            return;
    }
    ql_info(q, pos, "PromQL info: metric might not be a counter, name does not end in "
               "_total/_sum/_count/_bucket: \"%s\"", name);
}

/* Prometheus' extrapolatedRate. */
static int extrapolated(const struct ql_series *s, const struct ql_mat *m, int is_counter,
                        int is_rate, double *out)
{
    if (s->n < 2)
        return 0;
    const struct mtd_ql_point *p = s->p;
    size_t last = s->n - 1;
    double result = p[last].v - p[0].v;
    if (is_counter && !s->noreset) {
        double prev = p[0].v;
        for (size_t i = 1; i < s->n; i++) {
            if (p[i].v < prev)
                result += prev;
            prev = p[i].v;
        }
    }
    double to_start = (double)(p[0].t - m->range_start) / 1000.0;
    double to_end = (double)(m->range_end - p[last].t) / 1000.0;
    double sampled = (double)(p[last].t - p[0].t) / 1000.0;
    double avg = sampled / (double)last;
    double threshold = avg * 1.1;
    if (to_start >= threshold)
        to_start = avg / 2;
    if (is_counter) {
        double to_zero = to_start;
        if (result > 0 && p[0].v >= 0)
            to_zero = sampled * (p[0].v / result);
        if (to_zero < to_start)
            to_start = to_zero;
    }
    if (to_end >= threshold)
        to_end = avg / 2;
    double factor = (sampled + to_start + to_end) / sampled;
    if (is_rate)
        factor /= (double)m->range / 1000.0;
    *out = result * factor;
    return 1;
}

/* Histogram flavour of extrapolatedRate (Prometheus' histogramRate): last - first (+ resets
 * for counters), scaled by the same extrapolation factor as floats; the zero point of a counter
 * comes from the observation count. Sets q->hout. */
/* Whether a range function's argument is a subquery (maybe in parentheses). */
static int arg_is_subquery(const struct ql_node *n)
{
    while (n && n->kind == QN_PAREN)
        n = n->lhs;
    return n && n->kind == QN_SUBQ;
}

/* Counter reset between prev and cur. A subquery's samples are re-evaluated at its own steps,
 * so their stored not_reset/reset hints say nothing about the step before: detect explicitly
 * (as Prometheus does) unless the hint marks a gauge. */
static int hist_reset(struct ql_query *q, const struct mtd_ql_hist *cur,
                      const struct mtd_ql_hist *prev, int subq)
{
    if (subq && cur->crh != MTD_QL_CRH_GAUGE && cur->crh != MTD_QL_CRH_UNKNOWN) {
        struct mtd_ql_hist *c2 = ql_alloc(&q->sa, sizeof(*c2));
        *c2 = *cur;
        c2->crh = MTD_QL_CRH_UNKNOWN;
        cur = c2;
    }
    return ql_hist_detect_reset(&q->sa, cur, prev);
}

static int hist_extrapolated(struct ql_query *q, struct ql_node *c, const struct ql_series *s,
                             const struct ql_mat *m, int is_counter, int is_rate)
{
    int subq = arg_is_subquery(c->args[0]);
    int k = hist_kind(q, c, s);
    if (k < 0 || s->n < 2)
        return 0;
    const struct mtd_ql_point *p = s->p;
    size_t last = s->n - 1;
    const char *nm = ql_lget(s->l, "__name__");
    int pos = c->args[0]->pos;
    const struct mtd_ql_hist *prev = p[0].h, *lh = p[last].h;
    int not_counter = is_counter && (prev->crh == MTD_QL_CRH_GAUGE ||
                                     lh->crh == MTD_QL_CRH_GAUGE);
    /* A reset between the 1st and 2nd sample: the 1st only matters through its count. */
    if (is_counter && hist_reset(q, p[1].h, prev, subq)) {
        struct mtd_ql_hist *z = ql_hist_new(&q->sa);
        z->schema = p[1].h->schema;
        z->custom = p[1].h->custom;
        z->ncustom = p[1].h->ncustom;
        prev = z;
    }
    int custom = prev->schema == MTD_QL_SCHEMA_CUSTOM;
    int mixed = (lh->schema == MTD_QL_SCHEMA_CUSTOM) != custom;
    for (size_t i = 1; i < last && is_counter && !mixed; i++) {
        if (p[i].h->crh == MTD_QL_CRH_GAUGE)
            not_counter = 1;
        if ((p[i].h->schema == MTD_QL_SCHEMA_CUSTOM) != custom)
            mixed = 1;
    }
    if (not_counter)
        ql_warn(q, pos, "PromQL warning: this native histogram metric is not a counter: \"%s\"",
                nm ? nm : "");
    if (mixed) {
        ql_warn(q, pos, "PromQL warning: vector contains a mix of histograms with exponential "
                        "and custom buckets schemas for metric name \"%s\"", nm ? nm : "");
        return 0;
    }
    int rec = 0;
    struct mtd_ql_hist *h = ql_hist_add_r(&q->sa, lh, prev, -1, &rec);
    if (!h) {
        ql_warn(q, pos, "PromQL warning: vector contains a mix of histograms with exponential "
                        "and custom buckets schemas for metric name \"%s\"", nm ? nm : "");
        return 0;
    }
    if (rec)
        ql_info(q, pos, "PromQL info: mismatched custom buckets were reconciled during "
                        "subtraction");
    if (is_counter) {
        int arec = 0;
        const struct mtd_ql_hist *pv = prev; /* the emptied 1st sample after an early reset */
        for (size_t i = 1; i < s->n; i++) {
            /* a subquery repeats one stored sample over steps: its reset counts once */
            if (p[i].h != pv && hist_reset(q, p[i].h, pv, subq)) {
                h = ql_hist_add_r(&q->sa, h, pv, 1, &arec);
                if (!h)
                    return 0;
            }
            pv = p[i].h;
        }
        if (arec)
            ql_info(q, pos, "PromQL info: mismatched custom buckets were reconciled during "
                            "addition");
    } else if (p[0].h->crh != MTD_QL_CRH_GAUGE || lh->crh != MTD_QL_CRH_GAUGE) {
        ql_warn(q, pos, "PromQL warning: this native histogram metric is not a gauge: \"%s\"",
                nm ? nm : "");
    }
    double to_start = (double)(p[0].t - m->range_start) / 1000.0;
    double to_end = (double)(m->range_end - p[last].t) / 1000.0;
    double sampled = (double)(p[last].t - p[0].t) / 1000.0;
    double avg = sampled / (double)last;
    double threshold = avg * 1.1;
    if (to_start >= threshold)
        to_start = avg / 2;
    if (is_counter) {
        double to_zero = to_start;
        if (h->count > 0 && p[0].h->count >= 0)
            to_zero = sampled * (p[0].h->count / h->count);
        if (to_zero < to_start)
            to_start = to_zero;
    }
    if (to_end >= threshold)
        to_end = avg / 2;
    double factor = (sampled + to_start + to_end) / sampled;
    if (is_rate)
        factor /= (double)m->range / 1000.0;
    h = ql_hist_scale(&q->sa, h, factor);
    h->crh = MTD_QL_CRH_GAUGE;
    q->hout = h;
    return 1;
}

static int hist_sum_over(struct ql_query *q, struct ql_node *c, const struct ql_series *s,
                         int avg);

/* rate/increase/delta over an anchored or smoothed range (Prometheus' extendedRate and
 * extendedHistogramRate). The series holds the samples of the widened window (ql_eval.c):
 * the value at each end of (range_start, range_end] is the sample at or before the start
 * (anchored) or one interpolated across the boundary (smoothed; a counter reset there counts
 * up from zero); counter resets inside the range add the value before the reset. */
static int ext_range(const struct ql_node *c)
{
    const struct ql_node *a = c->args[0];
    return a->kind == QN_MSEL && (a->lhs->anchored || a->lhs->smoothed);
}

static double ext_finterp(const struct mtd_ql_point *a, const struct mtd_ql_point *b, int64_t t,
                          int counter)
{
    double y1 = a->v, y2 = b->v;
    if (counter && y2 < y1)
        y1 = 0;
    return y1 + (y2 - y1) * (double)(t - a->t) / (double)(b->t - a->t);
}

static int ext_hrate(struct ql_query *q, struct ql_node *c, const struct ql_series *s,
                     const struct ql_mat *m, long first, long last, int smoothed,
                     int is_counter, int is_rate)
{
    const struct mtd_ql_point *p = s->p;
    const char *nm = ql_lget(s->l, "__name__");
    nm = nm ? nm : "";
    int pos = c->args[0]->pos;
    int64_t rs = m->range_start, re = m->range_end;
    int custom = p[first].h->schema == MTD_QL_SCHEMA_CUSTOM, gauge = 0;
    for (long i = first; i <= last; i++) {
        if ((p[i].h->schema == MTD_QL_SCHEMA_CUSTOM) != custom)
            goto mixed;
        gauge |= p[i].h->crh == MTD_QL_CRH_GAUGE;
    }
    if (is_counter && gauge)
        ql_warn(q, pos, "PromQL warning: this native histogram metric is not a counter: \"%s\"",
                nm);
    const struct mtd_ql_hist *left = p[first].h, *right = p[last].h;
    if (smoothed && p[first].t < rs &&
        !(left = ql_ext_hinterp(&q->sa, p[first].h, p[first].t, p[first + 1].h,
                                p[first + 1].t, rs, is_counter)))
        goto mixed;
    if (smoothed && last > 0 && p[last].t > re &&
        !(right = ql_ext_hinterp(&q->sa, p[last - 1].h, p[last - 1].t, p[last].h, p[last].t,
                                 re, is_counter)))
        goto mixed;
    if (!is_counter && (left->crh != MTD_QL_CRH_GAUGE || right->crh != MTD_QL_CRH_GAUGE))
        ql_warn(q, pos, "PromQL warning: this native histogram metric is not a gauge: \"%s\"",
                nm);
    struct mtd_ql_hist *r = ql_hist_add(&q->sa, right, left, -1);
    if (!r)
        goto mixed;
    if (is_counter) {
        long a = first + 1, b = last - 1;
        const struct mtd_ql_hist *prev = left;
        if (smoothed && p[first].t < rs &&
            ql_hist_detect_reset(&q->sa, p[first + 1].h, p[first].h)) {
            prev = p[first + 1].h; /* the left interpolation already spans that reset */
            a++;
        }
        if (a <= b + 1) {
            for (long i = a; i <= b && r; i++) {
                if (ql_hist_detect_reset(&q->sa, p[i].h, prev))
                    r = ql_hist_add(&q->sa, r, prev, 1);
                prev = p[i].h;
            }
            if (r && ql_hist_detect_reset(&q->sa, right, prev))
                r = ql_hist_add(&q->sa, r, prev, 1);
            if (!r)
                goto mixed;
        }
    }
    if (is_rate)
        r = ql_hist_div(&q->sa, r, (double)m->range / 1000.0);
    r->crh = MTD_QL_CRH_GAUGE;
    q->hout = r;
    return 1;
mixed:
    ql_warn(q, pos, "PromQL warning: vector contains a mix of histograms with exponential and "
                    "custom buckets schemas for metric name \"%s\"", nm);
    return 0;
}

static int ext_rate(struct ql_query *q, struct ql_node *c, const struct ql_series *s,
                    const struct ql_mat *m, int is_counter, int is_rate, double *out)
{
    const struct mtd_ql_point *p = s->p;
    long n = (long)s->n;
    int smoothed = c->args[0]->lhs->smoothed != 0;
    int64_t rs = m->range_start, re = m->range_end;
    long nh = 0;
    for (long i = 0; i < n; i++)
        nh += p[i].h != NULL;
    if (nh && nh != n) {
        const char *nm = ql_lget(s->l, "__name__");
        ql_warn(q, c->args[0]->pos, "PromQL warning: encountered a mix of histograms and floats "
                                    "for metric name \"%s\"", nm ? nm : "");
        return 0;
    }
    if (n == 0)
        return 0;
    long last = n - 1, first = 0;
    while (first < last && p[first].t <= rs)
        first++;
    first = first > 0 ? first - 1 : 0;
    if (smoothed) {
        long k = 0;
        while (k < n - 1 && p[k].t < re)
            k++;
        last = k;
    }
    if (p[last].t <= rs || (smoothed && p[first].t > re))
        return 0;
    if (nh)
        return ext_hrate(q, c, s, m, first, last, smoothed, is_counter, is_rate);
    double left = p[first].v, right = p[last].v;
    if (smoothed && p[first].t < rs)
        left = ext_finterp(&p[first], &p[first + 1], rs, is_counter);
    if (smoothed && last > 0 && p[last].t > re)
        right = ext_finterp(&p[last - 1], &p[last], re, is_counter);
    double r = right - left;
    if (is_counter) {
        long a = first, b = last;
        if (p[a].t <= rs)
            a++;
        if (p[b].t >= re)
            b--;
        double prev = left;
        for (long i = a; i <= b; i++) {
            if (p[i].v < prev)
                r += prev;
            prev = p[i].v;
        }
        if (right < prev)
            r += prev;
    }
    if (is_rate)
        r /= (double)m->range / 1000.0;
    *out = r;
    return 1;
}

static int any_hist(const struct ql_series *s)
{
    if (s->nohist)
        return 0;
    for (size_t k = 0; k < s->n; k++)
        if (s->p[k].h)
            return 1;
    return 0;
}

OVER(rate, 0)
{
    (void)a; (void)t;
    if (ext_range(c))
        return ext_rate(q, c, s, m, 1, 1, out);
    if (any_hist(s))
        return hist_extrapolated(q, c, s, m, 1, 1);
    counter_info(q, s, 1, c->args[0]->pos);
    return extrapolated(s, m, 1, 1, out);
}

OVER(increase, 0)
{
    (void)a; (void)t;
    if (ext_range(c))
        return ext_rate(q, c, s, m, 1, 0, out);
    if (any_hist(s))
        return hist_extrapolated(q, c, s, m, 1, 0);
    counter_info(q, s, 1, c->args[0]->pos);
    return extrapolated(s, m, 1, 0, out);
}

OVER(delta, 0)
{
    (void)a; (void)t;
    if (ext_range(c))
        return ext_rate(q, c, s, m, 0, 0, out);
    if (any_hist(s))
        return hist_extrapolated(q, c, s, m, 0, 0);
    return extrapolated(s, m, 0, 0, out);
}

static int instant_value(const struct ql_series *s, int is_rate, double *out)
{
    if (s->n < 2)
        return 0;
    struct mtd_ql_point l = s->p[s->n - 1], p = s->p[s->n - 2];
    double v = (is_rate && l.v < p.v) ? l.v : l.v - p.v;
    int64_t dt = l.t - p.t;
    if (dt == 0)
        return 0;
    if (is_rate)
        v /= (double)dt / 1000.0;
    *out = v;
    return 1;
}

/* irate/idelta over the last two samples (Prometheus' instantValue) when at least one of them
 * is a histogram: both histograms give a histogram result, a float/histogram pair warns. */
static int hist_instant(struct ql_query *q, struct ql_node *c, const struct ql_series *s,
                        int is_rate)
{
    if (s->n < 2)
        return 0;
    const struct mtd_ql_point *l = &s->p[s->n - 1], *p = &s->p[s->n - 2];
    const char *nm = ql_lget(s->l, "__name__");
    int pos = c->args[0]->pos;
    if (l->t == p->t)
        return 0;
    if (!l->h || !p->h) {
        ql_warn(q, pos, "PromQL warning: encountered a mix of histograms and floats for metric "
                        "name \"%s\"", nm ? nm : "");
        return 0;
    }
    if (is_rate && (l->h->crh == MTD_QL_CRH_GAUGE || p->h->crh == MTD_QL_CRH_GAUGE))
        ql_warn(q, pos, "PromQL warning: this native histogram metric is not a counter: \"%s\"",
                nm ? nm : "");
    if (!is_rate && (l->h->crh != MTD_QL_CRH_GAUGE || p->h->crh != MTD_QL_CRH_GAUGE))
        ql_warn(q, pos, "PromQL warning: this native histogram metric is not a gauge: \"%s\"",
                nm ? nm : "");
    const struct mtd_ql_hist *h = l->h;
    if (!is_rate || !ql_hist_detect_reset(&q->sa, l->h, p->h)) {
        int rec = 0;
        h = ql_hist_add_r(&q->sa, l->h, p->h, -1, &rec);
        if (!h) {
            ql_warn(q, pos, "PromQL warning: vector contains a mix of histograms with "
                            "exponential and custom buckets schemas for metric name \"%s\"",
                    nm ? nm : "");
            return 0;
        }
        if (rec)
            ql_info(q, pos, "PromQL info: mismatched custom buckets were reconciled during "
                            "subtraction");
    }
    int64_t dt = l->t - p->t;
    struct mtd_ql_hist *r = ql_hist_scale(&q->sa, h, is_rate ? 1000.0 / (double)dt : 1.0);
    r->crh = MTD_QL_CRH_GAUGE;
    q->hout = r;
    return 1;
}

OVER(irate, 0)
{
    (void)a; (void)t; (void)m;
    if (s->n >= 2 && (s->p[s->n - 1].h || s->p[s->n - 2].h))
        return hist_instant(q, c, s, 1);
    return instant_value(s, 1, out);
}

OVER(idelta, 0)
{
    (void)a; (void)t; (void)m;
    if (s->n >= 2 && (s->p[s->n - 1].h || s->p[s->n - 2].h))
        return hist_instant(q, c, s, 0);
    return instant_value(s, 0, out);
}

static void linreg(const struct ql_series *s, int64_t icpt, double *slope, double *intercept)
{
    double n = 0, sx = 0, cx = 0, sy = 0, cy = 0, sxy = 0, cxy = 0, sx2 = 0, cx2 = 0;
    double inity = s->p[0].v;
    int consty = 1;
    for (size_t i = 0; i < s->n; i++) {
        if (consty && i > 0 && s->p[i].v != inity)
            consty = 0;
        n += 1;
        double x = (double)(s->p[i].t - icpt) / 1e3;
        sx = ql_kahan_inc(x, sx, &cx);
        sy = ql_kahan_inc(s->p[i].v, sy, &cy);
        sxy = ql_kahan_inc(x * s->p[i].v, sxy, &cxy);
        sx2 = ql_kahan_inc(x * x, sx2, &cx2);
    }
    if (consty) {
        if (isinf(inity)) {
            *slope = NAN;
            *intercept = NAN;
        } else {
            *slope = 0;
            *intercept = inity;
        }
        return;
    }
    sx += cx;
    sy += cy;
    sxy += cxy;
    sx2 += cx2;
    double cov = sxy - sx * sy / n;
    double var = sx2 - sx * sx / n;
    *slope = cov / var;
    *intercept = sy / n - *slope * sx / n;
}

OVER(deriv, 0)
{
    (void)q; (void)c; (void)a; (void)t; (void)m;
    if (s->n < 2)
        return 0;
    double sl, ic;
    linreg(s, s->p[0].t, &sl, &ic);
    *out = sl;
    return 1;
}

OVER(predict_linear, 0)
{
    (void)q; (void)c; (void)m;
    if (s->n < 2)
        return 0;
    double sl, ic;
    linreg(s, t, &sl, &ic);
    *out = sl * a[1].scalar + ic;
    return 1;
}

OVER(resets, 0)
{
    (void)q; (void)c; (void)a; (void)t; (void)m;
    double r = 0;
    for (size_t i = 1; i < s->n; i++) {
        const struct mtd_ql_point *x = &s->p[i], *y = &s->p[i - 1];
        if (x->h && y->h) {
            r += x->h != y->h && ql_hist_detect_reset(&q->sa, x->h, y->h);
        } else if (!x->h && !y->h) {
            if (x->v < y->v)
                r++;
        } else {
            r++;
        }
    }
    *out = r;
    return 1;
}

OVER(changes, 0)
{
    (void)q; (void)c; (void)a; (void)t; (void)m;
    double r = 0;
    for (size_t i = 1; i < s->n; i++) {
        const struct mtd_ql_point *px = &s->p[i], *py = &s->p[i - 1];
        if (px->h || py->h) {
            if (!(px->h && py->h && ql_hist_equal(px->h, py->h)))
                r++;
            continue;
        }
        double x = px->v, y = py->v;
        if (x != y && !(isnan(x) && isnan(y)))
            r++;
    }
    *out = r;
    return 1;
}

OVER(avg_over_time, 0)
{
    (void)a; (void)t; (void)m;
    if (any_hist(s))
        return hist_sum_over(q, c, s, 1);
    double sum = s->p[0].v, cs = 0, mean = 0, cm = 0, cnt = 1;
    int inc = 0;
    for (size_t i = 1; i < s->n; i++) {
        double f = s->p[i].v;
        cnt++;
        if (!inc) {
            double c2 = cs;
            double nv = ql_kahan_inc(f, sum, &c2);
            if (!isinf(nv)) {
                sum = nv;
                cs = c2;
                continue;
            }
            inc = 1;
            mean = sum / (cnt - 1);
            cm = cs / (cnt - 1);
        }
        if (isinf(mean)) {
            if (isinf(f) && (mean > 0) == (f > 0))
                continue;
            if (!isinf(f) && !isnan(f))
                continue;
        }
        double cur = mean + cm;
        mean = ql_kahan_inc(f / cnt - cur / cnt, mean, &cm);
    }
    *out = inc ? mean + cm : (sum + cs) / cnt;
    return 1;
}

/* sum (avg = 0) or mean (avg = 1) of histogram samples; sets q->hout. */
static int hist_sum_over(struct ql_query *q, struct ql_node *c, const struct ql_series *s,
                         int avg)
{
    int k = hist_kind(q, c, s);
    if (k <= 0)
        return 0;
    struct ql_hacc acc;
    ql_hacc_init(&acc);
    const struct ql_node *sel = c->args[0];
    while (sel && sel->kind == QN_PAREN)
        sel = sel->lhs;
    int stats = sel && sel->kind == QN_MSEL && q->e && ql_hist_stats_sel(q->e->root, sel);
    for (size_t i = 0; i < s->n; i++) {
        const struct mtd_ql_hist *h = s->p[i].h;
        if (stats && i > 0 && h->crh == MTD_QL_CRH_UNKNOWN) {
            struct mtd_ql_hist *h2 = ql_alloc(&q->sa, sizeof(*h2));
            *h2 = *h;
            h2->crh = ql_hist_stats_hint(&q->sa, h, s->p[i - 1].h);
            h = h2;
        }
        if (ql_hacc_add(&q->sa, &acc, h, avg) < 0)
            return 0;
    }
    if (acc.reconciled)
        ql_info(q, c->args[0]->pos, "PromQL info: mismatched custom buckets were reconciled "
                                    "during aggregation");
    if (acc.crh_conflict)
        ql_warn(q, c->args[0]->pos, "PromQL warning: conflicting counter resets during "
                                    "histogram aggregation");
    q->hout = ql_hacc_finish(&q->sa, &acc, avg);
    return q->hout != NULL;
}

OVER(sum_over_time, 0)
{
    (void)a; (void)t; (void)m;
    if (any_hist(s))
        return hist_sum_over(q, c, s, 0);
    double sum = 0, cs = 0;
    for (size_t i = 0; i < s->n; i++)
        sum = ql_kahan_inc(s->p[i].v, sum, &cs);
    *out = isinf(sum) ? sum : sum + cs;
    return 1;
}

OVER(count_over_time, 0)
{
    (void)q; (void)c; (void)a; (void)t; (void)m;
    *out = (double)s->n;
    return 1;
}

OVER(min_over_time, 0)
{
    (void)q; (void)c; (void)a; (void)t; (void)m;
    double v = s->p[0].v;
    for (size_t i = 1; i < s->n; i++)
        if (s->p[i].v < v || isnan(v))
            v = s->p[i].v;
    *out = v;
    return 1;
}

OVER(max_over_time, 0)
{
    (void)q; (void)c; (void)a; (void)t; (void)m;
    double v = s->p[0].v;
    for (size_t i = 1; i < s->n; i++)
        if (s->p[i].v > v || isnan(v))
            v = s->p[i].v;
    *out = v;
    return 1;
}

OVER(ts_of_min_over_time, 0)
{
    (void)q; (void)c; (void)a; (void)t; (void)m;
    double v = s->p[0].v;
    int64_t ts = s->p[0].t;
    for (size_t i = 1; i < s->n; i++)
        if (s->p[i].v <= v || isnan(v)) {
            v = s->p[i].v;
            ts = s->p[i].t;
        }
    *out = (double)ts / 1000.0;
    return 1;
}

OVER(ts_of_max_over_time, 0)
{
    (void)q; (void)c; (void)a; (void)t; (void)m;
    double v = s->p[0].v;
    int64_t ts = s->p[0].t;
    for (size_t i = 1; i < s->n; i++)
        if (s->p[i].v >= v || isnan(v)) {
            v = s->p[i].v;
            ts = s->p[i].t;
        }
    *out = (double)ts / 1000.0;
    return 1;
}

OVER(ts_of_last_over_time, 0)
{
    (void)q; (void)c; (void)a; (void)t; (void)m;
    *out = (double)s->p[s->n - 1].t / 1000.0;
    return 1;
}

OVER(ts_of_first_over_time, 0)
{
    (void)q; (void)c; (void)a; (void)t; (void)m;
    *out = (double)s->p[0].t / 1000.0;
    return 1;
}

OVER(last_over_time, 1)
{
    (void)c; (void)a; (void)t; (void)m;
    q->hout = s->p[s->n - 1].h;
    *out = s->p[s->n - 1].v;
    return 1;
}

OVER(first_over_time, 1)
{
    (void)c; (void)a; (void)t; (void)m;
    q->hout = s->p[0].h;
    *out = s->p[0].v;
    return 1;
}

OVER(present_over_time, 0)
{
    (void)q; (void)c; (void)a; (void)t; (void)m; (void)s;
    *out = 1;
    return 1;
}

static void variance(const struct ql_series *s, double *mean_out, double *var_out)
{
    double count = 0, mean = 0, cmean = 0, aux = 0, caux = 0;
    for (size_t i = 0; i < s->n; i++) {
        double f = s->p[i].v;
        count++;
        double delta = f - (mean + cmean);
        mean = ql_kahan_inc(delta / count, mean, &cmean);
        aux = ql_kahan_inc(delta * (f - (mean + cmean)), aux, &caux);
    }
    *mean_out = mean + cmean;
    *var_out = (aux + caux) / count;
}

OVER(stddev_over_time, 0)
{
    (void)q; (void)c; (void)a; (void)t; (void)m;
    double mean, var;
    variance(s, &mean, &var);
    *out = sqrt(var);
    return 1;
}

OVER(stdvar_over_time, 0)
{
    (void)q; (void)c; (void)a; (void)t; (void)m;
    double mean, var;
    variance(s, &mean, &var);
    *out = var;
    return 1;
}

OVER(quantile_over_time, 0)
{
    (void)c; (void)t; (void)m;
    double phi = a[0].scalar;
    if (phi < 0 || phi > 1 || isnan(phi))
        ql_warn(q, c->args[0]->pos, 
                   "PromQL warning: quantile value should be between 0 and 1, got %s",
                isnan(phi) ? "NaN" : ql_printf(&q->sa, "%g", phi));
    double *v = ql_alloc(&q->sa, s->n * sizeof(double));
    for (size_t i = 0; i < s->n; i++)
        v[i] = s->p[i].v;
    *out = ql_quantile(phi, v, s->n);
    return 1;
}

OVER(mad_over_time, 0)
{
    (void)c; (void)a; (void)t; (void)m;
    double *v = ql_alloc(&q->sa, s->n * sizeof(double));
    for (size_t i = 0; i < s->n; i++) {
        v[i] = s->p[i].v;
        if (isnan(v[i])) {
            *out = NAN; /* a NaN sample makes the result NaN */
            return 1;
        }
    }
    double med = ql_quantile(0.5, v, s->n);
    for (size_t i = 0; i < s->n; i++)
        v[i] = fabs(s->p[i].v - med);
    *out = ql_quantile(0.5, v, s->n);
    return 1;
}

OVER(double_exponential_smoothing, 0)
{
    (void)c; (void)t; (void)m;
    double sf = a[1].scalar, tf = a[2].scalar;
    if (!(sf > 0 && sf < 1))
        ql_throw(&q->qa, OBS_EINVAL, "invalid smoothing factor. Expected: 0 < sf < 1, got: %f",
                 sf);
    if (!(tf > 0 && tf < 1))
        ql_throw(&q->qa, OBS_EINVAL, "invalid trend factor. Expected: 0 < tf < 1, got: %f", tf);
    if (s->n < 2)
        return 0;
    double s0 = 0, s1 = s->p[0].v, b = s->p[1].v - s->p[0].v;
    for (size_t i = 1; i < s->n; i++) {
        double x = sf * s->p[i].v;
        if (i > 1)
            b = tf * (s1 - s0) + (1 - tf) * b;
        double y = (1 - sf) * (s1 + b);
        s0 = s1;
        s1 = x + y;
    }
    *out = s1;
    return 1;
}

static struct ql_val fn_absent_over_time(struct ql_query *q, struct ql_node *c, struct ql_val *a,
                                         int64_t t)
{
    return fn_absent(q, c, a, t);
}

/* ---------------------------------------------------------------- histogram_quantile */
struct bucket {
    double ub, count;
};

static int bucket_cmp(const void *x, const void *y)
{
    const struct bucket *a = x, *b = y;
    return a->ub < b->ub ? -1 : a->ub > b->ub ? 1 : 0;
}

static int almost_equal(double a, double b, double eps)
{
    const double min_normal = 2.2250738585072014e-308;
    if (a == b)
        return 1;
    double abs_sum = fabs(a) + fabs(b), diff = fabs(a - b);
    if (a == 0 || b == 0 || abs_sum < min_normal)
        return diff < eps * min_normal;
    return diff / fmin(abs_sum, 1.7976931348623157e308) < eps;
}

static double bucket_quantile(double q, struct bucket *b, size_t n, int *forced)
{
    *forced = 0;
    if (isnan(q))
        return NAN;
    if (q < 0)
        return -INFINITY;
    if (q > 1)
        return INFINITY;
    qsort(b, n, sizeof(*b), bucket_cmp);
    if (!isinf(b[n - 1].ub) || b[n - 1].ub < 0)
        return NAN;
    /* coalesce equal upper bounds */
    size_t k = 0;
    struct bucket last = b[0];
    for (size_t i = 1; i < n; i++) {
        if (b[i].ub == last.ub)
            last.count += b[i].count;
        else {
            b[k++] = last;
            last = b[i];
        }
    }
    b[k++] = last;
    n = k;
    /* monotonicity and small deltas */
    double prev = b[0].count;
    for (size_t i = 1; i < n; i++) {
        double cur = b[i].count;
        if (cur == prev)
            continue;
        if (almost_equal(prev, cur, 1e-12)) {
            b[i].count = prev;
            continue;
        }
        if (cur < prev) {
            b[i].count = prev;
            *forced = 1;
            continue;
        }
        prev = cur;
    }
    if (n < 2)
        return NAN;
    double obs = b[n - 1].count;
    if (obs == 0)
        return NAN;
    double rank = q * obs;
    size_t i = 0;
    while (i < n - 1 && !(b[i].count >= rank))
        i++;
    if (i == n - 1)
        return b[n - 2].ub;
    if (i == 0 && b[0].ub <= 0)
        return b[0].ub;
    double start = 0, end = b[i].ub, count = b[i].count;
    if (i > 0) {
        start = b[i - 1].ub;
        count -= b[i - 1].count;
        rank -= b[i - 1].count;
    }
    return start + (end - start) * (rank / count);
}

/* Classic buckets of one histogram: the input samples sharing labels-without-le. */
struct hgroup {
    struct ql_labels l;
    struct bucket *b;
    size_t n, cap;
    const char *name;
    int dropped; /* a native histogram has the same labels: neither is evaluated */
};

static const char *group_key(struct ql_query *q, struct ql_labels gl)
{
    size_t kl;
    const char *key = ql_lsig(&q->sa, gl, NULL, 0, 0, &kl);
    const char *nm = ql_lget(gl, "__name__");
    return ql_printf(&q->sa, "%.*s\x01%s", (int)kl, key, nm ? nm : "");
}

/* Group the float samples of in by their labels without "le" (warning about a missing or bad
 * le at vpos). Native histograms are left out; *nskip (in.n flags) marks those that share
 * their labels with a classic group: both are dropped with a warning, as Prometheus does. */
static struct hgroup *classic_groups(struct ql_query *q, struct ql_vec in, int vpos, size_t *ng,
                                     unsigned char **nskip)
{
    struct ql_map gm;
    ql_map_init(&gm, &q->sa, in.n);
    struct hgroup *g = ql_alloc(&q->sa, (in.n + 1) * sizeof(*g));
    *ng = 0;
    for (size_t i = 0; i < in.n; i++) {
        if (in.s[i].h)
            continue;
        const char *le = ql_lget(in.s[i].l, "le");
        char *end = NULL;
        double ub = le ? strtod(le, &end) : 0;
        if (!le || !*le || *end) {
            const char *nm = ql_lget(in.s[i].l, "__name__");
            ql_warn(q, vpos,
                    "PromQL warning: bucket label \"le\" is missing or has a malformed "
                       "value of \"%s\" for metric name \"%s\"", le ? le : "", nm ? nm : "");
            continue;
        }
        struct ql_labels gl = ql_ldel(&q->sa, in.s[i].l, "le");
        const char *nm = ql_lget(gl, "__name__");
        const char *full = group_key(q, gl);
        int gi = ql_map_put(&gm, full, strlen(full), (int)*ng);
        if (gi < 0) {
            gi = (int)(*ng)++;
            g[gi].l = gl;
            g[gi].name = nm;
        }
        struct bucket bk = {ub, in.s[i].v};
        QL_PUSH(&q->sa, g[gi].b, g[gi].n, g[gi].cap, bk);
    }
    *nskip = ql_alloc(&q->sa, in.n + 1);
    for (size_t i = 0; i < in.n && *ng; i++) {
        if (!in.s[i].h)
            continue;
        const char *full = group_key(q, in.s[i].l);
        int gi = ql_map_get(&gm, full, strlen(full));
        if (gi < 0)
            continue;
        const char *nm = ql_lget(in.s[i].l, "__name__");
        ql_warn(q, vpos, "PromQL warning: vector contains a mix of classic and native histograms "
                         "for metric name \"%s\"", nm ? nm : "");
        g[gi].dropped = 1;
        (*nskip)[i] = 1;
    }
    return g;
}

static void quantile_range_warn(struct ql_query *q, int qpos, double phi)
{
    if (phi < 0 || phi > 1 || isnan(phi))
        ql_warn(q, qpos, "PromQL warning: quantile value should be between 0 and 1, got %s",
                isnan(phi) ? "NaN" : ql_printf(&q->sa, "%g", phi));
}

/* histogram_quantile over in for one phi; out has room for in.n samples more. */
static void hquantile(struct ql_query *q, double phi, struct ql_vec in, int qpos, int vpos,
                      int64_t t, struct ql_val *out)
{
    quantile_range_warn(q, qpos, phi);
    size_t ng;
    unsigned char *nskip;
    struct hgroup *g = classic_groups(q, in, vpos, &ng, &nskip);
    for (size_t i = 0; i < in.n; i++) {
        if (!in.s[i].h || nskip[i])
            continue;
        double v = ql_hist_quantile(&q->sa, phi, in.s[i].h);
        if (ql_hist_nan_obs(in.s[i].h) > 0) {
            const char *nm = ql_lget(in.s[i].l, "__name__");
            ql_info(q, vpos, "PromQL info: input to histogram_quantile has NaN observations, "
                             "result is %s for metric name \"%s\"",
                    isnan(v) ? "NaN" : "skewed higher", nm ? nm : "");
        }
        push(out, in.s[i].l, v, t, 1);
    }
    for (size_t i = 0; i < ng; i++) {
        if (g[i].dropped)
            continue;
        int forced;
        struct bucket *b = ql_alloc(&q->sa, (g[i].n + 1) * sizeof(*b));
        memcpy(b, g[i].b, g[i].n * sizeof(*b));
        double v = bucket_quantile(phi, b, g[i].n, &forced);
        if (forced)
            ql_info(q, vpos,
                    "PromQL info: input to histogram_quantile needed to be fixed for "
                       "monotonicity (see https://prometheus.io/docs/prometheus/latest/querying/"
                       "functions/#histogram_quantile) for metric name \"%s\"",
                    g[i].name ? g[i].name : "");
        push(out, g[i].l, v, t, 1);
    }
}

static struct ql_val fn_histogram_quantile(struct ql_query *q, struct ql_node *c,
                                           struct ql_val *a, int64_t t)
{
    struct ql_val r = new_vec(q, a[1].vec.n);
    hquantile(q, a[0].scalar, a[1].vec, c->args[0]->pos, c->args[1]->pos, t, &r);
    return r;
}

/* Label value for a quantile as Prometheus writes it: shortest form, ".0" when integral. */
static const char *quantile_label(struct ql_query *q, double phi)
{
    if (isnan(phi))
        return "NaN";
    if (isinf(phi))
        return phi > 0 ? "+Inf" : "-Inf";
    char buf[40];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, sizeof(buf), "%.*g", prec, phi);
        if (strtod(buf, NULL) == phi)
            break;
    }
    if (!strpbrk(buf, ".eEn"))
        strcat(buf, ".0");
    return ql_strdup(&q->sa, buf);
}

/* histogram_quantiles(v, "label", q1, q2, ...): one output series per input and quantile,
 * labelled label="q". */
static struct ql_val fn_histogram_quantiles(struct ql_query *q, struct ql_node *c,
                                            struct ql_val *a, int64_t t)
{
    const char *lname = a[1].str;
    if (!obs_label_name_valid(lname, strlen(lname)))
        ql_throw(&q->qa, OBS_EINVAL, "invalid quantile label name in histogram_quantiles(): %s",
                 lname);
    size_t nq = c->nargs - 2;
    struct ql_val r = new_vec(q, a[0].vec.n * nq);
    for (size_t k = 0; k < nq; k++) {
        double phi = a[2 + k].scalar;
        size_t from = r.vec.n;
        hquantile(q, phi, a[0].vec, c->args[2 + k]->pos, c->args[0]->pos, t, &r);
        const char *lv = quantile_label(q, phi);
        for (size_t i = from; i < r.vec.n; i++)
            r.vec.s[i].l = ql_lset(&q->sa, r.vec.s[i].l, lname, lv);
    }
    return r;
}

/* histogram_count/sum/avg/stddev/stdvar of native histograms (floats are ignored). */
static struct ql_val hist_stat(struct ql_query *q, struct ql_val *a, int64_t t, int which)
{
    struct ql_val r = new_vec(q, a[0].vec.n);
    for (size_t i = 0; i < a[0].vec.n; i++) {
        const struct mtd_ql_hist *h = a[0].vec.s[i].h;
        if (!h)
            continue;
        double v;
        switch (which) {
        case 0: v = h->count; break;
        case 1: v = h->sum; break;
        case 2: v = h->sum / h->count; break;
        case 3: v = sqrt(ql_hist_stdvar(&q->sa, h)); break;
        default: v = ql_hist_stdvar(&q->sa, h); break;
        }
        push(&r, a[0].vec.s[i].l, v, t, 1);
    }
    return r;
}

#define HSTAT(name, w)                                                                       \
    static struct ql_val fn_##name(struct ql_query *q, struct ql_node *c, struct ql_val *a,   \
                                   int64_t t)                                                \
    {                                                                                        \
        (void)c;                                                                             \
        return hist_stat(q, a, t, w);                                                        \
    }
HSTAT(histogram_count, 0)
HSTAT(histogram_sum, 1)
HSTAT(histogram_avg, 2)
HSTAT(histogram_stddev, 3)
HSTAT(histogram_stdvar, 4)

/* Classic buckets as a custom-bucket histogram (what Prometheus' NHCB conversion yields):
 * sorted, equal bounds merged, cumulative counts turned into per-bucket counts. NULL when the
 * highest bound is not +Inf. */
static const struct mtd_ql_hist *classic_to_nhcb(struct ql_query *q, struct bucket *b, size_t n)
{
    if (n == 0)
        return NULL;
    qsort(b, n, sizeof(*b), bucket_cmp);
    if (!isinf(b[n - 1].ub) || b[n - 1].ub < 0)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (k > 0 && b[k - 1].ub == b[i].ub)
            b[k - 1].count += b[i].count;
        else
            b[k++] = b[i];
    }
    n = k;
    struct mtd_ql_hist *h = ql_hist_new(&q->sa);
    h->schema = MTD_QL_SCHEMA_CUSTOM;
    h->crh = MTD_QL_CRH_GAUGE;
    h->ncustom = n - 1;
    h->custom = ql_alloc(&q->sa, n * sizeof(double));
    h->pidx = ql_alloc(&q->sa, n * sizeof(int32_t));
    h->pcnt = ql_alloc(&q->sa, n * sizeof(double));
    double prev = 0;
    for (size_t i = 0; i < n; i++) {
        if (i + 1 < n)
            h->custom[i] = b[i].ub;
        h->pidx[h->np] = (int32_t)i;
        h->pcnt[h->np++] = b[i].count - prev;
        prev = b[i].count;
    }
    h->count = b[n - 1].count;
    return h;
}

static struct ql_val fn_histogram_fraction(struct ql_query *q, struct ql_node *c,
                                           struct ql_val *a, int64_t t)
{
    struct ql_vec in = a[2].vec;
    double lo = a[0].scalar, hi = a[1].scalar;
    struct ql_val r = new_vec(q, in.n);
    size_t ng;
    unsigned char *nskip;
    struct hgroup *g = classic_groups(q, in, c->args[2]->pos, &ng, &nskip);
    for (size_t i = 0; i < in.n; i++) {
        const struct mtd_ql_hist *h = in.s[i].h;
        if (!h || nskip[i])
            continue;
        if (ql_hist_nan_obs(h) > 0) {
            const char *nm = ql_lget(in.s[i].l, "__name__");
            ql_info(q, c->args[2]->pos, "PromQL info: input to histogram_fraction has NaN "
                                        "observations, which are excluded from all fractions "
                                        "for metric name \"%s\"", nm ? nm : "");
        }
        push(&r, in.s[i].l, ql_hist_fraction(&q->sa, lo, hi, h), t, 1);
    }
    for (size_t i = 0; i < ng; i++) {
        if (g[i].dropped)
            continue;
        const struct mtd_ql_hist *h = classic_to_nhcb(q, g[i].b, g[i].n);
        double v = NAN;
        if (h && h->count != 0 && !isnan(lo) && !isnan(hi))
            v = lo >= hi ? 0 : ql_hist_fraction(&q->sa, lo, hi, h);
        push(&r, g[i].l, v, t, 1);
    }
    return r;
}

/* ---------------------------------------------------------------- info() */
/* info(v [, {selector}]) (Prometheus 3, experimental): each sample of v gets the data labels
 * of the info series (target_info unless the selector names others) that share its
 * identifying labels (instance, job). The info series are looked up as of the time the
 * argument's first selector reads (its @ and offset). Data-label matchers in the selector
 * restrict which labels are added; when one of them cannot match an absent label, samples
 * with no info series are dropped. Info series themselves (their name matches the selector's
 * positive __name__ matchers) pass through unchanged. Conflicting values for one label from
 * two info metrics are an error; two series of one info metric keep the newer sample. */
static const char *info_id_labels[2] = {"instance", "job"};

static const char *info_sig(struct ql_arena *a, const char *name, struct ql_labels l)
{
    const char *i = ql_lget(l, info_id_labels[0]), *j = ql_lget(l, info_id_labels[1]);
    return ql_printf(a, "%s\x01%s\x01%s", name, i ? i : "", j ? j : "");
}

static struct ql_val fn_info(struct ql_query *q, struct ql_node *c, struct ql_val *a,
                             int64_t t)
{
    struct ql_arena *sa = &q->sa;
    const struct ql_node *sel = c->args[1];
    struct ql_vec base = a[0].vec;
    struct ql_val r = {.type = MTD_QL_VECTOR};
    r.vec.s = ql_alloc(sa, (base.n + 1) * sizeof(struct ql_sample));
    if (base.n == 0)
        return r;
    const struct obs_matcher *ms = sel->ms;
    size_t nu = sel->nms_user;
    int positive = 0, ndata = 0, data_empty_ok = 1;
    for (size_t i = 0; i < nu; i++) {
        if (strcmp(ms[i].name, "__name__") == 0) {
            positive |= ms[i].type == OBS_MATCH_EQ || ms[i].type == OBS_MATCH_RE;
        } else {
            ndata++;
            if (!obs_matcher_matches_empty(&ms[i]))
                data_empty_ok = 0;
        }
    }
    /* which base samples are info series themselves; identifying values of the others */
    int *ignore = ql_alloc(sa, base.n * sizeof(int));
    struct ql_map idv[2];
    ql_map_init(&idv[0], sa, 16);
    ql_map_init(&idv[1], sa, 16);
    int any_id = 0;
    for (size_t i = 0; i < base.n; i++) {
        struct ql_labels l = base.s[i].l;
        const char *name = ql_lget(l, "__name__");
        int ign = positive;
        for (size_t k = 0; k < nu && ign; k++)
            if (strcmp(ms[k].name, "__name__") == 0 &&
                !obs_matcher_matches(&ms[k], name ? name : ""))
                ign = 0;
        ignore[i] = ign;
        if (ign)
            continue;
        for (int k = 0; k < 2; k++) {
            const char *v = ql_lget(l, info_id_labels[k]);
            if (v && *v) {
                ql_map_put(&idv[k], v, strlen(v), 1);
                any_id = 1;
            }
        }
    }
    /* info series at the reference time, newest per (name, identifying labels) */
    struct ql_map sigs;
    ql_map_init(&sigs, sa, 16);
    const struct ql_sample **pick = NULL;
    size_t npick = 0, cpick = 0;
    const char **names = NULL;
    size_t nnames = 0, cnames = 0;
    if (any_id) {
        int64_t ref = ql_info_ref_time(q, c->args[0], t);
        struct ql_val iv = ql_eval(q, (struct ql_node *)sel, ref);
        for (size_t i = 0; i < iv.vec.n; i++) {
            const struct ql_sample *s = &iv.vec.s[i];
            int ok = 1;
            for (int k = 0; k < 2 && ok; k++) {
                if (idv[k].n == 0)
                    continue;
                const char *v = ql_lget(s->l, info_id_labels[k]);
                ok = v && *v && ql_map_get(&idv[k], v, strlen(v)) >= 0;
            }
            if (!ok)
                continue;
            if (s->h)
                ql_throw(sa, OBS_EINVAL, "info sample should be float");
            const char *name = ql_lget(s->l, "__name__");
            name = name ? name : "";
            const char *sig = info_sig(sa, name, s->l);
            int prev = ql_map_put(&sigs, sig, strlen(sig), (int)npick);
            if (prev >= 0) {
                const struct ql_sample *e = pick[prev];
                if (e->t == s->t)
                    ql_throw(sa, OBS_EINVAL, "found duplicate series for info metric: existing "
                             "%s @ %lld, new %s @ %lld", ql_lstr(sa, e->l), (long long)e->t,
                             ql_lstr(sa, s->l), (long long)s->t);
                if (s->t > e->t)
                    pick[prev] = s;
                continue;
            }
            QL_PUSH(sa, pick, npick, cpick, s);
            size_t k = 0;
            while (k < nnames && strcmp(names[k], name) != 0)
                k++;
            if (k == nnames)
                QL_PUSH(sa, names, nnames, cnames, name);
        }
    }
    for (size_t i = 0; i < base.n; i++) {
        struct ql_sample o = base.s[i];
        if (ignore[i]) {
            r.vec.s[r.vec.n++] = o;
            continue;
        }
        struct ql_labels add = {NULL, 0, 0};
        int seen = 0;
        for (size_t k = 0; k < nnames; k++) {
            const char *sig = info_sig(sa, names[k], o.l);
            int idx = ql_map_get(&sigs, sig, strlen(sig));
            if (idx < 0)
                continue;
            struct ql_labels il = pick[idx]->l;
            for (uint32_t j = 0; j < il.n; j++) {
                const char *ln = il.v[j].name, *lv = il.v[j].value;
                if (strcmp(ln, "__name__") == 0)
                    continue;
                if (ndata) {
                    int listed = 0;
                    for (size_t m = 0; m < nu && !listed; m++)
                        listed = strcmp(ms[m].name, ln) == 0;
                    if (!listed)
                        continue;
                }
                const char *have = ql_lget(add, ln);
                if (have && strcmp(have, lv) != 0)
                    ql_throw(sa, OBS_EINVAL, "conflicting label: %s", ln);
                if (have || ql_lget(o.l, ln))
                    continue;
                add = ql_lset(sa, add, ln, lv);
            }
            seen++;
        }
        if (seen == 0 && !data_empty_ok)
            continue;
        for (uint32_t j = 0; j < add.n; j++)
            o.l = ql_lset(sa, o.l, add.v[j].name, add.v[j].value);
        r.vec.s[r.vec.n++] = o;
    }
    return r;
}

/* ---------------------------------------------------------------- series-at-a-time */
int ql_over_info(const struct ql_func *fn, ql_over_fn *f, int *keep_name)
{
    static const struct {
        ql_fn_impl impl;
        ql_over_fn over;
        int keep;
    } tab[] = {
        {fn_rate, o_rate, 0},
        {fn_increase, o_increase, 0},
        {fn_delta, o_delta, 0},
        {fn_irate, o_irate, 0},
        {fn_idelta, o_idelta, 0},
        {fn_deriv, o_deriv, 0},
        {fn_predict_linear, o_predict_linear, 0},
        {fn_resets, o_resets, 0},
        {fn_changes, o_changes, 0},
        {fn_avg_over_time, o_avg_over_time, 0},
        {fn_sum_over_time, o_sum_over_time, 0},
        {fn_count_over_time, o_count_over_time, 0},
        {fn_min_over_time, o_min_over_time, 0},
        {fn_max_over_time, o_max_over_time, 0},
        {fn_ts_of_min_over_time, o_ts_of_min_over_time, 0},
        {fn_ts_of_max_over_time, o_ts_of_max_over_time, 0},
        {fn_ts_of_last_over_time, o_ts_of_last_over_time, 0},
        {fn_ts_of_first_over_time, o_ts_of_first_over_time, 0},
        {fn_last_over_time, o_last_over_time, 1},
        {fn_first_over_time, o_first_over_time, 1},
        {fn_present_over_time, o_present_over_time, 0},
        {fn_stddev_over_time, o_stddev_over_time, 0},
        {fn_stdvar_over_time, o_stdvar_over_time, 0},
        {fn_quantile_over_time, o_quantile_over_time, 0},
        {fn_mad_over_time, o_mad_over_time, 0},
        {fn_double_exponential_smoothing, o_double_exponential_smoothing, 0},
    };
    for (size_t i = 0; i < sizeof(tab) / sizeof(tab[0]); i++)
        if (tab[i].impl == fn->impl) {
            *f = tab[i].over;
            *keep_name = tab[i].keep;
            return 1;
        }
    return 0;
}

/* ---------------------------------------------------------------- table */
/* nargs = required args; variadic: 0 exact, n>0 up to n optional extra (of the last type),
 * -1 unlimited. */
static const struct ql_func funcs[] = {
    {"abs", {V}, 1, 0, V, fn_abs, 0},
    {"absent", {V}, 1, 0, V, fn_absent, 0},
    {"absent_over_time", {M}, 1, 0, V, fn_absent_over_time, 0},
    {"acos", {V}, 1, 0, V, fn_acos, 0},
    {"acosh", {V}, 1, 0, V, fn_acosh, 0},
    {"asin", {V}, 1, 0, V, fn_asin, 0},
    {"asinh", {V}, 1, 0, V, fn_asinh, 0},
    {"atan", {V}, 1, 0, V, fn_atan, 0},
    {"atanh", {V}, 1, 0, V, fn_atanh, 0},
    {"avg_over_time", {M}, 1, 0, V, fn_avg_over_time, 0},
    {"ceil", {V}, 1, 0, V, fn_ceil, 0},
    {"changes", {M}, 1, 0, V, fn_changes, 0},
    {"clamp", {V, S, S}, 3, 0, V, fn_clamp, 0},
    {"clamp_max", {V, S}, 2, 0, V, fn_clamp_max, 0},
    {"clamp_min", {V, S}, 2, 0, V, fn_clamp_min, 0},
    {"cos", {V}, 1, 0, V, fn_cos, 0},
    {"cosh", {V}, 1, 0, V, fn_cosh, 0},
    {"count_over_time", {M}, 1, 0, V, fn_count_over_time, 0},
    {"day_of_month", {V}, 0, 1, V, fn_day_of_month, 0},
    {"day_of_week", {V}, 0, 1, V, fn_day_of_week, 0},
    {"day_of_year", {V}, 0, 1, V, fn_day_of_year, 0},
    {"days_in_month", {V}, 0, 1, V, fn_days_in_month, 0},
    {"deg", {V}, 1, 0, V, fn_deg, 0},
    {"delta", {M}, 1, 0, V, fn_delta, 0},
    {"deriv", {M}, 1, 0, V, fn_deriv, 0},
    {"double_exponential_smoothing", {M, S, S}, 3, 0, V, fn_double_exponential_smoothing, 1},
    {"end", {MTD_QL_NONE}, 0, 0, S, fn_end, 1},
    {"exp", {V}, 1, 0, V, fn_exp, 0},
    {"first_over_time", {M}, 1, 0, V, fn_first_over_time, 1},
    {"floor", {V}, 1, 0, V, fn_floor, 0},
    {"histogram_avg", {V}, 1, 0, V, fn_histogram_avg, 0},
    {"histogram_count", {V}, 1, 0, V, fn_histogram_count, 0},
    {"histogram_fraction", {S, S, V}, 3, 0, V, fn_histogram_fraction, 0},
    {"histogram_quantile", {S, V}, 2, 0, V, fn_histogram_quantile, 0},
    {"histogram_quantiles", {V, STR, S}, 3, -1, V, fn_histogram_quantiles, 1},
    {"histogram_stddev", {V}, 1, 0, V, fn_histogram_stddev, 0},
    {"histogram_stdvar", {V}, 1, 0, V, fn_histogram_stdvar, 0},
    {"histogram_sum", {V}, 1, 0, V, fn_histogram_sum, 0},
    /* Prometheus 2.x name of double_exponential_smoothing (renamed in 3.0); same algorithm. */
    {"holt_winters", {M, S, S}, 3, 0, V, fn_double_exponential_smoothing, 0},
    {"hour", {V}, 0, 1, V, fn_hour, 0},
    {"idelta", {M}, 1, 0, V, fn_idelta, 0},
    {"increase", {M}, 1, 0, V, fn_increase, 0},
    {"info", {V, V}, 1, 1, V, fn_info, 1},
    {"irate", {M}, 1, 0, V, fn_irate, 0},
    {"label_join", {V, STR, STR, STR}, 3, -1, V, fn_label_join, 0},
    {"label_replace", {V, STR, STR, STR}, 5, 0, V, fn_label_replace, 0},
    {"last_over_time", {M}, 1, 0, V, fn_last_over_time, 0},
    {"ln", {V}, 1, 0, V, fn_ln, 0},
    {"log10", {V}, 1, 0, V, fn_log10, 0},
    {"log2", {V}, 1, 0, V, fn_log2, 0},
    {"mad_over_time", {M}, 1, 0, V, fn_mad_over_time, 1},
    {"max_over_time", {M}, 1, 0, V, fn_max_over_time, 0},
    {"max_of", {S, S}, 2, 0, S, fn_max_of, 1},
    {"min_of", {S, S}, 2, 0, S, fn_min_of, 1},
    {"min_over_time", {M}, 1, 0, V, fn_min_over_time, 0},
    {"minute", {V}, 0, 1, V, fn_minute, 0},
    {"month", {V}, 0, 1, V, fn_month, 0},
    {"pi", {MTD_QL_NONE}, 0, 0, S, fn_pi, 0},
    {"predict_linear", {M, S}, 2, 0, V, fn_predict_linear, 0},
    {"present_over_time", {M}, 1, 0, V, fn_present_over_time, 0},
    {"quantile_over_time", {S, M}, 2, 0, V, fn_quantile_over_time, 0},
    {"rad", {V}, 1, 0, V, fn_rad, 0},
    {"range", {MTD_QL_NONE}, 0, 0, S, fn_range, 1},
    {"rate", {M}, 1, 0, V, fn_rate, 0},
    {"resets", {M}, 1, 0, V, fn_resets, 0},
    {"round", {V, S}, 1, 1, V, fn_round, 0},
    {"scalar", {V}, 1, 0, S, fn_scalar, 0},
    {"sgn", {V}, 1, 0, V, fn_sgn, 0},
    {"sin", {V}, 1, 0, V, fn_sin, 0},
    {"sinh", {V}, 1, 0, V, fn_sinh, 0},
    {"sort", {V}, 1, 0, V, fn_sort, 0},
    {"sort_by_label", {V, STR}, 1, -1, V, fn_sort_by_label, 1},
    {"sort_by_label_desc", {V, STR}, 1, -1, V, fn_sort_by_label_desc, 1},
    {"sort_desc", {V}, 1, 0, V, fn_sort_desc, 0},
    {"sqrt", {V}, 1, 0, V, fn_sqrt, 0},
    {"start", {MTD_QL_NONE}, 0, 0, S, fn_start, 1},
    {"step", {MTD_QL_NONE}, 0, 0, S, fn_step, 1},
    {"stddev_over_time", {M}, 1, 0, V, fn_stddev_over_time, 0},
    {"stdvar_over_time", {M}, 1, 0, V, fn_stdvar_over_time, 0},
    {"sum_over_time", {M}, 1, 0, V, fn_sum_over_time, 0},
    {"tan", {V}, 1, 0, V, fn_tan, 0},
    {"tanh", {V}, 1, 0, V, fn_tanh, 0},
    {"time", {MTD_QL_NONE}, 0, 0, S, fn_time, 0},
    {"timestamp", {V}, 1, 0, V, fn_timestamp, 0},
    {"ts_of_first_over_time", {M}, 1, 0, V, fn_ts_of_first_over_time, 1},
    {"ts_of_last_over_time", {M}, 1, 0, V, fn_ts_of_last_over_time, 1},
    {"ts_of_max_over_time", {M}, 1, 0, V, fn_ts_of_max_over_time, 1},
    {"ts_of_min_over_time", {M}, 1, 0, V, fn_ts_of_min_over_time, 1},
    {"vector", {S}, 1, 0, V, fn_vector, 0},
    {"year", {V}, 0, 1, V, fn_year, 0},
};

const struct ql_func *ql_func_lookup(const char *name, size_t n)
{
    for (size_t i = 0; i < sizeof(funcs) / sizeof(funcs[0]); i++)
        if (strlen(funcs[i].name) == n && strncmp(funcs[i].name, name, n) == 0)
            return &funcs[i];
    return NULL;
}
