"""Observability: deploy/prometheus/ (scrape configuration, alerting rules and
their promtool unit tests) and deploy/grafana/whtunnel.json against the
contract of docs/operations.md and against real nodes.

- promtool checks the configuration, the rules and the rules' unit tests;
- every metric name the rules and the dashboard use is documented, and is in
  the /metrics of a real standalone node and of a real cluster node; the
  documented names, types and labels are what the nodes export; promtool
  lints each exposition;
- a real Prometheus (Debian's package), with a configuration derived from the
  shipped one, scrapes a real three-node cluster: targets up, workers counted,
  rules loaded and quiet, the requests sent counted exactly once, every
  dashboard query valid, and the Redis alert pending once Redis is killed.

Each test skips, saying what to install, when a tool it needs is missing
(deploy/install-deps.sh --test installs them all). Every wait polls with a
deadline. The nodes' admin listeners are put on free ports (WHT_ADMIN_ADDR).
"""

import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.parse

import pytest

from conftest import slow_check, ROOT, Backend, Client, Node, Proc, free_port, port_open, sanitizer_reports

PROM_DIR = os.path.join(ROOT, "deploy", "prometheus")
PROM_CONFIG = os.path.join(PROM_DIR, "prometheus.yml")
ALERTS = os.path.join(PROM_DIR, "alerts.yml")
ALERTS_TEST = os.path.join(PROM_DIR, "alerts_test.yml")
DASHBOARD = os.path.join(ROOT, "deploy", "grafana", "whtunnel.json")
OPERATIONS = os.path.join(ROOT, "docs", "operations.md")
JOB = "whtunnel"


def _tool(name, *paths):
    found = shutil.which(name)
    if found:
        return found
    for p in paths:
        if os.path.exists(p):
            return p
    return None


PROMTOOL = _tool("promtool", "/usr/bin/promtool")
PROMETHEUS = _tool("prometheus", "/usr/bin/prometheus")
REDIS_SERVER = os.environ.get("WHT_REDIS_SERVER") or _tool("redis-server", "/usr/bin/redis-server")

needs_promtool = pytest.mark.skipif(
    not PROMTOOL, reason="promtool not installed (Debian package prometheus: deploy/install-deps.sh --test)")
needs_prometheus = pytest.mark.skipif(
    not PROMETHEUS, reason="prometheus not installed (Debian package prometheus: deploy/install-deps.sh --test)")
needs_redis = pytest.mark.skipif(
    not REDIS_SERVER, reason="redis-server not installed (Debian package redis-server: deploy/install-deps.sh --test)")

CLUSTER_SECRET = "observability-cluster-secret-0123456789"
REDIS_PASSWORD = "observability-redis-password"


# ---- small helpers ----------------------------------------------------------


def poll(pred, timeout, what, interval=0.1):
    """pred() until it returns something true, at most timeout seconds."""
    deadline = time.time() + timeout
    last = None
    while True:
        try:
            r = pred()
            if r:
                return r
            last = r
        except Exception as e:  # noqa: BLE001 - polled
            last = e
        if time.time() >= deadline:
            raise TimeoutError("timed out after %.0f s waiting for %s (last: %r)" % (timeout, what, last))
        time.sleep(interval)


