"""Bad-request sweep over every HTTP route of every daemon (the project's bad-input standard:
"Bad input gets a clear error, never a crash, a hang or silent loss").

Each daemon is started with a minimal config on random loopback ports and sent a bounded,
seeded sweep of malformed requests over raw sockets (so NULs, bad escapes and truncated bodies
reach the server unaltered): wrong methods; missing, duplicated, empty, huge, unicode and
NUL-containing parameters; bad times (NaN, Inf, 1e300, negative, RFC3339 junk); huge step
counts; deep-nested and very long PromQL/LogQL/TraceQL expressions; malformed
JSON/protobuf/snappy/gzip bodies; wrong content types; truncated bodies; odd label names;
path segments with %00, %2F, ../ and friends.

After the sweep each daemon must still be alive, answer /ready and a normal request
correctly, and stop cleanly on SIGTERM; no response may be a 5xx other than 503; no request
may hang; only a truncated body may go unanswered; a reply to HEAD carries no body; every 4xx
must carry a non-empty body in the anchor's shape (Prometheus JSON envelope for metricsd's
query API, plain text for remote write/read and Loki/Tempo paths, Alertmanager v2 shapes for
alertd, google.rpc.Status for OTLP/HTTP; the router's own 404/405/413/415 and bad
Content-Encoding replies are plain text, as Go's mux and the collector's confighttp answer);
and the daemon's log must hold no "ERROR: AddressSanitizer" or "runtime error:" line.

Knobs: BAD_SEED (default 20261122), BAD_MAX (requests per daemon and listener, default and cap
3000), BAD_TIMEOUT (seconds per request, default 8). A failure names the request; rerun with
the same seed to reproduce it.

Run: OBS_BIN=$PWD/build/bad/bin python3 tests/integration/test_bad_requests.py [test_name ...]
"""
import gzip
import json
import os
import random
import shutil
import socket
import struct
import sys
import tempfile
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from obslib import BIN, Daemon, TestRun, free_port, http, wait_until  # noqa: E402
from pbutil import uvarint  # noqa: E402

SEED = int(os.environ.get("BAD_SEED", "20261122"))
MAX_REQ = min(int(os.environ.get("BAD_MAX", "3000")), 3000)
TIMEOUT = float(os.environ.get("BAD_TIMEOUT", "8"))

# ---- raw HTTP client ----------------------------------------------------------------------


class Resp:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def ctype(self):
        return self.headers.get("content-type", "")


def _dechunk(b):
    out, i = b"", 0
    for _ in range(1 << 20):
        j = b.find(b"\r\n", i)
        if j < 0:
            break
        n = int(b[i:j].split(b";")[0] or b"0", 16)
        if n == 0:
            break
        out += b[j + 2:j + 2 + n]
        i = j + 2 + n + 2
    return out


def raw_request(port, method, target, headers=(), body=b"", declared_len=None, timeout=TIMEOUT):
    """Send one request over a fresh connection; returns Resp, "timeout", or "closed" (the
    server closed without answering). declared_len > len(body) sends a truncated body and
    half-closes the socket."""
    if isinstance(target, str):
        target = target.encode()
    req = method.encode() + b" " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    req += b"Connection: close\r\n"
    for k, v in headers:
        req += k.encode() + b": " + (v if isinstance(v, bytes) else v.encode()) + b"\r\n"
    if body or declared_len is not None or method in ("POST", "PUT", "PATCH"):
        req += b"Content-Length: %d\r\n" % (declared_len if declared_len is not None else len(body))
    req += b"\r\n" + body
    deadline = time.time() + timeout
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        try:
            s.sendall(req)
            if declared_len is not None:
                s.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server may answer (413) and close before reading everything
        buf = b""
        while True:
            left = deadline - time.time()
            if left <= 0:
                return "timeout"
            s.settimeout(left)
            try:
                c = s.recv(65536)
            except socket.timeout:
                return "timeout"
            except ConnectionResetError:
                break
            if not c:
                break
            buf += c
    finally:
        s.close()
    if not buf:
        return "closed"
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    try:
        status = int(parts[1])
    except (IndexError, ValueError):
        return Resp(0, {}, buf)
    hdrs = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(b":")
        hdrs[k.strip().lower().decode(errors="replace")] = v.strip().decode(errors="replace")
    if "chunked" in hdrs.get("transfer-encoding", "").lower():
        rest = _dechunk(rest)
    elif "content-length" in hdrs:
        rest = rest[:int(hdrs["content-length"])]
    return Resp(status, hdrs, rest)


# ---- encoders (just enough protobuf + snappy for valid and near-valid payloads) -----------

def f_bytes(num, data):
    if isinstance(data, str):
        data = data.encode()
    return uvarint(num << 3 | 2) + uvarint(len(data)) + data


def f_varint(num, v):
    return uvarint(num << 3) + uvarint(v)


def f_double(num, v):
    return uvarint(num << 3 | 1) + struct.pack("<d", v)


def snappy(data):
    """Valid snappy block format using only literal elements."""
    out = bytearray(uvarint(len(data)))
    for i in range(0, len(data), 65536):
        chunk = data[i:i + 65536]
        n = len(chunk) - 1
        if n < 60:
            out.append(n << 2)
        else:
            out.append(61 << 2)
            out += struct.pack("<H", n)
        out += chunk
    return bytes(out)


def rw_request(series):
    """prometheus.WriteRequest from [(labels[(n, v)], samples[(t_ms, v)])]."""
    out = b""
    for labels, samples in series:
        ts = b"".join(f_bytes(1, f_bytes(1, n) + f_bytes(2, v)) for n, v in labels)
        ts += b"".join(f_bytes(2, f_double(1, v) + f_varint(2, t)) for t, v in samples)
        out += f_bytes(1, ts)
    return out


def loki_push_pb(labels, entries):
    """logproto.PushRequest: one stream, entries [(ns, line)]."""
    ents = b""
    for ns, line in entries:
        tsm = f_varint(1, ns // 10**9) + f_varint(2, ns % 10**9)
        ents += f_bytes(2, f_bytes(1, tsm) + f_bytes(2, line))
    return f_bytes(1, f_bytes(1, labels) + ents)


def f_fixed64(num, v):
    return uvarint(num << 3 | 1) + struct.pack("<Q", v & ((1 << 64) - 1))


def otlp_pb(trace_id, span_id, service="bad-svc", name="op"):
    """ExportTraceServiceRequest with one span (protobuf)."""
    now = time.time_ns()
    kv = f_bytes(1, "service.name") + f_bytes(2, f_bytes(1, service))
    span = (f_bytes(1, bytes.fromhex(trace_id)) + f_bytes(2, bytes.fromhex(span_id)) +
            f_bytes(5, name) + f_varint(6, 2) + f_fixed64(7, now - 10**6) + f_fixed64(8, now) +
            f_bytes(9, f_bytes(1, "http.method") + f_bytes(2, f_bytes(1, "GET"))))
    rs = f_bytes(1, f_bytes(1, kv)) + f_bytes(2, f_bytes(1, f_bytes(1, "t")) + f_bytes(2, span))
    return f_bytes(1, rs)


def otlp_json(trace_id, span_id, service="bad-svc", name="op"):
    now = time.time_ns()
    return json.dumps({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
        "scopeSpans": [{"scope": {"name": "t"}, "spans": [{
            "traceId": trace_id, "spanId": span_id, "name": name, "kind": 2,
            "startTimeUnixNano": str(now - 10**6), "endTimeUnixNano": str(now),
            "attributes": [{"key": "http.method", "value": {"stringValue": "GET"}}]}]}]}]})


