"""The registrar of the agents' phones (RFC 3261 §10.3): pure state, driven by ``now``.

Theory of operation. ``RegistrarCore.handle_register(request, peer, now)`` processes
one REGISTER the UA handed up and returns the ``RegisterAnswer`` to send (status,
reason, headers; the UA builds the response with its To tag). Changes to the bindings
are queued as events (``bindings.py``): ``BindingAdded``, ``BindingRefreshed``,
``BindingRemoved``, ``BindingExpired``, and ``SourceLockedOut`` when brute force is
detected. ``get_timer()`` / ``handle_timer(now)`` expire bindings on time and make
OPTIONS keep-alives due every ``qualify_interval``; ``due_qualify(now)`` hands those
to the shell, which reports back with ``qualify_answered`` / ``qualify_failed``.
``restore(bindings, now)`` loads stored bindings at start; ``lookup(aor, now)`` is what
the dialer asks.

The steps of §10.3, in order, and the answers chosen:

1. Source IP locked out (``lockout.py``): 403.
2. Request-URI host not ours (the realm, ``domains``, or any IP literal when listening
   on a wildcard address; the port is ignored): 403 "Not Our Domain". We are no proxy,
   so there is nobody to forward to; 403 rather than 404 because nothing is missing.
3. Authentication (§22, digest with MD5 and SHA-256, qop=auth, and the RFC 2069 form
   when ``allow_no_qop``; MD5 is offered first, see ``RegistrarConfig.algorithms``).
   No credentials for our realm: 401 with a fresh challenge.
   A wrong password and an unknown user give the *same* 401, by the same code path
   (``DigestServer.verify`` does the same work for both), so a scanner cannot tell
   extensions apart. An expired nonce: 401 with ``stale=true``. A replayed nonce count:
   401. Wrong digests and replays count as failures for the lockout; so does nothing
   else (an unauthenticated first REGISTER, a stale nonce, a nonce that is not ours,
   e.g. cached by a phone across our restart, which cannot be used to guess anyway).
   A user locked out after failures: 403, except from an IP that holds one of that
   user's bindings (so a scanner cannot knock a working phone off).
4. Authorization: the authenticated user must be the To AOR's user: else 403.
5. Contacts: ``*`` needs ``Expires: 0`` and no other contact (else 400) and removes
   all; otherwise each contact's expiry is its ``expires`` parameter, else the
   ``Expires`` header, else ``default_expires``; 0 removes; below ``min_expires`` the
   whole request gets 423 with Min-Expires; above ``max_expires`` it is capped. A
   non-SIP contact or a malformed ``expires`` gets 400; more than ``max_contacts``
   bindings for the AOR gets 403.
6. Call-ID/CSeq (§10.3 step 7): a binding with the request's Call-ID and a CSeq not
   below the request's means an out-of-order request: the whole request fails with
   500 and nothing changes. Another Call-ID updates (or removes) the binding.
7. Commit all changes, then 200 listing *every* binding of the AOR with its remaining
   ``expires`` (a query without Contact lists them too). Every answer carries Date.

Qualify (OPTIONS keep-alive). Any response, even 404/405/501, means alive. A phone
that has answered at least once and then leaves ``unreachable_after`` consecutive
OPTIONS unanswered (each one a full Timer F, or a transport failure) is unregistered
with reason ``unreachable``. A phone that never answered any OPTIONS (pyVoIP never
does) is marked ``qualify_supported=False`` and is *not* removed for its silence: it
keeps its binding until it expires or unregisters, like any other. We keep probing it
(cheaply), so a phone that starts answering becomes supervised.

Time. ``now`` is the shell's monotonic clock; ``wall_offset`` (set by the shell) turns
it into Unix time for the Date header.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from .auth import AuthError, Credentials
from .auth_server import AuthOutcome, DigestServer, Ha1
from .bindings import (
    Binding,
    BindingAdded,
    BindingExpired,
    BindingRefreshed,
    BindingRemoved,
    RegistrarEvent,
    SourceLockedOut,
    contact_key,
    contact_value,
    ip_or_none,
    strip_brackets,
)
from .errors import ParseError
from .headers import Contact, parse_int_header
from .lockout import Lockout, LockoutConfig
from .message import Request, Response, response_for
from .peer import Peer
from .schedule import Schedule
from .uri import SipUri

UserLookup = Callable[[str], str | Ha1 | None]
BindingId = tuple[str, str]
"(aor, contact key)."


@dataclass(frozen=True)
class RegistrarConfig:
    realm: str = "dialer.local"
    "Digest realm; also a domain the Request-URI may name."
    domains: tuple[str, ...] = ()
    "Other Request-URI hosts that are ours: the listen and public addresses."
    any_ip_literal: bool = False
    "Accept any IP literal in the Request-URI (listening on 0.0.0.0 or ::)."
    default_expires: int = 3600
    "Seconds granted when the REGISTER names none."
    min_expires: int = 60
    "Shorter non-zero requests get 423 Interval Too Brief (RFC 3261 §10.3 step 7)."
    max_expires: int = 3600
    "Longer requests are capped."
    max_contacts: int = 10
    "Bindings per AOR; a REGISTER that would exceed it gets 403."
    qualify_interval: float = 30.0
    "Seconds between OPTIONS to each binding; 0 turns qualify off."
    unreachable_after: int = 2
    "Consecutive unanswered OPTIONS that unregister a phone which used to answer."
    nonce_lifetime: float = 300.0
    algorithms: tuple[str, ...] = ("MD5", "SHA-256")
    """Challenges offered, one WWW-Authenticate line each, in this order (they share a
    nonce). MD5 comes first on purpose: sipp 3.6.1 answers only the first challenge and
    gives up on anything but MD5; pyVoIP reads the last line but always answers MD5.
    The price: clients following RFC 8760 §2.4 (topmost supported) pick MD5 too. Put
    SHA-256 first when no such phone is in the office. baresip 1.0 gives up on a 401
    with any non-MD5 line, so the running system (``transport.registrar.build_registrar``)
    offers MD5 alone."""
    allow_no_qop: bool = True
    "Accept RFC 2069 digests from phones that ignore qop (pyVoIP)."
    lockout: LockoutConfig = field(default_factory=LockoutConfig)

    def __post_init__(self) -> None:
        if not 0 < self.min_expires <= self.max_expires:
            raise ValueError("need 0 < min_expires <= max_expires")
        if not self.min_expires <= self.default_expires:
            raise ValueError("default_expires must not be below min_expires")
        if self.qualify_interval < 0 or self.unreachable_after < 1 or self.max_contacts < 1:
            raise ValueError("qualify_interval >= 0, unreachable_after and max_contacts >= 1")


@dataclass(frozen=True)
class RegisterAnswer:
    """What to answer a REGISTER with; ``UserAgentCore.respond`` takes these fields."""

    status: int
    reason: str | None = None
    headers: tuple[tuple[str, str], ...] = ()

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    def header_lines(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def to_response(self, request: Request, to_tag: str | None = None) -> Response:
        """The response itself (tests, and shells without a UA)."""
        return response_for(request, self.status, self.reason, to_tag=to_tag,
                            headers=list(self.headers))  # fmt: skip


class _Refused(Exception):
    """Internal: stop processing and answer this."""

    def __init__(self, status: int, reason: str | None = None,
                 headers: tuple[tuple[str, str], ...] = ()) -> None:  # fmt: skip
        super().__init__(status, reason)
        self.answer = RegisterAnswer(status, reason, headers)


@dataclass
class _Change:
    key: str
    contact: str
    expires: int
    q: float


class RegistrarCore:
    def __init__(
        self,
        config: RegistrarConfig,
        users: Mapping[str, str] | UserLookup,
        secret: bytes,
        *,
        wall_offset: float = 0.0,
    ) -> None:
        self.config = config
        self._lookup: UserLookup = users.get if isinstance(users, Mapping) else users
        self.digest = DigestServer(config.realm, secret, config.nonce_lifetime, config.algorithms,
                              allow_no_qop=config.allow_no_qop)  # fmt: skip
        self.lockout = Lockout(config.lockout)
        self.wall_offset = wall_offset
        "Add to ``now`` to get Unix time (for Date); the shell sets it."
        self.qualify_interval = config.qualify_interval
        self._bindings: dict[str, dict[str, Binding]] = {}
        self._expiry: Schedule[BindingId] = Schedule()
        self._qualify: Schedule[BindingId] = Schedule()
        self._qualify_out: list[Binding] = []
        self._events: deque[RegistrarEvent] = deque()
        self._domains = {strip_brackets(d).lower() for d in (config.realm, *config.domains)}
        self.stats: dict[str, int] = {
            "ok": 0, "challenged": 0, "failures": 0, "refused": 0, "rejected": 0,
        }  # fmt: skip

    # --- outputs --------------------------------------------------------------------

    def next_event(self) -> RegistrarEvent | None:
        return self._events.popleft() if self._events else None

    def get_timer(self) -> float | None:
        times = [self._expiry.next_deadline(), self._qualify.next_deadline()]
        return min((t for t in times if t is not None), default=None)

    def due_qualify(self, now: float) -> list[Binding]:
        """Bindings to send an OPTIONS to now (also fires due timers). Report each
        outcome with ``qualify_answered`` or ``qualify_failed``."""
        self.handle_timer(now)
        out, self._qualify_out = self._qualify_out, []
        return out

    def lookup(self, aor: str, now: float) -> list[Binding]:
        """The live bindings of *aor*, best first (highest q, then most recent)."""
        live = [b for b in self._bindings.get(aor, {}).values() if b.expires_at > now]
        return sorted(live, key=lambda b: (-b.q, -b.registered_at))

    def is_registered(self, aor: str, now: float) -> bool:
        return any(b.expires_at > now for b in self._bindings.get(aor, {}).values())

    def bindings(self) -> list[Binding]:
        """Every binding held, for the API and tests."""
        return [b for table in self._bindings.values() for b in table.values()]

    def locked_out(self, peer: Peer, now: float) -> bool:
        """True when *peer*'s IP is locked out: refuse any request from it with 403."""
        return self.lockout.ip_locked(peer.host, now)

    # --- inputs: timers, restore, qualify -------------------------------------------

    def handle_timer(self, now: float) -> None:
        """Expire bindings and queue due qualifies. Spurious calls are harmless."""
        for aor, key in self._expiry.pop_due(now):
            binding = self._drop(aor, key)
            if binding is not None:
                self._events.append(BindingExpired(binding))
        for aor, key in self._qualify.pop_due(now):
            binding = self._bindings.get(aor, {}).get(key)
            if binding is not None:
                # In flight: no deadline until the shell reports the outcome.
                self._qualify_out.append(binding)

    def restore(self, bindings: Iterable[Binding], now: float) -> list[Binding]:
        """Load stored bindings (times on our clock); returns those already expired,
        which are dropped (delete them from the store). No events."""
        expired = []
        for binding in bindings:
            if binding.expires_at <= now:
                expired.append(binding)
                continue
            fresh = replace(binding, qualify_supported=None, qualify_failures=0)
            self._put(fresh, now, new=True)
        return expired

    def qualify_answered(self, binding: Binding, now: float) -> None:
        current = self._current(binding)
        if current is None:
            return
        self._put(replace(current, qualify_supported=True, qualify_failures=0), now)
        self._schedule_qualify(current, now)

    def qualify_failed(self, binding: Binding, now: float) -> None:
        current = self._current(binding)
        if current is None:
            return
        if current.qualify_supported:
            failures = current.qualify_failures + 1
            if failures >= self.config.unreachable_after:
                self._drop(current.aor, current.key)
                self._events.append(BindingRemoved(current, "unreachable"))
                return
            updated = replace(current, qualify_failures=failures)
        else:
            updated = replace(current, qualify_supported=False)  # never answered: kept
        self._put(updated, now)
        self._schedule_qualify(updated, now)

    # --- input: REGISTER ------------------------------------------------------------

    def handle_register(self, request: Request, peer: Peer, now: float) -> RegisterAnswer:
        """Process one REGISTER (already through the UA's §8.2 checks)."""
        try:
            answer = self._register(request, peer, now)
        except _Refused as refused:
            answer = refused.answer
            self.stats["refused" if answer.status == 403 else "rejected"] += 1
        except ParseError as exc:  # a header the UA's checks let through (tests feed raw)
            answer = RegisterAnswer(exc.status_hint, exc.reason)
            self.stats["rejected"] += 1
        return replace(answer, headers=(*answer.headers, ("Date", self._date(now))))

    def authenticate(self, request: Request, peer: Peer, now: float) -> str | RegisterAnswer:
        """The digest check of any request from a phone (REGISTER, INVITE, ...): the
        authenticated user, or the answer to send instead (401 challenge, 403 when the
        source or user is locked out). Failures count towards the lockout."""
        try:
            return self._authenticate(request, peer, now)
        except _Refused as refused:
            self.stats["refused"] += 1
            return refused.answer

    def _authenticate(self, request: Request, peer: Peer, now: float) -> str | RegisterAnswer:
        if self.lockout.ip_locked(peer.host, now):
            raise _Refused(403)
        credentials, raw = self._credentials(request)
        party = _aor(request) if request.method == "REGISTER" else _user(request.from_.uri)
        claimed = credentials.username if credentials else party
        if claimed and self.lockout.user_locked(claimed, now) and not self._holds(claimed, peer):
            raise _Refused(403)
        if raw is None:
            return self._challenge(now)
        result = self.digest.verify_header(raw, request.method, self._lookup, now)
        if result.outcome is AuthOutcome.STALE:
            return self._challenge(now, stale=True)
        if not result.ok or result.username is None:
            if credentials is not None and self.digest.owns(credentials.nonce):
                self._failure(peer, credentials.username, now)
            return self._challenge(now)
        return result.username

    def _register(self, request: Request, peer: Peer, now: float) -> RegisterAnswer:
        if self.lockout.ip_locked(peer.host, now):
            raise _Refused(403)
        if not self._ours(request):
            raise _Refused(403, "Not Our Domain")
        aor = _aor(request)
        user = self._authenticate(request, peer, now)
        if isinstance(user, RegisterAnswer):
            return user
        if aor is None or user != aor:
            raise _Refused(403, "Forbidden (user does not match To)")
        self.stats["ok"] += 1
        self._apply(request, aor, peer, now)
        return self._listing(aor, now)

    def _ours(self, request: Request) -> bool:
        uri = request.request_uri
        if not isinstance(uri, SipUri):
            return False
        host = strip_brackets(uri.host).lower().rstrip(".")
        if host in self._domains:
            return True
        ip = ip_or_none(host)
        if ip is None:
            return False
        return self.config.any_ip_literal or any(ip_or_none(d) == ip for d in self._domains)

    def _credentials(self, request: Request) -> tuple[Credentials | None, str | None]:
        """The first Authorization for our realm, parsed (None if malformed), and raw.
        Credentials for other realms are not ours to check (RFC 3261 §22.3)."""
        for raw in request.headers.get_lines("Authorization"):
            try:
                credentials = Credentials.parse(raw)
            except AuthError:
                return None, raw  # malformed: verify_header calls it BAD
            if credentials.realm == self.config.realm:
                return credentials, raw
        return None, None

    def _holds(self, user: str, peer: Peer) -> bool:
        ip = ip_or_none(peer.host)
        return any(ip_or_none(b.source.host) == ip for b in self._bindings.get(user, {}).values())

    def _challenge(self, now: float, *, stale: bool = False) -> RegisterAnswer:
        self.stats["challenged"] += 1
        lines = tuple(("WWW-Authenticate", str(c)) for c in self.digest.challenge(now, stale=stale))
        return RegisterAnswer(401, None, lines)

    def _failure(self, peer: Peer, user: str, now: float) -> None:
        self.stats["failures"] += 1
        for lock in self.lockout.failure(peer.host, user, now):
            self._events.append(SourceLockedOut(lock.kind, lock.key, lock.until,
                                                lock.failures, peer))  # fmt: skip

    def _apply(self, request: Request, aor: str, peer: Peer, now: float) -> None:
        contacts = request.contacts
        table = self._bindings.get(aor, {})
        call_id, cseq = request.call_id, request.cseq.number
        if not contacts:
            return  # a query
        if contacts[0].is_wildcard:
            expires = request.headers.get("Expires")
            if len(contacts) != 1 or expires is None or parse_int_header(expires, "Expires"):
                raise _Refused(400, "Wildcard Contact Needs Expires: 0")
            for binding in table.values():
                _check_order(binding, call_id, cseq)
            for binding in list(table.values()):
                self._drop(aor, binding.key)
                self._events.append(BindingRemoved(binding, "unregistered"))
            return
        changes = self._changes(request, contacts)
        for change in changes.values():
            existing = table.get(change.key)
            if existing is not None:
                _check_order(existing, call_id, cseq)
        kept = {k for k in table if k not in changes} | {
            k for k, c in changes.items() if c.expires > 0
        }
        if len(kept) > self.config.max_contacts:
            raise _Refused(403, "Too Many Contacts")
        user_agent = request.headers.get("User-Agent")
        for change in changes.values():
            existing = table.get(change.key)
            if change.expires == 0:
                if existing is not None:
                    self._drop(aor, change.key)
                    self._events.append(BindingRemoved(existing, "unregistered"))
                continue
            if existing is None:
                binding = Binding(aor, change.contact, change.key, peer, call_id, cseq,
                                  now + change.expires, now, user_agent, change.q)  # fmt: skip
                self._put(binding, now, new=True)
                self._events.append(BindingAdded(binding))
            else:
                binding = replace(existing, contact=change.contact, source=peer,
                                  call_id=call_id, cseq=cseq, expires_at=now + change.expires,
                                  user_agent=user_agent, q=change.q)  # fmt: skip
                self._put(binding, now)
                self._events.append(BindingRefreshed(binding))

    def _changes(self, request: Request, contacts: list[Contact]) -> dict[str, _Change]:
        header = request.headers.get("Expires")
        default = self.config.default_expires
        header_expires = default if header is None else parse_int_header(header, "Expires")
        changes: dict[str, _Change] = {}
        for contact in contacts:
            address = contact.address
            if address is None or not isinstance(address.uri, SipUri):
                raise _Refused(400, "Unsupported Contact URI")
            try:
                param = contact.expires
                q = contact.q
            except ParseError as exc:
                raise _Refused(400, exc.reason) from None
            expires = header_expires if param is None else param
            if 0 < expires < self.config.min_expires:
                raise _Refused(423, None, (("Min-Expires", str(self.config.min_expires)),))
            expires = min(expires, self.config.max_expires)
            key = contact_key(address.uri)
            changes[key] = _Change(key, contact_value(address), expires, q)  # last one wins
        return changes

    def _listing(self, aor: str, now: float) -> RegisterAnswer:
        lines = tuple(
            ("Contact", f"{b.contact};expires={_seconds(b.remaining(now))}")
            for b in self.lookup(aor, now)
        )
        return RegisterAnswer(200, None, lines)

    def _date(self, now: float) -> str:
        moment = datetime.fromtimestamp(now + self.wall_offset, UTC)
        return moment.strftime("%a, %d %b %Y %H:%M:%S GMT")  # RFC 3261 §20.17 (C locale)

    # --- the table ------------------------------------------------------------------

    def _current(self, binding: Binding) -> Binding | None:
        return self._bindings.get(binding.aor, {}).get(binding.key)

    def _put(self, binding: Binding, now: float, *, new: bool = False) -> None:
        self._bindings.setdefault(binding.aor, {})[binding.key] = binding
        ident = (binding.aor, binding.key)
        self._expiry.set(ident, binding.expires_at)
        if new:
            self._schedule_qualify(binding, now)

    def _schedule_qualify(self, binding: Binding, now: float) -> None:
        if self.qualify_interval > 0:
            self._qualify.set((binding.aor, binding.key), now + self.qualify_interval)

    def _drop(self, aor: str, key: str) -> Binding | None:
        table = self._bindings.get(aor)
        binding = table.pop(key, None) if table else None
        if table is not None and not table:
            del self._bindings[aor]
        self._expiry.cancel((aor, key))
        self._qualify.cancel((aor, key))
        return binding

    def __len__(self) -> int:
        return sum(len(t) for t in self._bindings.values())


def _aor(request: Request) -> str | None:
    return _user(request.to.uri)


def _user(uri: object) -> str | None:
    return uri.user if isinstance(uri, SipUri) and uri.user else None


def _check_order(binding: Binding, call_id: str, cseq: int) -> None:
    """RFC 3261 §10.3 step 7: the same Call-ID must come with a higher CSeq."""
    if binding.call_id == call_id and cseq <= binding.cseq:
        raise _Refused(500, "Out Of Order Request")


def _seconds(remaining: float) -> int:
    return max(0, math.ceil(remaining - 1e-6))
