"""The cluster: three real nodes sharing a real redis-server, real workers
(whclient, and raw Go-like registrations) and real backends, all on 127.0.0.1.

The routing tests share one cluster (module fixture); each fault test makes
its own. Redis runs with requirepass everywhere, so AUTH is always exercised.
"""

import base64
import hashlib
import http.client
import json
import os
import re
import shutil
import socket
import threading
import time

import pytest
import redis

from backend import pattern
from conftest import (Backend, Client, Node, Proc, check_concurrent_downloads, check_streamed_lines, check_ws_echo,
                      free_port, make_token, port_open, read_until_close, recv_to_close, sanitizer_reports, wait_for)
from test_proxy import MALFORMED
from test_worker_protocol import FakeWorker

CLUSTER_SECRET = "cluster-secret-for-tests-0123456789"
REDIS_PASSWORD = "redis pass/word"
REDIS_SERVER = os.environ.get("WHT_REDIS_SERVER") or shutil.which("redis-server") or "/usr/bin/redis-server"


class Redis(Proc):
    """A private redis-server (no persistence) on a free port."""

    def __init__(self, port=None, password=REDIS_PASSWORD):
        self.port = port or free_port()
        self.password = password
        args = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        if password:
            args += ["--requirepass", password]
        super().__init__(args, name="redis")
        wait_for(lambda: port_open(self.port), 10, "redis to listen")

    @property
    def url(self):
        pw = self.password.replace(" ", "%20").replace("/", "%2F") if self.password else None
        return "redis://%s127.0.0.1:%d" % (":%s@" % pw if pw else "", self.port)

    def client(self):
        return redis.Redis(host="127.0.0.1", port=self.port, password=self.password, socket_timeout=5)

    def commandstats(self):
        return {k[len("cmdstat_"):] if k.startswith("cmdstat_") else k: v["calls"]
                for k, v in self.client().info("commandstats").items()}


def cluster_node(rds, name, extra=None):
    env = {"REDIS_URL": rds.url, "WHT_NODE_ID": name, "WHT_PEER_ADDR": "127.0.0.1:0",
           "WHT_CLUSTER_SECRET": CLUSTER_SECRET, "WHT_REDIS_PREFIX": "t:"}
    env.update(extra or {})
    return Node(env=env)


def status(node):
    ctx = getattr(node, "ssl_ctx", None)
    c = (http.client.HTTPSConnection("127.0.0.1", node.port, timeout=5, context=ctx) if ctx
         else http.client.HTTPConnection("127.0.0.1", node.port, timeout=5))
    c.request("GET", "/__cluster__")
    st = json.loads(c.getresponse().read())
    c.close()
    return st


def wait_peers(nodes, n, timeout=15):
    for node in nodes:
        wait_for(lambda: status(node)["peers_up"] == n, timeout, "%d peers seen by node %s" % (n, node.port))


def fetch(node, method, path, body=None, headers=None, timeout=30):
    c = http.client.HTTPConnection("127.0.0.1", node.port, timeout=timeout)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r, data


def check_clean(procs):
    reports = []
    for p in procs:
        if p.name == "redis":
            continue
        reports += ["%s %s: %s" % (p.name, p.log.name, line) for line in sanitizer_reports(p)]
    if reports:
        pytest.fail("sanitizer reports:\n" + "\n".join(reports[:20]), pytrace=False)


@pytest.fixture
def cprocs():
    started = []
    yield started
    for p in reversed(started):
        p.stop()
    check_clean(started)


class Cluster:
    def __init__(self, started, n=3, workers=True, node_env=None, ssl_ctx=None):
        self.started = started
        self.redis = Redis()
        started.append(self.redis)
        self.nodes = []
        for i in range(n):
            node = cluster_node(self.redis, "n%d" % (i + 1), node_env)
            node.ssl_ctx = ssl_ctx
            started.append(node)
            self.nodes.append(node)
        wait_peers(self.nodes, n - 1)
        self.backends, self.clients = [], []
        if workers:  # worker wI on node I, each with its own backend
            for i, node in enumerate(self.nodes):
                b, c = self.add_worker(node.url, "w%d" % (i + 1))
                self.backends.append(b)
                self.clients.append(c)
            self.wait_routes()

    def add_worker(self, url, wid, args=()):
        """A backend and a whclient registering it as wid at url; both stopped with the test."""
        b = Backend()
        self.started.append(b)
        c = Client(url, wid, b.port, args=args)
        self.started.append(c)
        return b, c

    def wait_routes(self, ids=None, timeout=10):
        ids = ids or ["w%d" % (i + 1) for i in range(len(self.nodes))]
        for node in self.nodes:
            for wid in ids:
                wait_for(lambda: fetch(node, "GET", "/%s/status/204" % wid)[0].status == 204, timeout,
                         "%s reachable through node %d" % (wid, node.port))


