"""A trunk that answers oddly, through the real ``PhoneSystem`` over UDP on 127.0.0.1.

``OddTrunk`` is raw UDP: it rings (180) and answers the first INVITE 200 at once, with
what each test puts in its attributes (a malformed Content-Type, an SDP naming a host
instead of an IP, a small Session-Expires). It records the methods it receives, so a
test can check that an answered leg we cannot use is hung up with BYE (the UA has ACKed
it: a confirmed dialog nobody BYEs would stay up at the trunk).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import cast

import pytest
from callrig import TIMERS, RacingTrunk, Rig, config_text, running_rig, sdp_answer

from sipdialer.app import PhoneSystem
from sipdialer.calls.call_legs import Leg
from sipdialer.config import parse_config
from sipdialer.simulate.phones import PhoneBehaviour, SimPhone
from sipdialer.simulate.trunk import SimTrunk
from sipdialer.sip.message import Message, Request, Response, parse_message, response_for
from sipdialer.transport.call_setup import LiveCall


class OddTrunk(asyncio.DatagramProtocol):
    """Answers the first INVITE 180 then 200 with ``content_type``, ``edit(sdp)`` and
    ``headers``; 200 to BYE/CANCEL; records ``received`` methods."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.invite: Request | None = None
        self.received: list[str] = []
        self.byes: list[Request] = []
        self.content_type = "application/sdp"
        self.edit: Callable[[bytes], bytes] = lambda body: body
        self.headers: list[tuple[str, str]] = []

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
            port = self.transport.get_extra_info("sockname")[1]
            send(response_for(message, 180, to_tag="odd").to_bytes(), addr)
            headers = [("Contact", f"<sip:odd@127.0.0.1:{port}>"),
                       ("Content-Type", self.content_type), *self.headers]  # fmt: skip
            body = self.edit(sdp_answer(message))
            ok = response_for(message, 200, to_tag="odd", body=body, headers=headers)
            send(ok.to_bytes(), addr)
        elif message.method in ("BYE", "CANCEL"):
            if message.method == "BYE":
                self.byes.append(message)
            send(response_for(message, 200).to_bytes(), addr)

    async def wait_bye(self, seconds: float = 2.0) -> None:
        for _ in range(int(seconds / 0.02)):
            if self.byes:
                return
            await asyncio.sleep(0.02)


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    async with running_rig(tmp_path, OddTrunk, answer_after=0.05) as rig:
        yield rig


def odd(rig: Rig) -> OddTrunk:
    return cast(OddTrunk, rig.racer)


async def test_200_with_a_malformed_content_type_is_hung_up(rig: Rig) -> None:
    odd(rig).content_type = "application"  # no subtype: the SIP parser's ParseError
    result = await rig.call("9600")
    await odd(rig).wait_bye()
    assert odd(rig).received[:2] == ["INVITE", "ACK"] and odd(rig).byes
    assert (result.cause, result.cause_q850) == ("INCOMPATIBLE_DESTINATION", 88)
    assert not result.bridged
    assert rig.system.endpoint.ua.state_size()["dialogs"] == 0


@pytest.mark.parametrize("address", ["trunk.example.invalid", "10.0.0.1/127"])
async def test_200_whose_sdp_names_no_ip_literal_is_hung_up(rig: Rig, address: str) -> None:
    """c= must be an IP literal: a host name would be resolved, blocking, by every
    sendto of the relay (and "/127" is a multicast TTL). Unusable: BYE, 488's cause."""
    odd(rig).edit = lambda body: body.replace(b"c=IN IP4 127.0.0.1", f"c=IN IP4 {address}".encode())
    result = await rig.call("9600")
    await odd(rig).wait_bye()
    assert odd(rig).byes and (result.cause, result.cause_q850) == ("INCOMPATIBLE_DESTINATION", 88)
    assert not result.bridged


