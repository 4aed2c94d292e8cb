# Solar smart bin: fill level (ultrasonic, median-filtered), compaction with a motor current
# limit and jam fault, solar battery with an energy budget, fire/tilt/lid alarms, LEDs,
# forecast of when the bin is full and why it is ready for collection.
#
#   guard    every guard_s       inside temperature (fire), tilt, lid: cheap reads, never
#            and on a wake       stretched; and run at once when the SHT3x ALERT pin (its
#                                high limit programmed to fire_c), the tilt or the lid
#                                switch wakes the board (hal.wake_on): fire is raised
#                                within the wake latency, not a guard period
#   measure  every sample_s x s  fill, battery (INA219: V and I -> state of charge), solar;
#                                fill events, collections, forecast, LEDs, compaction start
#   report   every report_s x r  journal a pack and send it with the modem powered (relay)
# s and r stretch with the energy budget (battery.py levels): normal x1/x1, saving x2/x4,
# critical x4/x12. Compaction is refused below compact_min_pct and at critical level, and
# never runs with the lid open, the bin tilted or a fire. Alarm events always go out at once.
from array import array

import battery
import catalog as C
import fill
import senml
import services
from agent import refuse
from alarms import Alarms
from compactor import ABORTED, DONE, JAM, Compactor
from smart_bin_schema import SCHEMA  # noqa: F401  (runtime reads App module's SCHEMA)

_DAY = 86400
_SAMPLE_X = (1, 2, 4)
_REPORT_X = (1, 4, 12)
_UP_HYST = 5                # % of charge above a level's threshold before leaving it
_WAKES = ("temp_alert", "tilt", "lid")   # inputs that wake the board and run the guard
# Floats that live between wakes, in one array (see firmware/kinds/env_sensor/stats.py for why).
_FILL = 0                   # last fill %, -1 none yet
_SOC = 1
_MV = 2
_MA = 3
_TEMP = 4                   # last inside temperature, NaN none
_SOLAR = 5
_NAN = float("nan")


# Commands that change nothing: their replay counter is saved with the next one that
# does (firmware/core/device.py).
READ_ONLY_COMMANDS = ("read",)

