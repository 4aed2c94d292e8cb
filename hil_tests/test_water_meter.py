"""Smart water meter, hardware in the loop. On the emulator the world model is the water;
on a bench the rig's pulse generator and reed relay are (tests needing what a rig cannot do
skip with the reason)."""
import os
import random

import pytest

from edgekit import catalog as C
from edgekit.errors import ProtocolError
from edgekit.protocol import messages

pytestmark = pytest.mark.hil(kind="water_meter")

T0 = 1767225600          # 2026-01-01T00:00:00Z: the RTC is synced to this at the start
HOUR = 3600


def sync_clock(dev):
    dev.session.request(C.TIME_SYNC, {C.K_TIME: T0}, expect=C.TIME)


def events(dev):
    return [p for _, p in dev.fetch_events()]


def litres_in_world(world):
    return world.snapshot()["litres_fwd"]


@pytest.mark.hil(sim_s=1200)  # a wait it needs: skips early on a bench
def test_10000_litres_total_within_0_1_percent(board, world, clock, provisioned):
    dev = provisioned(config={"litres_per_pulse": 0.1})
    world.set(k_factor=10.0)             # the meter's reed: 10 pulses per litre
    rng = random.Random(7)
    planned = 0.0
    while planned < 10000:               # a household's mix: taps, showers, garden hose
        lpm, minutes = rng.choice([(4, 3), (9, 8), (12, 20), (18, 45), (0.6, 30)])
        world.set(flow_lpm=lpm)
        clock.advance(minutes * 60)
        world.set(flow_lpm=0)
        clock.advance(rng.choice([60, 600, 3600]))
        planned += lpm * minutes
    truth = litres_in_world(world)
    metered = dev.command("read")["volume_ml"] / 1000.0
    assert truth >= 10000
    assert abs(metered - truth) <= 0.001 * truth, (metered, truth)
    # the hourly telemetry tells the same story, signed by the meter
    packs = dev.drain_telemetry()
    volumes = [r[C.SENML_V] for p in packs for r in p if r.get(C.SENML_N) == "volume"]
    assert volumes == sorted(volumes) and abs(volumes[-1] - truth) <= 0.001 * truth + 1


@pytest.mark.hil(sim_s=1200)  # a wait it needs: skips early on a bench
def test_a_new_config_counts_from_the_next_sample(board, world, clock, provisioned):
    """The meter works out what a sample needs of its config once per config, not at every
    sample: a K-factor and privacy set at run time must still count from the next sample."""
    dev = provisioned()
    world.set(k_factor=1.0, flow_lpm=6)
    clock.advance(600)
    before = dev.command("read")["volume_ml"]
    truth0 = litres_in_world(world)
    dev.session.request(C.CONFIG_SET, {C.K_CONFIG: {"litres_per_pulse": 0.5,
                                                    "privacy": "fine"}}, expect=C.ACK)
    clock.advance(600)
    after = dev.command("read")["volume_ml"]
    pulses = litres_in_world(world) - truth0          # one pulse per litre in the world
    assert abs((after - before) - 500 * pulses) <= 500, (before, after, pulses)
    # per-sample flow records (privacy "fine"), at the new K-factor: 6 pulses a minute are
    # 3 L/min, 5e-5 m3/s
    flows = [r[C.SENML_V] for p in dev.drain_telemetry() for r in p
             if r.get(C.SENML_N) == "flow"]
    at_new_k = [v for v in flows if abs(v - 3 / 60000.0) < 1e-7]
    assert len(at_new_k) >= 9, flows
    assert all(v < 5.5e-5 for v in flows), flows        # none at the old K-factor (1e-4)


