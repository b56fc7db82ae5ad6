"""The Kubernetes manifests (deploy/k8s): every overlay renders with
`kubectl kustomize`; every rendered object validates against the Kubernetes
API schemas and the CRDs' (tests/k8s/validate.mjs: kubernetes-models, the
Prometheus operator's and cert-manager's models, unknown fields through
TypeScript's excess property check), and the validator fails on broken
copies; every environment variable the manifests give the node is one that
`whtunnel --help` lists; a real node started with the manifests' settings
(ports moved to free ones, secrets from files) listens where the pod spec
says, answers the probe paths on the admin port, and serves every metric
name the manifests mention.

Skips with a message where kubectl, node or npm is missing, or where the npm
registry cannot be reached for the first `npm ci` in tests/k8s. The checks
that do not depend on the build (validation, the Redis scripts) are slow
checks: they run once, in the release build (conftest.slow_check()).
"""

import base64
import http.client
import json
import os
import re
import shutil
import subprocess

import pytest
import yaml

from conftest import ROOT, Backend, Client, Proc, binary, free_port, port_open, slow_check, wait_for

K8S_DIR = os.path.join(ROOT, "deploy", "k8s")
VALIDATOR_DIR = os.path.join(ROOT, "tests", "k8s")
KUBECTL = os.environ.get("WHT_KUBECTL") or shutil.which("kubectl") or "/usr/bin/kubectl"
OVERLAYS = ["dev", "cluster"]
COMPONENTS = ["servicemonitor", "certificate", "node-tls", "loadbalancer", "ingress-nginx"]
REDIS_PASSWORD = "placeholder-redis-password-0123456789abcdef"
SECRET_FILES = {"secret-a": "placeholder-secret-a-0123456789abcdef\n",
                "secret-b": "placeholder-secret-b-0123456789abcdef\n",
                "cluster-secret": "placeholder-cluster-secret-0123456789abcdef\n",
                "redis-password": REDIS_PASSWORD + "\n",
                "redis-url": "redis://:%s@/\n" % REDIS_PASSWORD}
# Downward API values used only inside other values, as $(NAME): not node settings.
EXPANSION_ONLY = {"POD_NAME", "POD_IP"}
NETWORK_ERRORS = ("ENOTFOUND", "EAI_AGAIN", "ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "ENETUNREACH",
                  "EHOSTUNREACH", "network", "socket hang up", "getaddrinfo")


def have_kubectl():
    if not (os.path.isfile(KUBECTL) and os.access(KUBECTL, os.X_OK)):
        pytest.skip("kubectl not found (it is not a Debian package; WHT_KUBECTL names one): "
                    "the Kubernetes manifests are not checked")


def kustomize(path):
    r = subprocess.run([KUBECTL, "kustomize", path], capture_output=True, text=True, timeout=120,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 0, "kubectl kustomize %s failed:\n%s" % (path, r.stderr)
    return r.stdout


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """{name: YAML text} for each overlay, and "everything": the cluster overlay with every component.
    Rendered from a copy of deploy/k8s with placeholder secret files (the real ones are not in git)."""
    have_kubectl()
    top = tmp_path_factory.mktemp("k8s")
    tree = top / "k8s"
    shutil.copytree(K8S_DIR, tree, ignore=shutil.ignore_patterns("secrets"))
    secrets = tree / "overlays" / "cluster" / "secrets"
    secrets.mkdir()
    for f, text in SECRET_FILES.items():
        (secrets / f).write_text(text)
    everything = top / "everything"
    everything.mkdir()
    (everything / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "resources": ["../k8s/overlays/cluster"],
        "components": ["../k8s/components/%s" % c for c in COMPONENTS]}))
    out = {name: kustomize(str(tree / "overlays" / name)) for name in OVERLAYS}
    out["everything"] = kustomize(str(everything))
    return out


def objects(text):
    return [o for o in yaml.safe_load_all(text) if o]


def find(objs, kind, name):
    for o in objs:
        if o["kind"] == kind and o["metadata"]["name"] == name:
            return o
    raise AssertionError("no %s %s" % (kind, name))


def config_maps(objs):
    return {o["metadata"]["name"]: o.get("data", {}) for o in objs if o["kind"] == "ConfigMap"}


