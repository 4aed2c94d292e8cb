# Cooperative scheduler on the HAL clock: periodic and one-shot tasks with deadlines, sleep
# between them (link input wakes the sleep early, and so does an input a task armed as a
# wake source: hal.wake_on), a watchdog fed only while tasks make progress, an energy
# account (time awake per task) for battery-life estimates, and the device's uptime.
#
# Time: hal.ticks_ms() wraps (2**30 ms, 12.4 days, on every port) and ticks_diff is right
# only for spans under half that (6.2 days). So the scheduler reads the ticks at every pass
# (it wakes at least once a minute) and adds each small step to an uptime that never wraps,
# kept as seconds + a millisecond remainder (both stay small ints on a 32-bit port: no
# allocation per pass). Deadlines stay in ticks, each at most _SPAN ahead; a longer delay
# (a weekly report) is walked in _SPAN steps.
#
# Why cooperative: one stack, no locks, bounded RAM; every task is a short function that
# returns. A task that hangs stops the watchdog feed and the board resets (reset cause
# "watchdog"), which is the only sane recovery for a device no one will visit for years.
import time

from micropython import const

_MAX_TASKS = const(24)
_MAX_SLEEP_MS = const(60000)    # wake at least once a minute: watchdog and clock housekeeping
_FAIL_LIMIT = const(5)          # consecutive failures of a critical task before we stop feeding
_SPAN = const(0x10000000)       # 3.1 days: a deadline never lies further ahead in ticks
_PERIOD = const(0x40000000)     # ticks period of every port (MicroPython 32-bit small ints)
_HALF = const(0x20000000)       # above any ticks_diff (a small int on a 32-bit port too)


class Task:
    __slots__ = ("name", "fn", "period", "deadline", "due", "extra", "runs", "fails",
                 "misses", "awake_ms", "cpu_us", "critical", "last_ok", "wakes", "woken")

    def __init__(self, name, fn, period, deadline, due, critical, wakes=()):
        self.name = name
        self.fn = fn
        self.period = period        # ms; 0 = one-shot
        self.deadline = deadline    # ms a run may take before it counts as a miss
        self.due = due              # ticks when next due (or when the next _SPAN step ends)
        self.extra = 0              # ms still to wait after `due` (delays longer than _SPAN)
        self.runs = 0
        self.fails = 0              # consecutive failures
        self.misses = 0             # runs that exceeded their deadline
        self.awake_ms = 0           # summed run time on the HAL clock (energy account)
        self.cpu_us = 0             # summed run time on the CPU's own clock (see run_due)
        self.critical = critical
        self.last_ok = None
        self.wakes = wakes          # input roles whose activation runs this task at once
        self.woken = 0              # runs brought forward by such a wake


