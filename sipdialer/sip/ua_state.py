"""What the user agent core remembers: its configuration and one record per
transaction-level conversation (an INVITE we sent, a request we sent, a request
awaiting the TU's answer, a 2xx awaiting its ACK)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .dialog import DialogId
from .inspect import InspectionPolicy
from .message import Request, Response
from .peer import Peer
from .timers import TimerConfig
from .transaction.keys import TransactionKey
from .ua_auth import Account

MAX_AUTH_ATTEMPTS = 2
"Challenges answered per request: one, plus one more if the server says stale=true."


@dataclass(frozen=True)
class UaConfig:
    host: str = "127.0.0.1"
    "Address put in Via and Contact (the public address when behind NAT)."
    port: int = 5060
    user: str = "sipdialer"
    "User part of our Contact."
    user_agent: str = "sipdialer/0.1"
    timers: TimerConfig = field(default_factory=TimerConfig)
    policy: InspectionPolicy = field(default_factory=InspectionPolicy)
    answer_options: bool = True
    "Answer out-of-dialog OPTIONS with 200 ourselves (RFC 3261 §11.2)."


@dataclass
class ClientInvite:
    handle: str
    request: Request
    destination: Peer
    tx_key: TransactionKey
    credentials: Account | None
    auth_attempts: int = 0
    provisional: bool = False
    cancel_pending: bool = False
    cancelled: bool = False
    cancel_reason: str | None = None
    "The Reason of a CANCEL deferred until the first provisional (RFC 3326)."
    answered: DialogId | None = None
    failed: bool = False
    "CallFailed was reported (a raced or unusable 2xx): any later 2xx is ACKed and BYEd."
    early: dict[str, DialogId] = field(default_factory=dict)
    follow_target: bool = False
    "Its dialog sends to the remote target (``Dialog.follow_target``)."

    @property
    def reported(self) -> bool:
        """The TU has heard how it ended (CallAnswered or CallFailed)."""
        return self.answered is not None or self.failed


@dataclass
class ClientRequest:
    key: str
    request: Request
    destination: Peer
    credentials: Account | None
    dialog: DialogId | None
    auth_attempts: int = 0
    internal: bool = False
    "CANCEL, BYE of a raced call, ...: the TU never hears of it."


@dataclass
class ServerPending:
    request: Request
    peer: Peer
    local_tag: str
    dialog: DialogId | None
    "For a re-INVITE or in-dialog request: the dialog; for a new INVITE: set on 1xx/2xx."


@dataclass
class AckWait:
    """A 2xx we sent and retransmit until the ACK (RFC 3261 §13.3.1.4)."""

    response: Response
    interval: float
    give_up_at: float
    reinvite: bool
