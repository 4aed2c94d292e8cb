"""The device registry: one SQLite file shared by every host tool (provisioning, monitor, OTA).

Parallel provisioning stations write to it at once, so: WAL (readers never block the writer),
a busy timeout (writers queue instead of failing), and every write in BEGIN IMMEDIATE (the
write lock is taken up front, so a read-then-write never loses to another writer). One
`Registry` object per thread; sqlite3 connections are not shared across threads.
"""
import contextlib
import json
import math
import os
import sqlite3
from datetime import datetime, timezone
from pathlib import Path

from edgekit.paths import edgekit_home
from edgekit.errors import EdgekitError, StoreUnavailable
from edgekit.registry.export import KINDS

STATUSES = ("factory", "provisioning", "provisioned", "lost", "retired")
MAX_SEQ = (1 << 63) - 1   # SQLite INTEGER is signed 64-bit
MAX_DETAIL = 65536

# Numbered migrations, applied in order at open. Never edit a released one: add the next.
MIGRATIONS = (
    (1, "devices and events", (
        """CREATE TABLE devices (
            device_id TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            board TEXT,
            public_key BLOB,
            certificate BLOB,
            site TEXT,
            lat REAL,
            lon REAL,
            owner TEXT,
            purpose TEXT,
            fw_version TEXT,
            status TEXT NOT NULL DEFAULT 'provisioned',
            last_seen TEXT,
            last_seq INTEGER,
            provisioned_at TEXT,
            hwid BLOB)""",
        """CREATE TABLE events (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            device_id TEXT NOT NULL REFERENCES devices(device_id),
            time TEXT NOT NULL,
            type TEXT NOT NULL,
            detail TEXT NOT NULL DEFAULT '{}')""",
    )),
    (2, "per-device retention, updated_at, event and kind indexes", (
        "ALTER TABLE devices ADD COLUMN retention_days INTEGER",
        "ALTER TABLE devices ADD COLUMN updated_at TEXT",
        "CREATE INDEX events_by_device ON events(device_id, id)",
        "CREATE INDEX devices_by_kind ON devices(kind, site)",
    )),
    (3, "devices.key_epoch: the key epoch the device last reported", (
        "ALTER TABLE devices ADD COLUMN key_epoch INTEGER",
    )),
    (4, "stored telemetry and device events (registry/telemetry.py)", (
        # One row per SenML record, keyed by the device's journal position: a pack re-sent
        # after a lost ack is stored once (registry/telemetry.py: ON CONFLICT DO NOTHING).
        """CREATE TABLE telemetry (
            device_id TEXT NOT NULL REFERENCES devices(device_id),
            journal_seq INTEGER NOT NULL,
            idx INTEGER NOT NULL,
            time TEXT,
            unix REAL,
            clock TEXT NOT NULL,
            name TEXT NOT NULL,
            value REAL,
            value_text TEXT,
            unit TEXT,
            received_at TEXT NOT NULL,
            PRIMARY KEY (device_id, journal_seq, idx)) WITHOUT ROWID""",
        "CREATE INDEX telemetry_by_time ON telemetry(device_id, unix)",
        """CREATE TABLE device_events (
            device_id TEXT NOT NULL REFERENCES devices(device_id),
            journal_seq INTEGER NOT NULL,
            time TEXT,
            unix REAL,
            clock TEXT NOT NULL,
            name TEXT NOT NULL,
            active INTEGER,
            detail TEXT NOT NULL,
            received_at TEXT NOT NULL,
            PRIMARY KEY (device_id, journal_seq)) WITHOUT ROWID""",
    )),
    (5, "devices.clock_drift_s and clock_checked_at: the device clock as last measured", (
        # Seconds the device clock was ahead (+) or behind (-) the host when an operator
        # session opened; NULL with a check time: the device had no time (RTC not set).
        "ALTER TABLE devices ADD COLUMN clock_drift_s REAL",
        "ALTER TABLE devices ADD COLUMN clock_checked_at TEXT",
    )),
    (6, "devices.privacy: how precisely the public register shows a device's location", (
        # NULL: the kind's default (registry/export.py PRIVACY_DEFAULT).
        "ALTER TABLE devices ADD COLUMN privacy TEXT",
    )),
    (7, "a water ATM's ledger, stored before the kiosk may forget it (registry/ledger.py)", (
        # One row per ledger record, keyed by the kiosk's ledger sequence: a page fetched again
        # after a lost acknowledgement is stored once. `record` is the kiosk's CBOR, as sent.
        """CREATE TABLE ledger (
            device_id TEXT NOT NULL REFERENCES devices(device_id),
            seq INTEGER NOT NULL,
            kind INTEGER,
            record BLOB NOT NULL,
            received_at TEXT NOT NULL,
            PRIMARY KEY (device_id, seq)) WITHOUT ROWID""",
    )),
)
LATEST = MIGRATIONS[-1][0]

