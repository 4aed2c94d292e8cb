"""Flashing figures: `edgekit flash` vs `mpremote fs cp` of the same files, same link, same run.

    python bench/bench_flash.py

Both put the water-meter image (the OTA build's .mpy files, the HAL, board.json, boot.py,
main.py) on a fresh bare emulated ESP32 over its 115200-baud link (11,520 B/s each way).
mpremote copies file by file with `f.write(b'...')` repr chunks of 256 bytes; edgekit flash
sends raw deflated frames under a window and checks every file's SHA-256 on the device. The
reference is mpremote's time in this run; nothing is asserted on time.
"""
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from edgekit.emu import Emulator
from edgekit.flash import flow, image as image_mod

BOARD, KIND = "esp32", "water_meter"
ROUNDS = 3
NOMINAL_BPS = 115200 / 10


def mpremote_copy(url, img, workdir):
    """Every image file onto the board with `mpremote fs cp` (one mpremote run)."""
    root = Path(workdir)
    for f in img.files:
        p = root / f.path.lstrip("/")
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(f.data)
    lib = sorted(str(root / f.path.lstrip("/")) for f in img.files if f.path.startswith("/lib/"))
    top = sorted(str(root / f.path.lstrip("/")) for f in img.files if f.path.count("/") == 1)
    mpremote = Path(sys.executable).parent / "mpremote"
    cmd = [str(mpremote), "connect", url, "fs", "mkdir", ":lib", "+", "fs", "cp"] + lib + \
        [":lib/", "+", "fs", "cp"] + top + [":"]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, timeout=600)
    return time.perf_counter() - start


def edgekit_flash(url, img):
    start = time.perf_counter()
    report = flow.flash(url, img, ignore_heap=True, hello=False)
    return time.perf_counter() - start, report


def main():
    img = image_mod.build(BOARD, KIND)
    kb = img.installed_bytes / 1024
    print(f"image: {KIND} for {BOARD}, {len(img.files)} files, {kb:.1f} KB installed, "
          f"{img.wire_bytes / 1024:.1f} KB deflated")
    ours, theirs, rerun, wire, transfer = [], [], [], [], []
    with Emulator() as emu, tempfile.TemporaryDirectory() as tmp:
        for i in range(ROUNDS):
            a = emu.start(BOARD, bare=True, time="virtual")
            b = emu.start(BOARD, bare=True, time="virtual")
            seconds, report = edgekit_flash(a.url, img)
            ours.append(seconds)
            wire.append(report["wire_bytes"])
            transfer.append(report["transfer_s"])
            rerun.append(edgekit_flash(a.url, img)[0])
            theirs.append(mpremote_copy(b.url, img, Path(tmp) / str(i)))
            a.stop()
            b.stop()
    t_ours, t_theirs = statistics.median(ours), statistics.median(theirs)
    print(f"mpremote fs cp (reference): {t_theirs:6.2f} s  {kb / t_theirs:5.2f} KB/s installed")
    print(f"edgekit flash             : {t_ours:6.2f} s  {kb / t_ours:5.2f} KB/s installed  "
          f"-> {t_theirs / t_ours:.1f}x faster (target 2x)")
    print(f"  of which raw transfer   : {statistics.median(transfer):6.2f} s for "
          f"{statistics.median(wire) / 1024:.1f} KB on the wire = "
          f"{statistics.median(wire) / statistics.median(transfer) / NOMINAL_BPS:.0%} of "
          f"the link's 11,520 B/s")
    print(f"edgekit flash, rerun      : {statistics.median(rerun):6.2f} s (every file hashed "
          f"on the device, nothing sent) = {statistics.median(rerun) / t_ours:.0%} of a flash")
    print(f"rounds: {ROUNDS}; edgekit {', '.join(f'{t:.2f}' for t in ours)} s; mpremote "
          f"{', '.join(f'{t:.2f}' for t in theirs)} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
