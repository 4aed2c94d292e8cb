"""Weak public keys on the host (edgekit.keys.pointcheck), and where they are refused: a
KEY_EPOCH being built or read, provisioning's PROV_KEY and PROV_COMMIT.

The small-order encodings are derived here independently ([L]Q for a point Q with an
order-8 component, every encoding that decodes to each) and compared with the published
list: libsodium's ref10 blocklist (7 values, either sign bit), which C2SP/CCTV's
ed25519 vectors describe as "eight plus six alternative encodings" of the low-order points.
"""
import random

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from edgekit import catalog as C
from edgekit.errors import EdgekitError
from edgekit.keys import epoch as epoch_mod
from edgekit.keys import pointcheck
from edgekit.testing.fleet import HilFleet
from edgekit.testing.torsion import (CANONICAL, IDENTITY, NON_CANONICAL, TORSION, P, add,
                                     mul, raw, x_for)

# libsodium crypto_sign/ed25519/ref10 blocklist (compared there without the sign bit).
PUBLISHED = [bytes.fromhex(h) for h in (
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0100000000000000000000000000000000000000000000000000000000000000",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f")]


def real_key(seed=None):
    key = Ed25519PrivateKey.from_private_bytes(seed) if seed else Ed25519PrivateKey.generate()
    return key.public_key().public_bytes_raw()


def test_derivation_matches_the_published_list():
    assert len(set(TORSION)) == 8 and all(mul(8, t) == IDENTITY for t in TORSION)
    assert len(set(CANONICAL)) == 8 and len(set(NON_CANONICAL)) == 6
    with_sign = {e[:31] + bytes([e[31] | s]) for e in PUBLISHED for s in (0, 0x80)}
    assert with_sign == set(CANONICAL) | set(NON_CANONICAL)


@pytest.mark.parametrize("enc", CANONICAL, ids=lambda e: e.hex()[:8] + ".." + e.hex()[-2:])
def test_every_torsion_point_is_refused_as_small_order(enc):
    assert "small order" in pointcheck.problem(enc)
    with pytest.raises(pointcheck.WeakKeyError, match="operator key.*small order"):
        pointcheck.check_public(enc, "operator key")


@pytest.mark.parametrize("enc", NON_CANONICAL, ids=lambda e: e.hex()[:8] + ".." + e.hex()[-2:])
def test_every_non_canonical_torsion_encoding_is_refused(enc):
    assert pointcheck.problem(enc).startswith("not canonical")


def test_identity_x0_sign_undecodable_and_y_at_least_p():
    ident = raw(1)
    assert "small order" in pointcheck.problem(ident)
    assert pointcheck.problem(raw(1, 1)) == "not canonical (x = 0 with the sign bit set)"
    assert pointcheck.problem(raw(P - 1, 1)) == "not canonical (x = 0 with the sign bit set)"
    no_x = [y for y in range(2, 60) if x_for(y) is None]
    assert no_x
    for y in no_x:
        assert pointcheck.problem(raw(y)) == "not a point of the curve"
    for y in (P, P + 1, P + 2, P + 18):         # y >= p, whether it would decode or not
        for sign in (0, 1):
            assert pointcheck.problem(raw(y, sign)) == "not canonical (y >= p)"
    for bad in (b"", bytes(31), bytes(33), "a" * 32, None, 7):
        assert pointcheck.problem(bad) == "not a 32-byte public key"


def test_real_and_mixed_order_keys_pass():
    rng = random.Random(8)
    for _ in range(64):
        assert pointcheck.problem(real_key(rng.randbytes(32))) is None
    # Full order plus a torsion part: not small order, accepted (module docstring says why).
    pub = real_key(bytes(32))
    n = int.from_bytes(pub, "little")
    y = n & ((1 << 255) - 1)
    x = x_for(y)
    x = x if x & 1 == n >> 255 else P - x
    mixed = add((x, y), TORSION[1])
    assert pointcheck.problem(raw(mixed[1], mixed[0] & 1)) is None


def test_the_identity_key_forgery_is_what_this_prevents():
    # cryptography (OpenSSL) accepts R = identity, S = 0 under the identity key for any
    # message: the reason weak keys must never become trust anchors.
    ident = raw(1)
    Ed25519PublicKey.from_public_bytes(ident).verify(ident + bytes(32), b"valve open=false")
    with pytest.raises(InvalidSignature):
        Ed25519PublicKey.from_public_bytes(real_key()).verify(ident + bytes(32), b"x")


def test_check_roles_refuses_one_key_for_two_roles():
    a, b, c = real_key(), real_key(), real_key()
    pointcheck.check_roles({"fleet": [a], "firmware": [b], "operator": [c]})
    with pytest.raises(pointcheck.WeakKeyError, match="both the firmware and the operator"):
        pointcheck.check_roles({"fleet": [a], "firmware": [b], "operator": [c, b]})
    with pytest.raises(pointcheck.WeakKeyError, match="both the device and the operator"):
        pointcheck.check_roles({"fleet": [a], "operator": [c]}, device=c)
    with pytest.raises(pointcheck.WeakKeyError, match="operator key 2 is unusable"):
        pointcheck.check_roles({"operator": [c, raw(1)]})


