"""HTTPS and WSS: the node with TLS_KEY/TLS_CERTIFICATE, our client over wss://
with --ca, viewers over https and wss; a wildcard certificate in domain mode.

A throwaway CA and server certificates are made with the openssl CLI in the
test's tmp_path."""

import asyncio
import hashlib
import http.client
import json
import os
import socket
import ssl
import subprocess
import time

import pytest
import websockets

from conftest import Client, Node

from backend import pattern


def openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True, capture_output=True, timeout=60)


def make_ca(d):
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=wht test CA",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            cwd=d)
    return os.path.join(d, "ca.pem")


def make_cert(d, name, san):
    """A server certificate signed by the CA in d; returns (key path, cert path)."""
    with open(os.path.join(d, name + ".ext"), "w") as f:
        f.write("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                "extendedKeyUsage=serverAuth\nsubjectAltName=%s\n" % san)
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", name + ".key",
            "-out", name + ".csr", "-subj", "/CN=" + name, cwd=d)
    openssl("x509", "-req", "-in", name + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", name + ".pem", "-days", "2", "-extfile", name + ".ext", cwd=d)
    return os.path.join(d, name + ".key"), os.path.join(d, name + ".pem")


@pytest.fixture
def pki(tmp_path):
    d = str(tmp_path)
    ca = make_ca(d)
    key, cert = make_cert(d, "server", "IP:127.0.0.1,DNS:localhost")
    wkey, wcert = make_cert(d, "wildcard", "DNS:*.tun.test,DNS:tun.test,IP:127.0.0.1")
    ctx = ssl.create_default_context(cafile=ca)
    return {"ca": ca, "key": key, "cert": cert, "wkey": wkey, "wcert": wcert, "ctx": ctx}


@pytest.fixture
def tls_tunnel(procs, backend, pki):
    n = Node(env={"TLS_KEY": pki["key"], "TLS_CERTIFICATE": pki["cert"]})
    procs.append(n)
    c = Client("wss://127.0.0.1:%d" % n.port, "w1", backend.port, args=("--ca", pki["ca"]))
    procs.append(c)
    return n, c, pki["ctx"]


def https(node, ctx, method, path, body=None, headers=None):
    c = http.client.HTTPSConnection("127.0.0.1", node.port, timeout=30, context=ctx)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r, data


def test_https_viewer_through_wss_client(tls_tunnel):
    n, c, ctx = tls_tunnel
    assert c.url == "https://127.0.0.1:%d/w1" % n.port
    for size in (0, 1, 4096, 65537, 3 * 1024 * 1024 + 5):
        r, data = https(n, ctx, "GET", "/w1/bytes/%d" % size)
        assert r.status == 200
        assert len(data) == size
        assert hashlib.sha256(data).hexdigest() == r.getheader("X-Sha256")
    body = os.urandom(2 * 1024 * 1024 + 3)
    r, data = https(n, ctx, "POST", "/w1/mirror", body=body)
    assert r.status == 200
    assert hashlib.sha256(data).digest() == hashlib.sha256(body).digest()
    r, data = https(n, ctx, "GET", "/w1/echo/t?a=b")
    info = json.loads(data)
    hdrs = {k.lower(): v for k, v in info["headers"]}
    assert info["target"] == "/echo/t?a=b"
    assert hdrs["x-forwarded-proto"] == "https"
    assert hdrs["x-websocktunnel-original-path"] == "/w1/echo/t?a=b"
    # keep-alive over TLS, and the heartbeat
    conn = http.client.HTTPSConnection("127.0.0.1", n.port, timeout=30, context=ctx)
    for i in range(10):
        conn.request("GET", "/w1/chunked/%d" % (10000 + i))
        r = conn.getresponse()
        data = r.read()
        assert hashlib.sha256(data).hexdigest() == r.getheader("X-Sha256")
    conn.request("GET", "/__lbheartbeat__")
    assert conn.getresponse().status == 200
    conn.close()


def test_wss_websocket_echo(tls_tunnel):
    n, _, ctx = tls_tunnel

    async def run():
        async with websockets.connect("wss://127.0.0.1:%d/w1/ws" % n.port, ssl=ctx, max_size=4 << 20) as ws:
            await ws.send("hello over tls")
            assert await ws.recv() == "hello over tls"
            blob = os.urandom(1 << 20)
            await ws.send(blob)
            assert await ws.recv() == blob
            for i in range(20):
                await ws.send(b"m%d" % i)
            for i in range(20):
                assert await ws.recv() == b"m%d" % i
            await ws.close(code=4002, reason="done")
            assert ws.close_code == 4002
    asyncio.run(asyncio.wait_for(run(), 30))


def test_plain_http_to_tls_port_and_untrusted_client(procs, backend, pki):
    n = Node(env={"TLS_KEY": pki["key"], "TLS_CERTIFICATE": pki["cert"]})
    procs.append(n)
    # plain HTTP on the TLS port gets no HTTP answer, and the node carries on
    s = socket.create_connection(("127.0.0.1", n.port), timeout=5)
    s.sendall(b"GET /__lbheartbeat__ HTTP/1.1\r\nHost: x\r\n\r\n")
    data = b""
    try:
        while True:
            d = s.recv(4096)
            if not d:
                break
            data += d
    except (ConnectionResetError, socket.timeout):
        pass
    assert not data.startswith(b"HTTP/1.1 200")
    s.close()
    # a client that does not trust the node's CA does not register
    c = Client("wss://127.0.0.1:%d" % n.port, "w1", backend.port, wait=False)
    procs.append(c)
    time.sleep(1.5)
    r, body = https(n, pki["ctx"], "GET", "/w1/echo")
    assert r.status == 404 and b"No client is connected" in body
    assert n.alive()


def tls_get(port, ctx, sni, request):
    """One request over TLS to 127.0.0.1 with the given SNI; returns (head, body)."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    s = ctx.wrap_socket(raw, server_hostname=sni)
    s.sendall(request)
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = s.recv(65536)
        assert d, buf
        buf += d
    head, body = buf.split(b"\r\n\r\n", 1)
    cl = 0
    for line in head.split(b"\r\n")[1:]:
        k, v = line.split(b":", 1)
        if k.strip().lower() == b"content-length":
            cl = int(v)
    while len(body) < cl:
        d = s.recv(1 << 20)
        assert d
        body += d
    s.close()
    return head.decode(), body


def test_wildcard_cert_domain_mode(procs, backend, pki):
    n = Node(env={"TLS_KEY": pki["wkey"], "TLS_CERTIFICATE": pki["wcert"], "WHT_DOMAIN": "tun.test"})
    procs.append(n)
    c = Client("wss://127.0.0.1:%d" % n.port, "w1", backend.port, args=("--ca", pki["ca"]))
    procs.append(c)
    assert c.url == "https://w1.tun.test"
    ctx = pki["ctx"]
    host = b"w1.tun.test:%d" % n.port
    head, body = tls_get(n.port, ctx, "w1.tun.test",
                         b"GET /echo/d?x=1 HTTP/1.1\r\nHost: " + host + b"\r\nConnection: close\r\n\r\n")
    assert head.startswith("HTTP/1.1 200 ")
    info = json.loads(body)
    assert info["target"] == "/echo/d?x=1"
    hdrs = {k.lower(): v for k, v in info["headers"]}
    assert hdrs["host"] == host.decode()
    assert hdrs["x-forwarded-proto"] == "https"
    assert "x-websocktunnel-original-path" not in hdrs
    head, body = tls_get(n.port, ctx, "w1.tun.test",
                         b"GET /bytes/300000 HTTP/1.1\r\nHost: w1.tun.test\r\nConnection: close\r\n\r\n")
    assert head.startswith("HTTP/1.1 200 ") and body == pattern(300000)
    # the certificate does not cover other names: the TLS client refuses it
    with pytest.raises(ssl.SSLCertVerificationError):
        tls_get(n.port, ctx, "w1.other.test", b"GET / HTTP/1.1\r\nHost: w1.other.test\r\n\r\n")
    # an unknown id under the domain: 404 from the node
    head, body = tls_get(n.port, ctx, "nobody.tun.test",
                         b"GET /x HTTP/1.1\r\nHost: nobody.tun.test\r\nConnection: close\r\n\r\n")
    assert head.startswith("HTTP/1.1 404 ") and b"No client is connected" in body

    async def ws_run():
        raw = socket.create_connection(("127.0.0.1", n.port), timeout=10)
        async with websockets.connect("wss://w1.tun.test:%d/ws" % n.port, sock=raw, ssl=ctx,
                                      server_hostname="w1.tun.test") as ws:
            await ws.send(b"domain mode")
            assert await ws.recv() == b"domain mode"
    asyncio.run(asyncio.wait_for(ws_run(), 20))
    # path mode still works on the same node
    r, data = https(n, ctx, "GET", "/w1/bytes/5000")
    assert r.status == 200 and data == pattern(5000)


def test_base64_pem_in_environment(procs, backend, pki):
    """The original service took TLS_KEY/TLS_CERTIFICATE as base64 of the PEM
    text: old deployments' environments work unchanged."""
    import base64
    with open(pki["key"], "rb") as f:
        key_b64 = base64.b64encode(f.read()).decode()
    with open(pki["cert"], "rb") as f:
        cert_b64 = base64.b64encode(f.read()).decode()
    n = Node(env={"TLS_KEY": key_b64, "TLS_CERTIFICATE": cert_b64})
    procs.append(n)
    r, data = https(n, pki["ctx"], "GET", "/__heartbeat__")
    assert r.status == 200


def test_bad_tls_key_value_is_not_printed(pki):
    from conftest import SECRET_A, binary, free_port
    secretish = "c2VjcmV0LWtleS1tYXRlcmlhbA=="  # base64, but not of a PEM
    env = dict(os.environ, TASKCLUSTER_PROXY_SECRET_A=SECRET_A, PORT=str(free_port()), TLS_KEY=secretish,
               TLS_CERTIFICATE=pki["cert"])
    r = subprocess.run([binary("whtunnel")], env=env, capture_output=True, timeout=10)
    assert r.returncode != 0
    assert b"TLS_KEY" in r.stderr
    assert secretish.encode() not in r.stderr
