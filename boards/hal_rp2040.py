# HAL for the Raspberry Pi Pico W (installed as hal.py by the device build). The shared
# machine-level code is in hal_machine; this file adds what the rp2 port does its own way:
# ADC, reset causes (every machine.reset() is a watchdog reset here), light-sleep wake
# sources (Pin IRQs) and flow pulses counted by hard IRQs.
import machine
from micropython import const

import hal_machine
from hal_common import Debouncer, adc_mv
from hal_machine import *  # noqa: F401,F403 - the HAL contract is hal_machine's names
from hal_machine import BOARD, Port, _armed, role
import time as _time

_VREF_MV = 3300     # the Pico's ADC reference is the 3.3 V rail
# machine.reset_cause() on this port (ports/rp2/modmachine.c) is WDT_RESET if
# watchdog_caused_reboot(), else PWRON_RESET; no other constant exists. machine.reset() is
# watchdog_reboot(), and deepsleep() is lightsleep() then machine.reset(): both read as
# WDT_RESET, which the HAL's reset record disambiguates. A brownout or the RUN pin reads as
# power-on.
_RESET = {
    machine.PWRON_RESET: "power_on",
    machine.WDT_RESET: "watchdog",
}
# lightsleep(ms) arms a 32-bit microsecond alarm: "sleep too long" from 2**32 / 1000 ms.
_MAX_SLEEP_MS = const(4294966)


class _Rp2(Port):
    explainable = ("watchdog",)
    ambiguous_deepsleep = True

    def __init__(self):
        link = BOARD.get("link", {})
        rx = link.get("rx") if link.get("kind") == "uart" else None
        self._rx = machine.Pin(rx) if rx is not None else None
        self._rx_fell = False

    def hw_cause(self):
        return _RESET.get(machine.reset_cause(), "hard")

    def counter(self, name, entry, pin):
        c = Debouncer(entry.get("debounce_ms", 2))
        trigger = machine.Pin.IRQ_RISING if entry.get("edge") == "rising" \
            else machine.Pin.IRQ_FALLING
        # A hard IRQ runs at the edge, so the debounce sees the edge's own time even while
        # the VM is busy (a soft one would be queued); edge() allocates nothing. A Pin IRQ
        # with a handler also ends lightsleep(ms) on this port (micropython issue #7035).
        pin.irq(handler=lambda p: c.edge(_time.ticks_ms()), trigger=trigger, hard=True)
        return c

    def arm_wake(self, name, active_high, pin):
        trigger = machine.Pin.IRQ_RISING if active_high else machine.Pin.IRQ_FALLING

        def fired(p):
            _armed[name] = 1
        pin.irq(handler=fired, trigger=trigger, hard=True)

    def _rx_irq(self, pin):
        self._rx_fell = True

    def lightsleep(self, ms):
        # The UART is not clocked in light sleep (sleep_en0/1 keep only the timer): a
        # falling edge on its RX pin (a start bit) wakes the board through the GPIO IRQ,
        # which sees the pad whatever function drives it; the bytes themselves are lost.
        # Armed only around the sleep: awake, one IRQ per received byte would cost CPU.
        rx = self._rx
        self._rx_fell = False
        if rx is not None:
            rx.irq(handler=self._rx_irq, trigger=machine.Pin.IRQ_FALLING, hard=True)
        try:
            machine.lightsleep(min(ms, _MAX_SLEEP_MS))
        finally:
            if rx is not None:
                rx.irq(handler=None)
        return self._rx_fell

    # random_bytes: os.urandom, i.e. pico_rand's get_rand_64() (boards/HAL.md says why
    # that is enough on this chip); the radio plays no part.


_adcs = {}


def adc_read(name):
    entry = role(BOARD, name, "adc")
    a = _adcs.get(name)
    if a is None:
        a = machine.ADC(machine.Pin(entry["pin"]))
        _adcs[name] = a
    return adc_mv(a.read_u16(), 65535, _VREF_MV, entry.get("divider", 1.0))


hal_machine.install(_Rp2())
