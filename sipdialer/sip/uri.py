"""SIP, SIPS and tel URIs (RFC 3261 §19.1, §25.1; RFC 3966 for tel).

``parse_uri`` returns a ``SipUri`` for sip/sips, a ``TelUri`` for tel, and an
``AbsoluteUri`` for any other scheme (kept opaque so a UAS can answer 416 instead of
400, RFC 3261 §8.2.2.1). Parsing is strict enough to reject what RFC 4475 calls
invalid (spaces, unbalanced brackets) and lenient about case and escapes. ``str()``
rebuilds the URI; the text as received is kept in ``raw`` for byte-exact forwarding.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from urllib.parse import quote, unquote

from .errors import ParseError

# Characters that never appear unescaped in a URI (RFC 3261 §25.1: no LWS, no <>").
_FORBIDDEN = re.compile(r'[\s<>"]')
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*")
_HOSTNAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9\-_.]*[A-Za-z0-9_])?\.?|[A-Za-z0-9]")
_IPV4 = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")
_IPV6 = re.compile(r"\[[0-9A-Fa-f:.]+\]")
_ESCAPE_OK = re.compile(r"%(?![0-9A-Fa-f]{2})")

# URI parameters that must match when present in either URI (RFC 3261 §19.1.4).
_COMPARED_PARAMS = ("user", "ttl", "method", "maddr", "transport")

# Characters left unescaped when formatting the user part (RFC 3261 §25.1 "user").
_USER_SAFE = "-_.!~*'()&=+$,;?/"


@dataclass(frozen=True)
class SipUri:
    """A sip: or sips: URI. ``user`` and parameter values are unescaped."""

    host: str
    user: str | None = None
    password: str | None = None
    port: int | None = None
    scheme: str = "sip"
    params: tuple[tuple[str, str | None], ...] = ()
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
        kept = [(k, v) for k, v in self.params if k not in params]
        kept += [(k.lower(), v) for k, v in params.items()]
        return replace(self, params=tuple(kept), raw="")

    def without_params(self, *names: str) -> SipUri:
        drop = {n.lower() for n in names}
        return replace(self, params=tuple(p for p in self.params if p[0] not in drop), raw="")

    def equivalent(self, other: object) -> bool:
        """RFC 3261 §19.1.4 comparison (case rules, escapes, compared parameters)."""
        if not isinstance(other, SipUri):
            return False
        if (self.scheme, self.user, self.password, self.host.lower(), self.port) != (
            other.scheme,
            other.user,
            other.password,
            other.host.lower(),
            other.port,
        ):
            return False
        for name in _COMPARED_PARAMS:
            mine, theirs = self.param(name), other.param(name)
            if (mine or theirs) and (mine or "").lower() != (theirs or "").lower():
                return False
        return dict(self.headers) == dict(other.headers)

    def __str__(self) -> str:
        if self.raw:
            return self.raw
        out = [self.scheme, ":"]
        if self.user is not None:
            out.append(quote(self.user, safe=_USER_SAFE))
            if self.password is not None:
                out += [":", quote(self.password, safe="-_.!~*'()&=+$,")]
            out.append("@")
        out.append(self.host)
        if self.port is not None:
            out += [":", str(self.port)]
        for key, value in self.params:
            out += [";", key] if value is None else [";", key, "=", quote(value, safe="[]/:&+$-_.!~*'()")]
        if self.headers:
            out.append("?" + "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in self.headers))
        return "".join(out)


@dataclass(frozen=True)
class TelUri:
    """A tel: URI (RFC 3966): a number and its parameters."""

    number: str
    params: tuple[tuple[str, str | None], ...] = ()
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


def parse_uri(text: str) -> Uri:
    """Parse a URI as found in a Request-URI or inside ``<...>``.

    Raises ``ParseError`` (status hint 400) on malformed input.
    """
    if not text or _FORBIDDEN.search(text):
        raise ParseError(f"malformed URI {text!r}")
    scheme, colon, rest = text.partition(":")
    if not colon or not _SCHEME.fullmatch(scheme):
        raise ParseError(f"URI without a scheme: {text!r}")
    scheme = scheme.lower()
    if scheme in ("sip", "sips"):
        return _parse_sip(scheme, rest, text)
    if scheme == "tel":
        return _parse_tel(rest, text)
    return AbsoluteUri(scheme, rest)


def parse_sip_uri(text: str) -> SipUri:
    """Like ``parse_uri`` but only sip:/sips: are accepted (status hint 416 otherwise)."""
    uri = parse_uri(text)
    if not isinstance(uri, SipUri):
        raise ParseError(f"unsupported URI scheme {uri.scheme!r}", status_hint=416)
    return uri


def _unescape(text: str, what: str) -> str:
    if _ESCAPE_OK.search(text):
        raise ParseError(f"bad %-escape in URI {what}: {text!r}")
    return unquote(text, errors="surrogateescape")


def _parse_sip(scheme: str, rest: str, raw: str) -> SipUri:
    rest, qmark, header_text = rest.partition("?")
    # The userinfo ends at the last '@' before any parameter; '@' may not appear unescaped
    # in parameters, but ';' may appear in the user part (RFC 3261 §19.1.1 "user").
    at = rest.rfind("@")
    user: str | None = None
    password: str | None = None
    if at >= 0:
        userinfo, hostpart = rest[:at], rest[at + 1 :]
        if not userinfo:
            raise ParseError(f"empty user part in {raw!r}")
        name, pcolon, secret = userinfo.partition(":")
        user = _unescape(name, "user")
        password = _unescape(secret, "password") if pcolon else None
    else:
        hostpart = rest
    hostport, _, param_text = hostpart.partition(";")
    host, port = _split_hostport(hostport, raw)
    params = parse_uri_params(param_text) if param_text or hostpart.endswith(";") else ()
    headers: tuple[tuple[str, str], ...] = ()
    if qmark:
        pairs = []
        for item in header_text.split("&"):
            if not item:
                continue
            key, _, value = item.partition("=")
            pairs.append((_unescape(key, "header"), _unescape(value, "header")))
        headers = tuple(pairs)
    return SipUri(host, user, password, port, scheme, params, headers, raw)


def parse_uri_params(text: str) -> tuple[tuple[str, str | None], ...]:
    """``a=1;lr;b=%41`` → ``(("a","1"),("lr",None),("b","A"))``."""
    params: list[tuple[str, str | None]] = []
    for item in text.split(";"):
        if not item:
            raise ParseError(f"empty URI parameter in {text!r}")
        key, eq, value = item.partition("=")
        key = _unescape(key, "parameter").lower()
        if not key:
            raise ParseError(f"URI parameter without a name in {text!r}")
        params.append((key, _unescape(value, "parameter") if eq else None))
    return tuple(params)


def _split_hostport(text: str, raw: str) -> tuple[str, int | None]:
    if text.startswith("["):
        end = text.find("]")
        host, tail = text[: end + 1], text[end + 1 :]
        if end < 0 or not _IPV6.fullmatch(host):
            raise ParseError(f"bad IPv6 reference in {raw!r}")
    else:
        host, _, port_text = text.partition(":")
        tail = ":" + port_text if _ else ""
        if not (_IPV4.fullmatch(host) or _HOSTNAME.fullmatch(host)):
            raise ParseError(f"bad host {host!r} in URI {raw!r}")
    if not tail:
        return host, None
    port_text = tail[1:]
    if tail[0] != ":" or not port_text.isdigit() or len(port_text) > 5 or int(port_text) > 65535:
        raise ParseError(f"bad port in URI {raw!r}")
    return host, int(port_text)


def _parse_tel(rest: str, raw: str) -> TelUri:
    number, _, param_text = rest.partition(";")
    digits = number[1:] if number.startswith("+") else number
    if not digits or not re.fullmatch(r"[0-9A-Fa-f*#.()\-pPwW]+", digits):
        raise ParseError(f"bad tel URI {raw!r}")
    params = parse_uri_params(param_text) if param_text else ()
    return TelUri(unquote(number), params, raw)
