"""The dashboard and the agent console in headless Chromium (Debian's ``/usr/bin/chromium``
driven by Playwright; no browser is downloaded), during real campaigns: PhoneSystem +
DialerRunner + the API on uvicorn + SimTrunk + SimPhones, all SIP/RTP on 127.0.0.1.

A screenshot of each page goes to ``tests/artifacts/`` (not committed; CI keeps it).
"""

from __future__ import annotations

import asyncio
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from dashrig import KEY, TOKEN, WRAP_UP, Rig, running_dialer, until
from pagerig import BROWSER_MARKS, browser, screenshot

from sipdialer.dialer.agents import AgentStatus

pytest.importorskip("playwright.async_api")

pytestmark = BROWSER_MARKS
__all__ = ["browser"]  # the fixture (pagerig), taken by the tests below

# Records, in the page, every state an agent row shows and every "done" count a campaign
# card shows: the test then knows what the supervisor saw, not just the end state.
OBSERVER = """(campaign) => {
  window.seen = {states: {}, done: [], calls: 0};
  const record = () => {
    for (const row of document.querySelectorAll("#agents tr[data-agent]")) {
      const id = row.dataset.agent, state = row.querySelector(".state").textContent;
      (window.seen.states[id] = window.seen.states[id] || []).push(state);
    }
    const cell = document.querySelector(`[data-campaign="${campaign}"] .done`);
    const value = Number(cell.textContent);
    if (window.seen.done[window.seen.done.length - 1] !== value) window.seen.done.push(value);
    const calls = document.querySelectorAll("#calls tr[data-call]").length;
    window.seen.calls = Math.max(window.seen.calls, calls);
  };
  const what = {subtree: true, childList: true, characterData: true};
  new MutationObserver(record).observe(document.body, what);
  record();
}"""


async def new_page(browser: Any) -> tuple[Any, list[str]]:
    """A page, and the list its uncaught script errors go to (asserted empty at the end)."""
    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    return page, errors


async def set_status(rig: Rig, agent: str, status: str) -> None:
    reply = await rig.client.put(f"/api/v2/agents/{agent}/status", json={"status": status})
    assert reply.status_code == 200, reply.text


async def test_dashboard_shows_a_campaign_live(tmp_path: Path, browser: Any) -> None:
    async with running_dialer(tmp_path) as rig:
        demo = rig.campaign("demo")
        numbers = ["1001", "1002", "1003", "1004", "1005", "1006", "2001", "2002", "3001"]
        await rig.add_members("demo", [
            {"name": f"Member {n}", "communications": [{"number": n}]} for n in numbers
        ])  # fmt: skip
        for agent in ("101", "102", "103"):
            await set_status(rig, agent, "Available")
        page, errors = await new_page(browser)
        await page.goto(rig.base + "/")
        await page.fill("#token", TOKEN)
        await page.fill("#key", KEY)
        await page.click("#login button[type=submit]")
        card = page.locator(f'[data-campaign="{demo}"]')
        await card.locator(".total", has_text="9").wait_for(timeout=5000)
        assert await card.locator(".state").text_content() == "stopped"
        row = page.locator('#agents tr[data-agent="101"]')
        assert await row.locator(".registered").text_content() == "registered"
        assert await page.locator('#agents tr[data-agent="201"] .registered').text_content() == (
            "unregistered"
        )
        await page.evaluate(OBSERVER, demo)

        # A change reaches the page within a second (no polling: the stream pushes it).
        started = time.perf_counter()
        await set_status(rig, "103", "Break")
        await page.locator('#agents tr[data-agent="103"] .status', has_text="Break").wait_for(
            timeout=1000
        )
        latency = time.perf_counter() - started
        assert latency < 1.0
        await set_status(rig, "103", "Available")

        # Run, through the REST API from the page's button; then stop and run again.
        await card.locator("[data-action=run]").click()
        await card.locator(".state", has_text="running").wait_for(timeout=3000)
        await page.locator("#calls tr[data-call]").first.wait_for(timeout=5000)
        await screenshot(page, "dashboard.png")
        await card.locator("[data-action=stop]").click()
        await card.locator(".state", has_text="stopped").wait_for(timeout=3000)
        assert rig.runner.campaign_view(demo).state == "stopped"
        await card.locator("[data-action=run]").click()
        await card.locator(".state", has_text="running").wait_for(timeout=3000)

        # Every member is done in the end; the page followed the counters on the way.
        await card.locator(".done", has_text="9").wait_for(timeout=30000)
        await page.locator("#call-count", has_text="0").wait_for(timeout=5000)
        seen = await page.evaluate("window.seen")
        assert len(seen["done"]) >= 4, seen["done"]  # 0, ..., 9 in several steps
        assert seen["done"] == sorted(seen["done"])
        assert seen["calls"] >= 1
        states = {state for agent in ("101", "102", "103") for state in seen["states"][agent]}
        assert {"Waiting", "Ringing", "Talking"} <= states, states
        # The causes shown are the store's.
        counts = rig.runner.members.counts(demo)
        assert counts["ended"] == 9
        ended = rig.runner.members.list(demo, status="ended").members
        causes: dict[str, int] = {}
        for member in ended:
            assert member.state.ended_with is not None
            causes[member.state.ended_with] = causes.get(member.state.ended_with, 0) + 1
        shown = await card.locator(".causes [data-cause]").all_text_contents()
        assert sorted(shown) == sorted(f"{cause}: {n}" for cause, n in causes.items())
        await screenshot(page, "dashboard_done.png")
        assert errors == []
        print(f"dashboard: Break shown {latency * 1000:.0f} ms after the REST call")


