# Battery state of charge from voltage and current, a daily energy account, and the energy
# budget levels solar devices run on.
#
# State of charge: a lithium cell's open-circuit voltage (OCV) follows its charge, but the
# terminal voltage under load or charge is off by I * R_internal (0.1 V at 2 A through
# 50 mOhm: 10% of SoC on the flat part of the curve). So OCV = V - I * R (I > 0 charging),
# then SoC by interpolating the cell's OCV table. Why not coulomb counting alone: its error
# grows without bound on a device no one recalibrates for ten years; OCV has no drift.
from array import array

from micropython import const

# 1S Li-ion NMC (e.g. an INR21700 pack) at 25 C, resting, millivolts at 0, 10, ... 100% SoC
# (typical manufacturer discharge curves at C/20). Shared with the emulator's battery model
# only by being the same published curve; edgekit/emu/worlds/smart_bin.py has its own copy.
OCV_NMC = array("H", (3000, 3450, 3550, 3620, 3670, 3720, 3790, 3870, 3950, 4050, 4180))

NORMAL = const(0)
SAVING = const(1)
CRITICAL = const(2)
LEVELS = ("normal", "saving", "critical")


def soc_pct(mv, ma, r_mohm=50, table=OCV_NMC):
    """State of charge (0..100) from terminal mV and current mA (+ charging)."""
    ocv = mv - ma * r_mohm / 1000.0
    if ocv <= table[0]:
        return 0.0
    n = len(table) - 1
    for i in range(n):
        lo = table[i]
        hi = table[i + 1]
        if ocv <= hi:
            return 100.0 * (i + (ocv - lo) / (hi - lo)) / n
    return 100.0


def level(soc, saving_below, critical_below):
    """The energy budget level for a state of charge (hysteresis is the caller's)."""
    if soc < critical_below:
        return CRITICAL
    if soc < saving_below:
        return SAVING
    return NORMAL


class Ledger:
    """Charge in and out over the day (mAh) from current samples, plus known loads (a
    motor's measured run) — the daily discharge drives the days-of-reserve estimate.
    Numbers live in an array (no floats scattered on the heap)."""
    __slots__ = ("a",)
    # a: [charged today, discharged today, discharge per day (EWMA), days seen]

    def __init__(self):
        self.a = array("f", (0.0, 0.0, 0.0, 0.0))

    def sample(self, ma, seconds):
        mah = ma * seconds / 3600.0
        if mah >= 0:
            self.a[0] += mah
        else:
            self.a[1] -= mah

    def load(self, mah):
        self.a[1] += mah

    def close_day(self):
        """End of a day: fold today's discharge into the daily average (EWMA, a week)."""
        a = self.a
        if a[3] < 1:
            a[2] = a[1]
        else:
            a[2] += (a[1] - a[2]) * 0.25
        a[3] += 1
        out = (a[0], a[1])
        a[0] = 0.0
        a[1] = 0.0
        return out

    def per_day(self):
        return self.a[2] if self.a[3] >= 1 else self.a[1]

    def reserve_days(self, soc, floor_pct, capacity_mah):
        """Days until the floor at the usual discharge with no charge at all (no sun)."""
        per_day = self.per_day()
        if per_day <= 0:
            return None
        usable = (soc - floor_pct) / 100.0 * capacity_mah
        return usable / per_day if usable > 0 else 0.0

    def state(self):
        return list(self.a)

    def restore(self, st):
        if isinstance(st, list) and len(st) == 4:
            for i in range(4):
                self.a[i] = st[i]
