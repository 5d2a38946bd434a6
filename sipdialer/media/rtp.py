"""RTP and RTCP packets (RFC 3550) and the telephone-event payload (RFC 4733).

Theory of operation. Two ways in, one for the relay's hot path and one for everyone else:

- **Fast path, no objects**: ``header_fields(data)`` reads the fixed header and where
  the payload sits in one ``struct`` call; ``rewrite(data, seq, ts, ssrc, pt)`` replaces
  what a relay changes and keeps the rest of the octets (CSRCs, header extension,
  payload, padding) as they came; ``build(...)`` makes a packet from a payload. Each
  costs 0.2-0.3 µs (DESIGN.md, "Performance budget → Media"; ``bench/rtp_rewrite.py``).
- **Values**: ``RtpPacket.parse(data)`` / ``serialize()`` is a frozen dataclass for tests,
  fixtures and code off the hot path. ``parse(serialize(p)) == p`` and, for packets
  whose padding octets are zero, ``parse(data).serialize() == data``.

RTCP (RFC 3550 §6) parses a compound datagram into frozen values (``SenderReport``,
``ReceiverReport``, ``SourceDescription``, ``Goodbye``; other types are kept opaque as
``RtcpUnknown``), and builds the minimal compound packets a media leg sends:
``report(ReceiverReport(...) or SenderReport(...), cname)`` (then SDES CNAME, as §6.1
requires) and ``goodbye`` (an RR and SDES followed by BYE).

Demultiplexing: RTP and RTCP may share one port (rtcp-mux). ``is_rtcp(data)`` applies
RFC 5761 §4 (second octet 192-223); ``header_fields`` does not reject RTCP by itself, so a
receiver on a muxed port asks ``is_rtcp`` first.

Errors: malformed input raises ``RtpError`` (a ``ValueError``) and nothing else; a
hypothesis test throws arbitrary bytes at every parser. The shell drops and counts.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

HEADER_SIZE: Final = 12
"The fixed RTP header (RFC 3550 §5.1), before CSRCs and the extension."

_FIXED = struct.Struct("!BBHII")
_pack_fixed = _FIXED.pack  # bound once: the hot path saves an attribute lookup per packet
_unpack_fixed = _FIXED.unpack_from
_EXTENSION = struct.Struct("!HH")


class RtpError(ValueError):
    """Malformed RTP, RTCP or telephone-event octets: the peer's fault; drop the datagram."""


# -- fast path -------------------------------------------------------------------------


def header_fields(data: bytes) -> tuple[int, int, int, int, int, int, int]:
    """``(marker, payload_type, sequence, timestamp, ssrc, payload_start, payload_end)``.

    The payload is ``data[payload_start:payload_end]``: CSRCs and a header extension are
    skipped, padding (RFC 3550 §5.1, P bit) is left out.
    """
    try:
        b0, b1, seq, ts, ssrc = _unpack_fixed(data)
    except struct.error:
        raise RtpError(f"RTP packet of {len(data)} octets is shorter than 12") from None
    if b0 & 0xC0 != 0x80:
        raise RtpError(f"RTP version {b0 >> 6}, expected 2")
    if b0 & 0x3F:  # CSRCs, an extension or padding: rare in telephony
        start, end = _payload_bounds(data, b0)
        return b1 >> 7, b1 & 0x7F, seq, ts, ssrc, start, end
    return b1 >> 7, b1 & 0x7F, seq, ts, ssrc, HEADER_SIZE, len(data)


def _payload_bounds(data: bytes, b0: int) -> tuple[int, int]:
    start = HEADER_SIZE + 4 * (b0 & 0x0F)
    end = len(data)
    if b0 & 0x10:  # RFC 3550 §5.3.1: 16 bits profile-defined, 16 bits length in words
        if start + 4 > end:
            raise RtpError("RTP header extension runs past the packet")
        start += 4 + 4 * _EXTENSION.unpack_from(data, start)[1]
    if start > end:
        raise RtpError("RTP header (CSRCs, extension) runs past the packet")
    if b0 & 0x20:  # the last octet counts the padding, itself included
        padding = data[end - 1] if end > start else 0
        if padding == 0 or padding > end - start:
            raise RtpError(f"RTP padding of {padding} octets does not fit the packet")
        end -= padding
    return start, end


