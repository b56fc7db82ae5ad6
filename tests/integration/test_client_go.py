"""whclient against an original Go server (interoperability).

Opt-in: the Go servers are not part of the project and are not built in CI.
Set WHT_GO_SERVER to a binary built by hand from taskcluster/webhooktunnel
(the 2019 `websocktunnel` at 134aa7c, or the 2017 `webhooktunnel` at 92bf74a);
without it every test here is skipped. See docs/client.md, "Testing against the
original Go server".

The Go server listens on every interface (its own code: ":" + PORT); the test
gives it random secrets and a random port, and stops it at the end. Run the
test inside a network namespace (unshare -n) to keep it off the network.

whclient is taken from $WHT_BUILD_DIR/client/whclient (set by ctest), or from
$WHCLIENT.
"""

import base64
import hashlib
import hmac
import http.client
import http.server
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import threading
import time
import urllib.parse

import pytest

GO_SERVER = os.environ.get("WHT_GO_SERVER", "")
WHCLIENT = os.environ.get("WHCLIENT") or os.path.join(os.environ.get("WHT_BUILD_DIR", ""), "client", "whclient")

pytestmark = [
    pytest.mark.skipif(not (GO_SERVER and os.access(GO_SERVER, os.X_OK)),
                       reason="WHT_GO_SERVER is not set to a Go server binary (opt-in test)"),
    pytest.mark.skipif(not os.access(WHCLIENT, os.X_OK), reason="whclient not built: " + WHCLIENT),
]

BIG = 10 * 1024 * 1024
TIMEOUT = 15.0


# ---- helpers ---------------------------------------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(cond, timeout=TIMEOUT, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_token(secret, tid, exp_in=3600, nbf_in=-300):
    now = int(time.time())
    head = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64url(json.dumps({"tid": tid, "iat": now, "nbf": now + nbf_in, "exp": now + exp_in}).encode())
    sig = b64url(hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest())
    return f"{head}.{body}.{sig}"


def port_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def http_request(port, method, path, body=None, timeout=30):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


# ---- the backend: files, POST /sha, in this process ------------------------------------------

class Backend(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    files = {}

    def log_message(self, *args):
        pass

    def do_GET(self):
        data = self.files.get(urllib.parse.urlparse(self.path).path)
        if data is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        h, left = hashlib.sha256(), n
        while left:
            chunk = self.rfile.read(min(left, 65536))
            if not chunk:
                break
            h.update(chunk)
            left -= len(chunk)
        out = f"{h.hexdigest()} {n - left}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)


@pytest.fixture(scope="module")
def backend():
    Backend.files = {"/small.txt": b"hello tunnel\n", "/big.bin": os.urandom(BIG)}
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Backend)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


# ---- the Go server ----------------------------------------------------------------------------

class GoServer:
    def __init__(self, tmp_path):
        self.port = free_port()
        self.secret = secrets.token_hex(16)
        self.log = tmp_path / f"go-{self.port}.log"
        self.proc = None

    def start(self):
        env = dict(os.environ,
                   TASKCLUSTER_PROXY_SECRET_A=self.secret,
                   TASKCLUSTER_PROXY_SECRET_B=secrets.token_hex(16),
                   PORT=str(self.port),
                   URL_PREFIX=f"http://127.0.0.1:{self.port}",  # 2019 websocktunnel
                   HOSTNAME="127.0.0.1")                        # 2017 webhooktunnel: path routing
        env.pop("TLS_KEY", None)
        env.pop("TLS_CERTIFICATE", None)
        self.proc = subprocess.Popen([GO_SERVER], env=env, stdout=open(self.log, "ab"),
                                     stderr=subprocess.STDOUT)
        wait_for(lambda: port_open(self.port), what="the Go server to listen")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


@pytest.fixture
def go(tmp_path):
    server = GoServer(tmp_path)
    server.start()
    yield server
    server.stop()


# ---- whclient ---------------------------------------------------------------------------------

class Client:
    def __init__(self, tmp_path, go_port, wid, target_port, token=None, extra=()):
        self.out = tmp_path / f"whclient-{wid}.out"
        self.err = tmp_path / f"whclient-{wid}.err"
        args = [WHCLIENT, f"ws://127.0.0.1:{go_port}", wid, str(target_port), "--log-level", "debug", *extra]
        if token:
            args += ["--token", token]
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=open(self.out, "wb"),
                                     stderr=open(self.err, "wb"))

    def stdout(self):
        return self.out.read_text(errors="replace")

    def stderr(self):
        return self.err.read_text(errors="replace")

    def send_token(self, token):
        self.proc.stdin.write(token.encode() + b"\n")
        self.proc.stdin.flush()

    def url(self):
        return wait_for(lambda: self.stdout().strip().splitlines()[0] if self.stdout().strip() else None,
                        what="the client URL on stdout")

    def registrations(self):
        return self.stderr().count("registered as ")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("whclient did not exit within 5 s of SIGTERM")
        return self.proc.returncode


@pytest.fixture
def clients(tmp_path):
    started = []

    def start(*args, **kwargs):
        c = Client(tmp_path, *args, **kwargs)
        started.append(c)
        return c

    yield start
    for c in started:
        c.stop()
        err = c.stderr()
        assert "AddressSanitizer" not in err and "runtime error" not in err, err[-4000:]


# ---- tests ------------------------------------------------------------------------------------

def test_registers_and_prints_url(go, backend, clients, tmp_path):
    out_file = tmp_path / "url.txt"
    token = make_token(go.secret, "w-url")
    c = clients(go.port, "w-url", backend, token=token, extra=["--out-file", str(out_file)])
    url = c.url()
    assert url.endswith("/w-url"), url
    assert wait_for(lambda: out_file.exists() and out_file.read_text(), what="--out-file") == url
    assert token not in c.stderr()
    assert "original protocol" in c.stderr()  # Go servers do not confirm X-Whtunnel-Ext


