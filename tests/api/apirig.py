"""The running dialer for the API tests: PhoneSystem + DialerRunner + the API on uvicorn,
all on 127.0.0.1 ports picked by the OS, with a SimTrunk and one SimPhone as agent 101.

Campaigns: ``wfr`` (wait_for_result, agent 101: its calls really happen; numbers 1xxx are
answered by the trunk, which hangs up after ``TALK`` s, so the member then waits for a
result) and ``plain`` (no agents: nothing is ever dialed, for the CRUD tests).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from sipdialer.api.app import create_app
from sipdialer.api.server import ApiServer
from sipdialer.app import PhoneSystem
from sipdialer.config import Config, parse_config
from sipdialer.dialer.runner import DialerRunner
from sipdialer.simulate.behaviour import Behaviour
from sipdialer.simulate.phones import PhoneBehaviour, SimPhone
from sipdialer.simulate.trunk import SimTrunk
from sipdialer.sip.timers import TimerConfig

PLAIN = "/api/v2/dialer/plain"
PLAIN_ID = "0123456789abcdef01234567"
WFR = "/api/v2/dialer/wfr"
TIMERS = TimerConfig(t1=0.02, t2=0.16, t4=0.2)
TOKEN, KEY = "tok-en", "k3y"
HEADERS = {"X-Access-Token": TOKEN, "X-Key": KEY}
TALK = 0.3
BEHAVIOURS = (
    Behaviour(r"^1", ring=0.05, talk=TALK),  # answered, the trunk hangs up
    Behaviour(r"^2", ring=0.05, status=486),
)


def config_text(db: Path, trunk: tuple[str, int], rtp: str) -> str:
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
tokens = [{{ token = "other", key = "pair" }}, {{ token = "{TOKEN}", key = "{KEY}" }}]
[[trunks]]
name = "sim"
address = "{trunk[0]}:{trunk[1]}"
cps = 1000
[[routes]]
pattern = "^[0-9]+$"
trunk = "sim"
[[agents]]
id = "101"
name = "Alice"
password = "secret101"
call_timeout = 5
wrap_up_time = 0
[[calendars]]
name = "always"
timezone = "UTC"
[calendars.week]
mon = ["00:00-24:00"]
tue = ["00:00-24:00"]
wed = ["00:00-24:00"]
thu = ["00:00-24:00"]
fri = ["00:00-24:00"]
sat = ["00:00-24:00"]
sun = ["00:00-24:00"]
[[campaigns]]
name = "wfr"
calendar = "always"
wait_for_result = true
wrap_up_time = 30
retry_wait = 600
max_retries = 10
min_success_duration = 0
agents = ["101"]
[[campaigns]]
name = "plain"
id = "0123456789abcdef01234567"
calendar = "always"
limit = 2
"""


@dataclass
class Rig:
    config: Config
    system: PhoneSystem
    runner: DialerRunner
    trunk: SimTrunk
    phone: SimPhone
    client: httpx.AsyncClient
    base: str

    async def wait_for(self, path: str, check: Callable[[Any], bool], timeout: float = 5.0) -> Any:
        """GET ``path`` until ``check(json)`` holds; returns that reply's JSON."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            reply = await self.client.get(path)
            assert reply.status_code == 200, reply.text
            data = reply.json()
            if check(data):
                return data
            if loop.time() > deadline:
                raise AssertionError(f"{path}: condition not met in {timeout} s; last: {data}")
            await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def running_dialer(tmp_path: Path, *, ports: int = 47000) -> AsyncIterator[Rig]:
    """The whole dialer; RTP ports from ``ports`` (300 of them: dialer, trunk, phone)."""
    rtp = f"{ports}-{ports + 99}"
    trunk = SimTrunk(BEHAVIOURS, timers=TIMERS, rtp_ports=f"{ports + 100}-{ports + 199}", tcp=False)
    trunk_address = await trunk.start()
    config = parse_config(config_text(tmp_path / "api.db", trunk_address, rtp))
    system = PhoneSystem(config)
    address = await system.start()
    runner = DialerRunner(config, system, node="api-test")
    await runner.start()
    server = ApiServer(create_app(runner, config), config.api, grace=1.0)
    host, port = await server.start()
    phone = SimPhone("101", "secret101", address, PhoneBehaviour(answer_after=0.05),
                     rtp_ports=f"{ports + 200}-{ports + 299}", timers=TIMERS)  # fmt: skip
    await phone.start()
    base = f"http://{host}:{port}"
    client = httpx.AsyncClient(base_url=base, headers=HEADERS, timeout=5.0)
    try:
        yield Rig(config, system, runner, trunk, phone, client, base)
    finally:
        await client.aclose()
        await phone.close()
        await server.close()
        await runner.close()
        await system.close()
        await trunk.close()


def member(number: str, *more: str, name: str = "", **extra: Any) -> dict[str, Any]:
    numbers = [{"number": number, "priority": 1}] + [{"number": n} for n in more]
    return {"name": name, "communications": numbers, **extra}


async def add(rig: Rig, path: str, body: Any, **params: str) -> dict[str, Any]:
    reply = await rig.client.post(f"{path}/members", json=body, params=params)
    assert reply.status_code == 200, reply.text
    data: dict[str, Any] = reply.json()
    return data


def locs(reply: httpx.Response) -> list[list[Any]]:
    assert reply.status_code == 422, reply.text
    return [error["loc"] for error in reply.json()["detail"]]
