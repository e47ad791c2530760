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
from pbutil import snappy_literal, uvarint  # noqa: E402

PROMETHEUS = "/usr/bin/prometheus"

# ---- protobuf + snappy encoders (just enough for prometheus.WriteRequest) ------------------


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


def zigzag(n):
    return (n << 1) ^ (n >> 63)


def pb_histogram(t, schema=0, count=None, sum_=0.0, zero_count=0, zero_threshold=1e-128,
                 spans=((0, 0),), buckets=(), is_float=False, reset_hint=0, stale=False):
    """A remote-write native histogram. spans: (offset, length) of positive buckets; buckets:
    absolute counts (float histograms) -- integer histograms are sent delta-encoded."""
    out = b""
    if stale:
        sum_ = struct.unpack("<d", struct.pack("<Q", 0x7FF0000000000002))[0]
    if count is None:
        count = sum(buckets) + zero_count
    if is_float:
        out += field_double(2, float(count)) + field_double(7, float(zero_count))
    else:
        out += field_varint(1, int(count)) + field_varint(6, int(zero_count))
    out += field_double(3, sum_) + field_varint(4, zigzag(schema))
    out += field_double(5, zero_threshold)
    for off, ln in spans:
        out += field_bytes(11, field_varint(1, zigzag(off) & 0xFFFFFFFF) + field_varint(2, ln))
    if is_float:
        out += field_bytes(13, b"".join(struct.pack("<d", float(c)) for c in buckets))
    else:
        prev, packed = 0, b""
        for c in buckets:
            packed += uvarint(zigzag(int(c) - prev))
            prev = int(c)
        out += field_bytes(12, packed)
    out += field_varint(14, reset_hint) + field_varint(15, t)
    return out


def pb_series_full(labels, samples=(), histograms=(), exemplars=()):
    """histograms: pb_histogram() bytes; exemplars: (labels, value, t)."""
    out = pb_series(labels, samples)
    for lbls, v, t in exemplars:
        e = b"".join(field_bytes(1, pb_label(n, x)) for n, x in lbls)
        out += field_bytes(3, e + field_double(2, v) + field_varint(3, t))
    for h in histograms:
        out += field_bytes(4, h)
    return out


def push_full(d, series, tenant=None):
    """series: list of pb_series_full() bytes."""
    body = snappy_literal(b"".join(field_bytes(1, x) for x in series))
    h = dict(HDRS)
    if tenant:
        h["X-Scope-OrgID"] = tenant
    st, b, _ = http("POST", d.url("/api/v1/push"), body, h)
    return st, b.decode(errors="replace")


def pb_write(series, metadata=()):
    out = b""
    for labels, samples in series:
        out += field_bytes(1, pb_series(labels, samples))
    for mtype, fam, help_, unit in metadata:
        out += field_bytes(3, field_varint(1, mtype) + field_bytes(2, fam) +
                           field_bytes(4, help_) + field_bytes(5, unit))
    return out


