"""The campaign page in headless Chromium (Debian's ``/usr/bin/chromium`` driven by
Playwright), on the whole running dialer of :mod:`dashrig`: settings, the Add member form
(with the API's 422 and duplicate refusals shown at the field), the CSV upload window
(preview, guesses, column mapping, refused rows by line), the attempt history of called
members, the member actions, and a 100,000-row upload while a campaign dials.

Screenshots go to ``tests/artifacts/`` (not committed; CI keeps them); the browser and the
page helpers are :mod:`pagerig`'s.
"""

from __future__ import annotations

import asyncio
import gc
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dashrig import running_dialer, until
from pagerig import BROWSER_MARKS, browser, campaign_page, members_of, screenshot, until_text

from sipdialer.importer import parse_format

pytestmark = BROWSER_MARKS
__all__ = ["browser"]  # the fixture, taken by the tests below


async def test_add_member_form(tmp_path: Path, browser: Any) -> None:
    async with running_dialer(tmp_path, phones=(), ports=58000) as rig:
        page, errors = await campaign_page(browser, rig, "demo")
        # The settings are the file's, read-only.
        assert await page.locator('[data-setting="limit"]').text_content() == "3"
        assert await page.locator('[data-setting="max_retries"]').text_content() == "1"
        assert await page.locator("#members .empty").text_content() == "no members"

        await page.fill("#add-name", "Ann Example")
        await page.fill("#add-priority", "5")
        await page.fill("#add-numbers .number-row >> nth=0 >> input.number", "+38 (044) 123-45-67")
        await page.fill("#add-numbers .number-row >> nth=0 >> input.priority", "2")
        await page.click("#add-number")
        await page.fill("#add-numbers .number-row >> nth=1 >> input.number", "1002")
        await page.click("#add-variable")
        await page.fill("#add-variables .variable-row input.key", "plan")
        await page.fill("#add-variables .variable-row input.value", "gold")
        await page.click("#add-form button[type=submit]")
        await page.locator("#add-done", has_text="Added member").wait_for(timeout=3000)
        row = page.locator("#members tr[data-member]", has_text="Ann Example")
        await row.wait_for(timeout=3000)
        assert await row.locator('[data-number="+380441234567"]').text_content() == (
            "+380441234567 (2)"
        )
        assert await row.locator(".state").text_content() == "ready"
        [ann] = members_of(rig, "demo")
        assert (ann.name, ann.priority, dict(ann.variables)) == ("Ann Example", 5, {"plan": "gold"})
        assert [(n.number, n.priority) for n in ann.state.numbers] == [
            ("+380441234567", 2), ("1002", 0)
        ]  # fmt: skip

        # The API's 422 comes back next to the fields it names.
        await page.fill("#add-name", "Bad Example")
        await page.fill("#add-timezone", "Mars/Olympus")
        await page.fill("#add-numbers .number-row >> nth=0 >> input.number", "call me")
        await page.click("#add-form button[type=submit]")
        number_error = page.locator('#add-numbers [data-error-for="communications.0"]')
        await until_text(page, '#add-numbers [data-error-for="communications.0"]')
        assert "number" in (await number_error.text_content() or "").lower()
        zone_error = await page.locator('[data-error-for="timezone"]').text_content()
        assert zone_error and "zone" in zone_error.lower(), zone_error
        assert await page.locator("#add-done").is_hidden()
        await screenshot(page, "campaign_add_422.png")

        # A number another member has: refused, naming that member, on that number's row.
        await page.fill("#add-timezone", "Europe/Kyiv")
        await page.fill("#add-numbers .number-row >> nth=0 >> input.number", "1002")
        await page.click("#add-form button[type=submit]")
        text = await until_text(page, '#add-numbers [data-error-for="communications.0"]')
        assert f"member {ann.member_id}" in text and "1002" in text, text
        assert len(members_of(rig, "demo")) == 1
        await screenshot(page, "campaign_add_duplicate.png")

        # "Run after adding" starts the campaign.
        await page.fill("#add-numbers .number-row >> nth=0 >> input.number", "1003")
        await page.check("#add-autorun")
        await page.click("#add-form button[type=submit]")
        await page.locator("#add-done", has_text="the campaign runs").wait_for(timeout=3000)
        assert rig.runner.campaign_view(rig.campaign("demo")).state == "running"
        await page.locator("#member-total", has_text="2").wait_for(timeout=3000)
        assert errors == []


