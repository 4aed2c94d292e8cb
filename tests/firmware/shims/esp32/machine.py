# Strict `machine` of the esp32 port (MicroPython 1.29-preview): names, constants and
# argument forms as ports/esp32/modmachine.c, machine_pin.c, machine_wdt.c and
# modules/machine.py (Counter) define them; what the port lacks is absent (no
# BROWNOUT_RESET: ESP_RST_BROWNOUT reads as PWRON_RESET). Pin IRQs are soft (queued).
import shimcore as _c
import esp32 as _esp32

PWRON_RESET = 1
HARD_RESET = 2
WDT_RESET = 3
DEEPSLEEP_RESET = 4
SOFT_RESET = 5
SLEEP = 2
DEEPSLEEP = 4
PIN_WAKE = 2
EXT0_WAKE = 2
EXT1_WAKE = 3
TIMER_WAKE = 4
TOUCHPAD_WAKE = 5
ULP_WAKE = 6
_GPIO_WAKE = 7
_wake = 0
# GPIOs of the ESP32 (20, 24, 28-31 do not exist; 34-39 are input only).
_GPIOS = tuple(range(0, 20)) + (21, 22, 23, 25, 26, 27) + tuple(range(32, 40))


def reset_cause():
    return _c.state["cause"]


def reset():
    _c.log("reset")
    _c.reboot(HARD_RESET)


def _check_args(name, args):
    if len(args) > 1:
        raise TypeError("function expected at most 1 arguments, got %d" % len(args))
    return int(args[0]) if args else None


def lightsleep(*args):
    global _wake
    ms = _check_args("lightsleep", args)
    low = _esp32._gpio_pins if not _esp32._gpio_level else ()
    high = _esp32._ext1_pins if _esp32._ext1_level else ()
    _c.log("lightsleep", ms, sorted(low), sorted(high))
    start = _c.now_us
    end = start + ms * 1000 if ms is not None else 1 << 60

    def woke(ev):
        return (ev[1] in low and ev[2] == 0) or (ev[1] in high and ev[2] == 1)
    _c.clocked = False      # PCNT and the CPU stop; levels still change
    try:
        ev = _c.advance_to(end, stop=woke)
    finally:
        _c.clocked = True
    if ev is None:
        _wake = TIMER_WAKE
    else:
        _wake = _GPIO_WAKE if ev[1] in low else EXT1_WAKE
    # ESP-IDF's light sleep waits for the wake-up: ~1 ms here.
    _c.advance_to(_c.now_us + 1000)


def deepsleep(*args):
    ms = _check_args("deepsleep", args)
    _c.log("deepsleep", ms)
    _c.reboot(DEEPSLEEP_RESET)


def wake_reason():
    return _wake


def unique_id():
    return b"\x24\x0a\xc4\x01\x02\x03"


def idle():
    pass


class Pin:
    IN = 1
    OUT = 3
    OPEN_DRAIN = 7
    PULL_DOWN = 1
    PULL_UP = 2
    IRQ_RISING = 1
    IRQ_FALLING = 2
    WAKE_LOW = 4
    WAKE_HIGH = 5
    _table = {}

    def __new__(cls, id, *args, **kw):
        if not isinstance(id, int) or id not in _GPIOS:
            raise ValueError("invalid pin")
        p = cls._table.get(id)
        if p is None:
            p = object.__new__(cls)
            p._id = id
            p._out = None
            p._irq = None
            cls._table[id] = p
        return p

    def __init__(self, id, mode=None, pull=-1, *, value=None, drive=None, hold=None):
        if mode is not None:
            if mode not in (Pin.IN, Pin.OUT, Pin.OPEN_DRAIN):
                raise ValueError("invalid pin mode")
            if id >= 34 and mode != Pin.IN:
                raise ValueError("pin can only be input")
            if mode != Pin.IN:
                self._out = 0 if value is None else int(bool(value))
        if pull not in (-1, None, Pin.PULL_UP, Pin.PULL_DOWN):
            raise ValueError("invalid pull")

    def value(self, *v):
        if len(v) > 1:
            raise TypeError("function takes at most 2 positional arguments")
        if v:
            self._out = int(bool(v[0]))
            return None
        return self._out if self._out is not None else _c.level(self._id)

    def irq(self, handler=None, trigger=IRQ_RISING | IRQ_FALLING, wake=None):
        if wake is not None:
            raise ValueError("wake needs a WAKE_LOW/WAKE_HIGH trigger and an RTC pin")
        self._irq = (handler, trigger) if handler is not None else None
        return self


