"""MediaManager / CallMedia over real UDP on 127.0.0.1: a test agent phone and a test trunk
exchange tones through the bridge; the FFT of what arrives must match what was sent."""

from __future__ import annotations

import asyncio
import random
import socket
import wave
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import numpy as np
import pytest

from sipdialer.media import g711, rtp
from sipdialer.media.analysis import dominant_frequency
from sipdialer.media.bridge import CallMedia, MediaManager, StreamSpec, recording_name
from sipdialer.media.ports import PortPool, PortsExhausted
from sipdialer.media.rtp import RtpPacket
from sipdialer.media.tones import RINGBACK_EU, Tone, frames

HOST = "127.0.0.1"


def free_even_ports(count: int) -> int:
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


class Peer:
    """A test phone: an RTP and an RTCP socket, non-blocking."""

    def __init__(self) -> None:
        self.rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.rtcp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for sock in (self.rtp, self.rtcp):
            sock.bind((HOST, 0))
            sock.setblocking(False)

    @property
    def port(self) -> int:
        return int(self.rtp.getsockname()[1])

    @property
    def rtcp_port(self) -> int:
        return int(self.rtcp.getsockname()[1])

    def received(self, rtcp: bool = False) -> list[bytes]:
        out = []
        while True:
            try:
                out.append((self.rtcp if rtcp else self.rtp).recv(2048))
            except BlockingIOError:
                return out

    def close(self) -> None:
        self.rtp.close()
        self.rtcp.close()


@pytest.fixture
def peers() -> Iterator[tuple[Peer, Peer, Peer]]:
    made = (Peer(), Peer(), Peer())
    yield made
    for peer in made:
        peer.close()


@pytest.fixture
async def manager(tmp_path: Path) -> AsyncIterator[MediaManager]:
    base = free_even_ports(8)
    m = MediaManager(
        HOST,
        PortPool(base, base + 7),
        media_timeout=30,
        ringback=RINGBACK_EU.pcm(),
        recordings_dir=str(tmp_path / "rec"),
    )
    yield m
    await m.close()


def tone(hz: float, pt: int, count: int, ssrc: int, seq0: int, ts0: int) -> list[bytes]:
    pcm = Tone((hz,), ((count * 0.02, 0.0),), -10.0).pcm()
    return [rtp.build(f, pt, seq0 + k, ts0 + 160 * k, ssrc) for k, f in enumerate(frames(pcm, pt))][
        :count
    ]


def audio(packets: list[RtpPacket]) -> g711.PCM16:
    return np.concatenate([g711.decode(p.payload, p.payload_type) for p in packets])


