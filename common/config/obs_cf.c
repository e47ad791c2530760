/*
 * obs_cf.c -- YAML config tree and typed binding (see obs_cf.h).
 *
 * Loading is event-driven with libyaml: each MAPPING/SEQUENCE/SCALAR event becomes a node that
 * keeps its mark (line/col). Aliases are resolved by deep copy of the anchored node. Binding
 * walks a map against a table and reports the first problem as "file:line:col: key: reason".
 */
#include "config/obs_cf.h"
#include "core/obs_mem.h"
#include "core/obs_sbuf.h"
#include "core/obs_time.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

struct anchor {
    char *name;
    struct obs_cf_node *node; /* borrowed from the tree */
};

struct loader {
    yaml_parser_t p;
    const char *file;
    struct obs_err *err;
    struct anchor *anchors;
    size_t nanchors;
};

static struct obs_cf_node *node_new(enum obs_cf_type t, const char *file, const yaml_mark_t *m)
{
    struct obs_cf_node *n = obs_calloc(1, sizeof(*n));
    if (n == NULL)
        return NULL;
    n->type = t;
    n->file = file;
    n->line = (int)m->line + 1;
    n->col = (int)m->column + 1;
    return n;
}

static void node_free(struct obs_cf_node *n)
{
    if (n == NULL)
        return;
    for (size_t i = 0; i < n->n; i++)
        node_free(n->items[i]);
    obs_free(n->items);
    obs_free(n->key);
    obs_free(n->value);
    obs_free(n);
}

void obs_cf_free(struct obs_cf_node *root)
{
    if (root == NULL)
        return;
    /* the root owns the file name string (stored after the node) */
    node_free(root);
}

static int node_push(struct obs_cf_node *parent, struct obs_cf_node *child)
{
    struct obs_cf_node **ni = obs_realloc(parent->items, (parent->n + 1) * sizeof(*ni));
    if (ni == NULL)
        return OBS_ENOMEM;
    parent->items = ni;
    parent->items[parent->n++] = child;
    return OBS_OK;
}

static struct obs_cf_node *node_copy(const struct obs_cf_node *s)
{
    struct obs_cf_node *n = obs_calloc(1, sizeof(*n));
    if (n == NULL)
        return NULL;
    *n = *s;
    n->items = NULL;
    n->n = 0;
    n->key = NULL;
    n->value = s->value ? obs_strdup(s->value) : NULL;
    for (size_t i = 0; i < s->n; i++) {
        struct obs_cf_node *c = node_copy(s->items[i]);
        if (c == NULL || node_push(n, c) != OBS_OK) {
            node_free(c);
            node_free(n);
            return NULL;
        }
        if (s->items[i]->key)
            c->key = obs_strdup(s->items[i]->key);
    }
    return n;
}

static int load_error(struct loader *L, const yaml_mark_t *m, const char *fmt, ...)
{
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return obs_err_setpos(L->err, OBS_EINVAL, L->file, (int)m->line + 1, (int)m->column + 1,
                          "%s:%d:%d: %s", L->file, (int)m->line + 1, (int)m->column + 1, msg);
}

static int remember_anchor(struct loader *L, const yaml_char_t *name, struct obs_cf_node *n)
{
    if (name == NULL)
        return OBS_OK;
    struct anchor *na = obs_realloc(L->anchors, (L->nanchors + 1) * sizeof(*na));
    if (na == NULL)
        return OBS_ENOMEM;
    L->anchors = na;
    L->anchors[L->nanchors].name = obs_strdup((const char *)name);
    L->anchors[L->nanchors].node = n;
    L->nanchors++;
    return OBS_OK;
}

