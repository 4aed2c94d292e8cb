# Virtual-time `time` for the port shims: the clock is shimcore's, moved by sleeps and by
# machine.lightsleep. Wall-clock functions come from the VM's own time module.
import sys

import shimcore as _c

_path = sys.path
sys.path = []
try:
    import time as _real
finally:
    sys.path = _path
del _path

gmtime = _real.gmtime
localtime = _real.localtime
mktime = _real.mktime
_rtc_base = 1767225600


def ticks_us():
    return _c.now_us & 0x3FFFFFFF


def ticks_ms():
    return (_c.now_us // 1000) & 0x3FFFFFFF


def ticks_add(a, b):
    return (a + b) & 0x3FFFFFFF


def ticks_diff(a, b):
    return ((a - b + 0x20000000) & 0x3FFFFFFF) - 0x20000000


def sleep_ms(ms):
    _c.advance_to(_c.now_us + int(ms) * 1000)


def sleep_us(us):
    _c.advance_to(_c.now_us + int(us))


def sleep(s):
    sleep_ms(int(s * 1000))


def time():
    return _rtc_base + _c.now_us // 1000000
