/*
 * ql_int.h -- private types of the PromQL engine (AST, values, arena, label helpers).
 *
 * Memory: everything a parse or an evaluation allocates comes from a struct ql_arena and is
 * released at once. Errors (parse errors, execution errors, out of memory, deadline) unwind
 * with longjmp to the entry point (mtd_ql_parse / mtd_ql_exec_*), which frees the arenas;
 * nothing below the entry point owns non-arena memory while it may unwind, except PCRE2
 * objects, which are registered for cleanup on the arena.
 */
#ifndef MTD_QL_INT_H
#define MTD_QL_INT_H

#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>

#include "core/obs_err.h"
#include "labels/obs_labels.h"
#include "metricsd/ql/mtd_ql.h"

/* ---------------------------------------------------------------- arena */
struct ql_chunk;
struct ql_cleanup;
/* Estimated memory of one query: bytes held by its arenas' chunks plus fetched data. */
struct ql_memacct {
    size_t cur, peak, limit; /* limit 0 = unlimited */
};
struct ql_arena {
    struct ql_chunk *head;   /* newest chunk first */
    struct ql_cleanup *cleanups;
    jmp_buf *jb;             /* where to unwind on OOM */
    struct obs_err *err;     /* filled before unwinding */
    struct ql_memacct *acct; /* NULL = not accounted */
};
struct ql_mark {
    struct ql_chunk *chunk;
    size_t used;
};

void ql_arena_init(struct ql_arena *a, jmp_buf *jb, struct obs_err *err);
void ql_arena_deinit(struct ql_arena *a);
void *ql_alloc(struct ql_arena *a, size_t n);   /* zeroed; never NULL (unwinds) */
void *ql_alloc_raw(struct ql_arena *a, size_t n); /* ql_alloc without zeroing */
void *ql_grow(struct ql_arena *a, void *p, size_t oldn, size_t newn);
char *ql_strndup(struct ql_arena *a, const char *s, size_t n);
char *ql_strdup(struct ql_arena *a, const char *s);
char *ql_printf(struct ql_arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void ql_on_free(struct ql_arena *a, void (*fn)(void *), void *arg);
/* Account n more (or, negative, fewer) bytes to a's query; unwinds with OBS_ELIMIT when the
 * estimated-memory limit is passed. */
void ql_mem_account(struct ql_arena *a, long long n);
struct ql_mark ql_arena_mark(struct ql_arena *a);
void ql_arena_release(struct ql_arena *a, struct ql_mark m);
/* Unwind with code and message (err filled). */
void ql_throw(struct ql_arena *a, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), noreturn));

/* Growable array in an arena. */
#define QL_PUSH(a, arr, n, cap, item)                                                       \
    do {                                                                                    \
        if ((n) == (cap)) {                                                                 \
            size_t nc_ = (cap) ? (cap) * 2 : 8;                                             \
            (arr) = ql_grow((a), (arr), (cap) * sizeof(*(arr)), nc_ * sizeof(*(arr)));      \
            (cap) = nc_;                                                                    \
        }                                                                                   \
        (arr)[(n)++] = (item);                                                              \
    } while (0)

/* ---------------------------------------------------------------- string map */
/* Open-addressing map from byte strings to an int (arena allocated). */
struct ql_map {
    struct ql_arena *a;
    const char **keys;
    size_t *klens;
    int *vals;
    size_t cap, n;
};
void ql_map_init(struct ql_map *m, struct ql_arena *a, size_t hint);
/* Value for key, or -1. */
int ql_map_get(const struct ql_map *m, const char *k, size_t kn);
/* Insert (key copied by pointer: it must live as long as the map). Returns existing value
 * when present (and does not overwrite), else -1 after inserting v. */
int ql_map_put(struct ql_map *m, const char *k, size_t kn, int v);

/* ---------------------------------------------------------------- labels */
/* id > 0: the label set lives as long as the query (a selected series or a set interned in
 * the query arena) and per-query caches may be keyed by it; the same id always means the same
 * labels. Interned sets (ql_intern in ql_eval.c) also have the converse: equal sets, equal id.
 * Functions that build a new set leave id 0. */
struct ql_labels {
    const struct obs_label *v;
    uint32_t n;
    uint32_t id;
};
const char *ql_lget(struct ql_labels l, const char *name); /* NULL when absent */
/* Copies with one label set (value "" deletes) / deleted. */
struct ql_labels ql_lset(struct ql_arena *a, struct ql_labels l, const char *name,
                         const char *value);
