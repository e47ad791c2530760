/*
 * ql_eval.c -- PromQL evaluation: selectors, operators, aggregations, subqueries, and the
 * instant/range query drivers.
 *
 * Design: every node is evaluated at one instant t (ql_eval). A range query evaluates the
 * root at each step and stitches the per-step vectors into series by label set; a subquery
 * does the same for its inner steps. Each selector's series are read from storage once per
 * query, over a time window computed up front by walking the AST (selector_windows), and the
 * per-step lookups are binary searches into those arrays. Per-step values live in a scratch
 * arena released after each top-level step; selector data and the output live in the query
 * arena. Name removal is delayed as in Prometheus 3.x: samples carry a `drop` flag and
 * __name__ is removed at the end (or before grouping).
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "core/obs_mem.h"
#include "core/obs_sbuf.h"
#include "core/obs_time.h"
#include "metricsd/ql/ql_int.h"
#include "metricsd/storage.h"

struct ql_sseries {
    struct ql_labels l;
    const struct mtd_ql_point *p; /* float and histogram samples merged by t */
    size_t n;
    int nostale;                  /* no stale marker among p: ranges may point into p */
    int nohist;                   /* no histogram among p */
    const struct mtd_sample *raw; /* float-only series: storage's samples; p is made from
                                   * them on the first load_sel after the preload */
};

struct ql_sel_data {
    int loaded;
    int64_t mint, maxt;
    int want;               /* selector is evaluated at all */
    int mat;                /* every series has p (see ql_sseries.raw) */
    struct ql_sseries *s;
    size_t ns;
    /* Cursors for evaluations at increasing times (range query steps): per series, the last
     * point <= the previous evaluation's time (vector selector) or its window's bounds
     * (matrix selector); cur_t is that time, INT64_MIN when unset. */
    long *cur, *cur_lo;
    int64_t cur_t, cur_lo_t;
};

/* Index of the last point of s with t <= ts, moving *c forward from its last answer when ts
 * did not decrease (cursor valid), else searching from the start. */
static inline long cursor_le(const struct mtd_ql_point *p, size_t n, int64_t ts, long *c,
                             int valid)
{
    long k = valid ? *c : -1;
    if (!valid || (k >= 0 && p[k].t > ts)) {
        long lo = 0, hi = (long)n - 1;
        k = -1;
        while (lo <= hi) {
            long mid = (lo + hi) / 2;
            if (p[mid].t <= ts) {
                k = mid;
                lo = mid + 1;
            } else {
                hi = mid - 1;
            }
        }
    } else {
        while (k + 1 < (long)n && p[k + 1].t <= ts)
            k++;
    }
    *c = k;
    return k;
}

/* ---------------------------------------------------------------- annotations */
static void add_anno(struct ql_query *q, char ***arr, size_t *n, size_t *cap, const char *msg)
{
    for (size_t i = 0; i < *n; i++)
        if (strcmp((*arr)[i], msg) == 0)
            return;
    char *m = ql_strdup(&q->qa, msg);
    QL_PUSH(&q->qa, *arr, *n, *cap, m);
}

/* Append " (line:col)" for byte offset pos of the query text. */
static void add_pos(struct ql_query *q, char *buf, size_t cap, int pos)
{
    if (pos < 0 || !q->e || !q->e->text)
        return;
    int line = 1, col = 1;
    for (int i = 0; i < pos && q->e->text[i]; i++) {
        if (q->e->text[i] == '\n') {
            line++;
            col = 1;
        } else {
            col++;
        }
    }
    size_t n = strlen(buf);
    snprintf(buf + n, cap - n, " (%d:%d)", line, col);
}

void ql_warn(struct ql_query *q, int pos, const char *fmt, ...)
{
    char buf[640];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, 600, fmt, ap);
    va_end(ap);
    add_pos(q, buf, sizeof(buf), pos);
    add_anno(q, &q->warns, &q->nwarn, &q->capw, buf);
}

void ql_info(struct ql_query *q, int pos, const char *fmt, ...)
{
    char buf[640];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, 600, fmt, ap);
    va_end(ap);
    add_pos(q, buf, sizeof(buf), pos);
    add_anno(q, &q->infos, &q->ninfo, &q->capi, buf);
}

void ql_check_deadline(struct ql_query *q)
{
    if ((++q->ticks & 63) != 0)
        return;
    if (q->cancel && __atomic_load_n(q->cancel, __ATOMIC_RELAXED))
        ql_throw(&q->qa, MTD_QL_ECANCELED, "query was canceled in expression evaluation");
    if (q->deadline && obs_mono_ns() > q->deadline)
        ql_throw(&q->qa, MTD_QL_ETIMEOUT, "query timed out in expression evaluation");
}

/* Count n samples loaded or produced against max_samples (Prometheus' wording). */
static void count_samples(struct ql_query *q, size_t n)
{
    q->nsamples += n;
    if (q->max_samples && q->nsamples > q->max_samples)
        ql_throw(&q->qa, OBS_ELIMIT, "query processing would load too many samples into "
                                     "memory in query execution");
}

/* ---------------------------------------------------------------- selectors */
int64_t ql_sel_time(struct ql_query *q, const struct ql_node *n, int64_t t)
{
    int64_t base = t;
    switch (n->at_kind) {
    case QAT_TS: base = n->at; break;
    case QAT_START: base = q->start; break;
    case QAT_END: base = q->end; break;
    default: break;
    }
    return base - n->offset;
}

static void widen(struct ql_query *q, const struct ql_node *v, int64_t lo, int64_t hi)
{
    struct ql_sel_data *d = &q->sel[v->sel_id];
    if (!d->want) {
        d->want = 1;
        d->mint = lo;
        d->maxt = hi;
    } else {
        if (lo < d->mint)
            d->mint = lo;
        if (hi > d->maxt)
            d->maxt = hi;
    }
}

/* info(): the instant its info series are looked up at when the call is evaluated at t --
 * the time the first selector under n reads (its @ and offset, and those of enclosing
 * subqueries, whose last step is used). *found tells whether n holds a selector. */
static int64_t info_ref(struct ql_query *q, const struct ql_node *n, int64_t t, int *found)
{
    if (!n)
        return t;
    switch (n->kind) {
    case QN_VSEL:
        *found = 1;
        return ql_sel_time(q, n, t);
    case QN_MSEL:
        *found = 1;
        return ql_sel_time(q, n->lhs, t);
    case QN_SUBQ: {
        int64_t b = ql_sel_time(q, n, t);
        int64_t step = n->step > 0 ? n->step : q->default_step;
        if (step > 0)
            b -= ((b % step) + step) % step;
        return info_ref(q, n->lhs, b, found);
    }
    case QN_CALL:
        for (size_t i = 0; i < n->nargs; i++) {
            int64_t r = info_ref(q, n->args[i], t, found);
            if (*found)
                return r;
        }
        return t;
    default: {
        const struct ql_node *kids[3] = {n->lhs, n->rhs, n->param};
        for (int i = 0; i < 3; i++) {
            int64_t r = info_ref(q, kids[i], t, found);
            if (*found)
                return r;
        }
        return t;
    }
    }
}

int64_t ql_info_ref_time(struct ql_query *q, const struct ql_node *n, int64_t t)
{
    int found = 0;
    return info_ref(q, n, t, &found);
}

/* Evaluation instants of node n span [s, e]: record the sample window each selector needs. */
static void selector_windows(struct ql_query *q, struct ql_node *n, int64_t s, int64_t e)
{
    if (!n)
        return;
    switch (n->kind) {
    case QN_VSEL: {
        int64_t lo = n->at_kind ? ql_sel_time(q, n, s) : s - n->offset;
        int64_t hi = n->at_kind ? lo : e - n->offset;
        widen(q, n, lo - q->lookback, n->smoothed ? hi + q->lookback : hi);
        return;
    }
    case QN_MSEL: {
        struct ql_node *v = n->lhs;
        int64_t lo = v->at_kind ? ql_sel_time(q, v, s) : s - v->offset;
        int64_t hi = v->at_kind ? lo : e - v->offset;
        int ext = v->anchored || v->smoothed;
        widen(q, v, lo - n->range - (ext ? q->lookback : 0), v->smoothed ? hi + q->lookback : hi);
        return;
    }
    case QN_SUBQ: {
        int64_t lo = n->at_kind ? ql_sel_time(q, n, s) : s - n->offset;
        int64_t hi = n->at_kind ? lo : e - n->offset;
        selector_windows(q, n->lhs, lo - n->range, hi);
        return;
    }
    case QN_CALL:
        for (size_t i = 0; i < n->nargs; i++)
            selector_windows(q, n->args[i], s, e);
        if (n->nargs == 2 && n->args[1]->info_sel) { /* info series at the reference times */
            int64_t a = ql_info_ref_time(q, n->args[0], s), b = ql_info_ref_time(q, n->args[0], e);
            widen(q, n->args[1], (a < b ? a : b) - q->lookback, a < b ? b : a);
        }
        return;
    default:
        selector_windows(q, n->lhs, s, e);
        selector_windows(q, n->rhs, s, e);
        selector_windows(q, n->param, s, e);
        return;
    }
}

static int pt_stale(const struct mtd_ql_point *p);
static void lid_assign(struct ql_query *q, struct ql_labels *l);

/* Convert the points in[0..n) of a float-only series (p[n] zeroed as well). */
static void raw_to_points(const struct mtd_sample *in, size_t n, struct mtd_ql_point *p)
{
    for (size_t k = 0; k < n; k++) {
        p[k].t = in[k].t;
        p[k].v = in[k].v;
        p[k].h = NULL;
    }
    memset(&p[n], 0, sizeof(*p));
}

/* The points of s, converted from the storage's samples on first use (query arena). */
static const struct mtd_ql_point *sel_points(struct ql_query *q, struct ql_sseries *s)
{
    if (!s->p) {
        struct mtd_ql_point *p = ql_alloc_raw(&q->qa, (s->n + 1) * sizeof(*p));
        raw_to_points(s->raw, s->n, p);
        s->p = p;
    }
    return s->p;
}

static void set_free_cb(void *arg)
{
    mtd_series_set_free(arg);
}

static const char *label_key(struct ql_arena *a, struct ql_labels l, int drop, size_t *len);

static int sseries_cmp(const void *x, const void *y)
{
    const struct ql_sseries *a = x, *b = y;
    return ql_lcmp(a->l, b->l);
}

/* Select v's series from storage once (the preload); float-only series keep the storage's
 * samples (raw) until load_sel converts them. */
static struct ql_sel_data *load_sel_data(struct ql_query *q, struct ql_node *v)
{
    struct ql_sel_data *d = &q->sel[v->sel_id];
    if (d->loaded)
        return d;
    struct mtd_select_opts o;
    memset(&o, 0, sizeof(o));
    o.mint = d->mint;
    o.maxt = d->maxt;
    if (!q->st)
        ql_throw(&q->qa, OBS_EINVAL, "internal error: selector not loaded before evaluation");
    if (q->max_series) {
        /* Ask storage to stop one past the remaining budget. */
        o.max_series = q->max_series >= q->nseries ? q->max_series - q->nseries + 1 : 1;
    }
    struct mtd_series_set *set = NULL;
    struct obs_err e = {0};
    int rc = mtd_storage_select(q->st, q->tenant, v->ms, v->nms, &o, &set, &e);
    if (rc == OBS_ELIMIT && q->max_series)
        ql_throw(&q->qa, OBS_ELIMIT, "the query exceeded the maximum number of series (limit: "
                 "%zu series) (err-mimir-max-series-per-query)", q->max_series);
    if (rc < 0)
        ql_throw(&q->qa, rc, "%s", e.msg[0] ? e.msg : "storage select failed");
    ql_on_free(&q->qa, set_free_cb, set);
    q->nseries += set->nseries;
    if (q->max_series && q->nseries > q->max_series)
        ql_throw(&q->qa, OBS_ELIMIT, "the query exceeded the maximum number of series (limit: "
                 "%zu series) (err-mimir-max-series-per-query)", q->max_series);
    /* The set's own memory (labels and samples) counts towards the estimate too. */
    ql_mem_account(&q->qa, (long long)(set->nsamples_total * sizeof(struct mtd_sample) +
                                       set->nseries * (sizeof(struct mtd_series) + 64)));
    const struct mtd_ql_hseries *hs = NULL;
    size_t nhs = 0;
    if (q->opts && q->opts->hist_select) {
        rc = q->opts->hist_select(q->opts->hist_ctx, q->tenant, v->ms, v->nms, d->mint, d->maxt,
                                  &hs, &nhs);
        if (rc < 0)
            ql_throw(&q->qa, rc, "histogram select failed");
    }
    d->s = ql_alloc(&q->qa, (set->nseries + nhs + 1) * sizeof(*d->s));
    struct ql_map m;
    ql_map_init(&m, &q->qa, set->nseries + nhs);
    size_t total = 0;
    for (size_t i = 0; i < set->nseries; i++) {
        const struct mtd_series *ss = &set->series[i];
        struct ql_sseries *o2 = &d->s[d->ns];
        o2->l.v = ss->labels;
        o2->l.n = (uint32_t)ss->nlabels;
        o2->raw = ss->samples; /* converted to points only where needed */
        o2->p = NULL;
        o2->n = ss->nsamples;
        total += ss->nsamples;
        if (nhs) {
            size_t kl;
            const char *key = label_key(&q->qa, o2->l, 0, &kl);
            ql_map_put(&m, key, kl, (int)d->ns);
        }
        d->ns++;
    }
    int resort = 0;
    for (size_t i = 0; i < nhs; i++) {
        struct ql_labels l = {hs[i].labels, (uint32_t)hs[i].nlabels};
        size_t kl;
        const char *key = label_key(&q->qa, l, 0, &kl);
        int idx = ql_map_get(&m, key, kl);
        size_t cnt = 0;
        for (size_t k = 0; k < hs[i].n; k++)
            if (hs[i].t[k] >= d->mint && hs[i].t[k] <= d->maxt)
                cnt++;
        if (cnt == 0)
            continue;
        struct ql_sseries *dst;
        const struct mtd_ql_point *old = NULL;
        size_t nold = 0;
        if (idx >= 0) {
            dst = &d->s[idx];
            old = sel_points(q, dst);
            nold = dst->n;
        } else {
            dst = &d->s[d->ns++];
            dst->l = l;
            resort = 1;
        }
        struct mtd_ql_point *p = ql_alloc(&q->qa, (nold + cnt + 1) * sizeof(*p));
        size_t a2 = 0, o3 = 0;
        for (size_t k = 0; k < hs[i].n; k++) {
            int64_t t = hs[i].t[k];
            if (t < d->mint || t > d->maxt)
                continue;
            while (a2 < nold && old[a2].t < t)
                p[o3++] = old[a2++];
            if (a2 < nold && old[a2].t == t)
                a2++;
            p[o3].t = t;
            if (hs[i].h[k]) {
                p[o3].h = hs[i].h[k];
            } else {
                uint64_t bits = MTD_STALE_NAN_BITS;
                memcpy(&p[o3].v, &bits, sizeof(double));
            }
            o3++;
        }
        while (a2 < nold)
            p[o3++] = old[a2++];
        dst->p = p;
        dst->raw = NULL;
        dst->n = o3;
        total += cnt;
    }
    if (resort)
        qsort(d->s, d->ns, sizeof(*d->s), sseries_cmp);
    for (size_t i = 0; i < d->ns; i++) {
        struct ql_sseries *x = &d->s[i];
        x->nostale = 1;
        x->nohist = 1;
        for (size_t k = 0; x->p && k < x->n; k++) {
            if (x->p[k].h)
                x->nohist = 0;
            else if (pt_stale(&x->p[k]))
                x->nostale = 0;
        }
        for (size_t k = 0; !x->p && k < x->n; k++)
            if (mtd_value_is_stale(x->raw[k].v)) {
                x->nostale = 0;
                break;
            }
        lid_assign(q, &x->l);
    }
    d->loaded = 1;
    count_samples(q, total);
    return d;
}

