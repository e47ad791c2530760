"""test_traced -- traced end to end through its real protocols.

Starts traced on random loopback ports and:
  - pushes OTLP/HTTP protobuf built by hand here (plain and gzip), OTLP/HTTP JSON, and spans
    from the real OpenTelemetry JS SDK exporters (gRPC, http/protobuf with gzip, http/json),
    then reads every span back with GET /api/traces/<id> (JSON v1 and v2, and protobuf);
  - searches by tags, name, status, minDuration/maxDuration, limit and time range;
  - sends bad input (malformed protobuf, invalid JSON, bad ids, bad gzip, oversize bodies,
    bad search params) and expects 4xx plain-text answers while the daemon keeps serving;
  - kill -9 then restart on the same data dir keeps every acknowledged trace.
"""
import gzip
import json
import os
import random
import struct
import subprocess
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from obslib import ROOT, Daemon, TestRun, free_port, http, http_json, wait_until  # noqa: E402

NODE_DIR = os.path.join(ROOT, "tests", "node")


# --- hand-written protobuf encoder for the few OTLP messages we need -------------------------

def _varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _ld(num, payload):
    """Length-delimited field."""
    if isinstance(payload, str):
        payload = payload.encode()
    return _varint(num << 3 | 2) + _varint(len(payload)) + payload


def _vi(num, v):
    return _varint(num << 3 | 0) + _varint(v)


def _f64(num, v):
    return _varint(num << 3 | 1) + struct.pack("<Q", v)


def pb_kv(key, value):
    if isinstance(value, bool):
        av = _vi(2, 1 if value else 0)
    elif isinstance(value, int):
        av = _vi(3, value)
    else:
        av = _ld(1, value)
    return _ld(1, key) + _ld(2, av)


def pb_span(trace_id, span_id, parent, name, start_ns, end_ns, attrs=None, status=0, kind=2):
    b = _ld(1, trace_id) + _ld(2, span_id)
    if parent:
        b += _ld(4, parent)
    b += _ld(5, name) + _vi(6, kind) + _f64(7, start_ns) + _f64(8, end_ns)
    for k, v in (attrs or {}).items():
        b += _ld(9, pb_kv(k, v))
    if status:
        b += _ld(15, _ld(2, "status message") + _vi(3, status))
    return b


def pb_request(service, spans, scope="hand-encoder"):
    """ExportTraceServiceRequest with one ResourceSpans/ScopeSpans holding the spans."""
    resource = _ld(1, pb_kv("service.name", service))
    scope_spans = _ld(1, _ld(1, scope)) + b"".join(_ld(2, s) for s in spans)
    rs = _ld(1, resource) + _ld(2, scope_spans)
    return _ld(1, rs)


def pb_count_field1(buf):
    """Count top-level field-1 length-delimited entries (TracesData.resource_spans)."""
    i, n = 0, 0
    while i < len(buf):
        key, i = _read_varint(buf, i)
        assert key >> 3 == 1 and key & 7 == 2, "unexpected key %d" % key
        ln, i = _read_varint(buf, i)
        i += ln
        n += 1
    assert i == len(buf)
    return n


def _read_varint(buf, i):
    shift = v = 0
    while True:
        b = buf[i]
        i += 1
        v |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return v, i


def rand_id(n):
    return bytes(random.getrandbits(8) for _ in range(n))


# --- daemon ----------------------------------------------------------------------------------

def config(http_port, grpc_port, otlp_http_port, max_recv="4MiB"):
    return """
server:
  http_listen_address: 127.0.0.1
  http_listen_port: %d
distributor:
  max_recv_bytes: %s
  receivers:
    otlp:
      protocols:
        grpc:
          endpoint: "127.0.0.1:%d"
        http:
          endpoint: "127.0.0.1:%d"
storage:
  trace:
    wal:
      path: ./data/traced/wal
    local:
      path: ./data/traced/blocks
""" % (http_port, max_recv, grpc_port, otlp_http_port)