struct ql_labels ql_ldel(struct ql_arena *a, struct ql_labels l, const char *name);
/* Keep only (keep=1) or drop (keep=0) the listed names (and __name__ if drop_name). */
struct ql_labels ql_lfilter(struct ql_arena *a, struct ql_labels l, char **names, size_t n,
                            int keep, int drop_name);
int ql_lequal(struct ql_labels x, struct ql_labels y);
int ql_lcmp(struct ql_labels x, struct ql_labels y);
/* Signature: the (name,value) pairs of l selected by names/on (on=1 keep listed; on=0 all
 * but listed and __name__) serialised into a string (arena). */
const char *ql_lsig(struct ql_arena *a, struct ql_labels l, char **names, size_t n, int on,
                    size_t *len);
/* Prometheus' label set string: {a="b", c="d"} with the name in front. */
const char *ql_lstr(struct ql_arena *a, struct ql_labels l);
const char *ql_lstr_raw(struct ql_arena *a, struct ql_labels l); /* {__name__=..} form */
const char *ql_go_quote(struct ql_arena *a, const char *s); /* Go's %q */

/* ---------------------------------------------------------------- AST */
enum ql_kind {
    QN_NUM, QN_STR, QN_VSEL, QN_MSEL, QN_SUBQ, QN_PAREN, QN_UNARY, QN_BINARY, QN_AGG, QN_CALL,
    QN_STEPINV
};

enum ql_op {
    QOP_NONE = 0,
    QOP_ADD, QOP_SUB, QOP_MUL, QOP_DIV, QOP_MOD, QOP_POW, QOP_ATAN2,
    QOP_EQL, QOP_NEQ, QOP_GTR, QOP_LSS, QOP_GTE, QOP_LTE,
    QOP_AND, QOP_OR, QOP_UNLESS,
    QOP_TRIM_UPPER, QOP_TRIM_LOWER, /* </ and >/ on native histograms */
};

enum ql_agg {
    QA_SUM = 1, QA_AVG, QA_MIN, QA_MAX, QA_COUNT, QA_GROUP, QA_STDDEV, QA_STDVAR, QA_TOPK,
    QA_BOTTOMK, QA_QUANTILE, QA_COUNT_VALUES, QA_LIMITK, QA_LIMIT_RATIO
};

enum ql_card { QC_ONE_ONE = 0, QC_MANY_ONE, QC_ONE_MANY, QC_MANY_MANY };

enum ql_at { QAT_NONE = 0, QAT_TS, QAT_START, QAT_END };

struct ql_func;

struct ql_node {
    enum ql_kind kind;
    enum mtd_ql_vtype type;
    int pos;                    /* byte offset in the query */
    int endpos;
    double num;                 /* QN_NUM */
    char *str;                  /* QN_STR */
    /* QN_VSEL */
    char *name;                 /* metric name or NULL */
    struct obs_matcher *ms;
    size_t nms;
    int sel_id;                 /* index of this selector in the query's data table */
    /* offset / @ (QN_VSEL, QN_SUBQ) */
    int64_t offset;
    enum ql_at at_kind;
    int64_t at;                 /* ms, QAT_TS */
    /* QN_MSEL / QN_SUBQ */
    int64_t range, step;        /* ms; step 0 = default */
    /* children */
    struct ql_node *lhs, *rhs;  /* QN_BINARY; QN_UNARY uses lhs; QN_PAREN/MSEL/SUBQ/AGG: lhs */
    struct ql_node *param;      /* QN_AGG parameter */
    enum ql_op op;              /* QN_BINARY; QN_UNARY QOP_SUB/QOP_ADD */
    int bool_mod;
    enum ql_card card;
    int on, has_matching;
    char **mlabels;             /* on/ignoring labels */
    size_t nmlabels;
    char **include;             /* group_left/right labels */
    size_t ninclude;
    enum ql_agg agg;            /* QN_AGG */
    int without, has_grouping;
    char **grouping;
    size_t ngrouping;
    const struct ql_func *fn;   /* QN_CALL */
    struct ql_node **args;
    size_t nargs;
    /* duration expressions that depend on the query (step(), range()); resolved into
     * offset/range/step by ql_resolve_durations before evaluation (NULL: constant) */
    struct ql_dur *offset_expr, *range_expr, *step_expr;
    /* QN_BINARY fill modifiers: fill_l / fill_r set when a missing side is filled */
    int fill_l, fill_r;
    double fill_lv, fill_rv;
    /* QN_VSEL: extended range selector modifiers (anchored only inside x[r]); bit 2 is set
     * when rate/increase/delta read the range raw */
    int anchored, smoothed;
    /* QN_VSEL: label selector of info() (ms[nms_user..] are added name matchers); 2 when
     * synthesized for info(v) (printers should leave it out) */
    int info_sel;
    size_t nms_user;
    /* For the printer (format_query) only: the duration expressions as written, constant
     * ones included (the evaluator uses the *_expr fields above); name_braced: the metric
     * name was written inside the braces ({"name"}). */
    struct ql_dur *range_src, *step_src, *offset_src;
    int name_braced;
};

