"""In-dialog rules of the call service against a raw UDP trunk on 127.0.0.1.

``ScriptTrunk`` answers the member INVITE 200 at once (with ``answer_headers``: a
session timer, an Allow) and then does what each test sets: answer an UPDATE with
``update_status`` (a trunk that lists UPDATE yet refuses it), answer our re-INVITE with
``reinvite_status`` or hold it unanswered (``hold_reinvites``), and send its own
re-INVITE/UPDATE in the dialog (``send``), recording our responses. Timers' deadlines
are moved to "now" (RFC 4028's minimum interval is 90 s). Also: the P-Asserted-Identity
of the member INVITE, through ``SimTrunk``; and a 2xx whose Contact names a second
socket (``Target``), where the ACK and BYE must go.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import cast

import pytest
from callrig import Rig, running_rig, sdp_answer

from sipdialer.calls.events import Side
from sipdialer.sip.message import Request, Response, parse_message, response_for
from sipdialer.transport.call_setup import LiveCall

ALLOW = ("Allow", "INVITE, ACK, BYE, CANCEL, UPDATE")
WE_REFRESH = [("Session-Expires", "90;refresher=uac"), ("Require", "timer")]
_branches = itertools.count(1)


class ScriptTrunk(asyncio.DatagramProtocol):
    """See the module docstring."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.invite: Request | None = None
        self.peer: tuple[str, int] | None = None
        self.requests: list[Request] = []
        self.responses: list[Response] = []
        self.answer_headers: list[tuple[str, str]] = []
        self.update_status = 200
        self.reinvite_status = 200
        self.hold_reinvites = False
        self.held: list[Request] = []
        self.cseq = 100
        self.contact: str | None = None
        "The Contact of the 200 to the INVITE (default: this socket)."

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])

    def methods(self) -> list[str]:
        return [r.method for r in self.requests]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        message = parse_message(data)
        if isinstance(message, Response):
            self.responses.append(message)
            return
        assert isinstance(message, Request)
        self.requests.append(message)
        if message.method == "ACK":
            return
        if message.method == "INVITE" and self.invite is None:
            self.invite, self.peer = message, addr
            self._reply(message, 180)
            contact = () if self.contact is None else (("Contact", self.contact),)
            self._reply(message, 200, (*contact, *self.answer_headers), sdp_answer(message))
        elif message.method == "INVITE":
            if self.hold_reinvites:
                self.held.append(message)
            else:
                self.answer_reinvite(message)
        elif message.method == "UPDATE":
            self._reply(message, self.update_status)
        else:
            self._reply(message, 200)

    def answer_reinvite(self, request: Request, status: int | None = None) -> None:
        status = self.reinvite_status if status is None else status
        if status == 200:
            self._reply(request, 200, tuple(self.answer_headers), sdp_answer(request))
        else:
            self._reply(request, status)

    def _reply(self, request: Request, status: int, headers: tuple[tuple[str, str], ...] = (),
               body: bytes = b"") -> None:  # fmt: skip
        assert self.transport is not None
        extra = list(headers)
        if not any(name == "Contact" for name, _ in headers):
            extra.insert(0, ("Contact", f"<sip:odd@127.0.0.1:{self.port}>"))
        if body:
            extra.append(("Content-Type", "application/sdp"))
        response = response_for(request, status, to_tag="odd", headers=extra, body=body)
        self.transport.sendto(response.to_bytes(), self.peer)

    def send(self, method: str, body: bytes = b"", *, cseq: int | None = None) -> int:
        """An in-dialog request of ours (the callee's side of the INVITE's dialog)."""
        assert self.transport is not None and self.invite is not None and self.peer
        invite = self.invite
        if cseq is None:
            self.cseq += 1
            cseq = self.cseq
        contact = (invite.headers.get("Contact") or "").split("<")[-1].split(">")[0]
        lines = [
            f"{method} {contact} SIP/2.0",
            f"Via: SIP/2.0/UDP 127.0.0.1:{self.port};branch=z9hG4bKodd{next(_branches)}",
            "Max-Forwards: 70",
            f"From: {invite.headers.get('To')};tag=odd",
            f"To: {invite.headers.get('From')}",
            f"Call-ID: {invite.headers.get('Call-ID')}",
            f"CSeq: {cseq} {method}",
            f"Contact: <sip:odd@127.0.0.1:{self.port}>",
        ]
        if body:
            lines.append("Content-Type: application/sdp")
        lines.append(f"Content-Length: {len(body)}")
        self.transport.sendto("\r\n".join(lines).encode() + b"\r\n\r\n" + body, self.peer)
        return cseq

    def offer(self) -> bytes:
        assert self.invite is not None
        return sdp_answer(self.invite)  # a valid PCMU SDP, as an offer

    async def response_to(self, cseq: int, method: str, seconds: float = 2.0) -> Response:
        for _ in range(int(seconds / 0.01)):
            for response in self.responses:
                if response.headers.get("CSeq") == f"{cseq} {method}" and (
                    response.status_code >= 200
                ):
                    return response
            await asyncio.sleep(0.01)
        raise AssertionError(f"no final response to {cseq} {method}")

    async def wait_for(self, method: str, count: int = 1, seconds: float = 2.0) -> None:
        for _ in range(int(seconds / 0.01)):
            if self.methods().count(method) >= count:
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"{method} x{count} never came: {self.methods()}")


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    def caller_id(text: str) -> str:
        return text.replace('name = "sim"\n', 'name = "sim"\ncaller_id = "380441234567"\n', 1)

    async with running_rig(tmp_path, ScriptTrunk, answer_after=0.05, edit=caller_id) as rig:
        yield rig


