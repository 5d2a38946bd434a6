"""Hangup causes: SIP final status and ``Reason`` header -> FreeSWITCH cause, and back.

Everything here is a table from ``reference/causes.md``, kept as data and tested row by row:

* :class:`HangupCause`: FreeSWITCH's ``switch_call_cause_t`` (§3). **Numbering: current
  FreeSWITCH** (700/800+ for the non-Q.850 causes). These numbers are what we store as
  ``cause_q850``. Webitel 3.x used the older FreeSWITCH numbers (CRASH 500, ...,
  USER_NOT_REGISTERED 606, PROGRESS_TIMEOUT 607, GATEWAY_DOWN 609); :func:`webitel_code`
  gives those, exactly as Webitel's ``getHangupCode`` did (0 for a name outside its table).
  The *names* are what the Error/Retry/OK/Minus lists match on, so the choice only shows in
  the stored number.
* :class:`DialerCause`: member end causes the dialer itself assigns (Webitel's
  ``END_CAUSE``: MAX_TRY_COUNT, MEMBER_EXPIRED, ...). They are not channel causes: they have
  no Q.850 number (stored as 0, ABANDONED as Webitel's 687, see :func:`cause_code`).
* :func:`cause_for_status` (§1, ``sofia_glue_sip_cause_to_freeswitch``) and
  :func:`cause_for_response`, which applies rule 1 first: a ``Reason: Q.850;cause=N`` (or
  protocol ``FreeSWITCH``) wins over the table. A received BYE is status 200
  (:func:`cause_for_bye`).
* :func:`status_for_cause` (§2, ``hangup_cause_to_sip``): the SIP status our UA answers or
  rejects with for a cause.
* :class:`LocalFailure`: failures we detect ourselves (Timer B, transport error, ring
  timeout, no binding, our CANCEL because the other leg ended, RTP silence, ...) and the
  cause each one ends the leg with (§1 rule 3). When we CANCEL a leg ourselves, the 487
  that follows is not judged: the local cause is the leg's cause.
* :func:`reason_header`: the ``Reason`` value of our BYE/CANCEL
  (``Q.850;cause=16;text="NORMAL_CLEARING"``; a cause above 127 is no Q.850 value and
  goes as cause=16 with its name in ``text``).

Pure code: no IO, no clock.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from enum import Enum, IntEnum, StrEnum
from typing import NamedTuple

from sipdialer.sip.errors import ParseError
from sipdialer.sip.grammar import split_list
from sipdialer.sip.headers import Reason, parse_reason


class HangupCause(IntEnum):
    """FreeSWITCH ``switch_call_cause_t`` (causes.md §3), current FreeSWITCH numbering."""

    NONE = 0
    UNALLOCATED_NUMBER = 1
    NO_ROUTE_TRANSIT_NET = 2
    NO_ROUTE_DESTINATION = 3
    CHANNEL_UNACCEPTABLE = 6
    CALL_AWARDED_DELIVERED = 7
    NORMAL_CLEARING = 16
    USER_BUSY = 17
    NO_USER_RESPONSE = 18
    NO_ANSWER = 19
    SUBSCRIBER_ABSENT = 20
    CALL_REJECTED = 21
    NUMBER_CHANGED = 22
    REDIRECTION_TO_NEW_DESTINATION = 23
    EXCHANGE_ROUTING_ERROR = 25
    DESTINATION_OUT_OF_ORDER = 27
    INVALID_NUMBER_FORMAT = 28
    FACILITY_REJECTED = 29
    RESPONSE_TO_STATUS_ENQUIRY = 30
    NORMAL_UNSPECIFIED = 31
    NORMAL_CIRCUIT_CONGESTION = 34
    NETWORK_OUT_OF_ORDER = 38
    NORMAL_TEMPORARY_FAILURE = 41
    SWITCH_CONGESTION = 42
    ACCESS_INFO_DISCARDED = 43
    REQUESTED_CHAN_UNAVAIL = 44
    PRE_EMPTED = 45
    FACILITY_NOT_SUBSCRIBED = 50
    OUTGOING_CALL_BARRED = 52
    INCOMING_CALL_BARRED = 54
    BEARERCAPABILITY_NOTAUTH = 57
    BEARERCAPABILITY_NOTAVAIL = 58
    SERVICE_UNAVAILABLE = 63
    BEARERCAPABILITY_NOTIMPL = 65
    CHAN_NOT_IMPLEMENTED = 66
    FACILITY_NOT_IMPLEMENTED = 69
    SERVICE_NOT_IMPLEMENTED = 79
    INVALID_CALL_REFERENCE = 81
    INCOMPATIBLE_DESTINATION = 88
    INVALID_MSG_UNSPECIFIED = 95
    MANDATORY_IE_MISSING = 96
    MESSAGE_TYPE_NONEXIST = 97
    WRONG_MESSAGE = 98
    IE_NONEXIST = 99
    INVALID_IE_CONTENTS = 100
    WRONG_CALL_STATE = 101
    RECOVERY_ON_TIMER_EXPIRE = 102
    MANDATORY_IE_LENGTH_ERROR = 103
    PROTOCOL_ERROR = 111
    INTERWORKING = 127
    SUCCESS = 142
    ORIGINATOR_CANCEL = 487
    CRASH = 700
    SYSTEM_SHUTDOWN = 701
    LOSE_RACE = 702
    MANAGER_REQUEST = 703
    BLIND_TRANSFER = 800
    ATTENDED_TRANSFER = 801
    ALLOTTED_TIMEOUT = 802
    USER_CHALLENGE = 803
    MEDIA_TIMEOUT = 804
    PICKED_OFF = 805
    USER_NOT_REGISTERED = 806
    PROGRESS_TIMEOUT = 807
    INVALID_GATEWAY = 808
    GATEWAY_DOWN = 809
    INVALID_URL = 810
    INVALID_PROFILE = 811
    NO_PICKUP = 812
    SRTP_READ_ERROR = 813
    BOWOUT = 814
    BUSY_EVERYWHERE = 815
    DECLINE = 816
    DOES_NOT_EXIST_ANYWHERE = 817
    NOT_ACCEPTABLE = 818
    UNWANTED = 819
    NO_IDENTITY = 820
    BAD_IDENTITY_INFO = 821
    UNSUPPORTED_CERTIFICATE = 822
    INVALID_IDENTITY = 823
    STALE_DATE = 824
    REJECT_ALL = 825


class DialerCause(StrEnum):
    """Member end causes assigned by the dialer, not by a channel (Webitel ``END_CAUSE``)."""

    NO_ROUTE = "NO_ROUTE"  # no outbound route matches the number
    MEMBER_EXPIRED = "MEMBER_EXPIRED"  # past the member's ``expire``
    MAX_TRY_COUNT = "MAX_TRY_COUNT"  # max_retries counted attempts reached
    ABANDONED = "ABANDONED"  # (predictive) answered with no agent
    PROCESS_CRASH = "PROCESS_CRASH"  # the dialer stopped during the attempt
    NO_COMMUNICATIONS = "NO_COMMUNICATIONS"  # every number of the member was stopped


Cause = HangupCause | DialerCause
"""Any cause a member or an attempt can end with."""

# --- causes.md §1: SIP status -> cause ---------------------------------------------------

_C = HangupCause
STATUS_CAUSES: dict[int, HangupCause] = {
    200: _C.NORMAL_CLEARING,
    400: _C.NORMAL_TEMPORARY_FAILURE,
    401: _C.CALL_REJECTED,
    402: _C.CALL_REJECTED,
    403: _C.CALL_REJECTED,
    404: _C.UNALLOCATED_NUMBER,
    405: _C.SERVICE_UNAVAILABLE,
    406: _C.SERVICE_NOT_IMPLEMENTED,
    407: _C.CALL_REJECTED,
    408: _C.RECOVERY_ON_TIMER_EXPIRE,
    410: _C.NUMBER_CHANGED,
    413: _C.INTERWORKING,
    414: _C.INTERWORKING,
    415: _C.SERVICE_NOT_IMPLEMENTED,
    416: _C.INTERWORKING,
    420: _C.INTERWORKING,
    421: _C.INTERWORKING,
    423: _C.INTERWORKING,
    428: _C.NO_IDENTITY,
    429: _C.BAD_IDENTITY_INFO,
    437: _C.UNSUPPORTED_CERTIFICATE,
    438: _C.INVALID_IDENTITY,
    480: _C.NO_USER_RESPONSE,
    481: _C.NORMAL_TEMPORARY_FAILURE,
    482: _C.EXCHANGE_ROUTING_ERROR,
    483: _C.EXCHANGE_ROUTING_ERROR,
    484: _C.INVALID_NUMBER_FORMAT,
    485: _C.NO_ROUTE_DESTINATION,
    486: _C.USER_BUSY,
    487: _C.ORIGINATOR_CANCEL,
    488: _C.INCOMPATIBLE_DESTINATION,
    500: _C.NORMAL_TEMPORARY_FAILURE,
    501: _C.SERVICE_NOT_IMPLEMENTED,
    502: _C.NETWORK_OUT_OF_ORDER,
    503: _C.NORMAL_TEMPORARY_FAILURE,
    504: _C.RECOVERY_ON_TIMER_EXPIRE,
    505: _C.INTERWORKING,
    513: _C.INTERWORKING,
    600: _C.USER_BUSY,
    603: _C.CALL_REJECTED,
    604: _C.NO_ROUTE_DESTINATION,
    606: _C.INCOMPATIBLE_DESTINATION,
    607: _C.UNWANTED,
    608: _C.CALL_REJECTED,
}
"""``sofia_glue_sip_cause_to_freeswitch``; any other status is NORMAL_UNSPECIFIED."""

DEFAULT_STATUS_CAUSE = HangupCause.NORMAL_UNSPECIFIED

# --- causes.md §2: cause -> SIP status ---------------------------------------------------

CAUSE_STATUSES: dict[HangupCause, int] = {
    _C.UNALLOCATED_NUMBER: 404,
    _C.NO_ROUTE_TRANSIT_NET: 404,
    _C.NO_ROUTE_DESTINATION: 404,
    _C.USER_BUSY: 486,
    _C.NO_USER_RESPONSE: 408,
    _C.NO_ANSWER: 480,
    _C.SUBSCRIBER_ABSENT: 480,
    _C.CALL_REJECTED: 603,
    _C.NUMBER_CHANGED: 410,
    _C.REDIRECTION_TO_NEW_DESTINATION: 410,
    _C.DESTINATION_OUT_OF_ORDER: 502,
    _C.INVALID_PROFILE: 502,
    _C.INVALID_NUMBER_FORMAT: 484,
    _C.INVALID_URL: 484,
    _C.INVALID_GATEWAY: 484,
    _C.FACILITY_REJECTED: 501,
    _C.NORMAL_UNSPECIFIED: 480,
    _C.REQUESTED_CHAN_UNAVAIL: 503,
    _C.NORMAL_CIRCUIT_CONGESTION: 503,
    _C.NETWORK_OUT_OF_ORDER: 503,
    _C.NORMAL_TEMPORARY_FAILURE: 503,
    _C.SWITCH_CONGESTION: 503,
    _C.GATEWAY_DOWN: 503,
    _C.OUTGOING_CALL_BARRED: 403,
    _C.INCOMING_CALL_BARRED: 403,
    _C.BEARERCAPABILITY_NOTAUTH: 403,
    _C.BEARERCAPABILITY_NOTAVAIL: 503,
    _C.BEARERCAPABILITY_NOTIMPL: 488,
    _C.INCOMPATIBLE_DESTINATION: 488,
    _C.FACILITY_NOT_IMPLEMENTED: 501,
    _C.SERVICE_NOT_IMPLEMENTED: 501,
    _C.RECOVERY_ON_TIMER_EXPIRE: 504,
    _C.ORIGINATOR_CANCEL: 487,
    _C.EXCHANGE_ROUTING_ERROR: 483,
    _C.BUSY_EVERYWHERE: 600,
    _C.DECLINE: 603,
    _C.REJECT_ALL: 603,
    _C.DOES_NOT_EXIST_ANYWHERE: 604,
    _C.NOT_ACCEPTABLE: 606,
    _C.UNWANTED: 607,
    _C.NO_IDENTITY: 428,
    _C.BAD_IDENTITY_INFO: 429,
    _C.UNSUPPORTED_CERTIFICATE: 437,
    _C.INVALID_IDENTITY: 438,
    _C.STALE_DATE: 403,
}
"""``hangup_cause_to_sip``; any other cause is answered with 480."""

DEFAULT_CAUSE_STATUS = 480

# --- numbering: Webitel 3.x (older FreeSWITCH numbers) -----------------------------------

_WEBITEL_RENUMBERED: dict[HangupCause, int] = {
    _C.CRASH: 500,
    _C.SYSTEM_SHUTDOWN: 501,
    _C.LOSE_RACE: 502,
    _C.MANAGER_REQUEST: 503,
    _C.BLIND_TRANSFER: 600,
    _C.ATTENDED_TRANSFER: 601,
    _C.ALLOTTED_TIMEOUT: 602,
    _C.USER_CHALLENGE: 603,
    _C.MEDIA_TIMEOUT: 604,
    _C.PICKED_OFF: 605,
    _C.USER_NOT_REGISTERED: 606,
    _C.PROGRESS_TIMEOUT: 607,
    _C.GATEWAY_DOWN: 609,
}
ABANDONED_CODE = 687
"""Webitel's own number for ABANDONED (no FreeSWITCH cause uses 687)."""


