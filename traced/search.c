/*
 * search.c -- Tempo search over the in-memory store: logfmt tags, durations, time range.
 *
 * Semantics (Tempo's /api/search with `tags=`, which Tempo turns into one TraceQL spanset
 * `{ .k1="v1" && .k2="v2" }`): a trace matches when ONE span satisfies every tag. Tag keys:
 *   name            the span name
 *   status          the span status: "error", "ok" or "unset"
 *   kind            the span kind: "server", "client", ... (lowercase, without the prefix)
 *   resource.<k>    a resource attribute only; span.<k> a span attribute only
 *   <k> or .<k>     a span attribute, else a resource attribute (service.name is one)
 * Values compare as text (ints, doubles and bools in their usual text form).
 * minDuration/maxDuration compare with the trace duration (last end - first start);
 * start/end (Unix seconds) keep traces overlapping that range. Results: most recent first.
 */
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/obs_mem.h"
#include "traced/trd.h"

#define MAX_TAGS 32
#define MAX_TAG_LIST 5000

const char *trd_anyvalue_str(const trd_anyvalue *v, char *buf, size_t cap)
{
    if (v == NULL)
        return "";
    switch (v->value_case) {
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_STRING_VALUE:
        return v->string_value ? v->string_value : "";
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_BOOL_VALUE:
        return v->bool_value ? "true" : "false";
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_INT_VALUE:
        snprintf(buf, cap, "%" PRId64, v->int_value);
        return buf;
    case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE_DOUBLE_VALUE:
        snprintf(buf, cap, "%g", v->double_value);
        return buf;
    default:
        return "";
    }
}

/* ---- parsing ------------------------------------------------------------------------- */

int trd_go_duration_ns(const char *s, int64_t *out)
{
    if (s == NULL || *s == '\0')
        return OBS_EINVAL;
    const char *p = s;
    int neg = 0;
    if (*p == '-' || *p == '+')
        neg = *p++ == '-';
    if (strcmp(p, "0") == 0) {
        *out = 0;
        return 0;
    }
    double total = 0;
    while (*p) {
        char *end;
        if (!isdigit((unsigned char)*p) && *p != '.')
            return OBS_EINVAL;
        double v = strtod(p, &end);
        if (end == p)
            return OBS_EINVAL;
        p = end;
        double mult;
        if (strncmp(p, "ns", 2) == 0) {
            mult = 1;
            p += 2;
        } else if (strncmp(p, "us", 2) == 0) {
            mult = 1e3;
            p += 2;
        } else if (strncmp(p, "\xc2\xb5s", 3) == 0) {
            mult = 1e3;
            p += 3;
        } else if (strncmp(p, "ms", 2) == 0) {
            mult = 1e6;
            p += 2;
        } else if (*p == 's') {
            mult = 1e9;
            p++;
        } else if (*p == 'm') {
            mult = 60e9;
            p++;
        } else if (*p == 'h') {
            mult = 3600e9;
            p++;
        } else {
            return OBS_EINVAL; /* a unit is required, as in Go */
        }
        total += v * mult;
        if (total > 9.2e18)
            return OBS_EINVAL;
    }
    *out = (int64_t)(neg ? -total : total);
    return 0;
}

static int add_tag(struct trd_search *q, const char *k, size_t kn, const char *v, size_t vn)
{
    if (q->ntags >= MAX_TAGS)
        return OBS_ELIMIT;
    struct trd_tag *nt = obs_realloc(q->tags, (q->ntags + 1) * sizeof(*nt));
    if (nt == NULL)
        return OBS_ENOMEM;
    q->tags = nt;
    nt[q->ntags].key = obs_strndup(k, kn);
    nt[q->ntags].value = obs_strndup(v, vn);
    if (nt[q->ntags].key == NULL || nt[q->ntags].value == NULL) {
        obs_free(nt[q->ntags].key);
        obs_free(nt[q->ntags].value);
        return OBS_ENOMEM;
    }
    q->ntags++;
    return 0;
}

