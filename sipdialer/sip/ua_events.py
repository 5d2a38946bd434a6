"""Events of ``UserAgentCore``: what happened to calls, dialogs and requests.

Each docstring says what the owner (the calls layer, the registrar, a test) is
expected to do. ``handle`` identifies one INVITE we sent or received; ``key``
identifies one incoming request awaiting ``UserAgentCore.respond``.
"""

from __future__ import annotations

from dataclasses import dataclass

from .dialog import DialogId
from .message import Request, Response
from .peer import Peer
from .transaction.keys import ServerTransactionKey


class UaEvent:
    """Base class of the UA's events."""


@dataclass(frozen=True)
class IncomingCall(UaEvent):
    """A new INVITE. Answer with ``respond(key, ...)``: 180, 183, 200 with SDP, or a
    failure. A ``CallCancelled`` may follow before the final answer."""

    key: ServerTransactionKey
    request: Request
    peer: Peer


@dataclass(frozen=True)
class IncomingRequest(UaEvent):
    """A request outside a dialog (REGISTER, MESSAGE ...) or inside one (INFO, UPDATE,
    re-INVITE, OPTIONS: then ``dialog`` is set). Answer with ``respond(key, ...)``."""

    key: ServerTransactionKey
    request: Request
    peer: Peer
    dialog: DialogId | None = None


@dataclass(frozen=True)
class CallCancelled(UaEvent):
    """The caller sent CANCEL; the UA already answered 200 to it and 487 to the INVITE."""

    key: ServerTransactionKey


@dataclass(frozen=True)
class CallConfirmed(UaEvent):
    """The ACK for our 2xx arrived: the dialog is up on the UAS side (also after a
    re-INVITE, with ``reinvite`` set). ``ack`` may carry an SDP answer."""

    dialog: DialogId
    ack: Request
    reinvite: bool = False


@dataclass(frozen=True)
class CallProgress(UaEvent):
    """A provisional response to an INVITE we sent (with ``dialog`` for an early one)."""

    handle: str
    response: Response
    dialog: DialogId | None


@dataclass(frozen=True)
class CallAnswered(UaEvent):
    """A 2xx to an INVITE we sent; the UA has sent the ACK. The dialog is confirmed."""

    handle: str
    response: Response
    dialog: DialogId


@dataclass(frozen=True)
class CallFailed(UaEvent):
    """An INVITE we sent ended without a call. ``status`` is the final code, or the one
    the RFC says to act as if received: 408 for Timer B, 503 for a transport error.
    ``cancelled`` is True when we had sent CANCEL (a 200 that raced it was ACKed and
    hung up with BYE by the UA). ``unusable`` is True when the final response could
    not be used: a 2xx no dialog can be made from (no To tag, a Contact or
    Record-Route that does not parse), which the UA ACKed and hung up with BYE, or a
    final response the UA failed to process. The owner ends the leg as a local
    protocol error, not by ``status``."""

    handle: str
    status: int
    response: Response | None
    cancelled: bool = False
    unusable: bool = False


@dataclass(frozen=True)
class DialogTerminated(UaEvent):
    """A dialog ended. ``by_remote``: the peer sent BYE (``request`` is it) or the
    dialog died from the far side (481/408/no ACK); otherwise we hung up."""

    dialog: DialogId
    by_remote: bool
    reason: str
    request: Request | None = None
    status: int | None = None


@dataclass(frozen=True)
class ResponseReceived(UaEvent):
    """A response to a request we sent with ``send`` or ``request_in_dialog`` (``key``).
    A 401/407 answered with credentials does not appear: its retry's response does."""

    key: str
    response: Response
    dialog: DialogId | None = None


@dataclass(frozen=True)
class RequestFailed(UaEvent):
    """A non-INVITE request we sent got no response: 408 (Timer F) or 503 (transport)."""

    key: str
    status: int
    dialog: DialogId | None = None
