"""The node's wire behaviour towards a worker, exactly as a Go client sees it.

A fake worker written here from scratch (raw socket, hand-made WebSocket
handshake and framing, wsmux frames as in docs/protocol.md) registers
with a real node and plays the Go client's part. It checks everything the
node sends during each test: never a text message, never a wsmux frame
shorter than 5 bytes or of an unknown type, never an ACK without a 4-byte
payload, never a SYN/FIN with a payload, never a masked frame, and never more
DAT on a stream than the credit the worker granted (nor more than 32 KiB in
one frame).
"""

import base64
import hashlib
import os
import queue
import select
import socket
import struct
import subprocess
import threading
import time

import pytest

from conftest import Node, binary, make_token, recv_to_close, wait_for

DAT, SYN, ACK, FIN = 0, 1, 2, 3
WINDOW = 256 * 1024
NEWEST_WINDOW = 4 * 1024 * 1024


def mux_frame(ftype, sid, payload=b""):
    return struct.pack("<BI", ftype, sid) + payload


class FakeWorker:
    """A Go-like worker on a raw socket. A reader thread parses what the node
    sends, answers pings (unless auto_pong is off), validates every frame and
    queues wsmux frames as (type, stream id, payload)."""

    def __init__(self, port, wid="fw", auto_pong=True, token=None):
        self.wid = wid
        self.auto_pong = auto_pong
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.send_lock = threading.Lock()
        self.frames = queue.Queue()
        self.violations = []
        self.pings = []          # payloads of pings received (with arrival time)
        self.pongs = []
        self.close_frames = []
        self.eof = threading.Event()
        self.granted = {}        # stream id -> credit we granted the node (sum of our ACKs)
        self.received = {}       # stream id -> DAT bytes the node sent us
        self.node_acks = {}      # stream id -> credit the node granted us (sum of its ACKs)
        self.syns = []           # stream ids in SYN order
        key = base64.b64encode(os.urandom(16)).decode()
        req = ("GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUser-Agent: Go-http-client/1.1\r\n"
               "Authorization: Bearer %s\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
               "Sec-WebSocket-Version: 13\r\nUpgrade: websocket\r\nX-Websocktunnel-Id: %s\r\n\r\n"
               % (port, token or make_token(wid), key, wid))
        self.sock.sendall(req.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            d = self.sock.recv(1)  # byte by byte: nothing past the head is consumed here
            assert d, "node closed during the handshake: %r" % head
            head += d
        self.head = head.decode()
        assert self.head.startswith("HTTP/1.1 101 "), self.head
        want = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode())
                                .digest()).decode()
        assert ("sec-websocket-accept: " + want.lower()) in self.head.lower()
        self.registered_at = time.time()
        self.sock.settimeout(30)  # bounds every send; the reader just waits again
        self.thread = threading.Thread(target=self._reader, daemon=True)
        self.thread.start()

    # ---- sending (client frames are masked) ----

    def send_ws(self, opcode, payload=b"", fin=True):
        frame = ws_client_frame(opcode, payload, fin)
        with self.send_lock:
            self.sock.sendall(frame)

    def send_mux(self, ftype, sid, payload=b"", fragment=0):
        """One wsmux frame as one binary message; fragment > 0 splits it into a
        binary frame and continuation frames of at most `fragment` bytes (as
        the newest Go client does for messages over 4 KiB)."""
        msg = mux_frame(ftype, sid, payload)
        if not fragment or len(msg) <= fragment:
            self.send_ws(0x2, msg)
            return
        parts = [msg[i:i + fragment] for i in range(0, len(msg), fragment)]
        for i, part in enumerate(parts):
            self.send_ws(0x2 if i == 0 else 0x0, part, fin=i == len(parts) - 1)

    def ack(self, sid, n):
        self.granted[sid] = self.granted.get(sid, 0) + n
        self.send_mux(ACK, sid, struct.pack("<I", n))

    def dat(self, sid, data, fragment=0):
        self.send_mux(DAT, sid, data, fragment)

    def fin(self, sid):
        self.send_mux(FIN, sid)

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.thread.join(5)

    # ---- receiving ----

    def _recv_exact(self, n):
        out = b""
        while len(out) < n:
            try:
                d = self.sock.recv(n - len(out))
            except socket.timeout:
                continue
            if not d:
                raise EOFError
            out += d
        return out

    def _reader(self):
        msg_op, msg = None, b""
        try:
            while True:
                b0, b1 = self._recv_exact(2)
                fin, op, masked, n = b0 & 0x80, b0 & 0x0F, b1 & 0x80, b1 & 0x7F
                if b0 & 0x70:
                    self.violations.append("RSV bits set: %#x" % b0)
                if masked:
                    self.violations.append("masked frame from the node")
                if n == 126:
                    n = struct.unpack("!H", self._recv_exact(2))[0]
                elif n == 127:
                    n = struct.unpack("!Q", self._recv_exact(8))[0]
                if masked:
                    mask = self._recv_exact(4)
                data = self._recv_exact(n) if n else b""
                if masked:
                    data = _mask(data, mask)
                if op == 0x9:
                    self.pings.append((time.time(), data))
                    if self.auto_pong:
                        self.send_ws(0xA, data)
                    continue
                if op == 0xA:
                    self.pongs.append(data)
                    continue
                if op == 0x8:
                    self.close_frames.append(data)
                    continue
                if op in (0x1, 0x2):
                    msg_op, msg = op, data
                elif op == 0x0:
                    if msg_op is None:
                        self.violations.append("continuation without a message")
                    msg += data
                else:
                    self.violations.append("unknown opcode %d" % op)
                    continue
                if not fin:
                    continue
                op, msg_op = msg_op, None
                if op == 0x1:
                    self.violations.append("text message from the node: %r" % msg[:40])
                    continue
                self._mux(msg)
        except (EOFError, OSError):
            pass
        finally:
            self.eof.set()

    def _mux(self, m):
        if len(m) < 5:
            self.violations.append("wsmux frame shorter than 5 bytes: %r" % m)
            return
        ftype, sid = struct.unpack("<BI", m[:5])
        p = m[5:]
        if ftype > 3:
            self.violations.append("unknown wsmux type %d" % ftype)
            return
        if ftype == ACK:
            if len(p) != 4:
                self.violations.append("ACK payload of %d bytes" % len(p))
                return
            self.node_acks[sid] = self.node_acks.get(sid, 0) + struct.unpack("<I", p)[0]
        elif ftype in (SYN, FIN) and p:
            self.violations.append("%s with a payload" % ("SYN" if ftype == SYN else "FIN"))
        elif ftype == SYN:
            if sid % 2 != 0 or sid in self.syns:
                self.violations.append("bad SYN id %d" % sid)
            self.syns.append(sid)
        elif ftype == DAT:
            if len(p) > 32 * 1024:
                self.violations.append("DAT of %d bytes (the node sends at most 32 KiB)" % len(p))
            self.received[sid] = self.received.get(sid, 0) + len(p)
            if self.received[sid] > self.granted.get(sid, 0):
                self.violations.append("stream %d: %d DAT bytes, credit %d" %
                                       (sid, self.received[sid], self.granted.get(sid, 0)))
        self.frames.put((ftype, sid, p))

    def next_frame(self, timeout=5.0):
        return self.frames.get(timeout=timeout)

    def expect(self, ftype, sid=None, timeout=5.0, skip=()):
        """The next frame, which must be of ftype (frames of the types in skip
        are passed over)."""
        deadline = time.time() + timeout
        while True:
            left = deadline - time.time()
            if left <= 0:
                raise TimeoutError("no frame of type %d" % ftype)
            t, s, p = self.frames.get(timeout=left)
            if t in skip and t != ftype:
                continue
            assert t == ftype, "expected type %d, got %d (stream %d, %r)" % (ftype, t, s, p[:60])
            if sid is not None:
                assert s == sid
            return s, p

    def read_stream(self, sid, n, timeout=5.0):
        """n bytes of DAT on sid (other frames for sid must not come in between
        except ACKs)."""
        out = b""
        deadline = time.time() + timeout
        while len(out) < n:
            t, s, p = self.frames.get(timeout=max(0.01, deadline - time.time()))
            assert s == sid, (t, s)
            if t == ACK:
                continue
            assert t == DAT, (t, s, p)
            out += p
        return out

    def no_frame(self, wait):
        """Asserts that nothing arrives within wait seconds."""
        try:
            f = self.frames.get(timeout=wait)
        except queue.Empty:
            return
        raise AssertionError("unexpected frame %r" % (f[:2],))


