/*
 * mtd_ql.h -- metricsd's PromQL engine: parser and evaluator (Prometheus 3.x semantics).
 *
 * Usage:
 *     struct mtd_ql_expr *e;
 *     if (mtd_ql_parse("rate(x[5m])", &e, &err) < 0) -> err.msg is "1:5: parse error: ..."
 *     struct mtd_ql_result *r;
 *     mtd_ql_exec_range(e, storage, tenant, start, end, step, &opts, &r, &err);
 *     ... r->type, r->series ...
 *     mtd_ql_result_free(r); mtd_ql_expr_free(e);
 *
 * The evaluator reads samples through storage.h (struct mtd_storage) and follows Prometheus'
 * rules: 5m lookback (left-open in 3.x), range selectors (t-range, t], stale markers end a
 * series, __name__ removal (immediate, or delayed as 3.x's feature flag: opts), vector
 * matching, @ and offset, subqueries.
 * Native histograms: storage.h carries float samples only, so histogram samples come from
 * an optional source in the options (mtd_ql_opts.hist_select); the engine evaluates them
 * as Prometheus' float histograms (exponential and custom-bucket schemas).
 *
 * Threading: storage is read only by mtd_ql_prepare() (and the mtd_ql_exec_* wrappers), which
 * must run where storage.h allows (the loop thread). A prepared query holds owned copies of
 * every sample it needs, so mtd_ql_run() may run on any thread (metricsd runs it on the
 * querier's worker threads); a parsed expression is read-only during evaluation and may be
 * used by one query at a time. Results are plain memory.
 *
 * Limits (mtd_ql_opts): deadline and cancel flag (checked at the evaluator's deadline
 * checks), loaded/produced samples (Prometheus' "query processing would load too many
 * samples..."), fetched series and estimated memory (Mimir's err-mimir-* messages), subquery
 * resolution; regular expressions are compiled with embedded PCRE2 match/depth limits and
 * checked against the label values they will meet (prepare), so catastrophic backtracking
 * is refused instead of executed. Every limit error is OBS_ELIMIT with the message in err.
 */
#ifndef MTD_QL_H
#define MTD_QL_H

#include <stddef.h>
#include <stdint.h>

#include "core/obs_err.h"
#include "labels/obs_labels.h"

struct mtd_storage;
struct mtd_ql_expr;

enum mtd_ql_vtype {
    MTD_QL_NONE = 0,
    MTD_QL_SCALAR,
    MTD_QL_VECTOR,
    MTD_QL_MATRIX,
    MTD_QL_STRING,
};

/* Engine error codes besides OBS_E*: evaluation errors are OBS_EINVAL ("execution" in the
 * API), a deadline hit is MTD_QL_ETIMEOUT, a sample limit OBS_ELIMIT. */
#define MTD_QL_ETIMEOUT OBS_EAGAIN
/* The caller's cancel flag was raised (client went away).
 * Limit errors name Mimir's error id "(err-mimir-...)"; the API appends Mimir's advice text. */
#define MTD_QL_ECANCELED OBS_ERETRY

/* Regular expressions: every matcher regex and label_replace() pattern is compiled with these
 * PCRE2 limits embedded ((*LIMIT_MATCH=..)(*LIMIT_DEPTH=..)), so no single match can run away;
 * a selector regex that hits them on a stored label value is refused at prepare (422). */
#define MTD_QL_RE_MATCH_LIMIT 200000
#define MTD_QL_RE_DEPTH_LIMIT 5000
/* Default regex length limit of mtd_ql_parse() (bytes of one matcher/label_replace regex). */
#define MTD_QL_MAX_REGEX_LEN 32768
/* Deepest expression tree mtd_ql_parse() accepts (nesting of parentheses, calls, aggregations
 * and chained binary operators): the parser and evaluator recurse once per level, so a deeper
 * query is refused with a parse error instead of overflowing a thread stack. */
#define MTD_QL_MAX_DEPTH 1000

