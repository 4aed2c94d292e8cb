# The water ATM's money ledger: every transaction is a record in an append-only journal
# (storage/journal.py: CRC, sequence numbers, torn tails dropped), made durable BEFORE it takes
# effect; balances, the card table, prices, the voucher window and the totals are derived
# state, rebuilt at boot by replaying the records after the last snapshot. So after a power
# cut at any instant the balances equal the replay of the journal: a record either made it
# (and counts) or did not (and nothing happened).
#
# Records (CBOR arrays; t = unix seconds or None when the clock was not synced):
#   [1 TOPUP, t, uid, amount, balance after, voucher serial or 0 (operator credit)]
#   [2 OPEN,  t, uid, mode, limit mL, reserved, granted mL]  a dispense starts (before
#                                                    the valve opens)
#   [3 GRANT, t, open seq, mL so far, granted mL]    water authorised ahead of the meter
#   [4 CLOSE, t, open seq, uid, mL, overrun mL, charged, balance after, reason, uncertain mL]
#   [5 CARD,  t, uid, role]                          registered, role changed or blocked
#   [6 PRICE, t, [[litres per day or 0, price per m3], ...]]
#   [7 LEAK,  t, mL]                                 metered with no session open
# A dispense always ends in a CLOSE: at boot an OPEN without one is closed with reason
# "power" for the mL its last GRANT confirmed; what flowed beyond that is below the grant
# (`uncertain`), so every litre that left the kiosk lies inside a recorded bound.
import gc

import cbor
from cards import WATER, CardTable
from journal import Journal
from micropython import const
from voucher import Window

T_TOPUP = const(1)
T_OPEN = const(2)
T_GRANT = const(3)
T_CLOSE = const(4)
T_CARD = const(5)
T_PRICE = const(6)
T_LEAK = const(7)
_SNAP_EVERY = const(32)     # records between snapshots: bounds the replay at boot
# A tx_fetch page: its [seq, record] items, as stored, at most this many bytes (plus the
# array's 2-byte head), written into one buffer taken at boot (docs/memory.md rule 1).
PAGE_BYTES = const(480)
_DAY = const(86400)
# Totals: delivered mL, charged, credited, leak mL
_DELIVERED = const(0)
_CHARGED = const(1)
_CREDITED = const(2)
_LEAKED = const(3)


def cost(bands, day_ml, ml, up=False):
    """Money units for `ml` more millilitres on a card that drew `day_ml` today, under the
    increasing-block tariff `bands` ([[litres per day or 0 for no limit, price per m3], ..]).
    A charge is rounded down (the customer never pays for a part of a unit); what a balance
    affords is judged rounded up (`up`), or an empty card would get the sub-unit for free."""
    total = 0
    pos = day_ml
    left = ml
    price = 0
    for upto_l, price in bands:
        if left <= 0:
            break
        if upto_l:
            room = upto_l * 1000 - pos
            if room <= 0:
                continue
            take = left if left < room else room
        else:
            take = left
        total += take * price
        pos += take
        left -= take
    total += left * price       # beyond the last limited band: its price
    return (total + 999999) // 1000000 if up else total // 1000000


def _item_head(out, seq):
    out.append(0x82)            # [seq, record]: the record follows as stored
    cbor.encode_into(out, seq)


