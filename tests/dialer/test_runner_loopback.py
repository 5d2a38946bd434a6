"""The runner in this process over loopback SIP: PhoneSystem + DialerRunner + SimTrunk +
SimPhones, real UDP on 127.0.0.1, SQLite in tmp_path.

What each test shows: a feature code (*1 dialed from the agent's phone) makes the agent
Available in the engine and calls start; the facade's views, snapshot and change events;
stop / run / members_added(auto_run) / terminate and the API errors (NotWaiting, KeyError);
a member waiting for a result survives a crash of the runner (``restore_waiting``) and is
judged by a status result afterwards; and SIGTERM of a real ``sipdialer run`` hangs up the
live call, judges and commits it (no attempt left in flight) and exits 0.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from helpers import free_port
from runner_rig import (
    MIN_SUCCESS,
    SHORT,
    TIMERS,
    DialerProcess,
    Live,
    Setup,
    check_store,
    prepare_store,
    start_live,
    write_config,
)
from sqlalchemy import text

from sipdialer.dialer.agents import AgentStatus
from sipdialer.dialer.dispositions import NotWaiting, StatusResult
from sipdialer.simulate.behaviour import Behaviour
from sipdialer.simulate.phones import PhoneBehaviour, SimPhone
from sipdialer.simulate.trunk import SimTrunk
from sipdialer.sip.peer import Peer
from sipdialer.store.attempts import AttemptStore
from sipdialer.store.db import open_engine
from sipdialer.store.member_rows import NewMember
from sipdialer.store.members import MemberStore
from sipdialer.store.sync import load_agents

AGENTS = ("701", "702")


async def dial_feature(phone: SimPhone, code: str, dialer: tuple[str, int]) -> None:
    """The agent's phone calls a feature code (the dialer answers, beeps, hangs up)."""
    rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rtp.bind(("127.0.0.1", 0))
    port = rtp.getsockname()[1]
    body = (
        f"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\n"
    ).encode()
    endpoint = phone.endpoint
    endpoint.ua.invite(
        f"sip:{code}@{dialer[0]}:{dialer[1]}", Peer("UDP", *dialer), endpoint.now,
        from_uri=f"sip:{phone.user}@{dialer[0]}", body=body, credentials=phone.account,
    )  # fmt: skip
    endpoint.flush()
    await asyncio.sleep(0.3)
    rtp.close()


@pytest.fixture
async def trunk() -> AsyncIterator[tuple[str, int]]:
    """The simulated trunk's address (``runner_rig.SHORT``)."""
    sim = SimTrunk(SHORT, username="dialer", password="trunkpw", rtp_ports="45000-45399",
                   timers=TIMERS, tcp=False)  # fmt: skip
    address = await sim.start()
    try:
        yield address
    finally:
        await sim.close()


def setup(tmp_path: Path, trunk: tuple[str, int], campaign_extra: str = "") -> Setup:
    return Setup(f"sqlite:///{tmp_path / 'loop.db'}", trunk, AGENTS, rtp_ports="45400-45799",
                 campaign_extra=campaign_extra)  # fmt: skip


