"""test_tsdb_promtool -- metricsd's TSDB block writer (metricsd/tsdb/) read by the real peer.

$OBS_BIN/tsdb-write (tests/support/tsdb-write.c, linked with the daemon libs) writes a block
from a deterministic data set and prints the samples it wrote exactly as `promtool tsdb dump`
prints them. Debian's promtool 2.42 must then list the block with the right counts, analyze
it, and dump every sample back verbatim: same series, same order, same values (NaN, the
stale marker, +/-Inf, -0, denormals included) and same timestamps (negative ones included).
"""
import os
import random
import re
import shutil
import subprocess
import tempfile
from collections import OrderedDict

from obslib import BIN, TestRun

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
TSDB_WRITE = os.path.join(BIN, "tsdb-write")
ULID_RE = re.compile(r"^[0-7][0-9A-HJKMNP-TV-Z]{25}$")


def run(args, timeout=300):
    p = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise AssertionError("%s failed (%d):\n%s\n%s" % (args, p.returncode, p.stdout[-2000:],
                                                           p.stderr[-2000:]))
    return p


def data_dir():
    d = tempfile.mkdtemp(prefix="obs-tsdb-")
    # promtool tsdb dump opens the directory as a read-only Prometheus DB, which expects a
    # WAL directory (empty is fine).
    os.mkdir(os.path.join(d, "wal"))
    return d


def write_block(d, *args):
    """Run tsdb-write; returns (summary dict, expected dump lines)."""
    p = run([TSDB_WRITE, "-print", "-verify", *args, d])
    summary = {}
    for line in p.stderr.splitlines():
        for kv in line.split():
            if "=" in kv:
                k, v = kv.split("=", 1)
                summary[k] = v
    assert summary.get("verify") == "ok", p.stderr
    assert ULID_RE.match(summary["ulid"]), summary
    return summary, p.stdout.splitlines()


def dump(d, *args):
    return run([PROMTOOL, "tsdb", "dump", *args, d]).stdout.splitlines()


def assert_same_lines(got, want):
    if got == want:
        return
    for i, (g, w) in enumerate(zip(got, want)):
        if g != w:
            raise AssertionError("line %d differs:\n  promtool: %s\n  expected: %s" % (i, g, w))
    raise AssertionError("promtool printed %d lines, expected %d" % (len(got), len(want)))


