"""The runner's persistence: the engine's store commands, committed one by one (a shell).

Theory of operation
-------------------
:class:`RunnerStore` executes the store half of the engine's commands
(``dialer/commands.py``) on the repositories of ``sipdialer/store``; the runner calls it
synchronously, in command order, and each call returns only once its transaction is
committed (DESIGN.md rule 4). So a lease is on disk before ``StartAttempt``, the attempt
row before ``OfferAgent`` rings a phone, and the disposition before the freed agent or line
is used again.

Pairs that must commit together: ``FinishAttempt`` is held until the next command; when
that is the ``SaveMember`` of the same member (the usual case), both go into one
``MemberStore.release(..., attempt=...)`` transaction, so a crash can never leave a
judged attempt with an unjudged member or the reverse. Anything else next (a refunded
attempt offered again at once: ``StartAttempt``) closes the attempt alone first.
``UpdateAttempt`` + ``SaveMember`` of a waiting member likewise become one
``MemberStore.save(disposition=..., result=...)``.

Lines across nodes (decision, issue 5 part 4): on PostgreSQL every node's lines count
against the same campaign ``limit``. A line is a leased member (leased from ``LeaseMember``
to the ``SaveMember`` that ends the attempt), so before leasing, the node takes a per-
campaign advisory lock (tried, never waited for: when another node holds it the lease
answers empty, due again ``LOCK_RECHECK`` later), counts the campaign's leased members over
all nodes and leases only while that count is below ``limit``; the lease commits before the
lock is released, so two nodes can never both take the last line. A refused lease answers
empty with ``next_due`` a second ahead: the engine looks again then. Likewise an empty
lease while the campaign's remaining members are leased by other nodes: their dispositions
never reach this node's engine, so it looks again a second later (instead of the engine's
``EMPTY_RECHECK``) and finishes soon after the last of them ends. Members still leased by a
node that crashed count until that node starts again and recovers them. On SQLite (one
node) the engine's own line count is the limit.

Expired members are ended (``expire_members``) as soon as an empty lease meets a due time
in the past, so that the due time the engine is told is a live member's.

Crash recovery (:meth:`RunnerStore.recover`): the node's in-flight attempts are closed as
PROCESS_CRASH (refunded, not counted) and its leased members given back unchanged, in one
transaction; its agents go back to Waiting. Members waiting for a result whose waiting
attempt ran on this node are handed to the engine again (``restore_waiting``) with their
stored deadline.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, text
from sqlalchemy.engine import Engine

from sipdialer.calls.events import CallResult
from sipdialer.dialer.agents import Agent
from sipdialer.dialer.commands import (
    EndMember,
    FinishAttempt,
    LeaseMember,
    MemberLeased,
    SaveMember,
    StartAttempt,
    UpdateAttempt,
)
from sipdialer.dialer.dispositions import NO_COMMUNICATIONS, DispositionKind, MemberState
from sipdialer.dialer.member_source import LeasedMember
from sipdialer.store.attempts import AttemptEnd, AttemptStore, complete_waiting, end_attempt
from sipdialer.store.db import is_postgresql, read, write
from sipdialer.store.member_rows import DuplicateNumber, MemberRecord
from sipdialer.store.members import MemberStore
from sipdialer.store.schema import LEASED, WAITING, members
from sipdialer.store.sync import release_agents, save_agent

log = logging.getLogger("sipdialer.runner")

LIMIT_RECHECK = 1.0
"Seconds before a campaign at its shared line limit asks for a member again."
LOCK_RECHECK = 0.05
"Seconds before a lease refused because another node held the campaign's lock is retried."
OTHERS_RECHECK = 1.0
"Seconds before an idle campaign looks again while other nodes hold its last members."
_LOCK_BASE = 0x5D1A_2000
"pg_advisory_lock keys of the per-campaign line limit (next to the sync's key)."


def line_lock_key(campaign_id: str) -> int:
    """The advisory lock key of a campaign's shared line limit."""
    return _LOCK_BASE + int.from_bytes(hashlib.sha1(campaign_id.encode()).digest()[:3], "big")


@dataclass(frozen=True)
class Restored:
    """A member waiting for a result, to hand to ``engine.restore_waiting``."""

    member: LeasedMember
    call_id: str
    deadline: float


