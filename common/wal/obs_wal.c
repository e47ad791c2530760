/*
 * obs_wal.c -- write-ahead log of CRC32C-framed records in numbered segments (see obs_wal.h).
 *
 * On disk: <dir>/NNNNNNNN (8 decimal digits, ascending). A record is
 *   [u32 le payload length][u32 le crc32c(payload)][payload]
 * Zero-length records are refused on append and treated as corruption on replay: a
 * zero-filled tail (left by some filesystems after a crash) would otherwise decode as an
 * endless run of valid empty records, since crc32c("") == 0.
 *
 * Writing: records are framed into an in-memory buffer; the buffer is written out when it
 * grows past WAL_FLUSH_BYTES or on obs_wal_sync(), which also fdatasync()s the segment (and
 * fsyncs the directory once after a segment file is created, so the new name is durable).
 * A segment is rotated before a record that would take it past segment_bytes (a record
 * larger than segment_bytes gets a segment of its own). The current segment is created
 * lazily on the first append, so opening and closing a WAL never leaves empty segments.
 * If a write fails half-way, the segment is truncated back to its last good length so the
 * file never holds a torn record in the middle, and the pending records are dropped (they
 * were not acknowledged: obs_wal_sync() returned an error).
 *
 * Replay: segments present at open are read in order through one reusable buffer, so memory
 * is bounded by max(64 KiB, largest record) regardless of WAL size. A bad record (short
 * header, zero or impossible length, CRC mismatch) in the LAST segment is a torn write from
 * a crash: the segment is truncated there and replay ends successfully. In an earlier
 * segment it is reported as OBS_ECORRUPT, after the records before it were delivered.
 *
 * Checkpoint: _begin syncs and closes the current segment and creates a fresh one (the
 * checkpoint's first segment); the owner appends its full state; _end syncs and deletes all
 * older segments. A crash between the two leaves the old segments in place, followed by a
 * partial state dump: checkpoint records must therefore be safe to apply on top of the state
 * rebuilt from the older segments (idempotent "set" records), as in Prometheus' head.
 *
 * CRC32C: SSE4.2 crc32 instruction when the CPU has it (runtime check), else slice-by-8.
 * Not thread-safe (one owner), except obs_crc32c which is.
 */
#include "wal/obs_wal.h"
#include "core/obs_log.h"
#include "core/obs_mem.h"
#include "core/obs_sbuf.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

#define WAL_COMP "wal"
#define WAL_HDR 8
#define WAL_DEFAULT_SEGMENT (64u << 20)
#define WAL_FLUSH_BYTES (1u << 20)   /* write the buffer out past this size */
#define WAL_READ_CHUNK (64u << 10)   /* replay read granularity */
#define WAL_MAX_RECORD 0x7fffffffu   /* length field sanity bound */

/* ---------------------------------------------------------------------------------------- */
/* CRC32C                                                                                   */
/* ---------------------------------------------------------------------------------------- */

static uint32_t crc_tab[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;
static uint32_t (*crc_impl)(uint32_t crc, const uint8_t *p, size_t n);

/* Slice-by-8 over the reflected Castagnoli polynomial 0x82F63B78. crc is the raw register
 * (already inverted by the caller). */
static uint32_t crc_sw(uint32_t crc, const uint8_t *p, size_t n)
{
    while (n && ((uintptr_t)p & 7)) {
        crc = crc_tab[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
        n--;
    }
    while (n >= 8) {
        uint32_t lo = crc ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                             (uint32_t)p[3] << 24);
        uint32_t hi = (uint32_t)p[4] | (uint32_t)p[5] << 8 | (uint32_t)p[6] << 16 |
                      (uint32_t)p[7] << 24;
        crc = crc_tab[7][lo & 0xff] ^ crc_tab[6][(lo >> 8) & 0xff] ^
              crc_tab[5][(lo >> 16) & 0xff] ^ crc_tab[4][lo >> 24] ^
              crc_tab[3][hi & 0xff] ^ crc_tab[2][(hi >> 8) & 0xff] ^
              crc_tab[1][(hi >> 16) & 0xff] ^ crc_tab[0][hi >> 24];
        p += 8;
        n -= 8;
    }
    while (n--)
        crc = crc_tab[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t crc_hw(uint32_t crc, const uint8_t *p,
                                                          size_t n)
{
    while (n && ((uintptr_t)p & 7)) {
        crc = _mm_crc32_u8(crc, *p++);
        n--;
    }
    uint64_t c = crc;
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c = _mm_crc32_u64(c, v);
        p += 8;
        n -= 8;
    }
    crc = (uint32_t)c;
    while (n--)
        crc = _mm_crc32_u8(crc, *p++);
    return crc;
}
#endif

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        crc_tab[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++)
            crc_tab[t][i] = (crc_tab[t - 1][i] >> 8) ^ crc_tab[0][crc_tab[t - 1][i] & 0xff];
    crc_impl = crc_sw;
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("sse4.2") && getenv("OBS_CRC32C_SOFT") == NULL)
        crc_impl = crc_hw;
#endif
}

