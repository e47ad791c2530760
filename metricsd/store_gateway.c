/*
 * store_gateway.c -- metricsd's store-gateway component: serves series from the TSDB blocks
 * in the object store (see blocks.h).
 *
 * Bucket index: per tenant, the blocks listed under <tenant>/ whose meta.json exists (a block
 * without it is still being uploaded or being deleted), minus those whose deletion-mark.json
 * is older than bucket_store.ignore_deletion_mark_delay. The index is rebuilt every
 * bucket_store.sync_interval, and at the next read after this process uploaded or compacted
 * blocks (mtd_store_gateway_invalidate).
 *
 * Lazy loading: a block is opened on the first query that overlaps its time range. Its
 * meta.json and index are downloaded once into bucket_store.sync_dir/<tenant>/<ULID>/ (kept
 * across restarts, removed when the block leaves the bucket); chunks are never downloaded
 * whole: the reader asks for byte ranges (range GET of chunks/NNNNNN), which go through a
 * chunk cache bounded by bucket_store.chunks_cache.max_size_bytes (LRU by bytes).
 *
 * Damage: a chunk or series entry whose CRC does not match is reported (log, warning in the
 * query's reply, mtd_sg_corrupt_chunks_total) and skipped; a block whose index cannot be
 * opened is skipped with a warning. Nothing here aborts a query for bad block data.
 *
 * Config (`blocks_storage.bucket_store:`, Mimir's keys):
 *   sync_dir: ./data/metricsd/tsdb-sync       sync_interval: 15m
 *   ignore_deletion_mark_delay: 1h            chunks_cache: {max_size_bytes: 256MiB}
 * Loop thread only.
 */
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "core/obs_log.h"
#include "core/obs_mem.h"
#include "core/obs_sbuf.h"
#include "core/obs_time.h"
#include "metrics/obs_metrics.h"
#include "metricsd/blocks.h"
#include "metricsd/metricsd.h"
#include "metricsd/tsdb/block_read.h"
#include "metricsd/tsdb/block_write.h"
#include "store/obs_store.h"

#define PAGE (16 * 1024) /* chunk segments are cached in pages of this size */
#define PREFETCH_PAGES 4 /* pages fetched by one range GET on a miss */

struct chunks_cache_cfg {
    int64_t max_size_bytes;
};

struct sg_cfg {
    char *sync_dir;
    int64_t sync_interval_ms;
    int64_t ignore_deletion_mark_delay_ms;
    struct chunks_cache_cfg chunks_cache;
};

static const struct obs_cfmap cache_map[] = {
    {"max_size_bytes", OBS_CFT_BYTES, "256MiB", offsetof(struct chunks_cache_cfg, max_size_bytes),
     "Chunk cache size (LRU by bytes)", NULL, NULL},
    {"backend", OBS_CFT_IGNORE, NULL, 0, "accepted; the cache is in memory", NULL, NULL},
    {NULL, 0, NULL, 0, NULL, NULL, NULL},
};

static const struct obs_cfmap sg_map[] = {
    {"sync_dir", OBS_CFT_STR, "./data/metricsd/tsdb-sync", offsetof(struct sg_cfg, sync_dir),
     "Local cache of block meta.json and index files", NULL, NULL},
    {"sync_interval", OBS_CFT_DURATION, "15m", offsetof(struct sg_cfg, sync_interval_ms),
     "How often the bucket index is rebuilt", NULL, NULL},
    {"ignore_deletion_mark_delay", OBS_CFT_DURATION, "1h",
     offsetof(struct sg_cfg, ignore_deletion_mark_delay_ms),
     "Blocks marked for deletion longer ago than this are no longer queried", NULL, NULL},
    {"chunks_cache", OBS_CFT_SECTION, NULL, offsetof(struct sg_cfg, chunks_cache), "Chunk cache",
     cache_map, NULL},
    {"index_cache", OBS_CFT_IGNORE, NULL, 0, "accepted", NULL, NULL},
    {"metadata_cache", OBS_CFT_IGNORE, NULL, 0, "accepted", NULL, NULL},
    {"index_header", OBS_CFT_IGNORE, NULL, 0, "accepted", NULL, NULL},
    {"max_concurrent", OBS_CFT_IGNORE, NULL, 0, "accepted", NULL, NULL},
    {"tenant_sync_concurrency", OBS_CFT_IGNORE, NULL, 0, "accepted", NULL, NULL},
    {"block_sync_concurrency", OBS_CFT_IGNORE, NULL, 0, "accepted", NULL, NULL},
    {"meta_sync_concurrency", OBS_CFT_IGNORE, NULL, 0, "accepted", NULL, NULL},
    {NULL, 0, NULL, 0, NULL, NULL, NULL},
};

