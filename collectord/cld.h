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
};

struct cld_pipeline {
    char *id;                  /* "traces/2" */
    enum cld_signal sig;
    struct cld_instance **procs; /* owned per pipeline */
    size_t nprocs;
    struct cld_instance **exps;  /* shared (borrowed from the collector) */
    size_t nexps;
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
};
/* send returns 0 (done), OBS_ERETRY (try again later) or OBS_EFATAL (drop). Runs on the
 * queue's thread. */
typedef int (*cld_send_fn)(void *arg, const struct cld_batch *b);
struct cld_equeue;
struct cld_equeue *cld_equeue_new(const char *id, const struct cld_queue_cfg *qc,
                                  const struct cld_retry_cfg *rc, cld_send_fn send, void *arg,
                                  struct obs_metrics *m, struct obs_err *err);
/* Queue b (takes ownership). OBS_ELIMIT (b freed) when the queue is full. Thread-safe. */
int cld_equeue_push(struct cld_equeue *q, struct cld_batch *b);
/* Drain for up to drain_ms, then stop the thread and free. */
void cld_equeue_free(struct cld_equeue *q, int drain_ms);

/* cfmap tables shared by exporters */
extern const struct obs_cfmap cld_retry_map[];
extern const struct obs_cfmap cld_queue_map[];

/* Plugin registry (collector.c) and the plugins. */
extern const struct cld_plugin cld_receiver_otlp;
extern const struct cld_plugin cld_processor_batch;
extern const struct cld_plugin cld_processor_memory_limiter;
extern const struct cld_plugin cld_exporter_otlp;
extern const struct cld_plugin cld_exporter_otlphttp;
extern const struct cld_plugin cld_exporter_debug;
extern const struct cld_plugin cld_exporter_logging;
extern const struct cld_plugin cld_extension_health_check;

/* obs_app glue (collector.c). */
extern const struct obs_component cld_components[];
extern const int cld_ncomponents;
int cld_setup(struct obs_ctx *ctx, struct obs_err *err);
void cld_teardown(struct obs_ctx *ctx);

/* Split "host:port" (also "http://host:port", ":port") into host (may be "") and port.
 * Returns 0 or OBS_EINVAL. */
int cld_parse_endpoint(const char *ep, char *host, size_t hostcap, int *port);

#endif
