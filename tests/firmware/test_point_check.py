"""Weak keys on the device, in the real micropython: trust.check_public, ed25519.verify's
refusal of small-order A and R, and the provisioning and KEY_EPOCH handlers that install
trust anchors (the real firmware runtime behind a pipe: refused with bad_request, nothing
persistent changes). The small-order encodings come from edgekit.testing.torsion (affine
arithmetic, independent of the firmware)."""
import hashlib
import os
import random

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from edgekit import catalog as C
from edgekit.errors import ProtocolError
from edgekit.keys import epoch as epoch_mod
from edgekit.protocol import cbor, cose, messages
from edgekit.protocol.session import Session
from edgekit.provision import flow
from edgekit.registry.db import Registry
from edgekit.testing import mp
from edgekit.testing.fleet import HilFleet
from edgekit.testing.pipe import PipeDevice
from edgekit.testing.torsion import (CANONICAL, L, NON_CANONICAL, TORSION, P, add, mul, raw,
                                     x_for)

IDENT = raw(1)


def real_key(rng=None):
    seed = rng.randbytes(32) if rng else os.urandom(32)
    return Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw()


def device_check(keys):
    """trust.check_public's answer per key in the VM: "ok" or the ValueError's text."""
    lines = "".join(k.hex() + "\n" for k in keys).encode()
    out = mp.run(r"""
import sys
from binascii import unhexlify
import trust
while True:
    line = sys.stdin.readline().strip()
    if not line:
        break
    try:
        trust.check_public(unhexlify(line))
        print("ok")
    except ValueError as e:
        print("ValueError: %s" % e)
""", stdin=lines, heap="256K")     # compiled from source here: the logic, not the heap, is tested
    got = out.strip().splitlines()
    assert len(got) == len(keys), out
    return got


def test_verify_prefilter_covers_every_small_order_encoding():
    # verify refuses A or R by y alone, screened by the low byte: every one of the 14
    # small-order encodings must be refused as A and as R, and real keys and signatures
    # whose A or R share a screened low byte must still verify.
    small = CANONICAL + NON_CANONICAL
    assert len(set(small)) == 14
    rng = random.Random(14)
    seed = rng.randbytes(32)
    good = Ed25519PrivateKey.from_private_bytes(seed)
    pk = good.public_key().public_bytes_raw()
    sig = good.sign(b"m")
    cases = [(e, b"m", IDENT + bytes(32)) for e in small]          # as A
    cases += [(pk, b"m", e + sig[32:]) for e in small]              # as R
    screened = {e[0] for e in small}
    valid = []
    # until every screened low byte was seen on a real A and on a real R (a case added for
    # its R may bring an A whose low byte is not screened: compare as subsets, not equal)
    while not screened <= {c[0][0] for c in valid} or not screened <= {c[2][0] for c in valid}:
        key = Ed25519PrivateKey.from_private_bytes(rng.randbytes(32))
        msg = rng.randbytes(8)
        a, s = key.public_key().public_bytes_raw(), key.sign(msg)
        if (a[0] in screened and a[0] not in {c[0][0] for c in valid}) or \
                (s[0] in screened and s[0] not in {c[2][0] for c in valid}):
            valid.append((a, msg, s))
    lines = "".join("%s,%s,%s\n" % (a.hex(), m.hex(), s.hex()) for a, m, s in cases + valid)
    got = mp.run(r"""
import sys
from binascii import unhexlify as h
from ed25519 import verify
while True:
    line = sys.stdin.readline()
    if not line.strip():
        break
    print(verify(*[h(f) for f in line.split(",")]))
""", stdin=lines.encode()).split()
    assert got == ["False"] * len(cases) + ["True"] * len(valid)


def test_check_public_refuses_weak_keys_and_accepts_real_ones():
    no_x = next(y for y in range(2, 100) if x_for(y) is None)
    rng = random.Random(25519)
    real = [real_key(rng) for _ in range(12)]
    # a full-order key plus a torsion part: not small order, so it passes (SPEC says why)
    n = int.from_bytes(real[0], "little")
    y = n & ((1 << 255) - 1)
    x = x_for(y)
    x = x if x & 1 == n >> 255 else P - x
    mixed = add((x, y), TORSION[1])
    cases = ([(k, "small order") for k in CANONICAL]
             + [(k, "not canonical") for k in NON_CANONICAL]
             + [(raw(no_x), "not a point"), (raw(P + no_x), "y >= p"),
                (raw(2**255 - 1, 1), "y >= p"), (raw(1, 1), "x = 0 with the sign bit")]
             + [(k, "ok") for k in real] + [(raw(mixed[1], mixed[0] & 1), "ok")])
    got = device_check([k for k, _ in cases])
    for (key, want), answer in zip(cases, got):
        assert want in answer, (key.hex(), answer)
        assert answer == "ok" or answer.startswith("ValueError: public key ")
    out = mp.run_json(r"""
import json, trust
res = []
for bad in (b"", bytes(31), bytes(33), None, "k" * 32, 7):
    try:
        trust.check_public(bad)
        res.append("accepted")
    except ValueError as e:
        res.append(str(e))
print(json.dumps(res))
""", heap="256K")
    assert out == ["public key must be 32 bytes"] * 6


