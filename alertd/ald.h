/*
 * ald.h -- alertd internal types and functions (Alertmanager-compatible alerting daemon).
 *
 * One process, one libevent loop that owns every object below: the config (route tree,
 * receivers, inhibition rules), the alert store, the silences, the dispatcher's aggregation
 * groups and the notification log. A single sender thread performs webhook POSTs with
 * obs_httpc_do and hands results back to the loop over an obs_chan; nothing else runs off
 * the loop. State that must survive a restart (alerts, silences, notification log) goes
 * through one WAL under --storage.path (state.c).
 *
 * Files: config.c (YAML -> ald_config), matchers.c (Alertmanager matcher syntax),
 * alerts.c (alert model, fingerprints, store), silences.c (silences, inhibition),
 * dispatch.c (groups, nflog, sender thread), api.c (HTTP API v2), state.c (persistence),
 * alertd.c (component glue, reload, metrics, config.original).
 */
#ifndef ALD_H
#define ALD_H

#include <stddef.h>
#include <stdint.h>

#include "core/obs_err.h"
#include "labels/obs_labels.h"

struct obs_cf_node;
struct obs_ctx;
struct event_base;
struct obs_sbuf;

/* ---------------------------------------------------------------- matchers (matchers.c) */

/* A list of label matchers that all have to match (AND). */
struct ald_matchers {
    struct obs_matcher *v;
    size_t n;
};

/* Parse an Alertmanager matcher expression: `a=b`, `a="b"`, `a=~"x|y"`, `{a="b", c!=d}`, or
 * several comma-separated. Appends to *m. Returns 0 or OBS_EINVAL with err set. */
int ald_matchers_parse(const char *s, struct ald_matchers *m, struct obs_err *err);
/* Append one matcher (regex values are anchored as Alertmanager does). */
int ald_matchers_add(struct ald_matchers *m, enum obs_match_type t, const char *name,
                     const char *value, struct obs_err *err);
void ald_matchers_deinit(struct ald_matchers *m);
/* All matchers satisfied by the label set (sorted or not)? Empty list matches everything. */
int ald_matchers_match(const struct ald_matchers *m, const struct obs_label *l, size_t n);
/* Render as `{a="b",c=~"d"}` (Alertmanager's Matchers.String()) into sb. */
void ald_matchers_render(const struct ald_matchers *m, struct obs_sbuf *sb);
/* Operator text: "=", "!=", "=~", "!~". */
const char *ald_match_op(enum obs_match_type t);

/* ---------------------------------------------------------------- config (config.c) */

struct ald_route {
    char *receiver;
    char **group_by;
    size_t ngroup_by;
    int group_by_all;            /* group_by: ['...'] */
    int64_t group_wait_ms;
    int64_t group_interval_ms;
    int64_t repeat_interval_ms;
    struct ald_matchers m;
    int cont;                    /* continue: true */
    struct ald_route *parent;
    struct ald_route **routes;
    size_t nroutes;
    char *key;                   /* "{}/{service=\"db\"}" as Alertmanager's Route.Key() */
};

struct ald_webhook {
    char *url;
    int send_resolved;
    int64_t max_alerts;          /* 0 = all */
    int64_t timeout_ms;          /* 0 = 10s */
};

struct ald_receiver {
    char *name;
    struct ald_webhook *hooks;
    size_t nhooks;
    int nunsupported;            /* integrations parsed but not implemented */
};

struct ald_inhibit {
    struct ald_matchers src;
    struct ald_matchers tgt;
    char **equal;
    size_t nequal;
};

struct ald_config {
    int64_t resolve_timeout_ms;
    struct ald_route *route;
    struct ald_receiver *receivers;
    size_t nreceivers;
    struct ald_inhibit *inhibits;
    size_t ninhibits;
    /* alertd's own settings (from flags / non-Alertmanager keys) */
    char *storage_path;          /* --storage.path, default ./data/alertd */
    char *external_url;          /* --web.external-url, default http://<host>:<port> */
    int64_t retention_ms;        /* --data.retention, default 120h */
};

/* Build the config from the whole YAML tree (Alertmanager's format plus alertd's `server`,
 * `storage`, `web`, `data` keys that flags set). Unknown keys fail with file:line:col.
 * Returns a new config (ald_config_free) or NULL with err set. */
struct ald_config *ald_config_from_tree(const struct obs_cf_node *root, struct obs_err *err);
/* Same from YAML text (tests, -check). */
struct ald_config *ald_config_from_string(const char *yaml, const char *name,
                                          struct obs_err *err);
void ald_config_free(struct ald_config *c);
const struct ald_receiver *ald_config_receiver(const struct ald_config *c, const char *name);

