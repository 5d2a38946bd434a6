"""The progressive dialer engine: events + ``now`` in, commands out (dialer-semantics §1–6).

Theory of operation
-------------------
The engine owns decisions and nothing else: which campaign may dial, which agent takes the
next call, what happens to a member after an attempt. It holds the agents
(:class:`~sipdialer.dialer.agents.Agents`), a :class:`~sipdialer.dialer.campaign.Campaign`
per campaign, the attempts in flight and the members waiting for a status result. Members
themselves live in the store: the engine leases them one at a time (``LeaseMember`` ->
``MemberLeased``) and hands each back with ``SaveMember``.

Inputs: :meth:`DialerEngine.handle` takes one event (the calls layer's ``calls.events``,
or one of ``dialer.commands``' events) and :meth:`DialerEngine.handle_timer` the clock;
both return the commands to execute in order, and both end with a *dispatch*. Call
:meth:`DialerEngine.get_timer` after each and wake at that time (or at the next event).

One attempt, agent first (§1)::

    dispatch:   reserve agent, take a line ........ LeaseMember(zones)
    MemberLeased(member) ...........................StartAttempt, OfferAgent(CallOrder)
    AgentAnswered ................................. DialMember
    MemberAnswered ................................ Bridge
    CallEnded(result) ............................. FinishAttempt, SaveMember (+ wrap-up)
    AgentFailed / CallEnded without the agent ..... refund: StartAttempt + OfferAgent to
                                                    another agent at once, or SaveMember

Dispatch: campaigns in ``priority`` order (higher first); within one priority, campaigns
take turns, one reservation each per pass, and the first of the turn rotates on every
dispatch (fair round robin). A campaign may reserve when it is running, not idle, has a
free line (``lines < limit``), its trunk has a free line and cps allows, some member zone
is open in its calendar, and one of its agents is eligible: the lowest tier level with an
eligible agent, then ``strategy`` (longest idle by default). An agent shared by campaigns
thus goes to the higher priority first, fairly among equals.

Idle and finished: an empty ``MemberLeased`` sends the campaign idle until the next member
is due (``next_due``), a zone opens, or a disposition schedules one of its members; with
``remaining == 0`` and nothing in flight it finishes (``ExpireMembers``,
``CampaignFinished``). Past the calendar's end date it finishes at once; calls in flight
still end and are judged.

Member zones (decision): the engine is *given* each campaign's distinct member time zones
when the campaign is loaded (``add_campaign(..., zones=source.zones(id))``) and grows the
set with ``MembersChanged(zones=...)`` when members are added or edited; it never asks the
store. Each ``LeaseMember`` carries the subset whose calendar window is open now (``None``
standing for members without a zone, judged in the calendar's zone), so the store filters
by a plain ``timezone IN (...)``. An empty ``MemberLeased`` carries ``next_due`` and
``remaining`` (see ``member_source``); a campaign without members finishes at once, and
the runner sends ``CampaignRun`` again when members arrive with ``autoRun``. With members
remaining it also carries the source's ``zones``: members added behind the engine's back
(``sipdialer import``, another node) may be in a zone it never saw, which it learns there
(and looks again at once) instead of never listing that zone.

Clock: ``now`` is float Unix seconds (wall time in the runner, any float in virtual time).
Agents run on the same floats; dispositions and calendars get aware UTC datetimes.
Event ``at`` fields (the calls layer's clock) are not read. Pure code: no IO, no clock.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from sipdialer.calls.events import (
    AgentAnswered,
    AgentFailed,
    AgentRinging,
    Bridged,
    CallEnded,
    CallEvent,
    MemberAnswered,
    MemberRinging,
)
from sipdialer.dialer.agents import Agent, Agents, AgentSettings, AgentState, AgentStatus
from sipdialer.dialer.campaign import (
    EMPTY_RECHECK,
    Campaign,
    CampaignSettings,
    CampaignState,
    Trunk,
    TrunkSettings,
    utc,
)
from sipdialer.dialer.commands import (
    AgentRegistered,
    AgentStatusChanged,
    CampaignFinished,
    CampaignRun,
    CampaignStop,
    Command,
    EngineEvent,
    ExpireMembers,
    LeaseMember,
    MemberLeased,
    MembersChanged,
    MemberStatusReceived,
    MemberTerminated,
    PublishAgent,
    ReleaseAgent,
)
from sipdialer.dialer.engine_calls import CallSteps

__all__ = ["DialerEngine", "EngineError", "UnknownCampaign"]


class EngineError(Exception):
    """Base of the engine's errors (the API maps them to HTTP codes)."""


