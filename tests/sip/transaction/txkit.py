"""Helpers for the transaction-layer tests: message builders, draining, a fake link."""

from __future__ import annotations

from typing import Protocol

from sipdialer.sip.message import Request, Response, parse_message, response_for
from sipdialer.sip.peer import Peer
from sipdialer.sip.transaction import TransactionEvent, TransactionLayer

ALICE = Peer("UDP", "192.0.2.10", 5060)
"The UAC's address, as the UAS sees it."
BOB = Peer("UDP", "192.0.2.20", 5060)
"The UAS's address."


def crlf(text: str) -> bytes:
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8")


def request(
    method: str = "INVITE",
    *,
    branch: str | None = "z9hG4bK776asdhds",
    via_host: str = "192.0.2.10",
    via_extra: str = "",
    transport: str = "UDP",
    to_tag: str | None = None,
    cseq: int = 314159,
    cseq_method: str | None = None,
    uri: str = "sip:bob@192.0.2.20",
    extra: str = "",
) -> Request:
    """A parsed request from raw text, in the style of RFC 3261 §24.2."""
    branch_param = f";branch={branch}" if branch is not None else ""
    to = "<sip:bob@192.0.2.20>" + (f";tag={to_tag}" if to_tag else "")
    text = (
        f"{method} {uri} SIP/2.0\n"
        f"Via: SIP/2.0/{transport} {via_host}:5060{branch_param}{via_extra}\n"
        "Max-Forwards: 70\n"
        f"To: Bob {to}\n"
        "From: Alice <sip:alice@192.0.2.10>;tag=1928301774\n"
        "Call-ID: a84b4c76e66710@pc33.example.com\n"
        f"CSeq: {cseq} {cseq_method or method}\n"
        "Contact: <sip:alice@192.0.2.10>\n"
        f"{extra}"
        "Content-Length: 0\n\n"
    )
    message = parse_message(crlf(text))
    assert isinstance(message, Request)
    return message


def reply(req: Request, code: int, *, to_tag: str | None = "a6c85cf") -> Response:
    return response_for(req, code, to_tag=to_tag if code != 100 else None)


class HasEvents(Protocol):
    def next_event(self) -> TransactionEvent | None: ...


def drain(core: HasEvents) -> list[TransactionEvent]:
    out = []
    while (event := core.next_event()) is not None:
        out.append(event)
    return out


def wire(layer: TransactionLayer) -> list[tuple[Request | Response, Peer]]:
    """Everything the layer queued, parsed back, with its destination."""
    return [(parse_message(data), peer) for data, peer in layer.data_to_send()]


def run_timers_until(layer: TransactionLayer, end: float) -> list[float]:
    """Fire the layer's timers in order up to *end*; return the times they fired."""
    fired = []
    while (at := layer.get_timer()) is not None and at <= end:
        layer.handle_timer(at)
        fired.append(at)
    return fired


class Link:
    """Two layers joined by an in-memory network; ``drop`` loses datagrams on purpose."""

    def __init__(self, a: TransactionLayer, a_peer: Peer, b: TransactionLayer, b_peer: Peer):
        self.ends = {a_peer: a, b_peer: b}
        self.address_of = {id(a): a_peer, id(b): b_peer}
        self.layers = (a, b)
        self.delivered: list[tuple[Peer, Request | Response]] = []
        self.drop = 0

    def pump(self, now: float) -> None:
        """Deliver until both sides are quiet."""
        busy = True
        while busy:
            busy = False
            for layer in self.layers:
                source = self.address_of[id(layer)]
                for data, destination in layer.data_to_send():
                    busy = True
                    if self.drop:
                        self.drop -= 1
                        continue
                    message = parse_message(data)
                    self.delivered.append((destination, message))
                    self.ends[destination].receive(message, source, now)
