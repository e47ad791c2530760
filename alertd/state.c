/*
 * state.c -- persistence of alerts, silences and the notification log.
 *
 * One WAL (common/wal) under <storage.path>/wal. Each record is a small JSON object with a
 * kind field "k": "a" (an alert as stored after merging), "s" (a silence, created, updated
 * or expired) or "n" (a notification-log entry). Replay applies records in order, later ones
 * replacing earlier ones with the same identity, so the WAL needs no delete records: the
 * periodic GC drops old state from memory and then writes a checkpoint (the whole live state
 * into a fresh segment), after which obs_wal deletes the older segments.
 *
 * The API replies 2xx only after ald_state_sync() returned 0 (records fsynced). JSON keeps
 * the files readable with `strings`; volumes in alerting are small. Loop thread only.
 */
#include "alertd/ald.h"

#include <event2/event.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/obs_log.h"
#include "core/obs_mem.h"
#include "core/obs_time.h"
#include "wal/obs_wal.h"

#define COMP "state"
#define GC_INTERVAL_MS 60000
#define CHECKPOINT_RECORDS 5000
/* resolved alerts stay in the store this long (they are hidden from the API already) */
#define RESOLVED_KEEP_MS (30 * 60 * 1000LL)

static json_t *kv_json(const struct obs_label *l, size_t n)
{
    json_t *o = json_object();
    for (size_t i = 0; o && i < n; i++)
        json_object_set_new(o, l[i].name, json_string(l[i].value));
    return o;
}

static int append_json(struct ald *d, json_t *rec)
{
    if (d->wal == NULL || rec == NULL) {
        json_decref(rec);
        return d->wal == NULL ? 0 : OBS_ENOMEM;
    }
    char *s = json_dumps(rec, JSON_COMPACT);
    json_decref(rec);
    if (s == NULL)
        return OBS_ENOMEM;
    int rc = obs_wal_append(d->wal, s, strlen(s));
    free(s);
    d->wal_records++;
    return rc;
}

static char *hex(uint64_t v, char out[17])
{
    ald_fp_str(v, out);
    return out;
}

int ald_state_log_alert(struct ald *d, const struct ald_alert *a)
{
    json_t *o = json_object();
    if (o == NULL)
        return OBS_ENOMEM;
    json_object_set_new(o, "k", json_string("a"));
    json_object_set_new(o, "l", kv_json(a->labels, a->nlabels));
    json_object_set_new(o, "an", kv_json(a->annots, a->nannots));
    json_object_set_new(o, "s", json_integer(a->starts_ms));
    json_object_set_new(o, "e", json_integer(a->ends_ms));
    json_object_set_new(o, "u", json_integer(a->updated_ms));
    json_object_set_new(o, "t", json_integer(a->timeout));
    if (a->generator_url)
        json_object_set_new(o, "g", json_string(a->generator_url));
    return append_json(d, o);
}

int ald_state_log_silence(struct ald *d, const struct ald_silence *s)
{
    json_t *o = json_object();
    json_t *m = json_array();
    if (o == NULL || m == NULL) {
        json_decref(o);
        json_decref(m);
        return OBS_ENOMEM;
    }
    json_object_set_new(o, "k", json_string("s"));
    json_object_set_new(o, "id", json_string(s->id));
    for (size_t i = 0; i < s->m.n; i++) {
        json_t *x = json_object();
        json_object_set_new(x, "n", json_string(s->m.v[i].name));
        json_object_set_new(x, "v", json_string(s->m.v[i].value));
        json_object_set_new(x, "t", json_integer(s->m.v[i].type));
        json_array_append_new(m, x);
    }
    json_object_set_new(o, "m", m);
    json_object_set_new(o, "s", json_integer(s->starts_ms));
    json_object_set_new(o, "e", json_integer(s->ends_ms));
    json_object_set_new(o, "u", json_integer(s->updated_ms));
    json_object_set_new(o, "c", json_string(s->created_by ? s->created_by : ""));
    json_object_set_new(o, "cm", json_string(s->comment ? s->comment : ""));
    return append_json(d, o);
}

int ald_state_log_nflog(struct ald *d, const struct ald_nflog_entry *e)
{
    json_t *o = json_object();
    json_t *f = json_array(), *r = json_array();
    char h[17];
    if (o == NULL || f == NULL || r == NULL) {
        json_decref(o);
        json_decref(f);
        json_decref(r);
        return OBS_ENOMEM;
    }
    for (size_t i = 0; i < e->nfiring; i++)
        json_array_append_new(f, json_string(hex(e->firing[i], h)));
    for (size_t i = 0; i < e->nresolved; i++)
        json_array_append_new(r, json_string(hex(e->resolved[i], h)));
    json_object_set_new(o, "k", json_string("n"));
    json_object_set_new(o, "key", json_string(e->key));
    json_object_set_new(o, "f", f);
    json_object_set_new(o, "r", r);
    json_object_set_new(o, "ts", json_integer(e->ts_ms));
    return append_json(d, o);
}

