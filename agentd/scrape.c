/*
 * scrape.c -- the Prometheus-agent half: scrape static targets and remote-write the samples.
 *
 * One scraper thread walks the targets in due-time order: GET <scheme>://<target><path> with
 * the scrape timeout, parse the text format (promtext.c), label the samples and hand one
 * encoded WriteRequest per scrape to every remote-write queue (remote_write.c).
 * Labelling follows Prometheus with honor_labels: false: the target labels (job, instance and
 * the static labels; "__"-prefixed ones removed) win, and a scraped label with the same name
 * is kept as exported_<name>. Empty label values are dropped. Samples without a timestamp get
 * the scrape's start time. Each scrape adds the synthetic series
 *   up, scrape_duration_seconds, scrape_samples_scraped, scrape_samples_post_metric_relabeling
 * so a failed scrape shows up as up == 0 (nothing else is sent for it).
 * Global external_labels are added last, when the series does not carry the name already.
 * The target table is read by /api/v1/targets on the loop thread under a mutex.
 */
#include <errno.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "agd.h"
#include "app/obs_app.h"
#include "core/obs_arena.h"
#include "core/obs_log.h"
#include "core/obs_mem.h"
#include "core/obs_time.h"
#include "http/obs_http.h"
#include "metrics/obs_metrics.h"
#include "proto/prometheus_remote.pb-c.h"

#define COMP "scraper"
#define MAX_SERIES_LABELS 160

struct starget {
    const struct agd_scrape_cfg *sc;
    char *url;
    struct obs_label *tl; /* target labels, sorted, owned strings */
    size_t ntl;
    int64_t next_ms; /* monotonic */
    /* status, guarded by the scraper mutex */
    int health; /* -1 unknown, 0 down, 1 up */
    char last_error[256];
    int64_t last_scrape_ms; /* wall clock */
    double last_duration;
    size_t last_samples;
};

struct agd_scraper {
    struct agd *a;
    struct starget *t;
    size_t nt;
    struct agd_rwq **q;
    size_t nq;
    pthread_t thr;
    int started;
    int stop;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct obs_mchild *m_scrapes, *m_failed;
};

/* One scrape's WriteRequest under construction; all memory in the arena. */
struct build {
    struct obs_arena *ar;
    const struct starget *t;
    const struct agd_kv *ext;
    int64_t ts_ms;
    Prometheus__TimeSeries **ts;
    size_t n, cap;
    int oom;
};

static int64_t mono_ms(void) { return obs_mono_ns() / 1000000; }

static int label_cmp(const void *a, const void *b)
{
    return strcmp(((const struct obs_label *)a)->name, ((const struct obs_label *)b)->name);
}

static int has_label(const struct obs_label *v, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(v[i].name, name))
            return 1;
    return 0;
}

