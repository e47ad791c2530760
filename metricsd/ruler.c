/*
 * ruler.c -- Prometheus rule evaluation: recording and alerting rules from rule files.
 *
 * Config (`ruler:` section):
 *   rule_files: [path or glob, ...]      Prometheus rule files (groups: name, interval, rules)
 *   evaluation_interval: 15s             default group interval
 *   alertmanager_url: http://127.0.0.1:9093   receiver (POST <url>/api/v2/alerts); "" = none
 *   external_url: http://localhost:9090  base of each alert's generatorURL
 *   resend_delay: 1m                     resend firing alerts this often (Prometheus' default)
 *   tenant: anonymous                    tenant whose data the rules read and write
 *
 * Each group evaluates on its own libevent timer on the loop. A recording rule appends its
 * result (name replaced, rule labels added) through mtd_storage_append(), and writes stale
 * markers for series that disappeared since the previous evaluation. An alerting rule keeps
 * one alert per output label set: pending until `for` has elapsed, then firing; when the
 * series vanishes a firing alert becomes resolved (kept 15m so the resolution is resent).
 * Labels and annotations support a template subset: {{ $labels.x }}, {{ .Labels.x }},
 * {{ $value }}, {{ .Value }}, and {{ $value | f }} with f one of humanize, humanize1024,
 * humanizePercentage, humanizeDuration, printf "%.2f" (others print %.4g).
 * Alerts are handed as ready JSON to a sender thread (bounded queue) which POSTs them with
 * obs_httpc_do, so the loop never waits on the network. /api/v1/rules and /api/v1/alerts
 * answer in Prometheus' shape.
 */
#include <event2/event.h>
#include <ctype.h>
#include <glob.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/obs_cf.h"
#include "core/obs_log.h"
#include "core/obs_mem.h"
#include "core/obs_sbuf.h"
#include "core/obs_time.h"
#include "http/obs_http.h"
#include "labels/obs_labels.h"
#include "metricsd/metricsd.h"
#include "metricsd/querier.h"
#include "metricsd/storage.h"

const char *const mtd_ruler_deps[] = {"querier", NULL};

#define RESOLVED_RETENTION_MS (15 * 60 * 1000)
#define SEND_QUEUE_MAX 256

struct ruler_cfg {
    struct obs_strlist rule_files;
    int64_t evaluation_interval_ms;
    char *alertmanager_url;
    char *external_url;
    int64_t resend_delay_ms;
    char *tenant;
};

static const struct obs_cfmap ruler_map[] = {
    {"rule_files", OBS_CFT_STRLIST, NULL, offsetof(struct ruler_cfg, rule_files),
     "rule files (globs allowed)", NULL, NULL},
    {"evaluation_interval", OBS_CFT_DURATION, "15s",
     offsetof(struct ruler_cfg, evaluation_interval_ms), "default group interval", NULL, NULL},
    {"alertmanager_url", OBS_CFT_STR, "", offsetof(struct ruler_cfg, alertmanager_url),
     "Alertmanager base URL (POST /api/v2/alerts)", NULL, NULL},
    {"external_url", OBS_CFT_STR, "http://localhost:9090",
     offsetof(struct ruler_cfg, external_url), "base URL for generatorURL", NULL, NULL},
    {"resend_delay", OBS_CFT_DURATION, "1m", offsetof(struct ruler_cfg, resend_delay_ms),
     "resend firing alerts this often", NULL, NULL},
    {"tenant", OBS_CFT_STR, "anonymous", offsetof(struct ruler_cfg, tenant),
     "tenant the rules evaluate against", NULL, NULL},
    {"rule_path", OBS_CFT_IGNORE, NULL, 0, "accepted (Mimir)", NULL, NULL},
    {"enable_api", OBS_CFT_IGNORE, NULL, 0, "accepted (Mimir); the API is always on", NULL,
     NULL},
    {NULL, 0, NULL, 0, NULL, NULL, NULL},
};

enum alert_state { AS_INACTIVE = 0, AS_PENDING, AS_FIRING };

struct kv {
    char *name, *value;
};

struct alert {
    char *key;             /* label-set identity */
    struct kv *labels;     /* sorted by name */
    size_t nlabels;
    struct kv *annos;
    size_t nannos;
    enum alert_state state;
    double value;
    int64_t active_at, fired_at, resolved_at, last_sent, valid_until;
    int seen;
};

struct rule {
    int alerting;
    char *name;
    char *expr_text;
    struct mtd_ql_expr *expr;
    int64_t for_ms, keep_firing_for_ms;
    struct kv *labels;
    size_t nlabels;
    struct kv *annos;
    size_t nannos;
    struct alert *alerts;
    size_t nalerts, capalerts;
    char **prev_series;    /* recording: series keys written last time (for stale markers) */
    size_t nprev;
    char *last_error;
    int64_t last_eval;
    double eval_seconds;
};

struct group {
    struct ruler *r;
    char *name, *file;
    int64_t interval_ms;
    struct rule *rules;
    size_t nrules;
    struct event *timer;
    int64_t last_eval;
    double eval_seconds;
};

struct ruler {
    struct obs_ctx *ctx;
    struct ruler_cfg cfg;
    struct group *groups;
    size_t ngroups;
    /* sender thread */
    pthread_t thread;
    int thread_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    char *queue[SEND_QUEUE_MAX];
    size_t qhead, qlen;
    int stopping;
};

/* ---------------------------------------------------------------- helpers */
static char *xstrdup(const char *s)
{
    size_t n = strlen(s);
    char *p = obs_malloc(n + 1);
    if (p)
        memcpy(p, s, n + 1);
    return p;
}

static void kv_free(struct kv *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        obs_free(v[i].name);
        obs_free(v[i].value);
    }
    obs_free(v);
}

static int kv_cmp(const void *a, const void *b)
{
    return strcmp(((const struct kv *)a)->name, ((const struct kv *)b)->name);
}

