"""Provisioning: every kind, esp32 and rp2040, interrupted at every step, brown-outs at every
flash operation of the commit, 8 in parallel through the CLI. On the emulator each test
starts boards of its own; on a bench (serial boards) the single-board tests take the tray's
board of the kind, factory-fresh, and the rest skip with the reason."""
import json
import time

import pytest

from edgekit import catalog as C
from edgekit.cli import main as edgekit_main
from edgekit.errors import EdgekitError
from edgekit.firmware_tree import KINDS
from edgekit.hil.devices import TEST_PASSPHRASE, HilFleet, provision
from edgekit.hil.targets import BoardSpec, EmulatedTarget
from edgekit.protocol import messages
from edgekit.protocol.session import Session
from edgekit.provision import flow


@pytest.fixture
def target_for(request, pytestconfig):
    """target_for(kind, board_name="esp32", world=True): an emulated board of its own (with
    the kind's world, or a generic one), or on a bench the tray's factory-fresh board whose
    rig stages `kind`."""
    def make(kind, board_name="esp32", world=True):
        if pytestconfig._edgekit_specs[0].emulated:
            emulator = request.getfixturevalue("edgekit_emulator")
            spec = f"emu:{board_name}:{kind}" if world else f"emu:{board_name}"
            target = EmulatedTarget(emulator, BoardSpec(spec))
            request.addfinalizer(target.close)
            return target
        request.applymarker(pytest.mark.hil(kind=kind))
        target = request.getfixturevalue("board")
        if target.board != board_name:
            pytest.skip(f"needs a {board_name} board; the tray's {kind} board is a "
                        f"{target.board}")
        return target
    return make


def hello(target, seconds=20.0):
    """The board's first HELLO; after a power cut a board (real time) may still be booting."""
    end = time.monotonic() + seconds
    while True:
        t = None
        try:
            t = target.transport()
            s = Session(t, timeout=3)
            return t, s, s.hello()
        except EdgekitError:
            if t is not None:
                t.close()
            if time.monotonic() > end:
                raise
            time.sleep(0.3)


def device_state(target, fleet):
    """'factory', or the device id of a device that is fully provisioned by `fleet`."""
    t, s, caps = hello(target)
    with t:
        if caps.payload[C.K_STATE] == "factory":
            assert caps.role is None
            return "factory"
        fields = flow.check_certificate(caps.payload[C.K_CERT], fleet.fleet.fleet_public)
        ring = messages.Keyring()
        ring.add(fields[C.K_PUB], C.ROLE_DEVICE)
        s.device_keys = ring
        signed = s.hello()
        assert signed.role == C.ROLE_DEVICE          # it holds the certified key
        return signed.payload[C.K_DEVICE_ID]


@pytest.mark.parametrize("board_name", ["esp32", "rp2040"])
@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_on_each_board(target_for, hil_fleet, board_name, kind):
    from pycose.keys import OKPKey
    from pycose.keys.curves import Ed25519
    from pycose.messages import CoseMessage

    # a generic board: provisioning needs no world model (the app may run without sensors)
    target = target_for(kind, board_name, world=False)
    try:
        dev = provision(target, hil_fleet, kind)
        assert dev.id.startswith(flow.appschema.ID_PREFIX[kind] + "-")
        row = hil_fleet.registry.get(dev.id)
        assert row["status"] == "provisioned" and row["board"] == board_name
        # the certificate verifies with an independent COSE implementation
        cert = CoseMessage.decode(bytes(row["certificate"]))
        cert.key = OKPKey(crv=Ed25519, x=hil_fleet.fleet.fleet_public)
        assert cert.verify_signature()
        assert device_state(target, hil_fleet) == dev.id
        dev.close()
    finally:
        target.close()


STEPS = ("hello", "begin", "certificate", "commit", "reboot", "verify")


@pytest.mark.parametrize("cut_at", STEPS)
def test_power_cut_at_each_step_then_rerun(target_for, hil_fleet, cut_at):
    target = target_for("water_meter")
    try:
        def progress(step, detail=""):
            if step == cut_at:
                target.powercut()
                time.sleep(0.2)

        with target.transport() as t:
            try:
                flow.provision(Session(t, timeout=2, retries=1), hil_fleet.fleet,
                               hil_fleet.registry, "water_meter", "cut-" + cut_at,
                               progress=progress)
            except EdgekitError:
                pass                    # interrupted: that is the point
        state = device_state(target, hil_fleet)
        assert state == "factory" or state.startswith("wm-")   # never half
        dev = provision(target, hil_fleet, "water_meter")     # rerun finishes or restarts
        assert device_state(target, hil_fleet) == dev.id
        assert hil_fleet.registry.get(dev.id)["status"] == "provisioned"
        dev.close()
    finally:
        target.close()


