/*
 * ql_hist.c -- float native-histogram arithmetic for the PromQL engine: copies, schema
 * reduction, addition/subtraction (with zero-threshold and schema reconciliation), scaling,
 * equality, the statistics behind histogram_quantile/fraction/stddev/stdvar, the trim
 * operators </ and >/, the compensated sum/mean accumulator of sum/avg/sum_over_time/
 * avg_over_time, and the counter-reset hints Prometheus' HistogramStatsIterator derives.
 *
 * Representation: struct mtd_ql_hist (mtd_ql.h) with sparse (index, count) bucket lists.
 * Every histogram built here lives in a ql_arena; inputs are never modified.
 * Semantics follow Prometheus' model/histogram.FloatHistogram and promql/quantile.go.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/obs_sbuf.h"
#include "metricsd/ql/ql_int.h"

struct mtd_ql_hist *ql_hist_new(struct ql_arena *a)
{
    return ql_alloc(a, sizeof(struct mtd_ql_hist));
}

static void copy_buckets(struct ql_arena *a, int32_t **di, double **dc, const int32_t *si,
                         const double *sc, size_t n)
{
    *di = ql_alloc(a, (n + 1) * sizeof(int32_t));
    *dc = ql_alloc(a, (n + 1) * sizeof(double));
    if (n) {
        memcpy(*di, si, n * sizeof(int32_t));
        memcpy(*dc, sc, n * sizeof(double));
    }
}

struct mtd_ql_hist *ql_hist_copy(struct ql_arena *a, const struct mtd_ql_hist *h)
{
    struct mtd_ql_hist *r = ql_hist_new(a);
    *r = *h;
    copy_buckets(a, &r->pidx, &r->pcnt, h->pidx, h->pcnt, h->np);
    copy_buckets(a, &r->nidx, &r->ncnt, h->nidx, h->ncnt, h->nn);
    if (h->ncustom) {
        r->custom = ql_alloc(a, h->ncustom * sizeof(double));
        memcpy(r->custom, h->custom, h->ncustom * sizeof(double));
    }
    return r;
}

/* Upper bound of exponential bucket idx. */
static double exp_bound(int32_t idx, int32_t schema)
{
    return exp2((double)idx * exp2(-(double)schema));
}

/* Bounds of positive bucket idx. */
void ql_hist_bucket_bounds(const struct mtd_ql_hist *h, int32_t idx, int neg, double *lo,
                           double *hi)
{
    if (h->schema == MTD_QL_SCHEMA_CUSTOM) {
        *lo = idx <= 0 ? -INFINITY : h->custom[idx - 1];
        *hi = (size_t)idx >= h->ncustom ? INFINITY : h->custom[idx];
        return;
    }
    double l = exp_bound(idx - 1, h->schema), u = exp_bound(idx, h->schema);
    if (neg) {
        *lo = -u;
        *hi = -l;
    } else {
        *lo = l;
        *hi = u;
    }
}

/* Merge sparse (idx, cnt) lists: out = x + f*y, with y's indexes mapped by shift (schema
 * reduction: ((idx - 1) >> shift) + 1). Zero-count buckets are dropped when compact. */
static void merge(struct ql_arena *a, const int32_t *xi, const double *xc, size_t xn, int xs,
                  const int32_t *yi, const double *yc, size_t yn, int ys, double f,
                  int32_t **oi, double **oc, size_t *on)
{
    size_t cap = xn + yn + 1, n = 0;
    int32_t *ri = ql_alloc(a, cap * sizeof(int32_t));
    double *rc = ql_alloc(a, cap * sizeof(double));
    size_t i = 0, j = 0;
    while (i < xn || j < yn) {
        int32_t ix = i < xn ? ((xi[i] - 1) >> xs) + 1 : INT32_MAX;
        int32_t iy = j < yn ? ((yi[j] - 1) >> ys) + 1 : INT32_MAX;
        int32_t idx = ix < iy ? ix : iy;
        double c = 0;
        while (i < xn && ((xi[i] - 1) >> xs) + 1 == idx)
            c += xc[i++];
        while (j < yn && ((yi[j] - 1) >> ys) + 1 == idx)
            c += f * yc[j++];
        ri[n] = idx;
        rc[n++] = c;
    }
    *oi = ri;
    *oc = rc;
    *on = n;
}

/* Move buckets whose upper bound is <= zt into the zero bucket (widening the threshold). */
static void widen_zero(struct ql_arena *a, struct mtd_ql_hist *h, double zt)
{
    if (h->schema == MTD_QL_SCHEMA_CUSTOM || zt <= h->zero_threshold)
        return;
    struct mtd_ql_hist *c = h;
    size_t k = 0;
    int32_t *pi = ql_alloc(a, (c->np + 1) * sizeof(int32_t));
    double *pc = ql_alloc(a, (c->np + 1) * sizeof(double));
    for (size_t i = 0; i < c->np; i++) {
        double lo, hi;
        ql_hist_bucket_bounds(c, c->pidx[i], 0, &lo, &hi);
        if (hi <= zt) {
            c->zero_count += c->pcnt[i];
            continue;
        }
        pi[k] = c->pidx[i];
        pc[k++] = c->pcnt[i];
    }
    c->pidx = pi;
    c->pcnt = pc;
    c->np = k;
    k = 0;
    int32_t *ni = ql_alloc(a, (c->nn + 1) * sizeof(int32_t));
    double *nc = ql_alloc(a, (c->nn + 1) * sizeof(double));
    for (size_t i = 0; i < c->nn; i++) {
        double lo, hi;
        ql_hist_bucket_bounds(c, c->nidx[i], 0, &lo, &hi);
        if (hi <= zt) {
            c->zero_count += c->ncnt[i];
            continue;
        }
        ni[k] = c->nidx[i];
        nc[k++] = c->ncnt[i];
    }
    c->nidx = ni;
    c->ncnt = nc;
    c->nn = k;
    c->zero_threshold = zt;
}

