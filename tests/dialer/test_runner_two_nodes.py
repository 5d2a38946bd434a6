"""Two ``sipdialer run`` processes on one PostgreSQL: one campaign, shared line limit.

Each node has its own three agents (SimPhones), its own SIP port and RTP range, and its
own node name (``SIPDIALER_NODE``); both run the same campaign (``limit = 4``) from one
PostgreSQL database (a fresh schema in ``SIPDIALER_TEST_PG_URL``; skipped only when it is
unset). Six agents could hold six lines; the campaign's limit is shared through the store
(``runner_store``: every node's leased members count against the one ``limit``), so at no
instant are more than four attempts in flight over both nodes.

Checked on the store at the end: every member finished with its prefix's cause, no member
leased twice (no member in two attempts at once, over both nodes), counted attempts add
up, both nodes dialed, and the attempts in flight at once never exceed the limit.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import free_port
from runner_rig import (
    PASSWORD,
    SHORT,
    TIMERS,
    TRUNK_END,
    DialerProcess,
    Setup,
    campaign_state,
    check_store,
    max_overlap,
    numbers_for,
    prepare_store,
    write_config,
)
from sqlalchemy import text

from sipdialer.simulate.phones import PhoneBehaviour, SimPhone
from sipdialer.simulate.trunk import SimTrunk
from sipdialer.store.db import open_engine
from sipdialer.store.sync import save_agent, sync_config

PG_URL = os.environ.get("SIPDIALER_TEST_PG_URL", "")
NODES = {"node-a": ("601", "602", "603"), "node-b": ("604", "605", "606")}
LIMIT = 4
FINISH_BOUND = 45.0


@pytest.fixture
def pg_schema_url() -> Iterator[str]:
    """A URL whose connections use a fresh, private schema (dropped afterwards)."""
    if not PG_URL:
        pytest.skip("SIPDIALER_TEST_PG_URL is not set")
    name = "t_" + secrets.token_hex(6)
    admin = open_engine(PG_URL)
    with admin.begin() as connection:
        connection.execute(text(f"CREATE SCHEMA {name}"))
    separator = "&" if "?" in PG_URL else "?"
    try:
        yield f"{PG_URL}{separator}options=-csearch_path%3D{name}"
    finally:
        with admin.begin() as connection:
            connection.execute(text(f"DROP SCHEMA {name} CASCADE"))
        admin.dispose()


@pytest.mark.timeout(100)
async def test_two_nodes_share_one_campaign(tmp_path: Path, pg_schema_url: str) -> None:
    trunk = SimTrunk(SHORT, username="dialer", password="trunkpw", rtp_ports="48000-48399",
                     timers=TIMERS, tcp=False)  # fmt: skip
    address = await trunk.start()
    configs = {}
    ports = {}
    for index, (node, agents) in enumerate(NODES.items()):
        ports[node] = free_port()
        base = 48400 + 400 * index
        setup = Setup(pg_schema_url, address, agents, listen=f"127.0.0.1:{ports[node]}",
                      limit=LIMIT, retry_wait=0.5, rtp_ports=f"{base}-{base + 199}")  # fmt: skip
        configs[node] = (tmp_path / f"{node}.toml", write_config(tmp_path / f"{node}.toml", setup))
    numbers = numbers_for(20)
    first = next(iter(NODES))
    db, campaign_id, by_id = prepare_store(configs[first][1], numbers, available=NODES[first],
                                           expire_7_after=8.0)  # fmt: skip
    for node, agents in list(NODES.items())[1:]:
        sync_config(db, configs[node][1])
        for agent_id in agents:
            save_agent(db, agent_id, status="Available", state="Waiting", node=None,
                       no_answer_count=0, calls=0, idle_since=None)  # fmt: skip
    dialers = {
        node: DialerProcess(path, tmp_path / f"{node}.log", env={"SIPDIALER_NODE": node})
        for node, (path, _) in configs.items()
    }
    phones: list[SimPhone] = []
    try:
        await asyncio.gather(*(d.start() for d in dialers.values()))
        for node, agents in NODES.items():
            for agent_id in agents:
                phone = SimPhone(agent_id, PASSWORD.format(id=agent_id),
                                 ("127.0.0.1", ports[node]), PhoneBehaviour(answer_after=0.15),
                                 rtp_ports="49400-49799", timers=TIMERS)  # fmt: skip
                await phone.start()
                phones.append(phone)
        deadline = time.monotonic() + FINISH_BOUND
        while campaign_state(db, campaign_id) != "finished" or not all(
            "finished: no member left" in d.log_text() for d in dialers.values()
        ):
            assert time.monotonic() < deadline, "campaign did not finish on both nodes"
            await asyncio.sleep(0.2)
        codes = await asyncio.gather(*(d.terminate() for d in dialers.values()))
        assert codes == [0, 0]
    finally:
        for dialer in dialers.values():
            if dialer.proc is not None and dialer.proc.returncode is None:
                await dialer.kill()
        for phone in phones:
            await phone.close()
        await trunk.close()
    check = check_store(db, campaign_id)  # includes: no member in two attempts at once
    for member_id, cause in check.ends.items():
        assert cause == TRUNK_END[by_id[member_id][0]], check.attempts[member_id]
    attempts = [a for rows in check.attempts.values() for a in rows]
    by_node = {node: sum(1 for a in attempts if a["node"] == node) for node in NODES}
    assert all(by_node.values()), by_node  # both nodes dialed
    spans = [(a["created_at"], a["ended_at"]) for a in attempts]
    overlap = max_overlap(spans)  # type: ignore[arg-type]
    print(f"\ntwo nodes: attempts by node {by_node}, at most {overlap} at once (limit {LIMIT})")
    assert overlap <= LIMIT
    for dialer in dialers.values():
        assert "Traceback" not in dialer.log_text()
    db.dispose()