@pytest.fixture(scope="module")
def cluster():
    started = []
    try:
        yield Cluster(started)
    finally:
        for p in reversed(started):
            p.stop()
        check_clean(started)


VIA_TO = [(v, w) for v in range(3) for w in range(3)]


# ---- every worker through every node ---------------------------------------


@pytest.mark.parametrize("via,to", VIA_TO)
def test_echo_and_rewrites_through_every_node(cluster, via, to):
    node = cluster.nodes[via]
    wid = "w%d" % (to + 1)
    path = "/%s/echo/a?x=1" % wid
    r, data = fetch(node, "GET", path, headers={"X-Forwarded-For": "10.0.0.9"})
    assert r.status == 200
    info = json.loads(data)
    assert info["target"] == "/echo/a?x=1"
    hdrs = {k.lower(): v for k, v in info["headers"]}
    # the viewer's list replaced (127.0.0.1 is not in WHT_TRUSTED_PROXIES), once, by the node that holds the worker
    assert hdrs["x-forwarded-for"] == "127.0.0.1"
    assert hdrs["x-forwarded-proto"] == "http"
    assert hdrs["x-websocktunnel-original-path"] == path
    assert "x-whtunnel-relay" not in hdrs


@pytest.mark.parametrize("via,to", VIA_TO)
def test_bodies_byte_for_byte_through_every_node(cluster, via, to):
    node = cluster.nodes[via]
    wid = "w%d" % (to + 1)
    for size in (0, 1, 65537, 5 * 1024 * 1024):
        r, data = fetch(node, "GET", "/%s/bytes/%d" % (wid, size))
        assert r.status == 200 and len(data) == size
        assert hashlib.sha256(data).hexdigest() == r.getheader("X-Sha256")
    body = os.urandom(3 * 1024 * 1024 + 17)
    r, data = fetch(node, "PUT", "/%s/mirror" % wid, body=body)
    assert r.status == 200 and data == body
    r, data = fetch(node, "GET", "/%s/close/100000" % wid)
    assert data == pattern(100000)


@pytest.mark.parametrize("via,to", VIA_TO)
def test_chunked_both_ways_through_every_node(cluster, via, to):
    node = cluster.nodes[via]
    wid = "w%d" % (to + 1)
    body = os.urandom(1024 * 1024)

    def gen():
        for i in range(0, len(body), 10000):
            yield body[i:i + 10000]
    c = http.client.HTTPConnection("127.0.0.1", node.port, timeout=30)
    c.request("POST", "/%s/mirror" % wid, body=gen(), encode_chunked=True, headers={"Transfer-Encoding": "chunked"})
    r = c.getresponse()
    assert r.read() == body
    c.request("GET", "/%s/chunked/300000" % wid)
    r = c.getresponse()
    assert r.getheader("Transfer-Encoding") == "chunked"
    data = r.read()
    assert hashlib.sha256(data).hexdigest() == r.getheader("X-Sha256")
    c.request("HEAD", "/%s/bytes/1000" % wid)
    r = c.getresponse()
    assert r.status == 200 and r.read() == b"" and r.getheader("Content-Length") == "1000"
    for code in (204, 304, 500):
        c.request("GET", "/%s/status/%d" % (wid, code))
        r = c.getresponse()
        assert r.status == code and r.read() == b""
    c.close()


@pytest.mark.parametrize("via,to", [(0, 1), (2, 0), (1, 1)])
def test_streaming_response_through_relay(cluster, via, to):
    check_streamed_lines(cluster.nodes[via].port, "/w%d/slow" % (to + 1))