/* v's series with points, for evaluation (calls computed series by series read the raw
 * samples directly instead: pre_compute). */
static struct ql_sel_data *load_sel(struct ql_query *q, struct ql_node *v)
{
    struct ql_sel_data *d = load_sel_data(q, v);
    for (size_t i = 0; !d->mat && i < d->ns; i++)
        sel_points(q, &d->s[i]);
    d->mat = 1;
    return d;
}

/* Index of the last point with t <= ts, or -1. */
static long last_le(const struct mtd_ql_point *s, size_t n, int64_t ts)
{
    long lo = 0, hi = (long)n - 1, r = -1;
    while (lo <= hi) {
        long mid = (lo + hi) / 2;
        if (s[mid].t <= ts) {
            r = mid;
            lo = mid + 1;
        } else {
            hi = mid - 1;
        }
    }
    return r;
}

static int pt_stale(const struct mtd_ql_point *p)
{
    return !p->h && mtd_value_is_stale(p->v);
}

static struct ql_val eval_vsel_smoothed(struct ql_query *q, struct ql_node *n, int64_t t);

static struct ql_val eval_vsel(struct ql_query *q, struct ql_node *n, int64_t t)
{
    if (n->smoothed)
        return eval_vsel_smoothed(q, n, t);
    struct ql_sel_data *d = load_sel(q, n);
    int64_t ts = ql_sel_time(q, n, t);
    struct ql_val r = {.type = MTD_QL_VECTOR};
    r.vec.s = ql_alloc(&q->sa, (d->ns + 1) * sizeof(struct ql_sample));
    if (q->multi && !d->cur) {
        d->cur = ql_alloc(&q->qa, (d->ns + 1) * sizeof(*d->cur));
        d->cur_t = INT64_MIN;
    }
    int valid = d->cur && d->cur_t != INT64_MIN && ts >= d->cur_t;
    for (size_t i = 0; i < d->ns; i++) {
        const struct ql_sseries *s = &d->s[i];
        long k = d->cur ? cursor_le(s->p, s->n, ts, &d->cur[i], valid)
                        : last_le(s->p, s->n, ts);
        if (k < 0 || s->p[k].t <= ts - q->lookback || pt_stale(&s->p[k]))
            continue;
        struct ql_sample *o = &r.vec.s[r.vec.n++];
        o->l = s->l;
        o->t = s->p[k].t;
        o->v = s->p[k].v;
        o->h = s->p[k].h;
        /* histogram_count/sum/avg-only reads detect the counter-reset hint (Prometheus'
         * histogram-stats read path) */
        if (o->h && o->h->crh == MTD_QL_CRH_UNKNOWN && k > 0 && s->p[k - 1].h &&
            s->p[k - 1].t > ts - q->lookback && ql_hist_stats_sel(q->e->root, n)) {
            struct mtd_ql_hist *h2 = ql_alloc(&q->sa, sizeof(*h2));
            *h2 = *o->h;
            h2->crh = ql_hist_stats_hint(&q->sa, o->h, s->p[k - 1].h);
            o->h = h2;
        }
    }
    if (d->cur)
        d->cur_t = ts;
    return r;
}

static struct ql_val eval_msel_ext(struct ql_query *q, struct ql_node *m, int64_t t);

static struct ql_val eval_msel(struct ql_query *q, struct ql_node *m, int64_t t)
{
    if (m->lhs->anchored || m->lhs->smoothed)
        return eval_msel_ext(q, m, t);
    struct ql_node *n = m->lhs;
    struct ql_sel_data *d = load_sel(q, n);
    int64_t ts = ql_sel_time(q, n, t);
    struct ql_val r = {.type = MTD_QL_MATRIX};
    r.mat.range_end = ts;
    r.mat.range_start = ts - m->range;
    r.mat.range = m->range;
    r.mat.s = ql_alloc(&q->sa, (d->ns + 1) * sizeof(struct ql_series));
    if (q->multi && !d->cur) {
        d->cur = ql_alloc(&q->qa, (d->ns + 1) * sizeof(*d->cur));
        d->cur_lo = ql_alloc(&q->qa, (d->ns + 1) * sizeof(*d->cur_lo));
        d->cur_t = d->cur_lo_t = INT64_MIN;
    }
    int valid = d->cur && d->cur_t != INT64_MIN && ts >= d->cur_t;
    int valid_lo = d->cur_lo && d->cur_lo_t != INT64_MIN && ts - m->range >= d->cur_lo_t;
    for (size_t i = 0; i < d->ns; i++) {
        const struct ql_sseries *s = &d->s[i];
        long hi, lo;
        if (d->cur_lo) {
            hi = cursor_le(s->p, s->n, ts, &d->cur[i], valid);
            lo = cursor_le(s->p, s->n, ts - m->range, &d->cur_lo[i], valid_lo) + 1;
        } else {
            hi = last_le(s->p, s->n, ts);
            lo = last_le(s->p, s->n, ts - m->range) + 1;
        }
        if (hi < lo)
            continue;
        struct ql_series *o = &r.mat.s[r.mat.n];
        o->l = s->l;
        o->nohist = s->nohist;
        if (s->nostale) { /* read-only view into the selected samples */
            o->p = (struct mtd_ql_point *)&s->p[lo];
            o->n = (size_t)(hi - lo + 1);
            r.mat.n++;
            continue;
        }
        o->p = ql_alloc(&q->sa, (size_t)(hi - lo + 1) * sizeof(struct mtd_ql_point));
        for (long k = lo; k <= hi; k++) {
            if (pt_stale(&s->p[k]))
                continue;
            o->p[o->n++] = s->p[k];
        }
        if (o->n)
            r.mat.n++;
    }
    if (d->cur_lo) {
        d->cur_t = ts;
        d->cur_lo_t = ts - m->range;
    }
    return r;
}

/* ---------------------------------------------------------------- anchored / smoothed */
/* Prometheus 3's extended range selectors (experimental). x[r] anchored reads the range
 * (t-r, t] plus the last sample at or before t-r (within the lookback delta) and gives the
 * series synthetic points at both ends: at t-r that earlier sample (else the first one in
 * range), at t the last one. x[r] smoothed does the same with values linearly interpolated
 * at both ends, using the first sample after t (within the lookback delta) too (floats only).
 * Under rate/increase/delta (bit 2 of the flag) the widened window is passed on raw and the
 * function does the boundary work (ql_funcs.c). x smoothed interpolates an instant vector. */
static double ext_interp(const struct mtd_ql_point *a, const struct mtd_ql_point *b, int64_t t,
                         int counter)
{
    double y1 = a->v, y2 = b->v;
    if (counter && y2 < y1)
        y1 = 0;
    return y1 + (y2 - y1) * (double)(t - a->t) / (double)(b->t - a->t);
}

/* Extended points of one series (floats f[0..n), no stale markers) for the range (rs, re]:
 * returns the count written to out (0 when nothing is left), which holds n + 2 points. */
static size_t ext_points(const struct mtd_ql_point *f, size_t n, int64_t rs, int64_t re,
                         int smoothed, int counter, struct mtd_ql_point *out)
{
    if (n == 0)
        return 0;
    size_t last = n - 1, first = 0;
    while (first < last && f[first].t <= rs) /* first index with t > rs among [0, last) */
        first++;
    first = first > 0 ? first - 1 : 0;
    if (smoothed) {
        size_t k = 0;
        while (k < n - 1 && f[k].t < re)
            k++;
        last = k;
    }
    if (f[last].t <= rs || (smoothed && f[first].t > re)) /* no data in or before range */
        return 0;
    struct mtd_ql_point left = f[first], right = f[last]; /* anchored: the samples */
    if (smoothed && f[first].t < rs && first + 1 < n)
        left.v = ext_interp(&f[first], &f[first + 1], rs, counter);
    if (smoothed && last > 0 && f[last].t > re)
        right.v = ext_interp(&f[last - 1], &f[last], re, counter);
    size_t a = first, b = last;
    if (f[a].t <= rs)
        a++;
    size_t k = 0;
    left.t = rs;
    out[k++] = left;
    int drop_last = f[b].t >= re;
    for (size_t i = a; i <= b && i < n; i++) {
        if (i == b && drop_last)
            break;
        out[k++] = f[i];
    }
    right.t = re;
    out[k++] = right;
    return k;
}

static struct ql_val eval_msel_ext(struct ql_query *q, struct ql_node *m, int64_t t)
{
    struct ql_node *n = m->lhs;
    struct ql_sel_data *d = load_sel(q, n);
    int64_t re = ql_sel_time(q, n, t), rs = re - m->range;
    int64_t lo = rs - q->lookback, hi = n->smoothed ? re + q->lookback : re;
    int raw = (n->anchored | n->smoothed) & 2;
    struct ql_val r = {.type = MTD_QL_MATRIX};
    r.mat.range_end = re;
    r.mat.range_start = rs;
    r.mat.range = m->range;
    r.mat.s = ql_alloc(&q->sa, (d->ns + 1) * sizeof(struct ql_series));
    for (size_t i = 0; i < d->ns; i++) {
        const struct ql_sseries *s = &d->s[i];
        long b = last_le(s->p, s->n, hi);
        long a = last_le(s->p, s->n, lo) + 1;
        if (b < a)
            continue;
        struct mtd_ql_point *f = ql_alloc(&q->sa, (size_t)(b - a + 1) * sizeof(*f));
        size_t nf = 0;
        int hist = 0;
        for (long k = a; k <= b; k++) {
            if (pt_stale(&s->p[k]))
                continue;
            hist |= s->p[k].h != NULL;
            f[nf++] = s->p[k];
        }
        if (nf == 0 || (hist && n->smoothed && !raw))
            continue;
        struct ql_series *o = &r.mat.s[r.mat.n];
        if (raw) {
            o->p = f;
            o->n = nf;
        } else {
            o->p = ql_alloc(&q->sa, (nf + 2) * sizeof(struct mtd_ql_point));
            o->n = ext_points(f, nf, rs, re, n->smoothed, 0, o->p);
        }
        if (o->n == 0)
            continue;
        o->l = s->l;
        o->nohist = !hist;
        r.mat.n++;
    }
    return r;
}

static struct ql_val eval_vsel_smoothed(struct ql_query *q, struct ql_node *n, int64_t t)
{
    struct ql_sel_data *d = load_sel(q, n);
    int64_t ts = ql_sel_time(q, n, t);
    struct ql_val r = {.type = MTD_QL_VECTOR};
    r.vec.s = ql_alloc(&q->sa, (d->ns + 1) * sizeof(struct ql_sample));
    for (size_t i = 0; i < d->ns; i++) {
        const struct ql_sseries *s = &d->s[i];
        long k = last_le(s->p, s->n, ts);
        if (k < 0 || s->p[k].t <= ts - q->lookback || pt_stale(&s->p[k]))
            continue;
        const struct mtd_ql_point *pv = &s->p[k];
        double v = pv->v;
        const struct mtd_ql_hist *h = pv->h;
        const struct mtd_ql_point *nx = (size_t)(k + 1) < s->n ? &s->p[k + 1] : NULL;
        if (pv->t < ts && nx && nx->t <= ts + q->lookback && !pt_stale(nx)) {
            const char *nm = ql_lget(s->l, "__name__");
            if (!pv->h != !nx->h) {
                ql_warn(q, n->pos, "PromQL warning: encountered a mix of histograms and floats "
                                   "for metric name \"%s\"", nm ? nm : "");
                continue;
            }
            if (h) {
                h = ql_ext_hinterp(&q->sa, pv->h, pv->t, nx->h, nx->t, ts,
                                   nx->h->crh != MTD_QL_CRH_GAUGE);
                if (!h) {
                    ql_warn(q, n->pos, "PromQL warning: vector contains a mix of histograms "
                                       "with exponential and custom buckets schemas for metric "
                                       "name \"%s\"", nm ? nm : "");
                    continue;
                }
            } else {
                v = ext_interp(pv, nx, ts, 0);
            }
        }
        struct ql_sample *o = &r.vec.s[r.vec.n++];
        o->l = s->l;
        o->t = ts;
        o->v = v;
        o->h = h;
    }
    return r;
}

/* ---------------------------------------------------------------- series-at-a-time */
/* A range query evaluates the tree step by step; for a range-vector function applied to a
 * matrix selector (rate(x[5m]), max_over_time(x[1h])...) that would visit every series once
 * per step, jumping between series' samples. Instead such calls are computed before the
 * steps, one series at a time across all steps with two cursors sliding over its samples
 * (what Prometheus' engine does for them too), and each step reads its vector from the
 * table. Only calls evaluated at the query's own steps qualify (not inside subqueries),
 * with literal scalar arguments, over float-only series. */