/* Read a string map (labels:/annotations:) from a YAML node. */
static int read_map(const struct obs_cf_node *n, struct kv **out, size_t *nout,
                    struct obs_err *err)
{
    *out = NULL;
    *nout = 0;
    if (!n || n->type == OBS_CF_NULL)
        return 0;
    if (n->type != OBS_CF_MAP)
        return obs_cf_error(err, n, "expected a map");
    struct kv *v = obs_calloc(n->n + 1, sizeof(*v));
    if (!v)
        return obs_err_set(err, OBS_ENOMEM, "out of memory");
    for (size_t i = 0; i < n->n; i++) {
        const char *val;
        if (obs_cf_str(n->items[i], &val, err) < 0) {
            kv_free(v, i);
            return OBS_EINVAL;
        }
        v[i].name = xstrdup(n->items[i]->key);
        v[i].value = xstrdup(val ? val : "");
    }
    *out = v;
    *nout = n->n;
    return 0;
}

/* Format value through a template pipe function as Prometheus' template functions do:
 * humanize (SI prefixes), humanize1024 (Ki, Mi, ...), humanizePercentage (x100 %),
 * humanizeDuration (seconds as "1d 2h 3m 4s" or "12ms"), printf "<fmt>" (one float verb);
 * unknown functions fall back to %.4g. fn is the text after '|'. */
static void pipe_format(char *out, size_t cap, const char *fn, double v)
{
    while (*fn == ' ')
        fn++;
    size_t fl = strcspn(fn, " |");
    if (!isfinite(v) || (v == 0 && fl != 18)) {
        if (strncmp(fn, "humanizeDuration", fl) == 0 && fl == 16 && v == 0)
            snprintf(out, cap, "0s");
        else
            snprintf(out, cap, "%.4g", v);
        return;
    }
    if (fl == 8 && strncmp(fn, "humanize", 8) == 0) {
        static const char *big[] = {"k", "M", "G", "T", "P", "E", "Z", "Y"};
        static const char *small[] = {"m", "u", "n", "p", "f", "a", "z", "y"};
        const char *pre = "";
        if (fabs(v) >= 1) {
            for (int i = 0; i < 8 && fabs(v) >= 1000; i++) {
                pre = big[i];
                v /= 1000;
            }
        } else {
            for (int i = 0; i < 8 && fabs(v) < 1; i++) {
                pre = small[i];
                v *= 1000;
            }
        }
        snprintf(out, cap, "%.4g%s", v, pre);
    } else if (fl == 11 && strncmp(fn, "humanize1024", 11) == 0) {
        static const char *pre2[] = {"Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"};
        const char *pre = "";
        for (int i = 0; i < 8 && fabs(v) >= 1024; i++) {
            pre = pre2[i];
            v /= 1024;
        }
        snprintf(out, cap, "%.4g%s", v, pre);
    } else if (fl == 18 && strncmp(fn, "humanizePercentage", 18) == 0) {
        snprintf(out, cap, "%.4g%%", v * 100);
    } else if (fl == 16 && strncmp(fn, "humanizeDuration", 16) == 0) {
        const char *sign = v < 0 ? "-" : "";
        v = fabs(v);
        if (v < 1) {
            if (v >= 1e-3)
                snprintf(out, cap, "%s%.4gms", sign, v * 1e3);
            else if (v >= 1e-6)
                snprintf(out, cap, "%s%.4gus", sign, v * 1e6);
            else
                snprintf(out, cap, "%s%.4gns", sign, v * 1e9);
            return;
        }
        long long secs = (long long)v;
        long long d = secs / 86400, h = secs / 3600 % 24, m = secs / 60 % 60;
        double sec = fmod(v, 60);
        if (d)
            snprintf(out, cap, "%s%lldd %lldh %lldm %.4gs", sign, d, h, m, sec);
        else if (h)
            snprintf(out, cap, "%s%lldh %lldm %.4gs", sign, h, m, sec);
        else if (m)
            snprintf(out, cap, "%s%lldm %.4gs", sign, m, sec);
        else
            snprintf(out, cap, "%s%.4gs", sign, sec);
    } else if (fl == 6 && strncmp(fn, "printf", 6) == 0) {
        /* printf "%.2f": accept exactly one floating-point verb, nothing else */
        const char *q = strchr(fn, '"');
        const char *qe = q ? strchr(q + 1, '"') : NULL;
        char f[32];
        size_t n = q && qe ? (size_t)(qe - q - 1) : 0;
        int verbs = 0, ok = n > 0 && n < sizeof(f);
        if (ok) {
            memcpy(f, q + 1, n);
            f[n] = 0;
            for (const char *c = f; *c; c++) {
                if (*c != '%')
                    continue;
                if (c[1] == '%') {
                    c++;
                    continue;
                }
                const char *t = c + 1 + strspn(c + 1, "0123456789.+- #");
                if (*t != 'f' && *t != 'g' && *t != 'e' && *t != 'G' && *t != 'E')
                    ok = 0;
                verbs++;
                c = t;
            }
        }
        if (ok && verbs == 1)
            snprintf(out, cap, f, v);
        else
            snprintf(out, cap, "%.4g", v);
    } else {
        snprintf(out, cap, "%.4g", v);
    }
}

