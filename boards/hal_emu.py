# Emulator HAL: what is hardware on a real board is the edgekit supervisor here, reached over
# a side channel (an inherited socket fd, never the UART): clock and sleeps, reset cause,
# watchdog, peripherals (read from the board's simulated world) and the flash counter that
# lets the supervisor cut the power during a chosen write. The UART is the VM's stdin/stdout.
#
# Side channel wire format (documented in boards/HAL.md): the VM sends one JSON array per
# line, [id, op, args...] (id 0: a notification, no answer); the supervisor answers
# b"%04x" % len + JSON [id, device_ms, value] or [id, device_ms, null, "error"]. The length
# prefix lets the VM read an answer in two reads instead of one syscall per byte.
import json
import os
import select
import sys
import time as _time
from binascii import unhexlify

from hal_common import (HalError, Flash, StdioLink, RESET_CAUSES, TICKS_PERIOD,  # noqa: F401
                        ticks_add, ticks_diff, PowerAccount)

BOARD = None
NAME = None

_ch = None          # side channel file (None: detached, see _detached_hello)
_id = 0
_mode = "real"      # "virtual" | "paused" | "real"
_rate = 1.0         # device ms per local ms while running (1 + drift)
_base_dev = 0       # device ms since boot at the last answer
_base_loc = 0       # local ticks_ms() at that answer
_last_dev = 0       # highest device ms handed out: the clock never goes back
_rtc_ms = None      # unix ms at device ms _rtc_dev, None until the RTC is set
_rtc_dev = 0
_rtc_ppb = 0        # the RTC's own drift against the device clock (board rtc_drift_ppm),
                    # an int: a float would be one more object left in the heap
_cause = "power_on"
_uid = b""
_poller = None      # select.poll on the side channel: has the supervisor pushed anything?
_extra = None       # what the last answer carried beyond its value (prefetched reads)
# Paused time: reads the supervisor made at the instant of the last wake, for the reads the
# firmware made during the wake before (_watch). Time is frozen while the board runs, so
# they are exactly what a round trip would answer, until a push (clock or world changed) or
# one of our outputs drops them. A wake then costs one round trip instead of one per read.
# No allocation per wake (a board heap is small and long-lived objects fragment it): the
# watch list grows once, the values go into a preallocated list, _cache is a bit mask of the
# valid entries (0: none).
_WATCH_MAX = 8
_cache = 0
_w_op = [None] * _WATCH_MAX     # the firmware's own op/name strings (literals: no copies)
_w_name = [None] * _WATCH_MAX
_vals = [None] * _WATCH_MAX
_watch_n = 0
_watch_sent = 0     # _watch_n when last sent

# Paused time, during an advance: a lease. With a wake's answer the supervisor may say "up
# to device ms E nothing happens that you do not see: no event, no world change, no host
# byte; your watched reads stay as prefetched, but for each pulse counter's steps (the device
# ms of each +1)". Until E the waits (and sleeps) of the wakes run here, without a round trip:
# the clock moves on locally, the reads come from the lease. Anything else (a read not
# watched, an output, a flash write that asks, a push) is a round trip as always, and ends
# the lease; the supervisor first hears where the clock got to (_lease_line). The watchdog
# is kept here meanwhile: a wait that would end at or past the last feed + its timeout is
# not taken locally, the supervisor fires it at its instant. A provisioned meter's wake was
# two processes waiting for each other (bench/bench_emu.py); a kiosk polls its card reader
# every few seconds.
_lease_end = 0      # device ms the lease reaches (0: none)
_lease_msg = None   # the lease the last answer carried, taken by _start_lease
_lease_steps = None
_lease_pos = [0] * _WATCH_MAX
_lease_base = [0] * _WATCH_MAX
_lease_mask = 0
_lease_t0 = 0       # device ms the lease began at
_lease_moved = 0    # local wakes since the supervisor last heard the clock (0: none)
_fed_at = 0         # device ms of the last watchdog feed (or start)
_wdt_ms = 0


def _sync(dev_ms):
    global _base_dev, _base_loc, _last_dev
    _base_dev = dev_ms
    _base_loc = _time.ticks_ms()
    if dev_ms > _last_dev:
        _last_dev = dev_ms


