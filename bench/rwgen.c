/*
 * rwgen.c -- Prometheus remote-write load generator for benchmarks.
 *
 *   rwgen -url=http://127.0.0.1:9090/api/v1/write [-series=100000] [-samples=20]
 *         [-batch=2000] [-conns=16] [-interval=15] [-values=mixed|walk] [-seed=1]
 *         [-end-ms=<ms>] [-jitter-ms=2] [-encode-threads=<ncpu>] [-max-seconds=600]
 *         [-timeout-ms=60000] [-retries=0] [-mix=exporters|promql] [-quiet]
 *
 * What it sends. N series, each with a realistic label set: __name__ from 50 metric
 * names (exporter-style counters and gauges), one per-metric dimension label (code, cpu,
 * device, handler or mode; 10 values each), and per scrape target: instance
 * ("10.a.b.c:port"), job (12), pod (one per target), namespace (25), env (3) and region (4).
 * 500 series per target, so N=100k is 200 targets and N=1M is 2000. Every series gets M
 * samples, one per scrape interval (15 s), ending at -end-ms (default: now): the first
 * sample is (M-1)*interval old. Each target has its own scrape offset within the interval
 * and every sample a small jitter (+-jitter-ms), as real scrapes have.
 * Values: -values=mixed (default) mixes integer counters, float second-counters, random-walk
 * float gauges, random-walk integer gauges and constants (per metric name, the way real
 * exporters do); -values=walk makes every series a float random walk.
 * -mix=promql (the PromQL benchmark's data): 24% of the series are http_requests_total
 * (10 code values per target), 48% classic histogram buckets bench_latency_seconds_bucket
 * (12 le values per histogram, one histogram per target, cumulative in le), the rest the
 * exporter mix without http_requests_total.
 *
 * How it sends. Everything is encoded before the clock starts: WriteRequest protobufs
 * (protobuf-c, proto/prometheus_remote.proto) of -batch series with one sample each,
 * snappy-compressed, held in memory, like one round of a Prometheus remote-write shard.
 * Batches are assigned to -conns connections (batch % conns); each connection is a thread
 * with one keep-alive libcurl handle that sends its batches round by round, so each series'
 * samples arrive in time order exactly as with Prometheus' sharding by series.
 *
 * Output: progress on stderr every 5 s (unless -quiet), then one summary line on stdout:
 *   requests=R ok=O non2xx=E neterr=X samples=S accepted=A seconds=T samples_per_sec=V
 *   bytes=B encode_seconds=C lat_p50_ms= lat_p99_ms= lat_max_ms= first_error="..."
 * accepted counts the samples of 2xx requests; samples_per_sec is accepted / seconds.
 * Exit status 0 when every request got a 2xx, 1 otherwise, 2 for bad arguments.
 *
 * Timestamps: Prometheus 2.42 rejects ("out of bounds") samples older than the head's max
 * time minus half the block range (1 h by default). Rounds are sent in time order and all
 * connections move round by round at about the same speed, so the spread between them stays
 * far below that bound and spans of several hours load fine.
 */
#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <snappy-c.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/obs_mem.h"
#include "proto/prometheus_remote.pb-c.h"

/* ---------------------------------------------------------------- series model */

enum value_kind { V_COUNTER_INT, V_COUNTER_FLOAT, V_GAUGE_FLOAT, V_GAUGE_INT, V_CONST, V_BUCKET };

struct metric_def {
    const char *name;
    enum value_kind kind;
};

