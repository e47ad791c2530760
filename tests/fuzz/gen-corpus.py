#!/usr/bin/env python3
"""gen-corpus.py -- (re)write the seed corpora under tests/fuzz/corpus/<name>/.

Seeds come from the repository (deploy/local configs, unit and integration test queries),
from ../shared/conformance when present (Alertmanager and Prometheus configs, PromQL queries)
and from small hand-written valid and malformed inputs encoded here (protobuf, snappy, WAL
framing). Files this script writes are named seed-*; other files in the corpus directories
(wal-* seeds cut from real WAL segments, gen-* seeds written by running the encoders,
crash-* reproducers) are left alone.
Usage: tests/fuzz/gen-corpus.py   (from the repository root; python3 stdlib only)
"""
import gzip
import hashlib
import json
import os
import re
import struct
import sys
import zlib

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CORPUS = os.path.join(ROOT, "tests", "fuzz", "corpus")
SHARED = os.path.abspath(os.path.join(ROOT, "..", "shared", "conformance"))
MAX_SEED = 32 * 1024


def put(name, tag, data):
    """Write one seed; tag is a short readable name (a content hash is added)."""
    if isinstance(data, str):
        data = data.encode()
    if len(data) > MAX_SEED:
        data = data[:MAX_SEED]
    d = os.path.join(CORPUS, name)
    os.makedirs(d, exist_ok=True)
    tag = re.sub(r"[^A-Za-z0-9_.-]+", "_", tag)[:40]
    h = hashlib.sha1(data).hexdigest()[:8]
    with open(os.path.join(d, "seed-%s-%s" % (tag, h)), "wb") as f:
        f.write(data)


def read(path):
    with open(path, "rb") as f:
        return f.read()


# --- encoders --------------------------------------------------------------------------

def uvarint(v):
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def zigzag(v):
    return (v << 1) ^ (v >> 63)


def pb_key(field, wt):
    return uvarint(field << 3 | wt)


def pb_bytes(field, data):
    if isinstance(data, str):
        data = data.encode()
    return pb_key(field, 2) + uvarint(len(data)) + data


def pb_varint(field, v):
    return pb_key(field, 0) + uvarint(v & 0xFFFFFFFFFFFFFFFF)


def pb_fixed64(field, v):
    return pb_key(field, 1) + struct.pack("<Q", v)


def pb_double(field, v):
    return pb_key(field, 1) + struct.pack("<d", v)


def snappy_literal(data):
    """Snappy block format with literal elements only (valid, uncompressed)."""
    out = bytearray(uvarint(len(data)))
    i = 0
    while i < len(data):
        chunk = data[i:i + 60]
        out.append((len(chunk) - 1) << 2)
        out += chunk
        i += len(chunk)
    return bytes(out)


def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 & -(crc & 1))
    return crc ^ 0xFFFFFFFF


def wal_frame(rec):
    return struct.pack("<II", len(rec), crc32c(rec)) + rec


# --- seeds per target -------------------------------------------------------------------

def seeds_cf():
    for f in sorted(os.listdir(os.path.join(ROOT, "deploy", "local"))):
        if f.endswith((".yaml", ".yml")):
            put("cf", f, read(os.path.join(ROOT, "deploy", "local", f)))
    for sub in ("alertmanager", "prometheus-config"):
        d = os.path.join(SHARED, sub)
        if os.path.isdir(d):
            for f in sorted(os.listdir(d)):
                if f.endswith((".yaml", ".yml")) and f != "openapi.yaml":
                    put("cf", sub + "-" + f, read(os.path.join(d, f)))
    good = ("name: svc\nn: 42\nflag: true\nratio: 1.5e3\ntimeout: 1h30m\nsize: 512KiB\n"
            "files: [a, \"b c\", 'd']\ninner:\n  port: 9090\n  addr: 127.0.0.1\n"
            "  tags:\n    - x\n    - y\nraw: {k: [1, 2, {z: null}]}\ncustom: [ab, cd]\n"
            "server:\n  http_listen_port: 1\n")
    put("cf", "good", good)
    put("cf", "good-flags", good + "\n--\ninner.port=81\nname=other\nnew.deep.key=1\nflag=no\n")
    put("cf", "env", "name: ${USER:-nobody}\nn: ${NOPE:-7}\nsize: ${X:-1GB}\nfiles: ${Y}\n")
    put("cf", "unknown-key", "name: a\nbogus: 1\ninner:\n  nope: 2\n")
    put("cf", "bad-types", "n: abc\nflag: maybe\nratio: x\ntimeout: 5q\nsize: -1MB\n"
        "files: {a: b}\ninner: [1]\n")
    put("cf", "anchors", "base: &b {port: 1, addr: x}\ninner: *b\nraw: &r [*b, *b]\n"
        "custom: [*r]\n")
    put("cf", "merge-key", "base: &b {port: 1}\ninner:\n  <<: *b\n  addr: y\n")
    put("cf", "dup-keys", "n: 1\nn: 2\ninner: {port: 1, port: 2}\n")
    put("cf", "tabs-bad", "inner:\n\tport: 1\n")
    put("cf", "multi-doc", "n: 1\n---\nn: 2\n...\n")
    put("cf", "scalar-root", "just a string\n")
    put("cf", "seq-root", "- 1\n- 2\n")
    put("cf", "empty", "")
    put("cf", "comments", "# only a comment\n")
    put("cf", "quoted", "name: \"a\\tb\\u00e9\\x41\"\nfiles: 'it''s'\nraw: |\n  block\n  text\n"
        "custom: >\n  folded\n  text\n")
    put("cf", "huge-int", "n: 99999999999999999999999\nratio: 1e400\ntimeout: 9999999999999h\n"
        "size: 17179869184GiB\n")
    put("cf", "deep", "raw: " + "[" * 200 + "]" * 200 + "\n")
    put("cf", "unterminated", "name: \"abc\ninner: {port: 1\n")
    put("cf", "tags", "!!map {? a : b}\nn: !!int 3\nname: !custom x\n")


