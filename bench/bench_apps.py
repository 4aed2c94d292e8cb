"""Figures of the environmental node, the smart bin and the water ATM on emulated boards:
peak heap (the smallest share of the board's heap the app's workload runs in), awake time
per day and estimated battery life.

    python bench/bench_apps.py                 # everything, esp32 and rp2040
    python bench/bench_apps.py energy          # only the energy figures (faster)
    python bench/bench_apps.py heap smart_bin  # filter by part, kind and/or board

Heap: bench/bench_heap.py's bisection of heap_scale (the VM gets board heap * scale + the
frozen-firmware allowance) over the workloads of hil_tests/test_heap_headroom.py (env node)
and hil_tests/kinds_workloads.py (bin, kiosk); `needs` is the smallest scale that ran the
whole workload without a reboot, failed task or refused answer.

Energy model (the same as bench/bench_water_meter.py, printed with the figures):
- awake time = the scheduler's per-task CPU time measured on this host x the board's
  `cpu_factor` (boards/*.json: how much slower MicroPython runs there) + the UART time of
  what the device sent (11.52 bytes/ms at 115200 baud);
- charge per day = `active_ma` while awake + `light_sleep_ma` otherwise (the HAL sleeps
  lightly so the link stays live) + the peripherals each app powers, from the world model's
  own account: the PMS5003 (100 mA while its supply is on, datasheet), the bin's modem
  (mAh per session) and press (integrated motor current), the kiosk's solenoid and pump are
  mains-powered and not counted;
- battery: env node 2 x 18650 (6.8 Ah), bin a 4 Ah cell (days without any sun), kiosk a 2 Ah
  backup cell for the controller (hours it keeps the ledger and reader alive on a cut).
A day is simulated with the default configuration; no asserts, the figures are printed.
"""
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "hil_tests"))
sys.path.insert(0, str(HERE))

from edgekit import catalog as C  # noqa: E402
from edgekit.emu import Emulator  # noqa: E402
from edgekit.board_defs import load_board  # noqa: E402
from edgekit.hil.devices import HilFleet, provision  # noqa: E402
from edgekit.hil.targets import BoardSpec, EmulatedTarget  # noqa: E402

KINDS = ("env_sensor", "smart_bin", "water_atm")
BOARDS = ("esp32", "rp2040")
DAYS = int(os.environ.get("EDGEKIT_BENCH_DAYS", "1"))
T0 = 1767225600
PMS5003_MA = 100.0
BATTERY = {"env_sensor": (6800.0, "2 x 18650"), "smart_bin": (4000.0, "4 Ah cell, no sun"),
           "water_atm": (2000.0, "2 Ah backup cell")}


def env_day(target, dev):
    w, clock = target.world, target.clock
    for hour in range(24):
        w.set(pm25=20 + 3 * (hour % 8), temp_c=12 + hour / 3, noise_dba=50 + hour % 12)
        clock.advance(3600)


def bin_day(target, dev):
    w, clock = target.world, target.clock
    w.set(fill_lph=0)
    clock.advance(7 * 3600)
    w.set(fill_lph=12)
    clock.advance(15 * 3600)
    w.set(fill_lph=0)
    clock.advance(2 * 3600)


def atm_day(target, dev):
    """Sixty 20 L jerrycans between 6:00 and 20:00 (a busy kiosk)."""
    w, clock = target.world, target.clock
    w.set(refill_lph=80)                # the borehole pump keeps the tank up
    clock.advance(6 * 3600)
    for n in range(60):
        w.set(card=0x0A000001 + n % 5)
        clock.advance(110)
        w.set(card=0)
        clock.advance(14 * 3600 / 60 - 110)
    clock.advance(4 * 3600)


def atm_setup(dev):
    dev.command("prices", bands=[[20, 5000], [0, 9000]])
    for n in range(1, 6):
        dev.command("card", uid="0a0000%02x" % n, role="water")
        dev.command("credit", uid="0a0000%02x" % n, amount=5000)


DAYS_OF = {"env_sensor": env_day, "smart_bin": bin_day, "water_atm": atm_day}


