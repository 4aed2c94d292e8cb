"""Environmental sensor node, hardware in the loop. On the emulator the world model is the
air (true values; the sensors read them with a bias, a warm-up and hygroscopic growth);
on a bench the rig's reference instruments are (tests needing what a rig cannot stage skip
with the reason)."""
import math

import pytest

from edgekit import catalog as C
from edgekit.emu.worlds.env_sensor import growth

pytestmark = pytest.mark.hil(kind="env_sensor")

T0 = 1767225600          # 2026-01-01T00:00:00Z
HOUR = 3600
STEP = 600               # the world changes every 10 minutes
KAPPA = 0.4
# Lean but real: fewer wakes keep a simulated day quick on the emulator.
LEAN = {"sample_s": 300, "pm_period_s": 600, "pm_readings": 3, "pm_gap_ms": 2000,
        "report_s": HOUR, "push_s": 7 * 86400, "pm_kappa": KAPPA,
        "pm25_alarm": "off", "pm10_alarm": "off"}


def air(i):
    """The air in 10-minute block i of the day: a city with two rush hours and a humid night
    (PM2.5 60..160 ug/m3: a bad-air day, where the whole-ug/m3 frames cost under 1%)."""
    h = (i * STEP / HOUR) % 24
    rush = math.exp(-((h - 8) / 1.5) ** 2) + 0.8 * math.exp(-((h - 18) / 2) ** 2)
    pm25 = 60 + 100 * rush
    temp = 17 + 6 * math.sin((h - 9) / 24 * 2 * math.pi)
    return {"temp_c": round(temp, 2), "rh": round(88 - 2.2 * (temp - 11), 2),
            "pm25": round(pm25, 2), "pm10": round(1.6 * pm25, 2), "pm1": round(0.75 * pm25, 2),
            "noise_dba": round(48 + 22 * rush + 4 * math.sin(i), 1)}


