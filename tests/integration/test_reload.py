"""SIGHUP reloads the TLS files and the secret files (<VARIABLE>_FILE) of a
real node, without dropping a connection: new handshakes get the new
certificate while a WebSocket and slow downloads opened before go on; a
rotated secret A admits new tokens and refuses old ones while registered
workers stay; a bad reload keeps everything as it was; NAME with NAME_FILE
refuses to start. Certificates are made with the openssl CLI (test_tls.py)."""

import asyncio
import hashlib
import http.client
import os
import re
import signal
import socket
import ssl
import subprocess

import websockets

from backend import pattern
from conftest import SECRET_B, Client, Node, binary, free_port, make_token, port_open, wait_for
from test_registration import register
from test_tls import make_ca, make_cert

SAN = "IP:127.0.0.1,DNS:localhost"
OLD_A = "old-secret-a-0123456789"
NEW_A = "new-secret-a-9876543210"


def write_atomically(path, data):
    """As Kubernetes updates a mounted Secret: the new content appears at once."""
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def copy_pair(key_src, cert_src, key_dst, cert_dst):
    for src, dst in ((key_src, key_dst), (cert_src, cert_dst)):
        with open(src, "rb") as f:
            write_atomically(dst, f.read())


def presented_cn(port, ctx):
    """The CN of the certificate a NEW TLS handshake with the node presents."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            subject = dict(x[0] for x in s.getpeercert()["subject"])
            return subject["commonName"]


def metric(port, name):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", "/metrics")
    body = c.getresponse().read().decode()
    c.close()
    for line in body.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    raise KeyError(name)


def hup(node):
    node.p.send_signal(signal.SIGHUP)


def wait_log(node, text, count=1, timeout=10):
    wait_for(lambda: node.output().count(text) >= count, timeout, "%r in the node's log" % text)


def tls_node(procs, d, extra=None):
    """A node serving TLS from live.key/live.pem in d (first a certificate
    with CN=first), its admin port, and a client context trusting d's CA."""
    ca = make_ca(d)
    k1, c1 = make_cert(d, "first", SAN)
    make_cert(d, "second", SAN)
    live_key, live_cert = os.path.join(d, "live.key"), os.path.join(d, "live.pem")
    copy_pair(k1, c1, live_key, live_cert)
    aport = free_port()
    env = {"TLS_KEY": live_key, "TLS_CERTIFICATE": live_cert, "WHT_ADMIN_ADDR": "127.0.0.1:%d" % aport}
    env.update(extra or {})
    n = Node(env=env)
    procs.append(n)
    wait_for(lambda: port_open(aport), 10, "admin listener")
    n.admin = aport
    return n, ssl.create_default_context(cafile=ca), ca, live_key, live_cert


