/*
 * head.h -- metricsd's in-memory head: series, postings, samples, and the WAL behind them.
 *
 * One struct mtd_head holds every tenant. Per tenant:
 *   - series keyed by the XXH3 hash of their sorted label set, with collision handling that
 *     compares the full label sets (two different sets with one hash stay two series);
 *     label strings are interned in the tenant's postings (one copy per distinct string);
 *   - postings: label name -> label value -> roaring bitmap of the tenant's series ids;
 *   - float samples per series as XOR chunks, plus a small sorted out-of-order buffer;
 *     native histogram samples; a circular buffer of exemplars.
 * Every series also has a global ref (dense, from 1) used in WAL records.
 *
 * Writes go through an appender: add samples (checked against the series' newest sample:
 * newer -> appended; same t and value -> accepted, stored once; same t, other value ->
 * "duplicate sample for timestamp"; older -> accepted within the tenant's out-of-order
 * window, else "too old sample", or "out of order sample" when the window is 0), then
 * commit, which writes the new series, samples, histograms, exemplars and metadata as WAL
 * records, fdatasyncs (or, with commit_nosync, leaves the sync to mtd_head_sync for group
 * commit), and applies them. Only after the sync returned 0 may the caller acknowledge
 * (2xx). Opening the head replays its WAL (and checkpoints, see mtd_head_checkpoint), so a
 * restart (even after kill -9) restores every committed sample.
 *
 * WAL record format (ours; little-endian varints as in obs_sbuf):
 *   'S' series:   uvarint count, then per series: uvarint ref, str tenant, uvarint nlabels,
 *                 nlabels x (str name, str value)
 *   'D' samples:  uvarint count, then per sample: uvarint ref, varint t-delta (from the
 *                 previous sample in the record, the first from 0), 8 bytes IEEE-754 LE value
 *   'M' metadata: str tenant, uvarint count, per entry: str family, uvarint type, str help,
 *                 str unit
 *   'H' histograms, 'E' exemplars, 'X' exemplar ring size, 'C' checkpointed XOR chunks:
 *                 see head.c and docs/metricsd.md
 *   'T' truncation: str tenant, varint before (ms); see mtd_head_truncate
 *   where str = uvarint length + bytes.
 *
 * Threading: not thread-safe. The head belongs to the event-loop thread; one appender at a
 * time (commit or roll back before opening the next).
 */
#ifndef MTD_HEAD_H
#define MTD_HEAD_H

#include <stddef.h>
#include <stdint.h>

#include "core/obs_err.h"
#include "labels/obs_labels.h"
#include "metricsd/storage.h"

struct mtd_head;
struct mtd_appender;

struct mtd_head_opts {
    const char *wal_dir;      /* NULL = no WAL (tests only: nothing is durable) */
    size_t wal_segment_bytes; /* 0 = WAL default */
    int wal_no_fsync;         /* tests/benchmarks only */
};

/* Open the head and replay its WAL. Returns NULL with err set (WAL I/O or corruption). */
struct mtd_head *mtd_head_open(const struct mtd_head_opts *o, struct obs_err *err);
/* Close the WAL (synced) and free everything. NULL is fine. */
void mtd_head_close(struct mtd_head *h);

/* The storage vtable over this head (storage.h). Borrowed; lives as long as the head. */
struct mtd_storage *mtd_head_storage(struct mtd_head *h);

/* Totals across tenants (for self-metrics and tests). */
size_t mtd_head_num_series(const struct mtd_head *h);
uint64_t mtd_head_num_samples(const struct mtd_head *h);

/* ---- appending ---- */

/* Open an appender for tenant (copied). NULL on OOM. Exactly one may be open at a time. */
struct mtd_appender *mtd_head_appender(struct mtd_head *h, const char *tenant);

/*
 * Add one sample to the series with these labels. labels must already be valid and sorted
 * (obs_labels_check); they are copied. Returns 0 (also for an exact duplicate, which is
 * stored once), OBS_ERANGE (older than the series' last sample: "out of order sample"),
 * OBS_EEXIST (same timestamp, different value: "duplicate sample for timestamp"),
 * OBS_ELIMIT (tenant series limit reached), or OBS_ENOMEM. err gets the message.
 * Nothing is visible to readers until commit.
 */
int mtd_appender_add(struct mtd_appender *a, const struct obs_label *labels, size_t n,
                     int64_t t, double v, struct obs_err *err);

/* Record metric metadata (remote write's MetricMetadata; type as the proto enum). Strings
 * are copied. Returns 0 or OBS_ENOMEM. */
int mtd_appender_add_metadata(struct mtd_appender *a, const char *family, int type,
                              const char *help, const char *unit);

/* Samples added and accepted so far (duplicates excluded). */
size_t mtd_appender_count(const struct mtd_appender *a);

/* Write everything to the WAL, fsync, then apply to the head. Frees a in every case.
 * Returns 0, or OBS_EIO/OBS_ENOMEM with err set (then nothing was applied). */
