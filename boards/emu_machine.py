# The emulated board's `machine` module, as mpremote and a person at the REPL use it on an
# ESP32: the unix port's own `machine` has no reset, RTC, unique_id or freq, so `mpremote
# reset` only looked like it worked and `mpremote rtc` failed. emu_launch installs this as
# sys.modules["machine"]; everything goes through the emulator HAL (hal_emu), so a hard
# reset is a cold boot of the VM on the same flash and the RTC is the board's emulated one.
# The firmware never imports it (firmware talks to the HAL; only boards/ imports machine).
import hal_emu as _hal

try:
    from umachine import mem8, mem16, mem32, soft_reset, idle  # noqa: F401 - unix built-ins
except ImportError:
    from machine import mem8, mem16, mem32, soft_reset, idle  # noqa: F401

# machine.reset_cause() values as the esp32 port numbers them.
PWRON_RESET = 1
HARD_RESET = 2
WDT_RESET = 3
DEEPSLEEP_RESET = 4
SOFT_RESET = 5
BROWNOUT_RESET = 6
_CAUSES = {"power_on": PWRON_RESET, "hard": HARD_RESET, "watchdog": WDT_RESET,
           "deep_sleep": DEEPSLEEP_RESET, "soft": SOFT_RESET, "brownout": BROWNOUT_RESET}
_EPOCH_2000 = 946684800     # what an unset ESP32 RTC reads: 2000-01-01 00:00:00


def reset():
    """Hard reset: the supervisor cold-boots the VM on the same flash (never returns)."""
    _hal.reset()


def reset_cause():
    return _CAUSES.get(_hal.reset_cause(), HARD_RESET)


def unique_id():
    return _hal.unique_id()


def freq(hz=None):
    if hz is not None:
        raise ValueError("the emulated board runs at its fixed clock")
    return 240000000 if _hal.NAME.startswith("esp32") else 125000000


def bootloader():
    raise OSError("the emulated board has no ROM bootloader: use `edgekit emu` to reflash")


def _days_from_civil(y, m, d):
    # Howard Hinnant's algorithm: days since 1970-01-01 of a proleptic Gregorian date.
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _civil(days):
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + (3 if mp < 10 else -9)
    return yoe + era * 400 + (m <= 2), m, d


class RTC:
    """datetime() -> (year, month, day, weekday 0=Monday, hour, minute, second, microsecond),
    the esp32 port's tuple; datetime(tuple) sets the board's RTC (weekday ignored)."""

    def __init__(self, rtc_id=0):
        pass

    def datetime(self, dt=None):
        if dt is None:
            t = _hal.time()
            if t is None:
                t = _EPOCH_2000
            days, s = divmod(int(t), 86400)
            y, m, d = _civil(days)
            return (y, m, d, (days + 3) % 7, s // 3600, s // 60 % 60, s % 60, 0)
        y, m, d = dt[0], dt[1], dt[2]
        h, mi, s = (dt[4], dt[5], dt[6]) if len(dt) >= 7 else (0, 0, 0)
        if not (1 <= m <= 12 and 1 <= d <= 31 and 0 <= h < 24 and 0 <= mi < 60
                and 0 <= s < 60):
            raise ValueError("RTC.datetime: (year, month, day, weekday, hour, minute, second,"
                             " subsecond) out of range")
        _hal.set_time(_days_from_civil(y, m, d) * 86400 + h * 3600 + mi * 60 + s)
        return None

    def init(self, dt):
        self.datetime(dt)