class RunnerStore:
    """The node's side of the store (see the module docstring)."""

    def __init__(
        self,
        engine: Engine,
        node: str,
        wall: Callable[[float], datetime],
        *,
        shared_limit: bool | None = None,
    ) -> None:
        """``wall`` maps the calls layer's clock to aware UTC datetimes (AttemptEnd)."""
        self.engine = engine
        self.node = node
        self.members = MemberStore(engine)
        self.attempts = AttemptStore(engine)
        self.wall = wall
        self.shared_limit = is_postgresql(engine) if shared_limit is None else shared_limit
        self.leased: set[int] = set()
        "Members this node holds leased (so SaveMember knows release from save)."
        self._finish: tuple[FinishAttempt, AttemptEnd] | None = None
        self._update: UpdateAttempt | None = None

    # --- start ---------------------------------------------------------------------------

    def recover(self) -> int:
        """Close what a crash of this node left (module docstring); returns the members."""
        in_flight = len(self.attempts.in_flight(self.node))
        given_back = self.members.recover(self.node)
        agents = release_agents(self.engine, self.node)
        if in_flight or given_back or agents:
            log.warning(
                "recovered after a crash of node %s: %d attempts closed as PROCESS_CRASH"
                " (refunded), %d members and %d agents released",
                self.node, in_flight, given_back, agents,
            )  # fmt: skip
        return given_back

    def waiting_members(self, campaign_id: str) -> Iterator[Restored]:
        """This node's members of ``campaign_id`` waiting for a result, with deadlines."""
        offset = 0
        while True:
            page = self.members.list(campaign_id, status=WAITING, offset=offset, limit=1000)
            for record in page.members:
                attempts = self.attempts.for_member(record.member_id)
                waiting = [a for a in attempts if a.disposition == DispositionKind.WAITING.value]
                if not waiting or waiting[-1].node != self.node:
                    continue  # another node's wait: that node restores it
                deadline = record.result_deadline or waiting[-1].ended_at
                member = LeasedMember(
                    member_id=record.member_id,
                    campaign_id=record.campaign_id,
                    name=record.name,
                    priority=record.priority,
                    timezone=record.timezone,
                    variables=record.variables,
                    expire=record.expire,
                    state=record.state,
                )
                at = 0.0 if deadline is None else deadline.timestamp()
                yield Restored(member, waiting[-1].call_id, at)
            offset += len(page.members)
            if offset >= page.total or not page.members:
                return

    # --- commands --------------------------------------------------------------------------

    def lease(self, command: LeaseMember, now: datetime, limit: int) -> MemberLeased:
        """Lease the campaign's next member (under the shared line limit on PostgreSQL)."""
        cid, agent = command.campaign_id, command.agent_id
        if not self.shared_limit:
            return self._lease(command, now)
        key = line_lock_key(cid)
        with self.engine.connect() as lock:
            # Never wait for the lock: this runs on the event loop that also relays media,
            # and a node stalled while holding it must not stall this one. Another node's
            # lease holds it for a few milliseconds: look again LOCK_RECHECK later.
            got = lock.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar()
            lock.commit()
            if not got:
                due = now + timedelta(seconds=LOCK_RECHECK)
                return MemberLeased(cid, agent, None, next_due=due, remaining=None)
            try:
                if self.leased_count(cid) >= limit:
                    due = now + timedelta(seconds=LIMIT_RECHECK)
                    return MemberLeased(cid, agent, None, next_due=due, remaining=None)
                return self._lease(command, now)
            finally:
                lock.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                lock.commit()

    def _lease(self, command: LeaseMember, now: datetime) -> MemberLeased:
        cid, agent = command.campaign_id, command.agent_id
        member = self.members.lease_next(cid, now, owner=self.node, zones=command.zones)
        if member is not None:
            self.leased.add(member.member_id)
            return MemberLeased(cid, agent, member)
        next_due = self.members.next_due(cid)
        if (
            next_due is not None
            and next_due <= now
            and (ended := self.members.expire_members(cid, now))
        ):
            log.info("campaign %s: %d members expired", cid, len(ended))
            # A due member the lease skipped may be one past its expire: end those now
            # (MEMBER_EXPIRED, as the campaign's end would), or the engine would take the
            # past due time for members in closed zones and sleep EMPTY_RECHECK.
            next_due = self.members.next_due(cid)
        remaining = self.members.remaining(cid, now)
        if (
            self.shared_limit
            and remaining
            and (next_due is None or next_due <= now)
            and self.leased_count(cid, others=True)
        ):
            # What is left is in other nodes' calls: their dispositions do not wake this
            # node's engine, so look again soon rather than after EMPTY_RECHECK.
            next_due = now + timedelta(seconds=OTHERS_RECHECK)
        zones = self.members.zones(cid) if remaining else None  # unseen zones (engine.py)
        return MemberLeased(cid, agent, None, next_due=next_due, remaining=remaining, zones=zones)

    def leased_count(self, campaign_id: str, *, others: bool = False) -> int:
        """Members of the campaign leased now by any node (its lines in use), or by
        nodes other than this one."""
        query = select(func.count()).where(
            members.c.campaign_id == campaign_id, members.c.status == LEASED
        )
        if others:
            query = query.where(members.c.lease_owner != self.node)
        with read(self.engine) as connection:
            return int(connection.execute(query).scalar_one())

    def start_attempt(self, command: StartAttempt) -> None:
        self.flush()  # a refunded attempt's end goes first
        self.attempts.start(
            call_id=command.call_id,
            campaign_id=command.campaign_id,
            member_id=command.member_id,
            number=command.number,
            owner=self.node,
            created_at=command.at,
            agent_id=command.agent_id,
        )

    def finish_attempt(self, command: FinishAttempt, result: CallResult) -> AttemptEnd:
        """Hold the attempt's end for the member's SaveMember (one transaction)."""
        self.flush()
        end = AttemptEnd.from_call(result, command.disposition, self.wall)
        self._finish = (command, end)
        return end

    def update_attempt(self, command: UpdateAttempt) -> None:
        self.flush()
        self._update = command

    def save_member(self, command: SaveMember) -> None:
        finish, update = self._finish, self._update
        self._finish = self._update = None
        member_id = command.member_id
        attempt = None
        if finish is not None and finish[0].member_id == member_id:
            attempt = finish[1]
        elif finish is not None:
            self._end_alone(*finish)
        if member_id in self.leased:
            self.members.release(
                member_id,
                command.state,
                owner=self.node,
                attempt=attempt,
                result_deadline=command.result_deadline,
            )
            self.leased.discard(member_id)
            return
        status_body = None
        disposition = command.disposition
        if update is not None and update.member_id == member_id and update.status is not None:
            status_body = _status_body(update)
        elif update is not None and update.member_id != member_id:
            self._complete_alone(update)
        try:
            self.members.save(
                member_id,
                command.state,
                disposition=disposition,
                result=status_body,
                result_deadline=command.result_deadline,
            )
        except DuplicateNumber as exc:
            # A status result's next_communication taken by another member after the
            # runner checked it (an edit, another node): the judged member is saved
            # without it. A refused number is the client's error, never a store failure.
            log.warning("member %d: %s; saved without that number", member_id, exc)
            self.members.save(
                member_id,
                _without_new_numbers(command.state, self.members.get(member_id)),
                disposition=disposition,
                result=status_body,
                result_deadline=command.result_deadline,
            )

    def end_member(self, command: EndMember) -> None:
        self.flush()
        # One locked transaction: gone, another node's call (it judges it), or over
        # already leave it as it is; a lease can no longer slip in between read and write.
        self.members.end_unleased(command.member_id, command.cause)

    def flush(self) -> None:
        """Write a held FinishAttempt / UpdateAttempt on its own (no SaveMember came)."""
        finish, update = self._finish, self._update
        self._finish = self._update = None
        if finish is not None:
            self._end_alone(*finish)
        if update is not None:
            self._complete_alone(update)

    def _end_alone(self, command: FinishAttempt, end: AttemptEnd) -> None:
        with write(self.engine) as connection:
            end_attempt(connection, end, member_id=command.member_id)

    def _complete_alone(self, command: UpdateAttempt) -> None:
        body = None if command.status is None else _status_body(command)
        with write(self.engine) as connection:
            complete_waiting(connection, command.member_id, command.disposition, body)

    def save_agent(self, agent: Agent) -> None:
        busy = agent.state.value != "Waiting"
        save_agent(
            self.engine,
            agent.id,
            status=agent.status.value,
            state=agent.state.value,
            node=self.node if busy else None,
            no_answer_count=agent.no_answer_count,
            calls=agent.calls,
            idle_since=datetime.fromtimestamp(agent.idle_since, UTC) if agent.idle_since else None,
        )


def _without_new_numbers(state: MemberState, stored: MemberRecord | None) -> MemberState:
    """``state`` keeping only the numbers the store has for the member; with none active
    left, the member ends with NO_COMMUNICATIONS (as a status result stopping them all)."""
    have = {n.number for n in stored.state.numbers} if stored is not None else set()
    state = replace(state, numbers=tuple(n for n in state.numbers if n.number in have))
    if not state.ended and not state.active_numbers:
        state = replace(state, next_call_at=None, waiting_on=None, ended_with=NO_COMMUNICATIONS)
    return state


def _status_body(command: UpdateAttempt) -> dict[str, object]:
    """The status result as the attempt's ``result`` column keeps it (JSON)."""
    status = command.status
    if status is None:
        return {}
    body = asdict(status)
    body["stop_communications"] = (
        status.stop_communications
        if isinstance(status.stop_communications, str)
        else list(status.stop_communications)
    )
    return body