/* 50 names as exporters expose them; the kind drives the value model in -values=mixed. */
static const struct metric_def metrics[50] = {
    {"http_requests_total", V_COUNTER_INT},
    {"http_request_duration_seconds_sum", V_COUNTER_FLOAT},
    {"http_request_duration_seconds_count", V_COUNTER_INT},
    {"http_request_size_bytes_sum", V_COUNTER_INT},
    {"http_response_size_bytes_sum", V_COUNTER_INT},
    {"http_requests_in_flight", V_GAUGE_INT},
    {"grpc_server_handled_total", V_COUNTER_INT},
    {"grpc_server_started_total", V_COUNTER_INT},
    {"grpc_server_handling_seconds_sum", V_COUNTER_FLOAT},
    {"grpc_server_msg_received_total", V_COUNTER_INT},
    {"node_cpu_seconds_total", V_COUNTER_FLOAT},
    {"node_memory_MemAvailable_bytes", V_GAUGE_INT},
    {"node_memory_Cached_bytes", V_GAUGE_INT},
    {"node_filesystem_avail_bytes", V_GAUGE_INT},
    {"node_filesystem_size_bytes", V_CONST},
    {"node_disk_read_bytes_total", V_COUNTER_INT},
    {"node_disk_written_bytes_total", V_COUNTER_INT},
    {"node_disk_io_time_seconds_total", V_COUNTER_FLOAT},
    {"node_network_receive_bytes_total", V_COUNTER_INT},
    {"node_network_transmit_bytes_total", V_COUNTER_INT},
    {"node_load1", V_GAUGE_FLOAT},
    {"node_load5", V_GAUGE_FLOAT},
    {"node_context_switches_total", V_COUNTER_INT},
    {"node_interrupts_total", V_COUNTER_INT},
    {"node_boot_time_seconds", V_CONST},
    {"process_cpu_seconds_total", V_COUNTER_FLOAT},
    {"process_resident_memory_bytes", V_GAUGE_INT},
    {"process_virtual_memory_bytes", V_GAUGE_INT},
    {"process_open_fds", V_GAUGE_INT},
    {"process_start_time_seconds", V_CONST},
    {"go_goroutines", V_GAUGE_INT},
    {"go_threads", V_GAUGE_INT},
    {"go_memstats_alloc_bytes", V_GAUGE_INT},
    {"go_memstats_heap_inuse_bytes", V_GAUGE_INT},
    {"go_gc_duration_seconds_sum", V_COUNTER_FLOAT},
    {"container_cpu_usage_seconds_total", V_COUNTER_FLOAT},
    {"container_memory_working_set_bytes", V_GAUGE_INT},
    {"container_network_receive_bytes_total", V_COUNTER_INT},
    {"container_fs_reads_total", V_COUNTER_INT},
    {"kube_pod_container_status_restarts_total", V_COUNTER_INT},
    {"kube_pod_status_ready", V_CONST},
    {"kube_deployment_status_replicas", V_CONST},
    {"db_query_duration_seconds_sum", V_COUNTER_FLOAT},
    {"db_connections_open", V_GAUGE_INT},
    {"cache_hits_total", V_COUNTER_INT},
    {"cache_misses_total", V_COUNTER_INT},
    {"queue_depth", V_GAUGE_INT},
    {"temperature_celsius", V_GAUGE_FLOAT},
    {"app_latency_seconds", V_GAUGE_FLOAT},
    {"up", V_CONST},
};

