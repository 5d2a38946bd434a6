"""SIP messages: parsing a datagram or framed stream message, and serialising it.

Theory of operation. ``parse_message(data)`` splits the start line and the header
lines (unfolding continuation lines, RFC 3261 §7.3.1), expands compact names and
applies Content-Length (§18.3: on UDP, octets past it are ignored). It raises
``ParseError`` only when it cannot build a message at all (no blank line, no
recognisable start line, a size limit exceeded): such input is dropped, never
answered. Anything else wrong that a UAS should *answer* (a bad SIP version, LWS in
the Request-Line, a malformed header line, a Content-Length that does not fit the
body) is recorded as the message's ``defect``, so the UAS still holds a ``Request``
to build the 400/505 from. ``check_request`` raises that defect, then applies the
header rules a UAS must enforce before acting (§8.2: the mandatory headers, CSeq,
Max-Forwards, Request-URI scheme); its ``ParseError.status_hint`` is the answer.
``check_response`` does the same for responses, which are dropped (§18.1.2).

Typed values (Via, From, To, CSeq, Contact) are parsed lazily, on access, from the
header text, and remembered by the ``Headers`` until it changes: the text is the
truth, so editing ``headers`` never leaves a stale parsed copy behind.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import LocalProtocolError, ParseError
from .grammar import is_digits
from .headers import (
    Contact,
    CSeq,
    Headers,
    NameAddr,
    Via,
    canonical_name,
    parse_contacts,
    parse_cseq,
    parse_int_header,
    parse_media_type,
    parse_name_addr,
    parse_via,
    split_list,
)
from .uri import MAX_URI_LENGTH, AbsoluteUri, SipUri, Uri, parse_uri
from .wire import (
    MAX_HEADER_LENGTH,
    MAX_HEADERS,
    MAX_MESSAGE_SIZE,
    SIP_VERSION,
    parse_header_lines,
    parse_start_line,
    read_body,
)

__all__ = [
    "KNOWN_METHODS", "MANDATORY_REQUEST_HEADERS", "MAX_HEADERS", "MAX_HEADER_LENGTH",
    "MAX_MESSAGE_SIZE", "MAX_URI_LENGTH", "REASON_PHRASES", "SIP_VERSION", "Message",
    "Request", "Response", "check_request", "check_response", "header_names", "is_sip_date",
    "parse_message", "response_for",
]  # fmt: skip

KNOWN_METHODS = frozenset(
    {
        "INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "PRACK", "SUBSCRIBE",
        "NOTIFY", "PUBLISH", "INFO", "REFER", "MESSAGE", "UPDATE",
    }
)  # fmt: skip
"Methods of RFC 3261 and its common extensions; others get 501 (RFC 3261 §21.5.2)."

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
        return self.headers.memo("CSeq", _cseq)

    @property
    def vias(self) -> list[Via]:
        """Every Via value, top first (a fresh list: the caller may change it)."""
        return list(self.headers.memo("vias", _vias))

    @property
    def top_via(self) -> Via:
        return self.headers.memo("top_via", _top_via)

    @property
    def from_(self) -> NameAddr:
        return self.headers.memo("From", _from)

    @property
    def to(self) -> NameAddr:
        return self.headers.memo("To", _to)

    @property
    def contacts(self) -> list[Contact]:
        """Every Contact value (``[]`` when there is none)."""
        return list(self.headers.memo("contacts", _contacts))

    @property
    def max_forwards(self) -> int | None:
        value = self.headers.get("Max-Forwards")
        return None if value is None else parse_int_header(value, "Max-Forwards", 255)

    @property
    def content_type(self) -> str | None:
        """The media type, lower-cased without parameters, or ``None``."""
        value = self.headers.get("Content-Type")
        return None if value is None else parse_media_type(value)[0]

    def start_line(self) -> str:
        raise NotImplementedError

    def to_bytes(self) -> bytes:
        """Serialise; Content-Length is always written, with the body's length.

        A CR or LF inside a start line or header value would let a value smuggle
        header lines in: that raises ``LocalProtocolError``.
        """
        lines = [self.start_line()]
        append = lines.append
        length_written = False
        for name, value in self.headers:
            if name == "Content-Length":
                if length_written:
                    continue
                value = str(len(self.body))
                length_written = True
            append(f"{name}: {value}")
        if not length_written:
            append(f"Content-Length: {len(self.body)}")
        text = "\r\n".join(lines)
        breaks = len(lines) - 1
        if text.count("\n") != breaks or text.count("\r") != breaks:
            raise LocalProtocolError("CR or LF inside a start line or header value")
        return (text + "\r\n\r\n").encode("utf-8", "surrogateescape") + self.body


# Builders for ``Headers.memo``: pure functions of the header text.


def _cseq(headers: Headers) -> CSeq:
    value = headers.get("CSeq")
    if value is None:
        raise ParseError("missing CSeq")
    return parse_cseq(value)


def _vias(headers: Headers) -> tuple[Via, ...]:
    return tuple(parse_via(v) for v in headers.get_all("Via"))


def _top_via(headers: Headers) -> Via:
    line = headers.get("Via")
    if line is None:
        raise ParseError("missing Via")
    if "," in line:
        values = split_list(line)
        if not values:
            raise ParseError("empty Via")
        line = values[0]
    return parse_via(line)


def _name_addr(headers: Headers, name: str) -> NameAddr:
    value = headers.get(name)
    if value is None:
        raise ParseError(f"missing {name}")
    return parse_name_addr(value)


def _from(headers: Headers) -> NameAddr:
    return _name_addr(headers, "From")


def _to(headers: Headers) -> NameAddr:
    return _name_addr(headers, "To")


def _contacts(headers: Headers) -> tuple[Contact, ...]:
    return tuple(parse_contacts(headers.get_all("Contact")))


@dataclass
class Request(Message):
    method: str = "OPTIONS"
    uri: str = ""
    "The Request-URI as text; ``request_uri`` parses it."
    defect: ParseError | None = field(default=None, compare=False, repr=False)
    "The first problem the parser found that a UAS should answer; see ``check_request``."

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
    defect: ParseError | None = field(default=None, compare=False, repr=False)
    "The first problem the parser found; ``check_response`` raises it."

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


# --- parsing ------------------------------------------------------------------------


def parse_message(data: bytes, *, stream: bool = False) -> Request | Response:
    """Parse one complete message (one UDP datagram, or one framed TCP message).

    On a datagram, octets past Content-Length are ignored (RFC 3261 §18.3) and a
    message without one runs to the end of the datagram; with ``stream=True`` a
    missing or short Content-Length raises (it frames the stream). Raises
    ``ParseError`` (400; 513 when larger than ``MAX_MESSAGE_SIZE``) when no message
    can be built; see the module docstring for what becomes ``defect`` instead.
    """
    if len(data) > MAX_MESSAGE_SIZE:
        raise ParseError("message too large", status_hint=513)
    if data[:1] in (b"\r", b"\n"):
        data = data.lstrip(b"\r\n")  # RFC 3261 §7.5: CRLFs before the start line
    end = data.find(b"\r\n\r\n")
    if end >= 0:
        text = data[:end].decode("utf-8", "surrogateescape")
        body_start = end + 4
        lines = text.split("\r\n")
        breaks = len(lines) - 1
        if text.count("\n") != breaks or text.count("\r") != breaks:
            raise ParseError("bare CR or LF in the header section")
    else:
        # Tolerate bare-LF senders (RFC 3261 §7 asks for CRLF; be liberal).
        end = data.find(b"\n\n")
        if end < 0:
            raise ParseError("no blank line after the headers")
        text = data[:end].decode("utf-8", "surrogateescape").replace("\r\n", "\n").rstrip("\r")
        body_start = end + 2
        if "\r" in text:
            raise ParseError("bare CR in the header section")
        lines = text.split("\n")
    defects: list[ParseError] = []
    start = parse_start_line(lines[0], defects)
    if len(text) > MAX_HEADER_LENGTH and max(map(len, lines)) > MAX_HEADER_LENGTH:
        raise ParseError(f"header field longer than {MAX_HEADER_LENGTH}")
    items = parse_header_lines(lines, defects)
    body = read_body(data, body_start, items, stream, defects)
    defect = defects[0] if defects else None
    if start[0] is None:
        return Response(Headers._canonical(items), body, start[1], start[2], defect)
    return Request(Headers._canonical(items), body, start[0], start[2], defect)


# --- UAS checks (RFC 3261 §8.2) -----------------------------------------------------

MANDATORY_REQUEST_HEADERS = ("To", "From", "CSeq", "Call-ID", "Via")
"RFC 3261 §8.1.1. Max-Forwards is mandatory too, but RFC 2543 clients omit it: tolerated."

_SINGLE_HEADERS = ("Call-ID", "CSeq", "From", "To", "Max-Forwards", "Content-Type")


def check_request(request: Request) -> None:
    """Raise ``ParseError`` (with the status to answer) if the request is unusable.

    In order: the parser's ``defect``; mandatory headers present and single; CSeq
    (its method must match the Request-Line: 400, or 501 for an unknown method); Via,
    From, To, Contact, Max-Forwards, Expires, Date and Content-Type well formed; the
    Request-URI parses (416 for a scheme other than sip/sips/tel, 400 if it carries
    headers). What needs the UA's own knowledge (405, 420, 415, 483...) is left to it.
    """
    if request.defect is not None:
        raise request.defect
    headers = request.headers
    for name in MANDATORY_REQUEST_HEADERS:
        if headers.get(name) is None:
            raise ParseError(f"missing {name} header")  # RFC 4475 insuf
    for name in _SINGLE_HEADERS:
        if len(headers.get_lines(name)) > 1:
            raise ParseError(f"more than one {name} header")  # RFC 4475 multi01
    call_id = request.call_id
    if not call_id or " " in call_id or "\t" in call_id:
        raise ParseError("bad Call-ID")
    if request.cseq.method != request.method:
        # RFC 4475 mismatch01 (400), mismatch02 (501 for an unknown method).
        hint = 400 if request.method in KNOWN_METHODS else 501
        raise ParseError("CSeq method does not match the Request-Line", status_hint=hint)
    vias = request.vias
    if not vias:
        raise ParseError("empty Via")
    for via in vias:
        if via.protocol != SIP_VERSION:
            version = via.protocol[:20]
            raise ParseError(f"unsupported SIP version in Via: {version}", status_hint=505)
    if vias[0].branch == "z9hG4bK":
        # RFC 4475 §3.2.1 badbranch: the cookie and no identifier; 400 is allowed.
        raise ParseError("Via branch is only the magic cookie")
    # Each accessor raises ParseError when its header is malformed (RFC 4475 quotbal,
    # baddn, badaspec, regbadct, badinv01, scalar02).
    _ = request.from_, request.to, request.contacts, request.max_forwards
    _check_simple_headers(headers)
    if request.body and headers.get("Content-Type") is None:
        raise ParseError("body without Content-Type")  # RFC 3261 §20.15
    uri = request.request_uri
    if isinstance(uri, AbsoluteUri):
        # RFC 3261 §8.2.2.1; RFC 4475 unkscm, novelsc.
        raise ParseError(f"unsupported URI scheme {uri.scheme[:20]!r}", status_hint=416)
    if isinstance(uri, SipUri) and uri.headers:
        # RFC 4475 §3.1.2.11 escruri: headers belong in a URI, never a Request-URI.
        raise ParseError("Request-URI with headers")


_WKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def is_sip_date(value: str) -> bool:
    """RFC 3261 §25.1 SIP-date: ``Sat, 13 Nov 2010 23:29:00 GMT`` (RFC 1123, GMT only)."""
    parts = value.split(" ")
    if len(parts) != 6 or parts[0][:3] not in _WKDAYS or parts[0][3:] != ",":
        return False
    day, month, year, clock, zone = parts[1:]
    hms = clock.split(":")
    return (
        len(day) == 2 and is_digits(day) and month in _MONTHS and len(year) == 4
        and is_digits(year) and len(hms) == 3 and all(len(x) == 2 and is_digits(x) for x in hms)
        and zone == "GMT"
    )  # fmt: skip


def _check_simple_headers(headers: Headers) -> None:
    expires = headers.get("Expires")
    if expires is not None:
        parse_int_header(expires, "Expires")
    date = headers.get("Date")
    if date is not None and not is_sip_date(date):
        raise ParseError(f"bad Date {date[:40]!r}")  # RFC 4475 baddate
    content_type = headers.get("Content-Type")
    if content_type is not None:
        parse_media_type(content_type)


def check_response(response: Response) -> None:
    """Raise ``ParseError`` if a response lacks what matching it needs; such a
    response is dropped, never answered (RFC 3261 §18.1.2)."""
    if response.defect is not None:
        raise response.defect
    for name in ("Via", "CSeq", "Call-ID", "From", "To"):
        if response.headers.get(name) is None:
            raise ParseError(f"response without {name}")
    for name in ("Call-ID", "CSeq", "From", "To"):
        if len(response.headers.get_lines(name)) > 1:
            raise ParseError(f"more than one {name} header")
    _ = response.cseq, response.top_via, response.from_, response.to


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

    Works on a request that failed ``check_request`` too (it copies what is there).
    *to_tag* is added to To when the request's To has none and the status is not 100.
    """
    out = Headers()
    for name, value in request.headers:
        if name in ("Via", "From", "Call-ID", "CSeq"):
            out.add(name, value)
        elif name == "To":
            if to_tag and status_code != 100 and _lacks_tag(value):
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


def _lacks_tag(value: str) -> bool:
    try:
        return parse_name_addr(value).tag is None
    except ParseError:
        return False  # copied as received: appending to garbage would not mend it


def header_names(message: Message) -> list[str]:
    """Canonical names in order, for tests and logs."""
    return [canonical_name(name) for name, _ in message.headers]
