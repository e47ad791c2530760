/*
 * silences.c -- silences (mute alerts whose labels match) and inhibition.
 *
 * A silence is pending before startsAt, active until endsAt, expired after. Active silences
 * mute every alert whose labels satisfy all of the silence's matchers. Expired silences are
 * kept for --data.retention (default 120h) and then dropped by ald_state_gc.
 *
 * Inhibition follows Alertmanager: an alert matching a rule's target matchers is inhibited
 * when some *firing* alert matches the rule's source matchers and has the same values for
 * every label in `equal` (absent labels compare as empty). An alert that matches both sides
 * of a rule is not inhibited by itself. Loop thread only.
 */
#include "alertd/ald.h"

#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "core/obs_mem.h"
#include "core/obs_time.h"

enum ald_sil_state ald_silence_state(const struct ald_silence *s, int64_t now_ms)
{
    if (s->ends_ms <= now_ms)
        return ALD_SIL_EXPIRED;
    if (s->starts_ms > now_ms)
        return ALD_SIL_PENDING;
    return ALD_SIL_ACTIVE;
}

const char *ald_silence_state_str(enum ald_sil_state st)
{
    switch (st) {
    case ALD_SIL_PENDING: return "pending";
    case ALD_SIL_ACTIVE: return "active";
    case ALD_SIL_EXPIRED: return "expired";
    }
    return "expired";
}

void ald_silence_free(struct ald_silence *s)
{
    if (s == NULL)
        return;
    ald_matchers_deinit(&s->m);
    obs_free(s->created_by);
    obs_free(s->comment);
    obs_free(s);
}

void ald_uuid(char out[37])
{
    unsigned char b[16];
    if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b)) {
        /* fall back to clock bytes (wall and monotonic nanoseconds) */
        uint64_t t = (uint64_t)obs_now_ns(), m = (uint64_t)obs_mono_ns();
        memcpy(b, &t, 8);
        memcpy(b + 8, &m, 8);
    }
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    snprintf(out, 37,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
             b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
             b[15]);
}

struct ald_silence *ald_silence_find(struct ald *d, const char *id)
{
    for (size_t i = 0; i < d->nsils; i++)
        if (strcmp(d->sils[i]->id, id) == 0)
            return d->sils[i];
    return NULL;
}

int ald_silence_add_take(struct ald *d, struct ald_silence *s)
{
    for (size_t i = 0; i < d->nsils; i++) {
        if (strcmp(d->sils[i]->id, s->id) == 0) {
            ald_silence_free(d->sils[i]);
            d->sils[i] = s;
            return 0;
        }
    }
    if (d->nsils == d->capsils) {
        size_t nc = d->capsils ? d->capsils * 2 : 16;
        struct ald_silence **nv = obs_realloc(d->sils, nc * sizeof(*nv));
        if (nv == NULL)
            return OBS_ENOMEM;
        d->sils = nv;
        d->capsils = nc;
    }
    d->sils[d->nsils++] = s;
    return 0;
}

size_t ald_silenced_by(struct ald *d, const struct obs_label *l, size_t n, const char **ids,
                       size_t max)
{
    int64_t now = obs_now_ms();
    size_t cnt = 0;
    for (size_t i = 0; i < d->nsils && cnt < max; i++) {
        const struct ald_silence *s = d->sils[i];
        if (ald_silence_state(s, now) != ALD_SIL_ACTIVE)
            continue;
        if (s->m.n > 0 && ald_matchers_match(&s->m, l, n))
            ids[cnt++] = s->id;
    }
    return cnt;
}

static int equal_labels(const struct ald_inhibit *ih, const struct obs_label *a, size_t na,
                        const struct obs_label *b, size_t nb)
{
    for (size_t i = 0; i < ih->nequal; i++) {
        const char *va = obs_labels_get(a, na, ih->equal[i]);
        const char *vb = obs_labels_get(b, nb, ih->equal[i]);
        if (strcmp(va ? va : "", vb ? vb : "") != 0)
            return 0;
    }
    return 1;
}

size_t ald_inhibited_by(struct ald *d, uint64_t self, const struct obs_label *l, size_t n,
                        uint64_t *fps, size_t max)
{
    const struct ald_config *c = d->cfg;
    if (c->ninhibits == 0)
        return 0;
    int64_t now = obs_now_ms();
    size_t cnt = 0;
    for (size_t r = 0; r < c->ninhibits && cnt < max; r++) {
        const struct ald_inhibit *ih = &c->inhibits[r];
        if (!ald_matchers_match(&ih->tgt, l, n))
            continue;
        int self_is_source = ald_matchers_match(&ih->src, l, n);
        for (size_t i = 0; i < d->alerts.cap && cnt < max; i++) {
            if (!ald_map_slot(&d->alerts, i))
                continue;
            const struct ald_alert *s = d->alerts.vals[i];
            /* excludeTwoSidedMatch: a target that is also a source is only inhibited by
             * sources that are not themselves targets */
            if (self_is_source && ald_matchers_match(&ih->tgt, s->labels, s->nlabels))
                continue;
            if (ald_alert_resolved(s, now))
                continue;
            if (!ald_matchers_match(&ih->src, s->labels, s->nlabels))
                continue;
            if (!equal_labels(ih, s->labels, s->nlabels, l, n))
                continue;
            int dup = 0;
            for (size_t k = 0; k < cnt; k++)
                dup |= fps[k] == s->fp;
            if (!dup)
                fps[cnt++] = s->fp;
        }
    }
    return cnt;
}
