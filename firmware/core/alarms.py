# Alarm engine shared by every app: an alarm is SET when its condition has held for
# `set_after` seconds and CLEARED when it has been false for `clear_after` seconds
# (hysteresis in time, so a flickering sensor gives one alarm, not a storm). Each alarm reports
# how long it has lasted. Events per alarm are capped per period: a broken sensor cannot flood
# the link or the journal; suppressed transitions are counted and reported with the next
# event that gets through.
from micropython import const

_DAY = const(86400)


class Alarm:
    __slots__ = ("name", "set_after", "clear_after", "severity", "active", "since",
                 "pending_since", "events", "period_start", "suppressed")

    def __init__(self, name, set_after, clear_after, severity):
        self.name = name
        self.set_after = set_after
        self.clear_after = clear_after
        self.severity = severity
        self.active = False
        self.since = None           # when the current state (set) began
        self.pending_since = None   # when the condition first disagreed with the state
        self.events = 0             # events emitted in the current period
        self.period_start = None
        self.suppressed = 0


class Alarms:
    def __init__(self, emit, max_events=4, period=_DAY):
        self._alarms = {}
        self._emit = emit           # emit(name, active, duration_s, severity, suppressed)
        self.max_events = max_events
        self.period = period

    def define(self, name, set_after=0, clear_after=0, severity=2):
        self._alarms[name] = Alarm(name, set_after, clear_after, severity)

    def update(self, name, condition, now, since=None):
        """Feed the condition's current value at time `now` (seconds). Returns True on a
        state change (set or clear). `since`: when the condition really began, for
        conditions judged over a window (a leak began when the flow last stopped, a day
        before it is recognised); durations then count from there."""
        a = self._alarms[name]
        if bool(condition) == a.active:
            a.pending_since = None
            return False
        if a.pending_since is None:
            a.pending_since = now
        hold = a.clear_after if a.active else a.set_after
        if now - a.pending_since < hold:
            return False
        started = a.pending_since
        a.pending_since = None
        if a.active:
            duration = now - a.since
            a.active = False
            a.since = None
            self._send(a, False, duration, now)
        else:
            a.active = True
            a.since = started if since is None else since
            self._send(a, True, now - a.since, now)
        return True

    def _send(self, a, active, duration, now):
        if a.period_start is None or now - a.period_start >= self.period:
            a.period_start = now
            a.events = 0
        if a.events >= self.max_events:
            a.suppressed += 1
            return
        a.events += 1
        suppressed = a.suppressed
        a.suppressed = 0
        self._emit(a.name, active, duration, a.severity, suppressed)

    def is_active(self, name):
        return self._alarms[name].active

    def active(self, now):
        """[(name, seconds active)] for every set alarm."""
        return [(a.name, now - a.since) for a in self._alarms.values() if a.active]

    # Alarm state survives reboots (a leak that began yesterday is still a day old after a
    # power cut): the app persists this small dict with its checkpoint.
    def state(self):
        return {a.name: [a.active, a.since, a.events, a.period_start, a.suppressed]
                for a in self._alarms.values()}

    def restore(self, state):
        for name, values in (state or {}).items():
            a = self._alarms.get(name)
            if a is not None and isinstance(values, list) and len(values) == 5:
                a.active, a.since, a.events, a.period_start, a.suppressed = values