def lookup_cause(cause: str | Enum) -> Cause | None:
    """The cause of a name (or an enum member), or None for a name we do not know."""
    if isinstance(cause, HangupCause | DialerCause):
        return cause
    name = cause.name if isinstance(cause, Enum) else cause
    if name in HangupCause.__members__:
        return HangupCause[name]
    if name in DialerCause.__members__:
        return DialerCause[name]
    return None


def cause_code(cause: str | Enum) -> int:
    """The number stored as ``cause_q850``: current FreeSWITCH numbering.

    Dialer causes have none (0), except ABANDONED (687, Webitel's); unknown names give 0.
    """
    known = lookup_cause(cause)
    if isinstance(known, HangupCause):
        return int(known)
    return ABANDONED_CODE if known is DialerCause.ABANDONED else 0


def webitel_code(cause: str | Enum) -> int:
    """The number Webitel 3.x stored (``getHangupCode``): old FreeSWITCH numbers.

    Causes outside Webitel's ``HANGUP_CODES`` table (SUCCESS, the 700/800 causes added
    later, the dialer's own causes but ABANDONED) give 0, as they did there.
    """
    known = lookup_cause(cause)
    if isinstance(known, HangupCause):
        if known in _WEBITEL_RENUMBERED:
            return _WEBITEL_RENUMBERED[known]
        return int(known) if known <= HangupCause.ORIGINATOR_CANCEL and known != _C.SUCCESS else 0
    return ABANDONED_CODE if known is DialerCause.ABANDONED else 0