async def test_a_failure_handling_the_2xx_still_byes_the_dialog(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = rig.system.calls._apply_answer

    def broken(live: LiveCall, leg: Leg, message: Message) -> bool:
        if leg is Leg.MEMBER and isinstance(message, Response) and message.status_code == 200:
            raise RuntimeError("injected")
        return original(live, leg, message)

    monkeypatch.setattr(rig.system.calls, "_apply_answer", broken)
    result = await rig.call("9600")
    await odd(rig).wait_bye()
    assert odd(rig).byes, "the confirmed dialog was left up at the trunk"
    assert result.cause == "CRASH" and not result.bridged
    assert rig.system.endpoint.ua.state_size()["dialogs"] == 0


class ScriptedUas(asyncio.DatagramProtocol):
    """Answers each INVITE with ``reply(request)`` -> (status, headers); 200 to the
    rest; records every INVITE it receives."""

    def __init__(self, reply: Callable[[Request], tuple[int, list[tuple[str, str]]]]) -> None:
        self.reply = reply
        self.invites: list[Request] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        assert self.transport is not None
        message = parse_message(data)
        if not isinstance(message, Request) or message.method == "ACK":
            return
        status, headers = 200, list[tuple[str, str]]()
        if message.method == "INVITE":
            self.invites.append(message)
            status, headers = self.reply(message)
        response = response_for(message, status, to_tag="s", headers=headers)
        self.transport.sendto(response.to_bytes(), addr)


CHALLENGE = ("WWW-Authenticate", 'Digest realm="evil", nonce="abc123", algorithm=MD5, qop="auth"')


async def _system_on(tmp_path: Path, port: int) -> AsyncIterator[Rig]:
    """A PhoneSystem whose trunks all point at 127.0.0.1:*port*, and its agent phone."""
    dead = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dead.bind(("127.0.0.1", 0))
    text = config_text(tmp_path / "d.db", ("127.0.0.1", port), dead.getsockname()[1], port,
                       port, 5.0)  # fmt: skip
    system = PhoneSystem(parse_config(text))
    sip = await system.start()
    phone = SimPhone("101", "secret101", sip, rtp_ports="44400-44599", timers=TIMERS)
    await phone.start()
    phone.behaviour = PhoneBehaviour(answer_after=0.05)
    rig = Rig(system, cast(SimTrunk, None), phone, cast(RacingTrunk, None))
    system.calls.on_event(rig.on_event)
    try:
        yield rig
    finally:
        await phone.close()
        await system.close()
        dead.close()
        assert system.endpoint.handler_errors == 0 and system.calls.active == 0


async def test_a_redirect_to_another_host_is_not_followed(tmp_path: Path) -> None:
    """The trunk (with credentials) 302s to another address that would challenge: we
    send nothing there (least of all the trunk's digest answer); the 3xx is the final."""
    loop = asyncio.get_running_loop()
    et, evil = await loop.create_datagram_endpoint(
        lambda: ScriptedUas(lambda r: (401, [CHALLENGE])), local_addr=("127.0.0.1", 0)
    )
    contact = f"<sip:19005551234@127.0.0.1:{evil.port}>"
    rt, trunk = await loop.create_datagram_endpoint(
        lambda: ScriptedUas(lambda r: (302, [("Contact", contact)])), local_addr=("127.0.0.1", 0)
    )
    try:
        async for rig in _system_on(tmp_path, trunk.port):
            result = await rig.call("1000")
            assert (result.cause, result.sip_code) == ("NORMAL_UNSPECIFIED", 302)
            assert len(trunk.invites) == 1 and evil.invites == []
    finally:
        et.close()
        rt.close()


async def test_a_redirect_at_the_trunk_is_routed_again(tmp_path: Path) -> None:
    """A 302 to the trunk's own address is followed, its user part through the route
    again: route ^97 strips 2 digits from 975556 as it did from 97555."""
    loop = asyncio.get_running_loop()
    port: list[int] = []

    def reply(request: Request) -> tuple[int, list[tuple[str, str]]]:
        if request.uri.startswith("sip:555@"):
            return 302, [("Contact", f"<sip:975556@127.0.0.1:{port[0]}>")]
        return 486, []

    rt, trunk = await loop.create_datagram_endpoint(
        lambda: ScriptedUas(reply), local_addr=("127.0.0.1", 0)
    )
    port.append(trunk.port)
    try:
        async for rig in _system_on(tmp_path, trunk.port):
            result = await rig.call("97555")
            assert [r.uri.split("@")[0] for r in trunk.invites] == ["sip:555", "sip:5556"]
            assert (result.cause, result.sip_code) == ("USER_BUSY", 486)
    finally:
        rt.close()
