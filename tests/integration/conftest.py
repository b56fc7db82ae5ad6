"""Shared fixtures: real processes on 127.0.0.1 (node, client, backend), tokens, polling helpers.

Every wait polls with a deadline; nothing sleeps blindly. Processes are killed
at the end of each test. Binaries come from $WHT_BUILD_DIR (set by ctest).
"""

import base64
import hashlib
import hmac
import json
import os
import select
import socket
import subprocess
import sys
import tempfile
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("WHT_BUILD_DIR", os.path.join(ROOT, "build"))
SECRET_A = "test-secret-a"
SECRET_B = "test-secret-b"


def binary(name):
    for p in (os.path.join(BUILD, "node", name), os.path.join(BUILD, "client", name), os.path.join(BUILD, name)):
        if os.path.exists(p):
            return p
    raise FileNotFoundError("%s not built in %s" % (name, BUILD))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def make_token(tid, secret=SECRET_A, nbf=None, exp=None, iat=None, alg="HS256", aud=None, extra=None, drop=()):
    """A JWT built by hand (independent of the node's libjwt)."""
    now = int(time.time())
    claims = {"tid": tid, "iat": now if iat is None else iat, "nbf": now - 300 if nbf is None else nbf,
              "exp": now + 3600 if exp is None else exp}
    if aud is not None:
        claims["aud"] = aud
    claims.update(extra or {})
    for k in drop:
        claims.pop(k, None)
    header = {"alg": alg, "typ": "JWT"}
    signing = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}.get(alg)
    sig = b64url(hmac.new(secret.encode(), signing.encode(), digest).digest()) if digest else ""
    return signing + "." + sig


def wait_for(pred, timeout=10.0, what="condition"):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            r = pred()
            if r:
                return r
        except Exception as e:  # noqa: BLE001 - polled
            last = e
        time.sleep(0.02)
    raise TimeoutError("timed out waiting for %s (last error: %r)" % (what, last))


def port_open(port):
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


class Proc:
    def __init__(self, args, env=None, name="proc", stdin=None):
        self.log = tempfile.NamedTemporaryFile(prefix="wht-%s-" % name, suffix=".log", delete=False)
        full_env = dict(os.environ)
        full_env.update(env or {})
        self.p = subprocess.Popen(args, stdout=subprocess.PIPE if name == "client" else self.log,
                                  stderr=self.log, env=full_env, stdin=stdin or subprocess.DEVNULL)
        self.name = name

    def output(self):
        with open(self.log.name, "rb") as f:
            return f.read().decode(errors="replace")

    def alive(self):
        return self.p.poll() is None

    def stop(self, sig=15, timeout=10):
        if self.p.poll() is None:
            self.p.send_signal(sig)
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        return self.p.returncode


class Node(Proc):
    def __init__(self, env=None, port=None, args=()):
        self.port = port or free_port()
        e = {"PORT": str(self.port), "WHT_LISTEN_ADDR": "127.0.0.1", "TASKCLUSTER_PROXY_SECRET_A": SECRET_A,
             "TASKCLUSTER_PROXY_SECRET_B": SECRET_B, "WHT_LOG_LEVEL": "debug",
             # the default admin port (PORT + 2) may be another node's port: free ports come in sequence
             "WHT_ADMIN_ADDR": "127.0.0.1:0"}
        e.update(env or {})
        super().__init__([binary("whtunnel")] + list(args), env=e, name="node")
        wait_for(lambda: port_open(self.port) or not self.alive(), 10, "node to listen")
        assert self.alive(), self.output()

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port


class Client(Proc):
    def __init__(self, node_url, wid, target_port, token=None, args=(), wait=True):
        token = token or make_token(wid)
        super().__init__([binary("whclient"), node_url, wid, str(target_port), "--token", token] + list(args),
                         name="client")
        self.url = None
        if wait:  # the URL line, within a deadline (a client that cannot register retries forever)
            ready, _, _ = select.select([self.p.stdout], [], [], 20)
            if not ready:
                self.stop()
                raise TimeoutError("client printed no URL within 20 s: %s" % self.output())
            line = self.p.stdout.readline().decode().strip()
            assert line, "client printed no URL: %s" % self.output()
            self.url = line


class Backend(Proc):
    def __init__(self):
        self.port = free_port()
        super().__init__([sys.executable, os.path.join(os.path.dirname(__file__), "backend.py"), str(self.port)],
                         name="backend")
        wait_for(lambda: port_open(self.port), 10, "backend to listen")


