/*
 * api_meta.c -- the Prometheus HTTP API's non-PromQL read endpoints over metricsd's storage:
 *   GET|POST /api/v1/labels                 match[]*, start, end, limit
 *   GET      /api/v1/label/<name>/values    match[]*, start, end, limit
 *   GET|POST /api/v1/series                 match[]+, start, end, limit
 *   GET      /api/v1/metadata               limit, limit_per_metric, metric
 * (and, through api_read.c, POST /api/v1/read; through api_status.c the status endpoints).
 * Replies use Prometheus' envelope {"status":"success","data":...}; bad parameters get 400
 * {"status":"error","errorType":"bad_data","error":"..."} with Prometheus' wording (3.x,
 * which 2.42 shares for everything 2.42 has). Several match[] select the union of their
 * series. Tenant from X-Scope-OrgID.
 *
 * limit (Prometheus 3.x): 0 or absent = no limit; a longer answer is cut to `limit` entries
 * and gets the warning "results truncated due to limit" in the envelope's "warnings".
 * Label names in the path may be escaped as Prometheus 3.x does for UTF-8 names: "U__"
 * then the name with "_" written "__" and any other character outside [A-Za-z0-9] as
 * "_<hex code point>_" (U__a_2e_b is "a.b").
 * Label names and values come from the head's postings (head.c), not from series scans, so
 * a label with 100k values answers in one pass plus a sort.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/obs_mem.h"
#include "core/obs_sbuf.h"
#include "core/obs_time.h"
#include "http/obs_http.h"
#include "labels/obs_labels.h"
#include "metricsd/head.h"
#include "metricsd/metricsd.h"
#include "metricsd/querier.h"
#include "metricsd/ql/mtd_ql.h"
#include "metricsd/storage.h"

/* Parsed common parameters. */
struct meta_params {
    int64_t start, end;
    long limit; /* 0 = none */
    struct obs_matcher **sets; /* one matcher list per match[] */
    size_t *nms;
    size_t nsets;
};

/* Which endpoint: Prometheus wraps match[] errors differently for /series. */
enum meta_kind { META_LABELS, META_SERIES };

static void params_free(struct meta_params *p)
{
    for (size_t i = 0; i < p->nsets; i++)
        obs_matchers_free(p->sets[i], p->nms[i]);
    obs_free(p->sets);
    obs_free(p->nms);
    memset(p, 0, sizeof *p);
}

/*
 * Parse the limit parameter as Prometheus 3.x (strconv.Atoi, then "must be non-negative").
 * Returns 0 with *out set (0 = no limit), or -1 after replying 400.
 */
static int limit_parse(struct obs_http_req *r, long *out)
{
    const char *v = obs_http_req_param(r, "limit");
    *out = 0;
    if (v == NULL || v[0] == '\0')
        return 0;
    const char *d = v + (v[0] == '-' || v[0] == '+');
    int digits = *d != '\0';
    for (const char *c = d; *c; c++)
        if (*c < '0' || *c > '9')
            digits = 0;
    if (!digits) {
        obs_http_reply_prom_error(r, 400, "bad_data", "invalid parameter \"limit\": "
                                  "strconv.Atoi: parsing \"%.200s\": invalid syntax", v);
        return -1;
    }
    errno = 0;
    long long n = strtoll(v, NULL, 10);
    if (errno == ERANGE || n > LONG_MAX || n < LONG_MIN) {
        obs_http_reply_prom_error(r, 400, "bad_data", "invalid parameter \"limit\": "
                                  "strconv.Atoi: parsing \"%.200s\": value out of range", v);
        return -1;
    }
    if (n < 0) {
        obs_http_reply_prom_error(r, 400, "bad_data",
                                  "invalid parameter \"limit\": limit must be non-negative");
        return -1;
    }
    *out = (long)n;
    return 0;
}

/*
 * One match[] selector. The matchers come from obs_selector_parse; when it fails, the
 * PromQL parser supplies Prometheus' positioned message ("1:4: parse error: ...").
 * Returns 0, or OBS_EINVAL with msg filled, or OBS_ENOMEM.
 */
