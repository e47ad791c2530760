/*
 * fuzz_logql.c -- fuzz target for logd's LogQL parser and the pipeline it builds
 * (logd/logql.h, logd/engine.h).
 *
 * Input: a query, optionally "\n--\n" and a log line. The query is parsed; when it parses,
 * it is evaluated over a tiny in-memory store holding the line (plus a JSON and a logfmt
 * line) in stream {app="fuzz", level="info"}: log queries through lgd_engine_logs and the
 * single-line pipeline (so | json, | logfmt, line_format and label filters see fuzzed
 * lines), metric queries as an instant and a 10-step range query. The query text is also fed
 * to the push-label parser, the Go unquoter and the duration lexer.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/obs_err.h"
#include "core/obs_mem.h"
#include "core/obs_sbuf.h"
#include "logd/engine.h"
#include "logd/logql.h"
#include "logd/store.h"
#include "fuzz.h"

#define SEC 1000000000LL

static const struct obs_label stream_labels[] = {{"app", "fuzz"}, {"level", "info"}};

static struct lgd_store *make_store(const char *line, size_t len)
{
    struct lgd_store *s = lgd_store_new();
    if (s == NULL)
        return NULL;
    struct lgd_tenant *t = lgd_store_tenant(s, "fake", 1);
    struct lgd_stream *st = t ? lgd_tenant_stream(t, stream_labels, 2, 1) : NULL;
    if (st == NULL)
        return s;
    static const char js[] = "{\"status\":500,\"msg\":\"boom\",\"dur\":\"1.5s\",\"n\":{\"a\":1}}";
    static const char lf[] = "level=error status=404 dur=250ms msg=\"not found\" bytes=12";
    struct obs_label meta = {"trace_id", "abc"};
    lgd_stream_append(t, st, 1 * SEC, js, sizeof js - 1, NULL, 0);
    lgd_stream_append(t, st, 2 * SEC, lf, sizeof lf - 1, &meta, 1);
    lgd_stream_append(t, st, 3 * SEC, line, len, NULL, 0);
    return s;
}

static void run_query(const char *q, const char *line, size_t len)
{
    struct lgd_expr *e = NULL;
    struct obs_err err = {0};
    if (lgd_logql_parse(q, &e, &err) != 0) {
        lgd_expr_free(e);
        return;
    }
    struct lgd_store *s = make_store(line, len);
    struct lgd_tenant *t = s ? lgd_store_tenant(s, "fake", 0) : NULL;
    struct obs_sbuf out;
    obs_sbuf_init(&out);
    struct lgd_qstats st;
    memset(&st, 0, sizeof st);
    if (lgd_expr_is_log(e)) {
        struct obs_sbuf labels;
        obs_sbuf_init(&labels);
        lgd_engine_filter_line(&e->log, stream_labels, 2, line, len, &labels);
        obs_sbuf_deinit(&labels);
        lgd_engine_logs(t, e, 0, 10 * SEC, 100, 0, &out, &st, &err);
        obs_sbuf_reset(&out);
        lgd_engine_logs(t, e, 0, 10 * SEC, 2, 1, &out, &st, &err);
    } else {
        struct lgd_qlimits lim = {.max_series = 1000, .max_points = 100};
        lgd_engine_metric(t, e, 10 * SEC, 10 * SEC, SEC, 1, &lim, &out, &st, &err);
        obs_sbuf_reset(&out);
        lgd_engine_metric(t, e, 1 * SEC, 10 * SEC, SEC, 0, &lim, &out, &st, &err);
    }
    obs_sbuf_deinit(&out);
    lgd_store_free(s);
    lgd_expr_free(e);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_quiet();
    const uint8_t *qp, *lp;
    size_t nq, nl;
    fuzz_split(data, size, &qp, &nq, &lp, &nl);
    if (nq > 4096)
        return 0; /* queries are capped well below this by the HTTP layer */
    char *q = fuzz_cstr(qp, nq);
    char *line = fuzz_cstr(lp ? lp : (const uint8_t *)"", lp ? nl : 0);
    if (q == NULL || line == NULL)
        goto out;
    run_query(q, line, lp ? nl : 0);

    struct obs_err err = {0};
    struct obs_label *l = NULL;
    size_t n = 0;
    if (lgd_logql_parse_labels(q, nq, &l, &n, &err) == 0)
        lgd_labels_free(l, n);

    char *u = NULL;
    size_t ulen = 0, used = 0;
    if (nq && lgd_go_unquote(q, nq, &u, &ulen, &used) == 0) {
        if (used > nq)
            abort();
        obs_free(u);
    }
    int64_t ns;
    if (lgd_duration_lex(q, nq, &ns) > nq)
        abort();
out:
    free(q);
    free(line);
    return 0;
}
