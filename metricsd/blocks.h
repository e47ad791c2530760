/*
 * blocks.h -- metricsd's long-term storage: Prometheus TSDB blocks in an object store.
 *
 *   flush.c          cuts the head into 2h blocks per tenant (when the head spans more than
 *                    1.5 x the block range, and on POST /ingester/flush), uploads them to
 *                    <tenant>/<ULID>/ with meta.json last.
 *   store_gateway.c  per-tenant bucket index (blocks listed from the store, meta.json read,
 *                    blocks with deletion-mark.json skipped), index files cached in
 *                    bucket_store.sync_dir, chunks fetched by range GET into an LRU cache
 *                    bounded by bytes; selects series for matchers + time range.
 *   storage_merge.c  the querier's struct mtd_storage: head (recent) + store-gateway (blocks),
 *                    one sample per timestamp.
 *   compactor.c      merges blocks into larger aligned ranges (2h -> 12h -> 24h), vertical
 *                    compaction of overlapping blocks with sample dedup, per-tenant retention,
 *                    deletion by marker then delay.
 *
 * Object layout (Mimir's / Thanos'):
 *   <tenant>/<ULID>/meta.json, index, chunks/000001..., tombstones
 *   <tenant>/<ULID>/deletion-mark.json   {"id","deletion_time","version":1}
 * A block without meta.json is incomplete (being uploaded or deleted) and is never read.
 *
 * All of it runs on the event-loop thread (the head and the store are used from there);
 * long operations are bounded per timer tick (one block cut / one compaction per tick).
 * The shared state (struct mtd_blocks) is reference-counted by the components using it.
 */
#ifndef MTD_BLOCKS_H
#define MTD_BLOCKS_H

#include <stddef.h>
#include <stdint.h>

#include "app/obs_app.h"
#include "core/obs_err.h"
#include "labels/obs_labels.h"
#include "metricsd/storage.h"

struct obs_store;
struct mtd_flusher;
struct mtd_store_gateway;
struct mtd_compactor;

/* Shared by the block components (app->blocks). */
struct mtd_blocks {
    int refs;
    struct obs_ctx *ctx;
    struct obs_store *store;      /* blocks_storage backend */
    int64_t block_range_ms;       /* blocks_storage.tsdb.block_ranges_period[0] (2h) */
    struct mtd_flusher *flusher;  /* ingester side; NULL when the ingester is not running */
    struct mtd_store_gateway *sg; /* NULL when the store-gateway is not a target */
    struct mtd_compactor *compactor;
    void *merge; /* the querier's merged storage (storage_merge.c), holds one reference */
};

/* The shared state for ctx, created (store opened from blocks_storage:) on first use; each
 * successful call takes a reference. Returns NULL with err set. Loop thread. */
struct mtd_blocks *mtd_blocks_ref(struct obs_ctx *ctx, struct obs_err *err);
/* Drop a reference; the last one closes the store and frees the state. */
void mtd_blocks_unref(struct obs_ctx *ctx);
/* At app teardown: free the merged storage and drop its reference. */
void mtd_blocks_teardown(struct obs_ctx *ctx);
/* The state if it exists (borrowed), else NULL. */
struct mtd_blocks *mtd_blocks_of(struct obs_ctx *ctx);

/* ---- object helpers (blocks.c) ---- */

/* Upload the local block directory dir (named ulid) to <tenant>/<ulid>/: chunks/NNNNNN, index,
 * tombstones, then meta.json last, so the block becomes visible only when complete.
 * Returns 0 or the store's error with err set. Blocking. */
int mtd_block_upload(struct obs_store *st, const char *tenant, const char *dir, const char *ulid,
                     struct obs_err *err);
/* Download <tenant>/<ulid>/ (every object) into the local directory dir (created). */
int mtd_block_download(struct obs_store *st, const char *tenant, const char *ulid, const char *dir,
                       struct obs_err *err);
/* Delete <tenant>/<ulid>/: meta.json first (the block turns incomplete and is no longer
 * read), then the data, then deletion-mark.json. */
int mtd_block_delete(struct obs_store *st, const char *tenant, const char *ulid,
                     struct obs_err *err);
/* Remove a local directory tree (best effort). */
void mtd_rm_rf(const char *path);

/* ---- flush (flush.c) ---- */

/* Start block cutting for the ingester's head: timer + POST /ingester/flush. Called by the
 * ingester component init when it has a head. Returns 0 or an error. */
int mtd_flush_start(struct obs_ctx *ctx, struct obs_err *err);
void mtd_flush_stop(struct obs_ctx *ctx);

/* Cut and upload every tenant's head data not yet flushed (force = 1: including the
 * incomplete newest range, as POST /ingester/flush does; 0: only ranges the 1.5 x rule
 * allows). *nblocks gets the number of blocks uploaded. Loop thread. */
int mtd_flush_run(struct obs_ctx *ctx, int force, size_t *nblocks, struct obs_err *err);

/* ---- store-gateway (store_gateway.c) ---- */

