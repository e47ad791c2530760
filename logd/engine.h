/*
 * engine.h -- LogQL evaluation over the in-memory store, rendering Loki's JSON result.
 *
 * Log queries select streams, run the pipeline on each entry in [start, end) and return
 * the `limit` newest (backward) or oldest (forward) entries grouped by label set.
 * Metric queries are evaluated at steps start, start+step, ... <= end; a range aggregation
 * at step t covers entries with t-offset-range < ts <= t-offset (Loki's window). Instant
 * queries are one step at `time`. Runs synchronously on the caller's thread; the store must
 * not change during a call.
 */
#ifndef LGD_ENGINE_H
#define LGD_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "core/obs_err.h"
#include "core/obs_sbuf.h"
#include "logd/logql.h"
#include "logd/store.h"

struct lgd_qstats {
    uint64_t lines;    /* entries scanned */
    uint64_t bytes;    /* bytes of lines scanned */
    uint64_t returned; /* entries (log) or series (metric) returned */
    uint64_t streams;  /* streams selected */
};

struct lgd_qlimits {
    size_t max_series;   /* metric result series limit (0 = none) */
    size_t max_points;   /* steps per series limit (0 = none) */
};

/* Log query. t may be NULL (unknown tenant: empty result). Appends
 * `"resultType":"streams","result":[...]` to out. Returns 0, OBS_ENOMEM, or OBS_EINVAL with
 * err set. */
int lgd_engine_logs(struct lgd_tenant *t, const struct lgd_expr *e, int64_t start_ns,
                    int64_t end_ns, size_t limit, int forward, struct obs_sbuf *out,
                    struct lgd_qstats *st, struct obs_err *err);

/* Metric query. instant = 1 evaluates once at end_ns and renders a vector (or scalar);
 * otherwise a matrix. Appends `"resultType":"...","result":...` to out. Returns 0,
 * OBS_ENOMEM, or OBS_EINVAL/OBS_ELIMIT with err set. */
int lgd_engine_metric(struct lgd_tenant *t, const struct lgd_expr *e, int64_t start_ns,
                      int64_t end_ns, int64_t step_ns, int instant,
                      const struct lgd_qlimits *lim, struct obs_sbuf *out,
                      struct lgd_qstats *st, struct obs_err *err);

/* Run a log pipeline on one line, for tests and tools: returns 1 when the line is kept,
 * 0 when filtered out. When the pipeline extracts labels they are appended to labels_out as
 * {a="b", ...} text (all labels, stream ones included) if labels_out is non-NULL. */
int lgd_engine_filter_line(const struct lgd_logsel *l, const struct obs_label *stream_labels,
                           size_t nlabels, const char *line, size_t len,
                           struct obs_sbuf *labels_out);

#endif
