"""What `edgekit flash` puts on a board: the OTA build of the firmware plus the board image.

The firmware files (the library, the protocol catalog, the kind's app and `build_info`,
compiled to .mpy) come from the very bundle `edgekit ota build` makes for the board and
kind, so a flashed device and an updated one run the same bytes. Around them, the parts an
update never touches (boards/HAL.md, firmware/boot.py):

    /boot.py  /main.py           firmware/boot.py, firmware/main.py (a port runs them as source)
    /board.json                  boards/<board>.json without its emulator/host-only fields
    /lib/hal.mpy                 the board's HAL (hal_esp32 or hal_rp2040), hal_common, hal_machine,
                                 rc522 (the card reader driver)
    /lib/*.mpy                   the bundle's files

`/main.py` is written last: until it exists the board boots into its REPL, so an
interrupted flash never runs a mix of two builds.
"""
import hashlib
import json
import re
import tempfile
import zlib
from pathlib import Path

from edgekit import catalog as C
from edgekit.board_defs import device_view
from edgekit.errors import EdgekitError
from edgekit.ota import bundle as bundle_mod
from edgekit.ota import manifest as man
from edgekit import firmware_tree
from edgekit.paths import BOARDS_DIR, FIRMWARE_DIR

LIB = "/lib"
MAIN = "/main.py"
# The HAL each MicroPython port gets (boards/HAL.md).
HAL_FOR_PORT = {"esp32": "hal_esp32", "rp2": "hal_rp2040"}
HAL_SUPPORT = ("hal_common", "hal_machine", "hal_net", "rc522")
# A version with seq 1: a factory image is below every OTA update (SPEC 9.5 floor starts at 0)
# and, built twice from the same sources, byte-identical (so a rerun skips every file).
FACTORY_SEQ = 1


class ImageError(EdgekitError):
    """The firmware image cannot be built or does not match what was asked."""


class ImageFile:
    """One file as installed (`data`, `digest`) and as sent (`wire`, `deflated`)."""

    def __init__(self, path, data, wire=None):
        self.path = path
        self.data = bytes(data)
        self.size = len(self.data)
        self.digest = hashlib.sha256(self.data).digest()
        self.wire = self.data if wire is None else bytes(wire)
        self.deflated = wire is not None

    @property
    def module(self):
        """Module name if this is an importable file under /lib, else None."""
        if self.path.startswith(LIB + "/") and self.path.endswith(".mpy"):
            return self.path[len(LIB) + 1:-4]
        return None

    def __repr__(self):
        return f"ImageFile({self.path}, {self.size} B)"


def deflated(data: bytes):
    """The transfer form OTA uses (zlib, small window: ~4 KB of device heap to inflate),
    or None when deflate saves too little to be worth the device's time."""
    form, encoding = bundle_mod.transfer_form(data, True)
    return form if encoding == man.DEFLATE else None


def firmware_version() -> str:
    """The version the firmware tree calls itself (firmware/core/device.py FW_VERSION)."""
    m = re.search(r'^FW_VERSION\s*=\s*"([^"]+)"',
                  firmware_tree.module_path("device").read_text(), re.M)
    if not m:
        raise ImageError("firmware/core/device.py has no FW_VERSION: pass --version")
    return m.group(1)


def device_board_json(board_def: dict) -> bytes:
    return json.dumps(device_view(board_def), separators=(",", ":"), sort_keys=True).encode()


def _compile_hal(board_def, mpy_cross):
    port = board_def.get("port")
    hal = HAL_FOR_PORT.get(port)
    if hal is None:
        raise ImageError(f"board {board_def.get('name')}: no HAL for MicroPython port {port!r} "
                         f"(known: {', '.join(sorted(HAL_FOR_PORT))})")
    out = []
    with tempfile.TemporaryDirectory(prefix="edgekit-flash-") as tmp:
        for name, target in [(hal, "hal")] + [(n, n) for n in HAL_SUPPORT]:
            src = BOARDS_DIR / f"{name}.py"
            dst = Path(tmp) / f"{target}.mpy"
            bundle_mod.compile_mpy(mpy_cross, src, dst)
            out.append((f"{LIB}/{target}.mpy", dst.read_bytes()))
    return out


