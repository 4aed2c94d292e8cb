"""The supervisor's side of the HAL side channel: one handler per operation.

Requests are [id, op, args...] from boards/hal_emu.py; every handler either answers with
`board.reply(id, value)`, parks the request (sleep, wait), or ends the VM (reset, deep sleep,
brown-out). A Refused error becomes hal.HalError on the device with the same message.
"""
import math

from edgekit.board_defs import device_view
from edgekit.emu.world import HardwareFault

_STRAP = "maint_strap"      # the maintenance strap (SPEC 12), in every world


class Refused(Exception):
    """The request is invalid for this board or the peripheral failed."""


def handle(board, req_id, op, args):
    fn = _OPS.get(op)
    if fn is None:
        raise Refused(f"unknown HAL operation {op!r}: boards/hal_emu.py and the emulator "
                      "are from different versions")
    try:
        fn(board, req_id, *args)
    except TypeError as exc:
        raise Refused(f"HAL operation {op!r}: bad arguments ({exc})") from None


def _role(board, name, mode):
    pins = board.board["pins"]
    entry = pins.get(name)
    if entry is None:
        raise Refused(f"board {board.board['name']} has no pin role {name!r}; roles: "
                      f"{', '.join(sorted(pins))}")
    if entry["mode"] != mode:
        raise Refused(f"pin role {name!r} of board {board.board['name']} is "
                      f"{entry['mode']!r}, not {mode!r}")
    return entry


def _now_world(board):
    board.world.advance_to(board.clock.now())


def _read(board, req_id, op, name):
    _now_world(board)
    try:
        return board.world.read(op, name)
    except HardwareFault as exc:
        raise Refused(str(exc)) from None


# --- boot and clock -----------------------------------------------------------------------
def _hello(board, req_id):
    board.state = "running"
    info = board.clock_info()
    info.update({"board": device_view(board.board), "cause": board.cause,
                 "uid": board.uid.hex()})
    board.reply(req_id, info)


def _now(board, req_id):
    board.reply(req_id, None)


def _sleep(board, req_id, ms, watch=None):
    _set_watch(board, watch)
    board.park(req_id, "sleep", max(0, int(ms)))


def _wait(board, req_id, ms, watch=None):
    _set_watch(board, watch)
    # A wake input latched while the firmware was busy ends the wait at once, as a pending
    # pin IRQ does on a board.
    if board.vm.unread_input() > 0 or board.woken:
        board.reply(req_id, True, extra=prefetch(board))     # (no lease: input waits)
        return
    board.park(req_id, "wait", max(0, int(ms)))


def _set_watch(board, watch):
    # The reads the firmware made during its last wake ("op:name", bounded by hal_emu):
    # answered ahead with each wake in paused time (see prefetch).
    if watch is not None:
        board.watch = [tuple(k.split(":", 1)) for k in watch[:16] if isinstance(k, str)]


def prefetch(board):
    """Paused time: the watched reads at this instant, [value] each or None (not sent: the
    firmware asks). Time is frozen while the board runs, so these are exactly what each
    read would answer. Faulted reads are left out: a stuck value freezes at its own read."""
    if board.clock.mode != "paused" or not board.watch:
        return None
    if board.world.faults:
        return [None] * len(board.watch)
    _now_world(board)
    out = []
    for op, name in board.watch:
        fn = _READS.get(op)
        try:
            out.append(None if fn is None else [fn(board, name)])
        except Refused:
            out.append(None)
    return out


# --- leases (paused time, during an advance; boards/hal_emu.py says what the VM does) -------
LEASE_MAX_MS = 3600000.0    # world ms one lease reaches at most: the VM's CPU in one stays
                            # far under the hang limit (_BUSY_CPU_S, 1 s; an idle kiosk's
                            # 7,200 wakes of 500 ms are about 0.1 s)
LEASE_STEPS = 32            # pulse steps per counter in one lease (a list in the VM's heap)


