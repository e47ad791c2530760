/*
 * fuzz_traced_otlp.c -- fuzz target for traced's OTLP ingest path and what it does with the
 * data (traced/trd.h): the request decode (protobuf, or OTLP/JSON converted first, as
 * POST /v1/traces does), trd_export_validate, trd_store_add, rendering each stored trace as
 * protobuf and Tempo v1/v2 JSON, and search.
 *
 * Input: a flags byte (bit 0: the body is OTLP/JSON), the body, and optionally "\n--\n" and
 * a logfmt tag query for trd_search_parse_tags (default: none), which is run over the store
 * along with the tag-name and tag-value listings. Also fed to trd_trace_id_parse and
 * trd_go_duration_ns.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec/obs_otlp_json.h"
#include "core/obs_err.h"
#include "core/obs_sbuf.h"
#include "traced/trd.h"
#include "fuzz.h"

static int render(const struct trd_trace *t, void *arg)
{
    (void)arg;
    struct obs_sbuf out;
    obs_sbuf_init(&out);
    if (trd_trace_encode_pb(t, &out) == OBS_ECORRUPT)
        abort(); /* the store holds batches it cannot read back */
    obs_sbuf_reset(&out);
    trd_trace_encode_json(t, 0, &out);
    obs_sbuf_reset(&out);
    trd_trace_encode_json(t, 1, &out);
    obs_sbuf_deinit(&out);
    char id[33];
    trd_trace_id_short(t->id, id);
    return 0;
}

static void ingest(const uint8_t *raw, size_t len, const char *tags)
{
    trd_export_req *req =
        opentelemetry__proto__collector__trace__v1__export_trace_service_request__unpack(NULL, len,
                                                                                          raw);
    if (req == NULL)
        return;
    struct obs_err err = {0};
    struct trd_store *s = NULL;
    if (trd_export_validate(req, &err) == 0 && (s = trd_store_new()) != NULL) {
        size_t nspans = 0;
        trd_store_add(s, req, &nspans);
        trd_store_add(s, req, &nspans); /* the same batch twice: a retried export */
        trd_store_foreach(s, render, NULL);

        struct trd_search q;
        memset(&q, 0, sizeof q);
        struct obs_sbuf out;
        obs_sbuf_init(&out);
        if (tags == NULL || trd_search_parse_tags(&q, tags, &err) == 0) {
            q.limit = 5;
            trd_search_run(s, &q, &out);
        }
        trd_search_deinit(&q);
        /* known: crash-tag-values-empty-qsort-null (qsort(NULL, 0) in search.c emit_set) */
        if (!fuzz_skip_known()) {
            obs_sbuf_reset(&out);
            trd_search_tags(s, &out);
            obs_sbuf_reset(&out);
            trd_search_tag_values(s, "service.name", &out);
            obs_sbuf_reset(&out);
            trd_search_tag_values(s, tags ? tags : "name", &out);
        }
        obs_sbuf_deinit(&out);
        trd_store_trim(s, 1);
        trd_store_free(s);
    }
    opentelemetry__proto__collector__trace__v1__export_trace_service_request__free_unpacked(req,
                                                                                           NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_quiet();
    if (size < 1)
        return 0;
    const uint8_t *body, *tp;
    size_t len, nt;
    fuzz_split(data + 1, size - 1, &body, &len, &tp, &nt);
    char *tags = tp ? fuzz_cstr(tp, nt) : NULL;

    struct obs_sbuf pb;
    obs_sbuf_init(&pb);
    if (data[0] & 1) {
        struct obs_err err = {0};
        if (obs_otlp_json_to_pb(
                &opentelemetry__proto__collector__trace__v1__export_trace_service_request__descriptor,
                (const char *)body, len, &pb, &err) == 0)
            ingest((const uint8_t *)(pb.p ? pb.p : ""), pb.len, tags);
    } else {
        ingest(body, len, tags);
    }
    obs_sbuf_deinit(&pb);

    if (tags) {
        uint8_t id[16];
        int64_t ns;
        trd_trace_id_parse(tags, id);
        trd_go_duration_ns(tags, &ns);
        struct trd_search q;
        memset(&q, 0, sizeof q);
        struct obs_err err = {0};
        trd_search_parse_tags(&q, tags, &err);
        trd_search_deinit(&q);
    }
    free(tags);
    return 0;
}