class Image:
    """The complete file set for a board and kind, from an OTA bundle (built or loaded)."""

    def __init__(self, bundle, board_def, mpy_cross=None):
        m = bundle.manifest
        self.bundle = bundle
        self.board = m[C.K_BOARD]
        self.kind = m[C.K_KIND]
        self.runtime = m[C.K_RUNTIME]
        self.version = m[C.K_VERSION]
        self.seq = m[C.K_OTA_SEQ]
        self.board_def = board_def
        if board_def.get("name") != self.board:
            raise ImageError(f"the bundle is built for board {self.board}, not "
                             f"{board_def.get('name')}: build it for this board (edgekit ota "
                             f"build --board {board_def.get('name')}) or pick --board "
                             f"{self.board}")
        bundle.check_payloads()
        files = []
        for f in bundle.files:
            wire = bundle.payloads[f["index"]] if f["encoding"] == man.DEFLATE else None
            files.append(ImageFile(f"{LIB}/{f['name']}", bundle.installed(f["index"]), wire))
        mpy_cross = mpy_cross or bundle_mod.mpy_cross_path()
        for path, data in _compile_hal(board_def, mpy_cross):
            files.append(ImageFile(path, data, deflated(data)))
        files.append(ImageFile("/board.json", device_board_json(board_def)))
        for name in ("boot.py", "main.py"):
            data = (FIRMWARE_DIR / name).read_bytes()
            files.append(ImageFile("/" + name, data, deflated(data)))
        paths = [f.path for f in files]
        dupes = sorted({p for p in paths if paths.count(p) > 1})
        if dupes:
            raise ImageError(f"the bundle ships files the board image also installs: "
                             f"{', '.join(dupes)}; rebuild the bundle without them")
        # main.py last (module docstring); the rest in a stable order.
        self.files = sorted(files, key=lambda f: (f.path == MAIN, f.path))
        self.mpy_header = next((f.data[:4] for f in files if f.module), b"")

    @property
    def modules(self):
        return [f.module for f in self.files if f.module]

    @property
    def installed_bytes(self):
        return sum(f.size for f in self.files)

    @property
    def wire_bytes(self):
        return sum(len(f.wire) for f in self.files)

    def boot_modules(self):
        """What the firmware imports to start (as edgekit.emu.rom measures it): the HAL,
        the runtime, the kind's app and the OTA agent."""
        have = set(self.modules)
        return [m for m in ("hal", "runtime", self.kind, "ota", "otaslots") if m in have]

    def describe(self):
        return {"board": self.board, "kind": self.kind, "version": self.version,
                "seq": self.seq, "runtime": self.runtime, "files": len(self.files),
                "installed_bytes": self.installed_bytes, "wire_bytes": self.wire_bytes}


def build(board, kind, version=None, sources=None, mpy_cross=None) -> Image:
    """Build the image for `board` (name or definition) and `kind` from the firmware tree."""
    board_def = bundle_mod.load_board(board)
    version = version or firmware_version()
    b = bundle_mod.build(board_def, kind, version, seq=FACTORY_SEQ, sources=sources,
                         mpy_cross=mpy_cross, issued=0)
    return Image(b, board_def, mpy_cross)


def from_bundle(path, board, mpy_cross=None) -> Image:
    """An image around a bundle file (`edgekit ota build` output), checked against `board`."""
    b = bundle_mod.Bundle.load(path)
    return Image(b, bundle_mod.load_board(board), mpy_cross)


def inflate(wire: bytes) -> bytes:
    """What the device makes of a deflated file (tests, and the host's own sanity)."""
    return zlib.decompress(wire, bundle_mod.DEFLATE_WBITS)
