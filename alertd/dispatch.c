/*
 * dispatch.c -- route tree -> aggregation groups -> notification log -> webhook sender.
 *
 * Follows Alertmanager's dispatcher and notification pipeline:
 *   - each alert is matched against the route tree; for every matching route it joins the
 *     aggregation group keyed "<route key>:<group labels>" (group_by labels, or all labels
 *     with group_by ['...']);
 *   - a new group flushes after group_wait (at once if the alert started more than
 *     group_wait ago and the group never flushed), then every group_interval;
 *   - a flush drops silenced/inhibited alerts, then for each webhook of the route's receiver
 *     asks the notification log whether anything changed (Alertmanager's DedupStage:
 *     new firing alerts, newly resolved ones when send_resolved, all resolved, or
 *     repeat_interval elapsed); if so it queues one POST with the webhook JSON (version 4);
 *   - a single sender thread does the blocking obs_httpc_do calls and passes each result
 *     back to the loop through an obs_chan; failures are retried with exponential backoff
 *     (5xx, 429, network errors) until the attempt budget or group_interval runs out;
 *   - on success the nflog entry (firing and resolved fingerprints, time) is updated and
 *     persisted; resolved alerts that were delivered leave the group; an empty group is
 *     removed.
 * Every function except the sender thread's runs on the loop thread.
 */
#include "alertd/ald.h"

#include <event2/event.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/obs_chan.h"
#include "core/obs_log.h"
#include "core/obs_mem.h"
#include "core/obs_sbuf.h"
#include "core/obs_time.h"
#include "http/obs_http.h"

#define COMP "dispatcher"
#define MAX_ATTEMPTS 8

struct ald_group {
    struct ald *d;
    char *key;
    uint64_t khash;
    const struct ald_route *route;
    struct obs_label *gl;      /* group labels (owned strings) */
    size_t ngl;
    struct ald_alert **alerts; /* copies, owned */
    size_t n, cap;
    struct event *timer;
    int has_flushed;
    int inflight;              /* flush in progress */
    struct ald_flush *fl;      /* ... and its record (freed with the group at shutdown) */
};

struct ald_flush {
    struct ald_group *g;
    int pending;
    int failed;
    uint64_t *rfp;             /* resolved alerts in the snapshot */
    int64_t *rupd;             /* ... and their updatedAt */
    size_t nr;
};

struct ald_job {
    struct ald_job *next;
    struct ald *d;
    struct ald_flush *fl;
    char *url;
    char *body;
    size_t len;
    int timeout_ms;
    char *nkey;
    uint64_t *firing, *resolved;
    size_t nf, nr;
    int attempt;
    int64_t deadline_ms;
    /* result, set by the sender thread */
    int status;
    char errmsg[256];
    struct event *retry_ev;
    struct ald_job *rnext;     /* in the retry list */
};

struct ald_sender {
    pthread_t th;
    int started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct ald_job *head, *tail;
    int stop;
    struct obs_chan *chan;
    struct ald_job *retrying;  /* jobs waiting on a retry timer */
};

/* ---- small helpers ------------------------------------------------------------------- */

static void job_free(struct ald_job *j)
{
    if (j == NULL)
        return;
    if (j->retry_ev)
        event_free(j->retry_ev);
    obs_free(j->url);
    obs_free(j->body);
    obs_free(j->nkey);
    obs_free(j->firing);
    obs_free(j->resolved);
    obs_free(j);
}

static void nflog_entry_free(struct ald_nflog_entry *e)
{
    if (e == NULL)
        return;
    obs_free(e->key);
    obs_free(e->firing);
    obs_free(e->resolved);
    obs_free(e);
}

const struct ald_nflog_entry *ald_nflog_get(struct ald *d, const char *key)
{
    struct ald_nflog_entry *e = ald_map_get(&d->nflog, ald_hash_str(key));
    if (e && strcmp(e->key, key) != 0)
        return NULL;
    return e;
}

