# Fill level of a container from an ultrasonic distance sensor: filtered echoes, percent,
# fill speed and the forecast of when it will be full, fill events and collections.
#
# Filtering: an ultrasonic sensor in a bin sees insects, the lid edge, a bag swinging, or
# nothing at all (soft waste absorbs the ping; the part then reports its maximum range).
# Echoes outside [min_mm, depth_mm + slack] are rejected; the median of the rest is used, and
# a measurement needs a majority of good echoes or it is no measurement at all.
from array import array

from micropython import const

_MIN_MM = const(30)         # A02YYUW blind zone
_SLACK_MM = const(50)       # a floor echo slightly beyond the nominal depth is still good
_ALPHA = 0.3                # fill-speed smoothing: about the last three intervals
_RATE = const(0)
_LAST = const(1)
_LAST_T = const(2)


def median_echo(read, count, depth_mm, buf):
    """(distance mm or None, good echoes) from `count` calls of read() -> mm (or raising
    OSError); `buf` is a preallocated array of at least `count` slots."""
    n = 0
    for _ in range(count):
        try:
            d = read()
        except OSError:
            continue
        if isinstance(d, int) and _MIN_MM <= d <= depth_mm + _SLACK_MM:
            buf[n] = d
            n += 1
    if n * 2 <= count:
        return None, n
    for i in range(1, n):       # insertion sort of a handful of echoes
        v = buf[i]
        j = i - 1
        while j >= 0 and buf[j] > v:
            buf[j + 1] = buf[j]
            j -= 1
        buf[j + 1] = v
    return buf[n // 2], n


def percent(distance_mm, depth_mm, full_mm):
    """0..100: 0 at the floor, 100 when the waste reaches full_mm below the sensor."""
    if depth_mm <= full_mm:
        raise ValueError("depth_mm (%d) must be above full_mm (%d)" % (depth_mm, full_mm))
    p = 100.0 * (depth_mm - distance_mm) / (depth_mm - full_mm)
    return 0.0 if p < 0 else (100.0 if p > 100 else p)


class Trend:
    """Fill speed (% per hour, smoothed) over intervals in which only users added waste;
    an interval with a compaction or a collection restarts the baseline instead."""
    __slots__ = ("a",)

    def __init__(self):
        self.a = array("f", (0.0, -1.0, 0.0))     # rate, last fill (-1: none), its time

    def update(self, fill, t, disturbed):
        """Feed a measurement; returns the rise since the last one (0 if disturbed)."""
        a = self.a
        rise = 0.0
        if a[_LAST] >= 0 and not disturbed and t > a[_LAST_T]:
            rise = fill - a[_LAST]
            hours = (t - a[_LAST_T]) / 3600.0
            rate = (rise if rise > 0 else 0.0) / hours
            a[_RATE] = rate if a[_RATE] <= 0 else a[_RATE] + _ALPHA * (rate - a[_RATE])
        a[_LAST] = fill
        a[_LAST_T] = t
        return rise

    @property
    def rate(self):
        return self.a[_RATE]

    def hours_to(self, target, fill):
        """Hours until `target` % at the current speed; None when it is not filling."""
        r = self.a[_RATE]
        if r < 0.05:
            return None
        return 0.0 if fill >= target else (target - fill) / r

    def state(self):
        return list(self.a)

    def restore(self, st):
        if isinstance(st, list) and len(st) == 3:
            for i in range(3):
                self.a[i] = st[i]
