"""The node's limits: connections, header and idle timeouts, memory under a slow viewer."""

import asyncio
import select
import socket
import time

import pytest
import websockets

from conftest import Client, Node, read_until_close, rss_kb, wait_for

from backend import pattern


def heartbeat(sock):
    """One keep-alive request on sock; True when answered 200."""
    sock.sendall(b"GET /__lbheartbeat__ HTTP/1.1\r\nHost: x\r\n\r\n")
    buf = b""
    while b"\r\n\r\n" not in buf or not buf.endswith(b"}\n"):
        d = sock.recv(4096)
        if not d:
            return False
        buf += d
    return buf.startswith(b"HTTP/1.1 200 ")


def closed_by_peer(sock, timeout):
    """Waits up to timeout for the peer to close; returns (closed, data read)."""
    sock.settimeout(timeout)
    data = b""
    deadline = time.time() + timeout
    try:
        while time.time() < deadline:
            sock.settimeout(max(0.01, deadline - time.time()))
            d = sock.recv(4096)
            if not d:
                return True, data
            data += d
    except socket.timeout:
        return False, data
    except ConnectionResetError:
        return True, data
    return False, data


def test_max_connections(procs):
    n = Node(env={"WHT_MAX_CONNECTIONS": "5"})
    procs.append(n)
    held = []
    for _ in range(5):
        s = socket.create_connection(("127.0.0.1", n.port), timeout=5)
        assert heartbeat(s)
        held.append(s)
    # the sixth is accepted by the kernel and closed by the node at once
    for _ in range(3):
        s = socket.create_connection(("127.0.0.1", n.port), timeout=5)
        closed, data = closed_by_peer(s, 3)
        assert closed and data == b""
        s.close()
    for s in held:  # the ones inside are unaffected
        assert heartbeat(s)
    # once one leaves, a new one gets in
    held.pop().close()

    def one_more():
        s = socket.create_connection(("127.0.0.1", n.port), timeout=5)
        try:
            ok = heartbeat(s)
        except OSError:
            ok = False
        if ok:
            held.append(s)
        else:
            s.close()
        return ok
    wait_for(one_more, 5, "a free connection slot")
    for s in held:
        s.close()
    assert n.alive()


def test_slowloris_cut_at_header_timeout(procs):
    n = Node(env={"WHT_HEADER_TIMEOUT": "1s"})
    procs.append(n)
    s = socket.create_connection(("127.0.0.1", n.port), timeout=5)
    head = b"GET /w1/echo HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100
    start = time.time()
    data, reset = b"", False
    i = 0
    # one byte every 200 ms: each read resets a read timeout, not the head's deadline
    while time.time() - start < 6:
        r, _, _ = select.select([s], [], [], 0.2)
        if r:
            try:
                d = s.recv(4096)
            except ConnectionResetError:
                reset = True
                break
            if not d:
                break
            data += d
            continue
        try:
            s.sendall(head[i:i + 1] if i < len(head) else b"a")
        except (BrokenPipeError, ConnectionResetError):
            reset = True
            break
        i += 1
    elapsed = time.time() - start
    assert data.startswith(b"HTTP/1.1 408 ") or (reset and not data), data[:40]
    assert 0.9 <= elapsed < 2.0, elapsed
    s.close()


def test_header_timeout_counts_from_first_byte_of_each_head(procs):
    n = Node(env={"WHT_HEADER_TIMEOUT": "1s", "WHT_IDLE_TIMEOUT": "5s"})
    procs.append(n)
    s = socket.create_connection(("127.0.0.1", n.port), timeout=5)
    assert heartbeat(s)
    time.sleep(1.5)  # idle between requests is not header time
    assert heartbeat(s)
    # a head split over 0.6 s is in time
    s.sendall(b"GET /__lbheartbeat__ HTTP/1.1\r\n")
    time.sleep(0.6)
    s.sendall(b"Host: x\r\n\r\n")
    closed, data = closed_by_peer(s, 0.5)
    assert not closed and data.startswith(b"HTTP/1.1 200 ")
    s.close()
    # a connection that never sends anything goes at the header timeout
    s = socket.create_connection(("127.0.0.1", n.port), timeout=5)
    t0 = time.time()
    closed, data = closed_by_peer(s, 4)
    assert closed and data == b""
    assert 0.9 <= time.time() - t0 < 2.0
    s.close()


@pytest.fixture
def idle_tunnel(procs, backend):
    n = Node(env={"WHT_IDLE_TIMEOUT": "1s"})
    procs.append(n)
    c = Client(n.url, "w1", backend.port)
    procs.append(c)
    return n


