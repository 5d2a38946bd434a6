"""Header fields: the ordered, case-insensitive container and the typed values.

``Headers`` keeps every header line as ``(name, value)`` in order, with compact forms
expanded to their full names (RFC 3261 §7.3.3) and values stored as received (folded
lines already joined). Typed views (``Via``, ``NameAddr``, ``CSeq``, ``Reason``) are
parsed on demand: most messages are routed on a handful of headers and the rest are
only copied, so parsing every value eagerly would be wasted work (DESIGN.md budget).

Comma-separated lists (RFC 3261 §7.3.1) are split by ``Headers.get_all``; the headers
whose values contain commas of their own (auth headers, dates) are never split.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from .errors import ParseError
from .uri import SipUri, Uri, parse_uri

# RFC 3261 §7.3.3 and the IANA registry's other compact forms.
COMPACT_FORMS = {
    "a": "Accept-Contact",
    "b": "Referred-By",
    "c": "Content-Type",
    "d": "Request-Disposition",
    "e": "Content-Encoding",
    "f": "From",
    "i": "Call-ID",
    "j": "Reject-Contact",
    "k": "Supported",
    "l": "Content-Length",
    "m": "Contact",
    "o": "Event",
    "r": "Refer-To",
    "s": "Subject",
    "t": "To",
    "u": "Allow-Events",
    "v": "Via",
    "x": "Session-Expires",
    "y": "Identity",
}

_CANONICAL = {
    name.lower(): name
    for name in (
        "Accept", "Accept-Encoding", "Accept-Language", "Alert-Info", "Allow", "Allow-Events",
        "Authentication-Info", "Authorization", "Call-ID", "Call-Info", "Contact",
        "Content-Disposition", "Content-Encoding", "Content-Language", "Content-Length",
        "Content-Type", "CSeq", "Date", "Error-Info", "Event", "Expires", "From",
        "In-Reply-To", "Max-Forwards", "Min-Expires", "Min-SE", "MIME-Version",
        "Organization", "P-Asserted-Identity", "Priority", "Proxy-Authenticate",
        "Proxy-Authorization", "Proxy-Require", "RAck", "Reason", "Record-Route", "Refer-To",
        "Referred-By", "Reply-To", "Require", "Retry-After", "Route", "RSeq", "Server",
        "Session-Expires", "Subject", "Supported", "Timestamp", "To", "Unsupported",
        "User-Agent", "Via", "Warning", "WWW-Authenticate",
    )  # fmt: skip
}
_CANONICAL.update({short: full for short, full in COMPACT_FORMS.items()})

# Headers whose values are never split at commas: the grammar of each allows commas
# inside a single value (RFC 3261 §7.3.1 names the auth headers explicitly).
_NOT_A_LIST = frozenset(
    {
        "authorization", "proxy-authorization", "www-authenticate", "proxy-authenticate",
        "authentication-info", "date", "call-id", "cseq", "from", "to", "subject",
        "user-agent", "server", "organization", "retry-after", "timestamp", "content-length",
        "content-type", "max-forwards", "expires", "min-expires",
    }
)  # fmt: skip


def canonical_name(name: str) -> str:
    """``v`` → ``Via``, ``call-id`` → ``Call-ID``; unknown names are kept as written."""
    return _CANONICAL.get(name.lower(), name)


class Headers:
    """Ordered multi-map of header fields; lookups ignore case and compact forms."""

    __slots__ = ("_items",)

    def __init__(self, items: list[tuple[str, str]] | None = None) -> None:
        self._items: list[tuple[str, str]] = [] if items is None else items

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"

    def copy(self) -> Headers:
        return Headers(list(self._items))

    def get(self, name: str) -> str | None:
        """The first value of *name*, or ``None``."""
        name = canonical_name(name)
        for key, value in self._items:
            if key == name:
                return value
        return None

    def get_lines(self, name: str) -> list[str]:
        """Every header line of *name*, unsplit."""
        name = canonical_name(name)
        return [value for key, value in self._items if key == name]

    def get_all(self, name: str) -> list[str]:
        """Every value of *name*: repeated lines and comma-separated values, in order."""
        lines = self.get_lines(name)
        if name.lower() in _NOT_A_LIST:
            return lines
        out: list[str] = []
        for line in lines:
            out.extend(split_list(line))
        return out

    def add(self, name: str, value: str) -> None:
        """Append a header line at the bottom."""
        self._items.append((canonical_name(name), value))

    def prepend(self, name: str, value: str) -> None:
        """Insert a line above the first line of the same name (or at the top)."""
        name = canonical_name(name)
        for index, (key, _) in enumerate(self._items):
            if key == name:
                self._items.insert(index, (name, value))
                return
        self._items.insert(0, (name, value))

    def set(self, name: str, value: str) -> None:
        """Replace every line of *name* by one line, where the first one stood."""
        name = canonical_name(name)
        for index, (key, _) in enumerate(self._items):
            if key == name:
                self._items[index] = (name, value)
                self._items[index + 1 :] = [i for i in self._items[index + 1 :] if i[0] != name]
                return
        self._items.append((name, value))

    def remove(self, name: str) -> None:
        name = canonical_name(name)
        self._items = [item for item in self._items if item[0] != name]

    def pop_first(self, name: str) -> str | None:
        """Remove and return the first value of *name* (a comma list loses its head)."""
        name = canonical_name(name)
        for index, (key, value) in enumerate(self._items):
            if key == name:
                values = split_list(value) if name.lower() not in _NOT_A_LIST else [value]
                if len(values) > 1:
                    self._items[index] = (name, ", ".join(values[1:]))
                else:
                    del self._items[index]
                return values[0]
        return None


def split_list(value: str) -> list[str]:
    """Split at commas outside quotes and ``<...>``; empty elements are dropped."""
    if "," not in value:
        stripped = value.strip()
        return [stripped] if stripped else []
    out: list[str] = []
    start = 0
    depth = 0
    quoted = False
    i = 0
    n = len(value)
    while i < n:
        ch = value[i]
        if quoted:
            if ch == "\\":
                i += 1
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
        elif ch == "<":
            depth += 1
        elif ch == ">":
            depth = max(0, depth - 1)
        elif ch == "," and depth == 0:
            part = value[start:i].strip()
            if part:
                out.append(part)
            start = i + 1
        i += 1
    part = value[start:].strip()
    if part:
        out.append(part)
    return out


# --- parameters --------------------------------------------------------------------

Params = tuple[tuple[str, str | None], ...]


def parse_params(text: str) -> Params:
    """``;tag = x ; lr ;q="0.5"`` → names lower-cased, values unquoted; LWS allowed."""
    params: list[tuple[str, str | None]] = []
    i = 0
    n = len(text)
    while i < n:
        while i < n and text[i] in " \t":
            i += 1
        if i >= n:
            break
        if text[i] != ";":
            raise ParseError(f"expected ';' in parameters {text!r}")
        i += 1
        start = i
        while i < n and text[i] not in "=;":
            i += 1
        name = text[start:i].strip().lower()
        if not name or any(c in name for c in ' \t"<>,'):
            raise ParseError(f"bad parameter name in {text!r}")
        if i < n and text[i] == "=":
            i += 1
            while i < n and text[i] in " \t":
                i += 1
            if i < n and text[i] == '"':
                value, i = _quoted(text, i)
            else:
                start = i
                while i < n and text[i] != ";":
                    i += 1
                value = text[start:i].strip()
                if not value or any(c in value for c in ' \t"<>,'):
                    raise ParseError(f"bad value of parameter {name!r}")
            params.append((name, value))
        else:
            params.append((name, None))
    return tuple(params)


def _quoted(text: str, i: int) -> tuple[str, int]:
    """Read a quoted-string starting at ``text[i] == '"'``; return (value, next index)."""
    out: list[str] = []
    i += 1
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "\\" and i + 1 < n:
            out.append(text[i + 1])
            i += 2
            continue
        if ch == '"':
            return "".join(out), i + 1
        out.append(ch)
        i += 1
    raise ParseError(f"unterminated quoted string in {text!r}")


def param_value(params: Params, name: str) -> str | None:
    """Value of *name* ('' for a flag) or ``None`` when absent."""
    for key, value in params:
        if key == name:
            return "" if value is None else value
    return None


def format_params(params: Params) -> str:
    out = []
    for key, value in params:
        if value is None:
            out.append(f";{key}")
        elif _is_token(value):
            out.append(f";{key}={value}")
        else:
            out.append(f';{key}="{quote_string(value)}"')
    return "".join(out)


def quote_string(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


_TOKEN_CHARS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~:[]"
)


def _is_token(value: str) -> bool:
    return bool(value) and all(c in _TOKEN_CHARS for c in value)


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
        return int(value) if value and value.isdigit() else None

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
        return Via(self.transport, self.host, self.port, tuple(kept) + tuple(params.items()),
                   self.protocol)  # fmt: skip

    def __str__(self) -> str:
        return f"{self.protocol}/{self.transport} {self.sent_by}{format_params(self.params)}"


def parse_via(value: str) -> Via:
    """One Via value (already split from a list). LWS around '/' is allowed."""
    parts = value.split("/", 2)
    if len(parts) != 3:
        raise ParseError(f"bad Via {value!r}")
    name, version, rest = (p.strip() for p in parts)
    rest_parts = rest.split(None, 1)
    if len(rest_parts) != 2 or not name or not version:
        raise ParseError(f"bad Via {value!r}")
    transport, sent = rest_parts
    semi = sent.find(";")
    hostport = (sent if semi < 0 else sent[:semi]).strip()
    params = parse_params(sent[semi:]) if semi >= 0 else ()
    host, port = _split_sent_by(hostport, value)
    return Via(transport.upper(), host, port, params, f"{name.upper()}/{version}")


def _split_sent_by(text: str, whole: str) -> tuple[str, int | None]:
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ParseError(f"bad Via host in {whole!r}")
        host, tail = text[: end + 1], text[end + 1 :].strip()
    else:
        host, colon, port_text = text.partition(":")
        host = host.strip()
        tail = ":" + port_text.strip() if colon else ""
    if not host or any(c in host for c in " \t,;<>\"@"):
        raise ParseError(f"bad Via host in {whole!r}")
    if not tail:
        return host, None
    port_text = tail[1:].strip()
    if not port_text.isdigit() or len(port_text) > 5 or int(port_text) > 65535:
        raise ParseError(f"bad Via port in {whole!r}")
    return host, int(port_text)


# --- name-addr / addr-spec (RFC 3261 §20.10, §25.1) ---------------------------------


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


def parse_name_addr(value: str) -> NameAddr:
    """Parse ``"Name" <uri>;params``, ``Name <uri>;params`` or ``uri;params``.

    In the addr-spec form every ``;`` parameter belongs to the header, not to the URI
    (RFC 3261 §20.10), and the URI may not contain ``,``, ``?`` or ``;`` of its own.
    """
    text = value.strip()
    display: str | None = None
    if text.startswith('"'):
        display, end = _quoted(text, 0)
        text = text[end:].lstrip()
        if not text.startswith("<"):
            raise ParseError(f"display name without <URI> in {value!r}")
    lt = text.find("<")
    if lt >= 0:
        if display is None:
            token = text[:lt].strip()
            if token and any(c in token for c in '"<>@;:'):
                raise ParseError(f"bad display name in {value!r}")
            display = " ".join(token.split()) or None
        gt = text.find(">", lt)
        if gt < 0:
            raise ParseError(f"unbalanced <> in {value!r}")
        uri_text = text[lt + 1 : gt]
        if uri_text != uri_text.strip():
            # RFC 4475 §3.1.2.15 badaspec: no LWS inside the angle brackets.
            raise ParseError(f"whitespace inside <> in {value!r}")
        params = parse_params(text[gt + 1 :])
        return NameAddr(parse_uri(uri_text), display, params, True)
    semi = text.find(";")
    uri_text = text if semi < 0 else text[:semi]
    uri_text = uri_text.strip()
    if any(c in uri_text for c in "?,"):
        raise ParseError(f"addr-spec with '?' or ',' must be in <>: {value!r}")
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
        if not value.isdigit():
            raise ParseError(f"bad Contact expires {value!r}")
        return min(int(value), 2**32 - 1)

    @property
    def q(self) -> float:
        if self.address is None:
            return 1.0
        value = self.address.param("q")
        try:
            q = float(value) if value else 1.0
        except ValueError:
            raise ParseError(f"bad Contact q {value!r}") from None
        if not 0.0 <= q <= 1.0:
            raise ParseError(f"bad Contact q {value!r}")
        return q

    def __str__(self) -> str:
        return "*" if self.address is None else str(self.address)


def parse_contacts(values: list[str]) -> list[Contact]:
    """The Contact values of a message (from ``Headers.get_all('Contact')``)."""
    out = []
    for value in values:
        if value.strip() == "*":
            out.append(Contact(None))
        else:
            out.append(Contact(parse_name_addr(value)))
    if any(c.is_wildcard for c in out) and len(out) > 1:
        raise ParseError("Contact '*' mixed with other contacts")
    return out


# --- CSeq (RFC 3261 §20.16) ---------------------------------------------------------

MAX_CSEQ = 2**31 - 1
"RFC 3261 §8.1.1.5: the sequence number must be expressible as a 32-bit unsigned integer"
"; we keep to 2**31 so arithmetic never wraps (§12.2.1.1 recommends it for new dialogs)."


@dataclass(frozen=True)
class CSeq:
    number: int
    method: str

    def __str__(self) -> str:
        return f"{self.number} {self.method}"


def parse_cseq(value: str) -> CSeq:
    parts = value.split()
    if len(parts) != 2 or not parts[0].isdigit():
        raise ParseError(f"bad CSeq {value!r}")
    if len(parts[0]) > 10 or int(parts[0]) > 2**32 - 1:
        raise ParseError(f"CSeq number out of range in {value!r}")
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
    protocol = (value if semi < 0 else value[:semi]).strip()
    if not protocol:
        raise ParseError(f"bad Reason {value!r}")
    params = parse_params(value[semi:]) if semi >= 0 else ()
    cause_text = param_value(params, "cause")
    cause = int(cause_text) if cause_text and cause_text.isdigit() else None
    return Reason(protocol, cause, param_value(params, "text"))


def parse_int_header(value: str, name: str, limit: int = 2**32 - 1) -> int:
    """Expires, Max-Forwards, Min-Expires, Content-Length: a bounded decimal number."""
    text = value.strip()
    if not text.isdigit() or len(text) > 10:
        raise ParseError(f"bad {name} {value!r}")
    number = int(text)
    if number > limit:
        raise ParseError(f"{name} out of range: {value!r}")
    return number


def parse_media_type(value: str) -> tuple[str, Params]:
    """``application/SDP; charset=x`` → (``application/sdp``, params)."""
    semi = value.find(";")
    mtype = (value if semi < 0 else value[:semi]).strip().lower()
    main, slash, sub = mtype.partition("/")
    if not slash or not main.strip() or not sub.strip():
        raise ParseError(f"bad media type {value!r}")
    mtype = f"{main.strip()}/{sub.strip()}"
    return mtype, parse_params(value[semi:]) if semi >= 0 else ()
