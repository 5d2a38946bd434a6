"""Transaction keys: which transaction a message belongs to (RFC 3261 §17.1.3, §17.2.3).

Client transactions are keyed by the top Via branch of the request and the CSeq
method of the response (§17.1.3); CANCEL therefore has its own client transaction
next to the INVITE it cancels, with the same branch.

Server transactions are keyed two ways, chosen by the top Via branch of the request:

* RFC 3261 branch (starts with the magic cookie ``z9hG4bK`` and has more after it):
  branch + sent-by + method, where ACK counts as INVITE (§17.2.3).
* Anything else (no branch, or the bare cookie of RFC 4475 §3.2.1 ``badbranch``):
  the RFC 2543 rules of §17.2.3 -- Request-URI, To tag, From tag, Call-ID, CSeq and
  the top Via. An ACK is matched like its INVITE but with the To tag of the response
  the server sent; the layer registers that extra key when it sends the response.

A CANCEL is matched to the INVITE it cancels by computing its key as if its method
were INVITE (§9.2), which ``invite_key_for_cancel`` does.

Keys compare header values after the normalisation their grammar allows (host case,
default ports, URI comparison rules of §19.1.4, Via parameter order). Via parameters
``received`` and ``rport`` are ignored, because this layer adds them on receipt
(§18.2.1) and they reappear in the responses the TU builds.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..errors import ParseError
from ..headers import BRANCH_MAGIC, Via
from ..message import Request, Response
from ..uri import SipUri, parse_uri

DEFAULT_PORTS = {"UDP": 5060, "TCP": 5060, "SCTP": 5060, "TLS": 5061, "WS": 80, "WSS": 443}
"RFC 3261 §18.1.1, §26.2 (5061 for TLS); RFC 7118 for WebSocket."

_ADDED_BY_SERVERS = frozenset({"received", "rport"})


def default_port(transport: str) -> int:
    return DEFAULT_PORTS.get(transport.upper(), 5060)


@dataclass(frozen=True, slots=True)
class ClientKey:
    """A client transaction: the branch we generated and the request's method."""

    branch: str
    method: str


@dataclass(frozen=True, slots=True)
class ServerKey:
    """A server transaction opened by an RFC 3261 request (magic-cookie branch)."""

    branch: str
    sent_by: str
    "``host:port`` of the top Via, lower-cased, default port filled in."
    method: str
    "The request method; ACK is keyed as INVITE."


@dataclass(frozen=True, slots=True)
class LegacyServerKey:
    """A server transaction opened by a request without an RFC 3261 branch (RFC 2543)."""

    request_uri: tuple[object, ...]
    to_tag: str | None
    from_tag: str | None
    call_id: str
    cseq_number: int
    method: str
    via: tuple[object, ...]


TransactionKey = ClientKey | ServerKey | LegacyServerKey
ServerTransactionKey = ServerKey | LegacyServerKey


def is_rfc3261_branch(branch: str | None) -> bool:
    """True for a branch that can key a transaction: the cookie plus an identifier."""
    return branch is not None and branch.startswith(BRANCH_MAGIC) and len(branch) > 7


def sent_by_key(via: Via) -> str:
    port = via.port if via.port is not None else default_port(via.transport)
    return f"{via.host.lower()}:{port}"


def via_key(via: Via) -> tuple[object, ...]:
    """A Via reduced to what §20.42 compares, minus the parameters servers add."""
    params = sorted(
        (name, None if value is None else value.lower())
        for name, value in via.params
        if name not in _ADDED_BY_SERVERS
    )
    return (via.protocol.upper(), via.transport, sent_by_key(via), tuple(params))


def uri_key(text: str) -> tuple[object, ...]:
    """A Request-URI reduced for comparison (§19.1.4); unparseable ones compare as text."""
    try:
        uri = parse_uri(text)
    except ParseError:
        return ("raw", text)
    if not isinstance(uri, SipUri):
        return ("raw", str(uri).lower())
    compared = tuple(
        sorted(
            (name, (value or "").lower())
            for name, value in uri.params
            if name in ("user", "ttl", "method", "maddr", "transport")
        )
    )
    return (uri.scheme, uri.user, uri.password, uri.host.lower(), uri.port, compared,
            tuple(sorted(uri.headers)))  # fmt: skip


def client_key(request: Request) -> ClientKey:
    """The key of a client transaction for *request* (which we are about to send)."""
    return ClientKey(request.top_via.branch or "", request.method)


def client_key_for_response(response: Response) -> ClientKey | None:
    """§17.1.3: top Via branch + CSeq method; ``None`` when the branch is unusable."""
    branch = response.top_via.branch
    if not is_rfc3261_branch(branch):
        return None
    assert branch is not None
    return ClientKey(branch, response.cseq.method)


def server_key(request: Request) -> ServerTransactionKey:
    """§17.2.3: the server transaction *request* belongs to (ACK maps to its INVITE).

    Raises ``ParseError`` when a header the rules need is missing or malformed.
    """
    via = request.top_via
    method = "INVITE" if request.method == "ACK" else request.method
    branch = via.branch
    if is_rfc3261_branch(branch):
        assert branch is not None
        return ServerKey(branch, sent_by_key(via), method)
    return LegacyServerKey(
        request_uri=uri_key(request.uri),
        to_tag=request.to.tag,
        from_tag=request.from_.tag,
        call_id=request.call_id,
        cseq_number=request.cseq.number,
        method=method,
        via=via_key(via),
    )


def invite_key_for_cancel(cancel_key: ServerTransactionKey) -> ServerTransactionKey:
    """§9.2: the key of the INVITE a CANCEL (with key *cancel_key*) would cancel."""
    return replace(cancel_key, method="INVITE")


def legacy_ack_key(invite_key: LegacyServerKey, to_tag: str | None) -> LegacyServerKey:
    """The key an RFC 2543 ACK has when it acknowledges a response with *to_tag*."""
    return replace(invite_key, to_tag=to_tag)


def legacy_response_index(message: Request | Response) -> tuple[object, ...]:
    """What a response shares with its RFC 2543 request: Call-ID, CSeq, From tag, Via.

    A response lacks the Request-URI and may have gained a To tag, so ``send_response``
    finds the RFC 2543 server transaction through this index instead of the key.
    """
    cseq = message.cseq
    method = "INVITE" if cseq.method == "ACK" else cseq.method
    return (message.call_id, cseq.number, method, message.from_.tag, via_key(message.top_via))


def server_key_for_response(response: Response) -> ServerKey | None:
    """The RFC 3261 server key of the request *response* answers, if it has one."""
    via = response.top_via
    branch = via.branch
    if not is_rfc3261_branch(branch):
        return None
    assert branch is not None
    return ServerKey(branch, sent_by_key(via), response.cseq.method)
