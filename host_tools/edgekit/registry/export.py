"""The public sensor register: what each device in public space collects and how long it is kept.

Cities publish such a register for transparency (Amsterdam's sensor register is one
example), and GDPR articles 13/14 require notice where data can relate to a person.
The per-kind table below is the single statement of what edgekit devices collect; a new
device kind is not registrable until it has a row here.
"""
import csv
import io
import json

# kind -> description, data categories, personal-data note, default retention in days.
KIND_DATA = {
    "water_meter": {
        "description": "smart water meter on a supply connection",
        "data": ["hourly consumption totals (litres)",
                 "leak, burst, reverse-flow and tamper alarms",
                 "device health: battery, signal strength, reset cause"],
        "personal_data": "consumption of one connection; can indicate whether a home is "
                         "occupied",
        "retention_days": 730,
    },
    "water_atm": {
        "description": "prepaid drinking-water dispenser (water ATM)",
        "data": ["litres dispensed per transaction and time",
                 "prepaid voucher id and remaining credit",
                 "tank level and water-quality readings (turbidity, chlorine)",
                 "alarms: tamper, low tank, filter due"],
        "personal_data": "voucher ids are pseudonymous; no names, cards or images",
        "retention_days": 365,
    },
    "smart_bin": {
        "description": "waste bin fill-level sensor",
        "data": ["fill level (ultrasonic distance)",
                 "lid-open and tilt events",
                 "internal temperature (fire alarm)"],
        "personal_data": "none",
        "retention_days": 180,
    },
    "env_sensor": {
        "description": "environmental sensor (air quality, climate, noise)",
        "data": ["air temperature, humidity and pressure",
                 "particulate matter PM2.5 and PM10",
                 "noise level as 1-minute dB(A) averages (no audio is recorded)"],
        "personal_data": "none",
        "retention_days": 1825,
    },
}
KINDS = tuple(KIND_DATA)

CSV_COLUMNS = ("device_id", "kind", "description", "site", "latitude", "longitude", "owner",
               "purpose", "data_collected", "personal_data", "retention_days", "status")


def parse_retention(items) -> dict:
    """`["water_meter=365", ...]` (the --retention option) -> {kind: days}."""
    out = {}
    for item in items or ():
        kind, sep, days = item.partition("=")
        if not sep or kind not in KIND_DATA or not days.isdigit() or int(days) < 1:
            raise ValueError(f"--retention {item!r}: write KIND=DAYS with KIND one of "
                             f"{', '.join(KINDS)} and DAYS a whole number above 0")
        out[kind] = int(days)
    return out


def register_entries(devices, retention=None) -> list:
    """One register entry (a flat dict) per device; per-device retention beats --retention,
    which beats the kind's default."""
    retention = retention or {}
    entries = []
    for dev in devices:
        info = KIND_DATA.get(dev["kind"])
        if info is None:
            raise ValueError(f"device {dev['device_id']} has kind {dev['kind']!r}, which has "
                             "no data-category entry in edgekit/registry/export.py; add one "
                             "before publishing the register")
        days = dev.get("retention_days") or retention.get(dev["kind"]) or info["retention_days"]
        entries.append({
            "device_id": dev["device_id"], "kind": dev["kind"],
            "description": info["description"], "site": dev.get("site") or "",
            "latitude": dev.get("lat"), "longitude": dev.get("lon"),
            "owner": dev.get("owner") or "", "purpose": dev.get("purpose") or "",
            "data_collected": list(info["data"]), "personal_data": info["personal_data"],
            "retention_days": days, "status": dev.get("status") or "",
        })
    return entries


def to_csv(entries) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for e in entries:
        row = dict(e)
        row["data_collected"] = "; ".join(e["data_collected"])
        row["latitude"] = "" if e["latitude"] is None else e["latitude"]
        row["longitude"] = "" if e["longitude"] is None else e["longitude"]
        writer.writerow(row)
    return buf.getvalue()


def to_geojson(entries) -> tuple:
    """RFC 7946 FeatureCollection of Points; returns (text, ids left out for lack of location).

    Positions are [longitude, latitude] (RFC 7946 section 3.1.1), the reverse of how people
    usually say them.
    """
    features, unlocated = [], []
    for e in entries:
        if e["latitude"] is None or e["longitude"] is None:
            unlocated.append(e["device_id"])
            continue
        props = {k: v for k, v in e.items() if k not in ("latitude", "longitude")}
        features.append({"type": "Feature", "id": e["device_id"],
                         "geometry": {"type": "Point",
                                      "coordinates": [e["longitude"], e["latitude"]]},
                         "properties": props})
    doc = {"type": "FeatureCollection", "features": features}
    return json.dumps(doc, indent=1, ensure_ascii=False) + "\n", unlocated


def to_json(entries) -> str:
    return json.dumps(entries, indent=2, ensure_ascii=False) + "\n"
