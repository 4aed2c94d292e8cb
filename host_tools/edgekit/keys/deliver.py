"""Bring a device up to the key store's epoch: send it the stored KEY_EPOCH (SPEC 5).

Every host that opens an operator session calls `catch_up` between the device's signed CAPS
and the first operator-signed frame: a device that missed a rotation knows no new operator
key (`unknown_key`), and one that missed a `--compromised` rotation still trusts the leaked
key. The message is the one `edgekit keys rotate/revoke` wrote to `epochs/epoch-N.cbor`,
already signed by the fleet root, so any host carries it without a passphrase.

One case needs the fleet key: a device counts a KEY_EPOCH's seq as used before it stores the
new anchors, so a power cut between the two leaves it on the old epoch and refusing those
same bytes as `replayed`. Then the same epoch is signed again under a fresh seq (`resign`).
"""
import threading

from edgekit import catalog as C
from edgekit.errors import EdgekitError, ProtocolError
from edgekit.keys import epoch as epoch_mod

CURRENT, DELIVERED, AHEAD, UNKNOWN = "current", "delivered", "ahead", "unknown"


def device_epoch(caps_payload):
    """The key epoch a device reports in CAPS (`K_EPOCH`), or None (older firmware)."""
    value = caps_payload.get(C.K_EPOCH)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def stored_epoch(keystore, number=None):
    """(message bytes, opened fields) of `epochs/epoch-N.cbor`, verified with the fleet key."""
    number = keystore.epoch if number is None else number
    path = keystore.epoch_path(number)
    try:
        message = path.read_bytes()
    except OSError:
        raise EdgekitError(f"no KEY_EPOCH {number} in {path.parent}: restore the epochs "
                           "folder from the key backup (docs/keys.md)") from None
    try:
        info = epoch_mod.open_key_epoch(message, keystore.anchors()["anchors"][C.ROLE_FLEET][0])
    except ValueError as exc:       # CoseError is a ValueError too
        raise EdgekitError(f"{path} does not verify with the fleet key ({exc}): it is not sent "
                           "to devices; restore the epochs folder from backup") from None
    if info["epoch"] != number:
        raise EdgekitError(f"{path} holds epoch {info['epoch']}, not {number}: restore the "
                           "epochs folder from backup")
    return message, info


def resign(keystore, info, fleet_signer):
    """The same epoch (anchors, revoked kids) signed again under a fresh fleet seq."""
    seq = keystore.next_seq_for(fleet_signer.kid.hex())
    message = epoch_mod.build_key_epoch(fleet_signer, seq, info["epoch"], info["anchors"],
                                        info["revoked"])
    return message, dict(info, seq=seq)


def catch_up(session, caps, keystore, fleet_signer=None, force=False, registry=None):
    """Deliver the key store's current KEY_EPOCH when the device reports an older one.

    `session` has the device's key (its answers are verified); `caps` is its signed CAPS
    payload. `fleet_signer` is a callable giving the fleet signer, asked only when the device
    refuses the stored message as replayed while still behind (see the module doc).
    `force` also sends to firmware that reports no epoch (it answers `replayed` when current).
    With a `registry`, the epoch the device runs is recorded for its row.
    Returns {status, before, after, epoch, resigned, caps}; `caps` is fresh after a delivery.
    """
    result = _catch_up(session, caps, keystore, fleet_signer, force)
    device_id = result["caps"].get(C.K_DEVICE_ID)
    if registry is not None and result["after"] is not None and device_id:
        registry.record_key_epoch(device_id, result["after"])
    return result


def _catch_up(session, caps, keystore, fleet_signer, force):
    current = keystore.epoch
    before = device_epoch(caps)
    result = {"epoch": current, "before": before, "after": before, "resigned": False,
              "caps": caps}
    if before is None and not force:
        result["status"] = UNKNOWN      # firmware without CAPS K_EPOCH: `keys deliver` sends
        return result
    if before is not None and before >= current:
        result["status"] = CURRENT if before == current else AHEAD
        return result
    message, info = stored_epoch(keystore, current)
    if not _send(session, message, info):
        caps = _signed_caps(session)
        now = device_epoch(caps)
        if now is None or now >= current:
            # Another host got there first, or (no epoch in CAPS) `replayed` is all the
            # device says: its epoch is not below this one.
            result.update(status=CURRENT, after=now, caps=caps)
            return result
        if fleet_signer is None:
            raise EdgekitError(
                f"device {caps.get(C.K_DEVICE_ID)} refused KEY_EPOCH {current} as replayed "
                f"while it runs epoch {now} (a power cut while it stored an epoch): run "
                "`edgekit keys deliver PORT`, which signs the epoch again with the fleet key")
        message, info = resign(keystore, info, fleet_signer())
        result["resigned"] = True
        if not _send(session, message, info):
            raise EdgekitError(f"device {caps.get(C.K_DEVICE_ID)} refused a freshly signed "
                               f"KEY_EPOCH {current} as replayed: its fleet counter is ahead "
                               "of this key store's; check the host clock")
    caps = _signed_caps(session)        # read back what the device now runs
    after = device_epoch(caps)
    if after is not None and after != current:
        raise EdgekitError(f"device {caps.get(C.K_DEVICE_ID)} acknowledged KEY_EPOCH {current} "
                           f"but reports epoch {after}: run the command again")
    result.update(status=DELIVERED, after=after, caps=caps)
    return result


def _signed_caps(session):
    msg = session.hello()
    if msg.role != C.ROLE_DEVICE:
        raise ProtocolError("the device's CAPS is not signed by its certified key")
    return msg.payload


def _send(session, message, info):
    """True once the device acknowledged; False when it answered `replayed`."""
    try:
        answer = session.exchange(info["seq"], message, expect=C.ACK)
    except ProtocolError as exc:
        if exc.code == C.E_REPLAYED:
            return False
        raise ProtocolError(f"KEY_EPOCH {info['epoch']}: {exc}", exc.code) from None
    if answer.payload.get(C.K_EPOCH) != info["epoch"]:
        raise ProtocolError(f"the device acknowledged epoch {answer.payload.get(C.K_EPOCH)!r} "
                            f"instead of {info['epoch']}")
    return True


class LazySigner:
    """The fleet signer, decrypted once on first use (one prompt for a whole tray)."""

    def __init__(self, keystore, read_passphrase):
        self._keystore = keystore
        self._read = read_passphrase
        self._signer = None
        self._lock = threading.Lock()

    def __call__(self):
        with self._lock:
            if self._signer is None:
                self._signer = self._keystore.signer(C.ROLE_FLEET, self._read())
            return self._signer
