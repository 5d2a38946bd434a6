"""The UAC's rules for 2xx responses it cannot or will not keep, and for digest retries
(review 4): every 2xx is ACKed and each retransmission ACKed again (RFC 3261 §13.2.2.4,
RFC 6026 §8.4), a 2xx no dialog can be made from fails the call instead of vanishing,
every early dialog of an INVITE goes with it, and a second challenge without
``stale=true`` is not answered (RFC 7616 §3.3).

One real ``UserAgentCore`` is driven by hand: the test plays the far end, writing its
responses from the INVITE the core really sent, and reads back what the core queued.
"""

from __future__ import annotations

import pytest

from sipdialer.sip.errors import RemoteProtocolError
from sipdialer.sip.message import Request, Response, parse_message, response_for
from sipdialer.sip.peer import Peer
from sipdialer.sip.timers import TimerConfig
from sipdialer.sip.ua import UaConfig, UserAgentCore
from sipdialer.sip.ua_auth import Account
from sipdialer.sip.ua_events import (
    CallAnswered,
    CallFailed,
    CallProgress,
    ResponseReceived,
    UaEvent,
)
from sipdialer.sip.ua_uac import UacInvites

FAR = Peer("UDP", "127.0.0.1", 5062)
CONTACT = ("Contact", "<sip:far@127.0.0.1:5062>")
SDP = (
    b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    b"m=audio 4000 RTP/AVP 0\r\n"
)
TIMER_M = 64 * TimerConfig().t1


class Far:
    """The far end of one ``UserAgentCore`` (the near end, port 5061)."""

    def __init__(self) -> None:
        self.ua = UserAgentCore(UaConfig(host="127.0.0.1", port=5061, user="near"))
        self.now = 0.0
        self.events: list[UaEvent] = []

    def call(self, **kw: object) -> tuple[str, Request]:
        handle = self.ua.invite("sip:far@127.0.0.1:5062", FAR, self.now,
                                from_uri="sip:near@127.0.0.1", body=SDP,
                                **kw)  # type: ignore[arg-type]  # fmt: skip
        (invite,) = self.sent()
        assert isinstance(invite, Request) and invite.method == "INVITE"
        return handle, invite

    def feed(self, message: Response | Request) -> list[Request | Response]:
        """Deliver *message* to the core; what it sent in reply."""
        self.ua.receive_data(message.to_bytes(), FAR, self.now)
        return self.sent()

    def sent(self) -> list[Request | Response]:
        while (event := self.ua.next_event()) is not None:
            self.events.append(event)
        return [parse_message(data) for data, _ in self.ua.data_to_send()]

    def take(self) -> list[UaEvent]:
        self.sent()
        events, self.events = self.events, []
        return events

    def advance(self, to: float) -> None:
        while (due := self.ua.get_timer()) is not None and due <= to:
            self.now = max(self.now, due)
            self.ua.handle_timer(self.now)
            self.sent()
        self.now = to


def methods(messages: list[Request | Response]) -> list[str]:
    return [m.method if isinstance(m, Request) else str(m.status_code) for m in messages]


def ok(invite: Request, tag: str | None, *headers: tuple[str, str]) -> Response:
    return response_for(invite, 200, to_tag=tag, body=SDP,
                        headers=[*headers, ("Content-Type", "application/sdp")])  # fmt: skip


# --- a 2xx no dialog can be made from ---------------------------------------------------


@pytest.mark.parametrize(
    ("tag", "headers"),
    [
        (None, [CONTACT]),  # no To tag (s01, s05)
        ("A", [("Contact", "<sip:>")]),  # s12
        ("A", [("Contact", "garbage")]),  # s12
        ("A", [CONTACT, ("Record-Route", "<>garbage")]),
    ],
    ids=["no-to-tag", "contact-sip-colon", "contact-garbage", "record-route-garbage"],
)
def test_unusable_2xx_is_acked_hung_up_and_fails_the_call(
    tag: str | None, headers: list[tuple[str, str]]
) -> None:
    far = Far()
    handle, invite = far.call()
    far.feed(response_for(invite, 180, to_tag="t1", headers=[CONTACT]))
    assert [type(e) for e in far.take()] == [CallProgress]
    answer = ok(invite, tag, *headers)
    ack, bye = far.feed(answer)
    # §13.2.2.4: the 2xx is ACKed, with the INVITE's CSeq, to the Request-URI when the
    # Contact is unusable; then hung up (the far end believes the call is up).
    assert isinstance(ack, Request) and isinstance(bye, Request)
    assert (ack.method, ack.cseq.number, ack.cseq.method) == ("ACK", 1, "ACK")
    assert (bye.method, bye.cseq.number) == ("BYE", 2)
    for request in (ack, bye):
        assert request.call_id == invite.call_id and request.to.tag == tag
        assert request.from_.tag == invite.from_.tag
    if headers[0] != CONTACT:
        assert ack.uri == invite.uri
    # The TU hears of it at once, as a 2xx it could not use.
    (failed,) = far.take()
    assert isinstance(failed, CallFailed) and failed.handle == handle
    assert failed.unusable and failed.status == 200 and not failed.cancelled
    assert far.ua.state_size()["dialogs"] == 0  # the early dialog t1 went with it
    # The same 2xx again (our ACK was lost): the same ACK, no second BYE, no event.
    (again,) = far.feed(answer)
    assert again.to_bytes() == ack.to_bytes()
    assert far.take() == []
    far.ua.cancel(handle, far.now)  # the TU's late ring-timeout CANCEL: nothing to do
    assert methods(far.sent()) == []
    far.feed(response_for(bye, 200))
    far.advance(TIMER_M + 1)
    assert set(far.ua.state_size().values()) == {0}, far.ua.state_size()
    assert far.take() == []


