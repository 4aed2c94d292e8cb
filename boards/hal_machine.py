# The part of a real board's HAL shared by ESP32 and RP2040: everything on `machine` that
# both ports spell the same way. hal_esp32 / hal_rp2040 add what differs (ADC, reset causes,
# light-sleep wake sources, pulse counters, entropy) as a `Port` they `install()`, and are
# installed as `hal.py`. Hardware-free logic lives in hal_common, where the unix VM tests it.
import json
import os
import time as _time

import machine
from hal_common import (Debouncer, Flash, HalError, StdioLink, role,  # noqa: F401
                        sht31_decode, a02yyuw_decode, pms5003_decode, adc_mv,
                        ina219_decode, ads1115_mv, sht31_alert_writes,
                        PowerAccount, ResetRecord, resolve_cause)

ticks_ms = _time.ticks_ms
ticks_diff = _time.ticks_diff
ticks_add = _time.ticks_add


def load_board(path="/board.json"):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as exc:
        raise HalError("board definition %s unreadable (%s): reinstall the firmware"
                       % (path, exc))


BOARD = load_board()
NAME = BOARD["name"]
link = StdioLink()
flash = Flash()

# Ports before 1.22 count time() from 2000; the HAL always speaks unix seconds.
_EPOCH = 946684800 if _time.gmtime(0)[0] == 2000 else 0
# After a power loss the RTC restarts in 2000 (ESP32) or 2021 (RP2040): any date before
# this one means "never set".
_RTC_VALID_FROM = 1704067200    # 2024-01-01


# --- clock ---------------------------------------------------------------------------------
def sleep_ms(ms):
    _time.sleep_ms(max(0, int(ms)))


# While the board stays awake (link lingering, a port that cannot sleep now) and inputs are
# armed as wake sources, wait() polls the link in slices this long and checks the inputs
# between them: the latency of a wake, at a cost of one poll per slice.
_WAKE_SLICE_MS = 50
# A wait shorter than this is polled awake: a light sleep's entry and exit cost ~1 ms each.
_MIN_SLEEP_MS = 10

power = PowerAccount(_time.ticks_ms())


def _woken():
    _port.poll_wakes()
    for name in _armed:
        if _armed[name]:
            return True
    return False


def wait(ms):
    """Sleep up to `ms` in light sleep between tasks (machine.lightsleep, with the wake
    sources the port can arm); True on link input or an armed input, False on timeout."""
    ms = max(0, int(ms))
    deadline = _time.ticks_add(_time.ticks_ms(), ms)
    while True:
        now = _time.ticks_ms()
        power.advance(now)
        if _woken():
            return True
        if link.any():
            power.link_seen(now)
            return True
        left = _time.ticks_diff(deadline, now)
        if left <= 0:
            return False
        linger = power.linger_left(now)
        if left < _MIN_SLEEP_MS or linger or not _port.sleep_ready():
            step = min(left, linger) if linger else left
            if link.poll_ms(min(step, _WAKE_SLICE_MS) if _armed else step):
                power.link_seen(_time.ticks_ms())
                return True
            continue
        t0 = _time.ticks_ms()
        link_woke = _port.lightsleep(left)
        power.slept(left, _time.ticks_diff(_time.ticks_ms(), t0))
        if link_woke:
            # The bytes that woke the board are lost (the UART is not clocked in light
            # sleep); stay awake for the host's resend (hal_common.LINK_LINGER_MS).
            power.link_seen(_time.ticks_ms())


def power_stats():
    """Time asleep and awake since boot, measured on this board's clock (battery estimate)."""
    return power.stats(_time.ticks_ms())


def time():
    t = _time.time() + _EPOCH
    return t if t >= _RTC_VALID_FROM else None


def set_time(unix):
    tm = _time.gmtime(int(unix) - _EPOCH)
    # RTC.datetime takes (year, month, day, weekday, hours, minutes, seconds, subseconds)
    machine.RTC().datetime((tm[0], tm[1], tm[2], tm[6], tm[3], tm[4], tm[5], 0))


