"""RFC 3261 transaction timers and a small deadline book-keeper.

Nothing here reads a clock. Callers pass ``now`` (seconds from any monotonic origin)
and ask "when is the next deadline?"; the IO shell does the waiting (STYLE.md §2.3).

``TimerConfig`` holds the three RFC bases (T1, T2, T4) and derives every timer of
RFC 3261 §17 table 4, plus Timer L and Timer M of RFC 6026. Timer C (the proxy's
INVITE timeout) is left out: this stack is never a stateful proxy. On a reliable
transport Timers D, I, J and K are zero, meaning "move on at once".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum, auto
from typing import Generic, TypeVar


class TimerName(Enum):
    """The RFC names (``TimerName.B`` is "Timer B"), plus two of this stack's own."""

    A = auto()  # INVITE request retransmit interval (unreliable only)
    B = auto()  # INVITE transaction timeout
    D = auto()  # wait time for response retransmissions (client INVITE, Completed)
    E = auto()  # non-INVITE request retransmit interval (unreliable only)
    F = auto()  # non-INVITE transaction timeout
    G = auto()  # INVITE final response retransmit interval (unreliable only)
    H = auto()  # wait time for ACK receipt
    I = auto()  # noqa: E741 -- RFC name. Wait time for ACK retransmissions
    J = auto()  # wait time for non-INVITE request retransmissions
    K = auto()  # wait time for non-INVITE response retransmissions
    L = auto()  # RFC 6026: server INVITE, wait time for 2xx-INVITE retransmissions
    M = auto()  # RFC 6026: client INVITE, wait time for 2xx retransmissions
    TRYING = auto()  # §17.2.1: send 100 Trying unless the TU answers within 200 ms
    CANCEL_WAIT = auto()  # §9.1: give up on an INVITE 64*T1 after CANCEL was sent


@dataclass(frozen=True, slots=True)
class TimerConfig:
    """Base timer values in seconds (RFC 3261 §17, table 4). Validated on creation."""

    t1: float = 0.5
    "RTT estimate; the initial retransmit interval."
    t2: float = 4.0
    "Cap on the retransmit interval of non-INVITE requests and INVITE final responses."
    t4: float = 5.0
    "Longest time a message may stay in the network."

    def __post_init__(self) -> None:
        for name in ("t1", "t2", "t4"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
        if self.t1 > self.t2:
            raise ValueError(f"need t1 <= t2, got t1={self.t1} t2={self.t2}")

    # -- fixed timers -------------------------------------------------------------

    @property
    def timer_a(self) -> float:
        """Initial INVITE retransmit interval; it doubles each time, with no cap."""
        return self.t1

    @property
    def timer_b(self) -> float:
        """INVITE client transaction timeout."""
        return 64 * self.t1

    @property
    def timer_e(self) -> float:
        """Initial non-INVITE retransmit interval; doubles up to T2."""
        return self.t1

    @property
    def timer_f(self) -> float:
        """Non-INVITE client transaction timeout."""
        return 64 * self.t1

    @property
    def timer_g(self) -> float:
        """Initial INVITE final-response retransmit interval; doubles up to T2."""
        return self.t1

    @property
    def timer_h(self) -> float:
        """How long an INVITE server waits for the ACK of a non-2xx final response."""
        return 64 * self.t1

    @property
    def timer_l(self) -> float:
        """RFC 6026: how long an INVITE server stays Accepted after sending a 2xx."""
        return 64 * self.t1

    @property
    def timer_m(self) -> float:
        """RFC 6026: how long an INVITE client stays Accepted to catch 2xx retransmissions."""
        return 64 * self.t1

    @property
    def cancel_wait(self) -> float:
        """RFC 3261 §9.1: give up on a cancelled INVITE with no final response after this."""
        return 64 * self.t1

    # -- timers that are zero on reliable transports --------------------------------

    def timer_d(self, *, reliable: bool) -> float:
        """INVITE client, Completed: absorb final-response retransmissions (>= 32 s)."""
        return 0.0 if reliable else max(32.0, 64 * self.t1)

    def timer_i(self, *, reliable: bool) -> float:
        """INVITE server, Confirmed: absorb ACK retransmissions."""
        return 0.0 if reliable else self.t4

    def timer_j(self, *, reliable: bool) -> float:
        """Non-INVITE server, Completed: absorb request retransmissions."""
        return 0.0 if reliable else 64 * self.t1

    def timer_k(self, *, reliable: bool) -> float:
        """Non-INVITE client, Completed: absorb response retransmissions."""
        return 0.0 if reliable else self.t4

    def duration(self, name: TimerName, *, reliable: bool) -> float | None:
        """Initial duration of *name*, or ``None`` when it is not used on this transport.

        ``TRYING`` is configured on the transaction layer, not here, so it is ``None``.
        """
        if name in (TimerName.A, TimerName.E, TimerName.G):
            return None if reliable else self.t1
        match name:
            case TimerName.D:
                return self.timer_d(reliable=reliable)
            case TimerName.I:
                return self.timer_i(reliable=reliable)
            case TimerName.J:
                return self.timer_j(reliable=reliable)
            case TimerName.K:
                return self.timer_k(reliable=reliable)
            case TimerName.TRYING:
                return None
        return 64 * self.t1  # B, F, H, L, M, CANCEL_WAIT


DEFAULT_TIMERS = TimerConfig()

K = TypeVar("K", bound=Enum)


class Deadlines(Generic[K]):
    """A few named one-shot deadlines, for example ``{A: 1.5, B: 32.0}``.

    A transaction holds at most four, so ``min()`` over a dict beats a heap here; the
    transaction layer keeps the heap over all transactions.
    """

    __slots__ = ("_at",)

    def __init__(self) -> None:
        self._at: dict[K, float] = {}

    def __contains__(self, name: object) -> bool:
        return name in self._at

    def __len__(self) -> int:
        return len(self._at)

    def start(self, name: K, at: float) -> None:
        """Arm *name* to fire at the absolute time *at*; re-arming replaces the old one."""
        self._at[name] = at

    def cancel(self, *names: K) -> None:
        """Disarm *names*; names that are not armed are ignored."""
        for name in names:
            self._at.pop(name, None)

    def cancel_all(self) -> None:
        self._at.clear()

    def deadline(self, name: K) -> float | None:
        return self._at.get(name)

    def next_deadline(self) -> float | None:
        """The earliest armed deadline, or ``None``."""
        return min(self._at.values(), default=None)

    def pop_due(self, now: float) -> K | None:
        """Remove and return one timer whose deadline is ``<= now``, or ``None``.

        One at a time on purpose: handling one timer may cancel the others, so the
        caller asks again after each. When several are due (a loop that woke up
        late) the one due *last* comes first: in every RFC 3261 machine the later of
        two armed timers is the timeout (B after A, F after E, H after G), and firing
        it cancels the retransmission timer. So ``handle_timer(100.0)`` on an INVITE
        sent at 0 reports the Timer B timeout without retransmitting first.
        """
        due = [(at, name) for name, at in self._at.items() if at <= now]
        if not due:
            return None
        name = max(due, key=lambda item: item[0])[1]
        del self._at[name]
        return name
