"""OTA on emulated boards: the water-meter bundle over the paced 115200 link, what mpremote
then sees on the board, power cuts at random instants and brown-outs at flash operations,
a noisy link, an unplugged cable, and a board whose flash is too small."""
import hashlib
import os
import subprocess
import time

import pytest

from edgekit import catalog as C
from edgekit.errors import LinkError, ProtocolError
from edgekit.hil.devices import TEST_PASSPHRASE
from edgekit.ota import bundle as bundle_mod
from edgekit.ota import manifest as man
from edgekit.ota.bundle import Bundle
from edgekit.ota.powercuts import PHASES, Campaign, restamp
from edgekit.ota.push import Pusher
from edgekit.ota.sign import sign_with_keystore
from edgekit.ota.testing import load_store_record, verify_active

# Real time: a trial's deadline runs on the device clock, and the host talks at wall-clock
# pace (in virtual time an idle board would skip through its deadline between two frames).
pytestmark = pytest.mark.hil(kind="water_meter", time="real")

# EDGEKIT_OTA_CUTS=N runs N instead (a longer local run without the whole nightly).
CUTS = int(os.environ.get("EDGEKIT_OTA_CUTS") or
           (150 if os.environ.get("EDGEKIT_NIGHTLY") else 3))

@pytest.fixture(scope="module")
def full(hil_fleet):
    b = bundle_mod.build("esp32", "water_meter", "1.1.0", seq=10, deadline=30)
    return sign_with_keystore(b, hil_fleet.keystore, TEST_PASSPHRASE)


@pytest.fixture(scope="module")
def small(hil_fleet):
    """Only the app and build_info: a quick update whose slot overlays the board image."""
    b = bundle_mod.build("esp32", "water_meter", "1.0.1", seq=2, app_only=True, deadline=30)
    return sign_with_keystore(b, hil_fleet.keystore, TEST_PASSPHRASE)


def flash_of(board):
    return board.faults.flash


def reopen(dev):
    dev.reconnect()
    return dev.session


@pytest.mark.hil(bench="reads the emulated flash to see the install's phases")
def test_power_cuts_at_random_instants(board, provisioned, small, hil_fleet):
    dev = provisioned()
    handle = board.faults
    before = {}

    def cut_after(seconds):
        before["n"] = handle.info()["resets"].get("power_on", 0)
        board.powercut(at=max(0.001, seconds))

    def wait_cut():
        handle.wait_for(lambda i: i["resets"].get("power_on", 0) > before["n"], timeout=60)
        time.sleep(0.3)

    firmware = hil_fleet.signer("firmware")
    camp = Campaign(lambda: reopen(dev), cut_after, wait_cut, flash_of(board), dev.public_key,
                    seed=int(os.environ.get("EDGEKIT_SEED", "11")))
    camp.calibrate(restamp(small, 3, "1.0.3", firmware))
    for i in range(CUTS):
        camp.cycle(restamp(small, 4 + i, "1.0.%d" % (4 + i), firmware), PHASES[i % 3])
    assert camp.problems == []
    assert {phase for phase, _ in camp.outcomes} == set(PHASES[:min(CUTS, 3)])


@pytest.mark.parametrize("after_writes", [2, 12])
@pytest.mark.hil(bench="brown-outs inside a flash write need the emulator")
def test_brownout_at_a_flash_operation_of_the_install(board, provisioned, small,
                                                       after_writes):
    dev = provisioned()
    p = Pusher(dev.session, small, dev.public_key)
    p.offer()
    p.transfer()
    board.faults.brownout(after_writes)
    try:
        p.install(timeout=3)
    except Exception:   # noqa: BLE001 - the power went mid-install: no answer, or a refusal
        pass
    time.sleep(1.0)
    s = reopen(dev)
    for _ in range(50):
        try:
            s.hello(timeout=2)
            break
        except Exception:                          # noqa: BLE001 - still booting
            time.sleep(0.2)
    slot, version, problem = verify_active(flash_of(board))
    assert problem is None
    result = Pusher(s, small, dev.public_key).fetch_result()
    boot = load_store_record(flash_of(board), "boot") or {}
    if slot is None:      # the cut came before the switch: old image, update not installed
        assert result["status"] in ("none", "rolled_back") and not boot.get("trial")
    else:                 # after it: the new image on trial (or already confirmed)
        assert version == "1.0.1" and result["status"] in ("pending", "installed")
    for _ in range(3):    # a cut that hit the trial's own writes rolls it back: push again
        if result["status"] == "installed":
            break
        if result["status"] == "pending":
            result = Pusher(s, small, dev.public_key).wait_result()
        else:
            result = Pusher(s, small, dev.public_key).run()   # resumes the staged transfer
    assert result["status"] == "installed"
    assert verify_active(flash_of(board))[:2] == ("a", "1.0.1")


