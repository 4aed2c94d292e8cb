"""Heap figures: the smallest share of its board's heap each app needs for its whole workload.

    python bench/bench_heap.py                       # every app, esp32 and rp2040
    python bench/bench_heap.py water_meter esp32     # filter by kind and/or board names
    python bench/bench_heap.py --repeat 30 water_atm esp32   # the workload 30 times at the
                                                     # test's scale: how many runs fail

For every kind's app (firmware/kinds/<kind>/) and every board, on both VMs side by side,
bisects the emulator's heap_scale (the 64-bit VM gets `board heap * scale + the
frozen-firmware allowance`, see edgekit.emu.rom; the board-accurate frozen 32-bit VM gets
`board heap * scale` exactly, see edgekit.emu.frozen_rom; docs/memory.md) for the smallest
scale at which the app's workload from
hil_tests/test_heap_headroom.py runs to its end without a reboot or a refused answer, and
prints it with the headroom it leaves (1 - scale). The HIL test proves headroom >= 30% at
one scale; this prints how much there is. No asserts: a figure that moved is for a human
to read, the test is what fails.
"""
import argparse
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "hil_tests"))

from edgekit.emu import Emulator  # noqa: E402
from edgekit.hil.devices import HilFleet, provision  # noqa: E402
from edgekit.hil.targets import BoardSpec, EmulatedTarget  # noqa: E402
from test_heap_headroom import (BOARDS, FROZEN_SCALE, HEADROOM_SCALE, WORKLOADS,  # noqa: E402
                                apps, core_workload)

STEP = 0.01          # resolution of the bisection (1% of the board's heap)
# Without a board named: the two the 30% target is about (a WROVER's megabytes, by name).
DEFAULT_BOARDS = ("esp32", "rp2040")
LOW, HIGH = 0.15, 1.5


def runs_at(emu, fleet, board, kind, scale, rom="mpy"):
    """(ok, why, watchdog): the workload at `scale`, as the HIL test runs it; `watchdog`
    when the board was reset by its watchdog (a VM busy for a second of wall time counts
    as hung in paused time: on a loaded host, garbage collection near the limit gets
    there without running out of memory)."""
    target = EmulatedTarget(emu, BoardSpec(f"emu:{board}:{kind}"), heap_scale=scale, rom=rom)
    try:
        dev = provision(target, fleet, kind)
        dev.session.timeout = 5
        diag = WORKLOADS.get(kind, core_workload)(target, dev)
        if diag.get("task_errors"):
            return False, f"task errors: {diag['task_errors']}", False
        if target.boots() != 2:
            return False, f"rebooted: {_resets(target)}", "watchdog" in _resets(target)
        dev.close()
        return True, "ok", False
    except Exception as exc:  # noqa: BLE001 - any failure means "does not fit"
        return (False, f"{type(exc).__name__}: {str(exc)[:100]} ({_resets(target)})",
                "watchdog" in _resets(target))
    finally:
        target.close()


def _resets(target):
    try:
        return target.handle.info()["resets"]
    except Exception:  # noqa: BLE001 - a board that is gone has no figures
        return {}


def fits(emu, fleet, board, kind, scale, rom):
    ok, why, watchdog = runs_at(emu, fleet, board, kind, scale, rom)
    if not ok and watchdog:     # once more, in case the host was busy rather than the heap
        ok, why, _ = runs_at(emu, fleet, board, kind, scale, rom)
    return ok, why


def smallest_scale(emu, fleet, board, kind, rom="mpy"):
    ok, why = fits(emu, fleet, board, kind, HIGH, rom)
    if not ok:
        return None, why
    lo, hi = LOW, HIGH
    last_fail = "-"
    while hi - lo > STEP + 1e-9:
        mid = round((lo + hi) / 2, 3)
        ok, why = fits(emu, fleet, board, kind, mid, rom)
        if ok:
            hi = mid
        else:
            lo, last_fail = mid, why
    return hi, last_fail