CSV_ROWS = [
    "ФИО;Телефон;Мобильный;Город",  # line 1: the header
    "Иванов Иван Петрович;+380441234567;0501112233;Київ",
    "Петренко Олена;(044) 222-33-44;;Львів",
    "Сидоров;не знаю;;Одеса",  # line 4: a bad number
    "Шевченко Тарас;0501112233;;Харків",  # line 5: the number of line 2
    "Коваль Ганна;0445556677;0509998877;Дніпро;лишнее",  # line 6: 5 columns
    "Бондар Юрій;0446667788;;Полтава",
]


async def test_upload_cp1251_with_preview_and_mapping(tmp_path: Path, browser: Any) -> None:
    path = tmp_path / "members.csv"
    path.write_bytes(("\r\n".join(CSV_ROWS) + "\r\n").encode("cp1251"))
    async with running_dialer(tmp_path, phones=(), ports=58600) as rig:
        page, errors = await campaign_page(browser, rig, "wfr")
        await page.set_input_files("#upload-file", str(path))
        # The guesses are preselected; the preview shows the header and the rows decoded.
        await page.locator("#upload-guess", has_text="cp1251").wait_for(timeout=3000)
        assert await page.input_value("#upload-encoding") == "cp1251"
        assert await page.input_value("#upload-delimiter") == ";"
        assert await page.is_checked("#upload-header")
        preview = page.locator("#upload-preview")
        # Five columns: the widest row (line 6) has one more than the header.
        header = await preview.locator("tr.header th").all_text_contents()
        assert header == ["1", *CSV_ROWS[0].split(";"), ""]
        first = await preview.locator("tr.data >> nth=0 >> td").all_text_contents()
        assert first == ["2", *CSV_ROWS[1].split(";"), ""]
        # Mapping: ФИО is the name, Телефон a number (both guessed from the header);
        # the mobile a second number with priority 5, the city the variable "city".
        assert await page.input_value('select.map-field[data-column="0"]') == "name"
        assert await page.input_value('select.map-field[data-column="1"]') == "number"
        await page.select_option('select.map-field[data-column="2"]', "number")
        await page.fill('input.map-extra[data-column="2"]', "5")
        await page.select_option('select.map-field[data-column="3"]', "var")
        await page.fill('input.map-extra[data-column="3"]', "city")
        map_text = await page.locator("#upload-map").text_content()
        assert map_text == "Map: name=0,number=1,number:5=2,var:city=3", map_text
        await screenshot(page, "campaign_upload_preview.png")

        await page.click("#upload-import")
        await page.locator("#upload-result").wait_for(state="visible", timeout=5000)
        summary = await page.locator("#upload-summary").text_content()
        assert summary == "6 rows read, 3 imported, 3 refused.", summary
        lines = await page.locator("#upload-refused td.line").all_text_contents()
        assert lines == ["4", "5", "6"]
        reasons = await page.locator("#upload-refused td.reason").all_text_contents()
        assert "number" in reasons[0] and "line 2" in reasons[1] and "columns" in reasons[2]
        await page.locator("#member-total", has_text="3").wait_for(timeout=3000)
        await screenshot(page, "campaign_upload_result.png")

        members = {m.name: m for m in members_of(rig, "wfr")}
        assert set(members) == {"Иванов Иван Петрович", "Петренко Олена", "Бондар Юрій"}
        ivanov = members["Иванов Иван Петрович"]
        assert dict(ivanov.variables) == {"city": "Київ"}
        assert sorted((n.priority, n.number) for n in ivanov.state.numbers) == [
            (0, "+380441234567"), (5, "0501112233")
        ]  # fmt: skip
        assert [n.number for n in members["Петренко Олена"].state.numbers] == ["0442223344"]
        assert errors == []


