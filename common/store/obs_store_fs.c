/*
 * obs_store_fs.c -- the "filesystem" object store backend: one file per object under a root
 * directory, key "a/b/c" at <root>/a/b/c.
 *
 * Atomic put: data goes to a unique temporary file in <root>/.obs-tmp/, is fsync()ed, then
 * rename()d over the final name and the parent directory is fsync()ed; readers see the old
 * object or the new one, never a partial one. The temporary directory is on the same
 * filesystem as the objects, so rename is atomic. It is hidden from listings, and keys whose
 * first component is ".obs-tmp" are refused.
 *
 * Temp files older than an hour (a crash mid-put) are swept at open.
 *
 * get: a range starting past the end is OBS_ERANGE; one running past the end is clamped.
 *
 * Keys: non-empty, '/'-separated, no leading or trailing '/', no empty, "." or ".."
 * components, so a key can never escape the root.
 *
 * Listing walks the directory tree in global key order: within a directory, entries are
 * sorted by name, with a directory compared as "name/" (so "a/x" sorts after "a-b", as the
 * keys themselves do). Delete removes empty parent directories (best effort), so a common
 * prefix disappears with its last object, as it does in S3. A put racing with such a
 * cleanup retries its mkdir + rename.
 *
 * Thread-safe: no shared mutable state apart from an atomic counter for temp names.
 */
#include "store/obs_store.h"
#include "core/obs_mem.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define TMP_DIR ".obs-tmp"
#define TMP_STALE_SECS 3600 /* temp files older than this are leftovers of a crash */

struct fs_store {
    struct obs_store base;
    char *root;
    size_t root_len;
};

static atomic_uint_fast64_t tmp_seq;

static struct fs_store *fs_of(struct obs_store *s) { return (struct fs_store *)s->impl; }

/* Validate a key: see the banner. */
static int key_ok(const char *key)
{
    if (key == NULL || key[0] == '\0' || key[0] == '/')
        return 0;
    size_t n = strlen(key);
    if (key[n - 1] == '/' || n > PATH_MAX - 64)
        return 0;
    const char *p = key;
    int first = 1;
    while (*p) {
        const char *e = strchr(p, '/');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l == 0 || (l == 1 && p[0] == '.') || (l == 2 && p[0] == '.' && p[1] == '.'))
            return 0;
        if (first && l == sizeof(TMP_DIR) - 1 && memcmp(p, TMP_DIR, l) == 0)
            return 0;
        first = 0;
        p += l;
        if (*p == '/')
            p++;
    }
    return 1;
}

static int key_path(struct fs_store *fs, const char *key, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%s/%s", fs->root, key);
    return n > 0 && (size_t)n < cap;
}

static int mkdirs(char *path) /* modifies path temporarily */
{
    size_t n = strlen(path);
    for (size_t i = 1; i <= n; i++) {
        if (path[i] == '/' || path[i] == '\0') {
            char c = path[i];
            path[i] = '\0';
            int rc = mkdir(path, 0755);
            int e = errno;
            path[i] = c;
            if (rc != 0 && e != EEXIST) {
                errno = e;
                return -1;
            }
        }
    }
    return 0;
}

static int fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t k = write(fd, p, n);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

