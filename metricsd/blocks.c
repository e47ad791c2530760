/*
 * blocks.c -- state shared by metricsd's block components (flush, store-gateway,
 * compactor; see blocks.h) and the object-store helpers they use to move whole blocks:
 * upload (meta.json last), download, delete (meta.json first).
 *
 * The store is opened from the `blocks_storage:` node (backend: filesystem | s3, as
 * obs_store_open reads it) by the first component that needs it, and closed when the last
 * one stops.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/obs_log.h"
#include "core/obs_mem.h"
#include "core/obs_sbuf.h"
#include "metricsd/blocks.h"
#include "metricsd/metricsd.h"
#include "store/obs_store.h"

struct mtd_blocks *mtd_blocks_of(struct obs_ctx *ctx)
{
    struct mtd_app *app = mtd_app_of(ctx);
    return app ? app->blocks_state : NULL;
}

struct mtd_blocks *mtd_blocks_ref(struct obs_ctx *ctx, struct obs_err *err)
{
    struct mtd_app *app = mtd_app_of(ctx);
    if (app == NULL) {
        obs_err_set(err, OBS_EINVAL, "blocks: no metricsd state");
        return NULL;
    }
    struct mtd_blocks *b = app->blocks_state;
    if (b != NULL) {
        b->refs++;
        return b;
    }
    b = obs_calloc(1, sizeof *b);
    if (b == NULL) {
        obs_err_set(err, OBS_ENOMEM, "out of memory");
        return NULL;
    }
    b->ctx = ctx;
    b->block_range_ms = app->blocks.tsdb.block_ranges_period_ms > 0
                            ? app->blocks.tsdb.block_ranges_period_ms
                            : 2 * 3600 * 1000LL;
    b->store =
        obs_store_open(obs_cf_get(ctx->cfg, "blocks_storage"), "./data/metricsd/blocks", err);
    if (b->store == NULL) {
        obs_free(b);
        return NULL;
    }
    b->refs = 1;
    app->blocks_state = b;
    return b;
}

void mtd_blocks_unref(struct obs_ctx *ctx)
{
    struct mtd_app *app = mtd_app_of(ctx);
    struct mtd_blocks *b = app ? app->blocks_state : NULL;
    if (b == NULL || --b->refs > 0)
        return;
    obs_store_close(b->store);
    obs_free(b);
    app->blocks_state = NULL;
}

void mtd_blocks_teardown(struct obs_ctx *ctx)
{
    struct mtd_blocks *b = mtd_blocks_of(ctx);
    if (b == NULL || b->merge == NULL)
        return;
    struct mtd_app *app = mtd_app_of(ctx);
    if (app->storage == b->merge) /* the merge object's first member is its mtd_storage */
        app->storage = NULL;
    mtd_storage_merge_free(b->merge);
    b->merge = NULL;
    mtd_blocks_unref(ctx);
}

/* ---- warnings --------------------------------------------------------------------------- */

void mtd_warnings_add(struct mtd_warnings *w, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (w == NULL || w->n >= 16)
        return;
    for (size_t i = 0; i < w->n; i++)
        if (strcmp(w->v[i], buf) == 0)
            return;
    char **nv = obs_realloc(w->v, (w->n + 1) * sizeof *nv);
    if (nv == NULL)
        return;
    w->v = nv;
    if ((w->v[w->n] = obs_strdup(buf)) != NULL)
        w->n++;
}

void mtd_warnings_clear(struct mtd_warnings *w)
{
    for (size_t i = 0; i < w->n; i++)
        obs_free(w->v[i]);
    obs_free(w->v);
    w->v = NULL;
    w->n = 0;
}

/* ---- local files ------------------------------------------------------------------------ */

void mtd_rm_rf(const char *path)
{
    DIR *d = opendir(path);
    if (d == NULL) {
        unlink(path);
        return;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char p[PATH_MAX];
        snprintf(p, sizeof p, "%s/%s", path, e->d_name);
        struct stat st;
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
            mtd_rm_rf(p);
        else
            unlink(p);
    }
    closedir(d);
    rmdir(path);
}

static int read_file(const char *path, struct obs_sbuf *out, struct obs_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return obs_err_set(err, OBS_EIO, "blocks: open %s: %s", path, strerror(errno));
    obs_sbuf_reset(out);
    for (;;) {
        if (obs_sbuf_reserve(out, 1 << 16) != 0) {
            close(fd);
            return obs_err_set(err, OBS_ENOMEM, "out of memory");
        }
        ssize_t r = read(fd, out->p + out->len, out->cap - out->len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            close(fd);
            return obs_err_set(err, OBS_EIO, "blocks: read %s: %s", path, strerror(errno));
        }
        if (r == 0)
            break;
        out->len += (size_t)r;
    }
    close(fd);
    return 0;
}

static int write_file(const char *path, const void *p, size_t n, struct obs_err *err)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return obs_err_set(err, OBS_EIO, "blocks: create %s: %s", path, strerror(errno));
    const char *c = p;
    while (n > 0) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            close(fd);
            return obs_err_set(err, OBS_EIO, "blocks: write %s: %s", path, strerror(errno));
        }
        c += w;
        n -= (size_t)w;
    }
    if (close(fd) != 0)
        return obs_err_set(err, OBS_EIO, "blocks: close %s: %s", path, strerror(errno));
    return 0;
}

