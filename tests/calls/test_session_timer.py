"""RFC 4028 session timers: parsing, the §9 refresher table, §10 timing, 422 and retry."""

from __future__ import annotations

import pytest
from helpers import crlf

from sipdialer.calls.session_timer import (
    MIN_SE,
    Refresher,
    SessionExpires,
    SessionIntervalTooSmall,
    SessionTimer,
    SessionTimerAction,
    SessionTimerPolicy,
    offer_headers,
    parse_min_se,
    parse_session_expires,
    retry_after_422,
    session_timer_for_request,
    session_timer_from_answer,
    supports_timer,
)
from sipdialer.sip.errors import ParseError
from sipdialer.sip.message import Request, Response, parse_message

HEAD = (
    "Via: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK1\nFrom: <sip:a@b>;tag=1\nTo: <sip:c@d>{to}\n"
    "Call-ID: x\nCSeq: 1 INVITE\n"
)


def invite(*headers: str) -> Request:
    text = "INVITE sip:c@d SIP/2.0\n" + HEAD.format(to="") + "".join(h + "\n" for h in headers)
    message = parse_message(crlf(text + "\n"))
    assert isinstance(message, Request)
    return message


def answer(status: int, *headers: str) -> Response:
    text = f"SIP/2.0 {status} X\n" + HEAD.format(to=";tag=2") + "".join(h + "\n" for h in headers)
    message = parse_message(crlf(text + "\n"))
    assert isinstance(message, Response)
    return message


# --- parsing --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1800", SessionExpires(1800)),
        ("4000;refresher=uac", SessionExpires(4000, Refresher.UAC)),
        ("90 ; refresher = UAS", SessionExpires(90, Refresher.UAS)),
        ("1800;refresher=proxy;x=1", SessionExpires(1800)),  # unknown value: ignored
        ("3600;other", SessionExpires(3600)),
    ],
)
def test_parse_session_expires(value: str, expected: SessionExpires) -> None:
    assert parse_session_expires(value) == expected


@pytest.mark.parametrize("value", ["", "abc", "-5", "1.5", "99999999999", "18 00", "1800;"])
def test_parse_session_expires_rejects(value: str) -> None:
    with pytest.raises(ParseError):
        parse_session_expires(value)


def test_session_expires_str_and_min_se() -> None:
    assert str(SessionExpires(1800, Refresher.UAC)) == "1800;refresher=uac"
    assert str(SessionExpires(90)) == "90"
    assert parse_min_se("90") == 90 and parse_min_se(" 120;x=y") == 120
    with pytest.raises(ParseError):
        parse_min_se("ninety")


def test_compact_forms_and_supported() -> None:
    request = invite("x: 1800;refresher=uas", "k: timer, 100rel")
    assert supports_timer(request)
    timer, headers = session_timer_for_request(request, 0.0)
    assert timer is not None and timer.interval == 1800 and timer.we_refresh
    assert headers == [("Session-Expires", "1800;refresher=uas"), ("Require", "timer")]
    assert supports_timer(invite("Require: Timer")) and not supports_timer(invite())


# --- UAS: the §9 table ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_headers", "refresher", "require", "we_refresh"),
    [
        # UAC supports? | refresher in request | refresher in our 2xx
        ((), "uas", False, True),  # N | none (a proxy inserted SE) | uas
        (("Supported: timer",), "uac", True, False),  # Y | none | uac (our choice)
        (("Supported: timer", "refresher=uac"), "uac", True, False),  # Y | uac | uac
        (("Supported: timer", "refresher=uas"), "uas", True, True),  # Y | uas | uas
    ],
)
def test_uas_refresher_table(request_headers: tuple[str, ...], refresher: str, require: bool,
                             we_refresh: bool) -> None:  # fmt: skip
    param = next((h for h in request_headers if h.startswith("refresher")), None)
    headers = [h for h in request_headers if not h.startswith("refresher")]
    headers.append("Session-Expires: 1800" + (f";{param}" if param else ""))
    timer, answer_headers = session_timer_for_request(invite(*headers), 10.0)
    assert timer is not None
    assert answer_headers[0] == ("Session-Expires", f"1800;refresher={refresher}")
    assert (("Require", "timer") in answer_headers) is require
    assert timer.we_refresh is we_refresh and timer.refresher == refresher


def test_uas_policy_may_choose_uas_when_unspecified() -> None:
    policy = SessionTimerPolicy(refresher_when_unspecified=Refresher.UAS)
    timer, _ = session_timer_for_request(invite("Supported: timer", "Session-Expires: 600"),
                                         0.0, policy)  # fmt: skip
    assert timer is not None and timer.we_refresh


