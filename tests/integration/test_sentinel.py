"""Redis Sentinel: three real nodes find their Redis master through three real
sentinels (Debian's redis-sentinel) and follow it across a failover.

A master, a replica and three sentinels (down-after 1 s) on 127.0.0.1; three
nodes with WHT_REDIS_SENTINELS; workers on every node, every route cached on
every node. Then the master is killed with SIGKILL while a load loop sends
viewer requests through every node to every worker (most of them relayed to
another node). Measured and asserted: no request to a cached worker fails;
a worker registered after the kill gets into the new master's registry and
is found by the other nodes (a cache miss) within a bound; the new master's
registry holds every worker (re-asserted). The figures are printed.
"""

import http.client
import os
import shutil
import threading
import time

import pytest
import redis

from conftest import Backend, Client, Node, Proc, free_port, port_open, sanitizer_reports, slow_check, wait_for

REDIS_SERVER = os.environ.get("WHT_REDIS_SERVER") or shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_SENTINEL = shutil.which("redis-sentinel") or ("/usr/bin/redis-sentinel" if os.path.exists(
    "/usr/bin/redis-sentinel") else None)
pytestmark = pytest.mark.skipif(
    not REDIS_SENTINEL or not os.path.exists(REDIS_SERVER),
    reason="redis-sentinel not installed (Debian package redis-sentinel: deploy/install-deps.sh --test)")

PASSWORD = "sentinel-test-password"
MASTER = "whtmaster"
CLUSTER_SECRET = "cluster-secret-for-tests-0123456789"
PREFIX = "t:"
BOUND_S = 30  # registrations and cache misses work again within this after the kill


class RedisServer(Proc):
    def __init__(self, tmp_path, replica_of=None):
        self.port = free_port()
        d = tmp_path / ("redis%d" % self.port)  # a replica writes the RDB of its first sync there
        d.mkdir()
        args = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--requirepass", PASSWORD, "--masterauth", PASSWORD, "--dir", str(d)]
        if replica_of:
            args += ["--replicaof", "127.0.0.1", str(replica_of)]
        super().__init__(args, name="redis")
        wait_for(lambda: port_open(self.port), 10, "redis-server to listen on %d" % self.port)

    def client(self):
        return redis.Redis(host="127.0.0.1", port=self.port, password=PASSWORD, socket_timeout=5,
                           decode_responses=True)

    def role(self):
        return self.client().execute_command("ROLE")[0]


class Sentinel(Proc):
    def __init__(self, tmp_path, master_port, i):
        self.port = free_port()
        conf = tmp_path / ("sentinel%d.conf" % i)
        conf.write_text("\n".join([
            "port %d" % self.port, "bind 127.0.0.1", "dir %s" % tmp_path,
            "sentinel monitor %s 127.0.0.1 %d 2" % (MASTER, master_port),
            "sentinel auth-pass %s %s" % (MASTER, PASSWORD),
            "sentinel down-after-milliseconds %s 1000" % MASTER,
            "sentinel failover-timeout %s 5000" % MASTER,
            "sentinel parallel-syncs %s 1" % MASTER, ""]))
        super().__init__([REDIS_SENTINEL, str(conf)], name="sentinel")
        wait_for(lambda: port_open(self.port) or not self.alive(), 10, "sentinel to listen on %d" % self.port)
        assert self.alive(), self.output()

    def client(self):
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5, decode_responses=True)

    def master_info(self):
        raw = self.client().execute_command("SENTINEL", "MASTER", MASTER)
        if isinstance(raw, dict):
            return raw
        return dict(zip(raw[::2], raw[1::2]))


def status(node):
    import json
    c = http.client.HTTPConnection("127.0.0.1", node.port, timeout=5)
    c.request("GET", "/__cluster__")
    st = json.loads(c.getresponse().read())
    c.close()
    return st


def get_status(node, wid, timeout=5):
    """The status of GET /<wid>/status/204 through node (0 for a connection error)."""
    try:
        c = http.client.HTTPConnection("127.0.0.1", node.port, timeout=timeout)
        c.request("GET", "/%s/status/204" % wid)
        r = c.getresponse()
        r.read()
        c.close()
        return r.status
    except (OSError, http.client.HTTPException):
        return 0


