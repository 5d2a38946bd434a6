"""HTTP Digest authentication for SIP (RFC 3261 §22, RFC 2617, RFC 7616, RFC 8760).

Theory of operation
-------------------
Header values: ``Challenge`` is a ``WWW-Authenticate``/``Proxy-Authenticate`` value and
``Credentials`` an ``Authorization``/``Proxy-Authorization`` value. ``parse`` is liberal
(any case for the scheme and parameter names, blanks around ``=``, quoted or bare values,
parameters in any order, unknown ones kept in ``extra``); ``str()`` writes the canonical
form. Anything malformed raises ``AuthError``. Values in ``Credentials`` are kept exactly as
sent (``nc``, ``qop``), because the response hash covers their spelling.

Client: ``answer_challenge`` computes the response for one challenge (MD5, SHA-256,
SHA-512-256 and their ``-sess`` forms; qop ``auth`` preferred over ``auth-int``; no qop is
RFC 2069 style). ``ClientAuthState`` remembers the challenges of the last 401/407 per realm
and counts ``nc`` per nonce, so credentials can be sent again without a new challenge.

Server: ``DigestServer`` keeps no state per challenge. A nonce is the time it was issued, a
counter and an HMAC of both under the server secret, so any nonce can be checked for
authenticity and age. ``verify`` gives one of four outcomes: OK; STALE (right password,
expired nonce: challenge again with ``stale=TRUE``); REPLAY (``nc`` not above the last one
seen for that nonce); BAD for everything else, with no detail, so that a caller cannot leak
whether the user exists. Last-seen ``nc`` values are kept only for live nonces and at most
``max_nonces`` of them. All comparisons of secrets use ``hmac.compare_digest``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import re
import struct
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import Enum, auto


class AuthError(ValueError):
    """A malformed or unusable challenge or credentials header value."""


_HASHES = {"MD5": "md5", "SHA-256": "sha256", "SHA-512-256": "sha512_256"}
ALGORITHMS = tuple(f"{base}{sess}" for base in _HASHES for sess in ("", "-sess"))
"Digest algorithms we can compute (RFC 7616 §6.1; SHA-512-256 needs OpenSSL support)."
QOP_PREFERENCE = ("auth", "auth-int")

Param = tuple[str, str, bool]
"An unknown parameter as (name, value, was quoted), kept for formatting."


def _digest(algorithm: str | None, data: bytes) -> str:
    base = (algorithm or "MD5").upper().removesuffix("-SESS")
    name = next((v for k, v in _HASHES.items() if k.upper() == base), None)
    try:
        if name is None:
            raise ValueError
        return hashlib.new(name, data).hexdigest()
    except ValueError:  # unknown here, or not in this OpenSSL build
        raise AuthError(f"unsupported digest algorithm {algorithm!r}") from None


def compute_ha1(algorithm: str | None, username: str, realm: str, password: str) -> str:
    """H(username ":" realm ":" password), the value a user store may keep (RFC 7616 §3.4.2)."""
    return _digest(algorithm, f"{username}:{realm}:{password}".encode())


def compute_response(
    algorithm: str | None,
    ha1: str,
    nonce: str,
    method: str,
    uri: str,
    *,
    qop: str | None = None,
    nc: str | None = None,
    cnonce: str | None = None,
    body: bytes = b"",
) -> str:
    """The request-digest (RFC 7616 §3.4.1; RFC 2069 form when ``qop`` is None)."""

    def h(text: str) -> str:
        return _digest(algorithm, text.encode())

    if (algorithm or "").upper().endswith("-SESS"):
        if cnonce is None:
            raise AuthError(f"{algorithm} needs a cnonce")
        ha1 = h(f"{ha1}:{nonce}:{cnonce}")  # RFC 7616 §3.4.2
    a2 = f"{method}:{uri}"
    if qop is None:
        return h(f"{ha1}:{nonce}:{h(a2)}")
    if qop.lower() not in QOP_PREFERENCE:
        raise AuthError(f"unsupported qop {qop!r}")
    if nc is None or cnonce is None:
        raise AuthError("qop needs nc and cnonce")
    if qop.lower() == "auth-int":
        a2 = f"{a2}:{_digest(algorithm, body)}"
    return h(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{h(a2)}")


# --- header values ---------------------------------------------------------------------

_TOKEN = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")  # RFC 3261 §25.1 token
_BARE = re.compile(r'[^\s,"]+')  # a token, leniently: some phones send bare URIs
_QUOTED = re.compile(r'"((?:[^"\\\x00-\x08\x0a-\x1f\x7f]|\\[^\r\n])*)"')  # quoted-pair: \x
_BLANKS = re.compile(r"[ \t]*")
_SEPARATORS = re.compile(r"[ \t,]*")  # RFC 7230 §7: empty list elements are allowed


def parse_challenges(value: str) -> list[tuple[str, list[Param]]]:
    """Split a header value into (scheme, params) pairs; raises ``AuthError``."""
    result: list[tuple[str, list[Param]]] = []
    pos = 0
    while (pos := _SEPARATORS.match(value, pos).end()) < len(value):  # type: ignore[union-attr]
        name = _TOKEN.match(value, pos)
        if name is None:
            raise AuthError(f"expected a token at column {pos} of {value[:60]!r}")
        pos = _BLANKS.match(value, name.end()).end()  # type: ignore[union-attr]
        if not value.startswith("=", pos):
            result.append((name[0], []))  # a new auth scheme
            continue
        if not result:
            raise AuthError(f"parameter {name[0]!r} before the auth scheme")
        pos = _BLANKS.match(value, pos + 1).end()  # type: ignore[union-attr]
        quoted = value.startswith('"', pos)
        match = (_QUOTED if quoted else _BARE).match(value, pos)
        if match is None:
            raise AuthError(f"parameter {name[0]!r}: no value or a bad quoted string")
        text = re.sub(r"\\(.)", r"\1", match[1], flags=re.DOTALL) if quoted else match[0]
        result[-1][1].append((name[0], text, quoted))
        pos = _BLANKS.match(value, match.end()).end()  # type: ignore[union-attr]
        if pos < len(value) and value[pos] != ",":
            raise AuthError(f"expected ',' at column {pos} of {value[:60]!r}")
    return result


def _fields(
    scheme: str, params: list[Param], known: dict[str, bool], required: Sequence[str]
) -> tuple[dict[str, str], tuple[Param, ...]]:
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
    if not isinstance(value, str):
        raise AuthError(f"expected a str header value, not {type(value).__name__}")
    challenges = parse_challenges(value)
    if len(challenges) != 1:
        raise AuthError(f"expected one Digest value, found {len(challenges)}")
    return challenges[0]


def _format(params: Iterable[tuple[str, str | None, bool]]) -> str:
    parts = []
    for name, value, quoted in params:
        if value is None:
            continue
        if re.search(r"[\x00-\x08\x0a-\x1f\x7f]", value):
            raise AuthError(f"control character in parameter {name!r}")  # header injection
        if quoted or not _BARE.fullmatch(value):
            value = '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
        parts.append(f"{name}={value}")
    return "Digest " + ", ".join(parts)


_CHALLENGE = {"realm": True, "domain": True, "nonce": True, "opaque": True}
_CHALLENGE |= {"stale": False, "algorithm": False, "qop": True}


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
    extra: tuple[Param, ...] = ()

    @classmethod
    def parse(cls, value: str) -> Challenge:
        """Parse one challenge; raises ``AuthError``."""
        return cls._from(*_single(value))

    @classmethod
    def parse_all(cls, value: str) -> list[Challenge]:
        """Every Digest challenge in a (possibly comma-joined) header value."""
        pairs = parse_challenges(value)
        return [cls._from(s, p) for s, p in pairs if s.lower() == "digest"]

    @classmethod
    def _from(cls, scheme: str, params: list[Param]) -> Challenge:
        v, extra = _fields(scheme, params, _CHALLENGE, ("realm", "nonce"))
        qop = tuple(q.strip() for q in v.get("qop", "").split(",") if q.strip())
        stale = v.get("stale", "").lower() == "true"
        return cls(v["realm"], v["nonce"], v.get("algorithm"), qop, v.get("opaque"), stale,
                   v.get("domain"), extra)  # fmt: skip

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


_CREDENTIALS = {"username": True, "realm": True, "nonce": True, "uri": True, "response": True}
_CREDENTIALS |= {"algorithm": False, "cnonce": True, "opaque": True, "qop": False, "nc": False}


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
    extra: tuple[Param, ...] = ()

    @classmethod
    def parse(cls, value: str) -> Credentials:
        """Parse one credentials value; raises ``AuthError``."""
        required = ("username", "realm", "nonce", "uri", "response")
        v, extra = _fields(*_single(value), _CREDENTIALS, required)
        return cls(*(v[name] for name in required), v.get("algorithm"), v.get("cnonce"),
                   v.get("opaque"), v.get("qop"), v.get("nc"), extra)  # fmt: skip

    def __str__(self) -> str:
        names = ("username", "realm", "nonce", "uri", "response", "algorithm", "cnonce")
        params = [(n, getattr(self, n), _CREDENTIALS[n]) for n in (*names, "opaque", "qop", "nc")]
        return _format([*params, *self.extra])


# --- client ------------------------------------------------------------------------------


def _choose_qop(offered: Sequence[str]) -> str | None:
    if not offered:
        return None  # RFC 2069 compatibility (RFC 7616 §3.4 allows it for old servers)
    lowered = [q.lower() for q in offered]
    for qop in QOP_PREFERENCE:
        if qop in lowered:
            return qop
    raise AuthError(f"none of the offered qop values is supported: {', '.join(offered)}")


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
    """Credentials answering ``challenge`` for a request; ``cnonce`` should be random."""
    if not 0 < nc <= 0xFFFFFFFF:
        raise ValueError(f"nc out of range: {nc}")
    qop = _choose_qop(challenge.qop)
    sess = (challenge.algorithm or "").upper().endswith("-SESS")
    nc_text = f"{nc:08x}" if qop else None
    use_cnonce = cnonce if qop or sess else None
    ha1 = compute_ha1(challenge.algorithm, username, challenge.realm, password)
    response = compute_response(
        challenge.algorithm, ha1, challenge.nonce, method, uri,
        qop=qop, nc=nc_text, cnonce=use_cnonce, body=body,
    )  # fmt: skip
    return Credentials(username, challenge.realm, challenge.nonce, uri, response,
                       challenge.algorithm, use_cnonce, challenge.opaque, qop, nc_text)  # fmt: skip


def supported(challenge: Challenge) -> bool:
    """Can we answer this challenge (algorithm and qop)?"""
    try:
        _digest(challenge.algorithm, b"")
        _choose_qop(challenge.qop)
    except AuthError:
        return False
    return True


class ClientAuthState:
    """A UAC's digest state for one account: challenges per realm, nc per nonce.

    Feed every 401/407's challenges to ``handle_challenges``; then put each credential of
    ``authorize`` in an ``Authorization`` (401) or ``Proxy-Authorization`` (407) header of
    the retried request, and of later requests (the nonce is reused, nc counts up).
    """

    def __init__(self, username: str, password: str) -> None:
        self.username = username
        self.password = password
        self._realms: dict[str, tuple[Challenge, int]] = {}

    def handle_challenges(self, challenges: Iterable[Challenge]) -> bool:
        """Take the challenges of a 401/407. Returns False when retrying is pointless.

        Per realm the topmost challenge we support is used (RFC 8760 §2.4). A challenge
        with the nonce we already answered, not marked stale, means our credentials were
        refused. A caller should still bound retries: some servers send a new nonce even
        then.
        """
        usable = False
        for challenge in challenges:
            if not supported(challenge) or challenge.realm in usable_realms(usable):
                continue
            usable = True
        chosen: dict[str, Challenge] = {}
        for challenge in challenges:
            if supported(challenge):
                chosen.setdefault(challenge.realm, challenge)
        refused = False
        for realm, challenge in chosen.items():
            previous = self._realms.get(realm)
            if previous and previous[0].nonce == challenge.nonce and previous[1] > 0:
                refused = refused or not challenge.stale
            self._realms[realm] = (challenge, 0)
        return bool(chosen) and not refused

    def authorize(self, method: str, uri: str, cnonce: str, body: bytes = b"") -> list[Credentials]:
        """Credentials for every realm that challenged us, each with its next nc."""
        result = []
        for realm, (challenge, nc) in self._realms.items():
            self._realms[realm] = (challenge, nc + 1)
            result.append(
                answer_challenge(
                    challenge, method, uri, self.username, self.password, cnonce, nc + 1, body
                )
            )
        return result