def seeds_snappy():
    texts = [b"", b"a", b"hello snappy", b"x" * 200, bytes(range(256)),
             b'{"streams":[{"stream":{"a":"b"},"values":[["1","x"]]}]}']
    for i, t in enumerate(texts):
        put("snappy", "lit%d" % i, snappy_literal(t))
    # literal "abcd" then copy-1 (len 8, offset 4): "abcdabcdabcd"
    put("snappy", "copy1", uvarint(12) + bytes([3 << 2]) + b"abcd" + bytes([((8 - 4) << 2) | 1, 4]))
    # copy-2 element (tag 2): len 4 offset 4
    put("snappy", "copy2", uvarint(8) + bytes([3 << 2]) + b"wxyz" + bytes([(3 << 2) | 2, 4, 0]))
    put("snappy", "copy4", uvarint(8) + bytes([3 << 2]) + b"wxyz" + bytes([(3 << 2) | 3, 4, 0, 0, 0]))
    put("snappy", "bad-offset", uvarint(12) + bytes([3 << 2]) + b"abcd" + bytes([(4 << 2) | 1, 9]))
    put("snappy", "bad-offset0", uvarint(12) + bytes([3 << 2]) + b"abcd" + bytes([(4 << 2) | 1, 0]))
    put("snappy", "len-mismatch", uvarint(100) + bytes([3 << 2]) + b"abcd")
    put("snappy", "huge-len", uvarint(1 << 40) + bytes([0]) + b"a")
    put("snappy", "bad-varint", b"\xff" * 11)
    put("snappy", "truncated-lit", uvarint(20) + bytes([19 << 2]) + b"abc")
    put("snappy", "long-lit", uvarint(300) + bytes([60 << 2, 299 & 0xff]) + b"q" * 300)
    put("snappy", "long-lit-4", uvarint(5) + bytes([63 << 2, 4, 0, 0, 0]) + b"abcde")


def seeds_gzip():
    texts = [b"", b"hello gzip", b"line\n" * 100, bytes(range(256)) * 4]
    for i, t in enumerate(texts):
        put("gzip", "gz%d" % i, bytes([10]) + gzip.compress(t, mtime=0))
        put("gzip", "zlib%d" % i, bytes([10]) + zlib.compress(t))
        c = zlib.compressobj(6, zlib.DEFLATED, -15)
        put("gzip", "raw%d" % i, bytes([10]) + c.compress(t) + c.flush())
    put("gzip", "bomb-cap1k", bytes([0]) + gzip.compress(b"\0" * 200000, mtime=0))
    put("gzip", "concat", bytes([10]) + gzip.compress(b"a", mtime=0) + gzip.compress(b"b", mtime=0))
    put("gzip", "truncated", bytes([10]) + gzip.compress(b"truncated stream" * 10, mtime=0)[:20])
    put("gzip", "bad-crc", bytes([10]) + gzip.compress(b"x", mtime=0)[:-8] + b"\0" * 8)
    put("gzip", "trailing-junk", bytes([10]) + zlib.compress(b"abc") + b"junk")
    put("gzip", "not-gzip", bytes([10]) + b"plain text, no deflate")


def seeds_lz4():
    def blk(raw_len, block):
        return struct.pack("<I", raw_len) + block
    put("lz4", "lit", blk(11, bytes([0xB0]) + b"hello world"))
    put("lz4", "match", blk(17, bytes([0x44]) + b"abcd" + b"\x04\x00" + bytes([0x50]) + b"xyzzy"))
    put("lz4", "long-lit", blk(20, bytes([0xF0, 5]) + b"L" * 20))
    put("lz4", "long-match", blk(4 + 40 + 5, bytes([0x4F]) + b"abcd" + b"\x04\x00" + bytes([40 - 19])
                                 + bytes([0x50]) + b"tail!"))
    put("lz4", "empty", blk(0, b"\x00"))
    put("lz4", "bad-offset", blk(17, bytes([0x44]) + b"abcd" + b"\x09\x00" + bytes([0x50]) + b"xyzzy"))
    put("lz4", "wrong-len", blk(99, bytes([0xB0]) + b"hello world"))
    put("lz4", "truncated", blk(11, bytes([0xB0]) + b"hel"))


