/*
 * compactor.c -- metricsd's compactor component (Mimir's): per tenant, on an interval,
 *   1. deletes blocks whose deletion-mark.json is older than compactor.deletion_delay
 *      (meta.json first, so the block turns incomplete and nobody reads it; then the data;
 *      then the mark);
 *   2. marks for deletion the blocks wholly older than the tenant's
 *      compactor_blocks_retention_period (limits / overrides; 0 = keep);
 *   3. plans and runs compactions (mtd_compactor_plan, Prometheus' leveled planner over
 *      compactor.block_ranges, e.g. 2h -> 12h -> 24h, with overlapping blocks first, which is
 *      vertical compaction: replicas and re-shipped ranges are merged with one sample per
 *      timestamp). The sources are downloaded to compactor.data_dir, merged, written as one
 *      block whose meta.json records compaction {level, sources, parents}, uploaded (meta.json
 *      last), and only then are the sources marked for deletion
 *      (<tenant>/<ULID>/deletion-mark.json = {"id","deletion_time","version":1}).
 * Queries never see a half-deleted block: the store-gateway skips marked blocks (after its
 * ignore_deletion_mark_delay) and blocks without meta.json, and the merged storage dedups the
 * overlap while both the sources and the result are visible.
 *
 * Work is bounded per timer tick: at most MAX_PER_TICK compactions, then the tick ends and the
 * next one (1s later) continues until the plan is empty; the interval timer starts a new
 * round every compaction_interval. A compaction merges its group in memory on the loop
 * thread (acceptable for the block sizes one metricsd holds; documented limitation).
 *
 * Config (`compactor:`):  block_ranges: [2h, 12h, 24h]   compaction_interval: 1h
 *   deletion_delay: 12h   data_dir: ./data/metricsd/compactor   (Mimir's names and defaults)
 * POST /compactor/run runs one round now (tests and operators).
 */
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/obs_arena.h"
#include "core/obs_log.h"
#include "core/obs_mem.h"
#include "core/obs_sbuf.h"
#include "core/obs_time.h"
#include "http/obs_http.h"
#include "metricsd/blocks.h"
#include "metricsd/metricsd.h"
#include "metricsd/tsdb/block_read.h"
#include "metricsd/tsdb/block_write.h"
#include "store/obs_store.h"

#define MAX_RANGES 8
#define MAX_PER_TICK 4
#define MAX_GROUP 64

struct ranges {
    int64_t v[MAX_RANGES];
    size_t n;
};

struct comp_cfg {
    struct ranges block_ranges;
    int64_t compaction_interval_ms;
    int64_t deletion_delay_ms;
    char *data_dir;
};

static int bind_ranges(const struct obs_cf_node *n, void *dst, struct obs_err *err)
{
    struct ranges *r = dst;
    r->n = 0;
    if (n == NULL || n->type == OBS_CF_NULL)
        return 0;
    size_t cnt = n->type == OBS_CF_SEQ ? n->n : 1;
    if (n->type == OBS_CF_SCALAR && n->value != NULL && strchr(n->value, ',') != NULL) {
        /* flag form: -compactor.block-ranges=2h,12h,24h */
        char buf[256];
        snprintf(buf, sizeof buf, "%s", n->value);
        for (char *s = strtok(buf, ","); s != NULL && r->n < MAX_RANGES; s = strtok(NULL, ",")) {
            struct obs_cf_node item = *n;
            item.value = s;
            if (obs_cf_duration(&item, &r->v[r->n], err) != 0)
                return OBS_EINVAL;
            r->n++;
        }
    } else {
        if (cnt > MAX_RANGES)
            return obs_cf_error(err, n, "at most %d ranges", MAX_RANGES);
        for (size_t i = 0; i < cnt; i++) {
            const struct obs_cf_node *it = n->type == OBS_CF_SEQ ? n->items[i] : n;
            if (obs_cf_duration(it, &r->v[i], err) != 0)
                return OBS_EINVAL;
            r->n++;
        }
    }
    for (size_t i = 0; i < r->n; i++)
        if (r->v[i] <= 0 || (i > 0 && (r->v[i] <= r->v[i - 1] || r->v[i] % r->v[i - 1] != 0)))
            return obs_cf_error(err, n,
                                "ranges must be positive, increasing, each a multiple "
                                "of the previous");
    return 0;
}

