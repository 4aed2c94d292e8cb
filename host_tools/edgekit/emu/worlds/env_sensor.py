"""Environmental sensor node: air temperature and humidity (SHT31), particulate matter
(PMS5003 on a switched supply), noise (an I2C dB(A) meter), battery.

Quantities are the TRUE values of the air; what the sensors report differs the way real
ones do, so the firmware's corrections are exercised:
- the SHT31 reads `temp_bias` / `rh_bias` off (a calibration offset set remotely fixes it);
- the PMS5003 answers only while the `relay` output powers it, reads `pm_warmup_factor`
  times the truth for `pm_warmup_s` after power-on (the fan and laser settling), and
  over-reads humid air by the kappa-Koehler growth factor with `pm_kappa` (0: dry aerosol);
  its frames carry whole ug/m3, as the real part's do;
- the noise meter reports dB(A) to 0.1 dB.
"""
from edgekit.emu.world import HardwareFault, World


def growth(rh, kappa):
    """The same factor firmware/kinds/env_sensor/aq.py corrects for (Crilley et al. 2018)."""
    if kappa <= 0 or rh <= 0:
        return 1.0
    aw = min(rh, 95.0) / 100.0
    return 1.0 + (kappa / 1.65) / (1.0 / aw - 1.0)


class EnvSensorWorld(World):
    kind = "env_sensor"
    quantities = {
        "temp_c": 15.0,
        "rh": 60.0,
        "pm1": 5.0,
        "pm25": 8.0,
        "pm10": 14.0,
        "noise_dba": 55.0,
        "temp_bias": 0.0,
        "rh_bias": 0.0,
        "pm_kappa": 0.0,
        "pm_warmup_s": 30.0,
        "pm_warmup_factor": 2.5,
        "battery_mv": 3900.0,
    }
    units = {"temp_c": "Cel", "rh": "%RH", "pm1": "ug/m3", "pm25": "ug/m3", "pm10": "ug/m3",
             "noise_dba": "dB(A)", "temp_bias": "Cel", "rh_bias": "%RH", "pm_kappa": "",
             "pm_warmup_s": "s", "pm_warmup_factor": "x", "battery_mv": "mV"}

    def __init__(self, board):
        super().__init__(board)
        self.pm_on_at = None        # world ms the PM sensor was last powered on
        self.pm_power_ons = 0
        self.pm_on_ms = 0.0         # total time powered (the node's largest load)

    def on_output(self, role, value):
        if role == "relay":
            if value and self.pm_on_at is None:
                self.pm_on_at = self.t
                self.pm_power_ons += 1
            elif not value and self.pm_on_at is not None:
                self.pm_on_ms += self.t - self.pm_on_at
                self.pm_on_at = None

    PURE_SENSORS = ("env", "pm", "noise")

    # Leases: between driven rows the air and the battery stand still; the PM sensor's
    # reading moves by itself while it is powered (its warm-up), so then there is none.
    def steady_until(self, t0, t1):
        return t0 if self.pm_on_at is not None else t1

    def pulse_steps(self, role, t0, t1, limit):
        return [], t1

    def sensor(self, name):
        v = self.values
        if name == "env":
            rh = min(100.0, max(0.0, v["rh"] + v["rh_bias"]))
            return {"temp_c": round(v["temp_c"] + v["temp_bias"], 2), "rh": round(rh, 2)}
        if name == "pm":
            if self.pm_on_at is None:
                raise HardwareFault("pm: no frame within 1 s (sensor supply is off)")
            factor = growth(v["rh"], v["pm_kappa"])
            if self.t - self.pm_on_at < v["pm_warmup_s"] * 1000.0:
                factor *= v["pm_warmup_factor"]
            return {k: int(round(v[k] * factor)) for k in ("pm1", "pm25", "pm10")}
        if name == "noise":
            return round(v["noise_dba"], 1)
        return super().sensor(name)

    def snapshot(self):
        snap = super().snapshot()
        snap.update(pm_powered=self.pm_on_at is not None, pm_power_ons=self.pm_power_ons,
                    pm_on_s=round(self.pm_on_ms / 1000.0, 1))
        return snap


WORLD = EnvSensorWorld
