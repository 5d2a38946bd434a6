"""SimPhone against the real registrar (PhoneSystem) and a real caller over UDP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sipdialer.app import PhoneSystem
from sipdialer.config import parse_config
from sipdialer.media.analysis import dominant_frequency
from sipdialer.media.ports import PortPool
from sipdialer.simulate.phones import PhoneBehaviour, RegistrationFailed, SimPhone
from sipdialer.simulate.sim_media import SimMedia, tone_pcm
from sipdialer.simulate.trunk import SimTrunk
from sipdialer.sip.peer import Peer
from sipdialer.sip.sdp import SessionDescription
from sipdialer.sip.sdp_offer import make_offer, negotiated
from sipdialer.sip.timers import TimerConfig
from sipdialer.sip.ua import UaConfig
from sipdialer.sip.ua_events import (
    CallAnswered,
    CallFailed,
    CallProgress,
    DialogTerminated,
    UaEvent,
)
from sipdialer.transport.endpoint import SipEndpoint

TIMERS = TimerConfig(t1=0.05, t2=0.4, t4=0.5)
WAIT = 5.0


def config_text(db: Path) -> str:
    return f"""
[sip]
listen = "127.0.0.1:0"
t1 = 0.05
t2 = 0.4
t4 = 0.5
[media]
rtp_ports = "31100-31199"
[store]
url = "sqlite:///{db}"
[[agents]]
id = "101"
name = "Alice"
password = "secret101"
[[agents]]
id = "102"
name = "Bob"
password = "secret102"
"""


@pytest.fixture
async def system(tmp_path: Path) -> AsyncIterator[PhoneSystem]:
    phone_system = PhoneSystem(parse_config(config_text(tmp_path / "d.db")))
    await phone_system.start()
    try:
        yield phone_system
    finally:
        await phone_system.close()


@pytest.fixture
async def phone(system: PhoneSystem) -> AsyncIterator[SimPhone]:
    assert system.address is not None
    sim = SimPhone("101", "secret101", system.address, rtp_ports="42400-42499", timers=TIMERS)
    await sim.start()
    try:
        yield sim
    finally:
        await sim.close()
        assert sim.endpoint.internal_errors == 0 and sim.endpoint.handler_errors == 0


class Dialer:
    """Plays the dialer's agent leg: INVITEs the phone at its registered Contact."""

    def __init__(self, endpoint: SipEndpoint, media: SimMedia) -> None:
        self.endpoint = endpoint
        self.media = media
        self.events: asyncio.Queue[UaEvent] = asyncio.Queue()
        endpoint.on_event(self.events.put_nowait)

    def call(self, phone: SimPhone) -> tuple[str, SessionDescription]:
        assert phone.address is not None
        target = Peer("UDP", *phone.address)
        offer = make_offer("127.0.0.1", self.media.port, session_id=3, session_version=1)
        handle = self.endpoint.ua.invite(
            f"sip:{phone.user}@{target.host}:{target.port}", target, self.endpoint.now,
            from_uri="sip:dialer@127.0.0.1", body=offer.to_bytes(),
            headers=[("X-Dialer-Member-Id", "m42"), ("X-Dialer-Number", "15551234"),
                     ("Call-Info", "<sip:127.0.0.1>;answer-after=0")],
        )  # fmt: skip
        self.endpoint.flush()
        return handle, offer

    async def next(self, *kinds: type[UaEvent]) -> UaEvent:
        while True:
            event = await asyncio.wait_for(self.events.get(), WAIT)
            if isinstance(event, kinds):
                return event


@pytest.fixture
async def dialer() -> AsyncIterator[Dialer]:
    endpoint = SipEndpoint(UaConfig(host="127.0.0.1", port=0, user="dialer", timers=TIMERS))
    await endpoint.start("127.0.0.1", 0, tcp=False)
    media = await SimMedia.open("127.0.0.1", PortPool(42500, 42599))
    try:
        yield Dialer(endpoint, media)
    finally:
        await media.close()
        await endpoint.close()


async def test_registers_with_digest_and_unregisters(system: PhoneSystem) -> None:
    assert system.address is not None
    sim = SimPhone("102", "secret102", system.address, rtp_ports="42400-42499", timers=TIMERS)
    await sim.start()
    assert sim.registered and sim.registrations == 1
    assert system.registrar.is_registered("102") and system.agents["102"].registered
    await sim.close()
    assert not system.registrar.is_registered("102")


async def test_too_brief_expiry_is_raised_to_min_expires(system: PhoneSystem) -> None:
    assert system.address is not None
    sim = SimPhone("102", "secret102", system.address, rtp_ports="42400-42499",
                   expires=5, timers=TIMERS)  # fmt: skip
    await sim.start()
    try:
        assert sim.registered and sim.expires == 60
        assert system.registrar.is_registered("102")
    finally:
        await sim.close()


async def test_binding_is_refreshed_before_it_expires() -> None:
    trunk = SimTrunk(rtp_ports="42300-42399", timers=TIMERS)  # a registrar granting 1 s
    address = await trunk.start()
    sim = SimPhone("555", "x", address, expires=1, timers=TIMERS, rtp_ports="42400-42499")
    try:
        await sim.start()
        await sim.wait_until(lambda: sim.registrations >= 2, 3.0)
        assert trunk.registrations >= 2 and sim.registered
        assert trunk.last_register is not None
        assert trunk.last_register.call_id == sim._register_call_id  # same Call-ID, CSeq up
    finally:
        await sim.close()
        await trunk.close()
    assert trunk.last_register.headers.get("Expires") == "0"


