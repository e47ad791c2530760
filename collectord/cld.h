/*
 * cld.h -- collectord internals: the OpenTelemetry Collector's model in C.
 *
 * A config names components by id "type[/name]" under receivers, processors, exporters and
 * extensions; service.pipelines wires them per signal (traces, metrics, logs). Every
 * component type is a plugin descriptor (struct cld_plugin: kind, type name, init, process,
 * flush, exit); each configured id becomes an instance (struct cld_instance) holding the
 * plugin's private data. As in the OTel Collector, receivers and exporters are shared by all
 * pipelines that list them, and processors get one instance per pipeline.
 *
 * Data moving through a pipeline is a struct cld_batch: one serialized OTLP
 * Export{Trace,Metrics,Logs}ServiceRequest plus its item count (spans, data points, log
 * records). Concatenating two serialized requests is a valid request holding both (protobuf
 * merges repeated fields), which is how the batch processor merges them without re-encoding.
 *
 * Threads: receivers, processors and the pipeline run on the event loop; each exporter sends
 * from its own thread through a bounded queue (exporter_queue.c).
 *
 * Durability (the suite's rule: a 2xx that accepts data has a WAL behind it): an exporter
 * with `sending_queue: {storage: file_storage[/name]}` keeps its queue in a WAL under the
 * extension's directory. A pipeline with such an exporter is "durable": the batch processor
 * passes requests straight through, the exporter's process() appends and fsyncs the request
 * before returning, and only then does the receiver answer 200/OK. Batching moves to the
 * dequeue side (the queue merges queued requests with the batch processor's settings).
 */
#ifndef CLD_H
#define CLD_H

#include <stddef.h>
#include <stdint.h>

#include "app/obs_app.h"
#include "config/obs_cf.h"
#include "core/obs_err.h"

struct event_base;
struct obs_metrics;

enum cld_kind { CLD_RECEIVER, CLD_PROCESSOR, CLD_EXPORTER, CLD_EXTENSION };
enum cld_signal { CLD_TRACES = 0, CLD_METRICS = 1, CLD_LOGS = 2, CLD_NSIGNALS = 3 };

struct cld_batch {
    enum cld_signal sig;
    uint8_t *data; /* serialized Export*ServiceRequest, owned */
    size_t len;
    size_t items;
};

/* New batch with a copy of data. NULL on OOM. */
struct cld_batch *cld_batch_new(enum cld_signal sig, const void *data, size_t len, size_t items);
struct cld_batch *cld_batch_clone(const struct cld_batch *b);
void cld_batch_free(struct cld_batch *b);

struct cld_instance;
struct cld_pipeline;
struct cld_collector;

struct cld_plugin {
    enum cld_kind kind;
    const char *name;  /* component type: "otlp", "batch", ... */
    unsigned signals;  /* bit mask of 1 << cld_signal supported (receivers, exporters) */
    /* Validate ins->cfg (the component's YAML node, may be NULL) without side effects beyond
     * allocating ins->data. Returns 0 or OBS_EINVAL with err at the offending node. */
    int (*init)(struct cld_instance *ins, struct obs_err *err);
    /* Start (listen, spawn threads). May be NULL. Runs on the loop thread. */
    int (*start)(struct cld_instance *ins, struct obs_err *err);
    /* Processors and exporters: consume b (takes ownership). Returns 0, or OBS_ELIMIT when the
     * data was refused (memory limit, full queue): the receiver reports a retryable error. */
    int (*process)(struct cld_instance *ins, struct cld_batch *b);
    /* Processors: push out what they hold (shutdown). May be NULL. */
    void (*flush)(struct cld_instance *ins);
    /* Stop and free ins->data. May be NULL. */
    void (*exit)(struct cld_instance *ins);
};

struct cld_instance {
    const struct cld_plugin *p;
    char *id;                       /* "otlp/2" */
    const struct obs_cf_node *cfg;  /* borrowed from the config tree */
    struct cld_collector *col;
    void *data;                     /* plugin private */
    /* processors: where to forward */
    struct cld_pipeline *pl;
    size_t stage;
    /* receivers: pipelines fed, per signal */
    struct cld_pipeline **outs;
    size_t nouts;
    int started;
    /* exporters: 1 when process() makes the data durable (persistent sending queue: the
     * request is in the queue's WAL, fsynced, when process() returns 0). Set by init. */
    int durable;
    /* exporters in a durable pipeline: the batch processors' settings, applied when the
     * queue is read (max over the pipelines feeding the exporter; 0 = no batching). */
    size_t batch_items, batch_max_items;
    int64_t batch_timeout_ms;
};

