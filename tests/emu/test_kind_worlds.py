"""World models of the environmental node, the smart bin and the water ATM, on their own
(no VM): what their sensors read follows the physics their docstrings promise."""
import math

import pytest

from edgekit.board_defs import load_board
from edgekit.emu.world import HardwareFault
from edgekit.emu.worlds import make_world
from edgekit.emu.worlds.smart_bin import ocv_mv
from edgekit.emu.worlds.water_atm import tds_mv

H = 3600000.0


@pytest.fixture
def board():
    return load_board("esp32")


def test_env_pm_sensor_powers_warms_up_and_over_reads_humid_air(board):
    w = make_world("env_sensor", board)
    w.set(0, pm25=40.0, rh=80.0, pm_kappa=0.4, temp_bias=0.7)
    with pytest.raises(HardwareFault):
        w.read("sensor", "pm")                      # supply off: no frames
    w.output("relay", True)
    w.advance_to(10000)
    growth = 1 + (0.4 / 1.65) / (1 / 0.8 - 1)
    assert w.read("sensor", "pm")["pm25"] == round(40 * growth * 2.5)   # warming up
    w.advance_to(31000)
    assert w.read("sensor", "pm")["pm25"] == round(40 * growth)
    w.output("relay", False)
    assert w.snapshot()["pm_on_s"] == 31.0
    assert w.read("sensor", "env")["temp_c"] == 15.7


def test_bin_fills_compacts_charges_and_drains(board):
    w = make_world("smart_bin", board)
    w.set(0, fill_lph=24.0, sun_w=0.0, base_ma=20.0, battery_soc=50.0, battery_mah=1000.0)
    w.advance_to(5 * H)                              # 120 L of 240, at night
    assert w.snapshot()["fill_pct"] == pytest.approx(50.0)
    assert w.read("sensor", "distance") == 500
    assert w.values["battery_soc"] == pytest.approx(50 - 100 * 20 * 5 / 1000.0)
    w.set(5 * H, fill_lph=0.0)
    w.output("motor", True)
    assert w.read("sensor", "motor")["ma"] == 3000 * (0.5 + 0.5 * 0.5)   # more as it packs
    w.advance_to(5 * H + 20000)                      # one stroke: loose -> packed / 3
    w.output("motor", False)
    assert w.snapshot()["fill_pct"] < 50.0 / 3 + 10
    p = w.read("sensor", "power")
    assert p["ma"] == -20 and p["mv"] == round(ocv_mv(w.values["battery_soc"]) - 1)
    w.set(w.t, sun_w=10.0, tod0_h=12.0 - w.t / H)    # noon now: the panel charges
    assert w.read("sensor", "power")["ma"] > 1000
    w.set(w.t, collect=True)
    assert w.snapshot()["fill_pct"] == 0 and w.snapshot()["collections"] == 1
    w.set(w.t, jam=True)
    w.output("motor", True)
    assert w.read("sensor", "motor")["ma"] == 9000   # stalled


def test_atm_valve_lag_tank_probes_card_and_scanner(board):
    w = make_world("water_atm", board)
    w.set(0, card=0x0A000001, scan="EKV1:abc")
    assert w.input("card_present") and w.card_uid() == b"\x0a\x00\x00\x01"
    assert w.read("sensor", "scanner") == "EKV1:abc" and w.read("sensor", "scanner") is None
    w.output("valve", False)                         # closing a closed valve: no water
    w.advance_to(60000)
    assert w.snapshot()["litres"] == 0
    w.output("valve", True)
    w.advance_to(120000)                             # a minute at 12 L/min
    w.output("valve", False)
    w.advance_to(180000)                             # + 0.3 s while the solenoid closes
    assert w.snapshot()["litres"] == pytest.approx(12.06)
    assert w.pulse_total("flow") == 1206
    water = w.read("sensor", "water")
    assert water["a2"] == round(500 + 3500 * (1000 - 12.06) / 1000)
    v = tds_mv(150) / 1000
    assert math.isclose((133.42 * v ** 3 - 255.86 * v ** 2 + 857.39 * v) * 0.5, 150,
                        rel_tol=1e-6)
    w.set(w.t, blocked=True)
    w.output("valve", True)
    w.advance_to(w.t + 60000)
    assert w.snapshot()["litres"] == pytest.approx(12.06)
