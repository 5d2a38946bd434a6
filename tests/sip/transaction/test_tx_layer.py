"""TransactionLayer: matching, stamping, CANCEL, RFC 2543 peers, stray input, one timer."""

from __future__ import annotations

import time

import pytest
from txkit import ALICE, BOB, crlf, drain, reply, request, run_timers_until, wire

from sipdialer.sip.errors import LocalProtocolError, ParseError
from sipdialer.sip.message import Request, Response, parse_message, response_for
from sipdialer.sip.peer import Peer
from sipdialer.sip.timers import TimerConfig
from sipdialer.sip.transaction import (
    AckReceived,
    CancelReceived,
    ClientKey,
    RequestReceived,
    ResponseReceived,
    TransactionLayer,
    TransactionTerminated,
    TransactionTimedOut,
    TransportFailed,
    build_cancel,
    invite_client,
    invite_server,
)

NAT = Peer("UDP", "198.51.100.7", 40312)


def uas(**kwargs: float | None) -> TransactionLayer:
    return TransactionLayer(TimerConfig(), **kwargs)


def received(layer: TransactionLayer, req: Request, source: Peer = ALICE, now: float = 0.0) -> \
        RequestReceived:  # fmt: skip
    layer.receive(req, source, now)
    [event] = drain(layer)
    assert isinstance(event, RequestReceived)
    return event


def statuses(layer: TransactionLayer) -> list[tuple[int, Peer]]:
    out = []
    for message, peer in wire(layer):
        assert isinstance(message, Response)
        out.append((message.status_code, peer))
    return out


# --- server side ----------------------------------------------------------------------


def test_new_request_is_stamped_and_passed_up_once() -> None:
    layer = uas()
    invite = request("INVITE", via_extra=";rport")
    event = received(layer, invite, NAT)
    assert event.peer == NAT and event.request is invite
    assert (invite.top_via.received, invite.top_via.rport) == ("198.51.100.7", 40312)
    layer.receive(request("INVITE", via_extra=";rport"), NAT, 0.1)  # retransmission
    assert drain(layer) == [] and layer.stats["request_retransmissions"] == 1
    # Responses go where RFC 3581 says: the NAT's public address and port. The
    # retransmission found nothing to resend, so it got the 100 Trying early.
    layer.send_response(reply(invite, 180), now=0.15)
    assert statuses(layer) == [(100, NAT), (180, NAT)]


def test_multi_value_via_line_keeps_the_others() -> None:
    layer = uas()
    raw = crlf(
        "OPTIONS sip:bob@192.0.2.20 SIP/2.0\n"
        "Via: SIP/2.0/UDP pc33.example.com;branch=z9hG4bKa, "
        "SIP/2.0/UDP p.example.com;branch=z9hG4bKb\n"
        "To: <sip:bob@192.0.2.20>\nFrom: <sip:a@example.com>;tag=1\nCall-ID: c1\n"
        "CSeq: 1 OPTIONS\nContent-Length: 0\n\n"
    )  # fmt: skip
    req = parse_message(raw)
    assert isinstance(req, Request)
    received(layer, req)
    assert [v.received for v in req.vias] == ["192.0.2.10", None]
    assert [v.branch for v in req.vias] == ["z9hG4bKa", "z9hG4bKb"]


def test_auto_100_trying_through_the_layer() -> None:
    layer = uas()
    key = received(layer, request("INVITE")).key
    assert layer.get_timer() == 0.2
    layer.handle_timer(0.2)
    assert statuses(layer) == [(100, ALICE)]
    tx = layer.transaction(key)
    assert tx is not None and tx.state is invite_server.State.PROCEEDING


def test_auto_trying_can_be_disabled_or_immediate() -> None:
    silent = uas(auto_trying=None)
    received(silent, request("INVITE"))
    assert silent.get_timer() is None and silent.data_to_send() == []
    eager = uas(auto_trying=0.0)
    received(eager, request("INVITE"))
    assert statuses(eager) == [(100, ALICE)]


