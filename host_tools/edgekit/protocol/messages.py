"""Envelopes of SPEC section 4: build signed/unsigned bodies, and open them in the order of
SPEC section 5 (CBOR, shape, key known, signature, role, replay, payload) so that a rejected
body never reaches code that changes state."""
from edgekit import catalog
from edgekit import catalog as C
from edgekit.errors import ProtocolError
from edgekit.protocol import cbor, cose


class Message:
    """An opened body. `role` is the verified signer's role, or None for unsigned bodies."""
    __slots__ = ("type", "seq", "sender", "payload", "kid", "role", "body")

    def __init__(self, type, seq, sender, payload, kid=None, role=None, body=b""):
        self.type, self.seq, self.sender, self.payload = type, seq, sender, payload
        self.kid, self.role, self.body = kid, role, body

    @property
    def signed(self):
        return self.role is not None

    def __repr__(self):
        return (f"Message(type=0x{self.type:02x}, seq={self.seq}, sender={self.sender!r}, "
                f"role={self.role}, payload={self.payload!r})")


def protected_header(msg_type, seq, sender, kid=None):
    header = {catalog.COSE_ALG: catalog.ALG_EDDSA, catalog.HDR_TYPE: msg_type,
              catalog.HDR_SEQ: seq, catalog.HDR_SENDER: sender}
    if kid is not None:
        header[catalog.COSE_KID] = kid
    return header


def signed(msg_type, payload, signer, seq, sender) -> bytes:
    """A signed body: COSE_Sign1 (tag 18) over the deterministic payload map."""
    signer = cose.as_signer(signer)
    header = protected_header(msg_type, seq, sender, cose.kid_of(signer.public_key_bytes))
    return cose.sign1(cbor.dumps(payload), signer, header)


def unsigned(msg_type, seq, payload) -> bytes:
    if msg_type not in catalog.UNSIGNED_OK:
        raise ValueError(f"message type 0x{msg_type:02x} must be signed (SPEC 4.2)")
    return cbor.dumps([msg_type, seq, payload])


class Keyring:
    """Public keys a receiver trusts, by kid, each with its role; revoked kids are refused."""

    def __init__(self):
        self._keys = {}
        self._loaded = {}           # kid -> Ed25519PublicKey, parsed once rather than per frame
        self.revoked = set()

    def add(self, public_key: bytes, role: str) -> bytes:
        kid = cose.kid_of(public_key)
        self._keys[kid] = (bytes(public_key), role)
        self._loaded.pop(kid, None)
        return kid

    def verifier(self, kid):
        """The loaded public key for `kid` (which lookup() returned)."""
        key = self._loaded.get(kid)
        if key is None:
            key = self._loaded[kid] = cose.Ed25519PublicKey.from_public_bytes(self._keys[kid][0])
        return key

    def revoke(self, kid: bytes):
        self.revoked.add(bytes(kid))

    def lookup(self, kid):
        if not isinstance(kid, bytes) or kid in self.revoked:
            return None
        return self._keys.get(kid)

    def __contains__(self, kid):
        return self.lookup(kid) is not None


class ReplayGuard:
    """Last accepted seq per kid (SPEC 5). Persisting it is the caller's job: `last` is a dict."""

    def __init__(self, last=None):
        self.last = dict(last or {})

    def check(self, kid, seq):
        previous = self.last.get(kid)
        if previous is not None and seq <= previous:
            raise ProtocolError(f"replayed: seq {seq} is not above {previous}", catalog.E_REPLAYED)

    def accept(self, kid, seq):
        self.check(kid, seq)
        self.last[kid] = seq


def _require(condition, message, code=catalog.E_BAD_CBOR):
    if not condition:
        raise ProtocolError(message, code)


def _open_unsigned(item, body):
    _require(len(item) == 3, "unsigned envelope must be [type, seq, payload]")
    msg_type, seq, payload = item
    _require(isinstance(msg_type, int) and isinstance(seq, int) and seq >= 0,
             "unsigned envelope: type and seq must be unsigned integers")
    _require(isinstance(payload, dict), "payload must be a map", catalog.E_BAD_REQUEST)
    _require(msg_type in catalog.UNSIGNED_OK,
             f"message type 0x{msg_type:02x} must be signed", catalog.E_UNAUTHORIZED)
    return Message(msg_type, seq, None, payload, body=body)


