/*
 * api.c -- Alertmanager HTTP API v2 (the shapes of api/v2/openapi.yaml).
 *
 *   POST /api/v2/alerts            postableAlerts; 200 empty, 400 with a JSON string listing
 *                                  validation errors (valid alerts are still stored), or
 *                                  {"code":400,"message":...} when the body is not JSON
 *   GET  /api/v2/alerts            gettableAlerts (filter=, active, silenced, inhibited,
 *                                  unprocessed, receiver=<regex>), sorted by fingerprint
 *   GET  /api/v2/alerts/groups     alertGroups
 *   GET  /api/v2/status            cluster (disabled), versionInfo, config.original, uptime
 *   GET  /api/v2/receivers         [{"name":...}]
 *   GET  /api/v2/silences          gettableSilences (filter=), active, then pending, expired
 *   POST /api/v2/silences          postableSilence -> {"silenceID":...}
 *   GET  /api/v2/silence/<id>      gettableSilence or 404
 *   DELETE /api/v2/silence/<id>    expire; 404 when unknown
 * Error messages follow Alertmanager's wording. Timestamps are strfmt.DateTime
 * (RFC3339, milliseconds, UTC). Handlers run on the loop thread and reply synchronously;
 * writes are fsynced to the WAL before the 2xx.
 */
#include "alertd/ald.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/obs_log.h"
#include "core/obs_mem.h"
#include "core/obs_sbuf.h"
#include "core/obs_time.h"
#include "http/obs_http.h"

#define JSON "application/json"
#define MAX_RECV 64
#define MAX_IDS 64

/* ---- replies ------------------------------------------------------------------------- */

/* go-swagger's error body for requests it could not parse: {"code":400,"message":"..."} */
static void reply_code_msg(struct obs_http_req *r, int status, const char *msg)
{
    struct obs_sbuf sb;
    obs_sbuf_init(&sb);
    obs_sbuf_printf(&sb, "{\"code\":%d,\"message\":", status);
    obs_sbuf_json_str(&sb, msg, strlen(msg));
    obs_sbuf_puts(&sb, "}");
    obs_http_reply_sbuf(r, status, JSON, &sb);
    obs_sbuf_deinit(&sb);
}

/* go-swagger's schema validation failure: 422 with its own error code (602 required,
 * 612 too few items). */
static void reply_swagger(struct obs_http_req *r, int code, const char *msg)
{
    struct obs_sbuf sb;
    obs_sbuf_init(&sb);
    obs_sbuf_printf(&sb, "{\"code\":%d,\"message\":", code);
    obs_sbuf_json_str(&sb, msg, strlen(msg));
    obs_sbuf_puts(&sb, "}");
    obs_http_reply_sbuf(r, 422, JSON, &sb);
    obs_sbuf_deinit(&sb);
}

/* Alertmanager handlers' error payload: a bare JSON string. */
static void reply_json_string(struct obs_http_req *r, int status, const char *msg)
{
    struct obs_sbuf sb;
    obs_sbuf_init(&sb);
    obs_sbuf_json_str(&sb, msg, strlen(msg));
    obs_sbuf_putc(&sb, '\n');
    obs_http_reply_sbuf(r, status, JSON, &sb);
    obs_sbuf_deinit(&sb);
}

static void reply_sbuf(struct obs_http_req *r, struct obs_sbuf *sb)
{
    if (sb->oom) {
        obs_sbuf_deinit(sb);
        reply_json_string(r, 500, "out of memory");
        return;
    }
    obs_sbuf_putc(sb, '\n');
    obs_http_reply_sbuf(r, 200, JSON, sb);
    obs_sbuf_deinit(sb);
}

static void json_kv(struct obs_sbuf *sb, const struct obs_label *l, size_t n)
{
    obs_sbuf_putc(sb, '{');
    for (size_t i = 0; i < n; i++) {
        if (i)
            obs_sbuf_putc(sb, ',');
        obs_sbuf_json_str(sb, l[i].name, strlen(l[i].name));
        obs_sbuf_putc(sb, ':');
        obs_sbuf_json_str(sb, l[i].value, strlen(l[i].value));
    }
    obs_sbuf_putc(sb, '}');
}

/* Query booleans; returns 0 or -1 (bad value, already replied). */
static int bool_param(struct obs_http_req *r, const char *name, int def, int *out)
{
    const char *v = obs_http_req_param(r, name);
    *out = def;
    if (v == NULL || *v == '\0')
        return 0;
    if (strcmp(v, "true") == 0 || strcmp(v, "1") == 0) {
        *out = 1;
        return 0;
    }
    if (strcmp(v, "false") == 0 || strcmp(v, "0") == 0) {
        *out = 0;
        return 0;
    }
    char msg[256];
    snprintf(msg, sizeof(msg), "%s in query must be of type bool: \"%s\"", name, v);
    reply_code_msg(r, 400, msg);
    return -1;
}

/* filter= matchers; returns 0 or -1 (replied 400). */
static int filter_params(struct obs_http_req *r, struct ald_matchers *m)
{
    const char **vals;
    size_t n = obs_http_req_params(r, "filter", &vals);
    for (size_t i = 0; i < n; i++) {
        struct obs_err err = {0};
        if (ald_matchers_parse(vals[i], m, &err) != 0) {
            ald_matchers_deinit(m);
            reply_json_string(r, 400, err.msg);
            return -1;
        }
    }
    return 0;
}

/* ---- alerts -------------------------------------------------------------------------- */

