"""calls/causes.py against the tables of reference/causes.md, row by row."""

from __future__ import annotations

import pytest

from sipdialer.calls.causes import (
    CAUSE_STATUSES,
    STATUS_CAUSES,
    DialerCause,
    HangupCause,
    LocalFailure,
    ResponseCause,
    cause_code,
    cause_for_bye,
    cause_for_local,
    cause_for_response,
    cause_for_status,
    lookup_cause,
    reason_cause,
    reason_header,
    status_for_cause,
    synthesized_status,
    webitel_code,
)
from sipdialer.config import (
    DEFAULT_ERROR_CAUSES,
    DEFAULT_MINUS_CAUSES,
    DEFAULT_OK_CAUSES,
    DEFAULT_RETRY_CAUSES,
    KNOWN_CAUSES,
)
from sipdialer.sip.headers import parse_reason

# causes.md §1, copied from the reference (status, cause name, number).
SECTION_1 = [
    (200, "NORMAL_CLEARING", 16),
    (400, "NORMAL_TEMPORARY_FAILURE", 41),
    (401, "CALL_REJECTED", 21),
    (402, "CALL_REJECTED", 21),
    (403, "CALL_REJECTED", 21),
    (404, "UNALLOCATED_NUMBER", 1),
    (405, "SERVICE_UNAVAILABLE", 63),
    (406, "SERVICE_NOT_IMPLEMENTED", 79),
    (407, "CALL_REJECTED", 21),
    (408, "RECOVERY_ON_TIMER_EXPIRE", 102),
    (410, "NUMBER_CHANGED", 22),
    (413, "INTERWORKING", 127),
    (414, "INTERWORKING", 127),
    (415, "SERVICE_NOT_IMPLEMENTED", 79),
    (416, "INTERWORKING", 127),
    (420, "INTERWORKING", 127),
    (421, "INTERWORKING", 127),
    (423, "INTERWORKING", 127),
    (428, "NO_IDENTITY", 820),
    (429, "BAD_IDENTITY_INFO", 821),
    (437, "UNSUPPORTED_CERTIFICATE", 822),
    (438, "INVALID_IDENTITY", 823),
    (480, "NO_USER_RESPONSE", 18),
    (481, "NORMAL_TEMPORARY_FAILURE", 41),
    (482, "EXCHANGE_ROUTING_ERROR", 25),
    (483, "EXCHANGE_ROUTING_ERROR", 25),
    (484, "INVALID_NUMBER_FORMAT", 28),
    (485, "NO_ROUTE_DESTINATION", 3),
    (486, "USER_BUSY", 17),
    (487, "ORIGINATOR_CANCEL", 487),
    (488, "INCOMPATIBLE_DESTINATION", 88),
    (500, "NORMAL_TEMPORARY_FAILURE", 41),
    (501, "SERVICE_NOT_IMPLEMENTED", 79),
    (502, "NETWORK_OUT_OF_ORDER", 38),
    (503, "NORMAL_TEMPORARY_FAILURE", 41),
    (504, "RECOVERY_ON_TIMER_EXPIRE", 102),
    (505, "INTERWORKING", 127),
    (513, "INTERWORKING", 127),
    (600, "USER_BUSY", 17),
    (603, "CALL_REJECTED", 21),
    (604, "NO_ROUTE_DESTINATION", 3),
    (606, "INCOMPATIBLE_DESTINATION", 88),
    (607, "UNWANTED", 819),
    (608, "CALL_REJECTED", 21),
]
# The `default:` row: every other code, the examples the reference lists plus a few more.
DEFAULT_STATUSES = [
    100, 180, 183, 199, 300, 301, 302, 380, 409, 411, 412, 417, 422, 424, 430, 433, 436,
    439, 440, 469, 470, 489, 491, 493, 494, 580, 601, 605, 699,
]  # fmt: skip

