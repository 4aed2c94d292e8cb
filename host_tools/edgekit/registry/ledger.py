"""A water ATM's ledger, stored in the registry before the kiosk may forget it.

The kiosk keeps every sale, top-up and card change in its ledger until the host acknowledges
it (`tx_ack`), and stops selling when `max_unacked` records wait (it never evicts money the
host has not seen). So the host writes the fetched records here, in one transaction, and
only then acknowledges: the same store-and-forward rule as telemetry (registry/telemetry.py).
Rows are keyed by the kiosk's ledger sequence: a page fetched again after a lost
acknowledgement is stored once. The record is kept as the kiosk's CBOR, so a replay
(edgekit.atm.Replay) reads exactly what the kiosk wrote.
"""
import sqlite3
from datetime import datetime, timezone

import cbor2

from edgekit.errors import EdgekitError
from edgekit.registry.telemetry import iso

_MAX_SEQ = 0xFFFFFFFF


def _row(seq, record):
    if isinstance(seq, bool) or not isinstance(seq, int) or not 1 <= seq <= _MAX_SEQ:
        raise EdgekitError(f"the kiosk sent a ledger record with sequence {seq!r}; nothing "
                           "was stored or acknowledged")
    if not isinstance(record, list) or not record or not isinstance(record[0], int):
        raise EdgekitError(f"ledger record {seq} is not a [kind, ...] list; nothing was "
                           "stored or acknowledged")
    return seq, record[0], cbor2.dumps(record)


def store(registry, device_id, records, received=None):
    """Write [(seq, record)] in ONE transaction; returns (new, already stored). When it
    returns, the records are durable and may be acknowledged."""
    received = iso(datetime.now(timezone.utc).timestamp() if received is None else received)
    rows = [_row(seq, record) for seq, record in records]
    new = 0
    with registry._write() as db:
        try:
            for seq, kind, blob in rows:
                cur = db.execute("INSERT OR IGNORE INTO ledger (device_id, seq, kind, record, "
                                 "received_at) VALUES (?, ?, ?, ?, ?)",
                                 (device_id, seq, kind, blob, received))
                new += cur.rowcount
        except sqlite3.IntegrityError:
            raise EdgekitError(f"device {device_id} is not in the registry {registry.path}: "
                               "provision it (or pick its registry with --registry) before "
                               "storing its ledger") from None
    return new, len(rows) - new


def records(registry, device_id):
    """[(seq, record, received_at)] of a kiosk, in ledger order."""
    cur = registry._db.execute("SELECT seq, record, received_at FROM ledger WHERE device_id = ? "
                               "ORDER BY seq", (device_id,))
    return [(r["seq"], cbor2.loads(r["record"]), r["received_at"]) for r in cur]