static int fs_put(struct obs_store *s, const char *key, const void *data, size_t len,
                  struct obs_err *err)
{
    struct fs_store *fs = fs_of(s);
    if (!key_ok(key))
        return obs_err_set(err, OBS_EINVAL, "store: invalid key \"%s\"", key ? key : "");
    char path[PATH_MAX], tmp[PATH_MAX];
    if (!key_path(fs, key, path, sizeof(path)))
        return obs_err_set(err, OBS_EINVAL, "store: key too long");
    unsigned long long seq = (unsigned long long)atomic_fetch_add(&tmp_seq, 1);
    snprintf(tmp, sizeof(tmp), "%s/" TMP_DIR "/%ld.%llu", fs->root, (long)getpid(), seq);

    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 && errno == ENOENT) { /* temp dir removed behind our back */
        char td[PATH_MAX];
        snprintf(td, sizeof(td), "%s/" TMP_DIR, fs->root);
        mkdir(td, 0755);
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    }
    if (fd < 0)
        return obs_err_set(err, OBS_EIO, "store: create %s: %s", tmp, strerror(errno));
    if (write_all(fd, data, len) != 0 || fsync(fd) != 0) {
        int e = errno;
        close(fd);
        unlink(tmp);
        return obs_err_set(err, OBS_EIO, "store: write %s: %s", key, strerror(e));
    }
    if (close(fd) != 0) {
        int e = errno;
        unlink(tmp);
        return obs_err_set(err, OBS_EIO, "store: write %s: %s", key, strerror(e));
    }
    /* Parent dirs may be removed concurrently by a delete of their last object: retry. */
    char *slash = strrchr(path, '/');
    int rc = -1, e = 0;
    for (int tries = 0; tries < 8; tries++) {
        *slash = '\0';
        int mk = mkdirs(path);
        e = errno;
        *slash = '/';
        if (mk != 0)
            break;
        rc = rename(tmp, path);
        e = errno;
        if (rc == 0 || e != ENOENT)
            break;
    }
    if (rc != 0) {
        unlink(tmp);
        if (e == EISDIR || e == ENOTDIR || e == EEXIST || e == ENOTEMPTY)
            return obs_err_set(err, OBS_EINVAL, "store: key \"%s\" conflicts with a prefix",
                               key);
        return obs_err_set(err, OBS_EIO, "store: rename to %s: %s", key, strerror(e));
    }
    *slash = '\0';
    rc = fsync_dir(path);
    e = errno;
    *slash = '/';
    if (rc != 0)
        return obs_err_set(err, OBS_EIO, "store: fsync dir for %s: %s", key, strerror(e));
    return OBS_OK;
}

static int fs_get(struct obs_store *s, const char *key, uint64_t off, uint64_t len,
                  struct obs_sbuf *out, struct obs_err *err)
{
    struct fs_store *fs = fs_of(s);
    if (!key_ok(key))
        return obs_err_set(err, OBS_EINVAL, "store: invalid key \"%s\"", key ? key : "");
    char path[PATH_MAX];
    if (!key_path(fs, key, path, sizeof(path)))
        return obs_err_set(err, OBS_EINVAL, "store: key too long");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            return obs_err_set(err, OBS_ENOENT, "store: %s: not found", key);
        return obs_err_set(err, OBS_EIO, "store: open %s: %s", key, strerror(errno));
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return obs_err_set(err, OBS_ENOENT, "store: %s: not found", key);
    }
    uint64_t size = (uint64_t)st.st_size;
    if (off > size) {
        close(fd);
        return obs_err_set(err, OBS_ERANGE, "store: %s: offset %llu past size %llu", key,
                           (unsigned long long)off, (unsigned long long)size);
    }
    uint64_t n = size - off;
    if (len != 0 && len < n)
        n = len;
    if (n > SIZE_MAX / 2 || obs_sbuf_reserve(out, (size_t)n) != OBS_OK) {
        close(fd);
        return obs_err_set(err, OBS_ENOMEM, "store: %s: out of memory", key);
    }
    uint64_t done = 0;
    while (done < n) {
        ssize_t k = pread(fd, out->p + out->len + done, (size_t)(n - done), (off_t)(off + done));
        if (k < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            close(fd);
            out->p[out->len] = '\0';
            return obs_err_set(err, OBS_EIO, "store: read %s: %s", key, strerror(e));
        }
        if (k == 0)
            break; /* file shorter than at fstat: cannot happen with atomic puts */
        done += (uint64_t)k;
    }
    close(fd);
    out->len += (size_t)done;
    out->p[out->len] = '\0';
    return OBS_OK;
}