def test_uas_no_session_expires_no_timer() -> None:
    assert session_timer_for_request(invite("Supported: timer"), 0.0) == (None, [])


def test_uas_422_below_our_minimum() -> None:
    with pytest.raises(SessionIntervalTooSmall) as info:
        session_timer_for_request(invite("Supported: timer", "Session-Expires: 30"), 0.0)
    assert info.value.status_code == 422 and info.value.headers == [("Min-SE", "90")]
    # Our policy may ask for more than 90 s.
    with pytest.raises(SessionIntervalTooSmall) as info:
        session_timer_for_request(invite("k: timer", "x: 150", "Min-SE: 120"), 0.0,
                                  SessionTimerPolicy(min_se=200, interval=1800))  # fmt: skip
    assert info.value.headers == [("Min-SE", "200")] and info.value.requested == 150
    # A request below its own Min-SE gets that Min-SE (never lower, §9), not a 422.
    timer, headers = session_timer_for_request(invite("k: timer", "x: 60", "Min-SE: 120"), 0.0)
    assert timer is not None and headers[0] == ("Session-Expires", "120;refresher=uac")
    # Exactly the minimum is fine.
    timer, _ = session_timer_for_request(invite("k: timer", "x: 90"), 0.0)
    assert timer is not None and timer.interval == 90


def test_uas_below_minimum_without_support_is_raised_not_refused() -> None:
    timer, headers = session_timer_for_request(invite("Session-Expires: 30"), 0.0)
    assert timer is not None and timer.interval == 90 and timer.we_refresh
    assert headers == [("Session-Expires", "90;refresher=uas")]


def test_uas_never_below_the_requests_min_se_and_keeps_it_for_refreshes() -> None:
    timer, headers = session_timer_for_request(
        invite("k: timer", "Session-Expires: 1000;refresher=uas", "Min-SE: 1200",
               "Allow: INVITE, ACK, BYE, UPDATE"), 0.0)  # fmt: skip
    assert timer is not None and timer.interval == 1200 and timer.min_se == 1200
    assert headers[0] == ("Session-Expires", "1200;refresher=uas")
    assert timer.refresh_method == "UPDATE"
    assert timer.refresh_headers() == [("Session-Expires", "1200;refresher=uac"),
                                       ("Supported", "timer"), ("Min-SE", "1200")]  # fmt: skip


def test_uas_malformed_is_a_parse_error() -> None:
    with pytest.raises(ParseError):
        session_timer_for_request(invite("Session-Expires: soon"), 0.0)


# --- UAC: the 2xx ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("session_expires", "we_are_uac", "we_refresh"),
    [
        ("1800;refresher=uac", True, True),
        ("1800;refresher=uas", True, False),
        ("1800", True, True),  # no refresher in a 2xx: the UAC refreshes
        ("1800;refresher=uac", False, False),  # our own 2xx, the far end refreshes
        ("1800;refresher=uas", False, True),
    ],
)
def test_from_answer(session_expires: str, we_are_uac: bool, we_refresh: bool) -> None:
    timer = session_timer_from_answer(invite(), answer(200, f"Session-Expires: {session_expires}",
                                                       "Require: timer"), 5.0,
                                      we_are_uac=we_are_uac)  # fmt: skip
    assert timer is not None and timer.we_refresh is we_refresh and timer.interval == 1800
    assert timer.started_at == 5.0


@pytest.mark.parametrize("resp", [answer(200), answer(183, "x: 1800"), answer(486, "x: 1800"),
                                  answer(200, "x: garbage"), answer(200, "x: 0")])  # fmt: skip
def test_from_answer_none(resp: Response) -> None:
    assert session_timer_from_answer(invite(), resp, 0.0, we_are_uac=True) is None


@pytest.mark.parametrize("session_expires", ["1;refresher=uac", "30;refresher=uas", "89"])
def test_from_answer_below_90_is_raised_to_min_se(session_expires: str) -> None:
    """§4/§5: no Min-SE in our INVITE means 90 s; a 2xx giving less is held to that, not
    refreshed every half second."""
    resp = answer(200, f"Session-Expires: {session_expires}", "Require: timer")
    timer = session_timer_from_answer(invite(), resp, 0.0, we_are_uac=True)
    assert timer is not None and timer.interval == MIN_SE == 90
    assert timer.expires_at == 60.0
    assert timer.refresh_at is None or timer.refresh_at == 45.0


