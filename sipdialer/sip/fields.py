"""Typed header values: Via, name-addr (From/To/Contact/Route...), CSeq, Reason, numbers.

Each ``parse_*`` takes one value as stored by ``Headers`` (folding undone, already
split from a comma list where the header is one) and returns a frozen dataclass, or
raises ``ParseError``. ``str()`` of each value is its wire form. ``headers.py``
re-exports everything here; import from there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

from .errors import ParseError
from .grammar import (
    WS,
    Params,
    format_params,
    is_digits,
    is_token,
    param_value,
    parse_params,
    quote_string,
    read_quoted,
    split_ws,
)
from .uri import SipUri, Uri, parse_uri

# --- Via (RFC 3261 §20.42, RFC 3581) ------------------------------------------------

BRANCH_MAGIC = "z9hG4bK"
"RFC 3261 §8.1.1.7: branch IDs of RFC 3261 elements start with this cookie."


@dataclass(frozen=True)
class Via:
    transport: str
    "Upper-case transport token: UDP, TCP, TLS, SCTP, WS, ..."
    host: str
    port: int | None = None
    params: Params = ()
    protocol: str = "SIP/2.0"

    @property
    def branch(self) -> str | None:
        return param_value(self.params, "branch")

    @property
    def received(self) -> str | None:
        return param_value(self.params, "received")

    @property
    def rport(self) -> int | None:
        """The rport value filled in by a server, or ``None`` (absent or flag only)."""
        value = param_value(self.params, "rport")
        return int(value) if value and is_digits(value) and len(value) <= 5 else None

    @property
    def wants_rport(self) -> bool:
        """The client asked for symmetric response routing (RFC 3581 §3)."""
        return param_value(self.params, "rport") is not None

    @property
    def maddr(self) -> str | None:
        return param_value(self.params, "maddr")

    @property
    def sent_by(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"

    def with_params(self, **params: str | None) -> Via:
        kept = [(k, v) for k, v in self.params if k not in params]
        new = tuple(kept) + tuple(params.items())
        return Via(self.transport, self.host, self.port, new, self.protocol)

    def __str__(self) -> str:
        return f"{self.protocol}/{self.transport} {self.sent_by}{format_params(self.params)}"


def parse_via(value: str) -> Via:
    """One Via value (already split from a list). LWS around '/' is allowed.

    ``SIP / 2.0 / UDP host:port ;params`` (RFC 4475 wsinv has every kind of LWS).
    """
    if value.startswith("SIP/2.0/"):
        # Fast path: no LWS around the slashes (what nearly everybody sends).
        space = value.find(" ", 8)
        transport, sent = value[8:space], value[space + 1 :].lstrip(WS)
        if space > 8 and sent and is_token(transport):
            return _via(transport.upper(), sent, SIP_2_0, value)
    parts = value.split("/", 2)
    if len(parts) != 3:
        raise ParseError(f"bad Via {value[:80]!r}")
    name, version = parts[0].strip(WS), parts[1].strip(WS)
    rest = parts[2].lstrip(WS)
    end = 0
    while end < len(rest) and rest[end] not in WS:
        end += 1
    transport, sent = rest[:end], rest[end:].lstrip(WS)
    if not is_token(name) or not is_token(version) or not is_token(transport) or not sent:
        raise ParseError(f"bad Via {value[:80]!r}")
    return _via(transport.upper(), sent, f"{name.upper()}/{version}", value)


SIP_2_0 = "SIP/2.0"


def _via(transport: str, sent: str, protocol: str, value: str) -> Via:
    semi = sent.find(";")
    hostport = (sent if semi < 0 else sent[:semi]).rstrip(WS)
    params = parse_params(sent[semi:]) if semi >= 0 else ()
    host, port = _split_sent_by(hostport, value)
    return Via(transport, host, port, params, protocol)


_HOST_FORBIDDEN = frozenset(' \t,;<>"@/?=\\')


def _split_sent_by(text: str, whole: str) -> tuple[str, int | None]:
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ParseError(f"bad Via host in {whole[:80]!r}")
        host, tail = text[: end + 1], text[end + 1 :].lstrip(WS)
    else:
        host, colon, port_text = text.partition(":")
        host = host.rstrip(WS)
        tail = ":" + port_text.strip(WS) if colon else ""
    if not host or not _HOST_FORBIDDEN.isdisjoint(host):
        raise ParseError(f"bad Via host in {whole[:80]!r}")
    if not tail:
        return host, None
    port_text = tail[1:].strip(WS)
    if tail[0] != ":" or not is_digits(port_text) or len(port_text) > 5:
        raise ParseError(f"bad Via port in {whole[:80]!r}")
    port = int(port_text)
    if port > 65535:
        raise ParseError(f"bad Via port in {whole[:80]!r}")
    return host, port


# --- name-addr / addr-spec (RFC 3261 §20.10, §25.1) ---------------------------------

# An unquoted display-name is *(token LWS) (RFC 3261 §25.1): RFC 4475 baddn.
_DISPLAY_CHARS = frozenset(WS) | frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~"
)


@dataclass(frozen=True)
class NameAddr:
    """From, To, Contact, Route, Record-Route, Refer-To ... values."""

    uri: Uri
    display_name: str | None = None
    params: Params = ()
    "Header parameters (``tag``, ``expires``, ``q``), not URI parameters."
    bracketed: bool = field(default=True, compare=False)

    @property
    def tag(self) -> str | None:
        return param_value(self.params, "tag")

    def param(self, name: str) -> str | None:
        return param_value(self.params, name.lower())

    @property
    def sip_uri(self) -> SipUri:
        if not isinstance(self.uri, SipUri):
            raise ParseError(f"not a SIP URI: {self.uri}", status_hint=416)
        return self.uri

    def with_params(self, **params: str | None) -> NameAddr:
        kept = [(k, v) for k, v in self.params if k not in params]
        return NameAddr(self.uri, self.display_name, tuple(kept) + tuple(params.items()))

    def __str__(self) -> str:
        display = ""
        if self.display_name:
            display = f'"{quote_string(self.display_name)}" '
        return f"{display}<{self.uri}>{format_params(self.params)}"


@lru_cache(maxsize=8192)  # frozen values; a dialog repeats its From/To in every message
def parse_name_addr(value: str) -> NameAddr:
    """Parse ``"Name" <uri>;params``, ``Name <uri>;params`` or ``uri;params``.

    In the addr-spec form every ``;`` parameter belongs to the header, not to the URI
    (RFC 3261 §20.10), and the URI may not contain ``,``, ``?`` or ``;`` of its own.
    """
    text = value.strip(WS)
    display: str | None = None
    if text.startswith('"'):
        display, end = read_quoted(text, 0)
        text = text[end:].lstrip(WS)
        if not text.startswith("<"):
            raise ParseError(f"display name without <URI> in {value[:80]!r}")
    lt = text.find("<")
    if lt >= 0:
        if display is None and lt:
            token = text[:lt]
            if not _DISPLAY_CHARS.issuperset(token):
                raise ParseError(f"bad display name in {value[:80]!r}")
            display = " ".join(split_ws(token)) or None
        gt = text.find(">", lt)
        if gt < 0:
            raise ParseError(f"unbalanced <> in {value[:80]!r}")
        uri_text = text[lt + 1 : gt]
        if uri_text != uri_text.strip(WS):
            # RFC 4475 §3.1.2.15 badaspec: no LWS inside the angle brackets.
            raise ParseError(f"whitespace inside <> in {value[:80]!r}")
        params = parse_params(text[gt + 1 :])
        return NameAddr(parse_uri(uri_text), display, params, True)
    semi = text.find(";")
    uri_text = (text if semi < 0 else text[:semi]).rstrip(WS)
    if "?" in uri_text or "," in uri_text:
        # RFC 4475 §3.1.2.13 regbadct.
        raise ParseError(f"addr-spec with '?' or ',' must be in <>: {value[:80]!r}")
    params = parse_params(text[semi:]) if semi >= 0 else ()
    return NameAddr(parse_uri(uri_text), None, params, False)


# --- Contact (RFC 3261 §20.10) ------------------------------------------------------


@dataclass(frozen=True)
class Contact:
    """A Contact header value: a name-addr, or the wildcard ``*`` of a REGISTER."""

    address: NameAddr | None
    "``None`` for the wildcard."

    @property
    def is_wildcard(self) -> bool:
        return self.address is None

    @property
    def expires(self) -> int | None:
        if self.address is None:
            return None
        value = self.address.param("expires")
        if value is None:
            return None
        if not is_digits(value):
            raise ParseError(f"bad Contact expires {value[:40]!r}")
        # RFC 3261 §20.19: values above 2**32-1 mean 2**32-1 (no int() of huge strings).
        digits = value.lstrip("0") or "0"
        return 2**32 - 1 if len(digits) > 10 else min(int(digits), 2**32 - 1)

    @property
    def q(self) -> float:
        if self.address is None:
            return 1.0
        value = self.address.param("q")
        if not value:
            return 1.0
        # qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ): no exponents, no NaN.
        whole, dot, frac = value.partition(".")
        if whole not in ("0", "1") or len(frac) > 3 or (frac and not is_digits(frac)):
            raise ParseError(f"bad Contact q {value[:40]!r}")
        q = float(value if dot and frac else whole)
        if q > 1.0:
            raise ParseError(f"bad Contact q {value[:40]!r}")
        return q

    def __str__(self) -> str:
        return "*" if self.address is None else str(self.address)


def parse_contacts(values: list[str]) -> list[Contact]:
    """The Contact values of a message (from ``Headers.get_all('Contact')``)."""
    out = []
    for value in values:
        if value.strip(WS) == "*":
            out.append(Contact(None))
        else:
            out.append(Contact(parse_name_addr(value)))
    if len(out) > 1 and any(c.is_wildcard for c in out):
        raise ParseError("Contact '*' mixed with other contacts")
    return out


# --- CSeq (RFC 3261 §20.16) ---------------------------------------------------------

MAX_CSEQ = 2**31 - 1
"""RFC 3261 §8.1.1.5: the sequence number must be expressible as a 32-bit unsigned
integer; we keep to 2**31 so arithmetic never wraps (§12.2.1.1 recommends it for new
dialogs)."""


@dataclass(frozen=True)
class CSeq:
    number: int
    method: str

    def __str__(self) -> str:
        return f"{self.number} {self.method}"


def parse_cseq(value: str) -> CSeq:
    number, space, method = value.partition(" ")
    if space and is_digits(number) and len(number) <= 9 and is_token(method):
        return CSeq(int(number), method)  # fast path: "1 INVITE"
    parts = split_ws(value)
    if len(parts) != 2 or not is_digits(parts[0]) or not is_token(parts[1]):
        raise ParseError(f"bad CSeq {value[:80]!r}")
    if len(parts[0]) > 10 or int(parts[0]) > 2**32 - 1:
        # RFC 4475 §3.1.2.4 scalar02, §3.1.2.5 scalarlg.
        raise ParseError(f"CSeq number out of range in {value[:80]!r}")
    return CSeq(int(parts[0]), parts[1])


# --- Reason (RFC 3326) --------------------------------------------------------------


@dataclass(frozen=True)
class Reason:
    protocol: str
    "``Q.850`` or ``SIP`` (or a vendor token)."
    cause: int | None
    text: str | None = None

    def __str__(self) -> str:
        out = self.protocol
        if self.cause is not None:
            out += f";cause={self.cause}"
        if self.text is not None:
            out += f';text="{quote_string(self.text)}"'
        return out


def parse_reason(value: str) -> Reason:
    semi = value.find(";")
    protocol = (value if semi < 0 else value[:semi]).strip(WS)
    if not is_token(protocol):
        raise ParseError(f"bad Reason {value[:80]!r}")
    params = parse_params(value[semi:]) if semi >= 0 else ()
    cause_text = param_value(params, "cause")
    cause = None
    if cause_text and is_digits(cause_text) and len(cause_text) < 6:
        cause = int(cause_text)
    return Reason(protocol, cause, param_value(params, "text"))


def parse_int_header(value: str, name: str, limit: int = 2**32 - 1) -> int:
    """Expires, Max-Forwards, Min-Expires, Content-Length: a bounded decimal number."""
    text = value.strip(WS)
    if not is_digits(text) or len(text) > 10:
        raise ParseError(f"bad {name} {value[:40]!r}")
    number = int(text)
    if number > limit:
        raise ParseError(f"{name} out of range: {value[:40]!r}")
    return number


def parse_media_type(value: str) -> tuple[str, Params]:
    """``application/SDP; charset=x`` → (``application/sdp``, params)."""
    semi = value.find(";")
    mtype = (value if semi < 0 else value[:semi]).strip(WS).lower()
    main, slash, sub = mtype.partition("/")
    main, sub = main.rstrip(WS), sub.lstrip(WS)
    if not slash or not is_token(main) or not is_token(sub):
        raise ParseError(f"bad media type {value[:80]!r}")
    return f"{main}/{sub}", parse_params(value[semi:]) if semi >= 0 else ()
