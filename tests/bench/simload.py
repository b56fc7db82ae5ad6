"""Idle workers for tests/bench/cluster_sim.py (Debian's /usr/bin/python3, standard library only).

The same command line and output as tests/bench/whload (the project's C load tool), so that
the harness runs with either; this one also answers the node's requests:

  simload.py workers --nodes HOST:PORT[,HOST:PORT...] --count N --secret S [--prefix P]
                     [--first K] [--concurrency C] [--hold SECONDS] [--reconnect]
                     [--stats-every SECONDS] [--timeout SECONDS]

Worker ids P<K>..P<K+N-1>; worker P<k> registers on node k mod len(nodes) (by id number),
with its own HS256 token signed with S and `X-Whtunnel-Ext: 1`. It answers
pings; a request the node sends it (a wsmux SYN, then the request) is answered
`200` with the body "<id> <node port>\\n" (which node the worker is on), and the stream
closed. With --reconnect, a worker whose session ends (GOAWAY of a draining node, a close,
a refused registration) registers again at once on the next node of the list; without it,
it counts as failed. Prints

  ready N seconds=T rate=R        once all N registered (T since start, R per second)
  stats t=.. open=.. registered=.. reconnects=.. failed=..   every --stats-every seconds
  done t=.. open=.. registered=.. reconnects=.. failed=..    on exit

and exits on stdin EOF, SIGTERM, --hold expiry (0, the default: never), or, status 1, when not
every worker registered within --timeout seconds (60). One process holds at most 18,000 workers
(a process may hold 20,000 descriptors here). Every loop is bounded.
"""

import base64
import os
import selectors
import signal
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wsbench import frame, make_token, parse_frame  # noqa: E402

MAX_WORKERS = 18000
SYN, DAT, ACK, FIN, RST, GOAWAY = 1, 0, 2, 3, 5, 6
WINDOW = 65536


def die(msg):
    sys.stderr.write("simload: %s\n" % msg)
    sys.exit(2)


class Worker:
    __slots__ = ("wid", "node", "sock", "out", "buf", "state", "streams", "goaway", "token")

    def __init__(self, wid, node):
        self.wid = wid
        self.node = node
        self.sock = None
        self.out = b""
        self.buf = bytearray()
        self.state = "idle"  # idle, connecting, open
        self.streams = {}
        self.goaway = False
        self.token = None


def mux(kind, sid, payload=b""):
    return frame(2, bytes([kind]) + struct.pack("<I", sid) + payload, True)


