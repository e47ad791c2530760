"""test_metricsd_write -- metricsd's remote-write path, head and metadata API, end to end.

Real peers: the Debian Prometheus 2.42 (/usr/bin/prometheus) scrapes a static exposition file
served by a python http.server thread and remote-writes to metricsd. Hand-built remote-write
payloads (a tiny protobuf encoder + snappy literal framing below) cover bad input. A kill -9
after acknowledged pushes, then a restart, must lose nothing.
"""
from http.server import SimpleHTTPRequestHandler
import json
import os
import shutil
import socketserver
import struct
import subprocess
import tempfile
import threading
import time
import urllib.parse

from obslib import Daemon, TestRun, free_port, http, http_json, wait_until

PROMETHEUS = "/usr/bin/prometheus"

# ---- protobuf + snappy encoders (just enough for prometheus.WriteRequest) ------------------


def uvarint(n):
    out = bytearray()
    n &= (1 << 64) - 1
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field_bytes(num, data):
    if isinstance(data, str):
        data = data.encode()
    return uvarint(num << 3 | 2) + uvarint(len(data)) + data


def field_varint(num, v):
    return uvarint(num << 3 | 0) + uvarint(v)


def field_double(num, v):
    return uvarint(num << 3 | 1) + struct.pack("<d", v)


def pb_label(name, value):
    return field_bytes(1, name) + field_bytes(2, value)


def pb_series(labels, samples):
    """labels: list of (name, value) in the order given; samples: list of (t_ms, v)."""
    out = b""
    for n, v in labels:
        out += field_bytes(1, pb_label(n, v))
    for t, v in samples:
        out += field_bytes(2, field_double(1, v) + field_varint(2, t))
    return out


def pb_write(series, metadata=()):
    out = b""
    for labels, samples in series:
        out += field_bytes(1, pb_series(labels, samples))
    for mtype, fam, help_, unit in metadata:
        out += field_bytes(3, field_varint(1, mtype) + field_bytes(2, fam) +
                           field_bytes(4, help_) + field_bytes(5, unit))
    return out


def snappy_literal(data):
    """Valid snappy block format using only literal elements."""
    out = bytearray(uvarint(len(data)))
    i = 0
    while i < len(data):
        chunk = data[i:i + 65536]
        n = len(chunk) - 1
        if n < 60:
            out.append(n << 2)
        elif n < 256:
            out += bytes([60 << 2, n])
        else:
            out += bytes([61 << 2]) + struct.pack("<H", n)
        out += chunk
        i += len(chunk)
    return bytes(out)


HDRS = {"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy",
        "X-Prometheus-Remote-Write-Version": "0.1.0"}


def push(d, series, metadata=(), tenant=None, raw=None, headers=None):
    body = raw if raw is not None else snappy_literal(pb_write(series, metadata))
    h = dict(HDRS if headers is None else headers)
    if tenant:
        h["X-Scope-OrgID"] = tenant
    st, b, _ = http("POST", d.url("/api/v1/push"), body, h)
    return st, b.decode(errors="replace")


def series_of(d, match, tenant=None, extra=""):
    h = {"X-Scope-OrgID": tenant} if tenant else {}
    st, j = http_json("GET", d.url("/api/v1/series?match[]=" + urllib.parse.quote(match) + extra),
                      headers=h)
    assert st == 200, (st, j)
    assert j["status"] == "success"
    return j["data"]


CONFIG = """
server:
  http_listen_address: 127.0.0.1
  http_listen_port: %(port)d
  grpc_listen_port: %(grpc)d
distributor:
  max_recv_msg_size: 1MiB
blocks_storage:
  tsdb:
    dir: ./tsdb
"""


def start(workdir=None, port=None):
    port = port or free_port()
    return Daemon("metricsd", CONFIG % {"port": port, "grpc": free_port()}, http_port=port,
                  workdir=workdir).start()


NOW = int(time.time() * 1000)

# ---- tests -------------------------------------------------------------------------------