def check_ws_echo(port, path):
    """WebSocket echo through a node: text, a 1 MiB binary message, 50 in a row, and a close code."""
    import asyncio
    import websockets

    async def run():
        async with websockets.connect("ws://127.0.0.1:%d%s" % (port, path), max_size=4 << 20) as ws:
            await ws.send("hello")
            assert await ws.recv() == "hello"
            blob = os.urandom(1 << 20)
            await ws.send(blob)
            assert await ws.recv() == blob
            for i in range(50):
                await ws.send(b"m%d" % i)
            for i in range(50):
                assert await ws.recv() == b"m%d" % i
            await ws.close(code=4001, reason="bye")
            assert ws.close_code == 4001
    asyncio.run(asyncio.wait_for(run(), 30))


def check_streamed_lines(port, path, lines=10):
    """GETs path (the backend's /slow) and checks the lines arrive one by one
    (100 ms apart at the source), not in one lump at the end."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"GET %s?lines=%d HTTP/1.1\r\nHost: x\r\n\r\n" % (path.encode(), lines))
    buf, arrivals, start = b"", [], time.time()
    while len(arrivals) < lines and time.time() - start < 10:
        d = s.recv(4096)
        if not d:
            break
        buf += d
        while b"line " in buf and b"\n" in buf[buf.index(b"line "):]:
            j = buf.index(b"\n", buf.index(b"line "))
            arrivals.append(time.time())
            buf = buf[j + 1:]
    s.close()
    assert len(arrivals) == lines
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:])]
    assert sum(1 for g in gaps if g > 0.05) >= lines - 3, gaps


def recv_to_close(s):
    """Every byte s receives until its peer closes it (s's own timeout bounds each wait); the
    caller closes s."""
    buf = b""
    while True:
        d = s.recv(65536)
        if not d:
            return buf
        buf += d


def read_all(port, request, timeout=10):
    """Sends request on a new connection and returns every byte until the node closes it."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(request)
        return recv_to_close(s)
    finally:
        s.close()


def read_until_close(port, request):
    """Sends request on a new connection and reads until the node closes it:
    (head as text, body bytes)."""
    head, _, body = read_all(port, request).partition(b"\r\n\r\n")
    return head.decode(errors="replace"), body


def check_concurrent_downloads(viewers, port_of, path_of):
    """viewers threads at once; viewer i makes 3 GETs on one keep-alive
    connection to port_of(i), of path_of(i, j) (a backend /bytes/N path).
    Every body must match its X-Sha256."""
    import http.client
    import threading
    errors = []

    def viewer(i):
        try:
            c = http.client.HTTPConnection("127.0.0.1", port_of(i), timeout=30)
            for j in range(3):
                c.request("GET", path_of(i, j))
                r = c.getresponse()
                data = r.read()
                assert hashlib.sha256(data).hexdigest() == r.getheader("X-Sha256")
            c.close()
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))
    threads = [threading.Thread(target=viewer, args=(i,)) for i in range(viewers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors[:5]


SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


def sanitizer_reports(p):
    """The sanitizer report lines in a stopped process's log (ASan, LSan, UBSan)."""
    if p.name == "backend":
        return []
    out = p.output()
    return [line for line in out.splitlines() if any(m in line for m in SANITIZER_MARKS)]


def rss_kb(pid):
    """VmRSS of a process, in KiB."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise ValueError("no VmRSS for %d" % pid)


@pytest.fixture
def procs():
    started = []
    yield started
    for p in reversed(started):
        p.stop()
    # a sanitizer report in any node or client log fails the test
    reports = []
    for p in started:
        reports += ["%s %s: %s" % (p.name, p.log.name, line) for line in sanitizer_reports(p)]
    if reports:
        pytest.fail("sanitizer reports:\n" + "\n".join(reports[:20]), pytrace=False)


@pytest.fixture
def backend(procs):
    b = Backend()
    procs.append(b)
    return b


@pytest.fixture
def node(procs):
    n = Node()
    procs.append(n)
    return n


# ---- skips are reported, and slow checks run in one build only ---------------------

def slow_check():
    """Skips a slow check (a browser, a Prometheus server) in a build that does not run them:
    tests/run.sh runs them once, in the release build (WHT_SLOW_CHECKS=0 for the sanitizer build)."""
    if os.environ.get("WHT_SLOW_CHECKS", "1") == "0":
        pytest.skip("slow check: runs once, in the release build (WHT_SLOW_CHECKS=0 here)")


def pytest_runtest_logreport(report):
    """Every skip, with its reason, goes to $WHT_SKIP_LOG (tests/run.sh prints them in its summary)."""
    path = os.environ.get("WHT_SKIP_LOG")
    if not path or not report.skipped:
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    with open(path, "a") as f:
        f.write("%s: %s\n" % (report.nodeid, reason.replace("Skipped: ", "", 1)))
