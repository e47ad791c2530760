/*
 * tailer.c -- Promtail's job: tail files matched by __path__ globs and push their lines to
 * Loki push endpoints, advancing the positions file only after a push was acknowledged.
 *
 * One thread does everything for logs, in a loop every poll interval (250 ms):
 *   1. glob(3) every target's __path__ and open newly matched files, resuming at the saved
 *      offset when the positions file names the same device/inode, else at 0;
 *   2. for each open file, detect rotation and truncation, then read what was appended and
 *      cut it into lines (a trailing partial line waits for its newline);
 *   3. push the batch when it reaches batchsize bytes or its oldest line is batchwait old;
 *   4. write the positions file every sync_period.
 * Pushing blocks the reader (back-pressure, as Promtail's channel does): the batch is encoded
 * once as a Loki PushRequest (protobuf, snappy) and POSTed to every client with exponential
 * backoff on connection errors, 429 and 5xx. A 4xx other than 429 drops the batch (logged), as
 * Promtail does. Only when every client answered do the files' acknowledged offsets move.
 *
 * Rotation: rename + create (the path now names another inode, or nothing): the old fd is read
 * to EOF, the batch is pushed, and the old file closed; the new file is then opened at 0.
 * copytruncate (the file got shorter than our offset): the batch is pushed, then reading
 * restarts at 0. This ordering keeps "every line exactly once" across restarts as long as
 * pushes succeed; a crash between a successful push and its positions sync repeats at most
 * one sync period of lines (the same guarantee Promtail gives).
 */
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agd.h"
#include "app/obs_app.h"
#include "core/obs_log.h"
#include "core/obs_mem.h"
#include "core/obs_time.h"
#include "http/obs_http.h"
#include "metrics/obs_metrics.h"
#include "proto/loki_push.pb-c.h"

#define COMP "tailer"
#define POLL_MS 250
#define READ_CHUNK (256 * 1024)
#define MAX_LINE (256 * 1024)
#define FINAL_FLUSH_MS 5000

struct target {
    const char *glob;        /* borrowed from config */
    const struct agd_kv *kv; /* static labels (borrowed) */
};

struct tfile {
    char *path;
    int fd;
    uint64_t dev, ino;
    int64_t read_off;   /* next byte to read */
    int64_t acked;      /* acknowledged offset */
    struct obs_sbuf partial;
    struct obs_label *labels; /* sorted; owned names/values except borrowed config strings */
    size_t nlabels;
    char *filename_label;
    int64_t last_ts_ns;
    int seen;
};

struct entry {
    struct tfile *f;
    int64_t ts_ns;
    char *line;
    size_t len;
    int64_t end_off;
};

struct agd_logs {
    struct agd *a;
    struct agd_positions *pos;
    pthread_t thr;
    int started;
    atomic_int stop;
    pthread_mutex_t mu;
    pthread_cond_t cv;

    struct target *targets;
    size_t ntargets;
    struct tfile **files;
    size_t nfiles, capfiles;

    struct entry *batch;
    size_t nbatch, capbatch;
    size_t batch_bytes;
    int64_t batch_first_ms; /* monotonic ms of the oldest line */
    int64_t batchwait_ms, batchsize;

    struct obs_mchild *m_lines, *m_bytes, *m_sent, *m_dropped, *m_retries, *m_files,
        *m_requests_ok, *m_requests_fail;
};

static int64_t mono_ms(void) { return obs_mono_ns() / 1000000; }

/* Sleep up to ms unless stop is requested. Returns 1 when stopping. */
static int nap(struct agd_logs *L, int64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&L->mu);
    while (!atomic_load(&L->stop))
        if (pthread_cond_timedwait(&L->cv, &L->mu, &ts) == ETIMEDOUT)
            break;
    pthread_mutex_unlock(&L->mu);
    return atomic_load(&L->stop);
}

int64_t agd_backoff_ms(const struct agd_backoff_cfg *b, int attempt)
{
    int64_t d = b->min_period_ms > 0 ? b->min_period_ms : 500;
    int64_t max = b->max_period_ms > 0 ? b->max_period_ms : 300000;
    for (int i = 0; i < attempt && d < max; i++)
        d *= 2;
    return d < max ? d : max;
}

