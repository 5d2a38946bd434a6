"""One leg of a relayed call: where its peer is, what it sends us, our stream to it.

Theory of operation. A ``Leg`` is plain state with the two operations that are about one
leg only; every decision that needs both legs (latching, modes, relaying, RTCP) is
``media.relay.CallRelay``'s, whose docstring explains the rules this state serves:

- ``set_spec(spec, now)``: a (re)negotiated ``StreamSpec``. A new address forgets the
  latched source (RTP and RTCP apart); hold (``send`` False) drops the stream's anchor so
  resuming re-anchors; expecting media again restarts the media-timeout count.
- ``count_loss(ssrc, seq)``: RFC 3550 A.1 loss accounting (simplified: no probation) for a
  packet that is not simply the next one; the relay handles "the next one" inline, the
  common case, so the per-packet path stays a few attribute writes.
- ``anchor(ssrc, seq, ts, now)``: continue our outgoing stream from a new source: the
  next sequence number follows the last one sent, the timestamp advances by the wall
  clock since the last packet sent (at least a frame), and the marker bit is set.

- ``HoldFill`` / ``silence_player``: the member's G.711 silence while the agent holds,
  continuing our stream to the member (``CallRelay``'s docstring says when).

``__slots__``: the relay reads and writes a dozen of these per packet.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Final

from .g711 import PCMA, PCMU, SAMPLE_RATE
from .player import FramePlayer
from .recorder import Recorder

Address = tuple[str, int]

MAX_DROPOUT: Final = 3000
"A forward sequence jump larger than this is a restarted source, not loss (RFC 3550 A.1)."
UNSPECIFIED_HOSTS: Final = frozenset({"0.0.0.0", "::", ""})
"SDP addresses that mean 'do not send here' (RFC 3264 §8.4 hold with c=0.0.0.0)."
PLAYER: Final = -1
"``Leg.source`` while a player (the agent's ringback, the member's hold fill) feeds it."
SILENCE: Final = {PCMU: b"\xff", PCMA: b"\xd5"}
"One G.711 octet of silence (zero amplitude) per law."
FILL_AFTER: Final = 0.2
"Seconds without a packet to the member, the agent holding, before silence fills in."
NO_SOURCE: Final = -2
"``Leg.source`` when nothing feeds it: the next packet re-anchors the stream."
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
    signal_host: str | None = None
    """The IP literal its SIP goes to (the agent's registered source, the trunk's address):
    media from that host is the peer's own, like media from the SDP host."""

    def __post_init__(self) -> None:
        if self.payload_type not in (PCMU, PCMA):
            raise ValueError(f"payload type is 0 (PCMU) or 8 (PCMA), not {self.payload_type}")
        if self.event_pt is not None and not 96 <= self.event_pt <= 127:
            raise ValueError(f"telephone-event PT is dynamic (96-127), not {self.event_pt}")

    @property
    def rtp_address(self) -> Address | None:
        return None if self.host in UNSPECIFIED_HOSTS else (self.host, self.port)

    def is_peer_host(self, host: str) -> bool:
        """Whether *host* is the peer's own by its SDP or its signalling (not a stranger)."""
        return host == self.host or host == self.signal_host

    @property
    def rtcp_address(self) -> Address | None:
        rtcp = self.port + 1 if self.rtcp_port is None else self.rtcp_port
        return None if self.host in UNSPECIFIED_HOSTS else (self.host, rtcp)


