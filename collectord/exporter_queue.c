/*
 * exporter_queue.c -- the sending queue and retry loop shared by the otlp and otlphttp
 * exporters (the Collector's exporterhelper), in memory or persistent.
 *
 *   sending_queue:    {enabled: true, num_consumers: 1, queue_size: 1000,   (batches)
 *                      storage: file_storage[/name]}                       (persistent)
 *   retry_on_failure: {enabled: true, initial_interval: 5s, max_interval: 30s,
 *                      max_elapsed_time: 300s}
 *
 * push() runs on the loop: a full queue refuses the batch (the receiver turns that into a
 * retryable error for its client). Consumer threads take batches in order and call the
 * exporter's send(); OBS_ERETRY is retried with exponential backoff (doubling, capped at
 * max_interval) until max_elapsed_time, OBS_EFATAL and expired retries drop the batch (logged
 * and counted). With sending_queue disabled the queue still exists but holds one batch per
 * consumer, so the loop is still never blocked by a slow peer.
 *
 * Persistent queue (storage set): the queue is a WAL (common/wal, CRC32C records) in the
 * storage extension's directory. push() appends a data record and fsyncs before returning
 * 0, so the receiver acknowledges only data on disk (the loop waits for the fsync; that is
 * the price of the 2xx rule). A delivered (or dropped) batch gets an ack record, written
 * without fsync: after a crash an unsynced ack only means the batch is sent again
 * (at-least-once, duplicates possible, as in the Collector). Records:
 *   data: 'D' u8 signal, u64le seq, u64le items, serialized request
 *   ack:  'A' u64le seq
 * Sequence numbers grow by one per push. On open the WAL is replayed: data records not
 * followed by their ack are queued again in order (a torn tail from a crash is cut by the
 * WAL). Then, and whenever the WAL has grown past two segments while holding less than half
 * live data, a checkpoint rewrites the unacknowledged data records into a fresh segment and
 * deletes the older ones. A checkpoint cut short by a crash leaves copies of records already
 * seen; replay skips any data record whose seq is not above the highest seen so far.
 * At shutdown a persistent queue sends what it can while the peer answers; at the first
 * failure it stops and keeps the rest on disk for the next start (nothing is dropped
 * "because shutting down", and a down peer does not delay the shutdown).
 *
 * Batching on the dequeue side (o->batch_items > 0, set for exporters of a pipeline whose
 * batch processor passes requests through because the pipeline is durable): a consumer
 * waits up to batch_timeout_ms after the oldest queued batch for batch_items items, then
 * merges consecutive queued batches of the same signal (byte concatenation of serialized
 * requests, as the batch processor does) up to batch_max_items items and 4 MiB; all merged
 * batches are acknowledged together once the merged request is delivered.
 *
 * Locking: mu guards the ring; wal_mu serialises WAL use (obs_wal is single-owner). Order:
 * wal_mu before mu. Pushes hold wal_mu across append+fsync so sequence numbers, WAL order and
 * ring order agree.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <pthread.h>
#include <time.h>

#include "cld.h"
#include "core/obs_log.h"
#include "core/obs_mem.h"
#include "core/obs_sbuf.h"
#include "core/obs_time.h"
#include "metrics/obs_metrics.h"
#include "wal/obs_wal.h"

#define MAX_CONSUMERS 16
#define MERGE_MAX_BYTES (4u << 20)
#define DEFAULT_SEGMENT (8u << 20)

const struct obs_cfmap cld_retry_map[] = {
    {"enabled", OBS_CFT_BOOL, "true", offsetof(struct cld_retry_cfg, enabled), "Retry."},
    {"initial_interval", OBS_CFT_DURATION, "5s",
     offsetof(struct cld_retry_cfg, initial_interval_ms), "First backoff."},
    {"max_interval", OBS_CFT_DURATION, "30s", offsetof(struct cld_retry_cfg, max_interval_ms),
     "Longest backoff."},
    {"max_elapsed_time", OBS_CFT_DURATION, "300s",
     offsetof(struct cld_retry_cfg, max_elapsed_ms), "Give up after (0 = never)."},
    {"multiplier", OBS_CFT_IGNORE, NULL, 0, "Accepted (fixed at 2)."},
    {"randomization_factor", OBS_CFT_IGNORE, NULL, 0, "Accepted (no jitter)."},
    {NULL},
};

const struct obs_cfmap cld_queue_map[] = {
    {"enabled", OBS_CFT_BOOL, "true", offsetof(struct cld_queue_cfg, enabled), "Queue."},
    {"num_consumers", OBS_CFT_INT, "1", offsetof(struct cld_queue_cfg, num_consumers),
     "Sender threads."},
    {"queue_size", OBS_CFT_INT, "1000", offsetof(struct cld_queue_cfg, queue_size),
     "Batches held before new data is refused."},
    {"storage", OBS_CFT_STR, NULL, offsetof(struct cld_queue_cfg, storage),
     "file_storage extension id: the queue is persistent (WAL, fsynced before the ack)."},
    {"sizer", OBS_CFT_IGNORE, NULL, 0, "Accepted (requests)."},
    {"blocking", OBS_CFT_IGNORE, NULL, 0, "Accepted (a full queue refuses data)."},
    {NULL},
};

enum ent_state { ENT_QUEUED, ENT_INFLIGHT, ENT_DONE };

struct ent {
    struct cld_batch *b;
    uint64_t seq;
    int64_t t_ms;   /* when queued (monotonic) */
    int state;
};

