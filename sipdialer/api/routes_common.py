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
the store's one writer are not thread-safe). The one exception is what costs
O(members): a campaign's counters (``Dialer.campaign_counts``) and a page of members
with its total (``MemberStore.list``) are store reads of 25-150 ms at 500,000 members,
which on the loop would stall the RTP relay and call setup. Those go through
:func:`store_read`: a worker thread (``STORE_READERS`` of them, so the readers never hold
more of the engine's pooled connections than it has: the loop's own store calls never
wait for one) runs the read on a connection of its own, and ``sqlite3`` and psycopg
release the GIL while a statement runs, so the loop goes on. The engine's side of a view
is then read on the loop, after the await (:func:`read_campaign_views`).

``{id}`` is a campaign's id or name (:func:`campaign_id`), ``{mid}`` a member id of that
campaign (:func:`member_record`); an unknown one, or a member of another campaign, is
404. Errors carry ``{"detail": "..."}`` (:class:`~sipdialer.api.replies.ErrorReply`).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Any, ParamSpec, Protocol, TypeVar

from fastapi import Depends, HTTPException, Path, Request, status
from sqlalchemy.engine import Engine
from sqlalchemy.pool import SingletonThreadPool, StaticPool

from sipdialer.api.replies import ErrorReply
from sipdialer.api.values import INT32
from sipdialer.config import Config
from sipdialer.dialer.agents import AgentStatus
from sipdialer.dialer.dispositions import StatusResult
from sipdialer.dialer.views import NO_COUNTERS, AgentView, CallView, CampaignView, MemberCounters
from sipdialer.store.attempts import AttemptStore
from sipdialer.store.member_rows import MemberRecord
from sipdialer.store.members import MemberStore


class Dialer(Protocol):
    """The runner's facade as the API uses it (``DialerRunner`` has these names)."""

    members: MemberStore
    attempts: AttemptStore

    def campaign_ids(self) -> dict[str, str]: ...
    def resolve_campaign(self, id_or_name: str) -> str | None: ...
    def campaign_counts(self, campaign_id: str) -> MemberCounters: ...
    def campaign_view(
        self, campaign_id: str, counters: MemberCounters | None = None
    ) -> CampaignView: ...
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


# --- store reads off the loop ----------------------------------------------------------------

P = ParamSpec("P")
T = TypeVar("T")

STORE_READERS = 4
"""Worker threads for the O(members) reads. Fewer than the connections of SQLAlchemy's
default pool (5, plus 10 overflow), so the loop's own store calls always find one."""
_readers = ThreadPoolExecutor(STORE_READERS, thread_name_prefix="sipdialer-store-read")


def threads_share_store(engine: Engine) -> bool:
    """Whether another thread sees the same database through ``engine``. Not for an
    in-memory SQLite store: ``SingletonThreadPool`` gives each thread a connection of its
    own, i.e. another, empty database; ``StaticPool`` shares one connection, which two
    threads must not use at once. A file (``QueuePool``) or PostgreSQL store does."""
    return not isinstance(engine.pool, SingletonThreadPool | StaticPool)


async def store_read(
    runner: Dialer, read: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs
) -> T:
    """``read(*args, **kwargs)`` in a worker thread, awaited (module docstring). ``read``
    must touch the store only (a pooled connection of its own), never the engine's state.
    On a store other threads cannot share (:func:`threads_share_store`) it runs here, on
    the loop, as before."""
    call = functools.partial(read, *args, **kwargs)
    if not threads_share_store(runner.members.engine):
        return call()
    return await asyncio.get_running_loop().run_in_executor(_readers, call)


def _counters(runner: Dialer, ids: Sequence[str]) -> list[MemberCounters]:
    return [runner.campaign_counts(cid) for cid in ids]  # in the worker thread


async def read_campaign_views(runner: Dialer, ids: Sequence[str]) -> list[CampaignView]:
    """The views of campaigns ``ids``: their counters read in one worker thread, then the
    engine's side on the loop (after the await: as fresh as the reply)."""
    ids = list(ids)
    counters = await store_read(runner, _counters, runner, ids)
    return [runner.campaign_view(cid, c) for cid, c in zip(ids, counters, strict=True)]


async def read_campaign_view(runner: Dialer, cid: str) -> CampaignView:
    (view,) = await read_campaign_views(runner, [cid])
    return view


def engine_view(runner: Dialer, cid: str) -> CampaignView:
    """The view of ``cid`` with empty counters: for what the engine alone knows (name,
    state), without a store query."""
    return runner.campaign_view(cid, NO_COUNTERS)
