"""The one paging loop over a water ATM's tx_fetch (edgekit.atm.read_pages), which both
`edgekit ledger fetch` and the tests' fetch_all use: short pages followed by `more`, a gap or
a malformed row refused before anything is stored or acknowledged, a bound on the total."""
import pytest

from edgekit import atm
from edgekit.errors import EdgekitError


class Kiosk:
    """tx_fetch over records 1..n, at most `fits` per page (a page holds what fits in the
    kiosk's buffer, fewer than asked), with optional damage to the rows it sends."""

    def __init__(self, n, fits=5, damage=None):
        self.records = [(seq, [1, seq]) for seq in range(1, n + 1)]
        self.fits, self.damage, self.asked = fits, damage, []

    def __call__(self, arguments):
        self.asked.append(dict(arguments))
        start = arguments.get("from", 1)
        page = [list(r) for r in self.records if r[0] >= start][:min(arguments["count"],
                                                                     self.fits)]
        if self.damage:
            page = self.damage(page)
        more = bool(page) and page[-1][0] < self.records[-1][0]
        return {"records": page, "more": more, "last": self.records[-1][0]}


def test_short_pages_are_followed_to_the_end_in_order():
    kiosk, seen = Kiosk(23, fits=5), []
    rows = atm.read_pages(kiosk, progress=lambda count, last: seen.append((count, last)))
    assert [seq for seq, _ in rows] == list(range(1, 24))
    assert [a.get("from") for a in kiosk.asked] == [None, 6, 11, 16, 21]
    assert seen[-1] == (23, 23)


def test_a_gap_is_refused():
    kiosk = Kiosk(12, damage=lambda page: [r for r in page if r[0] != 3])
    with pytest.raises(atm.LedgerError, match="gap: record 4 follows 2"):
        atm.read_pages(kiosk)


@pytest.mark.parametrize("damage", [lambda page: [[1, 2, 3]] + page[1:],
                                    lambda page: ["x"] + page[1:]])
def test_a_malformed_row_is_refused(damage):
    with pytest.raises(EdgekitError, match="not \\[seq, record\\]"):
        atm.read_pages(Kiosk(4, damage=damage))


def test_an_answer_that_is_not_a_page_is_refused():
    with pytest.raises(EdgekitError, match="not a page of records"):
        atm.read_pages(lambda arguments: {"ok": True})


def test_a_kiosk_that_never_stops_offering_is_bounded(monkeypatch):
    monkeypatch.setattr(atm, "MAX_RECORDS", 40)
    with pytest.raises(EdgekitError, match="more than 40 records"):
        atm.read_pages(Kiosk(1000, fits=10))


def test_fetch_all_acknowledges_what_it_read():
    kiosk, sent = Kiosk(7, fits=3), []

    class Device:
        def command(self, name, **args):
            sent.append((name, args))
            return kiosk(args) if name == "tx_fetch" else {"ok": True}
    rows = atm.fetch_all(Device())
    assert len(rows) == 7 and sent[-1] == ("tx_ack", {"upto": 7})
