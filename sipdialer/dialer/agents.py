"""Agents of the progressive dialer: status, state, penalties, wrap-up (dialer-semantics §1–2).

Theory of operation
-------------------
The tables live in :mod:`sipdialer.dialer.agent_table` (re-exported here): the vocabulary,
``TRANSITIONS`` (``(state, input) -> next state``), ``CAUSE_PENALTIES`` (cause -> delay
rule) and ``AgentSettings``. This module holds the mechanics: :class:`Agent`, one agent's
machine, and :class:`Agents`, the registry the engine asks for eligible agents and timers.

Every input goes through :meth:`Agent.apply`: look the pair up (missing: raise
``IllegalAgentTransition``, nothing changes), check the arguments, run the input's side
effects in one ``match``, move, and queue one :class:`AgentStateChanged` if status or
state changed. The named methods (``reserve``, ``offer``, ``answered``, ``agent_leg_failed``,
``call_ended``, ...) are thin wrappers that pick the input.

How status and state combine: they are independent, and meet only in :meth:`Agent.eligible`
(status Available, state Waiting, registered). Status inputs never move the state and call
inputs never touch the status, with one exception: a no-answer that reaches
``max_no_answer`` turns Available into Break. A Break (set by the agent or by that rule) is
therefore never overwritten by the end of a call: WrapUp, then Waiting, still on Break.

Rules of §1 as implemented:

* A failed agent leg is penalised by cause (``CAUSE_PENALTIES``): busy/DND/congestion ->
  ``busy_delay``, 603 -> ``reject_delay``, no binding -> 5 s (not counted), our own CANCEL ->
  nothing (input AGENT_LEG_CANCELLED), anything else -> ``no_answer_delay`` and the
  consecutive no-answer count + 1. The count resets on ANSWERED and on every status input.
* Wrap-up lasts the agent's ``wrap_up_time``, or the campaign's ``wrap_up_time`` when the
  campaign waits for a result (``call_ended(now, wrap_up=campaign_wrap_up(campaign))``);
  only the latter ends early on ``result_received(now)``.
* ``idle_since`` is set when the agent comes back to Waiting from WrapUp or Delayed (a
  RELEASE or an AGENT_LEG_CANCELLED keeps the old value: the agent did no work and keeps
  its place in the longest-idle order). ``calls`` counts answered agent legs.

Time is explicit: inputs take ``now`` (monotonic seconds). WrapUp and Delayed carry a
deadline (a zero duration is a deadline at ``now``); ``get_timer()`` returns it and
``handle_timer(now)`` ends the state once due. Early or spurious calls do nothing. A late
``handle_timer`` stamps the move with the deadline itself, so ``idle_since`` and the event
times do not depend on how late the loop woke. A deadline that is due but not handled still
counts as running: call ``Agents.handle_timer(now)`` before choosing agents.

Pure code: no IO, no clock, and no pydantic at run time (config types only for typing).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from enum import Enum

from sipdialer.dialer.agent_table import (
    ANY_STATE_INPUTS,
    CAUSE_PENALTIES,
    DEFAULT_PENALTY,
    NOT_REGISTERED_DELAY,
    STATUS_INPUTS,
    TIMED_STATES,
    TRANSITIONS,
    AgentError,
    AgentEvent,
    AgentInput,
    AgentNotEligible,
    AgentRegistrationChanged,
    AgentSettings,
    AgentState,
    AgentStateChanged,
    AgentStatus,
    IllegalAgentTransition,
    Penalty,
    campaign_wrap_up,
    cause_name,
    check_duration,
    penalty_for,
)

__all__ = [
    "ANY_STATE_INPUTS",
    "CAUSE_PENALTIES",
    "DEFAULT_PENALTY",
    "NOT_REGISTERED_DELAY",
    "STATUS_INPUTS",
    "STRATEGIES",
    "TIMED_STATES",
    "TRANSITIONS",
    "Agent",
    "AgentError",
    "AgentEvent",
    "AgentInput",
    "AgentNotEligible",
    "AgentRegistrationChanged",
    "AgentSettings",
    "AgentState",
    "AgentStateChanged",
    "AgentStatus",
    "Agents",
    "IllegalAgentTransition",
    "Penalty",
    "campaign_wrap_up",
    "cause_name",
    "fewest_calls",
    "longest_idle",
    "penalty_for",
]

_INPUT_OF_STATUS = {status: input_ for input_, status in STATUS_INPUTS.items()}


class Agent:
    """One agent's status, state, deadline and bookkeeping. Feed inputs; drain events."""

    def __init__(
        self,
        settings: AgentSettings,
        now: float = 0.0,
        *,
        status: AgentStatus = AgentStatus.LOGGED_OUT,
        events: deque[AgentEvent] | None = None,
    ) -> None:
        """A Waiting, unregistered agent with ``status`` (restored from the store, say).

        ``events`` lets a registry share one queue among its agents.
        """
        self.settings = settings
        "May be replaced on a configuration reload; a running deadline keeps its end."
        self._status = status
        self._state = AgentState.WAITING
        self._registered = False
        self._deadline: float | None = None
        self._waiting_for_result = False
        self._events: deque[AgentEvent] = deque() if events is None else events
        self.idle_since = now
        "When the agent last came back to Waiting after work (longest-idle order)."
        self.calls = 0
        "Answered agent legs since creation or ``reset_calls()`` (fewest-calls order)."
        self.no_answer_count = 0
        "Consecutive no-answers; reset on answer and on any status input."
        self.last_cause: str | None = None
        "Cause of the last agent-leg failure or cancel (what decided the last delay)."

    def __repr__(self) -> str:
        registered = "registered" if self._registered else "unregistered"
        return f"<Agent {self.id} {self._status.value}/{self._state.value} {registered}>"

    @property
    def id(self) -> str:
        return self.settings.id

    @property
    def status(self) -> AgentStatus:
        return self._status

    @property
    def state(self) -> AgentState:
        return self._state

    @property
    def registered(self) -> bool:
        return self._registered

    @property
    def waiting_for_result(self) -> bool:
        """In a wait-for-result wrap-up, which ``result_received`` may end early."""
        return self._waiting_for_result

    # --- the one entry point ---------------------------------------------------------------

    def apply(
        self,
        input_: AgentInput,
        now: float,
        *,
        cause: str | Enum | None = None,
        wrap_up: float | None = None,
    ) -> AgentState:
        """Feed ``input_``; return the new state.

        ``cause`` goes with AGENT_LEG_FAILED (None: unknown, penalised as a no-answer) and
        AGENT_LEG_CANCELLED; ``wrap_up`` with CALL_ENDED (see ``call_ended``).

        Raises IllegalAgentTransition when the table has no such move, AgentNotEligible on
        RESERVE of an ineligible agent, ValueError for bad arguments; nothing changes then.
        """
        try:
            next_state = TRANSITIONS[self._state, input_]
        except KeyError:
            raise IllegalAgentTransition(self._state, input_) from None
        if input_ is AgentInput.AGENT_LEG_FAILED and penalty_for(cause) is Penalty.NONE:
            raise ValueError(f"{cause_name(cause or '')} is AGENT_LEG_CANCELLED, not a failure")
        if input_ is AgentInput.CALL_ENDED and wrap_up is not None:
            check_duration("wrap_up", wrap_up)
        if input_ is AgentInput.RESERVE and (reason := self.ineligible_reason(now)):
            raise AgentNotEligible(self._state, reason)

        before = (self._status, self._state)
        match input_:
            case (
                AgentInput.SET_STATUS_LOGGED_OUT
                | AgentInput.SET_STATUS_AVAILABLE
                | AgentInput.SET_STATUS_BREAK
            ):
                self._status = STATUS_INPUTS[input_]
                self.no_answer_count = 0
            case AgentInput.REGISTERED | AgentInput.UNREGISTERED:
                registered = input_ is AgentInput.REGISTERED
                if registered != self._registered:
                    self._registered = registered
                    self._events.append(AgentRegistrationChanged(self.id, registered, now))
            case AgentInput.ANSWERED:
                self.no_answer_count = 0
                self.calls += 1
            case AgentInput.AGENT_LEG_FAILED:
                self._penalise(now, cause)
            case AgentInput.AGENT_LEG_CANCELLED:
                self.last_cause = "ORIGINATOR_CANCEL" if cause is None else cause_name(cause)
            case AgentInput.CALL_ENDED:
                self._waiting_for_result = wrap_up is not None
                duration = self.settings.wrap_up_time if wrap_up is None else wrap_up
                self._deadline = now + duration
            case AgentInput.WRAP_UP_DONE | AgentInput.DELAY_DONE:
                self._deadline = None
                self._waiting_for_result = False
                self.idle_since = now
            case AgentInput.RESERVE | AgentInput.RELEASE | AgentInput.OFFER:
                pass  # the move alone
        self._state = next_state
        if (self._status, self._state) != before:
            self._events.append(AgentStateChanged(self.id, self._status, self._state, now))
        return next_state

    def _penalise(self, now: float, cause: str | Enum | None) -> None:
        penalty = penalty_for(cause)
        self.last_cause = None if cause is None else cause_name(cause)
        self._deadline = now + self.settings.delay_for(penalty)
        if penalty is not Penalty.NO_ANSWER:
            return  # busy, reject, no binding: not the agent failing to answer
        self.no_answer_count += 1
        limit = self.settings.max_no_answer
        # Only Available falls to Break: a LoggedOut agent stays LoggedOut.
        if limit and self.no_answer_count >= limit and self._status is AgentStatus.AVAILABLE:
            self._status = AgentStatus.BREAK

    # --- named inputs ----------------------------------------------------------------------

    def set_status(self, now: float, status: AgentStatus | str) -> None:
        """The agent chose ``status`` (REST value or feature code); resets the no-answer count.

        Never moves the state: a call in progress goes on. Raises ValueError for an unknown
        status string.
        """
        self.apply(_INPUT_OF_STATUS[AgentStatus(status)], now)

    def set_registered(self, now: float, registered: bool) -> None:
        """The registrar gained or lost the phone's binding. Repeats are harmless."""
        self.apply(AgentInput.REGISTERED if registered else AgentInput.UNREGISTERED, now)

    def reserve(self, now: float) -> None:
        """Take the agent for a call (Waiting -> Reserved); it must be ``eligible(now)``."""
        self.apply(AgentInput.RESERVE, now)

    def release(self, now: float) -> None:
        """Drop the reservation before the agent leg was sent (Reserved -> Waiting).

        The engine also calls this when the status left Available while Reserved: a status
        change does not cancel a reservation by itself.
        """
        self.apply(AgentInput.RELEASE, now)

    def offer(self, now: float) -> None:
        """The agent-leg INVITE went out (Reserved -> Ringing), ring time ``call_timeout``."""
        self.apply(AgentInput.OFFER, now)

    def answered(self, now: float) -> None:
        """The agent leg is up (Ringing -> Talking); resets the no-answer count, calls + 1."""
        self.apply(AgentInput.ANSWERED, now)

    def agent_leg_failed(self, now: float, cause: str | Enum) -> Penalty:
        """The agent leg ended unanswered with ``cause``; apply and return its penalty.

        ORIGINATOR_CANCEL (we cancelled because the member leg ended) goes back to Waiting
        at once; every other cause goes to Delayed for ``settings.delay_for(penalty)``.
        """
        penalty = penalty_for(cause)
        if penalty is Penalty.NONE:
            self.apply(AgentInput.AGENT_LEG_CANCELLED, now, cause=cause)
        else:
            self.apply(AgentInput.AGENT_LEG_FAILED, now, cause=cause)
        return penalty

    def call_ended(self, now: float, wrap_up: float | None = None) -> None:
        """The call hung up after the agent answered (Talking -> WrapUp).

        ``wrap_up``: None for the agent's own ``wrap_up_time``; the campaign's
        ``wrap_up_time`` when the campaign waits for a result (``campaign_wrap_up(c)``),
        in which case ``result_received`` may end it early.
        """
        self.apply(AgentInput.CALL_ENDED, now, wrap_up=wrap_up)

    def result_received(self, now: float) -> bool:
        """A status-API result for the agent's call: end a wait-for-result wrap-up now.

        Returns False and changes nothing when the agent is not waiting for a result (its
        own wrap-up, or the wait already timed out): a late result is harmless here.
        """
        if not (self._state is AgentState.WRAP_UP and self._waiting_for_result):
            return False
        self.apply(AgentInput.WRAP_UP_DONE, now)
        return True

    # --- time ------------------------------------------------------------------------------

    def get_timer(self) -> float | None:
        """The end of the running wrap-up or delay, or None."""
        return self._deadline

    def handle_timer(self, now: float) -> None:
        """End the wrap-up or delay if its deadline is due. Spurious calls are harmless.

        The move is stamped with the deadline, not ``now``, when the loop woke late.
        """
        at = self._deadline
        if at is None or now < at:
            return
        self.apply(TIMED_STATES[self._state], at)

    # --- queries ---------------------------------------------------------------------------

    def ineligible_reason(self, now: float) -> str | None:
        """Why the agent may not be offered a call now, or None when it may."""
        if not self._registered:
            return "not registered"
        if self._status is not AgentStatus.AVAILABLE:
            return f"status is {self._status.value}"
        if self._state is not AgentState.WAITING:
            return f"state is {self._state.value}"
        return None

    def eligible(self, now: float) -> bool:
        """Available, Waiting, registered, no wrap-up or delay running."""
        # State Waiting implies no deadline; a due deadline counts until handle_timer runs.
        return self.ineligible_reason(now) is None

    def next_event(self) -> AgentEvent | None:
        """The oldest queued event, or None (the queue may be shared by a registry)."""
        return self._events.popleft() if self._events else None


