"""Call-layer defects of review 4, over loopback against scripted raw UDP peers.

* A silent agent phone / trunk (no 100 even): RFC 3261 §9.1 defers our CANCEL until a
  provisional, so the call used to wait for Timer B. The dialer's T1 is raised to 0.1 s
  here (Timer B 6.4 s) so that "ends at the ring timeout" and "ends at Timer B" are far
  apart; the UA must still CANCEL after a late 1xx and ACK+BYE a late 2xx.
* Requests in the early dialog (after a 183 with a To-tag): UPDATE, INFO (RFC 3311 §5.1).
* A 200 without SDP after a 183 with SDP (early-media gateways, RFC 6337 §3.1.1).
* OPTIONS inside a dialog (RFC 3261 §11.2): 200 with Allow, not 405.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import cast

import pytest
from callrig import Rig, running_rig, sdp_answer
from scriptrig import Handler, ScriptPeer, as_agent_phone, until

from sipdialer.calls.events import Bridged, MemberAnswered
from sipdialer.sip.message import Request, Response
from sipdialer.sip.sdp_offer import make_offer

SLOW_T1 = 0.1
"The dialer's T1 in the silent-peer tests: Timer B = 64 * T1 = 6.4 s."


def slow_timers(text: str) -> str:
    return text.replace("t1 = 0.02", f"t1 = {SLOW_T1}").replace("t2 = 0.16", "t2 = 0.8")


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    async with running_rig(tmp_path, ScriptPeer, answer_after=0.05) as rig:
        yield rig


def trunk(rig: Rig) -> ScriptPeer:
    return cast(ScriptPeer, rig.racer)


def on_bye(peer: ScriptPeer, message: Request | Response) -> bool:
    if isinstance(message, Request) and message.method in ("BYE", "CANCEL"):
        peer.reply(message, 200)
        return True
    return False


# --- 1. a ring timeout before any provisional ----------------------------------------------


@pytest.mark.parametrize("late", ["180", "200"])
async def test_a_silent_agent_phone_ends_at_the_ring_timeout(tmp_path: Path, late: str) -> None:
    async with running_rig(tmp_path, ScriptPeer, edit=slow_timers) as rig:
        loop = asyncio.get_running_loop()
        transport, phone = await loop.create_datagram_endpoint(
            ScriptPeer, local_addr=("127.0.0.1", 0))  # fmt: skip

        def handler(peer: ScriptPeer, message: Request | Response, addr: object) -> None:
            if isinstance(message, Request) and message.method == "CANCEL":
                peer.reply(message, 200)
                assert peer.invite is not None
                peer.reply(peer.invite, 487)
            elif isinstance(message, Request) and message.method == "BYE":
                peer.reply(message, 200)

        phone.handler = handler
        try:
            as_agent_phone(rig, phone)
            start = loop.time()
            call_id = rig.start_call("1000", agent_timeout=0.5)
            result = await asyncio.wait_for(rig.ended[call_id], 5)
            took = loop.time() - start
            assert took < 1.5, f"ended after {took:.2f} s: waited for Timer B (6.4 s)?"
            assert (result.cause, result.agent_cause, result.sip_code) == (
                "NO_ANSWER", "NO_ANSWER", None)  # fmt: skip
            assert rig.system.media.active == 0 and rig.system.calls.active == 0
            assert phone.received("CANCEL") == []  # RFC 3261 §9.1: not before a 1xx
            invite = phone.invite
            assert invite is not None
            if late == "180":  # now the UA's deferred CANCEL goes, and the 487 is ACKed
                phone.reply(invite, 180, tag="late")
                await until(lambda: bool(phone.received("ACK")))
                assert len(phone.received("CANCEL")) == 1
                reason = phone.received("CANCEL")[0].headers.get("Reason") or ""
                assert "cause=19" in reason
            else:  # a late 200: ACK, then BYE (the call is gone)
                phone.reply(invite, 200, tag="late", body=sdp_answer(invite))
                await until(lambda: bool(phone.received("BYE")))
                assert len(phone.received("ACK")) >= 1 and phone.received("CANCEL") == []
            await asyncio.sleep(0.1)
            assert rig.system.calls.active == 0
        finally:
            transport.close()


async def test_a_silent_trunk_ends_at_the_member_call_timeout(tmp_path: Path) -> None:
    """Route ^96 has call_timeout 0.4 s; the trunk never answers the INVITE at all."""
    async with running_rig(tmp_path, ScriptPeer, answer_after=0.05, edit=slow_timers) as rig:
        peer = trunk(rig)
        loop = asyncio.get_running_loop()
        call_id = rig.start_call("9600")
        await until(lambda: peer.invite is not None)
        dialed = loop.time()
        result = await asyncio.wait_for(rig.ended[call_id], 5)
        took = loop.time() - dialed
        assert took < 1.2, f"ended {took:.2f} s after the INVITE: waited for Timer B?"
        assert (result.cause, result.sip_code, result.agent_cause) == ("NO_ANSWER", None,
                                                                         "NO_ANSWER")  # fmt: skip
        assert rig.system.calls.gates["racer"].in_use == 0  # the trunk's line is back
        assert rig.system.media.ports.in_use == 0
        assert peer.received("CANCEL") == []
        assert peer.invite is not None
        peer.handler = lambda p, m, a: on_bye(p, m)
        peer.reply(peer.invite, 100)  # a late 100: the deferred CANCEL goes out now
        await until(lambda: bool(peer.received("CANCEL")))


# --- 2. requests in the early dialog -------------------------------------------------------


def early_trunk(sdp_in_183: bool) -> Handler:
    def handler(peer: ScriptPeer, message: Request | Response, addr: object) -> None:
        if on_bye(peer, message) or not isinstance(message, Request):
            return
        if message.method == "INVITE" and message.to.tag is None:
            status, body = (183, sdp_answer(message)) if sdp_in_183 else (180, b"")
            peer.reply(message, status, tag="A", body=body)

    return handler


async def final(peer: ScriptPeer, method: str, count: int = 1) -> list[Response]:
    await until(lambda: len([r for r in peer.responses(method) if r.status_code >= 200]) >= count)
    return [r for r in peer.responses(method) if r.status_code >= 200]


async def test_update_and_info_in_the_early_dialog_are_answered(rig: Rig) -> None:
    peer = trunk(rig)
    peer.handler = early_trunk(sdp_in_183=True)
    call_id = rig.start_call("9600")
    live = rig.system.calls._calls[call_id]
    await until(lambda: live.core.member.ringing_at is not None)
    peer.in_dialog("UPDATE", tag="A")  # no offer (a connected-line update, say)
    assert [r.status_code for r in await final(peer, "UPDATE")] == [200]
    peer.in_dialog("INFO", tag="A", headers=[("Content-Type", "application/dtmf-relay")])
    assert [r.status_code for r in await final(peer, "INFO")] == [200]
    # An offer moving the early media to another port: answered, and applied.
    offer = make_offer("127.0.0.1", 44990, ("PCMA",), session_id=9, session_version=2)
    peer.in_dialog("UPDATE", tag="A", body=offer.to_bytes())
    responses = await final(peer, "UPDATE", 2)
    assert responses[1].status_code == 200 and b"m=audio" in responses[1].body
    assert live.media is not None
    spec = live.media.relay.member.spec
    assert spec is not None and (spec.port, spec.payload_type) == (44990, 8)
    assert not live.core.ending
    peer.in_dialog("UPDATE", tag="nope")  # a dialog nobody has: still 481
    assert (await final(peer, "UPDATE", 3))[2].status_code == 481
    rig.system.calls.hangup(call_id)
    await asyncio.wait_for(rig.ended[call_id], 5)


async def test_an_early_update_offer_before_our_offer_is_answered_gets_491(rig: Rig) -> None:
    """A 180 without SDP: our INVITE's offer is still outstanding (RFC 3311 §5.2)."""
    peer = trunk(rig)
    peer.handler = early_trunk(sdp_in_183=False)
    call_id = rig.start_call("9600")
    await until(lambda: rig.system.calls._calls[call_id].core.member.ringing_at is not None)
    offer = make_offer("127.0.0.1", 44990, ("PCMU",), session_id=9, session_version=2)
    peer.in_dialog("UPDATE", tag="A", body=offer.to_bytes())
    assert [r.status_code for r in await final(peer, "UPDATE")] == [491]
    peer.in_dialog("UPDATE", tag="A")
    assert [r.status_code for r in await final(peer, "UPDATE", 2)][1] == 200
    rig.system.calls.hangup(call_id)
    await asyncio.wait_for(rig.ended[call_id], 5)


