/*
 * otlp.c -- OTLP payload helpers: item counting and the OTLP/JSON -> protobuf conversion.
 *
 * Counting unpacks the request with protobuf-c (which also validates it) and sums spans,
 * metric data points or log records; the batch processor sizes batches by that count, as the
 * Collector's does.
 *
 * JSON conversion is generic over protobuf-c descriptors: each JSON object key is matched to
 * a field by its proto name or its lowerCamelCase JSON name, and values are converted by the
 * field's type following the proto3 JSON mapping with OTLP's exceptions (spec: OTLP/HTTP JSON
 * encoding): trace_id / span_id / parent_span_id are hex strings, not base64; enums may be
 * integers or names; 64-bit integers may be strings; unknown keys are ignored. The message
 * tree lives in an arena and is packed once; nothing is freed field by field.
 */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cld.h"
#include "core/obs_arena.h"
#include "core/obs_mem.h"
#include "core/obs_sbuf.h"
#include "proto/otlp_logs_service.pb-c.h"
#include "proto/otlp_metrics_service.pb-c.h"
#include "proto/otlp_trace_service.pb-c.h"

#define MAX_DEPTH 32

static const ProtobufCMessageDescriptor *req_desc(enum cld_signal s)
{
    switch (s) {
    case CLD_TRACES:
        return &opentelemetry__proto__collector__trace__v1__export_trace_service_request__descriptor;
    case CLD_METRICS:
        return &opentelemetry__proto__collector__metrics__v1__export_metrics_service_request__descriptor;
    case CLD_LOGS:
        return &opentelemetry__proto__collector__logs__v1__export_logs_service_request__descriptor;
    default:
        return NULL;
    }
}

static size_t metric_points(const Opentelemetry__Proto__Metrics__V1__Metric *m)
{
    switch (m->data_case) {
    case OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_GAUGE:
        return m->gauge ? m->gauge->n_data_points : 0;
    case OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_SUM:
        return m->sum ? m->sum->n_data_points : 0;
    case OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_HISTOGRAM:
        return m->histogram ? m->histogram->n_data_points : 0;
    case OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_EXPONENTIAL_HISTOGRAM:
        return m->exponential_histogram ? m->exponential_histogram->n_data_points : 0;
    case OPENTELEMETRY__PROTO__METRICS__V1__METRIC__DATA_SUMMARY:
        return m->summary ? m->summary->n_data_points : 0;
    default:
        return 0;
    }
}

int cld_otlp_count(enum cld_signal sig, const uint8_t *data, size_t len, size_t *items)
{
    const ProtobufCMessageDescriptor *d = req_desc(sig);
    if (!d)
        return OBS_EINVAL;
    ProtobufCMessage *m = protobuf_c_message_unpack(d, NULL, len, data);
    if (!m)
        return OBS_EINVAL;
    size_t n = 0;
    if (sig == CLD_TRACES) {
        Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceRequest *r = (void *)m;
        for (size_t i = 0; i < r->n_resource_spans; i++)
            for (size_t j = 0; j < r->resource_spans[i]->n_scope_spans; j++)
                n += r->resource_spans[i]->scope_spans[j]->n_spans;
    } else if (sig == CLD_METRICS) {
        Opentelemetry__Proto__Collector__Metrics__V1__ExportMetricsServiceRequest *r = (void *)m;
        for (size_t i = 0; i < r->n_resource_metrics; i++)
            for (size_t j = 0; j < r->resource_metrics[i]->n_scope_metrics; j++) {
                Opentelemetry__Proto__Metrics__V1__ScopeMetrics *sm =
                    r->resource_metrics[i]->scope_metrics[j];
                for (size_t k = 0; k < sm->n_metrics; k++)
                    n += metric_points(sm->metrics[k]);
            }
    } else {
        Opentelemetry__Proto__Collector__Logs__V1__ExportLogsServiceRequest *r = (void *)m;
        for (size_t i = 0; i < r->n_resource_logs; i++)
            for (size_t j = 0; j < r->resource_logs[i]->n_scope_logs; j++)
                n += r->resource_logs[i]->scope_logs[j]->n_log_records;
    }
    protobuf_c_message_free_unpacked(m, NULL);
    *items = n;
    return 0;
}

/* ---- JSON -> protobuf ------------------------------------------------------------------ */

struct conv {
    struct obs_arena *ar;
    struct obs_err *err;
};