class Load:
    def __init__(self, nodes, count, secret, prefix, first, concurrency, reconnect):
        self.nodes = nodes
        self.secret = secret
        self.reconnect = reconnect
        self.concurrency = concurrency
        self.sel = selectors.DefaultSelector()
        # worker P<k> on node k mod len(nodes), by id number (as whload): processes that split the
        # ids with --first agree on where each one goes
        self.workers = [Worker("%s%d" % (prefix, first + i), (first + i) % len(nodes)) for i in range(count)]
        self.queue = list(reversed(self.workers))  # waiting to (re)connect
        self.inflight = 0
        self.open = 0
        self.registered = 0  # successful registrations, first ones and re-registrations
        self.reconnects = 0
        self.failed = 0
        self.served = 0

    def start(self, w):
        host, port = self.nodes[w.node]
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex((host, port))
        if w.token is None:
            w.token = make_token(self.secret, w.wid)
        w.sock, w.state, w.buf, w.streams, w.goaway = s, "connecting", bytearray(), {}, False
        w.out = ("GET / HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer %s\r\n"
                 "X-Websocktunnel-Id: %s\r\nX-Whtunnel-Ext: 1\r\n\r\n" %
                 (host, port, base64.b64encode(os.urandom(16)).decode(), w.token, w.wid)).encode()
        self.inflight += 1
        self.sel.register(s, selectors.EVENT_WRITE, w)

    def drop(self, w, why_failed):
        """The session (or the attempt) ended: reconnect on the next node, or count it failed."""
        if w.state == "connecting":
            self.inflight -= 1
        elif w.state == "open":
            self.open -= 1
        try:
            self.sel.unregister(w.sock)
        except (KeyError, ValueError):
            pass
        w.sock.close()
        w.sock, w.state = None, "idle"
        if self.reconnect:
            w.node = (w.node + 1) % len(self.nodes)
            self.reconnects += 1
            self.queue.append(w)
        elif why_failed:
            self.failed += 1

    def send(self, w, data):
        w.out += data
        self.flush(w)

    def flush(self, w):
        if w.sock is None:
            return
        if w.out:
            try:
                n = w.sock.send(w.out)
                w.out = w.out[n:]
            except BlockingIOError:
                pass
            except OSError:
                self.drop(w, True)
                return
        want = selectors.EVENT_READ | (selectors.EVENT_WRITE if w.out else 0)
        self.sel.modify(w.sock, want, w)

    def on_handshake(self, w):
        if b"\r\n\r\n" not in w.buf:
            if len(w.buf) > 65536:
                self.drop(w, True)
            return False
        head, _, rest = bytes(w.buf).partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 101 "):
            self.drop(w, True)  # refused (a draining node answers 503): next node
            return False
        w.buf = bytearray(rest)
        w.state = "open"
        self.inflight -= 1
        self.open += 1
        self.registered += 1
        return True

    def on_mux(self, w, payload):
        if len(payload) < 5:
            return
        kind, sid, data = payload[0], struct.unpack_from("<I", payload, 1)[0], payload[5:]
        if kind == SYN:
            w.streams[sid] = bytearray()
            self.send(w, mux(ACK, sid, struct.pack("<I", WINDOW)))
        elif kind == DAT and sid in w.streams and w.streams[sid] is not None:
            req = w.streams[sid]
            req += data
            if b"\r\n\r\n" in req:
                body = ("%s %d\n" % (w.wid, self.nodes[w.node][1])).encode()
                resp = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n" % len(body)) + body
                w.streams[sid] = None  # answered
                self.send(w, mux(ACK, sid, struct.pack("<I", len(req))) + mux(DAT, sid, resp) + mux(FIN, sid))
                self.served += 1
        elif kind == FIN and sid in w.streams:
            if w.streams[sid] is None:
                del w.streams[sid]
        elif kind == RST:
            w.streams.pop(sid, None)
        elif kind == GOAWAY:
            w.goaway = True
        if w.goaway and w.sock is not None and not any(v is not None for v in w.streams.values()):
            self.drop(w, False)

    def on_readable(self, w):
        try:
            chunk = w.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            self.drop(w, w.state == "connecting")
            return
        w.buf += chunk
        if w.state == "connecting" and not self.on_handshake(w):
            return
        for _ in range(10000):
            if w.sock is None:
                return
            try:
                f = parse_frame(w.buf)
            except ValueError:
                self.drop(w, True)
                return
            if f is None:
                return
            _fin, op, payload, used = f
            del w.buf[:used]
            if op == 9:
                self.send(w, frame(10, payload, True))
            elif op == 8:
                self.drop(w, False)
                return
            elif op == 2:
                self.on_mux(w, payload)

    def on_event(self, w, events):
        if w.sock is None:
            return
        if events & selectors.EVENT_READ:
            self.on_readable(w)
        if w.sock is not None and events & selectors.EVENT_WRITE:
            if w.state == "connecting" and w.out.startswith(b"GET / "):
                err = w.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    self.drop(w, True)
                    return
            self.flush(w)

    def line(self, word, t0):
        return "%s t=%.1f open=%d registered=%d reconnects=%d failed=%d served=%d" % (
            word, time.monotonic() - t0, self.open, self.registered, self.reconnects, self.failed, self.served)

    def run(self, hold, stats_every, timeout):
        stop = []
        signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
        try:
            self.sel.register(sys.stdin, selectors.EVENT_READ, None)
        except (ValueError, PermissionError, OSError):
            pass
        t0 = time.monotonic()
        ready_at = None
        next_stats = t0 + stats_every if stats_every > 0 else None
        count = len(self.workers)
        while not stop:
            now = time.monotonic()
            for _ in range(self.concurrency):
                if not self.queue or self.inflight >= self.concurrency:
                    break
                self.start(self.queue.pop())
            if ready_at is None and self.open == count:
                ready_at = now
                print("ready %d seconds=%.2f rate=%.0f" % (count, now - t0, count / max(now - t0, 1e-6)), flush=True)
            if ready_at is not None and hold > 0 and now - ready_at > hold:
                break
            if ready_at is None and now - t0 > timeout:
                sys.stderr.write("simload: only %d of %d registered within %g s\n" % (self.open, count, timeout))
                break
            if next_stats is not None and now >= next_stats:
                print(self.line("stats", t0), flush=True)
                next_stats = now + stats_every
            for key, events in self.sel.select(0.2):
                if key.data is None:
                    if not os.read(sys.stdin.fileno(), 4096):
                        stop.append(1)
                        self.sel.unregister(sys.stdin)
                    continue
                self.on_event(key.data, events)
        print(self.line("done", t0), flush=True)
        for w in self.workers:
            if w.sock is not None:
                w.sock.close()
        return 0 if ready_at is not None else 1


def main(argv):
    if len(argv) < 2 or argv[1] != "workers":
        die(__doc__)
    args = argv[2:]
    opts = {"--prefix": "w", "--first": "0", "--concurrency": "256", "--hold": "0", "--stats-every": "0",
            "--timeout": "60"}
    flags = set()
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--reconnect":
            flags.add(a)
            i += 1
        elif a in ("--nodes", "--count", "--secret") or a in opts:
            if i + 1 >= len(args):
                die("%s needs a value" % a)
            opts[a] = args[i + 1]
            i += 2
        else:
            die("unknown argument %r" % a)
    for need in ("--nodes", "--count", "--secret"):
        if need not in opts:
            die("%s is required" % need)
    nodes = []
    for hp in opts["--nodes"].split(","):
        host, _, port = hp.rpartition(":")
        nodes.append((host or "127.0.0.1", int(port)))
    count = int(opts["--count"])
    if not 1 <= count <= MAX_WORKERS:
        die("--count must be 1..%d" % MAX_WORKERS)
    load = Load(nodes, count, opts["--secret"], opts["--prefix"], int(opts["--first"]),
                max(1, int(opts["--concurrency"])), "--reconnect" in flags)
    sys.exit(load.run(float(opts["--hold"]), float(opts["--stats-every"]), float(opts["--timeout"])))


if __name__ == "__main__":
    main(sys.argv)
