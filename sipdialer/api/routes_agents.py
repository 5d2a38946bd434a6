"""``/api/v2/agents``: the agents (status is the agent's choice, state the dialer's) and
``PUT /api/v2/agents/{id}/status`` (``{"status": "Available" | "Break" | "LoggedOut"}``),
which the runner applies as a phone's feature code would."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path

from sipdialer.api.replies import AgentOut
from sipdialer.api.routes_common import ERRORS, ConfigDep, DialerDep, not_found
from sipdialer.api.schemas import AgentStatusBody
from sipdialer.config import Config
from sipdialer.dialer.agents import AgentState, AgentStatus
from sipdialer.dialer.views import AgentView

router = APIRouter(prefix="/api/v2/agents", tags=["agents"], responses=ERRORS)


def agent_out(view: AgentView, config: Config) -> AgentOut:
    campaigns = [c.name for c in config.campaigns if view.id in c.agent_ids]
    state = AgentState(view.state)
    return AgentOut(
        id=view.id,
        name=view.name,
        status=AgentStatus(view.status),
        state=state,
        registered=view.registered,
        calls=view.calls,
        # ``since`` is the last change; while Waiting that is how long the agent idles.
        idle_since=datetime.fromtimestamp(view.since, UTC) if state is AgentState.WAITING else None,
        campaigns=campaigns,
    )


@router.get("", summary="List the agents")
async def list_agents(runner: DialerDep, config: ConfigDep) -> list[AgentOut]:
    return [agent_out(view, config) for view in sorted(runner.agent_views(), key=lambda v: v.id)]


@router.put("/{id}/status", summary="Set an agent's status")
async def set_status(
    id: Annotated[str, Path(description="the agent's id (its phone's SIP user)")],
    body: AgentStatusBody,
    runner: DialerDep,
    config: ConfigDep,
) -> AgentOut:
    try:
        runner.set_agent_status(id, body.status)
    except KeyError:
        raise not_found(f"no agent {id!r}") from None
    for view in runner.agent_views():
        if view.id == id:
            return agent_out(view, config)
    raise not_found(f"no agent {id!r}")
