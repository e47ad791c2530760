"""Integration tests for alertd: the real binary, the real amtool, a webhook receiver in the
test, and a side check against the real Alertmanager (prometheus-alertmanager 0.25).

Run: OBS_BIN=$PWD/build/<dir>/bin python3 tests/integration/test_alertd.py [test_name ...]
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from obslib import BIN, Daemon, TestRun, free_port, http, http_json, wait_until  # noqa: E402

AMTOOL = shutil.which("amtool")
REAL_AM = shutil.which("prometheus-alertmanager")
CONFORMANCE = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "conformance",
                           "alertmanager")


class Hook:
    """A webhook receiver on 127.0.0.1: records (arrival time, path, JSON body)."""

    def __init__(self, status=200):
        self.calls = []
        self.status = status
        self.lock = threading.Lock()
        hook = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                with hook.lock:
                    try:
                        hook.calls.append((time.time(), self.path, json.loads(body)))
                    except ValueError:
                        hook.calls.append((time.time(), self.path, body))
                    st = hook.status
                self.send_response(st)
                self.end_headers()

            def log_message(self, *a):
                pass

        self.port = free_port()
        self.srv = ThreadingHTTPServer(("127.0.0.1", self.port), H)
        self.th = threading.Thread(target=self.srv.serve_forever, daemon=True)
        self.th.start()

    def url(self, path="/hook"):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def bodies(self, path=None):
        with self.lock:
            return [b for _, p, b in self.calls if path is None or p == path]

    def stop(self):
        self.srv.shutdown()
        self.srv.server_close()


def config(hook, group_wait="1s", group_interval="2s", repeat="1h", extra_routes="",
           inhibit="", send_resolved="true", extra_receivers=""):
    return """global:
  resolve_timeout: 5m
route:
  receiver: hook
  group_by: ['alertname']
  group_wait: %s
  group_interval: %s
  repeat_interval: %s
%s
receivers:
  - name: hook
    webhook_configs:
      - url: %s
        send_resolved: %s