struct cld_equeue {
    char *id;
    struct cld_queue_cfg qc;
    struct cld_retry_cfg rc;
    cld_send_fn send;
    void *arg;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct ent *ring;
    size_t cap, head, n;   /* n entries from head: nclaimed in flight or done, then queued */
    size_t nclaimed;
    size_t queued_items;
    int stop;
    int abandon;           /* persistent, stopping: leave the rest on disk */
    int64_t drain_deadline_ms;
    pthread_t thr[MAX_CONSUMERS];
    int nthr;
    /* batching on the dequeue side */
    size_t batch_items, batch_max_items;
    int64_t batch_timeout_ms;
    /* persistent */
    pthread_mutex_t wal_mu;
    struct obs_wal *wal;
    size_t seg_bytes;
    uint64_t next_seq;
    uint64_t live_bytes;   /* payload bytes of unacknowledged data records */
    struct obs_mchild *m_sent, *m_failed, *m_enqueue_failed, *m_qsize;
};

static int64_t mono_ms(void) { return obs_mono_ns() / 1000000; }

static void wait_ms(struct cld_equeue *q, int64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    pthread_cond_timedwait(&q->cv, &q->mu, &ts);
}

static struct ent *ent_at(struct cld_equeue *q, size_t i)
{
    return &q->ring[(q->head + i) % q->cap];
}

/* ---- WAL records ------------------------------------------------------------------------ */

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

#define DATA_HDR 18 /* 'D', signal, seq, items */

/* Append a data record for b (wal_mu held). */
static int wal_put_data(struct cld_equeue *q, const struct cld_batch *b, uint64_t seq)
{
    uint8_t *rec = obs_malloc(DATA_HDR + b->len);
    if (!rec)
        return OBS_ENOMEM;
    rec[0] = 'D';
    rec[1] = (uint8_t)b->sig;
    put64(rec + 2, seq);
    put64(rec + 10, (uint64_t)b->items);
    if (b->len)
        memcpy(rec + DATA_HDR, b->data, b->len);
    int rc = obs_wal_append(q->wal, rec, DATA_HDR + b->len);
    obs_free(rec);
    return rc;
}

static int wal_put_ack(struct cld_equeue *q, uint64_t seq)
{
    uint8_t rec[9];
    rec[0] = 'A';
    put64(rec + 1, seq);
    return obs_wal_append(q->wal, rec, sizeof rec);
}

/* Rewrite every unacknowledged batch into a fresh segment and drop older segments
 * (wal_mu held; takes mu). */
static int checkpoint(struct cld_equeue *q)
{
    int rc = obs_wal_checkpoint_begin(q->wal);
    pthread_mutex_lock(&q->mu);
    for (size_t i = 0; rc == 0 && i < q->n; i++) {
        struct ent *e = ent_at(q, i);
        if (e->state != ENT_DONE)
            rc = wal_put_data(q, e->b, e->seq);
    }
    pthread_mutex_unlock(&q->mu);
    if (rc == 0)
        rc = obs_wal_checkpoint_end(q->wal);
    if (rc < 0)
        obs_clog_error(q->id, "persistent queue checkpoint failed\terror=%d", rc);
    return rc;
}

