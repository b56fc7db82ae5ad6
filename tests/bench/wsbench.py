"""WebSocket helpers for tests/bench/bench.sh (Debian's /usr/bin/python3, standard library only).

Raw sockets and a minimal RFC 6455 codec, so that the Python cost per message
stays small and the same on every path measured.

  wsbench.py port                         print a free TCP port on 127.0.0.1
  wsbench.py echo PORT                    WebSocket echo server on 127.0.0.1:PORT (a thread per
                                          connection; text, binary, ping, close); runs until killed
  wsbench.py rtt URL... [--count N] [--size B] [--warmup N] [--timeout S]
                                          one connection to each ws://127.0.0.1:PORT/PATH; N rounds
                                          (after the warm-up ones), each sending a B-byte binary
                                          message on every connection in a random order and waiting
                                          for its echo; prints for each URL
                                          "rtt url=U n=N median_us=X p99_us=Y min_us=Z max_us=W"
  wsbench.py workers PORT COUNT SECRET [--prefix P] [--hold S] [--timeout S] [--no-ext]
                                          opens COUNT worker registrations (ids P0..P<COUNT-1>, each
                                          with its own HS256 token signed with SECRET) against the
                                          node on 127.0.0.1:PORT, prints "ready COUNT" once all got
                                          101, answers pings, and exits when stdin closes or after S
                                          seconds (default 120)

  wsbench.py cpu-snap ROOTPID FILE       saves the machine's busy CPU time (user, nice, system)
                                          and that of the process tree of ROOTPID, with the time
  wsbench.py cpu-other ROOTPID FILE       prints how much of the machine (percent of all cores)
                                          processes outside that tree used since cpu-snap

Every loop is bounded by a count and a deadline.
"""

import base64
import hashlib
import hmac
import json
import os
import random
import selectors
import socket
import struct
import sys
import threading
import time

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MAX_MESSAGE = 1 << 20
MAX_WORKERS = 20000


def die(msg):
    sys.stderr.write("wsbench: %s\n" % msg)
    sys.exit(1)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def accept_key(key):
    return base64.b64encode(hashlib.sha1(key + WS_GUID).digest())