# --- selection strategies (CampaignConfig.strategy) ----------------------------------------


def longest_idle(candidates: Iterable[Agent]) -> Agent | None:
    """The agent idle longest (earliest ``idle_since``); ties by id. None if no candidates."""
    return min(candidates, key=lambda a: (a.idle_since, a.id), default=None)


def fewest_calls(candidates: Iterable[Agent]) -> Agent | None:
    """The agent with fewest answered calls; ties by longest idle, then id."""
    return min(candidates, key=lambda a: (a.calls, a.idle_since, a.id), default=None)


STRATEGIES: dict[str, Callable[[Iterable[Agent]], Agent | None]] = {
    "longest_idle": longest_idle,
    "fewest_calls": fewest_calls,
}
"``CampaignConfig.strategy`` -> selection function."


class Agents:
    """All agents by id, with one event queue and one timer for the lot.

    ``get_timer`` is a ``min()`` over the agents: O(n) per call, fine up to a few hundred
    agents (the engine asks once per loop turn). A heap with lazy invalidation
    (``sip/schedule.py``) can replace it without changing the API if that ever shows up.
    """

    longest_idle = staticmethod(longest_idle)
    fewest_calls = staticmethod(fewest_calls)

    def __init__(self) -> None:
        self._agents: dict[str, Agent] = {}
        self._events: deque[AgentEvent] = deque()

    @classmethod
    def from_settings(cls, settings: Iterable[AgentSettings], now: float = 0.0) -> Agents:
        agents = cls()
        for one in settings:
            agents.add(one, now)
        return agents

    def add(
        self, settings: AgentSettings, now: float = 0.0, *, status: AgentStatus | None = None
    ) -> Agent:
        """Create an agent that queues its events here. Raises ValueError on a duplicate id."""
        if settings.id in self._agents:
            raise ValueError(f"agent {settings.id!r} already exists")
        agent = Agent(settings, now, status=status or AgentStatus.LOGGED_OUT, events=self._events)
        self._agents[settings.id] = agent
        return agent

    def remove(self, agent_id: str) -> Agent:
        """Forget an agent (its queued events stay). Raises KeyError if unknown."""
        return self._agents.pop(agent_id)

    def __getitem__(self, agent_id: str) -> Agent:
        return self._agents[agent_id]

    def get(self, agent_id: str) -> Agent | None:
        return self._agents.get(agent_id)

    def __contains__(self, agent_id: object) -> bool:
        return agent_id in self._agents

    def __iter__(self) -> Iterator[Agent]:
        return iter(self._agents.values())

    def __len__(self) -> int:
        return len(self._agents)

    def next_event(self) -> AgentEvent | None:
        """The oldest event of any agent, or None."""
        return self._events.popleft() if self._events else None

    def get_timer(self) -> float | None:
        """The earliest wrap-up or delay end over all agents, or None."""
        timers = [t for a in self._agents.values() if (t := a.get_timer()) is not None]
        return min(timers, default=None)

    def handle_timer(self, now: float) -> None:
        """End every due wrap-up and delay, earliest deadline first (ties by id).

        Each agent holds at most one deadline, so a late wake-up fires each due agent once,
        in the order the deadlines fell. Spurious calls are harmless.
        """
        due = sorted(
            (at, agent.id, agent)
            for agent in self._agents.values()
            if (at := agent.get_timer()) is not None and at <= now
        )
        for _, _, agent in due:
            agent.handle_timer(now)

    def eligible(self, now: float, ids: Iterable[str] | None = None) -> list[Agent]:
        """Eligible agents among ``ids`` (in that order; unknown ids skipped), or all."""
        chosen = self._agents.values() if ids is None else (self._agents.get(i) for i in ids)
        return [agent for agent in chosen if agent is not None and agent.eligible(now)]

    def select(self, strategy: str, candidates: Iterable[Agent]) -> Agent | None:
        """The agent ``strategy`` ("longest_idle" | "fewest_calls") picks, or None."""
        return STRATEGIES[strategy](candidates)

    def reset_calls(self) -> None:
        """Zero every agent's ``calls`` (the shell does this at the start of a day)."""
        for agent in self._agents.values():
            agent.calls = 0
