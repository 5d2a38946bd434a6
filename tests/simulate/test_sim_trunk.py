"""SimTrunk over real UDP on 127.0.0.1, driven by a UserAgentCore behind a SipEndpoint
(the caller) with its own RTP socket pair (a ``SimMedia``) so audio can be checked."""

from __future__ import annotations

import asyncio
import wave
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from sipdialer.media.analysis import dominant_frequency
from sipdialer.media.ports import PortPool
from sipdialer.simulate.sim_media import SimMedia, tone_pcm
from sipdialer.simulate.trunk import Behaviour, SimTrunk
from sipdialer.sip.dialog import DialogId
from sipdialer.sip.peer import Peer
from sipdialer.sip.sdp import SessionDescription
from sipdialer.sip.sdp_offer import hold, make_offer, negotiated
from sipdialer.sip.timers import TimerConfig
from sipdialer.sip.ua import UaConfig
from sipdialer.sip.ua_auth import Account
from sipdialer.sip.ua_events import (
    CallAnswered,
    CallFailed,
    CallProgress,
    DialogTerminated,
    ResponseReceived,
    UaEvent,
)
from sipdialer.transport.endpoint import SipEndpoint

TIMERS = TimerConfig(t1=0.05, t2=0.4, t4=0.5)
WAIT = 5.0

BEHAVIOURS = (
    Behaviour(r"^100", ring=0.1, talk=0.6, tone=1000.0),
    Behaviour(r"^101", ring=0.0),  # answer, wait for BYE
    Behaviour(r"^102", ring=0.1, talk=0.9, dtmf="1#"),
    Behaviour(r"^103", ring=0.0, codec="PCMA", tone=600.0),
    Behaviour(r"^2", ring=0.1, status=486),
    Behaviour(r"^3", status=0),
    Behaviour(r"^4", status=603),
    Behaviour(r"^5", status=404),
    Behaviour(r"^6", ring=0.05, status=480),
    Behaviour(r"^7", status=503),
    Behaviour(r"^80", ring=0.5, early_media=True, talk=0.3, tone=800.0),
    Behaviour(r"^81", ring=0.3, early_media=True, status=486),
    Behaviour(r"^0", ring=0.0, talk=0.2, challenge=True),
)


@dataclass
class Caller:
    """A UAC with a media stream: dials the trunk, collects the UA's events."""

    endpoint: SipEndpoint
    media: SimMedia
    trunk: Peer
    events: asyncio.Queue[UaEvent] = field(default_factory=asyncio.Queue)

    def dial(self, number: str, codecs: tuple[str, ...] = ("PCMU", "PCMA"),
             credentials: Account | None = None) -> tuple[str, SessionDescription]:  # fmt: skip
        offer = make_offer("127.0.0.1", self.media.port, codecs, session_id=7, session_version=1)
        handle = self.endpoint.ua.invite(
            f"sip:{number}@{self.trunk.host}:{self.trunk.port}", self.trunk, self.endpoint.now,
            from_uri="sip:dialer@127.0.0.1", body=offer.to_bytes(), credentials=credentials,
            headers=[("X-Dialer-Campaign", "c1")],
        )  # fmt: skip
        self.endpoint.flush()
        return handle, offer

    async def wait(self, kind: type[UaEvent]) -> UaEvent:
        while True:
            event = await asyncio.wait_for(self.events.get(), WAIT)
            if isinstance(event, kind):
                return event

    async def final(self) -> CallAnswered | CallFailed:
        while True:
            event = await asyncio.wait_for(self.events.get(), WAIT)
            if isinstance(event, CallAnswered | CallFailed):
                return event

    def bye(self, dialog: DialogId) -> None:
        self.endpoint.ua.bye(dialog, self.endpoint.now)
        self.endpoint.flush()


@pytest.fixture
async def trunk() -> AsyncIterator[SimTrunk]:
    sim = SimTrunk(BEHAVIOURS, username="acct", password="pw", rtp_ports="42000-42199",
                   timers=TIMERS)  # fmt: skip
    await sim.start()
    try:
        yield sim
    finally:
        await sim.close()
        assert sim.endpoint.internal_errors == 0 and sim.endpoint.handler_errors == 0


