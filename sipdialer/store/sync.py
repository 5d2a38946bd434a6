"""Definitions from the TOML file into the store at start; campaigns' and agents' runtime.

Theory of operation
-------------------
The file is the truth for definitions: :func:`sync_config` inserts or updates every
calendar, agent and campaign of a :class:`~sipdialer.config.Config` by its key (calendar
name, agent id, campaign id or name) in one transaction, and marks the rows the file no
longer has ``configured = false`` instead of deleting them (their members and attempts
stay for reports). What the file does not say is runtime and is kept on update: a
campaign's ``state``, an agent's status, state and counters.

Campaign ids are 24 hex digits and never change once given. A campaign is matched first
by the ``id`` the file gives, then by name: a matched row keeps its id (so an empty
``id`` in the file keeps the generated one across restarts) and takes the file's name (a
rename). A new campaign gets the file's id, or a generated one. A file ``id`` that differs
from the id the store has for that name is refused (:class:`SyncError`): members belong to
the stored id, and silently re-keying them is not a sync's business. On PostgreSQL the
sync holds an advisory lock, so two nodes starting at once with the same file agree on the
generated ids (the second sees the first's rows).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.engine import Connection, Engine

from sipdialer.config import CalendarConfig, CampaignConfig, Config
from sipdialer.store.db import is_postgresql, read, write
from sipdialer.store.schema import agents, calendars, campaigns

RUNNING, STOPPED, FINISHED = "running", "stopped", "finished"
SYNC_LOCK_KEY = 0x5D1A_1E5
"""pg_advisory_xact_lock key of :func:`sync_config` (next to the migrations' key)."""
CAMPAIGN_STATES = (RUNNING, STOPPED, FINISHED)


class SyncError(ValueError):
    """The file and the store disagree in a way a sync must not settle alone."""


@dataclass(frozen=True)
class SyncReport:
    campaign_ids: Mapping[str, str]  # campaign name -> id, for every campaign of the file
    added: tuple[str, ...]  # "campaign reminders", "agent 101", ...
    updated: tuple[str, ...]
    unconfigured: tuple[str, ...]  # in the store, no longer in the file


@dataclass(frozen=True)
class CampaignRow:
    id: str
    name: str
    state: str
    configured: bool
    calendar: str
    priority: int
    line_limit: int


@dataclass(frozen=True)
class AgentRow:
    """An agent's runtime state as the store keeps it across restarts."""

    id: str
    name: str
    status: str  # AgentStatus value
    state: str  # AgentState value
    node: str | None
    no_answer_count: int
    calls: int
    idle_since: datetime | None
    configured: bool


def new_campaign_id() -> str:
    return secrets.token_hex(12)


def sync_config(
    engine: Engine,
    config: Config,
    *,
    initial_state: str = RUNNING,
    now: datetime | None = None,
) -> SyncReport:
    """Copy the file's definitions into the store (see the module docstring)."""
    if initial_state not in CAMPAIGN_STATES:
        raise ValueError(f"initial_state must be one of {CAMPAIGN_STATES}")
    now = now or datetime.now(UTC)
    added: list[str] = []
    updated: list[str] = []
    gone: list[str] = []
    with write(engine) as connection:
        if is_postgresql(connection):  # two nodes starting at once: one syncs, then the other
            connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": SYNC_LOCK_KEY})
        _sync_keyed(
            connection, calendars, calendars.c.name,
            {c.name: _calendar_values(c) for c in config.calendars}, now, "calendar",
            added, updated, gone,
        )  # fmt: skip
        _sync_keyed(
            connection, agents, agents.c.id,
            {a.id: {"name": a.name} for a in config.agents}, now, "agent",
            added, updated, gone,
            new_defaults={"status": "LoggedOut", "state": "Waiting", "no_answer_count": 0,
                          "calls": 0},
        )  # fmt: skip
        ids = _sync_campaigns(connection, config, initial_state, now, added, updated, gone)
    return SyncReport(ids, tuple(added), tuple(updated), tuple(gone))


def _sync_keyed(
    connection: Connection,
    table: Any,
    key: Any,
    wanted: Mapping[str, dict[str, Any]],
    now: datetime,
    what: str,
    added: list[str],
    updated: list[str],
    gone: list[str],
    new_defaults: Mapping[str, Any] | None = None,
) -> None:
    have = set(connection.execute(select(key)).scalars())
    for name, values in wanted.items():
        values = values | {"configured": True, "updated_at": now}
        if name in have:
            connection.execute(update(table).where(key == name).values(**values))
            updated.append(f"{what} {name}")
        else:
            row = {key.name: name} | dict(new_defaults or {}) | values
            connection.execute(table.insert().values(**row))
            added.append(f"{what} {name}")
    for name in sorted(have - set(wanted)):
        connection.execute(
            update(table).where(key == name, table.c.configured.is_(True)).values(configured=False)
        )
        gone.append(f"{what} {name}")


def _sync_campaigns(
    connection: Connection,
    config: Config,
    initial_state: str,
    now: datetime,
    added: list[str],
    updated: list[str],
    gone: list[str],
) -> dict[str, str]:
    c = campaigns
    rows = connection.execute(select(c.c.id, c.c.name)).all()
    by_id = {row.id: row.name for row in rows}
    by_name = {row.name: row.id for row in rows}
    ids: dict[str, str] = {}
    for campaign in config.campaigns:
        values = _campaign_values(campaign) | {"configured": True, "updated_at": now}
        if campaign.id and campaign.id in by_id:
            found: str | None = campaign.id
        elif campaign.name in by_name:
            found = by_name[campaign.name]
            if campaign.id and campaign.id != found:
                raise SyncError(
                    f'campaign "{campaign.name}": the file gives id {campaign.id}, the store '
                    f'has {found} for this name; set id = "{found}" (or empty) in the file'
                )
        else:
            found = None
        if found is not None:
            other = by_name.get(campaign.name)
            if other is not None and other != found:  # a rename onto a taken name
                raise SyncError(f'campaign "{campaign.name}": the name is taken by {other}')
            connection.execute(update(c).where(c.c.id == found).values(**values))
            updated.append(f"campaign {campaign.name}")
            ids[campaign.name] = found
            continue
        new_id = campaign.id or new_campaign_id()
        connection.execute(
            c.insert().values(id=new_id, state=initial_state, created_at=now, **values)
        )
        added.append(f"campaign {campaign.name}")
        ids[campaign.name] = new_id
    for campaign_id, name in sorted(by_id.items()):
        if campaign_id not in ids.values():
            connection.execute(
                update(c).where(c.c.id == campaign_id, c.c.configured.is_(True))
                .values(configured=False)
            )  # fmt: skip
            gone.append(f"campaign {name}")
    return ids


def _calendar_values(calendar: CalendarConfig) -> dict[str, Any]:
    return {
        "timezone": calendar.timezone,
        "start": calendar.start,
        "end": calendar.end,
        "holidays": [day.isoformat() for day in calendar.holidays],
        "week": {day: list(windows) for day, windows in calendar.week.model_dump().items()},
    }


def _campaign_values(campaign: CampaignConfig) -> dict[str, Any]:
    causes = campaign.effective_causes()
    return {
        "name": campaign.name,
        "type": campaign.type,
        "calendar": campaign.calendar,
        "priority": campaign.priority,
        "line_limit": campaign.limit,
        "retry_wait": campaign.retry_wait,
        "max_retries": campaign.max_retries,
        "min_success_duration": campaign.min_success_duration,
        "wrap_up_time": campaign.wrap_up_time,
        "wait_for_result": campaign.wait_for_result,
        "strategy": campaign.strategy,
        "agents": [{"id": tier.id, "level": tier.level} for tier in campaign.agents],
        "variables": dict(campaign.variables),
        "causes": {
            "error": list(causes.error),
            "retry": list(causes.retry),
            "ok": list(causes.ok),
            "minus": list(causes.minus),
        },  # fmt: skip
    }


# --- runtime: campaign state, agents ---------------------------------------------------------


def load_campaigns(engine: Engine) -> list[CampaignRow]:
    c = campaigns
    query = select(
        c.c.id, c.c.name, c.c.state, c.c.configured, c.c.calendar, c.c.priority, c.c.line_limit
    ).order_by(c.c.name)
    with read(engine) as connection:
        return [CampaignRow(*row) for row in connection.execute(query)]


def set_campaign_state(engine: Engine, campaign_id: str, state: str) -> None:
    """``running`` / ``stopped`` / ``finished`` (the API and the engine's own stop)."""
    if state not in CAMPAIGN_STATES:
        raise ValueError(f"campaign state must be one of {CAMPAIGN_STATES}, got {state!r}")
    with write(engine) as connection:
        done = connection.execute(
            update(campaigns)
            .where(campaigns.c.id == campaign_id)
            .values(state=state, updated_at=datetime.now(UTC))
        )
        if done.rowcount != 1:
            raise KeyError(f"no campaign {campaign_id!r}")


def load_agents(engine: Engine) -> dict[str, AgentRow]:
    a = agents
    query = select(
        a.c.id, a.c.name, a.c.status, a.c.state, a.c.node, a.c.no_answer_count, a.c.calls,
        a.c.idle_since, a.c.configured,
    )  # fmt: skip
    with read(engine) as connection:
        return {row.id: AgentRow(*row) for row in connection.execute(query)}


def save_agent(
    engine: Engine,
    agent_id: str,
    *,
    status: str,
    state: str,
    node: str | None,
    no_answer_count: int,
    calls: int,
    idle_since: datetime | None,
) -> None:
    """Store an agent's runtime state (the agent row exists after :func:`sync_config`)."""
    with write(engine) as connection:
        done = connection.execute(
            update(agents)
            .where(agents.c.id == agent_id)
            .values(
                status=status,
                state=state,
                node=node,
                no_answer_count=no_answer_count,
                calls=calls,
                idle_since=idle_since,
                updated_at=datetime.now(UTC),
            )  # fmt: skip
        )
        if done.rowcount != 1:
            raise KeyError(f"no agent {agent_id!r}")


def release_agents(engine: Engine, node: str) -> int:
    """After a crash of ``node``: its agents back to Waiting (status kept); how many."""
    with write(engine) as connection:
        return int(
            connection.execute(
                update(agents)
                .where(agents.c.node == node, agents.c.state != "Waiting")
                .values(state="Waiting", updated_at=datetime.now(UTC))
            ).rowcount
        )