/* ---- stream labels --------------------------------------------------------------------- */

static int label_cmp(const void *a, const void *b)
{
    return strcmp(((const struct obs_label *)a)->name, ((const struct obs_label *)b)->name);
}

/* Append a Loki stream selector for f's labels plus a client's external labels. */
static void selector(struct obs_sbuf *b, const struct tfile *f, const struct agd_kv *ext)
{
    struct obs_label tmp[128];
    size_t n = 0;
    for (size_t i = 0; i < f->nlabels && n < 128; i++)
        tmp[n++] = f->labels[i];
    for (size_t i = 0; ext && i < ext->n && n < 128; i++) {
        if (obs_labels_get(tmp, n, ext->v[i].name))
            continue; /* the target's own label wins */
        tmp[n++] = ext->v[i];
    }
    qsort(tmp, n, sizeof(tmp[0]), label_cmp);
    obs_sbuf_putc(b, '{');
    for (size_t i = 0; i < n; i++) {
        if (i)
            obs_sbuf_puts(b, ", ");
        obs_sbuf_printf(b, "%s=\"", tmp[i].name);
        for (const char *v = tmp[i].value; *v; v++) {
            if (*v == '"' || *v == '\\')
                obs_sbuf_putc(b, '\\');
            if (*v == '\n')
                obs_sbuf_puts(b, "\\n");
            else
                obs_sbuf_putc(b, *v);
        }
        obs_sbuf_putc(b, '"');
    }
    obs_sbuf_putc(b, '}');
}

/* ---- push ------------------------------------------------------------------------------ */

/* Encode the batch as a PushRequest (one stream per file) and snappy-compress it. */
static int encode_batch(struct agd_logs *L, const struct agd_kv *ext, struct obs_sbuf *out,
                        struct obs_sbuf *labels_scratch)
{
    struct tfile **streams = obs_calloc(L->nbatch, sizeof(*streams));
    Logproto__StreamAdapter *sa = obs_calloc(L->nbatch, sizeof(*sa));
    Logproto__StreamAdapter **sap = obs_calloc(L->nbatch, sizeof(*sap));
    Logproto__EntryAdapter *ea = obs_calloc(L->nbatch, sizeof(*ea));
    Logproto__EntryAdapter **eap = obs_calloc(L->nbatch, sizeof(*eap));
    Logproto__Timestamp *ts = obs_calloc(L->nbatch, sizeof(*ts));
    size_t *label_off = obs_calloc(L->nbatch, sizeof(*label_off));
    uint8_t *packed = NULL;
    int rc = OBS_ENOMEM;
    if (!streams || !sa || !sap || !ea || !eap || !ts || !label_off)
        goto out;

    /* streams in first-seen order; entries grouped per stream keep their file order */
    size_t ns = 0;
    for (size_t i = 0; i < L->nbatch; i++) {
        size_t s = 0;
        while (s < ns && streams[s] != L->batch[i].f)
            s++;
        if (s == ns)
            streams[ns++] = L->batch[i].f;
    }
    obs_sbuf_reset(labels_scratch);
    for (size_t s = 0; s < ns; s++) {
        label_off[s] = labels_scratch->len;
        selector(labels_scratch, streams[s], ext);
        obs_sbuf_putc(labels_scratch, 0);
    }
    if (labels_scratch->oom)
        goto out;
    size_t ne = 0;
    for (size_t s = 0; s < ns; s++) {
        logproto__stream_adapter__init(&sa[s]);
        sa[s].labels = labels_scratch->p + label_off[s];
        sa[s].entries = &eap[ne];
        for (size_t i = 0; i < L->nbatch; i++) {
            if (L->batch[i].f != streams[s])
                continue;
            logproto__entry_adapter__init(&ea[ne]);
            logproto__timestamp__init(&ts[ne]);
            ts[ne].seconds = L->batch[i].ts_ns / 1000000000;
            ts[ne].nanos = (int32_t)(L->batch[i].ts_ns % 1000000000);
            ea[ne].timestamp = &ts[ne];
            ea[ne].line = L->batch[i].line;
            eap[ne] = &ea[ne];
            sa[s].n_entries++;
            ne++;
        }
        sap[s] = &sa[s];
    }
    Logproto__PushRequest req = LOGPROTO__PUSH_REQUEST__INIT;
    req.n_streams = ns;
    req.streams = sap;
    size_t len = logproto__push_request__get_packed_size(&req);
    packed = obs_malloc(len ? len : 1);
    if (!packed)
        goto out;
    logproto__push_request__pack(&req, packed);
    obs_sbuf_reset(out);
    rc = obs_snappy_encode(packed, len, out);
out:
    obs_free(streams);
    obs_free(sa);
    obs_free(sap);
    obs_free(ea);
    obs_free(eap);
    obs_free(ts);
    obs_free(label_off);
    obs_free(packed);
    return rc;
}