def secret_data(objs, name):
    """A rendered Secret's keys and values, as a pod sees them in its volume or in a secretKeyRef."""
    o = find(objs, "Secret", name)
    out = {k: base64.b64decode(v).decode() for k, v in o.get("data", {}).items()}
    out.update(o.get("stringData", {}))
    return out


def mount_secrets(objs, container, spec, where):
    """Writes each Secret volume of the pod into a directory under `where`: {mountPath: local directory}."""
    vols = {v["name"]: v["secret"]["secretName"] for v in spec.get("volumes", []) if "secret" in v}
    out = {}
    for m in container.get("volumeMounts", []):
        if m["name"] in vols:
            d = where / ("secret-" + m["name"])
            d.mkdir(exist_ok=True)
            for k, v in secret_data(objs, vols[m["name"]]).items():
                (d / k).write_text(v)
            out[m["mountPath"]] = str(d)
    return out


def node_container(objs):
    dep = find(objs, "Deployment", "whtunnel")
    (c,) = [c for c in dep["spec"]["template"]["spec"]["containers"] if c["name"] == "whtunnel"]
    return dep, c


def node_env(objs):
    """The node container's environment as (name -> value or None for valueFrom), envFrom ConfigMaps first."""
    _, c = node_container(objs)
    cms = config_maps(objs)
    env = {}
    for src in c.get("envFrom", []):
        env.update(cms[src["configMapRef"]["name"]])
    for e in c.get("env", []):
        env[e["name"]] = e.get("value")
    return env


def test_overlays_render(rendered):
    dev, cluster = objects(rendered["dev"]), objects(rendered["cluster"])
    dep, _ = node_container(dev)
    assert dep["spec"]["replicas"] == 1
    assert not [o for o in dev if o["kind"] in ("StatefulSet", "HorizontalPodAutoscaler")]
    assert "REDIS_URL" not in node_env(dev) and "WHT_REDIS_SENTINELS" not in node_env(dev)
    dep, _ = node_container(cluster)
    assert "replicas" not in dep["spec"], "the HorizontalPodAutoscaler owns the replica count"
    assert find(cluster, "HorizontalPodAutoscaler", "whtunnel")["spec"]["minReplicas"] >= 3
    assert find(cluster, "StatefulSet", "whtunnel-redis")["spec"]["replicas"] == 2
    assert find(cluster, "StatefulSet", "whtunnel-sentinel")["spec"]["replicas"] == 3
    env = node_env(cluster)
    sentinels = env["WHT_REDIS_SENTINELS"].split(",")
    assert sentinels == ["whtunnel-sentinel-%d.whtunnel-sentinel:26379" % i for i in range(3)]
    assert env["WHT_REDIS_MASTER"] == "whtunnel"
    kinds = {o["kind"] for o in objects(rendered["everything"])}
    assert {"ServiceMonitor", "Certificate", "Ingress"} <= kinds


