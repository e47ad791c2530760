/*
 * obs_otlp_json.c -- OTLP/JSON <-> protobuf through protobuf-c descriptors (see the header).
 *
 * JSON -> protobuf: jansson parses the text; encode_msg() walks the JSON object with the
 * message descriptor and writes protobuf wire format directly into an obs_sbuf (a nested
 * message is encoded into a scratch buffer first for its length prefix). Repeated scalars are
 * written unpacked, which every protobuf parser accepts. Nesting is capped at MAX_DEPTH.
 *
 * protobuf -> JSON: render_msg() walks an unpacked ProtobufCMessage: proto3 fields (label NONE)
 * are omitted at their default value, oneof members are printed when their case is set, and
 * repeated fields come from the (count, array) pair protobuf-c keeps.
 */
#include "codec/obs_otlp_json.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/obs_mem.h"

#define MAX_DEPTH 64

/* ------------------------------------------------------------------------------------------ */
/* small helpers                                                                              */

int obs_hex_append(struct obs_sbuf *out, const uint8_t *p, size_t n)
{
    static const char hx[] = "0123456789abcdef";
    if (obs_sbuf_reserve(out, 2 * n + 1) != 0)
        return OBS_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        out->p[out->len++] = hx[p[i] >> 4];
        out->p[out->len++] = hx[p[i] & 15];
    }
    out->p[out->len] = '\0';
    return 0;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int obs_hex_decode(const char *s, size_t len, uint8_t *out, size_t cap)
{
    if (len % 2 != 0 || len / 2 > cap)
        return -1;
    for (size_t i = 0; i < len; i += 2) {
        int a = hexval((unsigned char)s[i]), b = hexval((unsigned char)s[i + 1]);
        if (a < 0 || b < 0)
            return -1;
        out[i / 2] = (uint8_t)(a << 4 | b);
    }
    return (int)(len / 2);
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int b64_append(struct obs_sbuf *out, const uint8_t *p, size_t n)
{
    char q[4];
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        q[0] = b64[v >> 18 & 63];
        q[1] = b64[v >> 12 & 63];
        q[2] = i + 1 < n ? b64[v >> 6 & 63] : '=';
        q[3] = i + 2 < n ? b64[v & 63] : '=';
        if (obs_sbuf_append(out, q, 4) != 0)
            return OBS_ENOMEM;
    }
    return 0;
}

static int b64val(int c)
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

/* Standard or URL-safe base64, padding optional. Appends to out. */
static int b64_decode(const char *s, size_t n, struct obs_sbuf *out)
{
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '=')
            break;
        int v = b64val((unsigned char)s[i]);
        if (v < 0)
            return OBS_EINVAL;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (obs_sbuf_putc(out, (char)(acc >> bits & 0xff)) != 0)
                return OBS_ENOMEM;
        }
    }
    return 0;
}

/* "trace_id" -> "traceId" into buf. */
static const char *camel(const char *name, char *buf, size_t cap)
{
    size_t j = 0;
    int up = 0;
    for (const char *p = name; *p && j + 1 < cap; p++) {
        if (*p == '_') {
            up = 1;
            continue;
        }
        buf[j++] = up && *p >= 'a' && *p <= 'z' ? (char)(*p - 32) : *p;
        up = 0;
    }
    buf[j] = '\0';
    return buf;
}

/* Compare a JSON key with a proto field name ignoring '_' and ASCII case. */
static int key_matches(const char *key, const char *name)
{
    const char *a = key, *b = name;
    for (;;) {
        while (*a == '_')
            a++;
        while (*b == '_')
            b++;
        if (*a == '\0' || *b == '\0')
            return *a == *b;
        int ca = *a >= 'A' && *a <= 'Z' ? *a + 32 : *a;
        int cb = *b >= 'A' && *b <= 'Z' ? *b + 32 : *b;
        if (ca != cb)
            return 0;
        a++;
        b++;
    }
}

static int is_hex_id_field(const char *name)
{
    return strcmp(name, "trace_id") == 0 || strcmp(name, "span_id") == 0 ||
           strcmp(name, "parent_span_id") == 0;
}