/* Parse one node starting with event ev (already read). Returns node or NULL (err set). */
static struct obs_cf_node *parse_node(struct loader *L, yaml_event_t *ev)
{
    struct obs_cf_node *n = NULL;
    switch (ev->type) {
    case YAML_SCALAR_EVENT: {
        const char *v = (const char *)ev->data.scalar.value;
        int plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
        int isnull = plain && (ev->data.scalar.length == 0 || strcmp(v, "~") == 0 ||
                               strcmp(v, "null") == 0 || strcmp(v, "Null") == 0 ||
                               strcmp(v, "NULL") == 0);
        n = node_new(isnull ? OBS_CF_NULL : OBS_CF_SCALAR, L->file, &ev->start_mark);
        if (n == NULL)
            return NULL;
        n->quoted = !plain;
        n->value = obs_strndup(v, ev->data.scalar.length);
        if (remember_anchor(L, ev->data.scalar.anchor, n) != OBS_OK) {
            node_free(n);
            return NULL;
        }
        return n;
    }
    case YAML_ALIAS_EVENT: {
        for (size_t i = L->nanchors; i-- > 0;) {
            if (strcmp(L->anchors[i].name, (const char *)ev->data.alias.anchor) == 0) {
                n = node_copy(L->anchors[i].node);
                if (n) {
                    n->line = (int)ev->start_mark.line + 1;
                    n->col = (int)ev->start_mark.column + 1;
                }
                return n;
            }
        }
        load_error(L, &ev->start_mark, "unknown anchor %s", ev->data.alias.anchor);
        return NULL;
    }
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT: {
        int is_map = ev->type == YAML_MAPPING_START_EVENT;
        n = node_new(is_map ? OBS_CF_MAP : OBS_CF_SEQ, L->file, &ev->start_mark);
        if (n == NULL)
            return NULL;
        const yaml_char_t *anchor =
            is_map ? ev->data.mapping_start.anchor : ev->data.sequence_start.anchor;
        if (remember_anchor(L, anchor, n) != OBS_OK)
            goto fail;
        for (;;) {
            yaml_event_t e;
            if (!yaml_parser_parse(&L->p, &e)) {
                load_error(L, &L->p.problem_mark, "%s", L->p.problem ? L->p.problem : "yaml error");
                goto fail;
            }
            if (e.type == YAML_SEQUENCE_END_EVENT || e.type == YAML_MAPPING_END_EVENT) {
                yaml_event_delete(&e);
                break;
            }
            if (is_map) {
                if (e.type != YAML_SCALAR_EVENT) {
                    load_error(L, &e.start_mark, "mapping keys must be scalars");
                    yaml_event_delete(&e);
                    goto fail;
                }
                char *key = obs_strndup((const char *)e.data.scalar.value, e.data.scalar.length);
                yaml_mark_t km = e.start_mark;
                yaml_event_delete(&e);
                if (key == NULL)
                    goto fail;
                if (strcmp(key, "<<") == 0) {
                    /* merge key: value is a map (or alias to one) whose entries are added */
                    yaml_event_t ve;
                    if (!yaml_parser_parse(&L->p, &ve)) {
                        obs_free(key);
                        load_error(L, &L->p.problem_mark, "%s", L->p.problem);
                        goto fail;
                    }
                    struct obs_cf_node *mv = parse_node(L, &ve);
                    yaml_event_delete(&ve);
                    obs_free(key);
                    if (mv == NULL)
                        goto fail;
                    for (size_t i = 0; mv->type == OBS_CF_MAP && i < mv->n; i++) {
                        if (obs_cf_get(n, mv->items[i]->key) == NULL) {
                            if (node_push(n, mv->items[i]) != OBS_OK)
                                goto fail;
                            mv->items[i] = NULL;
                        }
                    }
                    node_free(mv);
                    /* compact NULL holes */
                    continue;
                }
                for (size_t i = 0; i < n->n; i++) {
                    if (n->items[i] && strcmp(n->items[i]->key, key) == 0) {
                        load_error(L, &km, "%s: mapping key \"%s\" already defined at line %d",
                                   key, key, n->items[i]->key_line);
                        obs_free(key);
                        goto fail;
                    }
                }
                yaml_event_t ve;
                if (!yaml_parser_parse(&L->p, &ve)) {
                    obs_free(key);
                    load_error(L, &L->p.problem_mark, "%s", L->p.problem);
                    goto fail;
                }
                struct obs_cf_node *v = parse_node(L, &ve);
                yaml_event_delete(&ve);
                if (v == NULL) {
                    obs_free(key);
                    goto fail;
                }
                v->key = key;
                v->key_line = (int)km.line + 1;
                v->key_col = (int)km.column + 1;
                if (node_push(n, v) != OBS_OK) {
                    node_free(v);
                    goto fail;
                }
            } else {
                struct obs_cf_node *v = parse_node(L, &e);
                yaml_event_delete(&e);
                if (v == NULL)
                    goto fail;
                v->key_line = v->line;
                v->key_col = v->col;
                if (node_push(n, v) != OBS_OK) {
                    node_free(v);
                    goto fail;
                }
            }
        }
        return n;
    fail:
        node_free(n);
        return NULL;
    }
    default:
        load_error(L, &ev->start_mark, "unexpected YAML event");
        return NULL;
    }
}