int ald_nflog_set(struct ald *d, const char *key, const uint64_t *f, size_t nf,
                  const uint64_t *r, size_t nr, int64_t ts_ms, int persist)
{
    struct ald_nflog_entry *e = obs_calloc(1, sizeof(*e));
    if (e == NULL)
        return OBS_ENOMEM;
    e->key = obs_strdup(key);
    e->firing = obs_malloc((nf ? nf : 1) * sizeof(uint64_t));
    e->resolved = obs_malloc((nr ? nr : 1) * sizeof(uint64_t));
    if (e->key == NULL || e->firing == NULL || e->resolved == NULL) {
        nflog_entry_free(e);
        return OBS_ENOMEM;
    }
    if (nf)
        memcpy(e->firing, f, nf * sizeof(uint64_t));
    if (nr)
        memcpy(e->resolved, r, nr * sizeof(uint64_t));
    e->nfiring = nf;
    e->nresolved = nr;
    e->ts_ms = ts_ms;
    uint64_t h = ald_hash_str(key);
    struct ald_nflog_entry *old = ald_map_get(&d->nflog, h);
    if (ald_map_put(&d->nflog, h, e) != 0) {
        nflog_entry_free(e);
        return OBS_ENOMEM;
    }
    nflog_entry_free(old);
    if (persist && !d->replaying) {
        ald_state_log_nflog(d, e);
        ald_state_sync(d);
    }
    return 0;
}

static int has_fp(const uint64_t *v, size_t n, uint64_t fp)
{
    for (size_t i = 0; i < n; i++)
        if (v[i] == fp)
            return 1;
    return 0;
}

static int is_subset(const uint64_t *sub, size_t nsub, const uint64_t *set, size_t nset)
{
    for (size_t i = 0; i < nsub; i++)
        if (!has_fp(set, nset, sub[i]))
            return 0;
    return 1;
}

/* Alertmanager's DedupStage.needsUpdate. */
static int needs_update(const struct ald_nflog_entry *e, const uint64_t *f, size_t nf,
                        const uint64_t *r, size_t nr, int send_resolved, int64_t repeat_ms,
                        int64_t now)
{
    if (e == NULL)
        return nf > 0;
    if (!is_subset(f, nf, e->firing, e->nfiring))
        return 1;
    if (nf == 0)
        return e->nfiring > 0;
    if (send_resolved && !is_subset(r, nr, e->resolved, e->nresolved))
        return 1;
    return e->ts_ms + repeat_ms <= now;
}

/* ---- group keys ---------------------------------------------------------------------- */

static void render_lset(struct obs_sbuf *sb, const struct obs_label *l, size_t n)
{
    /* model.LabelSet.String(): {a="b", c="d"} sorted by name */
    obs_sbuf_putc(sb, '{');
    for (size_t i = 0; i < n; i++) {
        if (i)
            obs_sbuf_puts(sb, ", ");
        obs_sbuf_puts(sb, l[i].name);
        obs_sbuf_putc(sb, '=');
        obs_sbuf_json_str(sb, l[i].value, strlen(l[i].value));
    }
    obs_sbuf_putc(sb, '}');
}

int ald_group_key(const struct ald_route *r, const struct obs_label *l, size_t n, char **key,
                  struct obs_label **gl, size_t *ngl)
{
    struct obs_label *v = obs_calloc(n ? n : 1, sizeof(*v));
    if (v == NULL)
        return OBS_ENOMEM;
    size_t cnt = 0;
    for (size_t i = 0; i < n; i++) {
        int take = r->group_by_all;
        for (size_t k = 0; !take && k < r->ngroup_by; k++)
            take = strcmp(r->group_by[k], l[i].name) == 0;
        if (take)
            v[cnt++] = l[i];
    }
    obs_labels_sort(v, cnt);
    struct obs_sbuf sb;
    obs_sbuf_init(&sb);
    obs_sbuf_puts(&sb, r->key);
    obs_sbuf_putc(&sb, ':');
    render_lset(&sb, v, cnt);
    if (sb.oom) {
        obs_sbuf_deinit(&sb);
        obs_free(v);
        return OBS_ENOMEM;
    }
    *key = obs_sbuf_take(&sb, NULL);
    *gl = v;
    *ngl = cnt;
    return 0;
}

/* ---- webhook payload ----------------------------------------------------------------- */

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

