/*
 * engine.c -- LogQL evaluation (see engine.h).
 *
 * Pipeline: each entry runs the stages in order against a small per-query context holding
 * the labels extracted so far (offsets into one scratch buffer, reset per entry, so the hot
 * path allocates nothing once warm). Label lookups check extracted labels newest first, then
 * the stream's labels. A parsed label that collides with a stream label is renamed
 * <name>_extracted, as Loki does; a line that is not JSON gets __error__="JSONParserErr".
 *
 * Metric evaluation works on a matrix: series x steps with a presence bit per point, so range
 * aggregations, vector aggregations and binary operators share one representation and the
 * instant case is simply one step.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "logd/engine.h"

#include <ctype.h>
#include <jansson.h>
#include <math.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/obs_mem.h"
#include "logd/map.h"

/* --- pipeline ---------------------------------------------------------------------------- */

struct pl {
    const struct lgd_logsel *l;
    const struct obs_label *sl; /* stream labels (sorted) */
    size_t nsl;
    struct obs_sbuf sb;         /* extracted label strings */
    size_t *off;                /* pairs of offsets (name, value) into sb */
    size_t noff, capoff;
    struct obs_sbuf fmt[2];     /* line_format outputs (alternating) */
    int curfmt;
    const char *line;
    size_t len;
    int oom;
};

static void pl_init(struct pl *p, const struct lgd_logsel *l)
{
    memset(p, 0, sizeof(*p));
    p->l = l;
    obs_sbuf_init(&p->sb);
    obs_sbuf_init(&p->fmt[0]);
    obs_sbuf_init(&p->fmt[1]);
}

static void pl_deinit(struct pl *p)
{
    obs_sbuf_deinit(&p->sb);
    obs_sbuf_deinit(&p->fmt[0]);
    obs_sbuf_deinit(&p->fmt[1]);
    obs_free(p->off);
}

static const char *stream_label(const struct pl *p, const char *name)
{
    for (size_t i = 0; i < p->nsl; i++)
        if (strcmp(p->sl[i].name, name) == 0)
            return p->sl[i].value;
    return NULL;
}

static const char *pl_get(const struct pl *p, const char *name)
{
    for (size_t i = p->noff; i >= 2; i -= 2)
        if (strcmp(p->sb.p + p->off[i - 2], name) == 0)
            return p->sb.p + p->off[i - 1];
    return stream_label(p, name);
}

/* Add an extracted label; name is sanitised to [a-zA-Z0-9_] and renamed on collision. */
static void pl_extract(struct pl *p, const char *name, size_t nlen, const char *val, size_t vlen)
{
    if (p->noff + 2 > p->capoff) {
        size_t nc = p->capoff ? p->capoff * 2 : 16;
        size_t *no = obs_realloc(p->off, nc * sizeof(*no));
        if (!no) {
            p->oom = 1;
            return;
        }
        p->off = no;
        p->capoff = nc;
    }
    size_t noff = p->sb.len;
    if (nlen == 0)
        return;
    if (isdigit((unsigned char)name[0]))
        obs_sbuf_putc(&p->sb, '_');
    for (size_t i = 0; i < nlen; i++) {
        char c = name[i];
        obs_sbuf_putc(&p->sb, isalnum((unsigned char)c) || c == '_' ? c : '_');
    }
    obs_sbuf_putc(&p->sb, '\0');
    if (stream_label(p, p->sb.p + noff)) {
        p->sb.len--;
        obs_sbuf_puts(&p->sb, "_extracted");
        obs_sbuf_putc(&p->sb, '\0');
    }
    size_t voff = p->sb.len;
    obs_sbuf_append(&p->sb, val, vlen);
    obs_sbuf_putc(&p->sb, '\0');
    if (p->sb.oom) {
        p->oom = 1;
        return;
    }
    p->off[p->noff++] = noff;
    p->off[p->noff++] = voff;
}

static void json_flatten(struct pl *p, json_t *obj, struct obs_sbuf *prefix)
{
    const char *k;
    json_t *v;
    json_object_foreach(obj, k, v) {
        size_t plen = prefix->len;
        if (plen)
            obs_sbuf_putc(prefix, '_');
        obs_sbuf_puts(prefix, k);
        char num[64];
        switch (json_typeof(v)) {
        case JSON_OBJECT: json_flatten(p, v, prefix); break;
        case JSON_STRING:
            pl_extract(p, prefix->p, prefix->len, json_string_value(v), json_string_length(v));
            break;
        case JSON_INTEGER: {
            int n = snprintf(num, sizeof(num), "%lld", (long long)json_integer_value(v));
            pl_extract(p, prefix->p, prefix->len, num, (size_t)n);
            break;
        }
        case JSON_REAL: {
            int n = obs_fmt_float(num, sizeof(num), json_real_value(v));
            pl_extract(p, prefix->p, prefix->len, num, (size_t)n);
            break;
        }
        case JSON_TRUE: pl_extract(p, prefix->p, prefix->len, "true", 4); break;
        case JSON_FALSE: pl_extract(p, prefix->p, prefix->len, "false", 5); break;
        default: break; /* arrays and null are not extracted */
        }
        prefix->len = plen;
        if (prefix->p)
            prefix->p[plen] = '\0';
    }
}

static void parse_json(struct pl *p)
{
    json_error_t jerr;
    json_t *root = json_loadb(p->line, p->len, 0, &jerr);
    if (!root || !json_is_object(root)) {
        pl_extract(p, "__error__", 9, "JSONParserErr", 13);
        json_decref(root);
        return;
    }
    struct obs_sbuf prefix;
    obs_sbuf_init(&prefix);
    json_flatten(p, root, &prefix);
    obs_sbuf_deinit(&prefix);
    json_decref(root);
}

static void parse_logfmt(struct pl *p)
{
    const char *s = p->line;
    size_t n = p->len, i = 0;
    struct obs_sbuf v;
    obs_sbuf_init(&v);
    while (i < n) {
        while (i < n && (s[i] == ' ' || s[i] == '\t'))
            i++;
        size_t ks = i;
        while (i < n && s[i] != '=' && s[i] != ' ' && s[i] != '\t' && s[i] != '"')
            i++;
        size_t kl = i - ks;
        if (kl == 0) {
            i++;
            continue;
        }
        obs_sbuf_reset(&v);
        if (i < n && s[i] == '=') {
            i++;
            if (i < n && s[i] == '"') {
                i++;
                while (i < n && s[i] != '"') {
                    if (s[i] == '\\' && i + 1 < n) {
                        char e = s[i + 1];
                        obs_sbuf_putc(&v, e == 'n' ? '\n' : e == 't' ? '\t' : e);
                        i += 2;
                        continue;
                    }
                    obs_sbuf_putc(&v, s[i++]);
                }
                i++;
            } else {
                size_t vs = i;
                while (i < n && s[i] != ' ' && s[i] != '\t')
                    i++;
                obs_sbuf_append(&v, s + vs, i - vs);
            }
        }
        pl_extract(p, s + ks, kl, v.p ? v.p : "", v.len);
    }
    obs_sbuf_deinit(&v);
}

