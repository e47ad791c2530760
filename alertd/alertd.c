/*
 * alertd.c -- the alertd component: builds the daemon state from the config tree, opens the
 * persisted state, starts the dispatcher and registers the API; stops them in reverse.
 *
 * alertd runs as a single component ("alertmanager") on obs_app's loop and HTTP server.
 * Non-webhook receivers are accepted by the config but only logged as not supported.
 */
#include "alertd/ald.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "app/obs_app.h"
#include "config/obs_cf.h"
#include "core/obs_log.h"
#include "core/obs_mem.h"
#include "core/obs_time.h"
#include "http/obs_http.h"
#include "metrics/obs_metrics.h"

#include <event2/event.h>
#include <signal.h>

#define COMP "alertmanager"
#define STATS_INTERVAL_S 5

void ald_metric_add(struct obs_mchild *c, double v)
{
    if (c != NULL)
        obs_mchild_add(c, v);
}

static void metric_set(struct obs_mchild *c, double v)
{
    if (c != NULL)
        obs_mchild_set(c, v);
}

/* Refresh the state gauges (alerts by state, silences by state, nflog size). */
static void stats_cb(evutil_socket_t fd, short what, void *arg)
{
    struct ald *d = arg;
    int64_t now = obs_now_ms();
    double active = 0, suppressed = 0, sil[3] = {0, 0, 0};
    for (size_t i = 0; i < d->alerts.cap; i++) {
        if (!ald_map_slot(&d->alerts, i))
            continue;
        const struct ald_alert *a = d->alerts.vals[i];
        if (ald_alert_resolved(a, now))
            continue;
        const char *ids[1];
        uint64_t fps[1];
        if (ald_silenced_by(d, a->labels, a->nlabels, ids, 1) ||
            ald_inhibited_by(d, a->fp, a->labels, a->nlabels, fps, 1))
            suppressed++;
        else
            active++;
    }
    for (size_t i = 0; i < d->nsils; i++)
        sil[ald_silence_state(d->sils[i], now)]++;
    metric_set(d->m_alerts_active, active);
    metric_set(d->m_alerts_suppressed, suppressed);
    metric_set(d->m_sil_pending, sil[ALD_SIL_PENDING]);
    metric_set(d->m_sil_active, sil[ALD_SIL_ACTIVE]);
    metric_set(d->m_sil_expired, sil[ALD_SIL_EXPIRED]);
    size_t n = 0;
    for (size_t i = 0; i < d->nflog.cap; i++)
        n += ald_map_slot(&d->nflog, i);
    metric_set(d->m_nflog_entries, (double)n);
}

static void metrics_init(struct ald *d, struct obs_metrics *m)
{
    if (m == NULL)
        return;
    struct obs_mfamily *f;
    f = obs_metrics_family(m, OBS_MCOUNTER, "alertmanager_alerts_received_total",
                           "The total number of received alerts.", "status", NULL, 0);
    if (f) {
        d->m_recv_firing = obs_mfamily_with(f, "firing");
        d->m_recv_resolved = obs_mfamily_with(f, "resolved");
    }
    d->m_invalid = obs_metrics_counter(m, "alertmanager_alerts_invalid_total",
                                       "The total number of received alerts that were invalid.");
    f = obs_metrics_family(m, OBS_MCOUNTER, "alertmanager_notifications_total",
                           "The total number of attempted notifications.", "integration", NULL,
                           0);
    if (f)
        d->m_notif = obs_mfamily_with(f, "webhook");
    f = obs_metrics_family(m, OBS_MCOUNTER, "alertmanager_notifications_failed_total",
                           "The total number of failed notifications.", "integration", NULL, 0);
    if (f)
        d->m_notif_failed = obs_mfamily_with(f, "webhook");
    f = obs_metrics_family(m, OBS_MCOUNTER, "alertmanager_notification_requests_total",
                           "The total number of attempted notification requests.", "integration",
                           NULL, 0);
    if (f)
        d->m_notif_requests = obs_mfamily_with(f, "webhook");
    f = obs_metrics_family(m, OBS_MGAUGE, "alertmanager_alerts", "How many alerts by state.",
                           "state", NULL, 0);
    if (f) {
        d->m_alerts_active = obs_mfamily_with(f, "active");
        d->m_alerts_suppressed = obs_mfamily_with(f, "suppressed");
    }
    f = obs_metrics_family(m, OBS_MGAUGE, "alertmanager_silences", "How many silences by state.",
                           "state", NULL, 0);
    if (f) {
        d->m_sil_active = obs_mfamily_with(f, "active");
        d->m_sil_pending = obs_mfamily_with(f, "pending");
        d->m_sil_expired = obs_mfamily_with(f, "expired");
    }
    d->m_nflog_entries = obs_metrics_gauge(m, "alertmanager_nflog_entries",
                                           "Entries in the notification log.");
    d->stats_timer = event_new(d->base, -1, EV_PERSIST, stats_cb, d);
    if (d->stats_timer) {
        struct timeval tv = {STATS_INTERVAL_S, 0};
        evtimer_add(d->stats_timer, &tv);
    }
    stats_cb(-1, 0, d);
}