static const struct obs_cfmap comp_map[] = {
    {"block_ranges", OBS_CFT_CUSTOM, "2h,12h,24h", offsetof(struct comp_cfg, block_ranges),
     "Compaction levels (the first is the head's block range)", NULL, bind_ranges},
    {"compaction_interval", OBS_CFT_DURATION, "1h",
     offsetof(struct comp_cfg, compaction_interval_ms), "How often a compaction round starts", NULL,
     NULL},
    {"deletion_delay", OBS_CFT_DURATION, "12h", offsetof(struct comp_cfg, deletion_delay_ms),
     "Time between marking a block for deletion and deleting it", NULL, NULL},
    {"data_dir", OBS_CFT_STR, "./data/metricsd/compactor", offsetof(struct comp_cfg, data_dir),
     "Scratch directory for blocks being compacted", NULL, NULL},
    {"cleanup_interval", OBS_CFT_IGNORE, NULL, 0, "accepted; cleanup runs every round", NULL, NULL},
    {"compaction_concurrency", OBS_CFT_IGNORE, NULL, 0, "accepted; one at a time", NULL, NULL},
    {"sharding_ring", OBS_CFT_IGNORE, NULL, 0, "accepted; one compactor", NULL, NULL},
    {NULL, 0, NULL, 0, NULL, NULL, NULL},
};

struct mtd_compactor {
    struct obs_ctx *ctx;
    struct mtd_blocks *blocks;
    struct comp_cfg cfg;
    struct event *timer; /* compaction_interval */
    struct event *step;  /* continues a round in bounded steps */
    uint64_t compactions, deleted, marked;
};

/* ---- planning ---------------------------------------------------------------------------- */

static const struct mtd_plan_block *g_sort_b; /* qsort context (loop thread only) */

static int cmp_idx(const void *x, const void *y)
{
    const struct mtd_plan_block *a = &g_sort_b[*(const size_t *)x];
    const struct mtd_plan_block *b = &g_sort_b[*(const size_t *)y];
    if (a->mint != b->mint)
        return a->mint < b->mint ? -1 : 1;
    if (a->maxt != b->maxt)
        return a->maxt < b->maxt ? -1 : 1;
    return strcmp(a->ulid, b->ulid);
}

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

int mtd_compactor_plan(const struct mtd_plan_block *b, size_t n, const int64_t *ranges,
                       size_t nranges, size_t *idx, int *vertical)
{
    *vertical = 0;
    if (n < 2)
        return 0;
    size_t *o = obs_malloc(n * sizeof *o);
    if (o == NULL)
        return OBS_ENOMEM;
    for (size_t i = 0; i < n; i++)
        o[i] = i;
    g_sort_b = b;
    qsort(o, n, sizeof *o, cmp_idx);
    g_sort_b = NULL;
    size_t k = 0;
    /* 1. overlapping blocks (the first group of them in time order) */
    for (size_t i = 0; i < n && k == 0;) {
        int64_t gmax = b[o[i]].maxt;
        size_t j = i + 1;
        while (j < n && b[o[j]].mint < gmax) {
            if (b[o[j]].maxt > gmax)
                gmax = b[o[j]].maxt;
            j++;
        }
        if (j - i > 1) {
            for (size_t q = i; q < j; q++)
                idx[k++] = o[q];
            *vertical = 1;
        }
        i = j;
    }
    /* 2. leveled: the newest block (largest mint) stays out, as in Prometheus */
    size_t m = n - 1;
    int64_t high = m > 0 ? b[o[m - 1]].mint : 0;
    for (size_t r = 1; r < nranges && k == 0 && m > 1; r++) {
        int64_t iv = ranges[r];
        for (size_t i = 0; i < m && k == 0;) {
            int64_t w = floor_div(b[o[i]].mint, iv);
            size_t j = i;
            size_t start = k;
            while (j < m && floor_div(b[o[j]].mint, iv) == w) {
                if (b[o[j]].maxt <= (w + 1) * iv) /* fits in the window */
                    idx[k++] = o[j];
                j++;
            }
            size_t cnt = k - start;
            int ok = cnt > 1;
            if (ok) {
                int64_t gmin = b[idx[start]].mint, gmax = b[idx[start]].maxt;
                for (size_t q = start; q < k; q++)
                    if (b[idx[q]].maxt > gmax)
                        gmax = b[idx[q]].maxt;
                ok = gmax - gmin == iv || gmax <= high;
            }
            if (!ok)
                k = start;
            i = j;
        }
    }
    obs_free(o);
    return (int)k;
}