static int custom_equal(const struct mtd_ql_hist *x, const struct mtd_ql_hist *y)
{
    if (x->ncustom != y->ncustom)
        return 0;
    for (size_t i = 0; i < x->ncustom; i++)
        if (x->custom[i] != y->custom[i])
            return 0;
    return 1;
}

int ql_hist_compatible(const struct mtd_ql_hist *x, const struct mtd_ql_hist *y)
{
    int cx = x->schema == MTD_QL_SCHEMA_CUSTOM, cy = y->schema == MTD_QL_SCHEMA_CUSTOM;
    return cx == cy;
}

/* Copy of custom-bucket histogram h with its buckets folded onto bounds b[0..nb), which are a
 * subset of h->custom: each bucket goes to the first bound >= its upper bound (+Inf last). */
static struct mtd_ql_hist *fold_custom(struct ql_arena *a, const struct mtd_ql_hist *h,
                                       const double *b, size_t nb)
{
    struct mtd_ql_hist *r = ql_hist_copy(a, h);
    r->custom = ql_alloc(a, (nb + 1) * sizeof(double));
    if (nb)
        memcpy(r->custom, b, nb * sizeof(double));
    r->ncustom = nb;
    size_t n = 0, j = 0;
    for (size_t i = 0; i < h->np; i++) {
        double ub = h->pidx[i] >= 0 && (size_t)h->pidx[i] < h->ncustom ? h->custom[h->pidx[i]]
                                                                       : INFINITY;
        while (j < nb && b[j] < ub)
            j++;
        int32_t idx = (int32_t)j;
        if (n > 0 && r->pidx[n - 1] == idx) {
            r->pcnt[n - 1] += h->pcnt[i];
            continue;
        }
        r->pidx[n] = idx;
        r->pcnt[n++] = h->pcnt[i];
    }
    r->np = n;
    return r;
}

/* Fold two custom-bucket histograms with different bounds onto their common bounds
 * (Prometheus' NHCB reconciliation). */
static void reconcile_custom(struct ql_arena *a, const struct mtd_ql_hist *x,
                             const struct mtd_ql_hist *y, const struct mtd_ql_hist **xo,
                             const struct mtd_ql_hist **yo)
{
    size_t cap = x->ncustom < y->ncustom ? x->ncustom : y->ncustom, nb = 0;
    double *b = ql_alloc(a, (cap + 1) * sizeof(double));
    for (size_t i = 0, j = 0; i < x->ncustom && j < y->ncustom;) {
        if (x->custom[i] == y->custom[j]) {
            b[nb++] = x->custom[i];
            i++;
            j++;
        } else if (x->custom[i] < y->custom[j]) {
            i++;
        } else {
            j++;
        }
    }
    *xo = fold_custom(a, x, b, nb);
    *yo = fold_custom(a, y, b, nb);
}

/* x + f*y (f = 1 add, -1 subtract). Returns NULL when the schemas cannot be combined
 * (exponential with custom buckets, or different custom bounds). */
struct mtd_ql_hist *ql_hist_add(struct ql_arena *a, const struct mtd_ql_hist *x,
                                const struct mtd_ql_hist *y, double f)
{
    return ql_hist_add_r(a, x, y, f, NULL);
}

struct mtd_ql_hist *ql_hist_add_r(struct ql_arena *a, const struct mtd_ql_hist *x,
                                  const struct mtd_ql_hist *y, double f, int *reconciled)
{
    if (!ql_hist_compatible(x, y))
        return NULL;
    if (x->schema == MTD_QL_SCHEMA_CUSTOM && !custom_equal(x, y)) {
        reconcile_custom(a, x, y, &x, &y);
        if (reconciled)
            *reconciled = 1;
    }
    struct mtd_ql_hist *xx = ql_hist_copy(a, x), *yy = ql_hist_copy(a, y);
    double zt = x->zero_threshold > y->zero_threshold ? x->zero_threshold : y->zero_threshold;
    widen_zero(a, xx, zt);
    widen_zero(a, yy, zt);
    int32_t schema = x->schema < y->schema ? x->schema : y->schema;
    int xs = x->schema == MTD_QL_SCHEMA_CUSTOM ? 0 : x->schema - schema;
    int ys = y->schema == MTD_QL_SCHEMA_CUSTOM ? 0 : y->schema - schema;
    struct mtd_ql_hist *r = ql_hist_new(a);
    r->schema = schema;
    r->zero_threshold = zt;
    r->zero_count = xx->zero_count + f * yy->zero_count;
    r->count = x->count + f * y->count;
    r->sum = x->sum + f * y->sum;
    r->custom = xx->custom;
    r->ncustom = xx->ncustom;
    r->crh = x->crh == MTD_QL_CRH_GAUGE || y->crh == MTD_QL_CRH_GAUGE ? MTD_QL_CRH_GAUGE
                                                                      : MTD_QL_CRH_UNKNOWN;
    if (f < 0)
        r->crh = MTD_QL_CRH_GAUGE;
    merge(a, xx->pidx, xx->pcnt, xx->np, xs, yy->pidx, yy->pcnt, yy->np, ys, f, &r->pidx,
          &r->pcnt, &r->np);
    merge(a, xx->nidx, xx->ncnt, xx->nn, xs, yy->nidx, yy->ncnt, yy->nn, ys, f, &r->nidx,
          &r->ncnt, &r->nn);
    return r;
}

