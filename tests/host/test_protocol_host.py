"""Host CBOR/COSE/envelope rules, and interop with pycose (an independent COSE implementation)."""
import os

import cbor2
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edgekit import catalog
from edgekit.errors import ProtocolError
from edgekit.protocol import cbor, cose, messages


def test_map_keys_sorted_bytewise_not_length_first():
    # RFC 8949 4.2.1: 24 (18 18) sorts before -1 (20); cbor2 canonical would put -1 first.
    assert cbor.dumps({24: 1, -1: 2}).hex() == "a21818012002"
    assert cbor.dumps({"b": 1, "a": 2, 100: 3}).hex() == "a3186403616102616201"
    # the fast path (cbor2's own canonical encoder) is taken only where length-first equals
    # bytewise: every case below must still come out bytewise, and decode back strictly
    cases = {
        "a2170120 02": {23: 1, -1: 2},                 # both one byte: the same order
        "a21901000138 1802": {256: 1, -25: 2},         # 3-byte positive before 2-byte negative
        "a4000106023a0001000003 3a0001000104": {0: 1, 6: 2, -65537: 3, -65538: 4},
        "a21818013818 02": {24: 1, -25: 2},
    }
    for hexdata, value in cases.items():
        hexdata = hexdata.replace(" ", "")
        assert cbor.dumps(value).hex() == hexdata, value
        assert cbor.loads(bytes.fromhex(hexdata)) == value
    # a length-first (cbor2 canonical) encoding of such a map is refused by the decoder
    with pytest.raises(cbor.CBORError):
        cbor.loads(bytes.fromhex("a23818021901 0001".replace(" ", "")))


@pytest.mark.parametrize("hexdata, code", [
    ("9f01ff", catalog.E_BAD_CBOR),            # indefinite-length array
    ("1801", catalog.E_BAD_CBOR),              # non-shortest head for 1
    ("a2010102", catalog.E_BAD_CBOR),          # truncated map
    ("a201010102", catalog.E_BAD_CBOR),        # duplicate key 1
    ("a202010101", catalog.E_BAD_CBOR),        # keys out of order
    ("0101", catalog.E_BAD_CBOR),              # trailing bytes
    ("62c328", catalog.E_BAD_CBOR),            # invalid UTF-8
    ("c10a", catalog.E_BAD_CBOR),              # tag 1 (epoch time) not in the spec
    ("c249010000000000000000", catalog.E_BAD_CBOR),  # bignum
    ("fb3ff0000000000000", catalog.E_BAD_CBOR),      # 1.0 as float64: not shortest
    ("f7", catalog.E_BAD_CBOR),                # undefined
    ("5affffffff00", catalog.E_BAD_CBOR),      # length beyond the input
    ("81" * 17 + "01", catalog.E_TOO_DEEP),    # nesting 18 > 16
    ("81d280", catalog.E_BAD_CBOR),            # tag 18 below the top level
])
def test_strict_decoder_rejects(hexdata, code):
    with pytest.raises(cbor.CBORError) as info:
        cbor.loads(bytes.fromhex(hexdata))
    assert info.value.code == code


def test_deep_nesting_far_beyond_limit_is_too_deep_not_a_crash():
    with pytest.raises(cbor.CBORError) as info:
        cbor.loads(b"\x81" * 100000 + b"\x01")
    assert info.value.code == catalog.E_TOO_DEEP


def test_too_large_before_parsing():
    with pytest.raises(cbor.CBORError) as info:
        cbor.loads(cbor.dumps(b"x" * 100), max_len=50)
    assert info.value.code == catalog.E_TOO_LARGE


def test_sign1_verifies_and_rejects_tampering():
    signer = cose.SeedSigner(os.urandom(32))
    msg = cose.sign1(b"payload", signer, {catalog.HDR_TYPE: 1})
    assert cose.verify1(msg, signer.public_key_bytes) == b"payload"
    tampered = bytearray(msg)
    tampered[-70] ^= 1  # inside the payload/signature region
    with pytest.raises(cose.CoseError):
        cose.verify1(bytes(tampered), signer.public_key_bytes)
    other = cose.SeedSigner(os.urandom(32))
    with pytest.raises(cose.CoseError):
        cose.verify1(msg, other.public_key_bytes)


def _keyring(**roles):
    ring = messages.Keyring()
    for role, signer in roles.items():
        ring.add(signer.public_key_bytes, role)
    return ring


