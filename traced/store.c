/*
 * store.c -- traced's in-memory trace store: trace id -> batches of that trace's spans.
 *
 * trd_store_add() splits every ResourceSpans of an export request by trace id: spans are
 * sorted by (trace id, scope index, position) and each run of one trace id is packed as a new
 * ResourceSpans that points at the original resource, scopes and spans (protobuf-c packs
 * through pointers, nothing is deep-copied). The packed bytes are the stored batch. The
 * per-trace summary (start, end, root service/name) is updated from the same spans.
 *
 * The hash table is chained, keyed by the first 8 bytes of the trace id (already random),
 * and doubles when the load passes 1. Eviction (trd_store_trim) drops the traces whose first
 * batch is the oldest, found by a linear scan (only when over the limit).
 * Loop thread only.
 */
#include <stdlib.h>
#include <string.h>

#include "codec/obs_otlp_json.h"
#include "core/obs_mem.h"
#include "traced/trd.h"

struct trd_store {
    struct trd_trace **buckets;
    size_t nbuckets;
    size_t ntraces;
    size_t nspans;
    uint64_t seq;
};

static uint64_t id_hash(const uint8_t id[16])
{
    uint64_t h;
    memcpy(&h, id + 8, 8);
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h;
}

struct trd_store *trd_store_new(void)
{
    struct trd_store *s = obs_calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->nbuckets = 1024;
    s->buckets = obs_calloc(s->nbuckets, sizeof(*s->buckets));
    if (s->buckets == NULL) {
        obs_free(s);
        return NULL;
    }
    return s;
}

static void trace_free(struct trd_trace *t)
{
    for (size_t i = 0; i < t->nbatches; i++)
        obs_free(t->batches[i].buf);
    obs_free(t->batches);
    obs_free(t->root_service);
    obs_free(t->root_name);
    obs_free(t);
}

void trd_store_free(struct trd_store *s)
{
    if (s == NULL)
        return;
    for (size_t b = 0; b < s->nbuckets; b++) {
        struct trd_trace *t = s->buckets[b];
        while (t) {
            struct trd_trace *n = t->next;
            trace_free(t);
            t = n;
        }
    }
    obs_free(s->buckets);
    obs_free(s);
}

const struct trd_trace *trd_store_get(const struct trd_store *s, const uint8_t id[16])
{
    for (struct trd_trace *t = s->buckets[id_hash(id) & (s->nbuckets - 1)]; t; t = t->next)
        if (memcmp(t->id, id, 16) == 0)
            return t;
    return NULL;
}

static void grow(struct trd_store *s)
{
    size_t nb = s->nbuckets * 2;
    struct trd_trace **b = obs_calloc(nb, sizeof(*b));
    if (b == NULL)
        return; /* keep the longer chains */
    for (size_t i = 0; i < s->nbuckets; i++) {
        struct trd_trace *t = s->buckets[i];
        while (t) {
            struct trd_trace *n = t->next;
            size_t k = id_hash(t->id) & (nb - 1);
            t->next = b[k];
            b[k] = t;
            t = n;
        }
    }
    obs_free(s->buckets);
    s->buckets = b;
    s->nbuckets = nb;
}

static struct trd_trace *get_or_create(struct trd_store *s, const uint8_t id[16])
{
    struct trd_trace *t = (struct trd_trace *)trd_store_get(s, id);
    if (t)
        return t;
    t = obs_calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    memcpy(t->id, id, 16);
    t->start_ns = INT64_MAX;
    t->seq = ++s->seq;
    size_t k = id_hash(id) & (s->nbuckets - 1);
    t->next = s->buckets[k];
    s->buckets[k] = t;
    s->ntraces++;
    if (s->ntraces > s->nbuckets)
        grow(s);
    return t;
}

