# The water ATM's card table: UID -> role, balance and today's volume, in one preallocated
# bytearray of fixed 24-byte slots (no per-card objects: 500 cards are 12 KB, not ~50 KB of
# dicts and lists), searched linearly (a tap is a human event; 500 compares take ~10 ms on an
# ESP32). The table is derived state: the ledger journal is the truth, replayed into it.
import struct

from micropython import const

_FMT = "<B10sBiHI2x"        # uid length, uid, role, balance, day, volume that day (mL)
_SLOT = const(24)
_UID_MAX = const(10)
ROLES = ("blocked", "water", "vendor", "service", "admin")
BLOCKED = const(0)
WATER = const(1)
VENDOR = const(2)
SERVICE = const(3)
ADMIN = const(4)


def role_code(name):
    if name not in ROLES:
        raise ValueError("role %r: one of %s" % (name, ", ".join(ROLES)))
    return ROLES.index(name)


class CardTable:
    def __init__(self, max_cards):
        self.max = max_cards
        self.buf = bytearray(max_cards * _SLOT)
        self.mv = memoryview(self.buf)
        self.n = 0
        self._key = bytearray(_UID_MAX + 1)

    def _find(self, uid):
        if not 4 <= len(uid) <= _UID_MAX:
            return -1
        key = self._key
        key[0] = len(uid)
        for i in range(_UID_MAX):
            key[1 + i] = uid[i] if i < len(uid) else 0
        mv = self.mv
        for i in range(self.n):
            off = i * _SLOT
            if mv[off:off + _UID_MAX + 1] == key:
                return i
        return -1

    def get(self, uid):
        """(role, balance, day, day_ml) or None."""
        i = self._find(uid)
        if i < 0:
            return None
        _, _, role, bal, day, day_ml = struct.unpack_from(_FMT, self.buf, i * _SLOT)
        return role, bal, day, day_ml

    def put(self, uid, role, balance, day, day_ml):
        i = self._find(uid)
        if i < 0:
            if not 4 <= len(uid) <= _UID_MAX:
                raise ValueError("card UID of %d bytes: 4..10" % len(uid))
            if self.n >= self.max:
                raise ValueError("card table full (%d cards): raise max_cards or block "
                                 "old cards" % self.max)
            i = self.n
            self.n += 1
        struct.pack_into(_FMT, self.buf, i * _SLOT, len(uid), bytes(uid), role, balance,
                         day & 0xFFFF, day_ml)

    def items(self):
        """(uid, role, balance) for each card (a generator: nothing is built)."""
        for i in range(self.n):
            ln, uid, role, bal, _, _ = struct.unpack_from(_FMT, self.buf, i * _SLOT)
            yield uid[:ln], role, bal

    def state(self):
        return bytes(self.mv[:self.n * _SLOT])

    def restore(self, data):
        if not isinstance(data, bytes) or len(data) % _SLOT or len(data) > len(self.buf):
            return False
        self.buf[:len(data)] = data
        self.n = len(data) // _SLOT
        return True
