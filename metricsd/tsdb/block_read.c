/*
 * block_read.c -- open, query and verify a Prometheus TSDB v2 block (see block_read.h).
 *
 * Design: the index and the chunk segments are mmap'd read-only. At open the symbol table
 * is copied into one NUL-terminated string pool (so labels handed out and regex matching
 * need no per-call copies) and the postings offset table is decoded into an array of
 * (name symbol, value symbol, offset), sorted as on disk, with one range per label name.
 * Every read of a variable-length structure goes through a bounds-checked cursor (struct
 * cur) whose failure turns into OBS_ECORRUPT; CRCs are checked before decoding.
 */
#include "metricsd/tsdb/block_read.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/obs_mem.h"
#include "core/obs_sbuf.h"
#include "metricsd/tsdb/tsdb_fmt.h"
#include "metricsd/tsdb/xor.h"
#include "wal/obs_wal.h"

#define NO_SYM UINT32_MAX

struct map {
    const uint8_t *p;
    size_t len;
};

struct pentry {
    uint32_t name, value; /* symbol ids; NO_SYM for the all-series key ("", "") */
    uint64_t off;
};

struct pname {
    uint32_t name;
    size_t first, n; /* range in post[] */
};

struct cmeta {
    int64_t mint, maxt;
    uint64_t ref;
};

struct mtd_tsdb_block {
    char *dir;
    struct mtd_tsdb_block_meta meta;
    struct map ix;
    size_t ixlimit; /* sections end before the TOC */
    uint64_t toc[6];
    uint64_t end[6]; /* end of each section's region: the next section's start or the TOC */
    struct map *segs;
    size_t nsegs;
    char **sym; /* nsyms pointers into pool */
    size_t *symlen;
    size_t nsyms;
    char *pool;
    struct pentry *post;
    size_t npost;
    struct pname *names;
    size_t nnames;
    int has_all;
    uint64_t all_off;
    /* scratch for select */
    struct obs_label *lab;
    size_t caplab;
    struct cmeta *cm;
    size_t capcm;
    struct mtd_sample *smp;
    size_t capsmp;
    /* chunks from a source instead of mapped files (segs[].p NULL, .len the sizes) */
    struct mtd_tsdb_chunk_src src;
    /* corrupt chunks/series are reported here and skipped, instead of failing the select */
    mtd_tsdb_corrupt_fn on_corrupt;
    void *on_corrupt_arg;
};

enum {
    TOC_SYMBOLS,
    TOC_SERIES,
    TOC_LABEL_INDICES,
    TOC_LABEL_OFFSETS,
    TOC_POSTINGS,
    TOC_POSTINGS_OFFSETS
};

/* ---- bounds-checked cursor -------------------------------------------------------------- */

struct cur {
    const uint8_t *p, *end;
    int bad;
};

static uint64_t cur_uvarint(struct cur *c)
{
    uint64_t v = 0;
    size_t n = c->bad ? 0 : obs_uvarint_decode(c->p, c->end, &v);
    if (n == 0) {
        c->bad = 1;
        return 0;
    }
    c->p += n;
    return v;
}

static int64_t cur_varint(struct cur *c)
{
    int64_t v = 0;
    size_t n = c->bad ? 0 : obs_varint_decode(c->p, c->end, &v);
    if (n == 0) {
        c->bad = 1;
        return 0;
    }
    c->p += n;
    return v;
}

static uint32_t cur_be32(struct cur *c)
{
    if (c->bad || c->end - c->p < 4) {
        c->bad = 1;
        return 0;
    }
    uint32_t v = tsdb_be32(c->p);
    c->p += 4;
    return v;
}

static int cur_byte(struct cur *c)
{
    if (c->bad || c->p >= c->end) {
        c->bad = 1;
        return -1;
    }
    return *c->p++;
}

/* A uvarint-prefixed string: returns its bytes (not NUL-terminated) and length. */
static const uint8_t *cur_str(struct cur *c, size_t *len)
{
    uint64_t n = cur_uvarint(c);
    if (c->bad || n > (uint64_t)(c->end - c->p)) {
        c->bad = 1;
        *len = 0;
        return NULL;
    }
    const uint8_t *s = c->p;
    c->p += n;
    *len = (size_t)n;
    return s;
}

/* ---- helpers ---------------------------------------------------------------------------- */

static int corrupt(struct obs_err *err, const struct mtd_tsdb_block *b, const char *file,
                   uint64_t off, const char *what)
{
    return obs_err_set(err, OBS_ECORRUPT, "tsdb: %s/%s: %s at offset %llu", b->dir, file, what,
                       (unsigned long long)off);
}

static int map_file(const char *path, struct map *m, struct obs_err *err)
{
    m->p = NULL;
    m->len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return obs_err_set(err, errno == ENOENT ? OBS_ENOENT : OBS_EIO, "tsdb: open %s: %s", path,
                           strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return obs_err_set(err, OBS_EIO, "tsdb: stat %s: %s", path, strerror(errno));
    }
    if (st.st_size == 0) {
        close(fd);
        return 0; /* callers reject empty files by their own size checks */
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED)
        return obs_err_set(err, OBS_EIO, "tsdb: mmap %s: %s", path, strerror(errno));
    m->p = p;
    m->len = (size_t)st.st_size;
    return 0;
}

static void unmap(struct map *m)
{
    if (m->p)
        munmap((void *)m->p, m->len);
    m->p = NULL;
}

/* Section with a 4-byte length at off, inside [0, limit): CRC-checked body. */
static int sec32(const struct mtd_tsdb_block *b, uint64_t off, const char *what, struct cur *body,
                 struct obs_err *err)
{
    if (off > b->ixlimit || b->ixlimit - off < 8)
        return corrupt(err, b, "index", off, what);
    uint32_t l = tsdb_be32(b->ix.p + off);
    if (l > b->ixlimit - off - 8)
        return corrupt(err, b, "index", off, what);
    const uint8_t *p = b->ix.p + off + 4;
    if (obs_crc32c(0, p, l) != tsdb_be32(p + l))
        return corrupt(err, b, "index", off, "checksum mismatch");
    body->p = p;
    body->end = p + l;
    body->bad = 0;
    return 0;
}