int ald_state_sync(struct ald *d)
{
    if (d->wal == NULL)
        return 0;
    int rc = obs_wal_sync(d->wal);
    if (rc != 0)
        obs_clog_error(COMP, "WAL sync failed\terr=%s", obs_rc_str(rc));
    return rc;
}

/* ---- replay -------------------------------------------------------------------------- */

static int kv_from_json(json_t *o, struct obs_label **out, size_t *n)
{
    size_t cnt = json_is_object(o) ? json_object_size(o) : 0;
    struct obs_label *v = obs_calloc(cnt ? cnt : 1, sizeof(*v));
    if (v == NULL)
        return OBS_ENOMEM;
    const char *k;
    json_t *val;
    size_t i = 0;
    if (cnt) {
        json_object_foreach(o, k, val) {
            v[i].name = obs_strdup(k);
            v[i].value = obs_strdup(json_is_string(val) ? json_string_value(val) : "");
            i++;
        }
    }
    obs_labels_sort(v, i);
    *out = v;
    *n = i;
    return 0;
}

static int replay_rec(const uint8_t *rec, size_t len, void *arg)
{
    struct ald *d = arg;
    json_error_t jerr;
    json_t *o = json_loadb((const char *)rec, len, 0, &jerr);
    if (o == NULL) {
        obs_clog_warn(COMP, "skipping unreadable WAL record\terr=\"%s\"", jerr.text);
        return 0;
    }
    const char *k = json_string_value(json_object_get(o, "k"));
    if (k && strcmp(k, "a") == 0) {
        struct ald_alert *a = obs_calloc(1, sizeof(*a));
        if (a && kv_from_json(json_object_get(o, "l"), &a->labels, &a->nlabels) == 0 &&
            kv_from_json(json_object_get(o, "an"), &a->annots, &a->nannots) == 0) {
            a->starts_ms = json_integer_value(json_object_get(o, "s"));
            a->ends_ms = json_integer_value(json_object_get(o, "e"));
            a->updated_ms = json_integer_value(json_object_get(o, "u"));
            a->timeout = (int)json_integer_value(json_object_get(o, "t"));
            const char *g = json_string_value(json_object_get(o, "g"));
            a->generator_url = g ? obs_strdup(g) : NULL;
            a->fp = ald_fingerprint(a->labels, a->nlabels);
            struct ald_alert *old = ald_map_get(&d->alerts, a->fp);
            if (ald_map_put(&d->alerts, a->fp, a) == 0)
                ald_alert_free(old);
            else
                ald_alert_free(a);
        } else {
            ald_alert_free(a);
        }
    } else if (k && strcmp(k, "s") == 0) {
        struct ald_silence *s = obs_calloc(1, sizeof(*s));
        const char *id = json_string_value(json_object_get(o, "id"));
        json_t *m = json_object_get(o, "m");
        int ok = s != NULL && id != NULL && json_is_array(m);
        if (ok) {
            snprintf(s->id, sizeof(s->id), "%s", id);
            size_t i;
            json_t *x;
            json_array_foreach(m, i, x) {
                const char *n = json_string_value(json_object_get(x, "n"));
                const char *v = json_string_value(json_object_get(x, "v"));
                int t = (int)json_integer_value(json_object_get(x, "t"));
                if (n == NULL || v == NULL ||
                    ald_matchers_add(&s->m, (enum obs_match_type)t, n, v, NULL) != 0)
                    ok = 0;
            }
            s->starts_ms = json_integer_value(json_object_get(o, "s"));
            s->ends_ms = json_integer_value(json_object_get(o, "e"));
            s->updated_ms = json_integer_value(json_object_get(o, "u"));
            const char *c = json_string_value(json_object_get(o, "c"));
            const char *cm = json_string_value(json_object_get(o, "cm"));
            s->created_by = obs_strdup(c ? c : "");
            s->comment = obs_strdup(cm ? cm : "");
        }
        if (!ok || ald_silence_add_take(d, s) != 0)
            ald_silence_free(s);
    } else if (k && strcmp(k, "n") == 0) {
        const char *key = json_string_value(json_object_get(o, "key"));
        json_t *f = json_object_get(o, "f"), *r = json_object_get(o, "r");
        size_t nf = json_array_size(f), nr = json_array_size(r);
        uint64_t *fv = obs_calloc(nf + 1, sizeof(uint64_t));
        uint64_t *rv = obs_calloc(nr + 1, sizeof(uint64_t));
        if (key && fv && rv) {
            for (size_t i = 0; i < nf; i++)
                fv[i] = strtoull(json_string_value(json_array_get(f, i)) ?: "0", NULL, 16);
            for (size_t i = 0; i < nr; i++)
                rv[i] = strtoull(json_string_value(json_array_get(r, i)) ?: "0", NULL, 16);
            ald_nflog_set(d, key, fv, nf, rv, nr, json_integer_value(json_object_get(o, "ts")),
                          0);
        }
        obs_free(fv);
        obs_free(rv);
    }
    json_decref(o);
    return 0;
}