/* Pairs present with the same value in every alert (labels or annotations). */
static void json_common(struct obs_sbuf *sb, struct ald_alert *const *alerts, size_t n,
                        int annots)
{
    obs_sbuf_putc(sb, '{');
    if (n > 0) {
        const struct obs_label *l0 = annots ? alerts[0]->annots : alerts[0]->labels;
        size_t n0 = annots ? alerts[0]->nannots : alerts[0]->nlabels;
        int first = 1;
        for (size_t i = 0; i < n0; i++) {
            int all = 1;
            for (size_t k = 1; all && k < n; k++) {
                const char *v = obs_labels_get(annots ? alerts[k]->annots : alerts[k]->labels,
                                               annots ? alerts[k]->nannots : alerts[k]->nlabels,
                                               l0[i].name);
                all = v != NULL && strcmp(v, l0[i].value) == 0;
            }
            if (!all)
                continue;
            if (!first)
                obs_sbuf_putc(sb, ',');
            first = 0;
            obs_sbuf_json_str(sb, l0[i].name, strlen(l0[i].name));
            obs_sbuf_putc(sb, ':');
            obs_sbuf_json_str(sb, l0[i].value, strlen(l0[i].value));
        }
    }
    obs_sbuf_putc(sb, '}');
}

void ald_webhook_payload(struct obs_sbuf *sb, const char *receiver, const char *group_key,
                         const struct obs_label *glabels, size_t nglabels,
                         struct ald_alert *const *alerts, size_t n, size_t truncated,
                         const char *external_url, int64_t now_ms)
{
    int firing = 0;
    for (size_t i = 0; i < n; i++)
        firing |= !ald_alert_resolved(alerts[i], now_ms);
    obs_sbuf_puts(sb, "{\"receiver\":");
    obs_sbuf_json_str(sb, receiver, strlen(receiver));
    obs_sbuf_printf(sb, ",\"status\":\"%s\",\"alerts\":[", firing ? "firing" : "resolved");
    for (size_t i = 0; i < n; i++) {
        const struct ald_alert *a = alerts[i];
        int res = ald_alert_resolved(a, now_ms);
        char ts[40], fp[17];
        if (i)
            obs_sbuf_putc(sb, ',');
        obs_sbuf_printf(sb, "{\"status\":\"%s\",\"labels\":", res ? "resolved" : "firing");
        json_kv(sb, a->labels, a->nlabels);
        obs_sbuf_puts(sb, ",\"annotations\":");
        json_kv(sb, a->annots, a->nannots);
        ald_time_go(a->starts_ms, ts);
        obs_sbuf_printf(sb, ",\"startsAt\":\"%s\"", ts);
        /* not-yet-reached end times are not exposed (types.Alerts) */
        ald_time_go(res ? a->ends_ms : 0, ts);
        obs_sbuf_printf(sb, ",\"endsAt\":\"%s\",\"generatorURL\":", ts);
        const char *gu = a->generator_url ? a->generator_url : "";
        obs_sbuf_json_str(sb, gu, strlen(gu));
        ald_fp_str(a->fp, fp);
        obs_sbuf_printf(sb, ",\"fingerprint\":\"%s\"}", fp);
    }
    obs_sbuf_puts(sb, "],\"groupLabels\":");
    json_kv(sb, glabels, nglabels);
    obs_sbuf_puts(sb, ",\"commonLabels\":");
    json_common(sb, alerts, n, 0);
    obs_sbuf_puts(sb, ",\"commonAnnotations\":");
    json_common(sb, alerts, n, 1);
    obs_sbuf_puts(sb, ",\"externalURL\":");
    obs_sbuf_json_str(sb, external_url, strlen(external_url));
    obs_sbuf_puts(sb, ",\"version\":\"4\",\"groupKey\":");
    obs_sbuf_json_str(sb, group_key, strlen(group_key));
    obs_sbuf_printf(sb, ",\"truncatedAlerts\":%zu}", truncated);
}

/* ---- sender thread ------------------------------------------------------------------- */

static void *sender_main(void *arg)
{
    struct ald_sender *s = arg;
    static const char *const hdrs[] = {"Content-Type: application/json",
                                       "User-Agent: Alertmanager/0.25.0 (alertd)", NULL};
    for (;;) {
        pthread_mutex_lock(&s->mu);
        while (!s->stop && s->head == NULL)
            pthread_cond_wait(&s->cv, &s->mu);
        if (s->stop) {
            pthread_mutex_unlock(&s->mu);
            break;
        }
        struct ald_job *j = s->head;
        s->head = j->next;
        if (s->head == NULL)
            s->tail = NULL;
        j->next = NULL;
        pthread_mutex_unlock(&s->mu);

        struct obs_httpc_resp resp = {0};
        struct obs_err err = {0};
        obs_sbuf_init(&resp.body);
        int rc = obs_httpc_do("POST", j->url, hdrs, j->body, j->len, j->timeout_ms, &resp, &err);
        j->status = rc == 0 ? resp.status : 0;
        if (rc != 0)
            snprintf(j->errmsg, sizeof(j->errmsg), "%s", err.msg);
        else if (resp.status / 100 != 2)
            snprintf(j->errmsg, sizeof(j->errmsg), "unexpected status code %d: %.150s",
                     resp.status, resp.body.p ? resp.body.p : "");
        obs_sbuf_deinit(&resp.body);
        if (obs_chan_send(s->chan, j) != 0)
            job_free(j); /* cannot happen except OOM: the flush stays in flight */
    }
    return NULL;
}

