#!/usr/bin/python3
"""Faults and partitions, measured: real nodes, Redis, HAProxy, whclient and
backends; faults made with signals, iptables inside network namespaces and
Redis settings; a bounded viewer load loop counts what every viewer saw.

Topology (as root, with `ip netns`): a bridge in the root namespace with
10.213.K.1/24 (Redis, backends, whclients and the viewers live there); each
node in its own namespace with one veth on the bridge (10.213.K.11, .12, ...);
HAProxy (the load balancer the workers and some viewers go through) in its own
namespace (10.213.K.2). An iptables rule inside a namespace cuts one path
precisely. Without root, the scenarios that need no cut run on 127.0.0.1.

    /usr/bin/python3 tests/faults/faults.py            # every scenario, full length
    /usr/bin/python3 tests/faults/faults.py --short node_kill redis_oom

Everything created (processes, namespaces, veths, the bridge, iptables rules,
which live inside the namespaces) is removed at the end, even on failure.
"""

import argparse
import atexit
import hashlib
import http.client
import os
import platform
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))

from conftest import Backend, Client, Proc, binary, free_port, sanitizer_reports, wait_for  # noqa: E402
from test_cluster import CLUSTER_SECRET, REDIS_SERVER  # noqa: E402

HAPROXY = shutil.which("haproxy") or ("/usr/sbin/haproxy" if os.path.exists("/usr/sbin/haproxy") else None)
PREFIX = "f:"
REDIS_PASSWORD = "fault-pass"
BODY = 20000
REQ_TIMEOUT = 30.0  # a viewer gives up after this: "a hang"
CLEAN = ("502", "503", "504")  # the statuses the design answers when it cannot serve


SANITIZER_REPORTS = []  # filled by Env.close, handed to the scenario's Result by run()


class Skip(Exception):
    """A scenario that cannot run here (not root, no netem...): the reason says why."""


# ---- the network --------------------------------------------------------------------


def sh(*args, check=True):
    r = subprocess.run(list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=20)
    if check and r.returncode != 0:
        raise RuntimeError("%s: %s" % (" ".join(args), r.stderr.strip()))
    return r


