"""Stored telemetry for a city's data platform: SenML JSON (RFC 8428) and FIWARE NGSI-LD
entities of the smart data models docs/data-mapping.md names.

    senml_json(device_id, rows)            -> a SenML pack (list of records), JSON-ready
    ngsi_ld(device, rows, location=None)   -> NGSI-LD entities (normalized), one per model

The NGSI-LD entities carry the latest value of each mapped record, with `observedAt` (the
record's time); records with no platform attribute (docs/data-mapping.md "edgekit") stay out.
Locations are what the public register publishes (coarsened per the device's privacy level):
the caller passes them.
"""
from datetime import datetime, timezone

NGSI_LD_CONTEXT = ["https://raw.githubusercontent.com/smart-data-models/dataModel.Environment/"
                   "master/context.jsonld",
                   "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld"]

# kind -> [(data model, subject, {SenML name: (attribute, scale)})] (docs/data-mapping.md)
MODELS = {
    "water_meter": [("WaterConsumptionObserved", "dataModel.WaterConsumption",
                     {"volume": ("waterConsumption", 1.0)})],
    "water_atm": [("WaterConsumptionObserved", "dataModel.WaterConsumption",
                   {"volume": ("waterConsumption", 1.0)}),
                  ("WaterQualityObserved", "dataModel.WaterQuality",
                   {"turbidity": ("turbidity", 1.0), "tds": ("tds", 1.0)})],
    "smart_bin": [("WasteContainer", "dataModel.WasteManagement",
                   {"fill": ("fillingLevel", 0.01), "temp": ("temperature", 1.0)})],
    "env_sensor": [("AirQualityObserved", "dataModel.Environment",
                    {"temp": ("temperature", 1.0), "rh": ("relativeHumidity", 0.01),
                     "pm1": ("pm1", 1.0), "pm25": ("pm25", 1.0), "pm10": ("pm10", 1.0)}),
                   ("NoiseLevelObserved", "dataModel.Environment",
                    {"noise": ("LAeq", 1.0), "noise_max": ("LAmax", 1.0)})],
}


def _iso(unix):
    return datetime.fromtimestamp(unix, timezone.utc).isoformat(timespec="seconds") \
        .replace("+00:00", "Z")


def senml_json(device_id, rows):
    """RFC 8428 JSON: the base name once, absolute times (unix s) where the device had a
    date, each value in the field of its type (v number, vs string, vb boolean)."""
    out = []
    for r in rows:
        rec = {"n": r["name"]}
        if not out:
            rec["bn"] = f"urn:dev:ek:{device_id}:"
        if r.get("unix") is not None:
            rec["t"] = r["unix"]
        if r.get("value") is not None:
            rec["v"] = r["value"]
        elif r.get("value_text") in ("true", "false"):
            rec["vb"] = r["value_text"] == "true"
        elif r.get("value_text") is not None:
            rec["vs"] = r["value_text"]
        if r.get("unit"):
            rec["u"] = r["unit"]
        out.append(rec)
    return out


def ngsi_ld(device, rows, location=None):
    """NGSI-LD entities (normalized form) of `device` (a registry row: device_id, kind) from
    its stored `rows`: the latest dated value of each mapped record. `location`: (lat, lon)
    as published, or None."""
    latest = {}
    for r in rows:
        if r.get("value") is not None and r.get("unix") is not None:
            latest[r["name"]] = r           # rows are in journal order: the last one wins
    entities = []
    for model, _subject, mapping in MODELS.get(device["kind"], ()):
        entity = {"id": f"urn:ngsi-ld:{model}:{device['device_id']}", "type": model,
                  "@context": NGSI_LD_CONTEXT}
        newest = None
        for name, (attribute, scale) in mapping.items():
            r = latest.get(name)
            if r is None:
                continue
            entity[attribute] = {"type": "Property", "value": round(r["value"] * scale, 6),
                                 "observedAt": _iso(r["unix"])}
            newest = max(newest or r["unix"], r["unix"])
        if newest is None:
            continue                        # nothing of this model measured yet
        if model in _DATED:
            entity["dateObserved"] = {"type": "Property", "value": _iso(newest)}
        if location is not None:
            lat, lon = location
            entity["location"] = {"type": "GeoProperty",
                                  "value": {"type": "Point", "coordinates": [lon, lat]}}
        entities.append(entity)
    return entities


# Models whose schema has a dateObserved attribute (the others date each attribute with
# NGSI-LD observedAt only).
_DATED = {"AirQualityObserved", "NoiseLevelObserved", "WaterQualityObserved"}