/* Replace ${VAR}, ${VAR:-default} and ${VAR:default}. */
static char *expand_env(const char *text, size_t len, size_t *outlen)
{
    struct obs_sbuf b;
    obs_sbuf_init(&b);
    for (size_t i = 0; i < len; i++) {
        if (text[i] == '$' && i + 1 < len && text[i + 1] == '{') {
            const char *end = memchr(text + i + 2, '}', len - i - 2);
            if (end) {
                char name[256];
                size_t nl = (size_t)(end - (text + i + 2));
                if (nl < sizeof(name)) {
                    memcpy(name, text + i + 2, nl);
                    name[nl] = '\0';
                    const char *def = NULL;
                    char *colon = strchr(name, ':');
                    if (colon) {
                        *colon = '\0';
                        def = colon[1] == '-' ? colon + 2 : colon + 1;
                    }
                    const char *v = getenv(name);
                    if (v == NULL || (def && *v == '\0'))
                        v = def ? def : "";
                    obs_sbuf_puts(&b, v);
                    i = (size_t)(end - text);
                    continue;
                }
            }
        }
        obs_sbuf_putc(&b, text[i]);
    }
    if (b.oom) {
        obs_sbuf_deinit(&b);
        return NULL;
    }
    return obs_sbuf_take(&b, outlen);
}

struct obs_cf_node *obs_cf_load_string(const char *text, size_t len, const char *name,
                                       int expand_env_flag, struct obs_err *err)
{
    struct loader L = {0};
    L.file = name;
    L.err = err;
    char *expanded = NULL;
    if (expand_env_flag) {
        expanded = expand_env(text, len, &len);
        if (expanded == NULL) {
            obs_err_set(err, OBS_ENOMEM, "out of memory");
            return NULL;
        }
        text = expanded;
    }
    /* The file name must outlive the tree: keep a copy in a hidden root slot. */
    struct obs_cf_node *root = NULL;
    yaml_parser_initialize(&L.p);
    yaml_parser_set_input_string(&L.p, (const unsigned char *)text, len);
    int done = 0;
    while (!done) {
        yaml_event_t e;
        if (!yaml_parser_parse(&L.p, &e)) {
            load_error(&L, &L.p.problem_mark, "%s", L.p.problem ? L.p.problem : "yaml error");
            node_free(root);
            root = NULL;
            break;
        }
        switch (e.type) {
        case YAML_STREAM_END_EVENT:
            done = 1;
            break;
        case YAML_MAPPING_START_EVENT:
        case YAML_SEQUENCE_START_EVENT:
        case YAML_SCALAR_EVENT:
        case YAML_ALIAS_EVENT:
            if (root == NULL) {
                root = parse_node(&L, &e);
                if (root == NULL)
                    done = 2;
            }
            break;
        default:
            break;
        }
        yaml_event_delete(&e);
    }
    yaml_parser_delete(&L.p);
    for (size_t i = 0; i < L.nanchors; i++)
        obs_free(L.anchors[i].name);
    obs_free(L.anchors);
    obs_free(expanded);
    if (done == 2)
        return NULL;
    if (root == NULL || root->type == OBS_CF_NULL) {
        yaml_mark_t m = {0};
        node_free(root);
        root = node_new(OBS_CF_MAP, name, &m);
        if (root == NULL)
            obs_err_set(err, OBS_ENOMEM, "out of memory");
    }
    return root;
}

