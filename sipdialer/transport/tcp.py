"""TCP shell: a listening server and outgoing connections, framed by ``StreamFramer``.

Connections are found by the remote (host, port): a response goes back on the
connection its request came in on (RFC 3261 §18.2.2), and a request to a peer
reuses an open connection or opens one, queueing data until it is up.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import cast

from sipdialer.sip.errors import ParseError
from sipdialer.sip.framing import StreamFramer
from sipdialer.sip.peer import Peer

from .udp import is_ip_literal

log = logging.getLogger(__name__)

IDLE_TIMEOUT = 600.0
"Seconds a connection may stay silent before we close it (RFC 5626 keeps alive sooner)."

Receiver = Callable[[bytes, Peer], None]
FailureReporter = Callable[[Peer], None]


class TcpConnection(asyncio.Protocol):
    def __init__(self, owner: TcpTransport) -> None:
        self._owner = owner
        self._framer = StreamFramer()
        self._transport: asyncio.Transport | None = None
        self.peer: Peer | None = None
        self._pending: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        host, port = self._transport.get_extra_info("peername")[:2]
        self.peer = Peer("TCP", str(host), int(port))
        self._owner.connections[(self.peer.host, self.peer.port)] = self
        for data in self._pending:
            self._transport.write(data)
        self._pending.clear()

    def data_received(self, data: bytes) -> None:
        assert self.peer is not None
        try:
            self._framer.feed(data)
            while (message := self._framer.next_message()) is not None:
                self._owner.receiver(message, self.peer)
            pings = self._framer.pop_keepalives()
            if pings and self._transport is not None:
                self._transport.write(b"\r\n" * pings)  # RFC 5626 §3.5.1 pong
        except ParseError as exc:
            # A stream that cannot be framed cannot be resynchronised: close it.
            log.info("closing TCP connection from %s: %s", self.peer, exc)
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.peer is not None:
            key = (self.peer.host, self.peer.port)
            if self._owner.connections.get(key) is self:
                del self._owner.connections[key]

    def write(self, data: bytes) -> None:
        if self._transport is None:
            self._pending.append(data)
        elif not self._transport.is_closing():
            self._transport.write(data)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


class TcpTransport:
    def __init__(self, receiver: Receiver, on_failure: FailureReporter) -> None:
        self.receiver = receiver
        self._on_failure = on_failure
        self.connections: dict[tuple[str, int], TcpConnection] = {}
        self._connecting: dict[tuple[str, int], TcpConnection] = {}
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def listen(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: TcpConnection(self), host, port)

    @property
    def local_address(self) -> tuple[str, int]:
        assert self._server is not None
        host, port = self._server.sockets[0].getsockname()[:2]
        return str(host), int(port)

    def send(self, data: bytes, peer: Peer) -> None:
        key = (peer.host, peer.port)
        if key not in self.connections and not is_ip_literal(peer.host):
            log.debug("not connecting to unresolved or invalid host %r", peer.host)
            return
        connection = self.connections.get(key) or self._connecting.get(key)
        if connection is None:
            connection = TcpConnection(self)
            self._connecting[key] = connection
            task = asyncio.ensure_future(self._connect(connection, peer))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        connection.write(data)

    async def _connect(self, connection: TcpConnection, peer: Peer) -> None:
        loop = asyncio.get_running_loop()
        key = (peer.host, peer.port)
        try:
            await loop.create_connection(lambda: connection, peer.host, peer.port)
        except OSError as exc:
            log.info("TCP connect to %s failed: %s", peer, exc)
            self._on_failure(peer)
        finally:
            self._connecting.pop(key, None)

    async def close(self) -> None:
        for connection in list(self.connections.values()):
            connection.close()
        for task in list(self._tasks):
            task.cancel()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
