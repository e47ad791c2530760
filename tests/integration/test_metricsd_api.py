"""metricsd's Prometheus HTTP API (labels, series, metadata, exemplars, status, parse_query)
checked side by side against the real Prometheus 2.42 and with real clients.

One Prometheus (--web.enable-remote-write-receiver, exemplar storage on) and one metricsd
start on random loopback ports with empty directories; the same remote-write payload (series,
a classic histogram, exemplars) is pushed to both; then:
  - /api/v1/labels, /label/<n>/values, /series, /query_exemplars answers must be equal JSON;
  - bad requests must get the same status and the same error body;
  - status endpoints must have Prometheus' keys (and equal values where the data decides);
  - limit/warnings and U__ escaping (Prometheus 3.x features 2.42 lacks) are checked alone;
  - promtool query instant|range|series|labels print the same against both servers;
  - promtool check metrics accepts metricsd's /metrics.
"""
import json
import os
import shutil
import struct
import subprocess
import tempfile
import time
import urllib.parse

from obslib import Daemon, TestRun, free_port, http, http_json, wait_until
from pbutil import fbytes, snappy_literal, uvarint  # noqa: E402

PROMETHEUS = os.environ.get("PROMETHEUS", "/usr/bin/prometheus")
PROMTOOL = os.environ.get("PROMTOOL", "/usr/bin/promtool")


# ---- remote-write encoding ------------------------------------------------------------------
def pb_labels(num, labels):
    return b"".join(fbytes(num, fbytes(1, n) + fbytes(2, v)) for n, v in labels)


def pb_write(series):
    """series: [(labels, [(t_ms, v)], [(exemplar labels, v, t_ms)])]"""
    out = b""
    for labels, samples, exemplars in series:
        ts = pb_labels(1, labels)
        for t, v in samples:
            ts += fbytes(2, uvarint(1 << 3 | 1) + struct.pack("<d", v) + uvarint(2 << 3) +
                         uvarint(t))
        for el, v, t in exemplars:
            ts += fbytes(3, pb_labels(1, el) + uvarint(2 << 3 | 1) + struct.pack("<d", v) +
                         uvarint(3 << 3) + uvarint(t))
        out += fbytes(1, ts)
    return out


# ---- the data set ---------------------------------------------------------------------------
NOW = (int(time.time()) - 60) * 1000
STEP = 15000
NPTS = 21
T0 = NOW - (NPTS - 1) * STEP


def dataset():
    series = []
    # api_requests_total: 3 jobs x (1..3 instances) x 2 codes; per-metric counts differ so
    # the top-10 lists of /status/tsdb have no ties.
    for j, job in enumerate(("api", "db", "web")):
        for i in range(j + 1):
            for code in ("200", "500"):
                labels = [("__name__", "api_requests_total"), ("code", code),
                          ("instance", "%s-%d:80" % (job, i)), ("job", job)]
                pts = [(T0 + k * STEP + 7, float(k * (i + 1) * (2 if code == "200" else 1)))
                       for k in range(NPTS)]
                ex = []
                if code == "500" and job == "db":
                    ex = [([("trace_id", "abc%d%d" % (i, k))], float(k), T0 + k * STEP + 7)
                          for k in range(0, NPTS, 5)]
                series.append((labels, pts, ex))
    # a classic histogram
    for le in ("0.1", "0.5", "1", "+Inf"):
        labels = [("__name__", "api_latency_seconds_bucket"), ("job", "api"), ("le", le)]
        f = {"0.1": 1, "0.5": 3, "1": 4, "+Inf": 5}[le]
        series.append((labels, [(T0 + k * STEP + 3, float(k * f)) for k in range(NPTS)], []))
    # a gauge with many label values (for limit)
    for k in range(30):
        labels = [("__name__", "queue_depth"), ("job", "worker"), ("queue", "q%02d" % k)]
        series.append((labels, [(T0 + n * STEP + 11, float(k + n)) for n in range(NPTS)], []))
    return series


PAYLOAD = snappy_literal(pb_write(dataset()))
HEADERS = {"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy",
           "X-Prometheus-Remote-Write-Version": "0.1.0"}