def forged(ab, point, rng):
    """(msg, sig) that cofactorless verification (OpenSSL's) accepts under the small-order
    key `ab` (= `point`): R = [r]B, S = r, with k chosen so that [k]A is the identity."""
    b_y = 4 * pow(5, -1, P) % P
    base = (x_for(b_y), b_y)
    base = base if base[0] & 1 == 0 else (P - base[0], b_y)
    for _ in range(400):
        msg = rng.randbytes(12)
        r = rng.randrange(1, L)
        rp = mul(r, base)
        rb = raw(rp[1], rp[0] & 1)
        k = int.from_bytes(hashlib.sha512(rb + ab + msg).digest(), "little") % L
        if mul(k, point) == (0, 1):
            return msg, rb + r.to_bytes(32, "little")
    raise AssertionError("no message found")


def openssl_accepts(pk, msg, sig):
    try:
        Ed25519PublicKey.from_public_bytes(pk).verify(sig, msg)
        return True
    except Exception:
        return False


def test_verify_refuses_what_openssl_accepts_under_weak_keys():
    rng = random.Random(8)
    cases = [(IDENT, b"valve open=false", IDENT + bytes(32))]     # the attack, exactly
    for enc, point in zip(CANONICAL, TORSION):
        cases.append((enc,) + forged(enc, point, rng))
    for enc in NON_CANONICAL:                  # S = 0, R = identity: [k]A = 0 for A ~ 0/1
        if enc in (raw(1, 1), raw(P + 1), raw(P + 1, 1)):
            cases.append((enc, b"m", IDENT + bytes(32)))
    assert all(openssl_accepts(*c) for c in cases)    # each is a real forgery for OpenSSL
    seed = rng.randbytes(32)
    good = Ed25519PrivateKey.from_private_bytes(seed)
    cases.append((good.public_key().public_bytes_raw(), b"ok", good.sign(b"ok")))
    lines = "".join("%s,%s,%s\n" % (pk.hex(), m.hex(), s.hex()) for pk, m, s in cases)
    out = mp.run(r"""
import sys
from binascii import unhexlify as h
from ed25519 import verify
while True:
    line = sys.stdin.readline()
    if not line.strip():
        break
    pk, msg, sig = [h(f) for f in line.split(",")]
    print(verify(pk, msg, sig))
""", stdin=lines.encode()).split()
    assert out == ["False"] * (len(cases) - 1) + ["True"]


# --- the handlers that install anchors, on the real runtime behind a pipe --------------------
@pytest.fixture
def fleet(tmp_path):
    return HilFleet(tmp_path / "fleet")


@pytest.fixture
def device(tmp_path):
    with PipeDevice(tmp_path / "flash") as dev:
        yield dev


def flash_state(device):
    """Every file of the device's flash except the replay counters and seq reservation
    (accepted envelopes advance them by design, SPEC 5)."""
    out = {}
    for p in sorted(device.flash_dir.rglob("*")):
        if p.is_file() and not p.name.startswith(("replay", "seq")):
            out[str(p.relative_to(device.flash_dir))] = p.read_bytes()
    return out


class IdentityForger:
    """The attacker's 'operator key': the identity point, signing R = identity, S = 0."""
    role = C.ROLE_OPERATOR
    public_key_bytes = IDENT
    kid = cose.kid_of(IDENT)

    def sign(self, data):
        return IDENT + bytes(32)


