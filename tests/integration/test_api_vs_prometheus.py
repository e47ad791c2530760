"""Differential test of metricsd's Prometheus HTTP API against the real Prometheus 2.42.

Both servers start on random loopback ports with empty storage (Prometheus with
--web.enable-remote-write-receiver and exemplar storage on); the same small data set goes into
both by remote write. Then a table of requests -- every endpoint Grafana, promtool and the
Prometheus client libraries call, good and bad parameters, GET and form POST -- is sent to both,
and the answers are compared: HTTP status code, Content-Type (and Allow on 405), "status",
"errorType", "error" text, "data" and "warnings" -- and, when the decoded answers are equal,
the body bytes (key order, timestamps as "1.500", Go's \u003c escapes). Each case says what
must be equal: some answers legitimately differ (build versions, the flag list, the config
YAML: shape only; parse errors whose wording comes from the PromQL parser: status, errorType,
with the differing texts printed; sample values within 1e-12, as 3.x sums with Kahan
compensation). Also covered: Go's form semantics (body before URL values, no request
Content-Encoding, forms over 10 MiB not parsed, bad %-escapes and ';' dropped), OPTIONS/HEAD,
unknown paths and methods, admin and scrape APIs Prometheus answers without configuration.

Cases where Prometheus 2.42 and 3.x (metricsd's target) legitimately differ, or where metricsd
deliberately answers otherwise, are DOCUMENTED_DIFF entries with the reason and, where the
status code differs, the exact answer metricsd must give; they are printed, not failures.

Run: OBS_BIN=$PWD/build/<dir>/bin python3 tests/integration/test_api_vs_prometheus.py
API_DIFF_VERBOSE=1 prints every request with both answers.
"""
import gzip
import json
import os
import select
import shutil
import socket
import struct
import time
import urllib.parse

from obslib import Daemon, RealPrometheus, TestRun, free_port, http, wait_until
from pbutil import fbytes, snappy_literal, uvarint  # noqa: E402

PROM_BIN = shutil.which("prometheus") or "/usr/bin/prometheus"
VERBOSE = os.environ.get("API_DIFF_VERBOSE") == "1"


# ---- remote write ----------------------------------------------------------------------------
def pb_labels(num, labels):
    return b"".join(fbytes(num, fbytes(1, n) + fbytes(2, v)) for n, v in labels)


def pb_write(series):
    """prometheus.WriteRequest; series: [(labels, [(t_ms, v)], [(exemplar labels, v, t_ms)])]."""
    out = b""
    for labels, samples, exemplars in series:
        ts = pb_labels(1, sorted(labels))
        for t, v in samples:
            ts += fbytes(2, uvarint(1 << 3 | 1) + struct.pack("<d", v) + uvarint(2 << 3) +
                         uvarint(t))
        for el, v, t in exemplars:
            ts += fbytes(3, pb_labels(1, el) + uvarint(2 << 3 | 1) + struct.pack("<d", v) +
                         uvarint(3 << 3) + uvarint(t))
        out += fbytes(1, ts)
    return out


