"""SIP messages: parsing a datagram or framed stream message, and serialising it.

Theory of operation. ``parse_message(data)`` splits the start line and the header
lines (unfolding continuation lines, RFC 3261 §7.3.1), expands compact names and
applies Content-Length (§18.3: on UDP, octets past it are ignored; a body shorter
than it is an error). It checks only what is needed to route the message safely:
the start line, Content-Length and the size limits. ``check_request`` then applies
the header rules a UAS must enforce before acting (§8.2: the mandatory headers, CSeq
method, Max-Forwards); it raises ``ParseError`` whose ``status_hint`` is the answer.
Typed values (Via, From, To, CSeq, Contact) are parsed lazily, on access.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import ParseError
from .headers import (
    CSeq,
    Headers,
    NameAddr,
    Via,
    canonical_name,
    parse_cseq,
    parse_int_header,
    parse_media_type,
    parse_name_addr,
    parse_via,
    split_list,
)
from .uri import Uri, parse_uri

SIP_VERSION = "SIP/2.0"

MAX_MESSAGE_SIZE = 65535
"Largest message accepted: a UDP datagram's maximum; TCP messages are held to the same."
MAX_HEADERS = 256
"Header lines per message (after unfolding); RFC 4475 longreq needs ~70."
MAX_HEADER_LENGTH = 8192
"Longest single header line after unfolding (sipgo and Kamailio use similar limits)."

# RFC 3261 §25.1 token characters, used to validate methods.
_TOKEN = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~"
)

REASON_PHRASES = {
    100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 182: "Queued",
    183: "Session Progress", 199: "Early Dialog Terminated", 200: "OK", 202: "Accepted",
    300: "Multiple Choices", 301: "Moved Permanently", 302: "Moved Temporarily",
    305: "Use Proxy", 380: "Alternative Service", 400: "Bad Request", 401: "Unauthorized",
    402: "Payment Required", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
    406: "Not Acceptable", 407: "Proxy Authentication Required", 408: "Request Timeout",
    410: "Gone", 413: "Request Entity Too Large", 414: "Request-URI Too Long",
    415: "Unsupported Media Type", 416: "Unsupported URI Scheme", 420: "Bad Extension",
    421: "Extension Required", 422: "Session Interval Too Small", 423: "Interval Too Brief",
    480: "Temporarily Unavailable", 481: "Call/Transaction Does Not Exist",
    482: "Loop Detected", 483: "Too Many Hops", 484: "Address Incomplete", 485: "Ambiguous",
    486: "Busy Here", 487: "Request Terminated", 488: "Not Acceptable Here",
    489: "Bad Event", 491: "Request Pending", 493: "Undecipherable", 500: "Server Internal Error",
    501: "Not Implemented", 502: "Bad Gateway", 503: "Service Unavailable",
    504: "Server Time-out", 505: "Version Not Supported", 513: "Message Too Large",
    600: "Busy Everywhere", 603: "Decline", 604: "Does Not Exist Anywhere",
    606: "Not Acceptable",
}  # fmt: skip


@dataclass
class Message:
    """What requests and responses share: headers, body and the typed shortcuts."""

    headers: Headers = field(default_factory=Headers)
    body: bytes = b""

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    @property
    def call_id(self) -> str:
        value = self.headers.get("Call-ID")
        if value is None:
            raise ParseError("missing Call-ID")
        return value

    @property
    def cseq(self) -> CSeq:
        value = self.headers.get("CSeq")
        if value is None:
            raise ParseError("missing CSeq")
        return parse_cseq(value)

    @property
    def vias(self) -> list[Via]:
        return [parse_via(v) for v in self.headers.get_all("Via")]

    @property
    def top_via(self) -> Via:
        line = self.headers.get("Via")
        if line is None:
            raise ParseError("missing Via")
        values = split_list(line)
        if not values:
            raise ParseError("empty Via")
        return parse_via(values[0])

    @property
    def from_(self) -> NameAddr:
        return self._name_addr("From")

    @property
    def to(self) -> NameAddr:
        return self._name_addr("To")

    def _name_addr(self, name: str) -> NameAddr:
        value = self.headers.get(name)
        if value is None:
            raise ParseError(f"missing {name}")
        return parse_name_addr(value)

    @property
    def content_type(self) -> str | None:
        """The media type, lower-cased without parameters, or ``None``."""
        value = self.headers.get("Content-Type")
        return None if value is None else parse_media_type(value)[0]

    def start_line(self) -> str:
        raise NotImplementedError

    def to_bytes(self) -> bytes:
        """Serialise; Content-Length is always rewritten to the body's length."""
        parts = [self.start_line()]
        length_written = False
        for name, value in self.headers:
            if name == "Content-Length":
                if length_written:
                    continue
                value = str(len(self.body))
                length_written = True
            parts.append(f"{name}: {value}")
        if not length_written:
            parts.append(f"Content-Length: {len(self.body)}")
        parts.append("\r\n")
        return "\r\n".join(parts).encode("utf-8", "surrogateescape") + self.body