/* ---- bucket reading ---------------------------------------------------------------------- */

struct cblock {
    char ulid[27];
    json_t *meta;
    int64_t mint, maxt;
    int level;
    int64_t mark_time; /* seconds; 0 = not marked */
};

struct cblocks {
    struct cblock *v;
    size_t n;
};

static void cblocks_free(struct cblocks *l)
{
    for (size_t i = 0; i < l->n; i++)
        json_decref(l->v[i].meta);
    obs_free(l->v);
    l->v = NULL;
    l->n = 0;
}

struct names {
    char **v;
    size_t n, skip;
    int oom;
};

static int collect_dir(const char *key, void *arg)
{
    struct names *l = arg;
    size_t kl = strlen(key);
    if (kl <= l->skip + 1 || key[kl - 1] != '/' || key[l->skip] == '.')
        return 0;
    char **nv = obs_realloc(l->v, (l->n + 1) * sizeof *nv);
    if (nv == NULL || (nv[l->n] = obs_strndup(key + l->skip, kl - l->skip - 1)) == NULL) {
        if (nv)
            l->v = nv;
        l->oom = 1;
        return 1;
    }
    l->v = nv;
    l->n++;
    return 0;
}

static void names_free(struct names *l)
{
    for (size_t i = 0; i < l->n; i++)
        obs_free(l->v[i]);
    obs_free(l->v);
}

static json_t *get_json(struct obs_store *st, const char *key, int *absent, struct obs_err *err)
{
    struct obs_sbuf b;
    obs_sbuf_init(&b);
    *absent = 0;
    int rc = obs_store_get(st, key, 0, 0, &b, err);
    json_t *j = NULL;
    if (rc == OBS_ENOENT)
        *absent = 1;
    else if (rc == 0)
        j = json_loadb(b.p ? b.p : "", b.len, 0, NULL);
    obs_sbuf_deinit(&b);
    return j;
}

static int list_blocks(struct obs_store *st, const char *tenant, struct cblocks *out,
                       struct obs_err *err)
{
    char prefix[300];
    snprintf(prefix, sizeof prefix, "%s/", tenant);
    struct names l = {.skip = strlen(prefix)};
    int rc = obs_store_list(st, prefix, "/", collect_dir, &l, err);
    if (rc == 0 && l.oom)
        rc = obs_err_set(err, OBS_ENOMEM, "out of memory");
    for (size_t i = 0; rc == 0 && i < l.n; i++) {
        if (!mtd_tsdb_ulid_valid(l.v[i]))
            continue;
        char key[512];
        int absent;
        struct obs_err e = {0};
        snprintf(key, sizeof key, "%s/%s/meta.json", tenant, l.v[i]);
        json_t *meta = get_json(st, key, &absent, &e);
        if (meta == NULL)
            continue; /* partial block: being uploaded, or deleted */
        json_t *mi = json_object_get(meta, "minTime"), *ma = json_object_get(meta, "maxTime");
        if (!json_is_integer(mi) || !json_is_integer(ma)) {
            json_decref(meta);
            continue;
        }
        struct cblock *nv = obs_realloc(out->v, (out->n + 1) * sizeof *nv);
        if (nv == NULL) {
            json_decref(meta);
            rc = obs_err_set(err, OBS_ENOMEM, "out of memory");
            break;
        }
        out->v = nv;
        struct cblock *b = &out->v[out->n++];
        memset(b, 0, sizeof *b);
        snprintf(b->ulid, sizeof b->ulid, "%s", l.v[i]);
        b->meta = meta;
        b->mint = json_integer_value(mi);
        b->maxt = json_integer_value(ma);
        b->level =
            (int)json_integer_value(json_object_get(json_object_get(meta, "compaction"), "level"));
        if (b->level < 1)
            b->level = 1;
        snprintf(key, sizeof key, "%s/%s/deletion-mark.json", tenant, l.v[i]);
        json_t *mark = get_json(st, key, &absent, &e);
        if (mark != NULL) {
            b->mark_time = json_integer_value(json_object_get(mark, "deletion_time"));
            if (b->mark_time <= 0)
                b->mark_time = 1;
            json_decref(mark);
        } else if (!absent) {
            b->mark_time = obs_now_ms() / 1000; /* unreadable mark: treat as fresh */
        }
    }
    names_free(&l);
    return rc;
}

