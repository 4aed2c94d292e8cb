# Environmental sensor node: temperature/humidity (SHT31), particulate matter (PMS5003 on a
# switched supply), noise (dB(A) meter), battery. What runs when:
#
#   sample   every sample_s     SHT31 (+ calibration offsets), noise level, battery
#   pm       every pm_period_s  power the PM sensor on; pm_warmup_s later drop one frame
#                               (flushes what it sent while settling) and take pm_readings
#                               frames pm_gap_ms apart, humidity-correct them, power off
#   report   every report_s     journal mean/min/max/quality of each quantity over the window
#   hour     on the hour        hourly means under the 75% coverage rule, 8 h and 24 h rolling
#                               means of PM (air-quality-index rules: stats.py), journaled
#   push     every push_s       send pending telemetry, retried with backoff until acked
#
# The node reads only the sensors its board definition lists: a board without a PM sensor
# runs the rest (and a pipe or bench board with none runs nothing but the schedule).
from array import array

import aq
import catalog as C
import schema as schema_mod
import senml
import services
import stats
import thresholds
from agent import refuse
from alarms import Alarms
from env_sensor_schema import SCHEMA  # noqa: F401  (runtime reads App module's SCHEMA)

_HOUR = 3600
# quantity -> (unit, lowest and highest value the part can report: outside = a bad reading)
_UNITS = {"temp": ("Cel", -40.0, 125.0), "rh": ("%RH", 0.0, 100.0),
          "pm1": ("ug/m3", 0.0, 1000.0), "pm25": ("ug/m3", 0.0, 1000.0),
          "pm10": ("ug/m3", 0.0, 1000.0), "noise": ("dB", 20.0, 140.0)}
_PM = ("pm1", "pm25", "pm10")
_AQI = ("pm25", "pm10")     # the pollutants air-quality indices average over 8 h / 24 h
_MINMAX = ("pm25", "pm10")
_GROUP = {"temp": "env", "rh": "env", "pm1": "pm", "pm25": "pm", "pm10": "pm", "noise": "noise"}
_ALARMED = ("pm25", "pm10", "temp", "rh", "noise")
_FAULT_AFTER = 3            # consecutive failed reads before a sensor fault is raised
_PM_MAX = 20                # readings per cycle (schema limit)
_LAST = ("temp", "rh", "pm1", "pm25", "pm10", "noise", "battery")
_NAN = stats.NAN


# Commands that change nothing: their replay counter is saved with the next one that
# does (firmware/core/device.py).
READ_ONLY_COMMANDS = ("read", "status")

