"""What the transaction layer reports to the transaction user (TU).

Every event is a small frozen dataclass; its docstring says what the TU is expected to
do. Outcomes caused by the peer or the network (timeouts, transport failures, a CANCEL)
are events, never exceptions. ``TransactionTerminated`` is always the last event of a
transaction, so the TU can forget per-transaction state when it sees it.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..message import Request, Response
from ..peer import Peer
from .keys import ClientKey, ServerTransactionKey, TransactionKey


class TransactionEvent:
    """Base class of every transaction-layer event."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class RequestReceived(TransactionEvent):
    """A new request created a server transaction (retransmissions are absorbed).

    The TU must answer with ``TransactionLayer.send_response`` (any number of 1xx,
    then one final response). Not emitted for ACK (see ``AckReceived``) nor for
    CANCEL (see ``CancelReceived``). The top Via already carries ``received`` and
    ``rport`` (RFC 3261 §18.2.1, RFC 3581), so ``response_for`` copies them.
    """

    request: Request
    peer: Peer
    "Where the request came from (for TCP: the connection's remote end)."
    key: ServerTransactionKey
    "The server transaction; pass it back to ``send_response`` if in doubt."


@dataclass(frozen=True, slots=True)
class AckReceived(TransactionEvent):
    """An ACK that belongs to no transaction: the ACK for a 2xx (RFC 3261 §17.1.1.3).

    Also emitted for an ACK that matches an INVITE server transaction in the RFC 6026
    Accepted state, and for late ACKs nobody expects. The dialog layer matches it to
    its dialog (and stops retransmitting the 2xx, §13.3.1.4) or drops it.
    """

    request: Request
    peer: Peer


@dataclass(frozen=True, slots=True)
class ResponseReceived(TransactionEvent):
    """A response for a client transaction, provisional or final.

    Retransmissions of a non-2xx final response are absorbed (and ACKed) by the
    transaction; retransmissions of a 2xx to an INVITE are passed up again, because
    the TU must ACK each of them (RFC 6026, RFC 3261 §13.2.2.4).
    """

    response: Response
    key: ClientKey
    "The client transaction, as ``send_request`` returned it."


@dataclass(frozen=True, slots=True)
class TransactionTimedOut(TransactionEvent):
    """The peer never completed the transaction.

    Client: Timer B or F fired, or no final response came 64*T1 after a CANCEL
    (§9.1). Act as if a 408 had been received (§8.1.3.1). Server: Timer H fired, the
    ACK for a non-2xx final response never came (§17.2.1); nothing to send.
    """

    key: TransactionKey


@dataclass(frozen=True, slots=True)
class TransportFailed(TransactionEvent):
    """The shell reported a transport error for this transaction (§17.1.4, §17.2.4).

    Client: act as if a 503 had been received (§8.1.3.1); for a TCP flow the TU may
    retry on a new connection. Server: the response could not be delivered.
    """

    key: TransactionKey


@dataclass(frozen=True, slots=True)
class CancelReceived(TransactionEvent):
    """A CANCEL matched an INVITE server transaction still waiting for its final answer.

    The layer has already answered the CANCEL itself with 200 (RFC 3261 §9.2). The TU
    must now answer the INVITE with 487 Request Terminated, for example with
    ``TransactionLayer.send_request_terminated(invite_key, now)``. A CANCEL that
    matches nothing is answered 481 by the layer and reported to nobody; one that
    arrives after the INVITE's final response is answered 200 and has no effect.
    """

    cancel: Request
    peer: Peer
    invite_key: ServerTransactionKey
    "The INVITE server transaction to answer with 487."


@dataclass(frozen=True, slots=True)
class TransactionTerminated(TransactionEvent):
    """Always the last event of a transaction; the layer has forgotten it.

    Also emitted for transactions the TU never saw, such as the server transaction
    of a CANCEL that the layer answered itself.
    """

    key: TransactionKey
