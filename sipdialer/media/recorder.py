"""Call recording: the bridged audio of both legs as one stereo 8 kHz WAV (pure buffering).

Theory of operation. While a call is bridged the relay hands every audio packet it
receives to ``Recorder.add(channel, packet, now)``: channel 0 is the agent (left), 1 the
member (right). ``add`` keeps a reference to the packet's octets and its arrival time;
nothing is parsed or decoded per packet (the relay's hot path stays struct-only). At the
end ``pcm()`` decodes and places everything, and ``write_wav(path, left, right)`` writes
the file.

Placement (alignment of the two channels). Both channels share one timeline: sample 0 is
``start(now)``, the moment the call was bridged. Within one incoming stream (an SSRC) a
packet's place is given by its RTP timestamp relative to the stream's anchor, so network
jitter does not smear the audio; the anchor is the arrival time of the stream's first
packet. A stream whose timestamps drift more than ``RESYNC`` seconds away from the arrival
clock (a sender that paused without advancing its timestamps, a clock running fast)
re-anchors on the arrival time of that packet, so the two channels never drift apart by
more than that. Gaps are silence; where two packets overlap, the later one wins. The
agent and member channels are thus aligned to within the difference of their first
packets' network delays, a few milliseconds on a LAN.

Costs: memory is the packets themselves (~10 kB/s per channel for 20 ms G.711), so a
recording stops growing after ``max_seconds`` (4 h by default). Decoding happens once at
the end, with numpy, over every packet; the WAV is written synchronously by the caller
(``media.bridge`` does it in ``CallMedia.close()``).
"""

from __future__ import annotations

import wave
from array import array
from pathlib import Path
from typing import Final

import numpy as np

from .g711 import PCM16, PCMA, PCMU, SAMPLE_RATE, decode
from .rtp import RtpError, header_fields

RESYNC: Final = 0.25
"Seconds a stream's timestamp may drift from its arrival time before it re-anchors."
MAX_SECONDS: Final = 4 * 3600.0
"Default cap on a recording's length; later packets are not kept."
CHANNELS: Final = ("agent", "member")
"Channel 0 (left) is the agent, 1 (right) the member."


class Recorder:
    """Buffer the bridged audio of both legs; ``pcm()`` decodes and aligns it."""

    def __init__(self, *, max_seconds: float = MAX_SECONDS) -> None:
        self._start: float | None = None
        self._end = 0.0
        self._max = max_seconds
        self._packets: tuple[list[bytes], list[bytes]] = ([], [])
        self._arrivals: tuple[array[float], array[float]] = (array("d"), array("d"))

    def start(self, now: float) -> None:
        """Sample 0 of the recording is ``now``. A second call is ignored."""
        if self._start is None:
            self._start = now
            self._end = now + self._max

    def add(self, channel: int, packet: bytes, now: float) -> None:
        """Keep one RTP packet (PCMU or PCMA) that arrived on ``channel`` at ``now``."""
        if self._start is not None and now < self._end:
            self._packets[channel].append(packet)
            self._arrivals[channel].append(now)

    @property
    def empty(self) -> bool:
        return not (self._packets[0] or self._packets[1])

    def packets(self, channel: int) -> int:
        return len(self._packets[channel])

    def pcm(self) -> tuple[PCM16, PCM16]:
        """Both channels decoded and placed on the common timeline, of equal length."""
        if self._start is None:
            empty = np.zeros(0, dtype=np.int16)
            return empty, empty.copy()
        placed = [_place(self._packets[ch], self._arrivals[ch], self._start) for ch in (0, 1)]
        length = max((start + len(s) for channel in placed for start, s in channel), default=0)
        out = []
        for channel in placed:
            pcm = np.zeros(length, dtype=np.int16)
            for start, samples in channel:
                pcm[start : start + len(samples)] = samples
            out.append(pcm)
        return out[0], out[1]


def _place(packets: list[bytes], arrivals: array[float], t0: float) -> list[tuple[int, PCM16]]:
    """(first sample, decoded samples) per packet, by RTP timestamp within a stream."""
    resync = round(RESYNC * SAMPLE_RATE)
    placed: list[tuple[int, PCM16]] = []
    anchor_ssrc = -1
    anchor_pos = anchor_ts = 0
    for packet, arrival in zip(packets, arrivals, strict=True):
        try:
            _, pt, _, ts, ssrc, start, end = header_fields(packet)
        except RtpError:
            continue
        if pt not in (PCMU, PCMA) or end <= start:
            continue
        arrived_at = round((arrival - t0) * SAMPLE_RATE)
        delta = (ts - anchor_ts) & 0xFFFFFFFF
        if delta >= 0x80000000:
            delta -= 0x100000000
        pos = anchor_pos + delta
        if ssrc != anchor_ssrc or abs(pos - arrived_at) > resync:
            anchor_ssrc, anchor_pos, anchor_ts, pos = ssrc, arrived_at, ts, arrived_at
        if pos < 0:
            continue  # before the bridge (a late packet of early media)
        placed.append((pos, decode(packet[start:end], pt)))
    return placed


def write_wav(path: str | Path, left: PCM16, right: PCM16) -> None:
    """Write a stereo PCM16 8 kHz WAV: ``left`` (agent) and ``right`` (member)."""
    if len(left) != len(right):
        raise ValueError(f"channels differ in length: {len(left)} and {len(right)}")
    frames = np.empty((len(left), 2), dtype="<i2")
    frames[:, 0] = left
    frames[:, 1] = right
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(2)
        wav.setsampwidth(2)
        wav.setframerate(SAMPLE_RATE)
        wav.writeframes(frames.tobytes())
