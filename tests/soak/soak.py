#!/usr/bin/python3
"""A soak (issue 11): a three-node cluster on a private redis-server, N real whclient workers
(each with its own backend) that are stopped, killed, taken over and restarted on random nodes or
through an HAProxy in front of the three (then a drained node's workers move by themselves), nodes
drained (SIGTERM) and restarted, and viewers doing plain GETs, chunked and streamed
downloads, uploads and WebSocket echo sessions through random nodes, for --seconds.

    /usr/bin/python3 tests/soak/soak.py [--build DIR] [--seconds 60] [--workers 12] [--viewers 4]
                                        [--json FILE] [--keep-logs]

Every request's outcome is recorded: ok, or an error by kind (status and the body's first line,
refused, cut, timeout, wrong content). An error is "expected" when it is one of the documented
churn kinds (404 no client, the documented 502/503 texts, a refused connection to a node being
restarted, a response cut short) AND a churn event touched that request (its worker was
stopped or moving, or its node was draining, within the request's time plus a grace);
anything else is "unexpected". Node n1 is never drained, so its RSS spans the whole run.
At the start and the end: each node's VmRSS. At the end: every node and client log scanned
for sanitizer reports, and every process that exited without being told to is a crash.
Prints a report; exits 0 only when there is no unexpected error, no wrong content, no
sanitizer report, no crash and no node whose RSS grew by more than --rss-slack-mib.

Every loop is bounded by --seconds and --max-requests; every wait has a deadline; every
process started is stopped at the end (by its pid)."""

import argparse
import asyncio
import collections
import hashlib
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
INTEGRATION = os.path.join(ROOT, "tests", "integration")

# documented texts (docs/node.md, docs/cluster.md) a viewer may get while workers and nodes churn
EXPECTED_TEXTS = {
    404: ("No client is connected with that id",),
    502: ("the worker went away before answering", "the worker closed the stream before answering",
          "the worker moved while the request was relayed; try again", "the worker is going away",
          "the worker left this node and did not come back in time"),
    503: ("the node that holds this worker cannot be reached; try again shortly",
          "the node that holds this worker is going away; try again shortly"),
}
CHURN_KINDS = ("refused", "cut", "ws cut", "ws status 404", "ws status 502", "ws status 503")
GRACE = 5.0          # seconds after a churn event during which its effects are expected
VIEWER_TIMEOUT = 40  # a request still unanswered after this is a hang (no documented limit is that long here)
DRAIN_TIMEOUT_S = 10
QUARANTINE_MIB = 32


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default=os.environ.get("WHT_BUILD_DIR", os.path.join(ROOT, "build")))
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--workers", type=int, default=12)
    ap.add_argument("--viewers", type=int, default=4)
    ap.add_argument("--max-requests", type=int, default=1000000)
    ap.add_argument("--churn-every", type=float, default=2.0, help="seconds between worker churn events (0: none)")
    ap.add_argument("--drain-every", type=float, default=25.0, help="seconds between node drains (0: none)")
    ap.add_argument("--rss-every", type=float, default=60.0, help="seconds between RSS samples")
    ap.add_argument("--rss-slack-mib", type=int, default=64)
    ap.add_argument("--ops", default="get,chunked,stream,upload,ws", help="the viewers' requests, of these")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--json", default=None, help="also write the results to this file")
    ap.add_argument("--keep-logs", action="store_true", help="keep every log (default: only those with findings)")
    return ap.parse_args()


ARGS = parse_args()
WARMUP = min(max(ARGS.seconds * 0.2, 10), 120)  # seconds of load before a node's RSS baseline
os.environ["WHT_BUILD_DIR"] = os.path.abspath(ARGS.build)
os.environ.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
os.environ.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
sys.path.insert(0, INTEGRATION)
from backend import pattern  # noqa: E402
from conftest import Backend, Client, Node, make_token, rss_kb, sanitizer_reports  # noqa: E402
from test_cluster import CLUSTER_SECRET, Redis, status  # noqa: E402
from test_drain import HAPROXY, HAProxy  # noqa: E402

LOCK = threading.Lock()
T0 = time.time()


def now():
    return time.time() - T0


