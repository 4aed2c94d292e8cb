# Water ATM (prepaid water kiosk, as AQtap, eWATERpay, Sarvajal run them): customers tap a
# card and get water by volume off a flow meter; balances live on the kiosk in a crash-safe
# ledger (ledger.py); vendors sell operator-signed vouchers the kiosk checks offline
# (voucher.py, scanned as QR codes); the host fetches and acknowledges transactions
# (store and forward) and reconciles them against the meter.
#
#   idle    every poll_ms     card reader, QR scanner, water metered with the valve shut
#   flow    while dispensing  dispense.py (grants ahead of the meter, no-flow fault)
#   plant   every plant_s     tank level, TDS, turbidity: alarms (out of service) and warnings
#   report  every report_s    journal a pack, send pending telemetry
# Cards: water (dispenses, pays), vendor (holds credit, redeems vouchers), service (a free,
# recorded flush; logs the visit; clears faults), admin (puts the kiosk in or out of service).
import binascii
import gc

import cards
import catalog as C
import cbor
import senml
import services
import voucher
import waterq
from alarms import Alarms
from dispense import PRESET, Dispense
from journal import Journal
from ledger import Ledger, cost
from atm_commands import run as run_command
from water_atm_schema import SCHEMA  # noqa: F401  (runtime reads App module's SCHEMA)

_VOUCHER_HOLD_MS = 60000    # a scanned voucher waits this long for a card
_OUT = ("tank_empty", "tds_high", "ntu_high", "no_flow", "water_fault", "ledger_full")


# Commands that change nothing: their replay counter is saved with the next one that
# does (firmware/core/device.py).
READ_ONLY_COMMANDS = ("balance", "balances", "tx_fetch", "reconcile")

