"""Event-loop stalls from the operator surface's store reads, at 500,000 members.

The dialer is one asyncio loop that also relays RTP and sets up calls, so a store read
made on it stalls them for as long as it runs. This bench runs the real thing in one
loop (PhoneSystem + DialerRunner + the API with the dashboard on uvicorn, a SQLite file
with one campaign of ``--members`` members bulk-loaded as in ``member_lease.py``, 40 % of
them ended with one of four causes) and a *lag probe*: a task that sleeps 5 ms again and
again and records how late it wakes (``asyncio.sleep(0.005)`` oversleep). Each scenario
runs ``--seconds`` and prints the probe's p50 / p99 / max and the scenario's own rate:

- ``idle``: the probe alone (the floor of this machine and loop);
- ``sync view on loop``: ``runner.campaign_view(cid)`` every 0.4 s, called on the loop:
  the same-run baseline of what the dashboard's hub, ``GET /api/v2/dialer/{id}``,
  ``/metrics``... did before (the store's GROUP BYs on the loop);
- ``hub``: a supervisor's event stream open (the real ``DashboardHub``), a change event
  every 0.1 s, so the hub rebuilds the campaign views every ``CAMPAIGN_INTERVAL`` (0.4 s):
  once with the store reads forced onto the loop (``on loop``: the old path, exactly the
  same queries) and once as shipped (``off loop``: a worker thread);
- ``GET /api/v2/dialer/{id}`` polled every 0.4 s over HTTP, on loop / off loop;
- ``GET .../members?status=ready`` (a page with its COUNT total) every 0.4 s, likewise.

"on loop" is the shipped code with :func:`sipdialer.api.routes_common.store_read`
running its read inline, as it does for an in-memory store: the old behaviour, same run.

Usage: ``python bench/loop_stall.py [--members 500000] [--seconds 4]``; ~1 min in all
(the load takes ~10 s). Ports: 127.0.0.1, picked by the OS.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from member_lease import load_sqlite  # bench/ is the script's folder: sys.path[0]

from sipdialer.api import routes_common
from sipdialer.api.app import create_app
from sipdialer.api.dashboard import Dashboard
from sipdialer.api.server import ApiServer
from sipdialer.app import PhoneSystem
from sipdialer.config import Config, parse_config
from sipdialer.dialer.runner import DialerRunner
from sipdialer.store.db import open_engine
from sipdialer.store.migrations import migrate
from sipdialer.store.sync import sync_config

TOKEN, KEY = "bench", "bench-key"
HEADERS = {"X-Access-Token": TOKEN, "X-Key": KEY}
PROBE = 0.005
"The lag probe's sleep (seconds)."
POLL = 0.4
"Seconds between two polls (the hub's CAMPAIGN_INTERVAL)."
CAUSES = ("NORMAL_CLEARING", "USER_BUSY", "NO_ANSWER", "MAX_TRY_COUNT")


def config_text(db: Path) -> str:
    return f"""
[sip]
listen = "127.0.0.1:0"
qualify_interval = 0
[media]
rtp_ports = "47800-47999"
[store]
url = "sqlite:///{db}"
[api]
listen = "127.0.0.1:0"
tokens = [{{ token = "{TOKEN}", key = "{KEY}" }}]
[[agents]]
id = "101"
password = "secret101"
[[calendars]]
name = "c"
[[campaigns]]
name = "bench"
calendar = "c"
agents = ["101"]
"""


def prepare(config: Config, db: Path, n: int) -> float:
    """The store with ``n`` members, 40 % of them ended; returns the load's seconds."""
    started = time.perf_counter()
    engine = open_engine(config.store.url)
    migrate(engine)
    campaign_id = sync_config(engine, config).campaign_ids["bench"]
    load_sqlite(engine, campaign_id, n)
    raw = engine.raw_connection()
    try:
        sql = raw.driver_connection
        cases = " ".join(f"WHEN {i} THEN '{c}'" for i, c in enumerate(CAUSES))
        sql.execute("BEGIN")
        sql.execute(
            f"UPDATE members SET status = 'ended', ended_with = CASE id % 4 {cases} END "
            "WHERE id % 10 < 4"
        )
        sql.execute("COMMIT")
        sql.execute("ANALYZE")
    finally:
        raw.close()
    engine.dispose()
    return time.perf_counter() - started


class Probe:
    """How late ``asyncio.sleep(PROBE)`` wakes, sample by sample."""

    def __init__(self) -> None:
        self.lags: list[float] = []

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            start = loop.time()
            await asyncio.sleep(PROBE)
            self.lags.append(loop.time() - start - PROBE)

    def figures(self) -> tuple[float, float, float]:
        ordered = sorted(self.lags) or [0.0]
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
        return statistics.median(ordered) * 1e3, p99 * 1e3, ordered[-1] * 1e3


@contextlib.contextmanager
def reads_on_loop(on_loop: bool) -> Any:
    """``store_read`` runs its read inline (the old path) while ``on_loop``."""
    original = routes_common.threads_share_store
    if on_loop:
        routes_common.threads_share_store = lambda engine: False  # type: ignore[assignment]
    try:
        yield
    finally:
        routes_common.threads_share_store = original


async def every(period: float, seconds: float, action: Callable[[], Awaitable[Any]]) -> int:
    """``action`` every ``period`` for ``seconds``; returns how many ran."""
    loop = asyncio.get_running_loop()
    end, done = loop.time() + seconds, 0
    while loop.time() < end:
        started = loop.time()
        await action()
        done += 1
        await asyncio.sleep(max(0.0, period - (loop.time() - started)))
    return done