def test_open_body_order_unknown_key_role_replay():
    operator, device = cose.SeedSigner(os.urandom(32)), cose.SeedSigner(os.urandom(32))
    ring = _keyring(operator=operator, device=device)
    replay = messages.ReplayGuard()
    body = messages.signed(catalog.COMMAND, {catalog.K_NAME: "valve"}, operator, 10, "host")
    msg = messages.open_body(body, ring, replay)
    assert (msg.type, msg.seq, msg.role, msg.payload) == (catalog.COMMAND, 10, "operator",
                                                         {catalog.K_NAME: "valve"})
    with pytest.raises(ProtocolError) as info:
        messages.open_body(body, ring, replay)
    assert info.value.code == catalog.E_REPLAYED
    # a device key may not sign a command
    forged = messages.signed(catalog.COMMAND, {}, device, 11, "host")
    with pytest.raises(ProtocolError) as info:
        messages.open_body(forged, ring, replay)
    assert info.value.code == catalog.E_UNAUTHORIZED
    assert replay.last[operator.kid] == 10  # rejected frames changed nothing
    stranger = cose.SeedSigner(os.urandom(32))
    with pytest.raises(ProtocolError) as info:
        messages.open_body(messages.signed(catalog.COMMAND, {}, stranger, 12, "host"), ring)
    assert info.value.code == catalog.E_UNKNOWN_KEY
    ring.revoke(operator.kid)
    with pytest.raises(ProtocolError) as info:
        messages.open_body(messages.signed(catalog.COMMAND, {}, operator, 13, "host"), ring)
    assert info.value.code == catalog.E_UNKNOWN_KEY


def test_unsigned_only_for_listed_types():
    body = messages.unsigned(catalog.HELLO, 1, {catalog.K_PROTO: [1, 1]})
    assert messages.open_body(body).type == catalog.HELLO
    sneaky = cbor.dumps([catalog.COMMAND, 2, {}])
    with pytest.raises(ProtocolError) as info:
        messages.open_body(sneaky)
    assert info.value.code == catalog.E_UNAUTHORIZED


def test_pycose_verifies_ours_and_we_verify_pycose():
    from pycose.algorithms import EdDSA
    from pycose.headers import KID, Algorithm
    from pycose.keys import OKPKey
    from pycose.keys.curves import Ed25519
    from pycose.messages import CoseMessage, Sign1Message

    private = Ed25519PrivateKey.generate()
    seed, pub = private.private_bytes_raw(), private.public_key().public_bytes_raw()
    ours = messages.signed(catalog.TELEMETRY, {catalog.K_RECORDS: [{0: "v", 2: 1.5}]},
                           private, 7, "dev-1")
    decoded = CoseMessage.decode(ours)
    decoded.key = OKPKey(crv=Ed25519, x=pub)
    assert decoded.verify_signature()
    assert cbor.loads(decoded.payload) == {catalog.K_RECORDS: [{0: "v", 2: 1.5}]}

    theirs = Sign1Message(phdr={Algorithm: EdDSA, KID: cose.kid_of(pub)}, payload=b"\xa0")
    theirs.key = OKPKey(crv=Ed25519, d=seed, x=pub)
    encoded = theirs.encode()
    assert cose.verify1(encoded, pub) == b"\xa0"


def test_message_shortcut_refuses_every_longer_encoding_of_a_sign1():
    """loads_message skips re-encoding for tagged COSE_Sign1 bodies by checking the length:
    each non-deterministic variant of a valid body must still be refused."""
    key = Ed25519PrivateKey.generate()
    body = messages.signed(catalog.TELEMETRY, {catalog.K_FROM: 1}, key, 7, "wm-1")
    assert cose.loads_message(body) == cbor.loads(body)
    item = cbor.loads(body)
    prot, _, payload, sig = item.value
    def bstr_long(b):                                   # a 2-byte length head where 1 would do
        return bytes((0x59,)) + len(b).to_bytes(2, "big") + b
    variants = {
        "long tag head": b"\xd8\x12\x84" + body[2:],
        "indefinite array": b"\xd2\x9f" + body[2:] + b"\xff",
        "trailing byte": body + b"\x00",
        "long payload head": b"\xd2\x84" + cbor.dumps(prot) + b"\xa0" + bstr_long(payload)
                             + cbor.dumps(sig),
        "indefinite unprotected map": b"\xd2\x84" + cbor.dumps(prot) + b"\xbf\xff"
                                      + cbor.dumps(payload) + cbor.dumps(sig),
    }
    for name, data in variants.items():
        with pytest.raises(cbor.CBORError):
            cose.loads_message(data)
        with pytest.raises(ProtocolError) as info:
            messages.open_body(data)
        assert info.value.code == catalog.E_BAD_CBOR, name


