"""Crash test over real processes: ``sipdialer run`` SIGKILLed at random moments, restarted.

The dialer runs as ``python -m sipdialer run -c FILE`` on a fixed SIP port with SQLite; the
simulated trunk (``runner_rig.SHORT``) and four SimPhones run in this test's event loop.
The campaign (24 members over every prefix of the table, retry_wait 0.5 s) is killed with
SIGKILL at 10 moments drawn from a seeded random generator and restarted each time; after
the last start it runs to ``finished`` and is stopped with SIGTERM (exit 0).

Then, on the store: every member is in exactly one final state with the cause the table
gives its prefix (nothing lost, nothing judged twice), counted attempts add up to the
members' attempt counts, nobody was called again after a success, no member was in two
attempts at once, nothing is left in flight, and the kills did hit calls in flight (their
attempts were closed as PROCESS_CRASH, refunded, not counted). ~30-40 s of wall time.
"""

from __future__ import annotations

import asyncio
import random
import time
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
    numbers_for,
    prepare_store,
    write_config,
)

from sipdialer.simulate.phones import PhoneBehaviour, SimPhone
from sipdialer.simulate.trunk import SimTrunk
from sipdialer.store.db import open_engine

AGENTS = ("501", "502", "503", "504")
KILLS = 10
SEED = 20261202
FINISH_BOUND = 45.0
"Seconds the campaign may take after the last restart."


@pytest.mark.timeout(110)
async def test_sigkill_at_random_moments(tmp_path: Path) -> None:
    rnd = random.Random(SEED)
    trunk = SimTrunk(SHORT, username="dialer", password="trunkpw", rtp_ports="47000-47399",
                     timers=TIMERS, tcp=False)  # fmt: skip
    address = await trunk.start()
    port = free_port()
    db_url = f"sqlite:///{tmp_path / 'crash.db'}"
    setup = Setup(db_url, address, AGENTS, listen=f"127.0.0.1:{port}", limit=4,
                  retry_wait=0.5, rtp_ports="47400-47799")  # fmt: skip
    config = write_config(tmp_path / "crash.toml", setup)
    numbers = numbers_for(24)
    db, campaign_id, by_id = prepare_store(config, numbers, available=AGENTS,
                                           expire_7_after=20.0)  # fmt: skip
    dialer = DialerProcess(tmp_path / "crash.toml", tmp_path / "crash.log")
    phones: list[SimPhone] = []
    moments: list[float] = []
    try:
        await dialer.start()
        for agent_id in AGENTS:
            phone = SimPhone(agent_id, PASSWORD.format(id=agent_id), ("127.0.0.1", port),
                             PhoneBehaviour(answer_after=0.15, hangup_after=4.0),
                             rtp_ports="47800-47999", timers=TIMERS)  # fmt: skip
            await phone.start()
            phones.append(phone)
        for _ in range(KILLS):
            moment = rnd.uniform(0.2, 2.2)
            moments.append(moment)
            await asyncio.sleep(moment)
            await dialer.kill()
            await dialer.start()
        deadline = time.monotonic() + FINISH_BOUND
        while campaign_state(db, campaign_id) != "finished":
            assert time.monotonic() < deadline, "campaign did not finish: " + dialer.log_text()
            await asyncio.sleep(0.2)
        assert await dialer.terminate() == 0
    finally:
        if dialer.proc is not None and dialer.proc.returncode is None:
            await dialer.kill()
        for phone in phones:
            await phone.close()
        await trunk.close()
    check = check_store(open_engine(db_url), campaign_id)
    for member_id, cause in check.ends.items():
        number = by_id[member_id]
        assert cause == TRUNK_END[number[0]], (number, check.attempts[member_id])
    crashed = [a for rows in check.attempts.values() for a in rows if a["cause"] == "PROCESS_CRASH"]
    assert crashed, "no kill hit a call in flight"
    assert all(a["disposition"] == "refund" and a["counted"] == 0 for a in crashed)
    log = dialer.log_text()
    assert log.count("recovered after a crash") >= 1
    assert "Traceback" not in log, log
    total = sum(len(rows) for rows in check.attempts.values())
    print(f"\ncrash test: {KILLS} kills at {[round(m, 2) for m in moments]} s, {total} attempts,"
          f" {len(crashed)} closed as PROCESS_CRASH")  # fmt: skip