def http_get(port, path, timeout=10):
    """(status, headers, body bytes) of GET path on 127.0.0.1:port."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def run(args, stdin=None, timeout=60):
    return subprocess.run(args, input=stdin, capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def stop_all(started):
    for p in reversed(started):
        p.stop()
    reports = []
    for p in started:
        if p.name in ("redis", "prometheus", "backend"):
            continue
        reports += ["%s %s: %s" % (p.name, p.log.name, line) for line in sanitizer_reports(p)]
    if reports:
        pytest.fail("sanitizer reports:\n" + "\n".join(reports[:20]), pytrace=False)


class Redis(Proc):
    """A private redis-server (no persistence, with a password) on a free port."""

    def __init__(self):
        self.port = free_port()
        super().__init__([REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                          "--appendonly", "no", "--requirepass", REDIS_PASSWORD], name="redis")
        poll(lambda: port_open(self.port), 10, "redis-server to listen on %d" % self.port)

    @property
    def url(self):
        return "redis://:%s@127.0.0.1:%d" % (REDIS_PASSWORD, self.port)


def admin_node(env=None):
    """A node whose admin listener is on a free port of its own (node.admin_port)."""
    admin = free_port()
    e = {"WHT_ADMIN_ADDR": "127.0.0.1:%d" % admin}
    e.update(env or {})
    n = Node(env=e)
    n.admin_port = admin
    n.admin_addr = "127.0.0.1:%d" % admin
    try:
        poll(lambda: port_open(admin) or not n.alive(), 10, "admin listener %s" % n.admin_addr)
        assert n.alive(), n.output()
    except Exception:
        n.stop()
        raise
    return n


def cluster_env(rds, name):
    return {"REDIS_URL": rds.url, "WHT_NODE_ID": name, "WHT_PEER_ADDR": "127.0.0.1:0",
            "WHT_CLUSTER_SECRET": CLUSTER_SECRET, "WHT_REDIS_PREFIX": "obs:"}


def cluster_status(node):
    status, _, body = http_get(node.port, "/__cluster__", timeout=5)
    assert status == 200
    return json.loads(body)


def metrics_text(node):
    status, headers, body = http_get(node.admin_port, "/metrics")
    assert status == 200, "GET /metrics on %s: %d %r" % (node.admin_addr, status, body[:200])
    ctype = headers.get("content-type", "")
    assert ctype.startswith("text/plain"), "GET /metrics on %s: Content-Type %r" % (node.admin_addr, ctype)
    return body.decode()


LABEL = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_exposition(text):
    """{family: type} from the # TYPE lines, and [(sample name, {label: value}, value)]."""
    types, samples = {}, []
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            parts = line.split()
            types[parts[2]] = parts[3]
        elif not line.strip() or line.startswith("#"):
            continue
        else:
            m = re.match(r"^([A-Za-z_:][A-Za-z0-9_:]*)(\{(.*)\})?\s+(\S+)", line)
            assert m, "unparsable exposition line: %r" % line
            samples.append((m.group(1), dict(LABEL.findall(m.group(3) or "")), float(m.group(4))))
    return types, samples


def sample_value(samples, name, **labels):
    """The sum of the samples of name whose labels include labels."""
    return sum(v for n, lab, v in samples if n == name and all(lab.get(k) == x for k, x in labels.items()))


# ---- what deploy/ uses, and what docs/operations.md promises ----------------


IDENT = re.compile(r"(?<![A-Za-z0-9_:])((?:whtunnel|process)_[A-Za-z0-9_]*)")
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def metric_names(expr):
    """The whtunnel_ and process_ identifiers of a PromQL expression (string
    literals, i.e. label values, left out)."""
    return set(IDENT.findall(re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)))


def alert_rules():
    """[(alert name, expr)] of alerts.yml, read without a YAML library (the
    file's own layout: `- alert:` then `expr:` inline or as a block)."""
    lines = open(ALERTS).read().splitlines()
    rules, name, i = [], None, 0
    while i < len(lines):
        m = re.match(r"^\s*- alert:\s*(\S+)", lines[i])
        if m:
            name = m.group(1)
        m = re.match(r"^(\s*)expr:\s*(.*?)\s*$", lines[i])
        if m:
            indent, rest = len(m.group(1)), m.group(2)
            if rest in ("|", "|-", ">", ">-"):
                body = []
                i += 1
                while i < len(lines) and (not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > indent):
                    body.append(lines[i].strip())
                    i += 1
                rules.append((name, " ".join(b for b in body if b)))
                continue
            rules.append((name, rest.strip("'\"")))
        i += 1
    return rules


def dashboard():
    with open(DASHBOARD) as f:
        return json.load(f)


