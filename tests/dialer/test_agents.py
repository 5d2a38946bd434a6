"""The agent machine (sipdialer.dialer.agents): table, penalties, wrap-up, timers, registry.

Time is driven by hand (``now`` arguments); nothing sleeps.
"""

from __future__ import annotations

import subprocess
import sys
from enum import Enum
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sipdialer.config import AgentConfig, CampaignConfig
from sipdialer.dialer.agents import (
    ANY_STATE_INPUTS,
    NOT_REGISTERED_DELAY,
    TIMED_STATES,
    TRANSITIONS,
    Agent,
    AgentEvent,
    AgentInput,
    AgentNotEligible,
    AgentRegistrationChanged,
    Agents,
    AgentSettings,
    AgentState,
    AgentStateChanged,
    AgentStatus,
    IllegalAgentTransition,
    Penalty,
    campaign_wrap_up,
    fewest_calls,
    longest_idle,
    penalty_for,
)

S, In = AgentState, AgentInput
AVAILABLE, BREAK, LOGGED_OUT = AgentStatus.AVAILABLE, AgentStatus.BREAK, AgentStatus.LOGGED_OUT

# Distinct values, so each assertion shows which parameter was used.
WRAP_UP, BUSY, REJECT, NO_ANSWER = 7.0, 11.0, 13.0, 17.0


def settings(agent_id: str = "1001", **changes: Any) -> AgentSettings:
    values: dict[str, Any] = dict(
        wrap_up_time=WRAP_UP,
        busy_delay=BUSY,
        reject_delay=REJECT,
        no_answer_delay=NO_ANSWER,
        max_no_answer=3,
    )
    values.update(changes)
    return AgentSettings(id=agent_id, **values)


def drain(source: Agent | Agents) -> list[AgentEvent]:
    events = []
    while (event := source.next_event()) is not None:
        events.append(event)
    return events


def ready(now: float = 0.0, **changes: Any) -> Agent:
    """A registered, Available, Waiting agent with its events drained."""
    agent = Agent(settings(**changes), now)
    agent.set_registered(now, True)
    agent.set_status(now, AVAILABLE)
    drain(agent)
    return agent


def drive(state: AgentState, now: float = 0.0, **changes: Any) -> Agent:
    """A ready agent moved into ``state`` through the public methods, events drained."""
    agent = ready(now, **changes)
    if state is not S.WAITING:
        agent.reserve(now)
    if state in (S.RINGING, S.TALKING, S.WRAP_UP, S.DELAYED):
        agent.offer(now)
    if state in (S.TALKING, S.WRAP_UP):
        agent.answered(now)
    if state is S.WRAP_UP:
        agent.call_ended(now)
    if state is S.DELAYED:
        agent.agent_leg_failed(now, "NO_ANSWER")
    assert agent.state is state
    drain(agent)
    return agent


def state_of(agent: Agent) -> AgentState:
    """``agent.state`` without mypy's narrowing from an earlier assert on it."""
    return agent.state


def fire(agent: Agent, input_: AgentInput, now: float) -> AgentState:
    """Feed any input with a representative argument."""
    cause = {In.AGENT_LEG_FAILED: "NO_ANSWER", In.AGENT_LEG_CANCELLED: "ORIGINATOR_CANCEL"}
    return agent.apply(input_, now, cause=cause.get(input_))


def snapshot(agent: Agent) -> tuple[object, ...]:
    return (
        agent.status,
        agent.state,
        agent.registered,
        agent.get_timer(),
        agent.waiting_for_result,
        agent.no_answer_count,
        agent.calls,
        agent.idle_since,
        agent.last_cause,
    )


# --- vocabulary ----------------------------------------------------------------------------


def test_status_and_state_values_are_the_rest_strings() -> None:
    assert [s.value for s in AgentStatus] == ["LoggedOut", "Available", "Break"]
    assert [s.value for s in AgentState] == [
        "Waiting", "Reserved", "Ringing", "Talking", "WrapUp", "Delayed",
    ]  # fmt: skip
    assert AgentStatus("Break") is BREAK and AgentState("WrapUp") is S.WRAP_UP


# --- the transition table ------------------------------------------------------------------

