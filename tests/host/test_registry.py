"""Device registry: CRUD, replay-refusing touch, events, migrations from a v1 database,
concurrent writers in separate processes, the public sensor register exports, and the
`edgekit devices` CLI."""
import csv
import io
import json
import sqlite3
import subprocess
import sys
import textwrap
import threading

import pytest

from edgekit.cli import main
from edgekit.errors import EdgekitError
from edgekit.registry import db as dbmod
from edgekit.registry import export, location
from edgekit.registry.db import Registry, TouchResult

# The v1 schema exactly as released: databases in the field look like this. Frozen here so a
# later edit of MIGRATIONS[0] cannot make this test pass while field databases break.
V1_SCHEMA = """
CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL,
                             note TEXT NOT NULL);
INSERT INTO schema_version VALUES (1, '2026-01-01T00:00:00.000Z', 'devices and events');
CREATE TABLE devices (
    device_id TEXT PRIMARY KEY, kind TEXT NOT NULL, board TEXT, public_key BLOB,
    certificate BLOB, site TEXT, lat REAL, lon REAL, owner TEXT, purpose TEXT,
    fw_version TEXT, status TEXT NOT NULL DEFAULT 'provisioned', last_seen TEXT,
    last_seq INTEGER, provisioned_at TEXT, hwid BLOB);
CREATE TABLE events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id TEXT NOT NULL REFERENCES devices(device_id),
    time TEXT NOT NULL, type TEXT NOT NULL, detail TEXT NOT NULL DEFAULT '{}');
INSERT INTO devices (device_id, kind, site, lat, lon, last_seq, public_key)
    VALUES ('wm-old', 'water_meter', 'Old Town', 52.0, 5.0, 41, x'00');
INSERT INTO events (device_id, time, type, detail)
    VALUES ('wm-old', '2026-01-02T00:00:00Z', 'provisioned', '{"by": "station-1"}');
"""


@pytest.fixture
def reg(tmp_path):
    with Registry(tmp_path / "reg.sqlite") as r:
        yield r


# --- CRUD -----------------------------------------------------------------------------------
def test_upsert_get_list_and_partial_update(reg):
    pub = bytes(range(32))
    dev = reg.upsert_device("wm-1", kind="water_meter", board="esp32", public_key=pub,
                            location=(52.37, 4.89), site="Dam", owner="Waternet",
                            purpose="billing", hwid=b"\x01\x02")
    assert dev["kind"] == "water_meter" and dev["public_key"] == pub
    assert (dev["lat"], dev["lon"]) == (52.37, 4.89) and dev["status"] == "provisioned"
    assert dev["provisioned_at"] and dev["hwid"] == b"\x01\x02"
    reg.upsert_device("bin-1", kind="smart_bin", site="Dam", status="retired")
    reg.upsert_device("env-1", kind="env_sensor", site="Park")

    changed = reg.upsert_device("wm-1", purpose="leak detection")
    assert changed["purpose"] == "leak detection" and changed["site"] == "Dam"
    assert changed["public_key"] == pub and changed["provisioned_at"] == dev["provisioned_at"]

    assert [d["device_id"] for d in reg.list()] == ["bin-1", "env-1", "wm-1"]
    assert [d["device_id"] for d in reg.list(site="Dam")] == ["bin-1", "wm-1"]
    assert [d["device_id"] for d in reg.list(site="Dam", status="retired")] == ["bin-1"]
    assert [d["device_id"] for d in reg.list(kind="env_sensor")] == ["env-1"]
    assert reg.list(owner="nobody") == [] and reg.get("absent") is None


@pytest.mark.parametrize("device_id, fields, match", [
    ("new-1", {"site": "x"}, "give its kind"),
    ("new-1", {"kind": "toaster"}, "known kinds are"),
    ("has space", {"kind": "smart_bin"}, "printable ASCII"),
    ("x" * 33, {"kind": "smart_bin"}, "1..32"),
    ("new-1", {"kind": "smart_bin", "public_key": b"short"}, "32 raw bytes"),
    ("new-1", {"kind": "smart_bin", "location": (91, 0)}, "latitude is -90..90"),
    ("new-1", {"kind": "smart_bin", "location": (0, float("nan"))}, "longitude"),
    ("new-1", {"kind": "smart_bin", "location": "52,4"}, "decimal degrees"),
    ("new-1", {"kind": "smart_bin", "status": "happy"}, "use one of"),
    ("new-1", {"kind": "smart_bin", "retention_days": 0}, "above 0"),
    ("new-1", {"kind": "smart_bin", "colour": "red"}, "unknown device field"),
])
def test_upsert_rejects_bad_fields_clearly(reg, device_id, fields, match):
    with pytest.raises(EdgekitError, match=match):
        reg.upsert_device(device_id, **fields)
    assert reg.list() == []