def test_provisional_with_a_bad_contact_is_still_progress() -> None:
    """A 180 whose Contact does not parse makes no early dialog, but it is ringing, and
    the call goes on to its 2xx (it used to vanish in the UA's safety net)."""
    far = Far()
    handle, invite = far.call()
    far.feed(response_for(invite, 180, to_tag="t1", headers=[("Contact", "garbage")]))
    (progress,) = far.take()
    assert isinstance(progress, CallProgress) and progress.dialog is None
    assert far.ua.state_size()["dialogs"] == 0
    assert methods(far.feed(ok(invite, "t1", CONTACT))) == ["ACK"]
    (answered,) = far.take()
    assert isinstance(answered, CallAnswered) and answered.handle == handle


def test_a_final_response_whose_handling_breaks_still_ends_the_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The safety net of ``_pump``: whatever RemoteProtocolError a final response raises
    on its way, the INVITE ends with CallFailed, not silently at Timer M."""

    def broken(*args: object) -> None:
        raise RemoteProtocolError("injected")

    far = Far()
    handle, invite = far.call()
    monkeypatch.setattr(UacInvites, "_on_invite_2xx", broken)
    far.feed(ok(invite, "A", CONTACT))
    (failed,) = far.take()
    assert isinstance(failed, CallFailed) and failed.handle == handle and failed.unusable
    monkeypatch.undo()
    # It is remembered as failed: a later 2xx (another fork) is ACKed and hung up.
    assert methods(far.feed(ok(invite, "B", CONTACT))) == ["ACK", "BYE"]
    assert far.take() == []


# --- 2xx after our CANCEL, from several forks --------------------------------------------


def test_every_2xx_of_a_cancelled_invite_is_acked_and_hung_up() -> None:
    far = Far()
    handle, invite = far.call()
    far.feed(response_for(invite, 180, to_tag="A", headers=[CONTACT]))
    far.feed(response_for(invite, 180, to_tag="B", headers=[CONTACT]))
    assert far.ua.state_size()["dialogs"] == 2
    far.ua.cancel(handle, far.now)
    assert methods(far.sent()) == ["CANCEL"]
    far.take()
    ack_a, bye_a = far.feed(ok(invite, "A", CONTACT))
    assert methods([ack_a, bye_a]) == ["ACK", "BYE"] and ack_a.to.tag == "A"
    (failed,) = far.take()
    assert isinstance(failed, CallFailed) and failed.cancelled and failed.status == 487
    assert far.ua.state_size()["dialogs"] == 0  # both forks' early dialogs are gone
    # Fork B answers too: ACK and BYE it as well, and tell nobody.
    ack_b, bye_b = far.feed(ok(invite, "B", CONTACT))
    assert (methods([ack_b, bye_b]), ack_b.to.tag, bye_b.to.tag) == (["ACK", "BYE"], "B", "B")
    # Fork A's 200 again: its own ACK again (not B's), no BYE.
    (again,) = far.feed(ok(invite, "A", CONTACT))
    assert again.to_bytes() == ack_a.to_bytes()
    assert far.take() == []
    for bye in (bye_a, bye_b):
        far.feed(response_for(bye, 200))
    far.advance(TIMER_M + 1)
    assert set(far.ua.state_size().values()) == {0}, far.ua.state_size()


def test_no_early_dialog_outlives_an_answered_invite() -> None:
    """A late 180 from another fork, and a 180 matching the INVITE's branch with another
    From tag (the soak's spoof), leave no early dialog once the INVITE is answered."""
    far = Far()
    _, invite = far.call()
    ringing = response_for(invite, 180, to_tag="A", headers=[CONTACT])
    far.feed(ringing)
    spoofed = Response(ringing.headers.copy(), b"", 180, "Ringing")
    spoofed.headers.set("From", (ringing.headers.get("From") or "").replace(";tag=", ";tag=x"))
    far.feed(spoofed)
    far.feed(ok(invite, "A", CONTACT))
    far.feed(response_for(invite, 180, to_tag="C", headers=[CONTACT]))
    assert [type(e) for e in far.take()] == [CallProgress, CallProgress, CallAnswered]
    assert far.ua.state_size()["dialogs"] == 1
    far.advance(TIMER_M + 1)
    assert far.ua.state_size()["dialogs"] == 1  # the confirmed dialog, nothing more


# --- re-INVITE 2xx retransmissions --------------------------------------------------------


def test_each_2xx_retransmission_gets_its_own_ack() -> None:
    far = Far()
    _, invite = far.call()
    first_ok = ok(invite, "A", CONTACT)
    (first_ack,) = far.feed(first_ok)
    (answered,) = far.take()
    assert isinstance(answered, CallAnswered)
    far.ua.request_in_dialog(answered.dialog, "INVITE", far.now, body=SDP)
    (reinvite,) = far.sent()
    assert isinstance(reinvite, Request) and reinvite.cseq.number == 2
    refresh_ok = ok(reinvite, None, CONTACT)
    (refresh_ack,) = far.feed(refresh_ok)
    assert isinstance(refresh_ack, Request) and refresh_ack.cseq.number == 2
    assert [type(e) for e in far.take()] == [ResponseReceived]
    # RFC 6026 §8.4: each retransmission of the re-INVITE's 2xx gets the same ACK again.
    for _ in range(3):
        far.now += 0.5
        (again,) = far.feed(refresh_ok)
        assert again.to_bytes() == refresh_ack.to_bytes()
    # A late copy of the initial 2xx is ACKed with its own CSeq (1), not the re-INVITE's.
    (late,) = far.feed(first_ok)
    assert late.to_bytes() == first_ack.to_bytes()
    assert far.take() == []


def test_a_reinvite_2xx_with_a_bad_contact_is_still_acked_and_reported() -> None:
    far = Far()
    _, invite = far.call()
    far.feed(ok(invite, "A", CONTACT))
    (answered,) = far.take()
    assert isinstance(answered, CallAnswered)
    key = far.ua.request_in_dialog(answered.dialog, "INVITE", far.now, body=SDP)
    (reinvite,) = far.sent()
    assert isinstance(reinvite, Request)
    (ack,) = far.feed(ok(reinvite, None, ("Contact", "garbage")))
    assert isinstance(ack, Request) and ack.method == "ACK" and ack.cseq.number == 2
    assert ack.uri == "sip:far@127.0.0.1:5062"  # the old remote target stays
    (response,) = far.take()
    assert isinstance(response, ResponseReceived) and response.key == key


# --- digest: a second challenge without stale=true ------------------------------------------

CHALLENGE = 'Digest realm="trunk", nonce="{nonce}", algorithm=MD5, qop="auth"{stale}'


@pytest.mark.parametrize("status", [401, 407])
def test_a_fresh_challenge_after_our_credentials_is_not_answered(status: int) -> None:
    header = "WWW-Authenticate" if status == 401 else "Proxy-Authenticate"
    far = Far()
    handle, invite = far.call(credentials=Account("u", "wrong"))
    challenge = (header, CHALLENGE.format(nonce="n1", stale=""))
    (ack, retry) = far.feed(response_for(invite, status, to_tag="x1", headers=[challenge]))
    assert methods([ack, retry]) == ["ACK", "INVITE"] and isinstance(retry, Request)
    # A new nonce, no stale=true: the password is wrong (RFC 7616 §3.3). No third INVITE.
    again = (header, CHALLENGE.format(nonce="n2", stale=""))
    assert methods(far.feed(response_for(retry, status, to_tag="x2", headers=[again]))) == ["ACK"]
    (failed,) = far.take()
    assert isinstance(failed, CallFailed) and (failed.handle, failed.status) == (handle, status)


def test_a_stale_challenge_is_answered_once_more() -> None:
    far = Far()
    handle, invite = far.call(credentials=Account("u", "pw"))
    first = ("WWW-Authenticate", CHALLENGE.format(nonce="n1", stale=""))
    _, retry = far.feed(response_for(invite, 401, to_tag="x1", headers=[first]))
    assert isinstance(retry, Request)
    stale = ("WWW-Authenticate", CHALLENGE.format(nonce="n2", stale=", stale=true"))
    _, third = far.feed(response_for(retry, 401, to_tag="x2", headers=[stale]))
    assert isinstance(third, Request) and third.method == "INVITE"
    assert 'nonce="n2"' in (third.headers.get("Authorization") or "")
    # MAX_AUTH_ATTEMPTS: a third challenge, even stale, is the end.
    stale3 = ("WWW-Authenticate", CHALLENGE.format(nonce="n3", stale=", stale=true"))
    assert methods(far.feed(response_for(third, 401, to_tag="x3", headers=[stale3]))) == ["ACK"]
    (failed,) = far.take()
    assert isinstance(failed, CallFailed) and (failed.handle, failed.status) == (handle, 401)