int mtd_appender_commit(struct mtd_appender *a, struct obs_err *err);
/* Group commit: as mtd_appender_commit but without the fsync. The records are buffered in
 * the WAL and the samples visible; acknowledge only after mtd_head_sync() returned 0, which
 * covers every commit_nosync before it (one fsync for many requests). */
int mtd_appender_commit_nosync(struct mtd_appender *a, struct obs_err *err);
/* Write and fsync what commit_nosync left buffered. 0, or OBS_EIO with err set (then those
 * commits are not durable: answer 5xx). No-op when nothing is pending. */
int mtd_head_sync(struct mtd_head *h, struct obs_err *err);
/* Discard a (NULL is fine). */
void mtd_appender_rollback(struct mtd_appender *a);

/* Per-tenant series limit (0 = unlimited); takes effect for new series. */
void mtd_head_set_max_series(struct mtd_head *h, size_t max_series_per_tenant);

/* ---- metadata ---- */

/* Metric metadata type names as the Prometheus API prints them ("counter", "unknown"...). */
const char *mtd_metric_type_name(int type);

/* Call fn for each metadata entry of tenant, sorted by family; metric != NULL restricts to
 * one family; limit > 0 stops after that many families. fn returns non-zero to stop. */
typedef int (*mtd_metadata_fn)(const char *family, int type, const char *help,
                               const char *unit, void *arg);
int mtd_head_metadata(struct mtd_head *h, const char *tenant, const char *metric, long limit,
                      mtd_metadata_fn fn, void *arg);

/* ---- out-of-order, histograms, exemplars, limits (all optional) ---- */

struct mtd_ql_hist;

/* Per-tenant limits an appender enforces (from limits: and overrides:). */
struct mtd_tenant_limits {
    size_t max_series;     /* in-memory series of the tenant; 0 = unlimited ("per-user series
                            * limit of N exceeded", OBS_ELIMIT) */
    int64_t ooo_window_ms; /* out_of_order_time_window: samples older than the series' newest
                            * are accepted down to (tenant's newest sample time - this); 0 =
                            * in order only */
    size_t max_exemplars;  /* capacity of the tenant's exemplar ring; 0 = exemplars dropped */
};

/* Apply limits to this appender (and size the tenant's exemplar ring). Without this call the
 * head-wide max series (mtd_head_set_max_series) applies, OOO off, 100000 exemplars. */
void mtd_appender_set_limits(struct mtd_appender *a, const struct mtd_tenant_limits *l);

/* The reason label (Mimir's cortex_discarded_samples_total{reason}) of the last refusal by
 * this appender: "sample_out_of_order", "sample_too_old", "new_value_for_timestamp",
 * "per_user_series_limit", "" when none. */
const char *mtd_appender_last_reason(const struct mtd_appender *a);

/*
 * Add one native histogram sample (float form: absolute, sparse bucket counts; integer
 * histograms are converted by the caller). hist == NULL, or hist->sum being the stale NaN,
 * adds a stale marker. Same order / duplicate / OOO rules and codes as mtd_appender_add (a
 * duplicate is the same timestamp with a different histogram). Only exponential schemas
 * (-4..8) and the custom-bucket schema are accepted (else OBS_EINVAL). Copied.
 */
int mtd_appender_add_hist(struct mtd_appender *a, const struct obs_label *labels, size_t n,
                          int64_t t, const struct mtd_ql_hist *hist, struct obs_err *err);

/*
 * Add an exemplar to the series with these labels (it must exist or be added in this
 * appender). As Prometheus does, exemplar problems never fail a request: the return is 0
 * (stored), 1 (ignored: exact duplicate of the series' newest exemplar), or OBS_ERANGE ("out
 * of order exemplar"), OBS_EINVAL ("exemplar label set is too long": > 128 characters of
 * names and values), OBS_ENOMEM. Exemplars live in a per-tenant circular buffer
 * (max_exemplars, oldest overwritten) and in the WAL.
 */
int mtd_appender_add_exemplar(struct mtd_appender *a, const struct obs_label *labels, size_t n,
                              const struct obs_label *el, size_t nel, int64_t t, double v,
                              struct obs_err *err);

/* ---- WAL checkpoints ---- */

/*
 * Write a checkpoint of the whole head (series, closed XOR chunks as they are, open-chunk and
 * out-of-order samples, histograms, exemplars, metadata) into a fresh WAL segment and delete
 * the older segments (obs_wal_checkpoint_begin/end). A crash in the middle leaves the old
 * segments; replaying them then the partial checkpoint rebuilds the same head. Blocks the
 * calling (loop) thread for its duration. Returns 0 or OBS_EIO/OBS_ENOMEM with err set.
 */
int mtd_head_checkpoint(struct mtd_head *h, struct obs_err *err);
/* Checkpoint when the WAL has grown by max(one segment, the last checkpoint's size) since the
 * last one; returns 1 when it did, 0 when not needed, or an error. */
