"""MicroPython itself onto a board, before the edgekit files (`edgekit flash --runtime IMAGE`).

The board definition's `runtime_image` says how (boards/*.json):

    {"method": "esptool", "chip": "esp32", "chip_id": 0, "offset": 4096, "baud": 460800}
    {"method": "uf2", "family_id": "0xe48bff56", "board_id": "RPI-RP2"}

ESP32 family: esptool as a library (its stub flasher, compressed write, then a read-back
verification), the image written at the board's offset (0x1000 on the ESP32, 0 on the S3:
where MicroPython's merged firmware.bin starts). The filesystem partition is left alone
unless --wipe erases the whole chip first.
RP2040: the UF2 is copied to the BOOTSEL drive (found by its INFO_UF2.TXT); a board that
runs MicroPython is sent there with machine.bootloader(). The board reboots by itself.

Both need real hardware; the decisions (arguments, offsets, image checks, drive detection)
are functions of their inputs and are unit-tested with fakes.
"""
import glob
import os
import struct
import time
from pathlib import Path

from edgekit.errors import EdgekitError

ESP_IMAGE_MAGIC = 0xE9
UF2_MAGIC = (0x0A324655, 0x9E5D5157)
UF2_MAGIC_END = 0x0AB16F30
UF2_FAMILY_FLAG = 0x00002000
UF2_BLOCK = 512
INFO_FILE = "INFO_UF2.TXT"
# Where desktop systems mount a USB drive (Linux: udisks, plain mounts; macOS).
MOUNT_GLOBS = ("/media/*/*", "/run/media/*/*", "/media/*", "/mnt/*", "/Volumes/*")


class RuntimeImageError(EdgekitError):
    """The runtime image or the board's bootloader is not what the board needs."""


def method_of(board_def) -> dict:
    spec = board_def.get("runtime_image")
    if not isinstance(spec, dict) or spec.get("method") not in ("esptool", "uf2"):
        raise RuntimeImageError(f"board {board_def.get('name')} has no runtime_image method "
                                "(esptool or uf2) in its definition: write MicroPython with "
                                "the vendor's tool, then run edgekit flash without --runtime")
    return spec


def _real_port(port):
    if port.startswith(("socket://", "emu:", "rfc2217://", "loop://")):
        raise RuntimeImageError(f"{port} is not a USB serial port: --runtime writes a real "
                                "chip's flash (an emulated board already has its runtime)")
    return port[len("serial:"):] if port.startswith("serial:") else port


# -- ESP32 family: esptool ---------------------------------------------------------------
def check_esp_image(data: bytes, spec: dict):
    """RuntimeImageError unless `data` is an ESP image for the board's chip: magic byte,
    then the chip id of the extended header (ESP-IDF esp_image_header_t, bytes 12-13)."""
    if len(data) < 24 or data[0] != ESP_IMAGE_MAGIC:
        raise RuntimeImageError("the runtime image is not an ESP32 firmware image (no 0xE9 "
                                "magic byte): use MicroPython's .bin for this board")
    chip_id = struct.unpack_from("<H", data, 12)[0]
    if chip_id != spec["chip_id"]:
        raise RuntimeImageError(f"the runtime image is built for ESP chip id {chip_id}, this "
                                f"board is an {spec['chip']} (chip id {spec['chip_id']}): "
                                "download MicroPython for this board")


def esptool_plan(board_def, port, data: bytes, wipe=False) -> dict:
    """What esptool will be asked to do (checked, nothing touched yet)."""
    spec = method_of(board_def)
    if spec["method"] != "esptool":
        raise RuntimeImageError(f"board {board_def['name']} takes its runtime as a UF2, "
                                "not through esptool")
    check_esp_image(data, spec)
    return {"port": _real_port(port), "chip": spec["chip"], "baud": spec.get("baud", 460800),
            "offset": spec["offset"], "size": len(data), "erase": bool(wipe)}


def run_esptool(plan, data: bytes, tool=None):
    """Write and verify with esptool's library API (`tool`: esptool.cmds or a fake)."""
    if tool is None:
        import esptool.cmds as tool
    with tool.detect_chip(plan["port"], plan["baud"]) as esp:
        found = esp.CHIP_NAME.lower().replace("-", "")
        if found != plan["chip"]:
            raise RuntimeImageError(f"the chip on {plan['port']} is an {esp.CHIP_NAME}, the "
                                    f"board definition says {plan['chip']}: pick the --board "
                                    "that matches")
        esp = tool.run_stub(esp)
        tool.attach_flash(esp)
        if plan["erase"]:
            tool.erase_flash(esp)
        tool.write_flash(esp, [(plan["offset"], data)], compress=True, no_progress=True)
        tool.verify_flash(esp, [(plan["offset"], data)])
        tool.reset_chip(esp, "hard-reset")
    return {"method": "esptool", "chip": plan["chip"], "offset": plan["offset"],
            "bytes": plan["size"], "erased": plan["erase"], "verified": True}


