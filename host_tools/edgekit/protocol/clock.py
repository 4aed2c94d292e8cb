"""Keep a device's clock right whenever an operator session opens (SPEC 8.4): `provision`,
`command`, `monitor` and `ota push`/`campaign` measure the device's clock from the CAPS of
the session's HELLO, send a signed TIME_SYNC when it has no time (CAPS K_TIME null: never
synced, or its RTC lost in a power cut) or is off by more than the allowed drift, and record
the measured drift in the registry.

The allowed drift is EDGEKIT_MAX_DRIFT_S seconds (default 2); `off` never syncs (a bench
that keeps a board on a simulated date).
"""
import math
import os
import sys
import time

from edgekit import catalog as C
from edgekit.errors import EdgekitError, ProtocolError

MAX_DRIFT_ENV = "EDGEKIT_MAX_DRIFT_S"
DEFAULT_MAX_DRIFT_S = 2.0


def max_drift():
    """Allowed drift in seconds from the environment, or None (`off`: never sync)."""
    text = os.environ.get(MAX_DRIFT_ENV, "").strip()
    if not text:
        return DEFAULT_MAX_DRIFT_S
    if text.lower() == "off":
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise EdgekitError(f"{MAX_DRIFT_ENV}={text!r}: give the allowed clock drift in seconds "
                           "(e.g. 2), or off")
    return value


def drift(last_hello):
    """Seconds the device clock is ahead (+) of the host's, from a (CAPS, sent, answered)
    triple; None when the device has no time. The device reads its clock, in whole seconds,
    between the two host times: the estimate is within half a second plus half the round
    trip."""
    caps, sent, answered = last_hello
    t = caps.get(C.K_TIME)
    if not isinstance(t, int) or isinstance(t, bool):
        return None
    return round(t + 0.5 - (sent + answered) / 2, 3)


def ensure(session, registry=None, device_id=None, limit="env"):
    """Sync the device behind `session` (operator-signed) if its clock needs it. Returns
    {"drift_s": measured or None, "synced": bool}; records the drift in `registry`."""
    limit = max_drift() if limit == "env" else limit
    if session.last_hello is None:
        session.hello()
    measured = drift(session.last_hello)
    synced = False
    if limit is not None and (measured is None or abs(measured) > limit):
        try:
            # Rounded: the device starts its second at the instant it takes the time.
            session.request(C.TIME_SYNC, {C.K_TIME: int(round(time.time()))}, expect=C.TIME)
            synced = True
        except ProtocolError as exc:    # the operator's command still goes on: say so
            print(f"edgekit: warning: {device_id or 'device'}: clock not synced: {exc}",
                  file=sys.stderr)
    if registry is not None and device_id is not None:
        registry.record_clock(device_id, measured)
        if synced:
            registry.record_event(device_id, "clock_synced", {"drift_s": measured})
    return {"drift_s": measured, "synced": synced}
