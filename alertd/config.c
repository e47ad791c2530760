/*
 * config.c -- Alertmanager's YAML configuration bound into struct ald_config.
 *
 * The whole file is Alertmanager's format (global, route, receivers, inhibit_rules,
 * templates, time_intervals, mute_time_intervals), so users paste their alertmanager.yml.
 * alertd's own settings are not Alertmanager keys: they come from flags, which obs_app writes
 * into the tree as `server.*` (--web.listen-address), `storage.path` (--storage.path),
 * `web.external_url` (--web.external-url) and `data.retention` (--data.retention).
 *
 * Every mapping is bound through an obs_cfmap table, so an unknown key anywhere fails with
 * "file:line:col: key: unknown key". Semantic errors (undefined receiver, bad regex, bad
 * group_by) also carry the position of the offending node. Receivers other than webhook are
 * parsed loosely (any keys) and counted as unsupported; alertd logs them at start.
 * Route options are inherited by child routes as Alertmanager does (receiver, group_by,
 * group_wait, group_interval, repeat_interval).
 */
#include "alertd/ald.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "config/obs_cf.h"
#include "core/obs_log.h"
#include "core/obs_mem.h"
#include "core/obs_sbuf.h"

/* ---- top level ----------------------------------------------------------------------- */

struct raw_top {
    const struct obs_cf_node *global, *route, *receivers, *inhibit, *storage, *web, *data;
};

static const struct obs_cfmap top_map[] = {
    {"global", OBS_CFT_NODE, NULL, offsetof(struct raw_top, global), "global settings"},
    {"route", OBS_CFT_NODE, NULL, offsetof(struct raw_top, route), "root of the route tree"},
    {"receivers", OBS_CFT_NODE, NULL, offsetof(struct raw_top, receivers), "receivers"},
    {"inhibit_rules", OBS_CFT_NODE, NULL, offsetof(struct raw_top, inhibit), "inhibit rules"},
    {"templates", OBS_CFT_IGNORE, NULL, 0, "notification templates (not used by webhooks)"},
    {"time_intervals", OBS_CFT_IGNORE, NULL, 0, "named time intervals (accepted, unused)"},
    {"mute_time_intervals", OBS_CFT_IGNORE, NULL, 0, "deprecated time intervals (unused)"},
    {"tracing", OBS_CFT_IGNORE, NULL, 0, "tracing settings (unused)"},
    {"server", OBS_CFT_IGNORE, NULL, 0, "listen address (bound by obs_app from flags)"},
    {"storage", OBS_CFT_NODE, NULL, offsetof(struct raw_top, storage), "--storage.path"},
    {"web", OBS_CFT_NODE, NULL, offsetof(struct raw_top, web), "--web.external-url"},
    {"data", OBS_CFT_NODE, NULL, offsetof(struct raw_top, data), "--data.retention"},
    {"cluster", OBS_CFT_IGNORE, NULL, 0, "--cluster.* flags (HA not implemented)"},
    {"log", OBS_CFT_IGNORE, NULL, 0, "--log.* flags"},
    {"config", OBS_CFT_IGNORE, NULL, 0, "--config.* flags"},
    {NULL},
};

struct raw_global {
    int64_t resolve_timeout_ms;
};

