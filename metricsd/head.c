/*
 * head.c -- the in-memory head of metricsd (see head.h for the model and the WAL format).
 *
 * Data structures:
 *   struct smap     open-addressing string -> pointer map (label names, label values,
 *                   tenants, metadata families); keys are owned copies.
 *   struct tenant   series array indexed by a dense local id (the roaring bitmaps' domain),
 *                   a hash table of series chains keyed by label-set hash, and postings
 *                   (name -> value -> roaring bitmap of ids).
 *   struct mseries  one series: its labels in one allocation with their strings, its
 *                   in-order float samples as Prometheus-compatible XOR chunks (chunkenc.h)
 *                   of up to MTD_CHUNK_SAMPLES samples (closed ones trimmed to size, plus
 *                   the open one being appended to), and appender bookkeeping; rarely used
 *                   parts behind one pointer (struct sext): out-of-order float samples (a
 *                   sorted array merged in on read), native histogram samples (each one
 *                   encoded compactly, see hist_encode), the newest exemplar.
 *   exemplars       per tenant, a circular buffer of max_exemplars entries (Prometheus'
 *                   circular exemplar storage); the oldest is overwritten.
 *
 * Out of order (Prometheus' rules, out_of_order_time_window per tenant): a sample newer than
 * the series' newest is appended; at the same time it is a duplicate (same value: accepted,
 * stored once; else "duplicate sample for timestamp"); older, it is accepted into the
 * out-of-order buffer when it is no older than the tenant's newest sample minus the window
 * ("too old sample" otherwise; "out of order sample" when the window is 0).
 *
 * Checkpoints (mtd_head_checkpoint) dump the head into fresh WAL segments and delete the old
 * ones; replay streams records (obs_wal keeps one buffer) and adopts checkpointed chunks as
 * they are, so replay needs no more memory than the head it rebuilds.
 * The head keeps a dense array of series by global ref for WAL replay.
 *
 * Truncation (mtd_head_truncate, after flush.c shipped a range): whole chunks older than the
 * point go, empty series are removed and the survivors get dense ids again (postings and the
 * hash table are rebuilt aside, so OOM leaves everything as it was); the point is the
 * tenant's min_valid ("out of bounds" below it) and lives in the WAL as a 'T' record.
 *
 * Selection (postings for matchers, as Prometheus does it): a matcher that does not match ""
 * contributes the union of the bitmaps of the values it matches, intersected into the
 * result; a matcher that does match "" (so series without the label match) subtracts the
 * union of the bitmaps of the values it does NOT match. With no positive matcher the start
 * set is every series of the tenant.
 */
#include "metricsd/head.h"

#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <roaring/roaring.h>
#include <xxhash.h>

#include "core/obs_arena.h"
#include "core/obs_log.h"
#include "core/obs_mem.h"
#include "core/obs_sbuf.h"
#include "core/obs_time.h"
#include "metricsd/chunkenc.h"
#include "metricsd/ql/mtd_ql.h"
#include "wal/obs_wal.h"

/* Samples per chunk before it is cut, as Prometheus' head does. */
#define MTD_CHUNK_SAMPLES 120

/* ---- string map ------------------------------------------------------------------------- */

struct smap_ent {
    char *key; /* NULL = empty slot */
    uint64_t h;
    void *val;
};

struct smap {
    struct smap_ent *e;
    size_t cap; /* power of two */
    size_t n;
};

static uint64_t str_hash(const char *s)
{
    return XXH3_64bits(s, strlen(s));
}

static void *smap_get(const struct smap *m, const char *key)
{
    if (m->cap == 0)
        return NULL;
    uint64_t h = str_hash(key);
    for (size_t i = h & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        if (m->e[i].key == NULL)
            return NULL;
        if (m->e[i].h == h && strcmp(m->e[i].key, key) == 0)
            return m->e[i].val;
    }
}

/* The entry for key, or NULL (its key pointer is stable until the map is freed). */
static const struct smap_ent *smap_entry(const struct smap *m, const char *key)
{
    if (m->cap == 0)
        return NULL;
    uint64_t h = str_hash(key);
    for (size_t i = h & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        if (m->e[i].key == NULL)
            return NULL;
        if (m->e[i].h == h && strcmp(m->e[i].key, key) == 0)
            return &m->e[i];
    }
}

static int smap_grow(struct smap *m)
{
    size_t nc = m->cap ? m->cap * 2 : 16;
    struct smap_ent *ne = obs_calloc(nc, sizeof *ne);
    if (ne == NULL)
        return OBS_ENOMEM;
    for (size_t i = 0; i < m->cap; i++) {
        if (m->e[i].key == NULL)
            continue;
        size_t j = m->e[i].h & (nc - 1);
        while (ne[j].key != NULL)
            j = (j + 1) & (nc - 1);
        ne[j] = m->e[i];
    }
    obs_free(m->e);
    m->e = ne;
    m->cap = nc;
    return 0;
}

/* Insert key (copied) -> val; key must not be present. Returns the stored key or NULL. */
static const char *smap_put(struct smap *m, const char *key, void *val)
{
    if ((m->n + 1) * 4 > m->cap * 3 && smap_grow(m) != 0)
        return NULL;
    char *k = obs_strdup(key);
    if (k == NULL)
        return NULL;
    uint64_t h = str_hash(key);
    size_t i = h & (m->cap - 1);
    while (m->e[i].key != NULL)
        i = (i + 1) & (m->cap - 1);
    m->e[i].key = k;
    m->e[i].h = h;
    m->e[i].val = val;
    m->n++;
    return k;
}

static void smap_free(struct smap *m, void (*fn)(void *))
{
    for (size_t i = 0; i < m->cap; i++) {
        if (m->e[i].key == NULL)
            continue;
        if (fn)
            fn(m->e[i].val);
        obs_free(m->e[i].key);
    }
    obs_free(m->e);
    memset(m, 0, sizeof *m);
}

static int cmp_strp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Sorted array of the map's keys (borrowed pointers; the array is obs_malloc'd). */
static const char **smap_sorted_keys(const struct smap *m)
{
    const char **v = obs_malloc((m->n ? m->n : 1) * sizeof *v);
    if (v == NULL)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < m->cap; i++)
        if (m->e[i].key)
            v[k++] = m->e[i].key;
    qsort(v, k, sizeof *v, cmp_strp);
    return v;
}

/* ---- series, tenants, head -------------------------------------------------------------- */

struct tenant;

/* A closed (full) chunk. */
struct hchunk {
    uint8_t *b;
    uint32_t len;
    uint16_t n;
    int64_t mint, maxt;
};

/* A native histogram sample: b is its encoding (hist_encode), NULL for a stale marker. */
struct hsamp {
    int64_t t;
    uint8_t *b;
    uint32_t len;
};

/* Rarely used per-series state, allocated on first use to keep struct mseries small. */
struct sext {
    struct mtd_sample *ooo; /* out-of-order float samples, sorted by t, none in the chunks */
    uint32_t nooo, capooo;
    struct hsamp *hs;       /* histogram samples, sorted by t */
    uint32_t nhs, caphs;
    int64_t ex_t;           /* newest exemplar (valid when has_ex) */
    double ex_v;
    uint64_t ex_lhash;      /* hash of its labels */
    int has_ex;
};

enum { K_FLOAT = 0, K_HIST = 1 };

struct mseries {
    uint64_t ref;
    uint32_t id;
    uint64_t hash;
    struct tenant *tenant;
    struct obs_label *labels; /* points into the same allocation as the series */
    size_t nlabels;
    struct hchunk *chunks;     /* closed chunks, in time order */
    size_t nchunks, capchunks;
    struct mtd_xor_chunk open; /* chunk being appended to (b == NULL before the first) */
    int64_t open_mint;
    int64_t mint, last_t;      /* first and last sample times over every kind (n + nh > 0) */
    double last_v;             /* newest float sample (when last_kind == K_FLOAT) */
    uint64_t n;                /* float samples (in-order chunks + out-of-order) */
    uint64_t nin;              /* of which in the chunks */
    int64_t in_last_t;         /* last sample in the chunks (nin > 0) */
    struct sext *x;
    uint8_t last_kind;         /* kind of the newest sample */
    /* appender bookkeeping */
    uint8_t pending;    /* has an in-order sample in the open appender */
    uint8_t pend_kind;
    uint8_t logged;     /* its 'S' record is in the WAL (2 = being written) */
    uint8_t gc;         /* being removed by a truncation (mtd_head_truncate) */
    int64_t pend_t;     /* newest pending in-order sample */
    double pend_v;
    const uint8_t *pend_h; /* its histogram encoding (K_HIST; NULL = stale) */
    uint32_t pend_hlen;
};

struct meta {
    int type;
    char *help;
    char *unit;
};

/* One exemplar in a tenant's ring. */
struct exm {
    struct mseries *s; /* NULL = empty slot */
    int64_t t;
    double v;
    char *l;           /* nl (name, value) NUL-terminated pairs */
    uint32_t nl;
};

struct hslot {
    uint64_t hash;
    struct mseries *s; /* NULL = empty */
};

struct tenant {
    char *name;
    struct mseries **series; /* by local id */
    size_t nseries, capseries;
    struct hslot *ht;        /* open addressing by label-set hash, power-of-two size, at
                              * most half full; equal hashes (collisions) probe on */
    size_t htcap;
    struct smap names;       /* name -> struct smap * (value -> roaring_bitmap_t *) */
    struct smap meta;        /* family -> struct meta * */
    int64_t maxt;            /* newest sample of any series (OOO window reference) */
    int have_maxt;
    struct exm *ex;          /* exemplar ring */
    size_t excap, exnext, exn;
    int64_t min_valid;       /* head truncated below this (ms): older appends are "out of
                              * bounds"; INT64_MIN = never truncated */
    uint64_t vgen;           /* bumped when a label value appears or the postings are rebuilt */
    struct smap lvc;         /* name -> struct lvcache (label values answers) */
};

struct mtd_head {
    struct smap tenants;       /* name -> struct tenant * */
    struct mseries **by_ref;   /* index = ref */
    size_t capref;
    uint64_t next_ref;
    struct obs_wal *wal;
    size_t wal_segment_bytes;
    uint64_t ckpt_bytes;       /* WAL size right after the last checkpoint (0 = none yet) */
    uint64_t ckpt_at;          /* WAL size when it was taken */
    uint64_t nckpt;
    struct mtd_storage storage;
    size_t total_series;
    uint64_t total_samples;    /* floats, in order and out of order */
    uint64_t total_ooo;
    uint64_t total_hist;
    size_t total_exemplars;
    size_t max_series;
    int appender_open;
    int unsynced; /* records appended by commit_nosync and not yet synced */
};

static int label_set_cmp(const struct obs_label *a, size_t na, const struct obs_label *b,
                         size_t nb)
{
    size_t n = na < nb ? na : nb;
    /* A tenant's series share interned strings: equal pointers are equal strings. */
    for (size_t i = 0; i < n; i++) {
        int c = a[i].name == b[i].name ? 0 : strcmp(a[i].name, b[i].name);
        if (c)
            return c;
        c = a[i].value == b[i].value ? 0 : strcmp(a[i].value, b[i].value);
        if (c)
            return c;
    }
    return na < nb ? -1 : na > nb ? 1 : 0;
}

static void values_free(void *p)
{
    struct smap *vals = p;
    for (size_t i = 0; i < vals->cap; i++)
        if (vals->e[i].key)
            roaring_bitmap_free(vals->e[i].val);
    smap_free(vals, NULL);
    obs_free(vals);
}

static void meta_free(void *p)
{
    struct meta *m = p;
    if (m == NULL)
        return;
    obs_free(m->help);
    obs_free(m->unit);
    obs_free(m);
}

static void sext_free(struct sext *x)
{
    if (x == NULL)
        return;
    for (uint32_t i = 0; i < x->nhs; i++)
        obs_free(x->hs[i].b);
    obs_free(x->hs);
    obs_free(x->ooo);
    obs_free(x);
}

static struct sext *sext_of(struct mseries *s)
{
    if (s->x == NULL)
        s->x = obs_calloc(1, sizeof *s->x);
    return s->x;
}

/* The sorted values of one label name over every series at any time (label values without
 * matchers or time bounds, Grafana's most frequent call), valid while the tenant's vgen is
 * unchanged: borrowed pointers to the postings' value keys, with their lengths. */
struct lvcache {
    uint64_t gen;
    const char **v;
    uint32_t *len;
    size_t n;
};

static void lvcache_free(void *p)
{
    struct lvcache *c = p;
    if (c == NULL)
        return;
    obs_free(c->v);
    obs_free(c->len);
    obs_free(c);
}

static void tenant_free(void *p)
{
    struct tenant *t = p;
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->nseries; i++) {
        struct mseries *s = t->series[i];
        for (size_t k = 0; k < s->nchunks; k++)
            obs_free(s->chunks[k].b);
        obs_free(s->chunks);
        mtd_xor_deinit(&s->open);
        sext_free(s->x);
        obs_free(s);
    }
    for (size_t i = 0; i < t->excap; i++)
        obs_free(t->ex[i].l);
    obs_free(t->ex);
    obs_free(t->series);
    obs_free(t->ht);
    smap_free(&t->names, values_free);
    smap_free(&t->meta, meta_free);
    smap_free(&t->lvc, lvcache_free);
    obs_free(t->name);
    obs_free(t);
}

static struct tenant *tenant_get(struct mtd_head *h, const char *name, int create)
{
    struct tenant *t = smap_get(&h->tenants, name);
    if (t != NULL || !create)
        return t;
    t = obs_calloc(1, sizeof *t);
    if (t == NULL)
        return NULL;
    t->name = obs_strdup(name);
    t->min_valid = INT64_MIN;
    t->htcap = 1024;
    t->ht = obs_calloc(t->htcap, sizeof *t->ht);
    if (t->name == NULL || t->ht == NULL || smap_put(&h->tenants, name, t) == NULL) {
        tenant_free(t);
        return NULL;
    }
    return t;
}

static void tenant_see(struct tenant *t, int64_t ts)
{
    if (!t->have_maxt || ts > t->maxt) {
        t->maxt = ts;
        t->have_maxt = 1;
    }
}

static struct mseries *series_lookup(const struct tenant *t, uint64_t hash,
                                     const struct obs_label *l, size_t n)
{
    size_t mask = t->htcap - 1;
    for (size_t i = hash & mask;; i = (i + 1) & mask) {
        const struct hslot *e = &t->ht[i];
        if (e->s == NULL)
            return NULL;
        if (e->hash == hash && label_set_cmp(e->s->labels, e->s->nlabels, l, n) == 0)
            return e->s;
    }
}

static void ht_put(struct hslot *ht, size_t cap, struct mseries *s)
{
    size_t i = s->hash & (cap - 1);
    while (ht[i].s != NULL)
        i = (i + 1) & (cap - 1);
    ht[i].hash = s->hash;
    ht[i].s = s;
}

static int ht_grow(struct tenant *t)
{
    size_t nc = t->htcap * 2;
    struct hslot *nh = obs_calloc(nc, sizeof *nh);
    if (nh == NULL)
        return OBS_ENOMEM;
    for (size_t i = 0; i < t->nseries; i++)
        ht_put(nh, nc, t->series[i]);
    obs_free(t->ht);
    t->ht = nh;
    t->htcap = nc;
    return 0;
}

/* The label-set hash, equal to obs_labels_hash() (XXH3 over name 0xff value 0xff ...), in one
 * pass over a stack copy when the set is small (the streaming API is much slower). */
static uint64_t labels_hash(const struct obs_label *l, size_t n)
{
    char buf[2048];
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        const char *a = l[i].name ? l[i].name : "", *b = l[i].value ? l[i].value : "";
        size_t la = strlen(a), lb = strlen(b);
        if (o + la + lb + 2 > sizeof buf)
            return obs_labels_hash(l, n);
        memcpy(buf + o, a, la);
        o += la;
        buf[o++] = (char)0xff;
        memcpy(buf + o, b, lb);
        o += lb;
        buf[o++] = (char)0xff;
    }
    return XXH3_64bits(buf, o);
}

/* Add id to postings[name][value]. */
/* Add id to postings[name][value]. *kn / *kv (may be NULL) get the postings' own copies of
 * name and value: series point their labels at them (one copy of each string per tenant). */
static int postings_add(struct tenant *t, const char *name, const char *value, uint32_t id,
                        const char **kn, const char **kv)
{
    const struct smap_ent *ne = smap_entry(&t->names, name);
    struct smap *vals = ne ? ne->val : NULL;
    const char *nk = ne ? ne->key : NULL;
    if (vals == NULL) {
        vals = obs_calloc(1, sizeof *vals);
        if (vals == NULL)
            return OBS_ENOMEM;
        if ((nk = smap_put(&t->names, name, vals)) == NULL) {
            obs_free(vals);
            return OBS_ENOMEM;
        }
    }
    const struct smap_ent *ve = smap_entry(vals, value);
    roaring_bitmap_t *bm = ve ? ve->val : NULL;
    const char *vk = ve ? ve->key : NULL;
    if (bm == NULL) {
        bm = roaring_bitmap_create();
        if (bm == NULL)
            return OBS_ENOMEM;
        if ((vk = smap_put(vals, value, bm)) == NULL) {
            roaring_bitmap_free(bm);
            return OBS_ENOMEM;
        }
        t->vgen++;
    }
    roaring_bitmap_add(bm, id);
    if (kn)
        *kn = nk;
    if (kv)
        *kv = vk;
    return 0;
}

static int ref_slot(struct mtd_head *h, uint64_t ref)
{
    if (ref < h->capref)
        return 0;
    /* refs are assigned densely; a far larger one can only come from a corrupt WAL record */
    if (ref >= (1ULL << 32) || ref > h->next_ref + (1ULL << 24))
        return OBS_ECORRUPT;
    size_t nc = h->capref ? h->capref : 1024;
    while (nc <= ref)
        nc *= 2;
    struct mseries **nv = obs_realloc(h->by_ref, nc * sizeof *nv);
    if (nv == NULL)
        return OBS_ENOMEM;
    memset(nv + h->capref, 0, (nc - h->capref) * sizeof *nv);
    h->by_ref = nv;
    h->capref = nc;
    return 0;
}

/* Create a series with sorted labels l; ref 0 = assign the next one. */
static struct mseries *series_create(struct mtd_head *h, struct tenant *t, uint64_t hash,
                                     const struct obs_label *l, size_t n, uint64_t ref)
{
    if (ref == 0)
        ref = h->next_ref;
    if (ref_slot(h, ref) != 0)
        return NULL;
    if (t->nseries == t->capseries) {
        size_t nc = t->capseries ? t->capseries * 2 : 256;
        struct mseries **nv = obs_realloc(t->series, nc * sizeof *nv);
        if (nv == NULL)
            return NULL;
        t->series = nv;
        t->capseries = nc;
    }
    if (t->nseries >= UINT32_MAX)
        return NULL;
    /* The label strings are the postings' copies (interned per tenant): only the pointer
     * array lives with the series. */
    struct mseries *s = obs_calloc(1, sizeof *s + n * sizeof(struct obs_label));
    if (s == NULL)
        return NULL;
    s->labels = (struct obs_label *)(s + 1);
    s->nlabels = n;
    s->hash = hash;
    s->ref = ref;
    s->tenant = t;
    s->id = (uint32_t)t->nseries;
    for (size_t i = 0; i < n; i++) {
        if (postings_add(t, l[i].name, l[i].value, s->id, &s->labels[i].name,
                         &s->labels[i].value) != 0) {
            /* Postings may hold the id of a series that never got added; readers check
             * id < nseries, and the next series takes the same id, which is then right. */
            obs_free(s);
            return NULL;
        }
    }
    t->series[t->nseries++] = s;
    if (t->nseries * 2 > t->htcap && ht_grow(t) != 0) {
        /* Keep the table at most half full or lookups could loop forever: undo. */
        t->nseries--;
        obs_free(s);
        return NULL;
    }
    ht_put(t->ht, t->htcap, s);
    h->by_ref[ref] = s;
    if (ref >= h->next_ref)
        h->next_ref = ref + 1;
    h->total_series++;
    return s;
}