def _pin_edge(n, level, t_us):
    p = Pin._table.get(n)
    if p is None or p._irq is None or not _c.clocked:
        return
    handler, trigger = p._irq
    if (level == 0 and trigger & Pin.IRQ_FALLING) or (level == 1 and trigger & Pin.IRQ_RISING):
        _c.soft(handler, p)     # machine_pin_isr_handler: mp_sched_schedule, always soft


_c.edge_hooks.append(_pin_edge)


class WDT:
    def __init__(self, id=0, timeout=5000):
        if id != 0:
            raise ValueError()
        if timeout < 1:
            raise ValueError("WDT timeout too short")
        _c.log("wdt", timeout)

    def feed(self):
        pass


class RTC:
    def datetime(self, *dt):
        _c.log("rtc", list(dt[0]) if dt else None)


class ADC:
    ATTN_0DB = 0
    ATTN_11DB = 3

    def __init__(self, pin, *, atten=None):
        self.pin = pin

    def read_uv(self):
        return 1650000


class Timer:
    PERIODIC = 1
    ONE_SHOT = 0

    def __init__(self, id, **kw):
        if id not in (0, 1, 2, 3):
            raise ValueError("invalid Timer number")

    def init(self, *, mode=PERIODIC, period=-1, callback=None, freq=-1):
        pass

    def deinit(self):
        pass


# machine.Counter: ports/esp32/modules/machine.py (MIT, MicroPython authors), abridged to
# what a Counter needs; it is the port's own wrap handling over esp32.PCNT.
_PCNT_RANGE = 32000


class Counter:
    RISING = 1
    FALLING = 2
    UP = _esp32.PCNT.INCREMENT
    DOWN = _esp32.PCNT.DECREMENT
    _INSTANCES = {}

    def __new__(cls, unit_id, *_args, **_kwargs):
        self = cls._INSTANCES.get(unit_id)
        if self is None:
            self = object.__new__(cls)
            cls._INSTANCES[unit_id] = self
        return self

    def __init__(self, unit_id, *args, filter_ns=0, **kwargs):
        self._unit_id = unit_id
        if not hasattr(self, "_pcnt"):
            self._pcnt = _esp32.PCNT(unit_id, min=-_PCNT_RANGE, max=_PCNT_RANGE)
        elif not (args or kwargs):
            return
        self._configure(*args, **kwargs)
        self._pcnt.init(filter=min(max(0, filter_ns * 80 // 1000), 1023), value=0)
        self._overflows = 0
        self._offset = 0
        self._pcnt.irq(self._overflow, _esp32.PCNT.IRQ_MIN | _esp32.PCNT.IRQ_MAX)
        self._pcnt.start()

    def _overflow(self, pcnt):
        mask = pcnt.irq().flags()
        if mask & _esp32.PCNT.IRQ_MIN:
            self._overflows -= 1
        elif mask & _esp32.PCNT.IRQ_MAX:
            self._overflows += 1

    def _configure(self, src, edge=RISING, direction=UP):
        P = _esp32.PCNT
        self._pcnt.init(channel=0, pin=src,
                        rising=direction if edge & Counter.RISING else P.IGNORE,
                        falling=direction if edge & Counter.FALLING else P.IGNORE)

    def value(self, value=None):
        while True:
            overflows = self._overflows
            current = self._pcnt.value()
            if self._overflows == overflows:
                break
        result = overflows * _PCNT_RANGE + current + self._offset
        if value is not None:
            self._overflows -= overflows
            self._offset = value - current
        return result


def SPI(*args, **kw):
    # The SPI bus with the card reader on it: the MFRC522's twin (common/rc522_twin.py),
    # imported only by a test that reads cards (compiled from source, it costs heap).
    from rc522_twin import SPI as _Spi
    return _Spi(*args, **kw)


_UART_PIN_NO_CHANGE = -1


class UART:
    # ports/esp32/machine_uart.c: tx/rx take a Pin, or -1 for UART_PIN_NO_CHANGE (the
    # line stays unrouted on a fresh driver: the default pins, MICROPY_HW_UART1_TX/RX, are
    # only what the object starts from and uart_set_pin gets the -1). Nothing streams here:
    # read() returns None, as the port does on a timeout with nothing received.
    def __init__(self, id, baudrate=115200, tx=None, rx=None, timeout=0, **kw):
        if id not in (1, 2):
            raise ValueError("UART(%r) does not exist (UART0 is the REPL)" % (id,))

        def pin_id(p):
            if p is None or p == _UART_PIN_NO_CHANGE:
                return _UART_PIN_NO_CHANGE
            if not isinstance(p, Pin):
                raise TypeError("expecting a Pin")
            return p._id
        _c.log("uart", id, baudrate, pin_id(tx), pin_id(rx))

    def any(self):
        return 0

    def read(self, n=-1):
        return None

    def readinto(self, buf):
        return None