def _recv():
    head = _ch.read(4)
    if not head or len(head) < 4:
        # The supervisor is gone: a board without power does not run on.
        sys.exit(70)
    return json.loads(_ch.read(int(head.decode(), 16)))


def _pushed(msg):
    # [0, device_ms, info]: the supervisor moved the clock (paused time: an advance while we
    # ran), changed the world, the mode, the drift or the RTC. Our copies are stale.
    global _cache, _mode, _rate, _fed, _lease_end
    _cache = 0
    _lease_end = 0
    info = msg[2]
    if info:
        if _fed and info["mode"] != "paused":
            _fed = False        # leaving paused time: what was held for the next request
            _ch.write(b'[0,"wdt_feed"]\n')
        if _flash_held and info["mode"] != "paused":
            _send([0, "now"])   # carries the held flash operations (a note: no answer)
        _mode = info["mode"]
        if info["rate"] != _rate:   # keep the old float: nothing new lives on in the heap
            _rate = info["rate"]
        _set_rtc(info)
    _sync(msg[1])


def _set_rtc(info):
    global _rtc_ms, _rtc_dev, _rtc_ppb, _flash_sync
    _rtc_ms, _rtc_dev, _rtc_ppb = info["rtc_ms"], info["rtc_dev"], info["rtc_ppb"]
    _flash_sync = info.get("flash_sync", True)


# True while the supervisor has a brown-out armed: each flash operation then asks whether
# power holds (a round trip); otherwise it is only counted (a notification), a third of a
# round trip per wake saved for a meter in paused time. In paused time even the note waits
# for the next request and goes in the same write (_send): the supervisor wakes once a wake.
_flash_sync = True
_flash_held = 0


_polled = 0


def _drain():
    """Take the supervisor's pushes, if any: a poll, no round trip, at most once per local
    millisecond (the scheduler reads the clock several times a wake; a push is seen at most
    one ms of running later, as if it had arrived that much later)."""
    global _polled
    t = _time.ticks_ms()
    if t != _polled:
        _polled = t
        while _pushed_waiting():
            _pushed(_recv())


def _pushed_waiting():
    for _ in _poller.ipoll(0):      # ipoll: no list allocated per poll
        return True
    return False


def _held_line():
    global _flash_held
    line = ('[0,"flash","held",%d]\n' % _flash_held).encode()
    _flash_held = 0
    return line


def _send(msg):
    line = json.dumps(msg).encode() + b"\n"
    if _flash_held:         # flash operations held in paused time (EmuFlash): one write
        line = _held_line() + line
    if _lease_moved:        # first: where the clock got to on the lease
        line = _lease_line() + line
    _ch.write(line)


def _lease_line():
    # [0, "lease", device ms now, the last feed if it was during the lease (else null), the
    # local wakes]: the supervisor moves its clock there before what follows.
    global _lease_moved
    fed = _fed_at if _fed_at >= _lease_t0 else None
    line = ('[0,"lease",%d,%s,%d]\n' % (_last_dev, "null" if fed is None else "%d" % fed,
                                         _lease_moved)).encode()
    _lease_moved = 0
    return line


class _EmuLink(StdioLink):
    """The link as on every port, except that the flash operations held for the next request
    (paused time) are told before anything leaves on the link: a host that reads the
    emulator's counters after an answer finds them current (a test counting the flash
    writes one KEY_EPOCH costs found none)."""

    def write(self, data):
        if _ch is not None:
            if _lease_moved:        # the host may ask the board's clock once it has these
                _ch.write(_lease_line())
            if _flash_held:
                _ch.write(_held_line())
        StdioLink.write(self, data)


link = _EmuLink()


def _rt(op, *args):
    """Round trip to the supervisor; answers to an interrupted request are skipped by id."""
    global _id
    if _ch is None:
        return _detached(op, args)
    global _extra, _fed, _lease_end, _lease_msg
    _id = _id % 1000000 + 1
    _lease_end = 0          # any round trip ends a lease; a wake's answer may bring one
    # A negative id says "the watchdog was fed before this request" (paused time: see
    # wdt_feed); the answer comes back with the positive id.
    _send([-_id if _fed else _id, op] + list(args))
    _fed = False
    while True:
        msg = _recv()
        if msg[0] == _id:
            break
        if msg[0] == 0:
            _pushed(msg)
    _sync(msg[1])
    _extra = msg[4] if len(msg) > 4 else None
    _lease_msg = msg[5] if len(msg) > 5 else None
    if len(msg) > 3 and msg[3] is not None:
        raise HalError(msg[3])
    return msg[2]