static int fs_head(struct obs_store *s, const char *key, uint64_t *size, struct obs_err *err)
{
    struct fs_store *fs = fs_of(s);
    if (!key_ok(key))
        return obs_err_set(err, OBS_EINVAL, "store: invalid key \"%s\"", key ? key : "");
    char path[PATH_MAX];
    if (!key_path(fs, key, path, sizeof(path)))
        return obs_err_set(err, OBS_EINVAL, "store: key too long");
    struct stat st;
    if (stat(path, &st) != 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            return obs_err_set(err, OBS_ENOENT, "store: %s: not found", key);
        return obs_err_set(err, OBS_EIO, "store: stat %s: %s", key, strerror(errno));
    }
    if (!S_ISREG(st.st_mode))
        return obs_err_set(err, OBS_ENOENT, "store: %s: not found", key);
    if (size)
        *size = (uint64_t)st.st_size;
    return OBS_OK;
}

/* --- listing ---------------------------------------------------------------------------- */

struct ent {
    char *name; /* for directories, with a trailing '/' */
    int is_dir;
};

static int ent_cmp(const void *a, const void *b)
{
    return strcmp(((const struct ent *)a)->name, ((const struct ent *)b)->name);
}

struct lister {
    struct fs_store *fs;
    int delim;
    int (*fn)(const char *key, void *arg);
    void *arg;
    struct obs_err *err;
    struct obs_sbuf key; /* key of the directory being walked, with trailing '/' or empty */
};

/* Read directory <root>/<key> sorted (see banner). Only names starting with filter. */
static int read_sorted(struct lister *l, const char *filter, struct ent **out, size_t *nout)
{
    char path[PATH_MAX];
    int n = snprintf(path, sizeof(path), "%s/%s", l->fs->root, l->key.len ? l->key.p : "");
    if (n <= 0 || (size_t)n >= sizeof(path))
        return obs_err_set(l->err, OBS_EINVAL, "store: list: path too long");
    *out = NULL;
    *nout = 0;
    DIR *d = opendir(path);
    if (d == NULL) {
        if (errno == ENOENT || errno == ENOTDIR)
            return OBS_OK;
        return obs_err_set(l->err, OBS_EIO, "store: list %s: %s", path, strerror(errno));
    }
    size_t flen = strlen(filter), cap = 0, cnt = 0;
    struct ent *v = NULL;
    int rc = OBS_OK;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        const char *nm = de->d_name;
        if (strcmp(nm, ".") == 0 || strcmp(nm, "..") == 0)
            continue;
        if (l->key.len == 0 && strcmp(nm, TMP_DIR) == 0)
            continue;
        if (strncmp(nm, filter, flen) != 0)
            continue;
        int is_dir;
        if (de->d_type == DT_DIR || de->d_type == DT_REG) {
            is_dir = de->d_type == DT_DIR;
        } else {
            struct stat st;
            if (fstatat(dirfd(d), nm, &st, 0) != 0)
                continue;
            if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode))
                continue;
            is_dir = S_ISDIR(st.st_mode);
        }
        if (cnt == cap) {
            size_t nc = cap ? cap * 2 : 32;
            struct ent *nv = obs_realloc(v, nc * sizeof(*nv));
            if (nv == NULL) {
                rc = OBS_ENOMEM;
                break;
            }
            v = nv;
            cap = nc;
        }
        size_t len = strlen(nm);
        char *name = obs_malloc(len + 2);
        if (name == NULL) {
            rc = OBS_ENOMEM;
            break;
        }
        memcpy(name, nm, len);
        name[len] = is_dir ? '/' : '\0';
        name[len + 1] = '\0';
        v[cnt].name = name;
        v[cnt].is_dir = is_dir;
        cnt++;
    }
    closedir(d);
    if (rc != OBS_OK) {
        for (size_t i = 0; i < cnt; i++)
            obs_free(v[i].name);
        obs_free(v);
        return obs_err_set(l->err, rc, "store: list: out of memory");
    }
    if (cnt > 1)
        qsort(v, cnt, sizeof(*v), ent_cmp);
    *out = v;
    *nout = cnt;
    return OBS_OK;
}