def test_a_request_whose_responses_would_be_multicast_is_dropped() -> None:
    layer = uas()
    layer.receive(request("OPTIONS", via_extra=";maddr=224.0.1.75"), ALICE, 0.0)
    layer.receive(request("OPTIONS", branch="z9hG4bK2", via_extra=";maddr=255.255.255.255"),
                  ALICE, 0.0)  # fmt: skip
    assert drain(layer) == [] and len(layer) == 0
    assert layer.stats["unroutable_requests"] == 2


def test_a_broadcast_sent_by_is_answered_at_the_real_source() -> None:
    # §18.2.1: received= is stamped because the sent-by is not the source address,
    # and §18.2.2 then answers there, never at 255.255.255.255.
    layer = uas()
    req = received(layer, request("OPTIONS", via_host="255.255.255.255")).request
    assert req.top_via.received == ALICE.host
    layer.send_response(reply(req, 200), now=0.1)
    assert statuses(layer) == [(200, Peer("UDP", ALICE.host, 5060))]


def test_malformed_matching_headers_raise_and_change_nothing() -> None:
    layer = uas()
    req = request("OPTIONS")
    req.headers.remove("Via")
    with pytest.raises(ParseError):
        layer.receive(req, ALICE, 0.0)
    legacy = request("OPTIONS", branch=None)
    legacy.headers.remove("Call-ID")
    with pytest.raises(ParseError):
        layer.receive(legacy, ALICE, 0.0)
    assert len(layer) == 0 and drain(layer) == [] and layer.data_to_send() == []


def test_response_to_a_forgotten_transaction_is_counted_not_raised() -> None:
    layer = uas()
    req = received(layer, request("OPTIONS")).request
    key = next(iter(layer._transactions))
    assert layer.send_response(reply(req, 200), now=0.0)
    layer.handle_timer(100.0)  # Timer J
    assert drain(layer) == [TransactionTerminated(key)] and len(layer) == 0
    assert not layer.send_response(reply(req, 200), now=101.0)
    assert layer.stats["responses_without_transaction"] == 1


def test_second_final_response_raises() -> None:
    layer = uas()
    req = received(layer, request("OPTIONS")).request
    layer.send_response(reply(req, 200), now=0.0)
    with pytest.raises(LocalProtocolError):
        layer.send_response(reply(req, 500), now=0.1)


def test_ack_for_2xx_is_passed_up_without_a_transaction() -> None:
    layer = uas()
    invite = received(layer, request("INVITE")).request
    layer.send_response(reply(invite, 200), now=0.1)
    layer.data_to_send()
    ack = request("ACK", branch="z9hG4bKnewbranch", to_tag="a6c85cf")  # §17.1.1.3: new branch
    layer.receive(ack, ALICE, 0.2)
    assert drain(layer) == [AckReceived(ack, ALICE)]
    same_branch = request("ACK", to_tag="a6c85cf")  # matches the Accepted INVITE
    layer.receive(same_branch, ALICE, 0.3)
    assert drain(layer) == [AckReceived(same_branch, ALICE)]
    stray = request("ACK", branch="z9hG4bKunknown", cseq=99)
    layer.receive(stray, ALICE, 0.4)
    assert drain(layer) == [AckReceived(stray, ALICE)]


def test_ack_for_non_2xx_is_absorbed() -> None:
    layer = uas()
    invite = received(layer, request("INVITE")).request
    layer.send_response(reply(invite, 486), now=0.1)
    layer.receive(request("ACK", to_tag="a6c85cf"), ALICE, 0.2)
    assert drain(layer) == []
    key = next(iter(layer._transactions))
    tx = layer.transaction(key)
    assert tx is not None and tx.state is invite_server.State.CONFIRMED


# --- CANCEL (RFC 3261 §9.2) -----------------------------------------------------------


