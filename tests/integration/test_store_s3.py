"""Integration tests for the object store: the one conformance suite
(tests/support/store_cases.h, run by $OBS_BIN/store-conformance) against the filesystem
backend and against the S3 backend talking to a real S3 server (s3rver 3.7.1, with the
listing fixes of tests/support/s3rver-fixes.js preloaded) behind the strict SigV4-verifying
proxy (tests/support/sigv4-proxy.js, which rebuilds every signature with the AWS SDK's
@smithy/signature-v4 and answers 403 on mismatch).

Runs: path-style with fault injection (503 SlowDown, dropped connections, persistent 500,
failing multipart part), small ListObjectsV2 pages (max-keys 7), virtual-hosted addressing,
a session token, and a wrong secret that the proxy must reject with 403 SignatureDoesNotMatch.

Run: OBS_BIN=$PWD/build/<dir>/bin python3 tests/integration/test_store_s3.py [test_name ...]
"""
import atexit
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from obslib import BIN, ROOT, TestRun, free_port, wait_until  # noqa: E402

NODE = shutil.which("node")
S3RVER = os.path.join(ROOT, "tests", "node", "node_modules", "s3rver", "bin", "s3rver.js")
FIXES = os.path.join(ROOT, "tests", "support", "s3rver-fixes.js")
PROXY = os.path.join(ROOT, "tests", "support", "sigv4-proxy.js")
TOOL = os.path.join(BIN, "store-conformance")
BUCKET = "obs-test"


def port_open(port):
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


class S3Fixture:
    """s3rver + the SigV4 proxy on random loopback ports, stopped by PID at exit."""

    def __init__(self):
        if NODE is None or not os.path.exists(S3RVER):
            raise AssertionError("node or s3rver missing: run `cd tests/node && npm install`")
        self.dir = tempfile.mkdtemp(prefix="obs-s3-")
        self.s3_port = free_port()
        self.port = free_port()
        self.proxy_log = os.path.join(self.dir, "proxy.log")
        self.procs = []
        data = os.path.join(self.dir, "data")
        os.mkdir(data)
        # node directly (not npx) so that the PID is the server's
        self.s3rver = self._spawn("s3rver", [NODE, "--openssl-legacy-provider", "-r", FIXES, S3RVER,
                                             "-d", data, "-a", "127.0.0.1", "-p",
                                             str(self.s3_port), "--configure-bucket", BUCKET])
        wait_until(lambda: self._alive() and port_open(self.s3_port), timeout=30,
                   what="s3rver listening")
        self.proxy = self._spawn("proxy", [NODE, PROXY, "--port", str(self.port),
                                           "--upstream-port", str(self.s3_port), "--faults",
                                           "--log", self.proxy_log, "--access-key", "S3RVER",
                                           "--secret", "S3RVER", "--region", "us-east-1"])
        wait_until(lambda: self._alive() and port_open(self.port), timeout=30,
                   what="sigv4 proxy listening")

    def _spawn(self, name, argv):
        log = open(os.path.join(self.dir, name + ".log"), "ab")
        p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=self.dir)
        self.procs.append((p, log))
        return p

    def _alive(self):
        for p, _ in self.procs:
            if p.poll() is not None:
                raise AssertionError("%s exited with %s" % (p.args[0], p.returncode))
        return True

    def log_lines(self):
        with open(self.proxy_log) as f:
            return f.read().splitlines()

    def stop(self):
        for p, log in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
            log.close()
        self.procs = []
        shutil.rmtree(self.dir, ignore_errors=True)


_fixture = None


def s3():
    global _fixture
    if _fixture is None:
        _fixture = S3Fixture()
        atexit.register(_fixture.stop)
    return _fixture


def run_tool(args, env_extra=None, timeout=900):
    env = dict(os.environ)
    env.update({"AWS_ACCESS_KEY_ID": "S3RVER", "AWS_SECRET_ACCESS_KEY": "S3RVER"})
    env.pop("AWS_SESSION_TOKEN", None)
    env.pop("AWS_REGION", None)
    env.setdefault("LSAN_OPTIONS", "suppressions=" + os.path.join(ROOT, "tests", "lsan.supp"))
    if env_extra:
        env.update(env_extra)
    t0 = time.time()
    p = subprocess.run([TOOL] + args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=timeout)
    out = p.stdout.decode(errors="replace")
    # Show the summary and the figures, not the retry warnings.
    for line in out.splitlines():
        if line.startswith("conformance:") or re.match(r"^\d+%: Checks", line) or ":F:" in line \
                or ":E:" in line:
            print("    store-conformance> " + line)
    print("    (%s: %.1fs)" % (" ".join(args[:4]), time.time() - t0))
    return p.returncode, out


def expect_all_passed(rc, out, min_checks):
    m = re.search(r"^100%: Checks: (\d+), Failures: 0, Errors: 0", out, re.M)
    assert rc == 0 and m, "conformance run failed (rc %d):\n%s" % (rc, out[-4000:])
    assert int(m.group(1)) >= min_checks, "only %s checks ran" % m.group(1)