def cause_from_code(code: int) -> HangupCause | None:
    """The cause with this (current FreeSWITCH) number, or None."""
    try:
        return HangupCause(code)
    except ValueError:
        return None


# --- SIP -> cause --------------------------------------------------------------------------


class ResponseCause(NamedTuple):
    """The cause of a failed/ended leg and its number (stored as ``cause_q850``)."""

    cause: HangupCause
    q850: int


REASON_PROTOCOLS: frozenset[str] = frozenset({"q.850", "freeswitch"})
"""``Reason`` protocol tokens whose ``cause=`` wins over the status table (lower case)."""


def cause_for_status(status: int) -> HangupCause:
    """causes.md §1: the cause of a SIP final status (a received BYE is 200)."""
    return STATUS_CAUSES.get(status, DEFAULT_STATUS_CAUSE)


def reason_cause(
    reason_header_values: Iterable[str], *, extra_protocols: Collection[str] = ()
) -> HangupCause | None:
    """The cause of the first ``Reason: Q.850;cause=N`` (or ``FreeSWITCH;cause=N``).

    Each value may hold several comma-separated reasons. A value that does not parse, a
    reason without ``cause``, another protocol (``SIP``) and a number that is not a known
    cause are skipped. ``extra_protocols`` admits more tokens (the profile's sdp_username
    that FreeSWITCH also honours on a BYE).
    """
    accepted = REASON_PROTOCOLS | {token.lower() for token in extra_protocols}
    for value in reason_header_values:
        for part in split_list(value):
            try:
                reason = parse_reason(part)
            except ParseError:
                continue
            if reason.protocol.lower() in accepted and reason.cause is not None:
                cause = cause_from_code(reason.cause)
                if cause is not None:
                    return cause
    return None