def snappy_decode(buf):
    """Snappy block format decoder (literals and copies)."""
    n, i, shift = 0, 0, 0
    while True:
        b = buf[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            break
    out = bytearray()
    while i < len(buf):
        tag = buf[i]
        i += 1
        kind = tag & 3
        if kind == 0:
            ln = tag >> 2
            if ln >= 60:
                nb = ln - 59
                ln = int.from_bytes(buf[i:i + nb], "little")
                i += nb
            ln += 1
            out += buf[i:i + ln]
            i += ln
            continue
        if kind == 1:
            ln = ((tag >> 2) & 7) + 4
            off = ((tag >> 5) << 8) | buf[i]
            i += 1
        elif kind == 2:
            ln = (tag >> 2) + 1
            off = int.from_bytes(buf[i:i + 2], "little")
            i += 2
        else:
            ln = (tag >> 2) + 1
            off = int.from_bytes(buf[i:i + 4], "little")
            i += 4
        for _ in range(ln):
            out.append(out[-off])
    assert len(out) == n
    return bytes(out)


def pb_fields(buf):
    """Generic protobuf decode: list of (field, value) with bytes for length-delimited."""
    out, i = [], 0
    while i < len(buf):
        key, i = _uv(buf, i)
        f, wt = key >> 3, key & 7
        if wt == 0:
            v, i = _uv(buf, i)
        elif wt == 1:
            v = buf[i:i + 8]
            i += 8
        elif wt == 2:
            ln, i = _uv(buf, i)
            v = buf[i:i + ln]
            i += ln
        elif wt == 5:
            v = buf[i:i + 4]
            i += 4
        else:
            raise ValueError("wire type %d" % wt)
        out.append((f, v))
    return out


def _uv(buf, i):
    n = shift = 0
    while True:
        b = buf[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, i


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def pb_read_request(start, end, matchers, types=()):
    q = field_varint(1, start) + field_varint(2, end)
    for mt, n, v in matchers:
        q += field_bytes(3, field_varint(1, mt) + field_bytes(2, n) + field_bytes(3, v))
    out = field_bytes(1, q)
    for t in types:
        out += field_varint(2, t)
    return out


def decode_ts(buf):
    labels, samples = {}, []
    for f, v in pb_fields(buf):
        if f == 1:
            d = dict(pb_fields(v))
            labels[d.get(1, b"").decode()] = d.get(2, b"").decode()
        elif f == 2:
            d = dict(pb_fields(v))
            ts = d.get(2, 0)
            if ts >= 1 << 63:
                ts -= 1 << 64
            samples.append((ts, struct.unpack("<d", d.get(1, b"\0" * 8))[0]))
    return labels, samples


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


def start(workdir=None, port=None, extra=""):
    port = port or free_port()
    d = Daemon("metricsd", CONFIG % {"port": port, "grpc": free_port()} + extra, http_port=port,
               workdir=workdir)
    try:
        return d.start()
    except Exception:
        d.stop()  # a daemon that never became ready must not outlive the test
        raise


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
            ("bad utf-8", [([("__name__", "m"), ("a", b"\xff\xfe")], [(NOW, 1)])], 400, "UTF-8"),
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
        # end before start: Prometheus 2.42 answers success with no series
        st, j = http_json("GET", d.url("/api/v1/series?match[]=up&start=20&end=10"))
        assert st == 200 and j["data"] == [], j
        st, j = http_json("GET", d.url("/api/v1/label/1bad/values"))
        assert st == 400 and "invalid label name" in j["error"], j
        st, j = http_json("GET", d.url('/api/v1/series?match[]={job=~".*"}'))
        assert st == 400, j

        # still serving, and the good data is intact
        assert d.alive()
        assert series_of(d, "kept") == [{"__name__": "kept", "job": "ok"}]
        st, body, _ = http("GET", d.url("/metrics"))
        assert st == 200 and b"cortex_discarded_samples_total" in body
        assert b'reason="new_value_for_timestamp",user="anonymous"' in body, body
    finally:
        d.cleanup()


def test_mutated_payloads_never_crash():
    """Bit-flipped and truncated valid requests, bounded: every reply is 200 or 4xx."""
    import random
    rnd = random.Random(7)
    d = start()
    try:
        base = pb_write([([("__name__", "mut"), ("job", "j%d" % i)], [(NOW - i, float(i))])
                         for i in range(20)], metadata=[(1, "mut", "help", "")])
        for i in range(300):
            b = bytearray(base)
            for _ in range(rnd.randint(1, 6)):
                b[rnd.randrange(len(b))] = rnd.randrange(256)
            if i % 3 == 0:
                b = b[:rnd.randrange(len(b))]
            raw = snappy_literal(bytes(b)) if i % 2 == 0 else bytes(b)
            hdrs = HDRS if i % 2 == 0 else {"Content-Type": "application/x-protobuf"}
            st, body = push(d, None, raw=raw, headers=hdrs)
            assert st == 200 or 400 <= st < 500, (i, st, body)
        assert d.alive()
        st, j = http_json("GET", d.url("/api/v1/label/__name__/values"))
        assert st == 200
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


def test_remote_read():
    d = start()
    try:
        t0 = NOW - 300 * 1000
        series = [([("__name__", "rr"), ("job", "a")], [(t0 + i * 1000, float(i)) for i in range(300)]),
                  ([("__name__", "rr"), ("job", "b")], [(t0, -1.0)])]
        assert push(d, series)[0] == 200
        hdr = {"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy",
               "X-Prometheus-Remote-Read-Version": "0.1.0"}
        # SAMPLES
        body = snappy_literal(pb_read_request(t0 + 10000, t0 + 19000, [(0, "__name__", "rr")]) +
                              field_bytes(1, field_varint(1, t0) + field_varint(2, t0 + 1) +
                                          field_bytes(3, field_varint(1, 2) + field_bytes(2, "job") +
                                                      field_bytes(3, "b|c"))))
        st, b, h = http("POST", d.url("/api/v1/read"), body, hdr)
        assert st == 200, (st, b)
        assert h.get("Content-Encoding") == "snappy", h
        results = [v for f, v in pb_fields(snappy_decode(b)) if f == 1]
        assert len(results) == 2
        q0 = [decode_ts(v) for f, v in pb_fields(results[0]) if f == 1]
        assert [lab for lab, _ in q0] == [{"__name__": "rr", "job": "a"}], q0
        assert q0[0][1] == [(t0 + i * 1000, float(i)) for i in range(10, 20)], q0[0][1]
        q1 = [decode_ts(v) for f, v in pb_fields(results[1]) if f == 1]
        assert q1 == [({"__name__": "rr", "job": "b"}, [(t0, -1.0)])], q1
        # STREAMED_XOR_CHUNKS
        body = snappy_literal(pb_read_request(t0, NOW, [(2, "__name__", "r.")], types=[1, 0]))
        st, b, h = http("POST", d.url("/api/v1/read"), body, hdr)
        assert st == 200 and "ChunkedReadResponse" in h.get("Content-Type", ""), (st, h)
        i, frames = 0, []
        while i < len(b):
            ln, i = _uv(b, i)
            crc = int.from_bytes(b[i:i + 4], "big")
            frame = b[i + 4:i + 4 + ln]
            assert crc32c(frame) == crc
            frames.append(frame)
            i += 4 + ln
        assert len(frames) == 2
        counts = []
        for fr in frames:
            for f, v in pb_fields(fr):
                if f == 1:
                    n = 0
                    for cf, cv in pb_fields(v):
                        if cf == 2:
                            cd = dict(pb_fields(cv))
                            assert cd[3] == 1  # XOR
                            n += int.from_bytes(cd[4][:2], "big")
                    counts.append(n)
        assert counts == [300, 1], counts
        # bad requests
        st, b, _ = http("POST", d.url("/api/v1/read"), b"\x05garbage", {"Content-Type": "application/x-protobuf"})
        assert st == 400, (st, b)
        body = snappy_literal(pb_read_request(t0, NOW, [(2, "job", "(")]))
        st, b, _ = http("POST", d.url("/api/v1/read"), body, hdr)
        assert st == 400 and b"error parsing regexp" in b, (st, b)
        assert d.alive()
    finally:
        d.cleanup()


def test_config_errors():
    for section, bad in (("ingester", "ingester:\n  bogus_key: 1\n"),
                         ("limits", "limits:\n  max_label_names_per_series: many\n"),
                         ("blocks_storage", "blocks_storage:\n  tsdb:\n    nope: x\n")):
        d = Daemon("metricsd", "server:\n  http_listen_port: %d\n" % free_port() + bad)
        try:
            d.start(wait_ready=False)
            rc = d.proc.wait(timeout=10)
            out = open(d.log_path, "rb").read().decode(errors="replace")
            assert rc == 1, (section, rc, out)
            assert "config.yaml:" in out, (section, out)
        finally:
            d.cleanup()
    # flags set keys too: -ingester.wal-dir
    wal = tempfile.mkdtemp(prefix="obs-wal-")
    port = free_port()
    d = Daemon("metricsd", "server:\n  http_listen_port: %d\n" % port, http_port=port,
               args=["-ingester.wal-dir=" + wal]).start()
    try:
        assert push(d, [([("__name__", "f")], [(NOW, 1)])])[0] == 200
        assert os.listdir(wal), "WAL not written to the flag's directory"
    finally:
        d.cleanup()
        shutil.rmtree(wal, ignore_errors=True)


def test_kill9_mid_stream():
    """Pushes keep coming from a thread while metricsd is killed: every acknowledged one is
    there after the restart."""
    d = start()
    workdir, port = d.dir, d.http_port
    acked, stop = [], threading.Event()

    def pusher():
        for i in range(100000):
            if stop.is_set():
                return
            try:
                st, _ = push(d, [([("__name__", "stream"), ("seq", str(i))], [(NOW, float(i))])])
            except OSError:
                return
            if st == 200:
                acked.append(i)
    th = threading.Thread(target=pusher)
    th.start()
    try:
        wait_until(lambda: len(acked) >= 50, timeout=20, what="some acknowledged pushes")
        d.kill9()
        stop.set()
        th.join(timeout=20)
        d = start(workdir=workdir, port=port)
        got = {int(x["seq"]) for x in series_of(d, "stream")}
        missing = [i for i in acked if i not in got]
        assert not missing, missing[:10]
    finally:
        stop.set()
        d.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)


def metric(d, name, **labels):
    """Value of one self-metric sample on /metrics (0 when absent)."""
    st, body, _ = http("GET", d.url("/metrics"))
    assert st == 200
    want = ",".join('%s="%s"' % kv for kv in sorted(labels.items()))
    for line in body.decode().splitlines():
        if line.startswith("#"):
            continue
        key, _, val = line.rpartition(" ")
        if key == name or (want and key.startswith(name + "{") and
                           all(('%s="%s"' % kv) in key for kv in labels.items())):
            return float(val)
    return 0.0


def query(d, q, t, tenant=None):
    h = {"X-Scope-OrgID": tenant} if tenant else {}
    st, j = http_json("GET", d.url("/api/v1/query?query=%s&time=%f" % (urllib.parse.quote(q), t / 1e3)),
                      headers=h)
    return st, j


def test_out_of_order_window_and_stale():
    d = start(extra="limits:\n  out_of_order_time_window: 10m\n"
                    "overrides:\n  strict:\n    out_of_order_time_window: 0s\n")
    try:
        t = NOW - 60 * 1000
        s1 = [("__name__", "ooo"), ("job", "x")]
        assert push(d, [(s1, [(t, 1)])]) == (200, "")
        # 5 minutes older: inside the window
        assert push(d, [(s1, [(t - 300 * 1000, 2)])])[0] == 200
        # 20 minutes older: outside
        st, b = push(d, [(s1, [(t - 1200 * 1000, 3)])])
        assert st == 400 and "too old sample" in b, (st, b)
        # duplicate with another value refused per sample; the rest of the request is kept
        s2 = [("__name__", "ooo"), ("job", "y")]
        st, b = push(d, [(s1, [(t - 300 * 1000, 9)]), (s2, [(t, 5)])])
        assert st == 400 and "duplicate sample for timestamp" in b, (st, b)
        assert len(series_of(d, "ooo")) == 2
        assert push(d, [(s1, [(t - 300 * 1000, 2)])])[0] == 200  # same value: fine
        # the tenant without a window gets Prometheus' "out of order sample"
        assert push(d, [(s1, [(t, 1)])], tenant="strict")[0] == 200
        st, b = push(d, [(s1, [(t - 1000, 1)])], tenant="strict")
        assert st == 400 and "out of order sample" in b, (st, b)
        # stale marker: stored, and PromQL stops returning the series after it
        stale = struct.unpack("<d", struct.pack("<Q", 0x7FF0000000000002))[0]
        assert push(d, [(s2, [(t + 15000, stale)])])[0] == 200
        st, j = query(d, 'ooo{job="y"}', t + 10000)
        if st == 200:  # PromQL API present
            assert len(j["data"]["result"]) == 1, j
            st, j = query(d, 'ooo{job="y"}', t + 20000)
            assert j["data"]["result"] == [], j
            st, j = query(d, 'count_over_time(ooo{job="x"}[30m])', t)
            assert j["data"]["result"][0]["value"][1] == "2", j
        assert metric(d, "cortex_discarded_samples_total", reason="sample_too_old",
                      user="anonymous") == 1
        assert metric(d, "cortex_discarded_samples_total", reason="sample_out_of_order",
                      user="strict") == 1
        # all of it after a kill -9
        workdir, port = d.dir, d.http_port
        d.kill9()
        d = start(workdir=workdir, port=port,
                  extra="limits:\n  out_of_order_time_window: 10m\n")
        st, b = push(d, [(s1, [(t - 300 * 1000, 7)])])
        assert st == 400 and "duplicate sample" in b, (st, b)
        st, b = push(d, [(s2, [(t + 15000, 1)])])
        assert st == 400 and "duplicate sample" in b, (st, b)  # the stale marker is there
    finally:
        d.cleanup()


def test_native_histograms_and_exemplars():
    d = start()
    try:
        t = NOW - 30 * 1000
        lbl = [("__name__", "rpc_latency"), ("job", "h")]
        h_int = pb_histogram(t, schema=1, spans=((0, 2), (1, 1)), buckets=(3, 5, 2), zero_count=1,
                             sum_=12.5)
        h_float = pb_histogram(t + 15000, schema=1, spans=((0, 2),), buckets=(4.5, 6.25),
                               is_float=True, sum_=20.0)
        ex = [([("trace_id", "abc123")], 0.25, t), ([("trace_id", "def456")], 0.5, t + 15000)]
        workdir = None
        assert push_full(d, [pb_series_full(lbl, histograms=[h_int], exemplars=ex[:1])]) == (200, "")
        # exact resend accepted; another histogram at the same time refused
        assert push_full(d, [pb_series_full(lbl, histograms=[h_int])])[0] == 200
        other = pb_histogram(t, schema=1, spans=((0, 1),), buckets=(9,))
        st, b = push_full(d, [pb_series_full(lbl, histograms=[other])])
        assert st == 400 and "duplicate sample" in b, (st, b)
        assert push_full(d, [pb_series_full(lbl, histograms=[h_float], exemplars=ex[1:])]) == (200, "")
        # exemplars on a float series too
        lbl2 = [("__name__", "req_total"), ("job", "h")]
        assert push_full(d, [pb_series_full(lbl2, samples=[(t, 1)],
                                            exemplars=[([("trace_id", "x1")], 1, t)])])[0] == 200
        # spans that do not match the buckets: 400
        bad = pb_histogram(t + 30000, schema=1, spans=((0, 3),), buckets=(1,))
        st, b = push_full(d, [pb_series_full(lbl, histograms=[bad])])
        assert st == 400 and "native histogram" in b, (st, b)
        # series API sees the histogram-only series
        assert series_of(d, "rpc_latency") == [{"__name__": "rpc_latency", "job": "h"}]

        def exemplars():
            st, j = http_json("GET", d.url("/api/v1/query_exemplars?query=%s&start=%f&end=%f" % (
                urllib.parse.quote('{job="h"}'), (t - 1000) / 1e3, (t + 20000) / 1e3)))
            return st, j
        st, j = exemplars()
        assert st == 200, (st, j)
        got = {(r["seriesLabels"]["__name__"], e["labels"]["trace_id"])
               for r in j["data"] for e in r["exemplars"]}
        assert got == {("rpc_latency", "abc123"), ("rpc_latency", "def456"),
                       ("req_total", "x1")}, j
        # PromQL over the head's native histograms
        st, j = query(d, "histogram_count(rpc_latency)", t + 15000)
        assert st == 200 and j["data"]["result"], (st, j)
        assert float(j["data"]["result"][0]["value"][1]) == 10.75, j
        st, j = query(d, "histogram_sum(rpc_latency)", t + 15000)
        assert st == 200 and float(j["data"]["result"][0]["value"][1]) == 20.0, (st, j)
        hist_before = metric(d, "mtd_ingester_memory_native_samples")
        assert hist_before == 2, hist_before
        # kill -9: histograms and exemplars come back
        workdir, port = d.dir, d.http_port
        d.kill9()
        d = start(workdir=workdir, port=port)
        assert metric(d, "mtd_ingester_memory_native_samples") == 2
        assert metric(d, "mtd_ingester_memory_exemplars") == 3
        assert push_full(d, [pb_series_full(lbl, histograms=[h_float])])[0] == 200
        other2 = pb_histogram(t + 15000, schema=1, spans=((0, 1),), buckets=(9,))
        st, b = push_full(d, [pb_series_full(lbl, histograms=[other2])])
        assert st == 400 and "duplicate sample" in b, (st, b)
        st, j = exemplars()
        assert sum(len(r["exemplars"]) for r in j["data"]) == 3, j
        # a stale histogram ends the series
        assert push_full(d, [pb_series_full(lbl, histograms=[pb_histogram(t + 30000, stale=True)])])[0] == 200
        assert metric(d, "mtd_ingester_memory_native_samples") == 3
    finally:
        d.cleanup()
        if workdir:
            shutil.rmtree(workdir, ignore_errors=True)


def test_limits_and_overrides():
    rt = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)
    rt.write("overrides:\n  small:\n    max_global_series_per_user: 2\n"
             "    max_label_names_per_series: 3\n")
    rt.close()
    d = start(extra=(
        "limits:\n  ingestion_rate: 50\n  ingestion_burst_size: 100\n"
        "  max_label_name_length: 20\n  max_label_value_length: 30\n"
        "overrides:\n  big:\n    ingestion_rate: 0\n"
        "runtime_config:\n  file: %s\n  period: 1s\n" % rt.name))
    try:
        def many(n, name="lim"):
            return [([("__name__", name), ("i", str(i))], [(NOW, 1)]) for i in range(n)]
        # ingestion rate: a burst of 100, then 429 with Mimir's message
        assert push(d, many(60))[0] == 200
        st, b = push(d, many(60, "lim2"))
        assert st == 429 and "ingestion rate limit" in b and "err-mimir-tenant-max-ingestion-rate" in b, (st, b)
        assert series_of(d, "lim2") == []
        assert metric(d, "cortex_discarded_samples_total", reason="rate_limited", user="anonymous") == 60
        # the override lifts it for tenant big
        for _ in range(3):
            assert push(d, many(80), tenant="big")[0] == 200
        # label limits -> 400
        st, b = push(d, [([("__name__", "m"), ("a_very_long_label_name_indeed", "v")], [(NOW, 1)])],
                     tenant="big")
        assert st == 400 and "label name length exceeds the limit" in b, (st, b)
        st, b = push(d, [([("__name__", "m"), ("a", "v" * 31)], [(NOW, 1)])], tenant="big")
        assert st == 400 and "label value length exceeds the limit" in b, (st, b)
        # runtime file tenant: series limit -> 429, label count -> 400
        st, b = push(d, many(3, "s"), tenant="small")
        assert st == 429 and "per-user series limit of 2 exceeded" in b, (st, b)
        assert len(series_of(d, "s", tenant="small")) == 2
        st, b = push(d, [([("__name__", "m"), ("a", "1"), ("b", "2"), ("c", "3")], [(NOW, 1)])],
                     tenant="small")
        assert st == 400 and "number of labels exceeds the limit" in b, (st, b)
        for reason, user, n in (("label_name_too_long", "big", 1), ("label_value_too_long", "big", 1),
                                ("per_user_series_limit", "small", 1),
                                ("max_label_names_per_series", "small", 1)):
            assert metric(d, "cortex_discarded_samples_total", reason=reason, user=user) == n, reason
        # the runtime file is re-read when it changes
        with open(rt.name, "w") as f:
            f.write("overrides:\n  small:\n    max_global_series_per_user: 10\n")
        os.utime(rt.name, (time.time() + 5, time.time() + 5))
        wait_until(lambda: push(d, many(3, "s"), tenant="small")[0] == 200, timeout=10,
                   what="runtime config reload")
    finally:
        d.cleanup()
        os.unlink(rt.name)


