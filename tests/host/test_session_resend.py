"""A damaged exchange is resent at once, not after the whole timeout (protocol/session.py):
a noisy cable used to cost `--timeout` (5 s) for every answer a flipped byte spoiled. Against
a scripted device on a real framed link: its answer damaged in transit, or its ERROR{bad_crc}
saying our request arrived damaged. The resend is bounded, the device's cached second answer
is dropped as late (not queued as a pushed event), and silence still waits the timeout."""
import time

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edgekit import catalog as C
from edgekit.errors import LinkError
from edgekit.protocol import framing, messages
from edgekit.protocol.session import Session

from test_exchanges import _seq_of


class LossyDevice:
    """Answers every request with COMMAND_RESULT (same seq: its response cache), spoiling
    the first `spoil` answers as the script says: 'flip' (a byte of the answer flipped),
    'report' (the device reports our frame damaged: ERROR bad_crc, K_RE null), 'lose'."""

    def __init__(self, key, script):
        self.key = key
        self.script = list(script)
        self.decoder = framing.FrameDecoder(C.MAX_FRAME_LIMIT)
        self.outbox = b""
        self.requests = 0

    def write(self, data):
        for body in self.decoder.feed(data):
            self.requests += 1
            what = self.script.pop(0) if self.script else "ok"
            reply = messages.signed(C.COMMAND_RESULT, {C.K_RE: _seq_of(body), C.K_NAME: "diag"},
                                    self.key, 7, "dev-1")
            frame = bytearray(framing.encode_frame(reply))
            if what == "flip":
                frame[len(frame) // 2] ^= 0x40
            elif what == "report":
                frame = framing.encode_frame(messages.unsigned(
                    C.ERROR, 8, {C.K_RE: None, C.K_CODE: C.E_BAD_CRC, C.K_MSG: "frame dropped"}))
            elif what == "lose":
                frame = b""
            self.outbox += bytes(frame)

    def read(self, timeout):
        if not self.outbox:
            time.sleep(min(timeout, 0.01))
        data, self.outbox = self.outbox, b""
        return data


@pytest.fixture
def keys():
    device = Ed25519PrivateKey.generate()
    ring = messages.Keyring()
    ring.add(device.public_key().public_bytes_raw(), C.ROLE_DEVICE)
    return device, Ed25519PrivateKey.generate(), ring


def session(keys, script, timeout=2.0, retries=2):
    device, operator, ring = keys
    link = LossyDevice(device, script)
    return link, Session(link, signer=operator, device_keys=ring, timeout=timeout,
                         retries=retries)


@pytest.mark.parametrize("damage", ["flip", "report"])
def test_a_damaged_exchange_is_resent_at_once(keys, damage):
    link, s = session(keys, [damage, damage])
    t0 = time.monotonic()
    msg = s.request(C.COMMAND, {C.K_NAME: "diag", C.K_ARGS: {}})
    took = time.monotonic() - t0
    assert msg.type == C.COMMAND_RESULT
    assert link.requests == 3 and s.stats["retransmits"] == 2
    assert took < 1.0, f"{took:.2f} s: the resends waited for the 2 s timeout"


def test_silence_still_waits_the_timeout(keys):
    link, s = session(keys, ["lose"], timeout=0.5)
    t0 = time.monotonic()
    s.request(C.COMMAND, {C.K_NAME: "diag", C.K_ARGS: {}})
    assert time.monotonic() - t0 >= 0.5 and link.requests == 2


def test_resends_on_damage_are_bounded(keys):
    # Damage every time: the resends on damage (retries + 1) and then the timed attempts
    # (retries + 1) are spent, and the link is given up.
    link, s = session(keys, ["flip"] * 50, timeout=0.3, retries=1)
    with pytest.raises(LinkError, match="after 2 attempts"):
        s.request(C.COMMAND, {C.K_NAME: "diag", C.K_ARGS: {}})
    assert link.requests == 4


def test_the_second_answer_to_a_resent_request_is_dropped_as_late(keys):
    # A damaged push next to a good answer triggers a resend the device answers from its
    # cache: that copy is not a pushed event (monitor would show and store it again).
    link, s = session(keys, [])
    seq, body = s.build(C.COMMAND, {C.K_NAME: "diag", C.K_ARGS: {}})
    s.exchange(seq, body)
    s.send_body(body)           # sent again (as on damage): the device answers from its cache
    s.request(C.COMMAND, {C.K_NAME: "diag", C.K_ARGS: {}})     # meets that copy first
    assert s.stats["late_answers"] == 1 and not s.events
