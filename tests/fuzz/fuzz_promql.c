/*
 * fuzz_promql.c -- fuzz target for metricsd's PromQL parser and evaluator (metricsd/ql/).
 *
 * Input: a PromQL expression. It is parsed; when it parses it is evaluated against a small
 * in-memory head (no WAL) holding a few counters and gauges over 10 minutes: once as an
 * instant query at t=5m and once as a range query over [0, 10m] step 1m. Evaluation is
 * bounded by a sample limit and a 2 s deadline (subqueries with tiny steps are legal). The
 * head is built once per process and only read afterwards.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/obs_err.h"
#include "core/obs_time.h"
#include "labels/obs_labels.h"
#include "metricsd/head.h"
#include "metricsd/ql/mtd_ql.h"
#include "fuzz.h"

static struct mtd_head *head;

static void add_series(struct mtd_appender *a, const char *name, const char *job,
                       const char *inst, double start, double inc)
{
    struct obs_label l[3] = {{"__name__", name}, {"instance", inst}, {"job", job}};
    struct obs_err err = {0};
    for (int i = 0; i <= 40; i++) {
        double v = start + inc * i;
        if (i == 20 && inc > 0)
            v = inc; /* a counter reset */
        mtd_appender_add(a, l, 3, (int64_t)i * 15000, v, &err);
    }
}

static struct mtd_head *make_head(void)
{
    struct mtd_head_opts o = {0};
    struct obs_err err = {0};
    struct mtd_head *h = mtd_head_open(&o, &err);
    if (h == NULL)
        abort();
    struct mtd_appender *a = mtd_head_appender(h, "fake");
    if (a == NULL)
        abort();
    add_series(a, "http_requests_total", "api", "a:80", 0, 3);
    add_series(a, "http_requests_total", "api", "b:80", 100, 1.5);
    add_series(a, "http_requests_total", "db", "c:80", 5, 0.25);
    add_series(a, "up", "api", "a:80", 1, 0);
    add_series(a, "up", "db", "c:80", 0, 0);
    add_series(a, "temp_celsius", "node", "a:80", -12.5, -0.75);
    if (mtd_appender_commit(a, &err) != 0)
        abort();
    return h;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_quiet();
    if (size > 4096)
        return 0;
    if (head == NULL)
        head = make_head();
    char *q = fuzz_cstr(data, size);
    if (q == NULL)
        return 0;
    struct mtd_ql_expr *e = NULL;
    struct obs_err err = {0};
    if (mtd_ql_parse(q, &e, &err) == 0) {
        mtd_ql_expr_type(e);
        struct mtd_ql_opts o = {.max_samples = 200000,
                                .deadline_ns = obs_mono_ns() + 2000000000LL};
        struct mtd_storage *st = mtd_head_storage(head);
        struct mtd_ql_result *r = NULL;
        if (mtd_ql_exec_instant(e, st, "fake", 300000, &o, &r, &err) == 0)
            mtd_ql_result_free(r);
        r = NULL;
        o.deadline_ns = obs_mono_ns() + 2000000000LL;
        if (mtd_ql_exec_range(e, st, "fake", 0, 600000, 60000, &o, &r, &err) == 0)
            mtd_ql_result_free(r);
    }
    mtd_ql_expr_free(e);
    free(q);
    return 0;
}