CALL_FLOW = {
    (S.WAITING, In.RESERVE): S.RESERVED,
    (S.RESERVED, In.RELEASE): S.WAITING,
    (S.RESERVED, In.OFFER): S.RINGING,
    (S.RESERVED, In.AGENT_LEG_FAILED): S.DELAYED,
    (S.RINGING, In.ANSWERED): S.TALKING,
    (S.RINGING, In.AGENT_LEG_FAILED): S.DELAYED,
    (S.RINGING, In.AGENT_LEG_CANCELLED): S.WAITING,
    (S.TALKING, In.CALL_ENDED): S.WRAP_UP,
    (S.WRAP_UP, In.WRAP_UP_DONE): S.WAITING,
    (S.DELAYED, In.DELAY_DONE): S.WAITING,
}
SIDE_DIMENSIONS = (
    In.SET_STATUS_LOGGED_OUT,
    In.SET_STATUS_AVAILABLE,
    In.SET_STATUS_BREAK,
    In.REGISTERED,
    In.UNREGISTERED,
)
ALL_PAIRS = [(state, input_) for state in AgentState for input_ in AgentInput]
REFUSED = [pair for pair in ALL_PAIRS if pair not in TRANSITIONS]


def test_table_is_the_call_flow_plus_status_and_registration_everywhere() -> None:
    expected = dict(CALL_FLOW)
    expected.update({(state, i): state for state in AgentState for i in SIDE_DIMENSIONS})
    assert TRANSITIONS == expected
    assert set(ANY_STATE_INPUTS) == set(SIDE_DIMENSIONS)


@pytest.mark.parametrize(("pair", "target"), TRANSITIONS.items(), ids=str)
def test_every_transition(pair: tuple[AgentState, AgentInput], target: AgentState) -> None:
    state, input_ = pair
    agent = drive(state, now=1.0)
    assert fire(agent, input_, 2.0) is target
    assert agent.state is target
    assert (agent.get_timer() is not None) == (target in TIMED_STATES)


@pytest.mark.parametrize("pair", REFUSED, ids=str)
def test_every_missing_pair_is_refused_and_changes_nothing(
    pair: tuple[AgentState, AgentInput],
) -> None:
    state, input_ = pair
    agent = drive(state, now=1.0)
    before = snapshot(agent)
    with pytest.raises(IllegalAgentTransition) as info:
        fire(agent, input_, 2.0)
    assert (info.value.state, info.value.input) == (state, input_)
    assert snapshot(agent) == before
    assert drain(agent) == []


@given(state=st.sampled_from(AgentState), input_=st.sampled_from(AgentInput))
def test_any_pair_moves_as_the_table_says_or_raises(state: AgentState, input_: AgentInput) -> None:
    agent = drive(state, now=1.0)
    before = snapshot(agent)
    if (state, input_) in TRANSITIONS:
        assert fire(agent, input_, 2.0) is TRANSITIONS[state, input_]
    else:
        with pytest.raises(IllegalAgentTransition):
            fire(agent, input_, 2.0)
        assert snapshot(agent) == before


@given(inputs=st.lists(st.sampled_from(AgentInput), max_size=60))
def test_any_sequence_follows_the_table_and_keeps_the_invariants(
    inputs: list[AgentInput],
) -> None:
    agent = Agent(settings(max_no_answer=2), 0.0)
    for step, input_ in enumerate(inputs, start=1):
        now = float(step)
        before = snapshot(agent)
        expected = TRANSITIONS.get((agent.state, input_))
        refused = expected is None or (input_ is In.RESERVE and not agent.eligible(now))
        if refused:
            with pytest.raises(IllegalAgentTransition):
                fire(agent, input_, now)
            assert snapshot(agent) == before
        else:
            assert fire(agent, input_, now) is expected
        # A deadline exists exactly in the timed states; eligibility is the three-way AND.
        assert (agent.get_timer() is not None) == (agent.state in TIMED_STATES)
        assert agent.eligible(now) == (
            agent.status is AVAILABLE and agent.state is S.WAITING and agent.registered
        )
        assert agent.no_answer_count <= 2
    for event in drain(agent):
        assert event.agent_id == "1001"


