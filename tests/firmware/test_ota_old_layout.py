"""A device built from the flat firmware tree (firmware/lib + firmware/apps, with `otaman` and
`otarx`) takes a full OTA bundle of the tree by kind and runs it: the board image is the
last commit of the old layout, taken from git history; the update is today's build."""
import subprocess
import tarfile
from pathlib import Path

import pytest

from edgekit.ota import bundle as bundle_mod
from edgekit.ota.push import Pusher
from edgekit.ota.sign import sign_with_keystore
from edgekit.ota.testing import BootingPipeDevice, active_image
from edgekit.paths import BOARDS_DIR, ROOT
from edgekit.protocol.session import Session
from edgekit.provision import flow
from edgekit.registry.db import Registry
from edgekit.testing.fleet import TEST_PASSPHRASE, keystore_fixture
from edgekit.testing.mpycache import compile_tree
from edgekit.testing.pipe import PIPE_HAL

KIND = "env_sensor"       # its sampling copes with the sensors a pipe lacks: trials pass
keys = keystore_fixture()


def old_tree(dest):
    """The firmware and catalog as they were just before firmware/lib was split, or a skip."""
    try:
        gone = subprocess.run(["git", "-C", str(ROOT), "log", "-1", "--format=%H",
                               "--diff-filter=D", "--", "firmware/lib/runtime.py"],
                              capture_output=True, text=True, timeout=30).stdout.strip()
    except OSError:
        gone = ""
    if not gone:
        pytest.skip("needs the git history of the checkout (the old layout's last commit)")
    archive = dest / "old.tar"
    got = subprocess.run(["git", "-C", str(ROOT), "archive", "-o", str(archive), gone + "^",
                          "firmware", "protocol/catalog.py"], capture_output=True, timeout=60)
    if got.returncode:      # a shallow clone has the deleting commit but not its parent
        pytest.skip(f"the old layout's last commit ({gone[:10]}^) is not in this clone: "
                    f"{got.stderr.decode(errors='replace').strip()[:200]}")
    with tarfile.open(archive) as tar:
        # filter="data" where this Python has it (3.12+ warns without one)
        kw = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        tar.extractall(dest / "old", **kw)
    return dest / "old"


class OldLayoutDevice(BootingPipeDevice):
    """A board whose image holds the old flat tree (boot.py included)."""

    def __init__(self, flash_dir, old, **kw):
        super().__init__(flash_dir, **kw)
        self.image = compile_tree([BOARDS_DIR / "hal_common.py",
                                   old / "protocol" / "catalog.py", old / "firmware" / "lib",
                                   old / "firmware" / "apps", PIPE_HAL],
                                  flash_dir.parent / "board-image")
        self.boot = old / "firmware" / "boot.py"

    def _script(self):
        return (f"import sys\nsys.path.append({str(self.image)!r})\n"
                f"import hal\nexecfile({str(self.boot)!r})\n"
                "import runtime\nruntime.main(hal)\n")


def test_a_device_of_the_flat_layout_installs_and_runs_a_bundle_of_the_tree(tmp_path, keys):
    old = old_tree(tmp_path)
    assert (old / "firmware" / "lib" / "otaman.py").exists()
    dev = OldLayoutDevice(tmp_path / "flash", old, heap="512K").open()
    try:
        fleet = flow.Fleet(keys, keys.signer("fleet", TEST_PASSPHRASE),
                           keys.signer("operator", TEST_PASSPHRASE))
        session = Session(dev, timeout=5)
        row = flow.provision(session, fleet, Registry(tmp_path / "reg.sqlite"), KIND, "north")
        session.signer = fleet.operator_signer
        session.next_seq = lambda: keys.next_seq("operator")
        b = sign_with_keystore(bundle_mod.build("esp32", KIND, "2.0.0", seq=10, deadline=10),
                               keys, TEST_PASSPHRASE)
        result = Pusher(session, b, bytes(row["public_key"])).run()
        # installed, booted on trial, passed its health checks and confirmed
        assert result["status"] == "installed" and result["running"] == "2.0.0", result
        slot, files = active_image(tmp_path / "flash")
        assert {"ota_manifest.mpy", "ota_transfer.mpy"} <= set(files)
        assert "otaman.mpy" not in files and "ledger.mpy" not in files
    finally:
        dev.close()