async def test_feature_code_views_and_events(tmp_path: Path, trunk: tuple[str, int]) -> None:
    config = write_config(tmp_path / "c.toml", setup(tmp_path, trunk))
    db, campaign_id, _ = prepare_store(config, ["1000001", "1000002", "5000003"])
    live = await start_live(config, AGENTS)
    events = live.runner.subscribe()
    try:
        runner = live.runner
        assert runner.resolve_campaign("loop") == campaign_id
        assert runner.resolve_campaign(campaign_id) == campaign_id
        assert runner.resolve_campaign("nope") is None
        await asyncio.sleep(0.3)
        assert runner.attempts.for_campaign(campaign_id) == []  # agents are LoggedOut
        assert live.system.address is not None
        await dial_feature(live.phones[0], "*1", live.system.address)
        await live.wait_for(lambda: live.system.agents["701"].status is AgentStatus.AVAILABLE)
        await live.wait_for(lambda: bool(runner.live_calls()), timeout=5)
        call = runner.live_calls()[0]
        assert call.agent == "701" and call.campaign == campaign_id
        assert runner.agent_views()[0].call is not None
        await live.wait_for(lambda: runner.campaign_view(campaign_id).state == "finished")
        view = runner.campaign_view(campaign_id)
        assert view.counts["ended"] == 3 and view.lines_in_use == 0 and view.in_flight == 0
        assert view.causes == {"NORMAL_CLEARING": 2, "UNALLOCATED_NUMBER": 1}
        agents = {a.id: a for a in runner.agent_views()}
        assert agents["701"].calls == 3 and agents["702"].calls == 0
        assert agents["701"].registered and agents["701"].status == "Available"
        snapshot = runner.snapshot()
        json.dumps(snapshot)  # JSON-able
        assert {c["name"] for c in snapshot["campaigns"]} == {"loop"}
        seen: list[dict[str, object]] = []
        while not events.empty():
            seen.append(events.get_nowait())
        kinds = {str(e["type"]) for e in seen}
        assert {"agent", "call", "call_ended", "campaign"} <= kinds
        json.dumps(seen)
        assert sum(n for (_, _), n in runner.metrics.calls.items()) == 3
        assert runner.metrics.leases >= 3
        assert load_agents(runner.db)["701"].status == "Available"  # persisted
        check_store(runner.db, campaign_id)
    finally:
        live.runner.unsubscribe(events)
        await live.close()
        db.dispose()


async def test_stop_run_terminate_and_errors(tmp_path: Path, trunk: tuple[str, int]) -> None:
    config = write_config(tmp_path / "c.toml", setup(tmp_path, trunk))
    db, campaign_id, _ = prepare_store(config, ["1000001"], available=AGENTS)
    live = await start_live(config, AGENTS)
    runner = live.runner
    try:
        await live.wait_for(lambda: runner.campaign_view(campaign_id).state == "finished")
        with pytest.raises(KeyError):
            runner.set_agent_status("nobody", AgentStatus.AVAILABLE)
        with pytest.raises(KeyError):
            runner.campaign_view("nope")
        first = runner.members.list(campaign_id).members[0].member_id
        with pytest.raises(NotWaiting):
            runner.member_status(campaign_id, first, StatusResult(success=True))
        with pytest.raises(KeyError):
            runner.member_status(campaign_id, 999, StatusResult(success=True))
        runner.set_campaign_state(campaign_id, False)
        assert runner.campaign_view(campaign_id).state == "stopped"
        added = runner.members.add_many(campaign_id, _new(["1000002", "2000003"])).added
        runner.members_added(campaign_id)
        await asyncio.sleep(0.5)
        assert all(not runner.attempts.for_member(m) for m in added)  # stopped: no call
        runner.terminate_member(campaign_id, added[1])
        record = runner.members.get(added[1])
        assert record is not None and record.state.ended_with == "MANAGER_REQUEST"
        runner.set_campaign_state(campaign_id, True)
        await live.wait_for(lambda: runner.campaign_view(campaign_id).state == "finished")
        record = runner.members.get(added[0])
        assert record is not None and record.state.ended_with == "NORMAL_CLEARING"
        runner.set_agent_status("701", AgentStatus.BREAK)
        assert live.system.agents["701"].status is AgentStatus.BREAK
        # autoRun: members arrive for the finished campaign and start it again
        more = runner.members.add_many(campaign_id, _new(["1000004"])).added
        runner.members_added(campaign_id, auto_run=True)
        await live.wait_for(lambda: bool(runner.attempts.for_member(more[0])))
        await live.wait_for(lambda: runner.campaign_view(campaign_id).state == "finished")
        assert {a.agent_id for a in runner.attempts.for_member(more[0])} == {"702"}
        check_store(runner.db, campaign_id)
    finally:
        await live.close()
        db.dispose()


def _new(numbers: list[str]) -> list[NewMember]:
    return [NewMember((n,), f"x{n}") for n in numbers]