def test_list_analyze_dump():
    d = data_dir()
    try:
        s, want = write_block(d, "-series", "50", "-samples", "500", "-interval-ms", "15000",
                              "-seed", "7", "-special")
        ulid = s["ulid"]
        nseries, nsamples, nchunks = int(s["series"]), int(s["samples"]), int(s["chunks"])
        assert nseries == 53 and nsamples == 50 * 500 + 20 + 16 + 1, s
        assert len(want) == nsamples

        # list: one block, our ULID, the counts from meta.json
        out = run([PROMTOOL, "tsdb", "list", d]).stdout.splitlines()
        rows = [ln.split() for ln in out[1:] if ln.strip()]
        assert len(rows) == 1, out
        row = rows[0]
        assert row[0] == ulid, out
        assert row[1] == "-5000000000000", out  # min time: the negative edge timestamp
        assert [int(x) for x in row[4:7]] == [nsamples, nchunks, nseries], out

        # analyze: reads postings, series and every chunk
        out = run([PROMTOOL, "tsdb", "analyze", d, ulid]).stdout
        assert "Block ID: %s" % ulid in out, out
        assert re.search(r"^Series: %d$" % nseries, out, re.M), out
        assert re.search(r"^Label names: 3$", out, re.M), out
        # label pairs: 7 metric names + 3 edge names, 50 instances, 3 jobs = 63
        assert re.search(r"^Postings \(unique label pairs\): 63$", out, re.M), out
        assert re.search(r"^Postings entries \(total label pairs\): 153$", out, re.M), out

        # dump: every sample, verbatim
        got = dump(d)
        assert_same_lines(got, want)
        edge = [ln for ln in got if ln.startswith('{__name__="tsdb_edge_values"}')]
        assert [ln.split()[1] for ln in edge[:6]] == ["0", "-0", "NaN", "NaN", "+Inf", "-Inf"]
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_dump_time_range():
    d = data_dir()
    try:
        _, want = write_block(d, "-series", "20", "-samples", "300", "-walk", "int")
        ts = sorted({int(ln.rsplit(" ", 1)[1]) for ln in want})
        lo, hi = ts[100], ts[200]  # chunk boundaries (120, 240) fall inside
        got = dump(d, "--min-time=%d" % lo, "--max-time=%d" % hi)
        sub = [ln for ln in want if lo <= int(ln.rsplit(" ", 1)[1]) <= hi]
        assert len(sub) == 20 * 101
        assert_same_lines(got, sub)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_two_blocks_merge():
    # Two blocks with the same series and adjacent time ranges: promtool merges them per
    # series, in time order.
    d = data_dir()
    try:
        s1, w1 = write_block(d, "-series", "30", "-samples", "240", "-seed", "1",
                             "-start-ms", "1700000000000")
        s2, w2 = write_block(d, "-series", "30", "-samples", "240", "-seed", "2",
                             "-start-ms", str(1700000000000 + 240 * 15000))
        assert s1["ulid"] != s2["ulid"]
        out = run([PROMTOOL, "tsdb", "list", d]).stdout
        assert s1["ulid"] in out and s2["ulid"] in out, out
        merged = OrderedDict()
        for ln in w1 + w2:
            merged.setdefault(ln.split("}", 1)[0], []).append(ln)
        want = [ln for lines in merged.values() for ln in lines]
        assert_same_lines(dump(d), want)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_reader_on_prometheus_blocks():
    # The other direction: blocks written by Prometheus' own code (promtool tsdb
    # create-blocks-from openmetrics) are opened, fully verified and read by
    # metricsd/tsdb/block_read.c (tsdb-write -dump), and give the same samples promtool dumps;
    # our XOR encoder reproduces Prometheus' chunk bytes exactly.
    d = data_dir()
    try:
        om = os.path.join(d, "input.om")
        t0 = 1700000000
        rnd = random.Random(7)
        with open(om, "w") as f:
            for i in range(8):
                v = float(i) * 1.5
                for k in range(1500):  # 6h15m at 15s: several 2h blocks
                    f.write('om_metric{inst="h%d",job="j%d"} %r %d\n' % (i, i % 2, v, t0 + 15 * k))
                    if i % 2:
                        v += rnd.uniform(-1, 1)  # arbitrary doubles
                    else:
                        v += (k % 7 - 3) * 0.25  # short XORs, repeats
                f.write('om_other_total{inst="h%d"} %d %d\n' % (i, i, t0))
            f.write("# EOF\n")
        run([PROMTOOL, "tsdb", "create-blocks-from", "openmetrics", om, d])
        os.remove(om)
        blocks = sorted(x for x in os.listdir(d) if ULID_RE.match(x))
        assert len(blocks) >= 3, blocks
        ours = []
        for blk in blocks:
            p = run([TSDB_WRITE, "-dump", os.path.join(d, blk)])
            assert "verify=ok" in p.stderr, p.stderr
            # every chunk Prometheus encoded is re-encoded by metricsd/tsdb/xor.c to the
            # same bytes
            assert "reencode_diff=0" in p.stderr, p.stderr
            ours += p.stdout.splitlines()
        theirs = dump(d)
        assert len(theirs) == 8 * 1500 + 8, len(theirs)
        assert sorted(ours) == sorted(theirs)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_bytes_per_sample():
    # The figures reported for the format: random walks, 120 samples per series (one chunk
    # each). Smaller than the 100k-series run in the report, same shape. Integer steps
    # (counter-like) compress well; arbitrary doubles need most of their mantissa.
    d = tempfile.mkdtemp(prefix="obs-tsdb-")
    try:
        for walk, limit in (("int", 2.5), ("float", 8.5)):
            p = run([TSDB_WRITE, "-series", "10000", "-samples", "120", "-walk", walk, d])
            line = p.stderr.strip().splitlines()[-1]
            kv = dict(x.split("=", 1) for x in line.split())
            cps, ips = float(kv["chunk_bytes_per_sample"]), float(kv["index_bytes_per_sample"])
            print("     %s walk: %.3f bytes/sample in chunks, %.3f in the index" %
                  (walk, cps, ips))
            assert 0 < cps < limit, line
            assert 0 < ips < 1.5, line
    finally:
        shutil.rmtree(d, ignore_errors=True)


TestRun(globals()).main()
