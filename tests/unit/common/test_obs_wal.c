/*
 * test_obs_wal.c -- obs_wal on a real temporary directory: framing, durability across
 * reopen, torn-tail repair, corruption reporting, rotation, checkpoints, CRC32C.
 *
 * The .c is included so the two CRC32C implementations (table and SSE4.2) can be compared
 * directly; the test object then provides every obs_wal symbol and libobs' copy is not linked.
 * Each test gets a fresh directory (checked fixture) that is removed afterwards.
 */
#include "../../../common/wal/obs_wal.c"

#include <check.h>
#include <ftw.h>
#include <stdlib.h>

static char tdir[256];

static void setup(void)
{
    snprintf(tdir, sizeof(tdir), "/tmp/test_obs_wal.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tdir));
}

static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    (void)st, (void)flag, (void)f;
    return remove(p);
}

static void teardown(void) { nftw(tdir, rm_cb, 16, FTW_DEPTH | FTW_PHYS); }

/* --- helpers ------------------------------------------------------------------------------ */

/* Deterministic record i: "rec-<i>-" followed by (i * 7) % 300 filler bytes. */
static size_t make_rec(unsigned i, char *out, size_t cap)
{
    int n = snprintf(out, cap, "rec-%u-", i);
    size_t fill = (i * 7u) % 300u;
    for (size_t k = 0; k < fill && (size_t)n + k < cap; k++)
        out[n + k] = (char)('a' + (i + k) % 26);
    return (size_t)n + fill;
}

struct collect {
    unsigned n;       /* records seen */
    int bad;          /* a record differed from make_rec(n) */
    unsigned stop_at; /* return 1 when n reaches this (0 = never) */
};

static int collect_fn(const uint8_t *rec, size_t len, void *arg)
{
    struct collect *c = arg;
    char want[512];
    size_t wl = make_rec(c->n, want, sizeof(want));
    if (wl != len || memcmp(want, rec, len) != 0)
        c->bad = 1;
    c->n++;
    if (c->stop_at && c->n == c->stop_at)
        return 1;
    return 0;
}

static struct obs_wal *open_wal(size_t seg)
{
    struct obs_err err = {0};
    struct obs_wal_opts o = {.dir = tdir, .segment_bytes = seg};
    struct obs_wal *w = obs_wal_open(&o, &err);
    ck_assert_msg(w != NULL, "open: %s", err.msg);
    return w;
}

static void write_recs(struct obs_wal *w, unsigned from, unsigned to)
{
    char buf[512];
    for (unsigned i = from; i < to; i++) {
        size_t n = make_rec(i, buf, sizeof(buf));
        ck_assert_int_eq(obs_wal_append(w, buf, n), 0);
    }
    ck_assert_int_eq(obs_wal_sync(w), 0);
}

/* Replay into a collector with a fresh WAL handle; returns the replay rc. */
static int replay_all(size_t seg, struct collect *c, struct obs_err *err)
{
    struct obs_wal *w = open_wal(seg);
    memset(c, 0, sizeof(*c));
    int rc = obs_wal_replay(w, collect_fn, c, err);
    obs_wal_close(w);
    return rc;
}

static int count_segments(void)
{
    DIR *d = opendir(tdir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    struct dirent *de;
    uint32_t x;
    while ((de = readdir(d)) != NULL)
        n += parse_seg_name(de->d_name, &x);
    closedir(d);
    return n;
}

static off_t file_size(const char *path)
{
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    return st.st_size;
}

static void last_seg_path(char *out, size_t cap)
{
    DIR *d = opendir(tdir);
    uint32_t best = 0, x;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (parse_seg_name(de->d_name, &x) && x > best)
            best = x;
    closedir(d);
    ck_assert_uint_gt(best, 0);
    snprintf(out, cap, "%s/%08u", tdir, best);
}

static void append_bytes(const char *path, const void *data, size_t n)
{
    int fd = open(path, O_WRONLY | O_APPEND);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, data, n), (ssize_t)n);
    close(fd);
}

