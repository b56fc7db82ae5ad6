"""The viewer's real address (issue 10): a real HAProxy (Debian's) in front of
real nodes with WHT_PROXY_PROTOCOL, sending PROXY protocol v1 (send-proxy) and
v2 (send-proxy-v2); viewers that connect from another loopback address
(127.0.0.5, while HAProxy connects from 127.0.0.1), so that the address the
worker's backend and the access log see can only have come from the header.
Also: headers refused from addresses not listed, listed addresses without a
header closed, LOCAL/UNKNOWN health checks, TLS behind a header, the
WHT_TRUSTED_PROXIES keep/replace rule for X-Forwarded-For, and a request
relayed between two nodes carrying the address along."""

import http.client
import json
import os
import re
import shutil
import socket
import ssl
import struct
import tempfile
import time

import pytest

from conftest import Backend, Client, Node, Proc, check_ws_echo, free_port, port_open, recv_to_close, wait_for
from test_cluster import CLUSTER_SECRET, Redis, status
from test_metrics import metrics
from test_tls import make_ca, make_cert

HAPROXY = shutil.which("haproxy") or ("/usr/sbin/haproxy" if os.path.exists("/usr/sbin/haproxy") else None)
pytestmark = pytest.mark.skipif(not HAPROXY, reason="haproxy not installed (deploy/install-deps.sh --test)")

VIEWER = "127.0.0.5"  # the viewer's source address; HAProxy's is 127.0.0.1
OTHER = "127.0.0.6"
SIG = b"\r\n\r\n\x00\r\nQUIT\n"
PP = 'whtunnel_proxy_headers_total{outcome="%s"}'


class HAProxy(Proc):
    """One frontend per node port (self.ports[i] -> node_ports[i]), each server
    with `send` (send-proxy or send-proxy-v2). mode http: health checks on
    /__lbheartbeat__ with the PROXY header (check-send-proxy); mode tcp: bytes
    passed as they are (TLS through), no checks."""

    def __init__(self, node_ports, send="send-proxy-v2", mode="http"):
        self.ports = [free_port() for _ in node_ports]
        self.dir = tempfile.mkdtemp(prefix="wht-haproxy-pp-")
        cfg = os.path.join(self.dir, "haproxy.cfg")
        parts = ["""global
    log stdout format raw local0 notice
defaults
    mode %s
    log global
    timeout connect 2s
    timeout client 1m
    timeout server 1m
    timeout tunnel 1h
""" % mode]
        for i, (lb, node) in enumerate(zip(self.ports, node_ports)):
            check = ""
            if mode == "http":
                parts.append("""backend b%d
    option httpchk GET /__lbheartbeat__
    http-check expect status 200
""" % i)
                check = " check inter 200ms fall 1 rise 1 check-send-proxy"
            else:
                parts.append("backend b%d\n" % i)
            parts.append("    server n%d 127.0.0.1:%d %s%s\nfrontend f%d\n    bind 127.0.0.1:%d\n    default_backend b%d\n"
                         % (i, node, send, check, i, lb, i))
        with open(cfg, "w") as f:
            f.write("".join(parts))
        super().__init__([HAPROXY, "-f", cfg, "-db"], name="haproxy")
        for p in self.ports:
            wait_for(lambda: port_open(p), 10, "haproxy to listen on %d" % p)


def pp_node(procs, env=None):
    """A node that takes PROXY headers from 127.0.0.1 only, with its admin listener."""
    aport = free_port()
    e = {"WHT_PROXY_PROTOCOL": "127.0.0.1/32", "WHT_ADMIN_ADDR": "127.0.0.1:%d" % aport}
    e.update(env or {})
    n = Node(env=e)
    procs.append(n)
    wait_for(lambda: port_open(aport), 10, "admin listener")
    n.admin = aport
    return n


def echo_from(src, port, path, headers=None, ctx=None):
    """GET path (a backend /echo) from source address src: (status, request headers the backend saw)."""
    if ctx:
        c = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, source_address=(src, 0), context=ctx)
    else:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(src, 0))
    try:
        c.request("GET", path, headers=headers or {})
        r = c.getresponse()
        data = r.read()
    finally:
        c.close()
    if r.status != 200:
        return r.status, {}
    return r.status, {k.lower(): v for k, v in json.loads(data)["headers"]}