def test_push_and_read_back():
    d = start()
    try:
        st, b = push(d, [
            ([("__name__", "obs_a_total"), ("job", "x"), ("zone", "eu")], [(NOW - 2000, 1), (NOW - 1000, 2)]),
            ([("__name__", "obs_a_total"), ("job", "y")], [(NOW - 1000, 5)]),
            ([("__name__", "obs_b"), ("job", "x")], [(NOW, 0.5)]),
        ], metadata=[(1, "obs_a_total", "A counter.", ""), (2, "obs_b", "A gauge.", "seconds")])
        assert st == 200, (st, b)
        # the same push without Content-Encoding (body still snappy) and at /api/v1/write
        st, _, _ = http("POST", d.url("/api/v1/write"),
                        snappy_literal(pb_write([([("__name__", "obs_c"), ("k", "v")], [(NOW, 1)])])),
                        {"Content-Type": "application/x-protobuf"})
        assert st == 200
        # raw protobuf, no compression at all
        st, _, _ = http("POST", d.url("/api/v1/push"),
                        pb_write([([("__name__", "obs_d")], [(NOW, 1)])]),
                        {"Content-Type": "application/x-protobuf"})
        assert st == 200

        data = series_of(d, "obs_a_total")
        assert data == [{"__name__": "obs_a_total", "job": "x", "zone": "eu"},
                        {"__name__": "obs_a_total", "job": "y"}], data
        assert series_of(d, '{job="x"}') == [{"__name__": "obs_a_total", "job": "x", "zone": "eu"},
                                             {"__name__": "obs_b", "job": "x"}]
        assert series_of(d, 'obs_a_total{job=~"x|z"}') == [data[0]]
        assert series_of(d, 'obs_a_total{zone=""}') == [data[1]]
        # several match[] -> union, de-duplicated
        st, j = http_json("GET", d.url("/api/v1/series?match[]=obs_b&match[]=%7Bjob%3D%22x%22%7D"))
        assert st == 200 and len(j["data"]) == 2, j
        # time range filter
        assert series_of(d, "obs_a_total", extra="&start=%f&end=%f" % ((NOW - 5000) / 1e3, (NOW - 3000) / 1e3)) == []
        # POST form
        st, j = http_json("POST", d.url("/api/v1/series"), "match%5B%5D=obs_b",
                          {"Content-Type": "application/x-www-form-urlencoded"})
        assert st == 200 and j["data"] == [{"__name__": "obs_b", "job": "x"}], j

        st, j = http_json("GET", d.url("/api/v1/labels"))
        assert j == {"status": "success", "data": ["__name__", "job", "k", "zone"]}, j
        st, j = http_json("GET", d.url("/api/v1/labels?match[]=obs_b"))
        assert j["data"] == ["__name__", "job"], j
        st, j = http_json("GET", d.url("/api/v1/label/__name__/values"))
        assert j["data"] == ["obs_a_total", "obs_b", "obs_c", "obs_d"], j
        st, j = http_json("GET", d.url("/api/v1/label/job/values?match[]=obs_a_total"))
        assert j["data"] == ["x", "y"], j
        st, j = http_json("GET", d.url("/api/v1/label/nope/values"))
        assert st == 200 and j["data"] == [], j

        st, j = http_json("GET", d.url("/api/v1/metadata"))
        assert j["data"] == {"obs_a_total": [{"type": "counter", "help": "A counter.", "unit": ""}],
                             "obs_b": [{"type": "gauge", "help": "A gauge.", "unit": "seconds"}]}, j
        st, j = http_json("GET", d.url("/api/v1/metadata?metric=obs_b"))
        assert list(j["data"]) == ["obs_b"], j
        st, j = http_json("GET", d.url("/api/v1/metadata?limit=1"))
        assert list(j["data"]) == ["obs_a_total"], j

        st, j = http_json("GET", d.url("/api/v1/status/buildinfo"))
        assert st == 200 and j["status"] == "success", j
        for k in ("version", "revision", "branch", "buildUser", "buildDate", "goVersion"):
            assert k in j["data"], (k, j)
        assert j["data"]["version"].startswith("2.42.0")
    finally:
        d.cleanup()


def test_tenants_are_isolated():
    d = start()
    try:
        assert push(d, [([("__name__", "secret"), ("t", "1")], [(NOW, 1)])], tenant="team-a")[0] == 200
        assert push(d, [([("__name__", "open"), ("t", "2")], [(NOW, 1)])])[0] == 200
        assert series_of(d, "secret") == []
        assert series_of(d, "secret", tenant="team-a") == [{"__name__": "secret", "t": "1"}]
        assert series_of(d, "open", tenant="team-a") == []
        st, b = push(d, [([("__name__", "x")], [(NOW, 1)])], tenant="bad/tenant")
        assert st == 400 and "unsupported character" in b, (st, b)
    finally:
        d.cleanup()