static void flip_byte(const char *path, off_t off)
{
    int fd = open(path, O_RDWR);
    ck_assert_int_ge(fd, 0);
    uint8_t b;
    ck_assert_int_eq(pread(fd, &b, 1, off), 1);
    b ^= 0x5a;
    ck_assert_int_eq(pwrite(fd, &b, 1, off), 1);
    close(fd);
}

/* --- crc32c ------------------------------------------------------------------------------- */

START_TEST(crc_vectors)
{
    ck_assert_uint_eq(obs_crc32c(0, "123456789", 9), 0xE3069283u);
    ck_assert_uint_eq(obs_crc32c(0, "", 0), 0);
    /* RFC 3720 B.4: 32 bytes of zeros / of 0xff. */
    uint8_t z[32] = {0}, f[32];
    memset(f, 0xff, sizeof(f));
    ck_assert_uint_eq(obs_crc32c(0, z, 32), 0x8A9136AAu);
    ck_assert_uint_eq(obs_crc32c(0, f, 32), 0x62A8AB43u);
    /* Chaining equals one pass. */
    uint32_t c = obs_crc32c(0, "12345", 5);
    ck_assert_uint_eq(obs_crc32c(c, "6789", 4), 0xE3069283u);
}
END_TEST

START_TEST(crc_impls_agree)
{
    pthread_once(&crc_once, crc_init);
    uint8_t buf[4096 + 16];
    uint32_t seed = 12345;
    for (size_t i = 0; i < sizeof(buf); i++) {
        seed = seed * 1103515245u + 12345u;
        buf[i] = (uint8_t)(seed >> 16);
    }
    for (size_t off = 0; off < 16; off++) {
        for (size_t len = 0; len < 300; len += 7) {
            uint32_t sw = ~crc_sw(~0u, buf + off, len);
#if defined(__x86_64__)
            if (__builtin_cpu_supports("sse4.2")) {
                uint32_t hw = ~crc_hw(~0u, buf + off, len);
                ck_assert_uint_eq(sw, hw);
            }
#endif
            ck_assert_uint_eq(sw, obs_crc32c(0, buf + off, len));
        }
    }
    ck_assert_uint_eq(~crc_sw(~0u, (const uint8_t *)"123456789", 9), 0xE3069283u);
}
END_TEST

/* --- append / sync / reopen / replay ------------------------------------------------------ */

START_TEST(roundtrip)
{
    struct obs_wal *w = open_wal(0);
    struct collect c = {0};
    ck_assert_int_eq(obs_wal_replay(w, collect_fn, &c, NULL), 0); /* empty dir */
    ck_assert_uint_eq(c.n, 0);
    write_recs(w, 0, 100);
    obs_wal_close(w);

    struct obs_err err = {0};
    ck_assert_int_eq(replay_all(0, &c, &err), 0);
    ck_assert_uint_eq(c.n, 100);
    ck_assert_int_eq(c.bad, 0);

    /* Reopen and append more: they follow in a new segment, order preserved. */
    w = open_wal(0);
    ck_assert_int_eq(obs_wal_replay(w, collect_fn, &(struct collect){0}, NULL), 0);
    write_recs(w, 100, 150);
    obs_wal_close(w);
    ck_assert_int_eq(count_segments(), 2);
    ck_assert_int_eq(replay_all(0, &c, &err), 0);
    ck_assert_uint_eq(c.n, 150);
    ck_assert_int_eq(c.bad, 0);
}
END_TEST

START_TEST(framing_on_disk)
{
    struct obs_wal *w = open_wal(0);
    ck_assert_int_eq(obs_wal_append(w, "hello", 5), 0);
    ck_assert_int_eq(obs_wal_sync(w), 0);
    ck_assert_uint_eq(obs_wal_size(w), 13);
    obs_wal_close(w);
    char path[512];
    snprintf(path, sizeof(path), "%s/00000001", tdir);
    int fd = open(path, O_RDONLY);
    ck_assert_int_ge(fd, 0);
    uint8_t b[32];
    ck_assert_int_eq(read(fd, b, sizeof(b)), 13);
    close(fd);
    ck_assert_uint_eq(get_le32(b), 5);
    ck_assert_uint_eq(get_le32(b + 4), obs_crc32c(0, "hello", 5));
    ck_assert_int_eq(memcmp(b + 8, "hello", 5), 0);
}
END_TEST

