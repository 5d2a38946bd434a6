"""The hold fill over real UDP on 127.0.0.1: while the agent holds (and sends nothing) on a
bridged call, the trunk must still get steady RTP (carriers hang up RTP-silent calls),
as one continuous stream with what came before and what comes after the resume."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from test_bridge import HOST, Peer, free_even_ports, tone

from sipdialer.media import g711
from sipdialer.media.bridge import MediaManager, StreamSpec
from sipdialer.media.leg import FILL_AFTER, SILENCE
from sipdialer.media.ports import PortPool
from sipdialer.media.rtp import RtpPacket
from sipdialer.media.tones import RINGBACK_EU


@pytest.fixture
def legs() -> Iterator[tuple[Peer, Peer]]:
    agent, member = Peer(), Peer()
    yield agent, member
    agent.close()
    member.close()


@pytest.fixture
async def media(tmp_path: Path) -> AsyncIterator[MediaManager]:
    base = free_even_ports(4)
    manager = MediaManager(HOST, PortPool(base, base + 3), media_timeout=30,
                           ringback=RINGBACK_EU.pcm())  # fmt: skip
    yield manager
    await manager.close()


async def send_tone(agent: Peer, port: int, packets: list[bytes]) -> None:
    for data in packets:
        agent.rtp.sendto(data, (HOST, port))
        await asyncio.sleep(0.02)


@pytest.mark.parametrize(("member_pt", "ptime"), [(g711.PCMA, 20), (g711.PCMU, 30)])
async def test_the_trunk_gets_steady_silence_while_the_agent_holds(
    media: MediaManager, legs: tuple[Peer, Peer], member_pt: int, ptime: int
) -> None:
    agent, member = legs
    call = await media.open("hold", lambda call_id: None)
    agent_spec = StreamSpec(HOST, agent.port, g711.PCMU)
    call.set_agent(agent_spec)
    call.set_member(StreamSpec(HOST, member.port, member_pt, ptime=ptime))
    call.bridge()
    loop = asyncio.get_running_loop()

    # Quiet but not holding: nothing is made up (the agent may simply be silent).
    await asyncio.sleep(0.4)
    assert member.received() == []

    await send_tone(agent, call.agent_port, tone(440, g711.PCMU, 10, 0x44, 1, 0))
    last_sent = loop.time() - 0.02  # send_tone sleeps a frame after the last packet
    await asyncio.sleep(0.03)
    before = [RtpPacket.parse(d) for d in member.received()]
    assert len(before) == 10

    # The agent holds (sendonly re-INVITE) and goes silent, like most phones do.
    call.set_agent(StreamSpec(HOST, agent.port, g711.PCMU, send=False, receive=False))
    await asyncio.sleep(1.2)
    fill = [RtpPacket.parse(d) for d in member.received()]
    # One frame per ptime from FILL_AFTER after the last packet the trunk got.
    expected = (loop.time() - last_sent - FILL_AFTER) / (ptime / 1000)
    assert expected * 0.8 <= len(fill) <= expected + 2, (len(fill), expected)
    samples = 8 * ptime
    assert {p.payload for p in fill} == {SILENCE[member_pt] * samples}
    assert {p.payload_type for p in fill} == {member_pt}
    assert [p.marker for p in fill] == [True] + [False] * (len(fill) - 1)
    stamps = [p.timestamp for p in fill]
    assert all((b - a) & 0xFFFFFFFF == samples for a, b in zip(stamps, stamps[1:], strict=False))
    # It continues the stream the trunk heard: SSRC, seq; the timestamp by the clock.
    gap = (fill[0].timestamp - before[-1].timestamp) & 0xFFFFFFFF
    assert 0.15 * 8000 <= gap <= 0.5 * 8000

    # Resume: the agent's audio takes the stream over, and the fill stops.
    call.set_agent(agent_spec)
    await send_tone(agent, call.agent_port, tone(440, g711.PCMU, 10, 0x55, 900, 5000))
    await asyncio.sleep(0.3)
    after = [RtpPacket.parse(d) for d in member.received()]
    assert len(after) == 10 and all(p.payload != SILENCE[member_pt] * 160 for p in after)
    assert after[0].marker and not any(p.marker for p in after[1:])

    stream = before + fill + after
    assert len({p.ssrc for p in stream}) == 1
    seqs = [p.sequence_number for p in stream]
    assert all((b - a) & 0xFFFF == 1 for a, b in zip(seqs, seqs[1:], strict=False))
    steps = [(b.timestamp - a.timestamp) & 0xFFFFFFFF for a, b in zip(stream, stream[1:],
                                                                       strict=False)]  # fmt: skip
    assert all(0 < step < 8000 for step in steps)  # always forwards
    assert call.stats["fill_sent"] == len(fill)
    call.close()


async def test_music_on_hold_is_relayed_not_mixed_with_silence(
    media: MediaManager, legs: tuple[Peer, Peer]
) -> None:
    """A phone that plays music while it holds: its audio goes on, no silence between."""
    agent, member = legs
    call = await media.open("moh", lambda call_id: None)
    call.set_agent(StreamSpec(HOST, agent.port, g711.PCMU, send=False, receive=False))
    call.set_member(StreamSpec(HOST, member.port, g711.PCMU))
    call.bridge()
    await send_tone(agent, call.agent_port, tone(300, g711.PCMU, 30, 0x66, 1, 0))
    await asyncio.sleep(0.05)
    heard = [RtpPacket.parse(d) for d in member.received()]
    silence = SILENCE[g711.PCMU] * 160
    # Before the first agent packet the fill may have started (nothing was sent yet);
    # after it, only the agent's audio.
    first = next(k for k, p in enumerate(heard) if p.payload != silence)
    assert first <= 1 and len(heard) - first == 30
    assert all(p.payload != silence for p in heard[first:])
    call.close()
