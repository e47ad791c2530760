/*
 * fuzz_cf.c -- fuzz target for the YAML config loader (common/config/obs_cf.h).
 *
 * Input: YAML text, optionally followed by "\n--\n" and lines "dotted.path=value" applied
 * with obs_cf_set_path() (as command-line flags are). ${VAR} expansion is on when the text
 * contains '$'. The tree is then bound to a small table that uses every cfmap type (strings,
 * numbers, durations, sizes, lists, a nested section, a raw node, a custom binder, ignored
 * keys), and also to the nested section of the root's "inner" key, as daemons do.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "config/obs_cf.h"
#include "fuzz.h"

struct inner {
    int64_t port;
    char *addr;
    struct obs_strlist tags;
};

struct outer {
    char *name;
    int64_t n;
    int flag;
    double ratio;
    int64_t timeout_ms;
    int64_t size;
    struct obs_strlist files;
    struct inner in;
    const struct obs_cf_node *raw;
    int64_t custom;
};

/* A custom binder that walks whatever node it is given. */
static int bind_custom(const struct obs_cf_node *n, void *dst, struct obs_err *err)
{
    int64_t *out = dst;
    *out = 0;
    if (n->type == OBS_CF_SCALAR)
        return obs_cf_int(n, out, err);
    for (size_t i = 0; i < n->n; i++) {
        const char *s = NULL;
        if (n->items[i]->type == OBS_CF_SCALAR && obs_cf_str(n->items[i], &s, err) == 0)
            *out += (int64_t)strlen(s);
    }
    return 0;
}

static const struct obs_cfmap inner_map[] = {
    {"port", OBS_CFT_INT, "80", offsetof(struct inner, port), "port", NULL, NULL},
    {"addr", OBS_CFT_STR, "localhost", offsetof(struct inner, addr), "addr", NULL, NULL},
    {"tags", OBS_CFT_STRLIST, NULL, offsetof(struct inner, tags), "tags", NULL, NULL},
    {NULL, 0, NULL, 0, NULL, NULL, NULL},
};

static const struct obs_cfmap outer_map[] = {
    {"name", OBS_CFT_STR, NULL, offsetof(struct outer, name), "", NULL, NULL},
    {"n", OBS_CFT_INT, "7", offsetof(struct outer, n), "", NULL, NULL},
    {"flag", OBS_CFT_BOOL, "false", offsetof(struct outer, flag), "", NULL, NULL},
    {"ratio", OBS_CFT_FLOAT, "0.5", offsetof(struct outer, ratio), "", NULL, NULL},
    {"timeout", OBS_CFT_DURATION, "1m", offsetof(struct outer, timeout_ms), "", NULL, NULL},
    {"size", OBS_CFT_BYTES, "1MiB", offsetof(struct outer, size), "", NULL, NULL},
    {"files", OBS_CFT_STRLIST, NULL, offsetof(struct outer, files), "", NULL, NULL},
    {"inner", OBS_CFT_SECTION, NULL, offsetof(struct outer, in), "", inner_map, NULL},
    {"raw", OBS_CFT_NODE, NULL, offsetof(struct outer, raw), "", NULL, NULL},
    {"custom", OBS_CFT_CUSTOM, NULL, offsetof(struct outer, custom), "", NULL, bind_custom},
    {"server", OBS_CFT_IGNORE, NULL, 0, "", NULL, NULL},
    {NULL, 0, NULL, 0, NULL, NULL, NULL},
};

/* Apply "path=value" lines from the flags part. */
static void apply_flags(struct obs_cf_node *root, const uint8_t *p, size_t n)
{
    char *s = fuzz_cstr(p, n);
    if (s == NULL)
        return;
    char *save = NULL;
    for (char *line = strtok_r(s, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *eq = strchr(line, '=');
        if (eq == NULL)
            continue;
        *eq = '\0';
        struct obs_err err = {0};
        obs_cf_set_path(root, line, eq + 1, &err);
    }
    free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_quiet();
    const uint8_t *yaml, *flags;
    size_t nyaml, nflags;
    fuzz_split(data, size, &yaml, &nyaml, &flags, &nflags);
    int expand = memchr(yaml, '$', nyaml) != NULL;
    struct obs_err err = {0};
    struct obs_cf_node *root =
        obs_cf_load_string((const char *)yaml, nyaml, "fuzz.yaml", expand, &err);
    if (root == NULL)
        return 0;
    if (flags)
        apply_flags(root, flags, nflags);

    struct outer o;
    memset(&o, 0, sizeof o);
    obs_err_clear(&err);
    obs_cf_bind(root, outer_map, &o, &err);
    obs_cf_unbind(outer_map, &o);

    /* Bind the "inner" child alone (a section as a daemon binds its own key). */
    struct inner in;
    memset(&in, 0, sizeof in);
    obs_cf_bind(obs_cf_get(root, "inner"), inner_map, &in, &err);
    obs_cf_unbind(inner_map, &in);

    /* Typed readers on every top-level scalar. */
    if (root->type == OBS_CF_MAP) {
        for (size_t i = 0; i < root->n && i < 64; i++) {
            const struct obs_cf_node *c = root->items[i];
            int64_t v;
            double d;
            int b;
            obs_cf_int(c, &v, &err);
            obs_cf_bool(c, &b, &err);
            obs_cf_float(c, &d, &err);
            obs_cf_duration(c, &v, &err);
            obs_cf_bytes(c, &v, &err);
            obs_cf_error(&err, c, "fuzz %d", 1);
        }
    }
    obs_cf_free(root);
    return 0;
}
