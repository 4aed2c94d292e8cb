# SenML (RFC 8428) records with CBOR labels (section 6). Units are from the SenML units
# registry (RFC 8428 section 12.1, RFC 8798): m3, m3/s, l, l/s, Cel, %RH, V, %EL, ug/m3,
# ppm, dB, NTU, count, %, A, W, Wh, mm, s, lat, lon.
#
# Time: when the device clock has been synced, records carry absolute unix time via the
# base time; when not, times are relative (RFC 8428 4.5.3: a negative time is seconds before
# "now", i.e. before the pack is sent), computed from device time (SPEC 8.4: seconds counted
# across reboots, never wrapping, never going back), so they resolve in order.
import catalog as C

UNITS = ("m3", "m3/s", "l", "l/s", "Cel", "%RH", "V", "%EL", "ug/m3", "ppm", "dB", "dBA",
         "NTU", "count", "%", "A", "W", "Wh", "mm", "s", "lat", "lon", "m", "hPa", "mV",
         "S/m", "/")


def record(name, value=None, unit=None, t=None, s=None, vb=None, vs=None):
    r = {C.SENML_N: name}
    if unit is not None:
        if unit not in UNITS:
            raise ValueError("unit not in the SenML registry: " + unit)
        r[C.SENML_U] = unit
    if value is not None:
        r[C.SENML_V] = value
    if vb is not None:
        r[C.SENML_VB] = vb
    if vs is not None:
        r[C.SENML_VS] = vs
    if s is not None:
        r[C.SENML_S] = s
    if t is not None:
        r[C.SENML_T] = t
    return r


def pack(base_name, records, base_time=None):
    """Records share the base name (the device URN) once, in the first record."""
    if not records:
        return []
    first = dict(records[0])
    first[C.SENML_BN] = base_name
    if base_time is not None:
        first[C.SENML_BT] = base_time
    return [first] + list(records[1:])


def stamp(at_unix, at_device_s, now_unix, now_device_s):
    """The `t` of a record taken at (at_unix or None, at_device_s), sent now. Absolute when
    both moments are on a synced clock, otherwise relative (negative seconds ago)."""
    if at_unix is not None and now_unix is not None:
        return at_unix
    ago = now_device_s - at_device_s
    return -ago if ago > 0 else 0