def script(rig: Rig) -> ScriptTrunk:
    return cast(ScriptTrunk, rig.racer)


async def _answered(rig: Rig) -> tuple[str, LiveCall]:
    """A call whose member leg (the script trunk, route ^96) is up."""
    call_id = rig.start_call("9600")
    live = rig.system.calls._calls[call_id]
    for _ in range(300):
        if (
            live.member is not None
            and live.member.dialog is not None
            and "ACK" in (script(rig).methods())
        ):
            return call_id, live
        await asyncio.sleep(0.01)
    raise AssertionError("the member leg never came up")


def _refresh_now(rig: Rig, live: LiveCall) -> None:
    assert live.member is not None and live.member.timer is not None
    live.member.timer.refresh_at = rig.system.calls.endpoint.now
    rig.system.calls._arm(live)


async def _hang_up(rig: Rig, call_id: str) -> None:
    rig.system.calls.hangup(call_id)
    await asyncio.wait_for(rig.ended[call_id], 5)


# --- RFC 4028 refresh failures ------------------------------------------------------------


@pytest.mark.parametrize("status", [501, 488, 500, 405])
async def test_a_refused_update_refresh_falls_back_to_a_reinvite(rig: Rig, status: int) -> None:
    trunk = script(rig)
    trunk.answer_headers = [*WE_REFRESH, ALLOW]
    trunk.update_status = status
    call_id, live = await _answered(rig)
    assert live.member is not None
    timer = live.member.timer
    assert timer is not None and timer.we_refresh and timer.refresh_method == "UPDATE"
    _refresh_now(rig, live)
    await trunk.wait_for("UPDATE")
    await trunk.wait_for("INVITE", 2)  # the fallback re-INVITE, our current SDP as offer
    reinvite = [r for r in trunk.requests if r.method == "INVITE"][-1]
    assert reinvite.body and reinvite.headers.get("Session-Expires") == "90;refresher=uac"
    assert trunk.invite is not None
    first_o = trunk.invite.body.split(b"\r\n")[1].split()
    again_o = reinvite.body.split(b"\r\n")[1].split()
    assert again_o[1] == first_o[1]  # same o= session id (RFC 3264 §8)
    await trunk.wait_for("ACK", 2)  # of the re-INVITE's 2xx
    new_timer = live.member.timer
    assert new_timer is not None and new_timer is not timer and not new_timer.expired
    assert not live.core.ending
    # The next refresh of this leg goes by re-INVITE at once (the UPDATE is refused).
    _refresh_now(rig, live)
    await trunk.wait_for("INVITE", 3)
    assert trunk.methods().count("UPDATE") == 1
    await _hang_up(rig, call_id)


async def test_a_refused_reinvite_refresh_is_retried_before_expiry(rig: Rig) -> None:
    trunk = script(rig)
    trunk.answer_headers = list(WE_REFRESH)  # no UPDATE in Allow: re-INVITE refreshes
    trunk.reinvite_status = 488
    call_id, live = await _answered(rig)
    assert live.member is not None and live.member.timer is not None
    timer = live.member.timer
    _refresh_now(rig, live)
    await trunk.wait_for("INVITE", 2)
    await asyncio.sleep(0.1)
    now = rig.system.calls.endpoint.now
    assert not live.core.ending and live.member.timer is timer
    assert timer.refresh_at is not None and not timer.refresh_sent
    assert now < timer.refresh_at < timer.expires_at  # tried again, before the expiry
    await _hang_up(rig, call_id)


@pytest.mark.parametrize(
    ("status", "cause"), [(481, "NORMAL_TEMPORARY_FAILURE"), (408, "RECOVERY_ON_TIMER_EXPIRE")]
)
async def test_a_refresh_answered_481_or_408_ends_the_call(rig: Rig, status: int,
                                                           cause: str) -> None:  # fmt: skip
    """RFC 3261 §12.2.1.2: the dialog is gone; no fallback, no retry."""
    trunk = script(rig)
    trunk.answer_headers = list(WE_REFRESH)
    trunk.reinvite_status = status
    call_id, live = await _answered(rig)
    _refresh_now(rig, live)
    result = await asyncio.wait_for(rig.ended[call_id], 3)
    assert result.bridged and result.cause == cause and result.hangup_by is Side.MEMBER
    assert script(rig).methods().count("INVITE") == 2
    assert rig.system.endpoint.ua.state_size()["dialogs"] == 0