static int write_mark(struct mtd_compactor *c, const char *tenant, const char *ulid,
                      struct obs_err *err)
{
    char key[512], body[160];
    snprintf(key, sizeof key, "%s/%s/deletion-mark.json", tenant, ulid);
    int n = snprintf(body, sizeof body, "{\"id\":\"%s\",\"deletion_time\":%lld,\"version\":1}",
                     ulid, (long long)(obs_now_ms() / 1000));
    int rc = obs_store_put(c->blocks->store, key, body, (size_t)n, err);
    if (rc == 0)
        c->marked++;
    return rc;
}

/* ---- compaction --------------------------------------------------------------------------- */

struct coll {
    struct obs_arena *ar;
    struct mtd_series *v;
    size_t n, cap;
    int oom;
};

static int coll_fn(void *arg, const struct obs_label *labels, size_t nlabels,
                   const struct mtd_sample *samples, size_t nsamples)
{
    struct coll *c = arg;
    if (c->n == c->cap) {
        size_t nc = c->cap ? c->cap * 2 : 256;
        struct mtd_series *nv = obs_realloc(c->v, nc * sizeof *nv);
        if (nv == NULL) {
            c->oom = 1;
            return 1;
        }
        c->v = nv;
        c->cap = nc;
    }
    struct obs_label *l = obs_arena_alloc(c->ar, (nlabels ? nlabels : 1) * sizeof *l);
    struct mtd_sample *s = obs_arena_alloc(c->ar, (nsamples ? nsamples : 1) * sizeof *s);
    if (l == NULL || s == NULL) {
        c->oom = 1;
        return 1;
    }
    for (size_t i = 0; i < nlabels; i++) {
        l[i].name = obs_arena_strdup(c->ar, labels[i].name);
        l[i].value = obs_arena_strdup(c->ar, labels[i].value);
        if (l[i].name == NULL || l[i].value == NULL) {
            c->oom = 1;
            return 1;
        }
    }
    memcpy(s, samples, nsamples * sizeof *s);
    c->v[c->n++] =
        (struct mtd_series){.labels = l, .nlabels = nlabels, .samples = s, .nsamples = nsamples};
    return 0;
}

/* Rewrite dir/meta.json's compaction section: level, sources (union), parents. */
static int set_compaction_meta(const char *dir, struct cblock **g, size_t n, int level,
                               struct obs_err *err)
{
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/meta.json", dir);
    json_t *meta = json_load_file(path, 0, NULL);
    if (meta == NULL)
        return obs_err_set(err, OBS_EIO, "compactor: cannot read %s", path);
    json_t *comp = json_object(), *sources = json_array(), *parents = json_array();
    int rc = 0;
    if (comp == NULL || sources == NULL || parents == NULL)
        rc = OBS_ENOMEM;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        json_t *src = json_object_get(json_object_get(g[i]->meta, "compaction"), "sources");
        size_t k;
        json_t *v;
        if (json_is_array(src) && json_array_size(src) > 0) {
            json_array_foreach(src, k, v)
            {
                int dup = 0;
                size_t q;
                json_t *w;
                json_array_foreach(sources, q, w) dup |= json_equal(v, w);
                if (!dup)
                    json_array_append(sources, v);
            }
        } else {
            json_array_append_new(sources, json_string(g[i]->ulid));
        }
        json_array_append_new(parents,
                              json_pack("{s:s,s:I,s:I}", "ulid", g[i]->ulid, "minTime",
                                        (json_int_t)g[i]->mint, "maxTime", (json_int_t)g[i]->maxt));
    }
    if (rc == 0) {
        json_object_set_new(comp, "level", json_integer(level));
        json_object_set(comp, "sources", sources);
        json_object_set(comp, "parents", parents);
        json_object_set(meta, "compaction", comp);
        char tmp[PATH_MAX + 32];
        snprintf(tmp, sizeof tmp, "%s.tmp", path);
        if (json_dump_file(meta, tmp, JSON_INDENT(2)) != 0 || rename(tmp, path) != 0)
            rc = obs_err_set(err, OBS_EIO, "compactor: cannot write %s", path);
    } else {
        obs_err_set(err, OBS_ENOMEM, "out of memory");
    }
    json_decref(comp);
    json_decref(sources);
    json_decref(parents);
    json_decref(meta);
    return rc;
}

