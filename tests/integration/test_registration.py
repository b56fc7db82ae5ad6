"""Worker registration against a real node: status codes, tokens, client URLs.

Registration requests are made by hand over a raw socket (an independent
client), so every header and status can be controlled."""

import base64
import os
import re
import socket
import time

import pytest

from conftest import SECRET_A, SECRET_B, Client, Node, make_token, read_all, wait_for


def register(port, wid="w1", token=None, headers=None, path="/", upgrade=True, id_header="X-Websocktunnel-Id",
             auth=None, method="GET"):
    """Sends a registration request; returns (status, headers dict, socket)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    lines = ["%s %s HTTP/1.1" % (method, path), "Host: 127.0.0.1:%d" % port]
    if upgrade:
        lines += ["Upgrade: websocket", "Connection: Upgrade",
                  "Sec-WebSocket-Key: " + base64.b64encode(os.urandom(16)).decode(), "Sec-WebSocket-Version: 13"]
    if id_header and wid is not None:
        lines.append("%s: %s" % (id_header, wid))
    if auth is not None:
        lines.append("Authorization: " + auth)
    elif token is not False:
        lines.append("Authorization: Bearer " + (token or make_token(wid)))
    lines += headers or []
    s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    head = data.split(b"\r\n\r\n")[0].decode()
    status = int(head.split(" ")[1])
    hdrs = {}
    for line in head.split("\r\n")[1:]:
        k, v = line.split(":", 1)
        hdrs[k.strip().lower()] = v.strip()
    return status, hdrs, s


def test_success_both_header_families(node):
    for hdr in ("X-Websocktunnel-Id", "X-Webhooktunnel-Id", "x-websocktunnel-id"):
        status, h, s = register(node.port, "w-" + hdr[2:5].lower(), id_header=hdr)
        assert status == 101
        url = "%s/w-%s" % (node.url, hdr[2:5].lower())
        assert h["x-websocktunnel-client-url"] == url
        assert h["x-webhooktunnel-client-url"] == url
        assert "x-whtunnel-ext" not in h  # not offered, not answered
        s.close()


def test_extension_offer_is_confirmed(node):
    status, h, s = register(node.port, "ext1", headers=["X-Whtunnel-Ext: 1"])
    assert status == 101
    assert h.get("x-whtunnel-ext") == "1"
    s.close()


def test_url_prefix(procs):
    n = Node(env={"URL_PREFIX": "https://tunnel.example.com/"})
    procs.append(n)
    status, h, s = register(n.port, "abc")
    assert status == 101
    assert h["x-websocktunnel-client-url"] == "https://tunnel.example.com/abc"


def test_domain_mode_url(procs):
    n = Node(env={"WHT_DOMAIN": "tunnel.example.com", "URL_PREFIX": "https://tunnel.example.com:8443"})
    procs.append(n)
    status, h, s = register(n.port, "abc")
    assert status == 101
    assert h["x-websocktunnel-client-url"] == "https://abc.tunnel.example.com:8443"


@pytest.mark.parametrize("wid", ["has space", "slash/x", "a" * 300, "", "bad\x7f"])
def test_bad_id_400(node, wid):
    status, _, _ = register(node.port, wid, token=make_token("x"))
    assert status in (400,), wid


def test_wide_id_charset_accepted(node):
    status, _, _ = register(node.port, "A-z_0~9.%41")
    assert status == 101


@pytest.mark.parametrize("auth", ["", "Bearer", "Bearer ", "bearer abc.def.ghi", "Basic abc", "Bearer a b",
                                  "Bearer abc$def"])
def test_malformed_authorization_400(node, auth):
    status, _, _ = register(node.port, "w1", auth=auth)
    assert status == 400, auth


def test_missing_authorization_400(node):
    status, _, _ = register(node.port, "w1", token=False)
    assert status == 400


def test_not_upgrade_404(node):
    status, _, _ = register(node.port, "w1", upgrade=False)
    assert status == 404


def test_registration_only_on_root(node):
    # with the id header on another path, it is a viewer request: no worker -> 404
    status, _, _ = register(node.port, "w1", path="/w1/")
    assert status == 404




def bad_tokens():
    t = int(time.time())
    day = 86400
    return {
        "wrong secret": make_token("w1", secret="nope"),
        "alg none": make_token("w1", alg="none"),
        "alg HS384": make_token("w1", alg="HS384"),
        "alg HS512": make_token("w1", alg="HS512"),
        "expired": make_token("w1", nbf=t - 7200, exp=t - 60),
        "not yet valid": make_token("w1", nbf=t + 600, exp=t + 3600),
        "window over 31 days": make_token("w1", nbf=t - 60, exp=t - 60 + 31 * day + 1),
        "60 day token": make_token("w1", nbf=t - 60, exp=t + 60 * day),
        "wrong tid": make_token("w2"),
        "no exp": make_token("w1", drop=("exp",)),
        "no nbf": make_token("w1", drop=("nbf",)),
    }


@pytest.mark.parametrize("case", sorted(bad_tokens().keys()))
def test_bad_token_401(node, case):
    status, _, _ = register(node.port, "w1", token=bad_tokens()[case])
    assert status == 401, case


def test_secret_b_accepted(node):
    status, _, _ = register(node.port, "w1", token=make_token("w1", secret=SECRET_B))
    assert status == 101


def test_31_days_exactly_accepted(node):
    t = int(time.time())
    status, _, _ = register(node.port, "w1", token=make_token("w1", nbf=t - 60, exp=t - 60 + 31 * 86400))
    assert status == 101


def test_audience(procs):
    n = Node(env={"AUDIENCE": "tunnel.example"})
    procs.append(n)
    assert register(n.port, "w1", token=make_token("w1"))[0] == 401  # missing aud
    assert register(n.port, "w1", token=make_token("w1", aud="other"))[0] == 401
    assert register(n.port, "w1", token=make_token("w1", aud="tunnel.example"))[0] == 101


def test_aud_accepted_without_audience_configured(node):
    assert register(node.port, "w1", token=make_token("w1", aud="anything"))[0] == 101


def test_last_registration_wins(node):
    s1 = register(node.port, "dup")
    assert s1[0] == 101
    s2 = register(node.port, "dup")
    assert s2[0] == 101
    # the first session is closed by the node at once
    sock = s1[2]
    sock.settimeout(5)

    def closed():
        try:
            while True:
                d = sock.recv(65536)
                if not d:
                    return True
        except socket.timeout:
            return False
        except ConnectionError:
            return True
    assert wait_for(closed, 5, "old session to close")


def test_production_refuses_to_start_without_secrets(tmp_path):
    import subprocess
    from conftest import binary, free_port
    env = dict(os.environ, ENV="production", PORT=str(free_port()))
    env.pop("TASKCLUSTER_PROXY_SECRET_A", None)
    env.pop("TASKCLUSTER_PROXY_SECRET_B", None)
    r = subprocess.run([binary("whtunnel")], env=env, capture_output=True, timeout=10)
    assert r.returncode != 0
    assert b"SECRET" in r.stderr


def test_unreadable_tls_files_refuse_to_start(tmp_path):
    import subprocess
    from conftest import binary, free_port
    env = dict(os.environ, TASKCLUSTER_PROXY_SECRET_A=SECRET_A, PORT=str(free_port()),
               TLS_KEY=str(tmp_path / "missing.key"), TLS_CERTIFICATE=str(tmp_path / "missing.crt"))
    r = subprocess.run([binary("whtunnel")], env=env, capture_output=True, timeout=10)
    assert r.returncode != 0
    assert b"TLS" in r.stderr


def test_development_secret_kept_across_restarts(procs, backend, tmp_path):
    """Without secrets (development), a restart keeps the generated secret: the banner's token still works."""
    env = {"TASKCLUSTER_PROXY_SECRET_A": "", "TASKCLUSTER_PROXY_SECRET_B": "", "HOME": str(tmp_path),
           "XDG_STATE_HOME": ""}
    first = Node(env=env)
    procs.append(first)
    wait_for(lambda: "--token " in first.output(), 5, "the development banner")
    token = re.search(r"--token (\S+)", first.output()).group(1)
    path = str(tmp_path / ".local" / "state" / "whtunnel" / "dev-secret")
    assert path in first.output()
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    first.stop()
    second = Node(env=env, port=first.port)
    procs.append(second)
    c = Client(second.url, "demo", backend.port, token=token)
    procs.append(c)
    assert c.url and c.url.endswith("/demo")