struct ql_pre {
    const struct ql_node *n;
    const struct ql_sel_data *d;
    int64_t start, step; /* the grid it was computed on (the query's or a subquery's) */
    size_t nsteps;
    double *v;   /* [step * ns + series] */
    uint8_t *has;
    int drop;    /* output drop flag (the function removes __name__) */
};

static int pre_eligible(struct ql_query *q, struct ql_node *n, ql_over_fn *f, int *keep,
                        int *mi)
{
    if (n->kind != QN_CALL || !ql_over_info(n->fn, f, keep) || n->nargs > 8)
        return 0;
    int m = -1;
    for (size_t i = 0; i < n->nargs; i++) {
        struct ql_node *a = n->args[i];
        if (a->kind == QN_MSEL && m < 0 && a->lhs->kind == QN_VSEL && !a->lhs->anchored &&
            !a->lhs->smoothed)
            m = (int)i;
        else if (a->kind != QN_NUM)
            return 0;
    }
    if (m < 0)
        return 0;
    struct ql_sel_data *d = &q->sel[n->args[m]->lhs->sel_id];
    if (!d->loaded)
        return 0;
    for (size_t i = 0; i < d->ns; i++)
        if (!d->s[i].nohist)
            return 0;
    *mi = m;
    return 1;
}

static void pre_compute(struct ql_query *q, struct ql_node *n, ql_over_fn f, int keep, int mi,
                        int64_t start, int64_t end, int64_t step)
{
    struct ql_node *msel = n->args[mi];
    struct ql_node *vsel = msel->lhs;
    const struct ql_sel_data *d = &q->sel[vsel->sel_id];
    size_t nsteps = (size_t)((end - start) / step) + 1;
    size_t ns = d->ns;
    struct ql_pre *p;
    q->pre = ql_grow(&q->qa, q->pre, q->npre * sizeof(*q->pre), (q->npre + 1) * sizeof(*q->pre));
    p = &q->pre[q->npre];
    p->n = n;
    p->d = d;
    p->start = start;
    p->step = step;
    p->nsteps = nsteps;
    p->drop = !keep;
    p->v = ql_alloc_raw(&q->qa, nsteps * ns * sizeof(double) + 1); /* read where has[] */
    p->has = ql_alloc(&q->qa, nsteps * ns + 1);
    struct ql_val args[8];
    memset(args, 0, sizeof(args));
    for (size_t i = 0; i < n->nargs; i++)
        if ((int)i != mi)
            args[i] = ql_eval(q, n->args[i], start);
    args[mi].type = MTD_QL_MATRIX;
    struct mtd_ql_point *buf = NULL;
    size_t bufcap = 0;
    uint32_t *nres = NULL; /* prefix counts of counter resets of the series */
    size_t nres_cap = 0;
    struct mtd_ql_point *conv = NULL; /* a float-only series' points, converted here */
    size_t conv_cap = 0;
    for (size_t i = 0; i < ns; i++) {
        ql_check_deadline(q);
        struct ql_sseries sc = d->s[i];
        const struct ql_sseries *s = &sc;
        if (!sc.p) {
            if (sc.n + 1 > conv_cap) {
                conv_cap = (sc.n + 1) * 2;
                conv = ql_alloc_raw(&q->qa, conv_cap * sizeof(*conv));
            }
            raw_to_points(sc.raw, sc.n, conv);
            sc.p = conv;
        }
        struct ql_mark mk = ql_arena_mark(&q->sa);
        long lo = 0, hi = -1;
        int info_done = 0;
        if (s->nostale) {
            if (s->n + 1 > nres_cap) {
                nres_cap = (s->n + 1) * 2;
                nres = ql_alloc(&q->qa, nres_cap * sizeof(*nres));
            }
            nres[0] = 0;
            for (size_t j = 1; j < s->n; j++)
                nres[j] = nres[j - 1] + (s->p[j].v < s->p[j - 1].v);
        }
        for (size_t k = 0; k < nsteps; k++) {
            int64_t t = start + (int64_t)k * step;
            int64_t ts = ql_sel_time(q, vsel, t);
            int64_t from = ts - msel->range;
            if (k == 0 || ts < ql_sel_time(q, vsel, t - step)) { /* not monotonic: search */
                hi = last_le(s->p, s->n, ts);
                lo = last_le(s->p, s->n, from) + 1;
            } else {
                while (hi + 1 < (long)s->n && s->p[hi + 1].t <= ts)
                    hi++;
                while (lo < (long)s->n && s->p[lo].t <= from)
                    lo++;
            }
            if (hi < lo)
                continue;
            struct ql_series w = {0};
            w.l = s->l;
            w.nohist = 1;
            w.info_done = info_done;
            if (s->nostale) {
                w.p = (struct mtd_ql_point *)&s->p[lo];
                w.n = (size_t)(hi - lo + 1);
                w.noreset = nres[hi] == nres[lo];
            } else {
                if ((size_t)(hi - lo + 1) > bufcap) {
                    bufcap = (size_t)(hi - lo + 1) * 2;
                    buf = ql_alloc(&q->qa, bufcap * sizeof(*buf));
                }
                for (long j = lo; j <= hi; j++)
                    if (!pt_stale(&s->p[j]))
                        buf[w.n++] = s->p[j];
                w.p = buf;
                if (w.n == 0)
                    continue;
            }
            struct ql_mat *m = &args[mi].mat;
            m->s = &w;
            m->n = 1;
            m->range_start = from;
            m->range_end = ts;
            m->range = msel->range;
            double v = 0;
            q->hout = NULL;
            if (f(q, n, args, &w, m, t, &v) && !q->hout) {
                p->v[k * ns + i] = v;
                p->has[k * ns + i] = 1;
            }
            info_done = 1; /* annotations about the series itself are in after one call */
        }
        ql_arena_release(&q->sa, mk);
    }
    q->npre++;
}

/* Walk the tree of a range query and precompute the qualifying calls (not below a
 * subquery: those are evaluated at the subquery's steps). */
static void subq_precompute(struct ql_query *q, struct ql_node *n, int64_t t0, int64_t t1);

/* top: n is evaluated at the query's own steps (subqueries there are precomputed too);
 * else at a subquery's grid (whose nested subqueries subq_precompute handles). */
/* Most (series x steps) entries one series-by-series table may have (9 bytes each); larger
 * calls are evaluated step by step, which holds one step's vector at a time. */
#define PRE_MAX_ENTRIES 40000000.0

static void pre_walk(struct ql_query *q, struct ql_node *n, int64_t start, int64_t end,
                     int64_t step, int top)
{
    if (!n)
        return;
    if (n->kind == QN_SUBQ) {
        if (top)
            subq_precompute(q, n, q->start, q->end);
        return;
    }
    ql_over_fn f;
    int keep, mi;
    if (pre_eligible(q, n, &f, &keep, &mi) &&
        (double)q->sel[n->args[mi]->lhs->sel_id].ns * (double)((end - start) / step + 1) <=
            PRE_MAX_ENTRIES) {
        pre_compute(q, n, f, keep, mi, start, end, step);
        return;
    }
    if (n->kind == QN_CALL) {
        for (size_t i = 0; i < n->nargs; i++)
            pre_walk(q, n->args[i], start, end, step, top);
        return;
    }
    pre_walk(q, n->lhs, start, end, step, top);
    pre_walk(q, n->rhs, start, end, step, top);
    pre_walk(q, n->param, start, end, step, top);
}

/* The precomputed vector of call n at step time t, or 0 when n is not precomputed or t is
 * not one of the query's steps. */
static int pre_lookup(struct ql_query *q, const struct ql_node *n, int64_t t, struct ql_val *out)
{
    for (size_t j = 0; j < q->npre; j++) {
        const struct ql_pre *p = &q->pre[j];
        if (p->n != n)
            continue;
        if (p->step <= 0 || t < p->start || (t - p->start) % p->step)
            return 0;
        size_t k = (size_t)((t - p->start) / p->step);
        if (k >= p->nsteps)
            return 0;
        size_t ns = p->d->ns;
        struct ql_val r = {.type = MTD_QL_VECTOR};
        r.vec.s = ql_alloc(&q->sa, (ns + 1) * sizeof(struct ql_sample));
        const double *v = &p->v[k * ns];
        const uint8_t *h = &p->has[k * ns];
        for (size_t i = 0; i < ns; i++) {
            if (!h[i])
                continue;
            struct ql_sample *o = &r.vec.s[r.vec.n++];
            o->l = p->d->s[i].l;
            o->t = t;
            o->v = v[i];
            o->drop = p->drop;
        }
        *out = r;
        return 1;
    }
    return 0;
}

/* ---------------------------------------------------------------- label-set ids */
/* Range queries evaluate the tree once per step; without ids every step would rebuild and
 * hash the label strings of every sample (grouping, name dropping, stitching). Label sets
 * that live as long as the query get an id (struct ql_labels.id) and the per-step work
 * becomes array lookups by id. */

/* Make room for id in an id-indexed array of elem-sized entries (zero-filled, qa). */
static void *lid_grow(struct ql_query *q, void *arr, size_t *cap, size_t elem, uint32_t id)
{
    if (id < *cap)
        return arr;
    size_t nc = *cap ? *cap : 64;
    while (nc <= id)
        nc *= 2;
    arr = ql_grow(&q->qa, arr, *cap * elem, nc * elem);
    *cap = nc;
    return arr;
}

/* Give l (which lives as long as the query) a fresh id. Not canonical: two selectors may
 * give the same series two ids. */
static void lid_assign(struct ql_query *q, struct ql_labels *l)
{
    uint32_t id = ++q->nlid;
    q->lids = lid_grow(q, q->lids, &q->lids_cap, sizeof(*q->lids), id);
    l->id = id;
    q->lids[id] = *l;
}

/* Canonical id of l's label set: looked up by content, else l is copied into the query
 * arena (the array always; the strings unless strings_stable) and registered. Sets l->id
 * and repoints l at the registered copy. */
static void ql_intern(struct ql_query *q, struct ql_labels *l, int strings_stable)
{
    if (q->imap.cap == 0)
        ql_map_init(&q->imap, &q->qa, 256);
    size_t kl;
    struct ql_mark mk = ql_arena_mark(&q->sa);
    const char *k = label_key(&q->sa, *l, 0, &kl);
    int id = ql_map_get(&q->imap, k, (size_t)kl);
    if (id > 0) {
        ql_arena_release(&q->sa, mk);
        *l = q->lids[id];
        return;
    }
    struct obs_label *v = ql_alloc(&q->qa, (l->n ? l->n : 1) * sizeof(*v));
    for (uint32_t i = 0; i < l->n; i++) {
        v[i].name = strings_stable ? l->v[i].name : ql_strdup(&q->qa, l->v[i].name);
        v[i].value = strings_stable ? l->v[i].value : ql_strdup(&q->qa, l->v[i].value);
    }
    struct ql_labels c = {v, l->n, 0};
    lid_assign(q, &c);
    ql_map_put(&q->imap, ql_strndup(&q->qa, k, kl), kl, (int)c.id);
    ql_arena_release(&q->sa, mk);
    *l = c;
}

/* Interned id of the set with __name__ removed (cached per id). */
static struct ql_labels lid_drop_name(struct ql_query *q, struct ql_labels l)
{
    q->drop_of = lid_grow(q, q->drop_of, &q->drop_cap, sizeof(*q->drop_of), l.id);
    uint32_t d = q->drop_of[l.id];
    if (d)
        return q->lids[d];
    struct ql_labels r = ql_ldel(&q->sa, l, "__name__");
    if (r.v == l.v && r.n == l.n) { /* no name: the set itself, made canonical */
        r.id = 0;
    }
    ql_intern(q, &r, 1);
    q->drop_of = lid_grow(q, q->drop_of, &q->drop_cap, sizeof(*q->drop_of), r.id);
    q->drop_of[l.id] = r.id;
    return r;
}

/* Per-step duplicate detection over canonical ids: returns 1 when id was already seen in
 * the current generation (start one with lid_seen_reset). */
static void lid_seen_reset(struct ql_query *q)
{
    q->seen_gen++;
}

static int lid_seen(struct ql_query *q, uint32_t id)
{
    q->seen = lid_grow(q, q->seen, &q->seen_cap, sizeof(*q->seen), id);
    if (q->seen[id] == q->seen_gen)
        return 1;
    q->seen[id] = q->seen_gen;
    return 0;
}

/* Aggregation grouping cache of one QN_AGG node: input id -> canonical group id, and the
 * per-evaluation slot of each group id. */
struct ql_agg_cache {
    const struct ql_node *n;
    uint32_t *gid_of; /* [input id] -> group id (0: not yet) */
    size_t gid_cap;
    uint32_t *slot;   /* [group id] -> index into this evaluation's groups */
    uint32_t *gen;    /* [group id] -> evaluation generation that set slot */
    size_t slot_cap, gen_cap;
    uint32_t cur;
};

/* The entry for node in a per-node cache array *arr of *n entries of elem bytes whose first
 * member is the node pointer; a zeroed entry is appended (*created set) when missing. An
 * entry pointer is valid until the next append to the same array. */
static void *node_cache(struct ql_query *q, void **arr, size_t *n, size_t elem,
                        const struct ql_node *node, int *created)
{
    unsigned char *a = *arr;
    for (size_t i = 0; i < *n; i++)
        if (*(const struct ql_node *const *)(a + i * elem) == node) {
            *created = 0;
            return a + i * elem;
        }
    a = ql_grow(&q->qa, a, *n * elem, (*n + 1) * elem); /* zeroed beyond the copy */
    *arr = a;
    unsigned char *e = a + (*n)++ * elem;
    memcpy(e, &node, sizeof(node));
    *created = 1;
    return e;
}

static struct ql_agg_cache *agg_cache(struct ql_query *q, const struct ql_node *n)
{
    int created;
    return node_cache(q, (void **)&q->aggc, &q->naggc, sizeof(*q->aggc), n, &created);
}

/* ---------------------------------------------------------------- stitching */
/* Collects per-step vectors into series keyed by label set (+ drop flag). */
struct stitch {
    struct ql_arena *a;
    struct ql_map map;
    struct ql_series *s;
    size_t n, cap;
    uint32_t *idx_of; /* [id * 2 + drop] -> series index + 1 (0: not yet) */
    size_t idx_cap;
};

