/*
 * obs_store.c -- object store front: picks a backend from configuration (see obs_store.h).
 *
 * The config node follows Mimir's `blocks_storage` / `common.storage` shape:
 *     backend: filesystem          # default
 *     filesystem:
 *       dir: ./data/blocks
 *     s3:                          # backend: s3 (see obs_store_s3.h)
 *       endpoint: 127.0.0.1:9000
 *       bucket_name: blocks
 * Sibling keys that belong to the caller's section (tsdb:, bucket_store:, ...) are left
 * alone: the caller binds its own section and hands us the node. Inside `filesystem:` unknown
 * keys fail with file:line:col, as everywhere else.
 */
#include "store/obs_store.h"
#include "store/obs_store_s3.h"
#include "core/obs_mem.h"

#include <string.h>

/* Bind the `filesystem:` sub-map: only `dir` is known. */
static int fs_dir_from(const struct obs_cf_node *fs, const char **dir, struct obs_err *err)
{
    if (fs == NULL || fs->type == OBS_CF_NULL)
        return OBS_OK;
    if (fs->type != OBS_CF_MAP)
        return obs_cf_error(err, fs, "expected a map");
    for (size_t i = 0; i < fs->n; i++) {
        const struct obs_cf_node *c = fs->items[i];
        if (c->key != NULL && strcmp(c->key, "dir") == 0) {
            int rc = obs_cf_str(c, dir, err);
            if (rc != OBS_OK)
                return rc;
            if (*dir == NULL || (*dir)[0] == '\0')
                return obs_cf_error(err, c, "must not be empty");
            continue;
        }
        return obs_cf_error(err, c, "unknown key (filesystem supports: dir)");
    }
    return OBS_OK;
}

/*
 * Open the backend named by cfg's `backend` key (default "filesystem"); cfg may be NULL, which
 * means filesystem at default_dir. Returns a store owned by the caller (obs_store_close) or
 * NULL with err set: unknown backend names are OBS_EINVAL with the node's position; for
 * `backend: s3` the `s3:` map is bound by obs_store_s3_open_cf (unknown keys fail with
 * file:line:col). Not thread-safe; the store itself is.
 */
struct obs_store *obs_store_open(const struct obs_cf_node *cfg, const char *default_dir,
                                 struct obs_err *err)
{
    const char *backend = "filesystem";
    const char *dir = default_dir;
    if (cfg != NULL && cfg->type != OBS_CF_NULL) {
        if (cfg->type != OBS_CF_MAP) {
            obs_cf_error(err, cfg, "expected a map with backend: and filesystem:");
            return NULL;
        }
        const struct obs_cf_node *b = obs_cf_get(cfg, "backend");
        if (b != NULL && b->type != OBS_CF_NULL) {
            if (obs_cf_str(b, &backend, err) != OBS_OK)
                return NULL;
            if (backend == NULL || backend[0] == '\0')
                backend = "filesystem";
        }
        if (strcmp(backend, "filesystem") == 0) {
            if (fs_dir_from(obs_cf_get(cfg, "filesystem"), &dir, err) != OBS_OK)
                return NULL;
        } else if (strcmp(backend, "s3") == 0) {
            return obs_store_s3_open_cf(obs_cf_get(cfg, "s3"), err);
        } else {
            obs_cf_error(err, b, "unknown backend \"%s\" (supported: filesystem, s3)",
                         backend);
            return NULL;
        }
    }
    if (dir == NULL || dir[0] == '\0') {
        obs_err_set(err, OBS_EINVAL, "store: filesystem backend needs a directory (dir)");
        return NULL;
    }
    return obs_store_fs_open(dir, err);
}

/* Close any backend. NULL is fine. */
void obs_store_close(struct obs_store *s)
{
    if (s != NULL)
        s->ops->close(s);
}