TRACE_JSON = {"resourceSpans": [{
    "resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": "checkout"}},
        {"key": "host.cpus", "value": {"intValue": "8"}},
        {"key": "ratio", "value": {"doubleValue": 0.5}},
        {"key": "ok", "value": {"boolValue": True}},
        {"key": "tags", "value": {"arrayValue": {"values": [{"stringValue": "a"}, {"intValue": 2}]}}},
        {"key": "kv", "value": {"kvlistValue": {"values": [{"key": "k", "value": {"bytesValue": "AQID"}}]}}}]},
    "scopeSpans": [{
        "scope": {"name": "demo", "version": "1.0"},
        "spans": [
            {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174",
             "name": "GET /cart", "kind": 2, "startTimeUnixNano": "1700000000000000000",
             "endTimeUnixNano": "1700000000250000000",
             "attributes": [{"key": "http.status_code", "value": {"intValue": 200}}],
             "status": {"code": "STATUS_CODE_OK"},
             "events": [{"timeUnixNano": "1700000000100000000", "name": "cache miss"}]},
            {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b175",
             "parentSpanId": "eee19b7ec3c1b174", "name": "SELECT", "kind": "SPAN_KIND_CLIENT",
             "startTimeUnixNano": 1700000000010000000, "endTimeUnixNano": "1700000000020000000",
             "status": {"code": 2, "message": "timeout"},
             "links": [{"traceId": "0102030405060708090a0b0c0d0e0f10", "spanId": "0102030405060708"}]}]}]}]}

LOGS_JSON = {"resourceLogs": [{"resource": {"attributes": [
    {"key": "service.name", "value": {"stringValue": "api"}}]},
    "scopeLogs": [{"scope": {"name": "x"}, "logRecords": [
        {"timeUnixNano": "1700000000000000000", "severityNumber": 9, "severityText": "INFO",
         "body": {"stringValue": "hello"}, "traceId": "5b8efff798038103d269b633813fc60c",
         "spanId": "eee19b7ec3c1b174", "flags": 1}]}]}]}

METRICS_JSON = {"resourceMetrics": [{"resource": {}, "scopeMetrics": [{"metrics": [
    {"name": "requests", "unit": "1", "sum": {"aggregationTemporality": 2, "isMonotonic": True,
     "dataPoints": [{"asInt": "10", "timeUnixNano": "1700000000000000000",
                     "attributes": [{"key": "code", "value": {"stringValue": "200"}}]}]}},
    {"name": "temp", "gauge": {"dataPoints": [{"asDouble": 21.5, "timeUnixNano": "1"}]}},
    {"name": "lat", "histogram": {"aggregationTemporality": "AGGREGATION_TEMPORALITY_CUMULATIVE",
     "dataPoints": [{"count": "3", "sum": 1.5, "bucketCounts": ["1", "2"], "explicitBounds": [1.0],
                     "min": 0.1, "max": 1.0}]}},
    {"name": "sm", "summary": {"dataPoints": [{"count": 2, "sum": 3,
     "quantileValues": [{"quantile": 0.5, "value": 1}]}]}},
    {"name": "eh", "exponentialHistogram": {"dataPoints": [{"scale": 2, "zeroCount": 1,
     "positive": {"offset": -1, "bucketCounts": [1, 2]}}]}}]}]}]}


def seeds_otlp_json():
    put("otlp_json", "traces", b"\x00" + json.dumps(TRACE_JSON).encode())
    put("otlp_json", "logs", b"\x01" + json.dumps(LOGS_JSON).encode())
    put("otlp_json", "metrics", b"\x02" + json.dumps(METRICS_JSON).encode())
    put("otlp_json", "snake", b"\x00" + b'{"resource_spans":[{"scope_spans":[{"spans":[{"trace_id":'
        b'"5b8efff798038103d269b633813fc60c","span_id":"eee19b7ec3c1b174","name":"x"}]}]}]}')
    put("otlp_json", "empty-obj", b"\x00{}")
    put("otlp_json", "bad-hex", b"\x00" + b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"zz"}]}]}]}')
    put("otlp_json", "odd-hex", b"\x00" + b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"spanId":"abc"}]}]}]}')
    put("otlp_json", "bad-b64", b"\x02" + b'{"resourceMetrics":[{"resource":{"attributes":[{"key":"b",'
        b'"value":{"bytesValue":"!!!"}}]}}]}')
    put("otlp_json", "wrong-types", b"\x00" + b'{"resourceSpans":{"a":1}}')
    put("otlp_json", "big-ints", b"\x02" + b'{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"sum":'
        b'{"dataPoints":[{"asInt":"-9223372036854775809","timeUnixNano":"18446744073709551616"}]}}]}]}]}')
    put("otlp_json", "enum-name-bad", b"\x00" + b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"kind":"NOPE"}]}]}]}')
    put("otlp_json", "nan", b"\x02" + b'{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"gauge":'
        b'{"dataPoints":[{"asDouble":"NaN"},{"asDouble":"Infinity"},{"asDouble":"-Infinity"}]}}]}]}]}')
    put("otlp_json", "deep", b"\x00" + b'{"a":' + b"[" * 500 + b"]" * 500 + b"}")
    put("otlp_json", "truncated", b"\x00" + json.dumps(TRACE_JSON).encode()[:150])
    put("otlp_json", "not-json", b"\x01hello")
    put("otlp_json", "unicode", b"\x01" + '{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":'
        '{"stringValue":"caf\\u00e9 \\ud83d\\ude00 \\ud800"}}]}]}]}'.encode())


