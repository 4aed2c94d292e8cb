"""Which 32-byte strings may be trusted as an Ed25519 public key (SPEC 5, "Weak keys").

`cryptography` (OpenSSL) loads and verifies under any decodable point, small-order ones
included: under the identity key, R = identity with S = 0 verifies for every message. So
every place that turns bytes into a key someone will trust (the key store, a KEY_EPOCH,
PROV_COMMIT's anchors, a device's PROV_KEY) asks `problem()` first. Devices apply the same
rule (firmware/crypto/ed25519.py check_public).

Refused: not 32 bytes; non-canonical (y >= p, or x = 0 with the sign bit set: RFC 8032
5.1.3 says such strings do not decode); not on the curve; small order ([8]A = identity,
the 8 torsion points). Mixed-order keys (a full-order point plus a torsion part) pass: no
key generator makes one, and cofactorless verification gives them no forgery.

This is a validity predicate, not a crypto primitive: plain affine arithmetic with Python
ints, on public data, never on a secret. tests/host/test_weak_keys.py checks it against
every encoding of every torsion point and against keys made by `cryptography`.
"""
from edgekit.errors import EdgekitError

P = 2**255 - 19
D = -121665 * pow(121666, -1, P) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)
ROLES = ("fleet", "firmware", "operator")


class WeakKeyError(EdgekitError, ValueError):
    """A public key no one may trust; the message says which and why."""


def decode(pub: bytes):
    """(x, y) of the point `pub` encodes (RFC 8032 5.1.3), or a string saying why not."""
    n = int.from_bytes(pub, "little")
    y, sign = n & ((1 << 255) - 1), n >> 255
    if y >= P:
        return "not canonical (y >= p)"
    u, v = (y * y - 1) % P, (D * y * y + 1) % P
    x2 = u * pow(v, -1, P) % P
    x = pow(x2, (P + 3) // 8, P)
    if x * x % P != x2:
        x = x * SQRT_M1 % P
    if x * x % P != x2:
        return "not a point of the curve"
    if x == 0 and sign:
        return "not canonical (x = 0 with the sign bit set)"
    if x & 1 != sign:
        x = P - x
    return x, y


def _add(a, b):
    (x1, y1), (x2, y2) = a, b
    t = D * x1 * x2 * y1 * y2 % P
    return ((x1 * y2 + x2 * y1) * pow(1 + t, -1, P) % P,
            (y1 * y2 + x1 * x2) * pow(1 - t, -1, P) % P)


def problem(pub) -> str | None:
    """Why `pub` may not be trusted as a public key, or None if it may."""
    if not isinstance(pub, (bytes, bytearray)) or len(pub) != 32:
        return "not a 32-byte public key"
    point = decode(bytes(pub))
    if isinstance(point, str):
        return point
    for _ in range(3):
        point = _add(point, point)
    if point == (0, 1):
        return "small order (a torsion point: it verifies forged signatures)"
    return None


def check_public(pub, what="public key"):
    """Raise WeakKeyError naming `what` unless `pub` may be trusted."""
    reason = problem(pub)
    if reason is not None:
        raise WeakKeyError(f"{what} is unusable: {reason}")


def check_roles(keys: dict, device=None, what="trust anchors"):
    """Every key in {role: [keys]} passes check_public, and no key serves two roles (nor is
    `device`, the device's own key): a device would take one role's signature for another's."""
    seen = {} if device is None else {bytes(device): "device"}
    for role in sorted(keys, key=lambda r: ROLES.index(r) if r in ROLES else len(ROLES)):
        for i, pub in enumerate(keys[role]):
            check_public(pub, f"{what}: {role} key {i + 1}")
            other = seen.setdefault(bytes(pub), role)
            if other != role:
                raise WeakKeyError(f"{what}: the same key is both the {other} and the {role} "
                                   "key; each role needs its own key")
