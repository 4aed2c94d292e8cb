# Water quality and tank level from probe voltages (the ADS1115 channels of the "water"
# sensor, boards/HAL.md).
#
# TDS: the conductivity probe's voltage through the cubic fit DFRobot publishes for its
# Gravity TDS meter (SEN0244), temperature-compensated to 25 C (2%/C, the usual coefficient
# for natural water), times the 0.5 TDS factor. Turbidity: optical probes (SEN0189 and the
# like) give less voltage for murkier water; near clear water the curve is close to linear,
# so a two-point calibration (mV at 0 NTU, mV per NTU) is what a technician sets.


def tds_ppm(mv, temp_c=25.0):
    v = mv / 1000.0 / (1.0 + 0.02 * (temp_c - 25.0))
    ppm = (133.42 * v * v * v - 255.86 * v * v + 857.39 * v) * 0.5
    return ppm if ppm > 0 else 0.0


def ntu(mv, zero_mv, mv_per_ntu):
    n = (zero_mv - mv) / mv_per_ntu
    return n if n > 0 else 0.0


def level_pct(mv, empty_mv, full_mv):
    if full_mv == empty_mv:
        raise ValueError("tank calibration: full_mv must differ from empty_mv")
    p = 100.0 * (mv - empty_mv) / (full_mv - empty_mv)
    return 0.0 if p < 0 else (100.0 if p > 100 else p)
