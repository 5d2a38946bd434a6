"""Definitions from the TOML file into the store: insert/update by key, stable ids."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine
from storeutil import at

from sipdialer.config import parse_config
from sipdialer.store.schema import calendars, campaigns
from sipdialer.store.sync import (
    SyncError,
    load_agents,
    load_campaigns,
    release_agents,
    save_agent,
    set_campaign_state,
    sync_config,
)

BASE = """
[[agents]]
id = "101"
name = "Alice"
password = "x"

[[calendars]]
name = "office"
timezone = "Europe/Kyiv"
holidays = [2026-12-25]
week = { mon = ["09:00-13:00", "14:00-18:00"] }

[[campaigns]]
name = "reminders"
calendar = "office"
limit = 4
agents = ["101"]
{extra}
"""


def config(extra: str = "", **replace: str) -> str:
    text = BASE.replace("{extra}", extra)
    for old, new in replace.items():
        text = text.replace(old, new)
    return text


def test_insert_then_update_keeps_generated_id_and_runtime_state(engine: Engine) -> None:
    first = sync_config(engine, parse_config(config()), initial_state="stopped")
    cid = first.campaign_ids["reminders"]
    assert len(cid) == 24 and int(cid, 16) >= 0
    assert set(first.added) == {"agent 101", "calendar office", "campaign reminders"}
    set_campaign_state(engine, cid, "running")
    save_agent(engine, "101", status="Available", state="Talking", node="n1",
               no_answer_count=2, calls=7, idle_since=at(0))  # fmt: skip
    second = sync_config(engine, parse_config(config(**{"limit = 4": "limit = 9",
                                                        '"Alice"': '"Alice B"'})))  # fmt: skip
    assert second.campaign_ids == {"reminders": cid} and second.added == ()
    (row,) = load_campaigns(engine)
    assert (row.id, row.state, row.line_limit, row.configured) == (cid, "running", 9, True)
    agent = load_agents(engine)["101"]
    assert (agent.name, agent.status, agent.state, agent.calls, agent.idle_since) == (
        "Alice B",
        "Available",
        "Talking",
        7,
        at(0),
    )
    assert release_agents(engine, "n1") == 1
    assert load_agents(engine)["101"].state == "Waiting"
    with engine.connect() as connection:
        cal = connection.execute(select(calendars)).one()._mapping
        causes = connection.execute(select(campaigns.c.causes)).scalar_one()
    assert cal["holidays"] == ["2026-12-25"] and cal["week"]["mon"] == ["09:00-13:00",
                                                                         "14:00-18:00"]  # fmt: skip
    assert "NORMAL_CLEARING" in causes["ok"]  # the effective (default) lists are stored


def test_file_id_rename_conflict_and_removal(engine: Engine) -> None:
    given = "0123456789abcdef01234567"
    name = 'name = "reminders"'
    sync_config(engine, parse_config(config(**{name: f'{name}\nid = "{given}"'})))
    renamed = sync_config(
        engine, parse_config(config(**{name: f'name = "renamed"\nid = "{given}"'}))
    )
    assert renamed.campaign_ids == {"renamed": given}
    assert [c.name for c in load_campaigns(engine)] == ["renamed"]
    with pytest.raises(SyncError, match="the store has " + given):
        other = 'name = "renamed"\nid = "ffffffffffffffffffffffff"'
        sync_config(engine, parse_config(config(**{name: other})))
    gone = sync_config(engine, parse_config(config(**{'name = "reminders"': 'name = "fresh"'})))
    assert "campaign renamed" in gone.unconfigured
    rows = {c.name: c for c in load_campaigns(engine)}
    assert rows["renamed"].configured is False and rows["fresh"].configured is True
    with pytest.raises(ValueError):
        set_campaign_state(engine, given, "paused")
    with pytest.raises(KeyError):
        set_campaign_state(engine, "f" * 24, "running")


def test_two_nodes_syncing_at_once_agree_on_the_generated_id(url: str) -> None:
    """Nodes start at once with an empty ``id`` in the file, round after round with a new
    campaign: each round one id comes out for all of them, and no error."""
    import threading

    from sipdialer.store.db import open_engine
    from sipdialer.store.migrations import migrate

    engines = [open_engine(url) for _ in range(3)]
    migrate(engines[0])
    rounds = 8
    ids: list[list[str]] = [[] for _ in range(rounds)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(engines))

    def start(engine: Engine) -> None:
        try:
            for n in range(rounds):
                text = config(**{'name = "reminders"': f'name = "campaign{n}"'})
                barrier.wait()
                ids[n].append(sync_config(engine, parse_config(text)).campaign_ids[f"campaign{n}"])
        except BaseException as exc:  # reported below
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=start, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    for engine in engines:
        engine.dispose()
    assert not errors
    assert all(len(got) == len(engines) and len(set(got)) == 1 for got in ids)