class Net:
    """Either loopback (netns=False) or a bridge and one namespace per node and for the LB."""

    count = 0

    def __init__(self, nodes, netns):
        self.netns = netns
        Net.count += 1
        self.tag = "whf%d%s" % (os.getpid() % 100000, "abcdefghijklmnopqrstuvwxyz"[Net.count % 26])
        self.ns, self.links = {}, []
        self.bridge = None
        self.host_ip = self.lb_ip = "127.0.0.1"
        self.ips = {"n%d" % (i + 1): "127.0.0.1" for i in range(nodes)}
        if netns:
            try:
                self._make(nodes)
            except BaseException:
                self.close()
                raise

    @staticmethod
    def sweep_stale():
        """Removes the namespaces, veths and bridges of a harness run that was killed (SIGKILL) before
        it could clean up: names whf<pid>..., whose pid no longer runs this harness."""
        import re

        def stale(name):
            m = re.match(r"whf(\d+)", name)
            if not m or int(m.group(1)) == os.getpid() % 100000:
                return False
            try:
                with open("/proc/%s/cmdline" % m.group(1), "rb") as f:
                    return b"faults" not in f.read()
            except OSError:
                return True
        for line in sh("ip", "-o", "link", "show", check=False).stdout.splitlines():
            name = line.split(":")[1].strip().split("@")[0] if line.count(":") > 1 else ""
            if name.startswith("whf") and stale(name):
                sh("ip", "link", "del", name, check=False)
        for line in sh("ip", "netns", "list", check=False).stdout.splitlines():
            name = line.split()[0] if line.split() else ""
            if name.startswith("whf") and stale(name):
                sh("ip", "netns", "del", name, check=False)

    def _make(self, nodes):
        if os.geteuid() != 0:
            raise Skip("network namespaces need root (euid %d)" % os.geteuid())
        self.sweep_stale()
        used = sh("ip", "-4", "addr").stdout
        k = next(k for k in [(os.getpid() + j) % 200 + 20 for j in range(200)] if "10.213.%d." % k not in used)
        net = "10.213.%d." % k
        self.bridge = self.tag + "b"
        try:
            sh("ip", "link", "add", self.bridge, "type", "bridge")
        except RuntimeError as e:
            self.bridge = None
            raise Skip("cannot make a bridge (%s)" % e)
        sh("ip", "addr", "add", net + "1/24", "dev", self.bridge)
        sh("ip", "link", "set", self.bridge, "up")
        self.host_ip, self.lb_ip = net + "1", net + "2"
        names = ["n%d" % (i + 1) for i in range(nodes)] + ["lb"]
        for i, name in enumerate(names):
            ns = self.tag + name
            try:
                sh("ip", "netns", "add", ns)
            except RuntimeError as e:
                raise Skip("ip netns fails here (%s)" % e)
            self.ns[name] = ns
            host_end = "%s%sh" % (self.tag, name)
            sh("ip", "link", "add", host_end, "type", "veth", "peer", "name", "eth0", "netns", ns)
            self.links.append(host_end)
            sh("ip", "link", "set", host_end, "master", self.bridge, "up")
            ip = self.lb_ip if name == "lb" else net + str(11 + i)
            sh("ip", "-n", ns, "addr", "add", ip + "/24", "dev", "eth0")
            sh("ip", "-n", ns, "link", "set", "eth0", "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
            if name != "lb":
                self.ips[name] = ip

    def prefix(self, name):
        return ["ip", "netns", "exec", self.ns[name]] if name in self.ns else []

    def iptables(self, name, *rule):
        sh("ip", "netns", "exec", self.ns[name], "iptables", "-w", *rule)

    def cut(self, name, peer_ip, port=None, extra=()):
        """DROP everything between namespace `name` and peer_ip (on one TCP port of peer_ip if given)."""
        if port is None:
            self.iptables(name, "-A", "OUTPUT", "-d", peer_ip, *extra, "-j", "DROP")
            self.iptables(name, "-A", "INPUT", "-s", peer_ip, *extra, "-j", "DROP")
        else:
            self.iptables(name, "-A", "OUTPUT", "-d", peer_ip, "-p", "tcp", "--dport", str(port), *extra, "-j", "DROP")
            self.iptables(name, "-A", "INPUT", "-s", peer_ip, "-p", "tcp", "--sport", str(port), *extra, "-j", "DROP")

    def heal(self, name):
        self.iptables(name, "-F", "INPUT")
        self.iptables(name, "-F", "OUTPUT")

    def close(self):
        for link in self.links:  # deleting one end deletes the pair at once (a namespace's go lazily)
            sh("ip", "link", "del", link, check=False)
        self.links = []
        for ns in self.ns.values():
            sh("ip", "netns", "del", ns, check=False)  # its veth end and its iptables rules go with it
        self.ns = {}
        if self.bridge:
            sh("ip", "link", "del", self.bridge, check=False)
            self.bridge = None


# ---- the processes --------------------------------------------------------------------


class Redis(Proc):
    def __init__(self, net, port=None):
        self.port = port or free_port()
        binds = "127.0.0.1" if net.host_ip == "127.0.0.1" else "127.0.0.1 " + net.host_ip
        super().__init__([REDIS_SERVER, "--port", str(self.port), "--bind", binds, "--save", "", "--appendonly",
                          "no", "--requirepass", REDIS_PASSWORD], name="redis")
        wait_for(lambda: tcp_open("127.0.0.1", self.port), 10, "redis to listen")
        self.url = "redis://:%s@%s:%d" % (REDIS_PASSWORD, net.host_ip, self.port)

    def client(self):
        import redis
        return redis.Redis(host="127.0.0.1", port=self.port, password=REDIS_PASSWORD, socket_timeout=5)


class FNode(Proc):
    def __init__(self, net, name, rds, port, peer_port, extra_env=None):
        self.name_, self.ip, self.port, self.peer_port = name, net.ips[name], port, peer_port
        env = {"PORT": str(port), "WHT_LISTEN_ADDR": self.ip, "TASKCLUSTER_PROXY_SECRET_A": "test-secret-a",
               "TASKCLUSTER_PROXY_SECRET_B": "test-secret-b", "WHT_LOG_LEVEL": os.environ.get("WHT_FAULTS_LOG_LEVEL", "info"),
               "WHT_ACCESS_LOG": os.environ.get("WHT_FAULTS_ACCESS_LOG", "false"),
               "WHT_ADMIN_ADDR": "127.0.0.1:0", "REDIS_URL": rds.url, "WHT_NODE_ID": name,
               "WHT_PEER_ADDR": "%s:%d" % (self.ip, peer_port), "WHT_CLUSTER_SECRET": CLUSTER_SECRET,
               "WHT_REDIS_PREFIX": PREFIX}
        env.update(extra_env or {})
        super().__init__(net.prefix(name) + [binary("whtunnel")], env=env, name="node")
        wait_for(lambda: tcp_open(self.ip, port) or not self.alive(), 10, "node %s to listen" % name)
        if not self.alive():
            raise RuntimeError("node %s exited: %s" % (name, self.output()[-2000:]))


class HAProxy(Proc):
    """The balancer of deploy/local-cluster.sh (check inter 1s fall 2 rise 1)."""

    def __init__(self, net, nodes, shutdown_sessions=False):
        self.ip, self.port = net.lb_ip, free_port()
        self.dir = tempfile.mkdtemp(prefix="wht-faults-haproxy-")
        cfg = os.path.join(self.dir, "haproxy.cfg")
        servers = "\n".join("    server %s %s:%d" % (n.name_, n.ip, n.port) for n in nodes)
        with open(cfg, "w") as f:
            f.write("""global
    log stdout format raw local0 notice
defaults
    mode http
    log global
    timeout connect 3s
    timeout client 1h
    timeout server 1h
    timeout tunnel 1h
    option http-server-close
    option redispatch
    retries 3
frontend viewers_and_workers
    bind %s:%d
    default_backend nodes
backend nodes
    balance roundrobin
    option httpchk GET /__lbheartbeat__
    http-check expect status 200
    default-server check inter 1s fall 2 rise 1%s
%s
""" % (self.ip, self.port, " on-marked-down shutdown-sessions" if shutdown_sessions else "", servers))
        super().__init__(net.prefix("lb") + [HAPROXY, "-f", cfg, "-db"], name="haproxy")
        wait_for(lambda: tcp_open(self.ip, self.port), 10, "haproxy to listen")


def tcp_open(ip, port):
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((ip, port)) == 0


def cluster_status(node, timeout=3):
    import json
    c = http.client.HTTPConnection(node.ip, node.port, timeout=timeout)
    c.request("GET", "/__cluster__")
    st = json.loads(c.getresponse().read())
    c.close()
    return st


class Env:
    """A cluster: Redis, nodes n1..nN (each in its namespace), HAProxy, workers w1..wM through HAProxy."""

    def __init__(self, netns, nodes=3, workers=6, node_env=None, lb_shutdown_sessions=False):
        self.procs, self.stopped, self.net, self.logdir = [], set(), None, None
        self.misses, self.last_miss = [], None  # the probes that kept failing when wait_routes gave up
        # every process's log goes to one directory (conftest's Proc uses tempfile), removed at the end
        # unless WHT_FAULTS_KEEP_LOGS=1
        self.saved_tempdir = tempfile.tempdir
        self.logdir = tempfile.mkdtemp(prefix="wht-faults-")
        tempfile.tempdir = self.logdir
        atexit.register(self.close)
        try:
            self.net = Net(nodes, netns)
            self.redis = self.track(Redis(self.net))
            self.node_env = node_env or {}
            self.nodes = {}
            for i in range(nodes):
                self.start_node("n%d" % (i + 1))
            for n in self.nodes.values():
                wait_for(lambda: cluster_status(n)["peers_up"] == nodes - 1, 20, "membership of %s" % n.name_)
            if not HAPROXY:
                raise Skip("haproxy not installed (deploy/install-deps.sh --test)")
            self.lb = self.track(HAProxy(self.net, list(self.nodes.values()), lb_shutdown_sessions))
            self.lb_url = "http://%s:%d" % (self.lb.ip, self.lb.port)
            wait_for(lambda: probe((self.lb.ip, self.lb.port), "__lbheartbeat__", path="/__lbheartbeat__")[0] == 200,
                     10, "a request through haproxy")
            self.backends, self.clients = {}, {}
            for j in range(workers):
                wid = "w%d" % (j + 1)
                self.backends[wid] = self.track(Backend())
                self.start_client(wid)
            self.wait_routes(list(self.nodes), list(self.clients), 20)
        except BaseException:
            self.close()
            raise

    def track(self, p):
        self.procs.append(p)
        return p

    def start_node(self, name, port=None, peer_port=None):
        old = self.nodes.get(name)
        n = FNode(self.net, name, self.redis, port or (old.port if old else free_port()),
                  peer_port or (old.peer_port if old else free_port()), self.node_env)
        self.nodes[name] = self.track(n)
        return n

    def start_client(self, wid):
        self.clients[wid] = self.track(Client(self.lb_url, wid, self.backends[wid].port))
        return self.clients[wid]

    def owner(self, wid):
        v = self.redis.client().get(PREFIX + "w:" + wid)
        return v.decode().split(" ", 1)[1] if v else None

    def workers_of(self, name):
        return [w for w in self.clients if self.owner(w) == name]

    def endpoint(self, via):
        if via == "lb":
            return self.lb.ip, self.lb.port
        return self.nodes[via].ip, self.nodes[via].port

    def routes(self, vias, wids):
        for via in vias:
            for wid in wids:
                st, body, err = probe(self.endpoint(via), wid)
                if st != 204:
                    self.last_miss = "%s>%s: %s" % (via, wid, st or outcome_of_exception(err))
                    return False
        return True

    def wait_routes(self, vias, wids, timeout):
        """Seconds until every wid answers through every via (None if not within timeout)."""
        t0 = time.time()
        try:
            wait_for(lambda: self.routes(vias, wids), timeout, "routes")
        except TimeoutError:
            self.misses.append(self.last_miss)
            return None
        return time.time() - t0

    def signal(self, p, sig):
        p.p.send_signal(sig)
        if sig == signal.SIGSTOP:
            self.stopped.add(p)
        elif sig == signal.SIGCONT:
            self.stopped.discard(p)

    def close(self):
        for p in list(self.stopped):
            p.p.send_signal(signal.SIGCONT)
        self.stopped = set()
        for p in reversed(self.procs):
            try:
                p.stop(sig=signal.SIGKILL if p.name in ("node", "redis", "haproxy") else signal.SIGTERM, timeout=5)
            except Exception:  # noqa: BLE001 - keep cleaning
                pass
        for p in self.procs:  # a sanitizer build's reports (ASan, UBSan) in any node or client log
            if p.name != "redis":
                SANITIZER_REPORTS.extend("%s %s: %s" % (p.name, p.log.name, x) for x in sanitizer_reports(p))
        self.procs = []
        if self.net:
            self.net.close()
        if self.logdir:
            tempfile.tempdir = self.saved_tempdir
            if os.environ.get("WHT_FAULTS_KEEP_LOGS") == "1":
                print("logs kept in %s" % self.logdir)
            else:
                shutil.rmtree(self.logdir, ignore_errors=True)
            self.logdir = None


def probe(endpoint, wid, timeout=3, path=None):
    try:
        c = http.client.HTTPConnection(endpoint[0], endpoint[1], timeout=timeout)
        c.request("GET", path or "/%s/status/204" % wid)
        r = c.getresponse()
        body = r.read()
        c.close()
        return r.status, body, None
    except Exception as e:  # noqa: BLE001
        return None, b"", e


# ---- the viewers ----------------------------------------------------------------------


def outcome_of_exception(e):
    if isinstance(e, socket.timeout):
        return "timeout"
    if isinstance(e, ConnectionRefusedError):
        return "refused"
    if isinstance(e, ConnectionResetError):
        return "reset"
    if isinstance(e, http.client.RemoteDisconnected):
        return "closed"
    if isinstance(e, http.client.IncompleteRead):
        return "truncated"
    return type(e).__name__


def one_request(endpoint, wid, i):
    """One viewer request on a new connection: a 20,000-byte GET or a 20,000-byte POST echoed back.
    Returns ("ok" | status code | "<status>-nobody" | "bad-body" | connection error, seconds)."""
    t0 = time.time()
    try:
        c = http.client.HTTPConnection(endpoint[0], endpoint[1], timeout=REQ_TIMEOUT)
        if i % 2:
            body = os.urandom(BODY)
            c.request("POST", "/%s/mirror" % wid, body=body)
            r = c.getresponse()
            data = r.read()
            good = r.status == 200 and data == body
        else:
            c.request("GET", "/%s/bytes/%d" % (wid, BODY))
            r = c.getresponse()
            data = r.read()
            good = r.status == 200 and hashlib.sha256(data).hexdigest() == r.getheader("X-Sha256")
        c.close()
        if good:
            out = "ok"
        elif r.status == 200:
            out = "bad-body"
        else:
            out = str(r.status) + ("" if data else "-nobody")
            if data:
                out += ":" + " ".join(data.decode(errors="replace").split())[:60]
    except Exception as e:  # noqa: BLE001
        out = outcome_of_exception(e)
    return out, time.time() - t0


class Load:
    """Viewer threads, each looping over (via, wid) pairs until stopped, max_count or max_seconds.
    Every request is recorded: (start, end, via, wid, outcome)."""

    def __init__(self, env, vias, wids, threads=3, max_count=20000, max_seconds=120, pace=0.02):
        self.env, self.pairs = env, [(v, w) for v in vias for w in wids]
        self.threads, self.max_count, self.max_seconds, self.pace = threads, max_count, max_seconds, pace
        self.records, self.lock, self.stop_ev = [], threading.Lock(), threading.Event()
        self.ts = []

    def _run(self, k):
        i, t_end = k, time.time() + self.max_seconds
        while not self.stop_ev.is_set() and time.time() < t_end:
            with self.lock:
                if len(self.records) >= self.max_count:
                    return
            via, wid = self.pairs[i % len(self.pairs)]
            i += self.threads
            t0 = time.time()
            out, dt = one_request(self.env.endpoint(via), wid, i // len(self.pairs) + i)
            with self.lock:
                self.records.append((t0, t0 + dt, via, wid, out))
            self.stop_ev.wait(self.pace)

    def start(self):
        self.ts = [threading.Thread(target=self._run, args=(k,), daemon=True) for k in range(self.threads)]
        for t in self.ts:
            t.start()
        return self

    def stop(self):
        self.stop_ev.set()
        for t in self.ts:
            t.join(REQ_TIMEOUT + 5)


# ---- results --------------------------------------------------------------------------


class Result:
    def __init__(self, name, title):
        self.name, self.title = name, title
        self.skipped = None
        self.records = []
        self.affected = lambda via, wid: False
        self.recovery = {}  # label -> seconds or None
        self.notes = []
        self.t_fault = None
        self.sanitizer = []  # sanitizer report lines from the processes' logs
        self.slow = []  # (status line, complete, seconds after the fault) of the long requests (client kill)

    def groups(self):
        g = {"unaffected": [], "affected": []}
        for r in self.records:
            g["affected" if self.affected(r[2], r[3]) else "unaffected"].append(r)
        return g

    @staticmethod
    def summary(recs):
        fails = {}
        for r in recs:
            if r[4] != "ok":
                key = r[4].split(":", 1)[0]
                fails[key] = fails.get(key, 0) + 1
        return {"sent": len(recs), "failed": sum(fails.values()), "how": fails,
                "max_wait": max((r[1] - r[0] for r in recs), default=0.0)}

    def details(self):
        """Every distinct failure, with the node's body text, and its count."""
        d = {}
        for r in self.records:
            if r[4] != "ok":
                k = ("affected " if self.affected(r[2], r[3]) else "UNAFFECTED ") + r[4]
                t = r[0] - (self.t_fault or r[0])
                n, first, last, pairs = d.get(k, (0, t, t, set()))
                d[k] = (n + 1, min(first, t), max(last, t), pairs | {"%s>%s" % (r[2], r[3])})
        return ["%s: %s x%d, from %+.1f s to %+.1f s after the fault, via>worker %s"
                % (self.name, k, v[0], v[1], v[2], ",".join(sorted(v[3]))) for k, v in sorted(d.items())]

    def failures(self, group):
        return [r for r in self.groups()[group] if r[4] != "ok"]

    def row(self):
        if self.skipped:
            return "| %s | skipped: %s | | | | | |" % (self.title, self.skipped)
        g = self.groups()
        u, a = self.summary(g["unaffected"]), self.summary(g["affected"])
        how = ", ".join("%s x%d" % kv for kv in sorted(a["how"].items())) or "-"
        if u["failed"]:
            how += "; UNAFFECTED: " + ", ".join("%s x%d" % kv for kv in sorted(u["how"].items()))
        rec = ", ".join("%s %s" % (k, "%.1f s" % v if v is not None else "NOT within the limit")
                        for k, v in self.recovery.items()) or "-"
        return "| %s | %d / %d | %d / %d | %s | %.2f / %.2f s | %s | %s |" % (
            self.title, u["sent"], u["failed"], a["sent"], a["failed"], how, u["max_wait"], a["max_wait"], rec,
            "; ".join(self.notes))


HEADER = ("| fault | unaffected: sent / failed | affected: sent / failed | affected failures, how | "
          "longest wait (unaffected / affected) | routes again | notes |\n| --- | --- | --- | --- | --- | --- | --- |")


# ---- the scenarios --------------------------------------------------------------------
# Each takes the scale (short: True for the pytest wrapper) and returns a Result.
# "affected" requests are those for the workers the fault hits or through a path it cuts.

def sc(short, full_v, short_v):
    return short_v if short else full_v


def run_with_load(env, res, vias, wids, warm, fault, after, short):
    load = Load(env, vias, wids, max_seconds=sc(short, 240, 90)).start()
    try:
        time.sleep(warm)
        res.t_fault = time.time()
        fault()
        after()
    finally:
        load.stop()
        res.records = load.records
        res.notes += ["a probe still failing at the limit: " + m for m in env.misses]


def node_kill(short):
    res = Result("node_kill", "node killed (SIGKILL), viewers through the other nodes")
    with Env(netns=False) as env:
        victim = env.owner("w1")
        hit = env.workers_of(victim)
        others = [n for n in env.nodes if n != victim]
        res.affected = lambda via, wid: wid in hit
        res.notes.append("%s held %s" % (victim, ",".join(hit)))
        t = {}

        def fault():
            t["f"] = time.time()
            env.signal(env.nodes[victim], signal.SIGKILL)

        def after():
            res.recovery["after the kill"] = env.wait_routes(others, list(env.clients), 30)
            time.sleep(sc(short, 5, 1))
        run_with_load(env, res, others, list(env.clients), sc(short, 3, 1), fault, after, short)
    return res


def node_freeze(short, shutdown_sessions=False):
    secs = sc(short, 20, 8)
    res = Result("node_freeze" + ("_shutdown" if shutdown_sessions else ""),
                 "node frozen (SIGSTOP %d s, then SIGCONT)%s" % (
                     secs, "; HAProxy with on-marked-down shutdown-sessions" if shutdown_sessions else ""))
    with Env(netns=False, lb_shutdown_sessions=shutdown_sessions) as env:
        victim = env.owner("w1")
        hit = env.workers_of(victim)
        others = [n for n in env.nodes if n != victim]
        res.affected = lambda via, wid: wid in hit
        res.notes.append("%s held %s" % (victim, ",".join(hit)))

        def fault():
            env.signal(env.nodes[victim], signal.SIGSTOP)

        def after():
            t0 = time.time()
            moved = env.wait_routes(others, list(env.clients), secs)
            res.recovery["during the freeze"] = moved
            time.sleep(max(0.0, secs - (time.time() - t0)))
            env.signal(env.nodes[victim], signal.SIGCONT)
            res.recovery["after SIGCONT"] = env.wait_routes(list(env.nodes), list(env.clients), 60)
            time.sleep(sc(short, 5, 1))
        run_with_load(env, res, others, list(env.clients), sc(short, 3, 1), fault, after, short)
    return res


def slow_request(endpoint, wid, kind, out):
    """A long download (/slow, 100 lines, 10 s) or a slow upload (1 MiB PUT to /mirror over ~5 s).
    Appends (status line, complete?, the body's last bytes, a time: below)."""
    buf, t_answer, err = b"", None, None
    s = None
    try:
        s = socket.create_connection(endpoint, timeout=REQ_TIMEOUT)
        if kind == "download":
            s.sendall(b"GET /%s/slow?lines=100 HTTP/1.1\r\nHost: x\r\n\r\n" % wid.encode())
            chunks = []
        else:
            s.sendall(b"PUT /%s/mirror HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (wid.encode(), 1 << 20))
            chunks = [os.urandom(16384) for _ in range(64)]
        closed = False
        for chunk in chunks:  # the upload, reading whatever the node answers meanwhile
            if select.select([s], [], [], 0.08)[0]:
                d = s.recv(65536)
                t_answer = t_answer or time.time()
                buf += d
                if not d:
                    closed = True
                    break
            try:
                s.sendall(chunk)
            except OSError:
                break
        deadline = time.time() + REQ_TIMEOUT
        while not closed and time.time() < deadline:
            d = s.recv(65536)
            t_answer = t_answer or time.time()
            if not d:
                break
            buf += d
    except Exception as e:  # noqa: BLE001 - a reset after the answer is still the answer
        err = outcome_of_exception(e)
    finally:
        if s:
            s.close()
    head = buf.split(b"\r\n", 1)[0].decode(errors="replace") or err or "nothing"
    body = buf.partition(b"\r\n\r\n")[2]
    complete = buf.endswith(b"0\r\n\r\n") if kind == "download" else len(body) == 1 << 20
    t_end = time.time()  # the download: when the connection ended; the upload: when the answer began
    out.append((head, complete, body[-80:], t_end if kind == "download" else (t_answer or t_end)))


def client_kill(short, kind):
    res = Result("client_kill_" + kind, "whclient killed mid-%s (local and relayed viewers)" % kind)
    with Env(netns=False) as env:
        owner = env.owner("w1")
        relay = next(n for n in env.nodes if n != owner)
        rest = [w for w in env.clients if w != "w1"]
        res.affected = lambda via, wid: wid == "w1"

        def fault():
            outs = []
            ts = [threading.Thread(target=slow_request, args=(env.endpoint(v), "w1", kind, outs)) for v in (owner, relay)]
            for t in ts:
                t.start()
            time.sleep(1.5)
            t0 = time.time()
            env.signal(env.clients["w1"], signal.SIGKILL)
            for t in ts:
                t.join(REQ_TIMEOUT + 5)
            for head, complete, tail, t_end in outs:
                res.notes.append("slow %s: %s, %s, ended %.2f s after the kill%s" % (
                    kind, head, "complete" if complete else "cut short", t_end - t0,
                    (", body %r" % tail.decode(errors="replace").strip()[-50:]) if "50" in head else ""))
                res.slow.append((head, complete, t_end - t0))
            env.clients["w1"].p.wait(5)
            env.start_client("w1")
            w = env.wait_routes(list(env.nodes), ["w1"], 20)
            res.recovery["from the kill, a new whclient started at once"] = w and time.time() - t0

        def after():
            time.sleep(sc(short, 3, 1))
        run_with_load(env, res, list(env.nodes), rest + ["w1"], sc(short, 2, 1), fault, after, short)
    return res


def redis_kill(short):
    res = Result("redis_kill", "Redis killed, restarted empty after %d s; w1 re-registers meanwhile"
                 % sc(short, 10, 4))
    with Env(netns=False) as env:
        before = env.owner("w1")
        res.affected = lambda via, wid: wid == "w1"

        def fault():
            env.signal(env.redis, signal.SIGKILL)
            env.redis.p.wait(5)
            env.clients["w1"].stop()
            env.start_client("w1")  # registers on some node while Redis is away

        def after():
            time.sleep(sc(short, 10, 4))
            port = env.redis.port
            env.redis = env.track(Redis(env.net, port))
            res.recovery["after the restart"] = env.wait_routes(list(env.nodes), list(env.clients), 30)
            time.sleep(sc(short, 3, 1))
        run_with_load(env, res, list(env.nodes), list(env.clients), sc(short, 3, 1), fault, after, short)
        res.notes.append("w1 on %s before, on %s after" % (before, env.owner("w1")))
    return res


def redis_freeze(short):
    secs = sc(short, 20, 6)
    res = Result("redis_freeze", "Redis frozen (SIGSTOP %d s); w1 re-registers meanwhile" % secs)
    with Env(netns=False) as env:
        before = env.owner("w1")
        res.affected = lambda via, wid: wid == "w1"

        def fault():
            env.signal(env.redis, signal.SIGSTOP)
            env.clients["w1"].stop()
            env.start_client("w1")

        def after():
            time.sleep(secs)
            env.signal(env.redis, signal.SIGCONT)
            res.recovery["after SIGCONT"] = env.wait_routes(list(env.nodes), list(env.clients), 30)
            time.sleep(sc(short, 3, 1))
        run_with_load(env, res, list(env.nodes), list(env.clients), sc(short, 3, 1), fault, after, short)
        res.notes.append("w1 on %s before, on %s after" % (before, env.owner("w1")))
    return res


def redis_oom(short):
    secs = sc(short, 20, 8)
    res = Result("redis_oom", "Redis out of memory (maxmemory, noeviction) for %d s; w1 re-registers" % secs)
    with Env(netns=False) as env:
        before = env.owner("w1")
        res.affected = lambda via, wid: wid == "w1"
        rc = env.redis.client()

        def fault():
            used = rc.info("memory")["used_memory"]
            rc.config_set("maxmemory-policy", "noeviction")
            rc.config_set("maxmemory", str(used - 1024 * 64))  # below what is used: every write is refused
            try:
                rc.set("probe", "x")
                res.notes.append("OOM not in force")
            except Exception as e:  # noqa: BLE001
                res.notes.append("writes refused: %s" % str(e)[:40])
            env.clients["w1"].stop()
            env.start_client("w1")

        def after():
            time.sleep(secs)
            st = [cluster_status(n) for n in env.nodes.values()]
            res.notes.append("peers_up seen at the end of OOM: %s" % [s["peers_up"] for s in st])
            rc.config_set("maxmemory", "0")
            res.recovery["after memory is back"] = env.wait_routes(list(env.nodes), list(env.clients), 30)
            time.sleep(sc(short, 3, 1))
        run_with_load(env, res, list(env.nodes), list(env.clients), sc(short, 3, 1), fault, after, short)
        res.notes.append("w1 on %s before, on %s after" % (before, env.owner("w1")))
    return res


def cut_redis(short):
    secs = sc(short, 20, 8)
    res = Result("cut_redis", "one node cut off from Redis (iptables DROP, %d s), peers reachable" % secs)
    with Env(netns=True) as env:
        victim = env.owner("w1")
        others = [n for n in env.nodes if n != victim]
        res.notes.append("%s cut, held %s" % (victim, ",".join(env.workers_of(victim))))
        hit = env.workers_of(victim)
        # its workers through the other nodes, and every request through it
        res.affected = lambda via, wid: (via != victim and wid in hit) or via == victim

        def fault():
            env.net.cut(victim, env.net.host_ip, env.redis.port)

        def after():
            time.sleep(secs)
            st = cluster_status(env.nodes[victim])
            res.notes.append("%s during the cut: redis %s, peers_up %s; others see %s" % (
                victim, st.get("redis"), st.get("peers_up"), [cluster_status(env.nodes[o])["peers_up"] for o in others]))
            env.net.heal(victim)
            res.recovery["after the heal"] = env.wait_routes(list(env.nodes), list(env.clients), 30)
            time.sleep(sc(short, 3, 1))
        run_with_load(env, res, list(env.nodes), list(env.clients), sc(short, 3, 1), fault, after, short)
    return res


def cut_peers(short):
    secs = sc(short, 20, 8)
    res = Result("cut_peers", "two nodes cut off from each other (%d s), both reach Redis" % secs)
    with Env(netns=True) as env:
        a = env.owner("w1")
        b = next(n for n in env.nodes if n != a and env.workers_of(n))
        ha, hb = env.workers_of(a), env.workers_of(b)
        res.notes.append("%s (holds %s) <-/-> %s (holds %s)" % (a, ",".join(ha), b, ",".join(hb)))
        res.affected = lambda via, wid: (via == a and wid in hb) or (via == b and wid in ha)

        def fault():
            env.net.cut(a, env.nodes[b].ip)

        def after():
            time.sleep(secs)
            env.net.heal(a)
            res.recovery["after the heal"] = env.wait_routes(list(env.nodes), list(env.clients), 30)
            time.sleep(sc(short, 3, 1))
        run_with_load(env, res, list(env.nodes), list(env.clients), sc(short, 3, 1), fault, after, short)
    return res


def cut_lb(short, shutdown_sessions=False):
    secs = sc(short, 30, 10)
    res = Result("cut_lb" + ("_shutdown" if shutdown_sessions else ""),
                 "load balancer cut off from one node (%d s); viewers through the LB%s" % (
                     secs, "; HAProxy with on-marked-down shutdown-sessions" if shutdown_sessions else ""))
    with Env(netns=True, lb_shutdown_sessions=shutdown_sessions) as env:
        victim = env.owner("w1")
        hit = env.workers_of(victim)
        res.notes.append("%s cut from the LB, held %s (their whclients came through the LB)" % (victim, ",".join(hit)))
        res.affected = lambda via, wid: wid in hit

        def fault():
            env.net.cut(victim, env.net.lb_ip)

        def after():
            res.recovery["during the cut"] = env.wait_routes(["lb"], list(env.clients), secs)
            time.sleep(max(0.0, secs - (res.recovery["during the cut"] or secs)))
            env.net.heal(victim)
            res.recovery["after the heal"] = env.wait_routes(["lb"] + list(env.nodes), list(env.clients), 30)
            time.sleep(sc(short, 3, 1))
        run_with_load(env, res, ["lb"], list(env.clients), sc(short, 3, 1), fault, after, short)
    return res


def netem_available():
    """None when tc netem works in a fresh namespace, else why not."""
    if os.geteuid() != 0:
        return "network namespaces need root (euid %d)" % os.geteuid()
    ns = "whf%dnetem" % (os.getpid() % 100000)
    try:
        sh("ip", "netns", "add", ns)
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        r = sh("ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms",
               check=False)
        return None if r.returncode == 0 else "tc netem is not available on this kernel (sch_netem missing: %s)" % (
            r.stderr.strip()[:80])
    finally:
        sh("ip", "netns", "del", ns, check=False)


def impaired_peer(short, kind):
    """The link between two nodes loses 5 % of its packets both ways (iptables statistic), or is
    delayed 200 ms each way (netem on both ends, only towards the other node: prio + u32 filter)."""
    secs = sc(short, 30, 10)
    if kind == "delay":
        why = netem_available()
        if why:
            raise Skip(why)
        title = "peer link delayed 200 ms each way (tc netem, %d s)" % secs
    else:
        title = "peer link drops 5 %% of packets both ways (iptables statistic, %d s)" % secs
    res = Result(kind + "_peer", title)
    with Env(netns=True) as env:
        a = env.owner("w1")
        b = next(n for n in env.nodes if n != a and env.workers_of(n))
        hb = env.workers_of(b)
        res.notes.append("%s <-> %s impaired; viewers through %s to every worker" % (a, b, a))
        res.affected = lambda via, wid: via == a and wid in hb

        def shape(x, y, on):
            pre = env.net.prefix(x)
            if not on:
                sh(*pre, "tc", "qdisc", "del", "dev", "eth0", "root", check=False)
                return
            sh(*pre, "tc", "qdisc", "add", "dev", "eth0", "root", "handle", "1:", "prio")
            sh(*pre, "tc", "qdisc", "add", "dev", "eth0", "parent", "1:3", "handle", "30:", "netem", "delay", "200ms")
            sh(*pre, "tc", "filter", "add", "dev", "eth0", "protocol", "ip", "parent", "1:0", "prio", "3", "u32",
               "match", "ip", "dst", env.nodes[y].ip + "/32", "flowid", "1:3")

        def fault():
            if kind == "delay":
                shape(a, b, True)
                shape(b, a, True)
            else:
                env.net.cut(a, env.nodes[b].ip, extra=("-m", "statistic", "--mode", "random", "--probability", "0.05"))

        def after():
            time.sleep(secs)
            if kind == "delay":
                shape(a, b, False)
                shape(b, a, False)
            else:
                env.net.heal(a)
            res.recovery["after the heal"] = env.wait_routes(list(env.nodes), list(env.clients), 30)
        run_with_load(env, res, [a], list(env.clients), sc(short, 2, 1), fault, after, short)
        for group, recs in res.groups().items():
            d = sorted(r[1] - r[0] for r in recs if res.t_fault <= r[0] <= res.t_fault + secs)
            if d:
                res.notes.append("%s during the fault: median %.0f ms, 99th percentile %.0f ms" % (
                    group, 1000 * d[len(d) // 2], 1000 * d[min(len(d) - 1, int(len(d) * 0.99))]))
    return res


def _env_enter(self):
    return self


def _env_exit(self, *exc):
    self.close()


Env.__enter__, Env.__exit__ = _env_enter, _env_exit

SCENARIOS = {
    "node_kill": node_kill, "node_freeze": node_freeze, "node_freeze_shutdown": lambda s: node_freeze(s, True),
    "client_kill_download": lambda s: client_kill(s, "download"),
    "client_kill_upload": lambda s: client_kill(s, "upload"),
    "redis_kill": redis_kill, "redis_freeze": redis_freeze, "redis_oom": redis_oom,
    "cut_redis": cut_redis, "cut_peers": cut_peers, "cut_lb": cut_lb,
    "cut_lb_shutdown": lambda s: cut_lb(s, True),
    "lossy_peer": lambda s: impaired_peer(s, "lossy"), "delay_peer": lambda s: impaired_peer(s, "delay"),
}


def run(name, short):
    del SANITIZER_REPORTS[:]
    try:
        r = SCENARIOS[name](short)
    except Skip as e:
        r = Result(name, name)
        r.skipped = str(e)
    r.sanitizer = list(SANITIZER_REPORTS)
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--short", action="store_true", help="the short version the pytest wrapper runs")
    ap.add_argument("scenarios", nargs="*", help="names (default: all): " + ", ".join(SCENARIOS))
    a = ap.parse_args()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: sys.exit(130))
    names = a.scenarios or list(SCENARIOS)
    rows, details = [], []
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    print("machine: %s, %d cores (%s), %s; load average %s; %s" % (
        platform.node(), os.cpu_count(), cpu, platform.platform(), " ".join(open("/proc/loadavg").read().split()[:3]),
        time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())))
    for name in names:
        t0 = time.time()
        r = run(name, a.short)
        rows.append(r.row())
        details += r.details() + ["%s: SANITIZER %s" % (name, x) for x in r.sanitizer]
        print("%s (%.0f s)\n%s" % (name, time.time() - t0, r.row()), flush=True)
    print("\n" + HEADER + "\n" + "\n".join(rows))
    print("\nfailures, with the body the node answered:\n" + "\n".join(details or ["none"]))


if __name__ == "__main__":
    main()