@dataclass
class Request(Message):
    method: str = "OPTIONS"
    uri: str = ""
    "The Request-URI as text; ``request_uri`` parses it."

    def start_line(self) -> str:
        return f"{self.method} {self.uri} {SIP_VERSION}"

    @property
    def request_uri(self) -> Uri:
        return parse_uri(self.uri)

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.uri}>"


@dataclass
class Response(Message):
    status_code: int = 200
    reason: str = "OK"

    def start_line(self) -> str:
        return f"{SIP_VERSION} {self.status_code} {self.reason}"

    @property
    def is_provisional(self) -> bool:
        return self.status_code < 200

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300

    def __repr__(self) -> str:
        return f"<Response {self.status_code} {self.reason}>"


def parse_message(data: bytes, *, stream: bool = False) -> Request | Response:
    """Parse one complete message (one UDP datagram, or one framed TCP message).

    On a datagram, octets past Content-Length are ignored (RFC 3261 §18.3); with
    ``stream=True`` a missing Content-Length is an error (it frames the stream).
    Raises ``ParseError``: garbage has status hint 400, a too-big message 513,
    an unknown SIP version 505.
    """
    if len(data) > MAX_MESSAGE_SIZE:
        raise ParseError("message too large", status_hint=513)
    end = data.find(b"\r\n\r\n")
    if end < 0:
        # Tolerate bare-LF senders; RFC 3261 §7 requires CRLF but says be lenient.
        end = data.find(b"\n\n")
        if end < 0:
            raise ParseError("no blank line after the headers")
        head, body = data[:end], data[end + 2 :]
        text = head.decode("utf-8", "surrogateescape").replace("\r\n", "\n")
        lines = text.split("\n")
    else:
        head, body = data[:end], data[end + 4 :]
        lines = head.decode("utf-8", "surrogateescape").split("\r\n")
    # RFC 3261 §7.5: CRLFs before the start line are ignored.
    while lines and not lines[0]:
        del lines[0]
    if not lines:
        raise ParseError("empty message")
    start = lines[0]
    headers = _parse_header_lines(lines, 1)
    message = _parse_start_line(start, headers)

    length_text = headers.get("Content-Length")
    if length_text is None:
        if stream:
            raise ParseError("missing Content-Length on a stream transport")
    else:
        length = parse_int_header(length_text, "Content-Length", MAX_MESSAGE_SIZE)
        if len(body) < length:
            raise ParseError("body shorter than Content-Length")
        body = body[:length]
    message.body = body
    return message


def _parse_start_line(start: str, headers: Headers) -> Request | Response:
    if start.startswith("SIP/"):
        version, _, rest = start.partition(" ")
        code, _, reason = rest.partition(" ")
        if version.upper() != SIP_VERSION:
            raise ParseError(f"unsupported SIP version {version!r}", status_hint=505)
        if len(code) != 3 or not code.isdigit() or code[0] == "0":
            raise ParseError(f"bad status code {code!r}")
        return Response(headers, b"", int(code), reason)
    parts = start.split(" ")
    if len(parts) != 3 or not all(parts):
        raise ParseError("malformed Request-Line")
    method, uri, version = parts
    if not all(c in _TOKEN for c in method):
        raise ParseError(f"bad method {method!r}")
    if version != SIP_VERSION:
        if version.upper() == SIP_VERSION:
            version = SIP_VERSION
        elif version.upper().startswith("SIP/"):
            raise ParseError(f"unsupported SIP version {version!r}", status_hint=505)
        else:
            raise ParseError("malformed Request-Line")
    return Request(headers, b"", method, uri)


