"""Key rotation that reaches devices (docs/keys.md): `edgekit keys deliver` and the delivery
`command` makes on the way, checked through the board's serial port.

Each test makes its own fleet: rotating the session's shared test fleet would change the keys
every later test provisions with.
"""
import json

import pytest

from edgekit import catalog as C
from edgekit.errors import ProtocolError
from edgekit.hil.devices import TEST_PASSPHRASE, HilFleet, provision
from edgekit.keys.deliver import stored_epoch
from edgekit.protocol import messages
from edgekit.protocol.session import Session
from edgekit.registry.db import Registry
from operator_cli import run

pytestmark = pytest.mark.hil(kind="water_meter")


@pytest.fixture
def fleet(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEKIT_KEY_PASSPHRASE", TEST_PASSPHRASE)
    return HilFleet(tmp_path / "fleet")


def deliver(capsys, fleet, board):
    """`edgekit keys deliver PORT --json` -> the port's result row."""
    code, out, err = run(capsys, "keys", "deliver", board.url, "--json",
                         "--keys", str(fleet.keystore.path),
                         "--registry", str(fleet.registry.path))
    assert code == 0, out + err
    report = json.loads(out)
    assert report["ok"] == 1 and report["epoch"] == fleet.keystore.epoch
    return report["devices"][0]


def signed_by(board, device, signer, fleet):
    """Send `diag` signed by `signer` on a fresh link; the result, or the refusal's code."""
    with board.transport() as t:
        s = Session(t, signer=signer, timeout=10, retries=1,
                    next_seq=lambda: fleet.keystore.next_seq_for(signer.kid.hex()))
        ring = messages.Keyring()
        ring.add(device.public_key, C.ROLE_DEVICE)
        s.device_keys = ring
        try:
            s.request(C.COMMAND, {C.K_NAME: "diag", C.K_ARGS: {}}, expect=C.COMMAND_RESULT)
        except ProtocolError as exc:
            return C.error_name(exc.code)
        return "accepted"


def device_epoch(board, device):
    """The key epoch in the device's CAPS, signed by its certified key."""
    with board.transport() as t:
        s = Session(t, timeout=5)
        ring = messages.Keyring()
        ring.add(device.public_key, C.ROLE_DEVICE)
        s.device_keys = ring
        caps = s.hello()
        assert caps.role == C.ROLE_DEVICE and caps.payload[C.K_DEVICE_ID] == device.id
        return caps.payload[C.K_EPOCH]


def test_rotate_deliver_then_revoke(board, fleet, capsys):
    device = provision(board, fleet, "water_meter")
    device.close()
    old = fleet.signer("operator")
    assert device_epoch(board, device) == 1
    fleet.keystore.rotate("operator", TEST_PASSPHRASE)
    new = fleet.signer("operator")
    # the device missed the rotation: the new operator key is unknown to it
    assert signed_by(board, device, new, fleet) == "unknown_key"

    row = deliver(capsys, fleet, board)
    assert (row["status"], row["before"], row["after"]) == ("delivered", 1, 2)
    assert device_epoch(board, device) == 2
    assert signed_by(board, device, new, fleet) == "accepted"
    assert signed_by(board, device, old, fleet) == "accepted"     # previous, during rollout
    assert deliver(capsys, fleet, board)["status"] == "current"  # idempotent

    fleet.keystore.revoke(old.kid.hex(), TEST_PASSPHRASE)
    assert signed_by(board, device, old, fleet) == "accepted"     # until it has epoch 3
    row = deliver(capsys, fleet, board)
    assert (row["before"], row["after"]) == (2, 3)
    assert signed_by(board, device, old, fleet) == "unknown_key"
    assert signed_by(board, device, new, fleet) == "accepted"
    assert Registry(fleet.registry.path).get(device.id)["key_epoch"] == 3


def test_compromised_rotation_refuses_the_revoked_key(board, fleet, capsys):
    device = provision(board, fleet, "water_meter")
    device.close()
    leaked = fleet.signer("operator")
    fleet.keystore.rotate("operator", TEST_PASSPHRASE, compromised=True)
    # a frame with a valid signature by the leaked key still works until the epoch arrives
    assert signed_by(board, device, leaked, fleet) == "accepted"
    row = deliver(capsys, fleet, board)
    assert (row["status"], row["after"]) == ("delivered", 2)
    assert signed_by(board, device, leaked, fleet) == "unknown_key"
    assert signed_by(board, device, fleet.signer("operator"), fleet) == "accepted"
    # the epoch lists the leaked kid as revoked, and the device holds two keys at most
    _, info = stored_epoch(fleet.keystore)
    assert leaked.kid in info["revoked"]


def send_epoch_raw(board, device, keystore, until=None):
    """The stored KEY_EPOCH on a fresh link, once: its ACK, or (given `until`, a condition
    on the emulator's board info) nothing, only waiting for that condition."""
    message, info = stored_epoch(keystore)
    with board.transport() as t:
        s = Session(t, timeout=5, retries=0)
        ring = messages.Keyring()
        ring.add(device.public_key, C.ROLE_DEVICE)
        s.device_keys = ring
        if until is None:
            return s.exchange(info["seq"], message, expect=C.ACK)
        s.send_body(message)
        board.faults.wait_for(until)


@pytest.mark.hil(bench="brown-outs inside a flash write need the emulator")
def test_power_cut_at_every_flash_write_of_key_epoch(board, fleet, capsys):
    """A brown-out at each flash operation KEY_EPOCH handling makes leaves the device on the
    old epoch or the new one (never without anchors: it still answers as itself, and the
    operator key of the epoch it reports works), and `keys deliver` then completes."""
    device = provision(board, fleet, "water_meter")
    device.close()
    faults = board.faults                   # skips on a bench: brown-outs need the emulator
    # How many flash operations one KEY_EPOCH costs, on the same records the cuts will hit.
    fleet.keystore.rotate("operator", TEST_PASSPHRASE, compromised=True)
    before = faults.info()["flash_ops"]
    assert send_epoch_raw(board, device, fleet.keystore).payload[C.K_EPOCH] == 2
    writes = faults.info()["flash_ops"] - before
    assert writes >= 2, "KEY_EPOCH stored nothing"     # replay counter, then the anchors
    outcomes = []
    for nth in range(1, writes + 1):
        old_epoch = fleet.keystore.epoch
        old_key = fleet.signer("operator")
        fleet.keystore.rotate("operator", TEST_PASSPHRASE, compromised=True)
        new_key = fleet.signer("operator")
        boots = board.boots()
        faults.brownout(nth)
        send_epoch_raw(board, device, fleet.keystore, until=lambda i: i["boots"] > boots)
        epoch = device_epoch(board, device)
        assert epoch in (old_epoch, old_epoch + 1), f"cut at write {nth}: epoch {epoch}"
        key = old_key if epoch == old_epoch else new_key
        assert signed_by(board, device, key, fleet) == "accepted", f"cut at write {nth}"
        row = deliver(capsys, fleet, board)
        assert row["after"] == old_epoch + 1, f"cut at write {nth}: {row}"
        assert signed_by(board, device, new_key, fleet) == "accepted"
        assert signed_by(board, device, old_key, fleet) == "unknown_key"
        outcomes.append((nth, epoch == old_epoch, row["status"], row["resigned"]))
    # Every cut hit the handling (the board rebooted each time, checked above); a cut after
    # the replay counter is stored but before the anchors are is the case where the stored
    # message is refused as replayed and `keys deliver` signs the epoch again.
    assert [nth for nth, _, _, _ in outcomes] == list(range(1, writes + 1))


def test_command_delivers_the_epoch_to_a_device_behind(board, tmp_path, monkeypatch, capsys):
    """Before: `edgekit command` after `keys rotate operator` failed with unknown_key."""
    monkeypatch.setenv("EDGEKIT_HOME", str(tmp_path))
    monkeypatch.setenv("EDGEKIT_KEY_PASSPHRASE", TEST_PASSPHRASE)
    assert run(capsys, "keys", "init")[0] == 0
    code, _, err = run(capsys, "provision", board.url, "--kind", "water_meter", "--site", "x")
    assert code == 0, err
    code, out, err = run(capsys, "keys", "rotate", "operator", "--compromised", "--json")
    assert code == 0 and json.loads(out)["epoch"] == 2, err
    code, out, _ = run(capsys, "devices", "list", "--json")
    (listed,) = json.loads(out)
    assert (listed["key_epoch"], listed["behind"]) == (1, True)
    code, out, _ = run(capsys, "devices", "list")
    assert "1<2" in out and "1 behind key epoch 2" in out

    code, out, err = run(capsys, "command", board.url, "diag", "--json")
    assert code == 0, err
    assert json.loads(out)["result"]["boots"] >= 1
    code, out, _ = run(capsys, "devices", "list", "--json")
    (listed,) = json.loads(out)
    assert (listed["key_epoch"], listed["behind"]) == (2, False)


def test_ota_push_delivers_the_epoch_first(board, tmp_path, monkeypatch, capsys):
    """`ota push` opens its session through the same hook (ota.connect.Link): its operator-
    signed OTA_RESULT_FETCH reaches a device that missed the rotation."""
    monkeypatch.setenv("EDGEKIT_HOME", str(tmp_path))
    monkeypatch.setenv("EDGEKIT_KEY_PASSPHRASE", TEST_PASSPHRASE)
    assert run(capsys, "keys", "init")[0] == 0
    code, _, err = run(capsys, "provision", board.url, "--kind", "water_meter", "--site", "x")
    assert code == 0, err
    assert run(capsys, "keys", "rotate", "operator", "--compromised")[0] == 0
    code, out, err = run(capsys, "ota", "push", board.url, "--result-only", "--json")
    assert code == 0, out + err
    assert json.loads(out.splitlines()[-1])["status"] == "none"
    code, out, _ = run(capsys, "keys", "deliver", board.url, "--json")
    assert json.loads(out)["devices"][0]["status"] == "current"