/* Symbol id of s[0..n), or NO_SYM (binary search over the sorted table). */
static uint32_t sym_find(const struct mtd_tsdb_block *b, const uint8_t *s, size_t n)
{
    size_t lo = 0, hi = b->nsyms;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        size_t ml = b->symlen[mid];
        int c = memcmp(b->sym[mid], s, ml < n ? ml : n);
        if (c == 0)
            c = ml < n ? -1 : ml > n;
        if (c == 0)
            return (uint32_t)mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NO_SYM;
}

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap : 16;
    while (n < need)
        n *= 2;
    void *q = obs_realloc(*p, n * elem);
    if (q == NULL)
        return OBS_ENOMEM;
    *p = q;
    *cap = n;
    return 0;
}

/* ---- open ------------------------------------------------------------------------------- */

static int read_meta(struct mtd_tsdb_block *b, struct obs_err *err)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/meta.json", b->dir);
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    if (j == NULL) {
        if (access(path, F_OK) != 0)
            return obs_err_set(err, OBS_ENOENT, "tsdb: %s: %s", path, strerror(errno));
        return obs_err_set(err, OBS_ECORRUPT, "tsdb: %s: %s (line %d)", path, je.text, je.line);
    }
    json_t *ulid = json_object_get(j, "ulid"), *mint = json_object_get(j, "minTime"),
           *maxt = json_object_get(j, "maxTime"), *ver = json_object_get(j, "version"),
           *stats = json_object_get(j, "stats"), *comp = json_object_get(j, "compaction");
    int rc = 0;
    if (!json_is_string(ulid) || strlen(json_string_value(ulid)) != 26 || !json_is_integer(mint) ||
        !json_is_integer(maxt) || !json_is_integer(ver)) {
        rc = obs_err_set(err, OBS_ECORRUPT,
                         "tsdb: %s: missing or bad ulid/minTime/maxTime/"
                         "version",
                         path);
    } else if (json_integer_value(ver) != 1) {
        rc = obs_err_set(err, OBS_ECORRUPT, "tsdb: %s: unsupported meta version %lld", path,
                         (long long)json_integer_value(ver));
    } else {
        snprintf(b->meta.ulid, sizeof b->meta.ulid, "%s", json_string_value(ulid));
        b->meta.mint = json_integer_value(mint);
        b->meta.maxt = json_integer_value(maxt);
        if (json_is_object(stats)) {
            b->meta.nsamples = (uint64_t)json_integer_value(json_object_get(stats, "numSamples"));
            b->meta.nseries = (uint64_t)json_integer_value(json_object_get(stats, "numSeries"));
            b->meta.nchunks = (uint64_t)json_integer_value(json_object_get(stats, "numChunks"));
        }
        if (json_is_object(comp))
            b->meta.level = (int)json_integer_value(json_object_get(comp, "level"));
    }
    json_decref(j);
    return rc;
}

static int read_toc(struct mtd_tsdb_block *b, struct obs_err *err)
{
    if (b->ix.len < TSDB_INDEX_HDR + TSDB_TOC_LEN)
        return corrupt(err, b, "index", 0, "file too short");
    if (tsdb_be32(b->ix.p) != TSDB_INDEX_MAGIC)
        return corrupt(err, b, "index", 0, "bad magic");
    if (b->ix.p[4] != TSDB_INDEX_VERSION)
        return corrupt(err, b, "index", 4, "unsupported index version (want 2)");
    const uint8_t *t = b->ix.p + b->ix.len - TSDB_TOC_LEN;
    if (obs_crc32c(0, t, 48) != tsdb_be32(t + 48))
        return corrupt(err, b, "index", b->ix.len - TSDB_TOC_LEN, "TOC checksum mismatch");
    b->ixlimit = b->ix.len - TSDB_TOC_LEN;
    for (int i = 0; i < 6; i++) {
        b->toc[i] = tsdb_be64(t + 8 * i);
        if (b->toc[i] < TSDB_INDEX_HDR || b->toc[i] >= b->ixlimit)
            return corrupt(err, b, "index", b->ix.len - TSDB_TOC_LEN, "bad TOC entry");
    }
    /* Sections may come in either documented order (Prometheus writes the postings before
     * the label offset table); each one's region ends where the next one starts. */
    for (int i = 0; i < 6; i++) {
        b->end[i] = b->ixlimit;
        for (int j = 0; j < 6; j++) {
            if (j != i && b->toc[j] == b->toc[i])
                return corrupt(err, b, "index", b->ix.len - TSDB_TOC_LEN, "TOC sections overlap");
            if (b->toc[j] > b->toc[i] && b->toc[j] < b->end[i])
                b->end[i] = b->toc[j];
        }
    }
    if (b->toc[TOC_SYMBOLS] != TSDB_INDEX_HDR)
        return corrupt(err, b, "index", b->ix.len - TSDB_TOC_LEN, "bad TOC symbols ref");
    return 0;
}

static int read_symbols(struct mtd_tsdb_block *b, struct obs_err *err)
{
    struct cur c;
    int rc = sec32(b, b->toc[TOC_SYMBOLS], "symbol table", &c, err);
    if (rc)
        return rc;
    uint32_t n = cur_be32(&c);
    size_t body = (size_t)(c.end - c.p);
    if (c.bad || n > body) /* every symbol takes at least one byte */
        return corrupt(err, b, "index", b->toc[TOC_SYMBOLS], "bad symbol count");
    b->sym = obs_malloc((n ? n : 1) * sizeof *b->sym);
    b->symlen = obs_malloc((n ? n : 1) * sizeof *b->symlen);
    b->pool = obs_malloc(body + n + 1);
    if (b->sym == NULL || b->symlen == NULL || b->pool == NULL)
        return obs_err_set(err, OBS_ENOMEM, "tsdb: out of memory");
    char *q = b->pool;
    for (uint32_t i = 0; i < n; i++) {
        size_t len;
        const uint8_t *s = cur_str(&c, &len);
        if (c.bad)
            return corrupt(err, b, "index", b->toc[TOC_SYMBOLS], "truncated symbol table");
        memcpy(q, s, len);
        q[len] = '\0';
        if (memchr(q, '\0', len) != NULL)
            return corrupt(err, b, "index", b->toc[TOC_SYMBOLS], "NUL byte in a symbol");
        b->sym[i] = q;
        b->symlen[i] = len;
        if (i > 0 && strcmp(b->sym[i - 1], q) >= 0)
            return corrupt(err, b, "index", b->toc[TOC_SYMBOLS], "symbols not sorted");
        q += len + 1;
    }
    b->nsyms = n;
    if (c.p != c.end)
        return corrupt(err, b, "index", b->toc[TOC_SYMBOLS], "trailing bytes in symbol table");
    return 0;
}

