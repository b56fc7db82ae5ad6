"""The container image (deploy/Dockerfile) and the compose cluster (deploy/docker-compose.yml), for real.

Builds the images with podman from a Debian 12 base made by deploy/make-base-image.sh,
brings the whole compose file up with Debian's docker-compose 1.29 against podman's
Docker-compatible socket (Redis, three nodes, HAProxy sending the PROXY protocol, the
example worker and its demo site, Prometheus), and checks that:

- the example worker registers and its site answers through HAProxy;
- every node serves viewers (each node's requests counter, read through the compose
  Prometheus, which must scrape all three: the counters add up to exactly the 200s received);
- the nodes see the viewer's address from HAProxy's PROXY header, not HAProxy's;
- the image's HEALTHCHECK passes, it runs as a non-root user, stops with SIGTERM;
- `docker-compose stop` of the node holding the worker (SIGTERM: it drains) fails no
  request made meanwhile, the worker registers on another node, and requests keep working.

Then everything comes down and the host is left as found: containers, networks, images
built here, the podman service, conmon and aardvark-dns processes, netavark's iptables
chains and net.ipv4.ip_forward. Only the cache stays: $WHT_BUILD_DIR/container-cache holds
the debootstrap tarball and a private podman storage (the base image and the build's layer
cache), so a second run neither debootstraps nor downloads packages again.

Needs root, podman, runc, netavark, aardvark-dns, docker-compose, debootstrap and iptables
(deploy/install-deps.sh --test); skips with the list of what is missing otherwise.
"""

import glob
import json
import os
import random
import shlex
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from conftest import slow_check, BUILD, ROOT, free_port, wait_for

DEPLOY = os.path.join(ROOT, "deploy")
CACHE = os.path.join(BUILD, "container-cache")
BASE_IMAGE = "localhost/debian:12-slim"
CACHE_TAG = "localhost/whtunnel-cache:%s"
AUX = ("redis", "haproxy", "prometheus", "demo")
HELLO = b"hello from the demo worker\n"
NETAVARK = "/usr/lib/podman/netavark"
AARDVARK = "/usr/lib/podman/aardvark-dns"


def missing_tools():
    miss = [t for t in ("podman", "runc", "docker-compose", "debootstrap", "iptables-save") if not shutil.which(t)]
    miss += [os.path.basename(p) for p in (NETAVARK, AARDVARK) if not os.path.exists(p)]
    return miss


def run(args, env, timeout=600, check=True):
    t0 = time.time()
    p = subprocess.run(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)
    out = p.stdout.decode(errors="replace")
    if check and p.returncode != 0:
        raise AssertionError("%s failed (%d) after %.1f s:\n%s" % (" ".join(args), p.returncode, time.time() - t0,
                                                                  out[-4000:]))
    return out


