"""The fleet's store on PostgreSQL (edgekit.registry.postgres): two workers racing for the same
message accept it once and store its records once; `fleet init-store` creates the schema and
copies the provisioning registry's devices (the replay counter only rises); a worker whose
connection the server dropped fails that message and reconnects for the next; a wrong URL, an
unreachable server, a store without schema and a missing driver each say what to do."""
import json
import sys
import threading
import time

import pytest

from edgekit.cli import main as edgekit
from edgekit.errors import EdgekitError
from edgekit.fleet.broker import free_port
from edgekit.registry import telemetry as store
from edgekit.registry.backends import open_registry
from edgekit.registry.db import Registry
from edgekit.registry.postgres import PgRegistry, pg_ddl, redact

DEV = "wm-0a0b0c0d0e0f"
KEY, KEY2 = b"k" * 32, b"n" * 32
PACK = [{0: f"urn:dev:ek:{DEV}:", 1: "volume", 2: 1000.0}]


@pytest.fixture
def pg(pg_server):
    url = pg_server.database()
    with PgRegistry(url, migrate=True) as reg:
        reg.upsert_device(DEV, kind="water_meter", public_key=KEY)
    return url


def blocked_on_a_lock(url, timeout=10.0):
    """Wait until some session of the server waits for a row lock."""
    import psycopg
    end = time.monotonic() + timeout
    with psycopg.connect(url, autocommit=True) as conn:
        while time.monotonic() < end:
            if conn.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = "
                            "'Lock'").fetchone()[0]:
                return
            time.sleep(0.02)
    raise AssertionError("the second worker never waited for the first's lock")


def test_two_workers_racing_for_one_message_accept_it_once_and_store_it_once(pg):
    """Worker A holds its transaction open after accepting seq 6 and storing the pack; worker
    B, given the same message meanwhile, waits for A's row locks and, once A commits, finds
    the seq taken and the rows there. (A SELECT-then-UPDATE counter would let B accept too.)"""
    a, b = PgRegistry(pg), PgRegistry(pg)
    got = {}
    try:
        with a._db.transaction():
            assert a.touch(DEV, 6)
            rows, _ = store.store(a, DEV, [(1, PACK)])
            assert rows[0]["new"]
            racer = threading.Thread(target=lambda: got.update(
                touch=b.touch(DEV, 6), rows=store.store(b, DEV, [(1, PACK)])[0]))
            racer.start()
            blocked_on_a_lock(pg)
        racer.join(10)
        assert got["touch"].status == "replayed" and got["touch"].last_seq == 6
        assert [r["new"] for r in got["rows"]] == [False]
        assert len(store.telemetry(b, DEV)) == 1
        # B's store waited on the primary key, not the counter: run alone it agrees.
        assert b.touch(DEV, 7) and not b.touch(DEV, 7)
    finally:
        a.close()
        b.close()


