/*
 * querier.h -- metricsd's PromQL query API (querier.c) and ruler (ruler.c) components.
 *
 * The querier serves Prometheus' /api/v1/query and /api/v1/query_range over the storage
 * interface (storage.h) with the engine in ql/: selection on the loop, evaluation on
 * max_concurrent worker threads, a bounded queue in front (see querier.c). The ruler evaluates Prometheus rule files on
 * the loop, writes recording rules back through mtd_storage_append() and sends alerts to an
 * Alertmanager-compatible receiver from a sender thread.
 */
#ifndef MTD_QUERIER_H
#define MTD_QUERIER_H

#include <stdint.h>

#include "app/obs_app.h"
#include "core/obs_sbuf.h"
#include "metricsd/ql/mtd_ql.h"

/* `querier:` section (Mimir's key names). */
struct mtd_querier_cfg {
    int64_t timeout_ms;                     /* 2m: per-query deadline */
    int64_t lookback_delta_ms;              /* 5m */
    int64_t max_samples;                    /* 50000000 loaded samples per query */
    int64_t default_evaluation_interval_ms; /* 1m: subquery step when omitted */
    int64_t max_points;                     /* 11000 points per series in range queries */
    int64_t max_concurrent;                 /* 2 worker threads (0 = evaluate on the loop) */
    int64_t max_queue_length;               /* 16 queries waiting; more get 503 */
    int64_t max_estimated_memory;           /* bytes per query, 0 = unlimited */
    int64_t max_regex_len;                  /* 32768 bytes per matcher regex */
};

int mtd_querier_init(struct obs_ctx *ctx, struct obs_err *err);
void mtd_querier_stop(struct obs_ctx *ctx);
extern const char *const mtd_querier_deps[];
#define MTD_QUERIER_COMPONENT {"querier", mtd_querier_deps, mtd_querier_init, mtd_querier_stop}

/* Engine options from the querier config and limits (defaults when the querier is not
 * running): lookback, default subquery step, max samples/series/memory, subquery points and
 * the deadline (now + timeout; timeout_ms > 0 lowers the configured one). Loop thread. */
void mtd_querier_opts(struct obs_ctx *ctx, int64_t timeout_ms, struct mtd_ql_opts *o);

/* Append the Prometheus API `data` object for a result ({"resultType":..,"result":..}).
 * Returns 0 or OBS_ENOMEM. */
int mtd_ql_result_json(struct obs_sbuf *b, const struct mtd_ql_result *r);
/* Append a timestamp in ms as Prometheus' float seconds (1700000000.123). */
int mtd_json_ts(struct obs_sbuf *b, int64_t ms);

/* Prometheus' API time parameter (web/api/v1 parseTime): Go float seconds (strconv.ParseFloat:
 * no spaces, NaN/Inf accepted) or RFC3339Nano, converted to ms exactly as Prometheus does,
 * int64 wrap-around included: engine=1 as the query engine (UnixNano / 1e6, for
 * query/query_range), engine=0 as timestamp.FromTime (labels, series, exemplars).
 * Returns 0, or OBS_EINVAL when s is neither. */
int mtd_prom_time_parse(const char *s, int engine, int64_t *out_ms);
/* Prometheus' parseDuration: Go float seconds, else a Prometheus duration ("1m30s"), into
 * nanoseconds. Returns 0, OBS_EINVAL (cannot parse) or OBS_ERANGE (a float that overflows
 * int64 nanoseconds: Prometheus says "... It overflows int64"). */
int mtd_prom_duration_parse(const char *s, int64_t *out_ns);

int mtd_ruler_init(struct obs_ctx *ctx, struct obs_err *err);
void mtd_ruler_stop(struct obs_ctx *ctx);
extern const char *const mtd_ruler_deps[];
#define MTD_RULER_COMPONENT {"ruler", mtd_ruler_deps, mtd_ruler_init, mtd_ruler_stop}

#endif
