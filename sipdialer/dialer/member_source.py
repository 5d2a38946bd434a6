"""Where the engine's members come from: the lease contract and an in-memory twin.

Theory of operation
-------------------
Members live in the store, not in the engine. The engine asks for one member at a time
(command ``LeaseMember``); the runner calls ``lease_next`` on a member source and answers
with the event ``MemberLeased``. A leased member belongs to its ``owner`` (a dialer node)
until ``release`` hands it back with its new :class:`MemberState`. The SQL helper
(``store/members.py``) and :class:`InMemoryMembers` (tests, virtual time) implement the
same contract:

``lease_next(campaign_id, now, *, owner, zones)`` returns the first member that is not
ended, not leased, not waiting for a result, due (``next_call_at`` null or ``<= now``), not
expired (``expire`` null or ``> now``), and whose ``timezone`` is in ``zones`` (None: any
zone; a member without a zone is matched by ``None`` in ``zones``). Order: ``priority``
DESC, then ``next_call_at`` (null first: null means "now"), then insertion order
(dialer-semantics §6).

Three helpers let the engine sleep and finish without scanning (answered together with an
empty lease): ``next_due`` (the earliest ``next_call_at`` of the members ``lease_next``
could return later, zones aside), ``remaining`` (members the campaign still has to deal
with: not ended and either not expired, leased or waiting) and ``zones`` (the distinct
member zones of a campaign, what the engine filters calendars with). ``expire_members``
ends every unleased, non-waiting member past ``expire`` with MEMBER_EXPIRED.

Pure code: no IO, no clock.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Protocol

from sipdialer.dialer.dispositions import MEMBER_EXPIRED, MemberState, Number


@dataclass(frozen=True)
class LeasedMember:
    """One member as ``lease_next`` hands it out (field names shared with store/members.py)."""

    member_id: int
    campaign_id: str
    name: str
    priority: int
    timezone: str | None
    variables: Mapping[str, str]
    expire: datetime | None
    state: MemberState


class MemberSource(Protocol):
    """What the runner (or the virtual driver) needs from the members' store."""

    def lease_next(
        self,
        campaign_id: str,
        now: datetime,
        *,
        owner: str,
        zones: Collection[str | None] | None,
    ) -> LeasedMember | None: ...

    def release(self, member_id: int, state: MemberState, *, owner: str) -> None: ...


class LeaseError(ValueError):
    """``release`` of a member that ``owner`` does not hold."""


@dataclass
class _Row:
    member_id: int
    campaign_id: str
    name: str
    priority: int
    timezone: str | None
    variables: Mapping[str, str]
    state: MemberState
    owner: str | None = None
    version: int = 0  # bumped on every change: heap entries of older versions are stale


def _due_key(state: MemberState) -> float:
    return -math.inf if state.next_call_at is None else state.next_call_at.timestamp()


