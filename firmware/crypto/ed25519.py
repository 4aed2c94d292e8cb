# Ed25519 (RFC 8032) for devices, in pure MicroPython: sign with the device key, verify
# operator, firmware and fleet signatures. Public API: public_key(seed32), sign(seed32, msg),
# verify(public_key, msg, signature) -> bool, and sign_parts/verify_parts, the same over a
# message given as a sequence of bytes-like parts. protocol/SPEC.md "Device Ed25519" states
# the verification rules: OpenSSL's, minus weak keys and small-order R (the full weak-key
# check for keys being installed is trust.check_public, kept out of this always-resident
# module).
#
# Field elements are MicroPython ints (bignums on every port). What costs time in the VM is
# the number of bignum operations, and a reduction costs two multiplications, so:
# - reduce modulo 2p (2**256 - 38, a normalised divisor: measurably faster than p) and only
#   after products; sums and differences stay unreduced (or negative) until the next product;
#   canonical values (mod p) are made only to encode or compare;
# - points live in extended coordinates (HWCD 2008, a = -1), with the "completed" (P1P1)
#   form between steps so a doubling that is not followed by an addition never computes T
#   (ref10's representation choices); doubling uses the dedicated 4-square formula;
# - verify computes [S]B - [k]A in one pass (Straus): k in width-5 NAF over a table of 8 odd
#   multiples of -A, S by a 4-tooth comb over the fixed table below, sharing the doublings;
# - sign and public_key use the same comb: 63 doublings per fixed-base multiplication;
# - inversion and square root are addition chains (254 squarings): 0.3 ms against 0.5 ms
#   for pow() in the unix VM.
# Not constant time: sign skips all-zero comb columns of the secret scalars and bignum
# operations take value-dependent time. Fine where an attacker cannot time many signatures
# finely; a device key that must resist that belongs in a secure element.
from sha512 import Sha512, sha512

_P = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFED  # 2**255 - 19
_M = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFDA  # 2p: working modulus
_L = 0x1000000000000000000000000000000014DEF9DEA2F79CD65812631A5CF5D3ED  # group order
_D = 37095705934669439343138083508754565189542113879843219016388785533085940283555
_D2 = 16295367250680780974490674513165176452449235426866156013048779062215315747161  # 2d
_SQRT_M1 = 19681161376707505956807079304988542015446066515923890162744021073123829784752
_MASK255 = (1 << 255) - 1
_BYTES_LIKE = (bytes, bytearray, memoryview)

