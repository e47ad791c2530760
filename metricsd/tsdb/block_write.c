/*
 * block_write.c -- build a Prometheus TSDB v2 block directory (format in block_write.h).
 *
 * Order of work, one pass each:
 *   1. validate the input series and sort them by label set (labels.Compare order);
 *   2. encode/copy chunks into chunks/000001.. through a buffered writer, remembering each
 *      chunk's (mint, maxt, ref);
 *   3. collect every label name and value, sort and de-duplicate them: the symbol table,
 *      whose position is a symbol's reference (index v2);
 *   4. write the index: symbols, the series (each 16-byte aligned, id = offset / 16) while
 *      gathering (name, value, series id) triples, then sort the triples once; the label
 *      indices, postings and both offset tables are runs over that sorted array. Section
 *      order as Prometheus 2.x writes it: label indices, postings, label offset table,
 *      postings offset table, TOC;
 *   5. tombstones and meta.json; fsync everything, rename the temp directory into place.
 * Memory: the chunk metas, the symbol pointer array and 12 bytes per label of every series;
 * sample data is streamed. Sections are built in an obs_sbuf and written with their length
 * and CRC32C around them.
 */
#include "metricsd/tsdb/block_write.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/obs_mem.h"
#include "core/obs_sbuf.h"
#include "core/obs_time.h"
#include "metricsd/tsdb/tsdb_fmt.h"
#include "metricsd/tsdb/xor.h"
#include "wal/obs_wal.h"

/* ---- ULIDs ------------------------------------------------------------------------------ */