# Fields upsert_device accepts; last_seen/last_seq change only through touch().
FIELDS = ("kind", "board", "public_key", "certificate", "site", "location", "owner",
          "purpose", "fw_version", "status", "provisioned_at", "hwid", "retention_days",
          "privacy")
# Location precision in the public register (registry/export.py coarsens to these grids).
PRIVACY_LEVELS = ("exact", "block", "district")


def default_registry_path() -> Path:
    return edgekit_home() / "registry.sqlite"


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class TouchResult:
    """Outcome of touch(): truthy only when the device was seen with a fresh seq."""
    OK, REPLAYED, UNKNOWN = "ok", "replayed", "unknown_device"
    __slots__ = ("status", "device_id", "seq", "last_seq")

    def __init__(self, status, device_id, seq, last_seq):
        self.status, self.device_id, self.seq, self.last_seq = status, device_id, seq, last_seq

    def __bool__(self):
        return self.status == self.OK

    @property
    def message(self) -> str:
        if self.status == self.OK:
            return f"{self.device_id}: seq {self.seq} accepted"
        if self.status == self.REPLAYED:
            return (f"{self.device_id}: seq {self.seq} is not above the last accepted "
                    f"{self.last_seq}: a replayed or duplicated message; ignore it")
        return f"{self.device_id} is not in the registry: provision it first"

    def __repr__(self):
        return f"TouchResult({self.status!r}, {self.device_id!r}, seq={self.seq})"


def _bad(field, value, rule):
    return EdgekitError(f"device {field} {value!r} is invalid: {rule}")


def check_device_id(device_id):
    # SPEC 4.1: the sender header is 1..32 ASCII; the device id is what devices send there.
    if (not isinstance(device_id, str) or not 1 <= len(device_id) <= 32
            or not all(33 <= ord(c) < 127 for c in device_id)):
        raise _bad("id", device_id, "use 1..32 printable ASCII characters without spaces")
    return device_id


def _check_field(name, value):
    """Validate one upsert field; return the column values it sets."""
    if value is None:
        if name in ("kind", "status"):
            raise _bad(name, value, "it cannot be empty")
        return {"lat": None, "lon": None} if name == "location" else {name: None}
    if name == "kind" and value not in KINDS:
        raise _bad(name, value, f"known kinds are {', '.join(KINDS)} (each needs a "
                                "data-category entry in registry/export.py)")
    if name == "status" and value not in STATUSES:
        raise _bad(name, value, f"use one of {', '.join(STATUSES)}")
    if name == "public_key" and (not isinstance(value, bytes) or len(value) != 32):
        raise _bad(name, value, "an Ed25519 public key is 32 raw bytes")
    if name in ("certificate", "hwid") and (not isinstance(value, bytes) or len(value) > 4096):
        raise _bad(name, value, "give raw bytes (at most 4096)")
    if name == "privacy" and value not in PRIVACY_LEVELS:
        raise _bad(name, value, f"use one of {', '.join(PRIVACY_LEVELS)} (exact: the point "
                                "itself; block: a 100 m grid cell; district: a 1 km cell)")
    if name in ("owner", "purpose") and isinstance(value, str) and not value.strip():
        raise _bad(name, value, "the public register names who is responsible for a device "
                                "and why it is there: give text, not an empty string")
    if name == "retention_days" and (not isinstance(value, int) or value < 1):
        raise _bad(name, value, "a whole number of days above 0")
    if name == "location":
        try:
            lat, lon = (float(v) for v in value)
        except (TypeError, ValueError):
            raise _bad(name, value, "give (latitude, longitude) in decimal degrees") from None
        if not (math.isfinite(lat) and math.isfinite(lon) and -90 <= lat <= 90
                and -180 <= lon <= 180):
            raise _bad(name, value, "latitude is -90..90 and longitude -180..180 (WGS 84)")
        return {"lat": lat, "lon": lon}
    if name in ("board", "site", "owner", "purpose", "fw_version", "provisioned_at") and (
            not isinstance(value, str) or len(value) > 200):
        raise _bad(name, value, "give text of at most 200 characters")
    return {name: value}