# ---- mutation pools ------------------------------------------------------------------------

HUGE = "x" * 200000
BAD_TIMES = ["NaN", "nan", "Inf", "+Inf", "-Inf", "1e300", "-1e300", "1e19", "-1", "-1e18",
             "9223372036854775807", "9223372036854775808", "-9223372036854775809",
             "18446744073709551616", "2026-13-45T99:99:99Z", "2026-01-01T00:00:00",
             "2026-01-01T00:00:00+99:99", "2026-01-01T00:00:00.9999999999999999999Z",
             "0x10", "1_000", "1e", ".", "", " ", "now", "now-1h", "1h", "-5m",
             "99999999999999999999999999", "1.7976931348623157e308", "4.9e-324",
             "2026-01-01T00:00:00Z\x00", "\u2603", "1" * 400]
BAD_DURS = ["0", "0s", "-1s", "-1", "NaN", "Inf", "1e300", "1e-300", "0.000000001", "1ns",
            "1ms", "1y1y", "5", "99999999999999999999y", "1.5h", "h", "1x", "", "1e18",
            "9223372036854775807ms", "\x00", "30s\x00"]
ODD = ["", " ", "\x00", "a\x00b", "\xff\xfe", "\u00e9\u2603\U0001f600", "%", "%zz", "%00",
       "%2F", "../../etc/passwd", "..%2F..%2F", "\\", "'", '"', "`", "{", "}", "{{", "[",
       "]", "*", "?", "&", "=", "#", "\r\n", "\n", "\t", "0", "-0", "1e309", "true", "null",
       "[]", "{}", "__name__", "__proto__", "a" * 5000, HUGE]
LABEL_NAMES = ["", "0abc", "a-b", "a.b", "a b", "\u00e9", "__name__", "__", "le", "a\x00",
               "U__a_2e_b", "U__zz", "a" * 3000, "{}", "job=\"x\"", "%00"]

PROMQL = [
    "up", "1+1", "", " ", "(", ")", "{", "}", "{}", "up{", 'up{job="', 'up{job=~"(("}',
    'up{job=~"' + "(" * 2000 + '"}', '{__name__=~".*"}', '{__name__=""}', 'up{=""}',
    "sum(", "sum by (", "rate(up[0s])", "rate(up[-1s])", "rate(up[99999999999y])",
    "rate(up[1e300s])", "up[5m:0s]", "up[5m:1ms]", "up[1y:1ms]", "max_over_time(up[1y:1ms])",
    "up offset 99999999999y", "up @ NaN", "up @ Inf", "up @ 1e300", "up @ -1e300", "up @ start(",
    "topk(1e300, up)", "topk(NaN, up)", "topk(-1, up)", "quantile(NaN, up)",
    "histogram_quantile(1e300, up)", "label_replace(up, \"\", \"\", \"\", \"(\")",
    "label_replace(up, \"a\", \"$1\", \"job\", \"" + "(a*)*" * 50 + "\")",
    "label_join(up, \"\\x00\", \",\", \"a\")", "count_values(\"\", up)",
    "count_values(\"" + "a" * 3000 + "\", up)", "absent(nonexistent{a=\"\\xff\"})",
    "vector(1) / 0", "0/0", "1e309", "-1e309", "0x", "1_2", "\"unterminated", "'\\",
    "up and on() group_left up", "up unless ignoring(a,a,a) up", "-" * 5000 + "1",
    "(" * 5000 + "1" + ")" * 5000, "(" * 200 + "1" + ")" * 200,
    "abs(" * 2000 + "1" + ")" * 2000, "1" + "+1" * 20000, "up" + " or up" * 5000,
    "sum(" * 300 + "up" + ")" * 300, "scalar(" * 300 + "1" + ")" * 300,
    "{__name__=~\"" + "a|" * 20000 + "a\"}", "time() @ 1", "\x00", "up\x00", "\u2603",
    "up{job=\"\u00e9\\u2603\"}", "sort_by_label(up, \"" + "a" * 1000 + "\")",
    "predict_linear(up[5m], 1e300)", "holt_winters(up[5m], 2, 2)", "round(up, 0)",
    "clamp(up, NaN, -Inf)", "timestamp(timestamp(up))", "up[5m][5m]", "up[5m:][5m:]",
    "rate(up[5m:1s])[5m:1s]", "sum without() (up)",
    # just under the nesting limit (1000 levels): must evaluate, not overflow a stack
    "1" + "+1" * 998, "(" * 995 + "up" + ")" * 995, "abs(" * 990 + "up" + ")" * 990,
    "-" * 990 + "up", "sum(" * 490 + "up" + ")" * 490, "up" + " or up" * 998,
    "vector(1)" + " and on() vector(1)" * 998, "1" + "^1" * 998,
    "max_over_time(" * 12 + "up" + "[1m:30s])" * 12, "count by (" + ",".join("l%d" % i for i in
                                                                          range(3000)) + ") (up)",
]
LOGQL = [
    '{job="x"}', "", "{", "{}", '{job=""}', '{job=~""}', '{job=~".*"}', '{job="x"', '{job=x}',
    '{job="x"} |= "', '{job="x"} |~ "(("', '{job="x"} |~ "' + "(a*)*" * 40 + 'b"',
    '{job="x"} | json | line_format "{{', '{job="x"} | line_format "{{.a | ' + "x | " * 2000
    + '}}"', '{job="x"} | logfmt | a > 1e300', '{job="x"} | unwrap', '{job="x"} | pattern "<',
    'rate({job="x"}[0s])', 'rate({job="x"}[-1s])', 'rate({job="x"}[99999999y])',
    'count_over_time({job="x"}[1y])', 'sum(' * 2000 + 'count_over_time({job="x"}[1m])' + ')' * 2000,
    '{job="x"}' + ' |= "a"' * 5000, '{job="x"} | regexp "(?P<' + "a" * 3000 + '>.)"',
    'topk(1e300, rate({job="x"}[1m]))', 'quantile_over_time(NaN, {job="x"} | unwrap a [1m])',
    '{job="x"} | label_format a="{{' * 100, '{job="\x00"}', '{job="\u2603"}', '{\u00e9="x"}',
    '{job="x"} | drop ' + ",".join("l%d" % i for i in range(3000)), '{' + "a" * 5000 + '="x"}',
    '{job="x"} | json ' + ",".join('a%d="b"' % i for i in range(2000)), "\x00",
    '{job="x"} | decolorize | line_format "{{ repeat 100000000 \\"x\\" }}"',
    '{job="x"} | line_format "{{ . }}{{ $x := 1 }}"', "(" * 5000 + '{job="x"}' + ")" * 5000,
]
TRACEQL = ["{}", "{", "}", "{ .a = }", "{ .a = \"x\" }", "{ span.http.method = \"GET\" }",
           "{ duration > 1e300s }", "{ duration > -1s }", "{ .a =~ \"((\" }",
           "{ " + " && ".join(".a%d = 1" % i for i in range(3000)) + " }",
           "{" * 5000 + "}" * 5000, "{ resource.service.name = \"\\x00\" }", "\x00",
           "{ .a = \"" + "a" * 100000 + "\" }", "{ .a }>>{ .b }" * 200, "{ true } | count() > 1"]