def test_one_event_per_change_and_none_for_a_repeat() -> None:
    agent = Agent(settings(), 0.0)
    agent.set_registered(1.0, True)
    agent.set_registered(1.5, True)  # repeat: nothing
    agent.set_status(2.0, "Available")
    agent.set_status(2.5, AVAILABLE)  # same status: nothing to report
    agent.reserve(3.0)
    assert drain(agent) == [
        AgentRegistrationChanged("1001", True, 1.0),
        AgentStateChanged("1001", AVAILABLE, S.WAITING, 2.0),
        AgentStateChanged("1001", AVAILABLE, S.RESERVED, 3.0),
    ]


def test_unknown_status_string_is_a_value_error() -> None:
    agent = ready()
    with pytest.raises(ValueError):
        agent.set_status(1.0, "Lunch")
    assert agent.status is AVAILABLE


# --- penalties by cause (dialer-semantics §1) ----------------------------------------------


class Cause(Enum):  # stands in for a HangupCause enum: matched by .name
    USER_BUSY = 17
    CALL_REJECTED = 21


# (cause, state after, delay, counted as a no-answer)
DELAY_RULES = [
    ("USER_BUSY", S.DELAYED, BUSY, False),  # 486, and 600 (DND)
    ("BUSY_EVERYWHERE", S.DELAYED, BUSY, False),  # 600 kept verbatim
    ("NORMAL_CIRCUIT_CONGESTION", S.DELAYED, BUSY, False),
    ("CALL_REJECTED", S.DELAYED, REJECT, False),  # 603
    ("USER_NOT_REGISTERED", S.DELAYED, NOT_REGISTERED_DELAY, False),
    ("ORIGINATOR_CANCEL", S.WAITING, None, False),
    ("NO_ANSWER", S.DELAYED, NO_ANSWER, True),  # our ring timeout
    ("NO_USER_RESPONSE", S.DELAYED, NO_ANSWER, True),  # 480: any other failure
    ("RECOVERY_ON_TIMER_EXPIRE", S.DELAYED, NO_ANSWER, True),  # 408 / timer B
    ("NORMAL_TEMPORARY_FAILURE", S.DELAYED, NO_ANSWER, True),  # 503
    ("SOMETHING_NEW", S.DELAYED, NO_ANSWER, True),
    (Cause.USER_BUSY, S.DELAYED, BUSY, False),
    (Cause.CALL_REJECTED, S.DELAYED, REJECT, False),
]


@pytest.mark.parametrize(("cause", "state", "delay", "counted"), DELAY_RULES, ids=str)
def test_delay_rule(
    cause: str | Enum, state: AgentState, delay: float | None, counted: bool
) -> None:
    agent = drive(S.RINGING, now=100.0)
    agent.agent_leg_failed(100.0, cause)
    assert agent.state is state
    assert agent.get_timer() == (None if delay is None else 100.0 + delay)
    assert agent.no_answer_count == (1 if counted else 0)
    assert agent.last_cause == (cause.name if isinstance(cause, Enum) else cause)
    assert agent.status is AVAILABLE


def test_penalty_table() -> None:
    assert penalty_for("USER_BUSY") is Penalty.BUSY
    assert penalty_for("ORIGINATOR_CANCEL") is Penalty.NONE
    assert penalty_for(None) is Penalty.NO_ANSWER
    agent = drive(S.RINGING)
    assert agent.agent_leg_failed(0.0, "CALL_REJECTED") is Penalty.REJECT


def test_no_binding_fails_straight_from_reserved() -> None:
    agent = drive(S.RESERVED, now=10.0)
    agent.agent_leg_failed(10.0, "USER_NOT_REGISTERED")
    assert (agent.state, agent.get_timer(), agent.no_answer_count) == (S.DELAYED, 15.0, 0)


def test_cancel_keeps_the_agent_first_in_the_idle_order() -> None:
    agent = drive(S.RINGING, now=50.0)
    assert agent.idle_since == 50.0
    agent.agent_leg_failed(60.0, "ORIGINATOR_CANCEL")
    assert agent.eligible(60.0) and agent.idle_since == 50.0


def test_cancel_cause_is_not_a_failure_input() -> None:
    agent = drive(S.RINGING)
    before = snapshot(agent)
    with pytest.raises(ValueError):
        agent.apply(In.AGENT_LEG_FAILED, 1.0, cause="ORIGINATOR_CANCEL")
    assert snapshot(agent) == before