/* Does directory <root>/<key><name> hold at least one object (recursively)? */
static int dir_has_object(struct lister *l, const char *sub, int depth)
{
    char path[PATH_MAX];
    int n = snprintf(path, sizeof(path), "%s/%s%s", l->fs->root, l->key.len ? l->key.p : "", sub);
    if (n <= 0 || (size_t)n >= sizeof(path) || depth > 64)
        return 0;
    DIR *d = opendir(path);
    if (d == NULL)
        return 0;
    int found = 0;
    struct dirent *de;
    while (!found && (de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        struct stat st;
        if (fstatat(dirfd(d), de->d_name, &st, 0) != 0)
            continue;
        if (S_ISREG(st.st_mode)) {
            found = 1;
        } else if (S_ISDIR(st.st_mode)) {
            char s2[PATH_MAX];
            int k = snprintf(s2, sizeof(s2), "%s%s/", sub, de->d_name);
            if (k > 0 && (size_t)k < sizeof(s2))
                found = dir_has_object(l, s2, depth + 1);
        }
    }
    closedir(d);
    return found;
}

/* Walk directory l->key. Returns 0, >0 when fn asked to stop, or a negative error. */
static int walk(struct lister *l, const char *filter, int depth)
{
    if (depth > 128)
        return OBS_OK;
    struct ent *v;
    size_t n;
    int rc = read_sorted(l, filter, &v, &n);
    if (rc != OBS_OK)
        return rc;
    size_t base = l->key.len;
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (obs_sbuf_puts(&l->key, v[i].name) != OBS_OK) {
            rc = obs_err_set(l->err, OBS_ENOMEM, "store: list: out of memory");
            break;
        }
        if (!v[i].is_dir) {
            rc = l->fn(l->key.p, l->arg);
        } else if (l->delim) {
            /* Report a common prefix only if an object lives below it (an empty directory
             * left by a crash is not a prefix). */
            l->key.len = base;
            l->key.p[base] = '\0';
            if (dir_has_object(l, v[i].name, 0)) {
                obs_sbuf_puts(&l->key, v[i].name);
                rc = l->fn(l->key.p, l->arg);
            }
        } else {
            rc = walk(l, "", depth + 1);
        }
        l->key.len = base;
        l->key.p[base] = '\0';
    }
    for (size_t i = 0; i < n; i++)
        obs_free(v[i].name);
    obs_free(v);
    return rc;
}

static int fs_list(struct obs_store *s, const char *prefix, const char *delim,
                   int (*fn)(const char *key, void *arg), void *arg, struct obs_err *err)
{
    if (prefix == NULL)
        prefix = "";
    if (delim != NULL && delim[0] != '\0' && strcmp(delim, "/") != 0)
        return obs_err_set(err, OBS_EINVAL, "store: list: only \"/\" is supported as delimiter");
    if (prefix[0] == '/' || strstr(prefix, "//") != NULL || strstr(prefix, "../") != NULL ||
        strcmp(prefix, "..") == 0 || strncmp(prefix, "./", 2) == 0 ||
        strstr(prefix, "/./") != NULL)
        return obs_err_set(err, OBS_EINVAL, "store: list: invalid prefix \"%s\"", prefix);
    struct lister l = {.fs = fs_of(s), .delim = delim && delim[0], .fn = fn, .arg = arg,
                       .err = err};
    obs_sbuf_init(&l.key);
    const char *slash = strrchr(prefix, '/');
    size_t dirlen = slash ? (size_t)(slash - prefix) + 1 : 0;
    int rc = obs_sbuf_append(&l.key, prefix, dirlen);
    if (rc == OBS_OK && l.key.p == NULL)
        rc = obs_sbuf_reserve(&l.key, 64);
    if (rc != OBS_OK) {
        obs_sbuf_deinit(&l.key);
        return obs_err_set(err, OBS_ENOMEM, "store: list: out of memory");
    }
    l.key.p[l.key.len] = '\0';
    rc = walk(&l, prefix + dirlen, 0);
    obs_sbuf_deinit(&l.key);
    return rc > 0 ? OBS_OK : rc;
}

