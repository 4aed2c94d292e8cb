"""The public sensor register: what each device in public space collects and how long it is kept.

Cities publish such a register for transparency (Amsterdam's sensor register is one
example), and GDPR articles 13/14 require notice where data can relate to a person.
What each kind collects is stated once, beside its firmware (firmware/kinds/<kind>/
register.json); a new device kind is not registrable until it has one.
"""
import csv
import io
import json
from fnmatch import fnmatchcase

from edgekit.firmware_tree import KINDS as TREE_KINDS, kind_dir
from edgekit.registry.location import coarsen

# kind -> description, data categories, personal-data note, default retention in days: read
# from each kind's firmware/kinds/<kind>/register.json, where every category names the
# telemetry records and events that carry it (glob patterns). The register says what the
# firmware sends, no more: the soak campaigns check every record a device stored against
# these patterns (hil_tests/test_soak.py), so a new record without a category fails there.
def _load_kind(kind):
    path = kind_dir(kind) / "register.json"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        data = doc["data"]
        out = {"description": doc["description"], "personal_data": doc["personal_data"],
               "retention_days": int(doc["retention_days"]),
               "data": [c["what"] for c in data],
               "records": [p for c in data for p in c.get("records", ())],
               "events": [p for c in data for p in c.get("events", ())]}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RuntimeError(f"{path}: {exc}: each kind needs description, personal_data, "
                           "retention_days and data [{what, records, events}]") from None
    return out


KIND_DATA = {kind: _load_kind(kind) for kind in TREE_KINDS}


def undeclared(kind, records=(), events=()):
    """Names a device of `kind` sent that no data category of its register covers."""
    info = KIND_DATA[kind]
    out = [n for n in records if not any(fnmatchcase(n, p) for p in info["records"])]
    return out + [n for n in events if not any(fnmatchcase(n, p) for p in info["events"])]


KINDS = tuple(KIND_DATA)
# How precisely the register shows where a device is, unless `devices set --privacy` says
# otherwise: a meter is on private premises (its point is a household), the rest stand in
# public space. Levels: registry/location.py GRID_M.
PRIVACY_DEFAULT = {"water_meter": "block", "water_atm": "exact", "smart_bin": "exact",
                   "env_sensor": "exact"}

CSV_COLUMNS = ("device_id", "kind", "description", "site", "latitude", "longitude",
               "location_precision_m", "owner", "purpose", "data_collected", "personal_data",
               "retention_days", "status")


class RegisterError(ValueError):
    """The register cannot be published as it stands (the message says what to fix)."""


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
        if dev["kind"] not in KIND_DATA:
            raise ValueError(f"device {dev['device_id']} has kind {dev['kind']!r}, which has "
                             "no data-category entry in edgekit/registry/export.py; add one "
                             "before publishing the register")
    missing = [d["device_id"] for d in devices
               if not (d.get("owner") or "").strip() or not (d.get("purpose") or "").strip()]
    if missing:
        raise RegisterError(
            f"{len(missing)} device(s) have no owner or purpose, which the public register "
            f"must state: {', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''}; "
            "set them with `edgekit devices set ID --owner ORG --purpose TEXT`")
    for dev in devices:
        info = KIND_DATA[dev["kind"]]
        days = dev.get("retention_days") or retention.get(dev["kind"]) or info["retention_days"]
        lat, lon, precision = dev.get("lat"), dev.get("lon"), None
        if lat is not None and lon is not None:
            level = dev.get("privacy") or PRIVACY_DEFAULT.get(dev["kind"], "block")
            lat, lon, precision = coarsen(lat, lon, level)
        entries.append({
            "device_id": dev["device_id"], "kind": dev["kind"],
            "description": info["description"], "site": dev.get("site") or "",
            "latitude": lat, "longitude": lon, "location_precision_m": precision,
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
        row["location_precision_m"] = e["location_precision_m"] or ""
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
