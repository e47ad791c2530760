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
 *                   samples as Prometheus-compatible XOR chunks (chunkenc.h) of up to
 *                   MTD_CHUNK_SAMPLES samples (closed ones trimmed to size, plus the open
 *                   one being appended to), and appender bookkeeping.
 * The head keeps a dense array of series by global ref for WAL replay.
 *
 * Selection (postings for matchers, as Prometheus does it): a matcher that does not match ""
 * contributes the union of the bitmaps of the values it matches, intersected into the
 * result; a matcher that does match "" (so series without the label match) subtracts the
 * union of the bitmaps of the values it does NOT match. With no positive matcher the start
 * set is every series of the tenant.
 */
#include "metricsd/head.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <roaring/roaring.h>
#include <xxhash.h>

#include "core/obs_arena.h"
#include "core/obs_log.h"
#include "core/obs_mem.h"
#include "core/obs_sbuf.h"
#include "metricsd/chunkenc.h"
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

struct mseries {
    uint64_t ref;
    uint32_t id;
    uint64_t hash;
    struct mseries *hnext;
    struct tenant *tenant;
    struct obs_label *labels; /* points into the same allocation as the series */
    size_t nlabels;
    struct hchunk *chunks;     /* closed chunks, in time order */
    size_t nchunks, capchunks;
    struct mtd_xor_chunk open; /* chunk being appended to (b == NULL before the first) */
    int64_t open_mint;
    int64_t mint, last_t;      /* first and last sample times (valid when n > 0) */
    double last_v;
    uint64_t n;                /* samples in the series */
    /* appender bookkeeping */
    int pending;    /* has samples in the open appender */
    int64_t pend_t; /* last pending sample */
    double pend_v;
    int logged;     /* its 'S' record is in the WAL */
};

struct meta {
    int type;
    char *help;
    char *unit;
};

struct tenant {
    char *name;
    struct mseries **series; /* by local id */
    size_t nseries, capseries;
    struct mseries **ht;     /* hash buckets (chains), power-of-two size */
    size_t htcap;
    struct smap names;       /* name -> struct smap * (value -> roaring_bitmap_t *) */
    struct smap meta;        /* family -> struct meta * */
};

struct mtd_head {
    struct smap tenants;       /* name -> struct tenant * */
    struct mseries **by_ref;   /* index = ref */
    size_t capref;
    uint64_t next_ref;
    struct obs_wal *wal;
    struct mtd_storage storage;
    size_t total_series;
    uint64_t total_samples;
    size_t max_series;
    int appender_open;
};

static int label_set_cmp(const struct obs_label *a, size_t na, const struct obs_label *b,
                         size_t nb)
{
    size_t n = na < nb ? na : nb;
    for (size_t i = 0; i < n; i++) {
        int c = strcmp(a[i].name, b[i].name);
        if (c)
            return c;
        c = strcmp(a[i].value, b[i].value);
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
        obs_free(s);
    }
    obs_free(t->series);
    obs_free(t->ht);
    smap_free(&t->names, values_free);
    smap_free(&t->meta, meta_free);
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
    t->htcap = 1024;
    t->ht = obs_calloc(t->htcap, sizeof *t->ht);
    if (t->name == NULL || t->ht == NULL || smap_put(&h->tenants, name, t) == NULL) {
        tenant_free(t);
        return NULL;
    }
    return t;
}

static struct mseries *series_lookup(const struct tenant *t, uint64_t hash,
                                     const struct obs_label *l, size_t n)
{
    for (struct mseries *s = t->ht[hash & (t->htcap - 1)]; s; s = s->hnext)
        if (s->hash == hash && label_set_cmp(s->labels, s->nlabels, l, n) == 0)
            return s;
    return NULL;
}

