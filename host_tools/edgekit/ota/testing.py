"""Test support: a pipe device that boots like a board (boot.py, then the runtime), so OTA
slots, trial boots and rollbacks run exactly as on hardware; and flash-side checks."""
import hashlib
import json
import struct
import time
import zlib
from pathlib import Path

from edgekit import firmware_tree
from edgekit.paths import BOARDS_DIR, FIRMWARE_DIR, PROTOCOL_DIR
from edgekit.testing.mpycache import compile_tree, default_cache
from edgekit.testing.pipe import PIPE_HAL, PipeDevice


class BootingPipeDevice(PipeDevice):
    """PipeDevice whose VM runs firmware/boot.py before the runtime, as a board does."""

    def _script(self):
        cache = compile_tree([BOARDS_DIR / "hal_common.py", PROTOCOL_DIR / "catalog.py"]
                             + firmware_tree.source_dirs() + [PIPE_HAL],
                             default_cache() / "pipe")
        boot = FIRMWARE_DIR / "boot.py"
        return (f"import sys\nsys.path.append({str(cache)!r})\n"
                f"import hal\nexecfile({str(boot)!r})\n"
                "import runtime\nruntime.main(hal)\n")

    def write(self, data):
        # A power cut replaces the process; until the new one exists the board is off, so
        # bytes written meanwhile are lost, as on a real link (the host retransmits).
        for _ in range(100):
            proc = self.proc
            if proc is None:
                time.sleep(0.02)
                continue
            try:
                proc.stdin.write(data)
                proc.stdin.flush()
                return
            except (BrokenPipeError, ValueError, OSError):
                time.sleep(0.02)
        raise BrokenPipeError("device pipe closed; exit codes %s" % (self.exit_codes,))


def load_store_record(flash_dir, name):
    """An OTA store record as the device's store reads it (current copy, else backup; the
    header's length and CRC-32 checked), or None."""
    path = Path(flash_dir) / "slots" / "state" / name
    for p in (path, path.with_name(name + ".bak")):
        try:
            data = p.read_bytes()
        except FileNotFoundError:
            continue
        if len(data) < 12 or data[:4] != b"EKS\x01":
            continue
        length, crc = struct.unpack("<II", data[4:12])
        payload = data[12:]
        if len(payload) != length or zlib.crc32(payload, zlib.crc32(data[:8])) != crc:
            continue
        try:
            return json.loads(payload)
        except ValueError:
            continue
    return None


def verify_active(flash_dir):
    """(slot, version, problem or None) of the image the boot record names, checked as
    boot.py checks it: the file list against the slot record, every file against the list."""
    boot = load_store_record(flash_dir, "boot") or {}
    slot = boot.get("slot")
    if slot is None:
        return None, None, None
    rec = load_store_record(flash_dir, "slot_" + slot) or {}
    d = Path(flash_dir) / "slots" / slot
    try:
        listing = (d / ".list").read_bytes()
    except FileNotFoundError:
        return slot, rec.get("ver"), "no file list"
    if hashlib.sha256(listing).hexdigest() != rec.get("list"):
        return slot, rec.get("ver"), "file list does not match the slot record"
    for line in listing.decode().splitlines():
        name, size, digest = line.split()
        try:
            data = (d / name).read_bytes()
        except FileNotFoundError:
            return slot, rec.get("ver"), f"{name} missing"
        if len(data) != int(size) or hashlib.sha256(data).hexdigest() != digest:
            return slot, rec.get("ver"), f"{name} does not match"
    return slot, rec.get("ver"), None


def active_image(flash_dir):
    """(slot, {name: sha256 hex}) of what the boot record says runs, per the flash."""
    boot = load_store_record(flash_dir, "boot") or {}
    slot = boot.get("slot")
    if slot is None:
        return None, {}
    d = Path(flash_dir) / "slots" / slot
    return slot, {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
                  for p in d.iterdir() if p.is_file() and p.name != ".list"}

