/*
 * obs_metrics.h -- self-metrics registry rendered as Prometheus text format 0.0.4.
 *
 * Families are created at start-up; children (one per label-value combination) are created on
 * first use and cached. Updates are lock-free atomics on the child; family lookup takes a
 * mutex, so hot paths keep the child pointer. Thread-safe.
 */
#ifndef OBS_METRICS_H
#define OBS_METRICS_H

#include <stddef.h>

#include "core/obs_sbuf.h"

struct obs_metrics;
struct obs_mfamily;
struct obs_mchild;

enum obs_mtype { OBS_MCOUNTER, OBS_MGAUGE, OBS_MHISTOGRAM };

struct obs_metrics *obs_metrics_new(void);
void obs_metrics_free(struct obs_metrics *m);

/* Create (or return the existing) family. labels is a comma-separated list of label names
 * ("method,status") or NULL. buckets (upper bounds, ascending, without +Inf) for histograms.
 * Returns NULL on OOM or when name exists with another type. */
struct obs_mfamily *obs_metrics_family(struct obs_metrics *m, enum obs_mtype type,
                                       const char *name, const char *help, const char *labels,
                                       const double *buckets, size_t nbuckets);
/* Child for label values (as many as the family has labels). NULL on OOM. */
struct obs_mchild *obs_mfamily_with(struct obs_mfamily *f, ...);
/* Shorthands for label-less metrics. */
struct obs_mchild *obs_metrics_counter(struct obs_metrics *m, const char *name, const char *help);
struct obs_mchild *obs_metrics_gauge(struct obs_metrics *m, const char *name, const char *help);
/* A gauge read through fn(arg) at render time (called on the rendering thread). A name
 * ending in _total is typed counter instead (a monotonic value such as CPU seconds). */
int obs_metrics_gauge_fn(struct obs_metrics *m, const char *name, const char *help,
                         double (*fn)(void *arg), void *arg);

void obs_mchild_add(struct obs_mchild *c, double v); /* counters and gauges */
void obs_mchild_set(struct obs_mchild *c, double v); /* gauges */
void obs_mchild_observe(struct obs_mchild *c, double v); /* histograms */
double obs_mchild_value(const struct obs_mchild *c);

/* Render all families, sorted by name, in text format 0.0.4. */
int obs_metrics_render(struct obs_metrics *m, struct obs_sbuf *out);

#endif
