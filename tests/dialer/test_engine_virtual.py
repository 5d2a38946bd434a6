"""dialer/virtual.py: whole campaigns on the engine in virtual time (fake clock, simulated legs).

The 10,000-member run checks the invariants the crash test checks over real processes:
every member in exactly one final state, attempt counts add up, nobody is called after a
success; and it logs its wall time against a bound.
"""

from __future__ import annotations

import logging
import random
import time
from collections import Counter, defaultdict
from dataclasses import replace
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from engine_rig import T0, campaign

from sipdialer.dialer.agents import AgentSettings, AgentStatus
from sipdialer.dialer.calendar import Calendar, zone_of
from sipdialer.dialer.campaign import CampaignSettings, CampaignState, TrunkSettings
from sipdialer.dialer.commands import (
    AgentStatusChanged,
    CampaignRun,
    CampaignStop,
    MemberTerminated,
)
from sipdialer.dialer.dispositions import DispositionKind, StatusResult
from sipdialer.dialer.engine import DialerEngine
from sipdialer.dialer.member_source import InMemoryMembers
from sipdialer.dialer.virtual import AgentBehaviour, AttemptLog, VirtualDialer, trunk_behaviours

log = logging.getLogger(__name__)
K = DispositionKind

WALL_BOUND = 20.0
"Seconds of wall time the 10,000-member run may take (measured ~4.5 s on a loaded 2-core box)."

# First digit -> how the member ends with the default cause lists, max_retries 3.
EXPECTED_END = {
    "1": "NORMAL_CLEARING",
    "2": "MAX_TRY_COUNT",  # busy
    "3": "MAX_TRY_COUNT",  # no answer
    "4": "MAX_TRY_COUNT",  # rejected
    "5": "UNALLOCATED_NUMBER",  # 404: Error, its only number
    "6": "MAX_TRY_COUNT",  # 480
    "9": "MAX_TRY_COUNT",  # answered, but shorter than min_success_duration
}
EXPECTED_ATTEMPTS = {"1": 1, "2": 3, "3": 3, "4": 3, "5": 1, "6": 3, "9": 3}


def build(
    members: int,
    agents: int,
    *,
    settings: CampaignSettings | None = None,
    digits: str = "1111123456999",
    zones: tuple[str | None, ...] = (None,),
    seed: int = 5,
    failing_agent: bool = True,
) -> tuple[VirtualDialer, dict[int, str]]:
    ids = [f"a{i}" for i in range(agents)]
    agent_settings = [AgentSettings(id=i, wrap_up_time=5) for i in ids]
    settings = settings or campaign(agents=ids, limit=agents, retry_wait=300)
    settings = replace(settings, tiers=tuple((i, 1) for i in ids))
    engine = DialerEngine(agent_settings, now=T0)
    engine.add_campaign(settings, zones=zones)
    for agent_id in ids:
        engine.agents[agent_id].set_registered(T0, True)
        engine.agents[agent_id].set_status(T0, AgentStatus.AVAILABLE)
    source = InMemoryMembers()
    rnd = random.Random(seed)
    numbers: dict[int, str] = {}
    for n in range(members):
        number = f"{rnd.choice(digits)}{n:07d}"
        zone = rnd.choice(zones)
        numbers[source.add(settings.id, [number], name=f"m{n}", timezone=zone)] = number
    behaviour = (
        {"a0": AgentBehaviour(fail_every=4, fail_cause="NO_ANSWER")} if failing_agent else {}
    )
    return VirtualDialer(engine, source, agent_behaviour=behaviour, now=T0), numbers


def by_member(run: VirtualDialer) -> dict[int, list[AttemptLog]]:
    grouped: dict[int, list[AttemptLog]] = defaultdict(list)
    for attempt in run.attempts.values():
        grouped[attempt.member_id].append(attempt)
    return grouped


def check_invariants(run: VirtualDialer, refunding_agents: set[str] | None = None) -> None:
    attempts = by_member(run)
    for member_id, row in run.members.rows.items():
        state = row.state
        # Exactly one final state: ended, not leased, not waiting, never due again.
        assert state.ended_with is not None, member_id
        assert row.owner is None and not state.waiting and state.next_call_at is None
        mine = sorted(attempts[member_id], key=lambda a: a.started_at)
        assert all(a.disposition is not None for a in mine)  # every attempt closed
        verdicts = [a.final or a.disposition for a in mine]
        counted = sum(v.attempts_delta for v in verdicts if v is not None)
        assert state.attempts == counted == sum(n.attempts for n in state.numbers)
        ok = [a for a, v in zip(mine, verdicts, strict=True) if v and v.kind is K.OK]
        if ok:  # nobody is called after a success
            assert ok[-1] is mine[-1] and len(ok) == 1
            assert state.ended_with == "NORMAL_CLEARING"
        refunds = [a for a in mine if a.disposition and a.disposition.kind is K.REFUND]
        assert all(a.agent_id in (refunding_agents or {"a0"}) for a in refunds)


