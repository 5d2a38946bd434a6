"""The REST API's store queries that the repositories do not have: finding a member by
one of its numbers, editing a member's fields, and filtered pages of attempts.

Theory of operation
-------------------
The API reads through :class:`~sipdialer.store.members.MemberStore` and
:class:`~sipdialer.store.attempts.AttemptStore`; these three functions complete them
without changing either class. Each is one short transaction. SQLAlchemy stays in
``store/`` (DESIGN.md): the API passes plain values in and gets rows or records back.

:func:`edit_member` is ``PUT .../members/{mid}``: the fields given replace the member's,
and new numbers (the ``communications`` list) keep the counters of the numbers the member
already had. A leased member is refused (:class:`LeaseError`: its call is in progress),
so is a member waiting for a status result (ValueError: the engine holds its state), and
so is a number of another member of the campaign (:class:`DuplicateNumber`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.engine import Engine

from sipdialer.dialer.dispositions import MemberState, Number
from sipdialer.dialer.member_source import LeaseError
from sipdialer.store.db import read, write
from sipdialer.store.member_rows import (
    DuplicateNumber,
    load_numbers,
    state_of,
    state_values,
    taken_numbers,
    write_numbers,
)
from sipdialer.store.schema import LEASED, WAITING, attempts, communications, members

__all__ = ["AttemptQuery", "edit_member", "member_with_number", "search_attempts"]


def member_with_number(engine: Engine, campaign_id: str, number: str) -> int | None:
    """The id of the campaign's member that has ``number`` (numbers are unique there)."""
    c = communications
    query = select(c.c.member_id).where(c.c.campaign_id == campaign_id, c.c.number == number)
    with read(engine) as connection:
        found = connection.execute(query).scalar()
    return None if found is None else int(found)


def edit_member(
    engine: Engine,
    member_id: int,
    changes: Mapping[str, Any],
    *,
    now: datetime | None = None,
) -> None:
    """Apply ``MemberUpdate.changes()``: ``name``, ``priority``, ``timezone``,
    ``variables``, ``expire`` and ``communications`` (a tuple of :class:`Number`).

    Raises KeyError (no such member), :class:`LeaseError` (leased),
    :class:`DuplicateNumber` (a number of another member), ValueError (the member waits
    for a status result)."""
    now = now or datetime.now(UTC)
    m = members
    with write(engine) as connection:
        # FOR UPDATE (PostgreSQL; SQLite's BEGIN IMMEDIATE already excludes writers): a
        # node's lease (SKIP LOCKED) cannot take the row between this read and the write
        # below, which would give the leased member back as ready (a double lease).
        query = select(*m.c).where(m.c.id == member_id).with_for_update()
        row = connection.execute(query).first()
        if row is None:
            raise KeyError(f"no member {member_id}")
        data = row._mapping
        if data["status"] == LEASED:
            raise LeaseError(f"member {member_id} is leased: its call is in progress")
        if data["status"] == WAITING:  # the engine holds its state until the result
            raise ValueError(f"member {member_id} waits for a status result: send it first")
        columns = {k: changes[k] for k in ("name", "priority", "timezone") if k in changes}
        if changes.get("name") is None:
            columns.pop("name", None)  # null name: keep (the column is NOT NULL)
        if changes.get("priority") is None:
            columns.pop("priority", None)
        if "variables" in changes:
            columns["variables"] = dict(changes["variables"] or {})
        state = state_of(data, load_numbers(connection, member_id))
        new_state = _edited_state(state, changes)
        if new_state is not state:
            numbers = [n.number for n in new_state.numbers]
            taken = {
                number: owner
                for number, owner in taken_numbers(connection, data["campaign_id"], numbers).items()
                if owner != member_id
            }
            if taken:
                number, owner = next(iter(taken.items()))
                raise DuplicateNumber(f"number {number!r} is already a number of member {owner}")
            values = state_values(new_state, now)
            values["result_deadline"] = data["result_deadline"] if new_state.waiting else None
            values["ended_at"] = data["ended_at"]
            columns |= values
            write_numbers(connection, member_id, data["campaign_id"], new_state.numbers)
        if columns:
            columns["updated_at"] = now
            done = connection.execute(
                update(m)
                .where(m.c.id == member_id, m.c.status.not_in((LEASED, WAITING)))
                .values(**columns)
            )
            if done.rowcount != 1:  # belt and braces: leased after all (rolled back)
                raise LeaseError(f"member {member_id} was leased meanwhile: try again")


def _edited_state(state: MemberState, changes: Mapping[str, Any]) -> MemberState:
    new = state
    if "expire" in changes:
        new = replace(new, expire=changes["expire"])
    given: Sequence[Number] | None = changes.get("communications")
    if given is not None:
        old = {n.number: n for n in state.numbers}
        # A number the member had keeps its counters and its stopped/active state; only
        # its priority comes from the body.
        numbers = tuple(
            replace(old[n.number], priority=n.priority) if n.number in old else n for n in given
        )
        new = replace(new, numbers=numbers)
    return new


@dataclass(frozen=True)
class AttemptQuery:
    """Filters of ``GET .../attempts``; each one given must hold."""

    member_id: int | None = None
    number: str | None = None
    agent_id: str | None = None
    cause: str | None = None
    disposition: str | None = None
    since: datetime | None = None  # created_at >= since
    until: datetime | None = None  # created_at < until


def search_attempts(
    engine: Engine, campaign_id: str, query: AttemptQuery, *, offset: int, limit: int
) -> tuple[list[Mapping[str, Any]], int]:
    """A page of the campaign's attempts, newest first, and how many match in all."""
    t = attempts
    where = [t.c.campaign_id == campaign_id]
    if query.member_id is not None:
        where.append(t.c.member_id == query.member_id)
    if query.number is not None:
        where.append(t.c.number == query.number)
    if query.agent_id is not None:
        where.append(t.c.agent_id == query.agent_id)
    if query.cause is not None:
        where.append(t.c.cause == query.cause)
    if query.disposition is not None:
        where.append(t.c.disposition == query.disposition)
    if query.since is not None:
        where.append(t.c.created_at >= query.since)
    if query.until is not None:
        where.append(t.c.created_at < query.until)
    page = select(t).where(*where).order_by(t.c.id.desc()).offset(offset).limit(limit)
    with read(engine) as connection:
        total = int(connection.execute(select(func.count()).where(*where)).scalar_one())
        rows: list[Mapping[str, Any]] = [dict(row._mapping) for row in connection.execute(page)]
    return rows, total