/* Send the batch to one client. Returns 0 (acknowledged or dropped on 4xx) or OBS_EAGAIN when
 * it gave up because of shutdown/deadline (deadline_ms 0 = none). */
static int push_client(struct agd_logs *L, const struct agd_client_cfg *c, int64_t deadline_ms)
{
    struct obs_sbuf body, scratch;
    obs_sbuf_init(&body);
    obs_sbuf_init(&scratch);
    int rc = encode_batch(L, &c->external_labels, &body, &scratch);
    obs_sbuf_deinit(&scratch);
    if (rc < 0) {
        obs_sbuf_deinit(&body);
        obs_clog_error(COMP, "cannot encode push request\terror=%s", obs_rc_str(rc));
        return OBS_EAGAIN;
    }
    char tenant[300];
    const char *headers[4] = {"Content-Type: application/x-protobuf",
                              "User-Agent: agentd/0.1.0 (promtail compatible)", NULL, NULL};
    if (c->tenant_id && *c->tenant_id) {
        snprintf(tenant, sizeof tenant, "X-Scope-OrgID: %s", c->tenant_id);
        headers[2] = tenant;
    }
    /* obs_httpc_do sends the bytes as given: Content-Encoding is not set, because Loki's push
     * body is snappy *inside* the protobuf content type (as Promtail sends it). */
    for (int attempt = 0;; attempt++) {
        struct obs_httpc_resp resp;
        struct obs_err err = {0};
        obs_sbuf_init(&resp.body);
        int hrc = obs_httpc_do("POST", c->url, headers, body.p, body.len, (int)c->timeout_ms,
                               &resp, &err);
        int status = hrc == 0 ? resp.status : 0;
        if (status >= 200 && status < 300) {
            obs_mchild_add(L->m_requests_ok, 1);
            obs_sbuf_deinit(&resp.body);
            rc = 0;
            break;
        }
        obs_mchild_add(L->m_requests_fail, 1);
        if (status >= 400 && status < 500 && status != 429) {
            obs_clog_error(COMP, "push rejected, dropping batch\turl=%s status=%d entries=%zu "
                                 "body=\"%.200s\"",
                           c->url, status, L->nbatch, resp.body.p ? resp.body.p : "");
            obs_mchild_add(L->m_dropped, (double)L->nbatch);
            obs_sbuf_deinit(&resp.body);
            rc = 0;
            break;
        }
        obs_sbuf_deinit(&resp.body);
        if (c->backoff.max_retries > 0 && attempt + 1 >= c->backoff.max_retries) {
            obs_clog_error(COMP, "push failed after %d attempts, dropping batch\turl=%s "
                                 "entries=%zu",
                           attempt + 1, c->url, L->nbatch);
            obs_mchild_add(L->m_dropped, (double)L->nbatch);
            rc = 0;
            break;
        }
        int64_t delay = agd_backoff_ms(&c->backoff, attempt);
        obs_clog_warn(COMP, "push failed, will retry\turl=%s status=%d error=\"%s\" delay_ms=%lld",
                      c->url, status, hrc ? err.msg : "", (long long)delay);
        obs_mchild_add(L->m_retries, 1);
        if (deadline_ms && mono_ms() + delay > deadline_ms) {
            rc = OBS_EAGAIN;
            break;
        }
        if (!deadline_ms && nap(L, delay)) {
            rc = OBS_EAGAIN;
            break;
        }
        if (deadline_ms)
            usleep((useconds_t)delay * 1000);
    }
    obs_sbuf_deinit(&body);
    return rc;
}