static void sender_enqueue(struct ald_sender *s, struct ald_job *j)
{
    pthread_mutex_lock(&s->mu);
    j->next = NULL;
    if (s->tail)
        s->tail->next = j;
    else
        s->head = j;
    s->tail = j;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static void group_maybe_free(struct ald_group *g);

static void flush_done(struct ald_flush *fl)
{
    struct ald_group *g = fl->g;
    if (!fl->failed) {
        /* DeleteIfNotModified: delivered resolved alerts leave the group */
        for (size_t i = 0; i < fl->nr; i++) {
            for (size_t k = 0; k < g->n; k++) {
                if (g->alerts[k]->fp == fl->rfp[i] && g->alerts[k]->updated_ms == fl->rupd[i]) {
                    ald_alert_free(g->alerts[k]);
                    g->alerts[k] = g->alerts[--g->n];
                    break;
                }
            }
        }
    }
    g->inflight = 0;
    g->fl = NULL;
    obs_free(fl->rfp);
    obs_free(fl->rupd);
    obs_free(fl);
    group_maybe_free(g);
}

static void retry_cb(evutil_socket_t fd, short what, void *arg)
{
    struct ald_job *j = arg;
    struct ald_sender *s = j->d->sender;
    /* unlink from the retry list */
    for (struct ald_job **pp = &s->retrying; *pp; pp = &(*pp)->rnext)
        if (*pp == j) {
            *pp = j->rnext;
            break;
        }
    j->rnext = NULL;
    sender_enqueue(s, j);
}

static void job_done(void *msg, void *arg)
{
    struct ald_job *j = msg;
    struct ald *d = arg;
    if (d->stopping) {
        job_free(j);
        return;
    }
    int64_t now = obs_now_ms();
    j->attempt++;
    ald_metric_add(d->m_notif_requests, 1);
    if (j->status / 100 == 2) {
        ald_metric_add(d->m_notif, 1);
        ald_nflog_set(d, j->nkey, j->firing, j->nf, j->resolved, j->nr, now, 1);
        obs_clog_debug(COMP, "notified\tkey=%s attempts=%d", j->nkey, j->attempt);
    } else {
        int retryable = j->status == 0 || j->status == 429 || j->status / 100 == 5;
        if (retryable && j->attempt < MAX_ATTEMPTS && now < j->deadline_ms) {
            int64_t backoff = 250LL << (j->attempt < 6 ? j->attempt : 6);
            obs_clog_warn(COMP, "notify failed, will retry\tkey=%s attempt=%d err=\"%s\"",
                          j->nkey, j->attempt, j->errmsg);
            if (j->retry_ev == NULL)
                j->retry_ev = evtimer_new(d->base, retry_cb, j);
            if (j->retry_ev != NULL) {
                struct timeval tv = {(time_t)(backoff / 1000), (suseconds_t)(backoff % 1000) * 1000};
                j->rnext = d->sender->retrying;
                d->sender->retrying = j;
                evtimer_add(j->retry_ev, &tv);
                return;
            }
        }
        obs_clog_error(COMP, "notify failed\tkey=%s attempts=%d err=\"%s\"", j->nkey,
                       j->attempt, j->errmsg);
        ald_metric_add(d->m_notif, 1);
        ald_metric_add(d->m_notif_failed, 1);
        j->fl->failed = 1;
    }
    struct ald_flush *fl = j->fl;
    job_free(j);
    if (--fl->pending == 0)
        flush_done(fl);
}

/* ---- groups -------------------------------------------------------------------------- */

static void group_free(struct ald_group *g)
{
    if (g == NULL)
        return;
    if (g->timer)
        event_free(g->timer);
    if (g->fl) {
        obs_free(g->fl->rfp);
        obs_free(g->fl->rupd);
        obs_free(g->fl);
    }
    for (size_t i = 0; i < g->n; i++)
        ald_alert_free(g->alerts[i]);
    obs_free(g->alerts);
    for (size_t i = 0; i < g->ngl; i++) {
        obs_free((char *)g->gl[i].name);
        obs_free((char *)g->gl[i].value);
    }
    obs_free(g->gl);
    obs_free(g->key);
    obs_free(g);
}

static void group_maybe_free(struct ald_group *g)
{
    if (g->n > 0 || g->inflight)
        return;
    ald_map_del(&g->d->groups, g->khash);
    obs_clog_debug(COMP, "group removed\tkey=%s", g->key);
    group_free(g);
}

static void timer_in(struct ald_group *g, int64_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    evtimer_add(g->timer, &tv);
}

static int muted(struct ald *d, const struct ald_alert *a)
{
    const char *ids[1];
    uint64_t fps[1];
    return ald_silenced_by(d, a->labels, a->nlabels, ids, 1) > 0 ||
           ald_inhibited_by(d, a->fp, a->labels, a->nlabels, fps, 1) > 0;
}

static const char *lget(const struct ald_alert *a, const char *n)
{
    return obs_labels_get(a->labels, a->nlabels, n);
}

/* types.AlertSlice order: by job, then instance, then the whole label set. */
static int alert_order(const void *pa, const void *pb)
{
    const struct ald_alert *a = *(struct ald_alert *const *)pa;
    const struct ald_alert *b = *(struct ald_alert *const *)pb;
    static const char *const keys[] = {"job", "instance"};
    for (int k = 0; k < 2; k++) {
        const char *x = lget(a, keys[k]), *y = lget(b, keys[k]);
        if (x && y) {
            int c = strcmp(x, y);
            if (c)
                return c;
        }
    }
    for (size_t i = 0; i < a->nlabels && i < b->nlabels; i++) {
        int c = strcmp(a->labels[i].name, b->labels[i].name);
        if (c)
            return c;
        c = strcmp(a->labels[i].value, b->labels[i].value);
        if (c)
            return c;
    }
    return a->nlabels < b->nlabels ? -1 : a->nlabels > b->nlabels;
}

static void group_flush(struct ald_group *g)
{
    struct ald *d = g->d;
    int64_t now = obs_now_ms();
    const struct ald_receiver *rcv = ald_config_receiver(d->cfg, g->route->receiver);
    struct ald_alert **snap = obs_calloc(g->n ? g->n : 1, sizeof(*snap));
    uint64_t *f = obs_calloc(g->n ? g->n : 1, sizeof(uint64_t));
    uint64_t *r = obs_calloc(g->n ? g->n : 1, sizeof(uint64_t));
    struct ald_flush *fl = obs_calloc(1, sizeof(*fl));
    if (fl)
        fl->rfp = obs_calloc(g->n ? g->n : 1, sizeof(uint64_t));
    if (fl)
        fl->rupd = obs_calloc(g->n ? g->n : 1, sizeof(int64_t));
    if (!snap || !f || !r || !fl || !fl->rfp || !fl->rupd) {
        obs_clog_error(COMP, "out of memory flushing group\tkey=%s", g->key);
        if (fl) {
            obs_free(fl->rfp);
            obs_free(fl->rupd);
        }
        obs_free(fl);
        obs_free(snap);
        obs_free(f);
        obs_free(r);
        return;
    }
    fl->g = g;
    size_t ns = 0, nf = 0, nr = 0;
    for (size_t i = 0; i < g->n; i++) {
        struct ald_alert *a = g->alerts[i];
        if (ald_alert_resolved(a, now)) {
            fl->rfp[fl->nr] = a->fp;
            fl->rupd[fl->nr++] = a->updated_ms;
        }
        if (muted(d, a))
            continue;
        snap[ns++] = a;
        if (ald_alert_resolved(a, now))
            r[nr++] = a->fp;
        else
            f[nf++] = a->fp;
    }
    qsort(snap, ns, sizeof(*snap), alert_order);
    g->inflight = 1;
    g->fl = fl;
    fl->pending = 1; /* held while queueing */
    for (size_t h = 0; rcv && h < rcv->nhooks; h++) {
        const struct ald_webhook *wh = &rcv->hooks[h];
        char nkey[64];
        snprintf(nkey, sizeof(nkey), "%s/webhook/%zu:", rcv->name, h);
        struct obs_sbuf kb;
        obs_sbuf_init(&kb);
        obs_sbuf_puts(&kb, nkey);
        obs_sbuf_puts(&kb, g->key);
        if (kb.oom) {
            obs_sbuf_deinit(&kb);
            fl->failed = 1;
            continue;
        }
        const struct ald_nflog_entry *e = ald_nflog_get(d, kb.p);
        if (!needs_update(e, f, nf, r, nr, wh->send_resolved, g->route->repeat_interval_ms,
                          now)) {
            obs_sbuf_deinit(&kb);
            continue;
        }
        /* what to send: resolved alerts only with send_resolved */
        struct ald_alert **send = obs_calloc(ns ? ns : 1, sizeof(*send));
        if (send == NULL) {
            obs_sbuf_deinit(&kb);
            fl->failed = 1;
            continue;
        }
        size_t nsend = 0;
        for (size_t i = 0; i < ns; i++)
            if (wh->send_resolved || !ald_alert_resolved(snap[i], now))
                send[nsend++] = snap[i];
        if (nsend == 0) {
            /* nothing to deliver, but remember the state (resolved without send_resolved) */
            ald_nflog_set(d, kb.p, f, nf, r, nr, now, 1);
            obs_free(send);
            obs_sbuf_deinit(&kb);
            continue;
        }
        size_t trunc = 0;
        if (wh->max_alerts > 0 && nsend > (size_t)wh->max_alerts) {
            trunc = nsend - (size_t)wh->max_alerts;
            nsend = (size_t)wh->max_alerts;
        }
        struct obs_sbuf body;
        obs_sbuf_init(&body);
        ald_webhook_payload(&body, rcv->name, g->key, g->gl, g->ngl, send, nsend, trunc,
                            d->cfg->external_url ? d->cfg->external_url : "", now);
        obs_free(send);
        struct ald_job *j = obs_calloc(1, sizeof(*j));
        if (j == NULL || body.oom) {
            obs_free(j);
            obs_sbuf_deinit(&body);
            obs_sbuf_deinit(&kb);
            fl->failed = 1;
            continue;
        }
        j->d = d;
        j->fl = fl;
        j->url = obs_strdup(wh->url);
        j->body = obs_sbuf_take(&body, &j->len);
        j->timeout_ms = wh->timeout_ms > 0 ? (int)wh->timeout_ms : 10000;
        j->nkey = obs_sbuf_take(&kb, NULL);
        j->firing = obs_malloc((nf ? nf : 1) * sizeof(uint64_t));
        j->resolved = obs_malloc((nr ? nr : 1) * sizeof(uint64_t));
        if (!j->url || !j->body || !j->nkey || !j->firing || !j->resolved) {
            job_free(j);
            fl->failed = 1;
            continue;
        }
        memcpy(j->firing, f, nf * sizeof(uint64_t));
        memcpy(j->resolved, r, nr * sizeof(uint64_t));
        j->nf = nf;
        j->nr = nr;
        j->deadline_ms = now + (g->route->group_interval_ms > 5000 ? g->route->group_interval_ms
                                                                    : 5000);
        fl->pending++;
        obs_clog_debug(COMP, "sending notification\tkey=%s alerts=%zu", j->nkey, nsend);
        sender_enqueue(d->sender, j);
    }
    obs_free(snap);
    obs_free(f);
    obs_free(r);
    if (--fl->pending == 0)
        flush_done(fl);
}

static void group_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct ald_group *g = arg;
    timer_in(g, g->route->group_interval_ms);
    g->has_flushed = 1;
    if (g->inflight) {
        obs_clog_debug(COMP, "previous flush still in flight\tkey=%s", g->key);
        return;
    }
    group_flush(g);
}

