"""The rig of ``test_calls_loopback.py``: configuration, behaviours, a tiny engine, and
two hand-made trunks (a 302 redirector, a raw UDP one that answers only after CANCEL)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from sipdialer.app import PhoneSystem
from sipdialer.calls.events import (
    AgentAnswered,
    CallEnded,
    CallEvent,
    CallOrder,
    CallResult,
    MemberAnswered,
)
from sipdialer.config import parse_config
from sipdialer.simulate.behaviour import Behaviour
from sipdialer.simulate.phones import PhoneBehaviour, SimPhone
from sipdialer.simulate.trunk import SimTrunk
from sipdialer.sip.message import Request, parse_message, response_for
from sipdialer.sip.sdp import SessionDescription
from sipdialer.sip.sdp_offer import make_answer
from sipdialer.sip.timers import TimerConfig
from sipdialer.sip.ua import UaConfig
from sipdialer.sip.ua_events import IncomingCall, UaEvent
from sipdialer.transport.endpoint import SipEndpoint

TIMERS = TimerConfig(t1=0.02, t2=0.16, t4=0.2)
BEHAVIOURS = (
    Behaviour(r"^100", ring=0.2),  # answer, wait for our BYE; PCMU, 1000 Hz
    Behaviour(r"^101", ring=0.2, codec="PCMA", tone=1200.0),
    Behaviour(r"^11", ring=0.1, talk=0.6),  # the trunk hangs up first
    Behaviour(r"^2", ring=0.1, status=486),
    Behaviour(r"^3", status=0),  # never answers
    Behaviour(r"^4", ring=0.1, status=603),
    Behaviour(r"^5", status=404),
    Behaviour(r"^6", ring=0.1, status=480),
    Behaviour(r"^7", status=503),
    Behaviour(r"^8", ring=0.5, early_media=True, tone=800.0),
    Behaviour(r"^0", ring=0.1, challenge=True),
)
_ids = itertools.count(1)


def config_text(
    db: Path, trunk: tuple[str, int], dead: int, redirector: int, racer: int,
    media_timeout: float,
) -> str:  # fmt: skip
    return f"""
[sip]
listen = "127.0.0.1:0"
t1 = {TIMERS.t1}
t2 = {TIMERS.t2}
t4 = {TIMERS.t4}
qualify_interval = 0
[media]
rtp_ports = "44000-44199"
media_timeout = {media_timeout}
[store]
url = "sqlite:///{db}"
[[trunks]]
name = "sim"
address = "{trunk[0]}:{trunk[1]}"
username = "dialer"
password = "trunkpw"
cps = 1000
max_calls = 1
[[trunks]]
name = "slow"
address = "{trunk[0]}:{trunk[1]}"
cps = 2
[[trunks]]
name = "dead"
address = "localhost:{dead}"
[[trunks]]
name = "redirector"
address = "127.0.0.1:{redirector}"
[[trunks]]
name = "racer"
address = "127.0.0.1:{racer}"
[[routes]]
pattern = "^99"
trunk = "dead"
[[routes]]
pattern = "^98"
trunk = "redirector"
[[routes]]
pattern = "^96"
trunk = "racer"
variables = {{ call_timeout = 0.4 }}
[[routes]]
pattern = "^97"
trunk = "slow"
strip = 2
[[routes]]
pattern = "^3"
trunk = "sim"
variables = {{ call_timeout = 0.8 }}
[[routes]]
pattern = "^[0-9]+$"
trunk = "sim"
[[agents]]
id = "101"
name = "Alice"
password = "secret101"
"""


class RacingTrunk(asyncio.DatagramProtocol):
    """A raw UDP "trunk" that rings, and answers 200 only once our CANCEL arrived: the
    200-after-CANCEL race, made deterministic. It records the methods it receives."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.invite: Request | None = None
        self.received: list[str] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        assert self.transport is not None
        message = parse_message(data)
        if not isinstance(message, Request):
            return
        self.received.append(message.method)
        send = self.transport.sendto
        if message.method == "INVITE" and self.invite is None:
            self.invite = message
            send(response_for(message, 180, to_tag="racer").to_bytes(), addr)
        elif message.method == "CANCEL" and self.invite is not None:
            send(response_for(message, 200).to_bytes(), addr)
            port = self.transport.get_extra_info("sockname")[1]
            ok = response_for(self.invite, 200, to_tag="racer", body=sdp_answer(self.invite),
                              headers=[("Contact", f"<sip:racer@127.0.0.1:{port}>"),
                                       ("Content-Type", "application/sdp")])  # fmt: skip
            send(ok.to_bytes(), addr)
        elif message.method == "BYE":
            send(response_for(message, 200).to_bytes(), addr)


def sdp_answer(invite: Request) -> bytes:
    offer = SessionDescription.parse(invite.body)
    answer, _ = make_answer(offer, "127.0.0.1", 44998, session_id=1, session_version=1)
    return answer.to_bytes()


