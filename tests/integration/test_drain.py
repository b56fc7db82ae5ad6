"""Draining (SIGTERM in a cluster) and rolling restarts behind a real load
balancer: HAProxy (Debian's) in front of three nodes on one redis-server,
workers (whclient) that connect through HAProxy, viewers that go through
HAProxy. Every node is restarted in turn while requests keep flowing: none
may fail."""

import http.client
import os
import shutil
import tempfile
import threading
import time

import pytest

from conftest import Backend, Client, Node, Proc, free_port, make_token, port_open, wait_for
from test_cluster import CLUSTER_SECRET, Redis, status

HAPROXY = shutil.which("haproxy") or ("/usr/sbin/haproxy" if os.path.exists("/usr/sbin/haproxy") else None)
pytestmark = pytest.mark.skipif(not HAPROXY, reason="haproxy not installed (deploy/install-deps.sh --test)")


class HAProxy(Proc):
    def __init__(self, node_ports):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="wht-haproxy-")
        cfg = os.path.join(self.dir, "haproxy.cfg")
        servers = "\n".join("    server n%d 127.0.0.1:%d" % (i + 1, p) for i, p in enumerate(node_ports))
        with open(cfg, "w") as f:
            f.write("""global
    log stdout format raw local0 notice
defaults
    mode http
    log global
    option httplog
    timeout connect 2s
    timeout client 1m
    timeout server 1m
    timeout tunnel 1h
    option http-server-close
    option redispatch
    retries 3
frontend front
    bind 127.0.0.1:%d
    default_backend nodes
backend nodes
    balance roundrobin
    option httpchk GET /__lbheartbeat__
    http-check expect status 200
    default-server check inter 200ms fall 1 rise 1
%s
""" % (self.port, servers))
        super().__init__([HAPROXY, "-f", cfg, "-db"], name="haproxy")
        wait_for(lambda: port_open(self.port), 10, "haproxy to listen")


def cluster_env(rds, name, port):
    return {"REDIS_URL": rds.url, "WHT_NODE_ID": name, "WHT_PEER_ADDR": "127.0.0.1:0",
            "WHT_CLUSTER_SECRET": CLUSTER_SECRET, "WHT_REDIS_PREFIX": "d:", "WHT_DRAIN_TIMEOUT": "20s"}


def get(port, path, body=None, timeout=20):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    c.request("POST" if body is not None else "GET", path, body=body)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, data


GO_CLIENT = os.environ.get("WHT_GO_CLIENT")


@pytest.mark.parametrize("client", ["whclient", "go"])
def test_rolling_restart_loses_no_request(procs, client):
    if client == "go" and not (GO_CLIENT and os.path.exists(GO_CLIENT)):
        pytest.skip("WHT_GO_CLIENT not set (the original Go wst-client, built by hand)")
    rds = Redis()
    procs.append(rds)
    ports = [free_port() for _ in range(3)]
    nodes = []
    for i, p in enumerate(ports):
        n = Node(env=cluster_env(rds, "n%d" % (i + 1), p), port=p)
        procs.append(n)
        nodes.append(n)
    for n in nodes:
        wait_for(lambda: status(n)["peers_up"] == 2, 15, "membership")
    lb = HAProxy(ports)
    procs.append(lb)
    wids = ["r1", "r2", "r3"]
    for wid in wids:
        b = Backend()
        procs.append(b)
        if client == "go":  # the original protocol: no GOAWAY; the node closes it once idle
            c = Proc([GO_CLIENT, "http://127.0.0.1:%d" % lb.port, wid, str(b.port), "--token", make_token(wid)],
                     name="go-client")
        else:
            c = Client("http://127.0.0.1:%d" % lb.port, wid, b.port)
        procs.append(c)
    for wid in wids:
        wait_for(lambda: get(lb.port, "/%s/status/204" % wid)[0] == 204, 10, wid + " through haproxy")

    stop = threading.Event()
    results = {"ok": 0, "failed": []}
    lock = threading.Lock()

    def load(k):
        i = 0
        while not stop.is_set():
            wid = wids[(i + k) % 3]
            i += 1
            try:
                if i % 3 == 0:
                    body = os.urandom(30000)
                    st, data = get(lb.port, "/%s/mirror" % wid, body=body)
                    good = st == 200 and data == body
                elif i % 3 == 1:
                    st, data = get(lb.port, "/%s/bytes/50000" % wid)
                    good = st == 200 and len(data) == 50000
                else:
                    st, data = get(lb.port, "/%s/status/204" % wid)
                    good = st == 204
            except Exception as e:  # noqa: BLE001
                st, good, data = repr(e), False, b""
            with lock:
                if good:
                    results["ok"] += 1
                else:
                    results["failed"].append((time.time(), wid, st, data[:100] if not good and isinstance(st, int) else b""))
    threads = [threading.Thread(target=load, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    try:
        time.sleep(1)
        for i in range(3):
            t0 = time.time()
            assert nodes[i].stop(sig=15, timeout=30) == 0
            drained = time.time() - t0
            assert "drain: done" in nodes[i].output(), nodes[i].output()[-3000:]
            n = Node(env=cluster_env(rds, "n%d" % (i + 1), ports[i]), port=ports[i])
            procs.append(n)
            nodes[i] = n
            wait_for(lambda: status(n)["peers_up"] == 2, 15, "n%d back in the membership" % (i + 1))
            print("\nn%d drained in %.2f s and is back; %d requests so far" % (i + 1, drained, results["ok"]))
            time.sleep(1)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    print("rolling restart of 3 nodes: %d requests answered, %d failed %s"
          % (results["ok"], len(results["failed"]), results["failed"][:10]))
    assert results["ok"] > 300
    assert not results["failed"], results["failed"][:10]