def test_wal_checkpoints_and_kill9_under_load():
    """Small WAL segments and a 1s checkpoint check: old segments are deleted, and kill -9
    while pushes are in flight (possibly mid-checkpoint) loses nothing acknowledged."""
    extra = ("ingester:\n  checkpoint_interval: 200ms\n"
             "limits:\n  out_of_order_time_window: 1h\n")
    cfg = CONFIG.replace("    dir: ./tsdb\n", "    dir: ./tsdb\n    wal_segment_size_bytes: 32KiB\n")
    port = free_port()
    d = Daemon("metricsd", cfg % {"port": port, "grpc": free_port()} + extra, http_port=port).start()
    workdir = d.dir
    acked, stop = [], threading.Event()

    def pusher():
        for i in range(1000000):
            if stop.is_set():
                return
            series = [([("__name__", "ck"), ("s", str(k))], [(NOW - 3600 * 1000 + i * 10, float(i))])
                      for k in range(20)]
            try:
                st, _ = push(d, series)
            except OSError:
                return
            if st == 200:
                acked.append(i)
            elif st != 0:
                raise AssertionError(st)
    try:
        th = threading.Thread(target=pusher)
        th.start()
        wait_until(lambda: metric(d, "mtd_ingester_wal_checkpoints") >= 2, timeout=60,
                   what="two checkpoints")
        wal = os.path.join(workdir, "tsdb", "wal")
        segs = [f for f in os.listdir(wal) if f.isdigit()]
        assert len(segs) < 40, segs
        time.sleep(0.3)
        d.kill9()
        stop.set()
        th.join(timeout=20)
        d = Daemon("metricsd", cfg % {"port": port, "grpc": free_port()} + extra, http_port=port,
                   workdir=workdir).start()
        # every acknowledged push: its 20 samples are there (a resend of the same value is an
        # accepted duplicate, another value is refused)
        assert len(acked) > 20
        for i in acked[-5:] + acked[:3]:
            st, b = push(d, [([("__name__", "ck"), ("s", "3")], [(NOW - 3600 * 1000 + i * 10, -1.0)])])
            assert st == 400 and "duplicate sample" in b, (i, st, b)
        st, j = query(d, "count_over_time(ck[2h])", NOW)
        if st == 200:
            counts = {r["metric"]["s"]: float(r["value"][1]) for r in j["data"]["result"]}
            assert len(counts) == 20 and min(counts.values()) >= len(acked), (counts, len(acked))
    finally:
        stop.set()
        d.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)