class App:
    def __init__(self, rt):
        self.rt = rt
        self.hal = rt.hal
        self.cfg = rt.dev.config
        self.hal.output("valve", False)     # first: whatever a power cut left driven
        self.hal.output("pump", False)
        root = rt.hal.storage_root().rstrip("/") + "/data"
        # Heap: opening journals and replaying the ledger make garbage; collecting after each
        # keeps what lives on (alarms, tasks, ...) packed low instead of strewn over the heap,
        # so the runtime still finds a 4 KB block after the app (measured: without it the
        # largest free block after a replay was 2.5 KB of 90 KB free).
        self.service = Journal(root, "service", 8192, 2048)
        gc.collect()
        self.ledger = Ledger(root, rt.dev.store, self.cfg["max_cards"])
        self._recover()
        gc.collect()
        st = rt.dev.store.load("atm", {}) or {}
        self.manual_out = st.get("out", False)
        self.alarms = Alarms(rt.event, self.cfg["alarm_events_per_day"])
        for name in ("tank_empty", "tds_high", "ntu_high", "water_fault", "ledger_full"):
            self.alarms.define(name, 0, 0, 3)
        for name in ("tank_low", "tds_warn", "ntu_warn", "leak"):
            self.alarms.define(name, 0, 0, 1)
        self.alarms.define("no_flow", 0, 0, 3)
        self.alarms.restore(st.get("alarms"))
        self.has_scanner = "scanner" in rt.hal.BOARD.get("sensors", {})
        self.has_water = "water" in rt.hal.BOARD.get("sensors", {})
        self.disp = Dispense(self)
        self.last_tap = None
        self.pending = None         # [voucher bytes, ticks when scanned]
        self.idle_p = 0             # pulses at the last idle check (the counter restarts at 0)
        # Until then pulses are the closing valve's, not a leak: at boot the valve was just
        # closed (a power cut may have left it open), after a dispense its CLOSE metered them.
        self.quiet_until = self.hal.ticks_add(self.hal.ticks_ms(), self.cfg["settle_ms"])
        self.leak_ml = 0
        self.period = [0, 0, 0]     # since the last report: mL, sessions, charged
        self.quality = {}
        s = rt.sched
        s.every("idle", self.cfg["poll_ms"], self.idle, critical=True)
        if self.has_water:
            s.every("plant", self.cfg["plant_s"] * 1000, self.plant, phase_ms=500)
        s.every("report", self.cfg["report_s"] * 1000, self.report,
                phase_ms=self.cfg["report_s"] * 1000)
        self._leds()
        gc.collect()    # the replay's garbage, before the runtime's own boot allocations

    def _recover(self):
        o = self.ledger.open
        if o is None:
            return
        # A dispense a power cut interrupted: charge what its last GRANT confirmed; the rest,
        # up to the grant, is recorded as uncertain (it may or may not have flowed).
        info = self.ledger.card(o[1])
        bal, dml = (info[1], info[2]) if info else (0, 0)
        charged = min(cost(self.ledger.bands, dml, o[5]), bal)
        self.ledger.end(self.now_unix(), o[5], 0, charged, "power", o[6] - o[5])
        self.log("dispense %d interrupted by a power cut: %d mL charged, up to %d mL uncertain"
                 % (o[0], o[5], o[6] - o[5]))

    # -- helpers ----------------------------------------------------------------------------
    def now_unix(self):
        # Ledger and service-log dates: never below an earlier one, even after a power cut
        # lost the RTC (firmware/core/timefloor.py); None only before the first sync.
        return self.rt.date()

    def pulses(self):
        return self.hal.pulse_count("flow")

    def card_now(self):
        try:
            if not self.hal.input("card_present"):
                return None
            return self.hal.card_uid()
        except OSError:
            return None

    def log(self, text):
        self.service.append(cbor.dumps([self.now_unix(), text[:120]]))

    def in_service(self):
        return not self.manual_out and not any(self.alarms.is_active(a) for a in _OUT)

    def _save(self):
        self.rt.dev.store.save("atm", {"out": self.manual_out, "alarms": self.alarms.state()})

    def _leds(self):
        ok = self.in_service()
        self.hal.output("led_status", ok)
        self.hal.output("led_alarm", not ok)

    def _now_s(self):
        t = self.hal.time()
        return t if t is not None else self.rt.device_time()

    # -- idle: cards, vouchers, leaks -------------------------------------------------------
    def idle(self):
        if self.disp.active:
            return
        p = self.pulses()
        if self.hal.ticks_diff(self.hal.ticks_ms(), self.quiet_until) < 0:
            pass                    # the valve is still closing: not a leak
        elif p > self.idle_p:       # metered with the valve shut: a leaking valve, a bypass
            self.leak_ml += int((p - self.idle_p) * self.cfg["ml_per_pulse"])
            if self.leak_ml >= self.cfg["leak_ml"]:
                self.ledger.leak(self.now_unix(), self.leak_ml)
                self.alarms.update("leak", True, self._now_s())
                self.leak_ml = 0
        self.idle_p = p
        if self.has_scanner:
            self._scan()
        uid = self.card_now()
        if uid is None:
            self.last_tap = None
            return
        if uid != self.last_tap:    # one action per presentation of a card
            self.last_tap = uid
            self.tap(bytes(uid))

    def _scan(self):
        try:
            text = self.hal.sensor_read("scanner")
        except OSError:
            text = None
        now = self.hal.ticks_ms()
        if text:
            try:
                self.pending = [voucher.from_text(text), now]
            except voucher.VoucherError as exc:
                self.log("scan refused: %s" % exc)
        elif self.pending and self.hal.ticks_diff(now, self.pending[1]) > _VOUCHER_HOLD_MS:
            self.pending = None

    def tap(self, uid):
        info = self.ledger.card(uid)
        if info is None:
            if not self.cfg["auto_enrol"]:
                self.log("unknown card %s refused" % binascii.hexlify(uid).decode())
                return
            self.ledger.register(self.now_unix(), uid, cards.WATER)
            info = self.ledger.card(uid)
        role = info[0]
        if role == cards.BLOCKED:
            self.log("blocked card %s refused" % binascii.hexlify(uid).decode())
            return
        if self.pending is not None and role in (cards.WATER, cards.VENDOR):
            data, self.pending = self.pending[0], None
            try:
                self.redeem(data, uid)
            except voucher.VoucherError as exc:
                self.log("voucher refused: %s" % exc)
                return
            info = self.ledger.card(uid)
        if role == cards.WATER:
            mode = self.cfg["mode"]
            # Pay as you flow: as long as the card stays and the credit lasts (a session
            # cap of 200 L bounds a card left on the reader).
            limit = self.cfg["preset_l"] * 1000 if mode == PRESET else 200000
            self._dispense(uid, info, mode, limit)
        elif role == cards.SERVICE:
            self.log("service visit, card %s" % binascii.hexlify(uid).decode())
            if self.alarms.is_active("no_flow") or self.alarms.is_active("leak"):
                self.alarms.update("no_flow", False, self._now_s())
                self.alarms.update("leak", False, self._now_s())
                self._save()
            self._dispense(uid, (role, 0, 0), PRESET, self.cfg["service_l"] * 1000, True)
        elif role == cards.ADMIN:
            self.manual_out = not self.manual_out
            self.log("taken %s service by admin card" % ("out of" if self.manual_out else "into"))
            self._save()
            self._leds()

    def _dispense(self, uid, info, mode, limit_ml, free=False):
        if not self.in_service():
            self.log("out of service: dispense refused")
            return
        if self.ledger.j.pending_count() >= self.cfg["max_unacked"]:
            # Never evict a transaction the host has not seen: stop selling instead.
            self.alarms.update("ledger_full", True, self._now_s())
            self._leds()
            return
        why = self.disp.start(uid, mode, info[1], info[2], limit_ml, free)
        if why:
            self.log("dispense refused: " + why)

    def dispensed(self, uid, ml, charged, after, reason):
        self.period[0] += ml
        self.period[1] += 1
        self.period[2] += charged
        self.idle_p = self.pulses()     # the over-run was metered into this dispense
        if self.card_now() != uid:      # taken away during the dispense: a new tap may come
            self.last_tap = None
        self.quiet_until = self.hal.ticks_ms()
        if reason == "no_flow":
            self.alarms.update("no_flow", True, self._now_s())
            self._save()
        self._leds()

    def redeem(self, data, uid):
        serial, amount, card = voucher.verify(data, self.rt.dev.keyring,
                                              self.rt.dev.device_id, self.rt.clock)
        if card is not None and card != uid:
            raise voucher.VoucherError("voucher is bound to another card", C.E_WRONG_TARGET)
        self.ledger.window.check(serial)
        bal = self.ledger.card(uid)[1]
        if bal + amount > self.cfg["balance_cap"]:
            raise voucher.VoucherError("balance would exceed the cap of %d"
                                       % self.cfg["balance_cap"], C.E_BAD_REQUEST)
        return self.ledger.topup(self.now_unix(), uid, amount, serial)

    # -- plant: tank and water quality ------------------------------------------------------
    def plant(self):
        c = self.cfg
        now = self._now_s()
        try:
            mv = self.hal.sensor_read("water")
        except OSError:
            mv = None
        a = self.alarms
        a.update("water_fault", not isinstance(mv, dict), now)
        if isinstance(mv, dict):
            tank = waterq.level_pct(mv.get("a2", 0), c["tank_empty_mv"], c["tank_full_mv"])
            tds = waterq.tds_ppm(mv.get("a0", 0), c["water_temp_c"])
            ntu = waterq.ntu(mv.get("a1", 0), c["ntu_zero_mv"], c["ntu_mv_per_ntu"])
            self.quality = {"tank": tank, "tds": tds, "ntu": ntu}
            a.update("tank_empty", tank < c["tank_empty_pct"], now)
            a.update("tank_low", tank < c["tank_low_pct"], now)
            a.update("tds_high", tds > c["tds_max_ppm"], now)
            a.update("tds_warn", tds > c["tds_warn_ppm"], now)
            a.update("ntu_high", ntu > c["ntu_max"], now)
            a.update("ntu_warn", ntu > c["ntu_warn"], now)
        a.update("ledger_full", self.ledger.j.pending_count() >= c["max_unacked"], now)
        if not self.in_service() and self.disp.active:
            self.disp.stop("out_of_service")
        self._leds()

    def report(self):
        q = self.quality
        tot = self.ledger.tot       # every litre the meter saw: dispensed and leaked
        recs = [senml.record("volume", (tot[0] + tot[3]) / 1000.0, "l"),
                senml.record("dispensed", self.period[0] / 1000.0, "l"),
                senml.record("sessions", self.period[1], "count"),
                senml.record("revenue", self.period[2]),
                senml.record("in_service", vb=self.in_service()),
                senml.record("unacked", self.ledger.j.pending_count(), "count")]
        if q:
            recs += [senml.record("tank", q["tank"], "%"), senml.record("tds", q["tds"], "ppm"),
                     senml.record("turbidity", q["ntu"], "NTU")]
        self.period = [0, 0, 0]
        self.rt.record(recs)
        services.push_telemetry(self.rt)

    def reconfigure(self, cfg):
        self.cfg = cfg
        self.alarms.max_events = cfg["alarm_events_per_day"]

    # -- commands (operator-signed): atm_commands.py ----------------------------------
    def command(self, name, args):
        return run_command(self, name, args)
