"""Water-ATM credit vouchers (protocol/SPEC.md section 10): minted on the operator's machine,
sold by vendors as QR codes, checked offline by the kiosk.

    token.py    mint, to_qr_text / from_qr_text, check (the kiosk's checks, host side)
    serials.py  SerialBook: per-kiosk serials that never repeat
    errors.py   VoucherError (carries the protocol error code a kiosk would answer)
    cli.py      `edgekit voucher mint|inspect`
"""
from edgekit.vouchers.errors import VoucherError
from edgekit.vouchers.serials import SerialBook
from edgekit.vouchers.token import ISSUER, check, from_qr_text, mint, to_qr_text

__all__ = ["ISSUER", "SerialBook", "VoucherError", "check", "from_qr_text", "mint",
           "to_qr_text"]
