"""Every wait on a worker has an end (docs/node.md, "Time limits").

A hostile worker (test_worker_protocol's FakeWorker: a raw socket speaking
WebSocket and wsmux as a Go client does) that never accepts a stream,
accepts one and never answers, sends a response head and goes silent, or
lets an upgraded connection go idle, holds its viewer no longer than the
limit (plus a small margin), gets its stream reset, leaves the node's gauges
where they were, and does not slow down a well-behaved worker (whclient and
a backend) on the same node. Through a relay (two nodes, real Redis) the
owner's limits end the wait and its 504 reaches the viewer; the relaying
node's own limits end only a wait the owner cannot end (a frozen owner).
"""

import base64
import hashlib
import os
import queue
import socket
import threading
import time

import pytest

from conftest import Backend, Client, free_port, port_open, wait_for
from test_cluster import Redis, cluster_node, cprocs, registry_owner, wait_peers  # noqa: F401 (fixture)
from test_metrics import admin_node, metrics
from test_worker_protocol import DAT, FIN, SYN, FakeWorker, fakes  # noqa: F401 (fixture)

MARGIN = 1.0  # seconds a limit may be overrun by: timers, a loaded 2-core machine, sanitizer builds
TIMEOUTS = 'whtunnel_stream_timeouts_total{kind="%s"}'
WORKER_STREAMS = 'whtunnel_streams_open{to="worker"}'


# ---- helpers ------------------------------------------------------------------------------------


def good_worker(procs, node_url, wid="good"):
    """A well-behaved worker: whclient and a backend."""
    b = Backend()
    procs.append(b)
    c = Client(node_url, wid, b.port)
    procs.append(c)
    return b, c


def hostile(made, port, wid="bad"):
    fw = FakeWorker(port, wid=wid)
    made.append(fw)
    wait_for(lambda: fw.pings, 5, "the node's first ping")  # registered
    return fw


class Viewer:
    """A raw viewer connection; read_to_close() keeps the time of its last byte and of the close."""

    def __init__(self, port, request):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=15)
        self.sent_at = time.time()
        self.s.sendall(request)
        self.data = b""
        self.last_byte_at = None

    def read_head(self):
        while b"\r\n\r\n" not in self.data:
            d = self.s.recv(65536)
            assert d, "closed before a head: %r" % self.data
            self.data += d
            self.last_byte_at = time.time()
        return self.data.split(b"\r\n\r\n", 1)[0].decode()

    def read_to_close(self, timeout=15):
        self.s.settimeout(timeout)
        while True:
            d = self.s.recv(65536)
            if not d:
                break
            self.data += d
            self.last_byte_at = time.time()
        self.closed_at = time.time()
        self.s.close()
        head, _, body = self.data.partition(b"\r\n\r\n")
        return head.decode(), body

    def still_open(self, wait):
        """Nothing (and no close) within wait seconds."""
        self.s.settimeout(wait)
        try:
            d = self.s.recv(65536)
        except socket.timeout:
            return True
        assert False, "the node sent %r (or closed) while it should wait" % d


def within(elapsed, limit, what):
    assert limit * 0.9 <= elapsed < limit + MARGIN, "%s after %.3f s (limit %.1f s)" % (what, elapsed, limit)


class Frames:
    """Every wsmux frame a FakeWorker got, kept by stream."""

    def __init__(self, fw):
        self.fw = fw
        self.seen = []

    def _pump(self, timeout):
        try:
            self.seen.append(self.fw.frames.get(timeout=timeout))
        except queue.Empty:
            pass

    def wait(self, ftype, sid=None, n=1, timeout=5.0):
        """The stream ids of the first n frames of ftype (for sid), waiting for them."""
        deadline = time.time() + timeout
        while True:
            got = [s for t, s, _ in self.seen if t == ftype and (sid is None or s == sid)]
            if len(got) >= n:
                return got[:n]
            left = deadline - time.time()
            assert left > 0, "no %d frames of type %d (stream %s): %r" % (n, ftype, sid, self.seen[-10:])
            self._pump(min(left, 0.2))

    def request(self, sid, timeout=5.0):
        """The request bytes (DAT) the node sent on sid so far, until a head is complete."""
        deadline = time.time() + timeout
        while True:
            data = b"".join(p for t, s, p in self.seen if t == DAT and s == sid)
            if b"\r\n\r\n" in data:
                return data
            left = deadline - time.time()
            assert left > 0, "no request head on stream %d" % sid
            self._pump(min(left, 0.2))


