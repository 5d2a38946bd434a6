"""Registrar bindings in the database, so registrations survive a restart.

``BindingStore(url)`` keeps one row per (AOR, contact key) in the table ``bindings``
(the store of a later issue absorbs this table under the same name). Times in the
table are **Unix time** (wall clock): a monotonic clock starts again at each boot,
so the registrar shell converts between its clock and the wall clock on the way in
and out. Qualify state is not stored: a restarted registrar asks every phone anew.

Synchronous SQLAlchemy Core, one writer (DESIGN.md: aiosqlite is ~10x slower); each
call is its own short transaction. SQLite runs in WAL mode with ``synchronous=NORMAL``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    Column,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    delete,
    event,
    insert,
    select,
)
from sqlalchemy.engine import Engine

from sipdialer.sip.bindings import Binding
from sipdialer.sip.peer import Peer

metadata = MetaData()

bindings_table = Table(
    "bindings",
    metadata,
    Column("aor", String(64), primary_key=True),
    Column("contact_key", Text, primary_key=True),
    Column("contact", Text, nullable=False),
    Column("source_transport", String(8), nullable=False),
    Column("source_host", String(64), nullable=False),
    Column("source_port", Integer, nullable=False),
    Column("call_id", Text, nullable=False),
    Column("cseq", Integer, nullable=False),
    Column("expires_at", Float, nullable=False, index=True),
    Column("registered_at", Float, nullable=False),
    Column("user_agent", Text, nullable=True),
    Column("q", Float, nullable=False, default=1.0),
)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=5000")
    finally:
        cursor.close()


def make_engine(url: str) -> Engine:
    """An engine for *url*; SQLite gets the WAL pragmas on every connection."""
    engine = create_engine(url)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


class BindingStore:
    """Load, save and delete bindings. Times are Unix time (see the module docstring)."""

    def __init__(self, url: str | Engine) -> None:
        self._owned = isinstance(url, str)
        self.engine = make_engine(url) if isinstance(url, str) else url
        metadata.create_all(self.engine, tables=[bindings_table])

    def load_all(self) -> list[Binding]:
        with self.engine.connect() as connection:
            rows = connection.execute(select(bindings_table)).mappings().all()
        return [_binding(row) for row in rows]

    def save(self, binding: Binding) -> None:
        """Insert or replace the row of (aor, key)."""
        t = bindings_table
        with self.engine.begin() as connection:
            connection.execute(
                delete(t).where(t.c.aor == binding.aor, t.c.contact_key == binding.key)
            )
            connection.execute(insert(t).values(**_row(binding)))

    def delete(self, aor: str, key: str) -> None:
        t = bindings_table
        with self.engine.begin() as connection:
            connection.execute(delete(t).where(t.c.aor == aor, t.c.contact_key == key))

    def delete_expired(self, now: float) -> int:
        """Drop rows whose ``expires_at`` (Unix time) is not after *now*; returns how many."""
        t = bindings_table
        with self.engine.begin() as connection:
            return connection.execute(delete(t).where(t.c.expires_at <= now)).rowcount

    def close(self) -> None:
        if self._owned:
            self.engine.dispose()


def _row(b: Binding) -> dict[str, Any]:
    return {
        "aor": b.aor, "contact_key": b.key, "contact": b.contact,
        "source_transport": b.source.transport, "source_host": b.source.host,
        "source_port": b.source.port, "call_id": b.call_id, "cseq": b.cseq,
        "expires_at": b.expires_at, "registered_at": b.registered_at,
        "user_agent": b.user_agent, "q": b.q,
    }  # fmt: skip


def _binding(row: Any) -> Binding:
    source = Peer(row["source_transport"], row["source_host"], row["source_port"])
    return Binding(
        row["aor"], row["contact"], row["contact_key"], source, row["call_id"], row["cseq"],
        row["expires_at"], row["registered_at"], row["user_agent"], row["q"],
    )  # fmt: skip
