"""``/api/v2/dialer``: campaigns (list, one, run/stop).

A campaign's reply joins three sources: the configuration (type, strategy, calendar,
agents: the file is the truth for definitions), the runner's view (state, calls in
flight) and the store's member counters (read in a worker thread:
:func:`~sipdialer.api.routes_common.read_campaign_views`). ``PUT .../state/run`` and
``.../state/stop`` go to the runner (stop: no new calls; calls in progress finish).
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter

from sipdialer.api.replies import CampaignOut, MemberCounts
from sipdialer.api.routes_common import (
    ERRORS,
    CampaignId,
    ConfigDep,
    DialerDep,
    read_campaign_view,
    read_campaign_views,
)
from sipdialer.config import Config
from sipdialer.dialer.views import CampaignView

router = APIRouter(prefix="/api/v2/dialer", tags=["campaigns"], responses=ERRORS)


def campaign_out(view: CampaignView, config: Config) -> CampaignOut:
    counts = view.counts
    try:
        settings = config.campaign(view.name)
    except KeyError:  # in the store, no longer in the file: shown with what the view has
        settings = None
    state = view.state if view.state in ("running", "stopped", "finished") else "stopped"
    return CampaignOut(
        id=view.id,
        name=view.name,
        state=state,  # type: ignore[arg-type]  # checked just above
        finished_reason=view.finished_reason if state == "finished" else "",
        priority=view.priority,
        limit=view.limit,
        type=settings.type if settings else "progressive",
        strategy=settings.strategy if settings else "longest_idle",
        calendar=settings.calendar if settings else None,
        wait_for_result=settings.wait_for_result if settings else False,
        agents=list(settings.agent_ids) if settings else [],
        active_calls=view.in_flight,
        members=MemberCounts(total=sum(counts.values()), **counts),
    )


@router.get("", summary="List the campaigns")
async def list_campaigns(runner: DialerDep, config: ConfigDep) -> list[CampaignOut]:
    ids = runner.campaign_ids()
    views = await read_campaign_views(runner, [ids[name] for name in sorted(ids)])
    return [campaign_out(view, config) for view in views]


@router.get("/{id}", summary="One campaign")
async def get_campaign(cid: CampaignId, runner: DialerDep, config: ConfigDep) -> CampaignOut:
    return campaign_out(await read_campaign_view(runner, cid), config)


@router.put("/{id}/state/{action}", summary="Run or stop a campaign")
async def set_state(
    action: Literal["run", "stop"], cid: CampaignId, runner: DialerDep, config: ConfigDep
) -> CampaignOut:
    """``run`` starts dialing; ``stop`` places no new calls (calls in progress finish)."""
    runner.set_campaign_state(cid, action == "run")
    return campaign_out(await read_campaign_view(runner, cid), config)