# Samples off the second and evaluation times at +0.123 s: no sample on a range boundary, so
# 2.x left-closed and 3.x left-open ranges select the same samples.
NOW_S = int(time.time()) - 60
STEP = 15000
NPTS = 30
T0 = (NOW_S * 1000 - (NPTS - 1) * STEP) // 1000 * 1000 + 300
TEND = T0 + (NPTS - 1) * STEP
EVAL = "%.3f" % ((TEND // 1000) + 0.123)            # an instant with data in the lookback
START = "%.3f" % ((T0 // 1000) + 60.123)
END = "%.3f" % ((TEND // 1000) + 0.123)


def dataset():
    series = []
    for job, insts in (("api", 3), ("db", 2), ("web", 1)):
        for i in range(insts):
            inst = "10.0.0.%d:9100" % i
            for code in ("200", "500"):
                v = 100.0 * (i + 1)
                samples, ex = [], []
                for k in range(NPTS):
                    v += (k % 5 + 1) * (3 if code == "200" else 1)
                    samples.append((T0 + k * STEP, v))
                    if k % 10 == 3 and job == "api":
                        ex.append(([("trace_id", "%s%d%s%d" % (job, i, code, k))], 0.5 + k,
                                   T0 + k * STEP))
                series.append(([("__name__", "api_requests_total"), ("job", job),
                                ("instance", inst), ("code", code)], samples, ex))
            series.append(([("__name__", "up"), ("job", job), ("instance", inst)],
                           [(T0 + k * STEP, 1.0) for k in range(NPTS)], []))
    series.append(([("__name__", "queue_depth"), ("queue", "a b\"c"), ("job", "api")],
                   [(T0 + k * STEP, float(k % 7) - 2.5) for k in range(NPTS)], []))
    series.append(([("__name__", "old_metric"), ("job", "gone")],
                   [(T0 + k * STEP, 1.0) for k in range(5)], []))
    for i, v in enumerate(("<a&b>", "caf\u00e9 \u2603", "line\nbreak\ttab", "sep\u2028ara\u2029tor",
                           "back\\slash", "\x01ctl")):
        series.append(([("__name__", "weird_values"), ("v", v)],
                       [(T0 + k * STEP, float(i)) for k in range(NPTS)], []))
    series.append(([("__name__", "dotted_name"), ("job", "api"), ("a_b", "x")],
                   [(T0 + k * STEP, 2.0) for k in range(NPTS)], []))
    return series


def push(url, series):
    body = snappy_literal(pb_write(series))
    st, b, _ = http("POST", url, body, {"Content-Type": "application/x-protobuf",
                                        "Content-Encoding": "snappy",
                                        "X-Prometheus-Remote-Write-Version": "0.1.0"})
    assert st in (200, 204), (url, st, b[:300])


# ---- servers ---------------------------------------------------------------------------------
class Prometheus(RealPrometheus):
    def __init__(self):
        super().__init__(["--web.enable-remote-write-receiver", "--enable-feature=exemplar-storage",
                          "--storage.tsdb.retention.time=1d"])


MTD_CONFIG = """
server:
  http_listen_address: 127.0.0.1
  http_listen_port: %(port)d
  grpc_listen_port: %(grpc)d
blocks_storage:
  tsdb:
    dir: ./tsdb
"""

S = {}  # "mtd", "prom": servers, started once


def servers():
    if S:
        return S["mtd"], S["prom"]
    port = free_port()
    mtd = Daemon("metricsd", MTD_CONFIG % {"port": port, "grpc": free_port()}, http_port=port)
    mtd.start()
    S["mtd"] = mtd
    prom = Prometheus()
    S["prom"] = prom
    data = dataset()
    push(mtd.url("/api/v1/push"), data)
    push(prom.url("/api/v1/write"), data)
    return mtd, prom


# ---- requests --------------------------------------------------------------------------------
def raw_send(base, method, path, body, headers):
    """HTTP/1.1 over a plain socket for large bodies: a Go server answers after reading 10 MiB
    of a form and closes the connection, so the body is sent in pieces and sending stops as
    soon as the answer is readable. Returns (status, body bytes, headers)."""
    host, port = base.split("//")[1].split(":")
    s = socket.create_connection((host, int(port)), timeout=30)
    try:
        head = "%s %s HTTP/1.1\r\nHost: %s:%s\r\nContent-Length: %d\r\nConnection: close\r\n" % (
            method, path, host, port, len(body))
        head += "".join("%s: %s\r\n" % kv for kv in headers.items()) + "\r\n"
        s.sendall(head.encode())
        off = 0
        while off < len(body):
            r, _, _ = select.select([s], [], [], 0)
            if r:
                break
            try:
                off += s.send(body[off:off + 65536])
            except OSError:
                break
        data = b""
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                chunk = s.recv(65536)
            except OSError:
                break
            if not chunk:
                break
            data += chunk
            h, sep, rest = data.partition(b"\r\n\r\n")
            m = [ln for ln in h.split(b"\r\n") if ln.lower().startswith(b"content-length:")]
            if sep and m and len(rest) >= int(m[0].split(b":")[1]):
                break
    finally:
        s.close()
    h, _, rest = data.partition(b"\r\n\r\n")
    lines = h.split(b"\r\n")
    st = int(lines[0].split()[1]) if lines and lines[0].startswith(b"HTTP/") else 0
    hdrs = dict(ln.decode(errors="replace").split(": ", 1) for ln in lines[1:] if b": " in ln)
    return st, rest, hdrs


def send(base, method, path, params=None, body=None, headers=None):
    """GET: params in the query string; POST: params as a form body (unless body is given)."""
    headers = dict(headers or {})
    qs = urllib.parse.urlencode(params or [])
    if method in ("GET", "DELETE", "PUT", "PATCH", "OPTIONS") or body is not None:
        url = base + path + ("?" + qs if qs else "")
    else:
        url = base + path
        body = qs
        headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
    if body is not None and len(body) > (1 << 20):
        st, b, h = raw_send(base, method, url[len(base):], body, headers)
    else:
        st, b, h = http(method, url, body, headers, timeout=30)
    try:
        j = json.loads(b)
    except ValueError:
        j = None
    return st, j, b, h


def shape(v, depth=0):
    """Keys and value types, recursively (lists: the shape of their first element)."""
    if isinstance(v, dict):
        return {k: shape(x, depth + 1) for k, x in v.items()}
    if isinstance(v, list):
        return [shape(v[0], depth + 1)] if v else []
    return type(v).__name__


REL_TOL = 1e-12


def same(a, b):
    """Deep equality; sample values ([<ts>, "<float>"] pairs) within REL_TOL: Prometheus 3.x
    (metricsd) sums with Kahan compensation, 2.42 does not, so the last digit may differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        if (len(a) == len(b) == 2 and isinstance(a[0], (int, float)) and
                isinstance(a[1], str) and isinstance(b[1], str)):
            if a[0] != b[0]:
                return False
            try:
                x, y = float(a[1]), float(b[1])
            except ValueError:
                return a[1] == b[1]
            if x != x or y != y:
                return x != x and y != y
            return x == y or abs(x - y) <= REL_TOL * max(abs(x), abs(y))
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


def canon(v):
    """Order-insensitive form of a result for endpoints whose order is unspecified."""
    if isinstance(v, list):
        return sorted((canon(x) for x in v), key=lambda x: json.dumps(x, sort_keys=True))
    if isinstance(v, dict):
        return {k: canon(x) for k, x in v.items()}
    return v


def strip_now(v, now_keys=()):
    """Replace evaluation timestamps of default-time queries (now, differs per request)."""
    if isinstance(v, dict):
        return {k: ("<now>" if k in now_keys else strip_now(x, now_keys)) for k, x in v.items()}
    if isinstance(v, list):
        return [strip_now(x, now_keys) for x in v]
    return v


# What must be equal, per case:
#   "all"    status code, status, errorType, error text, data, warnings
#   "type"   status code, status, errorType; error text may differ (listed when it does)
#   "shape"  status code, status, the key/type shape of data
#   "code"   status code and the Content-Type family (JSON or not)
#   "now"    like "all", but the sample timestamps of a default-time instant query may differ
#   "set"    like "all", with lists compared as sets
# DOCUMENTED_DIFF: (method, path, params) key -> reason; only status code + status must match.
CASES = []


def case(mode, method, path, params=None, body=None, headers=None, note=""):
    CASES.append((mode, method, path, params, body, headers, note))


def q(mode, path, params, both_methods=True, note=""):
    case(mode, "GET", path, params, note=note)
    if both_methods:
        case(mode, "POST", path, params, note=note)


def build_cases():
    CASES.clear()
    R = [("start", START), ("end", END), ("step", "60")]
    # /api/v1/query -------------------------------------------------------------------------
    q("all", "/api/v1/query", [("query", "api_requests_total"), ("time", EVAL)])
    q("all", "/api/v1/query", [("query", 'sum by (job) (rate(api_requests_total[2m]))'),
                               ("time", EVAL)])
    q("all", "/api/v1/query", [("query", "1+1"), ("time", EVAL)])
    q("all", "/api/v1/query", [("query", '"hello"'), ("time", EVAL)])
    q("all", "/api/v1/query", [("query", "api_requests_total[1m]"), ("time", EVAL)])
    q("all", "/api/v1/query", [("query", "up"), ("time", time.strftime(
        "%Y-%m-%dT%H:%M:%S.123Z", time.gmtime(TEND // 1000)))])
    q("all", "/api/v1/query", [("query", "up"), ("time", EVAL), ("timeout", "5s")])
    q("all", "/api/v1/query", [("query", "up"), ("time", EVAL), ("stats", "all")])
    q("now", "/api/v1/query", [("query", "1+1")])
    q("now", "/api/v1/query", [("query", "vector(1)+vector(1)")])
    q("all", "/api/v1/query", [("query", "queue_depth"), ("time", EVAL)])
    q("all", "/api/v1/query", [("query", "old_metric"), ("time", EVAL)])
    q("all", "/api/v1/query", [("query", "weird_values"), ("time", EVAL)])
    q("all", "/api/v1/query", [("query", 'weird_values{v=~".*&.*"} > bool 0'), ("time", EVAL)])
    q("all", "/api/v1/query", [("query", 'label_replace(up, "x", "<$1>", "job", "(.*)")'),
                               ("time", EVAL)])
    q("all", "/api/v1/query_range", [("query", "weird_values"), ("start", START), ("end", END),
                                     ("step", "30")])
    q("all", "/api/v1/series", [("match[]", "weird_values")])
    q("all", "/api/v1/label/v/values", [], both_methods=False)
    q("all", "/api/v1/query", [("query", 'weird_values{v="<a&b>"}'), ("time", EVAL)])
    q("all", "/api/v1/query", [("query", '"<&>"'), ("time", EVAL)])
    q("all", "/api/v1/query", [("query", "time()"), ("time", "1e9")])
    q("all", "/api/v1/query", [("query", "up"), ("time", "0")])
    q("all", "/api/v1/query", [])
    q("all", "/api/v1/query", [("query", "")])
    q("all", "/api/v1/query", [("query", "up"), ("time", "abc")])
    q("all", "/api/v1/query", [("query", "up"), ("time", "2023-13-45T00:00:00Z")])
    q("all", "/api/v1/query", [("query", "up"), ("timeout", "abc")])
    q("all", "/api/v1/query", [("query", "up"), ("timeout", "-1s")])
    q("type", "/api/v1/query", [("query", "up"), ("time", EVAL), ("timeout", "0s")],
      note="503: 'in query queue' or 'in query execution', by timing")
    q("type", "/api/v1/query", [("query", "up"), ("time", EVAL), ("timeout", "-1")])
    q("all", "/api/v1/query", [("query", "up{"), ("time", EVAL), ("timeout", "0s")])
    q("all", "/api/v1/query", [("query", "up"), ("time", EVAL), ("timeout", "1e10")])
    q("all", "/api/v1/query", [("query", "up"), ("time", EVAL), ("timeout", "1.5")])
    q("all", "/api/v1/query", [("query", "up"), ("time", "1e20")])
    q("all", "/api/v1/query", [("query", "up"), ("time", "-1")])
    q("all", "/api/v1/query", [("query", "up"), ("time", "9223372036854775")])
    q("all", "/api/v1/query", [("query", "up"), ("time", "2023-01-01T00:00:00+02:00")])
    q("all", "/api/v1/query", [("query", "up"), ("time", "2023-01-01T00:00:00.123456789Z")])
    q("all", "/api/v1/query", [("query", "up"), ("time", "1700000000.5")])
    q("all", "/api/v1/query", [("query", "up"), ("time", " 100")])
    q("all", "/api/v1/query", [("query", "up"), ("time", "100s")])
    q("all", "/api/v1/query", [("query", "1"), ("query", "2"), ("time", EVAL)])
    q("all", "/api/v1/query", [("query", "time()"), ("time", "1700000000.1234567")])
    q("all", "/api/v1/query", [("query", "rate(queue_depth[5m])"), ("time", EVAL)])
    q("all", "/api/v1/query", [("query", "quantile(2, queue_depth)"), ("time", EVAL)])
    q("all", "/api/v1/query", [("query", "vector(time())"), ("time", "NaN")])
    q("all", "/api/v1/query", [("query", "vector(time())"), ("time", "Inf")])
    for bad in ("up{", "sum(up", "up)", "foo(up)", "rate(up)", "rate(up[5m], 1)",
                "histogram_quantile(up, up)", "up @", "1 +", "up[5m", "up{job=~\"(\"}",
                "sum(up) by", "label_replace(up)", "up offset", "$", "up == on() group_left",
                "abs()", "topk(up, up)", "a + group_left b", "a & b", "a<b>",
                'count_values(1, up)', "{}", '{job=""}', "up[1x]",
                "1 and 1", "-\"a\"", "round(up, 1, 2)", "up[5m][1m]"):
        q("type", "/api/v1/query", [("query", bad), ("time", EVAL)])
    # /api/v1/query_range -------------------------------------------------------------------
    q("all", "/api/v1/query_range", [("query", "api_requests_total")] + R)
    q("all", "/api/v1/query_range", [("query", "sum(rate(api_requests_total[1m]))")] + R)
    q("all", "/api/v1/query_range", [("query", "1")] + R)
    q("all", "/api/v1/query_range", [("query", "time()"), ("start", "100"), ("end", "200"),
                                     ("step", "15s")])
    q("all", "/api/v1/query_range", [("query", "up"), ("start", "2023-01-01T00:00:00Z"),
                                     ("end", "2023-01-01T01:00:00.5Z"), ("step", "1m")])
    q("all", "/api/v1/query_range", [("query", "up"), ("start", START), ("end", END),
                                     ("step", "0.5")])
    q("all", "/api/v1/query_range", [("query", "up"), ("start", START), ("end", END),
                                     ("step", "1m30s")])
    q("all", "/api/v1/query_range", [("query", "up"), ("start", "1"), ("end", "2"),
                                     ("step", "1e10")])
    q("all", "/api/v1/query_range", [("query", "up"), ("start", "-1000"), ("end", "1000"),
                                     ("step", "1")])
    q("all", "/api/v1/query_range", [("query", "up"), ("start", "1"), ("end", "1"),
                                     ("step", "1")])
    q("all", "/api/v1/query_range", [("query", "time()"), ("start", "1.5"), ("end", "3.25"),
                                     ("step", "0.25")])
    q("all", "/api/v1/query_range", [("query", "up"), ("start", "1"), ("end", "2"),
                                     ("step", "1ms")])
    q("all", "/api/v1/query_range", [("query", "up"), ("start", "1"), ("end", "2"),
                                     ("step", "0.0001")])
    q("type", "/api/v1/query_range", [("query", "up"), ("start", START), ("end", END),
                                      ("step", "60"), ("timeout", "0s")])
    q("all", "/api/v1/query_range", [("query", "up"), ("start", "1"), ("end", "2"),
                                     ("step", "NaN")])
    q("all", "/api/v1/query_range", [("query", "up"), ("start", "1"), ("end", "2"),
                                     ("step", "-Inf")])
    q("all", "/api/v1/query_range", [("query", "up"), ("start", "NaN"), ("end", "2"),
                                     ("step", "1")])
    q("all", "/api/v1/query_range", [("query", "up"), ("start", "1"), ("end", "1e20"),
                                     ("step", "1")])
    q("all", "/api/v1/query_range", [("query", "up"), ("start", "1"), ("end", "2"),
                                     ("step", " 1")])
    q("all", "/api/v1/query_range", [("query", "up"), ("start", "1"), ("end", "2"),
                                     ("step", "1.5m")])
    q("all", "/api/v1/query_range", [("query", "up"), ("start", "1"), ("end", "2"),
                                     ("step", "0x10")])
    q("all", "/api/v1/query_range", [("query", "rate(queue_depth[5m])")] + R)
    q("all", "/api/v1/query_range", [])
    q("all", "/api/v1/query_range", [("query", "up")])
    q("all", "/api/v1/query_range", [("query", "up"), ("start", "1")])
    q("all", "/api/v1/query_range", [("query", "up"), ("start", "1"), ("end", "2")])
    q("all", "/api/v1/query_range", [("query", "up"), ("start", "x"), ("end", "2"),
                                     ("step", "1")])
    q("all", "/api/v1/query_range", [("query", "up"), ("start", "1"), ("end", "x"),
                                     ("step", "1")])
    q("all", "/api/v1/query_range", [("query", "up"), ("start", "1"), ("end", "2"),
                                     ("step", "x")])
    q("all", "/api/v1/query_range", [("query", "up"), ("start", "10"), ("end", "2"),
                                     ("step", "1")])
    q("all", "/api/v1/query_range", [("query", "up"), ("start", "1"), ("end", "2"),
                                     ("step", "0")])
    q("all", "/api/v1/query_range", [("query", "up"), ("start", "1"), ("end", "2"),
                                     ("step", "-5")])
    q("all", "/api/v1/query_range", [("query", "up"), ("start", "0"), ("end", "11001"),
                                     ("step", "1")])
    q("all", "/api/v1/query_range", [("query", "up"), ("start", "0"), ("end", "11000"),
                                     ("step", "1")])
    q("all", "/api/v1/query_range", [("query", "up"), ("start", "1"), ("end", "2"),
                                     ("step", "1"), ("timeout", "bad")])
    q("all", "/api/v1/query_range", [("query", ""), ("start", "1"), ("end", "2"),
                                     ("step", "1")])
    q("all", "/api/v1/query_range", [("query", '"str"'), ("start", "1"), ("end", "2"),
                                     ("step", "1")])
    q("all", "/api/v1/query_range", [("query", "up[5m]"), ("start", "1"), ("end", "2"),
                                     ("step", "1")])
    for bad in ("up{", "sum(up", "foo(up)", "rate(up)", "1 +"):
        q("type", "/api/v1/query_range", [("query", bad), ("start", "1"), ("end", "2"),
                                          ("step", "1")])
    # /api/v1/series ------------------------------------------------------------------------
    q("all", "/api/v1/series", [("match[]", "up")])
    q("all", "/api/v1/series", [("match[]", "up"), ("match[]", 'api_requests_total{code="500"}')])
    q("all", "/api/v1/series", [("match[]", '{job="db"}'), ("start", START), ("end", END)])
    q("all", "/api/v1/series", [("match[]", '{__name__=~"old.*"}'), ("start", END)])
    q("all", "/api/v1/series", [("match[]", "up"), ("start", "2"), ("end", "1")])
    q("all", "/api/v1/series", [])
    q("all", "/api/v1/series", [("match[]", "{}")])
    q("all", "/api/v1/series", [("match[]", '{job=~".*"}')])
    q("all", "/api/v1/series", [("match[]", "up{")])
    q("all", "/api/v1/series", [("match[]", "up"), ("start", "abc")])
    q("all", "/api/v1/series", [("match[]", "up"), ("end", "abc")])
    q("all", "/api/v1/series", [("match[]", "rate(up[5m])")])
    q("all", "/api/v1/series", [("match[]", "up"), ("match[]", "{}")])
    q("all", "/api/v1/series", [("match[]", "")])
    for raw in ("match[]=up&x=%zz", "match[]=up;x=1", "match[]=up&x=1%2", "match[]=%zz"):
        case("all", "GET", "/api/v1/series?" + raw, None)
        case("all", "POST", "/api/v1/series", None, body=raw.encode(),
             headers={"Content-Type": "application/x-www-form-urlencoded"})
        case("all", "GET", "/api/v1/labels?" + raw, None)
    for raw in ("query=1&x=%zz", "query=%zz", "query=up;x=1", "query=1%2"):
        case("all", "GET", "/api/v1/query?time=%s&%s" % (EVAL, raw), None)
        case("all", "POST", "/api/v1/query?time=" + EVAL, None, body=raw.encode(),
             headers={"Content-Type": "application/x-www-form-urlencoded"})
    q("all", "/api/v1/series", [("match[]", "up"), ("limit", "2")])
    q("all", "/api/v1/labels", [("match[]", "")])
    q("all", "/api/v1/label/job/values", [("match[]", "")], both_methods=False)
    q("all", "/api/v1/labels", [("limit", "2")])
    q("all", "/api/v1/labels", [("limit", "x")])
    q("all", "/api/v1/label/job/values", [("limit", "1")], both_methods=False)
    # /api/v1/labels, /api/v1/label/<name>/values -------------------------------------------
    q("all", "/api/v1/labels", [])
    q("all", "/api/v1/labels", [("match[]", "up")])
    q("all", "/api/v1/labels", [("match[]", "up"), ("match[]", "queue_depth")])
    q("all", "/api/v1/labels", [("start", START), ("end", END)])
    q("all", "/api/v1/labels", [("start", "abc")])
    q("all", "/api/v1/labels", [("match[]", "{}")])
    q("all", "/api/v1/labels", [("match[]", "up{")])
    q("all", "/api/v1/labels", [("match[]", "up"), ("end", "x")])
    for name in ("job", "__name__", "instance", "code", "nonexistent", "U__a_5f_b"):
        q("all", "/api/v1/label/%s/values" % name, [], both_methods=False)
    q("all", "/api/v1/label/job/values", [("match[]", "up")], both_methods=False)
    q("all", "/api/v1/label/job/values", [("match[]", "up"), ("match[]", "queue_depth")],
      both_methods=False)
    q("all", "/api/v1/label/job/values", [("start", START), ("end", END)], both_methods=False)
    q("all", "/api/v1/label/job/values", [("start", "abc")], both_methods=False)
    q("all", "/api/v1/label/job/values", [("match[]", "{}")], both_methods=False)
    q("all", "/api/v1/label/job/values", [("match[]", "up{")], both_methods=False)
    q("all", "/api/v1/label/a-b/values", [], both_methods=False)
    q("all", "/api/v1/label/1abc/values", [], both_methods=False)
    q("code", "/api/v1/label/job", [], both_methods=False)
    q("code", "/api/v1/label/job/values/x", [], both_methods=False)
    case("code", "POST", "/api/v1/label/job/values", [])
    # /api/v1/metadata ----------------------------------------------------------------------
    q("all", "/api/v1/metadata", [], both_methods=False)
    q("all", "/api/v1/metadata", [("limit", "1")], both_methods=False)
    q("all", "/api/v1/metadata", [("metric", "up")], both_methods=False)
    q("all", "/api/v1/metadata", [("limit", "abc")], both_methods=False)
    q("all", "/api/v1/metadata", [("limit_per_metric", "x")], both_methods=False)
    q("all", "/api/v1/metadata", [("limit", "-1")], both_methods=False)
    case("code", "POST", "/api/v1/metadata", [])
    # /api/v1/query_exemplars ---------------------------------------------------------------
    q("set", "/api/v1/query_exemplars", [("query", "api_requests_total"), ("start", START),
                                         ("end", END)])
    q("set", "/api/v1/query_exemplars", [("query", 'rate(api_requests_total{code="200"}[5m])'),
                                         ("start", START), ("end", END)])
    q("all", "/api/v1/query_exemplars", [("query", "up"), ("start", START), ("end", END)])
    q("all", "/api/v1/query_exemplars", [])
    q("all", "/api/v1/query_exemplars", [("query", "up"), ("start", "x")])
    q("all", "/api/v1/query_exemplars", [("query", "up"), ("start", "10"), ("end", "5")])
    q("type", "/api/v1/query_exemplars", [("query", "sum(")])
    q("all", "/api/v1/query_exemplars", [("query", "")])
    q("code", "/api/v1/query_exemplars", [("query", "1")], note="no selector: 204")
    q("code", "/api/v1/query_exemplars", [("query", "vector(1)")])
    q("all", "/api/v1/query_exemplars", [("query", "up"), ("start", "5"), ("end", "5")])
    q("set", "/api/v1/query_exemplars", [("query", "api_requests_total + up"),
                                         ("start", START), ("end", END)])
    # /api/v1/format_query ------------------------------------------------------------------
    long_sel = "rate(aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa[5m])"
    long_by = "by (bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb)"
    for fq in ("up", "sum by(job)(rate(api_requests_total{code=\"500\"}[5m]))",
               "foo  +  bar", "1+2*3", "up offset 5m", "-up", "rate(up[5m:1m])",
               "sum without (a) (x) > on(b) group_left(c) y", "1000000", "123456", "1e6",
               "0.0001", "0.00001", "1.5e-7", "123456789", "1e21", "Inf", "-Inf", "NaN", "-1",
               "+up", "-(up)", "- -up", "0x10", "up offset -5m", "up @ 100", "up @ 1.5",
               "up @ start() offset 1h", "rate(up[5m] @ 100 offset 1m)", "rate(up[90s])",
               "up[1d1h]", "up[2w]", "up[14d]", "up[365d]", "sum(up)[5m:]",
               "sum(up)[5m:30s] offset 1m", "sum by () (up)", "sum without () (up)",
               "topk(3, up)", 'count_values("x", up)', "quantile(0.9, up)", "a > bool b",
               "a + ignoring(x) group_right(y) b", "a + on() b", "a and on(x) b",
               "a or b", "a unless ignoring(c) b", "a ^ b ^ c", "(a + b) * c", "a % b",
               "a atan2 b", '{__name__="up", job="x"}', '{__name__=~"u.*"}',
               'up{b="1",a!~"2\\n"}', '"a\\tb"', "'single'", 'up{job="\u00e9\u2603"}',
               'label_replace(up, "a", "$1", "b", "(.*)")', "time()", "vector(1) > bool 0",
               "histogram_quantile(0.9, sum by (le) (rate(request_duration_seconds_bucket"
               "{job=\"api\", instance=\"10.0.0.0:9100\"}[5m])))",
               "sum by (job, instance, code, method) (rate(api_requests_total{job=\"api\", "
               "code=\"500\"}[5m])) / on(job, instance) group_left sum by (job, instance) "
               "(rate(api_requests_total{job=\"api\"}[5m]))",
               "sum(%s) %s" % (long_sel, long_by), "-sum(%s) %s" % (long_sel, long_by),
               "(sum(%s) %s)" % (long_sel, long_by),
               "max_over_time(sum(%s) %s[10m:1m])" % (long_sel, long_by),
               "topk(5, sum(%s) %s)" % (long_sel, long_by),
               "sum(%s) %s > bool on(x) group_left(y) sum(%s)" % (long_sel, long_by, long_sel),
               "clamp(%s, 0, 1) + absent(%s)" % (long_sel, long_sel)):
        q("all", "/api/v1/format_query", [("query", fq)])
    q("all", "/api/v1/format_query", [])
    q("type", "/api/v1/format_query", [("query", "sum(")])
    # status --------------------------------------------------------------------------------
    q("shape", "/api/v1/status/buildinfo", [], both_methods=False)
    q("shape", "/api/v1/status/runtimeinfo", [], both_methods=False)
    q("code", "/api/v1/status/flags", [], both_methods=False)
    q("shape", "/api/v1/status/config", [], both_methods=False)
    q("shape", "/api/v1/status/tsdb", [], both_methods=False)
    q("shape", "/api/v1/status/walreplay", [], both_methods=False)
    q("all", "/api/v1/targets", [], both_methods=False)
    q("all", "/api/v1/targets", [("state", "active")], both_methods=False)
    q("all", "/api/v1/targets", [("state", "dropped")], both_methods=False)
    q("all", "/api/v1/targets/metadata", [], both_methods=False)
    q("all", "/api/v1/targets/metadata", [("limit", "x")], both_methods=False)
    q("all", "/api/v1/targets/metadata", [("limit", "1"), ("metric", "up")], both_methods=False)
    q("all", "/api/v1/targets/metadata", [("match_target", "up{")], both_methods=False)
    q("all", "/api/v1/targets/metadata", [("match_target", "{}")], both_methods=False)
    q("all", "/api/v1/rules", [("type", "record")], both_methods=False)
    q("all", "/api/v1/rules", [("type", "bogus")], both_methods=False)
    q("all", "/api/v1/alertmanagers", [], both_methods=False)
    q("all", "/api/v1/rules", [], both_methods=False)
    q("all", "/api/v1/rules", [("type", "alert")], both_methods=False)
    q("all", "/api/v1/alerts", [], both_methods=False)
    for m in ("POST", "PUT", "DELETE"):
        case("code", m, "/api/v1/status/buildinfo", [])
    q("shape", "/api/v1/status/tsdb", [("limit", "3")], both_methods=False)
    q("all", "/api/v1/scrape_pools", [], both_methods=False)
    # unknown paths, methods, bodies --------------------------------------------------------
    for m, pth in (("HEAD", "/api/v1/query?query=1"), ("HEAD", "/api/v1/labels"),
                   ("HEAD", "/api/v1/status/buildinfo"), ("OPTIONS", "/api/v1/query"),
                   ("OPTIONS", "/api/v1/nope"), ("OPTIONS", "/api/v1/label/job/values"),
                   ("GET", "/api/v1/status"), ("POST", "/api/v1/status/config"),
                   ("GET", "/api/v1/read"), ("PATCH", "/api/v1/labels"),
                   ("POST", "/api/v1/targets"), ("GET", "/api/v1/write"),
                   ("GET", "/api/v1/admin/tsdb/snapshot"), ("GET", "/-/healthy"),
                   ("GET", "/-/ready")):
        case("code", m, pth, None)
    for m in ("POST", "PUT"):
        for a in ("delete_series?match[]=up", "clean_tombstones", "snapshot"):
            case("all", m, "/api/v1/admin/tsdb/" + a, None, body=b"")
    case("code", "POST", "/api/v1/read", None, body=b"garbage",
         headers={"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy"})
    case("code", "POST", "/api/v1/write", None, body=b"garbage",
         headers={"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy"})
    q("all", "/api/v1/series", [("match[]", "up"), ("start", "2023-01-01T00:00:00Z"),
                                ("end", "2022-01-01T00:00:00Z")])
    q("all", "/api/v1/series", [("match[]", "up"), ("start", "-292273086-05-16T16:47:06Z"),
                                ("end", "292277025-08-18T07:12:54.999999999Z")])
    q("all", "/api/v1/labels", [("start", "NaN")])
    q("all", "/api/v1/labels", [("start", "1e300"), ("end", "Inf")])
    q("code", "/api/v1/xyz", [])
    q("code", "/api/v2/query", [], both_methods=False)
    case("code", "PUT", "/api/v1/query", [("query", "up")])
    case("code", "DELETE", "/api/v1/query", [("query", "up")])
    case("code", "DELETE", "/api/v1/series", [("match[]", "up")])
    case("all", "POST", "/api/v1/query", [("query", "up"), ("time", EVAL)],
         headers={"Content-Type": "application/x-www-form-urlencoded; charset=UTF-8"})
    case("all", "POST", "/api/v1/query?time=" + EVAL, None,
         body=urllib.parse.urlencode([("query", "up")]),
         headers={"Content-Type": "application/x-www-form-urlencoded"})
    case("all", "POST", "/api/v1/query", None, body=b"query=up",
         headers={"Content-Type": "text/plain"}, note="no form body: missing query")
    case("all", "GET", "/api/v1/query?time=" + EVAL, None, body=b"query=up",
         headers={"Content-Type": "application/x-www-form-urlencoded"},
         note="a GET body is no form")
    case("code", "POST", "/api/v1/query", None,
         body=gzip.compress(urllib.parse.urlencode([("query", "up")]).encode()),
         headers={"Content-Type": "application/x-www-form-urlencoded",
                  "Content-Encoding": "gzip"})
    case("code", "POST", "/api/v1/query", None, body=b"query=up",
         headers={"Content-Type": "application/x-www-form-urlencoded",
                  "Content-Encoding": "br"})
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    big = b"&x=" + b"a" * (10 << 20)
    case("all", "POST", "/api/v1/query?time=" + EVAL, None, body=b"query=up" + big,
         headers=form, note="form over 10 MiB: not parsed")
    case("all", "POST", "/api/v1/query?time=%s&query=up" % EVAL, None, body=b"query=1" + big,
         headers=form, note="form over 10 MiB: URL parameters still count")
    case("all", "POST", "/api/v1/series", None, body=b"match[]=up" + big, headers=form)
    case("all", "POST", "/api/v1/labels", None, body=b"match[]=up" + big, headers=form)
    case("all", "POST", "/api/v1/query?time=" + EVAL, None,
         body=b"query=up&x=" + b"a" * ((10 << 20) - 20), headers=form,
         note="form just under 10 MiB: parsed")
    case("all", "POST", "/api/v1/query?query=2&time=" + EVAL, None, body=b"query=1",
         headers=form, note="body value before URL value")


def key_of(c):
    return (c[1], c[2], json.dumps(c[3]))



def doc(method, path, params, reason, expect=None):
    """A known 2.42-vs-3.x (or engine) difference. expect: metricsd's required answer
    (status code, error text or data) when it may differ from 2.42's status code."""
    DOCUMENTED_DIFF[(method, path, json.dumps(params))] = (reason, expect)


DOCUMENTED_DIFF = {}
for _m in ("GET",):
    doc(_m, "/api/v1/label/U__a_5f_b/values", [],
        "Prometheus 3.x un-escapes U__ label names (U__a_5f_b is a_b); 2.42 takes the name "
        "literally", (200, ["x"]))
for _m in ("GET", "POST"):
    doc(_m, "/api/v1/series", [("match[]", "up"), ("limit", "2")],
        "limit on /series, /labels, /label/../values exists since 2.49/3.x: the answer is cut "
        "with the warning \"results truncated due to limit\"; 2.42 ignores it")
    doc(_m, "/api/v1/labels", [("limit", "2")], "limit: see /series")
    doc(_m, "/api/v1/labels", [("limit", "x")],
        "3.x validates limit; 2.42 ignores it",
        (400, 'invalid parameter "limit": strconv.Atoi: parsing "x": invalid syntax'))
doc("GET", "/api/v1/label/job/values", [("limit", "1")], "limit: see /series")
for _m in ("GET", "POST"):
    doc(_m, "/api/v1/query_range", [("query", "up"), ("start", "1"), ("end", "2"),
                                    ("step", "0.0001")],
        "a step under 1ms passes Prometheus' step check (in ns) and then makes its engine "
        "divide by zero (422 \"unexpected error: runtime error: integer divide by zero\"); "
        "metricsd refuses it as a zero step",
        (400, 'invalid parameter "step": zero or negative query resolution step widths are '
              'not accepted. Try a positive integer'))
    doc(_m, "/api/v1/query", [("query", "quantile(2, queue_depth)"), ("time", EVAL)],
        "3.x warns \"quantile value should be between 0 and 1\"; 2.42 does not")
doc("DELETE", "/api/v1/series", [("match[]", "up")],
    "Prometheus routes DELETE /api/v1/series to a stub answering 500 \"not implemented\"; "
    "metricsd answers 405 (no 5xx for a client request: test_bad_requests' rule)",
    (405, None))
doc("GET", "/api/v1/status/tsdb", [("limit", "3")],
    "3.x cuts the top-N lists to limit (default 10); 2.42 has no limit parameter")
doc("GET", "/api/v1/metadata", [("limit_per_metric", "x")],
    "limit_per_metric exists since 2.49 (3.x: 400 \"limit_per_metric must be a number\"); "
    "2.42 ignores it", (400, "limit_per_metric must be a number"))
doc("GET", "/api/v1/status/buildinfo", [],
    "metricsd adds Mimir's \"features\" when the ruler runs (Grafana then enables its ruler "
    "API) and \"application\"; Prometheus' keys are all present (asserted separately)")


def compare(c, mtd, prom):
    mode, method, path, params, body, headers, note = c
    a = send(mtd.url(), method, path, params, body, headers)
    b = send(prom.url(), method, path, params, body, headers)
    (sa, ja, ra, ha), (sb, jb, rb, hb) = a, b
    if VERBOSE:
        print("  %s %s %s\n    metricsd   %s %s\n    prometheus %s %s" % (
            method, path, params, sa, ra[:300], sb, rb[:300]))
    diffs = []
    if sa != sb:
        diffs.append("status code %s vs %s" % (sa, sb))
    if (ja is None) != (jb is None):
        diffs.append("JSON vs non-JSON: %r vs %r" % (ra[:120], rb[:120]))
    cta = {k.lower(): v for k, v in ha.items()}.get("content-type")
    ctb = {k.lower(): v for k, v in hb.items()}.get("content-type")
    if (ja is not None or sa == 204) and cta != ctb:
        diffs.append("Content-Type %r vs %r" % (cta, ctb))
    if sb == 405:
        al = {k.lower(): v for k, v in ha.items()}.get("allow")
        bl = {k.lower(): v for k, v in hb.items()}.get("allow")
        if al != bl:
            diffs.append("Allow %r vs %r" % (al, bl))
    if mode == "code" or ja is None or jb is None:
        return diffs, a, b
    if not isinstance(ja, dict) or not isinstance(jb, dict):
        if ja != jb:
            diffs.append("body %r vs %r" % (ra[:200], rb[:200]))
        return diffs, a, b
    for k in ("status", "errorType"):
        if ja.get(k) != jb.get(k):
            diffs.append("%s %r vs %r" % (k, ja.get(k), jb.get(k)))
    if mode != "type" and ja.get("error") != jb.get("error"):
        diffs.append("error %r vs %r" % (ja.get("error"), jb.get("error")))
    elif mode != "type" and jb.get("status") == "error" and ra != rb:
        # error bodies byte for byte (key order, Go's escaping of <, >, &)
        diffs.append("error body bytes %r vs %r" % (ra[:300], rb[:300]))
    if mode == "type" and ja.get("error") != jb.get("error"):
        TEXT_DIFFS.append((method, path, params, ja.get("error"), jb.get("error")))
    da, db = ja.get("data"), jb.get("data")
    timed = isinstance(da, dict) and "stats" in da  # timings differ: no byte comparison
    if isinstance(da, dict) and isinstance(db, dict) and ("stats" in da or "stats" in db):
        if shape(da.get("stats")) != shape(db.get("stats")):
            diffs.append("stats shape %s vs %s" % (shape(da.get("stats")),
                                                   shape(db.get("stats"))))
        da = {k: v for k, v in da.items() if k != "stats"}
        db = {k: v for k, v in db.items() if k != "stats"}
    if mode == "shape":
        if shape(da) != shape(db):
            diffs.append("data shape %s vs %s" % (shape(da), shape(db)))
    elif mode in ("all", "type", "now", "set"):
        if mode == "now":
            da, db = strip_now(da, ()), strip_now(db, ())
            for d in (da, db):
                if isinstance(d, dict) and isinstance(d.get("result"), list):
                    if d["resultType"] == "scalar":
                        d["result"][0] = "<now>"
                    else:
                        for s in d["result"]:
                            s["value"][0] = "<now>"
        if mode == "set":
            da, db = canon(da), canon(db)
        if not same(da, db):
            diffs.append("data %s vs %s" % (json.dumps(da)[:400], json.dumps(db)[:400]))
        if mode == "all" and not timed and da == db and ja.keys() == jb.keys() and ra != rb:
            # same answer: then the same bytes (key order, timestamps "1.500", Go's escapes)
            diffs.append("body bytes %r vs %r" % (ra[:300], rb[:300]))
        if ja.get("warnings") != jb.get("warnings"):
            diffs.append("warnings %r vs %r" % (ja.get("warnings"), jb.get("warnings")))
    return diffs, a, b


TEXT_DIFFS = []


def test_api_matches_prometheus_2_42():
    if not os.path.exists(PROM_BIN):
        print("skip: prometheus not installed")
        return
    mtd, prom = servers()
    build_cases()
    TEXT_DIFFS.clear()
    keys = {key_of(c) for c in CASES}
    assert not [k for k in DOCUMENTED_DIFF if k not in keys], \
        [k for k in DOCUMENTED_DIFF if k not in keys]
    failures, documented = [], []
    nonempty = 0
    for c in CASES:
        try:
            diffs, a, b = compare(c, mtd, prom)
        except OSError as e:
            raise AssertionError("%s %s %s: %s; metricsd alive: %s\n%s" % (
                c[1], c[2], c[3], e, mtd.alive(), mtd.tail(60)))
        jb = b[1] if isinstance(b[1], dict) else {}
        d = jb.get("data")
        if jb.get("status") == "success" and (d.get("result") if isinstance(d, dict) and
                                               "result" in d else d):
            nonempty += 1
        if not diffs:
            continue
        known = DOCUMENTED_DIFF.get(key_of(c))
        line = "%s %s %s: %s" % (c[1], c[2], c[3], "; ".join(diffs))
        if known:
            reason, expect = known
            documented.append((line, reason))
            if expect is None and a[0] != b[0]:
                failures.append(line + " (documented difference, but the status code differs)")
            if expect is not None:
                got = (a[0], (a[1] or {}).get("error", (a[1] or {}).get("data")))
                if got != expect:
                    failures.append(line + " (documented difference: metricsd must answer "
                                    "%r, got %r)" % (expect, got))
        else:
            failures.append(line)
    # buildinfo: every key Prometheus has, with a 2.x version (Grafana parses it)
    _, ja, _, _ = send(mtd.url(), "GET", "/api/v1/status/buildinfo")
    _, jb, _, _ = send(prom.url(), "GET", "/api/v1/status/buildinfo")
    assert set(jb["data"]) <= set(ja["data"]), (ja, jb)
    assert ja["data"]["version"].split(".")[0] in ("2", "3"), ja
    for line, reason in documented:
        print("  documented difference: %s\n    reason: %s" % (line, reason))
    for m, p, params, e1, e2 in TEXT_DIFFS:
        print("  error text differs (%s %s %s):\n    metricsd:   %s\n    prometheus: %s" % (
            m, p, params, e1, e2))
    print("  %d cases compared (%d with non-empty data), %d documented differences, "
          "%d failures" % (len(CASES), nonempty, len(documented), len(failures)))
    # not a vacuous comparison: the data set reached both servers and answers carry data
    assert nonempty >= 100, nonempty
    _, jw, _, _ = send(prom.url(), "GET", "/api/v1/label/v/values")
    assert len(jw["data"]) == 6, jw
    assert mtd.alive(), mtd.tail()
    assert not failures, "\n".join(failures)


def test_without_ruler_rules_and_alerts_are_empty():
    """-target=querier (no ruler): /api/v1/rules and /api/v1/alerts answer as a Prometheus
    without rules (Grafana asks for them), not 404."""
    if not os.path.exists(PROM_BIN):
        return
    _, prom = servers()
    port = free_port()
    d = Daemon("metricsd", MTD_CONFIG % {"port": port, "grpc": free_port()},
               args=["-target=querier"], http_port=port)
    try:
        d.start()
        for path, params in (("/api/v1/rules", []), ("/api/v1/rules", [("type", "alert")]),
                             ("/api/v1/rules", [("type", "x")]), ("/api/v1/alerts", [])):
            a = send(d.url(), "GET", path, params)
            b = send(prom.url(), "GET", path, params)
            assert (a[0], a[2]) == (b[0], b[2]), (path, params, a[:3], b[:3])
        _, jb, _, _ = send(d.url(), "GET", "/api/v1/status/buildinfo")
        assert "features" not in jb["data"], jb  # no ruler: Grafana must not see Mimir
    finally:
        d.cleanup()


def test_zz_stop():
    if S:
        S["mtd"].cleanup()
        S["prom"].stop()
        S.clear()


TestRun(globals()).main()
