"""Non-INVITE server transaction (RFC 3261 §17.2.2): Trying, Proceeding, Completed, J."""

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
    NonInviteServerTransaction,
    TransactionTerminated,
    TransportFailed,
)
from sipdialer.sip.transaction.keys import server_key
from sipdialer.sip.transaction.noninvite_server import (
    TIMER_INPUTS,
    TRANSITIONS,
    WIRE_INPUTS,
    Input,
    State,
)

BYE = request("BYE", to_tag="a6c85cf", cseq=314160)


def created(*, reliable: bool = False) -> NonInviteServerTransaction:
    peer = Peer("TCP", ALICE.host, ALICE.port) if reliable else ALICE
    tx = NonInviteServerTransaction(BYE, server_key(BYE), peer, timers=TimerConfig())
    tx.start(0.0)
    return tx


def codes(tx: NonInviteServerTransaction) -> list[int]:
    out = []
    for data in tx.data_to_send():
        message = parse_message(data)
        assert isinstance(message, Response)
        out.append(message.status_code)
    return out


def test_trying_absorbs_retransmissions_silently() -> None:
    tx = created()
    tx.receive_request(BYE, now=0.5)
    assert codes(tx) == [] and drain(tx) == [] and tx.get_timer() is None


def test_retransmission_gets_the_last_response_again() -> None:
    tx = created()
    tx.send_response(reply(BYE, 100), now=0.1)
    tx.receive_request(BYE, now=0.5)
    tx.send_response(reply(BYE, 200), now=0.6)
    tx.receive_request(BYE, now=1.0)
    tx.receive_request(BYE, now=2.0)
    assert codes(tx) == [100, 100, 200, 200, 200]


def test_timer_j_then_terminated() -> None:
    tx = created()
    tx.send_response(reply(BYE, 200), now=1.0)
    assert (tx.state, tx.get_timer()) == (State.COMPLETED, 33.0)  # J = 64*T1
    tx.handle_timer(33.0)
    assert drain(tx) == [TransactionTerminated(tx.key)]


def test_reliable_j_is_zero() -> None:
    tx = created(reliable=True)
    tx.send_response(reply(BYE, 200), now=1.0)
    assert codes(tx) == [200]
    assert drain(tx) == [TransactionTerminated(tx.key)]


def test_second_final_response_is_a_local_error() -> None:
    tx = created()
    tx.send_response(reply(BYE, 200), now=1.0)
    with pytest.raises(LocalProtocolError):
        tx.send_response(reply(BYE, 500), now=1.1)
    with pytest.raises(LocalProtocolError):
        tx.send_response(reply(BYE, 100), now=1.1)


def test_transport_error() -> None:
    tx = created()
    tx.send_response(reply(BYE, 200), now=1.0)
    tx.transport_error(now=1.1)
    assert drain(tx) == [TransportFailed(tx.key), TransactionTerminated(tx.key)]


def test_invite_and_ack_are_refused() -> None:
    for method in ("INVITE", "ACK"):
        req = request(method)
        with pytest.raises(LocalProtocolError):
            NonInviteServerTransaction(req, server_key(req), ALICE)


def message_for(input_: Input) -> Request | Response | None:
    table: dict[Input, Request | Response] = {
        Input.REQUEST: BYE,
        Input.SEND_PROVISIONAL: reply(BYE, 100),
        Input.SEND_FINAL: reply(BYE, 200),
    }
    return table.get(input_)


@given(state=sampled_from(State), input_=sampled_from(Input))
def test_table_is_total_for_the_wire(state: State, input_: Input) -> None:
    tx = created()
    tx._state = state
    tx.last_response = reply(BYE, 200)
    if input_ in WIRE_INPUTS or (state, input_) in TRANSITIONS:
        tx._process(input_, 1.0, message_for(input_))
    else:
        with pytest.raises(LocalProtocolError):
            tx._process(input_, 1.0, message_for(input_))


def test_every_timer_has_an_input() -> None:
    local = {Input.SEND_PROVISIONAL, Input.SEND_FINAL}
    assert set(TIMER_INPUTS.values()) == set(Input) - WIRE_INPUTS - local