/* ---- chunk cache: LRU by bytes ---------------------------------------------------------- */

struct centry {
    char *key;
    uint64_t h;
    uint8_t *data;
    size_t len;
    struct centry *prev, *next; /* LRU list, head = most recent */
    struct centry *hnext;
};

struct ccache {
    struct centry **ht;
    size_t htcap, n;
    struct centry *head, *tail;
    size_t bytes, max;
};

static struct centry *cc_find(struct ccache *c, const char *key, uint64_t h)
{
    if (c->ht == NULL)
        return NULL;
    for (struct centry *e = c->ht[h & (c->htcap - 1)]; e; e = e->hnext)
        if (e->h == h && strcmp(e->key, key) == 0)
            return e;
    return NULL;
}

static void cc_unlink(struct ccache *c, struct centry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        c->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        c->tail = e->prev;
    e->prev = e->next = NULL;
}

static void cc_front(struct ccache *c, struct centry *e)
{
    e->next = c->head;
    e->prev = NULL;
    if (c->head)
        c->head->prev = e;
    c->head = e;
    if (c->tail == NULL)
        c->tail = e;
}

static void cc_remove(struct ccache *c, struct centry *e)
{
    struct centry **pp = &c->ht[e->h & (c->htcap - 1)];
    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    cc_unlink(c, e);
    c->bytes -= e->len;
    c->n--;
    obs_free(e->key);
    obs_free(e->data);
    obs_free(e);
}

static int cc_grow(struct ccache *c)
{
    size_t nc = c->htcap ? c->htcap * 2 : 1024;
    struct centry **nh = obs_calloc(nc, sizeof *nh);
    if (nh == NULL)
        return OBS_ENOMEM;
    for (size_t i = 0; i < c->htcap; i++) {
        struct centry *e = c->ht[i], *nx;
        for (; e; e = nx) {
            nx = e->hnext;
            e->hnext = nh[e->h & (nc - 1)];
            nh[e->h & (nc - 1)] = e;
        }
    }
    obs_free(c->ht);
    c->ht = nh;
    c->htcap = nc;
    return 0;
}

/* Insert (taking ownership of data); evicts least recently used entries beyond max, never
 * the new one. Returns the entry or NULL on OOM (data freed). */
static struct centry *cc_put(struct ccache *c, const char *key, uint64_t h, uint8_t *data,
                             size_t len)
{
    struct centry *old = cc_find(c, key, h);
    if (old)
        cc_remove(c, old);
    if ((c->n + 1 > c->htcap && cc_grow(c) != 0) || c->ht == NULL) {
        obs_free(data);
        return NULL;
    }
    struct centry *e = obs_calloc(1, sizeof *e);
    if (e == NULL || (e->key = obs_strdup(key)) == NULL) {
        obs_free(e);
        obs_free(data);
        return NULL;
    }
    e->h = h;
    e->data = data;
    e->len = len;
    e->hnext = c->ht[h & (c->htcap - 1)];
    c->ht[h & (c->htcap - 1)] = e;
    cc_front(c, e);
    c->bytes += len;
    c->n++;
    while (c->bytes > c->max && c->tail != NULL && c->tail != e)
        cc_remove(c, c->tail);
    return e;
}

static void cc_free(struct ccache *c)
{
    while (c->head)
        cc_remove(c, c->head);
    obs_free(c->ht);
    c->ht = NULL;
    c->htcap = 0;
}

/* ---- bucket index ----------------------------------------------------------------------- */

struct sg_tenant;

struct sg_block {
    char ulid[27];
    int64_t mint, maxt; /* maxt exclusive */
    int level;
    struct sg_tenant *t;
    struct mtd_store_gateway *sg;
    struct mtd_tsdb_block *b; /* opened lazily */
    char *failed;             /* why it could not be opened (then skipped) */
    uint64_t *seg_len;        /* chunk segment sizes */
    size_t nsegs;
    int seen; /* sync bookkeeping */
};

struct sg_tenant {
    char *name;
    struct sg_block **v;
    size_t n;
    int seen;
};

struct mtd_store_gateway {
    struct obs_ctx *ctx;
    struct mtd_blocks *blocks;
    struct sg_cfg cfg;
    struct sg_tenant **tenants;
    size_t ntenants;
    int64_t last_sync_ms;
    int stale;
    struct ccache cache;
    struct event *timer;
    struct mtd_warnings *w;  /* the current select's warnings */
    struct obs_sbuf scratch; /* chunk bytes spanning pages (chunk_read) */
    struct mtd_sg_stats st;
};