static void stitch_init(struct stitch *st, struct ql_arena *a)
{
    memset(st, 0, sizeof(*st));
    st->a = a;
    ql_map_init(&st->map, a, 16);
}

static const char *label_key(struct ql_arena *a, struct ql_labels l, int drop, size_t *len)
{
    size_t total = 2;
    for (uint32_t i = 0; i < l.n; i++)
        total += strlen(l.v[i].name) + strlen(l.v[i].value) + 2;
    char *p = ql_alloc(a, total);
    size_t o = 0;
    p[o++] = drop ? 'd' : 'k';
    for (uint32_t i = 0; i < l.n; i++) {
        size_t x = strlen(l.v[i].name), y = strlen(l.v[i].value);
        memcpy(p + o, l.v[i].name, x);
        o += x;
        p[o++] = '\xff';
        memcpy(p + o, l.v[i].value, y);
        o += y;
        p[o++] = '\xff';
    }
    *len = o;
    return p;
}

static struct ql_labels copy_labels(struct ql_arena *a, struct ql_labels l)
{
    struct obs_label *v = ql_alloc(a, (l.n ? l.n : 1) * sizeof(*v));
    for (uint32_t i = 0; i < l.n; i++) {
        v[i].name = ql_strdup(a, l.v[i].name);
        v[i].value = ql_strdup(a, l.v[i].value);
    }
    struct ql_labels r = {v, l.n};
    return r;
}

/* Add vector samples at time t. copy: labels must be copied into st->a (they live in a
 * scratch arena that is about to be released). */
static void stitch_add(struct ql_query *q, struct stitch *st, struct ql_vec v, int64_t t,
                       int copy)
{
    for (size_t i = 0; i < v.n; i++) {
        uint32_t id = v.s[i].l.id;
        uint32_t slot = id * 2 + (v.s[i].drop != 0);
        if (id && st->a == &q->qa) { /* ids index arrays in the query arena only */
            if (slot >= st->idx_cap) {
                size_t nc = st->idx_cap ? st->idx_cap : 64;
                while (nc <= slot)
                    nc *= 2;
                st->idx_of = ql_grow(st->a, st->idx_of, st->idx_cap * sizeof(*st->idx_of),
                                     nc * sizeof(*st->idx_of));
                st->idx_cap = nc;
            }
            if (st->idx_of[slot]) {
                struct ql_series *s = &st->s[st->idx_of[slot] - 1];
                if (s->n > 0 && s->p[s->n - 1].t == t)
                    ql_throw(&q->qa, OBS_EINVAL,
                             "vector cannot contain metrics with the same labelset");
                struct mtd_ql_point pt = {t, v.s[i].v, v.s[i].h};
                if (copy && pt.h)
                    pt.h = ql_hist_copy(st->a, pt.h);
                QL_PUSH(st->a, s->p, s->n, s->cap, pt);
                continue;
            }
        } else {
            id = 0;
        }
        size_t kl;
        const char *k = label_key(&q->sa, v.s[i].l, v.s[i].drop, &kl);
        int idx = ql_map_get(&st->map, k, kl);
        if (id)
            st->idx_of[slot] = (uint32_t)(idx >= 0 ? idx : (int)st->n) + 1;
        if (idx < 0) {
            struct ql_series ns = {0};
            /* labels with an id already live as long as the query */
            ns.l = copy && !id ? copy_labels(st->a, v.s[i].l) : v.s[i].l;
            ns.drop = v.s[i].drop;
            idx = (int)st->n;
            QL_PUSH(st->a, st->s, st->n, st->cap, ns);
            ql_map_put(&st->map, ql_strndup(st->a, k, kl), kl, idx);
        }
        struct ql_series *s = &st->s[idx];
        if (s->n > 0 && s->p[s->n - 1].t == t)
            ql_throw(&q->qa, OBS_EINVAL, "vector cannot contain metrics with the same labelset");
        struct mtd_ql_point pt = {t, v.s[i].v, v.s[i].h};
        if (copy && pt.h)
            pt.h = ql_hist_copy(st->a, pt.h);
        QL_PUSH(st->a, s->p, s->n, s->cap, pt);
    }
}

/* ---------------------------------------------------------------- subqueries */
/* A subquery's inner expression is evaluated on an absolute grid (multiples of its step),
 * whatever the outer evaluation time. In a range query a top-level subquery is therefore
 * evaluated once over the grid points all steps' windows cover, and each step takes its
 * window from those series (as Prometheus does) instead of re-evaluating the inner
 * expression range/step times per step. */
struct ql_subq_pre {
    const struct ql_node *n;
    struct ql_series *s; /* points in time order */
    size_t ns;
    int64_t first, last; /* grid times evaluated */
};

/* Upper bound of inner evaluations one precomputed subquery may take (else per step). */
#define SUBQ_PRE_MAX_STEPS 1000000

/* Precompute the subqueries of the tree under n that are not below another subquery, for
 * evaluation times in [t0, t1]. */
static void subq_walk(struct ql_query *q, struct ql_node *n, int64_t t0, int64_t t1)
{
    if (!n)
        return;
    if (n->kind == QN_SUBQ) {
        subq_precompute(q, n, t0, t1);
        return;
    }
    for (size_t i = 0; n->kind == QN_CALL && i < n->nargs; i++)
        subq_walk(q, n->args[i], t0, t1);
    subq_walk(q, n->lhs, t0, t1);
    subq_walk(q, n->rhs, t0, t1);
    subq_walk(q, n->param, t0, t1);
}

/* Evaluate subquery n's inner expression once on its grid for outer evaluation times in
 * [t0, t1] (nested subqueries first, over the times this one evaluates them at). */
static void subq_precompute(struct ql_query *q, struct ql_node *n, int64_t t0, int64_t t1)
{
    int64_t b0 = ql_sel_time(q, n, t0), b1 = ql_sel_time(q, n, t1);
    if (b1 < b0) {
        int64_t x = b0;
        b0 = b1;
        b1 = x;
    }
    int64_t step = n->step > 0 ? n->step : q->default_step;
    if (step <= 0 || n->range <= 0)
        return;
    int64_t lo = b0 - n->range;
    int64_t first = step * (lo / step);
    if (first <= lo)
        first += step;
    if (first > b1 || (b1 - first) / step >= SUBQ_PRE_MAX_STEPS)
        return;
    subq_walk(q, n->lhs, first, b1);
    if (b1 > first) /* range functions of the inner expression, series by series */
        pre_walk(q, n->lhs, first, b1, step, 0);
    struct stitch st;
    stitch_init(&st, &q->qa);
    for (int64_t ts = first; ts <= b1; ts += step) {
        ql_check_deadline(q);
        struct ql_mark mk = ql_arena_mark(&q->sa);
        struct ql_val v = ql_eval(q, n->lhs, ts);
        if (v.type == MTD_QL_SCALAR) {
            struct ql_sample sm = {.t = ts, .v = v.scalar};
            struct ql_vec vv = {&sm, 1};
            stitch_add(q, &st, vv, ts, 1);
            count_samples(q, 1);
        } else {
            stitch_add(q, &st, v.vec, ts, 1);
            count_samples(q, v.vec.n);
        }
        ql_arena_release(&q->sa, mk);
    }
    q->subq = ql_grow(&q->qa, q->subq, q->nsubq * sizeof(*q->subq),
                      (q->nsubq + 1) * sizeof(*q->subq));
    struct ql_subq_pre *p = &q->subq[q->nsubq++];
    p->n = n;
    p->s = st.s;
    p->ns = st.n;
    p->first = first;
    p->last = b1;
}

/* The window (lo, base] of a precomputed subquery, or 0 when n has none covering it. */
static int subq_lookup(struct ql_query *q, const struct ql_node *n, int64_t lo, int64_t base,
                       int64_t step, struct ql_val *out)
{
    for (size_t j = 0; j < q->nsubq; j++) {
        const struct ql_subq_pre *p = &q->subq[j];
        if (p->n != n)
            continue;
        if (lo < p->first - step || base > p->last)
            return 0;
        struct ql_val r = {.type = MTD_QL_MATRIX};
        r.mat.s = ql_alloc(&q->sa, (p->ns + 1) * sizeof(struct ql_series));
        for (size_t i = 0; i < p->ns; i++) {
            const struct ql_series *s = &p->s[i];
            long hi = last_le(s->p, s->n, base);
            long from = last_le(s->p, s->n, lo) + 1;
            if (hi < from)
                continue;
            struct ql_series *o = &r.mat.s[r.mat.n++];
            o->l = s->l;
            o->drop = s->drop;
            o->p = &s->p[from];
            o->n = (size_t)(hi - from + 1);
        }
        r.mat.range_start = lo;
        r.mat.range_end = base;
        r.mat.range = n->range;
        *out = r;
        return 1;
    }
    return 0;
}

static struct ql_val eval_subq(struct ql_query *q, struct ql_node *n, int64_t t)
{
    int64_t base = ql_sel_time(q, n, t);
    int64_t step = n->step > 0 ? n->step : q->default_step;
    int64_t lo = base - n->range;
    struct ql_val pre;
    if (q->nsubq && subq_lookup(q, n, lo, base, step, &pre))
        return pre;
    int64_t start = step * (lo / step);
    if (start <= lo)
        start += step;
    struct stitch st;
    stitch_init(&st, &q->sa);
    for (int64_t ts = start; ts <= base; ts += step) {
        ql_check_deadline(q);
        struct ql_val v = ql_eval(q, n->lhs, ts);
        if (v.type == MTD_QL_SCALAR) {
            struct ql_sample s = {.t = ts, .v = v.scalar};
            struct ql_vec vv = {&s, 1};
            stitch_add(q, &st, vv, ts, 0);
            count_samples(q, 1);
        } else {
            stitch_add(q, &st, v.vec, ts, 0);
            count_samples(q, v.vec.n);
        }
    }
    struct ql_val r = {.type = MTD_QL_MATRIX};
    r.mat.s = st.s;
    r.mat.n = st.n;
    r.mat.range_start = lo;
    r.mat.range_end = base;
    r.mat.range = n->range;
    return r;
}

/* ---------------------------------------------------------------- binary operators */
static int op_is_cmp(enum ql_op op)
{
    return op >= QOP_EQL && op <= QOP_LTE;
}

/* Apply op to (l, r). Returns the value; *keep is 0 when a comparison filters it out. */
static double binop(enum ql_op op, double l, double r, int *keep)
{
    *keep = 1;
    switch (op) {
    case QOP_ADD: return l + r;
    case QOP_SUB: return l - r;
    case QOP_MUL: return l * r;
    case QOP_DIV: return l / r;
    case QOP_MOD: return fmod(l, r);
    case QOP_POW: return pow(l, r);
    case QOP_ATAN2: return atan2(l, r);
    case QOP_EQL: *keep = l == r; return l;
    case QOP_NEQ: *keep = l != r; return l;
    case QOP_GTR: *keep = l > r; return l;
    case QOP_LSS: *keep = l < r; return l;
    case QOP_GTE: *keep = l >= r; return l;
    case QOP_LTE: *keep = l <= r; return l;
    case QOP_TRIM_UPPER: case QOP_TRIM_LOWER: *keep = 0; return l; /* floats: no result */
    default: return NAN;
    }
}

/* Binary operation where at least one side is a histogram. Returns 0 when the result is
 * dropped (incompatible types, annotated as Prometheus does); else 1 with *oh (histogram
 * result or NULL), *ov (float result) and *keep (comparison outcome). */
static int hist_binop(struct ql_query *q, struct ql_node *n, const struct mtd_ql_hist *lh,
                      double lv, const struct mtd_ql_hist *rh, double rv,
                      const struct mtd_ql_hist **oh, double *ov, int *keep)
{
    *oh = NULL;
    *ov = 0;
    *keep = 1;
    const char *opname[] = {"", "+", "-", "*", "/", "%", "^", "atan2", "==", "!=", ">", "<",
                            ">=", "<=", "and", "or", "unless", "</", ">/"};
    if (lh && rh) {
        switch (n->op) {
        case QOP_ADD: case QOP_SUB: {
            int rec = 0;
            struct mtd_ql_hist *h = ql_hist_add_r(&q->sa, lh, rh, n->op == QOP_ADD ? 1 : -1,
                                                  &rec);
            if (h && rec)
                ql_info(q, n->pos, "PromQL info: mismatched custom buckets were reconciled "
                                   "during %s", n->op == QOP_ADD ? "addition" : "subtraction");
            if (!h) {
                ql_warn(q, n->pos, "PromQL warning: vector contains a mix of histograms with "
                                   "exponential and custom buckets schemas for metric name "
                                   "\"\"");
                return 0;
            }
            *oh = h;
            return 1;
        }
        case QOP_EQL: case QOP_NEQ: {
            int eq = ql_hist_equal(lh, rh);
            *keep = n->op == QOP_EQL ? eq : !eq;
            *oh = lh;
            return 1;
        }
        default:
            break;
        }
    } else if (lh) {
        if (n->op == QOP_TRIM_UPPER || n->op == QOP_TRIM_LOWER) {
            *oh = ql_hist_trim(&q->sa, lh, rv, n->op == QOP_TRIM_UPPER);
            return 1;
        }
        if (n->op == QOP_MUL || n->op == QOP_DIV) {
            *oh = n->op == QOP_MUL ? ql_hist_scale(&q->sa, lh, rv) : ql_hist_div(&q->sa, lh, rv);
            return 1;
        }
    } else {
        if (n->op == QOP_MUL) {
            *oh = ql_hist_scale(&q->sa, rh, lv);
            return 1;
        }
    }
    ql_info(q, n->pos, "PromQL info: incompatible sample types encountered for binary "
                       "operator \"%s\": %s %s %s", opname[n->op], lh ? "histogram" : "float",
            opname[n->op], rh ? "histogram" : "float");
    return 0;
}