int mtd_store_gateway_init(struct obs_ctx *ctx, struct obs_err *err);
void mtd_store_gateway_stop(struct obs_ctx *ctx);
#define MTD_STORE_GATEWAY_COMPONENT                                                                \
    {                                                                                              \
        "store-gateway", NULL, mtd_store_gateway_init, mtd_store_gateway_stop                      \
    }

/* Warnings collected while reading blocks (corrupt chunks...), for the API's "warnings". */
struct mtd_warnings {
    char **v;
    size_t n;
};
/* Add a formatted warning (deduplicated, at most 16 kept). */
void mtd_warnings_add(struct mtd_warnings *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void mtd_warnings_clear(struct mtd_warnings *w);

/* Called per series found in blocks: labels sorted, samples increasing (borrowed). */
typedef int (*mtd_sg_series_fn)(void *arg, const struct obs_label *labels, size_t nlabels,
                                const struct mtd_sample *samples, size_t nsamples);

/* Mark the bucket index stale: the next read re-lists the store. */
void mtd_store_gateway_invalidate(struct mtd_store_gateway *sg);

/*
 * Call fn for every series of tenant's blocks overlapping [mint, maxt] that matches ms, once
 * per block (the same series may come from several blocks; the caller merges). Corrupt
 * chunks/series are skipped and reported in w. Returns 0 or OBS_EIO/OBS_ENOMEM with err set.
 */
int mtd_store_gateway_select(struct mtd_store_gateway *sg, const char *tenant,
                             const struct obs_matcher *ms, size_t nms, int64_t mint, int64_t maxt,
                             mtd_sg_series_fn fn, void *arg, struct mtd_warnings *w,
                             struct obs_err *err);
/* Tenants with blocks (sorted; free with mtd_strings_free). */
int mtd_store_gateway_tenants(struct mtd_store_gateway *sg, char ***out, size_t *n);

/* Stats for tests and /metrics. */
struct mtd_sg_stats {
    uint64_t blocks_loaded, index_downloads, chunk_fetches, cache_hits, cache_bytes;
    uint64_t corrupt_chunks;
};
void mtd_store_gateway_stats(const struct mtd_store_gateway *sg, struct mtd_sg_stats *out);

/* ---- merge storage (storage_merge.c) ---- */

/*
 * Make ctx's app->storage the merged view: the head (app->head, when the ingester runs)
 * plus the store-gateway's blocks (when it runs), one sample per (series, timestamp).
 * Both sides are looked up on every call, so start order does not matter. Called by the
 * querier's init. Returns 0 or OBS_ENOMEM.
 */
int mtd_storage_merge_install(struct obs_ctx *ctx);

/* Free the merged storage object (mtd_blocks_teardown). */
void mtd_storage_merge_free(void *m);

struct mtd_ql_result;
/* Move the warnings the merged storage collected since the last call (corrupt block data)
 * into res's warnings. The strings stay owned by the storage until the next call on this
 * storage, which is after the reply was rendered (one query at a time on the loop). */
void mtd_storage_merge_annotate(struct mtd_storage *st, struct mtd_ql_result *res);

/*
 * Merge series (sorted by label set; a label set may repeat) into one set: series with the
 * same labels are joined, samples sorted by t with one sample per timestamp (the first seen
 * wins). Used by the merged storage and the compactor's vertical compaction. in[] entries
 * are borrowed; *out is a new set (mtd_series_set_free). Returns 0 or OBS_ENOMEM.
 */
int mtd_series_merge(const struct mtd_series *in, size_t n, int no_samples,
                     struct mtd_series_set **out);

/* ---- compactor (compactor.c) ---- */

int mtd_compactor_init(struct obs_ctx *ctx, struct obs_err *err);
void mtd_compactor_stop(struct obs_ctx *ctx);
#define MTD_COMPACTOR_COMPONENT                                                                    \
    {                                                                                              \
        "compactor", NULL, mtd_compactor_init, mtd_compactor_stop                                  \
    }

/* A block as the planner sees it. */
struct mtd_plan_block {
    const char *ulid;
    int64_t mint, maxt; /* maxt exclusive */
    int level;
};

/*
 * Plan one compaction for a tenant's blocks (any order): first a group of blocks whose time
 * ranges overlap (vertical compaction), else, for each range of ranges[1..] (ascending, e.g.
 * 2h, 12h, 24h), the oldest aligned window holding more than one block that fits in it and
 * either spans the whole window or ends before the newest block starts (Prometheus'
 * leveled planner). idx gets the chosen blocks' indexes (sorted by mint), at most n.
 * Returns the group size (0 = nothing to do) or OBS_ENOMEM. *vertical is set to 1 for an
 * overlap group.
 */
int mtd_compactor_plan(const struct mtd_plan_block *b, size_t n, const int64_t *ranges,
                       size_t nranges, size_t *idx, int *vertical);

/* Run one compaction/retention/deletion pass now (tests, operators). */
int mtd_compactor_run(struct obs_ctx *ctx, struct obs_err *err);

#endif
