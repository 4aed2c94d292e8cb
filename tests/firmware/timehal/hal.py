# A HAL for time tests: ticks that only move when the test jumps them, wrapping at 2**30 like
# every real port's ticks_ms, and an RTC on the same simulated clock. The link is a sink
# (frames are counted, not printed), storage is the cwd: run it inside micropython with
# edgekit.testing.mp and read results from what the script prints.
import os

from hal_common import TICKS_PERIOD, Flash, HalError, ticks_add, ticks_diff  # noqa: F401

BOARD = {"name": "esp32", "max_frame": 1024, "window": 4}
NAME = "esp32"
flash = Flash()
_sim_ms = 0         # simulated ms since this boot
_ticks0 = 0         # ticks at boot (a board's ticks need not start at 0)
_rtc_ms = None      # unix ms at _sim_ms == 0; None: the RTC is not set
_cause = "power_on"
_outputs = {}


class SinkLink:
    def __init__(self):
        self.frames = 0

    def any(self):
        return False

    def poll_ms(self, ms):
        jump(ms)
        return False

    def readinto(self, buf):
        return 0

    def write(self, data):
        self.frames += 1
        return len(data)


link = SinkLink()


def setup(ticks0=0, rtc=None, cause="power_on"):
    """A boot: ticks start at `ticks0`; `rtc` unix seconds kept by the RTC, or None (lost)."""
    global _sim_ms, _ticks0, _rtc_ms, _cause
    _sim_ms = 0
    _ticks0 = ticks0
    _rtc_ms = None if rtc is None else rtc * 1000
    _cause = cause


def jump(ms):
    global _sim_ms
    _sim_ms += int(ms)


def ticks_ms():
    return (_ticks0 + _sim_ms) & (TICKS_PERIOD - 1)


def sleep_ms(ms):
    jump(ms)


def wait(ms):
    jump(ms)
    return False


def time():
    return None if _rtc_ms is None else (_rtc_ms + _sim_ms) // 1000


def set_time(unix):
    global _rtc_ms
    _rtc_ms = int(unix) * 1000 - _sim_ms


def reset_cause():
    return _cause


def reset(*why):
    raise SystemExit(99)


def unique_id():
    return b"\xa1\xb2\xc3\xd4\xe5\xf6\x07\x18"


def random_bytes(n):
    return os.urandom(n)


def storage_root():
    return "."


def wdt_start(ms):
    pass


def wdt_feed():
    pass


def output(name, value):
    _outputs[name] = value
