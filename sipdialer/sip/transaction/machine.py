"""Mechanics shared by the four transaction machines (not a machine itself).

Each machine module defines its ``State``/``Input``/``Action`` enums and its
``TRANSITIONS`` table at the top and subclasses ``Transaction`` with the side effects
(``_perform``) and the entry effects (``_enter``). This module holds what is the same
for all four: the output queues, the deadlines, and the table lookup.

The rule for inputs missing from a table (STYLE.md §2.4): a *wire* input (a message
from the peer, a transport error reported by the shell) is absorbed silently, because
the network duplicates, reorders and delays; any other input (a TU call, a timer) is
a bug in the caller and raises ``LocalProtocolError``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from enum import Enum
from typing import Generic, TypeVar

from ..errors import LocalProtocolError
from ..message import Request, Response
from ..peer import Peer
from ..timers import Deadlines, TimerConfig, TimerName
from .events import TransactionEvent, TransactionTerminated
from .keys import TransactionKey

S = TypeVar("S", bound=Enum)
I = TypeVar("I", bound=Enum)  # noqa: E741
A = TypeVar("A", bound=Enum)

Table = Mapping[tuple[S, I], tuple[S, tuple[A, ...]]]


class Transaction(Generic[S, I, A]):
    """Queues, deadlines and the table-driven ``_process`` of one transaction."""

    transitions: Mapping[tuple[S, I], tuple[S, tuple[A, ...]]]
    wire_inputs: frozenset[I]
    timer_inputs: Mapping[TimerName, I]
    terminated: S

    def __init__(
        self, key: TransactionKey, destination: Peer, timers: TimerConfig, initial: S
    ) -> None:
        self.key = key
        "How the transaction layer finds this transaction."
        self.destination = destination
        "Where every message of this transaction is sent."
        self.reliable = destination.reliable
        self._timers = timers
        self._state = initial
        self._deadlines: Deadlines[TimerName] = Deadlines()
        self._events: deque[TransactionEvent] = deque()
        self._outgoing: list[bytes] = []

    @property
    def state(self) -> S:
        return self._state

    @property
    def is_terminated(self) -> bool:
        return self._state is self.terminated

    # -- inputs ------------------------------------------------------------------

    def handle_timer(self, now: float) -> None:
        """Fire the timers due at *now*, earliest first. Spurious calls are harmless."""
        while (name := self._deadlines.pop_due(now)) is not None:
            self._process(self.timer_inputs[name], now)

    # -- outputs -----------------------------------------------------------------

    def get_timer(self) -> float | None:
        """When ``handle_timer`` should next be called, or ``None``."""
        return self._deadlines.next_deadline()

    def data_to_send(self) -> list[bytes]:
        """Bytes for ``self.destination``, oldest first; the queue is emptied."""
        data, self._outgoing = self._outgoing, []
        return data

    def next_event(self) -> TransactionEvent | None:
        return self._events.popleft() if self._events else None

    # -- the machine -------------------------------------------------------------

    def _process(self, input_: I, now: float, message: Request | Response | None = None) -> bool:
        """Apply the table; return False when a wire input was absorbed."""
        try:
            next_state, actions = self.transitions[self._state, input_]
        except KeyError:
            if input_ in self.wire_inputs:
                return False
            raise LocalProtocolError(
                f"{type(self).__name__}: {input_.name} in state {self._state.name}"
            ) from None
        for action in actions:
            self._perform(action, now, message)
        if next_state is not self._state:
            self._state = next_state
            self._enter(next_state, now)
        return True

    def _perform(self, action: A, now: float, message: Request | Response | None) -> None:
        raise NotImplementedError

    def _enter(self, state: S, now: float) -> None:
        """Entry effects of *state* (already current). Subclasses call ``_terminate``."""
        raise NotImplementedError

    # -- helpers for subclasses --------------------------------------------------

    def _send(self, message: Request | Response) -> None:
        self._outgoing.append(message.to_bytes())

    def _arm(self, name: TimerName, duration: float, now: float) -> None:
        """Start *name*; a zero duration fires it at once (Timers D/I/J/K on TCP).

        Call it last in ``_enter``: firing may move the machine on.
        """
        if duration > 0:
            self._deadlines.start(name, now + duration)
        else:
            self._process(self.timer_inputs[name], now)

    def _terminate(self) -> None:
        self._deadlines.cancel_all()
        self._events.append(TransactionTerminated(self.key))