def ensure_validator():
    """node and npm, and tests/k8s/node_modules (npm ci when missing); skips with the reason."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        pytest.skip("node/npm not found: apt-get install nodejs npm (deploy/install-deps.sh --test)")
    if os.path.isfile(os.path.join(VALIDATOR_DIR, "node_modules", ".package-lock.json")):
        return node
    try:
        r = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=VALIDATOR_DIR, capture_output=True,
                           text=True, timeout=600, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        pytest.skip("npm ci in tests/k8s took over 10 minutes (no network?)")
    if r.returncode != 0:
        out = (r.stdout + r.stderr)[-3000:]
        if any(e in out for e in NETWORK_ERRORS):
            pytest.skip("npm ci in tests/k8s failed for lack of network:\n" + out)
        pytest.fail("npm ci in tests/k8s failed:\n" + out, pytrace=False)
    return node


def validate(tmp_path, text, name="objects.yaml"):
    node = ensure_validator()
    path = tmp_path / name
    path.write_text(text)
    r = subprocess.run([node, os.path.join(VALIDATOR_DIR, "validate.mjs"), str(path)], capture_output=True,
                       text=True, timeout=300, stdin=subprocess.DEVNULL)
    return r.returncode, r.stdout + r.stderr


@pytest.mark.parametrize("which", OVERLAYS + ["everything"])
def test_manifests_validate(rendered, tmp_path, which):
    slow_check()
    rc, out = validate(tmp_path, rendered[which])
    assert rc == 0, out
    assert "%d valid, 0 invalid" % len(objects(rendered[which])) in out, out


# (what is broken, old text, new text, the object the error must name, a word of the error)
BROKEN = [
    ("unknown field", "readinessProbe:", "readinesProbe:", "Deployment whtunnel", "readinesProbe"),
    ("wrong type", "containerPort: 8080", "containerPort: http-port", "Deployment whtunnel", "integer"),
    ("unknown kind", "kind: PodDisruptionBudget", "kind: PodDisruptionBudgets", "PodDisruptionBudgets whtunnel",
     "no schema"),
    ("CRD required field", "  endpoints:", "  endpoint:", "ServiceMonitor whtunnel", "endpoints"),
    ("CRD unknown field", "  renewBefore: 720h", "  renewBefor: 720h", "Certificate whtunnel-tls", "renewBefor"),
]


@pytest.mark.parametrize("what,old,new,obj,word", BROKEN, ids=[b[0] for b in BROKEN])
def test_validator_fails_on_broken_manifest(rendered, tmp_path, what, old, new, obj, word):
    slow_check()
    text = rendered["everything"]
    assert text.count(old) >= 1, "the render no longer has %r: update this test" % old
    rc, out = validate(tmp_path, text.replace(old, new, 1))
    assert rc == 1, out
    errors = [l for l in out.splitlines() if l.startswith("error ")]
    assert len(errors) == 1 and errors[0].startswith("error " + obj + ":") and word in errors[0], out


# ---- the manifests and the node agree ---------------------------------------------------

def help_env_names():
    r = subprocess.run([binary("whtunnel"), "--help"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    names = set(re.findall(r"\[([A-Z][A-Z0-9_]*)\]", r.stdout))
    assert {"PORT", "WHT_ADMIN_ADDR", "WHT_DRAIN_TIMEOUT"} <= names, r.stdout
    return names


def test_env_vars_are_the_nodes(rendered):
    """Every variable the manifests set for the node is one `whtunnel --help` lists (variables of branches
    not merged yet fail here until they are)."""
    known = help_env_names()
    unknown = {}
    for which, text in rendered.items():
        objs = objects(text)
        env = node_env(objs)
        _, c = node_container(objs)
        values = " ".join(str(e.get("value", "")) for e in c.get("env", []))
        for name in EXPANSION_ONLY & set(env):
            assert "$(%s)" % name in values, "%s set but never used in $(...)" % name
        for name in set(env) - EXPANSION_ONLY - known:
            unknown.setdefault(name, []).append(which)
    assert not unknown, "not in whtunnel --help: %s" % unknown


# Read by the start scripts with a default, set only by the test below.
SCRIPT_KNOBS = {"DATA_DIR", "BIND"}


def test_redis_scripts_and_env_agree(rendered):
    """The Redis and sentinel containers set exactly the variables their start scripts read (but the knobs
    for this test)."""
    objs = objects(rendered["cluster"])
    scripts = next(d for n, d in config_maps(objs).items() if n.startswith("whtunnel-redis-scripts"))
    for sts, script in (("whtunnel-redis", "redis-start.sh"), ("whtunnel-sentinel", "sentinel-start.sh")):
        (c,) = find(objs, "StatefulSet", sts)["spec"]["template"]["spec"]["containers"]
        assert c["command"] == ["sh", "/scripts/" + script]
        set_names = {e["name"] for e in c["env"]}
        read = set(re.findall(r"\$\{?([A-Z][A-Z0-9_]*)", scripts[script])) - SCRIPT_KNOBS
        assert set_names == read, "%s: set %s, read %s" % (sts, sorted(set_names), sorted(read))


def duration_s(text):
    m = re.fullmatch(r"(\d+)(ms|s|m)", text)
    assert m, text
    return int(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60}[m.group(2)]


def pod_specs(objs):
    for o in objs:
        if o["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
            yield "%s %s" % (o["kind"], o["metadata"]["name"]), o["spec"]["template"]["spec"]


def test_pods_restricted(rendered):
    """Every pod meets Pod Security's "restricted" profile (which the namespace enforces), with a read-only root
    file system, resources requested and limited, and no service account token."""
    objs = objects(rendered["everything"])
    ns = find(objs, "Namespace", "whtunnel")
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    specs = list(pod_specs(objs))
    assert len(specs) == 3
    for what, spec in specs:
        psc = spec.get("securityContext", {})
        assert psc.get("runAsNonRoot") is True and psc.get("runAsUser", 0) > 0, what
        assert psc.get("seccompProfile", {}).get("type") == "RuntimeDefault", what
        assert spec.get("automountServiceAccountToken") is False, what
        assert not any(spec.get(k) for k in ("hostNetwork", "hostPID", "hostIPC")), what
        for v in spec.get("volumes", []):
            assert set(v) - {"name"} <= {"secret", "configMap", "emptyDir", "projected", "downwardAPI"}, (what, v)
        for c in spec["containers"] + spec.get("initContainers", []):
            sc = c.get("securityContext", {})
            assert sc.get("allowPrivilegeEscalation") is False, (what, c["name"])
            assert sc.get("capabilities", {}).get("drop") == ["ALL"], (what, c["name"])
            assert not sc.get("capabilities", {}).get("add"), (what, c["name"])
            assert sc.get("readOnlyRootFilesystem") is True, (what, c["name"])
            assert not sc.get("privileged"), (what, c["name"])
            assert all(p.get("hostPort") is None for p in c.get("ports", [])), (what, c["name"])
            res = c.get("resources", {})
            assert {"cpu", "memory"} <= set(res.get("requests", {})) and "memory" in res.get("limits", {}), \
                (what, c["name"])


def test_grace_period_covers_the_drain(rendered):
    """terminationGracePeriodSeconds >= preStop sleep + WHT_DRAIN_TIMEOUT + 5 s to leave the registry."""
    for which, text in rendered.items():
        objs = objects(text)
        dep, c = node_container(objs)
        grace = dep["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        cmd = c["lifecycle"]["preStop"]["exec"]["command"]
        assert cmd[0].endswith("sleep")
        drain = duration_s(node_env(objs)["WHT_DRAIN_TIMEOUT"])
        assert grace >= int(cmd[1]) + drain + 5, (which, grace, cmd, drain)


def port_of(addr):
    return int(addr.rsplit(":", 1)[1])


def http_get(port, path):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read().decode(errors="replace")
    finally:
        c.close()


def env_as_in_pod(objs, tmp_path, ports, extra=None):
    """The node container's environment as the pod has it: $(POD_IP) is 127.0.0.1, $(POD_NAME) a name, the pod's
    ports (container port numbers) mapped by `ports` ({number: local port}), the mounted Secrets' files (from
    the rendered Secrets) in tmp_path; `extra` adds variables or removes them (None)."""
    dep, c = node_container(objs)
    by_number = {str(k): str(v) for k, v in ports.items()}
    mounts = mount_secrets(objs, c, dep["spec"]["template"]["spec"], tmp_path)
    env = {}
    for name, value in node_env(objs).items():
        if name in EXPANSION_ONLY:
            continue
        value = value.replace("$(POD_IP)", "127.0.0.1").replace("$(POD_NAME)", "whtunnel-test-pod")
        value = re.sub(r"(?<=:)(\d+)$", lambda m: by_number.get(m.group(1), m.group(1)), value)
        if name == "PORT":
            value = by_number[value]
        if name == "WHT_LISTEN_ADDR" or value.startswith("0.0.0.0:"):
            value = value.replace("0.0.0.0", "127.0.0.1")
        for path, local in mounts.items():
            if value.startswith(path + "/"):
                value = local + value[len(path):]
        env[name] = value
    for name, value in (extra or {}).items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def start_as_in_pod(objs, tmp_path, extra=None):
    """A real node with the pod's environment (env_as_in_pod), its ports moved to free ones. Returns
    (proc, {container port name: local port}, env)."""
    _, c = node_container(objs)
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    moved = {n: free_port() for n in ports}
    env = env_as_in_pod(objs, tmp_path, {ports[n]: moved[n] for n in ports}, extra)
    proc = Proc([binary("whtunnel")], env=env, name="node")
    try:
        wait_for(lambda: all(port_open(moved[n]) for n in ("http", "admin")) or not proc.alive(), 10,
                 "node to listen")
        assert proc.alive(), proc.output()
    except BaseException:
        proc.stop()
        raise
    return proc, moved, env


def probe_paths(dep_container):
    return {(k, p["httpGet"]["port"], p["httpGet"]["path"]) for k, p in dep_container.items()
            if k.endswith("Probe") and "httpGet" in p}


def test_node_as_in_pod(rendered, tmp_path):
    """dev's settings: the probes' paths answer 200 on the admin port, the viewer port and the load balancer's
    health check path answer, every metric name the manifests mention is in /metrics; docs/deploy.md's dev
    walk-through: a token from `whtunnel token` run with the pod's environment (kubectl exec) registers a
    whclient through the viewer port, and a request reaches its backend."""
    objs = objects(rendered["dev"])
    _, c = node_container(objs)
    proc, ports, env = start_as_in_pod(objs, tmp_path)
    try:
        probes = probe_paths(c)
        assert {k for k, _, _ in probes} == {"readinessProbe", "livenessProbe"}
        for kind, port, path in probes:
            assert port in ports, "%s on port %r, not one of the container's" % (kind, port)
            assert http_get(ports[port], path)[0] == 200, (kind, path)
        everything = rendered["everything"]
        for path in re.findall(r"healthcheck-path: (\S+)", everything):
            assert http_get(ports["http"], path)[0] == 200, path
        status, metrics = http_get(ports["admin"], "/metrics")
        assert status == 200
        exposed = set(re.findall(r"^([a-z_][a-z0-9_]*)[{ ]", metrics, re.M))
        exposed |= {re.sub(r"_(bucket|sum|count)$", "", n) for n in exposed}
        used = set(re.findall(r"\b(whtunnel_[a-z0-9_]+|process_[a-z0-9_]+)\b", "\n".join(rendered.values())))
        assert used <= exposed, "metric names not in /metrics: %s" % sorted(used - exposed)
        r = subprocess.run([binary("whtunnel"), "token", "--id", "w1"], env=dict(os.environ, **env),
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        backend = Backend()
        try:
            client = Client("http://127.0.0.1:%d" % ports["http"], "w1", backend.port, token=r.stdout.strip())
            try:
                status, body = http_get(ports["http"], "/w1/echo/k8s")
                assert status == 200 and json.loads(body)["target"] == "/echo/k8s", (status, body)
            finally:
                client.stop()
        finally:
            backend.stop()
    finally:
        proc.stop()


def test_node_as_in_pod_cluster(rendered, tmp_path):
    """cluster's settings, with a real redis-server reached by REDIS_URL instead of the sentinels and
    REDIS_URL_FILE (test_node_follows_the_sentinels runs those): the node listens on the pod's three ports, joins the registry advertising
    $(POD_IP):<peer port>, and is ready."""
    from test_cluster import Redis
    rds = Redis()
    objs = objects(rendered["cluster"])
    extra = {"REDIS_URL": rds.url, "WHT_REDIS_PREFIX": "k8s:", "WHT_REDIS_SENTINELS": None, "WHT_REDIS_MASTER": None,
             "REDIS_URL_FILE": None}
    try:
        proc, ports, _ = start_as_in_pod(objs, tmp_path, extra)
        try:
            wait_for(lambda: port_open(ports["peer"]), 10, "peer port")
            assert http_get(ports["admin"], "/readyz")[0] == 200
            members = rds.client().zrange("k8s:members", 0, -1)
            assert any(b"127.0.0.1:%d" % ports["peer"] in m for m in members), members
        finally:
            proc.stop()
    finally:
        rds.stop()


# ---- the Redis StatefulSets' start scripts, run for real -------------------------------------

class PodNet:
    """One private network namespace (made here, so the pods' fixed ports 6379 and 26379 collide with nothing
    on this machine) in which each "pod" is a process with its own loopback address, its own data directory,
    and a private mount namespace whose /etc/hosts maps the pods' DNS names (<statefulset>-<i>.<service>)."""

    def __init__(self, tmp_path, names):
        self.tmp = tmp_path
        self.ip = {n: "127.0.0.%d" % (11 + i) for i, n in enumerate(names)}
        self.hosts = tmp_path / "hosts"
        self.hosts.write_text("127.0.0.1 localhost\n" + "".join("%s %s\n" % (ip, n) for n, ip in self.ip.items()))
        self.holder = subprocess.Popen(["unshare", "--net", "sleep", "900"], stdin=subprocess.DEVNULL,
                                       stderr=subprocess.PIPE)
        self.pods = {}
        try:
            # until unshare has made the namespace, nsenter would enter this machine's own
            wait_for(lambda: self.holder.poll() is not None or self.own_netns(), 5, "network namespace")
            if self.holder.poll() is not None:
                raise OSError(self.holder.stderr.read().decode(errors="replace"))
            r = self.run(["ip", "link", "set", "lo", "up"])
            if r.returncode != 0 or ",UP" not in self.run(["ip", "-o", "link", "show", "lo"]).stdout:
                raise OSError("cannot bring lo up in the namespace: %s" % r.stderr)
        except BaseException:
            self.close()
            raise

    def own_netns(self):
        try:
            return os.readlink("/proc/%d/ns/net" % self.holder.pid) != os.readlink("/proc/self/ns/net")
        except OSError:
            return False

    def run(self, args, timeout=10):
        return subprocess.run(["nsenter", "-t", str(self.holder.pid), "-n"] + args, capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)

    def cli(self, name, port, *args, password=None):
        auth = ["env", "REDISCLI_AUTH=" + password] if password else []
        r = self.run(auth + ["redis-cli", "-h", self.ip[name], "-p", str(port), "--raw"] + list(args), timeout=5)
        return r.stdout.strip() if r.returncode == 0 else ""

    def start(self, name, container, script_path, secrets):
        """Runs the container's command (sh /scripts/X.sh) as pod `name` with the container's env (a secretKeyRef
        read from `secrets`: {Secret name: its data})."""
        data = self.tmp / ("data-" + name)
        data.mkdir(exist_ok=True)
        env = {}
        for e in container["env"]:
            if "value" in e:
                env[e["name"]] = e["value"]
            elif "secretKeyRef" in e.get("valueFrom", {}):
                ref = e["valueFrom"]["secretKeyRef"]
                env[e["name"]] = secrets[ref["name"]][ref["key"]]
        env.update({"POD_NAME": name.split(".")[0], "DATA_DIR": str(data), "BIND": self.ip[name]})
        inner = 'mount --bind "$0" /etc/hosts && exec sh "$1"'
        self.pods[name] = Proc(["nsenter", "-t", str(self.holder.pid), "-n", "unshare", "--mount",
                                "--propagation", "private", "sh", "-c", inner, str(self.hosts), script_path],
                               env=env, name=name.split(".")[0])

    def close(self):
        for p in self.pods.values():
            p.stop(sig=9)
        if self.holder.poll() is None:
            self.holder.kill()
        self.holder.wait()