@pytest.mark.parametrize("member_pt", [g711.PCMU, g711.PCMA], ids=["PCMU-PCMU", "PCMU-PCMA"])
async def test_tones_cross_the_bridge_after_ringback_and_early_media(
    manager: MediaManager, peers: tuple[Peer, Peer, Peer], member_pt: int
) -> None:
    agent, member, sdp_only = peers
    timeouts: list[str] = []
    call = await manager.open("call-1@test", timeouts.append)
    assert manager.active == 1 and call.host == HOST and call.member_port != call.agent_port
    call.set_agent(StreamSpec(HOST, agent.port, g711.PCMU, rtcp_port=agent.rtcp_port))
    # The trunk's SDP names one port; its media really comes from another (NAT).
    call.set_member(StreamSpec(HOST, sdp_only.port, member_pt, rtcp_port=sdp_only.rtcp_port))
    call.ringback()
    await asyncio.sleep(0.1)
    ringback = [RtpPacket.parse(d) for d in agent.received()]
    assert 4 <= len(ringback) <= 7 and {p.payload_type for p in ringback} == {g711.PCMU}

    call.early_media()
    to_member = (HOST, call.member_port)
    for data in tone(600, member_pt, 5, ssrc=0x600, seq0=100, ts0=10_000):
        member.rtp.sendto(data, to_member)
    await asyncio.sleep(0.05)
    early = [RtpPacket.parse(d) for d in agent.received()]
    assert len(early) == 5

    call.bridge()
    to_agent = (HOST, call.agent_port)
    agent_tone = tone(440, g711.PCMU, 25, ssrc=0x440, seq0=7, ts0=0)
    member_tone = tone(1000, member_pt, 25, ssrc=0x1000, seq0=40000, ts0=2**32 - 800)
    for a, m in zip(agent_tone, member_tone, strict=True):
        agent.rtp.sendto(a, to_agent)
        member.rtp.sendto(m, to_member)
        await asyncio.sleep(0.005)
    member.rtcp.sendto(
        rtp.report(rtp.ReceiverReport(0x1000), "trunk"), (HOST, call.member_port + 1)
    )
    await asyncio.sleep(0.05)
    bridged = [RtpPacket.parse(d) for d in agent.received()]
    heard = [RtpPacket.parse(d) for d in member.received()]
    assert sdp_only.received() == []  # everything went to the latched source
    assert len(bridged) == 25 and len(heard) == 25

    # What each side hears is what the other sent.
    assert dominant_frequency(audio(bridged)) == pytest.approx(1000, abs=5)
    assert dominant_frequency(audio(heard)) == pytest.approx(440, abs=5)
    assert {p.payload_type for p in bridged} == {g711.PCMU}
    assert {p.payload_type for p in heard} == {member_pt}
    # One continuous stream to the agent: ringback -> early media -> bridged.
    stream = ringback + early + bridged
    assert len({p.ssrc for p in stream}) == 1
    seqs = [p.sequence_number for p in stream]
    assert all((b - a) & 0xFFFF == 1 for a, b in zip(seqs, seqs[1:], strict=False))
    stamps = [p.timestamp for p in stream]
    steps = [(b - a) & 0xFFFFFFFF for a, b in zip(stamps, stamps[1:], strict=False)]
    assert all(0 < step < 8000 for step in steps)  # forwards, never a jump back
    switches = [k for k, p in enumerate(stream) if p.marker]
    assert switches == [0, len(ringback), len(ringback) + len(early)]
    # RTCP crossed too, with the SSRC the agent hears.
    reports = [rtp.parse_rtcp(d) for d in agent.received(rtcp=True)]
    assert len(reports) == 1 and reports[0][0] == rtp.ReceiverReport(stream[0].ssrc)

    stats = call.stats
    assert stats["agent_sent"] == 30 and stats["member_sent"] == 25
    assert stats["member_transcoded"] == (25 if member_pt == g711.PCMA else 0)
    assert stats["rtcp_relayed"] == 1 and manager.stats()["rtp_relayed"] == 55
    path = call.close()
    assert call.close() == path and manager.active == 0 and timeouts == []
    assert manager.ports.in_use == 0 and manager.stats()["rtp_relayed"] == 55
    assert path is not None and Path(path).name == "call-1@test.wav"
    with wave.open(path, "rb") as wav:
        assert wav.getnchannels() == 2 and wav.getframerate() == 8000
        pcm = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").reshape(-1, 2)
    assert dominant_frequency(pcm[:, 0]) == pytest.approx(440, abs=5)  # agent left
    assert dominant_frequency(pcm[:, 1]) == pytest.approx(1000, abs=5)  # member right


async def test_media_timeout_fires_once_on_a_silent_bridge(tmp_path: Path) -> None:
    base = free_even_ports(4)
    m = MediaManager(HOST, PortPool(base, base + 3), media_timeout=0.2, ringback=RINGBACK_EU.pcm())
    loop = asyncio.get_running_loop()
    fired: list[tuple[str, float]] = []
    call = await m.open("quiet", lambda call_id: fired.append((call_id, loop.time())))
    call.set_agent(StreamSpec(HOST, 9, g711.PCMU))
    call.set_member(StreamSpec(HOST, 11, g711.PCMU))
    call.ringback()
    await asyncio.sleep(0.3)
    assert fired == []  # not armed before the bridge
    started = loop.time()
    call.bridge()
    await asyncio.sleep(0.5)
    assert [call_id for call_id, _ in fired] == ["quiet"]
    assert 0.19 <= fired[0][1] - started < 0.35
    assert call.close() is None  # no recordings_dir
    await m.close()