def test_new_public_key_resets_replay_state(reg):
    reg.upsert_device("wm-1", kind="water_meter", public_key=b"\x01" * 32)
    assert reg.touch("wm-1", 500)
    reg.upsert_device("wm-1", public_key=b"\x01" * 32, site="same key")
    assert reg.get("wm-1")["last_seq"] == 500
    reg.upsert_device("wm-1", public_key=b"\x02" * 32)  # re-provisioned: new device key
    assert reg.get("wm-1")["last_seq"] is None
    assert reg.touch("wm-1", 1)


def test_touch_refuses_replays_and_unknown_devices(reg):
    reg.upsert_device("wm-1", kind="water_meter", fw_version="1.0.0")
    first = reg.touch("wm-1", 10, fw="1.1.0", when="2026-05-01T00:00:00Z")
    assert first and first.status == TouchResult.OK
    dev = reg.get("wm-1")
    assert (dev["last_seq"], dev["fw_version"], dev["last_seen"]) == (
        10, "1.1.0", "2026-05-01T00:00:00Z")
    for stale in (10, 9, 0):
        result = reg.touch("wm-1", stale, fw="6.6.6")
        assert not result and result.status == TouchResult.REPLAYED
        assert "replayed" in result.message and "10" in result.message
    dev = reg.get("wm-1")
    assert (dev["last_seq"], dev["fw_version"]) == (10, "1.1.0")  # the replay changed nothing
    assert reg.touch("wm-1", 11)
    assert reg.get("wm-1")["fw_version"] == "1.1.0"  # fw=None keeps the known version
    missing = reg.touch("nope", 1)
    assert not missing and missing.status == TouchResult.UNKNOWN
    for bad in (-1, 1 << 63, True, "5"):
        with pytest.raises(EdgekitError, match="unsigned 63-bit"):
            reg.touch("wm-1", bad)


def test_events_record_order_limit_and_errors(reg):
    reg.upsert_device("wm-1", kind="water_meter")
    ids = [reg.record_event("wm-1", "alarm" if i % 2 else "telemetry", {"n": i})
           for i in range(6)]
    assert ids == sorted(ids)
    events = reg.events("wm-1")
    assert [e["detail"]["n"] for e in events] == list(range(6))
    assert [e["detail"]["n"] for e in reg.events("wm-1", limit=2)] == [4, 5]
    assert [e["detail"]["n"] for e in reg.events("wm-1", type="alarm")] == [1, 3, 5]
    with pytest.raises(EdgekitError, match="not in the registry"):
        reg.record_event("ghost", "alarm")
    with pytest.raises(EdgekitError, match="not JSON.*hex"):
        reg.record_event("wm-1", "blob", {"raw": b"\x00"})
    with pytest.raises(EdgekitError, match="1..64"):
        reg.record_event("wm-1", "")
    assert len(reg.events("wm-1")) == 6


# --- schema ---------------------------------------------------------------------------------
def test_migration_from_v1_keeps_data(tmp_path):
    path = tmp_path / "v1.sqlite"
    con = sqlite3.connect(path)
    con.executescript(V1_SCHEMA)
    con.close()
    with Registry(path) as reg:
        assert reg.schema_version == dbmod.LATEST >= 2
        dev = reg.get("wm-old")
        assert (dev["site"], dev["last_seq"], dev["retention_days"]) == ("Old Town", 41, None)
        assert reg.events("wm-old")[0]["detail"] == {"by": "station-1"}
        assert not reg.touch("wm-old", 41) and reg.touch("wm-old", 42)
        reg.upsert_device("wm-old", retention_days=90)  # a v2 column works
    con = sqlite3.connect(path)
    versions = [r[0] for r in con.execute("SELECT version FROM schema_version ORDER BY 1")]
    indexes = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    con.close()
    assert versions == [m[0] for m in dbmod.MIGRATIONS]
    assert {"events_by_device", "devices_by_kind"} <= indexes
    with Registry(path) as reg:  # reopening applies nothing twice
        assert reg.schema_version == dbmod.LATEST


def test_fresh_db_is_wal_and_refuses_newer_schema(tmp_path):
    path = tmp_path / "r.sqlite"
    Registry(path).close()
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    con.execute("INSERT INTO schema_version VALUES (999, 'x', 'from the future')")
    con.commit()
    con.close()
    with pytest.raises(EdgekitError, match="v999.*upgrade edgekit"):
        Registry(path)


