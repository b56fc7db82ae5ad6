"""tests/bench/bench.sh in a tiny mode, one test per part, so that the harness cannot rot: each
part runs once (--repeat 1, 1-second wrk runs, a 64 MiB file, 20 idle workers, a 2-second slow
viewer; 100 registrations, 50 idle workers and 50 viewers for parts register, idle and streams)
against the build under test (its tests/bench/whload included), in this network namespace, and
must print its table with every figure present and above zero, every worker registered and no
failed request. No timing or ratio is asserted (docs/benchmarks.md has the figures of full runs).
Needs root (nginx binds and drops to its user; bench.sh raises limits) and nginx, wrk, curl,
openssl, redis-server and haproxy (deploy/install-deps.sh --test); skips otherwise, saying what is
missing."""

import os
import re
import shutil
import subprocess

import pytest

from conftest import BUILD, ROOT, slow_check

BENCH = os.path.join(ROOT, "tests", "bench", "bench.sh")
TOOLS = ("nginx", "wrk", "curl", "openssl", "redis-server", "haproxy")
SBIN_PATH = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"


def need_tools():
    slow_check()  # a harness check: once per suite run, in the release build
    if os.geteuid() != 0:
        pytest.skip("bench.sh needs root (nginx, limits); run the suite as root")
    missing = [t for t in TOOLS if not shutil.which(t, path=SBIN_PATH)]
    if missing:
        pytest.skip("bench.sh needs %s (deploy/install-deps.sh --test)" % ", ".join(missing))
    for exe in ("node/whtunnel", "client/whclient", "tests/bench/whload"):
        if not os.access(os.path.join(BUILD, exe), os.X_OK):
            pytest.skip("%s is not built in %s" % (exe, BUILD))


def bench(part, *extra):
    """Runs one part of bench.sh tiny; returns its stdout (fails the test if bench.sh failed)."""
    need_tools()
    cmd = [BENCH, "--no-install", "--no-netns", "--repeat", "1", "--duration", "1", "--file-mib", "64",
           "--workers", "20", "--slow-seconds", "2", "--part", part] + list(extra)
    env = dict(os.environ, WHT_BUILD_DIR=BUILD, PATH=SBIN_PATH)
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env, stdin=subprocess.DEVNULL)
    text = out.stdout + out.stderr
    assert out.returncode == 0, text
    assert "FAILED" not in text, text
    assert not any(int(e) for e in re.findall(r"errors (\d+)", out.stdout)), text  # wrk's run lines
    return out.stdout


def row(out, name):
    """The figures of the table row that starts with name (the first such line whose next field
    is a number), as floats, units and ratios' "x" dropped."""
    for line in out.splitlines():
        f = line.split()
        if len(f) > 1 and f[0] == name and re.match(r"^[0-9.]+$", f[1]):
            return [float(v.rstrip("x")) for v in f[1:] if re.match(r"^[0-9.]+x?$", v)]
    raise AssertionError("no row %r in:\n%s" % (name, out))


def positive(out, name, *cols):
    figures = row(out, name)
    for c in cols:
        assert figures[c] > 0, "%s: column %d is %s in:\n%s" % (name, c, figures[c], out)
    return figures


def test_bench_http():
    out = bench("http")
    for name in ("direct", "nginx-proxy", "whtunnel"):
        positive(out, name, 0, 3, 4)  # req/s, p50, p99
    assert "errors 0" in out


def test_bench_throughput():
    out = bench("throughput")
    for name in ("direct", "nginx-proxy", "whtunnel"):
        positive(out, name, 0, 3)  # download and upload MiB/s


def test_bench_memory():
    out = bench("memory")
    positive(out, "whtunnel", 0, 1)  # RSS before and after the 20 workers


def test_bench_ws():
    out = bench("ws")
    for name in ("direct", "nginx-proxy", "whtunnel"):
        positive(out, name, 0, 1, 2)  # median, p99, min round trip


def test_bench_slow():
    out = bench("slow")
    m = re.search(r"whtunnel: node RSS start (\d+) KiB, max (\d+) KiB.* (\d+) MiB in ([0-9.]+) s", out)
    assert m and int(m.group(1)) > 0 and int(m.group(3)) > 0, out


def test_bench_cluster():
    out = bench("cluster")
    for name in ("local:", "relayed:", "l4:"):
        m = re.search(r"^\s+%s\s+(\d+) req/s.* ([0-9.]+) MiB/s" % name, out, re.M)
        assert m and int(m.group(1)) > 0 and float(m.group(2)) > 0, out


def test_bench_tls():
    out = bench("tls")
    assert out.count("TLSv1.3 / TLS_AES_128_GCM_SHA256") == 2, out  # what both servers chose
    for name in ("nginx-proxy", "whtunnel", "nginx-tls", "nginx-tls2", "whtunnel-tls"):
        positive(out, name, 0, 2, 3, 4)  # req/s, p50, p99, download MiB/s


def test_bench_cost():
    out = bench("cost")
    for name in ("nginx-proxy", "whtunnel-node", "whtunnel-whclient", "whtunnel-total"):
        assert len(row(out, name)) == 3, out  # per 100k requests, per GiB down, per GiB up; no nan
    m = re.search(r"in the kernel \(stime\), CPU s / 100k requests: nginx-proxy ([0-9.]+) \((\d+)%\); node ([0-9.]+) "
                  r"\((\d+)%\); whclient ([0-9.]+) \((\d+)%\)", out)
    assert m and all(0 <= int(m.group(i)) <= 100 for i in (2, 4, 6)), out
    positive(out, "nginx-proxy", 0)
    positive(out, "whtunnel-total", 0, 1, 2)
    assert re.search(r"wrk errors \(non-2xx, socket\): 0$", out, re.M), out


def fields(text, first):
    """The fields of the table row whose first field is `first`."""
    for line in text.splitlines():
        f = line.split()
        if f and f[0] == first:
            return f
    raise AssertionError("no row %r in:\n%s" % (first, text))


def test_bench_register():
    out = bench("register", "--registrations", "100")
    for name in ("plain", "tls"):
        f = fields(out, name)  # server registrations/s vs-plain node-cpu whload-cpu
        assert float(f[1]) > 0, out
        assert float(f[3]) >= 0 and float(f[4]) >= 0, out
    assert re.search(r"^\s+run 1 tls .* \(100 in ", out, re.M), out
    assert "9. registrations: plain" in out, out


def test_bench_idle():
    out = bench("idle", "--idle-workers", "50")
    m = re.search(r"run 1: RSS (\d+) -> (\d+) KiB .*; 50 registered in ([\d.]+) s", out)
    assert m, out
    assert int(m.group(1)) > 0 and int(m.group(2)) > 0, out
    without = fields(out, "without")  # without idle workers req/s p50 p99 errors
    assert float(without[3]) > 0 and int(without[6]) == 0, out
    with_ = fields(out, "with")  # with 50 req/s p50 p99 errors
    assert with_[1] == "50" and float(with_[2]) > 0 and int(with_[5]) == 0, out
    assert "warning" not in out, out


def test_bench_streams():
    out = bench("streams", "--viewers", "50")
    for name in ("nginx-proxy", "whtunnel"):
        f = fields(out, name)  # path req/s vs p50 p99 requests failed
        assert float(f[1]) > 0 and int(f[5]) > 0, out
        assert int(f[6]) == 0, "failed viewer requests through %s:\n%s" % (name, out)
    m = re.search(r"peak RSS \(VmHWM, median of runs\): node (\d+) KiB, whclient (\d+) KiB", out)
    assert m and int(m.group(1)) > 0 and int(m.group(2)) > 0, out