static int read_postings_table(struct mtd_tsdb_block *b, struct obs_err *err)
{
    uint64_t at = b->toc[TOC_POSTINGS_OFFSETS];
    struct cur c;
    int rc = sec32(b, at, "postings offset table", &c, err);
    if (rc)
        return rc;
    uint32_t n = cur_be32(&c);
    if (c.bad || n > (size_t)(c.end - c.p))
        return corrupt(err, b, "index", at, "bad postings offset table count");
    b->post = obs_malloc((n ? n : 1) * sizeof *b->post);
    b->names = obs_malloc((n ? n : 1) * sizeof *b->names);
    if (b->post == NULL || b->names == NULL)
        return obs_err_set(err, OBS_ENOMEM, "tsdb: out of memory");
    for (uint32_t i = 0; i < n; i++) {
        size_t nl, vl;
        int k = cur_byte(&c);
        const uint8_t *name = cur_str(&c, &nl), *value = cur_str(&c, &vl);
        uint64_t off = cur_uvarint(&c);
        if (c.bad || k != 2)
            return corrupt(err, b, "index", at, "bad postings offset table entry");
        struct pentry *e = &b->post[i];
        e->off = off;
        if (nl == 0 && vl == 0) {
            if (i != 0)
                return corrupt(err, b, "index", at, "all-series postings not first");
            e->name = e->value = NO_SYM;
            b->has_all = 1;
            b->all_off = off;
            continue;
        }
        e->name = sym_find(b, name, nl);
        e->value = sym_find(b, value, vl);
        if (e->name == NO_SYM || e->value == NO_SYM)
            return corrupt(err, b, "index", at, "postings label not in the symbol table");
        const struct pentry *p = i > 0 ? &b->post[i - 1] : NULL;
        if (p && p->name != NO_SYM &&
            (p->name > e->name || (p->name == e->name && p->value >= e->value)))
            return corrupt(err, b, "index", at, "postings offset table not sorted");
        if (b->nnames == 0 || b->names[b->nnames - 1].name != e->name)
            b->names[b->nnames++] = (struct pname){e->name, i, 0};
        b->names[b->nnames - 1].n++;
    }
    b->npost = n;
    if (c.p != c.end)
        return corrupt(err, b, "index", at, "trailing bytes in postings offset table");
    return 0;
}

static int open_segments(struct mtd_tsdb_block *b, struct obs_err *err)
{
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/chunks", b->dir);
    DIR *d = opendir(path);
    if (d == NULL)
        return obs_err_set(err, errno == ENOENT ? OBS_ENOENT : OBS_EIO, "tsdb: %s: %s", path,
                           strerror(errno));
    unsigned long maxseq = 0;
    size_t count = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char *end;
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        unsigned long seq = strtoul(e->d_name, &end, 10);
        if (*end != '\0' || seq == 0)
            continue;
        count++;
        if (seq > maxseq)
            maxseq = seq;
    }
    closedir(d);
    if (count != maxseq || count > 100000)
        return obs_err_set(err, OBS_ECORRUPT, "tsdb: %s: segment files not numbered 1..%zu", path,
                           count);
    b->segs = obs_calloc(count ? count : 1, sizeof *b->segs);
    if (b->segs == NULL)
        return obs_err_set(err, OBS_ENOMEM, "tsdb: out of memory");
    for (size_t i = 0; i < count; i++) {
        snprintf(path, sizeof path, "%s/chunks/%06zu", b->dir, i + 1);
        int rc = map_file(path, &b->segs[i], err);
        if (rc)
            return rc;
        b->nsegs = i + 1;
        const struct map *m = &b->segs[i];
        char f[32];
        snprintf(f, sizeof f, "chunks/%06zu", i + 1);
        if (m->len < TSDB_CHUNKS_HDR || tsdb_be32(m->p) != TSDB_CHUNKS_MAGIC)
            return corrupt(err, b, f, 0, "bad segment magic");
        if (m->p[4] != TSDB_CHUNKS_VERSION)
            return corrupt(err, b, f, 4, "unsupported segment version");
        if (m->p[5] || m->p[6] || m->p[7])
            return corrupt(err, b, f, 5, "non-zero segment header padding");
    }
    return 0;
}

/* Remote segments: sizes only; the bytes come from src. */
static int src_segments(struct mtd_tsdb_block *b, const struct mtd_tsdb_chunk_src *src,
                        struct obs_err *err)
{
    b->src = *src;
    b->segs = obs_calloc(src->nsegs ? src->nsegs : 1, sizeof *b->segs);
    if (b->segs == NULL)
        return obs_err_set(err, OBS_ENOMEM, "tsdb: out of memory");
    for (size_t i = 0; i < src->nsegs; i++)
        b->segs[i].len = (size_t)src->seg_len[i];
    b->nsegs = src->nsegs;
    b->src.seg_len = NULL; /* not kept */
    return 0;
}

int mtd_tsdb_block_open(const char *dir, struct mtd_tsdb_block **out, struct obs_err *err)
{
    return mtd_tsdb_block_open_src(dir, NULL, out, err);
}

int mtd_tsdb_block_open_src(const char *dir, const struct mtd_tsdb_chunk_src *src,
                            struct mtd_tsdb_block **out, struct obs_err *err)
{
    struct mtd_tsdb_block *b = obs_calloc(1, sizeof *b);
    if (b == NULL || (b->dir = obs_strdup(dir)) == NULL) {
        obs_free(b);
        return obs_err_set(err, OBS_ENOMEM, "tsdb: out of memory");
    }
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/index", dir);
    int rc;
    if ((rc = read_meta(b, err)) != 0 || (rc = map_file(path, &b->ix, err)) != 0 ||
        (rc = read_toc(b, err)) != 0 || (rc = read_symbols(b, err)) != 0 ||
        (rc = read_postings_table(b, err)) != 0 ||
        (rc = src ? src_segments(b, src, err) : open_segments(b, err)) != 0) {
        mtd_tsdb_block_close(b);
        return rc;
    }
    *out = b;
    return 0;
}

