"""deploy/local-cluster.sh as a user runs it: start (Redis, three nodes,
HAProxy), a worker through the balancer, every node serving it, a node
killed and restarted, stop. Ports are picked free; the binaries are the
build under test (WHT_BIN_DIR), so the script does not build."""

import os
import random
import shutil
import socket
import subprocess
import tempfile
import time

import pytest

from conftest import ROOT, Backend, Proc, binary, wait_for

SCRIPT = os.path.join(ROOT, "deploy", "local-cluster.sh")


def free_block(n):
    """A base port b with b+1..b+n free."""
    for _ in range(200):
        b = random.randint(20000, 60000 - n)
        socks = []
        try:
            for i in range(1, n + 1):
                s = socket.socket()
                s.bind(("127.0.0.1", b + i))
                socks.append(s)
            return b
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free port block")


def get(port, path, timeout=5, source="127.0.0.1"):
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout, source_address=(source, 0))
    c.request("GET", path)
    r = c.getresponse()
    r.read()
    c.close()
    return r.status


@pytest.mark.skipif(not shutil.which("haproxy") and not os.path.exists("/usr/sbin/haproxy"),
                    reason="haproxy not installed (deploy/install-deps.sh --test installs it)")
def test_local_cluster_script(procs):
    state = tempfile.mkdtemp(prefix="wht-local-cluster-")
    env = dict(os.environ, WHT_CLUSTER_DIR=state, WHT_BIN_DIR=os.path.dirname(os.path.dirname(binary("whtunnel"))),
               WHT_LB_PORT=str(free_block(1) + 1), WHT_NODE_BASE_PORT=str(free_block(3)),
               WHT_PEER_BASE_PORT=str(free_block(3)), WHT_ADMIN_BASE_PORT=str(free_block(3)),
               WHT_REDIS_PORT=str(free_block(1) + 1))
    env["PATH"] = env.get("PATH", "") + ":/usr/sbin:/sbin"
    lb = int(env["WHT_LB_PORT"])
    nodes = [int(env["WHT_NODE_BASE_PORT"]) + i for i in (1, 2, 3)]

    def run(*args):
        return subprocess.run([SCRIPT] + list(args), env=env, capture_output=True, text=True, timeout=120)
    try:
        r = run("start")
        assert r.returncode == 0, r.stdout + r.stderr
        assert "whclient ws://127.0.0.1:%d demo 8000 --token " % lb in r.stdout
        b = Backend()
        procs.append(b)
        tok = run("token", "demo").stdout.strip()
        c = Proc([binary("whclient"), "ws://127.0.0.1:%d" % lb, "demo", str(b.port), "--token", tok], name="client")
        procs.append(c)
        wait_for(lambda: get(lb, "/demo/status/204") == 204, 20, "demo through the balancer")
        for port in nodes:
            assert get(port, "/demo/status/204") == 204
        # HAProxy passes the viewer's address with the PROXY protocol: a node logs 127.0.0.5, not HAProxy's
        assert get(lb, "/demo/status/204?from=viewer", source="127.0.0.5") == 204

        def logged_viewer():
            for i in (1, 2, 3):
                with open(os.path.join(state, "node%d.log" % i)) as f:
                    if any("path=/demo/status/204 " in line and line.rstrip().endswith("client=127.0.0.5")
                           for line in f):
                        return True
            return False
        wait_for(logged_viewer, 10, "a node's access line with client=127.0.0.5")
        st = run("status").stdout
        assert st.count(": running") == 5, st
        # kill one node at a time: the worker re-registers through the balancer, every request still answers
        for n, how in ((1, "kill"), (2, "drain")):
            r = run(how, str(n))
            assert r.returncode == 0, r.stderr
            if how == "drain":
                assert "1 clean drain(s)" in r.stdout, r.stdout
            answers = []
            deadline = time.time() + 3
            while time.time() < deadline:
                answers.append(get(lb, "/demo/status/204", timeout=10))
                time.sleep(0.05)
            print("\nnode%d %s: %d of %d requests through the balancer answered 204 (others: %s)"
                  % (n, how, answers.count(204), len(answers), sorted(set(answers) - {204})))
            assert answers[-1] == 204 and answers.count(204) >= len(answers) // 2, answers
            wait_for(lambda: get(lb, "/demo/status/204") == 204, 10, "demo after node%d: %s" % (n, how))
            r = run("restart", str(n))
            assert r.returncode == 0, r.stderr
        for port in nodes:
            wait_for(lambda: get(port, "/demo/status/204") == 204, 10, "demo via node on %d" % port)
    finally:
        r = run("stop")
    assert r.returncode == 0, r.stderr
    st = run("status").stdout
    assert st.count(": stopped") == 5, st
    for name in ("node1", "node2", "node3"):
        with open(os.path.join(state, name + ".log")) as f:
            log = f.read()
        assert not any(m in log for m in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")), log[-2000:]
    shutil.rmtree(state, ignore_errors=True)
