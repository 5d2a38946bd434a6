"""``POST /api/v2/dialer/{id}/members/import``: a CSV file as the body, as ``sipdialer import``.

The body is the file's bytes (any content type; ``text/csv`` in the OpenAPI document) and
the query says how to read it: ``encoding``, ``delimiter``, ``skip_header`` and ``map``
(the ``--map`` syntax of :mod:`sipdialer.importer.mapping`; an expire column's date format
is part of it, ``expire:DD.MM.YYYY=3``: :mod:`sipdialer.importer.dates`). Rows are read in batches
(:func:`~sipdialer.importer.iter_members`); each batch is one store transaction, and the
loop yields to the event loop between batches so that calls in progress are not starved
by a large file (and checkpoints SQLite's log in a thread now and then: see
:mod:`sipdialer.store.wal`). A bad row is refused with its line number and reason, and so
is a row whose number the campaign already has (so a re-import adds nothing twice); the
good rows are imported. A bad ``encoding``, ``delimiter`` or ``map`` is 422 naming the
parameter.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, status
from pydantic import BaseModel, ConfigDict

from sipdialer.api.routes_common import ERRORS, CampaignId, DialerDep
from sipdialer.api.routes_members import AutoRun, after_adding, new_member
from sipdialer.importer import (
    DEFAULT_MAPPING,
    MappingError,
    check_delimiter,
    check_encoding,
    iter_members,
    parse_mapping,
)
from sipdialer.store.wal import checkpoint

router = APIRouter(prefix="/api/v2/dialer", tags=["members"], responses=ERRORS)

MAX_IMPORT_BYTES = 64 * 1024 * 1024
"Largest CSV body taken (a million members of ~60 bytes fit); bigger is 413."
BATCH = 50
"Rows per store transaction (~5 ms each): the calls in progress never wait long."
CHECKPOINT_ROWS = 1000
"Every this many rows the SQLite log is checkpointed in a thread (:mod:`sipdialer.store.wal`)."


class RowRefused(BaseModel):
    model_config = ConfigDict(extra="forbid")

    line: int  # where the row starts, from 1, the header counted
    reason: str


class ImportReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rows: int  # data rows read (header and blank rows not counted)
    imported: int
    refused: list[RowRefused]
    started: bool = False  # autoRun=true started the campaign


def _bad_query(field: str, exc: ValueError) -> HTTPException:
    detail = [{"loc": ["query", field], "msg": str(exc), "type": "value_error"}]
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail)


@router.post(
    "/{id}/members/import",
    summary="Import members from a CSV file (the body)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"text/csv": {"schema": {"type": "string"}}},
        }
    },
    responses={413: {"description": "the file is larger than 64 MiB"}},
)
async def import_csv(
    request: Request,
    cid: CampaignId,
    runner: DialerDep,
    encoding: Annotated[str, Query(max_length=64)] = "utf-8",
    delimiter: Annotated[str, Query(max_length=16)] = ",",
    skip_header: bool = False,
    map: Annotated[
        str, Query(max_length=4096, description="e.g. name=0,number=1,expire:DD.MM.YYYY=2")
    ] = (DEFAULT_MAPPING),
    auto_run: AutoRun = False,
) -> ImportReport:
    for field, check, value in (
        ("encoding", check_encoding, encoding),
        ("delimiter", check_delimiter, delimiter),
        ("map", parse_mapping, map),
    ):
        try:
            check(value)
        except ValueError as exc:
            raise _bad_query(field, exc) from None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_IMPORT_BYTES:
            raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, "the file is too large")
    report = ImportReport(rows=0, imported=0, refused=[])
    try:
        batches = iter_members(
            bytes(body), encoding=encoding, delimiter=delimiter, skip_header=skip_header,
            mapping=map, batch=BATCH,
        )  # fmt: skip
        for batch in batches:
            report.rows += batch.rows
            report.refused += [RowRefused(line=e.line, reason=e.reason) for e in batch.errors]
            added = runner.members.add_many(cid, [new_member(m.member) for m in batch.members])
            report.imported += len(added.added)
            report.refused += [
                RowRefused(line=batch.members[r.index].line, reason=r.reason) for r in added.refused
            ]
            if report.rows % CHECKPOINT_ROWS < BATCH:
                await asyncio.to_thread(checkpoint, runner.members.engine)
            await asyncio.sleep(0.001)  # let the dialer run between batches (a few loop turns)
    except MappingError as exc:  # a column name the header lacks, a map wider than the file
        raise _bad_query("map", exc) from None
    report.refused.sort(key=lambda r: r.line)
    report.started = after_adding(runner, cid, report.imported, auto_run)
    return report
