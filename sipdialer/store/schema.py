"""The store's tables (SQLAlchemy 2 Core), as of the current schema version.

Theory of operation
-------------------
Definitions (campaigns, calendars, agents) come from the TOML file and are copied in at
start (:mod:`sipdialer.store.sync`); members, their numbers ("communications" in Webitel)
and attempts live only here. ``bindings`` (the registrar's table) keeps its definition in
:mod:`sipdialer.store.bindings` and is created by the migrations too, under that name.

Times are aware UTC ``datetime`` in Python (:class:`UtcDateTime`): ``timestamptz`` on
PostgreSQL, a naive UTC text on SQLite (whose ISO strings sort like the times they hold).

Members and leasing. ``members.status`` is derived from the member's state:

* ``ready``: may be leased once ``next_call_at <= now``;
* ``leased``: a node (``lease_owner``) holds it for an attempt;
* ``waiting``: the attempt waits for a status result (semantics §4);
* ``ended``: final, ``ended_with`` says why.

``next_call_at`` is NOT NULL: "as soon as possible" (a ``MemberState.next_call_at`` of
None) is stored as :data:`ASAP` (1970-01-01), which sorts first, so that "due" is a plain
range ``next_call_at <= now`` on the index ``ix_members_lease (campaign_id, status,
priority DESC, next_call_at, id)``: leasing is one index seek per priority level
(:mod:`sipdialer.store.members`). The index ``(..., next_call_at, priority)`` would force a
sort (DESIGN.md). ``id`` ends the index so that PostgreSQL, whose b-tree does not carry the
row id, orders equal times by insertion without a sort.

Numbers are unique within a campaign: ``communications`` repeats ``campaign_id`` so that a
unique constraint can say so. ``position`` keeps the member's list order, which breaks
ties between equal numbers (semantics §3).

``attempts`` holds one row per call attempt with everything of semantics §8, plus the
node that ran it and ``state`` (``in_flight`` until ended), so a restarted node closes its
own in-flight attempts as PROCESS_CRASH.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Date,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.types import TypeDecorator

metadata = MetaData()

ASAP = datetime(1970, 1, 1, tzinfo=UTC)
"""The stored ``next_call_at`` of a member to call as soon as possible (state: None)."""

# members.status values
READY, LEASED, WAITING, ENDED = "ready", "leased", "waiting", "ended"
MEMBER_STATUSES = (READY, LEASED, WAITING, ENDED)

# attempts.state values
IN_FLIGHT, FINISHED = "in_flight", "ended"


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out; naive ones are refused (they are a bug here)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: the store takes aware UTC times")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)  # type: ignore[no-any-return]
        return value.astimezone(UTC)  # type: ignore[no-any-return]


def _now() -> datetime:
    return datetime.now(UTC)


schema_version = Table(
    "schema_version",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("description", Text, nullable=False),
    Column("applied_at", UtcDateTime, nullable=False),
)

calendars = Table(
    "calendars",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("timezone", String(64), nullable=False),
    Column("start", Date, nullable=True),
    Column("end", Date, nullable=True),
    Column("holidays", JSON, nullable=False),  # ["2026-12-25", ...]
    Column("week", JSON, nullable=False),  # {"mon": ["09:00-13:00", ...], ...}
    Column("configured", Boolean, nullable=False, default=True),  # still in the TOML file
    Column("updated_at", UtcDateTime, nullable=False),
)

campaigns = Table(
    "campaigns",
    metadata,
    Column("id", String(24), primary_key=True),  # 24 hex digits, stable across restarts
    Column("name", String(64), nullable=False, unique=True),
    Column("type", String(16), nullable=False),
    Column("calendar", String(64), nullable=False),
    Column("priority", Integer, nullable=False),
    Column("line_limit", Integer, nullable=False),  # [campaigns] limit
    Column("retry_wait", Float, nullable=False),
    Column("max_retries", Integer, nullable=False),
    Column("min_success_duration", Float, nullable=False),
    Column("wrap_up_time", Float, nullable=False),
    Column("wait_for_result", Boolean, nullable=False),
    Column("strategy", String(16), nullable=False),
    Column("agents", JSON, nullable=False),  # [{"id": "101", "level": 1}, ...]
    Column("variables", JSON, nullable=False),
    Column("causes", JSON, nullable=False),  # the effective lists {"error": [...], ...}
    Column("state", String(16), nullable=False),  # running | stopped | finished (runtime)
    Column("configured", Boolean, nullable=False, default=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

agents = Table(
    "agents",
    metadata,
    Column("id", String(64), primary_key=True),  # the phone's SIP user
    Column("name", String(128), nullable=False),
    Column("status", String(16), nullable=False),  # LoggedOut | Available | Break
    Column("state", String(16), nullable=False),  # Waiting | Reserved | ... (runtime)
    Column("node", String(64), nullable=True),  # the dialer node that runs this agent
    Column("no_answer_count", Integer, nullable=False, default=0),
    Column("calls", Integer, nullable=False, default=0),
    Column("idle_since", UtcDateTime, nullable=True),
    Column("configured", Boolean, nullable=False, default=True),
    Column("updated_at", UtcDateTime, nullable=False),
)

members = Table(
    "members",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "campaign_id", String(24), ForeignKey("campaigns.id", ondelete="CASCADE"), nullable=False
    ),
    Column("name", String(256), nullable=False, default=""),
    Column("priority", Integer, nullable=False, default=0),
    Column("timezone", String(64), nullable=True),
    Column("variables", JSON, nullable=False),
    Column("expire", UtcDateTime, nullable=True),
    Column("status", String(8), nullable=False),
    Column("next_call_at", UtcDateTime, nullable=False),  # ASAP for "now" (see above)
    Column("attempts", Integer, nullable=False, default=0),
    Column("waiting_on", String(64), nullable=True),
    Column("result_deadline", UtcDateTime, nullable=True),  # waiting: the wrap-up deadline
    Column("ended_with", String(64), nullable=True),
    Column("lease_owner", String(64), nullable=True),
    Column("leased_at", UtcDateTime, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("ended_at", UtcDateTime, nullable=True),
)
Index(
    "ix_members_lease",
    members.c.campaign_id,
    members.c.status,
    members.c.priority.desc(),
    members.c.next_call_at,
    members.c.id,
)
Index("ix_members_lease_owner", members.c.lease_owner)

communications = Table(
    "communications",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("member_id", Integer, ForeignKey("members.id", ondelete="CASCADE"), nullable=False),
    Column("campaign_id", String(24), nullable=False),
    Column("number", String(64), nullable=False),
    Column("position", Integer, nullable=False),  # list order within the member
    Column("priority", Integer, nullable=False, default=0),
    Column("active", Boolean, nullable=False, default=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_tried", UtcDateTime, nullable=True),
    UniqueConstraint("campaign_id", "number", name="uq_communications_campaign_number"),
)
Index("ix_communications_member", communications.c.member_id, communications.c.position)

attempts = Table(
    "attempts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("call_id", String(64), nullable=False, unique=True),  # CallOrder.call_id
    Column("campaign_id", String(24), nullable=False),
    Column("member_id", Integer, ForeignKey("members.id", ondelete="CASCADE"), nullable=False),
    Column("number", String(64), nullable=False),  # the member's number (before the route)
    Column("agent_id", String(64), nullable=True),
    Column("trunk", String(64), nullable=True),
    Column("dialed", String(64), nullable=True),  # as sent to the trunk
    Column("node", String(64), nullable=False),  # the lease owner that ran it
    Column("state", String(12), nullable=False),  # in_flight | ended
    Column("created_at", UtcDateTime, nullable=False),
    Column("agent_answered_at", UtcDateTime, nullable=True),
    Column("member_ringing_at", UtcDateTime, nullable=True),
    Column("member_answered_at", UtcDateTime, nullable=True),
    Column("bridged_at", UtcDateTime, nullable=True),
    Column("ended_at", UtcDateTime, nullable=True),
    Column("sip_code", Integer, nullable=True),
    Column("cause", String(64), nullable=True),
    Column("cause_q850", Integer, nullable=True),
    Column("hangup_by", String(8), nullable=True),  # agent | member | dialer
    Column("agent_cause", String(64), nullable=True),
    Column("agent_sip_code", Integer, nullable=True),
    Column("disposition", String(16), nullable=True),  # DispositionKind value
    Column("counted", Integer, nullable=False, default=0),  # Disposition.attempts_delta
    Column("rule", Text, nullable=True),
    Column("talk_seconds", Float, nullable=False, default=0.0),
    Column("recording", Text, nullable=True),
    Column("result", JSON, nullable=True),  # the status-API body, if one came
    Column("comment", Text, nullable=True),
)
Index("ix_attempts_member", attempts.c.member_id, attempts.c.id)
Index("ix_attempts_campaign", attempts.c.campaign_id, attempts.c.id)
Index("ix_attempts_node_state", attempts.c.node, attempts.c.state)

DIALER_TABLES = (schema_version, calendars, campaigns, agents, members, communications, attempts)
