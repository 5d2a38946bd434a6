"""The demo's run over real SIP/RTP on 127.0.0.1, and what both runs report.

Theory of operation
-------------------
:func:`run_sip` builds the office of :func:`sipdialer.demo.demo_config` for real, all on
free 127.0.0.1 ports: the simulated trunk (``SimTrunk``, the demo's number plan, digest
credentials), the dialer on a SQLite store, run by ``app.serve`` exactly as ``sipdialer
run`` runs it (``PhoneSystem`` + ``DialerRunner``), and N simulated agent phones
(``SimPhone``) that REGISTER with digest and answer after a short ring. The agents go
Available through the runner's facade (as ``PUT /api/v2/agents/{id}/status`` does), the
members are added through it (as ``POST .../members?autoRun=true`` does), and the campaign
runs until the engine finishes it. Every quarter second a :class:`Frame` goes to
``on_frame`` (the live screen); the summary is read back from the store afterwards, so
that it shows what was *recorded*.

``--fast`` runs the same configuration and members in virtual time instead
(:mod:`sipdialer.demo_virtual`), with the same :class:`Frame` and :class:`DemoResult`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sipdialer.app import serve
from sipdialer.cli_common import Campaign
from sipdialer.cli_report import attempt_facts, campaign_report
from sipdialer.config import Config
from sipdialer.demo import (
    CAMPAIGN,
    TRUNK,
    TRUNK_PASSWORD,
    TRUNK_USER,
    Audit,
    AuditAttempt,
    DemoMember,
    MemberFacts,
    audit,
    demo_config,
    demo_members,
    kinds_by_number,
)
from sipdialer.dialer.agents import AgentStatus
from sipdialer.dialer.dispositions import Number
from sipdialer.dialer.runner import DialerRunner
from sipdialer.dialer.views import AgentView, CampaignView
from sipdialer.report import CampaignReport
from sipdialer.simulate.behaviour import DEFAULT_BEHAVIOURS
from sipdialer.simulate.phones import PhoneBehaviour, SimPhone
from sipdialer.simulate.trunk import SimTrunk
from sipdialer.store.attempts import AttemptStore
from sipdialer.store.db import open_engine
from sipdialer.store.member_rows import NewMember
from sipdialer.store.members import MemberStore
from sipdialer.store.sync import load_campaigns

log = logging.getLogger("sipdialer.demo")

FRAME_EVERY = 0.25
"Seconds between two frames of the live screen."
STOP_GRACE = 10.0
"Seconds the calls in progress get to end after the time limit stopped the campaign."
PAGE = 5000


@dataclass(frozen=True)
class Frame:
    """What the live screen shows at one moment."""

    elapsed: float
    "Seconds since the campaign started (virtual seconds with --fast)."
    agents: list[AgentView]
    campaign: CampaignView
    ended_calls: list[dict[str, Any]]
    "Calls that ended since the previous frame: the runner's ``call_ended`` events."


@dataclass
class DemoResult:
    mode: str
    "sip | virtual"
    finished: bool
    "The engine finished the campaign (False: stopped at the time limit)."
    wall_seconds: float
    campaign_seconds: float
    "From the first member added to the campaign's end (virtual seconds with --fast)."
    report: CampaignReport
    audit: Audit
    info: dict[str, str] = field(default_factory=dict)
    "Addresses, store, ... for the header and the JSON."

    @property
    def ok(self) -> bool:
        return self.finished and self.audit.ok

    def to_json(self) -> dict[str, Any]:
        from sipdialer.report import to_json

        return {
            "mode": self.mode,
            "ok": self.ok,
            "finished": self.finished,
            "wall_seconds": round(self.wall_seconds, 3),
            "campaign_seconds": round(self.campaign_seconds, 3),
            "info": dict(self.info),
            "audit": self.audit.to_json(),
            "report": to_json(self.report),
        }


FrameSink = Callable[[Frame], None]
InfoSink = Callable[[dict[str, str]], None]


def _rtp_ranges(count: int, size: int = 200) -> Iterator[str]:
    """``count`` disjoint even-aligned port ranges at a random place in 20000-59999, so two
    demos (or a demo and the tests) seldom want the same ports; busy ports are skipped
    anyway by whoever binds them."""
    start = random.randrange(20000, 60000 - count * size, 2)
    for i in range(count):
        low = start + i * size
        yield f"{low}-{low + size - 1}"


def new_members(members: list[DemoMember]) -> list[NewMember]:
    return [
        NewMember(
            numbers=tuple(
                Number(n, priority=len(m.numbers) - 1 - i) for i, n in enumerate(m.numbers)
            ),
            name=m.name,
            variables={"kind": m.kind.key},
        )
        for m in members
    ]


# --- over SIP ---------------------------------------------------------------------------------


async def run_sip(
    agents: int,
    count: int,
    *,
    seed: int = 1,
    store: str | None = None,
    time_limit: float = 150.0,
    api: bool = True,
    on_frame: FrameSink | None = None,
    on_info: InfoSink | None = None,
) -> DemoResult:
    """The demo over real SIP/RTP (module docstring). ``store``: keep the SQLite file there
    (it must not exist); default a temporary file, removed. ``api``: serve the REST API and
    the dashboard on a free port while the campaign runs."""
    started = time.monotonic()
    with contextlib.ExitStack() as cleanup:
        if store is None:
            folder = cleanup.enter_context(tempfile.TemporaryDirectory(prefix="sipdialer-demo-"))
            store = os.path.join(folder, "demo.db")
        elif os.path.exists(store):
            raise FileExistsError(f"{store} exists: the demo wants a new store")
        members = demo_members(count, seed)
        dialer_rtp, trunk_rtp, *phone_rtp = _rtp_ranges(2 + agents)
        trunk = SimTrunk(
            DEFAULT_BEHAVIOURS, port=0, username=TRUNK_USER, password=TRUNK_PASSWORD,
            rtp_ports=trunk_rtp, tcp=False,
        )  # fmt: skip
        trunk_address = await trunk.start()
        try:
            config = demo_config(
                agents, store_url=f"sqlite:///{store}", trunk_port=trunk_address[1],
                rtp_ports=dialer_rtp,
            )  # fmt: skip
            run = await _dial(config, members, phone_rtp, trunk_address, time_limit,
                              on_frame, on_info, store, api)  # fmt: skip
        finally:
            await trunk.close()
        finished, campaign_seconds, campaign_id, info = (
            run.finished, run.elapsed, run.campaign_id, run.info,
        )  # fmt: skip
        if run.interrupted:
            info["interrupted"] = "stopped by a signal before the campaign ended"
        engine = open_engine(f"sqlite:///{store}")
        try:
            state = {row.id: row.state for row in load_campaigns(engine)}.get(campaign_id, "?")
            report = campaign_report(engine, Campaign(campaign_id, CAMPAIGN, state))
            checked = _audit_store(engine, campaign_id, members)
        finally:
            engine.dispose()
        info["trunk calls"] = str(len(trunk.calls))
        info["trunk challenges"] = str(trunk.challenges)
    return DemoResult(
        mode="sip",
        finished=finished,
        wall_seconds=time.monotonic() - started,
        campaign_seconds=campaign_seconds,
        report=report,
        audit=checked,
        info=info,
    )


@dataclass
class _Outcome:
    finished: bool = False
    interrupted: bool = False
    elapsed: float = 0.0
    campaign_id: str = ""
    info: dict[str, str] = field(default_factory=dict)


async def _dial(
    config: Config,
    members: list[DemoMember],
    phone_rtp: list[str],
    trunk_address: tuple[str, int],
    time_limit: float,
    on_frame: FrameSink | None,
    on_info: InfoSink | None,
    store: str,
    with_api: bool,
) -> _Outcome:
    """The dialer as ``sipdialer run`` runs it (``app.serve``), with the demo's driver next
    to it: phones, agents Available, members in, watch until the campaign is over. SIGINT
    stops it the same way too (the driver is cancelled; the summary says so)."""
    outcome = _Outcome()

    async def driver(runner: DialerRunner) -> None:
        address = runner.system.address
        assert address is not None
        phones: list[SimPhone] = []
        api: Any = None
        try:
            api, api_note = await _start_api(runner, config) if with_api else (None, "")
            rnd = random.Random(len(members))
            for agent, rtp in zip(config.agents, phone_rtp, strict=True):
                behaviour = PhoneBehaviour(answer_after=round(rnd.uniform(0.3, 0.9), 2))
                phones.append(SimPhone(agent.id, agent.password, address, behaviour,
                                       rtp_ports=rtp))  # fmt: skip
            await asyncio.gather(*(phone.start() for phone in phones))
            outcome.info = {
                "dialer": f"sip:{address[0]}:{address[1]}",
                "trunk": f"sip:{trunk_address[0]}:{trunk_address[1]} ({TRUNK}, digest user"
                f" {TRUNK_USER})",
                "phones": ", ".join(f"{p.user}@{p.address[0]}:{p.address[1]}" for p in phones
                                    if p.address is not None),
                "store": store,
            }  # fmt: skip
            if api_note:
                outcome.info["api"] = api_note
            if on_info is not None:
                on_info(outcome.info)
            for agent in config.agents:
                runner.set_agent_status(agent.id, AgentStatus.AVAILABLE)
            campaign_id = runner.resolve_campaign(CAMPAIGN)
            assert campaign_id is not None
            outcome.campaign_id = campaign_id
            queue = runner.subscribe()
            began = time.monotonic()
            added = runner.members.add_many(campaign_id, new_members(members))
            if added.refused:
                raise RuntimeError(f"demo members refused: {added.refused[0].reason}")
            runner.members_added(campaign_id, auto_run=True)
            try:
                outcome.finished = await _watch(runner, campaign_id, queue, began, time_limit,
                                                on_frame)  # fmt: skip
            except asyncio.CancelledError:  # SIGINT/SIGTERM: serve stops the dialer
                outcome.interrupted = True
                raise
            finally:
                outcome.elapsed = time.monotonic() - began
                runner.unsubscribe(queue)
        finally:
            if api is not None:
                await api.close()
            await asyncio.gather(*(phone.close() for phone in phones), return_exceptions=True)

    status = await serve(config, extra=[driver], node="demo")
    if not outcome.campaign_id:
        raise RuntimeError(f"the dialer stopped before the demo began (exit status {status})")
    if status != 0:
        outcome.finished = False
        outcome.info["dialer stopped"] = f"exit status {status} (see the log above)"
    return outcome


async def _start_api(runner: DialerRunner, config: Config) -> tuple[Any, str]:
    """The REST API and the dashboard on a free port, or None and why not. The demo does
    not depend on them: a failure here is shown, not fatal."""
    try:
        from sipdialer.api.app import create_app
        from sipdialer.api.dashboard import dashboard_router
        from sipdialer.api.server import ApiServer

        app = create_app(runner, config, extra_routers=[dashboard_router(runner, config)])
        server = ApiServer(app, config.api, grace=1.0)
        host, port = await server.start()
    except Exception as exc:  # the demo runs without the API
        log.warning("the API could not start: %s", exc)
        return None, f"not started ({exc})"
    token = config.api.tokens[0]
    return server, (
        f"http://{host}:{port}/ (dashboard; /docs for the API; X-Access-Token"
        f" {token.token}, X-Key {token.key})"
    )


async def _watch(
    runner: DialerRunner,
    campaign_id: str,
    queue: asyncio.Queue[dict[str, Any]],
    began: float,
    time_limit: float,
    on_frame: FrameSink | None,
) -> bool:
    """Frames until the campaign finished (True) or the time limit stopped it (False)."""
    stopped_at: float | None = None
    while True:
        ended = []
        while not queue.empty():
            event = queue.get_nowait()
            if event.get("type") == "call_ended":
                ended.append(event)
        view = runner.campaign_view(campaign_id)
        elapsed = time.monotonic() - began
        if on_frame is not None:
            on_frame(Frame(elapsed, runner.agent_views(), view, ended))
        if view.state == "finished" and view.in_flight == 0:
            return True
        if stopped_at is None and elapsed > time_limit:
            log.warning("time limit of %.0f s reached: stopping the campaign", time_limit)
            runner.set_campaign_state(campaign_id, False)
            stopped_at = elapsed
        if stopped_at is not None and (view.in_flight == 0 or elapsed > stopped_at + STOP_GRACE):
            return False
        await asyncio.sleep(FRAME_EVERY)


def _audit_store(engine: Any, campaign_id: str, members: list[DemoMember]) -> Audit:
    store = MemberStore(engine)
    facts: list[MemberFacts] = []
    offset = 0
    while True:
        page = store.list(campaign_id, offset=offset, limit=PAGE)
        for r in page.members:
            facts.append(
                MemberFacts(
                    r.member_id,
                    r.status,
                    r.state.ended_with,
                    r.state.attempts,
                    r.state.next_call_at is not None,
                    r.state.numbers[0].number if r.state.numbers else "",
                )  # fmt: skip
            )
        offset += PAGE
        if offset >= page.total:
            break
    attempts: list[AuditAttempt] = []
    seen: set[int] = set()
    offset = 0
    attempt_store = AttemptStore(engine)
    while True:
        records = attempt_store.for_campaign(campaign_id, offset=offset, limit=PAGE)
        for record in records:
            if record.id not in seen:
                seen.add(record.id)
                ended = record.state == "ended"
                attempts.append(AuditAttempt(record.member_id, attempt_facts(record), ended))
        if len(records) < PAGE:
            break
        offset += PAGE
    return audit(facts, attempts, kinds_by_number(members))
