"""A campaign that finished by itself, on the campaign page in headless Chromium.

Dialer-semantics §5: a campaign with no member left to dial stops by itself (``finished``).
Resetting a member of it, or adding one, does not restart it (placing calls stays the
manager's decision), so the page says the campaign is finished and offers "Start
campaign" (``PUT .../state/run``), which must dial the members that are waiting; the Add
form's "run after adding" must start it too. All on the whole running dialer of
:mod:`dashrig` (real SIP on loopback, the simulated trunk answering 1xxx numbers).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from dashrig import Rig, running_dialer, until
from pagerig import BROWSER_MARKS, browser, campaign_page, members_of, screenshot

pytestmark = BROWSER_MARKS
__all__ = ["browser"]  # the fixture, taken by the test below


def attempts(rig: Rig, member_id: int) -> list[Any]:
    return list(rig.runner.attempts.for_member(member_id))


def finished(rig: Rig) -> bool:
    return rig.runner.campaign_view(rig.campaign("demo")).state == "finished"


async def test_a_finished_campaign_says_so_and_starts_again(tmp_path: Path, browser: Any) -> None:
    async with running_dialer(tmp_path, ports=60400) as rig:
        demo = rig.campaign("demo")
        await rig.add_members("demo", [{"name": "Ann", "communications": [{"number": "1001"}]}])
        for agent in ("101", "102", "103"):
            reply = await rig.client.put(f"/api/v2/agents/{agent}/status",
                                         json={"status": "Available"})  # fmt: skip
            assert reply.status_code == 200, reply.text
        assert (await rig.client.put("/api/v2/dialer/demo/state/run")).status_code == 200
        # Ann answers and talks: she ends, nobody is left, the campaign finishes by itself.
        await until(lambda: finished(rig) and rig.runner.members.counts(demo)["ended"] == 1, 15)
        [ann] = members_of(rig, "demo")

        page, errors = await campaign_page(browser, rig, "demo")
        notice = page.locator("#finished-notice")
        await notice.wait_for(state="visible", timeout=3000)
        # The reason comes with the plain page load (the campaign's reply), not only
        # through the event stream.
        assert "has finished (no member left)" in (await notice.text_content() or "")
        assert await page.locator("#campaign-state").text_content() == "finished"
        reply = (await rig.client.get("/api/v2/dialer/demo")).json()
        assert reply["state"] == "finished" and reply["finished_reason"] == "no member left"

        # Reset Ann: she is ready again, but the finished campaign calls no one by itself.
        row = page.locator(f'#members tr[data-member="{ann.member_id}"]')
        await row.locator("[data-action=reset]").click()
        await row.locator(".state", has_text="ready").wait_for(timeout=3000)
        # A member added over the API without autoRun waits the same way.
        await rig.add_members("demo", [{"name": "Bob", "communications": [{"number": "1002"}]}])
        await asyncio.sleep(1.0)  # ample for a running campaign to have leased them
        assert finished(rig) and rig.runner.live_calls() == []
        assert rig.runner.members.counts(demo)["ready"] == 2
        assert await notice.is_visible()
        await screenshot(page, "campaign_finished_notice.png")

        # "Start campaign" is PUT .../state/run: it dials both waiting members.
        await page.click("#start-campaign")
        await notice.wait_for(state="hidden", timeout=3000)
        bob = next(m for m in members_of(rig, "demo") if m.name == "Bob")
        await until(lambda: len(attempts(rig, ann.member_id)) == 2
                    and len(attempts(rig, bob.member_id)) == 1, 15)  # fmt: skip
        # Both end; the campaign finishes again and the page follows (the event stream),
        # now with the engine's reason.
        await until(lambda: finished(rig) and rig.runner.members.counts(demo)["ended"] == 2, 15)
        await notice.wait_for(state="visible", timeout=5000)
        assert "no member left" in (await page.locator("#finished-text").text_content() or "")
        assert [a.row["cause"] for a in attempts(rig, bob.member_id)] == ["NORMAL_CLEARING"]

        # The Add form's "run after adding" starts the finished campaign, and Cid is dialed.
        await page.fill("#add-name", "Cid")
        await page.fill("#add-numbers .number-row >> nth=0 >> input.number", "1003")
        await page.check("#add-autorun")
        await page.click("#add-form button[type=submit]")
        await page.locator("#add-done", has_text="the campaign runs").wait_for(timeout=3000)
        cid = next(m for m in members_of(rig, "demo") if m.name == "Cid")
        await until(lambda: len(attempts(rig, cid.member_id)) == 1, 15)
        await until(lambda: finished(rig) and rig.runner.members.counts(demo)["ended"] == 3, 15)
        await notice.wait_for(state="visible", timeout=5000)
        assert errors == []