async def test_waiting_member_survives_a_crash(tmp_path: Path, trunk: tuple[str, int]) -> None:
    extra = "wait_for_result = true\nwrap_up_time = 30"
    config = write_config(tmp_path / "c.toml", setup(tmp_path, trunk, campaign_extra=extra))
    db, campaign_id, ids = prepare_store(config, ["1000001"], available=AGENTS)
    (member_id,) = ids
    live: Live | None = await start_live(config, AGENTS)
    try:
        assert live is not None
        runner = live.runner
        await live.wait_for(lambda: runner.campaign_view(campaign_id).waiting == 1)
        await live.close(crash=True)  # the process dies while the member waits
        live = await start_live(config, AGENTS)
        runner = live.runner
        view = runner.campaign_view(campaign_id)
        assert view.waiting == 1 and view.state == "running"
        runner.member_status(campaign_id, member_id, StatusResult(success=True, comment="sold"))
        record = runner.members.get(member_id)
        assert record is not None and record.state.ended_with == "NORMAL_CLEARING"
        (attempt,) = runner.attempts.for_member(member_id)
        assert attempt.disposition == "ok" and attempt.row["result"]["comment"] == "sold"
        with pytest.raises(NotWaiting):
            runner.member_status(campaign_id, member_id, StatusResult(success=True))
        await live.wait_for(lambda: runner.campaign_view(campaign_id).state == "finished")
        check_store(runner.db, campaign_id)
    finally:
        if live is not None:
            await live.close()
        db.dispose()


@pytest.mark.timeout(60)
async def test_sigterm_hangs_up_judges_and_exits(tmp_path: Path) -> None:
    forever = (Behaviour(r"^1", ring=0.1),)  # answers, talks until our BYE
    sim = SimTrunk(forever, rtp_ports="45000-45399", timers=TIMERS, tcp=False)
    address = await sim.start()
    port = free_port()
    db_url = f"sqlite:///{tmp_path / 'term.db'}"
    config = write_config(tmp_path / "t.toml", Setup(db_url, address, AGENTS[:1],
                          listen=f"127.0.0.1:{port}", rtp_ports="45400-45799"))  # fmt: skip
    db, campaign_id, ids = prepare_store(config, ["1000001"], available=AGENTS[:1])
    dialer = DialerProcess(tmp_path / "t.toml", tmp_path / "t.log")
    phone = SimPhone(AGENTS[0], "pw-701", ("127.0.0.1", port), PhoneBehaviour(answer_after=0.1),
                     rtp_ports="45800-45999", timers=TIMERS)  # fmt: skip
    try:
        await dialer.start()
        await phone.start()
        for _ in range(200):
            if sim.calls and sim.calls[0].answered_at is not None:
                break
            await asyncio.sleep(0.05)
        assert sim.calls and sim.calls[0].answered_at is not None
        await asyncio.sleep(MIN_SUCCESS + 0.5)  # a conversation: OK, not a failed try
        assert await dialer.terminate() == 0
    finally:
        if dialer.proc is not None and dialer.proc.returncode is None:
            await dialer.kill()
        await phone.close()
        await sim.close()
    engine = open_engine(db_url)
    (member_id,) = ids
    (attempt,) = AttemptStore(engine).for_member(member_id)
    assert attempt.state == "ended" and attempt.cause == "SYSTEM_SHUTDOWN", attempt
    assert attempt.disposition == "ok", attempt  # the dialer's own shutdown after a talk
    record = MemberStore(engine).get(member_id)
    assert record is not None and record.status == "ended" and record.lease_owner is None
    assert record.state.ended_with == "NORMAL_CLEARING"
    assert "closed" in dialer.log_text() and "Traceback" not in dialer.log_text()
    engine.dispose()
    db.dispose()


async def test_store_failure_stops_the_node_before_the_call(
    tmp_path: Path, trunk: tuple[str, int]
) -> None:
    config = write_config(tmp_path / "c.toml", setup(tmp_path, trunk))
    db, campaign_id, ids = prepare_store(config, ["1000001"])
    live = await start_live(config, AGENTS[:1])
    try:
        with db.begin() as connection:  # the attempts table disappears under the node
            connection.execute(text("ALTER TABLE attempts RENAME TO attempts_gone"))
        live.runner.set_agent_status("701", AgentStatus.AVAILABLE)
        await asyncio.wait_for(live.runner.failed.wait(), 5)
        await asyncio.sleep(0.3)
        assert live.phones[0].calls == []  # StartAttempt failed: the phone never rang
        (member_id,) = ids
        record = live.runner.members.get(member_id)
        assert record is not None and record.status == "leased"  # recover() gives it back
        assert live.runner.broken
    finally:
        await live.close()
        db.dispose()
