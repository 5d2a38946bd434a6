"""The per-call RTP relay between the agent leg and the member leg (a pure core).

Theory of operation. A ``CallRelay`` holds two ``Leg`` objects, ``agent`` and
``member``; each describes one remote peer (what its SDP said, where it really sends
from) *and* the one outgoing RTP stream we send to it. The shell (``media.bridge``) feeds
every datagram with ``agent_rtp(data, addr, now)`` and friends; each returns the octets to
send to the other leg (at ``leg.rtp_to`` / ``leg.rtcp_to``) or None. Nothing else is
allocated per packet: one ``struct`` read, one ``struct`` pack plus the payload copy (or
``bytes.translate`` when the legs use different G.711 laws), a few integer attributes.

Modes (``Mode``), switched by the calls layer:

- ``IDLE``: nothing is sent. ``RINGBACK``: the local ringback tone (a looping
  ``FramePlayer``, driven by ``get_timer()`` / ``packets_due(now)``) goes to the agent.
- ``EARLY_MEDIA``: member → agent is relayed; the agent's audio is not sent to the member.
- ``BRIDGED``: both ways; the media timeout is armed and recording starts.

Symmetric latching (the NAT rule of rtpproxy/Asterisk ``strictrtp``): until a leg has sent
anything we send to the address its SDP gave. The first RTP packet from the leg, whatever
its source, latches ``rtp_to`` to that source. Later a packet from another address is
dropped (counted in ``foreign``) unless the latched source has been silent for
``RELATCH_AFTER`` seconds: then the new source is latched (a phone that moved, a NAT
binding that changed). An SSRC change alone does not re-latch (anyone could send one).
A new ``StreamSpec`` with a different address (re-INVITE) forgets the latch. RTCP
latches likewise on its own: the first RTCP datagram, then re-latch only from the same
host as the RTCP or RTP source latched (a port change behind the same NAT). RTCP
arriving on the RTP port (rtcp-mux) is recognised (RFC 5761 §4) and sent back that way.

One continuous stream per direction: each leg's outgoing stream has its own SSRC,
sequence number and timestamp. Whenever its source changes (ringback player, an incoming
SSRC, a gap because packets were held back), the stream re-anchors: offsets are chosen so
that the next sequence number follows the last one sent and the timestamp advances by the
wall-clock time since the last packet sent (at least one frame), and that packet gets the
marker bit (RFC 3551 §4.1, "beginning of a talkspurt"), so the receiver's jitter buffer
re-syncs. Within a source, sequence and timestamp gaps are kept (the receiver sees the
loss it should see). G.711 frames are relayed as they come (no repacketisation).

Payload types: PCMU (0) and PCMA (8) from a leg are relayed as audio, transcoded by
``bytes.translate`` when the receiving leg uses the other law (counted ``transcoded``).
The leg's RFC 4733 telephone-event PT is relayed with the receiving leg's event PT, same
SSRC/seq/timestamp space as the audio (RFC 4733 §2.1), never transcoded; when the
receiving leg negotiated no event PT the packet is dropped (``dtmf_dropped``). Anything
else (comfort noise, unknown PTs, malformed) is dropped and counted.

RTCP (RFC 3550 §6) is forwarded in the directions RTP is. The first packet of the
compound (an SR or RR) gets the outgoing stream's SSRC as its sender SSRC, and an SR's
RTP timestamp is shifted by the same offset as the stream, so the receiver can tie the SR
to the stream it hears. Report blocks and SDES are passed as they are: their SSRCs name
streams of the other leg, which a receiver ignores (RFC 3550 §6.4: blocks about sources
it does not know). Hold: a leg whose ``StreamSpec.send`` is False gets no RTP (ringback
included); RTCP still goes to it (RFC 3264 §5.1 keeps RTCP flowing on hold).

Loss: per incoming stream, sequence gaps (``lost``); a late packet takes one back, so
``lost`` is "expected minus received" as in RFC 3550 §6.4.1.

Media timeout: in ``BRIDGED``, when a leg whose spec says ``receive`` has sent no RTP for
``media_timeout`` seconds, ``handle_timer(now)`` returns True, once.
"""

from __future__ import annotations

import secrets
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum, auto
from typing import Final

from .g711 import ALAW_TO_ULAW, PCM16, PCMA, PCMU, SAMPLE_RATE, ULAW_TO_ALAW
from .player import FramePlayer
from .recorder import Recorder
from .rtp import RtpError, header_fields
from .tones import frames

Address = tuple[str, int]

