"""The offer/answer model (RFC 3264) over ``sdp.SessionDescription``.

``make_offer`` builds our offer; ``make_answer`` answers a peer's offer and returns the
agreement as ``Negotiated``; ``negotiated`` reads the peer's answer to our offer. The answer
has one m-line per offered m-line, in order (RFC 3264 §6); we accept the first plain-RTP
audio stream sharing a codec with us and reject every other stream with port 0; the codec is
the first of the *offerer's* list that we support (§6.1); the telephone-event payload type is
mirrored from the offer; directions mirror (§6.1: sendonly -> recvonly, recvonly ->
sendonly). ``hold``, ``resume`` and ``with_direction`` build re-offers with the o= version
incremented (§8, §8.4).

Every public name here is also importable from ``sdp``, which re-exports it lazily.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from .sdp import (
    _STATIC_BY_NAME,
    DEFAULT_PTIME,
    DEFAULT_TELEPHONE_EVENT_PT,
    TELEPHONE_EVENT,
    Attribute,
    Connection,
    Direction,
    Media,
    NoCommonCodec,
    Origin,
    Rtcp,
    RtpMap,
    SdpError,
    SessionDescription,
    _is_direction,
)

__all__ = [
    "Negotiated",
    "bump_version",
    "hold",
    "make_answer",
    "make_offer",
    "negotiated",
    "resume",
    "with_direction",
]


@dataclass(frozen=True)
class Negotiated:
    """What an offer/answer exchange agreed for the audio stream, seen from our side."""

    codec: RtpMap
    "The codec to send, with the payload type the peer listed for it."
    telephone_event_pt: int | None
    remote_address: str
    remote_port: int
    ptime: int
    "Packetization the peer wants to receive, in ms."
    direction: Direction
    "Ours: SENDONLY means we send and the peer does not."
    remote_hold: bool
    "The peer holds the call (sendonly, inactive or c=0.0.0.0)."
    media_index: int
    "Index of the audio m-line, the same in offer and answer."
    remote_rtcp: Rtcp | None = None

    @property
    def payload_type(self) -> int:
        return self.codec.payload_type


def _agreement(
    remote: SessionDescription,
    index: int,
    conn: Connection,
    codec: RtpMap,
    te: RtpMap | None,
    ours: Direction,
) -> Negotiated:
    """What we agreed with the peer, who described ``remote.media[index]``."""
    media = remote.media[index]
    return Negotiated(
        codec,
        None if te is None else te.payload_type,
        conn.address,
        media.port,
        media.ptime or DEFAULT_PTIME,
        ours.meet(remote.media_direction(media)),
        remote.is_hold(media),
        index,
        media.rtcp,
    )


def _supported(names: Sequence[str], codec: RtpMap) -> bool:
    """``names`` holds "PCMA" (a static codec at its own rate) or "NAME/RATE" entries."""
    for name in names:
        encoding, _, rate = name.upper().partition("/")
        static = _STATIC_BY_NAME.get(encoding)
        rate = rate or str(static.clock_rate if static else codec.clock_rate)
        if (encoding, rate) == (codec.key[0], str(codec.clock_rate)):
            return True
    return False


def _audio(
    port: int,
    proto: str,
    maps: list[RtpMap],
    fmtp: dict[int, str | None],
    ptime: int | None,
    d: Direction,
) -> Media:
    """An audio stream we describe, with ``maps`` as its formats."""
    attributes = [Attribute("rtpmap", str(m)) for m in maps]
    attributes += [Attribute("fmtp", f"{pt} {v}") for pt, v in fmtp.items() if v]
    attributes += [Attribute("ptime", str(ptime))] if ptime else []
    formats = tuple(str(m.payload_type) for m in maps)
    return Media("audio", port, proto, formats, attributes=(*attributes, Attribute(d.value)))


def _description(
    address: str, media: Sequence[Media], session_id: int, session_version: int, username: str
) -> SessionDescription:
    addrtype = "IP6" if ":" in address else "IP4"
    origin = Origin(username, session_id, session_version, address, addrtype=addrtype)
    return SessionDescription(origin, "-", Connection(address, addrtype=addrtype), tuple(media))


def make_offer(
    address: str,
    port: int,
    codecs: Sequence[str] = ("PCMU", "PCMA"),
    *,
    telephone_event: bool = True,
    ptime: int | None = DEFAULT_PTIME,
    direction: Direction | str = Direction.SENDRECV,
    session_id: int,
    session_version: int,
    username: str = "sipdialer",
) -> SessionDescription:
    """Our offer: one audio stream, ``codecs`` (static ones) in preference order."""
    unknown = [name for name in codecs if name.upper() not in _STATIC_BY_NAME]
    if unknown or not codecs:
        raise ValueError(f"cannot offer {unknown or 'no codec'}: we offer static payload types")
    maps = [_STATIC_BY_NAME[name.upper()] for name in codecs]
    fmtp: dict[int, str | None] = {}
    if telephone_event:
        maps.append(RtpMap(DEFAULT_TELEPHONE_EVENT_PT, TELEPHONE_EVENT, 8000))
        fmtp[DEFAULT_TELEPHONE_EVENT_PT] = "0-16"  # the 16 DTMF events and flash (RFC 4733 §3.2)
    media = _audio(port, "RTP/AVP", maps, fmtp, ptime, Direction(direction))
    return _description(address, [media], session_id, session_version, username)


def make_answer(
    offer: SessionDescription,
    address: str,
    port: int,
    supported: Sequence[str] = ("PCMU", "PCMA"),
    *,
    telephone_event: bool = True,
    ptime: int | None = DEFAULT_PTIME,
    direction: Direction | str = Direction.SENDRECV,
    session_id: int,
    session_version: int,
    username: str = "sipdialer",
) -> tuple[SessionDescription, Negotiated]:
    """Answer ``offer`` (RFC 3264 §6): accept one audio stream, reject all others.

    ``direction`` is what we want (``sendonly`` holds); the answer also honours the
    offer's direction. Raises ``NoCommonCodec`` (answer 488).
    """
    ours = Direction(direction)
    for index, offered in enumerate(offer.media):
        if offered.kind != "audio" or offered.port == 0 or not offered.is_rtp:
            continue
        codec = next((m for m in offered.rtpmaps if _supported(supported, m)), None)
        conn = offer.connection_for(offered)
        if codec is None or conn is None:
            continue
        te = offered.telephone_event(codec.clock_rate) if telephone_event else None
        result = _agreement(offer, index, conn, codec, te, ours)
        maps, fmtps = [codec], {codec.payload_type: offered.fmtp(codec.payload_type)}
        if te is not None:  # with the offer's payload type (RFC 3264 §6.1)
            maps.append(te)
            fmtps[te.payload_type] = offered.fmtp(te.payload_type) or "0-15"
        answer = [m.rejected() for m in offer.media]
        answer[index] = _audio(port, offered.proto, maps, fmtps, ptime, result.direction)
        return _description(address, answer, session_id, session_version, username), result
    offered_codecs = {m.encoding for s in offer.media if s.kind == "audio" for m in s.rtpmaps}
    offered_codecs.discard(TELEPHONE_EVENT)
    raise NoCommonCodec(
        f"no common audio codec: offered {', '.join(sorted(offered_codecs)) or 'none'},"
        f" we support {', '.join(supported)}"
    )


def negotiated(offer: SessionDescription, answer: SessionDescription) -> Negotiated:
    """Read the peer's ``answer`` to our ``offer``. Raises ``NoCommonCodec`` or ``SdpError``."""
    if len(answer.media) != len(offer.media):
        raise SdpError(f"the answer has {len(answer.media)} m-lines, the offer {len(offer.media)}")
    for index, (mine, theirs) in enumerate(zip(offer.media, answer.media, strict=True)):
        if mine.kind != "audio" or 0 in (mine.port, theirs.port):
            continue
        offered = {m.key for m in mine.rtpmaps if m.key[0] != "TELEPHONE-EVENT"}
        codec = next((m for m in theirs.rtpmaps if m.key in offered), None)
        conn = answer.connection_for(theirs)
        if codec is None or conn is None:
            continue
        te = theirs.telephone_event(codec.clock_rate)
        if mine.telephone_event(codec.clock_rate) is None:
            te = None  # we did not offer it
        ours = offer.media_direction(mine)
        return _agreement(answer, index, conn, codec, te, ours)
    raise NoCommonCodec("the answer accepts none of the offered audio codecs")