# -- RP2040: UF2 to the BOOTSEL drive ------------------------------------------------------
def check_uf2(data: bytes, spec: dict) -> int:
    """RuntimeImageError unless every block is a UF2 block for the board's family; the
    number of blocks."""
    family = int(str(spec["family_id"]), 0)
    if not data or len(data) % UF2_BLOCK:
        raise RuntimeImageError("the runtime image is not a UF2 file (not whole 512-byte "
                                "blocks): use MicroPython's .uf2 for this board")
    count = len(data) // UF2_BLOCK
    for i in range(count):
        block = data[i * UF2_BLOCK:(i + 1) * UF2_BLOCK]
        m0, m1, flags = struct.unpack_from("<III", block, 0)
        fam = struct.unpack_from("<I", block, 28)[0]
        if (m0, m1) != UF2_MAGIC or struct.unpack_from("<I", block, 508)[0] != UF2_MAGIC_END:
            raise RuntimeImageError(f"UF2 block {i} has no UF2 magic: the file is damaged "
                                    "or not a UF2")
        if not flags & UF2_FAMILY_FLAG or fam != family:
            raise RuntimeImageError(f"the UF2 is for family 0x{fam:08x}, this board needs "
                                    f"0x{family:08x} ({spec.get('board_id')}): download "
                                    "MicroPython for this board")
    return count


def find_bootsel(spec: dict, search=None) -> list:
    """Mounted drives whose INFO_UF2.TXT names the board's bootloader (Board-ID)."""
    want = f"Board-ID: {spec['board_id']}"
    roots = search if search is not None else [p for g in MOUNT_GLOBS for p in glob.glob(g)]
    found = []
    for root in roots:
        info = Path(root) / INFO_FILE
        try:
            text = info.read_text(errors="replace")
        except OSError:
            continue
        if any(line.strip() == want for line in text.splitlines()):
            found.append(Path(root))
    return sorted(set(found))


def enter_bootsel(port):
    """Ask MicroPython on `port` to reboot into its USB bootloader (the link then drops)."""
    from edgekit.flash.device import Connection
    conn = Connection(port)
    try:
        conn.open()
        conn.t.exec_raw_no_follow("import machine\nmachine.bootloader()")
    finally:
        conn.close()


def copy_uf2(data: bytes, drive: Path) -> Path:
    target = Path(drive) / "edgekit-runtime.uf2"
    with open(target, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())     # the board reboots once its last block lands
    return target


def write_uf2(board_def, port, data: bytes, search=None, wait=20.0, enter=enter_bootsel,
              sleep=time.sleep) -> dict:
    spec = method_of(board_def)
    if spec["method"] != "uf2":
        raise RuntimeImageError(f"board {board_def['name']} takes its runtime through "
                                "esptool, not as a UF2")
    blocks = check_uf2(data, spec)
    drives = find_bootsel(spec, search)
    entered = False
    if not drives and port:
        try:
            enter(_real_port(port))
            entered = True
        except EdgekitError:
            pass        # no MicroPython answering there: the button is the way
        deadline = time.monotonic() + wait
        while not drives and time.monotonic() < deadline:
            sleep(0.5)
            drives = find_bootsel(spec, search)
    if not drives:
        raise RuntimeImageError(f"no {spec['board_id']} BOOTSEL drive is mounted: hold the "
                                "board's BOOTSEL button while plugging it in, then rerun")
    if len(drives) > 1:
        raise RuntimeImageError(f"{len(drives)} boards are in BOOTSEL mode "
                                f"({', '.join(map(str, drives))}): write runtimes one board "
                                "at a time")
    target = copy_uf2(data, drives[0])
    return {"method": "uf2", "drive": str(drives[0]), "file": target.name, "blocks": blocks,
            "entered_bootsel": entered}


def wait_for_port(port, timeout=20.0, sleep=time.sleep):
    """After a runtime write the board re-enumerates: wait for its serial device."""
    path = _real_port(port)
    if not path.startswith("/"):
        return
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise RuntimeImageError(f"{path} did not come back after the runtime was written: "
                                    "replug the board and run edgekit flash without --runtime")
        sleep(0.5)
    sleep(1.0)          # MicroPython's USB stack is up a moment after the device node


def install(port, board_def, image_path, wipe=False, progress=None) -> dict:
    path = Path(image_path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise RuntimeImageError(f"cannot read runtime image {path}: {exc.strerror}") from None
    spec = method_of(board_def)
    if spec["method"] == "esptool":
        if progress:
            progress("runtime", f"esptool write {len(data)} bytes at 0x{spec['offset']:x}")
        result = run_esptool(esptool_plan(board_def, port, data, wipe), data)
    else:
        # A UF2 bootloader cannot erase the filesystem: --wipe clears it over the REPL next.
        if progress:
            progress("runtime", f"UF2 {len(data)} bytes to the BOOTSEL drive")
        result = write_uf2(board_def, port, data)
    wait_for_port(port)
    return result