def test_prov_commit_with_weak_or_shared_anchors_is_refused_and_writes_nothing(device, fleet):
    s = Session(device, timeout=5)
    caps = s.hello()
    nonce = os.urandom(16)
    key_msg = s.request(C.PROV_BEGIN, {C.K_NONCE: nonce, C.K_FLEET: fleet.fleet.fleet_id,
                                       C.K_KIND: "water_meter"}, sign=False, expect=C.PROV_KEY)
    pub = key_msg.payload[C.K_PUB]
    board = caps.payload[C.K_BOARD]
    cert = flow.issue_certificate(fleet.fleet, flow.device_id_for("water_meter", pub), pub,
                                  "water_meter", board, key_msg.payload[C.K_HWID], "x")
    good = {r: list(k) for r, k in fleet.fleet.anchors.items()}
    before = flash_state(device)
    bad_cases = {
        "identity operator": dict(good, operator=[IDENT]),
        "identity operator, x = -0": dict(good, operator=[raw(1, 1)]),
        "order-8 firmware": dict(good, firmware=[CANONICAL[1]]),
        "order-4 previous operator": dict(good, operator=good["operator"] + [CANONICAL[2]]),
        "y = p + 1 operator": dict(good, operator=[raw(P + 1)]),
        "undecodable operator": dict(good, operator=[raw(next(
            y for y in range(2, 99) if x_for(y) is None))]),
        "one key, two roles": dict(good, operator=good["firmware"]),
        "device key as operator": dict(good, operator=[pub]),
    }
    for name, anchors in bad_cases.items():
        with pytest.raises(ProtocolError) as info:
            s.request(C.PROV_COMMIT, {C.K_NONCE: nonce, C.K_CERT: cert, C.K_ANCHORS: anchors,
                                      C.K_EPOCH: 1, C.K_REVOKED: [], C.K_CONFIG: {}},
                      sign=False, expect=C.PROV_DONE, timeout=10)
        assert info.value.code == C.E_BAD_REQUEST, name
        assert "key" in str(info.value), name
    assert flash_state(device) == before
    assert s.hello().payload[C.K_STATE] == "factory"
    # the session is intact: the real anchors commit
    s.device_keys = messages.Keyring()
    s.device_keys.add(pub, C.ROLE_DEVICE)
    done = s.request(C.PROV_COMMIT, {C.K_NONCE: nonce, C.K_CERT: cert, C.K_ANCHORS: good,
                                     C.K_EPOCH: 1, C.K_REVOKED: [], C.K_CONFIG: {}},
                     sign=False, expect=C.PROV_DONE, timeout=10)
    assert done.role == C.ROLE_DEVICE


def send_epoch(session, fleet, number, anchors):
    """A KEY_EPOCH signed by the real fleet root, built by hand (the host's own builder
    refuses weak keys): what an attacker holding a fleet-signed message would send."""
    signer = fleet.signer("fleet")
    seq = fleet.keystore.next_seq_for(signer.kid.hex())
    payload = {C.K_EPOCH: number, C.K_ANCHORS: anchors, C.K_REVOKED: []}
    body = cose.sign1(cbor.dumps(payload), signer, epoch_mod.protected_header(signer, seq))
    return session.exchange(seq, body, timeout=10)


def test_key_epoch_with_weak_or_shared_keys_is_refused_and_changes_nothing(device, fleet,
                                                                           tmp_path):
    row = flow.provision(Session(device, timeout=5), fleet.fleet,
                         Registry(tmp_path / "reg.sqlite"), "water_meter", "x")
    s = Session(device, timeout=5, signer=fleet.signer("operator"))
    s.device_keys = messages.Keyring()
    s.device_keys.add(bytes(row["public_key"]), C.ROLE_DEVICE)
    before = flash_state(device)
    fw = fleet.keystore.anchors()["anchors"]["firmware"]
    op = fleet.keystore.anchors()["anchors"]["operator"]
    fleet_pub = fleet.fleet.fleet_public
    for name, anchors in {
            "identity operator": {"operator": [IDENT]},
            "every torsion point": {"operator": [CANONICAL[7]], "firmware": [CANONICAL[4]]},
            "non-canonical identity": {"operator": [raw(P + 1, 1)]},
            "y = 2**255 - 1": {"firmware": [raw(2**255 - 1)]},
            "firmware key as operator": {"operator": fw},
            "fleet key as operator": {"operator": [fleet_pub]},
            "device key as firmware": {"firmware": [bytes(row["public_key"])]}}.items():
        with pytest.raises(ProtocolError) as info:
            send_epoch(s, fleet, 7, anchors)
        assert info.value.code == C.E_BAD_REQUEST, name
    assert flash_state(device) == before
    # the operator key still works; the attacker's identity key forges nothing
    assert s.request(C.COMMAND, {C.K_NAME: "diag", C.K_ARGS: {}},
                     expect=C.COMMAND_RESULT).payload[C.K_NAME] == "diag"
    s.signer = IdentityForger()
    with pytest.raises(ProtocolError) as info:
        s.request(C.COMMAND, {C.K_NAME: "valve", C.K_ARGS: {"open": False}})
    assert info.value.code == C.E_UNKNOWN_KEY
    # a sound epoch still applies: the check refuses weak keys, not rotations
    s.signer = fleet.signer("operator")
    new_op = real_key()
    assert send_epoch(s, fleet, 7, {"operator": op + [new_op]}).payload[C.K_EPOCH] == 7
    assert flash_state(device) != before
