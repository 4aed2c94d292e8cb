"""firmware/crypto/ed25519.py in the real micropython, checked against `cryptography` (OpenSSL).

Every decision the device makes is compared with cryptography's on the same bytes; the
adversarial inputs (small-order keys, non-canonical encodings, mixed-order keys) are built
with the small affine Edwards helper below, itself checked against cryptography first.
"""
import hashlib
import json
import random

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from edgekit.testing import mp

# RFC 8032 section 7.1: (name, secret key, public key, message, signature), hex.
RFC8032_VECTORS = [
    ("TEST 1",
     "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
     "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
     "",
     "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e3970"
     "1cf9b46bd25bf5f0595bbe24655141438e7a100b"),
    ("TEST 2",
     "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
     "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
     "72",
     "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613"
     "d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"),
    ("TEST 3",
     "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
     "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
     "af82",
     "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760"
     "984dc6594a7c15e9716ed28dc027beceea1ec40a"),
    ("TEST 1024",
     "f5e5767cf153319517630f226876b86c8160cc583bc013744c6bf255f5cc0ee5",
     "278117fc144c72340f67d0f2316e8386ceffbf2b2428c9c51fef7c597f1d426e",
     "08b8b2b733424243760fe426a4b54908632110a66c2f6591eabd3345e3e4eb98fa6e264bf09efe12ee50f8f5"
     "4e9f77b1e355f6c50544e23fb1433ddf73be84d879de7c0046dc4996d9e773f4bc9efe5738829adb26c81b37"
     "c93a1b270b20329d658675fc6ea534e0810a4432826bf58c941efb65d57a338bbd2e26640f89ffbc1a858efc"
     "b8550ee3a5e1998bd177e93a7363c344fe6b199ee5d02e82d522c4feba15452f80288a821a579116ec6dad2b"
     "3b310da903401aa62100ab5d1a36553e06203b33890cc9b832f79ef80560ccb9a39ce767967ed628c6ad573c"
     "b116dbefefd75499da96bd68a8a97b928a8bbc103b6621fcde2beca1231d206be6cd9ec7aff6f6c94fcd7204"
     "ed3455c68c83f4a41da4af2b74ef5c53f1d8ac70bdcb7ed185ce81bd84359d44254d95629e9855a94a7c1958"
     "d1f8ada5d0532ed8a5aa3fb2d17ba70eb6248e594e1a2297acbbb39d502f1a8c6eb6f1ce22b3de1a1f40cc24"
     "554119a831a9aad6079cad88425de6bde1a9187ebb6092cf67bf2b13fd65f27088d78b7e883c8759d2c4f5c6"
     "5adb7553878ad575f9fad878e80a0c9ba63bcbcc2732e69485bbc9c90bfbd62481d9089beccf80cfe2df16a2"
     "cf65bd92dd597b0707e0917af48bbb75fed413d238f5555a7a569d80c3414a8d0859dc65a46128bab27af87a"
     "71314f318c782b23ebfe808b82b0ce26401d2e22f04d83d1255dc51addd3b75a2b1ae0784504df543af8969b"
     "e3ea7082ff7fc9888c144da2af58429ec96031dbcad3dad9af0dcbaaaf268cb8fcffead94f3c7ca495e056a9"
     "b47acdb751fb73e666c6c655ade8297297d07ad1ba5e43f1bca32301651339e22904cc8c42f58c30c04aafdb"
     "038dda0847dd988dcda6f3bfd15c4b4c4525004aa06eeff8ca61783aacec57fb3d1f92b0fe2fd1a85f672451"
     "7b65e614ad6808d6f6ee34dff7310fdc82aebfd904b01e1dc54b2927094b2db68d6f903b68401adebf5a7e08"
     "d78ff4ef5d63653a65040cf9bfd4aca7984a74d37145986780fc0b16ac451649de6188a7dbdf191f64b5fc5e"
     "2ab47b57f7f7276cd419c17a3ca8e1b939ae49e488acba6b965610b5480109c8b17b80e1b7b750dfc7598d5d"
     "5011fd2dcc5600a32ef5b52a1ecc820e308aa342721aac0943bf6686b64b2579376504ccc493d97e6aed3fb0"
     "f9cd71a43dd497f01f17c0e2cb3797aa2a2f256656168e6c496afc5fb93246f6b1116398a346f1a641f3b041"
     "e989f7914f90cc2c7fff357876e506b50d334ba77c225bc307ba537152f3f1610e4eafe595f6d9d90d11faa9"
     "33a15ef1369546868a7f3a45a96768d40fd9d03412c091c6315cf4fde7cb68606937380db2eaaa707b4c4185"
     "c32eddcdd306705e4dc1ffc872eeee475a64dfac86aba41c0618983f8741c5ef68d3a101e8a3b8cac60c905c"
     "15fc910840b94c00a0b9d0",
     "0aab4c900501b3e24d7cdf4663326a3a87df5e4843b2cbdb67cbf6e460fec350aa5371b1508f9f4528ecea23"
     "c436d94b5e8fcd4f681e30a6ac00a9704a188a03"),
    ("TEST SHA(abc)",
     "833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42",
     "ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf",
     "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23"
     "a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
     "dc2a4459e7369633a52b1bf277839a00201009a3efbf3ecb69bea2186c26b58909351fc9ac90b3ecfdfbc7c6"
     "6431e0303dca179c138ac17ad9bef1177331a704"),
]