%s
%s
""" % (group_wait, group_interval, repeat, extra_routes, hook.url(), send_resolved,
       extra_receivers, inhibit)


def start(cfg, workdir=None, port=None):
    port = port or free_port()
    d = Daemon("alertd", cfg, http_port=port, workdir=workdir,
               args=["--web.listen-address=127.0.0.1:%d" % port, "--storage.path=data",
                     "--log.level=debug"])
    return d.start(ready_path="/-/ready")


def amtool(d, *args, check=True):
    r = subprocess.run([AMTOOL, "--alertmanager.url=" + d.url()] + list(args),
                       capture_output=True, text=True, timeout=30)
    if check and r.returncode != 0:
        raise AssertionError("amtool %s failed: %s %s" % (args, r.stdout, r.stderr))
    return r


def post_alerts(d, alerts):
    return http("POST", d.url("/api/v2/alerts"), json.dumps(alerts),
                {"Content-Type": "application/json"})


def rfc3339(dt):
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def now_utc():
    return datetime.now(timezone.utc)


def check_config_with_amtool(text):
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
        f.write(text)
    try:
        r = subprocess.run([AMTOOL, "check-config", f.name], capture_output=True, text=True,
                           timeout=30)
        assert r.returncode == 0, r.stdout + r.stderr
    finally:
        os.unlink(f.name)


# ------------------------------------------------------------------------------------------

def test_config_amtool_check_and_conformance_files():
    hook = Hook()
    try:
        check_config_with_amtool(config(hook))
        check_config_with_amtool(config(hook, inhibit=INHIBIT))
    finally:
        hook.stop()
    names = sorted(n for n in os.listdir(CONFORMANCE) if n.startswith("conf."))
    assert names, "no conformance configs found in %s" % CONFORMANCE
    for n in names:
        with open(os.path.join(CONFORMANCE, n)) as f:
            d = start(f.read())
        try:
            st, body = http_json("GET", d.url("/api/v2/status"))
            assert st == 200 and body["cluster"]["status"] == "disabled", body
            assert "route:" in body["config"]["original"]
        finally:
            d.cleanup()


def test_lab_config_loads():
    path = os.path.join(os.path.dirname(__file__), "..", "..", "deploy", "local", "alertd.yml")
    if not os.path.exists(path):
        print("skip: no deploy/local/alertd.yml")
        return
    port = free_port()
    d = Daemon("alertd", None, http_port=port,
               args=["-config.file=" + os.path.abspath(path), "-config.expand-env",
                     "--storage.path=data"],
               env={"LAB_PORT_ALERTD": str(port), "LAB_GROUP_WAIT": "1s"})
    try:
        d.start(ready_path="/-/ready")
        st, rcv = http_json("GET", d.url("/api/v2/receivers"))
        assert st == 200 and rcv == [{"name": "webhook"}], rcv
        # config.original is Alertmanager YAML (expanded, without `server:`): amtool reads it
        r = amtool(d, "config", "routes")
        assert "receiver: webhook" in r.stdout, r.stdout
        st, status = http_json("GET", d.url("/api/v2/status"))
        assert "server:" not in status["config"]["original"]
        assert "${" not in status["config"]["original"]
        check_config_with_amtool(status["config"]["original"])
    finally:
        d.cleanup()


def test_reload_and_metrics():
    hook = Hook()
    cfg = config(hook)
    d = start(cfg)
    try:
        post_alerts(d, [{"labels": {"alertname": "Reload"}}])
        wait_until(lambda: hook.bodies(), timeout=10, what="webhook")
        path = os.path.join(d.dir, "config.yaml")
        with open(path, "w") as f:
            f.write(cfg.replace("receivers:\n", "receivers:\n  - name: extra\n"))
        st, _, _ = http("POST", d.url("/-/reload"))
        assert st == 200
        st, rcv = http_json("GET", d.url("/api/v2/receivers"))
        assert rcv == [{"name": "extra"}, {"name": "hook"}], rcv
        st, alerts = http_json("GET", d.url("/api/v2/alerts"))
        assert alerts[0]["receivers"] == [{"name": "hook"}]
        time.sleep(1.5)  # groups were rebuilt: the nflog keeps them from re-sending
        assert len(hook.bodies()) == 1, hook.bodies()
        with open(path, "a") as f:
            f.write("bogus: 1\n")
        st, body, _ = http("POST", d.url("/-/reload"))
        assert st == 500 and b"config.yaml:" in body and b"bogus" in body, body
        st, rcv = http_json("GET", d.url("/api/v2/receivers"))
        assert rcv == [{"name": "extra"}, {"name": "hook"}], rcv  # old config kept
        st, body, _ = http("GET", d.url("/metrics"))
        text = body.decode()
        assert 'alertmanager_alerts_received_total{status="firing"} 1' in text, text
        assert 'alertmanager_notifications_total{integration="webhook"} 1' in text, text
        assert d.alive()
    finally:
        d.cleanup()
        hook.stop()


def test_config_errors_have_position():
    bad = "route:\n  receiver: a\n  group_wiat: 1s\nreceivers:\n  - name: a\n"
    d = Daemon("alertd", bad, args=["--web.listen-address=127.0.0.1:%d" % free_port()])
    try:
        d.start(wait_ready=False)
        rc = d.proc.wait(timeout=10)
        assert rc == 1, rc
        log = d.tail()
        assert "config.yaml:3:3: group_wiat" in log, log
    finally:
        d.cleanup()
    bad = "route:\n  receiver: nobody\nreceivers:\n  - name: a\n"
    d = Daemon("alertd", bad, args=["--web.listen-address=127.0.0.1:%d" % free_port()])
    try:
        d.start(wait_ready=False)
        assert d.proc.wait(timeout=10) == 1
        assert 'config.yaml:2:3: receiver: undefined receiver "nobody"' in d.tail(), d.tail()
    finally:
        d.cleanup()


def test_amtool_alerts_group_wait_and_webhook_payload():
    hook = Hook()
    d = start(config(hook))
    try:
        t0 = time.time()
        amtool(d, "alert", "add", "alertname=Grouped", "severity=crit", "instance=a",
               "--annotation=summary=first")
        amtool(d, "alert", "add", "alertname=Grouped", "severity=crit", "instance=b",
               "--annotation=summary=second")
        r = amtool(d, "alert", "query", "alertname=Grouped")
        assert r.stdout.count("Grouped") == 2, r.stdout
        wait_until(lambda: hook.bodies(), timeout=10, what="webhook")
        first_at = hook.calls[0][0]
        assert first_at - t0 >= 0.9, "group_wait not respected: %.2fs" % (first_at - t0)
        body = hook.bodies()[0]
        assert list(body.keys()) == ["receiver", "status", "alerts", "groupLabels",
                                     "commonLabels", "commonAnnotations", "externalURL",
                                     "version", "groupKey", "truncatedAlerts"], body.keys()
        assert body["version"] == "4" and body["status"] == "firing"
        assert body["receiver"] == "hook"
        assert body["groupKey"] == '{}:{alertname="Grouped"}', body["groupKey"]
        assert body["groupLabels"] == {"alertname": "Grouped"}
        assert body["commonLabels"] == {"alertname": "Grouped", "severity": "crit"}
        assert body["commonAnnotations"] == {}
        assert body["truncatedAlerts"] == 0
        assert len(body["alerts"]) == 2, body
        a = body["alerts"][0]
        assert list(a.keys()) == ["status", "labels", "annotations", "startsAt", "endsAt",
                                  "generatorURL", "fingerprint"], a.keys()
        assert a["status"] == "firing" and a["endsAt"] == "0001-01-01T00:00:00Z"
        st, api = http_json("GET", d.url("/api/v2/alerts?filter=alertname%3D%22Grouped%22"))
        assert st == 200 and len(api) == 2
        fps = sorted(x["fingerprint"] for x in api)
        assert fps == sorted(x["fingerprint"] for x in body["alerts"])
        for x in api:
            assert x["status"] == {"state": "active", "silencedBy": [], "inhibitedBy": [],
                                   "mutedBy": []}, x["status"]
            assert x["receivers"] == [{"name": "hook"}]
            for k in ("startsAt", "endsAt", "updatedAt", "annotations", "labels"):
                assert k in x
        # nothing changed: no second notification within group_interval (repeat is 1h)
        time.sleep(2.5)
        assert len(hook.bodies()) == 1, hook.bodies()
        # a new alert in the group: notified after group_interval
        amtool(d, "alert", "add", "alertname=Grouped", "severity=crit", "instance=c")
        wait_until(lambda: len(hook.bodies()) == 2, timeout=6, what="second notification")
        assert len(hook.bodies()[1]["alerts"]) == 3
        st, groups = http_json("GET", d.url("/api/v2/alerts/groups"))
        assert st == 200 and len(groups) == 1 and len(groups[0]["alerts"]) == 3, groups
        assert groups[0]["labels"] == {"alertname": "Grouped"}
        assert groups[0]["receiver"] == {"name": "hook"}
    finally:
        d.cleanup()
        hook.stop()


def test_silences_mute_and_expire():
    hook = Hook()
    d = start(config(hook))
    try:
        r = amtool(d, "silence", "add", "alertname=Muted", "--comment=maintenance",
                   "--author=tester", "--duration=1h")
        sid = r.stdout.strip()
        assert len(sid) == 36, r.stdout
        r = amtool(d, "silence", "query")
        assert sid in r.stdout and "maintenance" in r.stdout, r.stdout
        amtool(d, "alert", "add", "alertname=Muted", "severity=warn")
        amtool(d, "alert", "add", "alertname=Loud", "severity=warn")
        wait_until(lambda: hook.bodies(), timeout=10, what="webhook for Loud")
        time.sleep(1.5)
        names = [b["groupLabels"]["alertname"] for b in hook.bodies()]
        assert names == ["Loud"], names
        st, alerts = http_json("GET", d.url("/api/v2/alerts?filter=alertname%3DMuted"))
        assert alerts[0]["status"]["state"] == "suppressed"
        assert alerts[0]["status"]["silencedBy"] == [sid]
        st, alerts = http_json("GET", d.url("/api/v2/alerts?silenced=false"))
        assert [a["labels"]["alertname"] for a in alerts] == ["Loud"], alerts
        st, s = http_json("GET", d.url("/api/v2/silence/" + sid))
        assert st == 200 and s["status"]["state"] == "active" and s["createdBy"] == "tester"
        assert s["matchers"] == [{"isEqual": True, "isRegex": False, "name": "alertname",
                                  "value": "Muted"}], s["matchers"]
        # expiring the silence lets the next flush notify
        amtool(d, "silence", "expire", sid)
        st, s = http_json("GET", d.url("/api/v2/silence/" + sid))
        assert s["status"]["state"] == "expired", s
        wait_until(lambda: "Muted" in [b["groupLabels"]["alertname"] for b in hook.bodies()],
                   timeout=8, what="notification after expiry")
        st, _, _ = http("GET", d.url("/api/v2/silence/00000000-0000-4000-8000-000000000000"))
        assert st == 404
    finally:
        d.cleanup()
        hook.stop()


def test_bad_requests():
    hook = Hook()
    d = start(config(hook))
    try:
        st, body = http_json("POST", d.url("/api/v2/alerts"), "not json",
                             {"Content-Type": "application/json"})
        assert st == 400 and body["code"] == 400 and "parsing alerts body" in body["message"]
        st, body = http_json("POST", d.url("/api/v2/alerts"), "{}",
                             {"Content-Type": "application/json"})
        assert st == 400 and body["code"] == 400
        st, body = http_json("POST", d.url("/api/v2/alerts"), '[{"annotations":{}}]',
                             {"Content-Type": "application/json"})
        assert st == 422 and body == {"code": 602, "message": "0.labels in body is required"}
        st, b, _ = post_alerts(d, [{"labels": {}}, {"labels": {"a-b": "x"}},
                                   {"labels": {"alertname": "Ok"}}])
        assert st == 400
        assert json.loads(b) == ('at least one label pair required; '
                                 'invalid label set: invalid name "a-b"'), b
        # the valid alert of that batch was stored, as Alertmanager does
        st, alerts = http_json("GET", d.url("/api/v2/alerts"))
        assert [a["labels"] for a in alerts] == [{"alertname": "Ok"}], alerts
        st, b, _ = post_alerts(d, [{"labels": {"a": "b"}, "startsAt": "2026-01-02T00:00:00Z",
                                    "endsAt": "2026-01-01T00:00:00Z"}])
        assert st == 400 and json.loads(b) == "start time must be before end time"
        st, body = http_json("GET", d.url("/api/v2/alerts?filter=%7B%7B"))
        assert st == 400, body
        sil = {"matchers": [{"name": "a", "value": "", "isRegex": False}],
               "startsAt": rfc3339(now_utc()), "endsAt": rfc3339(now_utc() + timedelta(hours=1)),
               "createdBy": "x", "comment": "c"}
        st, body = http_json("POST", d.url("/api/v2/silences"), json.dumps(sil),
                             {"Content-Type": "application/json"})
        assert st == 400
        assert body == "silence invalid: at least one matcher must not match the empty string"
        assert d.alive()
    finally:
        d.cleanup()
        hook.stop()


def test_resolved_notification_and_restart_without_resend():
    hook = Hook()
    cfg = config(hook)
    d = start(cfg)
    workdir, port = d.dir, d.http_port
    try:
        start_at = now_utc()
        alert = {"labels": {"alertname": "Flappy", "job": "api"},
                 "annotations": {"summary": "s"}, "startsAt": rfc3339(start_at),
                 "generatorURL": "http://prom/graph"}
        st, _, _ = post_alerts(d, [alert])
        assert st == 200
        wait_until(lambda: hook.bodies(), timeout=10, what="firing notification")
        assert hook.bodies()[0]["alerts"][0]["generatorURL"] == "http://prom/graph"
        sid = amtool(d, "silence", "add", "alertname=Other", "-c", "keep me").stdout.strip()
        # restart: alerts, silences and the notification log come back; no re-send
        d.stop()
        d = Daemon("alertd", cfg, http_port=port, workdir=workdir,
                   args=["--web.listen-address=127.0.0.1:%d" % port, "--storage.path=data"])
        d.start(ready_path="/-/ready")
        st, alerts = http_json("GET", d.url("/api/v2/alerts"))
        assert [a["labels"]["alertname"] for a in alerts] == ["Flappy"], alerts
        st, sils = http_json("GET", d.url("/api/v2/silences"))
        assert [s["id"] for s in sils] == [sid], sils
        time.sleep(3.5)
        assert len(hook.bodies()) == 1, "re-sent after restart: %r" % hook.bodies()
        # resolve it: a resolved notification follows (send_resolved: true)
        alert["endsAt"] = rfc3339(now_utc())
        st, _, _ = post_alerts(d, [alert])
        assert st == 200
        wait_until(lambda: len(hook.bodies()) == 2, timeout=8, what="resolved notification")
        body = hook.bodies()[1]
        assert body["status"] == "resolved" and body["alerts"][0]["status"] == "resolved"
        assert body["alerts"][0]["endsAt"] != "0001-01-01T00:00:00Z"
        st, alerts = http_json("GET", d.url("/api/v2/alerts"))
        assert alerts == [], alerts
    finally:
        d.cleanup()
        hook.stop()


def test_old_alert_flushes_at_once_and_repeats():
    hook = Hook()
    d = start(config(hook, group_wait="5s", group_interval="1s", repeat="3s"))
    try:
        t0 = time.time()
        post_alerts(d, [{"labels": {"alertname": "Old"},
                         "startsAt": rfc3339(now_utc() - timedelta(minutes=10))}])
        wait_until(lambda: hook.bodies(), timeout=4, what="immediate flush")
        assert hook.calls[0][0] - t0 < 2.5, "alert older than group_wait waited"
        wait_until(lambda: len(hook.bodies()) == 2, timeout=8, what="repeat notification")
        gap = hook.calls[1][0] - hook.calls[0][0]
        assert 2.5 <= gap <= 5.5, "repeat_interval 3s, got %.1fs" % gap
        assert hook.bodies()[0]["alerts"] == hook.bodies()[1]["alerts"]
    finally:
        d.cleanup()
        hook.stop()


def test_kill9_keeps_acknowledged_state():
    hook = Hook()
    cfg = config(hook, group_wait="30s")
    d = start(cfg)
    workdir, port = d.dir, d.http_port
    try:
        st, _, _ = post_alerts(d, [{"labels": {"alertname": "Durable", "i": str(i)}}
                                   for i in range(50)])
        assert st == 200
        sid = amtool(d, "silence", "add", "alertname=Durable", "i=7",
                     "-c", "x").stdout.strip()
        d.kill9()
        d = Daemon("alertd", cfg, http_port=port, workdir=workdir,
                   args=["--web.listen-address=127.0.0.1:%d" % port, "--storage.path=data"])
        d.start(ready_path="/-/ready")
        st, alerts = http_json("GET", d.url("/api/v2/alerts"))
        assert len(alerts) == 50, len(alerts)
        silenced = [a["labels"]["i"] for a in alerts if a["status"]["silencedBy"] == [sid]]
        assert silenced == ["7"], silenced
    finally:
        d.cleanup()
        hook.stop()


def test_webhook_retries_on_5xx():
    hook = Hook(status=503)
    d = start(config(hook))
    try:
        post_alerts(d, [{"labels": {"alertname": "Retry"}}])
        wait_until(lambda: len(hook.bodies()) >= 2, timeout=10, what="retries")
        hook.status = 200
        n = len(hook.bodies())
        wait_until(lambda: len(hook.bodies()) > n, timeout=10, what="delivery after retry")
        time.sleep(3)
        # once delivered, no more sends for the unchanged group
        m = len(hook.bodies())
        time.sleep(2.5)
        assert len(hook.bodies()) == m
    finally:
        d.cleanup()
        hook.stop()


ROUTES = """  routes:
    - matchers: ['team="db"', 'severity=~"crit|page"']
      receiver: db
      group_by: ['...']
      continue: true
    - match:
        team: db
      receiver: other
    - match_re:
        team: ^(web|api)$
      receiver: other
    - matchers: [team=many]
      receiver: many