class App:
    def __init__(self, rt):
        self.rt = rt
        self.hal = rt.hal
        self.cfg = rt.dev.config
        board = rt.hal.BOARD
        sensors = board.get("sensors", {})
        pins = board.get("pins", {})
        self.has_env = "env" in sensors
        self.has_noise = "noise" in sensors
        self.has_pm = "pm" in sensors and "relay" in pins
        self.has_battery = "battery" in pins
        self.qs = ([q for q in ("temp", "rh") if self.has_env] + (list(_PM) if self.has_pm
                   else []) + (["noise"] if self.has_noise else []))
        self.win = {}           # report window accumulators
        self.hr = {}            # current hour accumulators
        self.flags = {}         # worst reading quality in the report window
        for q in self.qs:
            cls = stats.EnergyAcc if q == "noise" else stats.Acc
            self.win[q] = cls()
            self.hr[q] = cls()
            self.flags[q] = aq.Q_GOOD
        self.rolling = dict((q, stats.Hourly()) for q in _AQI if self.has_pm)
        # Numbers that live between samples sit in preallocated arrays (see stats.py).
        self.last = array("f", [_NAN] * len(_LAST))  # latest corrected reading, by _LAST
        self.raw = array("f", (_NAN, _NAN))          # latest raw SHT31 temp/rh (calibrate)
        self.fails = {"env": 0, "pm": 0, "noise": 0}
        self.pm_buf = array("f", [0.0] * (3 * _PM_MAX))   # one cycle's readings
        self.pm_n = 0
        self.pm_left = 0
        self.pm_cycles = 0
        self.samples = 0
        self._backoff = 60
        self.alarms = Alarms(rt.event, self.cfg["alarm_events_per_day"])
        self._define_alarms()
        st = rt.dev.store.load("env", {}) or {}
        self.alarms.restore(st.get("alarms"))
        for q, h in self.rolling.items():
            h.restore(st.get(q))
        # The hour being accumulated, and whether it is a clock hour (RTC synced) or an hour
        # of device time. A boot starts a fresh hour: what the last run accumulated is lost.
        self.hour_synced = self.hal.time() is not None
        self.hour_no = self._hour_index()
        saved = st.get("hour")
        if isinstance(saved, int) and st.get("synced") == self.hour_synced \
                and self.hour_no > saved + 1:
            for h in self.rolling.values():     # hours the node did not see are missing
                h.skip(self.hour_no - saved - 1)
        self._schedule()
        rt.log("env sensor up: sensors %s, reset %s" % (",".join(self.qs) or "none",
                                                         rt.reset_cause), 1)

    # -- schedule ---------------------------------------------------------------------------
    def _schedule(self):
        c = self.cfg
        s = self.rt.sched
        # The first sample runs at boot: a node that just restarted reports at once, and the
        # OTA trial sees its critical task run within seconds.
        s.every("sample", c["sample_s"] * 1000, self.sample, critical=True)
        if self.has_pm:
            s.every("pm", c["pm_period_s"] * 1000, self.pm_start, phase_ms=1000)
        s.every("report", c["report_s"] * 1000, self.report, phase_ms=c["report_s"] * 1000)
        self._align_hour()
        s.every("push", c["push_s"] * 1000, self.push, phase_ms=c["push_s"] * 1000)

    def _define_alarms(self):
        st = self.alarms.state()
        hold = self.cfg["alarm_hold_s"]
        for q in _ALARMED:
            self.alarms.define(q, hold, hold, 2)
        for s in ("env", "pm", "noise"):
            self.alarms.define(s + "_fault", 0, 0, 2)
        self.alarms.define("low_battery", 0, 3600, 2)
        self.alarms.restore(st)

    def check_config(self, cfg):
        """Refuse (ValueError -> bad_request) a threshold rule that could never fire or
        never clear, before the config is saved."""
        for q in _ALARMED:
            err = thresholds.check(cfg[q + "_alarm"], cfg[q + "_lo"], cfg[q + "_hi"],
                                   cfg[q + "_hyst"])
            if err:
                raise ValueError("%s threshold rule: %s" % (q, err))

    def reconfigure(self, cfg):
        self.cfg = cfg
        self.alarms.max_events = cfg["alarm_events_per_day"]
        self._define_alarms()
        self._schedule()
        for q in _ALARMED:
            err = thresholds.check(cfg[q + "_alarm"], cfg[q + "_lo"], cfg[q + "_hi"],
                                   cfg[q + "_hyst"])
            if err:
                self.rt.log("%s threshold rule never works: %s" % (q, err), 2)

    # -- clock ------------------------------------------------------------------------------
    def _now_s(self):
        t = self.hal.time()
        return t if t is not None else self.rt.device_time()

    def _hour_index(self):
        return self._now_s() // _HOUR

    def _ms_to_next_hour(self):
        return (_HOUR - self._now_s() % _HOUR) * 1000

    # -- readings ---------------------------------------------------------------------------
    def _read(self, sensor):
        try:
            v = self.hal.sensor_read(sensor)
        except OSError as exc:      # HalError: NACK, CRC, no frame
            self.fails[sensor] += 1
            if self.fails[sensor] == _FAULT_AFTER:
                self.rt.log("%s sensor: %s" % (sensor, exc), 2)
            self.alarms.update(sensor + "_fault", self.fails[sensor] >= _FAULT_AFTER,
                               self._now_s())
            return None
        self.fails[sensor] = 0
        self.alarms.update(sensor + "_fault", False, self._now_s())
        return v

    def _get(self, q):
        v = self.last[_LAST.index(q)]
        return None if v != v else v

    def _take(self, q, v, flag=aq.Q_GOOD):
        unit, lo, hi = _UNITS[q]
        if not aq.in_range(v, lo, hi):
            self.flags[q] = aq.Q_BAD if self.flags[q] == aq.Q_BAD else aq.Q_SUSPECT
            return
        if flag > self.flags[q]:
            self.flags[q] = flag
        self.win[q].add(v)
        self.hr[q].add(v)
        self.last[_LAST.index(q)] = v

    def _judge(self, q):
        v = self._get(q)
        if v is None:
            return
        c = self.cfg
        cond = thresholds.judge(c[q + "_alarm"], v, c[q + "_lo"], c[q + "_hi"],
                                c[q + "_hyst"], self.alarms.is_active(q))
        self.alarms.update(q, cond, self._now_s())

    def _env(self):
        """Read the SHT31; returns the calibrated humidity (None when the read failed)."""
        v = self._read("env")
        if not isinstance(v, dict):
            return None
        temp = v.get("temp_c")
        rh = v.get("rh")
        if isinstance(temp, (int, float)):
            self.raw[0] = temp
            self._take("temp", temp + self.cfg["temp_offset"])
        if isinstance(rh, (int, float)):
            self.raw[1] = rh
            self._take("rh", min(100.0, max(0.0, rh + self.cfg["rh_offset"])))
            return self._get("rh")
        return None

    def sample(self):
        self.samples += 1
        self._rollover()
        if self.has_env:
            self._env()
            self._judge("temp")
            self._judge("rh")
        if self.has_noise:
            v = self._read("noise")
            if isinstance(v, (int, float)):
                self._take("noise", float(v))
                self._judge("noise")
        if self.has_battery:
            try:
                mv = self.hal.adc_read("battery")
            except OSError:
                return
            self.last[_LAST.index("battery")] = mv
            self.alarms.update("low_battery", mv < self.cfg["low_battery_mv"], self._now_s())

    # -- PM duty cycle ----------------------------------------------------------------------
    def pm_start(self):
        self.hal.output("relay", True)
        self.pm_n = 0
        self.pm_left = self.cfg["pm_readings"] + 1      # +1: the flushed settling frame
        self.rt.sched.after("pm-read", self.cfg["pm_warmup_s"] * 1000, self.pm_read)

    def pm_read(self):
        v = self._read("pm")
        flush = self.pm_left == self.cfg["pm_readings"] + 1
        self.pm_left -= 1
        if isinstance(v, dict) and not flush and self.pm_n < _PM_MAX:
            for i in range(3):
                x = v.get(_PM[i])
                self.pm_buf[i * _PM_MAX + self.pm_n] = x if isinstance(x, int) else -1
            self.pm_n += 1
        if self.pm_left > 0:
            self.rt.sched.after("pm-read", self.cfg["pm_gap_ms"], self.pm_read)
            return
        self.hal.output("relay", False)
        self.pm_cycles += 1
        self._rollover()
        rh = self._env() if self.has_env else None      # humidity at the PM reading
        kappa = self.cfg["pm_kappa"]
        # Uncorrectable (humidity unknown while a correction is configured): suspect.
        unknown = rh is None and kappa > 0
        for i in range(3):
            q = _PM[i]
            for k in range(self.pm_n):
                dry, flag = aq.correct(self.pm_buf[i * _PM_MAX + k], rh, kappa)
                self._take(q, dry, aq.Q_SUSPECT if unknown else flag)
            if not self.pm_n:
                self.flags[q] = aq.Q_BAD
        self._judge("pm25")
        self._judge("pm10")

    # -- records ----------------------------------------------------------------------------
    def _expected(self, q, seconds):
        if q in _PM:
            return seconds // self.cfg["pm_period_s"] * self.cfg["pm_readings"]
        return seconds // self.cfg["sample_s"]

    def report(self):
        """One pack per window: the mean of each quantity, min/max where a city platform
        uses them (PM2.5, PM10; LAmax for noise), and one quality flag per sensor."""
        recs = []
        span = self.cfg["report_s"]
        worst = {}
        for q in self.qs:
            acc = self.win[q]
            unit = _UNITS[q][0]
            flag = self.flags[q]
            if not stats.coverage_ok(acc.n, self._expected(q, span)) and flag < aq.Q_SUSPECT:
                flag = aq.Q_SUSPECT if acc.n else aq.Q_BAD
            group = _GROUP[q]
            if flag > worst.get(group, -1):
                worst[group] = flag
            if acc.n:
                recs.append(senml.record(q, acc.mean(), unit))
                if q in _MINMAX:
                    recs.append(senml.record(q + "_min", acc.lo, unit))
                if q in _MINMAX or q == "noise":
                    recs.append(senml.record(q + "_max", acc.hi, unit))
            acc.reset()
            self.flags[q] = aq.Q_GOOD
        for group, flag in worst.items():
            recs.append(senml.record(group + "_q", flag))
        mv = self._get("battery")
        if mv is not None:
            recs.append(senml.record("battery", mv / 1000.0, "V"))
        if recs:
            self.rt.record(recs)

    def close_hour(self):
        self._rollover()
        self._align_hour()

    def _rollover(self):
        """Close the hour being accumulated once the clock has left it. Runs on the hour and
        before every reading, so an hourly mean holds exactly the readings of its hour."""
        synced = self.hal.time() is not None
        h = self._hour_index()
        if h == self.hour_no and synced == self.hour_synced:
            return
        if synced != self.hour_synced or h < self.hour_no:
            # The clock was set (first sync, or back): the readings so far belong to no
            # clock hour. Dropped rather than published under a wrong hour.
            for q in self.qs:
                self.hr[q].reset()
        else:
            self._close(self.hour_no)
            if h > self.hour_no + 1:        # hours without any reading: missing
                for ring in self.rolling.values():
                    ring.skip(h - self.hour_no - 1)
        self.hour_no = h
        self.hour_synced = synced
        st = {"hour": h, "synced": synced, "alarms": self.alarms.state()}
        for q, ring in self.rolling.items():
            st[q] = ring.state()
        self.rt.dev.store.save("env", st)

    def _close(self, hour):
        recs = []
        # Stamped at the hour's end even when closed late (the first reading after a gap).
        late = self._now_s() - (hour + 1) * _HOUR
        t = -late if late > 0 else None
        for q in self.qs:
            acc = self.hr[q]
            mean = acc.mean() if stats.coverage_ok(acc.n, self._expected(q, _HOUR)) else None
            acc.reset()
            unit = _UNITS[q][0]
            if mean is not None:
                recs.append(senml.record(q + "_1h", mean, unit, t=t))
            ring = self.rolling.get(q)
            if ring is not None:
                ring.push(mean)
                for hours in (8, 24):
                    m = ring.mean(hours)
                    if m is not None:
                        recs.append(senml.record("%s_%dh" % (q, hours), m, unit, t=t))
        if recs:
            self.rt.record(recs)

    def _align_hour(self):
        # Re-phased on every close: the RTC may have been synced (or corrected) since boot,
        # and hourly means belong to clock hours, not to hours since power-on. +1 s: wake
        # just after the boundary, never just before it.
        self.rt.sched.every("hour", _HOUR * 1000, self.close_hour,
                            phase_ms=self._ms_to_next_hour() + 1000)

    # -- reporting --------------------------------------------------------------------------
    def push(self):
        if services.push_telemetry(self.rt):
            self.rt.sched.after("push-retry", self._backoff * 1000, self.push)
            self._backoff = min(self._backoff * 2, self.cfg["push_s"])

    def delivered(self):
        self._backoff = 60
        if not self.rt.telemetry.pending_count():
            self.rt.sched.cancel("push-retry")

    def health(self):
        bad = [s for s, n in self.fails.items() if n >= _FAULT_AFTER]
        return ("sensor fault: " + ",".join(bad)) if bad else None

    # -- commands ---------------------------------------------------------------------------
    def command(self, name, args):
        if name == "read":
            out = dict((q, self._get(q)) for q in _LAST)
            for q, h in self.rolling.items():
                out[q + "_8h"] = h.mean(8)
                out[q + "_24h"] = h.mean(24)
            out["alarms"] = [[n, d] for n, d in self.alarms.active(self._now_s())]
            return out
        if name == "calibrate":
            return self._calibrate(args)
        if name == "status":        # the app's part; heap, journals, energy: "diag"
            return {"samples": self.samples, "pm_cycles": self.pm_cycles,
                    "sensors": self.qs, "fails": self.fails}
        refuse(C.E_BAD_REQUEST, "unknown command %r (read, calibrate, status)" % (name,))

    def _calibrate(self, args):
        """Offsets from reference values read off a calibrated instrument beside the node:
        offset = reference - this node's raw reading (the last one taken)."""
        if self.raw[0] != self.raw[0]:
            refuse(C.E_HARDWARE, "no SHT31 reading yet to calibrate against; retry after "
                   "the next sample")
        new = {}
        for key, raw_i, cfg_key in (("temp_c", 0, "temp_offset"), ("rh", 1, "rh_offset")):
            ref = args.get(key)
            if ref is None:
                continue
            if isinstance(ref, bool) or not isinstance(ref, (int, float)):
                refuse(C.E_BAD_REQUEST, "%s: the reference reading must be a number" % key)
            new[cfg_key] = round(ref - self.raw[raw_i], 2)
        if not new:
            refuse(C.E_BAD_REQUEST, "calibrate needs temp_c and/or rh reference readings")
        try:
            cfg = schema_mod.validate(self.rt.schema, new, self.cfg)
        except ValueError as exc:
            refuse(C.E_BAD_REQUEST, "offset out of range (%s): check the reference "
                   "instrument and the node's placement" % exc)
        self.rt.dev.store.save("config", cfg)      # durable before it takes effect
        self.rt.dev.config = cfg
        self.reconfigure(cfg)
        return new