def get(url, timeout=10):
    """(status, body); status 0 when the connection failed."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except (OSError, urllib.error.URLError) as e:
        return 0, str(e).encode()


# ---- the host's state, and putting it back --------------------------------------------

# Made by podman, netavark and runc when absent. (/run/netns is left alone: `ip netns`
# shares it, and it is empty again once the containers are gone.)
# /var/lib/containers gets containers/image's blob cache whatever the storage settings.
RUN_DIRS = ("/run/containers", "/run/runc", "/run/libpod", "/var/lib/containers")
FORWARD_SYSCTLS = ("/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/ipv6/conf/all/forwarding")


def iptables_rules(cmd, table):
    p = subprocess.run([cmd, "-w", "-t", table, "-S"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    return p.stdout.decode().splitlines() if p.returncode == 0 else []


def host_state():
    s = {"sysctl": {}, "dirs": {d: os.path.exists(d) for d in RUN_DIRS}, "rules": {}}
    for f in FORWARD_SYSCTLS:
        if os.path.exists(f):
            with open(f) as fh:
                s["sysctl"][f] = fh.read().strip()
    for cmd in ("iptables", "ip6tables"):
        if shutil.which(cmd):
            for table in ("filter", "nat", "mangle"):
                s["rules"][(cmd, table)] = iptables_rules(cmd, table)
    return s


def ours(comm, text):
    """Pids of the processes named comm whose command line contains text."""
    pids = []
    for d in glob.glob("/proc/[0-9]*"):
        try:
            with open(d + "/comm") as f:
                if f.read().strip() != comm:
                    continue
            with open(d + "/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmd:
            pids.append(int(d.split("/")[2]))
    return pids


def restore_host(before, notes):
    """Undoes what podman and netavark left: NETAVARK iptables rules and chains that were not
    there before, the forwarding sysctls, the /run directories they created."""
    for (cmd, table), old in before["rules"].items():
        now = iptables_rules(cmd, table)
        added = [r for r in now if r not in old and "NETAVARK" in r]
        for r in added:
            if r.startswith("-A "):
                subprocess.run([cmd, "-w", "-t", table, "-D"] + shlex.split(r)[1:], stderr=subprocess.DEVNULL)
        for r in added:
            if r.startswith("-N "):
                chain = r.split()[1]
                subprocess.run([cmd, "-w", "-t", table, "-F", chain], stderr=subprocess.DEVNULL)
                subprocess.run([cmd, "-w", "-t", table, "-X", chain], stderr=subprocess.DEVNULL)
        if added:
            notes.append("removed %d %s %s NETAVARK rules/chains" % (len(added), cmd, table))
    for f, v in before["sysctl"].items():
        with open(f) as fh:
            if fh.read().strip() != v:
                notes.append("restored %s=%s" % (f, v))
                with open(f, "w") as w:
                    w.write(v)
    for d, existed in before["dirs"].items():
        if not existed and os.path.isdir(d) and not os.path.ismount(d):
            if d == "/run/containers":
                shutil.rmtree(d, ignore_errors=True)  # netavark's IPAM database and aardvark's config
            elif d == "/var/lib/containers":
                if os.listdir(d) != ["cache"]:
                    continue
                shutil.rmtree(d, ignore_errors=True)  # the blob cache only, no storage
            else:
                try:
                    os.rmdir(d)  # runc's state: empty once the containers are gone
                except OSError:
                    continue
            notes.append("removed " + d)


def leftovers(before):
    """What is still different from before (empty when restore_host did its job)."""
    left = []
    for (cmd, table), old in before["rules"].items():
        left += ["%s %s: %s" % (cmd, table, r) for r in iptables_rules(cmd, table) if r not in old and "NETAVARK" in r]
    for f, v in before["sysctl"].items():
        with open(f) as fh:
            if fh.read().strip() != v:
                left.append("%s is %s" % (f, v))
    left += [d for d, existed in before["dirs"].items() if not existed and os.path.exists(d)]
    return left


# ---- podman with a private storage and configuration under the cache --------------------

def podman_env():
    conf_dir = os.path.join(CACHE, "podman")
    os.makedirs(conf_dir, exist_ok=True)
    conf = os.path.join(conf_dir, "containers.conf")
    storage = os.path.join(conf_dir, "storage.conf")
    # runc (crun refuses this kind of kernel's hybrid cgroups); limits root may set here
    # (podman's default nofile of 1048576 is refused); netavark's and libpod's state
    # kept under the cache, not in /etc/containers and /run/libpod.
    with open(conf, "w") as f:
        f.write('[containers]\ndefault_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]\n'
                '[engine]\nruntime = "runc"\ntmp_dir = "%s/tmp"\n'
                '[network]\nnetwork_config_dir = "%s/networks"\n' % (conf_dir, conf_dir))
    with open(storage, "w") as f:
        f.write('[storage]\ndriver = "overlay"\ngraphroot = "%s/storage"\nrunroot = "%s/runroot"\n'
                % (conf_dir, conf_dir))
    env = dict(os.environ)
    env.update(CONTAINERS_CONF=conf, CONTAINERS_STORAGE_CONF=storage)
    return env


def free_subnet():
    """A /24 in 10.0.0.0/8 that no route on this host touches."""
    routes = subprocess.run(["ip", "-4", "route"], stdout=subprocess.PIPE).stdout.decode()
    for _ in range(100):
        a, b = random.randrange(100, 250), random.randrange(1, 250)
        if "10.%d." % a not in routes:
            return "10.%d.%d.0/24" % (a, b), "10.%d.%d.1" % (a, b)
    pytest.fail("no free 10.x.y.0/24 subnet")


class Compose:
    """The compose project, through podman's Docker-compatible socket."""

    def __init__(self, env, project, files, variables):
        self.env = dict(env)
        self.env.update(variables)
        self.project = project
        self.base = ["docker-compose", "-p", project] + sum((["-f", f] for f in files), [])

    def __call__(self, *args, timeout=300, check=True):
        return run(self.base + list(args), self.env, timeout=timeout, check=check)

    def container(self, service):
        return "%s_%s_1" % (self.project, service)  # docker-compose 1.29's names


