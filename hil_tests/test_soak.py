"""Soak campaigns (issue 13.5): each device kind runs for weeks (`make test`: 30 simulated
days; `make nightly`: 3650) provisioned on an emulated board in paused time, its world model
driving realistic inputs, with reboots, power cuts and (nightly) link noise and brown-outs.
Everything goes through the `edgekit` CLI as an operator runs it: `provision`, `monitor --ack`
as the gateway storing telemetry in the registry, `command ... diag`, and at the end
`devices telemetry ID --json`. The checks are on the host's stored data:

- the telemetry journal's sequence numbers have no gap and no duplicate (and the device
  dropped nothing);
- record times never go backwards, but by a sync's correction (after a reset that lost the
  RTC, an estimate up to an hour ahead is set back once);
- totals equal the world model's (litres, dispenses, collections, air);
- journal appends and flash operations per simulated day stay within the kind's wear budget
  (WEAR below, from docs/flash-wear.md);
- the device booted exactly as often as the test reset or cut it: any other reset fails.

The host's clock: in paused time the simulated days pass in seconds, so the operator's
computer is put on the simulated calendar (its `time.time()` and the registry's receipt
time are the campaign's start plus simulated seconds). Without that every `monitor` would
"sync" the device 30 days back and times could not be compared; with it, the syncs are the
real ones: after a power cut (no RTC) and when the board's RTC drift passes 2 s.
"""
import bisect
import csv
import io
import json
import math
import os
import random
import sys
import time
import types
from datetime import datetime, timezone

import pytest

from edgekit.registry import export

from edgekit.cli import main as edgekit
from edgekit.protocol import clock as host_clock
from edgekit.protocol import session as host_session
from edgekit.registry import telemetry as host_telemetry

NIGHTLY = os.environ.get("EDGEKIT_NIGHTLY") == "1"
DAYS = int(os.environ.get("EDGEKIT_SOAK_DAYS", 3650 if NIGHTLY else 30))
DAY = 86400
HOUR = 3600
# Days between gateway sessions: within every kind's journal. The air node journals 48 packs
# a day at hourly reports and its 64 KB telemetry journal holds about 200: a 5-day cadence
# (the nightly's first choice) dropped ~40 packs each time, rightly counted as lost.
MONITOR_EVERY = 3
# Reboots and power cuts the test causes: a few in 30 days, one every ~3 months nightly.
# EDGEKIT_SOAK_EVENT_EVERY overrides it (at 4: a brown-out, a reboot and a power cut every
# four days, to chase a fault the ten years met once).
EVENT_EVERY = int(os.environ.get("EDGEKIT_SOAK_EVENT_EVERY", 90 if NIGHTLY else 10))
# Nightly: bytes flipped/dropped/doubled per byte. At 2e-4 a 750-byte diag answer is damaged
# one time in seven, so resends and shorter fetches are exercised all along. At 2e-3 (the
# first choice) four in five were: a 12-day run took over 15 minutes of timeouts and ten
# years could never finish. EDGEKIT_SOAK_NOISE overrides it.
NOISE_RATE = float(os.environ.get("EDGEKIT_SOAK_NOISE", 2e-4))

# Wear budget per kind, per simulated day, from docs/flash-wear.md: the budget every app
# must stay under is 1,000 block erases a day (ESP32 2 MiB vfs: 52 years); a flash-seam
# operation costs at most ~1.1 erases (a journal append ~1, a small save's three operations
# 0.16 together), so seam operations per day bound the erases. Each kind's figure is its
# schedule in seam operations with its soak configuration, with room for the syncs, acks and
# reboots of the campaign; `appends` bounds the three journals' records per day.
WEAR = {
    # 24 hourly packs + 1 daily + events; checkpoints every 15 min (96 saves x 3 ops), boot
    # record hourly (24 x 3), acks and replay counters: ~560 ops/day
    "water_meter": {"ops": 700, "appends": 40},
    # 24 hourly reports, ~5 sales x (ledger OPEN/grants/CLOSE ~5 appends + counter save),
    # plant alarms; boot record hourly: ~200 ops/day
    "water_atm": {"ops": 400, "appends": 80},
    # reports every 3 h, compactions and collections, daily energy pack; guard saves
    "smart_bin": {"ops": 400, "appends": 40},
    # two packs an hour (LEAN: PM runs every 10 min kept in RAM), boot record hourly
    "env_sensor": {"ops": 400, "appends": 60},
}