/* Expand the template subset against labels and value. */
static void expand_template(struct obs_sbuf *b, const char *t, const struct obs_label *l,
                            size_t nl, double value)
{
    const char *p = t;
    while (*p) {
        const char *o = strstr(p, "{{");
        if (!o) {
            obs_sbuf_puts(b, p);
            break;
        }
        obs_sbuf_append(b, p, (size_t)(o - p));
        const char *c = strstr(o + 2, "}}");
        if (!c) {
            obs_sbuf_puts(b, o);
            break;
        }
        char expr[256];
        size_t n = (size_t)(c - (o + 2));
        if (n >= sizeof(expr))
            n = sizeof(expr) - 1;
        memcpy(expr, o + 2, n);
        expr[n] = 0;
        /* trim "-" trim markers, spaces, and anything after a pipe */
        char *s = expr;
        while (*s == ' ' || *s == '-')
            s++;
        char *pipe = strchr(s, '|');
        if (pipe)
            *pipe = 0;
        char *e = s + strlen(s);
        while (e > s && (e[-1] == ' ' || e[-1] == '-'))
            *--e = 0;
        const char *lab = NULL;
        if (strncmp(s, "$labels.", 8) == 0)
            lab = s + 8;
        else if (strncmp(s, ".Labels.", 8) == 0)
            lab = s + 8;
        if (lab) {
            const char *v = obs_labels_get(l, nl, lab);
            if (v)
                obs_sbuf_puts(b, v);
        } else if (strcmp(s, "$value") == 0 || strcmp(s, ".Value") == 0) {
            char num[96];
            if (pipe)
                pipe_format(num, sizeof(num), pipe + 1, value);
            else
                obs_fmt_float(num, sizeof(num), value);
            obs_sbuf_puts(b, num);
        }
        p = c + 2;
    }
}

static void json_kv(struct obs_sbuf *b, const struct kv *v, size_t n)
{
    obs_sbuf_putc(b, '{');
    for (size_t i = 0; i < n; i++) {
        if (i)
            obs_sbuf_putc(b, ',');
        obs_sbuf_json_str(b, v[i].name, strlen(v[i].name));
        obs_sbuf_putc(b, ':');
        obs_sbuf_json_str(b, v[i].value, strlen(v[i].value));
    }
    obs_sbuf_putc(b, '}');
}

static void json_time(struct obs_sbuf *b, int64_t ms)
{
    char t[64];
    obs_time_format_rfc3339(t, sizeof(t), ms);
    obs_sbuf_printf(b, "\"%s\"", t);
}

/* ---------------------------------------------------------------- sender thread */
static void *sender_main(void *arg)
{
    struct ruler *r = arg;
    char url[1024];
    snprintf(url, sizeof(url), "%s/api/v2/alerts", r->cfg.alertmanager_url);
    /* strip a double slash from a trailing '/' in the base URL */
    char *dbl = strstr(url + 8, "//");
    if (dbl)
        memmove(dbl, dbl + 1, strlen(dbl));
    static const char *const headers[] = {"Content-Type: application/json", NULL};
    for (;;) {
        pthread_mutex_lock(&r->mu);
        while (r->qlen == 0 && !r->stopping)
            pthread_cond_wait(&r->cv, &r->mu);
        if (r->qlen == 0 && r->stopping) {
            pthread_mutex_unlock(&r->mu);
            break;
        }
        char *body = r->queue[r->qhead];
        r->qhead = (r->qhead + 1) % SEND_QUEUE_MAX;
        r->qlen--;
        int stopping = r->stopping;
        pthread_mutex_unlock(&r->mu);
        struct obs_httpc_resp resp;
        obs_sbuf_init(&resp.body);
        struct obs_err err = {0};
        int rc = obs_httpc_do("POST", url, headers, body, strlen(body), stopping ? 2000 : 10000,
                              &resp, &err);
        if (rc < 0)
            obs_clog_warn("ruler", "sending alerts failed url=%s err=\"%s\"", url, err.msg);
        else if (resp.status / 100 != 2)
            obs_clog_warn("ruler", "alertmanager refused alerts url=%s status=%d body=\"%.200s\"",
                          url, resp.status, resp.body.p ? resp.body.p : "");
        else
            obs_clog_info("ruler", "sent alerts url=%s bytes=%zu", url, strlen(body));
        obs_sbuf_deinit(&resp.body);
        obs_free(body);
    }
    return NULL;
}

/* Queue a JSON body (takes ownership). Drops the oldest when full. */
static void send_take(struct ruler *r, char *body)
{
    if (!r->thread_started) {
        obs_free(body);
        return;
    }
    pthread_mutex_lock(&r->mu);
    if (r->qlen == SEND_QUEUE_MAX) {
        obs_free(r->queue[r->qhead]);
        r->qhead = (r->qhead + 1) % SEND_QUEUE_MAX;
        r->qlen--;
        obs_clog_warn("ruler", "alert send queue full; dropped the oldest batch");
    }
    r->queue[(r->qhead + r->qlen) % SEND_QUEUE_MAX] = body;
    r->qlen++;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

/* ---------------------------------------------------------------- evaluation */
static void url_encode(struct obs_sbuf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~')
            obs_sbuf_putc(b, (char)c);
        else {
            obs_sbuf_putc(b, '%');
            obs_sbuf_putc(b, hex[c >> 4]);
            obs_sbuf_putc(b, hex[c & 15]);
        }
    }
}

static void alert_free(struct alert *a)
{
    obs_free(a->key);
    kv_free(a->labels, a->nlabels);
    kv_free(a->annos, a->nannos);
}

static int alert_needs_sending(const struct alert *a, int64_t now, int64_t resend)
{
    if (a->state == AS_PENDING)
        return 0;
    if (a->resolved_at && a->resolved_at > a->last_sent)
        return 1;
    return a->last_sent + resend <= now;
}

static void append_alert_json(struct ruler *r, struct obs_sbuf *b, const struct rule *ru,
                              const struct alert *a)
{
    obs_sbuf_puts(b, "{\"labels\":");
    json_kv(b, a->labels, a->nlabels);
    obs_sbuf_puts(b, ",\"annotations\":");
    json_kv(b, a->annos, a->nannos);
    obs_sbuf_puts(b, ",\"startsAt\":");
    json_time(b, a->fired_at ? a->fired_at : a->active_at);
    obs_sbuf_puts(b, ",\"endsAt\":");
    json_time(b, a->resolved_at ? a->resolved_at : a->valid_until);
    obs_sbuf_puts(b, ",\"generatorURL\":\"");
    struct obs_sbuf u;
    obs_sbuf_init(&u);
    obs_sbuf_puts(&u, r->cfg.external_url);
    obs_sbuf_puts(&u, "/graph?g0.expr=");
    url_encode(&u, ru->expr_text);
    obs_sbuf_puts(&u, "&g0.tab=1");
    if (u.p)
        obs_sbuf_append(b, u.p, u.len);
    obs_sbuf_deinit(&u);
    obs_sbuf_puts(b, "\"}");
}

