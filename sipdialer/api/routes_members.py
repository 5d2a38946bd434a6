"""``/api/v2/dialer/{id}/members``: add, list, read, edit, delete, and the status result.

Adding (``POST``, one member or a list, Webitel's JSON): the store inserts the batch in
one transaction and refuses, per member, one whose number the campaign already has (the
reply says which and why); then the runner learns of the new members (zones, wake-up)
and, with ``?autoRun=true``, starts the campaign.

A member whose call is in progress (``leased``) or that waits for a status result
(``waiting``: the engine holds its state until the result or the deadline) cannot be
edited or deleted: 409. ``PUT .../{mid}/status`` is dialer-semantics §4, done by the
runner: 409 when the member is not waiting for a result. ``PUT .../{mid}/terminate`` (an
addition to Webitel's paths) ends a member by manager request.

Listing a page counts the members that match (its ``total``): O(members), so it runs in
a worker thread (:func:`~sipdialer.api.routes_common.store_read`).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from sipdialer.api.replies import MemberAdded, MembersAdded, MemberStatus, Page
from sipdialer.api.routes_common import (
    CONFLICT,
    ERRORS,
    CampaignId,
    Dialer,
    DialerDep,
    MemberDep,
    conflict,
    engine_view,
    not_found,
    store_read,
)
from sipdialer.api.schemas import (
    MemberFilter,
    MemberIn,
    MemberOut,
    MembersIn,
    MemberUpdate,
    StatusBody,
)
from sipdialer.dialer.dispositions import NotWaiting
from sipdialer.store.api_queries import edit_member, member_with_number
from sipdialer.store.member_rows import DuplicateNumber, MemberRecord, NewMember
from sipdialer.store.members import LeaseError

router = APIRouter(prefix="/api/v2/dialer", tags=["members"], responses=ERRORS)

AutoRun = Annotated[
    bool, Query(alias="autoRun", description="start the campaign after adding the members")
]


def new_member(member: MemberIn) -> NewMember:
    return NewMember(
        numbers=member.numbers(),
        name=member.name,
        priority=member.priority,
        timezone=member.timezone,
        variables=member.variables,
        expire=member.expire,
    )


def after_adding(runner: Dialer, cid: str, added: int, auto_run: bool) -> bool:
    """Tell the runner; returns whether the campaign runs because of ``autoRun``."""
    if added or auto_run:
        runner.members_added(cid, auto_run=auto_run)
    return auto_run and engine_view(runner, cid).state == "running"  # no store query


@router.post("/{id}/members", summary="Add one member or a list", responses=CONFLICT)
async def add_members(
    body: MembersIn, cid: CampaignId, runner: DialerDep, auto_run: AutoRun = False
) -> MembersAdded:
    """Members with a number the campaign already has are refused, each with the reason;
    the others are added."""
    batch = body.root
    report = runner.members.add_many(cid, [new_member(m) for m in batch])
    refused = {r.index: r.reason for r in report.refused}
    ids = iter(report.added)
    members = [
        MemberAdded(index=i, error=refused[i])
        if i in refused
        else MemberAdded(index=i, id=str(next(ids)))
        for i in range(len(batch))
    ]
    started = after_adding(runner, cid, len(report.added), auto_run)
    return MembersAdded(
        added=len(report.added), refused=len(report.refused), members=members, started=started
    )


def _matches(record: MemberRecord, query: MemberFilter) -> bool:
    return (
        (query.status is None or record.status == query.status)
        and (query.end_cause is None or record.state.ended_with == query.end_cause)
        and (not query.name or query.name.lower() in record.name.lower())
    )


@router.get("/{id}/members", summary="List members (filters, pages)")
async def list_members(
    cid: CampaignId, runner: DialerDep, query: Annotated[MemberFilter, Query()]
) -> Page[MemberOut]:
    if query.number is not None:  # numbers are unique in a campaign: 0 or 1 member
        found = member_with_number(runner.members.engine, cid, query.number)
        record = None if found is None else runner.members.get(found)
        hits = [record] if record is not None and _matches(record, query) else []
        items = hits[query.offset : query.offset + query.size]
        return Page(items=[MemberOut.from_record(r) for r in items], page=query.page,
                    size=query.size, total=len(hits))  # fmt: skip
    page = await store_read(  # O(members) with its total: off the loop
        runner,
        runner.members.list,
        cid,
        status=None if query.status is None else query.status.value,
        ended_with=query.end_cause,
        name=query.name,
        offset=query.offset,
        limit=query.size,
    )
    return Page(
        items=[MemberOut.from_record(r) for r in page.members],
        page=query.page,
        size=query.size,
        total=page.total,
    )


@router.get("/{id}/members/{mid}", summary="One member")
async def get_member(record: MemberDep) -> MemberOut:
    return MemberOut.from_record(record)


def _editable(record: MemberRecord) -> None:
    if record.status == MemberStatus.LEASED:
        raise conflict(f"member {record.member_id} is being called: try again after the call")
    if record.status == MemberStatus.WAITING:
        raise conflict(
            f"member {record.member_id} waits for a status result: send it first (PUT .../status)"
        )


@router.put("/{id}/members/{mid}", summary="Edit a member", responses=CONFLICT)
async def edit(
    body: MemberUpdate, record: MemberDep, cid: CampaignId, runner: DialerDep
) -> MemberOut:
    """The keys given replace the member's (``expire: null`` clears it); a number the
    member keeps keeps its counters."""
    _editable(record)
    try:
        edit_member(runner.members.engine, record.member_id, body.changes())
    except KeyError:
        raise not_found(f"no member {record.member_id}") from None
    except (LeaseError, DuplicateNumber, ValueError) as exc:
        raise conflict(str(exc)) from None
    runner.members_added(cid)  # zones or due times may have changed: the engine re-reads
    return _current(runner, record.member_id)


@router.delete("/{id}/members/{mid}", summary="Delete a member", responses=CONFLICT)
async def delete(record: MemberDep, runner: DialerDep) -> MemberOut:
    """Deletes the member with its numbers and attempts; returns it as it was."""
    _editable(record)
    try:
        runner.members.delete(record.member_id)
    except LeaseError as exc:
        raise conflict(str(exc)) from None
    return MemberOut.from_record(record)


@router.put("/{id}/members/{mid}/status", summary="Report a call's result", responses=CONFLICT)
async def member_status(
    body: StatusBody, record: MemberDep, cid: CampaignId, runner: DialerDep
) -> MemberOut:
    """Dialer-semantics §4; 409 when the member is not waiting for a result, or when
    ``next_communication`` is a number of another member of the campaign."""
    try:
        runner.member_status(cid, record.member_id, body.to_result())
    except DuplicateNumber as exc:  # the runner checks next_communication before judging
        raise conflict(str(exc)) from None
    except NotWaiting:
        now = runner.members.get(record.member_id) or record
        raise conflict(
            f"member {record.member_id} is not waiting for a result (it is {now.status});"
            " a status is taken only after a call of a campaign with wait_for_result"
        ) from None
    except KeyError:
        raise not_found(f"no member {record.member_id} in this campaign") from None
    return _current(runner, record.member_id)


@router.put("/{id}/members/{mid}/terminate", summary="End a member (manager request)")
async def terminate(record: MemberDep, cid: CampaignId, runner: DialerDep) -> MemberOut:
    """The member ends with MANAGER_REQUEST (dialer-semantics §3, rule 1): at once when it
    is ready or waiting; a call in progress is hung up and the member ends with it (the
    reply then still shows it ``leased``). An ended member stays as it ended."""
    try:
        runner.terminate_member(cid, record.member_id)
    except KeyError:
        raise not_found(f"no member {record.member_id} in this campaign") from None
    return _current(runner, record.member_id)


def _current(runner: Dialer, member_id: int) -> MemberOut:
    record = runner.members.get(member_id)
    if record is None:
        raise not_found(f"no member {member_id}")
    return MemberOut.from_record(record)