def _pb_sint(n):
    return uvarint(zigzag(n))


def exposition_native_histogram(count_scale):
    """One MetricFamily (io.prometheus.client, delimited) with a native histogram, schema 0:
    positive buckets 1 and 2 (counts 2k, 3k), zero bucket k, sum 10k."""
    k = count_scale
    span = field_varint(1, zigzag(1)) + field_varint(2, 2)
    hist = (field_varint(1, 6 * k) + field_double(2, 10.0 * k) + field_varint(5, zigzag(0)) +
            field_double(6, 1e-128) + field_varint(7, k) + field_bytes(12, span) +
            field_bytes(13, _pb_sint(2 * k) + _pb_sint(k)))
    metric = field_bytes(1, pb_label("path", "/x")) + field_bytes(7, hist)
    fam = (field_bytes(1, "obs_native_seconds") + field_bytes(2, "A native histogram.") +
           field_varint(3, 4) + field_bytes(4, metric))
    return uvarint(len(fam)) + fam


class _NativeHandler(SimpleHTTPRequestHandler):
    scale = [1]

    def do_GET(self):
        body = exposition_native_histogram(self.scale[0])
        self.scale[0] += 1
        self.send_response(200)
        self.send_header("Content-Type", "application/vnd.google.protobuf; "
                         "proto=io.prometheus.client.MetricFamily; encoding=delimited")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


