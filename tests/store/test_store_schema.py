"""The engine's settings, the time type, and the lease index really used."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from storeutil import at, campaign_ids, sqlite_url

from sipdialer.store.db import normalize_url, open_engine
from sipdialer.store.members import MemberStore, NewMember
from sipdialer.store.migrations import migrate


def test_sqlite_pragmas(tmp_path: Path) -> None:
    engine = open_engine(sqlite_url(tmp_path))
    with engine.connect() as connection:
        names = ("journal_mode", "synchronous", "busy_timeout", "foreign_keys")
        pragma = {name: connection.exec_driver_sql(f"PRAGMA {name}").scalar() for name in names}
    assert pragma == {"journal_mode": "wal", "synchronous": 1, "busy_timeout": 5000,
                      "foreign_keys": 1}  # fmt: skip
    engine.dispose()


def test_postgres_url_means_psycopg() -> None:
    assert normalize_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_url("sqlite:///x.db") == "sqlite:///x.db"


def test_times_are_aware_utc_and_naive_ones_refused(engine: Engine) -> None:
    cid = campaign_ids(engine)["reminders"]
    store = MemberStore(engine)
    mid = store.add(cid, ["1"], expire=at(3600))
    record = store.get(mid)
    assert record is not None and record.expire == at(3600)
    assert record.expire is not None and record.expire.utcoffset() is not None
    with pytest.raises(Exception, match="naive datetime"):
        store.add(cid, ["2"], expire=datetime(2026, 1, 1))


def test_foreign_keys_cascade(engine: Engine) -> None:
    cid = campaign_ids(engine)["reminders"]
    MemberStore(engine).add(cid, ["1", "2"])
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM campaigns WHERE id = :id"), {"id": cid})
        left = connection.execute(text("SELECT count(*) FROM communications")).scalar()
    assert left == 0


def test_sqlite_lease_statement_only_seeks_the_index(tmp_path: Path) -> None:
    """The one lease statement: every access to members is a seek on ix_members_lease (or
    the primary key for the UPDATE), the due members a range; nothing scans or sorts
    members (the only sort is of the few per-level picks)."""
    engine = open_engine(sqlite_url(tmp_path))
    migrate(engine)
    cid = campaign_ids(engine)["reminders"]
    store = MemberStore(engine)
    store.add_many(cid, [NewMember([str(i)], priority=i % 3) for i in range(300)])
    with engine.connect() as connection:
        connection.exec_driver_sql("ANALYZE")
        compiled = store._lease[None].compile(engine)
        params = compiled.construct_params(
            {"cid": cid, "now": "2026-01-01 00:00:00.000000", "owner": "n"}
        )
        args = tuple(params[name] for name in compiled.positiontup or ())
        rows = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}", args)
        plan = [str(row[-1]) for row in rows]
    engine.dispose()
    on_members = [line for line in plan if " members " in f"{line} "]
    assert on_members and all(line.startswith("SEARCH members USING") for line in on_members)
    assert all("ix_members_lease" in line or "PRIMARY KEY" in line for line in on_members)
    assert any("priority=? AND next_call_at<?" in line for line in on_members), plan
    assert "MATERIALIZE picks" in plan
