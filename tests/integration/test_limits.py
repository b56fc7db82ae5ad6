"""The node's limits: connections, header and idle timeouts, memory under a slow viewer."""

import asyncio
import os
import select
import socket
import subprocess
import tempfile
import time

import pytest
import websockets

from conftest import Client, Node, binary, free_port, port_open, read_all, read_until_close, rss_kb, wait_for

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


def test_workers_and_viewers_have_their_own_pools(procs):
    """Worker sessions do not take viewer slots (and the reverse): with 5 viewer connections and
    2 workers allowed, both fill up at once; a third worker is told to register elsewhere (503),
    a worker re-registering its own id is not; the admin probes answer throughout."""
    from test_metrics import admin_get, metrics
    from test_registration import register
    aport = free_port()
    n = Node(env={"WHT_MAX_CONNECTIONS": "5", "WHT_MAX_WORKERS": "2", "WHT_ADMIN_ADDR": "127.0.0.1:%d" % aport})
    procs.append(n)
    wait_for(lambda: port_open(aport), 10, "admin listener")
    workers = []
    for wid in ("p1", "p2"):
        st, _, s = register(n.port, wid)
        assert st == 101
        workers.append(s)
    held = []
    for _ in range(5):  # the old shared pool had room for 3 more
        s = socket.create_connection(("127.0.0.1", n.port), timeout=5)
        assert heartbeat(s)
        held.append(s)
    assert admin_get(aport, "/healthz")[0] == 200 and admin_get(aport, "/readyz")[0] == 200
    extra = socket.create_connection(("127.0.0.1", n.port), timeout=5)
    assert closed_by_peer(extra, 3)[0]
    held.pop().close()
    wait_for(lambda: metrics(aport)["whtunnel_viewer_connections_open"] == 4, 5, "a free viewer slot")
    st, h, s3 = register(n.port, "p3")
    assert st == 503 and h.get("retry-after") == "5", (st, h)
    s3.close()
    st, _, again = register(n.port, "p1")  # replaces its own session: no new slot needed
    assert st == 101
    m = metrics(aport)
    assert m['whtunnel_registrations_total{outcome="full"}'] == 1
    assert m["whtunnel_viewer_connections_refused_total"] >= 1
    assert m["whtunnel_viewer_connections_max"] == 5 and m["whtunnel_workers_max"] == 2
    for s in held + workers + [again]:
        s.close()


def test_limits_fit_the_open_files_limit(procs):
    """The soft open-files limit is raised to the hard one, and limits it cannot hold are lowered
    with a warning that says how to raise it."""
    import resource
    from test_metrics import metrics
    aport = free_port()

    def low_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (400, 800))
    port = free_port()
    env = dict(os.environ, PORT=str(port), WHT_LISTEN_ADDR="127.0.0.1", TASKCLUSTER_PROXY_SECRET_A="s",
               WHT_ADMIN_ADDR="127.0.0.1:%d" % aport)
    log = tempfile.NamedTemporaryFile(prefix="wht-node-", suffix=".log", delete=False)
    p = subprocess.Popen([binary("whtunnel")], env=env, stdout=log, stderr=log, preexec_fn=low_limit)
    try:
        wait_for(lambda: port_open(aport), 10, "admin listener")
        out = open(log.name).read()
        assert "open files limit 800 (raised to the hard limit)" in out, out
        assert "cannot hold WHT_MAX_CONNECTIONS=10000 and WHT_MAX_WORKERS=10000: lowered to 272 and 272" in out
        assert "LimitNOFILE" in out
        m = metrics(aport)
        assert m["whtunnel_viewer_connections_max"] == 272 and m["whtunnel_workers_max"] == 272
        assert m["process_max_fds"] == 800
    finally:
        p.terminate()
        p.wait(10)