def _mask(data, mask):
    n = len(data)
    m = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(m, "big")).to_bytes(n, "big") if n else b""


@pytest.fixture
def fakes():
    made = []
    yield made
    for f in made:
        f.close()
    for f in made:
        assert not f.violations, f.violations[:10]


def start(procs, fakes, env=None, **kw):
    n = Node(env=env)
    procs.append(n)
    fw = FakeWorker(n.port, **kw)
    fakes.append(fw)
    # the node has put the worker in its table before its first ping goes out
    wait_for(lambda: fw.pings, 5, "the node's first ping")
    return n, fw


def viewer(node, request):
    s = socket.create_connection(("127.0.0.1", node.port), timeout=10)
    s.sendall(request)
    return s


def read_response(s, timeout=10):
    """Reads one response with a Content-Length body; returns (head, body)."""
    s.settimeout(timeout)
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = s.recv(65536)
        assert d, "connection closed: %r" % buf
        buf += d
    head, body = buf.split(b"\r\n\r\n", 1)
    head = head.decode()
    cl = None
    for line in head.split("\r\n")[1:]:
        k, v = line.split(":", 1)
        if k.strip().lower() == "content-length":
            cl = int(v)
    if cl is not None:
        while len(body) < cl:
            d = s.recv(1 << 20)
            assert d, "body truncated at %d of %d" % (len(body), cl)
            body += d
    return head, body


