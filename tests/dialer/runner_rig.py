"""Shared pieces of the runner tests: a short trunk table, a config, members, store checks.

``SHORT`` is the simulator's DEFAULT_BEHAVIOURS (same prefixes, same statuses, same order)
with talk and ring times cut so that a whole campaign runs in seconds; ``TRUNK_END`` of
``test_engine_virtual.py`` holds for it with ``min_success_duration = 1`` (9 talks 0.4 s).
``check_store`` asserts the crash test's invariants on the store's rows.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine

from sipdialer.app import PhoneSystem
from sipdialer.config import Config, parse_config
from sipdialer.dialer.runner import DialerRunner
from sipdialer.simulate.behaviour import Behaviour
from sipdialer.simulate.phones import PhoneBehaviour, SimPhone
from sipdialer.sip.timers import TimerConfig
from sipdialer.store.member_rows import NewMember
from sipdialer.store.members import MemberStore
from sipdialer.store.migrations import open_store
from sipdialer.store.schema import attempts as attempts_table
from sipdialer.store.schema import campaigns as campaigns_table
from sipdialer.store.schema import members as members_table
from sipdialer.store.sync import save_agent, sync_config

TIMERS = TimerConfig(t1=0.02, t2=0.16, t4=0.2)
SHORT: tuple[Behaviour, ...] = (
    Behaviour(r"^\+?1", ring=0.2, talk=1.2),
    Behaviour(r"^\+?2", ring=0.1, status=486),
    Behaviour(r"^\+?3", status=0),
    Behaviour(r"^\+?4", ring=0.1, status=603),
    Behaviour(r"^\+?5", status=404),
    Behaviour(r"^\+?6", ring=0.1, status=480),
    Behaviour(r"^\+?7", status=503),
    Behaviour(r"^\+?8", ring=0.3, early_media=True, tone=425.0, talk=1.0),
    Behaviour(r"^\+?9", ring=0.1, talk=0.4),
    Behaviour(r"^\+?0", ring=0.2, challenge=True, talk=1.2),
)
"DEFAULT_BEHAVIOURS, short. 3 rings until the route's call_timeout (CALL_TIMEOUT)."
CALL_TIMEOUT = 1.0
MIN_SUCCESS = 1.0
TRUNK_END = {
    "0": "NORMAL_CLEARING",
    "1": "NORMAL_CLEARING",
    "2": "MAX_TRY_COUNT",
    "3": "MAX_TRY_COUNT",
    "4": "MAX_TRY_COUNT",
    "5": "UNALLOCATED_NUMBER",
    "6": "MAX_TRY_COUNT",
    "7": "MEMBER_EXPIRED",
    "8": "NORMAL_CLEARING",
    "9": "MAX_TRY_COUNT",
}
"As test_engine_virtual.TRUNK_END (the same table, min_success_duration between 0.4 and 1)."
PASSWORD = "pw-{id}"


@dataclass(frozen=True)
class Setup:
    db_url: str
    trunk: tuple[str, int]
    agents: Sequence[str]
    listen: str = "127.0.0.1:0"
    rtp_ports: str = "46000-46399"
    limit: int = 3
    retry_wait: float = 1.0
    wrap_up: float = 0.2
    campaign: str = "loop"
    campaign_agents: Sequence[str] | None = None
    "Agents of the campaign's tiers (default: ``agents``)."
    campaign_extra: str = ""
    "More ``[[campaigns]]`` keys, TOML lines."


def config_text(s: Setup) -> str:
    agents = "".join(
        f'[[agents]]\nid = "{a}"\nname = "Agent {a}"\npassword = "{PASSWORD.format(id=a)}"\n'
        f"call_timeout = 3\nwrap_up_time = {s.wrap_up}\nno_answer_delay = 1\n"
        "busy_delay = 1\nreject_delay = 1\n"
        for a in s.agents
    )
    tiers = ", ".join(f'"{a}"' for a in (s.campaign_agents or s.agents))
    days = "\n".join(f'{d} = ["00:00-24:00"]' for d in "mon tue wed thu fri sat sun".split())
    return f"""