static struct ql_val vec_scalar(struct ql_query *q, struct ql_node *n, struct ql_vec v, double sc,
                                int swap, int64_t t)
{
    struct ql_val r = {.type = MTD_QL_VECTOR};
    r.vec.s = ql_alloc(&q->sa, (v.n + 1) * sizeof(struct ql_sample));
    /* trim operators keep the metric name as comparisons do */
    int cmp = op_is_cmp(n->op) || n->op == QOP_TRIM_UPPER || n->op == QOP_TRIM_LOWER;
    for (size_t i = 0; i < v.n; i++) {
        double lv = v.s[i].v, rv = sc;
        if (swap) {
            lv = sc;
            rv = v.s[i].v;
        }
        int keep;
        if (v.s[i].h) {
            const struct mtd_ql_hist *oh;
            double ov;
            if (!hist_binop(q, n, swap ? NULL : v.s[i].h, lv, swap ? v.s[i].h : NULL, rv, &oh,
                            &ov, &keep))
                continue;
            struct ql_sample *o = &r.vec.s[r.vec.n++];
            o->l = v.s[i].l;
            o->t = t;
            o->h = oh;
            o->drop = v.s[i].drop || !cmp || n->bool_mod;
            continue;
        }
        double val = binop(n->op, lv, rv, &keep);
        if (cmp && swap)
            val = rv;
        if (n->bool_mod) {
            val = keep ? 1 : 0;
            keep = 1;
        }
        if (!keep)
            continue;
        struct ql_sample *o = &r.vec.s[r.vec.n++];
        o->l = v.s[i].l;
        o->t = t;
        o->v = val;
        o->drop = v.s[i].drop || !cmp || n->bool_mod;
    }
    return r;
}

static const char *sig_of(struct ql_query *q, struct ql_node *n, struct ql_labels l, size_t *len)
{
    return ql_lsig(&q->sa, l, n->mlabels, n->nmlabels, n->on, len);
}

static struct ql_val set_op(struct ql_query *q, struct ql_node *n, struct ql_vec l,
                            struct ql_vec rv)
{
    struct ql_val r = {.type = MTD_QL_VECTOR};
    r.vec.s = ql_alloc(&q->sa, (l.n + rv.n + 1) * sizeof(struct ql_sample));
    struct ql_map m;
    size_t kl;
    const char *k;
    if (n->op == QOP_OR) {
        ql_map_init(&m, &q->sa, l.n);
        for (size_t i = 0; i < l.n; i++) {
            k = sig_of(q, n, l.s[i].l, &kl);
            ql_map_put(&m, k, kl, 1);
            r.vec.s[r.vec.n++] = l.s[i];
        }
        for (size_t i = 0; i < rv.n; i++) {
            k = sig_of(q, n, rv.s[i].l, &kl);
            if (ql_map_get(&m, k, kl) < 0)
                r.vec.s[r.vec.n++] = rv.s[i];
        }
        return r;
    }
    ql_map_init(&m, &q->sa, rv.n);
    for (size_t i = 0; i < rv.n; i++) {
        k = sig_of(q, n, rv.s[i].l, &kl);
        ql_map_put(&m, k, kl, 1);
    }
    for (size_t i = 0; i < l.n; i++) {
        k = sig_of(q, n, l.s[i].l, &kl);
        int found = ql_map_get(&m, k, kl) >= 0;
        if ((n->op == QOP_AND) == found)
            r.vec.s[r.vec.n++] = l.s[i];
    }
    return r;
}

static struct ql_labels result_labels(struct ql_query *q, struct ql_node *n, struct ql_labels l,
                                      struct ql_labels r)
{
    struct ql_labels out = l;
    if (n->card == QC_ONE_ONE) {
        if (n->on)
            out = ql_lfilter(&q->sa, l, n->mlabels, n->nmlabels, 1, 0);
        else
            out = ql_lfilter(&q->sa, l, n->mlabels, n->nmlabels, 0, 0);
    }
    for (size_t i = 0; i < n->ninclude; i++) {
        const char *v = ql_lget(r, n->include[i]);
        out = ql_lset(&q->sa, out, n->include[i], v ? v : "");
    }
    return out;
}

/* n's operator on one matched pair of vector samples (lh/rh: histograms or NULL, fl/fr the
 * floats; cmp: n is a comparison or trim). Returns 0 when the pair yields no sample; else
 * sets *oh, *val and *keep (what a comparison decided). */
static int pair_binop(struct ql_query *q, struct ql_node *n, const struct mtd_ql_hist *lh,
                      double fl, const struct mtd_ql_hist *rh, double fr, int cmp,
                      const struct mtd_ql_hist **oh, double *val, int *keep)
{
    if (!lh && !rh) {
        *val = binop(n->op, fl, fr, keep);
        return 1;
    }
    if (!hist_binop(q, n, lh, fl, rh, fr, oh, val, keep))
        return 0;
    if (n->bool_mod) {
        *oh = NULL;
        *val = *keep ? 1 : 0;
    }
    return !(*oh && cmp && !*keep);
}

/* fill_left / fill: right-hand samples without a match on the left meet a left sample of
 * value fill_lv whose labels are the match group's. With group_right the sides are swapped
 * before this (as Prometheus: the fill values are not). Appends to out. */
static void fill_left_pass(struct ql_query *q, struct ql_node *n, struct ql_vec rv,
                           const char *rmatched, int swapped, struct ql_vec *out, int64_t t)
{
    int cmp = op_is_cmp(n->op) || n->op == QOP_TRIM_UPPER || n->op == QOP_TRIM_LOWER;
    for (size_t j = 0; j < rv.n; j++) {
        if (rmatched[j])
            continue;
        struct ql_labels gl = n->on ? ql_lfilter(&q->sa, rv.s[j].l, n->mlabels, n->nmlabels, 1, 0)
                                    : ql_lfilter(&q->sa, rv.s[j].l, n->mlabels, n->nmlabels, 0, 1);
        double fl = n->fill_lv, fr = rv.s[j].v;
        const struct mtd_ql_hist *lh = NULL, *rh = rv.s[j].h, *oh = NULL;
        if (swapped) {
            double tmp = fl;
            fl = fr;
            fr = tmp;
            lh = rh;
            rh = NULL;
        }
        int keep;
        double val;
        if (!pair_binop(q, n, lh, fl, rh, fr, cmp, &oh, &val, &keep))
            continue;
        if (n->bool_mod)
            val = keep ? 1 : 0;
        else if (!keep)
            continue;
        struct ql_sample *o = &out->s[out->n++];
        o->l = result_labels(q, n, gl, rv.s[j].l);
        o->t = t;
        o->v = val;
        o->h = oh;
        o->drop = !cmp || n->bool_mod;
    }
}

/* One-to-one matching cache of one QN_BINARY node, for queries evaluated at many times:
 * label-set id -> matching-signature id, left id -> result labels, and per-evaluation
 * slots by signature id (see vec_vec_ids). */
struct ql_bin_cache {
    const struct ql_node *n;
    struct ql_map sigs;        /* signature string -> signature id */
    uint32_t nsig;
    uint32_t *sig_of;          /* [label id] -> signature id (0: not yet) */
    uint32_t *res_of;          /* [left label id] -> result label id (0: not yet) */
    uint32_t *rgen, *rslot;    /* [signature id] -> right sample of this evaluation */
    uint32_t *mgen;            /* [signature id] -> matched in this evaluation */
    size_t sig_cap, res_cap, rgen_cap, rslot_cap, mgen_cap;
    uint32_t cur;
};

static struct ql_bin_cache *bin_cache(struct ql_query *q, const struct ql_node *n)
{
    int created;
    struct ql_bin_cache *c = node_cache(q, (void **)&q->binc, &q->nbinc, sizeof(*q->binc), n,
                                        &created);
    if (created)
        ql_map_init(&c->sigs, &q->qa, 64);
    return c;
}

static uint32_t bin_sig(struct ql_query *q, struct ql_bin_cache *bc, struct ql_node *n,
                        struct ql_labels l)
{
    bc->sig_of = lid_grow(q, bc->sig_of, &bc->sig_cap, sizeof(*bc->sig_of), l.id);
    if (bc->sig_of[l.id])
        return bc->sig_of[l.id];
    size_t kl;
    const char *k = sig_of(q, n, l, &kl);
    int v = ql_map_get(&bc->sigs, k, kl);
    if (v < 0) {
        v = (int)++bc->nsig;
        ql_map_put(&bc->sigs, ql_strndup(&q->qa, k, kl), kl, v);
    }
    bc->sig_of[l.id] = (uint32_t)v;
    return (uint32_t)v;
}

/* vec_vec for one-to-one matching without fill modifiers when every sample has a label-set
 * id: the matching and the result labels come from per-node caches instead of building and
 * hashing signature strings at every step. Returns 0 (nothing produced) when the slow path
 * must run instead (a duplicate on the right: it produces the error message). */
static int vec_vec_ids(struct ql_query *q, struct ql_node *n, struct ql_vec l, struct ql_vec rv,
                       int64_t t, struct ql_val *out)
{
    struct ql_bin_cache *bc = bin_cache(q, n);
    bc->cur++;
    for (size_t i = 0; i < rv.n; i++) {
        uint32_t sid = bin_sig(q, bc, n, rv.s[i].l);
        bc->rgen = lid_grow(q, bc->rgen, &bc->rgen_cap, sizeof(*bc->rgen), sid);
        bc->rslot = lid_grow(q, bc->rslot, &bc->rslot_cap, sizeof(*bc->rslot), sid);
        if (bc->rgen[sid] == bc->cur)
            return 0;
        bc->rgen[sid] = bc->cur;
        bc->rslot[sid] = (uint32_t)i;
    }
    struct ql_val r = {.type = MTD_QL_VECTOR};
    r.vec.s = ql_alloc(&q->sa, (l.n + 1) * sizeof(struct ql_sample));
    int cmp = op_is_cmp(n->op) || n->op == QOP_TRIM_UPPER || n->op == QOP_TRIM_LOWER;
    for (size_t i = 0; i < l.n; i++) {
        uint32_t sid = bin_sig(q, bc, n, l.s[i].l);
        if (sid >= bc->rgen_cap || bc->rgen[sid] != bc->cur)
            continue;
        const struct ql_sample *rsm = &rv.s[bc->rslot[sid]];
        double fl = l.s[i].v, fr = rsm->v, val;
        const struct mtd_ql_hist *lh = l.s[i].h, *rh = rsm->h, *oh = NULL;
        int keep;
        if (!pair_binop(q, n, lh, fl, rh, fr, cmp, &oh, &val, &keep))
            continue;
        /* a second match is an error even when a comparison filters it */
        bc->mgen = lid_grow(q, bc->mgen, &bc->mgen_cap, sizeof(*bc->mgen), sid);
        if (bc->mgen[sid] == bc->cur)
            ql_throw(&q->qa, OBS_EINVAL, "multiple matches for labels: many-to-one matching "
                                         "must be explicit (group_left/group_right)");
        bc->mgen[sid] = bc->cur;
        if (n->bool_mod)
            val = keep ? 1 : 0;
        else if (!keep)
            continue;
        uint32_t id = l.s[i].l.id;
        bc->res_of = lid_grow(q, bc->res_of, &bc->res_cap, sizeof(*bc->res_of), id);
        if (!bc->res_of[id]) {
            struct ql_labels ml = result_labels(q, n, l.s[i].l, rsm->l);
            ql_intern(q, &ml, 1);
            bc->res_of[id] = ml.id;
        }
        struct ql_sample *o = &r.vec.s[r.vec.n++];
        o->l = q->lids[bc->res_of[id]];
        o->t = t;
        o->v = val;
        o->h = oh;
        o->drop = !cmp || n->bool_mod || l.s[i].drop;
    }
    *out = r;
    return 1;
}

static struct ql_val vec_vec(struct ql_query *q, struct ql_node *n, struct ql_vec l,
                             struct ql_vec rv, int64_t t)
{
    if (n->card == QC_MANY_MANY)
        return set_op(q, n, l, rv);
    if (q->multi && n->card == QC_ONE_ONE && !n->fill_l && !n->fill_r && n->ninclude == 0) {
        int ids = 1;
        for (size_t i = 0; ids && i < l.n; i++)
            ids = l.s[i].l.id != 0;
        for (size_t i = 0; ids && i < rv.n; i++)
            ids = rv.s[i].l.id != 0;
        struct ql_val fast;
        if (ids && vec_vec_ids(q, n, l, rv, t, &fast))
            return fast;
    }
    struct ql_val r = {.type = MTD_QL_VECTOR};
    if ((l.n == 0 || rv.n == 0) && !n->fill_l && !n->fill_r)
        return r;
    int swapped = n->card == QC_ONE_MANY;
    if (swapped) {
        struct ql_vec tmp = l;
        l = rv;
        rv = tmp;
    }
    struct ql_map rs;
    ql_map_init(&rs, &q->sa, rv.n);
    size_t kl;
    for (size_t i = 0; i < rv.n; i++) {
        const char *k = sig_of(q, n, rv.s[i].l, &kl);
        int prev = ql_map_put(&rs, k, kl, (int)i);
        if (prev >= 0) {
            struct ql_labels ml = n->on ? ql_lfilter(&q->sa, rv.s[i].l, n->mlabels, n->nmlabels,
                                                     1, 0)
                                        : ql_lfilter(&q->sa, rv.s[i].l, n->mlabels,
                                                     n->nmlabels, 0, 1);
            const char *d1 = ql_lstr_raw(&q->sa, rv.s[i].l);
            const char *d2 = ql_lstr_raw(&q->sa, rv.s[prev].l);
            if (strcmp(d1, d2) > 0) { /* stable, sorted order as Prometheus */
                const char *tmp = d1;
                d1 = d2;
                d2 = tmp;
            }
            ql_throw(&q->qa, OBS_EINVAL,
                     "found duplicate series for the match group %s on the %s hand-side of the "
                     "operation: [%s, %s];many-to-many matching not allowed: matching labels "
                     "must be unique on one side",
                     ql_lstr_raw(&q->sa, ml), swapped ? "left" : "right", d1, d2);
        }
    }
    r.vec.s = ql_alloc(&q->sa, (l.n + rv.n + 1) * sizeof(struct ql_sample));
    char *rmatched = ql_alloc(&q->sa, rv.n + 1); /* fill_left: right samples with a match */
    struct ql_sample fill_s = {.v = n->fill_rv}; /* fill_right's stand-in right sample */
    struct ql_map matched, inserted;
    ql_map_init(&matched, &q->sa, l.n);
    ql_map_init(&inserted, &q->sa, l.n);
    int cmp = op_is_cmp(n->op) || n->op == QOP_TRIM_UPPER || n->op == QOP_TRIM_LOWER;
    for (size_t i = 0; i < l.n; i++) {
        const char *k = sig_of(q, n, l.s[i].l, &kl);
        int ri = ql_map_get(&rs, k, kl);
        if (ri < 0 && !n->fill_r)
            continue;
        if (ri >= 0)
            rmatched[ri] = 1;
        const struct ql_sample *rsm = ri >= 0 ? &rv.s[ri] : &fill_s;
        double fl = l.s[i].v, fr = rsm->v;
        if (swapped) {
            double tmp = fl;
            fl = fr;
            fr = tmp;
        }
        int keep;
        const struct mtd_ql_hist *lh = l.s[i].h, *rh = rsm->h, *oh = NULL;
        if (swapped) {
            const struct mtd_ql_hist *tmp = lh;
            lh = rh;
            rh = tmp;
        }
        double val;
        if (!pair_binop(q, n, lh, fl, rh, fr, cmp, &oh, &val, &keep))
            continue;
        /* One-to-one: a second match is an error even when a comparison filters it. */
        if (n->card == QC_ONE_ONE && ql_map_put(&matched, k, kl, 1) >= 0)
            ql_throw(&q->qa, OBS_EINVAL, "multiple matches for labels: many-to-one matching "
                                         "must be explicit (group_left/group_right)");
        if (n->bool_mod) {
            val = keep ? 1 : 0;
        } else if (!keep) {
            continue;
        }
        struct ql_labels ml = result_labels(q, n, l.s[i].l, rsm->l);
        int drop = !cmp || n->bool_mod || l.s[i].drop;
        if (n->card != QC_ONE_ONE) {
            size_t ikl;
            const char *ik = label_key(&q->sa, ml, 0, &ikl);
            char *full = ql_alloc(&q->sa, kl + ikl + 1);
            memcpy(full, k, kl);
            full[kl] = '\x01';
            memcpy(full + kl + 1, ik, ikl);
            if (ql_map_put(&inserted, full, kl + ikl + 1, 1) >= 0)
                ql_throw(&q->qa, OBS_EINVAL, "multiple matches for matching labels; many-to-one "
                                             "matching must be explicit (group_left/group_right)");
        }
        struct ql_sample *o = &r.vec.s[r.vec.n++];
        o->l = ml;
        o->t = t;
        o->v = val;
        o->h = oh;
        o->drop = drop;
    }
    if (n->fill_l)
        fill_left_pass(q, n, rv, rmatched, swapped, &r.vec, t);
    return r;
}

