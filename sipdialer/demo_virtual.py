"""``sipdialer demo --fast``: the demo's campaign on the engine alone, in virtual time.

Theory of operation
-------------------
:func:`run_virtual` runs the configuration and members of the SIP demo through
:class:`~sipdialer.dialer.virtual.VirtualDialer`: the engine on a simulated clock, members
in memory (``InMemoryMembers``), member legs judged by the trunk simulator's own table
(``virtual.trunk_behaviours``, so a number ends as it would over loopback SIP), agents
answering after 0.5 s. No SIP, no store: the report is built from the virtual attempts and
checked by the same :func:`~sipdialer.demo.audit`. The clock advances in steps of
``VIRTUAL_STEP`` virtual seconds; frames go to the screen at most every
``VIRTUAL_FRAME_EVERY`` wall seconds, since a virtual hour takes a few seconds.
"""

from __future__ import annotations

import itertools
import math
import time
from typing import Any

from sipdialer.demo import (
    CAMPAIGN,
    TRUNK,
    AuditAttempt,
    MemberFacts,
    audit,
    demo_config,
    demo_members,
    kinds_by_number,
)
from sipdialer.demo_run import DemoResult, Frame, FrameSink, InfoSink, new_members
from sipdialer.dialer.agent_table import AgentSettings
from sipdialer.dialer.agents import AgentStatus
from sipdialer.dialer.calendar import Calendar
from sipdialer.dialer.campaign import CampaignSettings, TrunkSettings
from sipdialer.dialer.engine import DialerEngine
from sipdialer.dialer.member_source import InMemoryMembers
from sipdialer.dialer.views import AgentView, CampaignView
from sipdialer.dialer.virtual import AgentBehaviour, VirtualDialer, trunk_behaviours
from sipdialer.report import AttemptFacts, build_report

VIRTUAL_STEP = 5.0
"Virtual seconds run between two frames."
VIRTUAL_LIMIT = 30 * 86400.0
"Virtual seconds after which a campaign that has not finished is given up."
VIRTUAL_FRAME_EVERY = 0.1
"Wall seconds between two frames of a virtual run (it runs far faster than a screen)."
VIRTUAL_RECENT = 8
"Ended calls a virtual frame carries (the latest)."


def run_virtual(
    agents: int,
    count: int,
    *,
    seed: int = 1,
    on_frame: FrameSink | None = None,
    on_info: InfoSink | None = None,
) -> DemoResult:
    """The same campaign on the engine alone, on a simulated clock (module docstring)."""
    started = time.monotonic()
    config = demo_config(agents, store_url="sqlite://", trunk_port=5060, rtp_ports="20000-20099")
    members = demo_members(count, seed)
    t0 = time.time()
    cfg = config.campaign(CAMPAIGN)
    settings = CampaignSettings.from_config(
        cfg, Calendar.from_config(config.calendar(cfg.calendar)), campaign_id=CAMPAIGN,
        trunk=TRUNK,
    )  # fmt: skip
    engine = DialerEngine(
        [AgentSettings.from_config(a) for a in config.agents],
        trunks=[TrunkSettings.from_config(t) for t in config.trunks],
        now=t0,
    )
    engine.add_campaign(settings, zones=frozenset({None}))
    for agent in engine.agents:
        agent.set_registered(t0, True)
        agent.set_status(t0, AgentStatus.AVAILABLE)
    source = InMemoryMembers()
    for m, new in zip(members, new_members(members), strict=True):
        source.add(CAMPAIGN, new.numbers, name=m.name, variables=new.variables)
    call_timeout = float(config.routes[0].variables.get("call_timeout", 60))
    sim = VirtualDialer(
        engine, source, behaviours=trunk_behaviours(call_timeout=call_timeout),
        agent_behaviour={a.id: AgentBehaviour(answer_after=0.5) for a in config.agents},
        now=t0,
    )  # fmt: skip
    if on_info is not None:
        on_info({"clock": "virtual (no SIP, no store: the engine alone, members in memory)"})
    watch = _VirtualWatch()
    horizon = t0
    shown_at = -math.inf
    while CAMPAIGN not in sim.finished and horizon - t0 < VIRTUAL_LIMIT:
        horizon += VIRTUAL_STEP
        steps = sim.steps
        sim.run(until=horizon)
        idle = sim.steps == steps and engine.get_timer() is None
        last = CAMPAIGN in sim.finished or idle
        if on_frame is not None and (last or time.monotonic() - shown_at >= VIRTUAL_FRAME_EVERY):
            shown_at = time.monotonic()
            on_frame(watch.frame(sim, horizon - t0))
        if idle:
            break  # nothing queued and no timer: nothing will ever happen again
    facts = [_virtual_facts(log) for log in sim.attempts.values()]
    rows = list(source.rows.values())
    counts = _virtual_counts(source)
    ended_with: dict[str, int] = {}
    for row in rows:
        if row.state.ended_with is not None:
            ended_with[row.state.ended_with] = ended_with.get(row.state.ended_with, 0) + 1
    state = "finished" if CAMPAIGN in sim.finished else engine.campaigns[CAMPAIGN].state.value
    report = build_report(CAMPAIGN, CAMPAIGN, state, counts, ended_with, facts)
    member_facts = [
        MemberFacts(
            row.member_id,
            "ended" if row.state.ended else ("leased" if row.owner else "ready"),
            row.state.ended_with,
            row.state.attempts,
            row.state.next_call_at is not None,
            row.state.numbers[0].number,
        )  # fmt: skip
        for row in rows
    ]
    attempts = [
        AuditAttempt(log.member_id, fact, log.disposition is not None)
        for log, fact in zip(sim.attempts.values(), facts, strict=True)
    ]
    end = sim.finished.get(CAMPAIGN, (sim.now, ""))[0]
    return DemoResult(
        mode="virtual",
        finished=CAMPAIGN in sim.finished,
        wall_seconds=time.monotonic() - started,
        campaign_seconds=end - t0,
        report=report,
        audit=audit(member_facts, attempts, kinds_by_number(members)),
        info={"clock": "virtual", "steps": str(sim.steps)},
    )


