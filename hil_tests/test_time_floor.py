"""The time floor on a kiosk (SPEC 8.4, 10): a power cut loses the RTC, and the kiosk must
neither credit an expired voucher nor report dates that go back."""
import pytest

from edgekit import catalog as C
from edgekit.errors import ProtocolError
from edgekit.vouchers import mint

pytestmark = pytest.mark.hil(kind="water_atm")

T0 = 1767225600                 # 2026-01-01T00:00:00Z
DAY = 86400
CARD = "0a000001"


def _cut(board, clock, dev):
    board.powercut()
    clock.advance(2)
    dev.reconnect()


@pytest.mark.hil(sim_s=172800)  # a wait it needs: skips early on a bench
def test_an_expired_voucher_is_refused_after_a_power_cut(board, world, clock, provisioned,
                                                         hil_fleet):
    """Before: a power cut lost the RTC, the unsynced kiosk skipped the expiry check and
    credited a voucher that had expired a day earlier."""
    dev = provisioned(config={"poll_ms": 1000})
    dev.command("card", uid=CARD, role="water")
    dev.session.request(C.TIME_SYNC, {C.K_TIME: T0}, expect=C.TIME)
    clock.advance(2 * DAY)
    op = hil_fleet.signer("operator")
    expired = mint(op, dev.id, 1, 100, issued=T0 - DAY, expires=T0 + DAY)
    valid = mint(op, dev.id, 2, 100, issued=T0, expires=T0 + 30 * DAY)
    _cut(board, clock, dev)
    assert dev.session.hello().payload[C.K_TIME] is None        # the RTC is gone
    with pytest.raises(ProtocolError) as info:
        dev.command("redeem", uid=CARD, voucher=expired)
    assert info.value.code == C.E_EXPIRED and "voucher expired" in str(info.value)
    # one still valid cannot be proved so by a lower bound: refused, saying why
    with pytest.raises(ProtocolError) as info:
        dev.command("redeem", uid=CARD, voucher=valid)
    assert info.value.code == C.E_EXPIRED and "clock is not set" in str(info.value)
    assert dev.command("balance", uid=CARD)["balance"] == 0
    # a signed sync proves the time again: the valid one is credited, the expired one not
    dev.session.request(C.TIME_SYNC, {C.K_TIME: T0 + 2 * DAY}, expect=C.TIME)
    assert dev.command("redeem", uid=CARD, voucher=valid)["balance"] == 100
    with pytest.raises(ProtocolError) as info:
        dev.command("redeem", uid=CARD, voucher=expired)
    assert info.value.code == C.E_EXPIRED


@pytest.mark.hil(sim_s=10817)  # a wait it needs: skips early on a bench
def test_dates_do_not_go_back_across_power_cuts(board, world, clock, provisioned):
    """Ledger records and event times of a synced kiosk, across two power cuts (the RTC lost
    each time, never synced again): each date at least the one before."""
    dev = provisioned(config={"poll_ms": 1000, "plant_s": 60})
    dev.command("card", uid=CARD, role="water")
    dev.session.request(C.TIME_SYNC, {C.K_TIME: T0}, expect=C.TIME)
    dates = []
    for round_ in range(3):
        clock.advance(3 * 3600 + 17)
        dev.command("credit", uid=CARD, amount=1)
        dates.append(_last_ledger_time(dev))
        if round_ < 2:
            _cut(board, clock, dev)
    assert dates[0] == pytest.approx(T0 + 3 * 3600 + 17, abs=5)
    assert all(d is not None for d in dates) and dates == sorted(dates), dates
    # an alarm after the last cut carries a date too, not below the ledger's
    world.set(tank_l=0)
    clock.advance(120)
    rows = dev.command("tx_fetch", count=1)      # (the kiosk is alive and answering)
    assert rows["last"] >= 3
    events = dev.session.request(C.EVENT_FETCH, {}, expect=C.EVENTS).payload[C.K_RECORDS]
    times = [p[C.K_TIME] for _, p in events]
    assert times and all(t >= T0 for t in times) and times == sorted(times), times
    assert times[-1] >= dates[-1]


def _last_ledger_time(dev):
    last = dev.command("tx_fetch", count=1)["last"]
    rec = dev.command("tx_fetch", **{"from": last, "count": 1})["records"][0][1]
    return rec[1]