/* Numeric value of a label: plain float, or a Go duration in seconds when want_dur. */
static int label_number(const char *v, int want_dur, double *out)
{
    if (!v || !*v)
        return -1;
    char *end;
    double d = strtod(v, &end);
    if (*end == '\0') {
        *out = d;
        return 0;
    }
    if (want_dur) {
        int64_t ns;
        size_t l = strlen(v);
        if (lgd_duration_lex(v, l, &ns) == l) {
            *out = (double)ns / 1e9;
            return 0;
        }
    }
    return -1;
}

static void line_format(struct pl *p, const struct lgd_stage *s)
{
    struct obs_sbuf *o = &p->fmt[p->curfmt];
    p->curfmt ^= 1;
    obs_sbuf_reset(o);
    const char *t = s->str, *end = s->str + s->len;
    while (t < end) {
        const char *open = memmem(t, (size_t)(end - t), "{{", 2);
        if (!open) {
            obs_sbuf_append(o, t, (size_t)(end - t));
            break;
        }
        obs_sbuf_append(o, t, (size_t)(open - t));
        const char *close = memmem(open, (size_t)(end - open), "}}", 2);
        if (!close) {
            obs_sbuf_append(o, open, (size_t)(end - open));
            break;
        }
        const char *a = open + 2, *b = close;
        while (a < b && isspace((unsigned char)*a))
            a++;
        while (b > a && isspace((unsigned char)b[-1]))
            b--;
        if (a < b && *a == '.') {
            char name[128];
            size_t nl = (size_t)(b - a - 1);
            if (nl < sizeof(name)) {
                memcpy(name, a + 1, nl);
                name[nl] = '\0';
                const char *v = strcmp(name, "__line__") == 0 ? NULL : pl_get(p, name);
                if (strcmp(name, "__line__") == 0)
                    obs_sbuf_append(o, p->line, p->len);
                else if (v)
                    obs_sbuf_puts(o, v);
            }
        }
        t = close + 2;
    }
    if (o->oom) {
        p->oom = 1;
        return;
    }
    p->line = o->p ? o->p : "";
    p->len = o->len;
}

/* Run the pipeline on one line; 1 = keep. p->line/len hold the (possibly rewritten) line. */
static int pl_run(struct pl *p, const char *line, size_t len)
{
    p->line = line;
    p->len = len;
    p->noff = 0;
    obs_sbuf_reset(&p->sb);
    const struct lgd_logsel *l = p->l;
    for (size_t i = 0; i < l->nst; i++) {
        const struct lgd_stage *s = &l->st[i];
        switch (s->kind) {
        case LGD_ST_LINE: {
            int hit;
            if (s->op == LGD_LF_CONTAINS || s->op == LGD_LF_NCONTAINS)
                hit = s->len == 0 || memmem(p->line, p->len, s->str, s->len) != NULL;
            else
                hit = pcre2_match(s->re, (PCRE2_SPTR)p->line, p->len, 0, 0, s->md, NULL) >= 0;
            if (hit != (s->op == LGD_LF_CONTAINS || s->op == LGD_LF_RE))
                return 0;
            break;
        }
        case LGD_ST_JSON: parse_json(p); break;
        case LGD_ST_LOGFMT: parse_logfmt(p); break;
        case LGD_ST_LABEL:
            if (!s->numeric) {
                if (!lgd_matcher_matches(&s->m, pl_get(p, s->m.name)))
                    return 0;
            } else {
                double v;
                if (label_number(pl_get(p, s->label), s->duration, &v) != 0)
                    return 0;
                int ok;
                switch (s->op) {
                case LGD_CMP_EQ: ok = v == s->num; break;
                case LGD_CMP_NE: ok = v != s->num; break;
                case LGD_CMP_GT: ok = v > s->num; break;
                case LGD_CMP_GE: ok = v >= s->num; break;
                case LGD_CMP_LT: ok = v < s->num; break;
                default: ok = v <= s->num; break;
                }
                if (!ok)
                    return 0;
            }
            break;
        case LGD_ST_LINEFMT: line_format(p, s); break;
        }
        if (p->oom)
            return 0;
    }
    return 1;
}

static int label_cmp(const void *a, const void *b)
{
    return strcmp(((const struct obs_label *)a)->name, ((const struct obs_label *)b)->name);
}

/* The entry's full label set after the pipeline: stream labels plus extracted ones (newest
 * wins, empty values dropped), sorted. *v is obs_malloc'd; strings borrowed from p. */
static int pl_labels(const struct pl *p, struct obs_label **v, size_t *n)
{
    size_t cap = p->nsl + p->noff / 2;
    struct obs_label *r = obs_malloc((cap ? cap : 1) * sizeof(*r));
    if (!r)
        return OBS_ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < p->nsl; i++)
        r[k++] = p->sl[i];
    for (size_t i = p->noff; i >= 2; i -= 2) {
        const char *nm = p->sb.p + p->off[i - 2];
        size_t j;
        for (j = 0; j < k; j++)
            if (strcmp(r[j].name, nm) == 0)
                break;
        if (j < k)
            continue; /* a newer extraction of the same name already taken */
        r[k].name = nm;
        r[k].value = p->sb.p + p->off[i - 1];
        k++;
    }
    size_t w = 0;
    for (size_t i = 0; i < k; i++)
        if (r[i].value[0])
            r[w++] = r[i];
    qsort(r, w, sizeof(*r), label_cmp);
    *v = r;
    *n = w;
    return 0;
}

int lgd_engine_filter_line(const struct lgd_logsel *l, const struct obs_label *stream_labels,
                           size_t nlabels, const char *line, size_t len,
                           struct obs_sbuf *labels_out)
{
    struct pl p;
    pl_init(&p, l);
    p.sl = stream_labels;
    p.nsl = nlabels;
    int keep = pl_run(&p, line, len);
    if (keep && labels_out) {
        struct obs_label *v;
        size_t n;
        if (pl_labels(&p, &v, &n) == 0) {
            lgd_labels_format(v, n, labels_out);
            obs_free(v);
        }
    }
    pl_deinit(&p);
    return keep;
}

/* --- label sets (owned copies) ----------------------------------------------------------- */

struct lset {
    char *key;            /* canonical text */
    struct obs_label *l;  /* owned strings */
    size_t n;
};