/* Does JSON key k name field f ("trace_id" or "traceId")? */
static int key_matches(const char *k, const char *field)
{
    if (!strcmp(k, field))
        return 1;
    const char *a = field, *b = k;
    while (*a && *b) {
        if (*a == '_' && a[1]) {
            a++;
            if (*b != (*a >= 'a' && *a <= 'z' ? *a - 32 : *a))
                return 0;
        } else if (*a != *b) {
            return 0;
        }
        a++;
        b++;
    }
    return !*a && !*b;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int b64val(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+' || c == '-')
        return 62;
    if (c == '/' || c == '_')
        return 63;
    return -1;
}

static int conv_bytes(struct conv *cv, const char *fname, json_t *v, ProtobufCBinaryData *out)
{
    if (!json_is_string(v))
        return obs_err_set(cv->err, OBS_EINVAL, "field %s: expected a string", fname);
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    size_t fl = strlen(fname);
    int hex = (fl >= 8 && !strcmp(fname + fl - 8, "trace_id")) ||
              (fl >= 7 && !strcmp(fname + fl - 7, "span_id"));
    uint8_t *buf = obs_arena_alloc(cv->ar, n + 1);
    if (!buf)
        return OBS_ENOMEM;
    size_t o = 0;
    if (hex) {
        if (n % 2)
            return obs_err_set(cv->err, OBS_EINVAL, "field %s: invalid hex id \"%s\"", fname, s);
        for (size_t i = 0; i < n; i += 2) {
            int h = hexval(s[i]), l = hexval(s[i + 1]);
            if (h < 0 || l < 0)
                return obs_err_set(cv->err, OBS_EINVAL, "field %s: invalid hex id \"%s\"", fname,
                                   s);
            buf[o++] = (uint8_t)(h << 4 | l);
        }
    } else {
        unsigned acc = 0;
        int bits = 0;
        for (size_t i = 0; i < n; i++) {
            if (s[i] == '=')
                break;
            int v6 = b64val(s[i]);
            if (v6 < 0)
                return obs_err_set(cv->err, OBS_EINVAL, "field %s: invalid base64", fname);
            acc = acc << 6 | (unsigned)v6;
            bits += 6;
            if (bits >= 8) {
                bits -= 8;
                buf[o++] = (uint8_t)(acc >> bits);
            }
        }
    }
    out->data = buf;
    out->len = o;
    return 0;
}

static int get_i64(struct conv *cv, const char *fname, json_t *v, int64_t *out)
{
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return 0;
    }
    if (json_is_real(v)) {
        *out = (int64_t)json_real_value(v);
        return 0;
    }
    if (json_is_string(v)) {
        char *e;
        const char *s = json_string_value(v);
        long long x = strtoll(s, &e, 10);
        if (*s && !*e) {
            *out = x;
            return 0;
        }
    }
    return obs_err_set(cv->err, OBS_EINVAL, "field %s: expected an integer", fname);
}

static int get_u64(struct conv *cv, const char *fname, json_t *v, uint64_t *out)
{
    if (json_is_string(v)) {
        char *e;
        const char *s = json_string_value(v);
        unsigned long long x = strtoull(s, &e, 10);
        if (*s && *s != '-' && !*e) {
            *out = x;
            return 0;
        }
        return obs_err_set(cv->err, OBS_EINVAL, "field %s: expected an unsigned integer", fname);
    }
    int64_t i;
    int rc = get_i64(cv, fname, v, &i);
    if (rc == 0)
        *out = (uint64_t)i;
    return rc;
}

static int get_double(struct conv *cv, const char *fname, json_t *v, double *out)
{
    if (json_is_number(v)) {
        *out = json_number_value(v);
        return 0;
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        if (!strcmp(s, "NaN"))
            *out = NAN;
        else if (!strcmp(s, "Infinity"))
            *out = INFINITY;
        else if (!strcmp(s, "-Infinity"))
            *out = -INFINITY;
        else {
            char *e;
            *out = strtod(s, &e);
            if (!*s || *e)
                return obs_err_set(cv->err, OBS_EINVAL, "field %s: expected a number", fname);
        }
        return 0;
    }
    return obs_err_set(cv->err, OBS_EINVAL, "field %s: expected a number", fname);
}

static size_t elem_size(const ProtobufCFieldDescriptor *f)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_ENUM: return 4;
    case PROTOBUF_C_TYPE_BOOL: return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_DOUBLE: return 8;
    case PROTOBUF_C_TYPE_STRING: return sizeof(char *);
    case PROTOBUF_C_TYPE_BYTES: return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_MESSAGE: return sizeof(void *);
    }
    return 8;
}

static int conv_message(struct conv *cv, const ProtobufCMessageDescriptor *d, json_t *obj,
                        ProtobufCMessage **out, int depth);