class Traced:
    def __init__(self, max_recv="4MiB", workdir=None):
        self.http_port = free_port()
        self.grpc_port = free_port()
        self.otlp_port = free_port()
        self.d = Daemon("traced", config(self.http_port, self.grpc_port, self.otlp_port, max_recv),
                        http_port=self.http_port, workdir=workdir)

    def start(self):
        self.d.start()
        return self

    def url(self, path):
        return self.d.url(path)

    def otlp(self, path="/v1/traces"):
        return "http://127.0.0.1:%d%s" % (self.otlp_port, path)

    def trace(self, tid_hex, v2=False):
        p = "/api/v2/traces/" if v2 else "/api/traces/"
        return http_json("GET", self.url(p + tid_hex))


def all_spans_v1(doc):
    out = []
    for b in doc["batches"]:
        svc = [a["value"].get("stringValue") for a in b.get("resource", {}).get("attributes", [])
               if a["key"] == "service.name"]
        for ss in b.get("scopeSpans", []):
            for s in ss.get("spans", []):
                out.append((svc[0] if svc else None, s))
    return out


def push_pb(t, body, url=None, gz=False):
    headers = {"Content-Type": "application/x-protobuf"}
    if gz:
        body = gzip.compress(body)
        headers["Content-Encoding"] = "gzip"
    return http("POST", url or t.otlp(), body, headers)


# --- tests -----------------------------------------------------------------------------------

def test_otlp_http_protobuf_roundtrip():
    t = Traced().start()
    try:
        now = time.time_ns()
        tid = rand_id(16)
        root, c1, c2 = rand_id(8), rand_id(8), rand_id(8)
        req1 = pb_request("frontend", [
            pb_span(tid, root, None, "GET /checkout", now, now + 1_200_000_000,
                    {"http.method": "GET", "http.status_code": 200}),
        ])
        req2 = pb_request("payments", [
            pb_span(tid, c1, root, "charge", now + 10_000_000, now + 900_000_000,
                    {"card": "visa", "retry": True}, status=2),
            pb_span(tid, c2, c1, "db.query", now + 20_000_000, now + 30_000_000, {"db": "pg"}),
        ])
        st, body, hdr = push_pb(t, req1)
        assert st == 200, (st, body)
        assert hdr.get("Content-Type", "").startswith("application/x-protobuf"), hdr
        st, body, _ = push_pb(t, req2, url=t.url("/v1/traces"), gz=True)  # main port, gzip
        assert st == 200, (st, body)

        st, doc = t.trace(tid.hex())
        assert st == 200, (st, doc)
        spans = all_spans_v1(doc)
        got = {s["spanId"]: (svc, s) for svc, s in spans}
        assert set(got) == {root.hex(), c1.hex(), c2.hex()}, got.keys()
        svc, s = got[c1.hex()]
        assert svc == "payments"
        assert s["traceId"] == tid.hex()
        assert s["parentSpanId"] == root.hex()
        assert s["name"] == "charge"
        assert s["startTimeUnixNano"] == str(now + 10_000_000)
        assert s["status"]["code"] == "STATUS_CODE_ERROR", s
        attrs = {a["key"]: a["value"] for a in s["attributes"]}
        assert attrs["card"] == {"stringValue": "visa"} and attrs["retry"] == {"boolValue": True}
        svc, s = got[root.hex()]
        assert {a["key"]: a["value"] for a in s["attributes"]}["http.status_code"] == \
            {"intValue": "200"}

        # v2 shape and the protobuf form
        st, doc2 = t.trace(tid.hex(), v2=True)
        assert st == 200 and len(doc2["trace"]["resourceSpans"]) == 2, doc2
        st, raw, hdr = http("GET", t.url("/api/traces/" + tid.hex()),
                            headers={"Accept": "application/protobuf"})
        assert st == 200 and hdr["Content-Type"].startswith("application/protobuf"), hdr
        assert pb_count_field1(raw) == 2
        assert tid in raw and c2 in raw

        # a short (leading zeros trimmed) id works too, like Tempo
        tid2 = b"\x00" * 4 + rand_id(12)
        assert push_pb(t, pb_request("svc", [pb_span(tid2, rand_id(8), None, "x", now,
                                                     now + 1)]))[0] == 200
        st, doc = t.trace(tid2.hex().lstrip("0"))
        assert st == 200 and len(all_spans_v1(doc)) == 1, (st, doc)
    finally:
        t.d.cleanup()


