# HAL for ESP32 and ESP32-S3 boards (installed as hal.py by the device build). The shared
# machine-level code is in hal_machine; this file adds what the esp32 port does its own way:
# ADC, reset causes, light-sleep wake sources (esp32.wake_on_gpio / wake_on_ext1), flow
# pulses counted by the PCNT peripheral (machine.Counter), and the radio around key
# generation (esp_random is only truly random while Wi-Fi or BT runs).
import esp32
import machine
from micropython import const

import hal_machine
from hal_machine import *  # noqa: F401,F403 - the HAL contract is hal_machine's names
from hal_machine import BOARD, HalError, Port, _armed, role

# machine.reset_cause() on this port (ports/esp32/modmachine.c): ESP_RST_POWERON and
# ESP_RST_BROWNOUT both give PWRON_RESET, so a brownout reads as power-on; ESP_RST_SW
# (machine.reset), PANIC and EXT give HARD_RESET; unknown causes give 0.
_RESET = {
    machine.PWRON_RESET: "power_on",
    machine.HARD_RESET: "hard",
    machine.WDT_RESET: "watchdog",
    machine.DEEPSLEEP_RESET: "deepsleep",
    machine.SOFT_RESET: "soft",
}
# esp_sleep_wakeup_cause_t (ESP-IDF esp_sleep.h): the port names EXT0..ULP, not GPIO.
_WAKE_GPIO = const(7)
# The PCNT glitch filter counts APB cycles (80 MHz), at most 1023: 12.79 us. It rejects
# spikes, not reed-switch bounce (~1 ms), which the carrier's RC filter removes.
_PCNT_FILTER_NS = const(12800)   # machine.Counter: filter_ns * 80 // 1000, clamped to 1023


class _PulseCounter:
    """A flow input counted by a PCNT unit through machine.Counter, which turns the 16-bit
    counter's resets at +-32000 (IRQ_MAX/IRQ_MIN) into a running total. In light sleep the
    PCNT is not clocked (ESP-IDF "Sleep Modes": digital peripherals are clock-gated), so the
    HAL wakes on every level change of the input and counts here an active edge that
    happened while asleep and that the PCNT did not see."""

    def __init__(self, unit, pin, falling):
        C = machine.Counter
        self.pin = pin
        self.active = 0 if falling else 1
        self.counter = C(unit, pin, edge=C.FALLING if falling else C.RISING,
                         filter_ns=_PCNT_FILTER_NS)
        self.asleep = 0         # edges counted across light sleeps

    def value(self):
        return self.counter.value() + self.asleep

    def before_sleep(self):
        return self.pin.value(), self.counter.value()

    def after_sleep(self, level, count):
        if level != self.active and self.pin.value() == self.active and \
                self.counter.value() == count:
            self.asleep += 1


class _Esp32(Port):
    explainable = ("hard",)     # HARD_RESET: machine.reset() (recorded) or a panic

    def __init__(self):
        link = BOARD.get("link", {})
        sleep = BOARD.get("sleep", {})
        self._rtc = sleep.get("rtc_gpio", ())
        self._wakes = []        # [name, pin, active_high, was_active]
        self._pulses = []
        self._units = 0
        # The UART's RX pin as a GPIO wake source: a start bit pulls it low. The port has
        # no UART wake (esp_sleep_enable_uart_wakeup is not bound). Pin(n) alone does not
        # reconfigure the pad, so the UART keeps it. A USB link drops in light sleep: none.
        rx = link.get("rx") if link.get("kind") == "uart" else None
        self._rx = machine.Pin(rx) if rx is not None else None

    def hw_cause(self):
        return _RESET.get(machine.reset_cause(), "hard")

    def sleep_ready(self):
        # Asleep only with a link that can wake the board, and never mid-byte.
        return self._rx is not None and self._rx.value() == 1

    def counter(self, name, entry, pin):
        if self._units >= 8:
            raise HalError("no PCNT unit left for %s" % name)
        c = _PulseCounter(self._units, pin, entry.get("edge") != "rising")
        c.number = entry["pin"]
        self._units += 1
        self._pulses.append(c)
        return c

    def arm_wake(self, name, active_high, pin):
        # No Pin.irq here: light sleep's GPIO wakeup turns a pin's interrupt type into a
        # level one and MicroPython never restores it, so an edge IRQ would fire without end
        # while the input stays active. The HAL reads the levels instead, at every wait()
        # step and around every sleep (the inputs are levels: a magnet, a lid, a tilt).
        self._wakes.append([name, pin, active_high, pin.value() == (1 if active_high else 0),
                            BOARD["pins"][name]["pin"]])

    def poll_wakes(self):
        for w in self._wakes:
            active = w[1].value() == (1 if w[2] else 0)
            if active and not w[3]:
                _armed[w[0]] = 1
            w[3] = active

    def _arm(self):
        low = [self._rx]
        high = []
        pins = [(w[1], w[4]) for w in self._wakes] + [(c.pin, c.number) for c in self._pulses]
        for p, number in pins:
            # Wake on any change: on low from high (any GPIO), on high from low (ext1,
            # RTC GPIOs only: the GPIO wakeup has one level for all its pins).
            if p.value():
                low.append(p)
            elif number in self._rtc:
                high.append(p)
            else:
                return False
        esp32.wake_on_gpio(pins=tuple(low), level=False)
        esp32.wake_on_ext1(pins=tuple(high), level=esp32.WAKEUP_ANY_HIGH)
        return True

    def lightsleep(self, ms):
        if not self._arm():
            # An input that must wake the board on a rise but is not an RTC GPIO: sleep in
            # short slices instead (its change is seen within one slice).
            ms = min(ms, hal_machine._WAKE_SLICE_MS)
            esp32.wake_on_gpio(pins=(self._rx,), level=False)
            esp32.wake_on_ext1(pins=(), level=esp32.WAKEUP_ANY_HIGH)
        before = [c.before_sleep() for c in self._pulses]
        levels = [w[1].value() for w in self._wakes]
        machine.lightsleep(ms)
        moved = False
        for c, (level, count) in zip(self._pulses, before):
            c.after_sleep(level, count)
            moved = moved or c.pin.value() != level
        for w, level in zip(self._wakes, levels):
            moved = moved or w[1].value() != level
        self.poll_wakes()
        return not moved and machine.wake_reason() == _WAKE_GPIO

    def random_bytes(self, n):
        # esp_random() (os.urandom) mixes RF noise only while Wi-Fi or BT runs; otherwise it
        # is a PRNG (ESP-IDF "Random Number Generation"). So the radio runs while the key
        # material is drawn, and is put back as it was.
        import network
        sta = network.WLAN(network.STA_IF)
        was = sta.active()
        if not was:
            sta.active(True)
        try:
            import os
            return os.urandom(n)
        finally:
            if not was:
                sta.active(False)


_adcs = {}


def adc_read(name):
    a = _adcs.get(name)
    entry = role(BOARD, name, "adc")
    if a is None:
        # 11 dB attenuation: the 0..~3.1 V range; read_uv() applies the eFuse calibration.
        a = machine.ADC(machine.Pin(entry["pin"]), atten=machine.ADC.ATTN_11DB)
        _adcs[name] = a
    return int(a.read_uv() * entry.get("divider", 1.0) / 1000 + 0.5)


hal_machine.install(_Esp32())