async def read_head(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    return head.decode()


async def read_chunked(reader):
    body = b""
    while True:
        size = int((await reader.readline()).split(b";")[0], 16)
        if size == 0:
            await reader.readline()
            return body
        body += await reader.readexactly(size)
        await reader.readexactly(2)


def test_certificate_rotation_keeps_connections(procs, backend, tmp_path):
    d = str(tmp_path)
    n, ctx, ca, live_key, live_cert = tls_node(procs, d)
    c = Client("wss://127.0.0.1:%d" % n.port, "w1", backend.port, args=("--ca", ca))
    procs.append(c)
    assert presented_cn(n.port, ctx) == "first"
    assert metric(n.admin, 'whtunnel_config_reloads_total{result="ok"}') == 0
    started = metric(n.admin, "whtunnel_config_last_reload_success_timestamp_seconds")
    big = 6 * 1024 * 1024

    async def run():
        ws = await websockets.connect("wss://127.0.0.1:%d/w1/ws" % n.port, ssl=ctx, max_size=4 << 20)
        await ws.send("before")
        assert await ws.recv() == "before"
        # a slow chunked download (40 lines, 100 ms apart) and a big one read slowly
        sr, sw = await asyncio.open_connection("127.0.0.1", n.port, ssl=ctx, server_hostname="127.0.0.1")
        sw.write(b"GET /w1/slow?lines=40 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        br, bw = await asyncio.open_connection("127.0.0.1", n.port, ssl=ctx, server_hostname="127.0.0.1",
                                               limit=1 << 16)
        bw.write(b"GET /w1/bytes/%d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % big)
        assert (await read_head(sr)).startswith("HTTP/1.1 200 ")
        bhead = await read_head(br)
        assert bhead.startswith("HTTP/1.1 200 ")
        want_sha = re.search(r"(?i)x-sha256: *([0-9a-f]+)", bhead).group(1)
        got = await br.readexactly(256 * 1024)

        # rotate the files, then SIGHUP; poll until a new handshake shows the new certificate
        copy_pair(os.path.join(d, "second.key"), os.path.join(d, "second.pem"), live_key, live_cert)
        hup(n)
        deadline = asyncio.get_running_loop().time() + 10
        while await asyncio.to_thread(presented_cn, n.port, ctx) != "second":
            assert asyncio.get_running_loop().time() < deadline, "the new certificate never came"
            await asyncio.sleep(0.05)

        # what was open before goes on: WebSocket messages both ways, both downloads to the end
        for i in range(20):
            await ws.send(b"after %d" % i)
            assert await ws.recv() == b"after %d" % i
        blob = os.urandom(1 << 20)
        await ws.send(blob)
        assert await ws.recv() == blob
        while len(got) < big:
            got += await br.readexactly(min(64 * 1024, big - len(got)))
            await asyncio.sleep(0.005)
        assert await br.read() == b""
        assert hashlib.sha256(got).hexdigest() == want_sha and got == pattern(big)
        body = await read_chunked(sr)
        lines = [int(m) for m in re.findall(rb"line (\d+) ", body)]
        assert lines == list(range(40)), lines
        # the old connections still hold the old certificate
        assert ws.transport.get_extra_info("ssl_object").getpeercert()["subject"][0][0][1] == "first"
        await ws.close(code=4000)
        for w in (sw, bw):
            w.close()
    asyncio.run(asyncio.wait_for(run(), 60))

    wait_log(n, "reload (SIGHUP): changed TLS_CERTIFICATE and TLS_KEY (new certificate: subject /CN=second")
    assert metric(n.admin, 'whtunnel_config_reloads_total{result="ok"}') == 1
    assert metric(n.admin, 'whtunnel_config_reloads_total{result="error"}') == 0
    assert metric(n.admin, "whtunnel_config_last_reload_success_timestamp_seconds") > started
    # the worker kept its session: requests still reach it, no second session was opened
    assert c.alive()
    r = https_get(n.port, ctx, "/w1/bytes/70000")
    assert r == pattern(70000)
    assert metric(n.admin, "whtunnel_worker_sessions_opened_total") == 1
    # a new worker registers through the new certificate (the client trusts the same CA)
    c2 = Client("wss://127.0.0.1:%d" % n.port, "w2", backend.port, args=("--ca", ca))
    procs.append(c2)
    assert https_get(n.port, ctx, "/w2/bytes/5000") == pattern(5000)


def https_get(port, ctx, path):
    c = http.client.HTTPSConnection("127.0.0.1", port, timeout=30, context=ctx)
    c.request("GET", path)
    r = c.getresponse()
    data = r.read()
    c.close()
    assert r.status == 200, (r.status, data[:200])
    return data


def status_of(port, wid, secret):
    status, _, s = register(port, wid, token=make_token(wid, secret=secret))
    s.close()
    return status


def test_secret_a_rotation_through_its_file(procs, backend, tmp_path):
    sa = str(tmp_path / "secret-a")
    write_atomically(sa, OLD_A.encode() + b"\n")
    aport = free_port()
    n = Node(env={"TASKCLUSTER_PROXY_SECRET_A": "", "TASKCLUSTER_PROXY_SECRET_A_FILE": sa,
                  "TASKCLUSTER_PROXY_SECRET_B": SECRET_B, "WHT_ADMIN_ADDR": "127.0.0.1:%d" % aport})
    procs.append(n)
    wait_for(lambda: port_open(aport), 10, "admin listener")
    old = Client(n.url, "old1", backend.port, token=make_token("old1", secret=OLD_A))
    procs.append(old)
    assert status_of(n.port, "probe0", OLD_A) == 101
    assert status_of(n.port, "probe1", NEW_A) == 401

    write_atomically(sa, NEW_A.encode() + b"\r\n")
    hup(n)
    wait_log(n, "reload (SIGHUP): changed TASKCLUSTER_PROXY_SECRET_A")
    assert OLD_A not in n.output() and NEW_A not in n.output()

    # new tokens register, old ones do not; secret B still works
    assert status_of(n.port, "new1", NEW_A) == 101
    assert status_of(n.port, "old2", OLD_A) == 401
    assert status_of(n.port, "b1", SECRET_B) == 101
    # `whtunnel token` reads the same file
    env = dict(os.environ, TASKCLUSTER_PROXY_SECRET_A_FILE=sa)
    env.pop("TASKCLUSTER_PROXY_SECRET_A", None)
    tok = subprocess.run([binary("whtunnel"), "token", "--id", "new3"], env=env, capture_output=True, timeout=10,
                         check=True).stdout.decode().strip()
    status, _, s = register(n.port, "new3", token=tok)
    s.close()
    assert status == 101
    fresh = Client(n.url, "new2", backend.port, token=make_token("new2", secret=NEW_A))
    procs.append(fresh)
    # the worker registered with the old secret is still there and serves, on its first session
    assert old.alive()
    s = socket.create_connection(("127.0.0.1", n.port), timeout=10)
    for wid in ("old1", "new2"):
        s.sendall(b"GET /%s/bytes/30000 HTTP/1.1\r\nHost: x\r\n\r\n" % wid.encode())
        buf = b""
        while not buf.endswith(pattern(30000)[-64:]) or len(buf) < 30000:
            d = s.recv(65536)
            assert d
            buf += d
        assert buf.startswith(b"HTTP/1.1 200 ") and buf.endswith(pattern(30000))
    s.close()
    assert metric(aport, 'whtunnel_worker_sessions_closed_total{reason="replaced"}') == 0
    assert metric(aport, 'whtunnel_config_reloads_total{result="ok"}') == 1

    # the A/B rotation of docs/operations.md: the old A becomes B, so old tokens work again
    sb = str(tmp_path / "secret-b")
    write_atomically(sb, OLD_A.encode())
    n2 = Node(env={"TASKCLUSTER_PROXY_SECRET_A": "", "TASKCLUSTER_PROXY_SECRET_A_FILE": sa,
                   "TASKCLUSTER_PROXY_SECRET_B": "", "TASKCLUSTER_PROXY_SECRET_B_FILE": sb})
    procs.append(n2)
    assert status_of(n2.port, "x1", NEW_A) == 101 and status_of(n2.port, "x2", OLD_A) == 101
    write_atomically(sb, b"retired-b-000000")
    hup(n2)
    wait_log(n2, "reload (SIGHUP): changed TASKCLUSTER_PROXY_SECRET_B")
    assert status_of(n2.port, "x3", NEW_A) == 101 and status_of(n2.port, "x4", OLD_A) == 401


def test_bad_reload_keeps_the_old_configuration(procs, backend, tmp_path):
    d = str(tmp_path)
    sa = os.path.join(d, "secret-a")
    write_atomically(sa, OLD_A.encode())
    n, ctx, ca, live_key, live_cert = tls_node(procs, d, {
        "ENV": "production", "TASKCLUSTER_PROXY_SECRET_A": "", "TASKCLUSTER_PROXY_SECRET_B": "",
        "TASKCLUSTER_PROXY_SECRET_A_FILE": sa, "WHT_LOG_FORMAT": "text"})
    c = Client("wss://127.0.0.1:%d" % n.port, "w1", backend.port, args=("--ca", ca),
               token=make_token("w1", secret=OLD_A))
    procs.append(c)
    with open(live_cert, "rb") as f:
        good_cert = f.read()
    errors = 0

    def bad_reload(why):
        nonlocal errors
        hup(n)
        errors += 1
        wait_for(lambda: metric(n.admin, 'whtunnel_config_reloads_total{result="error"}') == errors, 10,
                 "the failed reload to be counted")
        wait_log(n, why)
        line = [x for x in n.output().splitlines() if why in x][-1]
        assert "reload (SIGHUP) failed, the old configuration stays in force" in line, line
        assert "error" in line.lower()
        # nothing changed: the old certificate for new handshakes, the old secret, the worker
        assert presented_cn(n.port, ctx) == "first"
        assert status_of_tls(n.port, ctx, "probe%d" % errors, OLD_A) == 101
        assert https_get(n.port, ctx, "/w1/bytes/20000") == pattern(20000)
        assert n.alive() and c.alive()

    # 1. garbage in the certificate file (the key is fine)
    write_atomically(live_cert, b"-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n")
    bad_reload("cannot use TLS_CERTIFICATE")
    # 2. a certificate with another key
    with open(os.path.join(d, "second.pem"), "rb") as f:
        write_atomically(live_cert, f.read())
    bad_reload("TLS_KEY does not match TLS_CERTIFICATE")
    write_atomically(live_cert, good_cert)
    # 3. an empty secret file, then a missing one (production needs a secret)
    write_atomically(sa, b"\n")
    bad_reload("TASKCLUSTER_PROXY_SECRET_A_FILE (--secret-a-file) \"%s\" is empty" % sa)
    os.unlink(sa)
    bad_reload("cannot read TASKCLUSTER_PROXY_SECRET_A_FILE (--secret-a-file) \"%s\": No such file" % sa)
    # 4. a valid secret file, but the certificate still broken: all or nothing
    write_atomically(sa, NEW_A.encode())
    write_atomically(live_cert, b"garbage")
    bad_reload("cannot use TLS_CERTIFICATE")
    assert status_of_tls(n.port, ctx, "probe-new", NEW_A) == 401
    assert metric(n.admin, 'whtunnel_config_reloads_total{result="ok"}') == 0
    # then a good reload takes both
    write_atomically(live_cert, good_cert)
    hup(n)
    wait_log(n, "reload (SIGHUP): changed TASKCLUSTER_PROXY_SECRET_A")
    assert status_of_tls(n.port, ctx, "probe-new", NEW_A) == 101
    assert OLD_A not in n.output() and NEW_A not in n.output()


def status_of_tls(port, ctx, wid, secret):
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    s = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    s.sendall(("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\nX-Websocktunnel-Id: %s\r\n"
               "Authorization: Bearer %s\r\n\r\n" % (key, wid, make_token(wid, secret=secret))).encode())
    data = b""
    while b"\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    s.close()
    return int(data.split(b" ")[1])


def test_name_and_name_file_refuse_to_start(tmp_path):
    sa = str(tmp_path / "a")
    write_atomically(sa, b"file-secret-value")
    base = dict(os.environ, PORT=str(free_port()), WHT_LISTEN_ADDR="127.0.0.1", WHT_ADMIN_ADDR="off")
    cases = [
        ({"TASKCLUSTER_PROXY_SECRET_A": "env-secret-value", "TASKCLUSTER_PROXY_SECRET_A_FILE": sa}, [],
         "TASKCLUSTER_PROXY_SECRET_A and TASKCLUSTER_PROXY_SECRET_A_FILE are both set"),
        ({"WHT_ADMIN_TOKEN": "env-secret-value", "WHT_ADMIN_TOKEN_FILE": sa}, [],
         "WHT_ADMIN_TOKEN and WHT_ADMIN_TOKEN_FILE are both set"),
        ({}, ["--cluster-secret", "env-secret-value", "--cluster-secret-file", sa],
         "--cluster-secret and --cluster-secret-file are both given"),
        ({"TASKCLUSTER_PROXY_SECRET_B_FILE": sa + ".missing"}, [],
         "cannot read TASKCLUSTER_PROXY_SECRET_B_FILE (--secret-b-file) \"%s.missing\"" % sa),
    ]
    for env, args, want in cases:
        r = subprocess.run([binary("whtunnel")] + args, env=dict(base, **env), capture_output=True, timeout=10)
        err = r.stderr.decode()
        assert r.returncode == 2, (r.returncode, err)
        assert want in err, err
        assert "secret-value" not in err, err