/* Per metric, one dimension label with 10 values (m % 5 picks the name). */
static const char *const dim_names[5] = {"code", "cpu", "device", "handler", "mode"};
static const char *const dim_values[5][10] = {
    {"200", "201", "204", "301", "304", "400", "401", "404", "429", "500"},
    {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"},
    {"sda", "sdb", "sdc", "nvme0n1", "nvme1n1", "dm-0", "dm-1", "vda", "vdb", "loop0"},
    {"/", "/api/v1/query", "/api/v1/query_range", "/api/v1/series", "/api/v1/labels",
     "/api/v1/write", "/metrics", "/-/ready", "/-/healthy", "/federate"},
    {"user", "system", "idle", "iowait", "irq", "softirq", "steal", "nice", "guest", "other"},
};
static const char *const jobs[12] = {
    "node-exporter",     "kube-state-metrics", "cadvisor", "api-gateway", "checkout",
    "payments",          "inventory",          "frontend", "auth",        "search",
    "postgres-exporter", "redis-exporter",
};
static const char *const namespaces[25] = {
    "default",       "kube-system", "monitoring",  "ingress-nginx", "cert-manager",
    "payments",      "checkout",    "inventory",   "frontend",      "auth",
    "search",        "data",        "ml",          "batch",         "logging",
    "tracing",       "storage",     "mesh",        "billing",       "reports",
    "notifications", "mobile-api",  "partner-api", "staging-tools", "sandbox",
};
/* -mix=promql: classic histogram buckets (cumulative share of observations per le). */
static const char *const le_values[12] = {"0.005", "0.01", "0.025", "0.05", "0.1", "0.25",
                                          "0.5",   "1",    "2.5",   "5",    "10",  "+Inf"};
static const double le_share[12] = {0.02, 0.05, 0.1,  0.2,  0.35, 0.55,
                                    0.7,  0.82, 0.9, 0.95, 0.98, 1.0};
static const char *const envs[3] = {"prod", "staging", "dev"};
static const char *const regions[4] = {"us-east-1", "us-west-2", "eu-west-1", "ap-south-1"};

#define SERIES_PER_TARGET 500u /* 50 metrics x 10 dimension values */
#define NLABELS 8

/* splitmix64: small, fast, good enough for load shapes; one stream per series. */
static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double rng_unit(uint64_t *s) /* [0, 1) */
{
    return (double)(rng_next(s) >> 11) * (1.0 / 9007199254740992.0);
}

/* ---------------------------------------------------------------- options and state */

struct opts {
    const char *url;
    uint64_t series;
    uint32_t samples;
    uint32_t batch;
    uint32_t conns;
    uint32_t interval_s;
    int walk_only;
    int mix_promql;
    uint64_t seed;
    int64_t end_ms;
    uint32_t jitter_ms;
    uint32_t encode_threads;
    uint32_t max_seconds;
    long timeout_ms;
    uint32_t retries;
    int quiet;
};

struct req {
    char *data; /* snappy-compressed WriteRequest; owned */
    size_t len;
    uint32_t nsamples;
};

struct bench {
    struct opts o;
    uint64_t nbatch;
    struct req *reqs; /* [round * nbatch + batch] */
    /* sending */
    atomic_uint_fast64_t sent_req, ok_req, ok_samples, bad_req, net_err;
    atomic_int stop;
    double *lat_ms; /* per request, indexed like reqs; -1 = not sent */
    pthread_mutex_t err_mu;
    long first_code;
    char first_err[256];
    double t_start;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *xcalloc(size_t n, size_t sz)
{
    void *p = obs_calloc(n ? n : 1, sz ? sz : 1);
    if (p == NULL) {
        fprintf(stderr, "rwgen: out of memory (%zu x %zu bytes)\n", n, sz);
        exit(1);
    }
    return p;
}

/* ---------------------------------------------------------------- encoding */

struct series_state {
    double v;
    double step; /* counter rate per interval, or walk step */
    uint64_t rng;
    enum value_kind kind;
    int64_t t0; /* first timestamp (ms), offset included */
    uint64_t hist; /* V_BUCKET: histogram id and bucket index */
    uint32_t le;
};

struct enc_series {
    Prometheus__TimeSeries ts;
    Prometheus__Label lab[NLABELS];
    Prometheus__Label *labp[NLABELS];
    Prometheus__Sample smp;
    Prometheus__Sample *smpp;
    char inst[32], pod[64];
};

static int label_cmp(const void *a, const void *b)
{
    const Prometheus__Label *x = *(Prometheus__Label *const *)a;
    const Prometheus__Label *y = *(Prometheus__Label *const *)b;
    return strcmp(x->name, y->name);
}

/* Labels and value model of series id i (deterministic for a seed). */
static void series_init(const struct opts *o, uint64_t i, struct enc_series *es,
                        struct series_state *st)
{
    uint32_t m = (uint32_t)(i % 50);
    uint64_t t = i / 50;
    int bucket = 0;
    if (o->mix_promql) {
        /* 24% http_requests_total (10 codes per target), 48% histogram buckets (12 le per
         * histogram, one histogram per target), the rest the exporter mix below. */
        uint64_t nhttp = o->series * 24 / 100;
        uint64_t nbucket = o->series * 48 / 100 / 12 * 12;
        if (i < nhttp) {
            m = 0;
            t = i;
        } else if (i < nhttp + nbucket) {
            bucket = 1;
            t = (i - nhttp) / 12 * 10; /* target = histogram id */
            st->hist = (i - nhttp) / 12;
            st->le = (uint32_t)((i - nhttp) % 12);
        } else {
            m = (uint32_t)((i - nhttp - nbucket) % 49) + 1; /* not http_requests_total */
            t = (i - nhttp - nbucket) / 49;
        }
    }
    uint32_t sub = (uint32_t)(t % 10);
    uint64_t target = t / 10;
    uint32_t job = (uint32_t)(target % 12);
    uint32_t ns = (uint32_t)((target / 12) % 25);
    uint64_t trng = o->seed * 1000003u + target;
    uint64_t h = rng_next(&trng);

    snprintf(es->inst, sizeof es->inst, "10.%u.%u.%u:%u", (unsigned)((target >> 16) & 255),
             (unsigned)((target >> 8) & 255), (unsigned)(target & 255),
             9100u + (unsigned)(job * 10));
    snprintf(es->pod, sizeof es->pod, "%s-%05" PRIx64 "-%05" PRIx64, jobs[job], (h >> 8) & 0xfffff,
             (h >> 40) & 0xfffff);
    const char *names[NLABELS] = {"__name__", bucket ? "le" : dim_names[m % 5], "instance", "job",
                                  "pod",      "namespace",      "env",      "region"};
    const char *vals[NLABELS] = {bucket ? "bench_latency_seconds_bucket" : metrics[m].name,
                                 bucket ? le_values[st->le] : dim_values[m % 5][sub],
                                 es->inst,
                                 jobs[job],
                                 es->pod,
                                 namespaces[ns],
                                 envs[(target / 7) % 3],
                                 regions[(target / 3) % 4]};
    for (int k = 0; k < NLABELS; k++) {
        prometheus__label__init(&es->lab[k]);
        es->lab[k].name = (char *)names[k];
        es->lab[k].value = (char *)vals[k];
        es->labp[k] = &es->lab[k];
    }
    qsort(es->labp, NLABELS, sizeof es->labp[0], label_cmp);
    prometheus__time_series__init(&es->ts);
    prometheus__sample__init(&es->smp);
    es->smpp = &es->smp;
    es->ts.n_labels = NLABELS;
    es->ts.labels = es->labp;
    es->ts.n_samples = 1;
    es->ts.samples = &es->smpp;

    st->rng = o->seed * 0x100000001B3ull + i * 0x9E3779B97F4A7C15ull + 1;
    st->kind = bucket ? V_BUCKET : o->walk_only ? V_GAUGE_FLOAT : metrics[m].kind;
    double u = rng_unit(&st->rng);
    switch (st->kind) {
    case V_BUCKET: {
        /* Same count and rate for every bucket of one histogram: seeded by the histogram. */
        uint64_t hr = o->seed * 0x2545F4914F6CDD1Dull + st->hist + 7;
        st->v = floor(floor(rng_unit(&hr) * 1e5) * le_share[st->le]);
        st->step = floor(20 + rng_unit(&hr) * 400) * o->interval_s; /* observations/interval */
        break;
    }
    case V_COUNTER_INT:
        st->v = floor(u * 1e6);
        st->step = floor(1 + rng_unit(&st->rng) * 200) * o->interval_s; /* events/interval */
        break;
    case V_COUNTER_FLOAT:
        st->v = u * 1e5;
        st->step = rng_unit(&st->rng) * 0.5 * o->interval_s;
        break;
    case V_GAUGE_INT:
        st->v = floor(u * 1e9);
        st->step = floor(1 + rng_unit(&st->rng) * 4096);
        break;
    case V_GAUGE_FLOAT:
        st->v = u * 100.0;
        st->step = 0.01 + rng_unit(&st->rng);
        break;
    case V_CONST:
        st->v = m == 49 ? 1.0 : floor(u * 1e10);
        st->step = 0;
        break;
    }
    /* Per-target scrape offset, as Prometheus spreads targets over the interval. */
    int64_t interval_ms = (int64_t)o->interval_s * 1000;
    int64_t offset = (int64_t)(h % (uint64_t)interval_ms);
    st->t0 = o->end_ms - (int64_t)(o->samples - 1) * interval_ms - interval_ms + offset;
}

static void series_next(const struct opts *o, struct series_state *st, uint32_t round,
                        Prometheus__Sample *s)
{
    double u = rng_unit(&st->rng);
    switch (st->kind) {
    case V_BUCKET: {
        /* One draw per histogram and round, so buckets stay cumulative (monotone in le). */
        uint64_t hr = o->seed * 0x9E3779B97F4A7C15ull + st->hist * 1000003u + round;
        double obs = floor(st->step * (0.5 + rng_unit(&hr)));
        st->v += floor(obs * le_share[st->le]);
        break;
    }
    case V_COUNTER_INT:
        st->v += floor(st->step * (0.5 + u));
        break;
    case V_COUNTER_FLOAT:
        st->v += st->step * (0.5 + u);
        break;
    case V_GAUGE_INT:
        st->v += floor((u - 0.5) * 2 * st->step);
        if (st->v < 0)
            st->v = -st->v;
        break;
    case V_GAUGE_FLOAT:
        st->v += (u - 0.5) * 2 * st->step;
        break;
    case V_CONST:
        break;
    }
    int64_t jitter = 0;
    if (o->jitter_ms > 0)
        jitter = (int64_t)(rng_next(&st->rng) % (2 * o->jitter_ms + 1)) - (int64_t)o->jitter_ms;
    s->value = st->v;
    s->timestamp = st->t0 + (int64_t)round * o->interval_s * 1000 + jitter;
}

struct enc_job {
    struct bench *b;
    uint32_t tid, nthreads;
    size_t bytes;
};

/* Encode every round of the batches b with b % nthreads == tid. */
static void *encode_thread(void *arg)
{
    struct enc_job *j = arg;
    struct bench *b = j->b;
    const struct opts *o = &b->o;
    struct enc_series *es = xcalloc(o->batch, sizeof *es);
    struct series_state *st = xcalloc(o->batch, sizeof *st);
    Prometheus__TimeSeries **tsp = xcalloc(o->batch, sizeof *tsp);
    size_t cap = 0;
    uint8_t *raw = NULL;
    for (uint64_t bi = j->tid; bi < b->nbatch; bi += j->nthreads) {
        uint64_t first = bi * o->batch;
        uint32_t n = (uint32_t)((o->series - first) < o->batch ? (o->series - first) : o->batch);
        for (uint32_t k = 0; k < n; k++) {
            series_init(o, first + k, &es[k], &st[k]);
            tsp[k] = &es[k].ts;
        }
        Prometheus__WriteRequest wr = PROMETHEUS__WRITE_REQUEST__INIT;
        wr.n_timeseries = n;
        wr.timeseries = tsp;
        for (uint32_t r = 0; r < o->samples; r++) {
            for (uint32_t k = 0; k < n; k++)
                series_next(o, &st[k], r, &es[k].smp);
            size_t need = prometheus__write_request__get_packed_size(&wr);
            if (need > cap) {
                obs_free(raw);
                cap = need * 2;
                raw = xcalloc(1, cap);
            }
            size_t len = prometheus__write_request__pack(&wr, raw);
            size_t clen = snappy_max_compressed_length(len);
            char *c = xcalloc(1, clen);
            if (snappy_compress((const char *)raw, len, c, &clen) != SNAPPY_OK) {
                fprintf(stderr, "rwgen: snappy_compress failed\n");
                exit(1);
            }
            char *shrunk = obs_realloc(c, clen);
            struct req *q = &b->reqs[(uint64_t)r * b->nbatch + bi];
            q->data = shrunk ? shrunk : c;
            q->len = clen;
            q->nsamples = n;
            j->bytes += clen;
        }
    }
    obs_free(raw);
    obs_free(tsp);
    obs_free(st);
    obs_free(es);
    return NULL;
}

/* ---------------------------------------------------------------- sending */

struct conn {
    struct bench *b;
    uint32_t id;
    char body[200]; /* start of the last reply body */
    size_t body_len;
};

static size_t on_body(char *p, size_t sz, size_t n, void *arg)
{
    struct conn *c = arg;
    size_t len = sz * n;
    size_t room = sizeof c->body - 1 - c->body_len;
    size_t k = len < room ? len : room;
    memcpy(c->body + c->body_len, p, k);
    c->body_len += k;
    c->body[c->body_len] = '\0';
    return len;
}

static void note_error(struct bench *b, long code, const char *msg)
{
    pthread_mutex_lock(&b->err_mu);
    if (b->first_err[0] == '\0') {
        b->first_code = code;
        snprintf(b->first_err, sizeof b->first_err, "%s", msg);
        size_t n = strlen(b->first_err);
        while (n > 0 && (b->first_err[n - 1] == '\n' || b->first_err[n - 1] == '\r' ||
                         b->first_err[n - 1] == ' '))
            b->first_err[--n] = '\0';
        for (char *p = b->first_err; *p; p++) /* keep the summary one logfmt line */
            if (*p == '"' || *p == '\n' || *p == '\r')
                *p = '\'';
    }
    pthread_mutex_unlock(&b->err_mu);
}

static void *send_thread(void *arg)
{
    struct conn *c = arg;
    struct bench *b = c->b;
    const struct opts *o = &b->o;
    CURL *h = curl_easy_init();
    if (h == NULL) {
        note_error(b, 0, "curl_easy_init failed");
        return NULL;
    }
    struct curl_slist *hdr = NULL;
    hdr = curl_slist_append(hdr, "Content-Encoding: snappy");
    hdr = curl_slist_append(hdr, "Content-Type: application/x-protobuf");
    hdr = curl_slist_append(hdr, "X-Prometheus-Remote-Write-Version: 0.1.0");
    hdr = curl_slist_append(hdr, "Expect:");
    curl_easy_setopt(h, CURLOPT_URL, o->url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "rwgen/0.1");
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, o->timeout_ms);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);

    double deadline = b->t_start + o->max_seconds;
    for (uint32_t r = 0; r < o->samples && !atomic_load(&b->stop); r++) {
        for (uint64_t bi = c->id; bi < b->nbatch; bi += o->conns) {
            uint64_t idx = (uint64_t)r * b->nbatch + bi;
            const struct req *q = &b->reqs[idx];
            if (atomic_load(&b->stop) || now_s() > deadline) {
                atomic_store(&b->stop, 1);
                break;
            }
            curl_easy_setopt(h, CURLOPT_POSTFIELDS, q->data);
            curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)q->len);
            long code = 0;
            CURLcode cc = CURLE_OK;
            double t0 = now_s();
            for (uint32_t attempt = 0; attempt <= o->retries; attempt++) {
                c->body_len = 0;
                c->body[0] = '\0';
                cc = curl_easy_perform(h);
                code = 0;
                if (cc == CURLE_OK)
                    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
                /* Prometheus' own sender retries 5xx and 429; so do we, with -retries. */
                if (cc == CURLE_OK && code != 429 && code < 500)
                    break;
                if (attempt < o->retries)
                    usleep(100000u << (attempt < 4 ? attempt : 4));
            }
            b->lat_ms[idx] = (now_s() - t0) * 1000.0;
            atomic_fetch_add(&b->sent_req, 1);
            if (cc != CURLE_OK) {
                atomic_fetch_add(&b->net_err, 1);
                note_error(b, 0, curl_easy_strerror(cc));
            } else if (code >= 200 && code < 300) {
                atomic_fetch_add(&b->ok_req, 1);
                atomic_fetch_add(&b->ok_samples, q->nsamples);
            } else {
                char msg[260];
                snprintf(msg, sizeof msg, "HTTP %ld: %s", code, c->body);
                atomic_fetch_add(&b->bad_req, 1);
                note_error(b, code, msg);
            }
        }
    }
    curl_slist_free_all(hdr);
    curl_easy_cleanup(h);
    return NULL;
}

