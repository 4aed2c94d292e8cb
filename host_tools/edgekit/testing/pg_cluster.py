"""A throwaway PostgreSQL server for tests and bench/: initdb into a temporary folder, start it
on a free port of 127.0.0.1 with trust authentication, one fresh database per caller, and
stop it (and delete the folder) at the end. Or the server `EDGEKIT_TEST_PG` names
(postgresql://USER@HOST/DB, a user that may CREATE DATABASE), used as it is.

PostgreSQL refuses to run as root: as root (CI) the cluster runs as the `postgres` user
(Debian's package creates it), in a folder it owns. Debian keeps initdb and pg_ctl off PATH,
in /usr/lib/postgresql/<version>/bin: searched there (newest first), then on PATH.
"""
import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

ENV = "EDGEKIT_TEST_PG"
BACKENDS = ("sqlite", "postgresql")     # what a fleet test's registry can be
USER = "edgekit"        # the cluster's superuser (trust auth on 127.0.0.1 only)


def bin_dir():
    """The folder holding initdb and pg_ctl, or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
                   reverse=True)
    initdb = found[0] if found else shutil.which("initdb")
    if initdb and Path(initdb).with_name("pg_ctl").exists():
        return Path(initdb).parent
    return None


def unavailable():
    """Why no throwaway server can run here (a reason to skip with), or None."""
    if os.environ.get(ENV):
        return None
    if bin_dir() is None:
        return ("PostgreSQL is not installed (apt-get install postgresql; .ci/run installs it "
                f"as root), and {ENV} names no server")
    if os.geteuid() == 0:
        try:
            import pwd
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root without a `postgres` user to run the server as"
    return None


class Cluster:
    """`with Cluster() as pg: url = pg.database()`; `fsync=False` for tests (a crash of the
    test machine loses a throwaway database; the bench keeps fsync on)."""

    def __init__(self, fsync=True):
        self.fsync = fsync
        self.base_url = os.environ.get(ENV)
        self.folder = None
        self._made = []     # databases made on a server this object did not start

    def _run(self, args, **kw):
        as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        return subprocess.run(as_postgres + [str(a) for a in args], check=True,
                              capture_output=True, text=True, **kw)

    def start(self):
        if self.base_url:
            return self
        from edgekit.fleet.broker import free_port
        binaries = bin_dir()
        self.folder = Path(tempfile.mkdtemp(prefix="ek-pg-"))
        data = self.folder / "data"
        data.mkdir()
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres")
            shutil.chown(data, "postgres")
        port = free_port()
        options = (f"-c listen_addresses=127.0.0.1 -p {port} -k {self.folder} "
                   f"-c fsync={'on' if self.fsync else 'off'} -c max_connections=40")
        try:
            self._run([binaries / "initdb", "-D", data, "-A", "trust", "-U", USER, "-E",
                       "UTF8", "--no-sync", "--no-locale"])
            self._run([binaries / "pg_ctl", "-D", data, "-l", self.folder / "log", "-o",
                       options, "-w", "-t", "30", "start"])
        except subprocess.CalledProcessError as exc:
            log = (self.folder / "log").read_text() if (self.folder / "log").exists() else ""
            self._remove()
            raise RuntimeError(f"the throwaway PostgreSQL did not start: {exc.stderr}{log}")
        self.base_url = f"postgresql://{USER}@127.0.0.1:{port}/postgres"
        return self

    def database(self):
        """The URL of a new, empty database on this server."""
        import psycopg
        name = f"ek_{os.getpid()}_{len(self._made) + 1}"
        with psycopg.connect(self.base_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        self._made.append(name)
        return self.base_url.rsplit("/", 1)[0] + "/" + name

    def stop(self):
        if self.folder is None:        # EDGEKIT_TEST_PG's server: only what we made goes
            self._drop_made()
            return
        try:
            self._run([bin_dir() / "pg_ctl", "-D", self.folder / "data", "-m", "immediate",
                       "-w", "stop"])
        except subprocess.CalledProcessError:
            pass
        self._remove()

    def _drop_made(self):
        import psycopg
        try:
            with psycopg.connect(self.base_url, autocommit=True) as conn:
                for name in self._made:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        except psycopg.Error:
            pass
        self._made = []

    def _remove(self):
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