/* Samples of any kind in s. */
static uint64_t series_count(const struct mseries *s)
{
    return s->n + (s->x ? s->x->nhs : 0);
}

/* Bookkeeping after a sample of kind k at t was stored. */
static void series_seen(struct mseries *s, int64_t t, int kind)
{
    if (series_count(s) == 1 || t < s->mint)
        s->mint = t;
    if (series_count(s) == 1 || t >= s->last_t) {
        s->last_t = t;
        s->last_kind = (uint8_t)kind;
    }
    tenant_see(s->tenant, t);
}

/* Close the open chunk: keep a trimmed copy. On OOM the open chunk just keeps growing. */
static void series_cut(struct mseries *s)
{
    if (s->nchunks == s->capchunks) {
        size_t nc = s->capchunks ? s->capchunks * 2 : 4;
        struct hchunk *nv = obs_realloc(s->chunks, nc * sizeof *nv);
        if (nv == NULL)
            return;
        s->chunks = nv;
        s->capchunks = nc;
    }
    size_t len = mtd_xor_bytes(&s->open);
    uint8_t *b = obs_malloc(len);
    if (b == NULL)
        return;
    memcpy(b, s->open.b, len);
    s->chunks[s->nchunks++] = (struct hchunk){b, (uint32_t)len, s->open.n, s->open_mint,
                                              s->in_last_t};
    mtd_xor_deinit(&s->open);
}

/* Append (t, v) to the in-order chunks of s (t > every sample of s: the caller's business). */
static int series_push(struct mtd_head *h, struct mseries *s, int64_t t, double v)
{
    if (s->open.b == NULL) {
        if (mtd_xor_init(&s->open) != 0)
            return OBS_ENOMEM;
        s->open_mint = t;
    }
    int rc = mtd_xor_append(&s->open, t, v);
    if (rc == OBS_ELIMIT) { /* a cut failed 65535 times in a row: give up on this sample */
        series_cut(s);
        return OBS_ENOMEM;
    }
    if (rc != 0)
        return rc;
    s->in_last_t = t;
    s->nin++;
    s->n++;
    s->last_v = v;
    series_seen(s, t, K_FLOAT);
    h->total_samples++;
    if (s->open.n >= MTD_CHUNK_SAMPLES)
        series_cut(s);
    return 0;
}

/* Index of the first sample in x->ooo with t >= ts. */
static uint32_t ooo_lower(const struct sext *x, int64_t ts)
{
    uint32_t lo = 0, hi = x->nooo;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (x->ooo[mid].t < ts)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static uint32_t hs_lower(const struct sext *x, int64_t ts)
{
    uint32_t lo = 0, hi = x->nhs;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (x->hs[mid].t < ts)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Float value of s at exactly t: 1 with *v set, 0 when there is none. */
static int series_float_at(const struct mseries *s, int64_t t, double *v)
{
    if (s->x && s->x->nooo) {
        uint32_t i = ooo_lower(s->x, t);
        if (i < s->x->nooo && s->x->ooo[i].t == t) {
            *v = s->x->ooo[i].v;
            return 1;
        }
    }
    if (s->nin == 0 || t > s->in_last_t)
        return 0;
    struct mtd_xor_iter it;
    for (size_t k = 0; k <= s->nchunks; k++) {
        const uint8_t *b;
        size_t len;
        if (k < s->nchunks) {
            if (t < s->chunks[k].mint || t > s->chunks[k].maxt)
                continue;
            b = s->chunks[k].b;
            len = s->chunks[k].len;
        } else {
            if (s->open.b == NULL || s->open.n == 0 || t < s->open_mint)
                continue;
            b = s->open.b;
            len = mtd_xor_bytes(&s->open);
        }
        mtd_xor_iter_init(&it, b, len);
        while (mtd_xor_iter_next(&it) == 1) {
            if (it.t == t) {
                *v = it.v;
                return 1;
            }
            if (it.t > t)
                break;
        }
    }
    return 0;
}

/* Histogram sample of s at exactly t, or NULL. */
static const struct hsamp *series_hist_at(const struct mseries *s, int64_t t)
{
    if (s->x == NULL || s->x->nhs == 0)
        return NULL;
    uint32_t i = hs_lower(s->x, t);
    return i < s->x->nhs && s->x->hs[i].t == t ? &s->x->hs[i] : NULL;
}

/* Out-of-order samples kept in a series' sorted buffer before they are folded into its
 * chunks (keeps inserts cheap and the buffer small, as Prometheus' 32-sample OOO chunks). */
#define MTD_OOO_FOLD 256

static size_t series_bound(const struct mseries *s, int64_t mint, int64_t maxt);
static size_t series_decode(const struct mseries *s, int64_t mint, int64_t maxt,
                            struct mtd_sample *out);

/* Append to the in-order chunks only (no counters). */
static int chunk_add(struct mseries *s, int64_t t, double v)
{
    if (s->open.b == NULL) {
        if (mtd_xor_init(&s->open) != 0)
            return OBS_ENOMEM;
        s->open_mint = t;
    }
    int rc = mtd_xor_append(&s->open, t, v);
    if (rc == OBS_ELIMIT) {
        series_cut(s);
        return OBS_ENOMEM;
    }
    if (rc != 0)
        return rc;
    s->in_last_t = t;
    if (s->open.n >= MTD_CHUNK_SAMPLES)
        series_cut(s);
    return 0;
}

static void chunks_free(struct hchunk *c, size_t n, struct mtd_xor_chunk *open)
{
    for (size_t k = 0; k < n; k++)
        obs_free(c[k].b);
    obs_free(c);
    mtd_xor_deinit(open);
}

/* Re-encode every float sample of s (chunks merged with the out-of-order buffer) as fresh
 * chunks and empty the buffer. On OOM the series is unchanged. */
static int series_fold_ooo(struct mseries *s)
{
    size_t bound = series_bound(s, INT64_MIN, INT64_MAX);
    struct mtd_sample *all = obs_malloc((bound ? bound : 1) * sizeof *all);
    if (all == NULL)
        return OBS_ENOMEM;
    size_t n = series_decode(s, INT64_MIN, INT64_MAX, all);
    struct hchunk *oc = s->chunks;
    size_t onc = s->nchunks, ocap = s->capchunks;
    struct mtd_xor_chunk oopen = s->open;
    int64_t omint = s->open_mint, olast = s->in_last_t;
    s->chunks = NULL;
    s->nchunks = s->capchunks = 0;
    memset(&s->open, 0, sizeof s->open);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = chunk_add(s, all[i].t, all[i].v);
    obs_free(all);
    if (rc != 0) {
        chunks_free(s->chunks, s->nchunks, &s->open);
        s->chunks = oc;
        s->nchunks = onc;
        s->capchunks = ocap;
        s->open = oopen;
        s->open_mint = omint;
        s->in_last_t = olast;
        return rc;
    }
    chunks_free(oc, onc, &oopen);
    s->nin = n;
    s->x->nooo = 0;
    return 0;
}

/* Insert an out-of-order float sample (older than the newest sample of s). A sample already
 * present at t (either kind) wins: returns 1 then, 0 when inserted, OBS_ENOMEM. */
static int series_insert_ooo(struct mtd_head *h, struct mseries *s, int64_t t, double v)
{
    double old;
    if (series_float_at(s, t, &old) || series_hist_at(s, t))
        return 1;
    struct sext *x = sext_of(s);
    if (x == NULL)
        return OBS_ENOMEM;
    if (x->nooo == x->capooo) {
        uint32_t nc = x->capooo ? x->capooo * 2 : 4;
        struct mtd_sample *nv = obs_realloc(x->ooo, nc * sizeof *nv);
        if (nv == NULL)
            return OBS_ENOMEM;
        x->ooo = nv;
        x->capooo = nc;
    }
    uint32_t i = ooo_lower(x, t);
    memmove(x->ooo + i + 1, x->ooo + i, (x->nooo - i) * sizeof *x->ooo);
    x->ooo[i] = (struct mtd_sample){t, v};
    x->nooo++;
    s->n++;
    series_seen(s, t, K_FLOAT);
    h->total_samples++;
    h->total_ooo++;
    if (x->nooo >= MTD_OOO_FOLD && series_fold_ooo(s) != 0)
        obs_log_warn("head: out-of-order samples not folded into chunks (out of memory)");
    return 0;
}

/* Store a float sample wherever it belongs (commit and replay). 1 = already present. */
static int series_apply_float(struct mtd_head *h, struct mseries *s, int64_t t, double v)
{
    if (series_count(s) == 0 || t > s->last_t)
        return series_push(h, s, t, v);
    if (t == s->last_t)
        return 1;
    return series_insert_ooo(h, s, t, v);
}

/* Store a histogram sample (b owned by the series on success, b NULL = stale marker).
 * 1 = a sample exists at t already (b not taken). */
static int series_apply_hist(struct mtd_head *h, struct mseries *s, int64_t t, uint8_t *b,
                             uint32_t len)
{
    double old;
    int in_order = series_count(s) == 0 || t > s->last_t;
    if (!in_order && (series_hist_at(s, t) || series_float_at(s, t, &old)))
        return 1;
    struct sext *x = sext_of(s);
    if (x == NULL)
        return OBS_ENOMEM;
    if (x->nhs == x->caphs) {
        uint32_t nc = x->caphs ? x->caphs * 2 : 8;
        struct hsamp *nv = obs_realloc(x->hs, nc * sizeof *nv);
        if (nv == NULL)
            return OBS_ENOMEM;
        x->hs = nv;
        x->caphs = nc;
    }
    uint32_t i = in_order ? x->nhs : hs_lower(x, t);
    memmove(x->hs + i + 1, x->hs + i, (x->nhs - i) * sizeof *x->hs);
    x->hs[i] = (struct hsamp){t, b, len};
    x->nhs++;
    series_seen(s, t, K_HIST);
    h->total_hist++;
    if (!in_order)
        h->total_ooo++;
    return 0;
}

/* Does s have samples that may fall in [mint, maxt]? (Exact at the series' ends.) */
static int series_overlaps(const struct mseries *s, int64_t mint, int64_t maxt)
{
    return series_count(s) > 0 && mint <= maxt && s->mint <= maxt && s->last_t >= mint;
}

/* Upper bound of the float samples of s in [mint, maxt] (whole chunks that overlap). */
static size_t series_bound(const struct mseries *s, int64_t mint, int64_t maxt)
{
    size_t n = 0;
    for (size_t k = 0; k < s->nchunks; k++)
        if (s->chunks[k].mint <= maxt && s->chunks[k].maxt >= mint)
            n += s->chunks[k].n;
    if (s->open.b && s->open.n > 0 && s->open_mint <= maxt && s->in_last_t >= mint)
        n += s->open.n;
    if (s->x)
        n += s->x->nooo;
    return n;
}

/* Bit reader for decode_into(): MSB-first; buf holds the next avail bits left-aligned and is
 * refilled a word at a time (reads of up to 56 bits need one refill). Reading past the end
 * yields zero bits; consumed() then exceeds nbits, which the decoder checks per sample. */
struct fbits {
    const uint8_t *p, *start, *end;
    uint64_t buf;
    int avail;
};

static inline void fb_refill(struct fbits *r)
{
    if (r->avail >= 56)
        return;
    if (r->end - r->p >= 8) {
        uint64_t w;
        memcpy(&w, r->p, 8);
        w = __builtin_bswap64(w);
        r->buf |= w >> r->avail;
        r->p += (63 - r->avail) >> 3;
        r->avail |= 56;
        return;
    }
    while (r->avail <= 56) {
        uint64_t byte = r->p < r->end ? *r->p : 0;
        r->p++; /* may pass end: consumed() then counts the zero bits read */
        r->buf |= byte << (56 - r->avail);
        r->avail += 8;
    }
}

/* The next n bits, 1 <= n <= 56. */
static inline uint64_t fb_read(struct fbits *r, int n)
{
    fb_refill(r);
    uint64_t v = r->buf >> (64 - n);
    r->buf <<= n;
    r->avail -= n;
    return v;
}

/* The next n bits, 1 <= n <= 64. */
static inline uint64_t fb_read_long(struct fbits *r, int n)
{
    if (n <= 56)
        return fb_read(r, n);
    uint64_t hi = fb_read(r, 32);
    return hi << (n - 32) | fb_read(r, n - 32);
}

/* Bits consumed so far (counted from the chunk start). */
static inline size_t fb_consumed(const struct fbits *r)
{
    return (size_t)(r->p - r->start) * 8 - (size_t)r->avail;
}

static inline uint64_t fb_uvarint(struct fbits *r, int *err)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 70; shift += 7) {
        uint64_t byte = fb_read(r, 8);
        v |= (byte & 0x7f) << shift;
        if (!(byte & 0x80))
            return v;
    }
    *err = 1;
    return 0;
}

/*
 * Decode the XOR chunk b[0..len) (chunkenc.h layout) keeping the samples in [mint, maxt];
 * stops at the first sample after maxt or at corruption (keeping what was decoded), exactly
 * as iterating with mtd_xor_iter_next() would, in one tight loop.
 */
static size_t decode_into(const uint8_t *b, size_t len, int64_t mint, int64_t maxt,
                          struct mtd_sample *out)
{
    if (len < 2)
        return 0;
    struct fbits r = {b + 2, b, b + len, 0, 0};
    size_t nbits = len * 8;
    unsigned total = (unsigned)(b[0] << 8 | b[1]);
    int64_t t = 0;
    uint64_t tdelta = 0, vb = 0;
    int leading = 0, trailing = 0, err = 0;
    size_t n = 0;
    for (unsigned i = 0; i < total; i++) {
        if (i == 0) {
            uint64_t z = fb_uvarint(&r, &err);
            t = (int64_t)(z >> 1) ^ -(int64_t)(z & 1);
            vb = fb_read_long(&r, 64);
        } else {
            if (i == 1) {
                tdelta = fb_uvarint(&r, &err);
                t += (int64_t)tdelta;
            } else {
                /* delta-of-delta prefix: up to four 1 bits, then a 0 unless there were four */
                fb_refill(&r);
                int d = __builtin_clzll(~r.buf | (1ULL << 59)); /* leading ones, at most 4 */
                if (d > 4)
                    d = 4;
                int plen = d < 4 ? d + 1 : 4;
                r.buf <<= plen;
                r.avail -= plen;
                static const int sizes[] = {0, 14, 17, 20, 64};
                int sz = sizes[d];
                int64_t dod = 0;
                if (sz) {
                    uint64_t bits = fb_read_long(&r, sz);
                    if (sz != 64 && bits > (1ULL << (sz - 1)))
                        bits -= 1ULL << sz;
                    dod = (int64_t)bits;
                }
                tdelta = tdelta + (uint64_t)dod;
                if (__builtin_add_overflow(t, (int64_t)tdelta, &t))
                    err = 1;
            }
            fb_refill(&r);
            if (r.buf >> 63) { /* value changed */
                if ((r.buf >> 62) & 1) { /* new leading/significant bit counts */
                    uint64_t ctl = fb_read(&r, 13); /* 1 1 lllll ssssss */
                    leading = (int)((ctl >> 6) & 31);
                    int sig = (int)(ctl & 63);
                    if (sig == 0)
                        sig = 64;
                    if (leading + sig > 64)
                        err = 1;
                    else
                        trailing = 64 - leading - sig;
                } else {
                    r.buf <<= 2;
                    r.avail -= 2;
                }
                int mbits = 64 - leading - trailing;
                if (!err && mbits > 0)
                    vb ^= fb_read_long(&r, mbits) << trailing;
            } else {
                r.buf <<= 1;
                r.avail -= 1;
            }
        }
        if (err || fb_consumed(&r) > nbits)
            break;
        if (t < mint)
            continue;
        if (t > maxt)
            break;
        out[n].t = t;
        memcpy(&out[n].v, &vb, 8);
        n++;
    }
    return n;
}

/* Decode the float samples of s in [mint, maxt] into out (room for series_bound()), merging
 * the out-of-order ones in. */
static size_t series_decode(const struct mseries *s, int64_t mint, int64_t maxt,
                            struct mtd_sample *out)
{
    size_t m = 0, lo = 0;
    if (s->x && s->x->nooo) {
        lo = ooo_lower(s->x, mint);
        for (size_t i = lo; i < s->x->nooo && s->x->ooo[i].t <= maxt; i++)
            m++;
    }
    struct mtd_sample *in = out + m;
    size_t n = 0;
    for (size_t k = 0; k < s->nchunks; k++)
        if (s->chunks[k].mint <= maxt && s->chunks[k].maxt >= mint)
            n += decode_into(s->chunks[k].b, s->chunks[k].len, mint, maxt, in + n);
    if (s->open.b && s->open.n > 0 && s->open_mint <= maxt && s->in_last_t >= mint)
        n += decode_into(s->open.b, mtd_xor_bytes(&s->open), mint, maxt, in + n);
    if (m == 0)
        return n;
    /* Merge in-order (at out[m..m+n)) with ooo[lo..lo+m) into out[0..); the write index never
     * passes the read index of the in-order part. */
    const struct mtd_sample *o = s->x->ooo + lo;
    size_t i = 0, j = 0, w = 0;
    while (i < n || j < m) {
        if (j >= m || (i < n && in[i].t <= o[j].t)) {
            if (j < m && i < n && in[i].t == o[j].t)
                j++;
            out[w++] = in[i++];
        } else {
            out[w++] = o[j++];
        }
    }
    return w;
}

/* ---- native histogram encoding -----------------------------------------------------------
 * varint schema | u8 reset hint | f64 zero threshold | cnt zero count | cnt count | f64 sum |
 * uvarint npos | npos x (varint index delta, cnt) | uvarint nneg | ... | uvarint ncustom |
 * ncustom x f64, where cnt is uvarint(2k) for an integral count k < 2^52, else uvarint(1) and
 * the 8 bytes of the double (LE). The same bytes are the histogram's WAL payload. */

static void put_f64(struct obs_sbuf *b, double v);

static void put_cnt(struct obs_sbuf *b, double c)
{
    if (c >= 0 && c < 4503599627370496.0 && c == (double)(uint64_t)c) {
        obs_sbuf_uvarint(b, (uint64_t)c << 1);
    } else {
        obs_sbuf_uvarint(b, 1);
        put_f64(b, c);
    }
}

static void put_buckets(struct obs_sbuf *b, const int32_t *idx, const double *cnt, size_t n)
{
    int64_t prev = 0;
    obs_sbuf_uvarint(b, n);
    for (size_t i = 0; i < n; i++) {
        obs_sbuf_varint(b, (int64_t)idx[i] - prev);
        prev = idx[i];
        put_cnt(b, cnt[i]);
    }
}