@dataclass
class Rig:
    system: PhoneSystem
    trunk: SimTrunk
    phone: SimPhone
    racer: RacingTrunk
    events: list[CallEvent] = field(default_factory=list)
    ended: dict[str, asyncio.Future[CallResult]] = field(default_factory=dict)

    def on_event(self, event: CallEvent) -> None:
        self.events.append(event)
        calls = self.system.calls
        if isinstance(event, AgentAnswered):
            calls.dial_member(event.call_id)
        elif isinstance(event, MemberAnswered):
            calls.bridge(event.call_id)
        elif isinstance(event, CallEnded):
            future = self.ended.get(event.call_id)
            if future is not None and not future.done():
                future.set_result(event.result)

    def start_call(self, number: str, *, agent_timeout: float = 2.0,
                   agent: str = "101") -> str:  # fmt: skip
        call_id = f"call-{next(_ids)}"
        self.ended[call_id] = asyncio.get_running_loop().create_future()
        order = CallOrder(
            call_id, "reminders", "m42", "Olena Koval", number, agent,
            variables={"product": "x"}, agent_timeout=agent_timeout,
        )  # fmt: skip
        self.system.calls.originate(order)
        return call_id

    async def call(self, number: str, *, timeout: float = 8.0) -> CallResult:
        call_id = self.start_call(number)
        return await asyncio.wait_for(self.ended[call_id], timeout)

    def of(self, call_id: str, kind: type[CallEvent]) -> list[CallEvent]:
        return [e for e in self.events if e.call_id == call_id and isinstance(e, kind)]


REDIRECTED = "98000"
"The number ``start_redirector`` redirects to (at its own address) and answers."


async def start_redirector(trunk: tuple[str, int]) -> SipEndpoint:
    """A UAS that answers an INVITE for ``REDIRECTED`` 200 (SDP answer, no media) and
    every other INVITE 302: Contacts at the sim trunk *trunk* (another address: never
    followed) ranked above one for ``REDIRECTED`` at the redirector itself."""
    endpoint = SipEndpoint(UaConfig(host="127.0.0.1", port=0, user="redirect", timers=TIMERS))

    def redirect(event: UaEvent) -> None:
        assert isinstance(event, IncomingCall)
        uri = event.request.uri
        if uri.startswith(f"sip:{REDIRECTED}@"):
            endpoint.ua.respond(event.key, 200, endpoint.now, body=sdp_answer(event.request))
            return
        here = endpoint.ua.config.port
        contact = (f"<sip:1000@{trunk[0]}:{trunk[1]}>;q=0.9, <tel:+1000>, "
                   f"<sip:{REDIRECTED}@127.0.0.1:{here}>;q=0.5")  # fmt: skip
        endpoint.ua.respond(event.key, 302, endpoint.now, headers=[("Contact", contact)])

    endpoint.on_request("INVITE", redirect)
    await endpoint.start("127.0.0.1", 0, tcp=False)
    return endpoint


@contextlib.asynccontextmanager
async def running_rig(
    tmp_path: Path,
    raw_trunk: Callable[[], asyncio.DatagramProtocol],
    *,
    media_timeout: float = 5.0,
    answer_after: float | None = None,
    edit: Callable[[str], str] = lambda text: text,
) -> AsyncIterator[Rig]:
    """The dialer, the simulated trunk, a dead trunk, the redirector, one raw UDP trunk
    made by ``raw_trunk`` (route ^96, ``Rig.racer``) and agent 101's phone; on exit,
    everything is closed and the dialer must have left no error, call or media behind.
    ``edit`` may change the configuration text before it is parsed."""
    trunk = SimTrunk(BEHAVIOURS, username="dialer", password="trunkpw",
                     rtp_ports="44200-44399", timers=TIMERS, tcp=False)  # fmt: skip
    address = await trunk.start()
    dead = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # bound, never answers
    dead.bind(("127.0.0.1", 0))
    redirector = await start_redirector(address)
    assert redirector.ua.config.port
    loop = asyncio.get_running_loop()
    raw_transport, raw = await loop.create_datagram_endpoint(raw_trunk, local_addr=("127.0.0.1", 0))
    raw_port = raw_transport.get_extra_info("sockname")[1]
    text = config_text(tmp_path / "d.db", address, dead.getsockname()[1],
                       redirector.ua.config.port, raw_port, media_timeout)  # fmt: skip
    system = PhoneSystem(parse_config(edit(text)))
    sip = await system.start()
    phone = SimPhone("101", "secret101", sip, rtp_ports="44400-44599", timers=TIMERS)
    await phone.start()
    if answer_after is not None:
        phone.behaviour = PhoneBehaviour(answer_after=answer_after)
    rig = Rig(system, trunk, phone, cast(RacingTrunk, raw))
    system.calls.on_event(rig.on_event)
    try:
        yield rig
    finally:
        await phone.close()
        await system.close()
        await trunk.close()
        await redirector.close()
        raw_transport.close()
        dead.close()
        assert system.endpoint.internal_errors == 0 and system.endpoint.handler_errors == 0
        assert system.media.active == 0 and system.calls.active == 0