# --- 3. a 200 without SDP after a 183 with SDP ---------------------------------------------


def gateway(early_sdp: bool, tag_200: str = "A") -> Handler:
    """18x (with SDP or not) tag A, then 200 without SDP (tag *tag_200*) 0.1 s later."""

    def handler(peer: ScriptPeer, message: Request | Response, addr: object) -> None:
        if on_bye(peer, message) or not isinstance(message, Request):
            return
        if message.method == "INVITE" and message.to.tag is None:
            status, body = (183, sdp_answer(message)) if early_sdp else (180, b"")
            peer.reply(message, status, tag="A", body=body)
            asyncio.get_running_loop().call_later(
                0.1, lambda: peer.reply(message, 200, tag=tag_200)
            )

    return handler


async def test_a_200_without_sdp_keeps_the_183s_answer(rig: Rig) -> None:
    peer = trunk(rig)
    peer.handler = gateway(early_sdp=True)
    call_id = rig.start_call("9600")
    await until(lambda: bool(rig.of(call_id, Bridged)))
    await asyncio.sleep(0.2)
    assert not rig.ended[call_id].done() and peer.received("BYE") == []
    rig.system.calls.hangup(call_id)
    result = await asyncio.wait_for(rig.ended[call_id], 5)
    assert result.cause == "NORMAL_CLEARING" and result.bridged_at is not None


