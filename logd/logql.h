/*
 * logql.h -- LogQL lexer and parser (the subset logd evaluates) producing an AST.
 *
 * Grammar (Loki's LogQL):
 *   log query     {a="b", c=~"re"} |= "txt" != "x" |~ "re" !~ "re" | json | logfmt
 *                 | label op value [, | and ...] | unwrap label | line_format "tmpl"
 *   range agg     count_over_time|rate|bytes_over_time|bytes_rate|absent_over_time(<log> [5m])
 *                 sum|avg|min|max|first|last|stddev|stdvar_over_time(<log> | unwrap l [5m])
 *                 optional `offset <dur>` after the range
 *   vector agg    sum|avg|min|max|count|stddev|stdvar [by|without (l,..)] (<metric>) [by ..]
 *                 topk|bottomk(k, <metric>)
 *   binary        + - * / % ^ == != > >= < <= [bool] and or unless, with the usual precedence
 *   literals      numbers, vector(<number>)
 * Errors mirror Loki's text: "parse error at line 1, col 5: syntax error: unexpected }, ..."
 * for syntax, "parse error : <reason>" for semantic errors. Thread-safe (no shared state); an
 * AST is used by one thread at a time (compiled regexes carry match data).
 */
#ifndef LGD_LOGQL_H
#define LGD_LOGQL_H

#include <stddef.h>
#include <stdint.h>

#include "core/obs_err.h"
#include "labels/obs_labels.h"
#include "logd/store.h"

enum lgd_stage_kind {
    LGD_ST_LINE,    /* line filter: op in enum lgd_line_op, str/len, re */
    LGD_ST_JSON,    /* | json */
    LGD_ST_LOGFMT,  /* | logfmt */
    LGD_ST_LABEL,   /* | label filter: string matcher m, or numeric (cmp, label, num) */
    LGD_ST_LINEFMT, /* | line_format "{{.a}} text" (only {{.label}} substitutions) */
};

enum lgd_line_op { LGD_LF_CONTAINS, LGD_LF_NCONTAINS, LGD_LF_RE, LGD_LF_NRE };
enum lgd_cmp { LGD_CMP_EQ, LGD_CMP_NE, LGD_CMP_GT, LGD_CMP_GE, LGD_CMP_LT, LGD_CMP_LE };

struct lgd_stage {
    enum lgd_stage_kind kind;
    int op;              /* enum lgd_line_op (LINE) or enum lgd_cmp (numeric LABEL) */
    char *str;           /* LINE needle / LINEFMT template (owned) */
    size_t len;
    void *re, *md;       /* pcre2 for LF_RE/LF_NRE */
    int numeric;         /* LABEL: numeric comparison (label, num) instead of m */
    int duration;        /* LABEL numeric: value was a duration (num in seconds) */
    char *label;         /* LABEL numeric: label name (owned) */
    double num;
    struct lgd_matcher m;/* LABEL string matcher */
};

struct lgd_logsel {
    struct lgd_matcher *m;   /* stream selector */
    size_t nm;
    struct lgd_stage *st;    /* pipeline in order */
    size_t nst;
    int has_parser;          /* json/logfmt present: labels can change per entry */
    char *unwrap;            /* | unwrap <label> (owned), or NULL */
};

enum lgd_expr_kind { LGD_E_LOG, LGD_E_RANGE, LGD_E_VAGG, LGD_E_BIN, LGD_E_NUM, LGD_E_VECTOR };

enum lgd_range_fn {
    LGD_R_COUNT, LGD_R_RATE, LGD_R_BYTES, LGD_R_BYTES_RATE, LGD_R_ABSENT,
    LGD_R_SUM, LGD_R_AVG, LGD_R_MIN, LGD_R_MAX, LGD_R_FIRST, LGD_R_LAST,
    LGD_R_STDDEV, LGD_R_STDVAR, LGD_R_RATE_COUNTER,
};

enum lgd_vagg_op {
    LGD_A_SUM, LGD_A_AVG, LGD_A_MIN, LGD_A_MAX, LGD_A_COUNT, LGD_A_STDDEV, LGD_A_STDVAR,
    LGD_A_TOPK, LGD_A_BOTTOMK,
};

enum lgd_binop {
    LGD_B_OR, LGD_B_AND, LGD_B_UNLESS,
    LGD_B_EQ, LGD_B_NE, LGD_B_GT, LGD_B_GE, LGD_B_LT, LGD_B_LE,
    LGD_B_ADD, LGD_B_SUB, LGD_B_MUL, LGD_B_DIV, LGD_B_MOD, LGD_B_POW,
};

struct lgd_expr {
    enum lgd_expr_kind kind;
    struct lgd_logsel log;   /* LOG, RANGE */
    int fn;                  /* RANGE: enum lgd_range_fn */
    int64_t range_ns;        /* RANGE */
    int64_t offset_ns;       /* RANGE */
    int op;                  /* VAGG: enum lgd_vagg_op; BIN: enum lgd_binop */
    int without;             /* VAGG grouping: 1 = without, 0 = by */
    int has_grp;             /* VAGG: a by/without clause was given */
    char **grp;              /* VAGG grouping labels (owned) */
    size_t ngrp;
    double param;            /* VAGG topk/bottomk k */
    int bool_mod;            /* BIN comparison with `bool` */
    struct lgd_expr *a, *b;  /* BIN operands; VAGG: a */
    double num;              /* NUM, VECTOR */
};

/* Parse a LogQL query. *out is owned by the caller (lgd_expr_free). Returns 0 or OBS_EINVAL
 * (err->msg holds the Loki-shaped message) / OBS_ENOMEM. */
int lgd_logql_parse(const char *q, struct lgd_expr **out, struct obs_err *err);
void lgd_expr_free(struct lgd_expr *e); /* NULL is fine */

/* True when the expression returns log lines (a LOG node) rather than samples. */
int lgd_expr_is_log(const struct lgd_expr *e);

/* Parse a push stream's label text `{a="b", c="d"}`: only `=` is allowed; names must be
 * valid and unique; at least one pair. *out (sorted by name, strings owned) is freed with
 * lgd_labels_free. Returns 0 or OBS_EINVAL with err->msg set to the reason (the caller
 * wraps it in Loki's "error parsing labels" message). */
int lgd_logql_parse_labels(const char *s, size_t len, struct obs_label **out, size_t *n,
                           struct obs_err *err);
void lgd_labels_free(struct obs_label *v, size_t n);

/* Unquote a Go string literal ("..." with escapes, or `raw`) at s. *out is obs_malloc'd,
 * *outlen its length (may contain NULs), *consumed the input bytes. Returns 0 or OBS_EINVAL. */
int lgd_go_unquote(const char *s, size_t len, char **out, size_t *outlen, size_t *consumed);

/* Lex a Go-style duration ("5m", "1h30m", "1.5s", "250ms") at s into *ns. Returns the
 * bytes used (the whole duration), or 0 when s does not start with one. */
size_t lgd_duration_lex(const char *s, size_t len, int64_t *ns);

#endif