int trd_search_parse_tags(struct trd_search *q, const char *s, struct obs_err *err)
{
    const char *p = s;
    while (p && *p) {
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '\0')
            break;
        const char *k = p;
        while (*p && *p != '=' && *p != ' ')
            p++;
        size_t kn = (size_t)(p - k);
        if (*p != '=' || kn == 0)
            return obs_err_set(err, OBS_EINVAL, "invalid tags: expected key=value near \"%.40s\"",
                               k);
        p++;
        char val[1024];
        size_t vn = 0;
        if (*p == '"') {
            p++;
            while (*p && *p != '"') {
                if (*p == '\\' && p[1])
                    p++;
                if (vn + 1 >= sizeof(val))
                    return obs_err_set(err, OBS_EINVAL, "invalid tags: value too long");
                val[vn++] = *p++;
            }
            if (*p != '"')
                return obs_err_set(err, OBS_EINVAL, "invalid tags: unterminated quote");
            p++;
        } else {
            while (*p && *p != ' ' && *p != '\t') {
                if (vn + 1 >= sizeof(val))
                    return obs_err_set(err, OBS_EINVAL, "invalid tags: value too long");
                val[vn++] = *p++;
            }
        }
        int rc = add_tag(q, k, kn, val, vn);
        if (rc == OBS_ELIMIT)
            return obs_err_set(err, OBS_EINVAL, "invalid tags: more than %d tags", MAX_TAGS);
        if (rc)
            return obs_err_set(err, rc, "out of memory");
    }
    return 0;
}

void trd_search_deinit(struct trd_search *q)
{
    for (size_t i = 0; i < q->ntags; i++) {
        obs_free(q->tags[i].key);
        obs_free(q->tags[i].value);
    }
    obs_free(q->tags);
    q->tags = NULL;
    q->ntags = 0;
}

/* ---- matching ------------------------------------------------------------------------- */

static int attr_eq(trd_kv *const *kvs, size_t n, const char *key, const char *val)
{
    char buf[64];
    for (size_t i = 0; i < n; i++)
        if (kvs[i]->key && strcmp(kvs[i]->key, key) == 0 &&
            strcmp(trd_anyvalue_str(kvs[i]->value, buf, sizeof(buf)), val) == 0)
            return 1;
    return 0;
}

static const char *status_str(const trd_span *sp)
{
    if (sp->status == NULL)
        return "unset";
    switch (sp->status->code) {
    case OPENTELEMETRY__PROTO__TRACE__V1__STATUS__STATUS_CODE__STATUS_CODE_OK:
        return "ok";
    case OPENTELEMETRY__PROTO__TRACE__V1__STATUS__STATUS_CODE__STATUS_CODE_ERROR:
        return "error";
    default:
        return "unset";
    }
}

static const char *kind_str(int k)
{
    static const char *const names[] = {"unspecified", "internal", "server",
                                        "client",      "producer", "consumer"};
    return k >= 0 && k <= 5 ? names[k] : "unspecified";
}

static int tag_matches(const struct trd_tag *t, const trd_span *sp,
                       const Opentelemetry__Proto__Resource__V1__Resource *res)
{
    const char *k = t->key;
    trd_kv *const *ra = res ? res->attributes : NULL;
    size_t rn = res ? res->n_attributes : 0;
    if (strcmp(k, "name") == 0)
        return strcmp(sp->name ? sp->name : "", t->value) == 0;
    if (strcmp(k, "status") == 0)
        return strcasecmp(status_str(sp), t->value) == 0;
    if (strcmp(k, "kind") == 0)
        return strcasecmp(kind_str(sp->kind), t->value) == 0;
    if (strncmp(k, "resource.", 9) == 0)
        return attr_eq(ra, rn, k + 9, t->value);
    if (strncmp(k, "span.", 5) == 0)
        return attr_eq(sp->attributes, sp->n_attributes, k + 5, t->value);
    if (k[0] == '.')
        k++;
    return attr_eq(sp->attributes, sp->n_attributes, k, t->value) ||
           attr_eq(ra, rn, k, t->value);
}

