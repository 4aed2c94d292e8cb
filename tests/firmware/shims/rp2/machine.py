# Strict `machine` of the rp2 port (MicroPython 1.29-preview): names, constants and argument
# forms as ports/rp2/modmachine.c, machine_pin.c and machine_wdt.c define them. Only two
# reset causes exist: reset() is watchdog_reboot() and deepsleep() is lightsleep() then
# reset(), so both read WDT_RESET on the next boot. lightsleep(ms <= 1) is a plain delay,
# ms >= 2**32/1000 raises "sleep too long"; a Pin IRQ with a handler ends a timed light
# sleep (micropython issue #7035). Pin IRQs are soft (queued) unless hard=True.
import shimcore as _c

PWRON_RESET = 1
WDT_RESET = 3


def reset_cause():
    return _c.state["cause"]


def reset():
    _c.log("reset")
    _c.reboot(WDT_RESET)


def lightsleep(*args):
    if len(args) > 1:
        raise TypeError("function expected at most 1 arguments, got %d" % len(args))
    ms = int(args[0]) if args else None
    _c.log("lightsleep", ms, sorted(n for n, p in Pin._table.items() if p._irq))
    if ms is not None:
        if ms <= 1:
            _c.advance_to(_c.now_us + ms * 1000)
            return
        if ms >= (1 << 32) // 1000:
            raise ValueError("sleep too long")
    end = _c.now_us + ms * 1000 if ms is not None else 1 << 60

    def woke(ev):
        p = Pin._table.get(ev[1])
        return ms is not None and p is not None and p._irq is not None and \
            p._irq[1] & (Pin.IRQ_FALLING if ev[2] == 0 else Pin.IRQ_RISING)
    _c.advance_to(end, stop=woke)
    _c.advance_to(_c.now_us + 1000)     # clocks restarted


def deepsleep(*args):
    if len(args) > 1:
        raise TypeError("function expected at most 1 arguments, got %d" % len(args))
    _c.log("deepsleep", int(args[0]) if args else None)
    if args and int(args[0]) >= (1 << 32) // 1000:
        raise ValueError("sleep too long")
    _c.reboot(WDT_RESET)


def unique_id():
    return b"\xe6\x61\x41\x04\x03\x2f\x5a\x2b"


def idle():
    pass


class Pin:
    IN = 0
    OUT = 1
    OPEN_DRAIN = 2
    ALT = 3
    PULL_UP = 1
    PULL_DOWN = 2
    IRQ_FALLING = 4
    IRQ_RISING = 8
    _table = {}

    def __new__(cls, id, *args, **kw):
        if id == "LED":
            id = 64     # the Pico W's LED is on the CYW43 (machine_pin_cyw43.c)
        elif not isinstance(id, int) or not 0 <= id < 30:
            raise ValueError("invalid pin")
        p = cls._table.get(id)
        if p is None:
            p = object.__new__(cls)
            p._id = id
            p._out = None
            p._irq = None
            cls._table[id] = p
        return p

    def __init__(self, id, mode=None, pull=None, *, value=None, alt=None):
        if mode is not None and mode not in (Pin.IN, Pin.OUT, Pin.OPEN_DRAIN, Pin.ALT):
            raise ValueError("invalid pin af: %d" % mode)
        if pull not in (None, Pin.PULL_UP, Pin.PULL_DOWN):
            raise ValueError("invalid pull")
        if mode in (Pin.OUT, Pin.OPEN_DRAIN):
            self._out = 0 if value is None else int(bool(value))

    def value(self, *v):
        if len(v) > 1:
            raise TypeError("function takes at most 2 positional arguments")
        if v:
            self._out = int(bool(v[0]))
            return None
        return self._out if self._out is not None else _c.level(self._id)

    def irq(self, handler=None, trigger=IRQ_FALLING | IRQ_RISING, hard=False):
        self._irq = (handler, trigger, bool(hard)) if handler is not None else None
        _c.log("irq", self._id, handler is not None, trigger, bool(hard))
        return self


def _pin_edge(n, level, t_us):
    p = Pin._table.get(n)
    if p is None or p._irq is None:
        return
    handler, trigger, hard = p._irq
    if (level == 0 and trigger & Pin.IRQ_FALLING) or (level == 1 and trigger & Pin.IRQ_RISING):
        if hard:
            handler(p)          # runs in the interrupt, at the edge's time
        else:
            _c.soft(handler, p)


_c.edge_hooks.append(_pin_edge)


class WDT:
    def __init__(self, id=0, timeout=5000):
        if id != 0:
            raise ValueError("WDT(%d) doesn't exist" % id)
        if timeout > 8388:
            raise ValueError("timeout exceeds 8388")
        _c.log("wdt", timeout)

    def feed(self):
        pass


class RTC:
    def datetime(self, *dt):
        _c.log("rtc", list(dt[0]) if dt else None)


class ADC:
    def __init__(self, pin):
        self.pin = pin

    def read_u16(self):
        return 32768


class Timer:
    PERIODIC = 1
    ONE_SHOT = 0

    def __init__(self, id=-1, **kw):
        if id != -1:
            raise ValueError("Timer doesn't exist")

    def init(self, *, mode=PERIODIC, period=-1, callback=None, freq=-1):
        pass

    def deinit(self):
        pass


def SPI(*args, **kw):
    # The SPI bus with the card reader on it: the MFRC522's twin (common/rc522_twin.py),
    # imported only by a test that reads cards (compiled from source, it costs heap).
    from rc522_twin import SPI as _Spi
    return _Spi(*args, **kw)