def test_init_store_creates_the_schema_and_copies_devices(pg_server, tmp_path, monkeypatch,
                                                          capsys):
    monkeypatch.setenv("EDGEKIT_HOME", str(tmp_path))
    url = pg_server.database()
    with Registry(tmp_path / "registry.sqlite") as laptop:
        laptop.upsert_device(DEV, kind="water_meter", public_key=KEY, site="north",
                             location=(52.37, 4.89), status="provisioned")
        laptop.upsert_device("es-000000000001", kind="env_sensor", public_key=KEY2)
        laptop.touch(DEV, 40)
    assert edgekit(["fleet", "init-store", url, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["added"] == 2
    with PgRegistry(url) as fleet:
        dev = fleet.get(DEV)
        assert (bytes(dev["public_key"]), dev["site"], dev["lat"], dev["last_seq"]) == \
            (KEY, "north", 52.37, 40)
        assert fleet.touch(DEV, 41)      # the fleet service moves on past the laptop
        assert fleet.schema_version == Registry(tmp_path / "registry.sqlite").schema_version
    # Run again (after the laptop saw an older message and retired the air sensor).
    with Registry(tmp_path / "registry.sqlite") as laptop:
        laptop.upsert_device("es-000000000001", status="retired")
    assert edgekit(["fleet", "init-store", url]) == 0
    assert "0 added, 2 updated" in capsys.readouterr().out
    with PgRegistry(url) as fleet:
        assert fleet.get(DEV)["last_seq"] == 41      # never lowered by the copy
        assert fleet.get("es-000000000001")["status"] == "retired"
    # `devices telemetry` reads the fleet's store too.
    with PgRegistry(url) as fleet:
        store.store(fleet, DEV, [(3, PACK)])
    assert edgekit(["devices", "telemetry", DEV, "--registry", url, "--json"]) == 0
    assert [r["journal_seq"] for r in json.loads(capsys.readouterr().out)["telemetry"]] == [3]


def test_a_dropped_connection_fails_one_message_and_the_next_reconnects(pg):
    import psycopg
    with PgRegistry(pg) as worker:
        pid = worker._db._conn.info.backend_pid
        with psycopg.connect(pg, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with pytest.raises(EdgekitError, match="nothing was changed"):
            store.store(worker, DEV, [(1, PACK)])      # not stored: not acknowledged
        assert worker.touch(DEV, 1)                   # a new connection
        store.store(worker, DEV, [(1, PACK)])
        assert len(store.telemetry(worker, DEV)) == 1


def test_the_service_counts_a_store_outage_acks_nothing_and_takes_the_retry(pg_server):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    import psycopg
    from edgekit.fleet import topics
    from edgekit.fleet.ingest import Ingest
    from test_ingest import Device, Seq
    url, dev = pg_server.database(), Device(DEV)
    with PgRegistry(url, migrate=True) as reg:
        reg.upsert_device(DEV, kind="water_meter", public_key=dev.pub)
        ingest = Ingest(reg, Ed25519PrivateKey.generate(), Seq())
        body = dev.telemetry(1, 2)
        name = url.rsplit("/", 1)[1]
        with psycopg.connect(pg_server.base_url, autocommit=True) as admin:
            # The database goes away (as in a restart) and stays away for a while.
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            admin.execute("SELECT pg_terminate_backend(%s)", (reg._db._conn.info.backend_pid,))
        assert ingest.handle(topics.up(DEV), body) == []        # neither stored nor acked
        assert ingest.handle(topics.up(DEV), body) == []        # reconnecting fails too
        assert ingest.counts["store_unavailable"] == 2 and not any(ingest.dropped.values())
        with psycopg.connect(pg_server.base_url, autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        assert len(ingest.handle(topics.up(DEV), body)) == 1     # the device's retry
        assert [r["journal_seq"] for r in store.telemetry(reg, DEV)] == [1, 2]


def test_a_store_without_schema_says_to_run_init_store(pg_server):
    url = pg_server.database()
    with pytest.raises(EdgekitError, match="has no edgekit schema.*fleet init-store"):
        open_registry(url)


def test_an_unreachable_server_and_a_wrong_url_say_what_to_do(capsys, tmp_path):
    pytest.importorskip("psycopg", reason="psycopg is not installed")
    url = f"postgresql://edgekit:secret@127.0.0.1:{free_port()}/fleet"
    with pytest.raises(EdgekitError, match="cannot connect to the fleet store") as err:
        open_registry(url)
    assert "secret" not in str(err.value) and redact(url) in str(err.value)
    with pytest.raises(EdgekitError, match="SQLite file path or a PostgreSQL URL"):
        open_registry("mysql://db/fleet")
    assert edgekit(["fleet", "init-store", "fleet.sqlite"]) != 0
    assert "not a PostgreSQL URL" in capsys.readouterr().err
    # A mistyped source registry is not created empty and copied from.
    assert edgekit(["fleet", "init-store", url, "--registry", str(tmp_path / "typo.sqlite")]) != 0
    assert "no registry at" in capsys.readouterr().err and not (tmp_path / "typo.sqlite").exists()


def test_without_the_driver_the_error_names_the_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(EdgekitError, match=r"pip install 'psycopg\[binary\]'"):
        open_registry("postgresql://edgekit@127.0.0.1/fleet")


def test_every_migration_has_a_postgresql_form():
    assert pg_ddl("id INTEGER PRIMARY KEY AUTOINCREMENT, k BLOB, x REAL, n INTEGER") == (
        "id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, k BYTEA, "
        "x DOUBLE PRECISION, n BIGINT")
    assert pg_ddl("CREATE TABLE t (a TEXT,\n PRIMARY KEY (a)) WITHOUT ROWID") == \
        "CREATE TABLE t (a TEXT,\n PRIMARY KEY (a))"


def test_the_device_history_records_events_on_postgresql_too(pg):
    """Registry.record_event returns the new event's id on both stores (psycopg has no
    lastrowid), and the history reads it back."""
    with PgRegistry(pg) as reg:
        first = reg.record_event(DEV, "ledger", {"stored": 3})
        second = reg.record_event(DEV, "ota_installed", {"version": "1.0.1"})
        assert isinstance(first, int) and second > first
        assert [e["type"] for e in reg.events(DEV)][-2:] == ["ledger", "ota_installed"]
