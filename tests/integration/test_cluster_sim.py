"""tests/bench/cluster_sim.py (the cluster at scale, docs/benchmarks.md "Cluster at scale") run
once in its tiny mode, so that it cannot rot: 3 nodes, a private redis-server, 300 idle
workers (simload.py), four whclient workers behind a real backend, then a drain storm and a
Redis restarted empty.

Asserts that every figure is there and that the storm lost nothing (no relayed request and no
probe request failed, every moved worker registered again and every worker is open again),
nor the Redis restart (every record back, no node seen down, no relayed request failed); no
timing is asserted.
"""

import json
import os
import shutil
import subprocess
import tempfile

import pytest

from conftest import BUILD, ROOT, slow_check

pytestmark = pytest.mark.skipif(not shutil.which("redis-server"), reason="redis-server is not installed")


def test_cluster_sim_tiny():
    slow_check()  # a harness check: once per suite run, in the release build
    out = tempfile.NamedTemporaryFile(prefix="wht-clsim-", suffix=".json", delete=False)
    out.close()
    try:
        p = subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "tests", "bench", "cluster_sim.py"), "--tiny",
                            "--load", "python", "--redis-restart", "--build", BUILD, "--json", out.name],
                           capture_output=True, timeout=300)
        text = p.stdout.decode(errors="replace")
        assert p.returncode == 0, text + p.stderr.decode(errors="replace")
        with open(out.name) as f:
            res = json.load(f)
    finally:
        os.unlink(out.name)
    assert "| Redis commands/s |" in text and "RESULT " in text
    sd, st = res["steady"], res["storm"]
    assert res["nodes"] == 3 and res["workers"] == 300
    for k in ("commands_per_s", "redis_cpu_pct", "relayed_ok"):
        assert k in sd, k
    assert sd["commands_per_s"] > 0 and sd["relayed_ok"] > 0 and sd["relayed_failed"] == 0, sd
    assert sd["by_command"].get("evalsha", 0) > 0, sd  # the heartbeats
    for k in ("commands_per_s", "redis_cpu_pct", "peak_commands_per_s", "all_registered_s", "routed_everywhere_s",
              "drain_s"):
        assert st.get(k) is not None, (k, st)
    # the storm lost nothing
    assert st["moved"] > 50, st
    assert st["sets_heard"] >= st["moved"], st
    assert st["relayed_ok"] > 0 and st["relayed_failed"] == 0, st
    assert st["probe_ok"] > 0 and st["probe_bad"] == 0, st
    assert st["all_open_again"] and st["open_after"] == 300 and st["load_failed"] == 0, st
    # Redis killed and started empty: every record back, no node seen down, no relayed request failed
    rs = res["restart"]
    assert rs["all_back_s"] is not None and rs["keys_back"] >= rs["keys_expected"], rs
    assert rs["min_peers_up"] == rs["peers_expected"] == 1, rs
    assert rs["relayed_ok"] > 0 and rs["relayed_failed"] == 0, rs
    # every remaining node caches the routes of the others' workers, with its estimated memory
    assert len(res["nodes_after"]) == 2
    for n in res["nodes_steady"] + res["nodes_after"]:
        assert n["routes"] > 0 and n["cache_bytes"] > 0 and n["rss_kib"] > 0, n