static char *labels_key(const struct obs_label *l, size_t n)
{
    struct obs_sbuf b;
    obs_sbuf_init(&b);
    for (size_t i = 0; i < n; i++) {
        obs_sbuf_puts(&b, l[i].name);
        obs_sbuf_putc(&b, '\xff');
        obs_sbuf_puts(&b, l[i].value);
        obs_sbuf_putc(&b, '\xff');
    }
    obs_sbuf_putc(&b, 0);
    char *k = b.oom ? NULL : obs_sbuf_take(&b, NULL);
    obs_sbuf_deinit(&b);
    return k;
}

/* Build the output labels of one result sample for a rule: sample labels (minus __name__
 * for alerts; name replaced for records) + templated rule labels (+ alertname). Returns a
 * malloc'd sorted array of obs_label with malloc'd strings. */
static struct obs_label *rule_labels(const struct rule *ru, const struct obs_label *sl,
                                     size_t nsl, double value, size_t *nout)
{
    size_t cap = nsl + ru->nlabels + 2, n = 0;
    struct obs_label *o = obs_calloc(cap, sizeof(*o));
    if (!o)
        return NULL;
    for (size_t i = 0; i < nsl; i++) {
        if (strcmp(sl[i].name, "__name__") == 0)
            continue;
        o[n].name = xstrdup(sl[i].name);
        o[n++].value = xstrdup(sl[i].value);
    }
    for (size_t i = 0; i < ru->nlabels; i++) {
        struct obs_sbuf b;
        obs_sbuf_init(&b);
        expand_template(&b, ru->labels[i].value, sl, nsl, value);
        char *v = xstrdup(b.p ? b.p : "");
        obs_sbuf_deinit(&b);
        size_t k;
        for (k = 0; k < n; k++)
            if (strcmp(o[k].name, ru->labels[i].name) == 0)
                break;
        if (k < n) {
            obs_free((char *)o[k].value);
            o[k].value = v;
        } else {
            o[n].name = xstrdup(ru->labels[i].name);
            o[n++].value = v;
        }
    }
    const char *nm = ru->alerting ? "alertname" : "__name__";
    size_t k;
    for (k = 0; k < n; k++)
        if (strcmp(o[k].name, nm) == 0)
            break;
    if (k < n) {
        obs_free((char *)o[k].value);
        o[k].value = xstrdup(ru->name);
    } else {
        o[n].name = xstrdup(nm);
        o[n++].value = xstrdup(ru->name);
    }
    /* drop empty values (Prometheus removes labels templated to "") */
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        if (!o[i].value || !*o[i].value) {
            obs_free((char *)o[i].name);
            obs_free((char *)o[i].value);
            continue;
        }
        o[w++] = o[i];
    }
    obs_labels_sort(o, w);
    *nout = w;
    return o;
}

static void labels_free(struct obs_label *l, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        obs_free((char *)l[i].name);
        obs_free((char *)l[i].value);
    }
    obs_free(l);
}

static void eval_record(struct ruler *r, struct rule *ru, const struct mtd_ql_result *res,
                        int64_t now)
{
    struct mtd_app *app = mtd_app_of(r->ctx);
    char **keys = obs_calloc(res->nseries + 2, sizeof(char *));
    size_t nkeys = 0;
    struct obs_err err = {0};
    size_t n = res->type == MTD_QL_SCALAR ? 1 : res->nseries;
    for (size_t i = 0; i < n; i++) {
        const struct obs_label *sl = NULL;
        size_t nsl = 0;
        double v = res->scalar;
        if (res->type != MTD_QL_SCALAR) {
            sl = res->series[i].labels;
            nsl = res->series[i].nlabels;
            v = res->series[i].pts[0].v;
        }
        size_t nl;
        struct obs_label *l = rule_labels(ru, sl, nsl, v, &nl);
        if (!l)
            continue;
        struct mtd_sample s = {now, v};
        int rc = mtd_storage_append(app->storage, r->cfg.tenant, l, nl, &s, 1, &err);
        if (rc < 0) {
            obs_free(ru->last_error);
            ru->last_error = xstrdup(err.msg);
        }
        if (keys)
            keys[nkeys++] = labels_key(l, nl);
        labels_free(l, nl);
    }
    /* stale markers for series that vanished */
    for (size_t i = 0; i < ru->nprev; i++) {
        int found = 0;
        for (size_t k = 0; k < nkeys && !found; k++)
            found = keys[k] && strcmp(keys[k], ru->prev_series[i]) == 0;
        if (!found && ru->prev_series[i]) {
            /* decode the key back into labels */
            struct obs_label l[64];
            size_t nl = 0;
            char *dup = xstrdup(ru->prev_series[i]);
            char *p = dup;
            while (p && *p && nl < 64) {
                char *a = strchr(p, '\xff');
                if (!a)
                    break;
                *a = 0;
                char *bb = strchr(a + 1, '\xff');
                if (!bb)
                    break;
                *bb = 0;
                l[nl].name = p;
                l[nl++].value = a + 1;
                p = bb + 1;
            }
            uint64_t bits = MTD_STALE_NAN_BITS;
            struct mtd_sample s = {now, 0};
            memcpy(&s.v, &bits, sizeof(bits));
            mtd_storage_append(app->storage, r->cfg.tenant, l, nl, &s, 1, NULL);
            obs_free(dup);
        }
        obs_free(ru->prev_series[i]);
    }
    obs_free(ru->prev_series);
    ru->prev_series = keys;
    ru->nprev = keys ? nkeys : 0;
}