static const char crockford[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

int mtd_tsdb_ulid_new(int64_t ms, char out[27])
{
    uint8_t b[16];
    uint64_t t = (uint64_t)ms & 0xffffffffffffull;
    for (int i = 0; i < 6; i++)
        b[i] = (uint8_t)(t >> (8 * (5 - i)));
    size_t got = 0;
    for (int tries = 0; got < 10 && tries < 100; tries++) {
        ssize_t r = getrandom(b + 6 + got, 10 - got, 0);
        if (r > 0)
            got += (size_t)r;
        else if (r < 0 && errno != EINTR)
            return OBS_EIO;
    }
    if (got < 10)
        return OBS_EIO;
    /* 128 bits as 26 5-bit groups; the first group holds only the top 3 bits. */
    for (int i = 0; i < 26; i++) {
        int bit = i == 0 ? 0 : 3 + (i - 1) * 5; /* first bit (from the top) of this group */
        int width = i == 0 ? 3 : 5;
        unsigned v = 0;
        for (int k = 0; k < width; k++) {
            int pos = bit + k;
            v = (v << 1) | ((b[pos / 8] >> (7 - pos % 8)) & 1);
        }
        out[i] = crockford[v];
    }
    out[26] = '\0';
    return 0;
}

int mtd_tsdb_ulid_valid(const char *s)
{
    if (s == NULL || strlen(s) != 26 || s[0] > '7' || s[0] < '0')
        return 0;
    for (int i = 0; i < 26; i++)
        if (strchr(crockford, s[i]) == NULL || s[i] == '\0')
            return 0;
    return 1;
}

/* ---- buffered file writer --------------------------------------------------------------- */

struct fw {
    int fd;
    uint8_t *buf;
    size_t len, cap;
    uint64_t pos; /* bytes written through this writer (= file offset) */
    int rc;       /* sticky error */
};

static int fw_open(struct fw *w, const char *path, struct obs_err *err)
{
    memset(w, 0, sizeof *w);
    w->fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (w->fd < 0)
        return obs_err_set(err, OBS_EIO, "tsdb: create %s: %s", path, strerror(errno));
    w->cap = 1u << 20;
    w->buf = obs_malloc(w->cap);
    if (w->buf == NULL) {
        close(w->fd);
        w->fd = -1;
        return obs_err_set(err, OBS_ENOMEM, "tsdb: out of memory");
    }
    return 0;
}

static int fw_flush(struct fw *w)
{
    size_t off = 0;
    while (w->rc == 0 && off < w->len) {
        ssize_t r = write(w->fd, w->buf + off, w->len - off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            w->rc = OBS_EIO;
        else
            off += (size_t)r;
    }
    w->len = 0;
    return w->rc;
}

static void fw_write(struct fw *w, const void *p, size_t n)
{
    const uint8_t *s = p;
    while (w->rc == 0 && n > 0) {
        if (w->len == w->cap && fw_flush(w) != 0)
            return;
        size_t take = w->cap - w->len < n ? w->cap - w->len : n;
        memcpy(w->buf + w->len, s, take);
        w->len += take;
        w->pos += take;
        s += take;
        n -= take;
    }
}

static void fw_pad(struct fw *w, unsigned align)
{
    static const uint8_t zeros[16];
    unsigned rem = (unsigned)(w->pos % align);
    if (rem)
        fw_write(w, zeros, align - rem);
}

static void fw_be32(struct fw *w, uint32_t v)
{
    uint8_t b[4];
    tsdb_put_be32(b, v);
    fw_write(w, b, 4);
}

/* A section with a 4-byte length: len, body, CRC32C(body). */
static void fw_section32(struct fw *w, const struct obs_sbuf *body)
{
    fw_be32(w, (uint32_t)body->len);
    fw_write(w, body->p, body->len);
    fw_be32(w, obs_crc32c(0, body->p, body->len));
}

/* Flush, optionally fsync, close. Returns 0 or OBS_EIO with err set. */
static int fw_close(struct fw *w, const char *path, int do_fsync, struct obs_err *err)
{
    int rc = fw_flush(w);
    if (rc == 0 && do_fsync && fsync(w->fd) != 0)
        rc = OBS_EIO;
    if (w->fd >= 0 && close(w->fd) != 0 && rc == 0)
        rc = OBS_EIO;
    w->fd = -1;
    obs_free(w->buf);
    w->buf = NULL;
    if (rc != 0)
        return obs_err_set(err, OBS_EIO, "tsdb: write %s: %s", path, strerror(errno));
    return 0;
}

static void fw_abort(struct fw *w)
{
    if (w->fd >= 0)
        close(w->fd);
    w->fd = -1;
    obs_free(w->buf);
    w->buf = NULL;
}

/* ---- sbuf helpers ----------------------------------------------------------------------- */

static void sb_be32(struct obs_sbuf *b, uint32_t v)
{
    uint8_t x[4];
    tsdb_put_be32(x, v);
    obs_sbuf_append(b, x, 4);
}

static void sb_str(struct obs_sbuf *b, const char *s)
{
    size_t n = strlen(s);
    obs_sbuf_uvarint(b, n);
    obs_sbuf_append(b, s, n);
}

/* ---- writer state ----------------------------------------------------------------------- */

struct cmeta {
    int64_t mint, maxt;
    uint64_t ref;
};

struct wseries {
    const struct mtd_tsdb_series_in *in;
    size_t first, nchunks; /* range in bw.cm */
    uint32_t id;           /* index series id (offset / 16) */
};

struct triple {
    uint32_t name, value, id;
};

struct bw {
    struct wseries *ser;
    size_t nser;
    struct cmeta *cm;
    size_t ncm, capcm;
    const char **syms;
    size_t nsyms;
    struct triple *tr;
    size_t ntr;
    uint64_t nsamples;
    int64_t mint, maxt;
    unsigned spc;
    uint32_t segmax;
    int do_fsync;
    char dir[PATH_MAX - 64]; /* temp block directory (room left for names in it) */
    char path[PATH_MAX];     /* scratch */
    struct fw cw;            /* current chunk segment */
    uint32_t seg;            /* its index (file name seg + 1) */
    uint64_t chunk_bytes;
    struct obs_err *err;
};

static int cmp_labels(const struct obs_label *a, size_t na, const struct obs_label *b, size_t nb)
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
    return na < nb ? -1 : na > nb;
}

static int cmp_wseries(const void *x, const void *y)
{
    const struct mtd_tsdb_series_in *a = ((const struct wseries *)x)->in;
    const struct mtd_tsdb_series_in *b = ((const struct wseries *)y)->in;
    return cmp_labels(a->labels, a->nlabels, b->labels, b->nlabels);
}

static int cmp_strp(const void *x, const void *y)
{
    return strcmp(*(const char *const *)x, *(const char *const *)y);
}

static int cmp_triple(const void *x, const void *y)
{
    const struct triple *a = x, *b = y;
    if (a->name != b->name)
        return a->name < b->name ? -1 : 1;
    if (a->value != b->value)
        return a->value < b->value ? -1 : 1;
    return a->id < b->id ? -1 : a->id > b->id;
}

static uint32_t sym_id(const struct bw *b, const char *s)
{
    size_t lo = 0, hi = b->nsyms;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(b->syms[mid], s);
        if (c == 0)
            return (uint32_t)mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return UINT32_MAX; /* not reached: every label string is a symbol */
}

/* ---- chunks ----------------------------------------------------------------------------- */

static int seg_open(struct bw *b)
{
    snprintf(b->path, sizeof b->path, "%s/chunks/%06u", b->dir, b->seg + 1);
    int rc = fw_open(&b->cw, b->path, b->err);
    if (rc)
        return rc;
    uint8_t hdr[TSDB_CHUNKS_HDR] = {0};
    tsdb_put_be32(hdr, TSDB_CHUNKS_MAGIC);
    hdr[4] = TSDB_CHUNKS_VERSION;
    fw_write(&b->cw, hdr, sizeof hdr);
    return 0;
}

static int seg_close(struct bw *b)
{
    snprintf(b->path, sizeof b->path, "%s/chunks/%06u", b->dir, b->seg + 1);
    b->chunk_bytes += b->cw.pos;
    return fw_close(&b->cw, b->path, b->do_fsync, b->err);
}

/* Append one chunk to the segments and its meta to b->cm. */
static int chunk_put(struct bw *b, const uint8_t *data, size_t len, int64_t mint, int64_t maxt)
{
    uint8_t hdr[11];
    size_t hl = tsdb_put_uvarint(hdr, len);
    hdr[hl++] = MTD_TSDB_ENC_XOR;
    uint64_t total = hl + len + 4;
    if (b->cw.pos > TSDB_CHUNKS_HDR && b->cw.pos + total > b->segmax) {
        int rc = seg_close(b);
        if (rc)
            return rc;
        b->seg++;
        if ((rc = seg_open(b)) != 0)
            return rc;
    }
    if (b->ncm == b->capcm) {
        size_t ncap = b->capcm ? b->capcm * 2 : 1024;
        struct cmeta *n = obs_realloc(b->cm, ncap * sizeof *n);
        if (n == NULL)
            return obs_err_set(b->err, OBS_ENOMEM, "tsdb: out of memory");
        b->cm = n;
        b->capcm = ncap;
    }
    b->cm[b->ncm++] = (struct cmeta){mint, maxt, (uint64_t)b->seg << 32 | b->cw.pos};
    uint32_t crc = obs_crc32c(0, hdr + hl - 1, 1);
    crc = obs_crc32c(crc, data, len);
    fw_write(&b->cw, hdr, hl);
    fw_write(&b->cw, data, len);
    fw_be32(&b->cw, crc);
    if (b->cw.rc)
        return obs_err_set(b->err, OBS_EIO, "tsdb: write chunks: %s", strerror(errno));
    if (mint < b->mint)
        b->mint = mint;
    if (maxt > b->maxt)
        b->maxt = maxt;
    return 0;
}

static int series_chunks_from_samples(struct bw *b, struct mtd_tsdb_xor_enc *enc,
                                      const struct mtd_tsdb_series_in *in)
{
    int64_t cmint = 0;
    mtd_tsdb_xor_enc_reset(enc);
    for (size_t i = 0; i < in->nsamples; i++) {
        int64_t t = in->samples[i].t;
        if (i > 0 && t <= in->samples[i - 1].t)
            return obs_err_set(b->err, OBS_EINVAL,
                               "tsdb: samples of series %s=\"%s\" not in increasing time "
                               "order at t=%lld",
                               in->labels[0].name, in->labels[0].value, (long long)t);
        if (enc->n == b->spc) {
            size_t len;
            const uint8_t *d = mtd_tsdb_xor_enc_bytes(enc, &len);
            int rc = chunk_put(b, d, len, cmint, enc->t);
            if (rc)
                return rc;
            mtd_tsdb_xor_enc_reset(enc);
        }
        if (enc->n == 0)
            cmint = t;
        if (mtd_tsdb_xor_enc_append(enc, t, in->samples[i].v) != 0)
            return obs_err_set(b->err, OBS_ENOMEM, "tsdb: out of memory");
    }
    if (enc->n > 0) {
        size_t len;
        const uint8_t *d = mtd_tsdb_xor_enc_bytes(enc, &len);
        return chunk_put(b, d, len, cmint, enc->t);
    }
    return 0;
}

/* Check pre-encoded chunks by decoding them; count their samples. */
static int series_chunks_copy(struct bw *b, const struct mtd_tsdb_series_in *in, uint64_t *ns)
{
    int have = 0;
    int64_t last = 0;
    *ns = 0;
    for (size_t c = 0; c < in->nchunks; c++) {
        const struct mtd_tsdb_chunk_in *ci = &in->chunks[c];
        struct mtd_tsdb_xor_iter it;
        int64_t t, first = 0;
        double v;
        int rc, k = 0;
        mtd_tsdb_xor_iter_init(&it, ci->data, ci->len);
        while ((rc = mtd_tsdb_xor_iter_next(&it, &t, &v)) == 1) {
            if (have && t <= last)
                return obs_err_set(b->err, OBS_EINVAL,
                                   "tsdb: chunk samples not in increasing time order "
                                   "(series %s=\"%s\", t=%lld)",
                                   in->labels[0].name, in->labels[0].value, (long long)t);
            if (k++ == 0)
                first = t;
            have = 1;
            last = t;
        }
        if (rc < 0 || (k > 0 && (first != ci->mint || last != ci->maxt)))
            return obs_err_set(b->err, OBS_EINVAL,
                               "tsdb: corrupt input chunk %zu of series %s=\"%s\"", c,
                               in->labels[0].name, in->labels[0].value);
        if (k == 0)
            continue;
        *ns += (uint64_t)k;
        if ((rc = chunk_put(b, ci->data, ci->len, ci->mint, ci->maxt)) != 0)
            return rc;
    }
    return 0;
}

static int write_chunks(struct bw *b)
{
    struct mtd_tsdb_xor_enc enc;
    if (mtd_tsdb_xor_enc_init(&enc) != 0)
        return obs_err_set(b->err, OBS_ENOMEM, "tsdb: out of memory");
    int rc = seg_open(b);
    for (size_t i = 0; rc == 0 && i < b->nser; i++) {
        struct wseries *s = &b->ser[i];
        s->first = b->ncm;
        if (s->in->nchunks > 0) {
            uint64_t ns;
            rc = series_chunks_copy(b, s->in, &ns);
            b->nsamples += ns;
        } else {
            rc = series_chunks_from_samples(b, &enc, s->in);
            b->nsamples += s->in->nsamples;
        }
        s->nchunks = b->ncm - s->first;
    }
    mtd_tsdb_xor_enc_deinit(&enc);
    if (rc == 0)
        rc = seg_close(b);
    else
        fw_abort(&b->cw);
    return rc;
}

/* ---- index ------------------------------------------------------------------------------ */

static int collect_symbols(struct bw *b)
{
    size_t n = 0;
    for (size_t i = 0; i < b->nser; i++)
        n += 2 * b->ser[i].in->nlabels;
    b->syms = obs_malloc((n ? n : 1) * sizeof *b->syms);
    if (b->syms == NULL)
        return obs_err_set(b->err, OBS_ENOMEM, "tsdb: out of memory");
    n = 0;
    for (size_t i = 0; i < b->nser; i++)
        for (size_t k = 0; k < b->ser[i].in->nlabels; k++) {
            b->syms[n++] = b->ser[i].in->labels[k].name;
            b->syms[n++] = b->ser[i].in->labels[k].value;
        }
    qsort(b->syms, n, sizeof *b->syms, cmp_strp);
    size_t u = 0;
    for (size_t i = 0; i < n; i++)
        if (u == 0 || strcmp(b->syms[u - 1], b->syms[i]) != 0)
            b->syms[u++] = b->syms[i];
    b->nsyms = u;
    return 0;
}

struct toc {
    uint64_t symbols, series, label_indices, label_offsets, postings, postings_offsets;
};

static void write_series(struct bw *b, struct fw *w, struct obs_sbuf *body, struct toc *toc,
                         int *too_big)
{
    size_t nt = 0;
    fw_pad(w, TSDB_SERIES_ALIGN);
    toc->series = w->pos;
    for (size_t i = 0; i < b->nser && w->rc == 0; i++) {
        struct wseries *s = &b->ser[i];
        fw_pad(w, TSDB_SERIES_ALIGN);
        if (w->pos / TSDB_SERIES_ALIGN > UINT32_MAX) {
            *too_big = 1;
            return;
        }
        s->id = (uint32_t)(w->pos / TSDB_SERIES_ALIGN);
        obs_sbuf_reset(body);
        obs_sbuf_uvarint(body, s->in->nlabels);
        for (size_t k = 0; k < s->in->nlabels; k++) {
            uint32_t nm = sym_id(b, s->in->labels[k].name);
            uint32_t vl = sym_id(b, s->in->labels[k].value);
            obs_sbuf_uvarint(body, nm);
            obs_sbuf_uvarint(body, vl);
            b->tr[nt++] = (struct triple){nm, vl, s->id};
        }
        obs_sbuf_uvarint(body, s->nchunks);
        const struct cmeta *cm = b->cm + s->first;
        for (size_t c = 0; c < s->nchunks; c++) {
            if (c == 0) {
                obs_sbuf_varint(body, cm[0].mint);
                obs_sbuf_uvarint(body, (uint64_t)(cm[0].maxt - cm[0].mint));
                obs_sbuf_uvarint(body, cm[0].ref);
            } else {
                obs_sbuf_uvarint(body, (uint64_t)(cm[c].mint - cm[c - 1].maxt));
                obs_sbuf_uvarint(body, (uint64_t)(cm[c].maxt - cm[c].mint));
                obs_sbuf_varint(body, (int64_t)(cm[c].ref - cm[c - 1].ref));
            }
        }
        uint8_t lb[10];
        fw_write(w, lb, tsdb_put_uvarint(lb, body->len));
        fw_write(w, body->p, body->len);
        fw_be32(w, obs_crc32c(0, body->p, body->len));
    }
    b->ntr = nt;
}

static int write_index(struct bw *b, uint64_t *size)
{
    struct fw w;
    struct toc toc = {0};
    struct obs_sbuf body, tab, ptab; /* tab: label offsets, ptab: postings offsets */
    int too_big = 0, rc;
    size_t ntr = 0;
    for (size_t i = 0; i < b->nser; i++)
        ntr += b->ser[i].in->nlabels;
    b->tr = obs_malloc((ntr ? ntr : 1) * sizeof *b->tr);
    if (b->tr == NULL)
        return obs_err_set(b->err, OBS_ENOMEM, "tsdb: out of memory");
    snprintf(b->path, sizeof b->path, "%s/index", b->dir);
    if ((rc = fw_open(&w, b->path, b->err)) != 0)
        return rc;
    obs_sbuf_init(&body);
    obs_sbuf_init(&tab);
    obs_sbuf_init(&ptab);

    uint8_t hdr[TSDB_INDEX_HDR];
    tsdb_put_be32(hdr, TSDB_INDEX_MAGIC);
    hdr[4] = TSDB_INDEX_VERSION;
    fw_write(&w, hdr, sizeof hdr);

    /* symbols */
    toc.symbols = w.pos;
    sb_be32(&body, (uint32_t)b->nsyms);
    for (size_t i = 0; i < b->nsyms; i++)
        sb_str(&body, b->syms[i]);
    fw_section32(&w, &body);

    /* series (fills b->tr) */
    write_series(b, &w, &body, &toc, &too_big);
    if (too_big) {
        rc = obs_err_set(b->err, OBS_ELIMIT, "tsdb: index too large (series ids are 32-bit)");
        goto fail;
    }
    qsort(b->tr, b->ntr, sizeof *b->tr, cmp_triple);

    /* label indices: per name, its sorted distinct values */
    fw_pad(&w, TSDB_POSTINGS_ALIGN);
    toc.label_indices = w.pos;
    obs_sbuf_reset(&tab);
    uint32_t nnames = 0;
    for (size_t i = 0; i < b->ntr;) {
        size_t j = i, nvals = 0;
        obs_sbuf_reset(&body);
        sb_be32(&body, 1);
        sb_be32(&body, 0); /* #entries, patched below */
        while (j < b->ntr && b->tr[j].name == b->tr[i].name) {
            if (j == i || b->tr[j].value != b->tr[j - 1].value) {
                sb_be32(&body, b->tr[j].value);
                nvals++;
            }
            j++;
        }
        if (!body.oom)
            tsdb_put_be32((uint8_t *)body.p + 4, (uint32_t)nvals);
        fw_pad(&w, TSDB_POSTINGS_ALIGN);
        obs_sbuf_putc(&tab, 1);
        sb_str(&tab, b->syms[b->tr[i].name]);
        obs_sbuf_uvarint(&tab, w.pos);
        nnames++;
        fw_section32(&w, &body);
        i = j;
    }

    /* postings: all series under ("", ""), then one list per label pair */
    fw_pad(&w, TSDB_POSTINGS_ALIGN);
    toc.postings = w.pos;
    uint32_t npost = 1;
    obs_sbuf_putc(&ptab, 2);
    sb_str(&ptab, "");
    sb_str(&ptab, "");
    obs_sbuf_uvarint(&ptab, w.pos);
    obs_sbuf_reset(&body);
    sb_be32(&body, (uint32_t)b->nser);
    for (size_t i = 0; i < b->nser; i++)
        sb_be32(&body, b->ser[i].id);
    fw_section32(&w, &body);
    for (size_t i = 0; i < b->ntr;) {
        size_t j = i;
        while (j < b->ntr && b->tr[j].name == b->tr[i].name && b->tr[j].value == b->tr[i].value)
            j++;
        fw_pad(&w, TSDB_POSTINGS_ALIGN);
        obs_sbuf_putc(&ptab, 2);
        sb_str(&ptab, b->syms[b->tr[i].name]);
        sb_str(&ptab, b->syms[b->tr[i].value]);
        obs_sbuf_uvarint(&ptab, w.pos);
        npost++;
        obs_sbuf_reset(&body);
        sb_be32(&body, (uint32_t)(j - i));
        for (size_t k = i; k < j; k++)
            sb_be32(&body, b->tr[k].id);
        fw_section32(&w, &body);
        i = j;
    }

    /* label offset table (after the postings, where Prometheus puts it) */
    toc.label_offsets = w.pos;
    obs_sbuf_reset(&body);
    sb_be32(&body, nnames);
    obs_sbuf_append(&body, tab.p, tab.len);
    fw_section32(&w, &body);

    /* postings offset table */
    toc.postings_offsets = w.pos;
    obs_sbuf_reset(&body);
    sb_be32(&body, npost);
    obs_sbuf_append(&body, ptab.p, ptab.len);
    fw_section32(&w, &body);

    /* TOC */
    uint8_t t[TSDB_TOC_LEN];
    tsdb_put_be64(t, toc.symbols);
    tsdb_put_be64(t + 8, toc.series);
    tsdb_put_be64(t + 16, toc.label_indices);
    tsdb_put_be64(t + 24, toc.label_offsets);
    tsdb_put_be64(t + 32, toc.postings);
    tsdb_put_be64(t + 40, toc.postings_offsets);
    tsdb_put_be32(t + 48, obs_crc32c(0, t, 48));
    fw_write(&w, t, sizeof t);

    if (body.oom || tab.oom || ptab.oom) {
        rc = obs_err_set(b->err, OBS_ENOMEM, "tsdb: out of memory");
        goto fail;
    }
    *size = w.pos;
    obs_sbuf_deinit(&body);
    obs_sbuf_deinit(&tab);
    obs_sbuf_deinit(&ptab);
    return fw_close(&w, b->path, b->do_fsync, b->err);
fail:
    obs_sbuf_deinit(&body);
    obs_sbuf_deinit(&tab);
    obs_sbuf_deinit(&ptab);
    fw_abort(&w);
    return rc;
}

/* ---- small files ------------------------------------------------------------------------ */

static int write_small(struct bw *b, const char *name, const void *data, size_t len)
{
    struct fw w;
    snprintf(b->path, sizeof b->path, "%s/%s", b->dir, name);
    int rc = fw_open(&w, b->path, b->err);
    if (rc)
        return rc;
    fw_write(&w, data, len);
    return fw_close(&w, b->path, b->do_fsync, b->err);
}

static int write_tombstones(struct bw *b)
{
    uint8_t t[9];
    tsdb_put_be32(t, TSDB_TOMBSTONES_MAGIC);
    t[4] = TSDB_TOMBSTONES_VERSION;
    tsdb_put_be32(t + 5, obs_crc32c(0, NULL, 0)); /* CRC of the (empty) tombstone list */
    return write_small(b, "tombstones", t, sizeof t);
}

static int write_meta(struct bw *b, const struct mtd_tsdb_block_info *in)
{
    struct obs_sbuf m;
    obs_sbuf_init(&m);
    obs_sbuf_printf(&m,
                    "{\n\t\"ulid\": \"%s\",\n\t\"minTime\": %lld,\n\t\"maxTime\": %lld,\n"
                    "\t\"stats\": {\n\t\t\"numSamples\": %llu,\n\t\t\"numSeries\": %llu,\n"
                    "\t\t\"numChunks\": %llu\n\t},\n\t\"compaction\": {\n\t\t\"level\": 1,\n"
                    "\t\t\"sources\": [\n\t\t\t\"%s\"\n\t\t]\n\t},\n\t\"version\": 1\n}\n",
                    in->ulid, (long long)in->mint, (long long)in->maxt,
                    (unsigned long long)in->nsamples, (unsigned long long)in->nseries,
                    (unsigned long long)in->nchunks, in->ulid);
    int rc = m.oom ? obs_err_set(b->err, OBS_ENOMEM, "tsdb: out of memory")
                   : write_small(b, "meta.json", m.p, m.len);
    obs_sbuf_deinit(&m);
    return rc;
}

static int sync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return OBS_EIO;
    int rc = fsync(fd) == 0 ? 0 : OBS_EIO;
    close(fd);
    return rc;
}

