"""test_agentd -- agentd tailing files into logd and scraping node_exporter into metricsd.

Logs: agentd tails a temp directory's *.log into the real logd (or, when $OBS_BIN has no
logd, a Python receiver that decodes snappy + protobuf). The test appends lines, rotates the
file (rename + create, then copytruncate), restarts agentd in between, and asserts every line
arrived exactly once. Also: lines written while logd is down are delivered after it comes back.
Metrics: agentd scrapes the real prometheus-node-exporter and remote-writes to metricsd;
up{job="node"} must show up in /api/v1/series.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(__file__))
from obslib import BIN, Daemon, TestRun, free_port, http, wait_until  # noqa: E402

NODE_EXPORTER = "/usr/bin/prometheus-node-exporter"


def have(name):
    return os.path.exists(os.path.join(BIN, name))


def start_logd():
    port = free_port()
    return Daemon("logd", "server: {http_listen_port: %d}\n" % port, http_port=port).start()


def logd_lines(logd, selector):
    """All lines for selector over the last hour, oldest first (logd's query_range)."""
    now = time.time_ns()
    q = urllib.parse.urlencode({"query": selector, "start": str(now - 3600 * 10**9),
                                "end": str(now + 60 * 10**9), "limit": "5000",
                                "direction": "forward"})
    st, body, _ = http("GET", logd.url("/loki/api/v1/query_range?" + q))
    assert st == 200, (st, body[:300])
    doc = json.loads(body)
    out = []
    for s in doc["data"]["result"]:
        for ts, line in s["values"]:
            out.append((int(ts), line, s["stream"]))
    out.sort()
    return out


def agentd_config(port, logd_url, logdir, posfile, extra=""):
    return """
server: {http_listen_port: %d}
positions: {filename: %s, sync_period: 500ms}
clients:
  - url: %s/loki/api/v1/push
    batchwait: 200ms
    batchsize: 65536
    backoff_config: {min_period: 100ms, max_period: 1s}
scrape_configs:
  - job_name: demo
    static_configs:
      - targets: [localhost]
        labels: {job: demo, env: test, __path__: "%s/*.log"}
%s""" % (port, posfile, logd_url, logdir, extra)


def start_agentd(logd_url, logdir, posfile, port=None, extra=""):
    port = port or free_port()
    a = Daemon("agentd", agentd_config(port, logd_url, logdir, posfile, extra), http_port=port)
    return a.start()


def append(path, lines):
    with open(path, "a") as f:
        for ln in lines:
            f.write(ln + "\n")


def wait_lines(logd, expected, what):
    def got():
        lines = [l for _, l, _ in logd_lines(logd, '{job="demo"}')]
        return lines if len(lines) >= len(expected) else None
    lines = wait_until(got, timeout=20, what=what)
    time.sleep(0.8)  # let any duplicate arrive before comparing
    lines = [l for _, l, _ in logd_lines(logd, '{job="demo"}')]
    assert sorted(lines) == sorted(expected), "missing=%r extra=%r" % (
        sorted(set(expected) - set(lines))[:5], len(lines) - len(expected))
    assert len(lines) == len(set(lines)), "duplicates"


def test_tail_rotate_restart_exactly_once():
    logd = start_logd()
    tmp = tempfile.mkdtemp(prefix="agentd-logs-")
    posfile = os.path.join(tmp, "state", "positions.yaml")
    app = os.path.join(tmp, "app.log")
    agent = None
    try:
        expected = []
        first = ["first-%03d" % i for i in range(50)]
        append(app, first)
        expected += first
        port = free_port()
        agent = start_agentd(logd.url(), tmp, posfile, port)
        wait_lines(logd, expected, "initial lines")
        streams = logd_lines(logd, '{job="demo"}')
        st = streams[0][2]
        assert st.get("filename") == app and st.get("env") == "test", st

        # appended lines, including a partial line finished later
        more = ["more-%03d" % i for i in range(30)]
        append(app, more)
        with open(app, "a") as f:
            f.write("partial-")
            f.flush()
            time.sleep(0.6)
            f.write("done\n")
        expected += more + ["partial-done"]
        wait_lines(logd, expected, "appended lines")

        # rename rotation: old file gets a last line, then a new file appears
        append(app, ["before-rotate"])
        os.rename(app, app + ".1")
        append(app, ["after-rotate-%d" % i for i in range(5)])
        expected += ["before-rotate"] + ["after-rotate-%d" % i for i in range(5)]
        wait_lines(logd, expected, "lines across rename rotation")

        # restart: lines written while agentd is down arrive once, nothing repeats
        assert agent.stop() == 0, agent.tail()
        down = ["while-down-%d" % i for i in range(10)]
        append(app, down)
        expected += down
        agent = start_agentd(logd.url(), tmp, posfile, port)
        wait_lines(logd, expected, "lines after restart")

        # copytruncate: content copied away, file truncated, new lines from offset 0
        shutil.copy(app, app + ".2")
        with open(app, "r+") as f:
            f.truncate(0)
        time.sleep(0.6)
        trunc = ["after-truncate-%d" % i for i in range(7)]
        append(app, trunc)
        expected += trunc
        wait_lines(logd, expected, "lines after copytruncate")

        # second restart after the truncation: still exactly once
        assert agent.stop() == 0, agent.tail()
        agent = start_agentd(logd.url(), tmp, posfile, port)
        append(app, ["final"])
        expected += ["final"]
        wait_lines(logd, expected, "final line")
        with open(posfile) as f:
            pos = f.read()
        assert app in pos, pos
        st, body, _ = http("GET", agent.url("/metrics"))
        assert st == 200 and b"promtail_sent_entries_total" in body
    finally:
        if agent:
            agent.cleanup()
        logd.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


def test_logd_down_then_up():
    """Lines read while logd is unreachable are retried and delivered once it is up."""
    tmp = tempfile.mkdtemp(prefix="agentd-down-")
    posfile = os.path.join(tmp, "positions.yaml")
    logd_port = free_port()
    agent = start_agentd("http://127.0.0.1:%d" % logd_port, tmp, posfile)
    logd = None
    try:
        lines = ["queued-%d" % i for i in range(20)]
        append(os.path.join(tmp, "x.log"), lines)
        time.sleep(1.5)
        logd = Daemon("logd", "server: {http_listen_port: %d}\n" % logd_port,
                      http_port=logd_port).start()
        wait_lines(logd, lines, "lines after logd came up")
    finally:
        agent.cleanup()
        if logd:
            logd.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


def test_scrape_node_exporter_remote_write():
    if not os.path.exists(NODE_EXPORTER):
        print("skip: no node exporter")
        return
    mport = free_port()
    metricsd = Daemon("metricsd", "server: {http_listen_port: %d}\n" % mport,
                      http_port=mport).start()
    ne_port = free_port()
    ne = subprocess.Popen([NODE_EXPORTER, "--web.listen-address=127.0.0.1:%d" % ne_port],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    aport = free_port()
    cfg = """
server: {http_listen_port: %d}
metrics:
  global: {scrape_interval: 1s, scrape_timeout: 1s, external_labels: {cluster: lab}}
  scrape_configs:
    - job_name: node
      static_configs: [{targets: ["127.0.0.1:%d"], labels: {team: infra}}]
    - job_name: broken
      static_configs: [{targets: ["127.0.0.1:%d"]}]
  remote_write: [{url: "http://127.0.0.1:%d/api/v1/push"}]
""" % (aport, ne_port, free_port(), mport)
    agent = Daemon("agentd", cfg, http_port=aport)
    try:
        wait_until(lambda: http("GET", "http://127.0.0.1:%d/metrics" % ne_port)[0] == 200,
                   what="node exporter")
        agent.start()

        def series(match):
            q = urllib.parse.urlencode({"match[]": match})
            st, body, _ = http("GET", metricsd.url("/api/v1/series?" + q))
            return json.loads(body)["data"] if st == 200 else None
        up = wait_until(lambda: series('up{job="node"}'), timeout=20, what='up{job="node"}')
        lab = up[0]
        assert lab["instance"] == "127.0.0.1:%d" % ne_port and lab["cluster"] == "lab", lab
        assert lab["team"] == "infra", lab
        assert wait_until(lambda: series('node_cpu_seconds_total{job="node"}'), what="node cpu")
        assert wait_until(lambda: series('up{job="broken"}'), what="up for failing target")

        def targets():
            st, body, _ = http("GET", agent.url("/api/v1/targets"))
            t = {x["scrapePool"]: x for x in json.loads(body)["data"]["activeTargets"]}
            return t if t["node"]["health"] == "up" and t["broken"]["health"] == "down" else None
        wait_until(targets, what="targets health")
    finally:
        agent.cleanup()
        ne.terminate()
        ne.wait(timeout=10)
        metricsd.cleanup()


TestRun(globals()).main()