static int ht_grow(struct tenant *t)
{
    size_t nc = t->htcap * 2;
    struct mseries **nh = obs_calloc(nc, sizeof *nh);
    if (nh == NULL)
        return OBS_ENOMEM;
    for (size_t i = 0; i < t->nseries; i++) {
        struct mseries *s = t->series[i];
        size_t b = s->hash & (nc - 1);
        s->hnext = nh[b];
        nh[b] = s;
    }
    obs_free(t->ht);
    t->ht = nh;
    t->htcap = nc;
    return 0;
}

/* Add id to postings[name][value]. */
static int postings_add(struct tenant *t, const char *name, const char *value, uint32_t id)
{
    struct smap *vals = smap_get(&t->names, name);
    if (vals == NULL) {
        vals = obs_calloc(1, sizeof *vals);
        if (vals == NULL)
            return OBS_ENOMEM;
        if (smap_put(&t->names, name, vals) == NULL) {
            obs_free(vals);
            return OBS_ENOMEM;
        }
    }
    roaring_bitmap_t *bm = smap_get(vals, value);
    if (bm == NULL) {
        bm = roaring_bitmap_create();
        if (bm == NULL)
            return OBS_ENOMEM;
        if (smap_put(vals, value, bm) == NULL) {
            roaring_bitmap_free(bm);
            return OBS_ENOMEM;
        }
    }
    roaring_bitmap_add(bm, id);
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
    size_t strbytes = 0;
    for (size_t i = 0; i < n; i++)
        strbytes += strlen(l[i].name) + strlen(l[i].value) + 2;
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
    struct mseries *s = obs_calloc(1, sizeof *s + n * sizeof(struct obs_label) + strbytes);
    if (s == NULL)
        return NULL;
    s->labels = (struct obs_label *)(s + 1);
    char *p = (char *)(s->labels + n);
    for (size_t i = 0; i < n; i++) {
        size_t a = strlen(l[i].name) + 1, b = strlen(l[i].value) + 1;
        memcpy(p, l[i].name, a);
        s->labels[i].name = p;
        p += a;
        memcpy(p, l[i].value, b);
        s->labels[i].value = p;
        p += b;
    }
    s->nlabels = n;
    s->hash = hash;
    s->ref = ref;
    s->tenant = t;
    s->id = (uint32_t)t->nseries;
    for (size_t i = 0; i < n; i++) {
        if (postings_add(t, s->labels[i].name, s->labels[i].value, s->id) != 0) {
            /* Postings may hold the id of a series that never got added; readers check
             * id < nseries, and the next series takes the same id, which is then right. */
            obs_free(s);
            return NULL;
        }
    }
    t->series[t->nseries++] = s;
    size_t b = hash & (t->htcap - 1);
    s->hnext = t->ht[b];
    t->ht[b] = s;
    if (t->nseries > t->htcap && ht_grow(t) != 0)
        obs_log_warn("head: series hash table not grown (out of memory)");
    h->by_ref[ref] = s;
    if (ref >= h->next_ref)
        h->next_ref = ref + 1;
    h->total_series++;
    return s;
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
                                              s->last_t};
    mtd_xor_deinit(&s->open);
}

/* Append (t, v) to s without checks (t > last_t is the caller's business). */
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
    if (s->n == 0)
        s->mint = t;
    s->last_t = t;
    s->last_v = v;
    s->n++;
    h->total_samples++;
    if (s->open.n >= MTD_CHUNK_SAMPLES)
        series_cut(s);
    return 0;
}

/* Does s have samples that may fall in [mint, maxt]? (Exact at the series' ends.) */
static int series_overlaps(const struct mseries *s, int64_t mint, int64_t maxt)
{
    return s->n > 0 && mint <= maxt && s->mint <= maxt && s->last_t >= mint;
}

/* Upper bound of the samples of s in [mint, maxt] (whole chunks that overlap). */
static size_t series_bound(const struct mseries *s, int64_t mint, int64_t maxt)
{
    size_t n = 0;
    for (size_t k = 0; k < s->nchunks; k++)
        if (s->chunks[k].mint <= maxt && s->chunks[k].maxt >= mint)
            n += s->chunks[k].n;
    if (s->open.b && s->open.n > 0 && s->open_mint <= maxt && s->last_t >= mint)
        n += s->open.n;
    return n;
}