@pytest.mark.parametrize("via,to", VIA_TO)
def test_websocket_echo_through_every_node(cluster, via, to):
    check_ws_echo(cluster.nodes[via].port, "/w%d/ws" % (to + 1))


def test_keep_alive_through_relay_keeps_one_backend_connection(cluster):
    node = cluster.nodes[0]
    c = http.client.HTTPConnection("127.0.0.1", node.port, timeout=10)
    peers = set()
    for i in range(20):
        c.request("GET", "/w2/echo/%d" % i)
        r = c.getresponse()
        info = json.loads(r.read())
        assert info["target"] == "/echo/%d" % i
        peers.add(tuple(info["peer"]))
    c.close()
    assert len(peers) == 1, peers


def test_concurrent_viewers_across_nodes(cluster):
    ports = [n.port for n in cluster.nodes]
    check_concurrent_downloads(90, lambda i: ports[i % 3],
                               lambda i, j: "/w%d/bytes/%d" % ((i + j) % 3 + 1, 1000 + i * 37 + j))


def test_unknown_worker_404_on_every_node(cluster):
    for node in cluster.nodes:
        r, data = fetch(node, "GET", "/nobody/x")
        assert r.status == 404 and b"No client is connected" in data


def test_zero_redis_commands_per_request(cluster):
    """1,000 relayed requests (each on a new connection, so each one is routed)
    cost no Redis command: the calls counted during them are the background
    ones (membership heartbeats) that an idle period of the same length shows."""
    rds = cluster.redis
    ports = [n.port for n in cluster.nodes]

    def burst():
        for i in range(1000):
            port = ports[i % 3]
            wid = "w%d" % ((i + 1) % 3 + 1)  # never the node's own worker
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            c.request("GET", "/%s/status/204" % wid)
            assert c.getresponse().status == 204
            c.close()
    burst()  # warm: every route cached on every node
    idle0 = rds.commandstats()
    time.sleep(3)
    idle1 = rds.commandstats()
    t0 = time.time()
    burst()
    elapsed = time.time() - t0
    after = rds.commandstats()

    def diff(x, y):
        d = {k: y.get(k, 0) - x.get(k, 0) for k in y}
        d.pop("info", None)
        d.pop("auth", None)  # our own INFO connection
        return {k: v for k, v in d.items() if v}
    idle, during = diff(idle0, idle1), diff(idle1, after)
    rate = sum(idle.values()) / 3.0
    print("\nRedis commands (counting those run inside scripts) during 1000 relayed requests (%.2f s): %d %s;"
          " background (membership heartbeats) %.1f/s %s" % (elapsed, sum(during.values()), during, rate, idle))
    # a cost per request would show as >= 1000; what is left is the background for as long
    assert sum(during.values()) <= rate * elapsed * 1.5 + 30, (during, idle)
    st = [status(n) for n in cluster.nodes]
    assert sum(s["relayed_out"] for s in st) >= 2000


# ---- registration races, takeover, failures ---------------------------------


def registry_owner(rds, wid):
    v = rds.client().get("t:w:" + wid)
    return v.decode().split(" ", 1)[1] if v else None


def test_concurrent_registration_ends_with_one_session(cprocs):
    cl = Cluster(cprocs, workers=False)
    for rnd in range(5):
        wid = "dup%d" % rnd
        fakes = [None] * 3
        barrier = threading.Barrier(3)

        def reg(i):
            barrier.wait()
            fakes[i] = FakeWorker(cl.nodes[i].port, wid=wid)
        threads = [threading.Thread(target=reg, args=(i,)) for i in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)
        # within a second or two, exactly one session lives, and it is the one the registry names
        wait_for(lambda: sum(1 for f in fakes if not f.eof.is_set()) == 1, 5, "one live session for " + wid)
        time.sleep(0.5)
        live = [i for i, f in enumerate(fakes) if not f.eof.is_set()]
        assert len(live) == 1, live
        assert registry_owner(cl.redis, wid) == "n%d" % (live[0] + 1)
        assert sum(status(n)["workers"] for n in cl.nodes) == 1
        for f in fakes:
            f.close()