struct mtd_ql_hist *ql_hist_scale(struct ql_arena *a, const struct mtd_ql_hist *h, double f)
{
    struct mtd_ql_hist *r = ql_hist_copy(a, h);
    r->count *= f;
    r->sum *= f;
    r->zero_count *= f;
    for (size_t i = 0; i < r->np; i++)
        r->pcnt[i] *= f;
    for (size_t i = 0; i < r->nn; i++)
        r->ncnt[i] *= f;
    if (f < 0) {
        /* A negated histogram is a gauge: counts may be negative. */
        r->crh = MTD_QL_CRH_GAUGE;
    }
    return r;
}

/* h / f as Prometheus' FloatHistogram.Div: each count divided; division by zero removes all
 * buckets (count, sum and zero count become +-Inf or NaN). */
struct mtd_ql_hist *ql_hist_div(struct ql_arena *a, const struct mtd_ql_hist *h, double f)
{
    struct mtd_ql_hist *r = ql_hist_copy(a, h);
    r->count /= f;
    r->sum /= f;
    r->zero_count /= f;
    if (f == 0) {
        r->np = 0;
        r->nn = 0;
    } else {
        for (size_t i = 0; i < r->np; i++)
            r->pcnt[i] /= f;
        for (size_t i = 0; i < r->nn; i++)
            r->ncnt[i] /= f;
    }
    if (f < 0)
        r->crh = MTD_QL_CRH_GAUGE;
    return r;
}

/* Equality after compaction (zero buckets ignored), as histogram.FloatHistogram.Equals. */
int ql_hist_equal(const struct mtd_ql_hist *x, const struct mtd_ql_hist *y)
{
    if (x->schema != y->schema || x->zero_threshold != y->zero_threshold ||
        x->zero_count != y->zero_count || x->count != y->count)
        return 0;
    if (!(x->sum == y->sum || (isnan(x->sum) && isnan(y->sum))))
        return 0;
    if (x->schema == MTD_QL_SCHEMA_CUSTOM && !custom_equal(x, y))
        return 0;
    for (int side = 0; side < 2; side++) {
        const int32_t *xi = side ? x->nidx : x->pidx, *yi = side ? y->nidx : y->pidx;
        const double *xc = side ? x->ncnt : x->pcnt, *yc = side ? y->ncnt : y->pcnt;
        size_t xn = side ? x->nn : x->np, yn = side ? y->nn : y->np;
        size_t i = 0, j = 0;
        for (;;) {
            while (i < xn && xc[i] == 0)
                i++;
            while (j < yn && yc[j] == 0)
                j++;
            if (i >= xn || j >= yn)
                break;
            if (xi[i] != yi[j] || xc[i] != yc[j])
                return 0;
            i++;
            j++;
        }
        if (i < xn || j < yn)
            return 0;
    }
    return 1;
}

/* Buckets in ascending order of their bounds: negative (most negative first), zero,
 * positive. Returns the count (arena arrays). */
struct ql_hbucket {
    double lo, hi, cnt;
};

static size_t all_buckets(struct ql_arena *a, const struct mtd_ql_hist *h,
                          struct ql_hbucket **out)
{
    struct ql_hbucket *b = ql_alloc(a, (h->np + h->nn + 2) * sizeof(*b));
    size_t n = 0;
    for (size_t i = h->nn; i-- > 0;) {
        ql_hist_bucket_bounds(h, h->nidx[i], 1, &b[n].lo, &b[n].hi);
        b[n++].cnt = h->ncnt[i];
    }
    if (h->schema != MTD_QL_SCHEMA_CUSTOM &&
        (h->zero_count != 0 || h->zero_threshold != 0)) {
        b[n].lo = -h->zero_threshold;
        b[n].hi = h->zero_threshold;
        b[n++].cnt = h->zero_count;
    }
    for (size_t i = 0; i < h->np; i++) {
        ql_hist_bucket_bounds(h, h->pidx[i], 0, &b[n].lo, &b[n].hi);
        b[n++].cnt = h->pcnt[i];
    }
    *out = b;
    return n;
}

double ql_hist_nan_obs(const struct mtd_ql_hist *h)
{
    if (!isnan(h->sum))
        return 0;
    double t = h->zero_count;
    for (size_t i = 0; i < h->np; i++)
        t += h->pcnt[i];
    for (size_t i = 0; i < h->nn; i++)
        t += h->ncnt[i];
    return h->count > t ? h->count - t : 0;
}

