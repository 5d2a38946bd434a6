"""The server side of HTTP Digest for SIP (RFC 3261 §22, RFC 7616): ``DigestServer``.

``DigestServer`` keeps no state per challenge. A nonce is the time it was issued, a counter
and an HMAC of both under the server secret, so any nonce can be checked for origin and age.
``verify`` has four outcomes: OK; STALE (right password, expired nonce: challenge again with
``stale=TRUE``); REPLAY (``nc`` not above the last one seen for that nonce); BAD for
everything else, without detail, so that no caller can leak whether a user exists. Last
``nc`` values are kept for live nonces only, and at most ``max_nonces``. Secrets are
compared with ``hmac.compare_digest``.

Every public name here is also importable from ``auth``, which re-exports it lazily.
"""

from __future__ import annotations

import base64
import hmac
import math
import re
import struct
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum, auto

from .auth import (
    ALGORITHMS,
    QOP_PREFERENCE,
    AuthError,
    Challenge,
    Credentials,
    _utf8,
    compute_ha1,
    compute_response,
)

__all__ = ["CLOCK_SKEW", "AuthOutcome", "AuthResult", "DigestServer", "Ha1", "Lookup"]


class AuthOutcome(Enum):
    """What ``DigestServer.verify`` concluded."""

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
    """The outcome of a check; every BAD result is equal to every other one."""

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
        return next((h for a, h in self.hashes if a.upper().removesuffix("-SESS") == base), None)


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

    def owns(self, nonce: str) -> bool:
        """True when we issued *nonce*, whatever its age (a guess at a password with a
        nonce we never gave out is not worth counting)."""
        return self._issued(nonce) is not None

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