def board_dict_heap():
    """Heap the board definition takes as a dict in the VM (hal.BOARD): the whole file, and
    the device view a flashed board and the emulated firmware get."""
    import json
    from edgekit.board_defs import device_view, load_board
    from edgekit.testing import mp
    full = load_board("esp32")
    code = ("import gc, json\ngc.collect()\na = gc.mem_alloc()\nd = json.loads(TEXT)\n"
            "gc.collect()\nprint(json.dumps(gc.mem_alloc() - a))\n")
    for name, board in (("whole file", full), ("device view", device_view(full))):
        text = json.dumps(board)
        used = mp.run_json(f"TEXT = {text!r}\n" + code)
        print(f"hal.BOARD esp32, {name:<12} {len(text):5d} B of JSON -> {used / 1024:5.1f} KB "
              "of heap")


def _roms():
    """Both VMs where the frozen one is built from the current firmware (make frozen-vm)."""
    from edgekit.frozen import unixvm
    ok, why = unixvm.status()
    if not ok:
        print(f"frozen32 column skipped: {why}")
    return ("mpy", "frozen32") if ok else ("mpy",)


def repeat(emu, fleet, kinds, boards, roms, runs):
    """The workload `runs` times at the headroom test's scale (its FROZEN_SCALE where one
    is set): a failure that bisection passed over (fragmentation differs run to run)
    shows here as a count."""
    print(f"{'app':<14}{'board':<14}{'VM':<10}{'scale':>6}{'runs':>6}{'failed':>8}  first failure")
    for kind in kinds:
        for board in boards:
            for rom in roms:
                scale = HEADROOM_SCALE[board]
                if rom == "frozen32":
                    scale = FROZEN_SCALE.get((board, kind), scale)
                failed, first = 0, "-"
                for _ in range(runs):
                    ok, why, _ = runs_at(emu, fleet, board, kind, scale, rom)
                    if not ok:
                        failed += 1
                        first = why if first == "-" else first
                print(f"{kind:<14}{board:<14}{rom:<10}{scale:>6.2f}{runs:>6}{failed:>8}  {first}",
                      flush=True)


def main(argv):
    from edgekit.board_defs import load_board, parse_size
    ap = argparse.ArgumentParser(prog="python bench/bench_heap.py", description=__doc__.split(
        "\n")[0], epilog="Prints figures; asserts nothing (the HIL test is what fails).")
    ap.add_argument("names", nargs="*", metavar="KIND|BOARD",
                    help=f"only these kinds ({', '.join(apps())}) and/or boards "
                         f"({', '.join(BOARDS)})")
    ap.add_argument("--repeat", type=int, metavar="N",
                    help="instead of bisecting, run the workload N times at the test's scale "
                         "and count failures")
    args = ap.parse_args(argv)
    wanted = set(args.names)
    unknown = wanted - set(apps()) - set(BOARDS)
    if unknown:
        ap.error(f"unknown kind or board: {', '.join(sorted(unknown))}")
    kinds = [k for k in apps() if not wanted or k in wanted or not wanted & set(apps())]
    boards = [b for b in BOARDS if b in wanted] or list(DEFAULT_BOARDS)
    fleet = HilFleet(Path(tempfile.mkdtemp(prefix="bench-heap-")))
    roms = _roms()
    if args.repeat:
        with Emulator() as emu:
            repeat(emu, fleet, kinds, boards, roms, args.repeat)
        return 0
    board_dict_heap()
    # Side by side: mpy = the 64-bit PyPI VM (board heap * scale + the measured allowance of
    # the modules it loads), frozen32 = the board-accurate VM (board heap * scale, nothing
    # added). "needs" is the share of the board's own heap figure, in % and KB.
    print(f"{'app':<14}{'board':<14}" + "".join(f"{rom + ' needs':>26}" for rom in roms)
          + f"{'test scale':>12}  first failure below (last VM)")
    with Emulator() as emu:
        for kind in kinds:
            if kind not in WORKLOADS:
                print(f"{kind:<14}(no workload of its own: the core services' one)")
            for board in boards:
                heap_kb = parse_size(load_board(board)["heap"]) / 1024
                t0 = time.monotonic()
                cells, why = [], "-"
                for rom in roms:
                    scale, why = smallest_scale(emu, fleet, board, kind, rom)
                    cells.append(f"> {HIGH:.2f}" if scale is None else
                                 f"{scale:.2f} {scale * heap_kb:4.0f} KB {1 - scale:4.0%} free")
                print(f"{kind:<14}{board:<14}" + "".join(f"{c:>26}" for c in cells)
                      + f"{HEADROOM_SCALE[board]:>12.2f}  {why}  "
                      f"({time.monotonic() - t0:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
