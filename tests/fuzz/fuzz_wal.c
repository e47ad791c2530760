/*
 * fuzz_wal.c -- fuzz target for WAL replay (common/wal/obs_wal.h).
 *
 * Input: a flags byte, then segment bytes; "\n--\n" splits them into two segments
 * (00000001 and 00000002), so corruption in an earlier segment and torn tails in the last
 * are both reachable. With flags bit 0 set, the harness rewrites each record's CRC to the
 * right value where the length field fits, so the fuzzer gets past checksums to the framing
 * logic. The segments are written into a private temp dir, the WAL is opened and replayed.
 * Invariant: when replay succeeds, appending one record, closing, reopening and replaying
 * yields the same records plus the new one at the end (the torn tail was cut cleanly).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/obs_err.h"
#include "wal/obs_wal.h"
#include "fuzz.h"

struct tally {
    size_t n;
    uint32_t crc;       /* running crc over every record (order-sensitive) */
    uint8_t last[8];
    size_t last_len;
};

static int count_rec(const uint8_t *rec, size_t len, void *arg)
{
    struct tally *t = arg;
    t->n++;
    t->crc = obs_crc32c(t->crc, rec, len);
    t->last_len = len;
    memcpy(t->last, rec, len < sizeof t->last ? len : sizeof t->last);
    return 0;
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int write_seg(unsigned n, const uint8_t *p, size_t len, int fix_crc)
{
    uint8_t *buf = malloc(len ? len : 1);
    if (buf == NULL)
        return -1;
    memcpy(buf, p, len);
    if (fix_crc) {
        size_t off = 0;
        while (off + 8 <= len) {
            uint32_t rl = get32(buf + off);
            if (rl > len - off - 8)
                break;
            put32(buf + off + 4, obs_crc32c(0, buf + off + 8, rl));
            off += 8 + rl;
        }
    }
    char name[16];
    snprintf(name, sizeof name, "%08u", n);
    int rc = fuzz_write_file(name, buf, len);
    free(buf);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_quiet();
    if (size < 1)
        return 0;
    const char *dir = fuzz_dir();
    int fix_crc = data[0] & 1;
    const uint8_t *a, *b;
    size_t na, nb;
    fuzz_split(data + 1, size - 1, &a, &na, &b, &nb);
    if (write_seg(1, a, na, fix_crc) != 0 || (b && write_seg(2, b, nb, fix_crc) != 0))
        abort();

    struct obs_wal_opts o = {.dir = dir, .segment_bytes = 1 << 16, .no_fsync = 1};
    struct obs_err err = {0};
    struct obs_wal *w = obs_wal_open(&o, &err);
    if (w == NULL)
        return 0;
    struct tally t1 = {0};
    int rc = obs_wal_replay(w, count_rec, &t1, &err);
    if (rc != 0) {
        obs_wal_close(w);
        return 0;
    }
    static const char marker[] = "fuzzrec";
    if (obs_wal_append(w, marker, sizeof marker - 1) != 0 || obs_wal_sync(w) != 0)
        abort();
    obs_wal_close(w);

    w = obs_wal_open(&o, &err);
    if (w == NULL)
        abort(); /* a WAL we just wrote must reopen */
    struct tally t2 = {0};
    rc = obs_wal_replay(w, count_rec, &t2, &err);
    if (rc != 0 || t2.n != t1.n + 1 || t2.last_len != sizeof marker - 1 ||
        memcmp(t2.last, marker, sizeof marker - 1) != 0) {
        fprintf(stderr, "fuzz_wal: reopen replay rc=%d n=%zu (want %zu): %s\n", rc, t2.n,
                t1.n + 1, err.msg);
        abort();
    }
    obs_wal_close(w);
    return 0;
}