struct alert_status {
    const char *sil[MAX_IDS];
    size_t nsil;
    uint64_t inh[MAX_IDS];
    size_t ninh;
};

static void alert_status(struct ald *d, const struct ald_alert *a, struct alert_status *st)
{
    st->nsil = ald_silenced_by(d, a->labels, a->nlabels, st->sil, MAX_IDS);
    st->ninh = ald_inhibited_by(d, a->fp, a->labels, a->nlabels, st->inh, MAX_IDS);
}

static size_t alert_receivers(struct ald *d, const struct ald_alert *a, const char **names)
{
    const struct ald_route *routes[MAX_RECV];
    size_t n = ald_route_match(d->cfg->route, a->labels, a->nlabels, routes, MAX_RECV);
    size_t cnt = 0;
    for (size_t i = 0; i < n; i++) {
        int dup = 0;
        for (size_t k = 0; k < cnt; k++)
            dup |= strcmp(names[k], routes[i]->receiver) == 0;
        if (!dup)
            names[cnt++] = routes[i]->receiver;
    }
    return cnt;
}

static void gettable_alert(struct obs_sbuf *sb, const struct ald_alert *a,
                           const struct alert_status *st, const char *const *recv, size_t nrecv)
{
    char ts[40], fp[17];
    obs_sbuf_puts(sb, "{\"annotations\":");
    json_kv(sb, a->annots, a->nannots);
    ald_time_api(a->ends_ms, ts);
    ald_fp_str(a->fp, fp);
    obs_sbuf_printf(sb, ",\"endsAt\":\"%s\",\"fingerprint\":\"%s\",\"receivers\":[", ts, fp);
    for (size_t i = 0; i < nrecv; i++) {
        obs_sbuf_puts(sb, i ? ",{\"name\":" : "{\"name\":");
        obs_sbuf_json_str(sb, recv[i], strlen(recv[i]));
        obs_sbuf_putc(sb, '}');
    }
    ald_time_api(a->starts_ms, ts);
    obs_sbuf_printf(sb, "],\"startsAt\":\"%s\",\"status\":{\"inhibitedBy\":[", ts);
    for (size_t i = 0; i < st->ninh; i++) {
        ald_fp_str(st->inh[i], fp);
        obs_sbuf_printf(sb, "%s\"%s\"", i ? "," : "", fp);
    }
    obs_sbuf_puts(sb, "],\"mutedBy\":[],\"silencedBy\":[");
    for (size_t i = 0; i < st->nsil; i++)
        obs_sbuf_printf(sb, "%s\"%s\"", i ? "," : "", st->sil[i]);
    ald_time_api(a->updated_ms, ts);
    obs_sbuf_printf(sb, "],\"state\":\"%s\"},\"updatedAt\":\"%s\"",
                    st->nsil || st->ninh ? "suppressed" : "active", ts);
    if (a->generator_url) {
        obs_sbuf_puts(sb, ",\"generatorURL\":");
        obs_sbuf_json_str(sb, a->generator_url, strlen(a->generator_url));
    }
    obs_sbuf_puts(sb, ",\"labels\":");
    json_kv(sb, a->labels, a->nlabels);
    obs_sbuf_putc(sb, '}');
}

struct alert_filter {
    struct ald_matchers m;
    int active, silenced, inhibited, unprocessed;
    struct obs_matcher recv;
    int has_recv;
};

static int parse_alert_filter(struct obs_http_req *r, struct alert_filter *f)
{
    memset(f, 0, sizeof(*f));
    if (bool_param(r, "active", 1, &f->active) || bool_param(r, "silenced", 1, &f->silenced) ||
        bool_param(r, "inhibited", 1, &f->inhibited) ||
        bool_param(r, "unprocessed", 1, &f->unprocessed))
        return -1;
    if (filter_params(r, &f->m) != 0)
        return -1;
    const char *rx = obs_http_req_param(r, "receiver");
    if (rx && *rx) {
        struct obs_err err = {0};
        if (obs_matcher_init(&f->recv, OBS_MATCH_RE, "receiver", rx, &err) != 0) {
            ald_matchers_deinit(&f->m);
            char msg[300];
            snprintf(msg, sizeof(msg), "failed to parse receiver param: %s", err.msg);
            reply_json_string(r, 400, msg);
            return -1;
        }
        f->has_recv = 1;
    }
    return 0;
}

static void alert_filter_deinit(struct alert_filter *f)
{
    ald_matchers_deinit(&f->m);
    if (f->has_recv)
        obs_matcher_deinit(&f->recv);
}

/* Alertmanager's alertFilter + receiver filter. Fills st, recv. */
static int alert_passes(struct ald *d, struct alert_filter *f, const struct ald_alert *a,
                        int64_t now, struct alert_status *st, const char **recv, size_t *nrecv)
{
    if (ald_alert_resolved(a, now))
        return 0;
    *nrecv = alert_receivers(d, a, recv);
    if (f->has_recv) {
        int any = 0;
        for (size_t i = 0; i < *nrecv && !any; i++)
            any = obs_matcher_matches(&f->recv, recv[i]);
        if (!any)
            return 0;
    }
    alert_status(d, a, st);
    int suppressed = st->nsil || st->ninh;
    if (!f->active && !suppressed)
        return 0;
    if (!f->silenced && st->nsil)
        return 0;
    if (!f->inhibited && st->ninh)
        return 0;
    return ald_matchers_match(&f->m, a->labels, a->nlabels);
}

