"""Differential PromQL test: metricsd against the real Prometheus 2.42 (Debian's /usr/bin/prometheus).

Both servers start on random loopback ports with empty storage; the SAME data goes into both by
remote write (a hand-built prometheus.WriteRequest, snappy literal framing): a few hundred series
over ~50 minutes -- counters with resets, gauges (negative values, NaN samples), classic histograms
(le buckets with _sum/_count), stale markers, gaps longer than the lookback, several jobs and
instances, label values that need escaping. Then a large corpus of queries runs through
/api/v1/query (several evaluation times) and /api/v1/query_range (several steps) on both, and the
answers are compared: same status (error / no error; the texts may differ and are listed), same
resultType, same series sets, values within relative 1e-9 (NaN == NaN), same order where the
order is meaningful (sort/sort_desc at the top of an instant query).

Timing: samples sit off the second (t = k*15s + 7.3s and similar) and every evaluation time is
N s + 123 ms, so no sample ever falls on the boundary of a range (t-r, t] / [t-r, t] or of the
lookback window: Prometheus 2.x's left-closed ranges and 3.x's left-open ranges (what metricsd
implements) then select the same samples. Subquery steps are aligned to absolute multiples of the
step, so outer evaluation times at +123 ms never put a subquery point on a range boundary either.

Known, legitimate 2.42-vs-3.x differences are EXPECTED_DIFF entries (query -> reason); they are
reported, not failures. Anything else that differs fails the test with a listing.

Run: OBS_BIN=$PWD/build/<dir>/bin python3 tests/integration/test_promql_vs_prometheus.py
Set PROMQL_DIFF_VERBOSE=1 to print every compared query, PROMQL_DIFF_ONLY=<text> to run only
the queries containing <text> (with VERBOSE: both answers printed), PROMQL_DIFF_ORDER_ALL=1 to
also compare series order everywhere (diagnostic: upstream's order is unspecified outside
sort*; it differs only for histogram_quantile and subquery functions, which iterate Go maps).
"""
import json
import math
import os
import random
import shutil
import struct
import time
import urllib.parse

from obslib import Daemon, RealPrometheus, TestRun, free_port, http, wait_until
from pbutil import fbytes, snappy_literal, uvarint  # noqa: E402

PROM_BIN = shutil.which("prometheus") or "/usr/bin/prometheus"
VERBOSE = os.environ.get("PROMQL_DIFF_VERBOSE") == "1"
ONLY = os.environ.get("PROMQL_DIFF_ONLY")  # run just the queries containing this text
REL_TOL = 1e-9
ABS_TOL = 1e-12   # values that should be 0 but come out as 1e-17 from a different summation order


# ---- remote-write payload encoders ---------------------------------------------------------
def pb_write(series):
    """prometheus.WriteRequest: repeated TimeSeries timeseries = 1 {Label labels = 1
    {name = 1, value = 2}; Sample samples = 2 {double value = 1; int64 timestamp = 2}}."""
    out = bytearray()
    for labels, samples in series:
        ts = bytearray()
        for n, v in sorted(labels):  # Prometheus 2.x stores the labels in the order sent
            ts += fbytes(1, fbytes(1, n) + fbytes(2, v))
        for t, v in samples:
            ts += fbytes(2, uvarint(1 << 3 | 1) + struct.pack("<d", v) + uvarint(2 << 3) +
                         uvarint(t & 0xFFFFFFFFFFFFFFFF))
        out += fbytes(1, bytes(ts))
    return bytes(out)


STALE = struct.unpack("<d", struct.pack("<Q", 0x7ff0000000000002))[0]
NAN = float("nan")

# ---- the data set ----------------------------------------------------------------------------
NOW_S = int(time.time())
# 50 minutes of data that ends ~1 minute before now; minute-aligned base.
BASE_S = (NOW_S - 3060) // 60 * 60
BASE = BASE_S * 1000
SPAN = 50 * 60 * 1000