def _notify(op, *args):
    if _ch is not None:
        _send([0, op] + list(args))


def _dev_ms():
    # The clock never goes back (_last_dev). Paused time: frozen while the board runs, only
    # a push or an answer moves it (_sync), so a read is no round trip.
    global _last_dev, _polled
    # _drain() inlined up to its once-a-millisecond check: the firmware reads the clock a
    # dozen times a wake, and a Python call is a measurable share of a paused wake.
    if _ch is not None:
        t = _time.ticks_ms()
        if t != _polled:
            _polled = t
            while _pushed_waiting():
                _pushed(_recv())
    if _mode != "paused":
        now = _base_dev + int(ticks_diff(_time.ticks_ms(), _base_loc) * _rate)
        if now > _last_dev:
            _last_dev = now
    return _last_dev


def _detached(op, args):
    # No supervisor (e.g. firmware unit tests under edgekit.testing.mp): real time, no
    # peripherals. Lets `import hal_emu as hal` work in any micropython run.
    if op == "sleep" or op == "wait":
        ms = args[0]
        if op == "wait":
            return link.poll_ms(ms)
        _time.sleep_ms(ms)
        return None
    if op in ("now", "set_time", "wdt_start", "output"):
        return None
    raise HalError("hal_emu: %s needs the emulator supervisor (run the board with edgekit emu)"
                   % op)


def connect(fd):
    """Called once by emu_launch before boot.py: open the side channel and say hello."""
    global _ch, BOARD, NAME, _mode, _rate, _cause, _uid, _poller
    _ch = open(fd, "r+b")
    _poller = select.poll()
    _poller.register(fd, select.POLLIN)
    info = _rt("hello")
    BOARD = info["board"]
    NAME = BOARD["name"]
    _mode = info["mode"]
    _rate = info["rate"]
    _set_rtc(info)
    _cause = info["cause"]
    _uid = unhexlify(info["uid"])


def _detached_board():
    global BOARD, NAME
    here = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
    try:
        with open(here + "/esp32.json") as f:
            BOARD = json.load(f)
    except OSError:
        BOARD = {"name": "esp32", "pins": {}, "link": {"max_frame": 1024, "window": 4}}
    NAME = BOARD["name"]


# --- clock ---------------------------------------------------------------------------------
def ticks_ms():
    return _dev_ms() & (TICKS_PERIOD - 1)


def sleep_ms(ms):
    ms = max(0, int(ms))
    if _ch is not None and _mode == "real":
        _drain()            # a mode change (else _rt takes pushes with the answer)
    if _mode == "real" or _ch is None:
        _time.sleep_ms(int(ms / _rate))
    elif not _lease_wait(ms):
        _rt("sleep", ms, *_watch_arg())
        _prefetched()
        _start_lease()


def wait(ms):
    """Sleep up to `ms`; True at once when the link has input (at the current sim time).
    The time is booked as a real HAL would spend it (hal_machine.wait): asleep, except
    within LINK_LINGER_MS of link input, when a board stays awake for the host's resend."""
    global _power
    t0 = ticks_ms()
    if _power is None:
        _power = PowerAccount(t0)
    _power.advance(t0)
    woke = _wait(ms)
    t1 = ticks_ms()
    if not _power.lingering(t0):
        _power.slept(ms, ticks_diff(t1, t0))
    if woke and link.any():
        _power.link_seen(t1)
    _power.advance(t1)
    return woke


_power = None


def power_stats():
    return _power.stats(ticks_ms()) if _power is not None else None


def _wait(ms):
    # The supervisor would answer at once too (hal_ops._wait looks at the bytes the VM has
    # not read), but this poll stays: without it the VM's CPU a wake went up, not down, by
    # 7-10 us in the HAL floor (2026-12-04, /proc/PID/schedstat, three runs each).
    if link.any():
        return True
    ms = max(0, int(ms))
    # With wake sources armed the supervisor must see the wait (it ends it on an edge), in
    # real-time mode too.
    if _ch is not None and _mode == "real":
        _drain()
    if (_mode == "real" and not _woke_armed) or _ch is None:
        return link.poll_ms(int(ms / _rate))
    if _lease_wait(ms):
        return False
    woke = bool(_rt("wait", ms, *_watch_arg()))
    _prefetched()
    _start_lease()
    return woke


