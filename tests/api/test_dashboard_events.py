"""The dashboard hub's diffing and fan-out, on a small in-memory facade (the browser tests
run it against the real dialer): only changes are sent, a page joining mid-change does
not rob the others of it, a slow page is dropped, the runner's ``closed`` ends streams."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

from sqlalchemy import create_engine

from sipdialer.api import dashboard_events
from sipdialer.api.dashboard_events import Client, DashboardHub, sse
from sipdialer.dialer.views import AgentView, CallView, CampaignView, MemberCounters


class Facade:
    """Just what the hub reads: views, campaigns, subscribe/unsubscribe."""

    def __init__(self) -> None:
        self.agents = {"101": AgentView("101", "A", True, "Available", "Waiting", 1.0, 0)}
        self.calls: dict[str, CallView] = {}
        self.campaign = CampaignView("c1", "demo", "running", True, 0, 2, {"ready": 3})
        self.queues: list[asyncio.Queue[dict[str, Any]]] = []
        self.views_built = 0
        # An in-memory store: the hub's store reads run inline (routes_common.store_read).
        self.members = SimpleNamespace(engine=create_engine("sqlite://"))

    def agent_views(self) -> list[AgentView]:
        return list(self.agents.values())

    def live_calls(self) -> list[CallView]:
        return list(self.calls.values())

    def campaign_ids(self) -> dict[str, str]:
        return {"demo": "c1"}

    def campaign_counts(self, campaign_id: str) -> MemberCounters:
        return MemberCounters(self.campaign.counts, self.campaign.causes)

    def campaign_view(
        self, campaign_id: str, counters: MemberCounters | None = None
    ) -> CampaignView:
        self.views_built += 1
        return self.campaign

    def subscribe(self) -> asyncio.Queue[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.queues.append(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        if queue in self.queues:  # as the runner's: repeated calls are harmless
            self.queues.remove(queue)

    def publish(self, event: dict[str, Any]) -> None:
        for queue in self.queues:
            queue.put_nowait(event)


class NoCards:
    def last_member_of(self, agent_id: str) -> None:
        return None


def drain(client: Client) -> list[tuple[str, Any]]:
    out = []
    while not client.queue.empty():
        item = client.queue.get_nowait()
        if item is None:
            out.append(("end", None))
            continue
        event, data = item.split("\n")[:2]
        out.append((event.removeprefix("event: "), json.loads(data.removeprefix("data: "))))
    return out


async def settle(hub: DashboardHub, refreshes: int) -> None:
    for _ in range(200):
        if hub.refreshes >= refreshes:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("no refresh")


def hub_for(facade: Facade) -> DashboardHub:
    return DashboardHub(facade, NoCards(), coalesce=0.01, clock=lambda: 100.0)  # type: ignore[arg-type]


async def test_only_changes_are_sent() -> None:
    facade = Facade()
    hub = hub_for(facade)
    first = hub.open_supervisor()
    (kind, snapshot), = drain(first)  # fmt: skip
    assert kind == "snapshot" and snapshot["now"] == 100.0
    assert [a["id"] for a in snapshot["agents"]] == ["101"]
    call = CallView("x1", "101", "1001", "c1", "demo", 7, "ringing", 2.0, 2.0)
    facade.calls["x1"] = call
    facade.agents["101"] = replace(facade.agents["101"], state="Ringing", call=call)
    facade.publish({"type": "agent"})
    # A second page joins before the hub has refreshed: the first still gets the change.
    second = hub.open_supervisor()
    assert drain(second)[0][1]["agents"][0]["state"] == "Ringing"
    await settle(hub, 1)
    kinds = [kind for kind, _ in drain(first)]
    assert sorted(kinds) == ["agent", "call", "campaign"]  # the campaign: first for the hub
    facade.publish({"type": "call"})  # nothing changed
    await settle(hub, 2)
    assert drain(first) == []
    del facade.calls["x1"]
    facade.campaign = replace(facade.campaign, counts={"ready": 2, "ended": 1})
    facade.publish({"type": "call_ended"})
    await asyncio.sleep(dashboard_events.CAMPAIGN_INTERVAL + 0.1)
    sent = dict(drain(first))
    assert sent["call_ended"]["call_id"] == "x1"
    assert sent["campaign"]["campaign"]["counts"] == {"ready": 2, "ended": 1}
    await hub.close()


async def test_campaign_views_are_rate_limited() -> None:
    facade = Facade()
    hub = hub_for(facade)
    page = hub.open_supervisor()
    built = facade.views_built
    for n in range(10):
        facade.agents["101"] = replace(facade.agents["101"], calls=n + 1)
        facade.publish({"type": "agent"})
        await asyncio.sleep(0.03)
    await asyncio.sleep(dashboard_events.CAMPAIGN_INTERVAL + 0.1)
    # 10 changes in 0.3 s: every agent change went out, the store was asked twice at most.
    assert facade.views_built - built <= 3
    agents = [data["agent"]["calls"] for kind, data in drain(page) if kind == "agent"]
    assert agents[-1] == 10 and agents == sorted(agents)
    await hub.close()


async def test_slow_page_is_dropped_and_closed_ends_streams(monkeypatch: Any) -> None:
    monkeypatch.setattr(dashboard_events, "QUEUE_LIMIT", 3)
    facade = Facade()
    hub = hub_for(facade)
    slow = hub.open_supervisor()
    for n in range(4):
        facade.agents["101"] = replace(facade.agents["101"], calls=n + 1)
        facade.publish({"type": "agent"})
        await settle(hub, n + 1)
    assert slow.dropped and drain(slow)[-1] == ("end", None)
    page = hub.open_supervisor()
    stream = hub.stream(page)
    assert (await anext(stream)).startswith("retry:")
    assert (await anext(stream)).startswith("event: snapshot")
    facade.publish({"type": "closed"})
    rest = [chunk async for chunk in stream]  # the stream ends by itself
    assert all(not chunk.startswith("event: snapshot") for chunk in rest)
    assert not facade.queues  # the hub unsubscribed
    await hub.close()


def test_sse_format() -> None:
    assert sse("agent", {"a": 1}) == 'event: agent\ndata: {"a":1}\n\n'