/*
 * CRC32C (Castagnoli) of data, continuing from crc (pass 0 to start; pass a previous result
 * to extend it). crc32c("123456789") == 0xE3069283. Thread-safe. Setting OBS_CRC32C_SOFT in
 * the environment forces the table implementation (for testing both paths).
 */
uint32_t obs_crc32c(uint32_t crc, const void *data, size_t len)
{
    pthread_once(&crc_once, crc_init);
    return ~crc_impl(~crc, data, len);
}

/* ---------------------------------------------------------------------------------------- */
/* WAL                                                                                      */
/* ---------------------------------------------------------------------------------------- */

struct obs_wal {
    char *dir;
    size_t seg_bytes;
    int no_fsync;

    uint32_t *segs;     /* segment numbers on disk, ascending (includes the current one) */
    size_t nsegs, capsegs;
    uint32_t nreplay;   /* segments present at open: replay reads segs[0..nreplay) */
    uint64_t disk_size; /* bytes written to all segment files */

    int fd;             /* current segment, -1 until the first append */
    uint32_t cur;       /* current segment number (valid when fd >= 0) */
    uint32_t next;      /* number for the next segment created */
    uint64_t cur_size;  /* bytes written + buffered in the current segment */
    uint64_t cur_good;  /* bytes known written to the current segment file */
    int dir_dirty;      /* directory needs an fsync (a segment was created) */
    int appended;       /* an append happened (replay is no longer allowed) */
    uint32_t ckpt;      /* first segment of a checkpoint in progress, 0 = none */

    struct obs_sbuf buf; /* framed records not yet written */
};

static void put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static uint32_t get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void seg_path(const struct obs_wal *w, uint32_t n, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%08u", w->dir, n);
}

/* Parse a segment file name: all decimal digits, at least 8 (longer once past 99,999,999). */
static int parse_seg_name(const char *name, uint32_t *out)
{
    size_t n = strlen(name);
    if (n < 8 || n > 10)
        return 0;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (name[i] < '0' || name[i] > '9')
            return 0;
        v = v * 10 + (uint64_t)(name[i] - '0');
    }
    if (v == 0 || v > UINT32_MAX)
        return 0;
    *out = (uint32_t)v;
    return 1;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static int segs_push(struct obs_wal *w, uint32_t n)
{
    if (w->nsegs == w->capsegs) {
        size_t nc = w->capsegs ? w->capsegs * 2 : 16;
        uint32_t *ns = obs_realloc(w->segs, nc * sizeof(*ns));
        if (ns == NULL)
            return OBS_ENOMEM;
        w->segs = ns;
        w->capsegs = nc;
    }
    w->segs[w->nsegs++] = n;
    return OBS_OK;
}

/* mkdir -p */
static int mkdirs(const char *path)
{
    char tmp[PATH_MAX];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof(tmp))
        return -1;
    memcpy(tmp, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (tmp[i] == '/' || tmp[i] == '\0') {
            char c = tmp[i];
            tmp[i] = '\0';
            if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
                return -1;
            tmp[i] = c;
        }
    }
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    return 0;
}