class Intervals:
    """Churn windows [start, end) on the soak's clock; end None while open."""

    def __init__(self):
        self.spans = []

    def open(self):
        with LOCK:
            self.spans.append([now(), None])

    def add(self, start, end):
        with LOCK:
            self.spans.append([start, end + GRACE])

    def close_all(self, at):
        with LOCK:
            for s in self.spans:
                if s[1] is None:
                    s[1] = at + GRACE

    def touches(self, t0, t1):
        with LOCK:
            return any(s[0] <= t1 and (s[1] is None or s[1] >= t0) for s in self.spans)


# ---- the cluster ---------------------------------------------------------------------------


class Soak:
    def __init__(self):
        self.all_procs = []      # every process ever started (for the log scan)
        self.told = set()        # pids we signalled: their exit is not a crash
        self.crashes = []
        self.problems = []       # churn steps that did not happen as documented (drain hangs, no peers)
        self.rss = collections.OrderedDict()  # node name -> list of (t, pid, kB)
        self.events = collections.Counter()
        self.redis = Redis()
        self.all_procs.append(self.redis)
        self.node_env = {"REDIS_URL": self.redis.url, "WHT_PEER_ADDR": "127.0.0.1:0",
                         "WHT_CLUSTER_SECRET": CLUSTER_SECRET, "WHT_REDIS_PREFIX": "soak:",
                         "WHT_LOG_LEVEL": "info", "WHT_DRAIN_TIMEOUT": "%ds" % DRAIN_TIMEOUT_S,
                         # ASan keeps 256 MiB of freed memory in quarantine by default: RSS would grow by
                         # that much whatever the node does; a smaller one lets a leak show
                         "ASAN_OPTIONS": os.environ["ASAN_OPTIONS"] + ":quarantine_size_mb=%d" % QUARANTINE_MIB}
        self.nodes = []
        for i in range(3):
            self.nodes.append({"name": "n%d" % (i + 1), "port": None, "proc": None, "churn": Intervals(),
                               "restarts": 0, "draining": False})
            self.start_node(i)
        self.wait_peers(range(3))
        # an HAProxy in front of the three nodes (health check on /__lbheartbeat__), as in test_drain.py:
        # the workers registered through it move to another node by themselves when theirs drains
        self.entries = list(self.nodes)
        if HAPROXY:
            lb = HAProxy([n["port"] for n in self.nodes])
            self.all_procs.append(lb)
            self.entries.append({"name": "lb", "port": lb.port, "proc": lb, "churn": Intervals(), "draining": False})
        self.workers = []
        for i in range(ARGS.workers):
            b = Backend()
            self.all_procs.append(b)
            w = {"id": "soak%d" % i, "backend": b, "proc": None, "node": None, "churn": Intervals(), "moves": 0}
            self.workers.append(w)
            self.start_client(w, i % len(self.entries))
        for w in self.workers:
            self.wait_up(w, 30)

    def start_node(self, i):
        n = self.nodes[i]
        env = dict(self.node_env, WHT_NODE_ID=n["name"])
        p = Node(env=env, port=n["port"])
        n["port"], n["proc"], n["started_at"], n["warm"] = p.port, p, now(), False
        self.all_procs.append(p)

    def wait_peers(self, idx, timeout=20):
        for i in idx:
            deadline = time.time() + timeout
            while True:
                try:
                    if status(self.nodes[i]["proc"])["peers_up"] == 2:
                        break
                except (OSError, ValueError, KeyError, http.client.HTTPException):
                    pass
                if time.time() > deadline:
                    self.problems.append("%.1fs: node %s did not see 2 peers within %ds"
                                         % (now(), self.nodes[i]["name"], timeout))
                    break
                time.sleep(0.05)

    def start_client(self, w, node_idx):
        url = "http://127.0.0.1:%d" % self.entries[node_idx]["port"]
        c = Client(url, w["id"], w["backend"].port, token=make_token(w["id"]), wait=False)
        c.up_at = None
        self.all_procs.append(c)
        w["proc"], w["node"] = c, node_idx
        threading.Thread(target=self.read_urls, args=(w, c), daemon=True).start()

    def read_urls(self, w, c):
        """whclient prints its URL on each registration: the worker is up (again)."""
        for line in iter(c.p.stdout.readline, b""):
            if line.strip():
                t = now()
                c.up_at = t
                if w["proc"] is c:
                    w["churn"].close_all(max(t, w.get("settle", 0)))

    def wait_up(self, w, timeout):
        deadline = time.time() + timeout
        while w["proc"].up_at is None and time.time() < deadline:
            time.sleep(0.02)
        if w["proc"].up_at is None:
            self.problems.append("%.1fs: worker %s did not register within %ds" % (now(), w["id"], timeout))

    def signal(self, p, sig):
        self.told.add(p.p.pid)
        if p.alive():
            p.p.send_signal(sig)

    def node_rss(self, label, nodes=None):
        for n in nodes or self.nodes:
            p = n["proc"]
            try:
                self.rss.setdefault(n["name"], []).append((round(now(), 1), p.p.pid, rss_kb(p.p.pid), label))
            except (OSError, ValueError):
                pass

    # ---- churn ---------------------------------------------------------------------------

    def churn_worker(self, rng):
        w = rng.choice(self.workers)
        up_nodes = [i for i, n in enumerate(self.entries) if n["proc"].alive()]
        to = rng.choice(up_nodes)
        old = w["proc"]
        how = rng.choice(("term", "kill", "takeover"))
        t_start = now()
        w["churn"].open()
        if how == "takeover":  # the new registration first (on another node if there is one), then the old one stops
            others = [i for i in up_nodes if i != w["node"]] or up_nodes
            self.start_client(w, rng.choice(others))
            self.wait_up(w, 20)
            self.signal(old, signal.SIGTERM)
        else:
            self.signal(old, signal.SIGTERM if how == "term" else signal.SIGKILL)
            try:
                old.p.wait(10)
            except Exception:  # noqa: BLE001 - reported below as a problem
                self.problems.append("%.1fs: whclient %d did not stop within 10 s of SIGTERM" % (now(), old.p.pid))
                old.p.kill()
                old.p.wait()
            self.start_client(w, to)
        w["settle"] = now()
        if w["proc"].up_at is not None:
            w["churn"].close_all(now())
        self.events["worker " + how] += 1
        w["moves"] += 1
        if how == "takeover":
            try:
                old.p.wait(10)
            except Exception:  # noqa: BLE001
                self.problems.append("%.1fs: whclient %d did not stop within 10 s of SIGTERM" % (now(), old.p.pid))
                old.p.kill()
                old.p.wait()
            w["churn"].add(t_start, now())  # the old session's streams end when the old client has gone

    def drain_node(self, rng):
        i = rng.choice([1, 2])  # n1 is never drained: its RSS spans the whole soak
        n = self.nodes[i]
        p = n["proc"]
        n["churn"].open()
        for e in self.entries[3:]:
            e["churn"].open()
        for w in self.workers:
            if w["node"] in (i, 3):  # on that node, or maybe (through the load balancer)
                w["churn"].open()
        self.node_rss("before drain")
        t = time.time()
        n["draining"] = True
        self.signal(p, signal.SIGTERM)
        try:
            p.p.wait(DRAIN_TIMEOUT_S + 15)
        except Exception:  # noqa: BLE001
            self.problems.append("%.1fs: node %s still draining %ds after SIGTERM" % (now(), n["name"],
                                                                                     DRAIN_TIMEOUT_S + 15))
            p.p.kill()
            p.p.wait()
        self.events["node drain"] += 1
        self.events["drain seconds x10"] += int((time.time() - t) * 10)
        if p.p.returncode != 0:
            self.crashes.append("%s pid %d exited %s after a drain (log %s)" % (n["name"], p.p.pid,
                                                                                p.p.returncode, p.log.name))
        time.sleep(rng.uniform(0.2, 2.0))  # down for a moment: refused connections meanwhile
        self.start_node(i)
        n["draining"] = False
        n["restarts"] += 1
        self.wait_peers([i])
        n["churn"].close_all(now())
        for e in self.entries[3:]:
            e["churn"].close_all(now())
        self.node_rss("after restart")

    def check_alive(self):
        for p in self.current_procs():
            if not p.alive() and p.p.pid not in self.told:
                self.told.add(p.p.pid)
                self.crashes.append("%s pid %d exited %s on its own at %.1fs (log %s)"
                                    % (p.name, p.p.pid, p.p.returncode, now(), p.log.name))

    def current_procs(self):
        return ([self.redis] + [n["proc"] for n in self.entries] + [w["proc"] for w in self.workers]
                + [w["backend"] for w in self.workers])

    def churn_loop(self, deadline, rng):
        next_drain = now() + ARGS.drain_every / 2
        next_rss = now() + ARGS.rss_every
        while time.time() < deadline:
            self.check_alive()
            for n in self.nodes:  # the baseline: once the node has served load for a while
                if not n["warm"] and now() - n["started_at"] >= WARMUP:
                    n["warm"] = True
                    self.node_rss("warm", [n])
            # a drain (at most DRAIN_TIMEOUT_S) leaves the restarted node time for its warm RSS baseline
            if (ARGS.drain_every > 0 and now() >= next_drain
                    and time.time() + DRAIN_TIMEOUT_S + 5 + WARMUP + ARGS.churn_every * 1.5 < deadline):
                self.drain_node(rng)
                next_drain = now() + ARGS.drain_every
            elif ARGS.churn_every > 0:
                self.churn_worker(rng)
            if now() >= next_rss:
                self.node_rss("periodic")
                next_rss = now() + ARGS.rss_every
            pause = ARGS.churn_every * rng.uniform(0.5, 1.5) if ARGS.churn_every > 0 else 1.0
            time.sleep(min(pause, max(0, deadline - time.time())))
        self.check_alive()

    def stop_all(self):
        """Clients first, then nodes (a drain each), redis and backends: every exit code is checked."""
        for w in self.workers:
            self.signal(w["proc"], signal.SIGTERM)
        for w in self.workers:
            self.finish(w["proc"])
        for n in self.nodes:
            self.signal(n["proc"], signal.SIGTERM)
        for n in self.nodes:
            self.finish(n["proc"], DRAIN_TIMEOUT_S + 15)
        for p in [self.redis] + [e["proc"] for e in self.entries[3:]] + [w["backend"] for w in self.workers]:
            self.signal(p, signal.SIGTERM)
            p.stop()
        for e in self.entries[3:]:
            shutil.rmtree(e["proc"].dir, ignore_errors=True)

    def finish(self, p, timeout=15):
        try:
            p.p.wait(timeout)
        except Exception:  # noqa: BLE001
            self.problems.append("%s pid %d did not exit within %ds of SIGTERM" % (p.name, p.p.pid, timeout))
            p.p.kill()
            p.p.wait()
        if p.p.returncode not in (0, -9):
            self.crashes.append("%s pid %d exited %s after SIGTERM at the end (log %s)"
                                % (p.name, p.p.pid, p.p.returncode, p.log.name))