/* Encode h into b. Returns 0 or OBS_EINVAL for an unsupported schema / unsorted buckets. */
static int hist_encode(struct obs_sbuf *b, const struct mtd_ql_hist *h)
{
    if (!((h->schema >= -4 && h->schema <= 8) || h->schema == MTD_QL_SCHEMA_CUSTOM))
        return OBS_EINVAL;
    for (size_t i = 1; i < h->np; i++)
        if (h->pidx[i] <= h->pidx[i - 1])
            return OBS_EINVAL;
    for (size_t i = 1; i < h->nn; i++)
        if (h->nidx[i] <= h->nidx[i - 1])
            return OBS_EINVAL;
    obs_sbuf_varint(b, h->schema);
    obs_sbuf_putc(b, (char)h->crh);
    put_f64(b, h->zero_threshold);
    put_cnt(b, h->zero_count);
    put_cnt(b, h->count);
    put_f64(b, h->sum);
    put_buckets(b, h->pidx, h->pcnt, h->np);
    put_buckets(b, h->nidx, h->ncnt, h->nn);
    obs_sbuf_uvarint(b, h->ncustom);
    for (size_t i = 0; i < h->ncustom; i++)
        put_f64(b, h->custom[i]);
    return 0;
}
/* ---- WAL encoding ----------------------------------------------------------------------- */

static void put_str(struct obs_sbuf *b, const char *s)
{
    size_t n = strlen(s);
    obs_sbuf_uvarint(b, n);
    obs_sbuf_append(b, s, n);
}

static void put_f64(struct obs_sbuf *b, double v)
{
    uint64_t u;
    uint8_t x[8];
    memcpy(&u, &v, 8);
    for (int i = 0; i < 8; i++)
        x[i] = (uint8_t)(u >> (8 * i));
    obs_sbuf_append(b, x, 8);
}

struct rd {
    const uint8_t *p, *end;
    int bad;
};

static uint64_t rd_uv(struct rd *r)
{
    uint64_t v = 0;
    size_t n = obs_uvarint_decode(r->p, r->end, &v);
    if (n == 0) {
        r->bad = 1;
        return 0;
    }
    r->p += n;
    return v;
}

static int64_t rd_v(struct rd *r)
{
    int64_t v = 0;
    size_t n = obs_varint_decode(r->p, r->end, &v);
    if (n == 0) {
        r->bad = 1;
        return 0;
    }
    r->p += n;
    return v;
}

static double rd_f64(struct rd *r)
{
    uint64_t u = 0;
    double v;
    if (r->end - r->p < 8) {
        r->bad = 1;
        return 0;
    }
    for (int i = 0; i < 8; i++)
        u |= (uint64_t)r->p[i] << (8 * i);
    r->p += 8;
    memcpy(&v, &u, 8);
    return v;
}

/* Borrow n bytes. */
static const uint8_t *rd_bytes(struct rd *r, uint64_t n)
{
    if (r->bad || (uint64_t)(r->end - r->p) < n) {
        r->bad = 1;
        return NULL;
    }
    const uint8_t *p = r->p;
    r->p += n;
    return p;
}

/* Read a str into a NUL-terminated copy in buf (grown as needed). */
static char *rd_str(struct rd *r, struct obs_sbuf *buf)
{
    uint64_t n = rd_uv(r);
    if (r->bad || (uint64_t)(r->end - r->p) < n) {
        r->bad = 1;
        return NULL;
    }
    size_t off = buf->len;
    obs_sbuf_append(buf, r->p, (size_t)n);
    obs_sbuf_putc(buf, '\0');
    if (buf->oom) {
        r->bad = 1;
        return NULL;
    }
    r->p += n;
    return (char *)(uintptr_t)off; /* offset; resolved once the buffer stops moving */
}

static double rd_cnt(struct rd *r)
{
    uint64_t u = rd_uv(r);
    if (u & 1)
        return rd_f64(r);
    return (double)(u >> 1);
}

static size_t rd_buckets(struct rd *r, struct obs_arena *ar, int32_t **idx, double **cnt)
{
    uint64_t n = rd_uv(r);
    *idx = NULL;
    *cnt = NULL;
    if (r->bad || n == 0 || n > (uint64_t)(r->end - r->p)) {
        if (n)
            r->bad = 1;
        return 0;
    }
    *idx = obs_arena_alloc(ar, n * sizeof **idx);
    *cnt = obs_arena_alloc(ar, n * sizeof **cnt);
    if (*idx == NULL || *cnt == NULL) {
        r->bad = 1;
        return 0;
    }
    int64_t prev = 0;
    for (uint64_t i = 0; i < n && !r->bad; i++) {
        prev = (int64_t)((uint64_t)prev + (uint64_t)rd_v(r));
        (*idx)[i] = (int32_t)prev;
        (*cnt)[i] = rd_cnt(r);
    }
    return (size_t)n;
}

/* Decode a histogram encoding into arena memory. NULL on bad data or OOM. */
static struct mtd_ql_hist *hist_decode(const uint8_t *b, size_t len, struct obs_arena *ar)
{
    struct rd r = {b, b + len, 0};
    struct mtd_ql_hist *h = obs_arena_calloc(ar, sizeof *h);
    if (h == NULL)
        return NULL;
    h->schema = (int32_t)rd_v(&r);
    const uint8_t *crh = rd_bytes(&r, 1);
    h->crh = crh ? (enum mtd_ql_crh)(*crh & 3) : MTD_QL_CRH_UNKNOWN;
    h->zero_threshold = rd_f64(&r);
    h->zero_count = rd_cnt(&r);
    h->count = rd_cnt(&r);
    h->sum = rd_f64(&r);
    h->np = rd_buckets(&r, ar, &h->pidx, &h->pcnt);
    h->nn = rd_buckets(&r, ar, &h->nidx, &h->ncnt);
    uint64_t nc = rd_uv(&r);
    if (!r.bad && nc > 0 && nc <= (uint64_t)(r.end - r.p) / 8) {
        h->custom = obs_arena_alloc(ar, nc * sizeof *h->custom);
        if (h->custom == NULL)
            return NULL;
        for (uint64_t i = 0; i < nc; i++)
            h->custom[i] = rd_f64(&r);
        h->ncustom = (size_t)nc;
    } else if (nc > 0) {
        r.bad = 1;
    }
    return r.bad ? NULL : h;
}

/* Is this encoding valid? (WAL replay checks every histogram before storing it.) */
static int hist_valid(const uint8_t *b, size_t len)
{
    struct obs_arena *ar = obs_arena_new(4096);
    if (ar == NULL)
        return 0;
    int ok = hist_decode(b, len, ar) != NULL;
    obs_arena_free(ar);
    return ok;
}

struct replay {
    struct mtd_head *h;
    uint64_t records, samples, skipped;
};

static struct mseries *ref_series(struct mtd_head *h, uint64_t ref)
{
    return ref < h->capref ? h->by_ref[ref] : NULL;
}

static int replay_series(struct replay *rp, struct rd *r)
{
    struct obs_sbuf buf;
    struct obs_label *l = NULL;
    uint64_t cnt = rd_uv(r);
    int rc = 0;
    obs_sbuf_init(&buf);
    for (uint64_t i = 0; i < cnt && !r->bad; i++) {
        obs_sbuf_reset(&buf);
        uint64_t ref = rd_uv(r);
        char *ten = rd_str(r, &buf);
        uint64_t nl = rd_uv(r);
        if (r->bad || nl > 10000 || ref == 0 || ref > (1ULL << 40))
            break;
        obs_free(l);
        l = obs_malloc((nl ? nl : 1) * sizeof *l);
        if (l == NULL) {
            rc = OBS_ENOMEM;
            break;
        }
        for (uint64_t k = 0; k < nl && !r->bad; k++) {
            l[k].name = rd_str(r, &buf);
            l[k].value = rd_str(r, &buf);
        }
        if (r->bad)
            break;
        for (uint64_t k = 0; k < nl; k++) {
            l[k].name = buf.p + (uintptr_t)l[k].name;
            l[k].value = buf.p + (uintptr_t)l[k].value;
        }
        const char *tname = buf.p + (uintptr_t)ten;
        struct tenant *t = tenant_get(rp->h, tname, 1);
        if (t == NULL) {
            rc = OBS_ENOMEM;
            break;
        }
        uint64_t hash = labels_hash(l, nl);
        struct mseries *s = series_lookup(t, hash, l, nl);
        if (s == NULL) {
            if (ref < rp->h->capref && rp->h->by_ref[ref] != NULL)
                continue; /* ref reused for other labels: should not happen; ignore */
            s = series_create(rp->h, t, hash, l, nl, ref);
            if (s == NULL) {
                rc = OBS_ENOMEM;
                break;
            }
        } else if (ref_slot(rp->h, ref) == 0) {
            rp->h->by_ref[ref] = s; /* alias: same labels written twice under two refs */
            if (ref >= rp->h->next_ref)
                rp->h->next_ref = ref + 1;
        }
        s->logged = 1;
    }
    obs_free(l);
    obs_sbuf_deinit(&buf);
    return rc;
}

static int replay_samples(struct replay *rp, struct rd *r)
{
    uint64_t cnt = rd_uv(r);
    int64_t t = 0;
    for (uint64_t i = 0; i < cnt && !r->bad; i++) {
        uint64_t ref = rd_uv(r);
        t = (int64_t)((uint64_t)t + (uint64_t)rd_v(r)); /* deltas wrap */
        double v = rd_f64(r);
        if (r->bad)
            break;
        struct mseries *s = ref_series(rp->h, ref);
        if (s == NULL || t < s->tenant->min_valid) { /* unknown, or truncated away */
            rp->skipped++;
            continue;
        }
        int rc = series_apply_float(rp->h, s, t, v);
        if (rc < 0)
            return rc;
        if (rc == 1)
            rp->skipped++;
        else
            rp->samples++;
    }
    return 0;
}

/* 'H': uvarint count; per sample: uvarint ref, varint t (absolute), uvarint len, len bytes of
 * hist_encode (len 0 = stale marker). */
static int replay_hists(struct replay *rp, struct rd *r)
{
    uint64_t cnt = rd_uv(r);
    for (uint64_t i = 0; i < cnt && !r->bad; i++) {
        uint64_t ref = rd_uv(r);
        int64_t t = rd_v(r);
        uint64_t len = rd_uv(r);
        const uint8_t *p = rd_bytes(r, len);
        if (r->bad)
            break;
        struct mseries *s = ref_series(rp->h, ref);
        if (s == NULL || t < s->tenant->min_valid || (len > 0 && !hist_valid(p, len))) {
            rp->skipped++;
            continue;
        }
        uint8_t *b = NULL;
        if (len > 0) {
            b = obs_malloc(len);
            if (b == NULL)
                return OBS_ENOMEM;
            memcpy(b, p, len);
        }
        int rc = series_apply_hist(rp->h, s, t, b, (uint32_t)len);
        if (rc != 0)
            obs_free(b);
        if (rc < 0)
            return rc;
        if (rc == 1)
            rp->skipped++;
        else
            rp->samples++;
    }
    return 0;
}

/* 'C' (checkpoints): uvarint count; per chunk: uvarint ref, uvarint len, the XOR chunk bytes.
 * A chunk newer than everything of an empty-open-chunk series is adopted as it is; otherwise
 * (a checkpoint replayed over the segments it summarises) its samples are applied one by
 * one, which skips those already present. */
static int replay_chunks(struct replay *rp, struct rd *r)
{
    uint64_t cnt = rd_uv(r);
    for (uint64_t i = 0; i < cnt && !r->bad; i++) {
        uint64_t ref = rd_uv(r);
        uint64_t len = rd_uv(r);
        const uint8_t *p = rd_bytes(r, len);
        if (r->bad)
            break;
        struct mseries *s = ref_series(rp->h, ref);
        if (s == NULL || len < 2 || len > UINT32_MAX) {
            rp->skipped++;
            continue;
        }
        /* Validate and find the chunk's range. */
        struct mtd_xor_iter it;
        int64_t mint = 0, maxt = 0;
        double lastv = 0;
        uint32_t n = 0;
        int ok = 1;
        mtd_xor_iter_init(&it, p, len);
        int rc;
        while ((rc = mtd_xor_iter_next(&it)) == 1) {
            if (n > 0 && it.t <= maxt) {
                ok = 0;
                break;
            }
            if (n == 0)
                mint = it.t;
            maxt = it.t;
            lastv = it.v;
            n++;
        }
        if (rc < 0 || !ok || n == 0 || maxt < s->tenant->min_valid) {
            rp->skipped++; /* bad, or wholly below the tenant's truncation point */
            continue;
        }
        int adopt = s->open.b == NULL && (series_count(s) == 0 || mint > s->last_t);
        if (!adopt) {
            mtd_xor_iter_init(&it, p, len);
            while (mtd_xor_iter_next(&it) == 1) {
                rc = series_apply_float(rp->h, s, it.t, it.v);
                if (rc < 0)
                    return rc;
                if (rc == 1)
                    rp->skipped++;
                else
                    rp->samples++;
            }
            continue;
        }
        if (n < MTD_CHUNK_SAMPLES) {
            /* A partly filled chunk becomes the open chunk again. */
            if (mtd_xor_from_bytes(&s->open, p, len) != 0)
                return OBS_ENOMEM;
            s->open_mint = mint;
        } else {
            if (s->nchunks == s->capchunks) {
                size_t nc = s->capchunks ? s->capchunks * 2 : 4;
                struct hchunk *nv = obs_realloc(s->chunks, nc * sizeof *nv);
                if (nv == NULL)
                    return OBS_ENOMEM;
                s->chunks = nv;
                s->capchunks = nc;
            }
            uint8_t *b = obs_malloc(len);
            if (b == NULL)
                return OBS_ENOMEM;
            memcpy(b, p, len);
            s->chunks[s->nchunks++] = (struct hchunk){b, (uint32_t)len, (uint16_t)n, mint, maxt};
        }
        int first = series_count(s) == 0;
        s->n += n;
        s->nin += n;
        s->in_last_t = maxt;
        s->last_v = lastv;
        if (first)
            s->mint = mint;
        s->last_t = maxt;
        s->last_kind = K_FLOAT;
        tenant_see(s->tenant, maxt);
        rp->h->total_samples += n;
        rp->samples += n;
    }
    return 0;
}

/* Exemplar labels are kept as nl NUL-terminated (name, value) pairs in one allocation. */
static char *ex_labels_pack(const struct obs_label *l, size_t n)
{
    size_t len = 1;
    for (size_t i = 0; i < n; i++)
        len += strlen(l[i].name) + strlen(l[i].value) + 2;
    char *p = obs_malloc(len), *q = p;
    if (p == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        size_t a = strlen(l[i].name) + 1, b = strlen(l[i].value) + 1;
        memcpy(q, l[i].name, a);
        q += a;
        memcpy(q, l[i].value, b);
        q += b;
    }
    *q = '\0';
    return p;
}

static uint64_t ex_labels_hash(const char *p, uint32_t nl)
{
    const char *q = p;
    for (uint32_t i = 0; i < 2 * nl; i++)
        q += strlen(q) + 1;
    return XXH3_64bits(p, (size_t)(q - p));
}

/* Size the tenant's ring to cap (keeping the newest exemplars). */
static int ex_ring_resize(struct mtd_head *h, struct tenant *t, size_t cap)
{
    if (cap == t->excap)
        return 0;
    struct exm *ne = cap ? obs_calloc(cap, sizeof *ne) : NULL;
    if (cap && ne == NULL)
        return OBS_ENOMEM;
    size_t keep = t->exn < cap ? t->exn : cap, k = 0;
    /* oldest kept = (exnext - exn + (exn - keep)) mod excap */
    for (size_t i = 0; i < t->exn; i++) {
        size_t idx = (t->exnext + t->excap - t->exn + i) % t->excap;
        if (i < t->exn - keep) {
            obs_free(t->ex[idx].l);
            h->total_exemplars--;
            continue;
        }
        ne[k++] = t->ex[idx];
    }
    obs_free(t->ex);
    t->ex = ne;
    t->excap = cap;
    t->exn = keep;
    t->exnext = cap ? keep % cap : 0;
    return 0;
}

/* Store an exemplar (l taken) in the ring. */
static void ex_store(struct mtd_head *h, struct mseries *s, int64_t ts, double v, char *l,
                     uint32_t nl)
{
    struct tenant *t = s->tenant;
    struct sext *x = sext_of(s);
    if (t->excap == 0 || x == NULL) {
        obs_free(l);
        return;
    }
    struct exm *e = &t->ex[t->exnext];
    if (e->s != NULL) {
        obs_free(e->l);
        h->total_exemplars--;
        t->exn--;
    }
    *e = (struct exm){s, ts, v, l, nl};
    t->exnext = (t->exnext + 1) % t->excap;
    t->exn++;
    h->total_exemplars++;
    x->has_ex = 1;
    x->ex_t = ts;
    x->ex_v = v;
    x->ex_lhash = ex_labels_hash(l, nl);
}

/* 'E': uvarint count; per exemplar: uvarint ref, varint t, f64 v, uvarint n, n x (str, str). */
static int replay_exemplars(struct replay *rp, struct rd *r)
{
    struct obs_sbuf buf;
    uint64_t cnt = rd_uv(r);
    obs_sbuf_init(&buf);
    for (uint64_t i = 0; i < cnt && !r->bad; i++) {
        uint64_t ref = rd_uv(r);
        int64_t t = rd_v(r);
        double v = rd_f64(r);
        uint64_t nl = rd_uv(r);
        obs_sbuf_reset(&buf);
        for (uint64_t k = 0; k < nl && !r->bad; k++) {
            uint64_t n = rd_uv(r);
            const uint8_t *p = rd_bytes(r, n);
            if (p && memchr(p, 0, n) == NULL) {
                obs_sbuf_append(&buf, p, n);
                obs_sbuf_putc(&buf, '\0');
            } else {
                r->bad = 1;
            }
            n = rd_uv(r);
            p = rd_bytes(r, n);
            if (p && memchr(p, 0, n) == NULL) {
                obs_sbuf_append(&buf, p, n);
                obs_sbuf_putc(&buf, '\0');
            } else {
                r->bad = 1;
            }
        }
        if (r->bad || buf.oom || nl > 1000)
            break;
        struct mseries *s = ref_series(rp->h, ref);
        if (s == NULL || s->tenant->excap == 0 || t < s->tenant->min_valid)
            continue;
        if (s->x && s->x->has_ex && t <= s->x->ex_t)
            continue; /* already there (checkpoint over its own segments) */
        char *l = obs_malloc(buf.len + 1);
        if (l == NULL) {
            obs_sbuf_deinit(&buf);
            return OBS_ENOMEM;
        }
        memcpy(l, buf.p, buf.len);
        l[buf.len] = '\0';
        ex_store(rp->h, s, t, v, l, (uint32_t)nl);
    }
    obs_sbuf_deinit(&buf);
    return 0;
}

static int set_meta(struct tenant *t, const char *family, int type, const char *help,
                    const char *unit)
{
    struct meta *m = smap_get(&t->meta, family);
    char *nh = obs_strdup(help), *nu = obs_strdup(unit);
    if (nh == NULL || nu == NULL) {
        obs_free(nh);
        obs_free(nu);
        return OBS_ENOMEM;
    }
    if (m == NULL) {
        m = obs_calloc(1, sizeof *m);
        if (m == NULL || smap_put(&t->meta, family, m) == NULL) {
            obs_free(m);
            obs_free(nh);
            obs_free(nu);
            return OBS_ENOMEM;
        }
    }
    obs_free(m->help);
    obs_free(m->unit);
    m->type = type;
    m->help = nh;
    m->unit = nu;
    return 0;
}