@pytest.fixture
def soak_home(tmp_path, monkeypatch, capsys):
    """A fresh EDGEKIT_HOME with fleet keys; the default clock allowance (2 s)."""
    monkeypatch.setenv("EDGEKIT_HOME", str(tmp_path))
    monkeypatch.setenv("EDGEKIT_KEY_PASSPHRASE", "soak test fleet passphrase")
    for name in ("EDGEKIT_MAX_DRIFT_S", "EDGEKIT_TEST_CRASH_AT"):
        monkeypatch.delenv(name, raising=False)
    assert edgekit(["keys", "init"]) == 0
    capsys.readouterr()
    return tmp_path


def run(capsys, *argv):
    code = edgekit(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


# --- the operator's computer on the simulated calendar ------------------------------------
@pytest.fixture
def host_calendar(clock, monkeypatch):
    """Unix time of the simulated world: now at the start, plus simulated seconds."""
    base = time.time() - clock.now()

    def now():
        return base + clock.now()

    shim = types.SimpleNamespace(**{n: getattr(time, n) for n in dir(time)
                                    if not n.startswith("_")})
    shim.time = now

    class SimDatetime(datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime.fromtimestamp(now(), tz or timezone.utc)

    monkeypatch.setattr(host_clock, "time", shim)
    monkeypatch.setattr(host_session, "time", shim)
    monkeypatch.setattr(host_telemetry, "datetime", SimDatetime)
    return now


class Campaign:
    """One kind's soak: the board, the CLI and the tally of what the test caused."""

    def __init__(self, kind, board, world, clock, capsys, calendar):
        self.kind, self.board, self.world, self.clock = kind, board, world, clock
        self.capsys, self.calendar = capsys, calendar
        self.rng = random.Random(f"soak-{kind}")
        self.caused_boots = 0
        self.rtc_losses = 0         # power cuts and brown-outs: the RTC starts unset
        self.diag_ops = 0           # diag's flash_ops (since boot) summed over the boots
        self.device = None
        self.noisy = False

    @property
    def quick(self):
        # In paused time the board answers within milliseconds of wall time: through noise a
        # lost answer is known after 1 s, not the 5 s a real link needs (a 365-day nightly
        # run spent most of its wall time waiting out 5 s timeouts).
        return ("--timeout", 1) if self.noisy else ()

    def cli(self, *argv, ok=True):
        code, out, err = run(self.capsys, *map(str, argv))
        if ok:
            assert code == 0, (argv, err)
        return code, out, err

    def provision(self, config, home):
        argv = ["provision", self.board.url, "--kind", self.kind, "--site", "soak", "--json"]
        if config:
            (home / "config.json").write_text(json.dumps(config))
            argv += ["--config", home / "config.json"]
        _, out, _ = self.cli(*argv)
        self.device = json.loads(out)["devices"][0]["device_id"]

    def command(self, *argv):
        """An operator command's result (retried through link noise: exit 3 is the link).
        At the nightly noise (0.2% of bytes) a diag exchange of ~750 bytes gets through one
        attempt in five: the CLI tries 3 times a call, and the campaign calls again, up to
        30 times (five calls failed once in a 365-day run: 2% a diag, ~150 diags)."""
        for _ in range(30 if self.noisy else 1):
            code, out, err = self.cli("command", self.board.url, *argv, "--json",
                                      *self.quick, ok=False)
            if code == 0:
                return json.loads(out)["result"]
            assert code == 3 and self.noisy, (argv, code, err)
        pytest.fail(f"`command {' '.join(argv)}` failed 30 times through noise: {err}; "
                    f"the board: {self.board_state()}")

    def board_state(self):
        """What the emulator knows of the board (state, boots, resets, last error) and the
        tail of its console, for a failure's message."""
        info = self.board.faults.info()
        keep = ("state", "boots", "resets", "reset_cause", "sim_s", "last_error", "wdt_ms",
                "repl", "plugged", "pending")
        return {k: info.get(k) for k in keep if k in info}

    def diag(self):
        return self.command("diag")

    def gateway(self):
        """Gateway sessions until everything the device journaled is stored and
        acknowledged. Through nightly noise a session moves a few packs (a damaged answer
        costs a timeout): sessions go on while they make progress; ten in a row without
        any fail the campaign (a 365-day run once ended with 80 packs pending after 20
        one-second sessions)."""
        idle, last = 0, None
        while idle < 10:
            # --drain: done once everything is stored (a listening monitor waited out its
            # whole --duration: in paused time nothing new comes; ten years of 5 s sessions
            # were 1.7 hours of waiting). Through noise it reopens the link for up to 30 s.
            code, _, err = self.cli("monitor", self.board.url, "--ack", "--drain",
                                    "--duration", 30 if self.noisy else 0, "--json",
                                    *self.quick, ok=False)
            # through link noise the first HELLO can fail (exit 3): the next session retries
            assert code == 0 or (code == 3 and self.noisy), err
            d = self.diag()
            pending = d["telemetry"]["pending"] + d["events"]["pending"]
            if pending == 0:
                return d
            idle = 0 if last is None or pending < last else idle + 1
            last = pending if last is None else min(last, pending)
        pytest.fail(f"the gateway could not drain {self.device}: {d['telemetry']}")

    def advance(self, seconds):
        self.clock.advance(seconds)

    # the test's own resets: each one counted, diag's flash counter (since boot) read first
    def before_reset(self):
        self.diag_ops += self.diag()["flash_ops"]

    def reboot(self):
        self.before_reset()
        self.board.reset()
        self.caused_boots += 1
        self.advance(60)

    def powercut(self):
        self.before_reset()                     # (misses the writes of the last hour)
        self.board.powercut(within=HOUR)        # a random instant of the next hour
        self.caused_boots += 1
        self.rtc_losses += 1
        self.advance(HOUR)
        self.gateway()                          # the operator's next session sets the RTC

    def brownout(self):
        """The supply sags inside one of the next few flash writes (nightly)."""
        boots = self.board.boots()
        self.before_reset()
        self.board.faults.brownout(self.rng.randint(1, 6))
        self.caused_boots += 1
        self.rtc_losses += 1
        for _ in range(48):
            self.advance(HOUR)
            if self.board.boots() > boots:
                return
        pytest.fail("the brown-out never fired within two days of flash writes")

    def disturb(self, day):
        """A reboot, a power cut or (nightly) a brown-out, spread over the campaign."""
        if day % EVENT_EVERY == EVENT_EVERY // 2:
            self.reboot()
        elif day % EVENT_EVERY == EVENT_EVERY - 1:
            self.powercut()
        elif NIGHTLY and day % EVENT_EVERY == EVENT_EVERY // 4:
            self.brownout()

    def ledger(self):
        """A kiosk's ledger into the registry, then acknowledged (`edgekit ledger fetch`):
        without it the kiosk stops selling at max_unacked (800) records, about day 60."""
        for _ in range(30 if self.noisy else 1):
            code, out, err = self.cli("ledger", "fetch", self.board.url, "--json", *self.quick,
                                      ok=False)
            if code == 0:
                return json.loads(out)
            assert code == 3 and self.noisy, (code, err)
        pytest.fail(f"`ledger fetch` failed 30 times through noise: {err}")

    def stored(self):
        _, out, _ = self.cli("devices", "telemetry", self.device, "--json")
        return json.loads(out)


# --- the kinds: configuration, a day of the world, the totals -----------------------------
class WaterMeter:
    config = {}

    def __init__(self, c):
        self.c = c

    def day(self, day):
        """A household: taps, showers, a garden hose at random hours; quiet nights."""
        rng, world, left = self.c.rng, self.c.world, DAY
        for _ in range(rng.randint(3, 8)):
            gap = rng.randint(600, 3 * HOUR)
            lpm, minutes = rng.choice([(4, 3), (9, 8), (12, 20), (18, 45), (0.6, 30)])
            if gap + minutes * 60 > left - 2 * HOUR:
                break
            self.c.advance(gap)
            world.set(flow_lpm=lpm)
            self.c.advance(minutes * 60)
            world.set(flow_lpm=0)
            left -= gap + minutes * 60
        self.c.advance(left)

    def check(self, records, snap):
        volumes = [r["value"] for r in records if r["name"] == "volume"]
        used = sum(r["value"] for r in records if r["name"] == "consumption")
        truth = snap["litres_fwd"]
        assert volumes == sorted(volumes), "the meter's volume went backwards"
        # the last hourly pack is taken after hours without flow: it holds every litre
        assert abs(volumes[-1] - truth) <= 1.0, (volumes[-1], truth)   # 1 L per pulse
        assert abs(used - volumes[-1]) <= 1.0, (used, volumes[-1])     # no hour lost/twice


class WaterAtm:
    # Lean on idle wakes (the card reader polled every 5 s, a wake is ~0.2 ms of VM): the
    # emulator runs every wake; behaviour is the same.
    config = {"poll_ms": 5000, "preset_l": 2, "grant_ml": 500, "settle_ms": 1500}
    cards = [0x0A000001, 0x0A000002, 0x0A000003]

    def __init__(self, c):
        self.c = c
        self.sales = 0
        self.sold_at = []            # sim s of each sale, for a failure's message

    def setup(self):
        # The tank (1,000 L) refilled from the mains as kiosks are: without it the kiosk ran
        # dry after ~460 sales (day ~115) and rightly stopped selling (tank_empty).
        self.c.world.set(refill_lph=20)
        self.c.command("prices", "bands=[[20,5000],[0,9000]]")
        for n in self.cards:
            self.c.command("card", f"uid={n:08x}", "role=water")
            self.c.command("credit", f"uid={n:08x}", "amount=100000")

    def day(self, day):
        rng, world, left = self.c.rng, self.c.world, DAY
        for _ in range(rng.randint(2, 6)):
            gap = rng.randint(HOUR, 3 * HOUR)
            if gap + 40 > left - HOUR:
                break
            self.c.advance(gap)
            world.set(card=rng.choice(self.cards))     # a 2 L preset: 10 s at 12 L/min
            self.c.advance(20)
            world.set(card=0)
            self.c.advance(20)
            self.sales += 1
            self.sold_at.append(self.c.clock.now())
            left -= gap + 40
        self.c.advance(left)
        if day % MONITOR_EVERY == MONITOR_EVERY - 1:
            self.c.ledger()             # the operator's reconciliation, with the gateway's

    def check(self, records, snap):
        volumes = [r["value"] for r in records if r["name"] == "volume"]
        sessions = sum(r["value"] for r in records if r["name"] == "sessions")
        closed = [r["unix"] for r in records if r["name"] == "in_service"
                  and r["value_text"] != "true"]
        assert not closed, (f"the kiosk was out of service in {len(closed)} reports: "
                            f"{self.where(records)}")
        assert volumes == sorted(volumes), "the kiosk's metered volume went backwards"
        assert abs(volumes[-1] - snap["litres"]) <= 0.02, (volumes[-1], snap["litres"])
        if sessions != self.sales:
            pytest.fail(f"sessions {sessions} != sales {self.sales}: {self.where(records)}")
        self.c.ledger()
        _, out, _ = self.c.cli("ledger", "show", self.c.device, "--json")
        books = json.loads(out)         # replayed: every balance the kiosk wrote checked
        assert books["dispenses"] == self.sales and not books["dispensing"], books

    def where(self, records):
        """Where the kiosk's counted sessions fell behind the sales: the first pack whose
        running total is short by more than a few, the packs out of service, its status and
        service log."""
        base = self.c.calendar() - self.c.clock.now()
        packs = {}
        for r in records:
            if r["name"] in ("sessions", "in_service"):
                packs.setdefault(r["journal_seq"], {})[r["name"]] = r
        counted, behind, out = 0, None, []
        for seq in sorted(packs):
            got = packs[seq]
            if "sessions" not in got:
                continue
            counted += got["sessions"]["value"]
            sim = got["sessions"]["unix"] - base
            sold = bisect.bisect_right(self.sold_at, sim)
            if behind is None and sold - counted > 5:
                behind = (seq, round(sim / DAY, 2), counted, sold)
            if got.get("in_service", {}).get("value_text") == "false":
                out.append(round(sim / DAY, 2))
        status = self.c.command("status")
        log = self.c.command("service_log", "count=20")
        return (f"first behind (seq, day, counted, sold): {behind}; out of service on days "
                f"{out[:10]} ({len(out)} packs); status {status}; service log {log}")


class SmartBin:
    config = {"guard_s": HOUR, "sample_s": 2 * HOUR, "report_s": 3 * HOUR, "compact_s": 30,
              "motor_poll_ms": 5000, "compact_gap_s": HOUR}

    def __init__(self, c):
        self.c = c

    def day(self, day):
        """The truck at 6:00 every third day, a busy street from 7:00 to 22:00; sun and
        cloud. (A truck during a reboot is test_smart_bin's
        test_a_collection_while_the_bin_reboots_is_counted_and_the_press_runs_again.)"""
        world = self.c.world
        world.set(cloud=self.c.rng.choice([1.0, 0.6, 0.2]), fill_lph=0)
        self.c.advance(6 * HOUR)
        if day % 3 == 2:
            world.set(collect=True)
        self.c.advance(HOUR)
        world.set(fill_lph=12)
        self.c.advance(15 * HOUR)
        world.set(fill_lph=0)
        self.c.advance(2 * HOUR)


    def check(self, records, snap):
        collected = [r for r in records if r["name"] == "collected"]
        assert len(collected) == snap["collections"], (len(collected), snap["collections"])
        soc = [r["value"] for r in records if r["name"] == "soc"]
        assert abs(soc[-1] - snap["values"]["battery_soc"]) <= 5, (soc[-1], snap)


class EnvSensor:
    config = {"sample_s": 300, "pm_period_s": 600, "pm_readings": 3, "pm_gap_ms": 2000,
              "report_s": HOUR, "push_s": 7 * DAY, "pm25_alarm": "off", "pm10_alarm": "off"}
    STEP = 4 * HOUR                  # the air changes every four hours

    def __init__(self, c):
        self.c = c
        self.air = []                # (sim s from, temp_c)
        self._at = []                # the steps' starts, for bisection

    def day(self, day):
        rows = io.StringIO()
        out = csv.writer(rows)
        out.writerow(["t", "temp_c", "rh", "pm25", "noise_dba"])
        start = self.c.clock.now()
        for i in range(DAY // self.STEP):
            temp = round(self.c.rng.uniform(-5, 35), 2)
            self.air.append((start + i * self.STEP, temp))
            out.writerow([i * self.STEP, temp, round(self.c.rng.uniform(30, 90), 1),
                          round(self.c.rng.uniform(5, 80), 1),
                          round(self.c.rng.uniform(40, 80), 1)])
        self.c.board.faults.drive(rows.getvalue())
        self.c.advance(DAY)

    def temps_between(self, t0, t1):
        """The air's temperatures over (t0, t1): each step from its start to the next's.
        By bisection: ten years hold 21,900 steps, scanned for each of 87,600 hourly means."""
        if len(self._at) != len(self.air):
            self._at = [at for at, _ in self.air]
        first = max(0, bisect.bisect_right(self._at, t0) - 1)    # the step holding t0
        got = [temp for _, temp in self.air[first:bisect.bisect_left(self._at, t1)]]
        return min(got), max(got)

    def check(self, records, snap):
        base = self.c.calendar() - self.c.clock.now()
        checked = 0
        for r in records:
            if r["name"] != "temp" or r["clock"] != "device":
                continue
            sim = r["unix"] - base
            if sim < self.air[0][0] + 2 * HOUR:
                continue
            # an hourly mean lies within the air of its hour (10 min slack for the RTC)
            lo, hi = self.temps_between(sim - HOUR - 600, sim + 600)
            assert lo - 0.05 <= r["value"] <= hi + 0.05, (r, lo, hi)
            checked += 1
        assert checked >= 20 * DAYS, checked


KINDS = {"water_meter": WaterMeter, "water_atm": WaterAtm, "smart_bin": SmartBin,
         "env_sensor": EnvSensor}


# --- the checks on the host's stored data -------------------------------------------------
def check_journal(stored, diag):
    rows = stored["telemetry"]
    keys = [(r["journal_seq"], r["idx"]) for r in rows]
    assert len(keys) == len(set(keys)), "a record stored twice"
    seqs = sorted({seq for seq, _ in keys})
    last = diag["telemetry"]["last"]
    assert diag["telemetry"]["dropped"] == 0 and diag["telemetry"]["pending"] == 0
    missing = sorted(set(range(1, last + 1)) - set(seqs))
    assert not missing and seqs[-1] == last, f"gaps in the telemetry journal: {missing[:20]}"
    # Each pack's records indexed 0..n-1. Grouped once: a scan of every key per pack was
    # quadratic, and ten years of a meter (87,600 packs, 440,000 records) never got past it.
    packs = {}
    for seq, i in keys:
        packs.setdefault(seq, []).append(i)
    for seq, idx in packs.items():
        assert sorted(idx) == list(range(len(idx))), (seq, sorted(idx))


# After a reset that lost the RTC a device dates by an estimate that starts at the limit it
# saved ahead of every date it reported (firmware/core/timefloor.py, SPEC 8.4): never below a
# date reported before, up to this much above the true time until a sync corrects it.
DATE_RESERVE_S = 3600


def check_times(stored, rtc_ppm, rtc_losses):
    """Pack times in journal order never go back, but by a clock correction: a sync sets a
    drifted RTC back by at most the allowance (2 s) plus what it drifted since the last, and
    the first sync after each reset that lost the RTC sets an estimate back by at most the
    reserve it ran ahead by."""
    slack = 2 + abs(rtc_ppm) * 1e-6 * MONITOR_EVERY * DAY + 1
    packs = {}
    for r in stored["telemetry"]:
        packs.setdefault(r["journal_seq"], r["unix"])
    times = [packs[seq] for seq in sorted(packs)]
    assert None not in times
    back = [(a, b) for a, b in zip(times, times[1:]) if b < a - slack]
    far = [(a, b) for a, b in back if b < a - slack - DATE_RESERVE_S]
    assert not far, f"times went backwards by more than a sync corrects: {far[:3]}"
    assert len(back) <= rtc_losses, (f"times went backwards {len(back)} times, more than the "
                                     f"{rtc_losses} resets that lost the RTC: {back[:3]}")


@pytest.mark.parametrize("kind", [pytest.param(k, marks=pytest.mark.hil(kind=k))
                                  for k in sorted(KINDS)])
def test_soak(kind, board, world, clock, host_calendar, soak_home, capsys):
    c = Campaign(kind, board, world, clock, capsys, host_calendar)
    app = KINDS[kind](c)
    c.provision(app.config, soak_home)
    if hasattr(app, "setup"):
        app.setup()
    start = c.diag()
    boots0 = start["boots"]
    if NIGHTLY:
        board.faults.noise(NOISE_RATE, seed=13)
        c.noisy = True
    chip0 = board.faults.info()["flash_ops"]
    began = time.monotonic()
    for day in range(DAYS):
        c.disturb(day)                # at midnight, before the day's activity
        app.day(day)
        if day % MONITOR_EVERY == MONITOR_EVERY - 1:
            c.gateway()
        if NIGHTLY and day % 100 == 99:
            # Past capsys (which holds the CLI's output): a ten-year run takes hours, and
            # where it stands is what an operator of the nightly asks first.
            print(f"soak {kind}: day {day + 1}/{DAYS}, {time.monotonic() - began:.0f} s, "
                  f"{c.caused_boots} resets caused", file=sys.__stderr__, flush=True)
    c.advance(3 * HOUR)              # a last sample sees the last day's end (a collection)
    end = c.gateway()
    if NIGHTLY:
        board.faults.noise(0)
        c.noisy = False
    snap = world.snapshot()
    stored = c.stored()

    # any reset the test did not cause
    assert end["boots"] - boots0 == c.caused_boots, (end["boots"], boots0, c.caused_boots,
                                                     end["reset_cause"])
    assert end["task_errors"] == 0, end
    check_journal(stored, end)
    check_times(stored, board.faults.info().get("rtc_drift_ppm", 0), c.rtc_losses)
    app.check(stored["telemetry"], snap)
    # The public register states what the kind collects (firmware/kinds/<kind>/register.json):
    # every record and event the device really sent must fall under one of its categories.
    sent = {r["name"] for r in stored["telemetry"]}
    raised = {e["name"] for e in stored.get("events", ())}
    missing = export.undeclared(kind, sorted(sent), sorted(raised))
    assert not missing, f"{kind} sends {missing}, which its register.json does not declare"
    print(f"{kind}: register categories cover {sorted(sent)} and events {sorted(raised)}")
    # Wear, per simulated day from provisioning's end to the last gateway session. diag's
    # flash_ops counts since boot: summed over the boots it is a lower bound of the flash
    # chip's own count (the emulator's, which the budget is checked on).
    days = DAYS
    chip = board.faults.info()["flash_ops"] - chip0
    seen = c.diag_ops + end["flash_ops"] - start["flash_ops"]
    assert 0 < seen <= chip, (seen, chip)
    ops = chip / days
    appends = sum(end[j]["last"] - start[j]["last"] for j in ("telemetry", "events", "logs"))
    print(f"soak {kind}: {DAYS} days, {ops:.0f} flash ops/day, {appends / days:.1f} "
          f"journal appends/day", {j: end[j]["last"] - start[j]["last"]
                                   for j in ("telemetry", "events", "logs")},
          f"{c.caused_boots} resets caused")
    assert ops <= WEAR[kind]["ops"], f"{ops:.0f} flash operations a day (budget " \
        f"{WEAR[kind]['ops']})"
    assert appends / days <= WEAR[kind]["appends"], appends / days
    assert math.isfinite(ops)