# ---- servers --------------------------------------------------------------------------------
class Prometheus:
    def __init__(self):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="obs-prom-")
        cfg = os.path.join(self.dir, "prometheus.yml")
        with open(cfg, "w") as f:
            f.write("global:\n  scrape_interval: 15s\n")
        self.log = open(os.path.join(self.dir, "prometheus.log"), "wb")
        self.proc = subprocess.Popen(
            [PROMETHEUS, "--config.file=" + cfg, "--storage.tsdb.path=" + self.dir + "/data",
             "--web.listen-address=127.0.0.1:%d" % self.port, "--web.enable-remote-write-receiver",
             "--enable-feature=exemplar-storage"],
            stdout=self.log, stderr=subprocess.STDOUT, cwd=self.dir)
        wait_until(lambda: http("GET", self.url("/-/ready"), timeout=1)[0] == 200, timeout=30,
                   what="prometheus ready")

    def url(self, path=""):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


METRICSD_CONFIG = """
server:
  http_listen_address: 127.0.0.1
  http_listen_port: %(port)d
  grpc_listen_port: %(grpc)d
blocks_storage:
  tsdb:
    dir: ./tsdb
"""

_SERVERS = {}


def servers():
    """(prometheus, metricsd), started once and loaded with PAYLOAD."""
    if not _SERVERS:
        prom = Prometheus()
        port = free_port()
        md = Daemon("metricsd", METRICSD_CONFIG % {"port": port, "grpc": free_port()},
                    http_port=port)
        try:
            md.start()
            for s in (prom, md):
                st, body, _ = http("POST", s.url("/api/v1/write"), PAYLOAD, HEADERS)
                assert st in (200, 204), (s, st, body)
        except BaseException:
            prom.stop()
            md.cleanup()
            raise
        _SERVERS["prom"], _SERVERS["md"] = prom, md
    return _SERVERS["prom"], _SERVERS["md"]


def get(server, path, params=()):
    qs = urllib.parse.urlencode(list(params))
    return http_json("GET", server.url("/api/v1/" + path + ("?" + qs if qs else "")))


def both(path, params=()):
    prom, md = servers()
    return get(prom, path, params), get(md, path, params)


RANGE = [("start", "%.3f" % (T0 / 1000 - 60)), ("end", "%.3f" % (NOW / 1000 + 60))]


# ---- side by side ---------------------------------------------------------------------------
def test_labels_values_series_equal():
    cases = [
        ("labels", []),
        ("labels", RANGE),
        ("labels", [("match[]", "queue_depth")]),
        ("labels", [("match[]", "api_requests_total"), ("match[]", "queue_depth")] + RANGE),
        ("label/job/values", []),
        ("label/job/values", RANGE),
        ("label/__name__/values", []),
        ("label/queue/values", [("match[]", 'queue_depth{queue=~"q1.*"}')]),
        ("label/instance/values", [("match[]", 'api_requests_total{job!="web"}'),
                                   ("match[]", '{job="web",code="500"}')]),
        ("label/nonexistent/values", []),
        ("label/job/values", [("start", "1"), ("end", "2")]),
        ("series", [("match[]", "api_requests_total")]),
        ("series", [("match[]", 'api_requests_total{code="500"}'),
                    ("match[]", 'api_latency_seconds_bucket{le=~"0.*"}')] + RANGE),
        ("series", [("match[]", '{__name__=~"api_.*", job="api"}')]),
        ("series", [("match[]", "queue_depth"), ("start", "1"), ("end", "2")]),
        ("series", [("match[]", "nope")]),
    ]
    for path, params in cases:
        (ps, pb), (ms, mb) = both(path, params)
        assert ps == ms == 200, (path, params, ps, pb, ms, mb)
        assert pb == mb, (path, params, pb, mb)


