"""`cmake --install`: the binaries, the man pages and the systemd units land under the prefix,
the units pass `systemd-analyze verify`, and the installed programs run the way the units run
them (the whclient@ unit hands its token file to whclient's stdin)."""

import os
import re
import shutil
import subprocess
import urllib.request

import pytest

from conftest import BUILD, ROOT, SECRET_A, Proc, free_port, make_token, wait_for

UNITS = ("whtunnel.service", "whclient@.service")


@pytest.fixture(scope="module")
def prefix(tmp_path_factory):
    root = tmp_path_factory.mktemp("prefix")
    out = subprocess.run(["cmake", "--install", BUILD, "--prefix", str(root)], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    return root


def help_vars():
    """Every environment variable `whtunnel --help` names: [NAME] after each option."""
    text = subprocess.run([os.path.join(BUILD, "node", "whtunnel"), "--help"], capture_output=True, text=True,
                          check=True).stdout
    return set(re.findall(r"\[([A-Z][A-Z0-9_]+)\]", text))


def test_install_puts_binaries_man_pages_and_units_under_the_prefix(prefix):
    for rel in ("bin/whtunnel", "bin/whclient"):
        path = prefix / rel
        assert path.is_file() and os.access(path, os.X_OK), rel
    for name in ("whtunnel", "whclient"):
        page = prefix / "share/man/man1" / (name + ".1")
        assert page.is_file(), page
        lint = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", str(page)], capture_output=True, text=True)
        assert lint.returncode == 0 and lint.stderr == "", lint.stderr
        text = subprocess.run(["man", "-l", str(page)], capture_output=True, text=True,
                              env=dict(os.environ, MANWIDTH="100")).stdout
        assert "@HELP@" not in text and "--help" in text
    # the node's page is its --help: every variable is in it
    page = subprocess.run(["man", "-l", str(prefix / "share/man/man1/whtunnel.1")], capture_output=True, text=True,
                          env=dict(os.environ, MANWIDTH="200")).stdout
    missing = [v for v in help_vars() if v not in page]
    assert not missing, "man whtunnel lacks %s" % missing
    assert "whtunnel token --id" in page
    for unit in UNITS:
        text = (prefix / "lib/systemd/system" / unit).read_text()
        binary = "whtunnel" if unit.startswith("whtunnel") else "whclient"
        assert "ExecStart=%s/bin/%s" % (prefix, binary) in text
        assert not re.search(r"@[A-Z_]+@", text), "unfilled placeholder in " + unit
    installed = subprocess.run([str(prefix / "bin/whtunnel"), "--help"], capture_output=True, text=True)
    built = subprocess.run([os.path.join(BUILD, "node", "whtunnel"), "--help"], capture_output=True, text=True)
    assert installed.returncode == 0 and installed.stdout == built.stdout


def test_units_pass_systemd_analyze_verify(prefix, tmp_path):
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze is not installed: the units were not verified")
    units = prefix / "lib/systemd/system"
    # a template is verified through an instance of it
    shutil.copy(units / "whclient@.service", tmp_path / "whclient@demo.service")
    shutil.copy(units / "whtunnel.service", tmp_path / "whtunnel.service")
    for unit in ("whtunnel.service", "whclient@demo.service"):
        out = subprocess.run(["systemd-analyze", "verify", str(tmp_path / unit)], capture_output=True, text=True,
                             env=dict(os.environ, MANPATH=str(prefix / "share/man")), timeout=60)
        # verify exits 0 on unknown keys and bad values: any message is a failure
        assert out.returncode == 0 and out.stderr.strip() == "", "%s: %s" % (unit, out.stderr)
    text = (units / "whtunnel.service").read_text()
    for needed in ("DynamicUser=yes", "ProtectSystem=strict", "NoNewPrivileges=yes", "Restart=on-failure",
                   "ExecReload=/bin/kill -HUP $MAINPID", "KillSignal=SIGTERM"):
        assert needed in text, needed
    # the stop timeout leaves the drain (WHT_DRAIN_TIMEOUT default 30s) a margin
    stop = int(re.search(r"^TimeoutStopSec=(\d+)s$", text, re.M).group(1))
    assert stop > 30


def test_unit_bad_key_is_caught(tmp_path):
    """The check above can fail: a unit with a misspelt setting is reported."""
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze is not installed")
    unit = tmp_path / "broken.service"
    unit.write_text("[Service]\nExecStart=/bin/true\nProtectSystem=strickt\n")
    out = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert "strickt" in out.stderr


def test_example_env_files_name_only_real_settings():
    known = help_vars()
    text = open(os.path.join(ROOT, "deploy/systemd/whtunnel.env")).read()
    named = set(re.findall(r"^#?([A-Z][A-Z0-9_]+)=", text, re.M))
    assert named and not (named - known), "unknown settings in whtunnel.env: %s" % (named - known)
    unit = open(os.path.join(ROOT, "deploy/systemd/whclient@.service.in")).read()
    client_env = open(os.path.join(ROOT, "deploy/systemd/whclient.env")).read()
    for var in re.findall(r"^#?([A-Z][A-Z0-9_]+)=", client_env, re.M):
        assert "${%s}" % var in unit or "$%s" % var in unit, var


def test_installed_programs_serve_as_the_units_run_them(prefix, tmp_path, procs):
    """The installed node, and the installed whclient with its token file on stdin (as
    whclient@.service's StandardInput=file: gives it), serve a request end to end."""
    port = free_port()
    env = dict(os.environ, PORT=str(port), WHT_LISTEN_ADDR="127.0.0.1", TASKCLUSTER_PROXY_SECRET_A=SECRET_A,
               WHT_ADMIN_ADDR="off", ENV="production")
    node = Proc([str(prefix / "bin/whtunnel")], env=env, name="node")
    procs.append(node)
    wait_for(lambda: _get("http://127.0.0.1:%d/__lbheartbeat__" % port) == 200, 10, "the installed node")
    backend_dir = tmp_path / "www"
    backend_dir.mkdir()
    (backend_dir / "hello.txt").write_text("installed")
    bport = free_port()
    backend = Proc(["/usr/bin/python3", "-m", "http.server", str(bport), "--bind", "127.0.0.1",
                    "--directory", str(backend_dir)])
    procs.append(backend)
    token_file = tmp_path / "whclient-inst.token"
    token_file.write_text(make_token("inst") + "\n")
    with open(token_file) as stdin:
        client = Proc([str(prefix / "bin/whclient"), "ws://127.0.0.1:%d" % port, "inst", str(bport)], stdin=stdin)
    procs.append(client)
    url = "http://127.0.0.1:%d/inst/hello.txt" % port
    wait_for(lambda: _get(url) == 200, 15, "a request through the installed whclient")
    with urllib.request.urlopen(url, timeout=5) as r:
        assert r.read() == b"installed"


def _get(url):
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            r.read()
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return None
