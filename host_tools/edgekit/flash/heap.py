"""Does the image fit the board's heap when it runs from .mpy files on the filesystem?

A module imported from a .mpy file keeps its bytecode, constants and function objects in
the heap (frozen into the MicroPython build they would stay in flash). So a flashed board
must hold both: the image's resident footprint, and the working heap the firmware needs.

- footprint: measured, never estimated. On the host, by importing the image in the unix VM
  (64-bit: exact for an emulated board, an upper bound for a 32-bit MCU whose pointers are
  half as wide); on the device itself after the install (scripts.LOAD_CHECK), which is the
  figure that decides.
- working heap: the share of the board's heap every app is proven to run in
  (hil_tests/test_heap_headroom.py runs each app's whole workload in 70% of it).
"""
import subprocess
import tempfile
from pathlib import Path

from edgekit.board_defs import parse_size
from edgekit.paths import BOARDS_DIR, micropython_binary

WORKING_SHARE = 0.7
_PROBE_HEAP = "4M"
_cache = {}


def working_need(board_def) -> int:
    return int(parse_size(board_def["heap"]) * WORKING_SHARE)


def host_footprint(image) -> int:
    """Heap bytes the image's start-up modules take in the unix VM (the emulator's HAL
    stands in for the board's, which needs `machine`: its own few KB are not counted)."""
    mods = [m for m in image.boot_modules() if m != "hal"]
    key = (tuple(sorted((f.path, f.digest) for f in image.files)), tuple(mods))
    if key in _cache:
        return _cache[key]
    with tempfile.TemporaryDirectory(prefix="edgekit-heap-") as tmp:
        for f in image.files:
            if f.module and f.module != "hal":
                Path(tmp, f.module + ".mpy").write_bytes(f.data)
        script = (f"import sys, gc\nsys.path[:] = [{tmp!r}, {str(BOARDS_DIR)!r}]\n"
                  "import hal_emu\nsys.modules['hal'] = hal_emu\n"
                  "gc.collect()\nb = gc.mem_alloc()\n"
                  + "".join(f"import {m}\n" for m in mods)
                  + "gc.collect()\nprint(gc.mem_alloc() - b)\n")
        out = subprocess.run([micropython_binary(), "-X", f"heapsize={_PROBE_HEAP}", "-c",
                              script], capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise RuntimeError(f"the image does not import in the unix VM: {out.stdout[-1500:]}"
                           f"{out.stderr[-1500:]}")
    _cache[key] = int(out.stdout.strip().splitlines()[-1])
    return _cache[key]


def assess(board_def, resident, free_after, error=None, measured_on="device",
           frozen=False) -> dict:
    """The verdict the report carries: figures, whether it fits, and why not.

    `frozen`: the firmware is frozen into the board's image. The headroom test runs those
    images (ROM frozen32) in 70% of the board's heap INCLUDING what the frozen imports
    leave resident, so here they count inside the working share, not on top of it."""
    need = working_need(board_def) - (resident if frozen else 0)
    fits = error is None and free_after >= need
    verdict = {"resident": resident, "free_after_import": free_after, "working_need": need,
               "board_heap": parse_size(board_def["heap"]), "measured_on": measured_on,
               "frozen": bool(frozen), "fits": fits}
    if error and not error.startswith("MemoryError"):
        # not a heap question: the image itself does not start on this device
        verdict["problem"] = (f"the installed image does not import on the device ({error}):"
                              " check that the build matches the board and its MicroPython; "
                              "--ignore-heap skips this check")
    elif not fits:
        if error:
            what = f"importing it failed after {resident // 1024} KB ({error})"
        else:
            what = (f"it keeps {resident // 1024} KB resident and leaves "
                    f"{max(free_after, 0) // 1024} KB, the firmware needs "
                    f"{need // 1024} KB to work in")
        verdict["problem"] = (f"the image does not fit this board's heap when it runs from "
                              f".mpy files: {what}. Production boards run it frozen into the "
                              "MicroPython build (docs/flashing.md, 'Heap'); --ignore-heap "
                              "installs it anyway")
    return verdict


def predict(info, image) -> dict:
    """Before any transfer: the verdict from the host figure. Exact on a 64-bit device (the
    emulator's VM); on a 32-bit MCU only an upper bound, so `decisive` is False there."""
    resident = host_footprint(image)
    v = assess(image.board_def, resident, info.heap_free - resident, measured_on="host VM")
    v["decisive"] = info.word_bits == 64
    return v
