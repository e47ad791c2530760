/*
 * store.c -- in-memory streams, entries and the inverted label index (see store.h).
 *
 * Design: a tenant owns a growable array of streams (id = position) plus two maps: the label
 * hash -> stream chain (collisions are chained and compared label by label), and the inverted
 * index "name\xffvalue" -> postings (ascending stream ids, since ids only grow). Selection
 * intersects the postings of the equality matchers with non-empty values, then checks every
 * matcher on each candidate; with no usable postings it scans all streams.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "logd/store.h"

#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/obs_mem.h"

/* --- matchers ---------------------------------------------------------------------------- */

int lgd_matcher_init(struct lgd_matcher *m, enum lgd_mtype type, const char *name,
                     const char *value, struct obs_err *err)
{
    memset(m, 0, sizeof(*m));
    m->type = type;
    m->name = obs_strdup(name);
    m->value = obs_strdup(value);
    if (!m->name || !m->value) {
        lgd_matcher_deinit(m);
        return obs_err_set(err, OBS_ENOMEM, "out of memory");
    }
    if (type == LGD_M_RE || type == LGD_M_NRE) {
        size_t vl = strlen(value);
        char *pat = obs_malloc(vl + 16);
        if (!pat) {
            lgd_matcher_deinit(m);
            return obs_err_set(err, OBS_ENOMEM, "out of memory");
        }
        snprintf(pat, vl + 16, "^(?:%s)$", value);
        int ec;
        PCRE2_SIZE off;
        pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED,
                                       PCRE2_UTF | PCRE2_MATCH_INVALID_UTF | PCRE2_DOTALL, &ec,
                                       &off, NULL);
        obs_free(pat);
        if (!re) {
            PCRE2_UCHAR msg[160];
            pcre2_get_error_message(ec, msg, sizeof(msg));
            lgd_matcher_deinit(m);
            return obs_err_set(err, OBS_EINVAL, "error parsing regexp: %s: `%s`", (char *)msg,
                               value);
        }
        m->re = re;
        m->md = pcre2_match_data_create_from_pattern(re, NULL);
        if (!m->md) {
            lgd_matcher_deinit(m);
            return obs_err_set(err, OBS_ENOMEM, "out of memory");
        }
    }
    return 0;
}

void lgd_matcher_deinit(struct lgd_matcher *m)
{
    if (!m)
        return;
    obs_free(m->name);
    obs_free(m->value);
    if (m->md)
        pcre2_match_data_free(m->md);
    if (m->re)
        pcre2_code_free(m->re);
    memset(m, 0, sizeof(*m));
}

int lgd_matcher_matches(const struct lgd_matcher *m, const char *value)
{
    if (!value)
        value = "";
    switch (m->type) {
    case LGD_M_EQ: return strcmp(m->value, value) == 0;
    case LGD_M_NEQ: return strcmp(m->value, value) != 0;
    case LGD_M_RE:
    case LGD_M_NRE: {
        int rc = pcre2_match(m->re, (PCRE2_SPTR)value, strlen(value), 0, 0, m->md, NULL);
        return (rc >= 0) == (m->type == LGD_M_RE);
    }
    }
    return 0;
}

/* --- labels ------------------------------------------------------------------------------ */

uint64_t lgd_labels_hash(const struct obs_label *v, size_t n)
{
    struct obs_sbuf b;
    obs_sbuf_init(&b);
    for (size_t i = 0; i < n; i++) {
        obs_sbuf_puts(&b, v[i].name);
        obs_sbuf_putc(&b, '\xff');
        obs_sbuf_puts(&b, v[i].value);
        obs_sbuf_putc(&b, '\xff');
    }
    uint64_t h = lgd_hash(b.p ? b.p : "", b.len);
    obs_sbuf_deinit(&b);
    return h;
}

