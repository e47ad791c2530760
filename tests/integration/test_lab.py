"""test_lab -- the foundation's acceptance test: the whole one-host lab, end to end.

Starts the lab with `scripts/lab up` in a temporary LAB_DIR on random free ports (with short
scrape/evaluation/for/group intervals), drives traffic at the demo app for a bounded time,
then asserts through real clients:
  - promtool: up{job="node"} is 1; the demo app's request rate is positive;
  - logd: a LogQL query_range for the demo app's error lines returns exactly the error lines
    the demo app wrote (read from its app.log);
  - traced: /api/traces/<id> returns every span of trace ids taken from the app log (the demo
    app logs how many spans each request produced);
  - alerting: the demo traffic's 5xx ratio makes HighErrorRate reach the webhook receiver, and
    stopping node_exporter (by its pid) makes ServiceDown reach it, through metricsd's ruler
    and alertd;
  - durability: kill -9 of metricsd and logd, then restart, keeps every sample and log line
    that was queryable (acknowledged) before the kill, for a time range before the kill.
Set KEEP_LAB=1 to leave the lab directory (and print it) for inspection; the services are
always stopped. Tests run in definition order and share the one lab.
"""
import atexit
import base64
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from obslib import BIN, ROOT, TestRun, free_port, http, wait_until  # noqa: E402

LAB = os.path.join(ROOT, "scripts", "lab")
TRAFFIC = os.path.join(ROOT, "scripts", "traffic")
PORT_NAMES = ["METRICSD", "METRICSD_GRPC", "LOGD", "LOGD_GRPC", "TRACED", "TRACED_GRPC",
              "TRACED_OTLP_GRPC", "TRACED_OTLP_HTTP", "ALERTD", "ALERTD_CLUSTER", "AGENTD",
              "COLLECTORD_OTLP_GRPC", "COLLECTORD_OTLP_HTTP", "COLLECTORD_HEALTH",
              "COLLECTORD_METRICS", "NODE", "DEMO", "WEBHOOK"]
ERROR_FILTER = '"level":"error"'

S = {}  # shared state of the one lab run


def lab_env():
    return S["env"]


def port(name):
    return int(S["env"]["LAB_PORT_" + name])


def url(name, path=""):
    return "http://127.0.0.1:%d%s" % (port(name), path)


def run_lab(*args, timeout=120):
    p = subprocess.run([sys.executable, LAB] + list(args), env=lab_env(), capture_output=True,
                       text=True, timeout=timeout)
    return p.returncode, p.stdout + p.stderr


def teardown():
    if "env" not in S:
        return
    rc, out = run_lab("down", timeout=90)
    if os.environ.get("KEEP_LAB") == "1" or S.get("failed_keep"):
        print("lab kept in %s" % S["dir"])
    else:
        shutil.rmtree(S["dir"], ignore_errors=True)


def ensure_lab():
    """Start the lab once (first test that needs it)."""
    if "env" in S:
        return
    d = tempfile.mkdtemp(prefix="obs-lab-")
    env = dict(os.environ)
    used = set()
    for n in PORT_NAMES:
        p = free_port()
        while p in used:
            p = free_port()
        used.add(p)
        env["LAB_PORT_" + n] = str(p)
    env.pop("LAB_PORT_BASE", None)
    env.update({
        "LAB_DIR": d,
        "OBS_BIN": BIN,
        "LAB_SCRAPE_INTERVAL": "2s",
        "LAB_SCRAPE_TIMEOUT": "2s",
        "LAB_EVAL_INTERVAL": "2s",
        "LAB_ALERT_FOR": "5s",
        "LAB_GROUP_WAIT": "1s",
        "LAB_GROUP_INTERVAL": "5s",
        "LAB_REPEAT_INTERVAL": "1h",
        # keep the test hermetic: no host /var/log/*.log shipping in the test lab
        "LAB_VARLOG_GLOB": os.path.join(d, "varlog", "*.log"),
        "LAB_READY_TIMEOUT": "60",
        "ASAN_OPTIONS": env.get("ASAN_OPTIONS", "detect_leaks=0:abort_on_error=0"),
    })
    S["env"] = env
    S["dir"] = d
    S["t_start"] = time.time()
    atexit.register(teardown)
    # the lab's services run in their own sessions: on a runner's timeout (SIGTERM) still
    # stop them, through atexit
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))
    rc, out = run_lab("up")
    S["up_rc"], S["up_out"] = rc, out
    print(out, flush=True)


