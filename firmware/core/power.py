# The power account's arithmetic (diag "power", bench/bench_water_meter.py): small on purpose
# and apart from battery.py, whose OCV tables a meter never needs. diag imports it when
# asked: importing battery there needed a 1.3 KB block a fragmented heap did not always
# have, and importing this at start-up instead moved the heap's layout enough that an OTA
# offer then found no block for its manifest (measured in hil_tests/test_ota.py).


def charge_per_day_mah(power, awake_ms, asleep_ms):
    """Charge a board draws per day at its measured duty cycle: the share of time it was
    awake at `active_ma`, the rest in light sleep at `light_sleep_ma` (the board
    definition's currents, boards/HAL.md cites their datasheets). None without data."""
    total = awake_ms + asleep_ms
    if not power or total <= 0:
        return None
    awake_h = 24.0 * awake_ms / total
    return power["active_ma"] * awake_h + power["light_sleep_ma"] * (24.0 - awake_h)


def power_report(stats, power):
    """The HAL's measured power account (hal.power_stats()) with the charge per day it
    implies; a battery's life in days is its capacity (mAh) over that."""
    if stats is None:
        return None
    out = dict(stats)
    out["mah_per_day"] = charge_per_day_mah(power, stats["awake_ms"], stats["asleep_ms"])
    return out