static void eval_alert(struct ruler *r, struct group *g, struct rule *ru,
                       const struct mtd_ql_result *res, int64_t now, struct obs_sbuf *out,
                       int *nout)
{
    for (size_t i = 0; i < ru->nalerts; i++)
        ru->alerts[i].seen = 0;
    size_t n = res->type == MTD_QL_SCALAR ? 1 : res->nseries;
    for (size_t i = 0; i < n; i++) {
        const struct obs_label *sl = NULL;
        size_t nsl = 0;
        double v = res->scalar;
        if (res->type != MTD_QL_SCALAR) {
            sl = res->series[i].labels;
            nsl = res->series[i].nlabels;
            v = res->series[i].pts[0].v;
        }
        size_t nl;
        struct obs_label *l = rule_labels(ru, sl, nsl, v, &nl);
        if (!l)
            continue;
        char *key = labels_key(l, nl);
        struct alert *a = NULL;
        for (size_t k = 0; k < ru->nalerts && key; k++)
            if (strcmp(ru->alerts[k].key, key) == 0)
                a = &ru->alerts[k];
        if (a && a->resolved_at) {
            /* resolved earlier and active again: start over */
            alert_free(a);
            *a = ru->alerts[--ru->nalerts];
            a = NULL;
        }
        if (!a && key) {
            if (ru->nalerts == ru->capalerts) {
                size_t nc = ru->capalerts ? ru->capalerts * 2 : 8;
                struct alert *na = obs_realloc(ru->alerts, nc * sizeof(*na));
                if (!na) {
                    obs_free(key);
                    labels_free(l, nl);
                    continue;
                }
                ru->alerts = na;
                ru->capalerts = nc;
            }
            a = &ru->alerts[ru->nalerts++];
            memset(a, 0, sizeof(*a));
            a->key = key;
            key = NULL;
            a->state = AS_PENDING;
            a->active_at = now;
            a->labels = obs_calloc(nl + 1, sizeof(struct kv));
            for (size_t k = 0; a->labels && k < nl; k++) {
                a->labels[k].name = xstrdup(l[k].name);
                a->labels[k].value = xstrdup(l[k].value);
            }
            a->nlabels = a->labels ? nl : 0;
        }
        obs_free(key);
        if (!a) {
            labels_free(l, nl);
            continue;
        }
        a->seen = 1;
        a->value = v;
        /* annotations are re-rendered each evaluation ($value changes) */
        kv_free(a->annos, a->nannos);
        a->annos = obs_calloc(ru->nannos + 1, sizeof(struct kv));
        a->nannos = 0;
        for (size_t k = 0; a->annos && k < ru->nannos; k++) {
            struct obs_sbuf b;
            obs_sbuf_init(&b);
            expand_template(&b, ru->annos[k].value, sl, nsl, v);
            a->annos[k].name = xstrdup(ru->annos[k].name);
            a->annos[k].value = xstrdup(b.p ? b.p : "");
            a->nannos++;
            obs_sbuf_deinit(&b);
        }
        labels_free(l, nl);
    }
    /* state transitions */
    int64_t resend = r->cfg.resend_delay_ms;
    int64_t valid = 4 * (resend > g->interval_ms ? resend : g->interval_ms);
    for (size_t i = 0; i < ru->nalerts;) {
        struct alert *a = &ru->alerts[i];
        if (!a->seen) {
            if (a->state == AS_PENDING ||
                (a->resolved_at && now - a->resolved_at > RESOLVED_RETENTION_MS)) {
                alert_free(a);
                *a = ru->alerts[--ru->nalerts];
                continue;
            }
            if (a->state == AS_FIRING && !a->resolved_at) {
                if (ru->keep_firing_for_ms > 0 && now - a->active_at < 0) {
                    /* unreachable; keep_firing_for handled below */
                }
                a->resolved_at = now;
                a->state = AS_INACTIVE;
            }
        } else if (a->state == AS_PENDING && now - a->active_at >= ru->for_ms) {
            a->state = AS_FIRING;
            a->fired_at = now;
        }
        if (a->state == AS_FIRING)
            a->valid_until = now + valid;
        if ((a->state == AS_FIRING || a->resolved_at) && alert_needs_sending(a, now, resend)) {
            if (*nout)
                obs_sbuf_putc(out, ',');
            append_alert_json(r, out, ru, a);
            (*nout)++;
            a->last_sent = now;
        }
        i++;
    }
}

static void eval_group(struct group *g)
{
    struct ruler *r = g->r;
    struct mtd_app *app = mtd_app_of(r->ctx);
    if (!app->storage)
        return;
    int64_t now = obs_now_ms();
    int64_t t0 = obs_mono_ns();
    struct obs_sbuf out;
    obs_sbuf_init(&out);
    obs_sbuf_putc(&out, '[');
    int nout = 0;
    for (size_t i = 0; i < g->nrules; i++) {
        struct rule *ru = &g->rules[i];
        int64_t r0 = obs_mono_ns();
        struct mtd_ql_opts o;
        mtd_querier_opts(r->ctx, g->interval_ms, &o);
        struct mtd_ql_result *res = NULL;
        struct obs_err err = {0};
        int rc = mtd_ql_exec_instant(ru->expr, app->storage, r->cfg.tenant, now, &o, &res, &err);
        obs_free(ru->last_error);
        ru->last_error = NULL;
        if (rc < 0) {
            ru->last_error = xstrdup(err.msg);
            obs_clog_warn("ruler", "rule evaluation failed group=%s rule=%s err=\"%s\"", g->name,
                          ru->name, err.msg);
        } else if (ru->alerting) {
            eval_alert(r, g, ru, res, now, &out, &nout);
        } else {
            eval_record(r, ru, res, now);
        }
        mtd_ql_result_free(res);
        ru->last_eval = now;
        ru->eval_seconds = (double)(obs_mono_ns() - r0) / 1e9;
    }
    obs_sbuf_putc(&out, ']');
    g->last_eval = now;
    g->eval_seconds = (double)(obs_mono_ns() - t0) / 1e9;
    if (nout > 0 && !out.oom && r->cfg.alertmanager_url && *r->cfg.alertmanager_url)
        send_take(r, obs_sbuf_take(&out, NULL));
    obs_sbuf_deinit(&out);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct group *g = arg;
    eval_group(g);
    struct timeval tv = {(time_t)(g->interval_ms / 1000), (suseconds_t)(g->interval_ms % 1000) *
                                                              1000};
    evtimer_add(g->timer, &tv);
}