def _unreadable(path, exc, verb="read"):
    exc = str(exc).split(" with text ")[0]     # not the undecodable text itself
    return EdgekitError(f"cannot {verb} the registry {path}: {exc}. Is it an edgekit registry? "
                        "If so, the file is damaged: restore it from a backup (--registry FILE "
                        "picks another)")


class _Cursor(sqlite3.Cursor):
    """SQLite finds a damaged page only when a query reaches it, so any read can report it:
    that report becomes one EdgekitError naming the file, wherever it comes. It is a plain
    DatabaseError (malformed, not a database), or the OperationalError sqlite3 raises for
    text that is not UTF-8; integrity and lock errors stay the callers'."""

    def _guard(self, call, *args):
        try:
            return call(*args)
        except sqlite3.DatabaseError as exc:
            if type(exc) is not sqlite3.DatabaseError and \
                    not str(exc).startswith("Could not decode to UTF-8"):
                raise
            raise _unreadable(self.connection.path, exc, self.connection.verb) from None

    def execute(self, *args):
        return self._guard(super().execute, *args)

    def executemany(self, *args):
        return self._guard(super().executemany, *args)

    def fetchone(self):
        return self._guard(super().fetchone)

    def fetchmany(self, *args):
        return self._guard(super().fetchmany, *args)

    def fetchall(self):
        return self._guard(super().fetchall)

    def __next__(self):
        return self._guard(super().__next__)


class _Connection(sqlite3.Connection):
    path, verb = None, "open"       # "read" once the registry is open

    def cursor(self, factory=_Cursor):
        return super().cursor(factory)

    # sqlite3's own shortcuts make a plain cursor, so they are spelled out
    def execute(self, *args):
        return self.cursor().execute(*args)

    def executemany(self, *args):
        return self.cursor().executemany(*args)


