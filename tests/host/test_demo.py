"""`make demo` is one of the two commands the README promises: run it (two device kinds, to
keep the suite short) and check that each step of the technician's day did what it says."""
import os
import re
import subprocess
import sys

import pytest


def test_demo_runs_a_technicians_day_and_leaves_nothing_running():
    env = dict(os.environ, EDGEKIT_DEMO_KINDS="water_meter,smart_bin")
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    proc = subprocess.run([sys.executable, "-m", "edgekit.demo"], capture_output=True,
                          text=True, timeout=300, env=env)
    out = proc.stdout
    assert proc.returncode == 0, out[-3000:] + proc.stderr[-3000:]
    for expected in ("every SHA-256 checked on the device",
                     "EVENT burst active=True",
                     "device answers replayed; valve stays closed",
                     "EVENT fire active=True",
                     "installed, booted in trial mode and confirmed",
                     "the meter now reports firmware 1.0.1",
                     "provisioned with the broker in its network config",
                     "burst journal #",          # the networked meter's alarm, via the broker
                     "installed over MQTT",      # ota push --via fleet to the networked meter
                     "dropped 0",
                     "no board left running"):
        assert expected in out, f"demo output lacks {expected!r}:\n{out[-3000:]}"
    # every networked board's records reached the fleet service's store
    stored = re.findall(r"^ +\S+ +(\d+) records \((\w+)\)$", out, re.M)
    assert sorted(k for _, k in stored) == ["env_sensor", "smart_bin", "water_meter"], out
    assert all(int(n) > 0 for n, _ in stored), stored
    if "(verified: False)" in out:
        pytest.fail("the demo showed an unverified frame:\n" + out)
