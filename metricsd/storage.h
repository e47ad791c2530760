/*
 * storage.h -- metricsd's storage interface: what the PromQL engine, the query API, the
 * ruler and remote read use to read (and the ruler to write) samples.
 *
 * Model (Prometheus' data model):
 *   - a tenant (X-Scope-OrgID, "anonymous" by default) holds series;
 *   - a series is a label set sorted by name (it includes __name__) plus float samples
 *     (int64 t in milliseconds since the epoch, double v) in strictly increasing t, and
 *     optionally native histogram samples (read with the hist source below) and exemplars;
 *   - stale markers are stored as-is: the NaN with bit pattern MTD_STALE_NAN_BITS
 *     (check with mtd_value_is_stale()); the engine treats them as "series ended".
 *
 * Reading is snapshot-style and deliberately simple: mtd_storage_select() returns a
 * struct mtd_series_set that OWNS copies of every matched series' labels and samples, in
 * plain arrays. The set stays valid, and unchanged, after later appends; the caller frees
 * it with mtd_series_set_free(). Series in a set are sorted by their label sets
 * (lexicographic over (name, value) pairs, as Prometheus' labels.Compare), samples by t.
 *
 * Matchers are common/labels' struct obs_matcher (=, !=, =~, !~ with anchored PCRE2; a
 * missing label matches as ""). An empty matcher list selects every series of the tenant.
 * The caller is responsible for PromQL's "at least one matcher must not match the empty
 * string" rule; storage accepts any combination.
 *
 * Time ranges are inclusive [mint, maxt] in milliseconds; pass INT64_MIN / INT64_MAX for
 * "all time". For select, a series is returned only when it has at least one sample in the
 * range, and only the samples in the range are copied. (The engine widens mint by the
 * lookback delta / range itself.) For label names/values and series listing, a series
 * counts when any of its samples falls in the range.
 *
 * The interface is a small vtable (struct mtd_storage_ops) so the querier can later merge
 * the head with blocks from the store-gateway without the engine changing. The head
 * (head.h) provides one: mtd_head_storage(). Use the mtd_storage_* wrappers below.
 *
 * Threading: every call must come from the event-loop thread that owns the storage
 * (metricsd runs its HTTP handlers, ingester and ruler on that one loop). Returned sets and
 * string lists are plain memory and may then be handed to any thread.
 *
 * Errors: 0 or a negative OBS_E* (obs_err.h). OBS_ENOMEM on allocation failure,
 * OBS_ELIMIT when a result would exceed the caller's max_series/max_samples (err says
 * which), OBS_EINVAL for bad arguments. err may be NULL.
 */
#ifndef MTD_STORAGE_H
#define MTD_STORAGE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/obs_err.h"
#include "labels/obs_labels.h"

/* Prometheus' stale marker: a NaN with this exact bit pattern (value.StaleNaN). */
#define MTD_STALE_NAN_BITS 0x7ff0000000000002ULL

static inline int mtd_value_is_stale(double v)
{
    uint64_t b;
    memcpy(&b, &v, sizeof b);
    return b == MTD_STALE_NAN_BITS;
}

struct mtd_sample {
    int64_t t; /* milliseconds since the epoch */
    double v;
};

/* One series of a result set. All pointers are owned by the enclosing set. */
struct mtd_series {
    const struct obs_label *labels; /* sorted by name, includes __name__ */
    size_t nlabels;
    const struct mtd_sample *samples; /* increasing t; empty for MTD_SELECT_NO_SAMPLES */
    size_t nsamples;
    uint64_t hash; /* obs_labels_hash(labels, nlabels) */
};

/* A result: nseries series sorted by label set. Free with mtd_series_set_free(). */
struct mtd_series_set {
    struct mtd_series *series;
    size_t nseries;
    size_t nsamples_total; /* sum of series[i].nsamples */
    struct obs_arena *arena; /* backing memory (labels, samples) */
};

