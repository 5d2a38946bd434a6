"""Reply models of the REST API (what the dialer sends back).

Ids are strings, datetimes ISO 8601 UTC, and ``expire`` epoch milliseconds (as Webitel
clients send it, so that they read back what they wrote). Models forbid unknown keys so a
misspelt field in the API code fails loudly instead of vanishing from the reply. The
``from_*`` constructors build replies from the cores' frozen objects.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Generic, Literal, Protocol, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from sipdialer.api.values import expire_ms
from sipdialer.dialer.agents import AgentState, AgentStatus
from sipdialer.dialer.dispositions import DispositionKind, MemberState, Number


class MemberStatus(StrEnum):
    """A member's place in its life: the values of the store's ``members.status``."""

    READY = "ready"  # waiting for its next attempt (now or at next_call_at)
    LEASED = "leased"  # taken by a dialer node: an attempt is in progress
    WAITING = "waiting"  # the call ended; waiting for a status result (§4)
    ENDED = "ended"  # finished; see end_cause


def member_status(state: MemberState, *, leased: bool = False) -> MemberStatus:
    if state.ended:
        return MemberStatus.ENDED
    if state.waiting:
        return MemberStatus.WAITING
    return MemberStatus.LEASED if leased else MemberStatus.READY


class MemberRecordLike(Protocol):
    """What :meth:`MemberOut.from_record` reads (``store.member_rows.MemberRecord`` has it)."""

    @property
    def member_id(self) -> int: ...
    @property
    def campaign_id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def priority(self) -> int: ...
    @property
    def timezone(self) -> str | None: ...
    @property
    def variables(self) -> Mapping[str, str]: ...
    @property
    def status(self) -> str: ...
    @property
    def state(self) -> MemberState: ...
    @property
    def created_at(self) -> datetime: ...


def _id(value: Any) -> Any:
    """Store ids are integers; the API's are strings (Webitel's were Mongo ObjectIds)."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


Id = Annotated[str, BeforeValidator(_id)]


# --- replies -------------------------------------------------------------------------------

T = TypeVar("T")


