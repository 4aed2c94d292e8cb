"""Stored telemetry for data platforms: NGSI-LD entities checked against the published smart
data models (the attribute database the pysmartdatamodels package ships, taken from the
models' JSON Schemas: each attribute's model, NGSI type, JSON type, enum and date-time
format) and SenML JSON against RFC 8428's JSON rules; through the CLI, from rows stored the
way `monitor --ack` stores them."""
import gzip
import json
import re
from datetime import datetime
from functools import lru_cache
from pathlib import Path

import pytest

from edgekit import catalog as C
from edgekit.cli import main
from edgekit.registry import platform_export
from edgekit.registry import telemetry as store
from edgekit.registry.db import Registry

T = 1796169600.0            # 2026-12-02T00:00:00Z


@lru_cache(maxsize=1)
def published():
    """{(subject, model): {attribute: (json type, ngsi type, enum, format)}} from
    pysmartdatamodels (an enum the database leaves out is read from the description's
    "Enum:'a, b'", as the schema's generator writes it)."""
    pkg = pytest.importorskip("pysmartdatamodels", reason="pip install pysmartdatamodels "
                                                          "(the test extra) for the models")
    db = Path(pkg.__file__).parent / "model-assets" / "smartdatamodels.json.gz"
    out = {}
    with gzip.open(db, "rt", encoding="utf-8") as f:
        for item in json.load(f):
            if "property" in item:
                enum = item.get("enum")
                listed = re.search(r"Enum:\s*'([^']*)", item.get("description") or "")
                if not enum and listed:
                    enum = [v.strip() for v in listed.group(1).split(",")]
                out.setdefault((item["repoName"], item["dataModel"]), {})[item["property"]] = \
                    (item.get("type"), item.get("typeNGSI"), enum, item.get("format"))
    return out


JSON_TYPES = {"number": (int, float), "string": str, "object": dict, "array": list,
              "boolean": bool}


SUBJECTS = {m: s for kind in platform_export.MODELS.values() for m, s, _ in kind}
SUBJECTS["Alert"] = "dataModel.Alert"


