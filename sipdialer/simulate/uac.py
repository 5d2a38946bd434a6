"""A small calling UAC on this stack: places N calls, holds each, hangs up with BYE.

Used by the interop tests (calls to ``sipp -sn uas``). Run it alone:
``python -m sipdialer.simulate.uac --target 127.0.0.1:5080 --calls 10``.
"""

from __future__ import annotations

import argparse
import asyncio
from dataclasses import dataclass, field

from sipdialer.sip.peer import Peer
from sipdialer.sip.ua import UaConfig
from sipdialer.sip.ua_auth import Account
from sipdialer.sip.ua_events import (
    CallAnswered,
    CallFailed,
    DialogTerminated,
    ResponseReceived,
    UaEvent,
)
from sipdialer.transport.endpoint import SipEndpoint

from .uas import answer_sdp


@dataclass
class UacResult:
    answered: int = 0
    failed: dict[int, int] = field(default_factory=dict)
    hung_up: int = 0
    bye_ok: int = 0
    remote_bye: int = 0


class CallingUac:
    """Places calls through an endpoint and records how each ended."""

    def __init__(
        self,
        endpoint: SipEndpoint,
        target: Peer,
        *,
        hold: float = 0.2,
        user: str = "service",
        credentials: Account | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.target = target
        self.hold = hold
        self.user = user
        self.credentials = credentials
        self.result = UacResult()
        self._open: set[str] = set()
        self._byes: set[str] = set()
        self.done = asyncio.Event()
        self._expected = 0
        endpoint.on_event(self._on_event)

    def place(self, count: int = 1) -> None:
        ua = self.endpoint.ua
        self._expected += count
        for index in range(count):
            host = ua.config.host
            uri = f"sip:{self.user}@{self.target.host}:{self.target.port}"
            if self.target.transport != "UDP":
                uri += f";transport={self.target.transport.lower()}"
            handle = ua.invite(
                uri, self.target, self.endpoint.now,
                from_uri=f"sip:uac@{host}", body=answer_sdp(host, 40002, index + 1),
                credentials=self.credentials,
            )  # fmt: skip
            self._open.add(handle)
        self.endpoint.flush()

    def _finished(self) -> int:
        r = self.result
        return sum(r.failed.values()) + r.hung_up + r.remote_bye

    def _on_event(self, event: UaEvent) -> None:
        ua = self.endpoint.ua
        if isinstance(event, CallAnswered):
            self.result.answered += 1
            loop = asyncio.get_running_loop()
            loop.call_later(self.hold, self._hang_up, event)
        elif isinstance(event, CallFailed):
            self.result.failed[event.status] = self.result.failed.get(event.status, 0) + 1
        elif isinstance(event, DialogTerminated):
            if event.by_remote:
                self.result.remote_bye += 1
            else:
                self.result.hung_up += 1
        elif isinstance(event, ResponseReceived) and event.key in self._byes:
            if event.response.status_code == 200:
                self.result.bye_ok += 1
        del ua
        if self._finished() >= self._expected:
            self.done.set()

    def _hang_up(self, answered: CallAnswered) -> None:
        ua = self.endpoint.ua
        if ua.dialog(answered.dialog) is not None:
            key = ua.request_in_dialog(answered.dialog, "BYE", self.endpoint.now)
            self._byes.add(key)
            self.endpoint.flush()


async def run_calls(target: Peer, calls: int, rate: float, hold: float) -> UacResult:
    endpoint = SipEndpoint(UaConfig(host="127.0.0.1", port=0, user="uac"))
    await endpoint.start("127.0.0.1", 0)
    uac = CallingUac(endpoint, target, hold=hold)
    interval = 1.0 / rate if rate > 0 else 0.0
    for _ in range(calls):
        uac.place(1)
        if interval:
            await asyncio.sleep(interval)
    try:
        await asyncio.wait_for(uac.done.wait(), 40 + hold)
    except TimeoutError:
        pass
    await asyncio.sleep(0.1)  # let the last BYE's 200 arrive
    await endpoint.close()
    return uac.result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--target", default="127.0.0.1:5080")
    parser.add_argument("--transport", default="udp", choices=["udp", "tcp"])
    parser.add_argument("--calls", type=int, default=1)
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--hold", type=float, default=0.2)
    args = parser.parse_args(argv)
    host, _, port = args.target.rpartition(":")
    target = Peer(args.transport.upper(), host, int(port))
    result = asyncio.run(run_calls(target, args.calls, args.rate, args.hold))
    print(result, flush=True)
    return 0 if result.answered == args.calls and not result.failed else 1


if __name__ == "__main__":
    raise SystemExit(main())