void mtd_tsdb_block_close(struct mtd_tsdb_block *b)
{
    if (b == NULL)
        return;
    unmap(&b->ix);
    for (size_t i = 0; i < b->nsegs; i++)
        unmap(&b->segs[i]);
    obs_free(b->segs);
    obs_free(b->sym);
    obs_free(b->symlen);
    obs_free(b->pool);
    obs_free(b->post);
    obs_free(b->names);
    obs_free(b->lab);
    obs_free(b->cm);
    obs_free(b->smp);
    obs_free(b->dir);
    obs_free(b);
}

void mtd_tsdb_block_on_corrupt(struct mtd_tsdb_block *b, mtd_tsdb_corrupt_fn fn, void *arg)
{
    b->on_corrupt = fn;
    b->on_corrupt_arg = arg;
}

/* A corruption found while selecting: with a handler, report it and go on (returns 1: skip
 * the damaged piece); without, it fails the select (returns 0). */
static int skip_corrupt(struct mtd_tsdb_block *b, int rc, struct obs_err *err)
{
    if (rc != OBS_ECORRUPT || b->on_corrupt == NULL)
        return 0;
    b->on_corrupt(b->on_corrupt_arg, err);
    return 1;
}

const struct mtd_tsdb_block_meta *mtd_tsdb_block_meta(const struct mtd_tsdb_block *b)
{
    return &b->meta;
}

/* ---- series, postings, chunks ----------------------------------------------------------- */

/* Decode series id into b->lab (nlab) and b->cm (ncm); *next (if not NULL) gets the offset
 * just past the entry's CRC. */
static int series_read(struct mtd_tsdb_block *b, uint32_t id, size_t *nlab, size_t *ncm,
                       uint64_t *next, struct obs_err *err)
{
    uint64_t off = (uint64_t)id * TSDB_SERIES_ALIGN;
    if (off < b->toc[TOC_SERIES] || off >= b->end[TOC_SERIES])
        return corrupt(err, b, "index", off, "series reference out of range");
    struct cur c = {b->ix.p + off, b->ix.p + b->end[TOC_SERIES], 0};
    uint64_t len = cur_uvarint(&c);
    if (c.bad || len > (uint64_t)(c.end - c.p) || (uint64_t)(c.end - c.p) - len < 4)
        return corrupt(err, b, "index", off, "bad series length");
    const uint8_t *body = c.p;
    if (obs_crc32c(0, body, (size_t)len) != tsdb_be32(body + len))
        return corrupt(err, b, "index", off, "series checksum mismatch");
    c.end = body + len;
    uint64_t nl = cur_uvarint(&c);
    if (c.bad || nl > len)
        return corrupt(err, b, "index", off, "bad series label count");
    if (grow((void **)&b->lab, &b->caplab, nl + 1, sizeof *b->lab) != 0)
        return obs_err_set(err, OBS_ENOMEM, "tsdb: out of memory");
    for (uint64_t i = 0; i < nl; i++) {
        uint64_t n = cur_uvarint(&c), v = cur_uvarint(&c);
        if (c.bad || n >= b->nsyms || v >= b->nsyms)
            return corrupt(err, b, "index", off, "bad series label reference");
        b->lab[i] = (struct obs_label){b->sym[n], b->sym[v]};
    }
    uint64_t nc = cur_uvarint(&c);
    if (c.bad || nc > len)
        return corrupt(err, b, "index", off, "bad series chunk count");
    if (grow((void **)&b->cm, &b->capcm, nc + 1, sizeof *b->cm) != 0)
        return obs_err_set(err, OBS_ENOMEM, "tsdb: out of memory");
    for (uint64_t i = 0; i < nc; i++) {
        struct cmeta *m = &b->cm[i];
        if (i == 0) {
            m->mint = cur_varint(&c);
            m->maxt = (int64_t)((uint64_t)m->mint + cur_uvarint(&c));
            m->ref = cur_uvarint(&c);
        } else {
            m->mint = (int64_t)((uint64_t)b->cm[i - 1].maxt + cur_uvarint(&c));
            m->maxt = (int64_t)((uint64_t)m->mint + cur_uvarint(&c));
            m->ref = b->cm[i - 1].ref + (uint64_t)cur_varint(&c);
        }
    }
    if (c.bad || c.p != c.end)
        return corrupt(err, b, "index", off, "bad series chunk metas");
    if (next)
        *next = (uint64_t)(c.end - b->ix.p) + 4;
    *nlab = (size_t)nl;
    *ncm = (size_t)nc;
    return 0;
}

/* Locate chunk ref: its XOR data. */
static int chunk_get(struct mtd_tsdb_block *b, uint64_t ref, const uint8_t **data, size_t *len,
                     size_t *total, struct obs_err *err)
{
    uint64_t seg = ref >> 32, off = ref & 0xffffffffu;
    char f[32];
    snprintf(f, sizeof f, "chunks/%06llu", (unsigned long long)(seg + 1));
    if (seg >= b->nsegs || off < TSDB_CHUNKS_HDR || off >= b->segs[seg].len)
        return corrupt(err, b, f, off, "chunk reference out of range");
    const struct map *m = &b->segs[seg];
    const uint8_t *base = m->p + off;
    size_t avail = m->len - off;
    if (b->src.read != NULL) {
        /* Ask for a typical chunk's worth first, then exactly what the length says. */
        size_t want = avail < 512 ? avail : 512, got;
        int rc = b->src.read(b->src.arg, (uint32_t)seg, off, want, &base, &got, err);
        if (rc != 0)
            return rc;
        struct cur h = {base, base + got, 0};
        uint64_t l = cur_uvarint(&h);
        if (h.bad || l > avail)
            return corrupt(err, b, f, off, "bad chunk length");
        size_t need = (size_t)(h.p - base) + (size_t)l + 5;
        if (need > avail)
            return corrupt(err, b, f, off, "bad chunk length");
        if (got < need) {
            if ((rc = b->src.read(b->src.arg, (uint32_t)seg, off, need, &base, &got, err)) != 0)
                return rc;
            if (got < need)
                return corrupt(err, b, f, off, "short chunk read");
        }
        avail = got;
    }
    struct cur c = {base, base + avail, 0};
    uint64_t l = cur_uvarint(&c);
    if (c.bad || l > (uint64_t)(c.end - c.p) || (uint64_t)(c.end - c.p) - l < 5)
        return corrupt(err, b, f, off, "bad chunk length");
    const uint8_t *enc = c.p;
    if (obs_crc32c(0, enc, (size_t)l + 1) != tsdb_be32(enc + 1 + l))
        return corrupt(err, b, f, off, "chunk checksum mismatch");
    if (*enc != MTD_TSDB_ENC_XOR)
        return corrupt(err, b, f, off, "unsupported chunk encoding (only XOR floats)");
    *data = enc + 1;
    *len = (size_t)l;
    *total = (size_t)(enc + 1 + l + 4 - base);
    return 0;
}

