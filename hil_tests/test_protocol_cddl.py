"""Every message a provisioned device and its host really exchange, checked against the
normative CDDL (protocol/edgekit.cddl) by pycddl, an RFC 8610 validator independent of
this project: a water meter is provisioned, configured, synced, metered until it pushes
telemetry and an alarm on its own, fetched and acknowledged, commanded, given a key epoch,
updated over the air (with a manifest split into chunks and an abort), rebooted and sent
back to factory state, all through a tap on the link; refusals too (signed, unsigned, and
to a body with no readable header). The signed documents inside (device certificate, OTA
manifest, update result) and an ATM voucher are checked too. Each other kind (water ATM,
smart bin, environment sensor) is provisioned and its own telemetry, events, logs and command
results checked, with a voucher redeemed over the kiosk's link.

A type seen on the wire that has no rule fails, and so does a catalogue type that devices
or hosts send but this run did not capture (NOT_CAPTURED says which cannot be, and why).
"""
import cbor2
import pytest

from edgekit import catalog as C
from edgekit import vouchers
from edgekit.errors import ProtocolError
from edgekit.hil.devices import TEST_PASSPHRASE
from edgekit.keys import epoch as epoch_mod
from edgekit.ota import bundle as bundle_mod
from edgekit.ota.push import Pusher
from edgekit.ota.sign import sign_with_keystore
from edgekit.testing.cddl import Checker, TapTarget, rule_for


pytest.importorskip("pycddl", reason="pycddl (pip install -e .[test]) validates the CDDL")

pytestmark = pytest.mark.hil(kind="water_meter")

# Catalogue types no device or host sends, so nothing can be captured.
NOT_CAPTURED = {
    C.DOC_KEY_CERT: "reserved: SPEC defines no payload and no tool issues one",
}
# Documents: checked as documents (below), not as link messages.
DOCUMENTS = {C.DOC_DEVICE_CERT, C.DOC_VOUCHER, C.DOC_OTA_MANIFEST, C.DOC_UPDATE_RESULT}

T0 = 1767225600          # 2026-01-01T00:00:00Z
GARBAGE = cbor2.dumps(7)    # well-formed CBOR, but no envelope


@pytest.fixture(scope="module")
def checker():
    return Checker()


@pytest.fixture(scope="module")
def update(hil_fleet):
    b = bundle_mod.build("esp32", "water_meter", "1.0.1", seq=2, app_only=True, deadline=30)
    return sign_with_keystore(b, hil_fleet.keystore, TEST_PASSPHRASE)


def open_sign1(data):
    item = cbor2.loads(data)
    item = item.value if isinstance(item, cbor2.CBORTag) else item
    return item[0], cbor2.loads(item[0]), item[2]


