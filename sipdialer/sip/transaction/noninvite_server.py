"""Non-INVITE server transaction (RFC 3261 §17.2.2).

Created by the layer for every new request other than INVITE and ACK (CANCEL too:
it has its own transaction, §9.2). Inputs (each with ``now``): ``receive_request``
(a retransmission), ``send_response``, ``transport_error``, ``handle_timer``.
Outputs: ``data_to_send()``, ``next_event()``, ``get_timer()``.

No automatic 100 Trying: RFC 4320 §4.1 forbids one before Timer E reaches T2, and a
UA answers non-INVITE requests at once anyway.
"""

from __future__ import annotations

from enum import Enum, auto

from ..errors import LocalProtocolError
from ..message import Request, Response
from ..peer import Peer
from ..timers import DEFAULT_TIMERS, TimerConfig, TimerName
from .events import TransportFailed
from .keys import ServerTransactionKey
from .machine import Transaction


class State(Enum):
    TRYING = auto()
    PROCEEDING = auto()
    COMPLETED = auto()
    TERMINATED = auto()


class Input(Enum):
    REQUEST = auto()  # the request, retransmitted
    TRANSPORT_ERROR = auto()
    SEND_PROVISIONAL = auto()  # 1xx from the TU
    SEND_FINAL = auto()  # 200-699 from the TU
    TIMER_J = auto()


class Action(Enum):
    SEND = auto()  # send the TU's response and remember it
    RESEND_LAST = auto()
    REPORT_TRANSPORT_ERROR = auto()


# RFC 3261 Figure 8:
#
#                                   |Request received
#                                   |pass to TU
#                                   V
#                             +-----------+
#                             |           |
#                             | Trying    |-------------+
#                             |           |             |
#                             +-----------+             |200-699 from TU
#                                   |                   |send response
#                                   |1xx from TU        |
#                                   |send response      |
#                                   |                   |
#                Request            V      1xx from TU  |
#                send response+-----------+send response|
#                    +--------|           |--------+    |
#                    |        | Proceeding|        |    |
#                    +------->|           |<-------+    |
#             +<--------------|           |             |
#             |Trnsprt Err    +-----------+             |
#             |Inform TU            |                   |
#             |                     |                   |
#             |                     |200-699 from TU    |
#             |                     |send response      |
#             |  Request            V                   |
#             |  send response+-----------+             |
#             |      +--------|           |             |
#             |      |        | Completed |<------------+
#             |      +------->|           |
#             +<--------------|           |
#             |Trnsprt Err    +-----------+
#             |Inform TU            |
#             |                     |Timer J fires
#             |                     |-
#             |                     |
#             |                     V
#             |               +-----------+
#             |               |           |
#             +-------------->| Terminated|
#                             |           |
#                             +-----------+
#
# (state, input) -> (next state, actions performed before entering it). Missing wire
# inputs are absorbed: retransmissions in Trying (nothing to resend yet, §17.2.2).
# Missing TU inputs (any response after the final one) raise LocalProtocolError.
TRANSITIONS: dict[tuple[State, Input], tuple[State, tuple[Action, ...]]] = {
    (State.TRYING, Input.SEND_PROVISIONAL): (State.PROCEEDING, (Action.SEND,)),
    (State.TRYING, Input.SEND_FINAL): (State.COMPLETED, (Action.SEND,)),
    (State.TRYING, Input.TRANSPORT_ERROR): (State.TERMINATED, (Action.REPORT_TRANSPORT_ERROR,)),
    (State.PROCEEDING, Input.REQUEST): (State.PROCEEDING, (Action.RESEND_LAST,)),
    (State.PROCEEDING, Input.SEND_PROVISIONAL): (State.PROCEEDING, (Action.SEND,)),
    (State.PROCEEDING, Input.SEND_FINAL): (State.COMPLETED, (Action.SEND,)),
    (State.PROCEEDING, Input.TRANSPORT_ERROR): (
        State.TERMINATED,
        (Action.REPORT_TRANSPORT_ERROR,),
    ),
    (State.COMPLETED, Input.REQUEST): (State.COMPLETED, (Action.RESEND_LAST,)),
    (State.COMPLETED, Input.TRANSPORT_ERROR): (
        State.TERMINATED,
        (Action.REPORT_TRANSPORT_ERROR,),
    ),
    (State.COMPLETED, Input.TIMER_J): (State.TERMINATED, ()),
}

WIRE_INPUTS = frozenset({Input.REQUEST, Input.TRANSPORT_ERROR})
TIMER_INPUTS = {TimerName.J: Input.TIMER_J}


def input_for(response: Response) -> Input:
    return Input.SEND_PROVISIONAL if response.status_code < 200 else Input.SEND_FINAL


class NonInviteServerTransaction(Transaction[State, Input, Action]):
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
    ) -> None:
        if request.method in ("INVITE", "ACK"):
            raise LocalProtocolError(f"{request.method} is not a non-INVITE transaction")
        super().__init__(key, destination, timers, State.TRYING)
        self.request = request
        self.last_response: Response | None = None

    def start(self, now: float) -> None:
        """Nothing to arm until the TU answers; kept for a uniform interface."""

    def receive_request(self, request: Request, now: float) -> None:
        self._process(Input.REQUEST, now, request)

    def send_response(self, response: Response, now: float) -> None:
        """Send a response from the TU. Raises ``LocalProtocolError`` after the final."""
        self._process(input_for(response), now, response)

    def transport_error(self, now: float) -> None:
        self._process(Input.TRANSPORT_ERROR, now)

    def _perform(self, action: Action, now: float, message: Request | Response | None) -> None:
        match action:
            case Action.SEND:
                assert isinstance(message, Response)
                self.last_response = message
                self._send(message)
            case Action.RESEND_LAST:
                assert self.last_response is not None
                self._send(self.last_response)
            case Action.REPORT_TRANSPORT_ERROR:
                self._events.append(TransportFailed(self.key))

    def _enter(self, state: State, now: float) -> None:
        match state:
            case State.COMPLETED:
                self._arm(TimerName.J, self._timers.timer_j(reliable=self.reliable), now)
            case State.TERMINATED:
                self._terminate()
