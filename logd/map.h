/*
 * map.h -- logd's byte-string keyed hash map (open addressing, linear probing).
 *
 * Used for tenants by name, streams by label hash, the inverted index (name\xffvalue ->
 * postings) and series grouping in the query engine. Keys are copied into the map; values
 * are borrowed void pointers the caller owns. Not thread-safe: logd's state lives on the
 * loop thread.
 */
#ifndef LGD_MAP_H
#define LGD_MAP_H

#include <stddef.h>
#include <stdint.h>

struct lgd_map_slot {
    char *key;      /* owned copy, NUL-terminated for convenience; NULL = empty slot */
    size_t klen;
    uint64_t hash;
    void *val;
};

struct lgd_map {
    struct lgd_map_slot *slots;
    size_t cap;     /* power of two, 0 before the first insert */
    size_t n;
};

/* Embedded lifecycle. deinit frees the keys, not the values. */
void lgd_map_init(struct lgd_map *m);
void lgd_map_deinit(struct lgd_map *m);
/* Value for key, or NULL. */
void *lgd_map_get(const struct lgd_map *m, const void *key, size_t klen);
/* Insert or replace. Returns 0 or OBS_ENOMEM (map unchanged). */
int lgd_map_put(struct lgd_map *m, const void *key, size_t klen, void *val);
/* Pointer to the value slot for key, inserting NULL when absent (so callers can fill it).
 * Returns NULL on OOM. The pointer is valid until the next insert. */
void **lgd_map_slot(struct lgd_map *m, const void *key, size_t klen);
/* 64-bit hash used by the map (xxh3). */
uint64_t lgd_hash(const void *p, size_t n);

/* Iterate: for (size_t i = 0; i < m->cap; i++) if (m->slots[i].key) ... */

#endif
