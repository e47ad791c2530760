"""test_collectord -- collectord between the real OpenTelemetry JS SDK exporters and traced.

OTel JS SDK (gRPC, http/protobuf, http/json, gzip) -> collectord (otlp receiver, batch,
otlp / otlphttp exporters) -> traced; each trace must be readable from traced's
/api/traces/<id>. Also: health_check, telemetry /metrics, config validation errors with
file:line:col, retry while traced is down.
"""
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from obslib import BIN, ROOT, Daemon, TestRun, free_port, http, wait_until  # noqa: E402

NODE_DIR = os.path.join(ROOT, "tests", "node")
SENDER = os.path.join(NODE_DIR, "otlp_traces.js")


def traced_config(grpc_port, http_port, port):
    return """
server: {http_listen_port: %d}
distributor:
  receivers:
    otlp:
      protocols:
        grpc: {endpoint: "127.0.0.1:%d"}
        http: {endpoint: "127.0.0.1:%d"}
ingester:
  trace_idle_period: 1s
storage:
  trace:
    wal: {path: ./data/wal}
    local: {path: ./data/blocks}
""" % (port, grpc_port, http_port)


def collector_config(p, exporters_yaml, pipeline_exporters, extra=""):
    return """
receivers:
  otlp:
    protocols:
      grpc: {endpoint: "127.0.0.1:%(grpc)d"}
      http: {endpoint: "127.0.0.1:%(http)d"}
processors:
  batch: {timeout: 100ms, send_batch_size: 100}
  memory_limiter: {check_interval: 1s, limit_mib: 2048, spike_limit_mib: 256}
exporters:
%(exporters)s
  debug: {verbosity: basic}
extensions:
  health_check: {endpoint: "127.0.0.1:%(health)d"}
service:
  extensions: [health_check]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [memory_limiter, batch]
      exporters: [%(pexp)s, debug]
  telemetry:
    metrics: {address: "127.0.0.1:%(metrics)d"}
%(extra)s""" % dict(p, exporters=exporters_yaml, pexp=pipeline_exporters, extra=extra)


def start_traced():
    gp, hp, port = free_port(), free_port(), free_port()
    t = Daemon("traced", traced_config(gp, hp, port), http_port=port).start()
    return t, gp, hp


def start_collector(exporters_yaml, pexp, extra="", ports=None):
    p = ports or dict(grpc=free_port(), http=free_port(), health=free_port(),
                      metrics=free_port())
    cfg = collector_config(p, exporters_yaml, pexp, extra)
    c = Daemon("collectord", cfg, http_port=p["metrics"])
    c.start()
    c.ports = p
    return c


def send(kind, url, service, n=3, gzip=False):
    args = ["node", SENDER, kind, url, service, str(n)] + (["gzip"] if gzip else [])
    out = subprocess.run(args, cwd=NODE_DIR, capture_output=True, timeout=60)
    assert out.returncode == 0, "sender failed: %s %s" % (out.stdout, out.stderr)
    return json.loads(out.stdout.decode().strip().splitlines()[-1])


def trace_spans(traced, trace_id):
    st, body, _ = http("GET", traced.url("/api/traces/" + trace_id),
                       headers={"Accept": "application/json"})
    if st != 200:
        return None
    doc = json.loads(body)
    ids = set()
    for b in doc.get("batches", doc.get("resourceSpans", [])):
        for ss in b.get("scopeSpans", b.get("instrumentationLibrarySpans", [])):
            for s in ss.get("spans", []):
                ids.add(s.get("spanId"))
    return ids


def hex_ids(ids):
    """traced may render span ids as base64 (Tempo JSON) or hex; normalise to hex."""
    import base64
    out = set()
    for i in ids:
        if i is None:
            continue
        if len(i) == 16 and all(c in "0123456789abcdef" for c in i):
            out.add(i)
        else:
            out.add(base64.b64decode(i).hex())
    return out


def assert_trace_arrives(traced, res):
    def got():
        ids = trace_spans(traced, res["traceId"])
        return ids is not None and hex_ids(ids) >= set(res["spanIds"])
    wait_until(got, timeout=20, what="trace %s in traced" % res["traceId"])