/* Options for select. Zero-initialise, then set what you need. */
struct mtd_select_opts {
    int64_t mint, maxt;   /* inclusive, milliseconds */
    int no_samples;       /* 1 = labels only (series endpoint, label APIs): samples left empty */
    size_t max_series;    /* 0 = unlimited; more -> OBS_ELIMIT */
    size_t max_samples;   /* 0 = unlimited; more -> OBS_ELIMIT */
};

struct mtd_storage;
struct obs_arena;
struct mtd_ql_hseries; /* metricsd/ql/mtd_ql.h */

/* One exemplar (remote write's Exemplar): its own labels (trace_id...), value, time. */
struct mtd_exemplar {
    const struct obs_label *labels;
    size_t nlabels;
    double v;
    int64_t t; /* ms */
};

/* The exemplars of one series, oldest first. */
struct mtd_exemplar_series {
    const struct obs_label *labels; /* the series' labels, sorted */
    size_t nlabels;
    const struct mtd_exemplar *ex;
    size_t n;
};

/* Result of mtd_storage_exemplars(): series sorted by labels. Free with
 * mtd_exemplar_set_free(). All memory is owned by the set. */
struct mtd_exemplar_set {
    struct mtd_exemplar_series *series;
    size_t nseries;
    struct obs_arena *arena;
};

/* The backend vtable. Implementations fill out-parameters only on success. */
struct mtd_storage_ops {
    int (*select)(struct mtd_storage *st, const char *tenant, const struct obs_matcher *ms,
                  size_t nms, const struct mtd_select_opts *o, struct mtd_series_set **out,
                  struct obs_err *err);
    int (*label_names)(struct mtd_storage *st, const char *tenant,
                       const struct obs_matcher *ms, size_t nms, int64_t mint, int64_t maxt,
                       char ***out, size_t *n, struct obs_err *err);
    int (*label_values)(struct mtd_storage *st, const char *tenant, const char *name,
                        const struct obs_matcher *ms, size_t nms, int64_t mint, int64_t maxt,
                        char ***out, size_t *n, struct obs_err *err);
    int (*tenants)(struct mtd_storage *st, char ***out, size_t *n);
    int (*append)(struct mtd_storage *st, const char *tenant, const struct obs_label *labels,
                  size_t nlabels, const struct mtd_sample *samples, size_t nsamples,
                  struct obs_err *err);
    /* Optional (NULL = the backend has none; the wrappers then return empty results). */
    int (*hist_select)(struct mtd_storage *st, const char *tenant,
                       const struct obs_matcher *ms, size_t nms, int64_t mint, int64_t maxt,
                       struct obs_arena *ar, const struct mtd_ql_hseries **out, size_t *n,
                       struct obs_err *err);
    int (*exemplars)(struct mtd_storage *st, const char *tenant, const struct obs_matcher *ms,
                     size_t nms, int64_t mint, int64_t maxt, struct mtd_exemplar_set **out,
                     struct obs_err *err);
};

struct mtd_storage {
    const struct mtd_storage_ops *ops;
    void *impl; /* backend object (e.g. struct mtd_head *) */
};

/*
 * Select the series of `tenant` matching every matcher in ms[0..nms), with samples in
 * [o->mint, o->maxt]. On success *out is a new set owned by the caller. A tenant that does
 * not exist yields an empty set (not an error).
 */
static inline int mtd_storage_select(struct mtd_storage *st, const char *tenant,
                                     const struct obs_matcher *ms, size_t nms,
                                     const struct mtd_select_opts *o,
                                     struct mtd_series_set **out, struct obs_err *err)
{
    return st->ops->select(st, tenant, ms, nms, o, out, err);
}

/*
 * Sorted, de-duplicated label names of the tenant's series that match ms (nms may be 0 =
 * all series) and have samples in [mint, maxt]. *out is an array of *n obs_malloc'd strings,
 * owned by the caller: free with mtd_strings_free().
 */
