"""One voucher: mint it (COSE_Sign1, protocol/SPEC.md section 10), carry it as QR text, and
check it as a kiosk does (firmware side: the voucher module of the water ATM).

    v = mint(operator_signer, "atm-1a2b3c", serial=17, amount=500, expires=...)
    text = to_qr_text(v)                  # "EKV1:" + base64: print it as a QR code
    fields = check(from_qr_text(text), {kid: pub}, device_id="atm-1a2b3c")
"""
import base64
import binascii
import time

from edgekit import catalog as C
from edgekit.protocol import cbor, cose
from edgekit.vouchers.errors import VoucherError

ISSUER = "vouchers"     # HDR_SENDER of a voucher (a document issuer name, SPEC 4.1)
_U32 = 0xFFFFFFFF


def mint(signer, device_id, serial, amount, issued=None, expires=None, card=None) -> bytes:
    """A signed voucher (COSE_Sign1 bytes) for kiosk `device_id`."""
    if not isinstance(device_id, str) or not 1 <= len(device_id) <= 32:
        raise VoucherError("device id: the kiosk's id, 1..32 characters (edgekit registry "
                           "list --kind water_atm)")
    if not isinstance(serial, int) or not 1 <= serial <= _U32:
        raise VoucherError(f"serial {serial!r}: 1..{_U32}")
    if isinstance(amount, bool) or not isinstance(amount, int) or not 1 <= amount < 2 ** 31:
        raise VoucherError(f"amount {amount!r}: a whole number of money units, 1..2^31-1")
    payload = {C.K_DEVICE_ID: device_id, C.K_SERIAL: serial, C.K_AMOUNT: amount,
               C.K_ISSUED: int(issued if issued is not None else time.time())}
    if expires is not None:
        if int(expires) <= payload[C.K_ISSUED]:
            raise VoucherError("expires must be after the issue time")
        payload[C.K_EXPIRES] = int(expires)
    if card is not None:
        card = bytes(card)
        if not 4 <= len(card) <= 10:
            raise VoucherError("card: a card UID of 4, 7 or 10 bytes")
        payload[C.K_CARD] = card
    header = {C.HDR_TYPE: C.DOC_VOUCHER, C.HDR_SEQ: serial, C.HDR_SENDER: ISSUER}
    data = cose.sign1(cbor.dumps(payload), signer, header)
    if len(data) > C.VOUCHER_MAX:
        raise VoucherError(f"voucher of {len(data)} bytes exceeds {C.VOUCHER_MAX}")
    return data


def to_qr_text(data: bytes) -> str:
    return C.VOUCHER_PREFIX + base64.b64encode(data).decode()


def from_qr_text(text: str) -> bytes:
    text = text.strip()
    if not text.startswith(C.VOUCHER_PREFIX):
        raise VoucherError(f"not an edgekit voucher: the text must start with "
                           f"{C.VOUCHER_PREFIX!r}")
    try:
        return base64.b64decode(text[len(C.VOUCHER_PREFIX):], validate=True)
    except (binascii.Error, ValueError):
        raise VoucherError("voucher text is not valid base64: rescan or retype it") from None


def check(data: bytes, operator_keys: dict, device_id=None, now=None) -> dict:
    """The voucher's fields once it verifies against `operator_keys` ({kid: public key});
    the same checks a kiosk makes, except the redeemed-once state only the kiosk holds."""
    if len(data) > C.VOUCHER_MAX:
        raise VoucherError(f"voucher of {len(data)} bytes exceeds {C.VOUCHER_MAX}",
                           C.E_TOO_LARGE)
    try:
        sign1 = cose.decode_sign1(data)
    except ValueError as exc:
        raise VoucherError(f"not a COSE_Sign1 voucher: {exc}", C.E_BAD_CBOR) from None
    if sign1.protected.get(C.HDR_TYPE) != C.DOC_VOUCHER:
        raise VoucherError("document is not a voucher (wrong type)", C.E_BAD_REQUEST)
    key = operator_keys.get(sign1.kid)
    if key is None:
        raise VoucherError(f"signed by key {sign1.kid.hex() if sign1.kid else None}, which is "
                           "not a trusted operator key", C.E_UNKNOWN_KEY)
    try:
        sign1.verify(key)
    except ValueError:
        raise VoucherError("voucher signature does not verify: forged or altered",
                           C.E_BAD_SIGNATURE) from None
    p = cbor.loads(sign1.payload)
    serial = p.get(C.K_SERIAL) if isinstance(p, dict) else None
    if not isinstance(serial, int) or \
            serial != sign1.protected.get(C.HDR_SEQ) or \
            not isinstance(p.get(C.K_AMOUNT), int) or p[C.K_AMOUNT] < 1:
        raise VoucherError("voucher fields malformed (serial, amount)")
    if device_id is not None and p.get(C.K_DEVICE_ID) != device_id:
        raise VoucherError(f"voucher is for kiosk {p.get(C.K_DEVICE_ID)}, not {device_id}",
                           C.E_WRONG_TARGET)
    if now is not None and C.K_EXPIRES in p and p[C.K_EXPIRES] < now:
        raise VoucherError("voucher expired", C.E_EXPIRED)
    return {"device_id": p.get(C.K_DEVICE_ID), "serial": serial, "amount": p[C.K_AMOUNT],
            "issued": p.get(C.K_ISSUED), "expires": p.get(C.K_EXPIRES),
            "card": p.get(C.K_CARD), "signed_by": sign1.kid}