[sip]
listen = "{s.listen}"
t1 = {TIMERS.t1}
t2 = {TIMERS.t2}
t4 = {TIMERS.t4}
qualify_interval = 0
[media]
rtp_ports = "{s.rtp_ports}"
media_timeout = 10
[store]
url = "{s.db_url}"
[[trunks]]
name = "sim"
address = "{s.trunk[0]}:{s.trunk[1]}"
username = "dialer"
password = "trunkpw"
cps = 200
max_calls = 50
[[routes]]
pattern = "^3"
trunk = "sim"
variables = {{ call_timeout = {CALL_TIMEOUT} }}
[[routes]]
pattern = "^[0-9]+$"
trunk = "sim"
{agents}
[[calendars]]
name = "always"
timezone = "UTC"
[calendars.week]
{days}
[[campaigns]]
name = "{s.campaign}"
calendar = "always"
limit = {s.limit}
retry_wait = {s.retry_wait}
max_retries = 3
min_success_duration = {MIN_SUCCESS}
agents = [{tiers}]
{s.campaign_extra}
"""


def write_config(path: Path, setup: Setup) -> Config:
    text = config_text(setup)
    path.write_text(text, encoding="utf-8")
    return parse_config(text)


def prepare_store(
    config: Config,
    numbers: Iterable[str],
    *,
    available: Iterable[str] = (),
    expire_7_after: float = 6.0,
) -> tuple[Engine, str, dict[int, str]]:
    """Sync the file, add one member per number (7s expire soon), make agents Available.

    Returns the engine, the campaign id and member id -> number.
    """
    engine = open_store(config.store.url)
    report = sync_config(engine, config)
    campaign_id = report.campaign_ids[config.campaigns[0].name]
    expire = datetime.now(UTC) + timedelta(seconds=expire_7_after)
    batch = [
        NewMember((n,), f"m{i}", expire=expire if n.startswith("7") else None)
        for i, n in enumerate(numbers)
    ]
    added = MemberStore(engine).add_many(campaign_id, batch)
    for agent_id in available:
        save_agent(engine, agent_id, status="Available", state="Waiting", node=None,
                   no_answer_count=0, calls=0, idle_since=None)  # fmt: skip
    by_id = dict(zip(added.added, [item.numbers[0] for item in batch], strict=True))
    return engine, campaign_id, {k: str(v) for k, v in by_id.items()}


def numbers_for(count: int, digits: str = "0123456789") -> list[str]:
    return [f"{digits[i % len(digits)]}{i:06d}" for i in range(count)]


@dataclass
class StoreCheck:
    ends: dict[int, str]
    attempts: dict[int, list[dict[str, Any]]]


def check_store(engine: Engine, campaign_id: str) -> StoreCheck:
    """Every member in exactly one final state; attempts closed and adding up; nobody
    called after a success; no member in two attempts at once."""
    with engine.connect() as connection:
        rows = [
            dict(r._mapping)
            for r in connection.execute(
                select(members_table).where(members_table.c.campaign_id == campaign_id)
            )
        ]
        tries = [
            dict(r._mapping)
            for r in connection.execute(
                select(attempts_table)
                .where(attempts_table.c.campaign_id == campaign_id)
                .order_by(attempts_table.c.id)
            )
        ]
    by_member: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for attempt in tries:
        by_member[int(str(attempt["member_id"]))].append(attempt)
    ends: dict[int, str] = {}
    for row in rows:
        member_id = row["id"]
        assert row["status"] == "ended", row
        assert row["ended_with"], row
        assert row["lease_owner"] is None, row
        mine = by_member[member_id]
        assert all(a["state"] == "ended" for a in mine), mine  # nothing in flight
        assert all(a["disposition"] != "waiting" for a in mine), mine
        counted = sum(int(str(a["counted"])) for a in mine)
        assert row["attempts"] == counted, (row, mine)
        ok = [i for i, a in enumerate(mine) if a["disposition"] == "ok"]
        if ok:  # nobody is called again after a success
            assert ok == [len(mine) - 1], mine
        spans = sorted((a["created_at"], a["ended_at"]) for a in mine)
        for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
            assert end is not None and start >= end, spans  # never two at once
        ends[member_id] = str(row["ended_with"])
    return StoreCheck(ends, dict(by_member))


# --- `sipdialer run` as a real process ------------------------------------------------------


class DialerProcess:
    """``python -m sipdialer run -c FILE`` with its log in a file; started, killed, stopped."""

    def __init__(self, config_path: Path, log_path: Path, env: dict[str, str] | None = None):
        self.config_path = config_path
        self.log_path = log_path
        self.env = env or {}
        self.proc: asyncio.subprocess.Process | None = None
        self.starts = 0

    async def start(self, ready_timeout: float = 20.0) -> None:
        """Start and wait for the runner's "dialer node" line (store synced, recovered)."""
        self.starts += 1
        marker = f"--- start {self.starts}\n"
        with self.log_path.open("a", encoding="utf-8") as log:
            log.write(marker)
        offset = self.log_path.stat().st_size
        log_file = self.log_path.open("ab")
        env = os.environ | self.env
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "sipdialer", "run", "-c", str(self.config_path),
            stdin=asyncio.subprocess.DEVNULL, stdout=log_file, stderr=log_file, env=env,
        )  # fmt: skip
        log_file.close()
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            with self.log_path.open("rb") as log:
                log.seek(offset)
                if b"dialer node" in log.read():
                    return
            if self.proc.returncode is not None:
                break
            await asyncio.sleep(0.05)
        raise AssertionError(f"sipdialer run did not start: see {self.log_path}")

    async def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()

    async def terminate(self, timeout: float = 15.0) -> int:
        """SIGTERM, wait for the exit; returns its code (kills after ``timeout``)."""
        assert self.proc is not None
        if self.proc.returncode is not None:
            return self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            await self.kill()
            raise

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


