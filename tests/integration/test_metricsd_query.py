"""metricsd PromQL API and ruler, end to end over the real protocols.

Data goes in with remote write (a hand-built prometheus.WriteRequest, snappy literal framing);
queries go out through /api/v1/query and /api/v1/query_range and through Debian's promtool.
The ruler evaluates a rule file: a recording rule must become queryable, and an alert must
reach (1) a small python HTTP receiver speaking POST /api/v2/alerts and (2) the real
prometheus-alertmanager, checked with amtool.
"""
import http.server as httpserver
import json
import os
import shutil
import struct
import subprocess
import threading
import time
import urllib.parse

from obslib import Daemon, TestRun, free_port, http, http_json, wait_until
from pbutil import fbytes, snappy_literal, uvarint  # noqa: E402


# ---- remote-write payload encoders ---------------------------------------------------------
def pb_write(series):
    out = b""
    for labels, samples in series:
        ts = b""
        for n, v in labels:
            ts += fbytes(1, fbytes(1, n) + fbytes(2, v))
        for t, v in samples:
            ts += fbytes(2, uvarint(1 << 3 | 1) + struct.pack("<d", v) + uvarint(2 << 3) + uvarint(t))
        out += fbytes(1, ts)
    return out


def push(d, series):
    st, b, _ = http("POST", d.url("/api/v1/push"), snappy_literal(pb_write(series)),
                    {"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy",
                     "X-Prometheus-Remote-Write-Version": "0.1.0"})
    assert st in (200, 204), (st, b)


NOW_S = int(time.time())
NOW = NOW_S * 1000

CONFIG = """
server:
  http_listen_address: 127.0.0.1
  http_listen_port: %(port)d
  grpc_listen_port: %(grpc)d
blocks_storage:
  tsdb:
    dir: ./tsdb
ruler:
  rule_files: [%(rules)s]
  evaluation_interval: 1s
  alertmanager_url: %(am)s
  external_url: http://metricsd.example:9090
  resend_delay: 2s
"""

RULES = """
groups:
  - name: test
    interval: 1s
    rules:
      - record: job:obs_up:sum
        expr: sum by (job) (obs_up)
      - alert: ObsInstanceUp
        expr: obs_up > 0
        for: 0s
        labels:
          severity: page
          instance_copy: "{{ $labels.instance }}"
        annotations:
          summary: "Instance {{ $labels.instance }} has value {{ $value }}"
      - alert: NeverFires
        expr: obs_up > 100
"""


def start(am_url="", workdir=None):
    port = free_port()
    d = Daemon("metricsd", None, http_port=port, workdir=workdir)
    rules = os.path.join(d.dir, "rules.yml")
    with open(rules, "w") as f:
        f.write(RULES)
    d.config = CONFIG % {"port": port, "grpc": free_port(), "rules": os.path.join(d.dir, "*.yml"),
                         "am": am_url}
    return d.start()


def load(d):
    """Two targets of job "api", five minutes of samples at 15s."""
    series = []
    for inst, val in (("a:1", 1.0), ("b:1", 2.0)):
        samples = [(NOW - 300000 + i * 15000, val) for i in range(21)]
        series.append(([("__name__", "obs_up"), ("instance", inst), ("job", "api")], samples))
    counter = [(NOW - 300000 + i * 15000, float(i * 30)) for i in range(21)]
    series.append(([("__name__", "obs_req_total"), ("job", "api")], counter))
    push(d, series)


def q(d, path, **params):
    return http_json("GET", d.url(path + "?" + urllib.parse.urlencode(params)))


