"""``sipdialer report`` and ``sipdialer members``: a campaign's results and members, read
from the store (the dialer may be running: every read is its own short transaction).

Theory of operation
-------------------
:func:`campaign_report` reads the campaign's attempts page by page
(``AttemptStore.for_campaign``, newest first) and folds them into the pure
:mod:`sipdialer.report`; an attempt is taken once by id, so pages that shift while a
running dialer adds attempts only repeat rows, which are skipped. Members come from
``MemberStore.counts`` (by status) and, per end cause, a filtered listing's total: the
causes asked for are those the attempts had plus the dialer's own end causes, and any
ended member left over is shown as ``(other)``.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from collections.abc import Iterator
from datetime import datetime

from rich import box
from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import Engine

from sipdialer.cli_common import Campaign, CommandFailed, fail, find_campaign, store_engine
from sipdialer.config import Config
from sipdialer.dialer.dispositions import (
    MANAGER_REQUEST,
    MAX_TRY_COUNT,
    MEMBER_EXPIRED,
    NO_COMMUNICATIONS,
    NORMAL_CLEARING,
)
from sipdialer.report import AttemptFacts, CampaignReport, build_report, render_table
from sipdialer.report import to_csv as report_csv
from sipdialer.report import to_json as report_json
from sipdialer.store.attempts import AttemptRecord, AttemptStore
from sipdialer.store.member_rows import MemberRecord
from sipdialer.store.members import MemberStore
from sipdialer.store.schema import ENDED

PAGE = 5000
MAX_LIMIT = 10_000
"""The most members ``members`` lists at once (``MemberStore.list``'s bound)."""
OWN_END_CAUSES = (
    NORMAL_CLEARING,
    MAX_TRY_COUNT,
    MEMBER_EXPIRED,
    MANAGER_REQUEST,
    NO_COMMUNICATIONS,
)
OTHER = "(other)"


def attempt_facts(record: AttemptRecord) -> AttemptFacts:
    row = record.row
    return AttemptFacts(
        cause=record.cause if record.state == "ended" else None,
        disposition=record.disposition,
        counted=record.counted,
        talk_seconds=float(row.get("talk_seconds") or 0.0),
        bridged=row.get("bridged_at") is not None,
        agent_id=record.agent_id,
    )


def _attempts(
    store: AttemptStore, campaign_id: str, seen_causes: set[str]
) -> Iterator[AttemptFacts]:
    seen: set[int] = set()
    offset = 0
    while True:
        page = store.for_campaign(campaign_id, offset=offset, limit=PAGE)
        for record in page:
            if record.id in seen:
                continue
            seen.add(record.id)
            if record.cause:
                seen_causes.add(record.cause)
            yield attempt_facts(record)
        if len(page) < PAGE:
            return
        offset += PAGE


def campaign_report(engine: Engine, campaign: Campaign) -> CampaignReport:
    """The campaign's report as the store has it now."""
    members = MemberStore(engine)
    causes: set[str] = set()
    facts = list(_attempts(AttemptStore(engine), campaign.id, causes))
    by_status = members.counts(campaign.id)
    ended_with: dict[str, int] = {}
    for cause in sorted(causes | set(OWN_END_CAUSES)):
        total = members.list(campaign.id, status=ENDED, ended_with=cause, limit=1).total
        if total:
            ended_with[cause] = total
    rest = by_status.get(ENDED, 0) - sum(ended_with.values())
    if rest > 0:
        ended_with[OTHER] = rest
    return build_report(campaign.id, campaign.name, campaign.state, by_status, ended_with, facts)


def run_report(config: Config, args: argparse.Namespace) -> int:
    """The ``report`` command."""
    try:
        engine = store_engine(config)
        try:
            report = campaign_report(engine, find_campaign(engine, config, args.campaign))
        finally:
            engine.dispose()
    except CommandFailed as exc:
        return fail("report", exc)
    if args.format == "json":
        print(json.dumps(report_json(report), indent=2, ensure_ascii=False))
    elif args.format == "csv":
        sys.stdout.write(report_csv(report))
    else:
        Console(highlight=False).print(render_table(report))
    return 0


# --- members ----------------------------------------------------------------------------------


def _when(at: datetime | None) -> str:
    return "" if at is None else at.strftime("%Y-%m-%d %H:%M:%S")


def member_json(record: MemberRecord) -> dict[str, object]:
    state = record.state
    return {
        "id": record.member_id,
        "name": record.name,
        "status": record.status,
        "ended_with": state.ended_with,
        "attempts": state.attempts,
        "priority": record.priority,
        "timezone": record.timezone,
        "next_call_at": None if state.next_call_at is None else state.next_call_at.isoformat(),
        "expire": None if record.expire is None else record.expire.isoformat(),
        "variables": dict(record.variables),
        "communications": [
            {"number": n.number, "priority": n.priority, "active": n.active, "attempts": n.attempts}
            for n in state.numbers
        ],  # fmt: skip
    }


def _numbers(record: MemberRecord) -> str:
    return " ".join(n.number + ("" if n.active else " (stopped)") for n in record.state.numbers)


def run_members(config: Config, args: argparse.Namespace) -> int:
    """The ``members`` command."""
    if args.limit > MAX_LIMIT or args.offset < 0:
        return fail("members", CommandFailed(f"--limit must be 1..{MAX_LIMIT}, --offset >= 0"))
    try:
        engine = store_engine(config)
        try:
            campaign = find_campaign(engine, config, args.campaign)
            page = MemberStore(engine).list(
                campaign.id, status=args.status, offset=args.offset, limit=args.limit
            )
        finally:
            engine.dispose()
    except CommandFailed as exc:
        return fail("members", exc)
    if args.format == "json":
        body = {"total": page.total, "offset": page.offset,
                "members": [member_json(r) for r in page.members]}  # fmt: skip
        print(json.dumps(body, indent=2, ensure_ascii=False))
        return 0
    if args.format == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["id", "name", "status", "ended_with", "attempts", "next_call_at",
                         "numbers"])  # fmt: skip
        for r in page.members:
            next_call = _when(r.state.next_call_at)
            writer.writerow([r.member_id, r.name, r.status, r.state.ended_with or "",
                             r.state.attempts, next_call, _numbers(r)])  # fmt: skip
        sys.stdout.write(out.getvalue())
        return 0
    shown = f"{page.offset + 1}-{page.offset + len(page.members)}" if page.members else "none"
    title = f'campaign "{campaign.name}": members {shown} of {page.total}'
    if args.status:
        title += f" ({args.status})"
    table = Table(box=box.SIMPLE_HEAD, title=title, title_justify="left")
    for column, justify in (("id", "right"), ("name", "left"), ("status", "left"),
                            ("ended with", "left"), ("attempts", "right"),
                            ("next call (UTC)", "left"), ("numbers", "left")):  # fmt: skip
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for r in page.members:
        table.add_row(str(r.member_id), r.name, r.status, r.state.ended_with or "",
                      str(r.state.attempts), _when(r.state.next_call_at), _numbers(r))  # fmt: skip
    Console(highlight=False).print(table)
    return 0
