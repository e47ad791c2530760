/*
 * trd.h -- traced internals shared by its components (distributor, ingester, querier).
 *
 * Data path: distributor (OTLP/HTTP protobuf|JSON, OTLP/gRPC) -> trd_ingester_push() (WAL
 * append + fsync, then the in-memory store) -> querier (Tempo HTTP API) reads the store.
 *
 * The store keeps, per trace id, a list of "batches": each batch is a packed OTLP
 * ResourceSpans holding only that trace's spans (resource and scope kept), exactly as received.
 * A trace by id is then the concatenation of its batches as TracesData field 1 (protobuf), or
 * the batches rendered as OTLP/JSON. Search decodes batches on demand after cheap time and
 * duration filters on the per-trace summary (start, end, root service and span name).
 * Everything runs on the loop thread; nothing here is thread-safe.
 */
#ifndef TRD_H
#define TRD_H

#include <stddef.h>
#include <stdint.h>

#include "core/obs_err.h"
#include "core/obs_sbuf.h"
#include "proto/otlp_trace_service.pb-c.h"

struct obs_ctx;
struct obs_wal;
struct obs_http_server;
struct obs_grpc_server;
struct obs_mchild;

typedef Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceRequest trd_export_req;
typedef Opentelemetry__Proto__Trace__V1__ResourceSpans trd_resource_spans;
typedef Opentelemetry__Proto__Trace__V1__Span trd_span;
typedef Opentelemetry__Proto__Common__V1__KeyValue trd_kv;
typedef Opentelemetry__Proto__Common__V1__AnyValue trd_anyvalue;

#define TRD_NO_ROOT "<root span not yet received>"

/* ---- config (Tempo's key shape) --------------------------------------------------------- */
struct trd_endpoint_cfg {
    char *endpoint; /* "host:port"; "" disables */
};
struct trd_distributor_cfg {
    struct {
        struct {
            struct {
                struct trd_endpoint_cfg grpc;
                struct trd_endpoint_cfg http;
            } protocols;
        } otlp;
    } receivers;
    int64_t max_recv_bytes; /* OTLP request size limit (HTTP body and gRPC message) */
};
struct trd_storage_cfg {
    struct {
        char *backend;
        struct {
            char *path;
        } wal;
        struct {
            char *path;
        } local;
    } trace;
};
struct trd_ingester_cfg {
    int64_t max_traces;       /* live traces kept; oldest dropped first (0 = unlimited) */
    int64_t trace_idle_ms;    /* accepted for Tempo compatibility */
    int64_t wal_no_fsync;     /* tests only */
};
struct trd_querier_cfg {
    int64_t search_default_limit;
    int64_t search_max_limit;
};

/* ---- store --------------------------------------------------------------------------- */
struct trd_batch {
    uint8_t *buf; /* packed ResourceSpans (owned) */
    size_t len;
};

struct trd_trace {
    uint8_t id[16];
    int64_t start_ns, end_ns; /* min span start, max span end */
    char *root_service;       /* NULL until the root span (no parent) arrives */
    char *root_name;
    struct trd_batch *batches;
    size_t nbatches, capbatches;
    size_t nspans;
    uint64_t seq; /* arrival order of the first batch (for eviction) */
    struct trd_trace *next; /* hash chain */
};

struct trd_store;

struct trd_store *trd_store_new(void);
void trd_store_free(struct trd_store *s);
/* Trace by 16-byte id, or NULL. Borrowed. */
const struct trd_trace *trd_store_get(const struct trd_store *s, const uint8_t id[16]);
/* Validate an export request (ids of the right length). OBS_EINVAL with err set. */
int trd_export_validate(const trd_export_req *req, struct obs_err *err);
/* Split req by trace id and add it. Returns 0 or OBS_ENOMEM. *nspans counts spans added. */
int trd_store_add(struct trd_store *s, const trd_export_req *req, size_t *nspans);
/* Drop the oldest traces until at most max remain (0 = no limit). */
void trd_store_trim(struct trd_store *s, size_t max);
size_t trd_store_ntraces(const struct trd_store *s);
size_t trd_store_nspans(const struct trd_store *s);
/* Iterate every trace (order unspecified). fn returns non-zero to stop. */
void trd_store_foreach(const struct trd_store *s, int (*fn)(const struct trd_trace *, void *),
                       void *arg);