def role(net, name):
    info = net.cli(name, 6379, "info", "replication", password=REDIS_PASSWORD)
    fields = dict(l.split(":", 1) for l in info.splitlines() if ":" in l)
    return fields.get("role"), fields.get("master_host"), fields.get("master_link_status")


R0, R1 = "whtunnel-redis-0.whtunnel-redis", "whtunnel-redis-1.whtunnel-redis"
SENTINELS = ["whtunnel-sentinel-%d.whtunnel-sentinel" % i for i in range(3)]
NODE_POD = "whtunnel-5f7b9c4d8-x2x7q"


class RedisPods:
    """The cluster overlay's Redis StatefulSets in a PodNet: their containers and start scripts as rendered."""

    def __init__(self, rendered, tmp_path, extra_names=()):
        for tool in ("redis-server", "redis-sentinel", "redis-cli", "unshare", "nsenter", "timeout"):
            if not shutil.which(tool):
                pytest.skip("%s not found (deploy/install-deps.sh --test)" % tool)
        self.objs = objects(rendered["cluster"])
        scripts = next(d for n, d in config_maps(self.objs).items() if n.startswith("whtunnel-redis-scripts"))
        self.script = {}
        for f, text in scripts.items():
            (tmp_path / f).write_text(text)
            self.script[f] = str(tmp_path / f)
        spec = lambda n: find(self.objs, "StatefulSet", n)["spec"]["template"]["spec"]["containers"][0]
        self.redis_c, self.sentinel_c = spec("whtunnel-redis"), spec("whtunnel-sentinel")
        self.master_name = next(e["value"] for e in self.sentinel_c["env"] if e["name"] == "MASTER_NAME")
        self.secrets = {o["metadata"]["name"]: secret_data(self.objs, o["metadata"]["name"])
                        for o in self.objs if o["kind"] == "Secret"}
        try:
            self.net = PodNet(tmp_path, [R0, R1] + SENTINELS + list(extra_names))
        except (OSError, subprocess.SubprocessError, TimeoutError) as e:
            pytest.skip("cannot make a network namespace here (root and unshare needed): %s" % e)

    def start_redis(self, name):
        self.net.start(name, self.redis_c, self.script["redis-start.sh"], self.secrets)

    def start_sentinel(self, name):
        self.net.start(name, self.sentinel_c, self.script["sentinel-start.sh"], self.secrets)

    def redis(self, name, *args):
        return self.net.cli(name, 6379, *args, password=REDIS_PASSWORD)

    def probe(self, name, container, kind, env_override=None):
        """Runs a container's exec probe against pod `name` (its redis-cli aimed at the pod's address: the pods
        share this namespace's 127.0.0.1); returns the exit status."""
        cmd = list(container[kind]["exec"]["command"])
        cmd[-1] = cmd[-1].replace("redis-cli -p", "redis-cli -h %s -p" % self.net.ip[name])
        env = {}
        for e in container["env"]:
            if "secretKeyRef" in e.get("valueFrom", {}):
                ref = e["valueFrom"]["secretKeyRef"]
                env[e["name"]] = self.secrets[ref["name"]][ref["key"]]
        env.update(env_override or {})
        return self.net.run(["env"] + ["%s=%s" % kv for kv in env.items()] + cmd).returncode

    def watched(self, s):
        return self.net.cli(s, 26379, "sentinel", "get-master-addr-by-name", self.master_name).split("\n")[0]

    def settled(self, master, replica):
        net = self.net
        if role(net, master)[0] != "master" or role(net, replica) != ("slave", master, "up"):
            return False
        for s in SENTINELS:
            flat = net.cli(s, 26379, "sentinel", "master", self.master_name).split("\n")
            v = dict(zip(flat[0::2], flat[1::2]))
            if not (v.get("name") == self.master_name and v.get("ip") == master and v.get("num-slaves") == "1"
                    and v.get("num-other-sentinels") == "2" and "s_down" not in v.get("flags", "")):
                return False
        return True

    def fresh_start(self):
        """All at once, as podManagementPolicy: Parallel starts them."""
        for n in (R0, R1):
            self.start_redis(n)
        for s in SENTINELS:
            self.start_sentinel(s)
        wait_for(lambda: self.settled(R0, R1), 40, "pod 0 master, pod 1 replica, three sentinels agreeing")

    def fail_over(self):
        """SIGKILL of pod 0, the master: the sentinels promote pod 1."""
        self.net.pods[R0].stop(sig=9)
        wait_for(lambda: all(self.watched(s) == R1 for s in SENTINELS), 60, "the sentinels to promote pod 1")
        wait_for(lambda: role(self.net, R1)[0] == "master", 20, "pod 1 to be master")

    def dump(self):
        for n, p in self.net.pods.items():
            print("---- %s\n%s" % (n, p.output()[-3000:]))


