"""Device time in the real VM (SPEC 8.4): uptime, device time, the saved limits, SenML times
and event times after 7, 50 and 3650 days of uptime (ticks jumped across hundreds of 2**30
wraps), across a power cut, and the scheduler's long periods across the wrap."""
import pytest

from edgekit import catalog as C
from edgekit.paths import ROOT
from edgekit.testing import mp

TIME_HAL = ROOT / "tests" / "firmware" / "timehal"
DAY_MS = 86400 * 1000
T0 = 1767225600                 # 2026-01-01T00:00:00Z

# One boot of a provisioned device (kind water_meter, but no app module on the path: the
# minimal app, so only the runtime's own time is under test). The script defines `rt`,
# `advance(ms)` (jumps the ticks in steps under 3.1 days and runs the scheduler after each,
# as a board wakes at least once a minute) and `state()`.
BOOT = r"""
import json, sys
import hal
import cbor, device, ed25519, services, senml
hal.setup(ticks0=TICKS0, rtc=RTC, cause=CAUSE)
st = device.open_store(hal)
if st.load("identity") is None:
    seed = bytes(range(32))
    st.commit({"identity": {"id": "wm-0011223344", "seed": seed,
                            "pub": ed25519.public_key(seed), "kind": "water_meter",
                            "fleet": "f", "site": ""},
               "cert": b"c", "anchors": {"fleet": [bytes(32)], "epoch": 1, "revoked": []},
               "config": {}})
import runtime
rt = runtime.Runtime(hal)

jumped = [0]


def advance(ms, step=0x0FFFFFF0):
    while ms > 0:
        s = min(step, ms)
        hal.jump(s)
        jumped[0] += s
        rt.sched.run_due()
        ms -= s


def sync(t):
    # (written so that it also runs on the firmware before SPEC 8.4, to show what failed)
    rt.clock.sync(t) if hasattr(rt, "clock") else hal.set_time(t)

def events():
    return [cbor.loads(p) for _, p in rt.events.read(None, 64, 100000)]

def packs():
    out, frm = [], None
    while True:
        rows = rt.telemetry.read(frm, 64, 100000)
        if not rows:
            return out
        out += [rt.restamp(cbor.loads(p)) for _, p in rows]
        frm = rows[-1][0] + 1

def state():
    d = services.diag(rt)
    return {"uptime_s": rt.uptime_s(), "jumped_ms": jumped[0],
            "device_time": d["device_time"],
            "date": rt.date() if hasattr(rt, "date") else hal.time(),
            "saved": rt.dev.store.load("boot"), "diag_uptime": d["uptime_s"],
            "caps_uptime": services.caps(rt)[C_UPTIME], "boots": rt.boots}
"""


def _boot(ticks0=0, rtc=None, cause="power_on"):
    return (BOOT.replace("TICKS0", str(ticks0)).replace("RTC", repr(rtc))
            .replace("CAUSE", repr(cause)).replace("C_UPTIME", str(C.K_UPTIME)))


def run(code, flash, **kw):
    flash.mkdir(exist_ok=True)
    return mp.run_json(_boot(**kw) + code, cwd=flash, extra_paths=[TIME_HAL], heap="2M",
                       timeout=300)


def bt(pack):
    return pack[0].get(C.SENML_BT)