def deep_sleep(ms):
    ms = max(0, int(ms))
    if _port.ambiguous_deepsleep:
        _record.write("deepsleep")
    if ms:
        machine.deepsleep(ms)
    else:
        # No argument, not 0: both ports read deepsleep(0) as a timer of 0 (the RP2040
        # resets at once, the ESP32 wakes at once); with none they sleep until reset.
        machine.deepsleep()


# --- system --------------------------------------------------------------------------------
_record = ResetRecord(flash)
_cause = None
_reason = None


def reset(reason=None):
    """Reset the board; first record why (`reason`: a short word for diag, e.g. "ota"), so
    the next boot can tell this reset from a watchdog's where the hardware cannot."""
    try:
        _record.write("hard", reason)
    except OSError:
        pass        # a full or failing flash must not stop the reset itself
    machine.reset()


def reset_cause():
    return _cause


def reset_reason():
    """The reason the firmware gave hal.reset() before this boot, or None."""
    return _reason


def unique_id():
    return machine.unique_id()


def random_bytes(n):
    """Key material from the board's hardware RNG (see the port's Port.random_bytes)."""
    return _port.random_bytes(int(n))


def net_up(cfg):
    """True when the board's network can carry a connection to the broker (SPEC 13):
    hal_net.py, imported by a device that has a network config only."""
    import hal_net
    return hal_net.up(cfg)


def net_down(cfg):
    """A battery device between reports (connect = "to_report"): the radio off until the
    next net_up."""
    import hal_net
    hal_net.down(cfg)


_wdt = None


def wdt_start(timeout_ms):
    global _wdt
    timeout_ms = int(timeout_ms)
    limit = BOARD.get("wdt_max_ms")
    if timeout_ms < 1 or (limit and timeout_ms > limit):
        raise HalError("wdt_start: %d ms outside 1..%s ms on %s" % (timeout_ms, limit, NAME))
    _wdt = machine.WDT(timeout=timeout_ms)


def wdt_feed():
    if _wdt is not None:
        _wdt.feed()


# Maintenance (firmware/core/maintenance.py): in the REPL no firmware loop feeds the watchdog,
# so a timer does, until the window's deadline, then resets into the locked firmware.
# ESP32 timers are hardware timers 0..3; the RP2040 has only virtual ones (id -1).
_guard = None


def maintenance_guard(ms):
    """Keep the watchdog fed for `ms`, then reset the board; 0 cancels."""
    global _guard
    if _guard is not None:
        _guard.deinit()
        _guard = None
    ms = int(ms)
    if ms <= 0:
        return
    deadline = _time.ticks_add(_time.ticks_ms(), ms)

    def tick(_t):
        if _time.ticks_diff(deadline, _time.ticks_ms()) <= 0:
            reset("maintenance")
        wdt_feed()

    _guard = machine.Timer(0 if BOARD.get("port") == "esp32" else -1)
    _guard.init(mode=machine.Timer.PERIODIC, period=1000, callback=tick)


def storage_root():
    return ""


# --- pins ----------------------------------------------------------------------------------
_pins = {}
_counters = {}


def _pin(name, mode):
    p = _pins.get(name)
    if p is None:
        entry = role(BOARD, name, mode)
        if mode == "out":
            p = machine.Pin(entry["pin"], machine.Pin.OUT)
        else:
            pull = machine.Pin.PULL_UP if entry.get("pull") == "up" else None
            p = machine.Pin(entry["pin"], machine.Pin.IN, pull)
        _pins[name] = p
    return p


def pulse_count(name):
    c = _counters.get(name)
    if c is None:
        entry = role(BOARD, name, "pulse")
        c = _port.counter(name, entry, _pin(name, "pulse"))
        _counters[name] = c
    return c.value()


