"""The frozen 32-bit VM for tests: current, built on demand where the toolchain is, or a skip
that says why (CI installs the toolchain and runs `make frozen-vm` first: .ci/run)."""
import fcntl

from edgekit.errors import EdgekitError
from edgekit.frozen import unixvm


def require():
    """Make sure the frozen VM is built from the current firmware; pytest.skip otherwise."""
    import pytest
    ok, why = unixvm.status()
    if ok:
        return unixvm.binary()
    missing = unixvm.toolchain_missing()
    if missing:
        pytest.skip(f"{why}; and the 32-bit toolchain is missing: `{missing}` (as root), then "
                    "`make frozen-vm`")
    out = unixvm.out_dir()
    out.mkdir(parents=True, exist_ok=True)
    # Several test processes may get here at once: one builds, the others wait for it.
    with open(out / "build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        ok, why = unixvm.status()
        if not ok:
            try:
                unixvm.build()
            except EdgekitError as exc:
                pytest.skip(f"the frozen 32-bit VM could not be built: {exc}")
    return unixvm.binary()


def run(code, heap="110K", timeout=60):
    """Run `code` in the frozen VM (firmware importable from .frozen) -> stdout."""
    import subprocess
    proc = subprocess.run([str(require()), "-X", f"heapsize={heap}", "-c", code],
                          capture_output=True, text=True, timeout=timeout)
    if proc.returncode:
        raise AssertionError(f"frozen VM exited {proc.returncode}:\n{proc.stdout[-3000:]}"
                             f"{proc.stderr[-3000:]}")
    return proc.stdout