static int replay_meta(struct replay *rp, struct rd *r)
{
    struct obs_sbuf buf;
    int rc = 0;
    obs_sbuf_init(&buf);
    char *ten = rd_str(r, &buf);
    uint64_t cnt = rd_uv(r);
    if (r->bad) {
        obs_sbuf_deinit(&buf);
        return 0;
    }
    for (uint64_t i = 0; i < cnt && !r->bad; i++) {
        size_t keep = buf.len;
        char *fam = rd_str(r, &buf);
        int type = (int)rd_uv(r);
        char *help = rd_str(r, &buf);
        char *unit = rd_str(r, &buf);
        if (r->bad)
            break;
        struct tenant *t = tenant_get(rp->h, buf.p + (uintptr_t)ten, 1);
        if (t == NULL || set_meta(t, buf.p + (uintptr_t)fam, type, buf.p + (uintptr_t)help,
                                  buf.p + (uintptr_t)unit) != 0) {
            rc = OBS_ENOMEM;
            break;
        }
        buf.len = keep;
    }
    obs_sbuf_deinit(&buf);
    return rc;
}

/* 'X' exemplar ring capacity of a tenant: str tenant, uvarint cap (so replay keeps as many
 * exemplars as the ring had). */
static int replay_excap(struct replay *rp, struct rd *r)
{
    struct obs_sbuf buf;
    obs_sbuf_init(&buf);
    char *ten = rd_str(r, &buf);
    uint64_t cap = rd_uv(r);
    int rc = 0;
    if (!r->bad && cap <= (1u << 26)) {
        struct tenant *t = tenant_get(rp->h, buf.p + (uintptr_t)ten, 1);
        rc = t ? ex_ring_resize(rp->h, t, (size_t)cap) : OBS_ENOMEM;
    }
    obs_sbuf_deinit(&buf);
    return rc;
}

static int tenant_truncate(struct mtd_head *h, struct tenant *t, int64_t before);

/* 'T' truncation point of a tenant: str tenant, varint before (ms). Everything older that
 * was replayed so far is dropped as mtd_head_truncate did, and later records below it are
 * skipped, so a restart never brings back what was shipped and truncated. */
static int replay_truncate(struct replay *rp, struct rd *r)
{
    struct obs_sbuf buf;
    obs_sbuf_init(&buf);
    char *ten = rd_str(r, &buf);
    int64_t before = rd_v(r);
    int rc = 0;
    if (!r->bad) {
        struct tenant *t = tenant_get(rp->h, buf.p + (uintptr_t)ten, 1);
        rc = t ? tenant_truncate(rp->h, t, before) : OBS_ENOMEM;
    }
    obs_sbuf_deinit(&buf);
    return rc;
}

static int replay_rec(const uint8_t *rec, size_t len, void *arg)
{
    struct replay *rp = arg;
    struct rd r = {rec + 1, rec + len, 0};
    int rc = 0;
    if (len < 1)
        return 0;
    rp->records++;
    switch (rec[0]) {
    case 'S': rc = replay_series(rp, &r); break;
    case 'D': rc = replay_samples(rp, &r); break;
    case 'M': rc = replay_meta(rp, &r); break;
    case 'H': rc = replay_hists(rp, &r); break;
    case 'C': rc = replay_chunks(rp, &r); break;
    case 'E': rc = replay_exemplars(rp, &r); break;
    case 'X': rc = replay_excap(rp, &r); break;
    case 'T': rc = replay_truncate(rp, &r); break;
    default: break; /* unknown record types from a newer version are skipped */
    }
    if (r.bad)
        obs_log_warn("head: WAL record of type %c is malformed; kept what decoded", rec[0]);
    return rc;
}
/* ---- checkpoints ------------------------------------------------------------------------ */

#define CKPT_RECORD_BYTES (256u << 10)

/* A record being built: type byte + uvarint count + body. */
struct recb {
    struct obs_wal *w;
    char type;
    uint64_t cnt;
    struct obs_sbuf body, out;
    int rc;
};

static void recb_init(struct recb *rb, struct obs_wal *w, char type)
{
    memset(rb, 0, sizeof *rb);
    rb->w = w;
    rb->type = type;
    obs_sbuf_init(&rb->body);
    obs_sbuf_init(&rb->out);
}

static void recb_flush(struct recb *rb)
{
    if (rb->cnt == 0 || rb->rc != 0)
        return;
    obs_sbuf_reset(&rb->out);
    obs_sbuf_putc(&rb->out, rb->type);
    obs_sbuf_uvarint(&rb->out, rb->cnt);
    obs_sbuf_append(&rb->out, rb->body.p, rb->body.len);
    if (rb->out.oom || rb->body.oom)
        rb->rc = OBS_ENOMEM;
    else
        rb->rc = obs_wal_append(rb->w, rb->out.p, rb->out.len);
    obs_sbuf_reset(&rb->body);
    rb->cnt = 0;
}

/* Count one entry just written to rb->body; flush when the record is big enough. */
static void recb_done(struct recb *rb)
{
    rb->cnt++;
    if (rb->body.len >= CKPT_RECORD_BYTES)
        recb_flush(rb);
}

static void recb_deinit(struct recb *rb)
{
    obs_sbuf_deinit(&rb->body);
    obs_sbuf_deinit(&rb->out);
}

static void enc_series(struct obs_sbuf *b, const struct mseries *s)
{
    obs_sbuf_uvarint(b, s->ref);
    put_str(b, s->tenant->name);
    obs_sbuf_uvarint(b, s->nlabels);
    for (size_t k = 0; k < s->nlabels; k++) {
        put_str(b, s->labels[k].name);
        put_str(b, s->labels[k].value);
    }
}

static void enc_exemplar(struct obs_sbuf *b, const struct exm *e)
{
    obs_sbuf_uvarint(b, e->s->ref);
    obs_sbuf_varint(b, e->t);
    put_f64(b, e->v);
    obs_sbuf_uvarint(b, e->nl);
    const char *p = e->l;
    for (uint32_t i = 0; i < 2 * e->nl; i++) {
        put_str(b, p);
        p += strlen(p) + 1;
    }
}

/* Append a 'T' record (str tenant, varint before). */
static int log_truncation(struct obs_wal *w, const char *tenant, int64_t before)
{
    struct obs_sbuf b;
    obs_sbuf_init(&b);
    obs_sbuf_putc(&b, 'T');
    put_str(&b, tenant);
    obs_sbuf_varint(&b, before);
    int rc = b.oom ? OBS_ENOMEM : obs_wal_append(w, b.p, b.len);
    obs_sbuf_deinit(&b);
    return rc;
}

/* Every record of the checkpoint, in replay order. */
static int checkpoint_write(struct mtd_head *h)
{
    struct recb rs, rc, rd, rh, re;
    recb_init(&rs, h->wal, 'S');
    recb_init(&rc, h->wal, 'C');
    recb_init(&rd, h->wal, 'D');
    recb_init(&rh, h->wal, 'H');
    recb_init(&re, h->wal, 'E');
    int rcode = 0;
    const char **tn = smap_sorted_keys(&h->tenants);
    if (tn == NULL)
        rcode = OBS_ENOMEM;
    /* Truncation points first: replayed over the old segments (a crash before _end), they
     * drop what those hold below the point before the checkpoint's own data lands. */
    for (size_t ti = 0; rcode == 0 && ti < h->tenants.n; ti++) {
        const struct tenant *t = smap_get(&h->tenants, tn[ti]);
        if (t->min_valid != INT64_MIN)
            rcode = log_truncation(h->wal, t->name, t->min_valid);
    }
    /* Series first (all tenants), then their data: replay needs the refs. */
    for (size_t ti = 0; rcode == 0 && ti < h->tenants.n; ti++) {
        const struct tenant *t = smap_get(&h->tenants, tn[ti]);
        for (size_t i = 0; i < t->nseries && rs.rc == 0; i++) {
            enc_series(&rs.body, t->series[i]);
            recb_done(&rs);
        }
    }
    recb_flush(&rs);
    rcode = rcode ? rcode : rs.rc;
    /* Chunks of every series, then out-of-order samples and histograms (so replay can adopt
     * the chunks as they are before anything else lands in those series). */
    for (size_t ti = 0; rcode == 0 && ti < h->tenants.n; ti++) {
        const struct tenant *t = smap_get(&h->tenants, tn[ti]);
        for (size_t i = 0; i < t->nseries && rc.rc == 0; i++) {
            const struct mseries *s = t->series[i];
            for (size_t k = 0; k < s->nchunks && rc.rc == 0; k++) {
                obs_sbuf_uvarint(&rc.body, s->ref);
                obs_sbuf_uvarint(&rc.body, s->chunks[k].len);
                obs_sbuf_append(&rc.body, s->chunks[k].b, s->chunks[k].len);
                recb_done(&rc);
            }
            if (s->open.b && s->open.n > 0 && rc.rc == 0) {
                obs_sbuf_uvarint(&rc.body, s->ref);
                obs_sbuf_uvarint(&rc.body, mtd_xor_bytes(&s->open));
                obs_sbuf_append(&rc.body, s->open.b, mtd_xor_bytes(&s->open));
                recb_done(&rc);
            }
        }
    }
    recb_flush(&rc);
    rcode = rcode ? rcode : rc.rc;
    int64_t prev = 0; /* 'D' t deltas chain over the record */
    for (size_t ti = 0; rcode == 0 && ti < h->tenants.n; ti++) {
        const struct tenant *t = smap_get(&h->tenants, tn[ti]);
        for (size_t i = 0; i < t->nseries && rcode == 0; i++) {
            const struct mseries *s = t->series[i];
            if (s->x == NULL)
                continue;
            for (uint32_t k = 0; k < s->x->nooo && rd.rc == 0; k++) {
                if (rd.cnt == 0)
                    prev = 0;
                obs_sbuf_uvarint(&rd.body, s->ref);
                obs_sbuf_varint(&rd.body, (int64_t)((uint64_t)s->x->ooo[k].t - (uint64_t)prev));
                prev = s->x->ooo[k].t;
                put_f64(&rd.body, s->x->ooo[k].v);
                recb_done(&rd);
            }
            for (uint32_t k = 0; k < s->x->nhs && rh.rc == 0; k++) {
                obs_sbuf_uvarint(&rh.body, s->ref);
                obs_sbuf_varint(&rh.body, s->x->hs[k].t);
                obs_sbuf_uvarint(&rh.body, s->x->hs[k].b ? s->x->hs[k].len : 0);
                if (s->x->hs[k].b)
                    obs_sbuf_append(&rh.body, s->x->hs[k].b, s->x->hs[k].len);
                recb_done(&rh);
            }
            rcode = rd.rc ? rd.rc : rh.rc;
        }
    }
    recb_flush(&rd);
    recb_flush(&rh);
    rcode = rcode ? rcode : rd.rc ? rd.rc : rh.rc;
    /* Exemplar ring capacities and exemplars (oldest first), then metadata. */
    for (size_t ti = 0; rcode == 0 && ti < h->tenants.n; ti++) {
        const struct tenant *t = smap_get(&h->tenants, tn[ti]);
        struct obs_sbuf b;
        obs_sbuf_init(&b);
        obs_sbuf_putc(&b, 'X');
        put_str(&b, t->name);
        obs_sbuf_uvarint(&b, t->excap);
        rcode = b.oom ? OBS_ENOMEM : obs_wal_append(h->wal, b.p, b.len);
        for (size_t i = 0; rcode == 0 && i < t->exn; i++) {
            const struct exm *e = &t->ex[(t->exnext + t->excap - t->exn + i) % t->excap];
            enc_exemplar(&re.body, e);
            recb_done(&re);
            rcode = re.rc;
        }
        recb_flush(&re);
        rcode = rcode ? rcode : re.rc;
        if (rcode == 0 && t->meta.n > 0) {
            const char **fam = smap_sorted_keys(&t->meta);
            obs_sbuf_reset(&b);
            obs_sbuf_putc(&b, 'M');
            put_str(&b, t->name);
            obs_sbuf_uvarint(&b, t->meta.n);
            for (size_t i = 0; fam && i < t->meta.n; i++) {
                const struct meta *m = smap_get(&t->meta, fam[i]);
                put_str(&b, fam[i]);
                obs_sbuf_uvarint(&b, (uint64_t)m->type);
                put_str(&b, m->help);
                put_str(&b, m->unit);
            }
            rcode = fam == NULL || b.oom ? OBS_ENOMEM : obs_wal_append(h->wal, b.p, b.len);
            obs_free(fam);
        }
        obs_sbuf_deinit(&b);
    }
    obs_free(tn);
    recb_deinit(&rs);
    recb_deinit(&rc);
    recb_deinit(&rd);
    recb_deinit(&rh);
    recb_deinit(&re);
    return rcode;
}

int mtd_head_checkpoint(struct mtd_head *h, struct obs_err *err)
{
    if (h == NULL || h->wal == NULL)
        return 0;
    if (h->appender_open)
        return obs_err_set(err, OBS_EINVAL, "checkpoint while an appender is open");
    int64_t t0 = obs_mono_ns();
    int rc = obs_wal_checkpoint_begin(h->wal);
    if (rc == 0)
        rc = checkpoint_write(h);
    if (rc == 0)
        rc = obs_wal_checkpoint_end(h->wal);
    if (rc != 0) {
        /* The old segments are still there: nothing is lost, the next try starts over. */
        return obs_err_set(err, rc, "WAL checkpoint failed: %s", obs_rc_str(rc));
    }
    h->ckpt_bytes = obs_wal_size(h->wal);
    h->ckpt_at = h->ckpt_bytes;
    h->nckpt++;
    obs_log_info("head: WAL checkpoint done series=%zu samples=%llu bytes=%llu ms=%.1f",
                 h->total_series, (unsigned long long)h->total_samples,
                 (unsigned long long)h->ckpt_bytes, (double)(obs_mono_ns() - t0) / 1e6);
    return 0;
}

int mtd_head_maybe_checkpoint(struct mtd_head *h, struct obs_err *err)
{
    if (h == NULL || h->wal == NULL || h->appender_open)
        return 0;
    uint64_t size = obs_wal_size(h->wal);
    uint64_t grown = size > h->ckpt_at ? size - h->ckpt_at : 0;
    uint64_t need = h->wal_segment_bytes > h->ckpt_bytes ? h->wal_segment_bytes : h->ckpt_bytes;
    if (grown < need)
        return 0;
    int rc = mtd_head_checkpoint(h, err);
    return rc ? rc : 1;
}

/* ---- truncation ------------------------------------------------------------------------- */

/* Drop the samples of s older than before: whole closed chunks with maxt < before, the open
 * chunk when its newest sample is < before, out-of-order and histogram samples < before.
 * A chunk straddling before is kept whole (as Prometheus' head does). Returns the float
 * samples dropped; *nh gets the histogram samples dropped. */
static uint64_t series_truncate(struct mseries *s, int64_t before, uint64_t *nh)
{
    uint64_t nf = 0;
    size_t k = 0;
    *nh = 0;
    while (k < s->nchunks && s->chunks[k].maxt < before) {
        nf += s->chunks[k].n;
        obs_free(s->chunks[k].b);
        k++;
    }
    if (k > 0) {
        memmove(s->chunks, s->chunks + k, (s->nchunks - k) * sizeof *s->chunks);
        s->nchunks -= k;
    }
    if (s->nchunks == 0 && s->open.b != NULL && (s->open.n == 0 || s->in_last_t < before)) {
        nf += s->open.n;
        mtd_xor_deinit(&s->open);
        memset(&s->open, 0, sizeof s->open);
    }
    if (s->nchunks == 0 && s->chunks != NULL) {
        obs_free(s->chunks);
        s->chunks = NULL;
        s->capchunks = 0;
    }
    s->nin -= nf < s->nin ? nf : s->nin;
    struct sext *x = s->x;
    if (x != NULL) {
        uint32_t lo = ooo_lower(x, before);
        if (lo > 0) {
            memmove(x->ooo, x->ooo + lo, (x->nooo - lo) * sizeof *x->ooo);
            x->nooo -= lo;
            nf += lo;
        }
        lo = hs_lower(x, before);
        for (uint32_t i = 0; i < lo; i++)
            obs_free(x->hs[i].b);
        if (lo > 0) {
            memmove(x->hs, x->hs + lo, (x->nhs - lo) * sizeof *x->hs);
            x->nhs -= lo;
            *nh = lo;
        }
    }
    s->n -= nf < s->n ? nf : s->n;
    if (series_count(s) > 0 && (nf > 0 || *nh > 0)) {
        /* The newest sample is >= before (else everything went): only mint moves. */
        int64_t m = INT64_MAX;
        if (s->nchunks > 0)
            m = s->chunks[0].mint;
        else if (s->open.b != NULL && s->open.n > 0)
            m = s->open_mint;
        if (x && x->nooo > 0 && x->ooo[0].t < m)
            m = x->ooo[0].t;
        if (x && x->nhs > 0 && x->hs[0].t < m)
            m = x->hs[0].t;
        s->mint = m;
    }
    return nf;
}

static void ex_reverse(struct exm *e, size_t n)
{
    for (size_t i = 0; i < n / 2; i++) {
        struct exm x = e[i];
        e[i] = e[n - 1 - i];
        e[n - 1 - i] = x;
    }
}

/* Drop the exemplars of t older than before or of series marked gc, keeping the order of
 * the rest (in place: the ring is rotated so its oldest entry is at 0, then compacted). */
static void ex_ring_truncate(struct mtd_head *h, struct tenant *t, int64_t before)
{
    if (t->exn == 0)
        return;
    size_t start = (t->exnext + t->excap - t->exn) % t->excap;
    if (start > 0) { /* rotate left by start */
        ex_reverse(t->ex, start);
        ex_reverse(t->ex + start, t->excap - start);
        ex_reverse(t->ex, t->excap);
    }
    size_t w = 0;
    for (size_t i = 0; i < t->exn; i++) {
        struct exm e = t->ex[i];
        if (e.t < before || e.s->gc) {
            obs_free(e.l);
            h->total_exemplars--;
            continue;
        }
        t->ex[w++] = e;
    }
    for (size_t i = w; i < t->exn; i++)
        memset(&t->ex[i], 0, sizeof t->ex[i]);
    t->exn = w;
    t->exnext = w % t->excap;
}

/*
 * Remove the series marked gc from t (they hold no samples): give the survivors dense ids
 * again, rebuild the postings with them (fresh interned strings) and the hash table, clear
 * their refs, drop their exemplars. The postings are built aside first: on OOM nothing is
 * removed (the empty series stay; the next truncation tries again).
 */