def test_error_shapes_equal():
    exact = [
        ("labels", [("start", "abc")]),
        ("labels", [("end", "2026-13-99")]),
        ("labels", [("match[]", "{}")]),
        ("label/job/values", [("start", "nope")]),
        ("label/job/values", [("match[]", '{a=""}')]),
        ("label/a-b/values", []),
        ("series", []),
        ("series", [("start", "1")]),
        ("series", [("match[]", "up"), ("start", "abc")]),
        ("series", [("match[]", '{a=~".*"}')]),
        ("series", [("match[]", "rate(x[5m])")]),
        ("labels", [("match[]", "rate(x[5m])")]),
        ("query_exemplars", [("query", "up"), ("start", "10"), ("end", "5")]),
        ("query_exemplars", [("query", "up"), ("end", "abc")]),
        ("query_exemplars", []),
        ("metadata", [("limit", "abc")]),
    ]
    for path, params in exact:
        (ps, pb), (ms, mb) = both(path, params)
        assert ps == ms, (path, params, ps, pb, ms, mb)
        assert pb == mb, (path, params, pb, mb)
    # Parse-error wording comes from each PromQL parser; the shape must still be equal.
    for path, params in [("labels", [("match[]", "up{")]), ("series", [("match[]", "up{")]),
                         ("query_exemplars", [("query", "sum(")])]:
        (ps, pb), (ms, mb) = both(path, params)
        assert ps == ms == 400, (path, ps, pb, ms, mb)
        assert sorted(pb) == sorted(mb) == ["error", "errorType", "status"], (pb, mb)
        assert pb["errorType"] == mb["errorType"] == "bad_data"
        assert mb["error"].split(":")[0] == pb["error"].split(":")[0], (pb, mb)


def test_exemplars_equal():
    for params in ([("query", "api_requests_total")] + RANGE,
                   [("query", 'sum(rate(api_requests_total{job="db"}[5m])) / '
                              'sum(rate(api_requests_total{job="db", code="500"}[5m]))')] + RANGE,
                   [("query", "api_requests_total"), ("start", "%.3f" % (T0 / 1000 + 100)),
                    ("end", "%.3f" % (T0 / 1000 + 200))],
                   [("query", "queue_depth")]):
        (ps, pb), (ms, mb) = both("query_exemplars", params)
        assert ps == ms == 200, (ps, pb, ms, mb)
        key = lambda s: sorted(s["seriesLabels"].items())  # noqa: E731
        assert sorted(pb["data"], key=key) == sorted(mb["data"], key=key), (params, pb, mb)
    assert mb["data"] == [] and pb["data"] == []


def test_status_endpoints_shapes():
    (ps, pb), (ms, mb) = both("status/buildinfo")
    assert ps == ms == 200
    assert set(pb["data"]) <= set(mb["data"]), (pb, mb)
    assert mb["data"]["version"].startswith("2.")

    (ps, pb), (ms, mb) = both("status/tsdb")
    assert ps == ms == 200, (pb, mb)
    assert set(pb["data"]) == set(mb["data"]), (pb, mb)
    ph, mh = pb["data"]["headStats"], mb["data"]["headStats"]
    assert set(ph) == set(mh)
    for k in ("numSeries", "numLabelPairs", "chunkCount", "minTime", "maxTime"):
        assert ph[k] == mh[k], (k, ph, mh)
    for k in ("seriesCountByMetricName", "labelValueCountByLabelName",
              "memoryInBytesByLabelName", "seriesCountByLabelValuePair"):
        pv = sorted((e["name"], e["value"]) for e in pb["data"][k])
        mv = sorted((e["name"], e["value"]) for e in mb["data"][k])
        if k == "seriesCountByLabelValuePair":
            # ties at the 10th place are ordered by a heap in Prometheus: compare counts
            assert sorted(v for _, v in pv) == sorted(v for _, v in mv), (k, pv, mv)
        else:
            assert pv == mv, (k, pv, mv)
    st, b = get(servers()[1], "status/tsdb", [("limit", "2")])
    assert st == 200 and len(b["data"]["seriesCountByMetricName"]) == 2
    assert b["data"]["seriesCountByMetricName"][0]["name"] == "queue_depth"
    st, b = get(servers()[1], "status/tsdb", [("limit", "0")])
    assert st == 400 and b["errorType"] == "bad_data"

    for path in ("status/runtimeinfo", "status/walreplay", "targets", "status/flags",
                 "status/config"):
        (ps, pb), (ms, mb) = both(path)
        assert ps == ms == 200, (path, pb, mb)
        assert mb["status"] == "success"
        if path in ("status/runtimeinfo", "status/walreplay", "targets", "status/config"):
            assert set(pb["data"]) == set(mb["data"]), (path, pb, mb)
            for k, v in pb["data"].items():
                assert type(v) is type(mb["data"][k]), (path, k, v, mb["data"][k])
        if path == "targets":
            assert pb == mb
        if path == "status/flags":
            assert all(isinstance(v, str) for v in mb["data"].values())
            assert mb["data"]["config.file"].endswith("config.yaml"), mb
        if path == "status/config":
            assert "blocks_storage:" in mb["data"]["yaml"], mb


