/*
 * storage_merge.c -- the querier's storage (storage.h): the head's recent samples merged with
 * the store-gateway's blocks (see blocks.h).
 *
 * select: the head's set and every overlapping block's series are merged by label set; the
 * samples of one series are merged by timestamp, one sample per timestamp (the head's first:
 * it is the newest copy; then blocks in time order). The head keeps what it shipped (it has no
 * truncation yet), so overlap between head and blocks is the normal case, as is overlap
 * between blocks (replicas, a flush mid-range, a compaction whose sources are still listed).
 * label names/values and tenants are unions. append, native histograms and exemplars go to
 * the head only (blocks hold float samples).
 *
 * Warnings from reading blocks (corrupt chunks skipped, unreadable blocks) are collected per
 * storage and handed to the API reply by mtd_storage_merge_annotate().
 *
 * Both sides are looked up on every call: app->head (NULL without an ingester) and the
 * store-gateway (NULL when it is not a target). Loop thread only, like every storage.
 */
#include <stdlib.h>
#include <string.h>

#include "core/obs_arena.h"
#include "core/obs_log.h"
#include "core/obs_mem.h"
#include "metricsd/blocks.h"
#include "metricsd/head.h"
#include "metricsd/metricsd.h"
#include "metricsd/ql/mtd_ql.h"

struct merge_storage {
    struct mtd_storage st; /* first: the vtable's impl points back here */
    struct obs_ctx *ctx;
    struct mtd_warnings w;     /* collected since the last annotate */
    struct mtd_warnings shown; /* handed to the last annotated result */
    char **arr;                /* that result's warnings array */
};

static struct mtd_storage *head_of(struct merge_storage *m)
{
    struct mtd_app *app = mtd_app_of(m->ctx);
    return app && app->head ? mtd_head_storage(app->head) : NULL;
}

static struct mtd_store_gateway *sg_of(struct merge_storage *m)
{
    struct mtd_blocks *b = mtd_blocks_of(m->ctx);
    return b ? b->sg : NULL;
}

/* ---- series merge ----------------------------------------------------------------------- */

static int lab_cmp(const struct mtd_series *a, const struct mtd_series *b)
{
    size_t n = a->nlabels < b->nlabels ? a->nlabels : b->nlabels;
    for (size_t i = 0; i < n; i++) {
        int c = strcmp(a->labels[i].name, b->labels[i].name);
        if (c)
            return c;
        c = strcmp(a->labels[i].value, b->labels[i].value);
        if (c)
            return c;
    }
    return a->nlabels < b->nlabels ? -1 : a->nlabels > b->nlabels;
}

struct ord {
    const struct mtd_series *s;
    size_t i;
};

static int cmp_ord(const void *x, const void *y)
{
    const struct ord *a = x, *b = y;
    int c = lab_cmp(a->s, b->s);
    if (c)
        return c;
    return a->i < b->i ? -1 : a->i > b->i;
}

/* out = a merged with b (both increasing t), a's sample kept on equal t. Returns count. */
static size_t merge2(const struct mtd_sample *a, size_t na, const struct mtd_sample *b, size_t nb,
                     struct mtd_sample *out)
{
    size_t i = 0, j = 0, k = 0;
    while (i < na || j < nb) {
        if (j == nb || (i < na && a[i].t <= b[j].t)) {
            if (j < nb && a[i].t == b[j].t)
                j++;
            out[k++] = a[i++];
        } else {
            out[k++] = b[j++];
        }
    }
    return k;
}

