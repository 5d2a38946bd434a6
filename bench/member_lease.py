"""Leasing the next member out of 1,000,000: SQLite and PostgreSQL, p50/p99.

For each backend: a fresh migrated store, one campaign of ``--members`` members (one
number each) loaded in bulk (``executemany`` on the raw sqlite3 connection, ``COPY`` on
PostgreSQL), then ``--leases`` timed calls of ``MemberStore.lease_next`` (one write
transaction each: the per-level seeks, the UPDATE that takes the lease, the numbers, the
commit), then as many ``release`` calls (new state, numbers updated, commit).

The members are laid out to hit the hard case of DESIGN.md: 30 % at the top priority
(2), all due tomorrow; 40 % at priority 1 and 30 % at priority 0, due now. Every lease
must therefore skip a whole level of future members: one ``LIMIT 1`` seek per level.

Same-run baselines on the same index and connection type:

- ``raw seek``: the driver alone (sqlite3 / psycopg), ``SELECT id ... WHERE campaign_id
  = ? AND status = 'ready' AND priority = 1 AND next_call_at <= ? ORDER BY next_call_at,
  id LIMIT 1``: the floor of one lookup, no transaction, no update;
- ``one query``: the naive single ``ORDER BY priority DESC, next_call_at, id LIMIT 1``
  with ``next_call_at <= now`` across levels, which walks all the future rows of the top
  level (a few runs only: it is slow).

Usage: ``python bench/member_lease.py [--members 1000000] [--leases 2000] [--pg-url URL]``
(``--pg-url`` defaults to ``$SIPDIALER_TEST_PG_URL``; without one, PostgreSQL is skipped).
The database of ``--pg-url`` gets a private schema, dropped at the end. ~2 min in all.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import secrets
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import text

from sipdialer.config import parse_config
from sipdialer.store.db import open_engine
from sipdialer.store.members import MemberStore
from sipdialer.store.migrations import migrate
from sipdialer.store.sync import sync_config

CONFIG = '[[calendars]]\nname = "c"\n[[campaigns]]\nname = "bench"\ncalendar = "c"\n'
SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"  # SQLAlchemy's SQLite DateTime text
ASAP_TEXT = "1970-01-01 00:00:00.000000"

RAW_SEEK = (
    "SELECT id FROM members WHERE campaign_id = {p} AND status = 'ready' AND priority = 1 "
    "AND next_call_at <= {p} ORDER BY next_call_at, id LIMIT 1"
)
ONE_QUERY = (
    "SELECT id FROM members WHERE campaign_id = {p} AND status = 'ready' "
    "AND next_call_at <= {p} ORDER BY priority DESC, next_call_at, id LIMIT 1"
)


def layout(i: int, n: int) -> tuple[int, bool]:
    """(priority, due now) of member ``i`` of ``n``: 30 % future at 2, 40 % at 1, 30 % at 0."""
    if i < n * 3 // 10:
        return 2, False
    return (1 if i < n * 7 // 10 else 0), True


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return statistics.median(ordered) * 1e3, p99 * 1e3  # ms


def timed(call: Callable[[], Any], count: int) -> list[float]:
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    return samples


# --- bulk loading ---------------------------------------------------------------------------


def load_sqlite(engine: Any, campaign_id: str, n: int) -> None:
    now = datetime.now(UTC)
    future = (now + timedelta(days=1)).replace(tzinfo=None).strftime(SQLITE_TIME)
    stamp = now.replace(tzinfo=None).strftime(SQLITE_TIME)
    raw = engine.raw_connection()
    try:
        db = raw.driver_connection
        db.execute("BEGIN")
        db.executemany(
            "INSERT INTO members (id, campaign_id, name, priority, timezone, variables, "
            "status, next_call_at, attempts, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, NULL, '{}', 'ready', ?, 0, ?, ?)",
            (
                (i + 1, campaign_id, f"m{i}", prio, ASAP_TEXT if due else future, stamp, stamp)
                for i, (prio, due) in ((i, layout(i, n)) for i in range(n))
            ),
        )
        db.executemany(
            "INSERT INTO communications (member_id, campaign_id, number, position, priority, "
            "active, attempts) VALUES (?, ?, ?, 0, 0, 1, 0)",
            ((i + 1, campaign_id, f"+380{i:09d}") for i in range(n)),
        )
        db.execute("COMMIT")
        db.execute("ANALYZE")
    finally:
        raw.close()


def load_postgresql(engine: Any, campaign_id: str, n: int) -> None:
    now = datetime.now(UTC)
    future = (now + timedelta(days=1)).isoformat()
    stamp, asap = now.isoformat(), "1970-01-01T00:00:00+00:00"
    raw = engine.raw_connection()
    try:
        conn = raw.driver_connection
        with conn.cursor() as cursor:
            columns = (
                "id, campaign_id, name, priority, variables, status, next_call_at, attempts, "
                "created_at, updated_at"
            )
            with cursor.copy(f"COPY members ({columns}) FROM STDIN") as copy:
                buffer = io.StringIO()
                for i in range(n):
                    prio, due = layout(i, n)
                    when = asap if due else future
                    buffer.write(
                        f"{i + 1}\t{campaign_id}\tm{i}\t{prio}\t{{}}\tready\t{when}\t0\t"
                        f"{stamp}\t{stamp}\n"
                    )
                    if buffer.tell() > 1 << 20:
                        copy.write(buffer.getvalue())
                        buffer = io.StringIO()
                copy.write(buffer.getvalue())
            columns = "member_id, campaign_id, number, position, priority, active, attempts"
            with cursor.copy(f"COPY communications ({columns}) FROM STDIN") as copy:
                buffer = io.StringIO()
                for i in range(n):
                    buffer.write(f"{i + 1}\t{campaign_id}\t+380{i:09d}\t0\t0\tt\t0\n")
                    if buffer.tell() > 1 << 20:
                        copy.write(buffer.getvalue())
                        buffer = io.StringIO()
                copy.write(buffer.getvalue())
            cursor.execute("SELECT setval('members_id_seq', %s)", (n,))
        conn.commit()
        conn.autocommit = True
        conn.execute("ANALYZE members")
        conn.execute("ANALYZE communications")
        conn.autocommit = False
    finally:
        raw.close()


# --- one backend ----------------------------------------------------------------------------


def run(name: str, url: str, n: int, leases: int, naive_runs: int) -> dict[str, Any]:
    engine = open_engine(url)
    migrate(engine)
    campaign_id = sync_config(engine, parse_config(CONFIG)).campaign_ids["bench"]
    start = time.perf_counter()
    (load_sqlite if name == "sqlite" else load_postgresql)(engine, campaign_id, n)
    load_s = time.perf_counter() - start
    store = MemberStore(engine)
    held = []

    def lease() -> None:
        leased = store.lease_next(campaign_id, datetime.now(UTC), owner="bench")
        assert leased is not None and leased.priority == 1, leased
        held.append(leased)

    store.lease_next(campaign_id, datetime.now(UTC), owner="warm-up")
    lease_samples = timed(lease, leases)
    assert len({m.member_id for m in held}) == leases  # no member handed out twice
    later = datetime.now(UTC) + timedelta(minutes=10)
    pending = iter(held)

    def release() -> None:
        member = next(pending)
        number = replace(member.state.numbers[0], attempts=1, last_tried=datetime.now(UTC))
        state = replace(member.state, numbers=(number,), attempts=1, next_call_at=later)
        store.release(member.member_id, state, owner="bench")

    release_samples = timed(release, leases)
    raw_lease_samples = raw_leases(engine, name, store, campaign_id, leases)
    raw_samples, naive_samples = baselines(engine, name, campaign_id, leases, naive_runs)
    engine.dispose()
    return {
        "load_s": load_s,
        "lease": percentiles(lease_samples),
        "release": percentiles(release_samples),
        "raw_lease": percentiles(raw_lease_samples),
        "raw": percentiles(raw_samples),
        "naive": percentiles(naive_samples),
    }


NUMBERS = (
    "SELECT number, position, priority, active, attempts, last_tried FROM communications "
    "WHERE member_id = {p}"
)


def raw_leases(
    engine: Any, name: str, store: MemberStore, campaign_id: str, count: int
) -> list[float]:
    """The same lease transaction (the very SQL of ``MemberStore``) on the bare driver."""
    raw = engine.raw_connection()
    try:
        db = raw.driver_connection
        if name == "sqlite":
            compiled = store._lease[None].compile(engine)
            now = datetime.now(UTC).replace(tzinfo=None).strftime(SQLITE_TIME)
            params = compiled.construct_params({"cid": campaign_id, "now": now, "owner": "raw"})
            args = tuple(params[key] for key in compiled.positiontup or ())
            sql, numbers = str(compiled), NUMBERS.format(p="?")

            def once() -> None:
                db.execute("BEGIN IMMEDIATE")
                row = db.execute(sql, args).fetchone()
                db.execute(numbers, (row[0],)).fetchall()
                db.execute("COMMIT")

        else:
            levels_c = store._due_levels[None].compile(engine)
            lease_c = store._lease[None].compile(engine)
            base = {"cid": campaign_id, "now": datetime.now(UTC), "owner": "raw", "level": 0}
            levels_p, lease_p = levels_c.construct_params(base), lease_c.construct_params(base)
            levels_sql, lease_sql, numbers = str(levels_c), str(lease_c), NUMBERS.format(p="%s")
            cursor = db.cursor()

            def once() -> None:
                cursor.execute(levels_sql, levels_p)
                for (level,) in cursor.fetchall():
                    cursor.execute(lease_sql, lease_p | {"level": level})
                    row = cursor.fetchone()
                    if row is not None:
                        break
                cursor.execute(numbers, (row[0],))
                cursor.fetchall()
                db.commit()

        once()
        return timed(once, count)
    finally:
        raw.close()


def baselines(
    engine: Any, name: str, campaign_id: str, count: int, naive_runs: int
) -> tuple[list[float], list[float]]:
    raw = engine.raw_connection()
    try:
        db = raw.driver_connection
        if name == "sqlite":
            now: Any = datetime.now(UTC).replace(tzinfo=None).strftime(SQLITE_TIME)
            cursor = db.cursor()
            seek, naive = RAW_SEEK.format(p="?"), ONE_QUERY.format(p="?")
        else:
            now = datetime.now(UTC)
            cursor = db.cursor()
            seek, naive = RAW_SEEK.format(p="%s"), ONE_QUERY.format(p="%s")

        def run_seek() -> None:
            cursor.execute(seek, (campaign_id, now))
            assert cursor.fetchone() is not None

        def run_naive() -> None:
            cursor.execute(naive, (campaign_id, now))
            assert cursor.fetchone() is not None

        run_seek()
        result = timed(run_seek, count), timed(run_naive, naive_runs)
        if name != "sqlite":
            db.rollback()
        return result
    finally:
        raw.close()


def pg_schema_url(url: str) -> tuple[str, Callable[[], None]]:
    """A URL on a private schema of ``url``'s database, and the function that drops it."""
    schema = "bench_" + secrets.token_hex(4)
    admin = open_engine(url)
    with admin.begin() as connection:
        connection.execute(text(f"CREATE SCHEMA {schema}"))

    def drop() -> None:
        with admin.begin() as connection:
            connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()

    separator = "&" if "?" in url else "?"
    return f"{url}{separator}options=-csearch_path%3D{schema}", drop


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--leases", type=int, default=2000)
    parser.add_argument("--naive-runs", type=int, default=5)
    parser.add_argument("--pg-url", default=os.environ.get("SIPDIALER_TEST_PG_URL", ""))
    args = parser.parse_args()
    print(f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
          f"{args.members:,} members, {args.leases:,} leases")  # fmt: skip
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="member_lease_") as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        results["sqlite"] = run("sqlite", url, args.members, args.leases, args.naive_runs)
    if args.pg_url:
        url, drop = pg_schema_url(args.pg_url)
        try:
            results["postgresql"] = run(
                "postgresql", url, args.members, args.leases, args.naive_runs
            )
        finally:
            drop()
    else:
        print("PostgreSQL skipped: no --pg-url and no SIPDIALER_TEST_PG_URL")
    print()
    print("| backend | bulk load | lease p50 / p99 | release p50 / p99 | raw lease p50 / p99 "
          "| lease / raw lease | raw seek p50 | one query p50 |")  # fmt: skip
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, r in results.items():
        print(
            f"| {name} | {r['load_s']:.1f} s | {r['lease'][0]:.3f} / {r['lease'][1]:.3f} ms "
            f"| {r['release'][0]:.3f} / {r['release'][1]:.3f} ms "
            f"| {r['raw_lease'][0]:.3f} / {r['raw_lease'][1]:.3f} ms "
            f"| {r['lease'][0] / r['raw_lease'][0]:.1f}x | {r['raw'][0] * 1000:.0f} µs "
            f"| {r['naive'][0]:.1f} ms |"
        )
    sqlite_p99 = results["sqlite"]["lease"][1]
    print(f"\ngoal: SQLite lease p99 <= 2 ms: {'met' if sqlite_p99 <= 2 else 'NOT met'} "
          f"({sqlite_p99:.3f} ms)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
