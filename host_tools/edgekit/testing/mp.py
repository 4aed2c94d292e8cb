"""Run firmware code inside the real `micropython` unix port.

Every firmware test goes through here so they all get the same sys.path (every firmware
source folder, as a device's one flat /lib holds them; protocol, boards) and a heap the size
of a real board's. Output crosses back as text: tests print results (repr or JSON) and parse
them on the host.
"""
import json
import subprocess
import tempfile
from pathlib import Path

from edgekit import firmware_tree
from edgekit.paths import BOARDS_DIR, PROTOCOL_DIR, micropython_binary

# ESP32-WROOM without PSRAM leaves ~110 KB of MicroPython heap: the default test budget.
DEFAULT_HEAP = "110K"


class MicroPythonError(RuntimeError):
    def __init__(self, returncode, stdout, stderr):
        super().__init__(f"micropython exited {returncode}\n--- stdout ---\n{stdout[-4000:]}"
                         f"\n--- stderr ---\n{stderr[-4000:]}")
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def _prelude(extra_paths):
    paths = [str(p) for p in firmware_tree.source_dirs()] + [str(PROTOCOL_DIR), str(BOARDS_DIR)]
    paths += [str(p) for p in extra_paths]
    return "import sys\n" + "".join(f"sys.path.insert(0, {p!r})\n" for p in reversed(paths))


def run(code: str, heap: str = DEFAULT_HEAP, timeout: float = 120, extra_paths=(),
        cwd=None, stdin: bytes = b"") -> str:
    """Run `code` in micropython; return stdout; raise MicroPythonError on failure."""
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(_prelude(extra_paths) + code)
        script = f.name
    try:
        proc = subprocess.run([micropython_binary(), "-X", f"heapsize={heap}", script],
                              input=stdin, capture_output=True, timeout=timeout, cwd=cwd)
    finally:
        Path(script).unlink(missing_ok=True)
    out = proc.stdout.decode("utf-8", "replace")
    err = proc.stderr.decode("utf-8", "replace")
    if proc.returncode != 0 or "Traceback (most recent call last)" in out:
        raise MicroPythonError(proc.returncode, out, err)
    return out


def run_json(code: str, **kw):
    """Run `code`, which must print exactly one JSON document as its last line."""
    out = run(code, **kw)
    lines = [ln for ln in out.splitlines() if ln.strip()]
    if not lines:
        raise MicroPythonError(0, out, "no output")
    return json.loads(lines[-1])
