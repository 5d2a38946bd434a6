"""What the store-reading commands share: open the store of a config, find a campaign.

``import``, ``members`` and ``report`` work on ``[store] url`` directly (the dialer need not
run). A campaign is named on the command line by its name or its 24-hex id. The store is
the truth for ``members`` and ``report`` (a campaign removed from the file keeps its
members and attempts there); ``import`` also accepts a campaign of the file that the store
does not have yet, and copies the file's definitions in first (``store.sync``), exactly as
``sipdialer run`` does at start.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from sipdialer.config import Config
from sipdialer.store.migrations import open_store
from sipdialer.store.sync import CampaignRow, SyncError, load_campaigns, sync_config


class CommandFailed(Exception):
    """A command cannot go on; the message says why (printed, exit status 2)."""


@dataclass(frozen=True)
class Campaign:
    id: str
    name: str
    state: str


def store_engine(config: Config) -> Engine:
    """The migrated store of ``config``; CommandFailed when it cannot be opened."""
    try:
        return open_store(config.store.url)
    except (SQLAlchemyError, OSError) as exc:
        raise CommandFailed(f"cannot open the store {config.store.url}: {exc}") from None


def _match(rows: list[CampaignRow], wanted: str) -> CampaignRow | None:
    for row in rows:
        if row.name == wanted or row.id == wanted.lower():
            return row
    return None


def find_campaign(engine: Engine, config: Config, wanted: str, *, create: bool = False) -> Campaign:
    """The campaign named (or with the id) ``wanted``: from the store, else, with
    ``create``, from the file after a sync. CommandFailed names the known campaigns."""
    rows = load_campaigns(engine)
    row = _match(rows, wanted)
    if row is None and create and _in_file(config, wanted):
        try:
            sync_config(engine, config)
        except SyncError as exc:  # the file and the store disagree (a changed campaign id)
            raise CommandFailed(f"the configuration does not match the store: {exc}") from None
        row = _match(load_campaigns(engine), wanted)
    if row is not None:
        return Campaign(row.id, row.name, row.state)
    known = sorted({r.name for r in rows} | {c.name for c in config.campaigns})
    if _in_file(config, wanted):
        raise CommandFailed(
            f'campaign "{wanted}" is not in the store yet (no members imported, dialer never'
            " run with this store)"
        )
    listed = ", ".join(f'"{name}"' for name in known) or "none"
    raise CommandFailed(f'no campaign "{wanted}" (campaigns: {listed})')


def _in_file(config: Config, wanted: str) -> bool:
    try:
        config.campaign(wanted)
    except KeyError:
        return False
    return True


def fail(command: str, exc: CommandFailed) -> int:
    print(f"sipdialer {command}: {exc}", file=sys.stderr)
    return 2
