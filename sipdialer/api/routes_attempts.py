"""``GET /api/v2/dialer/{id}/attempts``: a campaign's call attempts, newest first.

Filters (each one given must hold): ``member`` (id), ``number`` (the member's number,
normalised as in bodies), ``agent``, ``cause`` (hangup cause name), ``disposition``, and
``since``/``until`` on the creation time (epoch ms or ISO 8601, as ``expire``).

The page's total counts every matching attempt of the campaign (O(attempts)), so the
search runs in a worker thread (:func:`~sipdialer.api.routes_common.store_read`), off the
loop that relays media.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from sipdialer.api.routes_common import ERRORS, CampaignId, DialerDep, member_id_of, store_read
from sipdialer.api.schemas import AttemptFilter, AttemptOut, Page
from sipdialer.store.api_queries import AttemptQuery, search_attempts

router = APIRouter(prefix="/api/v2/dialer", tags=["attempts"], responses=ERRORS)

NO_MEMBER = -1
"A ``member`` filter that is no member id matches nothing (ids are positive)."


@router.get("/{id}/attempts", summary="List attempts (filters, pages)")
async def list_attempts(
    cid: CampaignId, runner: DialerDep, query: Annotated[AttemptFilter, Query()]
) -> Page[AttemptOut]:
    member_id = None
    if query.member is not None:
        found = member_id_of(query.member.strip())
        member_id = NO_MEMBER if found is None else found
    filters = AttemptQuery(
        member_id=member_id,
        number=query.number,
        agent_id=query.agent,
        cause=query.cause,
        disposition=None if query.disposition is None else query.disposition.value,
        since=query.since,
        until=query.until,
    )
    rows, total = await store_read(
        runner, search_attempts, runner.attempts.engine, cid, filters,
        offset=query.offset, limit=query.size,
    )  # fmt: skip
    return Page(
        items=[AttemptOut.from_row(row) for row in rows],
        page=query.page,
        size=query.size,
        total=total,
    )