/* Render a trace: TracesData protobuf; Tempo v1 JSON {"batches":[...]}; v2 JSON
 * {"trace":{"resourceSpans":[...]}}. Return 0, OBS_ENOMEM or OBS_ECORRUPT. */
int trd_trace_encode_pb(const struct trd_trace *t, struct obs_sbuf *out);
int trd_trace_encode_json(const struct trd_trace *t, int v2, struct obs_sbuf *out);

/* Parse a hex trace id of 1..32 digits (left-padded with zeros). 0 or OBS_EINVAL. */
int trd_trace_id_parse(const char *hex, uint8_t id[16]);
/* Hex of the id without leading zeros (as Tempo prints it in search results). */
void trd_trace_id_short(const uint8_t id[16], char out[33]);

/* String form of an attribute value (ints/doubles/bools as text) into buf. */
const char *trd_anyvalue_str(const trd_anyvalue *v, char *buf, size_t cap);

/* ---- search --------------------------------------------------------------------------- */
struct trd_tag {
    char *key;
    char *value;
};

struct trd_search {
    struct trd_tag *tags;
    size_t ntags;
    int64_t min_dur_ns, max_dur_ns; /* 0 = unset */
    int64_t start_s, end_s;         /* 0 = unset */
    size_t limit;
};

/* Parse logfmt tags ("k=v k2=\"v 2\""). Returns 0 or OBS_EINVAL with err set. */
int trd_search_parse_tags(struct trd_search *q, const char *logfmt, struct obs_err *err);
/* Parse a Go duration ("1.5s", "100ms", "2m30s", "1h", "300us") into nanoseconds. */
int trd_go_duration_ns(const char *s, int64_t *out);
void trd_search_deinit(struct trd_search *q);
/* True when trace t matches q (some span matches every tag; trace duration and time range). */
int trd_search_match(const struct trd_trace *t, const struct trd_search *q);
/* Run q over the store and append Tempo's search response JSON. */
int trd_search_run(const struct trd_store *s, const struct trd_search *q, struct obs_sbuf *out);
/* Tag names / values seen in the store, as Tempo's {"tagNames":[..]} / {"tagValues":[..]}. */
int trd_search_tags(const struct trd_store *s, struct obs_sbuf *out);
int trd_search_tag_values(const struct trd_store *s, const char *tag, struct obs_sbuf *out);

/* ---- the app ------------------------------------------------------------------------- */
struct trd_app {
    struct obs_ctx *ctx;
    struct trd_distributor_cfg dcfg;
    struct trd_storage_cfg scfg;
    struct trd_ingester_cfg icfg;
    struct trd_querier_cfg qcfg;
    struct trd_store *store;
    struct obs_wal *wal;
    uint64_t wal_ckpt_bytes; /* WAL size after the last checkpoint/replay */
    struct obs_http_server *otlp_http;
    struct obs_grpc_server *grpc;
    struct obs_mchild *m_spans, *m_batches, *m_rejected, *m_bytes;
};

/* Ingester: validate-free push of an already validated request. raw/len are its protobuf
 * bytes (written to the WAL and fsynced before the store is updated). Returns 0, OBS_EIO
 * (WAL failure: reply 5xx) or OBS_ENOMEM. */
int trd_ingester_push(struct trd_app *a, const trd_export_req *req, const uint8_t *raw,
                      size_t len);

/* Component entry points (tables in main.c). */
int trd_distributor_init(struct obs_ctx *ctx, struct obs_err *err);
void trd_distributor_stop(struct obs_ctx *ctx);
int trd_ingester_init(struct obs_ctx *ctx, struct obs_err *err);
void trd_ingester_stop(struct obs_ctx *ctx);
int trd_querier_init(struct obs_ctx *ctx, struct obs_err *err);
void trd_querier_stop(struct obs_ctx *ctx);
int trd_app_setup(struct obs_ctx *ctx, struct obs_err *err);
void trd_app_teardown(struct obs_ctx *ctx);

#endif