/* Counter reset hints of a native histogram. */
enum mtd_ql_crh {
    MTD_QL_CRH_UNKNOWN = 0,
    MTD_QL_CRH_RESET,
    MTD_QL_CRH_NOT_RESET,
    MTD_QL_CRH_GAUGE
};

#define MTD_QL_SCHEMA_CUSTOM (-53)

/*
 * A float native histogram. Buckets are sparse: (index, count) pairs sorted by index with
 * absolute counts (not deltas). Exponential schemas (-4..8): positive bucket i covers
 * (base^(i-1), base^i], base = 2^(2^-schema); negative buckets mirror that; the zero bucket
 * is [-zero_threshold, zero_threshold]. Custom-bucket schema (-53): positive bucket i covers
 * (custom[i-1], custom[i]] (custom[-1] = -Inf, custom[ncustom] = +Inf).
 */
struct mtd_ql_hist {
    int32_t schema;
    enum mtd_ql_crh crh;
    double zero_threshold, zero_count, count, sum;
    int32_t *pidx;
    double *pcnt;
    size_t np;
    int32_t *nidx;
    double *ncnt;
    size_t nn;
    double *custom;
    size_t ncustom;
};

struct mtd_ql_point {
    int64_t t; /* ms */
    double v;
    const struct mtd_ql_hist *h; /* non-NULL: a histogram sample (v unused) */
};

/* Series of histogram samples from a histogram source (see mtd_ql_opts). */
struct mtd_ql_hseries {
    const struct obs_label *labels; /* sorted by name */
    size_t nlabels;
    const int64_t *t;                       /* increasing */
    const struct mtd_ql_hist *const *h;     /* NULL entry = stale marker */
    size_t n;
};

struct mtd_ql_series {
    struct obs_label *labels; /* sorted by name */
    size_t nlabels;
    struct mtd_ql_point *pts;
    size_t npts;
};

struct mtd_ql_result {
    enum mtd_ql_vtype type;
    double scalar;      /* MTD_QL_SCALAR */
    int64_t t;          /* evaluation time of an instant query (ms) */
    char *str;          /* MTD_QL_STRING */
    /* VECTOR: one point per series (t = evaluation time); MATRIX: many points. */
    struct mtd_ql_series *series;
    size_t nseries;
    int ordered;        /* result order is meaningful (sort, topk at the top of the query) */
    int nwarnings;      /* annotations (Prometheus "warnings" and "infos") */
    int ninfos;
    char **warnings;    /* nwarnings + ninfos messages; warnings first */
    void *mem;          /* private: backing arena */
};

struct mtd_ql_opts {
    int64_t lookback_ms;      /* 0 = 5m */
    int64_t default_step_ms;  /* subquery step when omitted; 0 = 1m */
    int64_t deadline_ns;      /* obs_mono_ns() deadline; 0 = none */
    size_t max_samples;       /* 0 = unlimited (points loaded + produced) */
    size_t max_series;        /* series fetched by all selectors; 0 = unlimited */
    size_t max_memory_bytes;  /* estimated memory (engine arenas + fetched data); 0 = unlimited */
    int64_t max_subquery_points; /* steps one subquery evaluation may take; 0 = unlimited */
    const volatile int *cancel; /* non-NULL: stop with MTD_QL_ECANCELED once *cancel != 0 */
    /* 0 (Prometheus' default, 2.x and 3.x): functions and operators drop __name__ at once
     * and a vector whose series then share a label set is an error ("vector cannot contain
     * metrics with the same labelset"). 1: 3.x's promql-delayed-name-removal feature: the
     * name is only flagged and removed at the end of the query (upstream's test engine). */
    int delayed_name_removal;
    /* Optional native-histogram source: the series matching ms that have histogram samples
     * in [mint, maxt] (inclusive). *out stays owned by the source and must stay valid until
     * the query ends. 0 or a negative OBS_E*. NULL = no histograms. */
    int (*hist_select)(void *ctx, const char *tenant, const struct obs_matcher *ms, size_t nms,
                       int64_t mint, int64_t maxt, const struct mtd_ql_hseries **out,
                       size_t *n);
    void *hist_ctx;
};

