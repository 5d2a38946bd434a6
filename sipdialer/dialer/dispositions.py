"""What happens to a member after an attempt (dialer-semantics §3 and §4).

:func:`decide` judges one finished attempt, :func:`apply_result` applies a status-API result
to a member that waits for one, :func:`result_deadline_passed` handles the wrap-up deadline
passing with no result, :func:`check_expired` ends a member past its ``expire``. Each returns
a frozen :class:`Disposition` that carries the member's new :class:`MemberState`; nothing is
mutated. :func:`choose_number` and :func:`next_communication` are the number rules.

Rules of :func:`decide`, first match wins (§3):

1. ``manager_request`` -> the member ends with MANAGER_REQUEST (attempt not counted).
2. ``agent_leg_failed`` -> REFUND: not counted, the member is offered again at once (§1).
   ``not_sent`` (the dialer's own trunk gate refused the member leg: NORMAL_CIRCUIT_ or
   SWITCH_CONGESTION with no SIP answer and no ringing) -> MINUS: not counted, retry
   after ``retry_wait`` (not at once: the gate is likely still full). The member was
   never dialed, so it is not the member's failure.
3. the campaign waits for a result and the agent leg was connected -> WAITING: no verdict,
   the member is not dialed (``next_call_at`` None) until :func:`apply_result` or
   :func:`result_deadline_passed`. The SIP cause is not judged (§4), whatever it is.
3a. ``shutdown`` (the dialer hung up to shut down, its own SYSTEM_SHUTDOWN, in no cause
   list): bridged with ``talk_seconds >= min_success_duration`` -> OK, the member ends
   NORMAL_CLEARING; anything else -> REFUND, not counted and due at once (as a crash's
   PROCESS_CRASH): the dialer, not the member, cut the try short.
4. cause in Minus -> MINUS: not counted, next attempt ``retry_wait`` later.
5. cause in OK, bridged and ``talk_seconds >= min_success_duration`` -> OK: counted, the
   member ends with the cause (NORMAL_CLEARING with the default lists; Webitel kept the
   cause). Not bridged or too short: RETRY.
6. cause in Retry, or in no list -> RETRY: counted; at ``max_retries`` counted attempts the
   member ends with MAX_TRY_COUNT, else next attempt ``retry_wait`` later.
7. cause in Error -> ERROR: counted, the dialed number is stopped; no active number left:
   the member ends with the cause; else MAX_TRY_COUNT at the limit (as Webitel), else the
   next attempt (on another number) ``retry_wait`` later.
8. expiry: a member whose next attempt would be at or after ``expire`` ends with
   MEMBER_EXPIRED (it could never be dialed); the kind still says how the attempt was judged.

Counting: ``MemberState.attempts`` are the attempts counted *before* the one judged;
``Disposition.attempts_delta`` (0 or 1) is added to it and to the dialed number's own
counter (one per number, for reports; both always move together). A refund never touches
the counters. ``max_retries`` is the number of counted attempts after which a member ends.

Times are aware ``datetime`` (UTC) so that ``next_call_at`` and ``expire`` compare with the
store and the calendar. Pure code: no IO, no clock, no pydantic at run time.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import Enum, StrEnum
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from sipdialer.config import CampaignConfig

NORMAL_CLEARING = "NORMAL_CLEARING"
MANAGER_REQUEST = "MANAGER_REQUEST"
MAX_TRY_COUNT = "MAX_TRY_COUNT"
MEMBER_EXPIRED = "MEMBER_EXPIRED"
PRIORITY_MAX = 2**31 - 1
"The highest number priority the store keeps (32-bit integer columns)."
NO_COMMUNICATIONS = "NO_COMMUNICATIONS"
"""The member's end cause when a status result stopped all its numbers without success."""


class DispositionKind(StrEnum):
    """How an attempt was judged; the values are what the attempt record stores."""

    OK = "ok"
    RETRY = "retry"
    ERROR = "error"
    MINUS = "minus"
    WAITING = "waiting"
    REFUND = "refund"  # agent leg failed: the member was not dialed
    MANAGER_REQUEST = "manager_request"
    EXPIRED = "expired"  # check_expired: no attempt, the member is past ``expire``


class NotWaiting(ValueError):
    """A status result (or a result deadline) for a member that is not waiting (HTTP 409)."""


class CauseClassifier(Protocol):
    """Which disposition list holds a cause (``config.CauseLists`` is one)."""

    def list_of(self, cause: str) -> str | None: ...


@dataclass(frozen=True, slots=True)
class CauseSets:
    """A :class:`CauseClassifier` from four collections of cause names."""

    error: Collection[str] = ()
    retry: Collection[str] = ()
    ok: Collection[str] = ()
    minus: Collection[str] = ()

    def list_of(self, cause: str) -> str | None:
        for which in ("minus", "ok", "retry", "error"):  # the order of config.CauseLists
            if cause in getattr(self, which):
                return which
        return None


