/*
 * obs_metrics.c -- self-metrics registry (see obs_metrics.h).
 *
 * Values are doubles stored as their bit pattern in _Atomic uint64_t and updated with a
 * compare-and-swap loop, so any thread may update a child without a lock. The registry and each
 * family take a mutex only to find or create children and to render.
 */
#include "metrics/obs_metrics.h"
#include "core/obs_err.h"
#include "core/obs_mem.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct obs_mchild {
    struct obs_mfamily *fam;
    char **values;
    _Atomic uint64_t v;        /* counter/gauge value, or histogram sum */
    _Atomic uint64_t count;    /* histogram count */
    _Atomic uint64_t *buckets; /* histogram non-cumulative bucket counts (nbuckets + 1) */
};

struct obs_mfamily {
    enum obs_mtype type;
    char *name;
    char *help;
    char **labels;
    size_t nlabels;
    double *bounds;
    size_t nbounds;
    double (*fn)(void *);
    void *fn_arg;
    pthread_mutex_t lock;
    struct obs_mchild **children;
    size_t nchildren;
};

struct obs_metrics {
    pthread_mutex_t lock;
    struct obs_mfamily **fams;
    size_t nfams;
};

static inline double bits2d(uint64_t b)
{
    double d;
    memcpy(&d, &b, sizeof(d));
    return d;
}
static inline uint64_t d2bits(double d)
{
    uint64_t b;
    memcpy(&b, &d, sizeof(b));
    return b;
}

static void atomic_add_double(_Atomic uint64_t *p, double v)
{
    uint64_t old = atomic_load_explicit(p, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(p, &old, d2bits(bits2d(old) + v),
                                                  memory_order_relaxed, memory_order_relaxed))
        ;
}

struct obs_metrics *obs_metrics_new(void)
{
    struct obs_metrics *m = obs_calloc(1, sizeof(*m));
    if (m)
        pthread_mutex_init(&m->lock, NULL);
    return m;
}

static void child_free(struct obs_mchild *c, size_t nlabels)
{
    for (size_t i = 0; i < nlabels; i++)
        obs_free(c->values[i]);
    obs_free(c->values);
    obs_free((void *)c->buckets);
    obs_free(c);
}

static void family_free(struct obs_mfamily *f)
{
    for (size_t i = 0; i < f->nchildren; i++)
        child_free(f->children[i], f->nlabels);
    obs_free(f->children);
    for (size_t i = 0; i < f->nlabels; i++)
        obs_free(f->labels[i]);
    obs_free(f->labels);
    obs_free(f->bounds);
    obs_free(f->name);
    obs_free(f->help);
    pthread_mutex_destroy(&f->lock);
    obs_free(f);
}

void obs_metrics_free(struct obs_metrics *m)
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < m->nfams; i++)
        family_free(m->fams[i]);
    obs_free(m->fams);
    pthread_mutex_destroy(&m->lock);
    obs_free(m);
}

static struct obs_mfamily *family_add(struct obs_metrics *m, enum obs_mtype type,
                                      const char *name, const char *help, const char *labels,
                                      const double *buckets, size_t nbuckets)
{
    pthread_mutex_lock(&m->lock);
    for (size_t i = 0; i < m->nfams; i++) {
        if (strcmp(m->fams[i]->name, name) == 0) {
            struct obs_mfamily *f = m->fams[i]->type == type ? m->fams[i] : NULL;
            pthread_mutex_unlock(&m->lock);
            return f;
        }
    }
    struct obs_mfamily *f = obs_calloc(1, sizeof(*f));
    struct obs_mfamily **nf = obs_realloc(m->fams, (m->nfams + 1) * sizeof(*nf));
    if (f == NULL || nf == NULL) {
        obs_free(f);
        if (nf)
            m->fams = nf;
        pthread_mutex_unlock(&m->lock);
        return NULL;
    }
    m->fams = nf;
    pthread_mutex_init(&f->lock, NULL);
    f->type = type;
    f->name = obs_strdup(name);
    f->help = obs_strdup(help ? help : "");
    if (labels && *labels) {
        const char *p = labels;
        while (*p) {
            const char *c = strchr(p, ',');
            size_t l = c ? (size_t)(c - p) : strlen(p);
            char **nl = obs_realloc(f->labels, (f->nlabels + 1) * sizeof(char *));
            if (nl == NULL)
                break;
            f->labels = nl;
            f->labels[f->nlabels++] = obs_strndup(p, l);
            if (!c)
                break;
            p = c + 1;
        }
    }
    if (type == OBS_MHISTOGRAM && nbuckets) {
        f->bounds = obs_malloc(nbuckets * sizeof(double));
        if (f->bounds) {
            memcpy(f->bounds, buckets, nbuckets * sizeof(double));
            f->nbounds = nbuckets;
        }
    }
    m->fams[m->nfams++] = f;
    pthread_mutex_unlock(&m->lock);
    return f;
}

