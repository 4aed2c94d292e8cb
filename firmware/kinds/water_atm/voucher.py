# Offline credit vouchers for the water ATM (protocol/SPEC.md section 10): operator-signed
# COSE_Sign1 documents, checked here in the SPEC's order before anything is written, and the
# redeemed-once window (highest serial + a bitmap of the serials below it).
#
# Nothing in a voucher is trusted before its signature verifies against an operator key in
# the device's keyring; the window only says whether a verified serial was used.
import binascii

import catalog as C
import cbor
import cose
from micropython import const

_U32 = const(0xFFFFFFFF)
_WINDOW = C.VOUCHER_WINDOW


class VoucherError(ValueError):
    def __init__(self, message, code=C.E_BAD_REQUEST):
        super().__init__(message)
        self.code = code


def from_text(text):
    """Bytes of a scanned QR text ("EKV1:" + base64); VoucherError if it is not one."""
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode()
    if not isinstance(text, str) or not text.startswith(C.VOUCHER_PREFIX):
        raise VoucherError("scanned code is not an edgekit voucher")
    body = text[len(C.VOUCHER_PREFIX):].strip()
    if len(body) > (C.VOUCHER_MAX * 4) // 3 + 4:
        raise VoucherError("voucher text too long", C.E_TOO_LARGE)
    try:
        return binascii.a2b_base64(body)
    except ValueError:
        raise VoucherError("voucher text is not base64: rescan it")


class _At:
    """A clock that reads a fixed unix time (None: not set), for checks off the device."""

    def __init__(self, t):
        self.t = t

    def raise_floor(self, t):
        pass

    def floor(self):
        return self.t

    def synced(self):
        return self.t is not None

    def date(self):
        return self.t


def verify(data, keyring, device_id, clock):
    """(serial, amount, card or None) of a voucher that verifies for this kiosk, or
    VoucherError with the SPEC's code. `clock`: the device's timefloor.Clock (a verified
    voucher's issue time raises its floor, and an expiry is checked against it, SPEC 10),
    or unix seconds, or None for a clock that is not set."""
    if clock is None or isinstance(clock, int):
        clock = _At(clock)
    if len(data) > C.VOUCHER_MAX:
        raise VoucherError("voucher of %d bytes exceeds %d" % (len(data), C.VOUCHER_MAX),
                           C.E_TOO_LARGE)
    try:
        protected, pbytes, payload, sig = cose.parse(cbor.loads(data))
    except ValueError as exc:
        raise VoucherError("not a voucher: %s" % exc, getattr(exc, "code", C.E_BAD_CBOR))
    if protected.get(C.HDR_TYPE) != C.DOC_VOUCHER:
        raise VoucherError("document is not a voucher")
    known = keyring.lookup(protected.get(C.COSE_KID))
    if known is None:
        raise VoucherError("voucher signed by an unknown or revoked key", C.E_UNKNOWN_KEY)
    if known[1] != C.ROLE_OPERATOR:
        raise VoucherError("voucher not signed by an operator key", C.E_UNAUTHORIZED)
    try:
        cose.check_signature(pbytes, payload, sig, known[0])
    except ValueError:
        raise VoucherError("voucher signature does not verify: forged or altered",
                           C.E_BAD_SIGNATURE)
    try:
        p = cbor.loads(payload)
    except ValueError as exc:
        raise VoucherError("voucher payload: %s" % exc, C.E_BAD_CBOR)
    if not isinstance(p, dict):
        raise VoucherError("voucher payload must be a map")
    serial = p.get(C.K_SERIAL)
    amount = p.get(C.K_AMOUNT)
    card = p.get(C.K_CARD)
    expires = p.get(C.K_EXPIRES)
    issued = p.get(C.K_ISSUED)
    if not isinstance(serial, int) or not 1 <= serial <= _U32 or \
            serial != protected.get(C.HDR_SEQ) or isinstance(amount, bool) or \
            not isinstance(amount, int) or not 1 <= amount < 0x80000000 or \
            (card is not None and not isinstance(card, bytes)) or \
            (expires is not None and not isinstance(expires, int)) or \
            (issued is not None and not isinstance(issued, int)):
        raise VoucherError("voucher fields malformed (serial, amount, card, issued, expires)")
    # Signed by an operator: the time was at least its issue time when it was made.
    clock.raise_floor(issued)
    if p.get(C.K_DEVICE_ID) != device_id:
        raise VoucherError("voucher is for kiosk %r, not this one" % (p.get(C.K_DEVICE_ID),),
                           C.E_WRONG_TARGET)
    if expires is not None:
        check_expiry(expires, clock)
    return serial, amount, card


def check_expiry(expires, clock):
    """Refuse unless the clock proves `expires` not yet past. A synced RTC proves the time;
    the floor alone is only a lower bound (after a power cut the kiosk cannot know how long
    it was off), so an unsynced kiosk refuses every voucher that carries an expiry."""
    floor = clock.floor()
    if floor is not None and expires < floor:
        raise VoucherError("voucher expired", C.E_EXPIRED)
    if not clock.synced():
        raise VoucherError("voucher has an expiry and this kiosk's clock is not set (lost in a "
                           "power cut?): it cannot prove the voucher unexpired; sync the "
                           "clock (any edgekit command to the kiosk does) or use a voucher "
                           "without expiry", C.E_EXPIRED)
    if expires < clock.date():
        raise VoucherError("voucher expired", C.E_EXPIRED)


class Window:
    """Redeemed serials: the highest, and a bitmap of the _WINDOW serials below it."""
    __slots__ = ("top", "bits")

    def __init__(self):
        self.top = 0
        self.bits = bytearray(_WINDOW // 8)     # bit i: serial top - 1 - i redeemed

    def check(self, serial):
        """Raise VoucherError(E_REPLAYED) unless `serial` may still be redeemed."""
        if serial > self.top:
            return
        if serial == self.top:
            raise VoucherError("voucher %d was already redeemed" % serial, C.E_REPLAYED)
        i = self.top - 1 - serial
        if i >= _WINDOW:
            raise VoucherError("voucher %d is older than the last %d redeemed here: ask the "
                               "operator for a new one" % (serial, _WINDOW), C.E_REPLAYED)
        if self.bits[i >> 3] & (1 << (i & 7)):
            raise VoucherError("voucher %d was already redeemed" % serial, C.E_REPLAYED)

    def mark(self, serial):
        if serial > self.top:
            shift = serial - self.top
            old = self.top
            self._shift(shift)
            if old:     # the previous top becomes bit shift-1
                i = shift - 1
                if i < _WINDOW:
                    self.bits[i >> 3] |= 1 << (i & 7)
            self.top = serial
        elif serial < self.top:
            i = self.top - 1 - serial
            if i < _WINDOW:
                self.bits[i >> 3] |= 1 << (i & 7)

    def _shift(self, n):
        # Move every bit n places up (older); bits past the window fall off.
        bits = self.bits
        if n >= _WINDOW:
            for k in range(len(bits)):
                bits[k] = 0
            return
        for i in range(_WINDOW - 1, -1, -1):
            src = i - n
            on = src >= 0 and bits[src >> 3] & (1 << (src & 7))
            if on:
                bits[i >> 3] |= 1 << (i & 7)
            else:
                bits[i >> 3] &= ~(1 << (i & 7)) & 0xFF

    def state(self):
        return [self.top, bytes(self.bits)]

    def restore(self, st):
        if isinstance(st, list) and len(st) == 2 and isinstance(st[0], int) and \
                isinstance(st[1], bytes) and len(st[1]) == len(self.bits):
            self.top = st[0]
            self.bits[:] = st[1]