def test_conformance_filesystem():
    d = tempfile.mkdtemp(prefix="obs-fs-conf-")
    try:
        rc, out = run_tool(["fs", d])
        expect_all_passed(rc, out, 11)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_conformance_s3_path_style_with_faults():
    f = s3()
    rc, out = run_tool(["s3", "127.0.0.1:%d" % f.port, BUCKET, "--faults", "--part-size", "5MiB",
                        "--max-retries", "3"])
    expect_all_passed(rc, out, 16)
    log = f.log_lines()
    # The 12 MiB object went up as a multipart upload of 3 parts (5 + 5 + 2 MiB).
    assert any(re.match(r"POST /%s/conf-\d+-\d+/big/12MiB\.bin\?uploads= 200" % BUCKET, l)
               for l in log), "no CreateMultipartUpload in the proxy log"
    assert any(re.match(r"PUT /%s/conf-\d+-\d+/big/12MiB\.bin\?partNumber=3&uploadId=\S+ 200"
                        % BUCKET, l) for l in log), "no UploadPart 3"
    assert any(re.match(r"POST /%s/conf-\d+-\d+/big/12MiB\.bin\?uploadId=\S+ 200" % BUCKET, l)
               for l in log), "no CompleteMultipartUpload"
    # Small objects are single PUTs; the failed multipart upload was aborted (s3rver has no
    # AbortMultipartUpload and answers 405, the client logs it and reports the part error).
    assert any(re.match(r"DELETE /%s/conf-\d+-\d+/fault-partfail-x\?uploadId=\S+ " % BUCKET, l)
               for l in log), "failed multipart upload was not aborted"
    # Retries happened: injected 503 SlowDown, then success of the same request.
    assert any(" 503 SlowDown" in l for l in log)
    assert any(l.endswith(" 0 dropped") for l in log)
    # Every request was signature-checked: no 403 in a run with the right key.
    bad = [l for l in log if " 403 " in l]
    assert not bad, "unexpected 403s: %s" % bad[:3]
    # Keys with spaces and plus signs went out percent-encoded (%20 and %2B), '/' kept.
    assert any("/dir%20with%20space/a%20b%2Bc.txt " in l for l in log)
    # Paging over more than 1000 keys used continuation tokens.
    assert any("continuation-token=" in l and "list-type=2" in l for l in log)


def test_conformance_s3_small_pages():
    f = s3()
    rc, out = run_tool(["--cases", "list_sorted,list_delim,del,missing,odd_keys,concurrent",
                        "s3", "127.0.0.1:%d" % f.port, BUCKET, "--list-max-keys", "7"])
    expect_all_passed(rc, out, 6)
    assert any("max-keys=7" in l and "continuation-token=" in l for l in f.log_lines())


def test_conformance_s3_virtual_hosted():
    f = s3()
    # curl resolves *.localhost to loopback itself; the proxy maps "obs-test.localhost" back to
    # the path style s3rver understands, after verifying the signature over the real Host.
    rc, out = run_tool(["--cases", "put_get,range,head,list_delim,odd_keys,big_object",
                        "s3", "localhost:%d" % f.port, BUCKET, "--lookup", "virtual-hosted"])
    expect_all_passed(rc, out, 6)
    assert any(re.match(r"GET /\?.*list-type=2.* 200", l) for l in f.log_lines()), \
        "no virtual-hosted ListObjectsV2 (path '/') in the proxy log"


def test_session_token_is_signed():
    f = s3()
    rc, out = run_tool(["--cases", "put_get", "s3", "127.0.0.1:%d" % f.port, BUCKET],
                       {"AWS_SESSION_TOKEN": "FwoGZXIvYXdzEXAMPLE/token+with=chars"})
    expect_all_passed(rc, out, 1)


def test_wrong_secret_rejected():
    f = s3()
    before = len(f.log_lines())
    rc, out = run_tool(["--cases", "put_get", "s3", "127.0.0.1:%d" % f.port, BUCKET],
                       {"AWS_SECRET_ACCESS_KEY": "not-the-secret"})
    assert rc != 0, "a wrong secret must fail:\n%s" % out
    assert "403 SignatureDoesNotMatch" in out, out[-2000:]
    new = f.log_lines()[before:]
    assert new and all(" 403 SignatureDoesNotMatch" in l for l in new), new[:5]
    # Not retried: one request, then the error.
    assert len(new) == 1, new


def test_wrong_region_rejected():
    f = s3()
    rc, out = run_tool(["--cases", "head", "s3", "127.0.0.1:%d" % f.port, BUCKET,
                        "--region", "eu-west-1"])
    assert rc != 0
    assert "403 AuthorizationHeaderMalformed" in out, out[-2000:]


TestRun(globals()).main()