class Reads:
    """Counts the O(members) reads made (wraps the runner's instance methods)."""

    def __init__(self, runner: DialerRunner) -> None:
        self.count = 0
        for owner, name in ((runner, "campaign_counts"), (runner.members, "list")):
            setattr(owner, name, self._counted(getattr(owner, name)))

    def _counted(self, call: Callable[..., Any]) -> Callable[..., Any]:
        def counted(*args: Any, **kwargs: Any) -> Any:
            self.count += 1  # from one thread at a time here: a plain int will do
            return call(*args, **kwargs)

        return counted


async def measure(
    seconds: float, load: Callable[[], Awaitable[int]] | None, reads: Reads
) -> list[Any]:
    probe = Probe()
    before = reads.count
    task = asyncio.create_task(probe.run())
    started = time.perf_counter()
    try:
        if load is None:
            await asyncio.sleep(seconds)
            done = 0
        else:
            done = await load()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    elapsed = time.perf_counter() - started
    return [*probe.figures(), done / elapsed, (reads.count - before) / elapsed, len(probe.lags)]


@contextlib.asynccontextmanager
async def dialer(config: Config) -> AsyncIterator[tuple[DialerRunner, Dashboard, str]]:
    system = PhoneSystem(config)
    await system.start()
    runner = DialerRunner(config, system, node="bench")
    await runner.start()
    for campaign_id in runner.campaign_ids().values():
        runner.set_campaign_state(campaign_id, False)
    dashboard = Dashboard(runner, config)
    server = ApiServer(create_app(runner, config, extra_routers=[dashboard.router]), config.api)
    host, port = await server.start()
    try:
        yield runner, dashboard, f"http://{host}:{port}"
    finally:
        await dashboard.hub.close()
        await server.close()
        await runner.close()
        await system.close()
        runner.db.dispose()


async def run(args: argparse.Namespace, config: Config) -> list[tuple[str, list[Any]]]:
    rows: list[tuple[str, list[Any]]] = []
    seconds = args.seconds
    async with dialer(config) as (runner, dashboard, base):
        cid = runner.campaign_ids()["bench"]
        client = httpx.AsyncClient(base_url=base, headers=HEADERS, timeout=10.0)
        hub = dashboard.hub
        reads = Reads(runner)

        async def sync_view() -> int:
            async def once() -> None:
                runner.campaign_view(cid)  # the old path: two GROUP BYs on the loop

            return await every(POLL, seconds, once)

        async def hub_load() -> int:
            page = hub.open_supervisor()
            before = hub.refreshes
            loop = asyncio.get_running_loop()
            end = loop.time() + seconds
            try:
                while loop.time() < end:  # a busy dialer: something changes every 0.1 s
                    runner._publish({"type": "agent"})
                    await asyncio.sleep(0.1)
                    while not page.queue.empty():
                        page.queue.get_nowait()
            finally:
                hub.close_client(page)
            return hub.refreshes - before

        def poll(path: str) -> Callable[[], Awaitable[int]]:
            async def once() -> None:
                reply = await client.get(path)
                assert reply.status_code == 200, reply.text

            return lambda: every(POLL, seconds, once)

        one = f"/api/v2/dialer/{cid}"
        page = f"/api/v2/dialer/{cid}/members?status=ready&size=50"
        rows.append(("idle (probe only)", await measure(seconds, None, reads)))
        rows.append(("sync view on loop, every 0.4 s", await measure(seconds, sync_view, reads)))
        for on_loop in (True, False):
            where = "on loop" if on_loop else "off loop"
            with reads_on_loop(on_loop):
                rows.append((f"hub rebuilds, {where}", await measure(seconds, hub_load, reads)))
                rows.append(
                    (f"GET {{id}} every 0.4 s, {where}", await measure(seconds, poll(one), reads))
                )
                rows.append(
                    (f"GET members?status, {where}", await measure(seconds, poll(page), reads))
                )
        await client.aclose()
    return rows


def query_times(runner_config: Config) -> dict[str, float]:
    """The reads themselves, synchronously, median of 5 (ms)."""
    from sipdialer.store.members import MemberStore

    engine = open_engine(runner_config.store.url)
    store = MemberStore(engine)
    cid = sync_config(engine, runner_config).campaign_ids["bench"]
    out = {}
    for name, call in (
        ("counts", lambda: store.counts(cid)),
        ("list", lambda: store.list(cid, limit=50)),
        ("list status=ready", lambda: store.list(cid, status="ready", limit=50)),
    ):
        samples = []
        for _ in range(5):
            start = time.perf_counter()
            call()
            samples.append(time.perf_counter() - start)
        out[name] = statistics.median(samples) * 1e3
    engine.dispose()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=500_000)
    parser.add_argument("--seconds", type=float, default=4.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        db = Path(folder) / "stall.db"
        config = parse_config(config_text(db))
        load_s = prepare(config, db, args.members)
        queries = query_times(config)
        rows = asyncio.run(run(args, config))
    print(f"Python {platform.python_version()}, {platform.machine()}, {args.members:,} members"
          f" (loaded in {load_s:.1f} s), {args.seconds:g} s per scenario")  # fmt: skip
    print("store reads, synchronous, median of 5: "
          + ", ".join(f"{k} {v:.0f} ms" for k, v in queries.items()))  # fmt: skip
    print()
    print("| scenario | lag p50 (ms) | p99 (ms) | max (ms) | actions/s | store reads/s | probes |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, (p50, p99, worst, rate, store, count) in rows:
        print(
            f"| {name} | {p50:.2f} | {p99:.1f} | {worst:.1f} | {rate:.2f} | {store:.2f} | {count} |"
        )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