# --- KEY_EPOCH ------------------------------------------------------------------------------
def test_epoch_payload_refuses_weak_keys_and_shared_roles():
    op, fw, fleet = real_key(), real_key(), real_key()
    epoch_mod.epoch_payload(2, {"operator": [op], "firmware": [fw]}, [], fleet)
    for anchors, match in (
            ({"operator": [raw(1)], "firmware": [fw]}, "operator key 1 is unusable: small"),
            ({"operator": [op], "firmware": [fw, CANONICAL[5]]}, "firmware key 2"),
            ({"operator": [raw(1, 1)], "firmware": [fw]}, "not canonical"),
            ({"operator": [op], "firmware": [op]}, "both the firmware and the operator"),
            ({"operator": [fleet], "firmware": [fw]}, "both the fleet and the operator")):
        with pytest.raises(ValueError, match=match):
            epoch_mod.epoch_payload(2, anchors, [], fleet)


def test_a_fleet_signed_epoch_with_a_weak_key_does_not_open(tmp_path):
    from edgekit.protocol import cbor, cose
    fleet = HilFleet(tmp_path)
    signer = fleet.signer("fleet")
    payload = {C.K_EPOCH: 9, C.K_ANCHORS: {"operator": [raw(1)], "firmware": [real_key()]},
               C.K_REVOKED: []}
    message = cose.sign1(cbor.dumps(payload), signer, epoch_mod.protected_header(signer, 5))
    with pytest.raises(ValueError, match="KEY_EPOCH 9: operator key 1 is unusable"):
        epoch_mod.open_key_epoch(message, signer.public_key_bytes)


# --- provisioning (host side) ---------------------------------------------------------------
class FakeSession:
    """Answers PROV_BEGIN with a chosen device key; records everything else it is asked."""

    def __init__(self, device_pub):
        self.device_pub = device_pub
        self.sent = []
        self.device_keys = None

    def hello(self, timeout=None):
        from edgekit.protocol.messages import Message
        return Message(C.CAPS, 1, "factory-x", {C.K_STATE: "factory", C.K_BOARD: "esp32",
                                                 C.K_KIND: "water_meter"})

    def request(self, msg_type, payload=None, **kw):
        from edgekit.protocol.messages import Message
        self.sent.append(msg_type)
        if msg_type == C.PROV_BEGIN:
            return Message(C.PROV_KEY, 2, "factory-x", {
                C.K_PUB: self.device_pub, C.K_NONCE: payload[C.K_NONCE], C.K_BOARD: "esp32",
                C.K_HWID: bytes(8)})
        raise AssertionError(f"nothing after PROV_BEGIN may be sent, got 0x{msg_type:02x}")


@pytest.fixture(scope="module")
def hil_fleet(tmp_path_factory):
    return HilFleet(tmp_path_factory.mktemp("weak-fleet"))


@pytest.mark.parametrize("pub", [raw(1), CANONICAL[3], raw(P + 1), raw(2**255 - 1, 1)],
                         ids=["identity", "order-4", "y=p+1", "y=2**255-1"])
def test_provisioning_refuses_a_weak_device_key_before_certifying_it(hil_fleet, pub):
    from edgekit.provision import flow
    session = FakeSession(pub)
    with pytest.raises(EdgekitError, match="device's new key \\(PROV_KEY\\) is unusable"):
        flow.provision(session, hil_fleet.fleet, hil_fleet.registry, "water_meter", "x")
    assert session.sent == [C.PROV_BEGIN]                  # no PROV_COMMIT, no certificate
    assert hil_fleet.registry.list() == []                 # no registry row either


def test_provisioning_refuses_weak_or_shared_anchors_before_commit(hil_fleet, monkeypatch):
    from edgekit.provision import flow
    fleet = hil_fleet.fleet
    anchors = {r: list(k) for r, k in fleet.anchors.items()}
    device = real_key()
    for bad, match in (
            (dict(anchors, operator=[raw(1)]), "operator key 1 is unusable: small order"),
            (dict(anchors, firmware=[raw(0, 1)]), "firmware key 1 is unusable"),
            (dict(anchors, operator=anchors["firmware"]), "both the firmware and the operator"),
            (dict(anchors, operator=[device]), "both the device and the operator")):
        monkeypatch.setattr(fleet, "anchors", bad)
        session = FakeSession(device)
        with pytest.raises(EdgekitError, match=match):
            flow.provision(session, fleet, hil_fleet.registry, "water_meter", "x")
        assert session.sent == [C.PROV_BEGIN]
    monkeypatch.undo()
    pointcheck.check_roles(fleet.anchors)        # what the key store gives passes