def _start_lease():
    # The lease the wake's answer carried: [end device ms, per watched read the device ms
    # of each +1 ([]: constant) or None (not prefetched: a read of it asks, ending the
    # lease)], on top of the prefetched values.
    global _lease_end, _lease_steps, _lease_mask, _lease_msg, _lease_t0
    m = _lease_msg
    _lease_msg = None
    if not m or _mode != "paused":
        return
    steps = m[1]
    mask = 0
    i = 0
    n = min(len(steps), _watch_n)
    while i < n:
        if steps[i] is not None and _cache & (1 << i):
            _lease_base[i] = _vals[i]
            _lease_pos[i] = 0
            mask |= 1 << i
        i += 1
    _lease_steps = steps
    _lease_mask = mask
    _lease_t0 = _last_dev
    _lease_end = m[0]


def _lease_wait(ms):
    """A wait (or sleep) of `ms` run here on the lease: True when taken (the clock moved, the
    reads set as they are at the new instant), False when it needs the supervisor."""
    global _last_dev, _base_dev, _cache, _lease_moved, _fed
    if not _lease_end:
        return False
    now = _last_dev + ms
    if ms <= 0 or now > _lease_end:
        return False
    if _wdt_ms and now >= _fed_at + _wdt_ms:
        return False        # the watchdog fires first: the supervisor's to do, at its instant
    _drain()                # a push (a world change) ends the lease
    if not _lease_end:
        return False
    _fed = False            # a feed in the wake that ends here: told by the lease line
    _last_dev = _base_dev = now
    mask = _lease_mask
    steps = _lease_steps
    i = 0
    while i < _watch_n:
        if mask & (1 << i):
            s = steps[i]
            if s:
                p = _lease_pos[i]
                k = len(s)
                while p < k and s[p] <= now:
                    p += 1
                _lease_pos[i] = p
                _vals[i] = _lease_base[i] + p
        i += 1
    _cache = mask
    _lease_moved += 1
    return True


def _watch_arg():
    # The reads to prefetch at the next wake, sent only when the list grew.
    global _watch_sent
    if _watch_n == _watch_sent:
        return ()
    _watch_sent = _watch_n
    return ([_w_op[i] + ":" + _w_name[i] for i in range(_watch_n)],)


def _prefetched():
    global _cache, _extra
    _cache = 0
    if _extra:
        i = 0
        for value in _extra:
            if value is not None and i < _watch_n:
                _vals[i] = value[0]
                _cache |= 1 << i
            i += 1
    _extra = None


def _read(op, name):
    global _watch_n
    n = _watch_n
    i = 0
    while i < n and not (_w_op[i] == op and _w_name[i] == name):
        i += 1
    if _cache:
        if _time.ticks_ms() != _polled:     # _drain's own check, without the call
            _drain()
        if _cache & (1 << i):           # i == n: never set
            return _vals[i]
    value = _rt(op, name)
    if _mode == "paused" and i == n and n < _WATCH_MAX:
        _w_op[n] = op
        _w_name[n] = name
        _watch_n = n + 1
    return value