/* Read a postings list at off (absolute) into *ids (obs_malloc'd). */
static int postings_read(struct mtd_tsdb_block *b, uint64_t off, uint32_t **ids, size_t *n,
                         struct obs_err *err)
{
    struct cur c;
    int rc = sec32(b, off, "postings list", &c, err);
    if (rc)
        return rc;
    uint32_t k = cur_be32(&c);
    if (c.bad || (uint64_t)k * 4 != (uint64_t)(c.end - c.p))
        return corrupt(err, b, "index", off, "bad postings list length");
    uint32_t *v = obs_malloc((k ? k : 1) * sizeof *v);
    if (v == NULL)
        return obs_err_set(err, OBS_ENOMEM, "tsdb: out of memory");
    for (uint32_t i = 0; i < k; i++) {
        v[i] = tsdb_be32(c.p + 4 * (size_t)i);
        if (i > 0 && v[i] <= v[i - 1]) {
            obs_free(v);
            return corrupt(err, b, "index", off, "postings list not sorted");
        }
    }
    *ids = v;
    *n = k;
    return 0;
}

/* ---- postings algebra ------------------------------------------------------------------- */

struct ids {
    uint32_t *v;
    size_t n, cap;
};

static int ids_append(struct ids *s, const uint32_t *v, size_t n)
{
    if (n == 0)
        return 0;
    if (grow((void **)&s->v, &s->cap, s->n + n + 1, sizeof *s->v) != 0)
        return OBS_ENOMEM;
    memcpy(s->v + s->n, v, n * sizeof *v);
    s->n += n;
    return 0;
}

static int cmp_u32(const void *x, const void *y)
{
    uint32_t a = *(const uint32_t *)x, b = *(const uint32_t *)y;
    return a < b ? -1 : a > b;
}

static void ids_sort_unique(struct ids *s)
{
    if (s->n == 0)
        return;
    qsort(s->v, s->n, sizeof *s->v, cmp_u32);
    size_t u = 0;
    for (size_t i = 0; i < s->n; i++)
        if (u == 0 || s->v[u - 1] != s->v[i])
            s->v[u++] = s->v[i];
    s->n = u;
}

/* a = a ∩ b (keep = 1) or a = a \ b (keep = 0); both sorted. */
static void ids_merge(struct ids *a, const struct ids *b, int keep)
{
    size_t i = 0, j = 0, o = 0;
    while (i < a->n) {
        while (j < b->n && b->v[j] < a->v[i])
            j++;
        int in = j < b->n && b->v[j] == a->v[i];
        if (in == keep)
            a->v[o++] = a->v[i];
        i++;
    }
    a->n = o;
}