def test_ten_thousand_members_in_virtual_time() -> None:
    run, numbers = build(10_000, 20)
    started = time.perf_counter()
    run.run()
    wall = time.perf_counter() - started
    hours = (run.now - T0) / 3600
    log.warning(
        "virtual run: 10000 members, %d attempts, %d steps, %.1f virtual hours in %.2f s wall",
        len(run.attempts), run.steps, hours, wall,
    )  # fmt: skip
    print(f"\n10k virtual run: {len(run.attempts)} attempts, {hours:.1f} h virtual, {wall:.2f} s")
    assert wall < WALL_BOUND
    campaign_state = run.engine.campaign("c")
    assert campaign_state.state is CampaignState.FINISHED
    assert run.finished["c"][1] == "no member left"
    check_invariants(run)
    ends = {m: row.state.ended_with for m, row in run.members.rows.items()}
    for member_id, number in numbers.items():
        assert ends[member_id] == EXPECTED_END[number[0]], number
        assert run.members.rows[member_id].state.attempts == EXPECTED_ATTEMPTS[number[0]]
    refunds = [a for a in run.attempts.values() if a.disposition and a.disposition.kind is K.REFUND]
    assert refunds  # a0 fails every 4th offer: those members were offered again
    assert campaign_state.lines == 0 and not run.engine.calls


def test_same_dispositions_for_a_small_campaign() -> None:
    """The small run (what the loopback SIP test runs) ends every member like the large one."""
    run, numbers = build(40, 3, seed=11, failing_agent=False)
    run.run()
    check_invariants(run)
    got = Counter(row.state.ended_with for row in run.members.rows.values())
    want = Counter(EXPECTED_END[n[0]] for n in numbers.values())
    assert got == want


def test_wait_for_result_in_virtual_time() -> None:
    settings = campaign(agents=(), limit=10, retry_wait=300, wait_for_result=True, wrap_up_time=30)

    def result_for(attempt: AttemptLog) -> tuple[float, StatusResult] | None:
        if attempt.member_id % 3 == 0:
            return None  # no result: the deadline counts it as a failed try
        return 10.0, StatusResult(success=attempt.member_id % 3 == 1)

    run, _ = build(600, 10, settings=settings, digits="1", failing_agent=False)
    run.result_for = result_for
    run.run()
    check_invariants(run)
    for member_id, row in run.members.rows.items():
        want = "NORMAL_CLEARING" if member_id % 3 == 1 else "MAX_TRY_COUNT"
        assert row.state.ended_with == want
    assert run.late_results == 0


def test_office_hours_by_member_zone_in_virtual_time() -> None:
    """Members in three zones on a Kyiv 09:00-18:00 weekday calendar: every attempt starts
    inside the window in the member's own zone; the campaign spans days and finishes."""
    window = ((9 * 60, 18 * 60),)
    calendar = Calendar(ZoneInfo("Europe/Kyiv"), (window,) * 5 + ((), ()))
    zones = (None, "America/New_York", "Asia/Tokyo")
    settings = campaign(agents=(), calendar=calendar, limit=5, retry_wait=3600)
    run, _ = build(300, 5, settings=settings, zones=zones, failing_agent=False)
    run.run()
    check_invariants(run)
    assert run.engine.campaign("c").state is CampaignState.FINISHED
    for attempt in run.attempts.values():
        zone = run.members.rows[attempt.member_id].timezone
        moment = datetime.fromtimestamp(attempt.started_at, UTC)
        assert calendar.is_open(moment, zone_of(zone)), (zone, moment)
    started_zones = {run.members.rows[a.member_id].timezone for a in run.attempts.values()}
    assert started_zones == set(zones)