def test_takeover_closes_the_older_session_within_a_second(cprocs):
    cl = Cluster(cprocs, workers=False)
    b = Backend()
    cprocs.append(b)
    old = FakeWorker(cl.nodes[0].port, wid="mover")
    wait_for(lambda: registry_owner(cl.redis, "mover") == "n1", 5, "first registration recorded")
    t0 = time.time()  # an upper bound: from before the new client starts
    c = Client(cl.nodes[1].url, "mover", b.port)
    cprocs.append(c)
    assert old.eof.wait(3), "the older session on n1 was not closed"
    took = time.time() - t0
    print("\nolder session closed within %.3f s of starting the newer client" % took)
    assert took < 1.0
    assert registry_owner(cl.redis, "mover") == "n2"
    for node in cl.nodes:
        r, _ = fetch(node, "GET", "/mover/status/204")
        assert r.status == 204
    old.close()


def test_sigkill_fails_fast_then_routes_to_new_place(cprocs):
    cl = Cluster(cprocs)
    n1, n2, n3 = cl.nodes
    cl.clients[0].stop()  # w1's client would only retry the dead node; a new one plays the LB's part
    c = Client(n1.url, "w1", cl.backends[0].port)
    cprocs.append(c)
    cl.wait_routes(["w1"])
    n1.stop(sig=9)
    c.stop()
    # while w1 has no home: answers come fast (the link to n1 is refused, or n1 left)
    deadline = time.time() + 8
    while time.time() < deadline:
        t0 = time.time()
        r, _ = fetch(n2, "GET", "/w1/status/204", timeout=10)
        assert time.time() - t0 < 4, "a request for a dead node's worker hung"
        assert r.status in (404, 502, 503), r.status
        if r.status == 503:  # the registry still names n1: "cannot be reached", try again shortly
            assert r.getheader("Retry-After"), r.getheaders()
        time.sleep(0.2)
    # n1 left the membership within its TTL (5 s)
    wait_for(lambda: status(n2)["peers_up"] == 1 and status(n3)["peers_up"] == 1, 5, "n1 gone from membership")
    # Redis still names n1 for w1: held by a node that cannot be reached, not "no such worker"
    r, body = fetch(n3, "GET", "/w1/status/204", timeout=10)
    assert r.status == 503 and r.getheader("Retry-After") == "5", (r.status, body)
    assert b"cannot be reached" in body
    c2 = Client(n3.url, "w1", cl.backends[0].port)
    cprocs.append(c2)
    t0 = time.time()  # registered on n3
    wait_for(lambda: all(fetch(n, "GET", "/w1/status/204")[0].status == 204 for n in (n2, n3)), 5,
             "w1 via every node after re-registration")
    took = time.time() - t0
    print("\nevery node routes to the new place %.3f s after the re-registration" % took)
    assert took < 1.0


def test_redis_restart_empty_reasserts_and_reconciles(cprocs):
    cl = Cluster(cprocs)
    rds = cl.redis
    port = rds.port
    rds.stop(sig=9)
    # without Redis: local workers and cached routes keep working
    for node in cl.nodes:
        for i in range(3):
            r, _ = fetch(node, "GET", "/w%d/status/204" % (i + 1))
            assert r.status == 204
    # a new registration is accepted locally
    cl.add_worker(cl.nodes[0].url, "w9")
    r, _ = fetch(cl.nodes[0], "GET", "/w9/status/204")
    assert r.status == 204
    # the same id on two nodes while Redis is away: the later one must win
    first = FakeWorker(cl.nodes[1].port, wid="split")
    time.sleep(0.2)
    second = FakeWorker(cl.nodes[2].port, wid="split")
    time.sleep(0.5)
    assert not first.eof.is_set() and not second.eof.is_set()  # nobody can tell yet
    # Redis comes back, empty
    rds2 = Redis(port=port)
    cprocs.append(rds2)
    cl.redis = rds2
    wait_for(lambda: all(registry_owner(rds2, "w%d" % (i + 1)) == "n%d" % (i + 1) for i in range(3)), 10,
             "every session re-asserted")
    wait_for(lambda: registry_owner(rds2, "w9") == "n1", 10, "w9 asserted")
    assert first.eof.wait(10), "the older of the split registrations was not closed"
    time.sleep(0.5)
    assert not second.eof.is_set()
    assert registry_owner(rds2, "split") == "n3"
    for node in cl.nodes:
        wait_for(lambda: fetch(node, "GET", "/w9/status/204")[0].status == 204, 5, "w9 through every node")
    first.close()
    second.close()


