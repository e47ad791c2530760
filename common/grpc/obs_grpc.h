/*
 * obs_grpc.h -- gRPC server and client on gRPC core (the only module that includes grpc).
 *
 * Server: a completion queue served by its own thread; each unary call's request bytes are
 * handed to the owning libevent loop through an obs_chan, where the registered handler runs.
 * The handler (or later code on the loop) answers with obs_grpc_reply(), exactly once.
 * Payloads are serialized protobuf (protobuf-c packs/unpacks them at the call site).
 * Client: blocking unary calls, safe from any thread (used by exporter/sender threads).
 */
#ifndef OBS_GRPC_H
#define OBS_GRPC_H

#include <stddef.h>
#include <stdint.h>

#include "core/obs_err.h"
#include "core/obs_sbuf.h"

struct event_base;
struct obs_grpc_server;
struct obs_grpc_call;
struct obs_grpc_channel;

/* gRPC status codes used by the suite (values from the gRPC spec). */
enum obs_grpc_status {
    OBS_GRPC_OK = 0,
    OBS_GRPC_CANCELLED = 1,
    OBS_GRPC_UNKNOWN = 2,
    OBS_GRPC_INVALID_ARGUMENT = 3,
    OBS_GRPC_DEADLINE_EXCEEDED = 4,
    OBS_GRPC_NOT_FOUND = 5,
    OBS_GRPC_RESOURCE_EXHAUSTED = 8,
    OBS_GRPC_UNIMPLEMENTED = 12,
    OBS_GRPC_INTERNAL = 13,
    OBS_GRPC_UNAVAILABLE = 14,
};

/* Handler: runs on the loop thread. req is borrowed until obs_grpc_reply(). */
typedef void (*obs_grpc_unary_fn)(struct obs_grpc_call *call, const uint8_t *req, size_t len,
                                  void *arg);

/* Create a server bound to "host:port" (insecure). max_recv_bytes 0 = 64 MiB (the 4 MiB
 * default is too small for ingest). Methods are registered before obs_grpc_server_start. */
struct obs_grpc_server *obs_grpc_server_new(struct event_base *base, const char *addr,
                                            size_t max_recv_bytes, struct obs_err *err);
/* method is the full path "/pkg.Service/Method". */
int obs_grpc_server_add_unary(struct obs_grpc_server *s, const char *method,
                              obs_grpc_unary_fn fn, void *arg);
int obs_grpc_server_start(struct obs_grpc_server *s, struct obs_err *err);
/* Port bound (for ":0"). */
int obs_grpc_server_port(const struct obs_grpc_server *s);
/* Shut down (cancels calls in flight), join the CQ thread, free. NULL is fine. */
void obs_grpc_server_free(struct obs_grpc_server *s);

/* Metadata value of the call (e.g. "x-scope-orgid"), or NULL. Borrowed until reply. */
const char *obs_grpc_call_metadata(const struct obs_grpc_call *c, const char *key);
/* Answer the call: status, message (may be NULL), response bytes (copied). Frees the call. */
void obs_grpc_reply(struct obs_grpc_call *c, int status, const char *msg, const void *resp,
                    size_t len);

/* Client channel to "host:port" (insecure). Thread-safe; NULL on failure. */
struct obs_grpc_channel *obs_grpc_channel_new(const char *target);
void obs_grpc_channel_free(struct obs_grpc_channel *ch);
/* Blocking unary call. headers: NULL-terminated pairs {key, value, key, value, ..., NULL}.
 * Returns 0 with *status set to the gRPC status and resp filled (appended) when a status was
 * received; OBS_EIO with err set when the call could not be made at all. */
int obs_grpc_unary(struct obs_grpc_channel *ch, const char *method, const char *const *headers,
                   const void *req, size_t len, int timeout_ms, struct obs_sbuf *resp,
                   int *status, struct obs_err *err);

#endif