static int fp_cmp(const void *a, const void *b)
{
    uint64_t x = (*(struct ald_alert *const *)a)->fp, y = (*(struct ald_alert *const *)b)->fp;
    return x < y ? -1 : x > y;
}

static void h_get_alerts(struct obs_http_req *r, struct ald *d)
{
    struct alert_filter f;
    if (parse_alert_filter(r, &f) != 0)
        return;
    size_t cnt = 0;
    struct ald_alert **v = obs_calloc(d->alerts.n + 1, sizeof(*v));
    if (v == NULL) {
        alert_filter_deinit(&f);
        reply_json_string(r, 500, "out of memory");
        return;
    }
    for (size_t i = 0; i < d->alerts.cap; i++)
        if (ald_map_slot(&d->alerts, i))
            v[cnt++] = d->alerts.vals[i];
    qsort(v, cnt, sizeof(*v), fp_cmp);
    int64_t now = obs_now_ms();
    struct obs_sbuf sb;
    obs_sbuf_init(&sb);
    obs_sbuf_putc(&sb, '[');
    int first = 1;
    for (size_t i = 0; i < cnt; i++) {
        struct alert_status st;
        const char *recv[MAX_RECV];
        size_t nrecv;
        if (!alert_passes(d, &f, v[i], now, &st, recv, &nrecv))
            continue;
        if (!first)
            obs_sbuf_putc(&sb, ',');
        first = 0;
        gettable_alert(&sb, v[i], &st, recv, nrecv);
    }
    obs_sbuf_putc(&sb, ']');
    obs_free(v);
    alert_filter_deinit(&f);
    reply_sbuf(r, &sb);
}

static int valid_utf8(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        int n = *p < 0x80 ? 0 : (*p >> 5) == 6 ? 1 : (*p >> 4) == 14 ? 2 : (*p >> 3) == 30 ? 3 : -1;
        if (n < 0)
            return 0;
        p++;
        for (int i = 0; i < n; i++, p++)
            if ((*p & 0xc0) != 0x80)
                return 0;
    }
    return 1;
}

/* Read a labelSet object into a sorted array; msg set on error. */
static int read_kv(json_t *o, struct obs_label **out, size_t *n, int names_check, char *msg,
                   size_t msgcap)
{
    *out = NULL;
    *n = 0;
    if (o == NULL || json_is_null(o))
        return 0;
    if (!json_is_object(o)) {
        snprintf(msg, msgcap, "expected an object of strings");
        return -1;
    }
    size_t cnt = json_object_size(o);
    struct obs_label *v = obs_calloc(cnt ? cnt : 1, sizeof(*v));
    if (v == NULL) {
        snprintf(msg, msgcap, "out of memory");
        return -1;
    }
    const char *k;
    json_t *val;
    size_t i = 0;
    int rc = 0;
    json_object_foreach(o, k, val) {
        if (!json_is_string(val)) {
            snprintf(msg, msgcap, "invalid value for \"%s\": expected a string", k);
            rc = -1;
            break;
        }
        const char *s = json_string_value(val);
        if (names_check && s[0] == '\0')
            continue; /* removeEmptyLabels */
        if (names_check && !obs_label_name_valid(k, strlen(k))) {
            snprintf(msg, msgcap, "invalid name \"%s\"", k);
            rc = -1;
            break;
        }
        if (!valid_utf8(s)) {
            snprintf(msg, msgcap, "invalid value \"%s\"", s);
            rc = -1;
            break;
        }
        v[i].name = obs_strdup(k);
        v[i].value = obs_strdup(s);
        if (v[i].name == NULL || v[i].value == NULL) {
            obs_free((char *)v[i].name);
            obs_free((char *)v[i].value);
            snprintf(msg, msgcap, "out of memory");
            rc = -1;
            break;
        }
        i++;
    }
    if (rc != 0) {
        for (size_t j = 0; j < i; j++) {
            obs_free((char *)v[j].name);
            obs_free((char *)v[j].value);
        }
        obs_free(v);
        return -1;
    }
    obs_labels_sort(v, i);
    *out = v;
    *n = i;
    return 0;
}