def otlp_json_body(tid, spans_spec, service):
    spans = []
    for sid, parent, name, start, end, attrs in spans_spec:
        spans.append({
            "traceId": tid, "spanId": sid, "parentSpanId": parent, "name": name, "kind": 2,
            "startTimeUnixNano": str(start), "endTimeUnixNano": str(end),
            "attributes": [{"key": k, "value": {"stringValue": v}} for k, v in attrs.items()],
            "status": {"code": "STATUS_CODE_OK"},
        })
    return json.dumps({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
        "scopeSpans": [{"scope": {"name": "json-test"}, "spans": spans}]}]})


def test_otlp_http_json():
    t = Traced().start()
    try:
        now = time.time_ns()
        tid = rand_id(16).hex()
        a, b = rand_id(8).hex(), rand_id(8).hex()
        body = otlp_json_body(tid, [(a, "", "root-json", now, now + 5_000_000, {"k": "v"}),
                                    (b, a, "child-json", now + 1, now + 2, {})], "json-svc")
        st, resp, hdr = http("POST", t.otlp(), body, {"Content-Type": "application/json"})
        assert st == 200, (st, resp)
        assert json.loads(resp) == {}
        # gzip JSON on the main port
        tid2 = rand_id(16).hex()
        body2 = otlp_json_body(tid2, [(rand_id(8).hex(), "", "gz", now, now + 1, {})], "json-svc")
        st, resp, _ = http("POST", t.url("/v1/traces"), gzip.compress(body2.encode()),
                           {"Content-Type": "application/json", "Content-Encoding": "gzip"})
        assert st == 200, (st, resp)
        st, doc = t.trace(tid)
        assert st == 200
        spans = {s["spanId"]: s for _, s in all_spans_v1(doc)}
        assert set(spans) == {a, b}
        assert spans[b]["parentSpanId"] == a and spans[a]["name"] == "root-json"
        assert spans[a]["status"]["code"] == "STATUS_CODE_OK"
        st, doc = t.trace(tid2)
        assert st == 200 and len(all_spans_v1(doc)) == 1
    finally:
        t.d.cleanup()


def node_send(kind, url, service, n, extra=None):
    if not os.path.isdir(os.path.join(NODE_DIR, "node_modules", "@opentelemetry")):
        raise AssertionError("tests/node/node_modules missing: run `make deps` "
                             "(npm install in tests/node)")
    argv = ["node", os.path.join(NODE_DIR, "otlp_traces.js"), kind, url, service, str(n)]
    if extra:
        argv.append(extra)
    p = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=NODE_DIR)
    assert p.returncode == 0, (p.returncode, p.stdout, p.stderr)
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert out["ok"], out
    return out


