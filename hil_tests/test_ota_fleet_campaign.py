"""A staged OTA campaign over emulated boards through the CLI: a canary, then half the fleet,
then all; a device that fails its trial (its flow sensor stops answering) rolls back, the
campaign halts at that stage and reports it without touching the rest; after the fault is
fixed, `resume --retry-failed` finishes the rollout. State lives in the registry. Boards run
in real time: a trial's deadline is device time, and the host's pace is wall time."""
import json

import pytest

from edgekit.cli import main as edgekit_main
from edgekit.hil.devices import TEST_PASSPHRASE, provision
from edgekit.hil.targets import BoardSpec, EmulatedTarget
from edgekit.ota import bundle as bundle_mod
from edgekit.ota.sign import sign_with_keystore


@pytest.fixture
def fleet_of_four(edgekit_emulator, hil_fleet):
    targets = [EmulatedTarget(edgekit_emulator, BoardSpec("emu:esp32:water_meter"),
                              time_mode="real") for _ in range(4)]
    try:
        devices = []
        for t in targets:
            dev = provision(t, hil_fleet, "water_meter")
            devices.append((dev.id, t))
            dev.close()                  # the campaign opens its own links
        yield sorted(devices)
    finally:
        for t in targets:
            t.close()


def test_campaign_halts_on_failure_then_resumes(fleet_of_four, hil_fleet, tmp_path,
                                                monkeypatch, capsys):
    monkeypatch.setenv("EDGEKIT_KEY_PASSPHRASE", TEST_PASSPHRASE)
    b = sign_with_keystore(bundle_mod.build("esp32", "water_meter", "1.0.7", seq=7,
                                            app_only=True, deadline=10),
                           hil_fleet.keystore, TEST_PASSPHRASE)
    path = b.save(tmp_path / "wm.ekota")
    ids = [d for d, _ in fleet_of_four]
    failing_id, failing = fleet_of_four[1]          # in the second stage
    failing.world.fault("flow", "nack")
    common = ["--keys", str(hil_fleet.keystore.path), "--registry",
              str(hil_fleet.registry.path), "--json"]
    for _, t in fleet_of_four:
        common += ["--port", t.url]
    argv = ["ota", "campaign", "start", str(path), "--name", "wm-107", "--stages",
            "1,50%,100%", "--max-failures", "0%"] + common
    for d in ids:
        argv += ["--device", d]
    assert edgekit_main(argv) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["state"] == "halted" and report["stages"] == [1, 2, 4]
    status = {d["device_id"]: d for d in report["devices"]}
    assert status[ids[0]]["status"] == "installed"
    assert status[failing_id]["status"] == "rolled_back"
    assert "sample" in status[failing_id]["result"]["reason"]
    assert [status[d]["status"] for d in ids[2:]] == ["pending", "pending"]   # untouched
    assert failing_id in report["note"]
    events = hil_fleet.registry.events(failing_id, type="ota_rolled_back")
    assert events and events[-1]["detail"]["campaign"] == "wm-107"

    failing.world.fault("flow", "none")
    argv = ["ota", "campaign", "resume", "wm-107", "--retry-failed"] + common
    assert edgekit_main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["state"] == "done" and report["counts"] == {"installed": 4}
    assert all(hil_fleet.registry.get(d)["fw_version"] == "1.0.7" for d in ids)
    # each connection measured the device's clock (and synced it): the registry has it
    assert all(hil_fleet.registry.get(d)["clock_checked_at"] for d in ids)
    assert edgekit_main(["ota", "campaign", "status", "wm-107", "--registry",
                         str(hil_fleet.registry.path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["state"] == "done"
