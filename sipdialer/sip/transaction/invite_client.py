"""INVITE client transaction (RFC 3261 §17.1.1, as updated by RFC 6026).

Inputs (each takes ``now``): ``start``, ``receive_response``, ``transport_error``,
``cancel_sent`` and ``handle_timer``. Outputs: ``data_to_send()`` (bytes for
``destination``), ``next_event()``, ``get_timer()``. The ``TransactionLayer`` drives it;
the TU never touches a transaction directly.

Two liberties, both recorded here so nobody has to rediscover them:

* Timer CANCEL_WAIT. RFC 3261 §9.1 says a UAC that sent a CANCEL and got no final
  response within 64*T1 SHOULD destroy the INVITE client transaction. Proceeding has
  no timer of its own, so without this a peer that ignores CANCEL would keep the
  transaction forever. The layer reports ``cancel_sent`` when the TU sends a CANCEL.
* A transport error in Proceeding terminates the transaction: the shell reports a
  closed TCP connection that way, and the final response can no longer arrive on it.
"""

from __future__ import annotations

from enum import Enum, auto

from ..errors import LocalProtocolError
from ..headers import Headers, split_list
from ..message import Request, Response
from ..peer import Peer
from ..timers import DEFAULT_TIMERS, TimerConfig, TimerName
from .events import ResponseReceived, TransactionTimedOut, TransportFailed
from .keys import ClientKey, client_key, sent_by_key
from .machine import Transaction


class State(Enum):
    CALLING = auto()
    PROCEEDING = auto()
    COMPLETED = auto()
    ACCEPTED = auto()  # RFC 6026
    TERMINATED = auto()


class Input(Enum):
    PROVISIONAL = auto()  # 1xx received
    SUCCESS = auto()  # 2xx received
    FAILURE = auto()  # 300-699 received
    TRANSPORT_ERROR = auto()  # reported by the shell
    CANCEL_SENT = auto()  # the TU sent a CANCEL for this INVITE (§9.1)
    TIMER_A = auto()
    TIMER_B = auto()
    TIMER_D = auto()
    TIMER_M = auto()
    TIMER_CANCEL_WAIT = auto()


class Action(Enum):
    PASS_UP = auto()  # ResponseReceived to the TU
    RETRANSMIT = auto()  # resend the INVITE, double Timer A (no cap, §17.1.1.2)
    SEND_ACK = auto()  # ACK a 300-699 response (§17.1.1.3)
    REPORT_TIMEOUT = auto()
    REPORT_TRANSPORT_ERROR = auto()
    ARM_CANCEL_WAIT = auto()


