"""The dashboard hub with its campaign counters read in a worker thread: a failed read
leaves the hub's state as it was (the next refresh sends the change), a page that
connects reads nothing from the store (it gets the views last sent, then the fresh ones).

The facade here is small but its store is real: a SQLite file (a pool that threads
share, so ``store_read`` really uses a worker thread), a campaign with members.
"""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any

from sipdialer.api import dashboard_events
from sipdialer.api.dashboard_events import Client, DashboardHub
from sipdialer.config import parse_config
from sipdialer.dialer.views import AgentView, CallView, CampaignView, MemberCounters
from sipdialer.store.db import open_engine
from sipdialer.store.members import MemberStore
from sipdialer.store.migrations import migrate
from sipdialer.store.sync import sync_config

CONFIG = '[[calendars]]\nname = "c"\n[[campaigns]]\nname = "demo"\ncalendar = "c"\n'


class Facade:
    """What the hub reads, with the counters from a real store."""

    def __init__(self, members: MemberStore, campaign_id: str) -> None:
        self.members = members
        self.cid = campaign_id
        self.queues: list[asyncio.Queue[dict[str, Any]]] = []
        self.fail_next = False
        self.threads: list[int] = []

    def agent_views(self) -> list[AgentView]:
        return [AgentView("101", "A", True, "Available", "Waiting", 1.0, 0)]

    def live_calls(self) -> list[CallView]:
        return []

    def campaign_ids(self) -> dict[str, str]:
        return {"demo": self.cid}

    def campaign_counts(self, campaign_id: str) -> MemberCounters:
        self.threads.append(threading.get_ident())
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("the store went away")
        return MemberCounters(self.members.counts(campaign_id), {})

    def campaign_view(
        self, campaign_id: str, counters: MemberCounters | None = None
    ) -> CampaignView:
        assert counters is not None, "the hub must pass the counters it read"
        return CampaignView(campaign_id, "demo", "running", True, 0, 2, counters.counts)

    def subscribe(self) -> asyncio.Queue[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.queues.append(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        if queue in self.queues:
            self.queues.remove(queue)

    def publish(self) -> None:
        for queue in self.queues:
            queue.put_nowait({"type": "agent"})


class NoCards:
    def last_member_of(self, agent_id: str) -> None:
        return None


def drain(client: Client) -> list[tuple[str, Any]]:
    out = []
    while not client.queue.empty():
        item = client.queue.get_nowait()
        assert item is not None
        event, data = item.split("\n")[:2]
        out.append((event.removeprefix("event: "), json.loads(data.removeprefix("data: "))))
    return out


async def settle(hub: DashboardHub, refreshes: int) -> None:
    for _ in range(300):
        if hub.refreshes >= refreshes:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("no refresh")


async def test_counters_in_a_thread_and_a_failure_keeps_the_state(tmp_path: Path) -> None:
    engine = open_engine(f"sqlite:///{tmp_path / 'hub.db'}")
    try:
        migrate(engine)
        cid = sync_config(engine, parse_config(CONFIG)).campaign_ids["demo"]
        store = MemberStore(engine)
        store.add(cid, ["1001"])
        facade = Facade(store, cid)
        hub = DashboardHub(facade, NoCards(), coalesce=0.01, clock=lambda: 5.0)  # type: ignore[arg-type]
        loop_thread = threading.get_ident()

        facade.fail_next = True
        page = hub.open_supervisor()  # no store read on connect: nothing sent yet
        ((kind, snapshot),) = drain(page)
        assert kind == "snapshot" and snapshot["campaigns"] == [] and facade.threads == []
        await settle(hub, 1)  # the wake-up's refresh: its counters read failed
        assert facade.threads and all(t != loop_thread for t in facade.threads)
        assert drain(page) == []  # nothing half-sent, the agent too waits for the next

        await asyncio.sleep(dashboard_events.CAMPAIGN_INTERVAL)
        facade.publish()
        await settle(hub, 2)
        sent = dict(drain(page))
        assert sent["campaign"]["campaign"]["counts"]["ready"] == 1
        assert sent["agent"]["agent"]["id"] == "101"  # the state was left as it was
        assert all(t != loop_thread for t in facade.threads)

        # A second page: the views last sent, at once, with no store read.
        reads = len(facade.threads)
        other = hub.open_supervisor()
        ((_, snapshot),) = drain(other)
        assert [c["counts"]["ready"] for c in snapshot["campaigns"]] == [1]
        assert len(facade.threads) == reads
        await hub.close()
    finally:
        engine.dispose()
