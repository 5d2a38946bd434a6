"""The per-call RTP relay between the agent leg and the member leg (a pure core).

Theory of operation. A ``CallRelay`` holds two ``Leg`` objects, ``agent`` and
``member``; each describes one remote peer (what its SDP said, where it really sends
from) *and* the one outgoing RTP stream we send to it. The shell (``media.bridge``) feeds every
RTP datagram with ``rtp_into(src, dst, buf, n, addr, now)``: the datagram is rewritten
in place in the shell's receive buffer and the method returns where to send it (the other
leg's ``rtp_to``, or ``rtcp_to`` for muxed RTCP) or None. Nothing is allocated per packet
beyond what the ``struct`` read returns: one ``pack_into`` over the 12-octet header and,
when the legs use different G.711 laws, one ``translate`` of the payload. The
``agent_rtp(data, addr, now)`` family does the same on a copy and returns ``bytes``
(RTCP, a few packets per second, goes that way).

Modes (``Mode``), switched by the calls layer:

- ``IDLE``: nothing is sent. ``RINGBACK``: the local ringback tone (a looping
  ``FramePlayer``, driven by ``get_timer()`` / ``packets_due(now)``) goes to the agent.
- ``EARLY_MEDIA``: member → agent is relayed; the agent's audio is not sent to the member.
- ``BRIDGED``: both ways; the media timeout is armed and recording starts.

Symmetric latching (the NAT rule of rtpproxy/Asterisk ``strictrtp``): until a leg has sent
anything we send to the address its SDP gave. The peer's own hosts are the SDP's and the
one its SIP goes to (``StreamSpec.signal_host``: a NATed phone's public address, as it
registered; the trunk's). A packet from the SDP address latches ``rtp_to`` to it at once,
whatever was latched before: the peer's own word is always preferred. A packet from one of
the peer's own hosts latches at once while nothing of the peer's own hosts is latched (a
phone behind NAT sends from its public address, not the private one its SDP names). Any
other source is a stranger (a phone whose media leaves by another NAT address, or someone
spraying our ports to hijack or inject audio, "RTP bleed"): its packets are dropped
(counted in ``foreign``) until it has sent ``RELATCH_PACKETS`` consecutive sequence
numbers on one SSRC (a stream, not a spray of stray packets), and once anything is latched
only if also the latched source has been silent for ``RELATCH_AFTER`` (2 s: longer than a
silence-suppressed pause is worth a hijack) and the leg is not on hold (its spec's
``receive``; a held peer may send nothing for minutes); then it is latched (a phone that
moved, a NAT binding that changed). A stranger latched before the peer's first packet is
replaced by the peer's own host at once. An SSRC change alone does not re-latch.
A new ``StreamSpec`` with a different address (re-INVITE) forgets the latch. RTCP
latches likewise on its own: the first RTCP datagram from the peer's own hosts or the
host its RTP latched, then re-latch only from the same host as the RTCP or RTP source
latched (a port change behind the same NAT); a stranger's RTCP is dropped. RTCP
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
included); RTCP still goes to it (RFC 3264 §5.1 keeps RTCP flowing on hold). While the
*agent* holds (its spec's ``receive`` False) on a bridged call and the member is sent
nothing for ``leg.FILL_AFTER``, G.711 silence at the member's ptime continues the
member's stream (``member_packets_due``, ``leg.HoldFill``): the trunk's session is
still sendrecv, and carriers' RTP-inactivity timers hang up a call that gets no RTP.
(Comfort noise, PT 13, would be lighter, but ``StreamSpec`` does not say whether the
trunk negotiated it.)

Loss: per incoming stream, sequence gaps (``lost``); a late packet takes one back, so
``lost`` is "expected minus received" as in RFC 3550 §6.4.1.

Media timeout: in ``BRIDGED``, when a leg whose spec says ``receive`` has sent no RTP for
``media_timeout`` seconds, ``handle_timer(now)`` returns True, once.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from enum import Enum, auto
from typing import Final

from .g711 import ALAW_TO_ULAW, PCM16, PCMA, PCMU, ULAW_TO_ALAW
from .leg import NO_SOURCE, PLAYER, UNSPECIFIED_HOSTS, Address, HoldFill, Leg, StreamSpec
from .player import FramePlayer
from .recorder import Recorder
from .rtp import RtpError, header_fields
from .tones import frames

__all__ = [
    "RELATCH_AFTER",
    "RELATCH_PACKETS",
    "UNSPECIFIED_HOSTS",
    "Address",
    "CallRelay",
    "Leg",
    "Mode",
    "RingbackFrames",
    "StreamSpec",
]

RELATCH_AFTER: Final = 2.0
"Seconds a latched source must be silent before another address may re-latch."
RELATCH_PACKETS: Final = 3
"Consecutive sequence numbers on one SSRC a new source sends before it re-latches."

_FIXED = struct.Struct("!BBHII")
_pack_into = _FIXED.pack_into
_unpack = _FIXED.unpack_from
_U32 = struct.Struct("!I")


class Mode(Enum):
    IDLE = auto()
    RINGBACK = auto()
    EARLY_MEDIA = auto()
    BRIDGED = auto()
    CLOSED = auto()


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


def _probation(src: Leg, addr: Address, ssrc: int, seq: int) -> bool:
    """Count *addr*'s packet towards its probation; True once it sent ``RELATCH_PACKETS``
    consecutive sequence numbers on one SSRC (a stream, not a spray of stray packets)."""
    if src.probe_from == addr and src.probe_ssrc == ssrc and seq == src.probe_next:
        src.probe_count += 1
    else:
        src.probe_from, src.probe_ssrc, src.probe_count = addr, ssrc, 1
    src.probe_next = (seq + 1) & 0xFFFF
    return src.probe_count >= RELATCH_PACKETS


class CallRelay:
    """The relay decisions of one call (module docstring); the shell owns sockets and time."""

    def __init__(
        self, ringback: RingbackFrames, *, media_timeout: float, recorder: Recorder | None = None
    ) -> None:
        self.agent = Leg("agent", 0)
        self.member = Leg("member", 1)
        self._mode = Mode.IDLE
        self._ringback = ringback
        self._player: FramePlayer | None = None
        self._fill = HoldFill()
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

    @property
    def mode(self) -> Mode:
        return self._mode

    @mode.setter
    def mode(self, mode: Mode) -> None:
        # What each leg's RTP/RTCP does is fixed per mode: computed here, once, rather
        # than per packet.
        self._mode = mode
        self.agent.forward = mode is Mode.BRIDGED
        self.member.forward = mode is Mode.BRIDGED or mode is Mode.EARLY_MEDIA

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
        leg.source = PLAYER

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
            self.agent.recorder = self.member.recorder = self.recorder  # read per packet

    def close(self) -> None:
        self._stop_player()
        self._fill.player = None
        self.mode = Mode.CLOSED

    def _stop_player(self) -> None:
        if self._player is not None:
            self._player.stop()
            self._player = None
            self.agent.source = NO_SOURCE

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
        fill_at = self._fill.at(self._agent_holds(), self.member)
        if fill_at is not None:
            deadlines.append(fill_at)
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

    def _agent_holds(self) -> bool:
        """Bridged, the agent holding (its spec's ``receive`` False: it may send nothing)
        and the member sendrecv: the member gets the hold fill (module docstring)."""
        agent, member = self.agent, self.member
        return (
            self._mode is Mode.BRIDGED and agent.spec is not None and not agent.spec.receive
            and member.send and member.rtp_to is not None
        )  # fmt: skip

    def member_packets_due(self, now: float) -> list[bytes]:
        """Hold-fill silence for the member (to ``member.rtp_to``) due by ``now``."""
        return self._fill.due(self._agent_holds(), self.member, now)

    # -- RTP, per packet ------------------------------------------------------------------
    #
    # The work is done in place on a receive buffer (``rtp_into``): the shell reads a
    # datagram into a bytearray, the relay rewrites its header there (one struct
    # pack_into; translate for PCMU<->PCMA) and returns where to send it, and the shell
    # sends the same octets. The ``bytes`` methods (``agent_rtp`` ...) wrap it with a copy
    # for callers that hold ``bytes`` (and the tests).

    def agent_rtp(self, data: bytes, addr: Address, now: float) -> bytes | None:
        """RTP (or muxed RTCP) from the agent: the octets to send to ``member.rtp_to``."""
        buf = bytearray(data)
        to = self.rtp_into(self.agent, self.member, buf, len(buf), addr, now)
        return None if to is None else bytes(buf)

    def member_rtp(self, data: bytes, addr: Address, now: float) -> bytes | None:
        """RTP (or muxed RTCP) from the member: the octets to send to ``agent.rtp_to``."""
        buf = bytearray(data)
        to = self.rtp_into(self.member, self.agent, buf, len(buf), addr, now)
        return None if to is None else bytes(buf)

    def rtp_into(
        self, src: Leg, dst: Leg, buf: bytearray, n: int, addr: Address, now: float
    ) -> Address | None:
        """A datagram of ``n`` octets from ``src`` on its RTP port, in ``buf[:n]``:
        rewritten in place for ``dst``; returns where to send ``buf[:n]``, or None.

        RTP goes to ``dst.rtp_to``; muxed RTCP (``buf[1]`` 192-223 on return) to
        ``dst.rtcp_to``, from the RTP port when ``dst.rtcp_mux`` else the RTCP port.
        ``buf`` may be longer than ``n`` (stale octets past ``n`` are never read) and is
        not kept (the recorder gets a copy).
        """
        if n < 12:
            self.dropped += 1
            return None
        b0, b1, seq, ts, ssrc = _unpack(buf)
        pt = b1 & 0x7F
        if b0 & 0xC0 != 0x80:
            self.dropped += 1
            return None
        if 64 <= pt <= 95:  # RFC 5761 §4: RTCP on the RTP port (second octet 192-223)
            return self._rtcp_into(src, dst, buf, n, addr, True)
        if addr != src.latched and not self._latch(src, addr, ssrc, seq, now):
            self.foreign += 1
            return None
        src.last_rx = now
        if seq == src.in_next and ssrc == src.in_ssrc:  # the next one: the common case
            src.in_next = (seq + 1) & 0xFFFF
        else:
            src.count_loss(ssrc, seq)
        src.received += 1
        if pt == PCMU or pt == PCMA:
            out_pt = dst.pt
            transcode = out_pt != pt
            if src.recorder is not None:
                src.recorder.add(src.channel, bytes(buf[:n]), now)  # buf is reused
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
        to = dst.rtp_to
        if not src.forward or to is None or not dst.send:
            dst.suppressed += 1
            dst.source = NO_SOURCE
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
        _pack_into(buf, 0, b0, b1, out_seq, out_ts, dst.out_ssrc)
        if transcode:  # PCMU <-> PCMA
            dst.transcoded += 1
            table = ULAW_TO_ALAW if out_pt == PCMA else ALAW_TO_ULAW
            if b0 == 0x80:  # no CSRC, extension or padding: the rest is payload
                buf[12:n] = buf[12:n].translate(table)
            else:
                try:
                    start, end = header_fields(bytes(buf[:n]))[5:]
                except RtpError:
                    self.dropped += 1
                    return None
                buf[start:end] = buf[start:end].translate(table)
        return to

    @staticmethod
    def _latch(src: Leg, addr: Address, ssrc: int, seq: int, now: float) -> bool:
        """A packet from *addr*, not the latched source: whether it is accepted, which
        latches *addr* (the rules are in the module docstring)."""
        spec, latched = src.spec, src.latched
        at_once = spec is not None and (
            addr == spec.rtp_address  # the SDP address itself always takes over
            or (  # the peer's own host, when nothing of its own is latched
                spec.is_peer_host(addr[0])
                and (latched is None or not spec.is_peer_host(latched[0]))
            )
        )
        if not at_once:
            if latched is not None and (
                (spec is not None and not spec.receive) or now - src.last_rx < RELATCH_AFTER
            ):
                src.probe_from = None  # the latched source is alive (or held): no takeover
                return False
            if not _probation(src, addr, ssrc, seq):
                return False  # a stranger's stream is dropped until its probation is over
        src.latched = src.rtp_to = addr
        src.probe_from = None
        return True

    # -- RTCP -----------------------------------------------------------------------------

    def agent_rtcp(self, data: bytes, addr: Address, now: float) -> bytes | None:
        """RTCP from the agent: the octets to send to ``member.rtcp_to``."""
        buf = bytearray(data)
        to = self._rtcp_into(self.agent, self.member, buf, len(buf), addr, False)
        return None if to is None else bytes(buf)

    def member_rtcp(self, data: bytes, addr: Address, now: float) -> bytes | None:
        """RTCP from the member: the octets to send to ``agent.rtcp_to``."""
        buf = bytearray(data)
        to = self._rtcp_into(self.member, self.agent, buf, len(buf), addr, False)
        return None if to is None else bytes(buf)

    def _rtcp_into(
        self, src: Leg, dst: Leg, buf: bytearray, n: int, addr: Address, muxed: bool
    ) -> Address | None:
        if n < 8 or buf[0] & 0xC0 != 0x80 or not 192 <= buf[1] <= 223:
            self.dropped += 1
            return None
        if addr != src.rtcp_latched:
            known, host = src.rtcp_latched, addr[0]
            if known is not None:
                allowed = host == known[0] or (src.latched is not None and host == src.latched[0])
            else:
                allowed = (src.latched is not None and host == src.latched[0]) or (
                    src.spec is not None and src.spec.is_peer_host(host)
                )
            if not allowed:
                self.foreign += 1
                return None
            src.rtcp_latched = src.rtcp_to = addr
            src.rtcp_mux = muxed
        to = dst.rtcp_to
        if not src.forward or to is None:
            return None
        packet_type = buf[1]
        if packet_type in (200, 201):  # SR/RR: sender SSRC, then (SR) NTP and RTP time
            _U32.pack_into(buf, 4, dst.out_ssrc)
            if packet_type == 200 and n >= 20 and dst.source == src.in_ssrc >= 0:
                rtp_ts = _U32.unpack_from(buf, 16)[0]
                _U32.pack_into(buf, 16, (rtp_ts + dst.ts_off) & 0xFFFFFFFF)
        self.rtcp_relayed += 1
        dst.rtcp_sent += 1
        return to

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
            fill_sent=self._fill.sent,
        )
        return out
