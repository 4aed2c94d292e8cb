# COSE_Sign1 (RFC 9052 4.2) with EdDSA/Ed25519 on the device. Public API (stable):
#   sign1(payload, seed32, protected) -> bytes     tagged COSE_Sign1
#   verify1(data, public_key) -> payload           raises ValueError on anything invalid
#   sig_structure_parts(protected_bytes, payload)  the Sig_structure as parts to hash
#                                                  (ed25519.sign_parts/verify_parts)
# Accepts tagged and untagged COSE_Sign1 from any conforming implementation.
import hashlib
import struct

import catalog as C
import cbor
import ed25519


class CoseError(ValueError):
    def __init__(self, message, code=C.E_BAD_SIGNATURE):
        super().__init__(message)
        self.code = code


def kid_of(public_key):
    # SPEC 5: first 8 bytes of SHA-256 of the raw public key.
    return hashlib.sha256(bytes(public_key)).digest()[:8]


# ["Signature1", ...]: the head of a 4-element array and of the 10-character text.
SIG1_HEAD = b"\x84\x6aSignature1"


def bstr_head(n):
    """The CBOR head of a byte string of length n (shortest form; n < 2**32)."""
    if n < 24:
        return bytes((0x40 | n,))
    if n < 0x100:
        return bytes((0x58, n))
    if n < 0x10000:
        return struct.pack(">BH", 0x59, n)
    return struct.pack(">BI", 0x5A, n)


def sig_structure_parts(protected_bytes, payload):
    """The Sig_structure (RFC 9052 4.4) with empty external_aad, as parts to hash. Its
    CBOR is heads around the two byte strings as they are, so it is never built: a large
    payload is neither copied nor encoded twice."""
    return (SIG1_HEAD, bstr_head(len(protected_bytes)), protected_bytes, b"\x40",
            bstr_head(len(payload)), payload)


def sign1(payload, seed32, protected, public_key=None):
    """`public_key`, if given, must be the seed's own key (it names the kid and saves the
    signer computing it)."""
    header = dict(protected)
    header[C.COSE_ALG] = C.ALG_EDDSA
    if public_key is None:
        public_key = ed25519.public_key(seed32)
    if C.COSE_KID not in header:
        header[C.COSE_KID] = kid_of(public_key)
    protected_bytes = cbor.dumps(header)
    signature = ed25519.sign_parts(seed32, sig_structure_parts(protected_bytes, payload),
                                   public_key)
    # = cbor.dumps(Tag(18, [protected_bytes, {}, payload, signature])), built in one piece
    return b"".join((b"\xd2\x84", bstr_head(len(protected_bytes)), protected_bytes, b"\xa0",
                     bstr_head(len(payload)), payload, b"\x58\x40", signature))


_BYTES = (bytes, memoryview)


def parse(item):
    """Shape check of a decoded COSE_Sign1 -> (protected, protected_bytes, payload, signature).

    Nothing here is trusted yet: the caller verifies before acting.
    """
    if isinstance(item, cbor.Tag):
        if item.tag != C.TAG_COSE_SIGN1:
            raise CoseError("not COSE_Sign1", C.E_BAD_CBOR)
        item = item.value
    if not isinstance(item, list) or len(item) != 4:
        raise CoseError("COSE_Sign1 must be a 4-element array", C.E_BAD_CBOR)
    protected_bytes, unprotected, payload, signature = item
    # Views of the receiver's buffer as well as bytes (envelope.open_body).
    if not isinstance(protected_bytes, _BYTES) or not isinstance(unprotected, dict):
        raise CoseError("COSE_Sign1 headers malformed", C.E_BAD_CBOR)
    if not isinstance(payload, _BYTES):
        raise CoseError("detached or non-bstr payload", C.E_BAD_CBOR)
    if not isinstance(signature, bytes) or len(signature) != 64:
        raise CoseError("Ed25519 signature must be 64 bytes")
    protected = cbor.loads(protected_bytes) if protected_bytes else {}
    if not isinstance(protected, dict):
        raise CoseError("protected header is not a map", C.E_BAD_CBOR)
    if protected.get(C.COSE_ALG) != C.ALG_EDDSA:
        raise CoseError("algorithm is not EdDSA")
    return protected, protected_bytes, payload, signature


def check_signature(protected_bytes, payload, signature, public_key):
    if not ed25519.verify_parts(public_key, sig_structure_parts(protected_bytes, payload),
                                signature):
        raise CoseError("signature does not verify")


def verify1(data, public_key):
    protected, protected_bytes, payload, signature = parse(cbor.loads(data))
    check_signature(protected_bytes, payload, signature, public_key)
    return payload
