"""The host's replay of a kiosk ledger: balances, totals, and every inconsistency it must
refuse (a gap, a balance that does not follow, a voucher counted twice, a close of nothing)."""
import pytest

from edgekit.atm import LedgerError, Replay, reconcile

U = b"\x0a\x00\x00\x01"
V = b"\x0a\x00\x00\x02"
DAY = [
    (1, [6, None, [[20, 5000], [0, 9000]]]),
    (2, [5, None, U, 1]),
    (3, [5, None, V, 1]),
    (4, [1, None, U, 100, 100, 0]),
    (5, [1, None, V, 50, 50, 7]),
    (6, [2, None, U, "preset", 2000, 10, 500]),
    (7, [3, None, 6, 400, 1000]),
    (8, [4, None, 6, U, 2060, 60, 10, 90, "done", 0]),
    (9, [2, None, V, "preset", 2000, 10, 500]),
    (10, [4, None, 9, V, 400, 0, 2, 48, "power", 600]),
    (11, [7, None, 250]),
]


def test_a_day_replays_into_balances_and_totals():
    r = Replay()
    for seq, rec in DAY:
        r.apply(seq, rec)
    assert r.balances == {U: 90, V: 48}
    assert (r.delivered_ml, r.uncertain_ml, r.leaked_ml) == (2460, 600, 250)
    assert (r.charged, r.credited, r.vouchers, r.interrupted) == (12, 150, [7], 1)
    books = reconcile(r, 2.9)
    assert books["ok"] and books["ledger_low_l"] == 2.71 and books["ledger_high_l"] == 3.31
    assert not reconcile(r, 3.5)["ok"] and reconcile(r, 3.5)["unaccounted_l"] > 0.18


@pytest.mark.parametrize("bad, match", [
    ((12, [1, None, U, 5, 999, 0]), "top-up leaves"),
    ((13, [1, None, U, 5, 95, 0]), "gap"),
    ((12, [1, None, U, 5, 95, 7]), "twice"),
    ((12, [4, None, 99, U, 10, 0, 1, 89, "done", 0]), "not open"),
    ((12, [3, None, 99, 10, 20]), "not open"),
])
def test_inconsistent_ledgers_are_refused(bad, match):
    r = Replay()
    for seq, rec in DAY:
        r.apply(seq, rec)
    with pytest.raises(LedgerError, match=match):
        r.apply(*bad)