def exchange(src, port, data, timeout=10):
    """Connects from src, sends data, returns every byte until the node closes (b"" for a reset)."""
    s = socket.socket()
    s.settimeout(timeout)
    s.bind((src, 0))
    s.connect(("127.0.0.1", port))
    buf = b""
    try:
        s.sendall(data)
        while True:
            d = s.recv(65536)
            if not d:
                break
            buf += d
    except ConnectionResetError:
        pass
    finally:
        s.close()
    return buf


def v2_header(src, dst, sport, dport, command=0x21):
    fam = 0x21 if ":" in src else 0x11
    af = socket.AF_INET6 if ":" in src else socket.AF_INET
    block = socket.inet_pton(af, src) + socket.inet_pton(af, dst) + struct.pack(">HH", sport, dport)
    return SIG + bytes([command, fam]) + struct.pack(">H", len(block)) + block


def access_line(node, path, client, via=None):
    """The node's access log line for path with client (polled: access lines are flushed every 100 ms)."""
    pat = re.compile(r"access conn=\d+ worker=\S* method=GET path=%s .*via=%s .*client=%s$"
                     % (re.escape(path), via or r"\S+", re.escape(client)), re.M)
    return wait_for(lambda: pat.search(node.output()), 10, "access line for %s from %s in %s" % (path, client,
                                                                                                node.log.name))


# ---- through HAProxy ------------------------------------------------------------------


@pytest.mark.parametrize("send", ["send-proxy", "send-proxy-v2"])
def test_viewer_address_through_haproxy(procs, backend, send):
    n = pp_node(procs)
    lb = HAProxy([n.port], send=send)
    procs.append(lb)
    lb_port = lb.ports[0]
    # the worker registers through HAProxy too (the node is listed for 127.0.0.1: it must come with a header)
    c = Client("http://127.0.0.1:%d" % lb_port, "w1", backend.port)
    procs.append(c)
    st, hdrs = echo_from(VIEWER, lb_port, "/w1/echo/pp", {"X-Forwarded-For": "6.6.6.6"})
    assert st == 200
    # the header's source, and the viewer's own X-Forwarded-For replaced (not a trusted proxy)
    assert hdrs["x-forwarded-for"] == VIEWER, hdrs
    access_line(n, "/w1/echo/pp", VIEWER, "local")
    # HAProxy's health checks come with a header too (v1: its own address; v2: LOCAL), answered 200
    access_line(n, "/__lbheartbeat__", "127.0.0.1", "endpoint")
    if send == "send-proxy-v2":
        wait_for(lambda: metrics(n.admin)[PP % "local"] >= 2, 10, "HAProxy health checks with a LOCAL header")
    # a WebSocket through it all
    check_ws_echo(lb_port, "/w1/ws")
    m = metrics(n.admin)
    assert m[PP % "proxy"] >= 3, m  # the registration, the GET, the WebSocket
    for bad in ("missing", "invalid", "timeout", "unexpected"):
        assert m[PP % bad] == 0, (bad, m)
    assert "(in WHT_PROXY_PROTOCOL) closed" not in n.output()


def test_tls_viewer_port_behind_proxy_header(procs, backend, tmp_path):
    """The header comes in clear before the TLS handshake: HAProxy in TCP mode
    passes TLS through with send-proxy-v2, and a raw socket writes a v2 header
    and then starts TLS on the same connection."""
    d = str(tmp_path)
    ca = make_ca(d)
    key, cert = make_cert(d, "server", "IP:127.0.0.1,DNS:localhost")
    ctx = ssl.create_default_context(cafile=ca)
    n = pp_node(procs, {"TLS_KEY": key, "TLS_CERTIFICATE": cert})
    lb = HAProxy([n.port], send="send-proxy-v2", mode="tcp")
    procs.append(lb)
    c = Client("wss://127.0.0.1:%d" % lb.ports[0], "w1", backend.port, args=("--ca", ca))
    procs.append(c)
    st, hdrs = echo_from(VIEWER, lb.ports[0], "/w1/echo/tls", ctx=ctx)
    assert st == 200 and hdrs["x-forwarded-for"] == VIEWER and hdrs["x-forwarded-proto"] == "https", hdrs
    access_line(n, "/w1/echo/tls", VIEWER)
    # by hand: the header, then the ClientHello on the same socket
    s = socket.create_connection(("127.0.0.1", n.port), timeout=10)
    s.sendall(v2_header("203.0.113.7", "127.0.0.1", 40000, n.port))
    t = ctx.wrap_socket(s, server_hostname="127.0.0.1")
    t.sendall(b"GET /w1/echo/raw HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n")
    buf = recv_to_close(t)
    t.close()
    head, _, body = buf.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), buf[:300]
    seen = {k.lower(): v for k, v in json.loads(body)["headers"]}
    assert seen["x-forwarded-for"] == "203.0.113.7" and seen["x-forwarded-proto"] == "https", seen
    access_line(n, "/w1/echo/raw", "203.0.113.7")
    m = metrics(n.admin)
    assert m[PP % "proxy"] >= 3 and m["whtunnel_tls_handshakes_total"] >= 3, m


