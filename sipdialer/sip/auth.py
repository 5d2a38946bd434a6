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

Server: ``DigestServer`` keeps no state per challenge. A nonce is the time it was issued, a
counter and an HMAC of both under the server secret, so any nonce can be checked for
origin and age. ``verify`` has four outcomes: OK; STALE (right password, expired nonce:
challenge again with ``stale=TRUE``); REPLAY (``nc`` not above the last one seen for that
nonce); BAD for everything else, without detail, so that no caller can leak whether a user
exists. Last ``nc`` values are kept for live nonces only, and at most ``max_nonces``.
Secrets are compared with ``hmac.compare_digest``.
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
from dataclasses import dataclass, field, replace
from enum import Enum, auto


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
        return None  # RFC 2069 style, for old servers (RFC 7616 §3.4)
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


# --- server ------------------------------------------------------------------------------


class AuthOutcome(Enum):
    OK = auto()
    "The credentials are right: serve the request."
    STALE = auto()
    "Right password, expired nonce: challenge again with ``stale=True`` (RFC 7616 §3.3)."
    REPLAY = auto()
    "A nonce count seen before: refuse as for BAD."
    BAD = auto()
    "Anything else (wrong password or realm, unknown user, malformed): challenge again."


@dataclass(frozen=True)
class AuthResult:
    outcome: AuthOutcome
    username: str | None = None
    "Who proved knowing the password (None for BAD)."

    @property
    def ok(self) -> bool:
        return self.outcome is AuthOutcome.OK


@dataclass(frozen=True)
class Ha1:
    """H(username:realm:password) per algorithm, for user stores that keep no passwords."""

    hashes: tuple[tuple[str, str], ...]
    "(algorithm, HA1 hex) pairs; the -sess forms use their base algorithm's."

    @classmethod
    def compute(
        cls,
        username: str,
        realm: str,
        password: str,
        algorithms: Sequence[str] = ("SHA-256", "MD5"),
    ) -> Ha1:
        return cls(tuple((a, compute_ha1(a, username, realm, password)) for a in algorithms))

    def get(self, algorithm: str | None) -> str | None:
        base = (algorithm or "MD5").upper().removesuffix("-SESS")
        return next((h for a, h in self.hashes if a.upper() == base), None)


Lookup = Callable[[str], str | Ha1 | None]
"username -> password, or its ``Ha1``, or None for an unknown user."
_BAD = AuthResult(AuthOutcome.BAD)
_NONCE = struct.Struct(">dQ")  # issued at (the caller's clock, seconds), counter
CLOCK_SKEW = 1.0
"Seconds a nonce may seem to come from the future; beyond, it is STALE (clock reset)."