struct obs_cf_node *obs_cf_load_file(const char *path, int expand_env_flag, struct obs_err *err)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        obs_err_set(err, OBS_EIO, "%s: %s", path, strerror(errno));
        return NULL;
    }
    struct obs_sbuf b;
    obs_sbuf_init(&b);
    char tmp[16384];
    size_t r;
    while ((r = fread(tmp, 1, sizeof(tmp), f)) > 0)
        obs_sbuf_append(&b, tmp, r);
    fclose(f);
    if (b.oom) {
        obs_sbuf_deinit(&b);
        obs_err_set(err, OBS_ENOMEM, "out of memory");
        return NULL;
    }
    /* file names are interned for the process lifetime (config is loaded once) */
    static char *names[64];
    static int nnames;
    const char *name = path;
    if (nnames < 64) {
        names[nnames] = obs_strdup(path);
        if (names[nnames])
            name = names[nnames++];
    }
    struct obs_cf_node *root =
        obs_cf_load_string(b.p ? b.p : "", b.len, name, expand_env_flag, err);
    obs_sbuf_deinit(&b);
    return root;
}

const struct obs_cf_node *obs_cf_get(const struct obs_cf_node *map, const char *key)
{
    if (map == NULL || map->type != OBS_CF_MAP)
        return NULL;
    for (size_t i = 0; i < map->n; i++)
        if (map->items[i] && map->items[i]->key && strcmp(map->items[i]->key, key) == 0)
            return map->items[i];
    return NULL;
}

int obs_cf_set_path(struct obs_cf_node *root, const char *path, const char *value,
                    struct obs_err *err)
{
    yaml_mark_t m = {0};
    struct obs_cf_node *cur = root;
    const char *p = path;
    for (;;) {
        const char *dot = strchr(p, '.');
        size_t kl = dot ? (size_t)(dot - p) : strlen(p);
        char key[128];
        if (kl == 0 || kl >= sizeof(key))
            return obs_err_set(err, OBS_EINVAL, "invalid flag name %s", path);
        memcpy(key, p, kl);
        key[kl] = '\0';
        if (cur->type != OBS_CF_MAP)
            return obs_err_set(err, OBS_EINVAL, "flag %s: %s is not a section", path, key);
        struct obs_cf_node *child = (struct obs_cf_node *)obs_cf_get(cur, key);
        if (dot == NULL) {
            if (child == NULL) {
                child = node_new(OBS_CF_SCALAR, "<flags>", &m);
                if (child == NULL || (child->key = obs_strdup(key)) == NULL ||
                    node_push(cur, child) != OBS_OK)
                    return obs_err_set(err, OBS_ENOMEM, "out of memory");
            } else {
                for (size_t i = 0; i < child->n; i++)
                    node_free(child->items[i]);
                obs_free(child->items);
                child->items = NULL;
                child->n = 0;
                obs_free(child->value);
            }
            child->type = OBS_CF_SCALAR;
            child->file = "<flags>";
            child->line = child->col = 0;
            child->value = obs_strdup(value);
            return child->value ? OBS_OK : obs_err_set(err, OBS_ENOMEM, "out of memory");
        }
        if (child == NULL) {
            child = node_new(OBS_CF_MAP, "<flags>", &m);
            if (child == NULL || (child->key = obs_strdup(key)) == NULL ||
                node_push(cur, child) != OBS_OK)
                return obs_err_set(err, OBS_ENOMEM, "out of memory");
        } else if (child->type == OBS_CF_NULL) {
            child->type = OBS_CF_MAP;
        }
        cur = child;
        p = dot + 1;
    }
}

int obs_cf_error(struct obs_err *err, const struct obs_cf_node *n, const char *fmt, ...)
{
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (n == NULL)
        return obs_err_set(err, OBS_EINVAL, "%s", msg);
    int line = n->key ? n->key_line : n->line, col = n->key ? n->key_col : n->col;
    if (n->key)
        return obs_err_setpos(err, OBS_EINVAL, n->file, line, col, "%s:%d:%d: %s: %s",
                              n->file ? n->file : "<config>", line, col, n->key, msg);
    return obs_err_setpos(err, OBS_EINVAL, n->file, line, col, "%s:%d:%d: %s",
                          n->file ? n->file : "<config>", line, col, msg);
}

int obs_cf_str(const struct obs_cf_node *n, const char **out, struct obs_err *err)
{
    if (n->type == OBS_CF_NULL) {
        *out = "";
        return OBS_OK;
    }
    if (n->type != OBS_CF_SCALAR)
        return obs_cf_error(err, n, "expected a string");
    *out = n->value;
    return OBS_OK;
}