static const struct obs_cfmap global_map[] = {
    {"resolve_timeout", OBS_CFT_DURATION, "5m", offsetof(struct raw_global, resolve_timeout_ms),
     "time after which an alert without endsAt is declared resolved"},
    {"http_config", OBS_CFT_IGNORE},
    {"smtp_from", OBS_CFT_IGNORE},
    {"smtp_hello", OBS_CFT_IGNORE},
    {"smtp_smarthost", OBS_CFT_IGNORE},
    {"smtp_auth_username", OBS_CFT_IGNORE},
    {"smtp_auth_password", OBS_CFT_IGNORE},
    {"smtp_auth_password_file", OBS_CFT_IGNORE},
    {"smtp_auth_secret", OBS_CFT_IGNORE},
    {"smtp_auth_identity", OBS_CFT_IGNORE},
    {"smtp_require_tls", OBS_CFT_IGNORE},
    {"smtp_tls_config", OBS_CFT_IGNORE},
    {"slack_api_url", OBS_CFT_IGNORE},
    {"slack_api_url_file", OBS_CFT_IGNORE},
    {"pagerduty_url", OBS_CFT_IGNORE},
    {"opsgenie_api_url", OBS_CFT_IGNORE},
    {"opsgenie_api_key", OBS_CFT_IGNORE},
    {"opsgenie_api_key_file", OBS_CFT_IGNORE},
    {"wechat_api_url", OBS_CFT_IGNORE},
    {"wechat_api_secret", OBS_CFT_IGNORE},
    {"wechat_api_corp_id", OBS_CFT_IGNORE},
    {"victorops_api_url", OBS_CFT_IGNORE},
    {"victorops_api_key", OBS_CFT_IGNORE},
    {"victorops_api_key_file", OBS_CFT_IGNORE},
    {"telegram_api_url", OBS_CFT_IGNORE},
    {"webex_api_url", OBS_CFT_IGNORE},
    {"jira_api_url", OBS_CFT_IGNORE},
    {"rocketchat_api_url", OBS_CFT_IGNORE},
    {"rocketchat_token", OBS_CFT_IGNORE},
    {"rocketchat_token_file", OBS_CFT_IGNORE},
    {"rocketchat_token_id", OBS_CFT_IGNORE},
    {"rocketchat_token_id_file", OBS_CFT_IGNORE},
    {NULL},
};

struct raw_storage {
    char *path;
};
static const struct obs_cfmap storage_map[] = {
    {"path", OBS_CFT_STR, "./data/alertd", offsetof(struct raw_storage, path),
     "directory for the WAL of alerts, silences and the notification log"},
    {NULL},
};

struct raw_web {
    char *external_url;
};
static const struct obs_cfmap web_map[] = {
    {"external_url", OBS_CFT_STR, NULL, offsetof(struct raw_web, external_url),
     "URL under which alertd is reachable (externalURL in notifications)"},
    {"listen_address", OBS_CFT_IGNORE, NULL, 0, "handled by main.c"},
    {"route_prefix", OBS_CFT_IGNORE},
    {NULL},
};

struct raw_data {
    int64_t retention_ms;
};
static const struct obs_cfmap data_map[] = {
    {"retention", OBS_CFT_DURATION, "120h", offsetof(struct raw_data, retention_ms),
     "how long to keep expired silences, resolved alerts and notification log entries"},
    {NULL},
};

/* ---- route --------------------------------------------------------------------------- */

struct raw_route {
    char *receiver;
    const struct obs_cf_node *group_by, *group_wait, *group_interval, *repeat_interval;
    const struct obs_cf_node *match, *match_re, *matchers, *routes, *cont;
};

static const struct obs_cfmap route_map[] = {
    {"receiver", OBS_CFT_STR, NULL, offsetof(struct raw_route, receiver), "receiver name"},
    {"group_by", OBS_CFT_NODE, NULL, offsetof(struct raw_route, group_by), "grouping labels"},
    {"group_wait", OBS_CFT_NODE, NULL, offsetof(struct raw_route, group_wait), "30s"},
    {"group_interval", OBS_CFT_NODE, NULL, offsetof(struct raw_route, group_interval), "5m"},
    {"repeat_interval", OBS_CFT_NODE, NULL, offsetof(struct raw_route, repeat_interval), "4h"},
    {"match", OBS_CFT_NODE, NULL, offsetof(struct raw_route, match), "deprecated equality"},
    {"match_re", OBS_CFT_NODE, NULL, offsetof(struct raw_route, match_re), "deprecated regex"},
    {"matchers", OBS_CFT_NODE, NULL, offsetof(struct raw_route, matchers), "matcher list"},
    {"routes", OBS_CFT_NODE, NULL, offsetof(struct raw_route, routes), "child routes"},
    {"continue", OBS_CFT_NODE, NULL, offsetof(struct raw_route, cont), "keep matching"},
    {"mute_time_intervals", OBS_CFT_IGNORE, NULL, 0, "accepted, not applied"},
    {"active_time_intervals", OBS_CFT_IGNORE, NULL, 0, "accepted, not applied"},
    {NULL},
};

