/*
 * ingester.h -- the ingester's push interface (what the distributor calls).
 *
 * In one process (-target=all) the distributor calls mtd_ingester_push() directly; split
 * deployments will put the same call behind gRPC with the same WriteRequest message, as
 * Mimir's ingester Push does. The request must already be validated by the distributor
 * (labels checked and sorted, __name__ present); the ingester checks sample order.
 */
#ifndef MTD_INGESTER_H
#define MTD_INGESTER_H

#include <stddef.h>
#include <stdint.h>

#include "core/obs_err.h"
#include "proto/prometheus_remote.pb-c.h"

struct mtd_app;

struct mtd_push_result {
    uint64_t accepted;     /* samples now stored */
    uint64_t rejected;     /* samples refused (out of order, duplicate, series limit) */
    int first_code;        /* OBS_ERANGE / OBS_EEXIST / OBS_ELIMIT of the first refusal, or 0 */
    char first_msg[256];   /* its message */
    const char *first_reason; /* its cortex_discarded_samples_total reason (static string) */
    uint64_t histograms;   /* native histogram samples stored (included in accepted) */
    uint64_t exemplars;    /* exemplars stored */
    uint64_t exemplars_dropped; /* exemplars ignored (duplicate, out of order, too long) */
};

/*
 * Append every sample, native histogram and exemplar of wr's series (and its metadata) for
 * tenant under the tenant's limits (mtd_limits_for: series limit, out-of-order window,
 * exemplar ring), then make it durable: WAL append + fsync before returning 0. Refused
 * samples are counted in res (and in cortex_discarded_samples_total) and do not stop the
 * others (partial acceptance); exemplar problems never refuse anything, as in Prometheus. Returns 0, OBS_EAGAIN (no ingester running in this
 * process), or OBS_EIO/OBS_ENOMEM with err set (nothing from this request was acknowledged).
 * Loop thread only.
 */
int mtd_ingester_push(struct mtd_app *app, const char *tenant,
                      const Prometheus__WriteRequest *wr, struct mtd_push_result *res,
                      struct obs_err *err);

/* As mtd_ingester_push; with sync == 0 the WAL is not fsynced (group commit): the caller
 * must mtd_head_sync(app->head) and get 0 before acknowledging. */
int mtd_ingester_push_opts(struct mtd_app *app, const char *tenant,
                           const Prometheus__WriteRequest *wr, int sync,
                           struct mtd_push_result *res, struct obs_err *err);

#endif
