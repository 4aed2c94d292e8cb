"""Stored telemetry for a city's data platform: SenML JSON (RFC 8428) and FIWARE NGSI-LD
entities of the smart data models docs/data-mapping.md names.

    senml_json(device_id, rows)            -> a SenML pack (list of records), JSON-ready
    ngsi_ld(device, rows, location=None, events=())
                                           -> NGSI-LD entities (normalized)

The NGSI-LD entities carry the latest value of each mapped record, with `observedAt` (the
record's time); records with no platform attribute (docs/data-mapping.md "edgekit") stay out.
A mean over a period (`pm25_1h`, `pm25_8h`, `noise_1h`...) is an entity of its own, one per
period, dated by the period it covers. Alarms become what the models have for them: flags of
the entity (a meter's leak, tamper, backflow), a WasteContainer's `status`, or `Alert`
entities for what a city is alerted to (air pollution, a fire, polluted water); device faults
(a jam, a low battery) are maintenance, not city alerts, and stay out. Locations are what
the public register publishes (coarsened per the device's privacy level): the caller passes
them.
"""
from datetime import datetime, timezone

from edgekit.errors import EdgekitError

NGSI_LD_CONTEXT = ["https://raw.githubusercontent.com/smart-data-models/dataModel.Environment/"
                   "master/context.jsonld",
                   "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld"]

# What the published schemas require besides id and type (AirQualityObserved 0.1.3,
# NoiseLevelObserved 0.2.1, WasteContainer 0.2.0; WaterConsumptionObserved and Alert require
# nothing more). An entity that lacks one is not exported: the caller is told what to set.
REQUIRED = {"AirQualityObserved": ("dateObserved", "location"),
            "NoiseLevelObserved": ("dateObservedFrom", "dateObservedTo", "location"),
            "WasteContainer": ("location",)}

# waterConsumption is an integer in its schema: the meter's total in whole litres, with the
# unit said (NGSI-LD unitCode, UN/CEFACT LTR), not cubic metres rounded to nothing.
LITRES = "LTR"

# Averaging periods a record name may end with (docs/data-mapping.md): `<q>_<period>` is the
# mean of `<q>` over the period that ends at the record's time.
PERIODS = {"1h": 3600, "8h": 8 * 3600, "24h": 24 * 3600}

# kind -> {event name: (attribute, model)}: an alarm that is a numeric flag of a model
# (1 while active, 0 once cleared). The meter's backflow is alarmWaterQuality: the model
# describes that attribute as "the potential of backflows occurring".
FLAGS = {
    "water_meter": {"leak": ("alarmStopsLeaks", "WaterConsumptionObserved"),
                    "tamper": ("alarmTamper", "WaterConsumptionObserved"),
                    "backflow": ("alarmWaterQuality", "WaterConsumptionObserved")},
    "water_atm": {"leak": ("alarmStopsLeaks", "WaterConsumptionObserved")},
}

# WasteContainer.status from the bin's alarms, the first active one wins (the model's enum).
BIN_STATUS = (("fire", "burning"), ("tilt", "dropped"), ("lid_open", "lidOpen"))

# kind -> {event name: (category, subCategory or None, severity)} of an Alert (dataModel.Alert
# enums).
ALERTS = {
    "env_sensor": {"pm25": ("environment", "airPollution", "medium"),
                   "pm10": ("environment", "airPollution", "medium"),
                   "noise": ("environment", None, "low"),
                   "temp": ("weather", None, "low"),
                   "rh": ("weather", None, "informational")},
    "smart_bin": {"fire": ("security", "buildingFire", "critical")},
    "water_meter": {"burst": ("environment", "flood", "high")},
    "water_atm": {"tds_high": ("environment", "waterPollution", "high"),
                  "ntu_high": ("environment", "waterPollution", "high"),
                  "tds_warn": ("environment", "waterPollution", "low"),
                  "ntu_warn": ("environment", "waterPollution", "low")},
}

# Alarms for whoever maintains or empties the device, not for the city's data platform
# (a bin that is full or due is its collection round's business; the rest are faults).
MAINTENANCE = {
    "env_sensor": {"env_fault", "pm_fault", "noise_fault", "low_battery"},
    "water_meter": {"no_flow", "low_battery"},
    "water_atm": {"no_flow", "tank_empty", "tank_low", "water_fault", "ledger_full"},
    "smart_bin": {"jam", "full", "age", "distance_fault", "low_battery"},
}

