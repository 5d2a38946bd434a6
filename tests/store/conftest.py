"""Fixtures of the store tests (helpers in ``storeutil.py``): a migrated engine on SQLite
(a file in tmp_path) and on PostgreSQL (a fresh schema per test in the database of
``SIPDIALER_TEST_PG_URL``). Tests that take ``engine`` or ``url`` run on both; the
PostgreSQL run is skipped only when that variable is unset (``.ci/run`` sets it).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from storeutil import PG_URL, needs_pg, sqlite_url

from sipdialer.store.db import open_engine
from sipdialer.store.migrations import migrate


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A URL whose connections use a fresh, private schema (dropped afterwards)."""
    if not PG_URL:
        pytest.skip("SIPDIALER_TEST_PG_URL is not set")
    name = "t_" + secrets.token_hex(6)
    admin = open_engine(PG_URL)
    with admin.begin() as connection:
        connection.execute(text(f"CREATE SCHEMA {name}"))
    separator = "&" if "?" in PG_URL else "?"
    try:
        yield f"{PG_URL}{separator}options=-csearch_path%3D{name}"
    finally:
        with admin.begin() as connection:
            connection.execute(text(f"DROP SCHEMA {name} CASCADE"))
        admin.dispose()


def _url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return sqlite_url(tmp_path)
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=needs_pg)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database on each backend."""
    return _url(request, tmp_path)


@pytest.fixture
def engine(url: str) -> Iterator[Engine]:
    """A migrated store on each backend."""
    eng = open_engine(url)
    migrate(eng)
    try:
        yield eng
    finally:
        eng.dispose()