int mtd_series_merge(const struct mtd_series *in, size_t n, int no_samples,
                     struct mtd_series_set **out)
{
    struct mtd_series_set *set = obs_calloc(1, sizeof *set);
    struct obs_arena *ar = obs_arena_new(64 * 1024);
    struct ord *o = obs_malloc((n ? n : 1) * sizeof *o);
    struct mtd_sample *tmp = NULL;
    if (set == NULL || ar == NULL || o == NULL)
        goto oom;
    set->arena = ar;
    for (size_t i = 0; i < n; i++)
        o[i] = (struct ord){&in[i], i};
    if (n > 1)
        qsort(o, n, sizeof *o, cmp_ord);
    set->series = obs_arena_calloc(ar, (n ? n : 1) * sizeof *set->series);
    if (set->series == NULL)
        goto oom;
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i + 1, total = o[i].s->nsamples;
        while (j < n && lab_cmp(o[i].s, o[j].s) == 0)
            total += o[j++].s->nsamples;
        struct mtd_series *d = &set->series[k];
        const struct mtd_series *s = o[i].s;
        struct obs_label *l = obs_arena_alloc(ar, (s->nlabels ? s->nlabels : 1) * sizeof *l);
        if (l == NULL)
            goto oom;
        for (size_t q = 0; q < s->nlabels; q++) {
            l[q].name = obs_arena_strdup(ar, s->labels[q].name);
            l[q].value = obs_arena_strdup(ar, s->labels[q].value);
            if (l[q].name == NULL || l[q].value == NULL)
                goto oom;
        }
        d->labels = l;
        d->nlabels = s->nlabels;
        d->hash = obs_labels_hash(l, s->nlabels);
        if (!no_samples && total > 0) {
            struct mtd_sample *acc = obs_arena_alloc(ar, total * sizeof *acc);
            obs_free(tmp);
            tmp = obs_malloc(total * sizeof *tmp);
            if (acc == NULL || tmp == NULL)
                goto oom;
            size_t na = o[i].s->nsamples;
            if (na)
                memcpy(acc, o[i].s->samples, na * sizeof *acc);
            for (size_t q = i + 1; q < j; q++) {
                size_t nn = merge2(acc, na, o[q].s->samples, o[q].s->nsamples, tmp);
                memcpy(acc, tmp, nn * sizeof *acc);
                na = nn;
            }
            d->samples = acc;
            d->nsamples = na;
            set->nsamples_total += na;
        }
        if (no_samples || d->nsamples > 0)
            k++;
        i = j;
    }
    set->nseries = k;
    obs_free(tmp);
    obs_free(o);
    *out = set;
    return 0;
oom:
    obs_free(tmp);
    obs_free(o);
    if (set) {
        set->arena = ar;
        mtd_series_set_free(set);
    } else {
        obs_arena_free(ar);
    }
    return OBS_ENOMEM;
}

/* ---- collecting block series ------------------------------------------------------------ */

struct coll {
    struct obs_arena *ar;
    struct mtd_series *v;
    size_t n, cap;
    int no_samples;
    int oom;
};

static int coll_fn(void *arg, const struct obs_label *labels, size_t nlabels,
                   const struct mtd_sample *samples, size_t nsamples)
{
    struct coll *c = arg;
    if (c->n == c->cap) {
        size_t nc = c->cap ? c->cap * 2 : 64;
        struct mtd_series *nv = obs_realloc(c->v, nc * sizeof *nv);
        if (nv == NULL) {
            c->oom = 1;
            return 1;
        }
        c->v = nv;
        c->cap = nc;
    }
    struct obs_label *l = obs_arena_alloc(c->ar, (nlabels ? nlabels : 1) * sizeof *l);
    if (l == NULL) {
        c->oom = 1;
        return 1;
    }
    for (size_t i = 0; i < nlabels; i++) {
        l[i].name = obs_arena_strdup(c->ar, labels[i].name);
        l[i].value = obs_arena_strdup(c->ar, labels[i].value);
        if (l[i].name == NULL || l[i].value == NULL) {
            c->oom = 1;
            return 1;
        }
    }
    struct mtd_series *d = &c->v[c->n++];
    memset(d, 0, sizeof *d);
    d->labels = l;
    d->nlabels = nlabels;
    if (!c->no_samples) {
        struct mtd_sample *s = obs_arena_alloc(c->ar, nsamples * sizeof *s);
        if (s == NULL) {
            c->oom = 1;
            return 1;
        }
        memcpy(s, samples, nsamples * sizeof *s);
        d->samples = s;
        d->nsamples = nsamples;
    }
    return 0;
}

