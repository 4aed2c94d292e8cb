"""Water meter: flow through a pulse-output meter (both directions), leak, burst, tamper
magnet, latching valve, battery.

Flow is integrated exactly between changes: litres = sum(rate_lpm * minutes). The pulse
pins count `k_factor` pulses per litre, forward on "flow" and reverse on "flow_rev" (the
dual-reed direction detection of residential meters). A closed valve stops every flow,
leaks and bursts included: they are downstream of it.
"""
import math

from edgekit.emu.world import World

_DAY_MS = 86400000.0


class WaterMeterWorld(World):
    kind = "water_meter"
    quantities = {
        "flow_lpm": 0.0,            # consumer demand, L/min; negative = reverse flow
        "leak_lpm": 0.0,            # e.g. 0.05: a dripping toilet, always on
        "burst_lpm": 0.0,           # e.g. 80: a burst pipe
        "k_factor": 1.0,            # pulses per litre of the meter's reed output
        "tamper": False,            # a magnet held against the meter
        "battery_mv": 3600.0,       # lithium primary cell
        "battery_drain_mv_per_day": 0.0,
    }
    units = {"flow_lpm": "L/min", "leak_lpm": "L/min", "burst_lpm": "L/min",
             "k_factor": "pulses/L", "battery_mv": "mV", "battery_drain_mv_per_day": "mV/day"}

    def __init__(self, board):
        super().__init__(board)
        self.litres_fwd = 0.0
        self.litres_rev = 0.0
        self.outputs["valve"] = True    # latching valve: ships open

    def flow_lpm(self):
        if not self.outputs.get("valve", True):
            return 0.0
        v = self.values
        return v["flow_lpm"] + v["leak_lpm"] + v["burst_lpm"]

    def integrate(self, t0, t1):
        minutes = (t1 - t0) / 60000.0
        q = self.flow_lpm()
        if q > 0:
            self.litres_fwd += q * minutes
        elif q < 0:
            self.litres_rev -= q * minutes
        drain = self.values["battery_drain_mv_per_day"]
        if drain:
            self.values["battery_mv"] = max(0.0, self.values["battery_mv"]
                                            - drain * (t1 - t0) / _DAY_MS)

    def pulse_total(self, role):
        k = self.values["k_factor"]
        if role == "flow":
            # a hair of tolerance: 2 L at k=1 must be 2 pulses, not 1.9999999
            return int(math.floor(self.litres_fwd * k + 1e-9))
        if role == "flow_rev":
            return int(math.floor(self.litres_rev * k + 1e-9))
        return 0

    def input(self, role):
        return self.values["tamper"] if role == "tamper" else False

    # Leases: every read is constant between changes (set, driven rows, the valve, all of
    # which end a lease) but the pulse counters, whose crossings follow from the flow.
    def steady_until(self, t0, t1):
        return t0 if self.values["battery_drain_mv_per_day"] else t1

    def pulse_steps(self, role, t0, t1, limit):
        q = self.flow_lpm()
        if role == "flow":
            litres, lpm = self.litres_fwd, q
        elif role == "flow_rev":
            litres, lpm = self.litres_rev, -q
        else:
            return [], t1
        k = self.values["k_factor"]
        if lpm <= 0 or k <= 0:
            return [], t1
        n = self.pulse_total(role)
        out = []
        while True:
            # the instant litres * k + 1e-9 (pulse_total) reaches n + 1
            t = t0 + ((n + 1 - 1e-9) / k - litres) / lpm * 60000.0
            if t > t1:
                return out, t1
            if len(out) == limit:
                return out, t
            out.append(t)
            n += 1

    def snapshot(self):
        snap = super().snapshot()
        snap.update(litres_fwd=round(self.litres_fwd, 6), litres_rev=round(self.litres_rev, 6),
                    flow_now_lpm=self.flow_lpm())
        return snap


WORLD = WaterMeterWorld