static void batch_clear(struct agd_logs *L)
{
    for (size_t i = 0; i < L->nbatch; i++)
        obs_free(L->batch[i].line);
    L->nbatch = 0;
    L->batch_bytes = 0;
}

/* Push the batch to every client; on success advance the files' acknowledged offsets.
 * Returns 0, or OBS_EAGAIN when interrupted (the batch is kept; offsets not advanced). */
static int flush(struct agd_logs *L, int64_t deadline_ms)
{
    if (L->nbatch == 0)
        return 0;
    const struct agd_cfg *cfg = &L->a->cfg;
    /* A batch is sent to every client; a client that already took it is not sent it again. */
    char done[64] = {0};
    for (size_t c = 0; c < cfg->nclients && c < sizeof done; c++) {
        if (done[c])
            continue;
        if (push_client(L, &cfg->clients[c], deadline_ms) < 0)
            return OBS_EAGAIN;
        done[c] = 1;
    }
    for (size_t i = 0; i < L->nbatch; i++) {
        struct tfile *f = L->batch[i].f;
        if (L->batch[i].end_off > f->acked)
            f->acked = L->batch[i].end_off;
    }
    for (size_t i = 0; i < L->nbatch; i++) {
        struct tfile *f = L->batch[i].f;
        struct agd_pos p = {.offset = f->acked, .dev = f->dev, .ino = f->ino};
        agd_positions_set(L->pos, f->path, &p);
    }
    obs_mchild_add(L->m_sent, (double)L->nbatch);
    batch_clear(L);
    return 0;
}

static int add_entry(struct agd_logs *L, struct tfile *f, const char *line, size_t len,
                     int64_t end_off)
{
    if (L->nbatch == L->capbatch) {
        size_t cap = L->capbatch ? L->capbatch * 2 : 256;
        struct entry *nb = obs_realloc(L->batch, cap * sizeof(*nb));
        if (!nb)
            return OBS_ENOMEM;
        L->batch = nb;
        L->capbatch = cap;
    }
    while (len > 0 && line[len - 1] == '\r')
        len--;
    char *copy = obs_strndup(line, len);
    if (!copy)
        return OBS_ENOMEM;
    int64_t ts = obs_now_ns();
    if (ts <= f->last_ts_ns)
        ts = f->last_ts_ns + 1;
    f->last_ts_ns = ts;
    if (L->nbatch == 0)
        L->batch_first_ms = mono_ms();
    L->batch[L->nbatch++] = (struct entry){f, ts, copy, len, end_off};
    L->batch_bytes += len;
    obs_mchild_add(L->m_lines, 1);
    return 0;
}

/* ---- files ----------------------------------------------------------------------------- */

static void tfile_free(struct tfile *f)
{
    if (!f)
        return;
    if (f->fd >= 0)
        close(f->fd);
    obs_sbuf_deinit(&f->partial);
    obs_free(f->labels);
    obs_free(f->filename_label);
    obs_free(f->path);
    obs_free(f);
}

static struct tfile *find_file(struct agd_logs *L, const char *path)
{
    for (size_t i = 0; i < L->nfiles; i++)
        if (!strcmp(L->files[i]->path, path))
            return L->files[i];
    return NULL;
}