/* ---- receivers ----------------------------------------------------------------------- */

struct raw_receiver {
    char *name;
    const struct obs_cf_node *webhook;
};

#define UNSUPPORTED(k) {k, OBS_CFT_IGNORE, NULL, 0, "parsed; not supported by alertd"}
static const struct obs_cfmap receiver_map[] = {
    {"name", OBS_CFT_STR, NULL, offsetof(struct raw_receiver, name), "unique name"},
    {"webhook_configs", OBS_CFT_NODE, NULL, offsetof(struct raw_receiver, webhook), "webhooks"},
    UNSUPPORTED("email_configs"),
    UNSUPPORTED("pagerduty_configs"),
    UNSUPPORTED("slack_configs"),
    UNSUPPORTED("opsgenie_configs"),
    UNSUPPORTED("wechat_configs"),
    UNSUPPORTED("pushover_configs"),
    UNSUPPORTED("victorops_configs"),
    UNSUPPORTED("sns_configs"),
    UNSUPPORTED("telegram_configs"),
    UNSUPPORTED("webex_configs"),
    UNSUPPORTED("discord_configs"),
    UNSUPPORTED("msteams_configs"),
    UNSUPPORTED("msteamsv2_configs"),
    UNSUPPORTED("jira_configs"),
    UNSUPPORTED("rocketchat_configs"),
    UNSUPPORTED("incidentio_configs"),
    {NULL},
};

struct raw_webhook {
    char *url;
    int send_resolved;
    int64_t max_alerts;
    int64_t timeout_ms;
    const struct obs_cf_node *url_file;
};

static const struct obs_cfmap webhook_map[] = {
    {"url", OBS_CFT_STR, NULL, offsetof(struct raw_webhook, url), "endpoint to POST to"},
    {"url_file", OBS_CFT_NODE, NULL, offsetof(struct raw_webhook, url_file), "file with url"},
    {"send_resolved", OBS_CFT_BOOL, "true", offsetof(struct raw_webhook, send_resolved),
     "notify about resolved alerts"},
    {"max_alerts", OBS_CFT_INT, "0", offsetof(struct raw_webhook, max_alerts),
     "maximum alerts per message (0 = all)"},
    {"timeout", OBS_CFT_DURATION, "0s", offsetof(struct raw_webhook, timeout_ms),
     "request timeout (0 = 10s)"},
    {"http_config", OBS_CFT_IGNORE, NULL, 0, "accepted, not applied"},
    {NULL},
};

/* ---- inhibit rules ------------------------------------------------------------------- */

struct raw_inhibit {
    const struct obs_cf_node *sm, *smr, *smatchers, *tm, *tmr, *tmatchers, *equal;
};

static const struct obs_cfmap inhibit_map[] = {
    {"source_match", OBS_CFT_NODE, NULL, offsetof(struct raw_inhibit, sm)},
    {"source_match_re", OBS_CFT_NODE, NULL, offsetof(struct raw_inhibit, smr)},
    {"source_matchers", OBS_CFT_NODE, NULL, offsetof(struct raw_inhibit, smatchers)},
    {"target_match", OBS_CFT_NODE, NULL, offsetof(struct raw_inhibit, tm)},
    {"target_match_re", OBS_CFT_NODE, NULL, offsetof(struct raw_inhibit, tmr)},
    {"target_matchers", OBS_CFT_NODE, NULL, offsetof(struct raw_inhibit, tmatchers)},
    {"equal", OBS_CFT_NODE, NULL, offsetof(struct raw_inhibit, equal)},
    {NULL},
};

/* ---- helpers ------------------------------------------------------------------------- */

static int is_null(const struct obs_cf_node *n)
{
    return n == NULL || n->type == OBS_CF_NULL;
}