/* Duration expression tree (values in seconds, as Prometheus' DurationExpr). */
enum ql_dop {
    QD_NUM, QD_ADD, QD_SUB, QD_MUL, QD_DIV, QD_MOD, QD_POW, QD_STEP, QD_RANGE, QD_MIN, QD_MAX
};
struct ql_dur {
    enum ql_dop op;
    double num;               /* QD_NUM */
    struct ql_dur *l, *r;     /* QD_SUB with l == NULL: unary minus */
    int pos;
    int wrapped;              /* written in parentheses (printer) */
    int dur_lit;              /* QD_NUM written as a duration ("5m"), not a number */
};
/* Value of d in seconds given the query step and range (seconds). Returns 0, or -1 with a
 * message in *why (division or modulo by zero). */
int ql_dur_eval(const struct ql_dur *d, double step, double range, double *out,
                const char **why);
int ql_dur_dynamic(const struct ql_dur *d); /* uses step() or range() */
/* Histogram linearly interpolated at t between (t1, h1) and (t2, h2) (anchored/smoothed
 * selectors); with counter set, a reset between them counts up from zero (h2 scaled). The
 * result keeps h2's counter-reset hint. NULL when exponential and custom buckets mix. */
struct mtd_ql_hist;
const struct mtd_ql_hist *ql_ext_hinterp(struct ql_arena *a, const struct mtd_ql_hist *h1,
                                         int64_t t1, const struct mtd_ql_hist *h2, int64_t t2,
                                         int64_t t, int counter);
/* Resolve the query-dependent duration expressions of the tree under n (ql_eval.c). */
struct ql_query;
void ql_resolve_durations(struct ql_query *q, struct ql_node *n);

struct mtd_ql_expr {
    struct ql_arena arena;
    struct ql_node *root;
    int nsel;
    char *text;
};

/* ---------------------------------------------------------------- values */
struct ql_sample {
    struct ql_labels l;
    int64_t t;
    double v;
    const struct mtd_ql_hist *h; /* non-NULL: histogram sample */
    int drop;                   /* delayed __name__ removal */
};
struct ql_vec {
    struct ql_sample *s;
    size_t n;
};
struct ql_series {
    struct ql_labels l;
    struct mtd_ql_point *p;
    size_t n, cap;
    int drop;
    int nohist; /* set when no point of p is a histogram (0: unknown) */
    int noreset;   /* set when no value of p is below its predecessor (0: unknown) */
    int info_done; /* per-series annotations were already considered (series at a time) */
};
struct ql_mat {
    struct ql_series *s;
    size_t n;
    int64_t range_start, range_end; /* for rate-like functions: (start, end] */
    int64_t range;
};
struct ql_val {
    enum mtd_ql_vtype type;
    double scalar;
    const char *str;
    struct ql_vec vec;
    struct ql_mat mat;
};

struct ql_sel_data;
struct ql_query;
struct ql_agg_cache;
struct ql_bin_cache;
struct ql_pre;
struct ql_subq_pre;

/* Function table entry. */
typedef struct ql_val (*ql_fn_impl)(struct ql_query *q, struct ql_node *call, struct ql_val *args,
                                    int64_t t);
struct ql_func {
    const char *name;
    enum mtd_ql_vtype argt[4]; /* declared argument types; MTD_QL_NONE ends */
    int nargs;                 /* declared count */
    int variadic;              /* 0 fixed; >0 up to that many optional extra args; -1 unlimited */
    enum mtd_ql_vtype ret;
    ql_fn_impl impl;
    int experimental;
};
const struct ql_func *ql_func_lookup(const char *name, size_t n);
/* One series' value of a range-vector function (a window s of matrix m at step t); returns 1
 * and sets *out when there is a sample. */
