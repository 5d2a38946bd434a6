"""SDP (RFC 4566) for audio calls; offer/answer (RFC 3264) is in ``sdp_offer``.

Theory of operation
-------------------
``SessionDescription.parse`` reads the *structure* strictly (``v=`` first, ``o=`` present,
numeric ports and payload types, known line types in the right section) and raises
``SdpError`` otherwise. Attributes and the lines we do not interpret (``b= t= i=``...) are
kept verbatim and in order, so ``parse(x).to_bytes() == x`` for well-formed CRLF input.
Attribute *meaning* is read lazily by the ``Media`` helpers (``rtpmap``, ``ptime``,
``rtcp``...): a malformed attribute is treated as absent instead of failing the call.

Not implemented: SRTP, ICE, bundling, multicast (such streams are rejected).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from enum import StrEnum


class SdpError(ValueError):
    """The text is not a session description we can read (a UAS answers 400 or 488)."""


class NoCommonCodec(SdpError):
    """No offered audio stream shares a codec with us: a UAS answers 488 (RFC 3264 §6)."""


class Direction(StrEnum):
    """Direction attribute (RFC 4566 §6), seen from the side that wrote it."""

    SENDRECV = "sendrecv"
    SENDONLY = "sendonly"
    RECVONLY = "recvonly"
    INACTIVE = "inactive"

    @property
    def sends(self) -> bool:
        return self in (Direction.SENDRECV, Direction.SENDONLY)

    @property
    def receives(self) -> bool:
        return self in (Direction.SENDRECV, Direction.RECVONLY)

    @classmethod
    def from_flags(cls, *, send: bool, recv: bool) -> Direction:
        if send:
            return cls.SENDRECV if recv else cls.SENDONLY
        return cls.RECVONLY if recv else cls.INACTIVE

    def meet(self, peer: Direction) -> Direction:
        """What we may do if we want ``self`` and the peer says ``peer`` (RFC 3264 §6.1)."""
        return Direction.from_flags(
            send=self.sends and peer.receives, recv=self.receives and peer.sends
        )


@dataclass(frozen=True)
class RtpMap:
    """A payload format: ``a=rtpmap:<pt> <encoding>/<clock_rate>[/<channels>]``."""

    payload_type: int
    encoding: str
    clock_rate: int
    channels: int | None = None

    @property
    def key(self) -> tuple[str, int]:
        """What identifies the codec whatever its payload type: (ENCODING, clock rate)."""
        return self.encoding.upper(), self.clock_rate

    def __str__(self) -> str:
        text = f"{self.payload_type} {self.encoding}/{self.clock_rate}"
        return text if self.channels is None else f"{text}/{self.channels}"


# RFC 3551 §6 table 4: static audio payload types, usable without an rtpmap. G.722 says
# 8000 although it samples at 16 kHz (RFC 3551 §4.5.2).
STATIC_PAYLOAD_TYPES = {
    pt: RtpMap(pt, name, 8000)
    for pt, name in ((0, "PCMU"), (3, "GSM"), (8, "PCMA"), (9, "G722"), (18, "G729"))
}
_STATIC_BY_NAME = {m.encoding: m for m in STATIC_PAYLOAD_TYPES.values()}
TELEPHONE_EVENT = "telephone-event"
DEFAULT_TELEPHONE_EVENT_PT = 101
DEFAULT_PTIME = 20
"Packetization (ms) assumed when the peer states none (RFC 3551 §4.2)."
RTP_PROFILES = frozenset({"RTP/AVP", "RTP/AVPF"})
"Profiles we speak: plain RTP (AVPF is AVP with optional feedback)."


@dataclass(frozen=True)
class Origin:
    """``o=<username> <sess-id> <sess-version> <nettype> <addrtype> <address>``."""

    username: str
    session_id: int
    session_version: int
    address: str
    nettype: str = "IN"
    addrtype: str = "IP4"

    def __str__(self) -> str:
        fields = (self.username, self.session_id, self.session_version, self.nettype)
        return " ".join(map(str, (*fields, self.addrtype, self.address)))


@dataclass(frozen=True)
class Connection:
    """``c=<nettype> <addrtype> <address>``."""

    address: str
    nettype: str = "IN"
    addrtype: str = "IP4"

    @property
    def is_null(self) -> bool:
        """The RFC 2543 hold address (RFC 3264 §8.4)."""
        return self.address in ("0.0.0.0", "::")

    def __str__(self) -> str:
        return f"{self.nettype} {self.addrtype} {self.address}"


@dataclass(frozen=True)
class Attribute:
    """``a=<name>`` (a flag: ``value`` is None) or ``a=<name>:<value>``, kept verbatim."""

    name: str
    value: str | None = None

    def __str__(self) -> str:
        return self.name if self.value is None else f"{self.name}:{self.value}"


@dataclass(frozen=True)
class Rtcp:
    """``a=rtcp:<port> [<nettype> <addrtype> <address>]`` (RFC 3605)."""

    port: int
    address: str | None = None


Line = tuple[str, str]
"A line kept verbatim as (type letter, value)."
# RFC 4566 §5 order. t and r share a rank so that each r= stays behind its own t=.
_RANK = {letter: rank for rank, letter in enumerate("vosiuepcbtrzkam")} | {"r": 9}


def _lines(
    head: Iterator[str], kept: tuple[Line, ...], c: Connection | None, attrs: tuple[Attribute, ...]
) -> Iterator[str]:
    """One section: its head, kept lines and c= in RFC order, then its attributes."""
    yield from head
    for letter, value in sorted(kept + ((("c", str(c)),) if c else ()), key=_rank):
        yield f"{letter}={value}"
    yield from (f"a={a}" for a in attrs)


def _rank(line: Line) -> int:
    return _RANK[line[0]]


def _is_direction(a: Attribute) -> bool:
    return a.value is None and a.name in Direction.__members__.values()


def _direction(attributes: tuple[Attribute, ...]) -> Direction | None:
    return next((Direction(a.name) for a in attributes if _is_direction(a)), None)


def _positive_int(value: str | None) -> int | None:
    try:  # RFC 4566 allows a decimal ptime ("20.0"); we keep whole milliseconds
        number = round(float(value)) if value else 0
    except (ValueError, OverflowError):
        return None
    return number if number > 0 else None


@dataclass(frozen=True)
class Media:
    """One media section: ``m=<kind> <port>[/<count>] <proto> <fmt>...`` and its lines."""

    kind: str
    port: int
    proto: str
    formats: tuple[str, ...]
    port_count: int | None = None
    connection: Connection | None = None
    attributes: tuple[Attribute, ...] = ()
    lines: tuple[Line, ...] = ()
    "Other media-level lines (i= b= k=), kept verbatim."

    @property
    def is_rtp(self) -> bool:
        """Plain RTP, which we speak (not SRTP, DTLS or TCP)."""
        return self.proto.upper() in RTP_PROFILES

    @property
    def payload_types(self) -> tuple[int, ...]:
        return tuple(int(f) for f in self.formats if f.isascii() and f.isdigit())

    def attribute(self, name: str) -> str | None:
        """The value of the first ``a=<name>:<value>`` line, or None."""
        return next((a.value for a in self.attributes if a.name == name), None)

    def _by_pt(self, name: str, payload_type: int) -> Iterator[str]:
        prefix = f"{payload_type} "
        for a in self.attributes:
            if a.name == name and a.value is not None and a.value.startswith(prefix):
                yield a.value[len(prefix) :].strip()

    def rtpmap(self, payload_type: int) -> RtpMap | None:
        """The rtpmap of a payload type, else its static default (RFC 3551 table 4)."""
        for value in self._by_pt("rtpmap", payload_type):
            match = re.fullmatch(r"([^/\s]+)/(\d{1,9})(?:/(\d{1,3}))?", value, re.ASCII)
            if match is not None:
                channels = None if match[3] is None else int(match[3])
                return RtpMap(payload_type, match[1], int(match[2]), channels)
        return STATIC_PAYLOAD_TYPES.get(payload_type)

    @property
    def rtpmaps(self) -> tuple[RtpMap, ...]:
        """The known formats of this m-line, in its (preference) order."""
        return tuple(m for pt in self.payload_types if (m := self.rtpmap(pt)) is not None)

    def fmtp(self, payload_type: int) -> str | None:
        return next(self._by_pt("fmtp", payload_type), None)

    def telephone_event(self, clock_rate: int = 8000) -> RtpMap | None:
        """The RFC 4733 format at ``clock_rate`` (it must be the codec's, RFC 4733 §2.1)."""
        return next((m for m in self.rtpmaps if m.key == ("TELEPHONE-EVENT", clock_rate)), None)

    @property
    def direction(self) -> Direction | None:
        """The media-level direction; see ``SessionDescription.media_direction``."""
        return _direction(self.attributes)

    @property
    def ptime(self) -> int | None:
        return _positive_int(self.attribute("ptime"))

    @property
    def maxptime(self) -> int | None:
        return _positive_int(self.attribute("maxptime"))

    @property
    def rtcp(self) -> Rtcp | None:
        fields = (self.attribute("rtcp") or "").split()
        if not fields or not fields[0].isascii() or not fields[0].isdigit():
            return None
        return Rtcp(int(fields[0]), fields[3] if len(fields) >= 4 else None)

    def with_direction(self, direction: Direction) -> Media:
        kept = tuple(a for a in self.attributes if not _is_direction(a))
        return replace(self, attributes=(*kept, Attribute(direction.value)))

    def rejected(self) -> Media:
        """This stream as an answer rejects it: port 0, the same formats (RFC 3264 §6)."""
        return Media(self.kind, 0, self.proto, self.formats or ("0",))

    def to_lines(self) -> Iterator[str]:
        port = self.port if self.port_count is None else f"{self.port}/{self.port_count}"
        head = " ".join((f"m={self.kind}", str(port), self.proto, *self.formats))
        return _lines(iter((head,)), self.lines, self.connection, self.attributes)


@dataclass(frozen=True)
class SessionDescription:
    """A whole SDP body. Build it with ``parse`` or the ``make_*`` helpers."""

    origin: Origin
    session_name: str = "-"
    connection: Connection | None = None
    media: tuple[Media, ...] = ()
    attributes: tuple[Attribute, ...] = ()
    lines: tuple[Line, ...] = (("t", "0 0"),)
    "Other session-level lines (i u e p b t r z k), kept verbatim."

    @classmethod
    def parse(cls, text: str | bytes) -> SessionDescription:
        """Parse an SDP body; raises ``SdpError``. LF-only lines and trailing blanks are fine."""
        return _parse(text)

    @property
    def direction(self) -> Direction | None:
        """The session-level direction attribute: the default of every m-line."""
        return _direction(self.attributes)

    def media_direction(self, media: Media) -> Direction:
        """Media level, else session level, else sendrecv (RFC 3264 §5.1)."""
        return media.direction or self.direction or Direction.SENDRECV

    def connection_for(self, media: Media) -> Connection | None:
        return media.connection or self.connection

    @property
    def audio(self) -> Media | None:
        """The first active (port != 0) audio stream."""
        return next((m for m in self.media if m.kind == "audio" and m.port != 0), None)

    def audio_endpoint(self) -> tuple[str, int] | None:
        """Where the writer receives audio: (connection address, port), or None."""
        audio = self.audio
        conn = None if audio is None else self.connection_for(audio)
        return None if audio is None or conn is None else (conn.address, audio.port)

    def is_hold(self, media: Media | None = None) -> bool:
        """Does the writer hold ``media`` (default: the audio stream)?

        Hold is ``a=sendonly`` or ``a=inactive`` (RFC 3264 §8.4), or the RFC 2543 style
        ``c=IN IP4 0.0.0.0``. A rejected or absent stream is not on hold.
        """
        media = media or self.audio
        if media is None or media.port == 0:
            return False
        conn = self.connection_for(media)
        held = self.media_direction(media) in (Direction.SENDONLY, Direction.INACTIVE)
        return held or (conn is not None and conn.is_null)

    def to_lines(self) -> Iterator[str]:
        head = iter(("v=0", f"o={self.origin}", f"s={self.session_name}"))
        yield from _lines(head, self.lines, self.connection, self.attributes)
        for m in self.media:
            yield from m.to_lines()

    def __str__(self) -> str:
        return "".join(line + "\r\n" for line in self.to_lines())

    def to_bytes(self) -> bytes:
        return str(self).encode("utf-8")


# --- parsing ---------------------------------------------------------------------------

_TOKEN = r"[!#-'*+\-.0-9A-Z^-~]+"  # RFC 4566 token-char
_SYNTAX = {  # RFC 4566 §5 shapes, matched after collapsing runs of blanks (except in a=)
    "v": ("0", "0"),
    "o": (r"\S+ \d+ \d+ \S+ \S+ \S+", "<user> <sess-id> <version> <net> <addrtype> <addr>"),
    "c": (r"\S+ \S+ \S+", "<nettype> <addrtype> <address>"),
    "b": (_TOKEN + r":\d+", "<bwtype>:<number>"),
    "t": (r"\d+ \d+", "<start> <stop>"),
    "m": (_TOKEN + r" \d+(/\d+)? [\w./+-]+( \S+)*", "<media> <port>[/<n>] <proto> <fmt>..."),
    "a": (_TOKEN + r"(:.*)?", "<name>[:<value>]"),
}


def _parse(text: str | bytes) -> SessionDescription:
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SdpError(f"SDP is not UTF-8 ({exc.reason})") from None
    single: dict[str, str] = {}  # o= s= c=
    attributes: list[Attribute] = []
    kept: list[Line] = []
    media: list[Media] = []
    seen = 0
    for number, line in enumerate(re.split(r"\r\n|\n|\r", text), 1):
        line = line.strip()
        letter, value = line[:1], line[2:]
        if not line:
            continue
        if line[1:2] != "=" or not "a" <= letter <= "z":
            raise SdpError(f"SDP line {number} is not of the form x=value: {line[:40]!r}")
        seen += 1
        if (letter == "v") != (seen == 1):
            raise SdpError(f"SDP line {number}: v= must come first, and only once")
        pattern, shape = _SYNTAX.get(letter, (".*", ""))
        collapsed = value if letter == "a" else " ".join(value.split())
        if not re.fullmatch(pattern, collapsed, re.ASCII | re.DOTALL):
            raise SdpError(f"SDP line {number}: {letter}={value[:40]!r}, expected {shape}")
        if letter == "v":
            continue
        last = media[-1] if media else None
        if letter == "m":
            media.append(_media(collapsed, number))
        elif letter == "a" and last is not None:
            media[-1] = replace(last, attributes=(*last.attributes, _attribute(value)))
        elif letter == "a":
            attributes.append(_attribute(value))
        elif letter == "c" and last is not None and last.connection is None:
            media[-1] = replace(last, connection=_connection(collapsed))
        elif letter in "bik" and last is not None:
            kept_lines = sorted((*last.lines, (letter, value)), key=_rank)
            media[-1] = replace(last, lines=tuple(kept_lines))
        elif letter in "osc" and last is None and letter not in single:
            single[letter] = collapsed if letter in "oc" else value
        elif letter in "iuepbtrzk" and last is None and (letter != "r" or "t" in dict(kept)):
            kept.append((letter, value))
        else:  # unknown letters, repeated lines, session lines after m=, multicast c= lists
            where = "the session" if last is None else "a media section"
            raise SdpError(f"SDP line {number}: unexpected {letter}= line in {where}")
    if "o" not in single:
        raise SdpError("SDP has no o= line" if seen else "SDP is empty")
    if "t" not in dict(kept):
        kept.append(("t", "0 0"))  # RFC 4566 requires one; tolerate its absence
    kept.sort(key=_rank)  # the order we write them in (stable: r= stays behind its t=)
    user, sid, version, nettype, addrtype, address = single["o"].split()
    origin = Origin(user, int(sid), int(version), address, nettype, addrtype)
    connection = _connection(single["c"]) if "c" in single else None
    session_name = single.get("s", "-")
    return SessionDescription(
        origin, session_name, connection, tuple(media), tuple(attributes), tuple(kept)
    )


def _media(value: str, number: int) -> Media:
    kind, port_text, proto, *formats = value.split()
    port, _, count = port_text.partition("/")
    if int(port) > 65535 or (count and not 0 < int(count) <= 65535):
        raise SdpError(f"SDP line {number}: port {port_text!r} out of range")
    if proto.upper().startswith("RTP/") and not all(
        f.isascii() and f.isdigit() and int(f) <= 127 for f in formats
    ):
        raise SdpError(f"SDP line {number}: RTP payload types must be 0-127, not {formats}")
    return Media(kind, int(port), proto, tuple(formats), int(count) if count else None)


def _attribute(value: str) -> Attribute:
    name, sep, rest = value.partition(":")
    return Attribute(name, rest if sep else None)


def _connection(value: str) -> Connection:
    nettype, addrtype, address = value.split()
    return Connection(address, nettype, addrtype)