/* Compact group g[0..n) of tenant into one block; then mark the sources. */
static int compact(struct mtd_compactor *c, const char *tenant, struct cblock **g, size_t n,
                   int vertical, struct obs_err *err)
{
    char work[PATH_MAX - 128], dir[PATH_MAX];
    snprintf(work, sizeof work, "%s/%s", c->cfg.data_dir, tenant);
    mtd_rm_rf(work);
    int rc = obs_mkdir_p(work, err);
    struct coll col = {.ar = obs_arena_new(256 * 1024)};
    struct mtd_tsdb_block **open = obs_calloc(n, sizeof *open);
    if (rc == 0 && (col.ar == NULL || open == NULL))
        rc = obs_err_set(err, OBS_ENOMEM, "out of memory");
    int64_t mint = INT64_MAX, maxt = INT64_MIN;
    int level = 1;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        snprintf(dir, sizeof dir, "%s/src-%s", work, g[i]->ulid);
        if ((rc = mtd_block_download(c->blocks->store, tenant, g[i]->ulid, dir, err)) != 0)
            break;
        if ((rc = mtd_tsdb_block_open(dir, &open[i], err)) != 0)
            break;
        /* refuse to propagate damage: a compaction source must verify completely */
        if ((rc = mtd_tsdb_block_verify(open[i], err)) != 0)
            break;
        if ((rc = mtd_tsdb_block_select(open[i], NULL, 0, INT64_MIN, INT64_MAX, coll_fn, &col,
                                        err)) != 0)
            break;
        if (col.oom)
            rc = obs_err_set(err, OBS_ENOMEM, "out of memory");
        if (g[i]->mint < mint)
            mint = g[i]->mint;
        if (g[i]->maxt > maxt)
            maxt = g[i]->maxt;
        if (g[i]->level >= level)
            level = g[i]->level + 1;
    }
    struct mtd_series_set *merged = NULL;
    if (rc == 0 && mtd_series_merge(col.v, col.n, 0, &merged) != 0)
        rc = obs_err_set(err, OBS_ENOMEM, "out of memory");
    struct mtd_tsdb_block_info info = {0};
    if (rc == 0) {
        struct mtd_tsdb_series_in *in = obs_calloc(merged->nseries + 1, sizeof *in);
        if (in == NULL)
            rc = obs_err_set(err, OBS_ENOMEM, "out of memory");
        for (size_t i = 0; rc == 0 && i < merged->nseries; i++)
            in[i] = (struct mtd_tsdb_series_in){merged->series[i].labels,
                                                merged->series[i].nlabels,
                                                merged->series[i].samples,
                                                merged->series[i].nsamples,
                                                NULL,
                                                0};
        struct mtd_tsdb_write_opts wo = {.range_mint = mint, .range_maxt = maxt};
        if (rc == 0)
            rc = mtd_tsdb_block_write(work, in, merged->nseries, &wo, &info, err);
        obs_free(in);
    }
    if (rc == 0) {
        snprintf(dir, sizeof dir, "%s/%s", work, info.ulid);
        rc = set_compaction_meta(dir, g, n, level, err);
        if (rc == 0)
            rc = mtd_block_upload(c->blocks->store, tenant, dir, info.ulid, err);
    }
    for (size_t i = 0; i < n && open; i++)
        mtd_tsdb_block_close(open[i]);
    obs_free(open);
    mtd_series_set_free(merged);
    obs_free(col.v);
    obs_arena_free(col.ar);
    mtd_rm_rf(work);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = write_mark(c, tenant, g[i]->ulid, err);
    c->compactions++;
    obs_clog_info("compactor",
                  "compacted\ttenant=%s result=%s level=%d sources=%zu "
                  "vertical=%d mint=%lld maxt=%lld samples=%llu",
                  tenant, info.ulid, level, n, vertical, (long long)info.mint, (long long)info.maxt,
                  (unsigned long long)info.nsamples);
    return rc;
}

/* One tenant: deletions, retention marks, at most *budget compactions. Returns 0 or error;
 * *more = 1 when compactions remain. */
