"""Play prepared G.711 frames as an RTP stream, paced by ``now`` (a pure core).

Theory of operation. Frame *k* of the stream is due at ``start + k * ptime`` and carries
the RTP timestamp ``timestamp0 + k * samples_per_frame``: the timeline is fixed at
``start(now)``, so a late wake never shifts what comes after it. The owner (a shell,
``media.udp.play``, or later a relay leg) follows the aioquic contract::

    player.start(now)
    every time the clock reaches player.get_timer():
        for packet in player.packets_due(now): send it
    until player.finished (or get_timer() is None)

``packets_due`` returns every frame due by ``now`` not sent yet, but at most
``max_burst`` (default ``MAX_BURST`` = 3 frames, 60 ms at 20 ms ptime). When the wake is
later than that, the older missed frames are skipped: their audio is not sent, the
timestamps still advance over them (the receiver sees the right media time, and a seq
that is continuous, so no loss is reported), and the first packet after the gap has the
marker bit, as at the start of a talkspurt (RFC 3551 §4.1), so the receiver's jitter
buffer may re-align instead of stretching. A burst of up to 60 ms fits any jitter buffer;
sending a whole second of backlog at once after a stall would just overflow it.

RTP rules kept (RFC 3550 §5.1): random initial SSRC, sequence number and timestamp
unless given; seq +1 per packet sent, mod 2**16; the marker bit on the first packet.
One-shot players finish after their last frame; looping ones (ringback) run until
``stop()``. ``sequence`` and ``timestamp`` tell a later stream where to continue.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Sequence
from typing import Final

from . import rtp
from .g711 import PCM16, SAMPLE_RATE
from .tones import Tone, frame_samples, frames

MAX_BURST: Final = 3
"Most frames one late wake sends; older missed frames are skipped (module docstring)."
_EPSILON: Final = 1e-6
"A wake this close before a deadline counts as on time (float rounding of the clock)."


class FramePlayer:
    """Turn a sequence of equal G.711 frames into RTP packets paced by ``now``."""

    def __init__(
        self,
        frames: Sequence[bytes],
        payload_type: int,
        *,
        ptime: float = 0.02,
        loop: bool = False,
        ssrc: int | None = None,
        sequence: int | None = None,
        timestamp: int | None = None,
        max_burst: int = MAX_BURST,
    ) -> None:
        self._samples = frame_samples(ptime)
        if not frames or any(len(frame) != self._samples for frame in frames):
            raise ValueError(f"need one or more frames of {self._samples} octets (ptime {ptime})")
        if not 0 <= payload_type <= 127 or max_burst < 1:
            raise ValueError("payload type is 0-127 and max_burst at least 1")
        self._frames = tuple(frames)
        self._pt = payload_type
        self._ptime = ptime
        self._loop = loop
        self._max_burst = max_burst
        self.ssrc = secrets.randbits(32) if ssrc is None else ssrc
        "RTP SSRC of the stream."
        self._seq = secrets.randbits(16) if sequence is None else sequence & 0xFFFF
        self._ts0 = secrets.randbits(32) if timestamp is None else timestamp & 0xFFFFFFFF
        self._start: float | None = None
        self._index = 0  # next slot on the timeline; skipped slots count too
        self._marker = True
        self._finished = False
        self.packets_sent = 0
        "Packets returned so far (an SR's packet count)."
        self.octets_sent = 0
        "Payload octets returned so far (an SR's octet count)."

    @classmethod
    def from_pcm(
        cls,
        pcm: PCM16,
        payload_type: int,
        *,
        ptime: float = 0.02,
        loop: bool = False,
        ssrc: int | None = None,
        sequence: int | None = None,
        timestamp: int | None = None,
    ) -> FramePlayer:
        """A player of PCM16 audio, encoded as PCMU (0) or PCMA (8)."""
        return cls(
            frames(pcm, payload_type, ptime),
            payload_type,
            ptime=ptime,
            loop=loop,
            ssrc=ssrc,
            sequence=sequence,
            timestamp=timestamp,
        )

    @classmethod
    def from_tone(
        cls,
        tone: Tone,
        payload_type: int,
        *,
        ptime: float = 0.02,
        ssrc: int | None = None,
        sequence: int | None = None,
        timestamp: int | None = None,
    ) -> FramePlayer:
        """A player of ``tone``: looping if the tone repeats (ringback), else one-shot."""
        return cls.from_pcm(
            tone.pcm(),
            payload_type,
            ptime=ptime,
            loop=tone.repeat,
            ssrc=ssrc,
            sequence=sequence,
            timestamp=timestamp,
        )

    # -- inputs ----------------------------------------------------------------------

    def start(self, now: float) -> None:
        """Fix the timeline: the first frame is due at ``now``. Call once."""
        if self._start is not None:
            raise RuntimeError("player already started")
        self._start = now

    def stop(self) -> None:
        """Send nothing more; ``finished`` becomes true. Repeated calls are harmless."""
        self._finished = True

    def packets_due(self, now: float) -> list[bytes]:
        """The RTP packets due by ``now`` (at most ``max_burst``); an early call gets []."""
        if self._start is None or self._finished:
            return []
        due = math.floor((now - self._start + _EPSILON) / self._ptime) + 1
        if not self._loop:
            due = min(due, len(self._frames))
        if due - self._index > self._max_burst:
            self._index = due - self._max_burst  # skip the oldest; timestamps follow slots
            self._marker = True
        packets = []
        count = len(self._frames)
        while self._index < due:
            frame = self._frames[self._index % count]
            ts = self._ts0 + self._index * self._samples
            packets.append(
                rtp.build(frame, self._pt, self._seq, ts, self.ssrc, marker=self._marker)
            )
            self._marker = False
            self._seq = (self._seq + 1) & 0xFFFF
            self._index += 1
            self.octets_sent += len(frame)
        self.packets_sent += len(packets)
        if not self._loop and self._index >= count:
            self._finished = True
        return packets

    # -- outputs ---------------------------------------------------------------------

    def get_timer(self) -> float | None:
        """When the next frame is due; None before ``start`` and once finished."""
        if self._start is None or self._finished:
            return None
        return self._start + self._index * self._ptime

    @property
    def started(self) -> bool:
        return self._start is not None

    @property
    def finished(self) -> bool:
        """True after a one-shot player's last frame, or after ``stop()``."""
        return self._finished

    @property
    def payload_type(self) -> int:
        return self._pt

    @property
    def sequence(self) -> int:
        """The sequence number the next packet gets (a later stream may continue it)."""
        return self._seq

    @property
    def timestamp(self) -> int:
        """The RTP timestamp of the next slot on the timeline, mod 2**32."""
        return (self._ts0 + self._index * self._samples) & 0xFFFFFFFF

    @property
    def clock_rate(self) -> int:
        return SAMPLE_RATE