def prom_query(port, q):
    status, body = get("http://127.0.0.1:%d/api/v1/query?query=%s" % (port, urllib.parse.quote(q)))
    if status != 200:
        return None
    return {r["metric"].get("instance", ""): float(r["value"][1]) for r in json.loads(body)["data"]["result"]}


def served_2xx(prom_port):
    """Viewer requests answered 2xx, per node, as Prometheus last scraped them."""
    return prom_query(prom_port, 'sum by (instance) (whtunnel_requests_total{path=~"local|relayed_out",code="2xx"})')


def test_compose_cluster():
    slow_check()
    if os.geteuid() != 0:
        pytest.skip("test_compose needs root (podman with netavark, debootstrap)")
    miss = missing_tools()
    if miss:
        pytest.skip("test_compose needs %s (deploy/install-deps.sh --test)" % ", ".join(miss))

    timings = {}
    notes = []
    before = host_state()
    env = podman_env()
    tag = "wht-test-%d" % os.getpid()
    images = ["localhost/whtunnel:" + tag] + ["localhost/whtunnel-%s:%s" % (t, tag) for t in AUX]
    sock_dir = os.path.join(CACHE, "podman")
    sock = os.path.join(sock_dir, "api-%d.sock" % os.getpid())
    service = None
    compose = None
    try:
        t0 = time.time()
        run([os.path.join(DEPLOY, "make-base-image.sh"), "--cache", CACHE, "--tag", BASE_IMAGE], env, timeout=600)
        timings["base image"] = time.time() - t0

        # Each image also gets a cache tag, which stays when the test's own tags go: the next
        # run rebuilds only what changed (the build stage's tag keeps its compiler layer).
        t0 = time.time()
        build = ["podman", "build", "-q", "--format", "docker", "--build-arg", "BASE=" + BASE_IMAGE]
        run(build + ["-f", os.path.join(DEPLOY, "Dockerfile"), "--target", "build", "-t", CACHE_TAG % "build", ROOT],
            env, timeout=900)
        run(build + ["-f", os.path.join(DEPLOY, "Dockerfile"), "-t", images[0], "-t", CACHE_TAG % "whtunnel", ROOT],
            env, timeout=900)
        timings["whtunnel image"] = time.time() - t0
        t0 = time.time()
        for t, name in zip(AUX, images[1:]):
            run(build + ["-f", os.path.join(DEPLOY, "compose", "Dockerfile"), "--target", t, "-t", name,
                         "-t", CACHE_TAG % t, os.path.join(DEPLOY, "compose")], env, timeout=600)
        timings["other images"] = time.time() - t0

        # The image: a non-root user, SIGTERM, a healthcheck. (Both programs work: the nodes
        # and the worker below run from it. No `podman run` here: each costs 20 s on this
        # kind of machine.)
        t0 = time.time()
        info = json.loads(run(["podman", "image", "inspect", images[0]], env))[0]
        cfg = info["Config"]
        assert cfg["User"] == "10001:10001", cfg["User"]
        assert cfg["StopSignal"] == "SIGTERM", cfg
        assert cfg["Entrypoint"] == ["whtunnel"], cfg
        assert info.get("Healthcheck", {}).get("Test") == ["CMD", "whtunnel-healthcheck"], info.get("Healthcheck")
        for want in ("PORT=8080", "WHT_PEER_ADDR=0.0.0.0:8081", "WHT_ADMIN_ADDR=0.0.0.0:8082"):
            assert want in cfg["Env"], cfg["Env"]
        timings["image checks"] = time.time() - t0

        service = subprocess.Popen(["podman", "system", "service", "--time=0", "unix://" + sock], env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def api_up():
            with socket.socket(socket.AF_UNIX) as s:
                return s.connect_ex(sock) == 0
        wait_for(api_up, 20, "podman's API socket")

        http_port, dash_port, prom_port = free_port(), free_port(), free_port()
        subnet, gateway = free_subnet()
        files = [os.path.join(DEPLOY, "docker-compose.yml"), os.path.join(DEPLOY, "compose", "podman.yml")]
        compose = Compose(env, "whtc%d" % os.getpid(), files, {
            "DOCKER_HOST": "unix://" + sock, "WHT_IMAGE_TAG": tag, "WHT_HTTP_PORT": str(http_port),
            "WHT_DASHBOARD_PORT": str(dash_port), "WHT_PROMETHEUS_PORT": str(prom_port), "WHT_SUBNET": subnet,
            "WHT_DNS": gateway, "WHT_PUBLIC_URL": "http://127.0.0.1:%d" % http_port,
            "COMPOSE_HTTP_TIMEOUT": "120"})

        t0 = time.time()
        compose("up", "-d", "--no-build")
        timings["compose up"] = time.time() - t0

        # The example worker registers through HAProxy; its site answers through every node:
        # nine 200s in a row (three rounds of HAProxy's round robin). With podman, a node's
        # first lookups of its peers' names may time out for some seconds after the start
        # (docs/deploy.md, "With podman"): counted, and reported.
        t0 = time.time()
        early, ok_early = [], []

        def settled():
            for _ in range(9):
                status, body = get("http://127.0.0.1:%d/demo/hello.txt" % http_port)
                if status != 200:
                    early.append(status)
                    return False
                ok_early.append(1)
            return True
        wait_for(settled, 120, "the demo worker through HAProxy, nine times in a row")
        timings["worker up"] = time.time() - t0
        notes.append("before the cluster settled: %d answers other than 200 %s" % (len(early), sorted(set(early))))
        status, body = get("http://127.0.0.1:%d/demo/" % http_port)
        assert status == 200 and b"Hello from the demo worker" in body, (status, body[:300])
        assert "http://127.0.0.1:%d/demo" % http_port in compose("logs", "--no-color", "worker")

        # Probes and the image's HEALTHCHECK on a running node.
        assert get("http://127.0.0.1:%d/healthz" % dash_port)[0] == 200
        run(["podman", "healthcheck", "run", compose.container("node1")], env)

        # Prometheus scrapes the three nodes.
        t0 = time.time()
        wait_for(lambda: prom_query(prom_port, 'up{job="whtunnel"}') ==
                 {"node1:8082": 1.0, "node2:8082": 1.0, "node3:8082": 1.0}, 30, "Prometheus scraping node1..3")

        timings["prometheus up"] = time.time() - t0
        # Requests through HAProxy reach every node: new connections, round robin.
        t0 = time.time()
        ok = 0
        for i in range(60):
            status, body = get("http://127.0.0.1:%d/demo/hello.txt?i=%d" % (http_port, i))
            assert (status, body) == (200, HELLO), (i, status, body[:300])
            ok += 1
        # every 200 this test received was counted by exactly one node (local or relayed_out)
        received = ok + len(ok_early) + 1  # and the 200s above (hello.txt while it came up, the index)
        wait_for(lambda: sum((served_2xx(prom_port) or {}).values()) >= received, 30,
                 "Prometheus to scrape the requests")
        per_node = served_2xx(prom_port)
        assert sum(per_node.values()) == received, (per_node, received)
        assert set(per_node) == {"node1:8082", "node2:8082", "node3:8082"} and min(per_node.values()) > 0, per_node

        timings["requests counted"] = time.time() - t0
        # HAProxy's PROXY header: the nodes log the viewer's address as HAProxy saw it (this
        # host, from the network's gateway), not HAProxy's own.
        logs = compose("logs", "--no-color", "node1", "node2", "node3")
        clients = set()
        for line in logs.splitlines():
            j = line.find("{")
            if j >= 0 and '"msg":"access"' in line and "/hello.txt" in line:
                clients.add(json.loads(line[j:])["client"])
        assert clients == {gateway}, clients

        # Stop the node holding the worker (docker-compose stop: SIGTERM, the node drains)
        # while a viewer keeps asking; none of its requests may fail.
        holders = prom_query(prom_port, "whtunnel_workers == 1")
        assert len(holders) == 1, holders
        holder = next(iter(holders)).split(":")[0]
        results = []
        stop = threading.Event()

        def viewer():
            i = 0
            while not stop.is_set() and i < 5000:
                status, body = get("http://127.0.0.1:%d/demo/hello.txt?d=%d" % (http_port, i), timeout=20)
                results.append((status, body == HELLO))
                i += 1
                time.sleep(0.02)
        th = threading.Thread(target=viewer)
        th.start()
        try:
            wait_for(lambda: len(results) >= 20, 30, "requests before the stop")
            t0 = time.time()
            compose("stop", "-t", "40", holder, timeout=120)
            timings["node stop (drain)"] = time.time() - t0
            n_at_stop = len(results)
            wait_for(lambda: len(results) >= n_at_stop + 50, 60, "requests after the stop")
        finally:
            stop.set()
            th.join(30)
        failed = [r for r in results if r != (200, True)]
        notes.append("during the stop of %s: %d requests, %d failed %s" % (holder, len(results), len(failed),
                                                                            sorted(set(failed))[:5]))
        assert not failed, notes[-1]

        # The worker registered on another node; the other two serve everything.
        t0 = time.time()
        wait_for(lambda: (lambda h: h is not None and len(h) == 1 and holder not in next(iter(h)))(
            prom_query(prom_port, "whtunnel_workers == 1")), 30, "the worker on another node")
        assert compose("logs", "--no-color", "worker").count("registered as demo") >= 2
        for i in range(30):
            status, body = get("http://127.0.0.1:%d/demo/hello.txt?after=%d" % (http_port, i))
            assert (status, body) == (200, HELLO), (i, status, body[:300])
        timings["worker moved"] = time.time() - t0
    except BaseException:
        if compose is not None:  # what each service said, for the failure's report
            print(compose("logs", "--no-color", "--tail=40", timeout=60, check=False)[-20000:])
        raise
    finally:
        t0 = time.time()
        if compose is not None:
            if service is not None and service.poll() is None:
                # the worker shares the demo's network namespace: it goes first, or podman
                # refuses to remove the demo (docker-compose 1.29 removes in parallel)
                compose("rm", "-s", "-f", "worker", timeout=120, check=False)
                out = compose("down", "-v", "--remove-orphans", "-t", "40", timeout=300, check=False)
                if "rror" in out:
                    notes.append("compose down: " + out[-500:])
        if service is not None:
            service.terminate()
            try:
                service.wait(20)
            except subprocess.TimeoutExpired:
                service.kill()
                service.wait(10)
        # what the API service could not remove, and the images built here (the base
        # image, and the layers in the build cache, stay)
        for c in run(["podman", "ps", "-a", "--format", "{{.Names}}"], env, check=False).split():
            if c.startswith("whtc%d_" % os.getpid()):
                run(["podman", "rm", "-f", "-t", "5", c], env, check=False)
        for n in run(["podman", "network", "ls", "--format", "{{.Name}}"], env, check=False).split():
            if n.startswith("whtc%d_" % os.getpid()):
                run(["podman", "network", "rm", "-f", n], env, check=False)
        run(["podman", "rmi"] + images, env, check=False)  # untags: the cache tags stay
        run(["podman", "image", "prune", "-f"], env, check=False)  # layers no tag needs any more
        for pid in ours("conmon", os.path.join(CACHE, "podman")):  # our containers' conmon, by its paths
            try:
                os.kill(pid, 9)
                notes.append("killed a leftover conmon %d" % pid)
            except ProcessLookupError:
                pass
        if not before["dirs"]["/run/containers"]:  # no other podman user's networks
            for pid in ours("aardvark-dns", "/run/containers/networks"):
                os.kill(pid, 15)
                notes.append("stopped aardvark-dns %d" % pid)
        for p in glob.glob(os.path.join(sock_dir, "*-%d.*" % os.getpid())) + [sock]:
            if os.path.exists(p):
                os.unlink(p)
        remaining = [c for c in run(["podman", "ps", "-a", "--format", "{{.Names}}"], env, check=False).split()
                     if c.startswith("whtc%d_" % os.getpid())]
        restore_host(before, notes)  # last: any podman command recreates /run/containers
        timings["teardown"] = time.time() - t0
        print("test_compose timings: " + ", ".join("%s %.1f s" % kv for kv in timings.items()))
        print("test_compose notes: " + "; ".join(notes))
    assert not remaining, remaining
    left = leftovers(before)
    assert not left, left
