# Device time and the time floor (protocol/SPEC.md section 8.4): what a device knows of the
# time, across reboots and power cuts, with or without a synced RTC.
#
#   uptime       seconds since this boot, from the scheduler (never wraps: Scheduler.tick)
#   device time  seconds counted across reboots; never goes back, not even after a power
#                cut (the saved value is a limit reserved ahead, like the message seq of
#                SPEC 5)
#   floor        unix seconds the true time is known to be at or after: raised by signed
#                TIME_SYNC and by verified documents that carry a time (a voucher's
#                K_ISSUED); grows with uptime; what expiry checks trust when the RTC is lost
#   date         the unix time the device reports: the RTC when synced (never below the
#                floor); after a power cut (RTC lost) an estimate that is at least the floor
#                and at least every date reported before the cut; None before any sync
#
# All of it lives in the "boot" record, saved crash-safe (store.save) at each boot, when
# device time or a date handed out passes its saved limit (then _RESERVE_S further), on
# TIME_SYNC, and when a verified document raises the floor by _RAISE_S or more: at most a
# few dozen small saves a day
# (docs/flash-wear.md: one inline save is 0.16-0.5 block erases).
from micropython import const

_RESERVE_S = const(3600)    # how far ahead of what was handed out the saved values reach
_OLD_SAVE_S = const(21600)  # a record from before SPEC 8.4: device time was saved every 6 h
_RAISE_S = const(60)        # a floor raise smaller than this waits for the next save


def _int(v):
    return v if isinstance(v, int) and not isinstance(v, bool) else None


class Clock:
    def __init__(self, hal, store, uptime):
        """`uptime()`: seconds since boot that never wrap (Scheduler.tick)."""
        self.hal = hal
        self.store = store
        self.uptime = uptime
        rec = store.load("boot", {}) or {}
        if not isinstance(rec, dict):
            rec = {}
        self.boots = (_int(rec.get("n")) or 0) + 1
        # The record holds limits: nothing above them was handed out. Resume at them (a
        # power cut may have come just below one), as SPEC 5's message seq does; a reboot
        # that hands nothing out moves nothing on.
        dt = _int(rec.get("dt"))
        if dt is not None and rec.get("v") != 2:
            dt += _OLD_SAVE_S       # a value saved every 6 h, not a limit
        self._dt0 = dt or 0
        self._dt_lim = self._dt0
        up = uptime()
        self._fl = _int(rec.get("fl"))     # floor at uptime _fl_up (None: nothing proved)
        self._fl_up = up
        self._dd_lim = _int(rec.get("dd"))
        self._est = None            # with the RTC lost: dates resume at the saved limit
        self._est_up = up
        if hal.time() is None:
            self._est = self._dd_lim
        self._write(self._dt_lim, self._dd_lim)     # the boot count

    # -- reading --------------------------------------------------------------------------
    def device_time(self):
        t = self._dt0 + self.uptime()
        if t > self._dt_lim:
            self.save()
        return t

    def synced(self):
        return self.hal.time() is not None

    def boot_time(self):
        """Device time at this boot's start: a device time at or above it is of this boot,
        where device time and true time run together."""
        return self._dt0

    def floor(self):
        """Unix seconds the time is at least, or None when nothing has proved a time."""
        if self._fl is None:
            return None
        return self._fl + (self.uptime() - self._fl_up)

    def date(self):
        """The unix time to report (see the top of this file), or None before any sync."""
        d = self._date()
        if d is not None and (self._dd_lim is None or d > self._dd_lim):
            self.save()
        return d

    def _date(self):
        rtc = self.hal.time()
        best = rtc
        f = self.floor()
        if f is not None and (best is None or f > best):
            best = f
        if rtc is None and self._est is not None:
            e = self._est + (self.uptime() - self._est_up)
            if best is None or e > best:
                best = e
        return best

    # -- raising --------------------------------------------------------------------------
    def sync(self, unix):
        """A signed TIME_SYNC: the operator's word sets the RTC and the floor. It is the one
        thing that may move dates back (a clock set wrong is corrected so)."""
        self.hal.set_time(unix)
        self._fl = unix
        self._fl_up = self.uptime()
        self._est = None
        self.save()

    def raise_floor(self, unix):
        """A verified document says the time is at least `unix` (a voucher's issue time)."""
        if not isinstance(unix, int) or isinstance(unix, bool):
            return
        f = self.floor()
        if f is not None and unix <= f:
            return
        self._fl = unix
        self._fl_up = self.uptime()
        if f is None or unix - f >= _RAISE_S:
            self.save()

    # -- persistence ----------------------------------------------------------------------
    def save(self):
        """Save limits _RESERVE_S past the device time and date of now."""
        d = self._date()
        self._write(self._dt0 + self.uptime() + _RESERVE_S,
                    None if d is None else d + _RESERVE_S)

    def _write(self, dt_lim, dd_lim):
        fl = self.floor()
        rtc = self.hal.time()
        if rtc is not None and (fl is None or rtc > fl):
            fl = rtc        # a synced RTC proves its time: a signed sync set it
        rec = {"v": 2, "n": self.boots, "dt": dt_lim}
        if fl is not None:
            rec["fl"] = fl
        if dd_lim is not None:
            rec["dd"] = dd_lim
        self.store.save("boot", rec)
        self._dt_lim = dt_lim
        self._dd_lim = dd_lim