def cause_for_response(
    status: int,
    reason_header_values: Iterable[str] = (),
    *,
    ignore_reason: bool = False,
    extra_protocols: Collection[str] = (),
) -> ResponseCause:
    """causes.md §1 with rule 1: a Q.850 ``Reason`` wins, else the status table.

    ``ignore_reason`` is FreeSWITCH's ``ignore_q850_reason``. Keep ``status`` too: it is
    the attempt's ``sip_term_status`` (rule 2).
    """
    cause = None
    if not ignore_reason:
        cause = reason_cause(reason_header_values, extra_protocols=extra_protocols)
    if cause is None:
        cause = cause_for_status(status)
    return ResponseCause(cause, int(cause))


def cause_for_bye(
    reason_header_values: Iterable[str] = (),
    *,
    ignore_reason: bool = False,
    extra_protocols: Collection[str] = (),
) -> ResponseCause:
    """A received BYE: status 200 (sofia forces it), a Q.850 ``Reason`` honoured."""
    return cause_for_response(
        200, reason_header_values, ignore_reason=ignore_reason, extra_protocols=extra_protocols
    )


# --- cause -> SIP ----------------------------------------------------------------------------


def status_for_cause(cause: str | Enum) -> int:
    """causes.md §2: the SIP status to reject/answer with for ``cause`` (default 480)."""
    known = lookup_cause(cause)
    if isinstance(known, HangupCause):
        return CAUSE_STATUSES.get(known, DEFAULT_CAUSE_STATUS)
    return DEFAULT_CAUSE_STATUS