static void tenant_gc(struct mtd_head *h, struct tenant *t, size_t ndead)
{
    t->vgen++; /* cached label values point into the postings being rebuilt */
    size_t nlive = t->nseries - ndead, nl = 0;
    for (size_t i = 0; i < t->nseries; i++)
        if (!t->series[i]->gc)
            nl += t->series[i]->nlabels;
    const char **np = obs_malloc((nl ? 2 * nl : 1) * sizeof *np);
    struct smap old = t->names;
    memset(&t->names, 0, sizeof t->names);
    int rc = np ? 0 : OBS_ENOMEM;
    size_t id = 0, o = 0;
    for (size_t i = 0; i < t->nseries && rc == 0; i++) {
        const struct mseries *s = t->series[i];
        if (s->gc)
            continue;
        for (size_t k = 0; k < s->nlabels && rc == 0; k++, o += 2)
            rc = postings_add(t, s->labels[k].name, s->labels[k].value, (uint32_t)id,
                              &np[o], &np[o + 1]);
        id++;
    }
    if (rc != 0) {
        smap_free(&t->names, values_free);
        t->names = old;
        obs_free(np);
        for (size_t i = 0; i < t->nseries; i++)
            t->series[i]->gc = 0;
        obs_log_warn("head: out of memory removing %zu empty series of tenant %s; kept", ndead,
                     t->name);
        return;
    }
    for (size_t i = 0; i < h->capref; i++)
        if (h->by_ref[i] != NULL && h->by_ref[i]->tenant == t && h->by_ref[i]->gc)
            h->by_ref[i] = NULL; /* also aliases (one label set replayed under two refs) */
    memset(t->ht, 0, t->htcap * sizeof *t->ht);
    id = 0;
    o = 0;
    for (size_t i = 0; i < t->nseries; i++) {
        struct mseries *s = t->series[i];
        if (s->gc) {
            sext_free(s->x);
            obs_free(s->chunks);
            mtd_xor_deinit(&s->open);
            obs_free(s);
            continue;
        }
        for (size_t k = 0; k < s->nlabels; k++, o += 2) {
            s->labels[k].name = np[o];
            s->labels[k].value = np[o + 1];
        }
        s->id = (uint32_t)id;
        t->series[id++] = s;
        ht_put(t->ht, t->htcap, s);
    }
    t->nseries = nlive;
    h->total_series -= ndead;
    smap_free(&old, values_free);
    obs_free(np);
}

/* Truncate t in memory below before (see mtd_head_truncate); no WAL. Returns 0. */
static int tenant_truncate(struct mtd_head *h, struct tenant *t, int64_t before)
{
    if (before <= t->min_valid)
        return 0; /* done already: nothing older can have come in since */
    t->min_valid = before;
    size_t ndead = 0;
    uint64_t nf = 0, nh = 0;
    for (size_t i = 0; i < t->nseries; i++) {
        struct mseries *s = t->series[i];
        uint64_t dh;
        nf += series_truncate(s, before, &dh);
        nh += dh;
        /* Empty, and no exemplar to keep it for: removed. (The loop thread owns the head
         * and no appender is open, so nothing can be appending to it right now.) */
        if (series_count(s) == 0 && !(s->x && s->x->has_ex && s->x->ex_t >= before)) {
            s->gc = 1;
            ndead++;
        }
    }
    h->total_samples -= nf < h->total_samples ? nf : h->total_samples;
    h->total_hist -= nh < h->total_hist ? nh : h->total_hist;
    ex_ring_truncate(h, t, before);
    if (ndead > 0)
        tenant_gc(h, t, ndead);
    return 0;
}

static int truncate_one(struct mtd_head *h, const char *tenant, int64_t before, int *did,
                        struct obs_err *err)
{
    *did = 0;
    if (h == NULL || tenant == NULL)
        return obs_err_set(err, OBS_EINVAL, "truncate: no head or tenant");
    if (h->appender_open)
        return obs_err_set(err, OBS_EINVAL, "truncate while an appender is open");
    struct tenant *t = tenant_get(h, tenant, 1);
    if (t == NULL)
        return obs_err_set(err, OBS_ENOMEM, "out of memory");
    if (before <= t->min_valid)
        return 0;
    if (h->wal != NULL) {
        /* The point is durable before anything is dropped: replay then drops the same. */
        int rc = log_truncation(h->wal, tenant, before);
        if (rc == 0)
            rc = obs_wal_sync(h->wal);
        if (rc != 0)
            return obs_err_set(err, rc, "truncate: WAL write failed: %s", obs_rc_str(rc));
        h->unsynced = 0;
    }
    size_t s0 = h->total_series;
    uint64_t n0 = h->total_samples;
    tenant_truncate(h, t, before);
    obs_log_info("head: truncated tenant=%s before=%lld series_removed=%zu samples_dropped=%llu",
                 tenant, (long long)before, s0 - h->total_series,
                 (unsigned long long)(n0 - h->total_samples));
    *did = 1;
    return 0;
}

int mtd_head_truncate_nockpt(struct mtd_head *h, const char *tenant, int64_t before_ms,
                             struct obs_err *err)
{
    int did;
    int rc = truncate_one(h, tenant, before_ms, &did, err);
    return rc ? rc : did;
}

int mtd_head_truncate(struct mtd_head *h, const char *tenant, int64_t before_ms,
                      struct obs_err *err)
{
    int did;
    int rc = truncate_one(h, tenant, before_ms, &did, err);
    if (rc == 0 && did)
        rc = mtd_head_checkpoint(h, err);
    return rc;
}

int64_t mtd_head_min_valid_time(struct mtd_head *h, const char *tenant)
{
    const struct tenant *t = h && tenant ? smap_get(&h->tenants, tenant) : NULL;
    return t ? t->min_valid : INT64_MIN;
}

/* ---- open / close ----------------------------------------------------------------------- */

static const struct mtd_storage_ops head_ops;

struct mtd_head *mtd_head_open(const struct mtd_head_opts *o, struct obs_err *err)
{
    struct mtd_head *h = obs_calloc(1, sizeof *h);
    if (h == NULL) {
        obs_err_set(err, OBS_ENOMEM, "out of memory");
        return NULL;
    }
    h->next_ref = 1;
    h->storage.ops = &head_ops;
    h->storage.impl = h;
    if (o && o->wal_dir && o->wal_dir[0]) {
        struct obs_wal_opts wo = {o->wal_dir, o->wal_segment_bytes, o->wal_no_fsync};
        h->wal_segment_bytes = o->wal_segment_bytes ? o->wal_segment_bytes : (64u << 20);
        h->wal = obs_wal_open(&wo, err);
        if (h->wal == NULL) {
            mtd_head_close(h);
            return NULL;
        }
        struct replay rp = {h, 0, 0, 0};
        int64_t t0 = obs_mono_ns();
        int rc = obs_wal_replay(h->wal, replay_rec, &rp, err);
        if (rc == OBS_ECORRUPT) {
            obs_log_warn("head: WAL replay stopped at corruption: %s (kept %llu samples)",
                         err ? err->msg : "", (unsigned long long)rp.samples);
            obs_err_clear(err);
        } else if (rc != 0) {
            if (err && err->msg[0] == '\0')
                obs_err_set(err, rc, "WAL replay failed: %s", obs_rc_str(rc));
            mtd_head_close(h);
            return NULL;
        }
        h->ckpt_at = obs_wal_size(h->wal);
        obs_log_info("head: replayed WAL dir=%s records=%llu series=%zu samples=%llu "
                     "histograms=%llu exemplars=%zu skipped=%llu ms=%.1f", o->wal_dir,
                     (unsigned long long)rp.records, h->total_series,
                     (unsigned long long)h->total_samples, (unsigned long long)h->total_hist,
                     h->total_exemplars, (unsigned long long)rp.skipped,
                     (double)(obs_mono_ns() - t0) / 1e6);
    }
    return h;
}

void mtd_head_close(struct mtd_head *h)
{
    if (h == NULL)
        return;
    if (h->wal && obs_wal_size(h->wal) > h->ckpt_at && !h->appender_open) {
        struct obs_err e = {0};
        if (mtd_head_checkpoint(h, &e) != 0)
            obs_log_warn("head: checkpoint at close failed: %s", e.msg);
    }
    obs_wal_close(h->wal);
    smap_free(&h->tenants, tenant_free);
    obs_free(h->by_ref);
    obs_free(h);
}

struct mtd_storage *mtd_head_storage(struct mtd_head *h)
{
    return &h->storage;
}

size_t mtd_head_num_series(const struct mtd_head *h)
{
    return h->total_series;
}

uint64_t mtd_head_num_samples(const struct mtd_head *h)
{
    return h->total_samples;
}

uint64_t mtd_head_num_hist_samples(const struct mtd_head *h)
{
    return h->total_hist;
}

uint64_t mtd_head_num_ooo_samples(const struct mtd_head *h)
{
    return h->total_ooo;
}

size_t mtd_head_num_exemplars(const struct mtd_head *h)
{
    return h->total_exemplars;
}

uint64_t mtd_head_wal_bytes(const struct mtd_head *h)
{
    return h->wal ? obs_wal_size(h->wal) : 0;
}

uint64_t mtd_head_checkpoints(const struct mtd_head *h)
{
    return h->nckpt;
}

void mtd_head_set_max_series(struct mtd_head *h, size_t n)
{
    h->max_series = n;
}
/* ---- appender --------------------------------------------------------------------------- */

enum { P_FLOAT = 0, P_FLOAT_OOO, P_HIST, P_HIST_OOO };

struct pend {
    struct mseries *s;
    int64_t t;
    double v;
    uint8_t *hb;   /* P_HIST*: encoding (owned by the appender until applied), NULL = stale */
    uint32_t hlen;
    uint8_t kind;
};

struct pex {
    struct mseries *s;
    int64_t t;
    double v;
    char *l; /* packed labels (owned until applied) */
    uint32_t nl;
};

struct pmeta {
    char *family, *help, *unit;
    int type;
};

struct mtd_appender {
    struct mtd_head *h;
    struct tenant *t;
    char *tenant;
    struct pend *p;
    size_t np, capp, nfloat, nhist;
    struct pex *e;
    size_t ne, cape;
    struct pmeta *m;
    size_t nm, capm;
    struct mtd_tenant_limits lim;
    int have_lim;
    const char *reason;
    int nosync;           /* commit without fsync (group commit: mtd_head_sync later) */
    struct obs_sbuf hbuf; /* histogram encoding scratch */
};

#define MTD_DEFAULT_EXEMPLARS 100000

struct mtd_appender *mtd_head_appender(struct mtd_head *h, const char *tenant)
{
    struct mtd_appender *a = obs_calloc(1, sizeof *a);
    if (a == NULL)
        return NULL;
    a->h = h;
    a->tenant = obs_strdup(tenant);
    if (a->tenant == NULL) {
        obs_free(a);
        return NULL;
    }
    a->reason = "";
    a->lim.max_series = h->max_series;
    a->lim.max_exemplars = MTD_DEFAULT_EXEMPLARS;
    obs_sbuf_init(&a->hbuf);
    h->appender_open = 1;
    return a;
}

void mtd_appender_set_limits(struct mtd_appender *a, const struct mtd_tenant_limits *l)
{
    a->lim = *l;
    a->have_lim = 1;
}

const char *mtd_appender_last_reason(const struct mtd_appender *a)
{
    return a->reason;
}

size_t mtd_appender_count(const struct mtd_appender *a)
{
    return a->np;
}

static void appender_free(struct mtd_appender *a)
{
    for (size_t i = 0; i < a->np; i++) {
        a->p[i].s->pending = 0;
        obs_free(a->p[i].hb);
    }
    for (size_t i = 0; i < a->ne; i++)
        obs_free(a->e[i].l);
    for (size_t i = 0; i < a->nm; i++) {
        obs_free(a->m[i].family);
        obs_free(a->m[i].help);
        obs_free(a->m[i].unit);
    }
    a->h->appender_open = 0;
    obs_sbuf_deinit(&a->hbuf);
    obs_free(a->m);
    obs_free(a->p);
    obs_free(a->e);
    obs_free(a->tenant);
    obs_free(a);
}

void mtd_appender_rollback(struct mtd_appender *a)
{
    if (a)
        appender_free(a);
}

static void series_str(const struct mseries *s, char *buf, size_t cap)
{
    size_t o = 0;
    int w = snprintf(buf, cap, "{");
    o = w > 0 ? (size_t)w : 0;
    for (size_t i = 0; i < s->nlabels && o < cap; i++) {
        w = snprintf(buf + o, cap - o, "%s%s=\"%s\"", i ? ", " : "", s->labels[i].name,
                     s->labels[i].value);
        if (w < 0)
            break;
        o += (size_t)w;
    }
    if (o < cap)
        snprintf(buf + o, cap - o, "}");
}

/* Find or create the series (for an add). */
static struct mseries *appender_series(struct mtd_appender *a, const struct obs_label *labels,
                                       size_t n, struct obs_err *err, int *rc)
{
    struct mtd_head *h = a->h;
    *rc = 0;
    if (a->t == NULL) {
        a->t = tenant_get(h, a->tenant, 1);
        if (a->t == NULL) {
            *rc = obs_err_set(err, OBS_ENOMEM, "out of memory");
            return NULL;
        }
    }
    uint64_t hash = labels_hash(labels, n);
    struct mseries *s = series_lookup(a->t, hash, labels, n);
    if (s == NULL) {
        if (a->lim.max_series && a->t->nseries >= a->lim.max_series) {
            a->reason = "per_user_series_limit";
            *rc = obs_err_set(err, OBS_ELIMIT, "per-user series limit of %zu exceeded "
                              "(err-mimir-max-series-per-user)", a->lim.max_series);
            return NULL;
        }
        s = series_create(h, a->t, hash, labels, n, 0);
        if (s == NULL)
            *rc = obs_err_set(err, OBS_ENOMEM, "out of memory");
    }
    return s;
}

static int pend_push(struct mtd_appender *a, const struct pend *p)
{
    if (a->np == a->capp) {
        size_t nc = a->capp ? a->capp * 2 : 64;
        struct pend *np = obs_realloc(a->p, nc * sizeof *np);
        if (np == NULL)
            return OBS_ENOMEM;
        a->p = np;
        a->capp = nc;
    }
    a->p[a->np++] = *p;
    if (p->kind == P_FLOAT || p->kind == P_FLOAT_OOO)
        a->nfloat++;
    else
        a->nhist++;
    return 0;
}

/*
 * Decide where a sample at t goes: 0 = in order (append), 1 = out of order (insert), 2 = an
 * exact duplicate (accepted, not stored again), or an error with err and a->reason set.
 * same(kind_at_t) tells whether the existing sample at t equals the new one.
 */
static int classify(struct mtd_appender *a, struct mseries *s, int64_t t, int newkind,
                    double v, const uint8_t *hb, uint32_t hlen, struct obs_err *err)
{
    int have = 0, lkind = K_FLOAT;
    int64_t lt = 0;
    double lv = 0;
    const uint8_t *lh = NULL;
    uint32_t lhlen = 0;
    if (s->pending) {
        have = 1;
        lt = s->pend_t;
        lkind = s->pend_kind;
        lv = s->pend_v;
        lh = s->pend_h;
        lhlen = s->pend_hlen;
    } else if (series_count(s) > 0) {
        have = 1;
        lt = s->last_t;
        lkind = s->last_kind;
        lv = s->last_v;
        if (lkind == K_HIST) {
            const struct hsamp *hs = &s->x->hs[s->x->nhs - 1];
            lh = hs->b;
            lhlen = hs->len;
        }
    }
    if (!have || t > lt)
        return 0;
    char ser[200];
    int dup = 0, same = 0;
    if (t == lt) {
        dup = 1;
        if (lkind == newkind && newkind == K_FLOAT)
            same = memcmp(&lv, &v, sizeof v) == 0;
        else if (lkind == newkind)
            same = lhlen == hlen && (hlen == 0 || (lh && hb && memcmp(lh, hb, hlen) == 0));
    } else if (a->lim.ooo_window_ms > 0 &&
               t >= (a->t->have_maxt && a->t->maxt > lt ? a->t->maxt : lt) -
                        a->lim.ooo_window_ms) {
        /* Older than the newest sample but inside the OOO window: an existing sample at t?
         * (Outside it, or without a window, Prometheus refuses before looking.) */
        double ov;
        const struct hsamp *ohs = series_hist_at(s, t);
        if (ohs) {
            dup = 1;
            same = newkind == K_HIST && ohs->len == hlen &&
                   (hlen == 0 || (ohs->b && hb && memcmp(ohs->b, hb, hlen) == 0));
        } else if (series_float_at(s, t, &ov)) {
            dup = 1;
            same = newkind == K_FLOAT && memcmp(&ov, &v, sizeof v) == 0;
        }
    }
    if (dup && same)
        return 2;
    if (dup) {
        a->reason = "new_value_for_timestamp";
        series_str(s, ser, sizeof ser);
        return obs_err_set(err, OBS_EEXIST, "duplicate sample for timestamp; timestamp=%lld, "
                           "series=%s", (long long)t, ser);
    }
    int64_t win = a->lim.ooo_window_ms;
    int64_t maxt = a->t->have_maxt && a->t->maxt > lt ? a->t->maxt : lt;
    if (win > 0 && t >= maxt - win)
        return 1;
    series_str(s, ser, sizeof ser);
    if (win > 0) {
        a->reason = "sample_too_old";
        return obs_err_set(err, OBS_ERANGE, "too old sample; timestamp=%lld is outside the "
                           "out-of-order window (%lld ms before the newest sample %lld), "
                           "series=%s", (long long)t, (long long)win, (long long)maxt, ser);
    }
    a->reason = "sample_out_of_order";
    return obs_err_set(err, OBS_ERANGE, "out of order sample; timestamp=%lld is older than "
                       "the last sample's %lld, series=%s", (long long)t, (long long)lt, ser);
}

/* The kind a stale marker takes: that of the series' newest sample. */
static int newest_kind(const struct mseries *s)
{
    if (s->pending)
        return s->pend_kind;
    return series_count(s) > 0 ? s->last_kind : K_FLOAT;
}

static int add_float(struct mtd_appender *a, struct mseries *s, int64_t t, double v,
                     struct obs_err *err)
{
    int c = classify(a, s, t, K_FLOAT, v, NULL, 0, err);
    if (c < 0 || c == 2)
        return c < 0 ? c : 0;
    struct pend p = {s, t, v, NULL, 0, c == 0 ? P_FLOAT : P_FLOAT_OOO};
    if (pend_push(a, &p) != 0)
        return obs_err_set(err, OBS_ENOMEM, "out of memory");
    if (c == 0) {
        s->pending = 1;
        s->pend_kind = K_FLOAT;
        s->pend_t = t;
        s->pend_v = v;
        s->pend_h = NULL;
        s->pend_hlen = 0;
    }
    return 0;
}

static int add_hist(struct mtd_appender *a, struct mseries *s, int64_t t, const uint8_t *enc,
                    uint32_t len, struct obs_err *err)
{
    int c = classify(a, s, t, K_HIST, 0, enc, len, err);
    if (c < 0 || c == 2)
        return c < 0 ? c : 0;
    uint8_t *b = NULL;
    if (len > 0) {
        b = obs_malloc(len);
        if (b == NULL)
            return obs_err_set(err, OBS_ENOMEM, "out of memory");
        memcpy(b, enc, len);
    }
    struct pend p = {s, t, 0, b, len, c == 0 ? P_HIST : P_HIST_OOO};
    if (pend_push(a, &p) != 0) {
        obs_free(b);
        return obs_err_set(err, OBS_ENOMEM, "out of memory");
    }
    if (c == 0) {
        s->pending = 1;
        s->pend_kind = K_HIST;
        s->pend_t = t;
        s->pend_h = b;
        s->pend_hlen = len;
    }
    return 0;
}

/* Prometheus' head check: a sample older than the head's minimum valid time (the tenant's
 * truncation point: that range is in an immutable block) is "out of bounds", refused before
 * its series is looked up or created. */