static void block_free(struct sg_block *b)
{
    if (b == NULL)
        return;
    mtd_tsdb_block_close(b->b);
    obs_free(b->seg_len);
    obs_free(b->failed);
    obs_free(b);
}

static void tenant_free(struct sg_tenant *t)
{
    for (size_t i = 0; i < t->n; i++)
        block_free(t->v[i]);
    obs_free(t->v);
    obs_free(t->name);
    obs_free(t);
}

/* Names safe as one path component (tenants and ULIDs come from the bucket listing). */
static int name_ok(const char *s, size_t n)
{
    if (n == 0 || n > 150 || s[0] == '.')
        return 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] == '/' || s[i] == '\0')
            return 0;
    return 1;
}

struct names {
    char **v;
    size_t n;
    size_t skip; /* prefix length to cut */
    int oom;
};

/* Collect "<prefix>NAME/" common prefixes as NAME. */
static int collect_dir(const char *key, void *arg)
{
    struct names *l = arg;
    size_t kl = strlen(key);
    if (kl <= l->skip || key[kl - 1] != '/')
        return 0;
    const char *s = key + l->skip;
    size_t n = kl - l->skip - 1;
    if (!name_ok(s, n))
        return 0;
    char **nv = obs_realloc(l->v, (l->n + 1) * sizeof *nv);
    if (nv == NULL || (nv[l->n] = obs_strndup(s, n)) == NULL) {
        if (nv)
            l->v = nv;
        l->oom = 1;
        return 1;
    }
    l->v = nv;
    l->n++;
    return 0;
}

static void names_free(struct names *l)
{
    for (size_t i = 0; i < l->n; i++)
        obs_free(l->v[i]);
    obs_free(l->v);
}

/* Parse a JSON object from the store. NULL when absent or unparsable. */
static json_t *get_json(struct mtd_store_gateway *sg, const char *key, int *absent,
                        struct obs_err *err)
{
    struct obs_sbuf b;
    obs_sbuf_init(&b);
    *absent = 0;
    int rc = obs_store_get(sg->blocks->store, key, 0, 0, &b, err);
    json_t *j = NULL;
    if (rc == OBS_ENOENT)
        *absent = 1;
    else if (rc == 0)
        j = json_loadb(b.p ? b.p : "", b.len, 0, NULL);
    obs_sbuf_deinit(&b);
    return j;
}

/* Is the block hidden by a deletion mark older than the delay? */
static int block_marked(struct mtd_store_gateway *sg, const char *tenant, const char *ulid)
{
    char key[512];
    struct obs_err e = {0};
    int absent;
    snprintf(key, sizeof key, "%s/%s/deletion-mark.json", tenant, ulid);
    json_t *j = get_json(sg, key, &absent, &e);
    if (j == NULL)
        return !absent && e.code == 0; /* unreadable mark: treat as marked */
    int64_t at = json_integer_value(json_object_get(j, "deletion_time"));
    json_decref(j);
    return obs_now_ms() - at * 1000 >= sg->cfg.ignore_deletion_mark_delay_ms;
}

static struct sg_block *block_find(struct sg_tenant *t, const char *ulid)
{
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->v[i]->ulid, ulid) == 0)
            return t->v[i];
    return NULL;
}

static int cmp_block(const void *a, const void *b)
{
    const struct sg_block *x = *(struct sg_block *const *)a, *y = *(struct sg_block *const *)b;
    if (x->mint != y->mint)
        return x->mint < y->mint ? -1 : 1;
    return strcmp(x->ulid, y->ulid);
}

static void local_dir(const struct mtd_store_gateway *sg, const char *tenant, const char *ulid,
                      char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s/%s", sg->cfg.sync_dir, tenant, ulid);
}

