"""SIP, SIPS and tel URIs (RFC 3261 §19.1, §25.1; RFC 3966 for tel).

``parse_uri`` returns a ``SipUri`` for sip/sips, a ``TelUri`` for tel, and an
``AbsoluteUri`` for any other scheme (kept opaque so a UAS can answer 416 instead of
400, RFC 3261 §8.2.2.1). Parsing is strict enough to reject what RFC 4475 calls
invalid (spaces, unbalanced brackets, bad escapes) and lenient about case. ``str()``
rebuilds the URI; the text as received is kept in ``raw`` for byte-exact forwarding.

How a sip: URI splits (RFC 4475 §3.1.1.2 intmeth is the hard case)::

    sip: user:password @ host:port ;params ?headers

Only the userinfo may contain ``;`` and ``?`` (the grammar's user-unreserved), and
no other part may contain ``@`` unescaped, so the first ``@`` ends the userinfo;
after it, ``?`` starts the headers and ``;`` the parameters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from functools import lru_cache
from urllib.parse import quote, unquote

from .errors import ParseError
from .grammar import Params, is_digits

MAX_URI_LENGTH = 4096
"Longest URI accepted anywhere; a longer Request-URI is answered 414 (RFC 3261 §21.4.12)."

# Characters that never appear unescaped in a URI (RFC 3261 §25.1: no LWS, no <>").
_FORBIDDEN = re.compile(r'[\s<>"]')
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*")
_HOSTNAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9\-_.]*[A-Za-z0-9_])?\.?")
_IPV6 = re.compile(r"\[[0-9A-Fa-f:.]+\]")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_TEL_NUMBER = re.compile(r"\+?[0-9A-Fa-f*#.()\-pPwW]+")

# URI parameters that must match when present in either URI (RFC 3261 §19.1.4).
_COMPARED_PARAMS = ("user", "ttl", "method", "maddr", "transport")

# Characters left unescaped when formatting (RFC 3261 §25.1 user, password, paramchar,
# hnv-unreserved). Everything else is %-escaped.
_USER_SAFE = "-_.!~*'()&=+$,;?/"
_PASSWORD_SAFE = "-_.!~*'()&=+$,"
_PARAM_SAFE = "[]/:&+$-_.!~*'()"
_HEADER_SAFE = "[]/?:+$-_.!~*'()"


@dataclass(frozen=True)
class SipUri:
    """A sip: or sips: URI. ``user`` and parameter values are unescaped."""

    host: str
    user: str | None = None
    password: str | None = None
    port: int | None = None
    scheme: str = "sip"
    params: Params = ()
    "URI parameters in order; names lower-cased; ``None`` for a flag such as ``lr``."
    headers: tuple[tuple[str, str], ...] = ()
    raw: str = field(default="", compare=False)

    @property
    def secure(self) -> bool:
        return self.scheme == "sips"

    def param(self, name: str) -> str | None:
        """Value of URI parameter *name* ('' for a flag), or ``None`` when absent."""
        name = name.lower()
        for key, value in self.params:
            if key == name:
                return "" if value is None else value
        return None

    def has_param(self, name: str) -> bool:
        return self.param(name) is not None

    @property
    def transport(self) -> str | None:
        value = self.param("transport")
        return value.lower() if value else None

    @property
    def host_port(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"

    def with_params(self, **params: str | None) -> SipUri:
        """A copy with parameters set (``None`` = flag); others kept in order."""
        lowered = {k.lower(): v for k, v in params.items()}
        kept = [(k, v) for k, v in self.params if k not in lowered]
        return replace(self, params=tuple(kept) + tuple(lowered.items()), raw="")

    def without_params(self, *names: str) -> SipUri:
        drop = {n.lower() for n in names}
        return replace(self, params=tuple(p for p in self.params if p[0] not in drop), raw="")

    def equivalent(self, other: object) -> bool:
        """RFC 3261 §19.1.4 comparison (case rules, escapes, compared parameters)."""
        if not isinstance(other, SipUri):
            return False
        mine = (self.scheme, self.user, self.password, self.host.lower(), self.port)
        theirs = (other.scheme, other.user, other.password, other.host.lower(), other.port)
        if mine != theirs:
            return False
        for name in _COMPARED_PARAMS:
            a, b = self.param(name), other.param(name)
            if (a or b) and (a or "").lower() != (b or "").lower():
                return False
        return dict(self.headers) == dict(other.headers)

    def __str__(self) -> str:
        if self.raw:
            return self.raw
        out = [self.scheme, ":"]
        if self.user is not None:
            out.append(_quote(self.user, _USER_SAFE))
            if self.password is not None:
                out += [":", _quote(self.password, _PASSWORD_SAFE)]
            out.append("@")
        out.append(self.host)
        if self.port is not None:
            out += [":", str(self.port)]
        for key, value in self.params:
            out += [";", _quote(key, _PARAM_SAFE)]
            if value is not None:
                out += ["=", _quote(value, _PARAM_SAFE)]
        if self.headers:
            pairs = (
                f"{_quote(k, _HEADER_SAFE)}={_quote(v, _HEADER_SAFE)}" for k, v in self.headers
            )
            out.append("?" + "&".join(pairs))
        return "".join(out)


@dataclass(frozen=True)
class TelUri:
    """A tel: URI (RFC 3966): a number and its parameters."""

    number: str
    params: Params = ()
    raw: str = field(default="", compare=False)
    scheme: str = "tel"

    @property
    def is_global(self) -> bool:
        return self.number.startswith("+")

    def __str__(self) -> str:
        if self.raw:
            return self.raw
        params = "".join(f";{k}" if v is None else f";{k}={v}" for k, v in self.params)
        return f"tel:{self.number}{params}"


@dataclass(frozen=True)
class AbsoluteUri:
    """A URI of a scheme we do not interpret (for example http: or im:)."""

    scheme: str
    rest: str

    def __str__(self) -> str:
        return f"{self.scheme}:{self.rest}"


Uri = SipUri | TelUri | AbsoluteUri


@lru_cache(maxsize=4096)
def parse_uri(text: str) -> Uri:
    """Parse a URI as found in a Request-URI or inside ``<...>``.

    Raises ``ParseError`` (status hint 400, or 414 when longer than ``MAX_URI_LENGTH``).
    Cached: the values are frozen, and the same From/To/Contact URIs come back in
    every message of a dialog (a third of the UAS's parse time, bench/sip_uas.py).
    """
    if len(text) > MAX_URI_LENGTH:
        raise ParseError("URI too long", status_hint=414)
    if not text or _FORBIDDEN.search(text):
        raise ParseError(f"malformed URI {text[:80]!r}")
    scheme, colon, rest = text.partition(":")
    if scheme == "sip":
        return _parse_sip(scheme, rest, text)  # fast path: the usual spelling
    if not colon or not _SCHEME.fullmatch(scheme):
        raise ParseError(f"URI without a scheme: {text[:80]!r}")
    scheme = scheme.lower()
    if scheme == "sip" or scheme == "sips":
        return _parse_sip(scheme, rest, text)
    if scheme == "tel":
        return _parse_tel(rest, text)
    if not rest:
        raise ParseError(f"empty URI {text[:80]!r}")
    return AbsoluteUri(scheme, rest)


def parse_sip_uri(text: str) -> SipUri:
    """Like ``parse_uri`` but only sip:/sips: are accepted (status hint 416 otherwise)."""
    uri = parse_uri(text)
    if not isinstance(uri, SipUri):
        raise ParseError(f"unsupported URI scheme {uri.scheme!r}", status_hint=416)
    return uri


def _quote(text: str, safe: str) -> str:
    return quote(text, safe=safe, errors="surrogateescape")


def _unescape(text: str, what: str) -> str:
    if "%" not in text:
        return text
    if _BAD_ESCAPE.search(text):
        raise ParseError(f"bad %-escape in URI {what}: {text[:60]!r}")
    return unquote(text, errors="surrogateescape")


def _parse_sip(scheme: str, rest: str, raw: str) -> SipUri:
    at = rest.find("@")
    user: str | None = None
    password: str | None = None
    if at >= 0:
        userinfo, rest = rest[:at], rest[at + 1 :]
        # The user part cannot hold an unescaped ':' (RFC 3261 §25.1), so the first
        # one starts the password.
        name, pcolon, secret = userinfo.partition(":")
        if not name:
            raise ParseError(f"empty user part in {raw[:80]!r}")
        user = _unescape(name, "user")
        password = _unescape(secret, "password") if pcolon else None
    rest, qmark, header_text = rest.partition("?")
    hostport, semi, param_text = rest.partition(";")
    host, port = _split_hostport(hostport, raw)
    params = parse_uri_params(param_text) if semi else ()
    headers: tuple[tuple[str, str], ...] = ()
    if qmark:
        pairs = []
        for item in header_text.split("&"):
            key, eq, value = item.partition("=")
            if not key or not eq:
                raise ParseError(f"bad URI header {item[:40]!r} in {raw[:80]!r}")
            pairs.append((_unescape(key, "header"), _unescape(value, "header")))
        headers = tuple(pairs)
    return SipUri(host, user, password, port, scheme, params, headers, raw)


def parse_uri_params(text: str) -> Params:
    """``a=1;lr;b=%41`` → ``(("a","1"),("lr",None),("b","A"))``."""
    params: list[tuple[str, str | None]] = []
    for item in text.split(";"):
        key, eq, value = item.partition("=")
        if not key:
            raise ParseError(f"URI parameter without a name in {text[:60]!r}")
        key = _unescape(key, "parameter").lower()
        params.append((key, _unescape(value, "parameter") if eq else None))
    return tuple(params)


def _split_hostport(text: str, raw: str) -> tuple[str, int | None]:
    if text.startswith("["):
        end = text.find("]")
        host, tail = text[: end + 1], text[end + 1 :]
        if end < 0 or not _IPV6.fullmatch(host):
            raise ParseError(f"bad IPv6 reference in {raw[:80]!r}")
    else:
        host, colon, port_text = text.partition(":")
        tail = ":" + port_text if colon else ""
        # An IPv4 address is a hostname as far as the characters go.
        if not _HOSTNAME.fullmatch(host):
            raise ParseError(f"bad host {host[:60]!r} in URI {raw[:80]!r}")
    if not tail:
        return host, None
    port_text = tail[1:]
    if tail[0] != ":" or not is_digits(port_text) or len(port_text) > 5:
        raise ParseError(f"bad port in URI {raw[:80]!r}")
    port = int(port_text)
    if port > 65535:
        raise ParseError(f"bad port in URI {raw[:80]!r}")
    return host, port


def _parse_tel(rest: str, raw: str) -> TelUri:
    number, semi, param_text = rest.partition(";")
    if not _TEL_NUMBER.fullmatch(number) or number == "+":
        raise ParseError(f"bad tel URI {raw[:80]!r}")
    params = parse_uri_params(param_text) if semi else ()
    return TelUri(number, params, raw)
