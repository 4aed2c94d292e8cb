# One dispense of the water ATM: ledger OPEN (durable) -> valve and pump on -> meter the flow,
# authorising water ahead of the meter in GRANT records -> stop (volume reached, card gone,
# credit used up, no flow, told to) -> valve off -> keep metering while the valve closes
# (over-run) -> ledger CLOSE with what was delivered and charged.
#
# Why grants: the flow meter's count lives in RAM; after a power cut it is gone. A GRANT is
# written before the meter reaches the previous one, so at any instant the water delivered is
# at most the last durable grant: the ledger bounds every litre even when it cannot count it.
# The valve is normally closed (a solenoid): without power, no water flows.
from array import array

from ledger import cost
from micropython import const

PRESET = "preset"
PAYF = "payf"
_MIN_ML = const(100)        # a dispense smaller than this is refused (not worth a record)
_FREE = [[0, 0]]


def affordable_ml(bands, day_ml, balance, limit_ml):
    """The most mL (<= limit) a balance pays for under the tariff (binary search: cost is
    monotonic in volume)."""
    if cost(bands, day_ml, limit_ml, True) <= balance:
        return limit_ml
    lo, hi = 0, limit_ml
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if cost(bands, day_ml, mid, True) <= balance:
            lo = mid
        else:
            hi = mid - 1
    return lo


class Dispense:
    """Runs one session at a time; `done(result)` is called after the CLOSE is durable."""

    def __init__(self, app):
        self.app = app
        self.hal = app.hal
        self.ledger = app.ledger
        self.active = False
        # ints that change every poll live in an array: [start pulses, last pulses,
        # ms of last pulse change, target mL, granted mL, mL now]
        self.n = array("i", (0, 0, 0, 0, 0, 0))
        self.uid = None
        self.mode = None
        self.balance = 0
        self.day_ml = 0
        self.reason = None
        self.bands = _FREE

    def start(self, uid, mode, balance, day_ml, limit_ml, free=False):
        """Refusal text, or None when water is flowing. `free`: a service flush, recorded
        like any dispense at no charge."""
        c = self.app.cfg
        bands = _FREE if free else self.ledger.bands
        if not free and not any(p for _, p in bands):
            return "prices are not set: the operator sets them with the prices command"
        target = affordable_ml(bands, day_ml, balance, limit_ml)
        if target < _MIN_ML:
            return "not enough credit for %d mL" % _MIN_ML
        reserved = cost(bands, day_ml, target, True)
        granted = min(c["grant_ml"], target + c["grant_ml"] // 4)
        self.ledger.begin(self.app.now_unix(), uid, mode, target, reserved, granted)
        n = self.n
        n[0] = n[1] = self.app.pulses()
        n[2] = self.hal.ticks_ms()
        n[3] = target
        n[4] = granted
        n[5] = 0
        self.uid, self.mode, self.balance, self.day_ml = uid, mode, balance, day_ml
        self.bands = bands
        self.active = True
        self.reason = None
        self.hal.output("valve", True)      # only now: the OPEN above is durable
        self.hal.output("pump", True)
        self.app.rt.sched.after("flow", c["flow_poll_ms"], self.poll)
        return None

    def _meter(self):
        n = self.n
        p = self.app.pulses()
        if p != n[1]:
            n[1] = p
            n[2] = self.hal.ticks_ms()
        n[5] = int((p - n[0]) * self.app.cfg["ml_per_pulse"])
        return n[5]

    def poll(self):
        if not self.active:
            return
        c = self.app.cfg
        n = self.n
        ml = self._meter()
        if ml >= n[3]:
            self.stop("done")
            return
        if self.mode == PAYF and self.app.card_now() != self.uid:
            self.stop("removed")
            return
        if self.hal.ticks_diff(self.hal.ticks_ms(), n[2]) >= c["no_flow_s"] * 1000:
            self.stop("no_flow")
            return
        if n[4] - ml < c["grant_ml"] // 4 and n[4] < n[3] + c["grant_ml"] // 4:
            # Authorise the next stretch before the meter gets there: a quarter grant of
            # margin must exceed the flow of one poll, and the slack past the target the
            # over-run while the valve closes (docs/apps.md).
            n[4] = min(n[4] + c["grant_ml"], n[3] + c["grant_ml"] // 4)
            self.ledger.grant(self.app.now_unix(), ml, n[4])
        self.app.rt.sched.after("flow", c["flow_poll_ms"], self.poll)

    def stop(self, reason):
        """Close the valve now; the CLOSE follows once the over-run has been metered."""
        self.hal.output("valve", False)
        self.hal.output("pump", False)
        if not self.active or self.reason is not None:
            return
        self.reason = reason
        self.app.rt.sched.cancel("flow")
        self.app.rt.sched.after("settle", self.app.cfg["settle_ms"], self._close)

    def _close(self):
        c = self.app.cfg
        n = self.n
        ml = self._meter()
        target = n[3]
        over = ml - target if ml > target else 0
        billable = ml if c["charge_overrun"] else min(ml, target)
        charged = cost(self.bands, self.day_ml, billable)
        if charged > self.balance:
            charged = self.balance      # never below zero: the kiosk absorbs the rest
        # Metered beyond the last grant (a surge): recorded as delivered, never lost.
        after = self.ledger.end(self.app.now_unix(), ml, over, charged, self.reason)
        self.active = False
        self.app.dispensed(self.uid, ml, charged, after, self.reason)
