"""The admin listener's /dashboard: a three-node cluster (real redis-server,
three nodes with admin listeners and WHT_ADMIN_TOKEN, worker w1 through
whclient with a backend), the page checked over HTTP from Python, then in a
real browser: Debian's /usr/bin/chromium driven by playwright-core
(tests/browser/dashboard.test.js, run with node).

The browser test installs tests/browser's npm packages (`npm ci`) when
node_modules is missing, and is skipped with a message when chromium, node or
npm is missing or the npm registry cannot be reached. Its screenshot is kept
as $WHT_BUILD_DIR/artifacts/dashboard.png.
"""

import http.client
import json
import os
import re
import shutil
import subprocess
import uuid

import pytest

from conftest import slow_check, BUILD, ROOT, Backend, Client, free_port, port_open, wait_for
from test_cluster import Redis, check_clean, cluster_node, fetch, wait_peers

ADMIN_TOKEN = "dash-admin-token-0123456789"
BROWSER_DIR = os.path.join(ROOT, "tests", "browser")
PAGE_SOURCE = os.path.join(ROOT, "node", "dashboard.html")
CHROMIUM = os.environ.get("WHT_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = os.path.join(BUILD, "artifacts")
NETWORK_ERRORS = ("ENOTFOUND", "EAI_AGAIN", "ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "ENETUNREACH",
                  "EHOSTUNREACH", "network", "socket hang up", "getaddrinfo")


def admin_get(port, path, headers=None, timeout=5):
    """GET on an admin listener: (status, content type, body bytes)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path, headers=headers or {})
        r = c.getresponse()
        return r.status, r.getheader("Content-Type") or "", r.read()
    finally:
        c.close()


@pytest.fixture(scope="module")
def dash_cluster():
    """Redis, nodes n1..n3 with admin listeners (token set) and worker w1 on n1."""
    started = []
    try:
        rds = Redis()
        started.append(rds)
        nodes = []
        for i in range(3):
            admin = free_port()
            node = cluster_node(rds, "n%d" % (i + 1), {"WHT_ADMIN_ADDR": "127.0.0.1:%d" % admin,
                                                       "WHT_ADMIN_TOKEN": ADMIN_TOKEN})
            node.admin_port = admin
            started.append(node)
            nodes.append(node)
        for node in nodes:
            wait_for(lambda: port_open(node.admin_port) and admin_get(node.admin_port, "/healthz")[0] == 200, 10,
                     "admin listener of node %d on port %d" % (node.port, node.admin_port))
        wait_peers(nodes, 2)
        backend = Backend()
        started.append(backend)
        client = Client(nodes[0].url, "w1", backend.port)
        started.append(client)
        for node in nodes:
            wait_for(lambda: fetch(node, "GET", "/w1/status/204")[0].status == 204, 10,
                     "w1 reachable through node %d" % node.port)
        # every node in the registry, as the dashboard's /cluster shows them
        wait_for(lambda: sorted(n["node"] for n in json.loads(
            admin_get(nodes[0].admin_port, "/cluster?token=" + ADMIN_TOKEN)[2])["nodes"]) == ["n1", "n2", "n3"],
            15, "n1's /cluster to list n1, n2, n3")
        yield nodes
    finally:
        for p in reversed(started):
            p.stop()
    check_clean(started)


def test_dashboard_http(dash_cluster):
    """The page needs the token, is text/html, is node/dashboard.html byte for byte, and is self-contained."""
    port = dash_cluster[0].admin_port
    status, _, _ = admin_get(port, "/dashboard")
    assert status == 401
    status, _, _ = admin_get(port, "/dashboard?token=wrong-" + ADMIN_TOKEN)
    assert status == 401
    status, ctype, body = admin_get(port, "/dashboard?token=" + ADMIN_TOKEN)
    assert status == 200
    assert ctype.startswith("text/html"), ctype
    status, ctype2, body2 = admin_get(port, "/dashboard", headers={"Authorization": "Bearer " + ADMIN_TOKEN})
    assert status == 200 and ctype2.startswith("text/html") and body2 == body
    with open(PAGE_SOURCE, "rb") as f:
        assert body == f.read(), "the served page is not node/dashboard.html as embedded at build time"
    text = body.decode("utf-8")
    # self-contained: no URL with a scheme, nor a protocol-relative one, anywhere in the page
    assert not re.findall(r"(?i)https?://", text), re.findall(r"(?i)https?://\S{0,40}", text)
    assert not re.search(r"""(?i)(src|href|action)\s*=\s*["']?//""", text)
    assert not re.search(r"(?i)<script[^>]*\bsrc\s*=", text), "external script"
    assert not re.search(r"(?i)<link[^>]*rel\s*=\s*[\"']?stylesheet", text), "external stylesheet"
    css = "".join(re.findall(r"(?is)<style[^>]*>(.*?)</style>", text))
    assert not re.search(r"(?i)@import|url\(\s*[\"']?(?!data:)", css), "CSS import or url()"
    # the JSON endpoints it reads, with the token (the dashboard passes ?token= on)
    for path in ("/status", "/cluster"):
        assert admin_get(port, path)[0] == 401
        status, ctype, body = admin_get(port, path + "?token=" + ADMIN_TOKEN)
        assert status == 200 and "json" in ctype, (path, status, ctype)
        json.loads(body)
    assert admin_get(port, "/metrics")[0] == 200


def ensure_browser():
    """node and npm, chromium, and tests/browser/node_modules (npm ci when missing); skips with the reason."""
    if not os.path.exists(CHROMIUM):
        pytest.skip("%s not found: apt-get install chromium (deploy/install-deps.sh --test)" % CHROMIUM)
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        pytest.skip("node/npm not found: apt-get install nodejs npm (deploy/install-deps.sh --test)")
    if os.path.isfile(os.path.join(BROWSER_DIR, "node_modules", "playwright-core", "package.json")):
        return node
    try:
        r = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=BROWSER_DIR, capture_output=True, text=True,
                           timeout=600, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        pytest.skip("npm ci in tests/browser took over 10 minutes (no network?)")
    if r.returncode != 0:
        out = (r.stdout + r.stderr)[-3000:]
        if any(e in out for e in NETWORK_ERRORS):
            pytest.skip("npm ci in tests/browser failed for lack of network:\n" + out)
        pytest.fail("npm ci in tests/browser failed:\n" + out, pytrace=False)
    return node


def test_dashboard_browser(dash_cluster, capsys):
    slow_check()
    """In chromium: n1's dashboard lists n1..n3 and w1; a request through the tunnel shows in w1's recent
    requests within 2 s of clicking w1. The screenshot is kept as an artifact."""
    node_bin = ensure_browser()
    n1 = dash_cluster[0]
    os.makedirs(ARTIFACTS, exist_ok=True)
    shot = os.path.join(ARTIFACTS, "dashboard.png")
    for stale in (shot, os.path.join(ARTIFACTS, "dashboard-failure.png")):
        if os.path.exists(stale):
            os.unlink(stale)
    probe = "/echo/dashboard-probe-" + uuid.uuid4().hex[:12]
    env = dict(os.environ)
    env.update({
        "WHT_DASHBOARD_URL": "http://127.0.0.1:%d/dashboard?token=%s" % (n1.admin_port, ADMIN_TOKEN),
        "WHT_EXPECT_NODES": "n1,n2,n3",
        "WHT_EXPECT_WORKERS": "w1",
        "WHT_EXPECT_SELF": "n1",
        "WHT_CLICK_WORKER": "w1",
        "WHT_TUNNEL_URL": "%s/w1%s" % (n1.url, probe),
        "WHT_EXPECT_PATH": probe,
        "WHT_SCREENSHOT": shot,
        "WHT_CHROMIUM": CHROMIUM,
        "WHT_BROWSER_TIMEOUT_MS": "120000",
    })
    try:
        r = subprocess.run([node_bin, os.path.join(BROWSER_DIR, "dashboard.test.js")], cwd=BROWSER_DIR, env=env,
                           capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        pytest.fail("dashboard.test.js ran over 180 s:\n%s\n%s" % (e.stdout, e.stderr), pytrace=False)
    out = r.stdout + r.stderr
    kept = [p for p in (shot, os.path.join(ARTIFACTS, "dashboard-failure.png")) if os.path.exists(p)]
    with capsys.disabled():
        for p in kept:
            print("\ndashboard screenshot: %s" % p)
    assert r.returncode == 0, "dashboard.test.js failed (exit %d):\n%s" % (r.returncode, out)
    assert os.path.getsize(shot) > 10000, "screenshot too small: %s" % shot
    # the request the browser saw is in n1's ring for w1
    _, _, body = admin_get(n1.admin_port, "/workers/w1/requests?token=" + ADMIN_TOKEN)
    assert any(probe in q["path"] for q in json.loads(body)["requests"]), body[:500]
