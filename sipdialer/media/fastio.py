"""One readiness callback for every media socket of an event loop (a shell).

Theory of operation. A bridged call holds four UDP sockets and each RTP socket gets one
datagram every 20 ms, so at 1,000 calls 2,000 sockets each have about one datagram per
loop wake-up. With one ``loop.add_reader`` per socket, asyncio pays per datagram: a
selector key lookup, a ``(key, events)`` tuple, a ``Handle`` queued and run in its
``Context``, plus the drain loop's second ``recvfrom`` that ends in ``BlockingIOError``
(a system call and an exception object per packet). Forwarding one datagram from each
of 2,000 ready sockets cost ~11.5-12.5 µs per packet that way against ~8-8.5 µs with
this module (bench/README.md, ``media_relay``).

So every media socket of a loop is registered, level-triggered, in one ``select.epoll``
whose own descriptor is the only one asyncio watches (``loop.add_reader``). When it is
readable, ``Poller._wake`` reads the clock once, takes up to ``MAX_EVENTS`` ready
descriptors with ``epoll.poll(0, POLL_EVENTS)`` (repeated while full) and calls each
one's handler with ``now``. A handler reads **one** datagram and returns: level
triggering reports a socket again on the next wake while it still holds data, so no read
ends in ``EAGAIN`` in the steady state, and a socket with a backlog cannot starve the
others (each wake serves each ready socket once). When more than ``MAX_EVENTS`` are
ready the epoll descriptor stays readable and asyncio calls us again after its other
callbacks (SIP signalling is not starved).

A handler may close sockets (its own or others') while a batch is dispatched: a closed
descriptor is unregistered first, so its stale event finds no handler and is skipped; a
descriptor number reused by a socket opened meanwhile gets a spurious wake-up, which a
non-blocking read turns into nothing. An exception in a handler is logged, and the rest
of the batch still runs (as asyncio does for its own callbacks).

Each poller owns a receive buffer (``buffer``, one datagram, ``READ_SIZE`` octets) and
``views``, memoryview slices of it by length, so a handler can ``recvfrom_into`` it,
rewrite the packet in place and ``sendto`` the slice with no object per packet beyond
what the system calls return (``media.bridge``). The buffer is the loop's, not a module
global: two loops in two threads never share it. A handler must be done with it when it
returns.

Batched system calls (``recvmmsg``/``sendmmsg``) do not pay here: each socket holds about
one datagram per wake and every outgoing datagram leaves through a different socket (the
other leg's), so a batch would be one message long and pay ``ctypes`` on top.

Without ``select.epoll`` (not Linux) ``Poller`` falls back to one ``loop.add_reader`` per
descriptor with the same handler contract: slower, same behaviour.
"""

from __future__ import annotations

import asyncio
import logging
import select
import weakref
from collections.abc import Callable
from typing import Final

log = logging.getLogger(__name__)

Handler = Callable[[float], None]
"Called with the loop's time when the descriptor is readable; reads one datagram."

READ_SIZE: Final = 2048
"Receive buffer size: a 20 ms G.711 packet is 172 octets; 2 KiB holds any audio RTP packet."
POLL_EVENTS: Final = 256
"""Ready descriptors asked of one ``epoll.poll``. Its answer is a list of that many
tuples, all alive at once: kept under the garbage collector's generation-0 threshold (700
container objects), so a poll does not start a collection."""
MAX_EVENTS: Final = 1024
"""Ready descriptors served per wake (in polls of ``POLL_EVENTS``): ~8 ms of work at the
most, under a 20 ms frame; then asyncio runs its other callbacks."""
HAVE_EPOLL: Final = hasattr(select, "epoll")


class _Views(dict[int, memoryview]):
    """``views[n]`` is ``memoryview(buffer)[:n]``, made once per length (G.711 packets
    all have the same length, so in practice one or two slices exist)."""

    def __init__(self, buffer: bytearray) -> None:
        super().__init__()
        self._whole = memoryview(buffer)

    def __missing__(self, n: int) -> memoryview:
        view = self[n] = self._whole[:n]
        return view