def input(name):  # noqa: A001 - the HAL contract names it so
    entry = role(BOARD, name, "in")
    level = _pin(name, "in").value()
    return (level == 0) if entry.get("active") == "low" else (level == 1)


def output(name, value):
    _pin(name, "out").value(1 if value else 0)


def output_state(name):
    return bool(_pin(name, "out").value())


# --- wake sources -----------------------------------------------------------------------------
# role -> 1 once its input went active since the last wakes(); set by the pin IRQ (a dict
# store of an existing key: no allocation, so safe in an IRQ handler).
_armed = {}


def wake_on(name):
    entry = role(BOARD, name, "in")
    if not entry.get("wake"):
        raise HalError("pin role %r of board %s is not wired to a wake-capable pin"
                       % (name, NAME))
    if name in _armed:
        return
    _port.arm_wake(name, entry.get("active") != "low", _pin(name, "in"))
    _armed[name] = 0            # armed only once the port watches it


def wakes():
    fired = tuple(n for n in _armed if _armed[n])
    for n in fired:
        _armed[n] = 0
    return fired


def sensor_alert(name, high):
    spec = BOARD.get("sensors", {}).get(name)
    if spec is None or not spec.get("alert"):
        raise HalError("sensor %r of board %s has no alert output" % (name, NAME))
    if spec["part"] != "sht31":
        raise HalError("alert limits for %s are not implemented" % spec["part"])
    try:
        bus = _bus(spec["bus"])
        for cmd, payload in sht31_alert_writes(float(high)):
            bus.writeto(spec["addr"], cmd + payload)
            _time.sleep_ms(2)
    except OSError as exc:
        raise HalError("%s (%s at %s 0x%02x): %r" % (name, spec["part"], spec["bus"],
                                                     spec["addr"], exc))


# --- buses and sensors ---------------------------------------------------------------------
_buses = {}


def _bus(name):
    b = _buses.get(name)
    if b is None:
        spec = BOARD["buses"][name]
        index = int(name[-1])
        if spec["kind"] == "i2c":
            b = machine.I2C(index, sda=machine.Pin(spec["sda"]), scl=machine.Pin(spec["scl"]),
                            freq=spec.get("freq", 100000))
        elif spec["kind"] == "uart":
            # No tx: receive-only (every sensor on it streams unprompted; nothing here
            # writes). -1 leaves TX unrouted on the esp32 port (UART_PIN_NO_CHANGE), where
            # its default pin would be another role's (GPIO5 on a SPIRAM build).
            tx = machine.Pin(spec["tx"]) if "tx" in spec else -1
            b = machine.UART(index, baudrate=spec["baud"], tx=tx, rx=machine.Pin(spec["rx"]),
                             timeout=100)
        else:
            raise HalError("bus %s (%s) has no driver in this HAL" % (name, spec["kind"]))
        _buses[name] = b
    return b


def _uart_frame(uart, head, size):
    # Sensors stream frames continuously; take the newest whole one within ~1 s.
    buf = bytearray(size)
    deadline = _time.ticks_add(_time.ticks_ms(), 1000)
    while _time.ticks_diff(deadline, _time.ticks_ms()) > 0:
        b = uart.read(1)
        if b and b[0] == head:
            buf[0] = head
            got = uart.readinto(memoryview(buf)[1:])
            if got == size - 1:
                return buf
    raise HalError("no frame from the UART sensor within 1 s")