static void gc_cb(evutil_socket_t fd, short what, void *arg)
{
    ald_state_gc(arg);
}

int ald_state_open(struct ald *d, struct obs_err *err)
{
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s/wal", d->cfg->storage_path);
    struct obs_wal_opts o = {.dir = dir, .segment_bytes = 16u << 20};
    d->wal = obs_wal_open(&o, err);
    if (d->wal == NULL)
        return err && err->code ? err->code : OBS_EIO;
    d->replaying = 1;
    int rc = obs_wal_replay(d->wal, replay_rec, d, err);
    d->replaying = 0;
    if (rc != 0 && rc != OBS_ECORRUPT)
        return rc;
    if (rc == OBS_ECORRUPT)
        obs_clog_warn(COMP, "WAL corrupt, kept records before the damage\terr=\"%s\"",
                      err ? err->msg : "");
    size_t na = 0;
    for (size_t i = 0; i < d->alerts.cap; i++)
        na += ald_map_slot(&d->alerts, i);
    obs_clog_info(COMP, "state loaded\tdir=%s alerts=%zu silences=%zu", dir, na, d->nsils);
    d->gc_timer = event_new(d->base, -1, EV_PERSIST, gc_cb, d);
    if (d->gc_timer) {
        struct timeval tv = {GC_INTERVAL_MS / 1000, 0};
        evtimer_add(d->gc_timer, &tv);
    }
    return 0;
}

static void checkpoint(struct ald *d)
{
    if (d->wal == NULL || obs_wal_checkpoint_begin(d->wal) != 0)
        return;
    uint64_t before = d->wal_records;
    for (size_t i = 0; i < d->alerts.cap; i++)
        if (ald_map_slot(&d->alerts, i))
            ald_state_log_alert(d, d->alerts.vals[i]);
    for (size_t i = 0; i < d->nsils; i++)
        ald_state_log_silence(d, d->sils[i]);
    for (size_t i = 0; i < d->nflog.cap; i++)
        if (ald_map_slot(&d->nflog, i))
            ald_state_log_nflog(d, d->nflog.vals[i]);
    if (obs_wal_checkpoint_end(d->wal) != 0)
        obs_clog_error(COMP, "WAL checkpoint failed");
    obs_clog_debug(COMP, "checkpoint\trecords=%llu", (unsigned long long)(d->wal_records - before));
    d->wal_records = 0;
}

void ald_state_gc(struct ald *d)
{
    int64_t now = obs_now_ms();
    size_t dropped = 0;
    for (size_t i = 0; i < d->alerts.cap; i++) {
        if (!ald_map_slot(&d->alerts, i))
            continue;
        struct ald_alert *a = d->alerts.vals[i];
        if (ald_alert_resolved(a, now) && a->ends_ms + RESOLVED_KEEP_MS < now) {
            ald_map_del(&d->alerts, a->fp);
            ald_alert_free(a);
            dropped++;
        }
    }
    for (size_t i = 0; i < d->nsils;) {
        struct ald_silence *s = d->sils[i];
        if (s->ends_ms + d->cfg->retention_ms < now) {
            ald_silence_free(s);
            d->sils[i] = d->sils[--d->nsils];
            dropped++;
            continue;
        }
        i++;
    }
    for (size_t i = 0; i < d->nflog.cap; i++) {
        if (!ald_map_slot(&d->nflog, i))
            continue;
        struct ald_nflog_entry *e = d->nflog.vals[i];
        if (e->ts_ms + d->cfg->retention_ms < now) {
            ald_map_del(&d->nflog, ald_hash_str(e->key));
            obs_free(e->key);
            obs_free(e->firing);
            obs_free(e->resolved);
            obs_free(e);
            dropped++;
        }
    }
    if (dropped > 0 || d->wal_records > CHECKPOINT_RECORDS)
        checkpoint(d);
}

void ald_state_close(struct ald *d)
{
    if (d->gc_timer) {
        event_free(d->gc_timer);
        d->gc_timer = NULL;
    }
    if (d->wal) {
        obs_wal_close(d->wal);
        d->wal = NULL;
    }
}
