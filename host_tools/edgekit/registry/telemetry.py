"""Telemetry and device events, stored in the registry before the device may forget them.

A device deletes journaled records once the host acknowledges them (SPEC 8.3), so the host
writes every verified pack here, in one transaction, and only then acknowledges. Rows are
keyed by the device's journal position (device id, journal seq, record index): a pack that
comes again after a lost acknowledgement is stored once, whatever the host did in between.

SenML times (RFC 8428 4.5.3): base time plus record time at or above 2**28 is unix time from
the device's clock (`clock` = "device"); below it, seconds relative to the moment the pack
was sent, resolved here against the time of receipt (`clock` = "receipt"). An event's time is
unix time, or minus the device's uptime while its clock is unset: no absolute time can be
derived from that, so the row keeps the device's figure in its detail and `time` is empty
(`clock` = "uptime").
"""
import json
import math
from datetime import datetime, timezone

from edgekit import catalog as C
from edgekit.errors import EdgekitError

_ABSOLUTE = 1 << 28     # RFC 8428 4.5.3: smaller times are relative
TELEMETRY_COLUMNS = ("device_id", "journal_seq", "idx", "time", "clock", "name", "value",
                     "value_text", "unit", "received_at")
EVENT_COLUMNS = ("device_id", "journal_seq", "time", "clock", "name", "active", "detail",
                 "received_at")


def iso(unix):
    """ISO 8601 UTC to the second, 'Z' suffix; None for None."""
    if unix is None:
        return None
    return datetime.fromtimestamp(unix, timezone.utc).isoformat(timespec="seconds") \
        .replace("+00:00", "Z")


def _number(value):
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    return value if ok and math.isfinite(value) else None


def _jsonable(value):
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def _named(payload):
    return {(C.LABEL_NAMES.get(k, str(k)) if isinstance(k, int) else str(k)): v
            for k, v in payload.items()}


def pack_rows(device_id, seq, pack, received):
    """The rows of one SenML pack (journal `seq`), received at unix time `received`.
    A record this host cannot read is kept whole as text, never dropped: it will be acked."""
    own = f"urn:dev:ek:{device_id}:"
    base = {"bn": "", "bt": 0, "bu": None, "bv": 0, "bs": 0}
    rows = []
    for idx, rec in enumerate(pack if isinstance(pack, list) else [pack]):
        row = {"device_id": device_id, "journal_seq": seq, "idx": idx, "value": None,
               "value_text": None, "unit": None, "received_at": iso(received)}
        if not isinstance(rec, dict):
            rows.append(dict(row, name="(unreadable)", clock="receipt", unix=received,
                             value_text=json.dumps(_jsonable(rec))))
            continue
        for label, key in (("bn", C.SENML_BN), ("bt", C.SENML_BT), ("bu", C.SENML_BU),
                           ("bv", C.SENML_BV), ("bs", C.SENML_BS)):
            if key in rec:
                base[label] = rec[key]
        name = f"{base['bn'] if isinstance(base['bn'], str) else ''}{rec.get(C.SENML_N, '')}"
        row["name"] = name[len(own):] if name.startswith(own) else name
        row["unit"] = rec.get(C.SENML_U, base["bu"])
        v, s = _number(rec.get(C.SENML_V)), _number(rec.get(C.SENML_S))
        if v is not None:
            row["value"] = v + (_number(base["bv"]) or 0)
        elif s is not None:
            row["value"] = s + (_number(base["bs"]) or 0)
        elif C.SENML_VS in rec:
            row["value_text"] = str(rec[C.SENML_VS])
        elif C.SENML_VB in rec:
            row["value_text"] = "true" if rec[C.SENML_VB] else "false"
        elif C.SENML_VD in rec:
            row["value_text"] = _jsonable(rec[C.SENML_VD])
        bt, t = _number(base["bt"]), _number(rec.get(C.SENML_T, 0))
        when = (bt or 0) + (t or 0)
        if when >= _ABSOLUTE:
            row["clock"], row["unix"] = "device", float(when)
        else:
            row["clock"], row["unix"] = "receipt", received + when
        rows.append(row)
    for row in rows:
        row["time"] = iso(row["unix"])
    return rows