/* ---------------------------------------------------------------- loading */
static void rule_deinit(struct rule *ru)
{
    obs_free(ru->name);
    obs_free(ru->expr_text);
    mtd_ql_expr_free(ru->expr);
    kv_free(ru->labels, ru->nlabels);
    kv_free(ru->annos, ru->nannos);
    for (size_t i = 0; i < ru->nalerts; i++)
        alert_free(&ru->alerts[i]);
    obs_free(ru->alerts);
    for (size_t i = 0; i < ru->nprev; i++)
        obs_free(ru->prev_series[i]);
    obs_free(ru->prev_series);
    obs_free(ru->last_error);
}

static int load_rule(struct rule *ru, const struct obs_cf_node *n, struct obs_err *err)
{
    memset(ru, 0, sizeof(*ru));
    if (n->type != OBS_CF_MAP)
        return obs_cf_error(err, n, "rule must be a map");
    const struct obs_cf_node *rec = obs_cf_get(n, "record"), *al = obs_cf_get(n, "alert");
    const struct obs_cf_node *ex = obs_cf_get(n, "expr");
    if ((rec != NULL) == (al != NULL))
        return obs_cf_error(err, n, "one of 'record' or 'alert' must be set");
    if (!ex)
        return obs_cf_error(err, n, "field 'expr' must be set in rule");
    for (size_t i = 0; i < n->n; i++) {
        const char *k = n->items[i]->key;
        static const char *known[] = {"record", "alert", "expr", "for", "keep_firing_for",
                                      "labels", "annotations", NULL};
        int ok = 0;
        for (int j = 0; known[j]; j++)
            ok |= strcmp(k, known[j]) == 0;
        if (!ok)
            return obs_cf_error(err, n->items[i], "field %s not found in type rulefmt.Rule", k);
    }
    const char *s;
    ru->alerting = al != NULL;
    if (obs_cf_str(ru->alerting ? al : rec, &s, err) < 0)
        return OBS_EINVAL;
    ru->name = xstrdup(s ? s : "");
    if (!ru->alerting && !obs_metric_name_valid(ru->name, strlen(ru->name)))
        return obs_cf_error(err, rec, "invalid recording rule name: %s", ru->name);
    if (obs_cf_str(ex, &s, err) < 0)
        return OBS_EINVAL;
    ru->expr_text = xstrdup(s ? s : "");
    struct obs_err pe = {0};
    if (mtd_ql_parse(ru->expr_text, &ru->expr, &pe) < 0)
        return obs_cf_error(err, ex, "could not parse expression: %s", pe.msg);
    enum mtd_ql_vtype t = mtd_ql_expr_type(ru->expr);
    if (t != MTD_QL_VECTOR && t != MTD_QL_SCALAR)
        return obs_cf_error(err, ex, "invalid rule expression type %s", mtd_ql_type_name(t));
    const struct obs_cf_node *f = obs_cf_get(n, "for");
    if (f && obs_cf_duration(f, &ru->for_ms, err) < 0)
        return OBS_EINVAL;
    f = obs_cf_get(n, "keep_firing_for");
    if (f && obs_cf_duration(f, &ru->keep_firing_for_ms, err) < 0)
        return OBS_EINVAL;
    if (!ru->alerting && (obs_cf_get(n, "for") || obs_cf_get(n, "annotations")))
        return obs_cf_error(err, n, "invalid field 'for' or 'annotations' in recording rule");
    if (read_map(obs_cf_get(n, "labels"), &ru->labels, &ru->nlabels, err) < 0)
        return OBS_EINVAL;
    if (read_map(obs_cf_get(n, "annotations"), &ru->annos, &ru->nannos, err) < 0)
        return OBS_EINVAL;
    if (ru->nlabels > 1)
        qsort(ru->labels, ru->nlabels, sizeof(struct kv), kv_cmp);
    return 0;
}

static int load_file(struct ruler *r, const char *path, struct obs_err *err)
{
    struct obs_cf_node *root = obs_cf_load_file(path, 0, err);
    if (!root)
        return err->code ? err->code : OBS_EINVAL;
    int rc = 0;
    const struct obs_cf_node *groups = obs_cf_get(root, "groups");
    if (root->type == OBS_CF_MAP) {
        for (size_t i = 0; i < root->n; i++)
            if (strcmp(root->items[i]->key, "groups") != 0) {
                rc = obs_cf_error(err, root->items[i], "field %s not found in type "
                                  "rulefmt.RuleGroups", root->items[i]->key);
                goto out;
            }
    }
    if (!groups || groups->type == OBS_CF_NULL)
        goto out;
    if (groups->type != OBS_CF_SEQ) {
        rc = obs_cf_error(err, groups, "groups must be a list");
        goto out;
    }
    for (size_t i = 0; i < groups->n; i++) {
        const struct obs_cf_node *gn = groups->items[i];
        const struct obs_cf_node *name = obs_cf_get(gn, "name");
        if (!name) {
            rc = obs_cf_error(err, gn, "group name must not be empty");
            goto out;
        }
        struct group *ng = obs_realloc(r->groups, (r->ngroups + 1) * sizeof(*ng));
        if (!ng) {
            rc = obs_err_set(err, OBS_ENOMEM, "out of memory");
            goto out;
        }
        r->groups = ng;
        struct group *g = &r->groups[r->ngroups++];
        memset(g, 0, sizeof(*g));
        g->r = r;
        const char *s;
        obs_cf_str(name, &s, NULL);
        g->name = xstrdup(s ? s : "");
        g->file = xstrdup(path);
        g->interval_ms = r->cfg.evaluation_interval_ms;
        for (size_t k = 0; k < gn->n; k++) {
            const char *key = gn->items[k]->key;
            if (strcmp(key, "name") && strcmp(key, "interval") && strcmp(key, "rules") &&
                strcmp(key, "limit") && strcmp(key, "query_offset") && strcmp(key, "labels")) {
                rc = obs_cf_error(err, gn->items[k], "field %s not found in type "
                                  "rulefmt.RuleGroup", key);
                goto out;
            }
        }
        const struct obs_cf_node *iv = obs_cf_get(gn, "interval");
        if (iv && (rc = obs_cf_duration(iv, &g->interval_ms, err)) < 0)
            goto out;
        if (g->interval_ms <= 0)
            g->interval_ms = 15000;
        const struct obs_cf_node *rules = obs_cf_get(gn, "rules");
        if (rules && rules->type == OBS_CF_SEQ) {
            g->rules = obs_calloc(rules->n + 1, sizeof(struct rule));
            if (!g->rules) {
                rc = obs_err_set(err, OBS_ENOMEM, "out of memory");
                goto out;
            }
            for (size_t k = 0; k < rules->n; k++) {
                g->nrules++;
                if ((rc = load_rule(&g->rules[k], rules->items[k], err)) < 0)
                    goto out;
            }
        }
    }
out:
    obs_cf_free(root);
    return rc;
}