struct ald *ald_new(struct event_base *base, struct ald_config *cfg_take, const char *original)
{
    struct ald *d = obs_calloc(1, sizeof(*d));
    if (d == NULL) {
        ald_config_free(cfg_take);
        return NULL;
    }
    d->base = base;
    d->cfg = cfg_take;
    d->config_original = obs_strdup(original ? original : "");
    d->start_ms = obs_now_ms();
    return d;
}

void ald_free(struct ald *d)
{
    if (d == NULL)
        return;
    if (d->sender)
        ald_dispatch_stop(d);
    if (d->stats_timer)
        event_free(d->stats_timer);
    if (d->sighup)
        event_free(d->sighup);
    ald_state_close(d);
    for (size_t i = 0; i < d->alerts.cap; i++)
        if (ald_map_slot(&d->alerts, i))
            ald_alert_free(d->alerts.vals[i]);
    ald_map_deinit(&d->alerts);
    for (size_t i = 0; i < d->nflog.cap; i++) {
        if (!ald_map_slot(&d->nflog, i))
            continue;
        struct ald_nflog_entry *e = d->nflog.vals[i];
        obs_free(e->key);
        obs_free(e->firing);
        obs_free(e->resolved);
        obs_free(e);
    }
    ald_map_deinit(&d->nflog);
    for (size_t i = 0; i < d->nsils; i++)
        ald_silence_free(d->sils[i]);
    obs_free(d->sils);
    ald_config_free(d->cfg);
    obs_free(d->config_original);
    obs_free(d);
}

static char *read_file(const char *path)
{
    FILE *f = path && *path ? fopen(path, "rb") : NULL;
    if (f == NULL)
        return NULL;
    struct obs_sbuf sb;
    obs_sbuf_init(&sb);
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
        obs_sbuf_append(&sb, buf, n);
    fclose(f);
    obs_sbuf_putc(&sb, '\0');
    return obs_sbuf_take(&sb, NULL);
}

/* ---- config.original: the loaded tree re-emitted as YAML ------------------------------ */

/* Alertmanager returns its parsed config re-marshalled; alertd emits the loaded tree (so
 * ${VAR} expansion is applied) without alertd's own top-level keys, which keeps amtool's
 * strict parser happy (`amtool config routes`, `amtool config show`). */
static int plain_ok(const char *v)
{
    if (v == NULL || *v == '\0' || strchr("-?:,[]{}#&*!|>'\"%@`~ ", v[0]) != NULL)
        return 0;
    for (const char *p = v; *p; p++)
        if (!(isalnum((unsigned char)*p) || strchr("_.:/+-=", *p) != NULL))
            return 0;
    return v[strlen(v) - 1] != ':';
}

static void emit_scalar(struct obs_sbuf *sb, const struct obs_cf_node *n)
{
    if (n->type == OBS_CF_NULL || n->value == NULL)
        obs_sbuf_puts(sb, "null");
    else if (!n->quoted && plain_ok(n->value))
        obs_sbuf_puts(sb, n->value);
    else
        obs_sbuf_json_str(sb, n->value, strlen(n->value));
}

static void pad(struct obs_sbuf *sb, int n)
{
    for (int i = 0; i < n; i++)
        obs_sbuf_putc(sb, ' ');
}

static void emit_node(struct obs_sbuf *sb, const struct obs_cf_node *n, int indent, int inline1,
                      int top);

/* value after "key:" or "-" */
static void emit_value(struct obs_sbuf *sb, const struct obs_cf_node *v, int indent, int in_seq)
{
    if (v->type == OBS_CF_MAP && v->n > 0) {
        if (in_seq) {
            obs_sbuf_putc(sb, ' ');
            emit_node(sb, v, indent, 1, 0);
        } else {
            obs_sbuf_putc(sb, '\n');
            emit_node(sb, v, indent, 0, 0);
        }
    } else if (v->type == OBS_CF_SEQ && v->n > 0) {
        obs_sbuf_putc(sb, '\n');
        emit_node(sb, v, indent, 0, 0);
    } else {
        obs_sbuf_putc(sb, ' ');
        if (v->type == OBS_CF_MAP)
            obs_sbuf_puts(sb, "{}");
        else if (v->type == OBS_CF_SEQ)
            obs_sbuf_puts(sb, "[]");
        else
            emit_scalar(sb, v);
        obs_sbuf_putc(sb, '\n');
    }
}

static void emit_node(struct obs_sbuf *sb, const struct obs_cf_node *n, int indent, int inline1,
                      int top)
{
    static const char *const own[] = {"server", "storage", "web", "data", "cluster", "log",
                                      "config", NULL};
    if (n->type == OBS_CF_MAP) {
        int first = 1;
        for (size_t i = 0; i < n->n; i++) {
            const struct obs_cf_node *it = n->items[i];
            int skip = 0;
            for (int k = 0; top && own[k]; k++)
                skip |= strcmp(own[k], it->key) == 0;
            if (skip)
                continue;
            if (!(first && inline1))
                pad(sb, indent);
            first = 0;
            if (plain_ok(it->key))
                obs_sbuf_puts(sb, it->key);
            else
                obs_sbuf_json_str(sb, it->key, strlen(it->key));
            obs_sbuf_putc(sb, ':');
            emit_value(sb, it, indent + 2, 0);
        }
    } else if (n->type == OBS_CF_SEQ) {
        for (size_t i = 0; i < n->n; i++) {
            pad(sb, indent);
            obs_sbuf_putc(sb, '-');
            emit_value(sb, n->items[i], indent + 2, 1);
        }
    }
}

