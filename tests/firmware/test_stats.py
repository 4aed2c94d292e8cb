"""Sensor statistics, threshold rules and the PM humidity correction, run in micropython
against values computed here in CPython."""
import math
import random

import pytest

from edgekit.testing import mp


def _device(code):
    return mp.run_json("import json, stats, thresholds, aq\n" + code)


@pytest.fixture(scope="module")
def results():
    rng = random.Random(11)
    levels = [round(rng.uniform(35, 95), 1) for _ in range(50)]
    values = [round(rng.uniform(-5, 40), 3) for _ in range(37)]
    echoes = [rng.randint(100, 4000) for _ in range(7)]
    hours = [None if i in (3, 4, 20) else round(rng.uniform(5, 80), 2) for i in range(30)]
    code = f"""
out = {{}}
a = stats.Acc()
for v in {values!r}:
    a.add(v)
out["acc"] = [a.n, a.mean(), a.lo, a.hi]
e = stats.EnergyAcc()
for v in {levels!r}:
    e.add(v)
out["laeq"] = [e.mean(), e.lo, e.hi]
buf = {echoes!r} + [0, 0, 0]
out["median7"] = stats.median(buf, 7)
out["median4"] = stats.median([9, 1, 7, 3, 99, 99], 4)
h = stats.Hourly()
for v in {hours!r}:
    h.push(v)
out["roll"] = [h.mean(1), h.mean(8), h.mean(24)]
g = stats.Hourly()
for v in [10.0, None, None, 12.0, 14.0, 16.0, 18.0, 20.0]:
    g.push(v)
out["gappy8"] = g.mean(8)
g.push(None)
out["gappy8_after_one_more_gap"] = g.mean(8)
k = stats.Hourly()
k.restore(h.state())
out["restored"] = k.mean(24)
k.skip(30)
out["after_skip"] = k.mean(1)
out["cov"] = [stats.coverage_ok(45, 60), stats.coverage_ok(44, 60), stats.coverage_ok(0, 0)]
# thresholds: a reading walking up then down through the band
walk = [40, 49, 50.5, 51, 48, 46, 44.9, 44, 52]
res = {{}}
for mode, lo, hi in (("above", 0, 50), ("below", 45, 0), ("between", 45, 50),
                     ("outside", 45, 50), ("off", 0, 50)):
    active = False
    seq = []
    for v in walk:
        active = thresholds.judge(mode, v, lo, hi, 2.0 if mode != "outside" else 1.0, active)
        seq.append(active)
    res[mode] = seq
out["thr"] = res
out["thr_none"] = thresholds.judge("above", None, 0, 50, 1, True)
out["check"] = [thresholds.check("outside", 45, 50, 3), thresholds.check("between", 5, 1, 0),
                thresholds.check("above", 0, 50, 1)]
try:
    thresholds.judge("sideways", 1, 0, 0, 0, False)
    out["bad_mode"] = None
except ValueError as exc:
    out["bad_mode"] = str(exc)
out["growth"] = [aq.growth(50, 0.4), aq.growth(90, 0.62), aq.growth(99, 0.4), aq.growth(40, 0),
                 aq.growth(None, 0.4)]
out["correct"] = [list(aq.correct(30.0, 80.0, 0.4)), list(aq.correct(30.0, 97.0, 0.4))]
print(json.dumps(out))
"""
    return _device(code), dict(levels=levels, values=values, echoes=echoes, hours=hours)


def test_running_mean_min_max(results):
    out, src = results
    v = src["values"]
    n, mean, lo, hi = out["acc"]
    # array('f') storage: single precision, as on the boards
    assert n == len(v) and math.isclose(lo, min(v), rel_tol=1e-6)
    assert math.isclose(hi, max(v), rel_tol=1e-6)
    assert math.isclose(mean, sum(v) / len(v), rel_tol=1e-5)


def test_laeq_is_an_energy_mean(results):
    out, src = results
    lv = src["levels"]
    expected = 10 * math.log10(sum(10 ** (x / 10) for x in lv) / len(lv))
    laeq, lo, hi = out["laeq"]
    assert math.isclose(laeq, expected, abs_tol=1e-4)
    assert laeq > sum(lv) / len(lv) + 1          # louder than the arithmetic mean of dB
    assert math.isclose(lo, min(lv), rel_tol=1e-6) and math.isclose(hi, max(lv), rel_tol=1e-6)


def test_median_filter(results):
    out, src = results
    assert out["median7"] == sorted(src["echoes"])[3]
    assert out["median4"] == 5.0                 # (3 + 7) / 2 over the first four only


def _rolling(hours, n):
    last = hours[-n:]
    got = [x for x in last if x is not None]
    return sum(got) / len(got) if len(got) >= 0.75 * n else None


def test_rolling_means_follow_the_75_percent_rule(results):
    out, src = results
    hours = src["hours"]
    for got, n in zip(out["roll"], (1, 8, 24)):
        want = _rolling(hours, n)
        assert (got is None) == (want is None)
        if want is not None:
            assert math.isclose(got, want, rel_tol=1e-6)
    assert math.isclose(out["gappy8"], sum([10, 12, 14, 16, 18, 20]) / 6)   # 6 of 8: valid
    assert out["gappy8_after_one_more_gap"] is None                           # 5 of 8: not
    assert math.isclose(out["restored"], _rolling(hours, 24), rel_tol=1e-6)
    assert out["after_skip"] is None
    assert out["cov"] == [True, False, False]



def test_threshold_modes_with_hysteresis(results):
    out, _ = results
    t = out["thr"]
    # walk = 40, 49, 50.5, 51, 48, 46, 44.9, 44, 52
    assert t["above"] == [False, False, True, True, True, False, False, False, True]
    assert t["below"] == [True, False, False, False, False, False, True, True, False]
    assert t["between"] == [False, True, True, True, True, True, True, True, True]
    assert t["outside"] == [True, False, True, True, False, False, True, True, True]
    assert t["off"] == [False] * 9
    assert out["thr_none"] is True               # a missing reading keeps the state
    assert out["check"][0] and "empty" in out["check"][0]
    assert out["check"][1] and "lo" in out["check"][1]
    assert out["check"][2] is None
    assert "sideways" in out["bad_mode"] and "above" in out["bad_mode"]


def test_pm_humidity_correction(results):
    out, _ = results

    def growth(rh, k):
        aw = min(rh, 95) / 100
        return 1 + (k / 1.65) / (1 / aw - 1)
    g = out["growth"]
    assert math.isclose(g[0], growth(50, 0.4)) and math.isclose(g[1], growth(90, 0.62))
    assert math.isclose(g[2], growth(95, 0.4))   # capped at 95 % RH
    assert g[3] == 1.0 and g[4] == 1.0
    dry, q = out["correct"][0]
    assert math.isclose(dry, 30 / growth(80, 0.4)) and q == 0
    assert out["correct"][1][1] == 1             # fog: suspect