# ---- tests -----------------------------------------------------------------------------------
def test_instant_and_range_queries():
    d = start()
    try:
        load(d)
        st, j = q(d, "/api/v1/query", query="obs_up", time=str(NOW_S))
        assert st == 200 and j["status"] == "success", (st, j)
        assert j["data"]["resultType"] == "vector"
        res = sorted(j["data"]["result"], key=lambda r: r["metric"]["instance"])
        assert [r["metric"]["instance"] for r in res] == ["a:1", "b:1"]
        assert res[0]["metric"]["__name__"] == "obs_up"
        assert res[0]["value"] == [NOW_S, "1"] and res[1]["value"][1] == "2", res

        # rate over a counter growing 30 per 15s = 2/s; name dropped
        st, j = q(d, "/api/v1/query", query="rate(obs_req_total[1m])", time=str(NOW_S))
        assert st == 200, j
        assert j["data"]["result"][0]["metric"] == {"job": "api"}
        assert abs(float(j["data"]["result"][0]["value"][1]) - 2.0) < 1e-9, j

        # aggregation + vector matching + float time
        st, j = q(d, "/api/v1/query", query="sum by (job) (obs_up) / on(job) count by (job) (obs_up)",
                  time="%d.5" % NOW_S)
        assert st == 200 and j["data"]["result"][0]["value"] == [NOW_S + 0.5, "1.5"], j

        # scalar and string results
        st, j = q(d, "/api/v1/query", query="1+1", time="100")
        assert j["data"] == {"resultType": "scalar", "result": [100, "2"]}, j
        st, j = q(d, "/api/v1/query", query='"hello"', time="100.25")
        assert j["data"] == {"resultType": "string", "result": [100.25, "hello"]}, j

        # range vector at the top of an instant query -> matrix
        st, j = q(d, "/api/v1/query", query="obs_up{instance='a:1'}[1m]", time=str(NOW_S))
        assert j["data"]["resultType"] == "matrix" and len(j["data"]["result"][0]["values"]) == 4, j

        # range query with a duration step, POST form body
        body = urllib.parse.urlencode({"query": "sum(obs_up)", "start": str(NOW_S - 120),
                                       "end": str(NOW_S), "step": "1m"})
        st, b, _ = http("POST", d.url("/api/v1/query_range"), body,
                        {"Content-Type": "application/x-www-form-urlencoded"})
        j = json.loads(b)
        assert st == 200 and j["data"]["resultType"] == "matrix", j
        assert j["data"]["result"][0]["values"] == [[NOW_S - 120, "3"], [NOW_S - 60, "3"],
                                                    [NOW_S, "3"]], j

        # errors in Prometheus' shape
        st, j = q(d, "/api/v1/query", query="sum(obs_up")
        assert st == 400 and j["errorType"] == "bad_data" and "parse error" in j["error"], j
        st, j = q(d, "/api/v1/query", query="obs_up", time="yesterday")
        assert st == 400 and j["errorType"] == "bad_data", j
        st, j = q(d, "/api/v1/query_range", query="obs_up", start="10", end="0", step="1")
        assert st == 400 and j["errorType"] == "bad_data", j
        st, j = q(d, "/api/v1/query_range", query="obs_up[5m]", start="0", end="10", step="1")
        assert st == 400 and "range query" in j["error"], j
        st, j = q(d, "/api/v1/query", query='label_replace(obs_up, "x", "$1", "job", "(")')
        assert st == 422 and j["errorType"] == "execution", (st, j)
        st, j = q(d, "/api/v1/query", query="obs_up * on() group_left obs_up", time=str(NOW_S))
        assert st == 422 and "many-to-many" in j["error"], (st, j)
        # still serving after errors
        st, j = q(d, "/api/v1/query", query="vector(1)")
        assert st == 200, j
    finally:
        d.cleanup()


