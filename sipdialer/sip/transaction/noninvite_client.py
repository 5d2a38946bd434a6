"""Non-INVITE client transaction (RFC 3261 §17.1.2; RFC 4320 is not needed by a UA).

Inputs: ``start``, ``receive_response``, ``transport_error``, ``handle_timer`` (each
with ``now``). Outputs: ``data_to_send()``, ``next_event()``, ``get_timer()``.

Timer E retransmits on unreliable transports: T1, then doubling up to T2 in Trying;
T2 flat once a provisional response has arrived (§17.1.2.2). Timer F (64*T1) gives up
in either state. Completed absorbs retransmitted finals for Timer K (T4; 0 on TCP).
"""

from __future__ import annotations

from enum import Enum, auto

from ..errors import LocalProtocolError
from ..message import Request, Response
from ..peer import Peer
from ..timers import DEFAULT_TIMERS, TimerConfig, TimerName
from .events import ResponseReceived, TransactionTimedOut, TransportFailed
from .keys import ClientKey, client_key, sent_by_key
from .machine import Transaction


class State(Enum):
    TRYING = auto()
    PROCEEDING = auto()
    COMPLETED = auto()
    TERMINATED = auto()


class Input(Enum):
    PROVISIONAL = auto()  # 1xx received
    FINAL = auto()  # 200-699 received
    TRANSPORT_ERROR = auto()
    TIMER_E = auto()
    TIMER_F = auto()
    TIMER_K = auto()


class Action(Enum):
    PASS_UP = auto()
    RETRANSMIT = auto()  # resend; Timer E = min(2E, T2) in Trying, T2 in Proceeding
    REPORT_TIMEOUT = auto()
    REPORT_TRANSPORT_ERROR = auto()


# RFC 3261 Figure 6:
#
#                                    |Request from TU
#                                    |send request
#                Timer E             V
#                send request  +-----------+
#                    +---------|           |-------------------+
#                    |         |  Trying   |  Timer F          |
#                    +-------->|           |  or Transport Err.|
#                              +-----------+  inform TU        |
#                 200-699         |  |                         |
#                 resp. to TU     |  |1xx                      |
#                 +---------------+  |resp. to TU              |
#                 |                  |                         |
#                 |   Timer E        V       Timer F           |
#                 |   send req +-----------+ or Transport Err. |
#                 |  +---------|           | inform TU         |
#                 |  |         |Proceeding |------------------>|
#                 |  +-------->|           |-----+             |
#                 |            +-----------+     |1xx          |
#                 |              |      ^        |resp to TU   |
#                 | 200-699      |      +--------+             |
#                 | resp. to TU  |                             |
#                 |              |                             |
#                 |              V                             |
#                 |            +-----------+                   |
#                 |            |           |                   |
#                 |            | Completed |                   |
#                 |            |           |                   |
#                 |            +-----------+                   |
#                 |              ^   |                         |
#                 |              |   | Timer K                 |
#                 +--------------+   | -                       |
#                                    |                         |
#                                    V                         |
#                              +-----------+                   |
#                              |           |                   |
#                              | Terminated|<------------------+
#                              |           |
#                              +-----------+
#
# (state, input) -> (next state, actions performed before entering it). Missing wire
# inputs are absorbed: responses retransmitted into Completed, transport errors once
# nothing more is sent. Missing timer inputs are bugs.
TRANSITIONS: dict[tuple[State, Input], tuple[State, tuple[Action, ...]]] = {
    (State.TRYING, Input.PROVISIONAL): (State.PROCEEDING, (Action.PASS_UP,)),
    (State.TRYING, Input.FINAL): (State.COMPLETED, (Action.PASS_UP,)),
    (State.TRYING, Input.TRANSPORT_ERROR): (State.TERMINATED, (Action.REPORT_TRANSPORT_ERROR,)),
    (State.TRYING, Input.TIMER_E): (State.TRYING, (Action.RETRANSMIT,)),
    (State.TRYING, Input.TIMER_F): (State.TERMINATED, (Action.REPORT_TIMEOUT,)),
    (State.PROCEEDING, Input.PROVISIONAL): (State.PROCEEDING, (Action.PASS_UP,)),
    (State.PROCEEDING, Input.FINAL): (State.COMPLETED, (Action.PASS_UP,)),
    (State.PROCEEDING, Input.TRANSPORT_ERROR): (
        State.TERMINATED,
        (Action.REPORT_TRANSPORT_ERROR,),
    ),
    (State.PROCEEDING, Input.TIMER_E): (State.PROCEEDING, (Action.RETRANSMIT,)),
    (State.PROCEEDING, Input.TIMER_F): (State.TERMINATED, (Action.REPORT_TIMEOUT,)),
    (State.COMPLETED, Input.TIMER_K): (State.TERMINATED, ()),
}