# ---- viewers -------------------------------------------------------------------------------

SHA = {}


def want_sha(n):
    if n not in SHA:
        SHA[n] = hashlib.sha256(pattern(n)).hexdigest()
    return SHA[n]


class Outcome(Exception):
    def __init__(self, kind, detail=""):
        super().__init__(kind)
        self.kind, self.detail = kind, detail


def http_req(port, method, path, body=None, headers=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=VIEWER_TIMEOUT)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        if r.status != 200:
            first = data.split(b"\n", 1)[0].decode(errors="replace")[:100]
            raise Outcome("%d %s" % (r.status, first))
        return r, data
    finally:
        c.close()


def op_get(port, wid, rng):
    n = rng.choice((0, 1, 1000, 65536, 300000, 1 << 20))
    r, data = http_req(port, "GET", "/%s/bytes/%d" % (wid, n))
    if len(data) != n or hashlib.sha256(data).hexdigest() != want_sha(n) or r.getheader("X-Sha256") != want_sha(n):
        raise Outcome("wrong content", "GET bytes/%d got %d bytes" % (n, len(data)))


def op_chunked(port, wid, rng):
    n = rng.choice((10000, 200000, 1 << 20))
    r, data = http_req(port, "GET", "/%s/chunked/%d" % (wid, n))
    if hashlib.sha256(data).hexdigest() != want_sha(n) or r.getheader("Transfer-Encoding") != "chunked":
        raise Outcome("wrong content", "chunked/%d got %d bytes" % (n, len(data)))