int obs_cf_int(const struct obs_cf_node *n, int64_t *out, struct obs_err *err)
{
    if (n->type != OBS_CF_SCALAR)
        return obs_cf_error(err, n, "expected an integer");
    char *end;
    errno = 0;
    long long v = strtoll(n->value, &end, 0);
    if (errno || end == n->value || *end)
        return obs_cf_error(err, n, "cannot parse \"%s\" as an integer", n->value);
    *out = v;
    return OBS_OK;
}

int obs_cf_bool(const struct obs_cf_node *n, int *out, struct obs_err *err)
{
    if (n->type == OBS_CF_SCALAR) {
        const char *v = n->value;
        if (!strcasecmp(v, "true") || !strcasecmp(v, "yes") || !strcasecmp(v, "on") ||
            !strcmp(v, "1")) {
            *out = 1;
            return OBS_OK;
        }
        if (!strcasecmp(v, "false") || !strcasecmp(v, "no") || !strcasecmp(v, "off") ||
            !strcmp(v, "0")) {
            *out = 0;
            return OBS_OK;
        }
    }
    return obs_cf_error(err, n, "cannot parse \"%s\" as a boolean", n->value ? n->value : "");
}

int obs_cf_float(const struct obs_cf_node *n, double *out, struct obs_err *err)
{
    if (n->type != OBS_CF_SCALAR)
        return obs_cf_error(err, n, "expected a number");
    char *end;
    double v = strtod(n->value, &end);
    if (end == n->value || *end)
        return obs_cf_error(err, n, "cannot parse \"%s\" as a number", n->value);
    *out = v;
    return OBS_OK;
}

int obs_cf_duration(const struct obs_cf_node *n, int64_t *out_ms, struct obs_err *err)
{
    if (n->type != OBS_CF_SCALAR || obs_duration_parse_ms(n->value, out_ms) != OBS_OK)
        return obs_cf_error(err, n, "not a valid duration string: \"%s\"",
                            n->value ? n->value : "");
    return OBS_OK;
}

int obs_cf_bytes(const struct obs_cf_node *n, int64_t *out, struct obs_err *err)
{
    if (n->type != OBS_CF_SCALAR)
        return obs_cf_error(err, n, "expected a size");
    char *end;
    double v = strtod(n->value, &end);
    if (end == n->value)
        return obs_cf_error(err, n, "cannot parse \"%s\" as a size", n->value);
    while (*end == ' ')
        end++;
    static const struct { const char *u; double m; } units[] = {
        {"", 1}, {"B", 1}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
        {"KiB", 1024.0}, {"MiB", 1048576.0}, {"GiB", 1073741824.0}, {"TiB", 1099511627776.0},
        {"K", 1024.0}, {"M", 1048576.0}, {"G", 1073741824.0}};
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcasecmp(end, units[i].u) == 0) {
            double b = v * units[i].m;
            if (!(b >= 0 && b < 9.2e18))
                return obs_cf_error(err, n, "size \"%s\" out of range", n->value);
            *out = (int64_t)b;
            return OBS_OK;
        }
    }
    return obs_cf_error(err, n, "unknown size unit in \"%s\"", n->value);
}

