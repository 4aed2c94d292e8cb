"""`edgekit emu start` defaults to real time (an idle board uses no CPU on a laptop) and
`emu stop` takes several ids, stopping them together."""
import json
import os
import subprocess
import sys
import time

import pytest


@pytest.fixture
def home(tmp_path):
    d = str(tmp_path / "home")
    yield d
    subprocess.run([sys.executable, "-m", "edgekit.cli", "emu", "stop", "--all"],
                   env=dict(os.environ, EDGEKIT_HOME=d), capture_output=True, timeout=60)


def emu(home, *args, check=True):
    proc = subprocess.run([sys.executable, "-m", "edgekit.cli", "emu", *args],
                          capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, EDGEKIT_HOME=home))
    if check and proc.returncode != 0:
        raise AssertionError(f"emu {' '.join(args)}: {proc.returncode}\n{proc.stderr}")
    return proc


def _cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_start_defaults_to_real_time_and_an_idle_board_rests(home):
    assert "default real" in emu(home, "start", "--help").stdout.replace("\n", " ")
    info = json.loads(emu(home, "start", "--kind", "water_meter", "--json").stdout)
    assert info["time"] == "real"
    pid = int(open(os.path.join(home, "emu", "supervisor.pid")).read())
    time.sleep(1.0)                         # booted and asleep in its main loop
    c0, s0, t0 = _cpu_s(pid), info["sim_s"], time.monotonic()
    time.sleep(2.0)
    listed = json.loads(emu(home, "list", "--json").stdout)[0]
    wall = time.monotonic() - t0
    # real time: simulated time moves with the wall clock (not 60x, not uncapped) ...
    assert listed["sim_s"] - s0 <= wall + 3.5
    # ... and the supervisor idles (uncapped virtual time kept it spinning a core)
    assert _cpu_s(pid) - c0 < 0.5 * wall


def test_stop_takes_several_ids_and_refuses_unknown_ones(home):
    ids = [json.loads(emu(home, "start", "--bare", "--json").stdout)["id"] for _ in range(3)]
    bad = emu(home, "stop", ids[0], "ghost-9", check=False)
    assert bad.returncode == 2 and "no board 'ghost-9'" in bad.stderr
    listed = {b["id"] for b in json.loads(emu(home, "list", "--json").stdout)}
    assert listed == set(ids)               # nothing stopped on a bad request
    stopped = json.loads(emu(home, "stop", ids[0], ids[1], "--json").stdout)
    assert [s["id"] for s in stopped] == ids[:2]
    assert [b["id"] for b in json.loads(emu(home, "list", "--json").stdout)] == [ids[2]]
    both = emu(home, "stop", ids[2], "--all", check=False)
    assert both.returncode == 2 and "not both" in both.stderr
    assert "stopped " + ids[2] in emu(home, "stop", "--all").stdout
