"""A week and more of uptime on an emulated board in paused time, seen as a technician sees
it (SPEC 8.4): the uptime its CAPS reports and the dates of the meter's daily packs, right
after the 2**30 ms tick counter has passed half its period (6.2 days) and wrapped (12.4
days). (Device time, which only `diag` shows, is checked over 3650 days in the VM:
tests/firmware/test_device_time.py.)"""
import pytest

from edgekit import catalog as C

pytestmark = pytest.mark.hil(kind="water_meter")

T0 = 1767225600                 # 2026-01-01T00:00:00Z
DAY = 86400


@pytest.mark.hil(sim_s=86400)  # a wait it needs: skips early on a bench
def test_uptime_and_daily_pack_dates_after_thirteen_days(board, world, clock, provisioned):
    """Before: the uptime was -468942 s after 7 days (one ticks_diff since boot), device time
    ran backwards, and the packs' relative times were taken from it."""
    dev = provisioned(config={"sample_s": 600, "report_s": DAY})
    dev.session.request(C.TIME_SYNC, {C.K_TIME: T0}, expect=C.TIME)
    world.set(flow_lpm=1.0)
    seen = []
    for day in range(1, 14):
        clock.advance(DAY)
        seen.append((day, dev.session.hello().payload[C.K_UPTIME] // 1000))
    for day, up in seen:
        assert day * DAY <= up <= day * DAY + 120, seen
    bts = [pack[0][C.SENML_BT] for pack in dev.drain_telemetry()]
    assert len(bts) >= 12 and bts == sorted(bts), bts
    assert all(T0 < t <= T0 + 14 * DAY for t in bts), bts