def test_promtool_against_metricsd():
    d = start()
    try:
        load(d)
        out = subprocess.run(["promtool", "query", "instant", "--time=%d" % NOW_S, d.url(),
                              'sum by (job) (obs_up)'], capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        assert '{job="api"} => 3 @[%d]' % NOW_S in out.stdout, out.stdout
        out = subprocess.run(["promtool", "query", "range", "--start=%d" % (NOW_S - 60),
                              "--end=%d" % NOW_S, "--step=30s", d.url(), 'obs_up{instance="b:1"}'],
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        assert out.stdout.count("2 @[") == 3, out.stdout
        out = subprocess.run(["promtool", "query", "instant", d.url(), "sum("],
                             capture_output=True, text=True, timeout=30)
        assert out.returncode != 0 and "parse error" in (out.stderr + out.stdout), out
    finally:
        d.cleanup()


class Receiver:
    """A stand-in Alertmanager: records every POST /api/v2/alerts body."""

    def __init__(self):
        self.posts = []
        outer = self

        class H(httpserver.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                outer.posts.append((self.path, json.loads(self.rfile.read(n))))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *a):
                pass

        self.srv = httpserver.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


def test_ruler_records_and_alerts_to_receiver():
    rcv = Receiver()
    d = start(am_url="http://127.0.0.1:%d" % rcv.port)
    try:
        # fresh samples so the rules see them at "now"
        now = int(time.time() * 1000)
        push(d, [([("__name__", "obs_up"), ("instance", "a:1"), ("job", "api")],
                  [(now - 1000, 1.0)])])

        def got_alert():
            for path, alerts in rcv.posts:
                for a in alerts:
                    if a["labels"].get("alertname") == "ObsInstanceUp":
                        return path, a
            return None
        path, a = wait_until(got_alert, timeout=20, what="alert at receiver")
        assert path == "/api/v2/alerts"
        assert a["labels"] == {"alertname": "ObsInstanceUp", "instance": "a:1", "job": "api",
                               "severity": "page", "instance_copy": "a:1"}, a
        assert a["annotations"] == {"summary": "Instance a:1 has value 1"}, a
        assert a["startsAt"].endswith("Z") and a["endsAt"] > a["startsAt"], a
        assert a["generatorURL"].startswith("http://metricsd.example:9090/graph?g0.expr=obs_up"), a

        # resent every resend_delay while firing
        n0 = len(rcv.posts)
        wait_until(lambda: len(rcv.posts) > n0, timeout=10, what="resend")

        # /api/v1/alerts and /api/v1/rules in Prometheus' shape
        st, j = http_json("GET", d.url("/api/v1/alerts"))
        assert st == 200 and j["status"] == "success", j
        al = j["data"]["alerts"]
        assert len(al) == 1 and al[0]["state"] == "firing" and al[0]["value"] == "1.0000000000e+00", al
        st, j = http_json("GET", d.url("/api/v1/rules"))
        g = j["data"]["groups"][0]
        assert g["name"] == "test" and g["interval"] == 1, g
        types = [(r["name"], r["type"], r.get("state")) for r in g["rules"]]
        assert types == [("job:obs_up:sum", "recording", None), ("ObsInstanceUp", "alerting", "firing"),
                         ("NeverFires", "alerting", "inactive")], types
        assert all(r["health"] == "ok" for r in g["rules"]), g

        # the recording rule wrote back into the head
        def recorded():
            st, j = q(d, "/api/v1/query", query="job:obs_up:sum")
            return st == 200 and j["data"]["result"]
        res = wait_until(recorded, timeout=10, what="recorded series")
        assert res[0]["metric"] == {"__name__": "job:obs_up:sum", "job": "api"}, res

        # the series ends (stale marker): the alert resolves and a resolved notice is sent
        stale = struct.unpack("<d", struct.pack("<Q", 0x7ff0000000000002))[0]
        push(d, [([("__name__", "obs_up"), ("instance", "a:1"), ("job", "api")],
                  [(int(time.time() * 1000), stale)])])

        def resolved():
            for _, alerts in rcv.posts:
                for x in alerts:
                    if x["labels"].get("alertname") == "ObsInstanceUp" and x["endsAt"] < \
                            time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() + 5)) and \
                            x["endsAt"] >= a["startsAt"]:
                        return x
            return None
        wait_until(resolved, timeout=15, what="resolved notification")
    finally:
        d.cleanup()
        rcv.close()