class GoodTraffic:
    """Requests through the well-behaved worker, one after another, on a thread: every one must
    succeed quickly while the hostile worker holds its viewers."""

    def __init__(self, port, path="/good/bytes/1000"):
        self.port, self.path = port, path
        self.stop = threading.Event()
        self.times, self.errors = [], []
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        req = b"GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % self.path.encode()
        while not self.stop.is_set():
            t0 = time.time()
            try:
                v = Viewer(self.port, req)
                head, body = v.read_to_close(5)
                if not head.startswith("HTTP/1.1 200 ") or len(body) != 1000:
                    self.errors.append(head[:60])
            except OSError as e:
                self.errors.append(repr(e))
            self.times.append(time.time() - t0)
            self.stop.wait(0.05)

    def check(self):
        self.stop.set()
        self.t.join(10)
        assert not self.errors, self.errors[:5]
        assert len(self.times) >= 5, self.times
        assert max(self.times) < 1.0, "a request to the good worker took %.3f s" % max(self.times)


def settled(node, before):
    """The gauges are back where they were: no stream, no viewer connection, no WebSocket left."""
    names = (WORKER_STREAMS, "whtunnel_viewer_connections_open", "whtunnel_websockets_open")
    wait_for(lambda: all(metrics(node.admin)[k] == before[k] for k in names), 5, "gauges back to normal")


def timeouts(node, before):
    m = metrics(node.admin)
    return {k: m[TIMEOUTS % k] - before[TIMEOUTS % k] for k in ("accept", "response", "idle")}