/* ---------------------------------------------------------------- API */
static const char *state_str(enum alert_state s)
{
    return s == AS_FIRING ? "firing" : s == AS_PENDING ? "pending" : "inactive";
}

static void json_alert_api(struct obs_sbuf *b, const struct alert *a)
{
    char v[64];
    snprintf(v, sizeof(v), "%.10e", a->value);
    obs_sbuf_puts(b, "{\"labels\":");
    json_kv(b, a->labels, a->nlabels);
    obs_sbuf_puts(b, ",\"annotations\":");
    json_kv(b, a->annos, a->nannos);
    obs_sbuf_printf(b, ",\"state\":\"%s\",\"activeAt\":", state_str(a->state));
    json_time(b, a->active_at);
    obs_sbuf_printf(b, ",\"value\":\"%s\"}", v);
}

static enum alert_state rule_state(const struct rule *ru)
{
    enum alert_state s = AS_INACTIVE;
    for (size_t i = 0; i < ru->nalerts; i++)
        if (ru->alerts[i].state > s)
            s = ru->alerts[i].state;
    return s;
}

static void h_rules(struct obs_http_req *req, void *arg)
{
    struct ruler *r = arg;
    const char *type = obs_http_req_param(req, "type");
    int want_alert = 1, want_rec = 1;
    if (type && *type) {
        if (strcmp(type, "alert") == 0)
            want_rec = 0;
        else if (strcmp(type, "record") == 0)
            want_alert = 0;
        else {
            obs_http_reply_prom_error(req, 400, "bad_data", "invalid parameter \"type\": not "
                                      "supported value \"%s\"", type);
            return;
        }
    }
    struct obs_sbuf b;
    obs_sbuf_init(&b);
    obs_sbuf_puts(&b, "{\"status\":\"success\",\"data\":{\"groups\":[");
    for (size_t i = 0; i < r->ngroups; i++) {
        struct group *g = &r->groups[i];
        if (i)
            obs_sbuf_putc(&b, ',');
        obs_sbuf_puts(&b, "{\"name\":");
        obs_sbuf_json_str(&b, g->name, strlen(g->name));
        obs_sbuf_puts(&b, ",\"file\":");
        obs_sbuf_json_str(&b, g->file, strlen(g->file));
        obs_sbuf_puts(&b, ",\"rules\":[");
        int first = 1;
        for (size_t k = 0; k < g->nrules; k++) {
            struct rule *ru = &g->rules[k];
            if ((ru->alerting && !want_alert) || (!ru->alerting && !want_rec))
                continue;
            if (!first)
                obs_sbuf_putc(&b, ',');
            first = 0;
            obs_sbuf_putc(&b, '{');
            if (ru->alerting)
                obs_sbuf_printf(&b, "\"state\":\"%s\",", state_str(rule_state(ru)));
            obs_sbuf_puts(&b, "\"name\":");
            obs_sbuf_json_str(&b, ru->name, strlen(ru->name));
            obs_sbuf_puts(&b, ",\"query\":");
            obs_sbuf_json_str(&b, ru->expr_text, strlen(ru->expr_text));
            if (ru->alerting) {
                obs_sbuf_printf(&b, ",\"duration\":%lld,\"keepFiringFor\":%lld",
                                (long long)(ru->for_ms / 1000),
                                (long long)(ru->keep_firing_for_ms / 1000));
            }
            obs_sbuf_puts(&b, ",\"labels\":");
            json_kv(&b, ru->labels, ru->nlabels);
            if (ru->alerting) {
                obs_sbuf_puts(&b, ",\"annotations\":");
                json_kv(&b, ru->annos, ru->nannos);
                obs_sbuf_puts(&b, ",\"alerts\":[");
                int fa = 1;
                for (size_t a = 0; a < ru->nalerts; a++) {
                    if (ru->alerts[a].state == AS_INACTIVE)
                        continue;
                    if (!fa)
                        obs_sbuf_putc(&b, ',');
                    fa = 0;
                    json_alert_api(&b, &ru->alerts[a]);
                }
                obs_sbuf_putc(&b, ']');
            }
            obs_sbuf_printf(&b, ",\"health\":\"%s\",\"lastError\":",
                            ru->last_error ? "err" : ru->last_eval ? "ok" : "unknown");
            const char *le = ru->last_error ? ru->last_error : "";
            obs_sbuf_json_str(&b, le, strlen(le));
            obs_sbuf_printf(&b, ",\"evaluationTime\":%.9f,\"lastEvaluation\":",
                            ru->eval_seconds);
            json_time(&b, ru->last_eval);
            obs_sbuf_printf(&b, ",\"type\":\"%s\"}", ru->alerting ? "alerting" : "recording");
        }
        obs_sbuf_printf(&b, "],\"interval\":%g,\"limit\":0,\"evaluationTime\":%.9f,"
                        "\"lastEvaluation\":", (double)g->interval_ms / 1000.0,
                        g->eval_seconds);
        json_time(&b, g->last_eval);
        obs_sbuf_putc(&b, '}');
    }
    obs_sbuf_puts(&b, "]}}");
    obs_http_reply_sbuf(req, 200, "application/json", &b);
    obs_sbuf_deinit(&b);
}