def test_ruler_to_real_alertmanager():
    am_bin = shutil.which("prometheus-alertmanager") or "/usr/bin/prometheus-alertmanager"
    if not os.path.exists(am_bin):
        print("skip: prometheus-alertmanager not installed")
        return
    am_port = free_port()
    am = Daemon("alertmanager", None, http_port=am_port)
    cfg = os.path.join(am.dir, "am.yml")
    with open(cfg, "w") as f:
        f.write("route:\n  receiver: 'null'\nreceivers:\n  - name: 'null'\n")
    log = open(os.path.join(am.dir, "am.log"), "wb")
    proc = subprocess.Popen([am_bin, "--config.file=" + cfg, "--storage.path=" + am.dir,
                             "--web.listen-address=127.0.0.1:%d" % am_port,
                             "--cluster.listen-address="],
                            stdout=log, stderr=subprocess.STDOUT)
    d = None
    try:
        wait_until(lambda: http("GET", am.url("/-/ready"), timeout=1)[0] == 200, timeout=20,
                   what="alertmanager ready")
        d = start(am_url=am.url())
        push(d, [([("__name__", "obs_up"), ("instance", "z:9"), ("job", "api")],
                  [(int(time.time() * 1000) - 500, 5.0)])])

        def listed():
            out = subprocess.run(["amtool", "alert", "query", "--alertmanager.url=" + am.url(),
                                  "-o", "json", "alertname=ObsInstanceUp"],
                                 capture_output=True, text=True, timeout=10)
            if out.returncode != 0:
                return None
            alerts = json.loads(out.stdout or "[]")
            return alerts or None
        alerts = wait_until(listed, timeout=30, what="alert visible through amtool")
        assert alerts[0]["labels"]["instance"] == "z:9", alerts
        assert alerts[0]["labels"]["severity"] == "page", alerts
        assert alerts[0]["annotations"]["summary"] == "Instance z:9 has value 5", alerts
    finally:
        if d:
            d.cleanup()
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        shutil.rmtree(am.dir, ignore_errors=True)


# ---- per-query limits ------------------------------------------------------------------------
LIMITS_CONFIG = """
server:
  http_listen_address: 127.0.0.1
  http_listen_port: %(port)d
  grpc_listen_port: %(grpc)d
blocks_storage:
  tsdb:
    dir: ./tsdb
limits:
  max_fetched_series_per_query: %(series)d
querier:
  max_concurrent: %(conc)d
  max_queue_length: %(queue)d
  max_samples: %(samples)d
  max_estimated_memory_per_query: %(mem)d
  max_regex_length: 200
"""

# ~4M / ~25M inner evaluations: busy for a while, no data needed.
# Legitimately heavy queries (no data needed): the inner subquery is evaluated once over its
# span, then every point of the outer one sorts a window of range/1s values, so the work is
# about range^2 log(range): ~1 s and ~5 s here without sanitizers.
SLOW = "quantile_over_time(0.5, quantile_over_time(0.5, vector(time() % 97)[5000s:1s])[5000s:1s])"
VERY_SLOW = ("quantile_over_time(0.5, quantile_over_time(0.5, vector(time() % 97)[10000s:1s])"
             "[10000s:1s])")


def start_limited(series=0, conc=2, queue=16, samples=50000000, mem=0):
    port = free_port()
    d = Daemon("metricsd", None, http_port=port)
    d.config = LIMITS_CONFIG % {"port": port, "grpc": free_port(), "series": series,
                                "conc": conc, "queue": queue, "samples": samples, "mem": mem}
    return d.start()


def timed_q(d, path, http_timeout=60, **params):
    t0 = time.monotonic()
    st, b, _ = http("GET", d.url(path + "?" + urllib.parse.urlencode(params)),
                    timeout=http_timeout)
    return st, json.loads(b), time.monotonic() - t0