"""

RECEIVERS = """  - name: db
    webhook_configs:
      - url: URL/db
  - name: many
    webhook_configs:
      - url: URL/many
        max_alerts: 2
  - name: other
    pagerduty_configs:
      - routing_key: secret
"""

INHIBIT = """inhibit_rules:
  - source_matchers: ['severity="critical"']
    target_matchers: ['severity="warning"']
    equal: ['cluster']
"""


def test_routing_continue_group_all_and_max_alerts():
    hook = Hook()
    cfg = config(hook, extra_routes=ROUTES,
                 extra_receivers=RECEIVERS.replace("URL", hook.url("")))
    check_config_with_amtool(cfg)
    d = start(cfg)
    try:
        post_alerts(d, [{"labels": {"alertname": "DB", "team": "db", "severity": "crit",
                                    "x": "1"}},
                        {"labels": {"alertname": "Web", "team": "web"}},
                        {"labels": {"alertname": "Plain"}}])
        st, alerts = http_json("GET", d.url("/api/v2/alerts"))
        recv = {a["labels"]["alertname"]: [r["name"] for r in a["receivers"]] for a in alerts}
        assert recv == {"DB": ["db", "other"], "Web": ["other"], "Plain": ["hook"]}, recv
        st, alerts = http_json("GET", d.url("/api/v2/alerts?receiver=db"))
        assert [a["labels"]["alertname"] for a in alerts] == ["DB"]
        wait_until(lambda: hook.bodies("/db"), timeout=10, what="db webhook")
        body = hook.bodies("/db")[0]
        assert body["groupLabels"] == {"alertname": "DB", "severity": "crit", "team": "db",
                                       "x": "1"}, body
        assert body["groupKey"] == ('{}/{severity=~"crit|page",team="db"}:'
                                    '{alertname="DB", severity="crit", team="db", x="1"}'), body
        post_alerts(d, [{"labels": {"alertname": "Many", "team": "many", "i": str(i)}}
                        for i in range(3)])
        wait_until(lambda: hook.bodies("/many"), timeout=10, what="many webhook")
        body = hook.bodies("/many")[0]
        assert len(body["alerts"]) == 2 and body["truncatedAlerts"] == 1, body
        assert body["groupKey"] == '{}/{team="many"}:{alertname="Many"}', body["groupKey"]
        st, rcv = http_json("GET", d.url("/api/v2/receivers"))
        assert [r["name"] for r in rcv] == ["hook", "db", "many", "other"], rcv
    finally:
        d.cleanup()
        hook.stop()


def test_inhibition():
    hook = Hook()
    d = start(config(hook, inhibit=INHIBIT))
    try:
        post_alerts(d, [{"labels": {"alertname": "Disk", "severity": "critical",
                                    "cluster": "c1"}},
                        {"labels": {"alertname": "Disk", "severity": "warning",
                                    "cluster": "c1"}},
                        {"labels": {"alertname": "Disk", "severity": "warning",
                                    "cluster": "c2"}}])
        st, alerts = http_json("GET", d.url("/api/v2/alerts"))
        by = {(a["labels"]["severity"], a["labels"]["cluster"]): a for a in alerts}
        crit = by[("critical", "c1")]["fingerprint"]
        assert by[("warning", "c1")]["status"]["inhibitedBy"] == [crit]
        assert by[("warning", "c1")]["status"]["state"] == "suppressed"
        assert by[("warning", "c2")]["status"]["inhibitedBy"] == []
        assert by[("critical", "c1")]["status"]["inhibitedBy"] == []
        st, alerts = http_json("GET", d.url("/api/v2/alerts?inhibited=false"))
        assert len(alerts) == 2
        wait_until(lambda: hook.bodies(), timeout=10, what="webhook")
        sent = [(a["labels"]["severity"], a["labels"]["cluster"])
                for a in hook.bodies()[0]["alerts"]]
        assert sorted(sent) == [("critical", "c1"), ("warning", "c2")], sent
    finally:
        d.cleanup()
        hook.stop()


def test_side_by_side_with_real_alertmanager():
    if not REAL_AM:
        print("skip: prometheus-alertmanager not installed")
        return
    hook_a, hook_b = Hook(), Hook()
    d = start(config(hook_a))
    am_port = free_port()
    am_dir = tempfile.mkdtemp(prefix="obs-realam-")
    with open(os.path.join(am_dir, "am.yml"), "w") as f:
        f.write(config(hook_b))
    log = open(os.path.join(am_dir, "am.log"), "wb")
    am = subprocess.Popen([REAL_AM, "--config.file=am.yml", "--storage.path=data",
                           "--web.listen-address=127.0.0.1:%d" % am_port,
                           "--cluster.listen-address="], cwd=am_dir, stdout=log,
                          stderr=subprocess.STDOUT)
    am_url = "http://127.0.0.1:%d" % am_port
    try:
        wait_until(lambda: http("GET", am_url + "/-/ready", timeout=1)[0] == 200, timeout=20,
                   what="alertmanager ready")
        alerts = [{"labels": {"alertname": "Same", "instance": "i%d" % i, "job": "j"},
                   "annotations": {"summary": "x"}} for i in range(3)]
        for url in (d.url(), am_url):
            st, b, _ = http("POST", url + "/api/v2/alerts", json.dumps(alerts),
                            {"Content-Type": "application/json"})
            assert st == 200, (url, st, b)
        _, ours = http_json("GET", d.url("/api/v2/alerts"))
        _, theirs = http_json("GET", am_url + "/api/v2/alerts")
        assert [a["fingerprint"] for a in ours] == [a["fingerprint"] for a in theirs]
        for o, t in zip(ours, theirs):
            assert set(t.keys()) <= set(o.keys()), (o.keys(), t.keys())
            assert set(t["status"].keys()) <= set(o["status"].keys())
            assert o["labels"] == t["labels"] and o["receivers"] == t["receivers"]
        _, og = http_json("GET", d.url("/api/v2/alerts/groups"))
        _, tg = http_json("GET", am_url + "/api/v2/alerts/groups")
        assert og[0]["labels"] == tg[0]["labels"] and og[0]["receiver"] == tg[0]["receiver"]
        wait_until(lambda: hook_a.bodies() and hook_b.bodies(), timeout=15, what="both hooks")
        a, b = hook_a.bodies()[0], hook_b.bodies()[0]
        assert list(a.keys()) == list(b.keys()), (a.keys(), b.keys())
        for k in ("receiver", "status", "groupLabels", "commonLabels", "commonAnnotations",
                  "version", "groupKey", "truncatedAlerts"):
            assert a[k] == b[k], (k, a[k], b[k])
        assert [x["fingerprint"] for x in a["alerts"]] == [x["fingerprint"] for x in b["alerts"]]
        for x, y in zip(a["alerts"], b["alerts"]):
            assert list(x.keys()) == list(y.keys())
            assert x["endsAt"] == y["endsAt"] == "0001-01-01T00:00:00Z"
        # amtool reads both the same way
        ra = amtool(d, "alert", "query", "-o", "json").stdout
        rb = subprocess.run([AMTOOL, "--alertmanager.url=" + am_url, "alert", "query", "-o",
                             "json"], capture_output=True, text=True, timeout=30).stdout
        assert len(json.loads(ra)) == len(json.loads(rb)) == 3
    finally:
        am.terminate()
        try:
            am.wait(timeout=10)
        except subprocess.TimeoutExpired:
            am.kill()
            am.wait()
        log.close()
        shutil.rmtree(am_dir, ignore_errors=True)
        d.cleanup()
        hook_a.stop()
        hook_b.stop()


if __name__ == "__main__":
    if not AMTOOL or not os.path.exists(os.path.join(BIN, "alertd")):
        print("amtool or alertd binary missing (OBS_BIN=%s)" % BIN)
    TestRun(globals()).main()