double ql_hist_quantile(struct ql_arena *a, double q, const struct mtd_ql_hist *h)
{
    if (q < 0)
        return -INFINITY;
    if (q > 1)
        return INFINITY;
    if (h->count == 0 || isnan(q))
        return NAN;
    double nanobs = ql_hist_nan_obs(h);
    /* NaN observations sort above everything: quantiles that fall among them are NaN */
    if (nanobs > 0 && q > (h->count - nanobs) / h->count)
        return NAN;
    struct ql_hbucket *b;
    size_t n = all_buckets(a, h, &b);
    if (n == 0)
        return NAN;
    int forward = isnan(h->sum) || q < 0.5;
    double rank = forward ? q * h->count : (1 - q) * h->count;
    double count = 0;
    struct ql_hbucket bk = {0, 0, 0};
    for (size_t k = 0; k < n; k++) {
        size_t i = forward ? k : n - 1 - k;
        if (b[i].cnt == 0)
            continue;
        bk = b[i];
        count += b[i].cnt;
        if (count >= rank)
            break;
    }
    if (bk.lo < 0 && bk.hi > 0) {
        if (h->nn == 0 && h->np > 0)
            bk.lo = 0;
        else if (h->np == 0 && h->nn > 0)
            bk.hi = 0;
    }
    if (h->schema == MTD_QL_SCHEMA_CUSTOM && isinf(bk.lo) && bk.hi > 0)
        bk.lo = 0;
    /* The lowest custom bucket (-Inf, upper] with upper <= 0: no lower end to interpolate
     * from, so the quantile is its upper bound (as for classic buckets). */
    if (h->schema == MTD_QL_SCHEMA_CUSTOM && isinf(bk.lo) && bk.lo < 0 && count >= rank)
        return bk.hi;
    if (count > h->count)
        count = h->count;
    if (count < rank)
        return bk.hi;
    if (forward)
        rank -= count - bk.cnt;
    else
        rank = count - rank;
    double frac = rank / bk.cnt;
    if (h->schema == MTD_QL_SCHEMA_CUSTOM || (bk.lo <= 0 && bk.hi >= 0)) {
        if (isinf(bk.hi))
            return bk.lo;
        return bk.lo + (bk.hi - bk.lo) * frac;
    }
    double ll = log2(fabs(bk.lo)), lu = log2(fabs(bk.hi));
    if (bk.lo > 0)
        return exp2(ll + (lu - ll) * frac);
    return -exp2(lu + (ll - lu) * (1 - frac));
}

/* Interpolated share of observations in [lo, hi]. */
double ql_hist_fraction(struct ql_arena *a, double lo, double hi, const struct mtd_ql_hist *h)
{
    if (h->count == 0 || isnan(lo) || isnan(hi))
        return NAN;
    if (lo >= hi)
        return 0;
    struct ql_hbucket *b;
    size_t n = all_buckets(a, h, &b);
    double rank = 0;
    for (size_t i = 0; i < n; i++) {
        double bl = b[i].lo, bu = b[i].hi;
        if (b[i].cnt == 0)
            continue;
        int zero = h->schema != MTD_QL_SCHEMA_CUSTOM && bl < 0 && bu > 0;
        if (zero) {
            if (h->nn == 0 && h->np > 0)
                bl = 0;
            else if (h->np == 0 && h->nn > 0)
                bu = 0;
        }
        if (h->schema == MTD_QL_SCHEMA_CUSTOM && isinf(bl) && bu > 0)
            bl = 0;
        if (bu <= lo || bl >= hi) {
            if (bu <= lo)
                continue;
            break;
        }
        double from = lo > bl ? lo : bl, to = hi < bu ? hi : bu;
        double share;
        if (from <= bl && to >= bu) {
            share = 1;
        } else if (isinf(bl) || isinf(bu)) {
            share = isinf(bu) ? (to >= bu ? 1 : 0) : (from <= bl ? 1 : 0);
            if (isinf(bu) && isinf(bl))
                share = 1;
        } else if (h->schema == MTD_QL_SCHEMA_CUSTOM || zero) {
            share = (to - from) / (bu - bl);
        } else {
            /* exponential interpolation within the bucket */
            double s = bl > 0 ? 1 : -1;
            double lb = log2(fabs(bl)), ub = log2(fabs(bu));
            double lf = log2(fabs(from)), lt = log2(fabs(to));
            share = s > 0 ? (lt - lf) / (ub - lb) : (lf - lt) / (lb - ub);
        }
        rank += share * b[i].cnt;
    }
    return rank / h->count;
}

/* Mean and variance estimated from bucket midpoints (histogram_stddev/stdvar). */
double ql_hist_stdvar(struct ql_arena *a, const struct mtd_ql_hist *h)
{
    if (h->count == 0)
        return NAN;
    struct ql_hbucket *b;
    size_t n = all_buckets(a, h, &b);
    double mean = h->sum / h->count, var = 0, c = 0;
    for (size_t i = 0; i < n; i++) {
        double val;
        if (b[i].cnt == 0)
            continue; /* empty buckets add nothing (and 0 * Inf would be NaN) */
        if (h->schema != MTD_QL_SCHEMA_CUSTOM && b[i].lo <= 0 && b[i].hi >= 0) {
            val = 0;
        } else if (h->schema == MTD_QL_SCHEMA_CUSTOM) {
            double bl = b[i].lo, bu = b[i].hi;
            if (isinf(bl))
                bl = bu > 0 ? 0 : bu;
            if (isinf(bu))
                bu = bl;
            val = (bl + bu) / 2;
        } else {
            val = sqrt(b[i].lo * b[i].hi);
            if (b[i].lo < 0)
                val = -val;
        }
        double d = val - mean;
        var = ql_kahan_inc(b[i].cnt * d * d, var, &c);
    }
    return (var + c) / h->count;
}

