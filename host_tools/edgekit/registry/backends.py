"""Open the registry a command names: a SQLite file (the default, a technician's laptop) or a
postgresql:// URL (the fleet's server store, registry/postgres.py). Commands that take
`--registry` accept either, so `fleet serve` and `devices telemetry` run against both."""
from edgekit.errors import EdgekitError
from edgekit.registry.db import Registry
from edgekit.registry.postgres import PgRegistry, is_url


def open_registry(where=None, migrate=False):
    """`where`: None (the default SQLite registry), a file path, or a postgresql:// URL.
    `migrate` applies to PostgreSQL only (a SQLite registry always migrates at open)."""
    if is_url(where):
        return PgRegistry(where, migrate=migrate)
    if isinstance(where, str) and "://" in where:
        raise EdgekitError(f"registry {where!r}: give a SQLite file path or a PostgreSQL URL "
                           "postgresql://USER[:PASSWORD]@HOST[:PORT]/DB")
    return Registry(where)