struct cld_pipeline {
    char *id;                  /* "traces/2" */
    enum cld_signal sig;
    struct cld_instance **procs; /* owned per pipeline */
    size_t nprocs;
    struct cld_instance **exps;  /* shared (borrowed from the collector) */
    size_t nexps;
    /* 1 when some exporter is durable: processors must not hold data (the batch processor
     * passes requests straight through so the receiver acknowledges only durable data). */
    int durable;
};

struct cld_collector {
    struct obs_ctx *ctx;         /* NULL in config-only (unit test) use */
    struct cld_instance **inst;  /* receivers, exporters, extensions (shared) */
    size_t ninst;
    struct cld_pipeline **pipes;
    size_t npipes;
    char *telemetry_addr;        /* service.telemetry.metrics.address or NULL */
    char *log_level;             /* service.telemetry.logs.level or NULL */
    int64_t start_ms;
};

/* Parse and validate the whole OTel Collector config (receivers, processors, exporters,
 * extensions, service) and build the instance graph without starting anything. Unknown
 * top-level keys, unknown component types, malformed ids, pipelines referencing undefined
 * components, empty receiver/exporter lists and invalid component settings fail with
 * err = "file:line:col: key: reason". Returns NULL on error. */
struct cld_collector *cld_config_parse(const struct obs_cf_node *root, struct obs_ctx *ctx,
                                       struct obs_err *err);
/* Start extensions, exporters, processors, receivers (that order). */
int cld_collector_start(struct cld_collector *c, struct obs_err *err);
/* Stop receivers, flush processors, drain exporters, stop extensions; then free. */
void cld_collector_free(struct cld_collector *c);

/* Hand a batch from a receiver to every pipeline it feeds for b->sig (takes ownership).
 * Returns 0, or OBS_ELIMIT when some pipeline refused it. Loop thread. */
int cld_receiver_emit(struct cld_instance *recv, struct cld_batch *b);
/* Forward from a processor to the next stage of its pipeline (takes ownership). */
int cld_forward(struct cld_instance *proc, struct cld_batch *b);

/* Count the items (spans / data points / log records) of a serialized request. Returns
 * OBS_EINVAL when the bytes do not decode as that request type. */
int cld_otlp_count(enum cld_signal sig, const uint8_t *data, size_t len, size_t *items);
/* Convert an OTLP/JSON request body into serialized protobuf (appended to out), following
 * the OTLP/HTTP JSON mapping (lowerCamelCase or snake_case keys, hex trace/span ids, int64 as
 * strings or numbers, enums as numbers or names; unknown keys ignored). Returns 0 or
 * OBS_EINVAL with err set. */
struct obs_sbuf;
int cld_otlp_json_to_pb(enum cld_signal sig, const char *json, size_t len, struct obs_sbuf *out,
                        struct obs_err *err);
/* "traces" / "metrics" / "logs". */
const char *cld_signal_name(enum cld_signal s);
/* gRPC method path of the OTLP Export for a signal. */
const char *cld_otlp_method(enum cld_signal s);

/* --- exporter send queue (exporter_queue.c) --- */
struct cld_retry_cfg {
    int enabled;
    int64_t initial_interval_ms;
    int64_t max_interval_ms;
    int64_t max_elapsed_ms; /* 0 = retry forever */
};
struct cld_queue_cfg {
    int enabled;
    int64_t num_consumers;
    int64_t queue_size; /* batches */
    char *storage;      /* storage extension id ("file_storage[/name]") or NULL = memory */
};
/* Queue options beyond the config (all zero = the in-memory queue of cld_equeue_new). */
struct cld_equeue_opts {
    const char *dir;         /* persistent queue directory (a WAL); NULL = in memory */
    size_t segment_bytes;    /* WAL segment size, 0 = 8 MiB */
    int no_fsync;            /* tests only */
    size_t batch_items;      /* merge queued batches of a signal up to this many items ... */
    size_t batch_max_items;  /* ... never more than this (0 = batch_items) ... */
    int64_t batch_timeout_ms; /* ... waiting at most this long for batch_items (0 = no wait) */
};
/* send returns 0 (done), OBS_ERETRY (try again later) or OBS_EFATAL (drop). Runs on the
 * queue's thread. */
