"""Write-ahead-log upkeep for SQLite: a checkpoint that does not stall the event loop.

Theory of operation
-------------------
In WAL mode SQLite copies the log back into the database file (a *checkpoint*, with an
fsync) whenever a commit finds the log past 1000 pages. That commit is usually one of
the dialer's own, in the event loop, and on these machines it takes 100-450 ms. A large
import writes tens of megabytes, so it would trigger many of them. :func:`checkpoint`
runs a ``PASSIVE`` checkpoint, which never waits for, nor blocks, readers and writers;
called in a worker thread (``asyncio.to_thread``) between import batches it keeps the
log short, so the loop's commits find nothing to copy. On PostgreSQL it does nothing.
"""

from __future__ import annotations

from sqlalchemy.engine import Engine

from sipdialer.store.db import is_sqlite


def checkpoint(engine: Engine) -> None:
    """Copy the WAL into the database file, as far as it goes without waiting (SQLite).
    Safe in a worker thread: it uses a pooled connection of its own."""
    if not is_sqlite(engine):
        return
    with engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