# causes.md §2 (cause name, SIP status).
SECTION_2 = [
    ("UNALLOCATED_NUMBER", 404), ("NO_ROUTE_TRANSIT_NET", 404), ("NO_ROUTE_DESTINATION", 404),
    ("USER_BUSY", 486),
    ("NO_USER_RESPONSE", 408),
    ("NO_ANSWER", 480), ("SUBSCRIBER_ABSENT", 480),
    ("CALL_REJECTED", 603),
    ("NUMBER_CHANGED", 410), ("REDIRECTION_TO_NEW_DESTINATION", 410),
    ("DESTINATION_OUT_OF_ORDER", 502), ("INVALID_PROFILE", 502),
    ("INVALID_NUMBER_FORMAT", 484), ("INVALID_URL", 484), ("INVALID_GATEWAY", 484),
    ("FACILITY_REJECTED", 501),
    ("NORMAL_UNSPECIFIED", 480),
    ("REQUESTED_CHAN_UNAVAIL", 503), ("NORMAL_CIRCUIT_CONGESTION", 503),
    ("NETWORK_OUT_OF_ORDER", 503), ("NORMAL_TEMPORARY_FAILURE", 503),
    ("SWITCH_CONGESTION", 503), ("GATEWAY_DOWN", 503),
    ("OUTGOING_CALL_BARRED", 403), ("INCOMING_CALL_BARRED", 403),
    ("BEARERCAPABILITY_NOTAUTH", 403),
    ("BEARERCAPABILITY_NOTAVAIL", 503),
    ("BEARERCAPABILITY_NOTIMPL", 488), ("INCOMPATIBLE_DESTINATION", 488),
    ("FACILITY_NOT_IMPLEMENTED", 501), ("SERVICE_NOT_IMPLEMENTED", 501),
    ("RECOVERY_ON_TIMER_EXPIRE", 504),
    ("ORIGINATOR_CANCEL", 487),
    ("EXCHANGE_ROUTING_ERROR", 483),
    ("BUSY_EVERYWHERE", 600),
    ("DECLINE", 603), ("REJECT_ALL", 603),
    ("DOES_NOT_EXIST_ANYWHERE", 604),
    ("NOT_ACCEPTABLE", 606),
    ("UNWANTED", 607),
    ("NO_IDENTITY", 428), ("BAD_IDENTITY_INFO", 429),
    ("UNSUPPORTED_CERTIFICATE", 437), ("INVALID_IDENTITY", 438),
    ("STALE_DATE", 403),
]  # fmt: skip

# causes.md §3, the full enum as listed there.
SECTION_3 = """
0 NONE, 1 UNALLOCATED_NUMBER, 2 NO_ROUTE_TRANSIT_NET, 3 NO_ROUTE_DESTINATION,
6 CHANNEL_UNACCEPTABLE, 7 CALL_AWARDED_DELIVERED, 16 NORMAL_CLEARING, 17 USER_BUSY,
18 NO_USER_RESPONSE, 19 NO_ANSWER,
20 SUBSCRIBER_ABSENT, 21 CALL_REJECTED, 22 NUMBER_CHANGED, 23 REDIRECTION_TO_NEW_DESTINATION,
25 EXCHANGE_ROUTING_ERROR, 27 DESTINATION_OUT_OF_ORDER, 28 INVALID_NUMBER_FORMAT,
29 FACILITY_REJECTED, 30 RESPONSE_TO_STATUS_ENQUIRY, 31 NORMAL_UNSPECIFIED,
34 NORMAL_CIRCUIT_CONGESTION, 38 NETWORK_OUT_OF_ORDER, 41 NORMAL_TEMPORARY_FAILURE,
42 SWITCH_CONGESTION, 43 ACCESS_INFO_DISCARDED, 44 REQUESTED_CHAN_UNAVAIL, 45 PRE_EMPTED,
50 FACILITY_NOT_SUBSCRIBED, 52 OUTGOING_CALL_BARRED, 54 INCOMING_CALL_BARRED,
57 BEARERCAPABILITY_NOTAUTH, 58 BEARERCAPABILITY_NOTAVAIL, 63 SERVICE_UNAVAILABLE,
65 BEARERCAPABILITY_NOTIMPL, 66 CHAN_NOT_IMPLEMENTED, 69 FACILITY_NOT_IMPLEMENTED,
79 SERVICE_NOT_IMPLEMENTED, 81 INVALID_CALL_REFERENCE, 88 INCOMPATIBLE_DESTINATION,
95 INVALID_MSG_UNSPECIFIED, 96 MANDATORY_IE_MISSING, 97 MESSAGE_TYPE_NONEXIST, 98 WRONG_MESSAGE,
99 IE_NONEXIST, 100 INVALID_IE_CONTENTS, 101 WRONG_CALL_STATE, 102 RECOVERY_ON_TIMER_EXPIRE,
103 MANDATORY_IE_LENGTH_ERROR, 111 PROTOCOL_ERROR, 127 INTERWORKING, 142 SUCCESS,
487 ORIGINATOR_CANCEL, 700 CRASH, 701 SYSTEM_SHUTDOWN, 702 LOSE_RACE, 703 MANAGER_REQUEST,
800 BLIND_TRANSFER, 801 ATTENDED_TRANSFER, 802 ALLOTTED_TIMEOUT, 803 USER_CHALLENGE,
804 MEDIA_TIMEOUT, 805 PICKED_OFF, 806 USER_NOT_REGISTERED, 807 PROGRESS_TIMEOUT,
808 INVALID_GATEWAY, 809 GATEWAY_DOWN, 810 INVALID_URL, 811 INVALID_PROFILE, 812 NO_PICKUP,
813 SRTP_READ_ERROR, 814 BOWOUT, 815 BUSY_EVERYWHERE, 816 DECLINE, 817 DOES_NOT_EXIST_ANYWHERE,
818 NOT_ACCEPTABLE, 819 UNWANTED, 820 NO_IDENTITY, 821 BAD_IDENTITY_INFO,
822 UNSUPPORTED_CERTIFICATE, 823 INVALID_IDENTITY, 824 STALE_DATE, 825 REJECT_ALL
"""
ENUM_ROWS = [
    (int(number), name)
    for number, name in (item.split() for item in SECTION_3.replace("\n", " ").split(","))
]