def _parse_header_lines(lines: list[str], first: int) -> Headers:
    items: list[tuple[str, str]] = []
    name = ""
    value = ""
    for index in range(first, len(lines)):
        line = lines[index]
        if line[:1] in (" ", "\t"):
            if not name:
                raise ParseError("continuation line before the first header")
            value += " " + line.strip()
            continue
        if name:
            items.append(_header_item(name, value))
        colon = line.find(":")
        if colon <= 0:
            raise ParseError(f"malformed header line {line[:40]!r}")
        name = line[:colon]
        value = line[colon + 1 :]
    if name:
        items.append(_header_item(name, value))
    if len(items) > MAX_HEADERS:
        raise ParseError("too many header lines", status_hint=513)
    return Headers(items)


def _header_item(name: str, value: str) -> tuple[str, str]:
    name = name.rstrip(" \t")
    if not name or any(c not in _TOKEN for c in name):
        raise ParseError(f"bad header name {name[:40]!r}")
    if len(value) > MAX_HEADER_LENGTH:
        raise ParseError(f"header {name} too long", status_hint=513)
    return canonical_name(name), value.strip()


# --- UAS checks (RFC 3261 §8.2) -----------------------------------------------------

MANDATORY_REQUEST_HEADERS = ("To", "From", "CSeq", "Call-ID", "Via")
"RFC 3261 §8.1.1. Max-Forwards is mandatory too, but RFC 2543 clients omit it: tolerated."


def check_request(request: Request) -> None:
    """Raise ``ParseError`` (with the status to answer) if the request is unusable.

    Checks the mandatory headers parse, that CSeq's method matches the Request-Line,
    that Max-Forwards (if any) is a number, and that the Request-URI parses.
    """
    for name in MANDATORY_REQUEST_HEADERS:
        if request.headers.get(name) is None:
            raise ParseError(f"missing {name} header")
    for name in ("Call-ID", "CSeq", "From", "To"):
        if len(request.headers.get_lines(name)) > 1:
            raise ParseError(f"more than one {name} header")
    cseq = request.cseq
    if cseq.method != request.method:
        raise ParseError("CSeq method does not match the Request-Line")
    for via in request.vias:
        if via.protocol != SIP_VERSION:
            raise ParseError(f"unsupported SIP version in Via: {via.protocol}", status_hint=505)
    request.from_
    request.to
    max_forwards = request.headers.get("Max-Forwards")
    if max_forwards is not None:
        parse_int_header(max_forwards, "Max-Forwards", 255)
    expires = request.headers.get("Expires")
    if expires is not None:
        parse_int_header(expires, "Expires")
    content_type = request.headers.get("Content-Type")
    if content_type is not None:
        parse_media_type(content_type)
    elif request.body:
        raise ParseError("body without Content-Type")
    request.request_uri  # raises ParseError for a malformed Request-URI


def check_response(response: Response) -> None:
    """Raise ``ParseError`` if a response lacks what matching it needs; such a
    response is dropped, never answered (RFC 3261 §18.1.2)."""
    for name in ("Via", "CSeq", "Call-ID", "From", "To"):
        if response.headers.get(name) is None:
            raise ParseError(f"response without {name}")
    response.cseq
    response.top_via
    response.from_
    response.to


# --- building responses (RFC 3261 §8.2.6) -------------------------------------------


def response_for(
    request: Request,
    status_code: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    headers: list[tuple[str, str]] | None = None,
    body: bytes = b"",
) -> Response:
    """A response to *request* with Via, From, To, Call-ID, CSeq copied (§8.2.6.2).

    *to_tag* is added to To when the request's To has none and the status is not 100.
    """
    out = Headers()
    for name, value in request.headers:
        if name in ("Via", "From", "Call-ID", "CSeq"):
            out.add(name, value)
        elif name == "To":
            if to_tag and status_code != 100 and "tag=" not in value.lower():
                value = f"{value};tag={to_tag}"
            out.add(name, value)
        elif name == "Timestamp" and status_code == 100:
            out.add(name, value)  # RFC 3261 §8.2.6.1
        elif name == "Record-Route" and 100 < status_code < 300:
            out.add(name, value)  # RFC 3261 §12.1.1: copied into dialog-creating responses
    for name, value in headers or ():
        out.add(name, value)
    phrase = reason if reason is not None else REASON_PHRASES.get(status_code, "Unknown")
    return Response(out, body, status_code, phrase)


def header_names(message: Message) -> list[str]:
    """Canonical names in order, for tests and logs."""
    return [canonical_name(name) for name, _ in message.headers]