def member_of(rig: Rig, name: str) -> Any:
    page = rig.runner.members.list(rig.campaign("wfr"), name=name)
    assert len(page.members) == 1
    return page.members[0]


async def test_console_pops_the_card_and_takes_the_result(tmp_path: Path, browser: Any) -> None:
    async with running_dialer(tmp_path, phones=("201",), answer_after=1.0) as rig:
        await rig.add_members("wfr", [
            {"name": "Ann Example", "priority": 5, "variables": {"plan": "gold", "city": "Kyiv"},
             "communications": [{"number": "1001"}, {"number": "1091"}]},
            {"name": "Bob Example", "variables": {"plan": "gold", "city": "Kyiv"},
             "communications": [{"number": "1002"}, {"number": "1092"}]},
        ])  # fmt: skip
        page, errors = await new_page(browser)
        await page.goto(rig.base + "/agent")
        await page.fill("#extension", "201")
        await page.fill("#password", "wrong")
        await page.click("#login button[type=submit]")
        await page.locator("#login-error", has_text="Wrong").wait_for(timeout=3000)
        await page.fill("#password", "pw201")
        await page.click("#login button[type=submit]")
        await page.locator("#who", has_text="201").wait_for(timeout=3000)
        await page.click("button[data-status=Available]")
        await until(lambda: rig.system.agents["201"].status is AgentStatus.AVAILABLE, 3)
        await page.locator("#status", has_text="Available").wait_for(timeout=2000)

        reply = await rig.client.put("/api/v2/dialer/wfr/state/run")
        assert reply.status_code == 200, reply.text
        # The card is there while the phone rings (it answers after 1 s).
        await page.locator("#member-name", has_text="Ann Example").wait_for(timeout=5000)
        shown_at = asyncio.get_running_loop().time()
        await page.locator("#state", has_text="Ringing").wait_for(timeout=1000)
        phone_calls = rig.phones["201"].calls
        assert len(phone_calls) == 1 and phone_calls[0].answered_at is None  # still ringing
        print(f"console: card shown {(shown_at - phone_calls[0].started_at) * 1000:.0f} ms"
              " after the INVITE reached the phone")  # fmt: skip
        assert await page.locator("#member-number").text_content() == "1001"
        assert await page.locator('[data-variable="plan"] td').text_content() == "gold"
        assert await page.locator("#attempts tr").count() == 1

        # After the call the campaign waits for the result: the form counts down.
        await page.locator("#result").wait_for(state="visible", timeout=10000)
        first = await page.locator("#countdown").text_content()
        assert first is not None and re.fullmatch(r"\d+:\d\d left", first), first
        await asyncio.sleep(1.2)
        second = await page.locator("#countdown").text_content()
        assert second is not None and second != first
        seconds = int(second.split(":")[0]) * 60 + int(second.split(":")[1].split()[0])
        assert 0 < seconds < WRAP_UP
        await screenshot(page, "agent.png")
        ann = member_of(rig, "Ann Example")
        assert ann.status == "waiting"

        await page.check("input[name=outcome][value=retry]")
        await page.fill("#next-after", "120")
        await page.fill("#next-number", "1093")
        await page.check('#stop-numbers input[value="1091"]')
        await page.fill("#comment", "call back tomorrow")
        await page.click("#result button[type=submit]")
        await page.locator("#result-done").wait_for(state="visible", timeout=3000)
        ann_at = datetime.now(UTC)
        ann = await until(lambda: (m := member_of(rig, "Ann Example")).status != "waiting" and m)

        # The next member goes to the same agent; its result comes by the REST API, with the
        # same body: both members must end up the same.
        await until(lambda: member_of(rig, "Bob Example").status == "waiting", 15)
        bob_id = member_of(rig, "Bob Example").member_id
        await page.locator("#member-name", has_text="Bob Example").wait_for(timeout=3000)
        reply = await rig.client.put(f"/api/v2/dialer/wfr/members/{bob_id}/status", json={
            "next_after_sec": 120, "next_communication": "1094",
            "stop_communications": ["1092"], "comment": "call back tomorrow",
        })  # fmt: skip
        assert reply.status_code in (200, 204), reply.text
        bob_at = datetime.now(UTC)
        bob = await until(lambda: (m := member_of(rig, "Bob Example")).status != "waiting" and m)
        # The console follows: Bob's card shows him ready, the agent waiting for the next.
        await page.locator("#member-status", has_text="ready").wait_for(timeout=3000)
        await page.locator("#state", has_text="Waiting").wait_for(timeout=3000)

        assert ann.status == bob.status == "ready"
        assert ann.state.attempts == bob.state.attempts
        assert ann.state.ended_with is bob.state.ended_with is None

        def shape(member: Any) -> list[tuple[bool, int, int]]:
            return [(n.active, n.attempts, n.priority) for n in member.state.numbers]

        assert shape(ann) == shape(bob)
        numbers = {n.number: n for n in ann.state.numbers}
        assert not numbers["1091"].active and numbers["1001"].active
        assert numbers["1093"].active
        assert numbers["1093"].priority > max(numbers[n].priority for n in ("1001", "1091"))
        assert ann.state.next_call_at is not None and bob.state.next_call_at is not None
        assert abs((ann.state.next_call_at - ann_at).total_seconds() - 120) < 3
        assert abs((bob.state.next_call_at - bob_at).total_seconds() - 120) < 3
        ann_attempt = rig.runner.attempts.for_member(ann.member_id)[-1]
        bob_attempt = rig.runner.attempts.for_member(bob.member_id)[-1]
        for field in ("disposition", "counted"):
            assert getattr(ann_attempt, field) == getattr(bob_attempt, field), field
        assert ann_attempt.row["comment"] == bob_attempt.row["comment"] == "call back tomorrow"
        ann_result, bob_result = dict(ann_attempt.row["result"]), dict(bob_attempt.row["result"])
        assert ann_result.pop("next_communication") == "1093"
        assert bob_result.pop("next_communication") == "1094"
        assert ann_result.pop("stop_communications") == ["1091"]
        assert bob_result.pop("stop_communications") == ["1092"]
        assert ann_result == bob_result
        await screenshot(page, "agent_after.png")
        assert errors == []