def lease(board, extra):
    """[end device ms, [per watched read: the device ms of each +1 ([]: constant; None: not
    leased, the VM asks)]], or None.

    Granted only when the supervisor knows everything that can happen until the end: an
    advance is running (its target bounds the lease), no fault, no armed brown-out, no host
    byte waiting, no network socket (those run in wall time), and the world says its reads
    stay steady (World.steady_until) but for pulse counters whose steps it can tell
    (World.pulse_steps). The next event but the watchdog's (the VM keeps the watchdog), the
    next driven row and the world's own next change end it the device ms before. A pulse step is counted from the first whole device ms at or after
    the world's crossing, as a wake at that ms would read it; should float rounding put the
    world a hair behind there, a later read answers at least what the lease let the VM count
    (board.pulse_leased): a counter never goes back."""
    if (not board.lease_on or board._advancing is None or board.clock.mode != "paused"
            or not extra or len(extra) != len(board.watch) or board.world.faults
            or board.brownout_after is not None or board.uart.to_vm or board.woken
            or board.net.used()):
        return None
    clock, world = board.clock, board.world
    t0 = clock.now()
    # The advance's target is inclusive (a wake at it is the advance's last); what changes
    # at an instant (an event, a driven row, the next pulse past the list) is not: a wake
    # there must see the change, so the lease ends the device ms before.
    target = min(board._advancing[0], t0 + LEASE_MAX_MS)
    change = [t for t in (clock.next_event_but("wdt"), world.next_change()) if t is not None]
    end = min([target] + change)
    steady = world.steady_until(t0, end)
    if steady <= t0:
        return None
    if steady < end:                # the world changes by itself there
        change.append(steady)
        end = steady
    pulses = []
    for (op, name), value in zip(board.watch, extra):
        if op != "pulse" or value is None:
            pulses.append(None)
            continue
        got = world.pulse_steps(name, t0, end, LEASE_STEPS)
        if got is None:
            return None
        at, valid = got
        if valid < end:
            change.append(valid)
            end = valid
        pulses.append(at)
    end_dev = clock.device_ms(min(end, target))
    if change:
        end_dev = min(end_dev, clock.device_ms_from(min(change)) - 1)
    if end_dev <= clock.device_ms(t0):
        return None
    steps = []
    board.lease_granted = []
    for (op, name), at, value in zip(board.watch, pulses, extra):
        if value is None:           # not prefetched (a read that fails now: the PM sensor
            steps.append(None)      # unpowered): the VM asks, which ends the lease
            continue
        dev = [] if at is None else [clock.device_ms_from(t) for t in at]
        dev = [d for d in dev if d <= end_dev]
        steps.append(dev)
        if dev:
            board.lease_granted.append((name, value[0], dev))
    return [end_dev, steps]


def _lease(board, req_id, dev_ms, fed_ms=None, wakes=0):
    """The VM ran wakes on its lease up to device ms `dev_ms` (feeding the watchdog last at
    `fed_ms`): the clock and the world catch up, before what the VM sends next."""
    clock = board.clock
    if fed_ms is not None and board.wdt_ms:
        clock.jump(clock.world_at_device_ms(int(fed_ms)))
        _wdt_schedule(board)
    clock.jump(clock.world_at_device_ms(int(dev_ms)))
    board.world.advance_to(clock.now())
    board.lease_wakes += int(wakes)
    for name, base, dev in board.lease_granted:
        counted = base + sum(1 for d in dev if d <= dev_ms)
        board.pulse_leased[name] = max(board.pulse_leased.get(name, 0), counted)


def _set_time(board, req_id, unix):
    board.set_rtc(unix)
    board.reply(req_id, None)


def _deep_sleep(board, req_id, ms):
    clock = board.clock
    wake = clock.world_after_device_ms(int(ms)) if int(ms) > 0 else None

    def asleep():
        clock.sleep(math.inf)
        if wake is not None:
            clock.at(wake, "wake", lambda: board.power_on("deepsleep"))
        board._arm()
    board.kill(asleep)


