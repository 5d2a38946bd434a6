"""INVITE client transaction (RFC 3261 §17.1.1, RFC 6026), driven by hand: no sleeps."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis.strategies import sampled_from
from txkit import BOB, drain, reply, request

from sipdialer.sip.errors import LocalProtocolError
from sipdialer.sip.message import Request, Response, parse_message
from sipdialer.sip.peer import Peer
from sipdialer.sip.timers import TimerConfig
from sipdialer.sip.transaction import (
    InviteClientTransaction,
    ResponseReceived,
    TransactionTerminated,
    TransactionTimedOut,
    TransportFailed,
    build_ack_for_non2xx,
)
from sipdialer.sip.transaction.invite_client import (
    TIMER_INPUTS,
    TRANSITIONS,
    WIRE_INPUTS,
    Input,
    State,
)

TCP_BOB = Peer("TCP", BOB.host, BOB.port)
ROUTE = "Route: <sip:p1.example.com;lr>\nRoute: <sip:p2.example.com;lr>\n"
INVITE = request("INVITE", extra=ROUTE + "Authorization: Digest x\n")


def started(*, reliable: bool = False, now: float = 0.0) -> InviteClientTransaction:
    tx = InviteClientTransaction(INVITE, TCP_BOB if reliable else BOB, timers=TimerConfig())
    tx.start(now)
    assert tx.data_to_send() == [INVITE.to_bytes()]
    return tx


def test_timer_a_doubles_without_cap_until_timer_b() -> None:
    tx = started()
    fired = []
    while (at := tx.get_timer()) is not None:
        tx.handle_timer(at)
        fired.append(at)
        if tx.state is State.CALLING:
            assert tx.data_to_send() == [INVITE.to_bytes()]
    # A at T1, 2T1, 4T1 ... 32T1 (intervals 0.5..16: no T2 cap for INVITE), B at 64*T1.
    assert fired == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5, 32.0]
    assert drain(tx) == [TransactionTimedOut(tx.key), TransactionTerminated(tx.key)]
    assert tx.data_to_send() == []


def test_late_wake_up_times_out_without_retransmitting() -> None:
    tx = started()
    tx.handle_timer(100.0)
    assert tx.state is State.TERMINATED
    assert tx.data_to_send() == []
    assert drain(tx) == [TransactionTimedOut(tx.key), TransactionTerminated(tx.key)]


def test_early_or_repeated_handle_timer_is_harmless() -> None:
    tx = started()
    tx.handle_timer(0.1)
    tx.handle_timer(0.1)
    assert tx.data_to_send() == [] and drain(tx) == [] and tx.get_timer() == 0.5


def test_reliable_transport_has_only_timer_b() -> None:
    tx = started(reliable=True)
    assert tx.get_timer() == 32.0
    tx.handle_timer(32.0)
    assert tx.data_to_send() == []  # never retransmitted
    assert drain(tx)[0] == TransactionTimedOut(tx.key)


def test_provisional_stops_retransmissions_and_timer_b() -> None:
    tx = started()
    ringing = reply(INVITE, 180)
    tx.receive_response(reply(INVITE, 100), now=0.2)
    tx.receive_response(ringing, now=0.3)
    assert tx.state is State.PROCEEDING and tx.get_timer() is None
    assert [e.response.status_code for e in drain(tx) if isinstance(e, ResponseReceived)] == [
        100,
        180,
    ]


def test_failure_is_acked_with_the_right_headers_and_retransmissions_absorbed() -> None:
    tx = started()
    busy = reply(INVITE, 486)
    tx.receive_response(reply(INVITE, 180), now=0.2)
    tx.receive_response(busy, now=0.3)
    tx.receive_response(busy, now=0.8)  # retransmitted by the UAS: ACKed again, not passed up
    acks = [parse_message(data) for data in tx.data_to_send()]
    assert len(acks) == 2 and acks[0] == acks[1]
    ack = acks[0]
    assert isinstance(ack, Request)
    assert (ack.method, ack.uri) == ("ACK", INVITE.uri)
    assert ack.headers.get_all("Via") == INVITE.headers.get_all("Via")[:1]
    assert ack.call_id == INVITE.call_id
    assert ack.headers.get("From") == INVITE.headers.get("From")
    assert ack.headers.get("To") == busy.headers.get("To") and ack.to.tag == "a6c85cf"
    assert str(ack.cseq) == f"{INVITE.cseq.number} ACK"
    assert ack.headers.get_lines("Route") == INVITE.headers.get_lines("Route")
    assert ack.headers.get("Max-Forwards") == "70" and ack.body == b""
    assert ack.headers.get("Contact") is None
    assert [e.response.status_code for e in drain(tx) if isinstance(e, ResponseReceived)] == [
        180,
        486,
    ]
    assert (tx.state, tx.get_timer()) == (State.COMPLETED, 32.3)  # Timer D
    tx.handle_timer(32.3)
    assert drain(tx) == [TransactionTerminated(tx.key)]


@pytest.mark.parametrize("code", [300, 404, 486, 503, 603])
def test_every_non_2xx_final_is_acked(code: int) -> None:
    tx = started()
    tx.receive_response(reply(INVITE, code), now=1.0)
    [data] = tx.data_to_send()
    assert data.startswith(b"ACK ")


def test_failure_over_tcp_terminates_at_once() -> None:
    tx = started(reliable=True)
    tx.receive_response(reply(INVITE, 486), now=1.0)
    [ack] = tx.data_to_send()
    assert ack.startswith(b"ACK ")
    assert [type(e) for e in drain(tx)] == [ResponseReceived, TransactionTerminated]  # D = 0


def test_2xx_retransmissions_reach_the_tu_until_timer_m() -> None:
    tx = started()
    ok = reply(INVITE, 200)
    tx.receive_response(ok, now=1.0)
    tx.receive_response(ok, now=1.5)
    tx.receive_response(reply(INVITE, 180), now=1.6)  # stray: absorbed
    tx.receive_response(reply(INVITE, 486), now=1.7)  # RFC 6026 §7.2: absorbed
    assert tx.data_to_send() == []  # the ACK for a 2xx is the TU's job
    assert drain(tx) == [ResponseReceived(ok, tx.key), ResponseReceived(ok, tx.key)]
    assert (tx.state, tx.get_timer()) == (State.ACCEPTED, 33.0)  # Timer M = 64*T1
    tx.handle_timer(33.0)
    assert drain(tx) == [TransactionTerminated(tx.key)]


def test_forked_2xx_from_two_uas_both_pass_up() -> None:
    tx = started()
    first, second = reply(INVITE, 200, to_tag="one"), reply(INVITE, 200, to_tag="two")
    tx.receive_response(first, now=1.0)
    tx.receive_response(second, now=1.1)
    assert drain(tx) == [ResponseReceived(first, tx.key), ResponseReceived(second, tx.key)]


def test_transport_error_is_reported_then_terminated() -> None:
    tx = started()
    tx.transport_error(now=0.1)
    assert drain(tx) == [TransportFailed(tx.key), TransactionTerminated(tx.key)]
    assert tx.get_timer() is None


def test_cancel_wait_gives_up_64_t1_after_cancel() -> None:
    tx = started()
    tx.receive_response(reply(INVITE, 180), now=1.0)
    tx.cancel_sent(now=2.0)
    assert tx.get_timer() == 34.0
    tx.handle_timer(34.0)
    assert [type(e) for e in drain(tx)] == [
        ResponseReceived,
        TransactionTimedOut,
        TransactionTerminated,
    ]


def test_cancel_wait_is_cancelled_by_the_487() -> None:
    tx = started()
    tx.receive_response(reply(INVITE, 180), now=1.0)
    tx.cancel_sent(now=2.0)
    tx.receive_response(reply(INVITE, 487), now=2.1)
    assert (tx.state, tx.get_timer()) == (State.COMPLETED, 34.1)  # Timer D, not the wait


def test_cancel_before_any_provisional_is_a_local_error() -> None:
    tx = started()
    with pytest.raises(LocalProtocolError, match="9.1"):
        tx.cancel_sent(now=0.1)


def test_misuse_raises() -> None:
    tx = started()
    with pytest.raises(LocalProtocolError):
        tx.start(1.0)
    with pytest.raises(LocalProtocolError):
        InviteClientTransaction(request("OPTIONS"), BOB)


def test_build_ack_keeps_only_the_top_via() -> None:
    two_vias = request("INVITE", extra="Via: SIP/2.0/UDP proxy.example.com;branch=z9hG4bKp\n")
    ack = build_ack_for_non2xx(two_vias, reply(two_vias, 404))
    assert len(ack.vias) == 1 and ack.top_via.branch == "z9hG4bK776asdhds"


def message_for(input_: Input) -> Response | None:
    return {
        Input.PROVISIONAL: reply(INVITE, 180),
        Input.SUCCESS: reply(INVITE, 200),
        Input.FAILURE: reply(INVITE, 486),
    }.get(input_)


@given(state=sampled_from(State), input_=sampled_from(Input))
def test_table_is_total_for_the_wire(state: State, input_: Input) -> None:
    # h2-style: every (state, input). Wire inputs never raise; others raise unless listed.
    tx = started()
    tx._state = state
    if input_ in WIRE_INPUTS or (state, input_) in TRANSITIONS:
        tx._process(input_, 1.0, message_for(input_))
        assert tx.state in State
    else:
        with pytest.raises(LocalProtocolError):
            tx._process(input_, 1.0, message_for(input_))


def test_every_timer_has_an_input_and_the_table_reaches_every_state() -> None:
    local = {Input.CANCEL_SENT}
    assert set(TIMER_INPUTS.values()) == set(Input) - WIRE_INPUTS - local
    reached = {next_state for next_state, _ in TRANSITIONS.values()}
    assert reached == set(State)
