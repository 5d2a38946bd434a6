"""What a UAS checks before acting on a request (RFC 3261 §8.2), and the answer.

``inspect_request`` returns ``None`` for a request the TU may process, or the
response to send instead, with the headers the RFC asks for (Allow with 405,
Unsupported with 420, Accept/Accept-Encoding with 415). The order is §8.2's:
method (405/501), Request-URI scheme (416), Max-Forwards (483), Require (420),
content (415), Accept (406).

``reject_unparsable`` builds a 400 for bytes that ``parse_message`` refused when
enough of the request survives to route an answer (Via, From, To, Call-ID, CSeq);
otherwise the datagram is dropped, as RFC 3261 §18.1.2 asks for responses and
garbage.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import ParseError
from .headers import Headers, canonical_name, parse_int_header, parse_media_type
from .message import Request, Response, response_for
from .uri import AbsoluteUri, parse_uri

KNOWN_METHODS = frozenset(
    {
        "INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "REGISTER", "INFO", "UPDATE", "PRACK",
        "SUBSCRIBE", "NOTIFY", "REFER", "MESSAGE", "PUBLISH",
    }
)  # fmt: skip
"Methods of RFC 3261 and its common extensions: an unknown one gets 501, a known one we"
"do not serve 405 with Allow (RFC 3261 §8.2.1, §21.5.2)."


@dataclass(frozen=True)
class InspectionPolicy:
    allow: tuple[str, ...] = ("INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "INFO", "UPDATE")
    "Methods the UAS serves; put in Allow."
    supported: tuple[str, ...] = ("timer",)
    "Option tags we support (Supported; anything else in Require gets 420)."
    accept: tuple[str, ...] = ("application/sdp",)
    "Body types we understand (Accept)."
    accept_encoding: tuple[str, ...] = ("identity",)
    answer_types: tuple[str, ...] = ("application/sdp",)
    "Types our answers to INVITE carry: an INVITE whose Accept excludes them gets 406."


def inspect_request(request: Request, policy: InspectionPolicy) -> Response | None:
    """The rejection for *request*, or ``None`` when the TU may process it."""
    method = request.method
    if method not in policy.allow:
        if method not in KNOWN_METHODS:
            return response_for(request, 501, headers=[("Allow", ", ".join(policy.allow))])
        return response_for(request, 405, headers=[("Allow", ", ".join(policy.allow))])
    uri = parse_uri(request.uri)
    if isinstance(uri, AbsoluteUri):
        return response_for(request, 416)
    max_forwards = request.headers.get("Max-Forwards")
    if (
        max_forwards is not None
        and method not in ("OPTIONS", "ACK", "CANCEL")
        and parse_int_header(max_forwards, "Max-Forwards", 255) == 0
    ):
        return response_for(request, 483)
    if method not in ("ACK", "CANCEL"):
        required = [t.lower() for t in request.headers.get_all("Require")]
        unsupported = [t for t in required if t not in policy.supported]
        if unsupported:
            return response_for(request, 420, headers=[("Unsupported", ", ".join(unsupported))])
    if request.body or request.headers.get("Content-Type") is not None:
        rejection = _inspect_content(request, policy)
        if rejection is not None:
            return rejection
    if method == "INVITE":
        accepted = request.headers.get_all("Accept")
        if accepted and not any(_accepts(a, t) for a in accepted for t in policy.answer_types):
            return response_for(request, 406)
    return None


def _inspect_content(request: Request, policy: InspectionPolicy) -> Response | None:
    content_type = request.headers.get("Content-Type")
    if content_type is None:
        return None
    media_type, _ = parse_media_type(content_type)
    disposition = (request.headers.get("Content-Disposition") or "").split(";")[0].strip()
    optional = "handling=optional" in (request.headers.get("Content-Disposition") or "").lower()
    if media_type not in policy.accept and not (optional or disposition in ("render", "alert")):
        if request.method in ("INVITE", "UPDATE", "ACK") or request.body:
            return response_for(request, 415, headers=[("Accept", ", ".join(policy.accept))])
    encodings = [e.lower() for e in request.headers.get_all("Content-Encoding")]
    if any(e not in policy.accept_encoding for e in encodings):
        return response_for(
            request, 415, headers=[("Accept-Encoding", ", ".join(policy.accept_encoding))]
        )
    return None


def _accepts(accept_value: str, media_type: str) -> bool:
    try:
        pattern, params = parse_media_type(accept_value)
    except ParseError:
        return False
    for name, value in params:
        if name == "q" and value is not None and value.strip() in ("0", "0.0", "0.00", "0.000"):
            return False
    main, _, sub = media_type.partition("/")
    pmain, _, psub = pattern.partition("/")
    return pmain in ("*", main) and psub in ("*", sub)


_ROUTING_HEADERS = ("Via", "From", "To", "Call-ID", "CSeq")


def reject_unparsable(data: bytes, error: ParseError) -> Response | None:
    """A 4xx/5xx for a request that failed to parse, or ``None`` to drop it silently.

    Only the header lines are scanned (no unfolding, no value parsing): this runs on
    input that already failed the real parser, so it must not depend on it.
    """
    head = data.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    lines = head.decode("utf-8", "replace").replace("\r\n", "\n").split("\n")
    while lines and not lines[0].strip():
        lines.pop(0)
    if not lines or lines[0].startswith("SIP/") or " " not in lines[0]:
        return None  # a response, or not SIP at all
    method = lines[0].split(" ", 1)[0]
    if method == "ACK":
        return None  # ACK is never answered (RFC 3261 §17.2.1)
    headers = Headers()
    for line in lines[1:]:
        if line[:1] in (" ", "\t"):
            continue
        name, colon, value = line.partition(":")
        canonical = canonical_name(name.strip())
        value = value.strip()
        if any(c < " " and c != "\t" for c in value):
            return None  # control characters: nothing we could safely echo back
        if colon and canonical in _ROUTING_HEADERS:
            headers.add(canonical, value)
    if any(headers.get(name) is None for name in ("Via", "Call-ID", "CSeq", "From", "To")):
        return None
    fake = Request(headers, b"", method, "sip:invalid")
    status = error.status_hint if 400 <= error.status_hint < 700 else 400
    return response_for(fake, status, error.reason if status == 400 else None)