RELATCH_AFTER: Final = 0.5
"Seconds a latched source must be silent before a packet from another address re-latches."
MAX_DROPOUT: Final = 3000
"A forward sequence jump larger than this is a restarted source, not loss (RFC 3550 A.1)."
UNSPECIFIED_HOSTS: Final = frozenset({"0.0.0.0", "::", ""})
"SDP addresses that mean 'do not send here' (RFC 3264 §8.4 hold with c=0.0.0.0)."

_FIXED = struct.Struct("!BBHII")
_pack = _FIXED.pack
_unpack = _FIXED.unpack_from
_U32 = struct.Struct("!I")
_PLAYER: Final = -1
"``Leg.source`` while the ringback player feeds the stream; -2: nothing (re-anchor next)."
_NONE: Final = -2
_LEG_COUNTERS: Final = ("received", "lost", "sent", "transcoded", "rtcp_sent", "suppressed",
                        "dtmf_events")  # fmt: skip


@dataclass(frozen=True)
class StreamSpec:
    """One leg's negotiated stream (from ``sip.sdp_offer.Negotiated``)."""

    host: str
    "Where the peer's SDP says to send RTP (symmetric latching may replace it)."
    port: int
    payload_type: int
    "0 PCMU or 8 PCMA: what this leg sends and expects to receive."
    event_pt: int | None = None
    "This leg's RFC 4733 telephone-event PT (None: not negotiated)."
    ptime: int = 20
    "Milliseconds per frame the peer wants (used for the ringback frames)."
    rtcp_port: int | None = None
    "a=rtcp, else port + 1."
    send: bool = True
    "False while the peer holds us (sendonly/inactive/c=0.0.0.0): send it no RTP."
    receive: bool = True
    "False while we must not expect RTP from it (it holds): no media timeout then."

    def __post_init__(self) -> None:
        if self.payload_type not in (PCMU, PCMA):
            raise ValueError(f"payload type is 0 (PCMU) or 8 (PCMA), not {self.payload_type}")
        if self.event_pt is not None and not 96 <= self.event_pt <= 127:
            raise ValueError(f"telephone-event PT is dynamic (96-127), not {self.event_pt}")

    @property
    def rtp_address(self) -> Address | None:
        return None if self.host in UNSPECIFIED_HOSTS else (self.host, self.port)

    @property
    def rtcp_address(self) -> Address | None:
        rtcp = self.port + 1 if self.rtcp_port is None else self.rtcp_port
        return None if self.host in UNSPECIFIED_HOSTS else (self.host, rtcp)


class Mode(Enum):
    IDLE = auto()
    RINGBACK = auto()
    EARLY_MEDIA = auto()
    BRIDGED = auto()
    CLOSED = auto()


class Leg:
    """One remote peer: where to reach it, what it sends us, and our stream to it."""

    __slots__ = (
        "name", "spec", "pt", "event_pt", "rtp_to", "rtcp_to", "latched", "rtcp_latched",
        "rtcp_mux", "send", "last_rx", "quiet_since", "in_ssrc", "in_next", "last_event_ts",
        "received", "lost", "dtmf_events", "out_ssrc", "out_seq", "out_ts", "out_at", "source",
        "seq_off", "ts_off", "marker", "sent", "transcoded", "rtcp_sent", "suppressed",
    )  # fmt: skip

    def __init__(self, name: str) -> None:
        self.name = name
        self.spec: StreamSpec | None = None
        self.pt = PCMU
        "The audio PT this leg receives (its spec's), until a spec arrives PCMU."
        self.event_pt: int | None = None
        self.rtp_to: Address | None = None
        "Where its RTP goes now: the latched source, else the SDP address, else None."
        self.rtcp_to: Address | None = None
        self.latched: Address | None = None
        self.rtcp_latched: Address | None = None
        self.rtcp_mux = False
        "The leg sent RTCP to our RTP port: send its RTCP from there too."
        self.send = True
        "False while its spec says hold (send nothing)."
        self.last_rx = -1e18
        "When its last accepted RTP packet arrived."
        self.quiet_since = 0.0
        "Media timeout counts from max(last_rx, quiet_since)."
        # -- what it sends us
        self.in_ssrc = -1
        self.in_next = 0
        self.last_event_ts = -1
        self.received = 0
        self.lost = 0
        self.dtmf_events = 0
        "RFC 4733 events it sent (distinct event timestamps)."
        # -- our stream to it
        self.out_ssrc = secrets.randbits(32)
        self.out_seq = secrets.randbits(16)
        "Sequence number the next packet gets."
        self.out_ts = secrets.randbits(32)
        "Timestamp of the last packet sent (or the random origin)."
        self.out_at: float | None = None
        "When the last packet was sent; None: nothing sent yet."
        self.source = _NONE
        "The incoming SSRC the offsets are anchored to (or _PLAYER / _NONE)."
        self.seq_off = 0
        self.ts_off = 0
        self.marker = True
        "Set the marker bit on the next packet sent (re-anchored)."
        self.sent = 0
        self.transcoded = 0
        self.rtcp_sent = 0
        self.suppressed = 0
        "Packets for this leg not sent because of the mode or hold."

    def set_spec(self, spec: StreamSpec, now: float) -> None:
        old = self.spec
        self.spec = spec
        self.pt = spec.payload_type
        self.event_pt = spec.event_pt
        if old is None or (old.host, old.port) != (spec.host, spec.port):
            self.latched = None  # a new address (re-INVITE): learn the source again
            self.rtp_to = spec.rtp_address
        if old is None or old.rtcp_address != spec.rtcp_address:
            self.rtcp_latched = None
            self.rtcp_mux = False
            self.rtcp_to = spec.rtcp_address
        if spec.receive and (old is None or not old.receive):
            self.quiet_since = now  # the timeout counts from when we expect media again
        self.send = spec.send
        if not spec.send:
            self.source = _NONE  # resuming re-anchors the stream

    def anchor(self, ssrc: int, seq: int, ts: int, now: float) -> None:
        """Continue our stream from a new source: next seq, timestamp by the clock."""
        if self.out_at is None:
            step = 0
        else:
            frame = SAMPLE_RATE * (self.spec.ptime if self.spec else 20) // 1000
            step = max(frame, round((now - self.out_at) * SAMPLE_RATE))
        self.seq_off = self.out_seq - seq
        self.ts_off = self.out_ts + step - ts
        self.source = ssrc
        self.marker = True

    def counters(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in _LEG_COUNTERS}