/* Go strconv.Quote-like quoting: escapes quotes, backslashes and control bytes. */
static void go_quote(struct obs_sbuf *b, const char *s)
{
    obs_sbuf_putc(b, '"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': obs_sbuf_puts(b, "\\\""); break;
        case '\\': obs_sbuf_puts(b, "\\\\"); break;
        case '\n': obs_sbuf_puts(b, "\\n"); break;
        case '\t': obs_sbuf_puts(b, "\\t"); break;
        case '\r': obs_sbuf_puts(b, "\\r"); break;
        default:
            if (*p < 0x20 || *p == 0x7f)
                obs_sbuf_printf(b, "\\x%02x", *p);
            else
                obs_sbuf_putc(b, (char)*p);
        }
    }
    obs_sbuf_putc(b, '"');
}

int lgd_labels_format(const struct obs_label *v, size_t n, struct obs_sbuf *out)
{
    obs_sbuf_putc(out, '{');
    for (size_t i = 0; i < n; i++) {
        if (i)
            obs_sbuf_puts(out, ", ");
        obs_sbuf_puts(out, v[i].name);
        obs_sbuf_putc(out, '=');
        go_quote(out, v[i].value);
    }
    obs_sbuf_putc(out, '}');
    return out->oom ? OBS_ENOMEM : 0;
}

/* --- store ------------------------------------------------------------------------------- */

struct lgd_postings {
    uint32_t *ids;
    size_t n, cap;
};

struct lgd_store *lgd_store_new(void)
{
    struct lgd_store *s = obs_calloc(1, sizeof(*s));
    if (s)
        lgd_map_init(&s->tenants);
    return s;
}

static void stream_free(struct lgd_stream *st)
{
    for (size_t i = 0; i < st->n; i++)
        obs_free(st->e[i].data);
    obs_free(st->e);
    for (size_t i = 0; i < st->nlabels; i++) {
        obs_free((char *)st->labels[i].name);
        obs_free((char *)st->labels[i].value);
    }
    obs_free(st->labels);
    obs_free(st->lstr);
    obs_free(st);
}

static void tenant_free(struct lgd_tenant *t)
{
    for (size_t i = 0; i < t->nstreams; i++)
        stream_free(t->streams[i]);
    obs_free(t->streams);
    lgd_map_deinit(&t->by_hash);
    for (size_t i = 0; i < t->index.cap; i++) {
        struct lgd_postings *p = t->index.slots[i].key ? t->index.slots[i].val : NULL;
        if (p) {
            obs_free(p->ids);
            obs_free(p);
        }
    }
    lgd_map_deinit(&t->index);
    obs_free(t->name);
    obs_free(t);
}

void lgd_store_free(struct lgd_store *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->tenants.cap; i++)
        if (s->tenants.slots[i].key)
            tenant_free(s->tenants.slots[i].val);
    lgd_map_deinit(&s->tenants);
    obs_free(s);
}

struct lgd_tenant *lgd_store_tenant(struct lgd_store *s, const char *name, int create)
{
    size_t nl = strlen(name);
    struct lgd_tenant *t = lgd_map_get(&s->tenants, name, nl);
    if (t || !create)
        return t;
    t = obs_calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->name = obs_strdup(name);
    lgd_map_init(&t->by_hash);
    lgd_map_init(&t->index);
    if (!t->name || lgd_map_put(&s->tenants, name, nl, t) != 0) {
        tenant_free(t);
        return NULL;
    }
    return t;
}

static int labels_equal(const struct obs_label *a, size_t na, const struct obs_label *b,
                        size_t nb)
{
    if (na != nb)
        return 0;
    for (size_t i = 0; i < na; i++)
        if (strcmp(a[i].name, b[i].name) != 0 || strcmp(a[i].value, b[i].value) != 0)
            return 0;
    return 1;
}