static size_t decode_into(const uint8_t *b, size_t len, int64_t mint, int64_t maxt,
                          struct mtd_sample *out)
{
    struct mtd_xor_iter it;
    size_t n = 0;
    mtd_xor_iter_init(&it, b, len);
    while (mtd_xor_iter_next(&it) == 1) {
        if (it.t < mint)
            continue;
        if (it.t > maxt)
            break;
        out[n].t = it.t;
        out[n].v = it.v;
        n++;
    }
    return n;
}

/* Decode the samples of s in [mint, maxt] into out (room for series_bound()). */
static size_t series_decode(const struct mseries *s, int64_t mint, int64_t maxt,
                            struct mtd_sample *out)
{
    size_t n = 0;
    for (size_t k = 0; k < s->nchunks; k++)
        if (s->chunks[k].mint <= maxt && s->chunks[k].maxt >= mint)
            n += decode_into(s->chunks[k].b, s->chunks[k].len, mint, maxt, out + n);
    if (s->open.b && s->open.n > 0 && s->open_mint <= maxt && s->last_t >= mint)
        n += decode_into(s->open.b, mtd_xor_bytes(&s->open), mint, maxt, out + n);
    return n;
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

struct replay {
    struct mtd_head *h;
    uint64_t records, samples, skipped;
};

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
        uint64_t hash = obs_labels_hash(l, nl);
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
        t += rd_v(r);
        double v = rd_f64(r);
        if (r->bad)
            break;
        struct mseries *s = ref < rp->h->capref ? rp->h->by_ref[ref] : NULL;
        if (s == NULL || (s->n > 0 && t <= s->last_t)) {
            rp->skipped++;
            continue;
        }
        if (series_push(rp->h, s, t, v) != 0)
            return OBS_ENOMEM;
        rp->samples++;
    }
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
    default: break; /* unknown record types from a newer version are skipped */
    }
    if (r.bad)
        obs_log_warn("head: WAL record of type %c is malformed; kept what decoded", rec[0]);
    return rc;
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
        h->wal = obs_wal_open(&wo, err);
        if (h->wal == NULL) {
            mtd_head_close(h);
            return NULL;
        }
        struct replay rp = {h, 0, 0, 0};
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
        obs_log_info("head: replayed WAL dir=%s records=%llu series=%zu samples=%llu "
                     "skipped=%llu", o->wal_dir, (unsigned long long)rp.records,
                     h->total_series, (unsigned long long)rp.samples,
                     (unsigned long long)rp.skipped);
    }
    return h;
}

void mtd_head_close(struct mtd_head *h)
{
    if (h == NULL)
        return;
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

void mtd_head_set_max_series(struct mtd_head *h, size_t n)
{
    h->max_series = n;
}

/* ---- appender --------------------------------------------------------------------------- */

struct pend {
    struct mseries *s;
    int64_t t;
    double v;
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
    size_t np, capp;
    struct pmeta *m;
    size_t nm, capm;
};

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
    h->appender_open = 1;
    return a;
}

size_t mtd_appender_count(const struct mtd_appender *a)
{
    return a->np;
}

