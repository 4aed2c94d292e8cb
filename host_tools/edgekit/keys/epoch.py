"""KEY_EPOCH: the fleet-root-signed statement of which operator/firmware keys devices trust.

SPEC 5: a device applies an epoch atomically and refuses one at or below its current epoch
(`replayed`). Each message carries the whole trust set rather than a delta, so a device that
missed epochs catches up from the latest one alone.
"""
import hashlib

from edgekit import catalog
from edgekit.keys import pointcheck

SENDER = "fleet"
ROTATED_ROLES = (catalog.ROLE_OPERATOR, catalog.ROLE_FIRMWARE)


def epoch_payload(epoch: int, anchors: dict, revoked, fleet_public: bytes = None) -> dict:
    """The payload map (CDDL `key-epoch`). `anchors` maps role -> [current, previous?] raw
    public keys. `revoked` lists every revoked operator/firmware kid so far: 9 bytes each,
    so decades of yearly rotations stay well under a frame. Weak keys, and a key given to two
    roles (the fleet root's, `fleet_public`, included), raise pointcheck.WeakKeyError, a
    ValueError: devices refuse such an epoch, so none is ever signed."""
    if not isinstance(epoch, int) or epoch < 1:
        raise ValueError(f"key epoch must be a positive integer, got {epoch!r}")
    trust = {}
    for role in ROTATED_ROLES:
        keys = [bytes(k) for k in anchors.get(role, ())]
        if not 1 <= len(keys) <= 2:
            # SPEC 5: at most two per role (current and previous) on a device.
            raise ValueError(f"{role} needs 1 or 2 trusted keys (current, previous), "
                             f"got {len(keys)}")
        trust[role] = keys
    roles = dict(trust)
    if fleet_public is not None:
        roles[catalog.ROLE_FLEET] = [bytes(fleet_public)]
    pointcheck.check_roles(roles, what=f"key epoch {epoch}")
    revoked = [bytes(k) for k in revoked]
    for keys in trust.values():
        if any(hashlib.sha256(k).digest()[:8] in revoked for k in keys):
            raise ValueError("a revoked key cannot stay among the trusted keys")
    return {
        catalog.K_EPOCH: epoch,
        catalog.K_ANCHORS: trust,
        catalog.K_REVOKED: revoked,
    }


def protected_header(fleet_signer, seq: int) -> dict:
    """SPEC 4.1 header of a KEY_EPOCH: alg, kid, type, seq, sender."""
    return {
        catalog.COSE_ALG: catalog.ALG_EDDSA,
        catalog.COSE_KID: bytes(fleet_signer.kid),
        catalog.HDR_TYPE: catalog.KEY_EPOCH,
        catalog.HDR_SEQ: int(seq),
        catalog.HDR_SENDER: SENDER,
    }


def build_key_epoch(fleet_signer, seq: int, epoch: int, anchors: dict, revoked) -> bytes:
    """The signed KEY_EPOCH body (COSE_Sign1, tag 18) ready for the link or a file."""
    if getattr(fleet_signer, "role", catalog.ROLE_FLEET) != catalog.ROLE_FLEET:
        raise ValueError(f"KEY_EPOCH must be signed by the fleet root, not {fleet_signer.role}")
    # Imported here so `edgekit keys list` works even where the protocol package is absent.
    from edgekit.protocol import cbor, cose
    payload = cbor.dumps(epoch_payload(epoch, anchors, revoked, fleet_signer.public_key_bytes))
    return cose.sign1(payload, fleet_signer, protected_header(fleet_signer, seq))


def open_key_epoch(message: bytes, fleet_public_key: bytes) -> dict:
    """Verify a KEY_EPOCH with the fleet key; return {epoch, anchors, revoked, seq, kid, sender}.

    Raises edgekit.protocol.cose.CoseError (bad shape or signature) or ValueError (not a
    KEY_EPOCH, malformed payload).
    """
    from edgekit.protocol import cbor, cose
    sign1 = cose.decode_sign1(message)
    payload = cbor.loads(sign1.verify(fleet_public_key))
    header = sign1.protected
    if header.get(catalog.HDR_TYPE) != catalog.KEY_EPOCH:
        raise ValueError("message is not a KEY_EPOCH")
    if not isinstance(payload, dict) or not isinstance(payload.get(catalog.K_EPOCH), int):
        raise ValueError("KEY_EPOCH payload lacks an integer epoch")
    anchors = payload.get(catalog.K_ANCHORS, {})
    if not isinstance(anchors, dict) or not all(
            role in ROTATED_ROLES and isinstance(keys, list) for role, keys in anchors.items()):
        raise ValueError("KEY_EPOCH anchors are not a map of operator/firmware key lists")
    # A fleet-signed epoch can still carry a weak key (the attack this check answers):
    # devices refuse it, and so does every host tool that reads it.
    pointcheck.check_roles(dict(anchors, **{catalog.ROLE_FLEET: [bytes(fleet_public_key)]}),
                           what=f"KEY_EPOCH {payload[catalog.K_EPOCH]}")
    return {
        "epoch": payload[catalog.K_EPOCH],
        "anchors": anchors,
        "revoked": payload.get(catalog.K_REVOKED, []),
        "seq": header.get(catalog.HDR_SEQ),
        "kid": header.get(catalog.COSE_KID),
        "sender": header.get(catalog.HDR_SENDER),
    }
