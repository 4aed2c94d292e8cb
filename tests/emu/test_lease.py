"""Leases (emu.hal_ops.lease, boards/hal_emu.py): in paused time the VM runs wakes on its own
until the supervisor's lease ends. What it must not change: every read a wake makes, the
instant a starved watchdog fires, a world change between advances. Each scenario runs with
leases off (EDGEKIT_EMU_LEASE=0, one round trip a wake) and on, and the two must agree
exactly; the lease run must also have run most wakes on leases, or it proves nothing."""
import pytest

# Reads a pulse counter and an input at every wake, at odd intervals, and writes a running
# hash of what it read (and the count) every 300 wakes: any read that differs changes a line.
PULSE_APP = """
import hal
h = 0
n = 0
while True:
    hal.wait(997 if n % 3 else 1000)
    p = hal.pulse_count("flow")
    t = hal.input("tamper")
    h = (h * 31 + p + (7 if t else 0)) % 1000000007
    n += 1
    if n % 300 == 0:
        hal.link.write(b"H %d %d %d %d\\n" % (n, p, h, hal.ticks_ms()))
"""

# Feeds the watchdog at 99 wakes of 1 s, then stops: it must fire 5.5 s after the last feed,
# between two wakes, inside what would otherwise be one lease.
WDT_APP = """
import hal
hal.wdt_start(5500)
n = 0
while True:
    hal.wait(1000)
    n += 1
    if n < 100:
        hal.wdt_feed()
    hal.pulse_count("flow")
"""


# Wakes every millisecond and says when what it reads changes: a world change at an instant
# must be seen by the wake at that instant, not one later.
EDGE_APP = """
import hal
last = None
while True:
    hal.wait(1)
    now = (hal.input("tamper"), hal.pulse_count("flow"))
    if now != last:
        hal.link.write(b"C %d %d %d\\n" % (hal.ticks_ms(), now[0], now[1]))
        last = now
"""


def _written(port):
    """Every line the board wrote, up to a read that times out (it has stopped writing)."""
    return list(iter(port.readline, b""))


def _start(emu, flash, monkeypatch, app, lease):
    """A water meter's board in paused time running `app`, leases on or off, asleep."""
    monkeypatch.setenv("EDGEKIT_EMU_LEASE", "1" if lease else "0")
    flash.mkdir()
    (flash / "main.py").write_text(app)
    b = emu.start("esp32", kind="water_meter", time="paused", flash=flash)
    b.wait_for(lambda i: i["state"] == "asleep")
    return b


def _run_pulses(emu, tmp_path, monkeypatch, lease):
    b = _start(emu, tmp_path / f"pulses-{lease}", monkeypatch, PULSE_APP, lease)
    try:
        with b.serial(timeout=10) as port:
            port.reset_input_buffer()
            # odd flows and K-factors, and round ones whose pulses fall on whole seconds
            # (where a wake lands on the instant of a pulse)
            for values, seconds in (({"flow_lpm": 7.3, "k_factor": 3.0}, 1800),
                                    ({"flow_lpm": 12.0, "k_factor": 1.0}, 1800),
                                    ({"flow_lpm": 0.0}, 1200),
                                    ({"flow_lpm": 60.0, "k_factor": 10.0}, 600),
                                    ({"flow_lpm": 6.0, "tamper": True}, 900)):
                b.set(**values)
                b.advance(seconds)
            # driven rows on whole seconds, where wakes land: a wake at a row sees it
            b.drive("t,flow_lpm,tamper\n0,3,0\n600,9,1\n1200,0.5,0\n1500,0,0\n")
            b.advance(1800)
            b.advance(1)
            lines = _written(port)
        info = b.info()
        return lines, info["lease_wakes"], info["parks"], b.world()["litres_fwd"]
    finally:
        b.stop()


def test_every_pulse_count_a_wake_reads_is_the_same_on_a_lease(emu, tmp_path, monkeypatch):
    off, leased0, parks0, litres0 = _run_pulses(emu, tmp_path, monkeypatch, lease=False)
    on, leased, parks, litres = _run_pulses(emu, tmp_path, monkeypatch, lease=True)
    assert leased0 == 0 and len(off) >= 20, (leased0, off)
    assert on == off, [(a, b) for a, b in zip(off, on) if a != b][:3]
    assert litres == pytest.approx(litres0)
    assert leased > 4 * parks, (leased, parks)       # most wakes ran on leases


def _run_watchdog(emu, tmp_path, monkeypatch, lease):
    b = _start(emu, tmp_path / f"wdt-{lease}", monkeypatch, WDT_APP, lease)
    try:
        b.advance(90)
        before = b.info()
        b.advance(20)           # 104.5 s: it fires, inside this one advance; the board
        after = b.info()        # boots again there
        # device ms count from the last boot: when the watchdog fired, to the ms
        return (before["resets"].get("watchdog", 0), after["resets"].get("watchdog", 0),
                after["device_ms"], before["lease_wakes"])
    finally:
        b.stop()


def test_a_starved_watchdog_fires_at_its_instant_on_a_lease(emu, tmp_path, monkeypatch):
    off = _run_watchdog(emu, tmp_path, monkeypatch, lease=False)
    on = _run_watchdog(emu, tmp_path, monkeypatch, lease=True)
    assert off[:2] == (0, 1) and 5000 <= off[2] <= 5600, off
    assert on[:3] == off[:3], (on, off)
    assert off[3] == 0 and on[3] > 80, (on, off)     # the feeds were on leases


def _run_edges(emu, tmp_path, monkeypatch, lease):
    b = _start(emu, tmp_path / f"edges-{lease}", monkeypatch, EDGE_APP, lease)
    try:
        with b.serial(timeout=5) as port:
            b.advance(1)
            port.reset_input_buffer()
            b.set(flow_lpm=30)      # a pulse every 2 s (K 1), so on whole ms
            b.drive("t,tamper\n0.25,1\n0.5,0\n1.75,1\n2.5,0\n")
            b.advance(4)
            lines = _written(port)
        return lines, b.info()["lease_wakes"]
    finally:
        b.stop()


def test_a_change_is_seen_by_the_wake_at_its_instant_on_a_lease(emu, tmp_path, monkeypatch):
    """A driven row, and a pulse, at a whole ms where a wake lands: the lease ends before."""
    off, leased0 = _run_edges(emu, tmp_path, monkeypatch, lease=False)
    on, leased = _run_edges(emu, tmp_path, monkeypatch, lease=True)
    assert leased0 == 0 and len(off) >= 5, off
    assert on == off, (on, off)
    assert leased > 1000, leased