def _date_time(text):
    """An ISO 8601 date-time with its zone (the schemas' `format: date-time`)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).tzinfo is not None


# What the published schema.json files say beyond the attribute database: their `required`
# lists (besides id and type) and the bounds and integer types of the attributes exported
# (AirQualityObserved 0.1.3, NoiseLevelObserved 0.2.1, WasteContainer 0.2.0,
# WaterConsumptionObserved; written down here from the schemas, so this test does not take
# them from the code it checks).
SCHEMA_REQUIRED = {"AirQualityObserved": {"dateObserved", "location"},
                   "NoiseLevelObserved": {"dateObservedFrom", "dateObservedTo", "location"},
                   "WasteContainer": {"location"}}
SCHEMA_BOUNDS = {("AirQualityObserved", "relativeHumidity"): (0, 1),
                 ("AirQualityObserved", "pm25"): (0, None),
                 ("AirQualityObserved", "pm10"): (0, None),
                 ("WasteContainer", "fillingLevel"): (0, 1)}
SCHEMA_INTEGERS = {("WaterConsumptionObserved", "waterConsumption"): None,
                   ("WaterConsumptionObserved", "alarmStopsLeaks"): (0, 1),
                   ("WaterConsumptionObserved", "alarmTamper"): (0, 1),
                   ("WaterConsumptionObserved", "alarmWaterQuality"): (0, 1)}


def check_entity(entity):
    model = entity["type"]
    attrs = published()[(SUBJECTS[model], model)]
    assert entity["id"].startswith(f"urn:ngsi-ld:{model}:")
    missing = SCHEMA_REQUIRED.get(model, set()) - set(entity)
    assert not missing, f"{model} requires {missing}"
    for (m, name), (low, high) in SCHEMA_BOUNDS.items():
        if m == model and name in entity:
            v = entity[name]["value"]
            assert v >= low and (high is None or v <= high), (model, name, v)
    for (m, name), allowed in SCHEMA_INTEGERS.items():
        if m == model and name in entity:
            v = entity[name]["value"]
            assert isinstance(v, int) and not isinstance(v, bool), (model, name, v)
            assert allowed is None or v in allowed, (model, name, v)
    for name, value in entity.items():
        if name in ("id", "type", "@context"):
            continue
        assert name in attrs, f"{model} has no attribute {name!r}"
        json_type, ngsi_type, enum, fmt = attrs[name]
        assert value["type"] == ngsi_type, (model, name, value["type"], ngsi_type)
        if ngsi_type == "Relationship":
            assert value["object"].startswith("urn:ngsi-ld:"), (model, name, value)
            continue
        assert isinstance(value["value"], JSON_TYPES[json_type]), (model, name, value)
        if enum:
            assert value["value"] in enum, (model, name, value["value"], enum)
        if fmt == "date-time":
            assert _date_time(value["value"]), (model, name, value)
        if "observedAt" in value:
            assert _date_time(value["observedAt"]), (model, name, value)


def _stored(reg, device_id, kind, records, location=(52.37312, 4.89221), events=()):
    """Store one pack of `records` [(name, value)] (the first at T, the rest at T + 60) and
    `events` [(name, active, time)] as the device journals them."""
    reg.upsert_device(device_id, kind=kind, location=location, owner="City",
                      purpose="test")
    pack = [{C.SENML_BN: f"urn:dev:ek:{device_id}:", C.SENML_BT: T, C.SENML_N: records[0][0],
             C.SENML_V: records[0][1]}]
    pack += [{C.SENML_N: n, C.SENML_V: v, C.SENML_T: 60} for n, v in records[1:]]
    pack.append({C.SENML_N: "ready", C.SENML_VB: True})
    journal = [(10 + i, {C.K_NAME: name, C.K_ACTIVE: active, C.K_TIME: t})
               for i, (name, active, t) in enumerate(events)]
    store.store(reg, device_id, packs=[(1, pack)], events=journal, received=T + 100)


def _entities(tmp_path, capsys, device_id, kind, records, events=()):
    reg_path = tmp_path / "r.sqlite"
    with Registry(reg_path) as reg:
        _stored(reg, device_id, kind, records, events=events)
    assert main(["devices", "telemetry", device_id, "--ngsi-ld", "--registry",
                 str(reg_path)]) == 0
    entities = json.loads(capsys.readouterr().out)
    for e in entities:
        check_entity(e)
    return {e["id"].split(device_id)[0] + e["id"].split(device_id)[1]: e for e in entities}


KINDS = {
    "water_meter": [("volume", 240.5), ("consumption", 12.0), ("battery", 3.6)],
    "water_atm": [("volume", 1200.0), ("turbidity", 0.4), ("tds", 180.0), ("tank", 55.0)],
    "smart_bin": [("fill", 42.0), ("temp", 21.5), ("soc", 80.0)],
    "env_sensor": [("temp", 18.25), ("rh", 61.0), ("pm1", 4.0), ("pm25", 9.5), ("pm10", 15.0),
                   ("noise", 54.2), ("noise_max", 71.0), ("pm25_8h", 8.0)],
}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_ngsi_ld_entities_use_the_published_models(kind, tmp_path, capsys):
    reg_path = tmp_path / "r.sqlite"
    with Registry(reg_path) as reg:
        _stored(reg, f"{kind}-1", kind, KINDS[kind])
    assert main(["devices", "telemetry", f"{kind}-1", "--ngsi-ld", "--registry",
                 str(reg_path)]) == 0
    entities = json.loads(capsys.readouterr().out)
    assert entities, "no entity"
    for e in entities:
        check_entity(e)
        assert e["location"]["value"]["type"] == "Point"
    attrs = {k for e in entities for k in e}
    mapped = {a for m, _, mapping in platform_export.MODELS[kind] for a, _ in mapping.values()}
    assert mapped <= attrs                  # every mapped record became its attribute
    if kind == "water_meter":
        (e,) = entities
        # the register's location: a meter is published on its 100 m cell, not the point
        assert e["location"]["value"]["coordinates"] != [4.89221, 52.37312]
        # an integer in its schema: whole litres, the unit said
        assert e["waterConsumption"] == {"type": "Property", "value": 240, "unitCode": "LTR",
                                         "observedAt": "2026-12-02T00:00:00Z"}
    if kind == "smart_bin":
        assert entities[0]["fillingLevel"]["value"] == 0.42         # a fraction, 0..1
    if kind == "env_sensor":
        by = {e["type"]: e for e in entities if e["id"].endswith(f":{kind}-1")}   # windows
        assert by["AirQualityObserved"]["relativeHumidity"]["value"] == 0.61
        assert by["NoiseLevelObserved"]["LAmax"]["value"] == 71.0


def test_senml_json_follows_rfc_8428(tmp_path, capsys):
    reg_path = tmp_path / "r.sqlite"
    with Registry(reg_path) as reg:
        _stored(reg, "wm-1", "water_meter", KINDS["water_meter"])
    assert main(["devices", "telemetry", "wm-1", "--senml", "--registry", str(reg_path)]) == 0
    pack = json.loads(capsys.readouterr().out)
    labels = {"bn", "bt", "bu", "bv", "bs", "bver", "n", "u", "v", "vs", "vb", "vd", "s", "t",
              "ut"}
    assert pack[0]["bn"] == "urn:dev:ek:wm-1:" and all("bn" not in r for r in pack[1:])
    for rec in pack:
        assert set(rec) <= labels, rec
        assert sum(k in rec for k in ("v", "vs", "vb", "vd", "s")) == 1, rec   # one value
        assert isinstance(rec["n"], str) and isinstance(rec["t"], float)
    assert [(r["n"], r.get("v", r.get("vb"))) for r in pack] == \
        [("volume", 240.5), ("consumption", 12.0), ("battery", 3.6), ("ready", True)]
    assert pack[0]["t"] == T and pack[1]["t"] == T + 60
    assert main(["devices", "telemetry", "wm-1", "--senml", "--csv", "--registry",
                 str(reg_path)]) == 2


def test_means_over_a_period_are_entities_of_their_own(tmp_path, capsys):
    """pm25_1h, pm25_8h, pm25_24h and noise_1h: one entity per model and period, dated by
    the period it covers, next to the window's entity."""
    by = _entities(tmp_path, capsys, "env-1", "env_sensor",
                   [("pm25", 9.5), ("pm25_1h", 11.0), ("pm10_1h", 20.0), ("pm25_8h", 8.0),
                    ("pm25_24h", 7.5), ("noise", 54.0), ("noise_1h", 56.5)])
    assert set(by) == {"urn:ngsi-ld:AirQualityObserved:", "urn:ngsi-ld:AirQualityObserved::1h",
                       "urn:ngsi-ld:AirQualityObserved::8h",
                       "urn:ngsi-ld:AirQualityObserved::24h",
                       "urn:ngsi-ld:NoiseLevelObserved:", "urn:ngsi-ld:NoiseLevelObserved::1h"}
    assert by["urn:ngsi-ld:AirQualityObserved:"]["pm25"]["value"] == 9.5
    hour = by["urn:ngsi-ld:AirQualityObserved::1h"]
    assert (hour["pm25"]["value"], hour["pm10"]["value"]) == (11.0, 20.0)
    assert by["urn:ngsi-ld:AirQualityObserved::8h"]["pm25"]["value"] == 8.0
    assert "pm10" not in by["urn:ngsi-ld:AirQualityObserved::8h"]
    day = by["urn:ngsi-ld:AirQualityObserved::24h"]
    assert day["pm25"]["value"] == 7.5 and "24h" in day["description"]["value"]
    noise = by["urn:ngsi-ld:NoiseLevelObserved::1h"]
    assert noise["LAeq"]["value"] == 56.5
    start = datetime.fromisoformat(noise["dateObservedFrom"]["value"].replace("Z", "+00:00"))
    end = datetime.fromisoformat(noise["dateObservedTo"]["value"].replace("Z", "+00:00"))
    assert (end - start).total_seconds() == 3600 and end.timestamp() == T + 60