typedef int (*cld_send_fn)(void *arg, const struct cld_batch *b);
struct cld_equeue;
struct cld_equeue *cld_equeue_new(const char *id, const struct cld_queue_cfg *qc,
                                  const struct cld_retry_cfg *rc, cld_send_fn send, void *arg,
                                  struct obs_metrics *m, struct obs_err *err);
/* Like cld_equeue_new with options; with o->dir the queue is persistent: batches left
 * undelivered by a previous run are loaded from o->dir and sent again. NULL o = in memory. */
struct cld_equeue *cld_equeue_open(const char *id, const struct cld_queue_cfg *qc,
                                   const struct cld_retry_cfg *rc,
                                   const struct cld_equeue_opts *o, cld_send_fn send, void *arg,
                                   struct obs_metrics *m, struct obs_err *err);
/* Queue b (takes ownership). OBS_ELIMIT (b freed) when the queue is full, or, for a
 * persistent queue, when b could not be written and fsynced (the caller must not
 * acknowledge it). For a persistent queue 0 means b is durable. Thread-safe. */
int cld_equeue_push(struct cld_equeue *q, struct cld_batch *b);
/* Batches queued or in flight (not yet delivered or dropped). Thread-safe. */
size_t cld_equeue_pending(struct cld_equeue *q);
/* Drain for up to drain_ms, then stop the thread and free. */
void cld_equeue_free(struct cld_equeue *q, int drain_ms);

/* cfmap tables shared by exporters */
extern const struct obs_cfmap cld_retry_map[];
extern const struct obs_cfmap cld_queue_map[];

/* Exporter helpers (exporter_queue.c): resolve sending_queue.storage for exporter ins (in
 * init): when the queue is enabled and names a storage extension, check that it is a
 * file_storage listed in service.extensions, write the queue directory
 * (<directory>/exporter_<id>, '/' in the id becomes '_') into dir and set ins->durable.
 * dir[0] = 0 when the queue is in memory. Returns 0 or OBS_EINVAL with err at the node. */
int cld_queue_storage(struct cld_instance *ins, const struct cld_queue_cfg *qc,
                      char *dir, size_t cap, struct obs_err *err);
/* Create the exporter's queue (in start): persistent when dir is non-empty, with the
 * dequeue-side batching hints of ins. */
struct cld_equeue *cld_queue_start(struct cld_instance *ins, const struct cld_queue_cfg *qc,
                                   const struct cld_retry_cfg *rc, const char *dir,
                                   cld_send_fn send, void *arg, struct obs_err *err);

/* The file_storage extension's directory (storage_file.c); NULL when ext is not one. */
const char *cld_file_storage_dir(const struct cld_instance *ext);
/* The batch processor's settings; OBS_EINVAL when proc is not a batch processor. */
int cld_batch_settings(const struct cld_instance *proc, size_t *items, size_t *max_items,
                       int64_t *timeout_ms);

/* Plugin registry (collector.c) and the plugins. */
extern const struct cld_plugin cld_receiver_otlp;
extern const struct cld_plugin cld_processor_batch;
extern const struct cld_plugin cld_processor_memory_limiter;
extern const struct cld_plugin cld_exporter_otlp;
extern const struct cld_plugin cld_exporter_otlphttp;
extern const struct cld_plugin cld_exporter_debug;
extern const struct cld_plugin cld_exporter_logging;
extern const struct cld_plugin cld_extension_health_check;
extern const struct cld_plugin cld_extension_file_storage;

/* obs_app glue (collector.c). */
extern const struct obs_component cld_components[];
extern const int cld_ncomponents;
int cld_setup(struct obs_ctx *ctx, struct obs_err *err);
void cld_teardown(struct obs_ctx *ctx);

/* Split "host:port" (also "http://host:port", ":port") into host (may be "") and port.
 * Returns 0 or OBS_EINVAL. */
int cld_parse_endpoint(const char *ep, char *host, size_t hostcap, int *port);

#endif
