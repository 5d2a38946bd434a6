"""The simulator's RTP: send a tone or a WAV, send RFC 4733 digits, collect what arrives.

Theory of operation. A ``SimMedia`` is one simulated party's audio stream: an
``RtpSocket`` pair from a ``PortPool`` (``media.udp``), the port put in its SDP.

Sending: ``start(pcm)`` loops ``pcm`` as G.711 frames through a ``FramePlayer`` paced by
``media.udp.play`` towards the address of the peer's SDP (``configure``). ``send_dtmf``
stops that player at the next frame, sends each digit as RFC 4733 §2.5 events in the
same RTP stream (same SSRC, sequence numbers and timestamps continuing: the event's
packets carry the timestamp of its start and a growing duration, the first has the
marker bit, the last is sent three times with the E bit), leaves 60 ms between digits,
then resumes the audio with a new player continuing the sequence and timestamps, so a
receiver sees one unbroken stream. ``stop()`` ends sending (hold, hang-up).

Receiving: every datagram on the RTP port (and on the NAT-shifted port, below) is
sorted by payload type. G.711 (PT 0/8) payloads are kept per SSRC with their extended
sequence number; ``received`` decodes them to PCM16 in sequence order, one SSRC after
the other in the order they first appeared (a relay that changes SSRC starts a new
segment); at most ``MAX_KEPT_PACKETS`` (5 minutes) are kept per stream. Telephone
events (the negotiated PT, 101 by default) count once per event: the first packet with
the E bit for an (SSRC, timestamp) pair appends the digit to ``dtmf``; the retransmitted
end packets are ignored (RFC 4733 §2.5.2.2).

NAT simulation: with ``nat_port_shift = n`` the stream advertises port P but sends
from P + n (a second socket bound there, which also receives), as a phone behind a
NAT whose mapping changes the source port; a relay doing symmetric latching must then
send to P + n.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import secrets
import socket
from dataclasses import dataclass, field
from typing import Final

import numpy as np

from sipdialer.media import g711, rtp
from sipdialer.media.g711 import PCM16, SAMPLE_RATE
from sipdialer.media.player import FramePlayer
from sipdialer.media.ports import PortPair, PortPool
from sipdialer.media.rtp import RtpError, TelephoneEvent
from sipdialer.media.tones import amplitude, frames, load_wav
from sipdialer.media.udp import Address, RtpSocket, open_rtp_pair, play, set_buffers

PTIME: Final = 0.02
"Seconds of audio per packet (20 ms, 160 G.711 octets)."
SAMPLES: Final = 160
DIGIT_SECONDS: Final = 0.1
"Length of each RFC 4733 digit sent."
DIGIT_GAP: Final = 3
"Packet slots (60 ms) of quiet after each digit."
END_REPEATS: Final = 3
"The E-bit packet is sent this many times (RFC 4733 §2.5.1.4 recommends three)."
DEFAULT_EVENT_PT: Final = 101
MAX_KEPT_PACKETS: Final = 15_000
"Audio packets kept per stream (5 minutes): a long-running trunk-sim must not grow forever."
TONE_LEVEL_DBM0: Final = -13.0


def tone_pcm(frequency: float, seconds: float = 1.0) -> PCM16:
    """A continuous sine of ``frequency`` Hz at -13 dBm0, ``seconds`` long (looped by the
    player; for whole-Hz tones one second loops without a phase jump)."""
    n = np.arange(round(seconds * SAMPLE_RATE), dtype=np.float64)
    wave = amplitude(TONE_LEVEL_DBM0) * np.sin(2 * math.pi * frequency * n / SAMPLE_RATE)
    return np.round(wave).astype(np.int16)


def audio_for(tone: float, wav: str | None) -> PCM16:
    """What a simulated party sends: the WAV file if given, else the tone."""
    return load_wav(wav) if wav else tone_pcm(tone)


@dataclass
class _Segment:
    """The G.711 packets of one SSRC: extended sequence number -> (PT, payload)."""

    packets: dict[int, tuple[int, bytes]] = field(default_factory=dict)
    last_seq: int = -1
    last_ext: int = 0

    def add(self, seq: int, payload_type: int, payload: bytes) -> None:
        if self.last_seq < 0:
            ext = seq
        else:  # unwrap mod 2**16 around the last sequence number seen
            ext = self.last_ext + ((seq - self.last_seq + 0x8000) & 0xFFFF) - 0x8000
        if ext > self.last_ext or self.last_seq < 0:
            self.last_seq, self.last_ext = seq, ext
        self.packets.setdefault(ext, (payload_type, payload))


class SimMedia:
    """One party's RTP stream (module docstring). Build it with ``await SimMedia.open``."""

    def __init__(self, sock: RtpSocket, send_sock: RtpSocket | None = None) -> None:
        self._sock = sock
        self._send_sock = send_sock or sock
        self._loop = asyncio.get_running_loop()
        self.remote: Address | None = None
        "Where we send: the peer's SDP address."
        self.payload_type = g711.PCMU
        self.event_pt: int | None = DEFAULT_EVENT_PT
        self.audio: PCM16 | None = None
        "What ``start()`` loops: the tone or WAV of this party."
        self._frames: list[bytes] | None = None
        self._player: FramePlayer | None = None
        self._task: asyncio.Task[None] | None = None
        self._digits: list[str] = []
        self.ssrc = secrets.randbits(32)
        self._seq = secrets.randbits(16)
        self._ts = secrets.randbits(32)
        self._segments: dict[int, _Segment] = {}
        self._events_seen: set[tuple[int, int]] = set()
        self.dtmf = ""
        "RFC 4733 digits received, one per event."
        self.packets_received = 0
        self.first_packet_at: float | None = None
        "Loop time of the first RTP packet received (early media arrives before the 200)."
        self.sources: set[Address] = set()
        "Addresses RTP came from."
        self.digits_sent = ""
        self._kept = 0
        self.audio_dropped = 0
        "Audio packets received beyond ``MAX_KEPT_PACKETS`` (counted, not kept)."
        for s in {self._sock, self._send_sock}:
            s.on_rtp = self._receive
            s.on_rtcp = _ignore

    @classmethod
    async def open(cls, host: str, ports: PortPool, *, nat_port_shift: int = 0) -> SimMedia:
        sock = await open_rtp_pair(host, ports)
        if not nat_port_shift:
            return cls(sock)
        try:
            shifted = _bind_pair(host, sock.pair.rtp + nat_port_shift)
        except OSError:
            sock.close()
            raise
        return cls(sock, shifted)

    @property
    def host(self) -> str:
        return self._sock.host

    @property
    def port(self) -> int:
        """The RTP port to put in our SDP."""
        return self._sock.pair.rtp

    @property
    def send_port(self) -> int:
        """The port our RTP leaves from (``port`` unless NAT-shifted)."""
        return self._send_sock.pair.rtp

    # --- sending ----------------------------------------------------------------------

    def configure(self, remote: Address, payload_type: int, event_pt: int | None) -> None:
        """Send to ``remote`` with ``payload_type`` (0 PCMU / 8 PCMA) from now on."""
        payload_type = payload_type if payload_type in (g711.PCMU, g711.PCMA) else g711.PCMU
        changed = (self.remote, self.payload_type) != (remote, payload_type)
        self.remote, self.payload_type, self.event_pt = remote, payload_type, event_pt
        if changed and self._frames is not None and self.audio is not None:
            self._frames = frames(self.audio, payload_type)
            if self._player is not None:
                self._player.stop()  # the send loop goes on with the new frames and address

    def start(self, pcm: PCM16 | None = None) -> None:
        """Loop ``pcm`` (or the audio of the last ``start``) as RTP to ``remote`` until
        ``stop()``. Nothing is sent before ``configure``."""
        self.audio = pcm if pcm is not None else self.audio
        if self.audio is None:
            return
        self._frames = frames(self.audio, self.payload_type)
        if self._task is None or self._task.done():
            self._task = self._loop.create_task(self._run())
        elif self._player is not None:
            self._player.stop()  # the send loop picks up the new frames

    def stop(self) -> None:
        """Stop sending (hold, hang-up); ``start()`` resumes, sequence numbers continuing."""
        self._frames = None
        self._digits.clear()
        if self._player is not None:
            self._player.stop()

    @property
    def sending(self) -> bool:
        return self._task is not None and not self._task.done()

    def send_dtmf(self, digits: str) -> None:
        """Send ``digits`` as RFC 4733 events now (pausing the audio meanwhile)."""
        if self.event_pt is None or self.remote is None:
            return
        self._digits.extend(digits)
        if self._task is None or self._task.done():
            self._task = self._loop.create_task(self._run())
        elif self._player is not None:
            self._player.stop()

    async def _run(self) -> None:
        while self.remote is not None:
            if self._digits:
                await self._send_digits()
                continue
            if self._frames is None:
                return
            player = FramePlayer(self._frames, self.payload_type, loop=True, ssrc=self.ssrc,
                                 sequence=self._seq, timestamp=self._ts)  # fmt: skip
            self._player = player
            try:
                await play(player, self._send_sock, self.remote)
            finally:
                self._player = None
                self._seq, self._ts = player.sequence, player.timestamp

    async def _send_digits(self) -> None:
        assert self.remote is not None and self.event_pt is not None
        start = self._loop.time()
        slot = 0
        updates = max(1, round(DIGIT_SECONDS / PTIME))
        while self._digits and self.remote is not None:
            digit = self._digits.pop(0)
            ts = self._ts + slot * SAMPLES
            packets = [
                TelephoneEvent.for_digit(digit, duration=k * SAMPLES) for k in range(1, updates)
            ]
            end = TelephoneEvent.for_digit(digit, end=True, duration=updates * SAMPLES)
            packets += [end] * END_REPEATS
            for index, event in enumerate(packets):
                await asyncio.sleep(max(0.0, start + slot * PTIME - self._loop.time()))
                data = rtp.build(event.serialize(), self.event_pt, self._seq, ts, self.ssrc,
                                 marker=index == 0)  # fmt: skip
                self._send_sock.send(data, self.remote)
                self._seq = (self._seq + 1) & 0xFFFF
                slot += 1
            self.digits_sent += digit
            slot += DIGIT_GAP
        await asyncio.sleep(max(0.0, start + slot * PTIME - self._loop.time()))
        self._ts = (self._ts + slot * SAMPLES) & 0xFFFFFFFF

    # --- receiving --------------------------------------------------------------------

    def _receive(self, data: bytes, addr: Address, now: float) -> None:
        if rtp.is_rtcp(data):
            return
        try:
            _, pt, seq, ts, ssrc, start, end = rtp.header_fields(data)
        except RtpError:
            return
        self.packets_received += 1
        self.sources.add(addr)
        if self.first_packet_at is None:
            self.first_packet_at = now
        if pt == (self.event_pt if self.event_pt is not None else DEFAULT_EVENT_PT):
            try:
                event = TelephoneEvent.parse(data[start:end])
            except RtpError:
                return
            if event.end and (ssrc, ts) not in self._events_seen and event.digit:
                self._events_seen.add((ssrc, ts))
                self.dtmf += event.digit
        elif pt in (g711.PCMU, g711.PCMA):
            if self._kept >= MAX_KEPT_PACKETS:
                self.audio_dropped += 1
                return
            self._kept += 1
            self._segments.setdefault(ssrc, _Segment()).add(seq, pt, data[start:end])

    @property
    def received(self) -> PCM16:
        """The audio received, decoded to PCM16 in sequence order (module docstring)."""
        parts = [
            g711.decode(payload, pt)
            for segment in self._segments.values()
            for _, (pt, payload) in sorted(segment.packets.items())
        ]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)

    @property
    def audio_packets(self) -> int:
        return sum(len(s.packets) for s in self._segments.values())

    async def close(self) -> None:
        """Stop sending, close the sockets; what was received stays readable."""
        self.stop()
        self.remote = None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._sock.close()
        self._send_sock.close()


def _ignore(data: bytes, addr: Address, now: float) -> None:
    """RTCP is not looked at by the simulator."""


def _bind_pair(host: str, port: int) -> RtpSocket:
    """An RTP/RTCP socket pair at exactly ``port``/``port + 1`` (outside any pool)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    bound: list[socket.socket] = []
    try:
        for p in (port, port + 1):
            sock = socket.socket(family, socket.SOCK_DGRAM)
            bound.append(sock)
            sock.setblocking(False)
            set_buffers(sock)
            sock.bind((host, p))
    except OSError:
        for sock in bound:
            sock.close()
        raise
    loop = asyncio.get_running_loop()
    return RtpSocket(loop, bound[0], bound[1], PortPair(port, port + 1), None)