class Scheduler:
    def __init__(self, hal, wdt_timeout_ms=0, log=None):
        self.hal = hal
        self.tasks = []
        self.log = log
        self.started = hal.ticks_ms()
        self._mark = self.started   # ticks at the last pass
        self._period = getattr(hal, "TICKS_PERIOD", _PERIOD)
        self.up_s = 0               # uptime since the scheduler started: seconds ...
        self.up_ms = 0              # ... and the milliseconds past them
        self.slept_s = 0            # summed time spent asleep: seconds and ms past them
        self.slept_ms = 0           # (a ms sum outgrows a small int after 12 days asleep)
        self.errors = 0
        self.wdt = wdt_timeout_ms
        # Never sleep past half the watchdog period (RP2040's hardware limit is 8.4 s).
        self.max_sleep = min(_MAX_SLEEP_MS, wdt_timeout_ms // 2) if wdt_timeout_ms \
            else _MAX_SLEEP_MS
        self._stop = False
        self._order = ()            # the tasks as a pass walks them (see _changed)
        self._changed = False       # a task was added or removed during a pass
        self.wake_roles = []        # inputs armed with hal.wake_on (bounded by the board's pins)
        self.unarmed = []           # roles that could not be armed: their tasks only poll
        if wdt_timeout_ms:
            hal.wdt_start(wdt_timeout_ms)

    def every(self, name, period_ms, fn, deadline_ms=1000, phase_ms=0, critical=False,
              wakes=()):
        """A periodic task. `wakes`: input roles (tilt, lid, temp_alert...) whose activation
        wakes the board and runs this task at once instead of at its next period."""
        for role in wakes:
            self._arm(role)
        task = Task(name, fn, period_ms, deadline_ms, 0, critical, wakes)
        self._due_in(task, self.hal.ticks_ms(), phase_ms)
        return self._add(task)

    # -- time -------------------------------------------------------------------------------
    def tick(self):
        """Read the ticks and add the step since the last read to the uptime; return the
        uptime in whole seconds. Runs at every pass and whenever the runtime reads time."""
        now = self.hal.ticks_ms()
        d = self.hal.ticks_diff(now, self._mark)
        if d < 0:
            # More than half a period since the last read (the loop wakes every minute, so
            # only a board stalled for days): the step was d + one period, not negative.
            d += self._period
        self._mark = now
        if d:
            ms = self.up_ms + d
            if ms >= 1000:
                self.up_s += ms // 1000
                ms %= 1000
            self.up_ms = ms
        return self.up_s

    def uptime_ms(self):
        s = self.tick()
        return s * 1000 + self.up_ms    # a long int after 12 days on a 32-bit port: on demand

    def _due_in(self, task, base, delay_ms):
        # A deadline further than _SPAN ahead would read as past (ticks_diff turns negative
        # beyond half a period): take a step of at most _SPAN and remember the rest.
        step = delay_ms if delay_ms <= _SPAN else _SPAN
        task.due = self.hal.ticks_add(base, step)
        task.extra = delay_ms - step

    def _arm(self, role):
        if role in self.wake_roles or role in self.unarmed:
            return
        try:
            self.hal.wake_on(role)
            self.wake_roles.append(role)
        except (OSError, AttributeError) as exc:
            # A board without that pin (or an old HAL): the task still runs every period.
            self.unarmed.append(role)
            if self.log:
                self.log("%s cannot wake the board (%s): polled instead" % (role, exc))

    def _woken(self, roles):
        now = self.hal.ticks_ms()
        for task in self.tasks:
            for role in roles:
                if role in task.wakes:
                    task.due = now
                    task.extra = 0
                    task.woken += 1
                    break

    def after(self, name, delay_ms, fn, deadline_ms=1000):
        self.cancel(name)
        task = Task(name, fn, 0, deadline_ms, 0, False)
        self._due_in(task, self.hal.ticks_ms(), delay_ms)
        return self._add(task)

    def cancel(self, name):
        for t in self.tasks:
            if t.name == name:
                self._remove(t)
                return True
        return False

    def _add(self, task):
        if len(self.tasks) >= _MAX_TASKS:
            raise ValueError("too many tasks")
        self.cancel(task.name)
        self.tasks.append(task)
        self._tasks_changed()
        return task

    def _remove(self, task):
        self.tasks.remove(task)
        self._tasks_changed()

    def _tasks_changed(self):
        # A pass walks a snapshot, as it walked a copy of the list before; the snapshot is
        # made here, when the tasks change (a few times a day), not at every pass.
        self._order = tuple(self.tasks)
        self._changed = True

    def stop(self):
        self._stop = True

    def run_due(self):
        """Run every task that is due; return ms until the next one is due."""
        hal = self.hal
        diff = hal.ticks_diff
        healthy = True
        self.tick()
        # The clock is read again only after a task ran: skipping a task that is not due
        # takes no time worth reading (in the emulator each read is a HAL call, and a
        # meter checks seven tasks at every wake). Dues are taken relative to the pass's
        # first reading `t0` (all lie within _SPAN of it, far inside half a ticks period,
        # so d - el is exactly ticks_diff(due, now)); the earliest seen gives the wait
        # without a second walk over the tasks.
        t0 = now = self._mark
        el = 0                      # ms from t0 to now
        soon = _HALF                # the earliest due seen, ms after t0
        self._changed = False
        for task in self._order:
            d = diff(task.due, t0)
            if d > el:
                if d < soon:
                    soon = d
                continue
            if task.extra:              # one _SPAN step of a long delay is over: next one
                self._due_in(task, task.due, task.extra)
                d = diff(task.due, t0)
                if d < soon:
                    soon = d
                continue
            start = now
            cpu0 = time.ticks_us()
            try:
                task.fn()
                task.fails = 0
                task.last_ok = start
            except Exception as exc:  # a task failing must not stop the others
                task.fails += 1
                self.errors += 1
                if self.log:
                    self.log("task %s failed: %r" % (task.name, exc))
            # CPU time on the processor's own clock: on a board the same as the HAL clock; in
            # the emulator the simulated clock stands still while code runs, so this is what
            # the energy estimate scales to a board's speed.
            task.cpu_us += time.ticks_diff(time.ticks_us(), cpu0)
            now = hal.ticks_ms()
            elapsed = diff(now, start)
            el += elapsed
            task.runs += 1
            task.awake_ms += elapsed
            if elapsed > task.deadline:
                task.misses += 1
            if task.critical and task.fails >= _FAIL_LIMIT:
                healthy = False
            if task.period:
                # Keep the phase; skip missed periods rather than bunching them up. ticks_add,
                # not +: ticks wrap (2**30 ms on most ports, about 12 days).
                self._due_in(task, task.due, task.period)
                if not task.extra and diff(task.due, now) <= 0:
                    self._due_in(task, now, task.period)
                d = diff(task.due, t0)
                if d < soon:
                    soon = d
            elif task in self.tasks:
                self.tasks.remove(task)     # done: no due of its own to count
                self._order = tuple(self.tasks)
        if healthy and self.wdt:
            hal.wdt_feed()
        if self._changed:
            # A task added, cancelled or rescheduled another (a retry, a hurry): walk them.
            return self.next_due_ms()
        wait = soon - diff(hal.ticks_ms(), t0)
        if wait > self.max_sleep:
            return self.max_sleep
        return wait if wait > 0 else 0

    def next_due_ms(self):
        now = self.hal.ticks_ms()
        wait = self.max_sleep
        for task in self.tasks:
            d = self.hal.ticks_diff(task.due, now)
            if d < wait:
                wait = d
        return wait if wait > 0 else 0

    def run(self, on_input=None, until=None):
        """Main loop. `on_input()` runs when the link has bytes; `until()` ends the loop."""
        hal = self.hal
        self._stop = False
        while not self._stop and not (until and until()):
            wait = self.run_due()
            if wait:
                t0 = hal.ticks_ms()
                woke = hal.wait(wait)
                ms = self.slept_ms + hal.ticks_diff(hal.ticks_ms(), t0)
                if ms >= 1000:
                    self.slept_s += ms // 1000
                    ms %= 1000
                self.slept_ms = ms
                fired = hal.wakes() if woke and self.wake_roles else ()
                if fired:
                    self._woken(fired)
                if woke and on_input and (not fired or hal.link.any()):
                    on_input()
            elif on_input and hal.link.any():
                on_input()

    # -- energy account -------------------------------------------------------------------
    def energy(self):
        total = self.uptime_ms()
        awake = 0
        woken = 0
        per_task = {}
        for t in self.tasks:
            awake += t.awake_ms
            woken += t.woken
            per_task[t.name] = [t.runs, t.awake_ms, t.cpu_us]
        return {"elapsed_ms": total, "awake_ms": awake,
                "sleep_ms": self.slept_s * 1000 + self.slept_ms,
                "tasks": per_task, "woken": woken, "wake_roles": self.wake_roles}
