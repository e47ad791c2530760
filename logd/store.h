/*
 * store.h -- logd's in-memory log store: tenants, streams, entries, inverted index.
 *
 * A tenant holds streams keyed by the hash of their sorted label set. Each stream keeps its
 * entries sorted by timestamp (out-of-order pushes are inserted in place, as Loki 2.4+
 * accepts them); an exact duplicate (same timestamp and line) is dropped, as Loki does.
 * Entries are plain sorted arrays per stream for now (no lz4 blocks yet); the inverted index maps
 * "name\xffvalue" to the ids of the streams carrying that pair, for selection by matchers.
 * Everything is owned by the store and freed by lgd_store_free. Not thread-safe: the store
 * lives on the loop thread.
 */
#ifndef LGD_STORE_H
#define LGD_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "core/obs_err.h"
#include "core/obs_sbuf.h"
#include "labels/obs_labels.h"
#include "logd/map.h"

/* --- matchers (=, !=, =~, !~); regexes fully anchored, PCRE2 --- */
enum lgd_mtype { LGD_M_EQ, LGD_M_NEQ, LGD_M_RE, LGD_M_NRE };

struct lgd_matcher {
    enum lgd_mtype type;
    char *name;  /* owned */
    char *value; /* owned */
    void *re;    /* pcre2_code * (RE/NRE) */
    void *md;    /* pcre2_match_data * */
};

/* Compile a matcher. Returns 0 or OBS_EINVAL ("error parsing regexp: ...") / OBS_ENOMEM. */
int lgd_matcher_init(struct lgd_matcher *m, enum lgd_mtype type, const char *name,
                     const char *value, struct obs_err *err);
void lgd_matcher_deinit(struct lgd_matcher *m);
/* Does value (NULL = absent = "") satisfy m? */
int lgd_matcher_matches(const struct lgd_matcher *m, const char *value);

/* --- store --- */
struct lgd_entry {
    int64_t ts;      /* Unix ns */
    uint32_t len;    /* line length */
    uint32_t nmeta;  /* structured metadata pairs after the line */
    char *data;      /* owned: line, NUL, then nmeta x (name NUL value NUL) */
};

struct lgd_stream {
    uint32_t id;               /* index in the tenant's stream table */
    uint64_t hash;             /* lgd_labels_hash of the sorted labels */
    struct obs_label *labels;  /* sorted by name, owned strings */
    size_t nlabels;
    char *lstr;                /* canonical text {a="b", c="d"} (owned) */
    struct lgd_entry *e;       /* sorted by ts */
    size_t n, cap;
    int64_t mint, maxt;        /* time range of entries (valid when n > 0) */
    uint64_t bytes;            /* sum of line lengths */
    struct lgd_stream *next_same_hash;
};

struct lgd_tenant {
    char *name;
    struct lgd_stream **streams;
    size_t nstreams, cap;
    struct lgd_map by_hash; /* u64 hash -> first stream */
    struct lgd_map index;   /* "name\xffvalue" -> struct lgd_postings * */
    uint64_t entries, bytes;
};

struct lgd_store {
    struct lgd_map tenants; /* name -> struct lgd_tenant * */
};

struct lgd_store *lgd_store_new(void);
void lgd_store_free(struct lgd_store *s); /* NULL is fine */

/* Tenant by name; created when create != 0. NULL when absent or on OOM. */
struct lgd_tenant *lgd_store_tenant(struct lgd_store *s, const char *name, int create);

/* 64-bit hash of a sorted label set. */
uint64_t lgd_labels_hash(const struct obs_label *v, size_t n);
/* Canonical text of a sorted label set into out: {a="b", c="d"} (Go-quoted values). */
int lgd_labels_format(const struct obs_label *v, size_t n, struct obs_sbuf *out);

/* Stream for a sorted label set (labels copied when created). NULL on OOM, or when absent
 * and create == 0. */
struct lgd_stream *lgd_tenant_stream(struct lgd_tenant *t, const struct obs_label *sorted,
                                     size_t n, int create);

/* Append an entry (data copied). meta may be NULL. Returns 0, OBS_EEXIST for an exact
 * duplicate (dropped), or OBS_ENOMEM. */
int lgd_stream_append(struct lgd_tenant *t, struct lgd_stream *st, int64_t ts,
                      const char *line, size_t len, const struct obs_label *meta,
                      size_t nmeta);
/* First entry index with ts >= t (n when none). */
size_t lgd_stream_lower_bound(const struct lgd_stream *st, int64_t ts);
/* Structured metadata pair i of entry e. */
void lgd_entry_meta(const struct lgd_entry *e, uint32_t i, const char **name, const char **value);

/* Streams matching every matcher with entries overlapping [mint, maxt] (inclusive).
 * *out is obs_malloc'd (caller frees), sorted by id. Returns the count, or -1 on OOM. */
long lgd_tenant_select(struct lgd_tenant *t, const struct lgd_matcher *m, size_t nm,
                       int64_t mint, int64_t maxt, struct lgd_stream ***out);

#endif
