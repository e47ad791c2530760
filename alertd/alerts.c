/*
 * alerts.c -- the alert model: fingerprints, merge rules, the in-memory store, time formats
 * and a small uint64-keyed hash map.
 *
 * Fingerprints are the Prometheus model's LabelSet.Fingerprint(): FNV-1a 64 over the label
 * pairs sorted by name, each name and value followed by the 0xff separator byte. Using the
 * same function as Alertmanager means a given label set has the same 16-hex-digit
 * fingerprint in alertd and in Alertmanager (checked by the integration test).
 *
 * Merging follows Alertmanager's types.Alert.Merge: when a re-sent alert overlaps the stored
 * one, the earliest startsAt wins, and an explicit (non-timeout) later endsAt is kept.
 * Everything here runs on the loop thread.
 */
#include "alertd/ald.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/obs_mem.h"
#include "core/obs_time.h"

#define FNV_OFF 14695981039346656037ULL
#define FNV_PRIME 1099511628211ULL

static uint64_t fnv_add(uint64_t h, const char *s)
{
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= FNV_PRIME;
    }
    return h;
}

static uint64_t fnv_byte(uint64_t h, unsigned char b)
{
    h ^= b;
    h *= FNV_PRIME;
    return h;
}

uint64_t ald_hash_str(const char *s)
{
    return fnv_add(FNV_OFF, s);
}

static int label_cmp(const void *a, const void *b)
{
    return strcmp(((const struct obs_label *)a)->name, ((const struct obs_label *)b)->name);
}

uint64_t ald_fingerprint(const struct obs_label *l, size_t n)
{
    /* input is normally sorted already; sort a copy of the index when it is not */
    const struct obs_label *v = l;
    struct obs_label small[32];
    struct obs_label *tmp = NULL;
    int sorted = 1;
    for (size_t i = 1; i < n; i++)
        if (strcmp(l[i - 1].name, l[i].name) > 0)
            sorted = 0;
    if (!sorted) {
        tmp = n <= 32 ? small : obs_malloc(n * sizeof(*tmp));
        if (tmp != NULL) {
            memcpy(tmp, l, n * sizeof(*tmp));
            qsort(tmp, n, sizeof(*tmp), label_cmp);
            v = tmp;
        }
    }
    uint64_t h = FNV_OFF;
    for (size_t i = 0; i < n; i++) {
        h = fnv_add(h, v[i].name);
        h = fnv_byte(h, 0xff);
        h = fnv_add(h, v[i].value);
        h = fnv_byte(h, 0xff);
    }
    if (tmp != NULL && tmp != small)
        obs_free(tmp);
    return h;
}

void ald_fp_str(uint64_t fp, char out[17])
{
    snprintf(out, 17, "%016llx", (unsigned long long)fp);
}

/* ---- alerts -------------------------------------------------------------------------- */

static struct obs_label *labels_dup(const struct obs_label *l, size_t n)
{
    struct obs_label *v = obs_calloc(n ? n : 1, sizeof(*v));
    if (v == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        v[i].name = obs_strdup(l[i].name);
        v[i].value = obs_strdup(l[i].value);
        if (v[i].name == NULL || v[i].value == NULL) {
            for (size_t j = 0; j <= i; j++) {
                obs_free((char *)v[j].name);
                obs_free((char *)v[j].value);
            }
            obs_free(v);
            return NULL;
        }
    }
    return v;
}

static void labels_free(struct obs_label *l, size_t n)
{
    for (size_t i = 0; l && i < n; i++) {
        obs_free((char *)l[i].name);
        obs_free((char *)l[i].value);
    }
    obs_free(l);
}

void ald_alert_free(struct ald_alert *a)
{
    if (a == NULL)
        return;
    labels_free(a->labels, a->nlabels);
    labels_free(a->annots, a->nannots);
    obs_free(a->generator_url);
    obs_free(a);
}