/* Series of the blocks for (tenant, ms, [mint, maxt]) into c. */
static int blocks_collect(struct merge_storage *m, const char *tenant, const struct obs_matcher *ms,
                          size_t nms, int64_t mint, int64_t maxt, struct coll *c,
                          struct obs_err *err)
{
    struct mtd_store_gateway *sg = sg_of(m);
    if (sg == NULL)
        return 0;
    c->ar = obs_arena_new(64 * 1024);
    if (c->ar == NULL)
        return obs_err_set(err, OBS_ENOMEM, "out of memory");
    int rc = mtd_store_gateway_select(sg, tenant, ms, nms, mint, maxt, coll_fn, c, &m->w, err);
    if (rc == 0 && c->oom)
        rc = obs_err_set(err, OBS_ENOMEM, "out of memory");
    return rc;
}

static void coll_free(struct coll *c)
{
    obs_free(c->v);
    obs_arena_free(c->ar);
}

/* ---- the vtable ------------------------------------------------------------------------- */

static int empty_set(struct mtd_series_set **out, struct obs_err *err)
{
    if (mtd_series_merge(NULL, 0, 1, out) != 0)
        return obs_err_set(err, OBS_ENOMEM, "out of memory");
    return 0;
}

static int m_select(struct mtd_storage *st, const char *tenant, const struct obs_matcher *ms,
                    size_t nms, const struct mtd_select_opts *o, struct mtd_series_set **out,
                    struct obs_err *err)
{
    struct merge_storage *m = st->impl;
    struct mtd_storage *h = head_of(m);
    struct mtd_series_set *hs = NULL;
    int rc = 0;
    if (h != NULL && (rc = mtd_storage_select(h, tenant, ms, nms, o, &hs, err)) != 0)
        return rc;
    struct coll c = {.no_samples = o && o->no_samples};
    rc = blocks_collect(m, tenant, ms, nms, o ? o->mint : INT64_MIN, o ? o->maxt : INT64_MAX, &c,
                        err);
    if (rc != 0 || c.n == 0) {
        coll_free(&c);
        if (rc != 0) {
            mtd_series_set_free(hs);
            return rc;
        }
        if (hs != NULL) {
            *out = hs;
            return 0;
        }
        return empty_set(out, err);
    }
    size_t nh = hs ? hs->nseries : 0;
    struct mtd_series *all = obs_malloc((nh + c.n) * sizeof *all);
    if (all == NULL) {
        coll_free(&c);
        mtd_series_set_free(hs);
        return obs_err_set(err, OBS_ENOMEM, "out of memory");
    }
    if (nh)
        memcpy(all, hs->series, nh * sizeof *all);
    memcpy(all + nh, c.v, c.n * sizeof *all);
    struct mtd_series_set *res = NULL;
    rc = mtd_series_merge(all, nh + c.n, o && o->no_samples, &res);
    obs_free(all);
    coll_free(&c);
    mtd_series_set_free(hs);
    if (rc != 0)
        return obs_err_set(err, OBS_ENOMEM, "out of memory");
    if (o && o->max_series && res->nseries > o->max_series) {
        mtd_series_set_free(res);
        return obs_err_set(err, OBS_ELIMIT,
                           "the query hit the max number of series limit "
                           "(limit: %zu series)",
                           o->max_series);
    }
    if (o && o->max_samples && res->nsamples_total > o->max_samples) {
        mtd_series_set_free(res);
        return obs_err_set(err, OBS_ELIMIT,
                           "query processing would load too many samples "
                           "into memory in query execution");
    }
    *out = res;
    return 0;
}

static int cmp_strp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sort, dedupe and hand out v[0..n) (owned strings); frees duplicates. */
static void strings_finish(char **v, size_t *n)
{
    if (*n > 1)
        qsort(v, *n, sizeof *v, cmp_strp);
    size_t k = 0;
    for (size_t i = 0; i < *n; i++) {
        if (k > 0 && strcmp(v[k - 1], v[i]) == 0)
            obs_free(v[i]);
        else
            v[k++] = v[i];
    }
    *n = k;
}

/* Append strdup(s) to (*v, *n); returns 0 or OBS_ENOMEM. */
static int strings_add(char ***v, size_t *n, size_t *cap, const char *s)
{
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 32;
        char **nv = obs_realloc(*v, nc * sizeof *nv);
        if (nv == NULL)
            return OBS_ENOMEM;
        *v = nv;
        *cap = nc;
    }
    if (((*v)[*n] = obs_strdup(s)) == NULL)
        return OBS_ENOMEM;
    (*n)++;
    return 0;
}

