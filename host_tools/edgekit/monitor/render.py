"""Verified messages as a person (or jq) reads them: payload labels and SenML labels by name.

The wire uses small integers (protocol/catalog.py); `edgekit monitor --json` prints names, so
`"name": "tamper"` rather than `"22": "tamper"`. A label this host does not know (a newer
device) keeps its number, as a string."""
from edgekit import catalog as C


def _senml(record):
    if not isinstance(record, dict):
        return record
    return {C.SENML_NAMES.get(k, str(k)): v for k, v in record.items()}


def _records(records):
    """K_RECORDS: [[journal seq, SenML pack], ...] in TELEMETRY and EVENTS."""
    out = []
    for row in records if isinstance(records, list) else ():
        body = row[1] if isinstance(row, list) and len(row) == 2 else None
        if isinstance(body, list):
            out.append({"seq": row[0], "senml": [_senml(r) for r in body]})
        elif isinstance(body, dict):
            out.append({"seq": row[0], "event": named(body)})
        else:
            out.append(row)
    return out


def named(payload):
    """A payload map with its labels named (values untouched, except K_RECORDS rows)."""
    if not isinstance(payload, dict):
        return payload
    out = {}
    for key, value in payload.items():
        name = C.LABEL_NAMES.get(key, str(key)) if isinstance(key, int) else str(key)
        out[name] = _records(value) if key == C.K_RECORDS else value
    return out


def as_json(device_id, msg):
    """One monitor line: the device, the message type by number and name, the payload."""
    return {"device": device_id, "type": msg.type, "type_name": C.type_name(msg.type),
            "seq": msg.seq, "payload": named(msg.payload)}


def json_default(value):
    """bytes (keys, digests, UIDs) as hex; anything else cbor2 gave us as its text."""
    return value.hex() if isinstance(value, (bytes, bytearray)) else str(value)