def test_idle_keepalive_closed(idle_tunnel):
    n = idle_tunnel
    s = socket.create_connection(("127.0.0.1", n.port), timeout=5)
    s.sendall(b"GET /w1/echo HTTP/1.1\r\nHost: x\r\n\r\n")
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += s.recv(65536)
    head, body = buf.split(b"\r\n\r\n", 1)
    cl = int([line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")][0])
    while len(body) < cl:
        body += s.recv(65536)
    t0 = time.time()
    closed, data = closed_by_peer(s, 5)
    assert closed and data == b""
    assert 0.8 <= time.time() - t0 < 2.5, time.time() - t0
    s.close()


def test_long_response_not_cut_by_idle_timeout(idle_tunnel):
    n = idle_tunnel
    s = socket.create_connection(("127.0.0.1", n.port), timeout=10)
    s.sendall(b"GET /w1/slow?lines=30 HTTP/1.1\r\nHost: x\r\n\r\n")
    t0 = time.time()
    buf = b""
    while not buf.endswith(b"\r\n0\r\n\r\n") and time.time() - t0 < 10:
        d = s.recv(65536)
        assert d, "cut after %.1f s: %r" % (time.time() - t0, buf[-80:])
        buf += d
    assert buf.startswith(b"HTTP/1.1 200 ")
    assert buf.count(b"line ") == 30
    assert time.time() - t0 >= 2.5
    # then the connection is idle, and goes
    closed, _ = closed_by_peer(s, 5)
    assert closed
    s.close()


def test_websocket_not_cut_by_idle_timeout(idle_tunnel):
    n = idle_tunnel

    async def run():
        async with websockets.connect("ws://127.0.0.1:%d/w1/ws" % n.port, ping_interval=None) as ws:
            await ws.send("one")
            assert await ws.recv() == "one"
            await asyncio.sleep(2.2)  # quiet for more than the idle timeout
            await ws.send("two")
            assert await ws.recv() == "two"
    asyncio.run(asyncio.wait_for(run(), 15))


def test_slow_viewer_backpressure(procs, backend):
    n = Node()
    procs.append(n)
    c = Client(n.url, "w1", backend.port)
    procs.append(c)
    size = 200 * 1024 * 1024
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
    s.settimeout(30)
    s.connect(("127.0.0.1", n.port))
    base_node, base_client = rss_kb(n.p.pid), rss_kb(c.p.pid)
    s.sendall(b"GET /w1/bytes/%d HTTP/1.1\r\nHost: x\r\n\r\n" % size)
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = s.recv(4096)
        assert d
        buf += d
    head, got = buf.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200 ") and (b"Content-Length: %d" % size) in head
    peak_node = peak_client = 0
    start = time.time()
    last_sample = 0
    while time.time() - start < 8:  # a slow reader: about 1.5 MB/s at most
        d = s.recv(16384)
        assert d
        got += d
        time.sleep(0.01)
        if time.time() - last_sample > 0.25:
            last_sample = time.time()
            peak_node = max(peak_node, rss_kb(n.p.pid) - base_node)
            peak_client = max(peak_client, rss_kb(c.p.pid) - base_client)
    print("read %d bytes; RSS growth: node %d KiB, client %d KiB" % (len(got), peak_node, peak_client))
    assert 1024 * 1024 < len(got) < size // 4, len(got)  # it flowed, slowly
    assert got == pattern(len(got))
    # the node holds a window, not the response
    assert peak_node < 64 * 1024, "node RSS grew by %d KiB (client: %d KiB)" % (peak_node, peak_client)
    assert peak_client < 64 * 1024, "client RSS grew by %d KiB" % peak_client
    s.close()
    # the node and the tunnel still serve
    head, body = read_until_close(n.port, b"GET /w1/bytes/1000 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert head.startswith("HTTP/1.1 200 ") and body.endswith(pattern(1000))


def test_sigterm_with_viewers_and_workers_connected(procs, backend):
    """Shutdown frees every connection: no leak report with viewers mid-head,
    idle and mid-response, and a worker attached."""
    import socket as _socket
    from conftest import Client, Node
    n = Node()
    procs.append(n)
    c = Client(n.url, "bye", backend.port)
    procs.append(c)
    socks = []
    for payload in (b"", b"GET /bye/echo HTTP/1.1\r\nHost: x\r\n", b"GET /bye/slow?lines=50 HTTP/1.1\r\nHost: x\r\n\r\n"):
        s = _socket.create_connection(("127.0.0.1", n.port), timeout=5)
        if payload:
            s.sendall(payload)
        socks.append(s)
    assert socks[2].recv(100).startswith(b"HTTP/1.1 200")
    assert n.stop() == 0
    out = n.output()
    assert "LeakSanitizer" not in out and "AddressSanitizer" not in out, out[-2000:]
    for s in socks:
        s.close()
