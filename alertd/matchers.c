/*
 * matchers.c -- Alertmanager's label matcher syntax.
 *
 * Alertmanager accepts matchers as `name<op>value` where op is =, !=, =~ or !~ and value is
 * either a double-quoted string (with \" \\ \n escapes) or bare text up to the next comma;
 * a list may be wrapped in braces and separated by commas: `{a="b", c=~"d|e"}`. This is the
 * syntax of route `matchers`, inhibit `source_matchers`/`target_matchers`, the API's
 * `filter=` parameter and amtool. Regexes are fully anchored (obs_matcher_init does it), so
 * `service=~"foo"` matches only "foo", as Alertmanager does.
 */
#include "alertd/ald.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "core/obs_mem.h"
#include "core/obs_sbuf.h"

const char *ald_match_op(enum obs_match_type t)
{
    switch (t) {
    case OBS_MATCH_EQ: return "=";
    case OBS_MATCH_NEQ: return "!=";
    case OBS_MATCH_RE: return "=~";
    case OBS_MATCH_NRE: return "!~";
    }
    return "?";
}

int ald_matchers_add(struct ald_matchers *m, enum obs_match_type t, const char *name,
                     const char *value, struct obs_err *err)
{
    if (!obs_label_name_valid(name, strlen(name)))
        return obs_err_set(err, OBS_EINVAL, "invalid label name \"%s\"", name);
    struct obs_matcher *nv = obs_realloc(m->v, (m->n + 1) * sizeof(*nv));
    if (nv == NULL)
        return obs_err_set(err, OBS_ENOMEM, "out of memory");
    m->v = nv;
    memset(&m->v[m->n], 0, sizeof(m->v[m->n]));
    int rc = obs_matcher_init(&m->v[m->n], t, name, value, err);
    if (rc != 0)
        return rc;
    m->n++;
    return 0;
}

void ald_matchers_deinit(struct ald_matchers *m)
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < m->n; i++)
        obs_matcher_deinit(&m->v[i]);
    obs_free(m->v);
    m->v = NULL;
    m->n = 0;
}

int ald_matchers_match(const struct ald_matchers *m, const struct obs_label *l, size_t n)
{
    for (size_t i = 0; i < m->n; i++) {
        const char *v = obs_labels_get(l, n, m->v[i].name);
        if (!obs_matcher_matches(&m->v[i], v))
            return 0;
    }
    return 1;
}

/* labels.Matchers order: name, then type, then value */
static int mcmp(const void *pa, const void *pb)
{
    const struct obs_matcher *a = *(const struct obs_matcher *const *)pa;
    const struct obs_matcher *b = *(const struct obs_matcher *const *)pb;
    int c = strcmp(a->name, b->name);
    if (c)
        return c;
    if (a->type != b->type)
        return (int)a->type - (int)b->type;
    return strcmp(a->value, b->value);
}

void ald_matchers_render(const struct ald_matchers *m, struct obs_sbuf *sb)
{
    const struct obs_matcher *small[16];
    const struct obs_matcher **v = m->n <= 16 ? small : obs_malloc(m->n * sizeof(*v));
    if (v == NULL) {
        sb->oom = 1;
        return;
    }
    for (size_t i = 0; i < m->n; i++)
        v[i] = &m->v[i];
    qsort(v, m->n, sizeof(*v), mcmp);
    obs_sbuf_putc(sb, '{');
    for (size_t i = 0; i < m->n; i++) {
        if (i)
            obs_sbuf_putc(sb, ',');
        obs_sbuf_puts(sb, v[i]->name);
        obs_sbuf_puts(sb, ald_match_op(v[i]->type));
        obs_sbuf_json_str(sb, v[i]->value, strlen(v[i]->value));
    }
    obs_sbuf_putc(sb, '}');
    if (v != small)
        obs_free(v);
}

static const char *skip_ws(const char *p)
{
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
        p++;
    return p;
}