/* Add one series with one sample. Labels are copied into the arena. */
static int add_series(struct build *b, const struct obs_label *in, size_t nin, double v,
                      int64_t ts)
{
    struct obs_label l[MAX_SERIES_LABELS];
    size_t n = 0;
    int honor = b->t->sc->honor_labels;
    for (size_t i = 0; i < nin && n < MAX_SERIES_LABELS; i++) {
        if (!in[i].value[0])
            continue;
        l[n] = in[i];
        if (!honor && has_label(b->t->tl, b->t->ntl, in[i].name)) {
            /* exported_<name>, again prefixed while that name is taken too */
            const char *name = in[i].name;
            do {
                name = obs_arena_printf(b->ar, "exported_%s", name);
                if (!name)
                    return b->oom = 1, OBS_ENOMEM;
            } while (has_label(b->t->tl, b->t->ntl, name) || has_label(in, nin, name));
            l[n].name = name;
        }
        n++;
    }
    for (size_t i = 0; i < b->t->ntl && n < MAX_SERIES_LABELS; i++) {
        if (honor && has_label(l, n, b->t->tl[i].name))
            continue;
        l[n++] = b->t->tl[i];
    }
    for (size_t i = 0; b->ext && i < b->ext->n && n < MAX_SERIES_LABELS; i++)
        if (!has_label(l, n, b->ext->v[i].name) && b->ext->v[i].value[0])
            l[n++] = b->ext->v[i];
    qsort(l, n, sizeof(l[0]), label_cmp);

    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 512;
        Prometheus__TimeSeries **nv = obs_arena_alloc(b->ar, cap * sizeof(*nv));
        if (!nv)
            return b->oom = 1, OBS_ENOMEM;
        if (b->n)
            memcpy(nv, b->ts, b->n * sizeof(*nv));
        b->ts = nv;
        b->cap = cap;
    }
    Prometheus__TimeSeries *s = obs_arena_alloc(b->ar, sizeof(*s));
    Prometheus__Label *lab = obs_arena_alloc(b->ar, n * sizeof(*lab) + 1);
    Prometheus__Label **labp = obs_arena_alloc(b->ar, n * sizeof(*labp) + 1);
    Prometheus__Sample *smp = obs_arena_alloc(b->ar, sizeof(*smp));
    Prometheus__Sample **smpp = obs_arena_alloc(b->ar, sizeof(*smpp));
    if (!s || !lab || !labp || !smp || !smpp)
        return b->oom = 1, OBS_ENOMEM;
    prometheus__time_series__init(s);
    for (size_t i = 0; i < n; i++) {
        prometheus__label__init(&lab[i]);
        lab[i].name = obs_arena_strdup(b->ar, l[i].name);
        lab[i].value = obs_arena_strdup(b->ar, l[i].value);
        if (!lab[i].name || !lab[i].value)
            return b->oom = 1, OBS_ENOMEM;
        labp[i] = &lab[i];
    }
    prometheus__sample__init(smp);
    smp->value = v;
    smp->timestamp = ts;
    smpp[0] = smp;
    s->n_labels = n;
    s->labels = labp;
    s->n_samples = 1;
    s->samples = smpp;
    b->ts[b->n++] = s;
    return 0;
}

static int on_sample(const struct obs_label *labels, size_t n, double value, int64_t ts_ms,
                     int has_ts, void *arg)
{
    struct build *b = arg;
    return add_series(b, labels, n, value, has_ts ? ts_ms : b->ts_ms);
}

static void add_synthetic(struct build *b, const char *name, double v)
{
    struct obs_label l = {"__name__", name};
    add_series(b, &l, 1, v, b->ts_ms);
}

