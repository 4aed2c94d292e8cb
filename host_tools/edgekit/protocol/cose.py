"""COSE_Sign1 (RFC 9052 section 4.2) with EdDSA/Ed25519 (RFC 9053 section 2.2), on cryptography.

Signing goes through a *signer*: any object with `public_key_bytes` and `sign(data)`, so an
offline or HSM signer plugs in (edgekit.keys.signer.Ed25519Signer is the file-key one).
"""
import hashlib

import cbor2
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from edgekit import catalog
from edgekit.protocol import cbor

Tag = cbor.Tag


class CoseError(ValueError):
    """The message is not a valid COSE_Sign1 for this protocol; `code` is a catalog code."""

    def __init__(self, message, code=catalog.E_BAD_SIGNATURE):
        super().__init__(message)
        self.code = code


def kid_of(public_key: bytes) -> bytes:
    """SPEC 5: key id = first 8 bytes of SHA-256 of the 32-byte raw public key."""
    return hashlib.sha256(bytes(public_key)).digest()[:8]


class SeedSigner:
    """A signer from a raw 32-byte Ed25519 seed (test vectors, tests)."""

    def __init__(self, seed: bytes):
        self._key = Ed25519PrivateKey.from_private_bytes(bytes(seed))
        self.public_key_bytes = self._key.public_key().public_bytes_raw()
        self.kid = kid_of(self.public_key_bytes)

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data)

    def __repr__(self):
        return f"SeedSigner(kid={self.kid.hex()})"


def as_signer(key):
    """Accept a signer, an Ed25519PrivateKey or a 32-byte seed."""
    if hasattr(key, "sign") and hasattr(key, "public_key_bytes"):
        return key
    if isinstance(key, Ed25519PrivateKey):
        return SeedSigner(key.private_bytes_raw())
    if isinstance(key, (bytes, bytearray)) and len(key) == 32:
        return SeedSigner(bytes(key))
    raise TypeError("expected a signer, an Ed25519PrivateKey or a 32-byte seed")


_AI_FOR_LEN = {2: 24, 3: 25, 5: 26, 9: 27}     # head length -> additional info


def _bstr_head(n):
    k = cbor.head_len(n)
    if k == 1:
        return bytes((0x40 + n,))
    return bytes((0x40 + _AI_FOR_LEN[k],)) + n.to_bytes(k - 1, "big")


_SIG1_CONTEXT = b"\x84\x6aSignature1"


def sig_structure(protected_bytes: bytes, payload: bytes) -> bytes:
    """["Signature1", protected, h'', payload] (RFC 9052 4.4), deterministic. Written out
    rather than encoded: it is built for every frame verified, and is only byte strings."""
    return b"".join((_SIG1_CONTEXT, _bstr_head(len(protected_bytes)), protected_bytes, b"\x40",
                     _bstr_head(len(payload)), payload))


def loads_message(data, max_len=None):
    """cbor.loads for a whole message body, with a shortcut for the usual shape: a tagged
    COSE_Sign1 with an empty unprotected map. For that shape the deterministic encoding is
    the only one of its length (a long head, an indefinite length (4 items: +1 byte), a long
    tag or trailing bytes all make it longer), so checking the length replaces re-encoding.
    That holds while its three byte strings differ: cbor2 resolves value sharing (tags 28/29)
    and string references silently, and a repeated string so shared, padded back to the
    same length, would pass. Anything else takes the general strict path, with its errors."""
    if type(data) is bytes and (max_len is None or len(data) <= max_len):
        try:
            item = cbor2.loads(data)
        except Exception:  # noqa: BLE001 - the strict path below reports it properly
            item = None
        if type(item) is Tag and item.tag == catalog.TAG_COSE_SIGN1 \
                and type(item.value) is list and len(item.value) == 4:
            p, u, pl, sig = item.value
            if type(p) is bytes and type(u) is dict and not u and type(pl) is bytes \
                    and type(sig) is bytes and p != pl and sig != p and sig != pl:
                size = (2 + cbor.head_len(len(p)) + len(p) + 1 + cbor.head_len(len(pl))
                        + len(pl) + cbor.head_len(len(sig)) + len(sig))
                if len(data) == size:
                    return item
    return cbor.loads(data, max_len=max_len)


def sign1(payload: bytes, key, protected: dict, tagged: bool = True) -> bytes:
    """A COSE_Sign1 over `payload` (bytes). `protected` gets alg and kid filled in."""
    signer = as_signer(key)
    header = dict(protected)
    header[catalog.COSE_ALG] = catalog.ALG_EDDSA
    header.setdefault(catalog.COSE_KID, kid_of(signer.public_key_bytes))
    protected_bytes = cbor.dumps(header)
    signature = signer.sign(sig_structure(protected_bytes, bytes(payload)))
    message = [protected_bytes, {}, bytes(payload), signature]
    return cbor.dumps(Tag(catalog.TAG_COSE_SIGN1, message) if tagged else message)


