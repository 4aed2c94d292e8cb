"""Water meter figures on emulated boards: flash writes per day, awake time per day and the
estimated battery life for the default schedule.

Method (printed with the figures):
- A provisioned meter with the default config lives a simulated week of household use; a
  gateway collects and acknowledges telemetry once a day.
- Flash operations come from the device's own flash seam counter (`diag`), per simulated day.
- Asleep and awake: the HAL's own power account (`diag` "power", hal.power_stats()), which
  books each wait() the way the real HAL spends it: in light sleep, except for the
  LINK_LINGER_MS after link input, when a board stays awake polling for the host's resend.
  The emulator's clock stands still while code runs, so the tasks' CPU time is added as
  measured on this host times the board's `cpu_factor` (boards/*.json), plus the UART
  transmit time of what the device sent.
- Battery: a 19 Ah lithium D cell (the usual water-meter primary cell), at the board's
  `active_ma` while awake and `light_sleep_ma` asleep (boards/*.json; boards/HAL.md cites
  the datasheets), computed by the firmware's own power.charge_per_day_mah. Deep sleep
  with the ULP counting pulses would last far longer; the firmware does not do that.
No asserts: the figures are printed.
"""
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from edgekit import catalog as C
from edgekit.emu import Emulator
from edgekit.hil.devices import HilFleet, provision
from edgekit.hil.targets import BoardSpec, EmulatedTarget
from edgekit.testing import mp

DAYS = int(os.environ.get("EDGEKIT_BENCH_DAYS", "7"))
BATTERY_MAH = 19000.0
HOUSEHOLD = [(6, 9, 12), (7, 9, 10), (9, 12, 25), (12, 4, 10), (18, 4, 20), (19, 18, 30),
             (21, 9, 8)]


def live_a_day(target):
    clock, world = target.clock, target.world
    start = clock.now()
    for hour, lpm, minutes in HOUSEHOLD:
        clock.advance(start + hour * 3600 - clock.now())
        world.set(flow_lpm=lpm)
        clock.advance(minutes * 60)
        world.set(flow_lpm=0)
    clock.advance(start + 86400 - clock.now())


def measure(emu, fleet, board_name):
    target = EmulatedTarget(emu, BoardSpec(f"emu:{board_name}:water_meter"))
    try:
        dev = provision(target, fleet, "water_meter")
        dev.session.request(C.TIME_SYNC, {C.K_TIME: 1767225600}, expect=C.TIME)
        before = dev.command("diag")
        tx_before = target.handle.link_stats()["tx"]
        wall = time.monotonic()
        for _ in range(DAYS):
            live_a_day(target)
            dev.drain_telemetry()
        wall = time.monotonic() - wall
        after = dev.command("diag")
        sent = target.handle.link_stats()["tx"] - tx_before
        return before, after, wall, sent, target.handle.info()
    finally:
        target.close()


def charge_per_day(power, awake_ms, asleep_ms):
    """The firmware's own formula (firmware/core/power.py), run in the MicroPython VM."""
    return mp.run_json("import power, json\nprint(json.dumps(power.charge_per_day_mah("
                       f"{json.dumps(power)}, {awake_ms!r}, {asleep_ms!r})))")


def main():
    with Emulator() as emu:
        fleet = HilFleet(Path(tempfile.mkdtemp()))
        for board_name in ("esp32", "rp2040"):
            from edgekit.board_defs import load_board
            power = load_board(board_name)["power"]
            before, after, wall, sent, info = measure(emu, fleet, board_name)
            ops = (after["flash_ops"] - before["flash_ops"]) / DAYS
            tasks = after["energy"]["tasks"]
            cpu_ms = sum(t[2] for t in tasks.values()) / 1000.0 / DAYS
            tx_bytes = sent / DAYS                 # bytes the board sent to the host
            p0, p1 = before["power"], after["power"]
            elapsed = p1["elapsed_ms"] - p0["elapsed_ms"]
            linger_ms = (p1["awake_ms"] - p0["awake_ms"]) * 86400000.0 / elapsed
            awake_ms = linger_ms + cpu_ms * power["cpu_factor"] + tx_bytes / 11.52
            per_day_mah = charge_per_day(power, awake_ms, 86400000.0 - awake_ms)
            years = BATTERY_MAH / per_day_mah / 365
            print(f"{board_name}: water meter, default config, {DAYS} simulated days "
                  f"in {wall:.1f} s wall")
            print(f"  flash operations per day      {ops:8.1f}  (write/rename/remove through "
                  f"the flash seam; docs/flash-wear.md turns them into block erases)")
            print(f"  task CPU time per day (host)  {cpu_ms:8.1f} ms   runs: " + ", ".join(
                f"{n} {t[0] // DAYS}" for n, t in sorted(tasks.items())))
            print(f"  HAL power account per day     {linger_ms / 1000:8.1f} s awake for the link, "
                  f"{(p1['sleeps'] - p0['sleeps']) / DAYS:.0f} light sleeps")
            print(f"  awake per day on the board    {awake_ms / 1000:8.1f} s  (+ x{power['cpu_factor']}"
                  f" CPU factor + {tx_bytes:.0f} B/day on the UART)")
            print(f"  charge per day                {per_day_mah:8.2f} mAh (active "
                  f"{power['active_ma']} mA, light sleep {power['light_sleep_ma']} mA)")
            print(f"  battery life, {BATTERY_MAH / 1000:.0f} Ah cell      {years:8.1f} years "
                  f"(light sleep dominates: {power['light_sleep_ma'] * 24:.1f} mAh/day)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