def test_downloads_and_uploads(go, backend, clients):
    c = clients(go.port, "w-data", backend, token=make_token(go.secret, "w-data"))
    c.url()
    status, body = http_request(go.port, "GET", "/w-data/small.txt")
    assert (status, body) == (200, b"hello tunnel\n")
    t0 = time.monotonic()
    status, body = http_request(go.port, "GET", "/w-data/big.bin")
    elapsed = time.monotonic() - t0
    assert status == 200 and len(body) == BIG
    assert hashlib.sha256(body).digest() == hashlib.sha256(Backend.files["/big.bin"]).digest()
    print(f"10 MiB through the tunnel in {elapsed:.3f} s")
    upload = os.urandom(5 * 1024 * 1024)
    status, body = http_request(go.port, "POST", "/w-data/sha", body=upload)
    assert status == 200
    assert body.decode().split() == [hashlib.sha256(upload).hexdigest(), str(len(upload))]


def test_concurrent_requests(go, backend, clients):
    c = clients(go.port, "w-par", backend, token=make_token(go.secret, "w-par"))
    c.url()
    results = []

    def fetch():
        results.append(http_request(go.port, "GET", "/w-par/big.bin"))

    threads = [threading.Thread(target=fetch) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    want = hashlib.sha256(Backend.files["/big.bin"]).digest()
    assert len(results) == 8
    assert all(s == 200 and hashlib.sha256(b).digest() == want for s, b in results)


def test_websocket_through_the_tunnel(go, clients):
    websockets = pytest.importorskip("websockets")
    import asyncio

    port = free_port()
    ready = threading.Event()
    loop = asyncio.new_event_loop()
    stop = loop.create_future()

    async def echo(ws, path=None):
        try:
            async for m in ws:
                await ws.send(m)
        except websockets.ConnectionClosed:
            pass  # the Go server closes the bridged connection without a close frame

    async def serve():
        async with websockets.serve(echo, "127.0.0.1", port, max_size=None):
            ready.set()
            await stop

    thread = threading.Thread(target=lambda: loop.run_until_complete(serve()), daemon=True)
    thread.start()
    assert ready.wait(5)
    c = clients(go.port, "w-ws", port, token=make_token(go.secret, "w-ws"))
    c.url()

    async def talk():
        async with websockets.connect(f"ws://127.0.0.1:{go.port}/w-ws/", max_size=None) as ws:
            for size in (1, 4096, 70000, 1 << 20):
                m = os.urandom(size)
                await ws.send(m)
                assert await ws.recv() == m
            await ws.send("text")
            assert await ws.recv() == "text"

    try:
        asyncio.run(asyncio.wait_for(talk(), 30))
    finally:
        loop.call_soon_threadsafe(stop.set_result, None)
        thread.join(5)
        loop.close()


def test_reconnects_after_server_restart(go, backend, clients):
    c = clients(go.port, "w-re", backend, token=make_token(go.secret, "w-re"))
    c.url()
    go.stop()
    wait_for(lambda: re.search(r"reconnecting in \d+\.\d s \(attempt 2\)", c.stderr()),
             what="two reconnect attempts")
    go.start()
    wait_for(lambda: c.registrations() >= 2, timeout=30, what="the client to register again")
    assert http_request(go.port, "GET", "/w-re/small.txt") == (200, b"hello tunnel\n")


def test_rejected_token_waits_for_a_new_one_on_stdin(go, backend, clients):
    c = clients(go.port, "w-401", backend)
    c.send_token(make_token("not-the-secret", "w-401"))
    wait_for(lambda: "token rejected by the node (401)" in c.stderr() and "waiting for a new token on stdin" in c.stderr(),
             what="the 401 message")
    time.sleep(1.0)
    assert c.stderr().count("connecting to") == 1, "a rejected token must not be retried"
    c.send_token("not a token")
    good = make_token(go.secret, "w-401")
    c.send_token(good)
    assert c.url().endswith("/w-401")
    assert http_request(go.port, "GET", "/w-401/small.txt") == (200, b"hello tunnel\n")
    assert good not in c.stderr()


def test_rejected_flag_token_exits_1(go, backend, clients):
    c = clients(go.port, "w-exp", backend, token=make_token(go.secret, "w-exp", exp_in=-10))
    assert c.proc.wait(TIMEOUT) == 1
    assert "token rejected by the node (401)" in c.stderr()


def test_backend_down_gives_the_viewer_an_error(go, clients):
    dead = free_port()
    c = clients(go.port, "w-dead", dead, token=make_token(go.secret, "w-dead"))
    c.url()
    status, _ = http_request(go.port, "GET", "/w-dead/x", timeout=10)
    assert status >= 500
    assert "cannot connect to 127.0.0.1:%d" % dead in c.stderr()
    assert c.proc.poll() is None


def test_sigterm_exits_0(go, backend, clients):
    c = clients(go.port, "w-term", backend, token=make_token(go.secret, "w-term"))
    c.url()
    t0 = time.monotonic()
    assert c.stop() == 0
    assert time.monotonic() - t0 < 2.0


def test_bad_arguments_exit_2():
    for args in ([], ["ftp://x", "a", "1"], ["ws://x", "a b", "1"], ["ws://x", "a", "0"],
                 ["ws://x", "a", "1", "--log-level", "loud"], ["ws://x", "a", "1", "--nope"]):
        r = subprocess.run([WHCLIENT, *args], capture_output=True, timeout=10)
        assert r.returncode == 2, args
        assert r.stderr.startswith(b"whclient: "), r.stderr