class Sign1:
    """A parsed, NOT yet verified COSE_Sign1."""
    __slots__ = ("protected", "protected_bytes", "payload", "signature")

    def __init__(self, protected, protected_bytes, payload, signature):
        self.protected, self.protected_bytes = protected, protected_bytes
        self.payload, self.signature = payload, signature

    @property
    def kid(self):
        return self.protected.get(catalog.COSE_KID)

    def verify(self, public_key) -> bytes:
        """Return the payload if the signature is valid for `public_key` (32 raw bytes or an
        Ed25519PublicKey, which a keyring keeps loaded), else raise CoseError."""
        try:
            if not isinstance(public_key, Ed25519PublicKey):
                public_key = Ed25519PublicKey.from_public_bytes(bytes(public_key))
            public_key.verify(
                self.signature, sig_structure(self.protected_bytes, self.payload))
        except (InvalidSignature, ValueError):
            raise CoseError("signature does not verify with the key") from None
        return self.payload


# The protected header every edgekit message carries, in deterministic (bytewise) key order.
_HEADER_KEYS = [catalog.COSE_ALG, catalog.COSE_KID, catalog.HDR_TYPE, catalog.HDR_SEQ,
                catalog.HDR_SENDER]


def _int_len(v):
    return cbor.head_len(v if v >= 0 else -1 - v)


_HEADER_KEYS_LEN = sum(_int_len(k) for k in _HEADER_KEYS)


def _loads_header(data):
    """cbor.loads for a protected header, with loads_message's shortcut for the protocol's
    own header: keys checked in order, then the only encoding of that length is the
    deterministic one (every other form of the same value, tags included, is longer). Type
    and seq must be unsigned and alg -8: no value can then repeat a key of five bytes, so
    value sharing cannot make a shorter form to pad back to this length."""
    try:
        h = cbor2.loads(data)
    except Exception:  # noqa: BLE001 - the strict path below reports it properly
        h = None
    if type(h) is dict and list(h) == _HEADER_KEYS:
        alg, kid, msg_type, seq, sender = h.values()
        if type(alg) is int and alg == catalog.ALG_EDDSA and type(kid) is bytes \
                and type(msg_type) is int and msg_type >= 0 and type(seq) is int and seq >= 0 \
                and type(sender) is str and sender.isascii():
            size = (1 + _HEADER_KEYS_LEN + _int_len(alg) + cbor.head_len(len(kid)) + len(kid)
                    + _int_len(msg_type) + _int_len(seq) + cbor.head_len(len(sender))
                    + len(sender))
            if len(data) == size:
                return h
    return cbor.loads(data)


def parse_item(item) -> Sign1:
    """Check the shape of a decoded COSE_Sign1 (tagged or not) and its protected header."""
    if isinstance(item, Tag):
        if item.tag != catalog.TAG_COSE_SIGN1:
            raise CoseError(f"tag {item.tag} is not COSE_Sign1", catalog.E_BAD_CBOR)
        item = item.value
    if not isinstance(item, list) or len(item) != 4:
        raise CoseError("COSE_Sign1 must be a 4-element array", catalog.E_BAD_CBOR)
    protected_bytes, unprotected, payload, signature = item
    if not isinstance(protected_bytes, bytes) or not isinstance(unprotected, dict):
        raise CoseError("COSE_Sign1 headers malformed", catalog.E_BAD_CBOR)
    if not isinstance(payload, bytes):
        raise CoseError("detached or non-bstr payload is not supported", catalog.E_BAD_CBOR)
    if not isinstance(signature, bytes) or len(signature) != 64:
        raise CoseError("Ed25519 signature must be 64 bytes", catalog.E_BAD_SIGNATURE)
    try:
        protected = _loads_header(protected_bytes) if protected_bytes else {}
    except cbor.CBORError as exc:
        raise CoseError(f"protected header: {exc}", exc.code) from None
    if not isinstance(protected, dict):
        raise CoseError("protected header is not a map", catalog.E_BAD_CBOR)
    if protected.get(catalog.COSE_ALG) != catalog.ALG_EDDSA:
        raise CoseError("algorithm is not EdDSA (-8)", catalog.E_BAD_SIGNATURE)
    return Sign1(protected, protected_bytes, payload, signature)


def decode_sign1(data: bytes) -> Sign1:
    try:
        item = loads_message(data)
    except cbor.CBORError as exc:
        raise CoseError(str(exc), exc.code) from None
    return parse_item(item)


def verify1(data: bytes, public_key: bytes) -> bytes:
    """Device-API twin: the payload of a valid COSE_Sign1 signed by `public_key`."""
    return decode_sign1(data).verify(public_key)
