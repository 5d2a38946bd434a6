"""Headless Chromium on the campaign page, for the browser tests of :mod:`dashrig`'s
running dialer: the ``browser`` fixture (Debian's ``/usr/bin/chromium`` driven by
Playwright), signing in and opening a campaign's page as a supervisor does, screenshots
to ``tests/artifacts/`` (not committed; CI keeps them), and small waits.

A test module takes the fixture with ``from pagerig import browser`` and marks itself
with :data:`BROWSER_MARKS` (skipped where Chromium or Playwright is missing)."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from dashrig import KEY, TOKEN, Rig

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"

BROWSER_MARKS = [
    pytest.mark.browser,
    pytest.mark.skipif(
        shutil.which(CHROMIUM) is None, reason="Debian's chromium is not installed (.ci/run does)"
    ),
]


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    playwright_api = pytest.importorskip("playwright.async_api")
    async with playwright_api.async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
        )
        try:
            yield chromium
        finally:
            await chromium.close()


async def screenshot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / name), full_page=True)


async def campaign_page(browser: Any, rig: Rig, name: str) -> tuple[Any, list[str]]:
    """Sign in on the dashboard and follow the campaign card's link, as a supervisor does.
    The list collects the page's JavaScript errors (a test expects it empty)."""
    page = await browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(5000)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    await page.goto(rig.base + "/")
    await page.fill("#token", TOKEN)
    await page.fill("#key", KEY)
    await page.click("#login button[type=submit]")
    card = page.locator(f'[data-campaign="{rig.campaign(name)}"]')
    await card.locator("a.open").click()
    await page.locator("#campaign-name", has_text=name).wait_for(timeout=5000)
    return page, errors


def members_of(rig: Rig, campaign: str, **filters: Any) -> list[Any]:
    return list(rig.runner.members.list(rig.campaign(campaign), limit=1000, **filters).members)


async def until_text(page: Any, selector: str, timeout: float = 3.0) -> str:
    """The element's text once it has some."""
    deadline = time.monotonic() + timeout
    while True:
        text = await page.locator(selector).text_content()
        if text:
            return str(text)
        if time.monotonic() > deadline:
            raise AssertionError(f"{selector} stayed empty")
        await asyncio.sleep(0.05)