/* A string list that may be a YAML sequence of scalars. */
static int str_list(const struct obs_cf_node *n, char ***out, size_t *nout, struct obs_err *err)
{
    *out = NULL;
    *nout = 0;
    if (is_null(n))
        return 0;
    if (n->type != OBS_CF_SEQ)
        return obs_cf_error(err, n, "expected a list of strings");
    char **v = obs_calloc(n->n ? n->n : 1, sizeof(char *));
    if (v == NULL)
        return obs_err_set(err, OBS_ENOMEM, "out of memory");
    for (size_t i = 0; i < n->n; i++) {
        if (n->items[i]->type != OBS_CF_SCALAR) {
            for (size_t j = 0; j < i; j++)
                obs_free(v[j]);
            obs_free(v);
            return obs_cf_error(err, n->items[i], "expected a string");
        }
        v[i] = obs_strdup(n->items[i]->value);
    }
    *out = v;
    *nout = n->n;
    return 0;
}

static void free_strs(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        obs_free(v[i]);
    obs_free(v);
}

/* Matchers from `match`/`match_re` maps and a `matchers` list into m. */
static int bind_matchers(const struct obs_cf_node *match, const struct obs_cf_node *match_re,
                         const struct obs_cf_node *matchers, struct ald_matchers *m,
                         struct obs_err *err)
{
    struct obs_err e2;
    const struct obs_cf_node *maps[2] = {match, match_re};
    for (int k = 0; k < 2; k++) {
        const struct obs_cf_node *mp = maps[k];
        if (is_null(mp))
            continue;
        if (mp->type != OBS_CF_MAP)
            return obs_cf_error(err, mp, "expected a mapping of label names to values");
        for (size_t i = 0; i < mp->n; i++) {
            const struct obs_cf_node *it = mp->items[i];
            const char *v = it->type == OBS_CF_SCALAR ? it->value : "";
            if (it->type != OBS_CF_SCALAR && it->type != OBS_CF_NULL)
                return obs_cf_error(err, it, "expected a string");
            if (!obs_label_name_valid(it->key, strlen(it->key)))
                return obs_cf_error(err, it, "invalid label name \"%s\"", it->key);
            obs_err_clear(&e2);
            /* match_re values are anchored as "^(?:re)$" (Alertmanager keeps that text,
             * which shows in route keys); matching is anchored either way */
            char re[1024];
            if (k == 1) {
                snprintf(re, sizeof(re), "^(?:%s)$", v);
                v = re;
            }
            if (ald_matchers_add(m, k == 0 ? OBS_MATCH_EQ : OBS_MATCH_RE, it->key, v, &e2) != 0)
                return obs_cf_error(err, it, "%s", e2.msg);
        }
    }
    if (!is_null(matchers)) {
        if (matchers->type != OBS_CF_SEQ)
            return obs_cf_error(err, matchers, "expected a list of matchers");
        for (size_t i = 0; i < matchers->n; i++) {
            const struct obs_cf_node *it = matchers->items[i];
            if (it->type != OBS_CF_SCALAR)
                return obs_cf_error(err, it, "expected a matcher string");
            obs_err_clear(&e2);
            if (ald_matchers_parse(it->value, m, &e2) != 0)
                return obs_cf_error(err, it, "%s", e2.msg);
        }
    }
    return 0;
}

static void route_free(struct ald_route *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->nroutes; i++)
        route_free(r->routes[i]);
    obs_free(r->routes);
    obs_free(r->receiver);
    free_strs(r->group_by, r->ngroup_by);
    ald_matchers_deinit(&r->m);
    obs_free(r->key);
    obs_free(r);
}

static int dur_opt(const struct obs_cf_node *n, int64_t inherit, int64_t *out,
                   struct obs_err *err)
{
    if (is_null(n)) {
        *out = inherit;
        return 0;
    }
    return obs_cf_duration(n, out, err);
}

