"""dialer/engine.py: one table-driven test per rule of dialer-semantics §1–6, fake clock.

The engine is fed by hand through ``engine_rig.Rig``: store commands are executed against
an in-memory member source, telephony events are written by each test.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from engine_rig import T0, Rig, campaign, kinds, of

from sipdialer.dialer.agents import AgentSettings, AgentState, AgentStatus
from sipdialer.dialer.calendar import Calendar
from sipdialer.dialer.campaign import CampaignState, TrunkSettings
from sipdialer.dialer.commands import (
    AgentStatusChanged,
    CampaignFinished,
    EndMember,
    FinishAttempt,
    Hangup,
    LeaseMember,
    MemberStatusReceived,
    MemberTerminated,
    OfferAgent,
    SaveMember,
    StartAttempt,
    UpdateAttempt,
)
from sipdialer.dialer.dispositions import (
    DispositionKind,
    NotWaiting,
    Number,
    StatusResult,
)
from sipdialer.dialer.member_source import InMemoryMembers

K = DispositionKind
KYIV = ZoneInfo("Europe/Kyiv")
HOURS_9_18 = ((9 * 60, 18 * 60),)


def ts(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> float:
    return datetime(year, month, day, hour, minute, tzinfo=UTC).timestamp()


def agent_state(rig: Rig, agent_id: str = "a1") -> AgentState:
    return rig.engine.agents[agent_id].state


def call_id(out: list[Any], index: int = 0) -> str:
    return str(of(out, OfferAgent)[index].order.call_id)


# --- §1 call order: agent first --------------------------------------------------------------

CALL_ORDER = [
    # (step, commands expected, agent state after)
    ("agent answers", ["DialMember"], AgentState.TALKING),
    ("member answers", ["Bridge"], AgentState.TALKING),
    ("call ends", ["FinishAttempt", "SaveMember"], AgentState.WRAP_UP),
    ("wrap-up over", ["LeaseMember", "ReleaseAgent", "ExpireMembers", "CampaignFinished"],
     AgentState.WAITING),
]  # fmt: skip


def test_call_order_is_agent_first() -> None:
    rig = Rig([campaign(variables={"product": "x", "shared": "campaign"})])
    m = rig.add("c", "100", name="Ann", variables={"shared": "member"})
    out = rig.start()
    assert kinds(out) == ["LeaseMember", "StartAttempt", "OfferAgent"]
    order = of(out, OfferAgent)[0].order
    assert (order.member_id, order.member_name, order.number, order.agent_id) == (
        str(m), "Ann", "100", "a1"
    )  # fmt: skip
    assert order.variables == {"product": "x", "shared": "member"}  # member wins (§7)
    assert (order.agent_timeout, order.auto_answer) == (15.0, False)
    cid, agent = order.call_id, rig.engine.agents["a1"]
    assert agent.state is AgentState.RINGING
    steps = {
        "agent answers": lambda: rig.answer_agent(cid, T0 + 3),
        "member answers": lambda: rig.answer_member(cid, T0 + 8),
        "call ends": lambda: rig.end(cid, "NORMAL_CLEARING", at=T0 + 60, talk=52),
        "wrap-up over": lambda: rig.run_timers(T0 + 70),
    }
    for step, expected, state in CALL_ORDER:
        assert kinds(steps[step]()) == expected, step
        assert agent.state is state, step
    assert rig.state(m).ended_with == "NORMAL_CLEARING"
    assert rig.engine.campaign("c").state is CampaignState.FINISHED


PENALTIES = [
    # (agent-leg cause, delay before offered again, consecutive no-answers after)
    ("USER_BUSY", 11.0, 0),
    ("NORMAL_CIRCUIT_CONGESTION", 11.0, 0),
    ("CALL_REJECTED", 22.0, 0),
    ("USER_NOT_REGISTERED", 5.0, 0),
    ("NO_ANSWER", 33.0, 1),
    ("RECOVERY_ON_TIMER_EXPIRE", 33.0, 1),
]
PENALISED = AgentSettings(id="a1", busy_delay=11, reject_delay=22, no_answer_delay=33)


@pytest.mark.parametrize(("cause", "delay", "no_answers"), PENALTIES)
def test_agent_leg_failure_refunds_and_reoffers_at_once(
    cause: str, delay: float, no_answers: int
) -> None:
    rig = Rig([campaign(agents=("a1", "a2"))], agents=[PENALISED, "a2"])
    m = rig.add()
    first = call_id(rig.start())
    out = rig.fail_agent(first, cause, at=T0 + 4)
    finished = of(out, FinishAttempt)[0]
    assert finished.disposition.kind is K.REFUND
    offers = of(out, OfferAgent)
    assert [o.order.agent_id for o in offers] == ["a2"]  # at once, another agent
    assert of(out, StartAttempt)[0].at == datetime.fromtimestamp(T0 + 4, UTC)
    a1 = rig.engine.agents["a1"]
    assert (a1.state, a1.get_timer(), a1.no_answer_count) == (
        AgentState.DELAYED, T0 + 4 + delay, no_answers
    )  # fmt: skip
    rig.call(offers[0].order.call_id, "NORMAL_CLEARING", talk=30)
    assert rig.state(m).attempts == 1  # the refunded attempt did not count


def test_our_cancel_costs_the_agent_nothing() -> None:
    rig = Rig()
    m = rig.add()
    cid = call_id(rig.start())
    out = rig.feed(MemberTerminated("c", m), T0 + 1)
    assert of(out, Hangup) == [Hangup(cid, "MANAGER_REQUEST")]
    rig.fail_agent(cid, "ORIGINATOR_CANCEL", at=T0 + 1)
    agent = rig.engine.agents["a1"]
    assert (agent.state, agent.no_answer_count) == (AgentState.WAITING, 0)
    assert rig.state(m).ended_with == "MANAGER_REQUEST"


def test_refund_with_no_other_agent_gives_the_member_back_due_now() -> None:
    agent = AgentSettings(id="a1", no_answer_delay=30, max_no_answer=2)
    rig = Rig(agents=[agent])
    m = rig.add()
    out = rig.fail_agent(call_id(rig.start()), "NO_ANSWER", at=T0 + 15)
    saved = of(out, SaveMember)[0]
    assert saved.state.next_call_at == datetime.fromtimestamp(T0 + 15, UTC)
    out = rig.run_timers(T0 + 45)  # the delay ends: offered again to the same agent
    assert of(out, OfferAgent)[0].order.member_id == str(m)
    rig.fail_agent(call_id(out), "NO_ANSWER", at=T0 + 60)
    a1 = rig.engine.agents["a1"]
    assert a1.status is AgentStatus.BREAK  # max_no_answer = 2 consecutive
    assert of(rig.run_timers(T0 + 600), OfferAgent) == []
    assert rig.state(m).attempts == 0


# --- §2 agent vocabulary --------------------------------------------------------------------

ELIGIBILITY = [
    # (registered, status, offered)
    (True, AgentStatus.AVAILABLE, True),
    (False, AgentStatus.AVAILABLE, False),
    (True, AgentStatus.BREAK, False),
    (True, AgentStatus.LOGGED_OUT, False),
]


@pytest.mark.parametrize(("registered", "status", "offered"), ELIGIBILITY)
def test_only_registered_available_agents_are_offered(
    registered: bool, status: AgentStatus, offered: bool
) -> None:
    rig = Rig(login=False)
    rig.add()
    agent = rig.engine.agents["a1"]
    agent.set_registered(T0, registered)
    agent.set_status(T0, status)
    assert bool(of(rig.tick(), OfferAgent)) is offered


TIERS = [
    # (tiers, strategy, agent calls so far, who is offered)
    ((("a1", 2), ("a2", 1)), "longest_idle", {}, "a2"),  # lower level first
    ((("a1", 1), ("a2", 1)), "longest_idle", {}, "a1"),  # idle since T0 both: by id
    ((("a1", 1), ("a2", 1)), "fewest_calls", {"a1": 5, "a2": 1}, "a2"),
    ((("a1", 1), ("a2", 1)), "longest_idle", {"a1": 5, "a2": 1}, "a1"),
]


@pytest.mark.parametrize(("tiers", "strategy", "calls", "expected"), TIERS)
def test_agent_choice_by_tier_then_strategy(
    tiers: tuple[tuple[str, int], ...], strategy: str, calls: dict[str, int], expected: str
) -> None:
    rig = Rig([campaign(agents=tiers, strategy=strategy)], agents=("a1", "a2"))
    for agent_id, count in calls.items():
        rig.engine.agents[agent_id].calls = count
    rig.add()
    assert [o.order.agent_id for o in rig.offers(rig.start())] == [expected]


def test_break_set_during_a_call_is_kept_after_it() -> None:
    rig = Rig()
    rig.add("c", "100")
    rig.add("c", "101")
    cid = call_id(rig.start())
    rig.answer_agent(cid)
    rig.feed(AgentStatusChanged("a1", AgentStatus.BREAK))
    rig.end(cid, "NORMAL_CLEARING", at=T0 + 40, talk=30)
    out = rig.run_timers(T0 + 3600)
    agent = rig.engine.agents["a1"]
    assert (agent.status, agent.state, of(out, OfferAgent)) == (
        AgentStatus.BREAK, AgentState.WAITING, []
    )  # fmt: skip


# --- §3 dispositions through the engine -------------------------------------------------------

RETRY = 600.0
DISPOSITIONS = [
    # (cause, talk, attempts before, numbers, kind, attempts after, ends with, next in s)
    ("NORMAL_CLEARING", 30.0, 0, ("100",), K.OK, 1, "NORMAL_CLEARING", None),
    ("NORMAL_CLEARING", 5.0, 0, ("100",), K.RETRY, 1, None, RETRY),  # < min_success
    ("NORMAL_CLEARING", None, 0, ("100",), K.RETRY, 1, None, RETRY),  # never bridged
    ("USER_BUSY", None, 0, ("100",), K.RETRY, 1, None, RETRY),
    ("USER_BUSY", None, 2, ("100",), K.RETRY, 3, "MAX_TRY_COUNT", None),
    ("NORMAL_TEMPORARY_FAILURE", None, 2, ("100",), K.MINUS, 2, None, RETRY),
    ("UNALLOCATED_NUMBER", None, 0, ("100",), K.ERROR, 1, "UNALLOCATED_NUMBER", None),
    ("UNALLOCATED_NUMBER", None, 0, ("100", "200"), K.ERROR, 1, None, RETRY),
    ("INTERWORKING", None, 0, ("100",), K.RETRY, 1, None, RETRY),  # in no list
]


@pytest.mark.parametrize(
    ("cause", "talk", "before", "numbers", "kind", "after", "ends", "next_in"), DISPOSITIONS
)
def test_disposition_after_an_attempt(
    cause: str,
    talk: float | None,
    before: int,
    numbers: tuple[str, ...],
    kind: DispositionKind,
    after: int,
    ends: str | None,
    next_in: float | None,
) -> None:
    rig = Rig()
    m = rig.add("c", *numbers)
    rig.members.save(m, replace(rig.state(m), attempts=before))
    out = rig.start()
    out = rig.call(call_id(out), cause, talk=talk, at=T0 + 100)
    assert of(out, FinishAttempt)[0].disposition.kind is kind
    state = rig.state(m)
    assert (state.attempts, state.ended_with) == (after, ends)
    due = None if next_in is None else datetime.fromtimestamp(T0 + 100 + next_in, UTC)
    assert state.next_call_at == due
    # Not dialed again before its time; dialed at it (on the next active number).
    assert of(rig.run_timers(T0 + 100 + RETRY - 1), OfferAgent) == []
    out = rig.run_timers(T0 + 100 + RETRY + 1)
    offers = of(out, OfferAgent)
    if ends is not None:
        assert offers == [] and of(rig.log, CampaignFinished)
    else:
        assert [o.order.number for o in offers] == [numbers[-1]]
        assert of(out, StartAttempt)[0].at == due


def test_manager_request_of_a_member_not_in_a_call() -> None:
    rig = Rig(login=False)
    m = rig.add()
    out = rig.feed(MemberTerminated("c", m))
    assert of(out, EndMember) == [EndMember("c", m, "MANAGER_REQUEST")]
    assert rig.state(m).ended_with == "MANAGER_REQUEST"


def test_expired_members_are_never_dialed_and_end_expired() -> None:
    rig = Rig()
    gone = rig.add("c", "100", expire=datetime.fromtimestamp(T0 - 1, UTC))
    soon = rig.add("c", "200", expire=datetime.fromtimestamp(T0 + 300, UTC))
    out = rig.start()
    assert [o.order.member_id for o in of(out, OfferAgent)] == [str(soon)]
    rig.call(call_id(out), "USER_BUSY", at=T0 + 10)  # retry at +600: past expire
    rig.run_timers(T0 + 3600)
    assert (rig.state(gone).ended_with, rig.state(soon).ended_with) == (
        "MEMBER_EXPIRED", "MEMBER_EXPIRED"
    )  # fmt: skip
    assert rig.engine.campaign("c").state is CampaignState.FINISHED


# --- §4 waiting for result --------------------------------------------------------------------

WAIT: dict[str, Any] = {"wait_for_result": True, "wrap_up_time": 60}
RESULTS = [
    # (status body, attempts before, kind, attempts after, ends with, next in s)
    (StatusResult(success=True), 0, K.OK, 1, "NORMAL_CLEARING", None),
    (StatusResult(next_after_sec=60), 0, K.RETRY, 1, None, 60.0),
    (StatusResult(), 2, K.RETRY, 3, "MAX_TRY_COUNT", None),
    (StatusResult(reset_retries=True), 2, K.RETRY, 0, None, RETRY),
    (StatusResult(stop_communications="all"), 0, K.RETRY, 1, "NO_COMMUNICATIONS", None),
    (StatusResult(stop_communications="all", next_communication="300"), 0, K.RETRY, 1, None,
     RETRY),
]  # fmt: skip


@pytest.mark.parametrize(("body", "before", "kind", "after", "ends", "next_in"), RESULTS)
def test_status_result_decides_a_waiting_member(
    body: StatusResult,
    before: int,
    kind: DispositionKind,
    after: int,
    ends: str | None,
    next_in: float | None,
) -> None:
    rig = Rig([campaign(**WAIT)])
    m = rig.add()
    rig.members.save(m, replace(rig.state(m), attempts=before))
    out = rig.call(call_id(rig.start()), "USER_BUSY", at=T0 + 50)  # cause not judged
    assert of(out, FinishAttempt)[0].disposition.kind is K.WAITING
    deadline = datetime.fromtimestamp(T0 + 50 + 60, UTC)  # + the campaign's wrap_up_time
    assert of(out, SaveMember)[0].result_deadline == deadline
    assert rig.state(m).waiting and agent_state(rig) is AgentState.WRAP_UP
    assert of(rig.tick(T0 + 70), LeaseMember) == []  # not dialed while waiting
    out = rig.feed(MemberStatusReceived("c", m, body), T0 + 80)
    update = of(out, UpdateAttempt)[0]
    assert (update.disposition.kind, update.status) == (kind, body)
    state = rig.state(m)
    assert (state.attempts, state.ended_with, state.waiting) == (after, ends, False)
    due = None if next_in is None else datetime.fromtimestamp(T0 + 80 + next_in, UTC)
    assert state.next_call_at == due
    assert agent_state(rig) is AgentState.WAITING  # released at once
    if body.next_communication:
        assert [n.number for n in state.active_numbers] == ["300"]


@pytest.mark.parametrize(("refund", "kind", "attempts"), [(False, K.RETRY, 1), (True, K.MINUS, 0)])
def test_result_deadline_passing(refund: bool, kind: DispositionKind, attempts: int) -> None:
    settings = campaign(**WAIT)
    policy = replace(settings.policy, refund_missed_result=refund)
    rig = Rig([replace(settings, policy=policy)])
    m = rig.add()
    rig.call(call_id(rig.start()), "NORMAL_CLEARING", talk=30, at=T0 + 50)
    assert rig.engine.get_timer() == T0 + 110  # the campaign's wrap_up_time
    assert of(rig.tick(T0 + 109), UpdateAttempt) == []
    out = rig.tick(T0 + 110)
    assert of(out, UpdateAttempt)[0].disposition.kind is kind
    state = rig.state(m)
    assert (state.attempts, state.waiting) == (attempts, False)
    assert state.next_call_at == datetime.fromtimestamp(T0 + 110 + RETRY, UTC)
    with pytest.raises(NotWaiting):
        rig.feed(MemberStatusReceived("c", m, StatusResult(success=True)), T0 + 120)


def test_terminate_a_waiting_member() -> None:
    rig = Rig([campaign(**WAIT)])
    m = rig.add()
    rig.call(call_id(rig.start()), "NORMAL_CLEARING", talk=30, at=T0 + 50)
    out = rig.feed(MemberTerminated("c", m), T0 + 55)
    assert of(out, UpdateAttempt)[0].disposition.kind is K.MANAGER_REQUEST
    assert rig.state(m).ended_with == "MANAGER_REQUEST"
    assert rig.engine.agents["a1"].state is AgentState.WAITING


# --- §5 calendar and time zones ---------------------------------------------------------------


def week(**days: tuple[tuple[int, int], ...]) -> tuple[tuple[tuple[int, int], ...], ...]:
    names = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    return tuple(days.get(name, ()) for name in names)


WORKDAYS = week(mon=HOURS_9_18, tue=HOURS_9_18, wed=HOURS_9_18, thu=HOURS_9_18, fri=HOURS_9_18)
WEEKEND = week(sat=HOURS_9_18, sun=HOURS_9_18)
CALENDAR_CASES = [
    # (case, calendar, member zone, start, first call)
    ("open in the calendar's zone", Calendar(KYIV, WORKDAYS), None,
     ts(2026, 3, 2, 10), ts(2026, 3, 2, 10)),
    ("member in another zone (New York 09:00 = 14:00 UTC)", Calendar(KYIV, WORKDAYS),
     "America/New_York", ts(2026, 3, 2, 10), ts(2026, 3, 2, 14)),
    ("DST change day in the calendar's zone (Kyiv 09:00 EEST)", Calendar(KYIV, WEEKEND), None,
     ts(2026, 3, 28, 17), ts(2026, 3, 29, 6)),
    ("DST change day in the member's zone (New York 09:00 EDT)", Calendar(KYIV, WEEKEND),
     "America/New_York", ts(2026, 3, 7, 23, 30), ts(2026, 3, 8, 13)),
    ("holiday (a calendar date)", Calendar(KYIV, WORKDAYS, holidays=frozenset({date(2026, 3, 2)})),
     None, ts(2026, 3, 2, 10), ts(2026, 3, 3, 7)),
    ("before the start date", Calendar(KYIV, WORKDAYS, start=date(2026, 3, 4)), None,
     ts(2026, 3, 2, 10), ts(2026, 3, 4, 7)),
]  # fmt: skip


@pytest.mark.parametrize(
    ("calendar", "zone", "start", "first"),
    [case[1:] for case in CALENDAR_CASES],
    ids=[case[0] for case in CALENDAR_CASES],
)
def test_first_call_waits_for_the_window(
    calendar: Calendar, zone: str | None, start: float, first: float
) -> None:
    rig = Rig([campaign(calendar=calendar)], now=start, zones={"c": {zone}})
    m = rig.add("c", "100", timezone=zone)
    assert of(rig.start(), OfferAgent) == [] or start == first
    out = rig.log if start == first else rig.run_timers(first + 86400 * 3)
    starts = of(out, StartAttempt)
    assert starts and starts[0].at == datetime.fromtimestamp(first, UTC)
    assert starts[0].member_id == m


def test_members_in_two_zones_are_dialed_each_in_its_window() -> None:
    rig = Rig([campaign(calendar=Calendar(KYIV, WORKDAYS))], zones={"c": {None, "Asia/Tokyo"}})
    kyiv = rig.add("c", "100")
    tokyo = rig.add("c", "200", timezone="Asia/Tokyo")  # Mon 19:00 in Tokyo: closed
    out = rig.start()
    assert [o.order.member_id for o in of(out, OfferAgent)] == [str(kyiv)]
    rig.call(call_id(out), "NORMAL_CLEARING", talk=30, at=T0 + 60)
    out = rig.run_timers(ts(2026, 3, 3, 1))  # Tue 09:00 Tokyo = 00:00 UTC
    assert [(s.member_id, s.at) for s in of(out, StartAttempt)] == [
        (tokyo, datetime(2026, 3, 3, 0, tzinfo=UTC))
    ]


def test_window_closing_mid_campaign() -> None:
    rig = Rig([campaign(calendar=Calendar(KYIV, WORKDAYS))], now=ts(2026, 3, 2, 15, 59))
    first, second = rig.add("c", "100"), rig.add("c", "200")
    cid = call_id(rig.start())  # 17:59 Kyiv
    out = rig.call(cid, "NORMAL_CLEARING", talk=120, at=ts(2026, 3, 2, 16, 2))  # past 18:00
    assert of(out, FinishAttempt)[0].disposition.kind is K.OK  # the call in flight goes on
    assert rig.state(first).ended_with == "NORMAL_CLEARING"
    out = rig.run_timers(ts(2026, 3, 3, 12))
    assert [(s.member_id, s.at) for s in of(out, StartAttempt)] == [
        (second, datetime(2026, 3, 3, 7, tzinfo=UTC))  # Tue 09:00 Kyiv
    ]


def test_end_date_finishes_the_campaign_and_calls_in_flight_end() -> None:
    calendar = Calendar(KYIV, WORKDAYS, end=date(2026, 3, 2))
    rig = Rig([campaign(calendar=calendar)], now=ts(2026, 3, 2, 15))
    m = rig.add("c", "100")
    rig.add("c", "200")
    cid = call_id(rig.start())
    assert rig.engine.get_timer() == ts(2026, 3, 2, 22)  # Kyiv midnight
    out = rig.tick(ts(2026, 3, 2, 22))
    assert of(out, CampaignFinished) == [CampaignFinished("c", "calendar end date passed")]
    out = rig.call(cid, "USER_BUSY", at=ts(2026, 3, 2, 22, 1))
    assert of(out, FinishAttempt)[0].disposition.kind is K.RETRY
    assert of(out, OfferAgent) == [] and rig.state(m).attempts == 1


# --- §6 lines, priority, trunks, member order ---------------------------------------------------

AGENTS5 = ("a1", "a2", "a3", "a4", "a5")


def test_limit_counts_agent_legs_and_member_legs() -> None:
    rig = Rig([campaign(agents=AGENTS5, limit=2)], agents=AGENTS5)
    for n in range(5):
        rig.add("c", f"10{n}")
    out = rig.start()
    first, second = (o.order.call_id for o in of(out, OfferAgent))
    assert len(of(out, OfferAgent)) == 2  # two agent legs ringing
    assert of(rig.answer_agent(first), OfferAgent) == []  # a member leg now
    assert of(rig.answer_member(first), OfferAgent) == []
    out = rig.end(first, "NORMAL_CLEARING", talk=30, at=T0 + 40)  # a line frees
    assert len(of(out, OfferAgent)) == 1
    assert rig.engine.campaign("c").lines == 2


PRIORITIES = [
    # (priority of x, of y, agents, offers in order)
    (5, 0, ("a1",), ["x"]),
    (0, 5, ("a1",), ["y"]),
    (1, 1, ("a1", "a2", "a3", "a4"), ["x", "y", "x", "y"]),
]


@pytest.mark.parametrize(("px", "py", "agents", "expected"), PRIORITIES)
def test_shared_agents_by_priority_then_round_robin(
    px: int, py: int, agents: tuple[str, ...], expected: list[str]
) -> None:
    both = [campaign("x", agents, priority=px), campaign("y", agents, priority=py)]
    rig = Rig(both, agents=agents)
    for name in ("x", "y"):
        for n in range(4):
            rig.add(name, f"{name}{n}")
    out = rig.start()
    assert [o.order.campaign for o in of(out, OfferAgent)] == expected


def test_round_robin_turns_as_agents_free_up() -> None:
    both = [campaign("x", ("a1",)), campaign("y", ("a1",))]
    rig = Rig(both)
    for name in ("x", "y"):
        for n in range(3):
            rig.add(name, f"{name}{n}")
    served = [of(rig.start(), OfferAgent)[0].order]
    for turn in range(3):
        end = T0 + 100 * (turn + 1)
        rig.call(served[-1].call_id, "NORMAL_CLEARING", talk=30, at=end)
        served.append(of(rig.run_timers(end + 11), OfferAgent)[0].order)
    assert [o.campaign for o in served] == ["x", "y", "x", "y"]


def test_trunk_max_calls_over_campaigns_and_cps() -> None:
    agents = tuple(f"a{i}" for i in range(6))
    trunk = TrunkSettings("t", max_calls=3, cps=2.0)
    both = [campaign(n, agents, trunk="t", limit=10) for n in ("x", "y")]
    rig = Rig(both, agents=agents, trunks=[trunk])
    for name in ("x", "y"):
        for n in range(5):
            rig.add(name, f"{name}{n}")
    rig.start()
    out = rig.run_timers(T0 + 10)
    starts = [s.at.timestamp() - T0 for s in of(rig.log, StartAttempt)]
    assert starts == [0.0, 0.5, 1.0]  # cps 2 spacing, then the trunk is full
    assert of(out, OfferAgent)[-1:] and rig.engine.trunks["t"].lines == 3


SELECTION = [
    # (priority, next_call_at offset or None) per member in insertion order; leased order
    ([(0, None), (0, None), (0, None)], [0, 1, 2]),  # insertion order
    ([(0, None), (5, None), (1, None)], [1, 2, 0]),  # priority first
    ([(0, -10.0), (0, -20.0), (0, None)], [2, 1, 0]),  # earliest next attempt (null = now)
    ([(0, 50.0), (0, None), (1, 30.0)], [1]),  # not due yet: never leased
]


@pytest.mark.parametrize(("members", "order"), SELECTION)
def test_member_selection_order(members: list[tuple[int, float | None]], order: list[int]) -> None:
    source = InMemoryMembers()
    now = datetime.fromtimestamp(T0, UTC)
    ids = [
        source.add(
            "c",
            [f"{i}00"],
            priority=priority,
            next_call_at=None if at is None else now + timedelta(seconds=at),
        )
        for i, (priority, at) in enumerate(members)
    ]
    leased = []
    while (member := source.lease_next("c", now, owner="o", zones=None)) is not None:
        leased.append(ids.index(member.member_id))
    assert leased == order


def test_numbers_by_priority_then_least_recently_tried() -> None:
    rig = Rig()
    rig.add("c", "100", Number("200", priority=1))
    out = rig.start()
    assert [o.order.number for o in of(out, OfferAgent)] == ["200"]