static int batch_matches(const struct trd_batch *b, const struct trd_search *q)
{
    trd_resource_spans *rs =
        opentelemetry__proto__trace__v1__resource_spans__unpack(NULL, b->len, b->buf);
    if (rs == NULL)
        return 0;
    int hit = 0;
    for (size_t c = 0; c < rs->n_scope_spans && !hit; c++) {
        const Opentelemetry__Proto__Trace__V1__ScopeSpans *ss = rs->scope_spans[c];
        for (size_t i = 0; i < ss->n_spans && !hit; i++) {
            size_t k = 0;
            while (k < q->ntags && tag_matches(&q->tags[k], ss->spans[i], rs->resource))
                k++;
            hit = k == q->ntags;
        }
    }
    opentelemetry__proto__trace__v1__resource_spans__free_unpacked(rs, NULL);
    return hit;
}

int trd_search_match(const struct trd_trace *t, const struct trd_search *q)
{
    int64_t dur = (int64_t)((uint64_t)t->end_ns - (uint64_t)t->start_ns);
    if (q->min_dur_ns > 0 && dur < q->min_dur_ns)
        return 0;
    if (q->max_dur_ns > 0 && dur > q->max_dur_ns)
        return 0;
    if (q->start_s > 0 && t->end_ns < q->start_s * 1000000000LL)
        return 0;
    if (q->end_s > 0 && t->start_ns > q->end_s * 1000000000LL)
        return 0;
    if (q->ntags == 0)
        return 1;
    for (size_t i = 0; i < t->nbatches; i++)
        if (batch_matches(&t->batches[i], q))
            return 1;
    return 0;
}

/* ---- running ------------------------------------------------------------------------- */

struct run_state {
    const struct trd_search *q;
    const struct trd_trace **hits;
    size_t n, cap;
    size_t inspected;
    uint64_t bytes;
    int oom;
};

static int run_one(const struct trd_trace *t, void *arg)
{
    struct run_state *st = arg;
    st->inspected++;
    for (size_t i = 0; i < t->nbatches; i++)
        st->bytes += t->batches[i].len;
    if (!trd_search_match(t, st->q))
        return 0;
    if (st->n == st->cap) {
        size_t nc = st->cap ? st->cap * 2 : 64;
        const struct trd_trace **nh = obs_realloc(st->hits, nc * sizeof(*nh));
        if (nh == NULL) {
            st->oom = 1;
            return 1;
        }
        st->hits = nh;
        st->cap = nc;
    }
    st->hits[st->n++] = t;
    return 0;
}

static int cmp_recent(const void *a, const void *b)
{
    const struct trd_trace *x = *(const struct trd_trace *const *)a;
    const struct trd_trace *y = *(const struct trd_trace *const *)b;
    if (x->start_ns != y->start_ns)
        return x->start_ns > y->start_ns ? -1 : 1;
    return memcmp(x->id, y->id, 16);
}

int trd_search_run(const struct trd_store *s, const struct trd_search *q, struct obs_sbuf *out)
{
    struct run_state st = {.q = q};
    trd_store_foreach(s, run_one, &st);
    if (st.oom) {
        obs_free(st.hits);
        return OBS_ENOMEM;
    }
    if (st.n > 1)
        if (st.n > 1)
            qsort(st.hits, st.n, sizeof(*st.hits), cmp_recent);
    size_t lim = q->limit ? q->limit : 20;
    obs_sbuf_puts(out, "{\"traces\":[");
    for (size_t i = 0; i < st.n && i < lim; i++) {
        const struct trd_trace *t = st.hits[i];
        char id[33];
        trd_trace_id_short(t->id, id);
        const char *svc = t->root_service ? t->root_service : TRD_NO_ROOT;
        const char *nm = t->root_name ? t->root_name : NULL;
        if (i)
            obs_sbuf_putc(out, ',');
        obs_sbuf_printf(out, "{\"traceID\":\"%s\",\"rootServiceName\":", id);
        obs_sbuf_json_str(out, svc, strlen(svc));
        if (nm) {
            obs_sbuf_puts(out, ",\"rootTraceName\":");
            obs_sbuf_json_str(out, nm, strlen(nm));
        }
        int64_t dur_ms = (int64_t)(((uint64_t)t->end_ns - (uint64_t)t->start_ns) / 1000000u);
        obs_sbuf_printf(out, ",\"startTimeUnixNano\":\"%" PRId64 "\",\"durationMs\":%" PRId64 "}",
                        t->start_ns, dur_ms);
    }
    obs_sbuf_printf(out,
                    "],\"metrics\":{\"inspectedTraces\":%zu,\"inspectedBytes\":\"%" PRIu64
                    "\",\"completedJobs\":1,\"totalJobs\":1}}",
                    st.inspected, st.bytes);
    obs_free(st.hits);
    return out->oom ? OBS_ENOMEM : 0;
}

