"""OTA on a board whose firmware is frozen into its image (the plain ESP32 without PSRAM:
docs/flashing.md). The board-accurate VM (ROM frozen32) carries the firmware frozen and the
board's heap exactly. An app-only bundle's slot overrides the frozen app module by module
(the library stays frozen), a full bundle overrides it all where the heap holds the modules
it loads (RP2040; not the plain ESP32: it rolls back safely), and a trial that fails returns
to the frozen image. Skipped, with the reason, where the frozen VM cannot be built."""
import pytest

from edgekit.flash.image import firmware_version
from edgekit.hil.devices import TEST_PASSPHRASE, provision
from edgekit.hil.targets import BoardSpec, EmulatedTarget
from edgekit.ota import bundle as bundle_mod
from edgekit.ota.push import Pusher
from edgekit.ota.sign import sign_with_keystore
from edgekit.ota.testing import verify_active
from edgekit.testing import frozenvm

# Real time: a trial's deadline runs on the device clock (see test_ota.py).
pytestmark = [pytest.mark.hil(kind="water_meter", time="real", options={"rom": "frozen32"}),
              pytest.mark.usefixtures("frozen_vm")]


@pytest.fixture(scope="module")
def frozen_vm():
    frozenvm.require()


def signed(hil_fleet, version, seq, app_only):
    b = bundle_mod.build("esp32", "water_meter", version, seq=seq, app_only=app_only,
                         deadline=15)
    return sign_with_keystore(b, hil_fleet.keystore, TEST_PASSPHRASE)


def test_a_failed_trial_returns_to_the_frozen_image_then_app_and_full_bundles_install(
        board, provisioned, hil_fleet):
    dev = provisioned()
    frozen = firmware_version()
    assert board.faults.info()["rom"] == "frozen32"
    # 1. The sampling task fails on the trial image (no pulses answer): it never confirms,
    # and the board goes back to what it ran before: the frozen image, no slot active.
    board.world.fault("flow", "nack")
    result = Pusher(dev.session, signed(hil_fleet, "1.0.2", 2, True), dev.public_key).run()
    assert result["status"] == "rolled_back" and result["running"] == frozen
    assert verify_active(board.faults.flash)[0] is None
    board.world.fault("flow", "none")
    # 2. App only: the slot holds the app and build_info; the library it runs on is the
    # frozen one (the slot overrides the frozen image module by module).
    app = signed(hil_fleet, "1.0.3", 3, True)
    assert sorted(f["name"] for f in app.files) == \
        ["build_info.mpy", "water_meter.mpy", "water_meter_schema.mpy"]
    result = Pusher(dev.session, app, dev.public_key).run()
    assert result["status"] == "installed" and result["running"] == "1.0.3"
    assert verify_active(board.faults.flash)[:2] == ("a", "1.0.3")
    assert dev.command("diag")["task_errors"] == 0
    # 3. A full bundle loads every firmware module from the slot into the heap: 98-112 KB
    # of imports on a 32-bit board (docs/flashing.md), more than the plain ESP32's 110 KB
    # holds with the app's data. Its trial cannot confirm, and the board keeps running the
    # image it had: on this board only app-only bundles (or a new image by cable) update.
    full = signed(hil_fleet, "1.1.0", 10, False)
    result = Pusher(dev.session, full, dev.public_key).run()
    assert result["status"] == "rolled_back" and result["running"] == "1.0.3"
    assert "did not confirm" in result["reason"]
    assert dev.command("diag")["task_errors"] == 0


def test_a_full_bundle_installs_over_the_frozen_image_where_the_heap_holds_it(
        hil_fleet, edgekit_emulator):
    # The RP2040's 190 KB hold the whole firmware loaded from the slot (137 KB measured).
    target = EmulatedTarget(edgekit_emulator, BoardSpec("emu:rp2040:water_meter"),
                            time_mode="real", rom="frozen32")
    try:
        dev = provision(target, hil_fleet, "water_meter")
        b = sign_with_keystore(bundle_mod.build("rp2040", "water_meter", "1.1.0", seq=10,
                                                deadline=15),
                               hil_fleet.keystore, TEST_PASSPHRASE)
        result = Pusher(dev.session, b, dev.public_key).run()
        assert result["status"] == "installed" and result["running"] == "1.1.0"
        assert verify_active(target.handle.flash)[:2] == ("a", "1.1.0")
        assert dev.command("diag")["task_errors"] == 0
        dev.close()
    finally:
        target.close()