/* Parse and validate one postableAlert. Returns an alert or NULL with msg set. */
static struct ald_alert *parse_alert(struct ald *d, json_t *o, int64_t now, char *msg,
                                     size_t cap)
{
    if (!json_is_object(o)) {
        snprintf(msg, cap, "alert must be an object");
        return NULL;
    }
    struct ald_alert *a = obs_calloc(1, sizeof(*a));
    if (a == NULL) {
        snprintf(msg, cap, "out of memory");
        return NULL;
    }
    char sub[200] = "";
    json_t *labels = json_object_get(o, "labels");
    if (labels == NULL) {
        snprintf(msg, cap, "labels in body is required");
        goto fail;
    }
    if (read_kv(labels, &a->labels, &a->nlabels, 1, sub, sizeof(sub)) != 0) {
        snprintf(msg, cap, "invalid label set: %s", sub);
        goto fail;
    }
    if (read_kv(json_object_get(o, "annotations"), &a->annots, &a->nannots, 0, sub,
                sizeof(sub)) != 0) {
        snprintf(msg, cap, "invalid annotations: %s", sub);
        goto fail;
    }
    if (a->annots == NULL)
        a->annots = obs_calloc(1, sizeof(*a->annots));
    json_t *gu = json_object_get(o, "generatorURL");
    if (gu && !json_is_null(gu)) {
        if (!json_is_string(gu)) {
            snprintf(msg, cap, "generatorURL in body must be of type string");
            goto fail;
        }
        if (json_string_length(gu) > 0)
            a->generator_url = obs_strdup(json_string_value(gu));
    }
    const char *fields[2] = {"startsAt", "endsAt"};
    int64_t *dst[2] = {&a->starts_ms, &a->ends_ms};
    for (int k = 0; k < 2; k++) {
        json_t *t = json_object_get(o, fields[k]);
        if (t == NULL || json_is_null(t))
            continue;
        if (!json_is_string(t) || ald_time_parse(json_string_value(t), dst[k]) != 0) {
            snprintf(msg, cap, "%s in body must be of type date-time: \"%s\"", fields[k],
                     json_is_string(t) ? json_string_value(t) : "");
            goto fail;
        }
    }
    a->updated_ms = now;
    if (a->starts_ms == 0)
        a->starts_ms = a->ends_ms ? a->ends_ms : now;
    if (a->ends_ms == 0) {
        a->timeout = 1;
        a->ends_ms = now + d->cfg->resolve_timeout_ms;
    }
    /* model.Alert.Validate */
    if (a->ends_ms < a->starts_ms) {
        snprintf(msg, cap, "start time must be before end time");
        goto fail;
    }
    if (a->nlabels == 0) {
        snprintf(msg, cap, "at least one label pair required");
        goto fail;
    }
    a->fp = ald_fingerprint(a->labels, a->nlabels);
    return a;
fail:
    ald_alert_free(a);
    return NULL;
}

/* Structural checks of one postableAlert; returns 0, 400 or 422 with msg set. */
static int precheck_alert(json_t *o, size_t idx, char *msg, size_t cap)
{
    if (!json_is_object(o)) {
        snprintf(msg, cap, "parsing alerts body from \"\" failed, because json: cannot "
                           "unmarshal %s into Go value of type models.PostableAlert",
                 json_is_array(o) ? "array" : json_is_string(o) ? "string" : "number");
        return 400;
    }
    static const char *const kv[2] = {"labels", "annotations"};
    for (int k = 0; k < 2; k++) {
        json_t *l = json_object_get(o, kv[k]);
        if (l == NULL || json_is_null(l)) {
            if (k == 0) {
                snprintf(msg, cap, "%zu.labels in body is required", idx);
                return 422;
            }
            continue;
        }
        const char *key;
        json_t *v;
        if (!json_is_object(l)) {
            snprintf(msg, cap, "parsing alerts body from \"\" failed, because json: cannot "
                               "unmarshal into Go struct field Alert.%s of type "
                               "models.LabelSet", kv[k]);
            return 400;
        }
        json_object_foreach(l, key, v) {
            if (!json_is_string(v)) {
                snprintf(msg, cap, "parsing alerts body from \"\" failed, because json: cannot "
                                   "unmarshal %s into Go struct field Alert.%s of type string",
                         json_is_object(v) ? "object" : json_is_array(v) ? "array" : "number",
                         kv[k]);
                return 400;
            }
        }
    }
    static const char *const ts[2] = {"startsAt", "endsAt"};
    for (int k = 0; k < 2; k++) {
        json_t *t = json_object_get(o, ts[k]);
        int64_t ms;
        if (t == NULL || json_is_null(t))
            continue;
        if (!json_is_string(t) || ald_time_parse(json_string_value(t), &ms) != 0) {
            snprintf(msg, cap, "parsing alerts body from \"\" failed, because parsing time "
                               "\"%.100s\": %s in body must be of type date-time",
                     json_is_string(t) ? json_string_value(t) : "", ts[k]);
            return 400;
        }
    }
    json_t *gu = json_object_get(o, "generatorURL");
    if (gu && !json_is_null(gu) && !json_is_string(gu)) {
        snprintf(msg, cap, "parsing alerts body from \"\" failed, because json: cannot "
                           "unmarshal into Go struct field Alert.generatorURL of type "
                           "strfmt.URI");
        return 400;
    }
    return 0;
}

static void h_post_alerts(struct obs_http_req *r, struct ald *d)
{
    size_t len;
    const uint8_t *body = obs_http_req_body(r, &len);
    json_error_t jerr;
    json_t *root = json_loadb((const char *)body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        char msg[400];
        snprintf(msg, sizeof(msg), "parsing alerts body from \"\" failed, because %s",
                 len == 0 ? "EOF" : jerr.text);
        reply_code_msg(r, 400, msg);
        return;
    }
    if (!json_is_array(root)) {
        json_decref(root);
        reply_code_msg(r, 400, "parsing alerts body from \"\" failed, because json: cannot "
                               "unmarshal object into Go value of type models.PostableAlerts");
        return;
    }
    /* go-swagger's decoding and schema checks fail the whole request before any alert is
     * stored: wrong JSON types -> 400 {"code":400,...}, missing labels -> 422 code 602 */
    size_t idx;
    json_t *el;
    json_array_foreach(root, idx, el) {
        char msg[400];
        int st = precheck_alert(el, idx, msg, sizeof(msg));
        if (st != 0) {
            json_decref(root);
            if (st == 422) {
                reply_swagger(r, 602, msg);
            } else {
                reply_code_msg(r, 400, msg);
            }
            return;
        }
    }
    int64_t now = obs_now_ms();
    struct obs_sbuf errs;
    obs_sbuf_init(&errs);
    size_t i, stored = 0;
    json_t *it;
    json_array_foreach(root, i, it) {
        char msg[300];
        struct ald_alert *a = parse_alert(d, it, now, msg, sizeof(msg));
        if (a != NULL)
            ald_metric_add(ald_alert_resolved(a, now) ? d->m_recv_resolved : d->m_recv_firing, 1);
        else
            ald_metric_add(d->m_invalid, 1);
        if (a == NULL) {
            if (errs.len)
                obs_sbuf_puts(&errs, "; ");
            obs_sbuf_puts(&errs, msg);
            continue;
        }
        if (ald_alerts_put_take(d, a) != NULL)
            stored++;
    }
    json_decref(root);
    if (stored && ald_state_sync(d) != 0) {
        obs_sbuf_deinit(&errs);
        reply_json_string(r, 500, "failed to persist alerts");
        return;
    }
    if (errs.len) {
        reply_json_string(r, 400, errs.p);
        obs_sbuf_deinit(&errs);
        return;
    }
    obs_sbuf_deinit(&errs);
    obs_http_reply(r, 200, NULL, "", 0);
}

