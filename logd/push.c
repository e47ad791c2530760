/*
 * push.c -- push body decoders and the WAL record codec (see push.h).
 *
 * The protobuf path keeps the unpacked protobuf-c message alive and points entries at its
 * strings; the JSON path does the same with the jansson tree. Only arrays (and the label text
 * rebuilt from a JSON "stream" object) are allocated, from the push's arena.
 */
#include "logd/push.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/obs_arena.h"
#include "core/obs_mem.h"
#include "core/obs_time.h"
#include "logd/store.h"
#include "proto/loki_push.pb-c.h"

static int push_init(struct lgd_push *p)
{
    memset(p, 0, sizeof(*p));
    p->arena = obs_arena_new(0);
    return p->arena ? 0 : OBS_ENOMEM;
}

void lgd_push_deinit(struct lgd_push *p)
{
    if (!p)
        return;
    if (p->pb)
        logproto__push_request__free_unpacked(p->pb, NULL);
    if (p->json)
        json_decref(p->json);
    obs_arena_free(p->arena);
    memset(p, 0, sizeof(*p));
}

int lgd_push_decode_proto(const uint8_t *buf, size_t len, struct lgd_push *out,
                          struct obs_err *err)
{
    if (push_init(out) != 0)
        return obs_err_set(err, OBS_ENOMEM, "out of memory");
    Logproto__PushRequest *req = logproto__push_request__unpack(NULL, len, buf);
    if (!req)
        return obs_err_set(err, OBS_EINVAL, "proto: cannot parse invalid wire-format data");
    out->pb = req;
    out->s = obs_arena_calloc(out->arena, (req->n_streams ? req->n_streams : 1) *
                                              sizeof(*out->s));
    if (!out->s)
        return obs_err_set(err, OBS_ENOMEM, "out of memory");
    for (size_t i = 0; i < req->n_streams; i++) {
        Logproto__StreamAdapter *sa = req->streams[i];
        struct lgd_push_stream *s = &out->s[out->n++];
        s->labels = sa->labels ? sa->labels : "";
        s->labels_len = strlen(s->labels);
        s->e = obs_arena_calloc(out->arena, (sa->n_entries ? sa->n_entries : 1) * sizeof(*s->e));
        if (!s->e)
            return obs_err_set(err, OBS_ENOMEM, "out of memory");
        for (size_t k = 0; k < sa->n_entries; k++) {
            Logproto__EntryAdapter *ea = sa->entries[k];
            struct lgd_push_entry *e = &s->e[s->n++];
            if (ea->timestamp)
                e->ts = ea->timestamp->seconds * 1000000000LL + ea->timestamp->nanos;
            e->line = ea->line ? ea->line : "";
            e->len = strlen(e->line);
            if (ea->n_structuredmetadata) {
                e->meta = obs_arena_calloc(out->arena,
                                           ea->n_structuredmetadata * sizeof(*e->meta));
                if (!e->meta)
                    return obs_err_set(err, OBS_ENOMEM, "out of memory");
                for (size_t m = 0; m < ea->n_structuredmetadata; m++) {
                    Logproto__LabelPairAdapter *lp = ea->structuredmetadata[m];
                    e->meta[m].name = lp->name ? lp->name : "";
                    e->meta[m].value = lp->value ? lp->value : "";
                }
                e->nmeta = ea->n_structuredmetadata;
            }
            out->nentries++;
            out->nbytes += e->len;
        }
    }
    return 0;
}

/* Timestamp from a JSON value: a string of Unix ns (or any obs_time_parse_ns form), or an
 * integer of Unix ns. */
static int json_ts(json_t *v, int64_t *ns)
{
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        char *end;
        long long x = strtoll(s, &end, 10);
        if (*s && !*end) {
            *ns = x;
            return 0;
        }
        return obs_time_parse_ns(s, ns);
    }
    if (json_is_integer(v)) {
        *ns = (int64_t)json_integer_value(v);
        return 0;
    }
    return OBS_EINVAL;
}

static int json_stream_labels(struct lgd_push *p, json_t *obj, struct lgd_push_stream *s,
                              struct obs_err *err)
{
    /* Rebuild selector text {k="v", ...} so the distributor validates it like protobuf. */
    struct obs_sbuf b;
    obs_sbuf_init(&b);
    obs_sbuf_putc(&b, '{');
    const char *k;
    json_t *v;
    int first = 1;
    json_object_foreach(obj, k, v) {
        if (!json_is_string(v)) {
            obs_sbuf_deinit(&b);
            return obs_err_set(err, OBS_EINVAL, "stream label %s: value must be a string", k);
        }
        if (!first)
            obs_sbuf_puts(&b, ", ");
        first = 0;
        obs_sbuf_puts(&b, k);
        obs_sbuf_putc(&b, '=');
        struct obs_label one = {k, json_string_value(v)};
        struct obs_sbuf q;
        obs_sbuf_init(&q);
        lgd_labels_format(&one, 1, &q); /* {k="v"}: reuse its Go quoting of the value */
        const char *eq = q.p ? strchr(q.p, '=') : NULL;
        if (eq)
            obs_sbuf_append(&b, eq + 1, q.len - (size_t)(eq + 1 - q.p) - 1);
        obs_sbuf_deinit(&q);
    }
    obs_sbuf_putc(&b, '}');
    if (b.oom) {
        obs_sbuf_deinit(&b);
        return obs_err_set(err, OBS_ENOMEM, "out of memory");
    }
    s->labels = obs_arena_strndup(p->arena, b.p, b.len);
    s->labels_len = b.len;
    obs_sbuf_deinit(&b);
    return s->labels ? 0 : obs_err_set(err, OBS_ENOMEM, "out of memory");
}