def test_not_a_database_is_a_clear_error(tmp_path):
    path = tmp_path / "junk.sqlite"
    path.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(EdgekitError, match="cannot open the registry"):
        Registry(path)
    with pytest.raises(EdgekitError, match="cannot open the registry"):
        Registry(tmp_path)  # a directory


# --- concurrency ----------------------------------------------------------------------------
WORKER = textwrap.dedent("""
    import json, sys
    from edgekit.registry.db import Registry
    path, me, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    accepted = []
    with Registry(path) as reg:              # all workers open (and migrate) at once
        for i in range(n):
            reg.upsert_device(f"w{me}-{i}", kind="smart_bin", site=f"site-{me}")
            reg.upsert_device("shared", kind="env_sensor", purpose=f"w{me}")
            reg.record_event("shared", "hit", {"w": me, "i": i})
            seq = i * 100 + me               # interleaved: some touches are replays
            if reg.touch("shared", seq):
                accepted.append(seq)
            reg.touch(f"w{me}-{i}", i)
    print(json.dumps(accepted))
""")


def test_eight_processes_write_concurrently_without_losing_rows(tmp_path):
    path, workers, n = tmp_path / "busy.sqlite", 8, 25
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    procs = [subprocess.Popen([sys.executable, str(script), str(path), str(w), str(n)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for w in range(workers)]
    accepted = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        accepted += json.loads(out)
    with Registry(path) as reg:
        devices = reg.list(kind="smart_bin")
        assert len(devices) == workers * n
        assert all(d["last_seq"] == int(d["device_id"].split("-")[1]) for d in devices)
        hits = reg.events("shared")
        assert len(hits) == workers * n
        assert {(e["detail"]["w"], e["detail"]["i"]) for e in hits} == {
            (w, i) for w in range(workers) for i in range(n)}
        assert len(set(accepted)) == len(accepted)  # no seq accepted twice
        assert reg.get("shared")["last_seq"] == max(accepted)
        assert reg.schema_version == dbmod.LATEST


def test_threads_each_with_own_connection(tmp_path):
    path = tmp_path / "threads.sqlite"
    Registry(path).close()
    errors = []

    def work(me):
        try:
            with Registry(path) as reg:
                for i in range(20):
                    reg.upsert_device(f"t{me}-{i}", kind="water_atm")
                    reg.record_event(f"t{me}-{i}", "provisioned", {"thread": me})
        except Exception as exc:  # surfaced below; a thread's exception is otherwise lost
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with Registry(path) as reg:
        assert len(reg.list()) == 160
        assert all(len(reg.events(d["device_id"])) == 1 for d in reg.list())


# --- public sensor register -----------------------------------------------------------------
def _fleet(reg):
    reg.upsert_device("wm-1", kind="water_meter", location=(52.3731, 4.8922), owner="Waternet",
                      purpose="billing", site="Dam")
    reg.upsert_device("atm-1", kind="water_atm", location=(-33.9249, 18.4241), owner="City",
                      purpose="drinking water", retention_days=30)
    reg.upsert_device("env-1", kind="env_sensor", location=(40.7128, -74.006), owner="DEP",
                      purpose="air quality")
    reg.upsert_device("bin-1", kind="smart_bin", owner="Council", purpose="collection "
                      "rounds")  # no location yet
    reg.upsert_device("bin-old", kind="smart_bin", location=(1, 2), status="retired",
                      owner="Council", purpose="collection rounds")


def test_register_entries_and_retention_precedence(reg):
    _fleet(reg)
    entries = {e["device_id"]: e for e in export.register_entries(
        reg.list(), export.parse_retention(["water_meter=400", "water_atm=999"]))}
    assert entries["wm-1"]["retention_days"] == 400          # --retention beats the default
    assert entries["atm-1"]["retention_days"] == 30          # per device beats --retention
    assert entries["env-1"]["retention_days"] == export.KIND_DATA["env_sensor"]["retention_days"]
    for e in entries.values():
        assert e["data_collected"] == export.KIND_DATA[e["kind"]]["data"]
    for bad in (["water_meter"], ["toaster=3"], ["smart_bin=0"], ["smart_bin=-1"]):
        with pytest.raises(ValueError, match="KIND=DAYS"):
            export.parse_retention(bad)
    with pytest.raises(ValueError, match="no data-category entry"):
        export.register_entries([{"device_id": "x", "kind": "toaster"}])


def test_every_kind_has_categories_and_retention():
    assert set(export.KINDS) == {"water_meter", "water_atm", "smart_bin", "env_sensor"}
    for kind, info in export.KIND_DATA.items():
        assert info["data"] and info["description"] and info["personal_data"], kind
        assert isinstance(info["retention_days"], int) and info["retention_days"] > 0


def _valid_geojson_point_collection(doc):
    """The RFC 7946 rules a map viewer relies on."""
    assert doc["type"] == "FeatureCollection" and isinstance(doc["features"], list)
    for f in doc["features"]:
        assert f["type"] == "Feature" and isinstance(f["properties"], dict)
        assert f["geometry"]["type"] == "Point"
        lon, lat = f["geometry"]["coordinates"]
        assert -180 <= lon <= 180 and -90 <= lat <= 90


def test_cli_end_to_end(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EDGEKIT_HOME", str(tmp_path / "home"))
    with Registry() as reg:  # the CLI and the API agree on the default location
        _fleet(reg)
        reg.touch("wm-1", 7, fw="1.2.3")
        reg.record_event("wm-1", "alarm", {"name": "leak"})

    def run(*argv, expect=0):
        code = main(list(argv))
        out, err = capsys.readouterr()
        assert code == expect, (argv, out, err)
        return out, err

    listed = json.loads(run("devices", "list", "--json")[0])
    assert [d["device_id"] for d in listed] == ["atm-1", "bin-1", "bin-old", "env-1", "wm-1"]
    assert "wm-1" in run("devices", "list", "--kind", "water_meter")[0]
    shown = json.loads(run("devices", "show", "wm-1", "--json")[0])
    assert shown["fw_version"] == "1.2.3" and shown["events"][-1]["detail"] == {"name": "leak"}
    assert "alarm" in run("devices", "show", "wm-1")[0]
    assert "devices list" in run("devices", "show", "nope", expect=2)[1]

    run("devices", "set", "bin-1", "--location", "51.5072,-0.1276", "--owner", "Council")
    assert Registry().get("bin-1")["lon"] == -0.1276
    assert "LAT,LON" in run("devices", "set", "bin-1", "--location", "north", expect=2)[1]
    assert "nothing to change" in run("devices", "set", "bin-1", expect=2)[1]

    csv_file = tmp_path / "register.csv"
    run("devices", "export", "--format", "csv", "--out", str(csv_file),
        "--retention", "env_sensor=60")
    rows = list(csv.DictReader(io.StringIO(csv_file.read_text())))
    assert tuple(rows[0].keys()) == export.CSV_COLUMNS
    by_id = {r["device_id"]: r for r in rows}
    assert set(by_id) == {"atm-1", "bin-1", "env-1", "wm-1"}  # retired left out
    assert by_id["env-1"]["retention_days"] == "60"
    # a meter is on private premises: published on its 100 m cell's centre, not the point
    wm_lat, wm_lon = float(by_id["wm-1"]["latitude"]), float(by_id["wm-1"]["longitude"])
    assert (wm_lat, wm_lon) != (52.3731, 4.8922) and by_id["wm-1"]["location_precision_m"] == "100"
    assert location.distance_km((wm_lat, wm_lon), (52.3731, 4.8922)) < 0.08
    assert by_id["wm-1"]["data_collected"].startswith("meter totals and hourly consumption")

    geo_file = tmp_path / "register.geojson"
    run("devices", "export", "--format", "geojson", "--out", str(geo_file), "--all")
    doc = json.loads(geo_file.read_text())
    _valid_geojson_point_collection(doc)
    coords = {f["id"]: f["geometry"]["coordinates"] for f in doc["features"]}
    assert coords["wm-1"] == [wm_lon, wm_lat]             # [lon, lat], RFC 7946 3.1.1
    assert coords["atm-1"] == [18.4241, -33.9249]        # public space: the point itself
    assert coords["env-1"] == [-74.006, 40.7128]
    assert "bin-old" in coords                            # --all includes retired

    with Registry() as reg:
        reg.upsert_device("env-2", kind="env_sensor")   # unlocated: reported, not mapped
        reg.upsert_device("env-2", owner="DEP", purpose="air quality")
    out, err = run("devices", "export", "--format", "geojson")
    assert "env-2" in err and "env-2" not in {f["id"] for f in json.loads(out)["features"]}
    # the count said is the count written: 4 located in service (bin-1 located above)
    _, err = run("devices", "export", "--format", "geojson", "--out", str(geo_file))
    assert len(json.loads(geo_file.read_text())["features"]) == 4
    assert "wrote 4 register entries" in err, err
    as_json = json.loads(run("devices", "export", "--json")[0])
    assert {e["device_id"] for e in as_json} >= {"wm-1", "env-2"}
    assert "KIND=DAYS" in run("devices", "export", "--retention", "x=1", expect=2)[1]


@pytest.mark.parametrize("argv", [["devices"], ["devices", "list"], ["devices", "show"],
                                  ["devices", "set"], ["devices", "export"]])
def test_every_devices_command_has_help(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv + ["--help"])
    assert info.value.code == 0
    assert "usage: edgekit devices" in capsys.readouterr().out


def test_register_privacy_levels_coarsen_published_locations(reg):
    point = (52.37312, 4.89221)
    reg.upsert_device("wm-1", kind="water_meter", location=point, owner="W", purpose="billing")
    reg.upsert_device("wm-2", kind="water_meter", location=point, owner="W", purpose="billing",
                      privacy="exact")
    reg.upsert_device("wm-3", kind="water_meter", location=point, owner="W", purpose="billing",
                      privacy="district")
    reg.upsert_device("atm-1", kind="water_atm", location=point, owner="C", purpose="water")
    got = {e["device_id"]: e for e in export.register_entries(reg.list())}
    assert (got["wm-2"]["latitude"], got["wm-2"]["longitude"]) == point
    assert (got["atm-1"]["latitude"], got["atm-1"]["longitude"]) == point
    assert got["atm-1"]["location_precision_m"] is None
    for dev, cell in (("wm-1", 100), ("wm-3", 1000)):
        e = got[dev]
        assert e["location_precision_m"] == cell
        where = (e["latitude"], e["longitude"])
        # the cell's centre: within half a cell's diagonal of the point, never the point
        assert where != point and location.distance_km(where, point) * 1000 <= cell * 0.71
    # neighbours in one cell publish the same centre: a household cannot be singled out
    near = (point[0] + 0.00001, point[1] + 0.00001)
    assert location.coarsen(*near, "block") == location.coarsen(*point, "block")
    with pytest.raises(EdgekitError, match="privacy"):
        reg.upsert_device("wm-1", privacy="street")


def test_register_refuses_empty_owner_or_purpose(reg):
    with pytest.raises(EdgekitError, match="owner"):
        reg.upsert_device("bin-1", kind="smart_bin", owner="  ")
    reg.upsert_device("bin-1", kind="smart_bin", owner="Council")        # no purpose yet
    with pytest.raises(export.RegisterError, match="bin-1.*--purpose"):
        export.register_entries(reg.list())


def test_swapped_coordinates_are_refused_with_the_fix(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EDGEKIT_HOME", str(tmp_path))
    with Registry() as reg:
        reg.upsert_device("bin-1", kind="smart_bin", location=(52.3731, 4.8922))
        reg.upsert_device("bin-2", kind="smart_bin")
    assert main(["devices", "set", "bin-2", "--location", "4.8950,52.3700"]) == 2
    err = capsys.readouterr().err
    assert "latitude comes first" in err and "--location 52.37,4.895" in err, err
    assert Registry().get("bin-2")["lat"] is None                    # nothing written
    assert main(["devices", "set", "bin-2", "--location", "52.3700,4.8950"]) == 0
    # a device really far away, with no neighbour either way round: accepted
    assert main(["devices", "set", "bin-2", "--location=-33.92,18.42"]) == 0
    # and a real outlier whose swap is near the fleet can be forced
    assert main(["devices", "set", "bin-2", "--location", "4.8950,52.3700",
                 "--force-location"]) == 0


def test_every_register_category_names_records_the_firmware_has():
    """The register claims only what the firmware sends (it claimed a meter "collects signal
    strength"): each declared record or event is a name literal in the kind's firmware (a
    glob's stem for names the firmware builds, e.g. pm25_8h). The soak campaigns check the
    other way round: every record a device stored is declared."""
    from edgekit import firmware_tree as ft
    for kind, info in export.KIND_DATA.items():
        text = "".join(p.read_text() for p in ft.sources(kind))
        for name in info["records"] + info["events"]:
            stem = name.split("*")[0].rstrip("_")
            if not stem:
                continue                    # "*": every alarm the kind defines
            base, _, suffix = stem.rpartition("_")
            built = base and f'"{base}"' in text and f'"_{suffix}"' in text    # group + "_q"
            assert f'"{stem}"' in text or built, f"{kind}: register.json names {name!r}, " \
                                                 "which its firmware never sends"
