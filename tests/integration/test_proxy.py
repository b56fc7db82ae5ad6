"""Viewer requests through a real node and our client to a real backend."""

import hashlib
import http.client
import json
import os
import socket
import time

import pytest

from conftest import Client, Node, check_concurrent_downloads, check_streamed_lines, check_ws_echo, read_until_close

from backend import pattern


@pytest.fixture
def tunnel(procs, backend):
    n = Node()
    procs.append(n)
    c = Client(n.url, "w1", backend.port)
    procs.append(c)
    return n, c, backend


def conn(node):
    return http.client.HTTPConnection("127.0.0.1", node.port, timeout=30)


def fetch(node, method, path, body=None, headers=None):
    c = conn(node)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r, data


def test_client_prints_url(tunnel):
    n, c, _ = tunnel
    assert c.url == "%s/w1" % n.url


def test_path_routing_and_rewrite(tunnel):
    n, _, _ = tunnel
    for path, want_target in [("/w1/echo/a/b?x=1&y=2", "/echo/a/b?x=1&y=2"), ("/w1", "/"), ("/w1?q=1", "/?q=1"),
                              ("/w1/", "/")]:
        r, data = fetch(n, "GET", path)
        if want_target.startswith("/echo"):
            assert r.status == 200
            info = json.loads(data)
            assert info["target"] == want_target
            hdrs = {k.lower(): v for k, v in info["headers"]}
            assert hdrs["x-websocktunnel-original-path"] == path
            assert hdrs["x-webhooktunnel-original-path"] == path
            assert hdrs["x-forwarded-for"] == "127.0.0.1"
            assert hdrs["x-forwarded-proto"] == "http"
            assert hdrs["host"] == "127.0.0.1:%d" % n.port
        else:
            assert r.status == 404  # the backend has no "/" endpoint: its own 404 came back
            assert data == b"no such endpoint\n"


def test_unknown_id_404(tunnel):
    n, _, _ = tunnel
    r, data = fetch(n, "GET", "/nobody/x")
    assert r.status == 404
    assert b"No client is connected with that id" in data


def test_domain_routing(procs, backend):
    n = Node(env={"WHT_DOMAIN": "tun.test"})
    procs.append(n)
    procs.append(Client(n.url, "dw", backend.port))
    r, data = fetch(n, "GET", "/echo/z?k=v", headers={"Host": "dw.tun.test:%d" % n.port})
    assert r.status == 200
    info = json.loads(data)
    assert info["target"] == "/echo/z?k=v"
    hdrs = {k.lower() for k, v in info["headers"]}
    assert "x-websocktunnel-original-path" not in hdrs
    # path mode works at the same time
    r, data = fetch(n, "GET", "/dw/echo/p")
    assert r.status == 200 and json.loads(data)["target"] == "/echo/p"


def test_heartbeats(tunnel):
    n, _, _ = tunnel
    for p in ("/__lbheartbeat__", "/__heartbeat__", "/__version__"):
        r, data = fetch(n, "GET", p)
        assert r.status == 200, p
        json.loads(data)


@pytest.mark.parametrize("size", [0, 1, 4095, 4096, 65537, 5 * 1024 * 1024])
def test_download_bytes(tunnel, size):
    n, _, _ = tunnel
    r, data = fetch(n, "GET", "/w1/bytes/%d" % size)
    assert r.status == 200
    assert len(data) == size
    assert hashlib.sha256(data).hexdigest() == r.getheader("X-Sha256")


@pytest.mark.parametrize("method", ["POST", "PUT"])
def test_upload_mirror_large(tunnel, method):
    n, _, _ = tunnel
    body = os.urandom(3 * 1024 * 1024 + 17)
    r, data = fetch(n, method, "/w1/mirror", body=body)
    assert r.status == 200
    assert hashlib.sha256(data).hexdigest() == hashlib.sha256(body).hexdigest()


def test_upload_to_a_late_reader(tunnel):
    # the local server reads nothing for a second: whclient's sends of the body fall short, the
    # rest waits in its queue (in order, after what it gathered from the node's reads), then the
    # window stops the node; every byte arrives
    n, _, _ = tunnel
    body = os.urandom(8 * 1024 * 1024 + 5)
    r, data = fetch(n, "PUT", "/w1/mirror-late", body=body)
    assert r.status == 200
    assert hashlib.sha256(data).hexdigest() == hashlib.sha256(body).hexdigest()


def test_chunked_both_ways(tunnel):
    n, _, _ = tunnel
    body = os.urandom(1024 * 1024)

    def gen():
        for i in range(0, len(body), 10000):
            yield body[i:i + 10000]
    c = conn(n)
    c.request("POST", "/w1/mirror", body=gen(), encode_chunked=True, headers={"Transfer-Encoding": "chunked"})
    r = c.getresponse()
    assert hashlib.sha256(r.read()).hexdigest() == hashlib.sha256(body).hexdigest()
    c.request("GET", "/w1/chunked/300000")
    r = c.getresponse()
    assert r.getheader("Transfer-Encoding") == "chunked"
    data = r.read()
    assert hashlib.sha256(data).hexdigest() == r.getheader("X-Sha256")
    c.close()


