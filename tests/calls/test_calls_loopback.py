"""Progressive calls end to end over real UDP on 127.0.0.1: ``PhoneSystem`` (registrar,
call service, media bridge) + ``SimTrunk`` + a registered ``SimPhone``.

A tiny "engine" drives each call the way the real one will: OfferAgent
(``originate``), DialMember on AgentAnswered, Bridge on MemberAnswered. Audio is checked
by FFT at both ends; causes, SIP codes and who hung up come from the CallEnded result.
SIP timers are short (T1 = 20 ms: Timer B = 1.28 s) and talk times ≤ 1 s.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
from callrig import RacingTrunk, Rig, running_rig
from numpy.typing import NDArray

from sipdialer.calls.causes import HangupCause
from sipdialer.calls.events import (
    AgentFailed,
    CallOrder,
    MemberRinging,
    Side,
)
from sipdialer.media.analysis import dominant_frequency
from sipdialer.simulate.phones import PhoneBehaviour
from sipdialer.sip.sdp import SessionDescription
from sipdialer.sip.sdp_offer import hold
from sipdialer.sip.ua_events import ResponseReceived, UaEvent


@pytest.fixture
async def rig(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Rig]:
    media_timeout = getattr(request, "param", 5.0)
    async with running_rig(tmp_path, RacingTrunk, media_timeout=media_timeout) as rig:
        yield rig


def tail(pcm: NDArray[np.int16], seconds: float = 0.4) -> NDArray[np.int16]:
    return pcm[-int(8000 * seconds) :]


# --- answered calls: audio both ways, DTMF, who hangs up ----------------------------------


@pytest.mark.parametrize("number,trunk_tone,codec", [("1001", 1000.0, 0), ("1011", 1200.0, 8)],
                         ids=["PCMU-PCMU", "PCMU-PCMA"])  # fmt: skip
async def test_answered_call_audio_both_ways(
    rig: Rig, number: str, trunk_tone: float, codec: int
) -> None:
    rig.phone.behaviour = PhoneBehaviour(answer_after=0.1, tone=440.0, dtmf="12#", dtmf_at=0.2)
    call_id = rig.start_call(number)
    await rig.trunk.wait_until(lambda: any(c.answered_at for c in rig.trunk.calls), 5)
    await asyncio.sleep(0.9)
    rig.system.calls.hangup(call_id)
    result = await asyncio.wait_for(rig.ended[call_id], 5)
    assert (result.cause, result.cause_q850, result.sip_code) == ("NORMAL_CLEARING", 16, 200)
    assert result.hangup_by is Side.DIALER and result.bridged and result.talk_seconds > 0.5
    assert result.trunk == "sim" and result.dialed == number
    trunk_call, phone_call = rig.trunk.calls[-1], rig.phone.calls[-1]
    assert trunk_call.payload_type == codec and phone_call.payload_type == 0
    assert abs(dominant_frequency(tail(trunk_call.received)) - 440.0) < 15
    assert abs(dominant_frequency(tail(phone_call.received)) - trunk_tone) < 15
    assert trunk_call.dtmf == "12#"  # RFC 4733 from the phone, through the relay
    headers = phone_call.dialer_headers
    assert headers["X-Dialer-Campaign"] == "reminders" and headers["X-Dialer-Var-product"] == "x"
    assert trunk_call.dialer_headers["X-Dialer-Member-Id"] == "m42"
    assert phone_call.header("Call-Info") is None
    assert trunk_call.ended_by == "remote" and phone_call.ended_by == "remote"


async def test_trunk_hangs_up_first(rig: Rig) -> None:
    rig.phone.behaviour = PhoneBehaviour(answer_after=0.05)
    result = await rig.call("1100")
    assert (result.cause, result.sip_code, result.hangup_by) == ("NORMAL_CLEARING", 200,
                                                                 Side.MEMBER)  # fmt: skip
    assert rig.phone.calls[-1].ended_by == "remote" and rig.trunk.calls[-1].ended_by == "trunk"


async def test_agent_hangs_up_first(rig: Rig) -> None:
    rig.phone.behaviour = PhoneBehaviour(answer_after=0.05, hangup_after=0.7)
    result = await rig.call("1000")
    assert (result.cause, result.hangup_by) == ("NORMAL_CLEARING", Side.AGENT)
    assert result.bridged and rig.trunk.calls[-1].ended_by == "remote"


async def test_early_media_reaches_the_agent(rig: Rig) -> None:
    rig.phone.behaviour = PhoneBehaviour(answer_after=0.05, hangup_after=0.9)
    call_id = rig.start_call("8000")
    result = await asyncio.wait_for(rig.ended[call_id], 6)
    ringing = [e for e in rig.of(call_id, MemberRinging) if isinstance(e, MemberRinging)]
    assert len(ringing) == 1 and ringing[0].early_media
    phone_call = rig.phone.calls[-1]
    assert result.bridged and result.cause == "NORMAL_CLEARING"
    assert abs(dominant_frequency(phone_call.received[: 8000 * 1]) - 800.0) < 15


async def test_auto_answer_headers(rig: Rig) -> None:
    rig.phone.behaviour = PhoneBehaviour(reject=486, answer_after=0.05)
    call_id = "auto-answer"
    rig.ended[call_id] = asyncio.get_running_loop().create_future()
    rig.system.calls.originate(CallOrder(call_id, "c", "1", "n", "1000", "101", auto_answer=True))
    await asyncio.wait_for(rig.ended[call_id], 5)
    phone_call = rig.phone.calls[-1]
    assert phone_call.header("Call-Info") == "<sip:127.0.0.1>;answer-after=0"
    assert phone_call.header("Alert-Info") == "<http://localhost>;info=alert-autoanswer"


# --- member-leg causes ---------------------------------------------------------------------


@pytest.mark.parametrize("number,cause,q850,status", [
    ("2000", "USER_BUSY", 17, 486), ("4000", "CALL_REJECTED", 21, 603),
    ("5000", "UNALLOCATED_NUMBER", 1, 404), ("6000", "NO_USER_RESPONSE", 18, 480),
    ("7000", "NORMAL_TEMPORARY_FAILURE", 41, 503),
])  # fmt: skip
async def test_trunk_failures(rig: Rig, number: str, cause: str, q850: int, status: int) -> None:
    rig.phone.behaviour = PhoneBehaviour(answer_after=0.05)
    result = await rig.call(number)
    assert (result.cause, result.cause_q850, result.sip_code) == (cause, q850, status)
    assert result.hangup_by is Side.MEMBER and not result.bridged
    assert result.agent_answered_at is not None
    assert rig.phone.calls[-1].ended_by == "remote"  # the agent got our BYE


async def test_member_no_answer_is_cancelled(rig: Rig) -> None:
    rig.phone.behaviour = PhoneBehaviour(answer_after=0.05)
    result = await rig.call("3000")
    assert (result.cause, result.cause_q850, result.sip_code) == ("NO_ANSWER", 19, 487)
    assert result.hangup_by is Side.DIALER
    trunk_call = rig.trunk.calls[-1]
    assert trunk_call.cancelled and trunk_call.status == 487
    assert trunk_call.ended_at is not None
    assert 0.7 < trunk_call.ended_at - trunk_call.started_at < 1.5


async def test_timer_b_on_a_dead_trunk(rig: Rig) -> None:
    rig.phone.behaviour = PhoneBehaviour(answer_after=0.05)
    result = await rig.call("9900")
    assert (result.cause, result.cause_q850, result.sip_code) == (
        "RECOVERY_ON_TIMER_EXPIRE", 102, 408,
    )  # fmt: skip
    assert result.trunk == "dead"


async def test_digest_challenge_is_answered(rig: Rig) -> None:
    rig.phone.behaviour = PhoneBehaviour(answer_after=0.05, hangup_after=0.3)
    result = await rig.call("0000")
    assert result.bridged and result.cause == "NORMAL_CLEARING"
    assert rig.trunk.challenges == 1
    assert "Authorization" in dict(rig.trunk.calls[-1].request.headers)


async def test_no_route(rig: Rig) -> None:
    rig.phone.behaviour = PhoneBehaviour(answer_after=0.05)
    result = await rig.call("abc")
    assert (result.cause, result.cause_q850, result.sip_code) == ("NO_ROUTE_DESTINATION", 3, None)
    assert not rig.trunk.calls


# --- agent-leg outcomes --------------------------------------------------------------------


@pytest.mark.parametrize("behaviour,cause,status,hangup_by", [
    (PhoneBehaviour(answer_after=0.05, reject=486), "USER_BUSY", 486, Side.AGENT),
    (PhoneBehaviour(answer_after=0.05, reject=603), "CALL_REJECTED", 603, Side.AGENT),
    (PhoneBehaviour(never_answer=True), "NO_ANSWER", 487, Side.DIALER),
], ids=["busy", "reject", "no-answer"])  # fmt: skip
async def test_agent_leg_failures(
    rig: Rig, behaviour: PhoneBehaviour, cause: str, status: int, hangup_by: Side
) -> None:
    rig.phone.behaviour = behaviour
    call_id = rig.start_call("1000", agent_timeout=0.6)
    result = await asyncio.wait_for(rig.ended[call_id], 5)
    assert (result.cause, result.sip_code, result.hangup_by) == (cause, status, hangup_by)
    assert result.agent_cause == cause and result.agent_answered_at is None
    failed = [e for e in rig.of(call_id, AgentFailed) if isinstance(e, AgentFailed)]
    assert [(f.cause, f.sip_code) for f in failed] == [(cause, status)]
    assert not rig.trunk.calls
    if behaviour.never_answer:
        assert rig.phone.calls[-1].cancelled


async def test_agent_not_registered(rig: Rig) -> None:
    await rig.phone.close()
    result = await rig.call("1000")
    assert (result.cause, result.cause_q850, result.sip_code) == ("USER_NOT_REGISTERED", 806, None)
    assert result.agent_cause == "USER_NOT_REGISTERED"


# --- media timeout, hold --------------------------------------------------------------------


@pytest.mark.parametrize("rig", [0.5], indirect=True)
async def test_media_timeout(rig: Rig) -> None:
    rig.phone.behaviour = PhoneBehaviour(answer_after=0.05)
    call_id = rig.start_call("1000")
    await rig.trunk.wait_until(lambda: any(c.answered_at for c in rig.trunk.calls), 5)
    await asyncio.sleep(0.2)
    media = rig.trunk.calls[-1].media
    assert media is not None
    media.stop()  # the trunk goes silent
    result = await asyncio.wait_for(rig.ended[call_id], 5)
    assert (result.cause, result.cause_q850, result.hangup_by) == ("MEDIA_TIMEOUT", 804,
                                                                   Side.DIALER)  # fmt: skip
    assert rig.trunk.calls[-1].ended_by == "remote" and rig.phone.calls[-1].ended_by == "remote"


@pytest.mark.parametrize("rig", [0.5], indirect=True)
@pytest.mark.parametrize("side", ["trunk", "phone"])
async def test_hold_by_reinvite(rig: Rig, side: str) -> None:
    """The trunk (or the agent's phone) holds with a sendonly re-INVITE and goes silent:
    the dialer stops sending to it and does not time the call out."""
    rig.phone.behaviour = PhoneBehaviour(answer_after=0.05)
    call_id = rig.start_call("1000")
    await rig.trunk.wait_until(lambda: any(c.answered_at for c in rig.trunk.calls), 5)
    await asyncio.sleep(0.3)
    party = rig.trunk if side == "trunk" else rig.phone
    held = party.calls[-1]
    assert held.dialog is not None and held.media is not None
    held.media.stop()  # on hold it sends nothing: no media timeout may fire
    offer = hold(SessionDescription.parse(held.answer_sdp))
    endpoint = party.endpoint
    endpoint.ua.request_in_dialog(held.dialog, "INVITE", endpoint.now, body=offer.to_bytes())
    endpoint.flush()
    await asyncio.sleep(0.3)
    heard = held.media.audio_packets
    assert heard > 10
    await asyncio.sleep(0.7)  # longer than media_timeout
    assert held.media.audio_packets - heard <= 2  # the dialer stopped sending to it
    assert not rig.ended[call_id].done()
    rig.system.calls.hangup(call_id)
    result = await asyncio.wait_for(rig.ended[call_id], 5)
    assert result.cause == "NORMAL_CLEARING" and result.bridged


async def test_shutdown_hangs_up_live_calls(rig: Rig) -> None:
    rig.phone.behaviour = PhoneBehaviour(answer_after=0.05)
    call_id = rig.start_call("1000")
    await rig.trunk.wait_until(lambda: any(c.answered_at for c in rig.trunk.calls), 5)
    await rig.system.calls.close()
    result = await asyncio.wait_for(rig.ended[call_id], 2)
    assert (result.cause, result.cause_q850) == (HangupCause.SYSTEM_SHUTDOWN.name, 701)


# --- trunk gates, redirects, session timers -------------------------------------------------


async def test_max_calls_refuses_the_call_over_the_limit(rig: Rig) -> None:
    rig.phone.behaviour = PhoneBehaviour(answer_after=0.05)
    first = rig.start_call("1000")
    await rig.trunk.wait_until(lambda: any(c.answered_at for c in rig.trunk.calls), 5)
    result = await rig.call("1000")
    assert (result.cause, result.cause_q850, result.sip_code) == (
        "NORMAL_CIRCUIT_CONGESTION", 34, None,
    )  # fmt: skip
    assert result.hangup_by is Side.DIALER and len(rig.trunk.calls) == 1
    rig.system.calls.hangup(first, "MANAGER_REQUEST")
    ended = await asyncio.wait_for(rig.ended[first], 5)
    assert ended.bridged and (ended.cause, ended.cause_q850) == ("MANAGER_REQUEST", 703)
    assert rig.system.calls.gates["sim"].in_use == 0


async def test_cps_spaces_member_starts(rig: Rig) -> None:
    rig.phone.behaviour = PhoneBehaviour(answer_after=0.05, hangup_after=0.8)
    calls = [rig.start_call("971000"), rig.start_call("971000")]
    results = await asyncio.gather(*(asyncio.wait_for(rig.ended[c], 6) for c in calls))
    assert [r.trunk for r in results] == ["slow", "slow"] and all(r.bridged for r in results)
    starts = sorted(c.started_at for c in rig.trunk.calls)
    assert [c.number for c in rig.trunk.calls] == ["1000", "1000"]  # strip = 2
    assert starts[1] - starts[0] >= 0.45  # cps = 2: one start per 0.5 s


async def test_redirect_is_followed(rig: Rig) -> None:
    """The 302's best Contact is another host:port (the sim trunk): skipped; the one at
    the redirecting trunk's own address is followed, and answers."""
    rig.phone.behaviour = PhoneBehaviour(answer_after=0.05, hangup_after=0.3)
    result = await rig.call("9812")
    assert result.bridged and result.cause == "NORMAL_CLEARING"
    assert rig.trunk.calls == []  # never sent to the address the 302 ranked first


async def test_session_timer_asked_by_the_trunk(rig: Rig) -> None:
    rig.phone.behaviour = PhoneBehaviour(answer_after=0.05)
    call_id = rig.start_call("1000")
    await rig.trunk.wait_until(lambda: any(c.answered_at for c in rig.trunk.calls), 5)
    await asyncio.sleep(0.1)
    trunk_call = rig.trunk.calls[-1]
    assert trunk_call.dialog is not None
    responses: dict[str, int | dict[str, str]] = {}
    endpoint = rig.trunk.endpoint

    def collect(event: UaEvent) -> None:
        if isinstance(event, ResponseReceived) and event.response.status_code >= 200:
            r = event.response
            responses[event.key] = {n.lower(): v for n, v in r.headers} | {
                "status": str(r.status_code)
            }

    endpoint.on_event(collect)
    asked = [("Session-Expires", "120;refresher=uac"), ("Supported", "timer")]
    ok = endpoint.ua.request_in_dialog(trunk_call.dialog, "UPDATE", endpoint.now, headers=asked)
    small = [("Session-Expires", "30"), ("Supported", "timer")]
    too_small = endpoint.ua.request_in_dialog(trunk_call.dialog, "UPDATE", endpoint.now,
                                              headers=small)  # fmt: skip
    endpoint.flush()
    for _ in range(100):
        if ok in responses and too_small in responses:
            break
        await asyncio.sleep(0.02)
    answer, refused = responses[ok], responses[too_small]
    assert isinstance(answer, dict) and isinstance(refused, dict)
    assert answer["status"] == "200" and answer["session-expires"] == "120;refresher=uac"
    assert answer["require"] == "timer"
    assert refused["status"] == "422" and refused["min-se"] == "90"
    core = rig.system.calls.call(call_id)
    assert core is not None and not core.ending
    rig.system.calls.hangup(call_id)
    await asyncio.wait_for(rig.ended[call_id], 5)


async def test_200_after_our_cancel_is_acked_hung_up_and_still_no_answer(rig: Rig) -> None:
    rig.phone.behaviour = PhoneBehaviour(answer_after=0.05)
    result = await rig.call("9600")
    assert (result.cause, result.cause_q850, result.sip_code) == ("NO_ANSWER", 19, 487)
    assert result.hangup_by is Side.DIALER and not result.bridged
    for _ in range(50):
        if "BYE" in rig.racer.received:
            break
        await asyncio.sleep(0.02)
    assert rig.racer.received[:2] == ["INVITE", "CANCEL"]
    assert "ACK" in rig.racer.received and "BYE" in rig.racer.received  # the UA's ACK + BYE


async def _update(rig: Rig, trunk_call: object, session_expires: str) -> int:
    """The trunk sends an UPDATE asking for a session timer; returns our answer's status."""
    endpoint = rig.trunk.endpoint
    dialog = getattr(trunk_call, "dialog", None)
    assert dialog is not None
    done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    headers = [("Session-Expires", session_expires), ("Supported", "timer")]
    key = endpoint.ua.request_in_dialog(dialog, "UPDATE", endpoint.now, headers=headers)

    def collect(event: UaEvent) -> None:
        if isinstance(event, ResponseReceived) and event.key == key and not done.done():
            done.set_result(event.response.status_code)

    endpoint.on_event(collect)
    endpoint.flush()
    return await asyncio.wait_for(done, 2)


async def test_session_refresh_and_expiry(rig: Rig) -> None:
    """We refresh when the trunk makes us the refresher, and hang up when a session the
    trunk refreshes expires. The timers' deadlines are moved to "now" (90 s minimum)."""
    rig.phone.behaviour = PhoneBehaviour(answer_after=0.05)
    call_id = rig.start_call("1000")
    await rig.trunk.wait_until(lambda: any(c.answered_at for c in rig.trunk.calls), 5)
    trunk_call = rig.trunk.calls[-1]
    service = rig.system.calls
    live = service._calls[call_id]
    assert live.member is not None
    assert await _update(rig, trunk_call, "90;refresher=uas") == 200
    timer = live.member.timer
    assert timer is not None and timer.we_refresh and timer.refresh_method == "INVITE"
    timer.refresh_at = service.endpoint.now
    service._arm(live)
    await rig.trunk.wait_until(lambda: trunk_call.reinvites >= 1, 2)  # our refresh
    assert await _update(rig, trunk_call, "90;refresher=uac") == 200
    timer = live.member.timer
    assert timer is not None and not timer.we_refresh
    timer.expires_at = service.endpoint.now
    service._arm(live)
    result = await asyncio.wait_for(rig.ended[call_id], 3)
    assert (result.cause, result.cause_q850) == ("RECOVERY_ON_TIMER_EXPIRE", 102)
    assert result.hangup_by is Side.DIALER and trunk_call.ended_by == "remote"