class Load:
    """One thread per node, each sending GET /<worker>/status/204 for every worker
    in turn, on new connections, until stopped (at most limit_s)."""

    def __init__(self, nodes, workers, limit_s=90):
        self.nodes, self.workers, self.limit_s = nodes, workers, limit_s
        self.stop_ev = threading.Event()
        self.sent, self.failed = 0, []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, args=(n,)) for n in nodes]

    def run(self, node):
        deadline = time.time() + self.limit_s
        i = 0
        while not self.stop_ev.is_set() and time.time() < deadline:
            wid = self.workers[i % len(self.workers)]
            i += 1
            st = get_status(node, wid)
            with self.lock:
                self.sent += 1
                if st != 204:
                    self.failed.append((round(time.time(), 3), node.port, wid, st))
            time.sleep(0.005)

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop_ev.set()
        for t in self.threads:
            t.join(30)


@pytest.fixture
def sprocs():
    started = []
    yield started
    for p in reversed(started):
        p.stop()
    reports = []
    for p in started:
        if p.name in ("redis", "sentinel"):
            continue
        reports += ["%s %s: %s" % (p.name, p.log.name, line) for line in sanitizer_reports(p)]
    if reports:
        pytest.fail("sanitizer reports:\n" + "\n".join(reports[:20]), pytrace=False)


def sentinel_node(sentinels, name, extra=None):
    env = {"REDIS_URL": "redis://:%s@/" % PASSWORD,
           "WHT_REDIS_SENTINELS": ",".join("127.0.0.1:%d" % s.port for s in sentinels),
           "WHT_REDIS_MASTER": MASTER, "WHT_NODE_ID": name, "WHT_PEER_ADDR": "127.0.0.1:0",
           "WHT_CLUSTER_SECRET": CLUSTER_SECRET, "WHT_REDIS_PREFIX": PREFIX}
    env.update(extra or {})
    return Node(env=env)


def start_sentinels(sprocs, tmp_path):
    """A master with one replica in sync, and three sentinels that know each other."""
    master = RedisServer(tmp_path)
    sprocs.append(master)
    replica = RedisServer(tmp_path, replica_of=master.port)
    sprocs.append(replica)
    wait_for(lambda: replica.client().info("replication").get("master_link_status") == "up", 15,
             "the replica to sync")
    sentinels = []
    for i in range(3):
        s = Sentinel(tmp_path, master.port, i)
        sprocs.append(s)
        sentinels.append(s)
    for s in sentinels:
        wait_for(lambda: int(s.master_info().get("num-other-sentinels", 0)) == 2
                 and int(s.master_info().get("num-slaves", 0)) == 1, 30,
                 "sentinel %d to see the others and the replica" % s.port)
    return master, replica, sentinels


def test_sentinel_settings_are_checked(sprocs):
    """Both settings or neither, a host-less REDIS_URL, and clear errors naming the setting."""
    import subprocess
    from conftest import binary

    def run(env):
        e = dict(os.environ, PORT=str(free_port()), WHT_LISTEN_ADDR="127.0.0.1", WHT_CLUSTER_SECRET=CLUSTER_SECRET,
                 TASKCLUSTER_PROXY_SECRET_A="a")
        e.update(env)
        p = subprocess.run([binary("whtunnel")], env=e, capture_output=True, timeout=10)
        return p.returncode, p.stderr.decode()

    rc, err = run({"WHT_REDIS_SENTINELS": "127.0.0.1:1"})
    assert rc != 0 and "WHT_REDIS_MASTER (--redis-master)" in err and "go together" in err, err
    rc, err = run({"WHT_REDIS_MASTER": "m"})
    assert rc != 0 and "go together" in err, err
    rc, err = run({"WHT_REDIS_SENTINELS": "127.0.0.1:1,", "WHT_REDIS_MASTER": "m"})
    assert rc != 0 and "invalid WHT_REDIS_SENTINELS (--redis-sentinels)" in err, err
    rc, err = run({"WHT_REDIS_SENTINELS": "127.0.0.1:1", "WHT_REDIS_MASTER": "my master"})
    assert rc != 0 and "invalid WHT_REDIS_MASTER (--redis-master)" in err, err
    rc, err = run({"WHT_REDIS_SENTINELS": "127.0.0.1:1", "WHT_REDIS_MASTER": "m",
                   "REDIS_URL": "redis://:topsecret@redis-host:6379/2"})
    assert rc != 0 and "REDIS_URL" in err and "without a host" in err and "topsecret" not in err, err
    rc, err = run({"REDIS_URL": "rediss://:topsecret@h:6379"})
    assert rc != 0 and "rediss:// is not supported: hiredis 0.14 has no TLS" in err and "topsecret" not in err, err
    rc, err = run({"WHT_REDIS_SENTINELS": "127.0.0.1:1", "WHT_REDIS_MASTER": "m", "WHT_CLUSTER_SECRET": ""})
    assert rc != 0 and "WHT_CLUSTER_SECRET" in err, err