/* Remove dir, its files and chunks/ (the only layout a block has). */
static void remove_block_dir(const char *dir)
{
    char p[PATH_MAX + 64];
    snprintf(p, sizeof p, "%s/chunks", dir);
    DIR *d = opendir(p);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.')
                continue;
            char f[PATH_MAX + 400];
            snprintf(f, sizeof f, "%s/%s", p, e->d_name);
            unlink(f);
        }
        closedir(d);
        rmdir(p);
    }
    static const char *const files[] = {"index", "meta.json", "tombstones"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        unlink(p);
    }
    rmdir(dir);
}

/* ---- entry point ------------------------------------------------------------------------ */

static int validate(struct bw *b, const struct mtd_tsdb_series_in *series, size_t n)
{
    b->ser = obs_calloc(n ? n : 1, sizeof *b->ser);
    if (b->ser == NULL)
        return obs_err_set(b->err, OBS_ENOMEM, "tsdb: out of memory");
    for (size_t i = 0; i < n; i++) {
        const struct mtd_tsdb_series_in *s = &series[i];
        if (s->nsamples == 0 && s->nchunks == 0)
            continue;
        if (s->nlabels == 0)
            return obs_err_set(b->err, OBS_EINVAL, "tsdb: series without labels");
        struct obs_err le = {0};
        if (obs_labels_check(s->labels, s->nlabels, &le) != 0)
            return obs_err_set(b->err, OBS_EINVAL, "tsdb: invalid series labels: %s", le.msg);
        b->ser[b->nser++].in = s;
    }
    qsort(b->ser, b->nser, sizeof *b->ser, cmp_wseries);
    for (size_t i = 1; i < b->nser; i++)
        if (cmp_wseries(&b->ser[i - 1], &b->ser[i]) == 0)
            return obs_err_set(b->err, OBS_EINVAL, "tsdb: duplicate series %s=\"%s\"...",
                               b->ser[i].in->labels[0].name, b->ser[i].in->labels[0].value);
    return 0;
}