def wal_seeds():
    recs = [b"first", b"second record", b"x" * 300]
    seg = b"".join(wal_frame(r) for r in recs)
    put("wal", "three", b"\x00" + seg)
    put("wal", "torn-tail", b"\x00" + seg + wal_frame(b"torn")[:10])
    put("wal", "bad-crc-tail", b"\x00" + seg + struct.pack("<II", 4, 0) + b"oops")
    put("wal", "zero-len", b"\x00" + seg + struct.pack("<II", 0, 0))
    put("wal", "huge-len", b"\x00" + struct.pack("<II", 0x7FFFFFFF, 0) + b"abc")
    put("wal", "two-segs", b"\x00" + seg + b"\n--\n" + wal_frame(b"seg2 record"))
    put("wal", "corrupt-first-seg", b"\x00" + seg + b"garbage!" + b"\n--\n" + wal_frame(b"later"))
    put("wal", "fixcrc", b"\x01" + struct.pack("<II", 5, 0) + b"hello" + struct.pack("<II", 3, 0) + b"abc")
    put("wal", "empty", b"\x00")


def seeds_labels():
    sels = ['{job="api"}', '{job="api", code=~"5..", path!="/", x!~"a|b"}', "up", 'up{job="x"}',
            "node:cpu:rate5m", "{a='single', b=`raw\\d+`}", '{a="\\u00e9\\x41\\101\\n"}',
            '{__name__=~"http_.*"}', "{}", '{a="b",}', '{a=~"("}', '{a="unterminated}',
            '{a b="c"}', '{1a="x"}', '{a=="b"}', "  up{job=\"x\"}  ", "up x", '{a="b"} trailing',
            '{job=~".*"}', '{"quoted"="name"}', '{a="\\q"}', '{a="x\ny"}', '{' + 'a="b",' * 50 + '}']
    for i, s in enumerate(sels):
        put("labels", "sel%d" % i, s + "\n--\nsome value")
    put("labels", "unquote-dq", '"a\\"b\\n\\x41\\u00e9\\U0001F600\\101" rest')
    put("labels", "unquote-sq", "'it\\'s'")
    put("labels", "unquote-raw", "`a\\d+`")
    put("labels", "unquote-bad-utf8", b'"\xff\xfe"')
    put("labels", "re-value", '{a=~"ab+c"}\n--\nabbbc')
    put("labels", "re-value-nomatch", '{a!~"x.*"}\n--\nxyz')


LOGQL_QUERIES = [
    '{app="web"}', '{app="web", level=~"err.*"} |= "path=/api/0"',
    '{app="web"} != "level=info" |~ "req [0-9]+5 "', '{app="web"} !~ "path=/api/[12]"',
    '{app="web"} | logfmt | path="/api/1"', '{app="web"} | json | status >= 500',
    '{app="web"} | logfmt | dur > 10ms', '{app="web"} | logfmt | line_format "{{.level}}: {{ .msg }}"',
    '{app="web"} | logfmt | status == 200, level=~"i.*"', '{app="web"} |~ "(?i)ERR"',
    '{a="b"} | json | status >= 500 and level="error", dur > 1.5s | logfmt',
    '{app="x", level=~"err.*"} |= "text" != `x` |~ "re" !~ "r"', '{app="web"} | json | __error__=""',
    'count_over_time({a="b"}[5m]) > bool 3', 'sum by (level) (count_over_time({a="b"} |= "x" [5m]))',
    'sum(rate({a="b"}[1m])) without (x) / 2 + 1', 'sum_over_time({a="b"} | logfmt | unwrap bytes [1m])',
    'topk(2, sum_over_time({a="b"} | logfmt | unwrap latency [1h] offset 5m))',
    'bytes_over_time({app="fuzz"}[10s])', 'bytes_rate({app="fuzz"}[5s])',
    'absent_over_time({app="nope"}[1m])', 'avg_over_time({app="fuzz"} | json | unwrap status [10s])',
    'max_over_time({app="fuzz"} | logfmt | unwrap dur [1m]) by (level)',
    'quantile_over_time(0.9, {app="fuzz"} | logfmt | unwrap bytes [1m])',
    'stddev_over_time({app="fuzz"} | logfmt | unwrap bytes [1m])',
    'count_over_time({app="fuzz"}[1m]) or vector(0)', 'vector(1) + vector(2)', '1 + 2 * 3 ^ 2 % 5',
    'bottomk(1, count_over_time({app="fuzz"}[10s])) and on() vector(1)',
    'count_over_time({app="fuzz"}[10s]) unless count_over_time({app="x"}[10s])',
    'rate({app="fuzz"} | json | status > 400 [5s]) / on() group_left rate({app="fuzz"}[5s])',
    'sum without (app) (rate({app="fuzz"}[1s]))', 'stdvar(count_over_time({app="fuzz"}[10s]))',
    '{app="fuzz"} | label_format x="{{.app}}"', '{app="fuzz"} | pattern "<ip> - <_>"',
    '{app="fuzz"} | regexp "(?P<x>\\\\w+)"', '{app="fuzz"} | unpack', '{app="fuzz"} | drop level',
    '{app="fuzz"} | decolorize', '{app="fuzz"} |> "<_> error <_>"',
    '{foo}', '{}', '{a="b"', '{a="1", a="2"}', '{a=~"("}', '{a="b"} |= 3', '{a="b"}\n |= "x" |',
    'count_over_time({a="b"})', '{a="b"} + 1', 'sum(', 'rate({a="b"}[0s])', 'rate({a="b"}[1y2w3d])',
    'count_over_time({a="b"}[99999999999999h])', '{a=~".*"}', '{zone="z\\"1", app="a"}',
]
LOG_LINES = ['{"status":503,"level":"error","dur":"2s","msg":"x","nested":{"a":[1,2]},"b":true}',
             'level=info status=200 dur=15ms path=/api/1 msg="hello world" bytes=1024',
             'plain text line with ERR inside', '', '{"unterminated": ', 'a= =b "c d"=e',
             '\x1b[31mred\x1b[0m 10.0.0.1 - GET']