static void open_file(struct agd_logs *L, const struct target *t, const char *path)
{
    struct stat st;
    if (stat(path, &st) < 0 || !S_ISREG(st.st_mode))
        return;
    if (L->nfiles == L->capfiles) {
        size_t cap = L->capfiles ? L->capfiles * 2 : 16;
        struct tfile **nf = obs_realloc(L->files, cap * sizeof(*nf));
        if (!nf)
            return;
        L->files = nf;
        L->capfiles = cap;
    }
    struct tfile *f = obs_calloc(1, sizeof(*f));
    if (!f)
        return;
    f->fd = open(path, O_RDONLY | O_CLOEXEC);
    f->path = obs_strdup(path);
    f->filename_label = obs_strdup(path);
    f->labels = obs_calloc(t->kv->n + 1, sizeof(*f->labels));
    if (f->fd < 0 || !f->path || !f->labels || !f->filename_label || fstat(f->fd, &st) < 0) {
        obs_clog_warn(COMP, "cannot open file\tpath=%s error=\"%s\"", path, strerror(errno));
        tfile_free(f);
        return;
    }
    for (size_t i = 0; i < t->kv->n; i++)
        if (strncmp(t->kv->v[i].name, "__", 2)) /* __path__ and other meta labels */
            f->labels[f->nlabels++] = t->kv->v[i];
    f->labels[f->nlabels++] = (struct obs_label){"filename", f->filename_label};
    f->dev = (uint64_t)st.st_dev;
    f->ino = (uint64_t)st.st_ino;
    struct agd_pos p;
    if (agd_positions_get(L->pos, path, &p) == 0 &&
        (p.ino == 0 || (p.ino == f->ino && p.dev == f->dev)) && p.offset <= st.st_size)
        f->read_off = p.offset;
    f->acked = f->read_off;
    struct agd_pos np = {.offset = f->read_off, .dev = f->dev, .ino = f->ino};
    agd_positions_set(L->pos, path, &np);
    L->files[L->nfiles++] = f;
    obs_mchild_set(L->m_files, (double)L->nfiles);
    obs_clog_info(COMP, "tailing new file\tpath=%s offset=%lld", path, (long long)f->read_off);
}

static void close_file(struct agd_logs *L, size_t idx)
{
    struct tfile *f = L->files[idx];
    L->files[idx] = L->files[--L->nfiles];
    obs_mchild_set(L->m_files, (double)L->nfiles);
    tfile_free(f);
}

/* Read what was appended; emits complete lines. Returns 0 or OBS_EAGAIN (stopping). */
static int read_file(struct agd_logs *L, struct tfile *f, int final)
{
    static char buf[READ_CHUNK]; /* only the tailer thread reads */
    for (int rounds = 0; rounds < 64; rounds++) {
        ssize_t n = pread(f->fd, buf, sizeof buf, f->read_off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        obs_mchild_add(L->m_bytes, (double)n);
        int64_t base = f->read_off;
        f->read_off += n;
        const char *p = buf, *end = buf + n;
        while (p < end) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            if (!nl) {
                obs_sbuf_append(&f->partial, p, (size_t)(end - p));
                if (f->partial.len >= MAX_LINE) { /* over-long line: cut it here */
                    add_entry(L, f, f->partial.p, f->partial.len, f->read_off);
                    obs_sbuf_reset(&f->partial);
                }
                break;
            }
            int64_t end_off = base + (nl - buf) + 1;
            if (f->partial.len) {
                obs_sbuf_append(&f->partial, p, (size_t)(nl - p));
                add_entry(L, f, f->partial.p, f->partial.len, end_off);
                obs_sbuf_reset(&f->partial);
            } else {
                add_entry(L, f, p, (size_t)(nl - p), end_off);
            }
            p = nl + 1;
            if (L->batch_bytes >= (size_t)L->batchsize) {
                int rc = flush(L, final ? mono_ms() + FINAL_FLUSH_MS : 0);
                if (rc < 0)
                    return rc;
            }
        }
        if ((size_t)n < sizeof buf)
            break;
    }
    return 0;
}

/* Rotation / truncation checks then read. Returns 0, 1 when the file was closed, or
 * OBS_EAGAIN (stopping). */
static int poll_file(struct agd_logs *L, size_t idx)
{
    struct tfile *f = L->files[idx];
    struct stat st, fst;
    int gone = stat(f->path, &st) < 0 || (uint64_t)st.st_ino != f->ino ||
               (uint64_t)st.st_dev != f->dev;
    if (!gone && fstat(f->fd, &fst) == 0 && fst.st_size < f->read_off) {
        obs_clog_info(COMP, "file truncated, reading from the start\tpath=%s", f->path);
        int rc = flush(L, 0);
        if (rc < 0)
            return rc;
        f->read_off = f->acked = 0;
        obs_sbuf_reset(&f->partial);
        struct agd_pos p = {.offset = 0, .dev = f->dev, .ino = f->ino};
        agd_positions_set(L->pos, f->path, &p);
    }
    int rc = read_file(L, f, 0);
    if (rc < 0 || !gone)
        return rc;
    /* rotated away or deleted: the old file is read to its end; push, then let go */
    if (f->partial.len) {
        add_entry(L, f, f->partial.p, f->partial.len, f->read_off);
        obs_sbuf_reset(&f->partial);
    }
    rc = flush(L, 0);
    if (rc < 0)
        return rc;
    obs_clog_info(COMP, "file rotated or removed, stop tailing it\tpath=%s", f->path);
    agd_positions_remove(L->pos, f->path);
    close_file(L, idx);
    return 1;
}