static void h_alerts(struct obs_http_req *r, void *arg)
{
    if (strcmp(obs_http_req_method(r), "POST") == 0)
        h_post_alerts(r, arg);
    else
        h_get_alerts(r, arg);
}

/* ---- groups -------------------------------------------------------------------------- */

struct group_ref {
    const struct ald_route *rt;
    const struct obs_label *gl;
    size_t ngl;
    struct ald_alert *const *alerts;
    size_t n;
};

struct group_vec {
    struct group_ref *v;
    size_t n, cap;
    int oom;
};

static void collect_cb(const struct ald_route *rt, const struct obs_label *gl, size_t ngl,
                       struct ald_alert *const *alerts, size_t n, void *arg)
{
    struct group_vec *gv = arg;
    if (gv->n == gv->cap) {
        size_t nc = gv->cap ? gv->cap * 2 : 16;
        struct group_ref *nv = obs_realloc(gv->v, nc * sizeof(*nv));
        if (nv == NULL) {
            gv->oom = 1;
            return;
        }
        gv->v = nv;
        gv->cap = nc;
    }
    gv->v[gv->n++] = (struct group_ref){rt, gl, ngl, alerts, n};
}

/* AlertGroups order: by label set (model.LabelSet.Before), then receiver name. */
static int group_cmp(const void *pa, const void *pb)
{
    const struct group_ref *a = pa, *b = pb;
    for (size_t i = 0; i < a->ngl && i < b->ngl; i++) {
        int c = strcmp(a->gl[i].name, b->gl[i].name);
        if (c)
            return c;
        c = strcmp(a->gl[i].value, b->gl[i].value);
        if (c)
            return c;
    }
    if (a->ngl != b->ngl)
        return a->ngl < b->ngl ? -1 : 1;
    return strcmp(a->rt->receiver, b->rt->receiver);
}

static void render_group(struct ald *d, struct alert_filter *f, const struct group_ref *g,
                         int64_t now, struct obs_sbuf *sb, int *first)
{
    if (f->has_recv && !obs_matcher_matches(&f->recv, g->rt->receiver))
        return;
    struct ald_alert **v = obs_calloc(g->n + 1, sizeof(*v));
    if (v == NULL) {
        sb->oom = 1;
        return;
    }
    size_t cnt = 0;
    for (size_t i = 0; i < g->n; i++) {
        /* current version from the store when it is there */
        struct ald_alert *a = ald_map_get(&d->alerts, g->alerts[i]->fp);
        v[cnt++] = a ? a : g->alerts[i];
    }
    qsort(v, cnt, sizeof(*v), fp_cmp);
    struct obs_sbuf part;
    obs_sbuf_init(&part);
    int any = 0;
    for (size_t i = 0; i < cnt; i++) {
        struct alert_status st;
        const char *recv[MAX_RECV];
        size_t nrecv;
        if (!alert_passes(d, f, v[i], now, &st, recv, &nrecv))
            continue;
        if (any)
            obs_sbuf_putc(&part, ',');
        any = 1;
        gettable_alert(&part, v[i], &st, recv, nrecv);
    }
    obs_free(v);
    if (any) {
        if (!*first)
            obs_sbuf_putc(sb, ',');
        *first = 0;
        obs_sbuf_puts(sb, "{\"alerts\":[");
        obs_sbuf_append(sb, part.p, part.len);
        obs_sbuf_puts(sb, "],\"labels\":");
        json_kv(sb, g->gl, g->ngl);
        obs_sbuf_puts(sb, ",\"receiver\":{\"name\":");
        obs_sbuf_json_str(sb, g->rt->receiver, strlen(g->rt->receiver));
        obs_sbuf_puts(sb, "}}");
    }
    if (part.oom)
        sb->oom = 1;
    obs_sbuf_deinit(&part);
}

static void h_groups(struct obs_http_req *r, void *arg)
{
    struct ald *d = arg;
    struct alert_filter f;
    if (parse_alert_filter(r, &f) != 0)
        return;
    struct group_vec gv = {0};
    ald_groups_each(d, collect_cb, &gv);
    if (gv.n > 1)
        qsort(gv.v, gv.n, sizeof(*gv.v), group_cmp);
    struct obs_sbuf sb;
    obs_sbuf_init(&sb);
    if (gv.oom)
        sb.oom = 1;
    obs_sbuf_putc(&sb, '[');
    int first = 1;
    int64_t now = obs_now_ms();
    for (size_t i = 0; i < gv.n; i++)
        render_group(d, &f, &gv.v[i], now, &sb, &first);
    obs_sbuf_putc(&sb, ']');
    obs_free(gv.v);
    alert_filter_deinit(&f);
    reply_sbuf(r, &sb);
}