NUL_JSON = ['', ' ', 'null', '[]', '{}', '{"streams":null}', '{"streams":[{}]}',
            '{"streams":[{"stream":null,"values":null}]}',
            '{"streams":[{"stream":{"a":1},"values":[["x","y"]]}]}',
            '{"streams":[{"stream":{"":"x"},"values":[["1","y"]]}]}',
            '{"streams":[{"stream":{"job":"x"},"values":[["99999999999999999999999","y"]]}]}',
            '{"streams":[{"stream":{"job":"x"},"values":[["-1","y"]]}]}',
            '{"streams":[{"stream":{"job":"x"},"values":[["1",null]]}]}',
            '{"streams":[{"stream":{"job":"x"},"values":[[]]}]}',
            '{"streams":[{"stream":{"job":"x"},"values":[["1","a","b","c"]]}]}',
            '{"streams":[{"stream":{"job":"x"},"values":[["1","\\u0000"]]}]}',
            '{"streams":[{"stream":{"job":"x"},"values":[["1","\\ud800"]]}]}',
            '[' * 100000 + ']' * 100000, '{"a":' * 50000 + '1' + '}' * 50000,
            '{"streams":[' + ','.join(['{"stream":{"j":"x"},"values":[]}'] * 5000) + ']}',
            '"\\u', '{"a":"\xff\xfe"}', '{"a":1e99999}', '{"a":-}', '\x00\x00', '{"a":1}}',
            '{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"zz","spanId":"q"}]}]}]}',
            '{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"' + "0" * 32 +
            '","spanId":"' + "0" * 16 + '"}]}]}]}',
            '{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"' + "a" * 33 +
            '","spanId":"' + "b" * 16 + '","startTimeUnixNano":"-5","endTimeUnixNano":"x"}]}]}]}',
            '{"resourceSpans":{}}', '{"resourceSpans":[null,1,"x"]}',
            '{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"","gauge":{}}]}]}]}',
            '{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"body":{"kvlistValue":' * 500 +
            '1' + '}}]}]}]}' * 500]
ALERT_JSON = ['[]', '{}', 'null', '[null]', '[{}]', '[{"labels":{}}]', '[{"labels":null}]',
              '[{"labels":{"alertname":""}}]', '[{"labels":{"":"x"}}]',
              '[{"labels":{"alertname":"a"},"startsAt":"junk"}]',
              '[{"labels":{"alertname":"a"},"startsAt":"9999-99-99T00:00:00Z"}]',
              '[{"labels":{"alertname":"a"},"endsAt":"0001-01-01T00:00:00Z",'
              '"startsAt":"2030-01-01T00:00:00Z"}]',
              '[{"labels":{"alertname":"a","\u00e9":"\u2603"}}]',
              '[{"labels":{"alertname":"a\\u0000b"}}]',
              '[{"labels":{"alertname":1}}]', '[{"labels":{"alertname":"a"},"annotations":[]}]',
              '[{"labels":{"alertname":"a"},"generatorURL":"' + "h" * 100000 + '"}]',
              '[' + ','.join(['{"labels":{"alertname":"a%d"}}' % i for i in range(3000)]) + ']',
              '[' * 100000 + ']' * 100000]
SILENCE_JSON = ['{}', 'null', '[]', '{"matchers":[]}', '{"matchers":null}',
                '{"matchers":[{"name":"a","value":"b","isRegex":false}],"startsAt":"x",'
                '"endsAt":"y","createdBy":"t","comment":"c"}',
                '{"matchers":[{"name":"a","value":"((","isRegex":true}],'
                '"startsAt":"2026-01-01T00:00:00Z","endsAt":"2099-01-01T00:00:00Z",'
                '"createdBy":"t","comment":"c"}',
                '{"matchers":[{"name":"","value":"","isRegex":false}],'
                '"startsAt":"2026-01-01T00:00:00Z","endsAt":"2025-01-01T00:00:00Z",'
                '"createdBy":"t","comment":"c"}',
                '{"id":"nonexistent","matchers":[{"name":"a","value":"b","isRegex":false}],'
                '"startsAt":"2026-01-01T00:00:00Z","endsAt":"2099-01-01T00:00:00Z",'
                '"createdBy":"t","comment":"c"}',
                '{"matchers":[{"name":"a","value":"b","isRegex":false,"isEqual":"no"}],'
                '"startsAt":"2026-01-01T00:00:00Z","endsAt":"2099-01-01T00:00:00Z",'
                '"createdBy":"","comment":""}',
                '{"matchers":[' + ','.join(['{"name":"a","value":"' + "(a*)*" * 20 +
                                            'b","isRegex":true}'] * 200) +
                '],"startsAt":"2026-01-01T00:00:00Z","endsAt":"2099-01-01T00:00:00Z",'
                '"createdBy":"t","comment":"c"}', '{"a":' * 50000 + '1' + '}' * 50000]
AM_FILTERS = ['alertname="x"', 'alertname=~"(("', "", "=", "a", '{a="b"}', 'a!~"' + "(a*)*" *
              60 + 'b"', '\x00="x"', 'a="\xff"', "a=" + "b" * 100000, 'a=~".*",b=c']

CT = ["application/json", "application/x-protobuf", "application/x-www-form-urlencoded",
      "text/plain", "multipart/form-data; boundary=zz", "application/grpc", "", "\x00",
      "application/json; charset=utf-16", "x" * 5000, "application/x-protobuf; proto=xx"]
CE = ["snappy", "gzip", "deflate", "x-gzip", "br", "zstd", "identity", "", "gzip, snappy",
      "SNAPPY", "\x00"]


def body_pool(rng, valid):
    """A malformed or near-valid body derived from a valid one."""
    k = rng.randrange(14)
    if k == 0:
        return bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 300)))
    if k == 1:
        return valid[:rng.randrange(max(1, len(valid)))]
    if k == 2:
        b = bytearray(valid)
        for _ in range(rng.randrange(1, 8)):
            if b:
                b[rng.randrange(len(b))] = rng.getrandbits(8)
        return bytes(b)
    if k == 3:
        return snappy(valid)[:-3] if len(valid) > 3 else b"\xff"
    if k == 4:
        return uvarint(1 << 40) + b"\x00" * 10  # snappy header claiming a huge length
    if k == 5:
        return gzip.compress(valid)[:-9]
    if k == 6:
        return b"\x1f\x8b\x08\x00" + bytes(rng.getrandbits(8) for _ in range(50))
    if k == 7:
        return b"\x0a\xff\xff\xff\xff\x0f" + valid
    if k == 8:
        return b"\x0a" + uvarint(10**12) + b"abc"
    if k == 9:  # deep protobuf nesting
        inner = b"\x08\x01"
        for _ in range(200):
            inner = f_bytes(1, inner)
        return inner
    if k == 10:
        return rng.choice(NUL_JSON).encode("utf-8", "surrogatepass")
    if k == 11:
        return snappy(rng.choice(NUL_JSON).encode())
    if k == 12:
        return gzip.compress(b"\x00" * rng.choice([10, 1 << 20]))
    return valid + b"\x00" * rng.randrange(1, 40)


# ---- the daemons under test ----------------------------------------------------------------

