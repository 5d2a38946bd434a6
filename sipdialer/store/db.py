"""Engines for the store: SQLite by default, PostgreSQL by URL.

Theory of operation
-------------------
``open_engine(url)`` builds a synchronous SQLAlchemy engine from ``[store] url``. One
writer, synchronous, off the media path (DESIGN.md, "Performance budget -> Store").

SQLite (``sqlite:///FILE``) gets, on every new DB-API connection: ``journal_mode=WAL``
(readers never block the writer), ``synchronous=NORMAL`` (no fsync per commit in WAL; a
power cut may lose the last commits, never corrupt the file), ``busy_timeout`` (a second
writer waits instead of failing at once) and ``foreign_keys=ON``. Python's ``sqlite3``
module opens transactions behind the driver's back (and never around DDL), so its own
handling is switched off (``isolation_level = None``) and SQLAlchemy's ``begin`` emits
``BEGIN`` itself: migrations are then truly transactional. A transaction that reads and
then writes must take the write lock first, or WAL makes its write fail with
``SQLITE_BUSY`` (its snapshot is stale) instead of waiting: :func:`write` opens such a
transaction with ``BEGIN IMMEDIATE``; plain reads use ``BEGIN`` (deferred, lock-free).

PostgreSQL (``postgresql+psycopg://user:pass@host/db``; a bare ``postgresql://`` is read
as psycopg 3) uses READ COMMITTED; the member lease locks its row with
``FOR UPDATE SKIP LOCKED`` so that several dialer nodes never take the same member.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine, make_url

BUSY_TIMEOUT_MS = 5000
"""How long a SQLite writer waits for the write lock before ``database is locked``."""

_BEGIN_OPTION = "sipdialer_sqlite_begin"


def normalize_url(url: str) -> str:
    """``postgresql://`` and ``postgres://`` mean psycopg 3 (the driver we ship)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def open_engine(url: str, *, echo: bool = False) -> Engine:
    """An engine for ``url`` with the pragmas and transaction handling described above."""
    url = normalize_url(url)
    kwargs: dict[str, Any] = {"echo": echo}
    if make_url(url).get_backend_name() == "postgresql":
        kwargs["pool_pre_ping"] = True
    engine = create_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
    return engine


def is_sqlite(engine: Engine | Connection) -> bool:
    return engine.dialect.name == "sqlite"


def is_postgresql(engine: Engine | Connection) -> bool:
    return engine.dialect.name == "postgresql"


@contextmanager
def write(engine: Engine) -> Iterator[Connection]:
    """A read-then-write transaction: ``BEGIN IMMEDIATE`` on SQLite, plain on PostgreSQL.

    Commits when the block ends, rolls back on an exception.
    """
    with engine.connect() as connection:
        if is_sqlite(connection):
            connection.execution_options(**{_BEGIN_OPTION: "BEGIN IMMEDIATE"})
        with connection.begin():
            yield connection


@contextmanager
def read(engine: Engine) -> Iterator[Connection]:
    """A read-only transaction (deferred on SQLite: takes no lock)."""
    with engine.connect() as connection, connection.begin():
        yield connection


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # we emit BEGIN ourselves (see the docstring)
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


def _sqlite_begin(connection: Connection) -> None:
    statement = connection.get_execution_options().get(_BEGIN_OPTION, "BEGIN")
    connection.exec_driver_sql(statement)