@pytest.mark.parametrize("days", [7, 50, 3650])
def test_long_uptime_keeps_every_time_monotonic_and_right(tmp_path, days):
    """Before: uptime was one ticks_diff since boot: -468942 s after 7 days, device time ran
    backwards and was saved so, hourly packs carried bt 0 and event times flipped sign."""
    out = run(r"""
import json
DAYS = %d
marks = []
rt.record([senml.record("v", 0)])
rt.event("first", True, 0, 1)
checks = [0.5, 1, 6, 6.3, 7, 12.5, 13, 25, 50, 400, 3000, 3650]
for d in checks:
    if d > DAYS:
        break
    advance(int(d * 86400000) - jumped[0])
    s = state()
    rt.record([senml.record("v", d)])
    rt.event("tick", True, 0, 1)
    s["day"] = d
    marks.append(s)
# the last pack was just taken; the first one DAYS ago
print(json.dumps({"marks": marks, "events": [e[21] for e in events()],
                  "packs": [p[0].get(%d) for p in packs()]}))
""" % (days, C.SENML_BT), tmp_path / "flash", ticks0=(1 << 30) - 5000)
    marks = out["marks"]
    assert marks and marks[-1]["day"] == days
    last_dt = -1
    for m in marks:
        want = int(m["day"] * 86400)
        assert m["uptime_s"] == want and m["diag_uptime"] == want, m
        assert want * 1000 <= m["caps_uptime"] < want * 1000 + 1000, m
        assert m["device_time"] == want, m          # first boot: device time is uptime
        saved = m["saved"]["dt"]
        assert m["device_time"] <= saved <= m["device_time"] + 3600, m
        assert m["date"] is None                     # never synced: no date to report
        assert m["device_time"] > last_dt
        last_dt = m["device_time"]
    # event times: minus device time (no sync ever), so each further from 0 than the last
    ev = out["events"]
    assert all(t <= 0 for t in ev) and all(a > b for a, b in zip(ev, ev[1:])), ev
    assert -ev[-1] == days * 86400
    # SenML: relative times, seconds before now, oldest first
    rel = out["packs"]
    assert rel[0] == -days * 86400 and rel[-1] == 0, rel
    assert all(a < b for a, b in zip(rel, rel[1:])), rel


def test_synced_dates_and_a_power_cut_never_go_back(tmp_path):
    """A synced meter runs 20 days, the power fails (RTC lost, ticks restart), it boots
    again: device time, the dates of events, the ATM-style date, the saved floor and the
    packs' dates never go below what was reported before the cut."""
    flash = tmp_path / "flash"
    before = run(r"""
import json
sync(%d)
rt.event("a", True, 0, 1)
for h in range(20 * 24):
    advance(3600 * 1000 - 7)           # odd steps: the cut falls between two saves
    rt.record([senml.record("v", h)])
rt.event("b", True, 0, 1)
advance(1800 * 1000)
s = state()
s["events"] = [e[21] for e in events()]
print(json.dumps(s))
""" % T0, flash, ticks0=123456)
    assert before["date"] == T0 + before["uptime_s"]
    assert before["events"][-1] == T0 + before["uptime_s"] - 1800
    # the power cut: a new VM (RTC lost, ticks from 0) on the same flash
    after = run(r"""
import json
s = state()
rt.event("c", True, 0, 1)
advance(60 * 1000)
rt.record([senml.record("v", -1)])
s["events"] = [e[21] for e in events()]
s["floor"] = rt.clock.floor() if hasattr(rt, "clock") else None
s["synced"] = hal.time() is not None
s["packs"] = [p[0].get(%d) for p in packs()]
print(json.dumps(s))
""" % C.SENML_BT, flash, ticks0=0, rtc=None)
    assert not after["synced"] and after["boots"] == 2
    assert after["device_time"] >= before["device_time"]
    assert after["device_time"] <= before["device_time"] + 3600
    assert after["date"] >= before["date"] and after["date"] <= before["date"] + 3600
    # the floor proves only what was known: at most the last reported date
    assert T0 <= after["floor"] <= before["date"]
    ev = after["events"]
    assert ev == sorted(ev) and ev[-1] >= before["date"], ev
    # Every pack keeps a date (the RTC is lost; the estimate stands in, SPEC 8.4): the ones
    # from before the cut theirs, the one after it at least every date reported before. As
    # relative times (device time resumes at its saved limit) the old ones came out up to an
    # hour too early, behind packs the host already had (a nightly soak found it).
    dates = after["packs"]
    assert dates == sorted(dates) and dates[0] >= T0, dates
    assert dates[-2] <= before["date"] <= after["date"] == dates[-1] - 60, (dates, after)


