"""Session timers (RFC 4028): Session-Expires / Min-SE, who refreshes, when to hang up.

Theory of operation. A session timer is a contract made by each 2xx to an INVITE,
re-INVITE or UPDATE: the session lives ``interval`` seconds unless refreshed, and the
``refresher`` parameter says which end of *that transaction* refreshes (``uac``: the
side that sent the request; ``uas``: the side that answered it). Roles are per
transaction, not per dialog (§7.4, §9), so every function here says whether we sent the
request (``we_are_uac``).

* ``session_timer_from_answer(request, response, now, we_are_uac=...)``: the timer a 2xx
  establishes, or ``None`` when the 2xx carries no Session-Expires ("no session
  expiration", §7.2). **Decision: as UAC we offer no timer** (``SessionTimerPolicy.offer``
  is off; the UA still sends ``Supported: timer``), but when a trunk's 2xx carries one we
  honour it. A 2xx whose Session-Expires has no ``refresher`` (only a broken UAS or proxy
  sends that) is taken as ``uac``: better a refresh too many than a call cut off. A
  Session-Expires below our request's Min-SE (absent: ``MIN_SE`` = 90 s, §4/§5) is
  raised to it: the far end broke the contract, and honouring 1 s would mean a refresh
  twice a second.
* ``session_timer_for_request(request, now)``: for an INVITE/re-INVITE/UPDATE we are
  about to answer 2xx (§9). Returns the timer and the headers our 2xx must carry, or
  raises ``SessionIntervalTooSmall`` (answer 422 with its ``headers``: Min-SE). The
  refresher of our answer follows the §9 table::

      UAC supports?   refresher in request   refresher in our 2xx
      N               none                   uas
      Y               none                   uac   (decision: the asker refreshes)
      Y               uac                    uac
      Y               uas                    uas

  ``Require: timer`` goes in every 2xx to a UAC that supports timers (a MUST for
  refresher=uac, a SHOULD for uas). We never raise or lower the interval asked for,
  except: below our minimum (``MIN_SE`` = 90 s, §5) a UAC supporting timers gets 422,
  and one that does not (a proxy inserted the header, §8.1) could not act on a 422, so
  we raise the interval to our minimum instead (a deliberate deviation from "MUST NOT
  increase", which only a non-compliant value below 90 s can trigger).
* ``SessionTimer``: ``get_timer()`` / ``handle_timer(now)`` like every core. If we refresh,
  ``REFRESH`` fires at half the interval (§10, RECOMMENDED); send ``refresh_method``
  (UPDATE when the peer's Allow lists it: no offer/answer needed; else a re-INVITE)
  with ``refresh_headers()``, then build the next timer from its 2xx. Whoever refreshes,
  ``EXPIRE`` fires at ``expires_at = start + interval - min(32, interval/3)`` (§10: the
  BYE goes out before the session would expire): send BYE. A refresh received and
  answered restarts the contract: build a new timer with ``session_timer_for_request``.
* ``retry_after_422(request, response)``: §7.3, the headers of the retry after a 422
  (Session-Expires and Min-SE at the largest Min-SE seen), or ``None`` when it would
  not help.

Pure: ``now`` is the calls layer's clock in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, StrEnum, auto

from sipdialer.sip.errors import ParseError
from sipdialer.sip.grammar import WS, is_digits, param_value, parse_params
from sipdialer.sip.message import Message, Request, Response

__all__ = [
    "DEFAULT_INTERVAL", "MAX_BYE_MARGIN", "MIN_SE", "Refresher", "SessionExpires",
    "SessionIntervalTooSmall", "SessionTimer", "SessionTimerAction", "SessionTimerPolicy",
    "offer_headers", "parse_min_se", "parse_session_expires", "retry_after_422",
    "session_timer_for_request", "session_timer_from_answer", "supports_timer",
]  # fmt: skip

MIN_SE = 90
"RFC 4028 §5: no minimum may be below 90 s; ours is exactly that."
DEFAULT_INTERVAL = 1800
"RFC 4028 §4: the RECOMMENDED Session-Expires when one is offered."
MAX_BYE_MARGIN = 32.0
"RFC 4028 §10: the BYE goes out min(32 s, interval/3) before the session expires."
_MAX_DELTA = 2**32 - 1


class Refresher(StrEnum):
    UAC = "uac"
    UAS = "uas"


@dataclass(frozen=True)
class SessionExpires:
    """A Session-Expires value (compact form ``x``): ``1800;refresher=uac``."""

    interval: int
    "delta-seconds."
    refresher: Refresher | None = None

    def __str__(self) -> str:
        return f"{self.interval}" + (f";refresher={self.refresher}" if self.refresher else "")


def _delta_seconds(text: str, name: str) -> int:
    text = text.strip(WS)
    if not is_digits(text) or len(text) > 10 or int(text) > _MAX_DELTA:
        raise ParseError(f"bad {name} {text[:40]!r}")
    return int(text)


def parse_session_expires(value: str) -> SessionExpires:
    """``delta-seconds *(;se-params)``; an unknown refresher value is ignored (as a
    generic-param would be). Raises ``ParseError``."""
    head, semi, rest = value.partition(";")
    interval = _delta_seconds(head, "Session-Expires")
    params = parse_params(semi + rest) if semi else ()
    refresher = (param_value(params, "refresher") or "").lower()
    return SessionExpires(interval, Refresher(refresher) if refresher in ("uac", "uas") else None)


def parse_min_se(value: str) -> int:
    """``delta-seconds *(;generic-param)``. Raises ``ParseError``."""
    head, semi, rest = value.partition(";")
    if semi:
        parse_params(semi + rest)
    return _delta_seconds(head, "Min-SE")


def supports_timer(message: Message) -> bool:
    """``timer`` in Supported (compact ``k``) or Require."""
    tags = message.headers.get_all("Supported") + message.headers.get_all("Require")
    return any(tag.strip(WS).lower() == "timer" for tag in tags)


def _session_expires(message: Message) -> SessionExpires | None:
    value = message.headers.get("Session-Expires")
    return None if value is None else parse_session_expires(value)


def _min_se(message: Message) -> int | None:
    value = message.headers.get("Min-SE")
    return None if value is None else parse_min_se(value)


def _allows_update(message: Message) -> bool:
    return any(m.strip(WS).upper() == "UPDATE" for m in message.headers.get_all("Allow"))


@dataclass(frozen=True)
class SessionTimerPolicy:
    """Our side of session timers."""

    min_se: int = MIN_SE
    "Shortest interval we accept (the Min-SE of our 422); at least 90 (§5)."
    offer: bool = False
    "Ask for a timer in our own INVITEs (``offer_headers``); off: we only honour one."
    interval: int = DEFAULT_INTERVAL
    "The Session-Expires we offer when ``offer`` is on."
    refresher_when_unspecified: Refresher = Refresher.UAC
    "§9 table, row 2: who refreshes when a supporting UAC leaves it to us."

    def __post_init__(self) -> None:
        if self.min_se < MIN_SE:
            raise ValueError(f"min_se must be >= {MIN_SE} (RFC 4028 §5), got {self.min_se}")
        if self.interval < self.min_se:
            raise ValueError(f"interval {self.interval} is below min_se {self.min_se}")


DEFAULT_POLICY = SessionTimerPolicy()


class SessionIntervalTooSmall(Exception):
    """Answer the request 422 with ``headers`` (Min-SE: our minimum), RFC 4028 §6, §9."""

    status_code = 422

    def __init__(self, min_se: int, requested: int) -> None:
        super().__init__(f"Session-Expires {requested} is below our minimum {min_se}")
        self.min_se = min_se
        self.requested = requested
        self.headers = [("Min-SE", str(min_se))]


class SessionTimerAction(Enum):
    REFRESH = auto()
    "Send ``refresh_method`` with ``refresh_headers()`` now."
    EXPIRE = auto()
    "No refresh came (or ours failed) in time: send BYE (§10)."


class SessionTimer:
    """One session-timer contract; see the module docstring."""

    def __init__(
        self,
        interval: int,
        refresher: Refresher,
        we_refresh: bool,
        started_at: float,
        *,
        refresh_method: str = "INVITE",
        min_se: int | None = None,
    ) -> None:
        if interval <= 0:
            raise ValueError(f"interval must be positive, got {interval}")
        self.interval = interval
        "Session interval, seconds."
        self.refresher = refresher
        "The refresher parameter as agreed in the 2xx (a role in that transaction)."
        self.we_refresh = we_refresh
        self.started_at = started_at
        self.refresh_method = refresh_method
        "UPDATE when the peer allows it, else INVITE (a re-INVITE needs an SDP offer)."
        self.min_se = min_se
        "The Min-SE in force for this dialog (repeated in our refreshes, §7.4)."
        self.refresh_at: float | None = started_at + interval / 2 if we_refresh else None
        "When we send our refresh (half the interval, §10); None if the peer refreshes."
        self.expires_at = started_at + interval - min(MAX_BYE_MARGIN, interval / 3)
        "When we send BYE unless a refresh restarted the timer (§10)."
        self.refresh_sent = False
        self.expired = False

    def get_timer(self) -> float | None:
        """The next deadline: our refresh, else the expiry; None once expired."""
        if self.expired:
            return None
        if self.refresh_at is not None and not self.refresh_sent:
            return min(self.refresh_at, self.expires_at)
        return self.expires_at

    def handle_timer(self, now: float) -> SessionTimerAction | None:
        """What is due at *now*, at most one action per call. Spurious calls are harmless."""
        if self.expired:
            return None
        if now >= self.expires_at:
            self.expired = True
            return SessionTimerAction.EXPIRE
        if self.refresh_at is not None and not self.refresh_sent and now >= self.refresh_at:
            self.refresh_sent = True
            return SessionTimerAction.REFRESH
        return None

    def refresh_again_at(self, at: float) -> None:
        """Our refresh failed harmlessly (491 Request Pending, §14.1 of RFC 3261): try
        again at *at* (still bounded by ``expires_at``)."""
        if self.we_refresh and not self.expired:
            self.refresh_at = at
            self.refresh_sent = False

    def refresh_headers(self) -> list[tuple[str, str]]:
        """Headers of our refresh request (§7.4): we send it and we refresh, so uac."""
        headers = [
            ("Session-Expires", str(SessionExpires(self.interval, Refresher.UAC))),
            ("Supported", "timer"),
        ]
        if self.min_se is not None:
            headers.append(("Min-SE", str(self.min_se)))
        return headers

    def __repr__(self) -> str:
        who = "we refresh" if self.we_refresh else "peer refreshes"
        return f"<SessionTimer {self.interval}s refresher={self.refresher} ({who})>"


def session_timer_from_answer(
    request: Request, response: Response, now: float, *, we_are_uac: bool
) -> SessionTimer | None:
    """The timer a 2xx sets up (§7.2 when we sent *request*, §9 when we answered it).

    ``None`` for a non-2xx, a 2xx without Session-Expires, or a malformed one (the
    session is then untimed: we never hang up on a value we cannot read).
    """
    if not 200 <= response.status_code < 300:
        return None
    try:
        expires = _session_expires(response)
        min_se = _min_se(request)
    except ParseError:
        return None
    if expires is None or expires.interval == 0:
        return None
    # §4/§5: our request's Min-SE (absent: 90 s) bounds what a 2xx may set. A far end
    # that gives less is raised to that floor, never honoured (a 1 s Session-Expires
    # would have us refresh twice a second for the whole call).
    interval = max(expires.interval, min_se or 0, MIN_SE)
    refresher = expires.refresher or Refresher.UAC
    we_refresh = (refresher is Refresher.UAC) == we_are_uac
    peer = response if we_are_uac else request
    method = "UPDATE" if _allows_update(peer) else "INVITE"
    return SessionTimer(interval, refresher, we_refresh, now,
                        refresh_method=method, min_se=min_se)  # fmt: skip


def session_timer_for_request(
    request: Request, now: float, policy: SessionTimerPolicy = DEFAULT_POLICY
) -> tuple[SessionTimer | None, list[tuple[str, str]]]:
    """For a request we answer 2xx: the timer, and the headers our 2xx carries.

    ``(None, [])`` when the request asks for no timer (we do not ask for one either).
    Raises ``SessionIntervalTooSmall`` (answer 422) and ``ParseError`` for a malformed
    Session-Expires or Min-SE (answer 400).
    """
    expires = _session_expires(request)
    if expires is None:
        return None, []
    request_min = _min_se(request) or 0
    supported = supports_timer(request)
    interval = max(expires.interval, request_min)
    if interval < policy.min_se:
        if supported:
            raise SessionIntervalTooSmall(max(policy.min_se, request_min), expires.interval)
        interval = policy.min_se  # see the module docstring: a UAC that cannot retry
    if not supported:
        refresher = Refresher.UAS
    else:
        refresher = expires.refresher or policy.refresher_when_unspecified
    headers = [("Session-Expires", str(SessionExpires(interval, refresher)))]
    if supported:
        headers.append(("Require", "timer"))
    method = "UPDATE" if _allows_update(request) else "INVITE"
    timer = SessionTimer(interval, refresher, refresher is Refresher.UAS, now,
                         refresh_method=method, min_se=request_min or None)  # fmt: skip
    return timer, headers


def offer_headers(policy: SessionTimerPolicy = DEFAULT_POLICY) -> list[tuple[str, str]]:
    """Session-Expires/Min-SE for our own INVITE; ``[]`` unless ``policy.offer`` (§7.1)."""
    if not policy.offer:
        return []
    return [("Session-Expires", str(policy.interval)), ("Min-SE", str(policy.min_se))]


def retry_after_422(request: Request, response: Response) -> list[tuple[str, str]] | None:
    """§7.3: after a 422, the Session-Expires and Min-SE of the retry (both at the
    larger of the 422's Min-SE and any Min-SE we sent). ``None`` when it is no 422,
    has no usable Min-SE, or asks for no more than we already sent (a loop)."""
    if response.status_code != 422:
        return None
    try:
        wanted = _min_se(response)
        sent = _session_expires(request)
        sent_min = _min_se(request) or 0
    except ParseError:
        return None
    if wanted is None or (sent is not None and wanted <= sent.interval):
        return None
    new = max(wanted, sent_min)
    return [("Session-Expires", str(new)), ("Min-SE", str(new))]