static char *am_original(const struct obs_cf_node *root)
{
    struct obs_sbuf sb;
    obs_sbuf_init(&sb);
    emit_node(&sb, root, 0, 0, 1);
    obs_sbuf_putc(&sb, '\0');
    return obs_sbuf_take(&sb, NULL);
}

int ald_reload(struct ald *d, struct obs_err *err)
{
    if (d->cfg_file == NULL || d->cfg_file[0] == '\0')
        return obs_err_set(err, OBS_EINVAL, "no config file to reload");
    /* obs_app does not tell whether -config.expand-env was given: a file with ${ that
     * loaded at start was expanded */
    char *raw = read_file(d->cfg_file);
    int expand = raw != NULL && strstr(raw, "${") != NULL;
    obs_free(raw);
    struct obs_cf_node *root = obs_cf_load_file(d->cfg_file, expand, err);
    if (root == NULL)
        return OBS_EINVAL;
    struct ald_config *nc = ald_config_from_tree(root, err);
    char *orig = nc ? am_original(root) : NULL;
    obs_cf_free(root);
    if (nc == NULL)
        return OBS_EINVAL;
    /* flag-derived settings stay as they were at start */
    char *t;
    t = nc->storage_path, nc->storage_path = d->cfg->storage_path, d->cfg->storage_path = t;
    t = nc->external_url, nc->external_url = d->cfg->external_url, d->cfg->external_url = t;
    nc->retention_ms = d->cfg->retention_ms;
    ald_dispatch_stop(d);
    ald_config_free(d->cfg);
    d->cfg = nc;
    d->stopping = 0;
    if (orig) {
        obs_free(d->config_original);
        d->config_original = orig;
    }
    int rc = ald_dispatch_start(d, err);
    if (rc == 0)
        obs_clog_info(COMP, "configuration reloaded\tfile=%s", d->cfg_file);
    return rc;
}

static void sighup_cb(evutil_socket_t fd, short what, void *arg)
{
    struct obs_err err = {0};
    if (ald_reload(arg, &err) != 0)
        obs_clog_error(COMP, "reload failed, keeping the old config\terr=\"%s\"", err.msg);
}

static int am_init(struct obs_ctx *ctx, struct obs_err *err)
{
    struct ald_config *cfg = ald_config_from_tree(ctx->cfg, err);
    if (cfg == NULL)
        return err->code ? err->code : OBS_EINVAL;
    if (cfg->external_url == NULL || cfg->external_url[0] == '\0') {
        char host[256] = "localhost", url[400];
        gethostname(host, sizeof(host) - 1);
        snprintf(url, sizeof(url), "http://%s:%d", host, obs_http_server_port(ctx->http));
        obs_free(cfg->external_url);
        cfg->external_url = obs_strdup(url);
    }
    for (size_t i = 0; i < cfg->nreceivers; i++)
        if (cfg->receivers[i].nunsupported)
            obs_clog_warn(COMP, "receiver integrations not supported, only webhook_configs "
                                "notify\treceiver=%s unsupported=%d",
                          cfg->receivers[i].name, cfg->receivers[i].nunsupported);
    char *orig = am_original(ctx->cfg);
    struct ald *d = ald_new(ctx->base, cfg, orig);
    obs_free(orig);
    if (d == NULL)
        return obs_err_set(err, OBS_ENOMEM, "out of memory");
    int rc = ald_state_open(d, err);
    if (rc == 0)
        rc = ald_dispatch_start(d, err);
    if (rc == 0)
        rc = ald_api_register(d, ctx->http);
    if (rc != 0) {
        ald_free(d);
        return rc;
    }
    ctx->app = d;
    d->cfg_file = ctx->cfg_file;
    metrics_init(d, ctx->metrics);
    d->sighup = evsignal_new(ctx->base, SIGHUP, sighup_cb, d);
    if (d->sighup)
        evsignal_add(d->sighup, NULL);
    obs_clog_info(COMP, "alertd ready\tstorage=%s external_url=%s receivers=%zu",
                  d->cfg->storage_path, d->cfg->external_url, d->cfg->nreceivers);
    return 0;
}

static void am_stop(struct obs_ctx *ctx)
{
    struct ald *d = ctx->app;
    if (d == NULL)
        return;
    ald_dispatch_stop(d);
    ald_state_sync(d);
    ald_free(d);
    ctx->app = NULL;
}

const struct obs_component ald_component = {
    .name = "alertmanager",
    .deps = NULL,
    .init = am_init,
    .stop = am_stop,
};