def test_failover_keeps_cached_routes_and_registrations_come_back(sprocs, tmp_path):
    backend = Backend()
    sprocs.append(backend)
    master, replica, sentinels = start_sentinels(sprocs, tmp_path)
    nodes = []
    for i in range(3):
        n = sentinel_node(sentinels, "n%d" % (i + 1))
        sprocs.append(n)
        nodes.append(n)
    for n in nodes:
        wait_for(lambda: status(n)["redis_up"] and status(n)["peers_up"] == 2 and status(n)["sentinel_watching"],
                 15, "node %d to find the master and its peers" % n.port)
        assert status(n)["redis_master"] == "127.0.0.1:%d" % master.port
    workers = []
    for i, n in enumerate(nodes):  # two workers per node
        for k in range(2):
            wid = "w%d%d" % (i + 1, k + 1)
            sprocs.append(Client(n.url, wid, backend.port))
            workers.append(wid)
    for n in nodes:  # every route cached on every node
        for wid in workers:
            wait_for(lambda: get_status(n, wid) == 204, 10, "%s through node %d" % (wid, n.port))
    rm = master.client()
    wait_for(lambda: all(rm.get(PREFIX + "w:" + w) for w in workers), 10, "the registry to hold every worker")

    with Load(nodes, workers) as load:
        wait_for(lambda: load.sent >= 30, 10, "the load to start")
        sent_before = load.sent
        t0 = time.time()
        master.p.kill()  # SIGKILL
        master.p.wait()
        late = Client(nodes[1].url, "late1", backend.port)  # registered while there is no master
        sprocs.append(late)
        t_late = time.time() - t0

        wait_for(lambda: replica.role() == "master", BOUND_S, "the sentinels to promote the replica")
        t_promoted = time.time() - t0
        rr = replica.client()
        wait_for(lambda: rr.get(PREFIX + "w:late1"), BOUND_S, "late1 in the new master's registry")
        t_registered = time.time() - t0
        for n in (nodes[0], nodes[2]):  # a cache miss on the other nodes, answered by the new master
            wait_for(lambda: get_status(n, "late1", timeout=2) == 204, BOUND_S, "late1 through node %d" % n.port)
        t_miss = time.time() - t0
        # a registration made after the failover: recorded and found elsewhere at once
        t1 = time.time()
        sprocs.append(Client(nodes[2].url, "late2", backend.port))
        wait_for(lambda: get_status(nodes[0], "late2", timeout=2) == 204, BOUND_S, "late2 through node 1")
        t_new = time.time() - t1
        for n in nodes:
            wait_for(lambda: status(n)["redis_master"] == "127.0.0.1:%d" % replica.port and status(n)["redis_up"],
                     BOUND_S, "node %d on the new master" % n.port)
        time.sleep(1.0)  # keep the load going on the new master a moment
        sent_during = load.sent - sent_before

    assert load.failed == [], "requests to cached workers failed: %s" % load.failed[:10]
    # every worker re-asserted into the new master's registry, each naming its node
    for i in range(3):
        for k in range(2):
            v = rr.get(PREFIX + "w:w%d%d" % (i + 1, k + 1))
            assert v and v.split(" ")[1] == "n%d" % (i + 1), v
    assert rr.get(PREFIX + "w:late1").split(" ")[1] == "n2"
    assert rr.get(PREFIX + "w:late2").split(" ")[1] == "n3"
    changes = [status(n)["redis_master_changes"] for n in nodes]
    assert changes == [1, 1, 1], changes
    for n in nodes:
        assert "redis master %s changed from 127.0.0.1:%d to 127.0.0.1:%d" % (MASTER, master.port,
                                                                               replica.port) in n.output()
    print("\nsentinel failover figures (s after SIGKILL of the master): replica promoted %.2f, worker registered "
          "during the outage (client up at %.2f) in the new master's registry %.2f, found by the other nodes "
          "(cache miss) %.2f; a registration after the failover found elsewhere in %.3f s; viewer requests to "
          "cached workers during it: %d sent, %d failed; master changes seen per node %s"
          % (t_promoted, t_late, t_registered, t_miss, t_new, sent_during, len(load.failed), changes))
    assert t_registered < BOUND_S and t_miss < BOUND_S