def _virtual_facts(log: Any) -> AttemptFacts:
    verdict = log.final or log.disposition
    result = log.result
    return AttemptFacts(
        cause=None if result is None else result.cause,
        disposition=None if verdict is None else verdict.kind.value,
        counted=0 if verdict is None else verdict.attempts_delta,
        talk_seconds=0.0 if result is None else result.talk_seconds,
        bridged=result is not None and result.bridged_at is not None,
        agent_id=log.agent_id,
    )


def _virtual_counts(source: InMemoryMembers) -> dict[str, int]:
    counts = {"ready": 0, "leased": 0, "waiting": 0, "ended": 0}
    for row in source.rows.values():
        if row.state.ended:
            counts["ended"] += 1
        elif row.owner is not None:
            counts["leased"] += 1
        elif row.state.waiting:
            counts["waiting"] += 1
        else:
            counts["ready"] += 1
    return counts


class _VirtualWatch:
    """Frames of a virtual run; remembers which attempts it has seen end."""

    def __init__(self) -> None:
        self.known = 0
        self.pending: dict[str, None] = {}  # attempts not ended yet, in start order

    def frame(self, sim: VirtualDialer, elapsed: float) -> Frame:
        for call_id in itertools.islice(sim.attempts, self.known, None):
            self.pending[call_id] = None
        self.known = len(sim.attempts)
        done = [cid for cid in self.pending if sim.attempts[cid].result is not None]
        for call_id in done:
            del self.pending[call_id]
        engine = sim.engine
        campaign = engine.campaigns[CAMPAIGN]
        agents = [
            AgentView(
                a.id, a.settings.name, a.registered, a.status.value, a.state.value, sim.now, a.calls
            )  # fmt: skip
            for a in engine.agents
        ]
        view = CampaignView(
            id=CAMPAIGN, name=CAMPAIGN,
            state="finished" if CAMPAIGN in sim.finished else campaign.state.value,
            calendar_open=True, lines_in_use=campaign.lines, limit=campaign.settings.limit,
            counts=_virtual_counts(sim.members), in_flight=len(engine.calls),
        )  # fmt: skip
        ended = [_ended_event(sim.attempts[cid]) for cid in done[-VIRTUAL_RECENT:]]
        return Frame(elapsed, agents, view, ended)


def _ended_event(log: Any) -> dict[str, Any]:
    """A runner-style ``call_ended`` event for a virtual attempt."""
    verdict = log.final or log.disposition
    return {
        "type": "call_ended",
        "call": {"agent": log.agent_id, "number": log.number, "member": log.member_id},
        "cause": log.result.cause, "talk_seconds": log.result.talk_seconds,
        "disposition": "" if verdict is None else verdict.kind.value,
    }  # fmt: skip
