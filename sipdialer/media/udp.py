"""The media IO shell: RTP/RTCP socket pairs and the loop that paces a player.

Theory of operation. This module owns the sockets and the clock for media; it makes no
media decisions. ``open_rtp_pair(host, pool)`` takes the next pair from the port pool and
binds RTP and RTCP on it, trying the next pair when one is taken by another program.
Each ``RtpSocket`` is a pair of non-blocking UDP sockets registered with the loop's
``media.fastio.Poller``: one ``select.epoll`` for every media socket of the loop behind
one ``add_reader``, and one ``recvfrom`` per socket per wake-up (DESIGN.md, "Performance
budget → Media", and the ``fastio`` docstring for why). The stock datagram transport is
not used: it reads each datagram into a 256 KiB buffer, an extra mmap/munmap per packet.

Two ways to receive. The general one: ``on_rtp`` / ``on_rtcp`` receivers are called as
``receiver(data, (host, port), now)`` with ``now`` read once per wake-up, so the cores
behind them get the clock without reading it; ``received``/``dropped`` count there. The
fast one, for the relay: ``set_rtp_reader(handler)`` makes the poller call
``handler(now)`` itself when the RTP port is readable; the handler reads one datagram
from ``rtp_socket`` (into ``poller.buffer``) and sends with ``sendto`` on the other
leg's socket, counting in the relay (``media.bridge``).

Sending is ``sock.sendto`` straight away. Media is real time, so there is no queue: when
the kernel's send buffer is full the packet is dropped and counted. Addresses must be IP
literals (a host name would make ``sendto`` block the loop to resolve it).

``play(player, socket, remote)`` drives a ``FramePlayer`` with one ``loop.call_at`` timer
until it finishes: the shell pattern of STYLE.md §2.2 (never calling the core earlier
than the deadline it asked for).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import resource
import socket
from collections.abc import Callable
from typing import Final

from .fastio import READ_SIZE, Handler, Poller, poller_for
from .player import FramePlayer
from .ports import PortPair, PortPool, PortsExhausted

log = logging.getLogger(__name__)

Address = tuple[str, int]
Receiver = Callable[[bytes, Address, float], None]

SOCKET_BUFFER: Final = 4 * 1024 * 1024
"SO_RCVBUF/SO_SNDBUF asked for each socket: net.core.rmem_max on these machines (DESIGN.md)."
_BIND_RETRY_ERRNOS: Final = {errno.EADDRINUSE, errno.EACCES}

_buffer_cap_logged = False


class RtpSocket:
    """An RTP socket and its RTCP companion bound on one pair of the pool."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        rtp: socket.socket,
        rtcp: socket.socket,
        pair: PortPair,
        pool: PortPool | None,
    ) -> None:
        self._loop = loop
        self.poller: Poller = poller_for(loop)
        "The loop's poller (its ``buffer``/``views`` are for ``set_rtp_reader`` handlers)."
        self._rtp = rtp
        self._rtcp = rtcp
        self.pair = pair
        "The ports bound; given back to the pool on ``close()``."
        self._pool = pool
        self.on_rtp: Receiver | None = None
        "Called with each datagram arriving on the RTP port (RTCP too, if the peer muxes)."
        self.on_rtcp: Receiver | None = None
        "Called with each datagram arriving on the RTCP port."
        self.received = 0
        self.sent = 0
        self.dropped = 0
        "Datagrams not sent (send buffer full, socket error) or received with no receiver."
        self._closed = False
        self.poller.add(rtp.fileno(), self._read_rtp)
        self.poller.add(rtcp.fileno(), self._read_rtcp)

    @property
    def host(self) -> str:
        return str(self._rtp.getsockname()[0])

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def rtp_socket(self) -> socket.socket:
        """The RTP port's socket, for a ``set_rtp_reader`` handler (non-blocking)."""
        return self._rtp

    def set_rtp_reader(self, handler: Handler | None) -> None:
        """Let ``handler(now)`` read the RTP port itself, one datagram per call (it must
        not raise on ``BlockingIOError``: a wake-up can be spurious); ``on_rtp`` is then
        not called. None goes back to ``on_rtp``."""
        if not self._closed:
            self.poller.set(self._rtp.fileno(), handler or self._read_rtp)

    def send(self, data: bytes, addr: Address) -> None:
        """Send an RTP (or muxed RTCP) datagram from the RTP port; never raises."""
        try:
            self._rtp.sendto(data, addr)
        except OSError:  # includes BlockingIOError: a full send buffer drops the packet
            self.dropped += 1
        else:
            self.sent += 1

    def send_rtcp(self, data: bytes, addr: Address) -> None:
        """Send an RTCP datagram from the RTCP port; never raises."""
        try:
            self._rtcp.sendto(data, addr)
        except OSError:
            self.dropped += 1
        else:
            self.sent += 1

    def _read_rtp(self, now: float) -> None:
        self._read(self._rtp, self.on_rtp, now)

    def _read_rtcp(self, now: float) -> None:
        self._read(self._rtcp, self.on_rtcp, now)

    def _read(self, sock: socket.socket, receiver: Receiver | None, now: float) -> None:
        # One datagram: the poller calls again while the socket is readable (fastio).
        try:
            data, addr = sock.recvfrom(READ_SIZE)
        except OSError:  # nothing after all, or an ICMP error reported on the socket
            return
        self.received += 1
        if receiver is None:
            self.dropped += 1
        else:
            receiver(data, (addr[0], addr[1]), now)

    def close(self) -> None:
        """Stop reading, close both sockets, give the pair back. Repeated calls are harmless."""
        if self._closed:
            return
        self._closed = True
        for sock in (self._rtp, self._rtcp):
            self.poller.remove(sock.fileno())  # before close: the fd number may be reused
            sock.close()
        if self._pool is not None:
            self._pool.release(self.pair)