def test_from_answer_below_our_refresh_min_se_is_raised_to_it() -> None:
    refresh = invite("Min-SE: 120")
    timer = session_timer_from_answer(refresh, answer(200, "x: 100;refresher=uac"), 0.0,
                                      we_are_uac=True)  # fmt: skip
    assert timer is not None and timer.interval == 120 and timer.refresh_at == 60.0


def test_refresh_method_from_the_peers_allow() -> None:
    with_update = answer(200, "x: 600;refresher=uac", "Allow: INVITE, ACK, BYE, update")
    timer = session_timer_from_answer(invite(), with_update, 0.0, we_are_uac=True)
    assert timer is not None and timer.refresh_method == "UPDATE"
    timer = session_timer_from_answer(invite(), answer(200, "x: 600"), 0.0, we_are_uac=True)
    assert timer is not None and timer.refresh_method == "INVITE"


# --- §10 timing -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("interval", "refresh_at", "expires_at"),
    [
        (1800, 900.0, 1768.0),  # BYE 32 s before expiry
        (90, 45.0, 60.0),  # interval/3 = 30 < 32
        (96, 48.0, 64.0),  # interval/3 = 32: both rules agree
        (3600, 1800.0, 3568.0),
    ],
)
def test_refresh_and_expiry_times(interval: int, refresh_at: float, expires_at: float) -> None:
    ours = SessionTimer(interval, Refresher.UAC, True, 0.0)
    theirs = SessionTimer(interval, Refresher.UAS, False, 0.0)
    assert (ours.refresh_at, ours.expires_at) == (refresh_at, expires_at)
    assert (theirs.refresh_at, theirs.expires_at) == (None, expires_at)


def test_refresher_schedule() -> None:
    timer = SessionTimer(1800, Refresher.UAC, True, 100.0)
    assert timer.get_timer() == 1000.0
    assert timer.handle_timer(999.0) is None
    assert timer.handle_timer(1000.0) is SessionTimerAction.REFRESH
    assert timer.handle_timer(1000.0) is None  # once
    assert timer.get_timer() == 1868.0  # our refresh got no 2xx: give up here
    timer.refresh_again_at(1500.0)  # 491: try again later
    assert timer.get_timer() == 1500.0
    assert timer.handle_timer(1500.0) is SessionTimerAction.REFRESH
    assert timer.handle_timer(1868.0) is SessionTimerAction.EXPIRE
    assert timer.get_timer() is None and timer.handle_timer(5000.0) is None


def test_non_refresher_schedule() -> None:
    timer = SessionTimer(90, Refresher.UAS, False, 0.0)
    assert timer.get_timer() == 60.0
    assert timer.handle_timer(45.0) is None
    assert timer.handle_timer(60.0) is SessionTimerAction.EXPIRE


def test_a_refresh_restarts_the_contract() -> None:
    request = invite("k: timer", "Session-Expires: 600;refresher=uac")
    first, _ = session_timer_for_request(request, 0.0)
    again, _ = session_timer_for_request(request, 250.0)  # the peer refreshed at 250
    assert first is not None and again is not None
    assert first.expires_at == 568.0 and again.expires_at == 818.0


# --- UAC: offer and 422 ---------------------------------------------------------------


def test_we_offer_no_timer_by_default() -> None:
    assert offer_headers() == []
    policy = SessionTimerPolicy(offer=True, interval=1800, min_se=120)
    assert offer_headers(policy) == [("Session-Expires", "1800"), ("Min-SE", "120")]
    with pytest.raises(ValueError):
        SessionTimerPolicy(min_se=60)
    with pytest.raises(ValueError):
        SessionTimerPolicy(interval=100, min_se=120)


def test_retry_after_422() -> None:
    sent = invite("Session-Expires: 300", "Min-SE: 120")
    assert retry_after_422(sent, answer(422, "Min-SE: 3600")) == [
        ("Session-Expires", "3600"), ("Min-SE", "3600"),
    ]  # fmt: skip
    # A 422 asking for no more than we sent (a loop), none, or garbage: give up.
    assert retry_after_422(sent, answer(422, "Min-SE: 300")) is None
    assert retry_after_422(sent, answer(422)) is None
    assert retry_after_422(sent, answer(422, "Min-SE: x")) is None
    assert retry_after_422(sent, answer(486, "Min-SE: 3600")) is None
    # Without a Session-Expires of ours, any Min-SE is news.
    assert retry_after_422(invite(), answer(422, "Min-SE: 90")) == [
        ("Session-Expires", "90"), ("Min-SE", "90"),
    ]  # fmt: skip
