"""The manufacturer's image: MicroPython for a real board with one kind's firmware frozen
(`edgekit build-image --board esp32 --kind water_meter`).

A board without PSRAM cannot run edgekit from its filesystem: on a 32-bit port the firmware's
imports alone take 98-112 KB as .mpy, 23-27 KB frozen (docs/flashing.md). This writes the
manifest (the board's own first: it holds _boot.py) and the folder it freezes, prints the
exact upstream build commands, and runs them where the port's toolchain is present.
"""
import os
import shlex
import shutil
import subprocess
from pathlib import Path

from edgekit.errors import EdgekitError
from edgekit.frozen import manifest as manifest_mod
from edgekit.frozen import mpsrc
from edgekit.paths import ROOT

# edgekit board definition -> (MicroPython port, upstream BOARD, VARIANT or None, output).
TARGETS = {
    "esp32": ("esp32", "ESP32_GENERIC", None, "firmware.bin"),
    # The WROVER's PSRAM needs the SPIRAM variant (boards/ESP32_GENERIC: sdkconfig.spiram_esp32)
    "esp32_wrover": ("esp32", "ESP32_GENERIC", "SPIRAM", "firmware.bin"),
    "esp32s3": ("esp32", "ESP32_GENERIC_S3", None, "firmware.bin"),
    # The generic S3 build finds quad PSRAM (N8R2) by itself; octal (N8R8) is SPIRAM_OCT.
    "esp32s3_psram": ("esp32", "ESP32_GENERIC_S3", None, "firmware.bin"),
    "rp2040": ("rp2", "RPI_PICO_W", None, "firmware.uf2"),
}
# What each port's build needs on PATH (ESP-IDF: `. $IDF_PATH/export.sh` puts idf.py there).
TOOLCHAIN = {"esp32": ("idf.py", "ESP-IDF 5.x: . $IDF_PATH/export.sh"),
             "rp2": ("arm-none-eabi-gcc", "apt-get install -y gcc-arm-none-eabi cmake")}


class ImageBuildError(EdgekitError):
    """The board image cannot be prepared or built."""


def plan(board, kind, version, out_dir=None, src=None):
    """Write the manifest; return {commands, manifest, output, port, toolchain}."""
    from edgekit.ota.bundle import load_board
    board_def = load_board(board)
    name = board_def.get("name", board)
    if name not in TARGETS:
        raise ImageBuildError(f"no upstream image target for board {name} (known: "
                              f"{', '.join(sorted(TARGETS))})")
    port, up_board, variant, output = TARGETS[name]
    out = Path(out_dir or ROOT / "build" / "image" / f"{name}-{kind}").resolve()
    manifest = manifest_mod.write(port, kind, name, version, out)
    src = Path(src) if src else _source_or_placeholder()
    args = [f"BOARD={up_board}"] + ([f"BOARD_VARIANT={variant}"] if variant else [])
    port_dir = src / "ports" / port
    commands = [["make", "-C", str(src / "mpy-cross")],
                ["make", "-C", str(port_dir), *args, "submodules"],
                ["make", "-C", str(port_dir), *args, f"FROZEN_MANIFEST={manifest}"]]
    build = f"build-{up_board}" + (f"-{variant}" if variant else "")
    tool, hint = TOOLCHAIN[port]
    return {"board": name, "kind": kind, "port": port, "upstream_board": up_board,
            "manifest": str(manifest), "frozen": str(out / "frozen"),
            "commands": [shlex.join(c) for c in commands], "argv": commands,
            "output": str(port_dir / build / output), "toolchain": tool,
            "toolchain_hint": hint, "toolchain_present": bool(shutil.which(tool))}


def _source_or_placeholder():
    try:
        return mpsrc.source_dir()
    except mpsrc.SourceError:
        # Printing the commands needs no source: name where it is expected.
        return Path(os.environ.get("MICROPYTHON_SRC") or "$MICROPYTHON_SRC")


def run(p, log=None):
    """Run the planned commands (the toolchain must be present); return the image path."""
    if not p["toolchain_present"]:
        raise ImageBuildError(f"{p['toolchain']} is not on PATH ({p['toolchain_hint']}): "
                              "run the commands above where the toolchain is")
    for cmd in p["argv"]:
        proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT if log else None)
        if proc.returncode:
            raise ImageBuildError(f"`{shlex.join(cmd)}` failed (exit {proc.returncode})")
    if not Path(p["output"]).exists():
        raise ImageBuildError(f"the build made no {p['output']}")
    return p["output"]
