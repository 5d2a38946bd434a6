"""RFC 3665 basic call flows between two in-memory user agents (no sockets).

Alice (port 5061) calls Bob (port 5062). Each test drives Bob's answers by hand
and asserts both the events each side saw and the messages on the wire.
"""

from __future__ import annotations

import pytest
from uapair import Link

from sipdialer.sip.auth_server import DigestServer
from sipdialer.sip.message import Request, Response
from sipdialer.sip.ua import UserAgentCore
from sipdialer.sip.ua_auth import Account
from sipdialer.sip.ua_events import (
    CallAnswered,
    CallConfirmed,
    CallFailed,
    CallProgress,
    DialogTerminated,
    IncomingCall,
    IncomingRequest,
    ResponseReceived,
    UaEvent,
)

SDP = (
    b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    b"m=audio 4000 RTP/AVP 0\r\n"
)


@pytest.fixture(params=["UDP", "TCP"])
def link(request: pytest.FixtureRequest) -> Link:
    return Link(request.param)


def call(link: Link, alice: UserAgentCore, bob: UserAgentCore, **kw: object) -> str:
    handle = alice.invite(
        "sip:bob@127.0.0.1:5062", link.peer(bob), link.now,
        from_uri="sip:alice@127.0.0.1", body=SDP, **kw,  # type: ignore[arg-type]
    )  # fmt: skip
    link.run()
    return handle


def incoming(link: Link, name: str) -> IncomingCall:
    events = [e for e in link.take(name) if isinstance(e, IncomingCall)]
    assert len(events) == 1
    return events[0]


def kinds(events: list[UaEvent]) -> list[str]:
    return [type(e).__name__ for e in events]


def pair(link: Link, **bob_config: object) -> tuple[UserAgentCore, UserAgentCore]:
    return link.add("alice", 5061), link.add("bob", 5062, **bob_config)


def test_successful_call_and_bye_from_caller(link: Link) -> None:
    """RFC 3665 §3.1: INVITE, 180, 200, ACK, BYE, 200."""
    alice, bob = pair(link)
    handle = call(link, alice, bob)
    invite = incoming(link, "bob")
    assert invite.request.body == SDP
    bob.respond(invite.key, 180, link.now)
    link.run()
    progress = link.take("alice")
    assert kinds(progress) == ["CallProgress"]
    assert isinstance(progress[0], CallProgress) and progress[0].dialog is not None
    bob.respond(invite.key, 200, link.now, body=SDP)
    link.run()
    answered = link.take("alice")
    assert kinds(answered) == ["CallAnswered"]
    assert isinstance(answered[0], CallAnswered) and answered[0].handle == handle
    confirmed = link.take("bob")
    assert kinds(confirmed) == ["CallConfirmed"]
    assert isinstance(confirmed[0], CallConfirmed)
    dialog_id = answered[0].dialog
    assert confirmed[0].dialog.call_id == dialog_id.call_id
    alice.bye(dialog_id, link.now)
    link.run()
    ended = link.take("bob")
    assert kinds(ended) == ["DialogTerminated"]
    assert isinstance(ended[0], DialogTerminated) and ended[0].by_remote
    mine = [e for e in link.take("alice") if isinstance(e, DialogTerminated)]
    assert len(mine) == 1 and not mine[0].by_remote
    wire = link.methods()
    # UDP: the auto "100 Trying" comes only if the TU is slow; here it answered at once.
    assert [m for m in wire if m != "100"] == ["INVITE", "180", "200", "ACK", "BYE", "200"]
    assert alice.dialog(dialog_id) is None and bob.dialog(confirmed[0].dialog) is None


def test_bye_from_callee(link: Link) -> None:
    """RFC 3665 §3.1 with the callee hanging up."""
    alice, bob = pair(link)
    call(link, alice, bob)
    invite = incoming(link, "bob")
    dialog_id = bob.respond(invite.key, 200, link.now, body=SDP)
    link.run()
    assert dialog_id is not None
    link.take("alice")
    link.take("bob")
    bob.bye(dialog_id, link.now, reason='Q.850;cause=16;text="Normal call clearing"')
    link.run()
    ended = [e for e in link.take("alice") if isinstance(e, DialogTerminated)]
    assert len(ended) == 1 and ended[0].by_remote and ended[0].request is not None
    assert ended[0].request.headers.get("Reason") == 'Q.850;cause=16;text="Normal call clearing"'
    assert link.methods()[-2:] == ["BYE", "200"]


