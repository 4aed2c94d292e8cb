"""Stored telemetry (registry/telemetry.py) and `edgekit devices telemetry`: SenML packs become
one row per record with an ISO 8601 UTC time, a pack sent again is stored once, events log
one alarm each, a database from before the tables keeps working, bad --since is refused."""
import json
import sqlite3

import pytest

from edgekit import catalog as C
from edgekit.cli import main
from edgekit.registry import db as dbmod
from edgekit.registry import telemetry as store
from edgekit.registry.db import Registry

DEV = "wm-0a0b0c0d0e0f"
URN = f"urn:dev:ek:{DEV}:"
T0 = 1796295600            # 2026-12-03T11:00:00Z


def pack(bt=None, volume=1200.5):
    first = {C.SENML_BN: URN, C.SENML_N: "volume", C.SENML_U: "l", C.SENML_V: volume}
    if bt is not None:
        first[C.SENML_BT] = bt
    return [first, {C.SENML_N: "flow", C.SENML_U: "m3/s", C.SENML_V: 2.5e-05, C.SENML_T: 60},
            {C.SENML_N: "in_service", C.SENML_VB: True},
            {C.SENML_N: "reason", C.SENML_VS: "lid,full"}]


@pytest.fixture
def reg(tmp_path):
    with Registry(tmp_path / "reg.sqlite") as r:
        r.upsert_device(DEV, kind="water_meter")
        yield r


def test_absolute_and_relative_times_names_and_values():
    rows = store.pack_rows(DEV, 7, pack(bt=T0), received=T0 + 500)
    assert [(r["idx"], r["name"], r["value"], r["value_text"], r["unit"]) for r in rows] == [
        (0, "volume", 1200.5, None, "l"), (1, "flow", 2.5e-05, None, "m3/s"),
        (2, "in_service", None, "true", None), (3, "reason", None, "lid,full", None)]
    assert [r["time"] for r in rows[:2]] == ["2026-12-03T11:00:00Z", "2026-12-03T11:01:00Z"]
    assert {r["clock"] for r in rows} == {"device"}
    # An unsynced device sends seconds before "now" (RFC 8428 4.5.3): resolved at receipt.
    rows = store.pack_rows(DEV, 7, pack(bt=-3600), received=T0)
    assert rows[0]["time"] == "2026-12-03T10:00:00Z" and rows[0]["clock"] == "receipt"
    assert rows[1]["time"] == "2026-12-03T10:01:00Z"
    # Another base name is kept whole; a record that is not a map is kept as text.
    rows = store.pack_rows(DEV, 8, [{C.SENML_BN: "urn:x:", C.SENML_N: "a", C.SENML_V: 1}, 5],
                           received=T0)
    assert (rows[0]["name"], rows[1]["name"], rows[1]["value_text"]) == \
        ("urn:x:a", "(unreadable)", "5")


def test_a_pack_sent_again_is_stored_once(reg):
    rows, _ = store.store(reg, DEV, [(1, pack(bt=T0)), (2, pack(bt=T0 + 3600, volume=1300))],
                          received=T0 + 4000)
    assert len(rows) == 8 and all(r["new"] for r in rows)
    # The ack was lost: the device sends 2 again with 3; a relative time would differ now.
    rows, _ = store.store(reg, DEV, [(2, pack(bt=-10, volume=1300)), (3, pack(bt=T0 + 7200))],
                          received=T0 + 8000)
    assert [r["new"] for r in rows] == [False] * 4 + [True] * 4
    stored = store.telemetry(reg, DEV)
    assert [(r["journal_seq"], r["idx"]) for r in stored] == \
        [(s, i) for s in (1, 2, 3) for i in range(4)]
    assert stored[4]["time"] == "2026-12-03T12:00:00Z"    # the first copy's time stays
    assert [r["journal_seq"] for r in store.telemetry(reg, DEV, since=T0 + 3600)][::4] == [2, 3]