int lgd_push_decode_json(const uint8_t *buf, size_t len, struct lgd_push *out,
                         struct obs_err *err)
{
    if (push_init(out) != 0)
        return obs_err_set(err, OBS_ENOMEM, "out of memory");
    json_error_t je;
    json_t *root = json_loadb((const char *)buf, len, 0, &je);
    if (!root)
        return obs_err_set(err, OBS_EINVAL, "invalid JSON push request: %s at line %d, col %d",
                           je.text, je.line, je.column);
    out->json = root;
    json_t *streams = json_is_object(root) ? json_object_get(root, "streams") : NULL;
    if (!json_is_array(streams))
        return obs_err_set(err, OBS_EINVAL,
                           "invalid JSON push request: expected an object with a \"streams\" array");
    size_t ns = json_array_size(streams);
    out->s = obs_arena_calloc(out->arena, (ns ? ns : 1) * sizeof(*out->s));
    if (!out->s)
        return obs_err_set(err, OBS_ENOMEM, "out of memory");
    for (size_t i = 0; i < ns; i++) {
        json_t *js = json_array_get(streams, i);
        if (!json_is_object(js))
            return obs_err_set(err, OBS_EINVAL, "invalid JSON push request: stream %zu is not "
                                                "an object", i);
        struct lgd_push_stream *s = &out->s[out->n++];
        json_t *lab = json_object_get(js, "stream");
        json_t *vals = json_object_get(js, "values");
        int legacy = 0;
        if (!lab && json_is_string(json_object_get(js, "labels"))) {
            legacy = 1;
            s->labels = json_string_value(json_object_get(js, "labels"));
            s->labels_len = strlen(s->labels);
            vals = json_object_get(js, "entries");
        } else if (json_is_object(lab)) {
            int rc = json_stream_labels(out, lab, s, err);
            if (rc != 0)
                return rc;
        } else {
            return obs_err_set(err, OBS_EINVAL, "invalid JSON push request: stream %zu has no "
                                                "\"stream\" object", i);
        }
        if (!json_is_array(vals))
            return obs_err_set(err, OBS_EINVAL, "invalid JSON push request: stream %zu has no "
                                                "\"values\" array", i);
        size_t nv = json_array_size(vals);
        s->e = obs_arena_calloc(out->arena, (nv ? nv : 1) * sizeof(*s->e));
        if (!s->e)
            return obs_err_set(err, OBS_ENOMEM, "out of memory");
        for (size_t k = 0; k < nv; k++) {
            json_t *v = json_array_get(vals, k);
            json_t *jts, *jline, *jmeta = NULL;
            if (legacy) {
                jts = json_object_get(v, "ts");
                jline = json_object_get(v, "line");
            } else {
                size_t na = json_is_array(v) ? json_array_size(v) : 0;
                if (na < 2 || na > 3)
                    return obs_err_set(err, OBS_EINVAL,
                                       "invalid JSON push request: value %zu of stream %zu must be "
                                       "[\"<unix ns>\", \"<line>\"(, {metadata})]", k, i);
                jts = json_array_get(v, 0);
                jline = json_array_get(v, 1);
                jmeta = na == 3 ? json_array_get(v, 2) : NULL;
            }
            struct lgd_push_entry *e = &s->e[s->n++];
            if (json_ts(jts, &e->ts) != 0)
                return obs_err_set(err, OBS_EINVAL,
                                   "invalid JSON push request: bad timestamp in value %zu of "
                                   "stream %zu", k, i);
            if (!json_is_string(jline))
                return obs_err_set(err, OBS_EINVAL, "invalid JSON push request: line of value %zu "
                                                    "of stream %zu is not a string", k, i);
            e->line = json_string_value(jline);
            e->len = json_string_length(jline);
            if (jmeta) {
                if (!json_is_object(jmeta))
                    return obs_err_set(err, OBS_EINVAL, "invalid JSON push request: structured "
                                                        "metadata must be an object");
                size_t nm = json_object_size(jmeta);
                e->meta = obs_arena_calloc(out->arena, (nm ? nm : 1) * sizeof(*e->meta));
                if (!e->meta)
                    return obs_err_set(err, OBS_ENOMEM, "out of memory");
                const char *mk;
                json_t *mv;
                json_object_foreach(jmeta, mk, mv) {
                    if (!json_is_string(mv))
                        return obs_err_set(err, OBS_EINVAL, "invalid JSON push request: structured "
                                                            "metadata values must be strings");
                    e->meta[e->nmeta].name = mk;
                    e->meta[e->nmeta].value = json_string_value(mv);
                    e->nmeta++;
                }
            }
            out->nentries++;
            out->nbytes += e->len;
        }
    }
    return 0;
}

