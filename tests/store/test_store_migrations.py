"""Versioned migrations: fresh and older databases reach the current version; a failing
step leaves the database as it was."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import inspect, select, text
from sqlalchemy.engine import Connection
from storeutil import sqlite_url

from sipdialer.sip.bindings import Binding
from sipdialer.sip.peer import Peer
from sipdialer.store.bindings import BindingStore
from sipdialer.store.db import open_engine
from sipdialer.store.migrations import (
    CURRENT_VERSION,
    MIGRATIONS,
    Migration,
    MigrationError,
    SchemaTooNew,
    current_version,
    migrate,
)
from sipdialer.store.schema import schema_version

TABLES = {"bindings", "schema_version", "calendars", "campaigns", "agents", "members",
          "communications", "attempts"}  # fmt: skip


def _versions(url: str) -> list[int]:
    engine = open_engine(url)
    with engine.connect() as connection:
        found = list(connection.execute(select(schema_version.c.version).order_by(
            schema_version.c.version)).scalars())  # fmt: skip
    engine.dispose()
    return found


def test_fresh_database_reaches_the_current_version(url: str) -> None:
    engine = open_engine(url)
    assert current_version(engine) == 0
    assert migrate(engine) == CURRENT_VERSION == len(MIGRATIONS)
    assert TABLES <= set(inspect(engine).get_table_names())
    assert migrate(engine) == CURRENT_VERSION  # a second run does nothing
    engine.dispose()
    assert _versions(url) == list(range(1, CURRENT_VERSION + 1))


def test_registrar_era_database_is_adopted_and_keeps_its_bindings(url: str) -> None:
    """A database made by BindingStore before the dialer store existed: bindings only."""
    old = BindingStore(url)
    binding = Binding("101", "sip:101@127.0.0.1:5062", "key", Peer("udp", "127.0.0.1", 5062),
                      "call-1", 7, 2_000_000_000.0, 1_900_000_000.0, "phone", 1.0)  # fmt: skip
    old.save(binding)
    old.close()
    engine = open_engine(url)
    assert current_version(engine) == 1
    assert migrate(engine) == CURRENT_VERSION
    assert TABLES <= set(inspect(engine).get_table_names())
    engine.dispose()
    assert _versions(url) == list(range(1, CURRENT_VERSION + 1))
    again = BindingStore(url)  # the registrar's API still works on the migrated database
    assert again.load_all() == [binding]
    again.close()


def test_an_older_database_gets_only_the_later_steps(url: str) -> None:
    engine = open_engine(url)
    assert migrate(engine, MIGRATIONS[:1]) == 1
    assert "members" not in inspect(engine).get_table_names()
    ran: list[int] = []

    def step(connection: Connection) -> None:
        ran.append(3)
        connection.execute(text("CREATE TABLE extra (x INTEGER)"))

    assert migrate(engine, (*MIGRATIONS, Migration(3, "extra", step))) == 3
    assert ran == [3] and {"members", "extra"} <= set(inspect(engine).get_table_names())
    with pytest.raises(SchemaTooNew, match="upgrade sipdialer"):
        migrate(engine)  # this code knows only up to CURRENT_VERSION
    engine.dispose()


def test_a_failing_step_is_rolled_back(url: str) -> None:
    engine = open_engine(url)
    migrate(engine)

    def broken(connection: Connection) -> None:
        connection.execute(text("CREATE TABLE half_done (x INTEGER)"))
        raise RuntimeError("disk on fire")

    steps = (*MIGRATIONS, Migration(CURRENT_VERSION + 1, "broken", broken))
    with pytest.raises(MigrationError, match="disk on fire"):
        migrate(engine, steps)
    assert current_version(engine) == CURRENT_VERSION
    assert "half_done" not in inspect(engine).get_table_names()  # DDL rolled back too
    engine.dispose()


def test_malformed_list_is_refused(tmp_path: Path) -> None:
    engine = open_engine(sqlite_url(tmp_path))
    with pytest.raises(MigrationError, match="1, 2, ..."):
        migrate(engine, (MIGRATIONS[1],))
    engine.dispose()
