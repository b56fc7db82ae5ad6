"""The original Go client (wst-client, 2019) against our node.

Runs only when $WHT_GO_CLIENT names a wst-client binary built by hand (the
project never builds or ships it); otherwise every test skips. Example:
  WHT_GO_CLIENT=/path/to/wst-client WHT_BUILD_DIR=build /usr/bin/python3 -m pytest tests/integration/test_go_client.py
"""

import asyncio
import hashlib
import http.client
import os

import pytest
import websockets

from conftest import Node, Proc, make_token, wait_for

GO_CLIENT = os.environ.get("WHT_GO_CLIENT")
pytestmark = pytest.mark.skipif(not GO_CLIENT or not os.path.exists(GO_CLIENT),
                                reason="WHT_GO_CLIENT not set (the original Go wst-client, built by hand)")


@pytest.fixture
def go_tunnel(procs, backend):
    n = Node()
    procs.append(n)
    c = Proc([GO_CLIENT, n.url, "gw", str(backend.port), "--token", make_token("gw")], name="go-client")
    procs.append(c)

    def up():
        h = http.client.HTTPConnection("127.0.0.1", n.port, timeout=5)
        h.request("GET", "/gw/echo")
        return h.getresponse().status == 200
    wait_for(up, 10, "Go client to register")
    return n


def get(n, method, path, body=None):
    h = http.client.HTTPConnection("127.0.0.1", n.port, timeout=60)
    h.request(method, path, body=body)
    r = h.getresponse()
    return r, r.read()


def test_go_client_download(go_tunnel):
    for size in (0, 1000, 10 * 1024 * 1024):
        r, data = get(go_tunnel, "GET", "/gw/bytes/%d" % size)
        assert r.status == 200 and len(data) == size
        assert hashlib.sha256(data).hexdigest() == r.getheader("X-Sha256")


def test_go_client_upload(go_tunnel):
    body = os.urandom(3 * 1024 * 1024)
    r, data = get(go_tunnel, "POST", "/gw/mirror", body)
    assert hashlib.sha256(data).digest() == hashlib.sha256(body).digest()


def test_go_client_websocket(go_tunnel):
    async def run():
        async with websockets.connect("ws://127.0.0.1:%d/gw/ws" % go_tunnel.port, max_size=4 << 20) as ws:
            blob = os.urandom(600000)
            await ws.send(blob)
            assert await ws.recv() == blob
            await ws.send("text")
            assert await ws.recv() == "text"
    asyncio.run(asyncio.wait_for(run(), 30))


def test_go_client_concurrent(go_tunnel):
    import threading
    errors = []

    def one(i):
        try:
            r, data = get(go_tunnel, "GET", "/gw/bytes/%d" % (5000 + i))
            assert hashlib.sha256(data).hexdigest() == r.getheader("X-Sha256")
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))
    ts = [threading.Thread(target=one, args=(i,)) for i in range(50)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    assert not errors, errors[:3]
