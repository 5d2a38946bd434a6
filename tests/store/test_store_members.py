"""Members in the store: duplicates refused, dispositions round trip, attempts, listing."""

from __future__ import annotations

import pytest
from sqlalchemy import insert
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from storeutil import at, campaign_ids

from sipdialer.calls.events import CallResult, Side
from sipdialer.dialer.dispositions import (
    AttemptOutcome,
    CauseSets,
    DispositionPolicy,
    MemberState,
    Number,
    StatusResult,
    apply_result,
    decide,
)
from sipdialer.store.attempts import AttemptEnd, AttemptStore
from sipdialer.store.members import DuplicateNumber, MemberStore, NewMember
from sipdialer.store.schema import communications

POLICY = DispositionPolicy(
    causes=CauseSets(error=["UNALLOCATED_NUMBER"], retry=["NO_ANSWER", "USER_BUSY"],
                     ok=["NORMAL_CLEARING"], minus=["NORMAL_TEMPORARY_FAILURE"]),
    retry_wait=60, max_retries=3, min_success_duration=10,
)  # fmt: skip


def test_duplicates_are_refused_with_the_reason(engine: Engine) -> None:
    ids = campaign_ids(engine)
    cid = ids["reminders"]
    store = MemberStore(engine)
    first = store.add(cid, ["+100", "+101"], name="ann")
    report = store.add_many(
        cid,
        [
            NewMember(["+200"], name="bob"),
            NewMember(["+300", "+101"], name="taken"),  # +101 belongs to ann
            NewMember(["+200"], name="again"),  # bob's, earlier in this batch
            NewMember(["+400", "+400"], name="twice"),
            NewMember([], name="none"),
            NewMember(["+500"], name="eve"),
        ],
    )
    assert len(report.added) == 2
    reasons = {r.name: (r.index, r.number, r.reason) for r in report.refused}
    assert reasons == {
        "taken": (1, "+101", f"number '+101' is already a number of member {first}"),
        "again": (2, "+200", "number '+200' is also in entry 0 of this batch"),
        "twice": (3, "+400", "number '+400' is given twice for this member"),
        "none": (4, "", "a member needs at least one number"),
    }
    with pytest.raises(DuplicateNumber, match="already a number of member"):
        store.add(cid, ["+500"])
    assert store.add(ids["other"], ["+500"]) > 0  # unique per campaign, not globally
    assert store.counts(cid)["ready"] == 3
    # the database itself refuses, whatever the code path
    with pytest.raises(IntegrityError), engine.begin() as connection:
        connection.execute(insert(communications).values(
            member_id=first, campaign_id=cid, number="+100", position=9, priority=0,
            active=True, attempts=0))  # fmt: skip


def _result(call_id: str, cause: str, *, bridged: bool, talk: float = 0.0) -> CallResult:
    return CallResult(
        call_id=call_id, created_at=0.0, ended_at=20.0 + talk, cause=cause, cause_q850=16,
        sip_code=200 if bridged else 486, hangup_by=Side.MEMBER, agent_answered_at=2.0,
        member_ringing_at=3.0, member_answered_at=20.0 if bridged else None,
        bridged_at=20.0 if bridged else None, trunk="provider", dialed="9100",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("cause", "bridged", "talk", "kind", "status"),
    [
        ("USER_BUSY", False, 0.0, "retry", "ready"),
        ("NORMAL_CLEARING", True, 30.0, "ok", "ended"),
        ("NORMAL_CLEARING", True, 2.0, "retry", "ready"),
        ("UNALLOCATED_NUMBER", False, 0.0, "error", "ready"),  # the other number is left
        ("NORMAL_TEMPORARY_FAILURE", False, 0.0, "minus", "ready"),
    ],
)
def test_dispositions_round_trip(
    engine: Engine, cause: str, bridged: bool, talk: float, kind: str, status: str
) -> None:
    """Lease, judge with the pure rules, release with the attempt: what comes back out of
    the store is exactly the state the rules produced, and the attempt row says so."""
    cid = campaign_ids(engine)["reminders"]
    store, log = MemberStore(engine), AttemptStore(engine)
    mid = store.add(cid, [Number("+1", priority=1), "+2"], name="m", variables={"k": "v"})
    leased = store.lease_next(cid, at(0), owner="n1")
    assert leased is not None and leased.variables == {"k": "v"}
    number = leased.state.numbers[0].number
    log.start(call_id="c1", campaign_id=cid, member_id=mid, number=number, owner="n1",
              created_at=at(0), agent_id="101")  # fmt: skip
    result = _result("c1", cause, bridged=bridged, talk=talk)
    outcome = AttemptOutcome(cause, at(result.ended_at), number=number, bridged=bridged,
                             talk_seconds=result.talk_seconds, agent_connected=True)  # fmt: skip
    disposition = decide(outcome, leased.state, POLICY)
    assert disposition.kind.value == kind
    end = AttemptEnd.from_call(result, disposition, wall=at)
    store.release(mid, disposition.member, owner="n1", attempt=end)
    record = store.get(mid)
    assert record is not None
    assert record.state == disposition.member and record.status == status
    assert (record.lease_owner, record.ended_at is not None) == (None, status == "ended")
    attempt = log.get("c1")
    assert attempt is not None and attempt.state == "ended"
    assert (attempt.disposition, attempt.counted) == (kind, disposition.attempts_delta)
    row = attempt.row
    assert (row["sip_code"], row["trunk"], row["dialed"], row["hangup_by"]) == (
        result.sip_code,
        "provider",
        "9100",
        "member",
    )
    assert row["agent_answered_at"] == at(2.0) and row["ended_at"] == at(result.ended_at)
    assert row["talk_seconds"] == pytest.approx(talk)


