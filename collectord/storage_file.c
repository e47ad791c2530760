/*
 * storage_file.c -- the `file_storage` extension: a directory where components keep state
 * that must survive a restart (here: exporters' persistent sending queues).
 *
 *   extensions: {file_storage: {directory: ./data/collectord/file_storage}}
 *   exporters:  {otlp: {sending_queue: {storage: file_storage}}}
 *
 * As in the Collector, a component asks the extension for its own storage; here that is a
 * subdirectory per exporter (exporter_<id>) holding the queue's WAL (exporter_queue.c).
 * Differences from the Collector's bbolt-backed extension: the files are obs_wal segments,
 * every write is fsynced (the suite's acknowledgement rule; `fsync: false` is refused), and
 * create_directory defaults to true so a fresh lab starts without a manual mkdir.
 */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "cld.h"
#include "core/obs_mem.h"

struct fs_cfg {
    char *directory;
    int create_directory;
    int fsync;
};

static const struct obs_cfmap fs_map[] = {
    {"directory", OBS_CFT_STR, "./data/collectord/file_storage",
     offsetof(struct fs_cfg, directory), "Where component state lives."},
    {"create_directory", OBS_CFT_BOOL, "true", offsetof(struct fs_cfg, create_directory),
     "Create the directory when missing."},
    {"fsync", OBS_CFT_BOOL, "true", offsetof(struct fs_cfg, fsync),
     "Always on: acknowledged data is fsynced."},
    {"timeout", OBS_CFT_IGNORE, NULL, 0, "Accepted."},
    {"compaction", OBS_CFT_IGNORE, NULL, 0, "Accepted; queues compact by checkpoints."},
    {"directory_permissions", OBS_CFT_IGNORE, NULL, 0, "Accepted (0750)."},
    {NULL},
};

struct fstore {
    struct fs_cfg cfg;
};

static int fs_init(struct cld_instance *ins, struct obs_err *err)
{
    struct fstore *f = obs_calloc(1, sizeof(*f));
    if (!f)
        return obs_err_set(err, OBS_ENOMEM, "out of memory");
    ins->data = f;
    int rc = obs_cf_bind(ins->cfg, fs_map, &f->cfg, err);
    if (rc < 0)
        return rc;
    if (!f->cfg.directory || !*f->cfg.directory)
        return obs_cf_error(err, obs_cf_get(ins->cfg, "directory"),
                            "%s: directory must not be empty", ins->id);
    if (!f->cfg.fsync)
        return obs_cf_error(err, obs_cf_get(ins->cfg, "fsync"),
                            "%s: fsync: false is not supported (acknowledged data is fsynced)",
                            ins->id);
    return 0;
}

static int mkdir_p(const char *path)
{
    char tmp[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof tmp)
        return -1;
    memcpy(tmp, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (tmp[i] != '/' && tmp[i] != 0)
            continue;
        char c = tmp[i];
        tmp[i] = 0;
        if (mkdir(tmp, 0750) != 0 && errno != EEXIST)
            return -1;
        tmp[i] = c;
    }
    return 0;
}

static int fs_start(struct cld_instance *ins, struct obs_err *err)
{
    struct fstore *f = ins->data;
    struct stat st;
    if (stat(f->cfg.directory, &st) == 0 && S_ISDIR(st.st_mode))
        return 0;
    if (!f->cfg.create_directory)
        return obs_err_set(err, OBS_EIO, "%s: directory %s does not exist (set "
                                         "create_directory: true)",
                           ins->id, f->cfg.directory);
    if (mkdir_p(f->cfg.directory) != 0)
        return obs_err_set(err, OBS_EIO, "%s: cannot create %s: %s", ins->id,
                           f->cfg.directory, strerror(errno));
    return 0;
}

static void fs_exit(struct cld_instance *ins)
{
    struct fstore *f = ins->data;
    if (!f)
        return;
    obs_cf_unbind(fs_map, &f->cfg);
    obs_free(f);
    ins->data = NULL;
}

const char *cld_file_storage_dir(const struct cld_instance *ext)
{
    if (!ext || ext->p != &cld_extension_file_storage || !ext->data)
        return NULL;
    return ((const struct fstore *)ext->data)->cfg.directory;
}

const struct cld_plugin cld_extension_file_storage = {
    .kind = CLD_EXTENSION,
    .name = "file_storage",
    .signals = 0,
    .init = fs_init,
    .start = fs_start,
    .exit = fs_exit,
};