struct obs_mfamily *obs_metrics_family(struct obs_metrics *m, enum obs_mtype type,
                                       const char *name, const char *help, const char *labels,
                                       const double *buckets, size_t nbuckets)
{
    static const double defb[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
    if (type == OBS_MHISTOGRAM && buckets == NULL) {
        buckets = defb;
        nbuckets = sizeof(defb) / sizeof(defb[0]);
    }
    return family_add(m, type, name, help, labels, buckets, nbuckets);
}

static struct obs_mchild *child_find(struct obs_mfamily *f, const char **vals)
{
    pthread_mutex_lock(&f->lock);
    for (size_t i = 0; i < f->nchildren; i++) {
        struct obs_mchild *c = f->children[i];
        size_t k = 0;
        while (k < f->nlabels && strcmp(c->values[k], vals[k]) == 0)
            k++;
        if (k == f->nlabels) {
            pthread_mutex_unlock(&f->lock);
            return c;
        }
    }
    struct obs_mchild *c = obs_calloc(1, sizeof(*c));
    struct obs_mchild **nc = c ? obs_realloc(f->children, (f->nchildren + 1) * sizeof(*nc)) : NULL;
    if (nc == NULL) {
        obs_free(c);
        pthread_mutex_unlock(&f->lock);
        return NULL;
    }
    f->children = nc;
    c->fam = f;
    c->values = obs_calloc(f->nlabels ? f->nlabels : 1, sizeof(char *));
    for (size_t k = 0; c->values && k < f->nlabels; k++)
        c->values[k] = obs_strdup(vals[k] ? vals[k] : "");
    if (f->type == OBS_MHISTOGRAM)
        c->buckets = obs_calloc(f->nbounds + 1, sizeof(uint64_t));
    f->children[f->nchildren++] = c;
    pthread_mutex_unlock(&f->lock);
    return c;
}

struct obs_mchild *obs_mfamily_with(struct obs_mfamily *f, ...)
{
    if (f == NULL)
        return NULL;
    const char *vals[16] = {0};
    va_list ap;
    va_start(ap, f);
    for (size_t i = 0; i < f->nlabels && i < 16; i++)
        vals[i] = va_arg(ap, const char *);
    va_end(ap);
    return child_find(f, vals);
}

struct obs_mchild *obs_metrics_counter(struct obs_metrics *m, const char *name, const char *help)
{
    return obs_mfamily_with(obs_metrics_family(m, OBS_MCOUNTER, name, help, NULL, NULL, 0));
}

struct obs_mchild *obs_metrics_gauge(struct obs_metrics *m, const char *name, const char *help)
{
    return obs_mfamily_with(obs_metrics_family(m, OBS_MGAUGE, name, help, NULL, NULL, 0));
}

int obs_metrics_gauge_fn(struct obs_metrics *m, const char *name, const char *help,
                         double (*fn)(void *arg), void *arg)
{
    /* A value read from the OS under a *_total name (process_cpu_seconds_total) is a
     * counter: Prometheus' naming rules (and `promtool check metrics`) reserve _total for
     * counters, so such a family is typed counter. */
    size_t len = strlen(name);
    enum obs_mtype type = len > 6 && strcmp(name + len - 6, "_total") == 0 ? OBS_MCOUNTER
                                                                          : OBS_MGAUGE;
    struct obs_mfamily *f = obs_metrics_family(m, type, name, help, NULL, NULL, 0);
    if (f == NULL)
        return OBS_ENOMEM;
    f->fn = fn;
    f->fn_arg = arg;
    return OBS_OK;
}

void obs_mchild_add(struct obs_mchild *c, double v)
{
    if (c)
        atomic_add_double(&c->v, v);
}

void obs_mchild_set(struct obs_mchild *c, double v)
{
    if (c)
        atomic_store_explicit(&c->v, d2bits(v), memory_order_relaxed);
}

void obs_mchild_observe(struct obs_mchild *c, double v)
{
    if (c == NULL || c->buckets == NULL)
        return;
    struct obs_mfamily *f = c->fam;
    size_t i = 0;
    while (i < f->nbounds && v > f->bounds[i])
        i++;
    atomic_fetch_add_explicit(&c->buckets[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&c->count, 1, memory_order_relaxed);
    atomic_add_double(&c->v, v);
}

double obs_mchild_value(const struct obs_mchild *c)
{
    return c ? bits2d(atomic_load_explicit(&((struct obs_mchild *)c)->v, memory_order_relaxed))
             : 0;
}

static void put_label_value(struct obs_sbuf *out, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\')
            obs_sbuf_puts(out, "\\\\");
        else if (*v == '"')
            obs_sbuf_puts(out, "\\\"");
        else if (*v == '\n')
            obs_sbuf_puts(out, "\\n");
        else
            obs_sbuf_putc(out, *v);
    }
}

static void put_labels(struct obs_sbuf *out, const struct obs_mfamily *f,
                       const struct obs_mchild *c, const char *extra_name, const char *extra_val)
{
    if (f->nlabels == 0 && extra_name == NULL)
        return;
    obs_sbuf_putc(out, '{');
    size_t k;
    for (k = 0; k < f->nlabels; k++) {
        if (k)
            obs_sbuf_putc(out, ',');
        obs_sbuf_printf(out, "%s=\"", f->labels[k]);
        put_label_value(out, c->values[k]);
        obs_sbuf_putc(out, '"');
    }
    if (extra_name) {
        if (k)
            obs_sbuf_putc(out, ',');
        obs_sbuf_printf(out, "%s=\"%s\"", extra_name, extra_val);
    }
    obs_sbuf_putc(out, '}');
}

static int fam_cmp(const void *a, const void *b)
{
    return strcmp((*(struct obs_mfamily *const *)a)->name, (*(struct obs_mfamily *const *)b)->name);
}

int obs_metrics_render(struct obs_metrics *m, struct obs_sbuf *out)
{
    pthread_mutex_lock(&m->lock);
    size_t n = m->nfams;
    struct obs_mfamily **fams = obs_malloc((n ? n : 1) * sizeof(*fams));
    if (fams == NULL) {
        pthread_mutex_unlock(&m->lock);
        return OBS_ENOMEM;
    }
    memcpy(fams, m->fams, n * sizeof(*fams));
    pthread_mutex_unlock(&m->lock);
    qsort(fams, n, sizeof(*fams), fam_cmp);
    static const char *tnames[] = {"counter", "gauge", "histogram"};
    for (size_t i = 0; i < n; i++) {
        struct obs_mfamily *f = fams[i];
        obs_sbuf_printf(out, "# HELP %s ", f->name);
        for (const char *h = f->help; *h; h++) {
            if (*h == '\\')
                obs_sbuf_puts(out, "\\\\");
            else if (*h == '\n')
                obs_sbuf_puts(out, "\\n");
            else
                obs_sbuf_putc(out, *h);
        }
        obs_sbuf_printf(out, "\n# TYPE %s %s\n", f->name, tnames[f->type]);
        if (f->fn) {
            obs_sbuf_printf(out, "%s ", f->name);
            obs_sbuf_prom_float(out, f->fn(f->fn_arg));
            obs_sbuf_putc(out, '\n');
            continue;
        }
        pthread_mutex_lock(&f->lock);
        for (size_t j = 0; j < f->nchildren; j++) {
            struct obs_mchild *c = f->children[j];
            double v = bits2d(atomic_load_explicit(&c->v, memory_order_relaxed));
            if (f->type != OBS_MHISTOGRAM) {
                obs_sbuf_puts(out, f->name);
                put_labels(out, f, c, NULL, NULL);
                obs_sbuf_putc(out, ' ');
                obs_sbuf_prom_float(out, v);
                obs_sbuf_putc(out, '\n');
                continue;
            }
            uint64_t cum = 0;
            for (size_t b = 0; b <= f->nbounds; b++) {
                cum += atomic_load_explicit(&c->buckets[b], memory_order_relaxed);
                char le[64];
                if (b < f->nbounds)
                    obs_fmt_float(le, sizeof(le), f->bounds[b]);
                else
                    memcpy(le, "+Inf", 5);
                obs_sbuf_printf(out, "%s_bucket", f->name);
                put_labels(out, f, c, "le", le);
                obs_sbuf_printf(out, " %llu\n", (unsigned long long)cum);
            }
            obs_sbuf_printf(out, "%s_sum", f->name);
            put_labels(out, f, c, NULL, NULL);
            obs_sbuf_putc(out, ' ');
            obs_sbuf_prom_float(out, v);
            obs_sbuf_printf(out, "\n%s_count", f->name);
            put_labels(out, f, c, NULL, NULL);
            obs_sbuf_printf(out, " %llu\n",
                            (unsigned long long)atomic_load_explicit(&c->count,
                                                                     memory_order_relaxed));
        }
        pthread_mutex_unlock(&f->lock);
    }
    obs_free(fams);
    return out->oom ? OBS_ENOMEM : OBS_OK;
}
