/*
 * obs_cf.h -- YAML configuration: a generic tree with positions, then typed tables.
 *
 * libyaml reads the file into a tree of obs_cf_node that keeps each node's file/line/col.
 * Components declare `static const struct obs_cfmap map[]` tables and call obs_cf_bind(),
 * which validates types, applies defaults, and fails on unknown keys with
 * "file:line:col: key: reason" in err. Flags override the tree before binding
 * (obs_cf_set_path). The tree is immutable after loading and lives as long as the process;
 * OBS_CFT_NODE fields borrow pointers into it. Not thread-safe while loading; read-only after.
 */
#ifndef OBS_CF_H
#define OBS_CF_H

#include <stddef.h>
#include <stdint.h>

#include "core/obs_err.h"

enum obs_cf_type { OBS_CF_NULL = 0, OBS_CF_SCALAR, OBS_CF_MAP, OBS_CF_SEQ };

struct obs_cf_node {
    enum obs_cf_type type;
    char *key;            /* key when this node is a map value, else NULL */
    char *value;          /* scalar text (NULL for maps, seqs and null) */
    int quoted;           /* scalar was quoted in YAML */
    const char *file;     /* borrowed from the root */
    int line, col;        /* 1-based position of the value */
    int key_line, key_col;
    struct obs_cf_node **items; /* map values (each with key) or seq items */
    size_t n;
};

/* Load a YAML file. With expand_env, ${VAR} and ${VAR:-default} are replaced before parsing
 * (as -config.expand-env does). Returns a tree owned by the caller (obs_cf_free) or NULL with
 * err set ("file:line:col: reason"). An empty file yields an empty map. */
struct obs_cf_node *obs_cf_load_file(const char *path, int expand_env, struct obs_err *err);
/* Same from a string; name is used in error messages. */
struct obs_cf_node *obs_cf_load_string(const char *text, size_t len, const char *name,
                                       int expand_env, struct obs_err *err);
void obs_cf_free(struct obs_cf_node *root);

/* Child of a map by key, or NULL (also when map is NULL or not a map). Borrowed. */
const struct obs_cf_node *obs_cf_get(const struct obs_cf_node *map, const char *key);
/* Set a dotted path ("server.http_listen_port") to a scalar, creating maps as needed.
 * Used for command-line flags. Returns 0 or an error code with err set. */
int obs_cf_set_path(struct obs_cf_node *root, const char *path, const char *value,
                    struct obs_err *err);

/* Typed scalar readers: fill *out or set err (with the node's position) and return
 * OBS_EINVAL. Durations are Prometheus durations in milliseconds; sizes accept 4MB, 1GiB,
 * 512KiB, or plain bytes. */
int obs_cf_str(const struct obs_cf_node *n, const char **out, struct obs_err *err);
int obs_cf_int(const struct obs_cf_node *n, int64_t *out, struct obs_err *err);
int obs_cf_bool(const struct obs_cf_node *n, int *out, struct obs_err *err);
int obs_cf_float(const struct obs_cf_node *n, double *out, struct obs_err *err);
int obs_cf_duration(const struct obs_cf_node *n, int64_t *out_ms, struct obs_err *err);
int obs_cf_bytes(const struct obs_cf_node *n, int64_t *out, struct obs_err *err);
/* Set err to "file:line:col: key: reason" for node n (key may be NULL: n->key is used). */
int obs_cf_error(struct obs_err *err, const struct obs_cf_node *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A list of owned strings (OBS_CFT_STRLIST). */
struct obs_strlist {
    char **v;
    size_t n;
};

enum obs_cfmap_type {
    OBS_CFT_STR,      /* char * (owned; freed by obs_cf_unbind) */
    OBS_CFT_INT,      /* int64_t */
    OBS_CFT_BOOL,     /* int */
    OBS_CFT_FLOAT,    /* double */
    OBS_CFT_DURATION, /* int64_t milliseconds */
    OBS_CFT_BYTES,    /* int64_t bytes */
    OBS_CFT_STRLIST,  /* struct obs_strlist (a scalar is a one-item list) */
    OBS_CFT_SECTION,  /* nested map bound with .sub into base + off */
    OBS_CFT_NODE,     /* const struct obs_cf_node * (borrowed; NULL when absent) */
    OBS_CFT_CUSTOM,   /* .custom(node, base + off, err) when present */
    OBS_CFT_IGNORE,   /* accepted and ignored (documented as such) */
};

struct obs_cfmap {
    const char *key;
    enum obs_cfmap_type type;
    const char *def; /* default as YAML scalar text, or NULL */
    size_t off;      /* offsetof into the bound struct */
    const char *help;
    const struct obs_cfmap *sub; /* OBS_CFT_SECTION */
    int (*custom)(const struct obs_cf_node *n, void *dst, struct obs_err *err);
};
/* Tables end with an entry whose key is NULL. */

/* Bind map (may be NULL: defaults only) into base using table. Unknown keys fail. Returns 0 or
 * an error code with err set to "file:line:col: key: reason". */
int obs_cf_bind(const struct obs_cf_node *map, const struct obs_cfmap *table, void *base,
                struct obs_err *err);
/* Free what obs_cf_bind allocated in base (strings, string lists, nested sections). */
void obs_cf_unbind(const struct obs_cfmap *table, void *base);

#endif