struct ald_alert *ald_alert_clone(const struct ald_alert *a)
{
    struct ald_alert *c = obs_calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    *c = *a;
    c->labels = labels_dup(a->labels, a->nlabels);
    c->annots = labels_dup(a->annots, a->nannots);
    c->generator_url = a->generator_url ? obs_strdup(a->generator_url) : NULL;
    if (c->labels == NULL || c->annots == NULL || (a->generator_url && !c->generator_url)) {
        labels_free(c->labels, c->nlabels);
        labels_free(c->annots, c->nannots);
        obs_free(c->generator_url);
        obs_free(c);
        return NULL;
    }
    return c;
}

int ald_alert_resolved(const struct ald_alert *a, int64_t now_ms)
{
    return a->ends_ms != 0 && a->ends_ms <= now_ms;
}

struct ald_alert *ald_alert_merge(const struct ald_alert *a, const struct ald_alert *b)
{
    /* let b be the younger alert */
    if (b->updated_ms < a->updated_ms) {
        const struct ald_alert *t = a;
        a = b;
        b = t;
    }
    struct ald_alert *res = ald_alert_clone(b);
    if (res == NULL)
        return NULL;
    int64_t now = obs_now_ms();
    if (a->starts_ms < b->starts_ms)
        res->starts_ms = a->starts_ms;
    if (ald_alert_resolved(b, now)) {
        if (ald_alert_resolved(a, now) && a->ends_ms > b->ends_ms)
            res->ends_ms = a->ends_ms;
    } else {
        if (a->ends_ms > b->ends_ms && !a->timeout) {
            res->ends_ms = a->ends_ms;
            res->timeout = 0;
        }
    }
    return res;
}

struct ald_alert *ald_alerts_put_take(struct ald *d, struct ald_alert *a)
{
    struct ald_alert *old = ald_map_get(&d->alerts, a->fp);
    if (old != NULL) {
        /* merge when the intervals overlap, as Alertmanager's store does */
        int overlap = (a->ends_ms > old->starts_ms && a->ends_ms < old->ends_ms) ||
                      (a->starts_ms > old->starts_ms && a->starts_ms < old->ends_ms) ||
                      (a->starts_ms <= old->starts_ms && a->ends_ms >= old->ends_ms);
        if (overlap) {
            struct ald_alert *m = ald_alert_merge(old, a);
            if (m != NULL) {
                ald_alert_free(a);
                a = m;
            }
        }
    }
    if (ald_map_put(&d->alerts, a->fp, a) != 0) {
        ald_alert_free(a);
        return NULL;
    }
    if (old != NULL)
        ald_alert_free(old);
    if (!d->replaying) {
        ald_state_log_alert(d, a);
    }
    ald_dispatch_alert(d, a);
    return a;
}

/* ---- time formats -------------------------------------------------------------------- */

static void fmt_base(int64_t ms, char *out, size_t cap, struct tm *tm)
{
    time_t s = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
    gmtime_r(&s, tm);
    strftime(out, cap, "%Y-%m-%dT%H:%M:%S", tm);
}

void ald_time_api(int64_t ms, char out[40])
{
    if (ms == 0) {
        snprintf(out, 40, "0001-01-01T00:00:00.000Z");
        return;
    }
    struct tm tm;
    fmt_base(ms, out, 40, &tm);
    size_t l = strlen(out);
    snprintf(out + l, 40 - l, ".%03dZ", (int)(((ms % 1000) + 1000) % 1000));
}

void ald_time_go(int64_t ms, char out[40])
{
    if (ms == 0) {
        snprintf(out, 40, "0001-01-01T00:00:00Z");
        return;
    }
    struct tm tm;
    fmt_base(ms, out, 40, &tm);
    size_t l = strlen(out);
    int frac = (int)(((ms % 1000) + 1000) % 1000);
    if (frac) {
        char f[8];
        snprintf(f, sizeof(f), "%03d", frac);
        int fl = 3;
        while (fl > 0 && f[fl - 1] == '0')
            f[--fl] = '\0';
        snprintf(out + l, 40 - l, ".%sZ", f);
    } else {
        snprintf(out + l, 40 - l, "Z");
    }
}

