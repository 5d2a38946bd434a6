"""INVITE server transaction (RFC 3261 §17.2.1, RFC 6026): 100 Trying, G/H/I, Accepted, L."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis.strategies import sampled_from
from txkit import ALICE, drain, reply, request

from sipdialer.sip.errors import LocalProtocolError
from sipdialer.sip.message import Request, Response, parse_message
from sipdialer.sip.peer import Peer
from sipdialer.sip.timers import TimerConfig
from sipdialer.sip.transaction import (
    AckReceived,
    InviteServerTransaction,
    TransactionTerminated,
    TransactionTimedOut,
    TransportFailed,
)
from sipdialer.sip.transaction.invite_server import (
    TIMER_INPUTS,
    TRANSITIONS,
    WIRE_INPUTS,
    Input,
    State,
)
from sipdialer.sip.transaction.keys import server_key

INVITE = request("INVITE", extra="Timestamp: 54\n")
ACK = request("ACK", to_tag="a6c85cf")


def created(
    *, reliable: bool = False, trying: float | None = 0.2, now: float = 0.0
) -> InviteServerTransaction:
    peer = Peer("TCP", ALICE.host, ALICE.port) if reliable else ALICE
    tx = InviteServerTransaction(
        INVITE, server_key(INVITE), peer, timers=TimerConfig(), trying_delay=trying
    )
    tx.start(now)
    return tx


def codes(tx: InviteServerTransaction) -> list[int]:
    out = []
    for data in tx.data_to_send():
        message = parse_message(data)
        assert isinstance(message, Response)
        out.append(message.status_code)
    return out


def test_100_trying_after_200_ms_when_the_tu_is_silent() -> None:
    tx = created()
    assert tx.get_timer() == 0.2
    tx.handle_timer(0.2)
    [data] = tx.data_to_send()
    trying = parse_message(data)
    assert isinstance(trying, Response) and trying.status_code == 100
    assert trying.to.tag is None  # §8.2.6.2: no tag on 100
    assert trying.headers.get("Timestamp") == "54"  # §8.2.6.1
    assert tx.get_timer() is None


def test_no_100_when_the_tu_answers_in_time() -> None:
    tx = created()
    tx.send_response(reply(INVITE, 180), now=0.1)
    assert codes(tx) == [180] and tx.get_timer() is None
    tx.handle_timer(0.2)
    assert codes(tx) == []


def test_trying_delay_zero_sends_at_once_and_none_never() -> None:
    assert codes(created(trying=0.0)) == [100]
    silent = created(trying=None)
    assert silent.get_timer() is None and codes(silent) == []


def test_retransmitted_invite_gets_the_latest_provisional() -> None:
    tx = created()
    tx.receive_request(INVITE, now=0.05)  # nothing sent yet: the 100 goes out now
    assert codes(tx) == [100] and tx.get_timer() is None
    tx.send_response(reply(INVITE, 180), now=1.0)
    tx.send_response(reply(INVITE, 183), now=2.0)
    tx.receive_request(INVITE, now=2.5)
    assert codes(tx) == [180, 183, 183]
    assert drain(tx) == []  # retransmissions never reach the TU


def test_non_2xx_final_is_retransmitted_by_timer_g_until_timer_h() -> None:
    tx = created()
    tx.send_response(reply(INVITE, 486), now=1.0)
    assert codes(tx) == [486]
    fired, sent = [], 0
    while (at := tx.get_timer()) is not None:
        tx.handle_timer(at)
        fired.append(at)
        sent += len(codes(tx))
    # G: T1 doubling up to T2 (0.5, 1, 2, 4, 4, ...); H at 64*T1 after the final.
    assert fired == [1.5, 2.5, 4.5, 8.5, 12.5, 16.5, 20.5, 24.5, 28.5, 32.5, 33.0]
    assert sent == 10
    assert drain(tx) == [TransactionTimedOut(tx.key), TransactionTerminated(tx.key)]


def test_ack_confirms_then_timer_i_absorbs_ack_retransmissions() -> None:
    tx = created()
    tx.send_response(reply(INVITE, 404), now=1.0)
    tx.receive_request(INVITE, now=1.1)  # the INVITE again: the final again
    assert codes(tx) == [404, 404]
    tx.receive_ack(ACK, ALICE, now=1.2)
    assert (tx.state, tx.get_timer()) == (State.CONFIRMED, 6.2)  # I = T4
    tx.receive_ack(ACK, ALICE, now=1.3)
    tx.receive_request(INVITE, now=1.4)
    assert codes(tx) == [] and drain(tx) == []
    tx.handle_timer(6.2)
    assert drain(tx) == [TransactionTerminated(tx.key)]


def test_reliable_transport_no_g_and_i_zero() -> None:
    tx = created(reliable=True)
    tx.send_response(reply(INVITE, 603), now=1.0)
    assert tx.get_timer() == 33.0  # H only
    tx.receive_ack(ACK, ALICE, now=1.5)
    assert drain(tx) == [TransactionTerminated(tx.key)]  # I = 0


def test_2xx_goes_to_accepted_absorbs_invites_and_passes_acks_up() -> None:
    tx = created()
    ok = reply(INVITE, 200)
    tx.send_response(ok, now=1.0)
    assert tx.state is State.ACCEPTED and tx.get_timer() == 33.0  # Timer L
    tx.receive_request(INVITE, now=1.1)  # absorbed: the TU retransmits the 2xx itself
    tx.send_response(ok, now=1.5)  # ... like this (§13.3.1.4)
    assert codes(tx) == [200, 200]
    tx.receive_ack(ACK, ALICE, now=1.6)
    assert drain(tx) == [AckReceived(ACK, ALICE)]
    tx.handle_timer(33.0)
    assert drain(tx) == [TransactionTerminated(tx.key)]


def test_transport_error_in_accepted_is_reported_but_keeps_absorbing() -> None:
    tx = created()
    tx.send_response(reply(INVITE, 200), now=1.0)
    tx.transport_error(now=1.1)
    assert drain(tx) == [TransportFailed(tx.key)] and tx.state is State.ACCEPTED


def test_transport_error_before_the_final_terminates() -> None:
    tx = created()
    tx.transport_error(now=0.1)
    assert drain(tx) == [TransportFailed(tx.key), TransactionTerminated(tx.key)]


def test_tu_mistakes_raise_and_change_nothing() -> None:
    tx = created()
    tx.send_response(reply(INVITE, 486), now=1.0)
    for late in (reply(INVITE, 180), reply(INVITE, 200), reply(INVITE, 500)):
        with pytest.raises(LocalProtocolError):
            tx.send_response(late, now=1.1)
    assert tx.state is State.COMPLETED and codes(tx) == [486]
    with pytest.raises(LocalProtocolError):
        tx.start(2.0)


def message_for(input_: Input) -> Request | Response | None:
    table: dict[Input, Request | Response] = {
        Input.REQUEST: INVITE,
        Input.ACK: ACK,
        Input.SEND_PROVISIONAL: reply(INVITE, 180),
        Input.SEND_SUCCESS: reply(INVITE, 200),
        Input.SEND_FAILURE: reply(INVITE, 486),
    }
    return table.get(input_)


@given(state=sampled_from(State), input_=sampled_from(Input))
def test_table_is_total_for_the_wire(state: State, input_: Input) -> None:
    tx = created()
    tx._state = state
    tx.last_response = reply(INVITE, 486 if state is State.COMPLETED else 180)
    tx._ack_peer = ALICE
    if input_ in WIRE_INPUTS or (state, input_) in TRANSITIONS:
        tx._process(input_, 1.0, message_for(input_))
    else:
        with pytest.raises(LocalProtocolError):
            tx._process(input_, 1.0, message_for(input_))


def test_every_timer_has_an_input() -> None:
    local = {Input.SEND_PROVISIONAL, Input.SEND_SUCCESS, Input.SEND_FAILURE}
    assert set(TIMER_INPUTS.values()) == set(Input) - WIRE_INPUTS - local
