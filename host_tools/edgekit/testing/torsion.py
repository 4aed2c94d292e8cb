"""Small-order Ed25519 points for tests, derived by plain affine arithmetic (independent of
edgekit.keys.pointcheck and firmware/crypto/ed25519.py, which the tests check against it).

TORSION: the 8 points of order dividing 8, as [L]Q for a Q with an order-8 component.
CANONICAL: their 8 canonical encodings. NON_CANONICAL: the 6 other 32-byte strings a
ref10-style decoder reads as one of them (x = 0 with the sign bit; y = p or p + 1).
"""
P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
D = -121665 * pow(121666, -1, P) % P
IDENTITY = (0, 1)


def add(a, b):
    (x1, y1), (x2, y2) = a, b
    t = D * x1 * x2 * y1 * y2 % P
    return ((x1 * y2 + x2 * y1) * pow(1 + t, -1, P) % P,
            (y1 * y2 + x1 * x2) * pow(1 - t, -1, P) % P)


def mul(n, a):
    out = IDENTITY
    while n:
        if n & 1:
            out = add(out, a)
        a = add(a, a)
        n >>= 1
    return out


def x_for(y):
    """An x with (x, y) on the curve, or None (p = 5 mod 8: one exponentiation)."""
    x2 = (y * y - 1) * pow(D * y * y + 1, -1, P) % P
    x = pow(x2, (P + 3) // 8, P)
    if x * x % P != x2:
        x = x * pow(2, (P - 1) // 4, P) % P
    return x if x * x % P == x2 else None


def raw(y, sign=0):
    """Any 255-bit y with a sign bit, canonical or not: what a hostile peer can send."""
    return (y | sign << 255).to_bytes(32, "little")


def enc(point):
    return raw(point[1], point[0] & 1)


def torsion_points():
    for y in range(2, 100):
        x = x_for(y)
        if x is not None:
            t = mul(L, (x, y))
            if mul(4, t) != IDENTITY:
                return [mul(i, t) for i in range(8)]
    raise AssertionError("no point with an order-8 component among small y")


def encodings(point):
    """Every 32-byte string a ref10-style decoder reads as `point`, canonical first."""
    x, y = point
    out = [enc(point)]
    for yy in (y, y + P):
        for sign in (0, 1):
            if yy < 2**255 and (sign == x & 1 or x == 0) and raw(yy, sign) not in out:
                out.append(raw(yy, sign))
    return out


TORSION = torsion_points()
CANONICAL = [enc(t) for t in TORSION]
NON_CANONICAL = [e for t in TORSION for e in encodings(t)[1:]]