def test_cancel_gets_200_and_the_tu_answers_487_with_the_same_tag() -> None:
    layer = uas()
    event = received(layer, request("INVITE"))
    layer.send_response(reply(event.request, 180, to_tag="ringtag"), now=0.1)
    layer.data_to_send()
    cancel = request("CANCEL")
    layer.receive(cancel, ALICE, 1.0)
    assert drain(layer) == [CancelReceived(cancel, ALICE, event.key)]
    [(ok, peer)] = wire(layer)
    assert isinstance(ok, Response) and (ok.status_code, ok.cseq.method) == (200, "CANCEL")
    assert ok.to.tag == "ringtag" and peer == ALICE
    layer.receive(request("CANCEL"), ALICE, 1.1)  # retransmitted CANCEL
    assert drain(layer) == [] and statuses(layer) == [(200, ALICE)]
    layer.send_request_terminated(event.key, now=1.2)
    [(terminated, _)] = wire(layer)
    assert isinstance(terminated, Response) and terminated.status_code == 487
    assert terminated.to.tag == "ringtag" and terminated.cseq.method == "INVITE"


def test_cancel_before_any_provisional_reuses_the_200_tag_for_the_487() -> None:
    layer = uas(auto_trying=None)
    event = received(layer, request("INVITE"))
    layer.receive(request("CANCEL"), ALICE, 0.1)
    [(ok, _)] = wire(layer)
    assert isinstance(ok, Response) and ok.to.tag
    layer.send_request_terminated(event.key, now=0.2)
    [(terminated, _)] = wire(layer)
    assert isinstance(terminated, Response) and terminated.to.tag == ok.to.tag


def test_cancel_matching_nothing_gets_481() -> None:
    layer = uas()
    layer.receive(request("CANCEL", branch="z9hG4bKnothing"), ALICE, 0.0)
    assert drain(layer) == [] and statuses(layer) == [(481, ALICE)]
    assert layer.stats["unmatched_cancels"] == 1


def test_cancel_after_the_final_response_has_no_effect() -> None:
    layer = uas()
    event = received(layer, request("INVITE"))
    layer.send_response(reply(event.request, 486), now=0.1)
    layer.data_to_send()
    layer.receive(request("CANCEL"), ALICE, 0.2)
    assert drain(layer) == [] and statuses(layer) == [(200, ALICE)]


def test_487_helper_needs_a_live_invite() -> None:
    layer = uas()
    with pytest.raises(LocalProtocolError):
        layer.send_request_terminated(received(layer, request("OPTIONS")).key, now=0.0)


# --- RFC 2543 peers (§17.2.3, RFC 4475 §3.4 inv2543) ------------------------------------

INV2543 = crlf(
    """INVITE sip:UserB@example.com SIP/2.0
Via: SIP/2.0/UDP iftgw.example.com
From: <sip:+13035551111@ift.client.example.net;user=phone>
Record-Route: <sip:UserB@example.com;maddr=ss1.example.com>
To: sip:+16505552222@ss1.example.net;user=phone
Call-ID: inv2543.1717@ift.client.example.com
CSeq: 56 INVITE
Content-Type: application/sdp

v=0
o=mhandley 29739 7272939 IN IP4 192.0.2.5
s=-
c=IN IP4 192.0.2.5
t=0 0
m=audio 49217 RTP/AVP 0
"""
)
GATEWAY = Peer("UDP", "192.0.2.5", 5060)


def legacy(method: str, *, to_tag: str | None = None) -> Request:
    text = INV2543.replace(b"INVITE sip:", method.encode() + b" sip:", 1)
    text = text.replace(b"CSeq: 56 INVITE", b"CSeq: 56 " + method.encode())
    if to_tag:
        text = text.replace(b"user=phone\r\nCall-ID", b"user=phone;tag=" + to_tag.encode() +
                            b"\r\nCall-ID")  # fmt: skip
    message = parse_message(text)
    assert isinstance(message, Request)
    return message


