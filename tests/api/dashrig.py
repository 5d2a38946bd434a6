"""The running dialer for the dashboard, console and metrics tests: PhoneSystem +
DialerRunner + the API (with the dashboard's and metrics' routers) on uvicorn, a SimTrunk
and SimPhones, all on 127.0.0.1 with ports the OS picks.

Campaigns: ``demo`` (agents 101-103, no waiting: members 1xxx answer and talk ``TALK``
s, 2xxx are busy, 3xxx are rejected 404) and ``wfr`` (agent 201 only, wait_for_result
with a ``WRAP_UP`` s deadline; its numbers 1xxx answer after ``RING`` s and talk
``TALK`` s). Both start stopped, so a test decides when dialing starts. Only the agents
passed to :func:`running_dialer` get a phone (the others stay unregistered).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from sipdialer.api.app import create_app
from sipdialer.api.dashboard import Dashboard
from sipdialer.api.metrics import metrics_router
from sipdialer.api.server import ApiServer
from sipdialer.app import PhoneSystem
from sipdialer.config import Config, parse_config
from sipdialer.dialer.runner import DialerRunner
from sipdialer.simulate.behaviour import Behaviour
from sipdialer.simulate.phones import PhoneBehaviour, SimPhone
from sipdialer.simulate.trunk import SimTrunk
from sipdialer.sip.timers import TimerConfig

TIMERS = TimerConfig(t1=0.02, t2=0.16, t4=0.2)
TOKEN, KEY = "dash-token", "dash-key"
HEADERS = {"X-Access-Token": TOKEN, "X-Key": KEY}
RING, TALK, WRAP_UP = 0.3, 0.6, 20
PASSWORDS = {"101": "pw101", "102": "pw102", "103": "pw103", "201": "pw201"}
BEHAVIOURS = (
    Behaviour(r"^1", ring=RING, talk=TALK),  # answered; the trunk hangs up after TALK
    Behaviour(r"^2", ring=0.1, status=486),
    Behaviour(r"^3", ring=0.1, status=404),
)
ALWAYS = "\n".join(f'{day} = ["00:00-24:00"]' for day in "mon tue wed thu fri sat sun".split())


def config_text(db: Path, trunk: tuple[str, int], rtp: str) -> str:
    agents = "\n".join(
        f'[[agents]]\nid = "{agent}"\nname = "Agent {agent}"\npassword = "{password}"\n'
        f"call_timeout = 5\nwrap_up_time = 0.3\n"
        for agent, password in PASSWORDS.items()
    )
    return f"""
[sip]
listen = "127.0.0.1:0"
t1 = {TIMERS.t1}
t2 = {TIMERS.t2}
t4 = {TIMERS.t4}
qualify_interval = 0
[media]
rtp_ports = "{rtp}"
[store]
url = "sqlite:///{db}"
[api]
listen = "127.0.0.1:0"
tokens = [{{ token = "{TOKEN}", key = "{KEY}" }}]
[[trunks]]
name = "sim"
address = "{trunk[0]}:{trunk[1]}"
cps = 1000
[[routes]]
pattern = "^[0-9]+$"
trunk = "sim"
{agents}
[[calendars]]
name = "always"
timezone = "UTC"
[calendars.week]
{ALWAYS}
[[campaigns]]
name = "demo"
calendar = "always"
limit = 3
retry_wait = 600
max_retries = 1
min_success_duration = 0
agents = ["101", "102", "103"]
variables = {{ product = "demo" }}
[[campaigns]]
name = "wfr"
calendar = "always"
limit = 1
wait_for_result = true
wrap_up_time = {WRAP_UP}
retry_wait = 600
max_retries = 5
min_success_duration = 0
agents = ["201"]
"""


@dataclass
class Rig:
    config: Config
    system: PhoneSystem
    runner: DialerRunner
    dashboard: Dashboard
    trunk: SimTrunk
    phones: dict[str, SimPhone]
    client: httpx.AsyncClient
    base: str

    def campaign(self, name: str) -> str:
        return self.runner.campaign_ids()[name]

    async def add_members(self, campaign: str, members: Sequence[dict[str, Any]]) -> None:
        reply = await self.client.post(f"/api/v2/dialer/{campaign}/members", json=list(members))
        assert reply.status_code in (200, 201), reply.text


async def until(check: Callable[[], Any], timeout: float = 10.0, step: float = 0.05) -> Any:
    """Poll ``check()`` until it returns something truthy; that value."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = check()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"condition not met in {timeout} s")
        await asyncio.sleep(step)


@contextlib.asynccontextmanager
async def running_dialer(
    tmp_path: Path,
    *,
    phones: Sequence[str] = ("101", "102", "103"),
    answer_after: float = 0.2,
    ports: int = 53000,
) -> AsyncIterator[Rig]:
    """The whole dialer, both campaigns stopped, phones registered for ``phones``."""
    trunk = SimTrunk(BEHAVIOURS, timers=TIMERS, rtp_ports=f"{ports + 200}-{ports + 399}",
                     tcp=False)  # fmt: skip
    trunk_address = await trunk.start()
    config = parse_config(config_text(tmp_path / "dash.db", trunk_address,
                                      f"{ports}-{ports + 199}"))  # fmt: skip
    system = PhoneSystem(config)
    address = await system.start()
    runner = DialerRunner(config, system, node="dash-test")
    await runner.start()
    for campaign_id in runner.campaign_ids().values():
        runner.set_campaign_state(campaign_id, False)
    dashboard = Dashboard(runner, config)
    app = create_app(runner, config, extra_routers=[
        dashboard.router, metrics_router(runner, config, system, sessions=dashboard.sessions),
    ])  # fmt: skip
    server = ApiServer(app, config.api, grace=1.0)
    host, port = await server.start()
    sims: dict[str, SimPhone] = {}
    for index, agent in enumerate(phones):
        low = ports + 400 + 50 * index
        sims[agent] = SimPhone(agent, PASSWORDS[agent], address,
                               PhoneBehaviour(answer_after=answer_after),
                               rtp_ports=f"{low}-{low + 49}", timers=TIMERS)  # fmt: skip
        await sims[agent].start()
    base = f"http://{host}:{port}"
    client = httpx.AsyncClient(base_url=base, headers=HEADERS, timeout=5.0)
    try:
        await until(lambda: all(system.registrar.is_registered(a) for a in phones))
        yield Rig(config, system, runner, dashboard, trunk, sims, client, base)
    finally:
        await client.aclose()
        for sim in sims.values():
            await sim.close()
        await runner.close()
        await dashboard.hub.close()
        await server.close()
        await system.close()
        await trunk.close()