async def test_rtp_keeps_the_timeout_away_and_hold_sends_nothing(
    manager: MediaManager, peers: tuple[Peer, Peer, Peer]
) -> None:
    agent, member, _ = peers
    manager.media_timeout = 0.15
    fired: list[str] = []
    call = await manager.open("held", fired.append)
    call.set_agent(StreamSpec(HOST, agent.port, g711.PCMU))
    call.set_member(StreamSpec(HOST, member.port, g711.PCMU))
    call.bridge()
    packets = tone(440, g711.PCMU, 20, ssrc=1, seq0=0, ts0=0)
    for k, data in enumerate(packets[:10]):
        agent.rtp.sendto(data, (HOST, call.agent_port))
        member.rtp.sendto(data, (HOST, call.member_port))
        await asyncio.sleep(0.03)
        if k == 4:  # the member puts us on hold: it gets nothing, it need not send
            call.set_member(StreamSpec(HOST, member.port, g711.PCMU, send=False, receive=False))
            await asyncio.sleep(0.01)
            member.received()
    assert fired == []
    assert member.received() == [] and call.stats["member_suppressed"] >= 4
    assert len(agent.received()) == 10
    call.close()


async def test_ports_are_given_back_and_exhaustion_is_reported(
    manager: MediaManager,
) -> None:
    calls: list[CallMedia] = []
    for k in range(2):
        calls.append(await manager.open(f"c{k}", lambda _: None))
    assert manager.ports.free == 0
    with pytest.raises(PortsExhausted):
        await manager.open("one too many", lambda _: None)
    assert manager.ports.free == 0 and manager.active == 2
    await manager.close()
    assert manager.active == 0 and manager.ports.in_use == 0 and all(c.closed for c in calls)


def test_recording_names_are_safe() -> None:
    assert (
        recording_name("a84b4c76e66710@pc33.example.com") == "a84b4c76e66710@pc33.example.com.wav"
    )
    assert recording_name("../../etc/passwd") == "_.._etc_passwd.wav"
    assert recording_name("") == "call.wav"


async def test_muxed_rtcp_and_garbage_on_the_rtp_port(
    manager: MediaManager, peers: tuple[Peer, Peer, Peer]
) -> None:
    agent, member, _ = peers
    call = await manager.open("mux", lambda _: None)
    call.set_agent(StreamSpec(HOST, agent.port, g711.PCMU, rtcp_port=agent.rtcp_port))
    call.set_member(StreamSpec(HOST, member.port, g711.PCMU, rtcp_port=member.rtcp_port))
    call.bridge()
    to_agent = (HOST, call.agent_port)
    agent.rtp.sendto(b"\x80\x00\x01", to_agent)  # shorter than a header: dropped
    agent.rtp.sendto(tone(440, g711.PCMU, 1, ssrc=5, seq0=1, ts0=0)[0], to_agent)
    # The agent muxes RTCP onto RTP (RFC 5761); the member does not.
    agent.rtp.sendto(rtp.report(rtp.ReceiverReport(0xA), "agent"), to_agent)
    await asyncio.sleep(0.05)
    assert len(member.received()) == 1  # the audio
    data, source = member.rtcp.recvfrom(2048)  # the report, from our RTCP port
    assert source == (HOST, call.member_port + 1) and member.received(rtcp=True) == []
    assert isinstance(rtp.parse_rtcp(data)[0], rtp.ReceiverReport)
    # Back to the agent: on its RTP port, where it sends RTCP from.
    member.rtcp.sendto(rtp.report(rtp.ReceiverReport(0xB), "trunk"), (HOST, call.member_port + 1))
    await asyncio.sleep(0.05)
    back = agent.received()
    assert len(back) == 1 and 192 <= back[0][1] <= 223 and agent.received(rtcp=True) == []
    stats = call.stats
    assert stats["dropped"] == 1 and stats["rtcp_relayed"] == 2 and stats["member_sent"] == 1
    call.close()