START_TEST(open_close_no_empty_segments)
{
    for (int i = 0; i < 3; i++)
        obs_wal_close(open_wal(0));
    ck_assert_int_eq(count_segments(), 0);
}
END_TEST

START_TEST(api_misuse)
{
    struct obs_wal *w = open_wal(0);
    ck_assert_int_eq(obs_wal_append(w, "", 0), OBS_EINVAL);
    ck_assert_int_eq(obs_wal_append(w, "x", 1), 0);
    struct obs_err err = {0};
    ck_assert_int_eq(obs_wal_replay(w, collect_fn, &(struct collect){0}, &err), OBS_EINVAL);
    ck_assert_int_eq(obs_wal_checkpoint_end(w), OBS_EINVAL);
    obs_wal_close(w);
    obs_wal_close(NULL);

    struct obs_wal_opts o = {.dir = "/proc/definitely/not/here"};
    ck_assert_ptr_null(obs_wal_open(&o, &err));
    ck_assert_int_eq(err.code, OBS_EIO);
    o.dir = "";
    ck_assert_ptr_null(obs_wal_open(&o, &err));
    ck_assert_int_eq(err.code, OBS_EINVAL);
}
END_TEST

START_TEST(replay_stop)
{
    struct obs_wal *w = open_wal(0);
    write_recs(w, 0, 10);
    obs_wal_close(w);
    w = open_wal(0);
    struct collect c = {.stop_at = 4};
    ck_assert_int_eq(obs_wal_replay(w, collect_fn, &c, NULL), 1);
    ck_assert_uint_eq(c.n, 4);
    obs_wal_close(w);
}
END_TEST

/* --- torn tails and corruption ------------------------------------------------------------ */

START_TEST(torn_tail_garbage)
{
    struct obs_wal *w = open_wal(0);
    write_recs(w, 0, 20);
    obs_wal_close(w);
    char path[512];
    last_seg_path(path, sizeof(path));
    off_t good = file_size(path);
    append_bytes(path, "\x13\x00\x00\x00garbage!", 12); /* header claims 19 bytes, 4 present */

    struct collect c;
    struct obs_err err = {0};
    w = open_wal(0);
    memset(&c, 0, sizeof(c));
    ck_assert_int_eq(obs_wal_replay(w, collect_fn, &c, &err), 0);
    ck_assert_uint_eq(c.n, 20);
    ck_assert_int_eq(c.bad, 0);
    ck_assert_int_eq(file_size(path), good); /* tail cut off */
    write_recs(w, 20, 30);                   /* and the WAL keeps working */
    obs_wal_close(w);
    ck_assert_int_eq(replay_all(0, &c, &err), 0);
    ck_assert_uint_eq(c.n, 30);
    ck_assert_int_eq(c.bad, 0);
}
END_TEST

START_TEST(torn_tail_cut_record)
{
    struct obs_wal *w = open_wal(0);
    write_recs(w, 0, 20);
    obs_wal_close(w);
    char path[512];
    last_seg_path(path, sizeof(path));
    off_t sz = file_size(path);
    char last[512];
    size_t ll = make_rec(19, last, sizeof(last));
    ck_assert_int_eq(truncate(path, sz - 3), 0); /* crash mid-way through record 19 */

    struct collect c;
    struct obs_err err = {0};
    ck_assert_int_eq(replay_all(0, &c, &err), 0);
    ck_assert_uint_eq(c.n, 19);
    ck_assert_int_eq(c.bad, 0);
    ck_assert_int_eq(file_size(path), sz - (off_t)(ll + 8));

    /* Only part of a header left. */
    ck_assert_int_eq(truncate(path, file_size(path) - (off_t)(make_rec(18, last, 512) + 8) + 5),
                     0);
    ck_assert_int_eq(replay_all(0, &c, &err), 0);
    ck_assert_uint_eq(c.n, 18);
}
END_TEST