def test_packs_dated_by_the_estimate_are_dated_from_the_next_sync(tmp_path):
    """After a power cut that lost the RTC, packs are dated by the estimate: the board was off
    for two hours here, so it runs behind the true time (or up to an hour ahead, by the limit
    it resumed at). Sent after a sync in the same boot, they are dated back from the sync by
    device time: right to the second. A pack estimated in an earlier boot keeps its estimate
    (device time skipped at the reboot between). A nightly soak found an hourly air mean
    dated into the wrong hour (3 days of estimates between a brown-out and the next sync)."""
    flash = tmp_path / "flash"
    before = run(r"""
import json
sync(%d)
advance(5 * 3600 * 1000 + 1234)
rt.record([senml.record("v", 0)])
print(json.dumps(state()))
""" % T0, flash, ticks0=99)
    cut = before["date"]                # the power fails here; the board is off for 2 hours
    true0 = cut + 7200
    # boot 2: two packs on the estimate, then another power cut before any sync
    run(r"""
import json
advance(600 * 1000)
rt.record([senml.record("v", 1)])
print(json.dumps(state()))
""", flash, ticks0=0, rtc=None)
    # boot 3 (off for 10 minutes more): packs at +600 and +1200 s, the sync at +1800 s
    true3 = true0 + 600 + 600
    out = run(r"""
import json
advance(600 * 1000)
rt.record([senml.record("v", 2)])
advance(600 * 1000)
rt.record([senml.record("v", 3)])
est = rt.date()
advance(600 * 1000)
sync(%d)
advance(60 * 1000)
rt.record([senml.record("v", 4)])
print(json.dumps({"est": est, "packs": [[p[0].get(%d), p[0].get(%d)] for p in packs()]}))
""" % (true3 + 1800, C.SENML_BT, C.SENML_V), flash, ticks0=0, rtc=None)
    dates = dict((v, t) for t, v in out["packs"])
    assert dates[0] == cut                                  # synced when taken
    assert dates[2] == true3 + 600 and dates[3] == true3 + 1200, (out, true3)
    assert dates[4] == true3 + 1860
    # the estimate they were taken on was off (behind, by the time the board was off)
    assert out["est"] != true3 + 1200, out
    # boot 2's pack: on its estimate, between the packs around it
    assert cut < dates[1] < dates[2], out


def test_a_reboot_that_hands_nothing_out_does_not_move_time_on(tmp_path):
    flash = tmp_path / "flash"
    first = run("import json\nadvance(5000)\nprint(json.dumps(state()))", flash)
    for _ in range(3):   # three boots that read nothing: the limit they resume at stays
        run("import json\nprint(json.dumps(rt.dev.store.load('boot')))", flash)
    again = run("import json\nprint(json.dumps(state()))", flash)
    assert again["boots"] == 5
    assert first["device_time"] <= again["device_time"] <= first["saved"]["dt"] + 1


def test_time_sync_sets_the_floor_and_may_correct_the_clock_back(tmp_path):
    out = run(r"""
import json
rt.clock.sync(%d)
advance(10000)
a = rt.date()
rt.clock.sync(%d)              # the operator corrects a clock set a day ahead
b = rt.date()
rt.clock.raise_floor(%d)       # a verified voucher issued an hour later than the RTC says
c = rt.date()
rt.clock.raise_floor(%d)       # an older issue time proves nothing new
print(json.dumps([a, b, c, rt.clock.floor(), rt.dev.store.load("boot")["fl"]]))
""" % (T0 + 86400, T0, T0 + 3600, T0 - 86400), tmp_path / "flash")
    a, b, c, floor, saved = out
    assert a == T0 + 86400 + 10 and b == T0
    assert c == T0 + 3600 and floor == T0 + 3600 and saved == T0 + 3600


SCHED = r"""
import json, scheduler
_WRAP = 1 << 30
class Link:
    def any(self): return False
class FakeHal:
    TICKS_PERIOD = _WRAP
    def __init__(self, start):
        self.t = start
        self.link = Link()
    def ticks_ms(self): return self.t % _WRAP
    def ticks_add(self, a, b): return (a + b) % _WRAP
    def ticks_diff(self, a, b):
        d = (a - b) % _WRAP
        return d - _WRAP if d >= _WRAP // 2 else d
    def wait(self, ms):
        self.t += ms
        return False
hal = FakeHal(start=_WRAP - 3600000)
s = scheduler.Scheduler(hal)
runs = {"weekly": [], "daily": [], "once": []}
WEEK = 7 * 86400000
s.every("weekly", WEEK, lambda: runs["weekly"].append(hal.t), phase_ms=WEEK)
s.every("daily", 86400000, lambda: runs["daily"].append(hal.t))
s.after("once", 5 * 86400000, lambda: runs["once"].append(hal.t))
start = hal.t
s.run(until=lambda: hal.t - start >= 22 * 86400000)
print(json.dumps({"runs": runs, "start": start,
                  "uptime": s.uptime_ms() if hasattr(s, "uptime_ms") else None,
                  "elapsed": s.energy()["elapsed_ms"]}))
"""


