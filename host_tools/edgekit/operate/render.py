"""Verified messages as a person (or jq) reads them: payload labels and SenML labels by name.

The wire uses small integers (protocol/catalog.py); `edgekit monitor --json` prints names, so
`"name": "tamper"` rather than `"22": "tamper"`. A label this host does not know (a newer
device) keeps its number, as a string. Stored records (registry/telemetry.py) print one
line each: the text monitor and `edgekit devices telemetry`."""
import json

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


def value_text(row):
    """A stored record's value as a person reads it: whole numbers without '.0', others to
    six significant digits, text values as they are, then the unit."""
    value = row.get("value")
    if value is None:
        text = row.get("value_text")
        text = "-" if text is None else str(text)
    elif float(value).is_integer() and abs(value) < 1e15:
        text = str(int(value))
    else:
        text = format(value, ".6g")
    unit = row.get("unit")
    return f"{text} {unit}" if unit else text


def record_line(row):
    """One telemetry record: ISO 8601 UTC time, device, journal position, name, value."""
    return (f"{row['time']}  {row['device_id']}  #{row['journal_seq']}.{row['idx']}  "
            f"{row['name']} = {value_text(row)}")


def event_line(row):
    """One journaled event. Without a device time, the time of receipt stands in, marked."""
    detail = row["detail"]
    if not isinstance(detail, dict):
        detail = json.loads(detail)
    when = row["time"] or f"{row['received_at']} (received; device clock unset)"
    state = "SET" if row["active"] else "cleared"
    lasted = detail.get("duration")
    tail = f" (lasted {lasted} s)" if lasted is not None else ""
    return f"{when}  {row['device_id']}  #{row['journal_seq']}  EVENT {row['name']} {state}{tail}"
