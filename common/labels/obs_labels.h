/*
 * obs_labels.h -- label sets and label matchers shared by metricsd, logd and agentd.
 *
 * Label names follow the Prometheus data model ([a-zA-Z_][a-zA-Z0-9_]*; names starting with
 * "__" are reserved). Matchers are =, !=, =~, !~; regexes are PCRE2, fully anchored
 * (^(?:re)$) as Prometheus does. A missing label matches as the empty string.
 */
#ifndef OBS_LABELS_H
#define OBS_LABELS_H

#include <stddef.h>
#include <stdint.h>

#include "core/obs_err.h"

struct obs_label {
    const char *name;
    const char *value;
};

/* Valid Prometheus label name? */
int obs_label_name_valid(const char *s, size_t n);
/* Valid metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)? */
int obs_metric_name_valid(const char *s, size_t n);
/* Check a label set as remote write requires: names valid, sorted by name, no duplicate
 * names, no empty values. Returns 0 or OBS_EINVAL with a Prometheus-style message in err. */
int obs_labels_check(const struct obs_label *v, size_t n, struct obs_err *err);
/* Sort in place by name. */
void obs_labels_sort(struct obs_label *v, size_t n);
/* 64-bit xxh3 hash of a sorted label set (name\xff value\xff ...). */
uint64_t obs_labels_hash(const struct obs_label *v, size_t n);
/* Value of name, or NULL. */
const char *obs_labels_get(const struct obs_label *v, size_t n, const char *name);

enum obs_match_type { OBS_MATCH_EQ, OBS_MATCH_NEQ, OBS_MATCH_RE, OBS_MATCH_NRE };

struct obs_matcher {
    enum obs_match_type type;
    char *name;  /* owned */
    char *value; /* owned */
    void *re;    /* pcre2_code * for RE/NRE */
    void *md;    /* pcre2_match_data * */
};

/* Initialise m; compiles the regex fully anchored. Returns 0 or OBS_EINVAL with err set
 * ("error parsing regexp: ..."). */
int obs_matcher_init(struct obs_matcher *m, enum obs_match_type type, const char *name,
                     const char *value, struct obs_err *err);
void obs_matcher_deinit(struct obs_matcher *m);
/* Does value (NULL = label absent = "") satisfy m? Not thread-safe for regex matchers
 * (they share match data); use one matcher set per thread. */
int obs_matcher_matches(const struct obs_matcher *m, const char *value);
/* True if m matches the empty string (so series without the label match). */
int obs_matcher_matches_empty(const struct obs_matcher *m);

/* Parse a selector body `{a="b", c=~"d"}` starting at s[0] == '{'. Allocates *out (obs_free
 * after deinit of each). On success *consumed is the bytes used including '}'.
 * Strings use Go/PromQL quoting ("..", '..', `..`). Returns 0 or OBS_EINVAL with err set. */
int obs_matchers_parse(const char *s, size_t len, struct obs_matcher **out, size_t *n,
                       size_t *consumed, struct obs_err *err);
void obs_matchers_free(struct obs_matcher *v, size_t n);

/* Parse a whole series selector as the Prometheus API's match[] takes it: `name`,
 * `name{...}` or `{...}` (surrounding whitespace allowed, nothing else). The metric name
 * becomes a leading __name__="name" matcher. At least one matcher must not match the empty
 * string ("vector selector must contain at least one non-empty matcher"). *out as
 * obs_matchers_parse (free with obs_matchers_free). Returns 0 or OBS_EINVAL/ENOMEM with err. */
int obs_selector_parse(const char *s, size_t len, struct obs_matcher **out, size_t *n,
                       struct obs_err *err);

/* Parse a Go-quoted string literal at s (", ' or `); writes the unquoted value into *out
 * (obs_malloc'd) and the bytes consumed. Returns 0 or OBS_EINVAL. */
int obs_go_unquote(const char *s, size_t len, char **out, size_t *consumed);

#endif