@pytest.fixture
async def caller(trunk: SimTrunk) -> AsyncIterator[Caller]:
    endpoint = SipEndpoint(UaConfig(host="127.0.0.1", port=0, user="dialer", timers=TIMERS))
    await endpoint.start("127.0.0.1", 0, tcp=False)
    media = await SimMedia.open("127.0.0.1", PortPool(42200, 42299))
    c = Caller(endpoint, media, Peer("UDP", *trunk.endpoint._udp.local_address))  # type: ignore[union-attr]
    endpoint.on_event(c.events.put_nowait)
    try:
        yield c
    finally:
        await media.close()
        await endpoint.close()


def start_media(caller: Caller, offer: SessionDescription, answer_body: bytes,
                tone: float | None = None) -> None:  # fmt: skip
    agreed = negotiated(offer, SessionDescription.parse(answer_body))
    caller.media.configure((agreed.remote_address, agreed.remote_port), agreed.payload_type,
                           agreed.telephone_event_pt)  # fmt: skip
    if tone is not None:
        caller.media.start(tone_pcm(tone))


@pytest.mark.parametrize(
    ("number", "status"),
    [("2000", 486), ("4000", 603), ("5000", 404), ("6000", 480), ("7000", 503), ("9999", 404)],
)
async def test_failure_statuses(trunk: SimTrunk, caller: Caller, number: str, status: int) -> None:
    caller.dial(number)
    final = await caller.final()
    assert isinstance(final, CallFailed) and final.status == status
    await trunk.wait_calls(1, WAIT)
    call = trunk.calls[0]
    assert (call.number, call.status, call.ended_by) == (number, status, "trunk")
    assert call.answered_at is None and not call.cancelled


async def test_answer_talk_then_trunk_hangs_up_with_its_tone(
    trunk: SimTrunk, caller: Caller
) -> None:
    _, offer = caller.dial("1000")
    answered = await caller.final()
    assert isinstance(answered, CallAnswered)
    start_media(caller, offer, answered.response.body, tone=440.0)
    ended = await caller.wait(DialogTerminated)
    assert isinstance(ended, DialogTerminated) and ended.by_remote
    await trunk.wait_calls(1, WAIT)
    call = trunk.calls[0]
    assert call.status == 200 and call.ended_by == "trunk" and call.payload_type == 0
    assert call.duration is not None and 0.5 <= call.duration < 1.0
    assert call.dialer_headers == {"X-Dialer-Campaign": "c1"}
    # What the trunk sent us: its 1000 Hz tone.
    heard = caller.media.received
    assert heard.size >= 8000 * 0.4
    assert abs(dominant_frequency(heard) - 1000.0) < 5
    # What we sent the trunk: recorded in order, our 440 Hz.
    assert call.received.size >= 8000 * 0.3
    assert abs(dominant_frequency(call.received) - 440.0) < 5


async def test_answer_waits_for_our_bye(trunk: SimTrunk, caller: Caller) -> None:
    caller.dial("1010")
    answered = await caller.final()
    assert isinstance(answered, CallAnswered)
    await asyncio.sleep(0.2)
    assert not trunk.calls[0].ended
    caller.bye(answered.dialog)
    await trunk.wait_calls(1, WAIT)
    assert trunk.calls[0].ended_by == "remote" and trunk.calls[0].status == 200


async def test_never_answer_then_cancel_gets_487(trunk: SimTrunk, caller: Caller) -> None:
    handle, _ = caller.dial("3000")
    progress = await caller.wait(CallProgress)
    assert isinstance(progress, CallProgress) and progress.response.status_code == 180
    await asyncio.sleep(0.2)
    assert not trunk.calls[0].ended
    caller.endpoint.ua.cancel(handle, caller.endpoint.now)
    caller.endpoint.flush()
    final = await caller.final()
    assert isinstance(final, CallFailed) and final.status == 487 and final.cancelled
    await trunk.wait_calls(1, WAIT)
    call = trunk.calls[0]
    assert call.cancelled and call.status == 487 and call.ended_by == "remote"


async def test_challenge_then_success_with_credentials(trunk: SimTrunk, caller: Caller) -> None:
    caller.dial("0100")
    final = await caller.final()
    assert isinstance(final, CallFailed) and final.status == 401
    assert final.response is not None and "Digest" in (
        final.response.headers.get("WWW-Authenticate") or ""
    )
    assert trunk.calls == [] and trunk.challenges == 1
    caller.dial("0100", credentials=Account("acct", "wrong"))
    final = await caller.final()
    assert isinstance(final, CallFailed) and final.status == 401
    caller.dial("0100", credentials=Account("acct", "pw"))
    final = await caller.final()
    assert isinstance(final, CallAnswered)
    await trunk.wait_calls(1, WAIT)
    call = trunk.calls[0]
    assert call.status == 200 and call.request.headers.get("Authorization")


