"""Campaign state in the registry database: two tables of their own, versioned by their own
migrations (the registry's `schema_version` table belongs to the registry module), so a
campaign interrupted at any point (host crash, Ctrl-C, power) resumes where it stopped.

    ota_campaigns          one row per campaign: bundle, stages, failure threshold, state
    ota_campaign_devices   one row per device in it: stage, status, last result
"""
import json
import sqlite3

from edgekit import catalog as C
from edgekit.errors import EdgekitError
from edgekit.registry.db import Registry, now_iso

MIGRATIONS = (
    (1, "OTA campaigns", (
        """CREATE TABLE ota_campaigns (
            id TEXT PRIMARY KEY,
            created TEXT NOT NULL,
            bundle TEXT NOT NULL,
            seq INTEGER NOT NULL,
            version TEXT NOT NULL,
            board TEXT NOT NULL,
            kind TEXT NOT NULL,
            stages TEXT NOT NULL,
            max_failure_rate REAL NOT NULL,
            state TEXT NOT NULL,
            stage INTEGER NOT NULL DEFAULT 0,
            note TEXT NOT NULL DEFAULT '')""",
        """CREATE TABLE ota_campaign_devices (
            campaign_id TEXT NOT NULL REFERENCES ota_campaigns(id),
            device_id TEXT NOT NULL,
            position INTEGER NOT NULL,
            stage INTEGER,
            status TEXT NOT NULL DEFAULT 'pending',
            attempts INTEGER NOT NULL DEFAULT 0,
            result TEXT NOT NULL DEFAULT '{}',
            updated TEXT,
            PRIMARY KEY (campaign_id, device_id))""",
    )),
    # A campaign left to `fleet serve` (driver 'service'), and which worker holds it: one of
    # several workers sharing the broker claims it for lease_until (unix s), renews while it
    # runs, and another takes it over when the lease runs out (a killed worker).
    (2, "campaigns run by the fleet service; pause and cancel", (
        "ALTER TABLE ota_campaigns ADD COLUMN driver TEXT NOT NULL DEFAULT 'cli'",
        "ALTER TABLE ota_campaigns ADD COLUMN owner TEXT",
        "ALTER TABLE ota_campaigns ADD COLUMN lease_until REAL NOT NULL DEFAULT 0",
    )),
)

# paused: no device is started until `resume`; cancelled: none ever again (a device mid-push
# finishes that push: its transfer is resumable and its trial is the device's own).
STATES = ("planned", "running", "paused", "halted", "cancelled", "done")
STOPPED = ("paused", "cancelled")
DRIVERS = ("cli", "service")
# A device that could not be reached is retried by the next resume and is not a failed update.
FINAL = ("installed", "rolled_back", "rejected", "failed")
FAILURES = ("rolled_back", "rejected", "failed")


