# A HAL for tests: the link is the VM's stdin/stdout pipe, time is real, storage is the cwd.
# It lets the host drive the real firmware runtime through a pipe without the emulator; the
# full board (virtual time, world, faults) is boards/hal_emu.py. reset() exits with code 99:
# the test harness restarts the VM, like a board rebooting on the same flash.
import json
import os
import sys
import time

from hal_common import Flash, HalError, StdioLink  # noqa: F401  (HalError: HAL contract)

_cfg = json.loads(os.getenv("EK_BOARD") or '{"name": "pipe", "max_frame": 1024, "window": 4}')
BOARD = _cfg
NAME = _cfg["name"]
flash = Flash()
link = StdioLink()
_rtc_offset = None
_outputs = {}
_unix = time.time      # kept: the name `time` becomes the HAL's time() below
ticks_ms = time.ticks_ms
ticks_add = time.ticks_add
ticks_diff = time.ticks_diff
sleep_ms = time.sleep_ms


def wait(ms):
    return link.poll_ms(int(ms))


def time_():
    return None if _rtc_offset is None else int(_unix()) + _rtc_offset


def set_time(unix):
    global _rtc_offset
    _rtc_offset = unix - int(_unix())


globals()["time"] = time_   # the HAL name is `time`; the module `time` is used above


def reset_cause():
    return os.getenv("EK_RESET_CAUSE") or "power_on"


def reset(reason=None):
    sys.exit(99)


def unique_id():
    return bytes.fromhex(os.getenv("EK_HWID") or "a1b2c3d4e5f60718")


def random_bytes(n):
    return os.urandom(n)


def storage_root():
    return "."


def wdt_start(ms):
    pass


def wdt_feed():
    pass


def maintenance_guard(ms):
    pass


def output(name, value):
    _outputs[name] = value


def output_state(name):
    return _outputs.get(name)