static void scrape_one(struct agd_scraper *S, struct starget *t)
{
    struct build b = {.t = t, .ext = &S->a->cfg.metrics.external_labels};
    b.ar = obs_arena_new(64 * 1024);
    if (!b.ar)
        return;
    b.ts_ms = obs_now_ms();
    int64_t t0 = obs_mono_ns();
    char timeout_hdr[96];
    snprintf(timeout_hdr, sizeof timeout_hdr, "X-Prometheus-Scrape-Timeout-Seconds: %g",
             (double)t->sc->scrape_timeout_ms / 1000.0);
    const char *headers[] = {"Accept: text/plain;version=0.0.4;q=1,*/*;q=0.1",
                             "User-Agent: agentd/0.1.0 (Prometheus agent compatible)",
                             timeout_hdr, NULL};
    struct obs_httpc_resp resp;
    struct obs_err err = {0};
    obs_sbuf_init(&resp.body);
    char errbuf[256] = "";
    int ok = 0;
    int hrc = obs_httpc_do("GET", t->url, headers, NULL, 0, (int)t->sc->scrape_timeout_ms, &resp,
                           &err);
    if (hrc < 0) {
        snprintf(errbuf, sizeof errbuf, "%s", err.msg);
    } else if (resp.status != 200) {
        snprintf(errbuf, sizeof errbuf, "server returned HTTP status %d", resp.status);
    } else {
        obs_err_clear(&err);
        int prc = agd_promtext_parse(resp.body.p ? resp.body.p : "", resp.body.len, on_sample,
                                     NULL, &b, &err);
        if (prc < 0 || b.oom) {
            snprintf(errbuf, sizeof errbuf, "%s", b.oom ? "out of memory" : err.msg);
            b.n = 0; /* a failed parse ingests nothing, as Prometheus does */
        } else {
            ok = 1;
        }
    }
    obs_sbuf_deinit(&resp.body);
    size_t scraped = b.n;
    double dur = (double)(obs_mono_ns() - t0) / 1e9;
    add_synthetic(&b, "up", ok ? 1 : 0);
    add_synthetic(&b, "scrape_duration_seconds", dur);
    add_synthetic(&b, "scrape_samples_scraped", (double)scraped);
    add_synthetic(&b, "scrape_samples_post_metric_relabeling", (double)scraped);
    obs_mchild_add(S->m_scrapes, 1);
    if (!ok) {
        obs_mchild_add(S->m_failed, 1);
        obs_clog_warn(COMP, "scrape failed\tjob=%s url=%s error=\"%s\"", t->sc->job_name, t->url,
                      errbuf);
    }

    if (!b.oom && S->nq) {
        Prometheus__WriteRequest wr = PROMETHEUS__WRITE_REQUEST__INIT;
        wr.n_timeseries = b.n;
        wr.timeseries = b.ts;
        size_t len = prometheus__write_request__get_packed_size(&wr);
        uint8_t *packed = obs_malloc(len ? len : 1);
        struct obs_sbuf z;
        obs_sbuf_init(&z);
        if (packed) {
            prometheus__write_request__pack(&wr, packed);
            if (obs_snappy_encode(packed, len, &z) == 0)
                for (size_t i = 0; i < S->nq; i++)
                    agd_rwq_push(S->q[i], z.p, z.len, b.n);
        }
        obs_sbuf_deinit(&z);
        obs_free(packed);
    }
    obs_arena_free(b.ar);

    pthread_mutex_lock(&S->mu);
    t->health = ok;
    snprintf(t->last_error, sizeof t->last_error, "%s", errbuf);
    t->last_scrape_ms = b.ts_ms;
    t->last_duration = dur;
    t->last_samples = scraped;
    pthread_mutex_unlock(&S->mu);
}

static void *scraper_main(void *arg)
{
    struct agd_scraper *S = arg;
    pthread_mutex_lock(&S->mu);
    while (!S->stop) {
        int64_t now = mono_ms(), next = now + 1000;
        for (size_t i = 0; i < S->nt && !S->stop; i++) {
            struct starget *t = &S->t[i];
            if (t->next_ms <= now) {
                pthread_mutex_unlock(&S->mu);
                scrape_one(S, t);
                pthread_mutex_lock(&S->mu);
                t->next_ms += t->sc->scrape_interval_ms;
                now = mono_ms();
                if (t->next_ms <= now) /* fell behind: skip missed slots */
                    t->next_ms = now + t->sc->scrape_interval_ms;
            }
            if (t->next_ms < next)
                next = t->next_ms;
        }
        if (S->stop)
            break;
        int64_t wait = next - mono_ms();
        if (wait <= 0)
            continue;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += wait / 1000;
        ts.tv_nsec += (wait % 1000) * 1000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&S->cv, &S->mu, &ts);
    }
    pthread_mutex_unlock(&S->mu);
    return NULL;
}

