"""A hand-driven runner for the pure engine: store commands executed, telephony left to tests.

``Rig.feed(event, now)`` hands one event to the engine and executes what comes back the way
the runner does: ``LeaseMember`` is answered from an :class:`InMemoryMembers` at once
(``MemberLeased`` fed back, with ``next_due``/``remaining`` when empty), ``SaveMember`` /
``EndMember`` / ``ExpireMembers`` go to the source. Every command is returned (and kept in
``log``) so that tests can assert on the telephony ones (``OfferAgent``, ``DialMember``...).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from sipdialer.calls.events import (
    AgentAnswered,
    AgentFailed,
    CallEnded,
    CallResult,
    MemberAnswered,
    Side,
)
from sipdialer.config import CampaignConfig
from sipdialer.dialer.agents import AgentSettings, AgentStatus
from sipdialer.dialer.calendar import Calendar
from sipdialer.dialer.campaign import CampaignSettings, TrunkSettings, utc
from sipdialer.dialer.commands import (
    Command,
    EndMember,
    EngineEvent,
    ExpireMembers,
    LeaseMember,
    MemberLeased,
    OfferAgent,
    SaveMember,
)
from sipdialer.dialer.dispositions import Number
from sipdialer.dialer.engine import DialerEngine
from sipdialer.dialer.member_source import InMemoryMembers

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC).timestamp()
"Monday 2026-03-02 10:00 UTC."
OWNER = "rig"


def campaign(
    name: str = "c",
    agents: Sequence[str | tuple[str, int]] = ("a1",),
    calendar: Calendar | None = None,
    trunk: str | None = None,
    **fields: Any,
) -> CampaignSettings:
    """Campaign settings from config keys (defaults of CampaignConfig), always open."""
    tiers = [{"id": a} if isinstance(a, str) else {"id": a[0], "level": a[1]} for a in agents]
    cfg = CampaignConfig.model_validate(
        {"name": name, "calendar": "cal", "agents": tiers, **fields}
    )
    return CampaignSettings.from_config(
        cfg, calendar or Calendar.always_open(), campaign_id=name, trunk=trunk
    )


def of(commands: Iterable[Command], kind: type[Any]) -> list[Any]:
    return [c for c in commands if isinstance(c, kind)]


def kinds(commands: Iterable[Command]) -> list[str]:
    """Command class names, agent publications left out."""
    return [type(c).__name__ for c in commands if type(c).__name__ != "PublishAgent"]


class Rig:
    def __init__(
        self,
        campaigns: Sequence[CampaignSettings] = (),
        agents: Sequence[str | AgentSettings] = ("a1",),
        *,
        trunks: Sequence[TrunkSettings] = (),
        now: float = T0,
        login: bool = True,
        zones: dict[str, Iterable[str | None]] | None = None,
    ) -> None:
        settings = [a if isinstance(a, AgentSettings) else AgentSettings(id=a) for a in agents]
        self.engine = DialerEngine(settings, (), trunks=trunks, now=now)
        for one in campaigns or [campaign()]:
            self.engine.add_campaign(one, zones=(zones or {}).get(one.id, (None,)))
        self.members = InMemoryMembers()
        self.now = now
        self.log: list[Command] = []
        self._logged_in = [s.id for s in settings] if login else []

    def start(self) -> list[Command]:
        """Register and make Available the agents (if ``login``) all at once, then dispatch."""
        for agent_id in self._logged_in:
            agent = self.engine.agents[agent_id]
            agent.set_registered(self.now, True)
            agent.set_status(self.now, AgentStatus.AVAILABLE)
        return self.tick()

    def add(self, campaign_id: str = "c", *numbers: str | Number, **fields: Any) -> int:
        return self.members.add(campaign_id, numbers or ("100",), **fields)

    # --- driving -------------------------------------------------------------------------------

    def feed(self, event: EngineEvent, now: float | None = None) -> list[Command]:
        self.now = self.now if now is None else now
        return self._run(self.engine.handle(event, self.now))

    def tick(self, now: float | None = None) -> list[Command]:
        self.now = self.now if now is None else now
        return self._run(self.engine.handle_timer(self.now))

    def run_timers(self, until: float) -> list[Command]:
        """Fire every engine timer up to ``until`` (no call events), then tick at ``until``."""
        out: list[Command] = []
        while (timer := self.engine.get_timer()) is not None and timer <= until:
            out += self.tick(max(self.now, timer))
        return out + self.tick(until)

    def _run(self, commands: list[Command]) -> list[Command]:
        queue = deque(commands)
        out: list[Command] = []
        while queue:
            command = queue.popleft()
            out.append(command)
            match command:
                case LeaseMember(campaign_id, agent_id, zones):
                    moment = utc(self.now)
                    leased = self.members.lease_next(campaign_id, moment, owner=OWNER, zones=zones)
                    answer = MemberLeased(
                        campaign_id,
                        agent_id,
                        leased,
                        next_due=None if leased else self.members.next_due(campaign_id),
                        remaining=None if leased else self.members.remaining(campaign_id, moment),
                        zones=None if leased else self.members.zones(campaign_id),
                    )
                    queue.extend(self.engine.handle(answer, self.now))
                case SaveMember(_, member_id, state, _):
                    if self.members.rows[member_id].owner == OWNER:
                        self.members.release(member_id, state, owner=OWNER)
                    else:
                        self.members.save(member_id, state)
                case EndMember(_, member_id, cause):
                    row = self.members.rows[member_id]
                    if row.owner is None:
                        self.members.save(member_id, replace(row.state, ended_with=cause))
                case ExpireMembers(campaign_id, moment):
                    self.members.expire_members(campaign_id, moment)
        self.log += out
        return out

    # --- the calls layer, by hand ----------------------------------------------------------------

    def offers(self, commands: Iterable[Command] | None = None) -> list[OfferAgent]:
        return of(self.log if commands is None else commands, OfferAgent)

    def answer_agent(self, call_id: str, at: float | None = None) -> list[Command]:
        return self.feed(AgentAnswered(call_id, 0.0), at)

    def answer_member(self, call_id: str, at: float | None = None) -> list[Command]:
        return self.feed(MemberAnswered(call_id, 0.0), at)

    def fail_agent(self, call_id: str, cause: str, at: float | None = None) -> list[Command]:
        """The agent leg fails (AgentFailed, then CallEnded with the agent's cause)."""
        now = self.now if at is None else at
        out = self.feed(AgentFailed(call_id, now, cause, None), now)
        result = CallResult(call_id, now, now, cause, 0, None, Side.AGENT, agent_cause=cause)
        return out + self.feed(CallEnded(call_id, now, result), now)

    def end(
        self,
        call_id: str,
        cause: str,
        *,
        at: float | None = None,
        talk: float | None = None,
        agent_answered: bool = True,
    ) -> list[Command]:
        """CallEnded with ``cause``; ``talk`` seconds bridged before ``at`` (None: no bridge)."""
        now = self.now if at is None else at
        result = CallResult(
            call_id,
            created_at=now,
            ended_at=now,
            cause=cause,
            cause_q850=0,
            sip_code=None,
            hangup_by=Side.MEMBER,
            agent_answered_at=now if agent_answered else None,
            bridged_at=None if talk is None else now - talk,
        )
        return self.feed(CallEnded(call_id, now, result), now)

    def call(
        self, call_id: str, cause: str, *, talk: float | None = None, at: float | None = None
    ) -> list[Command]:
        """Agent answers, member answers (if ``talk``), call ends with ``cause``."""
        out = self.answer_agent(call_id)
        if talk is not None:
            out += self.answer_member(call_id)
        return out + self.end(call_id, cause, at=at, talk=talk)

    def state(self, member_id: int) -> Any:
        return self.members.rows[member_id].state
