"""The calls layer's vocabulary: what the engine orders and what the legs report.

The engine (``dialer/engine.py``) decides; the calls layer does telephony. One attempt is
one ``CallOrder``; the engine drives it step by step (semantics §1, agent first):

    OfferAgent  -> the agent's phone rings        -> AgentRinging, AgentAnswered | AgentFailed
    DialMember  -> the member's number is dialed  -> MemberRinging, MemberAnswered
    Bridge      -> the legs' audio is joined      -> Bridged
    Hangup      -> both legs end (BYE or CANCEL)
    ...         -> CallEnded(result) always comes last, exactly once per call.

Times are floats on the calls layer's clock (the event loop's monotonic clock in the
running dialer, the fake clock in tests); the runner converts them to wall time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum


class Side(StrEnum):
    """Who ended a call (semantics §8: "who hung up")."""

    AGENT = "agent"
    MEMBER = "member"
    DIALER = "dialer"


@dataclass(frozen=True)
class CallOrder:
    """One attempt as the engine hands it to the calls layer."""

    call_id: str
    "The attempt's id; every event of this call carries it."
    campaign: str
    "Campaign name (X-Dialer-Campaign)."
    member_id: str
    member_name: str
    number: str
    "The member's number chosen for this attempt (before the route's strip/prepend)."
    agent_id: str
    variables: Mapping[str, str] = field(default_factory=dict)
    "Campaign variables overlaid with the member's (member wins), as X-Dialer-Var-*."
    auto_answer: bool = False
    agent_timeout: float = 15.0
    "The agent's call_timeout: ring time of the agent leg."


class CallEvent:
    """Base of the calls layer's events; each has ``call_id`` and ``at``."""

    call_id: str
    at: float


@dataclass(frozen=True)
class AgentRinging(CallEvent):
    call_id: str
    at: float


@dataclass(frozen=True)
class AgentAnswered(CallEvent):
    """The agent picked up: the engine may now order DialMember."""

    call_id: str
    at: float


@dataclass(frozen=True)
class AgentFailed(CallEvent):
    """The agent leg ended without being answered (busy, reject, no answer, no binding,
    timeout, our CANCEL because of a Hangup ...). CallEnded follows."""

    call_id: str
    at: float
    cause: str
    "Hangup cause name (calls.causes.HangupCause name)."
    sip_code: int | None


@dataclass(frozen=True)
class MemberRinging(CallEvent):
    call_id: str
    at: float
    early_media: bool
    "183 with SDP: the agent hears the trunk's audio; else a local ringback tone."


@dataclass(frozen=True)
class MemberAnswered(CallEvent):
    """The member leg got its 2xx: the engine orders Bridge (normally at once)."""

    call_id: str
    at: float


@dataclass(frozen=True)
class Bridged(CallEvent):
    call_id: str
    at: float


@dataclass(frozen=True)
class CallResult:
    """Everything an attempt records from telephony (semantics §8)."""

    call_id: str
    created_at: float
    ended_at: float
    cause: str
    "Hangup cause name of the call: the member leg's when it was dialed, else the agent leg's."
    cause_q850: int
    sip_code: int | None
    """Final SIP code of the leg the cause came from (200 for an answered call), or the
    code a local failure is recorded with (408 Timer B, 503 transport), None if none."""
    hangup_by: Side
    agent_answered_at: float | None = None
    member_ringing_at: float | None = None
    member_answered_at: float | None = None
    bridged_at: float | None = None
    agent_cause: str | None = None
    "The agent leg's own cause (USER_BUSY, NO_ANSWER, ...), for the agent's penalty (§1)."
    agent_sip_code: int | None = None
    trunk: str | None = None
    dialed: str | None = None
    "The number as sent to the trunk (after strip/prepend)."
    recording: str | None = None
    "Path of the stereo WAV, when recording is on."

    @property
    def agent_connected(self) -> bool:
        return self.agent_answered_at is not None

    @property
    def bridged(self) -> bool:
        return self.bridged_at is not None

    @property
    def talk_seconds(self) -> float:
        """Bridge -> hangup (semantics §3 rule 4)."""
        return 0.0 if self.bridged_at is None else max(0.0, self.ended_at - self.bridged_at)


@dataclass(frozen=True)
class CallEnded(CallEvent):
    """The call is over, both legs down; always the last event of a call."""

    call_id: str
    at: float
    result: CallResult
