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


# --- a command's result as a person reads it (`edgekit command` without --json) ------------
# The firmware names its fields with the unit as a suffix (volume_ml, uptime_s, flow_lpm):
# the suffix gives the unit shown. Longest suffix first.
_UNITS = (("_lpm", "L/min"), ("_mah", "mAh"), ("_pct", "%"), ("_ms", "ms"), ("_mv", "mV"),
          ("_ml", "mL"), ("_ma", "mA"), ("_s", "s"), ("_c", "°C"), ("_w", "W"), ("_l", "L"),
          ("_h", "h"))
_BYTES_KEYS = ("heap_free", "heap_used", "free", "size")
# Unix times (seconds) between 2001 and 2100 under these names print as ISO 8601 UTC.
_TIME_KEYS = ("time", "date", "at", "since", "until", "issued", "expires", "synced")
_UNIX_MIN, _UNIX_MAX = 1_000_000_000, 4_102_444_800


def _unit(key):
    key = str(key).lower()
    if key in _BYTES_KEYS or key.startswith("heap_") and key != "heap_board":
        return "B"
    for suffix, unit in _UNITS:
        if key.endswith(suffix):
            return unit
    return ""


def _is_time(key, value):
    key = str(key).lower()
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and _UNIX_MIN <= value < _UNIX_MAX
            and any(key == k or key.endswith("_" + k) or key.startswith(k + "_")
                    for k in _TIME_KEYS))


def _iso(unix):
    from datetime import datetime, timezone
    return datetime.fromtimestamp(unix, timezone.utc).isoformat(timespec="seconds") \
        .replace("+00:00", "Z")


def _span(seconds):
    seconds = int(seconds)
    d, rest = divmod(seconds, 86400)
    h, rest = divmod(rest, 3600)
    m, s = divmod(rest, 60)
    parts = [f"{d} d"] if d else []
    parts += [f"{h} h"] if h or d else []
    parts += [f"{m} min"] if (m or h or d) and not d else []
    parts += [f"{s} s"] if not (d or h) else []
    return " ".join(parts)


def scalar_text(key, value):
    """One value: numbers without float noise, the unit its name implies, times as ISO 8601
    UTC, bytes as hex, None as '-'."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (bytes, bytearray)):
        return value.hex() if len(value) <= 32 else f"<{len(value)} bytes>"
    if _is_time(key, value):
        return _iso(value)
    if isinstance(value, float):
        text = str(int(value)) if value.is_integer() and abs(value) < 1e15 \
            else format(value, ".6g")
    elif isinstance(value, int):
        text = str(value)
    else:
        return str(value)
    unit = _unit(key)
    if unit in ("s", "ms") and value and abs(value) >= (60 if unit == "s" else 60000):
        span = _span(value if unit == "s" else value / 1000)
        return f"{text} {unit} ({span})"
    return f"{text} {unit}" if unit else text


def _is_row(value):
    return isinstance(value, (list, tuple)) and all(
        not isinstance(v, (dict, list, tuple)) for v in value)


def readable_lines(value, key="result", indent=""):
    """Lines for a command's result: maps as 'name: value' (nested maps indented), lists of
    rows one row a line, scalars through scalar_text."""
    if isinstance(value, dict):
        if not value:
            return [f"{indent}{key}: -"]
        lines = [f"{indent}{key}:"] if key is not None else []
        inner = indent + "  " if key is not None else indent
        for k, v in value.items():
            if isinstance(v, (dict, list, tuple)) and not _is_row(v) or isinstance(v, dict):
                lines += readable_lines(v, k, inner)
            elif isinstance(v, (list, tuple)):
                lines.append(f"{inner}{k}: " + (", ".join(scalar_text(k, x) for x in v)
                                                 if v else "-"))
            else:
                lines.append(f"{inner}{k}: {scalar_text(k, v)}")
        return lines
    if isinstance(value, (list, tuple)):
        if not value:
            return [f"{indent}{key}: -"]
        if _is_row(value):
            return [f"{indent}{key}: " + ", ".join(scalar_text(key, x) for x in value)]
        lines = [f"{indent}{key}: {len(value)} rows"]
        for row in value:
            if _is_row(row):
                lines.append(f"{indent}  " + "  ".join(scalar_text(key, x) for x in row))
            else:
                lines += readable_lines(row, None, indent + "  ")
        return lines
    return [f"{indent}{key}: {scalar_text(key, value)}"]