typedef int (*ql_over_fn)(struct ql_query *q, struct ql_node *c, struct ql_val *a,
                          const struct ql_series *s, const struct ql_mat *m, int64_t t,
                          double *out);
/* The per-series form of fn when it is a float range-vector function (rate, *_over_time...):
 * returns 1 and sets *f and *keep_name (output keeps __name__), else 0. */
int ql_over_info(const struct ql_func *fn, ql_over_fn *f, int *keep_name);

/* ---------------------------------------------------------------- evaluation */
struct ql_query {
    struct ql_arena qa;          /* query lifetime: selector data, output */
    struct ql_arena sa;          /* step scratch */
    jmp_buf jb;
    struct obs_err *err;
    struct mtd_storage *st;
    const char *tenant;
    const struct mtd_ql_expr *e;
    int64_t start, end, interval;  /* query range (instant: start == end) */
    int64_t lookback, default_step, deadline;
    size_t max_samples, nsamples;
    size_t max_series, nseries;
    int64_t max_subq_points;
    const volatile int *cancel;
    struct ql_memacct mem;
    const struct mtd_ql_opts *opts;
    const struct mtd_ql_hist *hout; /* histogram result of a range function (ql_funcs.c) */
    struct ql_sel_data *sel;       /* nsel entries */
    char **annos;                  /* warnings then infos are collected separately */
    size_t nwarn, ninfo, capw, capi;
    char **warns, **infos;
    uint64_t ticks;
    int delayed;                   /* delayed __name__ removal (opts) */
    /* label-set ids (ql_eval.c): id -> labels, the intern map, and per-id caches */
    uint32_t nlid;
    struct ql_labels *lids;        /* [id], cap lids_cap */
    size_t lids_cap;
    struct ql_map imap;            /* interned key -> id */
    uint32_t *drop_of;             /* [id] -> id of the set without __name__ (0: not yet) */
    size_t drop_cap;
    uint32_t *seen;                /* [id] -> generation (duplicate checks) */
    size_t seen_cap;
    uint32_t seen_gen;
    struct ql_agg_cache *aggc;     /* per aggregation node */
    size_t naggc;
    struct ql_bin_cache *binc;     /* per binary-operator node */
    size_t nbinc;
    int multi;                     /* evaluated at more than one time (range or subquery) */
    struct ql_pre *pre;            /* range functions computed series by series (range query) */
    size_t npre;
    struct ql_subq_pre *subq;      /* subqueries evaluated once over a range query's span */
    size_t nsubq;
};

struct ql_val ql_eval(struct ql_query *q, struct ql_node *n, int64_t t);
/* Annotations; pos is the byte offset of the expression they are about (appended as
 * " (line:col)" as Prometheus does), or -1 for none. Duplicates are collapsed. */