static void h_alerts(struct obs_http_req *req, void *arg)
{
    struct ruler *r = arg;
    struct obs_sbuf b;
    obs_sbuf_init(&b);
    obs_sbuf_puts(&b, "{\"status\":\"success\",\"data\":{\"alerts\":[");
    int first = 1;
    for (size_t i = 0; i < r->ngroups; i++)
        for (size_t k = 0; k < r->groups[i].nrules; k++) {
            struct rule *ru = &r->groups[i].rules[k];
            for (size_t a = 0; a < ru->nalerts; a++) {
                if (ru->alerts[a].state == AS_INACTIVE)
                    continue;
                if (!first)
                    obs_sbuf_putc(&b, ',');
                first = 0;
                json_alert_api(&b, &ru->alerts[a]);
            }
        }
    obs_sbuf_puts(&b, "]}}");
    obs_http_reply_sbuf(req, 200, "application/json", &b);
    obs_sbuf_deinit(&b);
}

/* ---------------------------------------------------------------- component */
static void ruler_free(struct ruler *r)
{
    for (size_t i = 0; i < r->ngroups; i++) {
        struct group *g = &r->groups[i];
        if (g->timer)
            event_free(g->timer);
        for (size_t k = 0; k < g->nrules; k++)
            rule_deinit(&g->rules[k]);
        obs_free(g->rules);
        obs_free(g->name);
        obs_free(g->file);
    }
    obs_free(r->groups);
    obs_cf_unbind(ruler_map, &r->cfg);
    obs_free(r);
}

int mtd_ruler_init(struct obs_ctx *ctx, struct obs_err *err)
{
    struct mtd_app *app = mtd_app_of(ctx);
    struct ruler *r = obs_calloc(1, sizeof(*r));
    if (!r)
        return obs_err_set(err, OBS_ENOMEM, "out of memory");
    r->ctx = ctx;
    int rc = obs_cf_bind(obs_cf_get(ctx->cfg, "ruler"), ruler_map, &r->cfg, err);
    if (rc < 0) {
        obs_free(r);
        return rc;
    }
    /* Prometheus' top-level rule_files is also accepted. */
    for (size_t i = 0; i < r->cfg.rule_files.n; i++) {
        glob_t gl;
        int grc = glob(r->cfg.rule_files.v[i], 0, NULL, &gl);
        if (grc == GLOB_NOMATCH) {
            obs_clog_warn("ruler", "rule_files pattern matched nothing pattern=%s",
                          r->cfg.rule_files.v[i]);
            continue;
        }
        if (grc != 0) {
            ruler_free(r);
            return obs_err_set(err, OBS_EINVAL, "ruler: bad rule_files pattern %s",
                               r->cfg.rule_files.v[i]);
        }
        for (size_t k = 0; k < gl.gl_pathc; k++) {
            rc = load_file(r, gl.gl_pathv[k], err);
            if (rc < 0) {
                globfree(&gl);
                ruler_free(r);
                return rc;
            }
        }
        globfree(&gl);
    }
    for (size_t i = 0; i < r->ngroups; i++) {
        struct group *g = &r->groups[i];
        g->timer = evtimer_new(ctx->base, on_timer, g);
        if (!g->timer) {
            ruler_free(r);
            return obs_err_set(err, OBS_ENOMEM, "ruler: cannot create timer");
        }
        /* First evaluation soon after start, then every interval. */
        struct timeval tv = {0, 100 * 1000};
        evtimer_add(g->timer, &tv);
    }
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    if (r->cfg.alertmanager_url && *r->cfg.alertmanager_url) {
        if (pthread_create(&r->thread, NULL, sender_main, r) != 0) {
            ruler_free(r);
            return obs_err_set(err, OBS_EIO, "ruler: cannot start sender thread");
        }
        r->thread_started = 1;
    }
    app->ruler = r;
    rc = obs_http_route(ctx->http, "GET", "/api/v1/rules", h_rules, r);
    rc |= obs_http_route(ctx->http, "GET", "/api/v1/alerts", h_alerts, r);
    rc |= obs_http_route(ctx->http, "GET", "/prometheus/api/v1/rules", h_rules, r);
    rc |= obs_http_route(ctx->http, "GET", "/prometheus/api/v1/alerts", h_alerts, r);
    if (rc)
        return obs_err_set(err, OBS_ENOMEM, "ruler: cannot register routes");
    size_t nr = 0;
    for (size_t i = 0; i < r->ngroups; i++)
        nr += r->groups[i].nrules;
    obs_clog_info("ruler", "rules loaded groups=%zu rules=%zu alertmanager=%s", r->ngroups, nr,
                  r->cfg.alertmanager_url && *r->cfg.alertmanager_url ? r->cfg.alertmanager_url
                                                                      : "none");
    return 0;
}

void mtd_ruler_stop(struct obs_ctx *ctx)
{
    struct mtd_app *app = mtd_app_of(ctx);
    if (!app || !app->ruler)
        return;
    struct ruler *r = app->ruler;
    for (size_t i = 0; i < r->ngroups; i++)
        if (r->groups[i].timer)
            evtimer_del(r->groups[i].timer);
    if (r->thread_started) {
        pthread_mutex_lock(&r->mu);
        r->stopping = 1;
        pthread_cond_signal(&r->cv);
        pthread_mutex_unlock(&r->mu);
        pthread_join(r->thread, NULL);
    }
    while (r->qlen) {
        obs_free(r->queue[r->qhead]);
        r->qhead = (r->qhead + 1) % SEND_QUEUE_MAX;
        r->qlen--;
    }
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    ruler_free(r);
    app->ruler = NULL;
}