static int fs_del(struct obs_store *s, const char *key, struct obs_err *err)
{
    struct fs_store *fs = fs_of(s);
    if (!key_ok(key))
        return obs_err_set(err, OBS_EINVAL, "store: invalid key \"%s\"", key ? key : "");
    char path[PATH_MAX];
    if (!key_path(fs, key, path, sizeof(path)))
        return obs_err_set(err, OBS_EINVAL, "store: key too long");
    struct stat st;
    if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode))
        return OBS_OK; /* a prefix, not an object: nothing to delete */
    if (unlink(path) != 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            return OBS_OK;
        return obs_err_set(err, OBS_EIO, "store: delete %s: %s", key, strerror(errno));
    }
    /* Remove now-empty parents up to (not including) the root; stops at the first non-empty. */
    char *slash;
    while ((slash = strrchr(path, '/')) != NULL && (size_t)(slash - path) > fs->root_len) {
        *slash = '\0';
        if (rmdir(path) != 0)
            break;
    }
    if (slash != NULL) {
        *slash = '\0';
        fsync_dir(path);
    }
    return OBS_OK;
}

/* Remove temp files a crashed put left behind. Only old ones: another process sharing the
 * directory may be in the middle of a put right now. */
static void sweep_tmp(const char *tmpdir)
{
    DIR *d = opendir(tmpdir);
    if (d == NULL)
        return;
    time_t now = time(NULL);
    struct dirent *de;
    for (int n = 0; n < 100000 && (de = readdir(d)) != NULL; n++) {
        struct stat st;
        if (de->d_name[0] == '.' || fstatat(dirfd(d), de->d_name, &st, 0) != 0)
            continue;
        if (S_ISREG(st.st_mode) && now - st.st_mtime > TMP_STALE_SECS)
            unlinkat(dirfd(d), de->d_name, 0);
    }
    closedir(d);
}

static void fs_close(struct obs_store *s)
{
    struct fs_store *fs = fs_of(s);
    obs_free(fs->root);
    obs_free(fs);
}

static const struct obs_store_ops fs_ops = {
    .name = "filesystem",
    .put = fs_put,
    .get = fs_get,
    .head = fs_head,
    .list = fs_list,
    .del = fs_del,
    .close = fs_close,
};

/*
 * Open the filesystem backend rooted at dir (created with parents if missing). Returns a
 * store owned by the caller (obs_store_close) or NULL with err set (OBS_EIO, OBS_ENOMEM,
 * OBS_EINVAL for an empty dir). Thread-safe once opened.
 */
struct obs_store *obs_store_fs_open(const char *dir, struct obs_err *err)
{
    if (dir == NULL || dir[0] == '\0') {
        obs_err_set(err, OBS_EINVAL, "store: filesystem: empty directory");
        return NULL;
    }
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/')
        n--;
    if (n > PATH_MAX - 128) {
        obs_err_set(err, OBS_EINVAL, "store: filesystem: directory name too long");
        return NULL;
    }
    struct fs_store *fs = obs_calloc(1, sizeof(*fs));
    char *root = obs_strndup(dir, n);
    if (fs == NULL || root == NULL) {
        obs_free(fs);
        obs_free(root);
        obs_err_set(err, OBS_ENOMEM, "store: out of memory");
        return NULL;
    }
    if (n == 1 && root[0] == '/')
        root[0] = '\0'; /* "/" -> "" so paths become "/key" */
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof(tmp), "%s/" TMP_DIR, root);
    if (mkdirs(tmp) != 0) {
        obs_err_set(err, OBS_EIO, "store: filesystem: create %s: %s", tmp, strerror(errno));
        obs_free(root);
        obs_free(fs);
        return NULL;
    }
    sweep_tmp(tmp);
    fs->root = root;
    fs->root_len = strlen(root);
    fs->base.ops = &fs_ops;
    fs->base.impl = fs;
    return &fs->base;
}