def sensor_read(name):
    spec = BOARD.get("sensors", {}).get(name)
    if spec is None:
        raise HalError("board %s has no sensor %r" % (NAME, name))
    part = spec["part"]
    try:
        bus = _bus(spec["bus"])
        if part == "sht31":
            bus.writeto(spec["addr"], b"\x24\x00")     # single shot, high repeatability
            _time.sleep_ms(16)
            return sht31_decode(bus.readfrom(spec["addr"], 6))
        if part == "pcb-db-meter":
            return bus.readfrom_mem(spec["addr"], 0x0A, 1)[0]   # dB SPL register
        if part == "a02yyuw":
            return a02yyuw_decode(_uart_frame(bus, 0xFF, 4))
        if part == "pms5003":
            return pms5003_decode(_uart_frame(bus, 0x42, 32))
        if part == "ina219":
            return ina219_decode(bus.readfrom_mem(spec["addr"], 0x01, 2),
                                 bus.readfrom_mem(spec["addr"], 0x02, 2),
                                 spec.get("shunt_mohm", 10))
        if part == "ads1115":
            return _ads1115_all(bus, spec["addr"])
        if part == "gm65":
            return _scanned(bus)
    except OSError as exc:
        if isinstance(exc, HalError):
            raise
        raise HalError("sensor %s (%s) did not answer: %s" % (name, part, exc))
    raise HalError("sensor part %s has no driver in this HAL" % part)


def _ads1115_all(bus, addr):
    # Single-shot, AINx against GND, +-4.096 V, 128 SPS (datasheet SBAS444 table 8).
    out = {}
    for ch in range(4):
        cfg = 0x8000 | ((4 + ch) << 12) | (1 << 9) | (1 << 8) | (4 << 5) | 3
        bus.writeto_mem(addr, 0x01, bytes((cfg >> 8, cfg & 0xFF)))
        _time.sleep_ms(9)
        out["a%d" % ch] = ads1115_mv(bus.readfrom_mem(addr, 0x00, 2))
    return out


_scan_buf = bytearray()


def _scanned(uart):
    # The GM65 sends each decoded code as text ending in CR; None until a whole one is in.
    global _scan_buf
    while uart.any():
        b = uart.read(1)
        if not b:
            break
        if b == b"\r" or b == b"\n":
            if _scan_buf:
                text = bytes(_scan_buf).decode()
                _scan_buf = bytearray()
                return text
        elif len(_scan_buf) < 2048:
            _scan_buf.extend(b)
    return None


_reader = None


def card_uid():
    # The UID (bytes) of the card on the reader, or None; the driver is boards/rc522.py.
    global _reader
    if "card_reader" not in BOARD:
        raise HalError("board %s has no card reader" % NAME)
    if _reader is None:
        import rc522
        _reader = rc522.open_reader(BOARD)
    return _reader.uid()


# --- the port -----------------------------------------------------------------------------
class Port:
    """What differs between the ports; hal_esp32 and hal_rp2040 subclass it."""
    explainable = ()            # hardware causes a recorded reset may stand for
    ambiguous_deepsleep = False  # a deep-sleep wake reads as another cause: record it

    def hw_cause(self):
        return "hard"

    def sleep_ready(self):
        return True

    def lightsleep(self, ms):
        """Sleep up to `ms`; True if the link (not a timer or a pin) woke the board."""
        machine.lightsleep(ms)
        return False

    def counter(self, name, entry, pin):
        raise HalError("pulse counting is not implemented on this port")

    def arm_wake(self, name, active_high, pin):
        trigger = machine.Pin.IRQ_RISING if active_high else machine.Pin.IRQ_FALLING

        def fired(p):
            _armed[name] = 1
        pin.irq(handler=fired, trigger=trigger)

    def poll_wakes(self):
        pass

    def random_bytes(self, n):
        return os.urandom(n)


_port = Port()


def install(port):
    """Called once by hal_esp32 / hal_rp2040 at import: the port's hooks, and this boot's
    reset cause (the hardware's, or the firmware's record where the hardware's is
    ambiguous)."""
    global _port, _cause, _reason
    _port = port
    hw = port.hw_cause()
    rec = _record.take()
    _cause = resolve_cause(hw, port.explainable, rec)
    _reason = rec[1] if rec is not None and _cause == rec[0] and hw != "power_on" else None
