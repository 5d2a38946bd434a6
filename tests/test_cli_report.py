"""sipdialer/report.py (pure totals and formats) and ``sipdialer report`` / ``members`` over
a real SQLite store whose attempts are written through the store's own API (lease, start,
release with the attempt's end), as the runner writes them."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from rich.console import Console

from sipdialer.cli import main
from sipdialer.config import load_config
from sipdialer.report import (
    CSV_COLUMNS,
    IN_FLIGHT,
    AttemptFacts,
    build_report,
    duration,
    render_table,
    to_csv,
    to_json,
)
from sipdialer.store.attempts import AttemptEnd, AttemptStore
from sipdialer.store.members import MemberStore
from sipdialer.store.migrations import open_store
from sipdialer.store.sync import sync_config

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


# --- the pure report ------------------------------------------------------------------------


def facts(cause: str | None, disposition: str | None, counted: int = 1, talk: float = 0.0,
          agent: str = "101") -> AttemptFacts:  # fmt: skip
    return AttemptFacts(cause, disposition, counted, talk, bridged=talk > 0, agent_id=agent)


ATTEMPTS = [
    facts("NORMAL_CLEARING", "ok", talk=42.0),
    facts("NORMAL_CLEARING", "retry", talk=3.0, agent="102"),  # too short: retried
    facts("USER_BUSY", "retry"),
    facts("USER_BUSY", "retry", agent="102"),
    facts("UNALLOCATED_NUMBER", "error"),
    facts("NO_ANSWER", "refund", counted=0, agent="102"),  # the agent leg failed
    facts(None, None, counted=0),  # in flight
]


def test_totals_by_cause_and_rates() -> None:
    report = build_report(
        "c1", "reminders", "running", {"ready": 1, "leased": 1, "waiting": 0, "ended": 3},
        {"NORMAL_CLEARING": 1, "MAX_TRY_COUNT": 1, "UNALLOCATED_NUMBER": 1, "NONE": 0},
        ATTEMPTS,
    )  # fmt: skip
    assert report.members == 5 and report.ended == 3 and report.successes == 1
    assert report.attempts == 7 and report.counted == 5 and report.in_flight == 1
    assert report.dialed == 5  # 7 - a refund - one in flight
    assert report.bridged == 2 and report.talk_seconds == 45.0
    assert report.success_rate == pytest.approx(1 / 3)
    assert report.answer_rate == pytest.approx(2 / 5)
    assert report.average_talk == 22.5
    assert [(c.cause, c.attempts, c.counted, c.bridged) for c in report.causes] == [
        ("NORMAL_CLEARING", 2, 2, 2),
        ("USER_BUSY", 2, 2, 0),
        (IN_FLIGHT, 1, 0, 0),
        ("NO_ANSWER", 1, 0, 0),
        ("UNALLOCATED_NUMBER", 1, 1, 0),
    ]
    assert report.causes[0].dispositions == {"ok": 1, "retry": 1}
    assert report.dispositions == {"ok": 1, "retry": 3, "error": 1, "refund": 1}
    assert "NONE" not in report.ended_with  # zero counts are dropped
    assert [(a.agent_id, a.attempts, a.bridged, a.talk_seconds) for a in report.agents] == [
        ("101", 4, 1, 42.0),
        ("102", 3, 1, 3.0),
    ]


def test_an_empty_campaign_has_no_rates() -> None:
    report = build_report("c1", "new", "stopped", {"ready": 2}, {}, [])
    assert (report.success_rate, report.answer_rate, report.average_talk) == (None, None, None)
    body = to_json(report)
    assert body["members"]["success_rate"] is None and body["attempts"]["by_cause"] == []
    assert to_csv(report).splitlines()[1] == "new,TOTAL,0,0,0,0.0,0,0,0,0,0,0,0"
    text = _text(report)
    assert "(no attempts yet)" in text and "(none ended yet)" in text


def _text(report: object) -> str:
    console = Console(record=True, width=120, file=io.StringIO())
    console.print(render_table(report))  # type: ignore[arg-type]
    return console.export_text()


def test_the_three_formats_agree() -> None:
    report = build_report("c1", "r", "finished", {"ended": 3}, {"NORMAL_CLEARING": 3}, ATTEMPTS)
    body = to_json(report)
    assert body["attempts"]["total"] == 7 and body["attempts"]["talk_seconds"] == 45.0
    assert body["members"]["success_rate"] == 1.0
    rows = list(csv.DictReader(io.StringIO(to_csv(report))))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [r["cause"] for r in rows] == [c["cause"] for c in body["attempts"]["by_cause"]] + [
        "TOTAL"
    ]
    assert rows[-1]["attempts"] == "7" and rows[-1]["retry"] == "3" and rows[-1]["ok"] == "1"
    assert sum(int(r["attempts"]) for r in rows[:-1]) == 7
    text = _text(report)
    for needle in ("USER_BUSY", "45.0s, 22.5s avg", "100.0%", "40.0%", "7 (5 counted)"):
        assert needle in text, needle


@pytest.mark.parametrize(
    ("seconds", "text"), [(0, "0.0s"), (59.94, "59.9s"), (75.2, "1m15s"), (3725, "1h02m05s")]
)
def test_duration(seconds: float, text: str) -> None:
    assert duration(seconds) == text


# --- the commands over a real store ---------------------------------------------------------


def make_store(folder: Path) -> tuple[Path, str]:
    """A config, its store, and a campaign whose attempts were recorded as the runner does:
    member 1 reached (talk 15 s), member 2 busy twice -> MAX_TRY_COUNT, member 3 a 404, member
    4 not dialed yet."""
    config = folder / "office.toml"
    config.write_text(
        f"""