class Ledger:
    def __init__(self, root, store, max_cards, max_bytes=65536, segment_bytes=4096,
                 flash=None):
        self.j = Journal(root, "ledger", max_bytes, segment_bytes, flash)
        self.store = store
        self.cards = CardTable(max_cards)
        self.window = Window()
        self.bands = [[0, 0]]
        self.tot = [0, 0, 0, 0]
        self.open = None        # [open seq, uid, mode, limit mL, reserved, mL, granted mL]
        self.applied = 0        # seq of the last record applied to the state above
        self.since_snap = 0
        self.mismatches = 0     # replayed "balance after" that disagreed (a damaged record)
        self.lost = 0           # records gone before they were snapshotted (must stay 0)
        self.page = bytearray(PAGE_BYTES + 2)
        self._load()

    # -- boot: snapshot + replay -------------------------------------------------------------
    def _load(self):
        st = self.store.load("ledger", None)
        if isinstance(st, dict) and self.cards.restore(st.get("cards")):
            self.window.restore(st.get("win"))
            self.bands = st.get("bands") or self.bands
            self.tot = st.get("tot") or self.tot
            self.open = st.get("open")
            self.applied = st.get("seq", 0)
        nxt = self.applied + 1
        if nxt < self.j.first_seq <= self.j.last_seq:
            self.lost += self.j.first_seq - nxt     # evicted unsnapshotted: say so
            nxt = self.j.first_seq
        while nxt <= self.j.last_seq:
            rows = self.j.read(nxt, 8, 512)
            if not rows:
                break
            gc.collect()        # each batch's garbage before the next: no fragmentation
            for seq, payload in rows:
                self._apply(seq, cbor.loads(payload))
                nxt = seq + 1
                self.since_snap += 1
        if self.since_snap >= _SNAP_EVERY:
            # Replayed a lot (boots that each ended before their own snapshot): take one
            # now, or the replay would grow with every power cut.
            self.snapshot()

    def snapshot(self):
        self.store.save("ledger", {"seq": self.applied, "cards": self.cards.state(),
                                   "win": self.window.state(), "bands": self.bands,
                                   "tot": self.tot, "open": self.open})
        self.since_snap = 0

    # -- applying records (the same code at boot and live) -----------------------------------
    def _card(self, uid, day):
        c = self.cards.get(uid)
        if c is None:
            return WATER, 0, day or 0, 0
        role, bal, cday, day_ml = c
        if day is not None and day != cday:
            day_ml = 0
        return role, bal, (day if day is not None else cday), day_ml

    def _apply(self, seq, r):
        kind = r[0]
        day = r[1] // _DAY if r[1] is not None else None
        if kind == T_TOPUP:
            role, bal, d, dml = self._card(r[2], day)
            bal += r[3]
            if bal != r[4]:
                self.mismatches += 1
            self.cards.put(r[2], role, bal, d, dml)
            if r[5]:
                self.window.mark(r[5])
            self.tot[_CREDITED] += r[3]
        elif kind == T_OPEN:
            self.open = [seq, r[2], r[3], r[4], r[5], 0, r[6]]
        elif kind == T_GRANT:
            if self.open is not None and self.open[0] == r[2]:
                self.open[5] = r[3]
                self.open[6] = r[4]
        elif kind == T_CLOSE:
            role, bal, d, dml = self._card(r[3], day)
            bal -= r[6]
            if bal != r[7]:
                self.mismatches += 1
            self.cards.put(r[3], role, bal, d, dml + r[4])
            self.tot[_DELIVERED] += r[4]
            self.tot[_CHARGED] += r[6]
            self.open = None
        elif kind == T_CARD:
            _, bal, d, dml = self._card(r[2], day)
            self.cards.put(r[2], r[3], bal, d, dml)
        elif kind == T_PRICE:
            self.bands = r[2]
        elif kind == T_LEAK:
            self.tot[_LEAKED] += r[2]
        self.applied = seq

    def _append(self, rec):
        seq = self.j.append(cbor.dumps(rec))     # durable from here on
        self._apply(seq, rec)
        self.since_snap += 1
        if self.since_snap >= _SNAP_EVERY and self.open is None:
            self.snapshot()
        return seq

    # -- transactions ------------------------------------------------------------------------
    def card(self, uid, day=None):
        """(role, balance, day_ml today) of a registered card, or None."""
        if self.cards.get(uid) is None:
            return None
        role, bal, _, dml = self._card(uid, day)
        return role, bal, dml

    def register(self, t, uid, role):
        return self._append([T_CARD, t, bytes(uid), role])

    def topup(self, t, uid, amount, serial=0):
        _, bal, _ = self.card(uid) or (WATER, 0, 0)
        self._append([T_TOPUP, t, bytes(uid), amount, bal + amount, serial])
        return bal + amount

    def begin(self, t, uid, mode, limit_ml, reserved, granted_ml):
        return self._append([T_OPEN, t, bytes(uid), mode, limit_ml, reserved, granted_ml])

    def grant(self, t, ml, granted_ml):
        self._append([T_GRANT, t, self.open[0], ml, granted_ml])

    def end(self, t, ml, overrun_ml, charged, reason, uncertain_ml=0):
        o = self.open
        _, bal, _ = self.card(o[1]) or (WATER, 0, 0)
        self._append([T_CLOSE, t, o[0], o[1], ml, overrun_ml, charged, bal - charged, reason,
                      uncertain_ml])
        return bal - charged

    def set_prices(self, t, bands):
        self._append([T_PRICE, t, bands])

    def leak(self, t, ml):
        self._append([T_LEAK, t, ml])

    # -- store and forward -------------------------------------------------------------------
    def fetch_page(self, from_seq, count):
        """Up to `count` records from `from_seq` as one CBOR array of [seq, record] items
        -> (memoryview of that array, records in it, seq of the last or None). The records
        are copied as the journal holds them (each is the deterministic encoding the
        ledger wrote) into the page buffer, never decoded: the answer costs no heap, where
        a page of decoded records left a fragmented heap without a 256-byte block for
        signing it (docs/memory.md). Fewer than `count` when PAGE_BYTES is full; always
        one if any is there. Valid until the next call."""
        page = self.page
        page[:] = b"\0\0"     # room for the array's head (1 or 2 bytes, known at the end)
        n, last = self.j.read_into(page, _item_head, from_seq, count, PAGE_BYTES)
        if n < 24:
            page[1] = 0x80 | n
            return memoryview(page)[1:], n, last
        page[0] = 0x98
        page[1] = n
        return memoryview(page), n, last

    def ack(self, upto):
        # The snapshot first: acknowledged segments are deleted, and a boot must never need
        # a record that is gone.
        self.snapshot()
        self.j.ack(upto)

    @property
    def totals(self):
        return {"delivered_ml": self.tot[_DELIVERED], "charged": self.tot[_CHARGED],
                "credited": self.tot[_CREDITED], "leaked_ml": self.tot[_LEAKED]}
