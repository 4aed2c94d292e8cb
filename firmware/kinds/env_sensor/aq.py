# Air-quality helpers: humidity correction of optical PM readings and reading quality flags.
#
# Optical counters (PMS5003, SDS011) size particles by the light they scatter; at high
# humidity hygroscopic particles take up water and look bigger, so the sensor over-reads.
# kappa-Koehler theory gives the mass growth factor (Crilley et al., AMT 11, 709-720, 2018,
# eq. 4, the correction sensor.community uses):
#     C(aw) = 1 + (kappa / 1.65) / (1/aw - 1),   aw = RH/100,   PM_dry = PM_measured / C
# kappa about 0.4 for urban aerosol (0.62 in Crilley's Birmingham fit). Above 95% RH the
# factor diverges and fog droplets are counted as particles, so readings there are flagged
# suspect and corrected at 95%.
from micropython import const

_RH_CAP = 95.0

Q_GOOD = const(0)
Q_SUSPECT = const(1)    # kept, but a city platform should not base a decision on it alone
Q_BAD = const(2)        # no valid value (sensor error, coverage below 75%, out of range)


def growth(rh, kappa):
    """Mass growth factor at relative humidity `rh` (%); 1.0 when dry or kappa is 0."""
    if kappa <= 0 or rh is None or rh <= 0:
        return 1.0
    aw = min(rh, _RH_CAP) / 100.0
    return 1.0 + (kappa / 1.65) / (1.0 / aw - 1.0)


def correct(pm, rh, kappa):
    """(dry PM, quality) for a PM reading taken at humidity `rh`."""
    q = Q_SUSPECT if rh is not None and rh > _RH_CAP else Q_GOOD
    return pm / growth(rh, kappa), q


def in_range(value, lo, hi):
    return value is not None and lo <= value <= hi
