"""The members' repository: add, lease, release, recover, list (the SQL member source).

Theory of operation
-------------------
:class:`MemberStore` implements the lease contract of
:mod:`sipdialer.dialer.member_source` (whose :class:`LeasedMember` and :class:`LeaseError`
it shares) on the tables of :mod:`sipdialer.store.schema`; ``InMemoryMembers`` is its twin.

Leasing (``lease_next``), in one write transaction (``BEGIN IMMEDIATE`` on SQLite, where
writers are serialised anyway; on PostgreSQL the chosen row is locked ``FOR UPDATE SKIP
LOCKED``, so two nodes leasing at once take two different members and never wait on each
other):

1. the highest priority level with a ready member: ``ORDER BY priority DESC LIMIT 1`` on
   the index ``(campaign_id, status, priority DESC, next_call_at, id)``, one seek;
2. at that level, the first ready member with ``next_call_at <= now`` by ``(next_call_at,
   id)``: one range seek on the same index, then the residual filters (``expire``, zone);
3. none at this level (all in the future, filtered out or locked): the next level down
   (step 1 with ``priority < level``) and again. So the cost is one ``LIMIT 1`` seek per
   priority level, however many members wait in the future (DESIGN.md, Store);
4. mark it ``leased`` by ``owner`` (``UPDATE ... RETURNING``), read its numbers; commit.

:mod:`sipdialer.store.lease_sql` builds these statements once: on SQLite steps 1-4 are a
single recursive statement; PostgreSQL asks for the levels that have a due member in one
round trip, then takes a member level by level.

Members past ``expire`` or outside the allowed zones are skipped by the scan of step 2;
``expire_members`` ends the expired ones so that they stop costing anything.

``release`` writes the member's new state and clears the lease, only for the owner
(:class:`LeaseError` otherwise), optionally with the attempt's end in the same transaction
(crash safety, :mod:`sipdialer.store.attempts`). ``recover(owner)`` after a crash closes
the owner's in-flight attempts as PROCESS_CRASH (refunded) and gives its leased members
back unchanged: they had not been judged, so they are offered again at once.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, delete, func, insert, or_, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.sql import Update

from sipdialer.dialer.dispositions import MEMBER_EXPIRED, Disposition, MemberState, Number
from sipdialer.dialer.member_source import LeasedMember, LeaseError
from sipdialer.store import lease_sql
from sipdialer.store.attempts import AttemptEnd, close_in_flight, complete_waiting, end_attempt
from sipdialer.store.db import is_postgresql, read, write
from sipdialer.store.lease_sql import ZoneShape
from sipdialer.store.member_rows import (
    NUMBER_COLUMNS,
    AddReport,
    DuplicateNumber,
    MemberPage,
    MemberRecord,
    NewMember,
    Refused,
    check_unique,
    load_numbers,
    number_rows,
    state_of,
    state_values,
    taken_numbers,
    write_numbers,
)
from sipdialer.store.schema import (
    ASAP,
    ENDED,
    LEASED,
    READY,
    WAITING,
    communications,
    members,
)

__all__ = [
    "AddReport", "DuplicateNumber", "LeaseError", "LeasedMember", "MemberPage",
    "MemberRecord", "MemberStore", "NewMember", "Refused",
]  # fmt: skip

m = members


def _now() -> datetime:
    return datetime.now(UTC)


class MemberStore:
    """Members of campaigns in the store; every method is one short transaction."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._postgresql = is_postgresql(engine)
        self._due_levels = {
            shape: lease_sql.postgresql_due_levels(shape) for shape in lease_sql.ZONE_SHAPES
        }
        self._lease: dict[ZoneShape, Update] = {
            shape: (
                lease_sql.postgresql_lease_at_level(shape)
                if self._postgresql
                else lease_sql.sqlite_lease(shape)
            )
            for shape in lease_sql.ZONE_SHAPES
        }

    # --- adding ----------------------------------------------------------------------------

    def add(
        self,
        campaign_id: str,
        numbers: Iterable[str | Number],
        *,
        name: str = "",
        priority: int = 0,
        timezone: str | None = None,
        variables: Mapping[str, str] | None = None,
        expire: datetime | None = None,
        next_call_at: datetime | None = None,
    ) -> int:
        """Insert one member; returns its id. Raises :class:`DuplicateNumber`."""
        new = NewMember(
            tuple(numbers), name, priority, timezone, dict(variables or {}), expire, next_call_at
        )
        report = self.add_many(campaign_id, [new])
        if report.refused:
            raise DuplicateNumber(report.refused[0].reason)
        return report.added[0]

    def add_many(
        self, campaign_id: str, batch: Iterable[NewMember], *, now: datetime | None = None
    ) -> AddReport:
        """Insert members with their numbers in one transaction.

        A member with a number that the campaign already has (or an earlier member of the
        batch, or itself twice) is refused whole, with the reason; the others are added.
        """
        now = now or _now()
        items = list(batch)
        refused: list[Refused] = []
        accepted: list[tuple[int, NewMember, MemberState]] = []
        with write(self.engine) as connection:
            taken = taken_numbers(
                connection,
                campaign_id,
                [n if isinstance(n, str) else n.number for item in items for n in item.numbers],
            )
            claimed: dict[str, int] = {}  # number -> index in the batch
            for index, item in enumerate(items):
                state = item.state()
                problem = _duplicate(state.numbers, taken, claimed)
                if problem is None and not state.numbers:
                    problem = ("", "a member needs at least one number")
                if problem is not None:
                    refused.append(Refused(index, item.name, problem[0], problem[1]))
                    continue
                for n in state.numbers:
                    claimed[n.number] = index
                accepted.append((index, item, state))
            ids = self._insert(connection, campaign_id, accepted, now)
        return AddReport(tuple(ids), tuple(refused))

    def _insert(
        self,
        connection: Connection,
        campaign_id: str,
        accepted: Sequence[tuple[int, NewMember, MemberState]],
        now: datetime,
    ) -> list[int]:
        if not accepted:
            return []
        rows = [
            {
                "campaign_id": campaign_id, "name": item.name, "priority": item.priority,
                "timezone": item.timezone, "variables": dict(item.variables),
                "created_at": now,
            } | state_values(state, now)
            for _, item, state in accepted
        ]  # fmt: skip
        result = connection.execute(insert(m).returning(m.c.id, sort_by_parameter_order=True), rows)
        ids = [row.id for row in result]
        numbers = [
            row
            for member_id, (_, _, state) in zip(ids, accepted, strict=True)
            for row in number_rows(member_id, campaign_id, state.numbers)
        ]
        connection.execute(insert(communications), numbers)
        return ids

    # --- the lease contract ----------------------------------------------------------------

    def lease_next(
        self,
        campaign_id: str,
        now: datetime,
        *,
        owner: str,
        zones: Collection[str | None] | None = None,
    ) -> LeasedMember | None:
        """The next due member by priority, due time, insertion; leased to ``owner``."""
        if zones is not None and not zones:
            return None
        params: dict[str, Any] = {"cid": campaign_id, "now": now, "owner": owner}
        shape: ZoneShape = None
        if zones is not None:
            named = [z for z in zones if z is not None]
            shape = (bool(named), None in zones)
            if named:
                params["zones"] = named
        statement = self._lease[shape]
        with write(self.engine) as connection:
            if not self._postgresql:  # one statement walks every level (lease_sql.py)
                row = connection.execute(statement, params).first()
                return None if row is None else self._leased(connection, row._mapping)
            levels = list(connection.execute(self._due_levels[shape], params).scalars())
            for level in levels:  # highest first; each lease skips rows other nodes hold
                row = connection.execute(statement, params | {"level": level}).first()
                if row is not None:
                    return self._leased(connection, row._mapping)
        return None

    def _leased(self, connection: Connection, row: Mapping[Any, Any]) -> LeasedMember:
        state = state_of(row, load_numbers(connection, row["id"]))
        return LeasedMember(
            member_id=row["id"],
            campaign_id=row["campaign_id"],
            name=row["name"],
            priority=row["priority"],
            timezone=row["timezone"],
            variables=row["variables"],
            expire=row["expire"],
            state=state,
        )

    def release(
        self,
        member_id: int,
        state: MemberState,
        *,
        owner: str,
        attempt: AttemptEnd | None = None,
        result_deadline: datetime | None = None,
        now: datetime | None = None,
    ) -> None:
        """Store ``state`` and clear ``owner``'s lease; with ``attempt``, close that attempt
        in the same transaction. ``result_deadline``: when a waiting member's wait ends."""
        now = now or _now()
        with write(self.engine) as connection:
            row = self._row(connection, member_id)
            if row["status"] != LEASED or row["lease_owner"] != owner:
                raise LeaseError(f"member {member_id} is not leased by {owner!r}")
            self._write_state(connection, row, state, now, result_deadline)
            if attempt is not None:
                end_attempt(connection, attempt, member_id=member_id)

    def save(
        self,
        member_id: int,
        state: MemberState,
        *,
        disposition: Disposition | None = None,
        result: Mapping[Any, Any] | None = None,
        result_deadline: datetime | None = None,
        now: datetime | None = None,
    ) -> None:
        """Store ``state`` of an unleased member: a status result (``disposition`` and the
        request ``result`` complete the member's waiting attempt), a missed result
        deadline, or an edit through the API. A leased member raises :class:`LeaseError`."""
        now = now or _now()
        with write(self.engine) as connection:
            row = self._row(connection, member_id)
            if row["status"] == LEASED:
                raise LeaseError(f"member {member_id} is leased by {row['lease_owner']!r}")
            was_waiting = row["status"] == WAITING
            self._write_state(connection, row, state, now, result_deadline)
            if was_waiting and (disposition is not None or result is not None):
                complete_waiting(connection, member_id, disposition, result)

    def recover(self, owner: str, now: datetime | None = None) -> int:
        """After a crash of ``owner``: close its in-flight attempts as PROCESS_CRASH
        (refunded) and give back the members it held, unchanged. Returns the members."""
        now = now or _now()
        with write(self.engine) as connection:
            close_in_flight(connection, owner, now)
            released = connection.execute(
                update(m)
                .where(m.c.lease_owner == owner, m.c.status == LEASED)
                .values(status=READY, lease_owner=None, leased_at=None, updated_at=now)
            )
            return int(released.rowcount)

    def _row(self, connection: Connection, member_id: int) -> Mapping[Any, Any]:
        query = select(*m.c).where(m.c.id == member_id)
        if self._postgresql:
            query = query.with_for_update()
        row = connection.execute(query).first()
        if row is None:
            raise KeyError(f"no member {member_id}")
        return row._mapping

    def _write_state(
        self,
        connection: Connection,
        row: Mapping[Any, Any],
        state: MemberState,
        now: datetime,
        result_deadline: datetime | None,
    ) -> None:
        values = state_values(state, now)
        values["result_deadline"] = result_deadline if state.waiting else None
        if row["ended_at"] is not None and state.ended:
            values["ended_at"] = row["ended_at"]
        connection.execute(update(m).where(m.c.id == row["id"]).values(**values))
        write_numbers(connection, row["id"], row["campaign_id"], state.numbers)

    # --- helpers for sleeping and finishing (as InMemoryMembers) ---------------------------

    def next_due(self, campaign_id: str) -> datetime | None:
        """Earliest ``next_call_at`` of the ready members (None: none, or one due now)."""
        query = select(func.min(m.c.next_call_at)).where(
            m.c.campaign_id == campaign_id, m.c.status == READY
        )
        with read(self.engine) as connection:
            due = connection.execute(query).scalar()
        return None if due is None or due == ASAP else due  # type: ignore[no-any-return]

    def remaining(self, campaign_id: str, now: datetime) -> int:
        """Members still to deal with: not ended and (not expired, or leased, or waiting)."""
        query = select(func.count()).where(
            m.c.campaign_id == campaign_id,
            m.c.status != ENDED,
            or_(m.c.expire.is_(None), m.c.expire > now, m.c.status.in_((LEASED, WAITING))),
        )
        with read(self.engine) as connection:
            return int(connection.execute(query).scalar_one())

    def zones(self, campaign_id: str) -> frozenset[str | None]:
        query = select(m.c.timezone).where(m.c.campaign_id == campaign_id).distinct()
        with read(self.engine) as connection:
            return frozenset(connection.execute(query).scalars())

    def expire_members(self, campaign_id: str, now: datetime) -> list[int]:
        """End the ready members past ``expire`` with MEMBER_EXPIRED; returns their ids."""
        where = and_(m.c.campaign_id == campaign_id, m.c.status == READY, m.c.expire <= now)
        with write(self.engine) as connection:
            ids = list(connection.execute(select(m.c.id).where(where)).scalars())
            if ids:
                connection.execute(
                    update(m)
                    .where(m.c.id.in_(ids))
                    .values(
                        status=ENDED,
                        ended_with=MEMBER_EXPIRED,
                        next_call_at=ASAP,
                        ended_at=now,
                        updated_at=now,
                    )  # fmt: skip
                )
        return ids

    # --- reading, listing, deleting --------------------------------------------------------

    def get(self, member_id: int) -> MemberRecord | None:
        with read(self.engine) as connection:
            row = connection.execute(select(*m.c).where(m.c.id == member_id)).first()
            if row is None:
                return None
            return _record(row._mapping, load_numbers(connection, member_id))

    def list(
        self,
        campaign_id: str,
        *,
        status: str | None = None,
        ended_with: str | None = None,
        name: str | None = None,
        offset: int = 0,
        limit: int = 100,
    ) -> MemberPage:
        """A page of a campaign's members in insertion order, with optional filters
        (``status``: ready/leased/waiting/ended; ``name``: a substring)."""
        if offset < 0 or not 1 <= limit <= 10_000:
            raise ValueError("offset must be >= 0 and limit in 1..10000")
        where = [m.c.campaign_id == campaign_id]
        if status is not None:
            where.append(m.c.status == status)
        if ended_with is not None:
            where.append(m.c.ended_with == ended_with)
        if name:
            where.append(m.c.name.contains(name, autoescape=True))
        page = select(*m.c).where(*where).order_by(m.c.id).offset(offset).limit(limit)
        with read(self.engine) as connection:
            total = connection.execute(select(func.count()).where(*where)).scalar_one()
            rows = [row._mapping for row in connection.execute(page)]
            numbers = _numbers_of(connection, [row["id"] for row in rows])
        records = tuple(_record(row, numbers.get(row["id"], [])) for row in rows)
        return MemberPage(records, int(total), offset, limit)

    def counts(self, campaign_id: str) -> dict[str, int]:
        """Members per status (every status present, zeros included)."""
        query = (
            select(m.c.status, func.count())
            .where(m.c.campaign_id == campaign_id)
            .group_by(m.c.status)
        )
        with read(self.engine) as connection:
            found = {status: int(n) for status, n in connection.execute(query)}
        return {status: found.get(status, 0) for status in (READY, LEASED, WAITING, ENDED)}

    def delete(self, member_id: int) -> bool:
        """Delete a member, its numbers and attempts; False when there was none. A leased
        member raises :class:`LeaseError` (its call is in progress)."""
        with write(self.engine) as connection:
            # Locked (PostgreSQL), and the delete conditional: a lease between the read
            # and the delete must not lose a member whose call is in progress.
            query = select(m.c.status).where(m.c.id == member_id).with_for_update()
            row = connection.execute(query).first()
            if row is None:
                return False
            if row.status == LEASED:
                raise LeaseError(f"member {member_id} is leased: its call is in progress")
            done = connection.execute(delete(m).where(m.c.id == member_id, m.c.status != LEASED))
            if done.rowcount != 1:
                raise LeaseError(f"member {member_id} was leased meanwhile: its call is on")
            return True

    def end_unleased(self, member_id: int, cause: str, now: datetime | None = None) -> bool:
        """End a member that is not leased with ``cause`` (a manager request the engine
        does not hold), in one locked transaction; False when it is gone, leased (its
        node judges its call) or over already."""
        now = now or _now()
        with write(self.engine) as connection:
            try:
                row = self._row(connection, member_id)
            except KeyError:
                return False
            state = state_of(row, load_numbers(connection, member_id))
            if row["status"] == LEASED or state.ended:
                return False
            ended = replace(state, next_call_at=None, ended_with=cause)
            self._write_state(connection, row, ended, now, None)
            return True

    def check_numbers(self, campaign_id: str, numbers: Sequence[str]) -> None:
        """Raise :class:`DuplicateNumber` if any of ``numbers`` is taken (API validation)."""
        with read(self.engine) as connection:
            check_unique(connection, campaign_id, numbers)