def hourly_truth(blocks, quantity):
    """Time-weighted mean of each clock hour (dB quantities: energy mean)."""
    per = HOUR // STEP
    out = []
    for h in range(len(blocks) // per):
        vals = [b[quantity] for b in blocks[h * per:(h + 1) * per]]
        if quantity == "noise_dba":
            out.append(10 * math.log10(sum(10 ** (v / 10) for v in vals) / len(vals)))
        else:
            out.append(sum(vals) / len(vals))
    return out


def rolling(hourly, end, hours):
    """Mean of the hours end-hours+1..end that exist, valid with 75% of them."""
    got = [hourly[h] for h in range(end - hours + 1, end + 1) if 0 <= h < len(hourly)
           and hourly[h] is not None]
    return sum(got) / len(got) if len(got) >= 0.75 * hours else None


def records(packs):
    """{name: {unix hour index of the record's time: value}} from SenML packs."""
    out = {}
    for pack in packs:
        bt = pack[0].get(C.SENML_BT, 0)
        for r in pack:
            t = bt + r.get(C.SENML_T, 0)
            out.setdefault(r[C.SENML_N], {})[int(t // HOUR)] = r.get(C.SENML_V)
    return out


@pytest.mark.hil(sim_s=3600)  # a wait it needs: skips early on a bench
def test_a_day_reproduces_the_world_averages(board, world, clock, provisioned):
    dev = provisioned(config=dict(LEAN))
    # The SHT31 reads warm and dry; calibration against a reference set remotely fixes it.
    world.set(temp_bias=0.8, rh_bias=-3.0, pm_kappa=KAPPA, pm_warmup_s=30,
              pm_warmup_factor=2.5, temp_c=17.0, rh=80.0)
    clock.advance(HOUR)
    offsets = dev.command("calibrate", temp_c=17.0, rh=80.0)
    assert offsets == {"temp_offset": -0.8, "rh_offset": 3.0}
    # Start the day on a clock hour: sync the RTC to T0 - lead, drive from T0.
    lead = 600
    dev.session.request(C.TIME_SYNC, {C.K_TIME: T0 - lead}, expect=C.TIME)
    hours = 26
    blocks = [air(i) for i in range(hours * HOUR // STEP)]
    names = list(blocks[0])
    csv = "t," + ",".join(names) + "\n" + "".join(
        f"{lead + i * STEP}," + ",".join(str(b[n]) for n in names) + "\n"
        for i, b in enumerate(blocks))
    board.handle.drive(csv)
    for _ in range(hours + 1):
        clock.advance(HOUR)
    got = records(dev.drain_telemetry())
    first = T0 // HOUR
    checked = 0
    for q, wq in (("pm25", "pm25"), ("pm10", "pm10"), ("pm1", "pm1"), ("temp", "temp_c"),
                  ("rh", "rh"), ("noise", "noise_dba")):
        truth = hourly_truth(blocks, wq)
        series = got.get(q + "_1h", {})
        for h in range(hours):
            value = series.get(first + h + 1)   # the record of hour h is stamped at its end
            assert value is not None, f"{q}: no hourly mean for hour {h}"
            assert abs(value - truth[h]) <= 0.01 * abs(truth[h]), (q, h, value, truth[h])
            checked += 1
        if q not in ("pm25", "pm10"):
            continue
        for span in (8, 24):
            series = got.get(f"{q}_{span}h", {})
            for h in range(span - 1, hours):
                want = rolling(truth, h, span)
                value = series.get(first + h + 1)
                assert value is not None and abs(value - want) <= 0.01 * want, \
                    (q, span, h, value, want)
                checked += 1
    assert checked == 6 * hours + 2 * ((hours - 7) + (hours - 23))
    # Every kept PM reading was humidity-corrected and taken after the warm-up: without
    # either, the means above would be off by tens of percent.
    assert growth(80, KAPPA) > 1.3
    status = dev.command("status")
    assert status["pm_cycles"] >= hours * HOUR // 600 - 1
    assert world.snapshot()["pm_powered"] is False      # duty-cycled: off between cycles


@pytest.mark.hil(sim_s=3600)  # a wait it needs: skips early on a bench
def test_thresholds_with_hysteresis_and_sensor_faults(board, world, clock, provisioned):
    dev = provisioned(config=dict(LEAN, pm25_alarm="above", pm25_hi=50.0, pm25_hyst=5.0,
                                  temp_alarm="outside", temp_lo=0.0, temp_hi=30.0,
                                  temp_hyst=1.0, pm_kappa=0.0))
    world.set(pm25=30.0, temp_c=20.0)
    clock.advance(HOUR)

    def events():
        return [(p[C.K_NAME], p[C.K_ACTIVE]) for _, p in dev.fetch_events()]
    world.set(pm25=70.0)
    clock.advance(1200)
    assert ("pm25", True) in events()
    world.set(pm25=47.0)            # inside the dead band: stays set
    clock.advance(1800)
    assert ("pm25", False) not in events()
    world.set(pm25=40.0)
    clock.advance(1200)
    assert ("pm25", False) in events()
    world.set(temp_c=-2.0)          # outside 0..30
    clock.advance(900)
    assert ("temp", True) in events()
    world.set(temp_c=0.5)           # back inside, but not past lo + hyst
    clock.advance(900)
    assert ("temp", False) not in events()
    world.set(temp_c=5.0)
    clock.advance(900)
    assert ("temp", False) in events()
    # A sensor that stops answering raises a fault after three failed reads, not at once.
    world.fault("env", "nack")
    clock.advance(300)              # at most two reads (a sample, a PM cycle's humidity)
    assert ("env_fault", True) not in events()
    clock.advance(600)
    assert ("env_fault", True) in events()
    assert "env" in dev.command("status")["fails"] and dev.command("read")["alarms"]
    world.fault("env", "none")
    clock.advance(600)
    assert ("env_fault", False) in events()


@pytest.mark.hil(sim_s=18000)  # a wait it needs: skips early on a bench
def test_history_is_kept_until_acknowledged_and_resent(board, world, clock, provisioned):
    dev = provisioned(config=dict(LEAN, push_s=HOUR))
    clock.advance(5 * HOUR)
    rows, more, _ = dev.fetch_telemetry()
    again, _, _ = dev.fetch_telemetry()
    assert rows and [s for s, _ in rows] == [s for s, _ in again]     # retransmission
    dev.ack_telemetry(rows[-1][0])
    later, _, _ = dev.fetch_telemetry()
    assert not later or later[0][0] > rows[-1][0]
    # the node pushed unsolicited telemetry on its schedule meanwhile
    pushed = [m for m in dev.session.events if m.type == C.TELEMETRY]
    assert pushed


def test_config_set_refuses_an_impossible_threshold_rule(board, provisioned):
    """Rules across keys are checked before the config is saved (App.check_config)."""
    from edgekit import catalog as C
    from edgekit.errors import ProtocolError
    dev = provisioned("env_sensor")
    before = dev.session.request(C.CONFIG_GET, {}, expect=C.CONFIG).payload[C.K_CONFIG]
    with pytest.raises(ProtocolError) as info:
        dev.session.request(C.CONFIG_SET, {C.K_CONFIG: {"pm25_alarm": "between",
                                                        "pm25_lo": 80.0, "pm25_hi": 20.0}})
    assert info.value.code == C.E_BAD_REQUEST and "pm25" in str(info.value)
    after = dev.session.request(C.CONFIG_GET, {}, expect=C.CONFIG).payload[C.K_CONFIG]
    assert after == before                       # nothing was saved
    ok = dev.session.request(C.CONFIG_SET, {C.K_CONFIG: {"pm25_alarm": "between",
                                                         "pm25_lo": 20.0, "pm25_hi": 80.0}},
                             expect=C.ACK)
    assert ok.payload[C.K_CONFIG]["pm25_lo"] == 20.0
