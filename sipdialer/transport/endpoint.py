"""The SIP endpoint: one ``UserAgentCore`` behind a UDP socket and a TCP listener.

This is the only place that reads the clock for SIP. Every callback feeds the core
and then calls ``_flush``: send what the core queued, hand its events to the
registered handlers, and re-arm the one timer (STYLE.md §2.2).

Handlers: ``on_request(method, handler)`` gets ``IncomingCall``/``IncomingRequest``
of that method; ``on_event(handler)`` gets every event. A request of a method with
no handler is answered 405 with Allow, so nothing waits for an answer forever.

``messages`` counts every message in and out by (direction, method, status) for
``/metrics``; a response's method is its CSeq's, a request's status is 0. It reads only
the start line and the CSeq line of the bytes: ~0.4 µs a request, ~1.2 µs a response
here, against ~8 µs to parse a message (DESIGN.md).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import replace

from sipdialer.sip.peer import Peer
from sipdialer.sip.ua import UaConfig, UserAgentCore
from sipdialer.sip.ua_events import IncomingCall, IncomingRequest, UaEvent

from .tcp import TcpTransport
from .udp import UdpTransport, open_udp

log = logging.getLogger(__name__)

Handler = Callable[[UaEvent], None]

EPHEMERAL_ATTEMPTS = 20
"Tries to find a port free for both UDP and TCP when asked for port 0."

METHODS = frozenset(
    "INVITE ACK BYE CANCEL OPTIONS REGISTER PRACK SUBSCRIBE NOTIFY PUBLISH INFO REFER "
    "MESSAGE UPDATE".split()
)
"Methods counted by name (RFC 3261 and its extensions); others count as ``other``."

MessageKey = tuple[str, str, int]
"(direction ``in``/``out``, method, status: 0 for a request)."


def message_key(direction: str, data: bytes) -> MessageKey | None:
    """What ``messages`` counts *data* as; None for keep-alives and garbage. Unknown
    methods count as ``other``: a peer must not be able to grow the counter at will."""
    space = data.find(b" ", 0, 32)
    if space <= 0:
        return None  # CRLF keep-alive (RFC 5626 §4.4.1) or not SIP at all
    if not data.startswith(b"SIP/2.0 "):
        method = data[:space].decode("ascii", "replace")
        return direction, method if method in METHODS else "other", 0
    status = data[space + 1 : space + 4]
    if not status.isdigit():
        return None
    end = data.find(b"\r\n\r\n")
    at = data.find(b"\nCSeq:", 0, end)
    if at < 0:
        at = data[:end].lower().find(b"\ncseq:")  # header names are case-insensitive
    method = "other"
    if at >= 0:
        line_end = data.find(b"\r", at + 6)  # the header's CRLF (may be the last one's)
        words = data[at + 6 : line_end if line_end >= 0 else None].split()
        if len(words) == 2 and (name := words[1].decode("ascii", "replace")) in METHODS:
            method = name
    return direction, method, int(status)


class SipEndpoint:
    def __init__(self, config: UaConfig | None = None) -> None:
        self.ua = UserAgentCore(config)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._udp: UdpTransport | None = None
        self._tcp: TcpTransport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._request_handlers: dict[str, Handler] = {}
        self._listeners: list[Handler] = []
        self._flushing = False
        self.handler_errors = 0
        self.internal_errors = 0
        self.messages: Counter[MessageKey] = Counter()
        "Messages in and out by (direction, method, status), for metrics."

    # --- setup ----------------------------------------------------------------------

    def on_request(self, method: str, handler: Handler) -> None:
        self._request_handlers[method.upper()] = handler

    def on_event(self, handler: Handler) -> None:
        self._listeners.append(handler)

    async def start(self, host: str, port: int, *, tcp: bool = True) -> tuple[str, int]:
        """Bind UDP (and TCP on the same port); returns the bound (host, port).

        With port 0 the UDP socket picks a free port, and TCP may find that same number
        taken (by another program's TCP socket): then both are retried on a new port.
        """
        self._loop = asyncio.get_running_loop()
        for attempt in range(EPHEMERAL_ATTEMPTS):
            self._udp = await open_udp(host, port, self._receive_udp)
            bound = self._udp.local_address
            if not tcp:
                break
            self._tcp = TcpTransport(self._receive_tcp, self._tcp_failed)
            try:
                await self._tcp.listen(host, bound[1])
                break
            except OSError:
                self._udp.close()
                self._udp = self._tcp = None
                if port != 0 or attempt == EPHEMERAL_ATTEMPTS - 1:
                    raise
        if self.ua.config.port == 0:
            # Bound to an ephemeral port: Via and Contact must name the real one.
            self.ua.config = replace(self.ua.config, port=bound[1])
        return bound

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            await self._tcp.close()

    @property
    def now(self) -> float:
        assert self._loop is not None
        return self._loop.time()

    # --- inputs ---------------------------------------------------------------------

    def _receive_udp(self, data: bytes, peer: Peer) -> None:
        self._receive(data, peer, stream=False)

    def _receive_tcp(self, data: bytes, peer: Peer) -> None:
        self._receive(data, peer, stream=True)

    def _receive(self, data: bytes, peer: Peer, *, stream: bool) -> None:
        key = message_key("in", data)
        if key is not None:
            self.messages[key] += 1
        try:
            self.ua.receive_data(data, peer, self.now, stream=stream)
        except Exception:
            # The core answers bad input itself; reaching here is our bug. Keep serving
            # the other calls, and make the bug loud (tests assert the counter is 0).
            self.internal_errors += 1
            log.exception("SIP core failed on a message from %s", peer)
        self.flush()

    def _tcp_failed(self, peer: Peer) -> None:
        self.ua.transport_error(peer, self.now)
        self.flush()

    def _on_timer(self) -> None:
        self._timer = None
        # Never hand the core a time earlier than the deadline it asked for.
        now = max(self._timer_at or 0.0, self.now)
        self._timer_at = None
        self.ua.handle_timer(now)
        self.flush()

    # --- outputs --------------------------------------------------------------------

    def flush(self) -> None:
        """Send, dispatch, re-arm. Handlers may call the UA; their output is flushed
        by the same loop (re-entrant calls just return)."""
        if self._flushing:
            return
        self._flushing = True
        try:
            while True:
                sent = self._send_all()
                event = self.ua.next_event()
                if event is None and not sent:
                    break
                if event is not None:
                    self._dispatch(event)
        finally:
            self._flushing = False
        self._arm_timer()

    def _send_all(self) -> bool:
        items = self.ua.data_to_send()
        messages = self.messages
        for data, peer in items:
            key = message_key("out", data)
            if key is not None:
                messages[key] += 1
            if peer.transport == "UDP":
                if self._udp is not None:
                    self._udp.send(data, peer)
            elif self._tcp is not None:
                self._tcp.send(data, peer)
        return bool(items)

    def _dispatch(self, event: UaEvent) -> None:
        if isinstance(event, IncomingCall | IncomingRequest):
            handler = self._request_handlers.get(event.request.method)
            if handler is None:
                allow = ", ".join(self.ua.config.policy.allow)
                self.ua.respond(event.key, 405, self.now, headers=[("Allow", allow)])
            else:
                self._call(handler, event)
        for listener in self._listeners:
            self._call(listener, event)

    def _call(self, handler: Handler, event: UaEvent) -> None:
        try:
            handler(event)
        except Exception:  # a handler's bug must not stop the endpoint
            self.handler_errors += 1
            log.exception("SIP handler failed on %s", type(event).__name__)
            if isinstance(event, IncomingCall | IncomingRequest):
                self.ua.respond(event.key, 500, self.now)

    def _arm_timer(self) -> None:
        timer_at = self.ua.get_timer()
        if self._timer is not None and timer_at != self._timer_at:
            self._timer.cancel()
            self._timer = None
        if self._timer is None and timer_at is not None and self._loop is not None:
            self._timer = self._loop.call_at(timer_at, self._on_timer)
        self._timer_at = timer_at
