/*
 * block_read.h -- read a Prometheus TSDB v2 block (as written by block_write.h or by
 * Prometheus 2.x itself): meta.json, index (format 2), chunks/NNNNNN segments, for the
 * store-gateway / querier.
 *
 * Opening maps the index and chunk segments read-only (mmap) and checks what every query
 * depends on: meta.json, the index header and TOC, the symbol table and the postings
 * offset table (their CRC32Cs), and every segment header. The rest is checked when it is
 * used: each series entry, postings list and chunk has its CRC32C verified before it is
 * decoded, so a corrupt block gives OBS_ECORRUPT with a message naming the file and offset,
 * never a crash or an out-of-bounds read. mtd_tsdb_block_verify() walks the whole block.
 *
 * Selection works as Prometheus' PostingsForMatchers: a matcher that does not match ""
 * contributes the union of the postings of the values it matches (intersected across such
 * matchers); a matcher that matches "" removes the series whose value it rejects; with no
 * matcher of the first kind the start set is all series (the postings of the empty label
 * pair). Series come out sorted by label set.
 *
 * Threading: a block may be shared read-only, but a select/verify call uses scratch buffers
 * inside the block object and the matchers' regex match data: one call at a time per block
 * (wrap with a lock, or open the block once per thread).
 */
#ifndef MTD_TSDB_BLOCK_READ_H
#define MTD_TSDB_BLOCK_READ_H

#include <stddef.h>
#include <stdint.h>

#include "core/obs_err.h"
#include "labels/obs_labels.h"
#include "metricsd/storage.h"
#include "metricsd/tsdb/block_write.h"

struct mtd_tsdb_block;

/* meta.json as read. */
struct mtd_tsdb_block_meta {
    char ulid[27];
    int64_t mint, maxt; /* maxt exclusive, as in meta.json */
    uint64_t nsamples, nseries, nchunks;
    int level; /* compaction level */
};

/*
 * Open the block directory dir. On success *out is a new block (free with
 * mtd_tsdb_block_close). Errors with err set: OBS_ENOENT (missing file), OBS_EIO (cannot
 * read/map), OBS_ECORRUPT (bad meta.json, magic, version, TOC, symbol or postings offset
 * table checksum or layout), OBS_ENOMEM.
 */
int mtd_tsdb_block_open(const char *dir, struct mtd_tsdb_block **out, struct obs_err *err);

/* Unmap and free (NULL is fine). Labels handed to callbacks become invalid. */
void mtd_tsdb_block_close(struct mtd_tsdb_block *b);

/* The block's meta.json (borrowed). */
const struct mtd_tsdb_block_meta *mtd_tsdb_block_meta(const struct mtd_tsdb_block *b);

/*
 * Called for each selected series, in label-set order. labels (sorted by name) and samples
 * (increasing t, only those inside the requested range, at least one) are borrowed until
 * the callback returns. Return 0 to go on, non-zero to stop the select (which then returns
 * 0).
 */
typedef int (*mtd_tsdb_series_fn)(void *arg, const struct obs_label *labels, size_t nlabels,
                                  const struct mtd_sample *samples, size_t nsamples);

/*
 * Call fn for every series matching all of ms[0..nms) (nms == 0: every series) that has
 * samples in [mint, maxt] (inclusive, milliseconds). Only chunks overlapping the range are
 * read. Returns 0, OBS_ECORRUPT (err names the damaged structure; series before it were
 * already delivered) or OBS_ENOMEM.
 */
int mtd_tsdb_block_select(struct mtd_tsdb_block *b, const struct obs_matcher *ms, size_t nms,
                          int64_t mint, int64_t maxt, mtd_tsdb_series_fn fn, void *arg,
                          struct obs_err *err);

/*
 * Called for each selected series with its raw XOR chunks that overlap the range (CRC
 * already checked; bytes borrowed from the mapping until the callback returns; chunks may
 * hold samples outside the range). For remote read's STREAMED_XOR_CHUNKS and for copying
 * chunks between blocks without re-encoding. Return non-zero to stop.
 */
typedef int (*mtd_tsdb_chunks_fn)(void *arg, const struct obs_label *labels, size_t nlabels,
                                  const struct mtd_tsdb_chunk_in *chunks, size_t nchunks);

/* Like mtd_tsdb_block_select, delivering raw chunks instead of decoded samples. */
int mtd_tsdb_block_select_chunks(struct mtd_tsdb_block *b, const struct obs_matcher *ms, size_t nms,
                                 int64_t mint, int64_t maxt, mtd_tsdb_chunks_fn fn, void *arg,
                                 struct obs_err *err);

/*
 * Sorted label names of the block. *out is an array of *n obs_malloc'd strings owned by the
 * caller (free with mtd_strings_free() from storage.h). Returns 0 or OBS_ENOMEM.
 */
int mtd_tsdb_block_label_names(struct mtd_tsdb_block *b, char ***out, size_t *n);

/* Sorted values of label name (none: *n = 0). Ownership as label_names. */
int mtd_tsdb_block_label_values(struct mtd_tsdb_block *b, const char *name, char ***out, size_t *n);

/*
 * Check the whole block: every index section and padding byte, every series entry (labels
 * sorted, series in order, chunk refs pointing at real chunks whose decoded first/last
 * timestamps equal the index's mint/maxt), every postings list, every chunk's CRC and XOR
 * data, and meta.json's stats and time range against what was found. Returns 0 or
 * OBS_ECORRUPT / OBS_ENOMEM with err set.
 */
int mtd_tsdb_block_verify(struct mtd_tsdb_block *b, struct obs_err *err);

/*
 * Chunk bytes from somewhere else than the block's local chunks/ files: the store-gateway
 * keeps only meta.json and index on disk and fetches chunks by range GET. read() must return
 * at least want bytes of segment seg (0-based) from off (fewer only at the segment's end),
 * in memory valid until the next read() or the block's close; 0 or an error with err set.
 * The source is used from the select calls only (one at a time per block).
 */
struct mtd_tsdb_chunk_src {
    int (*read)(void *arg, uint32_t seg, uint64_t off, size_t want, const uint8_t **p,
                size_t *got, struct obs_err *err);
    void *arg;
    size_t nsegs;            /* number of chunk segments */
    const uint64_t *seg_len; /* their sizes (copied at open) */
};

/* Like mtd_tsdb_block_open with chunks read through src (NULL = local files). dir needs
 * meta.json and index only. Segment headers are not checked; every chunk's CRC is. */
int mtd_tsdb_block_open_src(const char *dir, const struct mtd_tsdb_chunk_src *src,
                            struct mtd_tsdb_block **out, struct obs_err *err);

/* With a handler set, select and select_chunks skip a corrupt chunk (or series entry) after
 * calling fn with the error (naming file and offset) instead of failing with OBS_ECORRUPT:
 * queries go on with the data that is intact. */
typedef void (*mtd_tsdb_corrupt_fn)(void *arg, const struct obs_err *e);
void mtd_tsdb_block_on_corrupt(struct mtd_tsdb_block *b, mtd_tsdb_corrupt_fn fn, void *arg);

#endif