START_TEST(zero_filled_tail)
{
    struct obs_wal *w = open_wal(0);
    write_recs(w, 0, 5);
    obs_wal_close(w);
    char path[512];
    last_seg_path(path, sizeof(path));
    off_t good = file_size(path);
    static const uint8_t zeros[4096];
    append_bytes(path, zeros, sizeof(zeros));
    struct collect c;
    ck_assert_int_eq(replay_all(0, &c, NULL), 0);
    ck_assert_uint_eq(c.n, 5);
    ck_assert_int_eq(file_size(path), good);
}
END_TEST

START_TEST(crc_mismatch_last_segment)
{
    struct obs_wal *w = open_wal(0);
    write_recs(w, 0, 10);
    obs_wal_close(w);
    char path[512], buf[512];
    last_seg_path(path, sizeof(path));
    /* Offset of record 6's payload. */
    off_t off = 0;
    for (unsigned i = 0; i < 6; i++)
        off += 8 + (off_t)make_rec(i, buf, sizeof(buf));
    flip_byte(path, off + 8 + 2);
    struct collect c;
    struct obs_err err = {0};
    ck_assert_int_eq(replay_all(0, &c, &err), 0);
    ck_assert_uint_eq(c.n, 6); /* 0..5 kept, 6.. dropped */
    ck_assert_int_eq(c.bad, 0);
    ck_assert_int_eq(file_size(path), off);
}
END_TEST

START_TEST(crc_mismatch_earlier_segment)
{
    /* Two segments: corrupt a record in the first. */
    struct obs_wal *w = open_wal(0);
    write_recs(w, 0, 10);
    obs_wal_close(w);
    w = open_wal(0);
    write_recs(w, 10, 20);
    obs_wal_close(w);
    ck_assert_int_eq(count_segments(), 2);
    char path[512], buf[512];
    snprintf(path, sizeof(path), "%s/00000001", tdir);
    off_t size_before = file_size(path);
    off_t off = 0;
    for (unsigned i = 0; i < 3; i++)
        off += 8 + (off_t)make_rec(i, buf, sizeof(buf));
    flip_byte(path, off + 4); /* the stored CRC of record 3 */
    struct collect c;
    struct obs_err err = {0};
    ck_assert_int_eq(replay_all(0, &c, &err), OBS_ECORRUPT);
    ck_assert_int_eq(err.code, OBS_ECORRUPT);
    ck_assert_ptr_nonnull(strstr(err.msg, "00000001"));
    ck_assert_ptr_nonnull(strstr(err.msg, "checksum"));
    ck_assert_uint_eq(c.n, 3);              /* records before the corruption were delivered */
    ck_assert_int_eq(file_size(path), size_before); /* nothing destroyed */
}
END_TEST

/* Cut the last segment at every byte offset: replay always succeeds and delivers exactly the
 * records that were complete before the cut. */
START_TEST(truncate_anywhere)
{
    struct obs_wal *w = open_wal(0);
    write_recs(w, 0, 12);
    obs_wal_close(w);
    char path[512], buf[512];
    last_seg_path(path, sizeof(path));
    off_t size = file_size(path);
    uint8_t *orig = malloc((size_t)size);
    int fd = open(path, O_RDONLY);
    ck_assert_int_eq(read(fd, orig, (size_t)size), size);
    close(fd);
    off_t ends[12];
    off_t e = 0;
    for (unsigned i = 0; i < 12; i++) {
        e += 8 + (off_t)make_rec(i, buf, sizeof(buf));
        ends[i] = e;
    }
    ck_assert_int_eq(e, size);
    for (off_t cut = 0; cut <= size; cut++) {
        fd = open(path, O_WRONLY | O_TRUNC);
        ck_assert_int_eq(write(fd, orig, (size_t)cut), cut);
        close(fd);
        unsigned want = 0;
        while (want < 12 && ends[want] <= cut)
            want++;
        struct collect c;
        ck_assert_int_eq(replay_all(0, &c, NULL), 0);
        ck_assert_uint_eq(c.n, want);
        ck_assert_int_eq(c.bad, 0);
        ck_assert_int_eq(file_size(path), want ? ends[want - 1] : 0);
    }
    free(orig);
}
END_TEST

/* Flip every byte of the last segment in turn: replay never fails and never delivers a
 * damaged record; it stops at the record holding the flipped byte. */
