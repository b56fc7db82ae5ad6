"""whclient's own WebSocket framing, against a fake node written here (a plain socket that
answers the registration and then speaks raw WebSocket frames): the request's upgrade fields,
the checked Sec-WebSocket-Accept and extensions, frames that arrive with the 101, fragmented
messages with a ping between the fragments, many frames for one stream in one read (gathered into
one write to the local port, in order), the close handshake (4001: replaced), an oversized
message, and whclient's keep-alive ping; and, against a real node, the pause and resumption of
WebSocket reads when the local server does not keep up."""

import base64
import hashlib
import socket
import struct
import threading
import time

import pytest

from conftest import Proc, binary, free_port, make_token, recv_to_close, slow_check, wait_for

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455


def accept_of(key):
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


def frame(opcode, payload=b"", fin=True):
    """A server frame (unmasked)."""
    b0 = (0x80 if fin else 0) | opcode
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", b0, n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, 126, n)
    else:
        head = struct.pack("!BBQ", b0, 127, n)
    return head + payload


def syn(stream_id):
    return bytes([1]) + struct.pack("<I", stream_id)


class FakeNode:
    """Accepts whclient connections one at a time; each is handled by respond(conn, request)."""

    def __init__(self, respond):
        self.port = free_port()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", self.port))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.respond = respond
        self.requests = []
        self.errors = []
        self.stopping = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return "ws://127.0.0.1:%d" % self.port

    def run(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            conn.settimeout(30)
            try:
                head = b""
                while b"\r\n\r\n" not in head and len(head) < 65536:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    head += chunk
                lines = head.split(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
                fields = {}
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    fields.setdefault(name.strip().lower(), []).append(value.strip())
                self.requests.append((lines[0], fields))
                self.respond(conn, fields)
            except Exception as e:  # noqa: BLE001 - reported by the test
                self.errors.append(repr(e))
            finally:
                conn.close()

    def stop(self):
        self.stopping = True
        self.sock.close()
        self.thread.join(5)


def read_frame(conn):
    """One client frame: (fin, opcode, unmasked payload). The client must mask."""
    def exact(n):
        b = b""
        while len(b) < n:
            c = conn.recv(n - len(b))
            if not c:
                raise EOFError("connection closed")
            b += c
        return b
    b0, b1 = exact(2)
    assert b1 & 0x80, "client frames are masked"
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack("!H", exact(2))[0]
    elif n == 127:
        n = struct.unpack("!Q", exact(8))[0]
    key = exact(4)
    data = bytes(b ^ key[i % 4] for i, b in enumerate(exact(n)))
    return bool(b0 & 0x80), b0 & 0x0F, data


def read_until(conn, opcode, deadline_s):
    """Client frames until one with opcode (others skipped); returns its payload."""
    conn.settimeout(deadline_s)
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        _, op, data = read_frame(conn)
        if op == opcode:
            return data
    raise AssertionError("no frame with opcode %d in %.0f s" % (opcode, deadline_s))


def upgrade(conn, fields, accept=None, extra=b"", url="http://fake/w1/"):
    key = fields["sec-websocket-key"][0]
    conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 b"Sec-WebSocket-Accept: " + (accept or accept_of(key)).encode() + b"\r\n"
                 b"X-Whtunnel-Ext: 1\r\nX-Websocktunnel-Client-Url: " + url.encode() + b"\r\n\r\n" + extra)


@pytest.fixture
def fake(procs):
    made = []

    def make(respond):
        f = FakeNode(respond)
        made.append(f)
        return f
    yield make
    for f in made:
        f.stop()


def client(procs, url, wid="w1", port=1):
    c = Proc([binary("whclient"), url, wid, str(port), "--token", make_token(wid), "--log-level", "debug"],
             name="client")
    procs.append(c)
    return c


def test_request_fields_and_frames_with_the_101(procs, fake):
    """The upgrade request carries the WebSocket fields, the token and the id; a ping sent in the
    same write as the 101 is answered with a masked pong carrying its payload."""
    got = {}

    def respond(conn, fields):
        upgrade(conn, fields, extra=frame(0x9, b"ping-with-101"))
        got["pong"] = read_until(conn, 0xA, 10)

    f = fake(respond)
    c = client(procs, f.url)
    wait_for(lambda: "pong" in got or f.errors, 15, "the pong")
    assert got.get("pong") == b"ping-with-101", (f.errors, c.output())
    line, fields = f.requests[0]
    assert line == "GET / HTTP/1.1"
    assert fields["upgrade"] == ["websocket"]
    assert any("upgrade" in v.lower() for v in fields["connection"])
    assert fields["sec-websocket-version"] == ["13"]
    assert len(base64.b64decode(fields["sec-websocket-key"][0])) == 16
    assert fields["authorization"][0].startswith("Bearer ")
    assert fields["x-websocktunnel-id"] == ["w1"] and fields["x-webhooktunnel-id"] == ["w1"]
    assert fields["x-whtunnel-ext"] == ["1"]
    assert "sec-websocket-extensions" not in fields
    assert "registered as w1" in c.output()
    assert c.p.stdout.readline() == b"http://fake/w1/\n"  # printed at registration, before the pong


@pytest.mark.parametrize("case", ["wrong accept", "extension", "framing"])
def test_bad_101_is_refused(procs, fake, case):
    """A 101 with a wrong Sec-WebSocket-Accept, selecting an extension, or with a body framing
    (which would make libwebsockets rewrite the stream) is not a session."""
    def respond(conn, fields):
        if case == "wrong accept":
            upgrade(conn, fields, accept=accept_of("AAAAAAAAAAAAAAAAAAAAAA=="))
        elif case == "framing":
            key = fields["sec-websocket-key"][0]
            conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                         b"Sec-WebSocket-Accept: " + accept_of(key).encode() + b"\r\n"
                         b"Transfer-Encoding: chunked\r\n\r\n")
        else:
            key = fields["sec-websocket-key"][0]
            conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                         b"Sec-WebSocket-Accept: " + accept_of(key).encode() + b"\r\n"
                         b"Sec-WebSocket-Extensions: permessage-deflate\r\n"
                         b"X-Websocktunnel-Client-Url: http://fake/w1/\r\n\r\n")
        time.sleep(0.5)

    f = fake(respond)
    c = client(procs, f.url)
    want = {"wrong accept": "Sec-WebSocket-Accept", "extension": "extension",
            "framing": "Transfer-Encoding"}[case]
    wait_for(lambda: "failed: HTTP 101" in c.output() and want in c.output(), 10, "the refusal")
    wait_for(lambda: len(f.requests) >= 2, 15, "a retry")
    assert "registered as" not in c.output()


