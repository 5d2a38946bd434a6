"""The JSON bodies, queries and replies of the REST API (Webitel 3.x compatible), in pydantic.

Theory of operation
-------------------
The API shell validates every body with these models and hands the cores plain values:
:meth:`MemberIn.to_state` gives a :class:`~sipdialer.dialer.dispositions.MemberState`,
:meth:`StatusBody.to_result` a :class:`~sipdialer.dialer.dispositions.StatusResult`. No
business rule lives here: only the *shape* of a value (a dialable number, an IANA zone, a
timestamp) is checked. Uniqueness of numbers within a campaign is the store's business.

Bodies accepted (what Webitel clients send):

* a member (:class:`MemberIn`): ``name``, ``priority``, ``timezone``, ``variables``,
  ``communications: [{number, priority}]``, ``expire``. ``POST .../members`` takes one
  member or a list (:class:`MembersIn`; :func:`parse_members` for code that has raw JSON).
  Unknown keys of a member are *ignored*, because Webitel stored the whole document and
  its clients send extra keys (``description``, ``type``, ``_id``...);
* the status result of dialer-semantics §4 (:class:`StatusBody`) and an agent's status
  (:class:`AgentStatusBody`). These are small and their typos change what happens to a
  call, so unknown keys there are *errors*.

Normalisation: a number loses spaces, dashes, dots and parentheses, then must be
``+?[0-9*#]{1,32}``; variables are ``str -> str`` (numbers and booleans become strings,
``true``/``false``); ``timezone`` ``""`` means none; ``expire`` is epoch *milliseconds*
(Webitel), an ISO 8601 datetime (naive = UTC) or a date (its 00:00 UTC), stored as an aware
UTC datetime. Replies give ids as strings, datetimes as ISO 8601 UTC, and ``expire`` as
epoch milliseconds again so that a Webitel client reads back what it wrote.

The replies live in :mod:`sipdialer.api.replies` and the value parsers (shared with the
CSV importer) in :mod:`sipdialer.api.values`; both are re-exported here.

Errors: FastAPI turns a :class:`pydantic.ValidationError` into 422 with each error's
``loc``; :func:`describe_errors` renders the same errors as ``communications.0.number:
message`` lines for the CLI.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    RootModel,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

from sipdialer.api.replies import (
    AgentOut,
    AttemptOut,
    CampaignOut,
    CommunicationOut,
    ErrorReply,
    MemberAdded,
    MemberCounts,
    MemberOut,
    MembersAdded,
    MemberStatus,
    Page,
    member_status,
)
from sipdialer.api.values import (
    DIALABLE,
    MAX_COMMENT,
    MAX_COMMUNICATIONS,
    MAX_NAME,
    MAX_NEXT_AFTER_SEC,
    MAX_PAGE_SIZE,
    Expire,
    MemberName,
    PhoneNumber,
    Priority,
    StopList,
    TimeZoneName,
    VariableMap,
    agent_status_text,
    describe_errors,
    normalise_number,
    parse_expire,
    parse_priority,
    parse_timezone,
)
from sipdialer.dialer.agents import AgentStatus
from sipdialer.dialer.dispositions import DispositionKind, MemberState, Number, StatusResult

__all__ = [
    "DIALABLE",
    "AgentOut",
    "AgentStatusBody",
    "AttemptFilter",
    "AttemptOut",
    "CampaignOut",
    "CommunicationIn",
    "CommunicationOut",
    "ErrorReply",
    "MemberAdded",
    "MemberCounts",
    "MemberFilter",
    "MemberIn",
    "MemberOut",
    "MemberStatus",
    "MemberUpdate",
    "MembersAdded",
    "MembersIn",
    "Page",
    "PageQuery",
    "StatusBody",
    "describe_errors",
    "member_status",
    "normalise_number",
    "parse_expire",
    "parse_members",
    "parse_priority",
    "parse_timezone",
]


class _Body(BaseModel):
    """A Webitel document: unknown keys ignored (see the module docstring)."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)