static int sync_tenant(struct mtd_store_gateway *sg, struct sg_tenant *t, struct obs_err *err)
{
    char prefix[300];
    snprintf(prefix, sizeof prefix, "%s/", t->name);
    struct names l = {.skip = strlen(prefix)};
    int rc = obs_store_list(sg->blocks->store, prefix, "/", collect_dir, &l, err);
    if (rc == 0 && l.oom)
        rc = obs_err_set(err, OBS_ENOMEM, "out of memory");
    for (size_t i = 0; i < t->n; i++)
        t->v[i]->seen = 0;
    for (size_t i = 0; rc == 0 && i < l.n; i++) {
        if (!mtd_tsdb_ulid_valid(l.v[i]))
            continue;
        struct sg_block *b = block_find(t, l.v[i]);
        if (block_marked(sg, t->name, l.v[i]))
            continue; /* a known block that got marked drops out below */
        if (b != NULL) {
            b->seen = 1;
            continue;
        }
        char key[512];
        int absent;
        struct obs_err e = {0};
        snprintf(key, sizeof key, "%s/%s/meta.json", t->name, l.v[i]);
        json_t *j = get_json(sg, key, &absent, &e);
        if (j == NULL) {
            if (!absent)
                obs_clog_warn("store-gateway", "skipping block %s: meta.json unreadable %s", key,
                              e.msg);
            continue; /* absent: partial block (upload or deletion in progress) */
        }
        json_t *mi = json_object_get(j, "minTime"), *ma = json_object_get(j, "maxTime");
        if (!json_is_integer(mi) || !json_is_integer(ma)) {
            obs_clog_warn("store-gateway", "skipping block %s: bad meta.json", key);
            json_decref(j);
            continue;
        }
        b = obs_calloc(1, sizeof *b);
        struct sg_block **nv = b ? obs_realloc(t->v, (t->n + 1) * sizeof *nv) : NULL;
        if (nv == NULL) {
            obs_free(b);
            json_decref(j);
            rc = obs_err_set(err, OBS_ENOMEM, "out of memory");
            break;
        }
        t->v = nv;
        snprintf(b->ulid, sizeof b->ulid, "%s", l.v[i]);
        b->mint = json_integer_value(mi);
        b->maxt = json_integer_value(ma);
        b->level =
            (int)json_integer_value(json_object_get(json_object_get(j, "compaction"), "level"));
        b->t = t;
        b->sg = sg;
        b->seen = 1;
        t->v[t->n++] = b;
        json_decref(j);
    }
    names_free(&l);
    if (rc != 0)
        return rc;
    size_t k = 0;
    for (size_t i = 0; i < t->n; i++) {
        struct sg_block *b = t->v[i];
        if (b->seen) {
            t->v[k++] = b;
            continue;
        }
        char dir[PATH_MAX];
        local_dir(sg, t->name, b->ulid, dir, sizeof dir);
        mtd_rm_rf(dir);
        block_free(b);
    }
    t->n = k;
    if (k > 1)
        qsort(t->v, k, sizeof *t->v, cmp_block);
    return 0;
}

static struct sg_tenant *tenant_find(struct mtd_store_gateway *sg, const char *name)
{
    for (size_t i = 0; i < sg->ntenants; i++)
        if (strcmp(sg->tenants[i]->name, name) == 0)
            return sg->tenants[i];
    return NULL;
}

static int sync_all(struct mtd_store_gateway *sg, struct obs_err *err)
{
    struct names l = {.skip = 0};
    int rc = obs_store_list(sg->blocks->store, "", "/", collect_dir, &l, err);
    if (rc == 0 && l.oom)
        rc = obs_err_set(err, OBS_ENOMEM, "out of memory");
    for (size_t i = 0; i < sg->ntenants; i++)
        sg->tenants[i]->seen = 0;
    for (size_t i = 0; rc == 0 && i < l.n; i++) {
        struct sg_tenant *t = tenant_find(sg, l.v[i]);
        if (t == NULL) {
            t = obs_calloc(1, sizeof *t);
            struct sg_tenant **nv =
                t ? obs_realloc(sg->tenants, (sg->ntenants + 1) * sizeof *nv) : NULL;
            if (nv == NULL || (t->name = obs_strdup(l.v[i])) == NULL) {
                if (nv)
                    sg->tenants = nv;
                obs_free(t);
                rc = obs_err_set(err, OBS_ENOMEM, "out of memory");
                break;
            }
            sg->tenants = nv;
            sg->tenants[sg->ntenants++] = t;
        }
        t->seen = 1;
        rc = sync_tenant(sg, t, err);
    }
    names_free(&l);
    if (rc != 0)
        return rc;
    size_t k = 0;
    for (size_t i = 0; i < sg->ntenants; i++) {
        if (sg->tenants[i]->seen)
            sg->tenants[k++] = sg->tenants[i];
        else
            tenant_free(sg->tenants[i]);
    }
    sg->ntenants = k;
    sg->last_sync_ms = obs_now_ms();
    sg->stale = 0;
    return 0;
}