@dataclass
class InMemoryMembers:
    """The member source in memory, indexed like the SQL table.

    One heap per (campaign, priority) of ``(next_call_at, insertion, version)``: a lease
    looks at the top of each priority level, highest first, so it costs O(log n) however
    many members wait in the future (the store does one ``LIMIT 1`` lookup per level).
    Entries are invalidated lazily by ``version``.
    """

    rows: dict[int, _Row] = field(default_factory=dict)
    _heaps: dict[str, dict[int, list[tuple[float, int, int]]]] = field(default_factory=dict)
    _next_id: int = 1

    # --- filling ----------------------------------------------------------------------------

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
        """Insert a member; returns its id (insertion order)."""
        member_id = self._next_id
        self._next_id += 1
        nums = tuple(n if isinstance(n, Number) else Number(n) for n in numbers)
        state = MemberState(numbers=nums, expire=expire, next_call_at=next_call_at)
        row = _Row(member_id, campaign_id, name, priority, timezone, dict(variables or {}), state)
        self.rows[member_id] = row
        self._push(row)
        return member_id

    def _push(self, row: _Row) -> None:
        state = row.state
        if state.ended or state.waiting or row.owner is not None:
            return  # not leasable: no index entry (as a partial index would)
        levels = self._heaps.setdefault(row.campaign_id, {})
        heap = levels.setdefault(row.priority, [])
        heapq.heappush(heap, (_due_key(state), row.member_id, row.version))

    # --- the contract ----------------------------------------------------------------------

    def lease_next(
        self,
        campaign_id: str,
        now: datetime,
        *,
        owner: str,
        zones: Collection[str | None] | None,
    ) -> LeasedMember | None:
        """The next member by priority, due time, insertion; leased to ``owner``."""
        if zones is not None and not zones:
            return None
        due_by = now.timestamp()
        levels = self._heaps.get(campaign_id, {})
        for priority in sorted(levels, reverse=True):
            heap = levels[priority]
            skipped: list[tuple[float, int, int]] = []
            found: _Row | None = None
            while heap and heap[0][0] <= due_by:
                entry = heapq.heappop(heap)
                row = self.rows.get(entry[1])
                if row is None or row.version != entry[2]:
                    continue  # stale
                expire = row.state.expire
                if expire is not None and expire <= now:
                    skipped.append(entry)  # stays until expire_members ends it
                    continue
                if zones is not None and row.timezone not in zones:
                    skipped.append(entry)
                    continue
                found = row
                break
            for entry in skipped:
                heapq.heappush(heap, entry)
            if found is not None:
                found.owner = owner
                found.version += 1
                return self._leased(found)
        return None

    def release(self, member_id: int, state: MemberState, *, owner: str) -> None:
        """Store ``state`` and give the member back (it is leasable again if due)."""
        row = self.rows[member_id]
        if row.owner != owner:
            raise LeaseError(f"member {member_id} is not leased by {owner!r}")
        row.owner = None
        row.state = state
        row.version += 1
        self._push(row)

    def save(self, member_id: int, state: MemberState) -> None:
        """Store ``state`` of an unleased member (a waiting member's result, say)."""
        row = self.rows[member_id]
        row.state = state
        row.version += 1
        self._push(row)

    # --- helpers for sleeping and finishing ------------------------------------------------

    def next_due(self, campaign_id: str) -> datetime | None:
        """Earliest ``next_call_at`` among leasable members (None: none, or one due now)."""
        best: float | None = None
        for heap in self._heaps.get(campaign_id, {}).values():
            while heap:
                at, member_id, version = heap[0]
                row = self.rows.get(member_id)
                if row is None or row.version != version:
                    heapq.heappop(heap)
                    continue
                best = at if best is None else min(best, at)
                break
        if best is None or best == -math.inf:
            return None
        return datetime.fromtimestamp(best, tz=UTC)

    def remaining(self, campaign_id: str, now: datetime) -> int:
        """Members still to deal with: not ended and (not expired, or leased, or waiting)."""
        count = 0
        for row in self.rows.values():
            if row.campaign_id != campaign_id or row.state.ended:
                continue
            expire = row.state.expire
            if expire is None or expire > now or row.owner is not None or row.state.waiting:
                count += 1
        return count

    def zones(self, campaign_id: str) -> frozenset[str | None]:
        return frozenset(r.timezone for r in self.rows.values() if r.campaign_id == campaign_id)

    def expire_members(self, campaign_id: str, now: datetime) -> list[int]:
        """End unleased, non-waiting members past ``expire`` with MEMBER_EXPIRED."""
        ended = []
        for row in self.rows.values():
            state = row.state
            if row.campaign_id != campaign_id or state.ended or state.waiting or row.owner:
                continue
            if state.expire is not None and state.expire <= now:
                row.state = replace(state, next_call_at=None, ended_with=MEMBER_EXPIRED)
                row.version += 1
                ended.append(row.member_id)
        return ended

    def _leased(self, row: _Row) -> LeasedMember:
        return LeasedMember(
            member_id=row.member_id,
            campaign_id=row.campaign_id,
            name=row.name,
            priority=row.priority,
            timezone=row.timezone,
            variables=row.variables,
            expire=row.state.expire,
            state=row.state,
        )
