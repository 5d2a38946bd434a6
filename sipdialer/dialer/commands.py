"""The engine's vocabulary: commands it returns and the non-call events it takes.

Theory of operation
-------------------
``DialerEngine.handle(event, now)`` and ``handle_timer(now)`` return a list of commands; the
runner executes them **in order**, and commits each persistence command before it executes
the next one (DESIGN.md rule 4): so ``StartAttempt`` is on disk before ``OfferAgent`` rings a
phone, and ``FinishAttempt`` + ``SaveMember`` are on disk before the agent is offered the next
call.

Telephony commands go to the calls layer (``OfferAgent``, ``DialMember``, ``Bridge``,
``Hangup``); the calls layer answers with ``calls.events`` (``AgentAnswered``, ...,
``CallEnded``). Store commands go to the member source; ``LeaseMember`` is the one that
expects an answer, the event ``MemberLeased``, which the runner feeds back as soon as the
lease is committed (one answer per ``LeaseMember``, in order).

Call events are the calls layer's (``sipdialer.calls.events``); the other inputs are below.
Times of commands and events are the engine's clock (float Unix seconds) or, where the
store needs them, aware UTC datetimes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sipdialer.calls.events import CallEvent, CallOrder, CallResult
from sipdialer.dialer.agent_table import AgentEvent, AgentStatus
from sipdialer.dialer.dispositions import Disposition, MemberState, StatusResult
from sipdialer.dialer.member_source import LeasedMember

# --- commands (outputs) --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LeaseMember:
    """Lease the campaign's next member for ``agent_id``; answer with ``MemberLeased``.

    ``zones``: member time zones whose calendar window is open now (None in it: members
    without a zone), passed to ``lease_next(..., zones=zones)``.
    """

    campaign_id: str
    agent_id: str
    zones: frozenset[str | None]


@dataclass(frozen=True, slots=True)
class StartAttempt:
    """Persist a new attempt row (semantics §8) before the agent's phone rings."""

    call_id: str
    campaign_id: str
    member_id: int
    number: str
    agent_id: str
    at: datetime


@dataclass(frozen=True, slots=True)
class OfferAgent:
    """Ring the agent (calls layer); the call's events follow with ``order.call_id``."""

    order: CallOrder


@dataclass(frozen=True, slots=True)
class DialMember:
    """The agent answered: dial the member's number on the call's member leg."""

    call_id: str


@dataclass(frozen=True, slots=True)
class Bridge:
    """The member answered: join the two legs' media."""

    call_id: str


@dataclass(frozen=True, slots=True)
class Hangup:
    """End both legs of the call (BYE or CANCEL); ``CallEnded`` follows."""

    call_id: str
    cause: str


@dataclass(frozen=True, slots=True)
class ReleaseAgent:
    """A reservation was dropped with no call (no member to lease, campaign stopped)."""

    agent_id: str


@dataclass(frozen=True, slots=True)
class FinishAttempt:
    """Close the attempt row: the call's telephony result and how it was judged."""

    call_id: str
    campaign_id: str
    member_id: int
    disposition: Disposition
    result: CallResult
    at: datetime


@dataclass(frozen=True, slots=True)
class UpdateAttempt:
    """A waiting attempt got its verdict (status result, missed deadline, terminate)."""

    call_id: str
    member_id: int
    disposition: Disposition
    status: StatusResult | None
    at: datetime


@dataclass(frozen=True, slots=True)
class SaveMember:
    """Store the member's new state and release its lease (``disposition`` None: unchanged,
    just handed back). A member that waits for a result is saved unleased and waiting."""

    campaign_id: str
    member_id: int
    state: MemberState
    disposition: Disposition | None
    result_deadline: datetime | None = None
    "For a waiting member: when its wait ends (what ``restore_waiting`` needs after a crash)."


@dataclass(frozen=True, slots=True)
class EndMember:
    """End an unleased member that the engine does not hold (manager terminate)."""

    campaign_id: str
    member_id: int
    cause: str


@dataclass(frozen=True, slots=True)
class ExpireMembers:
    """End the campaign's unleased members past ``expire`` with MEMBER_EXPIRED."""

    campaign_id: str
    now: datetime


@dataclass(frozen=True, slots=True)
class CampaignFinished:
    """The campaign stopped by itself (state ``finished``); ``reason`` for the log."""

    campaign_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class PublishAgent:
    """An agent's status, state or registration changed (for the store and the API)."""

    event: AgentEvent


Command = (
    LeaseMember
    | StartAttempt
    | OfferAgent
    | DialMember
    | Bridge
    | Hangup
    | ReleaseAgent
    | FinishAttempt
    | UpdateAttempt
    | SaveMember
    | EndMember
    | ExpireMembers
    | CampaignFinished
    | PublishAgent
)


# --- events (inputs other than the calls layer's) -------------------------------------------


@dataclass(frozen=True, slots=True)
class MemberLeased:
    """The answer to one ``LeaseMember``.

    With ``member`` None the runner also fills ``next_due`` (source ``next_due``) and
    ``remaining`` (source ``remaining``); ``remaining`` None means "not known", and then the
    engine never finishes the campaign for want of members, it just looks again later.
    """

    campaign_id: str
    agent_id: str
    member: LeasedMember | None
    next_due: datetime | None = None
    remaining: int | None = None
    zones: frozenset[str | None] | None = None
    """Empty lease with members remaining: the campaign's member zones as the source has
    them now (source ``zones``). Members added behind the engine's back (``sipdialer
    import``, another node) may be in a zone it has never seen, which no ``LeaseMember``
    would list: the engine learns them here. None: not looked up."""


@dataclass(frozen=True, slots=True)
class AgentStatusChanged:
    """The agent set a status (REST or feature code)."""

    agent_id: str
    status: AgentStatus


@dataclass(frozen=True, slots=True)
class AgentRegistered:
    """The registrar gained (True) or lost (False) the agent phone's binding."""

    agent_id: str
    registered: bool


@dataclass(frozen=True, slots=True)
class MemberStatusReceived:
    """``PUT .../members/{member}/status`` for a member waiting for a result (§4)."""

    campaign_id: str
    member_id: int
    result: StatusResult


@dataclass(frozen=True, slots=True)
class CampaignRun:
    campaign_id: str


@dataclass(frozen=True, slots=True)
class CampaignStop:
    """No new calls; calls in progress go on to their end and are judged as usual."""

    campaign_id: str


@dataclass(frozen=True, slots=True)
class MemberTerminated:
    """Manager terminate: the member ends with MANAGER_REQUEST (its call is hung up)."""

    campaign_id: str
    member_id: int


@dataclass(frozen=True, slots=True)
class MembersChanged:
    """Members were added or edited: wake the campaign; ``zones`` adds member zones."""

    campaign_id: str
    zones: frozenset[str | None] = frozenset()


EngineEvent = (
    CallEvent
    | MemberLeased
    | AgentStatusChanged
    | AgentRegistered
    | MemberStatusReceived
    | CampaignRun
    | CampaignStop
    | MemberTerminated
    | MembersChanged
)
