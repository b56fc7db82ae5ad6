"""Keep-alive viewers of one worker take turns with queued ones: a viewer connection gives its
stream slot up after a response when other requests wait for one (found by bench.sh part
streams: with 1,000 keep-alive viewers and 128 slots, the 128 first connections kept their
streams from request to request and the 872 others got 503 after WHT_QUEUE_TIMEOUT)."""

import http.client
import threading
import time

from conftest import Client, Node

VIEWERS = 6
SECONDS = 3.0


def viewer(port, path, out, i):
    """Keep-alive GETs on one connection for SECONDS; out[i] = (ok, statuses that were not 200)."""
    ok, bad = 0, []
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    deadline = time.monotonic() + SECONDS
    try:
        for _ in range(100000):  # bounded; the deadline ends it first
            if time.monotonic() > deadline:
                break
            conn.request("GET", path)
            resp = conn.getresponse()
            body = resp.read()
            if resp.status == 200 and len(body) == 1000:
                ok += 1
            else:
                bad.append(resp.status)
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    except OSError as e:
        bad.append(repr(e))
    finally:
        conn.close()
        out[i] = (ok, bad)


def test_keepalive_viewers_share_the_stream_slots(procs, backend):
    node = Node({"WHT_MAX_STREAMS_PER_WORKER": "2", "WHT_QUEUE_TIMEOUT": "1s", "WHT_LOG_LEVEL": "info"})
    procs.append(node)
    procs.append(Client(node.url, "fair", backend.port))
    out = [None] * VIEWERS
    threads = [threading.Thread(target=viewer, args=(node.port, "/fair/bytes/1000", out, i))
               for i in range(VIEWERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(SECONDS + 30)
    assert all(o is not None for o in out), "a viewer thread did not finish: %s" % out
    for i, (ok, bad) in enumerate(out):
        assert not bad, "viewer %d: %d answers of 200, then %s (all: %s)" % (i, ok, bad[:5], out)
        assert ok > 0, out