@dataclass(frozen=True, slots=True)
class DispositionPolicy:
    """The campaign settings the rules read."""

    causes: CauseClassifier
    retry_wait: float = 600.0
    max_retries: int = 3
    min_success_duration: float = 10.0
    wait_for_result: bool = False
    refund_missed_result: bool = False
    "No status result before the deadline: refund the attempt (True) or count it (False)."

    @classmethod
    def from_config(
        cls, campaign: CampaignConfig, *, refund_missed_result: bool = False
    ) -> DispositionPolicy:
        return cls(
            causes=campaign.effective_causes(),
            retry_wait=float(campaign.retry_wait),
            max_retries=campaign.max_retries,
            min_success_duration=float(campaign.min_success_duration),
            wait_for_result=campaign.wait_for_result,
            refund_missed_result=refund_missed_result,
        )


@dataclass(frozen=True, slots=True)
class Number:
    """One of a member's numbers (a Webitel "communication")."""

    number: str
    priority: int = 0  # higher first
    active: bool = True  # False once stopped (Error cause, status API)
    attempts: int = 0
    last_tried: datetime | None = None


@dataclass(frozen=True, slots=True)
class MemberState:
    numbers: tuple[Number, ...]
    attempts: int = 0
    expire: datetime | None = None
    next_call_at: datetime | None = None  # None: now (or, when waiting/ended, never)
    waiting_on: str | None = None  # the number whose attempt waits for a status result
    ended_with: str | None = None  # the member's end cause once it ended

    @property
    def ended(self) -> bool:
        return self.ended_with is not None

    @property
    def waiting(self) -> bool:
        return self.waiting_on is not None

    @property
    def active_numbers(self) -> tuple[Number, ...]:
        return tuple(n for n in self.numbers if n.active)

    def number(self, number: str) -> Number | None:
        return next((n for n in self.numbers if n.number == number), None)


@dataclass(frozen=True, slots=True)
class AttemptOutcome:
    """A finished attempt, as the call layer saw it."""

    cause: str | Enum  # the member leg's cause name (a HangupCause is taken by name)
    now: datetime
    number: str | None = None  # the number dialed; None: the one choose_number gives
    bridged: bool = False
    talk_seconds: float = 0.0  # bridge -> hangup
    agent_connected: bool = False  # the agent answered (agent-first order)
    agent_leg_failed: bool = False  # the agent leg failed: the member was never dialed
    manager_request: bool = False  # terminated through the API
    shutdown: bool = False  # the dialer itself hung up to shut down (SYSTEM_SHUTDOWN)
    not_sent: bool = False  # the dialer's own trunk gate refused: the member leg never left

    @property
    def cause_name(self) -> str:
        return self.cause.name if isinstance(self.cause, Enum) else self.cause


@dataclass(frozen=True, slots=True)
class StatusResult:
    """The body of ``PUT .../members/{member}/status`` (§4)."""

    success: bool = False
    reset_retries: bool = False
    next_after_sec: float | None = None
    next_communication: str | None = None
    stop_communications: Literal["all"] | tuple[str, ...] = ()
    comment: str = ""


@dataclass(frozen=True, slots=True)
class Disposition:
    kind: DispositionKind
    member: MemberState  # the member after this disposition
    cause: str | None  # the cause judged; None for a status result or a missed deadline
    attempts_delta: int = 0
    stopped: tuple[str, ...] = ()  # numbers stopped by this disposition
    rule: str = ""  # which rule applied, for the log and the attempt record
    comment: str = ""  # the status result's comment

    @property
    def member_ends_with(self) -> str | None:
        return self.member.ended_with

    @property
    def next_call_at(self) -> datetime | None:
        return self.member.next_call_at

    @property
    def ended(self) -> bool:
        return self.member.ended


# --- numbers -------------------------------------------------------------------------------


def choose_number(member: MemberState) -> Number | None:
    """The active number with the highest priority; among equals the least recently tried
    (never tried first, then list order). None when no number is active."""
    active = [(i, n) for i, n in enumerate(member.numbers) if n.active]
    if not active:
        return None

    def key(item: tuple[int, Number]) -> tuple[int, bool, float, int]:
        index, n = item
        last = n.last_tried.timestamp() if n.last_tried else 0.0
        return (-n.priority, n.last_tried is not None, last, index)

    return min(active, key=key)[1]


def next_communication(member: MemberState, number: str) -> MemberState:
    """Put ``number`` above all others (adding it when new), active."""
    others = [n.priority for n in member.numbers if n.number != number]
    # Capped: the store's priority column is a 32-bit integer (an overflow is an error
    # on PostgreSQL). At the cap it ties with the top: the untried number still goes first.
    top = min(max(others) + 1, PRIORITY_MAX) if others else 0
    existing = member.number(number)
    if existing is None:
        return replace(member, numbers=(*member.numbers, Number(number, priority=top)))
    raised = replace(existing, active=True, priority=max(existing.priority, top))
    return _with_number(member, raised)