def test_bad_input():
    d = start()
    try:
        good = ([("__name__", "kept"), ("job", "ok")], [(NOW, 1)])
        cases = [
            ("invalid label name", [good, ([("__name__", "m"), ("bad-name", "v")], [(NOW, 1)])],
             400, "invalid label"),
            ("unsorted", [([("__name__", "m"), ("z", "1"), ("a", "2")], [(NOW, 1)])], 400, "out of order"),
            ("duplicate label", [([("__name__", "m"), ("a", "1"), ("a", "2")], [(NOW, 1)])], 400,
             "duplicate label name"),
            ("empty value", [([("__name__", "m"), ("a", "")], [(NOW, 1)])], 400, "empty value"),
            ("no metric name", [([("job", "x")], [(NOW, 1)])], 400, "without metric name"),
            ("bad metric name", [([("__name__", "a.b")], [(NOW, 1)])], 400, "invalid metric name"),
            ("future sample", [([("__name__", "m")], [(NOW + 3600 * 1000, 1)])], 400, "too far in the future"),
        ]
        for what, series, status, text in cases:
            st, b = push(d, series)
            assert st == status and text in b, (what, st, b)
        # partial acceptance: the valid series of the first request was stored
        assert series_of(d, "kept") == [{"__name__": "kept", "job": "ok"}]
        assert series_of(d, '{__name__=~"m|a.*"}') == []

        # out of order / duplicate samples against stored data
        assert push(d, [([("__name__", "ord")], [(NOW, 1)])])[0] == 200
        st, b = push(d, [([("__name__", "ord")], [(NOW - 1000, 1)])])
        assert st == 400 and "out of order sample" in b, (st, b)
        st, b = push(d, [([("__name__", "ord")], [(NOW, 2)])])
        assert st == 400 and "duplicate sample for timestamp" in b, (st, b)
        assert push(d, [([("__name__", "ord")], [(NOW, 1)])])[0] == 200  # exact duplicate is fine

        # transport-level problems
        st, b = push(d, None, raw=b"\xff\xff\xff\xff\xff\x01garbage")
        assert st == 400, (st, b)
        st, b = push(d, None, raw=b"\x10garbage", headers={"Content-Type": "application/x-protobuf"})
        assert st == 400, (st, b)
        st, b = push(d, None, raw=snappy_literal(b"\x0a\x05\x0a\x03abc\xff\xff"))
        assert st == 400 and "unmarshal" in b, (st, b)
        st, b = push(d, None, raw=snappy_literal(b"\x0a\xff\xff\xff\xff\x0f"))
        assert st == 400, (st, b)
        big = snappy_literal(os.urandom(1200 * 1024))
        st, b = push(d, None, raw=big)
        assert st == 413, (st, b)
        st, j = http_json("GET", d.url("/api/v1/series?match[]=up{"))
        assert st == 400 and j["errorType"] == "bad_data", j
        st, j = http_json("GET", d.url("/api/v1/series?match[]=up&start=abc"))
        assert st == 400 and "cannot parse" in j["error"], j
        st, j = http_json("GET", d.url("/api/v1/series?match[]=up&start=20&end=10"))
        assert st == 400, j
        st, j = http_json("GET", d.url("/api/v1/label/1bad/values"))
        assert st == 400 and "invalid label name" in j["error"], j
        st, j = http_json("GET", d.url('/api/v1/series?match[]={job=~".*"}'))
        assert st == 400, j

        # still serving, and the good data is intact
        assert d.alive()
        assert series_of(d, "kept") == [{"__name__": "kept", "job": "ok"}]
        st, body, _ = http("GET", d.url("/metrics"))
        assert st == 200 and b"mtd_discarded_samples_total" in body
    finally:
        d.cleanup()


