"""A small answering UAS on this stack: rings, answers with SDP, takes BYE.

Used by the interop tests (``sipp -sn uac`` against it) and by ``bench/sip_uas.py``.
Run it alone: ``python -m sipdialer.simulate.uas --listen 127.0.0.1:5070``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from dataclasses import dataclass

from sipdialer.sip.transaction.keys import ServerTransactionKey
from sipdialer.sip.ua import UaConfig
from sipdialer.sip.ua_events import (
    CallCancelled,
    CallConfirmed,
    DialogTerminated,
    IncomingCall,
    UaEvent,
)
from sipdialer.transport.endpoint import SipEndpoint


def answer_sdp(host: str, port: int, session: int) -> bytes:
    """A PCMU/PCMA + telephone-event answer (static: this UAS sends no media)."""
    return (
        f"v=0\r\no=- {session} {session} IN IP4 {host}\r\ns=sipdialer\r\nc=IN IP4 {host}\r\n"
        f"t=0 0\r\nm=audio {port} RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\n"
        "a=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n"
        "a=ptime:20\r\na=sendrecv\r\n"
    ).encode()


@dataclass
class UasStats:
    calls: int = 0
    confirmed: int = 0
    ended: int = 0
    cancelled: int = 0


class AnsweringUas:
    """Answers every INVITE: 180 at once, 200 after ``ring_time`` seconds."""

    def __init__(self, endpoint: SipEndpoint, *, ring_time: float = 0.0, status: int = 200):
        self.endpoint = endpoint
        self.ring_time = ring_time
        self.status = status
        self.stats = UasStats()
        endpoint.on_request("INVITE", self._on_invite)
        endpoint.on_event(self._on_event)

    def _on_invite(self, event: UaEvent) -> None:
        assert isinstance(event, IncomingCall)
        self.stats.calls += 1
        ua = self.endpoint.ua
        if self.status >= 300:
            ua.respond(event.key, self.status, self.endpoint.now)
            return
        ua.respond(event.key, 180, self.endpoint.now)
        if self.ring_time <= 0:
            self._answer(event.key)
        else:
            loop = asyncio.get_running_loop()
            loop.call_later(self.ring_time, self._answer, event.key)

    def _answer(self, key: ServerTransactionKey) -> None:
        host, port = self.endpoint.ua.config.host, 40000
        body = answer_sdp(host, port, self.stats.calls)
        self.endpoint.ua.respond(key, 200, self.endpoint.now, body=body)
        self.endpoint.flush()

    def _on_event(self, event: UaEvent) -> None:
        if isinstance(event, CallConfirmed):
            self.stats.confirmed += 1
        elif isinstance(event, DialogTerminated):
            self.stats.ended += 1
        elif isinstance(event, CallCancelled):
            self.stats.cancelled += 1


async def serve(host: str, port: int, ring_time: float, duration: float | None) -> UasStats:
    endpoint = SipEndpoint(UaConfig(host=host, port=port, user="uas"))
    await endpoint.start(host, port)
    uas = AnsweringUas(endpoint, ring_time=ring_time)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await asyncio.wait_for(stop.wait(), duration)
    except TimeoutError:
        pass
    await endpoint.close()
    return uas.stats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--listen", default="127.0.0.1:5070")
    parser.add_argument("--ring-time", type=float, default=0.0)
    parser.add_argument("--duration", type=float, default=None, help="stop after N seconds")
    args = parser.parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    stats = asyncio.run(serve(host, int(port), args.ring_time, args.duration))
    print(f"calls={stats.calls} confirmed={stats.confirmed} ended={stats.ended}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