static void lset_free(struct lset *s)
{
    obs_free(s->key);
    for (size_t i = 0; i < s->n; i++) {
        obs_free((char *)s->l[i].name);
        obs_free((char *)s->l[i].value);
    }
    obs_free(s->l);
    memset(s, 0, sizeof(*s));
}

static int lset_copy(struct lset *d, const struct obs_label *v, size_t n, const char *key)
{
    memset(d, 0, sizeof(*d));
    d->l = obs_calloc(n ? n : 1, sizeof(*d->l));
    if (!d->l)
        return OBS_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        d->l[i].name = obs_strdup(v[i].name);
        d->l[i].value = obs_strdup(v[i].value);
        d->n++;
        if (!d->l[i].name || !d->l[i].value) {
            lset_free(d);
            return OBS_ENOMEM;
        }
    }
    if (key) {
        d->key = obs_strdup(key);
    } else {
        struct obs_sbuf b;
        obs_sbuf_init(&b);
        lgd_labels_format(v, n, &b);
        d->key = b.oom ? NULL : obs_sbuf_take(&b, NULL);
        obs_sbuf_deinit(&b);
    }
    if (!d->key) {
        lset_free(d);
        return OBS_ENOMEM;
    }
    return 0;
}

static void json_labels(struct obs_sbuf *o, const struct obs_label *v, size_t n)
{
    obs_sbuf_putc(o, '{');
    for (size_t i = 0; i < n; i++) {
        if (i)
            obs_sbuf_putc(o, ',');
        obs_sbuf_json_str(o, v[i].name, strlen(v[i].name));
        obs_sbuf_putc(o, ':');
        obs_sbuf_json_str(o, v[i].value, strlen(v[i].value));
    }
    obs_sbuf_putc(o, '}');
}

/* --- log queries ------------------------------------------------------------------------- */

struct cand {
    int64_t ts;
    const char *line;
    size_t len;
    char *owned;   /* copy when the pipeline rewrote the line */
    size_t grp;
    size_t seq;
    size_t next;   /* next candidate of the same group in output order */
};

struct lq {
    struct cand *c;
    size_t n, cap;
    struct lset *g;
    size_t ng, capg;
    struct lgd_map gmap; /* key -> group index + 1 */
    int forward;
};

