"""The RTP port pool: pairs of (even RTP port, odd RTCP port) from ``[media] rtp_ports``.

Theory of operation. ``PortPool.from_range("20000-20999")`` holds every pair whose RTP
port is even and whose RTCP port (RTP + 1, RFC 3550 §11) is inside the range: 500 pairs
for that example. ``allocate()`` hands out the pair that has been free the longest and
``release(pair)`` puts it at the back of the queue, so a pair just released is reused
only after every other free pair. That is deliberate: late packets of the previous call
(a peer that has not seen our BYE yet) must not land in the next call on the same port.

The pool is pure bookkeeping; binding the sockets, and skipping a pair some other
program holds (EADDRINUSE), is ``media.udp.open_rtp_pair``'s job.
"""

from __future__ import annotations

from collections import deque
from typing import Final, NamedTuple

MIN_PORT: Final = 1024
"Ports below this are privileged; a media range there is a configuration mistake."


class PortPair(NamedTuple):
    rtp: int
    "Even port for RTP."
    rtcp: int
    "rtp + 1, for RTCP."


class PortRangeError(ValueError):
    """A ``rtp_ports`` value that is not ``LOW-HIGH`` holding at least one pair."""


class PortsExhausted(RuntimeError):
    """Every pair in the pool is in use: the configured range is too small for the load."""


def parse_range(text: str) -> tuple[int, int]:
    """``"20000-20999"`` → ``(20000, 20999)``; raises ``PortRangeError``."""
    low_text, sep, high_text = text.strip().partition("-")
    try:
        low, high = int(low_text), int(high_text)
    except ValueError:
        low = high = -1
    if not sep or not MIN_PORT <= low <= high <= 65535:
        raise PortRangeError(f"rtp_ports {text!r}: expected LOW-HIGH within {MIN_PORT}-65535")
    return low, high


class PortPool:
    """Allocate and release RTP/RTCP port pairs, round-robin (module docstring)."""

    def __init__(self, low: int, high: int) -> None:
        first = low + (low % 2)  # the first even port
        pairs = [PortPair(port, port + 1) for port in range(first, high, 2)]
        if not pairs:
            raise PortRangeError(f"ports {low}-{high} hold no even/odd pair")
        self.low = low
        self.high = high
        self._free: deque[PortPair] = deque(pairs)
        self._in_use: set[PortPair] = set()

    @classmethod
    def from_range(cls, text: str) -> PortPool:
        """A pool over the ``[media] rtp_ports`` value, such as ``"20000-20999"``."""
        return cls(*parse_range(text))

    def allocate(self) -> PortPair:
        """The pair free for the longest time; raises ``PortsExhausted`` when none is."""
        if not self._free:
            raise PortsExhausted(
                f"all {len(self._in_use)} RTP port pairs of {self.low}-{self.high} are in use"
            )
        pair = self._free.popleft()
        self._in_use.add(pair)
        return pair

    def release(self, pair: PortPair) -> None:
        """Give ``pair`` back; it is reused after every other free pair."""
        if pair not in self._in_use:
            raise ValueError(f"port pair {pair} is not allocated from this pool")
        self._in_use.remove(pair)
        self._free.append(pair)

    @property
    def free(self) -> int:
        """Pairs available now."""
        return len(self._free)

    @property
    def in_use(self) -> int:
        """Pairs allocated and not released."""
        return len(self._in_use)

    def __len__(self) -> int:
        """Pairs in the pool, free or not."""
        return len(self._free) + len(self._in_use)
