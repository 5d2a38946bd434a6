"""Helpers of the store tests (fixtures in ``conftest.py``)."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from sipdialer.config import parse_config
from sipdialer.store.sync import sync_config

PG_URL = os.environ.get("SIPDIALER_TEST_PG_URL", "")
needs_pg = pytest.mark.skipif(not PG_URL, reason="SIPDIALER_TEST_PG_URL is not set")

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'store.db'}"


CONFIG = """
[[calendars]]
name = "office"

[[campaigns]]
name = "reminders"
calendar = "office"

[[campaigns]]
name = "other"
calendar = "office"
"""


def campaign_ids(engine: Engine) -> dict[str, str]:
    """Sync the small test file; name -> campaign id."""
    return dict(sync_config(engine, parse_config(CONFIG)).campaign_ids)