def need(*names):
    """Fail with a clear message when a service the test needs is not running."""
    ensure_lab()
    rc, out = run_lab("status", *names)
    bad = [l for l in out.splitlines()[1:] if l.split()[1:2] != ["ready"]]
    if bad:
        raise AssertionError("services not running:\n%s\n--- lab up output:\n%s"
                             % ("\n".join(bad), S.get("up_out", "")))


def promtool_instant(expr, at=None):
    argv = ["promtool", "query", "instant", "-o", "json"]
    if at is not None:
        argv.append("--time=%.3f" % at)
    argv += [url("METRICSD"), expr]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if p.returncode != 0:
        raise AssertionError("promtool failed (%d): %s" % (p.returncode, p.stderr.strip()))
    data = json.loads(p.stdout)
    if isinstance(data, dict):  # be lenient about the envelope
        data = data.get("data", data).get("result", data)
    return data  # [{"metric": {...}, "value": [ts, "v"]}, ...]


def app_log_lines():
    with open(os.path.join(S["dir"], "demo-app", "app.log"), encoding="utf-8") as f:
        return [l.rstrip("\n") for l in f if l.endswith("\n")]


def logql_range(query, start_s, end_s, limit=5000):
    q = urllib.parse.urlencode({"query": query, "start": "%d" % int(start_s * 1e9),
                                "end": "%d" % int(end_s * 1e9), "limit": str(limit),
                                "direction": "forward"})
    st, body, _ = http("GET", url("LOGD", "/loki/api/v1/query_range?" + q), timeout=30)
    if st != 200:
        raise AssertionError("query_range %s: %d %s" % (query, st, body[:300]))
    res = json.loads(body)
    assert res.get("status") == "success", res
    data = res["data"]
    assert data["resultType"] == "streams", data["resultType"]
    lines = []
    for stream in data["result"]:
        for ts, line in stream["values"]:
            lines.append(line)
    return lines


def drive_traffic():
    if S.get("traffic_done"):
        return
    p = subprocess.run([sys.executable, TRAFFIC, "25", "12", url("DEMO")], capture_output=True,
                       text=True, timeout=60)
    print(p.stdout.strip(), flush=True)
    assert p.returncode == 0, p.stdout + p.stderr
    S["traffic_done"] = time.time()


# ---------------------------------------------------------------------------------------------


def test_lab_up():
    ensure_lab()
    assert S["up_rc"] == 0, "scripts/lab up failed:\n" + S["up_out"]
    rc, out = run_lab("status")
    assert rc == 0, out
    for line in out.splitlines()[1:]:
        name = line.split()[0]
        if name != "traffic":
            assert " ready " in line + " ", "not ready: " + line


def test_node_up():
    need("metricsd", "agentd", "node_exporter")

    def ok():
        r = promtool_instant('up{job="node"}')
        return len(r) == 1 and r[0]["value"][1] == "1" and r
    r = wait_until(ok, timeout=45, interval=1, what='up{job="node"} == 1')
    print("  up{job=\"node\"} =>", r[0]["value"][1], r[0]["metric"], flush=True)


def test_demo_request_rate():
    need("metricsd", "agentd", "demo-app")
    drive_traffic()

    def ok():
        r = promtool_instant('sum(rate(http_requests_total{job="demo-app"}[1m]))')
        return len(r) == 1 and float(r[0]["value"][1]) > 0 and r
    r = wait_until(ok, timeout=45, interval=1, what="positive demo-app request rate")
    print("  demo-app request rate:", r[0]["value"][1], "req/s", flush=True)


