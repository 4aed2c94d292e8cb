"""The fleet service's verification and store-then-ack (edgekit.fleet.ingest), transport-free:
a device's telemetry is stored and answered with an operator-signed ack that the device's
anchor verifies; a forged, tampered, replayed, unsigned, misaddressed or unknown device's
message is dropped under its reason and nothing of it is stored or answered. Each test that
takes `setup` runs on a SQLite registry and on the PostgreSQL store (tests/fleet/conftest.py)."""
import os

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edgekit import catalog as C
from edgekit.fleet import topics
from edgekit.fleet.ingest import Ingest
from edgekit.protocol import cose, messages
from edgekit.registry import telemetry as store
from edgekit.registry.backends import open_registry

DEV = "wm-0a0b0c0d0e0f"
OTHER = "wm-111111111111"
T0 = 1796295600


class Device:
    """A device's signing side, as the firmware does it: seq strictly increasing."""

    def __init__(self, device_id, key=None):
        self.id = device_id
        self.key = key or Ed25519PrivateKey.generate()
        self.pub = cose.as_signer(self.key).public_key_bytes
        self.seq = 100

    def body(self, msg_type, payload, key=None, sender=None):
        self.seq += 1
        return messages.signed(msg_type, payload, key or self.key, self.seq, sender or self.id)

    def telemetry(self, first, count=1, more=False):
        records = [[s, [{C.SENML_BN: f"urn:dev:ek:{self.id}:", C.SENML_N: "volume",
                         C.SENML_U: "l", C.SENML_V: 1000.0 + s, C.SENML_BT: T0 + 60 * s}]]
                   for s in range(first, first + count)]
        return self.body(C.TELEMETRY, {C.K_RECORDS: records, C.K_FROM: first,
                                       C.K_UPTO: first + count - 1, C.K_MORE: more,
                                       C.K_DROPPED: 0})


class Seq:
    def __init__(self):
        self.n = 5000

    def __call__(self):
        self.n += 1
        return self.n


@pytest.fixture
def setup(store_url):
    operator = Ed25519PrivateKey.generate()
    dev, other = Device(DEV), Device(OTHER)
    reg = open_registry(store_url, migrate=True)
    reg.upsert_device(DEV, kind="water_meter", public_key=dev.pub)
    reg.upsert_device(OTHER, kind="water_meter", public_key=other.pub)
    alarms = []
    ingest = Ingest(reg, operator, Seq(), on_alarm=lambda d, row: alarms.append((d, row)))
    ring = messages.Keyring()
    ring.add(cose.as_signer(operator).public_key_bytes, C.ROLE_OPERATOR)
    yield ingest, dev, other, reg, ring, alarms
    reg.close()


def test_telemetry_is_stored_then_acked_with_a_signed_ack(setup):
    ingest, dev, _, reg, ring, _ = setup
    out = ingest.handle(topics.up(DEV), dev.telemetry(1, 3))
    assert [r["journal_seq"] for r in store.telemetry(reg, DEV)] == [1, 2, 3]
    assert len(out) == 1 and out[0][0] == topics.down(DEV)
    ack = messages.open_body(out[0][1], ring)       # what the device verifies
    assert (ack.type, ack.payload, ack.sender) == (C.TELEMETRY_ACK, {C.K_UPTO: 3}, "host")
    # More on the device: the service asks for it after acking.
    out = ingest.handle(topics.up(DEV), dev.telemetry(4, 1, more=True))
    assert [messages.open_body(b, ring).type for _, b in out] == [C.TELEMETRY_ACK,
                                                                   C.TELEMETRY_FETCH]
    # A pack sent again (its ack was lost), newly signed: stored once, acked again.
    out = ingest.handle(topics.up(DEV), dev.telemetry(3, 2))
    assert [r["journal_seq"] for r in store.telemetry(reg, DEV)] == [1, 2, 3, 4]
    assert messages.open_body(out[0][1], ring).payload == {C.K_UPTO: 4}
    assert ingest.counts["records_stored"] == 4 and not any(ingest.dropped.values())


def test_refused_messages_are_counted_and_never_stored(setup):
    ingest, dev, other, reg, _, _ = setup
    good = dev.telemetry(1)
    forged = dev.body(C.TELEMETRY, {C.K_RECORDS: [[9, [{C.SENML_N: "x", C.SENML_V: 1}]]]},
                      key=Ed25519PrivateKey.generate())             # not the device's key
    tampered = bytearray(dev.telemetry(9))
    tampered[-1] ^= 1                                               # signature bit flipped
    cases = [
        ("unknown_key", topics.up(DEV), forged),
        ("bad_signature", topics.up(DEV), bytes(tampered)),
        ("unknown_device", topics.up("wm-999999999999"), dev.telemetry(9)),
        ("wrong_sender", topics.up(OTHER), other.body(C.TELEMETRY, {C.K_RECORDS: []},
                                                      sender=DEV)),
        ("unknown_key", topics.up(OTHER), dev.telemetry(9)),        # DEV's body on OTHER's topic
        ("unsigned", topics.up(DEV), messages.unsigned(C.CAPS, 1, {})),
        ("bad_topic", "ek/wm-0a0b0c0d0e0f/down", good),
        ("bad_topic", "ek/+/up", good),
        ("bad_cbor", topics.up(DEV), b"\xff\x00"),
    ]
    for reason, topic, body in cases:
        before = dict(ingest.dropped)
        assert ingest.handle(topic, body) == [], reason
        assert ingest.dropped[reason] == before[reason] + 1, reason
    assert store.telemetry(reg, DEV) == [] and store.telemetry(reg, OTHER) == []
    # The genuine message is accepted once; the same bytes again are a replay.
    assert len(ingest.handle(topics.up(DEV), good)) == 1
    assert ingest.handle(topics.up(DEV), good) == []
    assert ingest.dropped["replayed"] == 1
    # An older seq (captured earlier, injected later) is a replay too.
    old = dev.telemetry(2)
    ingest.handle(topics.up(DEV), dev.telemetry(3))
    assert ingest.handle(topics.up(DEV), old) == [] and ingest.dropped["replayed"] == 2
    assert [r["journal_seq"] for r in store.telemetry(reg, DEV)] == [1, 3]