# Comb table: entry j - 1 (j = 1..15) is sum of 2**(64 t) B over the bits t set in j, as
# affine (y + x, y - x, 2 d x y) mod p, so adding it costs 7 products. 15 points, 1440 bytes
# encoded; tests/firmware/test_ed25519.py derives it independently and compares.
_COMB = (
    (0x07cf9d3a33d4ba65270b4898643d42c2cf932dc6fb8c0e192fbc93c6f58c3b85,
     0x44fd2f9298f81267a5c18434688f8a09fd399f05d140beb39d103905d740913e,
     0x6f117b689f0c65a85a1b7dcbdd43598c26d9e823ccaac49eabc91205877aaa68),
    (0x654878cba97cc9fbb1b73bbcdabc06e5548991878faa60f1cd2a65e777d1f515,
     0x2102fdba2b20d65009207a1d717af1b95397da89e575f51b51138ec78df6b0fe,
     0x0ad725db29ecb2ba3a1af517aa7da41536bca7681251ad29969ee405055ce6a1),
    (0x26ead8e64813cf2b3e14aad0fe45e44c8793342b66480e600055c585601e59e8,
     0x0975b5970fc12f2fcd1972ec881342f62dd86fc567d31cd7cb75b8b69c8462a4,
     0x534670479df6c5ea333790d0aa7367da04bf9d8152f1ba6e63cf2303da5ba743),
    (0x2b5449e58eb3bbaa2b1e583b0810c5db29b743e8148be884583b04bfacad8ea2,
     0x1304e9e71627d55100c3e53145747299f7ea38548ebda0b85f3a7562eb3dbe47,
     0x4468de2d7c2dd693da0fe1fff979c60a3c1bab3f8b48dd0b789814d26adc9cfe),
    (0x26a13664d0543d4df551be51c67bb198e71ffd60d0b20ef72118278de3bc6748,
     0x49d76bba7942742edfea3ad4acf4f0f1855225506cd8952929522d3b13a339ee,
     0x4e1fafe3a8fcedc2247d576da7adb185191d3946c351299a14fa42338d56e61d),
    (0x4e559a0f0fc5bba4519960d2d321a8283cddbcb13b8d87e315e7053d236a044c,
     0x727021d35f87530cc169454b0c02eb1b95dcdc0a039c3b5ffe00e8769c12701c,
     0x64fcb73007bbc01dfe6edb5c60a69adedf45efaab2900d36a571040727df241e),
    (0x6f34c66d6fd086ef8850b78fc442d65fef786575171a98fc38ef58cc6fd390ca,
     0x0b598b8e8b849f6dd7bd8096ce34981d0791ffb24307b72793f3cbb43898dc04,
     0x412128b0b1ac66c80a9bc046c00b594081114607b529ce2a11cfc18a0cc2f689),
    (0x7da0b8f68d7e7daba7ebf3be95dbd7c697a05cf41b38a436a66dcc9dc80c1ac0,
     0x46115aba1d4dc0b34cd1eb505cdfa8cba2649f30aafda9e8ef782014385675a6,
     0x5a5f887e83674b4b03cc6021feb259601dac6f7321119e9bd40f1953c3b5da76),
    (0x45a02890607f15c0d7e67a47b82f4e99815eb0dbcc68df400a8d60180ca2c1f4,
     0x4013f03d6ad351ba4b39e15e0150a74d8b694a1101cfe11efef366d1fd41f184,
     0x482255c1d9f06e4f534e9ad8febce87436b994fd224ae646bd0282dc6ee065cc),
    (0x4e8593b0bc655462383fea286a29c47790367544ca8afebb3c03eacf71cef800,
     0x6bb91a497b9b794456b0d29d7b8b13a3ba2a4aa929c4f20d12de114aa3e5638c,
     0x20cf7d79b0ebe39b50ab6ce8edab529eb13ef9cd9263c4452a49e646c5e7d206),
    (0x7c1188539f570886373bb9c898bc21703cde029144000b60cbd28f4e8ae75c48,
     0x023562378899469d098be61c357e1d1df50eb90fcba951ce7db4939df0fe7dca,
     0x38d20188d106148379f50a03fc99de672f470a943c778e0520f6effae15a4c03),
    (0x043eedd45e1f4deeb7ba0f59a75d586c0b650d05e2aeb29023e811ad0e6315df,
     0x173c4fa94f45073e258fdbfd7041f802c651b919f3afd20cf6c147f2c7073217,
     0x1e2a7024993cc472d9b0514ca29552b25b7e78063373562d3d71ea60928df9c4),
    (0x5fcb43ee06225b26a0cae62b17d2407f24b7bc7d92ec0803601a0fbcd45c811f,
     0x044649f411b2e77397deccba52401c870d8db37605631b75310509b93509fba4,
     0x0c8a1bfa5cc0e58f338e2f557016dcea1b7f9026cc36628c0c0d24ad9598215f),
    (0x6b857c7efcc3e6caae710c171ce56c633d2f7a591263cb458de703b5681d104c,
     0x09de2bf5dd418acaa751ab1d4733ba417e9fbeac3c400fc479d256b48b2801c0,
     0x5b466e2ac3b242cae49e61261d66034d5ebaea34f1e37ba23bf10ff3eff0687f),
    (0x09952a563bc8ffc25a2ba76f71f8c89a79df5c7560811a8b137eeb6747fbb842,
     0x409b4adce5c6cf2fd4ebeb1b0664e3a596b5c6fa5f93c226a2a8cb4bdc7ef83c,
     0x69b968a704657d64fb22faa25949ff2f89299305a5f505b444d53db9834350c4),
)