static int check_bounds(struct mtd_appender *a, int64_t t, struct obs_err *err)
{
    const struct tenant *tn = a->t ? a->t : smap_get(&a->h->tenants, a->tenant);
    if (tn == NULL || t >= tn->min_valid)
        return 0;
    a->reason = "sample_out_of_bounds";
    return obs_err_set(err, OBS_ERANGE, "out of bounds; timestamp=%lld is older than %lld, the "
                       "head's minimum valid time (that range is already shipped in a block)",
                       (long long)t, (long long)tn->min_valid);
}

int mtd_appender_add(struct mtd_appender *a, const struct obs_label *labels, size_t n,
                     int64_t t, double v, struct obs_err *err)
{
    int rc = check_bounds(a, t, err);
    if (rc != 0)
        return rc;
    struct mseries *s = appender_series(a, labels, n, err, &rc);
    if (s == NULL)
        return rc;
    if (mtd_value_is_stale(v) && newest_kind(s) == K_HIST)
        return add_hist(a, s, t, NULL, 0, err); /* ends the histogram series */
    return add_float(a, s, t, v, err);
}

int mtd_appender_add_hist(struct mtd_appender *a, const struct obs_label *labels, size_t n,
                          int64_t t, const struct mtd_ql_hist *hist, struct obs_err *err)
{
    int stale = hist == NULL || mtd_value_is_stale(hist->sum);
    obs_sbuf_reset(&a->hbuf);
    if (!stale && hist_encode(&a->hbuf, hist) != 0)
        return obs_err_set(err, OBS_EINVAL, "invalid native histogram: schema %d not "
                           "supported or buckets not sorted", (int)hist->schema);
    if (a->hbuf.oom)
        return obs_err_set(err, OBS_ENOMEM, "out of memory");
    if (a->hbuf.len > UINT32_MAX)
        return obs_err_set(err, OBS_EINVAL, "native histogram too large");
    int rc = check_bounds(a, t, err);
    if (rc != 0)
        return rc;
    struct mseries *s = appender_series(a, labels, n, err, &rc);
    if (s == NULL)
        return rc;
    if (stale && newest_kind(s) == K_FLOAT) {
        union { uint64_t u; double d; } sn = {MTD_STALE_NAN_BITS};
        return add_float(a, s, t, sn.d, err);
    }
    return add_hist(a, s, t, stale ? NULL : (const uint8_t *)a->hbuf.p,
                    stale ? 0 : (uint32_t)a->hbuf.len, err);
}

int mtd_appender_add_exemplar(struct mtd_appender *a, const struct obs_label *labels, size_t n,
                              const struct obs_label *el, size_t nel, int64_t t, double v,
                              struct obs_err *err)
{
    size_t chars = 0;
    for (size_t i = 0; i < nel; i++)
        chars += strlen(el[i].name) + strlen(el[i].value);
    if (chars > 128) /* Prometheus counts runes; bytes are a stricter bound */
        return obs_err_set(err, OBS_EINVAL, "exemplar label set is too long");
    if (a->lim.max_exemplars == 0 || nel > 1000)
        return 1;
    int rc = check_bounds(a, t, err);
    if (rc != 0)
        return rc;
    struct mseries *s = appender_series(a, labels, n, err, &rc);
    if (s == NULL)
        return rc;
    char *l = ex_labels_pack(el, nel);
    if (l == NULL)
        return obs_err_set(err, OBS_ENOMEM, "out of memory");
    /* Compare with the series' newest exemplar: pending ones are searched from the end. */
    int have = 0;
    int64_t lt = 0;
    double lv = 0;
    uint64_t lh = 0;
    for (size_t i = a->ne; i-- > 0;) {
        if (a->e[i].s == s) {
            have = 1;
            lt = a->e[i].t;
            lv = a->e[i].v;
            lh = ex_labels_hash(a->e[i].l, a->e[i].nl);
            break;
        }
    }
    if (!have && s->x && s->x->has_ex) {
        have = 1;
        lt = s->x->ex_t;
        lv = s->x->ex_v;
        lh = s->x->ex_lhash;
    }
    if (have && t == lt && memcmp(&lv, &v, sizeof v) == 0 &&
        lh == ex_labels_hash(l, (uint32_t)nel)) {
        obs_free(l);
        return 1;
    }
    if (have && t <= lt) {
        obs_free(l);
        return obs_err_set(err, OBS_ERANGE, "out of order exemplar");
    }
    if (a->ne == a->cape) {
        size_t nc = a->cape ? a->cape * 2 : 16;
        struct pex *ne = obs_realloc(a->e, nc * sizeof *ne);
        if (ne == NULL) {
            obs_free(l);
            return obs_err_set(err, OBS_ENOMEM, "out of memory");
        }
        a->e = ne;
        a->cape = nc;
    }
    a->e[a->ne++] = (struct pex){s, t, v, l, (uint32_t)nel};
    return 0;
}

int mtd_appender_add_metadata(struct mtd_appender *a, const char *family, int type,
                              const char *help, const char *unit)
{
    if (a->nm == a->capm) {
        size_t nc = a->capm ? a->capm * 2 : 16;
        struct pmeta *nm = obs_realloc(a->m, nc * sizeof *nm);
        if (nm == NULL)
            return OBS_ENOMEM;
        a->m = nm;
        a->capm = nc;
    }
    struct pmeta *m = &a->m[a->nm];
    m->family = obs_strdup(family ? family : "");
    m->help = obs_strdup(help ? help : "");
    m->unit = obs_strdup(unit ? unit : "");
    m->type = type;
    if (m->family == NULL || m->help == NULL || m->unit == NULL) {
        obs_free(m->family);
        obs_free(m->help);
        obs_free(m->unit);
        return OBS_ENOMEM;
    }
    a->nm++;
    return 0;
}

/* Append one built record to the WAL. */
static int log_rec(struct obs_wal *w, struct obs_sbuf *b, struct obs_err *err)
{
    int rc;
    if (b->oom)
        rc = obs_err_set(err, OBS_ENOMEM, "out of memory");
    else if ((rc = obs_wal_append(w, b->p, b->len)) != 0)
        obs_err_set(err, rc, "WAL append failed: %s", obs_rc_str(rc));
    obs_sbuf_reset(b);
    return rc;
}

/* Encode the appender's records (one per kind) and append them to the WAL; fsync. */
static int appender_log(struct mtd_appender *a, int excap_change, struct obs_err *err)
{
    struct obs_wal *w = a->h->wal;
    struct obs_sbuf b;
    int rc = 0;
    obs_sbuf_init(&b);

    /* Series not yet in the WAL. A series may appear several times: log it once (logged is
     * set tentatively and undone on failure). */
    size_t nnew = 0;
    for (size_t i = 0; i < a->np; i++)
        if (!a->p[i].s->logged) {
            a->p[i].s->logged = 2;
            nnew++;
        }
    for (size_t i = 0; i < a->ne; i++)
        if (!a->e[i].s->logged) {
            a->e[i].s->logged = 2;
            nnew++;
        }
    if (nnew > 0) {
        obs_sbuf_putc(&b, 'S');
        obs_sbuf_uvarint(&b, nnew);
        for (size_t i = 0; i < a->np + a->ne; i++) {
            struct mseries *s = i < a->np ? a->p[i].s : a->e[i - a->np].s;
            if (s->logged != 2)
                continue;
            s->logged = 3; /* written in this record */
            enc_series(&b, s);
        }
        rc = log_rec(w, &b, err);
    }
    if (rc == 0 && a->nfloat > 0) {
        int64_t prev = 0;
        obs_sbuf_putc(&b, 'D');
        obs_sbuf_uvarint(&b, a->nfloat);
        for (size_t i = 0; i < a->np; i++) {
            if (a->p[i].kind != P_FLOAT && a->p[i].kind != P_FLOAT_OOO)
                continue;
            obs_sbuf_uvarint(&b, a->p[i].s->ref);
            obs_sbuf_varint(&b, (int64_t)((uint64_t)a->p[i].t - (uint64_t)prev));
            prev = a->p[i].t;
            put_f64(&b, a->p[i].v);
        }
        rc = log_rec(w, &b, err);
    }
    if (rc == 0 && a->nhist > 0) {
        obs_sbuf_putc(&b, 'H');
        obs_sbuf_uvarint(&b, a->nhist);
        for (size_t i = 0; i < a->np; i++) {
            if (a->p[i].kind != P_HIST && a->p[i].kind != P_HIST_OOO)
                continue;
            obs_sbuf_uvarint(&b, a->p[i].s->ref);
            obs_sbuf_varint(&b, a->p[i].t);
            obs_sbuf_uvarint(&b, a->p[i].hlen);
            obs_sbuf_append(&b, a->p[i].hb, a->p[i].hlen);
        }
        rc = log_rec(w, &b, err);
    }
    if (rc == 0 && excap_change) {
        obs_sbuf_putc(&b, 'X');
        put_str(&b, a->tenant);
        obs_sbuf_uvarint(&b, a->lim.max_exemplars);
        rc = log_rec(w, &b, err);
    }
    if (rc == 0 && a->ne > 0) {
        obs_sbuf_putc(&b, 'E');
        obs_sbuf_uvarint(&b, a->ne);
        for (size_t i = 0; i < a->ne; i++) {
            struct exm e = {a->e[i].s, a->e[i].t, a->e[i].v, a->e[i].l, a->e[i].nl};
            enc_exemplar(&b, &e);
        }
        rc = log_rec(w, &b, err);
    }
    if (rc == 0 && a->nm > 0) {
        obs_sbuf_putc(&b, 'M');
        put_str(&b, a->tenant);
        obs_sbuf_uvarint(&b, a->nm);
        for (size_t i = 0; i < a->nm; i++) {
            put_str(&b, a->m[i].family);
            obs_sbuf_uvarint(&b, (uint64_t)a->m[i].type);
            put_str(&b, a->m[i].help);
            put_str(&b, a->m[i].unit);
        }
        rc = log_rec(w, &b, err);
    }
    obs_sbuf_deinit(&b);
    if (rc == 0 && !a->nosync && (rc = obs_wal_sync(w)) != 0)
        obs_err_set(err, rc, "WAL sync failed: %s", obs_rc_str(rc));
    if (rc == 0 && a->nosync)
        a->h->unsynced = 1;
    for (size_t i = 0; i < a->np + a->ne; i++) {
        struct mseries *s = i < a->np ? a->p[i].s : a->e[i - a->np].s;
        if (s->logged >= 2)
            s->logged = rc == 0 ? 1 : 0;
    }
    return rc;
}

int mtd_appender_commit_nosync(struct mtd_appender *a, struct obs_err *err)
{
    a->nosync = 1;
    return mtd_appender_commit(a, err);
}

int mtd_head_sync(struct mtd_head *h, struct obs_err *err)
{
    if (h->wal == NULL || !h->unsynced)
        return 0;
    int rc = obs_wal_sync(h->wal);
    if (rc == 0) {
        h->unsynced = 0;
        return 0;
    }
    /* The WAL dropped the unsynced records, 'S' ones included: log every series again with
     * its next samples so later records never refer to a ref the WAL does not have. */
    for (size_t i = 0; i < h->tenants.cap; i++) {
        const struct tenant *t = h->tenants.e[i].val;
        for (size_t k = 0; h->tenants.e[i].key && k < t->nseries; k++)
            t->series[k]->logged = 0;
    }
    h->unsynced = 0;
    return obs_err_set(err, rc, "WAL sync failed: %s", obs_rc_str(rc));
}

int mtd_appender_commit(struct mtd_appender *a, struct obs_err *err)
{
    int rc = 0;
    struct tenant *t = a->t;
    int excap_change = 0;
    if (t == NULL && (a->have_lim || a->nm > 0))
        t = a->t = tenant_get(a->h, a->tenant, 1);
    if (t && a->have_lim && t->excap != a->lim.max_exemplars)
        excap_change = 1;
    else if (t && !a->have_lim && t->excap == 0 && t->exn == 0 && a->ne > 0)
        excap_change = 1; /* first exemplars with the default ring */
    if (a->h->wal && (a->np > 0 || a->nm > 0 || a->ne > 0 || excap_change))
        rc = appender_log(a, excap_change, err);
    if (rc == 0) {
        if (excap_change && ex_ring_resize(a->h, t, a->lim.max_exemplars) != 0)
            obs_log_warn("head: exemplar ring not resized (out of memory)");
        for (size_t i = 0; i < a->np; i++) {
            struct pend *p = &a->p[i];
            int r;
            if (p->kind == P_FLOAT || p->kind == P_FLOAT_OOO) {
                r = series_apply_float(a->h, p->s, p->t, p->v);
            } else {
                r = series_apply_hist(a->h, p->s, p->t, p->hb, p->hlen);
                if (r == 0)
                    p->hb = NULL; /* taken */
            }
            if (r < 0) {
                /* In the WAL already: it comes back on restart. Report, keep going. */
                obs_log_error("head: out of memory applying a committed sample");
                rc = obs_err_set(err, OBS_ENOMEM, "out of memory");
            }
        }
        for (size_t i = 0; i < a->ne; i++) {
            ex_store(a->h, a->e[i].s, a->e[i].t, a->e[i].v, a->e[i].l, a->e[i].nl);
            a->e[i].l = NULL;
        }
        for (size_t i = 0; t && i < a->nm; i++)
            set_meta(t, a->m[i].family, a->m[i].type, a->m[i].help, a->m[i].unit);
    }
    appender_free(a);
    return rc;
}
/* ---- selection -------------------------------------------------------------------------- */

/* Bitmap of the tenant's series matching every matcher (caller frees). NULL on OOM. */
static roaring_bitmap_t *postings_for(const struct tenant *t, const struct obs_matcher *ms,
                                      size_t nms)
{
    roaring_bitmap_t *res = NULL; /* NULL = all series so far */
    roaring_bitmap_t *neg = roaring_bitmap_create();
    if (neg == NULL)
        return NULL;
    for (size_t i = 0; i < nms; i++) {
        const struct obs_matcher *m = &ms[i];
        const struct smap *vals = smap_get(&t->names, m->name);
        if (!obs_matcher_matches_empty(m)) {
            roaring_bitmap_t *u = roaring_bitmap_create();
            if (u == NULL)
                goto oom;
            if (vals && m->type == OBS_MATCH_EQ) {
                roaring_bitmap_t *bm = smap_get(vals, m->value);
                if (bm)
                    roaring_bitmap_or_inplace(u, bm);
            } else if (vals) {
                for (size_t k = 0; k < vals->cap; k++)
                    if (vals->e[k].key && obs_matcher_matches(m, vals->e[k].key))
                        roaring_bitmap_or_inplace(u, vals->e[k].val);
            }
            if (res == NULL) {
                res = u;
            } else {
                roaring_bitmap_and_inplace(res, u);
                roaring_bitmap_free(u);
            }
        } else if (vals) {
            if (m->type == OBS_MATCH_NEQ) {
                roaring_bitmap_t *bm = smap_get(vals, m->value);
                if (bm)
                    roaring_bitmap_or_inplace(neg, bm);
            } else {
                for (size_t k = 0; k < vals->cap; k++)
                    if (vals->e[k].key && !obs_matcher_matches(m, vals->e[k].key))
                        roaring_bitmap_or_inplace(neg, vals->e[k].val);
            }
        }
    }
    if (res == NULL) {
        res = roaring_bitmap_create();
        if (res == NULL)
            goto oom;
        if (t->nseries > 0)
            roaring_bitmap_add_range(res, 0, t->nseries);
    }
    roaring_bitmap_andnot_inplace(res, neg);
    roaring_bitmap_free(neg);
    return res;
oom:
    roaring_bitmap_free(neg);
    if (res)
        roaring_bitmap_free(res);
    return NULL;
}

static int cmp_series_ptr(const void *a, const void *b)
{
    const struct mseries *x = *(const struct mseries *const *)a;
    const struct mseries *y = *(const struct mseries *const *)b;
    return label_set_cmp(x->labels, x->nlabels, y->labels, y->nlabels);
}

/* Matching series with samples in range (hist_only: with native-histogram samples at all),
 * sorted by labels (array obs_malloc'd). */
static int collect(struct mtd_head *h, const char *tenant, const struct obs_matcher *ms,
                   size_t nms, int64_t mint, int64_t maxt, struct mseries ***out, size_t *n,
                   int hist_only)
{
    *out = NULL;
    *n = 0;
    const struct tenant *t = smap_get(&h->tenants, tenant ? tenant : "anonymous");
    if (t == NULL || t->nseries == 0)
        return 0;
    roaring_bitmap_t *bm = postings_for(t, ms, nms);
    if (bm == NULL)
        return OBS_ENOMEM;
    uint64_t card = roaring_bitmap_get_cardinality(bm);
    struct mseries **v = obs_malloc((card ? card : 1) * sizeof *v);
    if (v == NULL) {
        roaring_bitmap_free(bm);
        return OBS_ENOMEM;
    }
    size_t k = 0;
    roaring_uint32_iterator_t *it = roaring_create_iterator(bm);
    if (it == NULL) {
        obs_free(v);
        roaring_bitmap_free(bm);
        return OBS_ENOMEM;
    }
    for (; it->has_value; roaring_advance_uint32_iterator(it)) {
        uint32_t id = it->current_value;
        if (id >= t->nseries)
            continue;
        struct mseries *s = t->series[id];
        if (hist_only ? (s->x == NULL || s->x->nhs == 0) : !series_overlaps(s, mint, maxt))
            continue;
        v[k++] = s;
    }
    roaring_free_uint32_iterator(it);
    roaring_bitmap_free(bm);
    qsort(v, k, sizeof *v, cmp_series_ptr);
    *out = v;
    *n = k;
    return 0;
}

/* One share of a select's series, decoded by one thread into its own arena. */
struct sel_part {
    struct mseries *const *v; /* the series [from, to) */
    size_t from, to;
    int64_t mint, maxt;
    int with_samples;
    size_t max_samples;       /* 0 = unlimited */
    struct obs_arena *ar;
    struct mtd_series *res;   /* [i - from]; labels NULL = no sample in range */
    size_t total;
    int rc;
};