class Route:
    """path (prefix routes end with '/'), allowed methods, error shape, parameter names,
    and a body kind for POSTs."""

    def __init__(self, path, methods, shape, params=(), body=None, prefix=False, expr=None):
        self.path = path
        self.methods = methods
        self.shape = shape
        self.params = list(params)
        self.body = body
        self.prefix = prefix
        self.expr = expr


COMMON_ROUTES = [Route("/metrics", ["GET"], "any"), Route("/ready", ["GET"], "any"),
                 Route("/-/ready", ["GET"], "any"), Route("/-/healthy", ["GET"], "any")]
PROM_Q = ["query", "time", "timeout", "limit", "stats"]
PROM_QR = ["query", "start", "end", "step", "timeout", "limit"]
PROM_META = ["match[]", "start", "end", "limit"]


def metricsd_routes():
    rs = [Route("/api/v1/query", ["GET", "POST"], "prom", PROM_Q, expr="promql"),
          Route("/api/v1/query_range", ["GET", "POST"], "prom", PROM_QR, expr="promql"),
          Route("/prometheus/api/v1/query", ["GET", "POST"], "prom", PROM_Q, expr="promql"),
          Route("/prometheus/api/v1/query_range", ["GET", "POST"], "prom", PROM_QR,
                expr="promql"),
          Route("/api/v1/format_query", ["GET", "POST"], "prom", ["query"], expr="promql"),
          Route("/api/v1/parse_query", ["GET", "POST"], "prom", ["query"], expr="promql"),
          Route("/api/v1/query_exemplars", ["GET", "POST"], "prom", ["query", "start", "end"],
                expr="promql"),
          Route("/api/v1/labels", ["GET", "POST"], "prom", PROM_META, expr="promql"),
          Route("/api/v1/label/", ["GET", "POST"], "prom", PROM_META, prefix=True,
                expr="promql"),
          Route("/api/v1/series", ["GET", "POST"], "prom", PROM_META, expr="promql"),
          Route("/api/v1/metadata", ["GET"], "prom", ["metric", "limit", "limit_per_metric"]),
          Route("/api/v1/targets", ["GET"], "prom", ["state", "scrapePool"]),
          Route("/api/v1/rules", ["GET"], "prom", ["type", "rule_name[]", "group_name[]",
                                                   "file[]", "exclude_alerts"]),
          Route("/api/v1/alerts", ["GET"], "prom"),
          Route("/prometheus/api/v1/rules", ["GET"], "prom", ["type"]),
          Route("/prometheus/api/v1/alerts", ["GET"], "prom"),
          Route("/api/v1/write", ["POST"], "text", body="rw"),
          Route("/api/v1/push", ["POST"], "text", body="rw"),
          Route("/api/v1/read", ["POST"], "text", body="rr"),
          Route("/ingester/flush", ["GET", "POST"], "any"),
          Route("/compactor/run", ["POST"], "any")]
    for s in ["buildinfo", "tsdb", "config", "flags", "runtimeinfo", "walreplay"]:
        rs.append(Route("/api/v1/status/" + s, ["GET"], "prom", ["limit"]))
    return rs + COMMON_ROUTES


def logd_routes():
    q = ["query", "start", "end", "limit", "step", "direction", "interval", "since"]
    return [Route("/loki/api/v1/push", ["POST"], "text", body="loki"),
            Route("/api/prom/push", ["POST"], "text", body="loki"),
            Route("/loki/api/v1/query_range", ["GET", "POST"], "text", q, expr="logql"),
            Route("/loki/api/v1/query", ["GET", "POST"], "text",
                  ["query", "time", "limit", "direction"], expr="logql"),
            Route("/loki/api/v1/labels", ["GET", "POST"], "text", ["start", "end", "since",
                                                                    "query"], expr="logql"),
            Route("/loki/api/v1/label", ["GET", "POST"], "text", ["start", "end"]),
            Route("/loki/api/v1/label/", ["GET", "POST"], "text", ["start", "end", "query"],
                  prefix=True, expr="logql"),
            Route("/loki/api/v1/series", ["GET", "POST"], "text", ["match[]", "start", "end"],
                  expr="logql"),
            Route("/loki/api/v1/index/stats", ["GET", "POST"], "text", ["query", "start", "end"],
                  expr="logql"),
            Route("/loki/api/v1/status/buildinfo", ["GET"], "any")] + COMMON_ROUTES


def traced_routes():
    tr = ["start", "end"]
    return [Route("/v1/traces", ["POST"], "otlp", body="otlp"),
            Route("/otlp/v1/traces", ["POST"], "otlp", body="otlp"),
            Route("/api/echo", ["GET"], "any"),
            Route("/api/status/buildinfo", ["GET"], "any"),
            Route("/api/traces/", ["GET"], "text", tr, prefix=True),
            Route("/api/v2/traces/", ["GET"], "text", tr, prefix=True),
            Route("/api/search", ["GET"], "text", ["q", "tags", "minDuration", "maxDuration",
                                                   "limit", "start", "end", "spss"],
                  expr="traceql"),
            Route("/api/search/tags", ["GET"], "text", ["scope", "start", "end", "q"],
                  expr="traceql"),
            Route("/api/search/tag/", ["GET"], "text", ["start", "end", "q"], prefix=True,
                  expr="traceql")] + COMMON_ROUTES


def alertd_routes():
    f = ["filter", "silenced", "inhibited", "active", "unprocessed", "receiver"]
    return [Route("/-/reload", ["POST"], "any"),
            Route("/api/v2/alerts", ["GET", "POST"], "am", f, body="alerts"),
            Route("/api/v2/alerts/groups", ["GET"], "am", f),
            Route("/api/v2/status", ["GET"], "am"),
            Route("/api/v2/receivers", ["GET"], "am"),
            Route("/api/v2/silences", ["GET", "POST"], "am", ["filter"], body="silence"),
            Route("/api/v2/silence/", ["GET", "DELETE"], "am", prefix=True)] + COMMON_ROUTES


def agentd_routes():
    return [Route("/api/v1/targets", ["GET"], "any", ["state"]),
            Route("/targets", ["GET"], "any")] + COMMON_ROUTES


def collectord_routes():
    return [Route("/v1/traces", ["POST"], "otlp", body="otlp"),
            Route("/v1/metrics", ["POST"], "otlp", body="otlp"),
            Route("/v1/logs", ["POST"], "otlp", body="otlp")]


# ---- request generation --------------------------------------------------------------------

ODD_TS_MS = [0, -1, 1, -(1 << 63), (1 << 63) - 1, 1 << 62, -(1 << 62), 253402300800000,
             -62135596800000]
ODD_VALUES = [float("nan"), float("inf"), float("-inf"), 1e308, -0.0, 5e-324, 0.0]


