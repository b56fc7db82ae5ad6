"""The cluster at scale, simulated on one machine (issue 12; results in docs/benchmarks.md,
"Cluster at scale"). Debian's /usr/bin/python3, standard library only.

  cluster_sim.py [--nodes N] [--workers W] [--build DIR] [--tiny] [--load auto|python|whload]
                 [--steady S] [--storm-timeout S] [--redis-restart] [--json FILE] [--keep]

Starts a private redis-server and N whtunnel nodes (Release build: --build, WHT_BUILD_DIR or
build-bench) on 127.0.0.1 ephemeral ports, then W idle workers spread over the nodes by
several load processes (tests/bench/whload when built and --load is not python, else
tests/bench/simload.py; same command line; each process under 18,000 workers, as a process
may hold 20,000 descriptors here). Then:

  steady  Redis commands/s (INFO stats, commandstats), Redis CPU (/proc/PID/stat) over S
          seconds; each node's RSS and route cache (GET /__cluster__: routes, estimated bytes)
  relay   four real whclient workers with a real HTTP backend (tests/integration/backend.py)
          on node 1; a request loop (a bounded count, a deadline) GETs them through the
          other nodes (relayed) during the steady window and during the storm
  storm   node 0 gets SIGTERM: it drains, its workers get GOAWAY and all re-register at once
          on other nodes (the load processes' --reconnect; each process's node list is
          rotated so that the moved workers spread over the other nodes). Measured: Redis
          commands/s and CPU during it (0.5 s samples: mean and peak), the time until every
          moved worker is registered again (the `set` messages on the events channel, heard
          by a subscriber of this script as the nodes hear them), the time until a probe
          round through every other node to a sample of the moved workers is answered by each
          of them from its new node (simload workers answer "<id> <node port>"), the drain's
          duration, relayed requests answered / failed, probe requests answered / failed.

  restart with --redis-restart, after the storm: Redis killed and started again empty on the
          same port; every node re-asserts every worker it holds at once (everything registering
          again). Measured: the time until every record is back, Redis meanwhile, the fewest peers
          any node saw up (a member whose heartbeat waited too long expires), relayed requests.

Prints markdown tables and, last, one line "RESULT <json>" (also written to --json FILE).
--tiny: 3 nodes, 300 workers, short windows (the suite runs it: test_cluster_sim.py).
Every wait has a deadline, every loop a bound; every process started is stopped by pid in a
finally block, and the scratch directory removed.
"""

import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from wsbench import busy_ticks, free_port, make_token, tree_ticks  # noqa: E402

PY = "/usr/bin/python3"
HZ = os.sysconf("SC_CLK_TCK")
SECRET = "cluster-sim-worker-secret"
CLUSTER_SECRET = "cluster-sim-cluster-secret-0123456789"
PREFIX = "wht:"
ID_PREFIX = "cluster-sim-worker-00000000-"  # 28 bytes: ids of 29 to 33 bytes (33 from 10,000 on)


def log(msg):
    sys.stderr.write("[%s] %s\n" % (time.strftime("%H:%M:%S"), msg))
    sys.stderr.flush()


def wait_for(pred, timeout, what, step=0.05):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            r = pred()
            if r:
                return r
        except Exception as e:  # noqa: BLE001 - polled
            last = e
        time.sleep(step)
    raise TimeoutError("timed out waiting for %s (last error: %r)" % (what, last))


