/*
 * agd.h -- agentd internals: configuration, shared state, and the interfaces between its
 * parts (Prometheus text parser, positions file, log tailer, scraper, remote-write queues).
 *
 * agentd is Promtail plus a Prometheus agent in one process:
 *   logs:    glob __path__ -> tail files (poll) -> batch -> Loki push (protobuf + snappy)
 *            -> positions advance only after the push was acknowledged (2xx);
 *   metrics: scrape static targets (text format 0.0.4) -> remote write (protobuf + snappy)
 *            through one bounded queue per remote_write endpoint.
 * The event loop (obs_app) serves /metrics, /ready and /api/v1/targets; tailing, scraping and
 * sending run on their own threads with blocking libcurl calls (obs_httpc_do), so a slow peer
 * never stalls the loop. Shared mutable state between threads is limited to the target status
 * table (mutex) and the remote-write queues (mutex + condvar).
 */
#ifndef AGD_H
#define AGD_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "app/obs_app.h"
#include "config/obs_cf.h"
#include "core/obs_err.h"
#include "core/obs_sbuf.h"
#include "labels/obs_labels.h"

struct obs_ctx;
struct obs_metrics;
struct obs_mchild;

/* ---------------------------------------------------------------------------------------- */
/* configuration (bound with obs_cf tables in agentd.c)                                      */

/* A string->string map read from a YAML mapping (labels, external_labels). */
struct agd_kv {
    struct obs_label *v; /* owned names and values */
    size_t n;
};

struct agd_static_cfg {
    struct obs_strlist targets;
    const struct obs_cf_node *labels_node;
    struct agd_kv labels;
};

struct agd_backoff_cfg {
    int64_t min_period_ms;
    int64_t max_period_ms;
    int64_t max_retries; /* 0 = retry until acknowledged or shutdown */
};

struct agd_client_cfg {
    char *url;
    char *tenant_id;
    int64_t batchwait_ms;
    int64_t batchsize;
    int64_t timeout_ms;
    struct agd_backoff_cfg backoff;
    const struct obs_cf_node *external_labels_node;
    struct agd_kv external_labels;
};

struct agd_logjob_cfg {
    char *job_name;
    const struct obs_cf_node *static_node;
    struct agd_static_cfg *statics;
    size_t nstatics;
};

struct agd_positions_cfg {
    char *filename;
    int64_t sync_period_ms;
};

struct agd_scrape_cfg {
    char *job_name;
    char *metrics_path;
    char *scheme;
    int64_t scrape_interval_ms; /* 0 = global */
    int64_t scrape_timeout_ms;  /* 0 = global */
    int honor_labels;
    const struct obs_cf_node *static_node;
    struct agd_static_cfg *statics;
    size_t nstatics;
};

struct agd_rw_cfg {
    char *url;
    char *name;
    int64_t remote_timeout_ms;
    int64_t queue_bytes; /* bound of the in-memory queue */
    const struct obs_cf_node *headers_node;
    struct agd_kv headers;
};

struct agd_metrics_cfg {
    int64_t scrape_interval_ms;
    int64_t scrape_timeout_ms;
    const struct obs_cf_node *external_labels_node;
    struct agd_kv external_labels;
    const struct obs_cf_node *scrape_node;
    struct agd_scrape_cfg *scrapes;
    size_t nscrapes;
    const struct obs_cf_node *rw_node;
    struct agd_rw_cfg *rws;
    size_t nrws;
    char *wal_directory;
};

struct agd_cfg {
    struct agd_positions_cfg positions;
    const struct obs_cf_node *clients_node;
    struct agd_client_cfg *clients;
    size_t nclients;
    const struct obs_cf_node *jobs_node;
    struct agd_logjob_cfg *jobs;
    size_t njobs;
    struct agd_metrics_cfg metrics;
};

/* Bind agentd's sections (positions, clients, scrape_configs, metrics) from the whole config
 * tree. Returns 0 or OBS_EINVAL with err = "file:line:col: key: reason". */
int agd_cfg_load(const struct obs_cf_node *root, struct agd_cfg *cfg, struct obs_err *err);
void agd_cfg_free(struct agd_cfg *cfg);

/* ---------------------------------------------------------------------------------------- */
/* Prometheus text format 0.0.4 parser (promtext.c)                                          */

/* One sample: labels[0] is {"__name__", name}; the rest in input order. All strings are
 * NUL-terminated and borrowed for the duration of the callback. has_ts is 0 when the line
 * carried no timestamp. A non-zero return stops parsing and is returned by the parser. */