def op_stream(port, wid, rng):
    k = rng.randint(2, 8)
    _, data = http_req(port, "GET", "/%s/slow?lines=%d" % (wid, k))
    lines = data.decode(errors="replace").splitlines()
    if [x.split(" t=")[0] for x in lines] != ["line %d" % i for i in range(k)]:
        raise Outcome("wrong content", "slow %d lines got %r" % (k, data[:200]))


def op_upload(port, wid, rng):
    n = rng.choice((0, 1, 5000, 100000, 1 << 20, 2 << 20))
    body = os.urandom(n)
    sha = hashlib.sha256(body).hexdigest()
    chunked = rng.random() < 0.5
    # an iterable without a Content-Length: http.client sends it chunked
    payload = (body[i:i + 16384] for i in range(0, n, 16384)) if chunked else body
    hdrs = {}
    if rng.random() < 0.5:
        _, data = http_req(port, "POST", "/%s/mirror" % wid, body=payload, headers=hdrs)
        if data != body:
            raise Outcome("wrong content", "mirror %d bytes (chunked %s) got %d" % (n, chunked, len(data)))
    else:
        _, data = http_req(port, "POST", "/%s/echo/up" % wid, body=payload, headers=hdrs)
        info = json.loads(data)
        if info["body_sha256"] != sha or info["body_len"] != n or info["target"] != "/echo/up":
            raise Outcome("wrong content", "echo %d bytes (chunked %s) got %r" % (n, chunked, data[:200]))