/* Replay state: batches recovered so far, in seq order. */
struct recovery {
    struct cld_equeue *q;
    struct ent *ents;
    size_t n, cap;
    uint64_t max_seq;
    int any;
    size_t bad;
};

static struct ent *rec_find(struct recovery *r, uint64_t seq)
{
    size_t lo = 0, hi = r->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (r->ents[mid].seq < seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < r->n && r->ents[lo].seq == seq ? &r->ents[lo] : NULL;
}

static int on_record(const uint8_t *rec, size_t len, void *arg)
{
    struct recovery *r = arg;
    if (len == 9 && rec[0] == 'A') {
        struct ent *e = rec_find(r, get64(rec + 1));
        if (e && e->b) {
            cld_batch_free(e->b);
            e->b = NULL;
        }
        return 0;
    }
    if (len < DATA_HDR || rec[0] != 'D' || rec[1] >= CLD_NSIGNALS) {
        r->bad++;
        return 0;
    }
    uint64_t seq = get64(rec + 2);
    if (r->any && seq <= r->max_seq) /* copy from an interrupted checkpoint */
        return 0;
    if (r->n == r->cap) {
        size_t nc = r->cap ? r->cap * 2 : 64;
        struct ent *ne = obs_realloc(r->ents, nc * sizeof(*ne));
        if (!ne)
            return OBS_ENOMEM;
        r->ents = ne;
        r->cap = nc;
    }
    struct cld_batch *b = cld_batch_new((enum cld_signal)rec[1], rec + DATA_HDR, len - DATA_HDR,
                                        (size_t)get64(rec + 10));
    if (!b)
        return OBS_ENOMEM;
    r->ents[r->n++] = (struct ent){.b = b, .seq = seq, .state = ENT_QUEUED};
    r->max_seq = seq;
    r->any = 1;
    return 0;
}

/* Open the WAL and load what a previous run left undelivered into the ring. */
static int persist_open(struct cld_equeue *q, const struct cld_equeue_opts *o,
                        struct obs_err *err)
{
    struct obs_wal_opts wo = {.dir = o->dir,
                              .segment_bytes = q->seg_bytes,
                              .no_fsync = o->no_fsync};
    q->wal = obs_wal_open(&wo, err);
    if (!q->wal)
        return err && err->code ? err->code : OBS_EIO;
    struct recovery r = {.q = q};
    struct obs_err rerr = {0};
    int rc = obs_wal_replay(q->wal, on_record, &r, &rerr);
    if (rc == OBS_ECORRUPT) {
        obs_clog_error(q->id, "persistent queue: corrupt record, later records lost\t"
                              "error=\"%s\"", rerr.msg);
        rc = 0;
    }
    if (rc == 0 && r.bad)
        obs_clog_warn(q->id, "persistent queue: skipped unknown records\tcount=%zu", r.bad);
    size_t live = 0;
    for (size_t i = 0; i < r.n; i++)
        live += r.ents[i].b != NULL;
    if (rc == 0 && live > q->cap) { /* queue_size lowered since: keep everything */
        struct ent *nr = obs_realloc(q->ring, live * sizeof(*nr));
        if (!nr)
            rc = OBS_ENOMEM;
        else {
            q->ring = nr;
            q->cap = live;
        }
    }
    for (size_t i = 0; i < r.n; i++) {
        struct ent *e = &r.ents[i];
        if (!e->b)
            continue;
        if (rc == 0) {
            e->t_ms = mono_ms();
            q->ring[q->n++] = *e;
            q->queued_items += e->b->items;
            q->live_bytes += e->b->len;
        } else {
            cld_batch_free(e->b);
        }
    }
    obs_free(r.ents);
    q->next_seq = r.any ? r.max_seq + 1 : 1;
    if (rc < 0)
        return obs_err_set(err, rc, "%s: persistent queue %s: %s", q->id, o->dir,
                           rerr.msg[0] ? rerr.msg : "cannot load");
    if (q->n)
        obs_clog_info(q->id, "persistent queue: resending undelivered batches\tbatches=%zu "
                             "items=%zu dir=%s",
                      q->n, q->queued_items, o->dir);
    /* start from a compact WAL: only the live records */
    if (checkpoint(q) < 0)
        return obs_err_set(err, OBS_EIO, "%s: persistent queue %s: checkpoint failed", q->id,
                           o->dir);
    return 0;
}

/* Record delivery (or drop) of the batches numbered seqs[0..cnt) holding bytes payload
 * bytes, and checkpoint when the WAL is mostly dead records (no lock held). */
static void persist_ack(struct cld_equeue *q, const uint64_t *seqs, size_t cnt, size_t bytes)
{
    if (!q->wal)
        return;
    pthread_mutex_lock(&q->wal_mu);
    int rc = 0;
    for (size_t i = 0; i < cnt && rc == 0; i++)
        rc = wal_put_ack(q, seqs[i]);
    if (rc < 0)
        obs_clog_warn(q->id, "persistent queue: cannot record delivery (batches will be sent "
                             "again after a restart)\terror=%d",
                      rc);
    q->live_bytes -= bytes <= q->live_bytes ? bytes : q->live_bytes;
    uint64_t size = obs_wal_size(q->wal);
    if (size > 2 * (uint64_t)q->seg_bytes && q->live_bytes < size / 2)
        checkpoint(q);
    pthread_mutex_unlock(&q->wal_mu);
}

/* ---- consumers -------------------------------------------------------------------------- */

/* Mark claimed entries done and retire the done prefix (mu held). */
static void finish(struct cld_equeue *q, size_t first, size_t cnt)
{
    for (size_t i = 0; i < cnt; i++)
        ent_at(q, first + i)->state = ENT_DONE;
    while (q->n && q->ring[q->head].state == ENT_DONE) {
        cld_batch_free(q->ring[q->head].b);
        q->ring[q->head].b = NULL;
        q->head = (q->head + 1) % q->cap;
        q->n--;
        q->nclaimed--;
    }
    obs_mchild_set(q->m_qsize, (double)q->n);
}

/* Wait for a full batch or the oldest queued batch's timeout (mu held). Returns 1 when
 * queued data should be taken now. */
static int batch_ready(struct cld_equeue *q)
{
    if (q->nclaimed == q->n)
        return 0;
    if (!q->batch_items || q->stop || q->queued_items >= q->batch_items ||
        q->batch_timeout_ms <= 0)
        return 1;
    int64_t due = ent_at(q, q->nclaimed)->t_ms + q->batch_timeout_ms;
    int64_t now = mono_ms();
    if (now >= due)
        return 1;
    wait_ms(q, due - now);
    return 0; /* re-check: another consumer may have taken it */
}

static void *consumer(void *arg)
{
    struct cld_equeue *q = arg;
    uint64_t *seqs = NULL;
    size_t seqcap = 0;
    pthread_mutex_lock(&q->mu);
    for (;;) {
        while (q->nclaimed == q->n && !q->stop)
            pthread_cond_wait(&q->cv, &q->mu);
        if (q->nclaimed == q->n || q->abandon)
            break;
        if (!batch_ready(q))
            continue;
        /* claim a run of queued batches */
        size_t first = q->nclaimed, cnt = 1;
        struct ent *e0 = ent_at(q, first);
        uint64_t seq0 = e0->seq;
        size_t items = e0->b->items, bytes = e0->b->len;
        size_t max = q->batch_max_items ? q->batch_max_items : q->batch_items;
        while (q->batch_items && first + cnt < q->n) {
            struct ent *e = ent_at(q, first + cnt);
            if (e->b->sig != e0->b->sig || (max && items + e->b->items > max) ||
                bytes + e->b->len > MERGE_MAX_BYTES)
                break;
            items += e->b->items;
            bytes += e->b->len;
            cnt++;
        }
        if (cnt > seqcap) {
            uint64_t *ns = obs_realloc(seqs, cnt * sizeof(*ns));
            if (!ns) {
                cnt = 1;
                items = e0->b->items;
                bytes = e0->b->len;
            } else {
                seqs = ns;
                seqcap = cnt;
            }
        }
        for (size_t i = 0; i < cnt; i++) {
            struct ent *e = ent_at(q, first + i);
            e->state = ENT_INFLIGHT;
            if (seqs)
                seqs[i] = e->seq;
        }
        q->nclaimed += cnt;
        q->queued_items -= items;
        struct cld_batch merged = {.sig = e0->b->sig, .items = items, .len = bytes};
        const struct cld_batch *b = e0->b;
        if (cnt > 1) {
            merged.data = obs_malloc(bytes);
            if (merged.data) {
                size_t off = 0;
                for (size_t i = 0; i < cnt; i++) {
                    struct ent *e = ent_at(q, first + i);
                    memcpy(merged.data + off, e->b->data, e->b->len);
                    off += e->b->len;
                }
                b = &merged;
            } else { /* send one at a time: give the rest back */
                for (size_t i = 1; i < cnt; i++) {
                    ent_at(q, first + i)->state = ENT_QUEUED;
                    q->queued_items += ent_at(q, first + i)->b->items;
                }
                q->nclaimed -= cnt - 1;
                cnt = 1;
                items = b->items;
                bytes = b->len;
            }
        }
        int64_t start = mono_ms();
        int64_t delay = q->rc.initial_interval_ms > 0 ? q->rc.initial_interval_ms : 5000;
        int keep = 0; /* persistent and stopping: leave on disk */
        for (;;) {
            pthread_mutex_unlock(&q->mu);
            int rc = q->send(q->arg, b);
            pthread_mutex_lock(&q->mu);
            if (rc == 0) {
                obs_mchild_add(q->m_sent, (double)items);
                break;
            }
            int64_t now = mono_ms();
            const char *why = NULL;
            if (rc != OBS_ERETRY)
                why = "permanent error";
            else if (!q->rc.enabled)
                why = "retry disabled";
            else if (q->rc.max_elapsed_ms && now + delay - start > q->rc.max_elapsed_ms)
                why = "max_elapsed_time reached";
            else if (q->stop && (q->wal || now + delay > q->drain_deadline_ms))
                why = "shutting down";
            if (why && q->wal && !strcmp(why, "shutting down")) {
                obs_clog_info(q->id, "Shutting down; undelivered data stays in the persistent "
                                     "queue\titems=%zu",
                              items);
                keep = 1;
                break;
            }
            if (why) {
                obs_clog_error(q->id, "Exporting failed. Dropping data.\treason=\"%s\" "
                                      "dropped_items=%zu",
                               why, items);
                obs_mchild_add(q->m_failed, (double)items);
                break;
            }
            obs_clog_info(q->id, "Exporting failed. Will retry the request after interval.\t"
                                 "interval_ms=%lld",
                          (long long)delay);
            /* pushes wake the condition too: sleep out the whole backoff (a persistent
             * queue that is stopping tries once more and keeps the rest on disk) */
            int64_t until = mono_ms() + delay;
            for (int64_t left = delay; left > 0 && !(q->stop && q->wal); left = until - mono_ms())
                wait_ms(q, left);
            int64_t maxi = q->rc.max_interval_ms > 0 ? q->rc.max_interval_ms : 30000;
            delay = delay * 2 < maxi ? delay * 2 : maxi;
        }
        obs_free(merged.data);
        if (keep) {
            q->abandon = 1;
            pthread_cond_broadcast(&q->cv);
            break;
        }
        /* first was relative to head, which other consumers may have moved: find it */
        size_t idx = 0;
        while (idx < q->n && ent_at(q, idx)->seq != seq0)
            idx++;
        finish(q, idx, cnt);
        pthread_cond_broadcast(&q->cv);
        if (q->wal) { /* the batches are done; record that (a crash before: sent again) */
            pthread_mutex_unlock(&q->mu);
            persist_ack(q, seqs ? seqs : &seq0, seqs ? cnt : 1, bytes);
            pthread_mutex_lock(&q->mu);
        }
    }
    pthread_mutex_unlock(&q->mu);
    obs_free(seqs);
    return NULL;
}

/* ---- API ---------------------------------------------------------------------------------- */

/* One exporter-labelled child of a self-metric family; NULL without a registry (tests). */
static struct obs_mchild *metric(struct obs_metrics *m, enum obs_mtype t, const char *name,
                                 const char *help, const char *id)
{
    struct obs_mfamily *f = m ? obs_metrics_family(m, t, name, help, "exporter", NULL, 0) : NULL;
    return f ? obs_mfamily_with(f, id) : NULL;
}

struct cld_equeue *cld_equeue_open(const char *id, const struct cld_queue_cfg *qc,
                                   const struct cld_retry_cfg *rc,
                                   const struct cld_equeue_opts *o, cld_send_fn send, void *arg,
                                   struct obs_metrics *m, struct obs_err *err)
{
    static const struct cld_equeue_opts none = {0};
    if (!o)
        o = &none;
    struct cld_equeue *q = obs_calloc(1, sizeof(*q));
    if (!q || !(q->id = obs_strdup(id))) {
        obs_free(q);
        obs_err_set(err, OBS_ENOMEM, "out of memory");
        return NULL;
    }
    q->qc = *qc;
    q->qc.storage = NULL; /* owned by the exporter's config */
    q->rc = *rc;
    q->send = send;
    q->arg = arg;
    q->batch_items = o->batch_items;
    q->batch_max_items = o->batch_max_items;
    q->batch_timeout_ms = o->batch_timeout_ms;
    q->seg_bytes = o->segment_bytes ? o->segment_bytes : DEFAULT_SEGMENT;
    q->next_seq = 1;
    int consumers = qc->num_consumers > 0 ? (int)qc->num_consumers : 1;
    if (consumers > MAX_CONSUMERS)
        consumers = MAX_CONSUMERS;
    q->cap = qc->enabled ? (size_t)(qc->queue_size > 0 ? qc->queue_size : 1000)
                         : (size_t)consumers;
    q->ring = obs_calloc(q->cap, sizeof(*q->ring));
    if (!q->ring) {
        obs_free(q->id);
        obs_free(q);
        obs_err_set(err, OBS_ENOMEM, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&q->mu, NULL);
    pthread_mutex_init(&q->wal_mu, NULL);
    pthread_cond_init(&q->cv, NULL);
    if (o->dir && o->dir[0] && persist_open(q, o, err) < 0) {
        cld_equeue_free(q, 0);
        return NULL;
    }
    q->m_sent = metric(m, OBS_MCOUNTER, "otelcol_exporter_sent_items_total",
                       "Items successfully sent by an exporter.", id);
    q->m_failed = metric(m, OBS_MCOUNTER, "otelcol_exporter_send_failed_items_total",
                         "Items an exporter dropped after failing to send them.", id);
    q->m_enqueue_failed = metric(m, OBS_MCOUNTER, "otelcol_exporter_enqueue_failed_items_total",
                                 "Items refused because the sending queue was full.", id);
    q->m_qsize = metric(m, OBS_MGAUGE, "otelcol_exporter_queue_size",
                        "Batches waiting in the sending queue.", id);
    obs_mchild_set(q->m_qsize, (double)q->n);
    for (int i = 0; i < consumers; i++) {
        if (pthread_create(&q->thr[i], NULL, consumer, q) != 0) {
            obs_err_set(err, OBS_EIO, "cannot start exporter thread");
            cld_equeue_free(q, 0);
            return NULL;
        }
        q->nthr++;
    }
    return q;
}

struct cld_equeue *cld_equeue_new(const char *id, const struct cld_queue_cfg *qc,
                                  const struct cld_retry_cfg *rc, cld_send_fn send, void *arg,
                                  struct obs_metrics *m, struct obs_err *err)
{
    return cld_equeue_open(id, qc, rc, NULL, send, arg, m, err);
}

static int refuse(struct cld_equeue *q, struct cld_batch *b, const char *why)
{
    obs_mchild_add(q->m_enqueue_failed, (double)b->items);
    obs_clog_warn(q->id, "%s, refusing data\titems=%zu", why, b->items);
    cld_batch_free(b);
    return OBS_ELIMIT;
}

int cld_equeue_push(struct cld_equeue *q, struct cld_batch *b)
{
    if (q->wal)
        pthread_mutex_lock(&q->wal_mu);
    pthread_mutex_lock(&q->mu);
    int full = q->n == q->cap || q->stop;
    pthread_mutex_unlock(&q->mu);
    uint64_t seq = 0;
    if (!full && q->wal) {
        seq = q->next_seq++;
        int rc = wal_put_data(q, b, seq);
        if (rc == 0)
            rc = obs_wal_sync(q->wal);
        if (rc < 0) {
            pthread_mutex_unlock(&q->wal_mu);
            return refuse(q, b, "Cannot write the persistent queue");
        }
        q->live_bytes += b->len;
    }
    if (full) {
        if (q->wal)
            pthread_mutex_unlock(&q->wal_mu);
        return refuse(q, b, "Sending queue is full");
    }
    pthread_mutex_lock(&q->mu);
    if (!q->wal)
        seq = q->next_seq++;
    *ent_at(q, q->n) = (struct ent){.b = b, .seq = seq, .t_ms = mono_ms(), .state = ENT_QUEUED};
    q->n++;
    q->queued_items += b->items;
    obs_mchild_set(q->m_qsize, (double)q->n);
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
    if (q->wal)
        pthread_mutex_unlock(&q->wal_mu);
    return 0;
}

size_t cld_equeue_pending(struct cld_equeue *q)
{
    pthread_mutex_lock(&q->mu);
    size_t n = q->n;
    pthread_mutex_unlock(&q->mu);
    return n;
}

void cld_equeue_free(struct cld_equeue *q, int drain_ms)
{
    if (!q)
        return;
    pthread_mutex_lock(&q->mu);
    q->stop = 1;
    q->drain_deadline_ms = mono_ms() + drain_ms;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
    for (int i = 0; i < q->nthr; i++)
        pthread_join(q->thr[i], NULL);
    while (q->n) { /* persistent: still in the WAL for the next start */
        cld_batch_free(q->ring[q->head].b);
        q->head = (q->head + 1) % q->cap;
        q->n--;
    }
    obs_wal_close(q->wal);
    pthread_mutex_destroy(&q->mu);
    pthread_mutex_destroy(&q->wal_mu);
    pthread_cond_destroy(&q->cv);
    obs_free(q->ring);
    obs_free(q->id);
    obs_free(q);
}

/* ---- exporter helpers -------------------------------------------------------------------- */

int cld_queue_storage(struct cld_instance *ins, const struct cld_queue_cfg *qc, char *dir,
                      size_t cap, struct obs_err *err)
{
    dir[0] = 0;
    if (!qc->enabled || !qc->storage)
        return 0;
    const struct obs_cf_node *node = obs_cf_get(obs_cf_get(ins->cfg, "sending_queue"), "storage");
    struct cld_collector *c = ins->col;
    const struct cld_instance *ext = NULL;
    for (size_t i = 0; c && i < c->ninst; i++)
        if (c->inst[i] && c->inst[i]->p->kind == CLD_EXTENSION &&
            !strcmp(c->inst[i]->id, qc->storage))
            ext = c->inst[i];
    if (!ext)
        return obs_cf_error(err, node, "%s: storage extension \"%s\" not found (define it under "
                                       "extensions and list it in service.extensions)",
                            ins->id, qc->storage);
    const char *base = cld_file_storage_dir(ext);
    if (!base)
        return obs_cf_error(err, node, "%s: extension \"%s\" is not a storage extension",
                            ins->id, qc->storage);
    int n = snprintf(dir, cap, "%s/exporter_%s", base, ins->id);
    if (n < 0 || (size_t)n >= cap)
        return obs_cf_error(err, node, "%s: storage path too long", ins->id);
    for (char *p = dir + strlen(base) + 1; *p; p++)
        if (*p == '/')
            *p = '_';
    ins->durable = 1;
    return 0;
}

struct cld_equeue *cld_queue_start(struct cld_instance *ins, const struct cld_queue_cfg *qc,
                                   const struct cld_retry_cfg *rc, const char *dir,
                                   cld_send_fn send, void *arg, struct obs_err *err)
{
    struct cld_equeue_opts o = {
        .dir = dir && dir[0] ? dir : NULL,
        .batch_items = ins->batch_items,
        .batch_max_items = ins->batch_max_items,
        .batch_timeout_ms = ins->batch_timeout_ms,
    };
    return cld_equeue_open(ins->id, qc, rc, &o, send, arg,
                           ins->col && ins->col->ctx ? ins->col->ctx->metrics : NULL, err);
}
