"""`edgekit command` keeps the device clock right (SPEC 8.4), through the port as an operator
runs it: a board whose RTC a power cut lost, or whose clock is off, is synced with a signed
TIME_SYNC, and the registry records the drift it measured."""
import json
import time

import pytest

from edgekit.registry.db import Registry
from operator_cli import fleet_home, run  # noqa: F401 - fleet_home is a fixture

pytestmark = pytest.mark.hil(kind="water_meter")


def device_clock(board):
    return board.handle.clock()["rtc"]


def registry_row(home, device_id):
    with Registry(home / "registry.sqlite") as reg:
        row = reg.get(device_id)
        events = [e for e in reg.events(device_id) if e["type"] == "clock_synced"]
    return row, events


@pytest.mark.hil(bench="reads and sets the board's RTC through the emulator")
def test_command_syncs_an_unsynced_or_drifted_clock(board, clock, fleet_home, capsys):
    code, out, err = run(capsys, "provision", board.url, "--kind", "water_meter", "--site",
                         "x", "--json")
    assert code == 0, err
    device_id = json.loads(out)["devices"][0]["device_id"]
    assert json.loads(out)["devices"][0]["clock"] == {"drift_s": None, "synced": True}
    assert abs(device_clock(board) - time.time()) < 3          # provisioning set it
    # a power cut loses the RTC: the next command finds no time and sets it
    board.powercut()
    clock.advance(2)
    assert device_clock(board) is None
    code, out, err = run(capsys, "command", board.url, "diag", "--json")
    assert code == 0, err
    assert abs(device_clock(board) - time.time()) < 3
    row, events = registry_row(fleet_home, device_id)
    assert row["clock_drift_s"] is None and row["clock_checked_at"]
    assert len(events) == 2                                     # provision, then this one
    # a clock 100 s fast (as the emulator's RTC is set here): measured, recorded, corrected
    board.handle.set_rtc(time.time() + 100)
    code, _, err = run(capsys, "command", board.url, "diag")
    assert code == 0, err
    row, events = registry_row(fleet_home, device_id)
    assert row["clock_drift_s"] == pytest.approx(100, abs=2)
    assert len(events) == 3 and events[-1]["detail"]["drift_s"] == row["clock_drift_s"]
    assert abs(device_clock(board) - time.time()) < 3
    # within the allowed drift: measured and recorded, nothing sent
    code, _, err = run(capsys, "command", board.url, "diag")
    assert code == 0, err
    row, events = registry_row(fleet_home, device_id)
    assert abs(row["clock_drift_s"]) < 3 and len(events) == 3


def test_a_bad_drift_setting_is_refused(board, fleet_home, capsys, monkeypatch):
    assert run(capsys, "provision", board.url, "--kind", "water_meter", "--site", "x")[0] == 0
    monkeypatch.setenv("EDGEKIT_MAX_DRIFT_S", "soon")
    code, _, err = run(capsys, "command", board.url, "diag")
    assert code == 2 and "EDGEKIT_MAX_DRIFT_S='soon'" in err and "or off" in err