/* Routes an alert's labels go to, in order (Alertmanager's Route.Match: deepest matching
 * child, continue semantics). Fills out (up to max) and returns the count. */
size_t ald_route_match(const struct ald_route *r, const struct obs_label *l, size_t n,
                       const struct ald_route **out, size_t max);

/* ---------------------------------------------------------------- alerts (alerts.c) */

struct ald_alert {
    uint64_t fp;
    struct obs_label *labels;    /* sorted by name; strings owned */
    size_t nlabels;
    struct obs_label *annots;    /* sorted by name; strings owned */
    size_t nannots;
    char *generator_url;         /* owned, may be NULL */
    int64_t starts_ms;
    int64_t ends_ms;             /* 0 = unset */
    int64_t updated_ms;
    int timeout;                 /* endsAt was set from resolve_timeout */
};

/* Alertmanager/Prometheus model fingerprint: FNV-1a 64 over sorted name\xff value\xff. */
uint64_t ald_fingerprint(const struct obs_label *l, size_t n);
/* "%016x" */
void ald_fp_str(uint64_t fp, char out[17]);
struct ald_alert *ald_alert_clone(const struct ald_alert *a);
void ald_alert_free(struct ald_alert *a);
/* Resolved at now? (endsAt set and not after now) */
int ald_alert_resolved(const struct ald_alert *a, int64_t now_ms);
/* Alertmanager's Alert.Merge: returns a new alert combining old a and newer b. */
struct ald_alert *ald_alert_merge(const struct ald_alert *a, const struct ald_alert *b);

/* A uint64-keyed hash map (open addressing) used for alerts, groups, nflog. */
struct ald_map {
    uint64_t *keys;
    void **vals;
    size_t cap, n;
};
void *ald_map_get(const struct ald_map *m, uint64_t k);
int ald_map_put(struct ald_map *m, uint64_t k, void *v);  /* replaces */
void *ald_map_del(struct ald_map *m, uint64_t k);         /* returns old value */
void ald_map_deinit(struct ald_map *m);
/* Iterate: for (size_t i = 0; i < m->cap; i++) if (ald_map_slot(m, i)) ... */
static inline int ald_map_slot(const struct ald_map *m, size_t i)
{
    return m->vals != NULL && m->vals[i] != NULL && m->vals[i] != (void *)m;
}
/* 64-bit FNV-1a of a string (keys for string-keyed maps). */
uint64_t ald_hash_str(const char *s);

/* JSON / time helpers (alerts.c). Formats: API = strfmt.DateTime "...T..:..:...mmmZ";
 * Go = time.Time JSON (RFC3339Nano, trailing zeros trimmed, zero time as year 1). */
void ald_time_api(int64_t ms, char out[40]);
void ald_time_go(int64_t ms, char out[40]);
/* Parse RFC3339; "" or Go's zero time yields *ms = 0. Returns 0 or OBS_EINVAL. */
int ald_time_parse(const char *s, int64_t *ms);

/* ---------------------------------------------------------------- silences (silences.c) */

struct ald_silence {
    char id[37];
    struct ald_matchers m;
    int64_t starts_ms, ends_ms, updated_ms;
    char *created_by;
    char *comment;
};

enum ald_sil_state { ALD_SIL_PENDING, ALD_SIL_ACTIVE, ALD_SIL_EXPIRED };
enum ald_sil_state ald_silence_state(const struct ald_silence *s, int64_t now_ms);
const char *ald_silence_state_str(enum ald_sil_state st);
void ald_silence_free(struct ald_silence *s);
/* Random v4 UUID into out (37 bytes). */
void ald_uuid(char out[37]);

/* ---------------------------------------------------------------- daemon state */

struct ald_nflog_entry {
    char *key;                   /* "<receiver>/<hook idx>/<groupKey>" */
    uint64_t *firing;
    size_t nfiring;
    uint64_t *resolved;
    size_t nresolved;
    int64_t ts_ms;
};

struct ald_group;
struct ald_sender;
struct obs_wal;
struct obs_chan;
struct event;

