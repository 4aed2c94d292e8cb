"""Smart-bin logic in micropython: state of charge from voltage and current, budget levels,
the daily energy account and reserve, the echo median filter, fill percent and trend."""
import pytest

from edgekit.emu.worlds.smart_bin import ocv_mv
from edgekit.testing import mp


@pytest.fixture(scope="module")
def out():
    # terminal voltages the world model gives for known states of charge and currents
    cases = [(soc, ma, round(ocv_mv(soc) + ma * 0.05)) for soc in (0, 5, 37.5, 50, 92, 100)
             for ma in (0, 2000, -3000)]
    return mp.run_json(f"""
import json, battery, fill
from array import array
r = {{}}
r["soc"] = [[s, ma, battery.soc_pct(mv, ma)] for s, ma, mv in {cases!r}]
r["soc_raw_v"] = battery.soc_pct(3720 + 150, 0)   # 50% charging at 3 A, current ignored
r["levels"] = [battery.level(x, 40, 20) for x in (80, 40, 39.9, 20, 19.9, 0)]
L = battery.Ledger()
for _ in range(24):
    L.sample(-25, 3600)                   # 25 mA for a day
L.load(50)                                # a motor run
L.sample(100, 1800)                       # charging half an hour
r["day1"] = list(L.close_day())
for _ in range(12):
    L.sample(-50, 3600)
r["day2"] = list(L.close_day())
r["per_day"] = L.per_day()
r["reserve"] = L.reserve_days(60, 10, 2000)
r["reserve_floor"] = L.reserve_days(5, 10, 2000)
buf = array("H", [0] * 9)
seq = iter([400, 20, 4500, 410, 405, 395, 4500])
r["median"] = list(fill.median_echo(lambda: next(seq), 7, 1000, buf))
seq = iter([400, 20, 4500, 4500, 30, 9999, 401])
r["no_majority"] = list(fill.median_echo(lambda: next(seq), 7, 1000, buf))
def failing():
    raise OSError("no frame")
r["errors"] = list(fill.median_echo(failing, 5, 1000, buf))
r["pct"] = [fill.percent(d, 1000, 150) for d in (1000, 1100, 575, 150, 40)]
try:
    fill.percent(100, 100, 150)
    r["bad_geometry"] = None
except ValueError as exc:
    r["bad_geometry"] = str(exc)
t = fill.Trend()
r["rise"] = [t.update(10, 0, False), t.update(20, 3600, False), t.update(25, 7200, False),
             t.update(5, 10800, True), t.update(8, 14400, False)]
r["rate"] = t.rate
r["to_full"] = t.hours_to(85, 8)
print(json.dumps(r))
""")


def test_soc_from_voltage_and_current(out):
    for soc, ma, got in out["soc"]:
        assert abs(got - soc) < 0.2, (soc, ma, got)
    # without the I*R correction a charging cell reads ~20 points high: the current matters
    assert out["soc_raw_v"] > 50 + 15


def test_budget_levels(out):
    assert out["levels"] == [0, 0, 1, 1, 2, 2]


def test_daily_account_and_reserve(out):
    charged, used = out["day1"]
    assert charged == pytest.approx(50) and used == pytest.approx(25 * 24 + 50)
    assert out["day2"][1] == pytest.approx(600)
    per_day = 650 + 0.25 * (600 - 650)          # EWMA over days
    assert out["per_day"] == pytest.approx(per_day)
    assert out["reserve"] == pytest.approx(0.5 * 2000 / per_day)
    assert out["reserve_floor"] == 0.0


def test_echo_median_rejects_outliers_and_needs_a_majority(out):
    assert out["median"] == [405, 4]            # 400, 410, 405, 395 good; 20, 4500 rejected
    assert out["no_majority"][0] is None        # 3 good echoes of 7
    assert out["errors"] == [None, 0]


def test_fill_percent_and_trend(out):
    assert out["pct"] == [0.0, 0.0, 50.0, 100.0, 100.0]
    assert "full_mm" in out["bad_geometry"]
    assert out["rise"] == [0.0, 10, 5, 0.0, 3]
    rate = 10.0 + 0.3 * (5 - 10.0)              # first interval sets it, then smoothed
    rate = rate + 0.3 * (3 - rate)              # the disturbed interval is skipped
    assert out["rate"] == pytest.approx(rate, rel=1e-5)
    assert out["to_full"] == pytest.approx((85 - 8) / rate, rel=1e-5)
