# Strict `esp32` module of the esp32 port: wake_on_gpio / wake_on_ext1 (ports/esp32/
# modesp32.c) and PCNT (esp32_pcnt.c): keyword-only configuration, a 16-bit counter that
# resets to 0 at its min/max and raises IRQ_MIN/IRQ_MAX, soft IRQs, value() flushing a
# pending IRQ first; and no counting while the chip is in light sleep (clock-gated).
import shimcore as _c

WAKEUP_ALL_LOW = False
WAKEUP_ANY_HIGH = True
# RTC_IS_VALID_EXT_PIN on the ESP32
_RTC = (0, 2, 4, 12, 13, 14, 15, 25, 26, 27, 32, 33, 34, 35, 36, 37, 38, 39)
_gpio_pins = ()
_gpio_level = False
_ext1_pins = ()
_ext1_level = False


def _ids(pins):
    import machine
    out = []
    for p in pins:
        out.append(p._id if isinstance(p, machine.Pin) else machine.Pin(p)._id)
    return tuple(out)


def wake_on_gpio(pins=None, level=None):
    global _gpio_pins, _gpio_level
    if pins is not None:
        _gpio_pins = _ids(pins)
    if level is not None:
        _gpio_level = bool(level)
    _c.log("wake_on_gpio", sorted(_gpio_pins), _gpio_level)


def wake_on_ext1(pins=None, level=None):
    global _ext1_pins, _ext1_level
    if pins is not None:
        ids = _ids(pins)
        for n in ids:
            if n not in _RTC:
                raise ValueError("invalid pin")
        _ext1_pins = ids
    if level is not None:
        _ext1_level = bool(level)
    _c.log("wake_on_ext1", sorted(_ext1_pins), _ext1_level)


class _Irq:
    def __init__(self, unit):
        self.unit = unit

    def flags(self):
        f = self.unit._flags
        self.unit._flags = 0
        return f

    def trigger(self):
        return self.unit._trigger


class PCNT:
    IGNORE = 0
    INCREMENT = 1
    DECREMENT = 2
    NORMAL = 0
    REVERSE = 1
    HOLD = 2
    IRQ_THRESHOLD1 = 4
    IRQ_THRESHOLD0 = 8
    IRQ_MIN = 16
    IRQ_MAX = 32
    IRQ_ZERO = 64
    _units = {}

    def __new__(cls, id, **kw):
        if not 0 <= id < 8:
            raise ValueError("invalid id")
        u = cls._units.get(id)
        if u is None:
            u = object.__new__(cls)
            u._id = id
            u._pin = None
            u._rising = u._falling = 0
            u._min = u._max = 0
            u._count = 0
            u._running = False
            u._handler = None
            u._trigger = 0
            u._flags = 0
            u._filter = 0
            cls._units[id] = u
        return u

    def __init__(self, id, **kw):
        self.init(**kw)

    def init(self, *, channel=0, pin=None, rising=None, falling=None, mode_pin=None,
             mode_low=None, mode_high=None, min=None, max=None, filter=None,
             threshold0=None, threshold1=None, value=None):
        clear = False
        if channel not in (0, 1):
            raise ValueError("channel")
        if pin is not None:
            self._pin = _ids((pin,))[0]
        if rising is not None or falling is not None:
            self._rising = rising or 0
            self._falling = falling or 0
        if filter is not None:
            if filter > 1023:
                raise ValueError("filter")
            self._filter = filter
        if value is not None:
            if value != 0:
                raise ValueError("value")
            clear = True
        if min is not None:
            if not -32768 <= min <= 0:
                raise ValueError("minimum")
            self._min = min
            clear = True
        if max is not None:
            if not 0 <= max <= 32767:
                raise ValueError("maximum")
            self._max = max
            clear = True
        if clear:
            self._count = 0
        _c.log("pcnt_init", self._id, self._pin, self._rising, self._falling, self._min,
               self._max, self._filter)

    def irq(self, handler=None, trigger=IRQ_ZERO):
        if handler is not None:
            self._handler = handler
            self._trigger = trigger
        return _Irq(self)

    def start(self):
        self._running = True

    def stop(self):
        self._running = False

    def deinit(self):
        self._running = False

    def value(self, *clear):
        while self._flags and self._handler is not None:
            self._handler(self)
        v = self._count
        if clear:
            if clear[0] != 0:
                raise ValueError("value")
            self._count = 0
        return v

    def _edge(self, n, level, t_us):
        if not self._running or n != self._pin or not _c.clocked:
            return
        step = self._rising if level == 1 else self._falling
        d = 1 if step == PCNT.INCREMENT else -1 if step == PCNT.DECREMENT else 0
        if not d:
            return
        self._count += d
        if self._max and self._count >= self._max:
            self._count = 0                     # resets at the limit, raises the event
            self._event(PCNT.IRQ_MAX)
        elif self._min and self._count <= self._min:
            self._count = 0
            self._event(PCNT.IRQ_MIN)

    def _event(self, bit):
        if self._trigger & bit and self._handler is not None:
            self._flags |= bit
            _c.soft(self._handler, self)


def _pcnt_edge(n, level, t_us):
    for u in PCNT._units.values():
        u._edge(n, level, t_us)


_c.edge_hooks.append(_pcnt_edge)
