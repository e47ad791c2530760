/*
 * flush.c -- the ingester's block shipping: cut the head into Prometheus TSDB blocks per
 * tenant and upload them to the object store (see blocks.h).
 *
 * When: every head_compaction_interval (1m, Mimir's default), each tenant whose unflushed
 * head data spans more than 1.5 x the block range (2h) gets its oldest aligned range cut
 * ([k*2h, (k+1)*2h), as Prometheus' head compaction does); POST /ingester/flush (Mimir's
 * endpoint; `tenant` parameter optional) cuts everything now, the newest range up to the
 * newest sample, and answers 204 when the blocks are uploaded.
 *
 * Blocks are written to <tsdb.dir>/shipping/<ULID> (mtd_head_cut_block), uploaded to
 * <tenant>/<ULID>/ with meta.json last, then the local copy is removed. What was shipped is
 * remembered per tenant in <tsdb.dir>/shipped.json ({"tenant": maxt exclusive}, written
 * atomically), so a restart (the WAL replays everything) does not ship the same data twice.
 *
 * Once a tenant's ranges are uploaded and shipped.json is saved, its head is truncated at
 * the shipped mark (mtd_head_truncate_nockpt: chunks wholly older are dropped, empty series
 * removed, older appends refused as "out of bounds"), then one WAL checkpoint is written for
 * every tenant truncated, so memory and the WAL stop growing. The truncation point is in the
 * WAL (replay does not bring the data back); and at start the head is truncated at every mark
 * of shipped.json, which covers a crash between saving shipped.json and the truncation.
 * Queries merge head and blocks with one sample per timestamp (storage_merge.c): a chunk that
 * straddles the mark stays in the head, so both may hold a few of the same samples.
 */
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core/obs_log.h"
#include "core/obs_mem.h"
#include "core/obs_time.h"
#include "http/obs_http.h"
#include "metricsd/blocks.h"
#include "metricsd/head.h"
#include "metricsd/metricsd.h"
#include "metricsd/tsdb/block_write.h"
#include "store/obs_store.h"

struct mtd_flusher {
    struct obs_ctx *ctx;
    struct mtd_blocks *blocks;
    struct event *timer;
    char dir[PATH_MAX];   /* <tsdb.dir>/shipping */
    char state[PATH_MAX]; /* <tsdb.dir>/shipped.json */
    json_t *shipped;      /* tenant -> maxt (exclusive) shipped */
    int busy;
};

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static int state_save(struct mtd_flusher *f, struct obs_err *err)
{
    char tmp[PATH_MAX + 8];
    snprintf(tmp, sizeof tmp, "%s.tmp", f->state);
    char *s = json_dumps(f->shipped, JSON_SORT_KEYS | JSON_COMPACT);
    if (s == NULL)
        return obs_err_set(err, OBS_ENOMEM, "out of memory");
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int rc = 0;
    size_t n = strlen(s);
    if (fd < 0 || write(fd, s, n) != (ssize_t)n || fsync(fd) != 0)
        rc = obs_err_set(err, OBS_EIO, "flush: write %s: %s", tmp, strerror(errno));
    if (fd >= 0)
        close(fd);
    free(s);
    if (rc == 0 && rename(tmp, f->state) != 0)
        rc = obs_err_set(err, OBS_EIO, "flush: rename %s: %s", tmp, strerror(errno));
    return rc;
}

static int64_t shipped_of(struct mtd_flusher *f, const char *tenant)
{
    json_t *v = json_object_get(f->shipped, tenant);
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : INT64_MIN;
}

/* Cut [mint, maxt) of tenant, upload, record. Returns 1 when a block was shipped, 0 when the
 * range had no samples, or an error. */
static int ship_range(struct mtd_flusher *f, const char *tenant, int64_t mint, int64_t maxt,
                      struct obs_err *err)
{
    struct mtd_app *app = mtd_app_of(f->ctx);
    struct mtd_tsdb_block_info info;
    int rc = mtd_head_cut_block(app->head, tenant, mint, maxt, f->dir, &info, err);
    int shipped = 0;
    if (rc == 0) {
        char path[PATH_MAX + 32];
        snprintf(path, sizeof path, "%s/%s", f->dir, info.ulid);
        rc = mtd_block_upload(f->blocks->store, tenant, path, info.ulid, err);
        mtd_rm_rf(path);
        if (rc != 0)
            return rc;
        obs_clog_info("ingester",
                      "block shipped\ttenant=%s ulid=%s mint=%lld maxt=%lld "
                      "series=%llu samples=%llu",
                      tenant, info.ulid, (long long)info.mint, (long long)info.maxt,
                      (unsigned long long)info.nseries, (unsigned long long)info.nsamples);
        shipped = 1;
    } else if (rc != OBS_ENOENT) {
        return rc;
    }
    if (json_object_set_new(f->shipped, tenant, json_integer(maxt)) != 0)
        return obs_err_set(err, OBS_ENOMEM, "out of memory");
    if (shipped && (rc = state_save(f, err)) != 0)
        return rc;
    return shipped;
}

