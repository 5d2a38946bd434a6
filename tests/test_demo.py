"""``sipdialer demo`` as a visitor runs it: a real child process, real SIP/RTP on 127.0.0.1.

Its JSON summary is checked against the SQLite store it kept (``--store``), read with the
store's own API: every member in exactly one final state, the attempts it reports are the
attempts recorded (by cause, counted), and per member the attempt records add up to its
counter. SLOW: the SIP run takes ~25-30 s (retries wait 2 s, a no-answer rings 4 s, three
tries each); the ``--fast`` (virtual time) run ~2 s. The pure parts (the members' mix, the
audit) are tested at the end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from sipdialer.demo import (
    MIX,
    AuditAttempt,
    MemberFacts,
    audit,
    demo_config,
    demo_members,
    kinds_by_number,
)
from sipdialer.report import AttemptFacts
from sipdialer.store.attempts import AttemptStore
from sipdialer.store.members import MemberStore
from sipdialer.store.migrations import open_store
from sipdialer.store.sync import load_campaigns

ROOT = Path(__file__).resolve().parent.parent
AGENTS, MEMBERS = 4, 12


def demo(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "sipdialer", "demo", *args],
        capture_output=True, text=True, env=env, timeout=timeout, check=False, cwd=ROOT,
    )  # fmt: skip


def check_summary(body: dict[str, Any], members: int) -> None:
    """What the summary says must add up on its own."""
    assert body["ok"] and body["finished"]
    assert body["audit"]["problems"] == [] and body["audit"]["unexpected"] == []
    report = body["report"]
    assert report["members"]["total"] == members
    assert report["members"]["by_status"]["ended"] == members
    assert sum(report["members"]["ended_with"].values()) == members
    attempts = report["attempts"]
    assert sum(c["attempts"] for c in attempts["by_cause"]) == attempts["total"]
    assert sum(c["counted"] for c in attempts["by_cause"]) == attempts["counted"]
    assert attempts["in_flight"] == 0
    assert body["audit"]["counted"] == body["audit"]["member_counters"] == attempts["counted"]
    # Every kind of the mix met, each as its row says.
    assert set(body["audit"]["by_kind"]) == {kind.key for kind in MIX[:members]}
    for kind in MIX[:members]:
        assert set(body["audit"]["by_kind"][kind.key]) == {kind.expect}, kind.key


@pytest.mark.timeout(150)
def test_demo_over_sip_adds_up_against_its_store(tmp_path: Path) -> None:
    store = tmp_path / "demo.db"
    summary = tmp_path / "demo.json"
    child = demo("--agents", str(AGENTS), "--members", str(MEMBERS), "--store", str(store),
                 "--json", str(summary), timeout=140)  # fmt: skip
    assert child.returncode == 0, child.stdout[-3000:] + child.stderr[-3000:]
    body = json.loads(summary.read_text())
    assert body["mode"] == "sip" and body["campaign_seconds"] < 60
    check_summary(body, MEMBERS)

    # Off a terminal the demo is a call log: one line per attempt, then the checks.
    lines = child.stdout.splitlines()
    calls = [line for line in lines if "] agent " in line]
    assert len(calls) == body["report"]["attempts"]["total"]
    assert any(
        line.startswith("  ok  every member is in exactly one final state") for line in lines
    )
    assert (tmp_path / "demo.toml").exists()

    # The store, read back with the store's API.
    engine = open_store(f"sqlite:///{store}")
    try:
        (campaign,) = load_campaigns(engine)
        assert (campaign.name, campaign.state) == ("demo", "finished")
        page = MemberStore(engine).list(campaign.id, limit=1000)
        records = AttemptStore(engine).for_campaign(campaign.id, limit=10_000)
    finally:
        engine.dispose()
    assert page.total == MEMBERS
    for member in page.members:  # exactly one final state
        assert member.status == "ended" and member.state.ended_with is not None
        assert member.state.next_call_at is None and member.lease_owner is None
        assert not member.state.waiting
    ended = Counter(m.state.ended_with for m in page.members)
    assert dict(ended) == body["report"]["members"]["ended_with"]
    assert all(r.state == "ended" for r in records)
    assert len(records) == body["report"]["attempts"]["total"]
    assert dict(Counter(r.cause for r in records)) == {
        c["cause"]: c["attempts"] for c in body["report"]["attempts"]["by_cause"]
    }
    counted: Counter[int] = Counter()
    for record in records:
        counted[record.member_id] += record.counted
    assert {m.member_id: m.state.attempts for m in page.members} == {
        m.member_id: counted[m.member_id] for m in page.members
    }
    assert sum(counted.values()) == body["report"]["attempts"]["counted"]
    talk = sum(float(r.row["talk_seconds"]) for r in records)
    assert talk == pytest.approx(body["report"]["attempts"]["talk_seconds"], abs=0.01)
    bridged = [r for r in records if r.row["bridged_at"] is not None]
    assert len(bridged) == body["report"]["attempts"]["bridged"] > 0
    # Successes talked at least min_success_duration (3 s); the short calls (2 s) did not.
    for record in bridged:
        assert (record.disposition == "ok") == (float(record.row["talk_seconds"]) >= 3.0)


def test_demo_fast_in_virtual_time() -> None:
    child = demo("--fast", "--agents", "5", "--members", "300", "--json", "-", timeout=60)
    assert child.returncode == 0, child.stderr[-3000:]
    body = json.loads(child.stdout)  # the screen went to stderr
    assert body["mode"] == "virtual" and body["store"] is None
    check_summary(body, 300)
    assert "checks" in child.stderr


def test_a_kept_store_must_be_new(tmp_path: Path) -> None:
    store = tmp_path / "old.db"
    store.write_bytes(b"")
    child = demo("--store", str(store), timeout=30)
    assert child.returncode == 2
    assert "exists: the demo wants a new store" in child.stderr


# --- the pure parts ---------------------------------------------------------------------------


def test_members_mix() -> None:
    members = demo_members(40, seed=3)
    assert len(members) == 40
    assert {m.kind.key for m in members} == {k.key for k in MIX}  # every kind at least once
    numbers = [n for m in members for n in m.numbers]
    assert len(numbers) == len(set(numbers))
    assert all(n.startswith(p) for m in members for n, p in zip(m.numbers, m.kind.prefixes,
                                                                 strict=True))  # fmt: skip
    assert not any(n.startswith("7") for n in numbers)  # 503 is Minus: it never ends a member
    assert demo_members(40, seed=3) == members and demo_members(40, seed=4) != members
    assert [m.kind.key for m in demo_members(3)] != []


def test_demo_config_is_a_valid_office() -> None:
    config = demo_config(3, store_url="sqlite://", trunk_port=5080, rtp_ports="30000-30199")
    assert [a.id for a in config.agents] == ["101", "102", "103"]
    campaign = config.campaign("demo")
    assert campaign.limit == 3 and campaign.max_retries == 3
    assert config.route_for("15550001") is not None
    assert config.trunk("sim").address == "127.0.0.1:5080"


def test_the_audit_finds_what_does_not_add_up() -> None:
    members = demo_members(2)
    kinds = kinds_by_number(members)
    first, second = (m.numbers[0] for m in members)
    ok = AttemptFacts("NORMAL_CLEARING", "ok", counted=1)
    good = audit(
        [MemberFacts(1, "ended", members[0].kind.expect, 1, False, first),
         MemberFacts(2, "ended", members[1].kind.expect, 1, False, second)],
        [AuditAttempt(1, ok, True), AuditAttempt(2, ok, True)],
        kinds,
    )  # fmt: skip
    assert good.ok and good.unexpected == [] and good.counted == good.member_counters == 2
    bad = audit(
        [MemberFacts(1, "ready", None, 1, True, first),
         MemberFacts(2, "ended", "NO_ANSWER", 2, False, second)],
        [AuditAttempt(1, ok, True), AuditAttempt(2, ok, False), AuditAttempt(9, ok, True)],
        kinds,
    )  # fmt: skip
    assert not bad.ok
    assert any("never ended" in p for p in bad.problems)
    assert any("member 1 is not in a final state" in p for p in bad.problems)
    assert any("member 2: its counter says 2 attempts" in p for p in bad.problems)
    assert any("unknown members [9]" in p for p in bad.problems)
    assert len(bad.unexpected) == 2