def test_otlp_grpc_and_http_to_traced():
    traced, tg, th = start_traced()
    col = None
    try:
        col = start_collector("  otlp:\n    endpoint: 127.0.0.1:%d\n    tls: {insecure: true}\n"
                              % tg, "otlp")
        p = col.ports
        for kind, url, gz in [("grpc", "http://127.0.0.1:%d" % p["grpc"], False),
                              ("proto", "http://127.0.0.1:%d/v1/traces" % p["http"], False),
                              ("json", "http://127.0.0.1:%d/v1/traces" % p["http"], False),
                              ("proto", "http://127.0.0.1:%d/v1/traces" % p["http"], True)]:
            res = send(kind, url, "svc-" + kind, n=4, gzip=gz)
            assert_trace_arrives(traced, res)
        st, body, _ = http("GET", col.url("/metrics"))
        assert st == 200 and b"otelcol_receiver_accepted_items_total" in body, body[:300]
        assert b"otelcol_exporter_sent_items_total" in body
    finally:
        if col:
            assert col.stop() == 0, col.tail()
            col.cleanup()
        traced.cleanup()


def test_otlphttp_exporter():
    traced, tg, th = start_traced()
    col = None
    try:
        col = start_collector("  otlphttp/traced:\n    endpoint: http://127.0.0.1:%d\n" % th,
                              "otlphttp/traced")
        res = send("grpc", "http://127.0.0.1:%d" % col.ports["grpc"], "svc-otlphttp", n=3)
        assert_trace_arrives(traced, res)
    finally:
        if col:
            col.cleanup()
        traced.cleanup()


def test_health_check():
    col = start_collector("  otlp:\n    endpoint: 127.0.0.1:%d\n    tls: {insecure: true}\n"
                          % free_port(), "otlp")
    try:
        st, body, hdr = http("GET", "http://127.0.0.1:%d/" % col.ports["health"])
        assert st == 200, (st, body)
        doc = json.loads(body)
        assert doc["status"] == "Server available", doc
        assert "upSince" in doc and "uptime" in doc
    finally:
        col.cleanup()


def test_retry_until_traced_up():
    """Spans accepted while traced is down are delivered once it comes up."""
    tg, th = free_port(), free_port()
    col = start_collector("  otlp:\n    endpoint: 127.0.0.1:%d\n    tls: {insecure: true}\n"
                          "    retry_on_failure: {initial_interval: 200ms, max_interval: 1s}\n"
                          % tg, "otlp")
    traced = None
    try:
        res = send("proto", "http://127.0.0.1:%d/v1/traces" % col.ports["http"], "svc-retry", 3)
        time.sleep(1.0)
        port = free_port()
        traced = Daemon("traced", traced_config(tg, th, port), http_port=port).start()
        assert_trace_arrives(traced, res)
    finally:
        col.cleanup()
        if traced:
            traced.cleanup()