static int maybe_sync(struct mtd_store_gateway *sg, struct obs_err *err)
{
    if (!sg->stale && sg->last_sync_ms != 0 &&
        obs_now_ms() - sg->last_sync_ms < sg->cfg.sync_interval_ms)
        return 0;
    return sync_all(sg, err);
}

void mtd_store_gateway_invalidate(struct mtd_store_gateway *sg)
{
    if (sg)
        sg->stale = 1;
}

/* ---- lazy block loading ----------------------------------------------------------------- */

/* Fetch pages [first, first + n) of segment seg in one range GET and cache them; the page
 * `want` is inserted last (so a small cache never evicts it on the way). */
static int pages_fetch(struct sg_block *b, uint32_t seg, uint64_t first, uint64_t n, uint64_t want,
                       struct obs_err *err)
{
    struct mtd_store_gateway *sg = b->sg;
    uint64_t seglen = b->seg_len[seg];
    uint64_t off = first * PAGE;
    uint64_t len = n * PAGE;
    if (off + len > seglen)
        len = seglen - off;
    char key[512];
    snprintf(key, sizeof key, "%s/%s/chunks/%06u", b->t->name, b->ulid, seg + 1);
    struct obs_sbuf buf;
    obs_sbuf_init(&buf);
    int rc = obs_store_get(sg->blocks->store, key, off, len, &buf, err);
    sg->st.chunk_fetches++;
    if (rc == 0 && buf.len != len)
        rc = obs_err_set(err, OBS_EIO, "store-gateway: %s: short read at %llu", key,
                         (unsigned long long)off);
    for (uint64_t k = 0; rc == 0 && k <= n; k++) {
        uint64_t pg = k < n ? first + k : want; /* want last */
        if (k < n && pg == want)
            continue;
        if (pg < first || pg >= first + n)
            continue;
        uint64_t po = (pg - first) * PAGE;
        size_t pl = (size_t)(len - po < PAGE ? len - po : PAGE);
        char ckey[560];
        snprintf(ckey, sizeof ckey, "%s#%llu", key, (unsigned long long)pg);
        uint64_t h = XXH3_64bits(ckey, strlen(ckey));
        if (pg != want && cc_find(&sg->cache, ckey, h) != NULL)
            continue;
        uint8_t *data = obs_malloc(pl ? pl : 1);
        if (data == NULL) {
            rc = obs_err_set(err, OBS_ENOMEM, "out of memory");
            break;
        }
        memcpy(data, buf.p + po, pl);
        if (cc_put(&sg->cache, ckey, h, data, pl) == NULL)
            rc = obs_err_set(err, OBS_ENOMEM, "out of memory");
    }
    obs_sbuf_deinit(&buf);
    return rc;
}

/* Page pg of segment seg: cached, else fetched with the next PREFETCH_PAGES - 1 pages. */
static int page_get(struct sg_block *b, uint32_t seg, uint64_t pg, const uint8_t **p, size_t *n,
                    struct obs_err *err)
{
    struct mtd_store_gateway *sg = b->sg;
    char ckey[560];
    snprintf(ckey, sizeof ckey, "%s/%s/chunks/%06u#%llu", b->t->name, b->ulid, seg + 1,
             (unsigned long long)pg);
    uint64_t h = XXH3_64bits(ckey, strlen(ckey));
    struct centry *e = cc_find(&sg->cache, ckey, h);
    if (e == NULL) {
        uint64_t npages = (b->seg_len[seg] + PAGE - 1) / PAGE;
        uint64_t cnt = npages - pg < PREFETCH_PAGES ? npages - pg : PREFETCH_PAGES;
        int rc = pages_fetch(b, seg, pg, cnt, pg, err);
        if (rc != 0)
            return rc;
        if ((e = cc_find(&sg->cache, ckey, h)) == NULL)
            return obs_err_set(err, OBS_ENOMEM, "out of memory");
    } else {
        cc_unlink(&sg->cache, e);
        cc_front(&sg->cache, e);
        sg->st.cache_hits++;
    }
    *p = e->data;
    *n = e->len;
    return 0;
}

/*
 * The reader's chunk source: bytes [off, off + want) of a segment from fixed-size pages
 * (PAGE, fetched PREFETCH_PAGES at a time by range GET) in the LRU cache. Within one page the
 * reply points into the cached page; across pages it is assembled in sg->scratch. Either stays
 * valid until the next call (the page just used is the most recent cache entry).
 */