def _with_number(member: MemberState, new: Number) -> MemberState:
    numbers = tuple(new if n.number == new.number else n for n in member.numbers)
    return replace(member, numbers=numbers)


def _stop(
    member: MemberState, which: Collection[str] | None
) -> tuple[MemberState, tuple[str, ...]]:
    """Stop the active numbers in ``which`` (None: all); returns the ones stopped."""
    stopped = tuple(
        n.number for n in member.numbers if n.active and (which is None or n.number in which)
    )
    numbers = tuple(replace(n, active=False) if n.number in stopped else n for n in member.numbers)
    return replace(member, numbers=numbers), stopped


def _count(
    member: MemberState, number: str | None, delta: int, tried_at: datetime | None
) -> MemberState:
    """Add ``delta`` to the member's and the number's counters; stamp ``tried_at`` if given."""
    member = replace(member, attempts=member.attempts + delta)
    dialed = member.number(number) if number is not None else None
    if dialed is None:
        return member
    last = dialed.last_tried if tried_at is None else tried_at
    return _with_number(member, replace(dialed, attempts=dialed.attempts + delta, last_tried=last))


def _reschedule(member: MemberState, at: datetime) -> MemberState:
    """Next attempt at ``at``, or MEMBER_EXPIRED when that is at/after ``expire`` (rule 8)."""
    if member.expire is not None and at >= member.expire:
        return replace(member, next_call_at=None, ended_with=MEMBER_EXPIRED)
    return replace(member, next_call_at=at)


def _end(member: MemberState, cause: str) -> MemberState:
    return replace(member, next_call_at=None, waiting_on=None, ended_with=cause)


def _after_counted_failure(
    member: MemberState, policy: DispositionPolicy, at: datetime, *, limit: bool = True
) -> MemberState:
    """A counted failed try (attempts already added): MAX_TRY_COUNT, or retry at ``at``."""
    if limit and member.attempts >= policy.max_retries:
        return _end(member, MAX_TRY_COUNT)
    return _reschedule(member, at)


# --- §3: judging an attempt ------------------------------------------------------------------


def decide(outcome: AttemptOutcome, member: MemberState, policy: DispositionPolicy) -> Disposition:
    """The disposition of one finished attempt of ``member`` (rules in the module doc)."""
    if member.ended or member.waiting:
        state = "ended" if member.ended else "waiting for a result"
        raise ValueError(f"the member is {state}; it has no attempt to judge")
    now, cause = outcome.now, outcome.cause_name
    number = outcome.number
    if number is None:
        chosen = choose_number(member)
        number = chosen.number if chosen else None
    elif member.number(number) is None:
        raise ValueError(f"{number!r} is not a number of this member")
    retry_at = now + timedelta(seconds=policy.retry_wait)
    base = replace(member, waiting_on=None)

    if outcome.manager_request:
        return Disposition(
            DispositionKind.MANAGER_REQUEST,
            _end(base, MANAGER_REQUEST),
            cause,
            rule="manager request",
        )
    if outcome.agent_leg_failed:
        return Disposition(
            DispositionKind.REFUND,
            _reschedule(base, now),
            cause,
            rule="agent leg failed: refunded, offered again at once",
        )
    if outcome.not_sent:
        return Disposition(
            DispositionKind.MINUS,
            _reschedule(base, retry_at),
            cause,
            rule="the dialer's trunk gate refused, member not dialed: refunded, retry after"
            " retry_wait",
        )
    if policy.wait_for_result and outcome.agent_connected:
        waiting = _count(base, number, 0, now)
        waiting = replace(waiting, next_call_at=None, waiting_on=number or "")
        return Disposition(
            DispositionKind.WAITING, waiting, cause, rule="waiting for the status result"
        )

    if outcome.shutdown:
        if outcome.bridged and outcome.talk_seconds >= policy.min_success_duration:
            counted = _count(base, number, 1, now)
            return Disposition(
                DispositionKind.OK,
                _end(counted, NORMAL_CLEARING),
                cause,
                1,
                rule="shutdown after a conversation: ok",
            )
        return Disposition(
            DispositionKind.REFUND,
            _reschedule(base, now),
            cause,
            rule="shutdown: refunded (as PROCESS_CRASH)",
        )
    which = policy.causes.list_of(cause)
    if which == "minus":
        tried = _count(base, number, 0, now)
        return Disposition(
            DispositionKind.MINUS,
            _reschedule(tried, retry_at),
            cause,
            rule="minus: refunded, retry after retry_wait",
        )
    counted = _count(base, number, 1, now)
    if which == "ok":
        if outcome.bridged and outcome.talk_seconds >= policy.min_success_duration:
            return Disposition(DispositionKind.OK, _end(counted, cause), cause, 1, rule="ok")
        why = "not bridged" if not outcome.bridged else "talk shorter than min_success_duration"
        after = _after_counted_failure(counted, policy, retry_at)
        return Disposition(DispositionKind.RETRY, after, cause, 1, rule=f"ok, {why}: retry")
    if which == "error":
        stopped_member, stopped = _stop(counted, {number} if number is not None else ())
        if not stopped_member.active_numbers:
            ended = _end(stopped_member, cause)
            return Disposition(
                DispositionKind.ERROR,
                ended,
                cause,
                1,
                stopped,
                rule="error: last active number stopped",
            )
        after = _after_counted_failure(stopped_member, policy, retry_at)
        return Disposition(
            DispositionKind.ERROR, after, cause, 1, stopped, rule="error: number stopped"
        )
    rule = "retry" if which == "retry" else "cause in no list: counted like retry"
    after = _after_counted_failure(counted, policy, retry_at)
    return Disposition(DispositionKind.RETRY, after, cause, 1, rule=rule)