@pytest.mark.parametrize("case,words", [
    ("wrong secret", ["signature", "TASKCLUSTER_PROXY_SECRET_A/B"]),
    ("expired", ["expired", "new token"]),
    ("not yet valid", ["not valid yet", "clock"]),
    ("wrong tid", ["tid", "another worker id"]),
    ("window over 31 days", ["31 days"]),
    ("alg HS384", ["HS256"]),
])
def test_refusal_says_why(node, case, words):
    """The 401 body names the reason and what to do about the common ones."""
    data = read_all(node.port, ("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                                "X-Websocktunnel-Id: w1\r\nAuthorization: Bearer %s\r\n\r\n"
                                % bad_tokens()[case]).encode(), timeout=5)
    assert data.startswith(b"HTTP/1.1 401 "), data[:40]
    head, body = data.decode().split("\r\n\r\n", 1)
    assert body.startswith("invalid token: "), body
    # the same reason in WWW-Authenticate (RFC 6750), where whclient reads it
    auth = re.search(r"\r\nWWW-Authenticate: Bearer error=\"invalid_token\", error_description=\"([^\"]*)\"\r\n",
                     head + "\r\n")
    assert auth, head
    assert auth.group(1) == body[len("invalid token: "):].strip()
    for w in words:
        assert w in body, (case, body)