def test_fragmented_message_with_ping_between(procs, fake):
    """A wsmux SYN split over three frames, with a ping between two of them, opens a stream:
    whclient answers the ping, accepts the stream (an ACK for it) and connects to the target port."""
    target = socket.socket()
    target.bind(("127.0.0.1", 0))
    target.listen(4)
    got = {}

    def respond(conn, fields):
        upgrade(conn, fields)
        m = syn(2)  # the node opens even stream ids
        conn.sendall(frame(0x2, m[:2], fin=False) + frame(0x0, m[2:3], fin=False) + frame(0x9, b"mid")
                     + frame(0x0, m[3:], fin=True))
        conn.settimeout(10)
        while "pong" not in got or "ack" not in got:
            _, op, data = read_frame(conn)
            if op == 0xA:
                got["pong"] = data
            elif op == 0x2 and data[:5] == bytes([2]) + struct.pack("<I", 2):
                got["ack"] = data
        time.sleep(1)

    f = fake(respond)
    c = client(procs, f.url, port=target.getsockname()[1])
    wait_for(lambda: ("pong" in got and "ack" in got) or f.errors, 10, "the pong and the ACK")
    assert got.get("pong") == b"mid", (f.errors, c.output())
    wait_for(lambda: "[stream 2]" in c.output(), 5, "the stream in the log")
    target.close()


def test_many_frames_for_one_stream_in_one_read(procs, fake):
    """40 DAT frames for one stream in one write, the 21st split over two WebSocket frames (its
    bytes are then not in whclient's read buffer), then the FIN: whclient gathers them for one
    write to the local port, more than it holds at once (16), and the local server reads every
    byte in order, then the end."""
    target = socket.socket()
    target.bind(("127.0.0.1", 0))
    target.listen(4)
    target.settimeout(10)
    pieces = [bytes([65 + i % 26]) * (100 + i) for i in range(40)]
    dat = [bytes([0]) + struct.pack("<I", 2) + p for p in pieces]
    got = {}

    def respond(conn, fields):
        upgrade(conn, fields)
        conn.sendall(frame(0x2, syn(2)))
        conn.settimeout(10)
        while True:  # whclient's ACK of the stream
            _, op, data = read_frame(conn)
            if op == 0x2 and data[:5] == bytes([2]) + struct.pack("<I", 2):
                break
        probe, _ = target.accept()  # whclient's check at start that the port answers (closed at once)
        probe.close()
        got["local"], _ = target.accept()  # the stream's
        time.sleep(0.5)  # whclient has seen its connection complete
        burst = b"".join(frame(0x2, m) for m in dat[:20])
        burst += frame(0x2, dat[20][:50], fin=False) + frame(0x0, dat[20][50:])
        burst += b"".join(frame(0x2, m) for m in dat[21:]) + frame(0x2, bytes([3]) + struct.pack("<I", 2))
        conn.sendall(burst)
        time.sleep(2)

    f = fake(respond)
    c = client(procs, f.url, port=target.getsockname()[1])
    wait_for(lambda: "local" in got or f.errors, 10, "whclient to connect to the local port")
    local = got["local"]
    local.settimeout(10)
    data = recv_to_close(local)  # until the node's FIN: whclient shuts its write side
    local.close()
    target.close()
    assert data == b"".join(pieces), (len(data), f.errors, c.output()[-2000:])


