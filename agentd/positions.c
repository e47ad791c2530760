/*
 * positions.c -- the positions file: for each tailed path, the byte offset up to which lines
 * were acknowledged by every push client, plus the file's device and inode.
 *
 * File layout (YAML, Promtail-compatible `positions:` section plus an identity section):
 *
 *   # agentd positions
 *   positions:
 *     "/var/log/app.log": "1234"
 *   files:
 *     "/var/log/app.log": "2049:131077"
 *
 * Paths are written as double-quoted strings with JSON escapes (valid YAML too). The inode
 * lets the tailer tell, after a restart, whether the path still names the same file (resume at
 * offset) or a rotated-in new one (start at 0). Promtail's own files (no `files:` section)
 * load with dev = ino = 0, meaning "identity unknown, trust the offset if it fits".
 *
 * Writes are atomic: temp file in the same directory, fsync, rename, fsync of the directory,
 * so a crash leaves either the old or the new file. Entries live in a small array (a host
 * tails tens to hundreds of files; lookups are per poll, not per line). A mutex guards it.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agd.h"
#include "core/obs_mem.h"

struct entry {
    char *path;
    struct agd_pos pos;
};

struct agd_positions {
    char *file;
    pthread_mutex_t mu;
    struct entry *v;
    size_t n, cap;
    int dirty;
};

static struct entry *find(struct agd_positions *p, const char *path)
{
    for (size_t i = 0; i < p->n; i++)
        if (!strcmp(p->v[i].path, path))
            return &p->v[i];
    return NULL;
}

static struct entry *add(struct agd_positions *p, const char *path)
{
    struct entry *e = find(p, path);
    if (e)
        return e;
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 16;
        struct entry *nv = obs_realloc(p->v, cap * sizeof(*nv));
        if (!nv)
            return NULL;
        p->v = nv;
        p->cap = cap;
    }
    char *dup = obs_strdup(path);
    if (!dup)
        return NULL;
    e = &p->v[p->n++];
    memset(e, 0, sizeof(*e));
    e->path = dup;
    return e;
}

/* Parse a JSON-style double-quoted string at s; returns the position after the closing
 * quote, or NULL. The unescaped text is appended to out. */
static const char *parse_qstr(const char *s, struct obs_sbuf *out)
{
    if (*s != '"')
        return NULL;
    s++;
    while (*s && *s != '"') {
        char c = *s++;
        if (c == '\\') {
            char e = *s++;
            switch (e) {
            case 'n': c = '\n'; break;
            case 't': c = '\t'; break;
            case 'r': c = '\r'; break;
            case 'b': c = '\b'; break;
            case 'f': c = '\f'; break;
            case '/': c = '/'; break;
            case '\\': c = '\\'; break;
            case '"': c = '"'; break;
            case 'u': {
                unsigned v = 0;
                for (int i = 0; i < 4; i++) {
                    char h = *s++;
                    v <<= 4;
                    if (h >= '0' && h <= '9')
                        v |= (unsigned)(h - '0');
                    else if (h >= 'a' && h <= 'f')
                        v |= (unsigned)(h - 'a' + 10);
                    else if (h >= 'A' && h <= 'F')
                        v |= (unsigned)(h - 'A' + 10);
                    else
                        return NULL;
                }
                if (v > 0x7f) /* the writer only escapes control characters */
                    return NULL;
                c = (char)v;
                break;
            }
            default:
                return NULL;
            }
        }
        obs_sbuf_putc(out, c);
    }
    if (*s != '"')
        return NULL;
    return s + 1;
}

static int load(struct agd_positions *p, struct obs_err *err)
{
    FILE *f = fopen(p->file, "r");
    if (!f) {
        if (errno == ENOENT)
            return 0;
        return obs_err_set(err, OBS_EIO, "open positions file %s: %s", p->file, strerror(errno));
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int lineno = 0, section = 0, rc = 0; /* section 1 = positions, 2 = files */
    struct obs_sbuf key, val;
    obs_sbuf_init(&key);
    obs_sbuf_init(&val);
    while ((n = getline(&line, &cap, f)) > 0) {
        lineno++;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' '))
            line[--n] = 0;
        if (n == 0 || line[0] == '#')
            continue;
        if (line[0] != ' ') {
            if (!strcmp(line, "positions:"))
                section = 1;
            else if (!strcmp(line, "files:"))
                section = 2;
            else if (!strcmp(line, "positions: {}") || !strcmp(line, "files: {}"))
                section = 0;
            else
                goto bad;
            continue;
        }
        const char *s = line;
        while (*s == ' ')
            s++;
        obs_sbuf_reset(&key);
        obs_sbuf_reset(&val);
        if (*s == '"') {
            s = parse_qstr(s, &key);
        } else { /* plain YAML key as Promtail writes it: path: "offset" */
            const char *c = strstr(s, ": ");
            if (!c)
                goto bad;
            obs_sbuf_append(&key, s, (size_t)(c - s));
            s = c;
        }
        if (!s || s[0] != ':' || s[1] != ' ')
            goto bad;
        s += 2;
        if (*s == '"') {
            s = parse_qstr(s, &val);
            if (!s || *s)
                goto bad;
        } else {
            obs_sbuf_puts(&val, s);
        }
        if (key.oom || val.oom) {
            rc = OBS_ENOMEM;
            break;
        }
        struct entry *e = add(p, key.p ? key.p : "");
        if (!e) {
            rc = OBS_ENOMEM;
            break;
        }
        char *end;
        if (section == 1) {
            long long off = strtoll(val.p ? val.p : "", &end, 10);
            if (*end || off < 0)
                goto bad;
            e->pos.offset = off;
        } else if (section == 2) {
            unsigned long long dev = strtoull(val.p ? val.p : "", &end, 10);
            if (*end != ':')
                goto bad;
            unsigned long long ino = strtoull(end + 1, &end, 10);
            if (*end)
                goto bad;
            e->pos.dev = dev;
            e->pos.ino = ino;
        } else {
            goto bad;
        }
        continue;
    bad:
        rc = obs_err_set(err, OBS_EINVAL, "%s:%d: malformed positions line", p->file, lineno);
        break;
    }
    free(line);
    obs_sbuf_deinit(&key);
    obs_sbuf_deinit(&val);
    fclose(f);
    return rc;
}