@pytest.mark.parametrize(("early_sdp", "tag_200"), [(False, "A"), (True, "B")],
                         ids=["no earlier answer", "answer from another fork"])  # fmt: skip
async def test_a_200_without_sdp_and_no_answer_of_its_dialog_is_hung_up(
    rig: Rig, early_sdp: bool, tag_200: str
) -> None:
    peer = trunk(rig)
    peer.handler = gateway(early_sdp, tag_200)
    call_id = rig.start_call("9600")
    result = await asyncio.wait_for(rig.ended[call_id], 5)
    assert result.cause == "INCOMPATIBLE_DESTINATION"
    assert rig.of(call_id, MemberAnswered) and not rig.of(call_id, Bridged)
    await until(lambda: bool(peer.received("BYE")))


# --- 4. OPTIONS in a dialog ----------------------------------------------------------------


def answering(peer: ScriptPeer, message: Request | Response, addr: object) -> None:
    if on_bye(peer, message) or not isinstance(message, Request):
        return
    if message.method == "INVITE" and message.to.tag is None:
        peer.reply(message, 200, tag="A", body=sdp_answer(message))


async def test_options_in_a_dialog_gets_200_with_allow(rig: Rig) -> None:
    peer = trunk(rig)
    peer.handler = answering
    call_id = rig.start_call("9600")
    await until(lambda: bool(rig.of(call_id, Bridged)))
    peer.in_dialog("OPTIONS", tag="A")
    (response,) = await final(peer, "OPTIONS")
    assert response.status_code == 200
    assert "OPTIONS" in (response.headers.get("Allow") or "")
    assert "application/sdp" in (response.headers.get("Accept") or "")
    assert not rig.ended[call_id].done()
    rig.system.calls.hangup(call_id)
    await asyncio.wait_for(rig.ended[call_id], 5)