def assert_serving(d):
    st, j = q(d, "/api/v1/query", query="count(obs_up)", time=str(NOW_S))
    assert st == 200 and j["data"]["result"][0]["value"][1] == "2", (st, j)


def test_limit_samples_series_memory():
    d = start_limited(series=1, samples=30, mem=200000)
    try:
        load(d)
        # 21 samples loaded + 21 points produced > 30: Prometheus' wording, 422
        st, j = q(d, "/api/v1/query_range", query="obs_req_total", start=str(NOW_S - 300),
                  end=str(NOW_S), step="15")
        assert st == 422 and j["errorType"] == "execution", (st, j)
        assert j["error"] == ("query processing would load too many samples into memory in "
                              "query execution"), j
        # one series is fine, two are over max_fetched_series_per_query (Mimir's message)
        st, j = q(d, "/api/v1/query", query="obs_up{instance='a:1'}", time=str(NOW_S))
        assert st == 200 and len(j["data"]["result"]) == 1, (st, j)
        st, j = q(d, "/api/v1/query", query="obs_up", time=str(NOW_S))
        assert st == 422 and j["errorType"] == "execution", (st, j)
        assert j["error"].startswith("the query exceeded the maximum number of series (limit: 1 "
                                     "series) (err-mimir-max-series-per-query). Consider "
                                     "reducing the time range"), j
        assert "configure -querier.max-fetched-series-per-query" in j["error"], j
        st, j = q(d, "/api/v1/query", query="obs_up{instance='b:1'}", time=str(NOW_S))
        assert st == 200 and j["data"]["result"][0]["value"][1] == "2", (st, j)
    finally:
        d.cleanup()
    d = start_limited(mem=200000)
    try:
        load(d)
        # estimated memory: a 2h:1s subquery keeps 7200 points per step
        st, j = q(d, "/api/v1/query", query="sum_over_time(vector(1)[2h:1s])", time="10000")
        assert st == 422, (st, j)
        assert j["error"].startswith("the query exceeded the maximum allowed estimated amount "
                                     "of memory consumed by a single query (limit: 200000 "
                                     "bytes) (err-mimir-max-estimated-memory-consumption-per-"
                                     "query)"), j
        assert "-querier.max-estimated-memory-consumption-per-query" in j["error"], j
        assert_serving(d)
    finally:
        d.cleanup()


def test_limit_timeout_resolution_and_regex():
    d = start_limited()
    try:
        load(d)
        push(d, [([("__name__", "obs_up"), ("instance", "c:1"), ("job", "x"),
                   ("path", "a" * 40 + "!")], [(NOW - 1000, 1.0)])])
        # timeout parameter: 503 timeout in Prometheus' shape, quickly
        st, j, dt = timed_q(d, "/api/v1/query", query=VERY_SLOW, time="10000", timeout="300ms")
        assert st == 503 and j["errorType"] == "timeout", (st, j)
        assert j["error"] == "query timed out in expression evaluation", j
        assert dt < 5, dt
        st, j = q(d, "/api/v1/query", query="count(obs_up{job='api'})", time=str(NOW_S))
        assert st == 200 and j["data"]["result"][0]["value"][1] == "2", (st, j)
        # range query resolution (400, Prometheus' message) and subquery resolution (422)
        st, j = q(d, "/api/v1/query_range", query="obs_up", start="0", end="100000", step="1")
        assert st == 400 and j["error"] == ("exceeded maximum resolution of 11,000 points per "
                                            "timeseries. Try decreasing the query resolution "
                                            "(?step=XX)"), (st, j)
        st, j = q(d, "/api/v1/query", query="max_over_time(vector(1)[1d:1s])", time="100000")
        assert st == 422 and "subquery exceeded maximum resolution of 11,000 points" in j["error"], \
            (st, j)
        # catastrophic backtracking on a stored value is refused, not run
        t0 = time.monotonic()
        st, j = q(d, "/api/v1/query", query='obs_up{path=~"(a|aa)+"}', time=str(NOW_S))
        assert st == 422 and "catastrophic backtracking" in j["error"], (st, j)
        assert time.monotonic() - t0 < 5
        st, j = q(d, "/api/v1/query", query='label_replace(obs_up, "p", "$1", "path", "((a|aa)+)")',
                  time=str(NOW_S))
        assert st == 422 and "backtracking limit" in j["error"], (st, j)
        # an ordinary regex over the same label still works
        st, j = q(d, "/api/v1/query", query='obs_up{path=~"a+!"}', time=str(NOW_S))
        assert st == 200 and len(j["data"]["result"]) == 1, (st, j)
        # regex length limit (max_regex_length: 200) -> 400 parse-time refusal
        st, j = q(d, "/api/v1/query", query='obs_up{job=~"%s"}' % ("x" * 300))
        assert st == 400 and "regular expression too long" in j["error"], (st, j)
        assert_serving_api(d)
    finally:
        d.cleanup()


