"""Non-INVITE client transaction (RFC 3261 §17.1.2): Timers E, F, K."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis.strategies import sampled_from
from txkit import BOB, drain, reply, request

from sipdialer.sip.errors import LocalProtocolError
from sipdialer.sip.message import Response
from sipdialer.sip.peer import Peer
from sipdialer.sip.timers import TimerConfig
from sipdialer.sip.transaction import (
    NonInviteClientTransaction,
    ResponseReceived,
    TransactionTerminated,
    TransactionTimedOut,
    TransportFailed,
)
from sipdialer.sip.transaction.noninvite_client import (
    TIMER_INPUTS,
    TRANSITIONS,
    WIRE_INPUTS,
    Input,
    State,
)

OPTIONS = request("OPTIONS", branch="z9hG4bKopt1")


def started(*, reliable: bool = False, now: float = 0.0) -> NonInviteClientTransaction:
    peer = Peer("TCP", BOB.host, BOB.port) if reliable else BOB
    tx = NonInviteClientTransaction(OPTIONS, peer, timers=TimerConfig())
    tx.start(now)
    assert tx.data_to_send() == [OPTIONS.to_bytes()]
    return tx


def fire_all(tx: NonInviteClientTransaction) -> tuple[list[float], int]:
    fired, sent = [], 0
    while (at := tx.get_timer()) is not None:
        tx.handle_timer(at)
        fired.append(at)
        sent += len(tx.data_to_send())
    return fired, sent


def test_timer_e_doubles_up_to_t2_until_timer_f() -> None:
    fired, sent = fire_all(started())
    # Intervals 0.5, 1, 2, 4, 4, 4 ... (capped at T2 = 4), Timer F at 64*T1 = 32.
    assert fired == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5, 32.0]
    assert sent == 10


def test_timeout_events() -> None:
    tx = started()
    fire_all(tx)
    assert drain(tx) == [TransactionTimedOut(tx.key), TransactionTerminated(tx.key)]


def test_proceeding_retransmits_every_t2() -> None:
    tx = started()
    tx.handle_timer(0.5)  # E fired once: next interval 1.0
    tx.data_to_send()
    tx.receive_response(reply(OPTIONS, 100), now=1.0)
    assert tx.state is State.PROCEEDING
    fired, sent = fire_all(tx)
    assert fired == [1.5, 5.5, 9.5, 13.5, 17.5, 21.5, 25.5, 29.5, 32.0]
    assert drain(tx)[-2:] == [TransactionTimedOut(tx.key), TransactionTerminated(tx.key)]


def test_late_wake_up_times_out_without_retransmitting() -> None:
    tx = started()
    tx.handle_timer(100.0)
    assert tx.data_to_send() == []
    assert drain(tx) == [TransactionTimedOut(tx.key), TransactionTerminated(tx.key)]


def test_final_response_then_timer_k_absorbs_retransmissions() -> None:
    tx = started()
    ok = reply(OPTIONS, 200)
    tx.receive_response(ok, now=1.0)
    tx.receive_response(ok, now=1.2)
    tx.receive_response(reply(OPTIONS, 180), now=1.3)
    assert drain(tx) == [ResponseReceived(ok, tx.key)]
    assert (tx.state, tx.get_timer()) == (State.COMPLETED, 6.0)  # K = T4
    tx.handle_timer(6.0)
    assert drain(tx) == [TransactionTerminated(tx.key)]
    assert tx.data_to_send() == []


def test_reliable_transport_never_retransmits_and_k_is_zero() -> None:
    tx = started(reliable=True)
    assert tx.get_timer() == 32.0  # only F
    tx.receive_response(reply(OPTIONS, 404), now=1.0)
    assert [type(e) for e in drain(tx)] == [ResponseReceived, TransactionTerminated]


def test_transport_error() -> None:
    tx = started()
    tx.transport_error(now=0.2)
    assert drain(tx) == [TransportFailed(tx.key), TransactionTerminated(tx.key)]


def test_invite_and_ack_are_refused() -> None:
    for method in ("INVITE", "ACK"):
        with pytest.raises(LocalProtocolError):
            NonInviteClientTransaction(request(method), BOB)


def message_for(input_: Input) -> Response | None:
    return {Input.PROVISIONAL: reply(OPTIONS, 100), Input.FINAL: reply(OPTIONS, 200)}.get(input_)


@given(state=sampled_from(State), input_=sampled_from(Input))
def test_table_is_total_for_the_wire(state: State, input_: Input) -> None:
    tx = started()
    tx._state = state
    if input_ in WIRE_INPUTS or (state, input_) in TRANSITIONS:
        tx._process(input_, 1.0, message_for(input_))
    else:
        with pytest.raises(LocalProtocolError):
            tx._process(input_, 1.0, message_for(input_))


def test_every_timer_has_an_input() -> None:
    assert set(TIMER_INPUTS.values()) == set(Input) - WIRE_INPUTS