def dashboard_exprs():
    """[(where, PromQL)] of every query in the dashboard: panel targets and
    the template variables' queries."""
    out = []

    def walk(obj, where):
        if isinstance(obj, dict):
            title = obj.get("title") or obj.get("name") or where
            if isinstance(obj.get("expr"), str):
                out.append((title, obj["expr"]))
            for k, v in obj.items():
                walk(v, title)
        elif isinstance(obj, list):
            for v in obj:
                walk(v, where)
    d = dashboard()
    walk(d.get("panels", []), "panels")
    for var in d.get("templating", {}).get("list", []):
        if var.get("type") == "query":
            q = var.get("query")
            q = q.get("query") if isinstance(q, dict) else q
            for s in (q, var.get("definition")):
                if s:
                    out.append(("variable " + var["name"], s))
    return out


def used_metric_names():
    """{metric name: [where it is used]} over alerts.yml and the dashboard."""
    used = {}
    for name, expr in alert_rules():
        for m in metric_names(expr):
            used.setdefault(m, []).append("alerts.yml " + name)
    for where, expr in dashboard_exprs():
        for m in metric_names(expr):
            used.setdefault(m, []).append("whtunnel.json '%s'" % where)
    return used


def documented_metrics():
    """{name: (type, {labels}, {label values named in the meaning})} from the
    metrics table of docs/operations.md."""
    text = open(OPERATIONS).read()
    section = text.split("## Metrics", 1)[1].split("\n## ", 1)[0]
    docs = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 4 or not cells[0].startswith("`"):
            continue
        names = re.findall(r"`([a-z_]+)`", cells[0])
        labels = set(re.findall(r"`([a-z_]+)`", cells[2]))
        values = set(re.findall(r"`([^`]+)`", cells[3]))
        if {"1xx", "5xx"} <= values:  # "(`1xx`..`5xx`)"
            values |= {"2xx", "3xx", "4xx"}
        for n in names:
            docs[n] = (cells[1], labels, values)
    assert len(docs) > 20, "could not read the metrics table of docs/operations.md"
    return docs


def used_name_known(name, types, sample_names):
    if name in types or name in sample_names:
        return True
    for suffix in HISTOGRAM_SUFFIXES:
        if name.endswith(suffix) and types.get(name[: -len(suffix)]) in ("histogram", "summary"):
            return True
    return False


# ---- a: promtool on deploy/prometheus, the dashboard's model ----------------


@needs_promtool
def test_promtool_check_rules():
    r = run([PROMTOOL, "check", "rules", ALERTS])
    assert r.returncode == 0, r.stdout + r.stderr
    n = len(alert_rules())
    assert "SUCCESS: %d rules found" % n in r.stdout + r.stderr, r.stdout + r.stderr


@needs_promtool
def test_promtool_check_config():
    r = run([PROMTOOL, "check", "config", PROM_CONFIG])
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1 rule files found" in r.stdout + r.stderr, r.stdout + r.stderr


@needs_promtool
def test_promtool_rule_unit_tests():
    r = run([PROMTOOL, "test", "rules", ALERTS_TEST])
    assert r.returncode == 0, r.stdout + r.stderr
    # every alert has at least one case where it fires
    tests = open(ALERTS_TEST).read()
    for name, _ in alert_rules():
        assert re.search(r"alertname: %s\n\s+exp_alerts:\n\s+- exp_labels" % name, tests), \
            "alerts_test.yml never expects %s to fire" % name


def shipped_config_with(scrape_block):
    """The shipped prometheus.yml with its static_configs block replaced by
    scrape_block (lines, indented as the job's keys)."""
    lines = open(PROM_CONFIG).read().splitlines()
    i = lines.index("    static_configs:")
    j = i + 1
    while j < len(lines) and lines[j].startswith("      "):
        j += 1
    return lines[:i] + scrape_block + lines[j:]


def commented_block(start):
    """The commented-out variant of prometheus.yml that starts with `# start`."""
    lines = open(PROM_CONFIG).read().splitlines()
    i = [n for n, line in enumerate(lines) if line.strip() == "# " + start][0]
    out = []
    for line in lines[i:]:
        if not line.startswith("    # "):
            break
        out.append("    " + line[len("    # "):])
    return out