def _check_bytes(value, size, what):
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise TypeError("ed25519 %s must be bytes, got %s" % (what, type(value).__name__))
    if len(value) != size:
        raise ValueError("ed25519 %s must be %d bytes, got %d: pass the raw %d-byte value"
                         % (what, size, len(value), size))


def _pow_2_250_1(z):
    """(z**(2**250 - 1), z**11) mod 2p, the shared part of inversion and square root
    (the ref10 addition chain: 249 squarings, 11 products)."""
    m = _M
    z2 = z * z % m
    t = z2 * z2 % m
    z9 = t * t % m * z % m
    z11 = z9 * z2 % m
    t = z11 * z11 % m * z9 % m            # 2**5 - 1
    a = t
    for _ in range(5):
        t = t * t % m
    t = t * a % m                         # 2**10 - 1
    b = t
    for _ in range(10):
        t = t * t % m
    t = t * b % m                         # 2**20 - 1
    a = t
    for _ in range(20):
        t = t * t % m
    t = t * a % m                         # 2**40 - 1
    for _ in range(10):
        t = t * t % m
    t = t * b % m                         # 2**50 - 1
    b = t
    for _ in range(50):
        t = t * t % m
    t = t * b % m                         # 2**100 - 1
    a = t
    for _ in range(100):
        t = t * t % m
    t = t * a % m                         # 2**200 - 1
    for _ in range(50):
        t = t * t % m
    return t * b % m, z11                 # 2**250 - 1


def _invert(z):
    t, z11 = _pow_2_250_1(z)
    for _ in range(5):
        t = t * t % _M
    return t * z11 % _P                   # z**(p - 2)


def _decode(b):
    """(x, y) of the point encoded in 32 bytes, or None if it does not decode.

    As OpenSSL (ref10 ge_frombytes_vartime): y is read as 255 bits and used modulo p (a
    non-canonical y >= p is accepted), and x = 0 with the sign bit set decodes as x = 0."""
    p = _P
    y = int.from_bytes(b, "little")
    sign = y >> 255
    y = (y & _MASK255) % p
    yy = y * y % p
    u = yy - 1
    v = yy * _D + 1
    v3 = v * v % p * v % p
    uv3 = u * v3 % p
    uv7 = uv3 * v3 % p * v % p
    # x = u v**3 (u v**7)**((p - 5) / 8) (RFC 8032 5.1.3): one chain, no inversion.
    t, _ = _pow_2_250_1(uv7)
    x = t * t % p
    x = x * x % p * uv7 % p * uv3 % p
    vxx = v * x % p * x % p
    if vxx != u % p:
        if vxx != -u % p:
            return None
        x = x * _SQRT_M1 % p
    if (x & 1) != sign:
        x = -x % p
    return x, y


def _encode(X, Y, Z):
    zi = _invert(Z)
    x = X * zi % _P
    y = Y * zi % _P
    return (y | (x & 1) << 255).to_bytes(32, "little")


def _comb_column(nb, i):
    """Comb index of column i (0..63) of the 256-bit little-endian scalar nb: bit i of each
    64-bit quarter, quarter t giving bit t of the index."""
    j = i >> 3
    s = i & 7
    return ((nb[j] >> s) & 1 | ((nb[j + 8] >> s) & 1) << 1
            | ((nb[j + 16] >> s) & 1) << 2 | ((nb[j + 24] >> s) & 1) << 3)


def _odd_multiples(x1, y1):
    """P, 3P, ..., 15P for P = (x1, y1) affine, each as (Y + X, Y - X, 2 Z, 2 d T)."""
    m = _M
    t1 = x1 * y1 % m
    # 2P by the doubling formula with Z = 1, converted to the same cached form.
    xx = x1 * x1 % m
    yy = y1 * y1 % m
    s = x1 + y1
    y = yy + xx
    z = yy - xx
    x = s * s % m - y
    t = 2 - z
    X = x * t % m
    Y = y * z % m
    Z = z * t % m
    ypx2, ymx2, z22, t2d2 = Y + X, Y - X, Z + Z, x * y % m * _D2 % m
    X, Y, Z, T = x1, y1, 1, t1
    table = [(y1 + x1, y1 - x1, 2, t1 * _D2 % m)]
    for _ in range(7):
        a = (Y - X) * ymx2 % m
        b = (Y + X) * ypx2 % m
        c = T * t2d2 % m
        d = Z * z22 % m
        x = b - a
        y = b + a
        z = d + c
        t = d - c
        X = x * t % m
        Y = y * z % m
        Z = z * t % m
        T = x * y % m
        table.append((Y + X, Y - X, Z + Z, T * _D2 % m))
    return table


