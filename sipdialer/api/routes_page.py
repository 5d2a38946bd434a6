"""What the web client's campaign page needs beyond Webitel's paths: the campaign's
settings as configured, and two member actions.

Theory of operation
-------------------
``GET /api/v2/dialer/{id}/settings``: the campaign's ``[[campaigns]]`` entry as the
running dialer loaded it (every key, defaults filled in; read-only: the file is the truth
for definitions), with ``source``, the file it came from (``app.state.config_source``,
set by whoever loaded it; None when the configuration was built in code).

Member actions, each defined by the API it is made of, so the page and a script do the
same thing:

* ``PUT .../members/{mid}/stop``, *stop all numbers*: every number of the member is
  stopped. A ready member then ends with MANAGER_REQUEST, exactly as ``PUT .../terminate``
  (dialer-semantics §3, rule 1); an ended one just keeps its numbers stopped. A member
  waiting for a status result gets the result ``{"stop_communications": "all"}`` (§4, as
  ``PUT .../status`` would). A member in a call is 409 (its call decides first).
* ``PUT .../members/{mid}/reset``, *reset attempts*: the member starts over: its attempt
  counter and every number's go to 0, its stopped numbers are active again, an ended
  member is ready again (end cause cleared), and it is due at once. The attempt history
  stays. A member in a call, or waiting for a result, is 409 (for the latter the status
  API's ``reset_retries`` is the way).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from fastapi import APIRouter, Request

from sipdialer.api.replies import MemberOut, MemberStatus
from sipdialer.api.routes_common import (
    CONFLICT,
    ERRORS,
    CampaignId,
    ConfigDep,
    Dialer,
    DialerDep,
    MemberDep,
    conflict,
    engine_view,
    not_found,
)
from sipdialer.dialer.dispositions import NotWaiting, StatusResult
from sipdialer.store.member_rows import MemberRecord
from sipdialer.store.members import LeaseError

router = APIRouter(prefix="/api/v2/dialer", tags=["members"], responses=ERRORS)


@router.get("/{id}/settings", summary="The campaign's configuration (read-only)")
async def settings(
    cid: CampaignId, runner: DialerDep, config: ConfigDep, request: Request
) -> dict[str, Any]:
    name = engine_view(runner, cid).name  # the engine's: no store query
    try:
        campaign = config.campaign(name).model_dump(mode="json")
    except KeyError:
        campaign = None  # in the store, no longer in the file
    source = getattr(request.app.state, "config_source", None)
    return {"id": cid, "name": name, "source": source, "campaign": campaign}


def _not_in_call(record: MemberRecord) -> None:
    if record.status == MemberStatus.LEASED:
        raise conflict(f"member {record.member_id} is being called: try again after the call")


def _current(runner: Dialer, member_id: int) -> MemberOut:
    record = runner.members.get(member_id)
    if record is None:
        raise not_found(f"no member {member_id}")
    return MemberOut.from_record(record)


@router.put("/{id}/members/{mid}/stop", summary="Stop all numbers", responses=CONFLICT)
async def stop_numbers(record: MemberDep, cid: CampaignId, runner: DialerDep) -> MemberOut:
    """Every number stops; the member ends (MANAGER_REQUEST) unless it had ended."""
    _not_in_call(record)
    if record.status == MemberStatus.WAITING:
        try:
            runner.member_status(cid, record.member_id, StatusResult(stop_communications="all"))
        except NotWaiting:  # the result or the deadline came first: as for any edit
            raise conflict(f"member {record.member_id} changed meanwhile; try again") from None
        return _current(runner, record.member_id)
    state = record.state
    stopped = replace(state, numbers=tuple(replace(n, active=False) for n in state.numbers))
    try:
        runner.members.save(record.member_id, stopped)
    except LeaseError as exc:
        raise conflict(str(exc)) from None
    if not state.ended:
        runner.terminate_member(cid, record.member_id)
    return _current(runner, record.member_id)


@router.put("/{id}/members/{mid}/reset", summary="Reset attempts", responses=CONFLICT)
async def reset_attempts(record: MemberDep, cid: CampaignId, runner: DialerDep) -> MemberOut:
    """The member starts over (counters 0, numbers active, ready now); history stays."""
    _not_in_call(record)
    if record.status == MemberStatus.WAITING:
        raise conflict(
            f"member {record.member_id} waits for a status result: send it with"
            ' "reset_retries": true (PUT .../status)'
        )
    state = record.state
    fresh = replace(
        state,
        numbers=tuple(replace(n, active=True, attempts=0) for n in state.numbers),
        attempts=0,
        next_call_at=None,
        ended_with=None,
    )
    try:
        runner.members.save(record.member_id, fresh)
    except LeaseError as exc:
        raise conflict(str(exc)) from None
    runner.members_added(cid)  # the engine looks again (the campaign may have finished)
    return _current(runner, record.member_id)