# Webitel 3.x's older numbers (causes.md §3 caveat).
WEBITEL_OLD = {
    "CRASH": 500, "SYSTEM_SHUTDOWN": 501, "LOSE_RACE": 502, "MANAGER_REQUEST": 503,
    "BLIND_TRANSFER": 600, "ATTENDED_TRANSFER": 601, "ALLOTTED_TIMEOUT": 602,
    "USER_CHALLENGE": 603, "MEDIA_TIMEOUT": 604, "PICKED_OFF": 605,
    "USER_NOT_REGISTERED": 606, "PROGRESS_TIMEOUT": 607, "GATEWAY_DOWN": 609,
}  # fmt: skip


# --- the enum -------------------------------------------------------------------------------


@pytest.mark.parametrize(("number", "name"), ENUM_ROWS)
def test_enum_matches_section_3(number: int, name: str) -> None:
    assert HangupCause[name] == number
    assert HangupCause(number).name == name


def test_enum_has_nothing_else() -> None:
    assert len(HangupCause) == len(ENUM_ROWS)


def test_names_cover_the_config_vocabulary() -> None:
    names = set(HangupCause.__members__) | set(DialerCause.__members__)
    assert KNOWN_CAUSES == names
    for cause in DEFAULT_ERROR_CAUSES + DEFAULT_RETRY_CAUSES + DEFAULT_OK_CAUSES:
        assert lookup_cause(cause) is not None
    for cause in DEFAULT_MINUS_CAUSES:
        assert isinstance(lookup_cause(cause), HangupCause)


def test_lookup_cause() -> None:
    assert lookup_cause("USER_BUSY") is HangupCause.USER_BUSY
    assert lookup_cause(HangupCause.USER_BUSY) is HangupCause.USER_BUSY
    assert lookup_cause("MAX_TRY_COUNT") is DialerCause.MAX_TRY_COUNT
    assert lookup_cause("NO_SUCH_CAUSE") is None
    assert lookup_cause(LocalFailure.TIMER_B) is None  # an enum, but not a cause


@pytest.mark.parametrize(("number", "name"), ENUM_ROWS)
def test_cause_code_is_current_freeswitch(number: int, name: str) -> None:
    assert cause_code(name) == number
    assert cause_code(HangupCause[name]) == number


@pytest.mark.parametrize(("number", "name"), ENUM_ROWS)
def test_webitel_code(number: int, name: str) -> None:
    if name in WEBITEL_OLD:
        expected = WEBITEL_OLD[name]
    elif number <= 487 and name != "SUCCESS":
        expected = number  # Q.850 numbers are the same in both conventions
    else:
        expected = 0  # Webitel's getHangupCode: 0 for a name outside its table
    assert webitel_code(name) == expected


