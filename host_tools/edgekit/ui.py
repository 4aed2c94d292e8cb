"""Live progress for long CLI operations: one line per device, redrawn in place on a
terminal, one line per change otherwise (logs, CI)."""
import sys
import threading
import time


class Progress:
    def __init__(self, keys, stream=None, quiet=False):
        self.keys = list(keys)
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.state = {k: "waiting" for k in self.keys}
        self.started = time.monotonic()
        self._drawn = 0
        # Devices are worked on in parallel threads: one redraw at a time, or the lines of a
        # tray interleave on the terminal.
        self._lock = threading.Lock()

    def _line(self, key):
        return f"  {key:<28} {self.state[key]}"[:120]

    def update(self, key, step, detail=""):
        with self._lock:
            self._update(key, step, detail)

    def _update(self, key, step, detail):
        self.state[key] = f"{step} {detail}".strip()
        if self.quiet:
            return
        if self.tty:
            if self._drawn:
                self.stream.write(f"\x1b[{self._drawn}F")
            for k in self.keys:
                self.stream.write("\x1b[2K" + self._line(k) + "\n")
            self._drawn = len(self.keys)
        else:
            self.stream.write(f"[{time.monotonic() - self.started:6.1f}s]{self._line(key)}\n")
        self.stream.flush()

    def finish(self):
        self._drawn = 0


def rate_line(done, total, started, unit="B"):
    """`12.3 KB of 50.0 KB  10.4 KB/s  ETA 3 s`"""
    elapsed = max(time.monotonic() - started, 1e-6)
    rate = done / elapsed
    eta = (total - done) / rate if rate > 0 else float("inf")
    k = 1024.0
    return (f"{done / k:.1f} K{unit} of {total / k:.1f} K{unit}  {rate / k:.1f} K{unit}/s  "
            f"ETA {eta:.0f} s" if eta != float("inf") else f"{done / k:.1f} K{unit}")