def build_data():
    """[(labels, [(t_ms, v), ...]), ...] -- deterministic (seeded)."""
    rnd = random.Random(42)
    series = []

    def grid(offset_ms, every_ms=15000, start=0, end=SPAN):
        t = start + offset_ms
        while t < end:
            yield BASE + t
            t += every_ms

    jobs = ["api", "web", "db"]
    insts = ["10.0.0.%d:9100" % i for i in range(5)]
    # counters: http_requests_total{job,instance,method,code}; resets on instance .3
    for job in jobs:
        for ii, inst in enumerate(insts):
            for method in ("get", "post"):
                for code in ("200", "500"):
                    # start high: see rate extrapolation in EXPECTED_DIFF (fresh_total)
                    v = float(rnd.randint(20000, 30000))
                    samples = []
                    rate = rnd.choice([0.5, 1, 2, 5, 10]) * (0.1 if code == "500" else 1)
                    for k, t in enumerate(grid(7300)):
                        if ii == 3 and k in (60, 150):
                            v = float(rnd.randint(0, 5))  # counter reset
                        else:
                            v += round(rnd.random() * rate * 15, 3)
                        samples.append((t, v))
                    labels = [("__name__", "http_requests_total"), ("job", job),
                              ("instance", inst), ("method", method), ("code", code)]
                    if ii == 4 and job == "web":
                        # stops at 20m with a stale marker, resumes at 30m
                        s1 = [(t, x) for t, x in samples if t < BASE + 1200000]
                        s2 = [(t, x) for t, x in samples if t >= BASE + 1800000]
                        samples = s1 + [(s1[-1][0] + 15000, STALE)] + s2
                    if ii == 2 and job == "db":
                        # a 12 minute gap without a stale marker (longer than the lookback)
                        samples = [(t, x) for t, x in samples
                                   if not (BASE + 900000 <= t < BASE + 1620000)]
                    series.append((labels, samples))
    # gauges: node_temperature_celsius{job,instance} random walk incl. negatives
    for job in jobs:
        for ii, inst in enumerate(insts):
            v = rnd.uniform(-20, 60)
            samples = []
            for t in grid(3100 + ii * 1000):
                v += rnd.uniform(-2, 2)
                samples.append((t, round(v, 4)))
            if ii == 1 and job == "api":
                samples = samples[:100] + [(samples[100][0], STALE)]  # ends for good
            series.append(([("__name__", "node_temperature_celsius"), ("job", job),
                            ("instance", inst)], samples))
    # memory gauge at 30s with large values
    for job in jobs:
        for inst in insts[:3]:
            samples = [(t, float(rnd.randint(1 << 30, 1 << 34))) for t in grid(11900, 30000)]
            series.append(([("__name__", "process_resident_memory_bytes"), ("job", job),
                            ("instance", inst)], samples))
    # up and build_info (for joins)
    for job in jobs:
        for ii, inst in enumerate(insts):
            samples = [(t, 0.0 if (ii == 0 and job == "db" and k % 40 < 5) else 1.0)
                       for k, t in enumerate(grid(7300))]
            series.append(([("__name__", "up"), ("job", job), ("instance", inst)], samples))
        series.append(([("__name__", "build_info"), ("job", job),
                        ("version", "1.%d.0" % len(job)), ("goversion", "go1.20")],
                       [(t, 1.0) for t in grid(9700, 60000)]))
    # classic histograms: request_duration_seconds{job,instance,le}
    les = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0]
    for job in jobs:
        for ii, inst in enumerate(insts[:3]):
            counts = [5000 * (bi + 1) for bi in range(len(les) + 1)]  # started long ago
            total = 9000.0
            rows = {i: [] for i in range(len(les) + 1)}
            sums, cnts = [], []
            for k, t in enumerate(grid(5700)):
                if ii == 2 and k == 120:
                    counts = [0] * (len(les) + 1)  # reset
                    total = 0.0
                for _ in range(rnd.randint(0, 20)):
                    x = rnd.expovariate(1 / (0.3 if job != "db" else 1.2))
                    total += x
                    for bi, le in enumerate(les):
                        if x <= le:
                            counts[bi] += 1
                    counts[-1] += 1
                for bi in range(len(les) + 1):
                    rows[bi].append((t, float(counts[bi])))
                sums.append((t, round(total, 6)))
                cnts.append((t, float(counts[-1])))
            base = [("job", job), ("instance", inst)]
            for bi in range(len(les) + 1):
                le = "+Inf" if bi == len(les) else repr(les[bi])
                series.append(([("__name__", "request_duration_seconds_bucket"), ("le", le)] + base,
                               rows[bi]))
            series.append(([("__name__", "request_duration_seconds_sum")] + base, sums))
            series.append(([("__name__", "request_duration_seconds_count")] + base, cnts))
    # label values needing escaping (no newline here: see nl_metric below)
    weird = [("path", '/a"b\\c'), ("uni", "h\u00e9llo \u2603"), ("tab", "x\ty"), ("lead", " spaced ")]
    for i, (k, v) in enumerate(weird):
        series.append(([("__name__", "weird_labels"), ("kind", k), ("val", v)],
                       [(t, float(i)) for t in grid(8100)]))
    series.append(([("__name__", "weird_labels"), ("kind", "noval")],
                   [(t, 9.0) for t in grid(8100)]))
    # a value with a newline: regex "." differs between 2.x and 3.x, kept in its own metric
    series.append(([("__name__", "nl_metric"), ("val", "line1\nline2")],
                   [(t, 1.0) for t in grid(8100)]))
    # NaN samples and special values
    series.append(([("__name__", "special_values"), ("kind", "nan")],
                   [(t, NAN if k % 7 == 0 else float(k)) for k, t in enumerate(grid(4300))]))
    series.append(([("__name__", "special_values"), ("kind", "inf")],
                   [(t, math.inf if k % 11 == 0 else -1.5 * k) for k, t in enumerate(grid(4300))]))
    series.append(([("__name__", "special_values"), ("kind", "small")],
                   [(t, 1e-300 * k) for k, t in enumerate(grid(4300))]))
    # a slow series (every 60s) and a sparse one (every 4m)
    series.append(([("__name__", "slow_gauge"), ("job", "api")],
                   [(t, float(k % 13)) for k, t in enumerate(grid(13700, 60000))]))
    series.append(([("__name__", "sparse_gauge"), ("job", "api")],
                   [(t, float(k)) for k, t in enumerate(grid(2900, 240000))]))
    # two metrics whose labels collide once __name__ is dropped
    for nm in ("collide_a_total", "collide_b_total"):
        series.append(([("__name__", nm), ("job", "api")],
                       [(t, 5000.0 + float(k * (2 if nm.startswith("collide_b") else 1)))
                        for k, t in enumerate(grid(7300))]))
    # classic-histogram corner cases, one family per case (job label names the case)
    hist_cases = {
        "nonmono": [("0.1", 10), ("0.5", 8), ("1", 15), ("+Inf", 15)],
        "dup_le": [("0.1", 3), ("0.10", 3), ("1", 9), ("1.0", 9), ("+Inf", 12)],
        "no_inf": [("0.1", 3), ("1", 9)],
        "only_inf": [("+Inf", 7)],
        "zero": [("0.1", 0), ("1", 0), ("+Inf", 0)],
        "bad_le": [("0.1", 2), ("abc", 5), ("1", 6), ("+Inf", 8)],
        "neg_le": [("-1", 1), ("0", 4), ("2", 10), ("+Inf", 10)],
        "inf_only_upper": [("0.5", 0), ("1", 0), ("+Inf", 5)],
    }
    for case, buckets in hist_cases.items():
        for le, c in buckets:
            series.append(([("__name__", "corner_hist_bucket"), ("job", case), ("le", le)],
                           [(t, float(c) * (1 + k // 40)) for k, t in enumerate(grid(6100))]))
    # values at exact halves (rounding), and integers for bit-exact arithmetic
    series.append(([("__name__", "halves"), ("job", "api")],
                   [(t, (k % 11 - 5) + 0.5) for k, t in enumerate(grid(6100))]))
    # a counter that is exactly linear (deriv/predict_linear without noise)
    series.append(([("__name__", "linear_total"), ("job", "api")],
                   [(t, 90000 + 3.0 * (t - BASE) / 1000.0) for t in grid(7300)]))
    # a counter that starts at 0 inside the data span (2.x/3.x rate extrapolation differ)
    series.append(([("__name__", "fresh_total"), ("job", "api")],
                   [(t, float(k + 1)) for k, t in enumerate(grid(7300, start=600000))]))
    return series


def push_all(url, series, prom=False):
    """Push in 5-minute time slices, every series in each slice, in time order (the Prometheus
    head only appends samples newer than its max time minus one hour)."""
    for lo in range(0, SPAN + 60000, 300000):
        batch = []
        for labels, samples in series:
            part = [(t, v) for t, v in samples if BASE + lo <= t < BASE + lo + 300000]
            if part:
                batch.append((labels, part))
        if not batch:
            continue
        for i in range(0, len(batch), 100):
            body = snappy_literal(pb_write(batch[i:i + 100]))
            st, b, _ = http("POST", url, body,
                            {"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy",
                             "X-Prometheus-Remote-Write-Version": "0.1.0"}, timeout=30)
            assert st in (200, 204), (url, st, b[:300])


# ---- the query corpus ------------------------------------------------------------------------
C = "http_requests_total"
G = "node_temperature_celsius"
H = "request_duration_seconds_bucket"


def corpus():
    q = []
    sels = [C, G, "up", 'http_requests_total{job="api",code="500"}',
            'http_requests_total{job=~"web|db",method!="get"}', '{__name__=~"node_.*"}',
            'http_requests_total{instance!~"10.0.0.[12]:9100"}', "special_values",
            "weird_labels", 'weird_labels{val=~".*\\\\\\\\.*"}', 'weird_labels{val=""}',
            'weird_labels{val!=""}', 'weird_labels{val="h\u00e9llo \u2603"}', "slow_gauge",
            "sparse_gauge", "nonexistent_metric", 'up{job="nope"}', "build_info",
            "process_resident_memory_bytes", "request_duration_seconds_count",
            '{job="api",__name__=~"up|build_info"}', "linear_total"]
    q += sels
    q += [s + " offset 5m" for s in sels[:4]]
    q += [C + " offset -2m", G + " @ %d.5" % (BASE_S + 1500), "up @ start()", "up @ end()",
          G + " @ %d offset 3m" % (BASE_S + 2000), "-" + G, "+" + G, "- -up",
          C + "[1m]", G + "[2m] offset 1m", "special_values[45s]", "weird_labels[30s]"]
    # range functions
    rfun = ["rate", "irate", "increase", "delta", "idelta", "deriv", "changes", "resets",
            "avg_over_time", "min_over_time", "max_over_time", "sum_over_time",
            "count_over_time", "last_over_time", "present_over_time", "stddev_over_time",
            "stdvar_over_time", "absent_over_time"]
    for f in rfun:
        for s, r in ((C, "5m"), (G, "2m"), ("special_values", "3m"), ("sparse_gauge", "5m"),
                     ("slow_gauge", "1m"), (C + '{job="db"}', "10m"), ("linear_total", "90s"),
                     ("process_resident_memory_bytes", "5m")):
            if f in ("rate", "increase") and s in (G, "special_values", "sparse_gauge",
                                                   "slow_gauge", "process_resident_memory_bytes"):
                continue  # counter extrapolation on gauges: see fresh_total in EXPECTED_DIFF
            q.append("%s(%s[%s])" % (f, s, r))
    q += ["rate(%s[5m] offset 10m)" % C, "rate(%s[5m] @ %d.25)" % (C, BASE_S + 1800),
          "quantile_over_time(0.9, %s[5m])" % G, "quantile_over_time(0, %s[5m])" % G,
          "quantile_over_time(1, %s[5m])" % G, "quantile_over_time(1.5, %s[5m])" % G,
          "quantile_over_time(-1, %s[5m])" % G, "quantile_over_time(0.5, special_values[5m])",
          "predict_linear(%s[10m], 600)" % G, "predict_linear(linear_total[5m], 3600)",
          "predict_linear(%s[10m], -300)" % C, "holt_winters(%s[10m], 0.5, 0.5)" % G,
          "holt_winters(%s[5m], 0.1, 0.9)" % C, "holt_winters(%s[5m], 1, 0.5)" % G,
          "absent_over_time(nonexistent_metric[5m])",
          'absent_over_time(nonexistent_metric{job="x",a=~"b"}[5m])',
          "rate(collide_a_total[5m])", 'rate({__name__=~"collide_.*"}[5m])',
          'last_over_time({__name__=~"collide_.*"}[5m])',
          'sum by (__name__) (rate({__name__=~"collide_.*"}[5m]))',
          'label_replace(rate({__name__=~"collide_.*"}[5m]), "x", "$1", "__name__", "(.*)")',
          "rate(fresh_total[5m])", "increase(fresh_total[5m])", "irate(fresh_total[5m])",
          "delta(fresh_total[5m])", "timestamp(%s)" % G, "timestamp(sparse_gauge)", "timestamp(up offset 1m)"]
    # instant-vector functions
    vfun = ["abs", "ceil", "floor", "exp", "ln", "log2", "log10", "sqrt", "sgn", "round",
            "deg", "rad", "sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh", "tanh",
            "asinh", "acosh", "atanh"]
    for f in vfun:
        q.append("%s(%s)" % (f, G))
        q.append("%s(special_values)" % f)
    q += ["%s(%s / 100)" % (f, G) for f in ("asin", "acos", "atanh")]
    q += ["round(%s, 0.5)" % G, "round(%s, 3)" % G, "round(%s, -10)" % G,
          "clamp(%s, -5, 5)" % G, "clamp(%s, 5, -5)" % G, "clamp_min(%s, 0)" % G,
          "clamp_max(%s, 10)" % G, "clamp_min(special_values, 0)",
          "exp(%s / 1000)" % C, "scalar(slow_gauge)", "scalar(up)", "scalar(nonexistent_metric)",
          "vector(1)", "vector(time())", "vector(scalar(slow_gauge))", "time()", "pi()",
          "absent(nonexistent_metric)", 'absent(nonexistent_metric{job="x",instance=~"y"})',
          'absent(up{job="api"})', "absent(sum(nonexistent_metric))",
          'absent(nonexistent_metric{a="b",a="c"})', "sort(%s)" % G, "sort_desc(%s)" % G,
          "sort(special_values)", "sort_desc(special_values)", "sort(rate(%s[5m]))" % C,
          "sort_desc(sum by (job) (rate(%s[5m])))" % C]
    for f in ("day_of_week", "day_of_month", "day_of_year", "days_in_month", "hour", "minute",
              "month", "year"):
        q += ["%s()" % f, "%s(%s)" % (f, "timestamp(up)"),
              "%s(vector(1700000000))" % f, "%s(vector(951782400))" % f,  # 2000-02-29
              "%s(vector(-86400.5))" % f]
    # label functions
    q += ['label_replace(up, "foo", "$1-$2", "instance", "(.*):(.*)")',
          'label_replace(up, "instance", "", "", "")',
          'label_replace(up, "job", "x$1", "job", "a(.*)")',
          'label_replace(up, "__name__", "renamed", "", "")',
          'label_replace(up, "new", "${1}_suffix", "job", "(.+)")',
          'label_replace(up, "new", "$name", "job", "(?P<name>.+)")',
          'label_replace(up, "job", "$1", "job", "nomatch(.*)")',
          'label_replace(up, "x", "y", "job", "(")',
          'label_replace(up, "1bad", "y", "job", ".*")',
          'label_replace(weird_labels, "copy", "$1", "val", "(.*)")',
          'label_join(up, "joined", "-", "job", "instance")',
          'label_join(up, "joined", ",")',
          'label_join(up, "job", "", "instance")',
          'label_join(up, "__name__", "_", "job", "job")',
          'label_join(weird_labels, "j", "|", "val", "kind")',
          'label_join(up, "bad-name", "-", "job")']
    # aggregations
    aggs = ["sum", "avg", "min", "max", "count", "group", "stddev", "stdvar"]
    for a in aggs:
        q += ["%s(%s)" % (a, G), "%s by (job) (%s)" % (a, G), "%s without (instance) (%s)" % (a, C),
              "%s by (job, code) (rate(%s[5m]))" % (a, C), "%s(special_values)" % a,
              "%s by (nonexistent) (up)" % a, "%s without () (up)" % a]
    q += ["sum by (__name__) ({__name__=~\"up|build_info\"})",
          "count without (__name__) ({__name__=~\"up|build_info\"})",
          "sum by (le) (rate(%s[5m]))" % H]
    for k in ("1", "3", "0", "-1", "2.7", "100"):
        q += ["topk(%s, %s)" % (k, G), "bottomk(%s, %s)" % (k, G)]
    q += ["topk by (job) (2, %s)" % G, "bottomk without (instance) (1, rate(%s[5m]))" % C,
          "topk(2, special_values)", "bottomk(2, special_values)", "topk(scalar(slow_gauge), up)",
          "sort_desc(topk(3, %s))" % G, "sort(bottomk(3, %s))" % G]
    for phi in ("0", "0.25", "0.5", "0.99", "1", "-0.5", "1.5"):
        q += ["quantile(%s, %s)" % (phi, G), "quantile by (job) (%s, rate(%s[5m]))" % (phi, C)]
    q += ["quantile(0.5, special_values)",
          'count_values("value", up)', 'count_values by (job) ("v", up)',
          'count_values("val", round(%s))' % G, 'count_values("job", up)',
          'count_values("v", special_values)', 'count_values("bad-label", up)',
          "avg(process_resident_memory_bytes) by (job)", "sum(process_resident_memory_bytes)",
          "stddev by (job) (process_resident_memory_bytes)",
          "sum(up) by (job) > 4", "max by (instance) (%s) != 0" % C]
    # binary operators
    ops = ["+", "-", "*", "/", "%", "^", "==", "!=", ">", "<", ">=", "<="]
    for op in ops:
        q += ["%s %s 10" % (G, op), "10 %s %s" % (op, G), "2 %s 3" % op,
              "up %s bool 1" % op if op in ops[6:] else "up %s 1" % op,
              "%s %s ignoring(method) group_left %s" % (C, op, 'sum without (method) (%s)' % C),
              "rate(%s[5m]) %s on(job, instance, method, code) rate(%s[5m] offset 5m)" % (C, op, C)]
    q += ["%s > bool 10" % G, "1 > bool 2", "2 == bool 2", "special_values == special_values",
          "special_values != bool special_values", "up == bool up",
          "%s and %s > 20" % (G, G), "%s or up" % G, "%s unless up" % G,
          "up and on(job) build_info", "up unless on(job) build_info{job=\"api\"}",
          "up or on() vector(1)", "nonexistent_metric or up", "up and nonexistent_metric",
          "up * on(job) group_left(version) build_info",
          "build_info * on(job) group_right(version) up",
          "up * ignoring(instance) group_left build_info",
          "up * on(job) build_info", "up + on(job) group_left up",
          "sum by (job) (up) / on(job) count by (job) (up)",
          "sum by (job) (up) / ignoring(job) sum(up)",
          "%s / on(job, instance) group_left %s" % (C, G),
          "rate(%s[5m]) / ignoring(code) group_left sum without (code) (rate(%s[5m]))" % (C, C),
          'sum by (job, le) (rate(%s[5m])) / ignoring(le) group_left sum by (job) (rate(request_duration_seconds_count[5m]))' % H,
          "up + up", "up - on(instance, job) up", "-up * 2 ^ 3 ^ 2", "(1 + 2) * 3 % 2",
          "2 ^ -1", "-2 ^ 2", "1 / 0", "-1 / 0", "0 / 0", "%s %% 7" % G, "%s ^ 0.5" % G,
          "time() - timestamp(up)", "up * 2 + on() group_left vector(1)",
          "(up == 1) + 0", "(up == 1) * on(job,instance) group_left(version) build_info",
          "scalar(slow_gauge) * %s" % G, "vector(1) + vector(2)", "vector(1) == vector(1)",
          "up > 0.5 < 2", "%s > 10 and %s < 30" % (G, G),
          "collide_a_total + collide_b_total", "collide_a_total + ignoring(__name__) collide_b_total",
          '{__name__=~"collide_.*"} * 2', '{__name__=~"collide_.*"} > 1',
          '{__name__=~"collide_.*"} > bool 1', "up * on() group_left up",
          "sum(up) by (job) + on(job) group_right sum by (job, instance) (up)"]
    # subqueries
    q += ["max_over_time(rate(%s[5m])[30m:1m])" % C, "min_over_time(%s[10m:30s])" % G,
          "avg_over_time(sum by (job) (%s)[15m:2m])" % G, "rate(%s[10m:15s])" % C,
          "sum_over_time(up[5m:])", "count_over_time(%s[7m:45s])" % G,
          "max_over_time(%s[20m:1m] offset 5m)" % G, "last_over_time(%s[5m:1m] @ %d.5)" % (G, BASE_S + 1200),
          "quantile_over_time(0.5, rate(%s[2m])[15m:1m])" % C,
          "deriv(%s[10m:1m])" % G, "%s[5m:1m]" % G, "rate(%s[5m])[10m:2m]" % C,
          "max_over_time(max_over_time(%s[601s:1m])[20m:5m])" % G,
          "stddev_over_time(up[15m:10s])", "changes(%s[30m:1m])" % G,
          "holt_winters(%s[20m:1m], 0.3, 0.3)" % G]
    # histograms
    q += ["histogram_quantile(%s, rate(%s[5m]))" % (p, H) for p in ("0", "0.5", "0.9", "0.99", "1")]
    q += ["histogram_quantile(0.9, sum by (le) (rate(%s[5m])))" % H,
          "histogram_quantile(0.9, sum by (job, le) (rate(%s[5m])))" % H,
          "histogram_quantile(0.5, sum without (instance) (rate(%s[10m])))" % H,
          "histogram_quantile(-1, rate(%s[5m]))" % H, "histogram_quantile(2, rate(%s[5m]))" % H,
          "histogram_quantile(0.5, %s)" % H, "histogram_quantile(0.5, up)",
          "histogram_quantile(0.5, sum by (le) (%s{le=~\"0.1|1.0|\\\\+Inf\"}))" % H,
          "histogram_quantile(0.5, sum by (le) (%s{le!=\"+Inf\"}))" % H,
          "histogram_quantile(scalar(slow_gauge) / 13, rate(%s[5m]))" % H,
          "rate(request_duration_seconds_sum[5m]) / rate(request_duration_seconds_count[5m])",
          "histogram_count(%s)" % H, "histogram_sum(rate(%s[5m]))" % H,
          "histogram_fraction(0, 0.5, rate(%s[5m]))" % H]
    # strings, literals, parse/type errors (both must refuse)
    q += ['"a string"', "1e3", "0x1F", "Inf", "-Inf", "NaN", "1.5e-3 * 2",
          "sum(", "rate(up[5m", 'up{job="api"', "(up", "sum(up) by (job", "up[5m:1m",
          "sort(", "up[5m]+1", "rate(up)", "up offset", "up{job=~\"(\"}", "foo bar",
          "sum by (job) (up) by (job)", "topk(up, up)", "1 and 1", "up and 1",
          "rate(sum(up)[5m])", "abs(up, up)", "nosuchfunc(up)", "up @ 1 @ 2",
          'label_replace(up, "a", "b", "c")', "count_values(1, up)", "quantile(up, up)",
          "histogram_quantile(up, up)", "up{}", "{}", '{job=~".*"}', '{job=""}',
          "sum(up) == bool on() sum(up)", "vector(1) offset 1m"]
    # more corners: special values in aggregations, staleness, anchoring, nesting
    q += ['sum(special_values{kind=~"inf|nan"})', 'avg(special_values{kind=~"inf|small"})',
          "stddev(special_values)", "max(special_values)", "min(special_values)",
          'quantile(0.5, special_values{kind=~"nan|inf"})', "sum(-special_values)",
          "max_over_time(special_values[10m])", "min_over_time(special_values[2m])",
          "changes(special_values[10m])", "deriv(special_values[10m])",
          "holt_winters(special_values[10m], 0.5, 0.5)", "idelta(special_values[1m])",
          "quantile_over_time(0.3, special_values[10m])", "stddev_over_time(special_values[10m])",
          "avg_over_time(special_values[10m])", "sum_over_time(special_values[10m])",
          'label_replace(up, "x", "$1", "instance", "10")',
          'label_replace(up, "x", "$1", "instance", "10.*")',
          'label_replace(up, "x", "[$1]", "nolabel", "(.*)")',
          'label_replace(up, "x", "$2", "instance", "(.*)")',
          'label_replace(up, "x", "$1$1", "job", "(a)(p)(i)")',
          '{__name__=~"http_.*", job="api", code="500"}', '{__name__!~".*_total", job="db"}',
          "time() % 3600", "scalar(slow_gauge) > bool 3", "up == 1 or vector(0)",
          "max(sum by (job) (rate(%s[5m])))" % C, "sum without (le) (%s)" % H,
          "count by (le) (%s)" % H, 'absent(up{job="api"} == 5)', "vector(1) unless on() up",
          "rate(%s[1m:10s])" % C, "max_over_time(%s[10m:1m] @ %d.5)" % (G, BASE_S + 1800),
          "min_over_time(%s[10m:1m] offset -3m)" % G, "rate(%s[5m] @ end())" % C,
          "rate(%s[5m] @ start())" % C, "scalar(sum(up))", "time() - scalar(max(timestamp(up)))",
          "avg_over_time(up[1h30m:90s])",
          "max_over_time(%s[1d])" % G, "count_over_time(up[1w])",
          'up{job="api"} == bool on(instance) up{job="web"}',
          'up{job="api"} + on(instance) group_left(job) up{job="web"}',
          'up{job="api"} > on(instance) up{job="web"}',
          'up{job="api"} and ignoring(job) up{job="web"}',
          "count(up) by (job) > bool 4", "-sum by (job) (up)", "+vector(5)",
          "sum(up) + sum(build_info)", "sum(up) * scalar(count(build_info))",
          "timestamp(rate(%s[5m]))" % C, "timestamp(%s > 0)" % G,
          "timestamp(sum by (job) (up))", "last_over_time(timestamp(up)[5m:1m])",
          "present_over_time(nonexistent_metric[5m])", "absent_over_time(up[5m])",
          'absent_over_time(up{job="nope"}[5m] offset 1h)',
          "absent(absent(up))", "count(absent(nonexistent_metric))",
          "quantile_over_time(0.5, up[5m]) * on(job, instance) group_left(version) build_info",
          "topk(1, sum by (job) (rate(%s[5m])))" % C, "bottomk(1, %s) > 0" % G,
          "topk(2, %s) by (job)" % G, "count(topk(3, %s))" % G,
          "max by (job) (topk by (job) (1, %s))" % G, "sum(topk(2, up) by (job))",
          "quantile(0.9, rate(%s[5m]))" % C, 'count_values("le", %s)' % H,
          "histogram_quantile(0.75, sum by (le, job) (increase(%s[10m])))" % H,
          "histogram_quantile(0.5, rate(%s[5m]) > 0)" % H,
          'histogram_quantile(0.5, sum by (le) (rate(%s{job="db"}[1m])))' % H,
          'histogram_quantile(0.5, label_replace(rate(%s[5m]), "le", "$1", "le", "(.*)0"))' % H,
          "sum(rate(request_duration_seconds_sum[5m])) / sum(rate(request_duration_seconds_count[5m]))",
          "predict_linear(%s[10m:30s], 120)" % G, "deriv(rate(%s[5m])[10m:1m])" % C,
          "irate(%s[2m])" % C, "irate(up[1m])", "idelta(%s[30s])" % C,
          "resets(%s[30m])" % C, "changes(up[30m])", "increase(%s[1h])" % C,
          "rate(%s[30s])" % C, "rate(%s[16s])" % C, "delta(%s[16s])" % G, "deriv(%s[16s])" % G]
    # classic histogram corner cases and rounding
    for p in ("0", "0.25", "0.5", "0.9", "1"):
        q.append("histogram_quantile(%s, corner_hist_bucket)" % p)
    q += ["histogram_quantile(0.5, rate(corner_hist_bucket[10m]))",
          "histogram_quantile(0.5, sum by (le) (corner_hist_bucket))",
          "histogram_quantile(NaN, corner_hist_bucket)",
          "round(halves)", "round(halves, 2)", "round(halves, 0.3)", "round(-halves)",
          "round(vector(-2.5))", "round(vector(2.5))", "round(vector(0.15), 0.1)",
          "halves % 2", "halves % -2", "-halves % 2", "halves ^ 3", "halves ^ -1", "halves ^ 0.5",
          "floor(halves)", "ceil(halves)", "sgn(halves)", "abs(halves)",
          "hour(vector(NaN))", "hour(vector(Inf))",
          "day_of_week(vector(NaN))", "day_of_month(vector(-Inf))", "day_of_year(vector(NaN))",
          "days_in_month(vector(NaN))", "month(vector(NaN))", "year(vector(NaN))",
          "minute(vector(NaN))", "year(vector(1e19))", "year(vector(-1e13))",
          "month(vector(-1e13))", "day_of_month(vector(-1e13))", "days_in_month(vector(-1e13))",
          "day_of_week(vector(-1e13))", "hour(vector(-1e13 - 1))", "minute(halves * 1e6)",
          "day_of_week(vector(-1))", "year(vector(1e12))", "month(vector(253402300800))",
          "1 - 2 - 3", "2 * 3 % 4", "up > bool 0 == bool 1", "2 ^ 3 ^ 2", "(2 ^ 3) ^ 2",
          "up or on(job) build_info", "build_info unless ignoring(version, goversion) up",
          "sum(up) by (job,)", 'up{job="api",}', "rate(up[5m] )", "sum without() (up)",
          "up # a comment", "sum by (on) (up)", "sum by (by) (up)",
          "rate(%s[5m0s])" % C, "rate(%s[5])" % C, "rate(%s[1.5m])" % C,
          "up @ %d.5 offset 5m" % (BASE_S + 1500), "up offset 5m @ %d.5" % (BASE_S + 1500),
          'weird_labels{val="/a\\"b\\\\c"}', "weird_labels{val='x\\ty'}",
          "weird_labels{val=~`.*\\\\.*`}", 'weird_labels{val="h\\u00e9llo \\u2603"}',
          'weird_labels{kind="noval", val=""}', 'weird_labels{val!~".+"}',
          ".5 + 5.", "1e-3 * 1E3", "0x10 + 0X1f", "nan", "-inf", "+Inf",
          "scalar(vector(1)) + vector(2)", "quantile(scalar(nonexistent_metric), up)",
          "quantile(NaN, up)", "topk(NaN, up)", "topk(Inf, up)", "topk(-Inf, up)",
          "count_values(\"x\", vector(1e21))", "count_values(\"x\", vector(1e-7))",
          "count_values(\"x\", vector(-0.000001))", "count_values(\"x\", halves / 3)",
          "vector(1e21)", "vector(123456789012345678)", "vector(1e-7)", "vector(0.1 + 0.2)",
          "vector(-0)", "-vector(0)", "vector(2^53 + 1)", "vector(1/3)"]
    # sort with NaN and equal values (order compared)
    mix = ('label_replace(vector(NaN), "a", "1", "", "") or label_replace(vector(1), "a", "2", "", "")'
           ' or label_replace(vector(-1), "a", "3", "", "") or label_replace(vector(Inf), "a", "4", "", "")')
    q += ["sort(%s)" % mix, "sort_desc(%s)" % mix, "sort(up)", "sort_desc(up)",
          "sort(special_values / 0)", "sort_desc(special_values / 0)"]
    # 3.x-only functions and syntax (2.42 refuses them; see EXPECTED_DIFF)
    q += ["mad_over_time(%s[5m])" % G, 'sort_by_label(up, "instance")',
          "limitk(2, up)", "limit_ratio(0.5, up)", "double_exponential_smoothing(%s[10m], 0.5, 0.5)" % G,
          "histogram_stddev(%s)" % H, 'label_replace(up, "foo-bar", "x", "", "")',
          '{"up"}', 'nl_metric{val=~"line1.line2"}', 'nl_metric{val=~".+"}', "nl_metric"]
    return q


# Known differences between Prometheus 2.42 and metricsd (which implements 3.x semantics).
# query -> reason. Matching answers on these are fine (reported as such).
# Where 3.x differs from 2.x but metricsd deliberately answers as 2.x (and 3.x without feature
# flags) does, the queries stay in the corpus as ordinary comparisons:
#  - label names are validated as legacy names (label_replace/label_join/count_values refuse
#    "foo-bar"; 3.x with UTF-8 names accepts them);
#  - regex "." does not match "\n" (nl_metric queries; 3.x added the s flag);
#  - __name__ is dropped by functions/operators at once, and a vector whose series collide
#    without it is an error (collide_* queries); 3.x's promql-delayed-name-removal feature
#    flag (used by upstream's test suite) is an engine option, off in the API.
EXPECTED_DIFF = {
    "rate(fresh_total[5m])":
        "rate/increase extrapolation of a counter that starts inside the range: 2.42 clamps "
        "the start to the counter's zero point before testing the 1.1x-average-interval "
        "threshold, 3.x (since 2.52) applies the threshold first and then the zero point",
    "increase(fresh_total[5m])": "as rate(fresh_total[5m])",
    "histogram_fraction(0, 0.5, rate(%s[5m]))" % H:
        "histogram_fraction on classic (le) buckets is a newer 3.x addition; 2.42 only "
        "handles native histograms and returns nothing",
    "mad_over_time(%s[5m])" % G: "3.x function (mad_over_time, experimental); 2.42 parse error",
    'sort_by_label(up, "instance")': "3.x function (sort_by_label); 2.42 parse error",
    "limitk(2, up)": "3.x aggregation (limitk); 2.42 parse error",
    "limit_ratio(0.5, up)": "3.x aggregation (limit_ratio); 2.42 parse error",
    "double_exponential_smoothing(%s[10m], 0.5, 0.5)" % G:
        "3.x renamed holt_winters to double_exponential_smoothing; 2.42 knows only holt_winters",
    "histogram_stddev(%s)" % H: "histogram_stddev arrived in 2.50; 2.42 parse error",
    '{"up"}': "3.x quoted metric names in braces; 2.42 parse error",
    "rate(%s[5])" % C: "3.x accepts a plain number as a duration in seconds; 2.42: "
                       "'missing unit character in duration'",
}

# evaluation times (seconds since BASE_S): every one N s + 123 ms
INSTANT_AT = [-99.877, 312.123, 1207.123, 1530.123, 2111.123, 2994.123, 3100.123, 3500.123]
RANGES = [(300.123, 2990.123, "60"), (60.123, 3000.123, "15"), (1000.123, 2500.123, "137"),
          (1790.123, 1800.123, "1"), (2500.123, 3400.123, "1m"), (1200.123, 1500.123, "7.5")]


def fmt_t(x):
    return "%.3f" % (BASE_S + x)


# ---- comparison ------------------------------------------------------------------------------
def num(s):
    return float(s)  # "NaN", "+Inf", "-Inf" parse


def close(a, b):
    fa, fb = num(a), num(b)
    if math.isnan(fa) or math.isnan(fb):
        return math.isnan(fa) and math.isnan(fb)
    if fa == fb:
        return True
    if math.isinf(fa) or math.isinf(fb):
        return False
    return abs(fa - fb) <= max(REL_TOL * max(abs(fa), abs(fb)), ABS_TOL)


def canon_metric(m):
    return json.dumps(m, sort_keys=True, ensure_ascii=False)


def compare_data(a, b, ordered):
    """None when equal, else a short description of the first difference."""
    if a["resultType"] != b["resultType"]:
        return "resultType %s vs %s" % (a["resultType"], b["resultType"])
    rt = a["resultType"]
    ra, rb = a["result"], b["result"]
    if rt in ("scalar", "string"):
        if ra[0] != rb[0]:
            return "time %r vs %r" % (ra[0], rb[0])
        if rt == "string":
            return None if ra[1] == rb[1] else "string %r vs %r" % (ra[1], rb[1])
        return None if close(ra[1], rb[1]) else "scalar %s vs %s" % (ra[1], rb[1])
    ma = {canon_metric(x["metric"]): x for x in ra}
    mb = {canon_metric(x["metric"]): x for x in rb}
    if len(ma) != len(ra) or len(mb) != len(rb):
        return "duplicate series in a result (%d/%d vs %d/%d)" % (len(ma), len(ra), len(mb), len(rb))
    if set(ma) != set(mb):
        only_a = sorted(set(ma) - set(mb))[:3]
        only_b = sorted(set(mb) - set(ma))[:3]
        return "series sets differ (%d vs %d): metricsd-only %s prometheus-only %s" % (
            len(ma), len(mb), only_a, only_b)
    for k in ma:
        x, y = ma[k], mb[k]
        if rt == "vector":
            if x["value"][0] != y["value"][0] or not close(x["value"][1], y["value"][1]):
                return "%s: %s vs %s" % (k, x["value"], y["value"])
        else:
            vx, vy = x.get("values", []), y.get("values", [])
            if len(vx) != len(vy):
                tx = {p[0] for p in vx}
                ty = {p[0] for p in vy}
                return "%s: %d vs %d points (metricsd-only t %s, prometheus-only t %s)" % (
                    k, len(vx), len(vy), sorted(tx - ty)[:3], sorted(ty - tx)[:3])
            for p, r in zip(vx, vy):
                if p[0] != r[0] or not close(p[1], r[1]):
                    return "%s: point %s vs %s" % (k, p, r)
    if ordered and rt == "vector":
        va = [x["value"][1] for x in ra]
        vb = [x["value"][1] for x in rb]
        if ORDER_ALL:
            ka = [canon_metric(x["metric"]) for x in ra]
            kb = [canon_metric(x["metric"]) for x in rb]
            if ka != kb:
                return "order differs: %s vs %s" % (ka[:3], kb[:3])
        if not all(close(p, r) for p, r in zip(va, vb)):
            return "order differs: %s vs %s" % (va[:6], vb[:6])
    return None


def ask(base, path, params):
    st, body, _ = http("POST", base + path, urllib.parse.urlencode(params),
                       {"Content-Type": "application/x-www-form-urlencoded"}, timeout=60)
    try:
        j = json.loads(body)
    except ValueError:
        return st, {"status": "error", "error": "non-JSON body: %r" % body[:200]}
    return st, j


ORDER_ALL = os.environ.get("PROMQL_DIFF_ORDER_ALL") == "1"  # diagnostic: compare every order


def top_ordered(query):
    s = query.strip()
    if ORDER_ALL:
        return True
    return s.startswith("sort(") or s.startswith("sort_desc(")


nonempty = [0]


def compare_one(mtd, prom, path, params, query):
    st1, j1 = ask(mtd, path, params)
    st2, j2 = ask(prom, path, params)
    if j1.get("status") == "success" and j2.get("status") == "success":
        r1, r2 = j1["data"]["result"], j2["data"]["result"]
        if r1 and r2:
            nonempty[0] += 1
    ok1 = j1.get("status") == "success"
    ok2 = j2.get("status") == "success"
    if ok1 != ok2:
        return ("error/no-error: metricsd %s %s, prometheus %s %s" % (
            st1, j1.get("error", "ok"), st2, j2.get("error", "ok"))), None
    if not ok1:
        return None, (j1.get("error"), j2.get("error"))
    return compare_data(j1["data"], j2["data"], top_ordered(query) and path.endswith("query")), None


# ---- servers ---------------------------------------------------------------------------------
class Prometheus(RealPrometheus):
    def __init__(self):
        super().__init__(["--web.enable-remote-write-receiver", "--storage.tsdb.retention.time=1d"])


MTD_CONFIG = """
server:
  http_listen_address: 127.0.0.1
  http_listen_port: %(port)d
  grpc_listen_port: %(grpc)d
blocks_storage:
  tsdb:
    dir: ./tsdb
"""


def test_promql_matches_prometheus_2_42():
    if not os.path.exists(PROM_BIN):
        print("skip: prometheus not installed")
        return
    port = free_port()
    mtd = Daemon("metricsd", MTD_CONFIG % {"port": port, "grpc": free_port()}, http_port=port)
    prom = None
    try:
        mtd.start()
        prom = Prometheus()
        data = build_data()
        push_all(mtd.url("/api/v1/push"), data)
        push_all(prom.url("/api/v1/write"), data, prom=True)
        nseries = len(data)
        nsamples = sum(len(s) for _, s in data)
        print("  pushed %d series, %d samples to both" % (nseries, nsamples))

        # both hold every series
        for base in (mtd.url(), prom.url()):
            st, j = ask(base, "/api/v1/query", {"query": 'count(last_over_time({__name__=~".+"}[1h]))',
                                                "time": fmt_t(3000.123)})
            assert st == 200 and j["data"]["result"][0]["value"][1] == str(nseries), (base, j)

        queries = [x for x in corpus() if not ONLY or ONLY in x]
        compared = 0
        mism, expected_seen, err_texts = [], {}, []
        for query in queries:
            runs = [("/api/v1/query", {"query": query, "time": fmt_t(t)}) for t in INSTANT_AT]
            runs += [("/api/v1/query_range", {"query": query, "start": fmt_t(a), "end": fmt_t(b),
                                              "step": s}) for a, b, s in RANGES]
            for path, params in runs:
                diff, errs = compare_one(mtd.url(), prom.url(), path, params, query)
                compared += 1
                if VERBOSE:
                    print("  %s %s %s" % ("DIFF" if diff else "ok  ", path[8:], params))
                    if ONLY:
                        print("    metricsd:   %s\n    prometheus: %s" % (
                            ask(mtd.url(), path, params)[1], ask(prom.url(), path, params)[1]))
                if errs and errs[0] != errs[1] and (query, errs) not in err_texts:
                    err_texts.append((query, errs))
                if diff:
                    if query in EXPECTED_DIFF:
                        expected_seen.setdefault(query, diff)
                    else:
                        mism.append((query, path, params, diff))
        print("  %d queries, %d comparisons (%d instant times, %d range settings)" % (
            len(queries), compared, len(INSTANT_AT), len(RANGES)))
        print("  %d comparisons had a non-empty answer on both sides" % nonempty[0])
        print("  expected differences seen: %d of %d listed" % (len(expected_seen), len(EXPECTED_DIFF)))
        for qq in EXPECTED_DIFF:
            if qq not in expected_seen:
                print("    listed, but the answers agreed here: %s" % qq)
        for qq, d in expected_seen.items():
            print("    EXPECTED %s\n      reason: %s\n      diff: %s" % (qq, EXPECTED_DIFF[qq], d[:300]))
        print("  both refused with different texts: %d queries" % len({x[0] for x in err_texts}))
        seen = set()
        for qq, (e1, e2) in err_texts:
            if qq in seen:
                continue
            seen.add(qq)
            print("    %s\n      metricsd:   %s\n      prometheus: %s" % (qq, e1, e2))
        seenq = set()
        for qq, path, params, d in mism:
            if qq in seenq and not VERBOSE:
                continue
            seenq.add(qq)
            print("  MISMATCH %s %s\n    %s" % (path[8:], json.dumps(params), d[:600]))
        assert not mism, "%d mismatching comparisons over %d queries" % (len(mism), len(seenq))
    finally:
        mtd.cleanup()
        if prom:
            prom.stop()


TestRun(globals()).main()