# ---- the rules, by hand -------------------------------------------------------------------


HEARTBEAT = b"GET /__heartbeat__ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"


def test_listed_and_unlisted_sources(procs):
    n = pp_node(procs, {"WHT_HEADER_TIMEOUT": "1s"})
    m0 = metrics(n.admin)
    # not listed: served as always ...
    assert exchange(VIEWER, n.port, HEARTBEAT).startswith(b"HTTP/1.1 200")
    # ... and a PROXY header from it is refused, saying why (v1 and v2)
    for hdr in (b"PROXY TCP4 1.2.3.4 127.0.0.1 1000 80\r\n", v2_header("1.2.3.4", "127.0.0.1", 1000, 80)):
        out = exchange(VIEWER, n.port, hdr + HEARTBEAT)
        assert out.startswith(b"HTTP/1.1 400 Bad Request\r\n"), out
        assert b"PROXY protocol header refused: this address may not send one" in out, out
    assert "client=%s sent a PROXY protocol header but is not in WHT_PROXY_PROTOCOL" % VIEWER in n.output()
    # listed, with v1 and v2 headers: the header's address; LOCAL and UNKNOWN: the connection's own
    cases = [(b"PROXY TCP4 198.51.100.9 127.0.0.1 1000 80\r\n", "198.51.100.9"),
             (b"PROXY TCP6 2001:db8::42 ::1 1000 80\r\n", "2001:db8::42"),
             (v2_header("198.51.100.10", "127.0.0.1", 1000, 80), "198.51.100.10"),
             (v2_header("2001:db8::43", "::1", 1000, 80), "2001:db8::43"),
             (b"PROXY UNKNOWN\r\n", "127.0.0.1"),
             (SIG + b"\x20\x00\x00\x00", "127.0.0.1")]
    for i, (hdr, client) in enumerate(cases):
        path = "/__heartbeat__"
        out = exchange("127.0.0.1", n.port, hdr + HEARTBEAT)
        assert out.startswith(b"HTTP/1.1 200"), (hdr, out)
        access_line(n, path, client)
    # listed, without a header, or with a bad one: closed without an answer
    for data in (HEARTBEAT, b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n" + HEARTBEAT, SIG + b"\x31\x11\x00\x00",
                 b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03"):
        assert exchange("127.0.0.1", n.port, data) == b"", data
    # listed, and the header never completes: closed after WHT_HEADER_TIMEOUT
    t0 = time.time()
    assert exchange("127.0.0.1", n.port, b"PROXY TCP4 1.2.3", timeout=10) == b""
    assert 0.8 < time.time() - t0 < 5
    out = n.output()
    assert "client=127.0.0.1 (in WHT_PROXY_PROTOCOL) closed: no PROXY protocol header" in out
    assert "client=127.0.0.1 (in WHT_PROXY_PROTOCOL) closed: no complete PROXY protocol header within" in out
    m = metrics(n.admin)
    got = {k: m[PP % k] - m0[PP % k] for k in ("proxy", "local", "missing", "invalid", "timeout", "unexpected")}
    assert got == {"proxy": 4, "local": 2, "missing": 2, "invalid": 2, "timeout": 1, "unexpected": 2}, got


def test_trusted_proxies_keep_or_replace(procs, backend):
    """X-Forwarded-For from a WHT_TRUSTED_PROXIES address is kept (its address
    appended); from any other it is replaced, whether the address is the
    socket's or a PROXY header's."""
    n = pp_node(procs, {"WHT_TRUSTED_PROXIES": "%s/32, 2001:db8::/32" % VIEWER})
    lb = HAProxy([n.port], send="send-proxy-v2")
    procs.append(lb)
    c = Client("http://127.0.0.1:%d" % lb.ports[0], "w1", backend.port)
    procs.append(c)
    xff = {"X-Forwarded-For": "10.1.1.1, 10.2.2.2"}
    # through HAProxy (the address from the header)
    assert echo_from(VIEWER, lb.ports[0], "/w1/echo/a", xff)[1]["x-forwarded-for"] == "10.1.1.1, 10.2.2.2, " + VIEWER
    assert echo_from(OTHER, lb.ports[0], "/w1/echo/b", xff)[1]["x-forwarded-for"] == OTHER
    assert echo_from(VIEWER, lb.ports[0], "/w1/echo/c")[1]["x-forwarded-for"] == VIEWER
    # straight to the node (the socket's address)
    assert echo_from(VIEWER, n.port, "/w1/echo/d", xff)[1]["x-forwarded-for"] == "10.1.1.1, 10.2.2.2, " + VIEWER
    assert echo_from(OTHER, n.port, "/w1/echo/e", xff)[1]["x-forwarded-for"] == OTHER
    # an IPv6 address from a header, trusted by its network
    out = exchange("127.0.0.1", n.port, b"PROXY TCP6 2001:db8::7 ::1 1000 80\r\n"
                   b"GET /w1/echo/f HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Forwarded-For: 10.1.1.1\r\n\r\n")
    seen = {k.lower(): v for k, v in json.loads(out.partition(b"\r\n\r\n")[2])["headers"]}
    assert seen["x-forwarded-for"] == "10.1.1.1, 2001:db8::7", seen


# ---- a relayed request ---------------------------------------------------------------------


class Via:
    """A node as seen through HAProxy's frontend for it (for test_cluster.status)."""

    def __init__(self, port):
        self.port = port


def test_relayed_request_carries_the_address(procs):
    rds = Redis()
    procs.append(rds)
    nodes = []
    for name in ("pa", "pb"):
        nodes.append(pp_node(procs, {"REDIS_URL": rds.url, "WHT_NODE_ID": name, "WHT_PEER_ADDR": "127.0.0.1:0",
                                     "WHT_CLUSTER_SECRET": CLUSTER_SECRET, "WHT_REDIS_PREFIX": "pp:",
                                     "WHT_TRUSTED_PROXIES": VIEWER + "/32"}))
    lb = HAProxy([n.port for n in nodes], send="send-proxy-v2")
    procs.append(lb)
    via_a, via_b = Via(lb.ports[0]), Via(lb.ports[1])
    for v in (via_a, via_b):
        wait_for(lambda: status(v)["peers_up"] == 1, 15, "peers through HAProxy on %d" % v.port)
    b = Backend()
    procs.append(b)
    c = Client("http://127.0.0.1:%d" % via_a.port, "w1", b.port)  # w1 on node pa
    procs.append(c)
    wait_for(lambda: echo_from(OTHER, via_b.port, "/w1/echo/warm")[0] == 200, 10, "w1 routed from pb")
    # from a viewer not trusted: its X-Forwarded-For replaced by its address, on the node that holds w1
    st, hdrs = echo_from(OTHER, via_b.port, "/w1/echo/r1", {"X-Forwarded-For": "6.6.6.6"})
    assert st == 200 and hdrs["x-forwarded-for"] == OTHER, hdrs
    # from a trusted one: kept, its address appended once
    st, hdrs = echo_from(VIEWER, via_b.port, "/w1/echo/r2", {"X-Forwarded-For": "10.1.1.1"})
    assert st == 200 and hdrs["x-forwarded-for"] == "10.1.1.1, " + VIEWER, hdrs
    # both nodes log the viewer's address
    access_line(nodes[1], "/w1/echo/r2", VIEWER, "relayed_out")
    access_line(nodes[0], "/w1/echo/r2", VIEWER, "relayed_in")
    access_line(nodes[0], "/w1/echo/r1", OTHER, "relayed_in")