static int selector_parse(const char *s, struct obs_matcher **out, size_t *n, char *msg,
                          size_t cap)
{
    struct obs_err err = {0};
    size_t sp = strspn(s, " \t\r\n");
    if (s[sp] == '\0') { /* Prometheus' selector parser: nothing where a selector must be */
        snprintf(msg, cap, "%zu:%zu: parse error: unexpected end of input",
                 (size_t)1, sp + 1);
        return OBS_EINVAL;
    }
    int rc = obs_selector_parse(s, strlen(s), out, n, &err);
    if (rc == 0 || rc == OBS_ENOMEM)
        return rc;
    if (strstr(err.msg, "at least one non-empty matcher") != NULL) {
        snprintf(msg, cap, "match[] must contain at least one non-empty matcher");
        return OBS_EINVAL;
    }
    struct mtd_ql_expr *e = NULL;
    struct obs_err qerr = {0};
    int qrc = mtd_ql_parse(s, &e, &qerr);
    if (qrc == OBS_ENOMEM)
        return OBS_ENOMEM;
    if (qrc != 0 && strstr(qerr.msg, "at least one non-empty matcher") != NULL) {
        snprintf(msg, cap, "match[] must contain at least one non-empty matcher");
    } else if (qrc != 0 && qerr.msg[0]) {
        snprintf(msg, cap, "%s", qerr.msg);
    } else {
        /* A valid expression that is not a selector: point at what follows the selector,
         * as Prometheus' selector parser does (`rate(x[5m])` -> 1:5: unexpected "("). */
        size_t i = 0;
        while (s[i] == ' ' || s[i] == '\t' || s[i] == '\n')
            i++;
        while ((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || s[i] == '_' ||
               s[i] == ':' || (s[i] >= '0' && s[i] <= '9'))
            i++;
        if (s[i] == '{')
            while (s[i] && s[i] != '}')
                i++;
        if (s[i] == '}')
            i++;
        while (s[i] == ' ' || s[i] == '\t' || s[i] == '\n')
            i++;
        if (s[i] != '\0' && strchr("()[],", s[i]) != NULL)
            snprintf(msg, cap, "1:%zu: parse error: unexpected \"%c\"", i + 1, s[i]);
        else
            snprintf(msg, cap, "1:%zu: parse error: unexpected character after selector",
                     i + 1);
    }
    mtd_ql_expr_free(e);
    return OBS_EINVAL;
}

/* Prometheus' time parameter error wording. Returns 0 or -1 after replying. */
static int time_param(struct obs_http_req *r, const char *name, int64_t *out)
{
    const char *v = obs_http_req_param(r, name);
    if (v == NULL || v[0] == '\0')
        return 0;
    if (mtd_prom_time_parse(v, 0, out) == 0)
        return 0;
    obs_http_reply_prom_error(r, 400, "bad_data", "invalid parameter \"%s\": Invalid time value "
                              "for '%s': cannot parse \"%.200s\" to a valid timestamp", name,
                              name, v);
    return -1;
}

/* Parse limit/start/end/match[] in Prometheus' order; on error the reply has been sent and
 * -1 returned. An end before start is not an error (Prometheus answers an empty list). */
static int params_parse(struct obs_http_req *r, struct meta_params *p, enum meta_kind kind)
{
    memset(p, 0, sizeof *p);
    p->start = INT64_MIN;
    p->end = INT64_MAX;
    const char **ms = NULL;
    size_t n = obs_http_req_params(r, "match[]", &ms);
    if (n == 0 && kind == META_SERIES) {
        obs_http_reply_prom_error(r, 400, "bad_data", "no match[] parameter provided");
        return -1;
    }
    if (limit_parse(r, &p->limit) != 0 || time_param(r, "start", &p->start) != 0 ||
        time_param(r, "end", &p->end) != 0)
        return -1;
    if (n > 0) {
        p->sets = obs_calloc(n, sizeof *p->sets);
        p->nms = obs_calloc(n, sizeof *p->nms);
        if (p->sets == NULL || p->nms == NULL) {
            params_free(p);
            obs_http_reply_prom_error(r, 500, "internal", "out of memory");
            return -1;
        }
    }
    for (size_t i = 0; i < n; i++) {
        char msg[512];
        int rc = selector_parse(ms[i], &p->sets[i], &p->nms[i], msg, sizeof msg);
        if (rc != 0) {
            params_free(p);
            if (rc == OBS_ENOMEM)
                obs_http_reply_prom_error(r, 500, "internal", "out of memory");
            else if (kind == META_SERIES)
                obs_http_reply_prom_error(r, 400, "bad_data", "invalid parameter \"match[]\": "
                                          "%s", msg);
            else
                obs_http_reply_prom_error(r, 400, "bad_data", "%s", msg);
            return -1;
        }
        p->nsets = i + 1;
    }
    return 0;
}

static struct mtd_storage *storage_of(struct obs_http_req *r, struct obs_ctx *ctx)
{
    struct mtd_app *app = mtd_app_of(ctx);
    if (app == NULL || app->storage == NULL) {
        obs_http_reply_prom_error(r, 503, "unavailable", "no storage available");
        return NULL;
    }
    return app->storage;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

#define TRUNCATED_WARNING "results truncated due to limit"

/* Append [","]"s" as JSON: plain printable ASCII is copied in one step, anything else goes
 * through obs_sbuf_json_str (escapes, UTF-8 repair). */
static void json_item(struct obs_sbuf *b, const char *s, int comma)
{
    size_t n = 0;
    int plain = 1;
    for (; s[n]; n++) {
        unsigned char c = (unsigned char)s[n];
        if (c < 0x20 || c >= 0x80 || c == '"' || c == '\\')
            plain = 0;
    }
    if (obs_sbuf_reserve(b, n + 3) != 0)
        return;
    if (comma)
        b->p[b->len++] = ',';
    if (!plain) {
        obs_sbuf_json_str(b, s, n);
        return;
    }
    b->p[b->len++] = '"';
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len++] = '"';
    b->p[b->len] = '\0';
}

/* Reply with a sorted, de-duplicated JSON string array made from v (consumed), cut to
 * limit entries (0 = all) with Prometheus' warning when something was cut. sorted: v is one
 * storage answer, already sorted and de-duplicated. */
static void reply_strings(struct obs_http_req *r, char **v, size_t n, long limit, int sorted)
{
    struct obs_sbuf b;
    obs_sbuf_init(&b);
    if (n > 1 && !sorted)
        qsort(v, n, sizeof *v, cmp_str);
    obs_sbuf_reserve(&b, 64 + n * 16);
    obs_sbuf_puts(&b, "{\"status\":\"success\",\"data\":[");
    size_t out = 0;
    int truncated = 0;
    for (size_t i = 0; i < n; i++) {
        if (!sorted && i > 0 && strcmp(v[i], v[i - 1]) == 0)
            continue; /* a sorted answer comes de-duplicated (storage.h) */
        if (limit > 0 && out >= (size_t)limit) {
            truncated = 1;
            break;
        }
        json_item(&b, v[i], out++ > 0);
    }
    obs_sbuf_puts(&b, truncated ? "],\"warnings\":[\"" TRUNCATED_WARNING "\"]}" : "]}");
    mtd_strings_free(v, n);
    if (b.oom) {
        obs_sbuf_deinit(&b);
        obs_http_reply_prom_error(r, 500, "internal", "out of memory");
        return;
    }
    obs_http_reply_sbuf(r, 200, "application/json", &b);
    obs_sbuf_deinit(&b);
}

/* Append src (consumed) to the growing list *dst. */
static int strings_concat(char ***dst, size_t *nd, char **src, size_t ns)
{
    char **nv = obs_realloc(*dst, (*nd + ns + 1) * sizeof *nv);
    if (nv == NULL) {
        mtd_strings_free(src, ns);
        return OBS_ENOMEM;
    }
    memcpy(nv + *nd, src, ns * sizeof *src);
    *nd += ns;
    *dst = nv;
    obs_free(src);
    return 0;
}

/* Shared body of /labels and /label/<name>/values: name == NULL lists names. */
static void labels_common(struct obs_http_req *r, struct obs_ctx *ctx, const char *name)
{
    struct meta_params p;
    struct mtd_storage *st = storage_of(r, ctx);
    if (st == NULL || params_parse(r, &p, META_LABELS) != 0)
        return;
    const char *tenant = obs_http_req_tenant(r, "anonymous");
    char **all = NULL;
    size_t nall = 0;
    size_t rounds = p.nsets ? p.nsets : 1;
    for (size_t i = 0; i < rounds; i++) {
        char **v = NULL;
        size_t n = 0;
        struct obs_err err = {0};
        const struct obs_matcher *ms = p.nsets ? p.sets[i] : NULL;
        size_t nms = p.nsets ? p.nms[i] : 0;
        int rc = name ? mtd_storage_label_values(st, tenant, name, ms, nms, p.start, p.end, &v,
                                                 &n, &err)
                      : mtd_storage_label_names(st, tenant, ms, nms, p.start, p.end, &v, &n,
                                                &err);
        if (rc == 0)
            rc = strings_concat(&all, &nall, v, n);
        if (rc != 0) {
            mtd_strings_free(all, nall);
            params_free(&p);
            obs_http_reply_prom_error(r, rc == OBS_ELIMIT ? 422 : 500,
                                      rc == OBS_ELIMIT ? "execution" : "internal", "%s",
                                      err.msg[0] ? err.msg : "out of memory");
            return;
        }
    }
    long limit = p.limit;
    params_free(&p);
    /* One storage answer is already sorted and de-duplicated (storage.h). */
    reply_strings(r, all, nall, limit, rounds == 1);
}

static void h_labels(struct obs_http_req *r, void *arg)
{
    labels_common(r, arg, NULL);
}

/* Is s[0..n) valid UTF-8 (no surrogates, no overlong forms)? */
static int utf8_valid(const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4
                                                                                           : 0;
        if (len == 0 || i + len > n)
            return 0;
        unsigned cp = len == 1 ? c : c & (0x7f >> len);
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return 0;
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        static const unsigned minv[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < minv[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += len;
    }
    return 1;
}

/* Append code point cp as UTF-8; returns bytes written (0 when it does not fit). */
static size_t utf8_put(char *out, size_t cap, unsigned cp)
{
    if (cp < 0x80 && cap >= 1) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800 && cap >= 2) {
        out[0] = (char)(0xc0 | cp >> 6);
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000 && cap >= 3) {
        out[0] = (char)(0xe0 | cp >> 12);
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    if (cap >= 4) {
        out[0] = (char)(0xf0 | cp >> 18);
        out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
        out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[3] = (char)(0x80 | (cp & 0x3f));
        return 4;
    }
    return 0;
}

/*
 * Undo Prometheus' "U__" value-encoding escaping of s[0..n) (which starts with "U__") into
 * out: "__" is "_", "_<1..6 hex digits>_" is that code point, other bytes stay. Like
 * Prometheus, a malformed escape leaves the whole name as it was. Returns the length.
 */
static size_t unescape_name(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 3; i < n; i++) {
        if (s[i] != '_') {
            if (o + 1 >= cap)
                goto asis;
            out[o++] = s[i];
            continue;
        }
        if (++i >= n)
            goto asis;
        if (s[i] == '_') {
            if (o + 1 >= cap)
                goto asis;
            out[o++] = '_';
            continue;
        }
        unsigned cp = 0;
        int digits = 0;
        for (; i < n && s[i] != '_'; i++, digits++) {
            char c = s[i] | 0x20;
            if (digits >= 6)
                goto asis;
            if (c >= '0' && c <= '9')
                cp = cp * 16 + (unsigned)(c - '0');
            else if (c >= 'a' && c <= 'f')
                cp = cp * 16 + (unsigned)(c - 'a' + 10);
            else
                goto asis;
        }
        if (i >= n || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            goto asis;
        size_t w = utf8_put(out + o, cap - o - 1, cp);
        if (w == 0)
            goto asis;
        o += w;
    }
    out[o] = '\0';
    return o;
asis:
    if (n >= cap)
        n = cap - 1;
    memcpy(out, s, n);
    out[n] = '\0';
    return n;
}

static void h_label_values(struct obs_http_req *r, void *arg)
{
    const char *rest = obs_http_req_rest(r); /* "<name>/values" */
    const char *slash = strrchr(rest, '/');
    if (slash == NULL || strcmp(slash, "/values") != 0 || slash == rest) {
        obs_http_reply(r, 404, "text/plain; charset=utf-8", "404 page not found\n", 19);
        return;
    }
    char name[1024];
    size_t n = (size_t)(slash - rest);
    if (n >= sizeof name) {
        obs_http_reply_prom_error(r, 400, "bad_data", "invalid label name: \"%.200s...\"", rest);
        return;
    }
    int valid;
    if (n > 3 && strncmp(rest, "U__", 3) == 0) {
        /* Escaped UTF-8 name (Prometheus 3.x): any valid UTF-8 name is accepted. */
        n = unescape_name(rest, n, name, sizeof name);
        valid = n > 0 && utf8_valid((const unsigned char *)name, n);
    } else {
        memcpy(name, rest, n);
        name[n] = '\0';
        valid = obs_label_name_valid(name, n);
    }
    if (!valid) {
        struct obs_sbuf b;
        obs_sbuf_init(&b);
        obs_sbuf_puts(&b, "{\"status\":\"error\",\"errorType\":\"bad_data\",\"error\":");
        struct obs_sbuf m;
        obs_sbuf_init(&m);
        obs_sbuf_puts(&m, "invalid label name: ");
        obs_sbuf_json_str(&m, name, n); /* Go's %q */
        obs_sbuf_json_str(&b, m.p ? m.p : "", m.len);
        obs_sbuf_deinit(&m);
        obs_sbuf_putc(&b, '}');
        obs_http_reply_sbuf(r, 400, "application/json", &b);
        obs_sbuf_deinit(&b);
        return;
    }
    labels_common(r, arg, name);
}

static int cmp_series(const void *a, const void *b)
{
    const struct mtd_series *x = *(const struct mtd_series *const *)a;
    const struct mtd_series *y = *(const struct mtd_series *const *)b;
    size_t n = x->nlabels < y->nlabels ? x->nlabels : y->nlabels;
    for (size_t i = 0; i < n; i++) {
        int c = strcmp(x->labels[i].name, y->labels[i].name);
        if (c)
            return c;
        c = strcmp(x->labels[i].value, y->labels[i].value);
        if (c)
            return c;
    }
    return x->nlabels < y->nlabels ? -1 : x->nlabels > y->nlabels ? 1 : 0;
}

static void h_series(struct obs_http_req *r, void *arg)
{
    struct obs_ctx *ctx = arg;
    struct meta_params p;
    /* Prometheus calls ParseForm first and reports its error (a form body over 10 MiB) */
    const char *fe = obs_http_req_form_error(r);
    if (fe != NULL) {
        obs_http_reply_prom_error(r, 400, "bad_data", "error parsing form values: %s", fe);
        return;
    }
    struct mtd_storage *st = storage_of(r, ctx);
    if (st == NULL || params_parse(r, &p, META_SERIES) != 0)
        return;
    const char *tenant = obs_http_req_tenant(r, "anonymous");
    struct mtd_series_set **sets = obs_calloc(p.nsets, sizeof *sets);
    const struct mtd_series **all = NULL;
    size_t nall = 0;
    struct obs_sbuf b;
    obs_sbuf_init(&b);
    if (sets == NULL)
        goto oom;
    struct mtd_select_opts o = {.mint = p.start, .maxt = p.end, .no_samples = 1};
    struct mtd_app *app = mtd_app_of(ctx);
    if (app->limits.max_fetched_series_per_query > 0)
        o.max_series = (size_t)app->limits.max_fetched_series_per_query;
    for (size_t i = 0; i < p.nsets; i++) {
        struct obs_err err = {0};
        int rc = mtd_storage_select(st, tenant, p.sets[i], p.nms[i], &o, &sets[i], &err);
        if (rc == OBS_ELIMIT) {
            for (size_t k = 0; k < i; k++)
                mtd_series_set_free(sets[k]);
            obs_free(sets);
            params_free(&p);
            obs_http_reply_prom_error(r, 422, "execution", "%s", err.msg);
            return;
        }
        if (rc != 0)
            goto oom;
        nall += sets[i]->nseries;
    }
    all = obs_malloc((nall ? nall : 1) * sizeof *all);
    if (all == NULL)
        goto oom;
    nall = 0;
    for (size_t i = 0; i < p.nsets; i++)
        for (size_t k = 0; k < sets[i]->nseries; k++)
            all[nall++] = &sets[i]->series[k];
    if (p.nsets > 1)
        qsort(all, nall, sizeof *all, cmp_series);
    obs_sbuf_puts(&b, "{\"status\":\"success\",\"data\":[");
    size_t out = 0;
    int truncated = 0;
    for (size_t i = 0; i < nall; i++) {
        if (i > 0 && cmp_series(&all[i], &all[i - 1]) == 0)
            continue;
        if (p.limit > 0 && out >= (size_t)p.limit) {
            truncated = 1;
            break;
        }
        if (out++)
            obs_sbuf_putc(&b, ',');
        obs_sbuf_putc(&b, '{');
        for (size_t k = 0; k < all[i]->nlabels; k++) {
            if (k)
                obs_sbuf_putc(&b, ',');
            const struct obs_label *l = &all[i]->labels[k];
            obs_sbuf_json_str(&b, l->name, strlen(l->name));
            obs_sbuf_putc(&b, ':');
            obs_sbuf_json_str(&b, l->value, strlen(l->value));
        }
        obs_sbuf_putc(&b, '}');
    }
    obs_sbuf_puts(&b, truncated ? "],\"warnings\":[\"" TRUNCATED_WARNING "\"]}" : "]}");
    if (b.oom)
        goto oom;
    obs_http_reply_sbuf(r, 200, "application/json", &b);
    goto out;
oom:
    obs_http_reply_prom_error(r, 500, "internal", "out of memory");
out:
    obs_sbuf_deinit(&b);
    obs_free(all);
    for (size_t i = 0; sets && i < p.nsets; i++)
        mtd_series_set_free(sets[i]);
    obs_free(sets);
    params_free(&p);
}

static int meta_emit(const char *family, int type, const char *help, const char *unit,
                     void *arg)
{
    struct obs_sbuf *b = arg;
    if (b->len > 0 && b->p[b->len - 1] != '{')
        obs_sbuf_putc(b, ',');
    obs_sbuf_json_str(b, family, strlen(family));
    obs_sbuf_puts(b, ":[{\"type\":");
    const char *t = mtd_metric_type_name(type);
    obs_sbuf_json_str(b, t, strlen(t));
    obs_sbuf_puts(b, ",\"help\":");
    obs_sbuf_json_str(b, help, strlen(help));
    obs_sbuf_puts(b, ",\"unit\":");
    obs_sbuf_json_str(b, unit, strlen(unit));
    obs_sbuf_puts(b, "}]");
    return 0;
}

static void h_metadata(struct obs_http_req *r, void *arg)
{
    struct obs_ctx *ctx = arg;
    struct mtd_app *app = mtd_app_of(ctx);
    const char *ls = obs_http_req_param(r, "limit");
    const char *lpm = obs_http_req_param(r, "limit_per_metric");
    const char *metric = obs_http_req_param(r, "metric");
    long limit = -1;
    if (ls && ls[0]) {
        char *end = NULL;
        limit = strtol(ls, &end, 10);
        if (end == ls || *end != '\0') {
            obs_http_reply_prom_error(r, 400, "bad_data", "limit must be a number");
            return;
        }
    }
    /* One metadata entry is kept per family, so any limit_per_metric is already met; it is
     * validated as Prometheus does. */
    if (lpm && lpm[0]) {
        char *end = NULL;
        (void)strtol(lpm, &end, 10);
        if (end == lpm || *end != '\0') {
            obs_http_reply_prom_error(r, 400, "bad_data", "limit_per_metric must be a number");
            return;
        }
    }
    struct obs_sbuf b;
    obs_sbuf_init(&b);
    obs_sbuf_puts(&b, "{\"status\":\"success\",\"data\":{");
    if (app && app->head && limit != 0)
        mtd_head_metadata(app->head, obs_http_req_tenant(r, "anonymous"),
                          metric && metric[0] ? metric : NULL, limit, meta_emit, &b);
    obs_sbuf_puts(&b, "}}");
    if (b.oom) {
        obs_sbuf_deinit(&b);
        obs_http_reply_prom_error(r, 500, "internal", "out of memory");
        return;
    }
    obs_http_reply_sbuf(r, 200, "application/json", &b);
    obs_sbuf_deinit(&b);
}

int mtd_api_meta_register(struct obs_ctx *ctx)
{
    int rc = 0;
    /* Prometheus (Go) HTTP behaviour: forms, strict methods, JSON escapes (obs_http.h) */
    const unsigned go = OBS_HTTP_GO_FORM | OBS_HTTP_STRICT_METHODS | OBS_HTTP_GO_JSON;
    rc |= obs_http_route_opts(ctx->http, "GET,POST", "/api/v1/labels", 0, go, h_labels, ctx);
    /* Prometheus routes label values for GET only (POST gets 405) */
    rc |= obs_http_route_opts(ctx->http, "GET", "/api/v1/label/*", 0, go, h_label_values, ctx);
    rc |= obs_http_route_opts(ctx->http, "GET,POST", "/api/v1/series", 0, go, h_series, ctx);
    /* DELETE /api/v1/series: Prometheus answers 500 "not implemented"; metricsd keeps it at
     * 405 (a client request never gets a 5xx here; test_bad_requests holds that). */
    rc |= obs_http_route_opts(ctx->http, "GET", "/api/v1/metadata", 0, go, h_metadata, ctx);
    rc |= mtd_api_read_register(ctx);
    rc |= mtd_api_status_register(ctx);
    return rc ? OBS_ENOMEM : 0;
}