WIRE_INPUTS = frozenset({Input.PROVISIONAL, Input.FINAL, Input.TRANSPORT_ERROR})
TIMER_INPUTS = {
    TimerName.E: Input.TIMER_E,
    TimerName.F: Input.TIMER_F,
    TimerName.K: Input.TIMER_K,
}


def input_for(response: Response) -> Input:
    return Input.PROVISIONAL if response.status_code < 200 else Input.FINAL


class NonInviteClientTransaction(Transaction[State, Input, Action]):
    transitions = TRANSITIONS
    wire_inputs = WIRE_INPUTS
    timer_inputs = TIMER_INPUTS
    terminated = State.TERMINATED
    key: ClientKey

    def __init__(
        self, request: Request, destination: Peer, *, timers: TimerConfig = DEFAULT_TIMERS
    ) -> None:
        if request.method in ("INVITE", "ACK"):
            raise LocalProtocolError(f"{request.method} is not a non-INVITE transaction")
        super().__init__(client_key(request), destination, timers, State.TRYING)
        self.request = request
        self.sent_by = sent_by_key(request.top_via)
        "Our sent-by; a response naming another one is not ours (§18.1.2)."
        self._started = False
        self._interval_e = timers.timer_e

    def start(self, now: float) -> None:
        """Queue the request and arm Timers E (unreliable only) and F. Call once."""
        if self._started:
            raise LocalProtocolError("start() called twice")
        self._started = True
        self._send(self.request)
        if not self.reliable:
            self._deadlines.start(TimerName.E, now + self._interval_e)
        self._deadlines.start(TimerName.F, now + self._timers.timer_f)

    def receive_response(self, response: Response, now: float) -> None:
        self._process(input_for(response), now, response)

    def transport_error(self, now: float) -> None:
        self._process(Input.TRANSPORT_ERROR, now)

    def _perform(self, action: Action, now: float, message: Request | Response | None) -> None:
        match action:
            case Action.PASS_UP:
                assert isinstance(message, Response)
                self._events.append(ResponseReceived(message, self.key))
            case Action.RETRANSMIT:
                self._send(self.request)
                t2 = self._timers.t2
                if self._state is State.TRYING:
                    self._interval_e = min(2 * self._interval_e, t2)
                else:
                    self._interval_e = t2
                self._deadlines.start(TimerName.E, now + self._interval_e)
            case Action.REPORT_TIMEOUT:
                self._events.append(TransactionTimedOut(self.key))
            case Action.REPORT_TRANSPORT_ERROR:
                self._events.append(TransportFailed(self.key))

    def _enter(self, state: State, now: float) -> None:
        match state:
            case State.PROCEEDING:
                pass  # Timers E and F keep running (§17.1.2.2)
            case State.COMPLETED:
                self._deadlines.cancel_all()
                self._arm(TimerName.K, self._timers.timer_k(reliable=self.reliable), now)
            case State.TERMINATED:
                self._terminate()