def open_body(body: bytes, keyring: Keyring = None, replay: ReplayGuard = None,
              max_len=catalog.MAX_FRAME_LIMIT) -> Message:
    """Decode and verify one body. Raises ProtocolError with the SPEC's error code."""
    try:
        item = cose.loads_message(body, max_len=max_len)
    except cbor.CBORError as exc:
        raise ProtocolError(str(exc), exc.code) from None
    if isinstance(item, list) and len(item) == 3:
        return _open_unsigned(item, body)
    try:
        sign1 = cose.parse_item(item)
    except cose.CoseError as exc:
        raise ProtocolError(str(exc), exc.code) from None
    header = sign1.protected
    msg_type, seq, sender = (header.get(catalog.HDR_TYPE), header.get(catalog.HDR_SEQ),
                             header.get(catalog.HDR_SENDER))
    _require(isinstance(msg_type, int) and isinstance(seq, int) and seq >= 0
             and isinstance(sender, str) and 1 <= len(sender) <= 32,
             "protected header needs type, seq and sender (SPEC 4.1)")
    known = keyring.lookup(sign1.kid) if keyring is not None else None
    _require(known is not None, f"unknown or revoked key id {sign1.kid!r}", catalog.E_UNKNOWN_KEY)
    role = known[1]
    try:
        sign1.verify(keyring.verifier(sign1.kid))
    except cose.CoseError as exc:
        raise ProtocolError(str(exc), catalog.E_BAD_SIGNATURE) from None
    allowed = catalog.SIGNER_ROLES.get(msg_type)
    _require(allowed is None or role in allowed,
             f"a {role} key may not sign message type 0x{msg_type:02x}", catalog.E_UNAUTHORIZED)
    if replay is not None:
        replay.check(sign1.kid, seq)
    try:
        payload = cbor.loads(sign1.payload)
    except cbor.CBORError as exc:
        raise ProtocolError(f"payload: {exc}", exc.code) from None
    _require(isinstance(payload, dict), "payload must be a map", catalog.E_BAD_REQUEST)
    if replay is not None:
        replay.accept(sign1.kid, seq)
    return Message(msg_type, seq, sender, payload, kid=sign1.kid, role=role, body=body)


def reply_error(re_seq, code, text, seq):
    """An unsigned ERROR body (what a host or a factory-state device sends)."""
    return unsigned(catalog.ERROR, seq, {catalog.K_RE: re_seq, catalog.K_CODE: code,
                                         catalog.K_MSG: text})


def open_self_signed(body: bytes, max_len=C.MAX_FRAME_LIMIT) -> Message:
    """PROV_KEY: a device's first message, signed by the key it carries (proof of possession).
    Verified against K_PUB in its own payload, whose kid must match the header's."""
    try:
        sign1 = cose.decode_sign1(body)
    except cose.CoseError as exc:
        raise ProtocolError(str(exc), exc.code) from None
    header = sign1.protected
    if header.get(C.HDR_TYPE) != C.PROV_KEY:
        raise ProtocolError("only PROV_KEY is self-signed", C.E_UNKNOWN_KEY)
    try:
        payload = cbor.loads(sign1.payload, max_len=max_len)
    except cbor.CBORError as exc:
        raise ProtocolError(f"payload: {exc}", exc.code) from None
    public_key = payload.get(C.K_PUB) if isinstance(payload, dict) else None
    _require(isinstance(public_key, bytes) and len(public_key) == 32,
             "PROV_KEY without a 32-byte public key", C.E_BAD_REQUEST)
    _require(cose.kid_of(public_key) == sign1.kid, "PROV_KEY kid does not match its key",
             C.E_UNKNOWN_KEY)
    try:
        sign1.verify(public_key)
    except cose.CoseError:
        raise ProtocolError("PROV_KEY signature does not verify", C.E_BAD_SIGNATURE) from None
    return Message(C.PROV_KEY, header.get(C.HDR_SEQ), header.get(C.HDR_SENDER), payload,
                   kid=sign1.kid, role=C.ROLE_DEVICE, body=body)


def open_untrusted_caps(body: bytes, max_len=C.MAX_FRAME_LIMIT) -> Message:
    """A signed CAPS from a device whose key we do not know yet: parsed, NOT trusted
    (role None). The caller checks the certificate inside against its fleet root, then
    asks again with the certified key in its keyring."""
    try:
        sign1 = cose.decode_sign1(body)
        payload = cbor.loads(sign1.payload, max_len=max_len)
    except (cose.CoseError, cbor.CBORError) as exc:
        raise ProtocolError(str(exc), getattr(exc, "code", C.E_BAD_CBOR)) from None
    header = sign1.protected
    _require(header.get(C.HDR_TYPE) == C.CAPS and isinstance(payload, dict),
             "only CAPS may be read before its key is known", C.E_UNKNOWN_KEY)
    return Message(C.CAPS, header.get(C.HDR_SEQ), header.get(C.HDR_SENDER), payload,
                   kid=sign1.kid, role=None, body=body)