/* Decode and copy the series of p (reads the head only: the caller keeps it unchanged). */
static void *sel_part_run(void *arg)
{
    struct sel_part *p = arg;
    struct obs_arena *ar = p->ar;
    /* Whole chunks are decoded (bound samples) but usually only part of them is in range:
     * decode into one reused scratch buffer and keep exactly what is in range, so the set
     * stays dense (fewer fresh pages to fault in). */
    struct mtd_sample *scratch = NULL;
    size_t scratch_cap = 0;
    for (size_t i = p->from; i < p->to; i++) {
        const struct mseries *s = p->v[i];
        struct mtd_series *d = &p->res[i - p->from];
        if (i + 4 < p->to) { /* overlap the next series' cache misses */
            const struct mseries *nx = p->v[i + 4];
            __builtin_prefetch(nx->chunks);
            __builtin_prefetch(nx->open.b);
            __builtin_prefetch(nx->labels);
        }
        if (i + 8 < p->to)
            __builtin_prefetch(p->v[i + 8]);
        if (p->with_samples) {
            size_t bound = series_bound(s, p->mint, p->maxt);
            if (bound > scratch_cap) {
                size_t nc = bound < 256 ? 256 : bound * 2;
                struct mtd_sample *ns = obs_realloc(scratch, nc * sizeof *ns);
                if (ns == NULL)
                    goto oom;
                scratch = ns;
                scratch_cap = nc;
            }
            size_t cnt = bound ? series_decode(s, p->mint, p->maxt, scratch) : 0;
            if (cnt == 0)
                continue; /* overlapped the range but had no sample inside it */
            struct mtd_sample *sm = obs_arena_alloc(ar, cnt * sizeof *sm);
            if (sm == NULL)
                goto oom;
            memcpy(sm, scratch, cnt * sizeof *sm);
            p->total += cnt;
            if (p->max_samples && p->total > p->max_samples) {
                obs_free(scratch);
                p->rc = OBS_ELIMIT;
                return NULL;
            }
            d->samples = sm;
            d->nsamples = cnt;
        }
        /* the label array and its strings in one block */
        size_t ls[2 * 64], bytes = (s->nlabels ? s->nlabels : 1) * sizeof(struct obs_label);
        for (size_t k = 0; k < s->nlabels; k++) {
            size_t a = strlen(s->labels[k].name) + 1, b = strlen(s->labels[k].value) + 1;
            if (k < 64) {
                ls[2 * k] = a;
                ls[2 * k + 1] = b;
            }
            bytes += a + b;
        }
        struct obs_label *l = obs_arena_alloc(ar, bytes);
        if (l == NULL)
            goto oom;
        char *sp = (char *)(l + (s->nlabels ? s->nlabels : 1));
        for (size_t k = 0; k < s->nlabels; k++) {
            size_t a = k < 64 ? ls[2 * k] : strlen(s->labels[k].name) + 1;
            size_t b = k < 64 ? ls[2 * k + 1] : strlen(s->labels[k].value) + 1;
            memcpy(sp, s->labels[k].name, a);
            l[k].name = sp;
            sp += a;
            memcpy(sp, s->labels[k].value, b);
            l[k].value = sp;
            sp += b;
        }
        d->labels = l;
        d->nlabels = s->nlabels;
        d->hash = s->hash;
    }
    obs_free(scratch);
    return NULL;
oom:
    obs_free(scratch);
    p->rc = OBS_ENOMEM;
    return NULL;
}

static void arena_free_cb(void *arg)
{
    obs_arena_free(arg);
}

/* Series at least this many are decoded by two threads (the loop thread and one more): the
 * head is not changed while the loop thread is in here, so both may read it. */
#define SELECT_PARALLEL_MIN 4096

static int head_select(struct mtd_storage *st, const char *tenant, const struct obs_matcher *ms,
                       size_t nms, const struct mtd_select_opts *o,
                       struct mtd_series_set **out, struct obs_err *err)
{
    struct mtd_head *h = st->impl;
    struct mseries **v;
    size_t n;
    int64_t mint = o ? o->mint : INT64_MIN, maxt = o ? o->maxt : INT64_MAX;
    int rc = collect(h, tenant, ms, nms, mint, maxt, &v, &n, 0);
    if (rc != 0)
        return obs_err_set(err, rc, "out of memory");
    if (o && o->max_series && n > o->max_series) {
        obs_free(v);
        return obs_err_set(err, OBS_ELIMIT, "the query hit the max number of series limit "
                           "(limit: %zu series)", o->max_series);
    }
    int with_samples = !(o && o->no_samples);
    size_t max_samples = o ? o->max_samples : 0;
    struct mtd_series *res = obs_calloc(n ? n : 1, sizeof *res);
    struct mtd_series_set *set = obs_calloc(1, sizeof *set);
    struct obs_arena *ar = obs_arena_new(64 * 1024);
    struct sel_part parts[2];
    memset(parts, 0, sizeof parts);
    if (set == NULL || ar == NULL || res == NULL)
        goto oom;
    set->arena = ar;
    size_t np = with_samples && n >= SELECT_PARALLEL_MIN ? 2 : 1;
    for (size_t k = 0; k < np; k++) {
        struct sel_part *p = &parts[k];
        p->v = v;
        p->from = n * k / np;
        p->to = n * (k + 1) / np;
        p->mint = mint;
        p->maxt = maxt;
        p->with_samples = with_samples;
        p->max_samples = max_samples;
        p->res = res + p->from;
        p->ar = k == 0 ? ar : obs_arena_new(64 * 1024);
        if (p->ar == NULL || (k > 0 && obs_arena_on_free(ar, arena_free_cb, p->ar) != 0)) {
            if (k > 0)
                obs_arena_free(p->ar);
            np = k; /* the share falls to the calling thread below */
            break;
        }
    }
    if (np == 0)
        goto oom;
    pthread_t th;
    int threaded = np == 2 && pthread_create(&th, NULL, sel_part_run, &parts[1]) == 0;
    if (np == 2 && !threaded) /* no thread: do both shares here */
        parts[0].to = n;
    if (np == 1)
        parts[0].to = n;
    sel_part_run(&parts[0]);
    if (threaded)
        pthread_join(th, NULL);
    size_t total = parts[0].total + (threaded ? parts[1].total : 0);
    rc = parts[0].rc ? parts[0].rc : threaded ? parts[1].rc : 0;
    if (rc == 0 && max_samples && total > max_samples)
        rc = OBS_ELIMIT;
    if (rc == OBS_ELIMIT) {
        obs_free(v);
        obs_free(res);
        mtd_series_set_free(set);
        return obs_err_set(err, OBS_ELIMIT, "query processing would load too many "
                           "samples into memory in query execution");
    }
    if (rc != 0)
        goto oom;
    set->series = obs_arena_calloc(ar, (n ? n : 1) * sizeof *set->series);
    if (set->series == NULL)
        goto oom;
    size_t kept = 0;
    for (size_t i = 0; i < n; i++)
        if (res[i].labels != NULL)
            set->series[kept++] = res[i];
    set->nseries = kept;
    set->nsamples_total = with_samples ? total : 0;
    obs_free(v);
    obs_free(res);
    *out = set;
    return 0;
oom:
    obs_free(v);
    obs_free(res);
    if (set) {
        set->arena = ar;
        mtd_series_set_free(set);
    } else {
        obs_arena_free(ar);
    }
    return obs_err_set(err, OBS_ENOMEM, "out of memory");
}

void mtd_series_set_free(struct mtd_series_set *s)
{
    if (s == NULL)
        return;
    obs_arena_free(s->arena);
    obs_free(s);
}

void mtd_strings_free(char **v, size_t n)
{
    if (v == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        obs_free(v[i]);
    obs_free(v);
}

/* Copy the sorted keys of a set-like smap into an owned string array. */
static int keys_out(const struct smap *m, char ***out, size_t *n)
{
    const char **k = smap_sorted_keys(m);
    if (k == NULL)
        return OBS_ENOMEM;
    char **v = obs_calloc(m->n ? m->n : 1, sizeof *v);
    if (v == NULL) {
        obs_free(k);
        return OBS_ENOMEM;
    }
    for (size_t i = 0; i < m->n; i++) {
        v[i] = obs_strdup(k[i]);
        if (v[i] == NULL) {
            obs_free(k);
            mtd_strings_free(v, i);
            return OBS_ENOMEM;
        }
    }
    *n = m->n;
    *out = v;
    obs_free(k);
    return 0;
}

/*
 * Label names and values come straight from the postings (as Prometheus' head index does):
 * a value counts when its bitmap holds at least one series that matches (when there are
 * matchers) and has samples in [mint, maxt] (when the range is not "all time"). Nothing is
 * sorted but the answer, so label values over 100k values cost one pass and one sort.
 */
static int postings_live(const struct tenant *t, const roaring_bitmap_t *bm,
                         const roaring_bitmap_t *match, int64_t mint, int64_t maxt)
{
    if (mint == INT64_MIN && maxt == INT64_MAX)
        return match ? roaring_bitmap_intersect(bm, match) : !roaring_bitmap_is_empty(bm);
    roaring_uint32_iterator_t it;
    roaring_init_iterator(bm, &it);
    for (; it.has_value; roaring_advance_uint32_iterator(&it)) {
        uint32_t id = it.current_value;
        if (id >= t->nseries || (match && !roaring_bitmap_contains(match, id)))
            continue;
        if (series_overlaps(t->series[id], mint, maxt))
            return 1;
    }
    return 0;
}

/* A string with its first 16 bytes as two big-endian integers (zero-padded), so that
 * integer order is strcmp order of the prefixes. */
struct skey {
    uint64_t k[2];
    const char *s;
};

static int cmp_skey_tail(const void *a, const void *b)
{
    return strcmp(((const struct skey *)a)->s + 16, ((const struct skey *)b)->s + 16);
}

/*
 * Sort v[0..n) in strcmp order: LSD radix sort on the 16-byte prefix (byte passes where every
 * key has the same byte are skipped), then strcmp on the rest within runs of equal full
 * prefixes. Label values such as "id-012345" differ inside the first 16 bytes, so 100k
 * values sort in a few linear passes. Returns 0 or OBS_ENOMEM (v left unsorted).
 */
static int strings_sort(const char **v, size_t n)
{
    if (n < 2)
        return 0;
    struct skey *a = obs_malloc(2 * n * sizeof *a);
    if (a == NULL)
        return OBS_ENOMEM;
    struct skey *b = a + n, *block = a;
    for (size_t i = 0; i < n; i++) {
        const unsigned char *c = (const unsigned char *)v[i];
        int end = 0;
        for (int w = 0; w < 2; w++) {
            uint64_t k = 0;
            for (int j = 0; j < 8; j++) {
                unsigned char x = end ? 0 : c[w * 8 + j];
                end |= x == 0;
                k = k << 8 | x;
            }
            a[i].k[w] = k;
        }
        a[i].s = v[i];
    }
    for (int pass = 0; pass < 16; pass++) {
        int w = pass < 8 ? 1 : 0, sh = 8 * (pass & 7);
        size_t cnt[256] = {0};
        for (size_t i = 0; i < n; i++)
            cnt[(a[i].k[w] >> sh) & 0xff]++;
        if (cnt[(a[0].k[w] >> sh) & 0xff] == n)
            continue;
        size_t pos = 0;
        for (int d = 0; d < 256; d++) {
            size_t c = cnt[d];
            cnt[d] = pos;
            pos += c;
        }
        for (size_t i = 0; i < n; i++)
            b[cnt[(a[i].k[w] >> sh) & 0xff]++] = a[i];
        struct skey *t = a;
        a = b;
        b = t;
    }
    /* Equal 16-byte prefixes whose 16th byte is set may differ further on. */
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        while (j < n && a[j].k[0] == a[i].k[0] && a[j].k[1] == a[i].k[1])
            j++;
        if (j - i > 1 && (a[i].k[1] & 0xff) != 0)
            qsort(a + i, j - i, sizeof *a, cmp_skey_tail);
        i = j;
    }
    for (size_t i = 0; i < n; i++)
        v[i] = a[i].s;
    obs_free(block);
    return 0;
}

/* Sort the borrowed strings v[0..k) and return owned copies in *out. Frees v. The copies
 * are made in sorted order, so later passes over the answer walk memory mostly forward. */
static int strings_out(const char **v, size_t k, char ***out, size_t *n)
{
    if (k > 1 && strings_sort(v, k) != 0)
        qsort(v, k, sizeof *v, cmp_strp);
    char **o = obs_calloc(k ? k : 1, sizeof *o);
    if (o == NULL) {
        obs_free(v);
        return OBS_ENOMEM;
    }
    for (size_t i = 0; i < k; i++) {
        size_t len = strlen(v[i]) + 1;
        o[i] = obs_malloc(len);
        if (o[i] == NULL) {
            obs_free(v);
            mtd_strings_free(o, i);
            return OBS_ENOMEM;
        }
        memcpy(o[i], v[i], len);
    }
    obs_free(v);
    *out = o;
    *n = k;
    return 0;
}

static int head_label_names(struct mtd_storage *st, const char *tenant,
                            const struct obs_matcher *ms, size_t nms, int64_t mint,
                            int64_t maxt, char ***out, size_t *n, struct obs_err *err)
{
    struct mtd_head *h = st->impl;
    const struct tenant *t = smap_get(&h->tenants, tenant ? tenant : "anonymous");
    *out = NULL;
    *n = 0;
    if (t == NULL || t->names.n == 0 || mint > maxt)
        return strings_out(NULL, 0, out, n) ? obs_err_set(err, OBS_ENOMEM, "out of memory")
                                              : 0;
    roaring_bitmap_t *match = nms ? postings_for(t, ms, nms) : NULL;
    const char **v = obs_malloc(t->names.n * sizeof *v);
    if ((nms && match == NULL) || v == NULL) {
        obs_free(v);
        if (match)
            roaring_bitmap_free(match);
        return obs_err_set(err, OBS_ENOMEM, "out of memory");
    }
    size_t k = 0;
    for (size_t i = 0; i < t->names.cap; i++) {
        const struct smap *vals = t->names.e[i].val;
        if (t->names.e[i].key == NULL)
            continue;
        for (size_t j = 0; j < vals->cap; j++) {
            if (vals->e[j].key && postings_live(t, vals->e[j].val, match, mint, maxt)) {
                v[k++] = t->names.e[i].key;
                break;
            }
        }
    }
    if (match)
        roaring_bitmap_free(match);
    return strings_out(v, k, out, n) ? obs_err_set(err, OBS_ENOMEM, "out of memory") : 0;
}

/* Owned copies of the cached answer c. */
static int lvcache_out(const struct lvcache *c, char ***out, size_t *n)
{
    char **o = obs_calloc(c->n ? c->n : 1, sizeof *o);
    if (o == NULL)
        return OBS_ENOMEM;
    for (size_t i = 0; i < c->n; i++) {
        if ((o[i] = obs_malloc((size_t)c->len[i] + 1)) == NULL) {
            mtd_strings_free(o, i);
            return OBS_ENOMEM;
        }
        memcpy(o[i], c->v[i], (size_t)c->len[i] + 1);
    }
    *out = o;
    *n = c->n;
    return 0;
}

/* Label values of name over all series at any time, from (or into) the tenant's cache.
 * Returns 0, OBS_ENOMEM, or OBS_EAGAIN when the cache could not be built (compute
 * directly). */
static int label_values_cached(struct tenant *t, const char *name, const struct smap *vals,
                               char ***out, size_t *n)
{
    const struct smap_ent *ce = smap_entry(&t->lvc, name);
    struct lvcache *c = ce ? ce->val : NULL;
    if (c != NULL && c->gen == t->vgen)
        return lvcache_out(c, out, n);
    const char **v = obs_malloc(vals->n * sizeof *v);
    uint32_t *len = obs_malloc(vals->n * sizeof *len);
    if (v == NULL || len == NULL) {
        obs_free(v);
        obs_free(len);
        return OBS_EAGAIN;
    }
    size_t k = 0;
    for (size_t j = 0; j < vals->cap; j++)
        if (vals->e[j].key && vals->e[j].key[0] &&
            postings_live(t, vals->e[j].val, NULL, INT64_MIN, INT64_MAX))
            v[k++] = vals->e[j].key;
    if (k > 1 && strings_sort(v, k) != 0)
        qsort(v, k, sizeof *v, cmp_strp);
    for (size_t i = 0; i < k; i++)
        len[i] = (uint32_t)strlen(v[i]);
    if (c == NULL) {
        c = obs_calloc(1, sizeof *c);
        if (c == NULL || smap_put(&t->lvc, name, c) == NULL) {
            obs_free(c);
            obs_free(v);
            obs_free(len);
            return OBS_EAGAIN;
        }
    } else {
        obs_free(c->v);
        obs_free(c->len);
    }
    c->gen = t->vgen;
    c->v = v;
    c->len = len;
    c->n = k;
    return lvcache_out(c, out, n);
}

