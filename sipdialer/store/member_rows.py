"""Members as rows and back: the pure types of the repository and the row conversions.

Theory of operation
-------------------
A member is one ``members`` row and its ``communications`` rows. :func:`state_of` builds the
pure :class:`~sipdialer.dialer.dispositions.MemberState` from them; :func:`state_values`
gives the member columns for a state and :func:`write_numbers` brings the numbers in line
with it (update by number, insert the new ones, delete the ones gone), so that a state
read, judged by the pure code and written back round-trips exactly. ``status`` is derived
(:func:`status_of`), never set by hand; see :mod:`sipdialer.store.schema` for ``ASAP``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.engine import Connection

from sipdialer.dialer.dispositions import MemberState, Number
from sipdialer.store.schema import (
    ASAP,
    ENDED,
    READY,
    WAITING,
    UtcDateTime,
    communications,
    members,
)


class DuplicateNumber(ValueError):
    """A number is already a number of another member of the campaign (or repeated)."""


@dataclass(frozen=True)
class NewMember:
    """A member to add (the import and the API build these)."""

    numbers: Sequence[str | Number]
    name: str = ""
    priority: int = 0
    timezone: str | None = None
    variables: Mapping[str, str] = field(default_factory=dict)
    expire: datetime | None = None
    next_call_at: datetime | None = None

    def state(self) -> MemberState:
        nums = tuple(n if isinstance(n, Number) else Number(n) for n in self.numbers)
        return MemberState(numbers=nums, expire=self.expire, next_call_at=self.next_call_at)


@dataclass(frozen=True)
class Refused:
    """A member of a batch that was not added, and why."""

    index: int  # position in the batch
    name: str
    number: str
    reason: str


@dataclass(frozen=True)
class AddReport:
    added: tuple[int, ...]  # ids of the members added, in batch order
    refused: tuple[Refused, ...]


@dataclass(frozen=True)
class MemberRecord:
    """A member as the API and the reports show it."""

    member_id: int
    campaign_id: str
    name: str
    priority: int
    timezone: str | None
    variables: Mapping[str, str]
    expire: datetime | None
    status: str  # ready | leased | waiting | ended
    state: MemberState
    lease_owner: str | None
    leased_at: datetime | None
    result_deadline: datetime | None
    created_at: datetime
    updated_at: datetime
    ended_at: datetime | None


@dataclass(frozen=True)
class MemberPage:
    members: tuple[MemberRecord, ...]
    total: int  # members matching the filters, all pages
    offset: int
    limit: int


def status_of(state: MemberState) -> str:
    if state.ended:
        return ENDED
    return WAITING if state.waiting else READY


def state_values(state: MemberState, now: datetime) -> dict[str, Any]:
    """The ``members`` columns that hold ``state`` (lease columns cleared)."""
    return {
        "status": status_of(state),
        "next_call_at": ASAP if state.next_call_at is None else state.next_call_at,
        "attempts": state.attempts,
        "expire": state.expire,
        "waiting_on": state.waiting_on,
        "ended_with": state.ended_with,
        "ended_at": now if state.ended else None,
        "lease_owner": None,
        "leased_at": None,
        "updated_at": now,
    }


def number_rows(
    member_id: int, campaign_id: str, numbers: Sequence[Number]
) -> list[dict[str, Any]]:
    return [
        {
            "member_id": member_id,
            "campaign_id": campaign_id,
            "number": n.number,
            "position": i,
            "priority": n.priority,
            "active": n.active,
            "attempts": n.attempts,
            "last_tried": n.last_tried,
        }  # fmt: skip
        for i, n in enumerate(numbers)
    ]


def state_of(row: Mapping[Any, Any], number_rows: Sequence[Mapping[Any, Any]]) -> MemberState:
    """The pure state of a member row and its number rows (sorted by position)."""
    numbers = tuple(
        Number(
            number=n["number"],
            priority=n["priority"],
            active=bool(n["active"]),
            attempts=n["attempts"],
            last_tried=n["last_tried"],
        )
        for n in sorted(number_rows, key=lambda n: n["position"])
    )
    next_call_at = row["next_call_at"]
    return MemberState(
        numbers=numbers,
        attempts=row["attempts"],
        expire=row["expire"],
        next_call_at=None if next_call_at == ASAP else next_call_at,
        waiting_on=row["waiting_on"],
        ended_with=row["ended_with"],
    )


NUMBER_COLUMNS = (
    communications.c.member_id,
    communications.c.number,
    communications.c.position,
    communications.c.priority,
    communications.c.active,
    communications.c.attempts,
    communications.c.last_tried,
)

_NUMBERS_OF = select(*NUMBER_COLUMNS).where(communications.c.member_id == bindparam("member_id"))


def load_numbers(connection: Connection, member_id: int) -> list[Mapping[Any, Any]]:
    return [r._mapping for r in connection.execute(_NUMBERS_OF, {"member_id": member_id})]


def check_unique(connection: Connection, campaign_id: str, numbers: Sequence[str]) -> None:
    """Raise :class:`DuplicateNumber` if ``numbers`` repeat or are taken in the campaign."""
    seen: set[str] = set()
    for number in numbers:
        if number in seen:
            raise DuplicateNumber(f"number {number!r} is given twice")
        seen.add(number)
    taken = taken_numbers(connection, campaign_id, numbers)
    if taken:
        number, owner = next(iter(taken.items()))
        raise DuplicateNumber(
            f"number {number!r} is already a number of member {owner} in this campaign"
        )


def taken_numbers(
    connection: Connection, campaign_id: str, numbers: Sequence[str]
) -> dict[str, int]:
    """Which of ``numbers`` the campaign already has: number -> member id."""
    c = communications
    found: dict[str, int] = {}
    unique = list(dict.fromkeys(numbers))
    for start in range(0, len(unique), 500):  # stay under the bound-parameter limits
        chunk = unique[start : start + 500]
        query = select(c.c.number, c.c.member_id).where(
            c.c.campaign_id == campaign_id, c.c.number.in_(chunk)
        )
        found.update({row.number: row.member_id for row in connection.execute(query)})
    return found


def write_numbers(
    connection: Connection, member_id: int, campaign_id: str, numbers: Sequence[Number]
) -> None:
    """Make the member's number rows those of ``numbers`` (same order)."""
    c = communications
    existing = {row["number"] for row in load_numbers(connection, member_id)}
    wanted = number_rows(member_id, campaign_id, numbers)
    new = [row for row in wanted if row["number"] not in existing]
    if new:
        check_unique(connection, campaign_id, [row["number"] for row in new])
        connection.execute(insert(c), new)
    # Keys that are column names would become SET values: prefix them all with "b_".
    kept = [{f"b_{k}": v for k, v in row.items()} for row in wanted if row["number"] in existing]
    if kept:
        connection.execute(
            update(c)
            .where(c.c.member_id == bindparam("b_member_id"), c.c.number == bindparam("b_number"))
            .values(
                position=bindparam("b_position"),
                priority=bindparam("b_priority"),
                active=bindparam("b_active"),
                attempts=bindparam("b_attempts"),
                last_tried=bindparam("b_last_tried", type_=UtcDateTime()),
            ),
            kept,
        )
    gone = existing - {n.number for n in numbers}
    if gone:
        connection.execute(delete(c).where(c.c.member_id == member_id, c.c.number.in_(gone)))


MEMBER_COLUMNS = tuple(members.c)