@pytest.mark.parametrize(
    ("cause", "code", "webitel"),
    [("ABANDONED", 687, 687), ("MAX_TRY_COUNT", 0, 0), ("MEMBER_EXPIRED", 0, 0),
     ("NO_ROUTE", 0, 0), ("PROCESS_CRASH", 0, 0), ("NO_COMMUNICATIONS", 0, 0), ("BOGUS", 0, 0)],
)  # fmt: skip
def test_dialer_cause_codes(cause: str, code: int, webitel: int) -> None:
    assert cause_code(cause) == code
    assert webitel_code(cause) == webitel


# --- §1: SIP status -> cause ----------------------------------------------------------------


@pytest.mark.parametrize(("status", "name", "number"), SECTION_1)
def test_cause_for_status(status: int, name: str, number: int) -> None:
    cause = cause_for_status(status)
    assert cause.name == name
    assert int(cause) == number
    assert cause_for_response(status, []) == ResponseCause(HangupCause[name], number)


@pytest.mark.parametrize("status", DEFAULT_STATUSES)
def test_cause_for_status_default(status: int) -> None:
    assert cause_for_status(status) is HangupCause.NORMAL_UNSPECIFIED
    assert cause_for_response(status) == (HangupCause.NORMAL_UNSPECIFIED, 31)


def test_status_table_has_exactly_the_rows_of_section_1() -> None:
    assert {s: c.name for s, c in STATUS_CAUSES.items()} == {s: n for s, n, _ in SECTION_1}


def test_no_status_maps_to_no_answer() -> None:
    assert HangupCause.NO_ANSWER not in STATUS_CAUSES.values()


# --- §1 rule 1: a Reason header wins --------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "values", "expected"),
    [
        (486, ["Q.850;cause=19"], HangupCause.NO_ANSWER),
        (503, ['Q.850;cause=34;text="no circuit"'], HangupCause.NORMAL_CIRCUIT_CONGESTION),
        (480, ["q.850 ; cause=17"], HangupCause.USER_BUSY),  # case and spaces
        (500, ["FreeSWITCH;cause=806"], HangupCause.USER_NOT_REGISTERED),
        (603, ['SIP;cause=600;text="Busy"', "Q.850;cause=17"], HangupCause.USER_BUSY),
        (603, ['SIP;cause=600, Q.850;cause=17;text="x"'], HangupCause.USER_BUSY),  # one line
        (404, ["Q.850;cause=3", "Q.850;cause=1"], HangupCause.NO_ROUTE_DESTINATION),  # first
        (486, ["SIP;cause=200"], HangupCause.USER_BUSY),  # SIP protocol: table
        (486, ["Q.850"], HangupCause.USER_BUSY),  # no cause: table
        (486, ["Q.850;cause=abc"], HangupCause.USER_BUSY),  # not a number: table
        (486, ["Q.850;cause=4"], HangupCause.USER_BUSY),  # unknown number: table
        (486, ["@@@;cause=19"], HangupCause.USER_BUSY),  # unparsable: skipped
        (486, ["@@@", "Q.850;cause=21"], HangupCause.CALL_REJECTED),
        (486, [], HangupCause.USER_BUSY),
    ],
)
def test_reason_header_wins(status: int, values: list[str], expected: HangupCause) -> None:
    assert cause_for_response(status, values) == (expected, int(expected))


def test_ignore_reason() -> None:
    assert cause_for_response(486, ["Q.850;cause=19"], ignore_reason=True).cause == (
        HangupCause.USER_BUSY
    )


def test_extra_protocol_token() -> None:
    values = ["mydialer;cause=17"]
    assert reason_cause(values) is None
    assert reason_cause(values, extra_protocols=["MyDialer"]) is HangupCause.USER_BUSY


def test_bye() -> None:
    assert cause_for_bye() == (HangupCause.NORMAL_CLEARING, 16)
    assert cause_for_bye(["Q.850;cause=804"]) == (HangupCause.MEDIA_TIMEOUT, 804)
    assert cause_for_bye(["Q.850;cause=804"], ignore_reason=True).cause == (
        HangupCause.NORMAL_CLEARING
    )


