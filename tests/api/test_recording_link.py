"""A real recording served to the campaign page: with ``[media] recordings_dir`` set, a
member called through the simulated trunk is recorded (the bridge writes a stereo WAV),
the attempt history shows a "listen" link, and the link, fetched with the page's own
credentials (the supervisor cookie), returns that WAV. A recording column that points
outside ``recordings_dir`` (a path elsewhere, ``..``, a symlink out, a non-WAV) is
refused. Headless Chromium on the whole running dialer of :mod:`dashrig`.
"""

from __future__ import annotations

import io
import os
import wave
from pathlib import Path
from typing import Any

import dashrig
import httpx
import pytest
from dashrig import Rig, running_dialer, until
from pagerig import BROWSER_MARKS, browser, campaign_page, screenshot
from sqlalchemy import update

from sipdialer.store.schema import attempts as attempts_table

pytestmark = BROWSER_MARKS
__all__ = ["browser"]  # the fixture, taken by the test below


@pytest.fixture
def recordings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """dashrig's configuration with recording on (its ``[media]`` gets a recordings_dir)."""
    folder = tmp_path / "recordings"
    plain = dashrig.config_text

    def with_recordings(db: Path, trunk: tuple[str, int], rtp: str) -> str:
        text = plain(db, trunk, rtp)
        assert "[media]\n" in text
        return text.replace("[media]\n", f'[media]\nrecordings_dir = "{folder}"\n', 1)

    monkeypatch.setattr(dashrig, "config_text", with_recordings)
    return folder


def point_recording_at(rig: Rig, attempt_id: int, path: str) -> None:
    """What a tampered (or stale) store row would say: the route must not trust it."""
    with rig.runner.members.engine.begin() as connection:
        connection.execute(
            update(attempts_table).where(attempts_table.c.id == attempt_id).values(recording=path)
        )


async def test_the_history_links_a_real_recording(
    tmp_path: Path, recordings: Path, browser: Any
) -> None:
    async with running_dialer(tmp_path, phones=("101",), ports=61000) as rig:
        assert rig.config.media.recordings_dir == str(recordings)
        await rig.add_members("demo", [{"name": "Rec", "communications": [{"number": "1001"}]}])
        reply = await rig.client.put("/api/v2/agents/101/status", json={"status": "Available"})
        assert reply.status_code == 200, reply.text
        assert (await rig.client.put("/api/v2/dialer/demo/state/run")).status_code == 200
        [member] = rig.runner.members.list(rig.campaign("demo")).members

        def recorded() -> Any:
            done = rig.runner.attempts.for_member(member.member_id)
            return done and done[0].row["recording"] and done[0]

        attempt = await until(recorded, 15)
        assert attempt.row["cause"] == "NORMAL_CLEARING"
        stored = Path(attempt.row["recording"])
        assert stored.parent == recordings and stored.is_file()

        page, errors = await campaign_page(browser, rig, "demo")
        await page.click(f'#members tr[data-member="{member.member_id}"] [data-action=history]')
        link = page.locator(f'#attempts tr[data-attempt="{attempt.id}"] .recording a')
        await link.wait_for(timeout=3000)
        href = await link.get_attribute("href")
        assert href == f"/dashboard/recording?member={member.member_id}&attempt={attempt.id}"
        await screenshot(page, "campaign_recording_link.png")

        # The page's credentials: the browser context's supervisor cookie, no API headers.
        reply = await page.request.get(rig.base + href)
        assert reply.status == 200, await reply.text()
        assert reply.headers["content-type"] == "audio/wav"
        body = await reply.body()
        assert body[:4] == b"RIFF" and body[8:12] == b"WAVE"
        assert body == stored.read_bytes()
        with wave.open(io.BytesIO(body)) as wav:
            channels, rate, frames = wav.getnchannels(), wav.getframerate(), wav.getnframes()
            width, audio = wav.getsampwidth(), wav.readframes(frames)
        print(f"recording: {len(body)} bytes, {channels} channels x {width * 8} bit,"
              f" {rate} Hz, {frames / rate:.2f} s")  # fmt: skip
        # Agent left, member right; the trunk's member talked dashrig.TALK (0.6) s after
        # the bridge, so well over a quarter second of both channels, not silence.
        assert (channels, width) == (2, 2) and frames > rate // 4, (channels, rate, frames)
        assert any(audio[0::4]) and any(audio[2::4])  # some non-zero bytes in each channel
        # Without the cookie (nor the headers) it is refused.
        async with httpx.AsyncClient(base_url=rig.base) as anonymous:
            assert (await anonymous.get(href)).status_code == 401

        # A row naming a file outside recordings_dir is not served, however it gets there.
        outside = tmp_path / "outside.wav"
        outside.write_bytes(body)
        (recordings / "notes.txt").write_text("not a recording")
        os.symlink(outside, recordings / "link.wav")
        for path in (str(outside), f"{recordings}/../outside.wav", str(recordings / "link.wav"),
                     str(recordings / "notes.txt"), "/etc/passwd"):  # fmt: skip
            point_recording_at(rig, attempt.id, path)
            reply = await page.request.get(rig.base + href)
            assert reply.status == 404, (path, reply.status)
        # Back to the real file: served again (the refusals above were the paths' doing).
        point_recording_at(rig, attempt.id, str(stored))
        assert (await page.request.get(rig.base + href)).status == 200
        assert errors == []