static int chunk_read(void *arg, uint32_t seg, uint64_t off, size_t want, const uint8_t **p,
                      size_t *got, struct obs_err *err)
{
    struct sg_block *b = arg;
    struct mtd_store_gateway *sg = b->sg;
    if (seg >= b->nsegs || off >= b->seg_len[seg])
        return obs_err_set(err, OBS_ECORRUPT, "store-gateway: chunk reference out of range");
    if (want > b->seg_len[seg] - off)
        want = (size_t)(b->seg_len[seg] - off);
    uint64_t first = off / PAGE, last = (off + (want ? want : 1) - 1) / PAGE;
    const uint8_t *pp;
    size_t pn;
    int rc;
    if (first == last) {
        if ((rc = page_get(b, seg, first, &pp, &pn, err)) != 0)
            return rc;
        size_t in = (size_t)(off - first * PAGE);
        if (in > pn)
            return obs_err_set(err, OBS_EIO, "store-gateway: short page");
        *p = pp + in;
        *got = pn - in;
        return 0;
    }
    obs_sbuf_reset(&sg->scratch);
    for (uint64_t pg = first; pg <= last; pg++) {
        if ((rc = page_get(b, seg, pg, &pp, &pn, err)) != 0)
            return rc;
        size_t in = pg == first ? (size_t)(off - first * PAGE) : 0;
        if (in > pn)
            return obs_err_set(err, OBS_EIO, "store-gateway: short page");
        if (obs_sbuf_append(&sg->scratch, pp + in, pn - in) != 0)
            return obs_err_set(err, OBS_ENOMEM, "out of memory");
    }
    *p = (const uint8_t *)sg->scratch.p;
    *got = sg->scratch.len;
    return 0;
}

static void on_corrupt(void *arg, const struct obs_err *e)
{
    struct sg_block *b = arg;
    struct mtd_store_gateway *sg = b->sg;
    sg->st.corrupt_chunks++;
    obs_clog_warn("store-gateway", "corrupt block data skipped\ttenant=%s block=%s err=\"%s\"",
                  b->t->name, b->ulid, e->msg);
    /* The reader names our local cache path; name the block instead. */
    const char *what = strstr(e->msg, b->ulid);
    what = what ? what + strlen(b->ulid) + 1 : e->msg;
    mtd_warnings_add(sg->w, "block %s/%s: %s (data skipped)", b->t->name, b->ulid, what);
}

static int download_obj(struct mtd_store_gateway *sg, const char *key, const char *path,
                        struct obs_err *err)
{
    struct obs_sbuf buf;
    obs_sbuf_init(&buf);
    int rc = obs_store_get(sg->blocks->store, key, 0, 0, &buf, err);
    if (rc == 0) {
        char tmp[PATH_MAX + 64];
        snprintf(tmp, sizeof tmp, "%s.tmp", path);
        int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0 || (buf.len && write(fd, buf.p, buf.len) != (ssize_t)buf.len))
            rc = obs_err_set(err, OBS_EIO, "store-gateway: write %s: %s", tmp, strerror(errno));
        if (fd >= 0)
            close(fd);
        if (rc == 0 && rename(tmp, path) != 0)
            rc = obs_err_set(err, OBS_EIO, "store-gateway: rename %s: %s", tmp, strerror(errno));
    }
    obs_sbuf_deinit(&buf);
    return rc;
}

struct seglist {
    uint64_t *len;
    size_t n;
    struct mtd_store_gateway *sg;
    int rc;
    struct obs_err *err;
};

static int seg_found(const char *key, void *arg)
{
    struct seglist *s = arg;
    const char *base = strrchr(key, '/');
    base = base ? base + 1 : key;
    char *end;
    unsigned long seq = strtoul(base, &end, 10);
    if (*end != '\0' || seq == 0 || seq > 100000)
        return 0;
    if (seq > s->n) {
        uint64_t *nv = obs_realloc(s->len, seq * sizeof *nv);
        if (nv == NULL) {
            s->rc = obs_err_set(s->err, OBS_ENOMEM, "out of memory");
            return 1;
        }
        memset(nv + s->n, 0, (seq - s->n) * sizeof *nv);
        s->len = nv;
        s->n = seq;
    }
    s->rc = obs_store_head(s->sg->blocks->store, key, &s->len[seq - 1], s->err);
    return s->rc != 0;
}

