"""Simulated time of one board: world time as a function of wall time, per time mode.

World time (ms since the board was created) is the truth the world model integrates over;
the device clock is derived from it with the board's drift. How fast world time moves
depends on the mode and on what the board is doing:

  mode      running (CPU busy)   asleep in hal.sleep_ms / hal.wait / deep sleep
  virtual   1x wall              skipped at once (or `speed` x wall when capped)
  real      1x wall              1x wall
  paused    frozen               frozen; `advance()` moves it, event by event

CPU time counts as real time in virtual mode, so firmware that busy-waits on ticks_ms()
still finishes, and idle time costs nothing, which is what makes a simulated day pass in
seconds.
"""
import heapq
import itertools
import math
import time

MODES = ("virtual", "paused", "real")


class Clock:
    def __init__(self, mode="virtual", speed=None):
        if mode not in MODES:
            raise ValueError(f"time mode {mode!r}: use one of {', '.join(MODES)}")
        if speed is not None and speed <= 0:
            raise ValueError("speed must be > 0 (simulated seconds per wall second)")
        self.mode = mode
        self.speed = speed
        self.ppm = 0.0              # device crystal error vs world time (ticks and RTC)
        self.rtc_ppm = 0.0          # the RTC's own error on top (board rtc_drift_ppm)
        self._world = 0.0           # world ms at the anchor
        self._wall = time.monotonic()
        self.asleep_until = None    # world ms the board sleeps until (math.inf: until woken)
        self.boot_world = 0.0       # world ms of the last boot (device ms count from here)
        self.hold = False           # asleep, but host bytes are in flight: run at 1x wall
        self._events = []           # heap of [world_ms, seq, name, callback]
        self._named = {}            # name -> its live entries (cancel marks them dead)
        self._seq = itertools.count()

    # --- world time ---------------------------------------------------------------------
    def rate(self):
        """World ms per wall ms right now (math.inf: jump straight to the next deadline)."""
        if self.mode == "paused":
            return 0.0
        if self.asleep_until is None or self.mode == "real" or self.hold:
            return 1.0
        return self.speed if self.speed else math.inf

    def now(self):
        rate = self.rate()
        if rate == 0.0:
            return self._world
        if rate == math.inf:
            t = self._world
        else:
            t = self._world + (time.monotonic() - self._wall) * 1000.0 * rate
        if self.asleep_until is not None and t > self.asleep_until:
            t = self.asleep_until
        return t

    def _anchor(self, world=None):
        now = self.now()
        self._world = now if world is None or world < now else float(world)
        self._wall = time.monotonic()

    def jump(self, world_ms):
        """Move world time forward to `world_ms` (never back)."""
        self._anchor(world_ms)

    def sleep(self, until):
        self._anchor()
        self.asleep_until = until

    def wake(self):
        self._anchor()
        self.asleep_until = None

    # --- device clock -------------------------------------------------------------------
    def boot(self):
        self._anchor()
        self.boot_world = self._world

    def device_ms(self, world=None):
        world = self.now() if world is None else world
        return int((world - self.boot_world) * (1.0 + self.ppm * 1e-6))

    def device_ms_from(self, world):
        """The first whole device ms at or after world time `world` (device_ms rounds down)."""
        return math.ceil((world - self.boot_world) * (1.0 + self.ppm * 1e-6))

    def world_at_device_ms(self, device_ms):
        """World time at which the device clock reads `device_ms` (the inverse of device_ms,
        as exact as world_after_device_ms is for a wake)."""
        return self.boot_world + device_ms / (1.0 + self.ppm * 1e-6)

    def world_after_device_ms(self, device_ms):
        """World time when `device_ms` of the device clock will have passed from now."""
        return self.now() + device_ms / (1.0 + self.ppm * 1e-6)

    # --- timeline (watchdog, scheduled power cuts, deep-sleep wake-ups) --------------------
    def at(self, world_ms, name, callback):
        entry = [world_ms, next(self._seq), name, callback]
        heapq.heappush(self._events, entry)
        self._named.setdefault(name, []).append(entry)
        return entry

    def cancel(self, name):
        # Mark, do not rebuild: the watchdog is re-armed at every feed (every wake).
        for entry in self._named.pop(name, ()):
            entry[3] = None

    def _live_top(self):
        events = self._events
        while events and events[0][3] is None:
            heapq.heappop(events)
        return events[0] if events else None

    def next_event(self):
        return self._live_top()

    def next_event_but(self, name):
        """World ms of the next live event not called `name`, or None."""
        times = [e[0] for e in self._events if e[3] is not None and e[2] != name]
        return min(times) if times else None

    def pop_event(self):
        entry = heapq.heappop(self._events)
        named = self._named.get(entry[2])
        if named is not None:
            try:
                named.remove(entry)
            except ValueError:
                pass
            if not named:
                del self._named[entry[2]]
        return entry

    def pending(self):
        return sorted((e[0], e[2]) for e in self._events if e[3] is not None)

    def next_deadline(self):
        """World ms of the next thing that happens by itself (event or wake-up), or None."""
        times = []
        top = self._live_top()
        if top is not None:
            times.append(top[0])
        if self.asleep_until is not None and self.asleep_until != math.inf:
            times.append(self.asleep_until)
        return min(times) if times else None

    def wall_delay(self, world_ms):
        """Wall seconds until world time reaches `world_ms` at the current rate (None: never)."""
        rate = self.rate()
        if rate == 0.0:
            return None
        if rate == math.inf:
            return 0.0
        return max(0.0, (world_ms - self.now()) / rate / 1000.0)
