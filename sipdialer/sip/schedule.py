"""A set of keyed deadlines with O(log n) updates: the UA's 2xx/ACK and CANCEL timers.

``set`` replaces a key's deadline, ``cancel`` forgets it, ``next_deadline`` and
``pop_due`` read the earliest. Superseded heap entries are skipped lazily, and the
heap is rebuilt when they outnumber the live ones, so a thousand calls in flight
cost a heap operation per change instead of a scan per event (bench/sip_uas.py).
"""

from __future__ import annotations

import heapq
from collections.abc import Hashable
from itertools import count
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)

_COMPACT_AT = 256
"Rebuild when the heap holds this many more entries than twice the live keys."


class Schedule(Generic[K]):
    def __init__(self) -> None:
        self._at: dict[K, float] = {}
        self._heap: list[tuple[float, int, K]] = []
        self._seq = count()

    def __len__(self) -> int:
        return len(self._at)

    def __contains__(self, key: object) -> bool:
        return key in self._at

    def get(self, key: K) -> float | None:
        return self._at.get(key)

    def set(self, key: K, at: float) -> None:
        self._at[key] = at
        heapq.heappush(self._heap, (at, next(self._seq), key))
        if len(self._heap) > 2 * len(self._at) + _COMPACT_AT:
            self._heap = [(a, next(self._seq), k) for k, a in self._at.items()]
            heapq.heapify(self._heap)

    def cancel(self, key: K) -> None:
        self._at.pop(key, None)

    def next_deadline(self) -> float | None:
        heap = self._heap
        while heap and self._at.get(heap[0][2]) != heap[0][0]:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def pop_due(self, now: float) -> list[K]:
        """Keys whose deadline is ``<= now``, earliest first; they are forgotten."""
        due: list[K] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            at, _, key = heapq.heappop(heap)
            if self._at.get(key) == at:
                del self._at[key]
                due.append(key)
        return due