def drive(board, clock, world, provisioned, hil_fleet, update, log):
    """A device's life through a tapped link: each step is one a host really takes."""
    dev = provisioned(config={"report_s": 300, "burst_lpm": 60.0, "burst_min": 5},
                      target=TapTarget(board, log))
    s = dev.session
    s.request(C.TIME_SYNC, {C.K_TIME: T0}, expect=C.TIME)
    s.request(C.CONFIG_GET, {}, expect=C.CONFIG)
    s.request(C.CONFIG_GET, {C.K_NAME: "report_s"}, expect=C.CONFIG)
    with pytest.raises(Exception):      # an ERROR answer: no such setting
        s.request(C.CONFIG_GET, {C.K_NAME: "no_such_setting"}, expect=C.CONFIG)
    s.request(C.CONFIG_SET, {C.K_CONFIG: {"leak_window_h": 24}}, expect=C.ACK)

    # Metered water, then a burst: hourly packs pushed unsolicited on the report schedule,
    # and an EVENT pushed the moment the alarm rises.
    world.set(flow_lpm=5)
    clock.advance(3600 + 400)
    world.set(flow_lpm=0, burst_lpm=150)
    clock.advance(6 * 60)
    world.set(burst_lpm=0)
    rows, _, _ = dev.fetch_telemetry()
    assert rows, "the meter journaled no telemetry in an hour of flow"
    dev.ack_telemetry(rows[-1][0])
    records = dev.fetch_events()
    assert records, "a burst raised no event"
    s.request(C.EVENT_ACK, {C.K_UPTO: records[-1][0]}, expect=C.ACK)
    dev.fetch_logs()                    # nothing logged yet: an empty answer
    dev.command("diag")
    dev.command("read")

    # A key epoch with the same anchors under a new number (the fleet root signs it).
    trust = hil_fleet.keystore.anchors()
    message = epoch_mod.build_key_epoch(hil_fleet.signer("fleet"),
                                        hil_fleet.keystore.next_seq_for(
                                            hil_fleet.signer("fleet").kid.hex()),
                                        trust["epoch"] + 1, trust["anchors"], trust["revoked"])
    seq = cbor2.loads(open_sign1(message)[0])[C.HDR_SEQ]
    s.exchange(seq, message, expect=C.ACK)

    # OTA in real time (a trial's deadline runs on the device clock). A small max frame for
    # the first offer makes the manifest travel in OTA_CHUNKs after the offer; then abort.
    board.faults.set_time_mode("real")
    full_frame = s.max_frame
    s.max_frame = 300
    Pusher(s, update, dev.public_key).offer()
    s.max_frame = full_frame
    s.request(C.OTA_ABORT, {}, expect=C.ACK)
    # Refusals in their other forms: an unsigned ERROR (a chunk with no transfer open) and
    # one to a body whose header could not be read (K_RE null).
    with pytest.raises(ProtocolError):
        s.request(C.OTA_CHUNK, {C.K_OTA_SEQ: 2, C.K_OFFSET: 0, C.K_DATA: b"x"}, sign=False)
    s.send_body(GARBAGE)
    refusal = s.receive(5)
    assert refusal is not None and refusal.type == C.ERROR and refusal.payload[C.K_RE] is None
    result = Pusher(s, update, dev.public_key).run()
    assert result["status"] == "installed", result
    assert dev.fetch_logs(), "no log record (the confirmed update logs one)"

    dev.reconnect()
    s.hello()
    s.request(C.REBOOT, {}, expect=C.ACK)
    dev.reconnect()
    s.hello(timeout=10)
    s.request(C.REPROVISION, {C.K_DEVICE_ID: dev.id}, expect=C.ACK)
    return dev


def validate(checker, log):
    """{type: {(direction, signed)}} of the messages in `log`, after checking each one."""
    seen = {}
    problems = []
    for m in log:
        if m.type is None and m.direction == "host" and m.body == GARBAGE:
            continue                        # sent on purpose, to draw an ERROR
        name = C.TYPE_NAMES.get(m.type, f"0x{m.type or 0:02x}")
        seen.setdefault(m.type, set()).add((m.direction, m.signed))
        try:
            if m.signed:
                checker.check_signed(m.body, rule_for(m.type))
            else:
                checker.check("unsigned-body", m.body)
                checker.check(rule_for(m.type), m.payload)
                assert m.type in C.UNSIGNED_OK, "sent unsigned, but not in UNSIGNED_OK"
            checker.check("body", m.body, shape_only=True)
        except AssertionError as exc:
            text = f"{m.direction} {name}: {exc}"
            if text.split("\n")[0] not in {p.split("\n")[0] for p in problems}:
                problems.append(text)       # one report per kind of mismatch
    assert not problems, "\n".join(problems)
    return seen


@pytest.mark.hil(sim_s=4000)  # a wait it needs: skips early on a bench
def test_every_message_on_the_wire_matches_the_cddl(board, clock, world, provisioned,
                                                    hil_fleet, update, checker):
    log = []
    dev = drive(board, clock, world, provisioned, hil_fleet, update, log)
    names = C.TYPE_NAMES
    seen = validate(checker, log)

    # Unsolicited pushes (no K_RE) were among them: the schedule's TELEMETRY and the EVENT.
    pushed = {m.type for m in log if m.direction == "device" and C.K_RE not in m.value}
    assert {C.TELEMETRY, C.EVENT} <= pushed, sorted(pushed)

    states = {m.value[C.K_STATE] for m in log if m.type == C.CAPS}
    assert states == {"factory", "provisioned", "trial"}, states     # trial: SPEC 9.5
    errors = [m for m in log if m.type == C.ERROR]
    assert any(not m.signed for m in errors) and any(m.value[C.K_RE] is None for m in errors)

    # Signed documents carried inside messages.
    commit = next(m for m in log if m.type == C.PROV_COMMIT)
    check_document(checker, commit.value[C.K_CERT], C.DOC_DEVICE_CERT)
    manifest = reassemble_manifest(log)
    check_document(checker, manifest, C.DOC_OTA_MANIFEST)
    for m in log:
        if m.type == C.OTA_RESULT:
            check_document(checker, m.value[C.K_RESULT], C.DOC_UPDATE_RESULT)
    voucher = vouchers.mint(hil_fleet.signer("operator"), dev.id, 1, 500, issued=T0,
                            expires=T0 + 86400, card=bytes(7))
    check_document(checker, voucher, C.DOC_VOUCHER)

    expected = set(names) - DOCUMENTS - set(NOT_CAPTURED)
    missing = sorted(names[t] for t in expected - set(seen))
    assert not missing, f"sent by hosts or devices, but not captured: {missing}"
    print("captured:", ", ".join(f"{names[t]} {sorted(seen[t])}" for t in sorted(seen)))
    print("not captured:", {names[t]: why for t, why in NOT_CAPTURED.items()})


