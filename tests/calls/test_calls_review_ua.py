"""Review 4, UA-level defects, through the real ``PhoneSystem`` over UDP on 127.0.0.1.

Route ^96 goes to ``Script``, a raw UDP trunk whose ``on_invite``/``on_cancel`` write
what a misbehaving trunk sends. A 2xx no dialog can be made from must end the call as
PROTOCOL_ERROR (Q.850 111) at once, ACKed and hung up at the trunk, with its line, media
and ports given back (the rig checks the last two on exit); every 2xx of a cancelled
INVITE is ACKed and BYEd; a wrong trunk password costs one authenticated INVITE.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import cast

import pytest
from callrig import Rig, running_rig, sdp_answer

from sipdialer.sip.message import Request, Response, parse_message, response_for

TIMER_M = 64 * 0.02
"The rig's T1 is 20 ms: the INVITE client transaction's Accepted state lasts this long."

Handler = Callable[["Script", Request], None]


class Script(asyncio.DatagramProtocol):
    """A raw UDP trunk: ``on_invite`` / ``on_cancel`` answer (200 to BYE, 200 to CANCEL
    before ``on_cancel``); every request received is kept in ``received``."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.addr: tuple[str, int] | None = None
        self.invite: Request | None = None
        self.received: list[Request] = []
        self.on_invite: Handler = lambda script, invite: None
        self.on_cancel: Handler = lambda script, cancel: None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    @property
    def contact(self) -> tuple[str, str]:
        assert self.transport is not None
        return ("Contact", f"<sip:trunk@127.0.0.1:{self.transport.get_extra_info('sockname')[1]}>")

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        message = parse_message(data)
        if not isinstance(message, Request):
            return
        self.addr = addr
        self.received.append(message)
        if message.method == "INVITE" and message.to.tag is None:
            self.invite = message
            self.on_invite(self, message)
        elif message.method == "CANCEL":
            self.send(response_for(message, 200))
            self.on_cancel(self, message)
        elif message.method == "BYE":
            self.send(response_for(message, 200))

    def send(self, message: Response) -> None:
        assert self.transport is not None and self.addr is not None
        self.transport.sendto(message.to_bytes(), self.addr)

    def ok(self, invite: Request, tag: str | None, *headers: tuple[str, str]) -> Response:
        return response_for(invite, 200, to_tag=tag, body=sdp_answer(invite),
                            headers=[*headers, ("Content-Type", "application/sdp")])  # fmt: skip

    def got(self) -> list[tuple[str, str | None]]:
        return [(r.method, r.to.tag) for r in self.received]


def script(rig: Rig) -> Script:
    return cast(Script, rig.racer)


async def eventually(predicate: Callable[[], bool], seconds: float) -> bool:
    for _ in range(int(seconds / 0.02)):
        if predicate():
            return True
        await asyncio.sleep(0.02)
    return predicate()


def ring_timeout(seconds: float) -> Callable[[str], str]:
    """Route ^96's ring timeout: longer than the test, so only the UA can end the call."""
    return lambda text: text.replace("call_timeout = 0.4", f"call_timeout = {seconds}")


