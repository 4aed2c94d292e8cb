"""Ed25519 signer: the one object in edgekit that holds a private key.

The signing contract (what `edgekit.protocol.cose.sign1` needs) is four members:
`public_key_bytes` (32 raw bytes), `kid` (SHA-256(public)[:8], SPEC 5), `role` and
`sign(data) -> 64-byte signature`. An HSM or offline signer implements the same four and plugs
in unchanged; nothing outside this module ever sees private key bytes.
"""
import hashlib

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (Ed25519PrivateKey,
                                                               Ed25519PublicKey)

from edgekit.errors import EdgekitError

KID_LEN = 8
PUBLIC_KEY_LEN = 32
SIGNATURE_LEN = 64


def kid_of(public_key_bytes: bytes) -> bytes:
    """SPEC 5: the key id is the first 8 bytes of SHA-256 of the raw 32-byte public key."""
    if len(public_key_bytes) != PUBLIC_KEY_LEN:
        raise ValueError(f"an Ed25519 public key is {PUBLIC_KEY_LEN} bytes, "
                         f"got {len(public_key_bytes)}")
    return hashlib.sha256(public_key_bytes).digest()[:KID_LEN]


def fingerprint(public_key_bytes: bytes) -> str:
    """Full SHA-256 of the public key, grouped for reading aloud when comparing copies."""
    digest = hashlib.sha256(public_key_bytes).hexdigest()
    return ":".join(digest[i:i + 4] for i in range(0, len(digest), 4))


def verify(public_key_bytes: bytes, signature: bytes, data: bytes) -> bool:
    """True when `signature` is a valid Ed25519 signature of `data` by that public key."""
    try:
        Ed25519PublicKey.from_public_bytes(public_key_bytes).verify(signature, data)
    except (InvalidSignature, ValueError):
        return False
    return True


class Ed25519Signer:
    """A private key for one role. repr(), str() and pickling never expose the secret."""

    __slots__ = ("_private", "role", "public_key_bytes", "kid")

    def __init__(self, private_key: Ed25519PrivateKey, role: str):
        if not isinstance(private_key, Ed25519PrivateKey):
            raise TypeError("Ed25519Signer needs an Ed25519 private key")
        self._private = private_key
        self.role = role
        self.public_key_bytes = private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.kid = kid_of(self.public_key_bytes)

    @classmethod
    def generate(cls, role: str) -> "Ed25519Signer":
        return cls(Ed25519PrivateKey.generate(), role)

    @classmethod
    def from_encrypted_pem(cls, pem: bytes, passphrase: str, role: str,
                           source: str = "key file") -> "Ed25519Signer":
        """Load an encrypted PKCS#8 PEM; a wrong passphrase is an EdgekitError, not a trace."""
        if not passphrase:
            raise EdgekitError(f"no passphrase given for the {role} key ({source}): set "
                               "EDGEKIT_KEY_PASSPHRASE or pass --passphrase-env NAME, "
                               "or run in a terminal to be asked")
        try:
            key = serialization.load_pem_private_key(pem, password=passphrase.encode("utf-8"))
        except (ValueError, TypeError, UnsupportedAlgorithm):
            # cryptography says "Bad decrypt. Incorrect password?" for both a wrong passphrase
            # and a damaged file; neither message may echo what was typed.
            raise EdgekitError(f"cannot decrypt the {role} key ({source}): wrong passphrase "
                               "or damaged file; check the passphrase, or restore the file "
                               "from your backup") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise EdgekitError(f"{source} is not an Ed25519 key: edgekit keys are Ed25519 "
                               "only (SPEC 5); create keys with `edgekit keys init`")
        return cls(key, role)

    def encrypted_pem(self, passphrase: str) -> bytes:
        """The private key as PKCS#8 PEM encrypted under `passphrase` (for the key store)."""
        if not passphrase:
            raise EdgekitError("refusing to write a private key without a passphrase")
        return self._private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(passphrase.encode("utf-8")))

    def public_pem(self) -> bytes:
        return self._private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    def sign(self, data: bytes) -> bytes:
        return self._private.sign(bytes(data))

    def __repr__(self):
        return f"<Ed25519Signer role={self.role} kid={self.kid.hex()}>"

    __str__ = __repr__

    def __reduce__(self):
        raise TypeError("an Ed25519Signer cannot be pickled: private keys stay in the "
                        "key store (edgekit keys); pass the role and load it again")