def time():
    dev = _dev_ms()         # first: it takes a push that may set the RTC
    if _rtc_ms is None:
        return None
    d = dev - _rtc_dev
    return (_rtc_ms + d + d * _rtc_ppb // 1000000000) // 1000


def set_time(unix):
    global _rtc_ms, _rtc_dev
    unix = int(unix)
    if unix < 0:
        raise ValueError("set_time: unix seconds must be >= 0")
    _rtc_dev = _dev_ms()
    _rtc_ms = unix * 1000
    _rt("set_time", unix)


def deep_sleep(ms):
    _rt("deep_sleep", max(0, int(ms)))
    while True:            # the supervisor has cut us off; never return to the caller
        _time.sleep_ms(1000)


# --- system --------------------------------------------------------------------------------
def reset_cause():
    return _cause


def reset(reason=None):
    # The supervisor tells every reset's cause exactly: no record to write (hal_machine's).
    _rt("reset")
    while True:
        _time.sleep_ms(1000)


def reset_reason():
    return None


def unique_id():
    return _uid


def random_bytes(n):
    return os.urandom(n)


# The network seam (SPEC 13): the unix VM's sockets reach the host network; whether the
# board's "Wi-Fi" is up is the world's (quantity `network`: `emu set ID network=false`).
def net_up(cfg):
    return bool(_rt("net")) if _ch is not None else True


def net_route(host, port):
    """The emulator's relay standing for host:port (boards/emu_socket.py: the board's TCP
    connections cross the world's latency and loss); None without a supervisor."""
    return _rt("net_route", host, port) if _ch is not None else None


net_downs = 0       # a battery device's radio switched off between reports (no world effect)


def net_down(cfg):
    global net_downs
    net_downs += 1


def wdt_start(timeout_ms):
    timeout_ms = int(timeout_ms)
    if timeout_ms < 1:
        raise ValueError("wdt_start: timeout_ms must be >= 1")
    global _wdt_ms, _fed_at
    _rt("wdt_start", timeout_ms)
    _wdt_ms = timeout_ms
    _fed_at = _last_dev


# Paused time stands still while the board runs, so a feed told with the next request is
# a feed at the same device instant: the wait that ends the wake carries it, one message a
# wake saved (the supervisor's share of a provisioned meter's wake was a third feeds).
_fed = False


def wdt_feed():
    global _fed, _fed_at
    if _ch is None:
        return
    if _mode == "paused":
        _fed = True
        _fed_at = _last_dev
    else:
        _ch.write(b'[0,"wdt_feed"]\n')     # every wake feeds: no encoding on that path


def maintenance_guard(ms):
    """What hal_machine's timer does on a board: the watchdog held off for `ms`, then a
    reset; 0 cancels (firmware/core/maintenance.py)."""
    _rt("maint_guard", max(0, int(ms)))


def storage_root():
    # emu_launch mounts the board's flash directory at "/", as littlefs is on a real board.
    return ""


def _flash_note(kind, nbytes):
    global _flash_held
    if _mode == "paused":
        _flash_held += 1
    else:
        _notify("flash", kind, nbytes)


class EmuFlash(Flash):
    """Plain flash whose every operation first asks the supervisor whether power holds."""

    def write(self, f, data):
        if not _flash_sync:
            _flash_note("write", len(data))
            Flash.write(self, f, data)
            return
        cut = _rt("flash", "write", len(data))
        if cut is not None:
            if cut:
                f.write(data[:cut])
            try:
                f.flush()
            except OSError:
                pass
            _rt("die", "brownout")
        Flash.write(self, f, data)

    def rename(self, src, dst):
        if not _flash_sync:
            _flash_note("rename", 0)
        elif _rt("flash", "rename", 0) is not None:
            _rt("die", "brownout")
        Flash.rename(self, src, dst)

    def remove(self, path):
        if not _flash_sync:
            _flash_note("remove", 0)
        elif _rt("flash", "remove", 0) is not None:
            _rt("die", "brownout")
        Flash.remove(self, path)


flash = EmuFlash()


# --- peripherals (values come from the board's world model) --------------------------------
def pulse_count(name):
    return _read("pulse", name)


def adc_read(name):
    return _read("adc", name)


def sensor_read(name):
    # Prefetched only where the world says the read is pure (an SHT3x's temperature at an
    # instant); a scanner's queued code or a noisy echo is read at its own read: the
    # supervisor sends no value ahead for those, and this asks.
    return _read("sensor", name)


def input(name):  # noqa: A001 - the HAL contract names it so
    return bool(_read("input", name))


def output(name, value):
    global _cache
    _cache = 0              # an output can feed back into what the inputs read
    _rt("output", name, bool(value))


def output_state(name):
    return _rt("output_state", name)


def card_uid():
    # A pure read (the card on the reader, or none): prefetched with each wake in paused
    # time like a pin, so a kiosk polling its reader costs one round trip a wake, not two.
    uid = _read("card", "reader")
    return None if uid is None else unhexlify(uid)


# --- wake sources: the supervisor watches the armed inputs and ends a wait() on an edge ----
_woke_armed = False


def wake_on(name):
    global _woke_armed
    _rt("wake_on", name)
    _woke_armed = True


def wakes():
    return tuple(_rt("wakes"))


def sensor_alert(name, high):
    global _cache
    _cache = 0              # the alert pin an input reads follows the new limit
    _rt("sensor_alert", name, float(high))


_detached_board()