/* Names (name == NULL) or values of name over head + blocks. */
static int m_labels(struct merge_storage *m, const char *tenant, const char *name,
                    const struct obs_matcher *ms, size_t nms, int64_t mint, int64_t maxt,
                    char ***out, size_t *n, struct obs_err *err)
{
    struct mtd_storage *h = head_of(m);
    char **v = NULL;
    size_t nv = 0, cap = 0;
    int rc = 0;
    if (h != NULL) {
        rc = name ? mtd_storage_label_values(h, tenant, name, ms, nms, mint, maxt, &v, &nv, err)
                  : mtd_storage_label_names(h, tenant, ms, nms, mint, maxt, &v, &nv, err);
        if (rc != 0)
            return rc;
        cap = nv;
    }
    struct coll c = {.no_samples = 1};
    rc = blocks_collect(m, tenant, ms, nms, mint, maxt, &c, err);
    for (size_t i = 0; rc == 0 && i < c.n; i++) {
        for (size_t k = 0; rc == 0 && k < c.v[i].nlabels; k++) {
            const struct obs_label *l = &c.v[i].labels[k];
            if (name == NULL)
                rc = strings_add(&v, &nv, &cap, l->name);
            else if (strcmp(l->name, name) == 0 && l->value[0] != '\0')
                rc = strings_add(&v, &nv, &cap, l->value);
        }
        if (rc == OBS_ENOMEM)
            obs_err_set(err, OBS_ENOMEM, "out of memory");
        if (c.n > 1 && nv > 4096) /* keep the array small on label-heavy blocks */
            strings_finish(v, &nv);
    }
    size_t from_blocks = c.n;
    coll_free(&c);
    if (rc != 0) {
        mtd_strings_free(v, nv);
        return rc;
    }
    if (from_blocks) /* the head's answer alone is sorted and unique already */
        strings_finish(v, &nv);
    if (v == NULL && (v = obs_calloc(1, sizeof *v)) == NULL)
        return obs_err_set(err, OBS_ENOMEM, "out of memory");
    *out = v;
    *n = nv;
    return 0;
}

static int m_label_names(struct mtd_storage *st, const char *tenant, const struct obs_matcher *ms,
                         size_t nms, int64_t mint, int64_t maxt, char ***out, size_t *n,
                         struct obs_err *err)
{
    return m_labels(st->impl, tenant, NULL, ms, nms, mint, maxt, out, n, err);
}

static int m_label_values(struct mtd_storage *st, const char *tenant, const char *name,
                          const struct obs_matcher *ms, size_t nms, int64_t mint, int64_t maxt,
                          char ***out, size_t *n, struct obs_err *err)
{
    return m_labels(st->impl, tenant, name, ms, nms, mint, maxt, out, n, err);
}

static int m_tenants(struct mtd_storage *st, char ***out, size_t *n)
{
    struct merge_storage *m = st->impl;
    struct mtd_storage *h = head_of(m);
    struct mtd_store_gateway *sg = sg_of(m);
    char **a = NULL, **b = NULL;
    size_t na = 0, nb = 0;
    int rc = 0;
    if (h != NULL && (rc = mtd_storage_tenants(h, &a, &na)) != 0)
        return rc;
    if (sg != NULL && (rc = mtd_store_gateway_tenants(sg, &b, &nb)) != 0) {
        mtd_strings_free(a, na);
        return rc;
    }
    char **v = obs_calloc(na + nb + 1, sizeof *v);
    if (v == NULL) {
        mtd_strings_free(a, na);
        mtd_strings_free(b, nb);
        return OBS_ENOMEM;
    }
    if (na)
        memcpy(v, a, na * sizeof *v);
    if (nb)
        memcpy(v + na, b, nb * sizeof *v);
    obs_free(a);
    obs_free(b);
    size_t nv = na + nb;
    strings_finish(v, &nv);
    *out = v;
    *n = nv;
    return 0;
}

