"""Stored telemetry for data platforms: NGSI-LD entities checked against the published smart
data models (the attribute database the pysmartdatamodels package ships: each attribute's
model, NGSI type and JSON type) and SenML JSON against RFC 8428's JSON rules; through the
CLI, from rows stored the way `monitor --ack` stores them."""
import gzip
import json
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
    """{(subject, model): {attribute: (json type, ngsi type)}} from pysmartdatamodels."""
    pkg = pytest.importorskip("pysmartdatamodels", reason="pip install pysmartdatamodels "
                                                          "(the test extra) for the models")
    db = Path(pkg.__file__).parent / "model-assets" / "smartdatamodels.json.gz"
    out = {}
    with gzip.open(db, "rt", encoding="utf-8") as f:
        for item in json.load(f):
            if "property" in item:
                out.setdefault((item["repoName"], item["dataModel"]), {})[item["property"]] = \
                    (item.get("type"), item.get("typeNGSI"))
    return out


JSON_TYPES = {"number": (int, float), "string": str, "object": dict, "array": list,
              "boolean": bool}


def check_entity(entity):
    model = entity["type"]
    subject = next(s for kind in platform_export.MODELS.values() for m, s, _ in kind
                   if m == model)
    attrs = published()[(subject, model)]
    assert entity["id"].startswith(f"urn:ngsi-ld:{model}:")
    for name, value in entity.items():
        if name in ("id", "type", "@context"):
            continue
        assert name in attrs, f"{model} has no attribute {name!r}"
        json_type, ngsi_type = attrs[name]
        assert value["type"] == ngsi_type, (model, name, value["type"], ngsi_type)
        assert isinstance(value["value"], JSON_TYPES[json_type]), (model, name, value)


def _stored(reg, device_id, kind, records, location=(52.37312, 4.89221)):
    reg.upsert_device(device_id, kind=kind, location=location, owner="City",
                      purpose="test")
    pack = [{C.SENML_BN: f"urn:dev:ek:{device_id}:", C.SENML_BT: T, C.SENML_N: records[0][0],
             C.SENML_V: records[0][1]}]
    pack += [{C.SENML_N: n, C.SENML_V: v, C.SENML_T: 60} for n, v in records[1:]]
    pack.append({C.SENML_N: "ready", C.SENML_VB: True})
    store.store(reg, device_id, packs=[(1, pack)], received=T + 100)


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
        assert e["waterConsumption"] == {"type": "Property", "value": 240.5,
                                         "observedAt": "2026-12-02T00:00:00Z"}
    if kind == "smart_bin":
        assert entities[0]["fillingLevel"]["value"] == 0.42         # a fraction, 0..1
    if kind == "env_sensor":
        by = {e["type"]: e for e in entities}
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
