"""What every route module shares: the runner facade it talks to, the dependencies that
turn path parameters into a campaign id or a member, and the error replies.

Theory of operation
-------------------
Routes are thin (DESIGN.md, layering rule 2): validate (pydantic, in FastAPI), call the
runner's facade or a read-only store query, serialise. :class:`Dialer` is the part of
``sipdialer.dialer.runner.DialerRunner`` the API uses, as a Protocol, so this package
depends on the facade's shape and not on the runner's module.

Every route is ``async def``, its dependencies too: FastAPI runs a plain ``def`` in a
worker thread, and the facade is to be called in the event loop only (the engine and
the store's one writer are not thread-safe).

``{id}`` is a campaign's id or name (:func:`campaign_id`), ``{mid}`` a member id of that
campaign (:func:`member_record`); an unknown one, or a member of another campaign, is
404. Errors carry ``{"detail": "..."}`` (:class:`~sipdialer.api.replies.ErrorReply`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Annotated, Any, Protocol

from fastapi import Depends, HTTPException, Path, Request, status

from sipdialer.api.replies import ErrorReply
from sipdialer.api.values import INT32
from sipdialer.config import Config
from sipdialer.dialer.agents import AgentStatus
from sipdialer.dialer.dispositions import StatusResult
from sipdialer.dialer.views import AgentView, CallView, CampaignView
from sipdialer.store.attempts import AttemptStore
from sipdialer.store.member_rows import MemberRecord
from sipdialer.store.members import MemberStore


class Dialer(Protocol):
    """The runner's facade as the API uses it (``DialerRunner`` has these names)."""

    members: MemberStore
    attempts: AttemptStore

    def campaign_ids(self) -> dict[str, str]: ...
    def resolve_campaign(self, id_or_name: str) -> str | None: ...
    def campaign_view(self, campaign_id: str) -> CampaignView: ...
    def set_campaign_state(self, campaign_id: str, run: bool) -> None: ...
    def members_added(self, campaign_id: str, *, auto_run: bool = False) -> None: ...
    def member_status(self, campaign_id: str, member_id: int, result: StatusResult) -> None: ...
    def terminate_member(self, campaign_id: str, member_id: int) -> None: ...
    def set_agent_status(self, agent_id: str, status: AgentStatus) -> None: ...
    def agent_views(self) -> list[AgentView]: ...
    def live_calls(self) -> list[CallView]: ...
    def snapshot(self) -> dict[str, Any]: ...
    def subscribe(self) -> asyncio.Queue[dict[str, Any]]: ...
    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any]]) -> None: ...


def not_found(what: str) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, what)


def conflict(what: str) -> HTTPException:
    return HTTPException(status.HTTP_409_CONFLICT, what)


ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorReply, "description": "missing or wrong X-Access-Token / X-Key"},
    404: {"model": ErrorReply, "description": "no such campaign (or member, agent)"},
}
"The ``responses=`` of every route, for the OpenAPI document."
CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorReply, "description": "the member's state does not allow it"}
}


async def dialer(request: Request) -> Dialer:
    runner: Dialer = request.app.state.runner
    return runner


async def configuration(request: Request) -> Config:
    config: Config = request.app.state.config
    return config


DialerDep = Annotated[Dialer, Depends(dialer)]
ConfigDep = Annotated[Config, Depends(configuration)]
CampaignPath = Annotated[str, Path(description="the campaign's id (24 hex digits) or name")]
MemberPath = Annotated[str, Path(description="the member's id")]


async def campaign_id(id: CampaignPath, runner: DialerDep) -> str:
    """The campaign id of ``{id}`` (an id or a name), else 404."""
    found = runner.resolve_campaign(id)
    if found is None:
        raise not_found(f"no campaign {id!r}")
    return found


CampaignId = Annotated[str, Depends(campaign_id)]


def member_id_of(text: str) -> int | None:
    """A member id from text, or None: anything but a plain integer in 1..2**31-1 (the
    store's id columns are 32-bit on PostgreSQL, where a larger one is an error)."""
    if not text.isascii() or not text.isdigit() or len(text) > 10:
        return None
    value = int(text)
    return value if 1 <= value <= INT32 else None


def parse_member_id(mid: str) -> int:
    """A member id of the path; anything else (:func:`member_id_of`) is an unknown id."""
    value = member_id_of(mid)
    if value is None:
        raise not_found(f"no member {mid!r}")
    return value


async def member_record(mid: MemberPath, cid: CampaignId, runner: DialerDep) -> MemberRecord:
    """The member ``{mid}`` of campaign ``{id}``, else 404."""
    record = runner.members.get(parse_member_id(mid))
    if record is None or record.campaign_id != cid:
        raise not_found(f"no member {mid!r} in this campaign")
    return record


MemberDep = Annotated[MemberRecord, Depends(member_record)]


def campaign_names(runner: Dialer) -> Mapping[str, str]:
    """Campaign id -> name (the facade gives name -> id)."""
    return {cid: name for name, cid in runner.campaign_ids().items()}