# RFC 3261 Figure 5 as updated by RFC 6026 Figure 5 (the Accepted state):
#
#                                |INVITE from TU
#              Timer A fires     |INVITE sent      Timer B fires
#              Reset A,          V                 or Transport Err.
#              INVITE sent +-----------+           inform TU
#                +---------|           |--------------------------+
#                |         |  Calling  |                          |
#                +-------->|           |-----------+              |
#   300-699                +-----------+ 2xx       |              |
#   ACK sent                  |  |       2xx to TU |              |
#   resp. to TU               |  |1xx              |              |
#   +-------------------------+  |1xx to TU        |              |
#   |                            |                 |              |
#   |                1xx         V                 |              |
#   |                1xx to TU +-----------+       |              |
#   |                +---------|           |       |              |
#   |                |         |Proceeding |       |              |
#   |                +-------->|           |       |              |
#   |                          +-----------+ 2xx   |              |
#   |         300-699             |    |    2xx to TU             |
#   |         ACK sent,  +--------+    +---------------+          |
#   |         resp. to TU|                             |          |
#   |                    |                             |          |
#   |                    V                             V          |
#   |              +-----------+                  +----------+    |
#   +------------->|           |Transport Err.    |          |    |
#                  | Completed |Inform TU         | Accepted |    |
#                  |           |--------------+   |          |-+  |
#                  +-----------+              |   +----------+ |  |
#                    ^   |    |               |       |    ^   |  |
#                    |   |    |               |       |    |   |  |
#                    +---+    | Timer D fires |       +----+   |  |
#                  300-699    | -             |        2xx     |  |
#                  ACK sent   |               |     2xx to TU  |  |
#                             V               |                |  |
#                       +-----------+         |  Timer M fires |  |
#                       | Terminated|<--------+  -             |  |
#                       |           |<-------------------------+  |
#                       |           |<----------------------------+
#                       +-----------+
#
# Not drawn (see the module docstring): in Proceeding, "CANCEL sent" arms
# CANCEL_WAIT, and "CANCEL_WAIT fires" or "Transport Err." lead to Terminated, inform TU.
#
# (state, input) -> (next state, actions performed before entering it). Missing wire
# inputs are absorbed: a 1xx after the final response, a non-2xx in Accepted (RFC
# 6026), a transport error once nothing more is sent. A CANCEL before any
# provisional response is missing on purpose: §9.1 says the UAC MUST NOT send it.
TRANSITIONS: dict[tuple[State, Input], tuple[State, tuple[Action, ...]]] = {
    (State.CALLING, Input.PROVISIONAL): (State.PROCEEDING, (Action.PASS_UP,)),
    (State.CALLING, Input.SUCCESS): (State.ACCEPTED, (Action.PASS_UP,)),
    (State.CALLING, Input.FAILURE): (State.COMPLETED, (Action.SEND_ACK, Action.PASS_UP)),
    (State.CALLING, Input.TRANSPORT_ERROR): (State.TERMINATED, (Action.REPORT_TRANSPORT_ERROR,)),
    (State.CALLING, Input.TIMER_A): (State.CALLING, (Action.RETRANSMIT,)),
    (State.CALLING, Input.TIMER_B): (State.TERMINATED, (Action.REPORT_TIMEOUT,)),
    (State.PROCEEDING, Input.PROVISIONAL): (State.PROCEEDING, (Action.PASS_UP,)),
    (State.PROCEEDING, Input.SUCCESS): (State.ACCEPTED, (Action.PASS_UP,)),
    (State.PROCEEDING, Input.FAILURE): (State.COMPLETED, (Action.SEND_ACK, Action.PASS_UP)),
    (State.PROCEEDING, Input.TRANSPORT_ERROR): (
        State.TERMINATED,
        (Action.REPORT_TRANSPORT_ERROR,),
    ),
    (State.PROCEEDING, Input.CANCEL_SENT): (State.PROCEEDING, (Action.ARM_CANCEL_WAIT,)),
    (State.PROCEEDING, Input.TIMER_CANCEL_WAIT): (State.TERMINATED, (Action.REPORT_TIMEOUT,)),
    (State.COMPLETED, Input.FAILURE): (State.COMPLETED, (Action.SEND_ACK,)),
    (State.COMPLETED, Input.TRANSPORT_ERROR): (
        State.TERMINATED,
        (Action.REPORT_TRANSPORT_ERROR,),
    ),
    (State.COMPLETED, Input.CANCEL_SENT): (State.COMPLETED, ()),  # §9.1 SHOULD NOT: harmless
    (State.COMPLETED, Input.TIMER_D): (State.TERMINATED, ()),
    (State.ACCEPTED, Input.SUCCESS): (State.ACCEPTED, (Action.PASS_UP,)),
    (State.ACCEPTED, Input.CANCEL_SENT): (State.ACCEPTED, ()),
    (State.ACCEPTED, Input.TIMER_M): (State.TERMINATED, ()),
}

WIRE_INPUTS = frozenset({Input.PROVISIONAL, Input.SUCCESS, Input.FAILURE, Input.TRANSPORT_ERROR})
TIMER_INPUTS = {
    TimerName.A: Input.TIMER_A,
    TimerName.B: Input.TIMER_B,
    TimerName.D: Input.TIMER_D,
    TimerName.M: Input.TIMER_M,
    TimerName.CANCEL_WAIT: Input.TIMER_CANCEL_WAIT,
}


def input_for(response: Response) -> Input:
    if response.status_code < 200:
        return Input.PROVISIONAL
    if response.status_code < 300:
        return Input.SUCCESS
    return Input.FAILURE