def energy(emu, fleet, board, kind):
    power = load_board(board)["power"]
    target = EmulatedTarget(emu, BoardSpec(f"emu:{board}:{kind}"))
    try:
        dev = provision(target, fleet, kind)
        dev.session.request(C.TIME_SYNC, {C.K_TIME: T0}, expect=C.TIME)
        if kind == "water_atm":
            atm_setup(dev)
        world0 = target.world.snapshot()
        before = dev.command("diag")
        tx0 = target.handle.link_stats()["tx"]
        wall = time.monotonic()
        for _ in range(DAYS):
            DAYS_OF[kind](target, dev)
            dev.drain_telemetry()
        wall = time.monotonic() - wall
        after = dev.command("diag")
        world = target.world.snapshot()
        sent = target.handle.link_stats()["tx"] - tx0
    finally:
        target.close()
    cpu_ms = sum(t[2] - (before["energy"]["tasks"].get(n) or [0, 0, 0])[2]
                 for n, t in after["energy"]["tasks"].items()) / 1000.0 / DAYS
    awake_ms = cpu_ms * power["cpu_factor"] + sent / DAYS / 11.52
    awake_h = awake_ms / 3.6e6
    mcu = power["active_ma"] * awake_h + power["light_sleep_ma"] * (24 - awake_h)
    extra, what = 0.0, ""
    if kind == "env_sensor":
        on_h = (world["pm_on_s"] - world0["pm_on_s"]) / 3600.0 / DAYS
        extra, what = PMS5003_MA * on_h, f"PMS5003 on {on_h * 60:.0f} min/day"
    elif kind == "smart_bin":
        sessions = (world["modem_sessions"] - world0["modem_sessions"]) / DAYS
        modem = sessions * world["values"]["modem_mah"]
        motor = (world["motor_mah"] - world0["motor_mah"]) / DAYS
        extra = modem + motor
        what = f"modem {sessions:.0f} sessions {modem:.0f} mAh, press {motor:.0f} mAh"
    else:
        what = f"{(world['litres'] - world0['litres']) / DAYS:.0f} L/day dispensed; valve, " \
               "pump: mains"
    per_day = mcu + extra
    cap, cell = BATTERY[kind]
    life = cap / per_day
    life_text = f"{life * 24:.0f} h" if kind == "water_atm" else f"{life:.0f} days"
    tasks = ", ".join(f"{n} {t[0] // DAYS}" for n, t in sorted(after["energy"]["tasks"].items())
                      if t[0])
    print(f"{kind:<11}{board:<8}{awake_ms / 1000:>9.1f} s{mcu:>9.1f}{extra:>9.1f}{per_day:>9.1f}"
          f"  {life_text:>9} on {cell}; {what}; {DAYS} day(s) in {wall:.0f} s wall")
    print(f"{'':<19}runs/day: {tasks}; sent {sent / DAYS:.0f} B/day", flush=True)


def heap(emu, fleet, board, kind):
    import bench_heap
    from kinds_workloads import WORKLOADS as MINE
    bench_heap.WORKLOADS.update(MINE)
    t0 = time.monotonic()
    scale, why = bench_heap.smallest_scale(emu, fleet, board, kind)
    if scale is None:
        print(f"{kind:<11}{board:<8}  does not run even at {bench_heap.HIGH}: {why}")
        return
    kb = float(load_board(board)["heap"].rstrip("K")) * scale
    print(f"{kind:<11}{board:<8}{scale:>7.2f}{kb:>8.0f} KB{1 - scale:>9.0%}   first failure "
          f"below: {why} ({time.monotonic() - t0:.0f} s)", flush=True)


def main(argv):
    wanted = set(argv)
    parts = [p for p in ("heap", "energy") if not wanted & {"heap", "energy"} or p in wanted]
    kinds = [k for k in KINDS if not wanted & set(KINDS) or k in wanted]
    boards = [b for b in BOARDS if not wanted & set(BOARDS) or b in wanted]
    fleet = HilFleet(Path(tempfile.mkdtemp(prefix="bench-apps-")))
    with Emulator() as emu:
        if "heap" in parts:
            print("peak heap: smallest share of the board's heap the workload runs in")
            print(f"{'app':<11}{'board':<8}{'needs':>7}{'':>11}{'headroom':>9}")
            for kind in kinds:
                for board in boards:
                    heap(emu, fleet, board, kind)
        if "energy" in parts:
            print(f"\nenergy, default configuration, {DAYS} simulated day(s) (model in the "
                  "docstring)")
            print(f"{'app':<11}{'board':<8}{'awake/day':>11}{'MCU mAh':>9}{'periph':>9}"
                  f"{'total':>9}  battery")
            for kind in kinds:
                for board in boards:
                    energy(emu, fleet, board, kind)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