static struct ql_val eval_binary(struct ql_query *q, struct ql_node *n, int64_t t)
{
    struct ql_val l = ql_eval(q, n->lhs, t);
    struct ql_val r = ql_eval(q, n->rhs, t);
    if (l.type == MTD_QL_SCALAR && r.type == MTD_QL_SCALAR) {
        int keep;
        double v = binop(n->op, l.scalar, r.scalar, &keep);
        if (n->bool_mod)
            v = keep ? 1 : 0;
        struct ql_val o = {.type = MTD_QL_SCALAR, .scalar = v};
        return o;
    }
    if (l.type == MTD_QL_VECTOR && r.type == MTD_QL_SCALAR)
        return vec_scalar(q, n, l.vec, r.scalar, 0, t);
    if (l.type == MTD_QL_SCALAR && r.type == MTD_QL_VECTOR)
        return vec_scalar(q, n, r.vec, l.scalar, 1, t);
    return vec_vec(q, n, l.vec, r.vec, t);
}

/* ---------------------------------------------------------------- aggregation */
struct group {
    struct ql_labels l;
    double v, c, mean, cnt;
    int inc_mean;      /* avg switched to incremental mean after overflow */
    double *vals;      /* quantile */
    size_t nv, capv;
    struct ql_sample *keep; /* topk/bottomk/limitk */
    size_t nk, capk;
    int has;
    int drop;          /* some input's __name__ is to be dropped (by (__name__) groups) */
    const struct mtd_ql_hist *h; /* sum/avg of histogram inputs */
    struct ql_hacc *hacc;        /* their compensated sum/mean (ql_hist.c) */
    size_t nh, nall;
    int hbad;          /* incompatible histogram schemas */
};

static const char *agg_name(enum ql_agg a)
{
    static const char *names[] = {"", "sum", "avg", "min", "max", "count", "group", "stddev",
                                  "stdvar", "topk", "bottomk", "quantile", "count_values",
                                  "limitk", "limit_ratio"};
    return names[a];
}

static int samp_cmp_asc(const void *a, const void *b)
{
    const struct ql_sample *x = a, *y = b;
    if (x->v != x->v || y->v != y->v)
        return (x->v != x->v) - (y->v != y->v);
    return x->v < y->v ? -1 : x->v > y->v ? 1 : 0;
}

static int samp_cmp_desc(const void *a, const void *b)
{
    const struct ql_sample *x = a, *y = b;
    if (x->v != x->v || y->v != y->v)
        return (x->v != x->v) - (y->v != y->v);
    return x->v > y->v ? -1 : x->v < y->v ? 1 : 0;
}

static int64_t param_int(struct ql_query *q, double v, const char *what)
{
    if (v != v)
        ql_throw(&q->qa, OBS_EINVAL, "Parameter value is NaN");
    if (v > 9.2e18 || v < -9.2e18)
        ql_throw(&q->qa, OBS_EINVAL, "Scalar value %s overflows int64", v != v ? "NaN" :
                 v > 0 ? "+Inf" : "-Inf");
    (void)what;
    return (int64_t)v;
}

static uint64_t labels_hash(struct ql_labels l)
{
    return obs_labels_hash(l.v, l.n);
}

static struct ql_val eval_agg(struct ql_query *q, struct ql_node *n, int64_t t)
{
    struct ql_val in = ql_eval(q, n->lhs, t);
    double pv = 0;
    const char *ps = NULL;
    if (n->param) {
        struct ql_val p = ql_eval(q, n->param, t);
        if (p.type == MTD_QL_STRING)
            ps = p.str;
        else
            pv = p.scalar;
    }
    if (n->agg == QA_COUNT_VALUES && (!ps || !obs_label_name_valid(ps, strlen(ps))))
        ql_throw(&q->qa, OBS_EINVAL, "invalid label name %s",
                 ql_go_quote(&q->sa, ps ? ps : ""));
    int64_t k = 0;
    if (n->agg == QA_TOPK || n->agg == QA_BOTTOMK || n->agg == QA_LIMITK) {
        k = param_int(q, pv, "k");
        if (k < 1) {
            struct ql_val e = {.type = MTD_QL_VECTOR};
            return e;
        }
    }
    if (n->agg == QA_QUANTILE && !(pv >= 0 && pv <= 1))
        ql_warn(q, n->param->pos, 
                   "PromQL warning: quantile value should be between 0 and 1, got %s",
                pv != pv ? "NaN" : ql_printf(&q->sa, "%g", pv));
    if (n->agg == QA_LIMIT_RATIO && pv != pv)
        ql_throw(&q->qa, OBS_EINVAL, "Ratio value is NaN");
    if (n->agg == QA_LIMIT_RATIO && (pv < -1 || pv > 1)) {
        ql_warn(q, n->param->pos, "PromQL warning: ratio value should be between -1 and 1, got %g, "
                   "capping to %d", pv, pv < 0 ? -1 : 1);
        pv = pv < 0 ? -1 : 1;
    }
    /* Fast grouping when every input has a label-set id (see agg_cache); pays off when the
     * node is evaluated more than once. */
    int fast = n->agg != QA_COUNT_VALUES && q->multi;
    for (size_t i = 0; fast && i < in.vec.n; i++)
        fast = in.vec.s[i].l.id != 0;
    struct ql_agg_cache *ac = NULL;
    struct ql_map gm;
    if (fast) {
        ac = agg_cache(q, n);
        ac->cur++;
    } else {
        ql_map_init(&gm, &q->sa, in.vec.n);
    }
    struct group *g = ql_alloc(&q->sa, (in.vec.n + 1) * sizeof(*g));
    size_t ng = 0;
    int keep_labels = n->agg == QA_TOPK || n->agg == QA_BOTTOMK || n->agg == QA_LIMITK ||
                      n->agg == QA_LIMIT_RATIO;
    for (size_t i = 0; i < in.vec.n; i++) {
        struct ql_sample *s = &in.vec.s[i];
        if (s->h) {
            switch (n->agg) {
            case QA_SUM: case QA_AVG: case QA_COUNT: case QA_GROUP: case QA_LIMITK:
            case QA_LIMIT_RATIO:
                break;
            case QA_COUNT_VALUES:
                break;
            default:
                ql_info(q, n->pos, "PromQL info: ignored histogram in %s aggregation",
                        agg_name(n->agg));
                continue;
            }
        }
        /* Grouping sees the name that is not yet removed (delayed name removal); a group
         * keyed by __name__ drops it at the end if any input would have. */
        struct ql_labels sl = s->l;
        (void)keep_labels;
        struct ql_labels gl;
        int gi;
        if (fast) {
            uint32_t id = sl.id;
            ac->gid_of = lid_grow(q, ac->gid_of, &ac->gid_cap, sizeof(*ac->gid_of), id);
            uint32_t gid = ac->gid_of[id];
            if (!gid) {
                gl = n->without ? ql_lfilter(&q->sa, sl, n->grouping, n->ngrouping, 0, 1)
                                : ql_lfilter(&q->sa, sl, n->grouping, n->ngrouping, 1, 0);
                ql_intern(q, &gl, 1);
                gid = gl.id;
                ac->gid_of[id] = gid;
            }
            gl = q->lids[gid];
            ac->gen = lid_grow(q, ac->gen, &ac->gen_cap, sizeof(*ac->gen), gid);
            ac->slot = lid_grow(q, ac->slot, &ac->slot_cap, sizeof(*ac->slot), gid);
            if (ac->gen[gid] == ac->cur) {
                gi = (int)ac->slot[gid];
            } else {
                ac->gen[gid] = ac->cur;
                ac->slot[gid] = (uint32_t)ng;
                gi = -1;
            }
            goto grouped;
        }
        if (n->without)
            gl = ql_lfilter(&q->sa, sl, n->grouping, n->ngrouping, 0, 1);
        else
            gl = ql_lfilter(&q->sa, sl, n->grouping, n->ngrouping, 1, 0);
        if (n->agg == QA_COUNT_VALUES) {
            char buf[MTD_QL_FMT_F_MAX];
            const char *lv = buf;
            if (s->h)
                lv = ql_hist_str(&q->sa, s->h);
            else
                mtd_ql_fmt_f(buf, sizeof(buf), s->v);
            gl = ql_lset(&q->sa, gl, ps, ql_strdup(&q->sa, lv));
        }
        size_t kl;
        const char *key = label_key(&q->sa, gl, 0, &kl);
        gi = ql_map_put(&gm, key, kl, (int)ng);
grouped:;
        struct group *G;
        if (s->h && (n->agg == QA_SUM || n->agg == QA_AVG)) {
            if (gi < 0) {
                G = &g[ng++];
                G->l = gl;
                G->has = 1;
                G->drop = s->drop;
            } else {
                G = &g[gi];
                G->drop |= s->drop;
            }
            G->nall++;
            G->nh++;
            if (!G->hacc) {
                G->hacc = ql_alloc(&q->sa, sizeof(*G->hacc));
                ql_hacc_init(G->hacc);
            }
            if (!G->hbad) {
                int rec = G->hacc->reconciled;
                if (ql_hacc_add(&q->sa, G->hacc, s->h, n->agg == QA_AVG) < 0)
                    G->hbad = 1;
                else if (!rec && G->hacc->reconciled)
                    ql_info(q, n->pos, "PromQL info: mismatched custom buckets were reconciled "
                                       "during aggregation");
            }
            continue;
        }
        if (gi < 0) {
            G = &g[ng++];
            G->l = gl;
            G->v = s->v;
            G->mean = s->v;
            G->cnt = 1;
            G->c = 0;
            G->has = 1;
            G->drop = s->drop;
            G->nall = 1;
            switch (n->agg) {
            case QA_COUNT: case QA_COUNT_VALUES: case QA_GROUP: G->v = 1; break;
            case QA_STDDEV: case QA_STDVAR: G->v = isnan(s->v) || isinf(s->v) ? NAN : 0; break;
            case QA_QUANTILE: QL_PUSH(&q->sa, G->vals, G->nv, G->capv, s->v); break;
            case QA_TOPK: case QA_BOTTOMK: case QA_LIMITK: case QA_LIMIT_RATIO:
                QL_PUSH(&q->sa, G->keep, G->nk, G->capk, *s);
                break;
            default: break;
            }
            continue;
        }
        G = &g[gi];
        G->drop |= s->drop;
        G->nall++;
        if (G->nh && G->nall == G->nh + 1 && (n->agg == QA_SUM || n->agg == QA_AVG)) {
            /* first float in a histogram group: start the float state */
            G->v = s->v;
            G->cnt = 1;
            continue;
        }
        switch (n->agg) {
        case QA_SUM:
            G->v = ql_kahan_inc(s->v, G->v, &G->c);
            break;
        case QA_AVG: {
            G->cnt++;
            if (!G->inc_mean) {
                double c2 = G->c;
                double nv = ql_kahan_inc(s->v, G->v, &c2);
                if (!isinf(nv)) {
                    G->v = nv;
                    G->c = c2;
                    break;
                }
                /* The sum overflowed: switch to the incremental mean. */
                G->inc_mean = 1;
                G->mean = G->v / (G->cnt - 1);
                G->c = G->c / (G->cnt - 1);
            }
            if (isinf(G->mean)) {
                if (isinf(s->v) && (G->mean > 0) == (s->v > 0))
                    break;
                if (!isinf(s->v) && !isnan(s->v))
                    break;
            }
            double cur = G->mean + G->c;
            G->mean = ql_kahan_inc(s->v / G->cnt - cur / G->cnt, G->mean, &G->c);
            break;
        }
        case QA_MIN:
            if (G->v > s->v || isnan(G->v))
                G->v = s->v;
            break;
        case QA_MAX:
            if (G->v < s->v || isnan(G->v))
                G->v = s->v;
            break;
        case QA_COUNT: case QA_COUNT_VALUES:
            G->v += 1;
            break;
        case QA_GROUP:
            break;
        case QA_STDDEV: case QA_STDVAR: {
            G->cnt++;
            double delta = s->v - G->mean;
            G->mean += delta / G->cnt;
            G->v += delta * (s->v - G->mean);
            break;
        }
        case QA_QUANTILE:
            QL_PUSH(&q->sa, G->vals, G->nv, G->capv, s->v);
            break;
        case QA_TOPK: case QA_BOTTOMK: case QA_LIMITK: case QA_LIMIT_RATIO:
            QL_PUSH(&q->sa, G->keep, G->nk, G->capk, *s);
            break;
        }
    }
    struct ql_val r = {.type = MTD_QL_VECTOR};
    r.vec.s = ql_alloc(&q->sa, (in.vec.n + 1) * sizeof(struct ql_sample));
    for (size_t i = 0; i < ng; i++) {
        struct group *G = &g[i];
        double v = G->v;
        if (G->nh && (n->agg == QA_SUM || n->agg == QA_AVG)) {
            const char *nm = ql_lget(G->l, "__name__");
            if (G->nh != G->nall) {
                ql_warn(q, n->pos, "PromQL warning: encountered a mix of histograms and floats "
                                   "for metric name \"%s\"", nm ? nm : "");
                continue;
            }
            if (G->hbad) {
                ql_warn(q, n->pos, "PromQL warning: vector contains a mix of histograms with "
                                   "exponential and custom buckets schemas for metric name "
                                   "\"%s\"", nm ? nm : "");
                continue;
            }
            if (G->hacc->crh_conflict)
                ql_warn(q, n->lhs->pos, "PromQL warning: conflicting counter resets during "
                                        "histogram aggregation");
            struct mtd_ql_hist *h = ql_hacc_finish(&q->sa, G->hacc, n->agg == QA_AVG);
            struct ql_sample *o = &r.vec.s[r.vec.n++];
            o->l = G->l;
            o->t = t;
            o->h = h;
            o->drop = G->drop && ql_lget(G->l, "__name__") != NULL;
            continue;
        }
        switch (n->agg) {
        case QA_SUM:
            v = G->v + G->c;
            break;
        case QA_AVG:
            v = G->inc_mean ? G->mean + G->c : (G->v + G->c) / G->cnt;
            break;
        case QA_STDVAR:
            v = G->v / G->cnt;
            break;
        case QA_STDDEV:
            v = sqrt(G->v / G->cnt);
            break;
        case QA_QUANTILE:
            v = ql_quantile(pv, G->vals, G->nv);
            break;
        case QA_TOPK: case QA_BOTTOMK: {
            qsort(G->keep, G->nk, sizeof(struct ql_sample),
                  n->agg == QA_TOPK ? samp_cmp_desc : samp_cmp_asc);
            size_t lim = (size_t)k < G->nk ? (size_t)k : G->nk;
            for (size_t j = 0; j < lim; j++) {
                struct ql_sample s = G->keep[j];
                s.t = t;
                r.vec.s[r.vec.n++] = s;
            }
            continue;
        }
        case QA_LIMITK: {
            size_t lim = (size_t)k < G->nk ? (size_t)k : G->nk;
            for (size_t j = 0; j < lim; j++) {
                struct ql_sample s = G->keep[j];
                s.t = t;
                r.vec.s[r.vec.n++] = s;
            }
            continue;
        }
        case QA_LIMIT_RATIO: {
            for (size_t j = 0; j < G->nk; j++) {
                double h = (double)labels_hash(G->keep[j].l) / 18446744073709551616.0;
                int sel = pv >= 0 ? h < pv : h >= 1 + pv;
                if (sel) {
                    struct ql_sample s = G->keep[j];
                    s.t = t;
                    r.vec.s[r.vec.n++] = s;
                }
            }
            continue;
        }
        default:
            break;
        }
        struct ql_sample *o = &r.vec.s[r.vec.n++];
        o->l = G->l;
        o->t = t;
        o->v = v;
        o->drop = G->drop && ql_lget(G->l, "__name__") != NULL;
    }
    return r;
}