def frame(opcode, payload, mask):
    """One final frame; masked with a random key when mask is true (client to server)."""
    n = len(payload)
    head = bytes([0x80 | opcode])
    mbit = 0x80 if mask else 0
    if n < 126:
        head += bytes([mbit | n])
    elif n < 65536:
        head += bytes([mbit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([mbit | 127]) + struct.pack("!Q", n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + xor_mask(payload, key)


def xor_mask(data, key):
    if not data:
        return b""
    n = len(data)
    k = int.from_bytes((key * ((n + 3) // 4))[:n], "little")
    return (int.from_bytes(data, "little") ^ k).to_bytes(n, "little")


def parse_frame(buf):
    """(fin, opcode, payload, consumed) for the first complete frame in buf, or None."""
    if len(buf) < 2:
        return None
    b0, b1 = buf[0], buf[1]
    n = b1 & 0x7F
    pos = 2
    if n == 126:
        if len(buf) < 4:
            return None
        n = struct.unpack_from("!H", buf, 2)[0]
        pos = 4
    elif n == 127:
        if len(buf) < 10:
            return None
        n = struct.unpack_from("!Q", buf, 2)[0]
        pos = 10
    if n > MAX_MESSAGE:
        raise ValueError("frame of %d bytes" % n)
    key = None
    if b1 & 0x80:
        if len(buf) < pos + 4:
            return None
        key = bytes(buf[pos:pos + 4])
        pos += 4
    if len(buf) < pos + n:
        return None
    payload = bytes(buf[pos:pos + n])
    if key:
        payload = xor_mask(payload, key)
    return bool(b0 & 0x80), b0 & 0x0F, payload, pos + n


def read_head(sock, deadline):
    buf = b""
    while b"\r\n\r\n" not in buf:
        if time.monotonic() > deadline or len(buf) > 65536:
            raise TimeoutError("no complete handshake head")
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("closed during the handshake")
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    return head.decode("latin-1"), rest


# ---- echo server ------------------------------------------------------------------------------


def echo_conn(conn):
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    conn.settimeout(600)
    try:
        head, buf = read_head(conn, time.monotonic() + 10)
        key = None
        for line in head.split("\r\n")[1:]:
            k, _, v = line.partition(":")
            if k.strip().lower() == "sec-websocket-key":
                key = v.strip().encode()
        if not key:
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return
        conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     b"Sec-WebSocket-Accept: " + accept_key(key) + b"\r\n\r\n")
        buf = bytearray(buf)
        while True:
            f = parse_frame(buf)
            if f is None:
                chunk = conn.recv(262144)
                if not chunk:
                    return
                buf += chunk
                continue
            _fin, op, payload, used = f
            del buf[:used]
            if op in (0, 1, 2):
                conn.sendall(frame(op, payload, False))
            elif op == 9:
                conn.sendall(frame(10, payload, False))
            elif op == 8:
                conn.sendall(frame(8, payload[:2], False))
                return
    except (OSError, ValueError, TimeoutError, ConnectionError):
        return
    finally:
        conn.close()


def cmd_echo(port):
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(128)
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=echo_conn, args=(conn,), daemon=True).start()


# ---- RTT client -------------------------------------------------------------------------------


def ws_connect(url, timeout, extra_headers=()):
    if not url.startswith("ws://"):
        die("only ws:// URLs: %s" % url)
    hostport, _, path = url[5:].partition("/")
    host, _, port = hostport.partition(":")
    sock = socket.create_connection((host, int(port or 80)), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    key = base64.b64encode(os.urandom(16))
    req = ("GET /%s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n" % (path, hostport, key.decode()))
    for h in extra_headers:
        req += h + "\r\n"
    sock.sendall((req + "\r\n").encode())
    head, rest = read_head(sock, time.monotonic() + timeout)
    status = head.split("\r\n", 1)[0]
    if " 101 " not in status + " ":
        raise ConnectionError("handshake answered %r" % status)
    if accept_key(key).decode() not in head:
        raise ConnectionError("bad Sec-WebSocket-Accept")
    return sock, bytearray(rest)


def cmd_rtt(urls, count, size, warmup, timeout):
    """One connection per URL; each round sends one message on every connection in a random
    order, so that every path sees the same machine state over time."""
    conns = [ws_connect(url, timeout) for url in urls]
    payload = os.urandom(size)
    deadline = time.monotonic() + timeout
    samples = [[] for _ in urls]
    order = list(range(len(urls)))
    rng = random.Random(1)
    for i in range(warmup + count):
        if time.monotonic() > deadline:
            die("rtt: deadline passed after %d rounds" % i)
        rng.shuffle(order)
        for k in order:
            sock, buf = conns[k]
            msg = frame(2, payload, True)
            t0 = time.perf_counter_ns()
            sock.sendall(msg)
            while True:
                f = parse_frame(buf)
                if f is not None:
                    break
                chunk = sock.recv(65536)
                if not chunk:
                    die("rtt: %s: connection closed" % urls[k])
                buf += chunk
            t1 = time.perf_counter_ns()
            _fin, op, echoed, used = f
            del buf[:used]
            if op != 2 or echoed != payload:
                die("rtt: %s: wrong echo (opcode %d, %d bytes)" % (urls[k], op, len(echoed)))
            if i >= warmup:
                samples[k].append((t1 - t0) / 1000.0)
    for k, url in enumerate(urls):
        sock = conns[k][0]
        sock.sendall(frame(8, struct.pack("!H", 1000), True))
        sock.close()
        s = sorted(samples[k])
        n = len(s)
        print("rtt url=%s n=%d median_us=%.1f p99_us=%.1f min_us=%.1f max_us=%.1f" %
              (url, n, s[n // 2], s[min(n - 1, (n * 99) // 100)], s[0], s[-1]))


# ---- idle workers -----------------------------------------------------------------------------


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def make_token(secret, tid):
    now = int(time.time())
    head = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64url(json.dumps({"tid": tid, "iat": now, "nbf": now - 300, "exp": now + 3600}).encode())
    sig = b64url(hmac.new(secret.encode(), ("%s.%s" % (head, body)).encode(), hashlib.sha256).digest())
    return "%s.%s.%s" % (head, body, sig)


class Worker:
    def __init__(self, wid):
        self.wid = wid
        self.sock = None
        self.buf = bytearray()
        self.ready = False


def cmd_workers(port, count, secret, prefix, hold, timeout, ext):
    if not 1 <= count <= MAX_WORKERS:
        die("workers: COUNT must be 1..%d" % MAX_WORKERS)
    sel = selectors.DefaultSelector()
    deadline = time.monotonic() + timeout
    pending = [Worker("%s%d" % (prefix, i)) for i in range(count)]
    pending.reverse()
    inflight = 0
    ready = 0
    live = []

    def start(w):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        w.sock = s
        req = ("GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer %s\r\n"
               "X-Websocktunnel-Id: %s\r\nX-Webhooktunnel-Id: %s\r\n%s\r\n" %
               (port, base64.b64encode(os.urandom(16)).decode(), make_token(secret, w.wid), w.wid, w.wid,
                "X-Whtunnel-Ext: 1\r\n" if ext else ""))
        w.out = req.encode()
        sel.register(s, selectors.EVENT_WRITE, w)
        live.append(w)

    def handle(w, events):
        nonlocal inflight, ready
        if events & selectors.EVENT_WRITE:
            try:
                n = w.sock.send(w.out)
            except BlockingIOError:
                return
            w.out = w.out[n:]
            if not w.out:
                sel.modify(w.sock, selectors.EVENT_READ, w)
            return
        try:
            chunk = w.sock.recv(65536)
        except BlockingIOError:
            return
        if not chunk:
            die("workers: %s: connection closed by the node (%s)" % (w.wid, "ready" if w.ready else "handshake"))
        w.buf += chunk
        if not w.ready:
            if b"\r\n\r\n" not in w.buf:
                if len(w.buf) > 65536:
                    die("workers: %s: oversized handshake answer" % w.wid)
                return
            head, _, rest = bytes(w.buf).partition(b"\r\n\r\n")
            status = head.split(b"\r\n", 1)[0].decode("latin-1")
            if " 101 " not in status + " ":
                die("workers: %s: registration answered %r" % (w.wid, status))
            w.ready = True
            w.buf = bytearray(rest)
            ready += 1
            inflight -= 1
        while True:
            f = parse_frame(w.buf)
            if f is None:
                break
            _fin, op, payload, used = f
            del w.buf[:used]
            if op == 9:
                w.sock.setblocking(True)
                w.sock.sendall(frame(10, payload, True))
                w.sock.setblocking(False)
            elif op == 8:
                die("workers: %s: the node closed the session" % w.wid)

    reported = False
    hold_until = None
    stdin_open = True
    try:
        sel.register(sys.stdin, selectors.EVENT_READ, None)
    except (ValueError, PermissionError, OSError):
        stdin_open = False
    while True:
        now = time.monotonic()
        while pending and inflight < 64:
            start(pending.pop())
            inflight += 1
        if not reported and ready == count:
            print("ready %d" % count, flush=True)
            reported = True
            hold_until = now + hold
        if reported and now > hold_until:
            break
        if not reported and now > deadline:
            die("workers: only %d of %d registered within %ss" % (ready, count, timeout))
        for key, events in sel.select(0.5):
            if key.data is None:
                if not os.read(sys.stdin.fileno(), 4096):
                    sel.unregister(sys.stdin)
                    stdin_open = False
                    if reported:
                        hold_until = 0
                    else:
                        die("workers: stdin closed before all registered")
                continue
            handle(key.data, events)
    for w in live:
        w.sock.close()


# ---- CPU used by other processes on the machine -------------------------------------------------


def proc_table():
    """{pid: (ppid, ticks)} from /proc; ticks = utime + stime + cutime + cstime."""
    table = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        # fields[0] is field 3 (state): ppid is field 4, utime..cstime fields 14..17
        table[int(name)] = (int(fields[1]), sum(int(x) for x in fields[11:15]))
    return table


def tree_ticks(root):
    """CPU ticks of the process tree under root, reaped children included."""
    table = proc_table()
    tree = {root}
    for _ in range(64):  # depth bound
        grown = {pid for pid, (ppid, _t) in table.items() if ppid in tree and pid not in tree}
        if not grown:
            break
        tree |= grown
    return sum(t for pid, (_p, t) in table.items() if pid in tree)


def busy_ticks():
    """user + nice + system ticks of all CPUs (interrupt and softirq time left out: much of it
    is this benchmark's own loopback traffic)."""
    with open("/proc/stat") as f:
        v = f.readline().split()
    return int(v[1]) + int(v[2]) + int(v[3])


def cmd_cpu_snap(root, path):
    with open(path, "w") as f:
        json.dump({"t": time.monotonic(), "busy": busy_ticks(), "tree": tree_ticks(root)}, f)


def cmd_cpu_other(root, path):
    with open(path) as f:
        snap = json.load(f)
    other = (busy_ticks() - snap["busy"]) - (tree_ticks(root) - snap["tree"])
    wall = time.monotonic() - snap["t"]
    hz = os.sysconf("SC_CLK_TCK")
    print("%.0f" % max(0.0, 100.0 * other / hz / wall / os.cpu_count()))


def main(argv):
    if len(argv) < 2:
        die(__doc__)
    cmd, args = argv[1], argv[2:]

    def opt(name, default, conv=int):
        if name in args:
            i = args.index(name)
            v = conv(args[i + 1])
            del args[i:i + 2]
            return v
        return default

    if cmd == "port":
        print(free_port())
    elif cmd == "echo":
        cmd_echo(int(args[0]))
    elif cmd == "rtt":
        count = opt("--count", 2000)
        size = opt("--size", 32)
        warmup = opt("--warmup", 200)
        timeout = opt("--timeout", 60, float)
        if not (1 <= count <= 1000000 and 0 <= size <= MAX_MESSAGE):
            die("rtt: bad --count or --size")
        if not 1 <= len(args) <= 16:
            die("rtt: 1 to 16 URLs")
        cmd_rtt(args, count, size, warmup, timeout)
    elif cmd == "workers":
        prefix = opt("--prefix", "idle", str)
        hold = opt("--hold", 120, float)
        timeout = opt("--timeout", 60, float)
        ext = True
        if "--no-ext" in args:
            args.remove("--no-ext")
            ext = False
        cmd_workers(int(args[0]), int(args[1]), args[2], prefix, hold, timeout, ext)
    elif cmd == "cpu-snap":
        cmd_cpu_snap(int(args[0]), args[1])
    elif cmd == "cpu-other":
        cmd_cpu_other(int(args[0]), args[1])
    else:
        die("unknown command %r" % cmd)


if __name__ == "__main__":
    main(sys.argv)
