"""The SIP transaction layer (RFC 3261 §17, RFC 6026): sans-IO, one machine per file.

Most callers need only ``TransactionLayer`` and the events; the machines are public
for tests and for reading their ``TRANSITIONS`` tables.
"""

from .events import (
    AckReceived,
    CancelReceived,
    RequestReceived,
    ResponseReceived,
    TransactionEvent,
    TransactionTerminated,
    TransactionTimedOut,
    TransportFailed,
)
from .invite_client import InviteClientTransaction, build_ack_for_non2xx
from .invite_server import InviteServerTransaction
from .keys import (
    ClientKey,
    LegacyServerKey,
    ServerKey,
    ServerTransactionKey,
    TransactionKey,
)
from .layer import TransactionLayer, build_cancel
from .noninvite_client import NonInviteClientTransaction
from .noninvite_server import NonInviteServerTransaction
from .routing import add_received, response_destination

__all__ = [
    "AckReceived",
    "CancelReceived",
    "ClientKey",
    "InviteClientTransaction",
    "InviteServerTransaction",
    "LegacyServerKey",
    "NonInviteClientTransaction",
    "NonInviteServerTransaction",
    "RequestReceived",
    "ResponseReceived",
    "ServerKey",
    "ServerTransactionKey",
    "TransactionEvent",
    "TransactionKey",
    "TransactionLayer",
    "TransactionTerminated",
    "TransactionTimedOut",
    "TransportFailed",
    "add_received",
    "build_ack_for_non2xx",
    "build_cancel",
    "response_destination",
]