def test_stale_route_is_retried(cprocs):
    """A node whose cached route is stale (Redis paused, so the change was not
    published) relays to a node that no longer holds the worker: that node
    says so, and the sender retries once after asking Redis again."""
    cl = Cluster(cprocs, workers=False)
    n1, n2, n3 = cl.nodes
    b, c = cl.add_worker(n1.url, "roam")
    cl.wait_routes(["roam"])
    cl.redis.p.send_signal(19)  # SIGSTOP: nothing is published or answered
    try:
        c.stop()
        wait_for(lambda: status(n1)["workers"] == 0, 5, "roam gone from n1")
        t0 = time.time()
        r, data = fetch(n3, "GET", "/roam/status/204", timeout=10)
        took = time.time() - t0
    finally:
        cl.redis.p.send_signal(18)  # SIGCONT
    assert r.status in (404, 502, 503), (r.status, data)
    assert took < 4
    st = status(n3)
    assert st["relay_misses"] >= 1 and st["relay_retries"] >= 1, st
    # once Redis has answered again, the worker's new home is found
    c2 = Client(n2.url, "roam", b.port)
    cprocs.append(c2)
    wait_for(lambda: fetch(n3, "GET", "/roam/status/204")[0].status == 204, 5, "roam via n3 at its new home")


def peer_handshake(port, token=None, node="intruder", ext=True):
    key = base64.b64encode(os.urandom(16)).decode()
    lines = ["GET /__peer__ HTTP/1.1", "Host: 127.0.0.1:%d" % port, "Upgrade: websocket", "Connection: Upgrade",
             "Sec-WebSocket-Key: " + key, "Sec-WebSocket-Version: 13", "X-Whtunnel-Node: " + node]
    if ext:
        lines.append("X-Whtunnel-Ext: 1")
    if token:
        lines.append("Authorization: Bearer " + token)
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        d = s.recv(4096)
        if not d:
            break
        head += d
    s.close()
    return head.decode(errors="replace").split("\r\n", 1)[0]


def test_peer_port_refuses_without_the_cluster_secret(cprocs):
    cl = Cluster(cprocs, n=2, workers=False)
    node = cl.nodes[0]
    peer_port = int(re.search(r"peers dial 127\.0\.0\.1:(\d+)", node.output()).group(1))
    good = make_token("intruder", secret=CLUSTER_SECRET, aud="whtunnel-peer")
    assert " 101 " in peer_handshake(peer_port, good) + " "  # the control: the right secret is let in
    assert " 401 " in peer_handshake(peer_port, None) + " "
    assert " 401 " in peer_handshake(peer_port, make_token("intruder", secret="wrong-secret-0123456789",
                                                           aud="whtunnel-peer")) + " "
    assert " 401 " in peer_handshake(peer_port, make_token("intruder", secret=CLUSTER_SECRET)) + " "  # no aud
    assert " 401 " in peer_handshake(peer_port, make_token("someone-else", secret=CLUSTER_SECRET,
                                                           aud="whtunnel-peer")) + " "  # tid != node
    # a worker token (TASKCLUSTER_PROXY_SECRET_A) is no cluster credential either
    assert " 401 " in peer_handshake(peer_port, make_token("intruder", aud="whtunnel-peer")) + " "
    # a node started with the wrong secret joins Redis but its links are refused: its relays fail
    bad = cluster_node(cl.redis, "n9", {"WHT_CLUSTER_SECRET": "not-the-cluster-secret-000"})
    cprocs.append(bad)
    wait_peers([bad], 2)
    cl.add_worker(node.url, "w1")
    wait_for(lambda: fetch(cl.nodes[1], "GET", "/w1/status/204")[0].status == 204, 5, "w1 via n2")
    r, data = fetch(bad, "GET", "/w1/status/204")
    assert r.status == 503 and r.getheader("Retry-After") == "5", (r.status, r.getheaders())
    assert b"cannot be reached" in data
    assert "refused the link" in bad.output()
    assert "bad cluster token from node n9" in node.output()


