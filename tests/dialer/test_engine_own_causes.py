"""The dialer's own hangups are not the member's failures (review defects).

* Its own SYSTEM_SHUTDOWN (``runner.close()``, ``hangup_by`` DIALER): a bridged call that
  talked ``min_success_duration`` is OK (member ends NORMAL_CLEARING); anything shorter is
  refunded, as a crash's PROCESS_CRASH is. A SYSTEM_SHUTDOWN from the far end is judged as
  before (in no list: counted like Retry).
* Its own trunk gate refusing the member leg (congestion with no ringing, no SIP code):
  refunded (MINUS, not counted); a trunk's 503 congestion still counts.
* ``next_communication`` above a number at the top priority: capped at 2**31-1 (the
  store's 32-bit column), not an overflow.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from engine_rig import T0, Rig, campaign, of

from sipdialer.calls.events import CallEnded, CallResult, Side
from sipdialer.dialer.commands import FinishAttempt
from sipdialer.dialer.dispositions import (
    PRIORITY_MAX,
    MemberState,
    Number,
    choose_number,
    next_communication,
)
from sipdialer.dialer.dispositions import DispositionKind as K


def ended(
    rig: Rig,
    call_id: str,
    cause: str,
    *,
    talk: float | None,
    by: Side,
    at: float,
    ringing: bool = True,
    sip_code: int | None = None,
) -> FinishAttempt:
    """The agent answered; the call ends with ``cause`` (``talk`` s bridged, None: never)."""
    rig.answer_agent(call_id, T0 + 1)
    result = CallResult(
        call_id, created_at=T0, ended_at=at, cause=cause, cause_q850=0, sip_code=sip_code,
        hangup_by=by, agent_answered_at=T0 + 1, member_ringing_at=T0 + 2 if ringing else None,
        bridged_at=None if talk is None else at - talk,
    )  # fmt: skip
    (finish,) = of(rig.feed(CallEnded(call_id, at, result), at), FinishAttempt)
    assert isinstance(finish, FinishAttempt)
    return finish


def started(**fields: Any) -> tuple[Rig, int, str]:
    rig = Rig([campaign(**fields)])
    member = rig.add("c", "100")
    (offer,) = rig.offers(rig.start())
    return rig, member, offer.order.call_id


def test_shutdown_after_a_conversation_is_ok() -> None:
    rig, member, call_id = started(max_retries=1)
    finish = ended(rig, call_id, "SYSTEM_SHUTDOWN", talk=300.0, by=Side.DIALER, at=T0 + 305)
    assert finish.disposition.kind is K.OK
    state = rig.state(member)
    assert (state.ended_with, state.attempts) == ("NORMAL_CLEARING", 1)


def test_shutdown_before_a_conversation_is_refunded() -> None:
    for talk in (None, 2.0):  # never bridged; shorter than min_success_duration (10 s)
        rig, member, call_id = started(max_retries=1)
        finish = ended(rig, call_id, "SYSTEM_SHUTDOWN", talk=talk, by=Side.DIALER, at=T0 + 20)
        assert finish.disposition.kind is K.REFUND
        assert finish.disposition.attempts_delta == 0
        state = rig.state(member)
        assert state.attempts == 0 and state.ended_with is None, talk


def test_a_far_end_shutdown_is_still_judged_as_before() -> None:
    rig, member, call_id = started(max_retries=1)
    finish = ended(rig, call_id, "SYSTEM_SHUTDOWN", talk=300.0, by=Side.MEMBER, at=T0 + 305)
    assert finish.disposition.kind is K.RETRY
    assert rig.state(member).ended_with == "MAX_TRY_COUNT"


def test_own_trunk_gate_refusal_is_refunded() -> None:
    for cause in ("NORMAL_CIRCUIT_CONGESTION", "SWITCH_CONGESTION"):
        rig, member, call_id = started(max_retries=1)
        finish = ended(rig, call_id, cause, talk=None, by=Side.DIALER, at=T0 + 3, ringing=False)
        assert finish.disposition.kind is K.MINUS, cause
        state = rig.state(member)
        assert state.attempts == 0 and state.ended_with is None and state.next_call_at
        assert state.numbers[0].attempts == 0


def test_a_trunk_congestion_answer_still_counts() -> None:
    rig, member, call_id = started(max_retries=1)
    finish = ended(rig, call_id, "NORMAL_CIRCUIT_CONGESTION", talk=None, by=Side.MEMBER,
                   at=T0 + 3, ringing=False, sip_code=503)  # fmt: skip
    assert finish.disposition.attempts_delta == 1
    assert rig.state(member).ended_with == "MAX_TRY_COUNT"


def test_next_communication_priority_is_capped_at_int32() -> None:
    top = MemberState((Number("5550001", priority=PRIORITY_MAX, last_tried=datetime.now(UTC)),))
    state = next_communication(top, "5550002")
    assert [n.priority for n in state.numbers] == [PRIORITY_MAX, PRIORITY_MAX]
    chosen = choose_number(state)
    assert chosen is not None and chosen.number == "5550002"  # untried goes first on a tie