def event_row(device_id, seq, payload, received):
    """The row of one journaled event (EVENT push or EVENTS record)."""
    payload = payload if isinstance(payload, dict) else {C.K_MSG: payload}
    t = _number(payload.get(C.K_TIME))
    unix, clock = (float(t), "device") if t is not None and t >= _ABSOLUTE else (None, "uptime")
    active = payload.get(C.K_ACTIVE)
    detail = _named({k: v for k, v in payload.items() if k != C.K_FROM})
    return {"device_id": device_id, "journal_seq": seq, "unix": unix, "time": iso(unix),
            "clock": clock, "name": str(payload.get(C.K_NAME, "?")),
            "active": None if active is None else int(bool(active)),
            "detail": json.dumps(_jsonable(detail), sort_keys=True),
            "received_at": iso(received)}


def _check_seq(seq):
    if not isinstance(seq, int) or isinstance(seq, bool) or not 0 <= seq < 1 << 63:
        raise EdgekitError(f"journal seq {seq!r} is not an unsigned integer: the device sent "
                           "a malformed record; nothing was stored or acknowledged")
    return seq


def store(registry, device_id, packs=(), events=(), received=None):
    """Write telemetry packs [(seq, pack)] and events [(seq, payload)] in ONE transaction.
    Returns (telemetry rows, event rows), each row with `new`: False when this registry
    already held it. When it returns, everything given is durable (synchronous=FULL) and
    may be acknowledged."""
    received = datetime.now(timezone.utc).timestamp() if received is None else received
    rows = [r for seq, pack in packs for r in pack_rows(device_id, _check_seq(seq), pack,
                                                        received)]
    evs = [event_row(device_id, _check_seq(seq), p, received) for seq, p in events]
    with registry._write() as db:
        try:
            for r in rows:
                cur = db.execute(
                    "INSERT INTO telemetry (device_id, journal_seq, idx, time, unix, clock, name, "
                    "value, value_text, unit, received_at) VALUES "
                    "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    (r["device_id"], r["journal_seq"], r["idx"], r["time"], r["unix"],
                     r["clock"], r["name"], r["value"], r["value_text"], r["unit"],
                     r["received_at"]))
                r["new"] = bool(cur.rowcount)
            for e in evs:
                cur = db.execute(
                    "INSERT INTO device_events (device_id, journal_seq, time, unix, clock, name, "
                    "active, detail, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT DO NOTHING",
                    (e["device_id"], e["journal_seq"], e["time"], e["unix"], e["clock"],
                     e["name"], e["active"], e["detail"], e["received_at"]))
                e["new"] = bool(cur.rowcount)
                if e["new"]:
                    # The device's history (`devices show`) lists each alarm once too.
                    db.execute("INSERT INTO events (device_id, time, type, detail) VALUES "
                               "(?, ?, 'alarm', ?)", (device_id, e["received_at"], json.dumps(
                                   {"name": e["name"], "active": bool(e["active"]),
                                    "journal_seq": e["journal_seq"]}, sort_keys=True)))
        except registry.IntegrityError:
            raise EdgekitError(f"device {device_id} is not in the registry {registry.path}: "
                               "provision it (or pick its registry with --registry) before "
                               "storing its data") from None
    return rows, evs


def telemetry(registry, device_id, since=None, limit=None, after_seq=None):
    """Stored records of a device in the device's journal order (packs oldest first, records
    as in the pack); `since` is unix seconds; `limit` keeps the last N; `after_seq` only
    packs beyond that journal seq (what was stored since a reader last looked)."""
    sql = "SELECT * FROM telemetry WHERE device_id = ?"
    args = [device_id]
    if since is not None:
        sql += " AND unix >= ?"
        args.append(since)
    if after_seq is not None:
        sql += " AND journal_seq > ?"
        args.append(after_seq)
    sql += " ORDER BY journal_seq DESC, idx DESC"
    if limit is not None:
        sql += " LIMIT ?"
        args.append(int(limit))
    return [dict(r) for r in registry._db.execute(sql, args)][::-1]


def device_events(registry, device_id, since=None, after_seq=None):
    """Stored journaled events of a device, in journal order; `since` filters on time
    (events without a device time are kept: their time is unknown, not old); `after_seq`
    keeps events beyond that journal seq."""
    sql = "SELECT * FROM device_events WHERE device_id = ?"
    args = [device_id]
    if since is not None:
        sql += " AND (unix IS NULL OR unix >= ?)"
        args.append(since)
    if after_seq is not None:
        sql += " AND journal_seq > ?"
        args.append(after_seq)
    rows = [dict(r) for r in registry._db.execute(sql + " ORDER BY journal_seq", args)]
    for row in rows:
        row["detail"] = json.loads(row["detail"])
    return rows