class Poller:
    """The media sockets of one event loop behind one readiness callback."""

    def __init__(self, loop: asyncio.AbstractEventLoop, *, use_epoll: bool = HAVE_EPOLL) -> None:
        # Weakly: the registry below maps the loop to its poller, and a strong reference
        # back would keep both alive for ever.
        self._loop_ref = weakref.ref(loop)
        self._handlers: dict[int, Handler] = {}
        self._epoll: select.epoll | None = select.epoll() if use_epoll else None
        self._watching = False
        "Whether the epoll descriptor is registered with the loop."
        self.buffer = bytearray(READ_SIZE)
        "One datagram's receive buffer, for the handler running now."
        self.views = _Views(self.buffer)
        "``views[n]``: the first n octets of ``buffer`` as a memoryview."
        self.wakes = 0
        "Readiness callbacks run (epoll mode): datagrams per wake = reads / wakes."

    @property
    def _loop(self) -> asyncio.AbstractEventLoop:
        loop = self._loop_ref()
        if loop is None:
            raise RuntimeError("the poller's event loop is gone")
        return loop

    @property
    def epoll(self) -> bool:
        """True when one epoll serves every descriptor (else one add_reader each)."""
        return self._epoll is not None

    def __len__(self) -> int:
        return len(self._handlers)

    def add(self, fd: int, handler: Handler) -> None:
        """Call ``handler(now)`` whenever ``fd`` is readable (until ``remove(fd)``)."""
        if fd in self._handlers:
            raise ValueError(f"descriptor {fd} is already registered")
        self._handlers[fd] = handler
        if self._epoll is None:
            loop = self._loop

            def ready() -> None:
                try:
                    handler(loop.time())
                except Exception:  # logged as in epoll mode
                    log.exception("media handler for descriptor %d failed", fd)

            loop.add_reader(fd, ready)
            return
        self._epoll.register(fd, select.EPOLLIN)
        if not self._watching:
            self._watching = True
            self._loop.add_reader(self._epoll.fileno(), self._wake)

    def set(self, fd: int, handler: Handler) -> None:
        """Replace the handler of a registered ``fd``."""
        if fd not in self._handlers:
            raise KeyError(fd)
        if self._epoll is None:
            self.remove(fd)
            self.add(fd, handler)
        else:
            self._handlers[fd] = handler

    def remove(self, fd: int) -> None:
        """Stop watching ``fd``; call it before closing the socket. Unknown fds: no-op."""
        if self._handlers.pop(fd, None) is None:
            return
        if self._epoll is None:
            self._loop.remove_reader(fd)
            return
        try:
            self._epoll.unregister(fd)
        except OSError:  # already closed by its owner: epoll dropped it by itself
            pass

    def _wake(self) -> None:
        assert self._epoll is not None
        self.wakes += 1
        now = self._loop.time()
        get = self._handlers.get
        poll = self._epoll.poll
        for _ in range(MAX_EVENTS // POLL_EVENTS):
            events = poll(0, POLL_EVENTS)
            for fd, _ in events:
                handler = get(fd)
                if handler is None:  # unregistered while this batch ran
                    continue
                try:
                    handler(now)
                except Exception:  # one broken handler must not stall every call
                    log.exception("media handler for descriptor %d failed", fd)
            if len(events) < POLL_EVENTS or self._epoll is None:  # drained, or closed
                return

    def close(self) -> None:
        """Stop watching everything (the sockets are their owners' to close)."""
        for fd in list(self._handlers):
            self.remove(fd)
        if self._epoll is not None:
            if self._watching:
                self._loop.remove_reader(self._epoll.fileno())
                self._watching = False
            self._epoll.close()
            self._epoll = None


_pollers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Poller] = weakref.WeakKeyDictionary()


def poller_for(loop: asyncio.AbstractEventLoop) -> Poller:
    """The loop's poller, made on first use; it goes away with the loop (its epoll
    descriptor is closed when it is garbage)."""
    poller = _pollers.get(loop)
    if poller is None:
        poller = _pollers[loop] = Poller(loop)
    return poller
