"""PostgreSQL only: SKIP LOCKED between two connections, two nodes draining a campaign.

Runs when SIPDIALER_TEST_PG_URL is set (``.ci/run`` starts a server and sets it)."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from storeutil import at, campaign_ids, needs_pg

from sipdialer.dialer.commands import LeaseMember
from sipdialer.dialer.runner_store import LOCK_RECHECK, RunnerStore, line_lock_key
from sipdialer.store.db import open_engine
from sipdialer.store.members import MemberStore, NewMember
from sipdialer.store.migrations import migrate

pytestmark = needs_pg


def test_a_row_locked_by_another_node_is_skipped_not_waited_for(pg_url: str) -> None:
    engine, other = open_engine(pg_url), open_engine(pg_url)
    migrate(engine)
    cid = campaign_ids(engine)["reminders"]
    store = MemberStore(engine)
    first = store.add(cid, ["1"], priority=5)
    second = store.add(cid, ["2"], priority=5)
    low = store.add(cid, ["3"], priority=1)
    with other.connect() as connection, connection.begin():
        # another node is in the middle of leasing `first`: its row is locked
        connection.execute(text("SELECT id FROM members WHERE id = :id FOR UPDATE"),
                           {"id": first})  # fmt: skip
        started = time.monotonic()
        leased = store.lease_next(cid, at(0), owner="n1")
        assert time.monotonic() - started < 1.0  # skipped, not waited for
        assert leased is not None and leased.member_id == second
        # the top level holds only the locked row now: its level is passed, not waited on
        leased = store.lease_next(cid, at(0), owner="n1")
        assert leased is not None and leased.member_id == low
        assert store.lease_next(cid, at(0), owner="n1") is None  # only the locked one left
    leased = store.lease_next(cid, at(0), owner="n1")  # the lock is gone
    assert leased is not None and leased.member_id == first
    engine.dispose()
    other.dispose()


def test_two_nodes_never_lease_the_same_member(pg_url: str) -> None:
    setup = open_engine(pg_url)
    migrate(setup)
    cid = campaign_ids(setup)["reminders"]
    MemberStore(setup).add_many(cid, [NewMember([str(i)], priority=i % 4) for i in range(400)])
    got: dict[str, list[int]] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(3)

    def node(owner: str) -> None:
        engine = open_engine(pg_url)
        store = MemberStore(engine)
        mine: list[int] = []
        try:
            barrier.wait()
            while (leased := store.lease_next(cid, at(0), owner=owner)) is not None:
                mine.append(leased.member_id)
                time.sleep(0)  # let the others in between two leases
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            got[owner] = mine
            engine.dispose()

    threads = [threading.Thread(target=node, args=(f"node{i}",)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    every = [m for mine in got.values() for m in mine]
    assert len(every) == 400 and len(set(every)) == 400
    assert sum(1 for mine in got.values() if mine) >= 2  # they really competed
    setup.dispose()


def test_a_node_holding_the_line_lock_does_not_stall_another_nodes_lease(pg_url: str) -> None:
    """The shared line limit's advisory lock is tried, never waited for: the lease runs on
    the event loop that relays media, so a node stalled while holding the lock must not
    stall this one. A refused lease is empty and due again LOCK_RECHECK later."""
    engine, other = open_engine(pg_url), open_engine(pg_url)
    migrate(engine)
    cid = campaign_ids(engine)["reminders"]
    MemberStore(engine).add(cid, ["1"], priority=5)
    store = RunnerStore(engine, "n1", lambda t: datetime.fromtimestamp(t, UTC), shared_limit=True)
    command = LeaseMember(cid, "agent", frozenset({None}))
    now = datetime.now(UTC)
    with other.connect() as connection:  # node 2, stuck inside its lease
        connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": line_lock_key(cid)})
        started = time.monotonic()
        refused = store.lease(command, now, limit=4)
        assert time.monotonic() - started < 0.5
        assert refused.member is None and refused.remaining is None
        assert refused.next_due == now + timedelta(seconds=LOCK_RECHECK)
        connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": line_lock_key(cid)})
    leased = store.lease(command, now, limit=4)
    assert leased.member is not None
    engine.dispose()
    other.dispose()