static int bind_one(const struct obs_cfmap *e, const struct obs_cf_node *n, char *base,
                    struct obs_err *err)
{
    void *dst = base + e->off;
    switch (e->type) {
    case OBS_CFT_STR: {
        const char *s = "";
        if (obs_cf_str(n, &s, err) != OBS_OK)
            return OBS_EINVAL;
        char *c = obs_strdup(s);
        if (c == NULL)
            return obs_err_set(err, OBS_ENOMEM, "out of memory");
        obs_free(*(char **)dst);
        *(char **)dst = c;
        return OBS_OK;
    }
    case OBS_CFT_INT: return obs_cf_int(n, (int64_t *)dst, err);
    case OBS_CFT_BOOL: return obs_cf_bool(n, (int *)dst, err);
    case OBS_CFT_FLOAT: return obs_cf_float(n, (double *)dst, err);
    case OBS_CFT_DURATION: return obs_cf_duration(n, (int64_t *)dst, err);
    case OBS_CFT_BYTES: return obs_cf_bytes(n, (int64_t *)dst, err);
    case OBS_CFT_STRLIST: {
        struct obs_strlist *l = dst;
        for (size_t i = 0; i < l->n; i++)
            obs_free(l->v[i]);
        obs_free(l->v);
        l->v = NULL;
        l->n = 0;
        if (n->type == OBS_CF_NULL)
            return OBS_OK;
        size_t cnt = n->type == OBS_CF_SEQ ? n->n : 1;
        l->v = obs_calloc(cnt, sizeof(char *));
        if (l->v == NULL)
            return obs_err_set(err, OBS_ENOMEM, "out of memory");
        for (size_t i = 0; i < cnt; i++) {
            const struct obs_cf_node *it = n->type == OBS_CF_SEQ ? n->items[i] : n;
            if (it->type != OBS_CF_SCALAR)
                return obs_cf_error(err, it, "expected a list of strings");
            l->v[i] = obs_strdup(it->value);
            l->n++;
        }
        return OBS_OK;
    }
    case OBS_CFT_SECTION:
        if (n->type == OBS_CF_NULL)
            return obs_cf_bind(NULL, e->sub, dst, err);
        if (n->type != OBS_CF_MAP)
            return obs_cf_error(err, n, "expected a mapping");
        return obs_cf_bind(n, e->sub, dst, err);
    case OBS_CFT_NODE:
        *(const struct obs_cf_node **)dst = n;
        return OBS_OK;
    case OBS_CFT_CUSTOM:
        return e->custom(n, dst, err);
    case OBS_CFT_IGNORE:
        return OBS_OK;
    }
    return OBS_EINVAL;
}

int obs_cf_bind(const struct obs_cf_node *map, const struct obs_cfmap *table, void *base,
                struct obs_err *err)
{
    if (map && map->type == OBS_CF_NULL)
        map = NULL;
    if (map && map->type != OBS_CF_MAP)
        return obs_cf_error(err, map, "expected a mapping");
    /* unknown keys first, with their position */
    for (size_t i = 0; map && i < map->n; i++) {
        const struct obs_cf_node *it = map->items[i];
        if (it == NULL)
            continue;
        const struct obs_cfmap *e = table;
        while (e->key && strcmp(e->key, it->key) != 0)
            e++;
        if (e->key == NULL)
            return obs_cf_error(err, it, "unknown key (not a valid field here)");
    }
    for (const struct obs_cfmap *e = table; e->key; e++) {
        const struct obs_cf_node *n = obs_cf_get(map, e->key);
        if (n == NULL || (n->type == OBS_CF_NULL && e->type != OBS_CFT_SECTION &&
                          e->type != OBS_CFT_NODE && e->type != OBS_CFT_CUSTOM)) {
            if (e->type == OBS_CFT_SECTION) {
                int rc = obs_cf_bind(NULL, e->sub, (char *)base + e->off, err);
                if (rc != OBS_OK)
                    return rc;
            } else if (e->def) {
                struct obs_cf_node dn = {0};
                dn.type = OBS_CF_SCALAR;
                dn.value = (char *)e->def;
                dn.key = (char *)e->key;
                dn.file = "<default>";
                int rc = bind_one(e, &dn, base, err);
                if (rc != OBS_OK)
                    return rc;
            }
            continue;
        }
        int rc = bind_one(e, n, base, err);
        if (rc != OBS_OK) {
            if (err && err->msg[0] == '\0')
                obs_cf_error(err, n, "invalid value");
            return rc;
        }
    }
    return OBS_OK;
}

void obs_cf_unbind(const struct obs_cfmap *table, void *base)
{
    for (const struct obs_cfmap *e = table; e->key; e++) {
        void *dst = (char *)base + e->off;
        switch (e->type) {
        case OBS_CFT_STR:
            obs_free(*(char **)dst);
            *(char **)dst = NULL;
            break;
        case OBS_CFT_STRLIST: {
            struct obs_strlist *l = dst;
            for (size_t i = 0; i < l->n; i++)
                obs_free(l->v[i]);
            obs_free(l->v);
            l->v = NULL;
            l->n = 0;
            break;
        }
        case OBS_CFT_SECTION:
            obs_cf_unbind(e->sub, dst);
            break;
        default:
            break;
        }
    }
}