@pytest.mark.hil(bench="link noise needs the emulator")
def test_noisy_link_costs_resends_not_correctness(board, provisioned, full):
    dev = provisioned()
    # One byte in 5000 flipped or dropped: about one 1 KB frame in five is lost.
    dev.session.timeout = 3.0       # a lost request is retried sooner
    board.faults.noise(0.0002, kinds=("flip", "drop"), direction="both", seed=5)
    p = Pusher(dev.session, full, dev.public_key)
    result = None
    for _ in range(5):
        try:
            result = p.run()
            break
        except (ProtocolError, LinkError):
            p = Pusher(reopen(dev), full, dev.public_key)
    board.faults.noise(0)
    assert result is not None and result["status"] == "installed"
    assert p.stats["resent_bytes"] > 0          # the noise did cost something
    assert verify_active(flash_of(board)) == ("a", "1.1.0", None)


@pytest.mark.hil(bench="unplugging the cable needs the emulator (a bench has no cable robot)")
def test_unplugged_at_half_resumes_without_resending(board, provisioned, full):
    dev = provisioned()
    p = Pusher(dev.session, full, dev.public_key)
    p.offer()
    p.transfer(stop_after=len(full.stream()) // 2)
    board.faults.unplug(1.0)
    time.sleep(1.5)
    q = Pusher(reopen(dev), full, dev.public_key)
    status = q.offer()
    held = sum(e - s for s, e in status[C.K_RANGES])
    assert held >= len(full.stream()) // 2
    q.transfer()
    # first transmissions cover exactly what was missing (timeouts may add resends)
    assert q.stats["sent_bytes"] - q.stats["resent_bytes"] == len(full.stream()) - held
    q.install()
    assert q.wait_result()["status"] == "installed"


def test_a_bundle_larger_than_the_free_flash_is_refused(hil_fleet, edgekit_emulator):
    from edgekit.hil.devices import provision
    from edgekit.hil.targets import BoardSpec, EmulatedTarget
    target = EmulatedTarget(edgekit_emulator, BoardSpec("emu:rp2040:water_meter"),
                            time_mode="real")
    try:
        dev = provision(target, hil_fleet, "water_meter")
        big = [{"name": "big%d.mpy" % i, "size": 300_000,
                "digest": hashlib.sha256(b"%d" % i).digest()} for i in range(3)]
        payload = man.encode(man.build(5, "2.0.0", "rp2040", "water_meter", "1.29.0", big, 0))
        b = Bundle(payload, [b"x"] * 3, man.sign(payload, hil_fleet.signer("firmware"), 1))
        with pytest.raises(ProtocolError) as info:
            Pusher(dev.session, b, dev.public_key).offer()
        assert info.value.code == C.E_NO_SPACE and "free" in str(info.value)
        assert not (load_store_record(target.handle.flash, "tx"))
        dev.close()
    finally:
        target.close()



@pytest.mark.hil(bench="fault injection (noise, brown-out, unplug) needs the emulator")
def test_cli_push_over_the_link_then_the_new_image_runs_and_mpremote_sees_it(
        board, provisioned, full, hil_fleet, tmp_path, monkeypatch, capsys):
    import json

    from edgekit.cli import main as edgekit_main
    monkeypatch.setenv("EDGEKIT_KEY_PASSPHRASE", TEST_PASSPHRASE)
    dev = provisioned()
    dev.close()                          # the CLI opens its own link
    path = full.save(tmp_path / "wm.ekota")
    common = ["--keys", str(hil_fleet.keystore.path), "--registry",
              str(hil_fleet.registry.path), "--json"]
    assert edgekit_main(["ota", "push", board.url, str(path)] + common) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "offered" and "done" in kinds and kinds[-1] == "summary"
    assert any(e["event"] == "progress" and e["eta_s"] is not None for e in events)
    summary = events[-1]
    assert summary["status"] == "installed" and summary["device_id"] == dev.id
    assert summary["stats"]["sent_bytes"] - summary["stats"]["resent_bytes"] == \
        len(full.stream())
    assert hil_fleet.registry.get(dev.id)["fw_version"] == "1.1.0"
    assert verify_active(flash_of(board)) == ("a", "1.1.0", None)
    assert summary["running"] == "1.1.0"            # the slot's code runs, not the ROM's
    assert edgekit_main(["ota", "push", board.url, "--result-only"] + common) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "installed"
    # the same bundle again: the device refuses it as a replay, and the exit code says so
    assert edgekit_main(["ota", "push", board.url, str(path)] + common) == 2
    assert "rollback" in capsys.readouterr().err
    # what a technician sees with mpremote, once maintenance is open (SPEC 12): the new
    # files, with the manifest's digests
    assert edgekit_main(["maintenance", board.url, "--minutes", "5"] + common) == 0
    names = [f for f in full.files if f["name"] in ("build_info.mpy", "water_meter.mpy",
                                                     "ota.mpy")]
    cmd = ["mpremote", "connect", board.url, "fs", "ls", ":/slots/a"]
    for f in names:
        cmd += ["+", "fs", "sha256sum", ":/slots/a/" + f["name"]]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    for f in full.files:
        assert f["name"] in out.stdout
    for f in names:
        assert f["digest"].hex() in out.stdout, f["name"]