static int cand_cmp_fwd(const void *a, const void *b)
{
    const struct cand *x = a, *y = b;
    if (x->ts != y->ts)
        return x->ts < y->ts ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int cand_cmp_bwd(const void *a, const void *b)
{
    const struct cand *x = a, *y = b;
    if (x->ts != y->ts)
        return x->ts > y->ts ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Group index for a label set (created on first use), or (size_t)-1 on OOM. */
static size_t lq_group(struct lq *q, const struct obs_label *v, size_t n, const char *key)
{
    struct obs_sbuf kb;
    obs_sbuf_init(&kb);
    if (!key) {
        lgd_labels_format(v, n, &kb);
        if (kb.oom) {
            obs_sbuf_deinit(&kb);
            return (size_t)-1;
        }
        key = kb.p;
    }
    size_t kl = strlen(key);
    uintptr_t gi = (uintptr_t)lgd_map_get(&q->gmap, key, kl);
    if (gi) {
        obs_sbuf_deinit(&kb);
        return gi - 1;
    }
    if (q->ng == q->capg) {
        size_t nc = q->capg ? q->capg * 2 : 16;
        struct lset *ng = obs_realloc(q->g, nc * sizeof(*ng));
        if (!ng) {
            obs_sbuf_deinit(&kb);
            return (size_t)-1;
        }
        q->g = ng;
        q->capg = nc;
    }
    if (lset_copy(&q->g[q->ng], v, n, key) != 0 ||
        lgd_map_put(&q->gmap, key, kl, (void *)(uintptr_t)(q->ng + 1)) != 0) {
        obs_sbuf_deinit(&kb);
        return (size_t)-1;
    }
    obs_sbuf_deinit(&kb);
    return q->ng++;
}

static int lq_add(struct lq *q, int64_t ts, const char *line, size_t len, int copy, size_t grp)
{
    if (q->n == q->cap) {
        size_t nc = q->cap ? q->cap * 2 : 64;
        struct cand *ncand = obs_realloc(q->c, nc * sizeof(*ncand));
        if (!ncand)
            return OBS_ENOMEM;
        q->c = ncand;
        q->cap = nc;
    }
    struct cand *c = &q->c[q->n];
    memset(c, 0, sizeof(*c));
    c->ts = ts;
    c->len = len;
    c->grp = grp;
    c->seq = q->n;
    if (copy) {
        c->owned = obs_malloc(len + 1);
        if (!c->owned)
            return OBS_ENOMEM;
        memcpy(c->owned, line, len);
        c->owned[len] = '\0';
        c->line = c->owned;
    } else {
        c->line = line;
    }
    q->n++;
    return 0;
}

int lgd_engine_logs(struct lgd_tenant *t, const struct lgd_expr *e, int64_t start_ns,
                    int64_t end_ns, size_t limit, int forward, struct obs_sbuf *out,
                    struct lgd_qstats *stt, struct obs_err *err)
{
    struct lq q;
    memset(&q, 0, sizeof(q));
    lgd_map_init(&q.gmap);
    q.forward = forward;
    struct lgd_stream **sel = NULL;
    long nsel = 0;
    int rc = 0;
    struct pl p;
    pl_init(&p, &e->log);
    if (t && end_ns > start_ns && limit > 0) {
        nsel = lgd_tenant_select(t, e->log.m, e->log.nm, start_ns, end_ns - 1, &sel);
        if (nsel < 0) {
            rc = OBS_ENOMEM;
            goto done;
        }
    }
    stt->streams += (uint64_t)nsel;
    int rewrites = 0;
    for (size_t i = 0; i < e->log.nst; i++)
        rewrites |= e->log.st[i].kind == LGD_ST_LINEFMT;
    for (long si = 0; si < nsel; si++) {
        struct lgd_stream *st = sel[si];
        p.sl = st->labels;
        p.nsl = st->nlabels;
        size_t lo = lgd_stream_lower_bound(st, start_ns);
        size_t hi = lgd_stream_lower_bound(st, end_ns); /* exclusive */
        size_t got = 0;
        size_t sgrp = (size_t)-1;
        for (size_t k = 0; k < hi - lo && got < limit; k++) {
            const struct lgd_entry *en = &st->e[forward ? lo + k : hi - 1 - k];
            stt->lines++;
            stt->bytes += en->len;
            if (!pl_run(&p, en->data, en->len)) {
                if (p.oom) {
                    rc = OBS_ENOMEM;
                    goto done;
                }
                continue;
            }
            size_t g;
            if (e->log.has_parser) {
                struct obs_label *v;
                size_t n;
                if (pl_labels(&p, &v, &n) != 0) {
                    rc = OBS_ENOMEM;
                    goto done;
                }
                g = lq_group(&q, v, n, NULL);
                obs_free(v);
            } else {
                if (sgrp == (size_t)-1)
                    sgrp = lq_group(&q, st->labels, st->nlabels, st->lstr);
                g = sgrp;
            }
            if (g == (size_t)-1 || lq_add(&q, en->ts, p.line, p.len, rewrites, g) != 0) {
                rc = OBS_ENOMEM;
                goto done;
            }
            got++;
        }
    }
    if (q.n > 1)
        qsort(q.c, q.n, sizeof(*q.c), forward ? cand_cmp_fwd : cand_cmp_bwd);
    size_t keep = q.n < limit ? q.n : limit;
    stt->returned += keep;
    /* Chain candidates per group in output order; groups appear in first-seen order. */
    size_t *head = obs_malloc((q.ng ? q.ng : 1) * sizeof(size_t));
    size_t *tail = obs_malloc((q.ng ? q.ng : 1) * sizeof(size_t));
    size_t *order = obs_malloc((q.ng ? q.ng : 1) * sizeof(size_t));
    if (!head || !tail || !order) {
        obs_free(head);
        obs_free(tail);
        obs_free(order);
        rc = OBS_ENOMEM;
        goto done;
    }
    size_t nord = 0;
    for (size_t g = 0; g < q.ng; g++)
        head[g] = (size_t)-1;
    for (size_t i = 0; i < keep; i++) {
        struct cand *c = &q.c[i];
        c->next = (size_t)-1;
        if (head[c->grp] == (size_t)-1) {
            head[c->grp] = i;
            order[nord++] = c->grp;
        } else {
            q.c[tail[c->grp]].next = i;
        }
        tail[c->grp] = i;
    }
    obs_sbuf_puts(out, "\"resultType\":\"streams\",\"result\":[");
    for (size_t oi = 0; oi < nord; oi++) {
        size_t g = order[oi];
        if (oi)
            obs_sbuf_putc(out, ',');
        obs_sbuf_puts(out, "{\"stream\":");
        json_labels(out, q.g[g].l, q.g[g].n);
        obs_sbuf_puts(out, ",\"values\":[");
        for (size_t i = head[g], first = 1; i != (size_t)-1; i = q.c[i].next, first = 0) {
            if (!first)
                obs_sbuf_putc(out, ',');
            obs_sbuf_printf(out, "[\"%lld\",", (long long)q.c[i].ts);
            obs_sbuf_json_str(out, q.c[i].line, q.c[i].len);
            obs_sbuf_putc(out, ']');
        }
        obs_sbuf_puts(out, "]}");
    }
    obs_sbuf_putc(out, ']');
    obs_free(head);
    obs_free(tail);
    obs_free(order);
    if (out->oom)
        rc = OBS_ENOMEM;
done:
    pl_deinit(&p);
    obs_free(sel);
    for (size_t i = 0; i < q.n; i++)
        obs_free(q.c[i].owned);
    obs_free(q.c);
    for (size_t i = 0; i < q.ng; i++)
        lset_free(&q.g[i]);
    obs_free(q.g);
    lgd_map_deinit(&q.gmap);
    if (rc == OBS_ENOMEM)
        obs_err_set(err, rc, "out of memory");
    return rc;
}

/* --- metric queries ---------------------------------------------------------------------- */

struct ser {
    struct lset ls;
    double *v;
    uint8_t *has;
};

struct mat {
    struct ser *s;
    size_t n, cap;
    int scalar;     /* a scalar: values in sv */
    double *sv;
};

struct mctx {
    struct lgd_tenant *t;
    int64_t start, step;
    size_t nsteps;
    struct lgd_qstats *st;
    struct obs_err *err;
};

static void mat_free(struct mat *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n; i++) {
        lset_free(&m->s[i].ls);
        obs_free(m->s[i].v);
        obs_free(m->s[i].has);
    }
    obs_free(m->s);
    obs_free(m->sv);
    obs_free(m);
}

/* Append a series (labels copied) with no points; returns it or NULL on OOM. */
static struct ser *mat_add(struct mat *m, size_t nsteps, const struct obs_label *v, size_t n,
                           const char *key)
{
    if (m->n == m->cap) {
        size_t nc = m->cap ? m->cap * 2 : 8;
        struct ser *ns = obs_realloc(m->s, nc * sizeof(*ns));
        if (!ns)
            return NULL;
        m->s = ns;
        m->cap = nc;
    }
    struct ser *s = &m->s[m->n];
    memset(s, 0, sizeof(*s));
    s->v = obs_calloc(nsteps, sizeof(double));
    s->has = obs_calloc(nsteps, 1);
    if (!s->v || !s->has || lset_copy(&s->ls, v, n, key) != 0) {
        obs_free(s->v);
        obs_free(s->has);
        return NULL;
    }
    m->n++;
    return s;
}

static struct mat *mat_new(void) { return obs_calloc(1, sizeof(struct mat)); }

static struct mat *eval(struct mctx *c, const struct lgd_expr *e);

/* Samples of one series for a range aggregation. */
struct samples {
    size_t ser;       /* index in the result matrix */
    int64_t *ts;
    double *v;
    size_t n, cap;
};

static int samples_push(struct samples *s, int64_t ts, double v)
{
    if (s->n == s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 64;
        int64_t *nt = obs_realloc(s->ts, nc * sizeof(*nt));
        if (!nt)
            return OBS_ENOMEM;
        s->ts = nt;
        double *nv = obs_realloc(s->v, nc * sizeof(*nv));
        if (!nv)
            return OBS_ENOMEM;
        s->v = nv;
        s->cap = nc;
    }
    s->ts[s->n] = ts;
    s->v[s->n] = v;
    s->n++;
    return 0;
}

/* Aggregate samples[lo, hi) with the range function; range in seconds. */
static double range_fn(int fn, const double *v, size_t lo, size_t hi, double range_s)
{
    size_t n = hi - lo;
    double sum = 0, mn = INFINITY, mx = -INFINITY;
    for (size_t i = lo; i < hi; i++) {
        sum += v[i];
        if (v[i] < mn)
            mn = v[i];
        if (v[i] > mx)
            mx = v[i];
    }
    switch (fn) {
    case LGD_R_COUNT: return (double)n;
    case LGD_R_RATE: return sum / range_s; /* count rate (v=1) or unwrapped sum rate */
    case LGD_R_BYTES: return sum;
    case LGD_R_BYTES_RATE: return sum / range_s;
    case LGD_R_SUM: return sum;
    case LGD_R_AVG: return sum / (double)n;
    case LGD_R_MIN: return mn;
    case LGD_R_MAX: return mx;
    case LGD_R_FIRST: return v[lo];
    case LGD_R_LAST: return v[hi - 1];
    case LGD_R_STDDEV:
    case LGD_R_STDVAR: {
        double mean = sum / (double)n, acc = 0;
        for (size_t i = lo; i < hi; i++)
            acc += (v[i] - mean) * (v[i] - mean);
        acc /= (double)n;
        return fn == LGD_R_STDDEV ? sqrt(acc) : acc;
    }
    case LGD_R_RATE_COUNTER: {
        double inc = 0;
        for (size_t i = lo + 1; i < hi; i++)
            inc += v[i] >= v[i - 1] ? v[i] - v[i - 1] : v[i];
        return inc / range_s;
    }
    default: return (double)n;
    }
}

static struct mat *eval_range(struct mctx *c, const struct lgd_expr *e)
{
    struct mat *m = mat_new();
    struct samples *sm = NULL;
    size_t nsm = 0, capsm = 0;
    struct lgd_map smap;
    lgd_map_init(&smap);
    struct lgd_stream **sel = NULL;
    long nsel = 0;
    struct pl p;
    pl_init(&p, &e->log);
    if (!m)
        goto nomem;
    int64_t end = c->start + (int64_t)(c->nsteps - 1) * c->step;
    int64_t lo_ts = c->start - e->offset_ns - e->range_ns + 1; /* exclusive lower bound + 1 */
    int64_t hi_ts = end - e->offset_ns;
    if (c->t) {
        nsel = lgd_tenant_select(c->t, e->log.m, e->log.nm, lo_ts, hi_ts, &sel);
        if (nsel < 0)
            goto nomem;
    }
    c->st->streams += (uint64_t)nsel;
    for (long si = 0; si < nsel; si++) {
        struct lgd_stream *st = sel[si];
        p.sl = st->labels;
        p.nsl = st->nlabels;
        size_t sidx = (size_t)-1;
        for (size_t k = lgd_stream_lower_bound(st, lo_ts); k < st->n && st->e[k].ts <= hi_ts;
             k++) {
            const struct lgd_entry *en = &st->e[k];
            c->st->lines++;
            c->st->bytes += en->len;
            if (!pl_run(&p, en->data, en->len)) {
                if (p.oom)
                    goto nomem;
                continue;
            }
            double val = e->fn == LGD_R_BYTES || e->fn == LGD_R_BYTES_RATE ? (double)en->len : 1;
            if (e->log.unwrap) {
                char *endp;
                const char *uv = pl_get(&p, e->log.unwrap);
                if (!uv || !*uv)
                    continue;
                val = strtod(uv, &endp);
                if (*endp) {
                    int64_t ns;
                    size_t ul = strlen(uv);
                    if (lgd_duration_lex(uv, ul, &ns) != ul)
                        continue; /* not a number: sample dropped */
                    val = (double)ns / 1e9;
                }
            }
            size_t idx;
            if (!e->log.has_parser && sidx != (size_t)-1) {
                idx = sidx;
            } else {
                struct obs_label *v = NULL;
                size_t n = 0;
                const char *key = NULL;
                struct obs_sbuf kb;
                obs_sbuf_init(&kb);
                if (e->log.has_parser) {
                    if (pl_labels(&p, &v, &n) != 0)
                        goto nomem;
                    lgd_labels_format(v, n, &kb);
                    key = kb.p;
                } else {
                    key = st->lstr;
                }
                if (!key) {
                    obs_free(v);
                    goto nomem;
                }
                void **slot = lgd_map_slot(&smap, key, strlen(key));
                if (!slot) {
                    obs_free(v);
                    obs_sbuf_deinit(&kb);
                    goto nomem;
                }
                if (!*slot) {
                    if (nsm == capsm) {
                        size_t nc = capsm ? capsm * 2 : 16;
                        struct samples *ns = obs_realloc(sm, nc * sizeof(*ns));
                        if (!ns) {
                            obs_free(v);
                            obs_sbuf_deinit(&kb);
                            goto nomem;
                        }
                        sm = ns;
                        capsm = nc;
                    }
                    memset(&sm[nsm], 0, sizeof(sm[nsm]));
                    sm[nsm].ser = m->n;
                    struct ser *s = e->log.has_parser
                                        ? mat_add(m, c->nsteps, v, n, key)
                                        : mat_add(m, c->nsteps, st->labels, st->nlabels, key);
                    if (!s) {
                        obs_free(v);
                        obs_sbuf_deinit(&kb);
                        goto nomem;
                    }
                    *slot = (void *)(uintptr_t)(nsm + 1);
                    nsm++;
                }
                idx = (uintptr_t)*slot - 1;
                obs_free(v);
                obs_sbuf_deinit(&kb);
                if (!e->log.has_parser)
                    sidx = idx;
            }
            if (samples_push(&sm[idx], en->ts, val) != 0)
                goto nomem;
        }
    }
    /* Windows per step with two pointers (both bounds only move forward). */
    double range_s = (double)e->range_ns / 1e9;
    for (size_t i = 0; i < nsm; i++) {
        struct samples *s = &sm[i];
        struct ser *out = &m->s[s->ser];
        size_t lo = 0, hi = 0;
        for (size_t k = 0; k < c->nsteps; k++) {
            int64_t t = c->start + (int64_t)k * c->step - e->offset_ns;
            while (hi < s->n && s->ts[hi] <= t)
                hi++;
            while (lo < hi && s->ts[lo] <= t - e->range_ns)
                lo++;
            if (hi > lo) {
                out->v[k] = range_fn(e->fn, s->v, lo, hi, range_s);
                out->has[k] = 1;
            }
        }
    }
    if (e->fn == LGD_R_ABSENT) {
        /* 1 where no series had samples; labels from the selector's equality matchers. */
        uint8_t *any = obs_calloc(c->nsteps, 1);
        if (!any)
            goto nomem;
        for (size_t i = 0; i < m->n; i++)
            for (size_t k = 0; k < c->nsteps; k++)
                any[k] |= m->s[i].has[k];
        struct mat *a = mat_new();
        struct obs_label *lv = obs_calloc(e->log.nm ? e->log.nm : 1, sizeof(*lv));
        size_t nl = 0;
        if (!a || !lv) {
            obs_free(any);
            obs_free(lv);
            mat_free(a);
            goto nomem;
        }
        for (size_t i = 0; i < e->log.nm; i++)
            if (e->log.m[i].type == LGD_M_EQ) {
                lv[nl].name = e->log.m[i].name;
                lv[nl].value = e->log.m[i].value;
                nl++;
            }
        qsort(lv, nl, sizeof(*lv), label_cmp);
        struct ser *s = mat_add(a, c->nsteps, lv, nl, NULL);
        obs_free(lv);
        if (!s) {
            obs_free(any);
            mat_free(a);
            goto nomem;
        }
        for (size_t k = 0; k < c->nsteps; k++)
            if (!any[k]) {
                s->v[k] = 1;
                s->has[k] = 1;
            }
        obs_free(any);
        mat_free(m);
        m = a;
    }
    goto done;
nomem:
    obs_err_set(c->err, OBS_ENOMEM, "out of memory");
    mat_free(m);
    m = NULL;
done:
    pl_deinit(&p);
    obs_free(sel);
    for (size_t i = 0; i < nsm; i++) {
        obs_free(sm[i].ts);
        obs_free(sm[i].v);
    }
    obs_free(sm);
    lgd_map_deinit(&smap);
    return m;
}

static int in_grp(const struct lgd_expr *e, const char *name)
{
    for (size_t i = 0; i < e->ngrp; i++)
        if (strcmp(e->grp[i], name) == 0)
            return 1;
    return 0;
}

struct validx {
    double v;
    size_t i;
};

static int validx_desc(const void *a, const void *b)
{
    const struct validx *x = a, *y = b;
    if (x->v != y->v)
        return x->v > y->v ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

static int validx_asc(const void *a, const void *b)
{
    const struct validx *x = a, *y = b;
    if (x->v != y->v)
        return x->v < y->v ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

static struct mat *eval_vagg(struct mctx *c, const struct lgd_expr *e)
{
    struct mat *in = eval(c, e->a);
    if (!in)
        return NULL;
    struct mat *out = mat_new();
    size_t *gof = obs_malloc((in->n ? in->n : 1) * sizeof(size_t)); /* series -> group */
    struct obs_label *tmp = NULL;
    struct lgd_map gmap;
    lgd_map_init(&gmap);
    size_t ngroups = 0;
    if (!out || !gof)
        goto nomem;
    if (in->scalar) {
        obs_err_set(c->err, OBS_EINVAL, "parse error : aggregation over a scalar is invalid");
        goto fail;
    }
    /* Group key per series. */
    struct mat groups = {0};
    for (size_t i = 0; i < in->n; i++) {
        const struct lset *ls = &in->s[i].ls;
        obs_free(tmp);
        tmp = obs_malloc((ls->n ? ls->n : 1) * sizeof(*tmp));
        if (!tmp)
            goto nomem_g;
        size_t nt = 0;
        for (size_t k = 0; k < ls->n; k++) {
            int g = in_grp(e, ls->l[k].name);
            if (e->has_grp && (e->without ? !g : g))
                tmp[nt++] = ls->l[k];
        }
        struct obs_sbuf kb;
        obs_sbuf_init(&kb);
        lgd_labels_format(tmp, nt, &kb);
        if (kb.oom)
            goto nomem_g;
        void **slot = lgd_map_slot(&gmap, kb.p, kb.len);
        if (!slot) {
            obs_sbuf_deinit(&kb);
            goto nomem_g;
        }
        if (!*slot) {
            if (!mat_add(&groups, c->nsteps, tmp, nt, kb.p)) {
                obs_sbuf_deinit(&kb);
                goto nomem_g;
            }
            *slot = (void *)(uintptr_t)(++ngroups);
        }
        gof[i] = (uintptr_t)*slot - 1;
        obs_sbuf_deinit(&kb);
    }
    if (e->op == LGD_A_TOPK || e->op == LGD_A_BOTTOMK) {
        /* Keep the k largest/smallest series per group and step; output keeps labels. */
        struct validx *vi = obs_malloc((in->n ? in->n : 1) * sizeof(*vi));
        uint8_t **keep = obs_calloc(in->n ? in->n : 1, sizeof(uint8_t *));
        if (!vi || !keep) {
            obs_free(vi);
            obs_free(keep);
            goto nomem_g;
        }
        size_t k = (size_t)e->param;
        for (size_t i = 0; i < in->n; i++)
            keep[i] = obs_calloc(c->nsteps, 1);
        for (size_t s = 0; s < c->nsteps; s++)
            for (size_t g = 0; g < ngroups; g++) {
                size_t nv = 0;
                for (size_t i = 0; i < in->n; i++)
                    if (gof[i] == g && in->s[i].has[s]) {
                        vi[nv].v = in->s[i].v[s];
                        vi[nv].i = i;
                        nv++;
                    }
                qsort(vi, nv, sizeof(*vi), e->op == LGD_A_TOPK ? validx_desc : validx_asc);
                for (size_t j = 0; j < nv && j < k; j++)
                    if (keep[vi[j].i])
                        keep[vi[j].i][s] = 1;
            }
        int bad = 0;
        for (size_t i = 0; i < in->n; i++) {
            if (!keep[i]) {
                bad = 1;
                continue;
            }
            for (size_t s = 0; s < c->nsteps; s++)
                in->s[i].has[s] &= keep[i][s];
            obs_free(keep[i]);
        }
        obs_free(keep);
        obs_free(vi);
        if (bad)
            goto nomem_g;
        for (size_t g = 0; g < groups.n; g++) {
            lset_free(&groups.s[g].ls);
            obs_free(groups.s[g].v);
            obs_free(groups.s[g].has);
        }
        obs_free(groups.s);
        mat_free(out);
        obs_free(gof);
        obs_free(tmp);
        lgd_map_deinit(&gmap);
        return in;
    }
    /* Accumulate: v = sum (or min/max), cnt in a side array, sq for stddev. */
    double *cnt = obs_calloc(ngroups * c->nsteps + 1, sizeof(double));
    double *sq = obs_calloc(ngroups * c->nsteps + 1, sizeof(double));
    if (!cnt || !sq) {
        obs_free(cnt);
        obs_free(sq);
        goto nomem_g;
    }
    for (size_t i = 0; i < in->n; i++) {
        struct ser *g = &groups.s[gof[i]];
        for (size_t s = 0; s < c->nsteps; s++) {
            if (!in->s[i].has[s])
                continue;
            double v = in->s[i].v[s];
            double *cn = &cnt[gof[i] * c->nsteps + s];
            switch (e->op) {
            case LGD_A_MIN: g->v[s] = !g->has[s] || v < g->v[s] ? v : g->v[s]; break;
            case LGD_A_MAX: g->v[s] = !g->has[s] || v > g->v[s] ? v : g->v[s]; break;
            default: g->v[s] += v; break;
            }
            sq[gof[i] * c->nsteps + s] += v * v;
            *cn += 1;
            g->has[s] = 1;
        }
    }
    for (size_t gi = 0; gi < groups.n; gi++) {
        struct ser *g = &groups.s[gi];
        for (size_t s = 0; s < c->nsteps; s++) {
            if (!g->has[s])
                continue;
            double n = cnt[gi * c->nsteps + s];
            if (e->op == LGD_A_COUNT)
                g->v[s] = n;
            else if (e->op == LGD_A_AVG)
                g->v[s] /= n;
            else if (e->op == LGD_A_STDDEV || e->op == LGD_A_STDVAR) {
                double mean = g->v[s] / n;
                double var = sq[gi * c->nsteps + s] / n - mean * mean;
                if (var < 0)
                    var = 0;
                g->v[s] = e->op == LGD_A_STDDEV ? sqrt(var) : var;
            }
        }
    }
    obs_free(cnt);
    obs_free(sq);
    out->s = groups.s;
    out->n = groups.n;
    out->cap = groups.cap;
    obs_free(gof);
    obs_free(tmp);
    lgd_map_deinit(&gmap);
    mat_free(in);
    return out;
nomem_g:
    for (size_t g = 0; g < groups.n; g++) {
        lset_free(&groups.s[g].ls);
        obs_free(groups.s[g].v);
        obs_free(groups.s[g].has);
    }
    obs_free(groups.s);
nomem:
    obs_err_set(c->err, OBS_ENOMEM, "out of memory");
fail:
    obs_free(gof);
    obs_free(tmp);
    lgd_map_deinit(&gmap);
    mat_free(in);
    mat_free(out);
    return NULL;
}

static double arith(int op, double a, double b)
{
    switch (op) {
    case LGD_B_ADD: return a + b;
    case LGD_B_SUB: return a - b;
    case LGD_B_MUL: return a * b;
    case LGD_B_DIV: return a / b;
    case LGD_B_MOD: return fmod(a, b);
    case LGD_B_POW: return pow(a, b);
    case LGD_B_EQ: return a == b;
    case LGD_B_NE: return a != b;
    case LGD_B_GT: return a > b;
    case LGD_B_GE: return a >= b;
    case LGD_B_LT: return a < b;
    case LGD_B_LE: return a <= b;
    default: return NAN;
    }
}

static int is_cmp(int op) { return op >= LGD_B_EQ && op <= LGD_B_LE; }

/* Apply op to one point; returns 0 when a filtering comparison drops it. */
static int point_op(const struct lgd_expr *e, double a, double b, double keep, double *out)
{
    double r = arith(e->op, a, b);
    if (is_cmp(e->op) && !e->bool_mod) {
        if (r == 0)
            return 0;
        *out = keep;
        return 1;
    }
    *out = r;
    return 1;
}

static struct mat *eval_bin(struct mctx *c, const struct lgd_expr *e)
{
    struct mat *a = eval(c, e->a);
    if (!a)
        return NULL;
    struct mat *b = eval(c, e->b);
    if (!b) {
        mat_free(a);
        return NULL;
    }
    size_t ns = c->nsteps;
    if (a->scalar && b->scalar) {
        for (size_t s = 0; s < ns; s++)
            a->sv[s] = arith(e->op, a->sv[s], b->sv[s]);
        if (is_cmp(e->op) && !e->bool_mod) {
            mat_free(a);
            mat_free(b);
            obs_err_set(c->err, OBS_EINVAL,
                        "parse error : comparisons between scalars must use BOOL modifier");
            return NULL;
        }
        mat_free(b);
        return a;
    }
    if (a->scalar || b->scalar) {
        struct mat *v = a->scalar ? b : a;
        const double *sv = a->scalar ? a->sv : b->sv;
        for (size_t i = 0; i < v->n; i++)
            for (size_t s = 0; s < ns; s++) {
                if (!v->s[i].has[s])
                    continue;
                double x = v->s[i].v[s];
                double r;
                int ok = a->scalar ? point_op(e, sv[s], x, x, &r) : point_op(e, x, sv[s], x, &r);
                if (ok)
                    v->s[i].v[s] = r;
                else
                    v->s[i].has[s] = 0;
            }
        if (a->scalar) {
            mat_free(a);
            return b;
        }
        mat_free(b);
        return a;
    }
    /* vector op vector: one-to-one on identical label sets. */
    struct lgd_map bm;
    lgd_map_init(&bm);
    for (size_t i = 0; i < b->n; i++)
        if (lgd_map_put(&bm, b->s[i].ls.key, strlen(b->s[i].ls.key), &b->s[i]) != 0) {
            lgd_map_deinit(&bm);
            mat_free(a);
            mat_free(b);
            obs_err_set(c->err, OBS_ENOMEM, "out of memory");
            return NULL;
        }
    for (size_t i = 0; i < a->n; i++) {
        struct ser *sa = &a->s[i];
        struct ser *sb = lgd_map_get(&bm, sa->ls.key, strlen(sa->ls.key));
        for (size_t s = 0; s < ns; s++) {
            if (!sa->has[s])
                continue;
            int bh = sb && sb->has[s];
            switch (e->op) {
            case LGD_B_AND: sa->has[s] = (uint8_t)bh; break;
            case LGD_B_UNLESS: sa->has[s] = (uint8_t)!bh; break;
            case LGD_B_OR: break;
            default: {
                double r;
                if (bh && point_op(e, sa->v[s], sb->v[s], sa->v[s], &r))
                    sa->v[s] = r;
                else
                    sa->has[s] = 0;
            }
            }
        }
    }
    if (e->op == LGD_B_OR) {
        /* Add rhs points where lhs has no series with the same labels at that step. */
        struct lgd_map am;
        lgd_map_init(&am);
        int bad = 0;
        for (size_t i = 0; i < a->n; i++)
            bad |= lgd_map_put(&am, a->s[i].ls.key, strlen(a->s[i].ls.key), &a->s[i]) != 0;
        size_t na = a->n;
        for (size_t i = 0; i < b->n && !bad; i++) {
            struct ser *sb = &b->s[i];
            struct ser *sa = lgd_map_get(&am, sb->ls.key, strlen(sb->ls.key));
            if (sa) {
                for (size_t s = 0; s < ns; s++)
                    if (!sa->has[s] && sb->has[s]) {
                        sa->has[s] = 1;
                        sa->v[s] = sb->v[s];
                    }
                continue;
            }
            struct ser *n = mat_add(a, ns, sb->ls.l, sb->ls.n, sb->ls.key);
            if (!n) {
                bad = 1;
                break;
            }
            memcpy(n->v, sb->v, ns * sizeof(double));
            memcpy(n->has, sb->has, ns);
        }
        (void)na;
        lgd_map_deinit(&am);
        if (bad) {
            lgd_map_deinit(&bm);
            mat_free(a);
            mat_free(b);
            obs_err_set(c->err, OBS_ENOMEM, "out of memory");
            return NULL;
        }
    }
    lgd_map_deinit(&bm);
    mat_free(b);
    return a;
}

static struct mat *eval(struct mctx *c, const struct lgd_expr *e)
{
    switch (e->kind) {
    case LGD_E_RANGE: return eval_range(c, e);
    case LGD_E_VAGG: return eval_vagg(c, e);
    case LGD_E_BIN: return eval_bin(c, e);
    case LGD_E_NUM: {
        struct mat *m = mat_new();
        if (m)
            m->sv = obs_malloc(c->nsteps * sizeof(double));
        if (!m || !m->sv) {
            mat_free(m);
            obs_err_set(c->err, OBS_ENOMEM, "out of memory");
            return NULL;
        }
        m->scalar = 1;
        for (size_t s = 0; s < c->nsteps; s++)
            m->sv[s] = e->num;
        return m;
    }
    case LGD_E_VECTOR: {
        struct mat *m = mat_new();
        struct ser *s = m ? mat_add(m, c->nsteps, NULL, 0, NULL) : NULL;
        if (!s) {
            mat_free(m);
            obs_err_set(c->err, OBS_ENOMEM, "out of memory");
            return NULL;
        }
        for (size_t k = 0; k < c->nsteps; k++) {
            s->v[k] = e->num;
            s->has[k] = 1;
        }
        return m;
    }
    case LGD_E_LOG:
    default:
        obs_err_set(c->err, OBS_EINVAL, "parse error : a log query is not a metric expression");
        return NULL;
    }
}

static int ser_cmp(const void *a, const void *b)
{
    return strcmp(((const struct ser *)a)->ls.key, ((const struct ser *)b)->ls.key);
}

static void put_ts(struct obs_sbuf *o, int64_t ns)
{
    char b[64];
    /* Seconds with millisecond precision, as Prometheus/Loki render sample times. */
    int64_t ms = ns / 1000000;
    int n = obs_fmt_float(b, sizeof(b), (double)ms / 1000.0);
    obs_sbuf_append(o, b, (size_t)n);
}

static void put_val(struct obs_sbuf *o, double v)
{
    obs_sbuf_putc(o, '"');
    obs_sbuf_prom_float(o, v);
    obs_sbuf_putc(o, '"');
}

int lgd_engine_metric(struct lgd_tenant *t, const struct lgd_expr *e, int64_t start_ns,
                      int64_t end_ns, int64_t step_ns, int instant,
                      const struct lgd_qlimits *lim, struct obs_sbuf *out,
                      struct lgd_qstats *st, struct obs_err *err)
{
    struct mctx c;
    memset(&c, 0, sizeof(c));
    c.t = t;
    c.st = st;
    c.err = err;
    if (instant) {
        c.start = end_ns;
        c.step = 1;
        c.nsteps = 1;
    } else {
        if (step_ns <= 0)
            return obs_err_set(err, OBS_EINVAL,
                               "zero or negative query resolution step widths are not accepted. "
                               "Try a positive integer");
        if (end_ns < start_ns)
            return obs_err_set(err, OBS_EINVAL, "end timestamp must not be before start time");
        c.start = start_ns;
        c.step = step_ns;
        uint64_t n = (uint64_t)(end_ns - start_ns) / (uint64_t)step_ns + 1;
        if (lim && lim->max_points && n > lim->max_points)
            return obs_err_set(err, OBS_EINVAL,
                               "exceeded maximum resolution of %zu points per timeseries. Try "
                               "decreasing the query resolution (?step=XX)", lim->max_points);
        c.nsteps = (size_t)n;
    }
    struct mat *m = eval(&c, e);
    if (!m)
        return err && err->code ? err->code : OBS_ENOMEM;
    size_t nout = 0;
    for (size_t i = 0; i < m->n; i++) {
        size_t k;
        for (k = 0; k < c.nsteps && !m->s[i].has[k]; k++)
            ;
        if (k < c.nsteps)
            m->s[nout++] = m->s[i];
        else {
            lset_free(&m->s[i].ls);
            obs_free(m->s[i].v);
            obs_free(m->s[i].has);
        }
    }
    m->n = nout;
    if (lim && lim->max_series && m->n > lim->max_series) {
        mat_free(m);
        return obs_err_set(err, OBS_ELIMIT,
                           "maximum of series (%zu) reached for a single query", lim->max_series);
    }
    if (m->n > 1)
        qsort(m->s, m->n, sizeof(*m->s), ser_cmp);
    st->returned += m->n;
    if (m->scalar && instant) {
        obs_sbuf_puts(out, "\"resultType\":\"scalar\",\"result\":[");
        put_ts(out, c.start);
        obs_sbuf_putc(out, ',');
        put_val(out, m->sv[0]);
        obs_sbuf_putc(out, ']');
    } else if (m->scalar) {
        obs_sbuf_puts(out, "\"resultType\":\"matrix\",\"result\":[{\"metric\":{},\"values\":[");
        for (size_t k = 0; k < c.nsteps; k++) {
            obs_sbuf_puts(out, k ? ",[" : "[");
            put_ts(out, c.start + (int64_t)k * c.step);
            obs_sbuf_putc(out, ',');
            put_val(out, m->sv[k]);
            obs_sbuf_putc(out, ']');
        }
        obs_sbuf_puts(out, "]}]");
    } else if (instant) {
        obs_sbuf_puts(out, "\"resultType\":\"vector\",\"result\":[");
        for (size_t i = 0; i < m->n; i++) {
            obs_sbuf_puts(out, i ? ",{\"metric\":" : "{\"metric\":");
            json_labels(out, m->s[i].ls.l, m->s[i].ls.n);
            obs_sbuf_puts(out, ",\"value\":[");
            put_ts(out, c.start);
            obs_sbuf_putc(out, ',');
            put_val(out, m->s[i].v[0]);
            obs_sbuf_puts(out, "]}");
        }
        obs_sbuf_putc(out, ']');
    } else {
        obs_sbuf_puts(out, "\"resultType\":\"matrix\",\"result\":[");
        for (size_t i = 0; i < m->n; i++) {
            obs_sbuf_puts(out, i ? ",{\"metric\":" : "{\"metric\":");
            json_labels(out, m->s[i].ls.l, m->s[i].ls.n);
            obs_sbuf_puts(out, ",\"values\":[");
            int first = 1;
            for (size_t k = 0; k < c.nsteps; k++) {
                if (!m->s[i].has[k])
                    continue;
                obs_sbuf_puts(out, first ? "[" : ",[");
                first = 0;
                put_ts(out, c.start + (int64_t)k * c.step);
                obs_sbuf_putc(out, ',');
                put_val(out, m->s[i].v[k]);
                obs_sbuf_putc(out, ']');
            }
            obs_sbuf_puts(out, "]}");
        }
        obs_sbuf_putc(out, ']');
    }
    mat_free(m);
    if (out->oom)
        return obs_err_set(err, OBS_ENOMEM, "out of memory");
    return 0;
}
