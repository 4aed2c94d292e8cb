"""Run the real firmware runtime in `micropython` with its link on a pipe (tests/firmware/
pipehal/hal.py), as a Transport for Session. `hal.reset()` exits with code 99 and the VM is
started again on the same flash directory — a board rebooting. No virtual time, no world:
that is the emulator's job; this is the fast path for protocol-level firmware tests."""
import json
import os
import queue
import subprocess
import threading
import time
from pathlib import Path

from edgekit import firmware_tree
from edgekit.paths import BOARDS_DIR, PROTOCOL_DIR, ROOT, micropython_binary
from edgekit.testing.mpycache import compile_tree, default_cache

PIPE_HAL = ROOT / "tests" / "firmware" / "pipehal"
_RESTART = 99


class PipeDevice:
    def __init__(self, flash_dir, heap="256K", hwid="a1b2c3d4e5f60718", board=None):
        self.flash_dir = Path(flash_dir)
        self.flash_dir.mkdir(parents=True, exist_ok=True)
        self.heap = heap
        self.board = board or {"name": "esp32", "max_frame": 1024, "window": 4}
        self.env = dict(os.environ, EK_HWID=hwid, EK_BOARD=json.dumps(self.board))
        self.proc = None
        self.boots = 0
        self._rx = queue.Queue()
        self._lock = threading.Lock()
        self._closing = False
        self.exit_codes = []

    def _script(self):
        # What a device runs: precompiled .mpy (pipe HAL last so it wins the name `hal`).
        cache = compile_tree([BOARDS_DIR / "hal_common.py", PROTOCOL_DIR / "catalog.py"]
                             + firmware_tree.source_dirs() + [PIPE_HAL],
                             default_cache() / "pipe")
        return (f"import sys\nsys.path.append({str(cache)!r})\n"
                "import hal, runtime\nruntime.main(hal)\n")

    def _start(self, cause):
        env = dict(self.env, EK_RESET_CAUSE=cause)
        self.proc = subprocess.Popen(
            [micropython_binary(), "-X", f"heapsize={self.heap}", "-c", self._script()],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            cwd=self.flash_dir, env=env, bufsize=0)
        self.boots += 1
        threading.Thread(target=self._pump, args=(self.proc,), daemon=True).start()

    def _pump(self, proc):
        while True:
            data = proc.stdout.read1(4096) if hasattr(proc.stdout, "read1") else \
                os.read(proc.stdout.fileno(), 4096)
            if not data:
                break
            self.tail = (getattr(self, "tail", b"") + data)[-2000:]  # for crash reports
            self._rx.put(data)
        code = proc.wait()
        self.stderr = proc.stderr.read().decode(errors="replace")
        with self._lock:
            self.exit_codes.append(code)
            if code == _RESTART and not self._closing and proc is self.proc:
                self._start("soft")

    # -- Transport -------------------------------------------------------------------------
    def open(self):
        self._start("power_on")
        return self

    def write(self, data):
        for _ in range(50):
            proc = self.proc
            try:
                proc.stdin.write(data)
                proc.stdin.flush()
                return
            except (BrokenPipeError, ValueError, AttributeError):
                time.sleep(0.05)   # rebooting (proc replaced or None): the next one takes it
        raise BrokenPipeError("device pipe closed; exit codes %s; VM stderr:\n%s"
                              % (self.exit_codes, getattr(self, "stderr", "")[-3000:]
                                 + getattr(self, "tail", b"").decode("latin-1")))

    def read(self, timeout):
        try:
            chunk = self._rx.get(timeout=timeout)
        except queue.Empty:
            return b""
        while not self._rx.empty():
            chunk += self._rx.get_nowait()
        return chunk

    def powercut(self):
        """SIGKILL now (any instruction), then cold boot on the same flash."""
        with self._lock:
            old = self.proc
            self.proc = None
            old.kill()
        old.wait()
        with self._lock:
            self._start("power_on")

    def close(self):
        self._closing = True
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self):
        return self.open()

    def __exit__(self, *exc):
        self.close()
