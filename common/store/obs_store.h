/*
 * obs_store.h -- object storage behind one vtable.
 *
 * Keys are '/'-separated ("tenant/01HXYZ.../meta.json"). Backends: "filesystem" (a directory,
 * the embedded default). Callers never branch on the backend. Objects are written atomically
 * (readers never see a partial object). Thread-safe for concurrent calls.
 */
#ifndef OBS_STORE_H
#define OBS_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "config/obs_cf.h"
#include "core/obs_err.h"
#include "core/obs_sbuf.h"

struct obs_store;

struct obs_store_ops {
    const char *name;
    int (*put)(struct obs_store *s, const char *key, const void *data, size_t len,
               struct obs_err *err);
    /* off/len select a range; len 0 = to the end. Appends into out. OBS_ENOENT if absent. */
    int (*get)(struct obs_store *s, const char *key, uint64_t off, uint64_t len,
               struct obs_sbuf *out, struct obs_err *err);
    /* Size of an object, OBS_ENOENT if absent. */
    int (*head)(struct obs_store *s, const char *key, uint64_t *size, struct obs_err *err);
    /* List keys under prefix. With delim "/", keys are cut after the first '/' following the
     * prefix and returned once (common prefixes, ending in '/'). fn returns non-zero to stop. */
    int (*list)(struct obs_store *s, const char *prefix, const char *delim,
                int (*fn)(const char *key, void *arg), void *arg, struct obs_err *err);
    int (*del)(struct obs_store *s, const char *key, struct obs_err *err); /* absent is OK */
    void (*close)(struct obs_store *s);
};

struct obs_store {
    const struct obs_store_ops *ops;
    void *impl;
};

/* Open a backend from a config node shaped like Mimir's blocks_storage/common storage:
 *   backend: filesystem        filesystem: { dir: ./data/blocks }
 * cfg may be NULL (filesystem at default_dir). Returns NULL with err set. */
struct obs_store *obs_store_open(const struct obs_cf_node *cfg, const char *default_dir,
                                 struct obs_err *err);
/* Filesystem backend rooted at dir (created if missing). */
struct obs_store *obs_store_fs_open(const char *dir, struct obs_err *err);
void obs_store_close(struct obs_store *s);

static inline int obs_store_put(struct obs_store *s, const char *k, const void *d, size_t n,
                                struct obs_err *e) { return s->ops->put(s, k, d, n, e); }
static inline int obs_store_get(struct obs_store *s, const char *k, uint64_t off, uint64_t len,
                                struct obs_sbuf *out, struct obs_err *e)
{ return s->ops->get(s, k, off, len, out, e); }
static inline int obs_store_head(struct obs_store *s, const char *k, uint64_t *sz,
                                 struct obs_err *e) { return s->ops->head(s, k, sz, e); }
static inline int obs_store_list(struct obs_store *s, const char *p, const char *d,
                                 int (*fn)(const char *, void *), void *a, struct obs_err *e)
{ return s->ops->list(s, p, d, fn, a, e); }
static inline int obs_store_del(struct obs_store *s, const char *k, struct obs_err *e)
{ return s->ops->del(s, k, e); }

#endif