def op_ws(port, wid, rng):
    import websockets

    async def run():
        async with websockets.connect("ws://127.0.0.1:%d/%s/ws" % (port, wid), max_size=4 << 20,
                                      open_timeout=VIEWER_TIMEOUT, close_timeout=10) as ws:
            await ws.send("hello")
            if await ws.recv() != "hello":
                raise Outcome("wrong content", "ws text")
            blob = os.urandom(rng.choice((10, 70000, 1 << 20)))
            await ws.send(blob)
            if await ws.recv() != blob:
                raise Outcome("wrong content", "ws binary %d" % len(blob))
            k = rng.randint(1, 30)
            for i in range(k):
                await ws.send(b"m%d" % i)
            for i in range(k):
                if await ws.recv() != b"m%d" % i:
                    raise Outcome("wrong content", "ws message %d of %d" % (i, k))
            await ws.close(code=4001, reason="bye")
            if ws.close_code == 1006:  # the connection ended without the echoed close frame
                raise Outcome("ws cut", "close code 1006")
            if ws.close_code != 4001:
                raise Outcome("ws close code %s" % ws.close_code)
    try:
        asyncio.run(asyncio.wait_for(run(), VIEWER_TIMEOUT))
    except websockets.exceptions.InvalidStatusCode as e:
        raise Outcome("ws status %d" % e.status_code)
    except (websockets.exceptions.ConnectionClosed, websockets.exceptions.InvalidMessage) as e:
        raise Outcome("ws cut", repr(e))  # InvalidMessage: closed before the handshake's answer
    except asyncio.TimeoutError:
        raise Outcome("timeout")


OPS = (("get", op_get, 4), ("chunked", op_chunked, 2), ("stream", op_stream, 2), ("upload", op_upload, 3),
       ("ws", op_ws, 2))


def classify(exc):
    if isinstance(exc, Outcome):
        return exc.kind, exc.detail
    if isinstance(exc, ConnectionRefusedError):
        return "refused", ""
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "timeout", ""
    if isinstance(exc, (ConnectionError, http.client.IncompleteRead, http.client.RemoteDisconnected,
                        http.client.BadStatusLine, EOFError)):
        return "cut", repr(exc)[:200]
    return "other " + type(exc).__name__, repr(exc)[:200]


def is_churn_kind(kind):
    if kind in CHURN_KINDS:
        return True
    code, _, text = kind.partition(" ")
    return code.isdigit() and any(text.startswith(t) for t in EXPECTED_TEXTS.get(int(code), ()))