def rewrite(
    data: bytes, seq: int, ts: int, ssrc: int, pt: int, *, marker: bool | None = None
) -> bytes:
    """``data`` with a new sequence number, timestamp, SSRC and payload type.

    ``seq`` and ``ts`` wrap (taken mod 2**16 and 2**32), so a relay can add its offsets
    without masking. The marker bit is kept unless ``marker`` says otherwise; everything
    after the fixed header is copied as it is. ``ssrc`` and ``pt`` must be in range.
    """
    if len(data) < 12 or data[0] & 0xC0 != 0x80:
        raise RtpError("not an RTP version 2 packet")
    b1 = (data[1] & 0x80) | pt if marker is None else (0x80 | pt if marker else pt)
    return _pack_fixed(data[0], b1, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc) + data[12:]


def build(payload: bytes, pt: int, seq: int, ts: int, ssrc: int, *, marker: bool = False) -> bytes:
    """A plain RTP packet (no CSRCs, extension or padding) carrying ``payload``."""
    b1 = 0x80 | pt if marker else pt
    return _pack_fixed(0x80, b1, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc) + payload


# -- RTP as a value ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RtpPacket:
    """One RTP packet (RFC 3550 §5.1) as a value; for tests and code off the hot path."""

    payload_type: int
    sequence_number: int
    timestamp: int
    ssrc: int
    payload: bytes = b""
    marker: bool = False
    csrc: tuple[int, ...] = ()
    "Contributing sources, at most 15."
    extension: tuple[int, bytes] | None = None
    "The header extension: (16 profile-defined bits, data in whole 32-bit words)."
    padding: int = 0
    "Padding octets after the payload, the count octet included; 0 means no P bit."

    def __post_init__(self) -> None:
        extension = self.extension or (0, b"")
        if not (
            0 <= self.payload_type <= 127
            and 0 <= self.sequence_number <= 0xFFFF
            and all(0 <= v <= 0xFFFFFFFF for v in (self.timestamp, self.ssrc, *self.csrc))
            and len(self.csrc) <= 15
            and 0 <= extension[0] <= 0xFFFF
            and len(extension[1]) % 4 == 0
            and 0 <= self.padding <= 255
        ):
            raise RtpError(f"RTP header field out of range: {self!r}")

    @classmethod
    def parse(cls, data: bytes) -> RtpPacket:
        """Parse one RTP packet; raises ``RtpError`` if malformed."""
        marker, pt, seq, ts, ssrc, start, end = header_fields(data)
        b0 = data[0]
        count = b0 & 0x0F
        csrc = struct.unpack_from(f"!{count}I", data, HEADER_SIZE) if count else ()
        extension = None
        if b0 & 0x10:
            offset = HEADER_SIZE + 4 * count
            profile, words = _EXTENSION.unpack_from(data, offset)
            extension = (profile, bytes(data[offset + 4 : offset + 4 + 4 * words]))
        payload = bytes(data[start:end])
        return cls(
            pt, seq, ts, ssrc, payload, bool(marker), tuple(csrc), extension, len(data) - end
        )

    def serialize(self) -> bytes:
        """The packet's octets; padding octets are zeros followed by the count."""
        b0 = 0x80 | len(self.csrc) | (0x20 if self.padding else 0) | (0x10 if self.extension else 0)
        b1 = (0x80 if self.marker else 0) | self.payload_type
        parts = [
            _FIXED.pack(b0, b1, self.sequence_number, self.timestamp, self.ssrc),
            struct.pack(f"!{len(self.csrc)}I", *self.csrc),
        ]
        if self.extension is not None:
            profile, data = self.extension
            parts.append(_EXTENSION.pack(profile, len(data) // 4) + data)
        parts.append(self.payload)
        if self.padding:
            parts.append(bytes(self.padding - 1) + bytes([self.padding]))
        return b"".join(parts)


# -- RFC 4733 telephone-event ------------------------------------------------------------

DTMF_EVENTS: Final = "0123456789*#ABCD"
"RFC 4733 §3.2: events 0-15 are the DTMF digits in this order; 16 is flash."
_EVENT = struct.Struct("!BBH")


@dataclass(frozen=True, slots=True)
class TelephoneEvent:
    """One RFC 4733 §2.3 telephone-event payload (4 octets)."""

    event: int
    end: bool = False
    "The E bit: this is (a retransmission of) the event's final packet."
    volume: int = 10
    "Power level as -dBm0, 0-63 (RFC 4733 §2.3.4); 10 is the usual DTMF level."
    duration: int = 0
    "Length so far, in RTP timestamp units (1/8000 s for a 8 kHz stream)."

    def __post_init__(self) -> None:
        if not (0 <= self.event <= 255 and 0 <= self.volume <= 63 and 0 <= self.duration <= 0xFFFF):
            raise RtpError("event is 8 bits, volume 0-63, duration 16 bits")

    @classmethod
    def parse(cls, payload: bytes) -> TelephoneEvent:
        """Parse the payload of a telephone-event packet; the R bit is ignored (§2.3.3)."""
        if len(payload) != 4:
            raise RtpError(f"telephone-event payload is 4 octets, not {len(payload)}")
        event, flags, duration = _EVENT.unpack(payload)
        return cls(event, bool(flags & 0x80), flags & 0x3F, duration)

    def serialize(self) -> bytes:
        return _EVENT.pack(self.event, (0x80 if self.end else 0) | self.volume, self.duration)

    @property
    def digit(self) -> str | None:
        """The DTMF digit this event stands for, or None for other events."""
        return DTMF_EVENTS[self.event] if self.event < 16 else None

    @classmethod
    def for_digit(cls, digit: str, *, end: bool = False, duration: int = 0) -> TelephoneEvent:
        """The event of a DTMF digit ``0-9 * # A-D``."""
        index = DTMF_EVENTS.find(digit.upper()) if len(digit) == 1 else -1
        if index < 0:
            raise ValueError(f"{digit!r} is not a DTMF digit")
        return cls(index, end=end, duration=duration)


# -- RTCP --------------------------------------------------------------------------------

RTCP_SR: Final = 200
RTCP_RR: Final = 201
RTCP_SDES: Final = 202
RTCP_BYE: Final = 203
RTCP_APP: Final = 204
SDES_CNAME: Final = 1

_RTCP_HEADER = struct.Struct("!BBH")
_BLOCK = struct.Struct("!IIIIII")
_SENDER_INFO = struct.Struct("!IQIII")
_NTP_EPOCH_OFFSET: Final = 2208988800
"Seconds from 1900-01-01 (NTP's epoch) to 1970-01-01 (Unix's)."


def is_rtcp(data: bytes) -> bool:
    """RFC 5761 §4: an RTCP packet on a muxed port has a second octet of 192-223."""
    return len(data) >= 8 and data[0] & 0xC0 == 0x80 and 192 <= data[1] <= 223


@dataclass(frozen=True, slots=True)
class ReportBlock:
    """One reception report (RFC 3550 §6.4.1) about the source ``ssrc``."""

    ssrc: int
    fraction_lost: int
    "Packets lost since the previous report, in 1/256 (0-255)."
    cumulative_lost: int
    "Packets lost since the start, signed 24 bits (duplicates can make it negative)."
    highest_sequence: int
    "Extended highest sequence number received: cycles << 16 | sequence number."
    jitter: int
    "Interarrival jitter estimate, in RTP timestamp units."
    lsr: int = 0
    "Middle 32 bits of the NTP timestamp of the last SR received from ``ssrc``; 0 = none."
    dlsr: int = 0
    "Delay since that SR was received, in 1/65536 s."

    def __post_init__(self) -> None:
        if not 0 <= self.fraction_lost <= 255 or not -(2**23) <= self.cumulative_lost < 2**23:
            raise RtpError("fraction lost is 8 bits and cumulative lost signed 24 bits")

    def serialize(self) -> bytes:
        lost = (self.fraction_lost << 24) | (self.cumulative_lost & 0xFFFFFF)
        return _BLOCK.pack(self.ssrc, lost, self.highest_sequence, self.jitter, self.lsr, self.dlsr)

    def round_trip_time(self, arrival_ntp: int) -> float | None:
        """RFC 3550 §6.4.1 round trip, in seconds, for a report that arrived at NTP time
        ``arrival_ntp`` (64 bits); None when the peer has had no SR from us yet."""
        if self.lsr == 0:
            return None
        delay = (ntp_middle(arrival_ntp) - self.lsr - self.dlsr) & 0xFFFFFFFF
        return delay / 65536.0 if delay < 0x80000000 else 0.0


def _parse_blocks(body: bytes, offset: int, count: int) -> tuple[ReportBlock, ...]:
    if len(body) < offset + 24 * count:
        raise RtpError(f"RTCP report with {count} blocks is truncated")
    blocks = []
    for index in range(count):
        ssrc, lost, highest, jitter, lsr, dlsr = _BLOCK.unpack_from(body, offset + 24 * index)
        cumulative = lost & 0xFFFFFF
        if cumulative & 0x800000:
            cumulative -= 0x1000000
        blocks.append(ReportBlock(ssrc, lost >> 24, cumulative, highest, jitter, lsr, dlsr))
    return tuple(blocks)


def _header(count: int, packet_type: int, body: bytes) -> bytes:
    if count > 31:
        raise RtpError(f"an RTCP packet holds at most 31 blocks, sources or chunks, not {count}")
    return _RTCP_HEADER.pack(0x80 | count, packet_type, len(body) // 4) + body


@dataclass(frozen=True, slots=True)
class SenderReport:
    """RTCP SR (RFC 3550 §6.4.1): sender info plus reception reports."""

    ssrc: int
    ntp_timestamp: int
    "Wall-clock time of this report, 64-bit NTP (see ``ntp_timestamp()``)."
    rtp_timestamp: int
    "The same instant in the RTP timestamp units of this source."
    packet_count: int
    octet_count: int
    "Payload octets sent (headers and padding not counted)."
    reports: tuple[ReportBlock, ...] = ()

    def serialize(self) -> bytes:
        info = _SENDER_INFO.pack(
            self.ssrc, self.ntp_timestamp, self.rtp_timestamp, self.packet_count, self.octet_count
        )
        body = info + b"".join(block.serialize() for block in self.reports)
        return _header(len(self.reports), RTCP_SR, body)


@dataclass(frozen=True, slots=True)
class ReceiverReport:
    """RTCP RR (RFC 3550 §6.4.2)."""

    ssrc: int
    reports: tuple[ReportBlock, ...] = ()

    def serialize(self) -> bytes:
        body = struct.pack("!I", self.ssrc) + b"".join(b.serialize() for b in self.reports)
        return _header(len(self.reports), RTCP_RR, body)


@dataclass(frozen=True, slots=True)
class SdesChunk:
    """The items one source describes itself with (RFC 3550 §6.5)."""

    ssrc: int
    items: tuple[tuple[int, bytes], ...]
    "(item type, value) pairs; type 1 is CNAME."

    @property
    def cname(self) -> str | None:
        values = [value for kind, value in self.items if kind == SDES_CNAME]
        return values[0].decode("utf-8", "replace") if values else None


@dataclass(frozen=True, slots=True)
class SourceDescription:
    """RTCP SDES (RFC 3550 §6.5)."""

    chunks: tuple[SdesChunk, ...]

    def serialize(self) -> bytes:
        body = bytearray()
        for chunk in self.chunks:
            body += struct.pack("!I", chunk.ssrc)
            for kind, value in chunk.items:
                if not 0 < kind <= 255 or len(value) > 255:
                    raise RtpError("an SDES item type is 1-255 and its value at most 255 octets")
                body += bytes([kind, len(value)]) + value
            body += bytes(4 - len(body) % 4)  # the null item, then zeros to a word boundary
        return _header(len(self.chunks), RTCP_SDES, bytes(body))


@dataclass(frozen=True, slots=True)
class Goodbye:
    """RTCP BYE (RFC 3550 §6.6): these sources are leaving."""

    sources: tuple[int, ...]
    reason: bytes = b""

    def serialize(self) -> bytes:
        body = struct.pack(f"!{len(self.sources)}I", *self.sources)
        if self.reason:
            body += bytes([len(self.reason[:255])]) + self.reason[:255]
            body += bytes(-len(body) % 4)
        return _header(len(self.sources), RTCP_BYE, body)


@dataclass(frozen=True, slots=True)
class RtcpUnknown:
    """An RTCP packet this module does not interpret (APP, RTPFB, PSFB, XR, ...)."""

    packet_type: int
    count: int
    "The five bits after V and P (a count or a subtype, by type)."
    body: bytes


RtcpPacket = SenderReport | ReceiverReport | SourceDescription | Goodbye | RtcpUnknown


def parse_rtcp(data: bytes) -> list[RtcpPacket]:
    """Parse a (compound) RTCP datagram; raises ``RtpError`` if malformed."""
    if len(data) < 4:
        raise RtpError(f"RTCP datagram of {len(data)} octets is too short")
    packets: list[RtcpPacket] = []
    offset = 0
    while offset < len(data):
        if len(data) - offset < 4:
            raise RtpError("RTCP datagram ends inside a packet header")
        b0, packet_type, length = _RTCP_HEADER.unpack_from(data, offset)
        if b0 & 0xC0 != 0x80:
            raise RtpError(f"RTCP version {b0 >> 6}, expected 2")
        end = offset + 4 * (length + 1)
        if end > len(data):
            raise RtpError("RTCP packet length runs past the datagram")
        body_end = end
        if b0 & 0x20:  # §6.4.1: only the last packet of a compound may be padded
            padding = data[end - 1]
            if end != len(data) or padding == 0 or padding > end - offset - 4:
                raise RtpError("RTCP padding is invalid")
            body_end -= padding
        body = bytes(data[offset + 4 : body_end])
        packets.append(_parse_one(packet_type, b0 & 0x1F, body))
        offset = end
    return packets


def _parse_one(packet_type: int, count: int, body: bytes) -> RtcpPacket:
    if packet_type == RTCP_SR:
        if len(body) < _SENDER_INFO.size:
            raise RtpError("RTCP SR is truncated")
        ssrc, ntp, rtp_ts, packets, octets = _SENDER_INFO.unpack_from(body)
        blocks = _parse_blocks(body, _SENDER_INFO.size, count)
        return SenderReport(ssrc, ntp, rtp_ts, packets, octets, blocks)
    if packet_type == RTCP_RR:
        if len(body) < 4:
            raise RtpError("RTCP RR is truncated")
        return ReceiverReport(struct.unpack_from("!I", body)[0], _parse_blocks(body, 4, count))
    if packet_type == RTCP_SDES:
        return SourceDescription(_parse_sdes(body, count))
    if packet_type == RTCP_BYE:
        if len(body) < 4 * count:
            raise RtpError("RTCP BYE is truncated")
        sources = struct.unpack_from(f"!{count}I", body)
        rest = body[4 * count :]
        reason = rest[1 : 1 + rest[0]] if rest else b""
        if rest and len(reason) != rest[0]:
            raise RtpError("RTCP BYE reason runs past the packet")
        return Goodbye(tuple(sources), reason)
    return RtcpUnknown(packet_type, count, body)


def _parse_sdes(body: bytes, count: int) -> tuple[SdesChunk, ...]:
    chunks = []
    offset = 0
    for _ in range(count):
        if offset + 4 > len(body):
            raise RtpError("RTCP SDES chunk is truncated")
        (ssrc,) = struct.unpack_from("!I", body, offset)
        offset += 4
        items = []
        while True:
            if offset >= len(body):
                raise RtpError("RTCP SDES chunk has no end")
            kind = body[offset]
            if kind == 0:  # the null item ends the chunk; pad to a word boundary
                offset = (offset + 4) & ~3
                break
            if offset + 2 > len(body) or offset + 2 + body[offset + 1] > len(body):
                raise RtpError("RTCP SDES item runs past the packet")
            size = body[offset + 1]
            items.append((kind, body[offset + 2 : offset + 2 + size]))
            offset += 2 + size
        chunks.append(SdesChunk(ssrc, tuple(items)))
    return tuple(chunks)


# -- building what a media leg sends -----------------------------------------------------


def _cname(ssrc: int, cname: str) -> bytes:
    chunk = SdesChunk(ssrc, ((SDES_CNAME, cname.encode("utf-8")),))
    return SourceDescription((chunk,)).serialize()


def report(packet: SenderReport | ReceiverReport, cname: str) -> bytes:
    """The compound packet a leg sends every few seconds: ``packet`` (an SR if the leg has
    sent media since the last report, else an RR) followed by its SDES CNAME (§6.1)."""
    return packet.serialize() + _cname(packet.ssrc, cname)


def goodbye(ssrc: int, cname: str, reason: str = "") -> bytes:
    """RR + SDES CNAME + BYE: the last RTCP a leg sends (RFC 3550 §6.1, §6.6)."""
    bye = Goodbye((ssrc,), reason.encode("utf-8")).serialize()
    return report(ReceiverReport(ssrc), cname) + bye


def ntp_timestamp(unix_time: float) -> int:
    """A Unix wall-clock time as a 64-bit NTP timestamp (32.32 fixed point since 1900)."""
    return int((unix_time + _NTP_EPOCH_OFFSET) * (1 << 32)) & 0xFFFFFFFFFFFFFFFF


def ntp_middle(ntp: int) -> int:
    """The middle 32 bits of an NTP timestamp: the LSR field of a report (§6.4.1)."""
    return (ntp >> 16) & 0xFFFFFFFF
