"""The dashboard's live feed: one subscriber to the runner, fanned out as server-sent events.

Theory of operation
-------------------
:class:`DashboardHub` subscribes once to ``runner.subscribe()`` (however many pages are
open). Any change event marks the state dirty; after a short coalescing window
(``COALESCE``, so a burst of events costs one refresh and a change reaches the pages
well within a second) the hub rebuilds the views from the facade (``agent_views``,
``live_calls``, ``campaign_view`` of each campaign), compares them with what it last
sent, and queues only what differs:

    snapshot     {now, agents: [...], calls: [...], campaigns: [...]}   first, on connect
    agent        {now, agent}          an AgentView changed (state, status, call ...)
    call         {now, call}           a call started or changed state
    call_ended   {now, call_id}
    campaign     {now, campaign}       counters, lines, calendar, state

Campaign views (the store's member counts) are rebuilt at most every
``CAMPAIGN_INTERVAL``; a change inside that interval is sent at its end. Their counters
are O(members) store queries (40-150 ms at 500,000 members), so the hub awaits them from
a worker thread (:func:`~sipdialer.api.routes_common.read_campaign_views`) and reads the
engine's side, the agents and the calls on the loop afterwards, with no await between
reading the views and queuing what changed. A page that connects gets the campaigns as
the hub last sent them (no store query on connect, however many pages open) and wakes
the hub, whose next refresh sends the fresh ones to every page, the new one too. The
runner's events are used only as "something changed", so the pages depend on the
views' documented fields (``dialer/views.py``) and not on the event vocabulary. Times
are wall-clock Unix seconds; every message carries the server's ``now`` so a page can
count durations without trusting its own clock. A slow refresh (``IDLE_REFRESH``) also
runs while supervisors watch, for what changes with time alone (a calendar opening).

Agent consoles get ``console`` messages ``{now, agent, card}`` for their own agent only:
the member card (:mod:`sipdialer.api.dashboard_card`) is loaded from the store when the
agent's call names a new member (the phone starts ringing) and reloaded on each change
of that agent, so the card shows the member waiting for a result, its deadline, and the
result once submitted. The hub remembers each agent's last member, so the card stays
during wrap-up and after a page reload.

When the runner closes (its ``closed`` event) every stream ends, so the server's
graceful shutdown does not wait for them. A page that does not read its stream fast
enough (``QUEUE_LIMIT`` messages behind) is disconnected; its ``EventSource``
reconnects and starts again from a snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from sipdialer.api.dashboard_card import CardSource, member_card
from sipdialer.api.routes_common import Dialer, read_campaign_views

log = logging.getLogger(__name__)

COALESCE = 0.1
"Seconds the hub waits after a change for more before it refreshes."
CAMPAIGN_INTERVAL = 0.4
"Seconds between two rebuilds of the campaign views (member counts are store queries)."
IDLE_REFRESH = 10.0
"Seconds between refreshes with no event, while supervisors are connected."
KEEPALIVE = 15.0
"Seconds between SSE comments on a quiet stream (proxies close idle connections)."
QUEUE_LIMIT = 1000
"Messages a client may fall behind before it is disconnected."

Json = dict[str, Any]
Views = dict[str, Json]
"Views by id (agent id, call id, campaign id)."


def sse(event: str, data: Json) -> str:
    """One server-sent event (the WHATWG EventSource format)."""
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


@dataclass(eq=False)
class Client:
    """One open event stream."""

    agent: str | None
    "None for a supervisor; else the console's agent id."
    queue: asyncio.Queue[str | None] = field(default_factory=asyncio.Queue)
    "Encoded events; None ends the stream."
    dropped: bool = False


class DashboardHub:
    """Shared by every stream of one app; see the module docstring."""

    def __init__(
        self,
        runner: Dialer,
        cards: CardSource,
        *,
        clock: Callable[[], float] = time.time,
        coalesce: float = COALESCE,
    ) -> None:
        self.runner = runner
        self.cards = cards
        self.clock = clock
        self.coalesce = coalesce
        self._clients: set[Client] = set()
        self._agents: dict[str, Json] = {}
        self._calls: dict[str, Json] = {}
        self._campaigns: dict[str, Json] = {}
        self._last_member: dict[str, tuple[str, int]] = {}
        "Agent id -> (campaign id, member id) of its latest call."
        self._task: asyncio.Task[None] | None = None
        self._queue: asyncio.Queue[Json] | None = None
        self.refreshes = 0

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Subscribe to the runner (idempotent; the first page request calls it)."""
        if self._task is None or self._task.done():
            self._remember(self._agent_views())
            # Subscribed now, not in the task: no change is missed before the task runs.
            self._queue = queue = self.runner.subscribe()
            loop = asyncio.get_running_loop()
            self._task = loop.create_task(self._run(queue), name="dashboard")

    async def close(self) -> None:
        for client in list(self._clients):
            self._end(client)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._queue is not None:
            self.runner.unsubscribe(self._queue)  # harmless when the task already did
            self._queue = None

    # --- clients -----------------------------------------------------------------------

    def open_supervisor(self) -> Client:
        self.start()
        client = Client(None)
        # The hub's own state is left alone: the other pages still need the changes since
        # the last refresh, which the next refresh sends (to this page too: harmless).
        # Campaigns are the views last sent (their counters cost store queries, read off
        # the loop by the refresh this wakes: module docstring).
        agents, calls = self._loop_views()
        client.queue.put_nowait(sse("snapshot", {
            "now": self.clock(),
            "agents": list(agents.values()),
            "calls": list(calls.values()),
            "campaigns": list(self._campaigns.values()),
        }))  # fmt: skip
        self._clients.add(client)
        self._wake()
        return client

    def open_agent(self, agent_id: str) -> Client:
        self.start()
        client = Client(agent_id)
        client.queue.put_nowait(sse("console", self.console(agent_id)))
        self._clients.add(client)
        return client

    def close_client(self, client: Client) -> None:
        self._clients.discard(client)

    async def stream(self, client: Client) -> AsyncIterator[str]:
        """The text of *client*'s stream until it is dropped or the hub closes."""
        try:
            yield "retry: 1000\n\n"  # reconnect after 1 s, not the browser's 3-5 s
            while True:
                try:
                    async with asyncio.timeout(KEEPALIVE):  # not wait_for: see _run
                        item = await client.queue.get()
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                if item is None:
                    return
                yield item
        finally:
            self.close_client(client)

    def console(self, agent_id: str) -> Json:
        """What an agent's console shows now: its view and its member card."""
        views = {a["id"]: a for a in self._agent_views()}
        self._remember(views.values())
        agent = views.get(agent_id)
        card = self._card(agent_id)
        return {"now": self.clock(), "agent": agent, "card": card}

    # --- the loop ----------------------------------------------------------------------

    async def _run(self, queue: asyncio.Queue[Json]) -> None:
        loop = asyncio.get_running_loop()
        campaigns_at = -CAMPAIGN_INTERVAL
        behind = False  # campaigns were skipped by the last refresh
        try:
            while True:
                timeout: float | None = None
                if behind:
                    timeout = max(0.0, campaigns_at + CAMPAIGN_INTERVAL - loop.time())
                elif self._supervisors():
                    timeout = IDLE_REFRESH
                events = []
                try:
                    # asyncio.timeout, not wait_for: on 3.11 wait_for returns the item
                    # and drops a cancel (close()) that comes as an item arrives.
                    async with asyncio.timeout(timeout):
                        events.append(await queue.get())
                    await asyncio.sleep(self.coalesce)
                except TimeoutError:
                    pass
                while not queue.empty():
                    events.append(queue.get_nowait())
                if any(event.get("type") == "closed" for event in events):
                    for client in list(self._clients):  # the dialer stops: end the streams
                        self._end(client)
                    return
                supervisors = self._supervisors()
                campaigns = supervisors and loop.time() - campaigns_at >= CAMPAIGN_INTERVAL
                behind = supervisors and not campaigns
                if campaigns:
                    campaigns_at = loop.time()
                try:
                    await self._refresh(campaigns=campaigns)
                except Exception:  # a bug here must not end every page's feed
                    log.exception("dashboard refresh failed")
        finally:
            self.runner.unsubscribe(queue)

    async def _refresh(self, *, campaigns: bool) -> None:
        """Rebuild the views, queue what changed. Campaign views cost store queries, so
        they are rebuilt at most every ``CAMPAIGN_INTERVAL`` (and only for supervisors)."""
        try:
            await self._send_changes(campaigns=campaigns)
        finally:
            self.refreshes += 1  # once it is done: what it sends is queued by then

    async def _send_changes(self, *, campaigns: bool) -> None:
        agents, calls, campaign_views = await self._build(campaigns=campaigns)
        # From here on nothing awaits: the clients and the hub's state are those the views
        # were read with.
        supervisors = self._supervisors()
        now = self.clock()
        messages: list[str] = []
        changed_agents = [a for i, a in agents.items() if self._agents.get(i) != a]
        if supervisors:
            messages += [sse("agent", {"now": now, "agent": a}) for a in changed_agents]
            messages += [
                sse("call", {"now": now, "call": c})
                for i, c in calls.items()
                if self._calls.get(i) != c
            ]
            messages += [
                sse("call_ended", {"now": now, "call_id": i}) for i in self._calls if i not in calls
            ]
            messages += [
                sse("campaign", {"now": now, "campaign": c})
                for i, c in campaign_views.items()
                if self._campaigns.get(i) != c
            ]
        self._remember(agents.values())
        consoles = {c.agent for c in self._clients if c.agent is not None}
        console_messages = {
            a["id"]: sse("console", {"now": now, "agent": a, "card": self._card(a["id"])})
            for a in changed_agents
            if a["id"] in consoles
        }
        # Only now, with every message built: a failure above leaves the old state, so the
        # next refresh sends these changes again instead of losing them.
        self._agents, self._calls = agents, calls
        if supervisors and campaigns:
            self._campaigns = campaign_views
        for client in list(self._clients):
            if client.agent is None:
                for message in messages:
                    self._put(client, message)
            elif client.agent in console_messages:
                self._put(client, console_messages[client.agent])

    # --- helpers -----------------------------------------------------------------------

    def _supervisors(self) -> bool:
        return any(c.agent is None for c in self._clients)

    def _agent_views(self) -> list[Json]:
        return [view.to_json() for view in self.runner.agent_views()]

    def _wake(self) -> None:
        """Make the hub refresh soon, as for a change (a page wants fresh campaigns)."""
        if self._queue is not None and not self._queue.full():
            self._queue.put_nowait({"type": "supervisor"})

    def _loop_views(self) -> tuple[dict[str, Json], dict[str, Json]]:
        agents = {a["id"]: a for a in self._agent_views()}
        calls = {c.call_id: c.to_json() for c in self.runner.live_calls()}
        return agents, calls

    async def _build(
        self, *, campaigns: bool
    ) -> tuple[dict[str, Json], dict[str, Json], dict[str, Json]]:
        views: dict[str, Json] = {}
        if campaigns:
            views = await self._campaign_views()
        # After the await: the engine's state as it is now, read in one go.
        agents, calls = self._loop_views()
        return agents, calls, views

    async def _campaign_views(self) -> dict[str, Json]:
        """Each campaign's view: the store's counters from a worker thread (awaited), then
        the engine's side on the loop (:func:`read_campaign_views`)."""
        ids = list(self.runner.campaign_ids().values())
        found = await read_campaign_views(self.runner, ids)
        return {cid: view.to_json() for cid, view in zip(ids, found, strict=True)}

    def _remember(self, agents: Any) -> None:
        for agent in agents:
            call = agent.get("call")
            if call is not None:
                self._last_member[agent["id"]] = (call["campaign"], int(call["member"]))

    def _card(self, agent_id: str) -> Json | None:
        """The agent's member card, read again from the store (it changes with the call)."""
        found = self._last_member.get(agent_id)
        if found is None:
            found = self.cards.last_member_of(agent_id)
            if found is None:
                return None
            self._last_member[agent_id] = found
        return member_card(self.cards, *found)

    def _put(self, client: Client, message: str) -> None:
        if client.dropped:
            return
        if client.queue.qsize() >= QUEUE_LIMIT:
            log.warning("dashboard client too slow; disconnected")
            self._end(client)
            return
        client.queue.put_nowait(message)

    def _end(self, client: Client) -> None:
        client.dropped = True
        self._clients.discard(client)
        client.queue.put_nowait(None)