# --- max_no_answer and the counts ----------------------------------------------------------


def no_answer(agent: Agent, now: float) -> None:
    agent.handle_timer(now)  # end a previous delay, if any
    agent.reserve(now)
    agent.offer(now)
    agent.agent_leg_failed(now + 15.0, "NO_ANSWER")


def test_max_no_answer_puts_the_agent_on_break() -> None:
    agent = ready()
    no_answer(agent, 0.0)
    no_answer(agent, 100.0)
    assert (agent.status, agent.no_answer_count) == (AVAILABLE, 2)
    drain(agent)
    no_answer(agent, 200.0)
    assert (agent.status, agent.state, agent.no_answer_count) == (BREAK, S.DELAYED, 3)
    changes = [e for e in drain(agent) if isinstance(e, AgentStateChanged)]
    assert changes[-1] == AgentStateChanged("1001", BREAK, S.DELAYED, 215.0)  # one event
    agent.handle_timer(1000.0)
    assert (agent.status, agent.state) == (BREAK, S.WAITING)
    assert not agent.eligible(1000.0)
    agent.set_status(1001.0, AVAILABLE)  # the agent is back
    assert agent.no_answer_count == 0 and agent.eligible(1001.0)


def test_busy_and_reject_neither_count_nor_reset() -> None:
    agent = ready()
    no_answer(agent, 0.0)
    agent.handle_timer(100.0)
    agent.reserve(100.0)
    agent.offer(100.0)
    agent.agent_leg_failed(101.0, "USER_BUSY")
    assert agent.no_answer_count == 1


def test_max_no_answer_zero_never_breaks() -> None:
    agent = ready(max_no_answer=0)
    for step in range(10):
        no_answer(agent, 100.0 * step)
    assert (agent.status, agent.no_answer_count) == (AVAILABLE, 10)


def test_a_logged_out_agent_is_not_put_on_break() -> None:
    agent = ready(max_no_answer=1)
    agent.reserve(0.0)
    agent.offer(0.0)
    agent.set_status(1.0, LOGGED_OUT)  # while ringing: the call goes on
    agent.agent_leg_failed(15.0, "NO_ANSWER")
    assert (agent.status, agent.state, agent.no_answer_count) == (LOGGED_OUT, S.DELAYED, 1)


def test_count_resets_when_the_agent_answers() -> None:
    agent = ready()
    no_answer(agent, 0.0)
    no_answer(agent, 100.0)
    agent.handle_timer(200.0)
    agent.reserve(200.0)
    agent.offer(200.0)
    agent.answered(203.0)
    assert (agent.no_answer_count, agent.calls) == (0, 1)


@pytest.mark.parametrize("status", list(AgentStatus))
def test_count_resets_when_the_agent_sets_a_status(status: AgentStatus) -> None:
    agent = ready()
    no_answer(agent, 0.0)
    no_answer(agent, 100.0)
    agent.set_status(120.0, status)  # even the status it already has
    assert agent.no_answer_count == 0
    assert agent.state is S.DELAYED  # a status never moves the state


# --- Break survives the call; registration -------------------------------------------------


@pytest.mark.parametrize("status", [BREAK, LOGGED_OUT])
@pytest.mark.parametrize("when", [S.RESERVED, S.RINGING, S.TALKING])
def test_status_set_during_a_call_is_never_overwritten(
    status: AgentStatus, when: AgentState
) -> None:
    agent = drive(when, now=0.0)
    agent.set_status(2.0, status)
    assert agent.state is when
    if agent.state is S.RESERVED:
        agent.offer(3.0)
    if agent.state is S.RINGING:
        agent.answered(4.0)
    agent.call_ended(10.0)
    assert (agent.status, agent.state) == (status, S.WRAP_UP)
    agent.handle_timer(10.0 + WRAP_UP)
    assert (agent.status, agent.state) == (status, S.WAITING)
    assert not agent.eligible(100.0)