static int fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

static int write_all(int fd, const void *data, size_t n)
{
    const char *p = data;
    while (n > 0) {
        ssize_t k = write(fd, p, n);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/*
 * Open (create) the WAL in o->dir. Existing segments are found and remembered for replay;
 * appends go to a new segment numbered after them. Returns NULL with err set (OBS_EINVAL for
 * bad options, OBS_EIO when the directory cannot be created or read, OBS_ENOMEM).
 */
struct obs_wal *obs_wal_open(const struct obs_wal_opts *o, struct obs_err *err)
{
    if (o == NULL || o->dir == NULL || o->dir[0] == '\0') {
        obs_err_set(err, OBS_EINVAL, "wal: no directory given");
        return NULL;
    }
    if (mkdirs(o->dir) != 0) {
        obs_err_set(err, OBS_EIO, "wal: create %s: %s", o->dir, strerror(errno));
        return NULL;
    }
    struct obs_wal *w = obs_calloc(1, sizeof(*w));
    if (w == NULL || (w->dir = obs_strdup(o->dir)) == NULL) {
        obs_free(w);
        obs_err_set(err, OBS_ENOMEM, "wal: out of memory");
        return NULL;
    }
    w->seg_bytes = o->segment_bytes ? o->segment_bytes : WAL_DEFAULT_SEGMENT;
    w->no_fsync = o->no_fsync;
    w->fd = -1;
    obs_sbuf_init(&w->buf);

    DIR *d = opendir(o->dir);
    if (d == NULL) {
        obs_err_set(err, OBS_EIO, "wal: open %s: %s", o->dir, strerror(errno));
        obs_wal_close(w);
        return NULL;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        uint32_t n;
        if (!parse_seg_name(de->d_name, &n))
            continue;
        char path[PATH_MAX];
        struct stat st;
        seg_path(w, n, path, sizeof(path));
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        if (segs_push(w, n) != OBS_OK) {
            closedir(d);
            obs_err_set(err, OBS_ENOMEM, "wal: out of memory");
            obs_wal_close(w);
            return NULL;
        }
        w->disk_size += (uint64_t)st.st_size;
    }
    closedir(d);
    if (w->nsegs)
        qsort(w->segs, w->nsegs, sizeof(*w->segs), cmp_u32);
    w->nreplay = (uint32_t)w->nsegs;
    w->next = w->nsegs ? w->segs[w->nsegs - 1] + 1 : 1;
    if (w->next == 0) {
        obs_err_set(err, OBS_EINVAL, "wal: %s: segment numbers exhausted", o->dir);
        obs_wal_close(w);
        return NULL;
    }
    return w;
}

/* Write the buffered records to the current segment (no fsync). */
static int flush_buf(struct obs_wal *w)
{
    if (w->buf.len == 0)
        return OBS_OK;
    if (w->fd < 0)
        return OBS_EIO;
    if (write_all(w->fd, w->buf.p, w->buf.len) != 0) {
        obs_clog_error(WAL_COMP, "write segment %08u: %s", w->cur, strerror(errno));
        /* Never leave a torn record in the middle of a segment: cut back to the last good
         * length and drop the pending (unacknowledged) records. */
        if (ftruncate(w->fd, (off_t)w->cur_good) == 0)
            lseek(w->fd, 0, SEEK_END);
        w->cur_size = w->cur_good;
        obs_sbuf_reset(&w->buf);
        return OBS_EIO;
    }
    w->disk_size += w->buf.len;
    w->cur_good += w->buf.len;
    obs_sbuf_reset(&w->buf);
    return OBS_OK;
}

/* Flush the buffer and make the current segment (and the directory) durable. */
static int sync_cur(struct obs_wal *w)
{
    int rc = flush_buf(w);
    if (rc != OBS_OK)
        return rc;
    if (w->no_fsync) {
        w->dir_dirty = 0;
        return OBS_OK;
    }
    if (w->fd >= 0 && fdatasync(w->fd) != 0) {
        obs_clog_error(WAL_COMP, "fdatasync segment %08u: %s", w->cur, strerror(errno));
        return OBS_EIO;
    }
    if (w->dir_dirty) {
        if (fsync_dir(w->dir) != 0) {
            obs_clog_error(WAL_COMP, "fsync %s: %s", w->dir, strerror(errno));
            return OBS_EIO;
        }
        w->dir_dirty = 0;
    }
    return OBS_OK;
}

/* Sync and close the current segment, if any. */
static int close_cur(struct obs_wal *w)
{
    if (w->fd < 0)
        return OBS_OK;
    int rc = sync_cur(w);
    close(w->fd);
    w->fd = -1;
    return rc;
}

/* Create the next segment and make it current (the previous one must be closed). */
static int open_next(struct obs_wal *w)
{
    char path[PATH_MAX];
    for (int tries = 0; tries < 16; tries++) {
        if (w->next == 0)
            return OBS_EIO;
        seg_path(w, w->next, path, sizeof(path));
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0644);
        if (fd < 0 && errno == EEXIST) {
            w->next++; /* someone left a file there: never append to unknown data */
            continue;
        }
        if (fd < 0) {
            obs_clog_error(WAL_COMP, "create %s: %s", path, strerror(errno));
            return OBS_EIO;
        }
        if (segs_push(w, w->next) != OBS_OK) {
            close(fd);
            unlink(path);
            return OBS_ENOMEM;
        }
        w->fd = fd;
        w->cur = w->next++;
        w->cur_size = w->cur_good = 0;
        w->dir_dirty = 1;
        return OBS_OK;
    }
    return OBS_EIO;
}

/* Sync, close the current segment and free the WAL. NULL is fine. */
void obs_wal_close(struct obs_wal *w)
{
    if (w == NULL)
        return;
    if (close_cur(w) != OBS_OK)
        obs_clog_error(WAL_COMP, "close: final sync of %s failed", w->dir);
    obs_sbuf_deinit(&w->buf);
    obs_free(w->segs);
    obs_free(w->dir);
    obs_free(w);
}

/*
 * Buffer one record (len >= 1, < 2 GiB). The record is durable only after obs_wal_sync()
 * returns 0. Rotates to a new segment when this record would take the current one past
 * segment_bytes. Returns 0, OBS_EINVAL (empty or oversized record), OBS_ENOMEM or OBS_EIO.
 */
int obs_wal_append(struct obs_wal *w, const void *rec, size_t len)
{
    if (len == 0 || len > WAL_MAX_RECORD)
        return OBS_EINVAL;
    w->appended = 1;
    size_t need = WAL_HDR + len;
    if (w->fd >= 0 && w->cur_size > 0 && w->cur_size + need > w->seg_bytes) {
        int rc = close_cur(w);
        if (rc != OBS_OK)
            return rc;
    }
    if (w->fd < 0) {
        int rc = open_next(w);
        if (rc != OBS_OK)
            return rc;
    }
    if (obs_sbuf_reserve(&w->buf, need) != OBS_OK)
        return OBS_ENOMEM;
    uint8_t hdr[WAL_HDR];
    put_le32(hdr, (uint32_t)len);
    put_le32(hdr + 4, obs_crc32c(0, rec, len));
    obs_sbuf_append(&w->buf, hdr, WAL_HDR);
    obs_sbuf_append(&w->buf, rec, len);
    w->cur_size += need;
    if (w->buf.len >= WAL_FLUSH_BYTES)
        return flush_buf(w);
    return OBS_OK;
}

/* Write buffered records and fdatasync (skipped with no_fsync). Returns 0 or OBS_EIO. */
int obs_wal_sync(struct obs_wal *w)
{
    if (w->fd < 0)
        return OBS_OK;
    return sync_cur(w);
}

/*
 * Start a checkpoint: sync and close the current segment and create a fresh one; records
 * appended until obs_wal_checkpoint_end() form the checkpoint. Returns 0 or OBS_EIO/ENOMEM.
 */
int obs_wal_checkpoint_begin(struct obs_wal *w)
{
    w->appended = 1;
    int rc = close_cur(w);
    if (rc != OBS_OK)
        return rc;
    rc = open_next(w);
    if (rc != OBS_OK)
        return rc;
    w->ckpt = w->cur;
    return OBS_OK;
}

/*
 * Finish a checkpoint: sync it, then delete every segment older than its first segment.
 * Returns 0, OBS_EINVAL (no checkpoint in progress) or OBS_EIO (the sync failed: nothing is
 * deleted; or a delete failed: the remaining old segments are retried at the next _end).
 */
int obs_wal_checkpoint_end(struct obs_wal *w)
{
    if (w->ckpt == 0)
        return OBS_EINVAL;
    int rc = sync_cur(w);
    if (rc != OBS_OK)
        return rc;
    uint32_t first = w->ckpt;
    w->ckpt = 0;
    size_t keep = 0;
    for (size_t i = 0; i < w->nsegs; i++) {
        if (w->segs[i] >= first) {
            w->segs[keep++] = w->segs[i];
            continue;
        }
        char path[PATH_MAX];
        struct stat st;
        seg_path(w, w->segs[i], path, sizeof(path));
        off_t sz = stat(path, &st) == 0 ? st.st_size : 0;
        if (unlink(path) != 0 && errno != ENOENT) {
            obs_clog_error(WAL_COMP, "delete %s: %s", path, strerror(errno));
            w->segs[keep++] = w->segs[i];
            rc = OBS_EIO;
            continue;
        }
        w->disk_size -= (uint64_t)sz <= w->disk_size ? (uint64_t)sz : w->disk_size;
    }
    w->nsegs = keep;
    w->nreplay = 0; /* whatever existed at open is gone or superseded */
    if (!w->no_fsync && fsync_dir(w->dir) != 0 && rc == OBS_OK)
        rc = OBS_EIO;
    return rc;
}

/* Bytes across all segment files, plus records buffered but not yet written. */
uint64_t obs_wal_size(const struct obs_wal *w)
{
    return w ? w->disk_size + w->buf.len : 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Replay                                                                                   */
/* ---------------------------------------------------------------------------------------- */

/* Buffered sequential reader over one segment: buf holds bytes [pos, pos+avail) of the
 * file at buf.p + start. */
struct reader {
    int fd;
    struct obs_sbuf *buf;
    size_t start; /* offset of unread data in buf */
    int eof;
};

/* Make at least n contiguous bytes available. Returns 1 when they are, 0 at EOF/short,
 * negative OBS_E* on error. */
static int rd_need(struct reader *r, size_t n)
{
    struct obs_sbuf *b = r->buf;
    if (b->len - r->start >= n)
        return 1;
    /* Move the unread tail to the front, then read more. */
    size_t have = b->len - r->start;
    if (r->start) {
        memmove(b->p, b->p + r->start, have);
        b->len = have;
        r->start = 0;
    }
    while (b->len < n && !r->eof) {
        size_t want = n - b->len;
        if (want < WAL_READ_CHUNK)
            want = WAL_READ_CHUNK;
        if (obs_sbuf_reserve(b, want) != OBS_OK)
            return OBS_ENOMEM;
        ssize_t k = read(r->fd, b->p + b->len, want);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return OBS_EIO;
        }
        if (k == 0)
            r->eof = 1;
        b->len += (size_t)k;
    }
    return b->len >= n;
}

/* Replay one segment. Sets *bad_off to the offset of the first bad record (or -1) and
 * *why to a reason. Returns 0, fn's non-zero value, or OBS_EIO/ENOMEM. */
static int replay_seg(struct obs_wal *w, uint32_t seg, struct obs_sbuf *buf,
                      obs_wal_replay_fn fn, void *arg, off_t *bad_off, const char **why,
                      struct obs_err *err)
{
    char path[PATH_MAX];
    seg_path(w, seg, path, sizeof(path));
    *bad_off = -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return OBS_OK;
        return obs_err_set(err, OBS_EIO, "wal: open %s: %s", path, strerror(errno));
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return obs_err_set(err, OBS_EIO, "wal: stat %s: %s", path, strerror(errno));
    }
    uint64_t fsize = (uint64_t)st.st_size;
    obs_sbuf_reset(buf);
    struct reader r = {.fd = fd, .buf = buf};
    uint64_t off = 0;
    int rc = OBS_OK;
    while (off < fsize) {
        int got = rd_need(&r, WAL_HDR);
        if (got < 0) {
            rc = obs_err_set(err, got, "wal: read %s: %s", path, obs_rc_str(got));
            break;
        }
        if (got == 0) {
            *bad_off = (off_t)off;
            *why = "truncated record header";
            break;
        }
        const uint8_t *h = (const uint8_t *)buf->p + r.start;
        uint32_t len = get_le32(h), crc = get_le32(h + 4);
        if (len == 0 || len > WAL_MAX_RECORD || (uint64_t)len > fsize - off - WAL_HDR) {
            *bad_off = (off_t)off;
            *why = len == 0 ? "zero-length record" : "record length past end of segment";
            break;
        }
        got = rd_need(&r, WAL_HDR + (size_t)len);
        if (got < 0) {
            rc = obs_err_set(err, got, "wal: read %s: %s", path, obs_rc_str(got));
            break;
        }
        if (got == 0) { /* file shrank under us */
            *bad_off = (off_t)off;
            *why = "truncated record";
            break;
        }
        const uint8_t *payload = (const uint8_t *)buf->p + r.start + WAL_HDR;
        if (obs_crc32c(0, payload, len) != crc) {
            *bad_off = (off_t)off;
            *why = "checksum mismatch";
            break;
        }
        rc = fn(payload, len, arg);
        if (rc != 0)
            break;
        r.start += WAL_HDR + len;
        off += WAL_HDR + len;
    }
    close(fd);
    return rc;
}

