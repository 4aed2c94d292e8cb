# HAL for ESP32 and ESP32-S3 boards (installed as hal.py by the device build). The shared
# machine-level code is in hal_machine; this file adds the ESP32 ADC and reset causes.
import machine
from hal_machine import *  # noqa: F401,F403 - the HAL contract is hal_machine's names
from hal_machine import BOARD, role

_RESET = {
    getattr(machine, "PWRON_RESET", -1): "power_on",
    getattr(machine, "HARD_RESET", -2): "hard",
    getattr(machine, "WDT_RESET", -3): "watchdog",
    getattr(machine, "DEEPSLEEP_RESET", -4): "deepsleep",
    getattr(machine, "SOFT_RESET", -5): "soft",
    getattr(machine, "BROWNOUT_RESET", -6): "brownout",
}
_cause = _RESET.get(machine.reset_cause(), "hard")
_adcs = {}


def reset_cause():
    return _cause


def adc_read(name):
    a = _adcs.get(name)
    entry = role(BOARD, name, "adc")
    if a is None:
        # 11 dB attenuation: the 0..~3.1 V range; read_uv() applies the eFuse calibration.
        a = machine.ADC(machine.Pin(entry["pin"]), atten=machine.ADC.ATTN_11DB)
        _adcs[name] = a
    return int(a.read_uv() * entry.get("divider", 1.0) / 1000 + 0.5)