def test_forced_break_is_not_offered_after_the_delay() -> None:
    agent = ready(max_no_answer=1)
    no_answer(agent, 0.0)
    assert agent.status is BREAK
    agent.handle_timer(100.0)
    with pytest.raises(AgentNotEligible):
        agent.reserve(100.0)
    assert agent.status is BREAK and agent.state is S.WAITING


@pytest.mark.parametrize("registered", [True, False])
@pytest.mark.parametrize("status", list(AgentStatus))
@pytest.mark.parametrize("state", list(AgentState))
def test_eligible_only_when_available_waiting_and_registered(
    state: AgentState, status: AgentStatus, registered: bool
) -> None:
    agent = drive(state)
    agent.set_status(1.0, status)
    agent.set_registered(1.0, registered)
    expected = status is AVAILABLE and state is S.WAITING and registered
    assert agent.eligible(1.0) is expected
    assert (agent.ineligible_reason(1.0) is None) is expected


def test_unregistered_while_waiting_stays_waiting_but_ineligible() -> None:
    agent = ready()
    agent.set_registered(5.0, False)
    assert agent.state is S.WAITING and not agent.eligible(5.0)
    with pytest.raises(AgentNotEligible) as info:
        agent.reserve(6.0)
    assert info.value.reason == "not registered" and agent.state is S.WAITING
    assert drain(agent) == [AgentRegistrationChanged("1001", False, 5.0)]
    agent.set_registered(7.0, True)
    assert agent.eligible(7.0)


def test_unregistered_during_a_call_does_not_interrupt_it() -> None:
    agent = drive(S.TALKING)
    agent.set_registered(1.0, False)
    assert agent.state is S.TALKING
    agent.call_ended(2.0)
    agent.handle_timer(2.0 + WRAP_UP)
    assert state_of(agent) is S.WAITING and not agent.eligible(100.0)


def test_fresh_agent_is_logged_out_and_unregistered() -> None:
    agent = Agent(settings(), 3.0)
    assert (agent.status, agent.state, agent.registered) == (LOGGED_OUT, S.WAITING, False)
    assert (agent.idle_since, agent.calls, agent.get_timer()) == (3.0, 0, None)
    assert Agent(settings(), status=BREAK).status is BREAK


# --- wrap-up -------------------------------------------------------------------------------


def test_agent_wrap_up_by_default() -> None:
    agent = drive(S.TALKING)
    agent.call_ended(100.0)
    assert agent.get_timer() == 100.0 + WRAP_UP and not agent.waiting_for_result
    assert agent.result_received(101.0) is False  # not waiting for a result: ignored
    assert agent.state is S.WRAP_UP
    agent.handle_timer(100.0 + WRAP_UP)
    assert state_of(agent) is S.WAITING and agent.idle_since == 100.0 + WRAP_UP


def test_campaign_wrap_up_when_waiting_for_result() -> None:
    agent = drive(S.TALKING)
    agent.call_ended(100.0, wrap_up=60.0)
    assert agent.get_timer() == 160.0 and agent.waiting_for_result
    agent.handle_timer(159.9)
    assert agent.state is S.WRAP_UP
    agent.handle_timer(160.0)
    assert state_of(agent) is S.WAITING and not agent.waiting_for_result
    assert agent.result_received(161.0) is False  # late result: harmless


def test_result_ends_the_wait_early() -> None:
    agent = drive(S.TALKING)
    agent.call_ended(100.0, wrap_up=60.0)
    drain(agent)
    assert agent.result_received(112.0) is True
    assert (agent.state, agent.get_timer(), agent.idle_since) == (S.WAITING, None, 112.0)
    assert drain(agent) == [AgentStateChanged("1001", AVAILABLE, S.WAITING, 112.0)]
    agent.handle_timer(160.0)  # the old deadline: nothing
    assert drain(agent) == []


def test_campaign_wrap_up_from_config() -> None:
    waits = CampaignConfig(name="c", calendar="cal", wait_for_result=True, wrap_up_time=45)
    plain = CampaignConfig(name="c", calendar="cal", wrap_up_time=45)
    assert campaign_wrap_up(waits) == 45.0
    assert campaign_wrap_up(plain) is None


@pytest.mark.parametrize("wrap_up", [-1.0, float("nan"), float("inf")])
def test_bad_wrap_up_is_refused(wrap_up: float) -> None:
    agent = drive(S.TALKING)
    with pytest.raises(ValueError):
        agent.call_ended(1.0, wrap_up=wrap_up)
    assert agent.state is S.TALKING