/* The first sample time of tenant in [from, to], or INT64_MAX: lets a cut jump over a gap in
 * the data instead of trying every empty range. */
static int64_t next_sample(struct mtd_flusher *f, const char *tenant, int64_t from, int64_t to)
{
    struct mtd_app *app = mtd_app_of(f->ctx);
    struct mtd_select_opts o = {.mint = from, .maxt = to};
    struct mtd_series_set *set = NULL;
    int64_t t = INT64_MAX;
    if (mtd_storage_select(mtd_head_storage(app->head), tenant, NULL, 0, &o, &set, NULL) != 0)
        return from; /* no shortcut: go range by range */
    for (size_t i = 0; i < set->nseries; i++)
        if (set->series[i].nsamples > 0 && set->series[i].samples[0].t < t)
            t = set->series[i].samples[0].t;
    mtd_series_set_free(set);
    return t;
}

/* Truncate tenant's head at its shipped mark (already saved in shipped.json); *ntrunc counts
 * the tenants truncated (the caller checkpoints once for all). */
static int truncate_tenant(struct mtd_flusher *f, const char *tenant, int *ntrunc,
                           struct obs_err *err)
{
    struct mtd_app *app = mtd_app_of(f->ctx);
    int64_t mark = shipped_of(f, tenant);
    if (mark == INT64_MIN || mark <= mtd_head_min_valid_time(app->head, tenant))
        return 0;
    int rc = mtd_head_truncate_nockpt(app->head, tenant, mark, err);
    if (rc < 0)
        return rc;
    *ntrunc += rc;
    return 0;
}

/* Ship what the rules allow for one tenant; at most max_blocks ranges. */
static int flush_tenant(struct mtd_flusher *f, const char *tenant, int force, size_t *nblocks,
                        struct obs_err *err)
{
    struct mtd_app *app = mtd_app_of(f->ctx);
    int64_t R = f->blocks->block_range_ms, lo, hi;
    if (mtd_head_time_range(app->head, tenant, &lo, &hi) != 0)
        return 0;
    int64_t mark = shipped_of(f, tenant), first = mark;
    for (int guard = 0; guard < 100000; guard++) {
        int64_t start = lo > mark ? lo : mark;
        if (start > hi)
            break;
        if (!force && hi - start <= R + R / 2)
            break;
        int64_t ws = floor_div(start, R) * R, we = ws + R;
        int64_t mint = ws > mark ? ws : mark;
        int64_t maxt = we;
        if (force && hi < we)
            maxt = hi + 1; /* the newest, incomplete range: up to the newest sample */
        int rc = ship_range(f, tenant, mint, maxt, err);
        if (rc < 0)
            return rc;
        *nblocks += (size_t)rc;
        mark = maxt;
        if (rc == 0 && mark <= hi) {
            int64_t nx = next_sample(f, tenant, mark, hi);
            if (nx == INT64_MAX)
                break;
            if (nx > lo)
                lo = nx; /* start = max(lo, mark) jumps to the next data */
        }
    }
    /* the mark may also have moved over empty ranges: keep that too */
    return mark != first ? state_save(f, err) : 0;
}

static int flush_all(struct mtd_flusher *f, const char *only, int force, size_t *nblocks,
                     struct obs_err *err)
{
    struct mtd_app *app = mtd_app_of(f->ctx);
    *nblocks = 0;
    if (app->head == NULL)
        return obs_err_set(err, OBS_EAGAIN, "no head in this process");
    if (f->busy)
        return obs_err_set(err, OBS_EAGAIN, "a flush is already running");
    char **ten = NULL;
    size_t nt = 0;
    int rc = mtd_storage_tenants(mtd_head_storage(app->head), &ten, &nt);
    if (rc != 0)
        return obs_err_set(err, rc, "flush: cannot list tenants");
    f->busy = 1;
    int ntrunc = 0;
    for (size_t i = 0; i < nt && rc == 0; i++) {
        if (only != NULL && strcmp(only, ten[i]) != 0)
            continue;
        rc = flush_tenant(f, ten[i], force, nblocks, err);
        if (rc == 0)
            rc = truncate_tenant(f, ten[i], &ntrunc, err);
    }
    f->busy = 0;
    mtd_strings_free(ten, nt);
    /* The store-gateway must list the new blocks before the head stops serving that data. */
    if (*nblocks > 0 && f->blocks->sg != NULL)
        mtd_store_gateway_invalidate(f->blocks->sg);
    if (ntrunc > 0) {
        struct obs_err ce = {0};
        int crc = mtd_head_checkpoint(app->head, &ce);
        if (crc != 0)
            obs_clog_warn("ingester", "WAL checkpoint after head truncation failed: %s",
                          ce.msg);
        if (rc == 0 && crc != 0)
            rc = obs_err_set(err, crc, "%s", ce.msg);
    }
    return rc;
}

