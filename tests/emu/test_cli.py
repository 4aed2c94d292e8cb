"""`edgekit emu`: a detached supervisor that outlives the command, JSON output, stale state."""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest
import serial

from conftest import read_until


@pytest.fixture
def home():
    # A short path: the control socket's path must fit a unix socket address.
    d = tempfile.mkdtemp(prefix="ekh-", dir="/tmp")
    yield d
    pid_file = os.path.join(d, "emu", "supervisor.pid")
    if os.path.exists(pid_file):        # a failed test must not leave its supervisor behind
        subprocess.run([sys.executable, "-m", "edgekit.cli", "emu", "stop", "--all"],
                       env=dict(os.environ, EDGEKIT_HOME=d), capture_output=True, timeout=30)
    shutil.rmtree(d, ignore_errors=True)


def emu(home, *args, check=True):
    proc = subprocess.run([sys.executable, "-m", "edgekit.cli", "emu", *args],
                          env=dict(os.environ, EDGEKIT_HOME=home), capture_output=True,
                          text=True, timeout=60)
    if check and proc.returncode != 0:
        raise AssertionError(f"emu {' '.join(args)}: exit {proc.returncode}\n{proc.stdout}"
                             f"\n{proc.stderr}")
    return proc


def test_start_list_clock_set_stop(home):
    info = json.loads(emu(home, "start", "--board", "esp32", "--bare", "--json").stdout)
    assert {"id", "url", "pty", "board", "kind", "flash"} <= set(info)
    assert info["board"] == "esp32" and info["url"].startswith("socket://127.0.0.1:")
    # the board outlives the command that started it
    port = serial.serial_for_url(info["url"], timeout=0.1)
    port.write(b"\r")
    read_until(port, b">>> ")
    port.close()
    meter = json.loads(emu(home, "start", "--kind", "water_meter", "--time", "paused",
                           "--json").stdout)
    listed = json.loads(emu(home, "list", "--json").stdout)
    assert sorted(b["id"] for b in listed) == sorted([info["id"], meter["id"]])
    emu(home, "set", meter["id"], "flow_lpm=6", "tamper=true")
    clock = json.loads(emu(home, "advance", meter["id"], "600", "--json").stdout)
    assert clock["sim_s"] == pytest.approx(600, abs=0.01) and clock["mode"] == "paused"
    world = json.loads(emu(home, "world", meter["id"], "--json").stdout)
    assert world["litres_fwd"] == pytest.approx(60) and world["values"]["tamper"] is True
    bad = emu(home, "set", meter["id"], "nosuch=1", check=False)
    assert bad.returncode == 2 and "no quantity 'nosuch'" in bad.stderr
    bad = emu(home, "clock", "ghost-1", check=False)
    assert bad.returncode == 2 and "no board 'ghost-1'" in bad.stderr
    assert "stopped" in emu(home, "stop", "--all").stdout
    assert emu(home, "list").stdout.strip() == "no boards running"
    deadline = time.monotonic() + 10   # the supervisor exits with its last board
    while os.path.exists(os.path.join(home, "emu", "supervisor.pid")):
        assert time.monotonic() < deadline, "supervisor still running after stop --all"
        time.sleep(0.05)
    # the flash stays on the shelf for the next start with that id
    assert os.path.isdir(info["flash"])


def test_stale_supervisor_is_detected_and_cleaned(home):
    info = json.loads(emu(home, "start", "--bare", "--json").stdout)
    pid = int(open(os.path.join(home, "emu", "supervisor.pid")).read())
    os.kill(pid, signal.SIGKILL)        # the supervisor we started dies without cleaning up
    deadline = time.monotonic() + 10
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        assert time.monotonic() < deadline
        time.sleep(0.02)
    out = emu(home, "list")
    assert "removed stale emulator state" in out.stderr and str(pid) in out.stderr
    assert out.stdout.strip() == "no boards running"
    assert not os.path.exists(os.path.join(home, "emu", "supervisor.sock"))
    # its VM died with it (no orphaned boards), and a new start works on the same home
    with pytest.raises(OSError):
        serial.serial_for_url(info["url"], timeout=0.1)
    again = json.loads(emu(home, "start", "--bare", "--id", info["id"], "--json").stdout)
    assert again["flash"] == info["flash"]
    emu(home, "stop", info["id"])


def test_every_command_has_help(capsys):
    from edgekit.cli import build_parser
    parser = build_parser()
    commands = ["start", "fleet", "list", "stop", "set", "world", "drive", "fault", "advance",
                "clock", "powercut", "brownout", "noise", "unplug", "replug"]
    for c in commands:
        with pytest.raises(SystemExit) as exit_info:
            parser.parse_args(["emu", c, "--help"])
        assert exit_info.value.code == 0
        assert "usage: edgekit emu " + c in capsys.readouterr().out
    # listing and reading commands speak JSON
    for c in ("start", "fleet", "list", "clock", "world"):
        parser.parse_args(["emu", c] + (["x"] if c in ("clock", "world") else [])
                          + (["--count", "1"] if c == "fleet" else []) + ["--json"])
