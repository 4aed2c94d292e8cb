"""Alarm engine: hold times, durations, event cap, state across reboots (in micropython)."""
from edgekit.testing import mp


def test_set_clear_hold_duration_and_cap():
    out = mp.run_json(r"""
import json, alarms
events = []
a = alarms.Alarms(lambda *e: events.append(list(e)), max_events=4, period=86400)
a.define("leak", set_after=3600, clear_after=600)
changes = []
# condition true from t=100; must hold an hour before the alarm sets
for t in range(0, 8000, 100):
    if a.update("leak", 100 <= t < 5000 and not 4000 <= t < 4300, t):
        changes.append(t)
# a 300 s dip (4000-4300) is shorter than clear_after: the alarm stays set
a.define("burst", set_after=0, clear_after=0)
for t in range(0, 100):
    a.update("burst", t % 2 == 0, 10000 + t)   # flapping sensor: 100 transitions
st = a.state()
b = alarms.Alarms(lambda *e: None)
b.define("leak", 3600, 600); b.define("burst")
b.restore(st)
print(json.dumps({"changes": changes, "events": events, "burst_active": a.is_active("burst"),
                  "restored_burst": b.is_active("burst"), "active": a.active(10100)}))
""")
    leak = [e for e in out["events"] if e[0] == "leak"]
    # set at t=3700 (held since 100), reported duration 3600; cleared at 5600 after 600 s of
    # false, duration 5600-100
    assert out["changes"] == [3700, 5600]
    assert leak == [["leak", True, 3600, 2, 0], ["leak", False, 5500, 2, 0]]
    burst = [e for e in out["events"] if e[0] == "burst"]
    assert len(burst) == 4  # capped per period despite ~100 transitions
    assert out["burst_active"] == out["restored_burst"]