/* Counter reset between consecutive samples prev -> cur. */
int ql_hist_detect_reset(struct ql_arena *a, const struct mtd_ql_hist *cur,
                         const struct mtd_ql_hist *prev)
{
    if (cur->crh == MTD_QL_CRH_RESET)
        return 1;
    if (cur->crh == MTD_QL_CRH_NOT_RESET || cur->crh == MTD_QL_CRH_GAUGE)
        return 0;
    if (cur->count < prev->count)
        return 1;
    if (cur->schema != prev->schema && (cur->schema == MTD_QL_SCHEMA_CUSTOM ||
                                        prev->schema == MTD_QL_SCHEMA_CUSTOM))
        return 1;
    if (cur->schema == MTD_QL_SCHEMA_CUSTOM && !custom_equal(cur, prev)) {
        /* compare on the common bounds */
        const struct mtd_ql_hist *c2, *p2;
        reconcile_custom(a, cur, prev, &c2, &p2);
        return ql_hist_detect_reset(a, c2, p2);
    }
    if (cur->schema > prev->schema)
        return 1;
    if (cur->zero_count < prev->zero_count)
        return 1;
    /* Any bucket of prev (mapped to cur's schema) bigger than in cur. */
    int shift = cur->schema == MTD_QL_SCHEMA_CUSTOM ? 0 : prev->schema - cur->schema;
    for (int side = 0; side < 2; side++) {
        const int32_t *pi = side ? prev->nidx : prev->pidx, *ci = side ? cur->nidx : cur->pidx;
        const double *pc = side ? prev->ncnt : prev->pcnt, *cc = side ? cur->ncnt : cur->pcnt;
        size_t pn = side ? prev->nn : prev->np, cn = side ? cur->nn : cur->np;
        size_t j = 0;
        for (size_t i = 0; i < pn;) {
            int32_t idx = ((pi[i] - 1) >> shift) + 1;
            double s = 0;
            while (i < pn && ((pi[i] - 1) >> shift) + 1 == idx)
                s += pc[i++];
            while (j < cn && ci[j] < idx)
                j++;
            double cv = j < cn && ci[j] == idx ? cc[j] : 0;
            if (cv < s)
                return 1;
        }
    }
    return 0;
}

/* Go's %g / %v for a float64: shortest round-trip digits, exponent form when the decimal
 * exponent is < -4 or >= 6 (two-digit minimum exponent), +Inf/-Inf/NaN. */
static void go_g(char *out, size_t cap, double v)
{
    if (isnan(v)) {
        snprintf(out, cap, "NaN");
        return;
    }
    if (isinf(v)) {
        snprintf(out, cap, "%s", v > 0 ? "+Inf" : "-Inf");
        return;
    }
    if (v == 0) {
        snprintf(out, cap, "%s", signbit(v) ? "-0" : "0");
        return;
    }
    char e[48];
    for (int prec = 0; prec <= 17; prec++) {
        snprintf(e, sizeof(e), "%.*e", prec, v);
        if (strtod(e, NULL) == v)
            break;
    }
    char *ep = strchr(e, 'e');
    int x = atoi(ep + 1);
    char d[32];
    int nd = 0;
    for (char *c = e; c < ep && nd < 30; c++)
        if (*c >= '0' && *c <= '9')
            d[nd++] = *c;
    while (nd > 1 && d[nd - 1] == '0')
        nd--;
    d[nd] = 0;
    const char *sg = v < 0 ? "-" : "";
    if (x < -4 || x >= 6) {
        snprintf(out, cap, "%s%c%s%.*se%c%02d", sg, d[0], nd > 1 ? "." : "", nd - 1, d + 1,
                 x < 0 ? '-' : '+', x < 0 ? -x : x);
        return;
    }
    char buf[64];
    size_t k = 0;
    if (x < 0) {
        buf[k++] = '0';
        buf[k++] = '.';
        for (int i = 0; i < -x - 1; i++)
            buf[k++] = '0';
        for (int i = 0; i < nd; i++)
            buf[k++] = d[i];
    } else {
        for (int i = 0; i <= x; i++)
            buf[k++] = i < nd ? d[i] : '0';
        if (nd > x + 1) {
            buf[k++] = '.';
            for (int i = x + 1; i < nd; i++)
                buf[k++] = d[i];
        }
    }
    buf[k] = 0;
    snprintf(out, cap, "%s%s", sg, buf);
}

static void put_bucket(struct obs_sbuf *b, char open, double lo, double hi, char close, double c)
{
    char l[40], u[40], n[40];
    go_g(l, sizeof(l), lo);
    go_g(u, sizeof(u), hi);
    go_g(n, sizeof(n), c);
    obs_sbuf_printf(b, ", %c%s,%s%c:%s", open, l, u, close, n);
}

const char *ql_hist_str(struct ql_arena *a, const struct mtd_ql_hist *h)
{
    struct obs_sbuf b;
    obs_sbuf_init(&b);
    char c[40], s[40];
    go_g(c, sizeof(c), h->count);
    go_g(s, sizeof(s), h->sum);
    obs_sbuf_printf(&b, "{count:%s, sum:%s", c, s);
    double lo, hi;
    for (size_t i = h->nn; i-- > 0;) {
        if (h->ncnt[i] == 0)
            continue;
        ql_hist_bucket_bounds(h, h->nidx[i], 1, &lo, &hi);
        put_bucket(&b, '[', lo, hi, ')', h->ncnt[i]);
    }
    if (h->zero_count != 0)
        put_bucket(&b, '[', -h->zero_threshold, h->zero_threshold, ']', h->zero_count);
    for (size_t i = 0; i < h->np; i++) {
        if (h->pcnt[i] == 0)
            continue;
        ql_hist_bucket_bounds(h, h->pidx[i], 0, &lo, &hi);
        put_bucket(&b, '(', lo, hi, ']', h->pcnt[i]);
    }
    obs_sbuf_putc(&b, '}');
    const char *r = b.oom ? "{}" : ql_strndup(a, b.p, b.len);
    obs_sbuf_deinit(&b);
    return r;
}

/* ---------------------------------------------------------------- trim (</ and >/) */

/* What a trim keeps of one bucket: the kept share of its count (0..1), a representative value
 * (midpoint) of the kept part, and whether the bucket was cut at all. */
struct trim_part {
    double share, mid;
    int cut;
};

/* Finite bucket [lo, hi]; lin: linear interpolation (custom and zero buckets), else
 * exponential (log-scale, lo and hi of one sign). upper: keep <= x, else keep >= x. */
