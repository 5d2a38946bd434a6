"""Keeping one trunk account registered with its provider (RFC 3261 §10.2): the decisions.

Theory of operation. ``TrunkRegistrar`` decides *when* to send a REGISTER and with what
``Expires``; the shell (``transport/trunk_register.py``) builds and sends it (digest
401/407 are answered by ``UserAgentCore`` with the trunk's ``Account``) and reports the
outcome back. Inputs, each taking ``now``:

* ``start(now)``: register at once.
* ``response_received(attempt, response, now)``: the final response to the REGISTER
  numbered *attempt* (responses to an older attempt are ignored).
* ``request_failed(attempt, status, now)``: no response (408 Timer F, 503 transport).
* ``handle_timer(now)`` at ``get_timer()``.
* ``close(now)``: stop, and un-REGISTER our contact (``Expires: 0``, never the ``*``
  wildcard, which would also remove the account's other devices) if a binding may exist.

Each input returns the ``Register`` to send now, or ``None``. ``Register.cseq`` grows
by ``CSEQ_STEP`` so the UA's digest retries (CSeq + 1, once more on ``stale``) never
collide with the next refresh under the same Call-ID (§10.2.4).

Rules:

* 2xx: the granted interval is our Contact's ``expires`` in the 2xx, else the only
  Contact's, else the ``Expires`` header, else what we asked. Refresh at
  ``refresh_fraction`` of it (0.75: early enough for a refresh to survive a lost
  datagram or two, Timer F, and a 401 round trip; RFC 3261 §10.2.4 leaves the margin
  to us). A 2xx granting 0 is a refusal.
* 423 Interval Too Brief: retry at once with its ``Min-Expires`` (if it is larger).
* Any other failure (403, 404, a 401 our credentials could not answer, 408, 5xx ...):
  back off ``retry_initial`` × 2ⁿ up to ``retry_max``, or the ``Retry-After`` if the
  response has one. No jitter: one REGISTER per trunk cannot stampede anybody.
* ``registered`` is true from a 2xx until the binding's expiry, while refreshes keep
  trying; a refusal (a final 3xx–6xx, which means the registrar answered no) clears it at
  once, a silent failure (408/503) only when the granted time runs out.

``TrunkRegistrationState`` says where we are, for logs and the dashboard. Pure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum, auto

from sipdialer.sip.errors import ParseError
from sipdialer.sip.headers import parse_int_header
from sipdialer.sip.message import Response
from sipdialer.sip.uri import SipUri

__all__ = [
    "CSEQ_STEP", "Register", "RegistrationPolicy", "TrunkRegistrar",
    "TrunkRegistrationState", "granted_expires",
]  # fmt: skip

CSEQ_STEP = 3
"CSeq numbers per REGISTER: the request, its digest retry, one more after stale=true."
MAX_RETRY_AFTER = 3600.0
"A longer Retry-After is capped: we would rather ask again in an hour."


class TrunkRegistrationState(Enum):
    IDLE = auto()
    "Not started."
    REGISTERING = auto()
    "A REGISTER is out and no binding is known."
    REGISTERED = auto()
    "Bound; the refresh is scheduled."
    REFRESHING = auto()
    "Bound, and the refresh REGISTER is out."
    BACKOFF = auto()
    "The last REGISTER failed; the next one is scheduled."
    UNREGISTERING = auto()
    "Closing: the Expires: 0 REGISTER is out."
    CLOSED = auto()


@dataclass(frozen=True)
class RegistrationPolicy:
    expires: int = 3600
    "Seconds asked for in each REGISTER."
    refresh_fraction: float = 0.75
    "Refresh when this fraction of the granted interval has passed."
    retry_initial: float = 5.0
    "First back-off after a failure, seconds; doubles per consecutive failure."
    retry_max: float = 300.0

    def __post_init__(self) -> None:
        if self.expires < 1:
            raise ValueError(f"expires must be >= 1, got {self.expires}")
        if not 0.5 <= self.refresh_fraction <= 0.9:
            raise ValueError(f"refresh_fraction must be in [0.5, 0.9], got {self.refresh_fraction}")
        if not 0 < self.retry_initial <= self.retry_max:
            raise ValueError("need 0 < retry_initial <= retry_max")


@dataclass(frozen=True)
class Register:
    """Send a REGISTER now."""

    attempt: int
    "Report its outcome with this number."
    expires: int
    "The Expires to ask for; 0 = remove our binding."
    cseq: int


def granted_expires(response: Response, contact: SipUri | None, asked: int) -> int:
    """The interval a 2xx granted our *contact* (see the module docstring)."""
    try:
        listed: list[tuple[SipUri | None, int | None]] = []
        for c in response.contacts:
            if c.address is not None:
                uri = c.address.uri if isinstance(c.address.uri, SipUri) else None
                listed.append((uri, c.expires))
        ours = [e for uri, e in listed if uri is not None and contact is not None
                and uri.equivalent(contact)]  # fmt: skip
        candidates = ours or ([listed[0][1]] if len(listed) == 1 else [])
        for expires in candidates:
            if expires is not None:
                return expires
        header = response.headers.get("Expires")
        if header is not None:
            return parse_int_header(header, "Expires")
    except ParseError:
        pass
    return asked


class TrunkRegistrar:
    """The registration of one trunk account; see the module docstring."""

    def __init__(
        self, policy: RegistrationPolicy | None = None, *, contact: SipUri | None = None
    ) -> None:
        self.policy = policy or RegistrationPolicy()
        self.contact = contact
        "Our Contact URI, to find our binding in a 2xx listing several."
        self.state = TrunkRegistrationState.IDLE
        self.failures = 0
        "Consecutive failed REGISTERs."
        self.last_status: int | None = None
        "Final status of the last REGISTER (for logs)."
        self.granted: int | None = None
        "Seconds the registrar granted last."
        self.expires_at: float | None = None
        "When our binding lapses without a refresh (None: no binding)."
        self._asked = self.policy.expires
        self._attempt = 0
        self._cseq = 1 - CSEQ_STEP
        self._next_at: float | None = None  # refresh or retry

    # --- outputs --------------------------------------------------------------------

    @property
    def registered(self) -> bool:
        return self.expires_at is not None

    def get_timer(self) -> float | None:
        deadlines = [t for t in (self._next_at, self.expires_at) if t is not None]
        return min(deadlines) if deadlines else None

    # --- inputs ---------------------------------------------------------------------

    def start(self, now: float) -> Register | None:
        if self.state is not TrunkRegistrationState.IDLE:
            return None
        self.state = TrunkRegistrationState.REGISTERING
        return self._register(self._asked)

    def close(self, now: float) -> Register | None:
        """Stop; the un-REGISTER to send, if a binding may exist. Then wait for its
        outcome (or give up waiting): the state ends CLOSED either way."""
        S = TrunkRegistrationState
        if self.state in (S.CLOSED, S.UNREGISTERING):
            return None
        may_be_bound = self.registered or self.state in (S.REGISTERING, S.REFRESHING)
        self._next_at = None
        self.expires_at = None
        if not may_be_bound:
            self.state = S.CLOSED
            return None
        self.state = S.UNREGISTERING
        return self._register(0)

    def response_received(self, attempt: int, response: Response, now: float) -> Register | None:
        status = response.status_code
        if attempt != self._attempt or status < 200:
            return None
        self.last_status = status
        if self.state is TrunkRegistrationState.UNREGISTERING:
            self.state = TrunkRegistrationState.CLOSED
            return None
        if 200 <= status < 300:
            granted = granted_expires(response, self.contact, self._asked)
            if granted > 0:
                self.failures = 0
                self.granted = granted
                self.expires_at = now + granted
                self._next_at = now + granted * self.policy.refresh_fraction
                self.state = TrunkRegistrationState.REGISTERED
                return None
        elif status == 423:
            minimum = _header_int(response, "Min-Expires")
            if minimum is not None and minimum > self._asked:
                self._asked = minimum
                return self._register(minimum)
        # A refusal: the registrar answered, and it said no.
        self.expires_at = None
        self._back_off(now, _retry_after(response))
        return None

    def request_failed(self, attempt: int, status: int, now: float) -> Register | None:
        """No response (408 Timer F, 503 transport error)."""
        if attempt != self._attempt:
            return None
        self.last_status = status
        if self.state is TrunkRegistrationState.UNREGISTERING:
            self.state = TrunkRegistrationState.CLOSED
            return None
        self._back_off(now, None)  # the binding, if any, lives until expires_at
        return None

    def handle_timer(self, now: float) -> Register | None:
        """Refresh, retry, or notice that the binding lapsed. Spurious calls are harmless."""
        if self.expires_at is not None and now >= self.expires_at:
            self.expires_at = None
            if self.state is TrunkRegistrationState.REFRESHING:
                self.state = TrunkRegistrationState.REGISTERING
        if self._next_at is None or now < self._next_at:
            return None
        self._next_at = None
        S = TrunkRegistrationState
        if self.state is S.REGISTERED:
            self.state = S.REFRESHING
        elif self.state is S.BACKOFF:
            self.state = S.REFRESHING if self.registered else S.REGISTERING
        else:
            return None
        return self._register(self._asked)

    # --- mechanics ------------------------------------------------------------------

    def _register(self, expires: int) -> Register:
        self._attempt += 1
        self._cseq += CSEQ_STEP
        return Register(self._attempt, expires, self._cseq)

    def _back_off(self, now: float, retry_after: float | None) -> None:
        self.failures += 1
        delay = self.policy.retry_initial * 2 ** min(self.failures - 1, 30)
        delay = min(delay, self.policy.retry_max)
        if retry_after:  # Retry-After: 0 means nothing more than "later"
            delay = retry_after
        self._next_at = now + delay
        self.state = TrunkRegistrationState.BACKOFF


def _header_int(response: Response, name: str) -> int | None:
    value = response.headers.get(name)
    if value is None:
        return None
    try:
        return parse_int_header(value, name)
    except ParseError:
        return None


def _retry_after(response: Response) -> float | None:
    """RFC 3261 §20.33: ``Retry-After: 120 (comment);duration=...``: the seconds only."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    head = value.split(";", 1)[0].split("(", 1)[0].strip()
    if not head.isascii() or not head.isdigit() or len(head) > 10:
        return None
    seconds = float(head)
    return min(seconds, MAX_RETRY_AFTER) if math.isfinite(seconds) else None
