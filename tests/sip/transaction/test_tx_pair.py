"""Two transaction layers joined by an in-memory link (h11 ConnectionPair style)."""

from __future__ import annotations

from txkit import ALICE, BOB, Link, drain, reply, request, run_timers_until

from sipdialer.sip.message import Request, Response
from sipdialer.sip.peer import Peer
from sipdialer.sip.timers import TimerConfig
from sipdialer.sip.transaction import (
    AckReceived,
    CancelReceived,
    RequestReceived,
    ResponseReceived,
    TransactionEvent,
    TransactionLayer,
    TransactionTerminated,
    build_cancel,
)

TIMERS = TimerConfig()


def pair(transport: str = "UDP") -> tuple[TransactionLayer, Peer, TransactionLayer, Peer, Link]:
    alice_peer = Peer(transport, ALICE.host, ALICE.port)
    bob_peer = Peer(transport, BOB.host, BOB.port)
    alice, bob = TransactionLayer(TIMERS), TransactionLayer(TIMERS)
    return alice, alice_peer, bob, bob_peer, Link(alice, alice_peer, bob, bob_peer)


def codes(events: list[TransactionEvent]) -> list[int]:
    return [e.response.status_code for e in events if isinstance(e, ResponseReceived)]


def only_request(events: list[TransactionEvent]) -> RequestReceived:
    [event] = [e for e in events if isinstance(e, RequestReceived)]
    return event


def test_invite_100_180_200_ack_over_udp() -> None:
    alice, alice_peer, bob, bob_peer, link = pair()
    invite = request("INVITE")
    key = alice.send_request(invite, bob_peer, 0.0)
    link.pump(0.0)
    incoming = only_request(drain(bob))
    assert incoming.peer == alice_peer

    bob.handle_timer(0.2)  # the TU is slow: automatic 100 Trying
    link.pump(0.2)
    bob.send_response(reply(incoming.request, 180), 1.0)
    link.pump(1.0)
    ok = reply(incoming.request, 200)
    bob.send_response(ok, 2.0)
    link.pump(2.0)
    assert codes(drain(alice)) == [100, 180, 200]

    # The ACK for the 2xx is the TU's, sent outside the transactions, on a new branch.
    ack = request("ACK", branch="z9hG4bKack1", to_tag="a6c85cf", cseq_method="ACK")
    alice.send_stateless(ack, bob_peer)
    link.pump(2.1)
    [ack_event] = drain(bob)
    assert isinstance(ack_event, AckReceived) and ack_event.request.method == "ACK"

    # Both sides linger in Accepted for 64*T1, then forget the transaction.
    run_timers_until(alice, 40.0)
    run_timers_until(bob, 40.0)
    assert drain(alice) == [TransactionTerminated(key)]
    assert drain(bob) == [TransactionTerminated(incoming.key)]
    assert len(alice) == len(bob) == 0
    methods = [m.method if isinstance(m, Request) else m.status_code for _, m in link.delivered]
    assert methods == ["INVITE", 100, 180, 200, "ACK"]


def test_lost_invite_and_lost_200_are_recovered() -> None:
    alice, _, bob, bob_peer, link = pair()
    invite = request("INVITE")
    alice.send_request(invite, bob_peer, 0.0)
    link.drop = 1  # the INVITE is lost
    link.pump(0.0)
    assert drain(bob) == []
    alice.handle_timer(0.5)  # Timer A
    link.pump(0.5)
    incoming = only_request(drain(bob))
    ok = reply(incoming.request, 200)
    bob.send_response(ok, 0.6)
    link.drop = 1  # the 200 is lost too
    link.pump(0.6)
    alice.handle_timer(1.5)  # Timer A again: Bob's Accepted state absorbs it ...
    link.pump(1.5)
    assert drain(bob) == []
    bob.send_response(ok, 1.6)  # ... and Bob's TU retransmits the 2xx (§13.3.1.4)
    link.pump(1.6)
    assert codes(drain(alice)) == [200]


def test_busy_over_udp_with_transaction_ack() -> None:
    alice, _, bob, bob_peer, link = pair()
    alice.send_request(request("INVITE"), bob_peer, 0.0)
    link.pump(0.0)
    incoming = only_request(drain(bob))
    bob.send_response(reply(incoming.request, 486), 0.1)
    link.pump(0.1)
    assert codes(drain(alice)) == [486]
    assert drain(bob) == []  # the ACK stayed inside Bob's transaction
    assert [m.method for _, m in link.delivered if isinstance(m, Request)] == ["INVITE", "ACK"]
    run_timers_until(alice, 100.0)
    run_timers_until(bob, 100.0)
    assert len(alice) == len(bob) == 0
    sent_after_ack = [m for _, m in link.delivered[3:]]
    assert sent_after_ack == []  # Timer G stopped at the ACK


def test_cancel_flow() -> None:
    alice, _, bob, bob_peer, link = pair()
    invite = request("INVITE")
    invite_key = alice.send_request(invite, bob_peer, 0.0)
    link.pump(0.0)
    incoming = only_request(drain(bob))
    bob.send_response(reply(incoming.request, 180), 0.1)
    link.pump(0.1)
    alice.send_request(build_cancel(invite), bob_peer, 1.0)
    link.pump(1.0)
    [cancelled] = drain(bob)
    assert isinstance(cancelled, CancelReceived) and cancelled.invite_key == incoming.key
    bob.send_request_terminated(cancelled.invite_key, 1.1)
    link.pump(1.1)
    events = drain(alice)
    assert codes(events) == [180, 200, 487]
    assert [e.key.method for e in events if isinstance(e, ResponseReceived)] == [
        "INVITE",
        "CANCEL",
        "INVITE",
    ]
    assert drain(bob) == []  # the ACK for the 487 was absorbed
    run_timers_until(alice, 100.0)
    run_timers_until(bob, 100.0)
    assert TransactionTerminated(invite_key) in drain(alice)
    assert len(alice) == len(bob) == 0


def test_non_invite_over_udp_and_retransmitted_request() -> None:
    alice, _, bob, bob_peer, link = pair()
    key = alice.send_request(request("OPTIONS", branch="z9hG4bKo1"), bob_peer, 0.0)
    link.pump(0.0)
    incoming = only_request(drain(bob))
    alice.handle_timer(0.5)  # Timer E fires before Bob answers: absorbed in Trying
    link.pump(0.5)
    assert drain(bob) == []
    bob.send_response(reply(incoming.request, 200), 0.6)
    link.pump(0.6)
    assert codes(drain(alice)) == [200]
    run_timers_until(alice, 100.0)
    run_timers_until(bob, 100.0)
    assert drain(alice) == [TransactionTerminated(key)]
    assert drain(bob) == [TransactionTerminated(incoming.key)]


def test_tcp_has_no_retransmissions_and_short_lives() -> None:
    alice, _, bob, bob_peer, link = pair("TCP")
    key = alice.send_request(request("OPTIONS", transport="TCP"), bob_peer, 0.0)
    link.pump(0.0)
    incoming = only_request(drain(bob))
    assert alice.get_timer() == 32.0  # Timer F only
    bob.send_response(reply(incoming.request, 200), 0.1)
    link.pump(0.1)
    assert [type(e) for e in drain(alice)] == [ResponseReceived, TransactionTerminated]
    assert drain(bob) == [TransactionTerminated(incoming.key)]  # J = 0
    assert len(alice) == len(bob) == 0 and key.method == "OPTIONS"
    assert all(isinstance(m, Response) or m.method == "OPTIONS" for _, m in link.delivered)
