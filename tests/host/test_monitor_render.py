"""`edgekit monitor --json` names what the wire numbers: payload labels, SenML labels and
message types, on messages that went through the real sign/open path."""
import json

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edgekit import catalog as C
from edgekit.operate import render
from edgekit.protocol import messages


def opened(msg_type, payload):
    key = Ed25519PrivateKey.generate()
    ring = messages.Keyring()
    ring.add(key.public_key().public_bytes_raw(), C.ROLE_DEVICE)
    return messages.open_body(messages.signed(msg_type, payload, key, 7, "wm-0001"), ring)


def test_telemetry_labels_and_senml_records_are_named():
    pack = [{C.SENML_BN: "urn:dev:ek:wm-0001:", C.SENML_BT: 1767225600, C.SENML_N: "volume",
             C.SENML_U: "l", C.SENML_V: 1200.5}, {C.SENML_N: "flow", C.SENML_V: 0.25,
                                                   C.SENML_T: 60}]
    msg = opened(C.TELEMETRY, {C.K_RECORDS: [[41, pack]], C.K_FROM: 41, C.K_UPTO: 41,
                               C.K_MORE: False, C.K_DROPPED: 0})
    line = json.loads(json.dumps(render.as_json("wm-0001", msg), default=render.json_default))
    assert (line["type"], line["type_name"], line["seq"]) == (C.TELEMETRY, "TELEMETRY", 7)
    assert line["payload"]["upto"] == 41 and line["payload"]["more"] is False
    assert line["payload"]["records"] == [{"seq": 41, "senml": [
        {"bn": "urn:dev:ek:wm-0001:", "bt": 1767225600, "n": "volume", "u": "l", "v": 1200.5},
        {"n": "flow", "v": 0.25, "t": 60}]}]


def test_event_rows_bytes_and_unknown_labels():
    msg = opened(C.EVENTS, {C.K_RECORDS: [[3, {C.K_NAME: "tamper", C.K_ACTIVE: True}]],
                            C.K_HWID: b"\x01\xab", 9999: "from a newer device"})
    line = json.loads(json.dumps(render.as_json("wm-0001", msg), default=render.json_default))
    assert line["type_name"] == "EVENTS"
    assert line["payload"]["records"] == [{"seq": 3, "event": {"name": "tamper",
                                                                "active": True}}]
    assert line["payload"]["hwid"] == "01ab"
    assert line["payload"]["9999"] == "from a newer device"


def test_every_message_type_has_one_name():
    types = [v for k, v in vars(C).items() if k in C.TYPE_NAMES.values()]
    assert len(C.TYPE_NAMES) == len(types) == len(set(types))
    for t in C.UNSIGNED_OK + tuple(C.SIGNER_ROLES):
        assert not C.type_name(t).startswith("0x"), t
    assert C.type_name(0xEE) == "0xee"
