"""One leg of a progressive call: its lifecycle table, its record, and the commands.

A call has two legs (``Leg.AGENT``, ``Leg.MEMBER``); both are INVITEs *we* send, so
each leg runs the same small UAC lifecycle, kept here as data (STYLE.md §2.4)::

    IDLE ──INVITE──> INVITING ──PROGRESS──> RINGING ──ANSWER──> UP ──BYE_SENT/RECEIVED──> ENDED
      │                 │  └──────────ANSWER──────────────────┘
      │                 ├──CANCEL──> CANCELLING ──FAIL (the 487, or a 200 the UA hung up)──> ENDED
      │                 └──FAIL (final failure, Timer B, transport error)──> ENDED
      └──FAIL (never sent: no binding, no route, congestion)──> ENDED

What "missing from the table" means: a *wire* input (``PROGRESS``, ``ANSWER``, ``FAIL``,
``BYE_RECEIVED``) missing from it is a late or stray fact (a 180 after the 200, a BYE
for a leg already ended) and is absorbed. A *local* input (``INVITE``, ``CANCEL``,
``BYE_SENT``) missing from it is a bug in ``call.py`` and raises ``CallStateError``.

The commands are what the shell (``transport/calls.py``) executes for the core:
``SendInvite``, ``SendCancel``, ``SendBye`` (each with the RFC 3326 ``Reason`` value)
and ``Media`` actions. Pure code: no IO, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, StrEnum, auto

from .causes import HangupCause, LocalFailure


class Leg(StrEnum):
    """The two legs of a progressive call."""

    AGENT = "agent"
    MEMBER = "member"

    @property
    def other(self) -> Leg:
        return Leg.MEMBER if self is Leg.AGENT else Leg.AGENT


class LegState(Enum):
    IDLE = auto()  # not sent yet
    INVITING = auto()  # INVITE sent, nothing but 100 back
    RINGING = auto()  # 180/183 received
    UP = auto()  # 2xx received (the UA sent the ACK)
    CANCELLING = auto()  # we sent CANCEL; waiting for the final (487) to close the leg
    ENDED = auto()


class LegInput(Enum):
    INVITE = auto()  # local: we send the INVITE
    PROGRESS = auto()  # wire: 180/183
    ANSWER = auto()  # wire: 2xx
    FAIL = auto()  # wire or local: final failure, Timer B, transport error, never sent
    CANCEL = auto()  # local: we send CANCEL
    BYE_SENT = auto()  # local: we send BYE
    BYE_RECEIVED = auto()  # wire: the far end sent BYE (or the dialog died)


_S, _I = LegState, LegInput
TRANSITIONS: dict[tuple[LegState, LegInput], LegState] = {
    (_S.IDLE, _I.INVITE): _S.INVITING,
    (_S.IDLE, _I.FAIL): _S.ENDED,
    (_S.INVITING, _I.PROGRESS): _S.RINGING,
    (_S.INVITING, _I.ANSWER): _S.UP,
    (_S.INVITING, _I.FAIL): _S.ENDED,
    (_S.INVITING, _I.CANCEL): _S.CANCELLING,
    (_S.RINGING, _I.PROGRESS): _S.RINGING,
    (_S.RINGING, _I.ANSWER): _S.UP,
    (_S.RINGING, _I.FAIL): _S.ENDED,
    (_S.RINGING, _I.CANCEL): _S.CANCELLING,
    (_S.CANCELLING, _I.PROGRESS): _S.CANCELLING,
    (_S.CANCELLING, _I.FAIL): _S.ENDED,
    (_S.UP, _I.BYE_SENT): _S.ENDED,
    (_S.UP, _I.BYE_RECEIVED): _S.ENDED,
}
"""(state, input) -> next state; see the module docstring for missing entries."""

WIRE_INPUTS = frozenset({_I.PROGRESS, _I.ANSWER, _I.FAIL, _I.BYE_RECEIVED})
LIVE_STATES = frozenset({_S.INVITING, _S.RINGING, _S.UP, _S.CANCELLING})
"A leg in one of these still has a SIP transaction or dialog to close."
RINGING_STATES = frozenset({_S.INVITING, _S.RINGING})
"Sent and not answered: ending it means CANCEL."


class CallError(Exception):
    """Base of the calls layer's errors."""


class CallStateError(CallError):
    """A local input in a state that cannot take it: a bug in the calls layer."""

    def __init__(self, leg: Leg, state: LegState, input_: LegInput) -> None:
        super().__init__(f"{input_.name} on the {leg} leg in state {state.name}")
        self.leg, self.state, self.input = leg, state, input_


class CallOrderError(CallError):
    """The engine ordered a step the call is not ready for (DialMember before the
    agent answered, Bridge before the member answered)."""


@dataclass
class LegRecord:
    """One leg's state and what it ended with."""

    leg: Leg
    state: LegState = LegState.IDLE
    ringing_at: float | None = None
    answered_at: float | None = None
    ended_at: float | None = None
    deadline: float | None = None
    "Ring timeout (agent call_timeout / route call_timeout) while sent and unanswered."
    cause: HangupCause | None = None
    "The cause the leg ended with (set when the decision is made, kept when it closes)."
    sip_code: int | None = None
    "The final code received, 200 once answered, or the code a local failure records."
    local: LocalFailure | None = None
    "Set when we ended the leg ourselves: its 487 is then not judged (causes.md §1)."
    early_media: bool = False
    provisional: bool = False
    """A provisional (100 included) came for the INVITE in flight: a CANCEL can go out
    (RFC 3261 §9.1). Before one, the UA defers the CANCEL and the leg ends at once."""

    def apply(self, input_: LegInput) -> bool:
        """Move on ``input_``; False when a wire input is absorbed."""
        try:
            self.state = TRANSITIONS[self.state, input_]
        except KeyError:
            if input_ in WIRE_INPUTS:
                return False
            raise CallStateError(self.leg, self.state, input_) from None
        return True

    @property
    def live(self) -> bool:
        return self.state in LIVE_STATES

    @property
    def dialed(self) -> bool:
        """The INVITE went out (or was about to and failed locally)."""
        return self.state is not LegState.IDLE or self.cause is not None


# --- commands for the shell --------------------------------------------------------------


@dataclass(frozen=True)
class SendInvite:
    """Send the INVITE of ``leg`` with these extra headers (X-Dialer-*, auto-answer)."""

    leg: Leg
    headers: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class SendCancel:
    """CANCEL the INVITE of ``leg`` (RFC 3261 §9.1) with ``Reason: <reason>``."""

    leg: Leg
    reason: str


@dataclass(frozen=True)
class SendBye:
    """Hang up the confirmed dialog of ``leg`` with ``Reason: <reason>`` (RFC 3326)."""

    leg: Leg
    reason: str


class MediaAction(StrEnum):
    RINGBACK = "ringback"  # local ringback tone to the agent
    EARLY_MEDIA = "early_media"  # relay the member's early media to the agent
    BRIDGE = "bridge"  # relay both ways; arms the media timeout
    CLOSE = "close"  # stop and free the ports (returns the recording, if any)


@dataclass(frozen=True)
class Media:
    action: MediaAction


Command = SendInvite | SendCancel | SendBye | Media