class Leg:
    """One remote peer: where to reach it, what it sends us, and our stream to it."""

    __slots__ = (
        "name", "spec", "pt", "event_pt", "rtp_to", "rtcp_to", "latched", "rtcp_latched",
        "rtcp_mux", "send", "last_rx", "quiet_since", "in_ssrc", "in_next", "last_event_ts",
        "received", "lost", "dtmf_events", "out_ssrc", "out_seq", "out_ts", "out_at", "source",
        "seq_off", "ts_off", "marker", "sent", "transcoded", "rtcp_sent", "suppressed",
        "channel", "forward", "recorder", "probe_from", "probe_ssrc", "probe_next", "probe_count",
    )  # fmt: skip

    def __init__(self, name: str, channel: int) -> None:
        self.name = name
        self.channel = channel
        "Its recording channel: 0 the agent (left), 1 the member (right)."
        self.forward = False
        "Whether the mode relays what it sends to the other leg (set by ``CallRelay.mode``)."
        self.recorder: Recorder | None = None
        "The call's recorder once recording started: its audio goes there (``channel``)."
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
        self.probe_from: Address | None = None
        "A source on probation to re-latch (``CallRelay``): its SSRC, next seq, count."
        self.probe_ssrc = -1
        self.probe_next = 0
        self.probe_count = 0
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
        self.source = NO_SOURCE
        "The incoming SSRC the offsets are anchored to (or PLAYER / NO_SOURCE)."
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
            self.probe_from = None
            self.rtp_to = spec.rtp_address
        if old is None or old.rtcp_address != spec.rtcp_address:
            self.rtcp_latched = None
            self.rtcp_mux = False
            self.rtcp_to = spec.rtcp_address
        if spec.receive and (old is None or not old.receive):
            self.quiet_since = now  # the timeout counts from when we expect media again
        self.send = spec.send
        if not spec.send:
            self.source = NO_SOURCE  # resuming re-anchors the stream

    def count_loss(self, ssrc: int, seq: int) -> None:
        """Loss per incoming stream for a packet that is not the next expected one
        (RFC 3550 A.1, simplified: no probation)."""
        if ssrc != self.in_ssrc:
            self.in_ssrc = ssrc
            self.in_next = (seq + 1) & 0xFFFF
            return
        gap = (seq - self.in_next) & 0xFFFF
        if gap < 0x8000:
            if gap <= MAX_DROPOUT:  # a larger jump is a restart, not loss
                self.lost += gap
            self.in_next = (seq + 1) & 0xFFFF
        elif self.lost > 0:  # late (reordered): counted lost before, here now
            self.lost -= 1

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

    def ptime(self) -> int:
        """Milliseconds per frame of our stream to it: its spec's (10-60), else 20."""
        spec = self.spec
        return spec.ptime if spec is not None and 10 <= spec.ptime <= 60 else 20

    def continue_with(self, player: FramePlayer, now: float) -> None:
        """*player*'s packets were sent to this leg: our stream continues after them."""
        self.out_seq = player.sequence
        self.out_ts = (player.timestamp - SAMPLE_RATE * self.ptime() // 1000) & 0xFFFFFFFF
        self.out_at = now


class HoldFill:
    """G.711 silence to the member while the agent holds (``CallRelay``'s docstring):
    after ``FILL_AFTER`` with nothing sent to it, a ``silence_player`` continues the
    member's stream; audio relayed to the member (the agent's own, music on hold) takes
    the stream over (re-anchored), and the fill starts again when that stops."""

    def __init__(self) -> None:
        self.player: FramePlayer | None = None
        self.sent = 0
        "Silence packets sent."

    def at(self, active: bool, member: Leg) -> float | None:
        """When the next fill packet is due; None when the fill is not *active*."""
        if not active:
            return None
        if self.player is not None and member.source == PLAYER:
            return self.player.get_timer()
        return (0.0 if member.out_at is None else member.out_at) + FILL_AFTER

    def due(self, active: bool, member: Leg, now: float) -> list[bytes]:
        """The fill packets due by *now* (for ``member.rtp_to``)."""
        player = self.player
        if player is not None and (member.source != PLAYER or not active):
            self.player = player = None  # relayed audio took over, or the hold ended
        if player is None:
            at = self.at(active, member)
            if at is None or now + 1e-6 < at:
                return []
            player = self.player = silence_player(member, now)
        packets = player.packets_due(now)
        if packets:
            member.continue_with(player, now)
            self.sent += len(packets)
        return packets


def silence_player(leg: Leg, now: float) -> FramePlayer:
    """G.711 silence at *leg*'s PT and ptime, looping, started *now*, continuing our
    stream to it: its SSRC, the next seq, the timestamp advanced by the wall clock since
    the last packet sent (at least a frame). Its first packet has the marker bit."""
    samples = SAMPLE_RATE * leg.ptime() // 1000
    step = 0 if leg.out_at is None else max(samples, round((now - leg.out_at) * SAMPLE_RATE))
    player = FramePlayer([SILENCE[leg.pt] * samples], leg.pt, ptime=leg.ptime() / 1000,
                         loop=True, ssrc=leg.out_ssrc, sequence=leg.out_seq,
                         timestamp=leg.out_ts + step)  # fmt: skip
    player.start(now)
    leg.source = PLAYER
    return player