static int block_load(struct mtd_store_gateway *sg, struct sg_block *b, struct obs_err *err)
{
    char dir[PATH_MAX], path[PATH_MAX + 32], key[512];
    local_dir(sg, b->t->name, b->ulid, dir, sizeof dir);
    int rc = obs_mkdir_p(dir, err);
    static const char *const files[] = {"meta.json", "index"};
    for (int i = 0; i < 2 && rc == 0; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        if (access(path, F_OK) == 0)
            continue;
        snprintf(key, sizeof key, "%s/%s/%s", b->t->name, b->ulid, files[i]);
        rc = download_obj(sg, key, path, err);
        if (rc == 0 && i == 1)
            sg->st.index_downloads++;
    }
    struct seglist sl = {.sg = sg, .err = err};
    if (rc == 0) {
        snprintf(key, sizeof key, "%s/%s/chunks/", b->t->name, b->ulid);
        rc = obs_store_list(sg->blocks->store, key, NULL, seg_found, &sl, err);
        if (rc == 0)
            rc = sl.rc;
    }
    if (rc == 0) {
        obs_free(b->seg_len);
        b->seg_len = sl.len;
        b->nsegs = sl.n;
        sl.len = NULL;
        struct mtd_tsdb_chunk_src src = {chunk_read, b, b->nsegs, b->seg_len};
        rc = mtd_tsdb_block_open_src(dir, &src, &b->b, err);
        if (rc == OBS_ECORRUPT)
            mtd_rm_rf(dir); /* a bad download: fetch again next time */
    }
    obs_free(sl.len);
    if (rc == 0) {
        mtd_tsdb_block_on_corrupt(b->b, on_corrupt, b);
        sg->st.blocks_loaded++;
    }
    return rc;
}

/* ---- queries ---------------------------------------------------------------------------- */

int mtd_store_gateway_select(struct mtd_store_gateway *sg, const char *tenant,
                             const struct obs_matcher *ms, size_t nms, int64_t mint, int64_t maxt,
                             mtd_sg_series_fn fn, void *arg, struct mtd_warnings *w,
                             struct obs_err *err)
{
    struct obs_err e = {0};
    if (maybe_sync(sg, &e) != 0) {
        if (e.code == OBS_ENOMEM)
            return obs_err_set(err, OBS_ENOMEM, "out of memory");
        obs_clog_warn("store-gateway", "bucket sync failed: %s", e.msg);
        mtd_warnings_add(w, "store-gateway: bucket sync failed: %s", e.msg);
    }
    struct sg_tenant *t = tenant_find(sg, tenant);
    if (t == NULL)
        return 0;
    sg->w = w;
    int rc = 0;
    for (size_t i = 0; i < t->n && rc == 0; i++) {
        struct sg_block *b = t->v[i];
        if (b->mint > maxt || b->maxt <= mint)
            continue;
        if (b->b == NULL) {
            if (b->failed != NULL) {
                mtd_warnings_add(w, "block %s/%s skipped: %s", tenant, b->ulid, b->failed);
                continue;
            }
            struct obs_err le = {0};
            int lrc = block_load(sg, b, &le);
            if (lrc == OBS_ENOMEM) {
                rc = obs_err_set(err, OBS_ENOMEM, "out of memory");
                break;
            }
            if (lrc != 0) {
                obs_clog_warn("store-gateway", "cannot load block %s/%s: %s", tenant, b->ulid,
                              le.msg);
                mtd_warnings_add(w, "block %s/%s skipped: %s", tenant, b->ulid, le.msg);
                if (lrc == OBS_ECORRUPT)
                    b->failed = obs_strdup(le.msg);
                continue;
            }
        }
        struct obs_err se = {0};
        int src = mtd_tsdb_block_select(b->b, ms, nms, mint, maxt, fn, arg, &se);
        if (src == OBS_ENOMEM) {
            rc = obs_err_set(err, OBS_ENOMEM, "out of memory");
        } else if (src != 0) {
            obs_clog_warn("store-gateway", "block %s/%s: %s", tenant, b->ulid, se.msg);
            mtd_warnings_add(w, "block %s/%s: %s", tenant, b->ulid, se.msg);
        }
    }
    sg->w = NULL;
    return rc;
}

static int cmp_strp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int mtd_store_gateway_tenants(struct mtd_store_gateway *sg, char ***out, size_t *n)
{
    struct obs_err e = {0};
    if (maybe_sync(sg, &e) != 0 && e.code == OBS_ENOMEM)
        return OBS_ENOMEM;
    char **v = obs_calloc(sg->ntenants + 1, sizeof *v);
    if (v == NULL)
        return OBS_ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < sg->ntenants; i++) {
        if (sg->tenants[i]->n == 0)
            continue;
        if ((v[k] = obs_strdup(sg->tenants[i]->name)) == NULL) {
            mtd_strings_free(v, k);
            return OBS_ENOMEM;
        }
        k++;
    }
    if (k > 1)
        qsort(v, k, sizeof *v, cmp_strp);
    *out = v;
    *n = k;
    return 0;
}