static int m_append(struct mtd_storage *st, const char *tenant, const struct obs_label *labels,
                    size_t nlabels, const struct mtd_sample *samples, size_t nsamples,
                    struct obs_err *err)
{
    struct mtd_storage *h = head_of(st->impl);
    if (h == NULL)
        return obs_err_set(err, OBS_EAGAIN, "no ingester running in this process");
    return mtd_storage_append(h, tenant, labels, nlabels, samples, nsamples, err);
}

static int m_hist_select(struct mtd_storage *st, const char *tenant, const struct obs_matcher *ms,
                         size_t nms, int64_t mint, int64_t maxt, struct obs_arena *ar,
                         const struct mtd_ql_hseries **out, size_t *n, struct obs_err *err)
{
    struct mtd_storage *h = head_of(st->impl);
    if (h == NULL || h->ops->hist_select == NULL) {
        *out = NULL;
        *n = 0;
        return 0;
    }
    return h->ops->hist_select(h, tenant, ms, nms, mint, maxt, ar, out, n, err);
}

static int m_exemplars(struct mtd_storage *st, const char *tenant, const struct obs_matcher *ms,
                       size_t nms, int64_t mint, int64_t maxt, struct mtd_exemplar_set **out,
                       struct obs_err *err)
{
    struct mtd_storage *h = head_of(st->impl);
    if (h != NULL && h->ops->exemplars != NULL)
        return h->ops->exemplars(h, tenant, ms, nms, mint, maxt, out, err);
    struct mtd_exemplar_set *s = obs_calloc(1, sizeof *s);
    if (s == NULL)
        return obs_err_set(err, OBS_ENOMEM, "out of memory");
    *out = s;
    return 0;
}

static const struct mtd_storage_ops merge_ops = {
    .select = m_select,
    .label_names = m_label_names,
    .label_values = m_label_values,
    .tenants = m_tenants,
    .append = m_append,
    .hist_select = m_hist_select,
    .exemplars = m_exemplars,
};

int mtd_storage_merge_install(struct obs_ctx *ctx)
{
    struct mtd_app *app = mtd_app_of(ctx);
    struct obs_err err = {0};
    struct mtd_blocks *b = mtd_blocks_ref(ctx, &err);
    if (b == NULL) {
        obs_clog_warn("querier", "blocks storage unavailable, querying the head only: %s", err.msg);
        return err.code ? err.code : OBS_EIO;
    }
    if (b->merge != NULL) {
        mtd_blocks_unref(ctx);
        app->storage = &((struct merge_storage *)b->merge)->st;
        return 0;
    }
    struct merge_storage *m = obs_calloc(1, sizeof *m);
    if (m == NULL) {
        mtd_blocks_unref(ctx);
        return OBS_ENOMEM;
    }
    m->ctx = ctx;
    m->st.ops = &merge_ops;
    m->st.impl = m;
    b->merge = m;
    app->storage = &m->st;
    return 0;
}

void mtd_storage_merge_free(void *p)
{
    struct merge_storage *m = p;
    if (m == NULL)
        return;
    mtd_warnings_clear(&m->w);
    mtd_warnings_clear(&m->shown);
    obs_free(m->arr);
    obs_free(m);
}

void mtd_storage_merge_annotate(struct mtd_storage *st, struct mtd_ql_result *res)
{
    if (st == NULL || st->ops != &merge_ops)
        return;
    struct merge_storage *m = st->impl;
    mtd_warnings_clear(&m->shown);
    obs_free(m->arr);
    m->arr = NULL;
    m->shown = m->w;
    m->w = (struct mtd_warnings){0};
    if (res == NULL || m->shown.n == 0)
        return;
    size_t nw = (size_t)res->nwarnings, ni = (size_t)res->ninfos;
    char **arr = obs_malloc((nw + ni + m->shown.n + 1) * sizeof *arr);
    if (arr == NULL)
        return;
    for (size_t i = 0; i < nw; i++)
        arr[i] = res->warnings[i];
    for (size_t i = 0; i < m->shown.n; i++)
        arr[nw + i] = m->shown.v[i];
    for (size_t i = 0; i < ni; i++)
        arr[nw + m->shown.n + i] = res->warnings[nw + i];
    arr[nw + m->shown.n + ni] = NULL;
    m->arr = arr;
    res->warnings = arr;
    res->nwarnings += (int)m->shown.n;
}
