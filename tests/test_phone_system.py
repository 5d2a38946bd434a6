"""The running phone system end to end over loopback: a phone registers with digest,
dials *2 then *1, hears the confirmation beep as RTP, is hung up on, and its agent
moves Break → Available."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sipdialer.app import PhoneSystem
from sipdialer.config import parse_config
from sipdialer.dialer.agents import AgentStatus
from sipdialer.sip.peer import Peer
from sipdialer.sip.timers import TimerConfig
from sipdialer.sip.ua import UaConfig
from sipdialer.sip.ua_auth import Account
from sipdialer.sip.ua_events import CallAnswered, CallFailed, DialogTerminated, UaEvent
from sipdialer.transport.endpoint import SipEndpoint


def config_text(db: Path) -> str:
    return f"""
[sip]
listen = "127.0.0.1:0"
t1 = 0.05
t2 = 0.4
t4 = 0.5
[media]
rtp_ports = "31000-31099"
[store]
url = "sqlite:///{db}"
[[agents]]
id = "101"
name = "Alice"
password = "secret101"
"""


@pytest.fixture
async def system(tmp_path: Path) -> AsyncIterator[PhoneSystem]:
    phone_system = PhoneSystem(parse_config(config_text(tmp_path / "d.db")))
    await phone_system.start()
    try:
        yield phone_system
    finally:
        await phone_system.close()


class Phone:
    def __init__(self, endpoint: SipEndpoint, target: Peer) -> None:
        self.endpoint = endpoint
        self.target = target
        self.events: asyncio.Queue[UaEvent] = asyncio.Queue()
        endpoint.on_event(self.events.put_nowait)

    async def wait(self, kind: type[UaEvent]) -> UaEvent:
        while True:
            event = await asyncio.wait_for(self.events.get(), 5)
            if isinstance(event, kind):
                return event
            if isinstance(event, CallFailed) and kind is CallAnswered:
                raise AssertionError(f"call failed: {event.status}")


def sdp(port: int) -> bytes:
    return (
        f"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\n"
    ).encode()


async def test_feature_codes_end_to_end(system: PhoneSystem) -> None:
    assert system.address is not None
    target = Peer("UDP", *system.address)
    endpoint = SipEndpoint(UaConfig(host="127.0.0.1", port=0, user="101",
                                    timers=TimerConfig(t1=0.05, t2=0.4, t4=0.5)))  # fmt: skip
    await endpoint.start("127.0.0.1", 0)
    rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rtp.bind(("127.0.0.1", 0))
    rtp.setblocking(False)
    phone = Phone(endpoint, target)
    account = Account("101", "secret101")
    try:
        ua = endpoint.ua
        register = ua.new_request(
            "REGISTER", f"sip:{target.host}:{target.port}", target,
            from_uri=f"sip:101@{target.host}", to_uri=f"sip:101@{target.host}",
            headers=[("Expires", "300")],
        )  # fmt: skip
        ua.send(register, target, endpoint.now, credentials=account)
        endpoint.flush()
        for _ in range(50):
            if system.registrar.is_registered("101"):
                break
            await asyncio.sleep(0.05)
        agent = system.agents["101"]
        assert agent.registered
        agent.set_status(endpoint.now, AgentStatus.AVAILABLE)

        for code, status in (("*2", AgentStatus.BREAK), ("*1", AgentStatus.AVAILABLE)):
            ua.invite(
                f"sip:{code}@{target.host}:{target.port}", target, endpoint.now,
                from_uri=f"sip:101@{target.host}", body=sdp(rtp.getsockname()[1]),
                credentials=account,
            )  # fmt: skip
            endpoint.flush()
            await phone.wait(CallAnswered)
            ended = await phone.wait(DialogTerminated)
            assert isinstance(ended, DialogTerminated) and ended.by_remote
            packets = []
            while True:
                try:
                    packets.append(rtp.recv(2048))
                except BlockingIOError:
                    break
            assert len(packets) >= 10
            assert all(p[0] == 0x80 and p[1] & 0x7F == 0 for p in packets)  # RTP v2, PCMU
            seqs = [int.from_bytes(p[2:4], "big") for p in packets]
            assert all((b - a) % 65536 == 1 for a, b in zip(seqs, seqs[1:], strict=False))
            assert agent.status is status
            # The beep's port came from the media pool and went back to it.
            assert system.features.ports is system.media.ports
            assert system.media.ports.in_use == 0
    finally:
        rtp.close()
        await endpoint.close()


async def test_unauthenticated_feature_call_is_challenged_then_refused(
    system: PhoneSystem,
) -> None:
    assert system.address is not None
    target = Peer("UDP", *system.address)
    endpoint = SipEndpoint(UaConfig(host="127.0.0.1", port=0, user="101",
                                    timers=TimerConfig(t1=0.05, t2=0.4, t4=0.5)))  # fmt: skip
    await endpoint.start("127.0.0.1", 0)
    phone = Phone(endpoint, target)
    try:
        endpoint.ua.invite(f"sip:*2@{target.host}:{target.port}", target, endpoint.now,
                           from_uri=f"sip:101@{target.host}", body=sdp(4000))  # fmt: skip
        endpoint.flush()
        failed = await phone.wait(CallFailed)
        assert isinstance(failed, CallFailed) and failed.status == 401
        assert failed.response is not None
        assert failed.response.headers.get("WWW-Authenticate")
        # With the right password but no registration: refused, status untouched.
        endpoint.ua.invite(f"sip:*2@{target.host}:{target.port}", target, endpoint.now,
                           from_uri=f"sip:101@{target.host}", body=sdp(4000),
                           credentials=Account("101", "secret101"))  # fmt: skip
        endpoint.flush()
        failed = await phone.wait(CallFailed)
        assert isinstance(failed, CallFailed) and failed.status == 403
        assert system.agents["101"].status is AgentStatus.LOGGED_OUT
    finally:
        await endpoint.close()