int mtd_tsdb_block_write(const char *parent, const struct mtd_tsdb_series_in *series, size_t n,
                         const struct mtd_tsdb_write_opts *o, struct mtd_tsdb_block_info *info,
                         struct obs_err *err)
{
    struct mtd_tsdb_write_opts def = {0};
    struct mtd_tsdb_block_info bi = {0};
    struct bw b = {0};
    int rc, made = 0;
    if (o == NULL)
        o = &def;
    b.err = err;
    b.spc = o->samples_per_chunk ? o->samples_per_chunk : TSDB_DEFAULT_CHUNK_SAMPLES;
    if (b.spc > UINT16_MAX)
        b.spc = UINT16_MAX;
    b.segmax = o->segment_bytes && o->segment_bytes < TSDB_SEGMENT_MAX ? o->segment_bytes
                                                                       : TSDB_SEGMENT_MAX;
    b.do_fsync = !o->no_fsync;
    b.mint = INT64_MAX;
    b.maxt = INT64_MIN;
    if (parent == NULL || (series == NULL && n > 0))
        return obs_err_set(err, OBS_EINVAL, "tsdb: bad arguments");

    if ((rc = validate(&b, series, n)) != 0)
        goto out;
    if (b.nser == 0) {
        rc = obs_err_set(err, OBS_EINVAL, "tsdb: no samples to write");
        goto out;
    }
    if (mtd_tsdb_ulid_new(o->ulid_ms ? o->ulid_ms : obs_now_ms(), bi.ulid) != 0) {
        rc = obs_err_set(err, OBS_EIO, "tsdb: no randomness for the block ULID");
        goto out;
    }
    if ((size_t)snprintf(b.dir, sizeof b.dir, "%s/%s.tmp-for-creation", parent, bi.ulid) >=
        sizeof b.dir) {
        rc = obs_err_set(err, OBS_EINVAL, "tsdb: path too long");
        goto out;
    }
    if (mkdir(b.dir, 0755) != 0) {
        rc = obs_err_set(err, OBS_EIO, "tsdb: mkdir %s: %s", b.dir, strerror(errno));
        goto out;
    }
    made = 1;
    snprintf(b.path, sizeof b.path, "%s/chunks", b.dir);
    if (mkdir(b.path, 0755) != 0) {
        rc = obs_err_set(err, OBS_EIO, "tsdb: mkdir %s: %s", b.path, strerror(errno));
        goto out;
    }
    if ((rc = write_chunks(&b)) != 0 || (rc = collect_symbols(&b)) != 0 ||
        (rc = write_index(&b, &bi.index_bytes)) != 0 || (rc = write_tombstones(&b)) != 0)
        goto out;
    bi.mint = b.mint;
    bi.maxt = b.maxt + 1;
    if (o->range_mint || o->range_maxt) {
        if (b.mint < o->range_mint || b.maxt >= o->range_maxt) {
            rc = obs_err_set(err, OBS_EINVAL,
                             "tsdb: samples [%lld, %lld] outside the block range [%lld, %lld)",
                             (long long)b.mint, (long long)b.maxt, (long long)o->range_mint,
                             (long long)o->range_maxt);
            goto out;
        }
        bi.mint = o->range_mint;
        bi.maxt = o->range_maxt;
    }
    bi.nsamples = b.nsamples;
    bi.nseries = b.nser;
    bi.nchunks = b.ncm;
    bi.chunk_bytes = b.chunk_bytes;
    if ((rc = write_meta(&b, &bi)) != 0)
        goto out;
    snprintf(b.path, sizeof b.path, "%s/chunks", b.dir);
    if (b.do_fsync && (sync_dir(b.path) != 0 || sync_dir(b.dir) != 0)) {
        rc = obs_err_set(err, OBS_EIO, "tsdb: fsync %s: %s", b.dir, strerror(errno));
        goto out;
    }
    snprintf(b.path, sizeof b.path, "%s/%s", parent, bi.ulid);
    if (rename(b.dir, b.path) != 0) {
        rc = obs_err_set(err, OBS_EIO, "tsdb: rename %s: %s", b.dir, strerror(errno));
        goto out;
    }
    made = 0;
    if (b.do_fsync && sync_dir(parent) != 0) {
        rc = obs_err_set(err, OBS_EIO, "tsdb: fsync %s: %s", parent, strerror(errno));
        goto out;
    }
    if (info)
        *info = bi;
out:
    if (made)
        remove_block_dir(b.dir);
    obs_free(b.ser);
    obs_free(b.cm);
    obs_free(b.syms);
    obs_free(b.tr);
    return rc;
}