def test_otel_js_sdk_exporters():
    t = Traced().start()
    try:
        sent = [
            ("grpc", node_send("grpc", "http://127.0.0.1:%d" % t.grpc_port, "js-grpc", 5)),
            ("proto", node_send("proto", t.otlp(), "js-proto", 4, "gzip")),
            ("json", node_send("json", t.otlp(), "js-json", 3)),
        ]
        for kind, out in sent:
            st, doc = t.trace(out["traceId"])
            assert st == 200, (kind, st, doc)
            spans = all_spans_v1(doc)
            ids = sorted(s["spanId"] for _, s in spans)
            assert ids == sorted(out["spanIds"]), (kind, ids, out["spanIds"])
            assert all(svc == "js-" + kind for svc, _ in spans), (kind, spans)
            names = {s["name"] for _, s in spans}
            assert "root-op" in names and "child-1" in names, names
            child1 = [s for _, s in spans if s["name"] == "child-1"][0]
            assert child1["status"]["code"] == "STATUS_CODE_ERROR"
            assert child1["events"][0]["name"] == "ev"
        # search finds the gRPC one by service and root name
        q = urllib.parse.urlencode({"tags": "service.name=js-grpc"})
        st, res = http_json("GET", t.url("/api/search?" + q))
        assert st == 200, res
        assert [x["traceID"] for x in res["traces"]] == [sent[0][1]["traceId"].lstrip("0")], res
        assert res["traces"][0]["rootServiceName"] == "js-grpc"
        assert res["traces"][0]["rootTraceName"] == "root-op"
        assert res["traces"][0]["durationMs"] == 1500
        # unknown gRPC method on the OTLP port -> UNIMPLEMENTED is covered by the unit test;
        # the daemon still answers after all of this
        assert http("GET", t.url("/api/echo"))[1] == b"echo"
    finally:
        t.d.cleanup()


