"""obslib -- shared harness for integration tests (stdlib only).

Tests start the real binaries (from $OBS_BIN, default build/bin) on loopback ports chosen at
random, in temporary directories, and stop them by PID. Nothing here talks to anything but
127.0.0.1.

    from obslib import Daemon, free_port, http, wait_until, TestRun
    d = Daemon("logd", config_yaml, http_port=free_port()).start()
    status, body = http("GET", d.url("/ready"))
    d.stop()
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("OBS_BIN", os.path.join(ROOT, "build", "bin"))


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def http(method, url, body=None, headers=None, timeout=10):
    """One HTTP request; returns (status, body bytes, headers dict). Never raises on 4xx/5xx."""
    if isinstance(body, str):
        body = body.encode()
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


def http_json(method, url, body=None, headers=None, timeout=10):
    st, b, _ = http(method, url, body, headers, timeout)
    try:
        return st, json.loads(b)
    except ValueError:
        return st, b


def wait_until(fn, timeout=20.0, interval=0.1, what="condition"):
    """Poll fn() until it returns a truthy value; return it, or raise after timeout seconds."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            last = fn()
            if last:
                return last
        except Exception as e:  # noqa: BLE001 -- keep polling, report the last error
            last = e
        time.sleep(interval)
    raise AssertionError("timed out waiting for %s (last: %r)" % (what, last))


class RealPrometheus:
    """Debian's Prometheus 2.42 (the peer of the *_vs_prometheus tests) on a random loopback
    port with an empty temporary data directory; `flags` are added to its command line.
    evaluation_interval 1m is Prometheus' default subquery step, stated for clarity."""

    BIN = shutil.which("prometheus") or "/usr/bin/prometheus"

    def __init__(self, flags=()):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="obs-prom-")
        cfg = os.path.join(self.dir, "prometheus.yml")
        with open(cfg, "w") as f:
            f.write("global:\n  evaluation_interval: 1m\n")
        self.log = open(os.path.join(self.dir, "prometheus.log"), "wb")
        self.proc = subprocess.Popen(
            [self.BIN, "--config.file=" + cfg,
             "--storage.tsdb.path=" + os.path.join(self.dir, "data"),
             "--web.listen-address=127.0.0.1:%d" % self.port] + list(flags),
            stdout=self.log, stderr=subprocess.STDOUT)
        wait_until(lambda: self.proc.poll() is None and
                   http("GET", self.url("/-/ready"), timeout=1)[0] == 200,
                   timeout=30, what="prometheus ready")

    def url(self, p=""):
        return "http://127.0.0.1:%d%s" % (self.port, p)

    def stop(self):
        """Stop it (by its PID) and remove its directory."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class Daemon:
    """A daemon binary started with a YAML config in its own temporary directory."""

    def __init__(self, name, config=None, args=None, http_port=None, workdir=None, env=None):
        self.name = name
        self.http_port = http_port or free_port()
        self.dir = workdir or tempfile.mkdtemp(prefix="obs-%s-" % name)
        self.config = config
        self.args = list(args or [])
        self.env = env
        self.proc = None
        self.log_path = os.path.join(self.dir, "%s.log" % name)

    def url(self, path=""):
        return "http://127.0.0.1:%d%s" % (self.http_port, path)

    def start(self, wait_ready=True, ready_path="/ready", timeout=20):
        argv = [os.path.join(BIN, self.name)]
        if self.config is not None:
            cfg = os.path.join(self.dir, "config.yaml")
            with open(cfg, "w") as f:
                f.write(self.config)
            argv.append("-config.file=" + cfg)
        argv += self.args
        self.log = open(self.log_path, "ab")
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=0:abort_on_error=0")
        if self.env:
            env.update(self.env)
        self.proc = subprocess.Popen(argv, cwd=self.dir, stdout=self.log, stderr=subprocess.STDOUT,
                                     env=env)
        if wait_ready:
            def ready():
                if self.proc.poll() is not None:
                    raise AssertionError("%s exited with %s:\n%s" % (self.name, self.proc.returncode,
                                                                      self.tail()))
                try:
                    st, _, _ = http("GET", self.url(ready_path), timeout=1)
                    return st == 200
                except OSError:
                    return False
            try:
                wait_until(ready, timeout=timeout, what="%s ready" % self.name)
            except BaseException:
                # never leave a half-started process behind
                out = self.tail()
                self.stop(signal.SIGKILL)
                raise AssertionError("%s did not become ready; log tail:\n%s" % (self.name, out))
        return self

    def tail(self, n=40):
        try:
            with open(self.log_path, "rb") as f:
                return b"\n".join(f.read().splitlines()[-n:]).decode(errors="replace")
        except OSError:
            return ""

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=15):
        """Stop by PID; returns the exit code. SIGKILL after timeout seconds."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        rc = self.proc.returncode
        self.proc = None
        self.log.close()
        return rc

    def kill9(self):
        return self.stop(signal.SIGKILL)

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class TestRun:
    """Minimal runner: collects test_* functions of a module, runs each, prints
    'ok'/'FAIL' per test and a closing 'N passed, N failed' line. Exit code 1 on failure."""

    def __init__(self, module_globals):
        self.tests = [(n, f) for n, f in module_globals.items()
                      if n.startswith("test_") and callable(f)]

    def main(self):
        only = sys.argv[1:]
        passed = failed = 0
        for name, fn in self.tests:
            if only and name not in only:
                continue
            t0 = time.time()
            try:
                fn()
                passed += 1
                print("ok   %s (%.1fs)" % (name, time.time() - t0), flush=True)
            except Exception:  # noqa: BLE001
                failed += 1
                print("FAIL %s (%.1fs)" % (name, time.time() - t0), flush=True)
                traceback.print_exc()
        print("%d passed, %d failed" % (passed, failed), flush=True)
        sys.exit(1 if failed else 0)