def test_alarms_become_flags_status_and_alerts(tmp_path, capsys):
    meter = _entities(tmp_path / "m", capsys, "wm-1", "water_meter", [("volume", 240.5)],
                      events=[("leak", True, T + 10), ("tamper", True, T + 20),
                              ("tamper", False, T + 30), ("burst", True, T + 40),
                              ("low_battery", True, T + 50)])
    w = meter["urn:ngsi-ld:WaterConsumptionObserved:"]
    assert w["alarmStopsLeaks"] == {"type": "Property", "value": 1,
                                    "observedAt": "2026-12-02T00:00:10Z"}
    assert w["alarmTamper"]["value"] == 0 and w["alarmTamper"]["observedAt"].endswith(":30Z")
    assert "alarmWaterQuality" not in w                 # no backflow was ever reported
    burst = meter["urn:ngsi-ld:Alert::burst"]
    assert burst["category"]["value"] == "environment" and "validTo" not in burst
    assert burst["alertSource"]["object"] == "urn:ngsi-ld:Device:wm-1"
    assert "urn:ngsi-ld:Alert::low_battery" not in meter       # maintenance, not the city's

    (tmp_path / "b").mkdir()
    bins = _entities(tmp_path / "b", capsys, "sb-1", "smart_bin", [("fill", 40.0)],
                     events=[("lid_open", True, T + 10), ("fire", True, T + 20),
                             ("fire", False, T + 30), ("jam", True, T + 40)])
    assert bins["urn:ngsi-ld:WasteContainer:"]["status"]["value"] == "lidOpen"
    fire = bins["urn:ngsi-ld:Alert::fire"]
    assert fire["validTo"]["value"] == "2026-12-02T00:00:30Z"
    assert set(bins) == {"urn:ngsi-ld:WasteContainer:", "urn:ngsi-ld:Alert::fire"}

    (tmp_path / "a").mkdir()
    kiosk = _entities(tmp_path / "a", capsys, "wa-1", "water_atm",
                      [("volume", 1200.0), ("tds", 700.0)],
                      events=[("tds_high", True, T + 10), ("tank_low", True, T + 20)])
    assert kiosk["urn:ngsi-ld:Alert::tds_high"]["subCategory"]["value"] == "waterPollution"
    assert "urn:ngsi-ld:Alert::tank_low" not in kiosk


