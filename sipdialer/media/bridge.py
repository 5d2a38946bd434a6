"""The media bridge shell: per call, two RTP/RTCP socket pairs around a ``CallRelay``.

Theory of operation. ``MediaManager`` (one per process) opens a ``CallMedia`` per call:
one port pair facing the agent, one facing the member's trunk, both from the
``PortPool`` through ``media.udp.open_rtp_pair``. Every decision (latching, which mode
relays what, seq/timestamp/SSRC rewriting, transcoding, RFC 4733 mapping, hold, the media
timeout) is the pure ``media.relay.CallRelay``'s; this module only wires the sockets'
receivers to it, sends what it returns, and keeps one ``loop.call_at`` timer per call
for the ringback frames, the hold fill to the member and the media-timeout deadline
(STYLE.md §2.2: the core is never called earlier than the deadline it asked for).

The per-packet path (one per direction, ``_rtp_reader``) is a closure the loop's
``media.fastio.Poller`` calls when the leg's RTP port is readable: ``recvfrom_into`` the
poller's buffer, ``CallRelay.rtp_into`` rewrites the datagram there and says where it
goes, ``sendto`` of the same octets (a memoryview slice cached per length) from the other
leg's RTP port. No object is created per packet beyond what ``recvfrom_into`` and the
relay's one ``struct`` read return; the relay's ``Leg`` keeps the counters, the socket
only counts failed sends (its ``dropped``). At ~1,000 calls this path is what one core
spends its time on (bench/README.md, ``media_relay``). RTCP, a few datagrams per
second, takes the general ``on_rtcp`` receiver path with ``bytes``.

RTCP that the relay returns goes out of our RTCP port, or out of the RTP port when the
receiving leg muxes RTCP onto RTP (it sent us RTCP there, RFC 5761).

``CallMedia.close()`` closes both pairs (the ports go back to the pool) and, when the
manager has a ``recordings_dir`` and the call was bridged, writes the stereo WAV
(``<recordings_dir>/<call_id>.wav``, agent left, member right; ``media.recorder``). The
write is synchronous, in the event loop: roughly 1 ms per minute of call on these
machines; a deployment recording long calls at high rates should move it to a thread.

All control methods are synchronous and cheap; only ``MediaManager.open()`` and
``MediaManager.close()`` are coroutines.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from pathlib import Path

from .g711 import PCM16
from .ports import PortPool, PortsExhausted
from .recorder import Recorder, write_wav
from .relay import Address, CallRelay, Leg, RingbackFrames, StreamSpec
from .udp import RtpSocket, open_rtp_pair

__all__ = ["CallMedia", "MediaManager", "PortsExhausted", "StreamSpec"]

log = logging.getLogger(__name__)

_UNSAFE = re.compile(r"[^A-Za-z0-9._@+=-]")
"Characters not kept in a recording's file name (a Call-ID may hold anything)."


def recording_name(call_id: str) -> str:
    """The WAV file name for ``call_id``: unsafe characters become ``_``."""
    name = _UNSAFE.sub("_", call_id).lstrip(".") or "call"
    return f"{name[:200]}.wav"


class CallMedia:
    """The media of one call: agent-facing and member-facing RTP around a ``CallRelay``."""

    def __init__(
        self,
        manager: MediaManager,
        call_id: str,
        agent: RtpSocket,
        member: RtpSocket,
        relay: CallRelay,
        on_timeout: Callable[[str], None],
    ) -> None:
        self.call_id = call_id
        self.host = agent.host
        "Local address to put in c=."
        self.agent_port = agent.pair.rtp
        "Local RTP port for the SDP offered to the agent."
        self.member_port = member.pair.rtp
        "Local RTP port for the SDP offered to the trunk."
        self._manager = manager
        self._loop = asyncio.get_running_loop()
        self._agent = agent
        self._member = member
        self.relay = relay
        self._on_timeout = on_timeout
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._closed = False
        self._recording: str | None = None
        agent.set_rtp_reader(_rtp_reader(relay, relay.agent, relay.member, agent, member))
        member.set_rtp_reader(_rtp_reader(relay, relay.member, relay.agent, member, agent))
        agent.on_rtcp = _rtcp_receiver(relay.agent_rtcp, relay.member, member)
        member.on_rtcp = _rtcp_receiver(relay.member_rtcp, relay.agent, agent)

    # -- control --------------------------------------------------------------------------

    def set_agent(self, spec: StreamSpec) -> None:
        """The agent leg's stream (again after a re-INVITE, hold or resume)."""
        if not self._closed:
            self.relay.set_agent(spec, self._loop.time())
            self._arm()  # a hold may start the member's silence fill

    def set_member(self, spec: StreamSpec) -> None:
        """The member leg's stream (from the trunk's 183 or 200 SDP, or a re-INVITE)."""
        if not self._closed:
            self.relay.set_member(spec, self._loop.time())
            self._arm()

    def ringback(self) -> None:
        """Play the local ringback tone to the agent, looping, until early media or bridge."""
        if not self._closed:
            now = self._loop.time()
            self.relay.ringback(now)
            self._service(now)  # the first frame goes now

    def early_media(self) -> None:
        """Relay member → agent (stops the ringback); the agent's audio is not sent on."""
        if not self._closed:
            self.relay.early_media(self._loop.time())
            self._arm()

    def bridge(self) -> None:
        """Relay both ways; arms the media timeout and starts recording."""
        if not self._closed:
            self.relay.bridge(self._loop.time())
            self._arm()

    def close(self) -> str | None:
        """Stop, free both port pairs; the recording's path if one was written.
        Repeated calls are harmless (and return the same path)."""
        if self._closed:
            return self._recording
        self._closed = True
        self.relay.close()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._agent.close()
        self._member.close()
        recorder = self.relay.recorder
        directory = self._manager.recordings_dir
        if recorder is not None and directory is not None and not recorder.empty:
            path = Path(directory) / recording_name(self.call_id)
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                write_wav(path, *recorder.pcm())
            except OSError as exc:
                log.error("call %s: cannot write the recording %s: %s", self.call_id, path, exc)
            else:
                self._recording = str(path)
        self._manager._closed(self)
        return self._recording

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def stats(self) -> dict[str, int]:
        """Per-call counters: packets each way, lost, transcoded, dtmf events, drops."""
        out = self.relay.counters()
        out["send_failed"] = self._agent.dropped + self._member.dropped
        return out

    # -- the one timer --------------------------------------------------------------------

    def _arm(self) -> None:
        at = self.relay.get_timer()
        if at is None:
            return  # a timer already set fires harmlessly
        if self._timer is not None:
            if self._timer_at <= at:
                return  # the earlier timer re-arms when it fires
            self._timer.cancel()
        self._timer_at = at
        self._timer = self._loop.call_at(at, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if not self._closed:
            # call_at may fire within the clock's resolution before the deadline
            self._service(max(self._loop.time(), self._timer_at))

    def _service(self, now: float) -> None:
        """Expire the media timeout, send the ringback and hold-fill frames due, re-arm."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        relay = self.relay
        if relay.handle_timer(now):
            log.info("call %s: media timeout", self.call_id)
            try:
                self._on_timeout(self.call_id)
            except Exception:
                log.exception("call %s: on_timeout failed", self.call_id)
            if self._closed:
                return
        packets = relay.packets_due(now)
        to = relay.agent.rtp_to
        if packets and to is not None:  # packets_due returns none without a destination
            send = self._agent.send
            for packet in packets:
                send(packet, to)
        fill = relay.member_packets_due(now)  # silence to the trunk while the agent holds
        to = relay.member.rtp_to
        if fill and to is not None:
            for packet in fill:
                self._member.send(packet, to)
        self._arm()


def _rtp_reader(
    relay: CallRelay, src: Leg, dst: Leg, inbound: RtpSocket, outbound: RtpSocket
) -> Callable[[float], None]:
    """The per-packet path for one direction: read one datagram from ``src``'s port,
    relay it in place, send it from ``dst``'s port. Everything it needs is bound here,
    once, so a packet costs no attribute or global look-up beyond the relay's own."""
    recv_into = inbound.rtp_socket.recvfrom_into
    sendto = outbound.rtp_socket.sendto
    rtp_into = relay.rtp_into
    buf = inbound.poller.buffer
    views = inbound.poller.views

    def read(now: float) -> None:
        try:
            n, addr = recv_into(buf)
        except OSError:  # a spurious wake-up, or an ICMP error queued on the socket
            return
        # RTP or muxed RTCP is told by the second octet as it arrived (RFC 5761 §4:
        # PT 64-95 with the marker bit is RTCP 192-223): the relay rewrites it, and an
        # RFC 4733 start of event (M=1, PT 96-127) comes out as 224-255.
        kind = buf[1] & 0x7F
        to = rtp_into(src, dst, buf, n, addr, now)
        if to is None:
            return
        if not 64 <= kind <= 95:  # RTP
            try:
                sendto(views[n], to)
            except OSError:  # includes a full send buffer: media is not queued
                outbound.dropped += 1
        else:
            _send_rtcp(bytes(views[n]), dst, outbound)

    return read


def _rtcp_receiver(
    relay: Callable[[bytes, Address, float], bytes | None], dst: Leg, sock: RtpSocket
) -> Callable[[bytes, Address, float], None]:
    def receive(data: bytes, addr: Address, now: float) -> None:
        out = relay(data, addr, now)
        if out is not None:
            _send_rtcp(out, dst, sock)

    return receive


def _send_rtcp(data: bytes, dst: Leg, sock: RtpSocket) -> None:
    if dst.rtcp_to is not None:
        if dst.rtcp_mux:
            sock.send(data, dst.rtcp_to)
        else:
            sock.send_rtcp(data, dst.rtcp_to)


_TOTALS = (
    "rtp_relayed",
    "rtp_lost",
    "rtcp_relayed",
    "dropped",
    "foreign",
    "transcoded",
    "dtmf_events",
    "dtmf_dropped",
    "ringback_sent",
    "suppressed",
    "send_failed",
)


def _totals(stats: dict[str, int]) -> dict[str, int]:
    both = ("agent_", "member_")
    return {
        "rtp_relayed": sum(stats[p + "sent"] for p in both),
        "rtp_lost": sum(stats[p + "lost"] for p in both),
        "rtcp_relayed": stats["rtcp_relayed"],
        "dropped": stats["dropped"],
        "foreign": stats["foreign"],
        "transcoded": sum(stats[p + "transcoded"] for p in both),
        "dtmf_events": sum(stats[p + "dtmf_events"] for p in both),
        "dtmf_dropped": stats["dtmf_dropped"],
        "ringback_sent": stats["ringback_sent"],
        "suppressed": sum(stats[p + "suppressed"] for p in both),
        "send_failed": stats["send_failed"],
    }


class MediaManager:
    """Opens the media of each call; keeps the totals of the calls it has closed."""

    def __init__(
        self,
        host: str,
        ports: PortPool,
        *,
        media_timeout: float,
        ringback: PCM16,
        recordings_dir: str | None = None,
    ) -> None:
        self.host = host
        self.ports = ports
        self.media_timeout = media_timeout
        self.recordings_dir = recordings_dir or None
        self._ringback = RingbackFrames(ringback)
        self._calls: dict[int, CallMedia] = {}
        self._done = dict.fromkeys(_TOTALS, 0)

    async def open(self, call_id: str, on_timeout: Callable[[str], None]) -> CallMedia:
        """Bind the agent-side and member-side pairs; raises ``PortsExhausted``."""
        agent = await open_rtp_pair(self.host, self.ports)
        try:
            member = await open_rtp_pair(self.host, self.ports)
        except BaseException:
            agent.close()
            raise
        recorder = Recorder() if self.recordings_dir else None
        relay = CallRelay(self._ringback, media_timeout=self.media_timeout, recorder=recorder)
        call = CallMedia(self, call_id, agent, member, relay, on_timeout)
        self._calls[id(call)] = call
        return call

    @property
    def active(self) -> int:
        """Calls open."""
        return len(self._calls)

    def stats(self) -> dict[str, int]:
        """Totals over every call, open or closed: rtp_relayed, rtp_lost, rtcp_relayed,
        dropped, transcoded, dtmf_events, ..."""
        totals = dict(self._done)
        for call in self._calls.values():
            for key, value in _totals(call.stats).items():
                totals[key] += value
        return totals

    async def close(self) -> None:
        """Close every call (recordings are written)."""
        for call in list(self._calls.values()):
            call.close()
        await asyncio.sleep(0)

    def _closed(self, call: CallMedia) -> None:
        if self._calls.pop(id(call), None) is not None:
            for key, value in _totals(call.stats).items():
                self._done[key] += value