def test_rfc2543_invite_retransmission_ack_and_cancel() -> None:
    layer = uas()
    event = received(layer, legacy("INVITE"), GATEWAY)
    assert event.request.top_via.received == "192.0.2.5"  # host name in sent-by
    layer.receive(legacy("INVITE"), GATEWAY, 0.1)
    assert drain(layer) == [] and layer.stats["request_retransmissions"] == 1
    # The TU answers without naming the transaction: found through Call-ID/CSeq/Via.
    assert layer.send_response(reply(event.request, 180, to_tag="t1"), now=0.2)
    cancel = legacy("CANCEL")
    layer.receive(cancel, GATEWAY, 0.3)
    assert drain(layer) == [CancelReceived(cancel, GATEWAY, event.key)]
    layer.send_request_terminated(event.key, now=0.4)
    sent = statuses(layer)
    assert [code for code, _ in sent] == [100, 180, 200, 487]  # the retransmission drew a 100
    # Responses go to the received address at the default port (§18.2.2).
    assert {peer for _, peer in sent} == {GATEWAY}
    # The ACK carries the 487's To tag and no branch: matched, absorbed (Confirmed).
    layer.receive(legacy("ACK", to_tag="t1"), GATEWAY, 0.5)
    assert drain(layer) == []
    tx = layer.transaction(event.key)
    assert tx is not None and tx.state is invite_server.State.CONFIRMED
    run_timers_until(layer, 100.0)
    assert len(layer) == 0 and not layer._ack_aliases and not layer._legacy_index


def test_rfc2543_ack_with_another_to_tag_is_not_ours() -> None:
    layer = uas()
    event = received(layer, legacy("INVITE"), GATEWAY)
    layer.send_response(reply(event.request, 486, to_tag="t1"), now=0.1)
    other = legacy("ACK", to_tag="someone-else")
    layer.receive(other, GATEWAY, 0.2)
    assert drain(layer) == [AckReceived(other, GATEWAY)]


def test_bare_magic_cookie_branch_is_matched_the_rfc2543_way() -> None:
    layer = uas()
    received(layer, request("OPTIONS", branch="z9hG4bK"))
    layer.receive(request("OPTIONS", branch="z9hG4bK"), ALICE, 0.1)
    assert drain(layer) == []
    received(layer, request("OPTIONS", branch="z9hG4bK", cseq=9))  # a different request


# --- client side ----------------------------------------------------------------------


def test_stray_responses_are_dropped_and_counted() -> None:
    layer = uas()
    invite = request("INVITE")
    key = layer.send_request(invite, BOB, 0.0)
    layer.data_to_send()
    for stray in (
        reply(request("INVITE", branch="z9hG4bKunknown"), 200),
        reply(request("INVITE", branch=None), 200),
        reply(request("INVITE", via_host="192.0.2.99"), 200),  # not our sent-by (§18.1.2)
        reply(request("OPTIONS"), 200),  # same branch, other method (§17.1.3)
    ):
        layer.receive(stray, BOB, 0.1)
    assert drain(layer) == [] and layer.stats["stray_responses"] == 4
    ok = reply(invite, 200)
    layer.receive(ok, BOB, 0.2)
    assert drain(layer) == [ResponseReceived(ok, key)]


def test_send_request_refuses_acks_bad_branches_and_duplicates() -> None:
    layer = uas()
    with pytest.raises(LocalProtocolError, match="send_stateless"):
        layer.send_request(request("ACK"), BOB, 0.0)
    with pytest.raises(LocalProtocolError, match="cookie"):
        layer.send_request(request("OPTIONS", branch="1234"), BOB, 0.0)
    no_via = request("OPTIONS")
    no_via.headers.remove("Via")
    with pytest.raises(LocalProtocolError):
        layer.send_request(no_via, BOB, 0.0)
    assert layer.send_request(request("OPTIONS"), BOB, 0.0) == ClientKey(
        "z9hG4bK776asdhds", "OPTIONS"
    )
    with pytest.raises(LocalProtocolError, match="already"):
        layer.send_request(request("OPTIONS"), BOB, 0.0)


def test_send_stateless_just_queues_bytes() -> None:
    layer = uas()
    ack = request("ACK", to_tag="x")
    layer.send_stateless(ack, BOB)
    assert layer.data_to_send() == [(ack.to_bytes(), BOB)] and len(layer) == 0


def test_build_cancel_per_section_9_1() -> None:
    invite = request(
        "INVITE",
        extra="Route: <sip:p1.example.com;lr>\nVia: SIP/2.0/UDP p.example.com;branch=z9hG4bKp\n",
    )
    cancel = build_cancel(invite)
    assert (cancel.method, cancel.uri) == ("CANCEL", invite.uri)
    assert [str(v) for v in cancel.vias] == [str(invite.vias[0])]
    for name in ("From", "To", "Call-ID", "Route"):
        assert cancel.headers.get_lines(name) == invite.headers.get_lines(name)
    assert str(cancel.cseq) == "314159 CANCEL" and cancel.body == b""
    assert cancel.headers.get("Contact") is None


