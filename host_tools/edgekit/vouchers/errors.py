"""The vouchers' error: what the kiosk would refuse, with the protocol error code it sends."""
from edgekit import catalog as C
from edgekit.errors import EdgekitError


class VoucherError(EdgekitError):
    """A voucher that is malformed, not for this kiosk, expired or wrongly signed."""

    def __init__(self, message, code=C.E_BAD_REQUEST):
        super().__init__(message)
        self.code = code
