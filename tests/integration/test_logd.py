#!/usr/bin/env python3
"""Integration tests for logd (Loki-compatible): real binary on a random loopback port.

Pushes go through the real wire formats: JSON, and protobuf (hand-encoded logproto.PushRequest)
snappy-compressed with a small literal-only snappy encoder written here. Expected query
results are computed in the test from what it sent.
"""
import gzip
import json
import os
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from obslib import Daemon, TestRun, free_port, http, http_json  # noqa: E402
from pbutil import snappy_literal, uvarint  # noqa: E402

NS = 1_000_000_000


# --- wire helpers --------------------------------------------------------------------------

def pb_field(num, wtype, payload):
    key = uvarint((num << 3) | wtype)
    if wtype == 2:
        return key + uvarint(len(payload)) + payload
    return key + payload  # varint already encoded


def pb_str(num, s):
    return pb_field(num, 2, s.encode() if isinstance(s, str) else s)


def pb_push(streams):
    """streams: [(labels_text, [(ts_ns, line, {meta})...])] -> PushRequest bytes."""
    req = b""
    for labels, entries in streams:
        sa = pb_str(1, labels)
        for ent in entries:
            ts, line = ent[0], ent[1]
            meta = ent[2] if len(ent) > 2 else {}
            tsmsg = pb_field(1, 0, uvarint(ts // NS)) + pb_field(2, 0, uvarint(ts % NS))
            ea = pb_field(1, 2, tsmsg) + pb_str(2, line)
            for k, v in meta.items():
                ea += pb_field(3, 2, pb_str(1, k) + pb_str(2, v))
            sa += pb_field(2, 2, ea)
        req += pb_field(1, 2, sa)
    return req


# --- daemon helpers ------------------------------------------------------------------------

def config(port, extra=""):
    return ("server:\n  http_listen_port: %d\n  grpc_listen_port: %d\n"
            "  http_server_max_body_bytes: 1MiB\n"
            "auth_enabled: false\n"
            "common:\n  path_prefix: ./data\n"
            "schema_config:\n  configs: []\n"
            "storage_config:\n  filesystem:\n    directory: ./chunks\n"
            "limits_config:\n  max_line_size: 64KB\n  ingestion_rate_mb: 64\n"
            "  ingestion_burst_size_mb: 128\n%s" % (port, free_port(), extra))


def start(extra="", workdir=None, port=None):
    port = port or free_port()
    return Daemon("logd", config(port, extra), http_port=port, workdir=workdir).start()


def push_json(d, streams, headers=None, gz=False):
    body = json.dumps({"streams": streams}).encode()
    h = {"Content-Type": "application/json"}
    if gz:
        body = gzip.compress(body)
        h["Content-Encoding"] = "gzip"
    h.update(headers or {})
    return http("POST", d.url("/loki/api/v1/push"), body, h)


def push_pb(d, streams, headers=None):
    h = {"Content-Type": "application/x-protobuf"}
    h.update(headers or {})
    return http("POST", d.url("/loki/api/v1/push"), snappy_literal(pb_push(streams)), h)


def q(d, path, **params):
    st, body = http_json("GET", d.url(path + "?" + urllib.parse.urlencode(params, doseq=True)))
    return st, body


def query_range(d, query, start, end, **kw):
    st, body = q(d, "/loki/api/v1/query_range", query=query, start=str(start), end=str(end), **kw)
    assert st == 200, (st, body)
    assert body["status"] == "success", body
    return body["data"]


def lines_of(data):
    """[(ts, line)] over all streams, as returned."""
    out = []
    for s in data["result"]:
        out += [(int(v[0]), v[1]) for v in s["values"]]
    return out


def raw_post_status(port, path, body):
    """POST over a raw socket and return the status code; the server may answer 413 and close
    before the body is sent (urllib then only reports a broken pipe)."""
    import socket
    sk = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        sk.sendall(("POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    "Content-Length: %d\r\n\r\n" % (path, len(body))).encode())
        try:
            sk.sendall(body)
        except OSError:
            pass
        data = b""
        try:
            while b"\r\n" not in data:
                chunk = sk.recv(4096)
                if not chunk:
                    break
                data += chunk
        except OSError:
            pass
        return int(data.split(b" ")[1]) if data.startswith(b"HTTP/") else None
    finally:
        sk.close()


def now_ns():
    return time.time_ns()


# --- tests ---------------------------------------------------------------------------------

def test_push_json_and_filters():
    d = start()
    try:
        base = now_ns() - 120 * NS
        sent = []
        for i in range(50):
            lvl = "error" if i % 5 == 0 else "info"
            sent.append((base + i * NS, lvl, "req %d level=%s path=/api/%d" % (i, lvl, i % 3)))
        streams = {}
        for ts, lvl, line in sent:
            streams.setdefault(lvl, []).append([str(ts), line])
        st, body, _ = push_json(d, [{"stream": {"app": "web", "level": l}, "values": v}
                                    for l, v in streams.items()])
        assert st == 204, (st, body)
        s, e = base - NS, base + 60 * NS

        data = query_range(d, '{app="web"}', s, e, limit=1000)
        assert data["resultType"] == "streams"
        got = sorted(lines_of(data))
        assert got == sorted((ts, line) for ts, _, line in sent), got[:3]

        data = query_range(d, '{app="web", level=~"err.*"} |= "path=/api/0"', s, e, limit=1000)
        want = [(ts, l) for ts, lvl, l in sent if lvl == "error" and "path=/api/0" in l]
        assert sorted(lines_of(data)) == sorted(want)
        assert all(r["stream"] == {"app": "web", "level": "error"} for r in data["result"])

        data = query_range(d, '{app="web"} != "level=info" |~ "req [0-9]+5 "', s, e, limit=1000)
        want = [(ts, l) for ts, lvl, l in sent if lvl != "info" and l.split()[1].endswith("5")
                and len(l.split()[1]) > 1]
        assert sorted(lines_of(data)) == sorted(want), (lines_of(data), want)

        data = query_range(d, '{app="web"} !~ "path=/api/[12]"', s, e, limit=1000)
        want = [(ts, l) for ts, _, l in sent if "path=/api/0" in l]
        assert sorted(lines_of(data)) == sorted(want)

        # limit + direction: backward = newest first, forward = oldest first
        data = query_range(d, '{app="web"}', s, e, limit=7)
        got = lines_of(data)
        assert len(got) == 7
        assert sorted(ts for ts, _ in got) == sorted(ts for ts, _, _ in sent)[-7:]
        data = query_range(d, '{app="web"}', s, e, limit=7, direction="forward")
        got = lines_of(data)
        assert sorted(ts for ts, _ in got) == sorted(ts for ts, _, _ in sent)[:7]
        for r in data["result"]:
            tss = [int(v[0]) for v in r["values"]]
            assert tss == sorted(tss)

        # logfmt parser + label filter
        data = query_range(d, '{app="web"} | logfmt | path="/api/1"', s, e, limit=1000)
        want = [(ts, l) for ts, _, l in sent if "path=/api/1" in l]
        assert sorted(lines_of(data)) == sorted(want)
        assert all(r["stream"]["path"] == "/api/1" for r in data["result"])

        # RFC3339 times work too
        rs = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(s // NS))
        re_ = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(e // NS + 1))
        st, body = q(d, "/loki/api/v1/query_range", query='{app="web"}', start=rs, end=re_,
                     limit="1000")
        assert st == 200 and len(lines_of(body["data"])) == 50, body
    finally:
        d.cleanup()


def test_push_protobuf_snappy_and_json_parser():
    d = start()
    try:
        base = now_ns() - 60 * NS
        entries = [(base + i * 1000, json.dumps({"status": 200 + (i % 3) * 100, "msg": "m%d" % i}),
                    {"trace_id": "t%d" % i}) for i in range(20)]
        st, body, _ = push_pb(d, [('{job="pb", env="prod"}', entries)])
        assert st == 204, (st, body)
        data = query_range(d, '{job="pb"}', base - NS, base + NS, limit=100, direction="forward")
        assert [(ts, l) for ts, l in lines_of(data)] == [(e[0], e[1]) for e in entries]
        assert data["result"][0]["stream"] == {"env": "prod", "job": "pb"}

        data = query_range(d, '{job="pb"} | json | status >= 300', base - NS, base + NS,
                           limit=100)
        want = [e for e in entries if json.loads(e[1])["status"] >= 300]
        assert sorted(lines_of(data)) == sorted((e[0], e[1]) for e in want)
        for r in data["result"]:
            assert r["stream"]["status"] in ("300", "400"), r["stream"]

        # gzip-encoded JSON through the HTTP layer
        st, body, _ = push_json(d, [{"stream": {"job": "gz"}, "values": [[str(base), "zipped"]]}],
                                gz=True)
        assert st == 204, (st, body)
        data = query_range(d, '{job="gz"}', base - NS, base + NS)
        assert lines_of(data) == [(base, "zipped")]
    finally:
        d.cleanup()


def test_metric_queries_exact():
    d = start()
    try:
        base = (now_ns() // (60 * NS)) * 60 * NS - 30 * 60 * NS  # aligned, 30 min ago
        a = [base + i * NS for i in range(30)]          # 30 entries, 1/s
        b = [base + i * 2 * NS for i in range(12)]      # 12 entries, 1 per 2s
        st, _, _ = push_json(d, [
            {"stream": {"job": "m", "level": "info"}, "values": [[str(t), "ok xx"] for t in a]},
            {"stream": {"job": "m", "level": "error"}, "values": [[str(t), "bad"] for t in b]},
        ])
        assert st == 204
        t = base + 60 * NS
        st, body = q(d, "/loki/api/v1/query", query='count_over_time({job="m"}[5m])', time=str(t))
        assert st == 200, body
        assert body["data"]["resultType"] == "vector"
        got = {r["metric"]["level"]: r["value"][1] for r in body["data"]["result"]}
        assert got == {"info": "30", "error": "12"}, got

        st, body = q(d, "/loki/api/v1/query", query='sum(count_over_time({job="m"}[5m]))',
                     time=str(t))
        assert body["data"]["result"] == [{"metric": {}, "value": [t / NS, "42"]}], body

        st, body = q(d, "/loki/api/v1/query",
                     query='sum by (level) (bytes_over_time({job="m"} |= "x" [5m]))', time=str(t))
        got = {r["metric"]["level"]: r["value"][1] for r in body["data"]["result"]}
        assert got == {"info": str(30 * len("ok xx"))}, got

        st, body = q(d, "/loki/api/v1/query", query='rate({job="m", level="info"}[1m])',
                     time=str(t))
        want = sum(1 for x in a if t - 60 * NS < x <= t) / 60
        assert float(body["data"]["result"][0]["value"][1]) == want, (body, want)

        # query_range matrix with step: window (t-10s, t]
        step = 10
        data = query_range(d, 'count_over_time({job="m"}[10s])', base, base + 40 * NS,
                           step=str(step))
        assert data["resultType"] == "matrix"
        res = {r["metric"]["level"]: r["values"] for r in data["result"]}
        for lvl, ts_list in (("info", a), ("error", b)):
            want = []
            for k in range(0, 5):
                te = base + k * step * NS
                c = sum(1 for x in ts_list if te - step * NS < x <= te)
                if c:
                    want.append([te / NS, str(c)])
            assert res[lvl] == want, (lvl, res[lvl], want)

        # Grafana's health check
        st, body = q(d, "/loki/api/v1/query", query="vector(1)+vector(1)")
        assert st == 200 and body["data"]["resultType"] == "vector", body
        assert body["data"]["result"][0]["value"][1] == "2"
        st, body = q(d, "/loki/api/v1/query", query="1+1")
        assert body["data"]["resultType"] == "scalar" and body["data"]["result"][1] == "2", body

        # max/min/avg/count by and topk
        st, body = q(d, "/loki/api/v1/query",
                     query='max without (level) (count_over_time({job="m"}[5m]))', time=str(t))
        assert body["data"]["result"] == [{"metric": {"job": "m"}, "value": [t / NS, "30"]}], body
        st, body = q(d, "/loki/api/v1/query",
                     query='topk(1, count_over_time({job="m"}[5m]))', time=str(t))
        assert [r["metric"]["level"] for r in body["data"]["result"]] == ["info"], body
        st, body = q(d, "/loki/api/v1/query",
                     query='count_over_time({job="m"}[5m]) > 20', time=str(t))
        assert [r["metric"]["level"] for r in body["data"]["result"]] == ["info"], body
    finally:
        d.cleanup()


def test_labels_series_endpoints():
    d = start()
    try:
        base = now_ns() - 10 * NS
        push_json(d, [{"stream": {"app": "a", "env": "dev"}, "values": [[str(base), "1"]]},
                      {"stream": {"app": "b", "env": "prod", "zone": "z1"},
                       "values": [[str(base), "2"]]}])
        st, body = q(d, "/loki/api/v1/labels")
        assert st == 200 and body == {"status": "success", "data": ["app", "env", "zone"]}, body
        st, body = q(d, "/loki/api/v1/label/env/values")
        assert body == {"status": "success", "data": ["dev", "prod"]}, body
        st, body = q(d, "/loki/api/v1/series", **{"match[]": '{env=~"p.*"}'})
        assert body == {"status": "success",
                        "data": [{"app": "b", "env": "prod", "zone": "z1"}]}, body
        st, body = q(d, "/loki/api/v1/index/stats", query='{app=~"a|b"}')
        assert st == 200 and body["streams"] == 2 and body["entries"] == 2, body
        st, _ = q(d, "/ready")
        assert st == 200
        st, body, _ = http("GET", d.url("/metrics"))
        assert b"loki_distributor_lines_received_total" in body
    finally:
        d.cleanup()


def test_bad_input_rejected_and_still_serving():
    d = start()
    try:
        url = d.url("/loki/api/v1/push")
        pb = {"Content-Type": "application/x-protobuf"}
        st, body, _ = http("POST", url, b"\x05garbage-not-snappy", pb)
        assert st == 400 and b"snappy" in body, (st, body)
        st, body, _ = http("POST", url, b"\xff\xff\xff\xff\x0fgarbage", pb)  # claims 4 GiB
        assert st in (400, 413), (st, body)
        st, body, _ = http("POST", url, snappy_literal(b"\x0a\xff\xff\xff\xff\x0f"), pb)
        assert st == 400 and b"proto" in body, (st, body)
        st, body, _ = http("POST", url, b'{"streams": [', {"Content-Type": "application/json"})
        assert st == 400, (st, body)
        st, body, _ = push_pb(d, [("{foo}", [(now_ns(), "x")])])
        assert st == 400 and body.startswith(b"Error parsing labels '{foo}'"), body
        st, body, _ = push_pb(d, [('{a=~"x"}', [(now_ns(), "x")])])
        assert st == 400, body
        st, body, _ = push_json(d, [{"stream": {"a": "b"}, "values": [["1000", "old"]]}])
        assert st == 400 and b"has timestamp too old" in body, body
        st, body, _ = push_json(d, [{"stream": {"a": "b"}, "values": [[str(now_ns()), "x" * 70000]]}])
        assert st == 400 and b"Max entry size" in body, body
        st = raw_post_status(d.http_port, "/loki/api/v1/push", b"x" * (2 << 20))
        assert st == 413, st
        # bad queries
        st, body = q(d, "/loki/api/v1/query_range", query="{foo}")
        assert st == 400 and body.startswith(
            b"parse error at line 1, col 5: syntax error: unexpected }"), body
        st, body = q(d, "/loki/api/v1/query_range", query='{a=~".*"}')
        assert st == 400 and b"at least one" in body, body
        st, body = q(d, "/loki/api/v1/query_range", query='{a="b"}', limit="100000")
        assert st == 400, body
        # a mixed push: the valid stream is stored even though the reply is 400
        t = now_ns()
        st, body, _ = push_json(d, [{"stream": {"ok": "1"}, "values": [[str(t), "kept"]]},
                                    {"stream": {"ok": "2"}, "values": [["5", "dropped"]]}])
        assert st == 400
        assert d.alive()
        data = query_range(d, '{ok=~".+"}', t - NS, t + NS)
        assert lines_of(data) == [(t, "kept")], data
    finally:
        d.cleanup()


def test_kill9_keeps_acknowledged():
    port = free_port()
    d = start(port=port)
    workdir = d.dir
    try:
        base = now_ns() - 30 * NS
        acked = []
        for batch in range(20):
            ents = [(base + (batch * 10 + i) * 1000, "b%d-l%d" % (batch, i)) for i in range(10)]
            if batch % 2:
                st, body, _ = push_pb(d, [('{job="dur", b="%d"}' % (batch % 3), ents)])
            else:
                st, body, _ = push_json(d, [{"stream": {"job": "dur", "b": str(batch % 3)},
                                             "values": [[str(t), l] for t, l in ents]}])
            assert st == 204, (st, body)
            acked += ents
        d.kill9()
        d2 = Daemon("logd", d.config, http_port=port, workdir=workdir).start()
        try:
            data = query_range(d2, '{job="dur"}', base - NS, base + NS, limit=5000)
            assert sorted(lines_of(data)) == sorted(acked), (len(lines_of(data)), len(acked))
            # and it keeps accepting + replays again after a clean restart
            st, _, _ = push_json(d2, [{"stream": {"job": "dur"}, "values": [[str(base), "after"]]}])
            assert st == 204
            d2.stop()
            d3 = Daemon("logd", d.config, http_port=port, workdir=workdir).start()
            data = query_range(d3, '{job="dur"}', base - NS, base + NS, limit=5000)
            assert len(lines_of(data)) == len(acked) + 1
            d3.stop()
        finally:
            d2.stop()
    finally:
        d.cleanup()


def test_unknown_config_key_fails():
    port = free_port()
    d = Daemon("logd", config(port, "  bogus_limit: 3\n"), http_port=port)
    try:
        d.start(wait_ready=False)
        rc = d.proc.wait(timeout=10)
        assert rc == 1, rc
        out = d.tail(2000)
        assert "config.yaml:" in out and "bogus_limit" in out, out
    finally:
        d.cleanup()


if __name__ == "__main__":
    TestRun(globals()).main()