struct agd_positions *agd_positions_open(const char *path, struct obs_err *err)
{
    struct agd_positions *p = obs_calloc(1, sizeof(*p));
    if (!p || !(p->file = obs_strdup(path))) {
        obs_free(p);
        obs_err_set(err, OBS_ENOMEM, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&p->mu, NULL);
    if (load(p, err) < 0) {
        agd_positions_free(p);
        return NULL;
    }
    return p;
}

int agd_positions_get(struct agd_positions *p, const char *path, struct agd_pos *out)
{
    pthread_mutex_lock(&p->mu);
    struct entry *e = find(p, path);
    if (e)
        *out = e->pos;
    pthread_mutex_unlock(&p->mu);
    return e ? 0 : OBS_ENOENT;
}

int agd_positions_set(struct agd_positions *p, const char *path, const struct agd_pos *pos)
{
    pthread_mutex_lock(&p->mu);
    struct entry *e = add(p, path);
    if (e && memcmp(&e->pos, pos, sizeof(*pos))) {
        e->pos = *pos;
        p->dirty = 1;
    }
    pthread_mutex_unlock(&p->mu);
    return e ? 0 : OBS_ENOMEM;
}

void agd_positions_remove(struct agd_positions *p, const char *path)
{
    pthread_mutex_lock(&p->mu);
    struct entry *e = find(p, path);
    if (e) {
        obs_free(e->path);
        *e = p->v[--p->n];
        p->dirty = 1;
    }
    pthread_mutex_unlock(&p->mu);
}

size_t agd_positions_count(struct agd_positions *p)
{
    pthread_mutex_lock(&p->mu);
    size_t n = p->n;
    pthread_mutex_unlock(&p->mu);
    return n;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int agd_positions_sync(struct agd_positions *p, struct obs_err *err)
{
    struct obs_sbuf b;
    int rc = 0;
    obs_sbuf_init(&b);
    pthread_mutex_lock(&p->mu);
    if (!p->dirty) {
        pthread_mutex_unlock(&p->mu);
        return 0;
    }
    obs_sbuf_puts(&b, "# agentd positions: offsets acknowledged by every client\n");
    obs_sbuf_puts(&b, p->n ? "positions:\n" : "positions: {}\n");
    for (size_t i = 0; i < p->n; i++) {
        obs_sbuf_puts(&b, "  ");
        obs_sbuf_json_str(&b, p->v[i].path, strlen(p->v[i].path));
        obs_sbuf_printf(&b, ": \"%lld\"\n", (long long)p->v[i].pos.offset);
    }
    obs_sbuf_puts(&b, p->n ? "files:\n" : "files: {}\n");
    for (size_t i = 0; i < p->n; i++) {
        obs_sbuf_puts(&b, "  ");
        obs_sbuf_json_str(&b, p->v[i].path, strlen(p->v[i].path));
        obs_sbuf_printf(&b, ": \"%llu:%llu\"\n", (unsigned long long)p->v[i].pos.dev,
                        (unsigned long long)p->v[i].pos.ino);
    }
    p->dirty = 0;
    pthread_mutex_unlock(&p->mu);
    if (b.oom) {
        rc = obs_err_set(err, OBS_ENOMEM, "out of memory");
        goto out;
    }

    size_t flen = strlen(p->file);
    char *tmp = obs_malloc(flen + 8), *dircopy = obs_strdup(p->file);
    if (!tmp || !dircopy) {
        obs_free(tmp);
        obs_free(dircopy);
        rc = obs_err_set(err, OBS_ENOMEM, "out of memory");
        goto out;
    }
    snprintf(tmp, flen + 8, "%s.tmp", p->file);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 || write_all(fd, b.p, b.len) < 0 || fsync(fd) < 0) {
        rc = obs_err_set(err, OBS_EIO, "write %s: %s", tmp, strerror(errno));
        if (fd >= 0)
            close(fd);
        unlink(tmp);
    } else {
        close(fd);
        if (rename(tmp, p->file) < 0) {
            rc = obs_err_set(err, OBS_EIO, "rename %s: %s", tmp, strerror(errno));
            unlink(tmp);
        } else {
            int dfd = open(dirname(dircopy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            if (dfd >= 0) {
                fsync(dfd);
                close(dfd);
            }
        }
    }
    if (rc < 0) { /* try again at the next sync */
        pthread_mutex_lock(&p->mu);
        p->dirty = 1;
        pthread_mutex_unlock(&p->mu);
    }
    obs_free(tmp);
    obs_free(dircopy);
out:
    obs_sbuf_deinit(&b);
    return rc;
}

void agd_positions_free(struct agd_positions *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n; i++)
        obs_free(p->v[i].path);
    obs_free(p->v);
    obs_free(p->file);
    pthread_mutex_destroy(&p->mu);
    obs_free(p);
}