def _reset(board, req_id):
    # hal.reset() lets the link's transmitter finish first (a real HAL flushes its UART
    # before machine.reset()): what the firmware wrote before asking reaches the host.
    board.uart.send_to_host(board._filter_output(board.uart.drain_vm()))
    board.reset("hard")


def _die(board, req_id, cause="brownout"):
    board.reset(cause if cause in ("brownout", "hard", "watchdog") else "hard")


# --- watchdog -----------------------------------------------------------------------------
def _wdt_schedule(board):
    board.clock.cancel("wdt")
    board.clock.at(board.clock.world_after_device_ms(board.wdt_ms), "wdt",
                   lambda: board.reset("watchdog"))
    board._arm()


def _wdt_start(board, req_id, ms):
    ms = int(ms)
    if ms < 1:
        raise Refused("wdt_start: timeout must be >= 1 ms")
    limit = board.board.get("wdt_max_ms")
    if limit and ms > limit:
        raise Refused(f"wdt_start: {ms} ms is above the {board.board['name']} watchdog's "
                      f"hardware limit of {limit} ms; feed more often")
    board.wdt_ms = ms
    _wdt_schedule(board)
    board.reply(req_id, None)


def _wdt_feed(board, req_id):
    if board.wdt_ms:
        _wdt_schedule(board)


def _maint_guard(board, req_id, ms):
    # hal.maintenance_guard (firmware/core/maintenance.py): what hal_machine's timer does on a
    # board: the watchdog kept fed for `ms`, then a reset; 0 cancels (the watchdog then runs
    # again from now).
    ms = int(ms)
    maint_stop(board)
    if ms > 0:
        board.clock.cancel("wdt")
        board.clock.at(board.clock.world_after_device_ms(ms), "maint",
                       lambda: board.reset("hard"))
        board._arm()
    board.reply(req_id, None)


def maint_stop(board):
    """The guard's timer stops (a cancel, any reset: ports deinit their timers); a running
    watchdog counts from now, as after the timer's last feed."""
    if any(name == "maint" for _, name in board.clock.pending()):
        board.clock.cancel("maint")
        if board.wdt_ms:
            _wdt_schedule(board)


# --- flash --------------------------------------------------------------------------------
def _flash(board, req_id, kind, nbytes=0):
    if kind == "held":
        # `nbytes` operations noted in paused time and sent with the next request
        # (hal_emu._send): each counted as if noted on its own, in order.
        for _ in range(max(0, int(nbytes))):
            if board.vm is None or board.state == "off":
                return
            vm = board.vm
            _flash(board, 0, "noted", 0)
            if board.vm is not vm:          # a brown-out fired: the rest never happened
                return
        return
    board.flash_ops += 1
    if board.brownout_after is not None:
        board.brownout_after -= 1
        if board.brownout_after <= 0:
            board.brownout_after = None
            board.push_clock()              # back to counting only
            if not req_id:
                # Counted, not asked (the VM had not seen the brown-out armed yet): the
                # operation is done; the power fails right after it.
                board.reset("brownout")
                return
            # A torn write keeps a random strict prefix; a rename/remove does not happen.
            cut = board.rng.randrange(int(nbytes)) if kind == "write" and nbytes > 0 else 0
            board.reply(req_id, cut)
            return
    board.reply(req_id, None)


# --- peripherals --------------------------------------------------------------------------
def _pulse_value(board, name):
    _role(board, name, "pulse")
    total = _read(board, None, "pulse", name)
    return max(0, int(total) - board.pulse_offset.get(name, 0),
               board.pulse_leased.get(name, 0))


def _adc_value(board, name):
    _role(board, name, "adc")
    return _read(board, None, "adc", name)


def _input_value(board, name):
    _role(board, name, "in")
    if name == _STRAP:      # the bench's jumper, the same in every kind's world
        return bool(board.world.values.get(_STRAP))
    return bool(_read(board, None, "input", name))


def _sensor_value(board, name):
    sensors = board.board.get("sensors", {})
    if name not in sensors:
        raise Refused(f"board {board.board['name']} has no sensor {name!r}; sensors: "
                      f"{', '.join(sorted(sensors)) or 'none'}")
    return _read(board, None, "sensor", name)


