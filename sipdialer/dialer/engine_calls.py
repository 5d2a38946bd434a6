"""The engine's attempt lifecycle: offer, answer, dial, bridge, judge, wait for a result.

Theory of operation
-------------------
:class:`CallSteps` is the half of :class:`~sipdialer.dialer.engine.DialerEngine` that follows
one attempt from a leased member to its disposition (dialer-semantics §1, §3, §4); the
engine module holds dispatch, campaigns and timers. Decisions come from
:mod:`~sipdialer.dialer.dispositions` (``decide``, ``apply_result``,
``result_deadline_passed``, ``check_expired``, ``choose_number``); this module applies them
to agents and lines and turns them into commands, persistence first:

* ``StartAttempt`` precedes ``OfferAgent``; ``FinishAttempt`` and ``SaveMember`` precede
  anything the next dispatch does with the freed agent or line.
* A failed agent leg (REFUND) keeps the member's lease and its line: the member is offered
  at once to another eligible agent of the campaign (the failed one is Delayed now); with
  none, it goes back to the store due now.
* WAITING (wait for result, agent connected): the member is saved unleased and waiting,
  the engine keeps it with the deadline ``now + campaign wrap_up_time`` (the same instant
  the agent's wrap-up ends). A ``MemberStatusReceived`` before it applies the result and
  frees the agent; the deadline judges it as a failed try (or refunds, per policy).
* Manager terminate: a member in a call is hung up and judged MANAGER_REQUEST when the
  call ends; a waiting member ends at once; a member the engine does not hold is ended by
  the store (``EndMember``), or by the engine if its lease is already on the way.

Pure code: no IO, no clock.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, replace

from sipdialer.calls.events import (
    AgentAnswered,
    AgentFailed,
    CallEnded,
    CallOrder,
    MemberAnswered,
    Side,
)
from sipdialer.dialer.agents import Agent, Agents, AgentState
from sipdialer.dialer.campaign import Campaign, CampaignState, utc
from sipdialer.dialer.commands import (
    Bridge,
    Command,
    DialMember,
    EndMember,
    FinishAttempt,
    Hangup,
    MemberStatusReceived,
    MemberTerminated,
    OfferAgent,
    SaveMember,
    StartAttempt,
    UpdateAttempt,
)
from sipdialer.dialer.dispositions import (
    MANAGER_REQUEST,
    NO_COMMUNICATIONS,
    AttemptOutcome,
    Disposition,
    DispositionKind,
    MemberState,
    NotWaiting,
    StatusResult,
    apply_result,
    check_expired,
    choose_number,
    decide,
    result_deadline_passed,
)
from sipdialer.dialer.member_source import LeasedMember

SYSTEM_SHUTDOWN = "SYSTEM_SHUTDOWN"
"The cause the runner's close() hangs calls up with."
OWN_GATE_CAUSES = frozenset({"NORMAL_CIRCUIT_CONGESTION", "SWITCH_CONGESTION"})
"Causes of the calls layer's trunk gate (max_calls) refusing a member leg it never sent."


@dataclass
class Attempt:
    """One call in flight."""

    call_id: str
    campaign: Campaign
    member: LeasedMember
    number: str
    agent_id: str
    started_at: float
    manager_request: bool = False
    "Terminated through the API: Hangup sent, judged MANAGER_REQUEST."
    agent_leg_over: bool = False
    """AgentFailed was applied to the agent: it may already be Waiting, even reserved for
    the next call, by the time CallEnded comes, so CallEnded must not touch it again."""


@dataclass
class Waiting:
    """A member whose attempt waits for a status result (§4)."""

    call_id: str
    campaign: Campaign
    member: LeasedMember
    agent_id: str | None
    "None for a wait restored after a restart (no agent holds a wrap-up for it)."
    deadline: float


def _ended(state: MemberState, cause: str) -> MemberState:
    return replace(state, next_call_at=None, waiting_on=None, ended_with=cause)


class CallSteps:
    """Attempt lifecycle; mixed into DialerEngine (which provides the attributes below)."""

    agents: Agents
    campaigns: dict[str, Campaign]
    _last_dispatch: float

    def __init__(self, call_id_prefix: str) -> None:
        self.calls: dict[str, Attempt] = {}
        "Attempts in flight by call id."
        self.waiting: dict[int, Waiting] = {}
        "Members waiting for a status result by member id."
        self._call_of_member: dict[int, str] = {}
        self._deadlines: list[tuple[float, int, str]] = []  # (deadline, member, call): lazy
        self._terminated: set[int] = set()
        self._prefix = call_id_prefix
        self._seq = 0
        self._last_dispatch = -float("inf")

    # provided by DialerEngine
    def campaign(self, campaign_id: str) -> Campaign:
        raise NotImplementedError

    def _free_line(self, campaign: Campaign) -> None:
        raise NotImplementedError

    def _agent_usable(self, agent: Agent) -> bool:
        raise NotImplementedError

    def _choose_agent(self, campaign: Campaign, now: float) -> Agent | None:
        raise NotImplementedError

    def _release_reservation(self, agent: Agent, now: float, out: list[Command]) -> None:
        raise NotImplementedError

    # --- start ---------------------------------------------------------------------------------

    def _start_attempt(
        self,
        campaign: Campaign,
        agent: Agent | None,
        member: LeasedMember,
        now: float,
        out: list[Command],
    ) -> None:
        """Offer ``member`` (leased, holding a line) to ``agent``, or to another eligible
        agent when ``agent`` is None or no longer usable; else hand the member back."""
        state = member.state
        if member.member_id in self._terminated:
            self._terminated.discard(member.member_id)
            ended = _ended(state, MANAGER_REQUEST)
            done = Disposition(
                DispositionKind.MANAGER_REQUEST, ended, MANAGER_REQUEST, rule="manager request"
            )
            self._give_back(campaign, agent, member, ended, done, now, out)
            return
        if campaign.state is not CampaignState.RUNNING:
            self._give_back(campaign, agent, member, state, None, now, out)
            return
        expired = check_expired(state, utc(now))
        if expired is not None:
            self._give_back(campaign, agent, member, expired.member, expired, now, out)
            return
        number = choose_number(state)
        if number is None:
            ended = _ended(state, NO_COMMUNICATIONS)
            done = Disposition(
                DispositionKind.ERROR, ended, NO_COMMUNICATIONS, rule="no active number"
            )
            self._give_back(campaign, agent, member, ended, done, now, out)
            return
        if agent is not None and not (
            agent.state is AgentState.RESERVED and self._agent_usable(agent)
        ):
            self._release_reservation(agent, now, out)  # status changed while Reserved
            agent = None
        if agent is None:
            agent = self._choose_agent(campaign, now)
            if agent is None:
                self._give_back(campaign, None, member, state, None, now, out)
                return
            agent.reserve(now)
        self._seq += 1
        call_id = f"{self._prefix}-{self._seq}"
        attempt = Attempt(call_id, campaign, member, number.number, agent.id, now)
        self.calls[call_id] = attempt
        self._call_of_member[member.member_id] = call_id
        settings = campaign.settings
        out.append(
            StartAttempt(call_id, campaign.id, member.member_id, number.number, agent.id, utc(now))
        )
        order = CallOrder(
            call_id=call_id,
            campaign=settings.name,
            member_id=str(member.member_id),
            member_name=member.name,
            number=number.number,
            agent_id=agent.id,
            variables={**settings.variables, **member.variables},  # member wins (§7)
            auto_answer=agent.settings.auto_answer,
            agent_timeout=agent.settings.call_timeout,
        )
        out.append(OfferAgent(order))
        agent.offer(now)

    def _give_back(
        self,
        campaign: Campaign,
        agent: Agent | None,
        member: LeasedMember,
        state: MemberState,
        disposition: Disposition | None,
        now: float,
        out: list[Command],
    ) -> None:
        """No call for this lease: save the member, free the line and the agent."""
        self._free_line(campaign)
        if agent is not None:
            self._release_reservation(agent, now, out)
        out.append(SaveMember(campaign.id, member.member_id, state, disposition))
        self._wake_for(campaign, state, now)

    def _wake_for(self, campaign: Campaign, state: MemberState, now: float) -> None:
        """A member was saved: make sure its campaign looks again when it matters."""
        if state.next_call_at is not None:
            campaign.wake(state.next_call_at.timestamp())
        elif state.ended and campaign.idle_until == float("inf"):
            campaign.wake()  # it was waiting for the last calls: maybe nothing is left now

    # --- the call's events ---------------------------------------------------------------------

    def _agent_answered(self, event: AgentAnswered, now: float, out: list[Command]) -> None:
        attempt = self.calls[event.call_id]
        self.agents[attempt.agent_id].answered(now)
        if not attempt.manager_request:
            out.append(DialMember(event.call_id))

    def _agent_failed(self, event: AgentFailed, now: float, out: list[Command]) -> None:
        attempt = self.calls[event.call_id]
        agent = self.agents[attempt.agent_id]
        if not attempt.agent_leg_over and agent.state in (AgentState.RESERVED, AgentState.RINGING):
            agent.agent_leg_failed(now, event.cause)  # penalty by cause (§1)
        attempt.agent_leg_over = True

    def _member_answered(self, event: MemberAnswered, now: float, out: list[Command]) -> None:
        attempt = self.calls[event.call_id]
        if not attempt.manager_request:
            out.append(Bridge(event.call_id))

    def _call_ended(self, event: CallEnded, now: float, out: list[Command]) -> None:
        attempt = self.calls.pop(event.call_id)
        self._call_of_member.pop(attempt.member.member_id, None)
        campaign, result = attempt.campaign, event.result
        policy = campaign.settings.policy
        agent = self.agents[attempt.agent_id]
        if attempt.agent_leg_over:
            pass  # AgentFailed did it
        elif agent.state in (AgentState.RESERVED, AgentState.RINGING):
            agent.agent_leg_failed(now, result.agent_cause or result.cause)
        elif agent.state is AgentState.TALKING:
            wrap_up = campaign.settings.wrap_up_time if policy.wait_for_result else None
            agent.call_ended(now, wrap_up)
        connected = result.agent_connected
        # The dialer's own refusals, not the member's doing (dispositions rules 2, 3a):
        # its trunk gate never sent the member leg (no ringing, no SIP answer), or it hung
        # up itself to shut down.
        not_sent = (
            connected
            and result.cause in OWN_GATE_CAUSES
            and result.member_ringing_at is None
            and result.sip_code is None
        )
        shutdown = result.cause == SYSTEM_SHUTDOWN and result.hangup_by is Side.DIALER
        outcome = AttemptOutcome(
            cause=result.cause,
            now=utc(now),
            number=attempt.number,
            bridged=result.bridged,
            talk_seconds=result.talk_seconds,
            agent_connected=connected,
            agent_leg_failed=not connected,
            manager_request=attempt.manager_request,
            shutdown=shutdown,
            not_sent=not_sent,
        )
        verdict = decide(outcome, attempt.member.state, policy)
        member_id = attempt.member.member_id
        out.append(FinishAttempt(event.call_id, campaign.id, member_id, verdict, result, utc(now)))
        member = replace(attempt.member, state=verdict.member)
        if verdict.kind is DispositionKind.REFUND:
            self._start_attempt(campaign, None, member, now, out)  # keeps the line (§1)
            return
        self._free_line(campaign)
        if verdict.kind is DispositionKind.WAITING:
            deadline = now + campaign.settings.wrap_up_time
            out.append(SaveMember(campaign.id, member_id, verdict.member, verdict, utc(deadline)))
            self.waiting[member_id] = Waiting(
                event.call_id, campaign, member, attempt.agent_id, deadline
            )
            campaign.waiting += 1
            heapq.heappush(self._deadlines, (deadline, member_id, event.call_id))
            return
        out.append(SaveMember(campaign.id, member_id, verdict.member, verdict))
        self._wake_for(campaign, verdict.member, now)

    # --- waiting for a result (§4) ------------------------------------------------------------

    def restore_waiting(
        self, member: LeasedMember, call_id: str, deadline: float, agent_id: str | None = None
    ) -> None:
        """Hold a member the store has waiting (after a restart) until ``deadline``.

        A deadline already past is judged at the next ``handle_timer``.
        """
        campaign = self.campaign(member.campaign_id)
        if not member.state.waiting:
            raise NotWaiting(f"member {member.member_id} is not waiting for a result")
        self.waiting[member.member_id] = Waiting(call_id, campaign, member, agent_id, deadline)
        campaign.waiting += 1
        heapq.heappush(self._deadlines, (deadline, member.member_id, call_id))

    def _status_received(self, event: MemberStatusReceived, now: float, out: list[Command]) -> None:
        waiting = self._check_waiting(event)
        policy = waiting.campaign.settings.policy
        verdict = apply_result(waiting.member.state, event.result, policy, utc(now))
        self._close_waiting(waiting, verdict, event.result, now, out)
        if waiting.agent_id is not None:
            self.agents[waiting.agent_id].result_received(now)  # frees the agent at once

    def _check_waiting(self, event: MemberStatusReceived) -> Waiting:
        """The member's wait, or NotWaiting (HTTP 409) with a message for the client."""
        waiting = self.waiting.get(event.member_id)
        if waiting is None or waiting.campaign.id != event.campaign_id:
            raise NotWaiting(
                f"member {event.member_id} of campaign {event.campaign_id!r} is not waiting"
                " for a result"
            )
        return waiting

    def _result_deadlines(self, now: float, out: list[Command]) -> None:
        while self._deadlines and self._deadlines[0][0] <= now:
            _, member_id, call_id = heapq.heappop(self._deadlines)
            waiting = self.waiting.get(member_id)
            if waiting is None or waiting.call_id != call_id:
                continue  # answered already
            policy = waiting.campaign.settings.policy
            verdict = result_deadline_passed(waiting.member.state, policy, utc(now))
            self._close_waiting(waiting, verdict, None, now, out)

    def _result_timer(self) -> float | None:
        while self._deadlines:
            _, member_id, call_id = self._deadlines[0]
            waiting = self.waiting.get(member_id)
            if waiting is not None and waiting.call_id == call_id:
                return self._deadlines[0][0]
            heapq.heappop(self._deadlines)
        return None

    def _close_waiting(
        self,
        waiting: Waiting,
        verdict: Disposition,
        status: StatusResult | None,
        now: float,
        out: list[Command],
    ) -> None:
        member_id = waiting.member.member_id
        del self.waiting[member_id]
        campaign = waiting.campaign
        campaign.waiting -= 1
        out.append(UpdateAttempt(waiting.call_id, member_id, verdict, status, utc(now)))
        out.append(SaveMember(campaign.id, member_id, verdict.member, verdict))
        self._wake_for(campaign, verdict.member, now)

    # --- manager terminate ---------------------------------------------------------------------

    def _terminate(self, event: MemberTerminated, now: float, out: list[Command]) -> None:
        member_id = event.member_id
        call_id = self._call_of_member.get(member_id)
        if call_id is not None:
            attempt = self.calls[call_id]
            if not attempt.manager_request:
                attempt.manager_request = True
                out.append(Hangup(call_id, MANAGER_REQUEST))
            return
        waiting = self.waiting.get(member_id)
        if waiting is not None:
            ended = _ended(waiting.member.state, MANAGER_REQUEST)
            verdict = Disposition(
                DispositionKind.MANAGER_REQUEST, ended, MANAGER_REQUEST, rule="manager request"
            )
            self._close_waiting(waiting, verdict, None, now, out)
            if waiting.agent_id is not None:
                self.agents[waiting.agent_id].result_received(now)
            return
        campaign = self.campaign(event.campaign_id)
        if campaign.pending_leases:
            self._terminated.add(member_id)  # in case it is the lease on its way
        out.append(EndMember(campaign.id, member_id, MANAGER_REQUEST))
