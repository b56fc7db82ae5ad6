"""The node's memory per idle worker stays near what docs/benchmarks.md reports (1.85-1.91 KiB
at 1,000-15,000 workers): 1,000 workers registered and held by tests/bench/whload, the node's RSS
before and after (measured as tests/bench/bench.sh part memory does: after a warm-up registration
has paged in the code it uses, 64 handshakes in flight), at most 2.4 KiB each. A guard against a regression of a kilobyte per worker
(an output reservation left uncommitted in every idle session once cost 1 KiB each), not a
benchmark. Not in a sanitizer build, whose shadow memory and redzones make RSS meaningless."""

import os
import subprocess
import time

import pytest

from conftest import BUILD, SECRET_A, Node, rss_kb

WORKERS = 1000
MAX_KIB_PER_WORKER = 2.4


def sanitized():
    try:
        with open(os.path.join(BUILD, "CMakeCache.txt")) as f:
            return any(line.strip() == "WHT_SANITIZE:BOOL=ON" for line in f)
    except OSError:
        return False


def hold(whload, port, count, prefix):
    """whload holding count workers on the node (ends when its stdin closes, or after --hold 0 for
    a warm-up: then it exits once all registered)."""
    hold_s = "0" if prefix == "warm" else "60"
    return subprocess.Popen([whload, "workers", "--nodes", "127.0.0.1:%d" % port, "--count", str(count), "--secret",
                             SECRET_A, "--prefix", prefix, "--hold", hold_s, "--timeout", "50", "--concurrency", "64"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.PIPE, text=True)


def test_idle_worker_memory(procs):
    if sanitized():
        pytest.skip("RSS per worker means nothing under AddressSanitizer (runs in the release build)")
    whload = os.path.join(BUILD, "tests", "bench", "whload")
    if not os.access(whload, os.X_OK):
        pytest.skip("tests/bench/whload is not built in %s" % BUILD)
    node = Node(env={"WHT_LOG_LEVEL": "warn"})
    procs.append(node)
    hold(whload, node.port, 10, "warm").wait(20)  # registrations page in several MiB of code first
    time.sleep(1)
    before = rss_kb(node.p.pid)
    load = hold(whload, node.port, WORKERS, "mem")
    try:
        line = load.stdout.readline()  # 'ready N seconds=T rate=R' once all registered
        assert line.startswith("ready %d " % WORKERS), line + load.stderr.read()
        last = None
        for _ in range(20):  # settled: the same RSS twice, 0.25 s apart
            now = rss_kb(node.p.pid)
            if now == last:
                break
            last = now
            time.sleep(0.25)
        per_worker = (rss_kb(node.p.pid) - before) / WORKERS
        assert per_worker <= MAX_KIB_PER_WORKER, "%.2f KiB per idle worker" % per_worker
        assert per_worker > 0.5, "%.2f KiB per idle worker: were they held?" % per_worker
    finally:
        load.stdin.close()  # whload ends on stdin EOF
        load.wait(20)
