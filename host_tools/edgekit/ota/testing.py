"""Test support: a pipe device that boots like a board (boot.py, then the runtime), so OTA
slots, trial boots and rollbacks run exactly as on hardware; and flash-side checks."""
import hashlib
import json
from pathlib import Path

from edgekit.paths import BOARDS_DIR, FIRMWARE_DIR, FIRMWARE_LIB, PROTOCOL_DIR
from edgekit.testing.mpycache import compile_tree, default_cache
from edgekit.testing.pipe import PIPE_HAL, PipeDevice


class BootingPipeDevice(PipeDevice):
    """PipeDevice whose VM runs firmware/boot.py before the runtime, as a board does."""

    def _script(self):
        cache = compile_tree([BOARDS_DIR / "hal_common.py", PROTOCOL_DIR / "catalog.py",
                              FIRMWARE_LIB, FIRMWARE_DIR / "apps", PIPE_HAL],
                             default_cache() / "pipe")
        boot = FIRMWARE_DIR / "boot.py"
        return (f"import sys\nsys.path.append({str(cache)!r})\n"
                f"import hal\nexecfile({str(boot)!r})\n"
                "import runtime\nruntime.main(hal)\n")


def load_store_record(flash_dir, name):
    """Decode an OTA store record (JSON payload after the 12-byte store header), or None."""
    path = Path(flash_dir) / "slots" / "state" / name
    for p in (path, path.with_name(name + ".bak")):
        try:
            data = p.read_bytes()
        except FileNotFoundError:
            continue
        if len(data) >= 12 and data[:4] == b"EKS\x01":
            try:
                return json.loads(data[12:])
            except ValueError:
                continue
    return None


def active_image(flash_dir):
    """(slot, {name: sha256 hex}) of what the boot record says runs, per the flash."""
    boot = load_store_record(flash_dir, "boot") or {}
    slot = boot.get("slot")
    if slot is None:
        return None, {}
    d = Path(flash_dir) / "slots" / slot
    return slot, {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
                  for p in d.iterdir() if p.is_file() and p.name != ".list"}
