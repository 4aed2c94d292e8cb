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
    # the link's status, 3, as `command` gives for the same port
    assert code == 3 and (report["ok"], report["failed"]) == (0, 1)
    assert "cannot open" in report["devices"][0]["error"]


def test_deliver_refuses_parallel_below_one(home, capsys):
    assert run(capsys, "keys", "init")[0] == 0
    with pytest.raises(SystemExit) as exit_info:      # a usage error, from argparse
        main(["keys", "deliver", NO_DEVICE, "--parallel", "0"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "--parallel 0" in err and "cannot open" not in err


# --- catch_up's decisions, against a scripted device ----------------------------------------
class ScriptedDevice:
    """A session double: CAPS epochs to report in turn, and answers to KEY_EPOCH bodies."""

    def __init__(self, epochs, answers):
        self.epochs = list(epochs)
        self.answers = list(answers)
        self.sent = []

    def hello(self):
        from edgekit import catalog as C
        from edgekit.protocol.messages import Message
        return Message(C.CAPS, 1, "wm-1", {C.K_DEVICE_ID: "wm-1", C.K_EPOCH: self.epochs.pop(0)},
                       role=C.ROLE_DEVICE)

    def exchange(self, seq, body, expect=None):
        from edgekit import catalog as C
        from edgekit.errors import ProtocolError
        from edgekit.protocol.messages import Message
        self.sent.append((seq, body))
        answer = self.answers.pop(0)
        if answer == "replayed":
            raise ProtocolError("device refused: replayed", C.E_REPLAYED)
        return Message(C.ACK, 2, "wm-1", {C.K_RE: seq, C.K_EPOCH: answer}, role=C.ROLE_DEVICE)


@pytest.fixture
def store(tmp_path):
    keys = KeyStore(tmp_path / "keys")
    keys.init(PASS)
    keys.rotate("operator", PASS)                # epoch 2
    return keys


def caps(epoch):
    from edgekit import catalog as C
    return {C.K_DEVICE_ID: "wm-1"} if epoch is None else {C.K_DEVICE_ID: "wm-1",
                                                           C.K_EPOCH: epoch}


def test_catch_up_sends_nothing_to_a_device_current_ahead_or_silent(store):
    from edgekit.keys.deliver import catch_up
    for epoch, status in ((2, "current"), (3, "ahead"), (None, "unknown")):
        device = ScriptedDevice([], [])
        assert catch_up(device, caps(epoch), store)["status"] == status
        assert device.sent == []


def test_catch_up_sends_the_stored_epoch_and_reads_it_back(store):
    from edgekit.keys.deliver import catch_up
    device = ScriptedDevice([2], [2])
    result = catch_up(device, caps(1), store)
    assert (result["status"], result["before"], result["after"]) == ("delivered", 1, 2)
    assert device.sent == [(stored_seq(store), store.epoch_path(2).read_bytes())]


def stored_seq(store):
    from edgekit.keys.deliver import stored_epoch
    return stored_epoch(store, 2)[1]["seq"]


def test_catch_up_signs_again_when_the_device_is_stuck(store):
    from edgekit.keys.deliver import catch_up
    from edgekit.keys.epoch import open_key_epoch
    device = ScriptedDevice([1], ["replayed"])
    with pytest.raises(EdgekitError, match="keys deliver"):
        catch_up(device, caps(1), store)                    # no fleet key: say what to do
    device = ScriptedDevice([1, 2], ["replayed", 2])
    result = catch_up(device, caps(1), store, fleet_signer=lambda: store.signer("fleet", PASS))
    assert result["resigned"] and result["after"] == 2
    (old_seq, old), (new_seq, new) = device.sent
    fleet = store.anchors()["anchors"]["fleet"][0]
    first, again = open_key_epoch(old, fleet), open_key_epoch(new, fleet)
    assert new_seq > old_seq and again["seq"] == new_seq
    assert {k: again[k] for k in ("epoch", "anchors", "revoked")} == \
        {k: first[k] for k in ("epoch", "anchors", "revoked")}


def test_catch_up_accepts_replayed_from_a_device_that_caught_up(store):
    from edgekit.keys.deliver import catch_up
    device = ScriptedDevice([2], ["replayed"])      # another host delivered meanwhile
    assert catch_up(device, caps(1), store)["status"] == "current"
