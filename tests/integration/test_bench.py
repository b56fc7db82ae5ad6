"""tests/bench/bench.sh in a tiny mode, so that its parts cannot rot: each part runs once
(--repeat 1) with small counts against the test build, and must print its table with sane
figures (every worker registered, no failed request). No timing is asserted: docs/benchmarks.md
has the figures of full runs.

Needs root (bench.sh raises limits and makes a private network namespace), nginx and wrk
(deploy/install-deps.sh --test installs them)."""

import os
import re
import shutil
import subprocess

import pytest

from conftest import BUILD, ROOT

BENCH = os.path.join(ROOT, "tests", "bench", "bench.sh")
SBIN_PATH = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"


def need_tools():
    if os.geteuid() != 0:
        pytest.skip("bench.sh runs as root (limits, network namespace)")
    miss = [t for t in ("nginx", "wrk", "curl", "openssl") if not shutil.which(t, path=SBIN_PATH)]
    if miss:
        pytest.skip("bench.sh needs %s (deploy/install-deps.sh --test)" % ", ".join(miss))
    for exe in ("node/whtunnel", "client/whclient", "tests/bench/whload"):
        if not os.access(os.path.join(BUILD, exe), os.X_OK):
            pytest.skip("%s is not built in %s" % (exe, BUILD))


def run_bench(*args, timeout=240):
    need_tools()
    env = dict(os.environ, WHT_BUILD_DIR=BUILD, PATH=SBIN_PATH)
    out = subprocess.run(["bash", BENCH, "--no-install", "--repeat", "1", "--duration", "1"] + list(args),
                         capture_output=True, text=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def row(text, first):
    """The fields of the table row whose first field is `first`."""
    for line in text.splitlines():
        f = line.split()
        if f and f[0] == first:
            return f
    raise AssertionError("no row %r in:\n%s" % (first, text))


def test_bench_register():
    out = run_bench("--part", "register", "--registrations", "100")
    for name in ("plain", "tls"):
        f = row(out, name)  # server registrations/s vs-plain node-cpu whload-cpu
        assert float(f[1]) > 0, out
        assert float(f[3]) >= 0 and float(f[4]) >= 0, out
    assert re.search(r"^\s+run 1 tls .* \(100 in ", out, re.M), out
    assert "7. registrations: plain" in out, out


def test_bench_idle():
    out = run_bench("--part", "idle", "--idle-workers", "50")
    m = re.search(r"run 1: RSS (\d+) -> (\d+) KiB .*; 50 registered in ([\d.]+) s", out)
    assert m, out
    assert int(m.group(1)) > 0 and int(m.group(2)) > 0, out
    without = row(out, "without")  # without idle workers req/s p50 p99 errors
    assert float(without[3]) > 0 and int(without[6]) == 0, out
    with_ = row(out, "with")  # with 50 req/s p50 p99 errors
    assert with_[1] == "50" and float(with_[2]) > 0 and int(with_[5]) == 0, out
    assert "warning" not in out, out


def test_bench_streams():
    out = run_bench("--part", "streams", "--viewers", "50")
    for name in ("nginx-proxy", "whtunnel"):
        f = row(out, name)  # path req/s vs p50 p99 requests failed
        assert float(f[1]) > 0 and int(f[5]) > 0, out
        assert int(f[6]) == 0, "failed viewer requests through %s:\n%s" % (name, out)
    m = re.search(r"peak RSS \(VmHWM, median of runs\): node (\d+) KiB, whclient (\d+) KiB", out)
    assert m and int(m.group(1)) > 0 and int(m.group(2)) > 0, out