def check_expired(member: MemberState, now: datetime) -> Disposition | None:
    """Rule 8 before dialing: a member at/past ``expire`` ends with MEMBER_EXPIRED."""
    if member.ended or member.expire is None or now < member.expire:
        return None
    return Disposition(
        DispositionKind.EXPIRED, _end(member, MEMBER_EXPIRED), MEMBER_EXPIRED, rule="member expired"
    )


# --- §4: waiting for result ------------------------------------------------------------------


def apply_result(
    member: MemberState, result: StatusResult, policy: DispositionPolicy, now: datetime
) -> Disposition:
    """Apply a status result to a waiting member.

    The waiting attempt is counted. ``success``: OK, the member ends with NORMAL_CLEARING and
    all numbers stop. Otherwise, in this order: ``stop_communications`` stops numbers,
    ``next_communication`` puts a number on top (so "all" + a new number leaves just that
    one), ``reset_retries`` zeroes the member's and every number's counter. Then: no active
    number left -> the member ends with NO_COMMUNICATIONS; ``max_retries`` reached (and not
    reset) -> MAX_TRY_COUNT; else the next attempt ``next_after_sec`` (else ``retry_wait``)
    later, subject to ``expire``. Raises :class:`NotWaiting` for a member not waiting.
    """
    _check_waiting(member)
    counted = replace(_count(member, member.waiting_on, 1, None), waiting_on=None)
    if result.success:
        stopped_member, stopped = _stop(counted, None)
        return Disposition(
            DispositionKind.OK,
            _end(stopped_member, NORMAL_CLEARING),
            None,
            1,
            stopped,
            rule="status result: success",
            comment=result.comment,
        )
    which = None if result.stop_communications == "all" else result.stop_communications
    state, stopped = _stop(counted, which)
    if result.next_communication:
        state = next_communication(state, result.next_communication)
        stopped = tuple(n for n in stopped if n != result.next_communication)
    if result.reset_retries:
        state = replace(
            state, attempts=0, numbers=tuple(replace(n, attempts=0) for n in state.numbers)
        )
    wait = policy.retry_wait if result.next_after_sec is None else result.next_after_sec
    if not state.active_numbers:
        state, rule = _end(state, NO_COMMUNICATIONS), "status result: every number stopped"
    else:
        state = _after_counted_failure(
            state, policy, now + timedelta(seconds=wait), limit=not result.reset_retries
        )
        rule = "status result: retry"
    return Disposition(
        DispositionKind.RETRY, state, None, 1, stopped, rule=rule, comment=result.comment
    )


def result_deadline_passed(
    member: MemberState, policy: DispositionPolicy, now: datetime
) -> Disposition:
    """The wrap-up deadline passed with no status result: a failed try (Retry rules), or a
    refund (Minus: retry after ``retry_wait``) with ``policy.refund_missed_result``."""
    _check_waiting(member)
    retry_at = now + timedelta(seconds=policy.retry_wait)
    base = replace(member, waiting_on=None)
    if policy.refund_missed_result:
        return Disposition(
            DispositionKind.MINUS,
            _reschedule(base, retry_at),
            None,
            rule="no status result: refunded",
        )
    counted = _count(base, member.waiting_on, 1, None)  # stamped when it was tried
    after = _after_counted_failure(counted, policy, retry_at)
    return Disposition(
        DispositionKind.RETRY, after, None, 1, rule="no status result: counted like retry"
    )


def _check_waiting(member: MemberState) -> None:
    if not member.waiting or member.ended:
        raise NotWaiting("the member is not waiting for a result")