def test_busy(link: Link) -> None:
    """RFC 3665 §3.2: 486 Busy Here, ACKed by the caller's transaction."""
    alice, bob = pair(link)
    handle = call(link, alice, bob)
    invite = incoming(link, "bob")
    bob.respond(invite.key, 486, link.now)
    link.run()
    failed = link.take("alice")
    assert kinds(failed) == ["CallFailed"]
    assert isinstance(failed[0], CallFailed)
    assert (failed[0].handle, failed[0].status, failed[0].cancelled) == (handle, 486, False)
    assert [m for m in link.methods() if m != "100"] == ["INVITE", "486", "ACK"]
    assert link.take("bob") == []  # the ACK for a failure stays in the transaction layer
    ack = link.wire[-1][2]
    assert isinstance(ack, Request) and ack.cseq.method == "ACK"
    assert ack.to.tag is not None and ack.call_id == invite.request.call_id


def test_no_answer_cancel(link: Link) -> None:
    """RFC 3665 §3.8: ringing, the caller gives up: CANCEL, 200, 487, ACK."""
    alice, bob = pair(link)
    handle = call(link, alice, bob)
    invite = incoming(link, "bob")
    bob.respond(invite.key, 180, link.now)
    link.run()
    link.take("alice")
    alice.cancel(handle, link.now)
    link.run()
    assert kinds(link.take("bob")) == ["CallCancelled"]
    failed = link.take("alice")
    assert kinds(failed) == ["CallFailed"]
    assert isinstance(failed[0], CallFailed)
    assert (failed[0].status, failed[0].cancelled) == (487, True)
    assert [m for m in link.methods() if m != "100"][-5:] == ["CANCEL", "200", "487", "ACK"][
        -5:
    ] or [m for m in link.methods() if m != "100"][-4:] in (
        ["CANCEL", "200", "487", "ACK"],
        ["CANCEL", "487", "200", "ACK"],
    )
    # Bob's late answer is harmless.
    assert bob.respond(invite.key, 200, link.now, body=SDP) is None


def test_cancel_waits_for_a_provisional(link: Link) -> None:
    """RFC 3261 §9.1: no CANCEL before a provisional response has arrived."""
    alice, bob = pair(link)
    link.drop = lambda m, s, d: True  # the INVITE is lost: nothing reaches Bob yet
    handle = call(link, alice, bob)
    alice.cancel(handle, link.now)
    link.run()
    assert link.wire == []
    link.drop = None
    link.advance(link.now + 0.5)  # Timer A (UDP) or nothing (TCP) ...
    if link.transport == "TCP":
        # ... on TCP the INVITE is never retransmitted: ends with 408 after 64*T1.
        link.advance(40.0)
        failed = [e for e in link.take("alice") if isinstance(e, CallFailed)]
        assert failed and failed[0].status == 408 and failed[0].cancelled
        return
    invite = incoming(link, "bob")
    bob.respond(invite.key, 180, link.now)
    link.run()
    sent = [m for m in link.methods() if m != "100"]
    assert sent[:3] == ["INVITE", "180", "CANCEL"]
    failed = [e for e in link.take("alice") if isinstance(e, CallFailed)]
    assert failed and failed[0].status == 487 and failed[0].cancelled


def test_deferred_cancel_keeps_its_reason(link: Link) -> None:
    """A CANCEL asked for before any provisional goes out on the first one with the
    Reason it was asked with (RFC 3326), like an immediate one."""
    alice, bob = pair(link)
    handle = alice.invite("sip:bob@127.0.0.1:5062", link.peer(bob), link.now,
                          from_uri="sip:alice@127.0.0.1", body=SDP)  # fmt: skip
    reason = 'Q.850;cause=19;text="NO_ANSWER"'
    alice.cancel(handle, link.now, reason=reason)  # nothing has come back yet
    link.run()
    invite = incoming(link, "bob")
    bob.respond(invite.key, 180, link.now)
    link.run()
    cancels = [m for _, _, m in link.wire if isinstance(m, Request) and m.method == "CANCEL"]
    assert len(cancels) == 1 and cancels[0].headers.get("Reason") == reason


def test_200_racing_cancel_is_acked_then_hung_up(link: Link) -> None:
    alice, bob = pair(link)
    handle = call(link, alice, bob)
    invite = incoming(link, "bob")
    bob.respond(invite.key, 180, link.now)
    link.run()
    # Bob answers; the CANCEL crosses the 200 on the wire (Bob sees it after answering).
    bob.respond(invite.key, 200, link.now, body=SDP)
    alice.cancel(handle, link.now)
    link.run()
    events = link.take("alice")
    failed = [e for e in events if isinstance(e, CallFailed)]
    assert len(failed) == 1 and failed[0].cancelled
    assert not any(isinstance(e, CallAnswered) for e in events)
    sent = link.methods()
    assert "ACK" in sent and sent.index("BYE") > sent.index("ACK")
    bob_events = link.take("bob")
    assert any(isinstance(e, DialogTerminated) and e.by_remote for e in bob_events)