def test_a_stale_sentinel_naming_a_replica_is_not_followed(sprocs, tmp_path):
    """The first sentinel of the list names the replica (as a sentinel cut off
    during a failover would): ROLE says it is no master, so the nodes ask the
    next sentinel and run on the real master."""
    master, replica, sentinels = start_sentinels(sprocs, tmp_path)
    stale_port = free_port()
    conf = tmp_path / "stale.conf"
    conf.write_text("\n".join([
        "port %d" % stale_port, "bind 127.0.0.1", "dir %s" % tmp_path,
        "sentinel monitor %s 127.0.0.1 %d 3" % (MASTER, replica.port),  # the replica, as if it were the master
        "sentinel auth-pass %s %s" % (MASTER, PASSWORD), ""]))
    stale = Proc([REDIS_SENTINEL, str(conf)], name="sentinel")
    sprocs.append(stale)
    wait_for(lambda: port_open(stale_port), 10, "the stale sentinel to listen")
    sc = redis.Redis(host="127.0.0.1", port=stale_port, socket_timeout=5, decode_responses=True)
    assert sc.execute_command("SENTINEL", "get-master-addr-by-name", MASTER) == ["127.0.0.1", str(replica.port)]

    env = {"REDIS_URL": "redis://:%s@/" % PASSWORD, "WHT_NODE_ID": "n1", "WHT_PEER_ADDR": "127.0.0.1:0",
           "WHT_CLUSTER_SECRET": CLUSTER_SECRET, "WHT_REDIS_PREFIX": PREFIX, "WHT_REDIS_MASTER": MASTER,
           "WHT_REDIS_SENTINELS": ",".join("127.0.0.1:%d" % p for p in [stale_port] + [s.port for s in sentinels])}
    node = Node(env=env)
    sprocs.append(node)
    backend = Backend()
    sprocs.append(backend)
    sprocs.append(Client(node.url, "w1", backend.port))
    wait_for(lambda: master.client().get(PREFIX + "w:w1"), 15, "w1 in the master's registry")
    st = status(node)
    assert st["redis_up"] and st["redis_master"] == "127.0.0.1:%d" % master.port, st
    assert "redis at 127.0.0.1:%d is a replica, not a master" % replica.port in node.output()
    assert replica.client().get(PREFIX + "w:w1")  # replicated from the master, not written to the replica


def test_manual_failovers_are_followed_both_ways(sprocs, tmp_path):
    """SENTINEL FAILOVER: the old master stays up and becomes a replica. The
    nodes follow the switch (and never keep writing to the demoted master),
    then follow a second failover back; no request to a cached worker fails.
    About 30 s (Sentinel takes 10 s to demote the old master before the second
    failover may start): a slow check."""
    slow_check()
    backend = Backend()
    sprocs.append(backend)
    master, replica, sentinels = start_sentinels(sprocs, tmp_path)
    nodes = []
    for i in range(2):
        n = sentinel_node(sentinels, "n%d" % (i + 1))
        sprocs.append(n)
        nodes.append(n)
    workers = []
    for i, n in enumerate(nodes):
        sprocs.append(Client(n.url, "w%d" % (i + 1), backend.port))
        workers.append("w%d" % (i + 1))
    for n in nodes:
        for wid in workers:
            wait_for(lambda: get_status(n, wid) == 204, 15, "%s through node %d" % (wid, n.port))
    sc = sentinels[0].client()
    figures = []
    with Load(nodes, workers) as load:
        for k, (old, new) in enumerate([(master, replica), (replica, master)]):
            wait_for(lambda: sc.execute_command("SENTINEL", "FAILOVER", MASTER), BOUND_S,
                     "the sentinel to accept a failover")
            t0 = time.time()
            wait_for(lambda: new.role() == "master", BOUND_S, "the replica to be promoted")
            t_promoted = time.time() - t0
            for n in nodes:
                wait_for(lambda: status(n)["redis_master"] == "127.0.0.1:%d" % new.port and status(n)["redis_up"],
                         BOUND_S, "node %d on the new master" % n.port)
            t_follow = time.time() - t0
            rn = new.client()
            wait_for(lambda: all(rn.get(PREFIX + "w:" + w) for w in workers), BOUND_S, "the registry re-asserted")
            wait_for(lambda: old.role() == "slave", BOUND_S, "the sentinels to demote the old master")
            figures.append((round(t_promoted, 2), round(t_follow, 2), round(time.time() - t0, 2)))
            assert [status(n)["redis_master_changes"] for n in nodes] == [k + 1, k + 1]
            # the old master, a replica now, took no write from the nodes: its keys are the new master's
            wait_for(lambda: old.client().get(PREFIX + "w:w1") == rn.get(PREFIX + "w:w1"), 10, "replication")
    assert load.failed == [], load.failed[:10]
    print("\nmanual failovers (s after SENTINEL FAILOVER: replica promoted, every node on it, old master a replica)"
          ": %s; %d viewer requests, none failed" % (figures, load.sent))