def semantic_body(rng, kind):
    """Well-formed encoding, odd content: label names/values, timestamps, ids, sizes."""
    now_ms = int(time.time() * 1000)

    def odd_labels():
        ls = [("__name__", rng.choice(["bad_sem", "", "0bad", "a-b", "\u00e9", "x" * 5000]))]
        for _ in range(rng.choice([0, 1, 3, 40, 300])):
            ls.append((rng.choice(LABEL_NAMES + ["job", "job", "le"]),
                       rng.choice(ODD[:-1] + ["v"])))
        if rng.random() < 0.3:
            rng.shuffle(ls)
        return ls

    if kind in ("rw", "rr"):
        series = []
        for _ in range(rng.choice([1, 2, 50])):
            samples = [(rng.choice(ODD_TS_MS + [now_ms] * 4), rng.choice(ODD_VALUES + [1.0]))
                       for _ in range(rng.choice([0, 1, 3, 200]))]
            series.append((odd_labels(), samples))
        return rw_request(series)
    if kind == "loki":
        ns = rng.choice([0, -1, 1, (1 << 63) - 1, -(1 << 63), time.time_ns()])
        labels = rng.choice(['{job="x"}', "{}", "", "{", '{job="x",job="y"}', '{a="\xff"}',
                             '{' + ",".join('l%d="v"' % i for i in range(500)) + '}',
                             '{job="' + "v" * 70000 + '"}', 'job="x"', '{job=~"x"}'])
        if rng.random() < 0.5:
            n = rng.choice([1, 2, 500])
            line = rng.choice(["", "x" * 70000 if n < 500 else "y", "\x00", "line"])
            return loki_push_pb(labels, [(ns & ((1 << 63) - 1), line)] * n)
        return json.dumps({"streams": [{"stream": dict(odd_labels()), "values": [
            [str(ns), rng.choice(["", "x" * 70000, "\x00", "line", "\ud800"])]]}]}).encode()
    if kind == "otlp":
        tid = rng.choice(["", "0" * 32, "zz" * 16, "a" * 31, "a" * 34, "A" * 32,
                          "0123456789abcdef0123456789abcdef"])
        sid = rng.choice(["", "0" * 16, "q" * 16, "a" * 15, "0123456789abcdef"])
        doc = json.loads(otlp_json("0123456789abcdef0123456789abcdef", "0123456789abcdef"))
        sp = doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
        sp["traceId"], sp["spanId"] = tid, sid
        sp["startTimeUnixNano"] = rng.choice(["0", "-1", "18446744073709551615",
                                              "18446744073709551616", "1e9", "", 5, None])
        sp["parentSpanId"] = rng.choice(["", sid, "ffffffffffffffff", 7])
        sp["attributes"] = [{"key": rng.choice(["", "k", "\u0000", "k" * 5000]),
                             "value": rng.choice([{}, {"intValue": "x"}, {"doubleValue": "NaN"},
                                                  {"arrayValue": {"values": [{}] * 100}},
                                                  {"kvlistValue": None}, {"bytesValue": "!!"}])}
                            for _ in range(rng.choice([0, 1, 200]))]
        sp["kind"] = rng.choice([0, -1, 99, "x"])
        return json.dumps(doc).encode()
    if kind == "alerts":
        alerts = []
        for _ in range(rng.choice([1, 2, 100])):
            alerts.append({"labels": dict(odd_labels()), "annotations": dict(odd_labels()[:3]),
                           "startsAt": rng.choice(["2026-01-01T00:00:00Z", "0001-01-01T00:00:00Z",
                                                   "9999-12-31T23:59:59Z", "", "x"]),
                           "endsAt": rng.choice(["", "1970-01-01T00:00:00Z",
                                                 "2100-01-01T00:00:00.999999999Z"])})
        return json.dumps(alerts).encode()
    if kind == "silence":
        ms = [{"name": n, "value": v, "isRegex": rng.random() < 0.5,
               "isEqual": rng.random() < 0.8} for n, v in odd_labels()[:rng.choice([1, 2, 30])]]
        return json.dumps({"matchers": ms, "startsAt": "2026-01-01T00:00:00Z",
                           "endsAt": rng.choice(["2099-01-01T00:00:00Z", "2026-01-01T00:00:00Z",
                                                 "1999-01-01T00:00:00Z"]),
                           "createdBy": rng.choice(["t", "", "x" * 10000]),
                           "comment": rng.choice(["c", ""])}).encode()
    return b""


def valid_body(kind):
    now_ms = int(time.time() * 1000)
    if kind == "rw":
        return rw_request([([("__name__", "bad_probe"), ("job", "j")], [(now_ms, 1.0)])])
    if kind == "rr":  # ReadRequest{queries:[{start,end,matchers:[{type,name,value}]}]}
        m = f_varint(1, 0) + f_bytes(2, "__name__") + f_bytes(3, "bad_probe")
        return f_bytes(1, f_varint(1, now_ms - 60000) + f_varint(2, now_ms) + f_bytes(3, m))
    if kind == "loki":
        return loki_push_pb('{job="bad"}', [(time.time_ns(), "hello")])
    if kind == "otlp":
        return otlp_json("0123456789abcdef0123456789abcdef", "0123456789abcdef").encode()
    if kind == "alerts":
        return b'[{"labels":{"alertname":"BadProbe"}}]'
    if kind == "silence":
        return SILENCE_JSON[6].encode()
    return b""


def valid_value(name, route):
    now = time.time()
    if route.expr == "logql":
        now_s = "%d" % int(now * 1e9)
        return {"query": '{job="bad"}', "match[]": '{job="bad"}', "start": "%d" % int(
            (now - 300) * 1e9), "end": now_s, "time": now_s, "limit": "10", "step": "15",
                "direction": "backward", "since": "5m", "interval": "1"}.get(name)
    if route.expr == "traceql":
        return {"q": "{}", "start": "%d" % int(now - 300), "end": "%d" % int(now),
                "limit": "5", "spss": "3", "minDuration": "1ms", "maxDuration": "1h",
                "tags": "service.name=x", "scope": "span"}.get(name)
    return {"query": "up", "match[]": "up", "time": "%.3f" % now, "start": "%.3f" % (now - 300),
            "end": "%.3f" % now, "step": "15", "timeout": "5s", "limit": "10",
            "metric": "up", "filter": 'alertname="x"', "active": "true",
            "silenced": "false", "inhibited": "false", "state": "active"}.get(name)


def pick_value(rng, name, route):
    r = rng.random()
    if name in ("query", "match[]", "q") and route.expr and r < 0.6:
        pool = {"promql": PROMQL, "logql": LOGQL, "traceql": TRACEQL}[route.expr]
        return rng.choice(pool)
    if name in ("time", "start", "end", "since") and r < 0.7:
        return rng.choice(BAD_TIMES)
    if name in ("step", "timeout", "interval", "minDuration", "maxDuration", "since") and r < 0.7:
        return rng.choice(BAD_DURS + ["0.001", "1e-9", "1"])
    if name in ("limit", "spss", "limit_per_metric") and r < 0.7:
        return rng.choice(["-1", "0", "1e300", "NaN", "99999999999999999999", "x", "",
                           "2147483648", "1.5"])
    if name == "filter" and r < 0.7:
        return rng.choice(AM_FILTERS)
    if name == "tags" and r < 0.7:
        return rng.choice(["a=b", "a", "=", "a=\x00", " ".join("k%d=v" % i for i in range(2000)),
                           'a="unterminated', "a=" + HUGE])
    return rng.choice(ODD + ["up", "1", "true", "false", "forward", "backward", "alert"])


def enc(s):
    return urllib.parse.quote(s.encode("utf-8", "surrogatepass"), safe="")