/* Convert v into the storage at dst for field f (one element). */
static int conv_value(struct conv *cv, const ProtobufCFieldDescriptor *f, json_t *v, void *dst,
                      int depth)
{
    int64_t i64;
    uint64_t u64;
    double d;
    int rc = 0;
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        if ((rc = get_i64(cv, f->name, v, &i64)) == 0)
            *(int32_t *)dst = (int32_t)i64;
        return rc;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        if ((rc = get_u64(cv, f->name, v, &u64)) == 0)
            *(uint32_t *)dst = (uint32_t)u64;
        return rc;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        if ((rc = get_i64(cv, f->name, v, &i64)) == 0)
            *(int64_t *)dst = i64;
        return rc;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        if ((rc = get_u64(cv, f->name, v, &u64)) == 0)
            *(uint64_t *)dst = u64;
        return rc;
    case PROTOBUF_C_TYPE_FLOAT:
        if ((rc = get_double(cv, f->name, v, &d)) == 0)
            *(float *)dst = (float)d;
        return rc;
    case PROTOBUF_C_TYPE_DOUBLE:
        if ((rc = get_double(cv, f->name, v, &d)) == 0)
            *(double *)dst = d;
        return rc;
    case PROTOBUF_C_TYPE_BOOL:
        if (!json_is_boolean(v))
            return obs_err_set(cv->err, OBS_EINVAL, "field %s: expected a boolean", f->name);
        *(protobuf_c_boolean *)dst = json_is_true(v);
        return 0;
    case PROTOBUF_C_TYPE_ENUM: {
        if (json_is_string(v)) {
            const ProtobufCEnumValue *ev =
                protobuf_c_enum_descriptor_get_value_by_name(f->descriptor, json_string_value(v));
            if (!ev)
                return obs_err_set(cv->err, OBS_EINVAL, "field %s: unknown enum value \"%s\"",
                                   f->name, json_string_value(v));
            *(int *)dst = ev->value;
            return 0;
        }
        if ((rc = get_i64(cv, f->name, v, &i64)) == 0)
            *(int *)dst = (int)i64;
        return rc;
    }
    case PROTOBUF_C_TYPE_STRING:
        if (!json_is_string(v))
            return obs_err_set(cv->err, OBS_EINVAL, "field %s: expected a string", f->name);
        *(char **)dst = obs_arena_strndup(cv->ar, json_string_value(v), json_string_length(v));
        return *(char **)dst ? 0 : OBS_ENOMEM;
    case PROTOBUF_C_TYPE_BYTES:
        return conv_bytes(cv, f->name, v, dst);
    case PROTOBUF_C_TYPE_MESSAGE:
        return conv_message(cv, f->descriptor, v, (ProtobufCMessage **)dst, depth + 1);
    }
    return OBS_EINVAL;
}

static int conv_message(struct conv *cv, const ProtobufCMessageDescriptor *d, json_t *obj,
                        ProtobufCMessage **out, int depth)
{
    if (depth > MAX_DEPTH)
        return obs_err_set(cv->err, OBS_EINVAL, "JSON nested too deeply");
    if (!json_is_object(obj))
        return obs_err_set(cv->err, OBS_EINVAL, "%s: expected a JSON object", d->short_name);
    ProtobufCMessage *m = obs_arena_alloc(cv->ar, d->sizeof_message);
    if (!m)
        return OBS_ENOMEM;
    protobuf_c_message_init(d, m);
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        const ProtobufCFieldDescriptor *f = NULL;
        for (unsigned i = 0; i < d->n_fields; i++)
            if (key_matches(key, d->fields[i].name)) {
                f = &d->fields[i];
                break;
            }
        if (!f || json_is_null(v))
            continue; /* unknown fields are ignored (OTLP JSON) */
        char *base = (char *)m;
        int rc;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            if (!json_is_array(v))
                return obs_err_set(cv->err, OBS_EINVAL, "field %s: expected an array", f->name);
            size_t n = json_array_size(v), es = elem_size(f);
            char *arr = obs_arena_calloc(cv->ar, n * es + 1);
            if (!arr)
                return OBS_ENOMEM;
            for (size_t i = 0; i < n; i++)
                if ((rc = conv_value(cv, f, json_array_get(v, i), arr + i * es, depth)) < 0)
                    return rc;
            *(size_t *)(base + f->quantifier_offset) = n;
            *(void **)(base + f->offset) = arr;
            continue;
        }
        if ((rc = conv_value(cv, f, v, base + f->offset, depth)) < 0)
            return rc;
        if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
            *(uint32_t *)(base + f->quantifier_offset) = f->id;
        else if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->quantifier_offset)
            *(protobuf_c_boolean *)(base + f->quantifier_offset) = 1;
    }
    *out = m;
    return 0;
}

int cld_otlp_json_to_pb(enum cld_signal sig, const char *json, size_t len, struct obs_sbuf *out,
                        struct obs_err *err)
{
    json_error_t jerr;
    json_t *root = json_loadb(json, len, 0, &jerr);
    if (!root)
        return obs_err_set(err, OBS_EINVAL, "invalid JSON: %s (line %d, column %d)", jerr.text,
                           jerr.line, jerr.column);
    struct conv cv = {.ar = obs_arena_new(64 * 1024), .err = err};
    int rc = OBS_ENOMEM;
    if (cv.ar) {
        ProtobufCMessage *m = NULL;
        rc = conv_message(&cv, req_desc(sig), root, &m, 0);
        if (rc == 0) {
            size_t n = protobuf_c_message_get_packed_size(m);
            if ((rc = obs_sbuf_reserve(out, n + 1)) == 0) {
                protobuf_c_message_pack(m, (uint8_t *)out->p + out->len);
                out->len += n;
            }
        }
        if (rc == OBS_ENOMEM)
            obs_err_set(err, OBS_ENOMEM, "out of memory");
    }
    obs_arena_free(cv.ar);
    json_decref(root);
    return rc;
}