def campaign_state(engine: Engine, campaign_id: str) -> str:
    with engine.connect() as connection:
        return str(
            connection.execute(
                select(campaigns_table.c.state).where(campaigns_table.c.id == campaign_id)
            ).scalar_one()
        )


def max_overlap(spans: Iterable[tuple[datetime, datetime]]) -> int:
    """The largest number of intervals open at one instant."""
    points = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    best = now = 0
    for _, step in points:
        now += step
        best = max(best, now)
    return best


# --- the runner in this process -------------------------------------------------------------


@dataclass
class Live:
    """A PhoneSystem + DialerRunner in this event loop, with registered SimPhones."""

    system: PhoneSystem
    runner: DialerRunner
    phones: list[SimPhone]

    async def close(self, *, crash: bool = False) -> None:
        """Close everything; ``crash`` skips the runner's close (as if the process died)."""
        for phone in self.phones:
            await phone.close()
        if not crash:
            await self.runner.close()
        await self.system.close()
        self.runner.db.dispose()

    async def wait_for(self, check: Callable[[], bool], timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            assert time.monotonic() < deadline, "timed out"
            await asyncio.sleep(0.05)


async def start_live(
    config: Config, agents: Sequence[str], *, node: str = "test-node",
    behaviour: PhoneBehaviour | None = None, phone_ports: str = "45800-45999",
) -> Live:  # fmt: skip
    system = PhoneSystem(config)
    address = await system.start()
    runner = DialerRunner(config, system, node=node)
    await runner.start()
    phones = []
    for agent_id in agents:
        phone = SimPhone(agent_id, PASSWORD.format(id=agent_id), address,
                         behaviour or PhoneBehaviour(answer_after=0.15),
                         rtp_ports=phone_ports, timers=TIMERS)  # fmt: skip
        await phone.start()
        phones.append(phone)
    return Live(system, runner, phones)