class Viewers:
    def __init__(self, soak):
        self.soak = soak
        self.lock = threading.Lock()
        self.counts = collections.defaultdict(collections.Counter)  # op -> outcome -> n
        self.expected = collections.Counter()   # kind -> n
        self.unexpected = collections.Counter()
        self.samples = []                       # the first unexpected errors, in detail
        self.total = 0

    def take(self):
        with self.lock:
            if self.total >= ARGS.max_requests:
                return False
            self.total += 1
            return True

    def run(self, deadline, seed):
        rng = random.Random(seed)
        names = [o for o in OPS for _ in range(o[2]) if o[0] in ARGS.ops.split(",")]
        while time.time() < deadline and self.take():
            name, fn, _ = rng.choice(names)
            entries = self.soak.entries
            via = rng.randrange(len(entries))
            if entries[via]["draining"] and rng.random() < 0.9:  # as a load balancer would, mostly
                via = rng.randrange(len(entries))
            node = entries[via]
            w = rng.choice(self.soak.workers)
            t0 = now()
            try:
                fn(node["port"], w["id"], rng)
                self.record(name, "ok")
            except Exception as e:  # noqa: BLE001 - every failure is classified
                kind, detail = classify(e)
                t1 = now()
                churn = w["churn"].touches(t0, t1) or node["churn"].touches(t0, t1)
                if kind == "refused":
                    churn = node["churn"].touches(t0, t1)
                good = churn and is_churn_kind(kind)
                self.record(name, "expected" if good else "UNEXPECTED", kind, detail,
                            "%.1f-%.1fs (%s UTC) %s via %s to %s (its client on %s)"
                            % (t0, t1, time.strftime("%H:%M:%S", time.gmtime(T0 + t0)), name, node["name"],
                               w["id"], self.soak.entries[w["node"]]["name"]))

    def record(self, op, outcome, kind=None, detail="", where=""):
        with self.lock:
            self.counts[op][outcome] += 1
            if outcome == "expected":
                self.expected[kind] += 1
            elif outcome == "UNEXPECTED":
                self.unexpected[kind] += 1
                if self.unexpected[kind] <= 5:  # the first few of each kind, in detail
                    self.samples.append("%s: %s %s" % (where, kind, detail))


# ---- report --------------------------------------------------------------------------------


def scan_logs(soak):
    reports = []
    for p in soak.all_procs:
        if p.name in ("redis", "backend"):
            continue
        lines = sanitizer_reports(p)
        if lines:
            reports.append({"proc": p.name, "pid": p.p.pid, "log": p.log.name, "lines": lines[:20]})
    return reports


def log_summary(soak):
    """The nodes' and clients' warn and error lines, numbers and ids folded: what the churn looked like
    from their side."""
    kinds = collections.Counter()
    for p in soak.all_procs:
        if p.name not in ("node", "client"):
            continue
        for line in p.output().splitlines():
            parts = line.split(None, 2)
            if len(parts) == 3 and parts[1].lower() in ("warn", "error"):
                kinds["%s %s: %s" % (p.name, parts[1].lower(), re.sub(r"[0-9]+", "N", parts[2])[:110])] += 1
    return kinds


def rss_summary(soak):
    out = {}
    for name, samples in soak.rss.items():
        last_pid = samples[-1][1]
        mine = [s for s in samples if s[1] == last_pid]
        warm = [s for s in mine if s[3] == "warm"] or mine
        out[name] = {"idle_kb": mine[0][2], "start_kb": warm[0][2], "end_kb": mine[-1][2], "pid": last_pid,
                     "samples": [s[:3] for s in samples]}
    return out