def test_zero_wrap_up_is_a_deadline_at_now() -> None:
    agent = drive(S.TALKING, wrap_up_time=0.0)
    agent.call_ended(50.0)
    assert agent.state is S.WRAP_UP and agent.get_timer() == 50.0
    agent.handle_timer(50.0)
    assert state_of(agent) is S.WAITING


# --- timers --------------------------------------------------------------------------------


def test_timer_early_and_spurious_calls_are_harmless() -> None:
    agent = ready()
    agent.handle_timer(1e9)  # no deadline at all
    assert agent.get_timer() is None and drain(agent) == []
    no_answer(agent, 0.0)
    drain(agent)
    assert agent.get_timer() == 15.0 + NO_ANSWER
    agent.handle_timer(31.9)  # early
    assert agent.state is S.DELAYED and drain(agent) == []
    agent.handle_timer(32.0)
    assert state_of(agent) is S.WAITING and agent.get_timer() is None
    agent.handle_timer(32.0)  # again
    assert drain(agent) == [AgentStateChanged("1001", AVAILABLE, S.WAITING, 32.0)]


def test_late_wake_is_stamped_with_the_deadline() -> None:
    agent = drive(S.TALKING)
    agent.call_ended(10.0)
    drain(agent)
    agent.handle_timer(500.0)
    assert agent.idle_since == 10.0 + WRAP_UP
    assert drain(agent) == [AgentStateChanged("1001", AVAILABLE, S.WAITING, 17.0)]


def test_a_due_but_unhandled_deadline_still_counts_as_running() -> None:
    agent = drive(S.DELAYED)
    assert not agent.eligible(1e6)
    agent.handle_timer(1e6)
    assert agent.eligible(1e6)


# --- settings ------------------------------------------------------------------------------


def test_settings_from_config() -> None:
    cfg = AgentConfig(
        id="1002", name="Ann", password="secret", call_timeout=20, wrap_up_time=5,
        max_no_answer=4, busy_delay=1, reject_delay=2, no_answer_delay=3, auto_answer=True,
    )  # fmt: skip
    assert AgentSettings.from_config(cfg) == AgentSettings(
        id="1002", name="Ann", call_timeout=20.0, wrap_up_time=5.0, max_no_answer=4,
        busy_delay=1.0, reject_delay=2.0, no_answer_delay=3.0, auto_answer=True,
    )  # fmt: skip
    assert "secret" not in repr(AgentSettings.from_config(cfg))


@pytest.mark.parametrize(
    "bad",
    [
        {"id": ""},
        {"busy_delay": -1.0},
        {"reject_delay": float("nan")},
        {"wrap_up_time": float("inf")},
        {"call_timeout": 0.0},
        {"max_no_answer": -1},
    ],
    ids=str,
)
def test_settings_are_checked(bad: dict[str, Any]) -> None:
    values: dict[str, Any] = {"id": "1001", **bad}
    with pytest.raises(ValueError):
        AgentSettings(**values)


def test_delay_for_every_penalty() -> None:
    s = settings()
    assert [s.delay_for(p) for p in Penalty] == [BUSY, REJECT, NOT_REGISTERED_DELAY, 0.0, NO_ANSWER]


def test_core_does_not_load_pydantic() -> None:
    code = "import sys, sipdialer.dialer.agents; print(sorted(m for m in sys.modules " \
        "if m.split('.')[0] in ('pydantic', 'asyncio', 'sqlalchemy')))"  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- the registry --------------------------------------------------------------------------


def registry(*ids: str, now: float = 0.0) -> Agents:
    agents = Agents.from_settings((settings(i) for i in ids), now)
    for agent in agents:
        agent.set_registered(now, True)
        agent.set_status(now, AVAILABLE)
    drain(agents)
    return agents