/* ---- tag names / values ------------------------------------------------------------------ */

struct strset {
    char **v;
    size_t n, cap;
    int full;
};

static void strset_add(struct strset *s, const char *x)
{
    for (size_t i = 0; i < s->n; i++) /* small sets; linear is fine up to MAX_TAG_LIST */
        if (strcmp(s->v[i], x) == 0)
            return;
    if (s->n >= MAX_TAG_LIST) {
        s->full = 1;
        return;
    }
    if (s->n == s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 32;
        char **nv = obs_realloc(s->v, nc * sizeof(*nv));
        if (nv == NULL)
            return;
        s->v = nv;
        s->cap = nc;
    }
    char *d = obs_strdup(x);
    if (d)
        s->v[s->n++] = d;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

struct tags_state {
    struct strset set;
    const char *tag; /* NULL: collect names */
};

static void collect_kvs(struct tags_state *st, trd_kv *const *kvs, size_t n)
{
    char buf[64];
    for (size_t i = 0; i < n; i++) {
        if (kvs[i]->key == NULL)
            continue;
        if (st->tag == NULL)
            strset_add(&st->set, kvs[i]->key);
        else if (strcmp(kvs[i]->key, st->tag) == 0)
            strset_add(&st->set, trd_anyvalue_str(kvs[i]->value, buf, sizeof(buf)));
    }
}

static int tags_one(const struct trd_trace *t, void *arg)
{
    struct tags_state *st = arg;
    for (size_t b = 0; b < t->nbatches && !st->set.full; b++) {
        trd_resource_spans *rs = opentelemetry__proto__trace__v1__resource_spans__unpack(
            NULL, t->batches[b].len, t->batches[b].buf);
        if (rs == NULL)
            continue;
        if (rs->resource)
            collect_kvs(st, rs->resource->attributes, rs->resource->n_attributes);
        for (size_t c = 0; c < rs->n_scope_spans; c++)
            for (size_t i = 0; i < rs->scope_spans[c]->n_spans; i++) {
                const trd_span *sp = rs->scope_spans[c]->spans[i];
                collect_kvs(st, sp->attributes, sp->n_attributes);
                if (st->tag && strcmp(st->tag, "name") == 0 && sp->name)
                    strset_add(&st->set, sp->name);
                if (st->tag && strcmp(st->tag, "status") == 0)
                    strset_add(&st->set, status_str(sp));
            }
        opentelemetry__proto__trace__v1__resource_spans__free_unpacked(rs, NULL);
    }
    return st->set.full;
}

static int emit_set(struct strset *s, const char *field, struct obs_sbuf *out)
{
    if (s->n > 1)
        qsort(s->v, s->n, sizeof(*s->v), cmp_str);
    obs_sbuf_printf(out, "{\"%s\":[", field);
    for (size_t i = 0; i < s->n; i++) {
        if (i)
            obs_sbuf_putc(out, ',');
        obs_sbuf_json_str(out, s->v[i], strlen(s->v[i]));
        obs_free(s->v[i]);
    }
    obs_free(s->v);
    obs_sbuf_puts(out, "]}");
    return out->oom ? OBS_ENOMEM : 0;
}

int trd_search_tags(const struct trd_store *s, struct obs_sbuf *out)
{
    struct tags_state st = {{0}, NULL};
    trd_store_foreach(s, tags_one, &st);
    return emit_set(&st.set, "tagNames", out);
}

int trd_search_tag_values(const struct trd_store *s, const char *tag, struct obs_sbuf *out)
{
    struct tags_state st = {{0}, tag};
    if (strncmp(tag, "resource.", 9) == 0)
        st.tag = tag + 9;
    else if (strncmp(tag, "span.", 5) == 0)
        st.tag = tag + 5;
    else if (tag[0] == '.')
        st.tag = tag + 1;
    trd_store_foreach(s, tags_one, &st);
    return emit_set(&st.set, "tagValues", out);
}
