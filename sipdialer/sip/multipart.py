"""MIME multipart bodies (RFC 2046 §5.1): multipart/mixed, /alternative, /related.

SIP carries them for SDP plus something else: ISUP from a gateway (RFC 3204), an
S/MIME signature, the text and binary parts of RFC 4475 mpart01. The grammar::

    [preamble CRLF] "--" boundary *LWSP CRLF part
    *( CRLF "--" boundary *LWSP CRLF part )
    CRLF "--" boundary "--" [epilogue]

The CRLF in front of each delimiter belongs to the delimiter, not to the part before
it; a part is MIME headers, a blank line, and octets (binary is fine: SIP does no
transfer encoding of its own). ``parse_multipart`` raises only ``ParseError``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

from .errors import ParseError
from .grammar import WS, Params, param_value
from .headers import Headers, parse_media_type

__all__ = [
    "MAX_DEPTH", "BodyPart", "boundary_of", "build_multipart", "find_part", "parse_multipart",
]  # fmt: skip

MAX_DEPTH = 4
"How deep ``find_part`` follows multiparts nested inside multiparts."


@dataclass
class BodyPart:
    """One part: its MIME headers (Content-Type, Content-Disposition...) and octets."""

    headers: Headers = field(default_factory=Headers)
    body: bytes = b""

    @property
    def content_type(self) -> str:
        """The lower-cased media type; RFC 2046 §5.1 defaults it to text/plain."""
        return self.media_type[0]

    @property
    def media_type(self) -> tuple[str, Params]:
        value = self.headers.get("Content-Type")
        return ("text/plain", ()) if value is None else parse_media_type(value)


def boundary_of(content_type: str) -> str:
    """The boundary parameter of a ``multipart/*`` Content-Type value."""
    media_type, params = parse_media_type(content_type)
    if not media_type.startswith("multipart/"):
        raise ParseError(f"not a multipart type: {media_type[:40]!r}", status_hint=415)
    boundary = param_value(params, "boundary")
    if not boundary or len(boundary) > 70 or boundary.endswith(" "):
        raise ParseError("multipart without a valid boundary")
    return boundary


def parse_multipart(body: bytes, content_type: str) -> list[BodyPart]:
    """Split *body* (of type *content_type*, which names the boundary) into its parts."""
    dash = b"--" + boundary_of(content_type).encode("utf-8", "surrogateescape")
    delimiter = b"\r\n" + dash
    if body.startswith(dash):
        at = 0
    else:
        at = body.find(delimiter)  # everything before it is the preamble
        if at < 0:
            raise ParseError("multipart body without its boundary")
        at += 2
    parts: list[BodyPart] = []
    while True:
        at += len(dash)
        if body.startswith(b"--", at):
            return parts  # the close delimiter; what follows is the epilogue
        while body[at : at + 1] in (b" ", b"\t") and at < len(body):
            at += 1  # transport padding
        if not body.startswith(b"\r\n", at):
            raise ParseError("multipart boundary not followed by CRLF")
        start = at + 2
        end = body.find(delimiter, start)
        if end < 0:
            raise ParseError("multipart body without its closing boundary")
        parts.append(_parse_part(body[start:end]))
        at = end + 2


def _parse_part(data: bytes) -> BodyPart:
    if data.startswith(b"\r\n"):
        return BodyPart(Headers(), data[2:])  # no headers at all
    end = data.find(b"\r\n\r\n")
    if end < 0:
        raise ParseError("multipart part without a blank line after its headers")
    items: list[tuple[str, str]] = []
    for line in data[:end].decode("utf-8", "surrogateescape").split("\r\n"):
        if line[:1] in (" ", "\t") and items:
            name, value = items[-1]
            items[-1] = (name, f"{value} {line.strip(WS)}".strip(WS))  # folded (RFC 5322)
            continue
        name, colon, value = line.partition(":")
        name = name.rstrip(WS)
        if not colon or not name or name[:1] in (" ", "\t"):
            raise ParseError(f"bad header line in multipart part {line[:40]!r}")
        items.append((name, value.strip(WS)))
    return BodyPart(Headers(items), data[end + 4 :])


def build_multipart(
    parts: Sequence[BodyPart], *, subtype: str = "mixed", boundary: str | None = None
) -> tuple[str, bytes]:
    """``(Content-Type value, body)`` for *parts*.

    Without *boundary*, one is derived from the content (so the output is
    reproducible) and checked not to occur inside any part.
    """
    if not parts:
        raise ValueError("a multipart body needs at least one part")
    if boundary is None:
        boundary = _choose_boundary(parts)
    elif not 0 < len(boundary) <= 70 or any(c in boundary for c in '\r\n"'):
        raise ValueError(f"bad boundary {boundary!r}")
    dash = b"--" + boundary.encode("ascii")
    out = bytearray()
    for part in parts:
        out += dash + b"\r\n"
        for name, value in part.headers:
            out += f"{name}: {value}\r\n".encode("utf-8", "surrogateescape")
        out += b"\r\n" + part.body + b"\r\n"
    out += dash + b"--\r\n"
    return f"multipart/{subtype};boundary={boundary}", bytes(out)


def _choose_boundary(parts: Sequence[BodyPart]) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(repr(list(part.headers)).encode("utf-8", "surrogateescape"))
        digest.update(part.body)
    seed = digest.hexdigest()
    for counter in range(1000):
        boundary = f"{seed[:24]}{counter:03d}"
        needle = boundary.encode("ascii")
        if not any(needle in part.body for part in parts):
            return boundary
    raise ValueError("could not find a boundary absent from the parts")  # pragma: no cover


def find_part(body: bytes, content_type: str | None, wanted: str) -> BodyPart | None:
    """The first part of media type *wanted* in *body*, looking inside nested multiparts.

    A body that is itself of type *wanted* is returned as a single part, so the UA can
    ask ``find_part(msg.body, msg.header("Content-Type"), "application/sdp")`` for any
    INVITE. ``None`` when there is no such part.
    """
    return _find(body, content_type, wanted.lower(), MAX_DEPTH)


def _find(body: bytes, content_type: str | None, wanted: str, depth: int) -> BodyPart | None:
    if content_type is None:
        return None
    media_type = parse_media_type(content_type)[0]
    if media_type == wanted:
        return BodyPart(Headers([("Content-Type", content_type)]), body)
    if not media_type.startswith("multipart/"):
        return None
    for part in parse_multipart(body, content_type):
        if part.content_type == wanted:
            return part
        if part.content_type.startswith("multipart/") and depth > 1:
            found = _find(part.body, part.headers.get("Content-Type"), wanted, depth - 1)
            if found is not None:
                return found
    return None
