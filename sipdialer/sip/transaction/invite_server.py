"""INVITE server transaction (RFC 3261 §17.2.1, as updated by RFC 6026).

Created by the layer when a new INVITE arrives; the layer emits ``RequestReceived``.
Inputs (each with ``now``): ``start``, ``receive_request`` (a retransmission),
``receive_ack``, ``send_response`` (from the TU), ``transport_error``, ``handle_timer``.
Outputs: ``data_to_send()``, ``next_event()``, ``get_timer()``.

* 100 Trying: §17.2.1 wants one unless the TU answers within 200 ms. Timer TRYING
  (``trying_delay``, ``None`` = never, ``0`` = at once) sends it when the TU has not.
  A retransmitted INVITE that arrives before any provisional response gets the 100
  at once: the peer is evidently waiting, and §17.2.1 has nothing else to resend.
* 2xx: RFC 6026 Accepted. The TU retransmits the 2xx itself (§13.3.1.4) through
  ``send_response``; INVITE retransmissions are absorbed; an ACK that matches (an RFC
  2543 peer, or one reusing the branch) goes to the TU as ``AckReceived``. Timer L.
* 300-699: Completed, Timer G retransmits (T1 doubling up to T2, unreliable only),
  Timer H (64*T1) gives up waiting for the ACK; the ACK moves to Confirmed, whose
  Timer I (T4; 0 on TCP) absorbs ACK retransmissions.
"""

from __future__ import annotations

from enum import Enum, auto

from ..errors import LocalProtocolError
from ..message import Request, Response, response_for
from ..peer import Peer
from ..timers import DEFAULT_TIMERS, TimerConfig, TimerName
from .events import AckReceived, TransactionTimedOut, TransportFailed
from .keys import ServerTransactionKey
from .machine import Transaction


class State(Enum):
    PROCEEDING = auto()
    COMPLETED = auto()
    CONFIRMED = auto()
    ACCEPTED = auto()  # RFC 6026
    TERMINATED = auto()


class Input(Enum):
    REQUEST = auto()  # the INVITE, retransmitted
    ACK = auto()
    TRANSPORT_ERROR = auto()
    SEND_PROVISIONAL = auto()  # 1xx from the TU
    SEND_SUCCESS = auto()  # 2xx from the TU
    SEND_FAILURE = auto()  # 300-699 from the TU
    TIMER_TRYING = auto()
    TIMER_G = auto()
    TIMER_H = auto()
    TIMER_I = auto()
    TIMER_L = auto()


class Action(Enum):
    SEND = auto()  # send the TU's response and remember it
    RESEND_LAST = auto()  # resend the last response (a 100 if there was none yet)
    SEND_TRYING = auto()  # the automatic 100 Trying
    RETRANSMIT_FINAL = auto()  # Timer G: resend the final, G = min(2G, T2)
    PASS_ACK_UP = auto()
    REPORT_TIMEOUT = auto()
    REPORT_TRANSPORT_ERROR = auto()


# RFC 3261 Figure 7 as updated by RFC 6026 Figure 7 (2xx leads to Accepted):
#
#                                |INVITE
#                                |pass INV to TU
#             INVITE             V send 100 if TU won't in 200 ms
#             send response+------------+
#                 +--------|            |--------+ 101-199 from TU
#                 |        | Proceeding |        | send response
#                 +------->|            |<-------+
#                          +------------+
#            300-699 from TU |        | 2xx from TU
#            send response   |        | send response
#                            |        +----------------------+
#                            |                               |   INVITE: -
#            INVITE          V          Timer G fires        |   2xx from TU:
#            send response+-----------+ send response        V     send response
#                +--------|           |--------+       +----------+  ACK: to TU
#                |        | Completed |        |       |          |--+ Transport
#                +------->|           |<-------+       | Accepted |  | Err.:
#                         +-----------+                |          |<-+ Inform TU
#                           |       |                  +----------+
#                        ACK|       | Timer H fires          |
#                          -|       | Inform TU              | Timer L fires
#                           V       |                        | -
#                     +-----------+ |                        |
#            ACK: -  +|           | |                        |
#                    || Confirmed | |                        |
#                    +>           | |                        |
#                     +-----------+ |                        |
#             Timer I fires |       |                        |
#             -             V       V                        V
#                     +------------------------------------------+
#                     |                 Terminated               |
#                     +------------------------------------------+
#
# Not drawn: "Transport Err. / Inform TU" from Proceeding and Completed to Terminated.
#
# (state, input) -> (next state, actions performed before entering it). Missing wire
# inputs are absorbed: INVITE retransmissions in Confirmed and Accepted, an ACK before
# any final response, ACK retransmissions in Confirmed. Missing TU inputs are bugs
# (a second final response, a 1xx after the final) and raise LocalProtocolError.
TRANSITIONS: dict[tuple[State, Input], tuple[State, tuple[Action, ...]]] = {
    (State.PROCEEDING, Input.REQUEST): (State.PROCEEDING, (Action.RESEND_LAST,)),
    (State.PROCEEDING, Input.SEND_PROVISIONAL): (State.PROCEEDING, (Action.SEND,)),
    (State.PROCEEDING, Input.SEND_SUCCESS): (State.ACCEPTED, (Action.SEND,)),
    (State.PROCEEDING, Input.SEND_FAILURE): (State.COMPLETED, (Action.SEND,)),
    (State.PROCEEDING, Input.TRANSPORT_ERROR): (
        State.TERMINATED,
        (Action.REPORT_TRANSPORT_ERROR,),
    ),
    (State.PROCEEDING, Input.TIMER_TRYING): (State.PROCEEDING, (Action.SEND_TRYING,)),
    (State.COMPLETED, Input.REQUEST): (State.COMPLETED, (Action.RESEND_LAST,)),
    (State.COMPLETED, Input.ACK): (State.CONFIRMED, ()),
    (State.COMPLETED, Input.TRANSPORT_ERROR): (
        State.TERMINATED,
        (Action.REPORT_TRANSPORT_ERROR,),
    ),
    (State.COMPLETED, Input.TIMER_G): (State.COMPLETED, (Action.RETRANSMIT_FINAL,)),
    (State.COMPLETED, Input.TIMER_H): (State.TERMINATED, (Action.REPORT_TIMEOUT,)),
    (State.CONFIRMED, Input.TIMER_I): (State.TERMINATED, ()),
    (State.ACCEPTED, Input.SEND_SUCCESS): (State.ACCEPTED, (Action.SEND,)),
    (State.ACCEPTED, Input.ACK): (State.ACCEPTED, (Action.PASS_ACK_UP,)),
    (State.ACCEPTED, Input.TRANSPORT_ERROR): (State.ACCEPTED, (Action.REPORT_TRANSPORT_ERROR,)),
    (State.ACCEPTED, Input.TIMER_L): (State.TERMINATED, ()),
}