def test_waiting_for_result_and_status_result(engine: Engine) -> None:
    cid = campaign_ids(engine)["reminders"]
    store, log = MemberStore(engine), AttemptStore(engine)
    policy = DispositionPolicy(causes=POLICY.causes, wait_for_result=True, retry_wait=60)
    mid = store.add(cid, ["+1"])
    leased = store.lease_next(cid, at(0), owner="n1")
    assert leased is not None
    log.start(call_id="w1", campaign_id=cid, member_id=mid, number="+1", owner="n1",
              created_at=at(0))  # fmt: skip
    waiting = decide(AttemptOutcome("NORMAL_CLEARING", at(40), bridged=True, talk_seconds=30,
                                    agent_connected=True), leased.state, policy)  # fmt: skip
    end = AttemptEnd.from_call(_result("w1", "NORMAL_CLEARING", bridged=True), waiting, at)
    store.release(mid, waiting.member, owner="n1", attempt=end, result_deadline=at(100))
    record = store.get(mid)
    assert record is not None and record.status == "waiting"
    assert record.result_deadline == at(100) and record.state.waiting_on == "+1"
    assert store.lease_next(cid, at(1000), owner="n1") is None  # never dialed while waiting
    body = StatusResult(next_communication="+9", next_after_sec=5, comment="call later")
    judged = apply_result(record.state, body, policy, at(50))
    store.save(mid, judged.member, disposition=judged,
               result={"next_communication": "+9", "comment": "call later"})  # fmt: skip
    record = store.get(mid)
    assert record is not None and record.state == judged.member and record.status == "ready"
    assert [n.number for n in record.state.numbers] == ["+1", "+9"]  # the new number added
    attempt = log.get("w1")
    assert attempt is not None
    assert (attempt.disposition, attempt.counted) == ("retry", 1)
    assert attempt.row["result"] == {"next_communication": "+9", "comment": "call later"}
    assert attempt.row["comment"] == "call later"


def test_a_new_number_taken_elsewhere_is_refused_and_nothing_changes(engine: Engine) -> None:
    cid = campaign_ids(engine)["reminders"]
    store = MemberStore(engine)
    mid = store.add(cid, ["+1"])
    store.add(cid, ["+2"])
    leased = store.lease_next(cid, at(0), owner="n1")
    assert leased is not None and leased.member_id == mid
    bad = MemberState((*leased.state.numbers, Number("+2")), attempts=5)
    with pytest.raises(DuplicateNumber):
        store.release(mid, bad, owner="n1")
    record = store.get(mid)
    assert record is not None and record.status == "leased" and record.state == leased.state


def test_list_filters_and_pages(engine: Engine) -> None:
    cid = campaign_ids(engine)["reminders"]
    store = MemberStore(engine)
    store.add_many(cid, [NewMember([f"+{i}"], name=f"name {i}") for i in range(25)])
    page = store.list(cid, offset=10, limit=10)
    assert page.total == 25 and [r.name for r in page.members][:2] == ["name 10", "name 11"]
    assert page.members[0].state.numbers == (Number("+10"),)
    assert store.list(cid, name="name 2").total == 6  # "name 2", "name 20" .. "name 24"
    leased = store.lease_next(cid, at(0), owner="n1")
    assert leased is not None
    assert [r.member_id for r in store.list(cid, status="leased").members] == [leased.member_id]
    assert store.list(cid, ended_with="MAX_TRY_COUNT").total == 0
    assert store.delete(page.members[0].member_id) and store.list(cid).total == 24
    assert not store.delete(10_000)
    with pytest.raises(ValueError):
        store.list(cid, limit=0)