static struct trim_part trim_finite(double lo, double hi, double x, int upper, int lin)
{
    struct trim_part p = {1, 0, 0};
    double a = lo, b = hi;
    if (upper ? x >= hi : x <= lo) {
        /* whole bucket kept */
    } else if (upper ? x <= lo : x >= hi) {
        p.share = 0;
        p.cut = 1;
        return p;
    } else {
        if (upper)
            b = x;
        else
            a = x;
        p.cut = 1;
        if (lin)
            p.share = (b - a) / (hi - lo);
        else
            p.share = fabs(log2(fabs(b)) - log2(fabs(a))) / fabs(log2(fabs(hi)) - log2(fabs(lo)));
    }
    if (lin)
        p.mid = (a + b) / 2;
    else
        p.mid = (a < 0 ? -1 : 1) * sqrt(a * b);
    return p;
}

/* Custom bucket with possibly infinite bounds (see ql_hist_trim for the rules). */
static struct trim_part trim_custom(double lo, double hi, double x, int upper)
{
    struct trim_part none = {0, 0, 1}, all = {1, 0, 0};
    if (isinf(lo) && isinf(hi)) /* the single (-Inf, +Inf] bucket */
        return (upper ? x == INFINITY : x == -INFINITY) ? all : none;
    if (isinf(hi)) { /* (lo, +Inf]: represented by its lower end */
        if (upper)
            return x == INFINITY ? (struct trim_part){1, lo, 0} : none;
        if (x == INFINITY)
            return none;
        return x <= lo ? (struct trim_part){1, lo, 0} : (struct trim_part){1, x, 1};
    }
    if (isinf(lo)) {
        if (hi > 0) { /* lowest bucket reaching above zero: taken as [0, hi] */
            if (!upper && x == -INFINITY)
                return (struct trim_part){1, hi / 2, 0};
            if (!upper && x < 0)
                return none;
            return trim_finite(0, hi, x, upper, 1);
        }
        /* (-Inf, hi] with hi <= 0: represented by its upper end */
        if (!upper)
            return x == -INFINITY ? (struct trim_part){1, hi, 0} : none;
        if (x == -INFINITY)
            return none;
        return x >= hi ? (struct trim_part){1, hi, 0} : (struct trim_part){1, x, 1};
    }
    return trim_finite(lo, hi, x, upper, 1);
}

/* Apply a trim to one side's bucket list in place (r's arrays are copies); adds the kept
 * counts and count*midpoint to *cnt / *sum (Kahan). Returns whether any bucket was cut. */
static int trim_side(struct mtd_ql_hist *r, int neg, double x, int upper, double *cnt,
                     double *cc, double *sum, double *sc)
{
    int32_t *idx = neg ? r->nidx : r->pidx;
    double *c = neg ? r->ncnt : r->pcnt;
    size_t n = neg ? r->nn : r->np, k = 0;
    int cut = 0;
    for (size_t i = 0; i < n; i++) {
        double lo, hi;
        ql_hist_bucket_bounds(r, idx[i], neg, &lo, &hi);
        struct trim_part p;
        if (c[i] == 0) {
            idx[k] = idx[i];
            c[k++] = 0;
            continue;
        }
        if (r->schema == MTD_QL_SCHEMA_CUSTOM)
            p = trim_custom(lo, hi, x, upper);
        else
            p = trim_finite(lo, hi, x, upper, 0);
        cut |= p.cut;
        if (p.share == 0)
            continue;
        double v = c[i] * p.share;
        *cnt = ql_kahan_inc(v, *cnt, cc);
        *sum = ql_kahan_inc(v * p.mid, *sum, sc);
        idx[k] = idx[i];
        c[k++] = v;
    }
    if (neg)
        r->nn = k;
    else
        r->np = k;
    return cut;
}

struct mtd_ql_hist *ql_hist_trim(struct ql_arena *a, const struct mtd_ql_hist *h, double x,
                                 int upper)
{
    if (isnan(x))
        return (struct mtd_ql_hist *)h;
    struct mtd_ql_hist *r = ql_hist_copy(a, h);
    double cnt = 0, cc = 0, sum = 0, sc = 0;
    int cut = trim_side(r, 1, x, upper, &cnt, &cc, &sum, &sc);
    if (r->schema != MTD_QL_SCHEMA_CUSTOM && r->zero_count != 0) {
        double lo = -r->zero_threshold, hi = r->zero_threshold;
        int anyp = 0, anyn = 0;
        for (size_t i = 0; i < h->np; i++)
            anyp |= h->pcnt[i] != 0;
        for (size_t i = 0; i < h->nn; i++)
            anyn |= h->ncnt[i] != 0;
        if (anyp && !anyn)
            lo = 0;
        else if (anyn && !anyp)
            hi = 0;
        struct trim_part p;
        if (hi > lo) {
            p = trim_finite(lo, hi, x, upper, 1);
        } else { /* zero-width zero bucket: everything at lo */
            int keep = upper ? x >= lo : x <= lo;
            p = (struct trim_part){keep ? 1 : 0, lo, !keep};
        }
        cut |= p.cut;
        r->zero_count *= p.share;
        cnt = ql_kahan_inc(r->zero_count, cnt, &cc);
        sum = ql_kahan_inc(r->zero_count * p.mid, sum, &sc);
    }
    cut |= trim_side(r, 0, x, upper, &cnt, &cc, &sum, &sc);
    if (!cut)
        return (struct mtd_ql_hist *)h;
    r->count = cnt + cc;
    r->sum = sum + sc;
    return r;
}