static int dbl_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* ---------------------------------------------------------------- main */

static void usage(void)
{
    fprintf(stderr, "usage: rwgen -url=URL [-series=N] [-samples=M] [-batch=B] [-conns=K]\n"
                    "             [-interval=SECONDS] [-values=mixed|walk] [-seed=S] [-end-ms=MS]\n"
                    "             [-jitter-ms=J] [-encode-threads=T] [-max-seconds=S]\n"
                    "             [-timeout-ms=MS] [-retries=R] [-mix=exporters|promql] [-quiet]\n");
}

static int parse_u64(const char *name, const char *v, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (errno || end == v || (*end != '\0' && *end != 'k' && *end != 'M') || x < min) {
        fprintf(stderr, "rwgen: bad -%s=%s\n", name, v);
        return -1;
    }
    if (*end == 'k')
        x *= 1000;
    else if (*end == 'M')
        x *= 1000000;
    if (x > max) {
        fprintf(stderr, "rwgen: -%s=%s is above %" PRIu64 "\n", name, v, max);
        return -1;
    }
    *out = x;
    return 0;
}

static int parse_args(int argc, char **argv, struct opts *o)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        while (*a == '-')
            a++;
        const char *eq = strchr(a, '=');
        char name[64];
        size_t nl = eq ? (size_t)(eq - a) : strlen(a);
        if (nl >= sizeof name) {
            usage();
            return -1;
        }
        memcpy(name, a, nl);
        name[nl] = '\0';
        if (strcmp(name, "quiet") == 0) {
            o->quiet = 1;
            continue;
        }
        if (strcmp(name, "help") == 0 || strcmp(name, "h") == 0) {
            usage();
            exit(0);
        }
        const char *v = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
        if (v == NULL) {
            usage();
            return -1;
        }
        uint64_t x = 0;
        int rc = 0;
        if (strcmp(name, "url") == 0)
            o->url = v;
        else if (strcmp(name, "values") == 0) {
            if (strcmp(v, "walk") == 0)
                o->walk_only = 1;
            else if (strcmp(v, "mixed") == 0)
                o->walk_only = 0;
            else {
                fprintf(stderr, "rwgen: -values must be mixed or walk\n");
                return -1;
            }
        } else if (strcmp(name, "mix") == 0) {
            if (strcmp(v, "promql") == 0)
                o->mix_promql = 1;
            else if (strcmp(v, "exporters") == 0)
                o->mix_promql = 0;
            else {
                fprintf(stderr, "rwgen: -mix must be exporters or promql\n");
                return -1;
            }
        } else if (strcmp(name, "series") == 0) {
            rc = parse_u64(name, v, 1, 100000000, &o->series);
        } else if (strcmp(name, "samples") == 0) {
            rc = parse_u64(name, v, 1, 100000, &x);
            o->samples = (uint32_t)x;
        } else if (strcmp(name, "batch") == 0) {
            rc = parse_u64(name, v, 1, 1000000, &x);
            o->batch = (uint32_t)x;
        } else if (strcmp(name, "conns") == 0) {
            rc = parse_u64(name, v, 1, 1024, &x);
            o->conns = (uint32_t)x;
        } else if (strcmp(name, "interval") == 0) {
            rc = parse_u64(name, v, 1, 86400, &x);
            o->interval_s = (uint32_t)x;
        } else if (strcmp(name, "seed") == 0) {
            rc = parse_u64(name, v, 0, UINT64_MAX, &o->seed);
        } else if (strcmp(name, "end-ms") == 0) {
            rc = parse_u64(name, v, 1, (uint64_t)INT64_MAX, &x);
            o->end_ms = (int64_t)x;
        } else if (strcmp(name, "jitter-ms") == 0) {
            rc = parse_u64(name, v, 0, 1000, &x);
            o->jitter_ms = (uint32_t)x;
        } else if (strcmp(name, "encode-threads") == 0) {
            rc = parse_u64(name, v, 1, 256, &x);
            o->encode_threads = (uint32_t)x;
        } else if (strcmp(name, "max-seconds") == 0) {
            rc = parse_u64(name, v, 1, 86400, &x);
            o->max_seconds = (uint32_t)x;
        } else if (strcmp(name, "timeout-ms") == 0) {
            rc = parse_u64(name, v, 1, 3600000, &x);
            o->timeout_ms = (long)x;
        } else if (strcmp(name, "retries") == 0) {
            rc = parse_u64(name, v, 0, 100, &x);
            o->retries = (uint32_t)x;
        } else {
            fprintf(stderr, "rwgen: unknown flag -%s\n", name);
            usage();
            return -1;
        }
        if (rc)
            return -1;
    }
    if (o->url == NULL) {
        fprintf(stderr, "rwgen: -url is required\n");
        usage();
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct bench *b = xcalloc(1, sizeof *b);
    struct opts *o = &b->o;
    o->series = 100000;
    o->samples = 20;
    o->batch = 2000;
    o->conns = 16;
    o->interval_s = 15;
    o->seed = 1;
    o->jitter_ms = 2;
    o->max_seconds = 600;
    o->timeout_ms = 60000;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    o->encode_threads = ncpu > 0 ? (uint32_t)ncpu : 1;
    if (parse_args(argc, argv, o) != 0) {
        obs_free(b);
        return 2;
    }
    if (o->end_ms == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        o->end_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    }
    b->nbatch = (o->series + o->batch - 1) / o->batch;
    uint64_t nreq = b->nbatch * o->samples;
    b->reqs = xcalloc(nreq, sizeof *b->reqs);
    b->lat_ms = xcalloc(nreq, sizeof *b->lat_ms);
    pthread_mutex_init(&b->err_mu, NULL);

    /* 1. encode everything */
    double te = now_s();
    uint32_t nt = o->encode_threads;
    if (nt > b->nbatch)
        nt = (uint32_t)b->nbatch;
    pthread_t *th = xcalloc(nt > o->conns ? nt : o->conns, sizeof *th);
    struct enc_job *jobs_ = xcalloc(nt, sizeof *jobs_);
    for (uint32_t t = 0; t < nt; t++) {
        jobs_[t] = (struct enc_job){.b = b, .tid = t, .nthreads = nt};
        if (pthread_create(&th[t], NULL, encode_thread, &jobs_[t]) != 0) {
            fprintf(stderr, "rwgen: pthread_create failed\n");
            return 1;
        }
    }
    size_t bytes = 0;
    for (uint32_t t = 0; t < nt; t++) {
        pthread_join(th[t], NULL);
        bytes += jobs_[t].bytes;
    }
    double enc_s = now_s() - te;
    uint64_t total_samples = o->series * o->samples;
    if (!o->quiet)
        fprintf(stderr,
                "rwgen: encoded %" PRIu64 " requests (%" PRIu64 " series x %u samples, "
                "%.1f MiB snappy, %.1f B/sample) in %.2fs; sending on %u connections to %s\n",
                nreq, o->series, o->samples, (double)bytes / 1048576.0,
                (double)bytes / (double)total_samples, enc_s, o->conns, o->url);

    /* 2. send */
    curl_global_init(CURL_GLOBAL_DEFAULT);
    for (uint64_t i = 0; i < nreq; i++)
        b->lat_ms[i] = -1;
    struct conn *conns = xcalloc(o->conns, sizeof *conns);
    b->t_start = now_s();
    for (uint32_t k = 0; k < o->conns; k++) {
        conns[k].b = b;
        conns[k].id = k;
        if (pthread_create(&th[k], NULL, send_thread, &conns[k]) != 0) {
            fprintf(stderr, "rwgen: pthread_create failed\n");
            return 1;
        }
    }
    /* Progress while the senders run: poll the counters (bounded by max_seconds). */
    double last = b->t_start;
    uint64_t last_s = 0;
    while (atomic_load(&b->sent_req) < nreq && !atomic_load(&b->stop)) {
        usleep(100000);
        double t = now_s();
        if (t - last >= 5.0) {
            uint64_t s = atomic_load(&b->ok_samples);
            if (!o->quiet)
                fprintf(stderr,
                        "rwgen: %.0fs requests=%" PRIu64 "/%" PRIu64 " accepted=%" PRIu64
                        " (%.0f samples/s now) non2xx=%" PRIu64 " neterr=%" PRIu64 "\n",
                        t - b->t_start, (uint64_t)atomic_load(&b->sent_req), nreq, s,
                        (double)(s - last_s) / (t - last), (uint64_t)atomic_load(&b->bad_req),
                        (uint64_t)atomic_load(&b->net_err));
            last = t;
            last_s = s;
        }
        if (t > b->t_start + o->max_seconds + o->timeout_ms / 1000.0 + 5)
            break; /* senders stop on their own; this is a safety net */
    }
    for (uint32_t k = 0; k < o->conns; k++)
        pthread_join(th[k], NULL);
    double secs = now_s() - b->t_start;

    /* 3. report */
    uint64_t sent = atomic_load(&b->sent_req);
    double *lat = xcalloc(sent ? sent : 1, sizeof *lat);
    uint64_t nl = 0;
    for (uint64_t i = 0; i < nreq && nl < sent; i++)
        if (b->lat_ms[i] >= 0)
            lat[nl++] = b->lat_ms[i];
    qsort(lat, nl, sizeof *lat, dbl_cmp);
    double p50 = nl ? lat[nl / 2] : 0, p99 = nl ? lat[(nl * 99) / 100] : 0;
    double pmax = nl ? lat[nl - 1] : 0;
    uint64_t acc = atomic_load(&b->ok_samples);
    uint64_t bad = atomic_load(&b->bad_req), ne = atomic_load(&b->net_err);
    printf("requests=%" PRIu64 " ok=%" PRIu64 " non2xx=%" PRIu64 " neterr=%" PRIu64
           " unsent=%" PRIu64 " samples=%" PRIu64 " accepted=%" PRIu64
           " seconds=%.3f samples_per_sec=%.0f bytes=%zu encode_seconds=%.2f"
           " lat_p50_ms=%.1f lat_p99_ms=%.1f lat_max_ms=%.1f first_code=%ld"
           " first_error=\"%s\"\n",
           nreq, (uint64_t)atomic_load(&b->ok_req), bad, ne, nreq - sent, total_samples, acc, secs,
           secs > 0 ? (double)acc / secs : 0.0, bytes, enc_s, p50, p99, pmax, b->first_code,
           b->first_err);
    fflush(stdout);
    curl_global_cleanup();
    for (uint64_t i = 0; i < nreq; i++)
        obs_free(b->reqs[i].data);
    obs_free(b->reqs);
    obs_free(b->lat_ms);
    obs_free(lat);
    obs_free(conns);
    obs_free(jobs_);
    obs_free(th);
    pthread_mutex_destroy(&b->err_mu);
    obs_free(b);
    return (bad == 0 && ne == 0 && sent == nreq) ? 0 : 1;
}