/* ---------------------------------------------------------------- dispatcher */
/* Prometheus' default name handling: drop flagged names as soon as a function or operator
 * produced them; check (functions, binary operators, aggregations: upstream's rangeEval)
 * that no two series of the vector now share a label set. */
static struct ql_val drop_now(struct ql_query *q, struct ql_val v, int check)
{
    if (q->delayed || v.type != MTD_QL_VECTOR)
        return v;
    /* Fast path: every sample drops its name and has an id: cached canonical ids, and the
     * duplicate check compares ids. */
    size_t nfast = 0;
    for (size_t i = 0; q->multi && i < v.vec.n && v.vec.s[i].drop && v.vec.s[i].l.id; i++)
        nfast++;
    if (nfast == v.vec.n && nfast > 0) {
        lid_seen_reset(q);
        for (size_t i = 0; i < v.vec.n; i++) {
            v.vec.s[i].l = lid_drop_name(q, v.vec.s[i].l);
            v.vec.s[i].drop = 0;
            if (check && lid_seen(q, v.vec.s[i].l.id))
                ql_throw(&q->qa, OBS_EINVAL,
                         "vector cannot contain metrics with the same labelset");
        }
        return v;
    }
    int any = 0;
    for (size_t i = 0; i < v.vec.n; i++) {
        if (!v.vec.s[i].drop)
            continue;
        v.vec.s[i].l = ql_ldel(&q->sa, v.vec.s[i].l, "__name__");
        v.vec.s[i].drop = 0;
        any = 1;
    }
    if (!any || !check || v.vec.n < 2)
        return v;
    struct ql_map m;
    ql_map_init(&m, &q->sa, v.vec.n);
    for (size_t i = 0; i < v.vec.n; i++) {
        size_t kl;
        const char *k = label_key(&q->sa, v.vec.s[i].l, 0, &kl);
        if (ql_map_put(&m, k, kl, (int)i) >= 0)
            ql_throw(&q->qa, OBS_EINVAL, "vector cannot contain metrics with the same labelset");
    }
    return v;
}

static struct ql_val eval_node(struct ql_query *q, struct ql_node *n, int64_t t);

struct ql_val ql_eval(struct ql_query *q, struct ql_node *n, int64_t t)
{
    struct ql_val v = eval_node(q, n, t);
    switch (n->kind) {
    case QN_UNARY:
        return drop_now(q, v, 0);
    case QN_BINARY:
    case QN_AGG:
    case QN_CALL:
        return drop_now(q, v, 1);
    default:
        return v;
    }
}

static struct ql_val eval_node(struct ql_query *q, struct ql_node *n, int64_t t)
{
    ql_check_deadline(q);
    struct ql_val r = {.type = MTD_QL_NONE};
    switch (n->kind) {
    case QN_NUM:
        r.type = MTD_QL_SCALAR;
        r.scalar = n->num;
        return r;
    case QN_STR:
        r.type = MTD_QL_STRING;
        r.str = n->str;
        return r;
    case QN_PAREN:
    case QN_STEPINV:
        return ql_eval(q, n->lhs, t);
    case QN_VSEL:
        return eval_vsel(q, n, t);
    case QN_MSEL:
        return eval_msel(q, n, t);
    case QN_SUBQ:
        return eval_subq(q, n, t);
    case QN_UNARY: {
        struct ql_val v = ql_eval(q, n->lhs, t);
        if (v.type == MTD_QL_SCALAR) {
            v.scalar = -v.scalar;
            return v;
        }
        struct ql_sample *s = ql_alloc(&q->sa, (v.vec.n + 1) * sizeof(*s));
        for (size_t i = 0; i < v.vec.n; i++) {
            s[i] = v.vec.s[i];
            s[i].v = -s[i].v;
            if (s[i].h) /* a negated histogram: every count negated */
                s[i].h = ql_hist_scale(&q->sa, s[i].h, -1);
            s[i].t = t;
            s[i].drop = 1;
        }
        v.vec.s = s;
        return v;
    }
    case QN_BINARY:
        return eval_binary(q, n, t);
    case QN_AGG:
        return eval_agg(q, n, t);
    case QN_CALL: {
        if (q->npre && pre_lookup(q, n, t, &r))
            return r;
        struct ql_val args[8];
        struct ql_val *av = n->nargs <= 8 ? args : ql_alloc(&q->sa, n->nargs * sizeof(*av));
        for (size_t i = 0; i < n->nargs; i++)
            av[i] = ql_eval(q, n->args[i], t);
        return n->fn->impl(q, n, av, t);
    }
    }
    return r;
}

/* ---------------------------------------------------------------- drivers */
struct mtd_ql_query {
    struct ql_query q;
    struct mtd_ql_opts o;
    struct obs_err err;
    int range;
    int64_t start, end, step;
    int prepared;
};

static void query_begin(struct mtd_ql_query *pq, const struct mtd_ql_expr *e,
                        struct mtd_storage *st, const char *tenant)
{
    struct ql_query *q = &pq->q;
    const struct mtd_ql_opts *o = &pq->o;
    memset(q, 0, sizeof(*q));
    q->err = &pq->err;
    q->st = st;
    q->tenant = tenant ? tenant : "anonymous";
    q->e = e;
    q->lookback = o->lookback_ms > 0 ? o->lookback_ms : 5 * 60 * 1000;
    q->default_step = o->default_step_ms > 0 ? o->default_step_ms : 60 * 1000;
    q->deadline = o->deadline_ns;
    q->max_samples = o->max_samples;
    q->max_series = o->max_series;
    q->max_subq_points = o->max_subquery_points;
    q->cancel = o->cancel;
    q->mem.limit = o->max_memory_bytes;
    q->opts = o;
    q->delayed = o->delayed_name_removal;
}

/* "11000" -> "11,000" (Prometheus prints the resolution limit that way). */
static void fmt_thousands(char *buf, size_t cap, long long v)
{
    char raw[32];
    int n = snprintf(raw, sizeof(raw), "%lld", v < 0 ? 0 : v);
    size_t o = 0;
    for (int i = 0; i < n && o + 2 < cap; i++) {
        if (i > 0 && (n - i) % 3 == 0)
            buf[o++] = ',';
        buf[o++] = raw[i];
    }
    buf[o] = 0;
}

/* Value of a query-dependent duration expression in ms (step() is the query step, range()
 * its end - start). */
static int64_t dur_ms(struct ql_query *q, const struct ql_dur *d, int positive)
{
    double v;
    const char *why = NULL;
    if (ql_dur_eval(d, (double)q->interval / 1000.0, (double)(q->end - q->start) / 1000.0, &v,
                    &why) < 0)
        ql_throw(&q->qa, OBS_EINVAL, "%s", why);
    if (positive && v <= 0)
        ql_throw(&q->qa, OBS_EINVAL, "duration must be greater than 0");
    if (!isfinite(v) || fabs(v) > 9e15)
        ql_throw(&q->qa, OBS_EINVAL, "duration is out of range");
    return (int64_t)(v * 1000.0);
}

/* Functions an anchored / smoothed range may be passed to (Prometheus' wording). */
static void ext_check(struct ql_query *q, const char *fn, int anchored)
{
    static const char *anch[] = {"changes", "delta", "increase", "rate", "resets", NULL};
    static const char *smooth[] = {"delta", "increase", "rate", NULL};
    const char **ok = anchored ? anch : smooth;
    for (int i = 0; ok[i]; i++)
        if (strcmp(ok[i], fn) == 0)
            return;
    ql_throw(&q->qa, OBS_EINVAL, "%s modifier can only be used with: %s - not with %s",
             anchored ? "anchored" : "smoothed",
             anchored ? "changes, delta, increase, rate, resets" : "delta, increase, rate", fn);
}

void ql_resolve_durations(struct ql_query *q, struct ql_node *n)
{
    if (!n)
        return;
    if (n->offset_expr)
        n->offset = dur_ms(q, n->offset_expr, 0);
    if (n->range_expr)
        n->range = dur_ms(q, n->range_expr, 1);
    if (n->step_expr)
        n->step = dur_ms(q, n->step_expr, 1);
    if (n->kind == QN_CALL) {
        for (size_t i = 0; i < n->nargs; i++) {
            const struct ql_node *a = n->args[i];
            if (a->kind == QN_MSEL && (a->lhs->anchored || a->lhs->smoothed))
                ext_check(q, n->fn->name, a->lhs->anchored);
            ql_resolve_durations(q, n->args[i]);
        }
        return;
    }
    ql_resolve_durations(q, n->lhs);
    ql_resolve_durations(q, n->rhs);
    ql_resolve_durations(q, n->param);
}

/* Checks that need no data: subquery resolution. */
static void static_checks(struct ql_query *q, struct ql_node *n)
{
    if (!n)
        return;
    if (n->kind == QN_SUBQ && q->max_subq_points > 0) {
        int64_t step = n->step > 0 ? n->step : q->default_step;
        if (step > 0 && n->range / step > q->max_subq_points) {
            char lim[32];
            fmt_thousands(lim, sizeof(lim), q->max_subq_points);
            ql_throw(&q->qa, OBS_ELIMIT, "subquery exceeded maximum resolution of %s points "
                     "per timeseries. Try increasing the subquery step ([range:step])", lim);
        }
    }
    if (n->kind == QN_CALL) {
        for (size_t i = 0; i < n->nargs; i++)
            static_checks(q, n->args[i]);
        return;
    }
    static_checks(q, n->lhs);
    static_checks(q, n->rhs);
    static_checks(q, n->param);
}

/* Refuse a selector regex that hits PCRE2's (embedded) match limits on a stored value:
 * the match would silently fail in storage otherwise. */
static void check_regexes(struct ql_query *q, struct ql_node *v)
{
    struct ql_sel_data *d = &q->sel[v->sel_id];
    if (!q->st || !q->st->ops->label_values)
        return;
    for (size_t i = 0; i < v->nms; i++) {
        const struct obs_matcher *m = &v->ms[i];
        if ((m->type != OBS_MATCH_RE && m->type != OBS_MATCH_NRE) || !m->re || !m->md)
            continue;
        char **vals = NULL;
        size_t nv = 0;
        struct obs_err e = {0};
        if (mtd_storage_label_values(q->st, q->tenant, m->name, NULL, 0, d->mint, d->maxt,
                                     &vals, &nv, &e) < 0)
            continue; /* the select reports storage trouble */
        int bad = 0;
        for (size_t k = 0; k <= nv && !bad; k++) {
            const char *s = k < nv ? vals[k] : "";
            int rc = pcre2_match((const pcre2_code *)m->re, (PCRE2_SPTR)s, strlen(s), 0, 0,
                                 (pcre2_match_data *)m->md, NULL);
            bad = rc == PCRE2_ERROR_MATCHLIMIT || rc == PCRE2_ERROR_DEPTHLIMIT ||
                  rc == PCRE2_ERROR_HEAPLIMIT;
            if ((k & 255) == 255)
                ql_check_deadline(q);
        }
        mtd_strings_free(vals, nv);
        if (bad)
            ql_throw(&q->qa, OBS_ELIMIT, "regular expression for label %s is too expensive: "
                     "matching it hit the backtracking limit (catastrophic backtracking): "
                     "%.80s", m->name, m->value);
    }
}