int trd_export_validate(const trd_export_req *req, struct obs_err *err)
{
    for (size_t r = 0; r < req->n_resource_spans; r++) {
        const trd_resource_spans *rs = req->resource_spans[r];
        for (size_t c = 0; c < rs->n_scope_spans; c++) {
            const Opentelemetry__Proto__Trace__V1__ScopeSpans *ss = rs->scope_spans[c];
            for (size_t i = 0; i < ss->n_spans; i++) {
                const trd_span *sp = ss->spans[i];
                static const uint8_t zero[16];
                if (sp->trace_id.len != 16 || memcmp(sp->trace_id.data, zero, 16) == 0)
                    return obs_err_set(err, OBS_EINVAL,
                                       "invalid trace id: must be 16 non-zero bytes (got %zu)",
                                       sp->trace_id.len);
                if (sp->span_id.len != 8)
                    return obs_err_set(err, OBS_EINVAL, "invalid span id: must be 8 bytes (got %zu)",
                                       sp->span_id.len);
                if (sp->parent_span_id.len != 0 && sp->parent_span_id.len != 8)
                    return obs_err_set(err, OBS_EINVAL, "invalid parent span id length %zu",
                                       sp->parent_span_id.len);
            }
        }
    }
    return 0;
}

/* service.name of a resource, or NULL. */
static const char *service_name(const Opentelemetry__Proto__Resource__V1__Resource *res)
{
    if (res == NULL)
        return NULL;
    for (size_t i = 0; i < res->n_attributes; i++) {
        const trd_kv *kv = res->attributes[i];
        if (kv->key && strcmp(kv->key, "service.name") == 0 && kv->value &&
            kv->value->value_case == OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE)
            return kv->value->string_value;
    }
    return NULL;
}

struct span_ref {
    const trd_span *sp;
    size_t scope; /* index of its ScopeSpans */
    size_t pos;   /* position in the request, for a stable sort */
};

static int cmp_ref(const void *a, const void *b)
{
    const struct span_ref *x = a, *y = b;
    int c = memcmp(x->sp->trace_id.data, y->sp->trace_id.data, 16);
    if (c)
        return c;
    return x->pos < y->pos ? -1 : x->pos > y->pos;
}

/* Pack spans refs[0..n) (one trace) of rs as a ResourceSpans and append it to the trace. */
static int add_group(struct trd_store *s, const trd_resource_spans *rs, struct span_ref *refs,
                     size_t n, const trd_span **spbuf,
                     Opentelemetry__Proto__Trace__V1__ScopeSpans *ssbuf,
                     Opentelemetry__Proto__Trace__V1__ScopeSpans **ssptr)
{
    struct trd_trace *t = get_or_create(s, refs[0].sp->trace_id.data);
    if (t == NULL)
        return OBS_ENOMEM;
    /* refs are in request order within the group, so scopes come out grouped in order */
    size_t nss = 0;
    for (size_t i = 0; i < n; i++) {
        spbuf[i] = refs[i].sp;
        if (i == 0 || refs[i].scope != refs[i - 1].scope) {
            const Opentelemetry__Proto__Trace__V1__ScopeSpans *orig =
                rs->scope_spans[refs[i].scope];
            opentelemetry__proto__trace__v1__scope_spans__init(&ssbuf[nss]);
            ssbuf[nss].scope = orig->scope;
            ssbuf[nss].schema_url = orig->schema_url;
            ssbuf[nss].spans = (trd_span **)&spbuf[i];
            ssbuf[nss].n_spans = 0;
            ssptr[nss] = &ssbuf[nss];
            nss++;
        }
        ssbuf[nss - 1].n_spans++;
    }
    trd_resource_spans one;
    opentelemetry__proto__trace__v1__resource_spans__init(&one);
    one.resource = rs->resource;
    one.schema_url = rs->schema_url;
    one.scope_spans = ssptr;
    one.n_scope_spans = nss;
    size_t len = opentelemetry__proto__trace__v1__resource_spans__get_packed_size(&one);
    uint8_t *buf = obs_malloc(len ? len : 1);
    if (buf == NULL)
        return OBS_ENOMEM;
    opentelemetry__proto__trace__v1__resource_spans__pack(&one, buf);
    if (t->nbatches == t->capbatches) {
        size_t nc = t->capbatches ? t->capbatches * 2 : 4;
        struct trd_batch *nb = obs_realloc(t->batches, nc * sizeof(*nb));
        if (nb == NULL) {
            obs_free(buf);
            return OBS_ENOMEM;
        }
        t->batches = nb;
        t->capbatches = nc;
    }
    t->batches[t->nbatches].buf = buf;
    t->batches[t->nbatches].len = len;
    t->nbatches++;
    t->nspans += n;
    s->nspans += n;
    /* summary */
    const char *svc = service_name(rs->resource);
    for (size_t i = 0; i < n; i++) {
        const trd_span *sp = refs[i].sp;
        if ((int64_t)sp->start_time_unix_nano < t->start_ns)
            t->start_ns = (int64_t)sp->start_time_unix_nano;
        if ((int64_t)sp->end_time_unix_nano > t->end_ns)
            t->end_ns = (int64_t)sp->end_time_unix_nano;
        if (sp->parent_span_id.len == 0 && t->root_name == NULL) {
            t->root_name = obs_strdup(sp->name ? sp->name : "");
            t->root_service = obs_strdup(svc ? svc : "<root span has no service.name>");
        }
    }
    if (t->end_ns < t->start_ns)
        t->end_ns = t->start_ns;
    return 0;
}