int mtd_head_maybe_checkpoint(struct mtd_head *h, struct obs_err *err);

/* Totals (self-metrics, tests). */
uint64_t mtd_head_num_hist_samples(const struct mtd_head *h);
uint64_t mtd_head_num_ooo_samples(const struct mtd_head *h);
size_t mtd_head_num_exemplars(const struct mtd_head *h);
uint64_t mtd_head_wal_bytes(const struct mtd_head *h);
uint64_t mtd_head_checkpoints(const struct mtd_head *h);

/* ---- statistics ---- */

/* One "top N" entry of /api/v1/status/tsdb: name (owned) and its count. */
struct mtd_head_stat {
    char *name;
    uint64_t value;
};

/* Prometheus' TSDB status for one tenant: head stats plus top-`limit` lists, each sorted by
 * value (largest first, ties by name). Filled by mtd_head_stats; free with
 * mtd_head_stats_free. */
struct mtd_head_stats {
    uint64_t num_series, num_label_pairs, chunk_count;
    int64_t min_time, max_time; /* INT64_MAX / INT64_MIN when there are no samples */
    struct mtd_head_stat *by_metric;      /* series per __name__ value */
    size_t n_by_metric;
    struct mtd_head_stat *values_by_name; /* distinct values per label name */
    size_t n_values_by_name;
    struct mtd_head_stat *memory_by_name; /* sum of len(value) over a name's values */
    size_t n_memory_by_name;
    struct mtd_head_stat *by_pair;        /* series per "name=value" */
    size_t n_by_pair;
};

/* Compute the statistics of tenant from the postings (one pass over series and postings).
 * Returns 0 or OBS_ENOMEM (out is then empty). Loop thread. */
int mtd_head_stats(struct mtd_head *h, const char *tenant, size_t limit,
                   struct mtd_head_stats *out);
void mtd_head_stats_free(struct mtd_head_stats *s);

/* ---- block cutting (flush.c) ---- */

struct mtd_tsdb_block_info; /* metricsd/tsdb/block_write.h */

/*
 * Write the float samples of tenant with mint <= t < maxt (ms) as one Prometheus TSDB block
 * under the existing directory dir (mtd_tsdb_block_write with range_mint/maxt = mint/maxt, so
 * meta.json says [mint, maxt)). Histogram samples are not written (the block format here is
 * XOR floats only). On success *info (may be NULL) names the block at <dir>/<info->ulid>.
 * The head is not changed. Returns 0, OBS_ENOENT (no samples in the range: nothing written),
 * or the writer's OBS_EIO/OBS_ENOMEM/OBS_EINVAL with err set. Loop thread; blocks for the
 * disk writes.
 */
int mtd_head_cut_block(struct mtd_head *h, const char *tenant, int64_t mint, int64_t maxt,
                       const char *dir, struct mtd_tsdb_block_info *info, struct obs_err *err);

/*
 * Truncate tenant's head below before_ms (ms), as Prometheus does after compacting its head
 * into a block: drop every closed chunk with maxt < before_ms (a chunk straddling it stays
 * whole), the open chunk when its newest sample is older, out-of-order float samples,
 * native histogram samples and exemplars older than before_ms; series left with no samples
 * (and no exemplar >= before_ms) are removed from the series table, the postings and the ref
 * index. before_ms becomes the tenant's minimum valid time: appends older than it fail with
 * "out of bounds" (OBS_ERANGE, reason "sample_out_of_bounds") since that range is in an
 * immutable block. The point is logged in the WAL ('T' record, fsynced) before anything is
 * dropped, and every checkpoint repeats it, so replay drops the same data and never brings
 * it back; then a checkpoint is written so the WAL stops holding the dropped data.
 * A before_ms not above the current point is a no-op (returns 0, no checkpoint).
 * Returns 0, OBS_EINVAL (an appender is open), or OBS_EIO/OBS_ENOMEM with err set (a
 * failed checkpoint leaves the truncation done and durable; the next checkpoint drops the
 * data from the WAL). Loop thread; blocks for the checkpoint.
 */
int mtd_head_truncate(struct mtd_head *h, const char *tenant, int64_t before_ms,
                      struct obs_err *err);
/* As mtd_head_truncate without the checkpoint (truncating several tenants, then one
 * mtd_head_checkpoint). Returns 1 when it truncated, 0 when before_ms was not above the
 * tenant's point, or an error as mtd_head_truncate. */
int mtd_head_truncate_nockpt(struct mtd_head *h, const char *tenant, int64_t before_ms,
                             struct obs_err *err);
/* The tenant's minimum valid time (its truncation point), INT64_MIN when never truncated. */
int64_t mtd_head_min_valid_time(struct mtd_head *h, const char *tenant);

/* First and last float sample time (ms, inclusive) held for tenant. Returns 0 or OBS_ENOENT
 * (unknown tenant or no samples). Loop thread. */
int mtd_head_time_range(struct mtd_head *h, const char *tenant, int64_t *mint, int64_t *maxt);

#endif