def _wnaf5(nb):
    """Width-5 NAF of the little-endian scalar nb (< 2**253) as 256 signed digits, odd in
    -15..15, each stored as its low byte (so 0 = no digit, >= 128 = negative)."""
    naf = bytearray(256)
    pos = 0
    carry = 0
    n = len(nb)
    while pos < 256:
        j = pos >> 3
        window = nb[j] if j < n else 0
        if j + 1 < n:
            window |= nb[j + 1] << 8
        window = ((window >> (pos & 7)) & 31) + carry
        if not window & 1:
            pos += 1
            continue
        if window < 16:
            carry = 0
            naf[pos] = window
        else:
            carry = 1
            naf[pos] = window + 224   # window - 32, as a byte
        pos += 5
    return naf


def _mul(s, k=0, x1=0, y1=1):
    """[s]B - [k]P as projective (X, Y, Z), for 0 <= s < 2**256, 0 <= k < 2**253 and
    P = (x1, y1) affine. s goes by comb columns (63 doublings, <= 64 additions of _COMB);
    k, if any, in width-5 NAF over P's odd multiples along the same doublings (Straus)."""
    m = _M
    comb = _COMB
    sb = s.to_bytes(32, "little")
    naf = None
    top = 63
    if k:
        # Subtracting [k]P is adding [k](-P): the NAF table is built on -P.
        table = _odd_multiples(-x1 % _P, y1)
        naf = _wnaf5(k.to_bytes(32, "little"))
        top = 255
        while top > 63 and not naf[top]:
            top -= 1
    # The state is a completed point (x, y, z, t): X = x t, Y = y z, Z = z t, T = x y.
    x = 0
    y = z = t = 1
    for i in range(top, -1, -1):
        if i != top:   # the first step would only double the identity
            X = x * t % m
            Y = y * z % m
            Z = z * t % m
            xx = X * X % m
            yy = Y * Y % m
            zz = Z * Z % m
            u = X + Y
            y = yy + xx
            z = yy - xx
            x = u * u % m - y
            t = zz + zz - z
        v = naf[i] if naf else 0
        if v:
            X = x * t % m
            Y = y * z % m
            Z = z * t % m
            T = x * y % m
            if v < 128:
                ypx, ymx, z2, t2d = table[v >> 1]
            else:
                ymx, ypx, z2, t2d = table[(256 - v) >> 1]
                t2d = -t2d
            a = (Y - X) * ymx % m
            b = (Y + X) * ypx % m
            c = T * t2d % m
            d = Z * z2 % m
            x = b - a
            y = b + a
            z = d + c
            t = d - c
        if i < 64:
            j = _comb_column(sb, i)
            if j:
                ypx, ymx, xy2d = comb[j - 1]
                X = x * t % m
                Y = y * z % m
                Z = z * t % m
                a = (Y - X) * ymx % m
                b = (Y + X) * ypx % m
                c = x * y % m * xy2d % m
                d = Z + Z
                x = b - a
                y = b + a
                z = d + c
                t = d - c
    return x * t % m, y * z % m, z * t % m


def _expand(seed):
    _check_bytes(seed, 32, "seed")
    h = sha512(seed)
    a = int.from_bytes(h[:32], "little") & ((1 << 254) - 8) | (1 << 254)
    return a, h[32:]


def _hash_mod_l(*parts):
    """SHA-512 of the parts as an integer mod L; the last part is a tuple of message parts."""
    h = Sha512()
    for part in parts[:-1]:
        h.update(part)
    for part in parts[-1]:
        h.update(part)
    return int.from_bytes(h.digest(), "little") % _L