def test_a_bin_on_fire_reads_burning_whatever_else_is_active(tmp_path, capsys):
    bins = _entities(tmp_path, capsys, "sb-1", "smart_bin", [("fill", 40.0)],
                     events=[("tilt", True, T + 10), ("fire", True, T + 20)])
    assert bins["urn:ngsi-ld:WasteContainer:"]["status"] == {
        "type": "Property", "value": "burning", "observedAt": "2026-12-02T00:00:20Z"}


ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("kind", sorted(platform_export.MODELS))
def test_every_alarm_a_kind_raises_has_its_place_on_the_platform(kind):
    """Each event name the firmware declares (its register.json, or the env node's alarmed
    quantities) goes to the platform (a model's flag, a bin status, an Alert: a bin's fire is
    both its status and an alert) or is maintenance, never both. A new alarm in the firmware
    fails here until someone decides where it goes."""
    register = json.loads((ROOT / "firmware" / "kinds" / kind / "register.json").read_text())
    declared = {e for group in register["data"] for e in group.get("events", ())}
    if declared == {"*"}:                   # the env node: one threshold alarm per quantity
        source = (ROOT / "firmware" / "kinds" / kind / f"{kind}.py").read_text()
        quantities = re.search(r"_ALARMED = \(([^)]*)\)", source).group(1)
        declared = set(re.findall(r'"(\w+)"', quantities))
        declared |= platform_export.MAINTENANCE[kind]
    places = [set(platform_export.FLAGS.get(kind, ())),
              {n for n, _ in platform_export.BIN_STATUS} if kind == "smart_bin" else set(),
              set(platform_export.ALERTS.get(kind, ())),
              platform_export.MAINTENANCE.get(kind, set())]
    for name in declared:
        published_as = sum(name in p for p in places[:3])
        assert (published_as > 0) != (name in places[3]), (kind, name, published_as)
    assert set().union(*places) <= declared, "a mapping names an alarm the firmware lacks"


def test_a_window_of_noise_is_dated_by_the_window_it_covers(tmp_path, capsys):
    """NoiseLevelObserved requires dateObservedFrom/To: the latest window starts where the
    one before it ended (two packs here: noise at T and at T + 900)."""
    reg_path = tmp_path / "r.sqlite"
    with Registry(reg_path) as reg:
        _stored(reg, "env-1", "env_sensor", [("noise", 50.0)])
        pack = [{C.SENML_BN: "urn:dev:ek:env-1:", C.SENML_BT: T + 900, C.SENML_N: "noise",
                 C.SENML_V: 52.0}]
        store.store(reg, "env-1", packs=[(2, pack)], received=T + 1000)
    assert main(["devices", "telemetry", "env-1", "--ngsi-ld", "--registry",
                 str(reg_path)]) == 0
    (noise,) = [e for e in json.loads(capsys.readouterr().out)
                if e["id"] == "urn:ngsi-ld:NoiseLevelObserved:env-1"]
    check_entity(noise)
    assert noise["LAeq"]["value"] == 52.0
    assert (noise["dateObservedFrom"]["value"], noise["dateObservedTo"]["value"]) == (
        "2026-12-02T00:00:00Z", "2026-12-02T00:15:00Z")


@pytest.mark.parametrize("kind, record", [("env_sensor", ("pm25", 9.0)),
                                          ("smart_bin", ("fill", 40.0))])
def test_an_entity_the_schema_wants_located_needs_a_published_location(kind, record,
                                                                       tmp_path, capsys):
    reg_path = tmp_path / "r.sqlite"
    with Registry(reg_path) as reg:
        _stored(reg, f"{kind}-1", kind, [record], location=None)
    assert main(["devices", "telemetry", f"{kind}-1", "--ngsi-ld", "--registry",
                 str(reg_path)]) != 0
    err = capsys.readouterr().err
    assert "need a location" in err and f"devices set {kind}-1 --location" in err


def test_a_meter_without_a_location_still_exports(tmp_path, capsys):
    """WaterConsumptionObserved requires no location: a meter's reading goes out without."""
    reg_path = tmp_path / "r.sqlite"
    with Registry(reg_path) as reg:
        _stored(reg, "wm-1", "water_meter", [("volume", 12.0)], location=None)
    assert main(["devices", "telemetry", "wm-1", "--ngsi-ld", "--registry",
                 str(reg_path)]) == 0
    (e,) = json.loads(capsys.readouterr().out)
    check_entity(e)
    assert "location" not in e and e["waterConsumption"]["value"] == 12
