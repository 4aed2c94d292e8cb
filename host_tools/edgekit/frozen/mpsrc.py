"""Where MicroPython's source comes from for an image build.

MICROPYTHON_SRC names a source folder (on a machine with internet: a clone of the upstream
tag the boards run). Without it, the archive in ../shared/micropython (the repository at the
VM's ABI, as `git archive` makes it) is unpacked once into build/micropython.
"""
import os
import tarfile
from pathlib import Path

from edgekit.errors import EdgekitError
from edgekit.paths import ROOT, cache_dir

UPSTREAM = "https://github.com/micropython/micropython"


class SourceError(EdgekitError):
    """MicroPython's source cannot be found."""


def _archive():
    env = os.environ.get("MICROPYTHON_ARCHIVE")
    if env:
        return Path(env)
    # ../shared from the checkout; a git worktree sits one folder deeper.
    for base in (ROOT.parent, ROOT.parent.parent):
        found = sorted((base / "shared" / "micropython").glob("micropython-*.tar.gz"))
        if found:
            return found[-1]
    return None


def source_dir() -> Path:
    env = os.environ.get("MICROPYTHON_SRC")
    if env:
        src = Path(env)
        if not (src / "py" / "mpconfig.h").exists():
            raise SourceError(f"MICROPYTHON_SRC={src} is not a MicroPython source tree "
                              "(no py/mpconfig.h)")
        return src
    src = cache_dir() / "micropython"
    if (src / "py" / "mpconfig.h").exists():
        return src
    archive = _archive()
    if archive is None or not archive.exists():
        raise SourceError(
            "no MicroPython source: set MICROPYTHON_SRC to a clone of the board's tag "
            f"(git clone --depth 1 -b <tag> {UPSTREAM}) or MICROPYTHON_ARCHIVE to a "
            "source archive")
    tmp = src.parent / (src.name + ".part")
    tmp.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive) as tar:
        tar.extractall(tmp, filter="data")
    inner = [p for p in tmp.iterdir() if p.is_dir()]
    root = inner[0] if len(inner) == 1 and not (tmp / "py").exists() else tmp
    root.rename(src)
    if tmp.exists():
        tmp.rmdir()
    return src