class App:
    def __init__(self, rt):
        self.rt = rt
        self.hal = rt.hal
        self.cfg = rt.dev.config
        self.f = array("f", (-1.0, _NAN, 0.0, 0.0, _NAN, 0.0))
        self.echo_buf = array("H", [0] * 9)
        self.trend = fill.Trend()
        self.ledger = battery.Ledger()
        self.level = battery.NORMAL
        # Counters and times (ints); times on the device clock (RTC when synced).
        self.n = {"compactions": 0, "collections": 0, "fill_events": 0, "lid_opens": 0,
                  "refused": 0, "jams": 0}
        self.since_collect = 0      # compactions since the last collection
        self.collected_at = None
        self.last_compact = None
        self.last_measure = None
        self.ineffective = False    # the last stroke gained nothing: really full
        self.locked = False         # jammed beyond the retries: needs a service visit
        self.disturbed = False      # a compaction ran since the last measurement
        self.lid_was = False
        self.day = None
        self._fill_before = -1.0
        self.synced = self.hal.time() is not None
        self.alarms = Alarms(self._emit, self.cfg["alarm_events_per_day"])
        a = self.alarms
        a.define("fire", 0, 600, 3)
        a.define("tilt", 0, 60, 3)
        a.define("lid_open", self.cfg["lid_open_s"], 0, 1)
        a.define("jam", 0, 0, 3)
        a.define("low_battery", 0, 0, 2)
        a.define("full", 0, 0, 1)
        a.define("age", 0, 0, 1)
        a.define("distance_fault", 0, 0, 2)
        self.press = Compactor(self.hal, rt.sched, self._compacted)
        self.hal.output("motor", False)         # whatever a power cut left running
        self._restore(rt.dev.store.load("bin", {}) or {})
        self._program_alert()
        self._schedule()
        rt.log("smart bin up: level %s, reset %s" % (battery.LEVELS[self.level],
                                                      rt.reset_cause), 1)

    # -- persistence ------------------------------------------------------------------------
    def _restore(self, st):
        self.n.update(st.get("n") or {})
        self.since_collect = st.get("since", 0)
        self.collected_at = st.get("collected")
        self.last_compact = st.get("compact")
        self.ineffective = st.get("ineff", False)
        self.locked = st.get("locked", False)
        self.level = st.get("level", battery.NORMAL)
        self.day = st.get("day")
        self.trend.restore(st.get("trend"))
        # The last fill survives a boot: a collection is known by the fall from it, and a
        # truck that comes while the bin reboots (or is without power) must still count;
        # a missed collection also left `ineffective` set, and the press never ran again.
        self.f[_FILL] = st.get("fill", -1.0)
        if st.get("synced", self.synced) != self.synced:
            self._rebase()
        self.ledger.restore(st.get("ledger"))
        self.alarms.restore(st.get("alarms"))
        if self.collected_at is None:
            self.collected_at = self._now()

    def _save(self):
        self.rt.dev.store.save("bin", {
            "n": self.n, "since": self.since_collect, "collected": self.collected_at,
            "compact": self.last_compact, "ineff": self.ineffective, "locked": self.locked,
            "level": self.level, "day": self.day, "trend": self.trend.state(),
            "synced": self.synced, "fill": self.f[_FILL],
            "ledger": self.ledger.state(), "alarms": self.alarms.state()})

    # -- schedule and energy budget ---------------------------------------------------------
    def _schedule(self):
        c = self.cfg
        s = self.rt.sched
        s.every("guard", c["guard_s"] * 1000, self.guard, critical=True, wakes=_WAKES)
        s.every("measure", c["sample_s"] * _SAMPLE_X[self.level] * 1000, self.measure,
                phase_ms=2000)
        period = c["report_s"] * _REPORT_X[self.level] * 1000
        s.every("report", period, self.report, phase_ms=period)

    def _budget(self, soc):
        c = self.cfg
        new = battery.level(soc, c["saving_pct"], c["critical_pct"])
        if new < self.level:        # recovering: only once clearly above the threshold
            up = battery.level(soc - _UP_HYST, c["saving_pct"], c["critical_pct"])
            new = max(new, up)
        if new != self.level:
            self.rt.log("energy budget: %s -> %s at %d%%" % (battery.LEVELS[self.level],
                                                          battery.LEVELS[new], soc), 2)
            self.level = new
            self._schedule()

    def _program_alert(self):
        # The temperature sensor watches for fire while the board sleeps: its ALERT output
        # rises at fire_c. Without it (a bus fault) the guard period still catches a fire.
        try:
            self.hal.sensor_alert("env", self.cfg["fire_c"])
        except OSError as exc:
            self.rt.log("fire alert not programmed (%s): guard polling only" % (exc,), 2)

    def reconfigure(self, cfg):
        self.cfg = cfg
        self._program_alert()
        self.alarms.max_events = cfg["alarm_events_per_day"]
        self._schedule()

    # -- clock ------------------------------------------------------------------------------
    def _now(self):
        t = self.hal.time()
        synced = t is not None
        if synced != self.synced:   # the RTC was set (or lost in a power cut)
            self.synced = synced
            self._rebase()
        return t if synced else self.rt.device_time()

    def _rebase(self):
        # Stored moments were on the other clock (device time vs unix): intervals measured
        # across the change would be decades long. Ages restart; the trend rebaselines.
        now = self.hal.time() if self.synced else self.rt.device_time()
        self.collected_at = now
        self.last_compact = None
        self.last_measure = None
        self.day = None
        self.trend.a[1] = -1.0

    def _modem(self, fn, *args):
        # The cellular modem is powered only while something goes out (relay output).
        self.hal.output("relay", True)
        try:
            return fn(*args)
        finally:
            self.hal.output("relay", False)

    def _emit(self, name, active, duration, severity, suppressed):
        self._modem(self.rt.event, name, active, duration, severity, suppressed)

    def _read(self, name):
        try:
            return self.hal.sensor_read(name)
        except OSError:
            return None

    # -- guard: fire, tilt, lid -------------------------------------------------------------
    def guard(self):
        c = self.cfg
        now = self._now()
        env = self._read("env")
        temp = env.get("temp_c") if isinstance(env, dict) else None
        if isinstance(temp, (int, float)):
            last = self.f[_TEMP]
            rise = temp - last if last == last else 0.0
            self.f[_TEMP] = temp
            self.alarms.update("fire", temp >= c["fire_c"] or rise >= c["fire_rise_c"]
                               or (self.alarms.is_active("fire") and temp >= c["fire_c"] - 10),
                               now)
        tilt = self._input("tilt")
        lid = self._input("lid")
        self.alarms.update("tilt", tilt, now)
        self.alarms.update("lid_open", lid, now)
        if lid and not self.lid_was:
            self.n["lid_opens"] += 1
        self.lid_was = lid
        if self.press.running and (lid or tilt or self.alarms.is_active("fire")):
            self.press.stop(ABORTED)

    def _input(self, role):
        try:
            return self.hal.input(role)
        except OSError:
            return False

    # -- measure: fill, battery, compaction -------------------------------------------------
    def measure(self):
        c = self.cfg
        now = self._now()
        dt = now - self.last_measure if self.last_measure is not None else 0
        self.last_measure = now
        self._battery(dt)
        d, good = fill.median_echo(lambda: self.hal.sensor_read("distance"), c["echoes"],
                                   c["depth_mm"], self.echo_buf)
        self.alarms.update("distance_fault", d is None, now)
        if d is not None:
            self._fill(fill.percent(d, c["depth_mm"], c["full_mm"]), now)
        self._day_rollover(now)
        self._ready(now)
        self._leds()
        self._save()

    def _battery(self, dt):
        p = self._read("power")
        if not isinstance(p, dict):
            return
        mv, ma = p.get("mv", 0), p.get("ma", 0)
        soc = battery.soc_pct(mv, ma)
        f = self.f
        f[_SOC], f[_MV], f[_MA] = soc, mv, ma
        try:
            f[_SOLAR] = self.hal.adc_read("solar")
        except OSError:
            pass
        if dt > 0:
            self.ledger.sample(ma, dt)
        self.alarms.update("low_battery", soc < self.cfg["critical_pct"], self._now())
        self._budget(soc)

    def _fill(self, pct, now):
        c = self.cfg
        prev = self.f[_FILL]
        self.f[_FILL] = pct
        # Collected: a fall of 10 points or more to the empty level that our press did not
        # make (after a stroke `prev` is the fill measured after it).
        if prev >= 0 and prev - pct >= 10 and pct <= c["empty_pct"]:
            self._collected(now)
            self.trend.update(pct, now, True)
        else:
            if self.trend.update(pct, now, self.disturbed) >= c["fill_step_pct"]:
                self.n["fill_events"] += 1
        self.disturbed = False
        if pct >= c["compact_pct"] and not self.press.running:
            self._maybe_compact(now)

    def _collected(self, now):
        self.n["collections"] += 1
        self.collected_at = now
        self.since_collect = 0
        self.ineffective = False
        self.rt.record([senml.record("collected", vb=True),
                        senml.record("compactions", self.n["compactions"], "count")])

    def _maybe_compact(self, now):
        c = self.cfg
        a = self.alarms
        if self.ineffective or self.locked or (self.last_compact is not None and
                                               now - self.last_compact < c["compact_gap_s"]):
            return
        if a.is_active("fire") or a.is_active("tilt") or self._input("lid"):
            return
        soc = self.f[_SOC]
        if self.level == battery.CRITICAL or (soc == soc and soc < c["compact_min_pct"]):
            self.n["refused"] += 1
            self.last_compact = now     # ask again one gap later, not every sample
            self.rt.log("compaction refused: battery at %d%%" % soc, 2)
            return
        self.last_compact = now
        self._fill_before = self.f[_FILL]
        self.press.start(c["compact_s"], c["motor_limit_ma"], c["motor_poll_ms"])

    def _compacted(self, outcome, seconds, peak_ma, mah):
        c = self.cfg
        self.ledger.load(mah)
        self.disturbed = True
        now = self._now()
        if outcome == JAM:
            self.n["jams"] += 1
            self.locked = self.n["jams"] > c["jam_retries"]
            self.last_compact = now - c["compact_gap_s"] + c["jam_retry_s"]
            self.alarms.update("jam", True, now)
        d, good = fill.median_echo(lambda: self.hal.sensor_read("distance"), c["echoes"],
                                   c["depth_mm"], self.echo_buf)
        after = fill.percent(d, c["depth_mm"], c["full_mm"]) if d is not None else -1.0
        if outcome == DONE:
            self.n["compactions"] += 1
            self.since_collect += 1
            self.n["jams"] = 0
            self.alarms.update("jam", False, now)
            self.ineffective = after >= 0 and after > self._fill_before - 5
        self.f[_FILL] = after       # -1 when unreadable: no collection is inferred from it
        recs = [senml.record("compaction", vs=outcome),
                senml.record("fill_before", self._fill_before, "%"),
                senml.record("motor_peak", peak_ma / 1000.0, "A"),
                senml.record("motor_energy", mah * 3.7 / 1000.0, "Wh"),
                senml.record("motor_time", seconds, "s")]
        if after >= 0:
            recs.append(senml.record("fill_after", after, "%"))
        self.rt.record(recs)
        self._ready(now)
        self._leds()
        self._save()

    # -- readiness, LEDs, day ---------------------------------------------------------------
    def _ready(self, now):
        c = self.cfg
        pct = self.f[_FILL]
        self.alarms.update("full", pct >= c["full_pct"], now)
        self.alarms.update("age", pct > c["empty_pct"] and
                           now - self.collected_at >= c["max_age_days"] * _DAY, now)

    def reasons(self):
        a = self.alarms
        out = [r for r in ("full", "age") if a.is_active(r)]
        if a.is_active("fire") or a.is_active("tilt") or a.is_active("jam") or self.locked:
            out.append("alert")
        return out

    def _leds(self):
        c = self.cfg
        red = bool(self.reasons())
        pct = self.f[_FILL]
        lit = self.level == battery.NORMAL      # saving: only red, for faults and readiness
        green = lit and not red
        amber = lit and not red and pct >= c["amber_pct"]
        # A bicolour LED: green alone, red alone, both = amber.
        self.hal.output("led_status", green or amber)
        self.hal.output("led_alarm", red or amber)

    def _day_rollover(self, now):
        day = now // _DAY
        if self.day is None:
            self.day = day
        if day != self.day:
            self.day = day
            charged, used = self.ledger.close_day()
            # mAh at the cell's 3.7 V nominal: Wh, a unit city platforms aggregate
            self.rt.record([senml.record("charged_day", charged * 3.7 / 1000.0, "Wh"),
                            senml.record("used_day", used * 3.7 / 1000.0, "Wh"),
                            senml.record("fill_events", self.n["fill_events"], "count"),
                            senml.record("lid_opens", self.n["lid_opens"], "count")])
            self.n["fill_events"] = 0
            self.n["lid_opens"] = 0

    # -- report -----------------------------------------------------------------------------
    def report(self):
        c = self.cfg
        f = self.f
        now = self._now()
        recs = []
        if f[_FILL] >= 0:
            recs.append(senml.record("fill", f[_FILL], "%"))
            hours = self.trend.hours_to(c["full_pct"], f[_FILL])
            if hours is not None:
                recs.append(senml.record("full_in", int(hours * 3600), "s"))
        if f[_SOC] == f[_SOC]:
            recs.append(senml.record("soc", f[_SOC], "%EL"))
            recs.append(senml.record("battery", f[_MV] / 1000.0, "V"))
            recs.append(senml.record("current", f[_MA] / 1000.0, "A"))
            days = self.ledger.reserve_days(f[_SOC], c["battery_floor_pct"], c["battery_mah"])
            if days is not None:
                recs.append(senml.record("reserve", int(days * _DAY), "s"))
        if f[_TEMP] == f[_TEMP]:
            recs.append(senml.record("temp", f[_TEMP], "Cel"))
        reasons = self.reasons()
        recs.append(senml.record("ready", vb=bool(reasons)))
        if reasons:
            recs.append(senml.record("reason", vs=",".join(reasons)))
        recs.append(senml.record("age", now - self.collected_at, "s"))
        self.rt.record(recs)
        self._modem(services.push_telemetry, self.rt)

    def delivered(self):
        pass        # unacknowledged telemetry waits for the next report: no retry radio

    # -- commands ---------------------------------------------------------------------------
    def command(self, name, args):
        if name == "read":
            f = self.f
            return {"fill": f[_FILL] if f[_FILL] >= 0 else None, "soc": f[_SOC],
                    "level": battery.LEVELS[self.level], "reasons": self.reasons(),
                    "rate_pct_h": self.trend.rate, "counts": self.n,
                    "compacting": self.press.running, "locked": self.locked,
                    "reserve_days": self.ledger.reserve_days(
                        f[_SOC], self.cfg["battery_floor_pct"], self.cfg["battery_mah"]),
                    "alarms": [[n, d] for n, d in self.alarms.active(self._now())]}
        if name == "compact":       # a service technician's test stroke
            if self.press.running:
                refuse(C.E_BUSY, "a compaction is running")
            if self._input("lid") or self.alarms.is_active("fire"):
                refuse(C.E_BAD_REQUEST, "close the lid (and clear any fire alarm) first")
            self._fill_before = self.f[_FILL]
            self.press.start(self.cfg["compact_s"], self.cfg["motor_limit_ma"],
                             self.cfg["motor_poll_ms"])
            return {"started": True}
        if name == "clear_jam":     # after a service visit freed the press
            self.locked = False
            self.ineffective = False
            self.n["jams"] = 0
            self.alarms.update("jam", False, self._now())
            self._save()
            return {"locked": False}
        refuse(C.E_BAD_REQUEST, "unknown command %r (read, compact, clear_jam)" % (name,))