static int tenant_round(struct mtd_compactor *c, const char *tenant, int *budget, int *more,
                        struct obs_err *err)
{
    struct cblocks l = {0};
    int rc = list_blocks(c->blocks->store, tenant, &l, err);
    int64_t now_s = obs_now_ms() / 1000;
    int changed = 0;
    const struct mtd_limits *lim = mtd_limits_for(mtd_app_of(c->ctx), tenant);
    int64_t retention = lim ? lim->compactor_blocks_retention_period_ms : 0;
    for (size_t i = 0; rc == 0 && i < l.n; i++) {
        struct cblock *b = &l.v[i];
        if (b->mark_time > 0) {
            if ((now_s - b->mark_time) * 1000 >= c->cfg.deletion_delay_ms) {
                if ((rc = mtd_block_delete(c->blocks->store, tenant, b->ulid, err)) == 0) {
                    c->deleted++;
                    changed = 1;
                    obs_clog_info("compactor", "deleted\ttenant=%s block=%s", tenant, b->ulid);
                }
            }
        } else if (retention > 0 && b->maxt < obs_now_ms() - retention) {
            if ((rc = write_mark(c, tenant, b->ulid, err)) == 0) {
                b->mark_time = now_s;
                changed = 1;
                obs_clog_info("compactor", "retention: marked\ttenant=%s block=%s", tenant,
                              b->ulid);
            }
        }
    }
    while (rc == 0 && *budget > 0) {
        struct mtd_plan_block pb[MAX_GROUP * 4];
        struct cblock *map[MAX_GROUP * 4];
        size_t np = 0;
        for (size_t i = 0; i < l.n && np < MAX_GROUP * 4; i++) {
            if (l.v[i].mark_time > 0)
                continue;
            pb[np] = (struct mtd_plan_block){l.v[i].ulid, l.v[i].mint, l.v[i].maxt, l.v[i].level};
            map[np++] = &l.v[i];
        }
        size_t idx[MAX_GROUP * 4];
        int vertical;
        int k = mtd_compactor_plan(pb, np, c->cfg.block_ranges.v, c->cfg.block_ranges.n, idx,
                                   &vertical);
        if (k < 0) {
            rc = obs_err_set(err, k, "out of memory");
            break;
        }
        if (k == 0)
            break;
        if (k > MAX_GROUP)
            k = MAX_GROUP;
        struct cblock *g[MAX_GROUP];
        for (int i = 0; i < k; i++)
            g[i] = map[idx[i]];
        (*budget)--;
        changed = 1;
        if ((rc = compact(c, tenant, g, (size_t)k, vertical, err)) != 0)
            break;
        for (int i = 0; i < k; i++)
            g[i]->mark_time = now_s;
        if (*budget == 0)
            *more = 1; /* the next step re-plans with the new block listed */
    }
    cblocks_free(&l);
    if (changed && c->blocks->sg != NULL)
        mtd_store_gateway_invalidate(c->blocks->sg);
    return rc;
}

/* One bounded step of a round. Returns 1 when more work remains, 0 when done, or error. */
static int round_step(struct mtd_compactor *c, struct obs_err *err)
{
    struct names t = {.skip = 0};
    int rc = obs_store_list(c->blocks->store, "", "/", collect_dir, &t, err);
    if (rc == 0 && t.oom)
        rc = obs_err_set(err, OBS_ENOMEM, "out of memory");
    int budget = MAX_PER_TICK, more = 0;
    for (size_t i = 0; rc == 0 && i < t.n; i++) {
        struct obs_err te = {0};
        int trc = tenant_round(c, t.v[i], &budget, &more, &te);
        if (trc == OBS_ENOMEM) {
            rc = obs_err_set(err, OBS_ENOMEM, "out of memory");
        } else if (trc != 0) {
            /* one tenant's trouble (a corrupt source block...) must not stop the others */
            obs_clog_warn("compactor", "tenant %s: %s", t.v[i], te.msg);
        }
        if (budget == 0)
            more = 1;
    }
    names_free(&t);
    return rc != 0 ? rc : more;
}

int mtd_compactor_run(struct obs_ctx *ctx, struct obs_err *err)
{
    struct mtd_blocks *b = mtd_blocks_of(ctx);
    if (b == NULL || b->compactor == NULL)
        return obs_err_set(err, OBS_EAGAIN, "the compactor is not running in this process");
    for (int i = 0; i < 1000; i++) {
        int rc = round_step(b->compactor, err);
        if (rc <= 0)
            return rc;
    }
    return 0;
}