def test_metadata():
    _, md = servers()
    meta = snappy_literal(fbytes(3, uvarint(1 << 3) + uvarint(1) +
                                 fbytes(2, "api_requests_total") + fbytes(4, "Requests.") +
                                 fbytes(5, "")))
    st, body, _ = http("POST", md.url("/api/v1/write"), meta, HEADERS)
    assert st in (200, 204), (st, body)
    st, b = get(md, "metadata")
    assert st == 200 and b["data"]["api_requests_total"] == [
        {"type": "counter", "help": "Requests.", "unit": ""}], b
    for params in ([("limit", "0")], [("metric", "nope")]):
        st, b = get(md, "metadata", params)
        assert st == 200 and b == {"status": "success", "data": {}}, (params, b)
    st, b = get(md, "metadata", [("limit_per_metric", "x")])
    assert st == 400 and b["error"] == "limit_per_metric must be a number", b


# ---- Prometheus 3.x features (2.42 has none of them) ----------------------------------------
def test_limit_and_warnings():
    _, md = servers()
    st, b = get(md, "label/queue/values", [("limit", "5")])
    assert st == 200, b
    assert b == {"status": "success", "data": ["q00", "q01", "q02", "q03", "q04"],
                 "warnings": ["results truncated due to limit"]}, b
    st, b = get(md, "label/queue/values", [("limit", "30")])
    assert st == 200 and len(b["data"]) == 30 and "warnings" not in b, b
    st, b = get(md, "label/queue/values", [("limit", "0")])
    assert st == 200 and len(b["data"]) == 30 and "warnings" not in b, b
    st, b = get(md, "labels", [("limit", "2")])
    assert b["data"] == ["__name__", "code"] and b["warnings"], b
    st, b = get(md, "series", [("match[]", "queue_depth"), ("limit", "3")])
    assert st == 200 and len(b["data"]) == 3 and b["warnings"] == [
        "results truncated due to limit"], b
    assert [s["queue"] for s in b["data"]] == ["q00", "q01", "q02"]
    for bad, msg in (("abc", 'invalid parameter "limit": strconv.Atoi: parsing "abc": '
                             'invalid syntax'),
                     ("-1", 'invalid parameter "limit": limit must be non-negative')):
        st, b = get(md, "labels", [("limit", bad)])
        assert st == 400 and b == {"status": "error", "errorType": "bad_data", "error": msg}, b


def test_label_name_escaping():
    _, md = servers()
    st, b = get(md, "label/U__job/values")
    assert st == 200 and b["data"] == ["api", "db", "web", "worker"], b
    st, b = get(md, "label/U__qu_65_ue/values", [("limit", "1")])  # _65_ = "e"
    assert st == 200 and b["data"] == ["q00"], b
    st, b = get(md, "label/U__a_2e_b/values")                    # "a.b": valid UTF-8 name
    assert st == 200 and b == {"status": "success", "data": []}, b
    st, b = get(md, "label/" + urllib.parse.quote("U__caf_e9_") + "/values")
    assert st == 200 and b["data"] == [], b
    st, b = get(md, "label/a.b/values")
    assert st == 400 and b["error"] == 'invalid label name: "a.b"', b
    st, b = get(md, "label/U__a_d800_b/values")                  # surrogate: left as is
    assert st == 200 and b["data"] == [], b