async def test_dtmf_start_of_event_with_the_marker_goes_to_the_rtp_port(
    manager: MediaManager, peers: tuple[Peer, Peer, Peer]
) -> None:
    """An RFC 4733 start of event (M=1, PT 101) leaves with second octet 0x80|101 = 229:
    it is RTP and must reach the trunk's RTP port, not its RTCP port (RFC 5761 §4 tells
    RTCP by the PT as it arrived, 64-95 with the marker)."""
    agent, member, _ = peers
    call = await manager.open("dtmf-marker", lambda _: None)
    call.set_agent(StreamSpec(HOST, agent.port, g711.PCMU, event_pt=101,
                              rtcp_port=agent.rtcp_port))  # fmt: skip
    call.set_member(StreamSpec(HOST, member.port, g711.PCMU, event_pt=101,
                               rtcp_port=member.rtcp_port))  # fmt: skip
    call.bridge()
    to_agent = (HOST, call.agent_port)
    for packet in tone(440, g711.PCMU, 3, ssrc=7, seq0=100, ts0=0):
        agent.rtp.sendto(packet, to_agent)
    for k in range(4):  # digit 5, volume 10; the first packet has the marker
        payload = bytes([5, 0x80 * (k == 3) | 10]) + (160 * (k + 1)).to_bytes(2, "big")
        agent.rtp.sendto(rtp.build(payload, 101, 103 + k, 480, 7, marker=k == 0), to_agent)
    await asyncio.sleep(0.05)
    got = member.received()
    events = [p for p in got if p[1] & 0x7F == 101]
    assert len(got) == 7 and len(events) == 4
    assert events[0][1] == 0x80 | 101  # the marker kept, on the RTP port
    assert member.received(rtcp=True) == []
    call.close()


async def test_a_stranger_spraying_the_ports_first_is_not_heard_and_not_sent_to(
    manager: MediaManager, peers: tuple[Peer, Peer, Peer]
) -> None:
    """RTP bleed over real sockets: a host that is not the phone's (127.0.0.2) sends to the
    agent port before the phone does. Its packets reach nobody, the member's audio is not
    sent to it, and the phone (behind "NAT": its SDP names 127.0.0.3, its SIP goes to
    127.0.0.1) latches with its first packet and then hears the member."""
    agent, member, _ = peers
    stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    stranger.bind(("127.0.0.2", 0))
    stranger.setblocking(False)
    try:
        call = await manager.open("bleed", lambda _: None)
        call.set_agent(StreamSpec("127.0.0.3", agent.port, g711.PCMU, signal_host=HOST))
        call.set_member(StreamSpec(HOST, member.port, g711.PCMU))
        call.bridge()
        to_agent, to_member = (HOST, call.agent_port), (HOST, call.member_port)
        for data in tone(300, g711.PCMU, 2, ssrc=0x51, seq0=1, ts0=0):  # under probation
            stranger.sendto(data, to_agent)
        member.rtp.sendto(tone(1000, g711.PCMU, 1, ssrc=0x10, seq0=9, ts0=0)[0], to_member)
        await asyncio.sleep(0.05)
        assert member.received() == []  # the stranger's audio went nowhere
        with pytest.raises(BlockingIOError):
            stranger.recv(2048)  # and the member's did not go to the stranger
        agent.rtp.sendto(tone(440, g711.PCMU, 1, ssrc=0x44, seq0=1, ts0=0)[0], to_agent)
        await asyncio.sleep(0.05)
        member.rtp.sendto(tone(1000, g711.PCMU, 1, ssrc=0x10, seq0=10, ts0=160)[0], to_member)
        await asyncio.sleep(0.05)
        assert len(member.received()) == 1 and len(agent.received()) == 1
        assert call.stats["foreign"] == 2
        call.close()
    finally:
        stranger.close()
