"""The water-meter world: flow integrated into pulses, direction, valve feedback, tamper,
battery, CSV drive and sensor faults, read by firmware through the HAL (paused time)."""
import json

import pytest

from conftest import wait_file
from edgekit.emu import EmuError

METER_APP = r"""
import hal, json
def rd(fn, *a):
    try:
        return fn(*a)
    except hal.HalError as e:
        return "ERR " + str(e)
closed = False
while True:
    hal.sleep_ms(60000)
    flow = hal.pulse_count("flow")
    if flow >= 100 and not closed:       # the app's burst rule: shut the valve
        hal.output("valve", 0)
        closed = True
    rec = [hal.ticks_ms() // 1000, flow, hal.pulse_count("flow_rev"), hal.input("tamper"),
           rd(hal.adc_read, "battery"), hal.output_state("valve"), rd(hal.sensor_read, "env")]
    with open("/obs.txt", "a") as f:
        f.write(json.dumps(rec) + "\n")
"""


def _obs(flash, count):
    text = wait_file(flash / "obs.txt", lambda t: t.count("\n") >= count)
    return [json.loads(line) for line in text.splitlines()]


@pytest.fixture
def meter(emu, tmp_path):
    (tmp_path / "main.py").write_text(METER_APP)
    b = emu.start("esp32", kind="water_meter", time="paused", flash=tmp_path)
    b.wait_for(lambda i: i["state"] == "asleep")
    yield b, tmp_path
    b.stop()


def test_flow_direction_valve_tamper_battery_and_faults(meter):
    b, flash = meter
    b.set(flow_lpm=12.5)
    b.advance(240)
    obs = _obs(flash, 4)
    assert [o[1] for o in obs] == [12, 25, 37, 50]          # floor(12.5 L/min * minutes)
    assert [o[0] for o in obs] == [60, 120, 180, 240]
    assert obs[0][3:6] == [False, 3600, True] and obs[0][6].startswith("ERR")
    assert "not fitted" in obs[0][6]

    b.set(flow_lpm=-2)                                       # reverse flow: the other reed
    b.advance(120)
    obs = _obs(flash, 6)
    assert [(o[1], o[2]) for o in obs[4:]] == [(50, 2), (50, 4)]

    b.set(flow_lpm=60, tamper=True)                          # burst: the app shuts the valve
    b.advance(180)
    obs = _obs(flash, 9)
    assert [o[1] for o in obs[6:]] == [110, 110, 110]        # a closed valve stops the flow
    assert [o[5] for o in obs[6:]] == [False] * 3 and obs[6][3] is True
    world = b.world()
    assert world["outputs"]["valve"] is False and world["flow_now_lpm"] == 0

    b.fault("battery", "range", 9999)
    b.advance(60)
    b.fault("battery", "nack")
    b.advance(60)
    b.fault("battery", "stuck")     # freezes the next reading...
    b.advance(60)
    b.set(battery_mv=3300)          # ...which then ignores the change
    b.advance(60)
    b.fault("battery", "none")
    b.advance(60)
    obs = _obs(flash, 14)
    assert obs[9][4] == 9999
    assert obs[10][4].startswith("ERR") and "NACK" in obs[10][4]
    assert obs[11][4] == 3600 and obs[12][4] == 3600
    assert obs[13][4] == 3300


def test_csv_drive_and_pulses_lost_while_off(meter, tmp_path):
    b, flash = meter
    csv = tmp_path / "day.csv"
    csv.write_text("t,flow_lpm,leak_lpm\n0,0,0\n30,10,0\n90,0,0.5\n")
    assert b.drive(str(csv)) == {"rows": 3}
    b.advance(180)
    obs = _obs(flash, 3)
    # 10 L/min from t=30 to 90: 10 L; then a 0.5 L/min leak for 90 s: 0.75 L
    assert [o[1] for o in obs] == [5, 10, 10]
    world = b.world()
    assert world["litres_fwd"] == pytest.approx(10.75)


def test_world_rejects_bad_names_and_values(meter):
    b, _ = meter
    with pytest.raises(EmuError, match="no quantity 'flow'.*flow_lpm"):
        b.set(flow=3)
    with pytest.raises(EmuError, match="expected a number"):
        b.set(flow_lpm="fast")
    with pytest.raises(EmuError, match="stuck, range, nack"):
        b.fault("battery", "melted")
    with pytest.raises(EmuError, match="first column is t"):
        b.drive("flow_lpm,t\n1,2\n")