/* Parse one matcher at *pp; leaves *pp after the value. */
static int parse_one(const char **pp, struct ald_matchers *m, struct obs_err *err)
{
    const char *p = skip_ws(*pp);
    const char *start = p;
    char name[256];
    size_t nl = 0;
    if (*p == '"') {
        /* newer Alertmanager allows quoted names: take it verbatim */
        p++;
        while (*p && *p != '"' && nl < sizeof(name) - 1)
            name[nl++] = *p++;
        if (*p != '"')
            return obs_err_set(err, OBS_EINVAL, "bad matcher format: %s", start);
        p++;
    } else {
        while (*p && (isalnum((unsigned char)*p) || *p == '_' || *p == ':') &&
               nl < sizeof(name) - 1)
            name[nl++] = *p++;
    }
    name[nl] = '\0';
    p = skip_ws(p);
    enum obs_match_type t;
    if (p[0] == '=' && p[1] == '~') {
        t = OBS_MATCH_RE;
        p += 2;
    } else if (p[0] == '!' && p[1] == '~') {
        t = OBS_MATCH_NRE;
        p += 2;
    } else if (p[0] == '!' && p[1] == '=') {
        t = OBS_MATCH_NEQ;
        p += 2;
    } else if (p[0] == '=') {
        t = OBS_MATCH_EQ;
        p += 1;
    } else {
        return obs_err_set(err, OBS_EINVAL, "bad matcher format: %s", start);
    }
    if (nl == 0)
        return obs_err_set(err, OBS_EINVAL, "bad matcher format: %s", start);
    p = skip_ws(p);
    struct obs_sbuf v;
    obs_sbuf_init(&v);
    if (*p == '"') {
        p++;
        while (*p && *p != '"') {
            if (*p == '\\' && p[1]) {
                p++;
                char c = *p == 'n' ? '\n' : *p == 't' ? '\t' : *p;
                obs_sbuf_putc(&v, c);
                p++;
                continue;
            }
            obs_sbuf_putc(&v, *p++);
        }
        if (*p != '"') {
            obs_sbuf_deinit(&v);
            return obs_err_set(err, OBS_EINVAL, "bad matcher format: %s", start);
        }
        p++;
    } else {
        const char *vs = p;
        while (*p && *p != ',' && *p != '}')
            p++;
        const char *ve = p;
        while (ve > vs && isspace((unsigned char)ve[-1]))
            ve--;
        obs_sbuf_append(&v, vs, (size_t)(ve - vs));
    }
    obs_sbuf_putc(&v, '\0');
    if (v.oom) {
        obs_sbuf_deinit(&v);
        return obs_err_set(err, OBS_ENOMEM, "out of memory");
    }
    int rc = ald_matchers_add(m, t, name, v.p, err);
    obs_sbuf_deinit(&v);
    *pp = p;
    return rc;
}

int ald_matchers_parse(const char *s, struct ald_matchers *m, struct obs_err *err)
{
    const char *p = skip_ws(s);
    int brace = 0;
    if (*p == '{') {
        brace = 1;
        p++;
    }
    int count = 0;
    for (;;) {
        p = skip_ws(p);
        if (*p == '\0' || (brace && *p == '}'))
            break;
        int rc = parse_one(&p, m, err);
        if (rc != 0)
            return rc;
        count++;
        p = skip_ws(p);
        if (*p == ',') {
            p++;
            continue;
        }
        break;
    }
    p = skip_ws(p);
    if (brace) {
        if (*p != '}')
            return obs_err_set(err, OBS_EINVAL, "missing closing '}' in matchers: %s", s);
        p = skip_ws(p + 1);
    }
    if (*p != '\0')
        return obs_err_set(err, OBS_EINVAL, "bad matcher format: %s", s);
    if (count == 0 && !brace)
        return obs_err_set(err, OBS_EINVAL, "bad matcher format: %s", s);
    return 0;
}