def test_error_logs_match_app_log():
    need("logd", "agentd", "demo-app")
    drive_traffic()
    expected = sorted(l for l in app_log_lines() if ERROR_FILTER in l)
    assert len(expected) > 0, "the demo app wrote no error lines"
    query = '{filename=~".*app.log"} |= "\\"level\\":\\"error\\""'
    last = {}

    def ok():
        got = sorted(logql_range(query, S["t_start"] - 60, time.time() + 5))
        last["got"] = got
        return got == expected
    try:
        wait_until(ok, timeout=45, interval=1, what="logd error lines == app.log error lines")
    except AssertionError:
        got = last.get("got", [])
        missing = sorted(set(expected) - set(got))
        extra = sorted(set(got) - set(expected))
        raise AssertionError("expected %d error lines, got %d; missing %d (e.g. %r), extra %d "
                             "(e.g. %r)" % (len(expected), len(got), len(missing),
                                            missing[:1], len(extra), extra[:1]))
    print("  %d error lines match" % len(expected), flush=True)


def span_id_hex(v):
    """Tempo's JSON may carry ids as hex or base64 (proto JSON mapping)."""
    if v is None:
        return ""
    if re.fullmatch(r"[0-9a-fA-F]{16}|[0-9a-fA-F]{32}", v):
        return v.lower()
    try:
        return base64.b64decode(v).hex()
    except (ValueError, TypeError):
        return v


def trace_spans(body):
    """All spans of a Tempo trace-by-id JSON answer (OTLP JSON, batches or resourceSpans)."""
    doc = json.loads(body)
    if "trace" in doc:  # /api/v2/traces shape
        doc = doc["trace"]
    spans = []
    for b in doc.get("batches", []) + doc.get("resourceSpans", []):
        for ss in b.get("scopeSpans", []) + b.get("instrumentationLibrarySpans", []):
            spans.extend(ss.get("spans", []))
    return spans


def test_trace_by_id_from_log():
    need("traced", "collectord", "demo-app")
    drive_traffic()
    recs = [json.loads(l) for l in app_log_lines()]
    recs = [r for r in recs if r.get("path") != "/metrics"]
    assert recs, "no request lines in app.log"
    # an error request, a three-span request and the last request of the traffic run
    picks = []
    for want in (lambda r: r["level"] == "error", lambda r: r["spans"] == 3,
                 lambda r: r["path"] == "/slow"):
        for r in recs:
            if want(r) and r not in picks:
                picks.append(r)
                break
    picks.append(recs[-1])
    for rec in picks:
        tid = rec["trace_id"]
        assert re.fullmatch(r"[0-9a-f]{32}", tid), tid
        last = {}

        def ok():
            st, body, _ = http("GET", url("TRACED", "/api/traces/" + tid),
                               headers={"Accept": "application/json"}, timeout=10)
            last["st"], last["body"] = st, body[:300]
            if st != 200:
                return False
            spans = trace_spans(body)
            last["n"] = len(spans)
            return len(spans) == rec["spans"] and spans
        try:
            spans = wait_until(ok, timeout=45, interval=1, what="trace %s" % tid)
        except AssertionError:
            raise AssertionError("trace %s (%s %s, %d spans in the app log): last answer %s "
                                 "%r, %s spans" % (tid, rec["method"], rec["path"], rec["spans"],
                                                   last.get("st"), last.get("body"),
                                                   last.get("n")))
        names = sorted(s.get("name") for s in spans)
        assert "%s %s" % (rec["method"], rec["path"]) in names, names
        ids = {span_id_hex(s.get("spanId")) for s in spans}
        assert rec["span_id"] in ids, (rec["span_id"], ids)
        print("  trace %s: %d spans %s" % (tid, len(spans), names), flush=True)


def webhook_alerts():
    path = os.path.join(S["dir"], "webhook", "alerts.log")
    out = []
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
    except OSError:
        pass
    return out