def request_through(node, fw, path="/x", body=b"ok"):
    """A complete GET through the fake worker: returns the viewer's response."""
    s = viewer(node, b"GET /%s%s HTTP/1.1\r\nHost: v\r\nConnection: close\r\n\r\n" % (fw.wid.encode(), path.encode()))
    sid, _ = fw.expect(SYN, timeout=5, skip=(ACK, FIN, DAT))
    fw.ack(sid, 1024)
    req = b""
    while b"\r\n\r\n" not in req:
        t, s2, p = fw.next_frame()
        if s2 == sid and t == DAT:
            req += p
    fw.dat(sid, b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    fw.fin(sid)
    head, got = read_response(s)
    s.close()
    return head, got, req


# ---- tests -----------------------------------------------------------------------------------


def test_ping_at_start_and_pong(procs, fakes):
    n, fw = start(procs, fakes)
    t, data = fw.pings[0]
    assert data == b""
    assert t - fw.registered_at < 1.0
    fw.send_ws(0x9, b"are you there")
    wait_for(lambda: fw.pongs, 5, "pong")
    assert fw.pongs == [b"are you there"]
    fw.no_frame(0.2)  # no wsmux frame without a viewer


def test_request_flow_control_and_rewrite(procs, fakes):
    n, fw = start(procs, fakes)
    body = os.urandom(20000)
    s = viewer(n, b"POST /fw/echo/a?q=1 HTTP/1.1\r\nHost: viewer.example\r\nContent-Length: %d\r\n\r\n%s"
               % (len(body), body))
    sid, p = fw.expect(SYN)
    assert sid == 0 and p == b""
    fw.no_frame(0.3)  # nothing may be sent before the stream is accepted
    fw.ack(sid, 1024)  # the Go library default window
    # the node grants the rest of its window at once
    _, p = fw.expect(ACK, sid)
    assert struct.unpack("<I", p)[0] == WINDOW - 1024
    # then exactly the credit we granted, and no more until we grant more
    req = fw.read_stream(sid, 1024)
    fw.no_frame(0.3)
    assert fw.received[sid] == 1024
    total = None
    while total is None or len(req) < total:
        fw.ack(sid, 4096)  # a slow reader: 4 KiB more credit at a time
        deadline = time.time() + 5
        while True:
            if total is None and b"\r\n\r\n" in req:
                total = req.index(b"\r\n\r\n") + 4 + len(body)
            want = fw.granted[sid] if total is None else min(fw.granted[sid], total)
            if len(req) >= want:
                break
            assert time.time() < deadline, "the node stalled at %d of %d bytes of credit" % (len(req), want)
            req += fw.read_stream(sid, 1, timeout=deadline - time.time())
        assert fw.received[sid] <= fw.granted[sid]
        fw.no_frame(0.05)  # and nothing beyond the credit
    head, rest = req.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST /echo/a?q=1 HTTP/1.1"
    hdrs = {}
    for line in lines[1:]:
        k, v = line.split(":", 1)
        hdrs[k.lower()] = v.strip()
    assert hdrs["host"] == "viewer.example"
    assert hdrs["x-websocktunnel-original-path"] == "/fw/echo/a?q=1"
    assert hdrs["x-webhooktunnel-original-path"] == "/fw/echo/a?q=1"
    assert hdrs["content-length"] == str(len(body))
    assert hashlib.sha256(rest).digest() == hashlib.sha256(body).digest()
    fw.no_frame(0.2)
    # the response goes back within the credit the acceptor rule gives us (1024 + the grant)
    fw.dat(sid, b"HTTP/1.1 201 Created\r\nContent-Length: 5\r\n\r\nhello")
    h, b = read_response(s)
    assert h.startswith("HTTP/1.1 201 ") and b == b"hello"
    s.close()
    # the viewer left: the node ends the stream (FIN, compat) promptly
    fw.expect(FIN, sid, timeout=3, skip=(ACK,))


def test_newest_client_4mib_without_acks(procs, fakes):
    n, fw = start(procs, fakes)
    upload = os.urandom(1024 * 1024)
    s = viewer(n, b"POST /fw/big HTTP/1.1\r\nHost: v\r\nContent-Length: %d\r\n\r\n" % len(upload) + upload)
    sid, _ = fw.expect(SYN)
    fw.ack(sid, NEWEST_WINDOW)
    req = b""
    while b"\r\n\r\n" not in req or len(req) < req.index(b"\r\n\r\n") + 4 + len(upload):
        req += fw.read_stream(sid, 1)
    assert req.startswith(b"POST /big HTTP/1.1\r\n")
    assert req.endswith(upload)  # in DAT frames of at most 32 KiB (checked by the reader)
    head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (NEWEST_WINDOW - 44)
    assert len(head) == 44
    body = os.urandom(NEWEST_WINDOW - len(head))
    resp = head + body  # exactly the 4 MiB of credit the acceptor rule gives us
    # all of it before reading anything from the viewer: the node must absorb it
    for i in range(0, len(resp), 32 * 1024):
        fw.dat(sid, resp[i:i + 32 * 1024], fragment=4096)
    h, got = read_response(s, timeout=20)
    assert h.startswith("HTTP/1.1 200 ")
    assert len(got) == len(body)
    assert hashlib.sha256(got).digest() == hashlib.sha256(body).digest()
    # the viewer consumed it: the node gives credit back (batched ACKs), never more than consumed
    wait_for(lambda: fw.node_acks.get(sid, 0) > 0, 5, "credit returned")
    assert fw.node_acks[sid] <= len(resp)
    s.close()


def test_malformed_messages_from_worker_are_dropped(procs, fakes):
    n, fw = start(procs, fakes)
    for m in (b"", b"\x00", b"\x02\x00\x00", b"\x01\x00\x00\x00"):  # shorter than 5 bytes
        fw.send_ws(0x2, m)
    fw.send_mux(4, 0)                       # CLS: a type the node does not speak
    fw.send_mux(9, 7, b"whatever")          # unknown type
    fw.send_mux(0xFF, 0xFFFFFFFF, b"x" * 100)
    fw.send_mux(ACK, 0, b"\x01\x02")        # ACK with a short payload, no such stream
    fw.send_mux(DAT, 12345, b"late")        # a stream that does not exist
    fw.send_mux(FIN, 99)
    fw.send_ws(0x1, b"a text message")      # ignored
    fw.send_ws(0x9, b"p")
    wait_for(lambda: fw.pongs, 5, "pong after the junk")
    assert n.alive()
    head, body, req = request_through(n, fw, "/after-junk", b"still here")
    assert head.startswith("HTTP/1.1 200 ") and body == b"still here"
    assert req.startswith(b"GET /after-junk HTTP/1.1\r\n")
    # a short ACK on a live stream (the 2019 Go client would panic; the node drops it)
    s = viewer(n, b"GET /fw/two HTTP/1.1\r\nHost: v\r\nConnection: close\r\n\r\n")
    sid, _ = fw.expect(SYN, skip=(ACK, FIN))
    fw.send_mux(ACK, sid, b"\x01")
    fw.ack(sid, 1024)
    req = b""
    while b"\r\n\r\n" not in req:
        t, s2, p = fw.next_frame()
        if t == DAT:
            req += p
    fw.dat(sid, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    assert read_response(s)[1] == b"ok"
    s.close()
    assert n.alive()
    assert not fw.eof.is_set()


@pytest.mark.parametrize("limit", [128, 190])  # the default, and the highest the node accepts
def test_syn_limit_queue_timeout_and_recovery(procs, fakes, limit):
    env = {"WHT_QUEUE_TIMEOUT": "1s"}
    if limit != 128:
        env["WHT_MAX_STREAMS_PER_WORKER"] = str(limit)
    n, fw = start(procs, fakes, env=env)
    viewers = []
    t0 = time.time()
    for i in range(300):
        s = socket.create_connection(("127.0.0.1", n.port), timeout=10)
        s.sendall(b"GET /fw/r%d HTTP/1.1\r\nHost: v\r\nConnection: close\r\n\r\n" % i)
        viewers.append(s)
    wait_for(lambda: len(fw.syns) >= limit, 10, "SYNs")
    # the others wait in the node's queue and get 503 after WHT_QUEUE_TIMEOUT
    answers = {}
    deadline = time.time() + 6
    while len(answers) < 300 - limit and time.time() < deadline:
        r, _, _ = select.select([s for s in viewers if s not in answers], [], [], 0.2)
        for s in r:
            d = s.recv(4096)
            answers[s] = d
    elapsed = time.time() - t0
    assert len(fw.syns) == limit, len(fw.syns)
    assert len(answers) == 300 - limit
    assert all(d.startswith(b"HTTP/1.1 503 ") for d in answers.values()), set(d[:20] for d in answers.values())
    assert 0.9 <= elapsed < 5, elapsed
    assert len(fw.syns) == limit  # still: no SYN for the timed-out viewers
    assert n.alive() and not fw.eof.is_set()
    # now accept everything and answer: the session works
    waiting = [s for s in viewers if s not in answers]
    for s in answers:
        s.close()
    for sid in fw.syns:
        fw.ack(sid, 1024)
    reqs = {sid: b"" for sid in fw.syns}
    deadline = time.time() + 10
    while any(b"\r\n\r\n" not in r for r in reqs.values()) and time.time() < deadline:
        t, sid, p = fw.next_frame()
        if t == DAT:
            reqs[sid] += p
    for sid, r in reqs.items():
        assert r.startswith(b"GET /r"), r[:40]
        body = r.split(b" ")[1][1:]
        fw.dat(sid, b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        fw.fin(sid)
    got = set()
    for s in waiting:
        h, b = read_response(s)
        assert h.startswith("HTTP/1.1 200 ")
        got.add(b)
        s.close()
    assert len(got) == limit
    head, body, _ = request_through(n, fw, "/fresh", b"fresh")
    assert body == b"fresh"
    assert len(fw.syns) == limit + 1


def test_stream_limit_over_go_bound_refused():
    # Go clients break past 200 unaccepted SYNs: the node refuses a setting over 190
    env = dict(os.environ, WHT_MAX_STREAMS_PER_WORKER="191", PORT="0", WHT_LISTEN_ADDR="127.0.0.1",
               TASKCLUSTER_PROXY_SECRET_A="a", TASKCLUSTER_PROXY_SECRET_B="b")
    r = subprocess.run([binary("whtunnel")], env=env, capture_output=True, timeout=10)
    assert r.returncode != 0
    assert b"max-streams-per-worker" in r.stderr.lower() or b"WHT_MAX_STREAMS_PER_WORKER" in r.stderr


def test_ping_timeout_drops_silent_worker(procs, fakes):
    n = Node(env={"WHT_PING_INTERVAL": "1s"})
    procs.append(n)
    live = FakeWorker(n.port, "live")
    silent = FakeWorker(n.port, "silent", auto_pong=False)
    fakes += [live, silent]
    assert silent.eof.wait(4), "the silent worker was not dropped"
    dropped_after = time.time() - silent.registered_at
    assert 0.8 <= dropped_after <= 1.8, dropped_after
    s = viewer(n, b"GET /silent/x HTTP/1.1\r\nHost: v\r\n\r\n")
    h, b = read_response(s)
    assert h.startswith("HTTP/1.1 404 ") and b"No client is connected" in b
    s.close()
    # the worker that answers pings stays, through several intervals
    time.sleep(max(0, live.registered_at + 3.2 - time.time()))
    assert not live.eof.is_set()
    assert len(live.pings) >= 3
    head, body, _ = request_through(n, live, "/x", b"alive")
    assert body == b"alive"


def test_pings_keep_each_workers_own_schedule(procs, fakes):
    # one node timer pings every worker (node/wsmux.c); each still gets its pings one interval
    # after its own previous one, not in step with the others
    n = Node(env={"WHT_PING_INTERVAL": "1s"})
    procs.append(n)
    a = FakeWorker(n.port, "a")
    fakes.append(a)
    time.sleep(0.5)
    b = FakeWorker(n.port, "b")
    fakes.append(b)
    wait_for(lambda: len(a.pings) >= 4 and len(b.pings) >= 4, 8, "four pings each")
    for w in (a, b):
        times = [w.registered_at] + [t for t, _ in w.pings[:4]]
        assert times[1] - times[0] < 0.5, (w.wid, times)  # the ping at the start
        gaps = [y - x for x, y in zip(times[1:], times[2:])]
        assert all(0.9 <= g <= 1.6 for g in gaps), (w.wid, gaps)
    offset = (b.pings[1][0] - a.pings[1][0]) % 1.0
    assert 0.2 <= offset <= 0.8, offset  # b's schedule is its own, half an interval after a's
    assert not a.eof.is_set() and not b.eof.is_set()


def test_viewer_gone_mid_response_frees_stream(procs, fakes):
    # one stream per worker: a new request gets its SYN only once the old stream is freed
    n, fw = start(procs, fakes, env={"WHT_MAX_STREAMS_PER_WORKER": "1", "WHT_QUEUE_TIMEOUT": "10s"})
    s = viewer(n, b"GET /fw/long HTTP/1.1\r\nHost: v\r\n\r\n")
    sid, _ = fw.expect(SYN)
    fw.ack(sid, 1024)
    req = b""
    while b"\r\n\r\n" not in req:
        req += fw.read_stream(sid, 1)
    fw.dat(sid, b"HTTP/1.1 200 OK\r\nContent-Length: 10000000\r\n\r\n" + b"a" * 1000)
    s.settimeout(5)
    got = b""
    while len(got) < 1000:
        got += s.recv(65536)
    # the viewer leaves while the response is stalled
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
    t0 = time.time()
    fw.expect(FIN, sid, timeout=3, skip=(ACK,))
    assert time.time() - t0 < 1.0
    # the slot is free at once, before the worker's FIN
    s2 = viewer(n, b"GET /fw/next HTTP/1.1\r\nHost: v\r\nConnection: close\r\n\r\n")
    sid2, _ = fw.expect(SYN, timeout=3, skip=(ACK,))
    assert sid2 != sid
    # the abandoned stream's data is acknowledged and discarded
    acked = fw.node_acks.get(sid, 0)
    fw.dat(sid, b"b" * 30000)
    wait_for(lambda: fw.node_acks.get(sid, 0) >= acked + 30000, 5, "ACK for discarded data")
    fw.fin(sid)
    # and the new stream works
    fw.ack(sid2, 1024)
    req = b""
    while b"\r\n\r\n" not in req:
        t, s3, p = fw.next_frame()
        if t == DAT and s3 == sid2:
            req += p
    assert req.startswith(b"GET /next ")
    fw.dat(sid2, b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnext")
    assert read_response(s2)[1] == b"next"
    s2.close()


def test_worker_close_ends_session(procs, fakes):
    n, fw = start(procs, fakes)
    head, body, _ = request_through(n, fw, "/x", b"before")
    assert body == b"before"
    fw.send_ws(0x8, struct.pack("!H", 1000) + b"bye")
    assert fw.eof.wait(3), "the node kept the session open"
    # a close frame back, if any, carries a valid code
    for c in fw.close_frames:
        assert len(c) == 0 or len(c) >= 2
    s = viewer(n, b"GET /fw/x HTTP/1.1\r\nHost: v\r\n\r\n")
    h, b = read_response(s)
    assert h.startswith("HTTP/1.1 404 ")
    s.close()
    assert n.alive()


def test_viewer_gone_while_queued(procs, fakes):
    # one stream per worker: the second viewer waits in the queue, then leaves
    n, fw = start(procs, fakes, env={"WHT_MAX_STREAMS_PER_WORKER": "1", "WHT_QUEUE_TIMEOUT": "10s"})
    s1 = viewer(n, b"GET /fw/first HTTP/1.1\r\nHost: v\r\nConnection: close\r\n\r\n")
    sid1, _ = fw.expect(SYN)
    fw.ack(sid1, 1024)
    req = b""
    while b"\r\n\r\n" not in req:
        req += fw.read_stream(sid1, 1)
    s2 = viewer(n, b"GET /fw/second HTTP/1.1\r\nHost: v\r\nConnection: close\r\n\r\n")
    fw.no_frame(0.3)  # the slot is taken: no SYN
    s2.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s2.close()
    time.sleep(0.2)
    s3 = viewer(n, b"GET /fw/third HTTP/1.1\r\nHost: v\r\nConnection: close\r\n\r\n")
    fw.no_frame(0.2)
    fw.dat(sid1, b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst")
    fw.fin(sid1)
    assert read_response(s1)[1] == b"first"
    s1.close()
    # the next stream is for the third viewer: the second one was dropped from the queue
    sid3, _ = fw.expect(SYN, skip=(ACK, FIN))
    fw.ack(sid3, 1024)
    req = b""
    while b"\r\n\r\n" not in req:
        t, s, p = fw.next_frame()
        if t == DAT and s == sid3:
            req += p
    assert req.startswith(b"GET /third "), req[:30]
    fw.dat(sid3, b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nthird")
    fw.fin(sid3)
    assert read_response(s3)[1] == b"third"
    s3.close()
    assert len(fw.syns) == 2


def ws_client_frame(opcode, payload=b"", fin=True):
    """One masked client WebSocket frame, as bytes (to be sent with others in one sendall)."""
    n = len(payload)
    b0 = (0x80 if fin else 0) | opcode
    if n < 126:
        hdr = struct.pack("!BB", b0, 0x80 | n)
    elif n < 65536:
        hdr = struct.pack("!BBH", b0, 0x80 | 126, n)
    else:
        hdr = struct.pack("!BBQ", b0, 0x80 | 127, n)
    mask = os.urandom(4)
    return hdr + mask + _mask(payload, mask)


def read_server_frames(s, buf, until, timeout=5.0):
    """Reads unmasked server frames from s (buf: bytes already received) until
    until(frames) is true; returns (frames as (opcode, payload), rest of buf)."""
    frames = []
    deadline = time.time() + timeout
    while not until(frames):
        if len(buf) >= 2:
            b1 = buf[1]
            assert not b1 & 0x80, "a masked frame from the node"
            n, h = b1 & 0x7F, 2
            if n == 126 and len(buf) >= 4:
                n, h = struct.unpack("!H", buf[2:4])[0], 4
            elif n == 127 and len(buf) >= 10:
                n, h = struct.unpack("!Q", buf[2:10])[0], 10
            if n < 126 and len(buf) >= h + n:
                frames.append((buf[0] & 0x0F, buf[h:h + n]))
                buf = buf[h + n:]
                continue
        left = deadline - time.time()
        assert left > 0, "timed out: frames so far %r, pending %r" % (frames, buf[:60])
        s.settimeout(left)
        d = s.recv(65536)
        assert d, "the node closed the connection: frames so far %r" % frames
        buf += d
    return frames, buf


def test_pipelined_registration_does_not_corrupt_worker_reads(procs, fakes):
    """A worker's message completes a viewer's keep-alive response; that viewer
    connection has a worker registration (with the new worker's first
    WebSocket frames) pipelined behind the request. The registration starts
    the new session inside the first worker's read callback, and the new
    session reads its pending frames at once: that must not disturb the rest
    of the first worker's bytes, read in the same chunk.

    The byte layout makes a shared read buffer show: worker B's pipelined
    frames are a ping exactly as long as A's completing frame, then pings of
    the same size as A's later pings, and more of them. Were B's bytes to
    overwrite A's chunk, A's session would parse B's pings in place of its own
    and answer A with B's payloads."""
    n, fa = start(procs, fakes, env={"WHT_PING_INTERVAL": "60s"}, wid="wa")  # no periodic ping in between
    resp = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    first_len = len(ws_client_frame(0x2, mux_frame(DAT, 0, resp)))  # the same for any stream id
    p = first_len - 6  # payload of a ping with the same frame length (2-byte header + mask)
    assert p <= 125
    a_pings = [(b"A-ping-%d " % i).ljust(100, b"a") for i in range(3)]
    b_pings = [b"B-filler ".ljust(p, b"f")] + [(b"B-ping-%d " % i).ljust(100, b"b") for i in range(5)]
    b_list = [ws_client_frame(0x9, x) for x in b_pings]
    b_frames = b"".join(b_list)
    a_rest = b"".join(ws_client_frame(0x9, x) for x in a_pings)
    assert len(b_frames) > first_len + len(a_rest)  # B's bytes cover the whole of A's chunk
    key = base64.b64encode(os.urandom(16)).decode()
    registration = ("GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUser-Agent: Go-http-client/1.1\r\n"
                    "Authorization: Bearer %s\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                    "Sec-WebSocket-Version: 13\r\nUpgrade: websocket\r\nX-Websocktunnel-Id: wb\r\n\r\n"
                    % (n.port, make_token("wb"), key)).encode()
    # one sendall: a keep-alive GET for wa, wb's registration, wb's first frames
    sv = viewer(n, b"GET /wa/first HTTP/1.1\r\nHost: v\r\n\r\n" + registration + b_frames)
    try:
        sid, _ = fa.expect(SYN, timeout=5)
        fa.ack(sid, 1024)
        req = b""
        while b"\r\n\r\n" not in req:
            t, s2, d = fa.next_frame()
            if s2 == sid and t == DAT:
                req += d
        assert req.startswith(b"GET /first HTTP/1.1\r\n"), req[:40]
        time.sleep(0.1)  # the node has long read the viewer's bytes (one segment on loopback)
        # one sendall from A: the frame that completes the response, then three pings
        first = ws_client_frame(0x2, mux_frame(DAT, sid, resp))
        assert len(first) == first_len
        with fa.send_lock:
            fa.sock.sendall(first + a_rest)

        # the viewer connection: the response, then wb's 101, then wb's session
        buf = b""
        sv.settimeout(5)
        deadline = time.time() + 5
        while buf.count(b"\r\n\r\n") < 2:
            assert time.time() < deadline, buf
            d = sv.recv(65536)
            assert d, "the node closed the viewer connection: %r" % buf
            buf += d
        head1, rest = buf.split(b"\r\n\r\n", 1)
        assert head1.startswith(b"HTTP/1.1 200 "), buf
        assert rest.startswith(b"ok"), rest[:60]
        head2, buf = rest[2:].split(b"\r\n\r\n", 1)
        assert head2.startswith(b"HTTP/1.1 101 "), head2
        want = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode())
                                .digest()).decode()
        assert ("sec-websocket-accept: " + want.lower()).encode() in head2.lower()
        frames, buf = read_server_frames(sv, buf, lambda f: sum(1 for o, _ in f if o == 0xA) >= len(b_pings))
        assert (0x9, b"") in frames  # the node's ping at the start of wb's session
        assert [d for o, d in frames if o == 0xA] == b_pings  # every one of wb's pings answered, exactly

        # A's session went on with A's own bytes: its three pings answered with their payloads
        wait_for(lambda: len(fa.pongs) >= len(a_pings) or fa.eof.is_set(), 5, "wa's pongs")
        assert not fa.eof.is_set(), "the node dropped wa's session"
        time.sleep(0.2)  # no extra pong either

        def whose(pong):  # wb's ping payloads, as sent or unmasked in place once and masked again
            for i, (f, x) in enumerate(zip(b_list, b_pings)):
                if pong in (x, _mask(x, f[2:6])):
                    return "wb's ping %d (%r)" % (i, x[:9])
            return "its own" if pong in a_pings else "unknown"
        assert fa.pongs == a_pings, "wa's pings were answered with the payloads of %s" % [whose(x) for x in fa.pongs]
        head, body, req = request_through(n, fa, "/after", b"after")
        assert head.startswith("HTTP/1.1 200 ") and body == b"after"
        assert req.startswith(b"GET /after HTTP/1.1\r\n")
        assert not fa.eof.is_set() and n.alive()
    finally:
        sv.close()


@pytest.mark.parametrize("version", ["1.1", "1.0"])
def test_interim_response_only_to_http11_viewers(procs, fakes, version):
    # a 1xx before the final response goes to an HTTP/1.1 viewer as is, never to
    # an HTTP/1.0 one (RFC 9110 15.2)
    n, fw = start(procs, fakes)
    s = viewer(n, b"GET /fw/x HTTP/%s\r\nHost: v\r\nConnection: close\r\n\r\n" % version.encode())
    sid, _ = fw.expect(SYN)
    fw.ack(sid, 1024)
    req = b""
    while b"\r\n\r\n" not in req:
        req += fw.read_stream(sid, 1)
    fw.dat(sid, b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    fw.fin(sid)
    s.settimeout(10)
    got = recv_to_close(s)
    s.close()
    assert got.endswith(b"\r\n\r\nok"), got
    if version == "1.1":
        assert got.startswith(b"HTTP/1.1 103 Early Hints\r\n"), got[:60]
        assert b"HTTP/1.1 200 OK\r\n" in got
    else:
        assert got.startswith(b"HTTP/1.1 200 OK\r\n"), got[:60]
        assert b" 103 " not in got