static int put_file(struct obs_store *st, const char *key, const char *path, struct obs_sbuf *buf,
                    struct obs_err *err)
{
    int rc = read_file(path, buf, err);
    if (rc == 0)
        rc = obs_store_put(st, key, buf->p ? buf->p : "", buf->len, err);
    return rc;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int mtd_block_upload(struct obs_store *st, const char *tenant, const char *dir, const char *ulid,
                     struct obs_err *err)
{
    char path[PATH_MAX], key[1024];
    struct obs_sbuf buf;
    obs_sbuf_init(&buf);
    int rc = 0;
    /* chunk segments, in order */
    snprintf(path, sizeof path, "%s/chunks", dir);
    DIR *d = opendir(path);
    char **names = NULL;
    size_t nn = 0;
    if (d != NULL) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL && rc == 0) {
            if (e->d_name[0] == '.')
                continue;
            char **nv = obs_realloc(names, (nn + 1) * sizeof *nv);
            if (nv == NULL || (nv[nn] = obs_strdup(e->d_name)) == NULL) {
                names = nv ? nv : names;
                rc = obs_err_set(err, OBS_ENOMEM, "out of memory");
                break;
            }
            names = nv;
            nn++;
        }
        closedir(d);
    }
    if (nn > 1)
        qsort(names, nn, sizeof *names, cmp_str);
    for (size_t i = 0; i < nn && rc == 0; i++) {
        snprintf(path, sizeof path, "%s/chunks/%s", dir, names[i]);
        snprintf(key, sizeof key, "%s/%s/chunks/%s", tenant, ulid, names[i]);
        rc = put_file(st, key, path, &buf, err);
    }
    for (size_t i = 0; i < nn; i++)
        obs_free(names[i]);
    obs_free(names);
    static const char *const files[] = {"index", "tombstones", "meta.json"};
    for (size_t i = 0; i < 3 && rc == 0; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        if (i == 1 && access(path, F_OK) != 0)
            continue; /* tombstones are optional */
        snprintf(key, sizeof key, "%s/%s/%s", tenant, ulid, files[i]);
        rc = put_file(st, key, path, &buf, err);
    }
    obs_sbuf_deinit(&buf);
    return rc;
}

struct keylist {
    char **v;
    size_t n;
    int oom;
};

static int keylist_add(const char *key, void *arg)
{
    struct keylist *l = arg;
    char **nv = obs_realloc(l->v, (l->n + 1) * sizeof *nv);
    if (nv == NULL || (nv[l->n] = obs_strdup(key)) == NULL) {
        if (nv)
            l->v = nv;
        l->oom = 1;
        return 1;
    }
    l->v = nv;
    l->n++;
    return 0;
}

static void keylist_free(struct keylist *l)
{
    for (size_t i = 0; i < l->n; i++)
        obs_free(l->v[i]);
    obs_free(l->v);
}

int mtd_block_download(struct obs_store *st, const char *tenant, const char *ulid, const char *dir,
                       struct obs_err *err)
{
    char prefix[512], path[PATH_MAX];
    snprintf(prefix, sizeof prefix, "%s/%s/", tenant, ulid);
    struct keylist l = {0};
    int rc = obs_store_list(st, prefix, NULL, keylist_add, &l, err);
    if (rc == 0 && l.oom)
        rc = obs_err_set(err, OBS_ENOMEM, "out of memory");
    snprintf(path, sizeof path, "%s/chunks", dir);
    if (rc == 0)
        rc = obs_mkdir_p(path, err);
    struct obs_sbuf buf;
    obs_sbuf_init(&buf);
    for (size_t i = 0; i < l.n && rc == 0; i++) {
        const char *rel = l.v[i] + strlen(prefix);
        if (strcmp(rel, "deletion-mark.json") == 0 || strstr(rel, "..") != NULL)
            continue;
        obs_sbuf_reset(&buf);
        if ((rc = obs_store_get(st, l.v[i], 0, 0, &buf, err)) != 0)
            break;
        snprintf(path, sizeof path, "%s/%s", dir, rel);
        rc = write_file(path, buf.p ? buf.p : "", buf.len, err);
    }
    obs_sbuf_deinit(&buf);
    keylist_free(&l);
    return rc;
}

int mtd_block_delete(struct obs_store *st, const char *tenant, const char *ulid,
                     struct obs_err *err)
{
    char prefix[512], key[1024];
    snprintf(key, sizeof key, "%s/%s/meta.json", tenant, ulid);
    int rc = obs_store_del(st, key, err);
    if (rc != 0)
        return rc;
    snprintf(prefix, sizeof prefix, "%s/%s/", tenant, ulid);
    struct keylist l = {0};
    rc = obs_store_list(st, prefix, NULL, keylist_add, &l, err);
    if (rc == 0 && l.oom)
        rc = obs_err_set(err, OBS_ENOMEM, "out of memory");
    for (size_t i = 0; i < l.n && rc == 0; i++)
        if (strcmp(l.v[i] + strlen(prefix), "deletion-mark.json") != 0)
            rc = obs_store_del(st, l.v[i], err);
    keylist_free(&l);
    snprintf(key, sizeof key, "%s/%s/deletion-mark.json", tenant, ulid);
    if (rc == 0)
        rc = obs_store_del(st, key, err);
    return rc;
}
