"""The lease contract on the SQL store: order, filters, no double lease, recovery."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine
from storeutil import at, campaign_ids

from sipdialer.dialer.dispositions import MemberState
from sipdialer.dialer.member_source import LeaseError
from sipdialer.store.attempts import PROCESS_CRASH, AttemptStore
from sipdialer.store.members import MemberStore, NewMember
from sipdialer.store.schema import members


def drain(store: MemberStore, campaign: str, now_s: float = 0, **kw: object) -> list[str]:
    names = []
    while (leased := store.lease_next(campaign, at(now_s), owner="n1", **kw)) is not None:  # type: ignore[arg-type]
        names.append(leased.name)
    return names


def test_order_priority_then_due_time_then_insertion(engine: Engine) -> None:
    cid = campaign_ids(engine)["reminders"]
    store = MemberStore(engine)
    store.add_many(
        cid,
        [
            NewMember(["1"], name="low-now", priority=0),
            NewMember(["2"], name="high-later", priority=5, next_call_at=at(-10)),
            NewMember(["3"], name="high-earlier", priority=5, next_call_at=at(-20)),
            NewMember(["4"], name="high-now-a", priority=5),  # null: "now", first of its level
            NewMember(["5"], name="high-now-b", priority=5),
            NewMember(["6"], name="mid", priority=2, next_call_at=at(0)),
            NewMember(["7"], name="future", priority=9, next_call_at=at(60)),
        ],
    )
    assert drain(store, cid) == [
        "high-now-a", "high-now-b", "high-earlier", "high-later", "mid", "low-now",
    ]  # fmt: skip
    assert drain(store, cid, now_s=60) == ["future"]  # due once its time came


def test_future_member_is_not_due_and_levels_fall_through(engine: Engine) -> None:
    cid = campaign_ids(engine)["reminders"]
    store = MemberStore(engine)
    # the top level is all in the future: the next level down is served
    store.add_many(cid, [NewMember([f"9{i}"], name=f"top{i}", priority=9, next_call_at=at(60))
                         for i in range(50)])  # fmt: skip
    store.add(cid, ["1"], name="low", priority=1)
    assert drain(store, cid) == ["low"]
    assert len(drain(store, cid, now_s=60)) == 50
    assert store.next_due(cid) is None  # nothing ready left


def test_ended_waiting_leased_expired_and_other_campaigns_are_skipped(engine: Engine) -> None:
    ids = campaign_ids(engine)
    cid = ids["reminders"]
    store = MemberStore(engine)
    expired = store.add(cid, ["1"], name="expired", expire=at(0))
    keep = store.add(cid, ["2"], name="ok", expire=at(1))
    store.add(ids["other"], ["3"], name="elsewhere")
    waiting = store.add(cid, ["4"], name="waiting")
    leased = store.lease_next(cid, at(0), owner="n1")
    assert leased is not None and leased.member_id == keep  # "expired": expire <= now
    w = store.lease_next(cid, at(0), owner="n1")
    assert w is not None and w.member_id == waiting
    store.release(waiting, MemberState(w.state.numbers, waiting_on="4"), owner="n1")
    assert store.get(waiting).status == "waiting"  # type: ignore[union-attr]
    assert store.lease_next(cid, at(0), owner="n1") is None
    assert store.expire_members(cid, at(0)) == [expired]
    record = store.get(expired)
    assert record is not None and record.state.ended_with == "MEMBER_EXPIRED"
    assert record.status == "ended"


def test_zones(engine: Engine) -> None:
    cid = campaign_ids(engine)["reminders"]
    store = MemberStore(engine)
    store.add(cid, ["1"], name="kyiv", timezone="Europe/Kyiv")
    store.add(cid, ["2"], name="nozone")
    store.add(cid, ["3"], name="ny", timezone="America/New_York")
    assert store.zones(cid) == {"Europe/Kyiv", None, "America/New_York"}
    assert store.lease_next(cid, at(0), owner="n", zones=()) is None
    assert drain(store, cid, zones={"America/New_York"}) == ["ny"]
    assert drain(store, cid, zones={None}) == ["nozone"]
    assert drain(store, cid, zones={None, "Europe/Kyiv"}) == ["kyiv"]


def test_release_only_by_owner_and_lease_columns(engine: Engine) -> None:
    cid = campaign_ids(engine)["reminders"]
    store = MemberStore(engine)
    mid = store.add(cid, ["1"])
    leased = store.lease_next(cid, at(0), owner="node-a")
    assert leased is not None and leased.member_id == mid
    record = store.get(mid)
    assert record is not None and (record.status, record.lease_owner) == ("leased", "node-a")
    with pytest.raises(LeaseError):
        store.release(mid, leased.state, owner="node-b")
    with pytest.raises(LeaseError):
        store.save(mid, leased.state)
    store.release(mid, leased.state, owner="node-a")
    with pytest.raises(LeaseError):
        store.release(mid, leased.state, owner="node-a")  # not leased any more
    record = store.get(mid)
    assert record is not None and (record.status, record.lease_owner) == ("ready", None)


def test_recover_closes_in_flight_attempts_and_frees_only_that_owner(engine: Engine) -> None:
    cid = campaign_ids(engine)["reminders"]
    store, log = MemberStore(engine), AttemptStore(engine)
    for i in range(3):
        store.add(cid, [str(i)], name=f"m{i}")
    a = store.lease_next(cid, at(0), owner="crashed")
    b = store.lease_next(cid, at(0), owner="crashed")
    c = store.lease_next(cid, at(0), owner="alive")
    assert a and b and c
    for leased, owner in ((a, "crashed"), (b, "crashed"), (c, "alive")):
        log.start(call_id=f"call-{leased.member_id}", campaign_id=cid,
                  member_id=leased.member_id, number=leased.state.numbers[0].number,
                  owner=owner, created_at=at(0), agent_id="101")  # fmt: skip
    assert store.recover("crashed", now=at(5)) == 2
    assert store.counts(cid) == {"ready": 2, "leased": 1, "waiting": 0, "ended": 0}
    crashed = log.get(f"call-{a.member_id}")
    assert crashed is not None and crashed.state == "ended"
    assert (crashed.cause, crashed.disposition, crashed.counted) == (PROCESS_CRASH, "refund", 0)
    assert crashed.ended_at == at(5)
    alive = log.get(f"call-{c.member_id}")
    assert alive is not None and alive.state == "in_flight"
    # the freed members come back unchanged (refunded: not counted), due at once
    again = store.lease_next(cid, at(5), owner="restarted")
    assert again is not None and again.member_id == a.member_id and again.state == a.state
    assert log.in_flight("crashed") == []


def test_no_double_lease_from_two_threads(url: str) -> None:
    """Two threads, each with its own engine (connections), lease until the campaign is
    empty: every member is handed out exactly once."""
    from sipdialer.store.db import open_engine
    from sipdialer.store.migrations import migrate

    first, second = open_engine(url), open_engine(url)
    migrate(first)
    cid = campaign_ids(first)["reminders"]
    MemberStore(first).add_many(cid, [NewMember([str(i)], name=str(i)) for i in range(300)])
    got: dict[str, list[int]] = {"a": [], "b": []}
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def lease(engine: Engine, owner: str) -> None:
        store = MemberStore(engine)
        try:
            start.wait()
            while (leased := store.lease_next(cid, at(0), owner=owner)) is not None:
                got[owner].append(leased.member_id)
                time.sleep(0)  # let the other thread in between two leases
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [
        threading.Thread(target=lease, args=(e, o)) for e, o in ((first, "a"), (second, "b"))
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    both = got["a"] + got["b"]
    assert len(both) == 300 and len(set(both)) == 300
    assert got["a"] and got["b"]  # both really competed
    with first.connect() as connection:
        owners = dict(connection.execute(select(members.c.id, members.c.lease_owner)).all())
    assert all(owners[i] == "a" for i in got["a"]) and all(owners[i] == "b" for i in got["b"])
    first.dispose()
    second.dispose()


def test_next_due_and_remaining(engine: Engine) -> None:
    cid = campaign_ids(engine)["reminders"]
    store = MemberStore(engine)
    assert store.next_due(cid) is None and store.remaining(cid, at(0)) == 0
    store.add(cid, ["1"], next_call_at=at(30))
    store.add(cid, ["2"], next_call_at=at(10), expire=at(20))
    assert store.next_due(cid) == at(10)
    assert store.remaining(cid, at(0)) == 2
    assert store.remaining(cid, at(25)) == 1  # the expired one no longer counts
    store.add(cid, ["3"])
    assert store.next_due(cid) is None  # one is due now
    assert store.lease_next(cid, at(0) + timedelta(seconds=1), owner="n") is not None
