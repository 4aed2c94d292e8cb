"""Simulated time: virtual (idle time skipped), paused (advance), drift, watchdog, deep sleep."""
import json
import time

import pytest

from conftest import wait_file
from edgekit.emu import EmuError

# A device that wakes every minute and records (boot count, reset cause, ticks) to its flash.
MINUTE_APP = r"""
import hal
with open("/boots.txt", "a") as f:
    f.write(hal.reset_cause() + "\n")
n = 0
while True:
    woke = hal.wait(60000)
    if woke:
        hal.link.read(64)
    n += 1
    with open("/wakes.txt", "w") as f:
        f.write("%d %d %s\n" % (n, hal.ticks_ms(), woke))
"""


def _flash_with(tmp_path, main, name="flash"):
    d = tmp_path / name
    d.mkdir()
    (d / "main.py").write_text(main)
    return d


def _wakes(flash):
    if not (flash / "wakes.txt").exists():
        return 0, 0, None
    # the board rewrites the file every wake: retry a read that caught it truncated
    text = wait_file(flash / "wakes.txt", lambda t: len(t.split()) == 3, timeout=2)
    n, ticks, woke = text.split()
    return int(n), int(ticks), woke == "True"


def test_a_simulated_day_passes_in_seconds(emu, tmp_path):
    flash = _flash_with(tmp_path, MINUTE_APP)
    b = emu.start("esp32", time="virtual", flash=flash)
    try:
        start = time.monotonic()
        b.wait_for(lambda i: i["sim_s"] > 86400, timeout=30, interval=0.05)
        wall = time.monotonic() - start
        n, ticks, _ = _wakes(flash)
        # every minute of the day really ran through the firmware: ~1440 wake-ups
        assert n >= 1439 and ticks >= 1439 * 60000
        assert wall < 30
        assert b.info()["reset_cause"] == "power_on"
    finally:
        b.stop()


def test_paused_time_moves_only_on_advance(emu, tmp_path):
    flash = _flash_with(tmp_path, MINUTE_APP)
    b = emu.start("esp32", time="paused", flash=flash)
    try:
        b.wait_for(lambda i: i["state"] == "asleep")
        t0 = b.now()
        time.sleep(0.3)
        assert b.now() == t0                     # frozen while nobody advances
        assert _wakes(flash)[0] == 0
        assert b.advance(3600) == pytest.approx(t0 + 3600, abs=0.01)
        n, ticks, woke = _wakes(flash)
        assert n == 60 and not woke              # one wake per simulated minute, in order
        assert ticks == pytest.approx(3600 * 1000, abs=100)
        # host input wakes wait() at the current simulated time, without advancing it
        port = b.serial()
        port.write(b"x")
        deadline = time.monotonic() + 5
        while _wakes(flash)[0] == 60 and time.monotonic() < deadline:
            time.sleep(0.01)
        n, ticks, woke = _wakes(flash)
        assert n == 61 and woke and ticks == pytest.approx(3600 * 1000, abs=100)
        assert b.now() == pytest.approx(t0 + 3600, abs=0.01)
        port.close()
        with pytest.raises(EmuError, match="seconds must be >= 0"):
            b.advance(-1)
    finally:
        b.stop()


def test_clock_drift_and_rtc(emu, tmp_path):
    flash = _flash_with(tmp_path, MINUTE_APP)
    b = emu.start("esp32", time="paused", flash=flash, drift_ppm=200)
    try:
        b.wait_for(lambda i: i["state"] == "asleep")
        b.set_rtc(1_800_000_000)
        b.advance(10_000)
        c = b.clock()
        # 200 ppm fast: the device counts 2 ms extra per simulated 10 s
        assert c["device_ms"] == pytest.approx(10_000_000 * 1.0002, abs=60_000 * 0.0002 + 50)
        # the RTC adds its own error (esp32.json: rtc_drift_ppm 20) to the crystal's
        assert c["rtc_drift_ppm"] == 20
        assert c["rtc"] == pytest.approx(1_800_000_000 + 10_000 * 1.00022, abs=0.05)
        n, ticks, _ = _wakes(flash)
        # the device's own minute is short by 200 ppm: it fits a few more into the span
        assert n == int(10_000 / 60 * 1.0002)
    finally:
        b.stop()


WATCHDOG_APP = r"""
import hal
with open("/boots.txt", "a") as f:
    f.write(hal.reset_cause() + "\n")
hal.wdt_start(5000)
for _ in range(3):
    hal.sleep_ms(1000)
    hal.wdt_feed()
while True:                 # a hung task: never feeds again
    hal.sleep_ms(1000)
"""