/*
 * Replay every record written before open, in order, calling fn(payload, len, arg). Must be
 * called before the first append (OBS_EINVAL otherwise). A bad record at the tail of the last
 * segment is truncated away (logged); in an earlier segment replay stops with OBS_ECORRUPT
 * and err says where. A non-zero return from fn stops replay and is returned.
 */
int obs_wal_replay(struct obs_wal *w, obs_wal_replay_fn fn, void *arg, struct obs_err *err)
{
    if (w->appended)
        return obs_err_set(err, OBS_EINVAL, "wal: replay after append");
    struct obs_sbuf buf;
    obs_sbuf_init(&buf);
    int rc = OBS_OK;
    for (uint32_t i = 0; i < w->nreplay && rc == OBS_OK; i++) {
        uint32_t seg = w->segs[i];
        off_t bad = -1;
        const char *why = "";
        rc = replay_seg(w, seg, &buf, fn, arg, &bad, &why, err);
        if (rc != OBS_OK || bad < 0)
            continue;
        char path[PATH_MAX];
        seg_path(w, seg, path, sizeof(path));
        if (i + 1 < w->nreplay) {
            rc = obs_err_set(err, OBS_ECORRUPT, "wal: %s at offset %lld: %s", path,
                             (long long)bad, why);
            break;
        }
        /* Torn tail of the last segment: cut it off so later appends stay readable. */
        struct stat st;
        uint64_t before = stat(path, &st) == 0 ? (uint64_t)st.st_size : (uint64_t)bad;
        obs_clog_warn(WAL_COMP, "truncating torn tail\tsegment=%s offset=%lld dropped_bytes=%llu "
                      "reason=\"%s\"", path, (long long)bad,
                      (unsigned long long)(before - (uint64_t)bad), why);
        if (truncate(path, bad) != 0) {
            rc = obs_err_set(err, OBS_EIO, "wal: truncate %s: %s", path, strerror(errno));
            break;
        }
        if (!w->no_fsync) {
            int fd = open(path, O_WRONLY | O_CLOEXEC);
            if (fd >= 0) {
                fdatasync(fd);
                close(fd);
            }
        }
        uint64_t cut = before - (uint64_t)bad;
        w->disk_size -= cut <= w->disk_size ? cut : w->disk_size;
    }
    obs_sbuf_deinit(&buf);
    return rc;
}
