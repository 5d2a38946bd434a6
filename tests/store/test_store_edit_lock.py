"""Edits, deletes and manager ends never give back a member another node leased.

Review defect: ``edit_member`` read the row unlocked and then wrote ``status = ready`` and
``lease_owner = NULL``: a node leasing the member in between lost its lease (and a third
node could lease it again). The row is now locked (FOR UPDATE on PostgreSQL, so a lease's
SKIP LOCKED passes it over) and the write is conditional on the member not being leased.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from storeutil import at, campaign_ids, needs_pg

import sipdialer.store.api_queries as api_queries
from sipdialer.dialer.dispositions import MemberState, Number
from sipdialer.dialer.member_source import LeaseError
from sipdialer.store.db import open_engine
from sipdialer.store.members import MemberStore
from sipdialer.store.migrations import migrate


@needs_pg
def test_a_lease_during_an_edit_is_not_undone(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    engine, node_b = open_engine(pg_url), open_engine(pg_url)
    migrate(engine)
    cid = campaign_ids(engine)["reminders"]
    store = MemberStore(engine)
    mid = store.add(cid, ["5551001"])
    leased: list[object] = []
    real = api_queries.state_of

    def lease_meanwhile(
        row: Mapping[Any, Any], numbers: Sequence[Mapping[Any, Any]]
    ) -> MemberState:
        # Node B leases while the edit's transaction is between its read and its write.
        leased.append(MemberStore(node_b).lease_next(cid, at(0), owner="nodeB"))
        return real(row, numbers)

    monkeypatch.setattr(api_queries, "state_of", lease_meanwhile)
    try:
        api_queries.edit_member(
            engine, mid, {"communications": (Number("5551001"), Number("5551002"))}
        )
        assert leased == [None]  # the row was locked: skipped, not leased
        record = store.get(mid)
        assert record is not None and record.status == "ready"
        assert [n.number for n in record.state.numbers] == ["5551001", "5551002"]
        monkeypatch.undo()
        taken = MemberStore(node_b).lease_next(cid, at(0), owner="nodeB")
        assert taken is not None and taken.member_id == mid
        assert store.lease_next(cid, at(0), owner="nodeC") is None  # one lease only
    finally:
        node_b.dispose()
        engine.dispose()


def test_a_leased_member_is_neither_edited_deleted_nor_ended(engine: Engine) -> None:
    cid = campaign_ids(engine)["reminders"]
    store = MemberStore(engine)
    mid = store.add(cid, ["5551001"])
    assert store.lease_next(cid, at(0), owner="nodeB") is not None
    with pytest.raises(LeaseError):
        api_queries.edit_member(engine, mid, {"name": "x"})
    with pytest.raises(LeaseError):
        store.delete(mid)
    assert store.end_unleased(mid, "MANAGER_REQUEST") is False
    record = store.get(mid)
    assert record is not None and record.status == "leased" and record.lease_owner == "nodeB"
    assert record.state.ended_with is None


def test_end_unleased_ends_a_ready_member_once(engine: Engine) -> None:
    cid = campaign_ids(engine)["reminders"]
    store = MemberStore(engine)
    mid = store.add(cid, ["5551001"])
    assert store.end_unleased(mid, "MANAGER_REQUEST") is True
    record = store.get(mid)
    assert record is not None and record.status == "ended"
    assert record.state.ended_with == "MANAGER_REQUEST"
    assert store.end_unleased(mid, "OTHER") is False  # over already: kept as it ended
    assert store.end_unleased(10**6, "MANAGER_REQUEST") is False  # gone