struct ald {
    struct event_base *base;
    struct ald_config *cfg;
    char *config_original;       /* raw YAML text for /api/v2/status */
    int64_t start_ms;
    struct ald_map alerts;       /* fp -> struct ald_alert * */
    struct ald_silence **sils;
    size_t nsils, capsils;
    struct ald_map groups;       /* hash(groupKey) -> struct ald_group * */
    struct ald_map nflog;        /* hash(key) -> struct ald_nflog_entry * */
    struct ald_sender *sender;
    struct obs_wal *wal;
    uint64_t wal_records;        /* since last checkpoint */
    struct event *gc_timer;
    int stopping;
    int replaying;               /* loading state: no WAL writes, no dispatch */
    /* self-metrics (Alertmanager's names); NULL-safe: unset in unit tests */
    struct obs_mchild *m_recv_firing, *m_recv_resolved, *m_invalid;
    struct obs_mchild *m_notif, *m_notif_failed, *m_notif_requests;
    struct obs_mchild *m_alerts_active, *m_alerts_suppressed;
    struct obs_mchild *m_sil_active, *m_sil_pending, *m_sil_expired;
    struct obs_mchild *m_nflog_entries;
    struct event *stats_timer;
    const char *cfg_file;        /* for reload */
    struct event *sighup;
};

/* alertd.c: reload the config file (POST /-/reload, SIGHUP). Groups are rebuilt from the
 * alert store; the nflog prevents re-sends. Returns 0 or an error code with err set. */
int ald_reload(struct ald *d, struct obs_err *err);
/* NULL-safe metric helper. */
void ald_metric_add(struct obs_mchild *c, double v);

/* alertd.c / state.c */
struct ald *ald_new(struct event_base *base, struct ald_config *cfg_take, const char *original);
void ald_free(struct ald *d);
/* Open the WAL under cfg->storage_path and replay it. */
int ald_state_open(struct ald *d, struct obs_err *err);
void ald_state_close(struct ald *d);
/* Append records (no sync); ald_state_sync fsyncs. Return 0 or OBS_EIO. */
int ald_state_log_alert(struct ald *d, const struct ald_alert *a);
int ald_state_log_silence(struct ald *d, const struct ald_silence *s);
int ald_state_log_nflog(struct ald *d, const struct ald_nflog_entry *e);
int ald_state_sync(struct ald *d);
/* Periodic maintenance: GC resolved alerts/expired silences/old nflog, checkpoint. */
void ald_state_gc(struct ald *d);

/* Alerts store (alerts.c): insert or merge a validated alert (takes ownership). Feeds the
 * dispatcher. Returns the stored alert (borrowed). */
struct ald_alert *ald_alerts_put_take(struct ald *d, struct ald_alert *a);

/* Silences (silences.c) */
struct ald_silence *ald_silence_find(struct ald *d, const char *id);
int ald_silence_add_take(struct ald *d, struct ald_silence *s);
/* IDs of active silences muting labels; returns count (ids borrowed). */
size_t ald_silenced_by(struct ald *d, const struct obs_label *l, size_t n, const char **ids,
                       size_t max);
/* Fingerprints of firing alerts inhibiting labels (with fp self); returns count. */
size_t ald_inhibited_by(struct ald *d, uint64_t self, const struct obs_label *l, size_t n,
                        uint64_t *fps, size_t max);

/* Dispatcher (dispatch.c) */
int ald_dispatch_start(struct ald *d, struct obs_err *err);
void ald_dispatch_stop(struct ald *d);
/* Feed a stored alert into the route tree / groups. */
void ald_dispatch_alert(struct ald *d, const struct ald_alert *a);
/* Webhook payload for alerts (Alertmanager's webhook JSON, version 4) into sb. */
void ald_webhook_payload(struct obs_sbuf *sb, const char *receiver, const char *group_key,
                         const struct obs_label *glabels, size_t nglabels,
                         struct ald_alert *const *alerts, size_t n, size_t truncated,
                         const char *external_url, int64_t now_ms);
/* Group labels and key for labels on route r; returns 0 or OBS_ENOMEM. *key obs_malloc'd,
 * *gl an obs_malloc'd array borrowing strings from l. */
int ald_group_key(const struct ald_route *r, const struct obs_label *l, size_t n, char **key,
                  struct obs_label **gl, size_t *ngl);
/* Iterate groups for the API: fn(route, receiver, group labels, alerts, n, arg). */
typedef void (*ald_group_fn)(const struct ald_route *r, const struct obs_label *gl, size_t ngl,
                             struct ald_alert *const *alerts, size_t n, void *arg);
void ald_groups_each(struct ald *d, ald_group_fn fn, void *arg);
/* nflog lookup by key (borrowed) and update (copies). */
const struct ald_nflog_entry *ald_nflog_get(struct ald *d, const char *key);
int ald_nflog_set(struct ald *d, const char *key, const uint64_t *f, size_t nf,
                  const uint64_t *r, size_t nr, int64_t ts_ms, int persist);

/* HTTP API (api.c) */
struct obs_http_server;
int ald_api_register(struct ald *d, struct obs_http_server *http);

#endif
