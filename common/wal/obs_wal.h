/*
 * obs_wal.h -- write-ahead log: numbered segment files of CRC32C-framed records.
 *
 * Layout: <dir>/00000001, 00000002, ... Each record is [u32 le length][u32 le crc32c(payload)]
 * [payload]. Appends are buffered; obs_wal_sync() writes and fdatasync()s them, and only after
 * it returns 0 may the caller acknowledge the data (a 2xx). A segment is closed and a new one
 * started when it exceeds segment_bytes. Replay reads every segment in order; a torn or
 * corrupt record at the tail of the last segment is truncated away (crash mid-write), one in
 * an earlier segment is reported as OBS_ECORRUPT (replay stops there, earlier records kept).
 * Checkpointing: the owner writes its compacted state as records into a fresh segment with
 * obs_wal_checkpoint_begin/…end, after which older segments are deleted.
 * Not thread-safe: one owner thread (callers serialise).
 */
#ifndef OBS_WAL_H
#define OBS_WAL_H

#include <stddef.h>
#include <stdint.h>

#include "core/obs_err.h"

struct obs_wal;

struct obs_wal_opts {
    const char *dir;        /* created if missing */
    size_t segment_bytes;   /* 0 = 64 MiB */
    int no_fsync;           /* 1 = skip fdatasync (tests/benchmarks only) */
};

/* Open (create) the WAL. Appends go to a new segment after the existing ones. */
struct obs_wal *obs_wal_open(const struct obs_wal_opts *o, struct obs_err *err);
void obs_wal_close(struct obs_wal *w); /* syncs; NULL is fine */

/* Replay all records in order: fn(payload, len, arg) (payload borrowed for the call). A
 * non-zero return from fn stops replay and is returned. Call before the first append. */
typedef int (*obs_wal_replay_fn)(const uint8_t *rec, size_t len, void *arg);
int obs_wal_replay(struct obs_wal *w, obs_wal_replay_fn fn, void *arg, struct obs_err *err);

/* Buffer one record. Returns 0, OBS_ENOMEM or OBS_EIO. */
int obs_wal_append(struct obs_wal *w, const void *rec, size_t len);
/* Write buffered records and fdatasync. Returns 0 or OBS_EIO. */
int obs_wal_sync(struct obs_wal *w);

/* Checkpoint: start a new segment; the caller appends records holding its full state, then
 * calls _end, which syncs and deletes every segment before the checkpoint's first segment. */
int obs_wal_checkpoint_begin(struct obs_wal *w);
int obs_wal_checkpoint_end(struct obs_wal *w);

/* Bytes on disk across segments. */
uint64_t obs_wal_size(const struct obs_wal *w);

/* CRC32C (Castagnoli), as used by Prometheus TSDB and this WAL. */
uint32_t obs_crc32c(uint32_t crc, const void *data, size_t len);

#endif
