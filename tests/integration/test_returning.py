"""A worker that restarts or moves fails no request that had not reached it (docs/node.md, "When a
worker restarts or moves").

Requests that wait for a stream slot on a worker's session, and requests whose stream the worker had
not accepted yet (and of whose body nothing was taken), are held when the session ends: a new
session of the same id on this node (a whclient restarted, or a newer registration replacing the
old one) or on another node of the cluster (relayed there) serves them; if none comes within
WHT_ACCEPT_TIMEOUT of their start, they get a 502 that says so. A request the worker had accepted,
or whose body went partly, is not sent again: 502 as before.

Real processes: whtunnel, whclient, the test backend, redis-server; the hostile worker that never
accepts is test_worker_protocol's FakeWorker (a raw socket speaking the Go client's protocol).
"""

import re
import threading
import time

import pytest

from conftest import Backend, Client, free_port, port_open, wait_for
from test_cluster import Redis, cluster_node, cprocs, wait_peers  # noqa: F401 (fixture)
from test_metrics import admin_node, metrics
from test_timeouts import MARGIN, Frames, Viewer, hostile
from test_worker_protocol import SYN, fakes  # noqa: F401 (fixture)

HELD = 'whtunnel_requests_held_total{outcome="%s"}'
BYTES_IN = "whtunnel_viewer_received_bytes_total"
LOST_TEXT = b"the worker left and did not come back within the accept limit"


def get(path):
    return b"GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path.encode()