def test_real_prometheus_native_histograms():
    """Prometheus 2.42 with --enable-feature=native-histograms scrapes a protobuf exposition
    with a native histogram and remote-writes it (send_native_histograms): metricsd stores
    it (the series exists, the histogram gauge counts it, a different histogram at a scraped
    timestamp is refused as a duplicate)."""
    d = start()
    tmp = tempfile.mkdtemp(prefix="obs-promnh-")
    srv = socketserver.TCPServer(("127.0.0.1", 0), _NativeHandler)
    sport = srv.server_address[1]
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    cfg = os.path.join(tmp, "prometheus.yml")
    with open(cfg, "w") as f:
        f.write("""global:
  scrape_interval: 1s
scrape_configs:
  - job_name: native
    static_configs: [{targets: ['127.0.0.1:%d']}]
remote_write:
  - url: %s
    send_native_histograms: true
    queue_config: {batch_send_deadline: 1s, min_backoff: 100ms, max_backoff: 1s}
""" % (sport, d.url("/api/v1/write")))
    log = open(os.path.join(tmp, "prometheus.log"), "wb")
    prom = subprocess.Popen([PROMETHEUS, "--config.file=" + cfg, "--enable-feature=native-histograms",
                             "--storage.tsdb.path=" + os.path.join(tmp, "data"),
                             "--web.listen-address=127.0.0.1:%d" % free_port()],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: metric(d, "mtd_ingester_memory_native_samples") >= 2, timeout=40,
                   what="native histogram samples from prometheus")
        got = series_of(d, "obs_native_seconds")
        assert got == [{"__name__": "obs_native_seconds", "instance": "127.0.0.1:%d" % sport,
                        "job": "native", "path": "/x"}], got
        # no classic-histogram series were made of it
        assert series_of(d, "obs_native_seconds_bucket") == []
        assert d.alive()
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
remote_read:
  - url: %s
    read_recent: true
""" % (sport, pport, d.url("/api/v1/write"), d.url("/api/v1/read")))
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

        # remote read: a series that exists only in metricsd, queried through Prometheus
        now = int(time.time() * 1000)
        assert push(d, [([("__name__", "only_in_metricsd"), ("src", "push")],
                         [(now - 2000, 41.0), (now - 1000, 42.5)])])[0] == 200
        def via_prom():
            st, j = http_json("GET", "http://127.0.0.1:%d/api/v1/query?query=only_in_metricsd" % pport)
            return st == 200 and j["data"]["result"]
        res = wait_until(via_prom, timeout=20, what="remote read through prometheus")
        assert res[0]["metric"] == {"__name__": "only_in_metricsd", "src": "push"}, res
        assert res[0]["value"][1] == "42.5", res
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
