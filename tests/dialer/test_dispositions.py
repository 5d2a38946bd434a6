"""dialer/dispositions.py: one test per rule of dialer-semantics §3/§4, table-driven."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sipdialer.calls.causes import HangupCause
from sipdialer.config import CampaignConfig
from sipdialer.dialer.dispositions import (
    AttemptOutcome,
    CauseSets,
    Disposition,
    DispositionKind,
    DispositionPolicy,
    MemberState,
    NotWaiting,
    Number,
    StatusResult,
    apply_result,
    check_expired,
    choose_number,
    decide,
    next_communication,
    result_deadline_passed,
)

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
RETRY_AT = NOW + timedelta(seconds=600)
CAMPAIGN = CampaignConfig.model_validate({"name": "c", "calendar": "office"})
POLICY = DispositionPolicy.from_config(CAMPAIGN)  # retry_wait 600, max 3, min 10 s
WAITING_POLICY = DispositionPolicy.from_config(
    CampaignConfig.model_validate({"name": "c", "calendar": "office", "wait_for_result": True})
)
K = DispositionKind


def member(attempts: int = 0, *numbers: Number, expire: datetime | None = None) -> MemberState:
    return MemberState(
        numbers=numbers or (Number("100"), Number("200")), attempts=attempts, expire=expire
    )


def outcome(cause: str | HangupCause, **fields: object) -> AttemptOutcome:
    return AttemptOutcome(cause=cause, now=NOW, number="100", **fields)  # type: ignore[arg-type]


def summary(got: Disposition) -> tuple[K, int, str | None, datetime | None]:
    return (got.kind, got.attempts_delta, got.member_ends_with, got.next_call_at)


def test_policy_from_config() -> None:
    assert (POLICY.retry_wait, POLICY.max_retries, POLICY.min_success_duration) == (600, 3, 10)
    assert not POLICY.wait_for_result and WAITING_POLICY.wait_for_result
    assert POLICY.causes.list_of("USER_BUSY") == "retry"


# --- rule 1: manager request ----------------------------------------------------------------


@pytest.mark.parametrize("cause", ["NORMAL_CLEARING", "USER_BUSY", "UNALLOCATED_NUMBER"])
@pytest.mark.parametrize("agent_connected", [False, True])
def test_manager_request_ends_the_member(cause: str, agent_connected: bool) -> None:
    fields = {"bridged": True, "talk_seconds": 60, "agent_connected": agent_connected}
    got = decide(outcome(cause, manager_request=True, **fields), member(1), WAITING_POLICY)
    assert summary(got) == (K.MANAGER_REQUEST, 0, "MANAGER_REQUEST", None)
    assert got.member.attempts == 1


# --- agent leg failed (§1): refund, offered again at once -----------------------------------


@pytest.mark.parametrize(
    "cause", ["USER_BUSY", "NO_ANSWER", "USER_NOT_REGISTERED", "CALL_REJECTED"]
)
@pytest.mark.parametrize("attempts", [0, 2])
def test_agent_leg_failure_is_refunded(cause: str, attempts: int) -> None:
    before = member(attempts)
    got = decide(outcome(cause, agent_leg_failed=True), before, POLICY)
    assert summary(got) == (K.REFUND, 0, None, NOW)
    assert got.member.numbers == before.numbers  # counters and last_tried untouched
    assert got.member.attempts == attempts


# --- rule 2: waiting for result -------------------------------------------------------------


@pytest.mark.parametrize(
    "cause",
    ["NORMAL_CLEARING", "USER_BUSY", "UNALLOCATED_NUMBER", "RECOVERY_ON_TIMER_EXPIRE", "BOGUS"],
)
def test_waiting_for_result_defers_the_verdict(cause: str) -> None:
    got = decide(outcome(cause, agent_connected=True, bridged=True), member(1), WAITING_POLICY)
    assert summary(got) == (K.WAITING, 0, None, None)
    assert got.member.waiting_on == "100" and got.member.attempts == 1
    assert got.member.number("100") == Number("100", last_tried=NOW)


@pytest.mark.parametrize(("policy", "agent_connected"), [(POLICY, True), (WAITING_POLICY, False)])
def test_no_waiting_without_both(policy: DispositionPolicy, agent_connected: bool) -> None:
    got = decide(outcome("USER_BUSY", agent_connected=agent_connected), member(), policy)
    assert got.kind is K.RETRY and not got.member.waiting


# --- rule 3: Minus --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cause",
    ["RECOVERY_ON_TIMER_EXPIRE", "NORMAL_TEMPORARY_FAILURE", HangupCause.RECOVERY_ON_TIMER_EXPIRE],
)
@pytest.mark.parametrize("attempts", [0, 2])  # even one short of max_retries
def test_minus_refunds_and_waits(cause: str | HangupCause, attempts: int) -> None:
    got = decide(outcome(cause), member(attempts), POLICY)
    assert summary(got) == (K.MINUS, 0, None, RETRY_AT)
    assert got.member.attempts == attempts
    assert got.member.number("100") == Number("100", attempts=0, last_tried=NOW)


# --- rule 4: OK -----------------------------------------------------------------------------


@pytest.mark.parametrize("talk", [10.0, 10.5, 3600.0])
def test_ok_bridged_long_enough_is_success(talk: float) -> None:
    got = decide(outcome("NORMAL_CLEARING", bridged=True, talk_seconds=talk), member(2), POLICY)
    assert (got.kind, got.member_ends_with, got.attempts_delta) == (K.OK, "NORMAL_CLEARING", 1)
    assert got.next_call_at is None and got.member.attempts == 3


@pytest.mark.parametrize(
    ("bridged", "talk", "attempts", "ends_with", "next_at"),
    [
        (False, 60.0, 0, None, RETRY_AT),  # answered but never bridged
        (True, 9.99, 0, None, RETRY_AT),  # too short
        (True, 0.0, 1, None, RETRY_AT),
        (True, 9.0, 2, "MAX_TRY_COUNT", None),  # treated as Retry: the limit applies
    ],
)
def test_ok_otherwise_treated_as_retry(
    bridged: bool, talk: float, attempts: int, ends_with: str | None, next_at: datetime | None
) -> None:
    got = decide(
        outcome("NORMAL_CLEARING", bridged=bridged, talk_seconds=talk), member(attempts), POLICY
    )
    assert summary(got) == (K.RETRY, 1, ends_with, next_at)


# --- rule 5: Retry --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cause", "attempts", "ends_with", "next_at"),
    [
        ("USER_BUSY", 0, None, RETRY_AT),
        ("NO_ANSWER", 1, None, RETRY_AT),
        ("ORIGINATOR_CANCEL", 2, "MAX_TRY_COUNT", None),  # third counted attempt of 3
        ("CALL_REJECTED", 5, "MAX_TRY_COUNT", None),  # already past the limit
        (HangupCause.NO_USER_RESPONSE, 0, None, RETRY_AT),
    ],
)
def test_retry_counts_until_max_retries(
    cause: str | HangupCause, attempts: int, ends_with: str | None, next_at: datetime | None
) -> None:
    got = decide(outcome(cause), member(attempts), POLICY)
    assert summary(got) == (K.RETRY, 1, ends_with, next_at)
    assert got.member.attempts == attempts + 1
    assert got.member.number("100") == Number("100", attempts=1, last_tried=NOW)
    assert got.member.number("200") == Number("200")


# --- rule 6: Error --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("numbers", "attempts", "ends_with", "next_at"),
    [
        ((Number("100"), Number("200")), 0, None, RETRY_AT),  # another number left
        ((Number("100"),), 0, "UNALLOCATED_NUMBER", None),  # last active number
        ((Number("100"), Number("200", active=False)), 0, "UNALLOCATED_NUMBER", None),
        ((Number("100"), Number("200")), 2, "MAX_TRY_COUNT", None),  # others left, at limit
        ((Number("100"),), 2, "UNALLOCATED_NUMBER", None),  # the cause beats MAX_TRY_COUNT
    ],
)
def test_error_stops_the_number(
    numbers: tuple[Number, ...], attempts: int, ends_with: str | None, next_at: datetime | None
) -> None:
    got = decide(outcome("UNALLOCATED_NUMBER"), member(attempts, *numbers), POLICY)
    assert (got.kind, got.attempts_delta, got.stopped) == (K.ERROR, 1, ("100",))
    assert (got.member_ends_with, got.next_call_at) == (ends_with, next_at)
    stopped = got.member.number("100")
    assert stopped is not None and not stopped.active


# --- rule 7: a cause in no list -------------------------------------------------------------


@pytest.mark.parametrize(
    ("cause", "attempts", "ends_with"),
    [
        ("INTERWORKING", 0, None),
        ("MEDIA_TIMEOUT", 1, None),
        ("SOMETHING_NEW", 2, "MAX_TRY_COUNT"),
        ("NONE", 0, None),
    ],
)
def test_cause_in_no_list_counts_like_retry(cause: str, attempts: int, ends_with: str) -> None:
    got = decide(outcome(cause), member(attempts), POLICY)
    assert (got.kind, got.attempts_delta, got.member_ends_with) == (K.RETRY, 1, ends_with)
    assert "no list" in got.rule


# --- rule 8: expiry -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cause", "extra", "expire", "ends_with", "kind"),
    [
        ("USER_BUSY", {}, RETRY_AT, "MEMBER_EXPIRED", K.RETRY),  # next attempt at expire
        ("USER_BUSY", {}, RETRY_AT + timedelta(seconds=1), None, K.RETRY),
        ("NORMAL_TEMPORARY_FAILURE", {}, NOW + timedelta(minutes=5), "MEMBER_EXPIRED", K.MINUS),
        ("USER_BUSY", {"agent_leg_failed": True}, NOW, "MEMBER_EXPIRED", K.REFUND),
        ("NORMAL_CLEARING", {"bridged": True, "talk_seconds": 30}, NOW, "NORMAL_CLEARING", K.OK),
    ],
)
def test_expiry(
    cause: str,
    extra: dict[str, object],
    expire: datetime,
    ends_with: str | None,
    kind: DispositionKind,
) -> None:
    got = decide(outcome(cause, **extra), member(0, expire=expire), POLICY)
    assert (got.kind, got.member_ends_with) == (kind, ends_with)


@pytest.mark.parametrize(
    ("expire", "expired"),
    [
        (None, False),
        (NOW + timedelta(seconds=1), False),
        (NOW, True),
        (NOW - timedelta(days=1), True),
    ],
)
def test_check_expired(expire: datetime | None, expired: bool) -> None:
    got = check_expired(member(0, expire=expire), NOW)
    assert (got is not None) == expired
    if got is not None:
        assert summary(got) == (K.EXPIRED, 0, "MEMBER_EXPIRED", None)


# --- the lists come from the campaign -------------------------------------------------------


@pytest.mark.parametrize(
    ("causes", "cause", "kind"),
    [
        ({"error": ["USER_BUSY"], "retry": []}, "USER_BUSY", K.ERROR),
        ({"minus": ["NO_ANSWER"], "retry": []}, "NO_ANSWER", K.MINUS),
        ({"minus": []}, "NORMAL_TEMPORARY_FAILURE", K.RETRY),  # now in no list
    ],
)
def test_campaign_cause_lists(causes: dict[str, list[str]], cause: str, kind: K) -> None:
    campaign = CampaignConfig.model_validate({"name": "c", "calendar": "o", "causes": causes})
    got = decide(outcome(cause), member(), DispositionPolicy.from_config(campaign))
    assert got.kind is kind


def test_cause_sets_classifier() -> None:
    policy = DispositionPolicy(CauseSets(ok={"SUCCESS"}, error={"USER_BUSY"}), max_retries=1)
    assert decide(outcome("USER_BUSY"), member(), policy).kind is K.ERROR
    got = decide(outcome("SUCCESS", bridged=True, talk_seconds=10), member(), policy)
    assert (got.kind, got.member_ends_with) == (K.OK, "SUCCESS")  # ends with the cause
    assert decide(outcome("NO_ANSWER"), member(), policy).member_ends_with == "MAX_TRY_COUNT"


# --- misuse ---------------------------------------------------------------------------------


def test_decide_refuses_an_ended_or_waiting_member_and_an_unknown_number() -> None:
    with pytest.raises(ValueError, match="ended"):
        decide(outcome("USER_BUSY"), MemberState((Number("1"),), ended_with="X"), POLICY)
    with pytest.raises(ValueError, match="waiting"):
        decide(outcome("USER_BUSY"), MemberState((Number("100"),), waiting_on="100"), POLICY)
    with pytest.raises(ValueError, match="not a number"):
        decide(outcome("USER_BUSY"), MemberState((Number("1"),)), POLICY)


def test_number_defaults_to_the_chosen_one() -> None:
    state = member(0, Number("100"), Number("200", priority=5))
    got = decide(AttemptOutcome("USER_BUSY", NOW), state, POLICY)
    assert got.member.number("200") == Number("200", priority=5, attempts=1, last_tried=NOW)


# --- number choice --------------------------------------------------------------------------

T1, T2 = NOW - timedelta(hours=2), NOW - timedelta(hours=1)


@pytest.mark.parametrize(
    ("numbers", "chosen"),
    [
        ((Number("a"), Number("b")), "a"),  # equal, never tried: list order
        ((Number("a", priority=1), Number("b", priority=2)), "b"),  # highest priority
        ((Number("a", priority=3, active=False), Number("b", priority=2)), "b"),  # active only
        ((Number("a", last_tried=T2), Number("b", last_tried=T1)), "b"),  # least recent
        ((Number("a", last_tried=T1), Number("b")), "b"),  # never tried first
        ((Number("a", priority=1, last_tried=T2), Number("b", last_tried=T1)), "a"),
        ((Number("a", active=False),), None),
        ((), None),
    ],
)
def test_choose_number(numbers: tuple[Number, ...], chosen: str | None) -> None:
    got = choose_number(MemberState(numbers))
    assert (got.number if got else None) == chosen


@pytest.mark.parametrize(
    ("numbers", "number", "priorities"),
    [
        ((Number("a", priority=2), Number("b")), "c", {"a": 2, "b": 0, "c": 3}),  # added
        ((Number("a", priority=2), Number("b")), "b", {"a": 2, "b": 3}),  # raised
        ((Number("a", priority=2), Number("b")), "a", {"a": 2, "b": 0}),  # already on top
        ((Number("a", priority=1), Number("b", priority=1)), "a", {"a": 2, "b": 1}),  # tie
        ((), "a", {"a": 0}),
    ],
)
def test_next_communication(
    numbers: tuple[Number, ...], number: str, priorities: dict[str, int]
) -> None:
    state = next_communication(MemberState(numbers), number)
    assert {n.number: n.priority for n in state.numbers} == priorities
    chosen = choose_number(state)
    assert chosen is not None and chosen.number == number


def test_next_communication_reactivates_a_stopped_number() -> None:
    state = next_communication(
        MemberState((Number("a", active=False, attempts=2), Number("b"))), "a"
    )
    assert state.number("a") == Number("a", priority=1, active=True, attempts=2)


# --- §4: status result ----------------------------------------------------------------------

TRIED = NOW - timedelta(minutes=1)


def waiting(attempts: int = 0, *numbers: Number, expire: datetime | None = None) -> MemberState:
    numbers = numbers or (Number("100", attempts=attempts, last_tried=TRIED), Number("200"))
    return MemberState(numbers, attempts=attempts, waiting_on="100", expire=expire)


def test_result_after_a_waiting_decision() -> None:
    got = decide(outcome("USER_BUSY", agent_connected=True), member(), WAITING_POLICY)
    result = apply_result(got.member, StatusResult(success=True), WAITING_POLICY, NOW)
    assert (result.kind, result.member_ends_with) == (K.OK, "NORMAL_CLEARING")


@pytest.mark.parametrize(
    ("result", "attempts", "kind", "ends_with", "next_at", "active", "counter"),
    [
        (StatusResult(success=True, comment="sold"), 0, K.OK, "NORMAL_CLEARING", None, set(), 1),
        (StatusResult(), 0, K.RETRY, None, RETRY_AT, {"100", "200"}, 1),
        (
            StatusResult(next_after_sec=60),
            0,
            K.RETRY,
            None,
            NOW + timedelta(seconds=60),
            {"100", "200"},
            1,
        ),
        (StatusResult(next_after_sec=0), 0, K.RETRY, None, NOW, {"100", "200"}, 1),
        (StatusResult(), 2, K.RETRY, "MAX_TRY_COUNT", None, {"100", "200"}, 3),
        (StatusResult(reset_retries=True), 2, K.RETRY, None, RETRY_AT, {"100", "200"}, 0),
        (StatusResult(stop_communications=("100",)), 0, K.RETRY, None, RETRY_AT, {"200"}, 1),
        (StatusResult(stop_communications=("100", "999")), 0, K.RETRY, None, RETRY_AT, {"200"}, 1),
        (StatusResult(stop_communications="all"), 0, K.RETRY, "NO_COMMUNICATIONS", None, set(), 1),
        (
            StatusResult(stop_communications="all", next_communication="300"),
            0,
            K.RETRY,
            None,
            RETRY_AT,
            {"300"},
            1,
        ),
        (
            StatusResult(next_communication="200", next_after_sec=5),
            0,
            K.RETRY,
            None,
            NOW + timedelta(seconds=5),
            {"100", "200"},
            1,
        ),
    ],
)
def test_apply_result(
    result: StatusResult,
    attempts: int,
    kind: K,
    ends_with: str | None,
    next_at: datetime | None,
    active: set[str],
    counter: int,
) -> None:
    got = apply_result(waiting(attempts), result, WAITING_POLICY, NOW)
    assert (got.kind, got.member_ends_with, got.next_call_at) == (kind, ends_with, next_at)
    assert {n.number for n in got.member.active_numbers} == active
    assert got.member.attempts == counter and got.attempts_delta == 1
    assert not got.member.waiting and got.comment == result.comment
    dialed = got.member.number("100")
    assert dialed is not None and dialed.attempts == counter and dialed.last_tried == TRIED


def test_apply_result_next_communication_goes_first() -> None:
    got = apply_result(waiting(), StatusResult(next_communication="200"), WAITING_POLICY, NOW)
    chosen = choose_number(got.member)
    assert chosen is not None and chosen.number == "200"


def test_apply_result_respects_expire() -> None:
    state = waiting(0, expire=NOW + timedelta(seconds=30))
    got = apply_result(state, StatusResult(next_after_sec=60), WAITING_POLICY, NOW)
    assert got.member_ends_with == "MEMBER_EXPIRED"


@pytest.mark.parametrize(
    "state", [member(), MemberState((Number("1"),), waiting_on="1", ended_with="NORMAL_CLEARING")]
)
def test_result_for_a_member_not_waiting_is_refused(state: MemberState) -> None:
    with pytest.raises(NotWaiting):
        apply_result(state, StatusResult(success=True), WAITING_POLICY, NOW)
    with pytest.raises(NotWaiting):
        result_deadline_passed(state, WAITING_POLICY, NOW)


@pytest.mark.parametrize(
    ("refund", "attempts", "kind", "delta", "ends_with", "next_at"),
    [
        (False, 0, K.RETRY, 1, None, RETRY_AT),
        (False, 2, K.RETRY, 1, "MAX_TRY_COUNT", None),
        (True, 2, K.MINUS, 0, None, RETRY_AT),
    ],
)
def test_result_deadline_passed(
    refund: bool,
    attempts: int,
    kind: K,
    delta: int,
    ends_with: str | None,
    next_at: datetime | None,
) -> None:
    policy = DispositionPolicy.from_config(
        CampaignConfig.model_validate({"name": "c", "calendar": "o", "wait_for_result": True}),
        refund_missed_result=refund,
    )
    got = result_deadline_passed(waiting(attempts), policy, NOW)
    assert summary(got) == (kind, delta, ends_with, next_at)
    assert got.member.attempts == attempts + delta and not got.member.waiting