DEEPSLEEP_APP = r"""
import hal
with open("/boots.txt", "a") as f:
    f.write("%s %s\n" % (hal.reset_cause(), hal.time()))
if hal.time() is None:
    hal.set_time(1800000000)
n = len(open("/boots.txt").read().split("\n"))
if n <= 3:
    hal.deep_sleep(600000)
"""


def test_watchdog_and_deep_sleep_resets(emu, tmp_path):
    wd = _flash_with(tmp_path, WATCHDOG_APP, "wd")
    ds = _flash_with(tmp_path, DEEPSLEEP_APP, "ds")
    a = emu.start("esp32", time="virtual", flash=wd)
    b = emu.start("rp2040", time="virtual", flash=ds, bare=True)
    try:
        boots = wait_file(wd / "boots.txt", lambda t: len(t.split()) >= 3).split()
        assert boots[:3] == ["power_on", "watchdog", "watchdog"]
        # fed 3 times a second apart, then starved: reset 3 + 5 s after each boot
        assert a.now() >= 2 * 8
        lines = wait_file(ds / "boots.txt", lambda t: len(t.split("\n")) >= 4).splitlines()
        assert lines[0] == "power_on None"
        # the RTC keeps time through deep sleep: 600 s later each time
        assert lines[1] == "deepsleep 1800000600" and lines[2] == "deepsleep 1800001200"
        assert b.clock()["sim_s"] >= 1200
    finally:
        a.stop()
        b.stop()


def test_watchdog_limit_of_the_board(emu, tmp_path):
    flash = _flash_with(tmp_path, "import hal, json\n"
                        "try:\n    hal.wdt_start(20000)\nexcept hal.HalError as e:\n"
                        "    open('/err.txt', 'w').write(str(e))\n")
    b = emu.start("rp2040", flash=flash)
    try:
        assert "hardware limit of 8388 ms" in wait_file(flash / "err.txt")
    finally:
        b.stop()


WAKE_APP = r"""
import hal
hal.wake_on("tilt")
for _ in range(3):
    t0 = hal.ticks_ms()
    r = hal.wait(3000)
    w = hal.wakes()
    with open("/log.txt", "a") as f:
        f.write("%s %s %d\n" % (r, ",".join(w), hal.ticks_diff(hal.ticks_ms(), t0)))
"""


@pytest.mark.parametrize("mode", ["paused", "real"])
def test_an_armed_input_ends_a_wait_in_paused_and_real_time(emu, tmp_path, mode):
    """In real time the HAL normally waits on its own; with an input armed it must let the
    supervisor end the wait on an edge, as in simulated time."""
    (tmp_path / "main.py").write_text(WAKE_APP)
    b = emu.start("esp32", kind="smart_bin", time=mode, flash=tmp_path)
    try:
        b.wait_for(lambda i: i["wake_inputs"] == ["tilt"], timeout=10)
        if mode == "real":
            time.sleep(1.0)                 # inside the first 3 s wait
        b.set(tilt=True)
        lines = wait_file(tmp_path / "log.txt", lambda t: t.count("\n") >= 1).split("\n")
        woke, roles, ms = lines[0].split()
        assert (woke, roles) == ("True", "tilt")
        assert int(ms) < 3000
        assert b.info()["wakeups"] == 1
    finally:
        b.stop()


def test_a_driven_csv_row_wakes_the_board_at_its_own_instant(emu, tmp_path):
    """A CSV row that tilts the bin 1000 s into an hour-long sleep ends that sleep 1000 s in,
    not when the sleep would have ended (the supervisor schedules a check at each row)."""
    (tmp_path / "main.py").write_text(WAKE_APP.replace("hal.wait(3000)", "hal.wait(3600000)"))
    b = emu.start("esp32", kind="smart_bin", time="paused", flash=tmp_path)
    try:
        b.wait_for(lambda i: i["wake_inputs"] == ["tilt"], timeout=10)
        b.drive("t,tilt\n1000,true\n")
        b.advance(2000)
        first = wait_file(tmp_path / "log.txt", lambda t: t.count("\n") >= 1).split("\n")[0]
        woke, roles, ms = first.split()
        assert (woke, roles) == ("True", "tilt")
        assert abs(int(ms) - 1000000) <= 1000, ms
    finally:
        b.stop()