def read_all(viewers, timeout=20):
    """(head, body) of each viewer, read on threads."""
    out = [None] * len(viewers)

    def read(i):
        try:
            out[i] = viewers[i].read_to_close(timeout)
        except Exception as e:  # noqa: BLE001
            out[i] = ("error %r" % e, b"")
    threads = [threading.Thread(target=read, args=(i,)) for i in range(len(viewers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout + 5)
    return out


def session_closed(node, wid, k=1):
    """k sessions of worker wid ended on node (its log says so)."""
    pat = re.compile(r"worker=%s session=\d+ closed" % re.escape(wid))
    wait_for(lambda: len(pat.findall(node.output())) >= k, 10, "the session of %s closed" % wid)


def logged(node, line):
    """The node logged line (its log is written out every few milliseconds)."""
    wait_for(lambda: line in node.output(), 5, "the log line %r" % line)


def held(node, outcome=None):
    m = metrics(node.admin)
    return m.get("whtunnel_requests_held", 0) if outcome is None else m.get(HELD % outcome, 0)


def busy_worker(node, wid, backend, waiting=3, slow_lines=30, via=None):
    """A slow request takes the worker's only slot on node (accepted: its backend is answering) and
    `waiting` more (sent to node, or to the node via that relays them to it) wait for the slot: node
    has read their heads (its received bytes say so; it queues a request as it reads its head).
    Returns (slow viewer, waiting viewers)."""
    slow = Viewer(node.port, get("/%s/slow?lines=%d" % (wid, slow_lines)))
    assert slow.read_head().startswith("HTTP/1.1 200 ")
    before = metrics(node.admin)[BYTES_IN]
    reqs = [get("/%s/bytes/%d" % (wid, 1000 + i)) for i in range(waiting)]
    viewers = [Viewer((via or node).port, r) for r in reqs]
    wait_for(lambda: metrics(node.admin)[BYTES_IN] - before >= sum(len(r) for r in reqs), 10,
             "%d requests waiting" % waiting)
    return slow, viewers


def admin_cluster_node(rds, name, env):
    """A cluster node with an admin listener (node.admin: its port)."""
    aport = free_port()
    n = cluster_node(rds, name, dict(env, WHT_ADMIN_ADDR="127.0.0.1:%d" % aport))
    wait_for(lambda: port_open(aport), 10, "admin listener")
    n.admin = aport
    return n


# ---- on one node ---------------------------------------------------------------------------------


@pytest.mark.parametrize("sig", [9, 15])
def test_restarted_worker_serves_the_waiting_requests(procs, sig):
    """whclient killed (SIGKILL), or stopped (SIGTERM: it closes its WebSocket), while requests wait
    for its only stream slot, started again within the limit: every waiting request is answered 200
    by the new session; the one it had accepted is not sent again."""
    n = admin_node(procs, {"WHT_MAX_STREAMS_PER_WORKER": "1", "WHT_QUEUE_TIMEOUT": "30s",
                           "WHT_ACCEPT_TIMEOUT": "10s"})
    b = Backend()
    procs.append(b)
    c = Client(n.url, "rw", b.port)
    procs.append(c)
    slow, viewers = busy_worker(n, "rw", b)
    c.stop(sig=sig)
    session_closed(n, "rw")
    time.sleep(0.5)  # the worker stays away a while
    c2 = Client(n.url, "rw", b.port)
    procs.append(c2)
    results = read_all(viewers)
    for i, (head, body) in enumerate(results):
        assert head.startswith("HTTP/1.1 200 "), (head, body)
        assert len(body) == 1000 + i
    head, body = slow.read_to_close()  # it had reached the backend: cut, not replayed
    assert b"0\r\n\r\n" not in body
    assert held(n, "returned") == 3 and held(n, "lost") == 0 and held(n) == 0


def test_worker_that_does_not_come_back(procs):
    """Killed and not restarted: the waiting requests get a 502 saying so, WHT_ACCEPT_TIMEOUT (2 s
    here) after they started, not before, not much after."""
    n = admin_node(procs, {"WHT_MAX_STREAMS_PER_WORKER": "1", "WHT_QUEUE_TIMEOUT": "30s",
                           "WHT_ACCEPT_TIMEOUT": "2s"})
    b = Backend()
    procs.append(b)
    c = Client(n.url, "gone", b.port)
    procs.append(c)
    slow, viewers = busy_worker(n, "gone", b)
    c.stop(sig=9)
    results = read_all(viewers)
    for v, (head, body) in zip(viewers, results):
        assert head.startswith("HTTP/1.1 502 "), head
        assert LOST_TEXT in body, body
        elapsed = v.closed_at - v.sent_at
        assert 2.0 * 0.95 <= elapsed < 2.0 + MARGIN, "502 after %.3f s" % elapsed
    assert held(n, "lost") == 3 and held(n) == 0
    # a worker of that id registering afterwards finds nothing waiting
    c2 = Client(n.url, "gone", b.port)
    procs.append(c2)
    assert held(n, "returned") == 0


def test_unaccepted_stream_goes_to_the_next_session(procs, fakes):
    """A worker that never accepted the stream (its SYN unanswered) closes its connection; a real
    whclient registers the same id: the request is served by it, head and all, once."""
    n = admin_node(procs, {"WHT_ACCEPT_TIMEOUT": "10s"})
    b = Backend()
    procs.append(b)
    fw = hostile(fakes, n.port, wid="flaky")
    frames = Frames(fw)
    v = Viewer(n.port, get("/flaky/echo/once?x=1"))
    frames.wait(SYN)
    fw.close()
    session_closed(n, "flaky")
    c = Client(n.url, "flaky", b.port)
    procs.append(c)
    head, body = v.read_to_close()
    assert head.startswith("HTTP/1.1 200 "), (head, body)
    assert b'"target": "/echo/once?x=1"' in body
    assert held(n, "returned") == 1


def test_replaced_session_hands_over_its_unaccepted_streams(procs, fakes):
    """The worker that does not accept stays connected; a newer registration of its id (a real
    whclient) replaces its session: the unaccepted request and the one waiting behind it go to the new
    session at once."""
    n = admin_node(procs, {"WHT_ACCEPT_TIMEOUT": "10s", "WHT_MAX_STREAMS_PER_WORKER": "1",
                           "WHT_QUEUE_TIMEOUT": "30s"})
    b = Backend()
    procs.append(b)
    fw = hostile(fakes, n.port, wid="twice")
    frames = Frames(fw)
    first = Viewer(n.port, get("/twice/echo/first"))
    frames.wait(SYN)
    before = metrics(n.admin)[BYTES_IN]
    req = get("/twice/echo/second")
    second = Viewer(n.port, req)  # waits for the only slot
    wait_for(lambda: metrics(n.admin)[BYTES_IN] - before >= len(req), 10, "the second request waiting")
    t0 = time.time()
    c = Client(n.url, "twice", b.port)
    procs.append(c)
    for v, path in ((first, b"/echo/first"), (second, b"/echo/second")):
        head, body = v.read_to_close()
        assert head.startswith("HTTP/1.1 200 "), (head, body)
        assert b'"target": "%s"' % path in body
    assert time.time() - t0 < 5  # not after a limit
    assert held(n, "returned") == 2


def test_request_whose_body_went_is_not_replayed(procs, fakes):
    """A POST whose body had partly gone into the stream the worker never accepted: when the worker
    goes, 502 at once, as before; a worker of that id registering afterwards does not get it."""
    n = admin_node(procs, {"WHT_ACCEPT_TIMEOUT": "10s"})
    b = Backend()
    procs.append(b)
    fw = hostile(fakes, n.port, wid="body")
    frames = Frames(fw)
    m0 = metrics(n.admin)
    head = b"POST /body/mirror HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"
    v = Viewer(n.port, head + b"x" * 10000)
    frames.wait(SYN)
    # the body's first 10,000 bytes were taken from the viewer into the (unaccepted) stream
    wait_for(lambda: metrics(n.admin)[BYTES_IN] - m0[BYTES_IN] >= len(head) + 10000, 5, "the body taken")
    t0 = time.time()
    fw.close()
    head, body = v.read_to_close()
    assert head.startswith("HTTP/1.1 502 ") and b"went away before answering" in body, (head, body)
    assert time.time() - t0 < 2
    assert held(n) == 0 and sum(held(n, k) for k in ("returned", "moved", "lost")) == 0


def test_request_whose_body_was_not_sent_yet_is_replayed(procs, fakes):
    """A POST whose body the viewer had not sent yet when the worker went (nothing of it taken): held,
    served by the next session with the body the viewer sends then."""
    n = admin_node(procs, {"WHT_ACCEPT_TIMEOUT": "10s"})
    b = Backend()
    procs.append(b)
    fw = hostile(fakes, n.port, wid="later")
    frames = Frames(fw)
    v = Viewer(n.port, b"POST /later/mirror HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 5\r\n\r\n")
    frames.wait(SYN)
    fw.close()
    session_closed(n, "later")
    v.s.sendall(b"hello")
    c = Client(n.url, "later", b.port)
    procs.append(c)
    head, body = v.read_to_close()
    assert head.startswith("HTTP/1.1 200 ") and body == b"hello", (head, body)


# ---- in a cluster -------------------------------------------------------------------------------


def test_worker_that_reconnects_to_another_node(cprocs):
    """Two nodes and Redis: the worker's whclient on node 1 is killed while requests wait for its only
    slot there; it comes back on node 2: node 1 relays the waiting requests there (it hears of the
    registration through the registry's `set`), each answered 200."""
    rds = Redis()
    cprocs.append(rds)
    env = {"WHT_MAX_STREAMS_PER_WORKER": "1", "WHT_QUEUE_TIMEOUT": "30s", "WHT_ACCEPT_TIMEOUT": "10s"}
    n1 = admin_cluster_node(rds, "n1", env)
    cprocs.append(n1)
    n2 = cluster_node(rds, "n2", env)
    cprocs.append(n2)
    wait_peers([n1, n2], 1)
    b = Backend()
    cprocs.append(b)
    c = Client(n1.url, "mover", b.port)
    cprocs.append(c)
    slow, viewers = busy_worker(n1, "mover", b)
    c.stop(sig=9)
    session_closed(n1, "mover")
    c2 = Client(n2.url, "mover", b.port)
    cprocs.append(c2)
    results = read_all(viewers)
    for i, (head, body) in enumerate(results):
        assert head.startswith("HTTP/1.1 200 "), (head, body)
        assert len(body) == 1000 + i
    logged(n1, "worker=mover left: 3 requests wait for its next session")
    logged(n1, "worker=mover registered on another node: the requests waiting for it go there")


def test_unaccepted_stream_follows_a_takeover(cprocs, fakes):
    """Two nodes and Redis: the worker on node 1 never accepts the stream of a request and stays
    connected; a whclient registers the same id on node 2: node 1 closes its session (a newer
    registration lives elsewhere) and relays the unaccepted request there, answered 200."""
    rds = Redis()
    cprocs.append(rds)
    env = {"WHT_ACCEPT_TIMEOUT": "10s"}
    n1 = admin_cluster_node(rds, "n1", env)
    cprocs.append(n1)
    n2 = cluster_node(rds, "n2", env)
    cprocs.append(n2)
    wait_peers([n1, n2], 1)
    b = Backend()
    cprocs.append(b)
    fw = hostile(fakes, n1.port, wid="taken")
    frames = Frames(fw)
    v = Viewer(n1.port, get("/taken/echo/over?y=2"))
    frames.wait(SYN)
    c = Client(n2.url, "taken", b.port)
    cprocs.append(c)
    head, body = v.read_to_close()
    assert head.startswith("HTTP/1.1 200 "), (head, body)
    assert b'"target": "/echo/over?y=2"' in body
    logged(n1, "worker=taken registered on another node: the requests waiting for it go there")


def test_relayed_requests_follow_the_worker_to_a_third_node(cprocs):
    """Three nodes: requests that reached the worker's node 1 through node 3 (relayed) wait there for
    the only slot; the worker's whclient is killed and comes back on node 2: node 1 sends them on to
    node 2 (a second hop: they had reached no worker), and node 3's viewers get their 200."""
    rds = Redis()
    cprocs.append(rds)
    env = {"WHT_MAX_STREAMS_PER_WORKER": "1", "WHT_QUEUE_TIMEOUT": "30s", "WHT_ACCEPT_TIMEOUT": "10s"}
    nodes = [admin_cluster_node(rds, "n%d" % (i + 1), env) for i in range(3)]
    cprocs.extend(nodes)
    n1, n2, n3 = nodes
    wait_peers(nodes, 2)
    b = Backend()
    cprocs.append(b)
    c = Client(n1.url, "hop", b.port)
    cprocs.append(c)
    wait_for(lambda: Viewer(n3.port, get("/hop/status/204")).read_to_close(5)[0].startswith("HTTP/1.1 204 "), 10,
             "hop routed through node 3")
    slow, viewers = busy_worker(n1, "hop", b, via=n3)
    c.stop(sig=9)
    session_closed(n1, "hop")
    c2 = Client(n2.url, "hop", b.port)
    cprocs.append(c2)
    results = read_all(viewers)
    for i, (head, body) in enumerate(results):
        assert head.startswith("HTTP/1.1 200 "), (head, body)
        assert len(body) == 1000 + i
    logged(n1, "worker=hop left: 3 requests wait for its next session")
    logged(n1, "worker=hop registered on another node: the requests waiting for it go there")