# --- §2: cause -> SIP status ----------------------------------------------------------------


@pytest.mark.parametrize(("name", "status"), SECTION_2)
def test_status_for_cause(name: str, status: int) -> None:
    assert status_for_cause(name) == status
    assert status_for_cause(HangupCause[name]) == status


def test_cause_table_has_exactly_the_rows_of_section_2() -> None:
    assert {c.name: s for c, s in CAUSE_STATUSES.items()} == dict(SECTION_2)


@pytest.mark.parametrize(
    "cause",
    sorted(set(HangupCause.__members__) - {name for name, _ in SECTION_2})
    + ["MAX_TRY_COUNT", "NO_SUCH_CAUSE"],
)
def test_status_for_cause_default(cause: str) -> None:
    assert status_for_cause(cause) == 480


# --- §1 rule 3: causes we make ourselves ----------------------------------------------------


@pytest.mark.parametrize(
    ("failure", "cause"),
    [
        (LocalFailure.TIMER_B, HangupCause.RECOVERY_ON_TIMER_EXPIRE),
        (LocalFailure.TRANSPORT_ERROR, HangupCause.NORMAL_TEMPORARY_FAILURE),
        (LocalFailure.RING_TIMEOUT, HangupCause.NO_ANSWER),
        (LocalFailure.NO_BINDING, HangupCause.USER_NOT_REGISTERED),
        (LocalFailure.OTHER_LEG_ENDED, HangupCause.ORIGINATOR_CANCEL),
        (LocalFailure.MEDIA_TIMEOUT, HangupCause.MEDIA_TIMEOUT),
        (LocalFailure.PROGRESS_TIMEOUT, HangupCause.PROGRESS_TIMEOUT),
        (LocalFailure.ALLOTTED_TIMEOUT, HangupCause.ALLOTTED_TIMEOUT),
        (LocalFailure.LOSE_RACE, HangupCause.LOSE_RACE),
        (LocalFailure.GATEWAY_DOWN, HangupCause.GATEWAY_DOWN),
        (LocalFailure.SHUTDOWN, HangupCause.SYSTEM_SHUTDOWN),
    ],
)
def test_local_failures(failure: LocalFailure, cause: HangupCause) -> None:
    assert cause_for_local(failure) is cause


@pytest.mark.parametrize(("failure", "status"), [(LocalFailure.TIMER_B, 408),
                                                 (LocalFailure.TRANSPORT_ERROR, 503)])  # fmt: skip
def test_synthesized_status_agrees_with_the_table(failure: LocalFailure, status: int) -> None:
    # sofia-sip synthesizes 408 / 503; the table gives the same cause as the local rule.
    assert synthesized_status(failure) == status
    assert cause_for_status(status) is cause_for_local(failure)


def test_no_synthesized_status_for_the_others() -> None:
    assert synthesized_status(LocalFailure.RING_TIMEOUT) is None


# --- Reason header we send ------------------------------------------------------------------


def test_reason_header_default() -> None:
    assert reason_header() == 'Q.850;cause=16;text="NORMAL_CLEARING"'


@pytest.mark.parametrize(
    "cause", [HangupCause.USER_BUSY, HangupCause.RECOVERY_ON_TIMER_EXPIRE, HangupCause.INTERWORKING]
)
def test_reason_header_round_trips(cause: HangupCause) -> None:
    value = reason_header(cause)
    assert value == f'Q.850;cause={int(cause)};text="{cause.name}"'
    reason = parse_reason(value)
    assert (reason.protocol, reason.cause, reason.text) == ("Q.850", int(cause), cause.name)
    assert cause_for_bye([value]).cause is cause


@pytest.mark.parametrize(
    "cause", [HangupCause.ORIGINATOR_CANCEL, HangupCause.MEDIA_TIMEOUT, HangupCause.CRASH]
)
def test_reason_header_above_127_is_no_q850_value(cause: HangupCause) -> None:
    """RFC 3326 §2: Q.850 causes are 1-127; FreeSWITCH's own (487, 700-8xx) go as 16
    (normal clearing) with the real name in text."""
    value = reason_header(cause)
    assert value == f'Q.850;cause=16;text="{cause.name}"'
    reason = parse_reason(value)
    assert reason.cause is not None and 1 <= reason.cause <= 127