typedef int (*agd_promtext_sample_fn)(const struct obs_label *labels, size_t n, double value,
                                      int64_t ts_ms, int has_ts, void *arg);
/* # TYPE / # HELP lines (kind is "TYPE" or "HELP"; text unescaped for HELP). May be NULL. */
typedef int (*agd_promtext_meta_fn)(const char *kind, const char *name, const char *text,
                                    void *arg);

/* Parse a complete exposition in buf (len bytes, need not be NUL-terminated). Calls sample_fn
 * for every sample line in order. Returns 0, a callback's non-zero value, OBS_ENOMEM, or
 * OBS_EINVAL with err = "text format parsing error in line N: reason". Thread-safe (no
 * shared state). Spec: Prometheus exposition formats, text format 0.0.4. */
int agd_promtext_parse(const char *buf, size_t len, agd_promtext_sample_fn sample_fn,
                       agd_promtext_meta_fn meta_fn, void *arg, struct obs_err *err);

/* ---------------------------------------------------------------------------------------- */
/* positions file (positions.c): path -> acknowledged offset plus the file's identity         */

struct agd_positions;

struct agd_pos {
    int64_t offset;
    uint64_t dev;
    uint64_t ino;
};

/* Open the positions file at path, loading it when it exists (a missing file is empty; an
 * unreadable or malformed one fails with err set). Returns NULL on error. */
struct agd_positions *agd_positions_open(const char *path, struct obs_err *err);
/* Look up path: 0 with *out filled, or OBS_ENOENT. Thread-safe. */
int agd_positions_get(struct agd_positions *p, const char *path, struct agd_pos *out);
/* Record path's position (replacing any). Returns 0 or OBS_ENOMEM. Thread-safe. */
int agd_positions_set(struct agd_positions *p, const char *path, const struct agd_pos *pos);
/* Forget path. Thread-safe. */
void agd_positions_remove(struct agd_positions *p, const char *path);
/* Number of entries. */
size_t agd_positions_count(struct agd_positions *p);
/* Write the file atomically (temp file, fsync, rename, fsync dir) when anything changed since
 * the last sync. Returns 0 or OBS_EIO with err set. Thread-safe. */
int agd_positions_sync(struct agd_positions *p, struct obs_err *err);
/* Free (does not sync). NULL is fine. */
void agd_positions_free(struct agd_positions *p);

/* ---------------------------------------------------------------------------------------- */
/* runtime state                                                                             */

struct agd_logs;    /* tailer.c */
struct agd_scraper; /* scrape.c */

struct agd {
    struct agd_cfg cfg;
    struct obs_ctx *ctx;
    struct agd_logs *logs;
    struct agd_scraper *scraper;
};

/* Log tailing + Loki push (tailer.c). start spawns the tailer thread; stop flushes what was
 * read (one bounded attempt), syncs positions and joins. */
int agd_logs_start(struct agd *a, struct obs_err *err);
void agd_logs_stop(struct agd *a);

/* Scraping + remote write (scrape.c, remote_write.c). */
int agd_scraper_start(struct agd *a, struct obs_err *err);
void agd_scraper_stop(struct agd *a);

/* Remote-write queue: one per remote_write url, a sender thread each (remote_write.c). */
struct agd_rwq;
struct agd_rwq *agd_rwq_new(const struct agd_rw_cfg *cfg, struct obs_metrics *m,
                            struct obs_err *err);
/* Queue one encoded, snappy-compressed WriteRequest of nsamples samples (copied). When the
 * queue is over its byte bound the oldest requests are dropped (and counted). Thread-safe. */
int agd_rwq_push(struct agd_rwq *q, const void *body, size_t len, size_t nsamples);
/* Stop: try to send what is queued for up to drain_ms, then join and free. */
void agd_rwq_free(struct agd_rwq *q, int drain_ms);

/* obs_app glue (agentd.c): accepted top-level sections, components, setup/teardown. */
extern const char *const agd_config_sections[];
extern const struct obs_component agd_components[];
extern const int agd_ncomponents;
int agd_setup(struct obs_ctx *ctx, struct obs_err *err);
void agd_teardown(struct obs_ctx *ctx);

/* Exponential backoff helper shared by the senders: the delay after attempt n (0-based). */
int64_t agd_backoff_ms(const struct agd_backoff_cfg *b, int attempt);

#endif