static void group_insert(struct ald *d, const struct ald_route *rt, const struct ald_alert *a)
{
    char *key;
    struct obs_label *gl;
    size_t ngl;
    if (ald_group_key(rt, a->labels, a->nlabels, &key, &gl, &ngl) != 0)
        return;
    uint64_t h = ald_hash_str(key);
    struct ald_group *g = ald_map_get(&d->groups, h);
    if (g == NULL) {
        g = obs_calloc(1, sizeof(*g));
        if (g == NULL) {
            obs_free(key);
            obs_free(gl);
            return;
        }
        g->d = d;
        g->key = key;
        g->khash = h;
        g->route = rt;
        g->gl = obs_calloc(ngl ? ngl : 1, sizeof(*g->gl));
        g->timer = evtimer_new(d->base, group_timer_cb, g);
        if (g->gl == NULL || g->timer == NULL || ald_map_put(&d->groups, h, g) != 0) {
            obs_free(gl);
            group_free(g);
            return;
        }
        for (size_t i = 0; i < ngl; i++) {
            g->gl[i].name = obs_strdup(gl[i].name);
            g->gl[i].value = obs_strdup(gl[i].value);
            g->ngl++;
        }
        timer_in(g, rt->group_wait_ms);
        obs_clog_debug(COMP, "group created\tkey=%s", g->key);
    } else {
        obs_free(key);
    }
    obs_free(gl);
    struct ald_alert *c = ald_alert_clone(a);
    if (c == NULL)
        return;
    size_t k;
    for (k = 0; k < g->n; k++)
        if (g->alerts[k]->fp == a->fp)
            break;
    if (k < g->n) {
        ald_alert_free(g->alerts[k]);
        g->alerts[k] = c;
    } else {
        if (g->n == g->cap) {
            size_t nc = g->cap ? g->cap * 2 : 8;
            struct ald_alert **nv = obs_realloc(g->alerts, nc * sizeof(*nv));
            if (nv == NULL) {
                ald_alert_free(c);
                return;
            }
            g->alerts = nv;
            g->cap = nc;
        }
        g->alerts[g->n++] = c;
    }
    /* an alert older than group_wait flushes a fresh group at once */
    if (!g->has_flushed && a->starts_ms + rt->group_wait_ms < obs_now_ms())
        timer_in(g, 0);
}