void ql_warn(struct ql_query *q, int pos, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void ql_info(struct ql_query *q, int pos, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void ql_check_deadline(struct ql_query *q);
double ql_kahan_inc(double inc, double sum, double *c);
double ql_quantile(double q, double *v, size_t n); /* sorts v */
/* info(): when info series are looked up for the call argument n evaluated at t. */
int64_t ql_info_ref_time(struct ql_query *q, const struct ql_node *n, int64_t t);
/* Resolve a selector's evaluation instant (applies @ and offset). */
int64_t ql_sel_time(struct ql_query *q, const struct ql_node *n, int64_t t);

/* ---------------------------------------------------------------- histograms (ql_hist.c) */
struct mtd_ql_hist *ql_hist_new(struct ql_arena *a);
struct mtd_ql_hist *ql_hist_copy(struct ql_arena *a, const struct mtd_ql_hist *h);
void ql_hist_bucket_bounds(const struct mtd_ql_hist *h, int32_t idx, int neg, double *lo,
                           double *hi);
int ql_hist_compatible(const struct mtd_ql_hist *x, const struct mtd_ql_hist *y);
/* x + f*y; NULL when exponential and custom schemas mix (custom bounds are reconciled). */
struct mtd_ql_hist *ql_hist_add(struct ql_arena *a, const struct mtd_ql_hist *x,
                                const struct mtd_ql_hist *y, double f);
struct mtd_ql_hist *ql_hist_scale(struct ql_arena *a, const struct mtd_ql_hist *h, double f);
struct mtd_ql_hist *ql_hist_div(struct ql_arena *a, const struct mtd_ql_hist *h, double f);
int ql_hist_equal(const struct mtd_ql_hist *x, const struct mtd_ql_hist *y);
/* Prometheus' FloatHistogram.String() (count_values label of a histogram). */
const char *ql_hist_str(struct ql_arena *a, const struct mtd_ql_hist *h);
double ql_hist_quantile(struct ql_arena *a, double q, const struct mtd_ql_hist *h);
/* Observations of h in no bucket when its sum is NaN (NaN observations), else 0. */
double ql_hist_nan_obs(const struct mtd_ql_hist *h);
double ql_hist_fraction(struct ql_arena *a, double lo, double hi, const struct mtd_ql_hist *h);
double ql_hist_stdvar(struct ql_arena *a, const struct mtd_ql_hist *h);
/* Counter reset between prev and cur (hint first, then buckets; custom bounds reconciled). */
int ql_hist_detect_reset(struct ql_arena *a, const struct mtd_ql_hist *cur,
                         const struct mtd_ql_hist *prev);
/* ql_hist_add that sets *reconciled (if non-NULL) when custom bounds had to be reconciled. */
struct mtd_ql_hist *ql_hist_add_r(struct ql_arena *a, const struct mtd_ql_hist *x,
                                  const struct mtd_ql_hist *y, double f, int *reconciled);
/* The trim operators: h </ x (upper=1) keeps the observations below x, h >/ x those above,
 * interpolating inside the cut bucket (exponentially for exponential buckets, linearly for
 * custom and zero buckets). When a bucket is cut, count and sum are re-estimated from the kept
 * buckets (each at the midpoint of its kept part); when none is, h itself is returned. */
struct mtd_ql_hist *ql_hist_trim(struct ql_arena *a, const struct mtd_ql_hist *h, double x,
                                 int upper);
/* Compensated (Kahan-Neumaier) sum or mean of histograms, field by field, as Prometheus'
 * sum/avg/sum_over_time/avg_over_time: ql_hacc_init, then ql_hacc_add for each input (avg=1
 * for a mean: switches to an incremental mean when the plain sum would overflow), then
 * ql_hacc_finish (NULL when nothing was added or schemas were incompatible). Schemas are
 * reduced, zero thresholds widened and custom bounds reconciled (acc->reconciled) as needed.
 * The result's counter reset hint combines the inputs' as FloatHistogram.Add does; reset mixed
 * with not_reset sets crh_conflict (Prometheus warns "conflicting counter resets during
 * histogram aggregation"). ql_hacc_add returns -1 (and sets bad) when exponential and custom
 * schemas mix. All memory is from arena a. */
struct ql_hacc {
    struct mtd_ql_hist *s, *c; /* running sum (or mean) and its compensation, same layout */
    struct mtd_ql_hist *f;     /* same layout: 1 where a field switched to the incremental mean */
    double n;                  /* histograms added */
    int bad;                   /* exponential and custom buckets mixed */
    int reconciled;            /* custom bounds had to be reconciled */
    int crh_conflict;          /* reset and not_reset hints were added together */
    int seen;                  /* 1: a reset hint was added, 2: a not_reset hint */
    enum mtd_ql_crh crh;       /* combined counter reset hint */
};
void ql_hacc_init(struct ql_hacc *acc);
int ql_hacc_add(struct ql_arena *a, struct ql_hacc *acc, const struct mtd_ql_hist *h, int avg);
struct mtd_ql_hist *ql_hacc_finish(struct ql_arena *a, struct ql_hacc *acc, int avg);
/* Prometheus reads a selector through its HistogramStatsIterator when the selector's value
 * only feeds histogram_count/sum/avg (innermost such call above it, not crossed by a binary
 * operator or subquery, and no histogram_quantile/fraction in between): 1 for such a selector
 * node sel (QN_VSEL or QN_MSEL) of the expression root. That iterator gives each histogram
 * whose counter reset hint is unknown an explicit one, detected against the series' previous
 * sample: ql_hist_stats_hint (prev NULL for a series' first sample read: hint kept). */
int ql_hist_stats_sel(const struct ql_node *root, const struct ql_node *sel);
enum mtd_ql_crh ql_hist_stats_hint(struct ql_arena *a, const struct mtd_ql_hist *cur,
                                   const struct mtd_ql_hist *prev);

#endif
