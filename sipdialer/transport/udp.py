"""UDP shell: datagrams in and out of the endpoint. No protocol decisions here."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Callable
from functools import lru_cache
from typing import cast

from sipdialer.sip.peer import Peer

log = logging.getLogger(__name__)

RECEIVE_BUFFER = 4 * 1024 * 1024
"Asked-for SO_RCVBUF: a burst of signaling must not overflow it (peers/README.md)."

Receiver = Callable[[bytes, Peer], None]


class UdpTransport(asyncio.DatagramProtocol):
    def __init__(self, receiver: Receiver) -> None:
        self._receiver = receiver
        self._transport: asyncio.DatagramTransport | None = None
        self.errors = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.DatagramTransport, transport)
        sock = self._transport.get_extra_info("socket")
        if sock is not None:
            set_buffers(sock)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self._receiver(data, Peer("UDP", addr[0], addr[1]))

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable and friends: counted; the transaction's timer decides.
        self.errors += 1

    def send(self, data: bytes, peer: Peer) -> None:
        # Only IP literals: a host name would make sendto() resolve it, blocking the
        # loop, and a malformed one closes the whole transport ("fatal write error").
        if not is_ip_literal(peer.host) or peer.port == 0:
            self.errors += 1
            log.debug("not sending to unresolved or invalid host %r", peer.host)
            return
        if self._transport is not None and not self._transport.is_closing():
            try:
                self._transport.sendto(data, (peer.host, peer.port))
            except (OSError, ValueError, TypeError):
                self.errors += 1

    @property
    def local_address(self) -> tuple[str, int]:
        assert self._transport is not None
        host, port = self._transport.get_extra_info("sockname")[:2]
        return str(host), int(port)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


@lru_cache(maxsize=4096)
def is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def set_buffers(sock: socket.socket) -> None:
    """Ask for big socket buffers; say so in the log when the kernel caps them."""
    for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
        try:
            sock.setsockopt(socket.SOL_SOCKET, option, RECEIVE_BUFFER)
            got = sock.getsockopt(socket.SOL_SOCKET, option)
        except OSError:
            continue
        # Linux reports twice the usable size; less than asked means net.core.*mem_max.
        if got < RECEIVE_BUFFER:
            log.info("socket buffer capped at %d bytes (asked %d)", got, RECEIVE_BUFFER)


async def open_udp(host: str, port: int, receiver: Receiver) -> UdpTransport:
    loop = asyncio.get_running_loop()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    _, protocol = await loop.create_datagram_endpoint(
        lambda: UdpTransport(receiver), local_addr=(host, port), family=family
    )
    return protocol