[store]
url = "sqlite:///{folder / "office.db"}"
[[agents]]
id = "101"
password = "secret"
[[calendars]]
name = "office"
[[campaigns]]
name = "reminders"
calendar = "office"
agents = ["101"]
max_retries = 2
""",
        encoding="utf-8",
    )
    engine = open_store(load_config(config).store.url)
    campaign_id = sync_config(engine, load_config(config)).campaign_ids["reminders"]
    members, attempts = MemberStore(engine), AttemptStore(engine)
    for name, number in (("Ann", "1001"), ("Bob", "2002"), ("Cid", "5005")):
        members.add(campaign_id, [number], name=name)
    plan = [  # (cause, sip, talk, disposition, counted, member ends with)
        ("NORMAL_CLEARING", 200, 15.0, "ok", 1, "NORMAL_CLEARING"),
        ("USER_BUSY", 486, 0.0, "retry", 1, None),
        ("UNALLOCATED_NUMBER", 404, 0.0, "error", 1, "UNALLOCATED_NUMBER"),
        ("USER_BUSY", 486, 0.0, "retry", 1, "MAX_TRY_COUNT"),
    ]
    now = T0
    for n, (cause, sip, talk, disposition, counted, ends) in enumerate(plan):
        leased = members.lease_next(campaign_id, now, owner="node", zones=None)
        assert leased is not None
        number = leased.state.numbers[0].number
        call_id = f"call-{n}"
        attempts.start(call_id=call_id, campaign_id=campaign_id, member_id=leased.member_id,
                       number=number, owner="node", created_at=now, agent_id="101")  # fmt: skip
        bridged = now + timedelta(seconds=2) if talk else None
        end = AttemptEnd(call_id=call_id, ended_at=now + timedelta(seconds=3 + talk),
                         cause=cause, disposition=disposition, counted=counted, sip_code=sip,
                         bridged_at=bridged, talk_seconds=talk)  # fmt: skip
        state = replace(leased.state, attempts=leased.state.attempts + counted)
        if ends is not None:
            state = replace(state, ended_with=ends, next_call_at=None)
        elif cause == "USER_BUSY":  # Bob: due again after Cid (who is due "as soon as possible")
            state = replace(state, next_call_at=now)
        members.release(leased.member_id, state, owner="node", attempt=end, now=now)
        now += timedelta(minutes=1)
    members.add(campaign_id, ["1004"], name="Dan")
    engine.dispose()
    return config, campaign_id


@pytest.fixture
def office(tmp_path: Path) -> tuple[Path, str]:
    return make_store(tmp_path)


def test_report_json(office: tuple[Path, str], capsys: pytest.CaptureFixture[str]) -> None:
    config, campaign_id = office
    assert main(["report", "-c", str(config), "--campaign", "reminders", "--format", "json"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["campaign"] == {"id": campaign_id, "name": "reminders", "state": "running"}
    assert body["members"]["by_status"] == {"ready": 1, "leased": 0, "waiting": 0, "ended": 3}
    assert body["members"]["ended_with"] == {
        "MAX_TRY_COUNT": 1, "NORMAL_CLEARING": 1, "UNALLOCATED_NUMBER": 1,
    }  # fmt: skip
    assert body["members"]["success_rate"] == pytest.approx(1 / 3, abs=1e-4)
    attempts = body["attempts"]
    assert (attempts["total"], attempts["counted"], attempts["bridged"]) == (4, 4, 1)
    assert attempts["talk_seconds"] == 15.0 and attempts["answer_rate"] == 0.25
    assert [(c["cause"], c["attempts"]) for c in attempts["by_cause"]] == [
        ("USER_BUSY", 2), ("NORMAL_CLEARING", 1), ("UNALLOCATED_NUMBER", 1),
    ]  # fmt: skip
    assert body["agents"] == [{"id": "101", "attempts": 4, "bridged": 1, "talk_seconds": 15.0}]
    # By id as well as by name.
    assert main(["report", "-c", str(config), "--campaign", campaign_id, "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == body


def test_report_csv_and_table(office: tuple[Path, str], capsys: pytest.CaptureFixture[str]) -> None:
    config, _ = office
    assert main(["report", "-c", str(config), "--campaign", "reminders", "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [(r["cause"], r["attempts"], r["retry"]) for r in rows] == [
        ("USER_BUSY", "2", "2"), ("NORMAL_CLEARING", "1", "0"), ("UNALLOCATED_NUMBER", "1", "0"),
        ("TOTAL", "4", "2"),
    ]  # fmt: skip
    assert main(["report", "-c", str(config), "--campaign", "reminders"]) == 0
    out = capsys.readouterr().out
    assert "members by end cause" in out and "MAX_TRY_COUNT" in out and "33.3%" in out


def test_members_listing(office: tuple[Path, str], capsys: pytest.CaptureFixture[str]) -> None:
    config, _ = office
    argv = ["members", "-c", str(config), "--campaign", "reminders", "--format", "json"]
    assert main(argv) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["total"] == 4
    assert [(m["name"], m["status"], m["ended_with"], m["attempts"]) for m in body["members"]] == [
        ("Ann", "ended", "NORMAL_CLEARING", 1),
        ("Bob", "ended", "MAX_TRY_COUNT", 2),
        ("Cid", "ended", "UNALLOCATED_NUMBER", 1),
        ("Dan", "ready", None, 0),
    ]
    assert main([*argv, "--status", "ready"]) == 0
    assert [m["name"] for m in json.loads(capsys.readouterr().out)["members"]] == ["Dan"]
    assert main([*argv[:-2], "--limit", "2", "--offset", "1"]) == 0
    out = capsys.readouterr().out
    assert 'campaign "reminders": members 2-3 of 4' in out and "Bob" in out and "Dan" not in out
    assert main([*argv[:-2], "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [(r["name"], r["numbers"]) for r in rows][:2] == [("Ann", "1001"), ("Bob", "2002")]


def test_unknown_campaigns(office: tuple[Path, str], capsys: pytest.CaptureFixture[str]) -> None:
    config, _ = office
    for command in ("report", "members"):
        assert main([command, "-c", str(config), "--campaign", "nope"]) == 2
        err = capsys.readouterr().err
        assert err == f'sipdialer {command}: no campaign "nope" (campaigns: "reminders")\n'


def test_members_limit_is_bounded(
    office: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    config, _ = office
    assert main(["members", "-c", str(config), "--campaign", "reminders", "--limit", "10001"]) == 2
    assert "--limit must be 1..10000" in capsys.readouterr().err