/* ------------------------------------------------------------------------------------------ */
/* JSON -> protobuf                                                                           */

enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_I32 = 5 };

static int put_tag(struct obs_sbuf *o, uint32_t id, int wt)
{
    return obs_sbuf_uvarint(o, (uint64_t)id << 3 | (uint64_t)wt);
}

static int put_le(struct obs_sbuf *o, uint64_t v, int n)
{
    uint8_t b[8];
    for (int i = 0; i < n; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    return obs_sbuf_append(o, b, (size_t)n);
}

static int fail(struct obs_err *err, const ProtobufCFieldDescriptor *f, const char *what)
{
    char cb[128];
    return obs_err_set(err, OBS_EINVAL, "field %s: %s", camel(f->name, cb, sizeof(cb)), what);
}

/* Signed integer from a JSON integer, integral real or decimal string. */
static int json_i64(const json_t *v, int64_t *out)
{
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return 0;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        if (d != floor(d) || d < -9.2e18 || d > 9.2e18)
            return OBS_EINVAL;
        *out = (int64_t)d;
        return 0;
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        char *end;
        errno = 0;
        long long x = strtoll(s, &end, 10);
        if (*s == '\0' || *end != '\0' || errno != 0)
            return OBS_EINVAL;
        *out = x;
        return 0;
    }
    return OBS_EINVAL;
}

static int json_u64(const json_t *v, uint64_t *out)
{
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        char *end;
        errno = 0;
        if (*s == '-' || *s == '\0')
            return OBS_EINVAL;
        unsigned long long x = strtoull(s, &end, 10);
        if (*end != '\0' || errno != 0)
            return OBS_EINVAL;
        *out = x;
        return 0;
    }
    int64_t i;
    if (json_i64(v, &i) != 0 || i < 0)
        return OBS_EINVAL;
    *out = (uint64_t)i;
    return 0;
}

static int json_dbl(const json_t *v, double *out)
{
    if (json_is_number(v)) {
        *out = json_number_value(v);
        return 0;
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        if (strcmp(s, "NaN") == 0)
            *out = NAN;
        else if (strcmp(s, "Infinity") == 0)
            *out = INFINITY;
        else if (strcmp(s, "-Infinity") == 0)
            *out = -INFINITY;
        else {
            char *end;
            *out = strtod(s, &end);
            if (*s == '\0' || *end != '\0')
                return OBS_EINVAL;
        }
        return 0;
    }
    return OBS_EINVAL;
}

static int encode_msg(const ProtobufCMessageDescriptor *d, const json_t *obj, struct obs_sbuf *o,
                      int depth, struct obs_err *err);