/* Parse a PromQL expression. *out is owned by the caller (mtd_ql_expr_free). Errors:
 * OBS_EINVAL with err->msg in Prometheus' form "1:5: parse error: unexpected ...";
 * OBS_ENOMEM. */
int mtd_ql_parse(const char *query, struct mtd_ql_expr **out, struct obs_err *err);
/* As mtd_ql_parse with a regex length limit (bytes; 0 = MTD_QL_MAX_REGEX_LEN): longer
 * regexes are refused with OBS_EINVAL "...regular expression too long...". */
int mtd_ql_parse_ex(const char *query, size_t max_regex_len, struct mtd_ql_expr **out,
                    struct obs_err *err);
void mtd_ql_expr_free(struct mtd_ql_expr *e);
/* Result type of the expression (instant queries). */
enum mtd_ql_vtype mtd_ql_expr_type(const struct mtd_ql_expr *e);
/* Name of a value type as Prometheus prints it ("vector", "matrix", "scalar", "string"). */
const char *mtd_ql_type_name(enum mtd_ql_vtype t);

/* Evaluate at instant t (ms). *out owned by the caller (mtd_ql_result_free). Errors:
 * OBS_EINVAL (execution error, message in err), MTD_QL_ETIMEOUT, OBS_ELIMIT, OBS_ENOMEM,
 * or storage errors. st/tenant are read through storage.h on the calling thread. */
int mtd_ql_exec_instant(const struct mtd_ql_expr *e, struct mtd_storage *st, const char *tenant,
                        int64_t t, const struct mtd_ql_opts *o, struct mtd_ql_result **out,
                        struct obs_err *err);
/* Evaluate over [start, end] every step ms (> 0); the result is a matrix. The expression must
 * be a scalar or instant vector (else OBS_EINVAL, as Prometheus' bad_data). */
int mtd_ql_exec_range(const struct mtd_ql_expr *e, struct mtd_storage *st, const char *tenant,
                      int64_t start, int64_t end, int64_t step, const struct mtd_ql_opts *o,
                      struct mtd_ql_result **out, struct obs_err *err);
void mtd_ql_result_free(struct mtd_ql_result *r);

/* Two-phase evaluation (what the exec functions do in one go). mtd_ql_prepare() checks the
 * query (type, subquery resolution, regex safety, series/sample/memory limits) and loads
 * every sample the query needs from storage (storage.h thread); range = 0 for an instant
 * query at start (end and step ignored). The prepared query copies *o and keeps e, tenant
 * and o->cancel by pointer: they must outlive it. mtd_ql_run() evaluates it on any thread
 * and always consumes q (also on error); mtd_ql_query_free() drops one that will not run.
 * Errors as the exec functions, plus MTD_QL_ECANCELED. */
struct mtd_ql_query;
int mtd_ql_prepare(const struct mtd_ql_expr *e, struct mtd_storage *st, const char *tenant,
                   int range, int64_t start, int64_t end, int64_t step,
                   const struct mtd_ql_opts *o, struct mtd_ql_query **out, struct obs_err *err);
int mtd_ql_run(struct mtd_ql_query *q, struct mtd_ql_result **out, struct obs_err *err);
void mtd_ql_query_free(struct mtd_ql_query *q);

/* Format a sample value as Prometheus' JSON API does: shortest round-trip decimal, exponent
 * form ("1e-07", "2.5e+21") when |v| < 1e-6 or >= 1e21, "NaN", "+Inf", "-Inf". Returns the
 * length snprintf would (output truncated to cap). 32 bytes always suffice. */
int mtd_ql_fmt_value(char *out, size_t cap, double v);
/* Format v as Go's strconv.FormatFloat(v, 'f', -1, 64) (count_values label values): never an
 * exponent, so up to MTD_QL_FMT_F_MAX bytes with the NUL. */
#define MTD_QL_FMT_F_MAX 400
int mtd_ql_fmt_f(char *out, size_t cap, double v);

/* Format a label set as Prometheus does: name{a="b", c="d"} into buf (truncated). */
int mtd_ql_labels_str(const struct obs_label *l, size_t n, char *buf, size_t cap);

#endif