START_TEST(bitflip_anywhere)
{
    struct obs_wal *w = open_wal(0);
    write_recs(w, 0, 6);
    obs_wal_close(w);
    char path[512], buf[512];
    last_seg_path(path, sizeof(path));
    off_t size = file_size(path);
    uint8_t *orig = malloc((size_t)size);
    int fd = open(path, O_RDONLY);
    ck_assert_int_eq(read(fd, orig, (size_t)size), size);
    close(fd);
    off_t starts[7];
    starts[0] = 0;
    for (unsigned i = 0; i < 6; i++)
        starts[i + 1] = starts[i] + 8 + (off_t)make_rec(i, buf, sizeof(buf));
    for (off_t at = 0; at < size; at++) {
        fd = open(path, O_WRONLY | O_TRUNC);
        ck_assert_int_eq(write(fd, orig, (size_t)size), size);
        close(fd);
        flip_byte(path, at);
        unsigned rec = 0;
        while (starts[rec + 1] <= at)
            rec++;
        struct collect c;
        ck_assert_int_eq(replay_all(0, &c, NULL), 0);
        ck_assert_int_eq(c.bad, 0);
        ck_assert_uint_eq(c.n, rec);
        ck_assert_int_eq(file_size(path), starts[rec]);
    }
    free(orig);
}
END_TEST

/* --- rotation and checkpoints ------------------------------------------------------------- */

START_TEST(rotation)
{
    struct obs_wal *w = open_wal(4096);
    write_recs(w, 0, 500); /* ~80 KiB */
    int nseg = count_segments();
    ck_assert_int_gt(nseg, 10);
    /* Every segment but the last stays within the limit. */
    uint64_t total = 0;
    for (int i = 1; i <= nseg; i++) {
        char p[512];
        snprintf(p, sizeof(p), "%s/%08d", tdir, i);
        off_t s = file_size(p);
        ck_assert_int_le(s, 4096);
        total += (uint64_t)s;
    }
    ck_assert_uint_eq(obs_wal_size(w), total);
    obs_wal_close(w);
    struct collect c;
    ck_assert_int_eq(replay_all(4096, &c, NULL), 0);
    ck_assert_uint_eq(c.n, 500);
    ck_assert_int_eq(c.bad, 0);

    /* A record larger than a segment gets one of its own. */
    w = open_wal(4096);
    ck_assert_int_eq(obs_wal_replay(w, collect_fn, &(struct collect){0}, NULL), 0);
    char *big = malloc(10000);
    memset(big, 'z', 10000);
    ck_assert_int_eq(obs_wal_append(w, big, 10000), 0);
    ck_assert_int_eq(obs_wal_sync(w), 0);
    free(big);
    obs_wal_close(w);
    ck_assert_int_eq(count_segments(), nseg + 1);
}
END_TEST

static int count_fn(const uint8_t *rec, size_t len, void *arg)
{
    (void)rec, (void)len;
    (*(unsigned *)arg)++;
    return 0;
}

START_TEST(checkpoint)
{
    struct obs_wal *w = open_wal(2048);
    write_recs(w, 0, 200);
    ck_assert_int_gt(count_segments(), 5);
    uint64_t before = obs_wal_size(w);

    /* Checkpoint = records 0..9 as "state", then 10 more records after it. */
    ck_assert_int_eq(obs_wal_checkpoint_begin(w), 0);
    write_recs(w, 0, 10);
    ck_assert_int_eq(obs_wal_checkpoint_end(w), 0);
    ck_assert_int_eq(count_segments(), 1);
    ck_assert_uint_lt(obs_wal_size(w), before);
    write_recs(w, 10, 20);
    obs_wal_close(w);

    struct collect c;
    ck_assert_int_eq(replay_all(2048, &c, NULL), 0);
    ck_assert_uint_eq(c.n, 20);
    ck_assert_int_eq(c.bad, 0);
}
END_TEST

