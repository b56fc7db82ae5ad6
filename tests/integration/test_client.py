"""whclient against our node: reconnects, tokens on stdin, rejected tokens, --out-file,
and `whtunnel token` minting a token the node accepts."""

import http.client
import os
import subprocess
import time

import pytest

from conftest import SECRET_A, Client, Node, Proc, binary, free_port, make_token, wait_for


def status(node, path):
    return status_at(node.port, path)


def test_reconnects_after_node_restart(procs, backend):
    port = free_port()
    n = Node(port=port)
    procs.append(n)
    c = Proc([binary("whclient"), n.url, "rc", str(backend.port), "--token", make_token("rc")], name="client")
    procs.append(c)
    wait_for(lambda: status(n, "/rc/echo") == 200, 10, "first registration")
    n.stop()
    wait_for(lambda: "reconnecting in" in c.output(), 10, "the client to say it reconnects")
    n2 = Node(port=port)
    procs.append(n2)
    # backoff: 0.5 s x 1.5^n with full jitter, so a few seconds at most here
    wait_for(lambda: status(n2, "/rc/echo") == 200, 30, "re-registration after restart")
    assert c.alive()


def test_token_from_stdin_and_rejected_token(procs, backend, node):
    c = Proc([binary("whclient"), node.url, "st", str(backend.port)], name="client", stdin=subprocess.PIPE)
    procs.append(c)
    c.p.stdin.write((make_token("st", secret="wrong") + "\n").encode())
    c.p.stdin.flush()
    wait_for(lambda: "401" in c.output(), 10, "the client to report the rejected token")
    assert "waiting for a new token" in c.output()
    assert status(node, "/st/echo") == 404
    assert c.alive()
    c.p.stdin.write((make_token("st") + "\n").encode())
    c.p.stdin.flush()
    wait_for(lambda: status(node, "/st/echo") == 200, 10, "registration with the new token")
    # the token never appears in the logs
    assert make_token("st")[:40] not in c.output()


@pytest.mark.parametrize("token,words", [
    (lambda: make_token("why", secret="changed"), ["token signature is invalid", "secret changed"]),
    (lambda: make_token("someone-else"), ["tid does not match", "another worker id"]),
    (lambda: make_token("why", exp=int(time.time()) - 60, nbf=int(time.time()) - 600), ["expired"]),
])
def test_rejected_token_reason_and_hint(procs, backend, node, token, words):
    """whclient prints why the node refused its token, with the hint the node gives."""
    c = Proc([binary("whclient"), node.url, "why", str(backend.port), "--token", token()], name="client")
    procs.append(c)
    assert c.p.wait(10) == 1
    out = c.output()
    assert "token rejected by the node (401): " in out, out
    for w in words:
        assert w in out, out


def test_url_that_is_not_a_node(procs, tmp_path):
    """Pointed at a plain web server, whclient says the URL does not look like a node."""
    port = free_port()
    web = Proc(["/usr/bin/python3", "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory",
                str(tmp_path)])
    procs.append(web)
    wait_for(lambda: status_at(port, "/") == 200, 10, "the web server")
    c = Proc([binary("whclient"), "http://127.0.0.1:%d" % port, "nn", "1", "--token", make_token("nn")],
             name="client")
    procs.append(c)
    wait_for(lambda: "does not look like a webhooktunnel node" in c.output(), 10, "the client to say so")
    assert "HTTP 200" in c.output()


def test_tls_to_a_plain_port(procs, node, tmp_path):
    """wss:// to a port that does not speak TLS: whclient says the TLS
    handshake failed, and does not call it a wrong HTTP answer (status 0)."""
    c = Proc([binary("whclient"), "wss://127.0.0.1:%d" % node.port, "nt", "1", "--token", make_token("nt")],
             name="client")
    procs.append(c)
    wait_for(lambda: "cannot connect to wss://127.0.0.1:%d: the TLS handshake failed" % node.port in c.output(),
             10, "the client to say the TLS handshake failed")
    assert "HTTP 0" not in c.output(), c.output()


def status_at(port, path):
    try:
        h = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        h.request("GET", path)
        r = h.getresponse()
        r.read()
        return r.status
    except OSError:
        return None


def test_local_service_down(procs, node):
    """Nothing on the target port: whclient warns at start-up, and the viewer's 502 says that the
    worker could not reach its local service (the extension's reset reason), not that it went away."""
    dead = free_port()
    c = Client(node.url, "down", dead)
    procs.append(c)
    assert "nothing listens on 127.0.0.1:%d" % dead in c.output()
    h = http.client.HTTPConnection("127.0.0.1", node.port, timeout=10)
    h.request("GET", "/down/x")
    r = h.getresponse()
    body = r.read().decode()
    assert r.status == 502
    assert "could not reach its local service" in body, body
    assert c.alive()


def test_two_clients_with_one_id_are_told(procs, backend, node):
    """A replaced session hears why (close 4001): each whclient says it was replaced by another
    registration of its id, backs off, and after repeats says plainly what is going on."""
    a = Client(node.url, "twin", backend.port)
    procs.append(a)
    b = Client(node.url, "twin", backend.port)
    procs.append(b)
    wait_for(lambda: "replaced by another registration of twin" in a.output(), 10, "the first client to be told")
    assert "connection to the node lost" not in a.output()
    wait_for(lambda: "times in a row" in a.output() + b.output(), 60, "the plain message after repeats")
    assert "give each client its own id" in a.output() + b.output()
    # they back off: far fewer registrations than a tight loop would make in that time
    regs = a.output().count("registered as twin") + b.output().count("registered as twin")
    assert regs < 20, regs


def test_out_file(procs, backend, node, tmp_path):
    out = tmp_path / "url.txt"
    c = Proc([binary("whclient"), node.url, "of", str(backend.port), "--token", make_token("of"), "--out-file",
              str(out)], name="client")
    procs.append(c)
    wait_for(lambda: out.exists() and out.read_text().strip() == "%s/of" % node.url, 10, "the out file")


def test_bad_arguments_exit_2():
    r = subprocess.run([binary("whclient"), "ws://127.0.0.1:1", "id"], capture_output=True, timeout=10)
    assert r.returncode == 2
    assert b"usage" in r.stderr.lower()
    r = subprocess.run([binary("whclient"), "--help"], capture_output=True, timeout=10)
    assert r.returncode == 0


def test_whtunnel_token_subcommand(procs, backend, node):
    env = dict(os.environ, TASKCLUSTER_PROXY_SECRET_A=SECRET_A)
    r = subprocess.run([binary("whtunnel"), "token", "--id", "minted", "--ttl", "2h"], capture_output=True,
                       env=env, timeout=10)
    assert r.returncode == 0, r.stderr
    tok = r.stdout.decode().strip()
    c = Proc([binary("whclient"), node.url, "minted", str(backend.port), "--token", tok], name="client")
    procs.append(c)
    wait_for(lambda: status(node, "/minted/echo") == 200, 10, "registration with a minted token")
    r = subprocess.run([binary("whtunnel"), "token", "--id", "x", "--ttl", "40d"], capture_output=True, env=env,
                       timeout=10)
    assert r.returncode == 2