def test_brownout_at_every_flash_operation_of_the_commit(edgekit_emulator, hil_fleet):
    """The commit writes identity, certificate, anchors and config with several flash
    operations; a brown-out at each one in turn leaves factory or provisioned, never half."""
    outcomes = []
    for nth in range(1, 30):
        target = EmulatedTarget(edgekit_emulator, BoardSpec("emu:esp32"))
        try:
            def progress(step, detail=""):
                if step == "commit":
                    target.handle.brownout(nth)

            with target.transport() as t:
                try:
                    flow.provision(Session(t, timeout=1.0, retries=0), hil_fleet.fleet,
                                   hil_fleet.registry, "env_sensor", "brownout",
                                   progress=progress)
                    finished = True
                except EdgekitError:
                    finished = False
            state = device_state(target, hil_fleet)
            outcomes.append(state == "factory")
            assert state == "factory" or state.startswith("env-")
            if finished:
                break               # the commit needs fewer than nth operations: all covered
        finally:
            target.close()
    assert outcomes.count(True) >= 5, "the brown-out never hit the commit"
    assert outcomes[-1] is False    # the last run completed provisioning


def test_eight_devices_in_parallel_through_the_cli(edgekit_emulator, hil_fleet, tmp_path,
                                                   monkeypatch, capsys):
    targets = [EmulatedTarget(edgekit_emulator, BoardSpec("emu:esp32:water_meter"))
               for _ in range(8)]
    try:
        monkeypatch.setenv("EDGEKIT_KEY_PASSPHRASE", TEST_PASSPHRASE)
        registry = tmp_path / "reg.sqlite"
        code = edgekit_main(["provision", "--ports", *[t.url for t in targets], "--kind",
                             "water_meter", "--site", "tray-1", "--keys",
                             str(hil_fleet.keystore.path), "--registry", str(registry),
                             "--json"])
        report = json.loads(capsys.readouterr().out)
        assert code == 0 and report["ok"] == 8 and report["failed"] == 0
        ids = {d["device_id"] for d in report["devices"]}
        assert len(ids) == 8
        from edgekit.registry.db import Registry
        assert {r["device_id"] for r in Registry(registry).list()} == ids
    finally:
        for t in targets:
            t.close()


def test_device_of_another_fleet_is_refused(target_for, hil_fleet, tmp_path):
    target = target_for("water_meter")
    try:
        provision(target, hil_fleet, "water_meter").close()
        other = HilFleet(tmp_path / "other")
        with target.transport() as t:
            with pytest.raises(EdgekitError, match="not signed by this fleet"):
                flow.provision(Session(t, timeout=3), other.fleet, other.registry,
                               "water_meter", "elsewhere")
        assert device_state(target, hil_fleet).startswith("wm-")     # unchanged
    finally:
        target.close()


def test_reprovision_needs_the_operator_key(target_for, hil_fleet):
    target = target_for("water_meter")
    try:
        first = provision(target, hil_fleet, "water_meter")
        first.close()
        with target.transport() as t:
            with pytest.raises(EdgekitError, match="--reprovision"):
                flow.provision(Session(t, timeout=3), hil_fleet.fleet, hil_fleet.registry,
                               "env_sensor", "x")
        with target.transport() as t:
            row = flow.provision(Session(t, timeout=3), hil_fleet.fleet, hil_fleet.registry,
                                 "env_sensor", "x", reprovision=True)
        assert row["kind"] == "env_sensor" and row["device_id"] != first.id
        assert device_state(target, hil_fleet) == row["device_id"]
    finally:
        target.close()


def test_cli_rejects_bad_input_before_touching_a_device(hil_fleet, tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("leak_window_h = 1000\n")
    code = edgekit_main(["provision", "socket://127.0.0.1:9", "--kind", "water_meter",
                         "--site", "x", "--config", str(bad)])
    err = capsys.readouterr().err
    assert code == 2 and "leak_window_h" in err and "outside" in err
    code = edgekit_main(["provision", "--kind", "water_meter", "--site", "x"])
    assert code == 2 and "port" in capsys.readouterr().err
