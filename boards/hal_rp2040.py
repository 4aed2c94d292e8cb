# HAL for the Raspberry Pi Pico W (installed as hal.py by the device build). The shared
# machine-level code is in hal_machine; this file adds the RP2040 ADC and reset causes.
import machine
from hal_common import adc_mv
from hal_machine import *  # noqa: F401,F403 - the HAL contract is hal_machine's names
from hal_machine import BOARD, role

_VREF_MV = 3300     # the Pico's ADC reference is the 3.3 V rail
_RESET = {
    getattr(machine, "PWRON_RESET", -1): "power_on",
    getattr(machine, "WDT_RESET", -3): "watchdog",
}
# The RP2040 reports power-on for a reset by the RUN pin or machine.reset(); a soft reboot
# is not a reset at all to the chip, so MicroPython keeps its own flag.
_cause = _RESET.get(machine.reset_cause(), "hard")
_adcs = {}


def reset_cause():
    return _cause


def adc_read(name):
    entry = role(BOARD, name, "adc")
    a = _adcs.get(name)
    if a is None:
        a = machine.ADC(machine.Pin(entry["pin"]))
        _adcs[name] = a
    return adc_mv(a.read_u16(), 65535, _VREF_MV, entry.get("divider", 1.0))
