# Envelopes of SPEC section 4 on the device: build signed/unsigned bodies and open them in the
# order of SPEC section 5 (CBOR, shape, key known, signature, role, replay, payload), so that
# a rejected body never reaches code that changes state.
import catalog as C
import cbor
import cose
import ed25519


class ProtoError(ValueError):
    # `seq` is the request's seq when the header was readable, so the error reply can name it
    # in K_RE and the sender can match it (None before that point).
    def __init__(self, message, code, seq=None):
        super().__init__(message)
        self.code = code
        self.seq = seq


class Message:
    __slots__ = ("type", "seq", "sender", "payload", "kid", "role")

    def __init__(self, type_, seq, sender, payload, kid=None, role=None):
        self.type = type_
        self.seq = seq
        self.sender = sender
        self.payload = payload
        self.kid = kid
        self.role = role


class Keyring:
    # A handful of trust anchors (fleet, firmware, operator current+previous): a dict is enough.
    def __init__(self):
        self.keys = {}
        self.revoked = []

    def add(self, public_key, role):
        kid = cose.kid_of(public_key)
        self.keys[kid] = (bytes(public_key), role)
        return kid

    def lookup(self, kid):
        if not isinstance(kid, bytes) or kid in self.revoked:
            return None
        return self.keys.get(kid)


# Bodies are signed in one buffer reserved at boot (reserve()), where the heap is still in
# one piece: building a 1 KB answer then allocates only its final copy, where encoding,
# Sig_structure and message separately took a dozen 1 KB blocks of a fragmented heap
# (docs/memory.md).
_scratch = None


def reserve(nbytes):
    """Keep a buffer of `nbytes` for building signed bodies (the largest body plus ~100)."""
    global _scratch
    if _scratch is None or len(_scratch) < nbytes:
        _scratch = None
        _scratch = bytearray(nbytes)


def signed(msg_type, payload, seed32, public_key, seq, sender):
    return bytes(signed_into(scratch(), msg_type, payload, seed32, public_key, seq, sender))


def scratch():
    """The buffer reserve() kept (a small new one if nothing was reserved)."""
    return _scratch if _scratch is not None else bytearray(256)


def signed_into(buf, msg_type, payload, seed32, public_key, seq, sender):
    """signed() built in the bytearray `buf`, whose capacity is reused (it grows if the body
    does not fit): returns a memoryview of buf holding the body, valid until buf is used
    again. The payload is encoded once, straight into place, and signed where it lies."""
    return sign_encoded(encode_signed(buf, msg_type, payload, public_key, seq, sender),
                        seed32, public_key)


def encode_signed(buf, msg_type, payload, public_key, seq, sender):
    """First half of signed_into: the body laid out in `buf` with its payload encoded, not yet
    signed -> a job for sign_encoded. In between, the caller can let go of the payload's
    objects: a large answer's objects and the signature's bignums are then never alive at
    the same time."""
    header = {C.HDR_TYPE: msg_type, C.HDR_SEQ: seq, C.HDR_SENDER: sender,
              C.COSE_KID: cose.kid_of(public_key), C.COSE_ALG: C.ALG_EDDSA}
    prot = cbor.dumps(header)
    ph = cose.bstr_head(len(prot))
    # Layout: D2 84 bstr(prot) A0 bstr-head(payload) payload 58 40 signature. The payload's
    # head length is known only after encoding it: room for the longest (3 bytes: bodies
    # are below 64 KB) and the prefix written flush against the payload.
    room = 2 + len(ph) + len(prot) + 1 + 3
    if len(buf) < room:
        buf.extend(bytes(room - len(buf)))
    buf[room:] = b""
    cbor.encode_into(buf, payload)
    n = len(buf) - room
    if n > 0xFFFF:
        raise ValueError("payload of %d bytes: a body is at most %d bytes"
                         % (n, C.MAX_FRAME_LIMIT))
    bh = cose.bstr_head(n)
    start = 3 - len(bh)
    p = start + 2 + len(ph) + len(prot)     # where A0 goes
    buf[start:p + 1 + len(bh)] = b"\xd2\x84" + ph + prot + b"\xa0" + bh
    return buf, start, p


