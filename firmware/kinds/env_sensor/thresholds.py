# Threshold rules with value hysteresis (the band a reading must cross back over before an
# alarm clears), as LwM2M/IPSO sensors define them (object 3300's min/max range, the
# "Hysteresis"-style dead band of IPSO 3340-series set points). Time hysteresis (hold for N
# seconds) is the alarm engine's job (alarms.py); this module only judges one reading.
#
#   mode       sets when                 clears when
#   above      v > hi                    v < hi - hyst
#   below      v < lo                    v > lo + hyst
#   between    lo <= v <= hi             v < lo - hyst or v > hi + hyst
#   outside    v < lo or v > hi          lo + hyst <= v <= hi - hyst
# Between the set and clear lines the previous state holds, so a reading hovering at the
# threshold gives one alarm, not one per sample.
MODES = ("off", "above", "below", "between", "outside")


def judge(mode, v, lo, hi, hyst, active):
    """The new alarm condition for reading `v`, given whether the alarm is set now."""
    if mode == "off" or v is None:
        return False if mode == "off" else active
    if mode == "above":
        return v >= hi - hyst if active else v > hi
    if mode == "below":
        return v <= lo + hyst if active else v < lo
    if mode == "between":
        if active:
            return lo - hyst <= v <= hi + hyst
        return lo <= v <= hi
    if mode == "outside":
        if active:
            return not (lo + hyst <= v <= hi - hyst)
        return v < lo or v > hi
    raise ValueError("threshold mode %r: use one of %s" % (mode, ", ".join(MODES)))


def check(mode, lo, hi, hyst):
    """Reject a rule that can never clear or never set; returns an error text or None."""
    if mode == "off":
        return None
    if hyst < 0:
        return "hysteresis must be >= 0"
    if mode in ("between", "outside") and lo > hi:
        return "lo (%r) must not be above hi (%r)" % (lo, hi)
    if mode == "outside" and lo + hyst > hi - hyst:
        return "outside: the clear band lo+hyst..hi-hyst is empty; lower the hysteresis"
    return None
