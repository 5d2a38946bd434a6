"""Virtual time: the engine on a fake clock, simulated call legs and members in memory.

Theory of operation
-------------------
:class:`VirtualDialer` plays the runner and the calls layer at once, with no IO: it
executes the engine's commands in order against an :class:`InMemoryMembers` and a
simulated telephony, and keeps one queue of future events ordered by ``(time, seq)``.
Each step takes whichever comes first, the next queued event or ``engine.get_timer()``,
moves the clock there and feeds it to the engine. Nothing sleeps, so a day of dialing
costs only the CPU the engine spends deciding (DESIGN.md rule 5).

The simulated member legs behave by the number's first digit (:data:`BEHAVIOURS`), like
the loopback trunk simulator: 1 answers and talks, 2 busy (486), 3 no answer (ring until
the route's ``call_timeout``), 4 rejects (603), 5 invalid number (404), 6 no user response
(480), 7 temporary failure (503, Minus: never counted), 9 answers for a short call (under
``min_success_duration``). Other digits answer like 1. ``trunk_behaviours()`` gives the
loopback trunk simulator's own table instead (``simulate.behaviour``), for runs that must
judge numbers exactly as a real run over loopback SIP does. Simulated agents answer after
``AgentBehaviour.answer_after``; ``fail_every`` makes every n-th offer to an agent fail
with ``fail_cause`` (agent-leg failures, refunds, penalties).

``LeaseMember`` is answered at once (same instant, after the commands already queued) with
``next_due``/``remaining`` filled from the source, as the runner does. Attempts are kept in
:attr:`VirtualDialer.attempts` for checks and reports.

Pure code: no IO, no clock (the caller measures wall time if it wants to).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from sipdialer.calls.causes import cause_for_status
from sipdialer.calls.events import (
    AgentAnswered,
    AgentFailed,
    AgentRinging,
    Bridged,
    CallEnded,
    CallOrder,
    CallResult,
    MemberAnswered,
    MemberRinging,
    Side,
)
from sipdialer.dialer.campaign import CampaignState, utc
from sipdialer.dialer.commands import (
    Bridge,
    CampaignFinished,
    Command,
    DialMember,
    EndMember,
    EngineEvent,
    ExpireMembers,
    FinishAttempt,
    Hangup,
    LeaseMember,
    MemberLeased,
    MemberStatusReceived,
    OfferAgent,
    PublishAgent,
    ReleaseAgent,
    SaveMember,
    StartAttempt,
    UpdateAttempt,
)
from sipdialer.dialer.dispositions import Disposition, NotWaiting, StatusResult
from sipdialer.dialer.engine import DialerEngine
from sipdialer.dialer.member_source import InMemoryMembers
from sipdialer.simulate.behaviour import DEFAULT_BEHAVIOURS, match_behaviour
from sipdialer.simulate.behaviour import Behaviour as TrunkBehaviour

Q850 = {
    "NORMAL_CLEARING": 16,
    "USER_BUSY": 17,
    "NO_USER_RESPONSE": 18,
    "NO_ANSWER": 19,
    "CALL_REJECTED": 21,
    "UNALLOCATED_NUMBER": 1,
    "NORMAL_TEMPORARY_FAILURE": 41,
    "ORIGINATOR_CANCEL": 487,
    "MANAGER_REQUEST": 703,
}


@dataclass(frozen=True, slots=True)
class Behaviour:
    """What a simulated member leg does after ``DialMember``."""

    cause: str
    sip_code: int | None
    ring: float
    "Seconds from the dial to the answer (talk set) or to the failure."
    talk: float | None = None
    "Seconds from the bridge to the member's BYE; None: never answers."


ROUTE_CALL_TIMEOUT = 60.0
BEHAVIOURS: dict[str, Behaviour] = {
    "1": Behaviour("NORMAL_CLEARING", 200, ring=5.0, talk=60.0),
    "2": Behaviour("USER_BUSY", 486, ring=1.0),
    "3": Behaviour("NO_ANSWER", None, ring=ROUTE_CALL_TIMEOUT),
    "4": Behaviour("CALL_REJECTED", 603, ring=3.0),
    "5": Behaviour("UNALLOCATED_NUMBER", 404, ring=0.5),
    "6": Behaviour("NO_USER_RESPONSE", 480, ring=10.0),
    "7": Behaviour("NORMAL_TEMPORARY_FAILURE", 503, ring=0.5),
    "9": Behaviour("NORMAL_CLEARING", 200, ring=5.0, talk=3.0),
}
"First digit of the number -> behaviour (others: like 1)."


def behaviour_of(number: str) -> Behaviour:
    """The default table: :data:`BEHAVIOURS` by first digit (others like 1)."""
    digits = number.lstrip("+")
    return BEHAVIOURS.get(digits[:1], BEHAVIOURS["1"])


LONG_CALL = 3600.0
"Talk time of a trunk row that waits for the caller's BYE (``talk = None``)."


def trunk_behaviours(
    rows: Sequence[TrunkBehaviour] = DEFAULT_BEHAVIOURS,
    *,
    call_timeout: float = ROUTE_CALL_TIMEOUT,
) -> Callable[[str], Behaviour]:
    """The loopback trunk simulator's table (``simulate.behaviour``) as member-leg
    behaviours, causes as the calls layer maps the trunk's final status (causes.md §1), so
    a virtual run and a real run over loopback SIP judge the same numbers the same way.

    Status 0 (ringing until CANCEL) ends NO_ANSWER at ``call_timeout``; a number no row
    matches gets the trunk's 404. Challenge rows behave as answered (auth is the calls
    layer's business). Early media changes nothing the engine sees.
    """

    def lookup(number: str) -> Behaviour:
        row = match_behaviour(rows, number)
        if row is None:
            return Behaviour("UNALLOCATED_NUMBER", 404, ring=0.0)
        if row.status == 0:
            return Behaviour("NO_ANSWER", None, ring=call_timeout)
        if row.status == 200:
            talk = LONG_CALL if row.talk is None else row.talk
            return Behaviour("NORMAL_CLEARING", 200, ring=row.ring, talk=talk)
        return Behaviour(cause_for_status(row.status).name, row.status, ring=row.ring)

    return lookup


@dataclass(frozen=True, slots=True)
class AgentBehaviour:
    answer_after: float = 2.0
    fail_every: int = 0
    "Every n-th offer fails (0: never)."
    fail_cause: str = "NO_ANSWER"
    fail_after: float = 15.0


@dataclass
class AttemptLog:
    """One attempt as the virtual runner persisted it."""

    call_id: str
    campaign_id: str
    member_id: int
    number: str
    agent_id: str
    started_at: float
    ended_at: float | None = None
    disposition: Disposition | None = None
    result: CallResult | None = None
    final: Disposition | None = None
    "The verdict of a waiting attempt (status result or deadline)."


@dataclass
class _Call:
    order: CallOrder
    created_at: float
    agent_answered_at: float | None = None
    member_ringing_at: float | None = None
    member_answered_at: float | None = None
    bridged_at: float | None = None
    agent_cause: str | None = None
    agent_sip_code: int | None = None
    token: int = 0
    "Bumped by Hangup: queued events of an older token are dropped."


@dataclass(frozen=True, slots=True)
class _ResultProbe:
    call_id: str


_Queued = tuple[float, int, int, str, "EngineEvent | _ResultProbe"]
"(time, seq, call token, call id or '', event)"


@dataclass
class VirtualDialer:
    engine: DialerEngine
    members: InMemoryMembers
    agent_behaviour: Mapping[str, AgentBehaviour] = field(default_factory=dict)
    result_for: Callable[[AttemptLog], tuple[float, StatusResult] | None] | None = None
    "Wait-for-result campaigns: (delay, result) to send for a waiting attempt, or None."
    behaviours: Callable[[str], Behaviour] = behaviour_of
    "Number -> member-leg behaviour (``trunk_behaviours()`` for the trunk simulator's table)."
    owner: str = "virtual"
    now: float = 0.0
    attempts: dict[str, AttemptLog] = field(default_factory=dict)
    finished: dict[str, tuple[float, str]] = field(default_factory=dict)
    steps: int = 0
    commands: int = 0
    late_results: int = 0
    "Status results refused because the member no longer waited (HTTP 409)."
    _queue: list[tuple[float, int, int, str, EngineEvent | _ResultProbe]] = field(
        default_factory=list
    )
    _seq: int = 0
    _calls: dict[str, _Call] = field(default_factory=dict)
    _offers: dict[str, int] = field(default_factory=dict)

    # --- the loop ------------------------------------------------------------------------------

    def run(self, until: float = math.inf, max_steps: int = 50_000_000) -> VirtualDialer:
        """Step until every campaign finished and no event is queued, or ``until``."""
        self._execute(self.engine.handle_timer(self.now))
        stuck = 0
        while self.steps < max_steps:
            if not self._queue and self._all_finished():
                break
            at_event = self._queue[0][0] if self._queue else math.inf
            timer = self.engine.get_timer()
            at_timer = math.inf if timer is None else timer
            at = min(at_event, at_timer)
            if at == math.inf or at > until:
                break
            self.steps += 1
            if at_event <= at_timer:
                _, _, token, call_id, event = heapq.heappop(self._queue)
                self.now = max(self.now, at)
                stuck = 0
                if isinstance(event, _ResultProbe):
                    self._probe(event.call_id)
                    continue
                if call_id and self._stale(call_id, token):
                    continue
                try:
                    self._execute(self.engine.handle(event, self.now))
                except NotWaiting:
                    self.late_results += 1  # the deadline came first: a 409 for the client
                if isinstance(event, CallEnded):
                    del self._calls[call_id]  # a later Hangup finds nothing to end
            else:
                self.now = max(self.now, at)
                commands = self.engine.handle_timer(self.now)
                stuck = stuck + 1 if not commands and at_timer <= self.now else 0
                if stuck > 3:
                    raise RuntimeError(f"engine timer {at_timer} does not advance at {self.now}")
                self._execute(commands)
        return self

    def schedule(self, at: float, event: EngineEvent) -> None:
        """Feed ``event`` (a status change, a terminate, a stop...) at virtual time ``at``."""
        self._post(at, event)

    def _all_finished(self) -> bool:
        return all(c.state is not CampaignState.RUNNING for c in self.engine.campaigns.values())

    def _stale(self, call_id: str, token: int) -> bool:
        call = self._calls.get(call_id)
        return call is None or call.token != token

    def _post(self, at: float, event: EngineEvent | _ResultProbe, call_id: str = "") -> None:
        token = self._calls[call_id].token if call_id else 0
        self._seq += 1
        heapq.heappush(self._queue, (at, self._seq, token, call_id, event))

    # --- commands ------------------------------------------------------------------------------

    def _execute(self, commands: Iterable[Command]) -> None:
        for command in commands:
            self.commands += 1
            match command:
                case LeaseMember(campaign_id, agent_id, zones):
                    self._lease(campaign_id, agent_id, zones)
                case StartAttempt(call_id, campaign_id, member_id, number, agent_id, _):
                    self.attempts[call_id] = AttemptLog(
                        call_id, campaign_id, member_id, number, agent_id, self.now
                    )
                case OfferAgent(order):
                    self._offer(order)
                case DialMember(call_id):
                    self._dial(call_id)
                case Bridge(call_id):
                    self._bridge(call_id)
                case Hangup(call_id, cause):
                    self._hangup(call_id, cause)
                case FinishAttempt(call_id, _, _, disposition, result, _):
                    log = self.attempts[call_id]
                    log.ended_at, log.disposition, log.result = self.now, disposition, result
                case UpdateAttempt(call_id, _, disposition, _, _):
                    self.attempts[call_id].final = disposition
                case SaveMember(_, member_id, state, _):
                    if self.members.rows[member_id].owner == self.owner:
                        self.members.release(member_id, state, owner=self.owner)
                    else:
                        self.members.save(member_id, state)
                case EndMember(_, member_id, cause):
                    row = self.members.rows.get(member_id)
                    if row is not None and row.owner is None and not row.state.ended:
                        ended = replace(row.state, next_call_at=None, ended_with=cause)
                        self.members.save(member_id, ended)
                case ExpireMembers(campaign_id, now):
                    self.members.expire_members(campaign_id, now)
                case CampaignFinished(campaign_id, reason):
                    self.finished[campaign_id] = (self.now, reason)
                case PublishAgent() | ReleaseAgent():
                    pass

    def _lease(self, campaign_id: str, agent_id: str, zones: frozenset[str | None]) -> None:
        now = utc(self.now)
        member = self.members.lease_next(campaign_id, now, owner=self.owner, zones=zones)
        if member is not None:
            event = MemberLeased(campaign_id, agent_id, member)
        else:
            event = MemberLeased(
                campaign_id,
                agent_id,
                None,
                next_due=self.members.next_due(campaign_id),
                remaining=self.members.remaining(campaign_id, now),
                zones=self.members.zones(campaign_id),
            )
        self._post(self.now, event)

    # --- simulated telephony --------------------------------------------------------------------

    def _offer(self, order: CallOrder) -> None:
        call = _Call(order, self.now)
        self._calls[order.call_id] = call
        behaviour = self.agent_behaviour.get(order.agent_id, AgentBehaviour())
        count = self._offers.get(order.agent_id, 0) + 1
        self._offers[order.agent_id] = count
        cid = order.call_id
        self._post(self.now, AgentRinging(cid, self.now), cid)
        if behaviour.fail_every and count % behaviour.fail_every == 0:
            at = self.now + min(behaviour.fail_after, order.agent_timeout)
            self._fail_agent(call, at, behaviour.fail_cause, None)
            return
        self._post(self.now + behaviour.answer_after, AgentAnswered(cid, 0.0), cid)

    def _fail_agent(self, call: _Call, at: float, cause: str, code: int | None) -> None:
        cid = call.order.call_id
        call.agent_cause, call.agent_sip_code = cause, code
        self._post(at, AgentFailed(cid, at, cause, code), cid)
        self._end(call, at, cause, code, Side.AGENT)

    def _dial(self, call_id: str) -> None:
        call = self._calls[call_id]
        call.agent_answered_at = self.now
        behaviour = self.behaviours(call.order.number)
        call.member_ringing_at = self.now + 0.1
        self._post(self.now + 0.1, MemberRinging(call_id, 0.0, early_media=False), call_id)
        at = self.now + behaviour.ring
        if behaviour.talk is None:
            by = Side.DIALER if behaviour.cause == "NO_ANSWER" else Side.MEMBER
            self._end(call, at, behaviour.cause, behaviour.sip_code, by)
        else:
            call.member_answered_at = at
            self._post(at, MemberAnswered(call_id, 0.0), call_id)

    def _bridge(self, call_id: str) -> None:
        call = self._calls[call_id]
        call.bridged_at = self.now
        self._post(self.now, Bridged(call_id, 0.0), call_id)
        behaviour = self.behaviours(call.order.number)
        talk = behaviour.talk if behaviour.talk is not None else 0.0
        self._end(call, self.now + talk, behaviour.cause, 200, Side.MEMBER)

    def _hangup(self, call_id: str, cause: str) -> None:
        call = self._calls.get(call_id)
        if call is None:
            return  # already over
        call.token += 1  # drop what was queued for this call
        if call.agent_answered_at is None:
            self._fail_agent(call, self.now, "ORIGINATOR_CANCEL", 487)
            return
        self._end(call, self.now, cause, None, Side.DIALER)

    def _end(self, call: _Call, at: float, cause: str, code: int | None, by: Side) -> None:
        result = CallResult(
            call_id=call.order.call_id,
            created_at=call.created_at,
            ended_at=at,
            cause=cause,
            cause_q850=Q850.get(cause, 0),
            sip_code=code,
            hangup_by=by,
            agent_answered_at=call.agent_answered_at,
            member_ringing_at=call.member_ringing_at if call.agent_answered_at else None,
            member_answered_at=call.member_answered_at if call.bridged_at else None,
            bridged_at=call.bridged_at,
            agent_cause=call.agent_cause,
            agent_sip_code=call.agent_sip_code,
            dialed=call.order.number,
        )
        self._post(at, CallEnded(call.order.call_id, at, result), call.order.call_id)
        if self.result_for is not None and call.agent_answered_at is not None:
            self._post(at, _ResultProbe(call.order.call_id))

    # --- results for wait-for-result campaigns -------------------------------------------------

    def _probe(self, call_id: str) -> None:
        log = self.attempts.get(call_id)
        if log is None or self.result_for is None or log.disposition is None:
            return
        answer = self.result_for(log)
        if answer is None:
            return
        delay, result = answer
        event = MemberStatusReceived(log.campaign_id, log.member_id, result)
        self._post(self.now + delay, event)