def test_close_4001_is_echoed_and_reported(procs, fake):
    """The node's close 4001 (replaced by another registration) is answered with a close frame
    and reported as a replacement."""
    got = {}

    def respond(conn, fields):
        if "close" in got:
            time.sleep(1)
            return
        upgrade(conn, fields)
        time.sleep(0.3)
        conn.sendall(frame(0x8, struct.pack("!H", 4001) + b"replaced by another registration"))
        got["close"] = read_until(conn, 0x8, 10)

    f = fake(respond)
    c = client(procs, f.url)
    wait_for(lambda: "replaced by another registration of w1" in c.output(), 10, "the report")
    wait_for(lambda: "close" in got or f.errors, 10, "the echoed close")
    assert got.get("close", b"")[:2] == struct.pack("!H", 4001), f.errors


def test_oversized_message_closes_with_1009(procs, fake):
    """A message over 1 MiB + 9 bytes (in fragments) ends the connection with close 1009."""
    got = {}

    def respond(conn, fields):
        if "close" in got:
            time.sleep(1)
            return
        upgrade(conn, fields)
        part = b"\0" * (256 * 1024)
        try:
            conn.sendall(frame(0x2, part, fin=False) + b"".join(frame(0x0, part, fin=False) for _ in range(4)))
        except OSError:
            pass
        got["close"] = read_until(conn, 0x8, 10)

    f = fake(respond)
    c = client(procs, f.url)
    wait_for(lambda: "close" in got or f.errors, 15, "the close frame")
    assert got.get("close", b"")[:2] == struct.pack("!H", 1009), f.errors
    wait_for(lambda: "reconnecting in" in c.output(), 10, "a reconnect")


def test_keepalive_ping_after_20s(procs, fake):
    """With nothing received for 20 s, whclient pings (and stays up when the pong comes)."""
    got = {}

    def respond(conn, fields):
        upgrade(conn, fields)
        t0 = time.monotonic()
        got["ping"] = read_until(conn, 0x9, 30)
        got["after"] = time.monotonic() - t0
        conn.sendall(frame(0xA, got["ping"]))
        time.sleep(1)

    f = fake(respond)
    client(procs, f.url)
    wait_for(lambda: "ping" in got or f.errors, 40, "a ping from whclient")
    assert 15 <= got["after"] <= 30, got


def test_backpressure_pauses_and_resumes_reads(procs, node):
    """Uploads to a local server that reads nothing for a while: the kernel takes up to about
    4 MiB per local socket, then each stream's data stays in whclient (up to the 256 KiB window).
    Once the session holds more than 8 MiB not yet written to local sockets, whclient stops
    reading the WebSocket; when the server reads again, whclient resumes and every upload
    completes, byte for byte (48 uploads of 6 MiB: 288 MiB in all)."""
    slow_check()
    streams, size = 48, 6 * 1024 * 1024
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    srv.bind(("127.0.0.1", 0))
    srv.listen(128)
    srv.settimeout(0.2)
    release, stop = threading.Event(), threading.Event()
    received, statuses = [], []
    want = bytes(range(256)) * (size // 256)

    def serve(conn):
        conn.settimeout(60)
        release.wait(60)
        data = b""
        try:
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            body = bytearray(data.partition(b"\r\n\r\n")[2])
            while len(body) < size:
                chunk = conn.recv(262144)
                if not chunk:
                    break
                body += chunk
            received.append(len(body) == size and body == want)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            while conn.recv(65536):  # until the viewer's side ends the stream
                pass
        except Exception as e:  # noqa: BLE001 - reported by the test
            received.append(repr(e))
        finally:
            conn.close()

    def accept():
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    c = Proc([binary("whclient"), node.url, "bp", str(srv.getsockname()[1]), "--token", make_token("bp"),
              "--log-level", "debug"], name="client")
    procs.append(c)
    wait_for(lambda: "registered as bp" in c.output(), 10, "the registration")

    def viewer():
        s = socket.create_connection(("127.0.0.1", node.port), timeout=90)
        try:
            s.sendall(b"POST /bp/up HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % size + want)
            statuses.append(s.recv(4096).split(b" ")[1])
        except OSError as e:
            statuses.append(repr(e).encode())
        finally:
            s.close()

    viewers = [threading.Thread(target=viewer, daemon=True) for _ in range(streams)]
    for v in viewers:
        v.start()
    try:
        wait_for(lambda: "pausing WebSocket reads" in c.output(), 30, "whclient to pause its reads")
    finally:
        release.set()
    wait_for(lambda: "reading the WebSocket again" in c.output(), 30, "whclient to resume")
    for v in viewers:
        v.join(90)
    stop.set()
    srv.close()
    assert statuses == [b"200"] * streams, (statuses, received)
    assert received == [True] * streams
