"""TrunkRegistrar on a fake clock: register, refresh, back-off, 423, close."""

from __future__ import annotations

import pytest
from helpers import crlf

from sipdialer.calls.trunk_registration import (
    CSEQ_STEP,
    Register,
    RegistrationPolicy,
    TrunkRegistrar,
    TrunkRegistrationState,
    granted_expires,
)
from sipdialer.sip.message import Response, parse_message
from sipdialer.sip.uri import parse_sip_uri

S = TrunkRegistrationState
OUR_CONTACT = parse_sip_uri("sip:acct@192.0.2.1:5060")
POLICY = RegistrationPolicy(expires=600, refresh_fraction=0.75, retry_initial=5, retry_max=60)


def response(status: int, *headers: str) -> Response:
    text = (
        f"SIP/2.0 {status} X\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\n"
        "From: <sip:acct@p>;tag=1\nTo: <sip:acct@p>;tag=2\nCall-ID: r\nCSeq: 1 REGISTER\n"
        + "".join(h + "\n" for h in headers)
    )
    message = parse_message(crlf(text + "\n"))
    assert isinstance(message, Response)
    return message


def state(core: TrunkRegistrar) -> TrunkRegistrationState:
    """Read through a call, so mypy does not keep the narrowed state between asserts."""
    return core.state


def ok(expires: int = 600) -> Response:
    return response(200, f"Contact: <sip:acct@192.0.2.1:5060>;expires={expires}")


def started() -> tuple[TrunkRegistrar, Register]:
    core = TrunkRegistrar(POLICY, contact=OUR_CONTACT)
    first = core.start(0.0)
    assert first is not None
    return core, first


def test_register_then_refresh_at_three_quarters() -> None:
    core, first = started()
    assert (first.attempt, first.expires, core.state) == (1, 600, S.REGISTERING)
    assert not core.registered and core.get_timer() is None
    assert core.response_received(1, ok(300), 10.0) is None  # the registrar granted 300
    assert state(core) is S.REGISTERED and core.registered and core.granted == 300
    assert core.get_timer() == 10.0 + 225.0
    assert core.handle_timer(200.0) is None
    refresh = core.handle_timer(235.0)
    assert refresh is not None and refresh.attempt == 2 and refresh.expires == 600
    assert refresh.cseq == first.cseq + CSEQ_STEP
    assert state(core) is S.REFRESHING and core.registered
    core.response_received(2, ok(300), 236.0)
    assert state(core) is S.REGISTERED and core.expires_at == 536.0


def test_spurious_and_stale_inputs_are_ignored() -> None:
    core, _ = started()
    assert core.start(1.0) is None  # started once
    assert core.response_received(1, response(100), 0.1) is None and not core.registered
    assert core.response_received(7, ok(), 0.2) is None and not core.registered  # unknown
    core.response_received(1, ok(), 0.5)
    assert core.handle_timer(1.0) is None and state(core) is S.REGISTERED


@pytest.mark.parametrize(
    ("contacts", "expected"),
    [
        (["<sip:acct@192.0.2.1:5060>;expires=120", "<sip:acct@198.51.100.9>;expires=50"], 120),
        (["<sip:other@198.51.100.9>;expires=50", "<sip:acct@192.0.2.1:5060>;expires=70"], 70),
        (["<sip:acct@10.0.0.1:5060>;expires=80"], 80),  # rewritten (NAT) but alone: ours
        (["<sip:a@10.0.0.1>;expires=80", "<sip:b@10.0.0.2>;expires=90", "Expires: 100"], 100),
        (["Expires: 45"], 45),
        ([], 600),  # nothing said: what we asked
    ],
)
def test_granted_expires(contacts: list[str], expected: int) -> None:
    headers = [c if c.startswith("Expires") else f"Contact: {c}" for c in contacts]
    assert granted_expires(response(200, *headers), OUR_CONTACT, 600) == expected