class UnknownCampaign(EngineError, KeyError):
    def __init__(self, campaign_id: str) -> None:
        super().__init__(f"no campaign {campaign_id!r}")
        self.campaign_id = campaign_id


@dataclass(frozen=True, slots=True)
class _Group:
    priority: int
    campaigns: list[Campaign]


class DialerEngine(CallSteps):
    """The pure dialer: feed events and the clock, execute the returned commands."""

    def __init__(
        self,
        agents: Iterable[AgentSettings] = (),
        campaigns: Iterable[CampaignSettings] = (),
        *,
        trunks: Iterable[TrunkSettings] = (),
        now: float = 0.0,
        call_id_prefix: str = "call",
    ) -> None:
        """Agents start LoggedOut and unregistered; campaigns running with member zones
        ``{None}`` (use :meth:`add_campaign` for another state or zones)."""
        super().__init__(call_id_prefix)
        self.agents = Agents.from_settings(agents, now)
        self.campaigns: dict[str, Campaign] = {}
        self.trunks: dict[str, Trunk] = {t.name: Trunk(t) for t in trunks}
        self._rotation: dict[int, int] = {}
        self._agent_due = -math.inf
        "Earliest agent deadline as of the last get_timer(); -inf: unknown."
        self._free: set[str] = {a.id for a in self.agents if a.eligible(now)}
        "Eligible agents, kept from the agents' events so dispatch scans no agent table."
        for settings in campaigns:
            self.add_campaign(settings)

    # --- configuration -----------------------------------------------------------------------

    def add_campaign(
        self,
        settings: CampaignSettings,
        *,
        state: CampaignState = CampaignState.RUNNING,
        zones: Iterable[str | None] = (None,),
    ) -> Campaign:
        """Load a campaign with its state (from the store) and its members' distinct zones."""
        if settings.id in self.campaigns:
            raise ValueError(f"campaign {settings.id!r} already exists")
        campaign = Campaign(settings, state=state, zones=zones)
        self.campaigns[settings.id] = campaign
        return campaign

    def campaign(self, campaign_id: str) -> Campaign:
        try:
            return self.campaigns[campaign_id]
        except KeyError:
            raise UnknownCampaign(campaign_id) from None

    # --- inputs --------------------------------------------------------------------------------

    def handle(self, event: EngineEvent, now: float) -> list[Command]:
        """Take one event at ``now``; return the commands to execute, in order.

        Raises NotWaiting (HTTP 409) for a status result of a member that is not waiting,
        UnknownCampaign, KeyError for an unknown agent or call.
        """
        self._check(event)  # refuse before anything moves: an error leaves no half-done step
        out: list[Command] = []
        timers_ran = self._agent_timers(now)
        if isinstance(event, AgentRinging | MemberRinging | Bridged) and not timers_ran:
            return out  # progress only: nothing changed that a dispatch could use
        if isinstance(event, CallEvent):
            self._call_event(event, now, out)
        else:
            self._other_event(event, now, out)
        self._dispatch(now, out)
        return out

    def handle_timer(self, now: float) -> list[Command]:
        """Run whatever is due at ``now`` (wrap-ups, delays, result deadlines, campaigns
        waking, calendar openings and end dates), then dispatch. Spurious calls are harmless."""
        out: list[Command] = []
        self._agent_timers(now)
        self._result_deadlines(now, out)
        self._dispatch(now, out)
        return out

    def get_timer(self) -> float | None:
        """The next time :meth:`handle_timer` has work, or None."""
        times: list[float] = []
        agent_timer = self.agents.get_timer()
        self._agent_due = math.inf if agent_timer is None else agent_timer
        if agent_timer is not None:
            times.append(agent_timer)
        result_timer = self._result_timer()
        if result_timer is not None:
            times.append(result_timer)
        for campaign in self.campaigns.values():
            if campaign.state is not CampaignState.RUNNING:
                continue
            if math.isfinite(campaign.idle_until) and campaign.idle_until > self._last_dispatch:
                times.append(campaign.idle_until)
            opening = campaign.next_opening(self._last_dispatch)
            if opening is not None:
                times.append(opening)
            ends = campaign.ends_at()
            if ends is not None:
                times.append(ends)
        times.extend(
            t.next_start
            for t in self.trunks.values()
            if t.blocked and t.next_start > self._last_dispatch
        )
        return min(times, default=None)

    def _check(self, event: EngineEvent) -> None:
        """Raise what ``handle`` would raise for ``event``, before any state changes."""
        if isinstance(event, CallEvent):
            if event.call_id not in self.calls:
                raise KeyError(f"no call {event.call_id!r} in flight")
        elif isinstance(event, AgentStatusChanged | AgentRegistered):
            if event.agent_id not in self.agents:
                raise KeyError(f"no agent {event.agent_id!r}")
            if isinstance(event, AgentStatusChanged):
                AgentStatus(event.status)  # ValueError for an unknown status string
        else:
            self.campaign(event.campaign_id)
            if isinstance(event, MemberStatusReceived):
                self._check_waiting(event)

    def _agent_timers(self, now: float) -> bool:
        """End due wrap-ups and delays; False when get_timer() said none was due (no scan)."""
        due = now >= self._agent_due
        if due:
            self.agents.handle_timer(now)
        self._agent_due = -math.inf  # unknown until the next get_timer()
        return due

    def _call_event(self, event: CallEvent, now: float, out: list[Command]) -> None:
        match event:
            case AgentRinging() | MemberRinging() | Bridged():
                pass  # recorded by the calls layer's CallResult; nothing to decide
            case AgentAnswered():
                self._agent_answered(event, now, out)
            case AgentFailed():
                self._agent_failed(event, now, out)
            case MemberAnswered():
                self._member_answered(event, now, out)
            case CallEnded():
                self._call_ended(event, now, out)
            case _:
                raise TypeError(f"unknown call event {event!r}")

    def _other_event(self, event: EngineEvent, now: float, out: list[Command]) -> None:
        match event:
            case MemberLeased():
                self._member_leased(event, now, out)
            case AgentStatusChanged(agent_id, status):
                self.agents[agent_id].set_status(now, status)
            case AgentRegistered(agent_id, registered):
                self.agents[agent_id].set_registered(now, registered)
            case MemberStatusReceived():
                self._status_received(event, now, out)
            case CampaignRun(campaign_id):
                campaign = self.campaign(campaign_id)
                campaign.state = CampaignState.RUNNING
                campaign.wake()
            case CampaignStop(campaign_id):
                self.campaign(campaign_id).state = CampaignState.STOPPED
            case MemberTerminated():
                self._terminate(event, now, out)
            case MembersChanged(campaign_id, zones):
                campaign = self.campaign(campaign_id)
                campaign.zones.update(zones)
                campaign.wake()
            case _:
                raise TypeError(f"unknown engine event {event!r}")

    # --- leases --------------------------------------------------------------------------------

    def _member_leased(self, event: MemberLeased, now: float, out: list[Command]) -> None:
        campaign = self.campaign(event.campaign_id)
        campaign.pending_leases -= 1
        agent = self.agents[event.agent_id]
        if event.member is None:
            self._free_line(campaign)
            self._release_reservation(agent, now, out)
            self._lease_was_empty(campaign, event, now, out)
            return
        self._start_attempt(campaign, agent, event.member, now, out)

    def _lease_was_empty(
        self, campaign: Campaign, event: MemberLeased, now: float, out: list[Command]
    ) -> None:
        if campaign.state is not CampaignState.RUNNING:
            return
        if event.remaining == 0 and not campaign.busy:
            self._finish(campaign, now, "no member left", out)
            return
        if event.zones is not None and not event.zones <= campaign.zones:
            # Members in a zone the engine never saw (added behind its back): learn the
            # zone and look again now, as MembersChanged would have it.
            campaign.zones.update(event.zones)
            campaign.wake()
            return
        if event.remaining == 0:
            campaign.idle_until = math.inf  # the calls in flight wake it when they end
        elif event.next_due is not None and event.next_due.timestamp() > now:
            campaign.idle_until = event.next_due.timestamp()
        elif event.next_due is None and event.remaining is not None and campaign.busy:
            # Whatever is left is in the engine's hands: its dispositions wake the campaign.
            campaign.idle_until = math.inf
        else:
            # Due members exist but not in an open zone (a zone opening wakes it), or the
            # source cannot tell: look again later.
            campaign.idle_until = now + EMPTY_RECHECK
        campaign.idle_zones = campaign.open_zones(now)

    def _release_reservation(self, agent: Agent, now: float, out: list[Command]) -> None:
        if agent.state is AgentState.RESERVED:
            agent.release(now)
            out.append(ReleaseAgent(agent.id))

    def _finish(self, campaign: Campaign, now: float, reason: str, out: list[Command]) -> None:
        campaign.state = CampaignState.FINISHED
        campaign.finished_reason = reason
        out.append(ExpireMembers(campaign.id, utc(now)))
        out.append(CampaignFinished(campaign.id, reason))

    # --- dispatch ------------------------------------------------------------------------------

    def _dispatch(self, now: float, out: list[Command]) -> None:
        """Reserve agents and ask for members while some campaign may dial (module doc)."""
        self._last_dispatch = now
        self._drain_agent_events(out)
        for campaign in self.campaigns.values():
            if campaign.state is CampaignState.RUNNING and campaign.ended_by_calendar(now):
                self._finish(campaign, now, "calendar end date passed", out)
        if not self._free:
            return  # no eligible agent: nothing to reserve (the usual case under load)
        for group in self._groups():
            start = self._rotation.get(group.priority, 0) % len(group.campaigns)
            order = group.campaigns[start:] + group.campaigns[:start]
            self._rotation[group.priority] = start + 1
            active = [c for c in order if self._may_reserve(c, now)]
            while active:
                active = [c for c in active if self._reserve_one(c, now, out)]
        self._drain_agent_events(out)

    def _groups(self) -> list[_Group]:
        by_priority: dict[int, list[Campaign]] = {}
        for campaign in self.campaigns.values():
            if campaign.state is CampaignState.RUNNING:
                by_priority.setdefault(campaign.settings.priority, []).append(campaign)
        return [_Group(p, by_priority[p]) for p in sorted(by_priority, reverse=True)]

    def _may_reserve(self, campaign: Campaign, now: float) -> bool:
        if campaign.lines >= campaign.settings.limit:
            return False
        if now < campaign.idle_until:
            if campaign.open_zones(now) == campaign.idle_zones:
                return False
            campaign.wake()  # a zone opened (or closed): ask again
        return True

    def _reserve_one(self, campaign: Campaign, now: float, out: list[Command]) -> bool:
        """One reservation for ``campaign``; False when it cannot take one more now."""
        settings = campaign.settings
        if campaign.lines >= settings.limit or campaign.state is not CampaignState.RUNNING:
            return False
        trunk = self.trunks.get(settings.trunk) if settings.trunk else None
        if trunk is not None and not trunk.may_start(now):
            return False
        zones = campaign.open_zones(now)
        if not zones:
            return False
        agent = self._choose_agent(campaign, now)
        if agent is None:
            return False
        agent.reserve(now)
        campaign.lines += 1
        campaign.pending_leases += 1
        if trunk is not None:
            trunk.started(now)
        out.append(LeaseMember(campaign.id, agent.id, zones))
        return True

    def _choose_agent(self, campaign: Campaign, now: float) -> Agent | None:
        """Lowest tier level with an eligible agent, then the campaign's strategy."""
        if not self._free:
            return None  # the usual case while every agent is busy: no scan
        for level in campaign.levels:
            # _free may lag the events of this very input: check each candidate again.
            eligible = [self.agents[i] for i in level if i in self._free]
            eligible = [candidate for candidate in eligible if candidate.eligible(now)]
            chosen = self.agents.select(campaign.settings.strategy, eligible)
            if chosen is not None:
                self._free.discard(chosen.id)  # about to be reserved
                return chosen
        return None

    def _drain_agent_events(self, out: list[Command]) -> None:
        """Publish the agents' events and keep ``_free`` in step with them."""
        while (event := self.agents.next_event()) is not None:
            out.append(PublishAgent(event))
            agent = self.agents.get(event.agent_id)
            if agent is not None and agent.eligible(event.now):
                self._free.add(agent.id)
            else:
                self._free.discard(event.agent_id)

    # --- helpers used by CallSteps -------------------------------------------------------------

    def _free_line(self, campaign: Campaign) -> None:
        campaign.lines -= 1
        trunk = self.trunks.get(campaign.settings.trunk) if campaign.settings.trunk else None
        if trunk is not None:
            trunk.lines -= 1

    def _agent_usable(self, agent: Agent) -> bool:
        return agent.registered and agent.status is AgentStatus.AVAILABLE