static int postings_add(struct lgd_tenant *t, const char *name, const char *value, uint32_t id)
{
    struct obs_sbuf k;
    obs_sbuf_init(&k);
    obs_sbuf_puts(&k, name);
    obs_sbuf_putc(&k, '\xff');
    obs_sbuf_puts(&k, value);
    if (k.oom) {
        obs_sbuf_deinit(&k);
        return OBS_ENOMEM;
    }
    void **slot = lgd_map_slot(&t->index, k.p, k.len);
    obs_sbuf_deinit(&k);
    if (!slot)
        return OBS_ENOMEM;
    struct lgd_postings *p = *slot;
    if (!p) {
        p = obs_calloc(1, sizeof(*p));
        if (!p)
            return OBS_ENOMEM;
        *slot = p;
    }
    if (p->n == p->cap) {
        size_t nc = p->cap ? p->cap * 2 : 4;
        uint32_t *ni = obs_realloc(p->ids, nc * sizeof(*ni));
        if (!ni)
            return OBS_ENOMEM;
        p->ids = ni;
        p->cap = nc;
    }
    p->ids[p->n++] = id;
    return 0;
}

struct lgd_stream *lgd_tenant_stream(struct lgd_tenant *t, const struct obs_label *sorted,
                                     size_t n, int create)
{
    uint64_t h = lgd_labels_hash(sorted, n);
    void **slot = lgd_map_slot(&t->by_hash, &h, sizeof(h));
    if (!slot)
        return NULL;
    for (struct lgd_stream *st = *slot; st; st = st->next_same_hash)
        if (labels_equal(st->labels, st->nlabels, sorted, n))
            return st;
    if (!create)
        return NULL;
    if (t->nstreams == t->cap) {
        size_t nc = t->cap ? t->cap * 2 : 16;
        struct lgd_stream **ns = obs_realloc(t->streams, nc * sizeof(*ns));
        if (!ns)
            return NULL;
        t->streams = ns;
        t->cap = nc;
    }
    struct lgd_stream *st = obs_calloc(1, sizeof(*st));
    if (!st)
        return NULL;
    st->labels = obs_calloc(n ? n : 1, sizeof(*st->labels));
    if (!st->labels) {
        obs_free(st);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        st->labels[i].name = obs_strdup(sorted[i].name);
        st->labels[i].value = obs_strdup(sorted[i].value);
        st->nlabels++;
        if (!st->labels[i].name || !st->labels[i].value) {
            stream_free(st);
            return NULL;
        }
    }
    struct obs_sbuf b;
    obs_sbuf_init(&b);
    if (lgd_labels_format(sorted, n, &b) != 0) {
        obs_sbuf_deinit(&b);
        stream_free(st);
        return NULL;
    }
    st->lstr = obs_sbuf_take(&b, NULL);
    st->hash = h;
    st->id = (uint32_t)t->nstreams;
    for (size_t i = 0; i < n; i++) {
        if (postings_add(t, sorted[i].name, sorted[i].value, st->id) != 0) {
            /* The stream is not published; a partial posting list only yields candidates
             * that are re-checked, and the id will be reused by the next stream. */
            stream_free(st);
            return NULL;
        }
    }
    /* Re-fetch the slot: postings_add touched another map, but by_hash is unchanged. */
    st->next_same_hash = *slot;
    *slot = st;
    t->streams[t->nstreams++] = st;
    return st;
}