int trd_store_add(struct trd_store *s, const trd_export_req *req, size_t *nspans)
{
    int rc = 0;
    size_t total = 0;
    for (size_t r = 0; r < req->n_resource_spans && rc == 0; r++) {
        const trd_resource_spans *rs = req->resource_spans[r];
        size_t n = 0;
        for (size_t c = 0; c < rs->n_scope_spans; c++)
            n += rs->scope_spans[c]->n_spans;
        if (n == 0)
            continue;
        struct span_ref *refs = obs_malloc(n * sizeof(*refs));
        const trd_span **spbuf = obs_malloc(n * sizeof(*spbuf));
        Opentelemetry__Proto__Trace__V1__ScopeSpans *ssbuf = obs_malloc(n * sizeof(*ssbuf));
        Opentelemetry__Proto__Trace__V1__ScopeSpans **ssptr = obs_malloc(n * sizeof(*ssptr));
        if (refs == NULL || spbuf == NULL || ssbuf == NULL || ssptr == NULL) {
            rc = OBS_ENOMEM;
        } else {
            size_t k = 0;
            for (size_t c = 0; c < rs->n_scope_spans; c++)
                for (size_t i = 0; i < rs->scope_spans[c]->n_spans; i++) {
                    refs[k].sp = rs->scope_spans[c]->spans[i];
                    refs[k].scope = c;
                    refs[k].pos = k;
                    k++;
                }
            qsort(refs, n, sizeof(*refs), cmp_ref);
            for (size_t i = 0; i < n && rc == 0;) {
                size_t j = i + 1;
                while (j < n && memcmp(refs[j].sp->trace_id.data, refs[i].sp->trace_id.data, 16) == 0)
                    j++;
                rc = add_group(s, rs, refs + i, j - i, spbuf, ssbuf, ssptr);
                i = j;
            }
            total += n;
        }
        obs_free(refs);
        obs_free(spbuf);
        obs_free(ssbuf);
        obs_free(ssptr);
    }
    if (nspans)
        *nspans = total;
    return rc;
}

static void unlink_trace(struct trd_store *s, struct trd_trace *t)
{
    struct trd_trace **pp = &s->buckets[id_hash(t->id) & (s->nbuckets - 1)];
    while (*pp && *pp != t)
        pp = &(*pp)->next;
    if (*pp)
        *pp = t->next;
    s->ntraces--;
    s->nspans -= t->nspans;
}