def ws_upgrade(path):
    key = base64.b64encode(os.urandom(16)).decode()
    return ("GET %s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (path, key)).encode(), key


def ws_101(key):
    acc = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest())
    return (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: %s\r\n\r\n" % acc)


GET_BAD = b"GET /bad/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"


# ---- one node ---------------------------------------------------------------------------------------


def test_worker_that_never_accepts(procs, fakes):
    """SYNs never answered: 504 after WHT_ACCEPT_TIMEOUT (30 s by default, 1 s here), each stream reset."""
    n = admin_node(procs, {"WHT_ACCEPT_TIMEOUT": "1s"})
    good_worker(procs, n.url)
    bad = hostile(fakes, n.port)
    frames = Frames(bad)
    m0 = metrics(n.admin)
    traffic = GoodTraffic(n.port)
    viewers = [Viewer(n.port, GET_BAD) for _ in range(10)]
    results = [None] * len(viewers)

    def read(i):
        results[i] = viewers[i].read_to_close()
    threads = [threading.Thread(target=read, args=(i,)) for i in range(len(viewers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    traffic.check()
    for v, (head, body) in zip(viewers, results):
        assert head.startswith("HTTP/1.1 504 "), head
        assert b"did not accept the stream" in body, body
        within(v.closed_at - v.sent_at, 1.0, "504")
    syns = frames.wait(SYN, n=10)
    for sid in syns:  # each one let go (compat: a FIN; the worker may still ACK it, late)
        frames.wait(FIN, sid)
    assert timeouts(n, m0) == {"accept": 10, "response": 0, "idle": 0}
    m1 = metrics(n.admin)
    assert m1['whtunnel_requests_total{path="local",code="5xx"}'] - \
        m0['whtunnel_requests_total{path="local",code="5xx"}'] == 10
    settled(n, m0)


@pytest.mark.parametrize("limit", ["response", "idle"])
def test_worker_that_accepts_and_never_answers(procs, fakes, limit):
    """The stream accepted, the request taken, no answer: 504 after WHT_RESPONSE_TIMEOUT counted from
    the acceptance or from the last request byte (1 s here); with it off, WHT_STREAM_IDLE_TIMEOUT."""
    env = ({"WHT_RESPONSE_TIMEOUT": "1s", "WHT_STREAM_IDLE_TIMEOUT": "1m"} if limit == "response"
           else {"WHT_RESPONSE_TIMEOUT": "0", "WHT_STREAM_IDLE_TIMEOUT": "1s"})
    n = admin_node(procs, env)
    good_worker(procs, n.url)
    bad = hostile(fakes, n.port)
    frames = Frames(bad)
    m0 = metrics(n.admin)
    traffic = GoodTraffic(n.port)
    # a GET: accepted with the Go library's 1024 bytes, never read further, never answered
    v = Viewer(n.port, GET_BAD)
    sid = frames.wait(SYN)[0]
    time.sleep(0.3)  # the accept wait does not count
    bad.ack(sid, 1024)
    accepted = time.time()
    head, body = v.read_to_close()
    assert head.startswith("HTTP/1.1 504 ") and b"did not send a response" in body, (head, body)
    within(v.closed_at - accepted, 1.0, "504")
    frames.wait(FIN, sid)
    # a POST whose body the worker never reads (100 KB on 1024 bytes of credit: it waits in the node)
    upload = os.urandom(100 * 1024)
    v = Viewer(n.port, b"POST /bad/up HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(upload) + upload)
    sid = frames.wait(SYN, n=2)[1]
    bad.ack(sid, 1024)
    head, body = v.read_to_close()
    assert head.startswith("HTTP/1.1 504 "), head
    within(v.closed_at - v.sent_at, 1.0, "504")
    frames.wait(FIN, sid)
    if limit == "response":  # a real whclient whose backend never answers (/hang): the same
        v = Viewer(n.port, b"GET /good/hang HTTP/1.1\r\nHost: x\r\n\r\n")
        head, body = v.read_to_close()
        assert head.startswith("HTTP/1.1 504 "), head
        within(v.closed_at - v.sent_at, 1.0, "504")
    traffic.check()
    want = {"accept": 0, "response": 0, "idle": 0}
    want[limit] = 3 if limit == "response" else 2
    assert timeouts(n, m0) == want
    settled(n, m0)


def test_worker_that_goes_silent_after_the_head(procs, fakes):
    """A response head, some body, then nothing: the viewer's connection closes WHT_STREAM_IDLE_TIMEOUT
    (1 s here) after the last byte; bytes that keep coming keep it open past the limit."""
    n = admin_node(procs, {"WHT_STREAM_IDLE_TIMEOUT": "1s", "WHT_RESPONSE_TIMEOUT": "1m"})
    good_worker(procs, n.url)
    bad = hostile(fakes, n.port)
    frames = Frames(bad)
    m0 = metrics(n.admin)
    traffic = GoodTraffic(n.port)
    v = Viewer(n.port, GET_BAD)
    sid = frames.wait(SYN)[0]
    bad.ack(sid, 1024)
    frames.request(sid)
    bad.dat(sid, b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"a" * 10)
    for _ in range(6):  # 2.4 s of a trickle: longer than the limit, never idle for it
        time.sleep(0.4)
        bad.dat(sid, b"b" * 10)
    last = time.time()
    assert v.read_head().startswith("HTTP/1.1 200 ")
    head, body = v.read_to_close()
    assert body == b"a" * 10 + b"b" * 60  # what came, then the close: the body is cut short
    within(v.closed_at - last, 1.0, "close")
    frames.wait(FIN, sid)
    traffic.check()
    assert timeouts(n, m0) == {"accept": 0, "response": 0, "idle": 1}
    settled(n, m0)


@pytest.mark.parametrize("upgraded_limit", ["1s", "0"])
def test_upgraded_connection_that_goes_idle(procs, fakes, upgraded_limit):
    """After a 101, WHT_STREAM_IDLE_TIMEOUT_UPGRADED (1 s here) applies: bytes either way keep the
    connection, silence ends it; 0 lets it stay idle (and WHT_STREAM_IDLE_TIMEOUT does not apply)."""
    n = admin_node(procs, {"WHT_STREAM_IDLE_TIMEOUT_UPGRADED": upgraded_limit, "WHT_STREAM_IDLE_TIMEOUT": "1s"})
    bad = hostile(fakes, n.port)
    frames = Frames(bad)
    m0 = metrics(n.admin)
    req, key = ws_upgrade("/bad/ws")
    v = Viewer(n.port, req)
    sid = frames.wait(SYN)[0]
    bad.ack(sid, 1 << 20)
    frames.request(sid)
    bad.dat(sid, ws_101(key))
    assert v.read_head().startswith("HTTP/1.1 101 ")
    assert metrics(n.admin)["whtunnel_websockets_open"] == m0["whtunnel_websockets_open"] + 1
    for i in range(4):  # 2 s of traffic both ways, never idle for a second
        time.sleep(0.5)
        if i % 2:
            bad.dat(sid, b"down")
        else:
            v.s.sendall(b"up")
    last = time.time()
    if upgraded_limit == "0":
        v.s.settimeout(5)
        while not v.data.endswith(b"downdown"):
            v.data += v.s.recv(100)
        assert v.still_open(2.5)
        bad.dat(sid, b"still here")
        v.s.settimeout(5)
        got = b""
        while not got.endswith(b"still here"):
            got += v.s.recv(100)
        v.s.close()
        bad.fin(sid)  # the viewer closed its side, the worker closes its own: the tunnel ends
        assert timeouts(n, m0) == {"accept": 0, "response": 0, "idle": 0}
    else:
        head, body = v.read_to_close()
        within(v.closed_at - last, 1.0, "close")
        frames.wait(FIN, sid)  # after every byte the viewer sent
        assert b"".join(p for t, s, p in frames.seen if t == DAT and s == sid).endswith(b"upup")
        assert timeouts(n, m0) == {"accept": 0, "response": 0, "idle": 1}
    settled(n, m0)


# ---- through a relay --------------------------------------------------------------------------------


def two_nodes(cprocs, env):
    """Nodes a and b with admin listeners, sharing a Redis; a hostile worker "bad" and a good one on b."""
    rds = Redis()
    cprocs.append(rds)
    nodes = []
    for name in ("a", "b"):
        aport = free_port()
        e = dict(env, WHT_ADMIN_ADDR="127.0.0.1:%d" % aport)
        node = cluster_node(rds, name, e)
        cprocs.append(node)
        wait_for(lambda: port_open(aport), 10, "admin listener")
        node.admin = aport
        nodes.append(node)
    wait_peers(nodes, 1)
    a, b = nodes
    good_worker(cprocs, b.url)
    bad = FakeWorker(b.port, wid="bad")
    wait_for(lambda: registry_owner(rds, "bad") == "b" and registry_owner(rds, "good") == "b", 5, "routes")
    return a, b, bad


@pytest.fixture
def cfakes(cprocs):  # noqa: F811 (the fakes close before the processes stop)
    made = []
    yield made
    for f in made:
        f.close()


def test_relayed_owner_limits_reach_the_viewer(cprocs, cfakes):
    """Viewers on node a, the worker on node b: b's limits end each wait and its 504 (its own text)
    comes through a; a counts no timeout of its own; a well-behaved worker on b keeps answering."""
    a, b, bad = two_nodes(cprocs, {"WHT_ACCEPT_TIMEOUT": "1s", "WHT_RESPONSE_TIMEOUT": "1s",
                                   "WHT_STREAM_IDLE_TIMEOUT": "1s"})
    cfakes.append(bad)
    frames = Frames(bad)
    ma, mb = metrics(a.admin), metrics(b.admin)
    traffic = GoodTraffic(a.port)
    # never accepted
    v = Viewer(a.port, GET_BAD)
    head, body = v.read_to_close()
    assert head.startswith("HTTP/1.1 504 ") and body == b"the worker did not accept the stream in time\n", body
    within(v.closed_at - v.sent_at, 1.0, "504")
    # accepted, never answered
    v = Viewer(a.port, GET_BAD)
    sid = frames.wait(SYN, n=2)[1]
    bad.ack(sid, 1024)
    accepted = time.time()
    head, body = v.read_to_close()
    assert head.startswith("HTTP/1.1 504 ") and body == b"the worker did not send a response in time\n", body
    within(v.closed_at - accepted, 1.0, "504")
    # a head, then silence
    v = Viewer(a.port, GET_BAD)
    sid = frames.wait(SYN, n=3)[2]
    bad.ack(sid, 1024)
    frames.request(sid)
    bad.dat(sid, b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nabc")
    sent = time.time()
    head, body = v.read_to_close()
    assert head.startswith("HTTP/1.1 200 ") and body == b"abc"
    within(v.closed_at - sent, 1.0, "close")
    traffic.check()
    assert timeouts(a, ma) == {"accept": 0, "response": 0, "idle": 0}
    assert timeouts(b, mb) == {"accept": 1, "response": 1, "idle": 1}
    m1 = metrics(a.admin)
    assert m1['whtunnel_requests_total{path="relayed_out",code="5xx"}'] - \
        ma['whtunnel_requests_total{path="relayed_out",code="5xx"}'] == 2
    settled(a, ma)
    settled(b, mb)


def test_relay_ends_the_wait_on_a_frozen_owner(cprocs, cfakes):
    """The owner node b stops (SIGSTOP): a's own limits end the wait, later than b's would have (accept
    + response + 1 s for an accepted stream), with a's own text."""
    a, b, bad = two_nodes(cprocs, {"WHT_ACCEPT_TIMEOUT": "500ms", "WHT_RESPONSE_TIMEOUT": "500ms"})
    cfakes.append(bad)
    frames = Frames(bad)
    ma = metrics(a.admin)
    # the link stream accepted, the worker's too; then b freezes: a answers after 0.5 + 0.5 + 1 s
    v = Viewer(a.port, GET_BAD)
    sid = frames.wait(SYN)[0]
    b.p.send_signal(19)  # SIGSTOP
    try:
        bad.ack(sid, 1024)
        head, body = v.read_to_close()
    finally:
        b.p.send_signal(18)  # SIGCONT
    assert head.startswith("HTTP/1.1 504 "), head
    assert body == b"the node that holds the worker did not answer in time\n", body
    within(v.closed_at - v.sent_at, 2.0, "504")
    # b frozen before the request: the link stream is never accepted
    b.p.send_signal(19)
    try:
        v = Viewer(a.port, GET_BAD)
        head, body = v.read_to_close()
    finally:
        b.p.send_signal(18)
    assert head.startswith("HTTP/1.1 504 "), head
    assert body == b"the node that holds the worker did not accept the stream in time\n", body
    within(v.closed_at - v.sent_at, 0.5, "504")
    assert timeouts(a, ma) == {"accept": 1, "response": 1, "idle": 0}
    # b goes on as before
    v = Viewer(a.port, b"GET /good/bytes/1000 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head, body = v.read_to_close()
    assert head.startswith("HTTP/1.1 200 ") and len(body) == 1000
    settled(a, ma)
