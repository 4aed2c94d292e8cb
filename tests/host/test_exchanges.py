"""Typed request/answer pairs (protocol/exchanges.py): the table covers exactly the requests the
firmware handles, and a Session refuses an answer of the wrong type with an error naming the
request, the answer and what was due -- against a scripted device on a real framed link."""
import re
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edgekit import catalog as C
from edgekit.errors import ProtocolError
from edgekit.protocol import cbor, cose, exchanges, framing, messages
from edgekit.protocol.session import Session

FIRMWARE = Path(__file__).resolve().parents[2] / "firmware"
HANDLER = re.compile(r"\.on\(\s*C\.([A-Z_]+)\s*,")


def test_the_table_pairs_every_request_the_firmware_handles_and_nothing_else():
    handled = set()
    for path in FIRMWARE.rglob("*.py"):
        handled.update(HANDLER.findall(path.read_text()))
    assert len(handled) > 10, "no handler registrations found: did the agent's API change?"
    table = {C.type_name(t) for t in exchanges.BY_REQUEST}
    assert table == handled


def test_every_answer_is_a_reply_type_and_no_request_answers_itself():
    requests = set(exchanges.BY_REQUEST)
    for e in exchanges.EXCHANGES:
        assert e.answers and not set(e.answers) & requests, e
        assert C.ERROR not in e.answers        # ERROR may answer anything: handled apart


class ScriptedDevice:
    """A transport double: answers each request frame with the type the test chose, echoing
    the request's seq in K_RE, as the firmware does."""

    def __init__(self, answer_type, device_key):
        self.answer_type = answer_type
        self.key = device_key
        self.decoder = framing.FrameDecoder(C.MAX_FRAME_LIMIT)
        self.outbox = b""
        self.sent = []

    def write(self, data):
        for body in self.decoder.feed(data):
            self.sent.append(exchanges.type_of(body))
            payload = {C.K_RE: _seq_of(body)}
            if self.answer_type == C.ERROR:
                payload.update({C.K_CODE: C.E_INVALID_STATE, C.K_MSG: "not now"})
            if self.answer_type in C.UNSIGNED_OK:
                reply = messages.unsigned(self.answer_type, 7, payload)
            else:
                reply = messages.signed(self.answer_type, payload, self.key, 7, "dev-1")
            self.outbox += framing.encode_frame(reply)

    def read(self, timeout):
        data, self.outbox = self.outbox, b""
        return data


def _seq_of(body):
    item = cbor.loads(body)
    if isinstance(item, (list, tuple)):
        return item[1]
    return cose.decode_sign1(body).protected[C.HDR_SEQ]


@pytest.fixture
def keys():
    device = Ed25519PrivateKey.generate()
    operator = Ed25519PrivateKey.generate()
    ring = messages.Keyring()
    ring.add(device.public_key().public_bytes_raw(), C.ROLE_DEVICE)
    return device, operator, ring


def _session(answer_type, keys):
    device, operator, ring = keys
    link = ScriptedDevice(answer_type, device)
    return link, Session(link, signer=operator, device_keys=ring, timeout=0.5, retries=0)


def test_the_right_answer_is_returned(keys):
    link, s = _session(C.COMMAND_RESULT, keys)
    msg = s.request(C.COMMAND, {C.K_NAME: "diag", C.K_ARGS: {}})
    assert msg.type == C.COMMAND_RESULT and msg.role == C.ROLE_DEVICE
    assert link.sent == [C.COMMAND]


def test_a_wrong_answer_type_is_a_protocol_error_naming_both(keys):
    _, s = _session(C.ACK, keys)
    with pytest.raises(ProtocolError) as info:
        s.request(C.COMMAND, {C.K_NAME: "diag", C.K_ARGS: {}})
    text = str(info.value)
    assert "answered COMMAND (0x40) with ACK (0x03)" in text
    assert "expected COMMAND_RESULT (0x41)" in text and "update the firmware" in text


def test_exchange_of_a_prebuilt_body_checks_it_too(keys):
    _, s = _session(C.TELEMETRY, keys)
    seq, body = s.build(C.TIME_SYNC, {C.K_TIME: 1767225600})
    with pytest.raises(ProtocolError, match="answered TIME_SYNC .* with TELEMETRY"):
        s.exchange(seq, body)
    _, s = _session(C.TIME, keys)
    seq, body = s.build(C.TIME_SYNC, {C.K_TIME: 1767225600})
    assert s.exchange(seq, body).type == C.TIME


def test_a_chunk_may_be_answered_by_either_of_its_two_answers(keys):
    for answer in (C.OTA_CHUNK_ACK, C.OTA_STATUS):
        _, s = _session(answer, keys)
        assert s.request(C.OTA_CHUNK, {C.K_OFFSET: 0}, sign=False).type == answer
    _, s = _session(C.OTA_STATUS, keys)
    with pytest.raises(ProtocolError, match="expected OTA_CHUNK_ACK"):
        s.request(C.OTA_CHUNK, {C.K_OFFSET: 0}, sign=False, expect=C.OTA_CHUNK_ACK)


def test_error_answers_stay_refusals_with_their_code(keys):
    _, s = _session(C.ERROR, keys)
    with pytest.raises(ProtocolError, match="device refused") as info:
        s.request(C.CONFIG_GET)
    assert info.value.code == C.E_INVALID_STATE


def test_a_type_that_is_no_request_is_refused_before_anything_is_sent(keys):
    link, s = _session(C.ACK, keys)
    with pytest.raises(ProtocolError, match="CAPS .* is not a request"):
        s.request(C.CAPS, sign=False)
    assert link.sent == []


def test_an_expect_outside_the_table_is_a_bug_in_the_caller(keys):
    link, s = _session(C.ACK, keys)
    with pytest.raises(ValueError, match="COMMAND .* is never answered with ACK"):
        s.request(C.COMMAND, {}, expect=C.ACK)
    assert link.sent == []


def test_spec_8_1_lists_the_same_pairs():
    spec = (FIRMWARE.parent / "protocol" / "SPEC.md").read_text()
    section = spec[spec.index("### 8.1"):spec.index("### 8.2")]
    written = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 2 or not cells[0].startswith("`"):
            continue
        answers = set(re.findall(r"`([A-Z_]+)`", cells[1]))
        for request in re.findall(r"`([A-Z_]+)`", cells[0]):
            written[request] = answers
    table = {C.type_name(e.request): {C.type_name(t) for t in e.answers}
             for e in exchanges.EXCHANGES}
    assert written == table
