# Which public keys a device may install as trust anchors or hold as its own key
# (protocol/SPEC.md, "Weak keys"): used by provisioning (provision.py) and KEY_EPOCH
# (services.key_epoch). Its own module, imported only there: a provisioned device that never
# applies an epoch holds none of it (the heap is tight on a 110 KB ESP32), and one that does
# imports this, not the whole provisioning responder. ed25519.verify's cheap per-frame
# refusal of small-order points stays in ed25519.
import catalog as C
import ed25519
from agent import refuse


def _small_order(x, y):
    """True if [8](x, y) is the identity: three projective doublings (dbl-2008-bbjlp,
    a = -1; complete on this curve, so no exceptional inputs)."""
    p = ed25519._P
    X, Y, Z = x, y, 1
    for _ in range(3):
        b = (X + Y) * (X + Y) % p
        c = X * X % p
        d = Y * Y % p
        f = d - c                 # E + D with E = a C = -C
        j = f - 2 * (Z * Z % p)
        X, Y, Z = (b - c - d) * j % p, f * (-c - d) % p, f * j % p
    return X == 0 and Y == Z


def check_public(pub):
    """Raise ValueError naming the reason unless `pub` may be a trust anchor or a device key:
    32 bytes, canonical (y < p, and no sign bit on x = 0), a curve point, not of small order.
    Costs a decode (one square root) and three doublings: done when a key is installed, not
    per frame (ed25519.verify itself refuses small-order encodings by comparing y values)."""
    if not isinstance(pub, (bytes, bytearray, memoryview)) or len(pub) != 32:
        raise ValueError("public key must be 32 bytes")
    pub = bytes(pub)
    n = int.from_bytes(pub, "little")
    if n & ed25519._MASK255 >= ed25519._P:
        raise ValueError("public key is not canonical (y >= p)")
    point = ed25519._decode(pub)
    if point is None:
        raise ValueError("public key is not a point of the curve")
    if point[0] == 0 and n >> 255:
        raise ValueError("public key is not canonical (x = 0 with the sign bit set)")
    if _small_order(point[0], point[1]):
        raise ValueError("public key has small order (a torsion point, [8]A = identity)")


def check_anchor_keys(anchors, device_pub=None):
    """Refuse (bad_request) trust anchors no device may hold: each key must pass
    check_public (a small-order key verifies forged signatures), and no key may
    serve two roles, nor be the device's own (its signatures would pass as a fleet,
    firmware or operator's)."""
    seen = {}
    if device_pub is not None:
        seen[bytes(device_pub)] = "device"
    for role in (C.ROLE_FLEET, C.ROLE_FIRMWARE, C.ROLE_OPERATOR):
        for i, key in enumerate(anchors.get(role, ())):
            try:
                check_public(key)
            except ValueError as exc:
                refuse(C.E_BAD_REQUEST, "%s key %d of %d: %s; trust only keys made by "
                       "edgekit keys" % (role, i + 1, len(anchors[role]), exc))
            other = seen.get(key)
            if other is not None and other != role:
                refuse(C.E_BAD_REQUEST, "one key is both the %s and the %s key: each role "
                       "needs its own key" % (other, role))
            seen[key] = role