def gen_requests(rng, routes, n):
    """n deterministic malformed requests: dicts(method, target, headers, body, route, why)."""
    out = []
    methods = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]
    for i in range(n):
        rt = routes[i % len(routes)] if i < len(routes) * 2 else rng.choice(routes)
        path = rt.path
        why = []
        if rt.prefix:
            seg = rng.choice(["job", "__name__", "%00", "a%2Fb", "..", "../..", "..%2F..%2F",
                              "%2e%2e", "", "values", "job/values", "job/values/extra",
                              "%ff%fe", "%E2%98%83", "a" * 5000, "U__a_2e_b", "U__", "%",
                              "%zz", "0123456789abcdef0123456789abcdef",
                              "0" * 32, "zz", "0" * 64, "1" * 33, "-1", "%0a", "a b"])
            if "label" in path and rng.random() < 0.7 and "values" not in seg:
                seg += "/values"
            path = path + seg
            why.append("seg=%r" % seg[:40])
        elif rng.random() < 0.05:
            path = path + rng.choice(["/", "%00", "/..", "/%2F", "?", "//", "/x"])
        method = rng.choice(rt.methods)
        if rng.random() < 0.12:
            method = rng.choice(methods)
            why.append("method")
        # parameters
        # one or two parameters get a bad value (or are duplicated); the rest are valid or
        # absent, so each fault reaches the code behind the earlier checks
        params = []
        bad = set(rng.sample(rt.params, min(len(rt.params), rng.choice([1, 1, 1, 2]))))
        for p in rt.params:
            x = rng.random()
            if p in bad:
                if x < 0.1:
                    continue  # missing
                params.append((p, pick_value(rng, p, rt)))
                if x > 0.85:  # duplicated
                    params.append((p, pick_value(rng, p, rt)))
            elif x < 0.8 or p in ("query", "q"):
                v = valid_value(p, rt)
                if v is not None:
                    params.append((p, v))
        if rng.random() < 0.1:
            params.append((rng.choice(LABEL_NAMES + ["x", "", "match[]"]), rng.choice(ODD)))
        if rt.params and rng.random() < 0.02:  # one parameter repeated many times
            p = rng.choice(rt.params)
            params += [(p, valid_value(p, rt) or "x")] * rng.choice([500, 5000])
            why.append("repeated")
        qs = "&".join(enc(k) + "=" + enc(v) for k, v in params)
        if rng.random() < 0.05:
            qs += rng.choice(["&&&", "=", "%", "%0", "&a", "a=%ZZ", "=&=", "%00=%00"])
        if rng.random() < 0.01:  # 40000 parameters: parsing them must stay linear
            qs += "&a" * 40000
            why.append("40k params")
        headers = []
        body = b""
        declared = None
        if method in ("POST", "PUT", "PATCH"):
            if rt.body and method == "POST":
                vb = valid_body(rt.body)
                pb = rt.body == "otlp" and rng.random() < 0.5
                if pb:
                    vb = otlp_pb("0123456789abcdef0123456789abcdef", "0123456789abcdef")
                x = rng.random()
                if x < 0.3 and not pb:
                    vb = semantic_body(rng, rt.body)
                    if rt.body in ("rw", "rr", "loki") and vb[:1] != b"{":
                        vb = snappy(vb)
                    body = vb
                else:
                    body = body_pool(rng, vb) if x < 0.85 else vb
                ct = {"rw": "application/x-protobuf", "rr": "application/x-protobuf",
                      "loki": "application/x-protobuf"}.get(rt.body, "application/json")
                if pb:
                    ct = "application/x-protobuf"
                if rng.random() < 0.3:
                    ct = rng.choice(CT)
                headers.append(("Content-Type", ct))
                if rng.random() < 0.5:
                    headers.append(("Content-Encoding", rng.choice(CE)))
                elif rt.body in ("rw", "rr", "loki") and rng.random() < 0.7:
                    headers.append(("Content-Encoding", "snappy"))
            elif rt.params and rng.random() < 0.6:
                body, qs = qs.encode(), ""
                headers.append(("Content-Type", rng.choice(
                    ["application/x-www-form-urlencoded"] * 3 + CT)))
            else:
                body = body_pool(rng, b"")
            if rng.random() < 0.003:
                body = b"x" * (17 << 20)  # over every route's body limit
                why.append("huge")
            if rng.random() < 0.05:
                declared = len(body) + rng.choice([1, 100, 10**6])
                why.append("truncated")
        elif rng.random() < 0.03:
            body = b"junk"
        if rng.random() < 0.04:
            headers.append(("X-Scope-OrgID", rng.choice(ODD[:20] + ["a|b", "a" * 300])))
        target = path + ("?" + qs if qs else "")
        if rng.random() < 0.02:
            target = target.replace("/", "//", 1)
        out.append(dict(method=method, target=target, headers=headers, body=body,
                        declared=declared, route=rt, why=",".join(why)))
    return out


# ---- checks ----------------------------------------------------------------------------------

FRAMEWORK_TEXT = (b"Method Not Allowed", b"404 page not found", b"request body too large",
                  b"unsupported Content-Encoding", b"cannot decode", b"decompressed body too")


def shape_problem(rt, req, resp):
    """None when a 4xx reply has the route's anchor shape, else a description."""
    b = resp.body
    ct = resp.ctype()
    if resp.status in (404, 405) and b.startswith(FRAMEWORK_TEXT[:2]):
        return None  # router replies: Prometheus/Loki/Tempo/Alertmanager all use plain text
    if resp.status in (400, 413) and b.startswith(b"<HTML><HEAD>") and b"</TITLE>" in b:
        # libevent's own reply when a declared Content-Length is over the server's limit
        # (before any route is chosen); libevent 2.1 has no hook to change its shape
        return None
    if rt.shape == "am" and resp.status == 404 and req["route"].prefix:
        return None  # Alertmanager: GET/DELETE unknown silence -> 404 with an empty body
    if not b.strip():
        return "empty 4xx body"
    if rt.shape == "prom":
        if b.startswith(FRAMEWORK_TEXT):
            return None
        try:
            doc = json.loads(b)
        except ValueError:
            return "not a Prometheus JSON envelope: %r" % b[:120]
        if not (isinstance(doc, dict) and doc.get("status") == "error" and
                isinstance(doc.get("errorType"), str) and doc.get("errorType") and
                isinstance(doc.get("error"), str) and doc.get("error")):
            return "bad Prometheus error envelope: %r" % b[:160]
        if "json" not in ct:
            return "Prometheus error without JSON content type: %r" % ct
        return None
    if rt.shape == "text":
        if not ct.startswith("text/plain"):
            return "expected plain text, got %r: %r" % (ct, b[:120])
        return None
    if rt.shape == "am":
        if b.startswith(FRAMEWORK_TEXT):
            return None
        try:
            doc = json.loads(b)
        except ValueError:
            return "not an Alertmanager JSON error: %r" % b[:120]
        if isinstance(doc, str) and doc:
            return None
        if isinstance(doc, dict) and isinstance(doc.get("message"), str) and doc["message"]:
            return None
        return "unexpected Alertmanager error shape: %r" % b[:160]
    if rt.shape == "otlp":
        # OTLP/HTTP: a google.rpc.Status in the request's encoding; the HTTP layer's own
        # replies (bad Content-Encoding, 404/405/413) are plain text, as in the collector
        if b.startswith(FRAMEWORK_TEXT):
            return None
        if "json" in ct:
            try:
                doc = json.loads(b)
            except ValueError:
                return "OTLP JSON error is not JSON: %r" % b[:120]
            if not (isinstance(doc, dict) and isinstance(doc.get("message"), str)):
                return "OTLP JSON error is not a Status: %r" % b[:120]
            return None
        if "protobuf" in ct:
            if b[:1] not in (b"\x08", b"\x12"):
                return "OTLP protobuf error is not a Status: %r" % b[:120]
            return None
        if ct.startswith("text/plain"):
            return None
        return "OTLP error with content type %r: %r" % (ct, b[:120])
    return None  # "any": a non-empty body is enough