def test_two_campaigns_with_agents_coming_and_going() -> None:
    """Shared agents, two priorities, agent-leg failures, Break/Available toggles, manager
    terminates and a stop/run: the invariants still hold for every member of both."""
    ids = [f"a{i}" for i in range(6)]
    agent_settings = [AgentSettings(id=i, wrap_up_time=5, max_no_answer=2) for i in ids]
    tiers = [(i, 1) for i in ids]
    high = replace(
        campaign("hi", priority=5, limit=4, retry_wait=120, trunk="t"), tiers=tuple(tiers)
    )
    low = replace(
        campaign("lo", limit=6, retry_wait=120, wait_for_result=True, wrap_up_time=20, trunk="t"),
        tiers=tuple(tiers),
    )
    trunk = TrunkSettings("t", max_calls=5, cps=0.5)
    engine = DialerEngine(agent_settings, [high, low], trunks=[trunk], now=T0)
    for agent_id in ids:
        engine.agents[agent_id].set_registered(T0, True)
        engine.agents[agent_id].set_status(T0, AgentStatus.AVAILABLE)
    source = InMemoryMembers()
    rnd = random.Random(7)
    for n in range(400):
        name = "hi" if n % 2 else "lo"
        source.add(name, [f"{rnd.choice('1112345679')}{n:07d}", f"8{n:07d}"])  # 8: answers
    behaviour = {
        "a1": AgentBehaviour(fail_every=3, fail_cause="USER_BUSY", fail_after=1),
        "a2": AgentBehaviour(fail_every=2, fail_cause="NO_ANSWER"),
    }

    def result_for(attempt: AttemptLog) -> tuple[float, StatusResult] | None:
        pick = attempt.member_id % 4
        if pick == 0:
            return None
        return float(pick * 5), StatusResult(success=pick == 1, next_after_sec=30)

    run = VirtualDialer(engine, source, agent_behaviour=behaviour, result_for=result_for, now=T0)
    for k in range(40):
        at = T0 + 60 * k
        agent_id = ids[k % len(ids)]
        run.schedule(at, AgentStatusChanged(agent_id, AgentStatus.BREAK))
        run.schedule(at + 45, AgentStatusChanged(agent_id, AgentStatus.AVAILABLE))
        run.schedule(at + 7, MemberTerminated("hi" if k % 2 else "lo", rnd.randint(1, 400)))
    run.schedule(T0 + 300, CampaignStop("lo"))
    run.schedule(T0 + 900, CampaignRun("lo"))
    for k in range(100):  # nobody stays on Break for good after max_no_answer
        run.schedule(T0 + 3000 + 600 * k, AgentStatusChanged("a2", AgentStatus.AVAILABLE))
    run.run(until=T0 + 3000 + 600 * 100)
    assert {c.state for c in engine.campaigns.values()} == {CampaignState.FINISHED}
    check_invariants(run, refunding_agents={"a1", "a2"})
    stopped = [
        a
        for a in run.attempts.values()
        if a.campaign_id == "lo" and T0 + 300 < a.started_at < T0 + 900
    ]
    assert stopped == []  # no new call while stopped
    ends = Counter(row.state.ended_with for row in source.rows.values())
    assert ends["MANAGER_REQUEST"] > 0 and ends["NORMAL_CLEARING"] > 0
    # cps 0.5 spaces fresh starts by 2 s; a re-offer after an agent-leg failure keeps its
    # line and starts at once.
    refunded = {
        (a.member_id, a.ended_at)
        for a in run.attempts.values()
        if a.disposition and a.disposition.kind is K.REFUND
    }
    fresh = sorted(
        a.started_at for a in run.attempts.values() if (a.member_id, a.started_at) not in refunded
    )
    assert min(b - a for a, b in zip(fresh, fresh[1:], strict=False)) >= 2.0 - 1e-6


# The loopback trunk simulator's table (simulate.behaviour), min_success_duration 3 s.
TRUNK_END = {
    "0": "NORMAL_CLEARING",  # 401 challenge, then answered for 5 s
    "1": "NORMAL_CLEARING",  # 5 s
    "2": "MAX_TRY_COUNT",
    "3": "MAX_TRY_COUNT",  # rings until our CANCEL at the route's call_timeout
    "4": "MAX_TRY_COUNT",
    "5": "UNALLOCATED_NUMBER",
    "6": "MAX_TRY_COUNT",
    "7": "MEMBER_EXPIRED",  # 503: Minus, never counted, so only expire ends it
    "8": "NORMAL_CLEARING",  # early media, then 4 s
    "9": "MAX_TRY_COUNT",  # 2 s: too short
}


def test_trunk_simulator_table_in_virtual_time() -> None:
    """The same numbers the loopback SIP run dials, judged the same way (EXPECTED: TRUNK_END)."""
    settings = campaign(agents=(), limit=4, retry_wait=120, min_success_duration=3)
    run, numbers = build(200, 4, settings=settings, digits="0123456789", failing_agent=False)
    expire = datetime.fromtimestamp(T0 + 7200, UTC)
    for member_id, number in numbers.items():
        if number[0] == "7":
            row = run.members.rows[member_id]
            run.members.save(member_id, replace(row.state, expire=expire))
    run.behaviours = trunk_behaviours()
    run.run()
    check_invariants(run)
    for member_id, number in numbers.items():
        state = run.members.rows[member_id].state
        assert state.ended_with == TRUNK_END[number[0]], number
        if number[0] == "7":
            assert state.attempts == 0 and state.numbers[0].attempts == 0