class DigestServer:
    """The digest check of a UAS or registrar for one realm; ``now`` is in seconds.

    ``challenge(now)`` gives the challenges of a 401/407, one per algorithm in the order
    given (most preferred first, RFC 8760 §2.3); ``verify`` checks credentials.
    """

    def __init__(
        self,
        realm: str,
        secret: bytes,
        nonce_lifetime: float = 300.0,
        algorithms: Sequence[str] = ("SHA-256", "MD5"),
        *,
        allow_no_qop: bool = False,
        max_nonces: int = 100_000,
    ) -> None:
        if not secret:
            raise ValueError("the nonce secret must not be empty (use 32 random bytes)")
        if not nonce_lifetime > 0 or max_nonces < 1:
            raise ValueError("nonce_lifetime and max_nonces must be positive")
        if not algorithms or not {a.upper() for a in algorithms} <= {a.upper() for a in ALGORITHMS}:
            raise ValueError(f"algorithms must be among {ALGORITHMS}, not {algorithms}")
        self.realm = realm
        self.nonce_lifetime = nonce_lifetime
        self.algorithms = tuple(algorithms)
        self.allow_no_qop = allow_no_qop
        "Accept RFC 2069 responses (no qop, no nc) from phones that ignore qop=auth."
        self.max_nonces = max_nonces
        self._secret = secret
        self._counter = 0
        self._seen: OrderedDict[str, tuple[float, int]] = OrderedDict()  # nonce: (issued, nc)
        self._forgotten_until = -math.inf  # nonces issued until then may have been evicted

    def challenge(self, now: float, *, stale: bool = False) -> list[Challenge]:
        """The challenges for a 401/407 (``stale=True`` after a STALE outcome)."""
        self._counter += 1
        body = _NONCE.pack(now, self._counter)
        nonce = base64.urlsafe_b64encode(body + self._mac(body)).decode().rstrip("=")
        return [Challenge(self.realm, nonce, a, ("auth",), stale=stale) for a in self.algorithms]

    def _mac(self, body: bytes) -> bytes:
        return hmac.new(self._secret, _utf8(self.realm) + body, "sha256").digest()[:16]

    def _issued(self, nonce: str) -> float | None:
        """When we issued ``nonce``, or None if we did not."""
        try:
            raw = base64.urlsafe_b64decode(nonce.encode("ascii") + b"=")
        except ValueError:  # binascii.Error and UnicodeEncodeError are ValueErrors
            return None
        body, mac = raw[: _NONCE.size], raw[_NONCE.size :]
        canonical = base64.urlsafe_b64encode(raw).decode().rstrip("=") == nonce
        if not canonical or not hmac.compare_digest(mac, self._mac(body)):
            return None
        issued: float = _NONCE.unpack(body)[0]
        return issued if math.isfinite(issued) else None

    def verify(
        self,
        credentials: Credentials,
        method: str,
        lookup: Lookup,
        now: float,
        *,
        body: bytes = b"",
    ) -> AuthResult:
        """Check the credentials of a ``method`` request (``body`` for qop=auth-int).

        The response is checked against the digest uri the client sent, which may differ
        trivially from the Request-URI (``;transport=udp`` and the like).
        """
        self._prune(now)
        c = credentials
        issued = self._issued(c.nonce)
        qop = None if c.qop is None else c.qop.lower()
        counted = qop in QOP_PREFERENCE and bool(c.cnonce) and _is_nc(c.nc)
        well_formed = (
            issued is not None
            and c.realm == self.realm
            and (c.algorithm or "MD5").upper() in (a.upper() for a in self.algorithms)
            and (counted or (qop is None and self.allow_no_qop))
        )
        secret = lookup(c.username) if well_formed else None
        try:  # the same work for an unknown user as for a wrong password
            if isinstance(secret, Ha1):
                ha1 = secret.get(c.algorithm)
            else:
                ha1 = compute_ha1(c.algorithm, c.username, self.realm, secret or "")
            expected = compute_response(c, ha1 or "", method, body)
        except AuthError:
            return _BAD
        right = hmac.compare_digest(_utf8(expected), _utf8(c.response.lower()))
        if not right or secret is None or ha1 is None or issued is None:
            return _BAD
        if not -CLOCK_SKEW <= now - issued <= self.nonce_lifetime:
            return AuthResult(AuthOutcome.STALE, c.username)
        if not counted or c.nc is None:
            return AuthResult(AuthOutcome.OK, c.username)  # RFC 2069: no replay protection
        return self._count(c.nonce, issued, int(c.nc, 16), c.username)

    def verify_header(
        self, value: str, method: str, lookup: Lookup, now: float, *, body: bytes = b""
    ) -> AuthResult:
        """``verify`` for an ``Authorization``/``Proxy-Authorization`` value; malformed is BAD."""
        try:
            credentials = Credentials.parse(value)
        except AuthError:
            self._prune(now)
            return _BAD
        return self.verify(credentials, method, lookup, now, body=body)

    def _count(self, nonce: str, issued: float, nc: int, username: str) -> AuthResult:
        """Replay check (RFC 7616 §3.4): nc must grow for each use of a nonce."""
        last = self._seen.get(nonce)
        if last is None and issued <= self._forgotten_until:
            return AuthResult(AuthOutcome.STALE, username)  # evicted: its nc is unknown
        if last is not None and nc <= last[1]:
            return AuthResult(AuthOutcome.REPLAY, username)
        self._seen[nonce] = (issued, nc)
        if len(self._seen) > self.max_nonces:
            _, (evicted, _) = self._seen.popitem(last=False)
            self._forgotten_until = max(self._forgotten_until, evicted)
        return AuthResult(AuthOutcome.OK, username)

    def _prune(self, now: float) -> None:
        """Forget the nc of expired nonces, oldest first use first."""
        while self._seen:
            nonce, (issued, _) = next(iter(self._seen.items()))
            if now - issued <= self.nonce_lifetime:
                break
            del self._seen[nonce]

    @property
    def tracked_nonces(self) -> int:
        """How many nonces have their last nc remembered."""
        return len(self._seen)


def _is_nc(nc: str | None) -> bool:
    return nc is not None and re.fullmatch(r"[0-9a-fA-F]{8}", nc) is not None
