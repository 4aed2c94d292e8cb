# The core of the strict per-port `machine` shims (tests/firmware/shims/<port>/): a virtual
# clock, pin levels driven by scheduled events, IRQs delivered hard (at the edge) or soft
# (queued, run later, as mp_sched_schedule does), and the state that survives a reset
# (`/.shim.json` on the test's root: the reset cause the next boot reads, events log).
# The shims exist so the real HALs run inside the real MicroPython VM against the ports'
# own signatures; each shim names the port source it follows.
import json

STATE = "/.shim.json"
try:
    with open(STATE) as f:
        state = json.load(f)
except OSError:
    state = {}
state.setdefault("cause", 1)
state.setdefault("log", [])

now_us = 0
levels = {}             # pin number -> 0/1 (inputs default high: pulled up)
events = []             # [t_us, pin, level], sorted; applied as the clock passes them
_next = [0]             # index of the first event not applied yet
busy_until = 0          # the VM cannot run soft IRQ handlers before this time (us)
queue = []              # soft IRQ callbacks waiting: (fn, arg)
QUEUE_DEPTH = 8         # MICROPY_SCHEDULER_DEPTH on both ports
edge_hooks = []         # fn(pin, level, t_us) called on every level change (IRQ, PCNT)
clocked = True          # False in light sleep: digital peripherals are clock-gated


class Reset(BaseException):
    """machine.reset()/deepsleep() ended this boot: the test catches it."""


def log(*item):
    state["log"].append(list(item))


def save():
    with open(STATE, "w") as f:
        json.dump(state, f)


def reboot(cause):
    state["cause"] = cause
    save()
    raise Reset(cause)


def level(n):
    return levels.get(n, 1)


def _resort():
    i = _next[0]
    events[i:] = sorted(events[i:])


def schedule(t_ms, pin, lvl):
    events.append([int(t_ms * 1000), pin, lvl])
    _resort()


trains = []             # pulse trains, generated edge by edge: [t_us, pin, level, left,
                        #  period_us, low_us]


def pulses(pin, n, start_ms, period_ms, low_ms):
    """n pulses (falling, then rising `low_ms` later) on `pin`, one per `period_ms`."""
    if n > 0:
        trains.append([int(start_ms * 1000), pin, 0, n, int(period_ms * 1000),
                       int(low_ms * 1000)])


def _peek():
    """The next edge due, from the event list or a train: (t_us, pin, level, train)."""
    best = None
    if _next[0] < len(events):
        e = events[_next[0]]
        best = (e[0], e[1], e[2], None)
    for tr in trains:
        if best is None or tr[0] < best[0]:
            best = (tr[0], tr[1], tr[2], tr)
    return best


def _take(nxt):
    tr = nxt[3]
    if tr is None:
        _next[0] += 1
        return
    if tr[2] == 0:              # fell: rise after low_us
        tr[2] = 1
        tr[0] += tr[5]
    else:                       # rose: the next pulse, if any
        tr[3] -= 1
        tr[2] = 0
        tr[0] += tr[4] - tr[5]
        if tr[3] <= 0:
            trains.remove(tr)


def _apply(ev):
    global now_us
    now_us = max(now_us, ev[0])
    if levels.get(ev[1], 1) != ev[2]:
        levels[ev[1]] = ev[2]
        for hook in edge_hooks:
            hook(ev[1], ev[2], ev[0])


def run_soft():
    """What the VM does at its next branch: run the queued soft IRQ handlers, now."""
    while queue:
        fn, arg = queue.pop(0)
        fn(arg)


def soft(fn, arg):
    if len(queue) < QUEUE_DEPTH:
        queue.append((fn, arg))
    else:
        log("sched_queue_full")


def advance_to(t_us, stop=None):
    """Move the clock to t_us, applying events on the way; `stop(ev)` True ends it early
    at that event (a wake source). Returns the event that stopped it, or None."""
    global now_us
    while True:
        nxt = _peek()
        if nxt is None or nxt[0] > t_us:
            break
        ev = [nxt[0], nxt[1], nxt[2]]
        _take(nxt)
        _apply(ev)
        if stop is not None and stop(ev):
            return ev
        if now_us >= busy_until:
            run_soft()
    now_us = max(now_us, t_us)
    if now_us >= busy_until:
        run_soft()
    return None


def busy(ms):
    """The VM is stuck in C code (e.g. a blocking UART write) for `ms`: edges still happen,
    soft handlers wait until it ends."""
    global busy_until
    busy_until = now_us + int(ms * 1000)
    advance_to(busy_until)
