"""Per-kiosk voucher serials. They must only grow (the kiosk refuses a serial it redeemed,
and any more than VOUCHER_WINDOW below its highest): handed out from the key directory,
under a lock, persisted before use."""
from pathlib import Path

from edgekit.vouchers.errors import VoucherError
from edgekit.vouchers.token import _U32


class SerialBook:
    """Per-kiosk voucher serials under the key directory: <keys>/vouchers/<device>.serial."""

    def __init__(self, keys_dir):
        self.dir = Path(keys_dir) / "vouchers"

    def take(self, device_id, count=1) -> list:
        from edgekit.keys.store import _locked, atomic_write
        if not device_id.replace("-", "").replace("_", "").isalnum():
            raise VoucherError(f"device id {device_id!r}: letters, digits, '-' and '_'")
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self.dir / f"{device_id}.serial"
        with _locked(self.dir / f"{device_id}.lock"):
            try:
                last = int(path.read_text().strip() or 0)
            except FileNotFoundError:
                last = 0
            except ValueError:
                raise VoucherError(f"{path} is damaged: restore it from backup (serials must "
                                   "never repeat for a kiosk)") from None
            if last + count > _U32:
                raise VoucherError(f"kiosk {device_id} has used its serials up to {last}")
            atomic_write(path, f"{last + count}\n".encode(), 0o600)
        return list(range(last + 1, last + count + 1))