static int encode_value(const ProtobufCFieldDescriptor *f, const json_t *v, struct obs_sbuf *o,
                        int depth, struct obs_err *err)
{
    int64_t i;
    uint64_t u;
    double dv;
    int rc = 0;
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_SFIXED64:
        if (json_i64(v, &i) != 0)
            return fail(err, f, "expected an integer");
        if ((f->type == PROTOBUF_C_TYPE_INT32 || f->type == PROTOBUF_C_TYPE_SINT32 ||
             f->type == PROTOBUF_C_TYPE_SFIXED32) &&
            (i < INT32_MIN || i > INT32_MAX))
            return fail(err, f, "integer out of range");
        if (f->type == PROTOBUF_C_TYPE_SFIXED32)
            rc = put_tag(o, f->id, WT_I32) || put_le(o, (uint32_t)(int32_t)i, 4);
        else if (f->type == PROTOBUF_C_TYPE_SFIXED64)
            rc = put_tag(o, f->id, WT_I64) || put_le(o, (uint64_t)i, 8);
        else if (f->type == PROTOBUF_C_TYPE_SINT32 || f->type == PROTOBUF_C_TYPE_SINT64)
            rc = put_tag(o, f->id, WT_VARINT) || obs_sbuf_varint(o, i);
        else
            rc = put_tag(o, f->id, WT_VARINT) || obs_sbuf_uvarint(o, (uint64_t)i);
        break;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_FIXED64:
        if (json_u64(v, &u) != 0)
            return fail(err, f, "expected an unsigned integer");
        if ((f->type == PROTOBUF_C_TYPE_UINT32 || f->type == PROTOBUF_C_TYPE_FIXED32) &&
            u > UINT32_MAX)
            return fail(err, f, "integer out of range");
        if (f->type == PROTOBUF_C_TYPE_FIXED32)
            rc = put_tag(o, f->id, WT_I32) || put_le(o, u, 4);
        else if (f->type == PROTOBUF_C_TYPE_FIXED64)
            rc = put_tag(o, f->id, WT_I64) || put_le(o, u, 8);
        else
            rc = put_tag(o, f->id, WT_VARINT) || obs_sbuf_uvarint(o, u);
        break;
    case PROTOBUF_C_TYPE_BOOL:
        if (!json_is_boolean(v))
            return fail(err, f, "expected true or false");
        rc = put_tag(o, f->id, WT_VARINT) || obs_sbuf_uvarint(o, json_is_true(v) ? 1 : 0);
        break;
    case PROTOBUF_C_TYPE_ENUM:
        if (json_is_string(v)) {
            const ProtobufCEnumValue *ev =
                protobuf_c_enum_descriptor_get_value_by_name(f->descriptor, json_string_value(v));
            if (ev == NULL)
                return fail(err, f, "unknown enum value name");
            i = ev->value;
        } else if (json_i64(v, &i) != 0 || i < INT32_MIN || i > INT32_MAX) {
            return fail(err, f, "expected an enum name or integer");
        }
        rc = put_tag(o, f->id, WT_VARINT) || obs_sbuf_uvarint(o, (uint64_t)i);
        break;
    case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_DOUBLE:
        if (json_dbl(v, &dv) != 0)
            return fail(err, f, "expected a number");
        if (f->type == PROTOBUF_C_TYPE_FLOAT) {
            float fl = (float)dv;
            uint32_t bits;
            memcpy(&bits, &fl, 4);
            rc = put_tag(o, f->id, WT_I32) || put_le(o, bits, 4);
        } else {
            uint64_t bits;
            memcpy(&bits, &dv, 8);
            rc = put_tag(o, f->id, WT_I64) || put_le(o, bits, 8);
        }
        break;
    case PROTOBUF_C_TYPE_STRING:
        if (!json_is_string(v))
            return fail(err, f, "expected a string");
        rc = put_tag(o, f->id, WT_LEN) || obs_sbuf_uvarint(o, json_string_length(v)) ||
             obs_sbuf_append(o, json_string_value(v), json_string_length(v));
        break;
    case PROTOBUF_C_TYPE_BYTES: {
        if (!json_is_string(v))
            return fail(err, f, "expected a string");
        const char *s = json_string_value(v);
        size_t n = json_string_length(v);
        struct obs_sbuf tmp;
        obs_sbuf_init(&tmp);
        if (is_hex_id_field(f->name)) {
            uint8_t id[64];
            int k = obs_hex_decode(s, n, id, sizeof(id));
            if (k < 0) {
                obs_sbuf_deinit(&tmp);
                return fail(err, f, "expected a hex string");
            }
            rc = obs_sbuf_append(&tmp, id, (size_t)k);
        } else {
            rc = b64_decode(s, n, &tmp);
            if (rc == OBS_EINVAL) {
                obs_sbuf_deinit(&tmp);
                return fail(err, f, "expected base64");
            }
        }
        if (rc == 0)
            rc = put_tag(o, f->id, WT_LEN) || obs_sbuf_uvarint(o, tmp.len) ||
                 obs_sbuf_append(o, tmp.p, tmp.len);
        obs_sbuf_deinit(&tmp);
        break;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        if (!json_is_object(v))
            return fail(err, f, "expected an object");
        struct obs_sbuf tmp;
        obs_sbuf_init(&tmp);
        rc = encode_msg(f->descriptor, v, &tmp, depth + 1, err);
        if (rc == 0)
            rc = put_tag(o, f->id, WT_LEN) || obs_sbuf_uvarint(o, tmp.len) ||
                 obs_sbuf_append(o, tmp.p, tmp.len);
        obs_sbuf_deinit(&tmp);
        if (rc < 0)
            return rc;
        break;
    }
    default:
        return fail(err, f, "unsupported type");
    }
    if (rc != 0)
        return obs_err_set(err, OBS_ENOMEM, "out of memory");
    return 0;
}