DATED_ROWS = [
    "name;phone;zone;until",
    "Ann Dated;1001;Europe/Kyiv;31.12.2026",
    "Bob Dated;1002;;01.07.2026",
    "Cid Dated;1003;;2026-07-01",  # line 4: not DD.MM.YYYY
]


async def test_upload_maps_an_expire_column_with_a_date_format(
    tmp_path: Path, browser: Any
) -> None:
    path = tmp_path / "dated.csv"
    path.write_text("\n".join(DATED_ROWS) + "\n", encoding="utf-8")
    async with running_dialer(tmp_path, phones=(), ports=59800) as rig:
        page, errors = await campaign_page(browser, rig, "wfr")
        await page.set_input_files("#upload-file", str(path))
        await page.locator("#upload-guess", has_text="utf-8").wait_for(timeout=3000)
        # The preview found DD.MM.YYYY in the dates: that column is expire, format chosen.
        assert await page.input_value('select.map-field[data-column="3"]') == "expire"
        fmt = 'select.map-format[data-column="3"]'
        assert await page.input_value(fmt) == "DD.MM.YYYY"
        # Every format the page offers is one the importer knows.
        offered = await page.locator(fmt + " option").evaluate_all("os => os.map(o => o.value)")
        assert len(offered) == 7 and all(parse_format(value) for value in offered), offered
        await page.select_option('select.map-field[data-column="2"]', "timezone")
        await page.select_option(fmt, "MM/DD/YYYY")
        assert await page.locator("#upload-map").text_content() == (
            "Map: name=0,number=1,timezone=2,expire:MM/DD/YYYY=3"
        )
        # Mapping the column again preselects the preview's guess; automatic is a plain expire.
        await page.select_option('select.map-field[data-column="3"]', "")
        await page.select_option('select.map-field[data-column="3"]', "expire")
        assert await page.input_value(fmt) == "DD.MM.YYYY"
        await page.select_option(fmt, "auto")
        assert (await page.locator("#upload-map").text_content() or "").endswith(",expire=3")
        await page.select_option(fmt, "DD.MM.YYYY")
        map_text = await page.locator("#upload-map").text_content()
        assert map_text == "Map: name=0,number=1,timezone=2,expire:DD.MM.YYYY=3", map_text
        await screenshot(page, "campaign_upload_expire.png")

        await page.click("#upload-import")
        await page.locator("#upload-result").wait_for(state="visible", timeout=5000)
        summary = await page.locator("#upload-summary").text_content()
        assert summary == "3 rows read, 2 imported, 1 refused.", summary
        assert await page.locator("#upload-refused td.line").all_text_contents() == ["4"]
        [reason] = await page.locator("#upload-refused td.reason").all_text_contents()
        assert '"2026-07-01" does not match the date format DD.MM.YYYY' in reason, reason
        expire = {m.name: m.expire for m in members_of(rig, "wfr")}
        # Ann's date is midnight in her zone (Kyiv, UTC+2 in winter); Bob has none: UTC.
        assert expire == {"Ann Dated": datetime(2026, 12, 30, 22, tzinfo=UTC),
                          "Bob Dated": datetime(2026, 7, 1, tzinfo=UTC)}  # fmt: skip
        assert errors == []


