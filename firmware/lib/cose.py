# COSE_Sign1 (RFC 9052 4.2) with EdDSA/Ed25519 on the device. Public API (stable):
#   sign1(payload, seed32, protected) -> bytes     tagged COSE_Sign1
#   verify1(data, public_key) -> payload           raises ValueError on anything invalid
# Accepts tagged and untagged COSE_Sign1 from any conforming implementation.
import hashlib

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


def _sig_structure(protected_bytes, payload):
    return cbor.dumps(["Signature1", protected_bytes, b"", payload])


def sign1(payload, seed32, protected, public_key=None):
    header = dict(protected)
    header[C.COSE_ALG] = C.ALG_EDDSA
    if C.COSE_KID not in header:
        header[C.COSE_KID] = kid_of(public_key or ed25519.public_key(seed32))
    protected_bytes = cbor.dumps(header)
    signature = ed25519.sign(seed32, _sig_structure(protected_bytes, payload))
    return cbor.dumps(cbor.Tag(C.TAG_COSE_SIGN1, [protected_bytes, {}, bytes(payload), signature]))


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
    if not isinstance(protected_bytes, bytes) or not isinstance(unprotected, dict):
        raise CoseError("COSE_Sign1 headers malformed", C.E_BAD_CBOR)
    if not isinstance(payload, bytes):
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
    if not ed25519.verify(public_key, _sig_structure(protected_bytes, payload), signature):
        raise CoseError("signature does not verify")


def verify1(data, public_key):
    protected, protected_bytes, payload, signature = parse(cbor.loads(data))
    check_signature(protected_bytes, payload, signature, public_key)
    return payload
