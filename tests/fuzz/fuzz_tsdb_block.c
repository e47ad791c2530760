/*
 * fuzz_tsdb_block.c -- fuzz target for metricsd's TSDB v2 block reader
 * (metricsd/tsdb/block_read.h): meta.json, the index (TOC, symbols, series, label indices,
 * postings and their offset table) and a chunk segment.
 *
 * Input: [u32 le n][n bytes meta.json][u32 le m][m bytes index][rest: chunks/000001] (a
 * length past the end takes what is left). The three files are written as a block directory
 * in a private temp dir, the block is opened, its meta and label names/values read, a select
 * over all series and one with a regex matcher run, and finally the full verify.
 * The reader promises OBS_ECORRUPT, never a crash, on any damage.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/obs_err.h"
#include "labels/obs_labels.h"
#include "metricsd/storage.h"
#include "metricsd/tsdb/block_read.h"
#include "fuzz.h"

static char chunks_dir[128], seg_path[160];

static void remove_chunks(void)
{
    unlink(seg_path);
    rmdir(chunks_dir);
}

static int on_series(void *arg, const struct obs_label *labels, size_t nlabels,
                     const struct mtd_sample *samples, size_t nsamples)
{
    size_t *count = arg;
    for (size_t i = 0; i < nlabels; i++)
        (void)(strlen(labels[i].name) + strlen(labels[i].value));
    for (size_t i = 1; i < nsamples; i++)
        if (samples[i].t <= samples[i - 1].t)
            abort(); /* samples must come out in increasing time order */
    (*count)++;
    return 0;
}

/* Take a [u32 le len][bytes] field from (*p, *n) (the length is clamped to what is left). */
static void take(const uint8_t **p, size_t *n, const uint8_t **out, size_t *len)
{
    size_t l = 0;
    if (*n >= 4) {
        l = (size_t)(*p)[0] | (size_t)(*p)[1] << 8 | (size_t)(*p)[2] << 16 |
            (size_t)(*p)[3] << 24;
        *p += 4;
        *n -= 4;
    } else {
        *p += *n;
        *n = 0;
    }
    if (l > *n)
        l = *n;
    *out = *p;
    *len = l;
    *p += l;
    *n -= l;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_quiet();
    const char *dir = fuzz_dir();
    if (chunks_dir[0] == '\0') {
        snprintf(chunks_dir, sizeof chunks_dir, "%s/chunks", dir);
        snprintf(seg_path, sizeof seg_path, "%s/000001", chunks_dir);
        if (mkdir(chunks_dir, 0755) != 0)
            abort();
        atexit(remove_chunks);
    }
    const uint8_t *p = data, *meta, *index;
    size_t n = size, nmeta, nindex;
    take(&p, &n, &meta, &nmeta);
    take(&p, &n, &index, &nindex);
    if (fuzz_write_file("meta.json", meta, nmeta) != 0 ||
        fuzz_write_file("index", index, nindex) != 0 ||
        fuzz_write_file("chunks/000001", p, n) != 0)
        abort();

    struct mtd_tsdb_block *b = NULL;
    struct obs_err err = {0};
    if (mtd_tsdb_block_open(dir, &b, &err) != 0)
        return 0;
    mtd_tsdb_block_meta(b);
    char **names = NULL;
    size_t nn = 0;
    if (mtd_tsdb_block_label_names(b, &names, &nn) == 0) {
        for (size_t i = 0; i < nn && i < 16; i++) {
            char **vals = NULL;
            size_t nv = 0;
            if (mtd_tsdb_block_label_values(b, names[i], &vals, &nv) == 0)
                mtd_strings_free(vals, nv);
        }
        mtd_strings_free(names, nn);
    }
    size_t count = 0;
    mtd_tsdb_block_select(b, NULL, 0, INT64_MIN, INT64_MAX, on_series, &count, &err);
    struct obs_matcher m[2];
    if (obs_matcher_init(&m[0], OBS_MATCH_RE, "__name__", ".+", &err) == 0) {
        if (obs_matcher_init(&m[1], OBS_MATCH_NEQ, "job", "x", &err) == 0) {
            mtd_tsdb_block_select(b, m, 2, 0, 1700000000000LL, on_series, &count, &err);
            obs_matcher_deinit(&m[1]);
        }
        obs_matcher_deinit(&m[0]);
    }
    mtd_tsdb_block_verify(b, &err);
    mtd_tsdb_block_close(b);
    return 0;
}
