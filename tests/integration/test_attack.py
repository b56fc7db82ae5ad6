"""tests/bench/attack.py in a tiny mode, so that the harness cannot rot: while silent,
slowloris, half-open-registration and bad-token attacks run against a real node, every good
request through a real whclient is answered. No timing is asserted (docs/benchmarks.md has the
figures of a full run)."""

import os
import subprocess
import sys

from conftest import BUILD, ROOT


def test_attack_harness_tiny():
    out = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "bench", "attack.py"), "--build", BUILD,
                          "--conns", "200", "--seconds", "1", "--good", "20"],
                         capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stdout + out.stderr
    rows = [line.split() for line in out.stdout.splitlines()
            if line.split() and line.split()[0] in ("silent", "slowloris", "half-open", "bad-tokens")]
    assert [r[0] for r in rows] == ["silent", "slowloris", "half-open", "bad-tokens"], out.stdout
    for r in rows:
        assert int(r[3]) > 0 and int(r[4]) == 0, "good requests failed under %s:\n%s" % (r[0], out.stdout)
    assert int(rows[0][1]) == 200  # the attack really held its connections
    assert int(rows[3][2]) > 0     # and really sent bad registrations
