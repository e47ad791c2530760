/*
 * block_write.h -- write a Prometheus TSDB v2 block (the on-disk format of Prometheus 2.x,
 * tsdb/docs/format/{index,chunks,tombstones}.md) that promtool, Prometheus and Thanos read.
 *
 * A block is a directory named by its ULID:
 *   <ULID>/meta.json     ulid, minTime, maxTime (exclusive: last sample + 1), stats,
 *                        compaction {level 1, sources [ulid]}, version 1
 *   <ULID>/chunks/000001 chunk segments: 8-byte header (magic 0x85BD40DD, version 1, 3 zero
 *                        bytes), then chunks: uvarint len, encoding byte (1 = XOR), data,
 *                        big-endian CRC32C of encoding+data. Segments are cut at 512 MiB;
 *                        a chunk ref is (segment index from 0) << 32 | offset in the file.
 *   <ULID>/index         index format 2: symbols, series (16-byte aligned, id = offset/16,
 *                        chunk metas delta-encoded), label indices (v1 compatibility),
 *                        postings (4-byte aligned, the all-series list under the empty
 *                        label pair first), label offset table, postings offset table, TOC
 *                        (the section order Prometheus writes); every
 *                        section closes with a big-endian CRC32C
 *   <ULID>/tombstones    magic 0x0130BA30, version 1, no tombstones, CRC32C
 * The block is built in <parent>/<ULID>.tmp-for-creation (a name Prometheus skips because it
 * is not a ULID), every file and directory is fsynced, then the directory is renamed into
 * place, so a reader sees the whole block or nothing.
 *
 * Threading: one call writes one block and touches only its arguments; calls on different
 * inputs may run on different threads. It blocks on disk I/O: run it off the event loop (or
 * accept the stall) for large blocks.
 */
#ifndef MTD_TSDB_BLOCK_WRITE_H
#define MTD_TSDB_BLOCK_WRITE_H

#include <stddef.h>
#include <stdint.h>

#include "core/obs_err.h"
#include "labels/obs_labels.h"
#include "metricsd/storage.h"

/* A pre-encoded XOR chunk (e.g. one of the head's), borrowed. mint/maxt are its first and
 * last sample times. */
struct mtd_tsdb_chunk_in {
    int64_t mint, maxt;
    const uint8_t *data; /* XOR chunk bytes, 2-byte count header included (xor.h) */
    size_t len;
};

/*
 * One input series, borrowed for the call. labels: a valid label set sorted by name
 * (obs_labels_check rules). Either samples (strictly increasing t; cut into chunks of
 * samples_per_chunk) or, when nchunks > 0, pre-encoded chunks in time order, which are
 * decoded once to check them and then copied byte for byte. A series with no samples is
 * skipped.
 */
struct mtd_tsdb_series_in {
    const struct obs_label *labels;
    size_t nlabels;
    const struct mtd_sample *samples;
    size_t nsamples;
    const struct mtd_tsdb_chunk_in *chunks;
    size_t nchunks;
};

/* Options; zero-initialise for the defaults. */
struct mtd_tsdb_write_opts {
    unsigned samples_per_chunk; /* 0 = 120, as Prometheus' head cuts them; at most 65535 */
    int64_t ulid_ms;            /* time part of the ULID; 0 = now */
    uint32_t segment_bytes;     /* chunk segment size limit; 0 = 512 MiB */
    int no_fsync;               /* tests/benchmarks only */
    /* Block time range for meta.json. Both 0: from the data (first sample, last + 1), as
     * promtool's create-blocks-from does. Otherwise [range_mint, range_maxt) as the head
     * cuts aligned blocks (e.g. 2h): every sample must lie inside, or OBS_EINVAL. */
    int64_t range_mint, range_maxt;
};

/* What was written (also in meta.json). */
struct mtd_tsdb_block_info {
    char ulid[27];      /* 26 chars + NUL */
    int64_t mint, maxt; /* meta.json's minTime and maxTime (exclusive) */
    uint64_t nsamples, nseries, nchunks;
    uint64_t index_bytes; /* size of the index file */
    uint64_t chunk_bytes; /* total size of the chunk segment files */
};

/*
 * Write the series series[0..n) (any order; they are sorted here by label set) as a new
 * block under the existing directory parent. On success fills *info (may be NULL) and the
 * block is at <parent>/<info->ulid>. Errors (err gets a message; nothing is left behind):
 * OBS_EINVAL bad labels, duplicate label sets, samples not in increasing time order,
 * corrupt input chunks or no samples at all; OBS_ELIMIT index larger than 64 GiB (series
 * ids are 32-bit); OBS_EIO file system errors; OBS_ENOMEM.
 */
int mtd_tsdb_block_write(const char *parent, const struct mtd_tsdb_series_in *series, size_t n,
                         const struct mtd_tsdb_write_opts *o, struct mtd_tsdb_block_info *info,
                         struct obs_err *err);

/*
 * A new ULID for time ms (milliseconds since the epoch): 26 Crockford base32 characters of
 * the 48-bit time (big-endian) followed by 80 random bits (getrandom), NUL-terminated.
 * Returns 0 or OBS_EIO when no randomness is available.
 */
int mtd_tsdb_ulid_new(int64_t ms, char out[27]);

/* Is s a well-formed ULID (26 Crockford base32 characters, first at most '7')? */
int mtd_tsdb_ulid_valid(const char *s);

#endif