class _Reply(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Page(_Reply, Generic[T]):
    items: list[T]
    page: int
    size: int
    total: int  # items matching the filters, over all pages


class ErrorReply(_Reply):
    """What 401/404/409 replies carry (FastAPI's ``HTTPException`` shape)."""

    detail: str


class CommunicationOut(_Reply):
    number: str
    priority: int
    state: Literal["active", "stopped"]
    attempts: int = 0
    last_tried: datetime | None = None

    @classmethod
    def from_number(cls, number: Number) -> CommunicationOut:
        return cls(
            number=number.number,
            priority=number.priority,
            state="active" if number.active else "stopped",
            attempts=number.attempts,
            last_tried=number.last_tried,
        )


class MemberOut(_Reply):
    """A member as listed; ``expire`` is epoch ms as Webitel sends it, other times ISO 8601."""

    id: Id
    dialer: str  # the campaign's id
    name: str = ""
    priority: int = 0
    timezone: str | None = None
    variables: dict[str, str] = Field(default_factory=dict)
    communications: list[CommunicationOut]
    expire: int | None = None
    status: MemberStatus
    attempts: int = 0  # counted attempts (Webitel's _probeCount)
    next_call_at: datetime | None = None
    waiting_on: str | None = None  # the number whose attempt waits for a status result
    end_cause: str | None = None  # Webitel's _endCause
    created_at: datetime | None = None

    @classmethod
    def from_state(
        cls,
        state: MemberState,
        *,
        id: str,
        dialer: str,
        name: str = "",
        priority: int = 0,
        timezone: str | None = None,
        variables: dict[str, str] | None = None,
        leased: bool = False,
        created_at: datetime | None = None,
    ) -> MemberOut:
        return cls(
            id=id,
            dialer=dialer,
            name=name,
            priority=priority,
            timezone=timezone,
            variables=variables or {},
            communications=[CommunicationOut.from_number(n) for n in state.numbers],
            expire=expire_ms(state.expire),
            status=member_status(state, leased=leased),
            attempts=state.attempts,
            next_call_at=state.next_call_at,
            waiting_on=state.waiting_on,
            end_cause=state.ended_with,
            created_at=created_at,
        )

    @classmethod
    def from_record(cls, record: MemberRecordLike) -> MemberOut:
        """From the store's member record (its ``status`` says whether it is leased)."""
        return cls.from_state(
            record.state,
            id=str(record.member_id),
            dialer=record.campaign_id,
            name=record.name,
            priority=record.priority,
            timezone=record.timezone,
            variables=dict(record.variables),
            leased=record.status == MemberStatus.LEASED,
            created_at=record.created_at,
        )


class MemberAdded(_Reply):
    """One member of a ``POST .../members`` body: its new id, or why it was refused."""

    index: int  # position in the body (0 for a single member)
    id: Id | None = None
    error: str | None = None  # e.g. 'number "+380..." is already in this campaign'


class MembersAdded(_Reply):
    added: int
    refused: int
    members: list[MemberAdded]
    started: bool = False  # autoRun=true started the campaign


# store column -> reply field, where they differ (sipdialer.store.schema.attempts)
_ATTEMPT_RENAMES = {"campaign_id": "dialer", "member_id": "member", "agent_id": "agent"}
_ATTEMPT_INTERNAL = frozenset({"call_id", "node"})  # bookkeeping of the dialer nodes


class AttemptOut(_Reply):
    """One attempt (dialer-semantics §8); the names are the store's ``attempts`` columns."""

    id: Id
    dialer: str  # the campaign's id
    member: Id
    number: str  # the member's number (before the route rewrote it)
    state: Literal["in_flight", "ended"] = "ended"
    agent: str | None = None
    trunk: str | None = None
    dialed: str | None = None  # as sent to the trunk
    created_at: datetime
    agent_answered_at: datetime | None = None
    member_ringing_at: datetime | None = None
    member_answered_at: datetime | None = None
    bridged_at: datetime | None = None
    ended_at: datetime | None = None
    sip_code: int | None = None
    cause: str | None = None
    cause_q850: int | None = None
    hangup_by: Literal["agent", "member", "dialer"] | None = None
    agent_cause: str | None = None  # the agent leg's, when it failed
    agent_sip_code: int | None = None
    disposition: DispositionKind | None = None  # None while the call is up
    counted: int = 0  # 1 when the attempt counted against max_retries
    rule: str | None = None  # which disposition rule applied
    talk_seconds: float = 0.0
    recording: str | None = None
    result: dict[str, Any] | None = None  # the status-API body, if one came
    comment: str | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> AttemptOut:
        """From a row of the store's ``attempts`` table (``row._mapping`` in SQLAlchemy)."""
        data = {
            _ATTEMPT_RENAMES.get(key, key): value
            for key, value in row.items()
            if key not in _ATTEMPT_INTERNAL
        }
        return cls.model_validate(data)


class MemberCounts(_Reply):
    total: int = 0
    ready: int = 0
    leased: int = 0
    waiting: int = 0
    ended: int = 0


class CampaignOut(_Reply):
    """A campaign (``GET /api/v2/dialer[/{id}]``)."""

    id: str  # 24 hex digits
    name: str
    type: str = "progressive"
    state: Literal["running", "stopped", "finished"]  # semantics §5
    finished_reason: str = ""  # why it finished by itself ("no member left"...); else ""
    priority: int = 0
    limit: int  # lines (the store's line_limit)
    strategy: str = "longest_idle"
    calendar: str | None = None
    wait_for_result: bool = False
    agents: list[str] = Field(default_factory=list)
    active_calls: int = 0
    members: MemberCounts = Field(default_factory=MemberCounts)


class AgentOut(_Reply):
    """An agent (``GET /api/v2/agents``): status is the agent's choice, state the dialer's."""

    id: str
    name: str = ""
    status: AgentStatus
    state: AgentState
    registered: bool = False
    calls: int = 0  # answered agent legs
    no_answer_count: int = 0  # consecutive
    idle_since: datetime | None = None
    campaigns: list[str] = Field(default_factory=list)