static inline int mtd_storage_label_names(struct mtd_storage *st, const char *tenant,
                                          const struct obs_matcher *ms, size_t nms,
                                          int64_t mint, int64_t maxt, char ***out, size_t *n,
                                          struct obs_err *err)
{
    return st->ops->label_names(st, tenant, ms, nms, mint, maxt, out, n, err);
}

/*
 * Sorted, de-duplicated non-empty values of label `name` over the matching series (as
 * label_names). Ownership as mtd_storage_label_names().
 */
static inline int mtd_storage_label_values(struct mtd_storage *st, const char *tenant,
                                           const char *name, const struct obs_matcher *ms,
                                           size_t nms, int64_t mint, int64_t maxt,
                                           char ***out, size_t *n, struct obs_err *err)
{
    return st->ops->label_values(st, tenant, name, ms, nms, mint, maxt, out, n, err);
}

/* Tenants that have data (sorted). For the ruler. Free with mtd_strings_free(). */
static inline int mtd_storage_tenants(struct mtd_storage *st, char ***out, size_t *n)
{
    return st->ops->tenants(st, out, n);
}

/*
 * Append samples (increasing t) to the series with these labels (need not be sorted; they
 * are validated as remote write does), creating it if needed. Durable: the samples are in
 * the WAL and fsynced when this returns 0. For the ruler's recording rules. Errors:
 * OBS_EINVAL (bad labels), OBS_ERANGE ("out of order sample"), OBS_EEXIST ("duplicate
 * sample for timestamp"), OBS_EIO (WAL), OBS_ENOMEM. Samples before a rejected one stay.
 */
static inline int mtd_storage_append(struct mtd_storage *st, const char *tenant,
                                     const struct obs_label *labels, size_t nlabels,
                                     const struct mtd_sample *samples, size_t nsamples,
                                     struct obs_err *err)
{
    return st->ops->append(st, tenant, labels, nlabels, samples, nsamples, err);
}

/*
 * Exemplars (for GET /api/v1/query_exemplars) of the tenant's series matching every matcher
 * in ms (one selector of the query; call once per selector and union), with t in [mint, maxt]
 * inclusive. Series without exemplars in range are left out. *out is owned by the caller
 * (mtd_exemplar_set_free); an unknown tenant or a backend without exemplars gives an empty
 * set. Errors: OBS_ENOMEM.
 */
int mtd_storage_exemplars(struct mtd_storage *st, const char *tenant,
                          const struct obs_matcher *ms, size_t nms, int64_t mint, int64_t maxt,
                          struct mtd_exemplar_set **out, struct obs_err *err);
void mtd_exemplar_set_free(struct mtd_exemplar_set *s);

/*
 * Native histograms for the PromQL engine (mtd_ql_opts.hist_select / hist_ctx):
 *
 *     struct mtd_hist_source *hs = mtd_hist_source_new(storage);   (NULL on OOM: run
 *     opts.hist_select = mtd_hist_source_select;                      without histograms)
 *     opts.hist_ctx = hs;
 *     mtd_ql_exec_instant(..., &opts, &res, &err);
 *     ... render res ...
 *     mtd_ql_result_free(res);
 *     mtd_hist_source_free(hs);      (after the result: it may point at the histograms)
 *
 * mtd_hist_source_select has exactly the hist_select signature; ctx is the source. Each call
 * returns the series matching ms with histogram samples in [mint, maxt] (sorted by labels,
 * stale markers as NULL entries), in memory the source owns until mtd_hist_source_free.
 * Loop thread only, like every storage call.
 */
struct mtd_hist_source;
struct mtd_hist_source *mtd_hist_source_new(struct mtd_storage *st);
int mtd_hist_source_select(void *ctx, const char *tenant, const struct obs_matcher *ms,
                           size_t nms, int64_t mint, int64_t maxt,
                           const struct mtd_ql_hseries **out, size_t *n);
void mtd_hist_source_free(struct mtd_hist_source *hs);

/* Free a set from select (NULL is fine). */
void mtd_series_set_free(struct mtd_series_set *s);
/* Free n strings and the array (NULL is fine). */
void mtd_strings_free(char **v, size_t n);

#endif