def test_search():
    t = Traced().start()
    try:
        now = time.time_ns()
        traces = {}
        # 6 traces: services a/b alternate, durations 100ms * (i+1), one error each in odd ones
        for i in range(6):
            tid, root, child = rand_id(16), rand_id(8), rand_id(8)
            svc = "svc-a" if i % 2 == 0 else "svc-b"
            start = now - (10 - i) * 10_000_000_000
            dur = (i + 1) * 100_000_000
            spans = [pb_span(tid, root, None, "op-%d" % i, start, start + dur, {"idx": str(i)}),
                     pb_span(tid, child, root, "inner", start + 1, start + 2,
                             {"http.status_code": 500 if i % 2 else 200},
                             status=2 if i % 2 else 1)]
            assert push_pb(t, pb_request(svc, spans))[0] == 200
            traces[i] = tid.hex().lstrip("0")

        def search(**params):
            st, res = http_json("GET", t.url("/api/search?" + urllib.parse.urlencode(params)))
            assert st == 200, (params, st, res)
            return [x["traceID"] for x in res["traces"]], res

        ids, res = search()
        assert len(ids) == 6 and ids[0] == traces[5], ids  # most recent first
        assert res["metrics"]["inspectedTraces"] == 6
        ids, _ = search(tags="service.name=svc-a")
        assert sorted(ids) == sorted(traces[i] for i in (0, 2, 4))
        ids, _ = search(tags="service.name=svc-b http.status_code=500")
        assert sorted(ids) == sorted(traces[i] for i in (1, 3, 5))
        ids, _ = search(tags="service.name=svc-a http.status_code=500")
        assert ids == []
        ids, _ = search(tags="status=error")
        assert sorted(ids) == sorted(traces[i] for i in (1, 3, 5))
        ids, _ = search(tags='name="op-3"')
        assert ids == [traces[3]]
        ids, _ = search(tags="idx=4")
        assert ids == [traces[4]]
        ids, _ = search(minDuration="350ms")
        assert sorted(ids) == sorted(traces[i] for i in (3, 4, 5))
        ids, _ = search(minDuration="150ms", maxDuration="0.45s")
        assert sorted(ids) == sorted(traces[i] for i in (1, 2, 3))
        ids, _ = search(limit=2)
        assert ids == [traces[5], traces[4]]
        # trace i spans [now - (10-i)*10s, +0.6s at most]: from now-55s only trace 5 overlaps
        start_s = (now - 55 * 1_000_000_000) // 1_000_000_000
        ids, _ = search(start=start_s, end=now // 1_000_000_000 + 10)
        assert ids == [traces[5]], ids
        ids, _ = search(start=start_s - 10, end=start_s - 1)
        assert ids == [traces[4]], ids
        ids, _ = search(start=1, end=2)
        assert ids == []
        st, tags = http_json("GET", t.url("/api/search/tags"))
        assert st == 200 and "service.name" in tags["tagNames"] and "idx" in tags["tagNames"]
        st, vals = http_json("GET", t.url("/api/search/tag/service.name/values"))
        assert st == 200 and vals["tagValues"] == ["svc-a", "svc-b"], vals
        for bad in ({"minDuration": "abc"}, {"maxDuration": "5"}, {"limit": "x"},
                    {"tags": "novalue"}, {"start": "yesterday"},
                    {"minDuration": "2s", "maxDuration": "1s"}):
            st, body, hdr = http("GET", t.url("/api/search?" + urllib.parse.urlencode(bad)))
            assert st == 400, (bad, st, body)
            assert hdr["Content-Type"].startswith("text/plain"), hdr
    finally:
        t.d.cleanup()


def test_bad_input_keeps_serving():
    t = Traced(max_recv="1MiB").start()
    try:
        pbh = {"Content-Type": "application/x-protobuf"}
        cases = [
            ("malformed protobuf", t.otlp(), b"\x0a\xff\xff\xff\x0f\x01", pbh, 400),
            ("truncated protobuf", t.otlp(), pb_request("x", [pb_span(rand_id(16), rand_id(8),
                                                                      None, "n", 1, 2)])[:-3],
             pbh, 400),
            ("bad trace id length", t.otlp(),
             pb_request("x", [pb_span(b"\x01" * 5, rand_id(8), None, "n", 1, 2)]), pbh, 400),
            ("bad span id length", t.otlp(),
             pb_request("x", [pb_span(rand_id(16), b"\x01", None, "n", 1, 2)]), pbh, 400),
            ("invalid JSON", t.otlp(), b"{\"resourceSpans\": [", {"Content-Type":
                                                                   "application/json"}, 400),
            ("JSON wrong type", t.otlp(), b"{\"resourceSpans\": {}}",
             {"Content-Type": "application/json"}, 400),
            ("JSON bad hex id", t.otlp(),
             otlp_json_body("zz" * 16, [("a" * 16, "", "n", 1, 2, {})], "x").encode(),
             {"Content-Type": "application/json"}, 400),
            ("bad gzip", t.otlp(), b"not gzip at all",
             {"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"}, 400),
            ("oversize", t.otlp(), b"\x00" * (2 << 20), pbh, 413),
            ("oversize main port", t.url("/v1/traces"), b"\x00" * (2 << 20), pbh, 413),
            ("unsupported content type", t.otlp(), b"hello", {"Content-Type": "text/plain"}, 415),
        ]
        for name, url, body, headers, want in cases:
            st, resp, hdr = http("POST", url, body, headers)
            assert st == want, (name, st, resp)
            assert resp.strip(), (name, "empty error message")
            assert hdr.get("Content-Type", "").startswith("text/plain"), (name, hdr)
            assert http("GET", t.url("/api/echo"))[1] == b"echo", name
        # queries
        st, body, hdr = http("GET", t.url("/api/traces/" + rand_id(16).hex()))
        assert st == 404 and body.strip() == b"trace not found", (st, body)
        for bad in ("xyz", "0" * 33, "g" * 32):
            st, body, _ = http("GET", t.url("/api/traces/" + bad))
            assert st == 400, (bad, st, body)
        # a good push still works after all of that
        tid = rand_id(16)
        assert push_pb(t, pb_request("ok", [pb_span(tid, rand_id(8), None, "n", 1, 2)]))[0] == 200
        assert t.trace(tid.hex())[0] == 200
        assert t.d.alive()
    finally:
        t.d.cleanup()


def grpc_raw(port, method, payload):
    p = subprocess.run(["node", os.path.join(NODE_DIR, "grpc_raw.js"), "127.0.0.1:%d" % port,
                        method, "-"], input=payload, capture_output=True, timeout=30,
                       cwd=NODE_DIR)
    assert p.returncode == 0, (p.stdout, p.stderr)
    return json.loads(p.stdout.decode().strip().splitlines()[-1])


def test_grpc_status_codes():
    t = Traced(max_recv="1MiB").start()
    try:
        export = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
        tid = rand_id(16)
        r = grpc_raw(t.grpc_port, export, pb_request("g", [pb_span(tid, rand_id(8), None, "n",
                                                                    1, 2)]))
        assert r["code"] == 0 and r["len"] == 0, r
        assert t.trace(tid.hex())[0] == 200
        r = grpc_raw(t.grpc_port, export, b"\x0a\xff\xff\xff\x0f\x01")
        assert r["code"] == 3 and "decode" in r["details"], r  # INVALID_ARGUMENT
        r = grpc_raw(t.grpc_port, export, pb_request("g", [pb_span(b"\x01", rand_id(8), None,
                                                                    "n", 1, 2)]))
        assert r["code"] == 3 and "trace id" in r["details"], r
        r = grpc_raw(t.grpc_port, "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
                     b"")
        assert r["code"] == 12, r  # UNIMPLEMENTED
        r = grpc_raw(t.grpc_port, export, b"\x0a" + _varint(2 << 20) + b"\x00" * (2 << 20))
        assert r["code"] == 8, r  # RESOURCE_EXHAUSTED: over max_recv_bytes
        r = grpc_raw(t.grpc_port, export, b"")
        assert r["code"] == 0, r
        assert http("GET", t.url("/api/echo"))[1] == b"echo"
    finally:
        t.d.cleanup()


def test_kill9_restart_keeps_acknowledged_traces():
    t = Traced().start()
    workdir = t.d.dir
    try:
        now = time.time_ns()
        acked = {}
        for i in range(40):
            tid = rand_id(16)
            spans = [pb_span(tid, rand_id(8), None, "op-%d" % i, now + i, now + i + 1000)
                     for _ in range(1 + i % 3)]
            st, _, _ = push_pb(t, pb_request("durable", spans), gz=(i % 2 == 0))
            assert st == 200
            acked[tid.hex()] = len(spans)
        # JSON too
        jt = rand_id(16).hex()
        st, _, _ = http("POST", t.otlp(), otlp_json_body(jt, [(rand_id(8).hex(), "", "j", now,
                                                                now + 5, {})], "durable"),
                        {"Content-Type": "application/json"})
        assert st == 200
        acked[jt] = 1
        t.d.kill9()
        t2 = Traced(workdir=workdir)
        # same ports as before are not guaranteed free; the new instance uses new ones
        t2.start()
        try:
            for tid, n in acked.items():
                st, doc = t2.trace(tid)
                assert st == 200, (tid, st)
                assert len(all_spans_v1(doc)) == n, (tid, n, doc)
            st, res = http_json("GET", t2.url("/api/search?limit=1000&tags=service.name%3Ddurable"))
            assert st == 200 and len(res["traces"]) == len(acked), res
            # and once more with a clean shutdown in between
            t2.d.stop()
            t3 = Traced(workdir=workdir).start()
            try:
                for tid, n in acked.items():
                    assert len(all_spans_v1(t3.trace(tid)[1])) == n
            finally:
                t3.d.stop()
        finally:
            t2.d.stop()
    finally:
        t.d.cleanup()


def test_unknown_config_key_fails():
    port = free_port()
    d = Daemon("traced", config(port, free_port(), free_port()) +
               "  bogus_key: 1\n", http_port=port)
    try:
        d.start(wait_ready=False)
        rc = d.proc.wait(timeout=15)
        assert rc == 1, rc
        log = d.tail()
        assert "bogus_key" in log and "config.yaml:" in log, log
    finally:
        d.cleanup()


if __name__ == "__main__":
    TestRun(globals()).main()