def test_header_shortcut_refuses_longer_or_reordered_headers():
    """Each variant is the same header value in a non-deterministic encoding (cbor2 decodes
    it to the same dict): the shortcut must refuse every one, as the strict decoder does."""
    key = Ed25519PrivateKey.generate()
    body = messages.signed(catalog.TELEMETRY, {catalog.K_FROM: 1}, key, 7, "wm-1")
    prot = cbor.loads(body).value[0]
    header = cbor.loads(prot)
    assert cose._loads_header(prot) == header
    kid = header[catalog.COSE_KID]
    alg_kid = 1 + 2 + 2 + len(kid)                  # a5 | 01 27 | 04 48 kid
    variants = {
        "long seq head": prot.replace(bytes.fromhex("3a0001000107"),
                                      bytes.fromhex("3a00010001") + b"\x18\x07"),
        "indefinite map": b"\xbf" + prot[1:] + b"\xff",
        "trailing byte": prot + b"\x00",
        "long kid head": prot.replace(b"\x48" + kid, b"\x58\x08" + kid),
        "kid before alg": b"\xa5\x04\x48" + kid + b"\x01\x27" + prot[alg_kid:],
    }
    for name, data in variants.items():
        assert cbor2.loads(data) == header, name
        with pytest.raises(cbor.CBORError):
            cose._loads_header(data)


def test_message_shortcut_refuses_a_shared_string_padded_back_to_length():
    """cbor2 resolves value sharing (tags 28/29) silently. A valid body whose payload equals
    its protected header, re-encoded with the payload as a reference to the header and padded
    back to its own length (an indefinite, chunked signature), is not deterministic: the
    length shortcut must not take it."""
    key = Ed25519PrivateKey.generate()
    signer = cose.as_signer(key)
    header = messages.protected_header(catalog.TELEMETRY, 7, "wm-1",
                                       cose.kid_of(signer.public_key_bytes))
    header[catalog.COSE_ALG] = catalog.ALG_EDDSA
    prot = cbor.dumps(header)
    body = cose.sign1(prot, key, header)                # payload == protected bytes
    sig = cbor.loads(body).value[3]
    head = b"\xd2\x84\xd8\x1c" + cbor2.dumps(prot) + b"\xa0\xd8\x1d\x00"
    chunks = len(body) - len(head) - 2 - 64             # each chunk of s <= 23 costs s + 1
    sizes = [64 // chunks + (1 if i < 64 % chunks else 0) for i in range(chunks)]
    padded, at = b"\x5f", 0
    for s in sizes:
        padded += cbor2.dumps(sig[at:at + s])
        at += s
    variant = head + padded + b"\xff"
    assert len(variant) == len(body)
    assert cbor2.loads(variant).value == [prot, {}, prot, sig]      # the same value
    with pytest.raises(cbor.CBORError):
        cose.loads_message(variant)


def test_header_shortcut_refuses_a_value_shared_with_a_key():
    """A seq equal to a five-byte header key, encoded as a reference to that key (tags 28/29,
    which cbor2 resolves silently): the same length as the deterministic form, not it."""
    kid = b"\x11" * 8
    header = {catalog.COSE_ALG: catalog.ALG_EDDSA, catalog.COSE_KID: kid,
              catalog.HDR_TYPE: catalog.TELEMETRY, catalog.HDR_SEQ: catalog.HDR_TYPE,
              catalog.HDR_SENDER: "wm-1"}
    det = cbor.dumps(header)
    shared = det.replace(bytes.fromhex("3a00010000"), bytes.fromhex("d81c3a00010000"), 1)
    shared = shared.replace(bytes.fromhex("3a000100013a00010000"),
                            bytes.fromhex("3a00010001d81d00"), 1)
    assert len(shared) == len(det) and cbor2.loads(shared) == header
    with pytest.raises(cbor.CBORError):
        cose._loads_header(shared)