static int bind_route(const struct obs_cf_node *n, struct ald_route *parent,
                      struct ald_route **out, struct obs_err *err)
{
    struct raw_route raw = {0};
    int rc = obs_cf_bind(n, route_map, &raw, err);
    struct ald_route *r = obs_calloc(1, sizeof(*r));
    if (r == NULL) {
        obs_cf_unbind(route_map, &raw);
        return obs_err_set(err, OBS_ENOMEM, "out of memory");
    }
    r->parent = parent;
    if (rc != 0)
        goto fail;
    /* inherited options */
    if (raw.receiver && raw.receiver[0])
        r->receiver = obs_strdup(raw.receiver);
    else if (parent)
        r->receiver = obs_strdup(parent->receiver);
    if ((rc = dur_opt(raw.group_wait, parent ? parent->group_wait_ms : 30000,
                      &r->group_wait_ms, err)) != 0 ||
        (rc = dur_opt(raw.group_interval, parent ? parent->group_interval_ms : 300000,
                      &r->group_interval_ms, err)) != 0 ||
        (rc = dur_opt(raw.repeat_interval, parent ? parent->repeat_interval_ms : 14400000,
                      &r->repeat_interval_ms, err)) != 0)
        goto fail;
    if (!is_null(raw.group_interval) && r->group_interval_ms == 0) {
        rc = obs_cf_error(err, raw.group_interval, "group_interval cannot be zero");
        goto fail;
    }
    if (!is_null(raw.repeat_interval) && r->repeat_interval_ms == 0) {
        rc = obs_cf_error(err, raw.repeat_interval, "repeat_interval cannot be zero");
        goto fail;
    }
    if (!is_null(raw.group_by)) {
        if ((rc = str_list(raw.group_by, &r->group_by, &r->ngroup_by, err)) != 0)
            goto fail;
        for (size_t i = 0; i < r->ngroup_by; i++) {
            const char *g = r->group_by[i];
            if (strcmp(g, "...") == 0) {
                if (r->ngroup_by > 1) {
                    rc = obs_cf_error(err, raw.group_by,
                                      "cannot have wildcard group_by (`...`) and other labels "
                                      "at the same time");
                    goto fail;
                }
                r->group_by_all = 1;
                continue;
            }
            if (!obs_label_name_valid(g, strlen(g))) {
                rc = obs_cf_error(err, raw.group_by->items[i],
                                  "invalid label name \"%s\" in group_by list", g);
                goto fail;
            }
            for (size_t j = 0; j < i; j++)
                if (strcmp(r->group_by[j], g) == 0) {
                    rc = obs_cf_error(err, raw.group_by->items[i],
                                      "duplicated label \"%s\" in group_by", g);
                    goto fail;
                }
        }
    } else if (parent) {
        r->group_by_all = parent->group_by_all;
        if (parent->ngroup_by) {
            r->group_by = obs_calloc(parent->ngroup_by, sizeof(char *));
            if (r->group_by == NULL) {
                rc = obs_err_set(err, OBS_ENOMEM, "out of memory");
                goto fail;
            }
            for (size_t i = 0; i < parent->ngroup_by; i++)
                r->group_by[i] = obs_strdup(parent->group_by[i]);
            r->ngroup_by = parent->ngroup_by;
        }
    }
    if ((rc = bind_matchers(raw.match, raw.match_re, raw.matchers, &r->m, err)) != 0)
        goto fail;
    if (!is_null(raw.cont) && (rc = obs_cf_bool(raw.cont, &r->cont, err)) != 0)
        goto fail;
    if (parent == NULL) {
        if (r->receiver == NULL || !r->receiver[0]) {
            rc = obs_cf_error(err, n, "root route must specify a default receiver");
            goto fail;
        }
        if (r->m.n) {
            rc = obs_cf_error(err, n, "root route must not have any matchers");
            goto fail;
        }
        if (r->cont) {
            rc = obs_cf_error(err, raw.cont, "cannot have continue in root route");
            goto fail;
        }
    }
    /* Route.Key(): parent key + "/" + matchers (sorted as Alertmanager sorts them) */
    {
        struct obs_sbuf sb;
        obs_sbuf_init(&sb);
        if (parent) {
            obs_sbuf_puts(&sb, parent->key);
            obs_sbuf_putc(&sb, '/');
        }
        ald_matchers_render(&r->m, &sb);
        if (sb.oom) {
            obs_sbuf_deinit(&sb);
            rc = obs_err_set(err, OBS_ENOMEM, "out of memory");
            goto fail;
        }
        r->key = obs_sbuf_take(&sb, NULL);
    }
    if (!is_null(raw.routes)) {
        if (raw.routes->type != OBS_CF_SEQ) {
            rc = obs_cf_error(err, raw.routes, "expected a list of routes");
            goto fail;
        }
        r->routes = obs_calloc(raw.routes->n ? raw.routes->n : 1, sizeof(*r->routes));
        if (r->routes == NULL) {
            rc = obs_err_set(err, OBS_ENOMEM, "out of memory");
            goto fail;
        }
        for (size_t i = 0; i < raw.routes->n; i++) {
            if ((rc = bind_route(raw.routes->items[i], r, &r->routes[i], err)) != 0)
                goto fail;
            r->nroutes++;
        }
    }
    obs_cf_unbind(route_map, &raw);
    *out = r;
    return 0;
fail:
    obs_cf_unbind(route_map, &raw);
    route_free(r);
    return rc ? rc : OBS_EINVAL;
}

