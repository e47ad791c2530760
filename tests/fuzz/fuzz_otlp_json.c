/*
 * fuzz_otlp_json.c -- fuzz target for the OTLP/JSON codec (common/codec/obs_otlp_json.h).
 *
 * Input: one selector byte (b % 3: traces, logs, metrics export request) then JSON text.
 * The JSON is converted to protobuf; when that succeeds the protobuf must unpack with
 * protobuf-c, render back to JSON (both enum styles), and that JSON must convert again
 * (the codec must accept what it prints). Also fed: the raw bytes after the selector as
 * protobuf, rendered to JSON if protobuf-c accepts them.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "codec/obs_otlp_json.h"
#include "core/obs_err.h"
#include "core/obs_sbuf.h"
#include "proto/otlp_logs_service.pb-c.h"
#include "proto/otlp_metrics_service.pb-c.h"
#include "proto/otlp_trace_service.pb-c.h"
#include "fuzz.h"

static const ProtobufCMessageDescriptor *pick(uint8_t b)
{
    switch (b % 3) {
    case 0:
        return &opentelemetry__proto__collector__trace__v1__export_trace_service_request__descriptor;
    case 1:
        return &opentelemetry__proto__collector__logs__v1__export_logs_service_request__descriptor;
    default:
        return &opentelemetry__proto__collector__metrics__v1__export_metrics_service_request__descriptor;
    }
}

/* Unpack pb as d, render it as JSON with flags, and convert that JSON again. A failure of
 * the second conversion is a bug (the codec rejects its own output). */
static void round_trip(const ProtobufCMessageDescriptor *d, const uint8_t *pb, size_t len,
                       int must_unpack)
{
    ProtobufCMessage *m = protobuf_c_message_unpack(d, NULL, len, pb);
    if (m == NULL) {
        if (must_unpack)
            abort(); /* obs_otlp_json_to_pb produced bytes protobuf-c rejects */
        return;
    }
    for (unsigned flags = 0; flags <= OBS_OTLP_JSON_ENUM_INT; flags++) {
        struct obs_sbuf js, pb2;
        obs_sbuf_init(&js);
        obs_sbuf_init(&pb2);
        if (obs_otlp_pb_to_json(m, flags, &js) == 0) {
            struct obs_err err = {0};
            int rc = obs_otlp_json_to_pb(d, js.p ? js.p : "", js.len, &pb2, &err);
            if (rc == OBS_EINVAL)
                abort(); /* the codec cannot read back its own JSON */
        }
        obs_sbuf_deinit(&js);
        obs_sbuf_deinit(&pb2);
    }
    protobuf_c_message_free_unpacked(m, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_quiet();
    if (size < 1)
        return 0;
    const ProtobufCMessageDescriptor *d = pick(data[0]);
    const char *json = (const char *)data + 1;
    size_t len = size - 1;

    struct obs_sbuf pb;
    obs_sbuf_init(&pb);
    struct obs_err err = {0};
    if (obs_otlp_json_to_pb(d, json, len, &pb, &err) == 0)
        round_trip(d, (const uint8_t *)(pb.p ? pb.p : ""), pb.len, 1);
    obs_sbuf_deinit(&pb);

    /* The same bytes as protobuf (what OTLP/HTTP protobuf bodies carry). */
    round_trip(d, data + 1, len, 0);
    return 0;
}