/* ---- status, receivers ----------------------------------------------------------------- */

static void h_status(struct obs_http_req *r, void *arg)
{
    struct ald *d = arg;
    char ts[40];
    struct obs_sbuf sb;
    obs_sbuf_init(&sb);
    obs_sbuf_puts(&sb, "{\"cluster\":{\"name\":\"\",\"peers\":[],\"status\":\"disabled\"},"
                       "\"config\":{\"original\":");
    const char *orig = d->config_original ? d->config_original : "";
    obs_sbuf_json_str(&sb, orig, strlen(orig));
    ald_time_api(d->start_ms, ts);
    obs_sbuf_printf(&sb, "},\"uptime\":\"%s\",\"versionInfo\":{\"branch\":\"main\","
                         "\"buildDate\":\"\",\"buildUser\":\"obs\",\"goVersion\":\"none (C11)\","
                         "\"revision\":\"\",\"version\":\"0.25.0-alertd\"}}",
                    ts);
    reply_sbuf(r, &sb);
}

static void h_receivers(struct obs_http_req *r, void *arg)
{
    struct ald *d = arg;
    struct obs_sbuf sb;
    obs_sbuf_init(&sb);
    obs_sbuf_putc(&sb, '[');
    for (size_t i = 0; i < d->cfg->nreceivers; i++) {
        obs_sbuf_puts(&sb, i ? ",{\"name\":" : "{\"name\":");
        const char *n = d->cfg->receivers[i].name;
        obs_sbuf_json_str(&sb, n, strlen(n));
        obs_sbuf_putc(&sb, '}');
    }
    obs_sbuf_putc(&sb, ']');
    reply_sbuf(r, &sb);
}

/* ---- silences ------------------------------------------------------------------------ */

static void gettable_silence(struct obs_sbuf *sb, const struct ald_silence *s, int64_t now)
{
    char ts[40];
    obs_sbuf_puts(sb, "{\"id\":");
    obs_sbuf_json_str(sb, s->id, strlen(s->id));
    ald_time_api(s->updated_ms, ts);
    obs_sbuf_printf(sb, ",\"status\":{\"state\":\"%s\"},\"updatedAt\":\"%s\",\"comment\":",
                    ald_silence_state_str(ald_silence_state(s, now)), ts);
    obs_sbuf_json_str(sb, s->comment, strlen(s->comment));
    obs_sbuf_puts(sb, ",\"createdBy\":");
    obs_sbuf_json_str(sb, s->created_by, strlen(s->created_by));
    ald_time_api(s->ends_ms, ts);
    obs_sbuf_printf(sb, ",\"endsAt\":\"%s\",\"matchers\":[", ts);
    for (size_t i = 0; i < s->m.n; i++) {
        const struct obs_matcher *m = &s->m.v[i];
        int re = m->type == OBS_MATCH_RE || m->type == OBS_MATCH_NRE;
        int eq = m->type == OBS_MATCH_EQ || m->type == OBS_MATCH_RE;
        obs_sbuf_printf(sb, "%s{\"isEqual\":%s,\"isRegex\":%s,\"name\":", i ? "," : "",
                        eq ? "true" : "false", re ? "true" : "false");
        obs_sbuf_json_str(sb, m->name, strlen(m->name));
        obs_sbuf_puts(sb, ",\"value\":");
        obs_sbuf_json_str(sb, m->value, strlen(m->value));
        obs_sbuf_putc(sb, '}');
    }
    ald_time_api(s->starts_ms, ts);
    obs_sbuf_printf(sb, "],\"startsAt\":\"%s\"}", ts);
}

static int sil_rank(const struct ald_silence *s, int64_t now)
{
    switch (ald_silence_state(s, now)) {
    case ALD_SIL_ACTIVE: return 0;
    case ALD_SIL_PENDING: return 1;
    default: return 2;
    }
}

static int sil_cmp(const void *pa, const void *pb, void *arg)
{
    const struct ald_silence *a = *(struct ald_silence *const *)pa;
    const struct ald_silence *b = *(struct ald_silence *const *)pb;
    int64_t now = *(const int64_t *)arg;
    int ra = sil_rank(a, now), rb = sil_rank(b, now);
    if (ra != rb)
        return ra - rb;
    int64_t x, y;
    if (ra == 0) {
        x = a->ends_ms;
        y = b->ends_ms;
    } else if (ra == 1) {
        x = a->starts_ms;
        y = b->starts_ms;
    } else {
        x = b->ends_ms;
        y = a->ends_ms;
    }
    return x < y ? -1 : x > y;
}

/* silenceMatchesFilterLabels: the silence's matchers read as a label set. */
static int silence_passes(const struct ald_silence *s, const struct ald_matchers *f)
{
    struct obs_label l[64];
    size_t n = 0;
    for (size_t i = 0; i < s->m.n && n < 64; i++) {
        l[n].name = s->m.v[i].name;
        l[n].value = s->m.v[i].value;
        n++;
    }
    for (size_t i = 0; i < f->n; i++) {
        const char *v = obs_labels_get(l, n, f->v[i].name);
        if (v == NULL || !obs_matcher_matches(&f->v[i], v))
            return 0;
    }
    return 1;
}

