# Smart water meter: volume from a reed pulse output, totalizers that never decrease,
# hourly/daily history on the meter, alarms, remote valve, hourly telemetry (privacy by
# default), daily reports retried with backoff until acknowledged.
#
# Totalizer integrity (the meter must never report a lie):
# - volumes are integer millilitres (floats are single precision on ESP32: 24-bit mantissa);
# - the forward and reverse registers only grow; the pulse counter restarts at every boot, so
#   a boot continues from the last checkpoint: a power cut loses at most `checkpoint_s` of
#   pulses and never makes a register go back;
# - an hourly record is written into the checkpoint (as `pending`) BEFORE it is appended to
#   the telemetry journal, and re-appended at boot if the append did not happen, so no hour is
#   lost and no reported total is ever above what a later boot resumes from.
import catalog as C
import cbor
import senml
import services
from agent import refuse
from alarms import Alarms
from journal import Journal
from water_meter_schema import SCHEMA  # noqa: F401  (runtime reads App module's SCHEMA)

_HOUR = 3600


# Commands that change nothing: their replay counter is saved with the next one that
# does (firmware/core/device.py).
READ_ONLY_COMMANDS = ("read", "history")

class App:
    def __init__(self, rt):
        self.rt = rt
        self.hal = rt.hal
        self.store = rt.dev.store
        self._derive(rt.dev.config)
        root = rt.hal.storage_root().rstrip("/") + "/data"
        self.hourly = Journal(root, "hourly", 24 * self.cfg["history_days"] * 20, 4096)
        self.daily = Journal(root, "daily", 16384, 2048)
        self.alarms = Alarms(rt.event, self.cfg["alarm_events_per_day"])
        self._define_alarms()
        st = self.store.load("meter", {}) or {}
        self.fwd_ml = st.get("fwd", 0)
        self.rev_ml = st.get("rev", 0)
        self.hour_ml = st.get("hour_ml", 0)
        self.day_ml = st.get("day_ml", 0)
        self.hour_no = st.get("hour_no")          # index of the hour being accumulated
        # Windows count closed hours, not clock hours: a TIME_SYNC that moves the clock by
        # decades must not look like a week without flow.
        self.hours_flowing = st.get("flowing", 0)  # closed hours in a row with consumption
        self.hours_dry = st.get("dry", 0)          # closed hours in a row without
        self.billing = st.get("billing")
        self.alarms.restore(st.get("alarms"))
        self.checkpoints = st.get("n", 0)
        self._replay_pending(st)
        # The HAL counts pulses since this boot: start from 0, not from a first read, so
        # pulses between power-on and this line are counted too.
        self.last_fwd = 0
        self.last_rev = 0
        self.last_sample = self.hal.ticks_ms()
        self.flow_lpm = 0.0
        self.hour_min = None
        self.hour_max = 0.0
        self._backoff = 60
        if self.hour_no is None:
            self.hour_no = self._hour_index()
        s = rt.sched
        s.every("sample", self.cfg["sample_s"] * 1000, self.sample, critical=True)
        # A magnet on the housing (to stall the pulse sensor) wakes the meter: the alarm
        # leaves at once rather than at the next sample.
        s.every("tamper", self.cfg["sample_s"] * 1000, self.check_tamper, wakes=("tamper",))
        s.every("checkpoint", self.cfg["checkpoint_s"] * 1000, self.checkpoint)
        s.every("hour", _HOUR * 1000, self.close_hour, phase_ms=self._ms_to_next_hour())
        s.every("report", self.cfg["report_s"] * 1000, self.report,
                phase_ms=self.cfg["report_s"] * 1000)
        rt.log("water meter up: fwd %d mL, reset %s" % (self.fwd_ml, rt.reset_cause), 1)

    # -- clock ------------------------------------------------------------------------------
    # Hour boundaries follow the RTC once it is synced (hourly totals line up with the
    # wall clock for billing); alarm timing uses the device time, which never jumps.
    def _now_s(self):
        t = self.hal.time()
        return t if t is not None else self.rt.device_time()

    def _mono_s(self):
        return self.rt.device_time()

    def _hour_index(self):
        return self._now_s() // _HOUR

    def _ms_to_next_hour(self):
        return (_HOUR - self._now_s() % _HOUR) * 1000

    def _rev_count(self):
        try:
            return self.hal.pulse_count("flow_rev")
        except OSError:   # single-reed meter: no direction sensing
            return 0

    # -- alarms -----------------------------------------------------------------------------
    def _define_alarms(self):
        c = self.cfg
        a = self.alarms
        a.define("leak", 0, 0, 2)
        a.define("burst", c["burst_min"] * 60 - c["sample_s"], c["sample_s"], 3)
        a.define("backflow", 0, _HOUR, 2)
        a.define("tamper", 0, 60, 3)
        a.define("no_flow", 0, 0, 1)
        a.define("low_battery", 0, 0, 2)

    # -- sampling ---------------------------------------------------------------------------
    def sample(self):
        hal = self.hal
        now = hal.ticks_ms()
        fwd = hal.pulse_count("flow")
        rev = self._rev_count()
        dt_min = hal.ticks_diff(now, self.last_sample) / 60000.0
        k_ml = self._k_ml
        dfwd = fwd - self.last_fwd
        drev = rev - self.last_rev
        if dfwd < 0 or drev < 0:     # counter restarted under us (board reset): resync
            dfwd = drev = 0
        self.last_fwd, self.last_rev, self.last_sample = fwd, rev, now
        add = dfwd * k_ml
        self.fwd_ml += add
        self.rev_ml += drev * k_ml
        self.hour_ml += add
        self.day_ml += add
        self.flow_lpm = (add / 1000.0) / dt_min if dt_min > 0 else 0.0
        if self.hour_min is None or self.flow_lpm < self.hour_min:
            self.hour_min = self.flow_lpm
        if self.flow_lpm > self.hour_max:
            self.hour_max = self.flow_lpm
        t = self._mono_s()
        a = self.alarms
        if a.update("burst", self.flow_lpm > self._burst_lpm, t) and \
                a.is_active("burst") and self.cfg["auto_shutoff"]:
            hal.output("valve", False)
            self.rt.log("burst: valve closed automatically", 3)
        a.update("backflow", drev * k_ml >= self._backflow_ml, t)
        if self._fine:
            self.rt.record([senml.record("flow", self.flow_lpm / 60000.0, "m3/s")])

    def check_tamper(self):
        self.alarms.update("tamper", self.hal.input("tamper"), self._mono_s())

    # -- hourly and daily -------------------------------------------------------------------
    def close_hour(self):
        self.sample()
        h = self.hour_no
        t = self._mono_s()
        if self.hour_ml == 0:
            self.hours_flowing = 0
            self.hours_dry += 1
        else:
            self.hours_flowing += 1
            self.hours_dry = 0
        a = self.alarms
        a.update("leak", self.hours_flowing >= self.cfg["leak_window_h"], t,
                 since=t - self.hours_flowing * _HOUR)
        a.update("no_flow", self.hours_dry >= self.cfg["no_flow_days"] * 24, t,
                 since=t - self.hours_dry * _HOUR)
        try:
            mv = self.hal.adc_read("battery")
            a.update("low_battery", mv < self.cfg["low_battery_mv"], t)
        except OSError:
            mv = None
        records = [senml.record("volume", self.fwd_ml // 1000, "l"),
                   senml.record("consumption", self.hour_ml / 1000.0, "l"),
                   senml.record("flow_min", (self.hour_min or 0.0) / 60000.0, "m3/s"),
                   senml.record("flow_max", self.hour_max / 60000.0, "m3/s")]
        if self.rev_ml:
            records.append(senml.record("volume_reverse", self.rev_ml // 1000, "l"))
        if mv is not None:
            records.append(senml.record("battery", mv / 1000.0, "V"))
        entry = [self.rt.date(), self.rt.device_time(), records]   # as rt.record dates
        history = [h, self.hour_ml]
        day_end = (h + 1) % 24 == 0
        day = [h // 24, self.day_ml, self.fwd_ml] if day_end else None
        self.hour_no = self._hour_index()
        if self.hour_no <= h:
            self.hour_no = h + 1
        self.hour_ml = 0
        self.hour_min = None
        self.hour_max = 0.0
        if day_end:
            self.day_ml = 0
            self._billing(h)
        # Checkpoint first (with the records to append), then append: see the header.
        self.checkpoint(pending=[self.rt.telemetry.last_seq + 1, entry, history, day])
        self._append_pending(entry, history, day)

    def _billing(self, h):
        t = self.hal.time()
        if t is None:
            return
        import time as _t
        day_of_month = _t.gmtime(t)[2]
        if day_of_month == self.cfg["billing_day"]:
            self.billing = [t, self.fwd_ml]
            self.rt.record([senml.record("billing_volume", self.fwd_ml // 1000, "l")])

    def _append_pending(self, entry, history, day):
        self.rt.telemetry.append(cbor.dumps(entry))
        self.hourly.append(cbor.dumps(history))
        if day:
            self.daily.append(cbor.dumps(day))

    def _replay_pending(self, st):
        pending = st.get("pending")
        if pending and self.rt.telemetry.last_seq < pending[0]:
            self.rt.log("re-appending the hour record a power cut interrupted", 2)
            self._append_pending(pending[1], pending[2], pending[3])

    def checkpoint(self, pending=None):
        st = {"fwd": self.fwd_ml, "rev": self.rev_ml, "hour_ml": self.hour_ml,
              "day_ml": self.day_ml, "hour_no": self.hour_no, "flowing": self.hours_flowing,
              "dry": self.hours_dry, "billing": self.billing,
              "alarms": self.alarms.state(), "n": self.checkpoints + 1}
        if pending:
            st["pending"] = pending
        self.store.save("meter", st)
        self.checkpoints += 1

    # -- reporting --------------------------------------------------------------------------
    def report(self):
        """Push pending telemetry; until the host acknowledges, retry with backoff."""
        if services.push_telemetry(self.rt):
            self.rt.sched.after("report-retry", self._backoff * 1000, self.report)
            self._backoff = min(self._backoff * 2, self.cfg["report_s"])

    def delivered(self):
        self._backoff = 60
        if not self.rt.telemetry.pending_count():
            self.rt.sched.cancel("report-retry")

    def reconfigure(self, cfg):
        self._derive(cfg)

    def _derive(self, cfg):
        # What sample() needs of the config, worked out once per config instead of at
        # every sample (a meter samples every minute for years).
        self.cfg = cfg
        self._k_ml = int(cfg["litres_per_pulse"] * 1000 + 0.5)
        self._burst_lpm = cfg["burst_lpm"]
        self._backflow_ml = cfg["backflow_l"] * 1000
        self._fine = cfg["privacy"] == "fine"

    # -- commands ---------------------------------------------------------------------------
    def command(self, name, args):
        if name == "valve":
            want = args.get("open")
            if want is not True and want is not False:
                refuse(C.E_BAD_REQUEST, "valve needs open: true or false")
            self.hal.output("valve", want)
            actual = self.hal.output_state("valve")
            self.rt.log("valve %s by operator" % ("opened" if actual else "closed"), 2)
            return {"valve": "open" if actual else "closed", "requested": want}
        if name == "read":
            self.sample()
            self.checkpoint()   # a reported reading is never above what a reboot resumes
            return {"volume_ml": self.fwd_ml, "reverse_ml": self.rev_ml,
                    "flow_lpm": self.flow_lpm, "valve": self.hal.output_state("valve"),
                    "alarms": [[n, d] for n, d in self.alarms.active(self._mono_s())],
                    "billing": self.billing}
        if name == "history":
            hours = args.get("hours", 24)
            if not isinstance(hours, int) or not 1 <= hours <= 48:
                refuse(C.E_BAD_REQUEST, "hours: 1..48 per request")
            first = max(self.hourly.first_seq, self.hourly.last_seq - hours + 1)
            rows = self.hourly.read(first, hours, 800)
            return [cbor.loads(p) for _, p in rows]
        refuse(C.E_BAD_REQUEST, "unknown command %r (valve, read, history)" % (name,))