class RingbackFrames:
    """The ringback PCM16 as G.711 frames, prepared once per (payload type, ptime)."""

    def __init__(self, pcm: PCM16) -> None:
        self._pcm = pcm
        self._cache: dict[tuple[int, int], list[bytes]] = {}

    def get(self, payload_type: int, ptime: int) -> Sequence[bytes]:
        key = (payload_type, ptime)
        if key not in self._cache:
            self._cache[key] = frames(self._pcm, payload_type, ptime / 1000)
        return self._cache[key]


class CallRelay:
    """The relay decisions of one call (module docstring); the shell owns sockets and time."""

    def __init__(
        self, ringback: RingbackFrames, *, media_timeout: float, recorder: Recorder | None = None
    ) -> None:
        self.agent = Leg("agent")
        self.member = Leg("member")
        self.mode = Mode.IDLE
        self._ringback = ringback
        self._player: FramePlayer | None = None
        self._frame = 160
        self._timeout = media_timeout
        self._timed_out = False
        self.recorder = recorder
        self._recording = False
        self.dropped = 0
        "Malformed, unknown payload type, or an event the other leg cannot take."
        self.foreign = 0
        "RTP/RTCP from an address other than the latched one (not re-latched)."
        self.dtmf_dropped = 0
        self.rtcp_relayed = 0
        self.ringback_sent = 0

    # -- control (the calls layer, through the shell) -------------------------------------

    def set_agent(self, spec: StreamSpec, now: float) -> None:
        self.agent.set_spec(spec, now)

    def set_member(self, spec: StreamSpec, now: float) -> None:
        self.member.set_spec(spec, now)

    def ringback(self, now: float) -> None:
        """Play the ringback tone to the agent, continuing the agent-bound stream."""
        if self.mode is Mode.CLOSED:
            return
        self.mode = Mode.RINGBACK
        if self._player is not None:
            return
        leg = self.agent
        ptime = leg.spec.ptime if leg.spec and 10 <= leg.spec.ptime <= 60 else 20
        self._frame = 8 * ptime  # samples per ringback frame
        step = 0 if leg.out_at is None else max(8 * ptime, round((now - leg.out_at) * 8000))
        self._player = FramePlayer(
            self._ringback.get(leg.pt, ptime),
            leg.pt,
            ptime=ptime / 1000,
            loop=True,
            ssrc=leg.out_ssrc,
            sequence=leg.out_seq,
            timestamp=leg.out_ts + step,
        )
        self._player.start(now)
        leg.source = _PLAYER

    def early_media(self, now: float) -> None:
        """Relay member → agent (stops the ringback); the agent's audio is held back."""
        if self.mode is not Mode.CLOSED:
            self._stop_player()
            self.mode = Mode.EARLY_MEDIA

    def bridge(self, now: float) -> None:
        """Relay both ways; arms the media timeout and starts recording."""
        if self.mode is Mode.CLOSED:
            return
        self._stop_player()
        if self.mode is not Mode.BRIDGED:
            self.agent.quiet_since = self.member.quiet_since = now
        self.mode = Mode.BRIDGED
        if self.recorder is not None and not self._recording:
            self._recording = True
            self.recorder.start(now)

    def close(self) -> None:
        self._stop_player()
        self.mode = Mode.CLOSED

    def _stop_player(self) -> None:
        if self._player is not None:
            self._player.stop()
            self._player = None
            self.agent.source = _NONE

    # -- timers ---------------------------------------------------------------------------

    def get_timer(self) -> float | None:
        """The next ringback frame or media-timeout deadline; None when neither runs."""
        deadlines = []
        if self._player is not None:
            at = self._player.get_timer()
            if at is not None:
                deadlines.append(at)
        timeout_at = self.timeout_at()
        if timeout_at is not None:
            deadlines.append(timeout_at)
        return min(deadlines) if deadlines else None

    def timeout_at(self) -> float | None:
        """When the media timeout fires if no RTP arrives; None when it is not armed."""
        if self.mode is not Mode.BRIDGED or self._timeout <= 0 or self._timed_out:
            return None
        ats = [
            max(leg.last_rx, leg.quiet_since) + self._timeout
            for leg in (self.agent, self.member)
            if leg.spec is None or leg.spec.receive
        ]
        return min(ats) if ats else None

    def handle_timer(self, now: float) -> bool:
        """Expire the media timeout: True the first time it has passed. Spurious calls
        are harmless; send ``packets_due(now)`` after it."""
        at = self.timeout_at()
        if at is not None and now >= at:
            self._timed_out = True
            return True
        return False

    def packets_due(self, now: float) -> list[bytes]:
        """Ringback packets for the agent due by ``now`` (to ``agent.rtp_to``)."""
        player = self._player
        if player is None:
            return []
        packets = player.packets_due(now)
        if not packets:
            return packets
        leg = self.agent
        leg.out_seq = player.sequence
        leg.out_ts = (player.timestamp - self._frame) & 0xFFFFFFFF  # the last one sent
        leg.out_at = now
        if leg.rtp_to is None or not leg.send:
            leg.suppressed += len(packets)
            return []
        self.ringback_sent += len(packets)
        return packets

    # -- RTP, per packet ------------------------------------------------------------------

    def agent_rtp(self, data: bytes, addr: Address, now: float) -> bytes | None:
        """RTP (or muxed RTCP) from the agent: the octets to send to ``member.rtp_to``."""
        return self._relay(self.agent, self.member, self.mode is Mode.BRIDGED, 0, data, addr, now)

    def member_rtp(self, data: bytes, addr: Address, now: float) -> bytes | None:
        """RTP (or muxed RTCP) from the member: the octets to send to ``agent.rtp_to``."""
        mode = self.mode
        on = mode is Mode.BRIDGED or mode is Mode.EARLY_MEDIA
        return self._relay(self.member, self.agent, on, 1, data, addr, now)

    def _relay(
        self, src: Leg, dst: Leg, on: bool, channel: int, data: bytes, addr: Address, now: float
    ) -> bytes | None:
        try:
            b0, b1, seq, ts, ssrc = _unpack(data)
        except struct.error:
            self.dropped += 1
            return None
        pt = b1 & 0x7F
        if b0 & 0xC0 != 0x80:
            self.dropped += 1
            return None
        if 64 <= pt <= 95:  # RFC 5761 §4: RTCP on the RTP port (second octet 192-223)
            return self._rtcp(src, dst, on, data, addr, True)
        if addr != src.latched:
            if src.latched is not None and now - src.last_rx < RELATCH_AFTER:
                self.foreign += 1
                return None
            src.latched = src.rtp_to = addr
        src.last_rx = now
        # Loss per incoming stream (RFC 3550 A.1, simplified: no probation).
        if ssrc != src.in_ssrc:
            src.in_ssrc = ssrc
            src.in_next = (seq + 1) & 0xFFFF
        else:
            gap = (seq - src.in_next) & 0xFFFF
            if gap < 0x8000:
                if gap <= MAX_DROPOUT:  # a larger jump is a restart, not loss
                    src.lost += gap
                src.in_next = (seq + 1) & 0xFFFF
            elif src.lost > 0:  # late (reordered): counted lost before, here now
                src.lost -= 1
        src.received += 1
        if pt == PCMU or pt == PCMA:
            out_pt = dst.pt
            transcode = out_pt != pt
            if self._recording and self.recorder is not None:
                self.recorder.add(channel, data, now)
        elif pt == src.event_pt:
            if ts != src.last_event_ts:
                src.last_event_ts = ts
                src.dtmf_events += 1
            if dst.event_pt is None:
                self.dtmf_dropped += 1
                self.dropped += 1
                return None
            out_pt = dst.event_pt
            transcode = False
        else:  # comfort noise (13) and anything not negotiated
            self.dropped += 1
            return None
        if not on or dst.rtp_to is None or not dst.send:
            dst.suppressed += 1
            dst.source = _NONE
            return None
        if ssrc != dst.source:
            dst.anchor(ssrc, seq, ts, now)
        out_seq = (seq + dst.seq_off) & 0xFFFF
        out_ts = (ts + dst.ts_off) & 0xFFFFFFFF
        if dst.marker:
            dst.marker = False
            b1 = 0x80 | out_pt
        else:
            b1 = (b1 & 0x80) | out_pt
        if (out_seq - dst.out_seq) & 0xFFFF < 0x8000:  # in order: advance the stream
            dst.out_seq = (out_seq + 1) & 0xFFFF
            dst.out_ts = out_ts
            dst.out_at = now
        dst.sent += 1
        if transcode:  # PCMU <-> PCMA
            dst.transcoded += 1
            table = ULAW_TO_ALAW if out_pt == PCMA else ALAW_TO_ULAW
            if b0 == 0x80:  # no CSRC, extension or padding: the rest is payload
                return _pack(b0, b1, out_seq, out_ts, dst.out_ssrc) + data[12:].translate(table)
            return self._transcode_long(data, b0, b1, out_seq, out_ts, dst.out_ssrc, table)
        return _pack(b0, b1, out_seq, out_ts, dst.out_ssrc) + data[12:]

    def _transcode_long(
        self, data: bytes, b0: int, b1: int, seq: int, ts: int, ssrc: int, table: bytes
    ) -> bytes | None:
        try:
            start, end = header_fields(data)[5:]
        except RtpError:
            self.dropped += 1
            return None
        head = _pack(b0, b1, seq, ts, ssrc) + data[12:start]
        return head + data[start:end].translate(table) + data[end:]

    # -- RTCP -----------------------------------------------------------------------------

    def agent_rtcp(self, data: bytes, addr: Address, now: float) -> bytes | None:
        """RTCP from the agent: the octets to send to ``member.rtcp_to``."""
        return self._rtcp(self.agent, self.member, self.mode is Mode.BRIDGED, data, addr, False)

    def member_rtcp(self, data: bytes, addr: Address, now: float) -> bytes | None:
        """RTCP from the member: the octets to send to ``agent.rtcp_to``."""
        on = self.mode is Mode.BRIDGED or self.mode is Mode.EARLY_MEDIA
        return self._rtcp(self.member, self.agent, on, data, addr, False)

    def _rtcp(
        self, src: Leg, dst: Leg, on: bool, data: bytes, addr: Address, muxed: bool
    ) -> bytes | None:
        if len(data) < 8 or data[0] & 0xC0 != 0x80 or not 192 <= data[1] <= 223:
            self.dropped += 1
            return None
        if addr != src.rtcp_latched:
            known = src.rtcp_latched
            if known is not None and addr[0] != known[0] and addr[0] != (src.latched or known)[0]:
                self.foreign += 1
                return None
            src.rtcp_latched = src.rtcp_to = addr
            src.rtcp_mux = muxed
        if not on or dst.rtcp_to is None:
            return None
        out = bytearray(data)
        packet_type = data[1]
        if packet_type in (200, 201):  # SR/RR: sender SSRC, then (SR) NTP and RTP time
            _U32.pack_into(out, 4, dst.out_ssrc)
            if packet_type == 200 and len(data) >= 20 and dst.source == src.in_ssrc >= 0:
                rtp_ts = _U32.unpack_from(data, 16)[0]
                _U32.pack_into(out, 16, (rtp_ts + dst.ts_off) & 0xFFFFFFFF)
        self.rtcp_relayed += 1
        dst.rtcp_sent += 1
        return bytes(out)

    # -- figures --------------------------------------------------------------------------

    def counters(self) -> dict[str, int]:
        """Per-call counters: each leg's, prefixed, and the call's drops."""
        out = {f"agent_{k}": v for k, v in self.agent.counters().items()}
        out.update({f"member_{k}": v for k, v in self.member.counters().items()})
        out.update(
            dropped=self.dropped,
            foreign=self.foreign,
            dtmf_dropped=self.dtmf_dropped,
            rtcp_relayed=self.rtcp_relayed,
            ringback_sent=self.ringback_sent,
        )
        return out