def test_out_of_descriptors_pauses_accepting_and_says_so_once(procs):
    """With descriptors exhausted anyway (here by admin connections under a tiny limit), the
    viewer listener pauses instead of spinning, the log says so once, the node keeps serving, and
    accepts again once descriptors are free."""
    import resource
    from test_metrics import metrics
    aport, port = free_port(), free_port()

    def admin_get(_port, path, sock):
        sock.settimeout(5)
        sock.sendall(("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path).encode())
        data = sock.recv(4096)
        return int(data.split(b" ")[1]), None, data
    env = dict(os.environ, PORT=str(port), WHT_LISTEN_ADDR="127.0.0.1", TASKCLUSTER_PROXY_SECRET_A="s",
               WHT_ADMIN_ADDR="127.0.0.1:%d" % aport)
    log = tempfile.NamedTemporaryFile(prefix="wht-node-", suffix=".log", delete=False)
    p = subprocess.Popen([binary("whtunnel")], env=env, stdout=log, stderr=log,
                         preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (40, 40)))
    hogs, knockers = [], []
    try:
        wait_for(lambda: port_open(aport), 10, "admin listener")
        for _ in range(40):  # admin connections take the node's last descriptors
            hogs.append(socket.create_connection(("127.0.0.1", aport), timeout=5))
        time.sleep(0.5)
        for _ in range(5):  # the kernel accepts them; the node cannot
            knockers.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        time.sleep(1.5)
        out = open(log.name).read()
        assert out.count("not accepting for 250 ms") == 1, out
        assert p.poll() is None
        st, _, body = admin_get(aport, "/healthz", sock=hogs[0])  # what it has, it keeps serving
        assert st == 200
        for s in hogs:
            s.close()
        knockers[0].settimeout(5)
        knockers[0].sendall(b"GET /__lbheartbeat__ HTTP/1.1\r\nHost: x\r\n\r\n")
        assert knockers[0].recv(100).startswith(b"HTTP/1.1 200 ")  # accepted once descriptors were free
        assert metrics(aport)["whtunnel_accept_pauses_total"] >= 2
    finally:
        for s in hogs + knockers:
            s.close()
        p.terminate()
        p.wait(10)


def test_node_wide_buffer_cap(procs, backend):
    """WHT_MAX_BUFFERED: viewers that do not read leave bytes unconsumed on the node; past the cap a
    new request gets 503 with Retry-After instead of the node growing, and once they read, requests
    are served again and the gauge comes back to zero."""
    from test_metrics import metrics
    aport = free_port()
    n = Node(env={"WHT_MAX_BUFFERED": "1m", "WHT_STREAM_WINDOW": "1m", "WHT_ADMIN_ADDR": "127.0.0.1:%d" % aport})
    procs.append(n)
    wait_for(lambda: port_open(aport), 10, "admin listener")
    c = Client(n.url, "big", backend.port)
    procs.append(c)
    stalled = []
    # 8 x 16 MiB downloads whose viewers read nothing. Windows of 1 MiB: of a 256 KiB window, a
    # stalled viewer left only 100-250 KiB unconsumed on the node (the rest sat in the kernel's send
    # buffer, the more the sooner the node writes), and 8 of them 0.9-1.0 MiB, at the cap
    for _ in range(8):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", n.port))
        s.sendall(b"GET /big/bytes/16777216 HTTP/1.1\r\nHost: x\r\n\r\n")
        stalled.append(s)
    # The node stops reading the worker over the cap and starts again under 7/8 of it, and the
    # kernel's send buffers of the stalled viewers take a little more now and then: a request that
    # comes just after reading started again is let in, and its answer waits behind the stalled
    # streams' bytes. So: up to 5 tries, each just after the gauge showed more than the cap.
    answer = b""
    for _ in range(5):
        wait_for(lambda: metrics(aport)["whtunnel_buffered_bytes"] > 1 << 20, 15, "the node to hold over 1 MiB")
        try:
            answer = read_all(n.port, b"GET /big/status/204 HTTP/1.1\r\nHost: x\r\n\r\n", timeout=3)
        except socket.timeout:
            continue
        break
    assert answer.startswith(b"HTTP/1.1 503 ") and b"Retry-After: 1\r\n" in answer, answer[:200]
    assert b"short of buffer memory" in answer
    m = metrics(aport)
    assert m["whtunnel_buffer_refusals_total"] == 1
    # held in bounds: the cap plus a window per session that keeps being read (one here) and a read
    assert m["whtunnel_buffered_bytes"] <= (1 << 20) + (1 << 20) + (64 << 10), m["whtunnel_buffered_bytes"]
    for s in stalled:
        s.close()
    wait_for(lambda: metrics(aport)["whtunnel_buffered_bytes"] == 0, 15, "the buffers to empty")
    assert read_all(n.port, b"GET /big/status/204 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n") \
        .startswith(b"HTTP/1.1 204 ")


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