# What may be prefetched: reads that are functions of the world's state at an instant. Of the
# sensors only those the world names pure: a scanner's queued code is read once, a noisy
# sensor draws its noise per read.
_READS = {"pulse": _pulse_value, "adc": _adc_value, "input": _input_value}


def _net(board, req_id):
    """Is the board's network up (world quantity `network`, SPEC 13)?"""
    _now_world(board)
    board.reply(req_id, bool(board.world.values.get("network", True)))


def _net_route(board, req_id, host, port):
    """The local port standing for host:port on the board's network path (boards/
    emu_socket.py asks when the firmware resolves a host for a TCP connection)."""
    if not isinstance(host, str) or not host or not isinstance(port, int) \
            or not 0 < port < 65536:
        raise Refused(f"net_route: host {host!r} port {port!r}: a host name and a port "
                      "1..65535")
    try:
        board.reply(req_id, board.net.route(host, port))
    except OSError as exc:
        raise Refused(f"net_route: the emulator could not open a relay ({exc})") from None


def _pulse(board, req_id, name):
    board.reply(req_id, _pulse_value(board, name))


def _adc(board, req_id, name):
    board.reply(req_id, _adc_value(board, name))


def _input(board, req_id, name):
    board.reply(req_id, _input_value(board, name))


def _sensor(board, req_id, name):
    board.reply(req_id, _sensor_value(board, name))


def _output(board, req_id, name, value):
    _role(board, name, "out")
    _now_world(board)
    board.world.output(name, value)
    board.reply(req_id, None)


def _output_state(board, req_id, name):
    _role(board, name, "out")
    board.reply(req_id, board.world.output_state(name))


def _card_value(board, name=None):
    # `name` is unused (one reader a board): the HAL's prefetch key, and absent from images
    # built before card reads were prefetched, which still ask plain "card".
    if "card_reader" not in board.board:
        raise Refused(f"board {board.board['name']} has no card reader")
    uid = board.world.card_uid()
    return None if uid is None else bytes(uid).hex()


def _card(board, req_id, name=None):
    _now_world(board)
    board.reply(req_id, _card_value(board, name))


def _pure_sensor_value(board, name):
    if not board.world.pure_read(name):
        raise Refused("read at its own instant")       # not prefetched: the firmware asks
    return _sensor_value(board, name)


_READS["card"] = _card_value
_READS["sensor"] = _pure_sensor_value


# --- wake sources -------------------------------------------------------------------------
def _wake_on(board, req_id, name):
    entry = _role(board, name, "in")
    if not entry.get("wake"):
        raise Refused(f"pin role {name!r} of board {board.board['name']} is not wired to a "
                      "wake-capable pin (\"wake\": true in the board definition)")
    board.arm_wake(name)
    board.reply(req_id, None)


def _wakes(board, req_id):
    fired, board.woken = board.woken, []
    board.reply(req_id, fired)


def _sensor_alert(board, req_id, name, high):
    spec = board.board.get("sensors", {}).get(name)
    if spec is None or not spec.get("alert"):
        raise Refused(f"sensor {name!r} of board {board.board['name']} has no alert output")
    _now_world(board)
    board.world.set_alert(name, float(high))
    board.reply(req_id, None)
    board.check_wakes()


_OPS = {
    "hello": _hello, "now": _now, "sleep": _sleep, "wait": _wait, "set_time": _set_time,
    "deep_sleep": _deep_sleep, "reset": _reset, "die": _die, "wdt_start": _wdt_start,
    "wdt_feed": _wdt_feed, "maint_guard": _maint_guard, "flash": _flash, "pulse": _pulse,
    "adc": _adc, "input": _input,
    "sensor": _sensor, "output": _output, "output_state": _output_state, "card": _card,
    "wake_on": _wake_on, "wakes": _wakes, "sensor_alert": _sensor_alert, "net": _net,
    "net_route": _net_route, "lease": _lease,
}