static const struct pname *name_find(const struct mtd_tsdb_block *b, const char *name)
{
    uint32_t id = sym_find(b, (const uint8_t *)name, strlen(name));
    if (id == NO_SYM)
        return NULL;
    size_t lo = 0, hi = b->nnames;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (b->names[mid].name == id)
            return &b->names[mid];
        if (b->names[mid].name < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* Union of the postings of the values of m's label for which matches(value) == want. */
static int union_for(struct mtd_tsdb_block *b, const struct obs_matcher *m, int want,
                     struct ids *out, struct obs_err *err)
{
    out->n = 0;
    const struct pname *pn = name_find(b, m->name);
    if (pn == NULL)
        return 0;
    for (size_t i = pn->first; i < pn->first + pn->n; i++) {
        const struct pentry *e = &b->post[i];
        if ((obs_matcher_matches(m, b->sym[e->value]) != 0) != want)
            continue;
        uint32_t *v;
        size_t n;
        int rc = postings_read(b, e->off, &v, &n, err);
        if (rc)
            return rc;
        rc = ids_append(out, v, n);
        obs_free(v);
        if (rc)
            return obs_err_set(err, OBS_ENOMEM, "tsdb: out of memory");
    }
    ids_sort_unique(out);
    return 0;
}

/* Series ids matching all of ms, sorted. */
static int postings_for(struct mtd_tsdb_block *b, const struct obs_matcher *ms, size_t nms,
                        struct ids *res, struct obs_err *err)
{
    struct ids tmp = {0};
    int rc = 0, started = 0;
    for (size_t i = 0; i < nms && rc == 0; i++) {
        if (obs_matcher_matches_empty(&ms[i]))
            continue;
        if ((rc = union_for(b, &ms[i], 1, &tmp, err)) != 0)
            break;
        if (!started) {
            res->n = 0;
            if (ids_append(res, tmp.v, tmp.n) != 0)
                rc = obs_err_set(err, OBS_ENOMEM, "tsdb: out of memory");
            started = 1;
        } else {
            ids_merge(res, &tmp, 1);
        }
    }
    if (rc == 0 && !started) {
        res->n = 0;
        if (b->has_all) {
            uint32_t *v;
            size_t n;
            if ((rc = postings_read(b, b->all_off, &v, &n, err)) == 0) {
                if (ids_append(res, v, n) != 0)
                    rc = obs_err_set(err, OBS_ENOMEM, "tsdb: out of memory");
                obs_free(v);
            }
        }
    }
    for (size_t i = 0; i < nms && rc == 0 && res->n > 0; i++) {
        if (!obs_matcher_matches_empty(&ms[i]))
            continue;
        if ((rc = union_for(b, &ms[i], 0, &tmp, err)) == 0)
            ids_merge(res, &tmp, 0);
    }
    obs_free(tmp.v);
    return rc;
}

/* ---- select ----------------------------------------------------------------------------- */

int mtd_tsdb_block_select(struct mtd_tsdb_block *b, const struct obs_matcher *ms, size_t nms,
                          int64_t mint, int64_t maxt, mtd_tsdb_series_fn fn, void *arg,
                          struct obs_err *err)
{
    struct ids set = {0};
    int rc = postings_for(b, ms, nms, &set, err);
    for (size_t i = 0; rc == 0 && i < set.n; i++) {
        size_t nl, nc, ns = 0;
        if ((rc = series_read(b, set.v[i], &nl, &nc, NULL, err)) != 0) {
            if (skip_corrupt(b, rc, err))
                rc = 0;
            continue;
        }
        for (size_t k = 0; rc == 0 && k < nc; k++) {
            const struct cmeta *m = &b->cm[k];
            if (m->maxt < mint || m->mint > maxt)
                continue;
            const uint8_t *d;
            size_t len, total, ns0 = ns;
            if ((rc = chunk_get(b, m->ref, &d, &len, &total, err)) != 0) {
                if (skip_corrupt(b, rc, err))
                    rc = 0;
                continue;
            }
            uint16_t cnt = mtd_tsdb_xor_count(d, len);
            if (grow((void **)&b->smp, &b->capsmp, ns + cnt + 1, sizeof *b->smp) != 0) {
                rc = obs_err_set(err, OBS_ENOMEM, "tsdb: out of memory");
                break;
            }
            struct mtd_tsdb_xor_iter it;
            int64_t t;
            double v;
            int r;
            mtd_tsdb_xor_iter_init(&it, d, len);
            while ((r = mtd_tsdb_xor_iter_next(&it, &t, &v)) == 1)
                if (t >= mint && t <= maxt)
                    b->smp[ns++] = (struct mtd_sample){t, v};
            if (r < 0) {
                rc = corrupt(err, b, "chunks", m->ref & 0xffffffffu, "bad XOR chunk data");
                if (skip_corrupt(b, rc, err)) {
                    rc = 0;
                    ns = ns0; /* drop what the damaged chunk gave */
                }
            }
        }
        if (rc == 0 && ns > 0 && fn(arg, b->lab, nl, b->smp, ns) != 0)
            break;
    }
    obs_free(set.v);
    return rc;
}

int mtd_tsdb_block_select_chunks(struct mtd_tsdb_block *b, const struct obs_matcher *ms, size_t nms,
                                 int64_t mint, int64_t maxt, mtd_tsdb_chunks_fn fn, void *arg,
                                 struct obs_err *err)
{
    struct ids set = {0};
    struct mtd_tsdb_chunk_in *out = NULL;
    size_t cap = 0;
    int rc = postings_for(b, ms, nms, &set, err);
    for (size_t i = 0; rc == 0 && i < set.n; i++) {
        size_t nl, nc, n = 0;
        if ((rc = series_read(b, set.v[i], &nl, &nc, NULL, err)) != 0) {
            if (skip_corrupt(b, rc, err))
                rc = 0;
            continue;
        }
        if (grow((void **)&out, &cap, nc + 1, sizeof *out) != 0) {
            rc = obs_err_set(err, OBS_ENOMEM, "tsdb: out of memory");
            break;
        }
        for (size_t k = 0; rc == 0 && k < nc; k++) {
            const struct cmeta *m = &b->cm[k];
            if (m->maxt < mint || m->mint > maxt)
                continue;
            size_t total;
            out[n].mint = m->mint;
            out[n].maxt = m->maxt;
            rc = chunk_get(b, m->ref, &out[n].data, &out[n].len, &total, err);
            if (rc != 0 && skip_corrupt(b, rc, err)) {
                rc = 0;
                continue;
            }
            if (rc == 0 && b->src.read != NULL) {
                /* a source's bytes live until its next read: keep a copy per chunk */
                uint8_t *c = obs_malloc(out[n].len ? out[n].len : 1);
                if (c == NULL) {
                    rc = obs_err_set(err, OBS_ENOMEM, "tsdb: out of memory");
                    break;
                }
                memcpy(c, out[n].data, out[n].len);
                out[n].data = c;
            }
            if (rc == 0)
                n++;
        }
        int stop = rc == 0 && n > 0 && fn(arg, b->lab, nl, out, n) != 0;
        for (size_t k = 0; b->src.read != NULL && k < n; k++)
            obs_free((void *)out[k].data);
        if (stop)
            break;
    }
    obs_free(out);
    obs_free(set.v);
    return rc;
}

/* ---- label names and values ------------------------------------------------------------- */

static int strings_out(char **v, size_t n, char ***out, size_t *nout)
{
    *out = v;
    *nout = n;
    return 0;
}

int mtd_tsdb_block_label_names(struct mtd_tsdb_block *b, char ***out, size_t *n)
{
    char **v = obs_calloc(b->nnames ? b->nnames : 1, sizeof *v);
    if (v == NULL)
        return OBS_ENOMEM;
    for (size_t i = 0; i < b->nnames; i++)
        if ((v[i] = obs_strdup(b->sym[b->names[i].name])) == NULL) {
            mtd_strings_free(v, i);
            return OBS_ENOMEM;
        }
    return strings_out(v, b->nnames, out, n);
}

int mtd_tsdb_block_label_values(struct mtd_tsdb_block *b, const char *name, char ***out, size_t *n)
{
    const struct pname *pn = name_find(b, name);
    size_t k = pn ? pn->n : 0;
    char **v = obs_calloc(k ? k : 1, sizeof *v);
    if (v == NULL)
        return OBS_ENOMEM;
    for (size_t i = 0; i < k; i++)
        if ((v[i] = obs_strdup(b->sym[b->post[pn->first + i].value])) == NULL) {
            mtd_strings_free(v, i);
            return OBS_ENOMEM;
        }
    return strings_out(v, k, out, n);
}

/* ---- verify ----------------------------------------------------------------------------- */

static int bsearch_u64(const uint64_t *v, size_t n, uint64_t x)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (v[mid] == x)
            return 1;
        if (v[mid] < x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return 0;
}

/* Zero bytes from *pos up to the next multiple of align (or to stop, whichever first);
 * anything else is corruption. */
static int skip_pad(const struct mtd_tsdb_block *b, uint64_t *pos, uint64_t stop, unsigned align,
                    struct obs_err *err)
{
    while (*pos < stop && *pos % align != 0) {
        if (b->ix.p[*pos] != 0)
            return corrupt(err, b, "index", *pos, "non-zero padding");
        (*pos)++;
    }
    return 0;
}

/* Padding between two sections: zeros only, fewer than 16 of them. */
static int gap(const struct mtd_tsdb_block *b, uint64_t from, uint64_t to, struct obs_err *err)
{
    if (from > to || to - from >= 16)
        return corrupt(err, b, "index", from, "section overlaps or gap before next section");
    for (uint64_t p = from; p < to; p++)
        if (b->ix.p[p] != 0)
            return corrupt(err, b, "index", p, "non-zero padding");
    return 0;
}

struct vstate {
    uint64_t *chunks; /* every chunk's ref in file order */
    size_t nchunks, capchunks;
    uint64_t *series; /* series ids seen */
    size_t nseries, capseries;
    uint64_t *lists; /* postings list offsets */
    size_t nlists, caplists;
    uint64_t nsamples, ncm;
    int64_t mint, maxt;
};

static int push64(uint64_t **v, size_t *n, size_t *cap, uint64_t x)
{
    if (grow((void **)v, cap, *n + 1, sizeof **v) != 0)
        return OBS_ENOMEM;
    (*v)[(*n)++] = x;
    return 0;
}

static int verify_segments(struct mtd_tsdb_block *b, struct vstate *vs, struct obs_err *err)
{
    for (size_t s = 0; s < b->nsegs; s++) {
        uint64_t off = TSDB_CHUNKS_HDR;
        while (off < b->segs[s].len) {
            const uint8_t *d;
            size_t len, total;
            uint64_t ref = (uint64_t)s << 32 | off;
            int rc = chunk_get(b, ref, &d, &len, &total, err);
            if (rc)
                return rc;
            if (push64(&vs->chunks, &vs->nchunks, &vs->capchunks, ref) != 0)
                return obs_err_set(err, OBS_ENOMEM, "tsdb: out of memory");
            off += total;
        }
    }
    return 0;
}

static int cmp_lab(const struct obs_label *a, size_t na, const struct obs_label *b, size_t nb)
{
    size_t n = na < nb ? na : nb;
    for (size_t i = 0; i < n; i++) {
        int c = strcmp(a[i].name, b[i].name);
        if (!c)
            c = strcmp(a[i].value, b[i].value);
        if (c)
            return c;
    }
    return na < nb ? -1 : na > nb;
}

static int verify_series(struct mtd_tsdb_block *b, struct vstate *vs, struct obs_err *err)
{
    uint64_t pos = b->toc[TOC_SERIES], end = b->end[TOC_SERIES];
    struct obs_label *prev = NULL;
    size_t nprev = 0;
    int rc = 0;
    while (rc == 0) {
        if ((rc = skip_pad(b, &pos, end, TSDB_SERIES_ALIGN, err)) != 0 || pos >= end)
            break;
        if (pos / TSDB_SERIES_ALIGN > UINT32_MAX)
            return corrupt(err, b, "index", pos, "series offset too large");
        size_t nl, nc;
        uint64_t next;
        if ((rc = series_read(b, (uint32_t)(pos / TSDB_SERIES_ALIGN), &nl, &nc, &next, err)) != 0)
            break;
        if (nl == 0 || nc == 0)
            return corrupt(err, b, "index", pos, "series without labels or chunks");
        for (size_t i = 1; i < nl; i++)
            if (strcmp(b->lab[i - 1].name, b->lab[i].name) >= 0)
                return corrupt(err, b, "index", pos, "series labels not sorted");
        if (prev && cmp_lab(prev, nprev, b->lab, nl) >= 0) {
            obs_free(prev);
            return corrupt(err, b, "index", pos, "series not sorted by labels");
        }
        obs_free(prev);
        prev = obs_malloc(nl * sizeof *prev);
        if (prev == NULL)
            return obs_err_set(err, OBS_ENOMEM, "tsdb: out of memory");
        memcpy(prev, b->lab, nl * sizeof *prev);
        nprev = nl;
        if (push64(&vs->series, &vs->nseries, &vs->capseries, pos / TSDB_SERIES_ALIGN) != 0) {
            rc = obs_err_set(err, OBS_ENOMEM, "tsdb: out of memory");
            break;
        }
        for (size_t k = 0; k < nc; k++) {
            const struct cmeta *m = &b->cm[k];
            if (m->maxt < m->mint || (k > 0 && m->mint <= b->cm[k - 1].maxt)) {
                rc = corrupt(err, b, "index", pos, "bad chunk time range");
                break;
            }
            if (!bsearch_u64(vs->chunks, vs->nchunks, m->ref)) {
                rc = corrupt(err, b, "index", pos, "chunk reference to no chunk");
                break;
            }
            const uint8_t *d;
            size_t len, total;
            if ((rc = chunk_get(b, m->ref, &d, &len, &total, err)) != 0)
                break;
            struct mtd_tsdb_xor_iter it;
            int64_t t, first = 0, last = 0;
            double v;
            int r, cnt = 0;
            mtd_tsdb_xor_iter_init(&it, d, len);
            while ((r = mtd_tsdb_xor_iter_next(&it, &t, &v)) == 1) {
                if (cnt > 0 && t <= last)
                    r = OBS_ECORRUPT;
                if (r != 1)
                    break;
                if (cnt++ == 0)
                    first = t;
                last = t;
            }
            /* the data must end in its last byte, or in the one before an empty last
             * byte (Prometheus' encoder leaves one; xor.h) */
            size_t used = (size_t)(it.pos + 7) / 8;
            if (r < 0 || cnt == 0 || first != m->mint || last != m->maxt ||
                !(used == len || (used + 1 == len && d[len - 1] == 0))) {
                rc =
                    obs_err_set(err, OBS_ECORRUPT,
                                "tsdb: %s/chunks: chunk %llu:%llu does not match its index "
                                "entry (decoded %d samples [%lld, %lld] in %zu of %zu bytes, "
                                "index says [%lld, %lld])",
                                b->dir, (unsigned long long)(m->ref >> 32),
                                (unsigned long long)(m->ref & 0xffffffffu), cnt, (long long)first,
                                (long long)last, used, len, (long long)m->mint, (long long)m->maxt);
                break;
            }
            vs->nsamples += (uint64_t)cnt;
            vs->ncm++;
            if (m->mint < vs->mint)
                vs->mint = m->mint;
            if (m->maxt > vs->maxt)
                vs->maxt = m->maxt;
        }
        pos = next;
    }
    obs_free(prev);
    return rc;
}

/* Walk the 4-aligned len32 sections in [start, end); check each with check(). */
static int walk32(struct mtd_tsdb_block *b, uint64_t start, uint64_t end, const char *what,
                  int (*check)(struct mtd_tsdb_block *, struct vstate *, uint64_t, struct cur *,
                               struct obs_err *),
                  struct vstate *vs, struct obs_err *err)
{
    uint64_t pos = start;
    for (;;) {
        int rc = skip_pad(b, &pos, end, TSDB_POSTINGS_ALIGN, err);
        if (rc)
            return rc;
        if (pos >= end)
            return 0;
        struct cur c;
        if ((rc = sec32(b, pos, what, &c, err)) != 0)
            return rc;
        if ((uint64_t)(c.end - b->ix.p) + 4 > end)
            return corrupt(err, b, "index", pos, "section runs past its region");
        if ((rc = check(b, vs, pos, &c, err)) != 0)
            return rc;
        pos = (uint64_t)(c.end - b->ix.p) + 4;
    }
}

static int check_label_index(struct mtd_tsdb_block *b, struct vstate *vs, uint64_t pos,
                             struct cur *c, struct obs_err *err)
{
    uint32_t names = cur_be32(c), n = cur_be32(c);
    if (c->bad || names != 1 || (uint64_t)n * 4 != (uint64_t)(c->end - c->p))
        return corrupt(err, b, "index", pos, "bad label index");
    for (uint32_t i = 0; i < n; i++)
        if (tsdb_be32(c->p + 4 * (size_t)i) >= b->nsyms)
            return corrupt(err, b, "index", pos, "label index symbol out of range");
    if (push64(&vs->lists, &vs->nlists, &vs->caplists, pos) != 0)
        return obs_err_set(err, OBS_ENOMEM, "tsdb: out of memory");
    return 0;
}

static int check_postings(struct mtd_tsdb_block *b, struct vstate *vs, uint64_t pos, struct cur *c,
                          struct obs_err *err)
{
    uint32_t *v;
    size_t n;
    int rc = postings_read(b, pos, &v, &n, err);
    if (rc)
        return rc;
    for (size_t i = 0; i < n; i++)
        if (!bsearch_u64(vs->series, vs->nseries, v[i])) {
            obs_free(v);
            return corrupt(err, b, "index", pos, "postings entry names no series");
        }
    obs_free(v);
    if (push64(&vs->lists, &vs->nlists, &vs->caplists, pos) != 0)
        return obs_err_set(err, OBS_ENOMEM, "tsdb: out of memory");
    return 0;
}

static uint64_t section_end(const struct mtd_tsdb_block *b, uint64_t off)
{
    return off + 8 + tsdb_be32(b->ix.p + off);
}

/* A single section (symbols, offset tables) must fill its region up to < 16 zero bytes. */
static int single_gap(const struct mtd_tsdb_block *b, int which, struct obs_err *err)
{
    return gap(b, section_end(b, b->toc[which]), b->end[which], err);
}

static int verify_index(struct mtd_tsdb_block *b, struct vstate *vs, struct obs_err *err)
{
    int rc;
    /* symbols (checked at open), series */
    if ((rc = single_gap(b, TOC_SYMBOLS, err)) != 0 || (rc = verify_series(b, vs, err)) != 0)
        return rc;
    /* label indices, then the label offset table that points at them */
    vs->nlists = 0;
    if ((rc = walk32(b, b->toc[TOC_LABEL_INDICES], b->end[TOC_LABEL_INDICES], "label index",
                     check_label_index, vs, err)) != 0)
        return rc;
    struct cur c;
    uint64_t at = b->toc[TOC_LABEL_OFFSETS];
    if ((rc = sec32(b, at, "label offset table", &c, err)) != 0)
        return rc;
    uint32_t n = cur_be32(&c);
    for (uint32_t i = 0; i < n && !c.bad; i++) {
        size_t nl;
        int k = cur_byte(&c);
        const uint8_t *name = cur_str(&c, &nl);
        uint64_t off = cur_uvarint(&c);
        if (c.bad || k != 1 || sym_find(b, name, nl) == NO_SYM ||
            !bsearch_u64(vs->lists, vs->nlists, off))
            return corrupt(err, b, "index", at, "bad label offset table entry");
    }
    if (c.bad || c.p != c.end)
        return corrupt(err, b, "index", at, "bad label offset table");
    if ((rc = single_gap(b, TOC_LABEL_OFFSETS, err)) != 0)
        return rc;
    /* postings, then the postings offset table (parsed at open) */
    vs->nlists = 0;
    if ((rc = walk32(b, b->toc[TOC_POSTINGS], b->end[TOC_POSTINGS], "postings list", check_postings,
                     vs, err)) != 0)
        return rc;
    for (size_t i = 0; i < b->npost; i++)
        if (!bsearch_u64(vs->lists, vs->nlists, b->post[i].off))
            return corrupt(err, b, "index", b->toc[TOC_POSTINGS_OFFSETS],
                           "postings offset names no postings list");
    if (!b->has_all)
        return corrupt(err, b, "index", b->toc[TOC_POSTINGS_OFFSETS], "no all-series postings");
    return single_gap(b, TOC_POSTINGS_OFFSETS, err);
}

int mtd_tsdb_block_verify(struct mtd_tsdb_block *b, struct obs_err *err)
{
    struct vstate vs = {0};
    vs.mint = INT64_MAX;
    vs.maxt = INT64_MIN;
    int rc = verify_segments(b, &vs, err);
    if (rc == 0)
        rc = verify_index(b, &vs, err);
    if (rc == 0 && vs.ncm != vs.nchunks)
        rc = obs_err_set(err, OBS_ECORRUPT, "tsdb: %s: %zu chunks in segments, %llu referenced",
                         b->dir, vs.nchunks, (unsigned long long)vs.ncm);
    if (rc == 0 && (vs.nsamples != b->meta.nsamples || vs.nseries != b->meta.nseries ||
                    vs.ncm != b->meta.nchunks))
        rc = obs_err_set(err, OBS_ECORRUPT,
                         "tsdb: %s/meta.json: stats (%llu samples, %llu series, %llu chunks) "
                         "do not match the block (%llu, %zu, %llu)",
                         b->dir, (unsigned long long)b->meta.nsamples,
                         (unsigned long long)b->meta.nseries, (unsigned long long)b->meta.nchunks,
                         (unsigned long long)vs.nsamples, vs.nseries, (unsigned long long)vs.ncm);
    if (rc == 0 && vs.nseries > 0 && (vs.mint < b->meta.mint || vs.maxt >= b->meta.maxt))
        rc = obs_err_set(err, OBS_ECORRUPT,
                         "tsdb: %s/meta.json: samples [%lld, %lld] outside minTime/maxTime", b->dir,
                         (long long)vs.mint, (long long)vs.maxt);
    obs_free(vs.chunks);
    obs_free(vs.series);
    obs_free(vs.lists);
    return rc;
}
