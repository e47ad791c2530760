/*
 * push.h -- Loki push request decoding (protobuf and JSON) and logd's WAL record format.
 *
 * Decoders turn a request body into a neutral lgd_push: per stream the label text as sent
 * ({a="b"}) and the entries (Unix ns, line, structured metadata). Nothing is validated here
 * beyond the wire format; the distributor parses labels and applies limits. All memory of a
 * decoded push is owned by it (lgd_push_deinit).
 *
 * WAL record (one per acknowledged push, little-endian varints from obs_sbuf):
 *   u8 version (1) | uvarint len, tenant | uvarint nstreams |
 *   per stream: uvarint len, canonical labels {a="b", c="d"} | uvarint nentries |
 *     per entry: varint ts_ns | uvarint len, line | uvarint nmeta | nmeta x (name, value)
 * Not thread-safe per object; no shared state.
 */
#ifndef LGD_PUSH_H
#define LGD_PUSH_H

#include <stddef.h>
#include <stdint.h>

#include "core/obs_err.h"
#include "core/obs_sbuf.h"
#include "labels/obs_labels.h"

struct obs_arena;

struct lgd_push_entry {
    int64_t ts;                /* Unix ns */
    const char *line;
    size_t len;
    struct obs_label *meta;    /* structured metadata, may be NULL */
    size_t nmeta;
};

struct lgd_push_stream {
    const char *labels;        /* label text as sent (NUL-terminated) */
    size_t labels_len;
    struct lgd_push_entry *e;
    size_t n;
};

struct lgd_push {
    struct lgd_push_stream *s;
    size_t n;
    uint64_t nentries, nbytes;  /* totals over all streams (line bytes) */
    struct obs_arena *arena;    /* arrays and copied strings */
    void *pb;                   /* Logproto__PushRequest *, when decoded from protobuf */
    void *json;                 /* json_t *, when decoded from JSON */
};

/* Decode a protobuf PushRequest (already snappy-decoded). Returns 0 or OBS_EINVAL with a
 * message in err / OBS_ENOMEM. out is initialised by the call; deinit it in every case. */
int lgd_push_decode_proto(const uint8_t *buf, size_t len, struct lgd_push *out,
                          struct obs_err *err);
/* Decode Loki's JSON push: {"streams":[{"stream":{..},"values":[["<ns>","line",{meta}]]}]}.
 * Also accepts the legacy {"streams":[{"labels":"{..}","entries":[{"ts":"RFC3339",
 * "line":".."}]}]}. Same contract as the protobuf decoder. */
int lgd_push_decode_json(const uint8_t *buf, size_t len, struct lgd_push *out,
                         struct obs_err *err);
void lgd_push_deinit(struct lgd_push *p);

/* A validated stream ready to store: sorted labels and the entries to keep. */
struct lgd_batch_stream {
    struct obs_label *labels;  /* sorted */
    size_t nlabels;
    const char *lstr;          /* canonical text, or NULL (computed when needed) */
    struct lgd_push_entry *e;
    size_t n;
};

/* Append one WAL record for tenant's batch to out. Returns 0 or OBS_ENOMEM. */
int lgd_wal_encode(const char *tenant, const struct lgd_batch_stream *s, size_t n,
                   struct obs_sbuf *out);
/* Decode a WAL record: *tenant points into out's arena; streams hold canonical label text.
 * Returns 0, OBS_ECORRUPT or OBS_ENOMEM. out is initialised; deinit it in every case. */
int lgd_wal_decode(const uint8_t *rec, size_t len, const char **tenant, struct lgd_push *out);

#endif