/* --- WAL records ------------------------------------------------------------------------- */

static void put_str(struct obs_sbuf *b, const char *s, size_t n)
{
    obs_sbuf_uvarint(b, n);
    obs_sbuf_append(b, s, n);
}

int lgd_wal_encode(const char *tenant, const struct lgd_batch_stream *s, size_t n,
                   struct obs_sbuf *out)
{
    struct obs_sbuf lb;
    obs_sbuf_init(&lb);
    obs_sbuf_putc(out, 1);
    put_str(out, tenant, strlen(tenant));
    obs_sbuf_uvarint(out, n);
    for (size_t i = 0; i < n; i++) {
        const char *ls = s[i].lstr;
        if (!ls) {
            obs_sbuf_reset(&lb);
            lgd_labels_format(s[i].labels, s[i].nlabels, &lb);
            ls = lb.p ? lb.p : "{}";
        }
        put_str(out, ls, strlen(ls));
        obs_sbuf_uvarint(out, s[i].n);
        for (size_t k = 0; k < s[i].n; k++) {
            const struct lgd_push_entry *e = &s[i].e[k];
            obs_sbuf_varint(out, e->ts);
            put_str(out, e->line, e->len);
            obs_sbuf_uvarint(out, e->nmeta);
            for (size_t m = 0; m < e->nmeta; m++) {
                put_str(out, e->meta[m].name, strlen(e->meta[m].name));
                put_str(out, e->meta[m].value, strlen(e->meta[m].value));
            }
        }
    }
    int oom = out->oom || lb.oom;
    obs_sbuf_deinit(&lb);
    return oom ? OBS_ENOMEM : 0;
}

struct rd {
    const uint8_t *p, *end;
    int bad;
};

static uint64_t rd_uv(struct rd *r)
{
    uint64_t v = 0;
    size_t n = r->bad ? 0 : obs_uvarint_decode(r->p, r->end, &v);
    if (!n)
        r->bad = 1;
    r->p += n;
    return v;
}

static int64_t rd_v(struct rd *r)
{
    int64_t v = 0;
    size_t n = r->bad ? 0 : obs_varint_decode(r->p, r->end, &v);
    if (!n)
        r->bad = 1;
    r->p += n;
    return v;
}

/* A NUL-terminated arena copy of the next length-prefixed string. */
static char *rd_str(struct rd *r, struct obs_arena *a, size_t *len)
{
    uint64_t n = rd_uv(r);
    if (r->bad || n > (uint64_t)(r->end - r->p)) {
        r->bad = 1;
        return NULL;
    }
    char *s = obs_arena_strndup(a, (const char *)r->p, (size_t)n);
    if (!s)
        r->bad = 2;
    r->p += n;
    if (len)
        *len = (size_t)n;
    return s;
}

int lgd_wal_decode(const uint8_t *rec, size_t len, const char **tenant, struct lgd_push *out)
{
    if (push_init(out) != 0)
        return OBS_ENOMEM;
    struct rd r = {rec, rec + len, 0};
    if (len < 1 || rec[0] != 1)
        return OBS_ECORRUPT;
    r.p++;
    *tenant = rd_str(&r, out->arena, NULL);
    uint64_t ns = rd_uv(&r);
    if (r.bad || ns > len)
        return r.bad == 2 ? OBS_ENOMEM : OBS_ECORRUPT;
    out->s = obs_arena_calloc(out->arena, (ns ? ns : 1) * sizeof(*out->s));
    if (!out->s)
        return OBS_ENOMEM;
    for (uint64_t i = 0; i < ns && !r.bad; i++) {
        struct lgd_push_stream *s = &out->s[out->n++];
        s->labels = rd_str(&r, out->arena, &s->labels_len);
        uint64_t ne = rd_uv(&r);
        if (r.bad || ne > len)
            break;
        s->e = obs_arena_calloc(out->arena, (ne ? ne : 1) * sizeof(*s->e));
        if (!s->e)
            return OBS_ENOMEM;
        for (uint64_t k = 0; k < ne && !r.bad; k++) {
            struct lgd_push_entry *e = &s->e[s->n++];
            e->ts = rd_v(&r);
            e->line = rd_str(&r, out->arena, &e->len);
            uint64_t nm = rd_uv(&r);
            if (r.bad || nm > len)
                break;
            if (nm) {
                e->meta = obs_arena_calloc(out->arena, nm * sizeof(*e->meta));
                if (!e->meta)
                    return OBS_ENOMEM;
                for (uint64_t m = 0; m < nm && !r.bad; m++) {
                    e->meta[m].name = rd_str(&r, out->arena, NULL);
                    e->meta[m].value = rd_str(&r, out->arena, NULL);
                }
                e->nmeta = (size_t)nm;
            }
            out->nentries++;
            out->nbytes += e->len;
        }
    }
    if (r.bad)
        return r.bad == 2 ? OBS_ENOMEM : OBS_ECORRUPT;
    return 0;
}