def bump_version(sd: SessionDescription) -> SessionDescription:
    """The same description with the o= version incremented (a changed re-offer, §8)."""
    return replace(sd, origin=replace(sd.origin, session_version=sd.origin.session_version + 1))


def _redirect(sd: SessionDescription, new: Callable[[Direction], Direction]) -> SessionDescription:
    media = tuple(
        m if m.port == 0 else m.with_direction(new(sd.media_direction(m))) for m in sd.media
    )
    attributes = tuple(a for a in sd.attributes if not _is_direction(a))
    return bump_version(replace(sd, media=media, attributes=attributes))


def with_direction(sd: SessionDescription, direction: Direction | str) -> SessionDescription:
    """A re-offer of our ``sd`` with ``direction`` on every active stream (version + 1)."""
    return _redirect(sd, lambda _: Direction(direction))


def hold(sd: SessionDescription) -> SessionDescription:
    """A re-offer that holds: sendrecv -> sendonly, recvonly -> inactive (RFC 3264 §8.4)."""
    return _redirect(sd, lambda current: Direction.from_flags(send=current.sends, recv=False))


def resume(sd: SessionDescription) -> SessionDescription:
    """A re-offer that takes the call off hold (sendrecv again)."""
    return with_direction(sd, Direction.SENDRECV)