def test_registry_basics() -> None:
    agents = registry("a", "b")
    assert len(agents) == 2 and "a" in agents and "z" not in agents
    assert agents["a"].id == "a" and agents.get("z") is None
    assert [a.id for a in agents] == ["a", "b"]
    with pytest.raises(ValueError):
        agents.add(settings("a"))
    agents.add(settings("c"), 5.0, status=BREAK)
    assert agents["c"].status is BREAK and agents["c"].idle_since == 5.0
    assert agents.remove("c").id == "c" and "c" not in agents
    with pytest.raises(KeyError):
        agents.remove("c")


def test_registry_shares_one_event_queue() -> None:
    agents = registry("a", "b")
    agents["b"].reserve(1.0)
    agents["a"].reserve(2.0)
    assert [(e.agent_id, e.now) for e in drain(agents)] == [("b", 1.0), ("a", 2.0)]


def test_eligible_keeps_the_tier_order_and_skips_unknown_ids() -> None:
    agents = registry("a", "b", "c", "d")
    agents["b"].reserve(1.0)
    agents["d"].set_registered(1.0, False)
    assert [a.id for a in agents.eligible(1.0, ["c", "zz", "a", "b", "d"])] == ["c", "a"]
    assert [a.id for a in agents.eligible(1.0)] == ["a", "c"]


def test_registry_timer_is_the_earliest_deadline() -> None:
    agents = registry("a", "b", "c")
    assert agents.get_timer() is None
    for agent_id, now in (("a", 10.0), ("b", 3.0)):
        agent = agents[agent_id]
        agent.reserve(now)
        agent.offer(now)
        agent.answered(now)
        agent.call_ended(now)
    assert agents.get_timer() == 3.0 + WRAP_UP
    agents.handle_timer(5.0)  # early: nothing
    assert agents["b"].state is S.WRAP_UP


def test_late_wake_fires_every_due_agent_in_deadline_order() -> None:
    agents = registry("a", "b", "c", "d")
    a, b, c, d = (agents[i] for i in "abcd")
    for agent in (a, b, c, d):
        agent.reserve(0.0)
        agent.offer(0.0)
    a.answered(1.0)
    a.call_ended(3.0)  # wrap-up ends at 10
    b.agent_leg_failed(0.0, "CALL_REJECTED")  # delay ends at 13
    c.agent_leg_failed(0.0, "USER_NOT_REGISTERED")  # delay ends at 5
    d.answered(1.0)
    d.call_ended(100.0, wrap_up=100.0)  # ends at 200, not due
    drain(agents)
    agents.handle_timer(150.0)
    assert [(e.agent_id, e.now) for e in drain(agents)] == [("c", 5.0), ("a", 10.0), ("b", 13.0)]
    assert [x.idle_since for x in (c, a, b)] == [5.0, 10.0, 13.0]
    assert agents.get_timer() == 200.0 and d.state is S.WRAP_UP
    assert agents.longest_idle(agents.eligible(150.0)) is c


def test_longest_idle_ties_by_id() -> None:
    agents = registry("b", "a", "c", now=5.0)
    assert longest_idle(agents) is agents["a"]
    agents["a"].idle_since = 6.0
    assert longest_idle(agents) is agents["b"]
    assert longest_idle([]) is None


def test_fewest_calls_ties_by_longest_idle_then_id() -> None:
    agents = registry("a", "b", "c", "d")
    calls = {"a": 2, "b": 1, "c": 1, "d": 1}
    idle = {"a": 0.0, "b": 9.0, "c": 4.0, "d": 4.0}
    for agent in agents:
        agent.calls, agent.idle_since = calls[agent.id], idle[agent.id]
    assert fewest_calls(agents) is agents["c"]  # c and d tie on both: id decides
    assert agents.fewest_calls([agents["a"], agents["b"]]) is agents["b"]
    assert agents.select("fewest_calls", agents) is agents["c"]
    assert agents.select("longest_idle", agents) is agents["a"]
    assert fewest_calls([]) is None
    agents.reset_calls()
    assert {agent.calls for agent in agents} == {0}


def test_answered_calls_feed_fewest_calls() -> None:
    agents = registry("a", "b")
    a = agents["a"]
    a.reserve(0.0)
    a.offer(0.0)
    a.answered(1.0)
    a.call_ended(2.0)
    agents.handle_timer(100.0)
    assert (a.calls, agents["b"].calls) == (1, 0)
    assert agents.select("fewest_calls", agents.eligible(100.0)) is agents["b"]