static int encode_msg(const ProtobufCMessageDescriptor *d, const json_t *obj, struct obs_sbuf *o,
                      int depth, struct obs_err *err)
{
    if (depth > MAX_DEPTH)
        return obs_err_set(err, OBS_EINVAL, "JSON nested too deeply");
    if (!json_is_object(obj))
        return obs_err_set(err, OBS_EINVAL, "expected a JSON object for %s", d->short_name);
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)obj, key, v)
    {
        const ProtobufCFieldDescriptor *f = NULL;
        for (unsigned i = 0; i < d->n_fields; i++)
            if (key_matches(key, d->fields[i].name)) {
                f = &d->fields[i];
                break;
            }
        if (f == NULL || json_is_null(v))
            continue; /* unknown fields are ignored (OTLP forward compatibility) */
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            if (!json_is_array(v))
                return fail(err, f, "expected an array");
            size_t i;
            json_t *e;
            json_array_foreach(v, i, e)
            {
                int rc = encode_value(f, e, o, depth, err);
                if (rc < 0)
                    return rc;
            }
        } else {
            int rc = encode_value(f, v, o, depth, err);
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}

int obs_otlp_json_to_pb(const ProtobufCMessageDescriptor *d, const char *json, size_t len,
                        struct obs_sbuf *out, struct obs_err *err)
{
    json_error_t je;
    json_t *root = json_loadb(json, len, 0, &je);
    if (root == NULL)
        return obs_err_set(err, OBS_EINVAL, "invalid JSON at line %d column %d: %s", je.line,
                           je.column, je.text);
    size_t start = out->len;
    int rc = encode_msg(d, root, out, 0, err);
    json_decref(root);
    if (rc < 0)
        out->len = start;
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* protobuf -> JSON                                                                           */

static int render_msg(const ProtobufCMessage *m, unsigned flags, struct obs_sbuf *o, int depth);

static int put_double(struct obs_sbuf *o, double v)
{
    if (isnan(v))
        return obs_sbuf_puts(o, "\"NaN\"");
    if (isinf(v))
        return obs_sbuf_puts(o, v > 0 ? "\"Infinity\"" : "\"-Infinity\"");
    char buf[40];
    snprintf(buf, sizeof(buf), "%.15g", v);
    if (strtod(buf, NULL) != v)
        snprintf(buf, sizeof(buf), "%.17g", v);
    return obs_sbuf_puts(o, buf);
}

/* Render one value of field f stored at p. */
static int render_value(const ProtobufCFieldDescriptor *f, const void *p, unsigned flags,
                        struct obs_sbuf *o, int depth)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        return obs_sbuf_printf(o, "%" PRId32, *(const int32_t *)p);
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        return obs_sbuf_printf(o, "%" PRIu32, *(const uint32_t *)p);
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        return obs_sbuf_printf(o, "\"%" PRId64 "\"", *(const int64_t *)p);
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        return obs_sbuf_printf(o, "\"%" PRIu64 "\"", *(const uint64_t *)p);
    case PROTOBUF_C_TYPE_BOOL:
        return obs_sbuf_puts(o, *(const protobuf_c_boolean *)p ? "true" : "false");
    case PROTOBUF_C_TYPE_ENUM: {
        int v = *(const int *)p;
        const ProtobufCEnumValue *ev = NULL;
        if (!(flags & OBS_OTLP_JSON_ENUM_INT))
            ev = protobuf_c_enum_descriptor_get_value(f->descriptor, v);
        if (ev)
            return obs_sbuf_json_str(o, ev->name, strlen(ev->name));
        return obs_sbuf_printf(o, "%d", v);
    }
    case PROTOBUF_C_TYPE_FLOAT:
        return put_double(o, *(const float *)p);
    case PROTOBUF_C_TYPE_DOUBLE:
        return put_double(o, *(const double *)p);
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(char *const *)p;
        return obs_sbuf_json_str(o, s ? s : "", s ? strlen(s) : 0);
    }
    case PROTOBUF_C_TYPE_BYTES: {
        const ProtobufCBinaryData *b = p;
        int rc = obs_sbuf_putc(o, '"');
        if (is_hex_id_field(f->name))
            rc |= obs_hex_append(o, b->data, b->len);
        else
            rc |= b64_append(o, b->data, b->len);
        return rc | obs_sbuf_putc(o, '"');
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessage *sub = *(ProtobufCMessage *const *)p;
        if (sub == NULL)
            return obs_sbuf_puts(o, "{}");
        return render_msg(sub, flags, o, depth + 1);
    }
    default:
        return obs_sbuf_puts(o, "null");
    }
}