def test_backoff_doubles_to_the_cap_and_resets_on_success() -> None:
    core, first = started()
    attempt, now, delays = first.attempt, 0.0, []
    for _ in range(6):
        assert core.response_received(attempt, response(403), now) is None
        assert state(core) is S.BACKOFF and not core.registered
        at = core.get_timer()
        assert at is not None
        delays.append(at - now)
        now = at
        retry = core.handle_timer(now)
        assert retry is not None and state(core) is S.REGISTERING
        attempt = retry.attempt
    assert delays == [5, 10, 20, 40, 60, 60]
    assert core.failures == 6 and core.last_status == 403
    core.response_received(attempt, ok(), now)
    assert core.failures == 0 and core.registered


def test_retry_after_is_honoured() -> None:
    core, first = started()
    core.response_received(first.attempt, response(503, "Retry-After: 42 (maintenance)"), 0.0)
    assert core.get_timer() == 42.0
    core, first = started()
    core.response_received(first.attempt, response(503, "Retry-After: 0"), 0.0)
    assert core.get_timer() == 5.0  # 0 says nothing: the usual back-off


def test_timeout_keeps_the_binding_until_it_lapses() -> None:
    core, first = started()
    core.response_received(first.attempt, ok(100), 0.0)
    refresh = core.handle_timer(75.0)
    assert refresh is not None
    assert core.request_failed(refresh.attempt, 503, 99.0) is None  # transport error
    assert state(core) is S.BACKOFF and core.registered  # still bound until 100
    assert core.get_timer() == 100.0
    assert core.handle_timer(100.0) is None and not core.registered
    again = core.handle_timer(104.0)
    assert again is not None and state(core) is S.REGISTERING


def test_refusal_of_a_refresh_drops_the_binding_at_once() -> None:
    core, first = started()
    core.response_received(first.attempt, ok(100), 0.0)
    refresh = core.handle_timer(75.0)
    assert refresh is not None
    core.response_received(refresh.attempt, response(403), 75.5)
    assert not core.registered and state(core) is S.BACKOFF


def test_423_retries_at_once_with_min_expires() -> None:
    core, first = started()
    retry = core.response_received(first.attempt, response(423, "Min-Expires: 1200"), 0.0)
    assert retry is not None and retry.expires == 1200 and retry.attempt == 2
    # A 423 that does not ask for more (or says nothing usable): back off instead.
    assert core.response_received(2, response(423, "Min-Expires: 900"), 0.1) is None
    assert state(core) is S.BACKOFF
    later = core.handle_timer(5.1)
    assert later is not None and later.expires == 1200  # the larger interval sticks


def test_zero_granted_is_a_refusal() -> None:
    core, first = started()
    core.response_received(first.attempt, ok(0), 0.0)
    assert state(core) is S.BACKOFF and not core.registered


def test_close_unregisters_when_bound() -> None:
    core, first = started()
    core.response_received(first.attempt, ok(), 0.0)
    bye = core.close(1.0)
    assert bye is not None and bye.expires == 0 and state(core) is S.UNREGISTERING
    assert not core.registered and core.get_timer() is None
    assert core.close(1.1) is None
    core.response_received(bye.attempt, response(200), 1.2)
    assert state(core) is S.CLOSED and core.handle_timer(10_000.0) is None


def test_close_while_registering_unregisters_and_late_answers_are_ignored() -> None:
    core, first = started()
    bye = core.close(0.5)
    assert bye is not None and bye.expires == 0
    assert core.response_received(first.attempt, ok(), 0.6) is None and not core.registered
    core.request_failed(bye.attempt, 408, 33.0)
    assert state(core) is S.CLOSED


def test_close_in_backoff_or_idle_sends_nothing() -> None:
    core, first = started()
    core.response_received(first.attempt, response(404), 0.0)
    assert core.close(1.0) is None and state(core) is S.CLOSED
    idle = TrunkRegistrar(POLICY)
    assert idle.close(0.0) is None and state(idle) is S.CLOSED


@pytest.mark.parametrize("kw", [{"expires": 0}, {"refresh_fraction": 0.3},
                                {"refresh_fraction": 0.95}, {"retry_initial": 0},
                                {"retry_initial": 10, "retry_max": 5}])  # fmt: skip
def test_bad_policy(kw: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RegistrationPolicy(**kw)  # type: ignore[arg-type]
