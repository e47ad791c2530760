/*
 * tsdb_fmt.h -- constants and byte helpers shared by the TSDB block writer and reader
 * (internal to metricsd/tsdb). Values are from Prometheus' format docs (tsdb/docs/format:
 * index.md, chunks.md, tombstones.md). Multi-byte integers in these files are big-endian;
 * varints are Go's encoding/binary varints (LEB128, zigzag for signed).
 */
#ifndef MTD_TSDB_FMT_H
#define MTD_TSDB_FMT_H

#include <stddef.h>
#include <stdint.h>

#define TSDB_INDEX_MAGIC 0xBAAAD700u
#define TSDB_INDEX_VERSION 2
#define TSDB_INDEX_HDR 5
#define TSDB_TOC_LEN (6 * 8 + 4)
#define TSDB_SERIES_ALIGN 16
#define TSDB_POSTINGS_ALIGN 4

#define TSDB_CHUNKS_MAGIC 0x85BD40DDu
#define TSDB_CHUNKS_VERSION 1
#define TSDB_CHUNKS_HDR 8
#define TSDB_SEGMENT_MAX (512u << 20)

#define TSDB_TOMBSTONES_MAGIC 0x0130BA30u
#define TSDB_TOMBSTONES_VERSION 1

#define TSDB_DEFAULT_CHUNK_SAMPLES 120

static inline void tsdb_put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static inline void tsdb_put_be64(uint8_t *p, uint64_t v)
{
    tsdb_put_be32(p, (uint32_t)(v >> 32));
    tsdb_put_be32(p + 4, (uint32_t)v);
}

static inline uint32_t tsdb_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline uint64_t tsdb_be64(const uint8_t *p)
{
    return (uint64_t)tsdb_be32(p) << 32 | tsdb_be32(p + 4);
}

/* Write a uvarint into p (room for 10 bytes); returns its length. */
static inline size_t tsdb_put_uvarint(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

#endif
