"""Solar smart bin: waste filling a container, a compaction press, the sun on a panel, a 1S
Li-ion battery, lid and tilt switches, the temperature inside (fire).

- Waste arrives as loose volume (`fill_lph`, litres per hour); the press turns loose waste
  into packed waste at `compaction_ratio` while the `motor` output runs (a full stroke takes
  `stroke_s`), drawing `motor_ma` from the battery, more as the bin packs; with `jam` set it
  stalls at `stall_ma` and compacts nothing. `collect=true` empties the bin (a truck).
- The ultrasonic sensor ("distance") sees the waste surface: depth minus the waste height,
  whole millimetres; `echo_outliers` is the share of readings that are bad echoes (an
  insect, the lid edge: a few mm; no echo at all: the part's 4500 mm maximum).
- Sun: `sun_w` peak panel watts times `cloud` (1 clear .. 0.03 dark overcast) on a half-sine
  from `sunrise_h` to `sunset_h` (hour of day = `tod0_h` at world time 0); the charger puts
  `charge_eff` of it into the battery until full.
- Battery: `battery_mah` capacity, state of charge `battery_soc` (%), drained by `base_ma`
  (the electronics' average), the motor, and `modem_mah` per modem session (each rising edge
  of the `relay` output, which powers the cellular modem). The "power" sensor (an INA219 on
  the battery) reads terminal mV = OCV(SoC) + I * 50 mOhm and the net current I (+ charging);
  the same OCV curve as firmware/kinds/smart_bin/battery.py (a published NMC curve).
"""
import math
import random

from edgekit.emu.world import World

_OCV = (3000, 3450, 3550, 3620, 3670, 3720, 3790, 3870, 3950, 4050, 4180)
_R_OHM = 0.05
_STEP_MS = 300000.0          # integration step: sun and battery change slowly