class _StrictBody(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


# --- members -------------------------------------------------------------------------------


class CommunicationIn(_Body):
    """One number of a member (Webitel's "communication"); higher priority is tried first."""

    number: PhoneNumber = Field(examples=["+380441234567"])
    priority: Priority = 0


def _unique_numbers(value: list[CommunicationIn]) -> list[CommunicationIn]:
    seen: dict[str, int] = {}
    for index, communication in enumerate(value):
        if communication.number in seen:
            raise ValueError(
                f'number "{communication.number}" is given twice'
                f" (communications {seen[communication.number]} and {index})"
            )
        seen[communication.number] = index
    return value


Communications = Annotated[
    list[CommunicationIn],
    Field(min_length=1, max_length=MAX_COMMUNICATIONS),
    AfterValidator(_unique_numbers),
]


class MemberIn(_Body):
    """A member to add (``POST /api/v2/dialer/{id}/members``)."""

    name: MemberName = ""
    priority: Priority = 0  # higher first
    timezone: TimeZoneName = None  # the member is dialed when the calendar is open *there*
    variables: VariableMap = Field(default_factory=dict)
    communications: Communications
    expire: Expire = None  # never dialed at or after this instant

    def numbers(self) -> tuple[Number, ...]:
        return tuple(Number(c.number, priority=c.priority) for c in self.communications)

    def to_state(self) -> MemberState:
        """The engine's view of the new member: no attempt yet, dial at once."""
        return MemberState(numbers=self.numbers(), expire=self.expire)


class MemberUpdate(_Body):
    """``PUT .../members/{mid}``: the keys given replace the member's; ``expire: null`` clears.
    Use ``model_fields_set`` (or :meth:`changes`) to see which keys were given."""

    name: MemberName | None = None
    priority: Priority | None = None
    timezone: TimeZoneName = None
    variables: VariableMap | None = None
    communications: Communications | None = None
    expire: Expire = None

    def changes(self) -> dict[str, Any]:
        """The fields given, validated (``communications`` as :class:`Number` tuples)."""
        out: dict[str, Any] = {}
        for key in self.model_fields_set:
            value = getattr(self, key)
            if key == "communications" and value is not None:
                value = tuple(Number(c.number, priority=c.priority) for c in value)
            out[key] = value
        return out


def parse_members(data: Any) -> list[MemberIn]:
    """One member (a JSON object) or a list of them; errors are located as the input is
    (``communications.0.number`` for one member, ``3.communications.0.number`` in a list)."""
    return MembersIn.model_validate(data).root


class MembersIn(RootModel[Annotated[list[MemberIn], Field(min_length=1)]]):
    """The body of ``POST .../members``: one member or a list (``.root`` is always a list)."""

    @model_validator(mode="wrap")
    @classmethod
    def _one_or_many(cls, data: Any, handler: Any) -> Any:
        if isinstance(data, dict):
            # A single member: validate it alone so that error locations do not get a
            # list index the client never sent.
            return cls.model_construct([MemberIn.model_validate(data)])
        if not isinstance(data, list | tuple | cls):
            raise ValueError("expected a member (an object) or a list of members")
        return handler(data)

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        member = handler(MemberIn.__pydantic_core_schema__)
        return {
            "anyOf": [member, {"type": "array", "items": member, "minItems": 1}],
            "title": "MembersIn",
            "description": "One member or a list of members.",
        }


# --- status bodies -------------------------------------------------------------------------


class StatusBody(_StrictBody):
    """``PUT .../members/{mid}/status``: the result of a call (dialer-semantics §4)."""

    success: bool = False  # the member ends with NORMAL_CLEARING, all numbers stop
    reset_retries: bool = False  # attempt counters of the member and its numbers go to 0
    next_after_sec: float | None = Field(
        default=None, ge=0, le=MAX_NEXT_AFTER_SEC, allow_inf_nan=False, strict=True
    )  # seconds; None: the campaign's retry_wait
    next_communication: PhoneNumber | None = None  # dialed next; added on top if new
    stop_communications: StopList = Field(default_factory=list)  # numbers, or "all"
    comment: str = Field(default="", max_length=MAX_COMMENT)

    def to_result(self) -> StatusResult:
        stop = self.stop_communications
        return StatusResult(
            success=self.success,
            reset_retries=self.reset_retries,
            next_after_sec=self.next_after_sec,
            next_communication=self.next_communication,
            stop_communications="all" if stop == "all" else tuple(dict.fromkeys(stop)),
            comment=self.comment,
        )


class AgentStatusBody(_StrictBody):
    """``PUT /api/v2/agents/{id}/status``: ``{"status": "Available" | "Break" | "LoggedOut"}``."""

    status: Annotated[AgentStatus, BeforeValidator(agent_status_text)]


# --- listing: pagination and filters --------------------------------------------------------


class PageQuery(BaseModel):
    """``?page=1&size=100`` (page from 1; at most 1000 items a page). Unknown query
    parameters are ignored: clients add their own (cache busters, Webitel's ``sort``)."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    page: int = Field(default=1, ge=1, le=10**9)
    size: int = Field(default=100, ge=1, le=MAX_PAGE_SIZE)

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.size


class MemberFilter(PageQuery):
    """Query of ``GET .../members``; every filter given must hold."""

    status: MemberStatus | None = None
    number: PhoneNumber | None = None  # exact, after normalisation
    name: str | None = Field(default=None, max_length=MAX_NAME)  # case-insensitive substring
    end_cause: str | None = Field(default=None, max_length=64)


class AttemptFilter(PageQuery):
    """Query of ``GET .../attempts``; times bound ``created_at`` (since <= t < until)."""

    member: str | None = Field(default=None, max_length=64)
    number: PhoneNumber | None = None
    agent: str | None = Field(default=None, max_length=64)
    cause: str | None = Field(default=None, max_length=64)
    disposition: DispositionKind | None = None
    since: Expire = None
    until: Expire = None
