"""What makes simulated years cheap, as a count rather than a time (the machine's speed does
not enter): a provisioned meter in paused time waits for one answer from the supervisor per
wake, and with a lease (emu.hal_ops.lease) for one answer per lease of many wakes. Its flash
operations are counted without a round trip unless a brown-out is armed, when each asks
again, so a cut still tears the write it picked."""
from pathlib import Path

import pytest

from edgekit.hil.devices import HilFleet, provision
from edgekit.hil.targets import BoardSpec, EmulatedTarget


@pytest.mark.parametrize("lease", [False, True], ids=["no-lease", "lease"])
def test_a_provisioned_meter_waits_one_round_trip_per_wake(emu, tmp_path, monkeypatch, lease):
    """Without leases one round trip a wake (before: 1.33); with them, at 2 L/min (a pulse
    every 30 s, 32 steps a lease) one per 16 wakes or so."""
    monkeypatch.setenv("EDGEKIT_EMU_LEASE", "1" if lease else "0")
    t = EmulatedTarget(emu, BoardSpec("emu:esp32s3_psram:water_meter"), time_mode="paused")
    try:
        provision(t, HilFleet(Path(tmp_path)), "water_meter").close()
        b = t.handle
        b.set(flow_lpm=2)
        b.advance(3600)
        i0 = b.info()
        b.advance(86400)
        i1 = b.info()
        leased = i1["lease_wakes"] - i0["lease_wakes"]
        wakes = i1["parks"] - i0["parks"] + leased
        trips = (i1["side_replies"] - i0["side_replies"]) / wakes
        assert wakes >= 1440 and trips <= (0.1 if lease else 1.01), (wakes, trips)
        assert (leased > 1300) == lease, leased
        # Messages, answered or not: the feed and the flash operations' notes ride with the
        # wait's request (paused time stands still between them), the notes as one line in
        # the same write, on the wakes that checkpoint (1 in 12). Before: 2.33 a wake. On a
        # lease the notes of all its wakes ride with the request that ends it, with the lease
        # line: at most three lines a round trip.
        msgs = (i1["side_msgs"] - i0["side_msgs"]) / wakes
        assert i1["flash_ops"] - i0["flash_ops"] >= 96 * 2      # the checkpoints were counted
        assert msgs <= (3 if lease else 1) * trips + 0.1, (msgs, trips)
        assert i1["boots"] == i0["boots"], i1["resets"]        # the carried feeds count
        # armed, each flash operation asks: the next one is torn, the board browns out
        boots = i1["boots"]
        b.brownout(1)
        b.advance(3600)
        after = b.info()
        assert after["resets"].get("brownout", 0) == 1 and after["boots"] == boots + 1
        assert (after["side_replies"] - i1["side_replies"]) > (after["parks"] - i1["parks"])
    finally:
        t.close()


@pytest.mark.parametrize("lease", [False, True], ids=["no-lease", "lease"])
def test_an_idle_kiosk_and_an_air_node_wait_about_one_round_trip_per_wake(emu, tmp_path,
                                                                          monkeypatch, lease):
    """The kiosk polls its card reader and QR scanner at every idle wake, the air node reads
    its sensors: reads that change nothing (no card, an empty scanner queue, a temperature
    at an instant) come with the wake. Before: 2.0 and 2.6 round trips a wake. With leases
    the idle kiosk runs its wakes on them (its world is steady); the air node's world says
    nothing of how long its air stays (no lease: as before)."""
    monkeypatch.setenv("EDGEKIT_EMU_LEASE", "1" if lease else "0")
    for kind, most in (("water_atm", 0.05 if lease else 1.01), ("env_sensor", 1.35)):
        t = EmulatedTarget(emu, BoardSpec(f"emu:esp32:{kind}"), time_mode="paused")
        try:
            provision(t, HilFleet(Path(tmp_path) / kind), kind).close()
            b = t.handle
            b.advance(3600)
            i0 = b.info()
            b.advance(6 * 3600)
            i1 = b.info()
            wakes = i1["parks"] - i0["parks"] + i1["lease_wakes"] - i0["lease_wakes"]
            trips = (i1["side_replies"] - i0["side_replies"]) / wakes
            assert wakes >= 500 and trips <= most, (kind, wakes, trips)
        finally:
            t.close()


# hal.wait() with host bytes already waiting ends at once, at the same instant: the VM's
# own poll of its link sees them, and so would the supervisor (bytes the VM has not read).
PENDING_INPUT_APP = """
import hal
hal.wait(600000)                # woken by the host's two bytes
hal.link.readinto(bytearray(1)) # take one: the other stays waiting
t0 = hal.ticks_ms()
r = hal.wait(600000)
t1 = hal.ticks_ms()
hal.link.write(b"R %s %d\\n" % (r, t1 - t0))
while True:
    hal.wait(600000)
"""


def test_a_wait_with_input_already_waiting_ends_at_once_in_paused_time(emu, tmp_path):
    (tmp_path / "main.py").write_text(PENDING_INPUT_APP)
    b = emu.start("esp32", time="paused", flash=tmp_path)
    try:
        b.wait_for(lambda i: i["state"] == "asleep")
        sim0 = b.now()
        with b.serial(timeout=10) as port:
            port.write(b"ab")
            line = port.readline()
        assert line == b"R True 0\n", line
        assert b.now() == sim0          # no simulated time passed: nothing was advanced
    finally:
        b.stop()