def test_redis_sentinel_scripts(rendered, tmp_path):
    """The StatefulSets' start scripts with real redis-server and redis-sentinel, each "pod" on its own address
    with the pods' DNS names: a fresh start makes pod 0 the master, pod 1 its replica and three sentinels
    watching it; after pod 0 is killed the sentinels promote pod 1; pod 0 restarted joins as pod 1's replica; a
    sentinel restarted watches the new master."""
    slow_check()
    pods = RedisPods(rendered, tmp_path)
    net = pods.net
    try:
        pods.fresh_start()
        for kind in ("readinessProbe", "livenessProbe"):
            assert pods.probe(R0, pods.redis_c, kind) == 0 and pods.probe(R1, pods.redis_c, kind) == 0, kind
            assert pods.probe(R0, pods.redis_c, kind, {"REDIS_PASSWORD": "wrong"}) != 0, kind
            assert pods.probe(SENTINELS[0], pods.sentinel_c, kind) == 0, kind
            assert pods.probe(R0, pods.sentinel_c, kind) != 0, kind  # no sentinel there
        assert pods.redis(R0, "set", "k", "v") == "OK"
        wait_for(lambda: pods.redis(R1, "get", "k") == "v", 10, "the write replicated")
        r = net.run(["redis-cli", "-h", net.ip[R0], "-p", "6379", "get", "k"])
        assert "NOAUTH" in r.stdout + r.stderr, "Redis answers without its password: %r" % r
        pods.fail_over()
        pods.start_redis(R0)
        wait_for(lambda: pods.settled(R1, R0), 60, "pod 0, restarted, to replicate pod 1")
        net.pods[SENTINELS[2]].stop(sig=9)
        pods.start_sentinel(SENTINELS[2])
        wait_for(lambda: pods.watched(SENTINELS[2]) == R1, 20, "the restarted sentinel to watch pod 1")
        wait_for(lambda: pods.settled(R1, R0), 60, "the restarted sentinel to see the others and the replica")
        assert "watches " + R1 in net.pods[SENTINELS[2]].output()
    except BaseException:
        pods.dump()
        raise
    finally:
        net.close()