async def open_rtp_pair(host: str, ports: PortPool) -> RtpSocket:
    """Bind RTP and RTCP on the next free pair of ``ports`` at ``host``.

    A pair another program holds (EADDRINUSE, EACCES) goes back to the pool and the next
    one is tried; raises ``PortsExhausted`` when no free pair can be bound.
    """
    loop = asyncio.get_running_loop()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(max(ports.free, 1)):
        pair = ports.allocate()
        try:
            rtp = _bind(family, host, pair.rtp)
            try:
                rtcp = _bind(family, host, pair.rtcp)
            except OSError:
                rtp.close()
                raise
        except OSError as exc:
            ports.release(pair)
            if exc.errno in _BIND_RETRY_ERRNOS:
                log.debug("RTP ports %d/%d taken (%s); trying the next pair", *pair, exc)
                continue
            raise
        return RtpSocket(loop, rtp, rtcp, pair, ports)
    raise PortsExhausted(f"no free RTP port pair of {ports.low}-{ports.high} could be bound")


def _bind(family: int, host: str, port: int) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        set_buffers(sock)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def set_buffers(sock: socket.socket, size: int = SOCKET_BUFFER) -> int:
    """Ask for ``size``-byte receive and send buffers; return the receive buffer granted.

    The first time the kernel grants less (``net.core.rmem_max``/``wmem_max``), say so in
    the log, once per process: 4,000 sockets would otherwise log 4,000 times.
    """
    global _buffer_cap_logged
    granted = 0
    for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
        try:
            sock.setsockopt(socket.SOL_SOCKET, option, size)
            got = sock.getsockopt(socket.SOL_SOCKET, option)
        except OSError:
            continue
        if option == socket.SO_RCVBUF:
            granted = got
        # Linux reports twice the size asked (bookkeeping overhead); less means capped.
        if got < size and not _buffer_cap_logged:
            _buffer_cap_logged = True
            log.warning(
                "RTP socket buffers capped at %d bytes (asked %d): raise "
                "net.core.rmem_max and net.core.wmem_max to absorb bursts",
                got,
                size,
            )
    return granted


def raise_open_file_limit(wanted: int = 65536) -> int:
    """Raise the soft RLIMIT_NOFILE towards ``wanted`` (capped by the hard limit).

    1,000 bridged calls hold 4,000 RTP/RTCP sockets (DESIGN.md); returns the soft limit
    now in force and logs when it is below ``wanted``.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (OSError, ValueError) as exc:
            log.warning("cannot raise the open-file limit to %d: %s", target, exc)
    if soft < wanted:
        log.info(
            "open-file limit is %d (asked %d): at most ~%d bridged calls", soft, wanted, soft // 4
        )
    return soft


async def play(player: FramePlayer, sock: RtpSocket, remote: Address) -> None:
    """Send ``player``'s packets to ``remote`` on time until it finishes.

    Starts the player if it is not started. One ``call_at`` timer at a time; cancelling
    the awaiting task cancels the timer (the player keeps its state; ``stop()`` it).
    """
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    timer: asyncio.TimerHandle | None = None
    if not player.started:
        player.start(loop.time())

    def on_timer() -> None:
        nonlocal timer
        timer = None
        due_at = player.get_timer()
        now = loop.time()
        # Never earlier than the deadline: call_at may fire within the clock resolution.
        for packet in player.packets_due(now if due_at is None else max(due_at, now)):
            sock.send(packet, remote)
        next_at = player.get_timer()
        if next_at is None:
            if not done.done():
                done.set_result(None)
        else:
            timer = loop.call_at(next_at, on_timer)

    on_timer()
    try:
        await done
    finally:
        if timer is not None:
            timer.cancel()