static int head_label_values(struct mtd_storage *st, const char *tenant, const char *name,
                             const struct obs_matcher *ms, size_t nms, int64_t mint,
                             int64_t maxt, char ***out, size_t *n, struct obs_err *err)
{
    struct mtd_head *h = st->impl;
    struct tenant *t = smap_get(&h->tenants, tenant ? tenant : "anonymous");
    const struct smap *vals = t ? smap_get(&t->names, name) : NULL;
    *out = NULL;
    *n = 0;
    if (vals == NULL || vals->n == 0 || mint > maxt)
        return strings_out(NULL, 0, out, n) ? obs_err_set(err, OBS_ENOMEM, "out of memory")
                                              : 0;
    if (nms == 0 && mint == INT64_MIN && maxt == INT64_MAX) {
        int rc = label_values_cached(t, name, vals, out, n);
        if (rc != OBS_EAGAIN)
            return rc ? obs_err_set(err, OBS_ENOMEM, "out of memory") : 0;
    }
    roaring_bitmap_t *match = nms ? postings_for(t, ms, nms) : NULL;
    const char **v = obs_malloc(vals->n * sizeof *v);
    if ((nms && match == NULL) || v == NULL) {
        obs_free(v);
        if (match)
            roaring_bitmap_free(match);
        return obs_err_set(err, OBS_ENOMEM, "out of memory");
    }
    /* The index's keys are scattered over the heap: read each live one once, into one
     * contiguous pool that the sort and the copies then walk. */
    struct obs_sbuf pool;
    obs_sbuf_init(&pool);
    if (obs_sbuf_reserve(&pool, vals->n * 16) != 0) /* a guess: the appends decide */
        pool.oom = 0;
    size_t *off = obs_malloc(vals->n * sizeof *off); /* pointers once the pool is final */
    size_t k = 0;
    for (size_t j = 0; off != NULL && j < vals->cap; j++) {
        if (j + 8 < vals->cap && vals->e[j + 8].key) { /* overlap the cache misses */
            __builtin_prefetch(vals->e[j + 8].key);
            __builtin_prefetch(vals->e[j + 8].val);
        }
        if (vals->e[j].key && vals->e[j].key[0] &&
            postings_live(t, vals->e[j].val, match, mint, maxt)) {
            off[k++] = pool.len;
            obs_sbuf_append(&pool, vals->e[j].key, strlen(vals->e[j].key) + 1);
        }
    }
    if (match)
        roaring_bitmap_free(match);
    if (pool.oom || off == NULL) {
        obs_sbuf_deinit(&pool);
        obs_free(off);
        obs_free(v);
        return obs_err_set(err, OBS_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < k; i++)
        v[i] = pool.p + off[i];
    obs_free(off);
    int rc = strings_out(v, k, out, n);
    obs_sbuf_deinit(&pool);
    return rc ? obs_err_set(err, OBS_ENOMEM, "out of memory") : 0;
}

static int head_tenants(struct mtd_storage *st, char ***out, size_t *n)
{
    struct mtd_head *h = st->impl;
    return keys_out(&h->tenants, out, n);
}

static int head_append(struct mtd_storage *st, const char *tenant,
                       const struct obs_label *labels, size_t nlabels,
                       const struct mtd_sample *samples, size_t nsamples, struct obs_err *err)
{
    struct mtd_head *h = st->impl;
    struct obs_label *l = obs_malloc((nlabels ? nlabels : 1) * sizeof *l);
    if (l == NULL)
        return obs_err_set(err, OBS_ENOMEM, "out of memory");
    memcpy(l, labels, nlabels * sizeof *l);
    obs_labels_sort(l, nlabels);
    int rc = obs_labels_check(l, nlabels, err);
    if (rc == 0 && obs_labels_get(l, nlabels, "__name__") == NULL)
        rc = obs_err_set(err, OBS_EINVAL, "received a series without metric name");
    if (rc != 0) {
        obs_free(l);
        return rc;
    }
    struct mtd_appender *a = mtd_head_appender(h, tenant ? tenant : "anonymous");
    if (a == NULL) {
        obs_free(l);
        return obs_err_set(err, OBS_ENOMEM, "out of memory");
    }
    int first_err = 0;
    for (size_t i = 0; i < nsamples; i++) {
        rc = mtd_appender_add(a, l, nlabels, samples[i].t, samples[i].v,
                              first_err ? NULL : err);
        if (rc != 0 && first_err == 0)
            first_err = rc;
    }
    obs_free(l);
    rc = mtd_appender_commit(a, err);
    return rc ? rc : first_err;
}

/* ---- native histograms and exemplars (reading) ------------------------------------------ */

static int head_hist_select(struct mtd_storage *st, const char *tenant,
                            const struct obs_matcher *ms, size_t nms, int64_t mint, int64_t maxt,
                            struct obs_arena *ar, const struct mtd_ql_hseries **out, size_t *n,
                            struct obs_err *err)
{
    struct mtd_head *h = st->impl;
    struct mseries **v;
    size_t nv;
    *out = NULL;
    *n = 0;
    int rc = collect(h, tenant, ms, nms, mint, maxt, &v, &nv, 1);
    if (rc != 0)
        return obs_err_set(err, rc, "out of memory");
    struct mtd_ql_hseries *res = obs_arena_calloc(ar, (nv ? nv : 1) * sizeof *res);
    size_t k = 0;
    if (res == NULL)
        goto oom;
    for (size_t i = 0; i < nv; i++) {
        const struct mseries *s = v[i];
        if (s->x == NULL || s->x->nhs == 0)
            continue;
        uint32_t lo = hs_lower(s->x, mint), hi = lo;
        while (hi < s->x->nhs && s->x->hs[hi].t <= maxt)
            hi++;
        if (hi == lo)
            continue;
        size_t cnt = hi - lo;
        int64_t *ts = obs_arena_alloc(ar, cnt * sizeof *ts);
        const struct mtd_ql_hist **hv = obs_arena_alloc(ar, cnt * sizeof *hv);
        struct obs_label *l = obs_arena_alloc(ar, (s->nlabels ? s->nlabels : 1) * sizeof *l);
        if (ts == NULL || hv == NULL || l == NULL)
            goto oom;
        size_t m = 0;
        for (uint32_t j = lo; j < hi; j++) {
            const struct hsamp *hs = &s->x->hs[j];
            const struct mtd_ql_hist *hh = NULL;
            if (hs->b) {
                hh = hist_decode(hs->b, hs->len, ar);
                if (hh == NULL)
                    continue; /* cannot happen: validated on the way in */
            }
            ts[m] = hs->t;
            hv[m] = hh;
            m++;
        }
        for (size_t j = 0; j < s->nlabels; j++) {
            l[j].name = obs_arena_strdup(ar, s->labels[j].name);
            l[j].value = obs_arena_strdup(ar, s->labels[j].value);
            if (l[j].name == NULL || l[j].value == NULL)
                goto oom;
        }
        res[k++] = (struct mtd_ql_hseries){l, s->nlabels, ts,
                                           (const struct mtd_ql_hist *const *)hv, m};
    }
    obs_free(v);
    *out = res;
    *n = k;
    return 0;
oom:
    obs_free(v);
    return obs_err_set(err, OBS_ENOMEM, "out of memory");
}

struct mtd_hist_source {
    struct mtd_storage *st;
    struct obs_arena *ar;
};

struct mtd_hist_source *mtd_hist_source_new(struct mtd_storage *st)
{
    struct mtd_hist_source *hs = obs_calloc(1, sizeof *hs);
    if (hs == NULL)
        return NULL;
    hs->st = st;
    hs->ar = obs_arena_new(64 * 1024);
    if (hs->ar == NULL) {
        obs_free(hs);
        return NULL;
    }
    return hs;
}

int mtd_hist_source_select(void *ctx, const char *tenant, const struct obs_matcher *ms,
                           size_t nms, int64_t mint, int64_t maxt,
                           const struct mtd_ql_hseries **out, size_t *n)
{
    struct mtd_hist_source *hs = ctx;
    *out = NULL;
    *n = 0;
    if (hs == NULL || hs->st == NULL || hs->st->ops->hist_select == NULL)
        return 0;
    return hs->st->ops->hist_select(hs->st, tenant, ms, nms, mint, maxt, hs->ar, out, n, NULL);
}

void mtd_hist_source_free(struct mtd_hist_source *hs)
{
    if (hs == NULL)
        return;
    obs_arena_free(hs->ar);
    obs_free(hs);
}

static int head_exemplars(struct mtd_storage *st, const char *tenant,
                          const struct obs_matcher *ms, size_t nms, int64_t mint, int64_t maxt,
                          struct mtd_exemplar_set **out, struct obs_err *err)
{
    struct mtd_head *h = st->impl;
    struct mtd_exemplar_set *set = obs_calloc(1, sizeof *set);
    struct obs_arena *ar = obs_arena_new(16 * 1024);
    const struct tenant *t = smap_get(&h->tenants, tenant ? tenant : "anonymous");
    roaring_bitmap_t *bm = NULL;
    uint32_t *cnt = NULL, *slot = NULL;
    struct mseries **sv = NULL;
    if (set == NULL || ar == NULL)
        goto oom;
    set->arena = ar;
    if (t == NULL || t->exn == 0 || mint > maxt) {
        *out = set;
        return 0;
    }
    bm = postings_for(t, ms, nms);
    cnt = obs_calloc(t->nseries ? t->nseries : 1, sizeof *cnt);
    if (bm == NULL || cnt == NULL)
        goto oom;
    /* Pass 1: count matching exemplars per series (ring order is oldest first). */
    size_t nser = 0;
    for (size_t i = 0; i < t->exn; i++) {
        const struct exm *e = &t->ex[(t->exnext + t->excap - t->exn + i) % t->excap];
        if (e->t < mint || e->t > maxt || !roaring_bitmap_contains(bm, e->s->id))
            continue;
        if (cnt[e->s->id]++ == 0)
            nser++;
    }
    sv = obs_malloc((nser ? nser : 1) * sizeof *sv);
    slot = obs_calloc(t->nseries ? t->nseries : 1, sizeof *slot);
    if (sv == NULL || slot == NULL)
        goto oom;
    size_t k = 0;
    for (size_t i = 0; i < t->nseries; i++)
        if (cnt[i])
            sv[k++] = t->series[i];
    qsort(sv, k, sizeof *sv, cmp_series_ptr);
    set->series = obs_arena_calloc(ar, (k ? k : 1) * sizeof *set->series);
    if (set->series == NULL)
        goto oom;
    for (size_t i = 0; i < k; i++) {
        const struct mseries *s = sv[i];
        struct mtd_exemplar_series *es = &set->series[i];
        struct obs_label *l = obs_arena_alloc(ar, (s->nlabels ? s->nlabels : 1) * sizeof *l);
        es->ex = obs_arena_calloc(ar, cnt[s->id] * sizeof *es->ex);
        if (l == NULL || es->ex == NULL)
            goto oom;
        for (size_t j = 0; j < s->nlabels; j++) {
            l[j].name = obs_arena_strdup(ar, s->labels[j].name);
            l[j].value = obs_arena_strdup(ar, s->labels[j].value);
            if (l[j].name == NULL || l[j].value == NULL)
                goto oom;
        }
        es->labels = l;
        es->nlabels = s->nlabels;
        slot[s->id] = (uint32_t)i;
    }
    /* Pass 2: copy. */
    for (size_t i = 0; i < t->exn; i++) {
        const struct exm *e = &t->ex[(t->exnext + t->excap - t->exn + i) % t->excap];
        if (e->t < mint || e->t > maxt || !roaring_bitmap_contains(bm, e->s->id))
            continue;
        struct mtd_exemplar_series *es = &set->series[slot[e->s->id]];
        struct mtd_exemplar *x = (struct mtd_exemplar *)&es->ex[es->n++];
        struct obs_label *l = obs_arena_alloc(ar, (e->nl ? e->nl : 1) * sizeof *l);
        if (l == NULL)
            goto oom;
        const char *p = e->l;
        for (uint32_t j = 0; j < e->nl; j++) {
            l[j].name = obs_arena_strdup(ar, p);
            p += strlen(p) + 1;
            l[j].value = obs_arena_strdup(ar, p);
            p += strlen(p) + 1;
            if (l[j].name == NULL || l[j].value == NULL)
                goto oom;
        }
        x->labels = l;
        x->nlabels = e->nl;
        x->v = e->v;
        x->t = e->t;
    }
    set->nseries = k;
    roaring_bitmap_free(bm);
    obs_free(cnt);
    obs_free(slot);
    obs_free(sv);
    *out = set;
    return 0;
oom:
    if (bm)
        roaring_bitmap_free(bm);
    obs_free(cnt);
    obs_free(slot);
    obs_free(sv);
    if (set) {
        set->arena = ar;
        mtd_exemplar_set_free(set);
    } else {
        obs_arena_free(ar);
    }
    return obs_err_set(err, OBS_ENOMEM, "out of memory");
}

int mtd_storage_exemplars(struct mtd_storage *st, const char *tenant,
                          const struct obs_matcher *ms, size_t nms, int64_t mint, int64_t maxt,
                          struct mtd_exemplar_set **out, struct obs_err *err)
{
    if (st->ops->exemplars)
        return st->ops->exemplars(st, tenant, ms, nms, mint, maxt, out, err);
    *out = obs_calloc(1, sizeof **out);
    return *out ? 0 : obs_err_set(err, OBS_ENOMEM, "out of memory");
}

void mtd_exemplar_set_free(struct mtd_exemplar_set *s)
{
    if (s == NULL)
        return;
    obs_arena_free(s->arena);
    obs_free(s);
}

static const struct mtd_storage_ops head_ops = {
    .select = head_select,
    .label_names = head_label_names,
    .label_values = head_label_values,
    .tenants = head_tenants,
    .append = head_append,
    .hist_select = head_hist_select,
    .exemplars = head_exemplars,
};

/* ---- metadata --------------------------------------------------------------------------- */

const char *mtd_metric_type_name(int type)
{
    static const char *const names[] = {"unknown", "counter", "gauge", "histogram",
                                        "gaugehistogram", "summary", "info", "stateset"};
    return type >= 0 && type < 8 ? names[type] : "unknown";
}

int mtd_head_metadata(struct mtd_head *h, const char *tenant, const char *metric, long limit,
                      mtd_metadata_fn fn, void *arg)
{
    const struct tenant *t = smap_get(&h->tenants, tenant ? tenant : "anonymous");
    if (t == NULL)
        return 0;
    if (metric) {
        const struct meta *m = smap_get(&t->meta, metric);
        if (m)
            fn(metric, m->type, m->help, m->unit, arg);
        return 0;
    }
    const char **k = smap_sorted_keys(&t->meta);
    if (k == NULL)
        return OBS_ENOMEM;
    for (size_t i = 0; i < t->meta.n; i++) {
        if (limit > 0 && (long)i >= limit)
            break;
        const struct meta *m = smap_get(&t->meta, k[i]);
        if (fn(k[i], m->type, m->help, m->unit, arg) != 0)
            break;
    }
    obs_free(k);
    return 0;
}

/* ---- block cutting (flush.c) ------------------------------------------------------------ */

#include "metricsd/tsdb/block_write.h"

/*
 * Write tenant's float samples with t in [mint, maxt) as one TSDB block under dir (see
 * head.h). Reads through the head's own storage select, so every kind of float sample the
 * head keeps (in-order chunks and out-of-order samples) is included and the head's layout
 * stays private; the writer re-encodes them as 120-sample XOR chunks.
 */
int mtd_head_cut_block(struct mtd_head *h, const char *tenant, int64_t mint, int64_t maxt,
                       const char *dir, struct mtd_tsdb_block_info *info, struct obs_err *err)
{
    if (h == NULL || tenant == NULL || dir == NULL || maxt <= mint)
        return obs_err_set(err, OBS_EINVAL, "cut block: bad arguments");
    struct mtd_select_opts o = {.mint = mint, .maxt = maxt - 1};
    struct mtd_series_set *set = NULL;
    int rc = mtd_storage_select(&h->storage, tenant, NULL, 0, &o, &set, err);
    if (rc != 0)
        return rc;
    if (set->nseries == 0) {
        mtd_series_set_free(set);
        return obs_err_set(err, OBS_ENOENT, "cut block: no samples in range");
    }
    struct mtd_tsdb_series_in *in = obs_calloc(set->nseries, sizeof *in);
    if (in == NULL) {
        mtd_series_set_free(set);
        return obs_err_set(err, OBS_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < set->nseries; i++) {
        in[i].labels = set->series[i].labels;
        in[i].nlabels = set->series[i].nlabels;
        in[i].samples = set->series[i].samples;
        in[i].nsamples = set->series[i].nsamples;
    }
    struct mtd_tsdb_write_opts wo = {.range_mint = mint, .range_maxt = maxt};
    rc = mtd_tsdb_block_write(dir, in, set->nseries, &wo, info, err);
    obs_free(in);
    mtd_series_set_free(set);
    return rc;
}

/* First and last sample time of tenant's float series (see head.h). */
int mtd_head_time_range(struct mtd_head *h, const char *tenant, int64_t *mint, int64_t *maxt)
{
    const struct tenant *t = h ? smap_get(&h->tenants, tenant) : NULL;
    int64_t lo = INT64_MAX, hi = INT64_MIN;
    for (size_t i = 0; t != NULL && i < t->nseries; i++) {
        const struct mseries *s = t->series[i];
        if (s->n == 0)
            continue;
        if (s->mint < lo)
            lo = s->mint;
        if (s->last_t > hi)
            hi = s->last_t;
    }
    if (lo > hi)
        return OBS_ENOENT;
    *mint = lo;
    *maxt = hi;
    return 0;
}

/* ---- statistics (/api/v1/status/tsdb; api_status.c) ------------------------------------- */

/* A candidate entry: a (and b for "a=b" pairs) borrowed from the head. */
struct stat_cand {
    const char *a, *b;
    uint64_t v;
};

static int cmp_cand(const void *x, const void *y)
{
    const struct stat_cand *p = x, *q = y;
    if (p->v != q->v)
        return p->v > q->v ? -1 : 1;
    int c = strcmp(p->a, q->a);
    return c ? c : strcmp(p->b ? p->b : "", q->b ? q->b : "");
}

/* Keep the top `limit` of c[0..n) (largest first) as owned entries in *out. */
static int stat_top(struct stat_cand *c, size_t n, size_t limit, struct mtd_head_stat **out,
                    size_t *nout)
{
    if (n > 1)
        qsort(c, n, sizeof *c, cmp_cand);
    size_t k = n < limit ? n : limit;
    *out = obs_calloc(k ? k : 1, sizeof **out);
    if (*out == NULL)
        return OBS_ENOMEM;
    *nout = k;
    for (size_t i = 0; i < k; i++) {
        size_t la = strlen(c[i].a), lb = c[i].b ? strlen(c[i].b) : 0;
        char *s = obs_malloc(la + lb + 2);
        if (s == NULL)
            return OBS_ENOMEM;
        memcpy(s, c[i].a, la);
        if (c[i].b) {
            s[la] = '=';
            memcpy(s + la + 1, c[i].b, lb + 1);
        } else {
            s[la] = '\0';
        }
        (*out)[i].name = s;
        (*out)[i].value = c[i].v;
    }
    return 0;
}

void mtd_head_stats_free(struct mtd_head_stats *s)
{
    if (s == NULL)
        return;
    struct mtd_head_stat *lists[4] = {s->by_metric, s->values_by_name, s->memory_by_name,
                                      s->by_pair};
    size_t ns[4] = {s->n_by_metric, s->n_values_by_name, s->n_memory_by_name, s->n_by_pair};
    for (int i = 0; i < 4; i++) {
        for (size_t k = 0; lists[i] && k < ns[i]; k++)
            obs_free(lists[i][k].name);
        obs_free(lists[i]);
    }
    memset(s, 0, sizeof *s);
}

int mtd_head_stats(struct mtd_head *h, const char *tenant, size_t limit,
                   struct mtd_head_stats *out)
{
    memset(out, 0, sizeof *out);
    out->min_time = INT64_MAX;
    out->max_time = INT64_MIN;
    const struct tenant *t = smap_get(&h->tenants, tenant ? tenant : "anonymous");
    if (t == NULL)
        return 0;
    for (size_t i = 0; i < t->nseries; i++) {
        const struct mseries *s = t->series[i];
        out->chunk_count += s->nchunks + (s->open.b != NULL && s->open.n > 0 ? 1 : 0);
        if (!series_overlaps(s, INT64_MIN, INT64_MAX))
            continue;
        if (s->mint < out->min_time)
            out->min_time = s->mint;
        if (s->last_t > out->max_time)
            out->max_time = s->last_t;
    }
    out->num_series = t->nseries;
    size_t npairs = 0;
    for (size_t i = 0; i < t->names.cap; i++)
        if (t->names.e[i].key)
            npairs += ((const struct smap *)t->names.e[i].val)->n;
    out->num_label_pairs = npairs;
    const struct smap *names_vals = smap_get(&t->names, "__name__");
    size_t nmetric = names_vals ? names_vals->n : 0;
    struct stat_cand *metric = obs_malloc((nmetric ? nmetric : 1) * sizeof *metric);
    struct stat_cand *pairs = obs_malloc((npairs ? npairs : 1) * sizeof *pairs);
    struct stat_cand *vcount = obs_malloc((t->names.n ? t->names.n : 1) * sizeof *vcount);
    struct stat_cand *mem = obs_malloc((t->names.n ? t->names.n : 1) * sizeof *mem);
    int rc = OBS_ENOMEM;
    if (metric == NULL || pairs == NULL || vcount == NULL || mem == NULL)
        goto done;
    size_t nm = 0, np = 0, nn = 0;
    for (size_t i = 0; i < t->names.cap; i++) {
        const char *name = t->names.e[i].key;
        const struct smap *vals = t->names.e[i].val;
        if (name == NULL)
            continue;
        uint64_t bytes = 0;
        for (size_t j = 0; j < vals->cap; j++) {
            if (vals->e[j].key == NULL)
                continue;
            uint64_t card = roaring_bitmap_get_cardinality(vals->e[j].val);
            bytes += (uint64_t)strlen(vals->e[j].key); /* as Prometheus: value bytes */
            pairs[np++] = (struct stat_cand){name, vals->e[j].key, card};
            if (vals == names_vals)
                metric[nm++] = (struct stat_cand){vals->e[j].key, NULL, card};
        }
        vcount[nn] = (struct stat_cand){name, NULL, vals->n};
        mem[nn++] = (struct stat_cand){name, NULL, bytes};
    }
    rc = stat_top(metric, nm, limit, &out->by_metric, &out->n_by_metric);
    if (rc == 0)
        rc = stat_top(vcount, nn, limit, &out->values_by_name, &out->n_values_by_name);
    if (rc == 0)
        rc = stat_top(mem, nn, limit, &out->memory_by_name, &out->n_memory_by_name);
    if (rc == 0)
        rc = stat_top(pairs, np, limit, &out->by_pair, &out->n_by_pair);
done:
    obs_free(metric);
    obs_free(pairs);
    obs_free(vcount);
    obs_free(mem);
    if (rc != 0)
        mtd_head_stats_free(out);
    return rc;
}