def seeds_logql():
    for i, q in enumerate(LOGQL_QUERIES):
        put("logql", "q%02d" % i, q + "\n--\n" + LOG_LINES[i % len(LOG_LINES)])
    put("logql", "labels-push", '{app="web", env="prod"}')
    put("logql", "labels-push-bad", '{app=~"web"}')
    put("logql", "unquote", '"a\\tb\\u00e9"')
    put("logql", "raw", "`raw string`")
    put("logql", "duration", "1h30m15.5s250ms")


def loki_pb(streams):
    out = b""
    for labels, entries in streams:
        sa = pb_bytes(1, labels)
        for sec, nanos, line, meta in entries:
            ts = pb_varint(1, sec) + (pb_varint(2, nanos) if nanos else b"")
            e = pb_bytes(1, ts) + pb_bytes(2, line)
            for k, v in meta:
                e += pb_bytes(3, pb_bytes(1, k) + pb_bytes(2, v))
            sa += pb_bytes(2, e)
        out += pb_bytes(1, sa)
    return out


def lgd_wal_rec(tenant, streams):
    out = bytearray(b"\x01") + uvarint(len(tenant)) + tenant.encode() + uvarint(len(streams))
    for labels, entries in streams:
        out += uvarint(len(labels)) + labels.encode() + uvarint(len(entries))
        for ts, line, meta in entries:
            out += uvarint(zigzag(ts)) + uvarint(len(line)) + line.encode() + uvarint(len(meta))
            for k, v in meta:
                out += uvarint(len(k)) + k.encode() + uvarint(len(v)) + v.encode()
    return bytes(out)


