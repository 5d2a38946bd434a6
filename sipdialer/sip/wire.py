"""The header section on the wire: start line, header lines, Content-Length.

Pure functions over ``str`` lines (decoded with ``surrogateescape``) that return plain
values, for ``message.parse_message`` to build a ``Request`` or ``Response`` from.
Each takes the list ``defects``: problems a UAS should answer rather than drop
(see ``message``) are appended to it; what leaves no message to answer raises.
"""

from __future__ import annotations

from .errors import ParseError
from .grammar import TOKEN_CHARS, WS, is_digits, is_token
from .headers import CANONICAL_NAMES
from .uri import MAX_URI_LENGTH

SIP_VERSION = "SIP/2.0"

MAX_MESSAGE_SIZE = 65535
"Largest message accepted (status hint 513): a UDP datagram's maximum; TCP is held to it too."
MAX_HEADERS = 256
"Header fields per message after unfolding (status hint 400); RFC 4475 longreq has ~45."
MAX_HEADER_LENGTH = 8192
"Longest header field after unfolding (status hint 400); sipgo and Kamailio are similar."


def parse_start_line(start: str, defects: list[ParseError]) -> tuple[str | None, int, str]:
    """``(None, code, reason)`` for a Status-Line, ``(method, 0, uri)`` for a Request-Line."""
    if start[:4].upper() == "SIP/":
        version, _, rest = start.partition(" ")
        code, _, reason = rest.partition(" ")
        if len(code) != 3 or not is_digits(code) or not "100" <= code <= "699":
            raise ParseError(f"bad status code {code[:20]!r}")
        if version.upper() != SIP_VERSION:
            defects.append(ParseError(f"unsupported SIP version {version[:20]!r}", status_hint=505))
        return None, int(code), reason
    parts = start.split(" ")
    if len(parts) != 3 or not all(parts):
        # RFC 4475 lwsstart, trws, lwsruri: answer 400, but only with a Request in hand.
        parts = [p for p in parts if p]
        if len(parts) < 3:
            raise ParseError("malformed Request-Line")
        parts = [parts[0], " ".join(parts[1:-1]), parts[-1]]
        defects.append(ParseError("extra spaces in the Request-Line"))
    method, uri, version = parts
    if not TOKEN_CHARS.issuperset(method):
        defects.append(ParseError(f"bad method {method[:40]!r}"))
    if len(uri) > MAX_URI_LENGTH:
        defects.append(ParseError("Request-URI too long", status_hint=414))
    if version != SIP_VERSION and version.upper() != SIP_VERSION:
        hint = 505 if version[:4].upper() == "SIP/" else 400
        defects.append(ParseError(f"unsupported SIP version {version[:20]!r}", status_hint=hint))
    return method, 0, uri


def parse_header_lines(lines: list[str], defects: list[ParseError]) -> list[tuple[str, str]]:
    if len(lines) > MAX_HEADERS + 1:
        raise ParseError(f"more than {MAX_HEADERS} header fields")
    items: list[tuple[str, str]] = []
    append = items.append
    canonical = CANONICAL_NAMES.get
    ws = WS
    known = len(defects)
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        canon = canonical(name)
        if canon is None or not colon:
            if line[:1] in (" ", "\t"):
                # A continuation line: unfold everything and start again (rare, so the
                # common case pays nothing for folding).
                del defects[known:]
                unfolded = unfold(lines, defects)
                if max(map(len, unfolded)) > MAX_HEADER_LENGTH:
                    raise ParseError(f"header field longer than {MAX_HEADER_LENGTH}")
                return parse_header_lines(unfolded, defects)
            canon = checked_name(name) if colon else None
            if canon is None:
                defects.append(ParseError(f"malformed header line {line[:40]!r}"))
                continue
        append((canon, value.strip(ws)))
    return items


def unfold(lines: list[str], defects: list[ParseError]) -> list[str]:
    """Join continuation lines to their header line with one SP (RFC 3261 §7.3.1)."""
    out = [lines[0]]
    pieces: list[str] = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t"):
            if len(out) == 1:
                defects.append(ParseError("continuation line before the first header"))
            else:
                piece = line.strip(WS)
                if piece:
                    pieces.append(piece)
            continue
        if pieces:
            out[-1] = " ".join([out[-1].rstrip(WS), *pieces])
            pieces = []
        out.append(line)
    if pieces:
        out[-1] = " ".join([out[-1].rstrip(WS), *pieces])
    return out


def checked_name(name: str) -> str | None:
    """Slow path of header-name lookup: LWS before the colon, odd case, unknown names."""
    name = name.rstrip(WS)
    canon = CANONICAL_NAMES.get(name) or CANONICAL_NAMES.get(name.lower())
    if canon is not None:
        return canon
    return name if is_token(name) else None


def read_body(
    data: bytes, start: int, items: list[tuple[str, str]], stream: bool, defects: list[ParseError]
) -> bytes:
    lengths = [value for name, value in items if name == "Content-Length"]
    if not lengths:
        if stream:
            raise ParseError("missing Content-Length on a stream transport")
        return data[start:]
    if len(lengths) > 1 and len(set(lengths)) > 1:
        # RFC 4475 mcl01: conflicting values are a framing error.
        defects.append(ParseError("conflicting Content-Length values"))
        return data[start:]
    text = lengths[0]
    if not is_digits(text) or len(text) > 10 or int(text) > MAX_MESSAGE_SIZE:
        if stream:
            raise ParseError(f"bad Content-Length {text[:20]!r}")
        defects.append(ParseError(f"bad Content-Length {text[:20]!r}"))  # RFC 4475 ncl
        return data[start:]
    length = int(text)
    if len(data) - start < length:
        if stream:
            raise ParseError("body shorter than Content-Length")
        defects.append(ParseError("body shorter than Content-Length"))  # RFC 4475 clerr
        return data[start:]
    return data[start : start + length]
