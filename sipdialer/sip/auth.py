"""HTTP Digest authentication for SIP (RFC 3261 §22, RFC 2617, RFC 7616, RFC 8760).

Theory of operation
-------------------
Header values: ``Challenge`` is a ``WWW-Authenticate``/``Proxy-Authenticate`` value and
``Credentials`` an ``Authorization``/``Proxy-Authorization`` value. ``parse`` is liberal
(any case for the scheme and parameter names, blanks around ``=``, quoted or bare values,
any order, unknown parameters kept in ``extra``); ``str()`` writes the canonical form.
Malformed values raise ``AuthError``. ``Credentials`` keep values exactly as sent (``nc``,
``qop``), because the response hash covers their spelling.

Client: ``answer_challenge`` computes the response to one challenge (MD5, SHA-256,
SHA-512-256 and their ``-sess`` forms; qop ``auth`` preferred to ``auth-int``; no qop is
RFC 2069 style). ``ClientAuthState`` keeps the last challenge per realm and counts ``nc``
per nonce, so that later requests can carry credentials without a new challenge.

Server: ``DigestServer`` and its results live in ``auth_server``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace


class AuthError(ValueError):
    """A malformed or unusable challenge or credentials header value."""


_HASHES = {"MD5": "md5", "SHA-256": "sha256", "SHA-512-256": "sha512_256"}
ALGORITHMS = tuple(f"{base}{sess}" for base in _HASHES for sess in ("", "-sess"))
"Digest algorithms we compute (RFC 7616 §6.1; SHA-512-256 if OpenSSL has it)."
QOP_PREFERENCE = ("auth", "auth-int")
AUTHORIZATION = "Authorization"
PROXY_AUTHORIZATION = "Proxy-Authorization"
Param = tuple[str, str, bool]
"An unknown parameter as (name, value, was quoted), kept for formatting."

# --- header values -----------------------------------------------------------------------

_TOKEN = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")  # RFC 3261 §25.1 token
_BARE = re.compile(r'[^\s,"\x00-\x1f\x7f]+')  # a token, leniently: phones send bare URIs
_QUOTED = re.compile(r'"((?:[^"\\\x00-\x08\x0a-\x1f\x7f]|\\[^\x00-\x08\x0a-\x1f\x7f])*)"')
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_BLANKS = re.compile(r"[ \t]*")
_SEPARATORS = re.compile(r"[ \t,]*")  # RFC 7230 §7: empty list elements are allowed


def _skip(blanks: re.Pattern[str], value: str, pos: int) -> int:
    match = blanks.match(value, pos)
    return pos if match is None else match.end()


def parse_challenges(value: str) -> list[tuple[str, list[Param]]]:
    """Split a header value into (scheme, params) pairs; raises ``AuthError``."""
    if not isinstance(value, str):
        raise AuthError(f"expected a str header value, not {type(value).__name__}")
    result: list[tuple[str, list[Param]]] = []
    pos = 0
    while (pos := _skip(_SEPARATORS, value, pos)) < len(value):
        name = _TOKEN.match(value, pos)
        if name is None:
            raise AuthError(f"expected a token at column {pos} of {value[:60]!r}")
        pos = _skip(_BLANKS, value, name.end())
        if not value.startswith("=", pos):
            result.append((name[0], []))  # a new auth scheme
            continue
        if not result:
            raise AuthError(f"parameter {name[0]!r} before the auth scheme")
        pos = _skip(_BLANKS, value, pos + 1)
        quoted = value.startswith('"', pos)
        match = (_QUOTED if quoted else _BARE).match(value, pos)
        if match is None:
            raise AuthError(f"parameter {name[0]!r}: no value, or a bad quoted string")
        text = re.sub(r"\\(.)", r"\1", match[1], flags=re.DOTALL) if quoted else match[0]
        result[-1][1].append((name[0], text, quoted))
        pos = _skip(_BLANKS, value, match.end())
        if pos < len(value) and value[pos] != ",":
            raise AuthError(f"expected ',' at column {pos} of {value[:60]!r}")
    return result


def _fields(
    pair: tuple[str, list[Param]], known: Sequence[str], required: Sequence[str]
) -> tuple[dict[str, str], tuple[Param, ...]]:
    """Known parameters by lower-case name, and the unknown ones."""
    scheme, params = pair
    if scheme.lower() != "digest":
        raise AuthError(f"unsupported auth scheme {scheme!r}")
    values: dict[str, str] = {}
    extra: list[Param] = []
    seen: set[str] = set()
    for name, value, quoted in params:
        if name.lower() in seen:
            raise AuthError(f"repeated parameter {name!r}")  # RFC 7235 §2.1
        seen.add(name.lower())
        if name.lower() in known:
            values[name.lower()] = value
        else:
            extra.append((name, value, quoted))
    missing = [name for name in required if name not in values]
    if missing:
        raise AuthError(f"Digest value without {', '.join(missing)}")
    return values, tuple(extra)


def _single(value: str) -> tuple[str, list[Param]]:
    pairs = parse_challenges(value)
    if len(pairs) != 1:
        raise AuthError(f"expected one Digest value, found {len(pairs)}")
    return pairs[0]


def _format(params: Iterable[tuple[str, str | None, bool]]) -> str:
    parts = []
    for name, value, quoted in params:
        if value is None:
            continue
        if _CONTROL.search(value):  # CR/LF would inject header lines
            raise AuthError(f"control character in parameter {name!r}")
        if quoted or not _BARE.fullmatch(value):
            value = '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
        parts.append(f"{name}={value}")
    return "Digest " + ", ".join(parts)


@dataclass(frozen=True)
class Challenge:
    """A Digest ``WWW-Authenticate`` or ``Proxy-Authenticate`` value (RFC 3261 §22.4)."""

    realm: str
    nonce: str
    algorithm: str | None = None
    "As sent; None means MD5 (RFC 7616 §3.3)."
    qop: tuple[str, ...] = ()
    "The qop options offered; empty for an RFC 2069 challenge."
    opaque: str | None = None
    stale: bool = False
    domain: str | None = None
    extra: tuple[Param, ...] = field(default=(), kw_only=True)

    @classmethod
    def parse(cls, value: str) -> Challenge:
        """Parse one challenge; raises ``AuthError``."""
        return cls._from(_single(value))

    @classmethod
    def parse_all(cls, value: str) -> list[Challenge]:
        """Every Digest challenge of a (possibly comma-joined) header value."""
        return [cls._from(pair) for pair in parse_challenges(value) if pair[0].lower() == "digest"]

    @classmethod
    def _from(cls, pair: tuple[str, list[Param]]) -> Challenge:
        known = ("realm", "domain", "nonce", "opaque", "stale", "algorithm", "qop")
        v, extra = _fields(pair, known, ("realm", "nonce"))
        qop = tuple(q.strip() for q in v.get("qop", "").split(",") if q.strip())
        stale = v.get("stale", "").lower() == "true"
        opaque, domain = v.get("opaque"), v.get("domain")
        return cls(
            v["realm"], v["nonce"], v.get("algorithm"), qop, opaque, stale, domain, extra=extra
        )

    def __str__(self) -> str:
        return _format(
            [
                ("realm", self.realm, True),
                ("domain", self.domain, True),
                ("nonce", self.nonce, True),
                ("opaque", self.opaque, True),
                ("stale", "TRUE" if self.stale else None, False),
                ("algorithm", self.algorithm, False),
                ("qop", ",".join(self.qop) or None, True),
                *self.extra,
            ]
        )


_CREDENTIALS = tuple("username realm nonce uri response algorithm cnonce opaque qop nc".split())
_BARE_CREDENTIALS = ("algorithm", "qop", "nc")  # RFC 3261 §25.1: not quoted-strings


@dataclass(frozen=True)
class Credentials:
    """A Digest ``Authorization`` or ``Proxy-Authorization`` value (RFC 3261 §22.4)."""

    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    algorithm: str | None = None
    cnonce: str | None = None
    opaque: str | None = None
    qop: str | None = None
    nc: str | None = None
    "The nonce count as sent: 8 hex digits."
    extra: tuple[Param, ...] = field(default=(), kw_only=True)

    @classmethod
    def parse(cls, value: str) -> Credentials:
        """Parse one credentials value; raises ``AuthError``."""
        v, extra = _fields(_single(value), _CREDENTIALS, _CREDENTIALS[:5])
        required = (v[name] for name in _CREDENTIALS[:5])
        username, realm, nonce, uri, response = required
        optional = (v.get(name) for name in _CREDENTIALS[5:])
        return cls(username, realm, nonce, uri, response, *optional, extra=extra)

    def __str__(self) -> str:
        fields = [(n, getattr(self, n), n not in _BARE_CREDENTIALS) for n in _CREDENTIALS]
        return _format([*fields, *self.extra])


# --- digest computation ------------------------------------------------------------------


def _digest(algorithm: str | None, data: bytes) -> str:
    base = (algorithm or "MD5").upper().removesuffix("-SESS")
    name = next((v for k, v in _HASHES.items() if k.upper() == base), None)
    try:
        if name is None:
            raise ValueError(base)
        return hashlib.new(name, data).hexdigest()
    except ValueError:  # unknown, or missing from this OpenSSL build
        raise AuthError(f"unsupported digest algorithm {algorithm!r}") from None


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")  # never fails, whatever a header held


def compute_ha1(algorithm: str | None, username: str, realm: str, password: str) -> str:
    """H(username ":" realm ":" password), which a user store may keep (RFC 7616 §3.4.2)."""
    return _digest(algorithm, _utf8(f"{username}:{realm}:{password}"))


def compute_response(c: Credentials, ha1: str, method: str, body: bytes = b"") -> str:
    """The response ``c`` should carry (RFC 7616 §3.4.1; RFC 2069 form when no qop)."""

    def h(text: str) -> str:
        return _digest(c.algorithm, _utf8(text))

    if (c.algorithm or "").upper().endswith("-SESS"):
        if c.cnonce is None:
            raise AuthError(f"{c.algorithm} needs a cnonce")
        ha1 = h(f"{ha1}:{c.nonce}:{c.cnonce}")  # RFC 7616 §3.4.2
    a2 = f"{method}:{c.uri}"
    if c.qop is None:
        return h(f"{ha1}:{c.nonce}:{h(a2)}")
    if c.qop.lower() not in QOP_PREFERENCE:
        raise AuthError(f"unsupported qop {c.qop!r}")
    if c.nc is None or c.cnonce is None:
        raise AuthError("qop needs nc and cnonce")
    if c.qop.lower() == "auth-int":
        a2 = f"{a2}:{_digest(c.algorithm, body)}"
    return h(f"{ha1}:{c.nonce}:{c.nc}:{c.cnonce}:{c.qop}:{h(a2)}")


# --- client ------------------------------------------------------------------------------


def _choose_qop(offered: Sequence[str]) -> str | None:
    if not offered:
        return None  # RFC 2069 style, for old servers (RFC 2617 §3.2.2.1)
    lowered = [q.lower() for q in offered]
    for qop in QOP_PREFERENCE:
        if qop in lowered:
            return qop
    raise AuthError(f"none of the offered qop values is supported: {', '.join(offered)}")


def supported(challenge: Challenge) -> bool:
    """Can we answer this challenge (its algorithm and qop)?"""
    try:
        _digest(challenge.algorithm, b"")
        _choose_qop(challenge.qop)
    except AuthError:
        return False
    return True


def answer_challenge(
    challenge: Challenge,
    method: str,
    uri: str,
    username: str,
    password: str,
    cnonce: str,
    nc: int = 1,
    body: bytes = b"",
) -> Credentials:
    """Credentials answering ``challenge`` for one request; ``cnonce`` should be random.

    ``uri`` is the Request-URI as sent (RFC 3261 §22.4). Raises ``AuthError``.
    """
    if not 0 < nc <= 0xFFFFFFFF:
        raise ValueError(f"nc out of range: {nc}")
    qop = _choose_qop(challenge.qop)
    sess = (challenge.algorithm or "").upper().endswith("-SESS")
    nc_text = f"{nc:08x}" if qop else None
    realm, nonce, algorithm = challenge.realm, challenge.nonce, challenge.algorithm
    draft = Credentials(username, realm, nonce, uri, "", algorithm)
    draft = replace(draft, cnonce=cnonce if qop or sess else None, qop=qop, nc=nc_text)
    draft = replace(draft, opaque=challenge.opaque)
    ha1 = compute_ha1(challenge.algorithm, username, challenge.realm, password)
    return replace(draft, response=compute_response(draft, ha1, method, body))


class ClientAuthState:
    """A UAC's digest state for one account: the challenge per realm, nc per nonce.

    Give the challenges of every 401 (``proxy=False``) or 407 (``proxy=True``) to
    ``handle_challenges``, then add the headers ``authorize`` returns to the retried
    request and to later ones (same nonce, nc counting up; RFC 3261 §22.3).
    """

    def __init__(self, username: str, password: str) -> None:
        self.username = username
        self.password = password
        self._realms: dict[tuple[bool, str], tuple[Challenge, int]] = {}

    def handle_challenges(self, challenges: Iterable[Challenge], *, proxy: bool = False) -> bool:
        """Take the challenges of a 401/407. Returns False when retrying is pointless.

        Per realm, the topmost challenge we support is used (RFC 8760 §2.4). The nonce we
        already answered, not marked stale, means our credentials were refused. Callers
        should still bound retries: some servers send a fresh nonce even then.
        """
        chosen: dict[tuple[bool, str], Challenge] = {}
        for challenge in challenges:
            if supported(challenge):
                chosen.setdefault((proxy, challenge.realm), challenge)
        refused = False
        for key, challenge in chosen.items():
            previous, used = self._realms.get(key, (None, 0))
            if previous is not None and previous.nonce == challenge.nonce and used:
                refused = refused or not challenge.stale
            self._realms[key] = (challenge, 0)
        return bool(chosen) and not refused

    def authorize(
        self, method: str, uri: str, cnonce: str, body: bytes = b""
    ) -> list[tuple[str, Credentials]]:
        """(header name, credentials) for every realm that challenged us, with its next nc."""
        result = []
        for (proxy, realm), (challenge, nc) in self._realms.items():
            self._realms[proxy, realm] = (challenge, nc + 1)
            user, password = self.username, self.password
            answer = answer_challenge(challenge, method, uri, user, password, cnonce, nc + 1, body)
            result.append((PROXY_AUTHORIZATION if proxy else AUTHORIZATION, answer))
        return result
