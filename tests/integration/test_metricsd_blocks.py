"""test_metricsd_blocks -- metricsd's block storage end to end: head -> 2h TSDB blocks in the
object store (POST /ingester/flush), read back by the real promtool, queried through the
store-gateway after the head is gone, compacted (levels, vertical dedup, deletion marks), and
a corrupted chunk detected by its CRC and reported as a query warning.

Samples are hand-built remote-write requests with timestamps from ~5h ago to now (the head
accepts any age for a new series in order; the OOO window stays off).
"""
import json
import os
import struct
import re
import shutil
import subprocess
import tempfile
import time
import urllib.parse

from obslib import Daemon, TestRun, free_port, http, http_json, wait_until
from pbutil import snappy_literal, uvarint  # noqa: E402

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
ULID_RE = re.compile(r"^[0-7][0-9A-HJKMNP-TV-Z]{25}$")
H = 3600 * 1000


# ---- remote write encoding (protobuf + snappy literals; as in test_metricsd_write) -------


def field_bytes(num, data):
    if isinstance(data, str):
        data = data.encode()
    return uvarint(num << 3 | 2) + uvarint(len(data)) + data


def pb_write(series):
    out = b""
    for labels, samples in series:
        ts = b""
        for n, v in labels:
            ts += field_bytes(1, field_bytes(1, n) + field_bytes(2, v))
        for t, v in samples:
            ts += field_bytes(2, uvarint(1 << 3 | 1) + struct.pack("<d", v) +
                              uvarint(2 << 3) + uvarint(t & ((1 << 64) - 1)))
        out += field_bytes(1, ts)
    return out


def push(d, series, tenant):
    h = {"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy",
         "X-Prometheus-Remote-Write-Version": "0.1.0", "X-Scope-OrgID": tenant}
    st, b, _ = http("POST", d.url("/api/v1/push"), snappy_literal(pb_write(series)), h)
    return st, b.decode(errors="replace")

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


def stop_clean(d):
    """Stop d; it must exit 0 with no sanitizer report in its log."""
    log = d.log_path
    rc = d.stop()
    with open(log, "rb") as f:
        text = f.read().decode(errors="replace")
    assert "Sanitizer" not in text, text[-3000:]
    assert rc == 0, (rc, text[-2000:])


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
        stop_clean(d)

        # a fresh process with an empty head: everything comes from the blocks
        shutil.rmtree(os.path.join(work, "tsdb"))
        d = start(store, workdir=work)
        only_blocks = points(query_range(d, "blk_metric", lo, hi, tenant="team-a"))
        assert only_blocks == before
        # chunks came through the bounded cache (64KiB here), by range GETs
        st, body, _ = http("GET", d.url("/metrics"))
        m = dict(re.findall(r"^(mtd_store_gateway_\w+) (\S+)$", body.decode(), re.M))
        assert 0 < float(m["mtd_store_gateway_chunk_cache_bytes"]) <= 64 * 1024, m
        assert float(m["mtd_store_gateway_chunk_fetches_total"]) > 0, m
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
        stop_clean(d)
    finally:
        d.stop()
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(store, ignore_errors=True)


def compactor_run(d):
    st, body, _ = http("POST", d.url("/compactor/run"), b"", timeout=300)
    assert st == 200, (st, body)
    return json.loads(body)


