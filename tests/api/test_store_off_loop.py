"""The operator surface's O(members) store reads run in a worker thread, not on the loop.

Through the real dialer, its HTTP app on uvicorn and the real dashboard hub: each read
(``MemberStore.counts``, ``MemberStore.list`` and the runner's ``_causes``) is wrapped
to note the thread it runs on and to prove the loop is free meanwhile: from its thread
it asks the loop to run a no-op and waits for it, which only completes if the loop is not
the thread stuck in the query. The routes that need only the engine (settings, autoRun)
must make no such read at all. And an in-memory SQLite store (one database per
connection) keeps its reads on the loop, where they see the tables.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from dashrig import Rig, running_dialer

from sipdialer.api import routes_attempts
from sipdialer.api.routes_common import store_read, threads_share_store
from sipdialer.config import parse_config
from sipdialer.dialer.runner_views import RunnerViews
from sipdialer.store.db import open_engine
from sipdialer.store.members import MemberStore
from sipdialer.store.migrations import migrate
from sipdialer.store.sync import sync_config

PORTS = 61600
STORE_READS: tuple[tuple[Any, str], ...] = (
    (MemberStore, "counts"),
    (MemberStore, "list"),
    (RunnerViews, "_causes"),
    (routes_attempts, "search_attempts"),  # looked up in the route's module at each call
)


@dataclass
class Reads:
    """The wrapped store reads seen since the last ``take()``."""

    loop: asyncio.AbstractEventLoop | None = None
    "The loop the dialer and uvicorn run on (:meth:`bind`)."
    loop_thread: int = 0
    seen: list[tuple[str, bool, bool]] = field(default_factory=list)
    "(read, ran off the loop's thread, the loop ran a callback meanwhile)."

    def wrap(self, name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        def read(*args: Any, **kwargs: Any) -> Any:
            assert self.loop is not None, "bind() first"
            off = threading.get_ident() != self.loop_thread
            # On the loop's own thread this would wait for itself: only asked off it.
            free = off and asyncio.run_coroutine_threadsafe(
                asyncio.sleep(0, result=True), self.loop
            ).result(timeout=5)
            self.seen.append((name, off, bool(free)))
            return original(*args, **kwargs)

        return read

    def bind(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.loop_thread = threading.get_ident()

    def take(self) -> list[tuple[str, bool, bool]]:
        seen, self.seen = self.seen, []
        return seen


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> Iterator[Reads]:
    recorder = Reads()
    for owner, name in STORE_READS:
        monkeypatch.setattr(owner, name, recorder.wrap(name, getattr(owner, name)))
    yield recorder


def assert_off_loop(reads: Reads, what: str, expected: set[str]) -> None:
    seen = reads.take()
    assert {name for name, _, _ in seen} == expected, (what, seen)
    assert all(off and free for _, off, free in seen), (what, seen)


async def first_campaign_event(rig: Rig) -> dict[str, Any]:
    """Opens the supervisor's event stream until the hub sends a campaign's view."""
    async with rig.client.stream("GET", "/events") as reply:
        assert reply.status_code == 200
        event = ""
        async for line in reply.aiter_lines():
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
            elif line.startswith("data: ") and event == "campaign":
                data: dict[str, Any] = json.loads(line.removeprefix("data: "))
                return data
    raise AssertionError("the stream ended without a campaign event")


async def test_operator_reads_run_off_the_loop(tmp_path: Path, reads: Reads) -> None:
    reads.bind()  # this test's loop: uvicorn and the dialer run on it too
    async with running_dialer(tmp_path, phones=(), ports=PORTS) as rig:
        await rig.add_members("demo", [{"communications": [{"number": f"100{i}"}]}
                                       for i in range(3)])  # fmt: skip
        reads.take()  # the runner's start reads waiting members once, on the loop: not ours
        client = rig.client

        reply = await client.get("/api/v2/dialer")
        assert reply.status_code == 200 and len(reply.json()) == 2
        assert_off_loop(reads, "list campaigns", {"counts", "_causes"})
        reply = await client.get("/api/v2/dialer/demo")
        assert reply.json()["members"] == {"total": 3, "ready": 3, "leased": 0,
                                           "waiting": 0, "ended": 0}  # fmt: skip
        assert_off_loop(reads, "one campaign", {"counts", "_causes"})
        assert (await client.put("/api/v2/dialer/demo/state/stop")).status_code == 200
        assert_off_loop(reads, "run/stop", {"counts", "_causes"})

        page = (await client.get("/api/v2/dialer/demo/members?size=2")).json()
        assert page["total"] == 3 and len(page["items"]) == 2
        assert_off_loop(reads, "members page", {"list"})
        page = (await client.get("/api/v2/dialer/demo/members?status=ended")).json()
        assert page["total"] == 0
        assert_off_loop(reads, "members by status", {"list"})
        page = (await client.get("/api/v2/dialer/demo/attempts")).json()
        assert page["total"] == 0
        assert_off_loop(reads, "attempts page", {"search_attempts"})

        snapshot = (await client.get("/dashboard/snapshot")).json()
        assert {c["name"] for c in snapshot["campaigns"]} == {"demo", "wfr"}
        assert_off_loop(reads, "dashboard snapshot", {"counts", "_causes"})
        metrics = await client.get("/metrics")
        assert 'sipdialer_campaign_members{campaign="demo"' in metrics.text
        assert_off_loop(reads, "/metrics", {"counts"})

        # What the engine alone knows takes no store query (before the hub starts: its
        # refreshes would read the counters, off the loop, meanwhile).
        assert (await client.get("/api/v2/dialer/demo/settings")).status_code == 200
        added = await client.post("/api/v2/dialer/demo/members?autoRun=true",
                                  json={"communications": [{"number": "9001"}]})  # fmt: skip
        assert added.json()["started"] is True
        assert reads.take() == []

        # The hub: a page connects, the hub's refresh reads every campaign's counters.
        event = await asyncio.wait_for(first_campaign_event(rig), 10)
        assert event["campaign"]["name"] in {"demo", "wfr"}
        assert_off_loop(reads, "dashboard hub", {"counts", "_causes"})


async def test_an_in_memory_store_reads_on_the_loop(tmp_path: Path) -> None:
    config = parse_config('[[calendars]]\nname = "c"\n[[campaigns]]\nname = "c1"\ncalendar = "c"\n')

    @dataclass
    class Facade:  # store_read needs the facade's store only
        members: MemberStore

    for url, shared in (("sqlite://", False), (f"sqlite:///{tmp_path / 'f.db'}", True)):
        engine = open_engine(url)
        try:
            migrate(engine)
            cid = sync_config(engine, config).campaign_ids["c1"]
            store = MemberStore(engine)
            store.add(cid, ["1001"])
            assert threads_share_store(engine) is shared
            loop_thread = threading.get_ident()

            def counts(campaign_id: str, store: MemberStore = store) -> tuple[int, dict[str, int]]:
                return threading.get_ident(), store.counts(campaign_id)

            # In a thread, the in-memory store would be another, empty database: the read
            # would fail with "no such table". On the loop it sees the member.
            thread, found = await store_read(Facade(store), counts, cid)  # type: ignore[arg-type]
            assert found["ready"] == 1
            assert (thread != loop_thread) is shared
        finally:
            engine.dispose()