def check_document(checker, data, doc_type):
    assert open_sign1(data)[1][C.HDR_TYPE] == doc_type
    checker.check_signed(data, rule_for(doc_type))


def reassemble_manifest(log):
    """The signed manifest as it crossed the link: the offer's part, then manifest chunks."""
    offer = next(m.value for m in log if m.type == C.OTA_OFFER)
    data = bytearray(offer[C.K_MANIFEST])
    for m in log:
        if m.type == C.OTA_CHUNK and C.K_DIGEST in m.value and \
                m.value[C.K_DIGEST] == offer[C.K_DIGEST] and m.value[C.K_OFFSET] == len(data):
            data += m.value[C.K_DATA]
    assert len(data) == offer[C.K_SIZE], "the manifest did not cross the link whole"
    return bytes(data)


def hexuid(n):
    return n.to_bytes(4, "big").hex()


def drive_kind(kind, board, clock, world, provisioned, hil_fleet, log):
    """What each kind's own app sends: its SenML, events and command results."""
    config = {"poll_ms": 1000, "preset_l": 2, "settle_ms": 1500} if kind == "water_atm" else None
    dev = provisioned(config=config, target=TapTarget(board, log))
    dev.session.request(C.TIME_SYNC, {C.K_TIME: T0}, expect=C.TIME)
    if kind == "water_atm":
        card = 0x0A000001
        dev.command("prices", bands=[[20, 5000], [0, 9000]])
        dev.command("card", uid=hexuid(card), role="water")
        voucher = vouchers.mint(hil_fleet.signer("operator"), dev.id, 1, 250, issued=T0)
        dev.command("redeem", uid=hexuid(card), voucher=voucher)
        world.set(card=card)            # a customer draws water
        clock.advance(14)
        world.set(card=0)
        dev.command("balance", uid=hexuid(card))
        dev.command("tx_fetch", count=2)
    clock.advance(2 * 3600 + 60)
    rows, _, _ = dev.fetch_telemetry()
    assert rows, f"a {kind} journaled no telemetry in two hours"
    dev.fetch_events()
    dev.fetch_logs()
    dev.command("read" if kind != "water_atm" else "balances")
    return dev


@pytest.mark.parametrize("kind", [pytest.param(k, marks=pytest.mark.hil(kind=k))
                                  for k in ("water_atm", "smart_bin", "env_sensor")])
def test_each_kinds_messages_match_the_cddl(kind, board, clock, world, provisioned, hil_fleet,
                                            checker):
    log = []
    drive_kind(kind, board, clock, world, provisioned, hil_fleet, log)
    seen = validate(checker, log)
    assert {C.TELEMETRY, C.COMMAND_RESULT} <= set(seen)
    carried = [m.value[C.K_ARGS]["voucher"] for m in log
               if m.type == C.COMMAND and "voucher" in m.value.get(C.K_ARGS, {})]
    for voucher in carried:     # a voucher as it crossed the link, inside a COMMAND
        check_document(checker, voucher, C.DOC_VOUCHER)
    assert len(carried) == (kind == "water_atm")
    print(kind, "captured:", ", ".join(f"{C.TYPE_NAMES[t]} {sorted(seen[t])}"
                                       for t in sorted(seen)))