void ald_dispatch_alert(struct ald *d, const struct ald_alert *a)
{
    if (d->sender == NULL) /* not started yet (replay): ald_dispatch_start feeds the store */
        return;
    const struct ald_route *routes[64];
    size_t n = ald_route_match(d->cfg->route, a->labels, a->nlabels, routes, 64);
    for (size_t i = 0; i < n; i++)
        group_insert(d, routes[i], a);
}

void ald_groups_each(struct ald *d, ald_group_fn fn, void *arg)
{
    for (size_t i = 0; i < d->groups.cap; i++) {
        if (!ald_map_slot(&d->groups, i))
            continue;
        struct ald_group *g = d->groups.vals[i];
        fn(g->route, g->gl, g->ngl, g->alerts, g->n, arg);
    }
}

/* ---- start / stop -------------------------------------------------------------------- */

int ald_dispatch_start(struct ald *d, struct obs_err *err)
{
    struct ald_sender *s = obs_calloc(1, sizeof(*s));
    if (s == NULL)
        return obs_err_set(err, OBS_ENOMEM, "out of memory");
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->chan = obs_chan_new(d->base, job_done, d);
    if (s->chan == NULL) {
        obs_free(s);
        return obs_err_set(err, OBS_EIO, "cannot create notification channel");
    }
    if (pthread_create(&s->th, NULL, sender_main, s) != 0) {
        obs_chan_free(s->chan);
        obs_free(s);
        return obs_err_set(err, OBS_EIO, "cannot start sender thread");
    }
    s->started = 1;
    d->sender = s;
    /* feed alerts recovered from the WAL into the groups; the nflog prevents re-sends */
    for (size_t i = 0; i < d->alerts.cap; i++)
        if (ald_map_slot(&d->alerts, i))
            ald_dispatch_alert(d, d->alerts.vals[i]);
    return 0;
}

void ald_dispatch_stop(struct ald *d)
{
    struct ald_sender *s = d->sender;
    d->stopping = 1;
    if (s == NULL)
        return;
    pthread_mutex_lock(&s->mu);
    s->stop = 1;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    if (s->started)
        pthread_join(s->th, NULL);
    obs_chan_free(s->chan); /* delivers finished jobs to job_done, which frees them */
    while (s->head) {
        struct ald_job *j = s->head;
        s->head = j->next;
        job_free(j);
    }
    while (s->retrying) {
        struct ald_job *j = s->retrying;
        s->retrying = j->rnext;
        job_free(j);
    }
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    obs_free(s);
    d->sender = NULL;
    /* free the groups; a flush in flight goes with its group (its jobs were freed above) */
    for (size_t i = 0; i < d->groups.cap; i++) {
        if (!ald_map_slot(&d->groups, i))
            continue;
        group_free(d->groups.vals[i]);
    }
    ald_map_deinit(&d->groups);
}