def test_compactor_levels_and_deletion():
    store = tempfile.mkdtemp(prefix="obs-blk-store-")
    work = tempfile.mkdtemp(prefix="obs-blk-")
    now = int(time.time() * 1000)
    # 14h of data starting on a 12h boundary at least a day ago: six 2h blocks fill one 12h
    # window, the seventh starts the next one
    w0 = (now - 36 * H) // (12 * H) * (12 * H)
    series = []
    for i in range(3):
        labels = [("__name__", "cmp_metric"), ("i", str(i))]
        series.append((labels, [(t, float(i + t // 60000 % 1000))
                                for t in range(w0, w0 + 14 * H, 120000)]))
    d = start(store, workdir=work, delay="2s")
    try:
        push_all(d, series, "t1")
        lo, hi = w0, w0 + 14 * H - 120000
        before = points(query_range(d, "cmp_metric", lo, hi, step="120s", tenant="t1"))
        flush(d, "t1")
        blocks = blocks_of(store, "t1")
        assert len(blocks) == 7, sorted((m["minTime"], m["maxTime"]) for m in blocks.values())
        first6 = [u for u, m in blocks.items() if m["maxTime"] <= w0 + 12 * H]
        assert len(first6) == 6

        r = compactor_run(d)
        assert r["compactions"] == 1, r
        after = blocks_of(store, "t1")
        new = [u for u in after if u not in blocks]
        assert len(new) == 1, after.keys()
        meta = after[new[0]]
        assert meta["minTime"] == w0 and meta["maxTime"] == w0 + 12 * H, meta
        assert meta["compaction"]["level"] == 2, meta
        assert sorted(meta["compaction"]["sources"]) == sorted(first6), meta
        assert sorted(p["ulid"] for p in meta["compaction"]["parents"]) == sorted(first6)
        for u in first6:
            assert marked(store, "t1", u), u
            with open(os.path.join(store, "t1", u, "deletion-mark.json")) as f:
                mark = json.load(f)
            assert mark["id"] == u and mark["version"] == 1 and mark["deletion_time"] > 0
        # queries: identical while sources and result coexist, and after the sources go
        assert points(query_range(d, "cmp_metric", lo, hi, step="120s", tenant="t1")) == before
        time.sleep(2.5)
        r = compactor_run(d)
        assert r["deleted"] == 6, r
        left = blocks_of(store, "t1")
        assert sorted(left) == sorted(set(blocks) - set(first6) | {new[0]}), left.keys()
        assert not any(os.path.exists(os.path.join(store, "t1", u)) for u in first6)
        stop_clean(d)
        shutil.rmtree(os.path.join(work, "tsdb"))
        d = start(store, workdir=work, delay="2s")
        assert points(query_range(d, "cmp_metric", lo, hi, step="120s", tenant="t1")) == before
        # promtool reads the compacted block too
        _, got = promtool_dump(os.path.join(store, "t1"))
        assert len(got) == sum(len(s) for _, s in series)
        stop_clean(d)
    finally:
        d.stop()
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(store, ignore_errors=True)


def test_vertical_compaction_dedups_replicas():
    store = tempfile.mkdtemp(prefix="obs-blk-store-")
    work = tempfile.mkdtemp(prefix="obs-blk-")
    now = int(time.time() * 1000)
    series = dataset(now - 30 * H, nseries=3, hours=3, step=30000, tag="v")
    lo, hi = series[0][1][0][0], series[0][1][-1][0]
    d = None
    try:
        # two "replicas": same samples, each with a few of its own, shipped separately
        for rep in range(2):
            shutil.rmtree(os.path.join(work, "tsdb"), ignore_errors=True)
            d = start(store, workdir=work)
            mine = [(labels, sorted(samples + [(t + 1 + rep, -1.0) for t, _ in samples[:5]]))
                    for labels, samples in series]
            push_all(d, mine, "v")
            flush(d, "v")
            if rep == 0:
                first = blocks_of(store, "v")
            stop_clean(d)
        blocks = blocks_of(store, "v")
        assert len(blocks) == 2 * len(first), blocks.keys()
        shutil.rmtree(os.path.join(work, "tsdb"))
        d = start(store, workdir=work)
        # merged on read: one sample per timestamp, the union of both replicas
        raw = query_instant_matrix(d, 'blk_metric{i="0"}[4h]', hi + 1000, "v")
        want = sorted(set([t for t, _ in series[0][1]] + [t + 1 for t, _ in series[0][1][:5]] +
                          [t + 2 for t, _ in series[0][1][:5]]))
        assert [int(round(float(t) * 1000)) for t, _ in raw] == want
        r = compactor_run(d)
        assert r["compactions"] >= 1, r
        after = blocks_of(store, "v")
        live = {u: m for u, m in after.items() if not marked(store, "v", u)}
        assert all(m["compaction"]["level"] >= 2 for m in live.values()), live
        total = sum(m["stats"]["numSamples"] for m in live.values())
        assert total == len(want) * 3, (total, len(want))
        _, got = promtool_dump_live(store, "v")
        assert len(got) == len(want) * 3
        raw2 = query_instant_matrix(d, 'blk_metric{i="0"}[4h]', hi + 1000, "v")
        assert raw2 == raw
        stop_clean(d)
    finally:
        if d:
            d.stop()
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(store, ignore_errors=True)


def query_instant_matrix(d, q, t_ms, tenant):
    url = d.url("/api/v1/query?" + urllib.parse.urlencode({"query": q, "time": "%.3f" % (t_ms / 1000)}))
    st, j = http_json("GET", url, headers={"X-Scope-OrgID": tenant})
    assert st == 200 and j["status"] == "success", j
    assert len(j["data"]["result"]) == 1, j
    return j["data"]["result"][0]["values"]


def promtool_dump_live(store, tenant):
    tmp = tempfile.mkdtemp(prefix="obs-blk-live-")
    try:
        for u in blocks_of(store, tenant):
            if not marked(store, tenant, u):
                shutil.copytree(os.path.join(store, tenant, u), os.path.join(tmp, u))
        return promtool_dump(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_corrupt_chunk_is_reported_and_skipped():
    store = tempfile.mkdtemp(prefix="obs-blk-store-")
    work = tempfile.mkdtemp(prefix="obs-blk-")
    now = int(time.time() * 1000)
    series = dataset(now - 10 * H, nseries=4, hours=1, step=15000, tag="c")
    lo, hi = series[0][1][0][0], series[0][1][-1][0]
    d = start(store, workdir=work)
    try:
        push_all(d, series, "c")
        before = points(query_range(d, "blk_metric", lo, hi, step="15s", tenant="c"))
        flush(d, "c")
        stop_clean(d)
        ulid = sorted(blocks_of(store, "c"))[0]  # 1h of data may straddle a 2h boundary
        seg = os.path.join(store, "c", ulid, "chunks", "000001")
        with open(seg, "r+b") as f:
            data = bytearray(f.read())
            data[20] ^= 0xFF  # inside the first chunk's data
            f.seek(0)
            f.write(data)
        shutil.rmtree(os.path.join(work, "tsdb"))
        d = start(store, workdir=work)
        j = query_range(d, "blk_metric", lo, hi, step="15s", tenant="c")
        warns = j.get("warnings", [])
        assert any("checksum" in w and ulid in w for w in warns), j.get("warnings")
        got = points(j)
        # the damaged chunk (first series' first 120 samples) is gone, the rest is intact
        assert len(got) == 4
        damaged = [k for k in before if got[k] != before[k]]
        assert len(damaged) == 1, damaged
        k = damaged[0]
        assert set(got[k]) < set(before[k])
        # again: still reported, the daemon is fine
        j = query_range(d, "blk_metric", lo, hi, step="15s", tenant="c")
        assert any("checksum" in w for w in j.get("warnings", [])), j
        st, _, _ = http("GET", d.url("/ready"))
        assert st == 200 and d.alive()
        st, body, _ = http("GET", d.url("/metrics"))
        assert re.search(r"mtd_store_gateway_corrupt_chunks_total [1-9]", body.decode()), body
        # the compactor refuses to propagate a damaged block
        r = compactor_run(d)
        assert not marked(store, "c", ulid), r
        stop_clean(d)
    finally:
        d.stop()
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(store, ignore_errors=True)


def test_retention_per_tenant():
    store = tempfile.mkdtemp(prefix="obs-blk-store-")
    work = tempfile.mkdtemp(prefix="obs-blk-")
    now = int(time.time() * 1000)
    # data 40h..36h ago, plus a lone sample 10h ago after a gap (flush jumps over the gap)
    old = [([("__name__", "ret_metric")], [(t, 1.0) for t in range(now - 40 * H, now - 36 * H,
                                                                   600000)] +
            [(now - 10 * H, 2.0)])]
    extra = "overrides:\n  short:\n    compactor_blocks_retention_period: 24h\n"
    d = start(store, extra=extra, workdir=work, delay="1h")
    try:
        for tenant in ("short", "long"):
            push_all(d, old, tenant)
            flush(d, tenant)
        short, long_ = blocks_of(store, "short"), blocks_of(store, "long")
        assert len(short) == len(long_) >= 3, (short.keys(), long_.keys())
        r = compactor_run(d)
        old_short = [u for u, m in short.items() if m["maxTime"] < now - 24 * H]
        assert len(old_short) >= 2
        for u in old_short:
            assert marked(store, "short", u), u
        recent = [u for u in short if u not in old_short]
        assert recent and not any(marked(store, "short", u) for u in recent)
        # tenant "long" keeps everything: its only marks are sources of its compactions
        after = blocks_of(store, "long")
        sources = {p["ulid"] for m in after.values() for p in m["compaction"].get("parents", [])}
        assert {u for u in after if marked(store, "long", u)} == sources
        assert r["marked"] >= len(old_short), r
        stop_clean(d)
    finally:
        d.stop()
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(store, ignore_errors=True)



def metric_values(d, prefix="mtd_ingester_"):
    st, body, _ = http("GET", d.url("/metrics"))
    assert st == 200
    return {k: float(v) for k, v in re.findall(r"^(%s\w+) (\S+)$" % prefix, body.decode(), re.M)}


def dir_bytes(path):
    return sum(os.path.getsize(os.path.join(root, f))
               for root, _, files in os.walk(path) for f in files)


def raw_samples(d, i, t_ms, tenant):
    """Every raw sample of blk_metric{i=...} in the 6h before t_ms: [(t_ms, value)]."""
    return [(int(round(float(t) * 1000)), float(v))
            for t, v in query_instant_matrix(d, 'blk_metric{i="%d"}[6h]' % i, t_ms, tenant)]


def test_head_truncated_after_shipping():
    """Shipping truncates the head: memory gauges and the WAL shrink, queries over the whole
    range still see every sample once (blocks + head), appends below the shipped range are
    refused as out of bounds, and a kill -9 + restart brings nothing back."""
    store = tempfile.mkdtemp(prefix="obs-blk-store-")
    work = tempfile.mkdtemp(prefix="obs-blk-")
    now = int(time.time() * 1000)
    series = dataset(now, nseries=4, hours=5, step=60000, tag="tr")
    gone = [([("__name__", "gone_metric")], [(t, 1.0) for t, _ in series[0][1][:50]])]
    lo, hi = series[0][1][0][0], series[0][1][-1][0]
    total = sum(len(s) for _, s in series) + len(gone[0][1])
    want = [[(t, v) for t, v in s] for _, s in series]
    fast = "    block_ranges_period: [2h]\n    head_compaction_interval: 1s\n"

    def launch(interval_fast):
        cfg = CONFIG if not interval_fast else CONFIG.replace(
            "    block_ranges_period: [2h]\n", fast)
        port = free_port()
        return Daemon("metricsd", cfg % {"port": port, "grpc": free_port(), "store": store,
                                         "extra": "", "delay": "12h"},
                      http_port=port, workdir=work).start()

    def check_queries(d):
        for i in range(4):
            got = raw_samples(d, i, hi + 120000, "tr")
            assert got == want[i], (i, len(got), len(want[i]),
                                    sorted(set(got) ^ set(want[i]))[:5])

    wal = os.path.join(work, "tsdb", "wal")
    d = launch(False)  # shipping only every minute: nothing ships while pushing
    try:
        push_all(d, series + gone, "tr")
        m0 = metric_values(d)
        assert m0["mtd_ingester_memory_series"] == 5, m0
        assert m0["mtd_ingester_memory_samples"] == total, m0
        check_queries(d)
        stop_clean(d)
        wal0 = dir_bytes(wal)

        # restart with shipping every second: ranges older than 3h go, the head is truncated
        d = launch(True)
        wait_until(lambda: metric_values(d)["mtd_ingester_memory_series"] == 4, timeout=60,
                   what="head truncated")
        with open(os.path.join(work, "tsdb", "shipped.json")) as f:
            mark = json.load(f)["tr"]
        assert mark % (2 * H) == 0 and now - 3 * H <= mark <= now - H + 60000, (mark, now)
        blocks = blocks_of(store, "tr")
        assert blocks and max(m["maxTime"] for m in blocks.values()) == mark, blocks
        m1 = metric_values(d)
        kept = m1["mtd_ingester_memory_samples"]
        # every chunk ending before the mark is gone; one straddling chunk per series stays
        in_head = sum(1 for _, s in series for t, _ in s if t >= mark)
        assert in_head <= kept <= in_head + 4 * 120, (in_head, kept)
        assert kept < total * 0.7, (kept, total)
        assert m1["mtd_ingester_wal_checkpoints"] >= 1, m1
        wal1 = dir_bytes(wal)
        assert wal1 < wal0, (wal0, wal1)
        print("    head: %d -> %d samples, 5 -> 4 series; WAL %d -> %d bytes" %
              (total, kept, wal0, wal1))
        check_queries(d)  # blocks + head: every sample once

        # below the shipped range: refused, "out of bounds"; after it: fine
        st, body = push(d, [(series[0][0], [(mark - 60000, 5.0)])], "tr")
        assert st == 400 and "out of bounds" in body, (st, body)
        st, body = push(d, [(gone[0][0], [(lo, 5.0)])], "tr")  # no series comes back
        assert st == 400 and "out of bounds" in body, (st, body)
        st, body = push(d, [(series[0][0], [(hi + 60000, 7.0)])], "tr")
        assert st == 200, (st, body)
        want[0].append((hi + 60000, 7.0))
        m2 = metric_values(d)
        assert m2["mtd_ingester_memory_series"] == 4, m2
        st, body, _ = http("GET", d.url("/metrics"))
        assert re.search(r'cortex_discarded_samples_total\{[^}]*reason="sample_out_of_bounds"'
                         r'[^}]*\} 2', body.decode()), body.decode()[-3000:]

        # kill -9 and restart: nothing shipped comes back into the head
        d.kill9()
        d = launch(True)
        m3 = metric_values(d)
        assert m3["mtd_ingester_memory_series"] == 4, m3
        assert m3["mtd_ingester_memory_samples"] == kept + 1, (m3, kept)
        check_queries(d)
        st, body = push(d, [(series[1][0], [(lo + 60000, 5.0)])], "tr")
        assert st == 400 and "out of bounds" in body, (st, body)

        # a forced flush ships the rest: the head is empty, queries come from blocks only
        flush(d, "tr")
        m4 = metric_values(d)
        assert m4["mtd_ingester_memory_series"] == 0, m4
        assert m4["mtd_ingester_memory_samples"] == 0, m4
        assert dir_bytes(wal) < wal1, (dir_bytes(wal), wal1)
        check_queries(d)
        stop_clean(d)
        d = launch(False)
        assert metric_values(d)["mtd_ingester_memory_series"] == 0
        check_queries(d)
        stop_clean(d)
    finally:
        d.stop()
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(store, ignore_errors=True)

# ---- S3 backend: s3rver behind the SigV4-verifying proxy (as test_store_s3.py runs it) ----

NODE = shutil.which("node")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
S3RVER = os.path.join(ROOT, "tests", "node", "node_modules", "s3rver", "bin", "s3rver.js")
S3FIXES = os.path.join(ROOT, "tests", "support", "s3rver-fixes.js")
S3PROXY = os.path.join(ROOT, "tests", "support", "sigv4-proxy.js")


class S3:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="obs-blk-s3-")
        self.procs = []
        data = os.path.join(self.dir, "data")
        os.mkdir(data)
        s3_port, self.port = free_port(), free_port()
        self._spawn("s3rver", [NODE, "--openssl-legacy-provider", "-r", S3FIXES, S3RVER, "-d",
                               data, "-a", "127.0.0.1", "-p", str(s3_port),
                               "--configure-bucket", "blocks"])
        wait_until(lambda: self._up(s3_port), timeout=30, what="s3rver")
        self._spawn("proxy", [NODE, S3PROXY, "--port", str(self.port), "--upstream-port",
                              str(s3_port), "--access-key", "S3RVER", "--secret", "S3RVER",
                              "--region", "us-east-1"])
        wait_until(lambda: self._up(self.port), timeout=30, what="sigv4 proxy")

    def _spawn(self, name, argv):
        log = open(os.path.join(self.dir, name + ".log"), "ab")
        self.procs.append((subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                            cwd=self.dir), log))

    def _up(self, port):
        for p, _ in self.procs:
            assert p.poll() is None, "%s exited" % p.args
        import socket
        with socket.socket() as s:
            s.settimeout(0.5)
            return s.connect_ex(("127.0.0.1", port)) == 0

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
        shutil.rmtree(self.dir, ignore_errors=True)


S3_CONFIG = """
server:
  http_listen_address: 127.0.0.1
  http_listen_port: %(port)d
  grpc_listen_port: %(grpc)d
blocks_storage:
  backend: s3
  s3:
    endpoint: 127.0.0.1:%(s3)d
    bucket_name: blocks
    insecure: true
    bucket_lookup_type: path
    region: us-east-1
    access_key_id: S3RVER
    secret_access_key: S3RVER
  tsdb:
    dir: ./tsdb
  bucket_store:
    sync_dir: ./tsdb-sync
    ignore_deletion_mark_delay: 0s
compactor:
  deletion_delay: 1s
"""


def test_s3_backend():
    if NODE is None or not os.path.exists(S3RVER):
        print("    skipped: node or s3rver missing (cd tests/node && npm install)")
        return
    s3 = S3()
    work = tempfile.mkdtemp(prefix="obs-blk-")
    now = int(time.time() * 1000)
    w0 = (now - 36 * H) // (12 * H) * (12 * H)
    series = [([("__name__", "s3_metric"), ("i", str(i))],
               [(t, float(i + t // 60000 % 997)) for t in range(w0, w0 + 14 * H, 300000)])
              for i in range(3)]
    lo, hi = w0, w0 + 14 * H - 300000
    d = None

    def launch():
        port = free_port()
        return Daemon("metricsd", S3_CONFIG % {"port": port, "grpc": free_port(), "s3": s3.port},
                      http_port=port, workdir=work).start()
    try:
        d = launch()
        push_all(d, series, "s3t")
        before = points(query_range(d, "s3_metric", lo, hi, step="300s", tenant="s3t"))
        flush(d, "s3t")
        stop_clean(d)
        shutil.rmtree(os.path.join(work, "tsdb"))
        d = launch()
        assert points(query_range(d, "s3_metric", lo, hi, step="300s", tenant="s3t")) == before
        r = compactor_run(d)
        assert r["compactions"] == 1 and r["marked"] == 6, r
        time.sleep(1.5)
        r = compactor_run(d)
        assert r["deleted"] == 6, r
        stop_clean(d)
        shutil.rmtree(os.path.join(work, "tsdb"))
        shutil.rmtree(os.path.join(work, "tsdb-sync"))
        d = launch()
        assert points(query_range(d, "s3_metric", lo, hi, step="300s", tenant="s3t")) == before
        stop_clean(d)
    finally:
        if d:
            d.stop()
        s3.stop()
        shutil.rmtree(work, ignore_errors=True)


TestRun(globals()).main()