@pytest.mark.hil(sim_s=7200)  # a wait it needs: skips early on a bench
def test_telemetry_is_signed_by_the_device_key(board, world, clock, provisioned):
    dev = provisioned()
    world.set(flow_lpm=5)
    clock.advance(2 * HOUR)
    rows, _, msg = dev.fetch_telemetry()
    assert rows and msg.role == C.ROLE_DEVICE
    ring = messages.Keyring()
    ring.add(dev.public_key, C.ROLE_DEVICE)
    assert messages.open_body(msg.body, ring).payload == msg.payload
    forged = bytearray(msg.body)
    forged[-5] ^= 0x40
    with pytest.raises(ProtocolError):
        messages.open_body(bytes(forged), ring)


@pytest.mark.hil(sim_s=7200)  # a wait it needs: skips early on a bench
def test_dripping_tap_week_raises_and_clears_leak(board, world, clock, provisioned):
    dev = provisioned(config={"leak_window_h": 24})
    sync_clock(dev)
    synced_at = clock.now()
    clock.advance(2 * HOUR)              # quiet hours first
    drip_start = clock.now()
    world.set(leak_lpm=0.05)             # 3 L/h: every hour has consumption
    clock.advance(20 * HOUR)
    assert not [e for e in events(dev) if e[C.K_NAME] == "leak"], "leak raised too early"
    clock.advance(6 * HOUR)
    leak = [e for e in events(dev) if e[C.K_NAME] == "leak"]
    assert leak and leak[0][C.K_ACTIVE] is True
    raised_after_h = (leak[0][C.K_TIME] - T0 + synced_at - drip_start) / HOUR
    assert 23 <= raised_after_h <= 26, raised_after_h
    assert leak[0][C.K_DURATION] >= 24 * HOUR    # counted from when the flow last stopped
    world.set(leak_lpm=0.0)              # plumber fixed it
    clock.advance(4 * 24 * HOUR)         # rest of the week
    leak = [e for e in events(dev) if e[C.K_NAME] == "leak"]
    assert leak[-1][C.K_ACTIVE] is False
    assert 26 * HOUR <= leak[-1][C.K_DURATION] <= 30 * HOUR  # how long the leak lasted


@pytest.mark.hil(sim_s=180)  # a wait it needs: skips early on a bench
def test_burst_closes_the_valve_automatically(board, world, clock, provisioned):
    dev = provisioned(config={"burst_lpm": 60.0, "burst_min": 5, "auto_shutoff": True})
    world.set(burst_lpm=150)
    clock.advance(3 * 60)
    assert world.snapshot()["outputs"]["valve"] is True      # not yet: 5 minutes needed
    clock.advance(5 * 60)
    snap = world.snapshot()
    assert snap["outputs"]["valve"] is False and snap["flow_now_lpm"] == 0
    burst = [e for e in events(dev) if e[C.K_NAME] == "burst"]
    assert burst and burst[0][C.K_ACTIVE] is True
    assert dev.command("read")["valve"] is False


@pytest.mark.hil(sim_s=180)  # a wait it needs: skips early on a bench
def test_tamper_magnet(board, world, clock, provisioned):
    dev = provisioned()
    world.set(tamper=True)
    clock.advance(3 * 60)
    world.set(tamper=False)
    clock.advance(5 * 60)
    tamper = [(e[C.K_ACTIVE]) for e in events(dev) if e[C.K_NAME] == "tamper"]
    assert tamper == [True, False]


@pytest.mark.hil(bench="placing the magnet at an exact instant needs the emulator's world model")
def test_a_magnet_wakes_the_meter_between_samples(board, world, clock, provisioned):
    """The tamper input is a wake source: with a quarter-hour sample period the alarm still
    leaves within seconds of the magnet."""
    if not board.emulated:
        pytest.skip("placing the magnet at an exact instant needs the emulator's world model")
    dev = provisioned(config={"sample_s": 900})
    events(dev)
    clock.advance(400)                      # in the middle of a sleep
    woke = board.handle.info()["wakeups"]
    world.set(tamper=True)
    clock.advance(2)
    assert [e[C.K_ACTIVE] for e in events(dev) if e[C.K_NAME] == "tamper"] == [True]
    assert board.handle.info()["wakeups"] == woke + 1