# Working set of one verify must fit in this much free heap (ESP32 leaves ~110 KB to the
# whole app); the heap test measures the real figure and prints it.
VERIFY_HEAP_BUDGET = 12 * 1024

# --- test-only affine Edwards arithmetic, to build inputs cryptography cannot make --------
P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
D = -121665 * pow(121666, -1, P) % P
IDENTITY = (0, 1)


def pt_add(a, b):
    (x1, y1), (x2, y2) = a, b
    t = D * x1 * x2 * y1 * y2 % P
    return ((x1 * y2 + x2 * y1) * pow(1 + t, -1, P) % P,
            (y1 * y2 + x1 * x2) * pow(1 - t, -1, P) % P)


def pt_mul(n, a):
    out = IDENTITY
    while n:
        if n & 1:
            out = pt_add(out, a)
        a = pt_add(a, a)
        n >>= 1
    return out


def x_for(y, sign):
    """x with the given parity for y, or None if (y, x) is on no point of the curve."""
    u, v = (y * y - 1) % P, (D * y * y + 1) % P
    x2 = u * pow(v, -1, P) % P
    x = pow(x2, (P + 3) // 8, P)
    if x * x % P != x2:
        x = x * pow(2, (P - 1) // 4, P) % P
    if x * x % P != x2:
        return None
    return P - x if x and (x & 1) != sign else x


def enc(point):
    return (point[1] | (point[0] & 1) << 255).to_bytes(32, "little")


def raw(y, sign=0):
    """Any 255-bit y with a sign bit, canonical or not: what a hostile peer can send."""
    return (y | sign << 255).to_bytes(32, "little")


B = (x_for(4 * pow(5, -1, P) % P, 0), 4 * pow(5, -1, P) % P)


def clamp(seed):
    a = int.from_bytes(hashlib.sha512(seed).digest()[:32], "little")
    return a & ((1 << 254) - 8) | (1 << 254)


def k_of(rb, ab, msg):
    return int.from_bytes(hashlib.sha512(rb + ab + msg).digest(), "little") % L


def crypto_verify(pk, msg, sig):
    """cryptography's decision; a key it refuses to load counts as a rejection."""
    try:
        Ed25519PublicKey.from_public_bytes(pk).verify(sig, msg)
        return True
    except (InvalidSignature, ValueError):
        return False


def crypto_pk(seed):
    return Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes(
        Encoding.Raw, PublicFormat.Raw)


def torsion_points():
    """The 8 points of order dividing 8: [L]Q for a Q with a full order-8 component."""
    for y in range(2, 100):
        x = x_for(y, 0)
        if x is None:
            continue
        t = pt_mul(L, (x, y))
        if pt_mul(4, t) != IDENTITY:
            return [pt_mul(i, t) for i in range(8)]
    raise AssertionError("no point with an order-8 component among small y")


# --- device runner ------------------------------------------------------------------------
# Cases travel one per stdin line so a batch never has to fit the 110 KB heap at once.
DEVICE_VERIFY = r"""
import sys
from binascii import unhexlify as h
from ed25519 import verify
while True:
    line = sys.stdin.readline()
    if not line.strip():
        break
    pk, msg, sig = [h(f) for f in line.split(",")]
    try:
        print(verify(pk, msg, sig))
    except Exception as e:
        print("raised %s: %s" % (type(e).__name__, e))
"""


def device_verify(cases):
    """Device decisions for [(pk, msg, sig)] bytes, in one VM run."""
    lines = "".join("%s,%s,%s\n" % (pk.hex(), msg.hex(), sig.hex()) for pk, msg, sig in cases)
    out = mp.run(DEVICE_VERIFY, stdin=lines.encode()).split()
    assert len(out) == len(cases), out
    return [{"True": True, "False": False}.get(v, v) for v in out]


def test_affine_helper_agrees_with_cryptography():
    # The helper builds every adversarial input below; it must compute real keys first.
    rng = random.Random(7)
    for _ in range(3):
        seed = rng.randbytes(32)
        assert enc(pt_mul(clamp(seed), B)) == crypto_pk(seed)
    assert pt_mul(L, B) == IDENTITY
    assert len(set(torsion_points())) == 8


def test_rfc8032_section_7_1_vectors():
    for _, sk, pk, msg, sig in RFC8032_VECTORS:   # the vectors themselves, per OpenSSL
        assert crypto_pk(bytes.fromhex(sk)).hex() == pk
        assert crypto_verify(bytes.fromhex(pk), bytes.fromhex(msg), bytes.fromhex(sig))
    out = mp.run_json(r"""
import json
from binascii import hexlify, unhexlify as h
import ed25519
res = []
for name, sk, pk, msg, sig in json.loads(%r):
    res.append({"name": name,
                "pk": hexlify(ed25519.public_key(h(sk))).decode(),
                "sig": hexlify(ed25519.sign(h(sk), h(msg))).decode(),
                "verify": ed25519.verify(h(pk), h(msg), h(sig))})
print(json.dumps(res))
""" % json.dumps(RFC8032_VECTORS))
    for (name, _, pk, _, sig), got in zip(RFC8032_VECTORS, out):
        assert got == {"name": name, "pk": pk, "sig": sig, "verify": True}


def test_cryptography_signatures_verify_on_device_and_tampered_ones_do_not():
    rng = random.Random(2026)
    cases, tampered = [], []
    for i in range(32):
        seed = rng.randbytes(32)
        msg = rng.randbytes(1000 if i == 0 else rng.randrange(0, 300))
        key = Ed25519PrivateKey.from_private_bytes(seed)
        sig = key.sign(msg)
        pk = crypto_pk(seed)
        cases.append((pk, msg, sig))
        bad = bytearray(msg or b"\x00")
        bad[rng.randrange(len(bad))] ^= 1 << rng.randrange(8)
        tampered.append((pk, bytes(bad), sig))
    got = device_verify(cases + tampered)
    assert got[:32] == [True] * 32
    assert got[32:] == [False] * 32


def test_device_signatures_equal_cryptography_and_verify_there():
    rng = random.Random(8032)
    seeds = [rng.randbytes(32) for _ in range(32)]
    msgs = [rng.randbytes(rng.randrange(0, 300)) for _ in range(32)]
    out = mp.run(r"""
import sys
from binascii import hexlify, unhexlify as h
import ed25519
while True:
    line = sys.stdin.readline()
    if not line.strip():
        break
    seed, msg = [h(f) for f in line.split(",")]
    print(hexlify(ed25519.public_key(seed)).decode(),
          hexlify(ed25519.sign(seed, msg)).decode())
""", stdin="".join("%s,%s\n" % (s.hex(), m.hex()) for s, m in zip(seeds, msgs)).encode())
    rows = [line.split() for line in out.splitlines() if line.strip()]
    assert len(rows) == 32
    for seed, msg, (pk, sig) in zip(seeds, msgs, rows):
        assert pk == crypto_pk(seed).hex()
        # Ed25519 is deterministic: the very same bytes as OpenSSL's signature.
        assert sig == Ed25519PrivateKey.from_private_bytes(seed).sign(msg).hex()
        assert crypto_verify(bytes.fromhex(pk), msg, bytes.fromhex(sig))


def forged(ab, want, rng, tries=400):
    """(msg, sig) with R = [r]B and S = r, so [S]B - [k]A == R exactly when [k mod L]A is
    the identity; `want(k)` picks the message. For small-order keys A."""
    for _ in range(tries):
        msg = rng.randbytes(12)
        r = rng.randrange(1, L)
        rb = enc(pt_mul(r, B))
        if want(k_of(rb, ab, msg)):
            return msg, rb + r.to_bytes(32, "little")
    raise AssertionError("no message found for the wanted k")


class UniqueNames(dict):
    """A case table where reusing a name is an error instead of silently replacing a case."""

    def __setitem__(self, name, case):
        assert name not in self, f"duplicate case name {name!r}"
        super().__setitem__(name, case)


def adversarial_cases():
    rng = random.Random(25519)
    seed = rng.randbytes(32)
    key = Ed25519PrivateKey.from_private_bytes(seed)
    pk = crypto_pk(seed)
    msg = b"open valve 3"
    sig = key.sign(msg)
    s = int.from_bytes(sig[32:], "little")
    cases = UniqueNames({
        "valid": (pk, msg, sig),
        "tampered message": (pk, b"open valve 4", sig),
        "tampered R": (pk, msg, bytes([sig[0] ^ 4]) + sig[1:]),
        "tampered S": (pk, msg, sig[:32] + bytes([sig[32] ^ 1]) + sig[33:]),
        "S + L (non-canonical)": (pk, msg, sig[:32] + (s + L).to_bytes(32, "little")),
        "S = L": (pk, msg, sig[:32] + L.to_bytes(32, "little")),
        "S = 2**256 - 1": (pk, msg, sig[:32] + b"\xff" * 32),
        "wrong key": (crypto_pk(rng.randbytes(32)), msg, sig),
        "all-zero signature": (pk, msg, bytes(64)),
        "all-zero key": (bytes(32), msg, sig),
    })
    # Keys that do not decode: y >= p, and y with no x (y**2 - 1)/(d y**2 + 1) non-square.
    no_x = next(y for y in range(2, 100) if x_for(y, 0) is None)
    cases["key y = p + %d (>= p, no point)" % no_x] = (raw(P + no_x), msg, sig)
    cases["key y = %d (not on the curve)" % no_x] = (raw(no_x), msg, sig)
    cases["key y = 2**255 - 1 (p + 18, decodes)"] = (raw(2**255 - 1, 1), msg, sig)
    # R that cannot match: the identity is R = [0]B - [k]A for A the identity and S = 0.
    ident = raw(1)
    cases["identity key, S = 0, canonical R"] = (ident, msg, ident + bytes(32))
    cases["identity key, S = 0, R y = p + 1"] = (ident, msg, raw(P + 1) + bytes(32))
    cases["identity key, S = 0, R x = -0"] = (ident, msg, raw(1, 1) + bytes(32))
    # Small-order keys (canonical and not): valid exactly when [k]A is the identity.
    torsion = torsion_points()
    keys = [(enc(t), t) for t in torsion]
    keys += [(raw(1, 1), IDENTITY), (raw(P + 1), IDENTITY), (raw(P, 0), x_y(torsion, 0))]
    for ab, point in keys:
        order = next(n for n in (1, 2, 4, 8) if pt_mul(n, point) == IDENTITY)
        name = "order-%d key %s..%s" % (order, ab.hex()[:8], ab.hex()[-2:])
        m, sg = forged(ab, lambda k: pt_mul(k, point) == IDENTITY, rng)
        cases[name + ", [k]A = 0"] = (ab, m, sg)
        if order > 1:
            m, sg = forged(ab, lambda k: pt_mul(k, point) != IDENTITY, rng)
            cases[name + ", [k]A != 0"] = (ab, m, sg)
    # Mixed-order key A + T8 signed by the holder of A's scalar: cofactorless verification
    # accepts only when (k mod L) kills the torsion part (OpenSSL reduces k mod L first).
    a = clamp(seed)
    mixed = enc(pt_add(pt_mul(a, B), torsion[1]))
    prefix = hashlib.sha512(seed).digest()[32:]
    for i in range(6):
        m = b"mixed %d" % i
        r = int.from_bytes(hashlib.sha512(prefix + m).digest(), "little") % L
        rb = enc(pt_mul(r, B))
        k = k_of(rb, mixed, m)
        cases["mixed-order key, k mod 8 = %d (#%d)" % (k % 8, i)] = (
            mixed, m, rb + ((r + k * a) % L).to_bytes(32, "little"))
    for i in range(4):
        cases["random garbage #%d" % i] = (rng.randbytes(32), rng.randbytes(9),
                                          rng.randbytes(64))
    return cases


def x_y(torsion, y):
    return next(t for t in torsion if t[1] == y and t[0] & 1 == 0)


def weak_key_or_r(pk, sig):
    """Where the device is deliberately stricter than OpenSSL (SPEC "Device Ed25519"): a
    small-order A or R, or a non-canonical A (y >= p, or any small-order encoding)."""
    from edgekit.testing.torsion import CANONICAL, NON_CANONICAL
    small = set(CANONICAL) | set(NON_CANONICAL)
    y = int.from_bytes(pk, "little") & ((1 << 255) - 1)
    return pk in small or sig[:32] in small or y >= P


def test_every_decision_agrees_with_cryptography_on_adversarial_input():
    cases = adversarial_cases()
    want = {name: crypto_verify(*c) and not weak_key_or_r(c[0], c[2])
            for name, c in cases.items()}
    assert True in want.values() and False in want.values()
    # the cases where OpenSSL accepts and the device must not are among them
    assert any(crypto_verify(*c) and weak_key_or_r(c[0], c[2]) for c in cases.values())
    got = dict(zip(cases, device_verify(list(cases.values()))))
    differ = {name: (got[name], want[name]) for name in cases if got[name] is not want[name]}
    assert not differ, f"device vs cryptography (device, OpenSSL): {differ}"


def test_verify_returns_false_and_never_raises_on_malformed_input():
    out = mp.run_json(r"""
import json
import ed25519
seed = bytes(range(32))
pk = ed25519.public_key(seed)
msg = b"telemetry"
sig = ed25519.sign(seed, msg)
bad = [
    (pk[:31], msg, sig), (pk + b"\0", msg, sig), (b"", msg, sig),
    (pk, msg, sig[:63]), (pk, msg, sig + b"\0"), (pk, msg, b""),
    (None, msg, sig), (pk, None, sig), (pk, msg, None),
    ("k" * 32, msg, sig), (pk, "telemetry", sig), (pk, msg, "s" * 64),
    (32, msg, sig), (pk, 5, sig), (pk, msg, 10 ** 100),
    (list(pk), msg, sig), (pk, msg, list(sig)), (pk, [1, 2], sig),
    ({}, msg, sig), (pk, msg, (1,) * 64), (pk, msg, bytearray(64)),
]
good = [(bytearray(pk), bytearray(msg), bytearray(sig)),
        (memoryview(pk), memoryview(msg), memoryview(sig))]
def run(args):
    try:
        return ed25519.verify(*args)
    except BaseException as e:
        return "raised %s: %s" % (type(e).__name__, e)
print(json.dumps({"bad": [run(a) for a in bad], "good": [run(a) for a in good]}))
""")
    assert out["bad"] == [False] * 21
    assert out["good"] == [True, True]


def test_sign_and_public_key_reject_bad_seeds_with_clear_errors():
    out = mp.run_json(r"""
import json
import ed25519
res = []
for call in (lambda: ed25519.sign(b"\x01" * 31, b"m"), lambda: ed25519.sign(b"\x01" * 64, b"m"),
             lambda: ed25519.public_key(None), lambda: ed25519.sign(b"\x01" * 32, "text")):
    try:
        call()
        res.append("no error")
    except (TypeError, ValueError) as e:
        res.append("%s: %s" % (type(e).__name__, e))
print(json.dumps(res))
""")
    assert out[0].startswith("ValueError") and "32 bytes" in out[0] and "got 31" in out[0]
    assert out[1].startswith("ValueError") and "got 64" in out[1]
    assert out[2].startswith("TypeError") and "bytes" in out[2]
    assert out[3].startswith("TypeError") and "message" in out[3]


def test_comb_table_is_the_multiples_of_b_it_claims():
    out = mp.run_json(r"""
import json, ed25519
print(json.dumps([["%064x" % v for v in e] for e in ed25519._COMB]))
""")
    quarter = [pt_mul(1 << (64 * t), B) for t in range(4)]
    for j in range(1, 16):
        pt = IDENTITY
        for t in range(4):
            if j >> t & 1:
                pt = pt_add(pt, quarter[t])
        x, y = pt
        want = ["%064x" % v for v in ((y + x) % P, (y - x) % P, 2 * D * x * y % P)]
        assert out[j - 1] == want, f"comb entry {j}"


HEAP_PROBE = r"""
import gc, json
import ed25519
seed = bytes(range(1, 33))
pk = ed25519.public_key(seed)
msg = b"x" * 200
sig = ed25519.sign(seed, msg)
slots = [None] * 1024


def with_free(budget, fn):
    # Fill the heap with ballast (large pieces, then small ones that plug the holes) until
    # only `budget` bytes remain free, run fn, release the ballast.
    gc.collect()
    n = 0
    for size in (8192, 1024, 128, 16):
        while n < len(slots) and gc.mem_free() - size - 64 > budget:
            try:
                slots[n] = bytes(size)
            except MemoryError:
                break   # no hole this large left: go on with smaller pieces
            n += 1
    try:
        return fn()
    except MemoryError:
        return "MemoryError"
    finally:
        for i in range(n):
            slots[i] = None
        gc.collect()


def verify():
    return ed25519.verify(pk, msg, sig)


lo, hi = 0, 48 * 1024
while hi - lo > 256:
    mid = (lo + hi) // 2
    if with_free(mid, verify) is True:
        hi = mid
    else:
        lo = mid


def fragmented(fn):
    # A long-running board's heap: plenty free in total, no free block above ~430 bytes.
    gc.collect()
    n = 0
    while n < len(slots):
        try:
            slots[n] = bytes(384)
        except MemoryError:
            break
        n += 1
    for i in range(0, n, 2):
        slots[i] = None
    gc.collect()
    try:
        ok = fn()
        try:
            big = bytes(1024)
            ok = "a 1 KB block was free: the heap was not fragmented"
        except MemoryError:
            pass
        return ok
    except MemoryError:
        return "MemoryError"
    finally:
        for i in range(n):
            slots[i] = None
        gc.collect()


print(json.dumps({"min_free": hi, "at_budget": with_free(%d, verify),
                  "at_1k": with_free(1024, verify), "fragmented": fragmented(verify)}))
"""


def test_verify_fits_the_stated_heap_budget_and_a_fragmented_heap():
    out = mp.run_json(HEAP_PROBE % VERIFY_HEAP_BUDGET, heap="110K")
    print("verify needs %d bytes of free heap (budget %d)" % (out["min_free"],
                                                             VERIFY_HEAP_BUDGET))
    assert out["at_budget"] is True
    assert out["min_free"] <= VERIFY_HEAP_BUDGET
    # The probe itself can fail: with 1 KB free the VM must run out of memory.
    assert out["at_1k"] == "MemoryError"
    # No allocation of a verify needs a large block (the SHA-512 schedule is a 16-slot ring).
    assert out["fragmented"] is True
