"""A host's conversation with one device over a transport: frames out, frames in, requests
matched to responses by seq (K_RE), events the device pushes meanwhile kept in `events`.

Retransmission resends the *same bytes*: a device that already acted on the request answers
from its response cache instead of rejecting the repeat as a replay (SPEC 5), so a lost
response never makes a command run twice. On silence it resends after `timeout`; when the
link shows the exchange was damaged (a frame-sized candidate that failed its check, or the
device's `ERROR{bad_crc}` for ours, SPEC 2) it resends at once: on a noisy cable a damaged
answer no longer costs a whole timeout. Those resends are bounded too (as many as the
timed attempts) and answers to an exchange already finished are dropped, not queued.
"""
import time
from collections import deque

from edgekit import catalog as C
from edgekit.errors import LinkError, ProtocolError
from edgekit.protocol import exchanges, framing, messages


# Raw bytes a dropped candidate must have taken to count as a damaged frame (an answer is a
# signed COSE message of 80 bytes and more; a stray byte or a short burst of noise is not).
DAMAGED_MIN_BYTES = 24


class SeqCounter:
    """In-process fallback: strictly increasing, seeded from wall-clock microseconds (SPEC 5).
    Tools that sign persist theirs through the key store (`KeyStore.next_seq`)."""

    def __init__(self):
        self._last = 0

    def __call__(self):
        self._last = max(self._last + 1, time.time_ns() // 1000)
        return self._last


class Session:
    def __init__(self, transport, signer=None, sender="host", next_seq=None, device_keys=None,
                 max_frame=C.MAX_FRAME_DEFAULT, timeout=5.0, retries=2):
        self.transport = transport
        self.signer = signer
        self.sender = sender
        self.next_seq = next_seq or SeqCounter()
        self.device_keys = device_keys  # messages.Keyring with the device's key, once known
        self.max_frame = max_frame
        self.timeout = timeout
        self.retries = retries
        # Resend at once on damage (above); off: only after `timeout` (bench_noisy_link's
        # reference, what every exchange did before).
        self.fast_resend = True
        self.decoder = framing.FrameDecoder(C.MAX_FRAME_LIMIT)
        self.events = deque(maxlen=256)
        self.stats = {"frames_in": 0, "frames_out": 0, "rejected_in": 0, "retransmits": 0,
                      "damaged_in": 0, "late_answers": 0}
        self._pending = deque()
        self._raw = 0                        # bytes read since the last candidate ended
        self._answered = deque(maxlen=32)    # seqs of finished exchanges: repeats are late
        self.last_hello = None      # (CAPS payload, host time sent, host time answered)

    # -- frames -------------------------------------------------------------------------
    def send_body(self, body: bytes):
        if len(body) > self.max_frame:
            raise ProtocolError(f"message of {len(body)} bytes exceeds the device's max frame "
                                f"({self.max_frame}); split it", C.E_TOO_LARGE)
        self.transport.write(framing.encode_frame(body))
        self.stats["frames_out"] += 1

    def _fill(self, timeout):
        data = self.transport.read(timeout)
        if not data:
            return False
        self._raw += len(data)
        for body in self.decoder.feed(data):
            raw, self._raw = self._raw, 0
            if not isinstance(body, bytes):  # Dropped candidate (noise, REPL text) or INTERRUPT
                self.stats["rejected_in"] += 1
                if isinstance(body, framing.Dropped) and raw >= DAMAGED_MIN_BYTES:
                    self.stats["damaged_in"] += 1
                continue
            self._take(body)
        return True

    def _take(self, body: bytes):
        """Verify one received body and queue it for receive(), or count it rejected."""
        try:
            msg = messages.open_body(body, self.device_keys)
        except ProtocolError as exc:
            msg = None
            if exc.code == C.E_UNKNOWN_KEY:
                # A factory device's first signed message (PROV_KEY, self-certified), or
                # the CAPS of a device we have not met (untrusted: role None).
                for opener in (messages.open_self_signed, messages.open_untrusted_caps):
                    try:
                        msg = opener(body)
                        break
                    except ProtocolError:
                        pass
            if msg is None:
                self.stats["rejected_in"] += 1
                return
        self.stats["frames_in"] += 1
        if msg.type == C.ERROR and msg.payload.get(C.K_RE) is None \
                and msg.payload.get(C.K_CODE) == C.E_BAD_CRC:
            self.stats["damaged_in"] += 1   # the device got a damaged frame: ours, likely
        self._pending.append(msg)

    def receive(self, timeout=None, damaged=None):
        """The next verified message, or None after `timeout` seconds (or, given `damaged`,
        as soon as stats["damaged_in"] is no longer that count)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while not self._pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or (damaged is not None
                                  and self.stats["damaged_in"] != damaged):
                return None
            self._fill(min(remaining, 0.2))
        return self._pending.popleft()

    # -- requests -----------------------------------------------------------------------
    def build(self, msg_type, payload, sign=None):
        seq = self.next_seq()
        if sign is None:
            sign = msg_type not in C.UNSIGNED_OK
        if sign:
            if self.signer is None:
                raise ProtocolError(f"message 0x{msg_type:02x} must be signed: load the operator "
                                    "key (edgekit keys init / --keys DIR)", C.E_UNAUTHORIZED)
            body = messages.signed(msg_type, payload, self.signer, seq, self.sender)
        else:
            body = messages.unsigned(msg_type, seq, payload)
        return seq, body

    def request(self, msg_type, payload=None, sign=None, timeout=None, expect=None):
        """Send a request, return the device's answer (a Message). ERROR raises ProtocolError,
        and so does an answer of a type protocol/exchanges.py does not pair with `msg_type`
        (`expect`, a type or a tuple, narrows those)."""
        exchanges.narrow(msg_type, expect)      # a request with no answer: before sending
        seq, body = self.build(msg_type, payload or {}, sign)
        return self.exchange(seq, body, timeout=timeout, expect=expect, request_type=msg_type)

    def exchange(self, seq, body, timeout=None, expect=None, request_type=None):
        """Send a built body (again, on silence) until its answer comes; see request()."""
        timeout = self.timeout if timeout is None else timeout
        if request_type is None:
            request_type = exchanges.type_of(body)
        attempts = resends = 0
        while attempts <= self.retries:
            if attempts or resends:
                self.stats["retransmits"] += 1
            self.send_body(body)
            deadline = time.monotonic() + timeout
            damaged = self.stats["damaged_in"] if self.fast_resend else None
            while True:
                msg = self.receive(max(0.0, deadline - time.monotonic()), damaged)
                if msg is None:
                    break
                re = msg.payload.get(C.K_RE)
                if re != seq:
                    if re is not None and re in self._answered:
                        self.stats["late_answers"] += 1     # a resend's second answer
                        continue
                    self.events.append(msg)  # pushed event, or an answer to something else
                    continue
                self._answered.append(seq)
                if msg.type == C.ERROR:
                    code = msg.payload.get(C.K_CODE)
                    raise ProtocolError(f"device refused: {C.error_name(code)}: "
                                        f"{msg.payload.get(C.K_MSG, '')}", code)
                return exchanges.check_answer(request_type, msg, expect)
            if damaged is not None and self.stats["damaged_in"] != damaged \
                    and resends < self.retries + 1:
                resends += 1        # damaged, not silent: again at once, no attempt spent
                continue
            attempts += 1
        raise LinkError(f"no answer from the device after {self.retries + 1} attempts of "
                        f"{timeout:.1f} s: check the cable/port and that the firmware is running")

    def hello(self, timeout=None):
        sent = time.time()
        caps = self.request(C.HELLO, {C.K_PROTO: [C.PROTOCOL_VERSION, C.PROTOCOL_VERSION]},
                            sign=False, timeout=timeout, expect=C.CAPS)
        # With the host's clock around it: what protocol/clock.py measures drift from.
        self.last_hello = (caps.payload, sent, time.time())
        max_frame = caps.payload.get(C.K_MAX_FRAME)
        if isinstance(max_frame, int) and 64 <= max_frame <= C.MAX_FRAME_LIMIT:
            self.max_frame = max_frame
        return caps