/* ---------------------------------------------------------------- compensated accumulator */

/* Copy of h reduced to schema (exponential only) with its zero threshold widened to zt. */
static struct mtd_ql_hist *conform(struct ql_arena *a, const struct mtd_ql_hist *h,
                                   int32_t schema, double zt)
{
    struct mtd_ql_hist *r = ql_hist_copy(a, h);
    if (h->schema == MTD_QL_SCHEMA_CUSTOM)
        return r;
    widen_zero(a, r, zt);
    int sh = r->schema - schema;
    if (sh > 0) {
        merge(a, r->pidx, r->pcnt, r->np, sh, NULL, NULL, 0, 0, 0, &r->pidx, &r->pcnt, &r->np);
        merge(a, r->nidx, r->ncnt, r->nn, sh, NULL, NULL, 0, 0, 0, &r->nidx, &r->ncnt, &r->nn);
        r->schema = schema;
    }
    return r;
}

/* One field of the accumulator. Sum (avg 0): Kahan-Neumaier addition of v. Mean (avg 1): the
 * same until the plain sum would overflow, then (*inc set) a compensated incremental mean with
 * v as the n-th value -- Prometheus' float avg, applied to every field on its own. */
static void acc_field(double v, double *s, double *c, double *inc, int avg, double n)
{
    if (!avg || *inc == 0) {
        double c2 = *c;
        double nv = ql_kahan_inc(v, *s, &c2);
        if (!avg || !isinf(nv)) {
            *s = nv;
            *c = c2;
            return;
        }
        *inc = 1;
        *s /= n - 1;
        *c /= n - 1;
    }
    if (isinf(*s)) {
        if (isinf(v) && (*s > 0) == (v > 0))
            return;
        if (!isinf(v) && !isnan(v))
            return;
    }
    double cur = *s + *c;
    *s = ql_kahan_inc(v / n - cur / n, *s, c);
}

/* Bucket lists: (si, ss, sc, sf) are the running sums, compensations and incremental-mean flags
 * sharing one index list; x's buckets are folded in (union of indexes). */
static void acc_side(struct ql_arena *a, int32_t **si, double **ss, double **sc, double **sf,
                     size_t *sn, const int32_t *xi, const double *xc, size_t xn, int avg,
                     double n)
{
    size_t cap = *sn + xn + 1, k = 0, i = 0, j = 0;
    int32_t *oi = ql_alloc(a, cap * sizeof(int32_t));
    double *os = ql_alloc(a, cap * sizeof(double)), *oc = ql_alloc(a, cap * sizeof(double));
    double *of = ql_alloc(a, cap * sizeof(double));
    while (i < *sn || j < xn) {
        int32_t ia = i < *sn ? (*si)[i] : INT32_MAX, ib = j < xn ? xi[j] : INT32_MAX;
        int32_t idx = ia < ib ? ia : ib;
        double s = 0, c = 0, f = 0, v = 0;
        if (ia == idx) {
            s = (*ss)[i];
            c = (*sc)[i];
            f = (*sf)[i];
            i++;
        }
        if (ib == idx)
            v = xc[j++];
        acc_field(v, &s, &c, &f, avg, n);
        oi[k] = idx;
        os[k] = s;
        oc[k] = c;
        of[k++] = f;
    }
    *si = oi;
    *ss = os;
    *sc = oc;
    *sf = of;
    *sn = k;
}

/* acc->s/c/f (same layout) take in x, which already has their schema/threshold/bounds. */
static void acc_apply(struct ql_arena *a, struct ql_hacc *acc, const struct mtd_ql_hist *x,
                      int avg)
{
    struct mtd_ql_hist *s = acc->s, *c = acc->c, *f = acc->f;
    acc_field(x->count, &s->count, &c->count, &f->count, avg, acc->n);
    acc_field(x->sum, &s->sum, &c->sum, &f->sum, avg, acc->n);
    acc_field(x->zero_count, &s->zero_count, &c->zero_count, &f->zero_count, avg, acc->n);
    size_t np = s->np, nn = s->nn;
    acc_side(a, &s->pidx, &s->pcnt, &c->pcnt, &f->pcnt, &np, x->pidx, x->pcnt, x->np, avg,
             acc->n);
    acc_side(a, &s->nidx, &s->ncnt, &c->ncnt, &f->ncnt, &nn, x->nidx, x->ncnt, x->nn, avg,
             acc->n);
    s->np = c->np = f->np = np;
    s->nn = c->nn = f->nn = nn;
    c->pidx = f->pidx = s->pidx;
    c->nidx = f->nidx = s->nidx;
}

/* A copy of h with every count (and the sum) 0. */
static struct mtd_ql_hist *zero_like(struct ql_arena *a, const struct mtd_ql_hist *h)
{
    struct mtd_ql_hist *r = ql_hist_copy(a, h);
    r->count = r->sum = r->zero_count = 0;
    for (size_t i = 0; i < r->np; i++)
        r->pcnt[i] = 0;
    for (size_t i = 0; i < r->nn; i++)
        r->ncnt[i] = 0;
    return r;
}

void ql_hacc_init(struct ql_hacc *acc)
{
    memset(acc, 0, sizeof(*acc));
}

/* Counter reset hint of a sum, as Prometheus' FloatHistogram.Add combines them. */
static enum mtd_ql_crh acc_hint(enum mtd_ql_crh h, enum mtd_ql_crh o)
{
    if (h == o || h == MTD_QL_CRH_GAUGE)
        return h;
    if (o == MTD_QL_CRH_GAUGE)
        return o;
    if (h == MTD_QL_CRH_UNKNOWN || o == MTD_QL_CRH_UNKNOWN)
        return MTD_QL_CRH_UNKNOWN;
    return MTD_QL_CRH_UNKNOWN; /* reset + not_reset */
}

