"""A scriptable raw UDP SIP peer for the call-service tests: a trunk on route ^96
(``callrig.running_rig``'s raw trunk) or an agent phone (``as_agent_phone``).

``ScriptPeer.handler(peer, message, addr)`` decides what to answer; every message in
and out is logged, so a test can assert on exactly what went over the wire.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from typing import Any, cast

from callrig import Rig

from sipdialer.sip.message import Request, Response, parse_message, response_for
from sipdialer.sip.peer import Peer

Handler = Callable[["ScriptPeer", Request | Response, Any], None]


class ScriptPeer(asyncio.DatagramProtocol):
    """See the module docstring."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.log: list[tuple[str, Request | Response]] = []
        self.handler: Handler = lambda peer, message, addr: None
        self.invite: Request | None = None
        self.addr: Any = None
        self.cseq = 100

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])

    def datagram_received(self, data: bytes, addr: Any) -> None:
        message = parse_message(data)
        self.addr = addr
        self.log.append(("in", message))
        if isinstance(message, Request) and message.method == "INVITE":
            if message.to.tag is None and self.invite is None:
                self.invite = message
        self.handler(self, message, addr)

    def send(self, message: Request | Response) -> None:
        assert self.transport is not None
        self.log.append(("out", message))
        self.transport.sendto(message.to_bytes(), self.addr)

    def reply(self, request: Request, status: int, *, tag: str = "t1", body: bytes = b"",
              headers: list[tuple[str, str]] | None = None) -> Response:  # fmt: skip
        extra = list(headers or [])
        if 100 < status < 300 and request.method == "INVITE":
            extra.append(("Contact", f"<sip:peer@127.0.0.1:{self.port}>"))
        if body:
            extra.append(("Content-Type", "application/sdp"))
        response = response_for(request, status, to_tag=tag if status > 100 else None,
                                body=body, headers=extra)  # fmt: skip
        self.send(response)
        return response

    def received(self, method: str) -> list[Request]:
        return [m for d, m in self.log if d == "in" and isinstance(m, Request)
                and m.method == method]  # fmt: skip

    def responses(self, method: str) -> list[Response]:
        return [m for d, m in self.log if d == "in" and isinstance(m, Response)
                and m.cseq.method == method]  # fmt: skip

    def in_dialog(self, method: str, *, tag: str = "t1", body: bytes = b"",
                  headers: list[tuple[str, str]] | None = None) -> Request:  # fmt: skip
        """A request of ours inside the dialog of ``self.invite`` with our To-tag ``tag``
        (early or confirmed: the dialer's UA tells them apart, we do not)."""
        assert self.invite is not None
        invite = self.invite
        self.cseq += 1
        contact = invite.headers.get("Contact") or ""
        uri = contact.split("<", 1)[1].split(">", 1)[0] if "<" in contact else invite.uri
        lines = [
            f"{method} {uri} SIP/2.0",
            f"Via: SIP/2.0/UDP 127.0.0.1:{self.port};branch=z9hG4bK{method}{self.cseq}",
            "Max-Forwards: 70",
            f"From: {invite.headers.get('To')};tag={tag}",
            f"To: {invite.headers.get('From')}",
            f"Call-ID: {invite.call_id}",
            f"CSeq: {self.cseq} {method}",
            f"Contact: <sip:peer@127.0.0.1:{self.port}>",
            *(f"{name}: {value}" for name, value in headers or []),
        ]
        if body:
            lines.append("Content-Type: application/sdp")
        lines.append(f"Content-Length: {len(body)}")
        request = parse_message(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        assert isinstance(request, Request)
        self.send(request)
        return request


def as_agent_phone(rig: Rig, peer: ScriptPeer) -> None:
    """Point agent 101's registration at *peer*: the agent INVITE goes to it."""
    registrar = rig.system.registrar
    lookup = registrar.lookup
    contact, source = f"<sip:101@127.0.0.1:{peer.port}>", Peer("UDP", "127.0.0.1", peer.port)
    registrar.lookup = lambda agent: [  # type: ignore[method-assign]
        dataclasses.replace(b, contact=contact, source=source) for b in lookup(agent)
    ]


async def until(predicate: Callable[[], bool], seconds: float = 3.0) -> None:
    """Wait for *predicate*, polling every 10 ms; fail the test after *seconds*."""
    for _ in range(int(seconds / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition never came true")
