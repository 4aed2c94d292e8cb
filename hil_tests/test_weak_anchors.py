"""Weak trust anchors, end to end through the board's serial port (issue 12): a fleet-signed
KEY_EPOCH or a PROV_COMMIT carrying the identity point (or another small-order or
non-canonical key) is refused with bad_request and changes nothing, and the attacker's
forgery under the identity key (R = identity, S = 0) closes no valve."""
import os

import pytest

from edgekit import catalog as C
from edgekit.errors import ProtocolError
from edgekit.keys import epoch as epoch_mod
from edgekit.protocol import cbor, cose, messages
from edgekit.protocol.session import Session
from edgekit.provision import flow
from edgekit.testing.torsion import CANONICAL, P, raw

pytestmark = pytest.mark.hil(kind="water_meter")

IDENT = raw(1)


class IdentityForger:
    """The attacker's operator key: the identity point, signing R = identity, S = 0 (which
    OpenSSL, and the device before issue 12, accept for any message)."""
    role = C.ROLE_OPERATOR
    public_key_bytes = IDENT
    kid = cose.kid_of(IDENT)

    def sign(self, data):
        return IDENT + bytes(32)


def fleet_signed_epoch(hil_fleet, number, anchors):
    """(seq, body) of a KEY_EPOCH signed by the real fleet root and built by hand, as the
    attacker's was (the host's own builder refuses weak keys)."""
    signer = hil_fleet.signer("fleet")
    seq = hil_fleet.keystore.next_seq_for(signer.kid.hex())
    payload = {C.K_EPOCH: number, C.K_ANCHORS: anchors, C.K_REVOKED: []}
    return seq, cose.sign1(cbor.dumps(payload), signer, epoch_mod.protected_header(signer, seq))


def test_weak_key_epoch_refused_and_identity_forgery_closes_no_valve(board, world,
                                                                     provisioned, hil_fleet):
    dev = provisioned()
    s = dev.session
    # a latching valve stays where the last job left it (on a bench, the previous test):
    # open it with the real operator key first
    assert dev.command("valve", open=True)["valve"] == "open"
    assert dev.command("read")["valve"] is True
    for anchors in ({"operator": [IDENT]}, {"operator": [raw(1, 1)]},
                    {"operator": [raw(P + 1)]}, {"firmware": [CANONICAL[4]]},
                    {"operator": [CANONICAL[2], CANONICAL[6]]}):
        with pytest.raises(ProtocolError) as info:
            s.exchange(*fleet_signed_epoch(hil_fleet, 1000, anchors), timeout=10)
        assert info.value.code == C.E_BAD_REQUEST
        assert "small order" in str(info.value) or "not canonical" in str(info.value)
    # the forged valve command: refused, the valve stays open
    operator = s.signer
    s.signer = IdentityForger()
    with pytest.raises(ProtocolError) as info:
        dev.command("valve", open=False)
    assert info.value.code == C.E_UNKNOWN_KEY
    if board.emulated:
        assert world.snapshot()["outputs"]["valve"] is True
    # the real operator key is still the one trusted: nothing was installed
    s.signer = operator
    assert dev.command("read")["valve"] is True
    assert s.exchange(*fleet_signed_epoch(hil_fleet, 1000, {
        "operator": hil_fleet.keystore.anchors()["anchors"]["operator"]}), timeout=10
    ).payload[C.K_EPOCH] == 1000


def test_prov_commit_with_the_identity_operator_key_is_refused(board, hil_fleet):
    with board.transport() as t:
        s = Session(t, timeout=5)
        caps = s.hello()
        if caps.payload[C.K_STATE] != "factory":
            pytest.skip("needs a factory-fresh board (reprovision it first)")
        fleet = hil_fleet.fleet
        nonce = os.urandom(16)
        key_msg = s.request(C.PROV_BEGIN, {C.K_NONCE: nonce, C.K_FLEET: fleet.fleet_id,
                                           C.K_KIND: "water_meter"}, sign=False,
                            expect=C.PROV_KEY)
        pub = key_msg.payload[C.K_PUB]
        cert = flow.issue_certificate(fleet, flow.device_id_for("water_meter", pub), pub,
                                      "water_meter", caps.payload[C.K_BOARD],
                                      key_msg.payload[C.K_HWID], "hil")
        anchors = dict(fleet.anchors, operator=[IDENT])
        with pytest.raises(ProtocolError) as info:
            s.request(C.PROV_COMMIT, {C.K_NONCE: nonce, C.K_CERT: cert, C.K_ANCHORS: anchors,
                                      C.K_EPOCH: 1, C.K_REVOKED: [], C.K_CONFIG: {}},
                      sign=False, expect=C.PROV_DONE, timeout=10)
        assert info.value.code == C.E_BAD_REQUEST and "small order" in str(info.value)
        assert s.hello().payload[C.K_STATE] == "factory"      # nothing was committed
        # with the real anchors the same session commits
        s.device_keys = messages.Keyring()
        s.device_keys.add(pub, C.ROLE_DEVICE)
        done = s.request(C.PROV_COMMIT, {C.K_NONCE: nonce, C.K_CERT: cert,
                                         C.K_ANCHORS: fleet.anchors, C.K_EPOCH: 1,
                                         C.K_REVOKED: [], C.K_CONFIG: {}},
                         sign=False, expect=C.PROV_DONE, timeout=10)
        assert done.role == C.ROLE_DEVICE