def test_cancel_needs_a_provisional_and_then_arms_the_9_1_wait() -> None:
    layer = uas()
    invite = request("INVITE")
    key = layer.send_request(invite, BOB, 0.0)
    with pytest.raises(LocalProtocolError, match="9.1"):
        layer.send_request(build_cancel(invite), BOB, 0.1)
    assert len(layer) == 1  # nothing was created
    layer.receive(reply(invite, 180), BOB, 0.2)
    cancel_key = layer.send_request(build_cancel(invite), BOB, 0.3)
    assert cancel_key == ClientKey(key.branch, "CANCEL")
    layer.receive(reply(build_cancel(invite), 200), BOB, 0.4)
    drain(layer)
    run_timers_until(layer, 40.0)  # the UAS never sends the 487
    events = drain(layer)
    assert TransactionTimedOut(key) in events and TransactionTerminated(key) in events
    assert len(layer) == 0


def test_transport_error_by_peer_fails_every_transaction_to_it() -> None:
    layer = uas()
    tcp = Peer("TCP", "192.0.2.20", 5060)
    a = layer.send_request(request("OPTIONS", branch="z9hG4bK1", transport="TCP"), tcp, 0.0)
    b = layer.send_request(request("INVITE", branch="z9hG4bK2", transport="TCP"), tcp, 0.0)
    other = layer.send_request(request("OPTIONS", branch="z9hG4bK3"), BOB, 0.0)
    layer.transport_error(tcp, 1.0)
    assert set(drain(layer)) == {TransportFailed(a), TransactionTerminated(a),
                                 TransportFailed(b), TransactionTerminated(b)}  # fmt: skip
    layer.transport_error(other, 1.0)
    assert drain(layer) == [TransportFailed(other), TransactionTerminated(other)]
    layer.transport_error(other, 1.0)  # unknown now: ignored
    assert len(layer) == 0


def test_late_waking_layer_reports_the_timeout_without_retransmitting() -> None:
    layer = uas()
    key = layer.send_request(request("INVITE"), BOB, 0.0)
    layer.data_to_send()
    layer.handle_timer(100.0)
    assert layer.data_to_send() == []
    assert drain(layer) == [TransactionTimedOut(key), TransactionTerminated(key)]
    assert layer.get_timer() is None and len(layer) == 0


def test_invite_retransmission_schedule_through_the_layer() -> None:
    layer = uas()
    layer.send_request(request("INVITE"), BOB, 0.0)
    layer.data_to_send()
    fired = run_timers_until(layer, 100.0)
    assert fired == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5, 32.0]


def test_one_timer_for_thousands_of_transactions() -> None:
    layer = uas()
    started = time.perf_counter()
    for i in range(2000):
        layer.send_request(request("OPTIONS", branch=f"z9hG4bK{i}"), BOB, i * 0.001)
    assert layer.get_timer() == 0.5
    # Answer half of them; their entries go stale in the heap.
    for i in range(0, 2000, 2):
        layer.receive(reply(request("OPTIONS", branch=f"z9hG4bK{i}"), 200), BOB, 0.1)
    drain(layer)
    layer.data_to_send()
    assert len(layer._heap) <= 2 * len(layer._scheduled) + 64
    run_timers_until(layer, 100.0)
    events = drain(layer)
    assert sum(isinstance(e, TransactionTimedOut) for e in events) == 1000
    assert sum(isinstance(e, TransactionTerminated) for e in events) == 2000
    assert len(layer) == 0 and layer.get_timer() is None
    assert time.perf_counter() - started < 10  # generous; ~0.5 s on these machines


def test_client_invite_machine_state_is_visible() -> None:
    layer = uas()
    invite = request("INVITE")
    key = layer.send_request(invite, BOB, 0.0)
    layer.receive(response_for(invite, 100), BOB, 0.1)
    tx = layer.transaction(key)
    assert tx is not None and tx.state is invite_client.State.PROCEEDING
