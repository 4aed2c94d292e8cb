"""The one per-port runner behind flash, provision, keys deliver and ota campaign: results in
port order, a failing port isolated from the others (and reported to the progress display),
at most --parallel ports at once, the exit status; and --parallel 0 or below refused as a
usage error by every tray command before any port is opened."""
import threading
import time

import pytest

from edgekit.cli import main
from edgekit.errors import EdgekitError, LinkError
from edgekit.transport import port_runner
from edgekit.transport.port_runner import each, exit_status, run_per_port, tally

NO_DEVICE = "socket://127.0.0.1:9"      # nothing listens there: opening it would fail


def test_results_come_in_port_order_with_failures_isolated_and_reported():
    seen = []

    def work(port):
        time.sleep({"a": 0.05, "b": 0.0, "c": 0.02, "d": 0.0}[port])   # finish out of order
        if port == "b":
            raise LinkError("b: no answer in 5 s")
        if port == "d":
            raise OSError(5, "Input/output error")
        return {"device_id": "dev-" + port}

    results = run_per_port(["a", "b", "c", "d"], work, 4,
                           lambda port, step, detail="": seen.append((port, step, detail)))
    assert [r["port"] for r in results] == ["a", "b", "c", "d"]
    assert [r["ok"] for r in results] == [True, False, True, False]
    assert results[0]["device_id"] == "dev-a" and results[2]["device_id"] == "dev-c"
    assert results[1]["error"] == "b: no answer in 5 s"
    assert "Input/output error" in results[3]["error"]
    assert all(isinstance(r["seconds"], float) for r in results)
    assert results[0]["seconds"] >= 0.05
    assert sorted(p for p, step, _ in seen if step == "failed") == ["b", "d"]
    # both failures are the link's (an OSError is the port): 3, as in any one-port command
    assert tally(results) == {"ok": 2, "failed": 2} and exit_status(results) == 3
    assert exit_status(results[::2]) == 0 and exit_status([]) == 0
    mixed = results + run_per_port(["e"], lambda p: (_ for _ in ()).throw(
        EdgekitError("e: refused")), 1)
    assert exit_status(mixed[-1:]) == 2 and exit_status(mixed) == 1     # different ways


def test_a_bug_in_one_port_propagates_after_the_others_finished():
    finished = []

    def work(port):
        if port == "bad":
            raise KeyError("a bug, not a device failure")
        time.sleep(0.05)
        finished.append(port)
        return {}

    with pytest.raises(KeyError):
        run_per_port(["bad", "x", "y"], work, 3)
    assert sorted(finished) == ["x", "y"]


def test_never_more_than_parallel_ports_at_once():
    lock, now, peak = threading.Lock(), [0], [0]

    def work(item):
        with lock:
            now[0] += 1
            peak[0] = max(peak[0], now[0])
        time.sleep(0.02)
        with lock:
            now[0] -= 1
        return item * 2

    assert each(range(9), work, 3) == [i * 2 for i in range(9)]
    assert peak[0] == 3
    assert each([], work, 3) == []


@pytest.mark.parametrize("bad", [0, -2, True, 1.5, None])
def test_library_callers_get_the_same_rule(bad):
    with pytest.raises(EdgekitError, match="at least 1"):
        each(["a"], lambda p: p, bad)


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEKIT_HOME", str(tmp_path))
    monkeypatch.setenv("EDGEKIT_KEY_PASSPHRASE", "runner test passphrase")
    return tmp_path


@pytest.mark.parametrize("argv", [
    ["flash", NO_DEVICE, "--board", "esp32", "--kind", "water_meter"],
    ["provision", NO_DEVICE, "--kind", "water_meter", "--site", "s"],
    ["keys", "deliver", NO_DEVICE],
    ["ota", "campaign", "start", "no-such.ekota", "--port", NO_DEVICE],
    ["ota", "campaign", "resume", "no-such-campaign", "--port", NO_DEVICE],
])
@pytest.mark.parametrize("value", ["0", "-3"])
def test_parallel_below_one_is_a_usage_error_everywhere(home, capsys, monkeypatch, argv,
                                                        value):
    opened = []
    monkeypatch.setattr(port_runner, "each", lambda *a, **k: opened.append(a))
    with pytest.raises(SystemExit) as exit_info:
        main(argv + ["--parallel", value])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert f"--parallel {value}: give how many ports to work on at once, at least 1" in err
    assert "usage: edgekit" in err and "Traceback" not in err
    assert not opened


def test_a_wrong_port_exits_3_in_every_command(tmp_path, monkeypatch, capsys):
    """Before: 1 in flash/provision/keys deliver (the tray's "some port failed"), 3 in
    command/monitor/maintenance: the same mistake, two statuses."""
    monkeypatch.setenv("EDGEKIT_HOME", str(tmp_path))
    monkeypatch.setenv("EDGEKIT_KEY_PASSPHRASE", "correct horse battery")
    assert main(["keys", "init"]) == 0
    port = str(tmp_path / "no-such-port")
    for argv in (["flash", port, "--board", "esp32", "--kind", "water_meter"],
                 ["provision", port, "--kind", "water_meter", "--site", "s"],
                 ["keys", "deliver", port], ["command", port, "diag"],
                 ["monitor", port, "--duration", "1"], ["maintenance", port, "--minutes", "5"]):
        assert main(argv) == 3, argv
    capsys.readouterr()
