"""Key epochs on the host side: the registry's key_epoch column (migration from a database
made before it), `edgekit devices list` marking devices behind the key store, and `edgekit
keys deliver` refusing bad input before it opens any port. Delivery itself runs against
emulated boards in hil_tests/test_key_rotation.py."""
import json
import sqlite3

import pytest

from edgekit.cli import main
from edgekit.errors import EdgekitError
from edgekit.keys.store import KeyStore
from edgekit.registry import db as dbmod
from edgekit.registry.db import Registry

PASS = "key deliver test passphrase"
NO_DEVICE = "socket://127.0.0.1:9"      # nothing listens there: opening it would fail


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEKIT_HOME", str(tmp_path))
    monkeypatch.setenv("EDGEKIT_KEY_PASSPHRASE", PASS)
    return tmp_path


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_database_of_schema_v2_gains_key_epoch(tmp_path):
    path = tmp_path / "v2.sqlite"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at TEXT "
                "NOT NULL, note TEXT NOT NULL)")
    for version, note, statements in dbmod.MIGRATIONS[:2]:      # a registry before epochs
        for sql in statements:
            con.execute(sql)
        con.execute("INSERT INTO schema_version VALUES (?, 'x', ?)", (version, note))
    con.execute("INSERT INTO devices (device_id, kind, last_seq) VALUES ('wm-1', "
                "'water_meter', 7)")
    con.commit()
    con.close()
    with Registry(path) as reg:
        assert reg.schema_version == dbmod.LATEST >= 3
        row = reg.get("wm-1")
        assert (row["last_seq"], row["key_epoch"]) == (7, None)
        assert reg.record_key_epoch("wm-1", 4) is True
        assert reg.get("wm-1")["key_epoch"] == 4
        assert reg.record_key_epoch("wm-unknown", 4) is False
        for bad in (-1, "2", True, None):
            with pytest.raises(EdgekitError, match="key epoch"):
                reg.record_key_epoch("wm-1", bad)
        assert reg.get("wm-1")["key_epoch"] == 4


def test_devices_list_marks_who_is_behind(home, capsys):
    assert run(capsys, "keys", "init")[0] == 0
    KeyStore(home / "keys").rotate("operator", PASS)           # key store at epoch 2
    with Registry(home / "registry.sqlite") as reg:
        for device_id, epoch in (("wm-a", 1), ("wm-b", 2), ("wm-c", None)):
            reg.upsert_device(device_id, kind="water_meter")
            if epoch is not None:
                reg.record_key_epoch(device_id, epoch)
    code, out, _ = run(capsys, "devices", "list", "--json")
    assert code == 0
    rows = {d["device_id"]: (d["key_epoch"], d["behind"]) for d in json.loads(out)}
    assert rows == {"wm-a": (1, True), "wm-b": (2, False), "wm-c": (None, None)}
    code, out, _ = run(capsys, "devices", "list")
    lines = {line.split()[0]: line for line in out.splitlines()}
    assert "1<2" in lines["wm-a"] and " 2 " in lines["wm-b"] and "<" not in lines["wm-b"]
    assert "1 behind key epoch 2" in out and "edgekit keys deliver" in out


def test_devices_list_without_keys_shows_epochs_only(home, capsys):
    with Registry(home / "registry.sqlite") as reg:
        reg.upsert_device("wm-a", kind="water_meter")
        reg.record_key_epoch("wm-a", 1)
    code, out, _ = run(capsys, "devices", "list", "--json")
    assert code == 0
    assert [(d["key_epoch"], d["behind"]) for d in json.loads(out)] == [(1, None)]


def test_deliver_needs_a_port(home, capsys):
    assert run(capsys, "keys", "init")[0] == 0
    code, _, err = run(capsys, "keys", "deliver")
    assert code == 2 and "name the devices' ports" in err


def test_deliver_without_keys_says_so_before_any_port(home, capsys):
    code, _, err = run(capsys, "keys", "deliver", NO_DEVICE)
    assert code == 2 and "edgekit keys init" in err and "cannot open" not in err


def test_deliver_refuses_a_damaged_epoch_file_before_any_port(home, capsys):
    assert run(capsys, "keys", "init")[0] == 0
    path = KeyStore(home / "keys").epoch_path()
    data = bytearray(path.read_bytes())
    data[-70] ^= 1                          # inside the payload: the signature fails
    path.write_bytes(bytes(data))
    code, _, err = run(capsys, "keys", "deliver", NO_DEVICE)
    assert code == 2 and "cannot open" not in err, err
    assert "epoch-1.cbor" in err


def test_deliver_a_port_that_does_not_answer_fails_that_port(home, capsys):
    assert run(capsys, "keys", "init")[0] == 0
    code, out, _ = run(capsys, "keys", "deliver", NO_DEVICE, "--json", "--timeout", "0.2")
    report = json.loads(out)
    assert code == 1 and (report["ok"], report["failed"]) == (0, 1)
    assert "cannot open" in report["devices"][0]["error"]