/* GET /api/v1/targets (Prometheus API shape) and /targets. */
static void targets_handler(struct obs_http_req *req, void *arg)
{
    struct agd_scraper *S = arg;
    struct obs_sbuf b;
    obs_sbuf_init(&b);
    obs_sbuf_puts(&b, "{\"status\":\"success\",\"data\":{\"activeTargets\":[");
    pthread_mutex_lock(&S->mu);
    for (size_t i = 0; i < S->nt; i++) {
        struct starget *t = &S->t[i];
        char tbuf[64] = "0001-01-01T00:00:00Z", ibuf[32], tobuf[32];
        if (t->last_scrape_ms)
            obs_time_format_rfc3339(tbuf, sizeof tbuf, t->last_scrape_ms);
        obs_duration_format(ibuf, sizeof ibuf, t->sc->scrape_interval_ms);
        obs_duration_format(tobuf, sizeof tobuf, t->sc->scrape_timeout_ms);
        if (i)
            obs_sbuf_putc(&b, ',');
        obs_sbuf_puts(&b, "{\"labels\":{");
        for (size_t j = 0; j < t->ntl; j++) {
            if (j)
                obs_sbuf_putc(&b, ',');
            obs_sbuf_json_str(&b, t->tl[j].name, strlen(t->tl[j].name));
            obs_sbuf_putc(&b, ':');
            obs_sbuf_json_str(&b, t->tl[j].value, strlen(t->tl[j].value));
        }
        obs_sbuf_puts(&b, "},\"scrapePool\":");
        obs_sbuf_json_str(&b, t->sc->job_name, strlen(t->sc->job_name));
        obs_sbuf_puts(&b, ",\"scrapeUrl\":");
        obs_sbuf_json_str(&b, t->url, strlen(t->url));
        obs_sbuf_puts(&b, ",\"lastError\":");
        obs_sbuf_json_str(&b, t->last_error, strlen(t->last_error));
        obs_sbuf_printf(&b,
                        ",\"lastScrape\":\"%s\",\"lastScrapeDuration\":%.6f,"
                        "\"lastSamplesScraped\":%zu,\"health\":\"%s\",\"scrapeInterval\":\"%s\","
                        "\"scrapeTimeout\":\"%s\"}",
                        tbuf, t->last_duration, t->last_samples,
                        t->health < 0 ? "unknown" : t->health ? "up" : "down", ibuf, tobuf);
    }
    pthread_mutex_unlock(&S->mu);
    obs_sbuf_puts(&b, "],\"droppedTargets\":[]}}");
    if (b.oom) {
        obs_sbuf_deinit(&b);
        obs_http_reply_text(req, 500, "out of memory");
        return;
    }
    obs_http_reply_sbuf(req, 200, "application/json", &b);
    obs_sbuf_deinit(&b);
}

