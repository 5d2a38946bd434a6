"""Versioned schema migrations: an ordered list of steps, each in its own transaction.

Theory of operation
-------------------
:data:`MIGRATIONS` lists :class:`Migration` steps by version (1, 2, ...). :func:`migrate`
reads the database's version, then applies every later step in order; each step runs in
one transaction together with the ``schema_version`` row that records it, so a step that
fails leaves the database at the previous version (DDL is transactional on PostgreSQL,
and on SQLite because :mod:`sipdialer.store.db` emits ``BEGIN`` itself).

The version of a database is ``max(schema_version.version)``. Databases older than that
table are recognised by what they hold: a file with only the registrar's ``bindings``
table (what ``BindingStore`` created before the dialer store existed) is version 1 and is
adopted as such; an empty database is version 0. A database newer than this code is
refused (:class:`SchemaTooNew`) rather than guessed at.

Two nodes starting at once on one PostgreSQL serialise on an advisory lock held for each
step's transaction (the version is re-read under it); on SQLite ``BEGIN IMMEDIATE`` does the
same. Steps create tables from the definitions in :mod:`sipdialer.store.schema`; a later
step that alters a table must give the earlier steps a frozen copy of the definition they
created, so that an old database and a fresh one end up identical.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, insert, inspect, select, text
from sqlalchemy.engine import Connection, Engine

from sipdialer.store import schema
from sipdialer.store.bindings import bindings_table
from sipdialer.store.db import is_postgresql, open_engine, write

ADVISORY_LOCK_KEY = 0x5D1A_1E4
"""pg_advisory_xact_lock key of the migrations (any constant the dialer owns)."""


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    apply: Callable[[Connection], None]


class MigrationError(RuntimeError):
    """The migration list is malformed, or a step failed (the cause is chained)."""


class SchemaTooNew(MigrationError):
    """The database was migrated by a newer sipdialer than this one."""


def _registrar(connection: Connection) -> None:
    bindings_table.create(connection, checkfirst=True)


def _dialer(connection: Connection) -> None:
    for table in schema.DIALER_TABLES:
        if table is not schema.schema_version:
            table.create(connection)


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "registrar bindings", _registrar),
    Migration(2, "dialer store: campaigns, calendars, agents, members, numbers, attempts", _dialer),
)
CURRENT_VERSION = MIGRATIONS[-1].version


def migrate(engine: Engine, steps: Sequence[Migration] = MIGRATIONS) -> int:
    """Bring the database to the last step's version; returns the version reached."""
    _check(steps)
    target = steps[-1].version if steps else 0
    while True:
        with write(engine) as connection:
            _lock(connection)
            version = _prepare(connection)
            if version > target:
                raise SchemaTooNew(
                    f"the database is at schema version {version}, this sipdialer knows "
                    f"only up to {target}: upgrade sipdialer"
                )
            pending = [step for step in steps if step.version > version]
            if not pending:
                return version
            step = pending[0]
            try:
                step.apply(connection)
            except Exception as exc:
                raise MigrationError(
                    f"migration {step.version} ({step.description}) failed: {exc}"
                ) from exc
            _record(connection, step.version, step.description)


def current_version(engine: Engine) -> int:
    """The version of the database as it is (0: empty), without changing anything."""
    with engine.connect() as connection:
        return _detect(connection)


def _check(steps: Sequence[Migration]) -> None:
    versions = [step.version for step in steps]
    if versions != list(range(1, len(versions) + 1)):
        raise MigrationError(f"migration versions must be 1, 2, ... in order, got {versions}")


def _lock(connection: Connection) -> None:
    if is_postgresql(connection):
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY})


def _detect(connection: Connection) -> int:
    tables = set(inspect(connection).get_table_names())
    if schema.schema_version.name in tables:
        version = connection.execute(select(func.max(schema.schema_version.c.version))).scalar()
        if version is not None:
            return int(version)
    if bindings_table.name in tables:
        return 1  # a registrar-era database: bindings only, no version table
    return 0


def _prepare(connection: Connection) -> int:
    """Create ``schema_version`` if absent, adopt a registrar-era database; the version."""
    version = _detect(connection)
    if not inspect(connection).has_table(schema.schema_version.name):
        schema.schema_version.create(connection)
        if version == 1:
            _record(connection, 1, "registrar bindings (found, adopted)")
    return version


def _record(connection: Connection, version: int, description: str) -> None:
    connection.execute(
        insert(schema.schema_version).values(
            version=version, description=description, applied_at=datetime.now(UTC)
        )
    )


def open_store(url: str) -> Engine:
    """An engine for ``[store] url`` with the schema brought to :data:`CURRENT_VERSION`."""
    engine = open_engine(url)
    migrate(engine)
    return engine