def report(soak, viewers, seconds, sanitizer, rss, logs):
    print("soak: %.0f s, %d workers, %d viewers, build %s" % (seconds, ARGS.workers, ARGS.viewers, ARGS.build))
    print("\nchurn events: " + ", ".join("%s %d" % kv for kv in sorted(soak.events.items())))
    print("\n%-8s %8s %9s %11s" % ("request", "ok", "expected", "UNEXPECTED"))
    for op, _, _ in OPS:
        c = viewers.counts[op]
        print("%-8s %8d %9d %11d" % (op, c["ok"], c["expected"], c["UNEXPECTED"]))
    print("\nexpected errors by kind (during churn):")
    for k, v in viewers.expected.most_common():
        print("  %6d  %s" % (v, k))
    print("unexpected errors by kind:")
    for k, v in viewers.unexpected.most_common():
        print("  %6d  %s" % (v, k))
    for s in viewers.samples[:20]:
        print("    " + s)
    print("\nnode RSS (KiB) of each node's last process: idle (before load), start (after %.0f s of load), "
          "end; growth = end - start (n1 is never drained)" % WARMUP)
    print("%-4s %8s %8s %8s %8s %8s %9s" % ("node", "pid", "idle", "start", "end", "growth", "restarts"))
    for name, r in rss.items():
        n = [x for x in soak.nodes if x["name"] == name][0]
        print("%-4s %8d %8d %8d %8d %8d %9d" % (name, r["pid"], r["idle_kb"], r["start_kb"], r["end_kb"],
                                               r["end_kb"] - r["start_kb"], n["restarts"]))
    print("n1 samples (s, KiB): " + " ".join("%.0f:%d" % (s[0], s[2]) for s in rss.get("n1", {}).get("samples", [])))
    print("\nwarn and error lines in node and client logs (numbers folded to N), most frequent first:")
    for k, v in logs.most_common(15):
        print("  %6d  %s" % (v, k))
    print("\nprocesses started: %d; crashes: %d; sanitizer reports: %d; problems: %d"
          % (len(soak.all_procs), len(soak.crashes), len(sanitizer), len(soak.problems)))
    for c in soak.crashes:
        print("  crash: " + c)
    for r in sanitizer:
        print("  sanitizer: %s pid %d (%s):" % (r["proc"], r["pid"], r["log"]))
        for line in r["lines"]:
            print("    " + line)
    for p in soak.problems:
        print("  problem: " + p)


def main():
    seed = ARGS.seed if ARGS.seed is not None else int(time.time())
    rng = random.Random(seed)
    soak = Soak()
    viewers = Viewers(soak)
    try:
        soak.node_rss("idle")
        start = time.time()
        for n in soak.nodes:
            n["started_at"] = now()
        deadline = start + ARGS.seconds
        threads = [threading.Thread(target=viewers.run, args=(deadline, seed + 1 + i), daemon=True)
                   for i in range(ARGS.viewers)]
        for t in threads:
            t.start()
        soak.churn_loop(deadline, rng)
        for t in threads:
            t.join(VIEWER_TIMEOUT + 20)
        hung = sum(1 for t in threads if t.is_alive())
        if hung:
            soak.problems.append("%d viewer threads still busy %ds after the end" % (hung, VIEWER_TIMEOUT + 20))
        seconds = time.time() - start
        soak.node_rss("end")
    finally:
        soak.stop_all()
    sanitizer = scan_logs(soak)
    rss = rss_summary(soak)
    logs = log_summary(soak)
    print("seed %d" % seed)
    report(soak, viewers, seconds, sanitizer, rss, logs)
    rss_bad = [n for n, r in rss.items() if r["end_kb"] - r["start_kb"] > ARGS.rss_slack_mib * 1024]
    result = {"seed": seed, "seconds": seconds, "counts": {k: dict(v) for k, v in viewers.counts.items()},
              "expected": dict(viewers.expected), "unexpected": dict(viewers.unexpected),
              "samples": viewers.samples, "events": dict(soak.events), "rss": rss, "crashes": soak.crashes,
              "sanitizer": sanitizer, "problems": soak.problems, "rss_over_bound": rss_bad,
              "processes": len(soak.all_procs),
              "log_lines": dict(logs.most_common(30))}
    if ARGS.json:
        with open(ARGS.json, "w") as f:
            json.dump(result, f, indent=1)
    keep = {r["log"] for r in sanitizer} | {c.split("(log ")[-1].rstrip(")") for c in soak.crashes}
    keep_all = ARGS.keep_logs or viewers.unexpected or soak.problems  # the logs tell what happened
    if keep_all:
        print("\nlogs kept: " + " ".join(p.log.name for p in soak.all_procs if p.name in ("node", "haproxy")))
        print("(and every client's log: /tmp/wht-client-*.log with 'registered as soakN')")
    for p in soak.all_procs:
        if not keep_all and p.log.name not in keep:
            try:
                os.unlink(p.log.name)
            except OSError:
                pass
    bad = viewers.unexpected or sanitizer or soak.crashes or soak.problems or rss_bad
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