def ocv_mv(soc):
    soc = min(100.0, max(0.0, soc))
    i = min(int(soc // 10), 9)
    return _OCV[i] + (_OCV[i + 1] - _OCV[i]) * (soc - 10 * i) / 10.0


class SmartBinWorld(World):
    kind = "smart_bin"
    quantities = {
        "depth_mm": 1000.0, "volume_l": 240.0, "fill_lph": 0.0, "compaction_ratio": 3.0,
        "stroke_s": 20.0, "motor_ma": 3000.0, "stall_ma": 9000.0, "jam": False,
        "collect": False, "echo_outliers": 0.0, "temp_c": 18.0, "lid": False, "tilt": False,
        "sun_w": 10.0, "cloud": 1.0, "tod0_h": 0.0, "sunrise_h": 6.0, "sunset_h": 18.0,
        "charge_eff": 0.8, "battery_mah": 4000.0, "battery_soc": 80.0, "base_ma": 10.0,
        "modem_mah": 2.0,
    }
    units = {"depth_mm": "mm", "volume_l": "L", "fill_lph": "L/h", "compaction_ratio": "x",
             "stroke_s": "s", "motor_ma": "mA", "stall_ma": "mA", "temp_c": "Cel",
             "sun_w": "W", "cloud": "", "tod0_h": "h", "sunrise_h": "h", "sunset_h": "h",
             "charge_eff": "", "battery_mah": "mAh", "battery_soc": "%", "base_ma": "mA",
             "modem_mah": "mAh", "echo_outliers": ""}

    def __init__(self, board):
        super().__init__(board)
        self.loose_l = 0.0
        self.packed_l = 0.0
        self.rng = random.Random(3435)      # uCIFI's waste container object, as a seed
        self.soc_min = self.values["battery_soc"]
        self.collections = 0
        self.motor_s = 0.0
        self.modem_sessions = 0
        self.solar_mah = 0.0
        self.load_mah = 0.0
        self.motor_mah = 0.0

    # --- stimuli ----------------------------------------------------------------------------
    def set(self, t, **values):
        super().set(t, **values)
        if "battery_soc" in values:
            self.soc_min = min(self.soc_min, self.values["battery_soc"])
        if self.values["collect"]:
            self.loose_l = self.packed_l = 0.0
            self.collections += 1
            self.values["collect"] = False

    def on_output(self, role, value):
        if role == "relay" and value:
            self._drain(self.values["modem_mah"])
            self.modem_sessions += 1

    # --- physics ----------------------------------------------------------------------------
    def sun_w(self, t_ms):
        v = self.values
        h = (v["tod0_h"] + t_ms / 3600000.0) % 24.0
        rise, down = v["sunrise_h"], v["sunset_h"]
        if not rise < h < down:
            return 0.0
        return v["sun_w"] * v["cloud"] * math.sin(math.pi * (h - rise) / (down - rise))

    def motor_on(self):
        return bool(self.outputs.get("motor"))

    def load_ma(self):
        v = self.values
        ma = v["base_ma"]
        if self.motor_on():
            ma += v["stall_ma"] if v["jam"] else v["motor_ma"] * (0.5 + 0.5 * self.full_frac())
        return ma

    def charge_ma(self, t_ms):
        if self.values["battery_soc"] >= 100.0:
            return 0.0
        return self.sun_w(t_ms) * self.values["charge_eff"] / 3.7 * 1000.0

    def full_frac(self):
        return min(1.0, (self.loose_l + self.packed_l) / self.values["volume_l"])

    def _drain(self, mah):
        v = self.values
        v["battery_soc"] = max(0.0, v["battery_soc"] - mah / v["battery_mah"] * 100.0)
        self.load_mah += mah
        self.soc_min = min(self.soc_min, v["battery_soc"])

    def integrate(self, t0, t1):
        v = self.values
        t = t0
        while t < t1:
            dt = min(_STEP_MS, t1 - t)
            h = dt / 3600000.0
            mid = t + dt / 2.0
            charge = self.charge_ma(mid) * h
            load = self.load_ma() * h
            self.solar_mah += charge
            self.load_mah += load
            v["battery_soc"] = min(100.0, max(0.0, v["battery_soc"]
                                              + (charge - load) / v["battery_mah"] * 100.0))
            self.soc_min = min(self.soc_min, v["battery_soc"])
            room = v["volume_l"] - self.loose_l - self.packed_l
            self.loose_l += min(max(0.0, room), v["fill_lph"] * h)
            if self.motor_on():
                self.motor_s += dt / 1000.0
                self.motor_mah += (self.load_ma() - v["base_ma"]) * h
                if not v["jam"] and self.loose_l > 0:
                    moved = self.loose_l * min(1.0, dt / 1000.0 / v["stroke_s"])
                    self.loose_l -= moved
                    self.packed_l += moved / v["compaction_ratio"]
            t += dt

    # --- what the HAL reads -----------------------------------------------------------------
    def waste_mm(self):
        v = self.values
        return self.full_frac() * v["depth_mm"]

    def sensor(self, name):
        v = self.values
        if name == "distance":
            if self.rng.random() < v["echo_outliers"]:
                return self.rng.choice([self.rng.randint(20, 60), 4500])
            return int(round(v["depth_mm"] - self.waste_mm()))
        if name == "env":
            return {"temp_c": round(v["temp_c"], 2), "rh": 60.0}
        if name == "power":
            ma = self.charge_ma(self.t) - self.load_ma()
            return {"mv": int(round(ocv_mv(v["battery_soc"]) + ma * _R_OHM)),
                    "ma": int(round(ma))}
        if name == "motor":
            return {"ma": int(round(self.load_ma() - v["base_ma"]))}
        return super().sensor(name)

    def adc_mv(self, role):
        if role == "battery":
            return ocv_mv(self.values["battery_soc"])
        if role == "solar":
            p = self.sun_w(self.t)
            return 6000.0 + 1000.0 * p / max(self.values["sun_w"], 0.1) if p > 0 else 0.0
        return 0.0

    def input(self, role):
        if role in ("lid", "tilt"):
            return self.values[role]
        return False

    def snapshot(self):
        snap = super().snapshot()
        snap.update(loose_l=round(self.loose_l, 3), packed_l=round(self.packed_l, 3),
                    fill_pct=round(100.0 * self.full_frac(), 2), soc_min=self.soc_min,
                    collections=self.collections, motor_s=round(self.motor_s, 1),
                    modem_sessions=self.modem_sessions, solar_mah=round(self.solar_mah, 1),
                    motor_mah=round(self.motor_mah, 2),
                    load_mah=round(self.load_mah, 1))
        return snap


WORLD = SmartBinWorld
