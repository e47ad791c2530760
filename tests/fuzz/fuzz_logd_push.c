/*
 * fuzz_logd_push.c -- fuzz target for logd's push decoders and WAL record codec
 * (logd/push.h): Loki protobuf PushRequest, Loki JSON push (current and legacy shapes) and
 * lgd_wal_decode.
 *
 * Input: a selector byte then the body. b % 4: 0 protobuf, 1 snappy-compressed protobuf (the
 * HTTP layer's path: obs_snappy_decode with a 1 MiB cap first), 2 JSON, 3 a WAL record.
 * For each decoded stream the label text is parsed as the distributor does; the streams
 * whose labels parse are encoded as a WAL record, which must decode again with the same
 * stream and entry counts.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/obs_err.h"
#include "core/obs_mem.h"
#include "core/obs_sbuf.h"
#include "http/obs_http.h"
#include "logd/logql.h"
#include "logd/push.h"
#include "fuzz.h"

/* Parse each stream's labels and round-trip the valid ones through the WAL codec. */
static void check_push(const struct lgd_push *p)
{
    size_t n = p->n;
    if (n > 1000)
        n = 1000;
    struct lgd_batch_stream *bs = calloc(n ? n : 1, sizeof *bs);
    if (bs == NULL)
        return;
    size_t nb = 0, nentries = 0;
    for (size_t i = 0; i < n; i++) {
        const struct lgd_push_stream *s = &p->s[i];
        struct obs_err err = {0};
        struct obs_label *l = NULL;
        size_t nl = 0;
        if (s->labels == NULL ||
            lgd_logql_parse_labels(s->labels, s->labels_len, &l, &nl, &err) != 0)
            continue;
        bs[nb].labels = l;
        bs[nb].nlabels = nl;
        bs[nb].lstr = NULL;
        bs[nb].e = s->e;
        bs[nb].n = s->n;
        nentries += s->n;
        nb++;
    }
    struct obs_sbuf rec;
    obs_sbuf_init(&rec);
    if (lgd_wal_encode("tenant-1", bs, nb, &rec) == 0) {
        const char *tenant = NULL;
        struct lgd_push back;
        int rc = lgd_wal_decode((const uint8_t *)rec.p, rec.len, &tenant, &back);
        if (rc == OBS_ECORRUPT)
            abort(); /* our own record does not decode */
        if (rc == 0) {
            size_t got = 0;
            for (size_t i = 0; i < back.n; i++)
                got += back.s[i].n;
            if (back.n != nb || got != nentries || tenant == NULL ||
                strcmp(tenant, "tenant-1") != 0)
                abort(); /* round trip lost streams or entries */
        }
        lgd_push_deinit(&back);
    }
    obs_sbuf_deinit(&rec);
    for (size_t i = 0; i < nb; i++)
        lgd_labels_free(bs[i].labels, bs[i].nlabels);
    free(bs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_quiet();
    if (size < 1)
        return 0;
    const uint8_t *body = data + 1;
    size_t len = size - 1;
    struct obs_err err = {0};
    struct lgd_push p;
    struct obs_sbuf dec;
    obs_sbuf_init(&dec);
    int rc;
    switch (data[0] % 4) {
    case 0:
        rc = lgd_push_decode_proto(body, len, &p, &err);
        break;
    case 1:
        if (obs_snappy_decode(body, len, 1u << 20, &dec) != 0) {
            obs_sbuf_deinit(&dec);
            return 0;
        }
        rc = lgd_push_decode_proto((const uint8_t *)(dec.p ? dec.p : ""), dec.len, &p, &err);
        break;
    case 2:
        rc = lgd_push_decode_json(body, len, &p, &err);
        break;
    default: {
        const char *tenant = NULL;
        rc = lgd_wal_decode(body, len, &tenant, &p);
        break;
    }
    }
    if (rc == 0)
        check_push(&p);
    lgd_push_deinit(&p);
    obs_sbuf_deinit(&dec);
    return 0;
}
