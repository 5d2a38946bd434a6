"""Attempt records: one row per call attempt, everything of dialer-semantics §8.

Theory of operation
-------------------
An attempt row is written twice. :meth:`AttemptStore.start` inserts it (state
``in_flight``, the node that runs it) before the call is placed; its end (an
:class:`AttemptEnd`: telephony from ``CallResult`` plus the disposition) is written in the
*same transaction* as the member's new state, by ``MemberStore.release(..., attempt=...)``,
so that a crash can never leave a judged attempt with an unjudged member or the other way
round. A status result for a waiting member completes that member's ``waiting`` attempt
(:func:`complete_waiting`), again together with the member (``MemberStore.save``).

After a crash, :func:`close_in_flight` closes the node's attempts still in flight as
PROCESS_CRASH, disposition ``refund``, not counted (``MemberStore.recover`` calls it with
the member leases it clears). Times are aware UTC datetimes; ``CallResult`` carries the
calls layer's clock, so :meth:`AttemptEnd.from_call` takes the shell's ``wall`` converter.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import desc, insert, select, update
from sqlalchemy.engine import Connection, Engine

from sipdialer.calls.events import CallResult
from sipdialer.dialer.dispositions import Disposition, DispositionKind
from sipdialer.store.db import read, write
from sipdialer.store.schema import FINISHED, IN_FLIGHT, attempts

PROCESS_CRASH = "PROCESS_CRASH"
"""Cause of an attempt that was in flight when its node stopped (causes.md: dialer's own)."""


@dataclass(frozen=True)
class AttemptEnd:
    """How an attempt ended: telephony (wall-clock times) and the disposition."""

    call_id: str
    ended_at: datetime
    cause: str
    disposition: str | None  # a DispositionKind value; None: not judged
    counted: int = 0  # Disposition.attempts_delta
    rule: str = ""
    cause_q850: int | None = None
    sip_code: int | None = None
    hangup_by: str | None = None
    agent_answered_at: datetime | None = None
    member_ringing_at: datetime | None = None
    member_answered_at: datetime | None = None
    bridged_at: datetime | None = None
    agent_cause: str | None = None
    agent_sip_code: int | None = None
    trunk: str | None = None
    dialed: str | None = None
    talk_seconds: float = 0.0
    recording: str | None = None
    comment: str = ""

    @classmethod
    def from_call(
        cls,
        result: CallResult,
        disposition: Disposition | None,
        wall: Callable[[float], datetime],
    ) -> AttemptEnd:
        """From the calls layer's result; ``wall`` maps its clock to aware UTC datetimes."""

        def stamp(at: float | None) -> datetime | None:
            return None if at is None else wall(at)

        return cls(
            call_id=result.call_id,
            ended_at=wall(result.ended_at),
            cause=result.cause,
            disposition=None if disposition is None else disposition.kind.value,
            counted=0 if disposition is None else disposition.attempts_delta,
            rule="" if disposition is None else disposition.rule,
            cause_q850=result.cause_q850,
            sip_code=result.sip_code,
            hangup_by=result.hangup_by.value,
            agent_answered_at=stamp(result.agent_answered_at),
            member_ringing_at=stamp(result.member_ringing_at),
            member_answered_at=stamp(result.member_answered_at),
            bridged_at=stamp(result.bridged_at),
            agent_cause=result.agent_cause,
            agent_sip_code=result.agent_sip_code,
            trunk=result.trunk,
            dialed=result.dialed,
            talk_seconds=result.talk_seconds,
            recording=result.recording,
        )

    def values(self) -> dict[str, Any]:
        fields = dict(self.__dict__)
        del fields["call_id"]
        fields["comment"] = self.comment or None
        return fields | {"state": FINISHED}


@dataclass(frozen=True)
class AttemptRecord:
    """One row of ``attempts`` (the report and the API read these)."""

    id: int
    call_id: str
    campaign_id: str
    member_id: int
    number: str
    agent_id: str | None
    node: str
    state: str
    created_at: datetime
    ended_at: datetime | None
    cause: str | None
    disposition: str | None
    counted: int
    row: Mapping[Any, Any]  # every column, for the report's other fields


class UnknownAttempt(KeyError):
    """No in-flight attempt with this call id."""


class AttemptStore:
    """Start attempts and read them back; ends go with the member (see the module doc)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def start(
        self,
        *,
        call_id: str,
        campaign_id: str,
        member_id: int,
        number: str,
        owner: str,
        created_at: datetime,
        agent_id: str | None = None,
        trunk: str | None = None,
    ) -> int:
        """Insert the in-flight row (commit before placing the call); returns its id."""
        with write(self.engine) as connection:
            return int(
                connection.execute(
                    insert(attempts).returning(attempts.c.id),
                    {
                        "call_id": call_id,
                        "campaign_id": campaign_id,
                        "member_id": member_id,
                        "number": number,
                        "agent_id": agent_id,
                        "trunk": trunk,
                        "node": owner,
                        "state": IN_FLIGHT,
                        "created_at": created_at,
                        "counted": 0,
                        "talk_seconds": 0.0,
                    },  # fmt: skip
                ).scalar_one()
            )

    def stamp(self, call_id: str, **times: datetime) -> None:
        """Record progress times (``agent_answered_at=...``, ``bridged_at=...``) early."""
        allowed = {"agent_answered_at", "member_ringing_at", "member_answered_at", "bridged_at"}
        if not times or set(times) - allowed:
            raise ValueError(f"expected some of {sorted(allowed)}, got {sorted(times)}")
        with write(self.engine) as connection:
            connection.execute(update(attempts).where(attempts.c.call_id == call_id), times)

    def get(self, call_id: str) -> AttemptRecord | None:
        with read(self.engine) as connection:
            row = connection.execute(select(attempts).where(attempts.c.call_id == call_id)).first()
        return None if row is None else _record(row._mapping)

    def for_member(self, member_id: int) -> list[AttemptRecord]:
        """A member's attempts, oldest first."""
        query = select(attempts).where(attempts.c.member_id == member_id).order_by(attempts.c.id)
        with read(self.engine) as connection:
            return [_record(row._mapping) for row in connection.execute(query)]

    def for_campaign(
        self, campaign_id: str, *, offset: int = 0, limit: int = 100
    ) -> list[AttemptRecord]:
        """A campaign's attempts, newest first (the API's attempts list)."""
        query = (
            select(attempts)
            .where(attempts.c.campaign_id == campaign_id)
            .order_by(desc(attempts.c.id))
            .offset(offset)
            .limit(limit)
        )
        with read(self.engine) as connection:
            return [_record(row._mapping) for row in connection.execute(query)]

    def in_flight(self, owner: str) -> list[AttemptRecord]:
        t = attempts
        query = select(t).where(t.c.node == owner, t.c.state == IN_FLIGHT).order_by(t.c.id)
        with read(self.engine) as connection:
            return [_record(row._mapping) for row in connection.execute(query)]


def end_attempt(connection: Connection, end: AttemptEnd, *, member_id: int) -> None:
    """Close the member's in-flight attempt ``end.call_id`` (inside the caller's transaction)."""
    t = attempts
    done = connection.execute(
        update(t)
        .where(t.c.call_id == end.call_id, t.c.member_id == member_id, t.c.state == IN_FLIGHT)
        .values(**end.values())
    )
    if done.rowcount != 1:
        raise UnknownAttempt(f"no attempt {end.call_id!r} of member {member_id} in flight")


def complete_waiting(
    connection: Connection,
    member_id: int,
    disposition: Disposition | None,
    body: Mapping[Any, Any] | None,
) -> None:
    """Judge the member's last ``waiting`` attempt (a status result or a missed deadline)."""
    t = attempts
    last = connection.execute(
        select(t.c.id)
        .where(t.c.member_id == member_id, t.c.disposition == DispositionKind.WAITING.value)
        .order_by(desc(t.c.id))
        .limit(1)
    ).scalar()
    if last is None:
        return  # nothing recorded as waiting (a member set by hand): nothing to complete
    values: dict[str, Any] = {"result": None if body is None else dict(body)}
    if disposition is not None:
        values |= {
            "disposition": disposition.kind.value,
            "counted": disposition.attempts_delta,
            "rule": disposition.rule,
            "comment": disposition.comment or None,
        }
    connection.execute(update(t).where(t.c.id == last).values(**values))


def close_in_flight(connection: Connection, owner: str, now: datetime) -> int:
    """Close ``owner``'s in-flight attempts as PROCESS_CRASH, refunded; returns how many."""
    t = attempts
    return connection.execute(
        update(t)
        .where(t.c.node == owner, t.c.state == IN_FLIGHT)
        .values(
            state=FINISHED,
            ended_at=now,
            cause=PROCESS_CRASH,
            hangup_by="dialer",
            disposition=DispositionKind.REFUND.value,
            counted=0,
            rule="the dialer stopped during the attempt: refunded",
        )
    ).rowcount


def _record(row: Mapping[Any, Any]) -> AttemptRecord:
    return AttemptRecord(
        id=row["id"], call_id=row["call_id"], campaign_id=row["campaign_id"],
        member_id=row["member_id"], number=row["number"], agent_id=row["agent_id"],
        node=row["node"], state=row["state"], created_at=row["created_at"],
        ended_at=row["ended_at"], cause=row["cause"], disposition=row["disposition"],
        counted=row["counted"], row=dict(row),
    )  # fmt: skip