static size_t elem_size(ProtobufCType t)
{
    switch (t) {
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_DOUBLE:
        return 8;
    case PROTOBUF_C_TYPE_STRING:
    case PROTOBUF_C_TYPE_MESSAGE:
        return sizeof(void *);
    case PROTOBUF_C_TYPE_BYTES:
        return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_BOOL:
        return sizeof(protobuf_c_boolean);
    default:
        return 4;
    }
}

/* True when the proto3 field value at p is its default (and so omitted). */
static int is_default(const ProtobufCFieldDescriptor *f, const void *p)
{
    switch (elem_size(f->type)) {
    case 8:
        if (f->type == PROTOBUF_C_TYPE_DOUBLE)
            return *(const double *)p == 0 && !signbit(*(const double *)p);
        if (f->type == PROTOBUF_C_TYPE_STRING || f->type == PROTOBUF_C_TYPE_MESSAGE) {
            const void *q = *(void *const *)p;
            if (q == NULL)
                return 1;
            return f->type == PROTOBUF_C_TYPE_STRING && *(const char *)q == '\0';
        }
        return *(const uint64_t *)p == 0;
    case 4:
        if (f->type == PROTOBUF_C_TYPE_FLOAT)
            return *(const float *)p == 0;
        return *(const uint32_t *)p == 0;
    default:
        if (f->type == PROTOBUF_C_TYPE_BYTES)
            return ((const ProtobufCBinaryData *)p)->len == 0;
        return 0;
    }
}

static int render_msg(const ProtobufCMessage *m, unsigned flags, struct obs_sbuf *o, int depth)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    const char *base = (const char *)m;
    int first = 1, rc = 0;
    char kb[128];
    if (depth > MAX_DEPTH)
        return obs_sbuf_puts(o, "{}");
    rc |= obs_sbuf_putc(o, '{');
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        const void *p = base + f->offset;
        size_t n = 1;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            n = *(const size_t *)(base + f->quantifier_offset);
            if (n == 0)
                continue;
        } else if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            if (*(const uint32_t *)(base + f->quantifier_offset) != f->id)
                continue;
        } else if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->quantifier_offset &&
                   f->type != PROTOBUF_C_TYPE_MESSAGE && f->type != PROTOBUF_C_TYPE_STRING) {
            if (!*(const protobuf_c_boolean *)(base + f->quantifier_offset))
                continue;
        } else if (is_default(f, p)) {
            continue;
        }
        if (!first)
            rc |= obs_sbuf_putc(o, ',');
        first = 0;
        camel(f->name, kb, sizeof(kb));
        rc |= obs_sbuf_json_str(o, kb, strlen(kb));
        rc |= obs_sbuf_putc(o, ':');
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            const char *arr = *(char *const *)p;
            size_t es = elem_size(f->type);
            rc |= obs_sbuf_putc(o, '[');
            for (size_t k = 0; k < n; k++) {
                if (k)
                    rc |= obs_sbuf_putc(o, ',');
                rc |= render_value(f, arr + k * es, flags, o, depth);
            }
            rc |= obs_sbuf_putc(o, ']');
        } else {
            rc |= render_value(f, p, flags, o, depth);
        }
    }
    rc |= obs_sbuf_putc(o, '}');
    return rc ? OBS_ENOMEM : 0;
}

int obs_otlp_pb_to_json(const ProtobufCMessage *m, unsigned flags, struct obs_sbuf *out)
{
    if (m == NULL)
        return obs_sbuf_puts(out, "{}");
    return render_msg(m, flags, out, 0);
}