def test_scheduler_periods_longer_than_half_the_ticks_period():
    """A weekly task (env_sensor push_s and water_meter report_s allow 7 days) ran at every
    pass: 7 days is more than half of the 2**30 ms ticks period, so its deadline read as
    past. Over 22 days and two wraps it runs exactly on days 7, 14, 21."""
    out = mp.run_json(SCHED, timeout=300)
    start = out["start"]
    day = 86400000
    weekly = [(t - start) for t in out["runs"]["weekly"]]
    assert weekly == [7 * day, 14 * day, 21 * day], weekly
    assert [(t - start) // day for t in out["runs"]["daily"]] == list(range(22))
    assert [(t - start) for t in out["runs"]["once"]] == [5 * day]
    assert out["uptime"] == out["elapsed"] == 22 * day


def test_time_sync_over_the_link_and_a_power_cut(tmp_path):
    """Through the protocol (the real runtime behind a pipe): TIME_SYNC sets the clock CAPS
    reports; a power cut loses it (CAPS K_TIME null); a time before 2020 is refused, and a
    later sync may set the clock back (the operator's word). (The pipe HAL's set_time failed
    before: it called the module `time` after that name was rebound to the HAL's time().)"""
    import time as _t

    from edgekit.protocol.session import Session
    from edgekit.provision import flow
    from edgekit.registry.db import Registry
    from edgekit.testing.fleet import HilFleet
    from edgekit.testing.pipe import PipeDevice

    fleet = HilFleet(tmp_path).fleet
    with PipeDevice(tmp_path / "flash") as dev:
        s = Session(dev, timeout=5)
        flow.provision(s, fleet, Registry(tmp_path / "r.sqlite"), "env_sensor", "x")
        s.signer = fleet.operator_signer
        s.next_seq = lambda: fleet.next_seq(C.ROLE_OPERATOR)
        now = int(_t.time())
        answer = s.request(C.TIME_SYNC, {C.K_TIME: now}, expect=C.TIME).payload
        assert abs(answer[C.K_TIME] - now) <= 1 and answer[C.K_UPTIME] >= 0
        assert abs(s.hello().payload[C.K_TIME] - now) <= 2
        dev.powercut()
        caps = s.hello(timeout=10)
        assert caps.payload[C.K_TIME] is None                   # the RTC is gone
        with pytest.raises(Exception) as info:
            s.request(C.TIME_SYNC, {C.K_TIME: 1_500_000_000}, expect=C.TIME)
        assert "after 2020" in str(info.value)
        back = s.request(C.TIME_SYNC, {C.K_TIME: now - 86400}, expect=C.TIME).payload
        assert abs(back[C.K_TIME] - (now - 86400)) <= 1


def test_the_link_reports_a_damaged_frame_after_days_of_uptime(tmp_path):
    """The link answers a frame that failed its CRC at most once a second. Before, that limit
    was a ticks_diff since the last complaint: 6.2 days later it turned negative, and every
    damaged frame went unreported for the next 6.2 days."""
    out = run(r"""
import json


class Dropped:
    code = %d
    size = 40


sent = []
rt.link._complain(Dropped())
rt.link._complain(Dropped())             # the same second: not again
sent.append(rt.link.sent)
for days in (3, 7, 13, 50):
    advance(days * 86400000 - jumped[0])
    rt.link._complain(Dropped())
    sent.append(rt.link.sent)
print(json.dumps(sent))
""" % C.E_BAD_CRC, tmp_path / "flash", ticks0=(1 << 30) - 5000)
    assert out == [1, 2, 3, 4, 5], out