def assert_serving_api(d):
    st, j = q(d, "/api/v1/query", query="count(obs_up{job='api'})", time=str(NOW_S))
    assert st == 200 and j["data"]["result"][0]["value"][1] == "2", (st, j)


def test_limit_concurrency_queue_and_cancel():
    d = start_limited(conc=1, queue=1)
    try:
        load(d)
        results = {}

        def run(name, query, timeout="60s"):
            try:
                results[name] = timed_q(d, "/api/v1/query", query=query, time="10000",
                                        timeout=timeout)
            except Exception as e:  # noqa: BLE001 - reported below
                results[name] = e

        # one running, one queued, the third refused at once with 503
        ths = [threading.Thread(target=run, args=("run", SLOW)),
               threading.Thread(target=run, args=("queued", "vector(7)"))]
        ths[0].start()
        time.sleep(0.3)
        ths[1].start()
        time.sleep(0.3)
        st, j, dt = timed_q(d, "/api/v1/query", query="vector(8)")
        assert st == 503 and j["errorType"] == "unavailable", (st, j)
        assert "too many outstanding requests" in j["error"] and dt < 2, (j, dt)
        # the loop keeps serving non-query endpoints meanwhile
        t0 = time.monotonic()
        st, _, _ = http("GET", d.url("/api/v1/labels"), timeout=5)
        assert st == 200 and time.monotonic() - t0 < 1
        for t in ths:
            t.join(60)
        assert results["run"][0] == 200, results
        assert results["queued"][0] == 200, results
        assert results["queued"][1]["data"]["result"][0]["value"][1] == "7", results
        assert results["run"][2] >= results["queued"][2] - 0.5, results

        # client disconnect cancels a running query: the single worker is free again at once
        import socket
        s = socket.create_connection(("127.0.0.1", d.http_port))
        path = "/api/v1/query?" + urllib.parse.urlencode({"query": VERY_SLOW, "time": "10000"})
        s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path).encode())
        time.sleep(0.5)
        s.close()
        time.sleep(0.3)
        st, j, dt = timed_q(d, "/api/v1/query", query="vector(9)", timeout="60s")
        assert st == 200 and j["data"]["result"][0]["value"][1] == "9", (st, j)
        assert dt < 3, "worker was not freed by the disconnect: %.1fs" % dt
        # a queued query whose client leaves frees its queue slot too
        ths = [threading.Thread(target=run, args=("run2", SLOW))]
        ths[0].start()
        time.sleep(0.3)
        s = socket.create_connection(("127.0.0.1", d.http_port))
        s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path).encode())
        time.sleep(0.3)
        s.close()
        time.sleep(0.4)
        run("queued2", "vector(10)")
        assert results["queued2"][0] == 200, results
        ths[0].join(60)
        assert results["run2"][0] == 200, results
        assert_serving(d)
        assert d.alive()
    finally:
        d.cleanup()


TestRun(globals()).main()