def test_persistent_queue_survives_kill9():
    """file_storage + sending_queue.storage: every 200/OK is on disk. Spans sent while traced
    is down are acknowledged; collectord is stopped (SIGTERM), restarted, sent more, then
    killed with SIGKILL; after traced and collectord start again every acknowledged trace
    arrives in traced."""
    tg, th = free_port(), free_port()
    exporters = ("  otlp:\n    endpoint: 127.0.0.1:%d\n    tls: {insecure: true}\n"
                 "    retry_on_failure: {initial_interval: 200ms, max_interval: 1s}\n"
                 "    sending_queue: {enabled: true, storage: file_storage, queue_size: 100}\n"
                 % tg)
    extra = "  file_storage:\n    directory: ./data/queue\n"
    p = dict(grpc=free_port(), http=free_port(), health=free_port(), metrics=free_port())
    cfg = collector_config(p, exporters, "otlp").replace(
        "extensions:\n", "extensions:\n" + extra, 1).replace(
        "  extensions: [health_check]", "  extensions: [health_check, file_storage]")
    col = Daemon("collectord", cfg, http_port=p["metrics"]).start()
    traced = None
    try:
        sent = []
        for i, (kind, url) in enumerate([
                ("grpc", "http://127.0.0.1:%d" % p["grpc"]),
                ("proto", "http://127.0.0.1:%d/v1/traces" % p["http"]),
                ("json", "http://127.0.0.1:%d/v1/traces" % p["http"]),
                ("proto", "http://127.0.0.1:%d/v1/traces" % p["http"])]):
            res = send(kind, url, "svc-durable-%d" % i, n=3)  # asserts every export got OK
            assert res["ok"], res
            sent.append(res)
        st, body, _ = http("GET", col.url("/metrics"))
        qsize = [ln for ln in body.decode().splitlines()
                 if ln.startswith('otelcol_exporter_queue_size{exporter="otlp"}')]
        assert st == 200 and qsize and float(qsize[0].split()[-1]) >= 1, qsize or body[:500]
        qdir = os.path.join(col.dir, "data", "queue", "exporter_otlp")
        assert os.listdir(qdir), "no queue segments in %s" % qdir
        # a graceful stop with traced still down is prompt and keeps the queue on disk ...
        t0 = time.time()
        assert col.stop() == 0, col.tail()
        assert time.time() - t0 < 5, "shutdown took %.1fs" % (time.time() - t0)
        col = Daemon("collectord", cfg, http_port=p["metrics"], workdir=col.dir).start()
        res = send("grpc", "http://127.0.0.1:%d" % p["grpc"], "svc-durable-late", n=2)
        sent.append(res)
        # ... and so does SIGKILL: every request answered OK is in the fsynced queue
        col.kill9()
        port = free_port()
        traced = Daemon("traced", traced_config(tg, th, port), http_port=port).start()
        col = Daemon("collectord", cfg, http_port=p["metrics"], workdir=col.dir).start()
        for res in sent:
            assert_trace_arrives(traced, res)
        # the restarted collector keeps serving, durably
        res = send("proto", "http://127.0.0.1:%d/v1/traces" % p["http"], "svc-after", n=2)
        assert_trace_arrives(traced, res)
        assert col.stop() == 0, col.tail()
    finally:
        col.cleanup()
        if traced:
            traced.cleanup()


def test_bad_payloads():
    col = start_collector("  otlp:\n    endpoint: 127.0.0.1:%d\n    tls: {insecure: true}\n"
                          % free_port(), "otlp")
    try:
        url = "http://127.0.0.1:%d/v1/traces" % col.ports["http"]
        st, _, _ = http("POST", url, b"\xff\xff\xff", {"Content-Type": "application/x-protobuf"})
        assert st == 400, st
        st, _, _ = http("POST", url, b"{not json", {"Content-Type": "application/json"})
        assert st == 400, st
        st, _, _ = http("POST", url, b"x", {"Content-Type": "text/plain"})
        assert st == 415, st
        st, body, _ = http("POST", url, b"{}", {"Content-Type": "application/json"})
        assert st == 200 and body == b"{}", (st, body)
        assert col.alive()
    finally:
        col.cleanup()


def run_bad_config(text):
    d = Daemon("collectord", text)
    try:
        cfg = os.path.join(d.dir, "config.yaml")
        with open(cfg, "w") as f:
            f.write(text)
        out = subprocess.run([os.path.join(BIN, "collectord"), "--config=" + cfg],
                             capture_output=True, timeout=20, cwd=d.dir)
        return out.returncode, out.stderr.decode() + out.stdout.decode(), cfg
    finally:
        d.cleanup()


def test_config_errors():
    base = """receivers:
  otlp:
    protocols:
      grpc: {endpoint: "127.0.0.1:0"}
exporters:
  debug: {}
service:
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [%s]
"""
    rc, err, cfg = run_bad_config(base % "otlp/missing")
    assert rc == 1, (rc, err)
    assert "config.yaml:11:" in err and "otlp/missing" in err, err
    rc, err, _ = run_bad_config(base.replace("  debug: {}", "  nosuch/x: {}") % "debug")
    assert rc == 1 and "config.yaml:6:" in err and "unknown type" in err, err
    rc, err, _ = run_bad_config(base.replace("exporters:\n  debug", "exporters:\n  debug/2") %
                                "debug/2" + "  bogus: 1\n")
    assert rc == 1 and "bogus" in err, err


TestRun(globals()).main()
