"""Brute-force lockout for digest authentication: pure, bounded, driven by ``now``.

Theory of operation. The registrar reports each authentication *failure* (a wrong
digest or a replayed nonce count, never the first unauthenticated challenge) with the
source IP and the user name the credentials claimed. Failures are counted per key,
``ip:<address>`` and ``user:<name>``, over a sliding ``window``. When a key reaches
``max_failures`` inside the window it is locked for ``duration`` seconds: ``failure``
returns a ``Lock`` for it (once, when the lock starts), and ``ip_locked`` /
``user_locked`` answer True until it ends. What a lock means (answer 403, who is
exempt) is the caller's decision; this module only counts.

Memory is bounded: a key's history holds at most ``max_failures`` times, keys whose
last failure left the window are pruned on every call (oldest first, so pruning costs
O(pruned)), and both tables are capped at ``max_entries`` (the least recently failing
key, or the earliest ending lock, is dropped first). An attacker spraying from more
than ``max_entries`` addresses can therefore evict old locks; the cap is large enough
that this costs them far more requests than it saves.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Literal

LockKind = Literal["ip", "user"]


@dataclass(frozen=True)
class LockoutConfig:
    max_failures: int = 5
    "Failures of one source IP, or for one user, within ``window`` that start a lock."
    window: float = 60.0
    "Seconds over which failures are counted."
    duration: float = 300.0
    "Seconds a lock lasts."
    max_entries: int = 10_000
    "Most keys remembered, in the failure table and in the lock table each."

    def __post_init__(self) -> None:
        if self.max_failures < 1 or self.max_entries < 1:
            raise ValueError("max_failures and max_entries must be at least 1")
        if not self.window > 0 or not self.duration > 0:
            raise ValueError("window and duration must be positive seconds")


@dataclass(frozen=True)
class Lock:
    """A lock that has just started."""

    kind: LockKind
    "``ip`` (a source address) or ``user`` (a claimed user name)."
    key: str
    "The address or the user name."
    until: float
    "When it ends (the caller's clock)."
    failures: int
    "Failures counted inside the window when it started."


class Lockout:
    def __init__(self, config: LockoutConfig | None = None) -> None:
        self.config = config or LockoutConfig()
        # key -> failure times (newest last); ordered by the time of the last failure.
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        # key -> lock end; ordered by start, so by end (the duration is constant).
        self._locks: OrderedDict[str, float] = OrderedDict()

    # --- queries --------------------------------------------------------------------

    def ip_locked(self, ip: str, now: float) -> bool:
        return self._locked(f"ip:{ip}", now)

    def user_locked(self, user: str, now: float) -> bool:
        return self._locked(f"user:{user}", now)

    def _locked(self, key: str, now: float) -> bool:
        self._prune(now)
        until = self._locks.get(key)
        return until is not None and now < until

    def __len__(self) -> int:
        """Keys held (failure histories plus locks), for leak checks."""
        return len(self._failures) + len(self._locks)

    # --- input ----------------------------------------------------------------------

    def failure(self, ip: str, user: str | None, now: float) -> list[Lock]:
        """Count one failed authentication; returns the locks it started (0, 1 or 2)."""
        self._prune(now)
        started = []
        keys: list[tuple[LockKind, str]] = [("ip", ip)]
        if user:
            keys.append(("user", user))
        for kind, name in keys:
            lock = self._count(kind, name, now)
            if lock is not None:
                started.append(lock)
        return started

    def _count(self, kind: LockKind, name: str, now: float) -> Lock | None:
        key = f"{kind}:{name}"
        config = self.config
        history = self._failures.get(key)
        if history is None:
            history = self._failures[key] = deque(maxlen=config.max_failures)
            if len(self._failures) > config.max_entries:
                self._failures.popitem(last=False)
        else:
            self._failures.move_to_end(key)
        history.append(now)
        while history and history[0] <= now - config.window:
            history.popleft()
        if len(history) < config.max_failures or key in self._locks:
            return None
        until = now + config.duration
        self._locks[key] = until
        if len(self._locks) > config.max_entries:
            self._locks.popitem(last=False)
        count = len(history)
        del self._failures[key]  # a fresh count starts when the lock ends
        return Lock(kind, name, until, count)

    def _prune(self, now: float) -> None:
        horizon = now - self.config.window
        failures = self._failures
        while failures:
            key, history = next(iter(failures.items()))
            if history and history[-1] > horizon:
                break
            del failures[key]
        locks = self._locks
        while locks:
            key, until = next(iter(locks.items()))
            if until > now:
                break
            del locks[key]