def test_auth_challenge_on_invite(link: Link) -> None:
    """RFC 3665 §3.1 variant with 407/401: the caller answers the digest challenge."""
    alice, bob = pair(link)
    server = DigestServer("dialer.local", b"secret-key")
    handle = call(link, alice, bob, credentials=Account("alice", "wonderland"))
    first = incoming(link, "bob")
    challenges = [("WWW-Authenticate", str(c)) for c in server.challenge(link.now)]
    bob.respond(first.key, 401, link.now, headers=challenges)
    link.run()
    assert link.take("alice") == []  # the 401 is answered, not reported
    second = incoming(link, "bob")
    assert second.request.cseq.number == first.request.cseq.number + 1
    assert second.request.call_id == first.request.call_id
    result = server.verify_header(
        second.request.headers.get("Authorization") or "",
        "INVITE",
        lambda user: "wonderland",
        link.now,
    )
    assert result.ok
    bob.respond(second.key, 200, link.now, body=SDP)
    link.run()
    answered = link.take("alice")
    assert [type(e) for e in answered] == [CallAnswered]
    assert isinstance(answered[0], CallAnswered) and answered[0].handle == handle


def test_wrong_password_gives_up(link: Link) -> None:
    alice, bob = pair(link)
    server = DigestServer("dialer.local", b"secret-key")
    call(link, alice, bob, credentials=Account("alice", "wrong"))
    for _ in range(3):
        events = [e for e in link.take("bob") if isinstance(e, IncomingCall)]
        if not events:
            break
        challenges = [("WWW-Authenticate", str(c)) for c in server.challenge(link.now)]
        bob.respond(events[0].key, 401, link.now, headers=challenges)
        link.run()
    failed = [e for e in link.take("alice") if isinstance(e, CallFailed)]
    assert len(failed) == 1 and failed[0].status == 401


def test_timer_b_gives_408() -> None:
    link = Link("UDP")
    alice = link.add("alice", 5061)
    handle = alice.invite(
        "sip:nobody@127.0.0.1:5999",
        link.peer(alice).__class__("UDP", "127.0.0.1", 5999),
        0.0,
        from_uri="sip:alice@127.0.0.1",
        body=SDP,
    )
    link.run()
    link.advance(31.0)
    assert link.take("alice") == []
    link.advance(33.0)
    failed = link.take("alice")
    assert len(failed) == 1 and isinstance(failed[0], CallFailed)
    assert (failed[0].handle, failed[0].status) == (handle, 408)


def test_2xx_retransmitted_until_ack_then_bye() -> None:
    """RFC 3261 §13.3.1.4: the UAS repeats its 2xx; without ACK it hangs up at 64*T1."""
    link = Link("UDP")
    alice, bob = pair(link)
    call(link, alice, bob)
    invite = incoming(link, "bob")
    link.drop = lambda m, s, d: isinstance(m, Request) and m.method == "ACK"
    bob.respond(invite.key, 200, link.now, body=SDP)
    link.run()
    link.advance(40.0)
    oks = [m for m in link.methods() if m == "200"]
    assert len(oks) >= 7  # 0, .5, 1.5, 3.5, 7.5, 11.5, 15.5, ... until 32 s
    ended = [e for e in link.take("bob") if isinstance(e, DialogTerminated)]
    assert len(ended) == 1 and ended[0].reason == "no ACK"
    assert "BYE" in link.methods()


def test_reinvite_hold_in_dialog(link: Link) -> None:
    alice, bob = pair(link)
    call(link, alice, bob)
    invite = incoming(link, "bob")
    dialog_id = bob.respond(invite.key, 200, link.now, body=SDP)
    link.run()
    answered = [e for e in link.take("alice") if isinstance(e, CallAnswered)][0]
    link.take("bob")
    hold = SDP.replace(b"t=0 0\r\n", b"t=0 0\r\na=sendonly\r\n")
    alice.request_in_dialog(answered.dialog, "INVITE", link.now, body=hold)
    link.run()
    reinvite = [e for e in link.take("bob") if isinstance(e, IncomingRequest)]
    assert len(reinvite) == 1 and reinvite[0].dialog == dialog_id
    assert reinvite[0].request.cseq.number == invite.request.cseq.number + 1
    bob.respond(reinvite[0].key, 200, link.now, body=SDP)
    link.run()
    confirmed = [e for e in link.take("bob") if isinstance(e, CallConfirmed)]
    assert len(confirmed) == 1 and confirmed[0].reinvite
    assert link.methods()[-3:] == ["INVITE", "200", "ACK"]