def public_key(seed32):
    """The 32-byte public key of a 32-byte private seed (RFC 8032 5.1.5)."""
    a, _ = _expand(seed32)
    return _encode(*_mul(a))


def sign(seed32, msg):
    """The 64-byte signature R || S of msg under the 32-byte private seed (RFC 8032 5.1.6)."""
    if not isinstance(msg, _BYTES_LIKE):
        raise TypeError("ed25519 message must be bytes, got %s" % type(msg).__name__)
    return sign_parts(seed32, (msg,))


def sign_parts(seed32, parts, public_key=None):
    """sign() of the concatenation of the bytes-like `parts`, which is never built: Ed25519
    hashes the message twice (r = H(prefix || M), k = H(R || A || M)), so a message made of
    headers and a large payload is signed without copying it. `public_key`, when the
    caller holds it, saves computing it again (one scalar multiplication); it must be the
    seed's own key."""
    a, prefix = _expand(seed32)
    for part in parts:
        if not isinstance(part, _BYTES_LIKE):
            raise TypeError("ed25519 message parts must be bytes, got %s"
                            % type(part).__name__)
    if public_key is None:
        pk = _encode(*_mul(a))
    else:
        _check_bytes(public_key, 32, "public key")
        pk = bytes(public_key)
    r = _hash_mod_l(prefix, parts)
    rb = _encode(*_mul(r))
    k = _hash_mod_l(rb, pk, parts)
    return rb + ((r + k * a) % _L).to_bytes(32, "little")


def verify(public_key, msg, signature):
    """True if signature is valid for msg under public_key; False for anything else,
    including malformed input of any type (it never raises).

    Cofactorless [S]B == R + [k]A with S < L, as OpenSSL, except that a small-order A or R
    and a non-canonical A are refused; see protocol/SPEC.md."""
    if not isinstance(msg, _BYTES_LIKE):
        return False
    return verify_parts(public_key, (msg,), signature)


def verify_parts(public_key, parts, signature):
    """verify() of the concatenation of the bytes-like `parts` (never built, as in
    sign_parts)."""
    ok = _BYTES_LIKE
    if not (isinstance(public_key, ok) and isinstance(signature, ok)):
        return False
    if not isinstance(parts, (tuple, list)):
        return False
    for part in parts:
        if not isinstance(part, ok):
            return False
    if len(public_key) != 32 or len(signature) != 64:
        return False
    signature = bytes(signature)
    public_key = bytes(public_key)
    s = int.from_bytes(signature[32:], "little")
    if s >= _L:
        return False
    rb = signature[:32]
    # Stricter than OpenSSL (protocol/SPEC.md): a small-order A or R, or a non-canonical A,
    # never verifies, so a weak key that slipped into a keyring forges nothing. The y of the
    # 8 small-order points are 0, 1, p - 1, y8 and p - y8 (each y carries a point and its
    # negation): refusing those y whatever the sign bit, and y >= p for A, covers all 14
    # small-order encodings. Written inline with no new module globals: a provisioned
    # ESP32's heap is tight enough that 0.5 KB more resident here failed a HIL test. The
    # low byte screens almost every A and R without allocating; trust.check_public does the
    # full [8]A test when a key is installed. tests/firmware/test_point_check.py checks it.
    for b in (public_key, rb):
        if b[0] in b"\x01\xec\x00\x26\xc7":         # low byte of a small-order y
            y = int.from_bytes(b, "little") & _MASK255
            y8 = 0x05FC536D880238B13933C6D305ACDFD5F098EFF289F4C345B027B2C28F95E826
            if y in (0, 1, _P - 1, y8, _P - y8):
                return False
    if public_key[31] & 0x7F == 0x7F and int.from_bytes(public_key, "little") & _MASK255 >= _P:
        return False                        # non-canonical A: y >= p needs bits 248..254
    point = _decode(public_key)
    if point is None:
        return False
    k = _hash_mod_l(rb, public_key, parts)
    # Compare encodings, as OpenSSL does: a non-canonical or undecodable R never matches.
    return _encode(*_mul(s, k, point[0], point[1])) == rb