def port_open(port):
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def proc_ticks(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            st = f.read()
    except OSError:
        return 0
    v = st[st.rindex(")") + 2:].split()
    return int(v[11]) + int(v[12])


def rss_kib(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


# ---- a minimal RESP client --------------------------------------------------------------------


class Resp:
    def __init__(self, port, timeout=10):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def close(self):
        self.sock.close()

    def send(self, *args):
        out = b"*%d\r\n" % len(args)
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        self.sock.sendall(out)

    def line(self):
        for _ in range(100000):
            i = self.buf.find(b"\r\n")
            if i >= 0:
                ln, self.buf = self.buf[:i], self.buf[i + 2:]
                return ln
            d = self.sock.recv(65536)
            if not d:
                raise ConnectionError("redis closed the connection")
            self.buf += d
        raise ValueError("line too long")

    def read(self):
        ln = self.line()
        t, rest = ln[:1], ln[1:]
        if t == b"+":
            return rest.decode()
        if t == b"-":
            raise RuntimeError(rest.decode())
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self.buf) < n + 2:
                d = self.sock.recv(max(65536, n + 2 - len(self.buf)))
                if not d:
                    raise ConnectionError("redis closed the connection")
                self.buf += d
            v, self.buf = self.buf[:n], self.buf[n + 2:]
            return v
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        raise ValueError("bad RESP %r" % ln)

    def cmd(self, *args):
        self.send(*args)
        return self.read()

    def info(self, section):
        out = {}
        for ln in self.cmd("INFO", section).decode().splitlines():
            if ":" in ln and not ln.startswith("#"):
                k, v = ln.split(":", 1)
                out[k] = v
        return out


def commandstats(r):
    """{command: (calls, usec)} from INFO commandstats."""
    out = {}
    for k, v in r.info("commandstats").items():
        if k.startswith("cmdstat_"):
            f = dict(x.split("=") for x in v.split(","))
            out[k[len("cmdstat_"):]] = (int(f["calls"]), int(f["usec"]))
    return out


class Subscriber(threading.Thread):
    """Records (monotonic time, kind, id, node) of every message on the events channel."""

    def __init__(self, port, channel):
        super().__init__(daemon=True)
        self.r = Resp(port, timeout=10)
        self.r.cmd("SUBSCRIBE", channel)
        self.r.sock.settimeout(None)  # a timeout inside a message would lose its framing
        self.events = []
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            try:
                m = self.r.read()
            except (OSError, ConnectionError, ValueError):
                return
            t = time.monotonic()
            if isinstance(m, list) and len(m) == 3 and m[0] == b"message":
                f = m[2].decode().split(" ")
                if f[0] in ("set", "del") and len(f) == 4:
                    self.events.append((t, f[0], f[1], f[3]))


# ---- processes --------------------------------------------------------------------------------


class Procs:
    def __init__(self, scratch):
        self.scratch = scratch
        self.all = []

    def start(self, name, args, env=None, stdout=None, stdin=subprocess.DEVNULL, limit_fds=None):
        logf = open(os.path.join(self.scratch, name + ".log"), "wb")
        full = dict(os.environ)
        full.update(env or {})

        def pre():
            if limit_fds:
                import resource
                resource.setrlimit(resource.RLIMIT_NOFILE, (limit_fds, limit_fds))

        p = subprocess.Popen(args, env=full, stdout=stdout or logf, stderr=logf, stdin=stdin,
                             preexec_fn=pre if limit_fds else None)
        p.name = name
        p.logpath = logf.name
        self.all.append(p)
        return p

    def stop(self, p, sig=signal.SIGTERM, timeout=10):
        if p.poll() is None:
            try:
                p.send_signal(sig)
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        return p.returncode

    def stop_all(self):
        """SIGTERM to every process still running (newest first), then SIGKILL to what is left after
        10 s (a draining node ends its drain at a second SIGTERM)."""
        live = [p for p in reversed(self.all) if p.poll() is None]
        for p in live:
            try:
                if p.stdin:
                    p.stdin.close()
            except OSError:
                pass
            p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for p in live:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for p in live:
            if p.poll() is None:
                p.kill()
        for p in live:  # a process with 10,000 sockets can take seconds to go on a busy machine
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                log("%s (pid %d) still there after SIGKILL" % (p.name, p.pid))


def tail(path, n=15):
    try:
        with open(path, "rb") as f:
            return b"\n".join(f.read().splitlines()[-n:]).decode(errors="replace")
    except OSError:
        return ""


def http_get(port, path, timeout=5):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def cluster_status(port):
    st, body = http_get(port, "/__cluster__")
    if st != 200:
        raise RuntimeError("/__cluster__ answered %d" % st)
    return json.loads(body)


class LoadProc:
    """One load process (whload or simload.py); a thread keeps its last stats line."""

    def __init__(self, procs, name, args):
        self.p = procs.start(name, args, stdout=subprocess.PIPE, stdin=subprocess.PIPE)
        self.ready = None
        self.last = {}
        self.lines = []
        threading.Thread(target=self.reader, daemon=True).start()

    def reader(self):
        for raw in self.p.stdout:
            ln = raw.decode(errors="replace").strip()
            self.lines.append(ln)
            if ln.startswith("ready "):
                self.ready = ln
            if ln.startswith(("stats ", "done ")):
                self.last = dict(kv.split("=", 1) for kv in ln.split()[1:] if "=" in kv)
            if len(self.lines) > 1000:
                del self.lines[:500]

    def stat(self, key):
        try:
            return int(self.last.get(key, 0))
        except ValueError:
            return 0


# ---- the relayed request loop -----------------------------------------------------------------


class RequestLoop(threading.Thread):
    """Bounded loop of GETs over keep-alive connections: each (via port, path, check) in turn.
    check(status, body) says whether the answer is right."""

    def __init__(self, targets, max_requests, deadline_s):
        super().__init__(daemon=True)
        self.targets = targets
        self.max = max_requests
        self.deadline = time.monotonic() + deadline_s
        self.stop = threading.Event()
        self.ok = 0
        self.failed = 0
        self.errors = {}

    def run(self):
        conns = {}
        i = 0
        while not self.stop.is_set() and i < self.max and time.monotonic() < self.deadline:
            port, path, check = self.targets[i % len(self.targets)]
            i += 1
            try:
                c = conns.get(port)
                if c is None:
                    c = conns[port] = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                c.request("GET", path)
                r = c.getresponse()
                body = r.read()
                if r.getheader("Connection", "").lower() == "close":
                    c.close()
                    conns.pop(port, None)
                if check(r.status, body):
                    self.ok += 1
                else:
                    self.failed += 1
                    key = "%d %s" % (r.status, body[:60])
                    self.errors[key] = self.errors.get(key, 0) + 1
            except (OSError, http.client.HTTPException) as e:
                conns.pop(port, None)
                self.failed += 1
                key = type(e).__name__
                self.errors[key] = self.errors.get(key, 0) + 1
        for c in conns.values():
            c.close()


# ---- the simulation ---------------------------------------------------------------------------


class Sim:
    def __init__(self, a, scratch):
        self.a = a
        self.scratch = scratch
        self.procs = Procs(scratch)
        self.build = a.build
        self.res = {"nodes": a.nodes, "workers": a.workers}

    def node_env(self, i, port):
        return {"PORT": str(port), "WHT_LISTEN_ADDR": "127.0.0.1", "WHT_ADMIN_ADDR": "127.0.0.1:0",
                "TASKCLUSTER_PROXY_SECRET_A": SECRET, "WHT_LOG_LEVEL": "warn",
                "REDIS_URL": "redis://127.0.0.1:%d" % self.redis_port, "WHT_NODE_ID": "n%d" % i,
                "WHT_PEER_ADDR": "127.0.0.1:0", "WHT_CLUSTER_SECRET": CLUSTER_SECRET,
                "WHT_MAX_WORKERS": "18000", "WHT_MAX_CONNECTIONS": "1500", "WHT_DRAIN_TIMEOUT": "120s"}

    def start_redis(self):
        self.redis_port = free_port()
        self.redis = self.procs.start("redis", ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1",
                                                "--save", "", "--appendonly", "no", "--maxclients", "1000"])
        wait_for(lambda: port_open(self.redis_port), 10, "redis to listen")
        self.r = Resp(self.redis_port)
        self.res["redis_version"] = self.r.info("server").get("redis_version")

    def start_nodes(self):
        whtunnel = os.path.join(self.build, "node", "whtunnel")
        self.ports, self.nodes = [], []
        for i in range(self.a.nodes):
            port = free_port()
            p = self.procs.start("node%d" % i, [whtunnel], env=self.node_env(i, port))
            self.ports.append(port)
            self.nodes.append(p)
        for i, port in enumerate(self.ports):
            wait_for(lambda: port_open(port) or self.nodes[i].poll() is not None, 15, "node %d to listen" % i)
            if self.nodes[i].poll() is not None:
                raise RuntimeError("node %d exited: %s" % (i, tail(self.nodes[i].logpath)))
        n = self.a.nodes
        for i, port in enumerate(self.ports):
            wait_for(lambda: cluster_status(port)["peers_up"] >= n - 1, 30, "node %d to see its %d peers" % (i, n - 1))

    def start_relay_workers(self):
        """Four whclient workers with a real backend, on node 1 (node 0 is drained later)."""
        backend = os.path.join(ROOT, "tests", "integration", "backend.py")
        self.backend_port = free_port()
        self.procs.start("backend", [PY, backend, str(self.backend_port)])
        wait_for(lambda: port_open(self.backend_port), 10, "backend to listen")
        whclient = os.path.join(self.build, "client", "whclient")
        self.relay_ids = ["relay%d" % k for k in range(4)]
        for wid in self.relay_ids:
            url_file = os.path.join(self.scratch, wid + ".url")
            self.procs.start("client-" + wid, [whclient, "ws://127.0.0.1:%d" % self.ports[1], wid,
                                                str(self.backend_port), "--token", make_token(SECRET, wid),
                                                "--log-level", "warn", "--out-file", url_file])
            wait_for(lambda: os.path.exists(url_file) and os.path.getsize(url_file) > 0, 20, "whclient %s" % wid)

    def load_tool(self):
        whload = os.environ.get("WHT_WHLOAD") or next(
            (p for p in (os.path.join(self.build, "tests", "bench", "whload"), os.path.join(self.build, "whload"))
             if os.access(p, os.X_OK)), None)
        if self.a.load == "whload" and not whload:
            raise RuntimeError("--load whload: no whload built in %s (or WHT_WHLOAD)" % self.build)
        # at nice 10: on a real deployment the workers are on other machines; here they should take
        # the CPU the nodes and Redis leave
        if self.a.load != "python" and whload:
            return "whload", ["nice", "-n", "10", whload]
        return "simload.py", ["nice", "-n", "10", PY, os.path.join(HERE, "simload.py")]

    def node_list(self, j):
        """Node 0 first, then the others rotated by j: the successor of node 0 (where its workers go on
        --reconnect) differs from one load process to the next."""
        others = self.ports[1:]
        k = j % len(others)
        order = [self.ports[0]] + others[k:] + others[:k]
        return ",".join("127.0.0.1:%d" % p for p in order)

    def start_load(self):
        name, cmd = self.load_tool()
        self.res["load_tool"] = name
        w = self.a.workers
        nproc = max(self.a.nodes - 1, -(-w // 15000))
        per = -(-w // nproc)
        self.loads = []
        first = 0
        t0 = time.monotonic()
        r0 = self.redis_sample()
        for j in range(nproc):
            count = min(per, w - first)
            if count <= 0:
                break
            args = cmd + ["workers", "--nodes", self.node_list(j), "--count", str(count), "--secret", SECRET,
                          "--prefix", ID_PREFIX, "--first", str(first), "--concurrency", "256", "--reconnect",
                          "--stats-every", "1", "--hold", "86400", "--timeout", "300"]
            self.loads.append(LoadProc(self.procs, "load%d" % j, args))
            first += count
        # probe workers: simload.py always (they answer requests); 1 in len(nodes) starts on node 0
        nprobe = self.a.probes * self.a.nodes
        self.probe = LoadProc(self.procs, "probe", ["nice", "-n", "10", PY, os.path.join(HERE, "simload.py"),
                                                    "workers", "--nodes",
                                                    self.node_list(0), "--count", str(nprobe), "--secret", SECRET,
                                                    "--prefix", "probe", "--reconnect", "--stats-every", "1",
                                                    "--hold", "86400", "--timeout", "300"])
        self.probe_ids = ["probe%d" % i for i in range(0, nprobe, self.a.nodes)]
        self.res["load_processes"] = len(self.loads)
        bound = 60 + w / 200.0
        for lp in self.loads + [self.probe]:
            wait_for(lambda: lp.ready or lp.p.poll() is not None, bound - (time.monotonic() - t0),
                     "%s ready" % lp.p.name,
                     step=0.2)
            if not lp.ready:
                raise RuntimeError("%s exited: %s" % (lp.p.name, tail(lp.p.logpath)))
        r1 = self.redis_sample()
        nreg = w + nprobe
        self.res["registration"] = {
            "redis_cpu_us_per_registration": round(1e6 * (r1["ticks"] - r0["ticks"]) / HZ / nreg, 1),
            "redis_commands_per_registration": round((r1["cmds"] - r0["cmds"]) / nreg, 2),
            "redis_out_bytes_per_registration": round((r1["out"] - r0["out"]) / nreg),
            "redis_in_bytes_per_registration": round((r1["in"] - r0["in"]) / nreg)}
        self.res["register_seconds"] = round(time.monotonic() - t0, 1)
        self.res["register_rate"] = round(w / (time.monotonic() - t0))
        log("%d workers registered in %.1f s (%s, %d processes)" % (w, time.monotonic() - t0, name, len(self.loads)))
        held = lambda: sum(cluster_status(p)["held"] for p in self.ports)  # noqa: E731
        total = w + nprobe + len(self.relay_ids)
        wait_for(lambda: held() >= total, 60, "every node to hold its workers in the registry", step=0.5)

    def node_stats(self):
        rows = []
        for i, port in enumerate(self.ports):
            if self.nodes[i].poll() is not None:
                continue
            st = cluster_status(port)
            rows.append({"node": i, "workers": st["workers"], "held": st["held"], "routes": st["cache_routes"],
                         "cache_bytes": st["cache_bytes"], "rss_kib": rss_kib(self.nodes[i].pid),
                         "relayed_in": st["relayed_in"], "relayed_out": st["relayed_out"],
                         "relay_misses": st["relay_misses"]})
        return rows

    def redis_sample(self):
        s = self.r.info("stats")
        return {"t": time.monotonic(), "cmds": int(s["total_commands_processed"]),
                "out": int(s["total_net_output_bytes"]), "in": int(s["total_net_input_bytes"]),
                "ticks": proc_ticks(self.redis.pid)}

    def relay_targets(self, vias):
        def check(status, body):
            return status == 200 and len(body) == 64
        return [(self.ports[v], "/%s/bytes/64" % wid, check) for v in vias for wid in self.relay_ids]

    def steady(self):
        a = self.a
        settle = 2 if a.tiny else 10
        time.sleep(settle)
        vias = [i for i in range(self.a.nodes) if i != 1]
        loop = RequestLoop(self.relay_targets(vias), 10 ** 6, a.steady + 30)
        cs0, s0 = commandstats(self.r), self.redis_sample()
        nt0 = [proc_ticks(p.pid) for p in self.nodes]
        loop.start()
        time.sleep(a.steady)
        loop.stop.set()
        cs1, s1 = commandstats(self.r), self.redis_sample()
        nt1 = [proc_ticks(p.pid) for p in self.nodes]
        loop.join(15)
        dt = s1["t"] - s0["t"]
        # the request loop's own lookups are cached: no command; what Redis does is the nodes' upkeep
        self.res["steady"] = {
            "seconds": round(dt, 1),
            "commands_per_s": round((s1["cmds"] - s0["cmds"]) / dt, 1),
            "by_command": {k: round((v[0] - cs0.get(k, (0, 0))[0]) / dt, 1) for k, v in cs1.items()
                           if v[0] - cs0.get(k, (0, 0))[0] > 0},
            "redis_cpu_pct": round(100.0 * (s1["ticks"] - s0["ticks"]) / HZ / dt, 2),
            "redis_out_kib_s": round((s1["out"] - s0["out"]) / 1024 / dt, 1),
            "node_cpu_pct": [round(100.0 * (b - c) / HZ / dt, 1) for b, c in zip(nt1, nt0)],
            "relayed_ok": loop.ok, "relayed_failed": loop.failed, "relayed_errors": loop.errors,
            "relayed_per_s": round(loop.ok / dt, 0),
        }
        self.res["nodes_steady"] = self.node_stats()
        mem = self.r.info("memory")
        self.res["redis_used_memory"] = int(mem["used_memory"])
        self.res["redis_keys"] = self.r.cmd("DBSIZE")
        self.res["evalsha_usec_per_call_registration"] = None
        ev = cs1.get("evalsha")
        if ev:
            self.res["evalsha_calls_total"] = ev[0]
            self.res["evalsha_usec_per_call"] = round(ev[1] / max(ev[0], 1), 2)

    def probe_round(self, vias, moved_from_port):
        """One request through every via node (one keep-alive connection each) to every probe id:
        (answered by the worker from a node other than moved_from_port, other answers)."""
        good = bad = 0
        for v in vias:
            c = None
            for wid in self.probe_ids:
                try:
                    if c is None:
                        c = http.client.HTTPConnection("127.0.0.1", self.ports[v], timeout=10)
                    c.request("GET", "/%s/p" % wid)
                    r = c.getresponse()
                    body = r.read()
                    if r.getheader("Connection", "").lower() == "close":
                        c.close()
                        c = None
                    f = body.decode(errors="replace").split()
                    if r.status == 200 and len(f) == 2 and f[0] == wid and int(f[1]) != moved_from_port:
                        good += 1
                    else:
                        bad += 1
                except (OSError, http.client.HTTPException, ValueError):
                    if c is not None:
                        c.close()
                    c = None
                    bad += 1
            if c is not None:
                c.close()
        return good, bad

    def relayed_in(self, i):
        """Requests relayed into node i so far; None once it is gone (or, draining, closes on us)."""
        if self.nodes[i].poll() is not None:
            return None
        try:
            return cluster_status(self.ports[i])["relayed_in"]
        except (OSError, ValueError, RuntimeError, http.client.HTTPException):
            return None

    def storm(self):
        a = self.a
        d = 0
        vias = [i for i in range(a.nodes) if i not in (0, 1)]
        moved = cluster_status(self.ports[d])["held"]
        self.res["storm"] = st = {"moved": moved}
        sub = Subscriber(self.redis_port, PREFIX + "events:0")
        sub.start()
        time.sleep(0.3)
        loop = RequestLoop(self.relay_targets(vias), 10 ** 6, a.storm_timeout + 30)
        samples = [self.redis_sample()]
        nt0 = [proc_ticks(p.pid) for p in self.nodes]
        reconnects0 = sum(lp.stat("reconnects") for lp in self.loads)
        loop.start()
        time.sleep(1.0)
        cs0 = commandstats(self.r)
        t0 = time.monotonic()
        samples.append(self.redis_sample())
        self.nodes[d].send_signal(signal.SIGTERM)
        probe_total = [0, 0]
        timeline = []
        routed_at = None
        all_set_at = None
        drained_at = None
        deadline = t0 + a.storm_timeout
        next_sample = t0 + 0.5
        rounds = 0
        while time.monotonic() < deadline and rounds < 10000:
            now = time.monotonic()
            if now >= next_sample:
                samples.append(self.redis_sample())
                timeline.append((round(now - t0, 1), sum(lp.stat("open") for lp in self.loads)))
                next_sample = now + 0.5
            if drained_at is None and self.nodes[d].poll() is not None:
                drained_at = time.monotonic()
            if all_set_at is None:
                ids = {e[2] for e in sub.events if e[1] == "set" and e[0] >= t0}
                if len(ids) >= moved:
                    all_set_at = max(e[0] for e in sub.events if e[1] == "set")
            if routed_at is None:
                rin0 = self.relayed_in(d)
                r0 = time.monotonic()
                good, bad = self.probe_round(vias, self.ports[d])
                rounds += 1
                probe_total[0] += good
                probe_total[1] += bad
                rin1 = self.relayed_in(d) if rin0 is not None else None
                # every probe answered from its new node, and (while node 0 is still up) none relayed via it
                if bad == 0 and (rin0 is None or rin1 is None or rin1 == rin0) and all_set_at is not None:
                    routed_at = r0
                    st["routed_round_s"] = [round(r0 - t0, 2), round(time.monotonic() - t0, 2)]
            else:
                time.sleep(0.1)
            if routed_at is not None and all_set_at is not None and drained_at is not None and \
                    now - max(routed_at, all_set_at) > 2:
                break
        t_end = time.monotonic()
        samples.append(self.redis_sample())
        cs1 = commandstats(self.r)
        st["commands_during"] = {k: v[0] - cs0.get(k, (0, 0))[0] for k, v in cs1.items()
                                 if v[0] - cs0.get(k, (0, 0))[0] > 0}
        st["seconds_measured"] = round(t_end - t0, 1)
        loop.stop.set()
        loop.join(15)
        sub.stop.set()
        nt1 = [proc_ticks(p.pid) if p.poll() is None else t for p, t in zip(self.nodes, nt0)]
        # every worker registered again (the load processes' stats) within the bound
        total = a.workers
        try:
            wait_for(lambda: sum(lp.stat("open") for lp in self.loads) >= total, 30, "every worker open again", 0.5)
            st["all_open_again"] = True
        except TimeoutError:
            st["all_open_again"] = False
        st["open_after"] = sum(lp.stat("open") for lp in self.loads)
        st["reconnects"] = sum(lp.stat("reconnects") for lp in self.loads) - reconnects0
        st["load_failed"] = sum(lp.stat("failed") for lp in self.loads)
        st["open_timeline"] = timeline[:400]
        st["load_errors"] = [ln for lp in self.loads for ln in tail(lp.p.logpath, 3).splitlines() if ln][:12]
        st["all_registered_s"] = round(all_set_at - t0, 2) if all_set_at else None
        st["routed_everywhere_s"] = round(routed_at - t0, 2) if routed_at else None
        st["drain_s"] = round(drained_at - t0, 2) if drained_at else None
        st["sets_heard"] = len({e[2] for e in sub.events if e[1] == "set" and e[0] >= t0})
        st["probe_rounds"] = rounds
        st["probe_ok"], st["probe_bad"] = probe_total
        st["relayed_ok"], st["relayed_failed"], st["relayed_errors"] = loop.ok, loop.failed, loop.errors
        # Redis during the storm: from the signal to the last registration (at least 0.5 s)
        end = max(all_set_at or t_end, t0 + 0.5)
        win = [s for s in samples if t0 - 0.01 <= s["t"] <= end + 0.51]
        if len(win) >= 2:
            dt = win[-1]["t"] - win[0]["t"]
            st["window_s"] = round(dt, 2)
            st["commands_per_s"] = round((win[-1]["cmds"] - win[0]["cmds"]) / dt)
            st["redis_cpu_pct"] = round(100.0 * (win[-1]["ticks"] - win[0]["ticks"]) / HZ / dt, 1)
            st["redis_out_mib_s"] = round((win[-1]["out"] - win[0]["out"]) / 1048576 / dt, 2)
        peaks = [((b["cmds"] - c["cmds"]) / (b["t"] - c["t"]),
                  100.0 * (b["ticks"] - c["ticks"]) / HZ / (b["t"] - c["t"]))
                 for c, b in zip(samples, samples[1:]) if b["t"] - c["t"] > 0.2]
        if peaks:
            st["peak_commands_per_s"] = round(max(p[0] for p in peaks))
            st["peak_redis_cpu_pct"] = round(max(p[1] for p in peaks), 1)
        dtn = t_end - t0 + 1.0
        st["node_cpu_pct"] = [round(100.0 * (b - c) / HZ / dtn, 1) for b, c in zip(nt1, nt0)]
        self.res["nodes_after"] = self.node_stats()

    def redis_restart(self):
        """Redis killed and started again empty on the same port: every node re-asserts every worker
        it holds at once (each a write and a `set` to every node): everything registering again."""
        a = self.a
        live = [i for i in range(a.nodes) if self.nodes[i].poll() is None]
        vias = [i for i in live if i != 1]
        # a record per worker, and per live node its member and info keys, and the counter and member set
        want = a.workers + self.a.probes * a.nodes + len(self.relay_ids) + 2 * len(live) + 2
        self.res["restart"] = rs = {"keys_expected": want}
        loop = RequestLoop(self.relay_targets(vias), 10 ** 6, 150)
        loop.start()
        time.sleep(1.0)
        self.r.close()
        self.redis.kill()
        self.redis.wait(10)
        t0 = time.monotonic()
        self.redis = self.procs.start("redis2", ["redis-server", "--port", str(self.redis_port), "--bind",
                                                 "127.0.0.1", "--save", "", "--appendonly", "no", "--maxclients",
                                                 "1000"])
        wait_for(lambda: port_open(self.redis_port), 10, "redis to listen again")
        self.r = Resp(self.redis_port)
        rs["redis_up_s"] = round(time.monotonic() - t0, 2)
        samples = [self.redis_sample()]
        min_peers = {i: len(live) - 1 for i in live}
        done_at = None
        deadline = time.monotonic() + 120
        for _ in range(2400):
            if time.monotonic() > deadline:
                break
            time.sleep(0.5)
            samples.append(self.redis_sample())
            for i in live:
                try:
                    min_peers[i] = min(min_peers[i], cluster_status(self.ports[i])["peers_up"])
                except (OSError, ValueError, RuntimeError, http.client.HTTPException):
                    pass
            n = self.r.cmd("DBSIZE")
            if done_at is None and n >= want:
                done_at = time.monotonic()
            if done_at is not None and time.monotonic() - done_at > 3:
                break
        loop.stop.set()
        loop.join(15)
        rs["keys_back"] = self.r.cmd("DBSIZE")
        rs["all_back_s"] = round(done_at - t0, 2) if done_at else None
        end = [x for x in samples if done_at is None or x["t"] <= done_at + 0.51]
        dt = end[-1]["t"] - end[0]["t"]
        if dt > 0:
            rs["commands_per_s"] = round((end[-1]["cmds"] - end[0]["cmds"]) / dt)
            rs["redis_cpu_pct"] = round(100.0 * (end[-1]["ticks"] - end[0]["ticks"]) / HZ / dt, 1)
            rs["redis_out_mib"] = round((end[-1]["out"] - end[0]["out"]) / 1048576, 1)
        rs["min_peers_up"] = min(min_peers.values())
        rs["peers_expected"] = len(live) - 1
        rs["relayed_ok"], rs["relayed_failed"], rs["relayed_errors"] = loop.ok, loop.failed, loop.errors

    def run(self):
        a = self.a
        cpu0 = {"t": time.monotonic(), "busy": busy_ticks(), "tree": tree_ticks(os.getpid())}
        self.res["load_average_start"] = open("/proc/loadavg").read().split()[:3]
        self.start_redis()
        self.start_nodes()
        log("redis and %d nodes up" % a.nodes)
        self.start_relay_workers()
        self.start_load()
        self.steady()
        log("steady state measured")
        self.storm()
        log("storm measured")
        if a.redis_restart:
            self.redis_restart()
            log("redis restart measured")
        wall = time.monotonic() - cpu0["t"]
        other = (busy_ticks() - cpu0["busy"]) - (tree_ticks(os.getpid()) - cpu0["tree"])
        self.res["other_load_pct"] = round(max(0.0, 100.0 * other / HZ / wall / os.cpu_count()), 0)
        self.res["load_average_end"] = open("/proc/loadavg").read().split()[:3]
        self.res["seconds"] = round(wall, 1)


def table(rows, cols):
    out = ["| " + " | ".join(c[0] for c in cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        out.append("| " + " | ".join(str(c[1](r)) for c in cols) + " |")
    return "\n".join(out)


def report(res):
    st, sd = res.get("storm", {}), res.get("steady", {})
    print("## Cluster at scale: %d nodes, %d workers (%s, %s processes), redis %s" %
          (res["nodes"], res["workers"], res.get("load_tool"), res.get("load_processes"), res.get("redis_version")))
    print()
    print("machine: %d cores, load average %s at start, %s at end; other processes used %s %% of the machine" %
          (os.cpu_count(), " ".join(res["load_average_start"]), " ".join(res.get("load_average_end", [])),
           res.get("other_load_pct")))
    print("registration: %s s (%s workers/s); per registration: %s" % (
        res.get("register_seconds"), res.get("register_rate"), json.dumps(res.get("registration"))))
    print()
    print(table([
        ("Redis commands/s", sd.get("commands_per_s"), st.get("commands_per_s"), st.get("peak_commands_per_s")),
        ("Redis CPU (% of a core)", sd.get("redis_cpu_pct"), st.get("redis_cpu_pct"), st.get("peak_redis_cpu_pct")),
        ("Redis output (KiB/s)", sd.get("redis_out_kib_s"), round(st.get("redis_out_mib_s", 0) * 1024, 1), "-"),
        ("relayed requests answered / failed", "%s / %s" % (sd.get("relayed_ok"), sd.get("relayed_failed")),
         "%s / %s" % (st.get("relayed_ok"), st.get("relayed_failed")), "-"),
    ], [("", lambda r: r[0]), ("steady (%s s)" % sd.get("seconds"), lambda r: r[1]),
        ("storm (mean over %s s)" % st.get("window_s"), lambda r: r[2]), ("storm peak (0.5 s)", lambda r: r[3])]))
    print()
    print("steady commands/s by command: %s" % json.dumps(sd.get("by_command")))
    print("Redis: %s keys, used_memory %.1f MiB; EVALSHA so far %s calls, %s us per call" % (
        res.get("redis_keys"), res.get("redis_used_memory", 0) / 1048576, res.get("evalsha_calls_total"),
        res.get("evalsha_usec_per_call")))
    print()
    print(table([
        ("workers moved (held by node 0)", st.get("moved")),
        ("re-registrations heard (`set` messages)", st.get("sets_heard")),
        ("every moved worker registered again after", "%s s" % st.get("all_registered_s")),
        ("every node routes every probed worker to its new node after", "%s s" % st.get("routed_everywhere_s")),
        ("(that probe round ran from / to)", "%s s" % st.get("routed_round_s")),
        ("node 0 drained and exited after", "%s s" % st.get("drain_s")),
        ("probe requests to moved workers answered / failed", "%s / %s (%s rounds)" % (
            st.get("probe_ok"), st.get("probe_bad"), st.get("probe_rounds"))),
        ("workers open again / reconnects / failed", "%s / %s / %s" % (
            st.get("open_after"), st.get("reconnects"), st.get("load_failed"))),
    ], [("storm: node 0 drained (SIGTERM)", lambda r: r[0]), ("", lambda r: r[1])]))
    print()
    cols = [("node", lambda r: r["node"]), ("workers", lambda r: r["workers"]),
            ("routes cached", lambda r: r["routes"]),
            ("cache bytes (estimate)", lambda r: r["cache_bytes"]),
            ("bytes/route", lambda r: round(r["cache_bytes"] / r["routes"]) if r["routes"] else "-"),
            ("RSS MiB", lambda r: round(r["rss_kib"] / 1024, 1))]
    print("nodes in steady state:")
    print(table(res.get("nodes_steady", []), cols))
    print()
    print("nodes after the storm:")
    print(table(res.get("nodes_after", []), cols))
    print()
    print("commands during the storm (%s s measured): %s" % (st.get("seconds_measured"),
                                                             json.dumps(st.get("commands_during"))))
    if st.get("load_errors"):
        print("load tools' first errors: %s" % json.dumps(st["load_errors"]))
    print("workers open during the storm (s, open): %s" %
          " ".join("%s:%s" % tuple(x) for x in st.get("open_timeline", [])[:60]))
    if st.get("relayed_errors"):
        print("relayed failures during the storm: %s" % json.dumps(st["relayed_errors"]))
    rs = res.get("restart")
    if rs:
        print()
        print(table([
            ("keys back in Redis (expected)", "%s (%s)" % (rs.get("keys_back"), rs.get("keys_expected"))),
            ("every record back after the restart", "%s s" % rs.get("all_back_s")),
            ("Redis meanwhile: commands/s, CPU, output", "%s, %s %%, %s MiB" % (
                rs.get("commands_per_s"), rs.get("redis_cpu_pct"), rs.get("redis_out_mib"))),
            ("fewest peers any node saw up (of)", "%s (%s)" % (rs.get("min_peers_up"), rs.get("peers_expected"))),
            ("relayed requests answered / failed", "%s / %s %s" % (
                rs.get("relayed_ok"), rs.get("relayed_failed"),
                json.dumps(rs.get("relayed_errors")) if rs.get("relayed_errors") else "")),
        ], [("Redis killed and started empty", lambda r: r[0]), ("", lambda r: r[1])]))
    print("RESULT " + json.dumps(res, sort_keys=True))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=10)
    ap.add_argument("--workers", type=int, default=100000)
    ap.add_argument("--build", default=os.environ.get("WHT_BUILD_DIR") or os.path.join(ROOT, "build-bench"))
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--load", choices=("auto", "python", "whload"), default="auto")
    ap.add_argument("--steady", type=float, default=30.0)
    ap.add_argument("--storm-timeout", type=float, default=120.0)
    ap.add_argument("--probes", type=int, default=20, help="probed moved workers (default 20)")
    ap.add_argument("--json")
    ap.add_argument("--redis-restart", action="store_true",
                    help="after the storm, kill Redis and start it empty: every node re-asserts everything")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory (logs)")
    a = ap.parse_args()
    if a.tiny:
        a.nodes, a.workers, a.steady, a.probes = 3, 300, 3.0, 5
    if not 3 <= a.nodes <= 64 or not 1 <= a.workers <= 500000:
        ap.error("--nodes 3..64, --workers 1..500000")
    for t in ("redis-server",):
        if not shutil.which(t):
            sys.exit("cluster_sim: %s is missing" % t)
    if not os.access(os.path.join(a.build, "node", "whtunnel"), os.X_OK):
        sys.exit("cluster_sim: no whtunnel in %s (build it: cmake -B build-bench -DCMAKE_BUILD_TYPE=Release)" % a.build)
    scratch = tempfile.mkdtemp(prefix="wht-clsim.")
    sim = Sim(a, scratch)
    rc = 0
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        sim.run()
    except Exception as e:  # noqa: BLE001 - reported with the processes' logs, then cleaned up
        log("failed: %r" % e)
        for p in sim.procs.all:
            log("--- %s (pid %d, exit %s):\n%s" % (p.name, p.pid, p.poll(), tail(p.logpath, 8)))
        rc = 1
    finally:
        sim.procs.stop_all()
        if a.keep:
            log("logs kept in %s" % scratch)
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    if rc == 0:
        report(sim.res)
        if a.json:
            with open(a.json, "w") as f:
                json.dump(sim.res, f, sort_keys=True, indent=1)
    return rc


if __name__ == "__main__":
    sys.exit(main())