size_t lgd_stream_lower_bound(const struct lgd_stream *st, int64_t ts)
{
    size_t lo = 0, hi = st->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (st->e[mid].ts < ts)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

void lgd_entry_meta(const struct lgd_entry *e, uint32_t i, const char **name, const char **value)
{
    const char *p = e->data + e->len + 1;
    for (uint32_t k = 0;; k++) {
        const char *nm = p;
        const char *v = nm + strlen(nm) + 1;
        if (k == i) {
            *name = nm;
            *value = v;
            return;
        }
        p = v + strlen(v) + 1;
    }
}

int lgd_stream_append(struct lgd_tenant *t, struct lgd_stream *st, int64_t ts,
                      const char *line, size_t len, const struct obs_label *meta,
                      size_t nmeta)
{
    /* Position: append fast path, else binary search (out-of-order accepted). */
    size_t pos = st->n;
    if (st->n && ts < st->e[st->n - 1].ts)
        pos = lgd_stream_lower_bound(st, ts);
    /* Exact duplicates (same ts and line) are dropped, as Loki does. */
    for (size_t i = pos; i < st->n && st->e[i].ts == ts; i++)
        if (st->e[i].len == len && memcmp(st->e[i].data, line, len) == 0)
            return OBS_EEXIST;
    for (size_t i = pos; i > 0 && st->e[i - 1].ts == ts; i--)
        if (st->e[i - 1].len == len && memcmp(st->e[i - 1].data, line, len) == 0)
            return OBS_EEXIST;
    if (st->n == st->cap) {
        size_t nc = st->cap ? st->cap * 2 : 8;
        struct lgd_entry *ne = obs_realloc(st->e, nc * sizeof(*ne));
        if (!ne)
            return OBS_ENOMEM;
        st->e = ne;
        st->cap = nc;
    }
    size_t sz = len + 1;
    for (size_t i = 0; i < nmeta; i++)
        sz += strlen(meta[i].name) + strlen(meta[i].value) + 2;
    char *d = obs_malloc(sz);
    if (!d)
        return OBS_ENOMEM;
    memcpy(d, line, len);
    d[len] = '\0';
    char *p = d + len + 1;
    for (size_t i = 0; i < nmeta; i++) {
        size_t a = strlen(meta[i].name) + 1, b = strlen(meta[i].value) + 1;
        memcpy(p, meta[i].name, a);
        memcpy(p + a, meta[i].value, b);
        p += a + b;
    }
    if (pos < st->n)
        memmove(&st->e[pos + 1], &st->e[pos], (st->n - pos) * sizeof(st->e[0]));
    st->e[pos].ts = ts;
    st->e[pos].len = (uint32_t)len;
    st->e[pos].nmeta = (uint32_t)nmeta;
    st->e[pos].data = d;
    if (st->n == 0 || ts < st->mint)
        st->mint = ts;
    if (st->n == 0 || ts > st->maxt)
        st->maxt = ts;
    st->n++;
    st->bytes += len;
    t->entries++;
    t->bytes += len;
    return 0;
}

static const struct lgd_postings *postings_get(const struct lgd_tenant *t, const char *name,
                                               const char *value)
{
    struct obs_sbuf k;
    obs_sbuf_init(&k);
    obs_sbuf_puts(&k, name);
    obs_sbuf_putc(&k, '\xff');
    obs_sbuf_puts(&k, value);
    const struct lgd_postings *p = k.oom ? NULL : lgd_map_get(&t->index, k.p, k.len);
    obs_sbuf_deinit(&k);
    return p;
}

static const char *label_get(const struct lgd_stream *st, const char *name)
{
    for (size_t i = 0; i < st->nlabels; i++)
        if (strcmp(st->labels[i].name, name) == 0)
            return st->labels[i].value;
    return NULL;
}

long lgd_tenant_select(struct lgd_tenant *t, const struct lgd_matcher *m, size_t nm,
                       int64_t mint, int64_t maxt, struct lgd_stream ***out)
{
    *out = NULL;
    /* Pick the shortest postings list among usable equality matchers. */
    const struct lgd_postings *best = NULL;
    int have_eq = 0;
    for (size_t i = 0; i < nm; i++) {
        if (m[i].type != LGD_M_EQ || m[i].value[0] == '\0')
            continue;
        const struct lgd_postings *p = postings_get(t, m[i].name, m[i].value);
        if (!p)
            return 0; /* nothing carries this pair */
        if (!have_eq || p->n < best->n)
            best = p;
        have_eq = 1;
    }
    size_t ncand = have_eq ? best->n : t->nstreams;
    struct lgd_stream **res = obs_malloc((ncand ? ncand : 1) * sizeof(*res));
    if (!res)
        return -1;
    long n = 0;
    for (size_t c = 0; c < ncand; c++) {
        size_t id = have_eq ? best->ids[c] : c;
        if (id >= t->nstreams)
            continue; /* left by a stream whose creation failed half-way */
        struct lgd_stream *st = t->streams[id];
        if (st->n == 0 || st->maxt < mint || st->mint > maxt)
            continue;
        size_t i;
        for (i = 0; i < nm; i++)
            if (!lgd_matcher_matches(&m[i], label_get(st, m[i].name)))
                break;
        if (i == nm)
            res[n++] = st;
    }
    *out = res;
    return n;
}