def test_node_follows_the_sentinels(rendered, tmp_path):
    """A real node with the cluster overlay's settings, unchanged but for the pod's IP, name and secret paths
    (its own address in the PodNet, the manifests' ports, WHT_REDIS_SENTINELS naming the sentinel pods, Redis's
    password from the rendered Secret through REDIS_URL_FILE): it finds the master through the sentinels, joins
    the registry there, and after a failover writes its membership to the new master."""
    if "WHT_REDIS_SENTINELS" not in help_env_names():
        pytest.skip("this whtunnel has no WHT_REDIS_SENTINELS (the sentinel branch is not merged yet)")
    pods = RedisPods(rendered, tmp_path, [NODE_POD])
    net = pods.net
    dep, c = node_container(pods.objs)
    mounts = mount_secrets(pods.objs, c, dep["spec"]["template"]["spec"], tmp_path)
    env = {}
    for name, value in node_env(pods.objs).items():
        if name not in EXPANSION_ONLY:
            value = value.replace("$(POD_IP)", net.ip[NODE_POD]).replace("$(POD_NAME)", NODE_POD)
            for path, local in mounts.items():
                if value.startswith(path + "/"):
                    value = local + value[len(path):]
            env[name] = value
    member = "%s %s:8081" % (NODE_POD, net.ip[NODE_POD])
    try:
        pods.fresh_start()
        net.pods[NODE_POD] = Proc(["nsenter", "-t", str(net.holder.pid), "-n", "unshare", "--mount",
                                   "--propagation", "private", "sh", "-c", 'mount --bind "$0" /etc/hosts && exec "$1"',
                                   str(net.hosts), binary("whtunnel")], env=env, name="node")
        node_key = "wht:node:" + NODE_POD
        wait_for(lambda: pods.redis(R0, "get", node_key).startswith(member), 20, "the node's member key on pod 0")
        admin = "http://%s:8082" % net.ip[NODE_POD]
        assert net.run(["curl", "-s", admin + "/readyz"]).stdout.strip() == "ready"
        pods.fail_over()
        # what pod 0 had replicated is on pod 1 too: remove it, the node's heartbeat must write it again there
        wait_for(lambda: pods.redis(R1, "del", node_key) == "1" and
                 wait_for(lambda: pods.redis(R1, "get", node_key).startswith(member), 10,
                          "the member key written again on pod 1"), 30, "the node to follow the failover")
        metrics = net.run(["curl", "-s", admin + "/metrics"]).stdout
        assert re.search(r"^whtunnel_redis_master_changes_total [1-9]", metrics, re.M), metrics[-2000:]
        assert re.search(r"^whtunnel_redis_up 1", metrics, re.M)
        assert net.pods[NODE_POD].alive()
    except BaseException:
        pods.dump()
        raise
    finally:
        net.close()