def test_high_error_rate_alert_reaches_webhook():
    """The demo traffic answers about 10% with 5xx: the ratio rule fires through alertd."""
    need("metricsd", "agentd", "alertd", "webhook", "demo-app")
    drive_traffic()

    def fired():
        for p in webhook_alerts():
            for a in p.get("alerts", []):
                lb = a.get("labels", {})
                if (lb.get("alertname") == "HighErrorRate" and lb.get("job") == "demo-app"
                        and a.get("status") == "firing"):
                    return a
        return None
    a = wait_until(fired, timeout=60, interval=1, what="HighErrorRate at the webhook")
    # the rule's annotation template ({{ $value | humanizePercentage }}) was rendered
    desc = a.get("annotations", {}).get("description", "")
    assert re.search(r"5xx ratio is [0-9.]+(e[-+]?[0-9]+)?% over", desc), desc
    print("  HighErrorRate reached the webhook: %s" % a.get("annotations", {}).get("description"),
          flush=True)


def test_service_down_alert_reaches_webhook():
    need("metricsd", "agentd", "alertd", "webhook", "node_exporter")
    # the node target must be seen up first, so the alert is about the stop below
    wait_until(lambda: promtool_instant('up{job="node"} == 1'), timeout=45, interval=1,
               what="node target up")
    rc, out = run_lab("kill", "node_exporter", "TERM")
    assert rc == 0, out
    t0 = time.time()

    def fired():
        for p in webhook_alerts():
            for a in p.get("alerts", []):
                lb = a.get("labels", {})
                if (lb.get("alertname") == "ServiceDown" and lb.get("job") == "node"
                        and a.get("status") == "firing"):
                    return p
        return None
    p = wait_until(fired, timeout=90, interval=1, what="ServiceDown for job node at the webhook")
    print("  ServiceDown reached the webhook %.1fs after the stop (receiver=%s, status=%s)"
          % (time.time() - t0, p.get("receiver"), p.get("status")), flush=True)


def count_metric_samples(at):
    # Every raw sample of the last hour: an instant range-vector query returns them as a
    # matrix. (sum(count_over_time({__name__=~".+"}[1h])) is refused by Prometheus itself:
    # dropping the names makes series collide.)
    r = promtool_instant('{__name__=~".+"}[1h]', at=at)
    return sum(len(s.get("values", [])) for s in r)


def test_kill9_keeps_acknowledged_data():
    need("metricsd", "logd", "agentd", "demo-app")
    drive_traffic()
    # data with timestamps up to t_ref was queryable (acknowledged) before the kill
    wait_until(lambda: count_metric_samples(None) > 0, timeout=45, interval=1,
               what="samples in metricsd")
    t_ref = time.time() - 2
    q_logs = '{filename=~".*app.log"}'
    m_before = count_metric_samples(t_ref)
    l_before = len(logql_range(q_logs, S["t_start"] - 60, t_ref))
    assert m_before > 0 and l_before > 0, (m_before, l_before)
    assert l_before < 5000, "too many lines for one query_range page: %d" % l_before

    for name in ("metricsd", "logd"):
        rc, out = run_lab("kill", name, "KILL")
        assert rc == 0, out
    rc, out = run_lab("up", "metricsd", "logd")
    assert rc == 0, "restart failed:\n" + out

    def same():
        m = count_metric_samples(t_ref)
        n = len(logql_range(q_logs, S["t_start"] - 60, t_ref))
        return m >= m_before and n >= l_before and (m, n)
    m_after, l_after = wait_until(same, timeout=60, interval=1,
                                  what="counts before the kill back after restart")
    print("  before kill: %d samples, %d lines; after restart: %d samples, %d lines"
          % (m_before, l_before, m_after, l_after), flush=True)
    # and the lab keeps ingesting after the restart
    t_restart = time.time()
    wait_until(lambda: promtool_instant('timestamp(up{job="demo-app"}) > %f' % t_restart),
               timeout=45, interval=1, what="new samples after restart")


if __name__ == "__main__":
    TestRun(globals()).main()
