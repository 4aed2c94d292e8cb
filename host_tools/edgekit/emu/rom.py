"""The emulated board's ROM: the firmware as a real image carries it (frozen, precompiled).

A real ESP32/RP2040 image freezes the firmware: its bytecode executes from flash and costs
no heap. The unix VM has no flash to execute from, so it must load the same bytecode into
its heap. To give the firmware exactly the board's heap for its own data, the emulator
measures, once per ROM build and device kind, how much heap the frozen modules occupy after
import (a probe VM imports what that kind's firmware imports), and starts the board's VM with
`board heap * heap_scale + that allowance`. A test that runs with heap_scale=0.7 therefore
proves 30% headroom on the real board's figure.

Layout (mounted read-only at /.frozen by boards/emu_launch.py):
    fw/boot.py fw/main.py     as on a board's filesystem (source: the launcher execs them)
    fw/lib/*.mpy              the core folders (edgekit.firmware_tree.CORE_DIRS), flattened
    fw/apps/*.mpy             every kind's folder, flattened (an emulated board can become
                              any kind; each kind imports only its own modules)
    protocol/catalog.mpy
    boards/*.mpy              hal_emu, hal_common, emu_machine, emu_vfs, emu_socket (the
                              board's `machine`, `vfs` and `socket`)
"""
import hashlib
import json
import shutil
import subprocess
from pathlib import Path

from edgekit import firmware_tree
from edgekit.paths import BOARDS_DIR, FIRMWARE_DIR, PROTOCOL_DIR, micropython_binary
from edgekit.testing.mpycache import compile_tree

_SOURCES = (("fw/lib", firmware_tree.core_dirs()),
            ("fw/apps", [firmware_tree.kind_dir(k) for k in firmware_tree.KINDS]),
            ("protocol", [PROTOCOL_DIR / "catalog.py"]),
            ("boards", [BOARDS_DIR / "hal_common.py", BOARDS_DIR / "hal_emu.py",
                        BOARDS_DIR / "emu_machine.py", BOARDS_DIR / "emu_vfs.py",
                        BOARDS_DIR / "emu_socket.py"]))
_PROBE_HEAP = "4M"


def build_rom(root) -> Path:
    """(Re)build the ROM under root/rom; only changed sources are recompiled."""
    rom = Path(root) / "rom"
    for sub, sources in _SOURCES:
        target = rom / sub
        if target.is_symlink():
            target.unlink()
        compile_tree(sources, target)
        wanted = {p.stem for src in sources for p in
                  ([src] if src.is_file() else src.glob("*.py"))}
        for stale in target.glob("*.mpy"):      # a deleted source leaves no ghost module
            if stale.stem not in wanted:
                stale.unlink()
                (target / (stale.stem + ".src")).unlink(missing_ok=True)
    for name in ("boot.py", "main.py"):
        src = FIRMWARE_DIR / name
        dst = rom / "fw" / name
        if src.exists() and (not dst.exists() or dst.read_bytes() != src.read_bytes()):
            shutil.copyfile(src, dst)
    return rom


def _digest(rom):
    h = hashlib.sha256()
    for p in sorted(rom.rglob("*")):
        if p.is_file() and p.suffix in (".mpy", ".py"):
            h.update(str(p.relative_to(rom)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()[:16]


def frozen_allowance(rom, kind) -> int:
    """Heap bytes the frozen modules of a `kind` device occupy in the unix VM (cached)."""
    rom = Path(rom)
    cache = rom / "allowance.json"
    key = f"{_digest(rom)}:{kind or 'factory'}"
    try:
        known = json.loads(cache.read_text())
    except (OSError, ValueError):
        known = {}
    if key in known:
        return known[key]
    # emu_machine, emu_vfs and emu_socket stand for the port's built-in `machine`, `vfs` and
    # `socket` (no heap on a board): counted.
    modules = ["hal_emu", "emu_machine", "emu_vfs", "emu_socket", "runtime"]
    if kind and (rom / "fw" / "apps" / f"{kind}.mpy").exists():
        modules.append(kind)
    for optional in ("ota", "otaslots"):
        if (rom / "fw" / "lib" / f"{optional}.mpy").exists():
            modules.append(optional)
    paths = [str(rom / p) for p in ("fw/lib", "fw/apps", "protocol", "boards")]
    script = ("import sys, gc\n" + "".join(f"sys.path.append({p!r})\n" for p in paths)
              + "gc.collect()\nb = gc.mem_alloc()\n"
              + "".join(f"import {m}\n" for m in modules)
              + "gc.collect()\nprint(gc.mem_alloc() - b)\n")
    out = subprocess.run([micropython_binary(), "-X", f"heapsize={_PROBE_HEAP}", "-c", script],
                         capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise RuntimeError(f"firmware ROM does not import ({kind}): {out.stdout[-2000:]}"
                           f"{out.stderr[-2000:]}")
    value = int(out.stdout.strip().splitlines()[-1])
    known = {k: v for k, v in known.items() if k.startswith(key.split(":")[0])}
    known[key] = value
    cache.write_text(json.dumps(known))
    return value