async def test_attempt_history_and_member_actions(tmp_path: Path, browser: Any) -> None:
    async with running_dialer(tmp_path, ports=59200) as rig:
        await rig.add_members("demo", [
            {"name": f"Member {n}", "communications": [{"number": n}]}
            for n in ("1001", "2001", "3001")
        ])  # fmt: skip
        for agent in ("101", "102", "103"):
            reply = await rig.client.put(
                f"/api/v2/agents/{agent}/status", json={"status": "Available"}
            )
            assert reply.status_code == 200, reply.text
        reply = await rig.client.put("/api/v2/dialer/demo/state/run")
        assert reply.status_code == 200
        await until(lambda: rig.runner.members.counts(rig.campaign("demo"))["ended"] == 3, 15)
        await rig.client.put("/api/v2/dialer/demo/state/stop")
        page, errors = await campaign_page(browser, rig, "demo")
        ended = {m.name: m for m in members_of(rig, "demo")}

        async def history(name: str) -> list[dict[str, str]]:
            member_id = ended[name].member_id
            await page.click(f'#members tr[data-member="{member_id}"] [data-action=history]')
            await page.locator("#history-member", has_text=name).wait_for(timeout=3000)
            rows = page.locator("#attempts tr[data-attempt]")
            await rows.first.wait_for(timeout=3000)
            out = []
            for i in range(await rows.count()):
                cells = rows.nth(i)
                out.append(
                    {
                        key: (await cells.locator("." + key).text_content() or "")
                        for key in ("agent", "number", "sip", "cause", "disposition", "talk")
                    }
                )
            return out

        answered = await history("Member 1001")
        assert len(answered) == 1 and answered[0]["cause"] == "NORMAL_CLEARING", answered
        assert answered[0]["agent"] in ("101", "102", "103") and answered[0]["number"] == "1001"
        busy = await history("Member 2001")
        assert [(a["sip"], a["cause"]) for a in busy] == [("486", "USER_BUSY")], busy
        missing = await history("Member 3001")
        assert [a["sip"] for a in missing] == ["404"], missing
        await screenshot(page, "campaign_history.png")
        # No recording here ([media] recordings_dir is empty): no link, and the route says so.
        assert await page.locator("#attempts .recording a").count() == 0
        attempt = rig.runner.attempts.for_member(ended["Member 3001"].member_id)[0]
        where = {"member": attempt.member_id, "attempt": attempt.id}
        reply = await rig.client.get("/dashboard/recording", params=where)
        assert reply.status_code == 404, reply.text
        reply = await rig.client.get("/dashboard/recording", params=where, headers={"X-Key": "x"})
        assert reply.status_code == 401
        # The table shows each member's last cause.
        row = page.locator(f'#members tr[data-member="{ended["Member 2001"].member_id}"]')
        assert await row.locator(".cause").text_content() == ended["Member 2001"].state.ended_with

        # Reset attempts: the busy member starts over (ready, counters 0, history kept).
        await row.locator("[data-action=reset]").click()
        await row.locator(".state", has_text="ready").wait_for(timeout=3000)
        again = rig.runner.members.get(ended["Member 2001"].member_id)
        assert again is not None and again.status == "ready" and again.state.attempts == 0
        assert len(await history("Member 2001")) == 1
        # Stop all numbers: it ends by manager request, its numbers stopped.
        await row.locator("[data-action=stop]").click()
        await row.locator(".state", has_text="ended").wait_for(timeout=3000)
        stopped = rig.runner.members.get(ended["Member 2001"].member_id)
        assert stopped is not None and stopped.state.ended_with == "MANAGER_REQUEST"
        assert not any(n.active for n in stopped.state.numbers)
        assert await row.locator(".number.stopped").count() == 1
        # Delete.
        await row.locator("[data-action=delete]").click()
        await page.locator("#member-total", has_text="2").wait_for(timeout=3000)
        assert rig.runner.members.get(ended["Member 2001"].member_id) is None
        assert errors == []


