"""``sipdialer import``: members from a CSV file into a campaign of the store.

Theory of operation
-------------------
:func:`import_members` is the whole job and does not print: the reader
(:mod:`sipdialer.importer`) yields batches of at most 1,000 rows with every refused row's
line and reason; each batch's accepted members go to ``MemberStore.add_many`` in one
transaction. The store refuses a member one of whose numbers the campaign already has, so
a re-import of the same file (or of an overlapping one) adds nothing twice: those rows are
counted as *already in the campaign*, apart from the rows the file itself got wrong. The
REST API's CSV import can call it too (it takes the file's bytes as ``source``).

The options are the reader's; an ``expire`` column's date format is part of ``--map``
(``expire:DD.MM.YYYY=3``, :mod:`sipdialer.importer.dates`), so the command and the API
take the same map. The command (:func:`run`) shows a progress bar (bytes read) on a
terminal, then one summary line on stdout and every refused row on stderr, ``line N:
reason``, with the line number a text editor shows (the header is line 1).

Exit status (decision): **0 when the file was read**, even if some rows were refused: the
good rows are in the campaign and the refused ones are listed, so that fixing them and
importing the same file again adds just those (a status of 1 for "some rows refused" would
make every re-import of a mostly good file look like a failure). ``--strict`` makes refused
rows exit 3, for scripts that want all or nothing to be *noticed* (the good rows are still
imported). 1 is an invalid configuration, 2 a command that cannot run: unknown campaign,
unreadable file, a map naming a column the header lacks.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

from sipdialer.cli_common import CommandFailed, fail, find_campaign, store_engine
from sipdialer.config import Config
from sipdialer.importer import ColumnMap, ImportBatch, RowError, Source, iter_members
from sipdialer.store.member_rows import NewMember
from sipdialer.store.members import MemberStore

EXIT_REFUSED = 3
"""``--strict`` and some rows were refused (the good ones were imported)."""
BATCH = 1000
ALREADY_SHOWN = 5
"""Rows already in the campaign that the summary names (the rest are only counted)."""


@dataclass
class ImportOutcome:
    """What an import did; ``refused`` are the file's bad rows, ``already`` the rows whose
    member (a number of it) the campaign has already: ``(line, reason)``."""

    rows: int = 0
    added: int = 0
    refused: list[RowError] = field(default_factory=list)
    already: list[RowError] = field(default_factory=list)
    member_ids: list[int] = field(default_factory=list)

    def summary(self) -> str:
        rows = f"{self.rows} row" + ("" if self.rows == 1 else "s")
        return (
            f"{rows} read: {self.added} added, {len(self.already)} already in the campaign,"
            f" {len(self.refused)} refused"
        )


def import_members(
    members: MemberStore,
    campaign_id: str,
    source: Source,
    *,
    encoding: str = "utf-8",
    delimiter: str = ",",
    skip_header: bool = False,
    mapping: str | Mapping[str, object] | ColumnMap = "name=0,number=1",
    on_batch: Callable[[ImportBatch], None] | None = None,
) -> ImportOutcome:
    """Read ``source`` and add its good rows to the campaign (see the module docstring).

    Raises ValueError (MappingError) for a bad encoding, delimiter or map, OSError when
    the file cannot be read; row problems are in the outcome, never raised."""
    outcome = ImportOutcome()
    batches = iter_members(
        source, encoding=encoding, delimiter=delimiter, skip_header=skip_header,
        mapping=mapping, batch=BATCH,
    )  # fmt: skip
    for batch in batches:
        outcome.rows += batch.rows
        outcome.refused.extend(batch.errors)
        new = [
            NewMember(
                numbers=m.member.numbers(),
                name=m.member.name,
                priority=m.member.priority,
                timezone=m.member.timezone,
                variables=m.member.variables,
                expire=m.member.expire,
            )  # fmt: skip
            for m in batch.members
        ]
        if new:
            report = members.add_many(campaign_id, new)
            outcome.added += len(report.added)
            outcome.member_ids.extend(report.added)
            for refused in report.refused:
                outcome.already.append(RowError(batch.members[refused.index].line, refused.reason))
        if on_batch is not None:
            on_batch(batch)
    outcome.refused.sort(key=lambda error: error.line)
    return outcome


def _size(path: str) -> int | None:
    try:
        return os.path.getsize(path)
    except OSError:
        return None


def run(config: Config, args: argparse.Namespace) -> int:
    """The ``import`` command (arguments as cli.py defines them)."""
    path: str = args.csv
    if not os.path.isfile(path):
        return fail("import", CommandFailed(f"{path}: no such file"))
    try:
        engine = store_engine(config)
        campaign = find_campaign(engine, config, args.campaign, create=True)
    except CommandFailed as exc:
        return fail("import", exc)
    err = Console(stderr=True, highlight=False)
    size = _size(path)
    progress = Progress(
        TextColumn("importing {task.fields[name]}"), BarColumn(), DownloadColumn(),
        TimeRemainingColumn(), console=err, transient=True,
        disable=not err.is_terminal or not size,
    )  # fmt: skip
    try:
        with progress:
            task = progress.add_task("import", total=size, name=os.path.basename(path))
            outcome = import_members(
                MemberStore(engine), campaign.id, path, encoding=args.encoding,
                delimiter=args.delimiter, skip_header=args.skip_header, mapping=args.map,
                on_batch=lambda batch: progress.update(task, completed=batch.bytes_read),
            )  # fmt: skip
    except OSError as exc:
        return fail("import", CommandFailed(f"{path}: cannot read: {exc.strerror or exc}"))
    except ValueError as exc:  # MappingError: a column name the header lacks, a narrow file
        return fail("import", CommandFailed(f"{path}: {exc}"))
    finally:
        engine.dispose()
    for error in outcome.refused:
        print(f"{path}: {error}", file=sys.stderr)
    print(f'{path} -> campaign "{campaign.name}": {outcome.summary()}')
    for error in outcome.already[:ALREADY_SHOWN]:
        print(f"  already there: {error}")
    if len(outcome.already) > ALREADY_SHOWN:
        print(f"  ... and {len(outcome.already) - ALREADY_SHOWN} more already there")
    if outcome.refused and args.strict:
        return EXIT_REFUSED
    return 0