Q850_MAX = 127
"The largest Q.850 cause value: a ``Reason: Q.850;cause=`` names one of 1-127."


def reason_header(cause: HangupCause = HangupCause.NORMAL_CLEARING) -> str:
    """The ``Reason`` value of our BYE/CANCEL: ``Q.850;cause=16;text="NORMAL_CLEARING"``.

    RFC 3326 §2: the cause of protocol Q.850 is a Q.850 value, 1-127. FreeSWITCH's own
    causes above that (ORIGINATOR_CANCEL 487, MEDIA_TIMEOUT 804, ...) are no Q.850
    value: they go as cause=16 (normal clearing, what FreeSWITCH sends on a BYE,
    causes.md §2) with the real name in ``text``."""
    value = int(cause)
    if not 1 <= value <= Q850_MAX:
        value = int(HangupCause.NORMAL_CLEARING)
    return str(Reason("Q.850", value, cause.name))


# --- failures we detect ourselves (causes.md §1 rule 3) ------------------------------------


class LocalFailure(Enum):
    """A leg ended by us, not by a final response from the far end."""

    TIMER_B = "timer_b"  # INVITE client transaction timeout (64*T1), no final response
    TRANSPORT_ERROR = "transport_error"  # could not send; no alternative destination
    RING_TIMEOUT = "ring_timeout"  # call_timeout expired: we CANCEL
    NO_BINDING = "no_binding"  # the agent's phone has no registration
    OTHER_LEG_ENDED = "other_leg_ended"  # we CANCEL because the other leg ended first
    MEDIA_TIMEOUT = "media_timeout"  # no RTP for media_timeout on a bridged call
    PROGRESS_TIMEOUT = "progress_timeout"  # no 180/183 within a progress timeout
    ALLOTTED_TIMEOUT = "allotted_timeout"  # a call time limit was reached
    LOSE_RACE = "lose_race"  # a parallel leg answered first
    GATEWAY_DOWN = "gateway_down"  # the trunk is marked down (OPTIONS)
    SHUTDOWN = "shutdown"  # the dialer stops and hangs up live calls
    PROTOCOL_ERROR = "protocol_error"  # a final response we cannot use (2xx with no dialog)


LOCAL_CAUSES: dict[LocalFailure, HangupCause] = {
    LocalFailure.TIMER_B: _C.RECOVERY_ON_TIMER_EXPIRE,
    LocalFailure.TRANSPORT_ERROR: _C.NORMAL_TEMPORARY_FAILURE,
    LocalFailure.RING_TIMEOUT: _C.NO_ANSWER,
    LocalFailure.NO_BINDING: _C.USER_NOT_REGISTERED,
    LocalFailure.OTHER_LEG_ENDED: _C.ORIGINATOR_CANCEL,
    LocalFailure.MEDIA_TIMEOUT: _C.MEDIA_TIMEOUT,
    LocalFailure.PROGRESS_TIMEOUT: _C.PROGRESS_TIMEOUT,
    LocalFailure.ALLOTTED_TIMEOUT: _C.ALLOTTED_TIMEOUT,
    LocalFailure.LOSE_RACE: _C.LOSE_RACE,
    LocalFailure.GATEWAY_DOWN: _C.GATEWAY_DOWN,
    LocalFailure.SHUTDOWN: _C.SYSTEM_SHUTDOWN,
    LocalFailure.PROTOCOL_ERROR: _C.PROTOCOL_ERROR,  # Q.850 111: the peer broke the protocol
}

SYNTHESIZED_STATUSES: dict[LocalFailure, int] = {
    LocalFailure.TIMER_B: 408,  # sofia-sip outgoing_timeout() -> 408
    LocalFailure.TRANSPORT_ERROR: 503,  # sofia-sip: transport error -> 503
}
"""The SIP code a local failure is recorded with (``sip_term_status``), where sofia has one."""


def cause_for_local(failure: LocalFailure) -> HangupCause:
    """The cause a leg ends with when ``failure`` ended it."""
    return LOCAL_CAUSES[failure]


def synthesized_status(failure: LocalFailure) -> int | None:
    """408 for Timer B, 503 for a transport error, None for the others."""
    return SYNTHESIZED_STATUSES.get(failure)