/* Prometheus warns when any input says reset and any other says not_reset. */
static void acc_seen(struct ql_hacc *acc, enum mtd_ql_crh h)
{
    if (h == MTD_QL_CRH_RESET)
        acc->seen |= 1;
    else if (h == MTD_QL_CRH_NOT_RESET)
        acc->seen |= 2;
    acc->crh_conflict = acc->seen == 3;
}

int ql_hacc_add(struct ql_arena *a, struct ql_hacc *acc, const struct mtd_ql_hist *h, int avg)
{
    if (acc->bad)
        return -1;
    acc->n++;
    if (!acc->s) {
        acc->s = ql_hist_copy(a, h);
        acc->c = zero_like(a, h);
        acc->f = zero_like(a, h);
        acc->crh = h->crh;
        acc_seen(acc, h->crh);
        return 0;
    }
    if (!ql_hist_compatible(acc->s, h)) {
        acc->bad = 1;
        return -1;
    }
    acc->crh = acc_hint(acc->crh, h->crh);
    acc_seen(acc, h->crh);
    const struct mtd_ql_hist *x = h;
    if (h->schema == MTD_QL_SCHEMA_CUSTOM) {
        if (!custom_equal(acc->s, h)) {
            const struct mtd_ql_hist *s2, *x2;
            reconcile_custom(a, acc->s, h, &s2, &x2);
            acc->c = fold_custom(a, acc->c, s2->custom, s2->ncustom);
            acc->f = fold_custom(a, acc->f, s2->custom, s2->ncustom);
            acc->s = (struct mtd_ql_hist *)s2;
            x = x2;
            acc->reconciled = 1;
        }
    } else {
        int32_t schema = h->schema < acc->s->schema ? h->schema : acc->s->schema;
        double zt = h->zero_threshold > acc->s->zero_threshold ? h->zero_threshold
                                                               : acc->s->zero_threshold;
        if (schema != acc->s->schema || zt != acc->s->zero_threshold) {
            acc->s = conform(a, acc->s, schema, zt);
            acc->c = conform(a, acc->c, schema, zt);
            acc->f = conform(a, acc->f, schema, zt);
        }
        if (schema != h->schema || zt != h->zero_threshold)
            x = conform(a, h, schema, zt);
    }
    acc_apply(a, acc, x, avg);
    return 0;
}

static double acc_out(double s, double c, double f, int avg, double n)
{
    return avg && f == 0 ? (s + c) / n : s + c;
}

struct mtd_ql_hist *ql_hacc_finish(struct ql_arena *a, struct ql_hacc *acc, int avg)
{
    if (!acc->s || acc->bad)
        return NULL;
    struct mtd_ql_hist *r = ql_hist_copy(a, acc->s);
    const struct mtd_ql_hist *c = acc->c, *f = acc->f;
    r->count = acc_out(r->count, c->count, f->count, avg, acc->n);
    r->sum = acc_out(r->sum, c->sum, f->sum, avg, acc->n);
    r->zero_count = acc_out(r->zero_count, c->zero_count, f->zero_count, avg, acc->n);
    for (size_t i = 0; i < r->np; i++)
        r->pcnt[i] = acc_out(r->pcnt[i], c->pcnt[i], f->pcnt[i], avg, acc->n);
    for (size_t i = 0; i < r->nn; i++)
        r->ncnt[i] = acc_out(r->ncnt[i], c->ncnt[i], f->ncnt[i], avg, acc->n);
    r->crh = acc->crh;
    return r;
}

/* ---------------------------------------------------------------- histogram-stats reads */

/* State of the walk below: 1 under histogram_count/sum/avg, -1 under a function that needs the
 * buckets, 0 neither (or reset by a binary operator or a subquery). */
static int stats_walk(const struct ql_node *n, const struct ql_node *sel, int st)
{
    if (!n)
        return -2;
    if (n == sel)
        return st;
    if (n->kind == QN_BINARY)
        st = 0;
    if (n->kind == QN_SUBQ)
        st = 0;
    if (n->kind == QN_CALL && n->fn) {
        const char *f = n->fn->name;
        if (!strcmp(f, "histogram_count") || !strcmp(f, "histogram_sum") ||
            !strcmp(f, "histogram_avg"))
            st = 1;
        else if (!strcmp(f, "histogram_quantile") || !strcmp(f, "histogram_quantiles") ||
                 !strcmp(f, "histogram_fraction"))
            st = -1;
    }
    int r = stats_walk(n->lhs, sel, st);
    if (r != -2)
        return r;
    if ((r = stats_walk(n->rhs, sel, st)) != -2)
        return r;
    if ((r = stats_walk(n->param, sel, st)) != -2)
        return r;
    for (size_t i = 0; i < n->nargs; i++)
        if ((r = stats_walk(n->args[i], sel, st)) != -2)
            return r;
    return -2;
}

int ql_hist_stats_sel(const struct ql_node *root, const struct ql_node *sel)
{
    return stats_walk(root, sel, 0) == 1;
}

enum mtd_ql_crh ql_hist_stats_hint(struct ql_arena *a, const struct mtd_ql_hist *cur,
                                   const struct mtd_ql_hist *prev)
{
    if (cur->crh != MTD_QL_CRH_UNKNOWN || !prev)
        return cur->crh;
    return ql_hist_detect_reset(a, cur, prev) ? MTD_QL_CRH_RESET : MTD_QL_CRH_NOT_RESET;
}
