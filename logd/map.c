/*
 * map.c -- open-addressing hash map with copied byte-string keys (see map.h).
 *
 * Load factor is kept under 0.7; deletion is not supported (logd never removes streams or
 * index entries while running, which keeps probing simple).
 */
#include "logd/map.h"

#include <string.h>
#include <xxhash.h>

#include "core/obs_err.h"
#include "core/obs_mem.h"

uint64_t lgd_hash(const void *p, size_t n) { return XXH3_64bits(p, n); }

void lgd_map_init(struct lgd_map *m) { memset(m, 0, sizeof(*m)); }

void lgd_map_deinit(struct lgd_map *m)
{
    for (size_t i = 0; i < m->cap; i++)
        obs_free(m->slots[i].key);
    obs_free(m->slots);
    memset(m, 0, sizeof(*m));
}

static struct lgd_map_slot *find(const struct lgd_map *m, const void *key, size_t klen,
                                 uint64_t h)
{
    if (m->cap == 0)
        return NULL;
    size_t mask = m->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        struct lgd_map_slot *s = &m->slots[i];
        if (!s->key)
            return s;
        if (s->hash == h && s->klen == klen && memcmp(s->key, key, klen) == 0)
            return s;
    }
}

static int grow(struct lgd_map *m)
{
    size_t ncap = m->cap ? m->cap * 2 : 16;
    struct lgd_map_slot *ns = obs_calloc(ncap, sizeof(*ns));
    if (!ns)
        return OBS_ENOMEM;
    for (size_t i = 0; i < m->cap; i++) {
        struct lgd_map_slot *s = &m->slots[i];
        if (!s->key)
            continue;
        size_t j = s->hash & (ncap - 1);
        while (ns[j].key)
            j = (j + 1) & (ncap - 1);
        ns[j] = *s;
    }
    obs_free(m->slots);
    m->slots = ns;
    m->cap = ncap;
    return 0;
}

void *lgd_map_get(const struct lgd_map *m, const void *key, size_t klen)
{
    struct lgd_map_slot *s = find(m, key, klen, lgd_hash(key, klen));
    return (s && s->key) ? s->val : NULL;
}

void **lgd_map_slot(struct lgd_map *m, const void *key, size_t klen)
{
    uint64_t h = lgd_hash(key, klen);
    struct lgd_map_slot *s = find(m, key, klen, h);
    if (s && s->key)
        return &s->val;
    if ((m->n + 1) * 10 >= m->cap * 7) {
        if (grow(m) != 0)
            return NULL;
    }
    s = find(m, key, klen, h);
    char *k = obs_malloc(klen + 1);
    if (!k)
        return NULL;
    memcpy(k, key, klen);
    k[klen] = '\0';
    s->key = k;
    s->klen = klen;
    s->hash = h;
    s->val = NULL;
    m->n++;
    return &s->val;
}

int lgd_map_put(struct lgd_map *m, const void *key, size_t klen, void *val)
{
    void **slot = lgd_map_slot(m, key, klen);
    if (!slot)
        return OBS_ENOMEM;
    *slot = val;
    return 0;
}
