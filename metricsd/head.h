/*
 * head.h -- metricsd's in-memory head: series, postings, samples, and the WAL behind them.
 *
 * One struct mtd_head holds every tenant. Per tenant:
 *   - series keyed by the XXH3 hash of their sorted label set, with collision chains that
 *     compare the full label sets (two different sets with one hash stay two series);
 *   - postings: label name -> label value -> roaring bitmap of the tenant's series ids;
 *   - samples per series in increasing time order (plain arrays for now; blocks come later).
 * Every series also has a global ref (dense, from 1) used in WAL records.
 *
 * Writes go through an appender: add samples (checked against the series' last sample:
 * older -> "out of order sample", same t with another value -> "duplicate sample for
 * timestamp", same t and value -> accepted, stored once), then commit, which writes the new
 * series, samples and metadata as WAL records, fdatasyncs, and only then makes the samples
 * visible. Only after commit returns 0 may the caller acknowledge (2xx). Opening the head
 * replays its WAL, so a restart (even after kill -9) restores every committed sample.
 *
 * WAL record format (ours; little-endian varints as in obs_sbuf):
 *   'S' series:   uvarint count, then per series: uvarint ref, str tenant, uvarint nlabels,
 *                 nlabels x (str name, str value)
 *   'D' samples:  uvarint count, then per sample: uvarint ref, varint t-delta (from the
 *                 previous sample in the record, the first from 0), 8 bytes IEEE-754 LE value
 *   'M' metadata: str tenant, uvarint count, per entry: str family, uvarint type, str help,
 *                 str unit
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

#endif