class Registry:
    """The registry database at `path` (default $EDGEKIT_HOME/registry.sqlite)."""

    # What a broken foreign key or primary key raises; the PostgreSQL store has its own.
    IntegrityError = sqlite3.IntegrityError

    def __init__(self, path=None, timeout: float = 30.0):
        self.path = Path(path) if path else default_registry_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path, timeout=timeout, isolation_level=None,
                                       factory=_Connection)
        except sqlite3.Error as exc:
            raise EdgekitError(f"cannot open the registry {self.path}: {exc}; check the path "
                               "and its permissions (--registry FILE picks another)") from None
        self._db.path = self.path
        self._db.row_factory = sqlite3.Row
        try:
            self._db.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
            mode = self._db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise EdgekitError(f"{self.path} cannot use WAL mode (got {mode!r}): keep the "
                                   "registry on a local disk, not a network share")
            self._db.execute("PRAGMA synchronous = FULL")  # a provisioned device is never lost
            self._db.execute("PRAGMA foreign_keys = ON")
            self._migrate()
            self._db.verb = "read"
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise _unreadable(self.path, exc, "open") from None
        except BaseException:
            self._db.close()
            raise

    def close(self):
        self._db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return f"Registry({str(self.path)!r})"

    @contextlib.contextmanager
    def _write(self):
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(f"registry {self.path} stayed locked by another writer "
                               f"({exc}); retry, or look for a hung edgekit process") from None
        try:
            yield self._db
            self._db.execute("COMMIT")
        except BaseException as exc:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            if isinstance(exc, sqlite3.OperationalError):  # disk full, I/O error, lock timeout
                raise StoreUnavailable(f"registry {self.path}: {exc}; nothing was changed. Check "
                                   "free disk space and that no process hangs on it") from None
            raise

    # --- schema ---------------------------------------------------------------------------
    # What a store's dialect changes in migrating (registry/postgres.py): the name in its
    # messages, a lock against a concurrent migration, and the migrations' SQL types.
    _store_name = "registry"

    def _lock_migrations(self, db):
        pass        # SQLite: the write transaction already excludes other writers

    def _ddl(self, sql):
        return sql

    def _migrate(self):
        with self._write() as db:
            self._lock_migrations(db)
            db.execute(self._ddl("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER "
                                 "PRIMARY KEY, applied_at TEXT NOT NULL, note TEXT NOT NULL)"))
            current = db.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] or 0
            if current > LATEST:
                raise EdgekitError(f"{self._store_name} {self.path} has schema v{current}, "
                                   f"newer than this edgekit understands (v{LATEST}): upgrade "
                                   "edgekit")
            for version, note, statements in MIGRATIONS:
                if version <= current:
                    continue
                for sql in statements:
                    db.execute(self._ddl(sql))
                db.execute("INSERT INTO schema_version VALUES (?, ?, ?)",
                           (version, now_iso(), note))

    @property
    def schema_version(self) -> int:
        return self._db.execute("SELECT MAX(version) FROM schema_version").fetchone()[0]

    # --- devices --------------------------------------------------------------------------
    def upsert_device(self, device_id: str, **fields) -> dict:
        """Create or update a device; only the given fields change. A new public key (the
        device was re-provisioned) clears last_seq: the new key's sequence starts afresh."""
        check_device_id(device_id)
        unknown = sorted(set(fields) - set(FIELDS))
        if unknown:
            raise EdgekitError(f"unknown device field(s) {', '.join(unknown)}: fields are "
                               f"{', '.join(FIELDS)}")
        columns = {}
        for name, value in fields.items():
            columns.update(_check_field(name, value))
        now = now_iso()
        columns["updated_at"] = now
        with self._write() as db:
            row = db.execute("SELECT public_key FROM devices WHERE device_id = ?",
                             (device_id,)).fetchone()
            if row is None:
                if "kind" not in columns:
                    raise EdgekitError(f"device {device_id} is new: give its kind "
                                       f"({', '.join(KINDS)})")
                columns.setdefault("provisioned_at", now)
                columns["device_id"] = device_id
                names = ", ".join(columns)
                marks = ", ".join("?" * len(columns))
                db.execute(f"INSERT INTO devices ({names}) VALUES ({marks})",
                           tuple(columns.values()))
            else:
                if "public_key" in columns and columns["public_key"] != row["public_key"]:
                    columns["last_seq"] = None
                sets = ", ".join(f"{name} = ?" for name in columns)
                db.execute(f"UPDATE devices SET {sets} WHERE device_id = ?",
                           (*columns.values(), device_id))
        return self.get(device_id)

    def get(self, device_id: str):
        """The device as a dict, or None."""
        row = self._db.execute("SELECT * FROM devices WHERE device_id = ?",
                               (device_id,)).fetchone()
        return dict(row) if row else None

    def list(self, kind=None, site=None, status=None, owner=None):
        """Devices matching every given filter, ordered by id."""
        where, args = [], []
        for column, value in (("kind", kind), ("site", site), ("status", status),
                              ("owner", owner)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        sql = "SELECT * FROM devices"
        if where:
            sql += " WHERE " + " AND ".join(where)
        return [dict(r) for r in self._db.execute(sql + " ORDER BY device_id", args)]

    def touch(self, device_id: str, seq: int, fw: str = None, when: str = None) -> TouchResult:
        """Record that a device was heard with message `seq` (SPEC 5 replay rule: seq must
        be above the last accepted one). A replay changes nothing."""
        if not isinstance(seq, int) or isinstance(seq, bool) or not 0 <= seq <= MAX_SEQ:
            raise EdgekitError(f"seq {seq!r} is not an unsigned 63-bit integer")
        with self._write() as db:
            row = db.execute("SELECT last_seq FROM devices WHERE device_id = ?",
                             (device_id,)).fetchone()
            if row is None:
                return TouchResult(TouchResult.UNKNOWN, device_id, seq, None)
            last = row["last_seq"]
            # The seq test is in the UPDATE itself, not only in Python: on PostgreSQL (fleet
            # workers, registry/postgres.py) the SELECT above takes no lock, and two workers
            # may both read last_seq 5 for a message with seq 6. The second UPDATE waits for
            # the first's row lock, then re-checks its WHERE on the committed row (READ
            # COMMITTED re-evaluation), finds 6 < 6 false and changes nothing: one accepts.
            cur = db.execute("UPDATE devices SET last_seq = ?, last_seen = ?, "
                             "fw_version = COALESCE(?, fw_version) WHERE device_id = ? "
                             "AND (last_seq IS NULL OR last_seq < ?)",
                             (seq, when or now_iso(), fw, device_id, seq))
            if cur.rowcount != 1:
                last = db.execute("SELECT last_seq FROM devices WHERE device_id = ?",
                                  (device_id,)).fetchone()["last_seq"]
                return TouchResult(TouchResult.REPLAYED, device_id, seq, last)
        return TouchResult(TouchResult.OK, device_id, seq, last)

    def record_key_epoch(self, device_id: str, epoch: int) -> bool:
        """Remember the key epoch a device reported (CAPS K_EPOCH, or after KEY_EPOCH);
        False when the device is not in the registry (nothing recorded)."""
        if not isinstance(epoch, int) or isinstance(epoch, bool) or not 0 <= epoch <= MAX_SEQ:
            raise EdgekitError(f"key epoch {epoch!r} is not an unsigned integer")
        with self._write() as db:
            cur = db.execute("UPDATE devices SET key_epoch = ? WHERE device_id = ?",
                             (epoch, device_id))
        return cur.rowcount == 1

    def record_clock(self, device_id: str, drift_s, when: str = None) -> bool:
        """Remember a device's measured clock drift (seconds, None: it had no time); False
        when the device is not in the registry (nothing recorded)."""
        if drift_s is not None and (isinstance(drift_s, bool) or
                                    not isinstance(drift_s, (int, float)) or
                                    not math.isfinite(drift_s)):
            raise EdgekitError(f"clock drift {drift_s!r} is not a number of seconds")
        with self._write() as db:
            cur = db.execute("UPDATE devices SET clock_drift_s = ?, clock_checked_at = ? "
                             "WHERE device_id = ?", (drift_s, when or now_iso(), device_id))
        return cur.rowcount == 1

    # --- events ---------------------------------------------------------------------------
    def record_event(self, device_id: str, type: str, detail=None, when: str = None) -> int:
        """Append an event (provisioned, ota_installed, alarm, ...); returns its id."""
        if not isinstance(type, str) or not 1 <= len(type) <= 64:
            raise EdgekitError(f"event type {type!r} must be text of 1..64 characters")
        try:
            text = json.dumps({} if detail is None else detail, sort_keys=True, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise EdgekitError(f"event detail for {device_id} is not JSON ({exc}): pass "
                               "dicts, lists, text and numbers; write bytes as hex") from None
        if len(text) > MAX_DETAIL:
            raise EdgekitError(f"event detail is {len(text)} bytes of JSON, above "
                               f"{MAX_DETAIL}: store large data elsewhere and reference it")
        with self._write() as db:
            try:
                # RETURNING, not lastrowid: the PostgreSQL store (psycopg) has no lastrowid.
                cur = db.execute("INSERT INTO events (device_id, time, type, detail) "
                                 "VALUES (?, ?, ?, ?) RETURNING id",
                                 (device_id, when or now_iso(), type, text))
                return cur.fetchone()[0]
            except self.IntegrityError:
                raise EdgekitError(f"device {device_id} is not in the registry: add it "
                                   "before recording its events") from None

    def events(self, device_id: str, limit: int = None, type: str = None):
        """Events of a device, oldest first; `limit` keeps the most recent N."""
        sql = "SELECT id, device_id, time, type, detail FROM events WHERE device_id = ?"
        args = [device_id]
        if type is not None:
            sql += " AND type = ?"
            args.append(type)
        sql += " ORDER BY id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(int(limit))
        rows = [dict(r) for r in self._db.execute(sql, args)]
        for row in rows:
            try:
                row["detail"] = json.loads(row["detail"])
            except (TypeError, ValueError) as exc:  # record_event writes JSON: the file is damaged
                raise EdgekitError(f"the registry {self.path} is damaged: event {row['id']} of "
                                   f"{device_id} holds no JSON detail ({exc}); restore the file "
                                   "from a backup") from None
        return rows[::-1]