def seeds_logd_push():
    pb = loki_pb([('{app="web", level="info"}', [(1700000000, 5, "GET /", []),
                                                  (1700000001, 0, "POST /x", [("trace_id", "abc")])]),
                  ('{job="pb"}', [(1700000002, 0, '{"status":500}', [])])])
    put("logd_push", "proto", b"\x00" + pb)
    put("logd_push", "proto-snappy", b"\x01" + snappy_literal(pb))
    put("logd_push", "proto-bad-labels", b"\x00" + loki_pb([("{app=web}", [(1, 0, "x", [])])]))
    put("logd_push", "proto-truncated", b"\x00" + pb[:len(pb) // 2])
    put("logd_push", "proto-neg-ts", b"\x00" + loki_pb([('{a="b"}', [(-5, -3, "neg", [])])]))
    js = {"streams": [{"stream": {"app": "web", "level": "info"},
                       "values": [["1700000000000000000", "hello"],
                                  ["1700000000000000001", "with meta", {"trace_id": "abc"}]]}]}
    put("logd_push", "json", b"\x02" + json.dumps(js).encode())
    legacy = {"streams": [{"labels": '{app="web"}', "entries": [
        {"ts": "2023-11-14T22:13:20.123456789Z", "line": "legacy"}]}]}
    put("logd_push", "json-legacy", b"\x02" + json.dumps(legacy).encode())
    put("logd_push", "json-bad-ts", b"\x02" + b'{"streams":[{"stream":{"a":"b"},"values":[["x","y"]]}]}')
    put("logd_push", "json-num-ts", b"\x02" + b'{"streams":[{"stream":{"a":"b"},"values":[[1,"y"]]}]}')
    put("logd_push", "json-short", b"\x02" + b'{"streams":[{"stream":{"a":"b"},"values":[["1"]]}]}')
    put("logd_push", "json-types", b"\x02" + b'{"streams":[{"stream":{"a":1},"values":{}}]}')
    put("logd_push", "json-empty", b"\x02{}")
    put("logd_push", "json-not", b"\x02[1,2")
    rec = lgd_wal_rec("tenant-1", [('{app="web"}', [(1700000000000000000, "line one", []),
                                                     (-1, "neg", [("k", "v")])])])
    put("logd_push", "walrec", b"\x03" + rec)
    put("logd_push", "walrec-truncated", b"\x03" + rec[:-4])
    put("logd_push", "walrec-badver", b"\x03\x02" + rec[1:])
    put("logd_push", "walrec-hugecount", b"\x03\x01\x01t" + uvarint(1 << 62))


def seeds_traced():
    put("traced_otlp", "json", b"\x01" + json.dumps(TRACE_JSON).encode())
    put("traced_otlp", "json-tags", b"\x01" + json.dumps(TRACE_JSON).encode() +
        b'\n--\nservice.name=checkout http.status_code=200 name="GET /cart"')
    put("traced_otlp", "json-tags-bad", b"\x01" + json.dumps(TRACE_JSON).encode() + b'\n--\nk="unterminated')
    kv = pb_bytes(1, "service.name") + pb_bytes(2, pb_bytes(1, "svc"))
    span = (pb_bytes(1, bytes(range(16))) + pb_bytes(2, bytes(range(8))) + pb_bytes(5, "root") +
            pb_varint(6, 2) + pb_fixed64(7, 1700000000000000000) + pb_fixed64(8, 1700000000500000000))
    child = (pb_bytes(1, bytes(range(16))) + pb_bytes(2, bytes(range(1, 9))) + pb_bytes(4, bytes(range(8))) +
             pb_bytes(5, "child") + pb_fixed64(7, 1700000000100000000) + pb_fixed64(8, 1700000000000000000))
    rs = pb_bytes(1, pb_bytes(1, kv)) + pb_bytes(2, pb_bytes(1, pb_bytes(1, "scope")) +
                                                 pb_bytes(2, span) + pb_bytes(2, child))
    req = pb_bytes(1, rs)
    put("traced_otlp", "pb", b"\x00" + req + b"\n--\nname=root")
    put("traced_otlp", "pb-badid", b"\x00" + pb_bytes(1, pb_bytes(2, pb_bytes(2, pb_bytes(1, b"short")))))
    put("traced_otlp", "pb-noroot", b"\x00" + pb_bytes(1, pb_bytes(2, pb_bytes(2, child))))
    put("traced_otlp", "tags-only", b"\x00\n--\nminDuration=1s maxDuration=2h a=b")
    put("traced_otlp", "traceid", b"\x00\n--\n5b8efff798038103d269b633813fc60c")


def promql_queries():
    qs = []
    d = os.path.join(SHARED, "promql")
    if os.path.isdir(d):
        for f in sorted(os.listdir(d)):
            if "histogram" in f:
                continue
            for line in read(os.path.join(d, f)).decode(errors="replace").splitlines():
                m = re.match(r"\s*eval(?:_fail|_warn|_info|_ordered)?\s+(?:instant at \S+|range from \S+ to \S+ step \S+)\s+(.*)$", line)
                if m and m.group(1).strip():
                    qs.append(m.group(1).strip())
    qs += ["rate(http_requests_total[5m])", "sum by (job) (rate(http_requests_total[1m]))",
           "up == 0", "histogram_quantile(0.9, rate(x_bucket[5m]))", "temp_celsius offset 1m",
           "temp_celsius @ 100", "max_over_time(temp_celsius[5m:30s])", "sort_desc(up)",
           "label_replace(up, \"a\", \"$1\", \"job\", \"(.*)\")", "topk(1, up) by (job)",
           "absent(nope)", "predict_linear(temp_celsius[5m], 60)", "-1 ^ 0.5", "1 / 0", "1 % 0",
           "time()", "vector(1) and on() up", "http_requests_total[1m:1ms]",
           "quantile_over_time(0.5, temp_celsius[10m])", "count_values(\"v\", up)",
           "sum(", "rate(x[5m]", "{__name__=~\".*\"}", "x{a=~\"(\"}", "1 +", "foo[5m] + 1",
           "\"string\"", "x @ start()", "x offset -1m", "(((((((((((1)))))))))))"]
    seen, out = set(), []
    for q in qs:
        if q not in seen:
            seen.add(q)
            out.append(q)
    return out


def seeds_promql():
    qs = promql_queries()
    # keep a spread: every 3rd conformance query plus all hand-written ones (tail)
    keep = qs[:-31:3] + qs[-31:]
    for i, q in enumerate(keep[:400]):
        put("promql", "q%03d" % i, q)


def remote_write(series, meta=()):
    out = b""
    for labels, samples in series:
        ts = b"".join(pb_bytes(1, pb_bytes(1, k) + pb_bytes(2, v)) for k, v in labels)
        ts += b"".join(pb_bytes(2, pb_double(1, v) + pb_varint(2, t)) for t, v in samples)
        out += pb_bytes(1, ts)
    for typ, fam, help_, unit in meta:
        out += pb_bytes(3, pb_varint(1, typ) + pb_bytes(2, fam) + pb_bytes(4, help_) + pb_bytes(5, unit))
    return out


def seeds_remote_write():
    wr = remote_write([([("__name__", "up"), ("instance", "a:1"), ("job", "x")],
                        [(1700000000000, 1.0), (1700000015000, 0.0)]),
                       ([("__name__", "http_requests_total"), ("code", "200")],
                        [(1700000000000, 10.0), (1700000000000, 10.0), (1699999999000, 9.0)])],
                      [(1, "http_requests_total", "Requests.", "")])
    put("remote_write", "raw", b"\x00" + wr)
    put("remote_write", "snappy", b"\x01" + snappy_literal(wr))
    put("remote_write", "unsorted", b"\x00" + remote_write([([("z", "1"), ("__name__", "m")], [(1, 1.0)])]))
    put("remote_write", "dup-label", b"\x00" + remote_write([([("__name__", "m"), ("a", "1"), ("a", "2")], [(1, 1.0)])]))
    put("remote_write", "bad-name", b"\x00" + remote_write([([("__name__", "1bad"), ("a", "")], [(1, 1.0)])]))
    put("remote_write", "stale-nan", b"\x00" + remote_write([([("__name__", "m")], [(1, struct.unpack(
        "<d", struct.pack("<Q", 0x7FF0000000000002))[0]), (2, float("inf"))])]))
    put("remote_write", "neg-ts", b"\x00" + remote_write([([("__name__", "m")], [(-(1 << 62), 1.0)])]))
    put("remote_write", "truncated", b"\x00" + wr[: len(wr) // 2])
    put("remote_write", "empty", b"\x00")
    put("remote_write", "bad-snappy", b"\x01\xff\xff\xff\xff\x0f")


def seeds_promtext():
    good = ("# HELP http_requests_total The total number of HTTP requests.\n"
            "# TYPE http_requests_total counter\n"
            'http_requests_total{method="post",code="200"} 1027 1395066363000\n'
            'http_requests_total{method="post",code="400"}    3 1395066363000\n'
            "\n# Escaping in label values:\n"
            'msdos_file_access_time_seconds{path="C:\\\\DIR\\\\FILE.TXT",error="Cannot find file:\\n\\"FILE.TXT\\""} 1.458255915e9\n'
            "# Minimalistic line:\nmetric_without_timestamp_and_labels 12.47\n"
            "# A weird metric from before the epoch:\nsomething_weird{problem=\"division by zero\"} +Inf -3982045\n"
            "# HELP http_request_duration_seconds A histogram of the request duration.\n"
            "# TYPE http_request_duration_seconds histogram\n"
            'http_request_duration_seconds_bucket{le="0.05"} 24054\n'
            'http_request_duration_seconds_bucket{le="+Inf"} 144320\n'
            "http_request_duration_seconds_sum 53423\nhttp_request_duration_seconds_count 144320\n"
            "# HELP rpc_duration_seconds A summary.\n# TYPE rpc_duration_seconds summary\n"
            'rpc_duration_seconds{quantile="0.5"} 4773\nrpc_duration_seconds_sum 1.7560473e+07\n'
            "rpc_duration_seconds_count 2693\nnan_metric NaN\nneg_inf -Inf\n")
    put("promtext", "spec-example", good)
    node = "".join('node_cpu_seconds_total{cpu="%d",mode="%s"} %d.%02d\n' % (c, m, c * 100 + i, i)
                   for c in range(2) for i, m in enumerate(["idle", "iowait", "system", "user"]))
    put("promtext", "node", "# HELP node_cpu_seconds_total Seconds.\n# TYPE node_cpu_seconds_total counter\n" + node)
    put("promtext", "help-escapes", "# HELP m a\\\\b\\nc\\x\n# TYPE m gauge\nm 1\n")
    put("promtext", "trailing-comma", 'm{a="b",} 1\n')
    put("promtext", "crlf", "m 1\r\nn 2\r\n")
    put("promtext", "no-newline", "m 1")
    put("promtext", "bad-value", "m abc\n")
    put("promtext", "bad-label", 'm{a=b} 1\n')
    put("promtext", "unterminated", 'm{a="b 1\n')
    put("promtext", "bad-ts", "m 1 12x\n")
    put("promtext", "dup-type", "# TYPE m counter\n# TYPE m gauge\nm 1\n")
    put("promtext", "bad-type", "# TYPE m bogus\nm 1\n")
    put("promtext", "colon-name", "a:b:c_total 5\n")
    put("promtext", "empty-labels", "m{} 1\n")
    put("promtext", "hex-float", "m 0x1p3\nn 1_000\no .5\np 5.\n")
    put("promtext", "many", "".join("m%d{i=\"%d\"} %d\n" % (i % 7, i, i) for i in range(60)))
    put("promtext", "openmetrics-eof", "# TYPE m counter\nm_total 1\n# EOF\n")
    put("promtext", "utf8-name", '{"my.metric", a="b"} 1\n')


def seeds_alertd():
    files = [os.path.join(ROOT, "deploy", "local", "alertd.yml")]
    d = os.path.join(SHARED, "alertmanager")
    if os.path.isdir(d):
        files += [os.path.join(d, f) for f in sorted(os.listdir(d)) if f.startswith("conf.")]
    for f in files:
        if os.path.exists(f):
            put("alertd", "cfg-" + os.path.basename(f), b"\x00" + read(f))
    put("alertd", "cfg-min", b"\x00route:\n  receiver: x\nreceivers:\n  - name: x\n")
    put("alertd", "cfg-tree", b"\x00route:\n  receiver: a\n  group_by: ['...']\n  routes:\n"
        b"    - matchers: ['service=\"db\"', 'severity=~\"page|crit\"']\n      receiver: b\n"
        b"      continue: true\n      group_by: [alertname]\n    - match: {team: x}\n"
        b"      match_re: {service: '^(db|api)$'}\n      receiver: c\n"
        b"receivers:\n  - name: a\n  - name: b\n    webhook_configs:\n      - url: http://127.0.0.1:1/\n"
        b"        send_resolved: false\n        max_alerts: 3\n  - name: c\n    email_configs: [{to: x@y}]\n"
        b"inhibit_rules:\n  - source_matchers: [severity=page]\n    target_matchers: [severity=warn]\n"
        b"    equal: [service]\nglobal:\n  resolve_timeout: 1m\n")
    put("alertd", "cfg-undefined-recv", b"\x00route:\n  receiver: nope\nreceivers:\n  - name: x\n")
    put("alertd", "cfg-bad-matcher", b"\x00route:\n  receiver: x\n  routes: [{matchers: ['a=~(']}]\n"
        b"receivers: [{name: x}]\n")
    put("alertd", "cfg-unknown-key", b"\x00route: {receiver: x}\nreceivers: [{name: x}]\nbogus: 1\n")
    for i, m in enumerate(['a=b', 'a="b"', 'a=~"x|y"', '{a="b", c!=d}', 'a!~"z.*", b=c',
                           'foo=bar,baz=~"q"', '{}', 'a="\\"quoted\\""', 'a=', '=b', 'a=~"("',
                           '{a="b"', 'a==b', 'a b=c', '{a="b",}', 'alertname="x y"', 'a=b c',
                           'a="\\u00e9"', '{a="b"}}']):
        put("alertd", "matcher%02d" % i, b"\x01" + m.encode())
    for i, t in enumerate(["2023-11-14T22:13:20Z", "2023-11-14T22:13:20.123456789+05:30",
                           "0001-01-01T00:00:00Z", "", "2023-02-30T00:00:00Z", "x",
                           "9999-12-31T23:59:59.999Z", "2023-11-14 22:13:20Z"]):
        put("alertd", "time%d" % i, b"\x02" + t.encode())


def seeds_agentd_config():
    f = os.path.join(ROOT, "deploy", "local", "agentd.yaml")
    if os.path.exists(f):
        put("agentd_config", "deploy-local", b"\x00" + read(f))
    put("agentd_config", "minimal", b"\x00positions:\n  filename: /tmp/p.yaml\nclients:\n"
        b"  - url: http://127.0.0.1:3100/loki/api/v1/push\nscrape_configs:\n  - job_name: x\n"
        b"    static_configs:\n      - targets: [localhost]\n        labels: {job: x, __path__: /var/log/*.log}\n")
    put("agentd_config", "metrics", b"\x00metrics:\n  global:\n    scrape_interval: 15s\n"
        b"    external_labels: {env: dev}\n  scrape_configs:\n    - job_name: node\n"
        b"      static_configs: [{targets: ['127.0.0.1:9100']}]\n  remote_write:\n"
        b"    - url: http://127.0.0.1:9090/api/v1/write\n      headers: {X-Scope-OrgID: t}\n")
    put("agentd_config", "bad", b"\x00clients: {url: 3}\nscrape_configs: x\nmetrics: [1]\n")
    put("agentd_config", "unknown", b"\x00positions: {nope: 1}\n")
    put("agentd_config", "pos-promtail", b"\x01positions:\n  /var/log/syslog: \"4096\"\n  \"/q/x.log\": \"7\"\n")
    put("agentd_config", "pos-agentd", b"\x01# agentd positions\npositions:\n  \"/var/log/app.log\": \"1234\"\n"
        b"files:\n  \"/var/log/app.log\": \"2049:131077\"\n")
    put("agentd_config", "pos-bad-offset", b"\x01positions:\n  \"/a\": \"12x\"\n")
    put("agentd_config", "pos-bad-id", b"\x01positions:\n  \"/a\": \"1\"\nfiles:\n  \"/a\": \"x:y\"\n")
    put("agentd_config", "pos-escapes", b"\x01positions:\n  \"/a\\\"b\\u00e9\\n\": \"5\"\n")
    put("agentd_config", "pos-empty", b"\x01")
    put("agentd_config", "pos-not-yaml", b"\x01positions: [\n")


def seeds_misc_binary():
    put("xor_chunk", "empty-header", b"\x00\x00")
    put("xor_chunk", "truncated", b"\x00\x05\x01")
    put("mtd_head_wal", "garbage", b"\x03\x00S\xff\xff")
    put("mtd_head_wal", "unknown-type", b"\x02\x00Zz")


def main():
    seeds_cf()
    seeds_snappy()
    seeds_gzip()
    seeds_lz4()
    seeds_otlp_json()
    wal_seeds()
    seeds_labels()
    seeds_logql()
    seeds_logd_push()
    seeds_traced()
    seeds_promql()
    seeds_remote_write()
    seeds_promtext()
    seeds_alertd()
    seeds_agentd_config()
    seeds_misc_binary()
    return 0


if __name__ == "__main__":
    sys.exit(main())