async def test_early_media_arrives_before_the_200(trunk: SimTrunk, caller: Caller) -> None:
    _, offer = caller.dial("8000")
    progress = await caller.wait(CallProgress)
    assert isinstance(progress, CallProgress)
    if progress.response.status_code == 100:
        progress = await caller.wait(CallProgress)
    assert isinstance(progress, CallProgress) and progress.response.status_code == 183
    start_media(caller, offer, progress.response.body)
    answered = await caller.final()
    answered_at = caller.endpoint.now
    assert isinstance(answered, CallAnswered)
    assert caller.media.first_packet_at is not None
    assert caller.media.first_packet_at < answered_at - 0.3  # ring is 0.5 s
    early = caller.media.received
    assert abs(dominant_frequency(early) - 800.0) < 5
    await trunk.wait_calls(1, WAIT)


async def test_early_media_then_failure(trunk: SimTrunk, caller: Caller) -> None:
    _, offer = caller.dial("8100")
    progress = await caller.wait(CallProgress)
    assert isinstance(progress, CallProgress)
    if progress.response.status_code == 100:
        progress = await caller.wait(CallProgress)
    assert isinstance(progress, CallProgress)
    start_media(caller, offer, progress.response.body)
    final = await caller.final()
    assert isinstance(final, CallFailed) and final.status == 486
    assert caller.media.audio_packets >= 5


async def test_pcma_preferring_trunk(trunk: SimTrunk, caller: Caller) -> None:
    _, offer = caller.dial("1030")
    answered = await caller.final()
    assert isinstance(answered, CallAnswered)
    agreed = negotiated(offer, SessionDescription.parse(answered.response.body))
    assert agreed.payload_type == 8
    start_media(caller, offer, answered.response.body)
    await asyncio.sleep(0.3)
    assert abs(dominant_frequency(caller.media.received) - 600.0) < 5
    caller.bye(answered.dialog)
    await trunk.wait_calls(1, WAIT)
    assert trunk.calls[0].payload_type == 8
    caller.dial("1030", codecs=("PCMU",))  # no PCMA offered: it takes PCMU
    answered = await caller.final()
    assert isinstance(answered, CallAnswered)
    caller.bye(answered.dialog)
    await trunk.wait_calls(2, WAIT)
    assert trunk.calls[1].payload_type == 0
    caller.dial("1030", codecs=("G722",))  # no G.711 at all
    final = await caller.final()
    assert isinstance(final, CallFailed) and final.status == 488


async def test_trunk_detects_our_dtmf_and_sends_its_own(trunk: SimTrunk, caller: Caller) -> None:
    _, offer = caller.dial("1020")
    answered = await caller.final()
    assert isinstance(answered, CallAnswered)
    start_media(caller, offer, answered.response.body, tone=440.0)
    caller.media.send_dtmf("59*")
    await trunk.wait_calls(1, WAIT)  # talk 0.9 s, its digits from 0.5 s
    assert trunk.calls[0].dtmf == "59*"
    assert caller.media.dtmf == "1#"
    # The audio around the digits is still one 440 Hz stream.
    assert abs(dominant_frequency(trunk.calls[0].received) - 440.0) < 5


async def test_hold_reinvite_is_mirrored_and_options_answered(
    trunk: SimTrunk, caller: Caller
) -> None:
    _, offer = caller.dial("1010")
    answered = await caller.final()
    assert isinstance(answered, CallAnswered)
    start_media(caller, offer, answered.response.body)
    ua = caller.endpoint.ua
    key = ua.request_in_dialog(answered.dialog, "INVITE", caller.endpoint.now,
                               body=hold(offer).to_bytes())  # fmt: skip
    caller.endpoint.flush()
    response = await caller.wait(ResponseReceived)
    assert isinstance(response, ResponseReceived) and response.key == key
    assert response.response.status_code == 200
    answer = SessionDescription.parse(response.response.body)
    assert answer.audio is not None and answer.media_direction(answer.audio).value == "recvonly"
    assert trunk.calls[0].on_hold and trunk.calls[0].holds == 1
    await asyncio.sleep(0.1)
    before = caller.media.audio_packets
    await asyncio.sleep(0.2)
    assert caller.media.audio_packets - before <= 1  # held: the trunk stopped sending
    ua.request_in_dialog(answered.dialog, "OPTIONS", caller.endpoint.now)
    caller.endpoint.flush()
    options = await caller.wait(ResponseReceived)
    assert isinstance(options, ResponseReceived) and options.response.status_code == 200
    caller.bye(answered.dialog)
    await trunk.wait_calls(1, WAIT)


