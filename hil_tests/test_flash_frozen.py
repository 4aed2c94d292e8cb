"""`edgekit flash` on a board whose image freezes the firmware (the frozen32 ROM: the
board-accurate VM, bare flash): it installs only what the image does not freeze, says which
firmware it found, the board then boots its frozen app; a bundle whose code differs from
the frozen firmware is refused before anything is written."""
import shutil
from pathlib import Path

import pytest

from edgekit import firmware_tree
from edgekit.flash import flow, image as image_mod
from edgekit.flash.device import TargetError
from edgekit.ota import bundle as bundle_mod
from edgekit.testing import frozenvm

pytestmark = [pytest.mark.hil(time="virtual", options={"bare": True, "rom": "frozen32"}),
              pytest.mark.usefixtures("frozen_vm")]


@pytest.fixture(scope="module")
def frozen_vm():
    frozenvm.require()


def test_flash_installs_only_what_is_not_frozen_and_the_board_boots_its_app(board):
    img = image_mod.build("esp32", "water_meter")
    report = flow.flash(board.url, img)
    fz = report["frozen"]
    assert fz["found"] and "water_meter" in fz["kinds"] and fz["frozen_modules"] > 40
    # board.json, boot.py, main.py and the esp32 HAL's files (the emulator's image freezes
    # its own HAL, not the esp32's): no firmware module goes to /lib.
    hal_files = {f"/lib/{m}.mpy" for m in ("hal", *image_mod.HAL_SUPPORT)}
    assert set(fz["installed"]) == {"/board.json", "/boot.py", "/main.py"} | hal_files
    assert report["sent"] == len(fz["installed"]) < len(img.files) // 4
    # frozen: the imports are small, and counted inside the 70% the headroom test proves
    assert report["heap"]["fits"] and report["heap"]["frozen"]
    assert report["heap"]["resident"] < 30 * 1024
    assert report["firmware"]["state"] == "factory"     # HELLO from the frozen firmware
    assert "water_meter" in report["firmware"]["kinds"]


def test_a_bundle_whose_code_differs_from_the_frozen_firmware_is_refused(board, tmp_path):
    changed = tmp_path / "senml.py"
    shutil.copyfile(firmware_tree.module_path("senml"), changed)
    changed.write_text(changed.read_text() + "\n_CHANGED = 1\n")
    sources = [s for s in bundle_mod.default_sources("water_meter") if s.name != "senml.py"]
    img = image_mod.build("esp32", "water_meter", sources=sources + [changed])
    with pytest.raises(TargetError, match="differs from this bundle .* in senml.mpy"):
        flow.flash(board.url, img, hello=False)
    assert not (Path(board.faults.flash) / "main.py").exists()    # nothing was installed