# kind -> [(data model, subject, {SenML name: (attribute, scale or "litres")})]
# (docs/data-mapping.md)
MODELS = {
    "water_meter": [("WaterConsumptionObserved", "dataModel.WaterConsumption",
                     {"volume": ("waterConsumption", "litres")})],
    "water_atm": [("WaterConsumptionObserved", "dataModel.WaterConsumption",
                   {"volume": ("waterConsumption", "litres")}),
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


def _prop(value, observed=None):
    out = {"type": "Property", "value": value}
    if observed is not None:
        out["observedAt"] = _iso(observed)
    return out


def _period_of(name):
    """(base name, period) of a record name: ("pm25", "8h") for pm25_8h, (name, None)."""
    base, _, tail = name.rpartition("_")
    return (base, tail) if base and tail in PERIODS else (name, None)


def _latest_events(events):
    """{name: (active, time of the last set, time of the last clear)} from dated events in
    journal order."""
    out = {}
    for e in events:
        if e.get("unix") is None:
            continue                        # before the clock was set: no date to publish
        active, set_at, clear_at = out.get(e["name"], (False, None, None))
        if e.get("active") == 0:
            active, clear_at = False, e["unix"]
        else:                               # set, or a one-shot event (no active flag)
            active, set_at = True, e["unix"]
        out[e["name"]] = (active, set_at, clear_at)
    return out


def ngsi_ld(device, rows, location=None, events=()):
    """NGSI-LD entities (normalized form) of `device` (a registry row: device_id, kind) from
    its stored `rows` and `events` (journal order): the latest dated value of each mapped
    record, one entity per model and averaging period, plus its alarms. `location`:
    (lat, lon) as published, or None."""
    kind, device_id = device["kind"], device["device_id"]
    if location is None:
        for model, _subject, _mapping in MODELS.get(kind, ()):
            if "location" in REQUIRED.get(model, ()):
                raise EdgekitError(
                    f"{device_id}: {model} entities need a location and the public register "
                    f"has none for it: set it with `edgekit devices set {device_id} "
                    "--location LAT,LON`")
    latest, previous = {}, {}
    for r in rows:
        if r.get("value") is not None and r.get("unix") is not None:
            if r["name"] in latest:
                previous[r["name"]] = latest[r["name"]]["unix"]
            latest[r["name"]] = r           # rows are in journal order: the last one wins
    alarms = _latest_events(events)
    geo = None
    if location is not None:
        lat, lon = location
        geo = {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [lon, lat]}}
    entities = []
    for model, _subject, mapping in MODELS.get(kind, ()):
        for period in (None,) + tuple(PERIODS):
            entity = _observation(device_id, model, mapping, latest, previous, period)
            if entity is None:
                continue
            if period is None:
                _add_alarm_attributes(entity, kind, model, alarms)
            if geo is not None:
                entity["location"] = geo
            entities.append(entity)
    for name, (active, set_at, clear_at) in sorted(alarms.items()):
        rule = ALERTS.get(kind, {}).get(name)
        if rule is None or set_at is None:
            continue
        category, sub_category, severity = rule
        alert = {"id": f"urn:ngsi-ld:Alert:{device_id}:{name}", "type": "Alert",
                 "@context": NGSI_LD_CONTEXT, "category": _prop(category),
                 "severity": _prop(severity),
                 "description": _prop(f"{kind} {device_id}: {name} alarm "
                                      f"{'active' if active else 'cleared'}"),
                 "dateIssued": _prop(_iso(set_at)), "validFrom": _prop(_iso(set_at)),
                 "alertSource": {"type": "Relationship",
                                 "object": f"urn:ngsi-ld:Device:{device_id}"}}
        if sub_category:
            alert["subCategory"] = _prop(sub_category)
        if not active and clear_at is not None:
            alert["validTo"] = _prop(_iso(clear_at))
        if geo is not None:
            alert["location"] = geo
        entities.append(alert)
    return entities


def _observation(device_id, model, mapping, latest, previous, period):
    """One entity of `model`: the window values (period None) or the means over `period`,
    or None when nothing of it was measured. `previous`: each name's record before the
    latest, whose time starts the latest window."""
    entity_id = f"urn:ngsi-ld:{model}:{device_id}" + (f":{period}" if period else "")
    entity = {"id": entity_id, "type": model, "@context": NGSI_LD_CONTEXT}
    newest = None
    for name, (attribute, scale) in mapping.items():
        r = latest.get(f"{name}_{period}" if period else name)
        if r is None:
            continue
        if scale == "litres":
            entity[attribute] = dict(_prop(int(round(r["value"])), r["unix"]),
                                     unitCode=LITRES)
        else:
            entity[attribute] = _prop(round(r["value"] * scale, 6), r["unix"])
        newest = max(newest or r["unix"], r["unix"])
    if newest is None:
        return None                         # nothing of this model measured yet
    if period is not None:
        start = newest - PERIODS[period]
        entity["description"] = _prop(f"means over {period} from {_iso(start)} to "
                                      f"{_iso(newest)}")
    else:
        # The window before the newest record ended at the record before it (the device
        # reports window after window); a first record dates a window of its own instant.
        starts = [previous[n] for n in mapping if n in previous and latest[n]["unix"] == newest]
        start = max(starts) if starts else newest
    if model in _INTERVALS:
        entity["dateObservedFrom"] = _prop(_iso(start))
        entity["dateObservedTo"] = _prop(_iso(newest))
    if model in _DATED:
        entity["dateObserved"] = _prop(_iso(newest))
    return entity


def _add_alarm_attributes(entity, kind, model, alarms):
    """The alarms `model` has attributes for: flags, a bin's status."""
    for name, (attribute, flag_model) in FLAGS.get(kind, {}).items():
        if flag_model == model and name in alarms:
            active, set_at, clear_at = alarms[name]
            entity[attribute] = _prop(1 if active else 0, set_at if active else clear_at)
    if model == "WasteContainer":
        status, when = "ok", None
        for name, value in BIN_STATUS:
            if name in alarms:
                active, set_at, clear_at = alarms[name]
                if active and status == "ok":
                    status, when = value, set_at
                elif not active:
                    when = max(when or clear_at, clear_at)
        entity["status"] = _prop(status, when)


# Models whose schema has a dateObserved attribute (the others date each attribute with
# NGSI-LD observedAt only), and those with dateObservedFrom/To for a period.
_DATED = {"AirQualityObserved", "NoiseLevelObserved", "WaterQualityObserved"}
_INTERVALS = {"NoiseLevelObserved"}