async def test_register_with_digest_is_counted(trunk: SimTrunk, caller: Caller) -> None:
    ua, target = caller.endpoint.ua, caller.trunk
    for credentials, expected in ((None, 401), (Account("acct", "pw"), 200)):
        request = ua.new_request(
            "REGISTER", f"sip:{target.host}:{target.port}", target,
            from_uri="sip:acct@127.0.0.1", to_uri="sip:acct@127.0.0.1",
            headers=[("Expires", "120")],
        )  # fmt: skip
        ua.send(request, target, caller.endpoint.now, credentials=credentials)
        caller.endpoint.flush()
        response = await caller.wait(ResponseReceived)
        assert isinstance(response, ResponseReceived)
        assert response.response.status_code == expected
    assert trunk.registrations == 1
    assert isinstance(response, ResponseReceived)
    assert "expires=120" in (response.response.headers.get("Contact") or "")
    options = ua.new_request("OPTIONS", f"sip:{target.host}:{target.port}", target,
                             from_uri="sip:acct@127.0.0.1")  # fmt: skip
    ua.send(options, target, caller.endpoint.now)
    caller.endpoint.flush()
    response = await caller.wait(ResponseReceived)
    assert isinstance(response, ResponseReceived) and response.response.status_code == 200


async def test_concurrent_calls_each_recorded(trunk: SimTrunk, caller: Caller) -> None:
    for number in ("2001", "2002", "5001", "7001"):
        caller.dial(number)
    await trunk.wait_calls(4, WAIT)
    assert sorted(c.status or 0 for c in trunk.calls) == [404, 486, 486, 503]
    assert np.all([c.ended_by == "trunk" for c in trunk.calls])


async def test_update_with_sdp_is_answered_and_tcp_works(trunk: SimTrunk, caller: Caller) -> None:
    _, offer = caller.dial("1010")
    answered = await caller.final()
    assert isinstance(answered, CallAnswered)
    key = caller.endpoint.ua.request_in_dialog(answered.dialog, "UPDATE", caller.endpoint.now,
                                               body=hold(offer).to_bytes())  # fmt: skip
    caller.endpoint.flush()
    response = await caller.wait(ResponseReceived)
    assert isinstance(response, ResponseReceived) and response.key == key
    assert response.response.status_code == 200 and b"a=recvonly" in response.response.body
    caller.bye(answered.dialog)
    await trunk.wait_calls(1, WAIT)
    # The same trunk over TCP.
    endpoint = SipEndpoint(UaConfig(host="127.0.0.1", port=0, user="tcp", timers=TIMERS))
    await endpoint.start("127.0.0.1", 0)
    events: asyncio.Queue[UaEvent] = asyncio.Queue()
    endpoint.on_event(events.put_nowait)
    try:
        tcp = Peer("TCP", caller.trunk.host, caller.trunk.port)
        endpoint.ua.invite(f"sip:2999@{tcp.host}:{tcp.port};transport=tcp", tcp, endpoint.now,
                           from_uri="sip:tcp@127.0.0.1", body=offer.to_bytes())  # fmt: skip
        endpoint.flush()
        while not isinstance(event := await asyncio.wait_for(events.get(), WAIT), CallFailed):
            pass
        assert event.status == 486
    finally:
        await endpoint.close()


async def test_sends_a_wav_file(tmp_path: Path, caller: Caller) -> None:
    path = tmp_path / "prompt.wav"
    with wave.open(str(path), "wb") as out:  # 16 kHz: the trunk decimates it to 8 kHz
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(tone_pcm(700.0, 1.0)[np.arange(16000) // 2].tobytes())
    sim = SimTrunk([Behaviour("^1", wav=str(path))], rtp_ports="42300-42399", timers=TIMERS)
    address = await sim.start()
    try:
        caller.trunk = Peer("UDP", *address)
        _, offer = caller.dial("1")
        answered = await caller.final()
        assert isinstance(answered, CallAnswered)
        start_media(caller, offer, answered.response.body)
        await asyncio.sleep(0.4)
        assert abs(dominant_frequency(caller.media.received) - 700.0) < 10
        caller.bye(answered.dialog)
        await sim.wait_calls(1, WAIT)
    finally:
        await sim.close()
