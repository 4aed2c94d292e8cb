# One compaction stroke of a bin's press, as a cooperative state machine: motor on, poll the
# motor current every poll_ms, stop after the stroke time, on a jam (current above the limit
# on two polls in a row: one spike is the press meeting a bottle, two is a stall) or when
# told to (lid opened, fire). The motor is never left running: every path ends in stop().
from array import array

from micropython import const

DONE = "done"
JAM = "jam"
ABORTED = "aborted"
_OVER_POLLS = const(2)


class Compactor:
    def __init__(self, hal, sched, on_done):
        self.hal = hal
        self.sched = sched
        self.on_done = on_done      # on_done(outcome, seconds, peak_ma, mah)
        self.running = False
        self.n = array("i", (0, 0, 0, 0, 0))  # started ms, peak mA, polls over, limit, poll
        self.mah = array("f", (0.0,))
        self.stroke_ms = 0

    def start(self, stroke_s, limit_ma, poll_ms):
        if self.running:
            return False
        self.running = True
        n = self.n
        n[0] = self.hal.ticks_ms()
        n[1] = n[2] = 0
        n[3] = limit_ma
        n[4] = poll_ms
        self.mah[0] = 0.0
        self.stroke_ms = stroke_s * 1000
        self.hal.output("motor", True)
        self.sched.after("compact", poll_ms, self._poll, deadline_ms=poll_ms)
        return True

    def _poll(self):
        if not self.running:
            return
        n = self.n
        try:
            ma = self.hal.sensor_read("motor").get("ma", 0)
        except (OSError, AttributeError):
            # No current reading: the limit cannot be enforced, so the press stops.
            self.stop(ABORTED)
            return
        if ma > n[1]:
            n[1] = ma
        self.mah[0] += ma * n[4] / 3600000.0
        n[2] = n[2] + 1 if ma > n[3] else 0
        if n[2] >= _OVER_POLLS:
            self.stop(JAM)
        elif self.hal.ticks_diff(self.hal.ticks_ms(), n[0]) >= self.stroke_ms:
            self.stop(DONE)
        else:
            self.sched.after("compact", n[4], self._poll, deadline_ms=n[4])

    def stop(self, outcome=ABORTED):
        """Motor off first, whatever else fails."""
        self.hal.output("motor", False)
        if not self.running:
            return
        self.running = False
        self.sched.cancel("compact")
        seconds = self.hal.ticks_diff(self.hal.ticks_ms(), self.n[0]) // 1000
        self.on_done(outcome, seconds, self.n[1], self.mah[0])