def test_unknown_dialog_gets_481(link: Link) -> None:
    alice, bob = pair(link)
    call(link, alice, bob)
    invite = incoming(link, "bob")
    bob.respond(invite.key, 200, link.now, body=SDP)
    link.run()
    answered = [e for e in link.take("alice") if isinstance(e, CallAnswered)][0]
    # Bob forgets the dialog (a crash): Alice's BYE must get 481, not silence.
    bob._dialogs.clear()
    key = alice.request_in_dialog(answered.dialog, "INFO", link.now)
    link.run()
    assert link.methods()[-1] == "481"
    assert key


@pytest.mark.parametrize("method", ["INFO", "UPDATE", "OPTIONS"])
def test_in_dialog_requests_reach_the_tu(link: Link, method: str) -> None:
    alice, bob = pair(link)
    call(link, alice, bob)
    invite = incoming(link, "bob")
    dialog_id = bob.respond(invite.key, 200, link.now, body=SDP)
    link.run()
    answered = [e for e in link.take("alice") if isinstance(e, CallAnswered)][0]
    link.take("bob")
    key = alice.request_in_dialog(answered.dialog, method, link.now,
                                  body=b"Signal=5\r\n" if method == "INFO" else b"",
                                  content_type="application/dtmf-relay")  # fmt: skip
    link.run()
    got = [e for e in link.take("bob") if isinstance(e, IncomingRequest)]
    if method == "INFO":
        # An INFO body type we do not accept gets 415 before the TU sees it (§8.2.3).
        assert got == [] and link.methods()[-1] == "415"
        return
    assert len(got) == 1 and got[0].dialog == dialog_id
    bob.respond(got[0].key, 200, link.now)
    link.run()
    responses = [e for e in link.take("alice") if isinstance(e, ResponseReceived)]
    assert [(r.key, r.response.status_code, r.dialog) for r in responses] == [
        (key, 200, answered.dialog)
    ]


def test_forked_second_answer_is_acked_and_hung_up() -> None:
    """Two 200s with different To tags (a forking proxy): keep the first, BYE the other."""
    link = Link("UDP")
    alice, bob = pair(link)
    handle = call(link, alice, bob)
    invite = incoming(link, "bob")
    bob.respond(invite.key, 200, link.now, body=SDP)
    link.run()
    first = [e for e in link.take("alice") if isinstance(e, CallAnswered)]
    assert len(first) == 1 and first[0].handle == handle
    # Replay the 200 with another To tag, as a second fork would send it.
    ok = next(m for _, _, m in link.wire if isinstance(m, Response) and m.status_code == 200)
    forked = Response(ok.headers.copy(), ok.body, 200, "OK")
    forked.headers.set("To", forked.headers.get("To").replace(first[0].dialog.remote_tag, "fork2"))
    alice.receive_data(forked.to_bytes(), link.peer(bob), link.now)
    link.run()
    sent = [m for _, _, m in link.wire if isinstance(m, Request)]
    assert [m.method for m in sent][-2:] == ["ACK", "BYE"]
    assert sent[-1].to.tag == "fork2"
    assert not [e for e in link.take("alice") if isinstance(e, CallAnswered)]
    assert alice.dialog(first[0].dialog) is not None


def test_nothing_is_left_after_calls_end(link: Link) -> None:
    """After a call, a busy call and a cancelled call, and every timer, both UAs are empty."""
    alice, bob = pair(link)
    call(link, alice, bob)
    answered = incoming(link, "bob")
    bob.respond(answered.key, 200, link.now, body=SDP)
    link.run()
    dialog = [e for e in link.take("alice") if isinstance(e, CallAnswered)][0].dialog
    alice.bye(dialog, link.now)
    call(link, alice, bob)
    bob.respond(incoming(link, "bob").key, 486, link.now)
    handle = call(link, alice, bob)
    bob.respond(incoming(link, "bob").key, 180, link.now)
    link.run()
    alice.cancel(handle, link.now)
    link.run()
    link.advance(link.now + 60.0)
    for core in (alice, bob):
        assert set(core.state_size().values()) == {0}, core.state_size()
