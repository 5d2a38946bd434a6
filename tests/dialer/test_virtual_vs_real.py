"""The same small campaign in real time over loopback SIP and in virtual time: same ends.

Real: ``serve()`` (PhoneSystem + DialerRunner, SQLite) with a SimTrunk playing
``runner_rig.SHORT`` (DEFAULT_BEHAVIOURS' prefixes and statuses, short times) and three
registered SimPhones. Virtual: ``dialer/virtual.py`` on the engine with
``trunk_behaviours(SHORT)``, the same campaign settings and members. Each member must end
with the same cause after the same number of counted attempts, and both must match
``TRUNK_END``. Takes ~10 s of wall time (marked slow-ish, bounded by a timeout).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from runner_rig import (
    CALL_TIMEOUT,
    PASSWORD,
    SHORT,
    TIMERS,
    TRUNK_END,
    Setup,
    check_store,
    numbers_for,
    prepare_store,
    write_config,
)
from test_engine_virtual import TRUNK_END as ENGINE_TRUNK_END

from sipdialer.app import serve
from sipdialer.dialer.agents import AgentSettings, AgentStatus
from sipdialer.dialer.calendar import Calendar
from sipdialer.dialer.campaign import CampaignSettings
from sipdialer.dialer.engine import DialerEngine
from sipdialer.dialer.member_source import InMemoryMembers
from sipdialer.dialer.runner import DialerRunner
from sipdialer.dialer.virtual import AgentBehaviour, VirtualDialer, trunk_behaviours
from sipdialer.simulate.phones import PhoneBehaviour, SimPhone
from sipdialer.simulate.trunk import SimTrunk

AGENTS = ("301", "302", "303")
NUMBERS = numbers_for(12)
"12 members over the ten prefixes (0 and 1 twice)."
EXPIRE_7 = 8.0
RUN_BOUND = 40.0


async def run_real(tmp_path: Path) -> tuple[dict[str, str], dict[str, int]]:
    trunk = SimTrunk(SHORT, username="dialer", password="trunkpw", rtp_ports="46400-46599",
                     timers=TIMERS, tcp=False)  # fmt: skip
    address = await trunk.start()
    setup = Setup(f"sqlite:///{tmp_path / 'real.db'}", address, AGENTS, rtp_ports="46600-46799")
    config = write_config(tmp_path / "real.toml", setup)
    db, campaign_id, numbers = prepare_store(
        config, NUMBERS, available=AGENTS, expire_7_after=EXPIRE_7
    )
    db.dispose()
    started: asyncio.Future[DialerRunner] = asyncio.get_running_loop().create_future()
    stop = asyncio.Event()
    phones: list[SimPhone] = []

    async def drive(runner: DialerRunner) -> None:
        assert runner.system.address is not None
        for agent_id in AGENTS:
            phone = SimPhone(agent_id, PASSWORD.format(id=agent_id), runner.system.address,
                             PhoneBehaviour(answer_after=0.2), rtp_ports="46800-46999",
                             timers=TIMERS)  # fmt: skip
            await phone.start()
            phones.append(phone)
        while runner.campaign_view(campaign_id).state != "finished":
            await asyncio.sleep(0.1)
        started.set_result(runner)
        stop.set()

    try:
        await asyncio.wait_for(serve(config, stop, [drive]), RUN_BOUND)
    finally:
        for phone in phones:
            await phone.close()
        await trunk.close()
    runner = started.result()
    check = check_store(runner.db, campaign_id)
    ends = {numbers[m]: cause for m, cause in check.ends.items()}
    counted = {numbers[m]: sum(int(str(a["counted"])) for a in rows)
               for m, rows in check.attempts.items()}  # fmt: skip
    runner.db.dispose()
    return ends, counted


def run_virtual() -> tuple[dict[str, str], dict[str, int]]:
    from runner_rig import MIN_SUCCESS, config_text  # the same campaign keys

    from sipdialer.config import parse_config

    config = parse_config(config_text(Setup("sqlite://", ("127.0.0.1", 5060), AGENTS)))
    cfg = config.campaigns[0]
    calendar = Calendar.from_config(config.calendars[0])
    settings = CampaignSettings.from_config(cfg, calendar, campaign_id="c")
    assert settings.policy is not None and MIN_SUCCESS == cfg.min_success_duration
    t0 = datetime(2026, 3, 2, 10, tzinfo=UTC).timestamp()
    agents = [AgentSettings.from_config(a) for a in config.agents]
    engine = DialerEngine(agents, now=t0)
    engine.add_campaign(settings)
    for agent in agents:
        engine.agents[agent.id].set_registered(t0, True)
        engine.agents[agent.id].set_status(t0, AgentStatus.AVAILABLE)
    source = InMemoryMembers()
    expire = datetime.fromtimestamp(t0, UTC) + timedelta(seconds=EXPIRE_7)
    ids = {}
    for number in NUMBERS:
        ids[source.add("c", [number], expire=expire if number[0] == "7" else None)] = number
    run = VirtualDialer(
        engine, source, agent_behaviour={a: AgentBehaviour(answer_after=0.2) for a in AGENTS},
        behaviours=trunk_behaviours(SHORT, call_timeout=CALL_TIMEOUT), now=t0,
    )  # fmt: skip
    run.run(until=t0 + 3600)
    ends = {ids[m]: str(row.state.ended_with) for m, row in source.rows.items()}
    counted = {ids[m]: row.state.attempts for m, row in source.rows.items()}
    return ends, counted


@pytest.mark.timeout(60)
async def test_same_dispositions_virtual_and_real(tmp_path: Path) -> None:
    assert TRUNK_END == ENGINE_TRUNK_END  # SHORT judges every prefix as the default table
    virtual_ends, virtual_counted = run_virtual()
    assert virtual_ends == {n: TRUNK_END[n[0]] for n in NUMBERS}
    real_ends, real_counted = await run_real(tmp_path)
    assert real_ends == virtual_ends
    assert real_counted == virtual_counted
