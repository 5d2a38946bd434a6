"""The read-only half of the runner's facade: views, snapshot and change events (a shell).

Theory of operation
-------------------
:class:`RunnerViews` is a mixin of :class:`~sipdialer.dialer.runner.DialerRunner` that
builds the frozen views of ``dialer/views.py`` on demand from the engine (campaigns,
agents), the runner's bookkeeping of live calls (:class:`LiveCall`, kept from
``StartAttempt`` to ``FinishAttempt`` and moved by the call's events, ``CALL_STATES``)
and the store (member counters by status and by end cause: :meth:`campaign_counts`, the
one part that may run in a worker thread). Nothing here changes the dialer. Change
events go to subscribers' bounded queues (``subscribe``): a reader that falls behind
loses its oldest events; the dialer never waits for it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from sipdialer.calls.events import AgentRinging, Bridged, MemberAnswered, MemberRinging
from sipdialer.dialer.engine import DialerEngine
from sipdialer.dialer.views import (
    NO_COUNTERS,
    AgentView,
    CallView,
    CampaignView,
    MemberCounters,
)
from sipdialer.store.db import read
from sipdialer.store.members import MemberStore
from sipdialer.store.schema import ENDED, members

if TYPE_CHECKING:
    from collections.abc import Callable

    from sipdialer.app import PhoneSystem

__all__ = ["CALL_STATES", "QUEUE_SIZE", "LiveCall", "RunnerViews"]

QUEUE_SIZE = 1000
"Events a subscriber may lag behind before the oldest are dropped."


@dataclass
class LiveCall:
    """A call in progress, for the views (the engine has the decisions)."""

    call_id: str
    agent: str
    number: str
    campaign: str
    member: int
    state: str
    since: float
    started_at: float

    def view(self, names: dict[str, str]) -> CallView:
        """``names``: campaign name -> id (the runner's map); the view shows the name."""
        name = next((n for n, cid in names.items() if cid == self.campaign), self.campaign)
        return CallView(
            self.call_id, self.agent, self.number, self.campaign,
            name, self.member, self.state, self.since,
            self.started_at,
        )  # fmt: skip


CALL_STATES: dict[type, str] = {
    AgentRinging: "ringing",
    MemberRinging: "dialing",
    MemberAnswered: "talking",
    Bridged: "bridged",
}
"Call event -> the call's state in the views."


class RunnerViews:
    """Views of the running dialer (module docstring); the runner provides the state."""

    engine: DialerEngine
    members: MemberStore
    system: PhoneSystem
    db: Engine
    clock: Callable[[], float]
    node: str
    _names: dict[str, str]
    _live: dict[str, LiveCall]
    _since: dict[str, float]
    _queues: list[asyncio.Queue[dict[str, Any]]]

    def campaign_ids(self) -> dict[str, str]:
        """Campaign name -> id, for the campaigns of the file."""
        return dict(self._names)

    def resolve_campaign(self, id_or_name: str) -> str | None:
        if id_or_name in self.engine.campaigns:
            return id_or_name
        return self._names.get(id_or_name)

    def _name(self, campaign_id: str) -> str:
        campaign = self.engine.campaigns.get(campaign_id)
        return campaign.settings.name if campaign is not None else campaign_id

    def campaign_counts(self, campaign_id: str) -> MemberCounters:
        """The store's counters of a campaign (by status, ended by cause): two GROUP BY
        queries over its members, O(members). Reads the store only, on a pooled
        connection of its own, never the engine: safe in a worker thread, where the API
        and the dashboard call it (``api/routes_common.store_read``)."""
        return MemberCounters(self.members.counts(campaign_id), self._causes(campaign_id))

    def campaign_view(
        self, campaign_id: str, counters: MemberCounters | None = None
    ) -> CampaignView:
        """Raises KeyError (UnknownCampaign) for an unknown id. The engine's side is read
        now (call it on the loop); ``counters`` are :meth:`campaign_counts`, read by the
        caller (in a thread); without them they are read here, synchronously, on the
        loop: for callers whose campaigns are small (the demo's frames, tests), never
        for the API or the dashboard."""
        campaign = self.engine.campaign(campaign_id)
        if counters is None:
            counters = self.campaign_counts(campaign_id)
        now = self.clock()
        in_flight = sum(1 for a in self.engine.calls.values() if a.campaign is campaign)
        return CampaignView(
            id=campaign_id,
            name=campaign.settings.name,
            state=campaign.state.value,
            calendar_open=bool(campaign.open_zones(now)),
            lines_in_use=campaign.lines,
            limit=campaign.settings.limit,
            counts=counters.counts,
            causes=counters.causes,
            in_flight=in_flight,
            waiting=campaign.waiting,
            priority=campaign.settings.priority,
            finished_reason=campaign.finished_reason,
        )

    def _causes(self, campaign_id: str) -> dict[str, int]:
        query = (
            select(members.c.ended_with, func.count())
            .where(members.c.campaign_id == campaign_id, members.c.status == ENDED)
            .group_by(members.c.ended_with)
        )
        with read(self.db) as connection:
            return {str(cause): int(n) for cause, n in connection.execute(query)}

    def _campaign_json(self, campaign_id: str) -> dict[str, Any]:
        """A ``campaign`` change event's view: the engine's side only, without the store's
        counters (``counts``, ``causes``). It is built on the loop at each ended call while
        anyone subscribes, where the counters' O(members) queries would stall media and
        signalling; a subscriber that wants them reads :meth:`campaign_counts` (in a
        worker thread, as the dashboard does)."""
        view = self.campaign_view(campaign_id, NO_COUNTERS).to_json()
        del view["counts"], view["causes"]
        return view

    def _agent_view(self, agent_id: str) -> AgentView:
        agent = self.system.agents[agent_id]
        call = next((c for c in self._live.values() if c.agent == agent_id), None)
        return AgentView(
            id=agent.id, name=agent.settings.name, registered=agent.registered,
            status=agent.status.value, state=agent.state.value,
            since=self._since.get(agent.id, 0.0), calls=agent.calls,
            call=None if call is None else call.view(self._names),
        )  # fmt: skip

    def agent_views(self) -> list[AgentView]:
        return [self._agent_view(agent.id) for agent in self.system.agents]

    def live_calls(self) -> list[CallView]:
        return [live.view(self._names) for live in self._live.values()]

    def snapshot(self) -> dict[str, Any]:
        """Everything the dashboard shows, JSON-able; synchronous (the store's counters are
        read here: for tests and tools, the API builds its own off the loop)."""
        return {
            "node": self.node,
            "agents": [view.to_json() for view in self.agent_views()],
            "calls": [view.to_json() for view in self.live_calls()],
            "campaigns": [self.campaign_view(cid).to_json() for cid in self.engine.campaigns],
        }

    def subscribe(self) -> asyncio.Queue[dict[str, Any]]:
        """A queue of change events (``type``: agent | call | call_ended | campaign | closed;
        a campaign's has no member counters: :meth:`_campaign_json`)."""
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_SIZE)
        self._queues.append(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        if queue in self._queues:
            self._queues.remove(queue)

    def _publish(self, message: dict[str, Any]) -> None:
        for queue in self._queues:
            if queue.full():  # a slow reader loses the oldest, never blocks the dialer
                queue.get_nowait()
            queue.put_nowait(message)