class CampaignStore:
    """Campaign tables inside a Registry's database (same file, same locking rules)."""

    def __init__(self, registry: Registry):
        self.reg = registry
        self._db = registry._db
        self._migrate()

    def _migrate(self):
        with self.reg._write() as db:
            db.execute("CREATE TABLE IF NOT EXISTS ota_schema_version (version INTEGER "
                       "PRIMARY KEY, applied_at TEXT NOT NULL, note TEXT NOT NULL)")
            current = db.execute("SELECT MAX(version) FROM ota_schema_version").fetchone()[0] \
                or 0
            if current > MIGRATIONS[-1][0]:
                raise EdgekitError(f"the registry's OTA tables are v{current}, newer than "
                                   "this edgekit understands: upgrade edgekit")
            for version, note, statements in MIGRATIONS:
                if version > current:
                    for sql in statements:
                        db.execute(sql)
                    db.execute("INSERT INTO ota_schema_version VALUES (?, ?, ?)",
                               (version, now_iso(), note))

    # -- campaigns --------------------------------------------------------------------------
    def create(self, cid, bundle_path, bundle, stages, max_failure_rate, device_ids):
        m = bundle.manifest
        try:
            with self.reg._write() as db:
                db.execute("INSERT INTO ota_campaigns (id, created, bundle, seq, version, "
                           "board, kind, stages, max_failure_rate, state) VALUES "
                           "(?, ?, ?, ?, ?, ?, ?, ?, ?, 'planned')",
                           (cid, now_iso(), str(bundle_path), bundle.seq, bundle.version,
                            m[C.K_BOARD], m[C.K_KIND], json.dumps(stages),
                            max_failure_rate))
                for i, dev in enumerate(device_ids):
                    db.execute("INSERT INTO ota_campaign_devices (campaign_id, device_id, "
                               "position) VALUES (?, ?, ?)", (cid, dev, i))
        except sqlite3.IntegrityError:
            raise EdgekitError(f"a campaign named {cid} exists: pick another name, or "
                               f"`edgekit ota campaign resume {cid}`") from None
        return self.get(cid)

    def get(self, cid):
        row = self._db.execute("SELECT * FROM ota_campaigns WHERE id = ?", (cid,)).fetchone()
        if row is None:
            raise EdgekitError(f"no campaign {cid!r}: see `edgekit ota campaign list`")
        c = dict(row)
        c["stages"] = self._stored(c["stages"], f"campaign {cid}'s stages", list)
        if not all(isinstance(st, list) and len(st) == 2 and isinstance(st[0], int)
                   and not isinstance(st[0], bool) and st[0] >= 0 and isinstance(st[1], bool)
                   for st in c["stages"]):
            raise self._damaged(f"campaign {cid}'s stages")
        return c

    def _stored(self, text, what, kind):
        """A JSON column as this module wrote it (json.dumps of a `kind`), or an EdgekitError:
        only a damaged file holds anything else."""
        try:
            value = json.loads(text)
        except (TypeError, ValueError):
            value = None
        if not isinstance(value, kind):
            raise self._damaged(what)
        return value

    def _damaged(self, what):
        return EdgekitError(f"the registry {self.reg.path} is damaged: {what} are not what "
                            "edgekit stored; restore the file from a backup")

    def list(self):
        return [dict(r) for r in self._db.execute(
            "SELECT id, created, version, seq, kind, board, state, stage, driver, owner FROM "
            "ota_campaigns ORDER BY created")]

    def state(self, cid):
        row = self._db.execute("SELECT state FROM ota_campaigns WHERE id = ?",
                               (cid,)).fetchone()
        return None if row is None else row[0]

    def stop(self, cid, state, note):
        """Pause or cancel campaign `cid` (STOPPED); a finished one cannot be."""
        c = self.get(cid)
        if c["state"] in ("done", "cancelled"):
            raise EdgekitError(f"campaign {cid} is {c['state']}: nothing to "
                               f"{'pause' if state == 'paused' else 'cancel'}")
        self.set_state(cid, state, note=note)
        return self.get(cid)

    def hand_to_service(self, cid):
        """Leave campaign `cid` to `fleet serve` (a paused one runs again)."""
        c = self.get(cid)
        if c["state"] in ("done", "cancelled"):
            raise EdgekitError(f"campaign {cid} is {c['state']}: start a new one")
        state = "running" if c["state"] in ("paused", "halted") else c["state"]
        with self.reg._write() as db:
            db.execute("UPDATE ota_campaigns SET driver = 'service', state = ?, owner = NULL, "
                       "lease_until = 0 WHERE id = ?", (state, cid))
        return self.get(cid)

    def claim(self, owner, now, lease_s, exclude=()):
        """The id of a campaign left to the service that `owner` now holds until now +
        lease_s (one it held already, or one nobody holds or whose lease ran out), or None;
        never one of `exclude`. The conditional UPDATE makes two workers' claims exclusive."""
        rows = self._db.execute(
            "SELECT id FROM ota_campaigns WHERE driver = 'service' AND state IN "
            "('planned', 'running') AND (owner IS NULL OR owner = ? OR lease_until < ?) "
            "ORDER BY created", (owner, now)).fetchall()
        for (cid,) in rows:
            if cid in exclude:
                continue
            with self.reg._write() as db:
                n = db.execute(
                    "UPDATE ota_campaigns SET owner = ?, lease_until = ? WHERE id = ? AND "
                    "driver = 'service' AND state IN ('planned', 'running') AND "
                    "(owner IS NULL OR owner = ? OR lease_until < ?)",
                    (owner, now + lease_s, cid, owner, now)).rowcount
            if n == 1:
                return cid
        return None

    def renew(self, cid, owner, until):
        """Extend `owner`'s lease; False when it is not the holder any more."""
        with self.reg._write() as db:
            return db.execute("UPDATE ota_campaigns SET lease_until = ? WHERE id = ? AND "
                              "owner = ?", (until, cid, owner)).rowcount == 1

    def release(self, cid, owner):
        with self.reg._write() as db:
            db.execute("UPDATE ota_campaigns SET owner = NULL, lease_until = 0 WHERE id = ? "
                       "AND owner = ?", (cid, owner))

    def set_state(self, cid, state, stage=None, note=None, unless_stopped=False):
        """`unless_stopped`: a runner's progress, which must not undo a pause or a cancel
        another process made meanwhile."""
        sets, args = ["state = ?"], [state]
        if stage is not None:
            sets.append("stage = ?")
            args.append(stage)
        if note is not None:
            sets.append("note = ?")
            args.append(note)
        where = " AND state NOT IN ('paused', 'cancelled')" if unless_stopped else ""
        with self.reg._write() as db:
            db.execute(f"UPDATE ota_campaigns SET {', '.join(sets)} WHERE id = ?{where}",
                       (*args, cid))

    # -- devices ----------------------------------------------------------------------------
    def devices(self, cid):
        rows = self._db.execute("SELECT * FROM ota_campaign_devices WHERE campaign_id = ? "
                                "ORDER BY position", (cid,))
        out = []
        for r in rows:
            d = dict(r)
            d["result"] = self._stored(d["result"], f"the results of {d['device_id']!r} in "
                                                    f"campaign {cid}", dict)
            out.append(d)
        return out

    def assign(self, cid, device_ids, stage):
        with self.reg._write() as db:
            for dev in device_ids:
                db.execute("UPDATE ota_campaign_devices SET stage = ? WHERE campaign_id = ? "
                           "AND device_id = ? AND stage IS NULL", (stage, cid, dev))

    def mark(self, cid, device_id, status, result=None):
        with self.reg._write() as db:
            db.execute("UPDATE ota_campaign_devices SET status = ?, result = ?, updated = ?, "
                       "attempts = attempts + (CASE WHEN ? = 'running' THEN 1 ELSE 0 END) "
                       "WHERE campaign_id = ? AND device_id = ?",
                       (status, json.dumps(result or {}, default=str), now_iso(), status,
                        cid, device_id))

    def retry_failed(self, cid):
        """Put the devices whose update failed back in the queue (after fixing the cause)."""
        marks = ", ".join("?" * len(FAILURES))
        with self.reg._write() as db:
            n = db.execute(f"UPDATE ota_campaign_devices SET status = 'pending' WHERE "
                           f"campaign_id = ? AND status IN ({marks})",
                           (cid, *FAILURES)).rowcount
        return n
