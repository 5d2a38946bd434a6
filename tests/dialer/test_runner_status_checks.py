"""A status result whose ``next_communication`` is another member's number (review defect).

The runner refuses it before the engine judges the member (DuplicateNumber, HTTP 409),
so the node keeps running and the member keeps waiting for a valid result; and a number
taken between that check and the SaveMember is dropped, never a store failure.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from helpers import free_port
from runner_rig import SHORT, TIMERS, Setup, prepare_store, start_live, write_config

from sipdialer.dialer.commands import SaveMember
from sipdialer.dialer.dispositions import Number, StatusResult
from sipdialer.dialer.runner_store import RunnerStore
from sipdialer.simulate.trunk import SimTrunk
from sipdialer.store.member_rows import DuplicateNumber
from sipdialer.store.members import MemberStore

AGENTS = ("701",)


@pytest.fixture
async def trunk() -> AsyncIterator[tuple[str, int]]:
    sim = SimTrunk(SHORT, username="dialer", password="trunkpw", rtp_ports="43000-43199",
                   timers=TIMERS, tcp=False)  # fmt: skip
    address = await sim.start()
    try:
        yield address
    finally:
        await sim.close()


async def test_next_communication_of_another_member_is_refused(
    tmp_path: Path, trunk: tuple[str, int]
) -> None:
    extra = "wait_for_result = true\nwrap_up_time = 30"
    s = Setup(f"sqlite:///{tmp_path / 'd.db'}", trunk, AGENTS, listen=f"127.0.0.1:{free_port()}",
              rtp_ports="43200-43399", limit=1, campaign_extra=extra)  # fmt: skip
    config = write_config(tmp_path / "c.toml", s)
    db, cid, ids = prepare_store(config, ["1000001", "1000002"], available=AGENTS)
    live = await start_live(config, AGENTS, phone_ports="43400-43599")
    try:
        runner = live.runner
        await live.wait_for(lambda: runner.campaign_view(cid).waiting == 1)
        waiting = next(m for m in ids if runner.members.get(m).status == "waiting")  # type: ignore[union-attr]
        other = next(m for m in ids if m != waiting)
        with pytest.raises(DuplicateNumber, match=f"member {other}"):
            runner.member_status(cid, waiting, StatusResult(next_communication=ids[other]))
        assert not runner.broken and not runner.failed.is_set()
        assert runner.campaign_view(cid).waiting == 1  # not judged: still waits
        record = runner.members.get(waiting)
        assert record is not None and record.status == "waiting"
        # A valid result is still taken.
        runner.member_status(cid, waiting, StatusResult(success=True))
        record = runner.members.get(waiting)
        assert record is not None and record.state.ended_with == "NORMAL_CLEARING"
        assert not runner.broken
    finally:
        await live.close()
        db.dispose()


def test_number_taken_after_the_check_is_dropped_not_a_store_failure(tmp_path: Path) -> None:
    s = Setup(f"sqlite:///{tmp_path / 'd.db'}", ("127.0.0.1", 5060), AGENTS)
    config = write_config(tmp_path / "c.toml", s)
    db, cid, ids = prepare_store(config, ["1000001", "1000002"])
    try:
        first, second = sorted(ids)
        store = RunnerStore(db, "node", lambda at: datetime.fromtimestamp(at, UTC))
        record = MemberStore(db).get(first)
        assert record is not None
        stopped = tuple(replace(n, active=False) for n in record.state.numbers)
        state = replace(record.state, numbers=(*stopped, Number(ids[second], priority=1)))
        store.save_member(SaveMember(cid, first, state, None))  # must not raise
        saved = MemberStore(db).get(first)
        assert saved is not None
        assert [n.number for n in saved.state.numbers] == [ids[first]]
        assert saved.state.ended_with == "NO_COMMUNICATIONS"  # nothing active was left
    finally:
        db.dispose()


async def test_refund_missed_result_from_the_config_file(
    tmp_path: Path, trunk: tuple[str, int]
) -> None:
    """``refund_missed_result = true``: the deadline passing refunds the waiting attempt."""
    extra = "wait_for_result = true\nwrap_up_time = 0.5\nrefund_missed_result = true"
    s = Setup(f"sqlite:///{tmp_path / 'r.db'}", trunk, AGENTS, listen=f"127.0.0.1:{free_port()}",
              rtp_ports="43200-43399", limit=1, retry_wait=60.0, campaign_extra=extra)  # fmt: skip
    config = write_config(tmp_path / "r.toml", s)
    assert config.campaigns[0].refund_missed_result is True
    db, cid, ids = prepare_store(config, ["1000001"], available=AGENTS)
    (member_id,) = ids
    live = await start_live(config, AGENTS, phone_ports="43400-43599")
    try:
        runner = live.runner
        assert runner.engine.campaign(cid).settings.policy.refund_missed_result is True
        await live.wait_for(lambda: runner.campaign_view(cid).waiting == 1)
        await live.wait_for(lambda: runner.campaign_view(cid).waiting == 0)
        (attempt,) = runner.attempts.for_member(member_id)
        assert attempt.disposition == "minus", attempt  # refunded, not a failed try
        record = runner.members.get(member_id)
        assert record is not None and record.status == "ready" and record.state.attempts == 0
    finally:
        await live.close()
        db.dispose()