static void rescan(struct agd_logs *L)
{
    for (size_t i = 0; i < L->nfiles; i++)
        L->files[i]->seen = 0;
    for (size_t t = 0; t < L->ntargets; t++) {
        glob_t g;
        memset(&g, 0, sizeof g);
        if (glob(L->targets[t].glob, GLOB_NOSORT, NULL, &g) != 0) {
            globfree(&g);
            continue;
        }
        for (size_t i = 0; i < g.gl_pathc; i++) {
            struct tfile *f = find_file(L, g.gl_pathv[i]);
            if (f) {
                f->seen = 1;
                continue;
            }
            open_file(L, &L->targets[t], g.gl_pathv[i]);
        }
        globfree(&g);
    }
}

static void *tailer_main(void *arg)
{
    struct agd_logs *L = arg;
    int64_t sync_ms = L->a->cfg.positions.sync_period_ms > 0 ? L->a->cfg.positions.sync_period_ms
                                                              : 10000;
    int64_t next_sync = mono_ms() + sync_ms;
    struct obs_err err;
    while (!atomic_load(&L->stop)) {
        rescan(L);
        int stopping = 0;
        for (size_t i = 0; i < L->nfiles && !stopping;) {
            int rc = poll_file(L, i);
            if (rc < 0)
                stopping = 1;
            else if (rc == 0)
                i++;
        }
        if (stopping)
            break;
        if (L->nbatch && (L->batch_bytes >= (size_t)L->batchsize ||
                          mono_ms() - L->batch_first_ms >= L->batchwait_ms))
            if (flush(L, 0) < 0)
                break;
        if (mono_ms() >= next_sync) {
            obs_err_clear(&err);
            if (agd_positions_sync(L->pos, &err) < 0)
                obs_clog_error(COMP, "cannot write positions\terror=\"%s\"", err.msg);
            next_sync = mono_ms() + sync_ms;
        }
        int64_t wait = POLL_MS;
        if (L->nbatch) {
            int64_t due = L->batch_first_ms + L->batchwait_ms - mono_ms();
            if (due < wait)
                wait = due > 0 ? due : 0;
        }
        nap(L, wait);
    }
    /* shutdown: one bounded attempt to deliver what was read, then persist positions */
    if (L->nbatch && flush(L, mono_ms() + FINAL_FLUSH_MS) < 0)
        obs_clog_warn(COMP, "unsent lines stay unacknowledged and are read again on restart\t"
                            "entries=%zu",
                      L->nbatch);
    batch_clear(L);
    obs_err_clear(&err);
    if (agd_positions_sync(L->pos, &err) < 0)
        obs_clog_error(COMP, "cannot write positions\terror=\"%s\"", err.msg);
    return NULL;
}

