# Which public keys a device may install as trust anchors (protocol/SPEC.md, "Weak keys"):
# used by PROV_COMMIT (provision.py) and KEY_EPOCH (services.key_epoch). Its own module so a
# provisioned device applying an epoch imports ~1 KB, not the whole provisioning responder.
import catalog as C
import ed25519
from agent import refuse


def check_anchor_keys(anchors, device_pub=None):
    """Refuse (bad_request) trust anchors no device may hold: each key must pass
    ed25519.check_public (a small-order key verifies forged signatures), and no key may
    serve two roles, nor be the device's own (its signatures would pass as a fleet,
    firmware or operator's)."""
    seen = {}
    if device_pub is not None:
        seen[bytes(device_pub)] = "device"
    for role in (C.ROLE_FLEET, C.ROLE_FIRMWARE, C.ROLE_OPERATOR):
        for i, key in enumerate(anchors.get(role, ())):
            try:
                ed25519.check_public(key)
            except ValueError as exc:
                refuse(C.E_BAD_REQUEST, "%s key %d of %d: %s; trust only keys made by "
                       "edgekit keys" % (role, i + 1, len(anchors[role]), exc))
            other = seen.get(key)
            if other is not None and other != role:
                refuse(C.E_BAD_REQUEST, "one key is both the %s and the %s key: each role "
                       "needs its own key" % (other, role))
            seen[key] = role