def test_streaming_lines_arrive_before_next_written(tunnel):
    n, _, _ = tunnel
    check_streamed_lines(n.port, "/w1/slow")


def test_keep_alive_reuses_connection(tunnel):
    """A keep-alive viewer keeps its stream, so the backend sees one connection
    for all its requests; another viewer gets another backend connection."""
    n, _, _ = tunnel
    c = conn(n)
    peers = set()
    for i in range(20):
        c.request("GET", "/w1/echo/%d" % i)
        r = c.getresponse()
        assert r.status == 200
        info = json.loads(r.read())
        assert info["target"] == "/echo/%d" % i
        peers.add(tuple(info["peer"]))
    assert len(peers) == 1, peers
    c2 = conn(n)
    c2.request("GET", "/w1/echo/other")
    r = c2.getresponse()
    assert tuple(json.loads(r.read())["peer"]) not in peers
    c2.close()
    c.close()


def test_head_and_no_body_statuses(tunnel):
    n, _, _ = tunnel
    c = conn(n)
    c.request("HEAD", "/w1/bytes/1000")
    r = c.getresponse()
    assert r.status == 200 and r.read() == b""
    assert r.getheader("Content-Length") == "1000"
    for code in (204, 304, 404, 500):
        c.request("GET", "/w1/status/%d" % code)
        r = c.getresponse()
        assert r.status == code
        assert r.read() == b""
    c.close()


def test_response_until_close(tunnel):
    n, _, _ = tunnel
    r, data = fetch(n, "GET", "/w1/close/100000")
    assert data == pattern(100000)


def test_websocket_echo(tunnel):
    n, _, _ = tunnel
    check_ws_echo(n.port, "/w1/ws")


def test_100_concurrent_viewers(tunnel):
    n, _, _ = tunnel
    check_concurrent_downloads(100, lambda i: n.port, lambda i, j: "/w1/bytes/%d" % (1000 + i * 37 + j))


def test_reregistration_replaces_session(procs, backend):
    n = Node()
    procs.append(n)
    c1 = Client(n.url, "rr", backend.port)
    procs.append(c1)
    assert fetch(n, "GET", "/rr/echo")[0].status == 200
    c2 = Client(n.url, "rr", backend.port)
    procs.append(c2)
    assert fetch(n, "GET", "/rr/echo")[0].status == 200


def test_worker_disconnects_mid_response(tunnel):
    n, c, _ = tunnel
    s = socket.create_connection(("127.0.0.1", n.port), timeout=10)
    s.sendall(b"GET /w1/slow?lines=100 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert b"200" in s.recv(4096)
    c.stop(sig=9)
    # the viewer sees the connection end, promptly
    s.settimeout(10)
    while True:
        d = s.recv(4096)
        if not d:
            break
    r, data = fetch(n, "GET", "/w1/echo")
    assert r.status == 404


def test_worker_gone_before_answer_502(tunnel):
    n, _, _ = tunnel
    r, _ = fetch(n, "GET", "/w1/die")
    assert r.status == 502


MALFORMED = {
    "cl and te": b"POST /w1/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
    "two content lengths": b"POST /w1/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
    "bad chunk size": b"POST /w1/mirror HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
    "obs fold": b"GET /w1/echo HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n  folded\r\n\r\n",
    "bare lf": b"GET /w1/echo HTTP/1.1\nHost: x\n\n",
    "no host": b"GET /w1/echo HTTP/1.1\r\n\r\n",
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_requests_400(tunnel, case):
    n, _, _ = tunnel
    s = socket.create_connection(("127.0.0.1", n.port), timeout=10)
    s.sendall(MALFORMED[case])
    data = s.recv(4096)
    assert data.startswith(b"HTTP/1.1 400 "), (case, data)


def test_huge_header_431(tunnel):
    n, _, _ = tunnel
    s = socket.create_connection(("127.0.0.1", n.port), timeout=10)
    s.sendall(b"GET /w1/echo HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n")
    assert s.recv(4096).startswith(b"HTTP/1.1 431 ")


def test_slow_header_timed_out(procs, backend):
    n = Node(env={"WHT_HEADER_TIMEOUT": "1s"})
    procs.append(n)
    s = socket.create_connection(("127.0.0.1", n.port), timeout=10)
    s.sendall(b"GET /w1/echo HTTP/1.1\r\nHost: x\r\n")
    start = time.time()
    data = s.recv(4096)
    assert time.time() - start < 5
    assert data == b"" or data.startswith(b"HTTP/1.1 408 ")


def test_chunked_response_to_http10_viewer_is_dechunked(tunnel):
    """An HTTP/1.0 viewer cannot read chunked coding: it gets the payload,
    delimited by the connection's close."""
    n, _, _ = tunnel
    head, body = read_until_close(n.port, b"GET /w1/chunked/300000 HTTP/1.0\r\n\r\n")
    assert head.startswith("HTTP/1.1 200 "), head
    assert "transfer-encoding" not in head.lower(), head
    assert "connection: close" in head.lower(), head
    assert body == pattern(300000)
    # an HTTP/1.1 viewer still gets it chunked
    c = conn(n)
    c.request("GET", "/w1/chunked/1000")
    r = c.getresponse()
    assert r.getheader("Transfer-Encoding") == "chunked" and r.read() == pattern(1000)
    c.close()
