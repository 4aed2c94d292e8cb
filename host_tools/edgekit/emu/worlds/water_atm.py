"""Water ATM (prepaid kiosk): a customer's card on the reader, water through a solenoid valve
and a pulse flow meter from a tank, water-quality probes, a QR scanner for vouchers.

- `card`: the number of the card on the reader (0: none); its UID is the number as 4 bytes
  big-endian. `card_present` follows it.
- Water flows at `flow_lpm` while the `valve` output is open and the tank has water (and
  `blocked` is false: a dry pump, a closed stopcock); a solenoid takes `valve_lag_s` to close,
  so water keeps coming that long after the firmware closes it (the over-run). The meter
  gives `k_factor` pulses per litre on "flow". `litres` in the snapshot is every litre that
  left the kiosk: the truth the ledger is checked against.
- Tank: `tank_l` of `tank_cap_l`, refilled at `refill_lph`; its level transducer reads
  500..4000 mV (empty..full). Probes: `tds_ppm` through the inverse of the Gravity TDS
  curve, `ntu` as 4200 mV minus 40 mV per NTU (the firmware's default calibration).
- `scan`: setting it to a text queues that code on the scanner, read once.
"""
import math

from edgekit.emu.world import World


def tds_mv(ppm):
    """Probe mV whose Gravity TDS reading (at 25 C) is `ppm` (inverse by bisection)."""
    lo, hi = 0.0, 3.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if (133.42 * mid ** 3 - 255.86 * mid ** 2 + 857.39 * mid) * 0.5 < ppm:
            lo = mid
        else:
            hi = mid
    return lo * 1000.0


class WaterAtmWorld(World):
    kind = "water_atm"
    quantities = {
        "card": 0.0, "flow_lpm": 12.0, "k_factor": 100.0, "valve_lag_s": 0.3,
        "blocked": False, "tank_l": 1000.0, "tank_cap_l": 1000.0, "refill_lph": 0.0,
        "tds_ppm": 150.0, "ntu": 0.3, "scan": "", "battery_mv": 3900.0,
    }
    units = {"flow_lpm": "L/min", "k_factor": "pulses/L", "valve_lag_s": "s", "tank_l": "L",
             "tank_cap_l": "L", "refill_lph": "L/h", "tds_ppm": "ppm", "ntu": "NTU"}

    def __init__(self, board):
        super().__init__(board)
        self.litres = 0.0
        self.closing_until = None       # world ms the closing valve still passes water
        self.scans = []
        self.outputs["valve"] = False
        self.valve_open = False

    def coerce(self, name, value):
        if name == "scan":
            return str(value)
        return super().coerce(name, value)

    def set(self, t, **values):
        super().set(t, **values)
        if self.values["scan"]:
            self.scans.append(self.values["scan"])
            self.values["scan"] = ""

    def on_output(self, role, value):
        if role == "valve":
            if self.valve_open and not value:   # closing takes the solenoid's lag
                self.closing_until = self.t + self.values["valve_lag_s"] * 1000.0
            self.valve_open = bool(value)

    def flowing_until(self, t0, t1):
        """World ms in [t0, t1) until which water flows (t0 when it does not)."""
        v = self.values
        if v["blocked"] or v["tank_l"] <= 0:
            return t0
        if self.outputs.get("valve"):
            return t1
        if self.closing_until is not None and self.closing_until > t0:
            return min(t1, self.closing_until)
        return t0

    def integrate(self, t0, t1):
        v = self.values
        end = self.flowing_until(t0, t1)
        if end > t0:
            litres = min(v["flow_lpm"] * (end - t0) / 60000.0, v["tank_l"])
            self.litres += litres
            v["tank_l"] -= litres
        if v["refill_lph"]:
            v["tank_l"] = min(v["tank_cap_l"],
                              v["tank_l"] + v["refill_lph"] * (t1 - t0) / 3600000.0)

    # Leases: with the valve shut (and done closing), the tank full or not refilling and no
    # queued scan, nothing a kiosk reads moves until a test changes the world.
    def steady_until(self, t0, t1):
        v = self.values
        if (self.valve_open or (self.closing_until is not None and self.closing_until > t0)
                or self.scans or (v["refill_lph"] and v["tank_l"] < v["tank_cap_l"])):
            return t0
        return t1

    def pulse_steps(self, role, t0, t1, limit):
        return ([], t1) if self.steady_until(t0, t1) == t1 else None

    def pulse_total(self, role):
        if role == "flow":
            return int(math.floor(self.litres * self.values["k_factor"] + 1e-9))
        return 0

    def input(self, role):
        return role == "card_present" and self.values["card"] != 0

    PURE_SENSORS = ("water",)

    def pure_read(self, name):
        # A queued code is read once; an empty queue reads None and stays empty. A kiosk
        # polls its scanner at every idle wake: this saves one round trip a wake.
        return name in self.PURE_SENSORS or (name == "scanner" and not self.scans)

    def card_uid(self):
        n = int(self.values["card"])
        return n.to_bytes(4, "big") if n else None

    def sensor(self, name):
        v = self.values
        if name == "scanner":
            return self.scans.pop(0) if self.scans else None
        if name == "water":
            tank = 500.0 + 3500.0 * v["tank_l"] / v["tank_cap_l"]
            return {"a0": int(round(tds_mv(v["tds_ppm"]))),
                    "a1": int(round(4200.0 - 40.0 * v["ntu"])), "a2": int(round(tank)),
                    "a3": 0}
        return super().sensor(name)

    def snapshot(self):
        snap = super().snapshot()
        snap.update(litres=round(self.litres, 6), scans_waiting=len(self.scans))
        return snap


WORLD = WaterAtmWorld
