"""The admin listener against real traffic: counters and gauges move by exactly
what the test did (requests by path and class, bytes, registrations by
outcome, sessions, relays), the JSON pages say what is there, the token
guards the pages, and the access log has a line per request."""
import http.client
import json
import re
import socket

import pytest

from conftest import Backend, Client, Node, free_port, make_token, port_open, read_all, wait_for
from test_cluster import CLUSTER_SECRET, Redis, cluster_node, wait_peers  # noqa: F401 (fixtures)


def admin_get(port, path, token=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", path, headers={"Authorization": "Bearer " + token} if token else {})
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, r.getheader("Content-Type"), body


def metrics(port):
    st, ctype, body = admin_get(port, "/metrics")
    assert st == 200 and ctype.startswith("text/plain; version=0.0.4"), (st, ctype)
    out = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def diff(after, before):
    return {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}


raw = read_all  # every byte of the answer, until the node closes


REQ = "whtunnel_requests_total{path=\"%s\",code=\"%s\"}"


def admin_node(procs, env=None):
    aport = free_port()
    e = {"WHT_ADMIN_ADDR": "127.0.0.1:%d" % aport}
    e.update(env or {})
    n = Node(env=e)
    procs.append(n)
    wait_for(lambda: port_open(aport), 10, "admin listener")
    n.admin = aport
    return n


def test_standalone_counters_move_exactly(procs):
    n = admin_node(procs)
    b = Backend()
    procs.append(b)
    c = Client(n.url, "w1", b.port)
    procs.append(c)
    m0 = metrics(n.admin)
    assert m0["whtunnel_workers"] == 1 and m0["whtunnel_registrations_total{outcome=\"ok\"}"] == 1
    ok = b"GET /w1/bytes/1000 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    miss = b"GET /nobody/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    hb = b"GET /__heartbeat__ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    sent, received = 0, 0
    for req, times in ((ok, 5), (miss, 2), (hb, 3)):
        for _ in range(times):
            got = raw(n.port, req)
            sent += len(req)
            received += len(got)
    bad = b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n"
    got = raw(n.port, bad)
    sent += len(bad)
    received += len(got)
    assert got.startswith(b"HTTP/1.1 400 ")
    m1 = metrics(n.admin)
    d = diff(m1, m0)
    assert d.get(REQ % ("local", "2xx")) == 5
    assert d.get(REQ % ("local", "4xx")) == 3  # two 404s and the malformed head
    assert d.get(REQ % ("endpoint", "2xx")) == 3
    assert d.get("whtunnel_response_head_seconds_count") == 11
    assert d.get("whtunnel_viewer_received_bytes_total") == sent
    assert d.get("whtunnel_viewer_sent_bytes_total") == received
    # every other request series stayed
    assert not [k for k in d if k.startswith("whtunnel_requests_total") and "local" not in k and "endpoint" not in k]
    # the worker's own figures and its ring
    st, _, body = admin_get(n.admin, "/status")
    s = json.loads(body)
    assert s["mode"] == "standalone" and s["workers_total"] == 1
    w = s["workers"][0]
    assert (w["id"], w["client"], w["requests"]) == ("w1", "whclient", 5)
    st, _, body = admin_get(n.admin, "/workers/w1/requests")
    r = json.loads(body)["requests"]
    assert len(r) == 5 and all(x["path"] == "/w1/bytes/1000" and x["status"] == 200 for x in r)
    assert all(x["via"] == "local" and x["method"] == "GET" and len(x["request_id"]) == 16 for x in r)
    assert admin_get(n.admin, "/workers/nobody/requests")[0] == 404
    # the access log: one line per request, the 404s without a worker
    wait_for(lambda: len(re.findall(r" access conn=\d+ worker=w1 method=GET path=/w1/bytes/1000 status=200 ",
                                    n.output())) == 5, 5, "5 access lines for w1")
    assert len(re.findall(r" access conn=\d+ worker= method=GET path=/nobody/x status=404 ", n.output())) == 2


def test_registration_outcomes_and_sessions(procs):
    n = admin_node(procs)
    m0 = metrics(n.admin)
    ws = ("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n")

    def reg(headers):
        return raw(n.port, (ws + headers + "\r\n").encode()).split(b"\r\n", 1)[0]

    assert b" 401 " in reg("X-Websocktunnel-Id: w9\r\nAuthorization: Bearer " + make_token("other") + "\r\n")
    assert b" 400 " in reg("X-Websocktunnel-Id: w/9\r\nAuthorization: Bearer " + make_token("w9") + "\r\n")
    assert b" 400 " in reg("X-Websocktunnel-Id: w9\r\n")
    no_ws = "GET / HTTP/1.1\r\nHost: x\r\nX-Websocktunnel-Id: w9\r\nAuthorization: Bearer %s\r\n\r\n" % make_token("w9")
    assert b" 404 " in raw(n.port, no_ws.encode()).split(b"\r\n", 1)[0]
    b = Backend()
    procs.append(b)
    c = Client(n.url, "w9", b.port)
    procs.append(c)
    c.stop()
    wait_for(lambda: metrics(n.admin)["whtunnel_workers"] == 0, 5, "the worker's session to end")
    d = diff(metrics(n.admin), m0)
    for outcome, k in (("bad_token", 1), ("bad_id", 1), ("bad_authorization", 1), ("not_websocket", 1), ("ok", 1)):
        assert d.get("whtunnel_registrations_total{outcome=\"%s\"}" % outcome) == k, (outcome, d)
    assert d.get("whtunnel_worker_sessions_opened_total") == 1
    closed = {k: v for k, v in d.items() if k.startswith("whtunnel_worker_sessions_closed_total")}
    assert sum(closed.values()) == 1 and list(closed)[0].split('"')[1] in ("closed_by_worker", "connection_lost")
    # registrations are not viewer requests
    assert not [k for k in d if k.startswith("whtunnel_requests_total")]


def test_probes_token_and_off(procs):
    n = admin_node(procs, {"WHT_ADMIN_TOKEN": "adm1n-t0ken"})
    assert admin_get(n.admin, "/healthz")[:2] == (200, "text/plain; charset=utf-8")
    assert admin_get(n.admin, "/readyz")[0] == 200
    assert admin_get(n.admin, "/metrics")[0] == 200  # never needs the token
    for path in ("/status", "/cluster", "/workers/w1/requests", "/dashboard"):
        assert admin_get(n.admin, path)[0] == 401, path
        assert admin_get(n.admin, path, "wrong")[0] == 401, path
    assert admin_get(n.admin, "/status", "adm1n-t0ken")[0] == 200
    assert admin_get(n.admin, "/status?token=adm1n-t0ken")[0] == 200
    st, ctype, body = admin_get(n.admin, "/dashboard", "adm1n-t0ken")
    assert st == 200 and ctype.startswith("text/html") and b"<html" in body.lower()
    assert admin_get(n.admin, "/nothing", "adm1n-t0ken")[0] == 404
    # the viewer port knows nothing of the admin pages
    assert raw(n.port, b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").startswith(b"HTTP/1.1 404")
    off = Node(env={"WHT_ADMIN_ADDR": "off"})
    procs.append(off)
    assert "admin listener" not in off.output()


def test_cluster_relays_counted_on_both_nodes(procs):
    rds = Redis()
    procs.append(rds)
    nodes = []
    for i in (1, 2):
        aport = free_port()
        node = cluster_node(rds, "n%d" % i, {"WHT_ADMIN_ADDR": "127.0.0.1:%d" % aport})
        node.admin = aport
        procs.append(node)
        nodes.append(node)
    wait_peers(nodes, 1)
    b = Backend()
    procs.append(b)
    c = Client(nodes[0].url, "w1", b.port)
    procs.append(c)
    wait_for(lambda: raw(nodes[1].port, b"GET /w1/status/204 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
             .startswith(b"HTTP/1.1 204"), 10, "w1 through n2")
    m0 = [metrics(x.admin) for x in nodes]
    for _ in range(7):
        assert raw(nodes[1].port, b"GET /w1/echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").startswith(
            b"HTTP/1.1 200")
    m1 = [metrics(x.admin) for x in nodes]
    d1, d2 = diff(m1[0], m0[0]), diff(m1[1], m0[1])
    assert d2.get(REQ % ("relayed_out", "2xx")) == 7, d2
    assert d1.get(REQ % ("relayed_in", "2xx")) == 7, d1
    assert not [k for k in d1 if k.startswith("whtunnel_requests_total") and "relayed_in" not in k]
    assert m1[1]["whtunnel_peer_links_up"] >= 1 and m1[1]["whtunnel_redis_up"] == 1
    assert m1[1]["whtunnel_route_cache_routes"] >= 1 and m1[1]["whtunnel_redis_commands_total"] > 0
    assert d2.get("whtunnel_route_cache_hits_total", 0) >= 6  # the first may have asked Redis
    # the owner's ring says the requests came relayed, with the sender's request ids
    r = json.loads(admin_get(nodes[0].admin, "/workers/w1/requests")[2])["requests"]
    relayed = [x for x in r if x["path"] == "/w1/echo"]
    assert len(relayed) == 7 and all(x["via"] == "relayed" for x in relayed)
    pat = r"path=/w1/echo status=200 .* via=relayed_out request_id=(\w+)"
    wait_for(lambda: len(re.findall(pat, nodes[1].output())) == 7, 5, "7 access lines on the sender")
    ids = set(re.findall(pat, nodes[1].output()))
    assert {x["request_id"] for x in relayed} == ids and len(ids) == 7
    # /cluster on either node: both nodes, their workers, from the registry
    def both():
        cl = json.loads(admin_get(nodes[1].admin, "/cluster")[2])
        return {x["node"]: x["workers"] for x in cl["nodes"]} == {"n1": 1, "n2": 0}
    wait_for(both, 10, "/cluster to show n1 with one worker and n2 with none")
    s = json.loads(admin_get(nodes[1].admin, "/status")[2])
    assert s["mode"] == "cluster" and s["redis"] == {"configured": True, "up": True}
    assert [(p["node"], p["link"]) for p in s["peers"]] == [("n1", "up")]


@pytest.mark.parametrize("sane", [True, False])
def test_request_id_to_the_worker(procs, sane):
    n = admin_node(procs)
    b = Backend()
    procs.append(b)
    c = Client(n.url, "w1", b.port)
    procs.append(c)
    rid = "abc-123.x:y" if sane else "bad id!" * 20
    got = raw(n.port, ("GET /w1/echo HTTP/1.1\r\nHost: x\r\nX-Request-Id: %s\r\nConnection: close\r\n\r\n"
                       % rid).encode())
    head, body = got.split(b"\r\n\r\n", 1)
    echoed = json.loads(body)["headers"]
    sent = [v for k, v in echoed if k.lower() == "x-request-id"]
    assert len(sent) == 1
    if sane:
        assert sent[0] == rid
    else:
        assert re.fullmatch(r"[0-9a-f]{16}", sent[0])
    wait_for(lambda: "request_id=%s " % sent[0] in n.output(), 5, "the access line with the id")


def test_tls_handshakes_and_websockets_counted(procs, tmp_path):
    import ssl
    from test_tls import make_ca, make_cert
    d = str(tmp_path)
    ca = make_ca(d)
    key, cert = make_cert(d, "server", "IP:127.0.0.1,DNS:localhost")
    n = admin_node(procs, {"TLS_KEY": key, "TLS_CERTIFICATE": cert})
    b = Backend()
    procs.append(b)
    c = Client("wss://127.0.0.1:%d" % n.port, "w1", b.port, args=("--ca", ca))
    procs.append(c)
    m0 = metrics(n.admin)
    ctx = ssl.create_default_context(cafile=ca)
    for _ in range(3):  # three handshakes that complete
        s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", n.port), timeout=10), server_hostname="127.0.0.1")
        s.sendall(b"GET /__heartbeat__ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        while s.recv(65536):
            pass
        s.close()
    for _ in range(2):  # two that fail: plain bytes to the TLS port, and a client that gives up
        s = socket.create_connection(("127.0.0.1", n.port), timeout=10)
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            s.recv(100)
        except OSError:
            pass
        s.close()
    wait_for(lambda: diff(metrics(n.admin), m0).get("whtunnel_tls_handshake_failures_total") == 2, 5,
             "two failed handshakes counted")
    d1 = diff(metrics(n.admin), m0)
    assert d1.get("whtunnel_tls_handshakes_total") == 3, d1
    # a WebSocket through the tunnel is open while it lasts, then counted as one 101
    import asyncio
    import websockets

    async def ws():
        async with websockets.connect("wss://127.0.0.1:%d/w1/ws" % n.port, ssl=ctx) as w:
            await w.send("hi")
            assert await w.recv() == "hi"
            assert metrics(n.admin)["whtunnel_websockets_open"] == 1
    asyncio.run(ws())
    wait_for(lambda: metrics(n.admin)["whtunnel_websockets_open"] == 0, 5, "the WebSocket to be closed")
    assert diff(metrics(n.admin), m0).get(REQ % ("local", "1xx")) == 1


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_access_log_formats_and_off(procs, fmt):
    n = admin_node(procs, {"WHT_LOG_FORMAT": fmt, "WHT_LOG_LEVEL": "info"})
    off = admin_node(procs, {"WHT_ACCESS_LOG": "false", "WHT_LOG_LEVEL": "info"})
    for node in (n, off):
        assert raw(node.port, b"GET /nobody/p?secret=1 HTTP/1.1\r\nHost: x\r\nX-Request-Id: rid-7\r\n"
                              b"Connection: close\r\n\r\n").startswith(b"HTTP/1.1 404")
    if fmt == "json":
        def line():
            for l in n.output().splitlines():
                j = json.loads(l)  # every line is JSON
                if j.get("msg") == "access":
                    return j
        wait_for(lambda: line() is not None, 5, "the JSON access line")
        j = line()
        assert (j["method"], j["path"], j["status"], j["via"], j["request_id"]) == ("GET", "/nobody/p", 404, "local",
                                                                                      "rid-7")
        assert j["bytes_in"] > 0 and j["bytes_out"] > 0 and "secret" not in json.dumps(j)
    else:
        wait_for(lambda: " access " in n.output(), 5, "the access line")
        assert re.search(r" access conn=\d+ worker= method=GET path=/nobody/p status=404 .* request_id=rid-7 ",
                         n.output())
        assert "secret" not in n.output()
    # the node with the access log off: the request is counted, but no line
    wait_for(lambda: metrics(off.admin)[REQ % ("local", "4xx")] == 1, 5, "the request counted")
    raw(off.port, b"GET /__heartbeat__ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert " access " not in off.output()