def test_the_ota_transfers_unsigned_answers_are_counted_not_dropped(setup):
    """An `ota push --via fleet` reads the device's chunk acks from the same up-topic
    (SPEC 13.7): the service neither stores them nor reports them as forgeries."""
    ingest, *_ = setup
    for body in (messages.unsigned(C.OTA_CHUNK_ACK, 5, {C.K_RE: 4, C.K_OFFSET: 996}),
                 messages.unsigned(C.OTA_STATUS, 6, {C.K_RE: 1, C.K_STATUS: "manifest"})):
        assert ingest.handle(topics.up(DEV), body) == []
    assert ingest.counts["ota_transfer"] == 2 and not any(ingest.dropped.values())
    # Any other unsigned type is still refused.
    assert ingest.handle(topics.up(DEV), messages.unsigned(C.ACK, 7, {})) == []
    assert ingest.dropped["unsigned"] == 1


def test_a_retired_device_is_refused(setup):
    ingest, dev, _, reg, _, _ = setup
    reg.upsert_device(DEV, status="retired")
    assert ingest.handle(topics.up(DEV), dev.telemetry(1)) == []
    assert ingest.dropped["unknown_device"] == 1


def test_an_alarm_is_stored_reported_and_acked_through_the_event_journal(setup):
    ingest, dev, _, reg, ring, alarms = setup
    leak = {C.K_FROM: 7, C.K_NAME: "leak", C.K_ACTIVE: True, C.K_TIME: T0, C.K_LEVEL: 2}
    out = ingest.handle(topics.up(DEV), dev.body(C.EVENT, leak))
    assert [e["name"] for e in store.device_events(reg, DEV)] == ["leak"]
    assert [(d, r["name"], r["active"]) for d, r in alarms] == [(DEV, "leak", 1)]
    fetch = messages.open_body(out[0][1], ring)
    assert fetch.type == C.EVENT_FETCH     # never an ack of the pushed event's own seq
    # The device answers the fetch; its upto is acknowledged, the alarm not reported twice.
    events = dev.body(C.EVENTS, {C.K_RE: fetch.seq, C.K_RECORDS: [[6, {C.K_NAME: "boot"}],
                                                                   [7, leak]],
                                 C.K_FROM: 6, C.K_UPTO: 7, C.K_MORE: False})
    out = ingest.handle(topics.up(DEV), events)
    ack = messages.open_body(out[0][1], ring)
    assert (ack.type, ack.payload) == (C.EVENT_ACK, {C.K_UPTO: 7})
    assert [e["journal_seq"] for e in store.device_events(reg, DEV)] == [6, 7]
    assert len(alarms) == 1


def test_device_ids_that_would_widen_an_acl_are_not_topics():
    assert topics.device_of_up("ek/wm-1/up") == "wm-1"
    for bad in ("ek/wm+1/up", "ek/#/up", "ek//up", "ek/a/b/up", "xx/wm-1/up", "ek/wm-1/up/x",
                "ek/" + "a" * 33 + "/up", "ek/wm 1/up"):
        assert topics.device_of_up(bad) is None, bad


def test_an_ack_refused_as_replayed_is_signed_again_once(setup):
    """A technician's command signed after our ack reached the device first: the device
    refuses the ack as replayed; the service signs the same ack again, with a fresh seq, once."""
    ingest, dev, _, reg, ring, _ = setup
    ack = messages.open_body(ingest.handle(topics.up(DEV), dev.telemetry(1, 2))[0][1], ring)

    def refused(re):
        return dev.body(C.ERROR, {C.K_RE: re, C.K_CODE: C.E_REPLAYED, C.K_MSG: "replayed"})
    assert ingest.handle(topics.up(DEV), refused(ack.seq + 999)) == []    # not our last ack
    again = ingest.handle(topics.up(DEV), refused(ack.seq))
    resent = messages.open_body(again[0][1], ring)
    assert (resent.type, resent.payload) == (C.TELEMETRY_ACK, {C.K_UPTO: 2})
    assert resent.seq > ack.seq
    assert ingest.handle(topics.up(DEV), refused(resent.seq)) == []       # once only
    # The device's ACK says how much it still holds.
    ingest.handle(topics.up(DEV), dev.body(C.ACK, {C.K_RE: resent.seq, C.K_UPTO: 2,
                                                    C.K_COUNT: 0}))
    assert ingest.pending[DEV] == 0 and ingest.counts["acks_resigned"] == 1
