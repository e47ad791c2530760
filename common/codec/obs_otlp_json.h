/*
 * obs_otlp_json.h -- OTLP/JSON <-> protobuf, driven by protobuf-c descriptors.
 *
 * One generic codec for every OTLP message (traces, logs, metrics, export requests): it walks
 * the protobuf-c descriptor of the target message, so it needs no per-message code.
 * Follows the OTLP/HTTP JSON rules (OTLP 1.x spec, "JSON Protobuf Encoding"):
 *   - keys are lowerCamelCase field names; the original snake_case names are accepted too;
 *   - traceId / spanId / parentSpanId are hex strings (not base64); other bytes are base64;
 *   - 64-bit integers are decimal strings (numbers are accepted on input);
 *   - enums may be integers or value names on input;
 *   - unknown fields are ignored on input.
 */
#ifndef OBS_OTLP_JSON_H
#define OBS_OTLP_JSON_H

#include <stddef.h>

#include <protobuf-c/protobuf-c.h>

#include "core/obs_err.h"
#include "core/obs_sbuf.h"

/* Output flags for obs_otlp_pb_to_json. */
enum {
    OBS_OTLP_JSON_ENUM_INT = 1, /* enums as integers (OTLP spec) instead of names (Tempo) */
};

/*
 * Parse JSON text (json, len bytes, need not be NUL-terminated) as message type d and append
 * its protobuf binary encoding to out. Returns 0, OBS_EINVAL with err set ("invalid JSON ..."
 * or "field traceId: ..."), or OBS_ENOMEM. Pure function; thread-safe.
 */
int obs_otlp_json_to_pb(const ProtobufCMessageDescriptor *d, const char *json, size_t len,
                        struct obs_sbuf *out, struct obs_err *err);

/*
 * Append message m (unpacked by protobuf-c) to out as OTLP/JSON. Fields at their proto3
 * default are omitted, except members of a oneof that is set. Returns 0 or OBS_ENOMEM.
 * Thread-safe.
 */
int obs_otlp_pb_to_json(const ProtobufCMessage *m, unsigned flags, struct obs_sbuf *out);

/* Lowercase hex of n bytes, appended. */
int obs_hex_append(struct obs_sbuf *out, const uint8_t *p, size_t n);
/* Decode hex (even length) into out (cap bytes). Returns bytes written or -1 on bad input. */
int obs_hex_decode(const char *s, size_t len, uint8_t *out, size_t cap);

#endif