int agd_logs_start(struct agd *a, struct obs_err *err)
{
    struct agd_cfg *cfg = &a->cfg;
    size_t ntargets = 0;
    for (size_t j = 0; j < cfg->njobs; j++)
        for (size_t s = 0; s < cfg->jobs[j].nstatics; s++)
            if (obs_labels_get(cfg->jobs[j].statics[s].labels.v, cfg->jobs[j].statics[s].labels.n,
                               "__path__"))
                ntargets++;
    if (ntargets == 0)
        return 0; /* nothing to tail */
    if (cfg->nclients == 0)
        return obs_err_set(err, OBS_EINVAL, "clients: at least one client is needed to tail "
                                            "files (scrape_configs has __path__ targets)");
    struct agd_logs *L = obs_calloc(1, sizeof(*L));
    if (!L || !(L->targets = obs_calloc(ntargets, sizeof(*L->targets)))) {
        obs_free(L);
        return obs_err_set(err, OBS_ENOMEM, "out of memory");
    }
    for (size_t j = 0; j < cfg->njobs; j++)
        for (size_t s = 0; s < cfg->jobs[j].nstatics; s++) {
            const struct agd_kv *kv = &cfg->jobs[j].statics[s].labels;
            const char *g = obs_labels_get(kv->v, kv->n, "__path__");
            if (g)
                L->targets[L->ntargets++] = (struct target){g, kv};
        }
    L->a = a;
    atomic_init(&L->stop, 0);
    pthread_mutex_init(&L->mu, NULL);
    pthread_cond_init(&L->cv, NULL);
    /* the smallest batch settings of all clients drive the shared batch */
    L->batchwait_ms = cfg->clients[0].batchwait_ms;
    L->batchsize = cfg->clients[0].batchsize;
    for (size_t c = 1; c < cfg->nclients; c++) {
        if (cfg->clients[c].batchwait_ms < L->batchwait_ms)
            L->batchwait_ms = cfg->clients[c].batchwait_ms;
        if (cfg->clients[c].batchsize < L->batchsize)
            L->batchsize = cfg->clients[c].batchsize;
    }
    if (L->batchsize <= 0)
        L->batchsize = 1048576;

    /* positions directory */
    char *dir = obs_strdup(cfg->positions.filename);
    if (!dir) {
        agd_logs_stop(a);
        return obs_err_set(err, OBS_ENOMEM, "out of memory");
    }
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = 0;
        if (obs_mkdir_p(dir, err) < 0) {
            obs_free(dir);
            obs_free(L->targets);
            obs_free(L);
            return OBS_EIO;
        }
    }
    obs_free(dir);
    L->pos = agd_positions_open(cfg->positions.filename, err);
    if (!L->pos) {
        obs_free(L->targets);
        obs_free(L);
        return OBS_EIO;
    }
    struct obs_metrics *m = a->ctx->metrics;
    L->m_lines = obs_metrics_counter(m, "promtail_read_lines_total", "Lines read from files.");
    L->m_bytes = obs_metrics_counter(m, "promtail_read_bytes_total", "Bytes read from files.");
    L->m_sent = obs_metrics_counter(m, "promtail_sent_entries_total",
                                    "Entries acknowledged by every client.");
    L->m_dropped = obs_metrics_counter(m, "promtail_dropped_entries_total",
                                       "Entries dropped after a permanent push error.");
    L->m_retries = obs_metrics_counter(m, "promtail_push_retries_total", "Push retries.");
    L->m_files = obs_metrics_gauge(m, "promtail_files_active_total", "Files being tailed.");
    L->m_requests_ok = obs_metrics_counter(m, "promtail_push_requests_ok_total",
                                           "Push requests answered with 2xx.");
    L->m_requests_fail = obs_metrics_counter(m, "promtail_push_requests_failed_total",
                                             "Push requests that failed.");
    a->logs = L;
    if (pthread_create(&L->thr, NULL, tailer_main, L) != 0) {
        agd_logs_stop(a);
        return obs_err_set(err, OBS_EIO, "cannot start tailer thread");
    }
    L->started = 1;
    obs_clog_info(COMP, "tailer started\ttargets=%zu clients=%zu", L->ntargets, cfg->nclients);
    return 0;
}

void agd_logs_stop(struct agd *a)
{
    struct agd_logs *L = a->logs;
    if (!L)
        return;
    if (L->started) {
        pthread_mutex_lock(&L->mu);
        atomic_store(&L->stop, 1);
        pthread_cond_broadcast(&L->cv);
        pthread_mutex_unlock(&L->mu);
        pthread_join(L->thr, NULL);
    }
    batch_clear(L);
    obs_free(L->batch);
    for (size_t i = 0; i < L->nfiles; i++)
        tfile_free(L->files[i]);
    obs_free(L->files);
    obs_free(L->targets);
    agd_positions_free(L->pos);
    pthread_mutex_destroy(&L->mu);
    pthread_cond_destroy(&L->cv);
    obs_free(L);
    a->logs = NULL;
}
