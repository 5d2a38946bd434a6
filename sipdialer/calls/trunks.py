"""Per-trunk admission: at most ``max_calls`` legs at once, at most ``cps`` new ones a second.

Theory of operation (dialer-semantics §6). One ``TrunkGate`` per ``[[trunks]]`` entry.
Before sending an INVITE to a trunk the calls layer asks ``admit(now)``:

* ``None``: admitted. One line is taken (``in_use`` + 1) and one start is spent;
  ``release()`` gives the line back when that member leg ends, however it ends.
* a time ``t``: not now; ask again at ``t`` (the next start the cps limit allows).
  ``math.inf`` means every line is busy: ask again after a ``release()``.

The cps limit is a token bucket (the GCRA form of it: one "theoretical arrival time"
instead of a token count, so there is no refill arithmetic to drift). Each admitted
start costs ``1/cps`` seconds of credit; at most ``burst`` starts may be taken back to
back after an idle period. **Decision: burst = 1** by default, i.e. starts are spaced
at least ``1/cps`` apart. Providers police cps in different ways (a sliding one-second
window, a fixed window, a per-start spacing); evenly spaced starts pass all of them,
while a burst of ``cps`` starts at the turn of a second is what trips the stricter
ones (a 503 or 403 storm), and a progressive dialer gains nothing from bursting since
agents free up one at a time. ``burst`` can be raised per gate for tests or lenient
providers.

A refused ``admit`` changes nothing, so asking early or twice is harmless. Pure:
``now`` is any monotonic clock in seconds, a fake one in tests.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping

from sipdialer.config import TrunkConfig

__all__ = ["TrunkGate", "TrunkGates"]

_EPSILON = 1e-9
"Float slack: a caller asking at exactly the returned time is admitted."


class TrunkGate:
    """Concurrency and call-rate gate of one trunk; see the module docstring."""

    def __init__(self, max_calls: int, cps: float, *, burst: int = 1) -> None:
        if max_calls < 1:
            raise ValueError(f"max_calls must be >= 1, got {max_calls}")
        if not (cps > 0 and math.isfinite(cps)):
            raise ValueError(f"cps must be a positive number, got {cps}")
        if burst < 1:
            raise ValueError(f"burst must be >= 1, got {burst}")
        self.max_calls = max_calls
        self.cps = cps
        self.burst = burst
        self.interval = 1.0 / cps
        "Seconds of credit one start costs."
        self.in_use = 0
        "Lines taken: admitted and not yet released."
        self._tat = -math.inf  # GCRA theoretical arrival time of the next start

    def next_start(self, now: float) -> float:
        """The earliest time the rate limit allows a start (``now`` if already allowed)."""
        allowed = self._tat - (self.burst - 1) * self.interval
        return now if now + _EPSILON >= allowed else allowed

    def admit(self, now: float) -> float | None:
        """Take a line and a start: ``None`` when admitted, else when to ask again
        (``math.inf``: all lines busy, wait for ``release``)."""
        if self.in_use >= self.max_calls:
            return math.inf
        start = self.next_start(now)
        if start > now:
            return start
        self._tat = max(self._tat, now) + self.interval
        self.in_use += 1
        return None

    def release(self) -> None:
        """A call admitted earlier ended. Extra calls are ignored (never below zero)."""
        if self.in_use > 0:
            self.in_use -= 1

    @property
    def full(self) -> bool:
        return self.in_use >= self.max_calls

    def __repr__(self) -> str:
        return f"<TrunkGate {self.in_use}/{self.max_calls} lines, {self.cps:g} cps>"


class TrunkGates(Mapping[str, TrunkGate]):
    """The gates of every configured trunk, by trunk name."""

    def __init__(self, gates: Mapping[str, TrunkGate]) -> None:
        self._gates = dict(gates)

    @classmethod
    def from_config(cls, trunks: Iterable[TrunkConfig]) -> TrunkGates:
        return cls({t.name: TrunkGate(t.max_calls, t.cps) for t in trunks})

    def __getitem__(self, trunk_name: str) -> TrunkGate:
        try:
            return self._gates[trunk_name]
        except KeyError:
            raise KeyError(f"no trunk {trunk_name!r}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._gates)

    def __len__(self) -> int:
        return len(self._gates)