int agd_scraper_start(struct agd *a, struct obs_err *err)
{
    struct agd_metrics_cfg *mc = &a->cfg.metrics;
    size_t nt = 0;
    for (size_t i = 0; i < mc->nscrapes; i++)
        for (size_t j = 0; j < mc->scrapes[i].nstatics; j++)
            nt += mc->scrapes[i].statics[j].targets.n;
    if (nt == 0 && mc->nrws == 0)
        return 0;
    struct agd_scraper *S = obs_calloc(1, sizeof(*S));
    if (!S)
        return obs_err_set(err, OBS_ENOMEM, "out of memory");
    S->a = a;
    a->scraper = S;
    pthread_mutex_init(&S->mu, NULL);
    pthread_cond_init(&S->cv, NULL);
    S->t = obs_calloc(nt ? nt : 1, sizeof(*S->t));
    S->q = obs_calloc(mc->nrws ? mc->nrws : 1, sizeof(*S->q));
    if (!S->t || !S->q)
        return obs_err_set(err, OBS_ENOMEM, "out of memory");
    int64_t now = mono_ms();
    for (size_t i = 0; i < mc->nscrapes; i++) {
        const struct agd_scrape_cfg *sc = &mc->scrapes[i];
        for (size_t j = 0; j < sc->nstatics; j++) {
            const struct agd_static_cfg *st = &sc->statics[j];
            for (size_t k = 0; k < st->targets.n; k++) {
                struct starget *t = &S->t[S->nt++];
                const char *addr = st->targets.v[k];
                t->sc = sc;
                t->health = -1;
                t->next_ms = now;
                size_t ulen = strlen(sc->scheme) + strlen(addr) + strlen(sc->metrics_path) + 8;
                t->url = obs_malloc(ulen);
                t->tl = obs_calloc(st->labels.n + 2, sizeof(*t->tl));
                if (!t->url || !t->tl)
                    return obs_err_set(err, OBS_ENOMEM, "out of memory");
                snprintf(t->url, ulen, "%s://%s%s%s", sc->scheme, addr,
                         sc->metrics_path[0] == '/' ? "" : "/", sc->metrics_path);
                t->tl[t->ntl++] = (struct obs_label){obs_strdup("job"), obs_strdup(sc->job_name)};
                t->tl[t->ntl++] = (struct obs_label){obs_strdup("instance"), obs_strdup(addr)};
                for (size_t l = 0; l < st->labels.n; l++) {
                    const struct obs_label *sl = &st->labels.v[l];
                    if (!strncmp(sl->name, "__", 2))
                        continue;
                    size_t at = t->ntl;
                    for (size_t x = 0; x < t->ntl; x++)
                        if (!strcmp(t->tl[x].name, sl->name))
                            at = x; /* static labels override job/instance, as in Prometheus */
                    if (at < t->ntl) {
                        obs_free((char *)t->tl[at].name);
                        obs_free((char *)t->tl[at].value);
                    } else {
                        t->ntl++;
                    }
                    t->tl[at] = (struct obs_label){obs_strdup(sl->name), obs_strdup(sl->value)};
                }
                for (size_t x = 0; x < t->ntl; x++)
                    if (!t->tl[x].name || !t->tl[x].value)
                        return obs_err_set(err, OBS_ENOMEM, "out of memory");
                qsort(t->tl, t->ntl, sizeof(t->tl[0]), label_cmp);
            }
        }
    }
    for (size_t i = 0; i < mc->nrws; i++) {
        S->q[i] = agd_rwq_new(&mc->rws[i], a->ctx->metrics, err);
        if (!S->q[i])
            return err ? err->code : OBS_ENOMEM;
        S->nq++;
    }
    S->m_scrapes = obs_metrics_counter(a->ctx->metrics, "agentd_scrapes_total", "Scrapes run.");
    S->m_failed = obs_metrics_counter(a->ctx->metrics, "agentd_scrapes_failed_total",
                                      "Scrapes that failed (up == 0).");
    obs_http_route(a->ctx->http, "GET", "/api/v1/targets", targets_handler, S);
    obs_http_route(a->ctx->http, "GET", "/targets", targets_handler, S);
    if (pthread_create(&S->thr, NULL, scraper_main, S) != 0)
        return obs_err_set(err, OBS_EIO, "cannot start scraper thread");
    S->started = 1;
    obs_clog_info(COMP, "scraper started\ttargets=%zu remote_write=%zu", S->nt, S->nq);
    return 0;
}

void agd_scraper_stop(struct agd *a)
{
    struct agd_scraper *S = a->scraper;
    if (!S)
        return;
    if (S->started) {
        pthread_mutex_lock(&S->mu);
        S->stop = 1;
        pthread_cond_broadcast(&S->cv);
        pthread_mutex_unlock(&S->mu);
        pthread_join(S->thr, NULL);
    }
    for (size_t i = 0; i < S->nq; i++)
        agd_rwq_free(S->q[i], 3000); /* give queued samples a short chance to go out */
    obs_free(S->q);
    for (size_t i = 0; i < S->nt; i++) {
        for (size_t x = 0; x < S->t[i].ntl; x++) {
            obs_free((char *)S->t[i].tl[x].name);
            obs_free((char *)S->t[i].tl[x].value);
        }
        obs_free(S->t[i].tl);
        obs_free(S->t[i].url);
    }
    obs_free(S->t);
    pthread_mutex_destroy(&S->mu);
    pthread_cond_destroy(&S->cv);
    obs_free(S);
    a->scraper = NULL;
}
