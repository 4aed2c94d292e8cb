"""Live heap of a provisioned device, as `edgekit command diag` reports it, per kind.

What the firmware holds while it runs (after a collection), on an emulated ESP32 (110 KB,
the frozen-module allowance added by the emulator, so the figures are the firmware's data):
free and used after provisioning and after 1 and 6 simulated hours. The margin an OTA
offer or a KEY_EPOCH needs comes out of `free`, in blocks: a large free figure can still
hold no 4 KB block when the heap is fragmented (docs/memory.md).

    python bench/bench_live_heap.py [KIND ...]
"""
import contextlib
import io
import json
import os
import sys
import tempfile

from edgekit.firmware_tree import KINDS


def main(kinds):
    home = tempfile.mkdtemp(prefix="ek-bench-heap-")
    os.environ["EDGEKIT_HOME"] = home
    os.environ["EDGEKIT_KEY_PASSPHRASE"] = "bench passphrase, throwaway fleet"
    os.environ["EDGEKIT_MAX_DRIFT_S"] = "off"       # paused time: no clock syncs
    from edgekit.cli import main as edgekit
    from edgekit.emu import Emulator

    def quiet(*argv):
        with contextlib.redirect_stdout(io.StringIO()) as out:
            code = edgekit(list(argv))
        if code:
            raise SystemExit(f"edgekit {' '.join(argv)} exited {code}")
        return out.getvalue()

    quiet("keys", "init")
    print(f"{'kind':12} {'after':>8} {'free KB':>8} {'used KB':>8} {'board':>6}")
    with Emulator() as emu:
        for kind in kinds:
            board = emu.start("esp32", kind=kind, time="paused")
            quiet("provision", board.url, "--kind", kind, "--site", "bench")
            for label, advance in (("0 h", 0), ("1 h", 3600), ("6 h", 5 * 3600)):
                if advance:
                    board.advance(advance)
                r = json.loads(quiet("command", board.url, "diag", "--json"))["result"]
                print(f"{kind:12} {label:>8} {r['heap_free'] / 1024:8.1f} "
                      f"{r['heap_used'] / 1024:8.1f} {r['heap_board']:>6}", flush=True)
            board.stop()


if __name__ == "__main__":
    main(sys.argv[1:] or KINDS)