def _duplicate(
    numbers: Sequence[Number], taken: Mapping[str, int], claimed: Mapping[str, int]
) -> tuple[str, str] | None:
    seen: set[str] = set()
    for n in numbers:
        if n.number in seen:
            return n.number, f"number {n.number!r} is given twice for this member"
        seen.add(n.number)
        if n.number in taken:
            owner = taken[n.number]
            return n.number, f"number {n.number!r} is already a number of member {owner}"
        if n.number in claimed:
            earlier = claimed[n.number]
            return n.number, f"number {n.number!r} is also in entry {earlier} of this batch"
    return None


def _numbers_of(connection: Connection, ids: Sequence[int]) -> dict[int, list[Mapping[Any, Any]]]:
    out: dict[int, list[Mapping[Any, Any]]] = {}
    if not ids:
        return out
    query = select(*NUMBER_COLUMNS).where(communications.c.member_id.in_(ids))
    for row in connection.execute(query):
        out.setdefault(row.member_id, []).append(row._mapping)
    return out


def _record(row: Mapping[Any, Any], numbers: Sequence[Mapping[Any, Any]]) -> MemberRecord:
    return MemberRecord(
        member_id=row["id"], campaign_id=row["campaign_id"], name=row["name"],
        priority=row["priority"], timezone=row["timezone"], variables=row["variables"],
        expire=row["expire"], status=row["status"], state=state_of(row, numbers),
        lease_owner=row["lease_owner"], leased_at=row["leased_at"],
        result_deadline=row["result_deadline"], created_at=row["created_at"],
        updated_at=row["updated_at"], ended_at=row["ended_at"],
    )  # fmt: skip