/* Every receiver named in the tree must exist. n is the route's YAML node. */
static int check_receivers(const struct ald_config *c, const struct ald_route *r,
                           const struct obs_cf_node *n, struct obs_err *err)
{
    if (ald_config_receiver(c, r->receiver) == NULL) {
        const struct obs_cf_node *rn = obs_cf_get(n, "receiver");
        return obs_cf_error(err, rn ? rn : n, "undefined receiver \"%s\" used in route",
                            r->receiver);
    }
    const struct obs_cf_node *kids = obs_cf_get(n, "routes");
    for (size_t i = 0; i < r->nroutes; i++) {
        int rc = check_receivers(c, r->routes[i], kids->items[i], err);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int bind_receivers(struct ald_config *c, const struct obs_cf_node *n,
                          struct obs_err *err)
{
    if (is_null(n))
        return 0;
    if (n->type != OBS_CF_SEQ)
        return obs_cf_error(err, n, "expected a list of receivers");
    c->receivers = obs_calloc(n->n ? n->n : 1, sizeof(*c->receivers));
    if (c->receivers == NULL)
        return obs_err_set(err, OBS_ENOMEM, "out of memory");
    for (size_t i = 0; i < n->n; i++) {
        const struct obs_cf_node *it = n->items[i];
        struct raw_receiver raw = {0};
        int rc = obs_cf_bind(it, receiver_map, &raw, err);
        if (rc != 0) {
            obs_cf_unbind(receiver_map, &raw);
            return rc;
        }
        struct ald_receiver *rv = &c->receivers[c->nreceivers];
        rv->name = raw.name ? obs_strdup(raw.name) : NULL;
        obs_cf_unbind(receiver_map, &raw);
        c->nreceivers++;
        if (rv->name == NULL || rv->name[0] == '\0')
            return obs_cf_error(err, it, "missing name in receiver");
        for (size_t j = 0; j + 1 < c->nreceivers; j++)
            if (strcmp(c->receivers[j].name, rv->name) == 0)
                return obs_cf_error(err, obs_cf_get(it, "name"),
                                    "notification config name \"%s\" is not unique",
                                    rv->name);
        for (size_t k = 0; k < it->n; k++) {
            const struct obs_cf_node *ic = it->items[k];
            if (strcmp(ic->key, "name") == 0 || strcmp(ic->key, "webhook_configs") == 0)
                continue;
            if (ic->type == OBS_CF_SEQ)
                rv->nunsupported += (int)ic->n;
            else if (ic->type != OBS_CF_NULL)
                return obs_cf_error(err, ic, "expected a list");
        }
        if (is_null(raw.webhook))
            continue;
        if (raw.webhook->type != OBS_CF_SEQ)
            return obs_cf_error(err, raw.webhook, "expected a list of webhook configs");
        rv->hooks = obs_calloc(raw.webhook->n ? raw.webhook->n : 1, sizeof(*rv->hooks));
        if (rv->hooks == NULL)
            return obs_err_set(err, OBS_ENOMEM, "out of memory");
        for (size_t k = 0; k < raw.webhook->n; k++) {
            const struct obs_cf_node *wn = raw.webhook->items[k];
            struct raw_webhook w = {0};
            rc = obs_cf_bind(wn, webhook_map, &w, err);
            if (rc == 0 && (w.url == NULL || w.url[0] == '\0') && is_null(w.url_file))
                rc = obs_cf_error(err, wn, "one of url or url_file must be configured");
            if (rc == 0 && w.url && w.url[0] && !is_null(w.url_file))
                rc = obs_cf_error(err, wn, "at most one of url & url_file must be configured");
            if (rc == 0 && w.url && w.url[0] && strncmp(w.url, "http://", 7) != 0 &&
                strncmp(w.url, "https://", 8) != 0)
                rc = obs_cf_error(err, obs_cf_get(wn, "url"), "unsupported scheme in url "
                                  "\"%s\" (http or https)", w.url);
            if (rc == 0 && w.max_alerts < 0)
                rc = obs_cf_error(err, obs_cf_get(wn, "max_alerts"), "must not be negative");
            char *url = NULL;
            if (rc == 0 && !is_null(w.url_file)) {
                const char *path;
                rc = obs_cf_str(w.url_file, &path, err);
                FILE *f = rc == 0 ? fopen(path, "r") : NULL;
                char line[2048] = "";
                if (rc == 0 && f == NULL)
                    rc = obs_cf_error(err, w.url_file, "cannot read url_file \"%s\"", path);
                if (f) {
                    if (fgets(line, sizeof(line), f) == NULL)
                        line[0] = '\0';
                    fclose(f);
                    line[strcspn(line, "\r\n")] = '\0';
                    url = obs_strdup(line);
                }
            } else if (rc == 0) {
                url = obs_strdup(w.url);
            }
            if (rc == 0 && url == NULL)
                rc = obs_err_set(err, OBS_ENOMEM, "out of memory");
            if (rc != 0) {
                obs_cf_unbind(webhook_map, &w);
                return rc;
            }
            rv->hooks[k].url = url;
            rv->hooks[k].send_resolved = w.send_resolved;
            rv->hooks[k].max_alerts = w.max_alerts;
            rv->hooks[k].timeout_ms = w.timeout_ms;
            rv->nhooks++;
            obs_cf_unbind(webhook_map, &w);
        }
    }
    return 0;
}

static int bind_inhibits(struct ald_config *c, const struct obs_cf_node *n, struct obs_err *err)
{
    if (is_null(n))
        return 0;
    if (n->type != OBS_CF_SEQ)
        return obs_cf_error(err, n, "expected a list of inhibit rules");
    c->inhibits = obs_calloc(n->n ? n->n : 1, sizeof(*c->inhibits));
    if (c->inhibits == NULL)
        return obs_err_set(err, OBS_ENOMEM, "out of memory");
    for (size_t i = 0; i < n->n; i++) {
        struct raw_inhibit raw = {0};
        int rc = obs_cf_bind(n->items[i], inhibit_map, &raw, err);
        if (rc != 0)
            return rc;
        struct ald_inhibit *ih = &c->inhibits[c->ninhibits++];
        if ((rc = bind_matchers(raw.sm, raw.smr, raw.smatchers, &ih->src, err)) != 0 ||
            (rc = bind_matchers(raw.tm, raw.tmr, raw.tmatchers, &ih->tgt, err)) != 0 ||
            (rc = str_list(raw.equal, &ih->equal, &ih->nequal, err)) != 0)
            return rc;
        for (size_t k = 0; k < ih->nequal; k++)
            if (!obs_label_name_valid(ih->equal[k], strlen(ih->equal[k])))
                return obs_cf_error(err, raw.equal->items[k], "invalid label name \"%s\"",
                                    ih->equal[k]);
    }
    return 0;
}

const struct ald_receiver *ald_config_receiver(const struct ald_config *c, const char *name)
{
    if (name == NULL)
        return NULL;
    for (size_t i = 0; i < c->nreceivers; i++)
        if (strcmp(c->receivers[i].name, name) == 0)
            return &c->receivers[i];
    return NULL;
}

void ald_config_free(struct ald_config *c)
{
    if (c == NULL)
        return;
    route_free(c->route);
    for (size_t i = 0; i < c->nreceivers; i++) {
        for (size_t k = 0; k < c->receivers[i].nhooks; k++)
            obs_free(c->receivers[i].hooks[k].url);
        obs_free(c->receivers[i].hooks);
        obs_free(c->receivers[i].name);
    }
    obs_free(c->receivers);
    for (size_t i = 0; i < c->ninhibits; i++) {
        ald_matchers_deinit(&c->inhibits[i].src);
        ald_matchers_deinit(&c->inhibits[i].tgt);
        free_strs(c->inhibits[i].equal, c->inhibits[i].nequal);
    }
    obs_free(c->inhibits);
    obs_free(c->storage_path);
    obs_free(c->external_url);
    obs_free(c);
}

struct ald_config *ald_config_from_tree(const struct obs_cf_node *root, struct obs_err *err)
{
    struct raw_top top = {0};
    struct ald_config *c = obs_calloc(1, sizeof(*c));
    if (c == NULL) {
        obs_err_set(err, OBS_ENOMEM, "out of memory");
        return NULL;
    }
    int rc = obs_cf_bind(root, top_map, &top, err);
    if (rc != 0)
        goto fail;
    struct raw_global g = {0};
    if ((rc = obs_cf_bind(top.global, global_map, &g, err)) != 0)
        goto fail;
    c->resolve_timeout_ms = g.resolve_timeout_ms;
    struct raw_storage st = {0};
    struct raw_web web = {0};
    struct raw_data data = {0};
    rc = obs_cf_bind(top.storage, storage_map, &st, err);
    if (rc == 0)
        rc = obs_cf_bind(top.web, web_map, &web, err);
    if (rc == 0)
        rc = obs_cf_bind(top.data, data_map, &data, err);
    c->storage_path = st.path;
    c->external_url = web.external_url;
    c->retention_ms = data.retention_ms;
    if (rc != 0)
        goto fail;
    if ((rc = bind_receivers(c, top.receivers, err)) != 0)
        goto fail;
    if (is_null(top.route)) {
        rc = obs_cf_error(err, root, "no route provided in config");
        goto fail;
    }
    if ((rc = bind_route(top.route, NULL, &c->route, err)) != 0)
        goto fail;
    if ((rc = check_receivers(c, c->route, top.route, err)) != 0)
        goto fail;
    if ((rc = bind_inhibits(c, top.inhibit, err)) != 0)
        goto fail;
    return c;
fail:
    ald_config_free(c);
    return NULL;
}

struct ald_config *ald_config_from_string(const char *yaml, const char *name,
                                          struct obs_err *err)
{
    struct obs_cf_node *root = obs_cf_load_string(yaml, strlen(yaml), name, 0, err);
    if (root == NULL)
        return NULL;
    struct ald_config *c = ald_config_from_tree(root, err);
    obs_cf_free(root);
    return c;
}

/* ---- route matching ------------------------------------------------------------------ */

static size_t match_rec(const struct ald_route *r, const struct obs_label *l, size_t n,
                        const struct ald_route **out, size_t max, size_t cnt)
{
    size_t before = cnt;
    for (size_t i = 0; i < r->nroutes; i++) {
        const struct ald_route *c = r->routes[i];
        if (!ald_matchers_match(&c->m, l, n))
            continue;
        size_t got = match_rec(c, l, n, out, max, cnt);
        cnt = got;
        if (!c->cont)
            break;
    }
    if (cnt == before && cnt < max)
        out[cnt++] = r; /* no child matched: this node handles it */
    return cnt;
}

size_t ald_route_match(const struct ald_route *r, const struct obs_label *l, size_t n,
                       const struct ald_route **out, size_t max)
{
    if (!ald_matchers_match(&r->m, l, n))
        return 0;
    return match_rec(r, l, n, out, max, 0);
}