def test_valve_commands_forged_or_replayed_change_nothing(board, world, clock, provisioned,
                                                          hil_fleet):
    dev = provisioned()
    s = dev.session
    close = s.build(C.COMMAND, {C.K_NAME: "valve", C.K_ARGS: {"open": False}})
    result = s.exchange(*close)
    assert result.payload[C.K_RESULT]["valve"] == "closed"
    assert world.snapshot()["outputs"]["valve"] is False
    dev.command("valve", open=True)
    assert world.snapshot()["outputs"]["valve"] is True
    # replay the old "close" (a captured frame): refused, valve stays open
    s.send_body(close[1])
    answer = s.receive(timeout=5)
    assert answer.type == C.ERROR and answer.payload[C.K_CODE] == C.E_REPLAYED
    # forged: the firmware key is trusted by the device, but may not sign commands
    s.signer = hil_fleet.signer("firmware")
    with pytest.raises(ProtocolError) as info:
        dev.command("valve", open=False)
    assert info.value.code == C.E_UNAUTHORIZED
    # forged: signed by a key the device does not know
    from edgekit.protocol import cose
    s.signer = cose.SeedSigner(os.urandom(32))
    with pytest.raises(ProtocolError) as info:
        dev.command("valve", open=False)
    assert info.value.code == C.E_UNKNOWN_KEY
    assert world.snapshot()["outputs"]["valve"] is True


CUTS = 1000 if os.environ.get("EDGEKIT_NIGHTLY") else 200


@pytest.mark.hil(sim_s=134)  # a wait it needs: skips early on a bench
def test_power_cuts_never_decrease_the_totalizer(board, world, clock, provisioned):
    checkpoint_s, sample_s, lpm = 300, 60, 10.0
    dev = provisioned(config={"checkpoint_s": checkpoint_s, "sample_s": sample_s})
    rng = random.Random(2026)
    world.set(flow_lpm=lpm)
    last_reading, last_truth, cuts_since = 0, 0.0, 0
    for cut in range(CUTS):
        clock.advance(rng.uniform(30, 900))        # run, then the power fails
        board.powercut()
        cuts_since += 1
        off = rng.uniform(0, 5)                    # the meter counts nothing while off
        clock.advance(off)
        if cut % 10 == 9 or cut == CUTS - 1:       # a read checkpoints, so read sometimes
            dev.reconnect()
            reading = dev.command("read")["volume_ml"]
            truth = litres_in_world(world) * 1000
            assert reading >= last_reading, f"totalizer went back at cut {cut}"
            # each cut loses at most one checkpoint interval (+ one sample, + time off)
            lost = (truth - last_truth) - (reading - last_reading)
            bound = cuts_since * (checkpoint_s + sample_s + 5) / 60.0 * lpm * 1000
            assert 0 <= lost + 1000 and lost <= bound, (cut, lost, bound)
            last_reading, last_truth, cuts_since = reading, truth, 0
    assert board.boots() >= CUTS


@pytest.mark.hil(sim_s=180)  # a wait it needs: skips early on a bench
def test_backflow_low_battery_and_no_flow(board, world, clock, provisioned):
    dev = provisioned(config={"backflow_l": 1.0, "low_battery_mv": 3300, "no_flow_days": 2})
    world.set(flow_lpm=-2.0)              # water running back into the main
    clock.advance(3 * 60)
    world.set(flow_lpm=0.0, battery_mv=3200)
    clock.advance(2 * 3600)               # the battery is checked at each hour's close
    names = {(e[C.K_NAME], e[C.K_ACTIVE]) for e in events(dev)}
    assert ("backflow", True) in names and ("low_battery", True) in names, names
    assert dev.command("read")["reverse_ml"] >= 5000
    clock.advance(2 * 86400)              # two days without a drop: empty pipe / vacant
    names = {(e[C.K_NAME], e[C.K_ACTIVE]) for e in events(dev)}
    assert ("no_flow", True) in names and ("backflow", False) in names, names