START_TEST(checkpoint_crash_before_end)
{
    struct obs_wal *w = open_wal(2048);
    write_recs(w, 0, 50);
    int nseg = count_segments();
    ck_assert_int_eq(obs_wal_checkpoint_begin(w), 0);
    write_recs(w, 0, 5);
    /* Simulate a crash: no _end; close only syncs. Old segments must still be there. */
    obs_wal_close(w);
    ck_assert_int_eq(count_segments(), nseg + 1);
    unsigned n = 0;
    w = open_wal(2048);
    ck_assert_int_eq(obs_wal_replay(w, count_fn, &n, NULL), 0);
    ck_assert_uint_eq(n, 55);
    /* A later complete checkpoint cleans everything up. */
    ck_assert_int_eq(obs_wal_checkpoint_begin(w), 0);
    write_recs(w, 0, 3);
    ck_assert_int_eq(obs_wal_checkpoint_end(w), 0);
    obs_wal_close(w);
    ck_assert_int_eq(count_segments(), 1);
    struct collect c;
    ck_assert_int_eq(replay_all(2048, &c, NULL), 0);
    ck_assert_uint_eq(c.n, 3);
}
END_TEST

/* --- volume ------------------------------------------------------------------------------- */

START_TEST(many_records)
{
    struct obs_wal_opts o = {.dir = tdir, .segment_bytes = 1 << 20, .no_fsync = 1};
    struct obs_wal *w = obs_wal_open(&o, NULL);
    ck_assert_ptr_nonnull(w);
    char buf[512];
    for (unsigned i = 0; i < 100000; i++) {
        size_t n = make_rec(i, buf, sizeof(buf));
        ck_assert_int_eq(obs_wal_append(w, buf, n), 0);
        if (i % 1000 == 999)
            ck_assert_int_eq(obs_wal_sync(w), 0);
    }
    /* One record far larger than the replay read chunk. */
    size_t bign = 300000;
    char *big = malloc(bign);
    for (size_t i = 0; i < bign; i++)
        big[i] = (char)(i * 31);
    ck_assert_int_eq(obs_wal_append(w, big, bign), 0);
    ck_assert_int_eq(obs_wal_sync(w), 0);
    obs_wal_close(w);

    w = obs_wal_open(&o, NULL);
    struct collect c = {0};
    /* Records 0..99999 via collect_fn, then the big one is checked separately: stop there. */
    c.stop_at = 100000;
    ck_assert_int_eq(obs_wal_replay(w, collect_fn, &c, NULL), 1);
    ck_assert_uint_eq(c.n, 100000);
    ck_assert_int_eq(c.bad, 0);
    obs_wal_close(w);
    unsigned n = 0;
    w = obs_wal_open(&o, NULL);
    ck_assert_int_eq(obs_wal_replay(w, count_fn, &n, NULL), 0);
    ck_assert_uint_eq(n, 100001);
    obs_wal_close(w);
    free(big);
}
END_TEST

static Suite *wal_suite(void)
{
    Suite *s = suite_create("obs_wal");
    struct {
        const char *name;
        const TTest *t;
    } cases[] = {
        {"crc_vectors", crc_vectors},
        {"crc_impls_agree", crc_impls_agree},
        {"roundtrip", roundtrip},
        {"framing_on_disk", framing_on_disk},
        {"open_close_no_empty_segments", open_close_no_empty_segments},
        {"api_misuse", api_misuse},
        {"replay_stop", replay_stop},
        {"torn_tail_garbage", torn_tail_garbage},
        {"torn_tail_cut_record", torn_tail_cut_record},
        {"zero_filled_tail", zero_filled_tail},
        {"crc_mismatch_last_segment", crc_mismatch_last_segment},
        {"crc_mismatch_earlier_segment", crc_mismatch_earlier_segment},
        {"truncate_anywhere", truncate_anywhere},
        {"bitflip_anywhere", bitflip_anywhere},
        {"rotation", rotation},
        {"checkpoint", checkpoint},
        {"checkpoint_crash_before_end", checkpoint_crash_before_end},
        {"many_records", many_records},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        TCase *tc = tcase_create(cases[i].name);
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, cases[i].t);
        suite_add_tcase(s, tc);
    }
    return s;
}

int main(void)
{
    obs_log_set_level(OBS_LOG_ERROR); /* the torn-tail warnings are expected here */
    SRunner *sr = srunner_create(wal_suite());
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
