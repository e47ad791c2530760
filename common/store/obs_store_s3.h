/*
 * obs_store_s3.h -- the "s3" object store backend (S3-compatible servers: AWS S3, MinIO,
 * s3rver, ...) behind struct obs_store_ops. See obs_store_s3.c for the protocol details.
 *
 * Normally opened through obs_store_open() with `backend: s3` and an `s3:` map shaped like
 * Mimir's:
 *     s3:
 *       endpoint: 127.0.0.1:9000        # host[:port], or a full http(s):// URL
 *       bucket_name: blocks
 *       region: us-east-1               # default: $AWS_REGION, $AWS_DEFAULT_REGION, us-east-1
 *       access_key_id: ...              # default: $AWS_ACCESS_KEY_ID
 *       secret_access_key: ...          # default: $AWS_SECRET_ACCESS_KEY
 *       session_token: ...              # default: $AWS_SESSION_TOKEN (only with env keys)
 *       insecure: true                  # plain http
 *       bucket_lookup_type: path        # path | virtual-hosted | auto
 *       prefix: tenant-data             # optional key prefix inside the bucket
 *       part_size: 16MiB                # multipart part size (>= 5MiB); larger objects use it
 *       upload_concurrency: 4           # parts of one upload sent in parallel
 *       max_retries: 5                  # extra attempts on 5xx / 429 / SlowDown / network errors
 *       request_timeout: 5m             # per attempt
 *       list_max_keys: 1000             # ListObjectsV2 page size (1..1000)
 */
#ifndef OBS_STORE_S3_H
#define OBS_STORE_S3_H

#include <stddef.h>
#include <stdint.h>

#include "config/obs_cf.h"
#include "core/obs_err.h"

struct obs_store;

/* Settings of the s3 backend. Strings are borrowed for the duration of obs_store_s3_open. */
struct obs_store_s3_cfg {
    const char *endpoint;          /* host[:port] or http(s)://host[:port]; NULL: AWS */
    const char *bucket;            /* required */
    const char *region;            /* NULL: env, then us-east-1 */
    const char *access_key_id;     /* NULL/empty: AWS_ACCESS_KEY_ID */
    const char *secret_access_key; /* NULL/empty: AWS_SECRET_ACCESS_KEY */
    const char *session_token;     /* NULL/empty: AWS_SESSION_TOKEN when keys come from env */
    const char *prefix;            /* key prefix inside the bucket, NULL/empty: none */
    const char *lookup;            /* "path", "virtual-hosted" or "auto" (NULL = auto) */
    int insecure;                  /* 1: http when endpoint has no scheme */
    int64_t part_size;             /* bytes, >= 5 MiB; 0: 16 MiB */
    int max_retries;               /* extra attempts; < 0: default 5 */
    int64_t request_timeout_ms;    /* per attempt; 0: 5 minutes */
    int list_max_keys;             /* 1..1000; 0: 1000 */
    int upload_concurrency;        /* parallel parts of one upload, 1..16; 0: 4 */
};

/* Open an s3 store from explicit settings. No request is made: a wrong endpoint or key shows
 * on the first call. Returns a store owned by the caller (obs_store_close) or NULL with err
 * set (OBS_EINVAL for missing bucket/credentials or bad values, OBS_ENOMEM). The store is
 * thread-safe. */
struct obs_store *obs_store_s3_open(const struct obs_store_s3_cfg *cfg, struct obs_err *err);

/* Open from the `s3:` config map (see above); unknown keys fail with file:line:col. */
struct obs_store *obs_store_s3_open_cf(const struct obs_cf_node *s3, struct obs_err *err);

#endif
