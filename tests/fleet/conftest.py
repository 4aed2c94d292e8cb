"""The fleet tests' stores: `store_url` is a fresh registry for each test, a SQLite file or a
database on a throwaway PostgreSQL server (edgekit.testing.pg_cluster; one server per test
session, skipped with the reason where PostgreSQL is not installed). A test or fixture that
takes `backend` runs once per backend."""
import pytest

from edgekit.testing import pg_cluster
from edgekit.testing.pg_cluster import BACKENDS


@pytest.fixture(scope="session")
def pg_server():
    why = pg_cluster.unavailable()
    if why:
        pytest.skip(why)
    pytest.importorskip("psycopg", reason="psycopg is not installed: pip install "
                                          "'psycopg[binary]' (make test installs it)")
    with pg_cluster.Cluster(fsync=False) as cluster:
        yield cluster


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


@pytest.fixture
def make_store(tmp_path, request):
    """make_store(backend) -> a new, empty registry: a file path for SQLite, the URL of an
    empty database for PostgreSQL (open_registry(url, migrate=True) creates the schema)."""
    def make(backend):
        if backend == "sqlite":
            return str(tmp_path / "reg.sqlite")
        return request.getfixturevalue("pg_server").database()
    return make


@pytest.fixture
def store_url(backend, make_store):
    return make_store(backend)