@pytest.mark.parametrize(
    ("tag", "contact"),
    [(None, None), ("A", "<sip:>"), ("A", "garbage")],
    ids=["no-to-tag", "contact-sip-colon", "contact-garbage"],
)
async def test_unusable_2xx_ends_the_call_as_a_protocol_error(
    tmp_path: Path, tag: str | None, contact: str | None
) -> None:
    def answer(trunk: Script, invite: Request) -> None:
        trunk.send(response_for(invite, 180, to_tag="A", headers=[trunk.contact]))
        trunk.send(trunk.ok(invite, tag, ("Contact", contact) if contact else trunk.contact))

    async with running_rig(tmp_path, Script, answer_after=0.05, edit=ring_timeout(5.0)) as rig:
        script(rig).on_invite = answer
        call_id = rig.start_call("9600")
        # Before the fix the 2xx vanished in the UA and the call stayed up until shutdown.
        result = await asyncio.wait_for(rig.ended[call_id], 2.0)
        assert (result.cause, result.cause_q850) == ("PROTOCOL_ERROR", 111)
        assert not result.bridged and result.member_answered_at is None
        # The trunk believes the call is up: it got the ACK of its 2xx, then our BYE.
        assert await eventually(lambda: ("BYE", tag) in script(rig).got(), 1.0)
        assert script(rig).got() == [("INVITE", None), ("ACK", tag), ("BYE", tag)]
        assert rig.system.calls.gates["racer"].in_use == 0  # the trunk's line is back
        assert rig.system.media.ports.in_use == 0
        ua = rig.system.endpoint.ua
        assert await eventually(lambda: not any(ua.state_size().values()), 3 * TIMER_M), str(
            ua.state_size()
        )


async def test_every_2xx_that_raced_our_cancel_is_acked_and_hung_up(tmp_path: Path) -> None:
    """Two forks ring; our ring-timeout CANCEL crosses 200 from A, then from B, then A's
    200 again: ACK+BYE for A, ACK+BYE for B, A's ACK again. Nothing left in the UA."""

    def ring(trunk: Script, invite: Request) -> None:
        trunk.send(response_for(invite, 180, to_tag="A", headers=[trunk.contact]))
        trunk.send(response_for(invite, 180, to_tag="B", headers=[trunk.contact]))

    def answer_late(trunk: Script, cancel: Request) -> None:
        assert trunk.invite is not None
        trunk.send(trunk.ok(trunk.invite, "A", trunk.contact))
        loop = asyncio.get_running_loop()
        loop.call_later(0.05, trunk.send, trunk.ok(trunk.invite, "B", trunk.contact))
        loop.call_later(0.1, trunk.send, trunk.ok(trunk.invite, "A", trunk.contact))

    async with running_rig(tmp_path, Script, answer_after=0.05) as rig:
        script(rig).on_invite, script(rig).on_cancel = ring, answer_late
        result = await rig.call("9600")
        assert (result.cause, result.sip_code) == ("NO_ANSWER", 487)
        expected = [("INVITE", None), ("CANCEL", None), ("ACK", "A"), ("BYE", "A"),
                    ("ACK", "B"), ("BYE", "B"), ("ACK", "A")]  # fmt: skip
        assert await eventually(lambda: script(rig).got() == expected, 1.0), script(rig).got()
        ua = rig.system.endpoint.ua
        assert await eventually(lambda: not any(ua.state_size().values()), 3 * TIMER_M), str(
            ua.state_size()
        )


def with_credentials(text: str) -> str:
    return ring_timeout(5.0)(text).replace(
        'name = "racer"\n', 'name = "racer"\nusername = "u"\npassword = "wrong"\n'
    )


async def test_a_wrong_trunk_password_costs_one_authenticated_invite(tmp_path: Path) -> None:
    def challenge(trunk: Script, invite: Request) -> None:
        nonce = f"n{len(trunk.received)}"  # a fresh nonce each time, never stale=true
        value = f'Digest realm="trunk", nonce="{nonce}", algorithm=MD5, qop="auth"'
        trunk.send(response_for(invite, 407, to_tag=nonce,
                                headers=[("Proxy-Authenticate", value)]))  # fmt: skip

    async with running_rig(tmp_path, Script, answer_after=0.05, edit=with_credentials) as rig:
        script(rig).on_invite = challenge
        result = await asyncio.wait_for(rig.call("9600"), 3.0)
        invites = [r for r in script(rig).received if r.method == "INVITE"]
        # RFC 7616 §3.3: a new challenge without stale=true means the password is wrong.
        assert [r.headers.get("Proxy-Authorization") is not None for r in invites] == [
            False, True,
        ]  # fmt: skip
        assert (result.cause, result.cause_q850, result.sip_code) == ("CALL_REJECTED", 21, 407)
