"""The media shell over real loopback sockets: a few tests, no protocol logic here."""

from __future__ import annotations

import asyncio
import logging
import random
import socket
from collections.abc import Iterator

import numpy as np
import pytest

from sipdialer.media import g711, udp
from sipdialer.media.player import FramePlayer
from sipdialer.media.ports import PortPair, PortPool, PortsExhausted
from sipdialer.media.rtp import RtpPacket
from sipdialer.media.tones import CONFIRMATION, RINGBACK_EU
from sipdialer.media.udp import (
    open_rtp_pair,
    play,
    raise_open_file_limit,
    set_buffers,
)

HOST = "127.0.0.1"


def free_even_ports(count: int = 4) -> int:
    """An even port p with p .. p+count-1 free for UDP on loopback right now."""
    for _ in range(200):
        base = random.randrange(40000, 60000, 2)
        socks = []
        try:
            for port in range(base, base + count):
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(sock)
                sock.bind((HOST, port))
        except OSError:
            continue
        finally:
            for sock in socks:
                sock.close()
        return base
    raise RuntimeError("no free port range")


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((HOST, 0))
    sock.setblocking(False)
    yield sock
    sock.close()


def drain(sock: socket.socket) -> list[bytes]:
    out = []
    while True:
        try:
            out.append(sock.recv(2048))
        except BlockingIOError:
            return out


async def test_play_the_confirmation_beep_to_a_plain_udp_socket(listener: socket.socket) -> None:
    base = free_even_ports()
    pool = PortPool(base, base + 3)
    rtp = await open_rtp_pair(HOST, pool)
    try:
        player = FramePlayer.from_tone(CONFIRMATION, g711.PCMU)
        loop = asyncio.get_running_loop()
        started = loop.time()
        await asyncio.wait_for(play(player, rtp, listener.getsockname()), 5)
        elapsed = loop.time() - started
    finally:
        rtp.close()
    await asyncio.sleep(0.01)
    packets = [RtpPacket.parse(data) for data in drain(listener)]
    assert len(packets) == 15 and rtp.sent == 15 and player.finished
    assert 0.27 <= elapsed < 0.6  # 14 frame intervals after the first packet
    assert {p.payload_type for p in packets} == {0} and {p.ssrc for p in packets} == {player.ssrc}
    seqs = [p.sequence_number for p in packets]
    assert all((b - a) & 0xFFFF == 1 for a, b in zip(seqs, seqs[1:], strict=False))
    stamps = [p.timestamp for p in packets]
    assert all((b - a) & 0xFFFFFFFF == 160 for a, b in zip(stamps, stamps[1:], strict=False))
    assert [p.marker for p in packets] == [True] + [False] * 14
    audio = g711.ulaw_decode(b"".join(p.payload for p in packets)).astype(np.float64)
    spectrum = np.abs(np.fft.rfft(audio))
    assert np.fft.rfftfreq(len(audio), 1 / 8000)[np.argmax(spectrum)] == pytest.approx(1000, abs=5)


async def test_receivers_get_datagrams_with_address_and_now(listener: socket.socket) -> None:
    base = free_even_ports()
    pool = PortPool(base, base + 3)
    rtp = await open_rtp_pair(HOST, pool)
    got: list[tuple[str, bytes, tuple[str, int], float]] = []
    rtp.on_rtp = lambda data, addr, now: got.append(("rtp", data, addr, now))
    rtp.on_rtcp = lambda data, addr, now: got.append(("rtcp", data, addr, now))
    try:
        assert rtp.pair == PortPair(base, base + 1) and rtp.host == HOST
        listener.sendto(b"media", (HOST, base))
        listener.sendto(b"report", (HOST, base + 1))
        for _ in range(100):
            if len(got) == 2:
                break
            await asyncio.sleep(0.005)
        assert sorted((kind, data) for kind, data, _, _ in got) == [
            ("rtcp", b"report"),
            ("rtp", b"media"),
        ]
        assert {addr for _, _, addr, _ in got} == {listener.getsockname()}
        assert all(now <= asyncio.get_running_loop().time() for *_, now in got)
        rtp.send(b"out", listener.getsockname())
        rtp.send_rtcp(b"rtcp-out", listener.getsockname())
        await asyncio.sleep(0.01)
        assert sorted(drain(listener)) == [b"out", b"rtcp-out"]
    finally:
        rtp.close()
        rtp.close()  # harmless
    assert rtp.closed and pool.in_use == 0
    rtp.send(b"after close", listener.getsockname())  # counted, not raised
    assert rtp.dropped == 1


async def test_a_pair_held_by_another_program_is_skipped() -> None:
    base = free_even_ports()
    blocker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    blocker.bind((HOST, base + 1))  # only the RTCP port of the first pair
    pool = PortPool(base, base + 3)
    try:
        rtp = await open_rtp_pair(HOST, pool)
        assert rtp.pair == PortPair(base + 2, base + 3)
        assert pool.in_use == 1 and pool.free == 1  # the taken pair went back
        with pytest.raises(PortsExhausted):
            await open_rtp_pair(HOST, pool)  # the only free pair is still taken
        rtp.close()
    finally:
        blocker.close()
    assert pool.in_use == 0


def test_buffers_and_open_file_limit() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        granted = set_buffers(sock, 256 * 1024)
        assert granted >= 256 * 1024
    assert raise_open_file_limit(1024) >= 1024


def test_capped_buffers_are_logged_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(udp, "_buffer_cap_logged", False)
    huge = 1 << 30  # above any net.core.rmem_max
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as a:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as b:
            with caplog.at_level(logging.WARNING, logger="sipdialer.media.udp"):
                assert set_buffers(a, huge) < huge
                set_buffers(b, huge)
    capped = [r.getMessage() for r in caplog.records if "capped" in r.getMessage()]
    assert len(capped) == 1 and f"(asked {huge})" in capped[0]  # once, not per socket


async def test_cancelling_play_stops_the_stream(listener: socket.socket) -> None:
    base = free_even_ports()
    pool = PortPool(base, base + 3)
    rtp = await open_rtp_pair(HOST, pool)
    try:
        ringing = FramePlayer.from_tone(RINGBACK_EU, g711.PCMA)  # loops until stopped
        task = asyncio.create_task(play(ringing, rtp, listener.getsockname()))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        sent = rtp.sent
        await asyncio.sleep(0.06)
        assert rtp.sent == sent and 4 <= sent <= 8 and not ringing.finished
        assert {RtpPacket.parse(d).payload_type for d in drain(listener)} == {8}
    finally:
        rtp.close()