void mtd_store_gateway_stats(const struct mtd_store_gateway *sg, struct mtd_sg_stats *out)
{
    *out = sg->st;
    out->cache_bytes = sg->cache.bytes;
}

/* ---- component -------------------------------------------------------------------------- */

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct mtd_store_gateway *sg = arg;
    struct obs_err e = {0};
    if (sync_all(sg, &e) != 0)
        obs_clog_warn("store-gateway", "bucket sync failed: %s", e.msg);
}

static double g_corrupt(void *arg)
{
    return (double)((struct mtd_store_gateway *)arg)->st.corrupt_chunks;
}

static double g_cache_bytes(void *arg)
{
    return (double)((struct mtd_store_gateway *)arg)->cache.bytes;
}

static double g_fetches(void *arg)
{
    return (double)((struct mtd_store_gateway *)arg)->st.chunk_fetches;
}

int mtd_store_gateway_init(struct obs_ctx *ctx, struct obs_err *err)
{
    struct mtd_store_gateway *sg = obs_calloc(1, sizeof *sg);
    if (sg == NULL)
        return obs_err_set(err, OBS_ENOMEM, "out of memory");
    sg->ctx = ctx;
    obs_sbuf_init(&sg->scratch);
    int rc = obs_cf_bind(obs_cf_get(obs_cf_get(ctx->cfg, "blocks_storage"), "bucket_store"), sg_map,
                         &sg->cfg, err);
    if (rc != 0) {
        obs_free(sg);
        return rc;
    }
    if (sg->cfg.sync_interval_ms <= 0)
        sg->cfg.sync_interval_ms = 15 * 60 * 1000;
    sg->cache.max =
        (size_t)(sg->cfg.chunks_cache.max_size_bytes > 0 ? sg->cfg.chunks_cache.max_size_bytes : 0);
    if ((rc = obs_mkdir_p(sg->cfg.sync_dir, err)) != 0 ||
        (sg->blocks = mtd_blocks_ref(ctx, err)) == NULL) {
        obs_cf_unbind(sg_map, &sg->cfg);
        obs_free(sg);
        return rc ? rc : (err && err->code ? err->code : OBS_EIO);
    }
    sg->stale = 1;
    sg->timer = event_new(ctx->base, -1, EV_PERSIST, on_timer, sg);
    struct timeval tv = {(time_t)(sg->cfg.sync_interval_ms / 1000),
                         (suseconds_t)(sg->cfg.sync_interval_ms % 1000) * 1000};
    if (sg->timer == NULL || event_add(sg->timer, &tv) != 0) {
        if (sg->timer)
            event_free(sg->timer);
        mtd_blocks_unref(ctx);
        obs_cf_unbind(sg_map, &sg->cfg);
        obs_free(sg);
        return obs_err_set(err, OBS_ENOMEM, "store-gateway: cannot start the timer");
    }
    sg->blocks->sg = sg;
    obs_metrics_gauge_fn(ctx->metrics, "mtd_store_gateway_corrupt_chunks_total",
                         "Corrupt chunks or series entries skipped while reading blocks.",
                         g_corrupt, sg);
    obs_metrics_gauge_fn(ctx->metrics, "mtd_store_gateway_chunk_cache_bytes",
                         "Bytes held by the chunk cache.", g_cache_bytes, sg);
    obs_metrics_gauge_fn(ctx->metrics, "mtd_store_gateway_chunk_fetches_total",
                         "Range GETs of chunk segments.", g_fetches, sg);
    obs_clog_info("store-gateway", "ready\tsync_dir=%s sync_interval=%llds cache=%zu bytes",
                  sg->cfg.sync_dir, (long long)(sg->cfg.sync_interval_ms / 1000), sg->cache.max);
    return 0;
}

void mtd_store_gateway_stop(struct obs_ctx *ctx)
{
    struct mtd_blocks *b = mtd_blocks_of(ctx);
    if (b == NULL || b->sg == NULL)
        return;
    struct mtd_store_gateway *sg = b->sg;
    b->sg = NULL;
    if (sg->timer)
        event_free(sg->timer);
    for (size_t i = 0; i < sg->ntenants; i++)
        tenant_free(sg->tenants[i]);
    obs_free(sg->tenants);
    cc_free(&sg->cache);
    obs_sbuf_deinit(&sg->scratch);
    obs_cf_unbind(sg_map, &sg->cfg);
    obs_free(sg);
    mtd_blocks_unref(ctx);
}