static int cmp_seq(const void *a, const void *b)
{
    const struct trd_trace *x = *(struct trd_trace *const *)a, *y = *(struct trd_trace *const *)b;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

void trd_store_trim(struct trd_store *s, size_t max)
{
    if (max == 0 || s->ntraces <= max)
        return;
    /* Collect and sort by seq, then drop the oldest (rare; O(n log n)). */
    size_t n = s->ntraces, k = 0;
    struct trd_trace **all = obs_malloc(n * sizeof(*all));
    if (all == NULL)
        return;
    for (size_t b = 0; b < s->nbuckets; b++)
        for (struct trd_trace *t = s->buckets[b]; t; t = t->next)
            all[k++] = t;
    qsort(all, k, sizeof(*all), cmp_seq);
    size_t drop = s->ntraces - max;
    for (size_t i = 0; i < drop && i < k; i++) {
        unlink_trace(s, all[i]);
        trace_free(all[i]);
    }
    obs_free(all);
}

size_t trd_store_ntraces(const struct trd_store *s)
{
    return s->ntraces;
}

size_t trd_store_nspans(const struct trd_store *s)
{
    return s->nspans;
}

void trd_store_foreach(const struct trd_store *s, int (*fn)(const struct trd_trace *, void *),
                       void *arg)
{
    for (size_t b = 0; b < s->nbuckets; b++)
        for (const struct trd_trace *t = s->buckets[b]; t; t = t->next)
            if (fn(t, arg))
                return;
}

/* ---- rendering ------------------------------------------------------------------------ */

int trd_trace_encode_pb(const struct trd_trace *t, struct obs_sbuf *out)
{
    for (size_t i = 0; i < t->nbatches; i++) {
        /* TracesData.resource_spans = 1, length-delimited */
        if (obs_sbuf_putc(out, 0x0a) || obs_sbuf_uvarint(out, t->batches[i].len) ||
            obs_sbuf_append(out, t->batches[i].buf, t->batches[i].len))
            return OBS_ENOMEM;
    }
    return 0;
}

int trd_trace_encode_json(const struct trd_trace *t, int v2, struct obs_sbuf *out)
{
    obs_sbuf_puts(out, v2 ? "{\"trace\":{\"resourceSpans\":[" : "{\"batches\":[");
    for (size_t i = 0; i < t->nbatches; i++) {
        trd_resource_spans *rs = opentelemetry__proto__trace__v1__resource_spans__unpack(
            NULL, t->batches[i].len, t->batches[i].buf);
        if (rs == NULL)
            return OBS_ECORRUPT;
        if (i)
            obs_sbuf_putc(out, ',');
        int rc = obs_otlp_pb_to_json(&rs->base, 0, out);
        opentelemetry__proto__trace__v1__resource_spans__free_unpacked(rs, NULL);
        if (rc)
            return rc;
    }
    obs_sbuf_puts(out, v2 ? "]}}" : "]}");
    return out->oom ? OBS_ENOMEM : 0;
}

int trd_trace_id_parse(const char *hex, uint8_t id[16])
{
    size_t n = hex ? strlen(hex) : 0;
    if (n == 0 || n > 32)
        return OBS_EINVAL;
    char buf[33];
    memset(buf, '0', 32 - n);
    memcpy(buf + 32 - n, hex, n);
    buf[32] = '\0';
    if (obs_hex_decode(buf, 32, id, 16) != 16)
        return OBS_EINVAL;
    return 0;
}

void trd_trace_id_short(const uint8_t id[16], char out[33])
{
    static const char hx[] = "0123456789abcdef";
    char full[33];
    for (int i = 0; i < 16; i++) {
        full[2 * i] = hx[id[i] >> 4];
        full[2 * i + 1] = hx[id[i] & 15];
    }
    full[32] = '\0';
    const char *p = full;
    while (*p == '0' && p[1])
        p++;
    memcpy(out, p, strlen(p) + 1);
}