def test_parse_query_ast():
    _, md = servers()
    st, b = get(md, "parse_query", [("query", 'sum by (job) (rate(x{a="b"}[5m] offset 1m))')])
    assert st == 200, b
    assert b["data"] == {
        "type": "aggregation", "op": "sum", "grouping": ["job"], "without": False,
        "param": None,
        "expr": {"type": "call",
                 "func": {"name": "rate", "argTypes": ["matrix"], "variadic": 0,
                          "returnType": "vector"},
                 "args": [{"type": "matrixSelector", "name": "x", "range": 300000,
                           "offset": 60000, "timestamp": None, "startOrEnd": None,
                           "matchers": [{"name": "a", "type": "=", "value": "b"},
                                        {"name": "__name__", "type": "=", "value": "x"}]}]}}, b
    st, b = get(md, "parse_query", [("query", "a / on(x) group_left(y) b > bool 1")])
    assert st == 200, b
    lhs = b["data"]["lhs"]
    assert b["data"]["op"] == ">" and b["data"]["bool"] is True and b["data"]["matching"] is None
    assert lhs["matching"] == {"card": "many-to-one", "labels": ["x"], "on": True,
                               "include": ["y"]}, lhs
    assert b["data"]["rhs"] == {"type": "numberLiteral", "val": "1"}
    st, b = get(md, "parse_query", [("query", "x[10m:1m] @ start()")])
    assert b["data"]["type"] == "subquery" and b["data"]["step"] == 60000
    assert b["data"]["startOrEnd"] == "start" and b["data"]["timestamp"] is None
    st, b = get(md, "parse_query", [("query", "a and b")])
    assert b["data"]["matching"]["card"] == "many-to-many"
    st, b = get(md, "parse_query", [("query", "sum(")])
    assert st == 400 and b["errorType"] == "bad_data"
    assert b["error"].startswith('invalid parameter "query": 1:'), b


# ---- real clients ---------------------------------------------------------------------------
def promtool(*args):
    p = subprocess.run([PROMTOOL] + list(args), capture_output=True, timeout=60)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def test_promtool_queries_match_prometheus():
    prom, md = servers()
    t = "%.3f" % (NOW / 1000)
    start, end = "%.3f" % (T0 / 1000 + 60), "%.3f" % (NOW / 1000)
    cmds = [
        ["query", "instant", "--time=" + t, None, "sort(rate(api_requests_total[2m]))"],
        ["query", "instant", "--time=" + t, None,
         "histogram_quantile(0.9, sum by (le) (rate(api_latency_seconds_bucket[2m])))"],
        ["query", "range", "--start=" + start, "--end=" + end, "--step=60s", None,
         'sum by (job) (api_requests_total{code="200"})'],
        ["query", "series", "--match=api_requests_total{job=\"db\"}", None],
        ["query", "labels", None, "job"],
        ["query", "labels", "--match=queue_depth", None, "queue"],
    ]
    for cmd in cmds:
        out = []
        for s in (prom, md):
            argv = [s.url() if a is None else a for a in cmd]
            rc, so, se = promtool(*argv)
            assert rc == 0, (argv, rc, so, se)
            out.append(so)
        assert out[0] == out[1], (cmd, out[0], out[1])
        assert out[1].strip(), cmd


def test_promtool_check_metrics():
    _, md = servers()
    st, body, _ = http("GET", md.url("/metrics"))
    assert st == 200
    p = subprocess.run([PROMTOOL, "check", "metrics"], input=body, capture_output=True,
                       timeout=30)
    assert p.returncode == 0, (p.stdout, p.stderr)


def test_label_values_100k_fast():
    """A label with 100k values answers from the postings well under a second."""
    _, md = servers()
    series = [([("__name__", "big_metric"), ("id", "%06d" % i)], [(NOW, 1.0)], [])
              for i in range(100000)]
    for i in range(0, len(series), 20000):
        st, body, _ = http("POST", md.url("/api/v1/write"),
                           snappy_literal(pb_write(series[i:i + 20000])), HEADERS, timeout=60)
        assert st in (200, 204), (st, body)
    for params in ([], RANGE, [("match[]", "big_metric")], [("limit", "10")]):
        t0 = time.time()
        st, b = get(md, "label/id/values", params)
        dt = time.time() - t0
        assert st == 200, b
        assert len(b["data"]) == (10 if params and params[0][0] == "limit" else 100000)
        assert b["data"][0] == "000000"
        assert dt < 2.0, (params, dt)


def test_zz_stop():
    if _SERVERS:
        _SERVERS["prom"].stop()
        _SERVERS["md"].cleanup()
        _SERVERS.clear()


TestRun(globals()).main()