@needs_promtool
@pytest.mark.parametrize("variant", ["kubernetes_sd_configs:", "dns_sd_configs:"])
def test_promtool_check_config_commented_variants(tmp_path, variant):
    """The Kubernetes and Compose variants in prometheus.yml's comments are valid
    configuration once uncommented."""
    text = "\n".join(shipped_config_with(commented_block(variant))) + "\n"
    text = re.sub(r"(?m)^  - alerts\.yml", "  - " + ALERTS, text)
    path = tmp_path / "prometheus.yml"
    path.write_text(text)
    r = run([PROMTOOL, "check", "config", str(path)])
    if r.returncode != 0 and "field kubernetes_sd_configs not found" in r.stdout + r.stderr:
        pytest.skip("this promtool is built without Kubernetes discovery (Debian's build leaves it out)")
    assert r.returncode == 0, text + r.stdout + r.stderr


def test_dashboard_model():
    d = dashboard()
    assert 36 <= d["schemaVersion"] <= 40
    variables = {v["name"]: v for v in d["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    node = variables["node"]
    assert node["type"] == "query"
    assert node["definition"] == "label_values(whtunnel_build_info, instance)"
    assert node["datasource"]["uid"] == "${datasource}"
    ids, titles = set(), []
    for p in d["panels"]:
        assert p["id"] not in ids, "panel id %d twice" % p["id"]
        ids.add(p["id"])
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24, p["title"]
        if p["type"] == "row":
            titles.append(p["title"])
            continue
        assert p["datasource"]["uid"] == "${datasource}", p["title"]
        assert p["targets"], p["title"]
        for t in p["targets"]:
            assert t["expr"].strip(), p["title"]
            assert t["datasource"]["uid"] == "${datasource}", p["title"]
            if re.search(r"(?<![A-Za-z0-9_])up\{", t["expr"]):  # Prometheus' own up: every target
                continue
            assert 'instance=~"$node"' in t["expr"], "panel '%s' ignores $node: %s" % (p["title"], t["expr"])
    assert titles == ["Cluster overview", "Per node", "Relay", "Redis"], titles
    exprs = " ".join(e for _, e in dashboard_exprs())
    for needed in ("histogram_quantile(0.5,", "histogram_quantile(0.99,", 'code="5xx"', "relayed_in",
                   "relayed_out", "whtunnel_relay_misses_total", "whtunnel_peer_links_up",
                   "whtunnel_route_cache_routes", "whtunnel_route_cache_hits_total",
                   "whtunnel_route_cache_misses_total", "whtunnel_redis_up", "whtunnel_redis_commands_total",
                   "whtunnel_redis_errors_total", "process_resident_memory_bytes", "process_open_fds",
                   "process_cpu_seconds_total", "whtunnel_viewer_connections_open", "whtunnel_websockets_open",
                   "whtunnel_streams_open", "whtunnel_viewer_received_bytes_total",
                   "whtunnel_viewer_sent_bytes_total", "whtunnel_workers"):
        assert needed in exprs, "the dashboard has no query with %s" % needed


def test_names_used_are_documented():
    """alerts.yml and the dashboard use only metric names of docs/operations.md."""
    docs = documented_metrics()
    unknown = {}
    for name, where in used_metric_names().items():
        base = name
        for suffix in HISTOGRAM_SUFFIXES:
            if name.endswith(suffix) and docs.get(name[: -len(suffix)], ("",))[0] == "histogram":
                base = name[: -len(suffix)]
        if base not in docs:
            unknown[name] = where
    assert not unknown, "not in docs/operations.md: %s" % unknown
    assert len(alert_rules()) >= 7


# ---- b: the names against real nodes ----------------------------------------


class Cluster:
    """Redis, n nodes sharing it (admin listeners on free ports), a backend and
    one whclient worker "w1" on the first node; w1 answers through every node."""

    def __init__(self, started, n=3):
        self.started = started
        self.redis = Redis()
        started.append(self.redis)
        self.nodes = []
        for i in range(n):
            node = admin_node(cluster_env(self.redis, "obs%d" % (i + 1)))
            started.append(node)
            self.nodes.append(node)
        for node in self.nodes:
            poll(lambda: cluster_status(node).get("peers_up") == n - 1, 15,
                 "%d peers seen by node %d" % (n - 1, node.port))
        self.backend = Backend()
        started.append(self.backend)
        self.client = Client(self.nodes[0].url, "w1", self.backend.port)
        started.append(self.client)
        for node in self.nodes:
            poll(lambda: http_get(node.port, "/w1/status/204")[0] == 204, 15, "w1 through node %d" % node.port)


def exercise(node, wid):
    """Requests that make the labelled series appear: 2xx, 4xx and 5xx from the
    worker, a request for an unknown worker, a node endpoint."""
    assert http_get(node.port, "/%s/echo/obs" % wid)[0] == 200
    assert http_get(node.port, "/%s/status/404" % wid)[0] == 404
    assert http_get(node.port, "/%s/status/503" % wid)[0] == 503
    http_get(node.port, "/no-such-worker-obs/x")
    assert http_get(node.port, "/__lbheartbeat__")[0] == 200


@pytest.fixture(scope="module")
def standalone():
    started = []
    try:
        node = admin_node()
        started.append(node)
        b = Backend()
        started.append(b)
        c = Client(node.url, "w1", b.port)
        started.append(c)
        poll(lambda: http_get(node.port, "/w1/status/204")[0] == 204, 15, "w1 through the standalone node")
        exercise(node, "w1")
        yield [node]
    finally:
        stop_all(started)


@pytest.fixture(scope="module")
def small_cluster():
    """Two nodes, the worker on the first; requests through both (relayed ones
    through the second)."""
    if not REDIS_SERVER:
        pytest.skip("redis-server not installed (Debian package redis-server: deploy/install-deps.sh --test)")
    started = []
    try:
        cl = Cluster(started, n=2)
        for node in cl.nodes:
            exercise(node, "w1")
        yield cl.nodes
    finally:
        stop_all(started)


@pytest.fixture(params=["standalone", "cluster"])
def nodes(request):
    return request.getfixturevalue("standalone" if request.param == "standalone" else "small_cluster")


def test_used_names_exist_in_metrics(nodes):
    """Every metric name alerts.yml and the dashboard use is in each node's /metrics."""
    used = used_metric_names()
    for node in nodes:
        types, samples = parse_exposition(metrics_text(node))
        sample_names = {s[0] for s in samples}
        missing = {name: where for name, where in used.items() if not used_name_known(name, types, sample_names)}
        assert not missing, "not in the /metrics of %s: %s" % (node.admin_addr, missing)


def test_metrics_match_operations_doc(nodes):
    """The documented metrics, with their types and labels, and nothing else under whtunnel_."""
    docs = documented_metrics()
    for node in nodes:
        types, samples = parse_exposition(metrics_text(node))
        problems = []
        for name, (typ, labels, values) in sorted(docs.items()):
            if name not in types:
                problems.append("%s: missing (no # TYPE line)" % name)
            elif types[name] != typ:
                problems.append("%s: type %s, documented %s" % (name, types[name], typ))
        for name in sorted(types):
            if name.startswith("whtunnel_") and name not in docs:
                problems.append("%s: exported but not documented" % name)
        for sname, lab, _ in samples:
            fam = sname
            for suffix in HISTOGRAM_SUFFIXES:
                if sname.endswith(suffix) and types.get(sname[: -len(suffix)]) == "histogram":
                    fam = sname[: -len(suffix)]
            if fam not in docs:
                continue
            _, labels, values = docs[fam]
            names = set(lab) - ({"le"} if fam != sname else set())
            if names != labels:
                problems.append("%s%s: labels %s, documented %s" % (sname, lab, sorted(names), sorted(labels)))
            for k, v in lab.items():
                if k in ("le", "version"):
                    continue
                if v not in values:
                    problems.append("%s: %s=%r is not a documented value (%s)" % (sname, k, v, sorted(values)))
        info = [s for s in samples if s[0] == "whtunnel_build_info"]
        if info and info[0][2] != 1:
            problems.append("whtunnel_build_info is %r, documented 1" % info[0][2])
        assert not problems, "/metrics of %s vs docs/operations.md:\n  %s" % (node.admin_addr,
                                                                              "\n  ".join(sorted(set(problems))))


@needs_promtool
def test_promtool_check_metrics(nodes):
    """promtool lints each node's exposition: no problem at all (no counter
    without _total, no missing help, no bad histogram...)."""
    for node in nodes:
        text = metrics_text(node)
        r = run([PROMTOOL, "check", "metrics"], stdin=text)
        out = (r.stdout + r.stderr).strip()
        assert r.returncode == 0 and not out, "promtool check metrics on %s (exit %d):\n%s" % (
            node.admin_addr, r.returncode, out)


def test_standalone_metrics_values(standalone):
    """A standalone node: Redis gauge 0 and no Redis traffic (what the
    WhtunnelRedisDown rule relies on to leave it alone), one worker, the
    requests of exercise() counted as local."""
    types, samples = parse_exposition(metrics_text(standalone[0]))
    assert sample_value(samples, "whtunnel_redis_up") == 0
    assert sample_value(samples, "whtunnel_redis_commands_total") == 0
    assert sample_value(samples, "whtunnel_redis_errors_total") == 0
    assert sample_value(samples, "whtunnel_workers") == 1
    assert sample_value(samples, "whtunnel_requests_total", path="local", code="5xx") >= 1
    assert sample_value(samples, "whtunnel_requests_total", path="local", code="2xx") >= 2
    assert sample_value(samples, "whtunnel_requests_total", path="relayed_out") == 0
    assert sample_value(samples, "whtunnel_registrations_total", outcome="ok") >= 1
    assert sample_value(samples, "process_max_fds") > sample_value(samples, "process_open_fds") > 0


@needs_redis
def test_redis_down_from_the_start_is_counted(procs):
    """A cluster node started while Redis is unreachable exports redis_up 0 and
    counts errors, so that WhtunnelRedisDown's guard (commands + errors > 0)
    sees it as a Redis user."""
    dead = free_port()
    env = {"REDIS_URL": "redis://127.0.0.1:%d" % dead, "WHT_NODE_ID": "obs-lonely", "WHT_PEER_ADDR": "127.0.0.1:0",
           "WHT_CLUSTER_SECRET": CLUSTER_SECRET}
    node = admin_node(env)
    procs.append(node)

    def counted():
        _, samples = parse_exposition(metrics_text(node))
        if sample_value(samples, "whtunnel_redis_up") != 0:
            return False
        return (sample_value(samples, "whtunnel_redis_commands_total")
                + sample_value(samples, "whtunnel_redis_errors_total")) > 0
    poll(counted, 15, "whtunnel_redis_errors_total > 0 on a node whose Redis is unreachable")


# ---- c: a real Prometheus over a real cluster --------------------------------


class Prometheus(Proc):
    """Debian's prometheus with a configuration derived from the shipped one:
    same job and rule_files, the test's targets, 1 s scrape and evaluation."""

    def __init__(self, tmp_path, targets):
        self.port = free_port()
        text = "\n".join(shipped_config_with(
            ["    static_configs:", "      - targets: [%s]" % ", ".join('"%s"' % t for t in targets),
             "        labels:", "          cluster: test"])) + "\n"
        text = re.sub(r"(?m)^(\s*)scrape_interval:.*$", r"\1scrape_interval: 1s", text)
        text = re.sub(r"(?m)^(\s*)scrape_timeout:.*$", r"\1scrape_timeout: 1s", text)
        text = re.sub(r"(?m)^(\s*)evaluation_interval:.*$", r"\1evaluation_interval: 1s", text)
        # rule_files are relative to the configuration file: point at the shipped ones
        head, rest = text.split("\nrule_files:\n", 1)
        entries, rest = re.match(r"((?:  - [^\n]*\n|[ \t]*\n)*)(.*)", rest, re.S).groups()
        files = re.findall(r"  - (\S+)", entries)
        assert files == ["alerts.yml"], "rule_files of prometheus.yml: %s" % files
        text = head + "\nrule_files:\n" + "".join("  - %s\n" % os.path.join(PROM_DIR, f) for f in files) + rest
        assert re.search(r"(?m)^  - job_name: %s\s*$" % JOB, text), "no job %s in prometheus.yml" % JOB
        self.config = tmp_path / "prometheus.yml"
        self.config.write_text(text)
        if PROMTOOL:
            r = run([PROMTOOL, "check", "config", str(self.config)])
            assert r.returncode == 0, text + r.stdout + r.stderr
        data = tmp_path / "tsdb"
        data.mkdir()
        super().__init__([PROMETHEUS, "--config.file=%s" % self.config, "--storage.tsdb.path=%s" % data,
                          "--web.listen-address=127.0.0.1:%d" % self.port, "--log.level=info"],
                         name="prometheus")
        poll(lambda: self.ready() or not self.alive(), 30, "prometheus to be ready on %d" % self.port)
        assert self.alive(), self.output()[-3000:]

    def ready(self):
        try:
            return http_get(self.port, "/-/ready", timeout=2)[0] == 200
        except OSError:
            return False

    def api(self, path, **params):
        status, _, body = http_get(self.port, "/api/v1/%s?%s" % (path, urllib.parse.urlencode(params)))
        reply = json.loads(body)
        assert status == 200 and reply.get("status") == "success", "%s %s: %d %s" % (path, params, status, body[:500])
        return reply["data"]

    def query(self, expr):
        data = self.api("query", query=expr)
        assert data["resultType"] == "vector", data
        return data["result"]

    def scalar(self, expr):
        """The value of a one-element vector expression (None when empty)."""
        r = self.query(expr)
        assert len(r) <= 1, (expr, r)
        return float(r[0]["value"][1]) if r else None

    def wait_scraped_after(self, t, scrapes=2, interval=1.0, timeout=20):
        """Until every target has been scraped `scrapes` times after time t
        (the first scrape after t may have started a moment before the last
        counter moved)."""
        expr = 'min(timestamp(up{job="%s"}))' % JOB
        poll(lambda: (self.scalar(expr) or 0) >= t + (scrapes - 1) * interval, timeout,
             "%d scrapes of every target after %.3f" % (scrapes, t), interval=0.2)


def dashboard_query(expr):
    """A dashboard expression as Grafana would send it, every node selected."""
    return expr.replace("$__rate_interval", "1m").replace("$node", ".+")


@needs_prometheus
@needs_redis
def test_prometheus_scrapes_the_cluster(tmp_path):
    slow_check()
    started = []
    try:
        cl = Cluster(started, n=3)
        owner = cl.nodes[0]  # w1 is there
        prom = Prometheus(tmp_path, [n.admin_addr for n in cl.nodes])
        started.append(prom)

        # every target up, the worker counted once in the cluster
        def all_up():
            r = prom.query('up{job="%s"}' % JOB)
            return sorted((x["metric"]["instance"], x["value"][1]) for x in r) == \
                sorted((n.admin_addr, "1") for n in cl.nodes)
        poll(all_up, 30, "up == 1 for the three admin listeners", interval=0.2)
        assert prom.scalar('sum(whtunnel_workers{job="%s"})' % JOB) == 1
        assert prom.scalar('count(whtunnel_build_info{job="%s"})' % JOB) == 3

        # the alerting rules: loaded, evaluated without error, none firing
        names = [n for n, _ in alert_rules()]

        def rules():
            groups = prom.api("rules", type="alert")["groups"]
            return {r["name"]: r for g in groups for r in g["rules"]}

        def evaluated():
            rs = rules()
            return sorted(rs) == sorted(names) and all(r.get("health") == "ok" for r in rs.values())
        poll(evaluated, 20, "rules %s loaded and evaluated (health ok)" % names, interval=0.2)

        def quiet():
            rs = rules()
            firing = {n: r["alerts"] for n, r in rs.items() if r["state"] == "firing"}
            assert not firing, "alerts firing on a healthy cluster: %s" % firing
            return all(r["state"] == "inactive" for r in rs.values())
        poll(quiet, 20, "every alert inactive", interval=0.5)

        # requests counted once: 25 requests, spread over the three nodes
        by_path = 'sum by (path) (whtunnel_requests_total{job="%s"})' % JOB
        once = 'sum(whtunnel_requests_total{job="%s", path=~"local|relayed_out"})' % JOB
        ok_once = 'sum(whtunnel_requests_total{job="%s", path=~"local|relayed_out", code="2xx"})' % JOB

        def snapshot():
            paths = {r["metric"].get("path"): float(r["value"][1]) for r in prom.query(by_path)}
            return prom.scalar(once) or 0.0, prom.scalar(ok_once) or 0.0, paths
        prom.wait_scraped_after(time.time())
        before = snapshot()
        sent = 25
        for i in range(sent):
            node = cl.nodes[i % 3]
            status, _, _ = http_get(node.port, "/w1/echo/obs-%d" % i)
            assert status == 200, "request %d through node %d: %d" % (i, i % 3 + 1, status)
        prom.wait_scraped_after(time.time())
        after = snapshot()
        # A viewer's request is counted on the node the viewer talked to, as
        # local (the worker is there) or relayed_out (sent to the owner); the
        # owner counts a relayed request again as relayed_in. local +
        # relayed_out counts each viewer request exactly once.
        local = sum(1 for i in range(sent) if i % 3 == 0)
        delta = {p: after[2].get(p, 0.0) - before[2].get(p, 0.0) for p in ("local", "relayed_out", "relayed_in")}
        assert after[0] - before[0] == sent, (before, after)
        assert after[1] - before[1] == sent, "not all 2xx: %s %s" % (before, after)
        assert delta == {"local": local, "relayed_out": sent - local, "relayed_in": sent - local}, delta
        r = prom.query('sum by (instance) (whtunnel_requests_total{job="%s", path="relayed_in"})' % JOB)
        assert {x["metric"]["instance"] for x in r if float(x["value"][1]) > 0} == {owner.admin_addr}, r

        # every dashboard query is valid PromQL that Prometheus evaluates
        errors = []
        for where, expr in dashboard_exprs():
            if expr.startswith("label_values("):
                m = re.match(r"label_values\((\w+),\s*(\w+)\)$", expr)
                values = prom.api("label/%s/values" % m.group(2), **{"match[]": m.group(1)})
                if sorted(values) != sorted(n.admin_addr for n in cl.nodes):
                    errors.append("%s: %s gives %s" % (where, expr, values))
                continue
            try:
                prom.query(dashboard_query(expr))
            except AssertionError as e:
                errors.append("%s: %s" % (where, e))
        assert not errors, "\n".join(errors)
        for expr in ('histogram_quantile(0.99, sum by (le) (rate(whtunnel_response_head_seconds_bucket[1m])))',
                     'sum by (code) (rate(whtunnel_requests_total{path=~"local|relayed_out"}[1m]))'):
            assert prom.query(expr), "no data for %s" % expr

        # Redis gone: WhtunnelRedisDown becomes pending (for: 1m) on all three nodes, nothing else
        cl.redis.stop(sig=9)

        def redis_down_pending():
            r = rules()["WhtunnelRedisDown"]
            got = {a["labels"]["instance"] for a in r["alerts"] if a["state"] in ("pending", "firing")}
            return got == {n.admin_addr for n in cl.nodes}
        poll(redis_down_pending, 30, "WhtunnelRedisDown pending for the three nodes", interval=0.5)
        others = {n: r["state"] for n, r in rules().items() if n != "WhtunnelRedisDown" and r["state"] != "inactive"}
        assert not others, others
    finally:
        stop_all(started)