int mtd_flush_run(struct obs_ctx *ctx, int force, size_t *nblocks, struct obs_err *err)
{
    struct mtd_blocks *b = mtd_blocks_of(ctx);
    size_t n = 0;
    if (b == NULL || b->flusher == NULL)
        return obs_err_set(err, OBS_EAGAIN, "no ingester running in this process");
    int rc = flush_all(b->flusher, NULL, force, &n, err);
    if (nblocks)
        *nblocks = n;
    return rc;
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct mtd_flusher *f = arg;
    struct obs_err err = {0};
    size_t n = 0;
    if (flush_all(f, NULL, 0, &n, &err) != 0 && err.code != OBS_EAGAIN)
        obs_clog_warn("ingester", "block shipping failed: %s", err.msg);
}

/* POST /ingester/flush[?tenant=T] */
static void h_flush(struct obs_http_req *r, void *arg)
{
    struct mtd_flusher *f = arg;
    const char *only = obs_http_req_param(r, "tenant");
    struct obs_err err = {0};
    size_t n = 0;
    int rc = flush_all(f, only && *only ? only : NULL, 1, &n, &err);
    if (rc == OBS_EAGAIN) {
        obs_http_reply_text(r, 503, "%s\n", err.msg);
        return;
    }
    if (rc != 0) {
        obs_clog_warn("ingester", "flush failed: %s", err.msg);
        obs_http_reply_text(r, 500, "flush failed: %s\n", err.msg);
        return;
    }
    obs_http_reply(r, 204, NULL, NULL, 0);
}

int mtd_flush_start(struct obs_ctx *ctx, struct obs_err *err)
{
    struct mtd_app *app = mtd_app_of(ctx);
    struct mtd_blocks *b = mtd_blocks_ref(ctx, err);
    if (b == NULL)
        return err && err->code ? err->code : OBS_EIO;
    struct mtd_flusher *f = obs_calloc(1, sizeof *f);
    if (f == NULL) {
        mtd_blocks_unref(ctx);
        return obs_err_set(err, OBS_ENOMEM, "out of memory");
    }
    f->ctx = ctx;
    f->blocks = b;
    snprintf(f->dir, sizeof f->dir, "%s/shipping", app->blocks.tsdb.dir);
    snprintf(f->state, sizeof f->state, "%s/shipped.json", app->blocks.tsdb.dir);
    mtd_rm_rf(f->dir); /* leftovers of a crash mid-upload: the head still has the data */
    int rc = obs_mkdir_p(f->dir, err);
    if (rc == 0) {
        json_error_t je;
        f->shipped = json_load_file(f->state, 0, &je);
        if (f->shipped == NULL && access(f->state, F_OK) == 0)
            obs_clog_warn("ingester", "%s unreadable (%s): shipping starts over", f->state,
                          je.text);
        if (f->shipped == NULL || !json_is_object(f->shipped)) {
            json_decref(f->shipped);
            f->shipped = json_object();
        }
        if (f->shipped == NULL)
            rc = obs_err_set(err, OBS_ENOMEM, "out of memory");
    }
    if (rc == 0 && app->head != NULL) {
        /* Truncate at every shipped mark: a crash between saving shipped.json and the head
         * truncation (or a WAL without its 'T' record) would otherwise keep shipped data. */
        const char *tenant;
        json_t *v;
        int ntrunc = 0;
        json_object_foreach(f->shipped, tenant, v) {
            if (rc == 0)
                rc = truncate_tenant(f, tenant, &ntrunc, err);
        }
        if (rc == 0 && ntrunc > 0)
            rc = mtd_head_checkpoint(app->head, err);
    }
    if (rc == 0) {
        f->timer = event_new(ctx->base, -1, EV_PERSIST, on_timer, f);
        int64_t ms = 60000;
        const struct obs_cf_node *iv = obs_cf_get(
            obs_cf_get(obs_cf_get(ctx->cfg, "blocks_storage"), "tsdb"), "head_compaction_interval");
        if (iv != NULL && (rc = obs_cf_duration(iv, &ms, err)) == 0 && ms <= 0)
            rc = obs_cf_error(err, iv, "must be positive");
        struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
        if (rc == 0 && (f->timer == NULL || event_add(f->timer, &tv) != 0))
            rc = obs_err_set(err, OBS_ENOMEM, "flush: cannot start the timer");
    }
    if (rc == 0 && (obs_http_route(ctx->http, "GET,POST", "/ingester/flush", h_flush, f) != 0))
        rc = obs_err_set(err, OBS_ENOMEM, "flush: cannot register /ingester/flush");
    if (rc != 0) {
        if (f->timer)
            event_free(f->timer);
        json_decref(f->shipped);
        obs_free(f);
        mtd_blocks_unref(ctx);
        return rc;
    }
    b->flusher = f;
    return 0;
}

void mtd_flush_stop(struct obs_ctx *ctx)
{
    struct mtd_blocks *b = mtd_blocks_of(ctx);
    if (b == NULL || b->flusher == NULL)
        return;
    struct mtd_flusher *f = b->flusher;
    if (f->timer)
        event_free(f->timer);
    json_decref(f->shipped);
    obs_free(f);
    b->flusher = NULL;
    mtd_blocks_unref(ctx);
}
