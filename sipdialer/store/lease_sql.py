"""The lease statements, built once per store (see ``members.py`` for the algorithm).

Theory of operation
-------------------
Both dialects walk the priority levels top down with one ``LIMIT 1`` seek each on
``ix_members_lease``; they differ in how many round trips through SQLAlchemy that takes,
which is where the time goes (~50 µs of Python per statement against ~5 µs of SQLite):

* SQLite: a single ``WITH RECURSIVE levels`` (the distinct priorities of the ready
  members, one seek per level: a loose index scan), ``picks`` (the first due member of each
  level, materialised so it is evaluated once), then ``UPDATE ... WHERE id = (the pick of
  the highest level that has one) RETURNING *``. The write lock (``BEGIN IMMEDIATE``) makes
  it atomic.
* PostgreSQL: one round trip for the levels that have a due member (the same recursive
  walk, with an ``EXISTS`` per level, locking nothing), then per such level ``UPDATE ...
  WHERE id = (SELECT id ... LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING *`` (the classic
  queue idiom) until one returns a row; a level whose due members are all locked by
  other nodes is passed. Taking the pick inside the recursive statement would lock the
  first row of *every* level for the rest of the transaction, so that other nodes would
  skip members nobody takes.

The zone filter has four shapes (any zone; named zones; no zone; both), so there are four
prepared variants of each statement.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, bindparam, or_, select, update
from sqlalchemy.sql import Select, Update

from sipdialer.store.schema import LEASED, READY, UtcDateTime, members

m = members
NOW: Any = bindparam("now", type_=UtcDateTime())
_READY = and_(m.c.campaign_id == bindparam("cid"), m.c.status == READY)
_TAKE = {"status": LEASED, "lease_owner": bindparam("owner"), "leased_at": NOW}

ZoneShape = tuple[bool, bool] | None
"""(named zones given, members without a zone allowed); None: any zone."""

ZONE_SHAPES: tuple[ZoneShape, ...] = (None, (True, False), (False, True), (True, True))


def _due(level: Any, shape: ZoneShape) -> list[Any]:
    where = [
        _READY,
        m.c.priority == level,
        m.c.next_call_at <= NOW,
        or_(m.c.expire.is_(None), m.c.expire > NOW),
    ]
    if shape is not None:
        named, unnamed = shape
        zone = []
        if named:
            zone.append(m.c.timezone.in_(bindparam("zones", expanding=True)))
        if unnamed:
            zone.append(m.c.timezone.is_(None))
        where.append(or_(*zone))
    return where


def top_level() -> Select[Any]:
    """The highest priority among the campaign's ready members."""
    return select(m.c.priority).where(_READY).order_by(m.c.priority.desc()).limit(1)


def _levels() -> Any:
    """``WITH RECURSIVE levels(p)``: the distinct priorities of the ready members, highest
    first, one index seek each (a loose index scan); ends with a NULL row."""
    first = top_level().scalar_subquery()
    levels = select(first.label("p")).cte("levels", recursive=True)
    below = (
        select(m.c.priority)
        .where(_READY, m.c.priority < levels.c.p)
        .order_by(m.c.priority.desc())
        .limit(1)
        .scalar_subquery()
    )
    return levels.union_all(select(below.label("p")).where(levels.c.p.is_not(None)))


def sqlite_lease(shape: ZoneShape) -> Update:
    """One statement: walk the levels, take the first due member, return its row."""
    levels = _levels()
    candidate = (
        select(m.c.id)
        .where(*_due(levels.c.p, shape))
        .order_by(m.c.next_call_at, m.c.id)
        .limit(1)
        .scalar_subquery()
    )
    picks = (
        select(levels.c.p, candidate.label("id"))
        .where(levels.c.p.is_not(None))
        .cte("picks")
        .prefix_with("MATERIALIZED")  # else SQLite evaluates the candidate twice per level
    )
    pick = (
        select(picks.c.id)
        .where(picks.c.id.is_not(None))
        .order_by(picks.c.p.desc())
        .limit(1)
        .scalar_subquery()
    )
    return update(m).where(m.c.id == pick, m.c.status == READY).values(_TAKE).returning(*m.c)


def postgresql_due_levels(shape: ZoneShape) -> Select[Any]:
    """The levels that have a due member (not locking anything), highest first."""
    levels = _levels()
    due = select(m.c.id).where(*_due(levels.c.p, shape)).exists()
    return select(levels.c.p).where(levels.c.p.is_not(None), due).order_by(levels.c.p.desc())


def postgresql_lease_at_level(shape: ZoneShape) -> Update:
    """Take the first due, unlocked member of ``level``; return its row (or nothing)."""
    candidate = (
        select(m.c.id)
        .where(*_due(bindparam("level"), shape))
        .order_by(m.c.next_call_at, m.c.id)
        .limit(1)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    return update(m).where(m.c.id == candidate, m.c.status == READY).values(_TAKE).returning(*m.c)