static void h_get_silences(struct obs_http_req *r, struct ald *d)
{
    struct ald_matchers f = {0};
    if (filter_params(r, &f) != 0)
        return;
    int64_t now = obs_now_ms();
    struct ald_silence **v = obs_calloc(d->nsils + 1, sizeof(*v));
    if (v == NULL) {
        ald_matchers_deinit(&f);
        reply_json_string(r, 500, "out of memory");
        return;
    }
    size_t n = 0;
    for (size_t i = 0; i < d->nsils; i++)
        if (silence_passes(d->sils[i], &f))
            v[n++] = d->sils[i];
    qsort_r(v, n, sizeof(*v), sil_cmp, &now);
    struct obs_sbuf sb;
    obs_sbuf_init(&sb);
    obs_sbuf_putc(&sb, '[');
    for (size_t i = 0; i < n; i++) {
        if (i)
            obs_sbuf_putc(&sb, ',');
        gettable_silence(&sb, v[i], now);
    }
    obs_sbuf_putc(&sb, ']');
    obs_free(v);
    ald_matchers_deinit(&f);
    reply_sbuf(r, &sb);
}

static int same_matchers(const struct ald_matchers *a, const struct ald_matchers *b)
{
    if (a->n != b->n)
        return 0;
    for (size_t i = 0; i < a->n; i++)
        if (a->v[i].type != b->v[i].type || strcmp(a->v[i].name, b->v[i].name) != 0 ||
            strcmp(a->v[i].value, b->v[i].value) != 0)
            return 0;
    return 1;
}

static void h_post_silence(struct obs_http_req *r, struct ald *d)
{
    size_t len;
    const uint8_t *body = obs_http_req_body(r, &len);
    json_error_t jerr;
    json_t *o = json_loadb((const char *)body, len, 0, &jerr);
    char msg[400];
    if (o == NULL || !json_is_object(o)) {
        snprintf(msg, sizeof(msg), "parsing silence body from \"\" failed, because %s",
                 o == NULL ? (len == 0 ? "EOF" : jerr.text)
                           : "json: cannot unmarshal into Go value of type "
                             "models.PostableSilence");
        json_decref(o);
        reply_code_msg(r, 400, msg);
        return;
    }
    static const char *const required[] = {"matchers", "startsAt", "endsAt", "createdBy",
                                           "comment"};
    for (size_t i = 0; i < 5; i++) {
        if (json_object_get(o, required[i]) == NULL) {
            snprintf(msg, sizeof(msg), "%s in body is required", required[i]);
            json_decref(o);
            reply_swagger(r, 602, msg);
            return;
        }
    }
    struct ald_silence *s = obs_calloc(1, sizeof(*s));
    if (s == NULL) {
        json_decref(o);
        reply_json_string(r, 500, "out of memory");
        return;
    }
    int status = 400;
    msg[0] = '\0';
    json_t *ms = json_object_get(o, "matchers");
    size_t i;
    json_t *m;
    if (!json_is_array(ms)) {
        snprintf(msg, sizeof(msg), "matchers in body must be of type array");
        goto bad;
    }
    if (json_array_size(ms) == 0) {
        snprintf(msg, sizeof(msg), "matchers in body should have at least 1 items");
        json_decref(o);
        ald_silence_free(s);
        reply_swagger(r, 612, msg);
        return;
    }
    json_array_foreach(ms, i, m) {
        const char *name = json_string_value(json_object_get(m, "name"));
        const char *value = json_string_value(json_object_get(m, "value"));
        json_t *isre = json_object_get(m, "isRegex"), *iseq = json_object_get(m, "isEqual");
        if (name == NULL || value == NULL || !json_is_boolean(isre)) {
            snprintf(msg, sizeof(msg), "matchers.%zu: name, value and isRegex are required", i);
            status = 422;
            goto bad;
        }
        int eq = iseq == NULL || json_is_true(iseq);
        enum obs_match_type t = json_is_true(isre) ? (eq ? OBS_MATCH_RE : OBS_MATCH_NRE)
                                                   : (eq ? OBS_MATCH_EQ : OBS_MATCH_NEQ);
        struct obs_err err = {0};
        if (ald_matchers_add(&s->m, t, name, value, &err) != 0) {
            snprintf(msg, sizeof(msg), "silence invalid: invalid label matcher %zu: %s", i,
                     err.msg);
            goto bad;
        }
    }
    const char *st = json_string_value(json_object_get(o, "startsAt"));
    const char *en = json_string_value(json_object_get(o, "endsAt"));
    if (st == NULL || ald_time_parse(st, &s->starts_ms) != 0 || en == NULL ||
        ald_time_parse(en, &s->ends_ms) != 0) {
        snprintf(msg, sizeof(msg), "startsAt/endsAt in body must be of type date-time");
        status = 422;
        goto bad;
    }
    const char *cb = json_string_value(json_object_get(o, "createdBy"));
    const char *cm = json_string_value(json_object_get(o, "comment"));
    s->created_by = obs_strdup(cb ? cb : "");
    s->comment = obs_strdup(cm ? cm : "");
    if (s->created_by == NULL || s->comment == NULL) {
        snprintf(msg, sizeof(msg), "out of memory");
        status = 500;
        goto bad;
    }
    int64_t now = obs_now_ms();
    if (s->starts_ms >= s->ends_ms) {
        snprintf(msg, sizeof(msg), "Failed to create silence: start time must be before end "
                                   "time");
        goto bad;
    }
    if (s->ends_ms < now) {
        snprintf(msg, sizeof(msg), "Failed to create silence: end time can't be in the past");
        goto bad;
    }
    if (s->m.n == 0) {
        snprintf(msg, sizeof(msg), "silence invalid: at least one matcher required");
        goto bad;
    }
    int all_empty = 1;
    for (size_t k = 0; k < s->m.n; k++)
        all_empty &= obs_matcher_matches_empty(&s->m.v[k]);
    if (all_empty) {
        snprintf(msg, sizeof(msg), "silence invalid: at least one matcher must not match the "
                                   "empty string");
        goto bad;
    }
    /* Silences.Set: update in place when allowed, else expire the old one and add anew */
    const char *id = json_string_value(json_object_get(o, "id"));
    struct ald_silence *prev = id && *id ? ald_silence_find(d, id) : NULL;
    if (id && *id && prev == NULL) {
        snprintf(msg, sizeof(msg), "silence not found");
        status = 404;
        goto bad;
    }
    s->updated_ms = now;
    if (prev) {
        enum ald_sil_state ps = ald_silence_state(prev, now);
        int can = same_matchers(&prev->m, &s->m) &&
                  ((ps == ALD_SIL_ACTIVE && s->starts_ms == prev->starts_ms &&
                    s->ends_ms >= now) ||
                   (ps == ALD_SIL_PENDING && s->starts_ms >= now));
        if (can) {
            snprintf(s->id, sizeof(s->id), "%s", prev->id);
            goto store;
        }
        if (ps != ALD_SIL_EXPIRED) {
            if (ps == ALD_SIL_PENDING)
                prev->starts_ms = now;
            prev->ends_ms = now;
            prev->updated_ms = now;
            ald_state_log_silence(d, prev);
        }
    }
    ald_uuid(s->id);
    if (s->starts_ms < now)
        s->starts_ms = now;
store:
    json_decref(o);
    if (ald_state_log_silence(d, s) != 0 || ald_silence_add_take(d, s) != 0) {
        ald_silence_free(s);
        reply_json_string(r, 500, "failed to store silence");
        return;
    }
    if (ald_state_sync(d) != 0) {
        reply_json_string(r, 500, "failed to persist silence");
        return;
    }
    obs_clog_info("api", "silence created\tid=%s", s->id);
    struct obs_sbuf sb;
    obs_sbuf_init(&sb);
    obs_sbuf_printf(&sb, "{\"silenceID\":\"%s\"}", s->id);
    reply_sbuf(r, &sb);
    return;
bad:
    json_decref(o);
    ald_silence_free(s);
    if (status == 422)
        reply_swagger(r, 602, msg);
    else
        reply_json_string(r, status, msg);
}