class LoopLag:
    """The event loop's stalls, seen by a 5 ms timer (what any call setup would wait)."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(0.005)
            self.samples.append(loop.time() - before - 0.005)

    def __enter__(self) -> LoopLag:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()

    def percentile(self, q: float) -> float:
        ordered = sorted(self.samples)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def test_100k_rows_upload_while_a_campaign_dials(tmp_path: Path, browser: Any) -> None:
    path = tmp_path / "big.csv"
    lines = ["name;phone;city"] + [f"Абонент {i};+38044{i:07d};Київ" for i in range(100_000)]
    path.write_bytes(("\n".join(lines) + "\n").encode("cp1251"))
    async with running_dialer(tmp_path, ports=56000) as rig:
        demo = rig.campaign("demo")
        await rig.add_members("demo", [
            {"communications": [{"number": str(n)}]} for n in range(10000, 10300)
        ])  # fmt: skip
        for agent in ("101", "102", "103"):
            await rig.client.put(f"/api/v2/agents/{agent}/status", json={"status": "Available"})
        page, errors = await campaign_page(browser, rig, "wfr")
        await page.set_input_files("#upload-file", str(path))
        await page.locator("#upload-guess", has_text="cp1251").wait_for(timeout=3000)
        await page.select_option('select.map-field[data-column="0"]', "name")
        await page.select_option('select.map-field[data-column="1"]', "number")
        reply = await rig.client.put("/api/v2/dialer/demo/state/run")
        assert reply.status_code == 200
        await until(lambda: rig.runner.live_calls(), 5)
        ended_before = rig.runner.members.counts(demo)["ended"]
        leases_before = len(rig.runner.metrics.lease_seconds)
        # As ``sipdialer run`` does once started (sipdialer/app.py): startup's objects stay
        # out of the full collections, which would otherwise stall the loop ~120 ms here.
        gc.collect()
        gc.freeze()
        try:
            with LoopLag() as lag:
                window = (datetime.now(UTC), time.perf_counter())
                await page.click("#upload-import")
                await page.locator("#upload-result").wait_for(state="visible", timeout=60_000)
                took = time.perf_counter() - window[1]
                until_at = datetime.now(UTC)
        finally:
            gc.unfreeze()
        summary = await page.locator("#upload-summary").text_content()
        assert summary == "100000 rows read, 100000 imported, 0 refused.", summary
        # Call setup, from the engine's timings: the agent answered -> the member's leg
        # rang (the trunk answers an INVITE with 180 at once), for the calls set up while
        # the file was imported.
        during = []
        for attempt in rig.runner.attempts.for_campaign(demo, limit=1000):
            answered, ringing = attempt.row["agent_answered_at"], attempt.row["member_ringing_at"]
            if answered is None or ringing is None:
                continue
            setup = (ringing - answered).total_seconds()
            if window[0] <= answered <= until_at:
                during.append(setup)
        calls = rig.runner.members.counts(demo)["ended"] - ended_before
        leases = list(rig.runner.metrics.lease_seconds)[leases_before:]
        print(f"100k rows: {took:.1f} s through the page; {calls} calls ended meanwhile;"
              f" call setup max {max(during, default=0) * 1000:.0f} ms"
              f" ({len(during)} calls);"
              f" loop lag p50 {lag.percentile(0.5) * 1000:.0f} ms,"
              f" p99 {lag.percentile(0.99) * 1000:.0f} ms, max {max(lag.samples) * 1000:.0f} ms;"
              f" lease max {max(leases, default=0) * 1000:.1f} ms")  # fmt: skip
        await screenshot(page, "campaign_upload_100k.png")
        # Performance is measured and printed (issue 8's figures: call setup < 100 ms,
        # under a minute), not asserted to the millisecond on a shared machine; the bounds
        # below only catch a frozen loop or a stalled import, not a slow second.
        assert took < 120
        assert calls > 0 and len(during) > 0  # the campaign kept dialing
        assert max(during) < 1.0, sorted(during)[-5:]
        assert lag.percentile(0.99) < 1.0
        assert sum(rig.runner.members.counts(rig.campaign("wfr")).values()) == 100_000
        assert errors == []