int ald_time_parse(const char *s, int64_t *ms)
{
    if (s == NULL || *s == '\0' || strncmp(s, "0001-01-01T00:00:00", 19) == 0) {
        *ms = 0;
        return 0;
    }
    /* only RFC3339 is valid here (the API's date-time), not float seconds */
    if (strlen(s) < 20 || s[4] != '-' || s[10] != 'T')
        return OBS_EINVAL;
    return obs_time_parse_ms(s, ms);
}

/* ---- uint64 map ---------------------------------------------------------------------- */

/* Deleted slots hold the map pointer itself as a tombstone. */
#define TOMB(m) ((void *)(m))

static uint64_t mix(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    return k;
}

void *ald_map_get(const struct ald_map *m, uint64_t k)
{
    if (m->cap == 0)
        return NULL;
    size_t mask = m->cap - 1;
    for (size_t i = mix(k) & mask, probes = 0; probes < m->cap; i = (i + 1) & mask, probes++) {
        if (m->vals[i] == NULL)
            return NULL;
        if (m->vals[i] != TOMB(m) && m->keys[i] == k)
            return m->vals[i];
    }
    return NULL;
}

static int map_grow(struct ald_map *m)
{
    size_t live = 0;
    for (size_t i = 0; i < m->cap; i++)
        live += ald_map_slot(m, i) ? 1 : 0;
    size_t ncap = m->cap ? m->cap : 16;
    while ((live + 1) * 4 > ncap)
        ncap *= 2;
    struct ald_map nm = {0};
    nm.keys = obs_calloc(ncap, sizeof(uint64_t));
    nm.vals = obs_calloc(ncap, sizeof(void *));
    if (nm.keys == NULL || nm.vals == NULL) {
        obs_free(nm.keys);
        obs_free(nm.vals);
        return OBS_ENOMEM;
    }
    nm.cap = ncap;
    for (size_t i = 0; i < m->cap; i++) {
        if (!ald_map_slot(m, i))
            continue;
        size_t j = mix(m->keys[i]) & (ncap - 1);
        while (nm.vals[j] != NULL)
            j = (j + 1) & (ncap - 1);
        nm.keys[j] = m->keys[i];
        nm.vals[j] = m->vals[i];
        nm.n++;
    }
    obs_free(m->keys);
    obs_free(m->vals);
    *m = nm;
    return 0;
}

int ald_map_put(struct ald_map *m, uint64_t k, void *v)
{
    if (m->cap == 0 || (m->n + 1) * 2 > m->cap) {
        if (map_grow(m) != 0)
            return OBS_ENOMEM;
    }
    size_t mask = m->cap - 1;
    size_t tomb = (size_t)-1;
    for (size_t i = mix(k) & mask;; i = (i + 1) & mask) {
        if (m->vals[i] == NULL) {
            size_t at = tomb != (size_t)-1 ? tomb : i;
            m->keys[at] = k;
            m->vals[at] = v;
            m->n++;
            return 0;
        }
        if (m->vals[i] == TOMB(m)) {
            if (tomb == (size_t)-1)
                tomb = i;
            continue;
        }
        if (m->keys[i] == k) {
            m->vals[i] = v;
            return 0;
        }
    }
}

void *ald_map_del(struct ald_map *m, uint64_t k)
{
    if (m->cap == 0)
        return NULL;
    size_t mask = m->cap - 1;
    for (size_t i = mix(k) & mask, probes = 0; probes < m->cap; i = (i + 1) & mask, probes++) {
        if (m->vals[i] == NULL)
            return NULL;
        if (m->vals[i] != TOMB(m) && m->keys[i] == k) {
            void *old = m->vals[i];
            m->vals[i] = TOMB(m);
            /* tombstones count toward n so the load factor stays bounded; a grow clears them */
            return old;
        }
    }
    return NULL;
}

void ald_map_deinit(struct ald_map *m)
{
    obs_free(m->keys);
    obs_free(m->vals);
    memset(m, 0, sizeof(*m));
}