static void appender_free(struct mtd_appender *a)
{
    for (size_t i = 0; i < a->np; i++)
        a->p[i].s->pending = 0;
    for (size_t i = 0; i < a->nm; i++) {
        obs_free(a->m[i].family);
        obs_free(a->m[i].help);
        obs_free(a->m[i].unit);
    }
    a->h->appender_open = 0;
    obs_free(a->m);
    obs_free(a->p);
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

int mtd_appender_add(struct mtd_appender *a, const struct obs_label *labels, size_t n,
                     int64_t t, double v, struct obs_err *err)
{
    struct mtd_head *h = a->h;
    if (a->t == NULL) {
        a->t = tenant_get(h, a->tenant, 1);
        if (a->t == NULL)
            return obs_err_set(err, OBS_ENOMEM, "out of memory");
    }
    uint64_t hash = obs_labels_hash(labels, n);
    struct mseries *s = series_lookup(a->t, hash, labels, n);
    if (s == NULL) {
        if (h->max_series && a->t->nseries >= h->max_series)
            return obs_err_set(err, OBS_ELIMIT,
                               "per-user series limit of %zu exceeded", h->max_series);
        s = series_create(h, a->t, hash, labels, n, 0);
        if (s == NULL)
            return obs_err_set(err, OBS_ENOMEM, "out of memory");
    }
    /* Compare with the newest sample: the pending one, else the committed one. */
    int have = 0;
    int64_t lt = 0;
    double lv = 0;
    if (s->pending) {
        have = 1;
        lt = s->pend_t;
        lv = s->pend_v;
    } else if (s->n > 0) {
        have = 1;
        lt = s->last_t;
        lv = s->last_v;
    }
    if (have && t <= lt) {
        char ser[200];
        if (t == lt) {
            if (memcmp(&lv, &v, sizeof v) == 0)
                return 0; /* exact duplicate: accepted, stored once */
            series_str(s, ser, sizeof ser);
            return obs_err_set(err, OBS_EEXIST, "duplicate sample for timestamp; "
                               "timestamp=%lld, series=%s", (long long)t, ser);
        }
        series_str(s, ser, sizeof ser);
        return obs_err_set(err, OBS_ERANGE, "out of order sample; timestamp=%lld is older than "
                           "the last sample's %lld, series=%s", (long long)t, (long long)lt, ser);
    }
    if (a->np == a->capp) {
        size_t nc = a->capp ? a->capp * 2 : 64;
        struct pend *np = obs_realloc(a->p, nc * sizeof *np);
        if (np == NULL)
            return obs_err_set(err, OBS_ENOMEM, "out of memory");
        a->p = np;
        a->capp = nc;
    }
    a->p[a->np++] = (struct pend){s, t, v};
    s->pending = 1;
    s->pend_t = t;
    s->pend_v = v;
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

/* Encode the appender's records into one buffer each and append them to the WAL. */
static int appender_log(struct mtd_appender *a, struct obs_err *err)
{
    struct obs_wal *w = a->h->wal;
    struct obs_sbuf b;
    int rc = 0;
    obs_sbuf_init(&b);

    /* Series not yet in the WAL. A series may appear several times in p: log it once
     * (logged is set tentatively and undone on failure). */
    size_t nnew = 0;
    for (size_t i = 0; i < a->np; i++)
        if (!a->p[i].s->logged)
            nnew++;
    if (nnew > 0) {
        size_t cnt = 0;
        obs_sbuf_putc(&b, 'S');
        struct obs_sbuf body;
        obs_sbuf_init(&body);
        for (size_t i = 0; i < a->np; i++) {
            struct mseries *s = a->p[i].s;
            if (s->logged)
                continue;
            s->logged = 2; /* tentatively */
            cnt++;
            obs_sbuf_uvarint(&body, s->ref);
            put_str(&body, a->tenant);
            obs_sbuf_uvarint(&body, s->nlabels);
            for (size_t k = 0; k < s->nlabels; k++) {
                put_str(&body, s->labels[k].name);
                put_str(&body, s->labels[k].value);
            }
        }
        obs_sbuf_uvarint(&b, cnt);
        obs_sbuf_append(&b, body.p, body.len);
        obs_sbuf_deinit(&body);
        if (b.oom)
            rc = obs_err_set(err, OBS_ENOMEM, "out of memory");
        else if ((rc = obs_wal_append(w, b.p, b.len)) != 0)
            obs_err_set(err, rc, "WAL append failed: %s", obs_rc_str(rc));
        obs_sbuf_reset(&b);
    }
    if (rc == 0 && a->np > 0) {
        int64_t prev = 0;
        obs_sbuf_putc(&b, 'D');
        obs_sbuf_uvarint(&b, a->np);
        for (size_t i = 0; i < a->np; i++) {
            obs_sbuf_uvarint(&b, a->p[i].s->ref);
            obs_sbuf_varint(&b, a->p[i].t - prev);
            prev = a->p[i].t;
            put_f64(&b, a->p[i].v);
        }
        if (b.oom)
            rc = obs_err_set(err, OBS_ENOMEM, "out of memory");
        else if ((rc = obs_wal_append(w, b.p, b.len)) != 0)
            obs_err_set(err, rc, "WAL append failed: %s", obs_rc_str(rc));
        obs_sbuf_reset(&b);
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
        if (b.oom)
            rc = obs_err_set(err, OBS_ENOMEM, "out of memory");
        else if ((rc = obs_wal_append(w, b.p, b.len)) != 0)
            obs_err_set(err, rc, "WAL append failed: %s", obs_rc_str(rc));
    }
    obs_sbuf_deinit(&b);
    if (rc == 0 && (rc = obs_wal_sync(w)) != 0)
        obs_err_set(err, rc, "WAL sync failed: %s", obs_rc_str(rc));
    for (size_t i = 0; i < a->np; i++)
        if (a->p[i].s->logged == 2)
            a->p[i].s->logged = rc == 0 ? 1 : 0;
    return rc;
}

int mtd_appender_commit(struct mtd_appender *a, struct obs_err *err)
{
    int rc = 0;
    if (a->h->wal && (a->np > 0 || a->nm > 0))
        rc = appender_log(a, err);
    if (rc == 0) {
        for (size_t i = 0; i < a->np; i++) {
            struct mseries *s = a->p[i].s;
            if (series_push(a->h, s, a->p[i].t, a->p[i].v) != 0) {
                /* In the WAL already: it comes back on restart. Report, keep going. */
                obs_log_error("head: out of memory applying a committed sample");
                rc = obs_err_set(err, OBS_ENOMEM, "out of memory");
            }
        }
        if (a->nm > 0) {
            struct tenant *t = a->t ? a->t : tenant_get(a->h, a->tenant, 1);
            for (size_t i = 0; t && i < a->nm; i++)
                set_meta(t, a->m[i].family, a->m[i].type, a->m[i].help, a->m[i].unit);
        }
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

/* Matching series with samples in range, sorted by labels (array obs_malloc'd). */
static int collect(struct mtd_head *h, const char *tenant, const struct obs_matcher *ms,
                   size_t nms, int64_t mint, int64_t maxt, struct mseries ***out, size_t *n)
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
        if (!series_overlaps(s, mint, maxt))
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

static int head_select(struct mtd_storage *st, const char *tenant, const struct obs_matcher *ms,
                       size_t nms, const struct mtd_select_opts *o,
                       struct mtd_series_set **out, struct obs_err *err)
{
    struct mtd_head *h = st->impl;
    struct mseries **v;
    size_t n;
    int64_t mint = o ? o->mint : INT64_MIN, maxt = o ? o->maxt : INT64_MAX;
    int rc = collect(h, tenant, ms, nms, mint, maxt, &v, &n);
    if (rc != 0)
        return obs_err_set(err, rc, "out of memory");
    if (o && o->max_series && n > o->max_series) {
        obs_free(v);
        return obs_err_set(err, OBS_ELIMIT, "the query hit the max number of series limit "
                           "(limit: %zu series)", o->max_series);
    }
    size_t total = 0, kept = 0;
    int with_samples = !(o && o->no_samples);
    struct mtd_series_set *set = obs_calloc(1, sizeof *set);
    struct obs_arena *ar = obs_arena_new(64 * 1024);
    if (set == NULL || ar == NULL)
        goto oom;
    set->arena = ar;
    set->series = obs_arena_calloc(ar, (n ? n : 1) * sizeof *set->series);
    if (set->series == NULL)
        goto oom;
    for (size_t i = 0; i < n; i++) {
        const struct mseries *s = v[i];
        struct mtd_series *d = &set->series[kept];
        if (with_samples) {
            size_t bound = series_bound(s, mint, maxt);
            struct mtd_sample *sm = obs_arena_alloc(ar, (bound ? bound : 1) * sizeof *sm);
            if (sm == NULL)
                goto oom;
            size_t cnt = series_decode(s, mint, maxt, sm);
            if (cnt == 0)
                continue; /* overlapped the range but had no sample inside it */
            total += cnt;
            if (o && o->max_samples && total > o->max_samples) {
                obs_free(v);
                mtd_series_set_free(set);
                return obs_err_set(err, OBS_ELIMIT, "query processing would load too many "
                                   "samples into memory in query execution");
            }
            d->samples = sm;
            d->nsamples = cnt;
        }
        struct obs_label *l = obs_arena_alloc(ar, (s->nlabels ? s->nlabels : 1) * sizeof *l);
        if (l == NULL)
            goto oom;
        for (size_t k = 0; k < s->nlabels; k++) {
            l[k].name = obs_arena_strdup(ar, s->labels[k].name);
            l[k].value = obs_arena_strdup(ar, s->labels[k].value);
            if (l[k].name == NULL || l[k].value == NULL)
                goto oom;
        }
        d->labels = l;
        d->nlabels = s->nlabels;
        d->hash = s->hash;
        kept++;
    }
    n = kept;
    set->nseries = n;
    set->nsamples_total = with_samples ? total : 0;
    obs_free(v);
    *out = set;
    return 0;
oom:
    obs_free(v);
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

/* Sort the borrowed strings v[0..k) and return owned copies in *out. Frees v. */
static int strings_out(const char **v, size_t k, char ***out, size_t *n)
{
    if (k > 1)
        qsort(v, k, sizeof *v, cmp_strp);
    char **o = obs_calloc(k ? k : 1, sizeof *o);
    if (o == NULL) {
        obs_free(v);
        return OBS_ENOMEM;
    }
    for (size_t i = 0; i < k; i++) {
        o[i] = obs_strdup(v[i]);
        if (o[i] == NULL) {
            obs_free(v);
            mtd_strings_free(o, i);
            return OBS_ENOMEM;
        }
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

static int head_label_values(struct mtd_storage *st, const char *tenant, const char *name,
                             const struct obs_matcher *ms, size_t nms, int64_t mint,
                             int64_t maxt, char ***out, size_t *n, struct obs_err *err)
{
    struct mtd_head *h = st->impl;
    const struct tenant *t = smap_get(&h->tenants, tenant ? tenant : "anonymous");
    const struct smap *vals = t ? smap_get(&t->names, name) : NULL;
    *out = NULL;
    *n = 0;
    if (vals == NULL || vals->n == 0 || mint > maxt)
        return strings_out(NULL, 0, out, n) ? obs_err_set(err, OBS_ENOMEM, "out of memory")
                                              : 0;
    roaring_bitmap_t *match = nms ? postings_for(t, ms, nms) : NULL;
    const char **v = obs_malloc(vals->n * sizeof *v);
    if ((nms && match == NULL) || v == NULL) {
        obs_free(v);
        if (match)
            roaring_bitmap_free(match);
        return obs_err_set(err, OBS_ENOMEM, "out of memory");
    }
    size_t k = 0;
    for (size_t j = 0; j < vals->cap; j++)
        if (vals->e[j].key && vals->e[j].key[0] &&
            postings_live(t, vals->e[j].val, match, mint, maxt))
            v[k++] = vals->e[j].key;
    if (match)
        roaring_bitmap_free(match);
    return strings_out(v, k, out, n) ? obs_err_set(err, OBS_ENOMEM, "out of memory") : 0;
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

static const struct mtd_storage_ops head_ops = {
    .select = head_select,
    .label_names = head_label_names,
    .label_values = head_label_values,
    .tenants = head_tenants,
    .append = head_append,
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

/* ---- statistics (/api/v1/status/tsdb) --------------------------------------------------- */

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
        if (s->n == 0)
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
            bytes += (uint64_t)strlen(vals->e[j].key) * card;
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