# ---- relays and the rest of the front: pipelining, HTTP/1.0, domain mode, TLS, drain -----------


def raw_exchange(port, data, want_responses, timeout=10):
    """Sends data on one connection and reads until want_responses complete
    responses (each with Content-Length) arrived; returns their bodies."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(data)
    buf, bodies = b"", []
    while len(bodies) < want_responses:
        while b"\r\n\r\n" not in buf:
            d = s.recv(65536)
            assert d, "connection closed after %d responses: %r" % (len(bodies), buf[:200])
            buf += d
        head, buf = buf.split(b"\r\n\r\n", 1)
        length = int([h.split(b":", 1)[1] for h in head.split(b"\r\n") if h.lower().startswith(b"content-length:")][0])
        while len(buf) < length:
            d = s.recv(65536)
            assert d
            buf += d
        bodies.append(buf[:length])
        buf = buf[length:]
    s.close()
    return bodies


def test_pipelined_and_http10_requests_through_relay(cluster):
    port = cluster.nodes[0].port
    reqs = b"".join(b"GET /w2/echo/p%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(5))
    bodies = raw_exchange(port, reqs, 5)
    assert [json.loads(b)["target"] for b in bodies] == ["/echo/p%d" % i for i in range(5)]
    # a worker change in the middle of a pipeline: w2 (relayed), w1 (local), w3 (relayed)
    reqs = b"".join(b"GET /%s/echo/q HTTP/1.1\r\nHost: x\r\n\r\n" % w for w in (b"w2", b"w1", b"w3", b"w2"))
    assert len(raw_exchange(port, reqs, 4)) == 4
    bodies = raw_exchange(port, b"GET /w3/bytes/5000 HTTP/1.0\r\n\r\n", 1)
    assert bodies[0] == pattern(5000)


def test_domain_mode_through_relay(cprocs):
    cl = Cluster(cprocs, n=2, workers=False, node_env={"WHT_DOMAIN": "tun.test"})
    cl.add_worker(cl.nodes[0].url, "dw")
    wait_for(lambda: fetch(cl.nodes[1], "GET", "/echo/x", headers={"Host": "dw.tun.test"})[0].status == 200, 5,
             "dw by domain through n2")
    r, data = fetch(cl.nodes[1], "GET", "/echo/x?y=1", headers={"Host": "dw.tun.test:8080"})
    info = json.loads(data)
    assert info["target"] == "/echo/x?y=1"
    hdrs = {k.lower(): v for k, v in info["headers"]}
    assert hdrs["x-forwarded-host"] == "dw.tun.test:8080"
    assert "x-websocktunnel-original-path" not in hdrs


def test_tls_viewer_scheme_survives_the_relay(cprocs, tmp_path):
    from test_tls import make_ca, make_cert
    import ssl
    d = str(tmp_path)
    ca = make_ca(d)
    key, cert = make_cert(d, "server", "IP:127.0.0.1,DNS:localhost")
    ctx = ssl.create_default_context(cafile=ca)
    cl = Cluster(cprocs, n=2, workers=False, node_env={"TLS_KEY": key, "TLS_CERTIFICATE": cert}, ssl_ctx=ctx)
    cl.add_worker("https://127.0.0.1:%d" % cl.nodes[0].port, "tw", args=["--ca", ca])

    def get():
        h = http.client.HTTPSConnection("127.0.0.1", cl.nodes[1].port, timeout=10, context=ctx)
        h.request("GET", "/tw/echo/s")
        r = h.getresponse()
        return r.status, r.read()
    wait_for(lambda: get()[0] == 200, 5, "tw through n2 over https")
    hdrs = {k.lower(): v for k, v in json.loads(get()[1])["headers"]}
    assert hdrs["x-forwarded-proto"] == "https"


def test_sigterm_leaves_at_once(cprocs):
    """A node that stops cleanly leaves the membership at once: its peers drop
    its routes without waiting for the member key to expire, so a request for
    its worker is answered 404 at once, not 502 for seconds."""
    cl = Cluster(cprocs)
    n1, n2, n3 = cl.nodes
    cl.clients[0].stop()
    c = Client(n1.url, "w1", cl.backends[0].port)
    cprocs.append(c)
    cl.wait_routes(["w1"])
    c.stop()  # (with its worker still attached, SIGTERM would drain: test_drain.py)
    wait_for(lambda: status(n1)["workers"] == 0, 5, "w1 gone from n1")
    t0 = time.time()
    assert n1.stop(sig=15) == 0
    wait_for(lambda: status(n2)["peers_up"] == 1 and status(n3)["peers_up"] == 1, 3, "n1 gone from membership")
    assert time.time() - t0 < 2
    for node in (n2, n3):
        r, data = fetch(node, "GET", "/w1/status/204")
        assert r.status == 404, (r.status, data)
    assert "cluster: left" in n1.output()


GO_CLIENT = os.environ.get("WHT_GO_CLIENT")


@pytest.mark.skipif(not GO_CLIENT or not os.path.exists(GO_CLIENT),
                    reason="WHT_GO_CLIENT not set (the original Go wst-client, built by hand)")
def test_go_client_through_relay(cprocs):
    cl = Cluster(cprocs, workers=False)
    b = Backend()
    cprocs.append(b)
    c = Proc([GO_CLIENT, cl.nodes[0].url, "gw", str(b.port), "--token", make_token("gw")], name="go-client")
    cprocs.append(c)
    wait_for(lambda: fetch(cl.nodes[2], "GET", "/gw/status/204")[0].status == 204, 10, "gw through n3")
    for node in cl.nodes[1:]:
        r, data = fetch(node, "GET", "/gw/bytes/%d" % (5 * 1024 * 1024))
        assert hashlib.sha256(data).hexdigest() == r.getheader("X-Sha256")
        body = os.urandom(3 * 1024 * 1024)
        r, data = fetch(node, "PUT", "/gw/mirror", body=body)
        assert data == body
        check_ws_echo(node.port, "/gw/ws")


def test_inflight_relayed_requests_end_when_the_owner_dies(cprocs):
    """Requests in flight through a relay when the owner is killed: the one
    still waiting for its answer gets 502, the streaming one is cut; neither
    hangs."""
    cl = Cluster(cprocs, n=2)
    n1, n2 = cl.nodes
    waiting = socket.create_connection(("127.0.0.1", n2.port), timeout=10)
    waiting.sendall(b"GET /w1/hang HTTP/1.1\r\nHost: x\r\n\r\n")
    streaming = socket.create_connection(("127.0.0.1", n2.port), timeout=10)
    streaming.sendall(b"GET /w1/slow?lines=100 HTTP/1.1\r\nHost: x\r\n\r\n")
    got = b""
    while b"line 1 " not in got:
        d = streaming.recv(4096)
        assert d
        got += d
    time.sleep(0.2)
    t0 = time.time()
    n1.stop(sig=9)
    head = waiting.recv(4096)
    assert head.startswith(b"HTTP/1.1 502 "), head
    while True:
        d = streaming.recv(4096)
        if not d:
            break
        got += d
    assert b"0\r\n\r\n" not in got  # cut, not completed
    assert time.time() - t0 < 3
    waiting.close()
    streaming.close()


def test_slow_relayed_viewers_do_not_stall_the_link(cprocs):
    """Forty viewers relayed from n2 to n1 that stop reading hold a full
    stream window each on the link (10 MiB in all, more than a worker
    session may buffer): the link must keep carrying everybody else."""
    cl = Cluster(cprocs, n=2, workers=False)
    n1, n2 = cl.nodes
    for wid in ("s1", "s2", "s3"):
        cl.add_worker(n1.url, wid)
    cl.wait_routes(["s1", "s2", "s3"])
    stuck = []
    for i in range(40):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", n2.port))
        s.sendall(b"GET /s%d/bytes/%d HTTP/1.1\r\nHost: x\r\n\r\n" % (i % 2 + 1, 3 * 1024 * 1024))
        stuck.append(s)
    time.sleep(2)  # the windows fill up
    t0 = time.time()
    r, data = fetch(n2, "GET", "/s3/bytes/100000", timeout=10)
    assert r.status == 200 and len(data) == 100000
    assert time.time() - t0 < 2
    for s in stuck:
        s.close()


def test_worker_fails_before_answering_through_relay(cluster):
    r, data = fetch(cluster.nodes[1], "GET", "/w1/die")
    assert r.status == 502, (r.status, data)
    r, _ = fetch(cluster.nodes[1], "GET", "/w1/status/204")  # the link and the worker are fine
    assert r.status == 204


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_requests_400_through_relay(cluster, case):
    s = socket.create_connection(("127.0.0.1", cluster.nodes[2].port), timeout=10)
    s.sendall(MALFORMED[case].replace(b"/w1/", b"/w2/"))
    head = s.recv(4096)
    s.close()
    assert head.startswith(b"HTTP/1.1 400 "), head


def test_worker_disconnects_mid_response_through_relay(cprocs):
    cl = Cluster(cprocs, n=2)
    s = socket.create_connection(("127.0.0.1", cl.nodes[1].port), timeout=10)
    s.sendall(b"GET /w1/slow?lines=100 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert b"200" in s.recv(4096)
    cl.clients[0].stop(sig=9)
    t0 = time.time()
    while s.recv(4096):  # the viewer sees the connection end, promptly
        pass
    assert time.time() - t0 < 3
    s.close()
    wait_for(lambda: fetch(cl.nodes[1], "GET", "/w1/echo")[0].status == 404, 5, "w1 gone everywhere")


def test_drain_parks_requests_until_the_worker_moves(cprocs):
    """SIGTERM drains n1: its worker leaves (GOAWAY); a request for it that
    arrives at n3 meanwhile is relayed to n1, waits there, and follows the
    worker when it registers on n2 (a second hop). n1 then leaves and exits."""
    cl = Cluster(cprocs, workers=False)
    n1, n2, n3 = cl.nodes
    b, c1 = cl.add_worker(n1.url, "mv")
    cl.wait_routes(["mv"])
    n1.p.send_signal(15)
    wait_for(lambda: "worker=mv left while the node drains" in n1.output(), 5, "mv to leave n1")
    c1.stop()  # it would only retry n1 (503 while draining); a load balancer would send it elsewhere
    result = {}

    def viewer():
        t0 = time.time()
        result["r"] = fetch(n3, "GET", "/mv/echo/parked", timeout=20)
        result["t"] = time.time() - t0
    t = threading.Thread(target=viewer)
    t.start()
    time.sleep(0.5)
    assert t.is_alive(), result  # waiting for mv's next home, not failed
    c2 = Client(n2.url, "mv", b.port)
    cprocs.append(c2)
    t.join(10)
    r, data = result["r"]
    assert r.status == 200, (r.status, data)
    assert json.loads(data)["target"] == "/echo/parked"
    assert "the requests waiting for it go there" in n1.output()
    assert n1.p.wait(10) == 0
    assert "drain: done" in n1.output()
    r, _ = fetch(n3, "GET", "/mv/status/204")
    assert r.status == 204


def test_chunked_response_to_http10_viewer_through_relay(cluster):
    head, body = read_until_close(cluster.nodes[0].port, b"GET /w2/chunked/300000 HTTP/1.0\r\n\r\n")
    assert "transfer-encoding" not in head.lower(), head
    assert body == pattern(300000)


def test_a_starting_node_waits_for_its_registry(cprocs):
    """A node started while its Redis is slow to answer does not tell a viewer that the registry
    is unreachable: its listener takes connections once its first Redis connection attempt has
    ended (the kernel queues them meanwhile, at most 2 s)."""
    cl = Cluster(cprocs, n=1)
    cl.wait_routes(["w1"])
    cl.redis.p.send_signal(19)  # SIGSTOP: the new node's connection is made but not answered
    try:
        n2 = cluster_node(cl.redis, "n2")
        cprocs.append(n2)
        s = socket.create_connection(("127.0.0.1", n2.port), timeout=10)
        s.sendall(b"GET /w1/status/204 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        time.sleep(0.5)
    finally:
        cl.redis.p.send_signal(18)  # SIGCONT
    answer = recv_to_close(s)
    s.close()
    assert answer.startswith(b"HTTP/1.1 204 "), answer[:200]