async def test_wrong_password_is_refused(system: PhoneSystem) -> None:
    assert system.address is not None
    sim = SimPhone("102", "nope", system.address, rtp_ports="42400-42499", timers=TIMERS)
    with pytest.raises(RegistrationFailed) as info:
        await sim.start()
    assert info.value.status in (401, 403)
    await sim.close()
    assert not system.registrar.is_registered("102")


async def test_answers_records_audio_sends_dtmf(phone: SimPhone, dialer: Dialer) -> None:
    phone.behaviour = PhoneBehaviour(answer_after=0.1, tone=440.0, dtmf="7#", dtmf_at=0.1)
    _, offer = dialer.call(phone)
    answered = await dialer.next(CallAnswered, CallFailed)
    assert isinstance(answered, CallAnswered)
    agreed = negotiated(offer, SessionDescription.parse(answered.response.body))
    dialer.media.configure((agreed.remote_address, agreed.remote_port), agreed.payload_type,
                           agreed.telephone_event_pt)  # fmt: skip
    dialer.media.start(tone_pcm(1000.0))
    await asyncio.sleep(0.6)
    dialer.endpoint.ua.bye(answered.dialog, dialer.endpoint.now)
    dialer.endpoint.flush()
    await phone.wait_calls(1, WAIT)
    call = phone.calls[0]
    assert call.status == 200 and call.ended_by == "remote"
    assert call.dialer_headers == {"X-Dialer-Member-Id": "m42", "X-Dialer-Number": "15551234"}
    assert call.header("Call-Info") == "<sip:127.0.0.1>;answer-after=0"
    assert abs(dominant_frequency(call.received) - 1000.0) < 5
    assert dialer.media.dtmf == "7#"
    assert abs(dominant_frequency(dialer.media.received) - 440.0) < 5


@pytest.mark.parametrize("status", [486, 603])
async def test_refuses(phone: SimPhone, dialer: Dialer, status: int) -> None:
    phone.behaviour = PhoneBehaviour(answer_after=0.05, reject=status)
    dialer.call(phone)
    final = await dialer.next(CallAnswered, CallFailed)
    assert isinstance(final, CallFailed) and final.status == status
    await phone.wait_calls(1, WAIT)
    assert phone.calls[0].status == status and phone.calls[0].ended_by == "phone"


async def test_never_answers_until_cancel(phone: SimPhone, dialer: Dialer) -> None:
    phone.behaviour = PhoneBehaviour(never_answer=True)
    handle, _ = dialer.call(phone)
    progress = await dialer.next(CallProgress)
    assert isinstance(progress, CallProgress)
    await asyncio.sleep(0.3)
    assert not phone.calls[0].ended
    dialer.endpoint.ua.cancel(handle, dialer.endpoint.now)
    dialer.endpoint.flush()
    final = await dialer.next(CallAnswered, CallFailed)
    assert isinstance(final, CallFailed) and final.status == 487
    await phone.wait_calls(1, WAIT)
    assert phone.calls[0].cancelled and phone.calls[0].ended_by == "remote"


async def test_agent_hangs_up_and_nat_shift(phone: SimPhone, dialer: Dialer) -> None:
    phone.behaviour = PhoneBehaviour(answer_after=0.0, hangup_after=0.3, nat_port_shift=10)
    _, offer = dialer.call(phone)
    answered = await dialer.next(CallAnswered, CallFailed)
    assert isinstance(answered, CallAnswered)
    agreed = negotiated(offer, SessionDescription.parse(answered.response.body))
    ended = await dialer.next(DialogTerminated)
    assert isinstance(ended, DialogTerminated) and ended.by_remote
    await phone.wait_calls(1, WAIT)
    assert phone.calls[0].ended_by == "phone"
    # The phone's RTP came from the advertised port + 10, as through a NAT.
    assert dialer.media.sources == {("127.0.0.1", agreed.remote_port + 10)}


async def test_two_phones_in_one_process(system: PhoneSystem, dialer: Dialer) -> None:
    assert system.address is not None
    phones = [
        SimPhone(user, f"secret{user}", system.address, PhoneBehaviour(answer_after=0.0),
                 rtp_ports="42400-42499", timers=TIMERS)
        for user in ("101", "102")
    ]  # fmt: skip
    for sim in phones:
        await sim.start()
    try:
        assert all(system.registrar.is_registered(u) for u in ("101", "102"))
        for sim in phones:
            dialer.call(sim)
        answered = [await dialer.next(CallAnswered, CallFailed) for _ in phones]
        assert all(isinstance(a, CallAnswered) for a in answered)
        assert [len(sim.calls) for sim in phones] == [1, 1]
        ports = {sim.calls[0].media.port for sim in phones if sim.calls[0].media}
        assert len(ports) == 2
    finally:
        for sim in phones:
            await sim.close()
    assert all(sim.calls[0].ended_by == "phone" for sim in phones)  # BYE on close