def test_kill9_loses_nothing_acknowledged():
    d = start()
    workdir = d.dir
    acked = []
    try:
        t0 = NOW - 600 * 1000
        for i in range(60):
            v = i * 1.5
            labels = [("__name__", "durable"), ("seq", "%03d" % i)]
            st, b = push(d, [(labels, [(t0 + i, v)]), ([("__name__", "durable_one")], [(t0 + i, v)])])
            assert st == 200, (st, b)
            acked.append((labels, t0 + i, v))
        port = d.http_port
        d.kill9()
        d = start(workdir=workdir, port=port)
        assert len(series_of(d, "durable")) == 60
        for labels, t, v in acked:
            # the same sample again is an accepted duplicate; another value at that timestamp
            # is refused -- so timestamp and value both survived
            assert push(d, [(labels, [(t, v)])])[0] == 200
            st, b = push(d, [(labels, [(t, v + 1)])])
            assert st == 400 and "duplicate sample" in b, (labels, st, b)
        # the long series kept its last sample
        st, b = push(d, [([("__name__", "durable_one")], [(t0 + 58, 0)])])
        assert st == 400 and "out of order" in b, (st, b)
        st, b = push(d, [([("__name__", "durable_one")], [(t0 + 59, 59 * 1.5)])])
        assert st == 200, (st, b)
        # if the PromQL API is there, compare values too
        st, j = http_json("GET", d.url("/api/v1/query_range?query=durable_one&start=%f&end=%f&step=0.001"
                                       % ((t0) / 1e3, (t0 + 59) / 1e3)))
        if st == 200 and j.get("status") == "success" and j["data"]["result"]:
            vals = j["data"]["result"][0]["values"]
            assert float(vals[-1][1]) == 59 * 1.5, vals[-1]
    finally:
        d.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *a):
        pass


def test_real_prometheus_remote_write():
    assert os.path.exists(PROMETHEUS), "prometheus not installed"
    d = start()
    tmp = tempfile.mkdtemp(prefix="obs-prom-")
    with open(os.path.join(tmp, "metrics"), "w") as f:
        f.write("# HELP obs_static_total A static counter.\n# TYPE obs_static_total counter\n"
                'obs_static_total{kind="a"} 3\nobs_static_total{kind="b"} 4\n'
                "# TYPE obs_static_gauge gauge\nobs_static_gauge 1.5\n")
    handler = lambda *a, **kw: _Quiet(*a, directory=tmp, **kw)  # noqa: E731
    srv = socketserver.TCPServer(("127.0.0.1", 0), handler)
    sport = srv.server_address[1]
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    pport = free_port()
    cfg = os.path.join(tmp, "prometheus.yml")
    with open(cfg, "w") as f:
        f.write("""global:
  scrape_interval: 1s
scrape_configs:
  - job_name: static
    static_configs: [{targets: ['127.0.0.1:%d']}]
  - job_name: prometheus
    static_configs: [{targets: ['127.0.0.1:%d']}]
remote_write:
  - url: %s
    queue_config: {batch_send_deadline: 1s, min_backoff: 100ms, max_backoff: 1s}
    metadata_config: {send_interval: 1s}
""" % (sport, pport, d.url("/api/v1/write")))
    log = open(os.path.join(tmp, "prometheus.log"), "wb")
    prom = subprocess.Popen([PROMETHEUS, "--config.file=" + cfg, "--storage.tsdb.path=" + os.path.join(tmp, "data"),
                             "--web.listen-address=127.0.0.1:%d" % pport], stdout=log, stderr=subprocess.STDOUT)
    try:
        def have():
            return series_of(d, "obs_static_total")
        data = wait_until(have, timeout=40, what="scraped series in metricsd")
        want = [{"__name__": "obs_static_total", "instance": "127.0.0.1:%d" % sport, "job": "static", "kind": k}
                for k in ("a", "b")]
        wait_until(lambda: series_of(d, "obs_static_total") == want, timeout=20, what="both series")
        wait_until(lambda: series_of(d, 'up{job="prometheus"}'), timeout=20, what="prometheus self-scrape")

        st, j = http_json("GET", d.url("/api/v1/label/__name__/values"))
        names = j["data"]
        for n in ("up", "obs_static_total", "obs_static_gauge", "scrape_duration_seconds",
                  "prometheus_build_info"):
            assert n in names, (n, names[:20])
        st, j = http_json("GET", d.url("/api/v1/label/job/values"))
        assert j["data"] == ["prometheus", "static"], j
        # metadata arrives on its own schedule
        def meta():
            st, j = http_json("GET", d.url("/api/v1/metadata?metric=obs_static_total"))
            return j["data"].get("obs_static_total")
        m = wait_until(meta, timeout=30, what="metadata")
        assert m == [{"type": "counter", "help": "A static counter.", "unit": ""}], m
        assert d.alive()
        _ = data
    finally:
        prom.terminate()
        try:
            prom.wait(timeout=15)
        except subprocess.TimeoutExpired:
            prom.kill()
            prom.wait()
        log.close()
        srv.shutdown()
        srv.server_close()
        d.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


TestRun(globals()).main()