class InviteClientTransaction(Transaction[State, Input, Action]):
    transitions = TRANSITIONS
    wire_inputs = WIRE_INPUTS
    timer_inputs = TIMER_INPUTS
    terminated = State.TERMINATED
    key: ClientKey

    def __init__(
        self, request: Request, destination: Peer, *, timers: TimerConfig = DEFAULT_TIMERS
    ) -> None:
        if request.method != "INVITE":
            raise LocalProtocolError(f"expected an INVITE, got {request.method}")
        super().__init__(client_key(request), destination, timers, State.CALLING)
        self.request = request
        "The original request (§17.1.1.3), as sent."
        self.sent_by = sent_by_key(request.top_via)
        "Our sent-by; a response naming another one is not ours (§18.1.2)."
        self._started = False
        self._interval_a = timers.timer_a

    # -- inputs ------------------------------------------------------------------

    def start(self, now: float) -> None:
        """Queue the INVITE and arm Timers A (unreliable only) and B. Call once."""
        if self._started:
            raise LocalProtocolError("start() called twice")
        self._started = True
        self._send(self.request)
        if not self.reliable:
            self._deadlines.start(TimerName.A, now + self._interval_a)
        self._deadlines.start(TimerName.B, now + self._timers.timer_b)

    def receive_response(self, response: Response, now: float) -> None:
        """A response the layer matched to this transaction (§17.1.3)."""
        self._process(input_for(response), now, response)

    def transport_error(self, now: float) -> None:
        self._process(Input.TRANSPORT_ERROR, now)

    def cancel_sent(self, now: float) -> None:
        """The TU sent a CANCEL for this INVITE. Raises before any 1xx (§9.1)."""
        if self._state is State.CALLING:
            raise LocalProtocolError(
                "CANCEL before any provisional response (RFC 3261 §9.1: MUST NOT); wait for a 1xx"
            )
        self._process(Input.CANCEL_SENT, now)

    # -- the machine -------------------------------------------------------------

    def _perform(self, action: Action, now: float, message: Request | Response | None) -> None:
        match action:
            case Action.PASS_UP:
                assert isinstance(message, Response)
                self._events.append(ResponseReceived(message, self.key))
            case Action.RETRANSMIT:
                self._send(self.request)
                self._interval_a *= 2
                self._deadlines.start(TimerName.A, now + self._interval_a)
            case Action.SEND_ACK:
                assert isinstance(message, Response)
                self._send(build_ack_for_non2xx(self.request, message))
            case Action.REPORT_TIMEOUT:
                self._events.append(TransactionTimedOut(self.key))
            case Action.REPORT_TRANSPORT_ERROR:
                self._events.append(TransportFailed(self.key))
            case Action.ARM_CANCEL_WAIT:
                self._deadlines.start(TimerName.CANCEL_WAIT, now + self._timers.cancel_wait)

    def _enter(self, state: State, now: float) -> None:
        match state:
            case State.PROCEEDING:
                # §17.1.1.2: no more retransmissions; Timer B only guards Calling.
                self._deadlines.cancel(TimerName.A, TimerName.B)
            case State.COMPLETED:
                self._deadlines.cancel_all()
                self._arm(TimerName.D, self._timers.timer_d(reliable=self.reliable), now)
            case State.ACCEPTED:
                self._deadlines.cancel_all()
                self._arm(TimerName.M, self._timers.timer_m, now)
            case State.TERMINATED:
                self._terminate()


def top_via_line(request: Request) -> str:
    """The top Via value of *request* alone (the first line may hold a comma list)."""
    line = request.headers.get("Via")
    values = split_list(line) if line is not None else []
    if not values:
        raise LocalProtocolError("request without a Via header")
    return values[0]


def build_ack_for_non2xx(invite: Request, response: Response) -> Request:
    """The ACK for a 300-699 response to *invite* (RFC 3261 §17.1.1.3).

    Request-URI, Call-ID, From and the CSeq number come from the original request,
    To from the response (with its tag), the top Via only, and the Route headers.
    """
    headers = Headers()
    headers.add("Via", top_via_line(invite))
    for name in ("Route",):
        for value in invite.headers.get_lines(name):
            headers.add(name, value)
    headers.add("Max-Forwards", invite.headers.get("Max-Forwards") or "70")
    headers.add("From", invite.headers.get("From") or "")
    headers.add("To", response.headers.get("To") or "")
    headers.add("Call-ID", invite.call_id)
    headers.add("CSeq", f"{invite.cseq.number} ACK")
    return Request(headers, b"", "ACK", invite.uri)