def describe(req):
    t = req["target"]
    return "%s %s%s hdr=%r body=%d%s" % (req["method"], t[:160], "..." if len(t) > 160 else "",
                                         req["headers"][:3], len(req["body"]),
                                         (" [" + req["why"] + "]") if req["why"] else "")


def sweep(d, routes, name, port=None, seed_off=0):
    """Run the sweep against d; returns (count, problems, stats)."""
    port = port or d.http_port
    rng = random.Random(SEED + seed_off)
    reqs = gen_requests(rng, routes, MAX_REQ)
    problems, stats = [], {}
    sent, t0 = 0, time.time()
    for req in reqs:
        sent += 1
        try:
            r = raw_request(port, req["method"], req["target"], req["headers"], req["body"],
                            req["declared"])
        except OSError as e:
            r = "error %s" % e
        if isinstance(r, str):
            stats[r] = stats.get(r, 0) + 1
            if r == "timeout":
                problems.append("%s: hang (no reply in %.0fs): %s" % (name, TIMEOUT, describe(req)))
            elif r != "closed" or not req["declared"]:
                # only a truncated body may end without a reply (the peer half-closed)
                if r.startswith("error"):
                    time.sleep(1.0)  # a crashing process may still be writing its report
                if not d.alive():
                    problems.append("%s: DIED on: %s\n%s" % (name, describe(req), d.tail(30)))
                    break
                problems.append("%s: %s without a reply on: %s" % (name, r, describe(req)))
                if r.startswith("error"):
                    break
            continue
        stats[r.status] = stats.get(r.status, 0) + 1
        if req["method"] == "HEAD":
            if r.body:  # RFC 9110: no content in a response to HEAD
                problems.append("%s: HEAD answered with a body %r on: %s" % (
                    name, r.body[:80], describe(req)))
            elif r.status >= 500 and r.status != 503:
                problems.append("%s: %d on: %s" % (name, r.status, describe(req)))
        elif r.status >= 500 and r.status != 503:
            problems.append("%s: %d on: %s -> %r" % (name, r.status, describe(req), r.body[:200]))
        elif 400 <= r.status < 500:
            p = shape_problem(req["route"], req, r)
            if p:
                problems.append("%s: %d %s on: %s" % (name, r.status, p, describe(req)))
        if not d.alive():
            problems.append("%s: DIED after: %s\n%s" % (name, describe(req), d.tail(30)))
            break
    print("  %s: %d requests in %.1fs, statuses %s" % (
        name, sent, time.time() - t0, dict(sorted(stats.items(), key=str))), flush=True)
    return sent, problems


def log_problems(d):
    try:
        with open(d.log_path, "rb") as f:
            text = f.read().decode(errors="replace")
    except OSError:
        return ["cannot read log"]
    out = []
    for ln in text.splitlines():
        if "ERROR: AddressSanitizer" in ln or "runtime error:" in ln:
            out.append("%s log: %s" % (d.name, ln[:300]))
    if out:
        i = text.find("ERROR: AddressSanitizer")
        if i < 0:
            i = text.find("runtime error:")
        out.append(text[max(0, i - 200):i + 3000])
    return out


def finish(d, problems, post_check):
    """Liveness, /ready, a normal request, the log scan; raise with every problem found."""
    if d.alive():
        t0 = time.time()
        try:
            st, body, _ = http("GET", d.url("/ready"), timeout=10)
            if st != 200:
                problems.append("%s: /ready after sweep -> %d %r" % (d.name, st, body[:200]))
            post_check()
            print("  %s: after-sweep checks passed in %.1fs" % (d.name, time.time() - t0),
                  flush=True)
        except Exception as e:  # noqa: BLE001
            problems.append("%s: normal request after sweep failed: %r" % (d.name, e))
    else:
        problems.append("%s is not alive after the sweep:\n%s" % (d.name, d.tail(40)))
    problems[:0] = log_problems(d)
    if problems:
        raise AssertionError("%d problem(s):\n%s" % (len(problems), "\n".join(problems[:40])))


def run_daemon(d, routes, post_check, extra_ports=()):
    try:
        d.start(ready_path=getattr(d, "ready_path", "/ready"), timeout=40)
        _, problems = sweep(d, routes, d.name)
        for i, (port, rts) in enumerate(extra_ports):
            if not d.alive():
                break
            _, p = sweep(d, rts, "%s:%d" % (d.name, i + 1), port=port, seed_off=i + 1)
            problems += p
        finish(d, problems, post_check)
        t0 = time.time()
        rc = d.stop(timeout=20)
        took = time.time() - t0
        print("  %s: stopped with %s in %.1fs" % (d.name, rc, took), flush=True)
        assert rc == 0 and took < 15, "%s: SIGTERM after the sweep: exit %s after %.1fs" % (
            d.name, rc, took)
    finally:
        d.cleanup()


# ---- tests -----------------------------------------------------------------------------------

def test_metricsd():
    port = free_port()
    cfg = ("server:\n  http_listen_address: 127.0.0.1\n  http_listen_port: %d\n"
           "  grpc_listen_port: %d\nblocks_storage:\n  tsdb:\n    dir: ./tsdb\n"
           % (port, free_port()))
    d = Daemon("metricsd", cfg, http_port=port)

    def check():
        now_ms = int(time.time() * 1000)
        body = snappy(rw_request([([("__name__", "bad_after"), ("job", "j")], [(now_ms, 42.0)])]))
        st, b, _ = http("POST", d.url("/api/v1/write"), body,
                        {"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy",
                         "X-Prometheus-Remote-Write-Version": "0.1.0"})
        assert st in (200, 204), (st, b)
        q = urllib.parse.urlencode({"query": "bad_after", "time": "%.3f" % (now_ms / 1000)})
        st, b, _ = http("GET", d.url("/api/v1/query?" + q))
        doc = json.loads(b)
        assert st == 200 and doc["data"]["result"][0]["value"][1] == "42", (st, b[:300])
        st, b, _ = http("GET", d.url("/api/v1/query?query=1%2B1"))
        assert st == 200 and json.loads(b)["data"]["result"][1] == "2", (st, b[:300])

    def check_all():
        check()
        # deep nesting: each subquery is evaluated once over its grid, so 40 levels answer
        q = "max_over_time(" * 40 + "vector(1)" + "[1m:30s])" * 40
        st, b, _ = http("GET", d.url("/api/v1/query?timeout=5s&query=" + enc(q)), timeout=30)
        assert st == 200 and json.loads(b)["data"]["result"][0]["value"][1] == "1", (st, b[:300])
        # a heavy query (each outer point sorts a 10000-point window) is bounded by the timeout
        q = ("quantile_over_time(0.5, quantile_over_time(0.5, vector(time() % 97)[10000s:1s])"
             "[10000s:1s])")
        t0 = time.time()
        st, b, _ = http("GET", d.url("/api/v1/query?timeout=1s&time=10000&query=" + enc(q)),
                        timeout=30)
        assert st == 503 and json.loads(b)["errorType"] == "timeout", (st, b[:300])
        assert time.time() - t0 < 10, "timeout=1s query took %.1fs" % (time.time() - t0)
        check()

    run_daemon(d, metricsd_routes(), check_all)