static void h_silences(struct obs_http_req *r, void *arg)
{
    if (strcmp(obs_http_req_method(r), "POST") == 0)
        h_post_silence(r, arg);
    else
        h_get_silences(r, arg);
}

static void h_silence_id(struct obs_http_req *r, void *arg)
{
    struct ald *d = arg;
    const char *id = obs_http_req_rest(r);
    struct ald_silence *s = ald_silence_find(d, id);
    int64_t now = obs_now_ms();
    if (strcmp(obs_http_req_method(r), "DELETE") == 0) {
        if (s == NULL) {
            obs_http_reply(r, 404, JSON, "", 0);
            return;
        }
        enum ald_sil_state st = ald_silence_state(s, now);
        if (st == ALD_SIL_EXPIRED) {
            char msg[128];
            snprintf(msg, sizeof(msg), "silence %s already expired", s->id);
            reply_json_string(r, 500, msg);
            return;
        }
        if (st == ALD_SIL_PENDING)
            s->starts_ms = now;
        s->ends_ms = now;
        s->updated_ms = now;
        if (ald_state_log_silence(d, s) != 0 || ald_state_sync(d) != 0) {
            reply_json_string(r, 500, "failed to persist silence");
            return;
        }
        obs_http_reply(r, 200, NULL, "", 0);
        return;
    }
    if (s == NULL) {
        obs_http_reply(r, 404, JSON, "", 0);
        return;
    }
    struct obs_sbuf sb;
    obs_sbuf_init(&sb);
    gettable_silence(&sb, s, now);
    reply_sbuf(r, &sb);
}

static void h_reload(struct obs_http_req *r, void *arg)
{
    struct obs_err err = {0};
    if (ald_reload(arg, &err) != 0) {
        obs_http_reply_text(r, 500, "failed to reload config: %s", err.msg);
        return;
    }
    obs_http_reply(r, 200, NULL, "", 0);
}

int ald_api_register(struct ald *d, struct obs_http_server *http)
{
    int rc = 0;
    rc |= obs_http_route(http, "POST", "/-/reload", h_reload, d);
    rc |= obs_http_route(http, "GET,POST", "/api/v2/alerts", h_alerts, d);
    rc |= obs_http_route(http, "GET", "/api/v2/alerts/groups", h_groups, d);
    rc |= obs_http_route(http, "GET", "/api/v2/status", h_status, d);
    rc |= obs_http_route(http, "GET", "/api/v2/receivers", h_receivers, d);
    rc |= obs_http_route(http, "GET,POST", "/api/v2/silences", h_silences, d);
    rc |= obs_http_route(http, "GET,DELETE", "/api/v2/silence/*", h_silence_id, d);
    return rc ? OBS_ENOMEM : 0;
}
