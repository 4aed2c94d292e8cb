# Bounded statistics for sensor apps: running mean/min/max, energy (dB) means, the median
# filter, and hour-based rolling means with the data-coverage rule of air-quality indices.
#
# Memory: every accumulator keeps its numbers in a preallocated array('f'), so an update
# allocates nothing that outlives it. Why it matters: a float stored in an attribute is a
# heap object; replaced every sample, such long-lived floats end up scattered over the heap,
# and after an hour a 110 KB heap with 40 KB free could not find 617 contiguous bytes to sign
# a telemetry frame (measured on the emulator before this layout).
#
# Coverage rule: EU Directive 2008/50/EC Annex VII and the US EPA AQI both treat an average
# as valid only when at least 75% of its underlying values exist (45 of 60 minutes for an
# hourly mean, 6 of 8 hours for an 8-hour mean, 18 of 24 hours for a daily mean). An invalid
# average is None, never a mean of whatever happened to be there: a node that slept through
# half a day must not publish a daily mean built from the morning alone.
import math
from array import array

from micropython import const

_RING = const(24)
_N = const(0)
_SUM = const(1)
_LO = const(2)
_HI = const(3)
NAN = float("nan")
COVERAGE = 0.75


class Acc:
    """Running count, sum, min and max of one quantity over a window."""
    __slots__ = ("a",)

    def __init__(self):
        self.a = array("f", (0.0, 0.0, NAN, NAN))

    def reset(self):
        a = self.a
        a[_N] = 0.0
        a[_SUM] = 0.0
        a[_LO] = NAN
        a[_HI] = NAN

    def _minmax(self, v):
        a = self.a
        a[_N] += 1.0
        if not a[_LO] <= v:         # NaN (empty) compares false: the first value sets it
            a[_LO] = v
        if not a[_HI] >= v:
            a[_HI] = v

    def add(self, v):
        self._minmax(v)
        self.a[_SUM] += v

    @property
    def n(self):
        return int(self.a[_N])

    @property
    def lo(self):
        v = self.a[_LO]
        return None if v != v else v

    @property
    def hi(self):
        v = self.a[_HI]
        return None if v != v else v

    def mean(self):
        n = self.a[_N]
        return self.a[_SUM] / n if n else None


class EnergyAcc(Acc):
    """Levels in dB averaged on energy (LAeq = 10 log10(mean(10^(L/10))), IEC 61672-1): a
    mean of the dB numbers would understate a loud minute among quiet ones."""
    __slots__ = ()

    def add(self, level_db):
        self._minmax(level_db)
        self.a[_SUM] += math.pow(10.0, level_db / 10.0)

    def mean(self):
        n = self.a[_N]
        total = self.a[_SUM]
        if not n or total <= 0:
            return None
        return 10.0 * math.log10(total / n)


def median(values, n):
    """Median of the first `n` items of `values` (sorted in place; n >= 1)."""
    if n < 1:
        raise ValueError("median of no values")
    # Insertion sort: n is a handful of echoes, and it allocates nothing.
    for i in range(1, n):
        v = values[i]
        j = i - 1
        while j >= 0 and values[j] > v:
            values[j + 1] = values[j]
            j -= 1
        values[j + 1] = v
    mid = n // 2
    return values[mid] if n % 2 else (values[mid - 1] + values[mid]) / 2.0


class Hourly:
    """The last 24 hourly means of one quantity (NaN = that hour was invalid or missing)
    and the rolling means over the last `hours` of them under the coverage rule."""
    __slots__ = ("ring", "pos")

    def __init__(self):
        self.ring = array("f", [NAN] * _RING)
        self.pos = 0            # where the next hour goes

    def push(self, value):
        self.ring[self.pos] = NAN if value is None else value
        self.pos = (self.pos + 1) % _RING

    def skip(self, hours):
        """Hours the node did not see (asleep, powered off): they count as missing."""
        for _ in range(min(hours, _RING)):
            self.push(None)

    def mean(self, hours):
        if not 1 <= hours <= _RING:
            raise ValueError("rolling mean over 1..24 hours")
        total = 0.0
        n = 0
        for i in range(1, hours + 1):
            v = self.ring[(self.pos - i) % _RING]
            if v == v:
                total += v
                n += 1
        if n < COVERAGE * hours:
            return None
        return total / n

    # Persisted as [pos, [hour means, None for missing]]: CBOR has no NaN-free float.
    def state(self):
        return [self.pos, [None if v != v else v for v in self.ring]]

    def restore(self, st):
        if isinstance(st, list) and len(st) == 2 and isinstance(st[1], list) \
                and len(st[1]) == _RING and isinstance(st[0], int) and 0 <= st[0] < _RING:
            self.pos = st[0]
            for i in range(_RING):
                v = st[1][i]
                self.ring[i] = NAN if v is None else v


def coverage_ok(n, expected):
    """True when `n` values of an `expected` number make a valid average."""
    return expected > 0 and n >= COVERAGE * expected