/* Load every selector's data now (storage thread), so evaluation needs no storage. */
static void preload(struct ql_query *q, struct ql_node *n)
{
    if (!n)
        return;
    if (n->kind == QN_VSEL) {
        if (q->sel[n->sel_id].want) {
            check_regexes(q, n);
            load_sel_data(q, n);
        }
        return;
    }
    if (n->kind == QN_CALL) {
        for (size_t i = 0; i < n->nargs; i++)
            preload(q, n->args[i]);
        return;
    }
    preload(q, n->lhs);
    preload(q, n->rhs);
    preload(q, n->param);
}

/* Drop flagged names and reject duplicate label sets (Prometheus' cleanupMetricLabels). */
static void finish_series(struct ql_query *q, struct ql_series *s, size_t n)
{
    struct ql_map m;
    ql_map_init(&m, &q->qa, n);
    for (size_t i = 0; i < n; i++) {
        if (s[i].drop)
            s[i].l = ql_ldel(&q->qa, s[i].l, "__name__");
        size_t kl;
        const char *k = label_key(&q->qa, s[i].l, 0, &kl);
        if (ql_map_put(&m, k, kl, (int)i) >= 0)
            ql_throw(&q->qa, OBS_EINVAL, "vector cannot contain metrics with the same labelset");
    }
}

/* Range-query variant: after dropping names, series that end up with the same label set
 * are merged when their points do not overlap in time (Prometheus merges them too); an
 * overlap is the usual "same labelset" error. Compacts s, updates *n. */
static void finish_matrix(struct ql_query *q, struct ql_series *s, size_t *n)
{
    struct ql_map m;
    ql_map_init(&m, &q->qa, *n);
    size_t out = 0;
    for (size_t i = 0; i < *n; i++) {
        if (s[i].drop)
            s[i].l = ql_ldel(&q->qa, s[i].l, "__name__");
        size_t kl;
        const char *k = label_key(&q->qa, s[i].l, 0, &kl);
        int prev = ql_map_put(&m, k, kl, (int)out);
        if (prev < 0) {
            s[out++] = s[i];
            continue;
        }
        struct ql_series *d = &s[prev];
        size_t tot = d->n + s[i].n;
        struct mtd_ql_point *p = ql_alloc(&q->qa, (tot + 1) * sizeof(*p));
        size_t a = 0, b = 0, o = 0;
        while (a < d->n || b < s[i].n) {
            if (a < d->n && b < s[i].n && d->p[a].t == s[i].p[b].t)
                ql_throw(&q->qa, OBS_EINVAL,
                         "vector cannot contain metrics with the same labelset");
            if (b >= s[i].n || (a < d->n && d->p[a].t < s[i].p[b].t))
                p[o++] = d->p[a++];
            else
                p[o++] = s[i].p[b++];
        }
        d->p = p;
        d->n = o;
        d->cap = tot + 1;
    }
    *n = out;
}

static int series_lcmp(const void *x, const void *y)
{
    const struct ql_series *a = x, *b = y;
    return ql_lcmp(a->l, b->l);
}

static struct mtd_ql_result *new_result(struct ql_query *q)
{
    struct mtd_ql_result *r = ql_alloc(&q->qa, sizeof(*r));
    return r;
}

static void fill_annos(struct ql_query *q, struct mtd_ql_result *r)
{
    r->nwarnings = (int)q->nwarn;
    r->ninfos = (int)q->ninfo;
    r->warnings = ql_alloc(&q->qa, (q->nwarn + q->ninfo + 1) * sizeof(char *));
    for (size_t i = 0; i < q->nwarn; i++)
        r->warnings[i] = q->warns[i];
    for (size_t i = 0; i < q->ninfo; i++)
        r->warnings[q->nwarn + i] = q->infos[i];
}

static void set_series(struct mtd_ql_result *r, struct ql_series *s, size_t n,
                       struct ql_query *q)
{
    r->series = ql_alloc(&q->qa, (n + 1) * sizeof(*r->series));
    r->nseries = n;
    for (size_t i = 0; i < n; i++) {
        r->series[i].labels = (struct obs_label *)s[i].l.v;
        r->series[i].nlabels = s[i].l.n;
        r->series[i].pts = s[i].p;
        r->series[i].npts = s[i].n;
    }
}

static int top_is_ordered(const struct ql_node *n)
{
    while (n->kind == QN_PAREN)
        n = n->lhs;
    if (n->kind == QN_CALL)
        return strncmp(n->fn->name, "sort", 4) == 0;
    return 0;
}

static int tree_has_subq(const struct ql_node *n)
{
    if (!n)
        return 0;
    if (n->kind == QN_SUBQ)
        return 1;
    for (size_t i = 0; n->kind == QN_CALL && i < n->nargs; i++)
        if (tree_has_subq(n->args[i]))
            return 1;
    return tree_has_subq(n->lhs) || tree_has_subq(n->rhs) || tree_has_subq(n->param);
}

static int prepare(struct mtd_ql_query *pq)
{
    struct ql_query *q = &pq->q;
    struct ql_arena *qa = &q->qa;
    ql_arena_init(&q->qa, &q->jb, q->err);
    ql_arena_init(&q->sa, &q->jb, q->err);
    q->qa.acct = q->sa.acct = &q->mem;
    if (setjmp(q->jb)) {
        int code = q->err->code ? q->err->code : OBS_EINVAL;
        ql_arena_deinit(&q->sa);
        ql_arena_deinit(qa);
        return code;
    }
    q->start = pq->start;
    q->end = pq->end;
    q->interval = pq->step;
    struct ql_node *root = q->e->root;
    if (pq->range && root->type != MTD_QL_SCALAR && root->type != MTD_QL_VECTOR)
        ql_throw(qa, OBS_EINVAL, "invalid expression type \"%s\" for range query, must be "
                                 "Scalar or instant Vector",
                 root->type == MTD_QL_MATRIX ? "range vector" : mtd_ql_type_name(root->type));
    ql_resolve_durations(q, root);
    static_checks(q, root);
    q->multi = (pq->range && pq->end > pq->start) || tree_has_subq(root);
    q->sel = ql_alloc(qa, ((size_t)q->e->nsel + 1) * sizeof(*q->sel));
    selector_windows(q, root, pq->start, pq->end);
    preload(q, root);
    q->st = NULL; /* evaluation must not touch storage (it may run on another thread) */
    pq->prepared = 1;
    return 0;
}

static int run(struct mtd_ql_query *pq, struct mtd_ql_result **out)
{
    struct ql_query *q = &pq->q;
    struct ql_arena *qa = &q->qa;
    struct obs_err *err = q->err;
    int range = pq->range;
    int64_t start = pq->start, end = pq->end, step = pq->step;
    if (setjmp(q->jb)) {
        int code = err->code ? err->code : OBS_EINVAL;
        ql_arena_deinit(&q->sa);
        ql_arena_deinit(qa);
        return code;
    }
    struct ql_node *root = q->e->root;
    struct mtd_ql_result *r = new_result(q);
    r->t = end;
    if (!range) {
        if (q->multi) /* subqueries: each inner expression once over its grid */
            subq_walk(q, root, start, start);
        struct ql_val v = ql_eval(q, root, start);
        r->type = v.type;
        switch (v.type) {
        case MTD_QL_SCALAR:
            r->scalar = v.scalar;
            break;
        case MTD_QL_STRING:
            r->str = ql_strdup(qa, v.str);
            break;
        case MTD_QL_VECTOR: {
            struct ql_series *s = ql_alloc(qa, (v.vec.n + 1) * sizeof(*s));
            for (size_t i = 0; i < v.vec.n; i++) {
                s[i].l = copy_labels(qa, v.vec.s[i].l);
                s[i].drop = v.vec.s[i].drop;
                s[i].p = ql_alloc(qa, sizeof(struct mtd_ql_point));
                s[i].p[0].t = start;
                s[i].p[0].v = v.vec.s[i].v;
                if (v.vec.s[i].h)
                    s[i].p[0].h = ql_hist_copy(qa, v.vec.s[i].h);
                s[i].n = 1;
            }
            finish_series(q, s, v.vec.n);
            set_series(r, s, v.vec.n, q);
            r->ordered = top_is_ordered(root);
            break;
        }
        case MTD_QL_MATRIX: {
            struct ql_series *s = ql_alloc(qa, (v.mat.n + 1) * sizeof(*s));
            for (size_t i = 0; i < v.mat.n; i++) {
                s[i].l = copy_labels(qa, v.mat.s[i].l);
                s[i].drop = v.mat.s[i].drop;
                s[i].n = v.mat.s[i].n;
                s[i].p = ql_alloc(qa, (s[i].n + 1) * sizeof(struct mtd_ql_point));
                memcpy(s[i].p, v.mat.s[i].p, s[i].n * sizeof(struct mtd_ql_point));
                for (size_t k = 0; k < s[i].n; k++)
                    if (s[i].p[k].h)
                        s[i].p[k].h = ql_hist_copy(qa, s[i].p[k].h);
            }
            finish_series(q, s, v.mat.n);
            set_series(r, s, v.mat.n, q);
            break;
        }
        default:
            break;
        }
    } else {
        struct stitch st;
        stitch_init(&st, qa);
        if (end > start)
            pre_walk(q, root, start, end, step, 1);
        for (int64_t ts = start; ts <= end; ts += step) {
            struct ql_mark mk = ql_arena_mark(&q->sa);
            struct ql_val v = ql_eval(q, root, ts);
            if (v.type == MTD_QL_SCALAR) {
                struct ql_sample s = {.t = ts, .v = v.scalar};
                struct ql_vec vv = {&s, 1};
                stitch_add(q, &st, vv, ts, 1);
                count_samples(q, 1);
            } else {
                stitch_add(q, &st, v.vec, ts, 1);
                count_samples(q, v.vec.n);
            }
            ql_arena_release(&q->sa, mk);
        }
        finish_matrix(q, st.s, &st.n);
        /* Sort series by labels, as Prometheus does for matrix results (label sets are
         * unique after finish_matrix). */
        if (st.n > 1)
            qsort(st.s, st.n, sizeof(*st.s), series_lcmp);
        r->type = MTD_QL_MATRIX;
        set_series(r, st.s, st.n, q);
    }
    fill_annos(q, r);
    ql_arena_deinit(&q->sa);
    /* Move the query arena into the result (it owns everything the result points to). */
    struct ql_arena *keep = obs_malloc(sizeof(*keep));
    if (!keep) {
        ql_arena_deinit(qa);
        return obs_err_set(err, OBS_ENOMEM, "out of memory");
    }
    *keep = *qa;
    keep->jb = NULL;
    keep->acct = NULL;
    r->mem = keep;
    *out = r;
    return 0;
}

int mtd_ql_prepare(const struct mtd_ql_expr *e, struct mtd_storage *st, const char *tenant,
                   int range, int64_t start, int64_t end, int64_t step,
                   const struct mtd_ql_opts *o, struct mtd_ql_query **out, struct obs_err *err)
{
    struct obs_err local;
    if (!err)
        err = &local;
    obs_err_clear(err);
    *out = NULL;
    if (range && step <= 0)
        return obs_err_set(err, OBS_EINVAL, "zero or negative query resolution step widths are "
                                            "not accepted. Try a positive integer");
    if (range && end < start)
        return obs_err_set(err, OBS_EINVAL, "end timestamp must not be before start time");
    struct mtd_ql_query *pq = obs_calloc(1, sizeof(*pq));
    if (!pq)
        return obs_err_set(err, OBS_ENOMEM, "out of memory");
    if (o)
        pq->o = *o;
    pq->range = range;
    pq->start = start;
    pq->end = range ? end : start;
    pq->step = range ? step : 0;
    query_begin(pq, e, st, tenant);
    int rc = prepare(pq);
    if (rc < 0) {
        *err = pq->err;
        obs_free(pq);
        return rc;
    }
    *out = pq;
    return 0;
}

int mtd_ql_run(struct mtd_ql_query *pq, struct mtd_ql_result **out, struct obs_err *err)
{
    struct obs_err local;
    if (!err)
        err = &local;
    obs_err_clear(err);
    if (!pq || !pq->prepared) {
        obs_free(pq);
        return obs_err_set(err, OBS_EINVAL, "query was not prepared");
    }
    int rc = run(pq, out);
    if (rc < 0)
        *err = pq->err;
    obs_free(pq);
    return rc;
}

void mtd_ql_query_free(struct mtd_ql_query *pq)
{
    if (!pq)
        return;
    if (pq->prepared) {
        ql_arena_deinit(&pq->q.sa);
        ql_arena_deinit(&pq->q.qa);
    }
    obs_free(pq);
}

int mtd_ql_exec_instant(const struct mtd_ql_expr *e, struct mtd_storage *st, const char *tenant,
                        int64_t t, const struct mtd_ql_opts *o, struct mtd_ql_result **out,
                        struct obs_err *err)
{
    struct mtd_ql_query *q;
    int rc = mtd_ql_prepare(e, st, tenant, 0, t, t, 0, o, &q, err);
    if (rc < 0)
        return rc;
    return mtd_ql_run(q, out, err);
}

int mtd_ql_exec_range(const struct mtd_ql_expr *e, struct mtd_storage *st, const char *tenant,
                      int64_t start, int64_t end, int64_t step, const struct mtd_ql_opts *o,
                      struct mtd_ql_result **out, struct obs_err *err)
{
    struct mtd_ql_query *q;
    int rc = mtd_ql_prepare(e, st, tenant, 1, start, end, step, o, &q, err);
    if (rc < 0)
        return rc;
    return mtd_ql_run(q, out, err);
}

void mtd_ql_result_free(struct mtd_ql_result *r)
{
    if (!r)
        return;
    struct ql_arena *a = r->mem;
    /* r itself lives in the arena. */
    ql_arena_deinit(a);
    obs_free(a);
}