# --- glare (RFC 3261 §14.2, RFC 3311 §5.2) -------------------------------------------------


async def test_an_offer_while_our_reinvite_is_pending_gets_491(rig: Rig) -> None:
    trunk = script(rig)
    trunk.answer_headers = list(WE_REFRESH)
    trunk.hold_reinvites = True
    call_id, live = await _answered(rig)
    assert live.member is not None
    _refresh_now(rig, live)
    await trunk.wait_for("INVITE", 2)
    assert live.member.refresh_key is not None and live.member.refresh_offer is not None
    reinvite = await trunk.response_to(trunk.send("INVITE", trunk.offer()), "INVITE")
    update = await trunk.response_to(trunk.send("UPDATE", trunk.offer()), "UPDATE")
    plain = await trunk.response_to(trunk.send("UPDATE"), "UPDATE")  # no offer: no glare
    assert (reinvite.status_code, update.status_code, plain.status_code) == (491, 491, 200)
    trunk.answer_reinvite(trunk.held[0], 200)
    await trunk.wait_for("ACK", 2)
    assert live.member.refresh_key is None and live.member.refresh_offer is None
    cseq = trunk.send("INVITE", trunk.offer())
    assert (await trunk.response_to(cseq, "INVITE")).status_code == 200  # glare over
    trunk.send("ACK", cseq=cseq)
    assert not live.core.ending
    await _hang_up(rig, call_id)


async def test_a_reinvite_before_the_previous_one_completes_gets_500(rig: Rig) -> None:
    trunk = script(rig)
    call_id, live = await _answered(rig)
    assert live.member is not None
    first = trunk.send("INVITE")  # offer-less: our 2xx carries an offer, the ACK the answer
    assert (await trunk.response_to(first, "INVITE")).status_code == 200
    assert live.member.awaiting_ack_answer
    second = await trunk.response_to(trunk.send("INVITE", trunk.offer()), "INVITE")
    assert second.status_code == 500
    assert 0 <= int(second.headers.get("Retry-After") or "-1") <= 10
    update = await trunk.response_to(trunk.send("UPDATE", trunk.offer()), "UPDATE")
    assert update.status_code == 491  # our offer (in the 2xx) is unanswered
    trunk.send("ACK", trunk.offer(), cseq=first)
    for _ in range(100):
        if not live.member.awaiting_ack_answer:
            break
        await asyncio.sleep(0.01)
    assert not live.member.awaiting_ack_answer
    assert (
        await trunk.response_to(trunk.send("UPDATE", trunk.offer()), "UPDATE")
    ).status_code == 200
    await _hang_up(rig, call_id)


# --- caller ID ---------------------------------------------------------------------------


async def test_the_caller_id_is_also_sent_as_p_asserted_identity(rig: Rig) -> None:
    call_id = rig.start_call("1000")
    await rig.trunk.wait_until(lambda: bool(rig.trunk.calls), 5)
    invite = rig.trunk.calls[-1].request
    host = rig.trunk.endpoint.ua.config.host
    assert invite.headers.get("P-Asserted-Identity") == f"<sip:380441234567@{host}>"
    assert (invite.headers.get("From") or "").startswith("<sip:380441234567@")
    await _hang_up(rig, call_id)


# --- the remote target (RFC 3261 §12.2.1.1) ---------------------------------------------


class Target(asyncio.DatagramProtocol):
    """The address a trunk's 2xx names as its Contact: records requests, 200s a BYE."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.requests: list[Request] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        assert self.transport is not None
        message = parse_message(data)
        if isinstance(message, Request):
            self.requests.append(message)
            if message.method == "BYE":
                self.transport.sendto(response_for(message, 200).to_bytes(), addr)


async def test_the_member_legs_requests_go_to_the_2xx_contact(rig: Rig) -> None:
    """A trunk answers from one socket and names another as Contact: the ACK and the BYE
    go to the Contact (an IP literal), not to where the INVITE went."""
    loop = asyncio.get_running_loop()
    transport, target = await loop.create_datagram_endpoint(Target, local_addr=("127.0.0.1", 0))
    try:
        port = transport.get_extra_info("sockname")[1]
        trunk = script(rig)
        trunk.contact = f"<sip:odd@127.0.0.1:{port}>"
        call_id = rig.start_call("9600")
        for _ in range(300):
            if any(r.method == "ACK" for r in target.requests):
                break
            await asyncio.sleep(0.01)
        await _hang_up(rig, call_id)
        assert [r.method for r in target.requests] == ["ACK", "BYE"]
        assert trunk.methods() == ["INVITE"]
        assert rig.system.endpoint.ua.state_size()["dialogs"] == 0
    finally:
        transport.close()