static void on_step(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct mtd_compactor *c = arg;
    struct obs_err err = {0};
    int rc = round_step(c, &err);
    if (rc < 0)
        obs_clog_warn("compactor", "compaction round failed: %s", err.msg);
    if (rc == 1) {
        struct timeval tv = {1, 0};
        event_add(c->step, &tv);
    }
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct mtd_compactor *c = arg;
    if (!event_pending(c->step, EV_TIMEOUT, NULL))
        on_step(fd, what, arg);
}

/* POST /compactor/run: one full round now; 200 with counters. */
static void h_run(struct obs_http_req *r, void *arg)
{
    struct mtd_compactor *c = arg;
    struct obs_err err = {0};
    int rc = mtd_compactor_run(c->ctx, &err);
    if (rc != 0) {
        obs_http_reply_text(r, 500, "compaction failed: %s\n", err.msg);
        return;
    }
    struct obs_sbuf b;
    obs_sbuf_init(&b);
    obs_sbuf_printf(&b, "{\"compactions\":%llu,\"marked\":%llu,\"deleted\":%llu}\n",
                    (unsigned long long)c->compactions, (unsigned long long)c->marked,
                    (unsigned long long)c->deleted);
    obs_http_reply_sbuf(r, 200, "application/json", &b);
    obs_sbuf_deinit(&b);
}

int mtd_compactor_init(struct obs_ctx *ctx, struct obs_err *err)
{
    struct mtd_compactor *c = obs_calloc(1, sizeof *c);
    if (c == NULL)
        return obs_err_set(err, OBS_ENOMEM, "out of memory");
    c->ctx = ctx;
    int rc = obs_cf_bind(obs_cf_get(ctx->cfg, "compactor"), comp_map, &c->cfg, err);
    if (rc == 0 && c->cfg.block_ranges.n == 0)
        rc = obs_err_set(err, OBS_EINVAL, "compactor.block_ranges: needs at least one range");
    if (rc == 0 && c->cfg.compaction_interval_ms <= 0)
        rc = obs_err_set(err, OBS_EINVAL, "compactor.compaction_interval: must be positive");
    if (rc == 0)
        rc = obs_mkdir_p(c->cfg.data_dir, err);
    if (rc == 0 && (c->blocks = mtd_blocks_ref(ctx, err)) == NULL)
        rc = err && err->code ? err->code : OBS_EIO;
    if (rc == 0) {
        c->timer = event_new(ctx->base, -1, EV_PERSIST, on_timer, c);
        c->step = evtimer_new(ctx->base, on_step, c);
        struct timeval tv = {(time_t)(c->cfg.compaction_interval_ms / 1000),
                             (suseconds_t)(c->cfg.compaction_interval_ms % 1000) * 1000};
        if (c->timer == NULL || c->step == NULL || event_add(c->timer, &tv) != 0)
            rc = obs_err_set(err, OBS_ENOMEM, "compactor: cannot start the timer");
    }
    if (rc == 0 && obs_http_route(ctx->http, "POST", "/compactor/run", h_run, c) != 0)
        rc = obs_err_set(err, OBS_ENOMEM, "compactor: cannot register routes");
    if (rc != 0) {
        if (c->timer)
            event_free(c->timer);
        if (c->step)
            event_free(c->step);
        if (c->blocks)
            mtd_blocks_unref(ctx);
        obs_cf_unbind(comp_map, &c->cfg);
        obs_free(c);
        return rc;
    }
    c->blocks->compactor = c;
    obs_clog_info("compactor", "ready\tranges=%zu interval=%llds deletion_delay=%llds",
                  c->cfg.block_ranges.n, (long long)(c->cfg.compaction_interval_ms / 1000),
                  (long long)(c->cfg.deletion_delay_ms / 1000));
    return 0;
}

void mtd_compactor_stop(struct obs_ctx *ctx)
{
    struct mtd_blocks *b = mtd_blocks_of(ctx);
    if (b == NULL || b->compactor == NULL)
        return;
    struct mtd_compactor *c = b->compactor;
    b->compactor = NULL;
    event_free(c->timer);
    event_free(c->step);
    obs_cf_unbind(comp_map, &c->cfg);
    obs_free(c);
    mtd_blocks_unref(ctx);
}
