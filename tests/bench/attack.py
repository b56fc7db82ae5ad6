#!/usr/bin/env python3
"""Tried as an attacker would (issue 11): while each attack runs against a node, good requests
(a new connection each, through a real whclient to a real backend) are timed; the figures are
compared with the same requests timed just before, in the same run. Prints a table; asserts
nothing (tests/integration/test_attack.py runs a tiny version that checks the node survives).

    tests/bench/attack.py [--build DIR] [--conns N] [--seconds S] [--good N]

Attacks, one after another, each for --seconds (default 10):
  silent       N connections that send nothing (default N = 5000)
  slowloris    N connections that send one header byte a second, never finishing a head
  half-open    N registrations whose head never ends (the token is good)
  bad-tokens   registrations with bad tokens, as fast as 8 connections at a time can send them

Every socket is on 127.0.0.1; every loop is bounded by a count and a deadline; every process
and socket is closed at the end."""

import argparse
import base64
import os
import resource
import socket
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from conftest import SECRET_A, free_port, make_token, port_open  # noqa: E402


def wait(pred, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise TimeoutError(what)


def good_request(port):
    """One request on a new connection; returns its latency in ms, or None if it failed."""
    t0 = time.perf_counter()
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(b"GET /good/status/204 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = s.recv(200)
        s.close()
        if not data.startswith(b"HTTP/1.1 204 "):
            return None
    except OSError:
        return None
    return (time.perf_counter() - t0) * 1000


def timed(port, count, seconds):
    """count good requests, one after another, within seconds: (latencies, failures)."""
    lat, failed = [], 0
    deadline = time.time() + seconds
    for _ in range(count):
        if time.time() > deadline:
            break
        ms = good_request(port)
        if ms is None:
            failed += 1
        else:
            lat.append(ms)
        time.sleep(0.01)
    return lat, failed


def registration_head(wid, token, finish=True):
    key = base64.b64encode(os.urandom(16)).decode()
    head = ("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\nX-Websocktunnel-Id: %s\r\n"
            "Authorization: Bearer %s\r\n" % (key, wid, token))
    return (head + "\r\n").encode() if finish else head.encode()


class Attack:
    """Holds up to n attack connections open until stop(); kind says what they send."""

    def __init__(self, port, kind, n):
        self.port, self.kind, self.n = port, kind, n
        self.socks, self.stopped, self.opened, self.refused, self.sent = [], False, 0, 0, 0
        self.thread = threading.Thread(target=self.run, daemon=True)

    def start(self):
        self.thread.start()

    def open_one(self, payload=b""):
        try:
            s = socket.create_connection(("127.0.0.1", self.port), timeout=2)
            if payload:
                s.sendall(payload)
            s.setblocking(False)
            self.socks.append(s)
            self.opened += 1
        except OSError:
            self.refused += 1

    def run(self):
        if self.kind == "bad-tokens":
            return self.flood()
        first = {"silent": b"", "slowloris": b"G", "half-open": registration_head("half", make_token("half"),
                                                                                   finish=False)}[self.kind]
        for _ in range(self.n):
            if self.stopped:
                return
            self.open_one(first)
        tick = 0
        while not self.stopped and tick < 3600:  # bounded: an hour of ticks at most
            tick += 1
            time.sleep(1)
            if self.kind == "slowloris":
                for s in list(self.socks):
                    try:
                        s.send(b"E")
                    except OSError:
                        self.socks.remove(s)
                        s.close()
                        self.open_one(b"G")  # the node cut it: open another

    def flood(self):
        bad = registration_head("victim", make_token("victim", secret="not-the-secret"))

        def worker():
            while not self.stopped:
                try:
                    s = socket.create_connection(("127.0.0.1", self.port), timeout=2)
                    s.sendall(bad)
                    s.recv(100)
                    s.close()
                    self.sent += 1
                except OSError:
                    self.refused += 1
        threads = [threading.Thread(target=worker, daemon=True) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def stop(self):
        self.stopped = True
        self.thread.join(30)
        for s in self.socks:
            s.close()


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(lat, p):
    if not lat:
        return float("nan")
    lat = sorted(lat)
    return lat[min(len(lat) - 1, int(len(lat) * p))]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.environ.get("WHT_BUILD_DIR", os.path.join(ROOT, "build")))
    ap.add_argument("--conns", type=int, default=5000)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--good", type=int, default=300)
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    conns = min(args.conns, hard - 200)
    port = free_port()
    env = dict(os.environ, PORT=str(port), WHT_LISTEN_ADDR="127.0.0.1", TASKCLUSTER_PROXY_SECRET_A=SECRET_A,
               WHT_ADMIN_ADDR="off", WHT_LOG_LEVEL="warn", WHT_ACCESS_LOG="false")
    log = open(os.devnull, "w")
    procs = []
    try:
        node = subprocess.Popen([os.path.join(args.build, "node", "whtunnel")], env=env, stdout=log, stderr=log)
        procs.append(node)
        wait(lambda: port_open(port), 10, "the node")
        bport = free_port()
        procs.append(subprocess.Popen([sys.executable, os.path.join(ROOT, "tests", "integration", "backend.py"),
                                       str(bport)], stdout=log, stderr=log))
        wait(lambda: port_open(bport), 10, "the backend")
        procs.append(subprocess.Popen([os.path.join(args.build, "client", "whclient"), "ws://127.0.0.1:%d" % port,
                                       "good", str(bport), "--token", make_token("good")], stdout=log, stderr=log))
        wait(lambda: good_request(port) is not None, 15, "the worker")
        timed(port, 20, 5)  # warm up
        rows = []
        base, bfail = timed(port, args.good, args.seconds)
        rows.append(("none (baseline)", 0, 0, base, bfail, rss_kb(node.pid), 0.0))
        for kind in ("silent", "slowloris", "half-open", "bad-tokens"):
            a = Attack(port, kind, conns)
            c0 = cpu_s(node.pid)
            a.start()
            time.sleep(min(3.0, args.seconds / 3))  # let the attack build up
            lat, failed = timed(port, args.good, args.seconds)
            rss = rss_kb(node.pid)
            a.stop()
            cpu = cpu_s(node.pid) - c0
            rows.append((kind, a.opened, a.sent, lat, failed, rss, cpu))
            time.sleep(1)
            if node.poll() is not None:
                print("the node exited during %s: %s" % (kind, node.returncode))
                break
        print("attack        attack conns  bad regs  good reqs  failed  p50 ms  p99 ms  max ms  node RSS KiB  node CPU s")
        for kind, opened, sent, lat, failed, rss, cpu in rows:
            print("%-13s %12d %9d %10d %7d %7.2f %7.2f %7.2f %13d %11.2f" % (
                kind, opened, sent, len(lat), failed, pct(lat, 0.5), pct(lat, 0.99), max(lat) if lat else 0,
                rss, cpu))
        print("baseline median %.2f ms; medians under attack: %s" % (
            statistics.median(base) if base else float("nan"),
            ", ".join("%s %.2f" % (r[0], statistics.median(r[3]) if r[3] else float("nan")) for r in rows[1:])))
        print("machine: %d cores, load average %s" % (os.cpu_count(), open("/proc/loadavg").read().split()[:3]))
        return 0 if node.poll() is None else 1
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()


if __name__ == "__main__":
    sys.exit(main())
