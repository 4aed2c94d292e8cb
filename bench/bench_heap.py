"""Heap figures: the smallest share of its board's heap each app needs for its whole workload.

    python bench/bench_heap.py                       # every app, esp32 and rp2040
    python bench/bench_heap.py water_meter esp32     # filter by kind and/or board names

For every app in firmware/apps and every board, bisects the emulator's heap_scale (the VM
gets `board heap * scale + the frozen-firmware allowance`, see edgekit.emu.rom and
docs/memory.md) for the smallest scale at which the app's workload from
hil_tests/test_heap_headroom.py runs to its end without a reboot or a refused answer, and
prints it with the headroom it leaves (1 - scale). The HIL test proves headroom >= 30% at
one scale; this prints how much there is. No asserts: a figure that moved is for a human
to read, the test is what fails.
"""
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "hil_tests"))

from edgekit.emu import Emulator  # noqa: E402
from edgekit.hil.devices import HilFleet, provision  # noqa: E402
from edgekit.hil.targets import BoardSpec, EmulatedTarget  # noqa: E402
from test_heap_headroom import (BOARDS, HEADROOM_SCALE, WORKLOADS, apps,  # noqa: E402
                                core_workload)

STEP = 0.01          # resolution of the bisection (1% of the board's heap)
LOW, HIGH = 0.15, 1.5


def runs_at(emu, fleet, board, kind, scale):
    """(ok, why, watchdog): the workload at `scale`, as the HIL test runs it; `watchdog`
    when the board was reset by its watchdog (a VM busy for a second of wall time counts
    as hung in paused time: on a loaded host, garbage collection near the limit gets
    there without running out of memory)."""
    target = EmulatedTarget(emu, BoardSpec(f"emu:{board}:{kind}"), heap_scale=scale)
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


def fits(emu, fleet, board, kind, scale):
    ok, why, watchdog = runs_at(emu, fleet, board, kind, scale)
    if not ok and watchdog:     # once more, in case the host was busy rather than the heap
        ok, why, _ = runs_at(emu, fleet, board, kind, scale)
    return ok, why


def smallest_scale(emu, fleet, board, kind):
    ok, why = fits(emu, fleet, board, kind, HIGH)
    if not ok:
        return None, why
    lo, hi = LOW, HIGH
    last_fail = "-"
    while hi - lo > STEP + 1e-9:
        mid = round((lo + hi) / 2, 3)
        ok, why = fits(emu, fleet, board, kind, mid)
        if ok:
            hi = mid
        else:
            lo, last_fail = mid, why
    return hi, last_fail


def board_dict_heap():
    """Heap the board definition takes as a dict in the VM (hal.BOARD): the whole file, and
    the device view a flashed board and the emulated firmware get."""
    import json
    from edgekit.emu.boards import device_view, load_board
    from edgekit.testing import mp
    full = load_board("esp32")
    code = ("import gc, json\ngc.collect()\na = gc.mem_alloc()\nd = json.loads(TEXT)\n"
            "gc.collect()\nprint(json.dumps(gc.mem_alloc() - a))\n")
    for name, board in (("whole file", full), ("device view", device_view(full))):
        text = json.dumps(board)
        used = mp.run_json(f"TEXT = {text!r}\n" + code)
        print(f"hal.BOARD esp32, {name:<12} {len(text):5d} B of JSON -> {used / 1024:5.1f} KB "
              "of heap")


def main(argv):
    board_dict_heap()
    wanted = set(argv)
    kinds = [k for k in apps() if not wanted or k in wanted or not wanted & set(apps())]
    boards = [b for b in BOARDS if not wanted or b in wanted or not wanted & set(BOARDS)]
    fleet = HilFleet(Path(tempfile.mkdtemp(prefix="bench-heap-")))
    print(f"{'app':<14}{'board':<9}{'needs':>7}{'headroom':>10}{'test scale':>12}  "
          "first failure below")
    with Emulator() as emu:
        for kind in kinds:
            if kind not in WORKLOADS:
                print(f"{kind:<14}(no workload of its own: the core services' one)")
            for board in boards:
                t0 = time.monotonic()
                scale, why = smallest_scale(emu, fleet, board, kind)
                if scale is None:
                    print(f"{kind:<14}{board:<9}  does not run even at {HIGH}: {why}")
                    continue
                print(f"{kind:<14}{board:<9}{scale:>7.2f}{1 - scale:>9.0%} "
                      f"{HEADROOM_SCALE[board]:>11.2f}   {why}  ({time.monotonic() - t0:.0f} s)",
                      flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