def sign_encoded(job, seed32, public_key):
    """Second half of signed_into: sign the body encode_signed laid out -> memoryview."""
    buf, start, p = job
    mv = memoryview(buf)
    sig = ed25519.sign_parts(seed32, (cose.SIG1_HEAD, mv[start + 2:p], b"\x40", mv[p + 1:]),
                             public_key)
    mv = None       # appending may move buf
    buf += b"\x58\x40"
    buf += sig
    return memoryview(buf)[start:]


def unsigned(msg_type, seq, payload):
    if msg_type not in C.UNSIGNED_OK:
        raise ValueError("type must be signed")
    return cbor.dumps([msg_type, seq, payload])


def _fail(message, code, seq=None):
    raise ProtoError(message, code, seq)


# From the network's receive buffer (a memoryview), large byte strings stay views of it
# instead of 1 KB copies: an OTA chunk's data and an OTA_OFFER's first manifest part (both
# copied to flash or the OTA work buffer at once, then dropped; a digest, 32 bytes, is
# copied, as it is compared), and a signed body's payload (verified and decoded into a new
# map; the protected header and the signature, under 128 bytes, are copied). A 1 KB offer
# with its part as bytes left a networked meter "busy: out of memory" (1 run in 10).
_CHUNK_VIEW = 64
_SIGNED_VIEW = 128


def _views(body):
    if len(body) < 4:
        return 0
    if body[0] == 0x83 and body[1] == 0x18 and body[2] == C.OTA_CHUNK:
        return _CHUNK_VIEW
    return _SIGNED_VIEW if body[0] == 0xD2 else 0


def open_body(body, keyring=None, last_seq=None, max_len=C.MAX_FRAME_LIMIT):
    """Decode and verify one body -> Message. `last_seq` maps kid -> last accepted seq; the
    caller persists the new seq (msg.kid, msg.seq) BEFORE acting on the message."""
    try:
        item = cbor.loads(body, max_len, _views(body))
    except ValueError as exc:
        _fail(str(exc), getattr(exc, "code", C.E_BAD_CBOR))
    if isinstance(item, list) and len(item) == 3:
        msg_type, seq, payload = item
        if not isinstance(msg_type, int) or not isinstance(seq, int) or seq < 0:
            _fail("unsigned envelope must be [type, seq, payload]", C.E_BAD_CBOR)
        if not isinstance(payload, dict):
            _fail("payload must be a map", C.E_BAD_REQUEST)
        if msg_type not in C.UNSIGNED_OK:
            _fail("message type must be signed", C.E_UNAUTHORIZED, seq)
        return Message(msg_type, seq, None, payload)
    try:
        protected, protected_bytes, payload_bytes, signature = cose.parse(item)
    except ValueError as exc:
        _fail(str(exc), getattr(exc, "code", C.E_BAD_CBOR))
    msg_type = protected.get(C.HDR_TYPE)
    seq = protected.get(C.HDR_SEQ)
    sender = protected.get(C.HDR_SENDER)
    if (not isinstance(msg_type, int) or not isinstance(seq, int) or seq < 0
            or not isinstance(sender, str) or not 1 <= len(sender) <= 32):
        _fail("protected header needs type, seq and sender", C.E_BAD_CBOR)
    kid = protected.get(C.COSE_KID)
    known = keyring.lookup(kid) if keyring is not None else None
    if known is None:
        _fail("unknown or revoked key id", C.E_UNKNOWN_KEY, seq)
    try:
        cose.check_signature(protected_bytes, payload_bytes, signature, known[0])
    except ValueError:
        _fail("bad signature", C.E_BAD_SIGNATURE, seq)
    allowed = C.SIGNER_ROLES.get(msg_type)
    if allowed is not None and known[1] not in allowed:
        _fail("key role may not sign this type", C.E_UNAUTHORIZED, seq)
    if last_seq is not None:
        previous = last_seq.get(kid)
        if previous is not None and seq <= previous:
            _fail("replayed sequence number", C.E_REPLAYED, seq)
    try:
        payload = cbor.loads(payload_bytes, None,
                             _CHUNK_VIEW if msg_type == C.OTA_OFFER else 0)
    except ValueError as exc:
        _fail(str(exc), getattr(exc, "code", C.E_BAD_CBOR), seq)
    if not isinstance(payload, dict):
        _fail("payload must be a map", C.E_BAD_REQUEST, seq)
    return Message(msg_type, seq, sender, payload, kid, known[1])