def test_logd():
    port = free_port()
    cfg = ("server:\n  http_listen_address: 127.0.0.1\n  http_listen_port: %d\n"
           "  grpc_listen_port: %d\n  http_server_max_body_bytes: 1MiB\n"
           "auth_enabled: false\ncommon:\n  path_prefix: ./data\nschema_config:\n  configs: []\n"
           "storage_config:\n  filesystem:\n    directory: ./chunks\n"
           "limits_config:\n  max_line_size: 64KB\n" % (port, free_port()))
    d = Daemon("logd", cfg, http_port=port)

    def check():
        ns = time.time_ns()
        doc = {"streams": [{"stream": {"job": "after_sweep"}, "values": [[str(ns), "still here"]]}]}
        st, b, _ = http("POST", d.url("/loki/api/v1/push"), json.dumps(doc),
                        {"Content-Type": "application/json"})
        assert st == 204, (st, b)
        q = urllib.parse.urlencode({"query": '{job="after_sweep"}', "start": str(ns - 10**9),
                                    "end": str(ns + 10**9)})
        st, b, _ = http("GET", d.url("/loki/api/v1/query_range?" + q))
        assert st == 200, (st, b[:300])
        res = json.loads(b)["data"]["result"]
        assert res and res[0]["values"][0][1] == "still here", b[:300]

    run_daemon(d, logd_routes(), check)


def test_traced():
    port, grpc, otlp = free_port(), free_port(), free_port()
    cfg = """
server:
  http_listen_address: 127.0.0.1
  http_listen_port: %d
distributor:
  receivers:
    otlp:
      protocols:
        grpc: {endpoint: "127.0.0.1:%d"}
        http: {endpoint: "127.0.0.1:%d"}
storage:
  trace:
    wal: {path: ./data/wal}
    local: {path: ./data/blocks}
""" % (port, grpc, otlp)
    d = Daemon("traced", cfg, http_port=port)
    tid = "a1b2c3d4e5f60718293a4b5c6d7e8f90"

    def check():
        st, b, _ = http("POST", d.url("/v1/traces"), otlp_json(tid, "1122334455667788"),
                        {"Content-Type": "application/json"})
        assert st == 200, (st, b)

        def found():
            s, body, _ = http("GET", d.url("/api/traces/" + tid),
                              headers={"Accept": "application/json"})
            return s == 200 and b"1122334455667788" in body or (
                s == 200 and b"ESIzRFVmd4g=" in body)
        wait_until(found, timeout=15, what="trace after sweep")
        st, b, _ = http("POST", d.url("/v1/traces"), otlp_pb(tid, "8877665544332211"),
                        {"Content-Type": "application/x-protobuf"})
        assert st == 200, (st, b)
        st, b, _ = http("GET", d.url("/api/echo"))
        assert st == 200 and b.strip() == b"echo", (st, b)

    otlp_routes = [Route("/v1/traces", ["POST"], "otlp", body="otlp")]
    run_daemon(d, traced_routes(), check, extra_ports=[(otlp, otlp_routes)])


def test_alertd():
    port = free_port()
    cfg = """route:
  receiver: hook
  group_by: ['alertname']
  group_wait: 1h
receivers:
  - name: hook
    webhook_configs:
      - url: http://127.0.0.1:%d/hook
""" % free_port()
    d = Daemon("alertd", cfg, http_port=port,
               args=["--web.listen-address=127.0.0.1:%d" % port, "--storage.path=data"])
    d.ready_path = "/-/ready"

    def check():
        st, b, _ = http("POST", d.url("/api/v2/alerts"),
                        '[{"labels":{"alertname":"AfterSweep","sev":"x"}}]',
                        {"Content-Type": "application/json"})
        assert st == 200, (st, b)
        st, b, _ = http("GET", d.url("/api/v2/alerts?filter=alertname%3D%22AfterSweep%22"))
        doc = json.loads(b)
        assert st == 200 and len(doc) == 1 and doc[0]["labels"]["sev"] == "x", (st, b[:300])

    run_daemon(d, alertd_routes(), check)


def test_agentd():
    port = free_port()
    logdir = tempfile.mkdtemp(prefix="obs-bad-agentd-logs-")
    with open(os.path.join(logdir, "a.log"), "w") as f:
        f.write("one line\n")
    cfg = """
server: {http_listen_address: 127.0.0.1, http_listen_port: %d}
positions: {filename: ./positions.yaml, sync_period: 500ms}
clients:
  - url: http://127.0.0.1:%d/loki/api/v1/push
    backoff_config: {min_period: 100ms, max_period: 1s}
scrape_configs:
  - job_name: demo
    static_configs:
      - targets: [localhost]
        labels: {job: demo, __path__: "%s/*.log"}
metrics:
  global: {scrape_interval: 1s, scrape_timeout: 1s}
  scrape_configs:
    - job_name: closed
      static_configs: [{targets: ["127.0.0.1:%d"]}]
  remote_write: [{url: "http://127.0.0.1:%d/api/v1/push"}]
""" % (port, free_port(), logdir, free_port(), free_port())
    d = Daemon("agentd", cfg, http_port=port)

    def check():
        st, b, _ = http("GET", d.url("/api/v1/targets"))
        assert st == 200 and b"closed" in b, (st, b[:300])

    try:
        run_daemon(d, agentd_routes(), check)
    finally:
        shutil.rmtree(logdir, ignore_errors=True)


def test_collectord():
    p = dict(grpc=free_port(), http=free_port(), health=free_port(), metrics=free_port())
    cfg = """
receivers:
  otlp:
    protocols:
      grpc: {endpoint: "127.0.0.1:%(grpc)d"}
      http: {endpoint: "127.0.0.1:%(http)d"}
processors:
  batch: {timeout: 100ms, send_batch_size: 100}
exporters:
  debug: {verbosity: basic}
extensions:
  health_check: {endpoint: "127.0.0.1:%(health)d"}
service:
  extensions: [health_check]
  pipelines:
    traces: {receivers: [otlp], processors: [batch], exporters: [debug]}
    metrics: {receivers: [otlp], processors: [batch], exporters: [debug]}
    logs: {receivers: [otlp], processors: [batch], exporters: [debug]}
  telemetry:
    metrics: {address: "127.0.0.1:%(metrics)d"}
""" % p
    d = Daemon("collectord", cfg, http_port=p["metrics"])

    def check():
        st, b, _ = http("POST", "http://127.0.0.1:%d/v1/traces" % p["http"],
                        otlp_json("0f0e0d0c0b0a09080706050403020100", "0102030405060708"),
                        {"Content-Type": "application/json"})
        assert st == 200, (st, b)
        st, b, _ = http("GET", "http://127.0.0.1:%d/" % p["health"])
        assert st == 200 and b"Server available" in b, (st, b)

    health = [Route("/", ["GET"], "any", ["x"])]
    run_daemon(d, COMMON_ROUTES, check,
               extra_ports=[(p["http"], collectord_routes()), (p["health"], health)])


if __name__ == "__main__":
    if not os.path.exists(os.path.join(BIN, "metricsd")):
        print("binaries not found in %s (set OBS_BIN)" % BIN)
    TestRun(globals()).main()
