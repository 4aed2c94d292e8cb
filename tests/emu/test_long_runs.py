"""Long runs in paused time: the watchdog counts simulated time only, a provisioned meter runs
for weeks without a reset, and the board's crystal drift moves its RTC until a sync."""
import json
import os
import subprocess
import sys

import pytest

from conftest import raw_exec, read_until, wait_file
from edgekit import catalog as C
from edgekit.hil.devices import HilFleet, provision
from edgekit.hil.targets import BoardSpec, EmulatedTarget

DAY = 86400

# Fed every simulated second; every tenth wake the board sends 30 KB on its UART, about
# 2.7 s of wall time at 115200 baud while its simulated time stands still.
CHATTY_APP = r"""
import hal
hal.wdt_start(5000)
n = 0
while True:
    hal.wait(1000)
    hal.wdt_feed()
    n += 1
    if n % 10 == 0:
        hal.link.write(b"x" * 30720)
    with open("/wakes.txt", "w") as f:
        f.write("%d" % n)
"""

HUNG_APP = r"""
import hal
hal.wdt_start(5000)
hal.wait(1000)
hal.wdt_feed()
while True:          # a task that never returns: no sleep, no feed
    pass
"""


def test_a_long_uart_write_in_paused_time_does_not_starve_the_watchdog(emu, tmp_path):
    """A board busy for seconds of wall time at frozen simulated time (its UART draining at
    the baud rate) was judged idle or hung and the advance fired its watchdog: the cause of
    the watchdog resets in week-long runs of a provisioned meter."""
    (tmp_path / "main.py").write_text(CHATTY_APP)
    b = emu.start("esp32", time="paused", flash=tmp_path)
    try:
        b.wait_for(lambda i: i["state"] == "asleep" and i["wdt_ms"] == 5000)
        b.advance(16)           # the watchdog would fire 5 s after the 10th wake's feed
        info = b.info()
        assert (info["boots"], info["reset_cause"]) == (1, "power_on"), info["resets"]
        # every simulated second ran through the firmware, the busy one included
        assert wait_file(tmp_path / "wakes.txt", lambda t: t == "16") == "16"
    finally:
        b.stop()


def test_a_hung_board_in_paused_time_still_meets_its_watchdog(emu, tmp_path):
    (tmp_path / "main.py").write_text(HUNG_APP)
    b = emu.start("esp32", time="paused", flash=tmp_path)
    try:
        b.wait_for(lambda i: i["state"] == "asleep")
        b.advance(10)           # 1 s fed, then hung: the watchdog fires 5 s after the feed
        info = b.info()
        assert info["resets"].get("watchdog", 0) >= 1 and info["boots"] >= 2
    finally:
        b.stop()


def test_the_clock_a_running_board_reads_follows_an_advance(emu):
    """The VM reads its clock locally between answers: an advance while it sits at the REPL
    must reach it (the supervisor pushes the new time)."""
    b = emu.start("esp32", time="paused", bare=True)
    try:
        port = b.serial(timeout=0.2)
        port.write(b"\r")
        read_until(port, b">>> ")           # booted, at its prompt
        raw_exec(port, "import hal")
        b.advance(100)
        ticks = int(raw_exec(port, "print(hal.ticks_ms())").strip())
        assert 100_000 <= ticks <= 100_000 * (1 + 1e-4) + 50
        b.set_rtc(1_800_000_000)
        assert raw_exec(port, "print(hal.time())").strip() == "1800000000"
        port.close()
    finally:
        b.stop()


# --- a provisioned meter, through the CLI a user has ---------------------------------------
def _cli(home, *args, check=True):
    env = dict(os.environ, EDGEKIT_HOME=str(home),
               EDGEKIT_KEY_PASSPHRASE="long runs test passphrase",
               PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    proc = subprocess.run([sys.executable, "-m", "edgekit.cli", *args], capture_output=True,
                          text=True, env=env, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"edgekit {' '.join(args)}: {proc.returncode}\n{proc.stderr}")
    return proc


def _diag(home, board_id):
    out = json.loads(_cli(home, "command", f"emu:{board_id}", "diag", "--json").stdout)
    return out["result"]


def test_a_provisioned_meter_runs_fifty_days_without_a_reset(tmp_path):
    home = tmp_path / "home"
    try:
        _cli(home, "keys", "init", "--json")
        info = json.loads(_cli(home, "emu", "start", "--board", "esp32s3_psram", "--kind",
                               "water_meter", "--time", "paused", "--json").stdout)
        board = info["id"]
        _cli(home, "provision", f"emu:{board}", "--kind", "water_meter", "--site", "lab",
             "--json")
        _cli(home, "emu", "set", board, "flow_lpm=2")
        before = _diag(home, board)
        for days in (7, 43):
            _cli(home, "emu", "advance", board, str(days * DAY))
            after = _diag(home, board)
            assert after["boots"] == before["boots"], after
            assert after["reset_cause"] != "watchdog"
        assert after["uptime_s"] >= 50 * DAY - before["uptime_s"] - 60
        listed = json.loads(_cli(home, "emu", "list", "--json").stdout)[0]
        assert "watchdog" not in listed["resets"]
    finally:
        _cli(home, "emu", "stop", "--all", check=False)


# --- RTC drift ------------------------------------------------------------------------------
T0 = 1_767_225_600          # 2026-01-01T00:00:00Z


def _tamper_event_time(dev):
    events = [p for _, p in dev.fetch_events()
              if p[C.K_NAME] == "tamper" and p[C.K_ACTIVE] is True]
    return events[-1][C.K_TIME]


def test_the_rtc_drifts_with_the_board_crystal_until_a_time_sync(tmp_path):
    """esp32's definition gives its RTC 20 ppm: a week after a TIME_SYNC the device's RTC
    (seen in the time it stamps on an alarm) is about 12 s ahead of the host's; a TIME_SYNC
    sets it right."""
    from edgekit.emu import Emulator
    fleet = HilFleet(tmp_path)
    with Emulator() as emu:
        target = EmulatedTarget(emu, BoardSpec("emu:esp32:water_meter"), time_mode="paused")
        b = target.handle
        ppm = b.clock()["rtc_drift_ppm"]
        assert ppm == 20
        dev = provision(target, fleet, "water_meter")
        dev.session.request(C.TIME_SYNC, {C.K_TIME: T0}, expect=C.TIME)
        synced_at = b.now()
        b.advance(7 * DAY)
        b.set(tamper=True)          # wakes the meter at this instant: the alarm's time
        truth = T0 + (b.now() - synced_at)
        b.advance(1)
        ahead = _tamper_event_time(dev) - truth
        assert ahead == pytest.approx(7 * DAY * ppm * 1e-6, abs=1.0)     # ~12 s fast
        # the host corrects it; the next alarm is stamped on time
        truth = T0 + round(b.now() - synced_at)
        dev.session.request(C.TIME_SYNC, {C.K_TIME: truth}, expect=C.TIME)
        synced_at, T1 = b.now(), truth
        b.set(tamper=False)
        b.advance(600)
        b.set(tamper=True)
        truth = T1 + (b.now() - synced_at)
        b.advance(1)
        assert _tamper_event_time(dev) - truth == pytest.approx(0, abs=1)
        dev.close()
