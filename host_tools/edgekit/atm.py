"""Water ATM, host side: fetch and acknowledge the kiosk's ledger (store and forward), replay
it into balances and totals, and reconcile them against the flow meter.

The record formats are the device's (firmware/kinds/water_atm/ledger.py); the replay here is written
independently of the device's, so a test comparing the two compares two implementations.
"""
from dataclasses import dataclass, field

from edgekit.errors import EdgekitError

TOPUP, OPEN, GRANT, CLOSE, CARD, PRICE, LEAK = 1, 2, 3, 4, 5, 6, 7
ROLES = ("blocked", "water", "vendor", "service", "admin")


class LedgerError(EdgekitError):
    """The kiosk's ledger does not add up: a gap in the sequence or a balance mismatch."""


@dataclass
class Replay:
    balances: dict = field(default_factory=dict)     # uid bytes -> balance
    roles: dict = field(default_factory=dict)        # uid bytes -> role name
    delivered_ml: int = 0
    uncertain_ml: int = 0          # interrupted dispenses: flowed or not, at most this much
    leaked_ml: int = 0
    charged: int = 0
    credited: int = 0
    vouchers: list = field(default_factory=list)     # serials redeemed, in order
    dispenses: int = 0
    interrupted: int = 0
    open: list = None              # an OPEN not closed yet (the kiosk is dispensing)
    last_seq: int = 0

    def apply(self, seq, r):
        if self.last_seq and seq != self.last_seq + 1:
            raise LedgerError(f"ledger gap: record {seq} follows {self.last_seq}; fetch from "
                              f"{self.last_seq + 1}")
        self.last_seq = seq
        kind = r[0]
        if kind == TOPUP:
            uid, amount, after, serial = bytes(r[2]), r[3], r[4], r[5]
            bal = self.balances.get(uid, 0) + amount
            if bal != after:
                raise LedgerError(f"record {seq}: top-up leaves {after}, replay says {bal}")
            self.balances[uid] = bal
            self.roles.setdefault(uid, "water")
            self.credited += amount
            if serial:
                if serial in self.vouchers:
                    raise LedgerError(f"record {seq}: voucher {serial} redeemed twice")
                self.vouchers.append(serial)
        elif kind == OPEN:
            self.open = [seq] + list(r[2:])
        elif kind == GRANT:
            if not self.open or self.open[0] != r[2]:
                raise LedgerError(f"record {seq}: grant for {r[2]}, which is not open")
        elif kind == CLOSE:
            open_seq, uid, ml, charged, after, reason = r[2], bytes(r[3]), r[4], r[6], r[7], r[8]
            if not self.open or self.open[0] != open_seq:
                raise LedgerError(f"record {seq}: close of {open_seq}, which is not open")
            bal = self.balances.get(uid, 0) - charged
            if bal != after or bal < 0:
                raise LedgerError(f"record {seq}: dispense leaves {after}, replay says {bal}")
            self.balances[uid] = bal
            self.delivered_ml += ml
            self.uncertain_ml += r[9] if len(r) > 9 else 0
            self.charged += charged
            self.dispenses += 1
            self.interrupted += reason == "power"
            self.open = None
        elif kind == CARD:
            uid = bytes(r[2])
            self.roles[uid] = ROLES[r[3]]
            self.balances.setdefault(uid, 0)
        elif kind == LEAK:
            self.leaked_ml += r[2]
        return self


PAGE = 64                 # records asked per tx_fetch (a page holds what fits: maybe fewer)
MAX_RECORDS = 8192        # twice the largest max_unacked a kiosk accepts: a bound, not a goal


def read_pages(ask, progress=None):
    """[(seq, record)] the kiosk holds beyond its acknowledged position, in order, checked:
    every row a [seq, record] pair, no gap, no more than MAX_RECORDS. `ask(arguments)` sends
    one tx_fetch and returns its result; `progress(count, kiosk's last seq)` after each page.
    Acknowledging is the caller's, after it has stored what it got (store and forward)."""
    rows, frm = [], None
    while True:
        arguments = {"count": PAGE} if frm is None else {"count": PAGE, "from": frm}
        result = ask(arguments)
        if not isinstance(result, dict) or not isinstance(result.get("records"), list):
            raise EdgekitError(f"tx_fetch answered {result!r}, not a page of records")
        page = result["records"]
        for row in page:
            if not isinstance(row, (list, tuple)) or len(row) != 2:
                raise EdgekitError(f"tx_fetch sent {row!r}, not [seq, record]; nothing was "
                                   "stored or acknowledged")
            if rows and row[0] != rows[-1][0] + 1:
                raise LedgerError(f"ledger gap: record {row[0]} follows {rows[-1][0]}; "
                                  "nothing was stored or acknowledged")
            rows.append((row[0], row[1]))
        if progress and page:
            progress(len(rows), result.get("last"))
        if not page or not result.get("more"):
            return rows
        if len(rows) >= MAX_RECORDS:
            raise EdgekitError(f"the kiosk offers more than {MAX_RECORDS} records; nothing was "
                               "stored or acknowledged")
        frm = rows[-1][0] + 1


def fetch_all(device, ack=True):
    """[(seq, record)] the kiosk holds beyond what was acknowledged, acknowledged after (for
    tests and scripts that keep the records in memory; `edgekit ledger fetch` stores them
    first). `device`: anything with command(name, **args) -> result."""
    out = read_pages(lambda arguments: device.command("tx_fetch", **arguments))
    if ack and out:
        device.command("tx_ack", upto=out[-1][0])
    return out


def reconcile(replay: Replay, meter_litres: float) -> dict:
    """Ledger totals against the flow meter's reading (litres since commissioning): what
    the ledger accounts for must bracket what the meter saw."""
    low = (replay.delivered_ml + replay.leaked_ml) / 1000.0
    high = low + replay.uncertain_ml / 1000.0
    return {"meter_l": meter_litres, "ledger_low_l": low, "ledger_high_l": high,
            "unaccounted_l": max(0.0, meter_litres - high),
            "ok": low - 1e-6 <= meter_litres <= high + 1e-6}