def test_events_are_stored_once_and_logged_as_one_alarm(reg):
    tamper = {C.K_NAME: "tamper", C.K_ACTIVE: True, C.K_DURATION: 0, C.K_LEVEL: 3,
              C.K_TIME: T0, C.K_FROM: 4}
    booted = {C.K_NAME: "leak", C.K_ACTIVE: False, C.K_TIME: -120}
    _, evs = store.store(reg, DEV, events=[(4, tamper), (5, booted)], received=T0 + 9)
    assert [e["new"] for e in evs] == [True, True]
    _, evs = store.store(reg, DEV, events=[(4, tamper)], received=T0 + 60)
    assert [e["new"] for e in evs] == [False]
    stored = store.device_events(reg, DEV)
    assert [(e["journal_seq"], e["name"], e["active"], e["time"], e["clock"]) for e in stored] \
        == [(4, "tamper", 1, "2026-12-03T11:00:00Z", "device"), (5, "leak", 0, None, "uptime")]
    assert stored[1]["detail"]["time"] == -120       # the device's figure, kept
    alarms = reg.events(DEV, type="alarm")
    assert [a["detail"]["journal_seq"] for a in alarms] == [4, 5]


def test_a_bad_journal_seq_stores_nothing(reg):
    with pytest.raises(Exception, match="journal seq"):
        store.store(reg, DEV, [(1, pack(bt=T0)), ("2", pack(bt=T0))], received=T0)
    assert store.telemetry(reg, DEV) == []


def test_a_database_from_before_the_tables_opens_and_stores(tmp_path):
    path = tmp_path / "v3.sqlite"         # as an edgekit of schema v3 left it
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at TEXT "
                "NOT NULL, note TEXT NOT NULL)")
    for version, note, statements in dbmod.MIGRATIONS[:3]:
        for sql in statements:
            con.execute(sql)
        con.execute("INSERT INTO schema_version VALUES (?, '2026-11-01T00:00:00Z', ?)",
                    (version, note))
    con.execute("INSERT INTO devices (device_id, kind, site) VALUES (?, 'water_meter', 'Dam')",
                (DEV,))
    con.commit()
    con.close()
    with Registry(path) as reg:
        assert reg.schema_version == dbmod.LATEST
        assert reg.get(DEV)["site"] == "Dam"
        store.store(reg, DEV, [(1, pack(bt=T0))], received=T0)
        assert len(store.telemetry(reg, DEV)) == 4


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_devices_telemetry_table_csv_json_and_errors(reg, capsys):
    store.store(reg, DEV, [(1, pack(bt=T0)), (2, pack(bt=T0 + 3600, volume=1300))],
                events=[(1, {C.K_NAME: "tamper", C.K_ACTIVE: True, C.K_TIME: T0 + 10})],
                received=T0 + 4000)
    path = str(reg.path)
    code, out, _ = run(capsys, "devices", "telemetry", DEV, "--registry", path)
    assert code == 0
    assert "2026-12-03T11:00:00Z volume 1200.5 l 1.0" in " ".join(out.split())
    assert "8 record(s) from 2 pack(s)" in out and "tamper" in out
    code, out, _ = run(capsys, "devices", "telemetry", DEV, "--registry", path, "--csv",
                       "--since", "2026-12-03T11:30:00Z")
    lines = out.splitlines()
    assert lines[0].startswith("time,name,value") and len(lines) == 5
    assert lines[1].startswith("2026-12-03T12:00:00Z,volume,1300")
    code, out, _ = run(capsys, "devices", "telemetry", DEV, "--registry", path, "--json",
                       "--since", str(T0 + 3600))
    data = json.loads(out)
    assert [r["journal_seq"] for r in data["telemetry"]] == [2] * 4 and data["events"] == []
    for bad in (["--since", "yesterday"], ["--since", "-5"], ["--csv", "--json"]):
        code, out, err = run(capsys, "devices", "telemetry", DEV, "--registry", path, *bad)
        assert code == 2 and out == "" and err.count("\n") == 1, (bad, err)
    code, _, err = run(capsys, "devices", "telemetry", "wm-none", "--registry", path)
    assert code == 2 and "no device 'wm-none'" in err