WIRE_INPUTS = frozenset({Input.REQUEST, Input.ACK, Input.TRANSPORT_ERROR})
TIMER_INPUTS = {
    TimerName.TRYING: Input.TIMER_TRYING,
    TimerName.G: Input.TIMER_G,
    TimerName.H: Input.TIMER_H,
    TimerName.I: Input.TIMER_I,
    TimerName.L: Input.TIMER_L,
}


def input_for(response: Response) -> Input:
    if response.status_code < 200:
        return Input.SEND_PROVISIONAL
    if response.status_code < 300:
        return Input.SEND_SUCCESS
    return Input.SEND_FAILURE


class InviteServerTransaction(Transaction[State, Input, Action]):
    transitions = TRANSITIONS
    wire_inputs = WIRE_INPUTS
    timer_inputs = TIMER_INPUTS
    terminated = State.TERMINATED
    key: ServerTransactionKey

    def __init__(
        self,
        request: Request,
        key: ServerTransactionKey,
        destination: Peer,
        *,
        timers: TimerConfig = DEFAULT_TIMERS,
        trying_delay: float | None = 0.2,
    ) -> None:
        if request.method != "INVITE":
            raise LocalProtocolError(f"expected an INVITE, got {request.method}")
        super().__init__(key, destination, timers, State.PROCEEDING)
        self.request = request
        "The INVITE that created the transaction (top Via with received/rport)."
        self.last_response: Response | None = None
        "The response a retransmitted INVITE would get; its To tag is the dialog's."
        self._trying_delay = trying_delay
        self._interval_g = timers.timer_g
        self._ack_peer: Peer | None = None
        self._started = False

    # -- inputs ------------------------------------------------------------------

    def start(self, now: float) -> None:
        """Arm the 100 Trying timer (or send it now for a zero delay). Call once."""
        if self._started:
            raise LocalProtocolError("start() called twice")
        self._started = True
        if self._trying_delay is not None:
            self._arm(TimerName.TRYING, self._trying_delay, now)

    def receive_request(self, request: Request, now: float) -> None:
        """A retransmission of the INVITE (the layer matched it, §17.2.3)."""
        self._process(Input.REQUEST, now, request)

    def receive_ack(self, ack: Request, peer: Peer, now: float) -> None:
        self._ack_peer = peer
        self._process(Input.ACK, now, ack)

    def send_response(self, response: Response, now: float) -> None:
        """Send a response from the TU. Raises ``LocalProtocolError`` when illegal."""
        self._process(input_for(response), now, response)

    def transport_error(self, now: float) -> None:
        self._process(Input.TRANSPORT_ERROR, now)

    # -- the machine -------------------------------------------------------------

    def _perform(self, action: Action, now: float, message: Request | Response | None) -> None:
        match action:
            case Action.SEND:
                assert isinstance(message, Response)
                self._deadlines.cancel(TimerName.TRYING)
                self.last_response = message
                self._send(message)
            case Action.RESEND_LAST:
                if self.last_response is None:
                    self._perform(Action.SEND_TRYING, now, None)
                else:
                    self._send(self.last_response)
            case Action.SEND_TRYING:
                self._deadlines.cancel(TimerName.TRYING)
                self.last_response = response_for(self.request, 100)
                self._send(self.last_response)
            case Action.RETRANSMIT_FINAL:
                assert self.last_response is not None
                self._send(self.last_response)
                self._interval_g = min(2 * self._interval_g, self._timers.t2)
                self._deadlines.start(TimerName.G, now + self._interval_g)
            case Action.PASS_ACK_UP:
                assert isinstance(message, Request) and self._ack_peer is not None
                self._events.append(AckReceived(message, self._ack_peer))
            case Action.REPORT_TIMEOUT:
                self._events.append(TransactionTimedOut(self.key))
            case Action.REPORT_TRANSPORT_ERROR:
                self._events.append(TransportFailed(self.key))

    def _enter(self, state: State, now: float) -> None:
        match state:
            case State.COMPLETED:
                self._deadlines.cancel(TimerName.TRYING)
                if not self.reliable:
                    self._deadlines.start(TimerName.G, now + self._interval_g)
                self._deadlines.start(TimerName.H, now + self._timers.timer_h)
            case State.CONFIRMED:
                self._deadlines.cancel(TimerName.G, TimerName.H)
                self._arm(TimerName.I, self._timers.timer_i(reliable=self.reliable), now)
            case State.ACCEPTED:
                self._deadlines.cancel(TimerName.TRYING)
                self._arm(TimerName.L, self._timers.timer_l, now)
            case State.TERMINATED:
                self._terminate()
